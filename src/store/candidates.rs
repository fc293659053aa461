//! The candidate window (open carts the plan looks at, with the catalog's
//! word on their items) and whole carts loaded for rendering.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::model::{Cart, CartStatus};
use crate::plan::{Candidate, CandidateItem};

use super::engine::{DbError, DbResult, Row, args};
use super::items::{StoredItemForPlan, bad_items, decode_items};
use super::{Store, from_unix, to_unix};

/// The candidate window: open carts last active within [?1, ?2], read from the index `carts_open_window` alone.
pub(crate) const CANDIDATES: &str =
    "SELECT id, email, email_norm, accepts_marketing, updated_at, total_minor, currency,
                        timezone, utc_offset, sms_consent, items
                 FROM carts
                 WHERE status = 'open' AND updated_at BETWEEN ?1 AND ?2
                 ORDER BY updated_at, id";

/// Due carts by id, items included, for rendering (`rarray(?1)`: the
/// batch's ids).
pub(crate) const DUE_CARTS: &str = "SELECT c.id, c.email, c.first_name, c.locale, c.currency,
            c.status, c.accepts_marketing, c.created_at, c.updated_at, c.utc_offset,
            c.timezone, c.phone, c.sms_consent, c.items
     FROM rarray(?1) AS a JOIN carts AS c ON c.id = a.value";

/// The other open carts of the due carts' customers (`rarray(?1)`: the due
/// carts' ids), last active within [?2, ?3]: by due cart, newest first.
/// Both joins go by index (the id, then `carts_by_email`).
pub(crate) const OTHER_OPEN_CARTS: &str = "SELECT d.id, c.id, c.email, c.first_name, c.locale,
            c.currency, c.status, c.accepts_marketing, c.created_at, c.updated_at, c.utc_offset,
            c.timezone, c.phone, c.sms_consent, c.items
     FROM rarray(?1) AS a JOIN carts AS d ON d.id = a.value
          JOIN carts AS c ON c.email_norm = d.email_norm
     WHERE c.status = 'open' AND c.id <> d.id AND c.updated_at BETWEEN ?2 AND ?3
     ORDER BY d.id, c.updated_at DESC, c.id";

/// The most other open carts loaded for one due cart: a mail that lists
/// more is no use to anyone, and an address shared by a bot or a shop's
/// test account may hold thousands.
pub(crate) const MAX_OTHER_CARTS: usize = 10;

/// What the catalog adds to a window's items: a price where the cart has
/// none (in the cart's currency), and the stock (`rarray(?1)`: the SKUs).
pub(crate) const CATALOG_PRICES: &str = "SELECT p.sku, p.price_minor, p.currency, p.in_stock
     FROM rarray(?1) AS a JOIN products AS p ON p.sku = a.value";
