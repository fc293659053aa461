//! Carts, items and orders: snapshot upserts and the candidate window.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::model::{Cart, CartStatus, LineItem, Order, normalize_email};
use crate::plan::{Candidate, CandidateItem};

use super::{Store, from_unix, to_unix};

/// What importing a batch of carts did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CartImport {
    pub upserted: u64,
    pub unchanged: u64,
    pub marked_ordered: u64,
}

/// What importing a batch of orders did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OrderImport {
    pub added: u64,
    pub unchanged: u64,
    pub marked_ordered: u64,
}

/// The candidate window: open carts last active within [?1, ?2], read from the index `carts_open_window` alone.
pub(crate) const CANDIDATES: &str =
    "SELECT id, email, email_norm, accepts_marketing, updated_at, total_minor, currency,
                        timezone, utc_offset, sms_consent
                 FROM carts
                 WHERE status = 'open' AND updated_at BETWEEN ?1 AND ?2
                 ORDER BY updated_at, id";

/// The items of the window's carts with what the catalog adds: a price
/// where the cart has none (in the cart's currency), and the stock.
pub(crate) const CANDIDATE_ITEMS: &str = "SELECT i.cart_id, i.sku, i.category, i.quantity,
            CASE WHEN i.unit_price_minor = 0 AND p.currency = c.currency
                 THEN COALESCE(p.price_minor, 0) ELSE i.unit_price_minor END,
            p.in_stock
     FROM cart_items i JOIN carts c ON c.id = i.cart_id
     LEFT JOIN products p ON p.sku = i.sku
     WHERE c.status = 'open' AND c.updated_at BETWEEN ?1 AND ?2
     ORDER BY i.cart_id, i.position";

fn snapshot_hash(cart: &Cart) -> Vec<u8> {
    let json = serde_json::to_vec(cart).expect("a cart serialises");
    Sha256::digest(json).to_vec()
}

impl Store {
    /// Stores cart snapshots. A snapshot replaces the stored cart (items
    /// included) only if it is not older; the same snapshot again changes
    /// nothing. An `ordered` cart stays ordered whatever a snapshot says, and
    /// a cart that has an order already is marked ordered on arrival.
    pub fn import_carts(&self, carts: &[Cart]) -> Result<CartImport> {
        self.write(|conn| {
            let mut result = CartImport::default();
            for cart in carts {
                match upsert_cart(conn, cart)? {
                    false => result.unchanged += 1,
                    true => {
                        result.upserted += 1;
                        result.marked_ordered += mark_if_ordered(conn, cart)?;
                    }
                }
            }
            Ok(result)
        })
    }

    /// Stores orders (once each, by id) and marks their carts ordered: by
    /// `cart_id`, else every open cart of the address last active at or
    /// before the order.
    pub fn import_orders(&self, orders: &[Order]) -> Result<OrderImport> {
        self.write(|conn| {
            let mut result = OrderImport::default();
            let mut insert = conn.prepare_cached(
                "INSERT INTO orders (id, email, email_norm, cart_id, total_minor, currency, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
            )?;
            for order in orders {
                let added = insert.execute(params![
                    order.id,
                    order.email,
                    normalize_email(&order.email),
                    order.cart_id,
                    order.total_minor,
                    order.currency.as_str(),
                    to_unix(order.created_at),
                ])?;
                if added == 0 {
                    result.unchanged += 1;
                    continue;
                }
                result.added += 1;
                for sku in &order.skus {
                    conn.prepare_cached(
                        "INSERT INTO order_items (order_id, sku) VALUES (?1, ?2)
                         ON CONFLICT DO NOTHING",
                    )?
                    .execute([&order.id, sku])?;
                }
                result.marked_ordered += match &order.cart_id {
                    Some(cart_id) => conn.execute(
                        "UPDATE carts SET status = 'ordered' WHERE id = ?1 AND status = 'open'",
                        [cart_id],
                    )?,
                    None => conn.execute(
                        "UPDATE carts SET status = 'ordered'
                         WHERE email_norm = ?1 AND status = 'open' AND updated_at <= ?2",
                        params![normalize_email(&order.email), to_unix(order.created_at)],
                    )?,
                } as u64;
            }
            Ok(result)
        })
    }

    /// Open carts last active within `[oldest, newest]`, by index, with the
    /// SKUs and categories of their items.
    pub fn candidates(
        &self,
        oldest: DateTime<Utc>,
        newest: DateTime<Utc>,
    ) -> Result<Vec<Candidate>> {
        let run = || -> rusqlite::Result<Vec<Candidate>> {
            let window = params![to_unix(oldest), to_unix(newest)];
            let mut query = self.conn().prepare_cached(CANDIDATES)?;
            let mut candidates = query
                .query_map(window, |row| {
                    let currency: String = row.get(6)?;
                    let timezone: String = row.get(7)?;
                    Ok(Candidate {
                        id: row.get(0)?,
                        email: row.get(1)?,
                        email_norm: row.get(2)?,
                        status: CartStatus::Open,
                        accepts_marketing: row.get(3)?,
                        updated_at: from_unix(row.get(4)?),
                        total_minor: row.get(5)?,
                        currency: currency.parse().map_err(|message: String| {
                            rusqlite::Error::FromSqlConversionFailure(
                                6,
                                rusqlite::types::Type::Text,
                                message.into(),
                            )
                        })?,
                        items: Vec::new(),
                        timezone: (!timezone.is_empty()).then_some(timezone),
                        utc_offset_seconds: row.get(8)?,
                        sms_consent: row.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let index: HashMap<String, usize> = candidates
                .iter()
                .enumerate()
                .map(|(position, cart)| (cart.id.clone(), position))
                .collect();
            let mut items = self.conn().prepare_cached(CANDIDATE_ITEMS)?;
            let mut rows = items.query(window)?;
            let mut priced: Vec<i64> = vec![0; candidates.len()];
            while let Some(row) = rows.next()? {
                let cart_id: String = row.get(0)?;
                if let Some(&position) = index.get(&cart_id) {
                    let quantity: i64 = row.get(3)?;
                    let price: i64 = row.get(4)?;
                    priced[position] += quantity * price;
                    candidates[position].items.push(CandidateItem {
                        sku: row.get(1)?,
                        category: row.get(2)?,
                        line_total_minor: quantity * price,
                        in_stock: row.get(5)?,
                    });
                }
            }
            // The catalog may price what the stored total could not.
            for (candidate, total) in candidates.iter_mut().zip(priced) {
                candidate.total_minor = candidate.total_minor.max(total);
            }
            Ok(candidates)
        };
        run().map_err(|source| self.error(source))
    }

    /// The whole cart, items included, for rendering.
    pub fn cart(&self, id: &str) -> Result<Option<Cart>> {
        let run = || -> rusqlite::Result<Option<Cart>> {
            let mut query = self.conn().prepare_cached(
                "SELECT id, email, first_name, locale, currency, status, accepts_marketing,
                        created_at, updated_at, utc_offset, timezone, phone, sms_consent
                 FROM carts WHERE id = ?1",
            )?;
            let Some(mut cart) = query
                .query_row([id], |row| {
                    let currency: String = row.get(4)?;
                    let status: String = row.get(5)?;
                    Ok(Cart {
                        id: row.get(0)?,
                        email: row.get(1)?,
                        first_name: row.get(2)?,
                        locale: row.get(3)?,
                        currency: currency
                            .parse()
                            .unwrap_or_else(|_| "XXX".parse().expect("a valid code")),
                        status: status.parse().unwrap_or(CartStatus::Closed),
                        accepts_marketing: row.get(6)?,
                        created_at: from_unix(row.get(7)?),
                        updated_at: from_unix(row.get(8)?),
                        utc_offset_seconds: row.get(9)?,
                        timezone: row.get(10)?,
                        phone: row.get(11)?,
                        sms_consent: row.get(12)?,
                        items: Vec::new(),
                    })
                })
                .optional()?
            else {
                return Ok(None);
            };
            let mut items = self.conn().prepare_cached(
                "SELECT sku, name, category, quantity, unit_price_minor, image_url, product_url
                 FROM cart_items WHERE cart_id = ?1 ORDER BY position",
            )?;
            cart.items = items
                .query_map([id], |row| {
                    Ok(LineItem {
                        sku: row.get(0)?,
                        name: row.get(1)?,
                        category: row.get(2)?,
                        quantity: row.get(3)?,
                        unit_price_minor: row.get(4)?,
                        image_url: row.get(5)?,
                        product_url: row.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Some(cart))
        };
        run().map_err(|source| self.error(source))
    }
}

/// Returns whether the stored cart changed.
fn upsert_cart(conn: &Connection, cart: &Cart) -> rusqlite::Result<bool> {
    let hash = snapshot_hash(cart);
    let updated_at = to_unix(cart.updated_at);
    let stored: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT updated_at, snapshot_hash FROM carts WHERE id = ?1")?
        .query_row([&cart.id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    if let Some((stored_at, stored_hash)) = stored
        && (stored_at > updated_at || (stored_at == updated_at && stored_hash == hash))
    {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO carts (id, email, email_norm, first_name, locale, currency, status,
                            accepts_marketing, created_at, updated_at, utc_offset, total_minor,
                            item_count, snapshot_hash, timezone, phone, sms_consent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (id) DO UPDATE SET
            email = excluded.email, email_norm = excluded.email_norm,
            first_name = excluded.first_name, locale = excluded.locale,
            currency = excluded.currency,
            -- a bought cart stays bought: never reopened by a snapshot
            status = CASE WHEN carts.status = 'ordered' THEN 'ordered' ELSE excluded.status END,
            accepts_marketing = excluded.accepts_marketing, created_at = excluded.created_at,
            updated_at = excluded.updated_at, utc_offset = excluded.utc_offset,
            total_minor = excluded.total_minor, item_count = excluded.item_count,
            snapshot_hash = excluded.snapshot_hash, timezone = excluded.timezone,
            phone = excluded.phone, sms_consent = excluded.sms_consent",
    )?
    .execute(params![
        cart.id,
        cart.email,
        normalize_email(&cart.email),
        cart.first_name,
        cart.locale,
        cart.currency.as_str(),
        cart.status.as_str(),
        cart.accepts_marketing,
        to_unix(cart.created_at),
        updated_at,
        cart.utc_offset_seconds,
        cart.total_minor(),
        cart.item_count(),
        hash,
        cart.timezone,
        cart.phone,
        cart.sms_consent,
    ])?;
    conn.prepare_cached("DELETE FROM cart_items WHERE cart_id = ?1")?
        .execute([&cart.id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO cart_items (cart_id, position, sku, name, category, quantity,
                                 unit_price_minor, image_url, product_url)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (position, item) in cart.items.iter().enumerate() {
        insert.execute(params![
            cart.id,
            position as i64,
            item.sku,
            item.name,
            item.category,
            item.quantity,
            item.unit_price_minor,
            item.image_url,
            item.product_url,
        ])?;
    }
    Ok(true)
}

/// An order may have arrived before its cart's snapshot: look for one.
fn mark_if_ordered(conn: &Connection, cart: &Cart) -> rusqlite::Result<u64> {
    let changed = conn
        .prepare_cached(
            "UPDATE carts SET status = 'ordered'
             WHERE id = ?1 AND status = 'open' AND (
                EXISTS (SELECT 1 FROM orders WHERE cart_id = ?1)
                OR EXISTS (SELECT 1 FROM orders
                           WHERE cart_id IS NULL AND email_norm = ?2 AND created_at >= ?3))",
        )?
        .execute(params![
            cart.id,
            normalize_email(&cart.email),
            to_unix(cart.updated_at)
        ])?;
    Ok(changed as u64)
}