impl Store {
    /// SKUs and categories of their items. The items (JSON) are parsed on
    /// another thread while the next rows are read: parsing was half the
    /// time of a large window, and the run waits for all of it before the
    /// first mail.
    pub fn candidates(
        &self,
        oldest: DateTime<Utc>,
        newest: DateTime<Utc>,
    ) -> Result<Vec<Candidate>> {
        /// Rows handed to the parser at a time, and chunks ahead at most.
        const CHUNK: usize = 512;
        const CHUNKS_AHEAD: usize = 4;
        type Parsed = (Vec<Candidate>, Vec<Vec<(u32, i64)>>);
        let parse = |rows: std::sync::mpsc::Receiver<Vec<(Candidate, String)>>| {
            let mut parsed: Parsed = Default::default();
            for chunk in rows {
                for (mut candidate, items) in chunk {
                    let items: Vec<StoredItemForPlan> =
                        serde_json::from_str(&items).map_err(|error| {
                            bad_items(10, format!("cart {}: {error}", candidate.id))
                        })?;
                    parsed
                        .1
                        .push(items.iter().map(|item| (item.3, item.4)).collect());
                    candidate.items = items
                        .into_iter()
                        .map(|StoredItemForPlan(sku, _, category, quantity, price, ..)| {
                            CandidateItem {
                                sku,
                                category,
                                line_total_minor: i64::from(quantity).saturating_mul(price),
                                in_stock: None,
                            }
                        })
                        .collect();
                    parsed.0.push(candidate);
                }
            }
            Ok::<_, DbError>(parsed)
        };
        let read = |to_parser: std::sync::mpsc::SyncSender<Vec<(Candidate, String)>>| {
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut parser_stopped = false;
            let read = self
                .db()
                .each(CANDIDATES, args![to_unix(oldest), to_unix(newest)], |row| {
                    let candidate = Candidate {
                        id: row.get(0)?,
                        email: row.get(1)?,
                        email_norm: row.get(2)?,
                        status: CartStatus::Open,
                        accepts_marketing: row.get(3)?,
                        updated_at: from_unix(row.get(4)?),
                        total_minor: row.get(5)?,
                        currency: row.text(6)?.parse().map_err(|message: String| {
                            rusqlite::Error::FromSqlConversionFailure(
                                6,
                                rusqlite::types::Type::Text,
                                message.into(),
                            )
                        })?,
                        items: Vec::new(),
                        timezone: Some(row.text(7)?)
                            .filter(|timezone| !timezone.is_empty())
                            .map(str::to_owned),
                        utc_offset_seconds: utc_offset(row, 8)?,
                        sms_consent: row.get(9)?,
                    };
                    chunk.push((candidate, row.get(10)?));
                    if chunk.len() == CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        if to_parser.send(full).is_err() {
                            // The parser stopped at an error: it tells
                            // which. Stop reading rows.
                            parser_stopped = true;
                            return Err(DbError::Value(String::new()));
                        }
                    }
                    Ok(())
                });
            if parser_stopped {
                return Ok(());
            }
            let _ = to_parser.send(chunk);
            read
        };
        let run = || -> DbResult<Vec<Candidate>> {
            let (to_parser, rows) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
            let (read, parsed) = std::thread::scope(|scope| {
                let parser = scope.spawn(move || parse(rows));
                let read = read(to_parser);
                let parsed = parser
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (read, parsed)
            });
            read?;
            let (mut candidates, quantities) = parsed?;
            let has_products: bool = self
                .db()
                .value("SELECT EXISTS (SELECT 1 FROM products)", args![])?;
            if has_products {
                self.add_catalog(&mut candidates, &quantities)?;
            }
            Ok(candidates)
        };
        run().map_err(|source| self.error(source))
    }

    /// What the catalog says of the candidates' items: the stock, and the
    /// price of an item the cart has at 0 (when the catalog prices it in
    /// the cart's currency), which may raise the cart's total.
    fn add_catalog(
        &self,
        candidates: &mut [Candidate],
        quantities: &[Vec<(u32, i64)>],
    ) -> DbResult<()> {
        /// A catalog entry: the price, its currency, whether in stock.
        type Entry = (Option<i64>, Option<String>, Option<bool>);
        let skus: Vec<String> = candidates
            .iter()
            .flat_map(|candidate| candidate.items.iter().map(|item| item.sku.as_str()))
            .collect::<HashSet<&str>>()
            .into_iter()
            .map(str::to_owned)
            .collect();
        // SKU → entry
        let mut catalog: HashMap<String, Entry> = HashMap::new();
        self.db().each(CATALOG_PRICES, args![&skus], |row| {
            catalog.insert(row.get(0)?, (row.get(1)?, row.get(2)?, row.get(3)?));
            Ok(())
        })?;
        for (candidate, quantities) in candidates.iter_mut().zip(quantities) {
            let mut priced: i64 = 0;
            for (item, &(quantity, price)) in candidate.items.iter_mut().zip(quantities) {
                if let Some((catalog_price, currency, in_stock)) = catalog.get(&item.sku) {
                    item.in_stock = *in_stock;
                    if price == 0 && currency.as_deref() == Some(candidate.currency.as_str()) {
                        item.line_total_minor =
                            i64::from(quantity).saturating_mul(catalog_price.unwrap_or(0));
                    }
                }
                priced = priced.saturating_add(item.line_total_minor);
            }
            // The catalog may price what the stored total could not.
            candidate.total_minor = candidate.total_minor.max(priced);
        }
        Ok(())
    }

    /// The whole cart, items included, for rendering.
    pub fn cart(&self, id: &str) -> Result<Option<Cart>> {
        Ok(self.carts(&[id])?.remove(id))
    }

    /// Whole carts, items included, by id (those that exist): one query for
    /// a batch of due carts rather than one per cart.
    pub fn carts(&self, wanted: &[&str]) -> Result<HashMap<String, Cart>> {
        let ids: Vec<String> = wanted.iter().copied().map(str::to_owned).collect();
        let mut carts = HashMap::with_capacity(ids.len());
        self.db()
            .each(DUE_CARTS, args![&ids], |row| {
                let cart = read_cart(row, 0)?;
                carts.insert(cart.id.clone(), cart);
                Ok(())
            })
            .map_err(|source| self.error(source))?;
        Ok(carts)
    }

    /// The other open carts of each due cart's customer (same address,
    /// another id), last active between `oldest` and `newest`, newest
    /// first, at most [`MAX_OTHER_CARTS`] each: by due cart id, only those
    /// that have some. One query for a batch.
    pub fn other_open_carts(
        &self,
        due: &[&str],
        oldest: DateTime<Utc>,
        newest: DateTime<Utc>,
    ) -> Result<HashMap<String, Vec<Cart>>> {
        let ids: Vec<String> = due.iter().copied().map(str::to_owned).collect();
        let mut others: HashMap<String, Vec<Cart>> = HashMap::new();
        self.db()
            .each(
                OTHER_OPEN_CARTS,
                args![&ids, to_unix(oldest), to_unix(newest)],
                |row| {
                    let due = row.text(0)?;
                    if others
                        .get(due)
                        .is_some_and(|carts| carts.len() >= MAX_OTHER_CARTS)
                    {
                        return Ok(());
                    }
                    let cart = read_cart(row, 1)?;
                    others.entry(due.to_owned()).or_default().push(cart);
                    Ok(())
                },
            )
            .map_err(|source| self.error(source))?;
        Ok(others)
    }
}

/// A customer's offset from UTC in seconds, from column `index`.
fn utc_offset(row: &Row<'_>, index: usize) -> DbResult<Option<i32>> {
    row.get::<Option<i64>>(index)?
        .map(|seconds| {
            i32::try_from(seconds)
                .map_err(|_| DbError::Value(format!("column {index}: {seconds} is no UTC offset")))
        })
        .transpose()
}

/// A whole cart from the columns of `DUE_CARTS`, starting at `first`.
fn read_cart(row: &Row<'_>, first: usize) -> DbResult<Cart> {
    Ok(Cart {
        id: row.get(first)?,
        email: row.get(first + 1)?,
        first_name: row.get(first + 2)?,
        locale: row.get(first + 3)?,
        currency: row
            .text(first + 4)?
            .parse()
            .unwrap_or_else(|_| "XXX".parse().expect("a valid code")),
        status: row.text(first + 5)?.parse().unwrap_or(CartStatus::Closed),
        accepts_marketing: row.get(first + 6)?,
        created_at: from_unix(row.get(first + 7)?),
        updated_at: from_unix(row.get(first + 8)?),
        utc_offset_seconds: utc_offset(row, first + 9)?,
        timezone: row.get(first + 10)?,
        phone: row.get(first + 11)?,
        sms_consent: row.get(first + 12)?,
        items: decode_items(first + 13, row.text(first + 13)?)?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use crate::store::engine::args;
    use crate::store::testing::{both_stores, put_carts};

    /// The catalog prices an item the cart has at 0 (in the cart's
    /// currency only) and says what is in stock; whole carts come back as
    /// written.
    #[test]
    fn the_catalog_and_whole_carts_read_alike_on_both_engines() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        let mut cart = crate::compose::sample_cart(now);
        cart.items[0].unit_price_minor = 0;
        cart.utc_offset_seconds = Some(-18_000);
        cart.timezone = "America/New_York".into();
        cart.sms_consent = true;
        let mut other = cart.clone();
        other.id = "SAMPLE-2".into();
        other.utc_offset_seconds = None;
        for (engine, store) in both_stores("recart_unit_candidates_catalog") {
            put_carts(&store, &[cart.clone(), other.clone()]);
            store
                .write_db(|db| {
                    db.execute(
                        "INSERT INTO products (sku, name, image_url, product_url, price_minor,
                                               currency, in_stock)
                         VALUES ('SAMPLE-TENT', '', '', '', 15000, 'EUR', 1),
                                ('SAMPLE-MUG', '', '', '', 900, 'EUR', 0)",
                        args![],
                    )
                })
                .unwrap();
            let found = store.candidates(now - TimeDelta::days(1), now).unwrap();
            assert_eq!(found.len(), 2, "{engine}");
            let candidate = &found[0];
            let items: Vec<(i64, Option<bool>)> = candidate
                .items
                .iter()
                .map(|item| (item.line_total_minor, item.in_stock))
                .collect();
            assert_eq!(
                items,
                [(15_000, Some(true)), (2_500, Some(false))],
                "{engine}"
            );
            assert_eq!(candidate.total_minor, 17_500, "{engine}");
            assert_eq!(
                (
                    candidate.timezone.as_deref(),
                    candidate.utc_offset_seconds,
                    candidate.sms_consent
                ),
                (Some("America/New_York"), Some(-18_000), true),
                "{engine}"
            );
            let carts = store.carts(&["SAMPLE-1", "SAMPLE-2", "gone"]).unwrap();
            assert_eq!(carts.len(), 2, "{engine}");
            assert_eq!(carts["SAMPLE-1"], cart, "{engine}");
            assert_eq!(carts["SAMPLE-2"], other, "{engine}");
            assert_eq!(store.cart("gone").unwrap(), None, "{engine}");
        }
    }
}
