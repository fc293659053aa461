//! Carts, items and orders: snapshot upserts and the candidate window.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::vtab::array::Array;
use rusqlite::{Connection, ToSql, params};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::model::{Cart, CartStatus, LineItem, Order, Snapshot, normalize_email, snapshot_hash};
use crate::plan::{Candidate, CandidateItem};

use super::{Bulk, Store, from_unix, to_unix};

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

/// What the catalog adds to a window's items: a price where the cart has
/// none (in the cart's currency), and the stock (`rarray(?1)`: the SKUs).
pub(crate) const CATALOG_PRICES: &str = "SELECT p.sku, p.price_minor, p.currency, p.in_stock
     FROM rarray(?1) AS a JOIN products AS p ON p.sku = a.value";

/// A line item as `carts.items` keeps it: one JSON array per item, in
/// this order (the `cart_items` view names them).
#[derive(serde::Serialize)]
struct StoredItemRef<'i>(&'i str, &'i str, &'i str, u32, i64, &'i str, &'i str);

#[derive(serde::Deserialize)]
struct StoredItem(String, String, String, u32, i64, String, String);

/// What the plan reads of a stored item: SKU, category, quantity, price.
#[derive(serde::Deserialize)]
struct StoredItemForPlan(
    String,
    serde::de::IgnoredAny,
    String,
    u32,
    i64,
    serde::de::IgnoredAny,
    serde::de::IgnoredAny,
);

/// The value of `carts.items`: the items, in order, as a JSON array of
/// arrays (SKU, name, category, quantity, unit price in minor units, image
/// URL, product URL).
pub fn encode_items(items: &[LineItem]) -> String {
    let stored: Vec<StoredItemRef<'_>> = items
        .iter()
        .map(|item| {
            StoredItemRef(
                &item.sku,
                &item.name,
                &item.category,
                item.quantity,
                item.unit_price_minor,
                &item.image_url,
                &item.product_url,
            )
        })
        .collect();
    serde_json::to_string(&stored).expect("items serialise")
}

fn decode_items(column: usize, json: &str) -> rusqlite::Result<Vec<LineItem>> {
    let stored: Vec<StoredItem> =
        serde_json::from_str(json).map_err(|error| bad_items(column, error))?;
    Ok(stored
        .into_iter()
        .map(|item| LineItem {
            sku: item.0,
            name: item.1,
            category: item.2,
            quantity: item.3,
            unit_price_minor: item.4,
            image_url: item.5,
            product_url: item.6,
        })
        .collect())
}

fn bad_items(column: usize, error: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("the stored items are not valid: {error}").into(),
    )
}

/// The hash the first release stored (SHA-256 of the cart as JSON). A store
/// written by it still holds these: a snapshot whose v2 hash differs from
/// the stored one is compared with this too before it counts as changed,
/// so an upgrade does not rewrite every cart once.
fn legacy_snapshot_hash(cart: &Cart) -> Vec<u8> {
    let json = serde_json::to_vec(cart).expect("a cart serialises");
    Sha256::digest(json).to_vec()
}

/// Carts per multi-row INSERT (18 parameters each).
const CART_ROWS: usize = 32;

const CART_INSERT: &str =
    "INSERT INTO carts (id, email, email_norm, first_name, locale, currency, status,
                            accepts_marketing, created_at, updated_at, utc_offset, total_minor,
                            item_count, snapshot_hash, timezone, phone, sms_consent, items) VALUES ";
const CART_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const CART_UPSERT: &str = " ON CONFLICT (id) DO UPDATE SET
            email = excluded.email, email_norm = excluded.email_norm,
            first_name = excluded.first_name, locale = excluded.locale,
            currency = excluded.currency,
            -- a bought cart stays bought: never reopened by a snapshot
            status = CASE WHEN carts.status = 'ordered' THEN 'ordered' ELSE excluded.status END,
            accepts_marketing = excluded.accepts_marketing, created_at = excluded.created_at,
            updated_at = excluded.updated_at, utc_offset = excluded.utc_offset,
            total_minor = excluded.total_minor, item_count = excluded.item_count,
            snapshot_hash = excluded.snapshot_hash, timezone = excluded.timezone,
            phone = excluded.phone, sms_consent = excluded.sms_consent, items = excluded.items";

fn multi_row(head: &str, values: &str, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (values.len() + 2) + tail.len());
    sql.push_str(head);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(values);
    }
    sql.push_str(tail);
    sql
}

/// A cart, its snapshot hash and its items as stored.
type Hashed<'c> = (&'c Cart, [u8; 32], std::borrow::Cow<'c, str>);

fn ids(values: impl Iterator<Item = String>) -> Array {
    Rc::new(values.map(Value::Text).collect())
}

impl Store {
    /// Stores cart snapshots. A snapshot replaces the stored cart (items
    /// included) only if it is not older; the same snapshot again changes
    /// nothing. An `ordered` cart stays ordered whatever a snapshot says, and
    /// a cart that has an order already is marked ordered on arrival.
    pub fn import_carts(&self, carts: &[Cart]) -> Result<CartImport> {
        let mut buffer = Vec::with_capacity(1024);
        let hashed: Vec<Hashed<'_>> = carts
            .iter()
            .map(|cart| {
                let hash = snapshot_hash(cart, &mut buffer);
                (cart, hash, encode_items(&cart.items).into())
            })
            .collect();
        self.import_hashed(&hashed)
    }

    /// [`Store::import_carts`] of carts hashed already.
    pub fn import_snapshots(&self, snapshots: &[Snapshot]) -> Result<CartImport> {
        let hashed: Vec<Hashed<'_>> = snapshots
            .iter()
            .map(|snapshot| {
                (
                    &snapshot.cart,
                    snapshot.hash,
                    snapshot.items.as_str().into(),
                )
            })
            .collect();
        self.import_hashed(&hashed)
    }

    fn import_hashed(&self, carts: &[Hashed<'_>]) -> Result<CartImport> {
        self.write(|conn| {
            let mut result = CartImport::default();
            // The batch is written set-wise, which needs distinct ids: a run
            // of carts is cut where an id comes back, so the later snapshot
            // meets the earlier one as stored, as if written one by one.
            let mut seen: HashSet<&str> = HashSet::with_capacity(carts.len());
            let mut start = 0;
            for (index, (cart, ..)) in carts.iter().enumerate() {
                if !seen.insert(&cart.id) {
                    import_distinct(conn, &carts[start..index], &mut result)?;
                    start = index;
                    seen.clear();
                    seen.insert(&cart.id);
                }
            }
            import_distinct(conn, &carts[start..], &mut result)?;
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
            Ok::<_, rusqlite::Error>(parsed)
        };
        let read = |to_parser: std::sync::mpsc::SyncSender<Vec<(Candidate, String)>>| {
            let window = params![to_unix(oldest), to_unix(newest)];
            let mut query = self.conn().prepare_cached(CANDIDATES)?;
            let mut rows = query.query(window)?;
            let mut chunk = Vec::with_capacity(CHUNK);
            while let Some(row) = rows.next()? {
                let currency: String = row.get(6)?;
                let timezone: String = row.get(7)?;
                let candidate = Candidate {
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
                };
                chunk.push((candidate, row.get(10)?));
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if to_parser.send(full).is_err() {
                        // The parser stopped at an error: it tells which.
                        return Ok(());
                    }
                }
            }
            let _ = to_parser.send(chunk);
            Ok::<_, rusqlite::Error>(())
        };
        let run = || -> rusqlite::Result<Vec<Candidate>> {
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
                .conn()
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM products)")?
                .query_row([], |row| row.get(0))?;
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
    ) -> rusqlite::Result<()> {
        let skus: HashSet<&str> = candidates
            .iter()
            .flat_map(|candidate| candidate.items.iter().map(|item| item.sku.as_str()))
            .collect();
        let mut query = self.conn().prepare_cached(CATALOG_PRICES)?;
        let mut rows = query.query([ids(skus.into_iter().map(str::to_string))])?;
        // SKU → (price, its currency, in stock)
        type Entry = (Option<i64>, Option<String>, Option<bool>);
        let mut catalog: HashMap<String, Entry> = HashMap::new();
        while let Some(row) = rows.next()? {
            catalog.insert(row.get(0)?, (row.get(1)?, row.get(2)?, row.get(3)?));
        }
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
        let run = || -> rusqlite::Result<HashMap<String, Cart>> {
            let ids = ids(wanted.iter().map(|id| id.to_string()));
            let mut query = self.conn().prepare_cached(DUE_CARTS)?;
            query
                .query_map([&ids], |row| {
                    let currency: String = row.get(4)?;
                    let status: String = row.get(5)?;
                    let cart = Cart {
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
                        items: decode_items(13, row.get_ref(13)?.as_str()?)?,
                    };
                    Ok((cart.id.clone(), cart))
                })?
                .collect()
        };
        run().map_err(|source| self.error(source))
    }
}

/// A first import: the whole file in one transaction, into a carts table
/// that was empty, with the carts' secondary indexes dropped at the start
/// and built again, each by one sort, at the end. Inserting into them row
/// by row (the window index in `updated_at` order, the e-mail index in
/// address order, neither the file's) dirtied pages all over both at every
/// batch's commit: it was most of a first import's time.
///
/// The drop, the load and the rebuild are one transaction, so a crash or a
/// kill rolls all of it back and the store keeps its indexes; its schema
/// is the same afterwards (each index is made again from its own SQL, as
/// `sqlite_master` holds it). The price: other writers (a `run`) wait for
/// the whole file rather than one batch, and a batch that fails to write
/// (a full disk) rolls back the whole file, not itself alone. A file that
/// fails to read keeps the batches read before, as it does otherwise.
pub struct BulkLoad<'s> {
    store: &'s Store,
    /// The dropped indexes' `CREATE INDEX` statements.
    indexes: Vec<String>,
    open: bool,
}

impl Store {
    /// Starts a [`BulkLoad`] if the carts table is empty and no
    /// transaction is open (a dry run's is); otherwise `None`, and batches
    /// commit one by one.
    pub fn begin_bulk_load(&self) -> Result<Option<BulkLoad<'_>>> {
        if !self.conn().is_autocommit() {
            return Ok(None);
        }
        let empty = || -> rusqlite::Result<bool> {
            self.conn()
                .query_row("SELECT NOT EXISTS (SELECT 1 FROM carts)", [], |row| {
                    row.get(0)
                })
        };
        if !empty().map_err(|source| self.error(source))? {
            return Ok(None);
        }
        let start = || -> rusqlite::Result<Option<Vec<String>>> {
            let conn = self.conn();
            // A rollback journal rather than the WAL for the load: the pages
            // of an empty store's new rows are written once, to the store,
            // instead of to the WAL and then copied over. (It takes effect
            // only when no other connection has the store open. Either way
            // the load is one atomic transaction.)
            // The pragma must come outside a transaction, and so must the
            // one on foreign keys: an import deletes no cart, so they need
            // no checking within it.
            // (Busy when another connection has it open: the WAL it is.)
            let _ = conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()));
            conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE")?;
            // Another import may have filled it meanwhile.
            if !empty()? {
                return Ok(None);
            }
            let indexes: Vec<(String, String)> = conn
                .prepare(
                    "SELECT name, sql FROM sqlite_master
                     WHERE type = 'index' AND tbl_name = 'carts' AND sql IS NOT NULL",
                )?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (name, _) in &indexes {
                conn.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
            }
            Ok(Some(indexes.into_iter().map(|(_, sql)| sql).collect()))
        };
        match start() {
            Ok(Some(indexes)) => {
                self.bulk.set(Bulk::Loading);
                Ok(Some(BulkLoad {
                    store: self,
                    indexes,
                    open: true,
                }))
            }
            Ok(None) => {
                self.end_bulk_load("ROLLBACK");
                Ok(None)
            }
            Err(source) => {
                self.end_bulk_load("ROLLBACK");
                Err(self.error(source))
            }
        }
    }

    fn end_bulk_load(&self, end: &str) {
        self.bulk.set(Bulk::Off);
        let conn = self.conn();
        if !conn.is_autocommit() {
            let _ = conn.execute_batch(end);
        }
        let _ = conn.execute_batch("PRAGMA foreign_keys = ON");
        // Back to the WAL, which every connection asks for anyway.
        let _ = conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()));
    }
}

impl BulkLoad<'_> {
    /// Builds the indexes again and commits; rolls back instead if a batch
    /// failed to write (its error was returned then).
    pub fn finish(mut self) -> Result<()> {
        if self.store.bulk.get() == Bulk::Failed {
            return Ok(());
        }
        let conn = self.store.conn();
        let done = self
            .indexes
            .iter()
            .try_for_each(|sql| conn.execute_batch(sql))
            .and_then(|()| conn.execute_batch("COMMIT"));
        // On failure, `drop` rolls back: the indexes come back with it.
        done.map_err(|source| self.store.error(source))?;
        self.open = false;
        self.store.end_bulk_load("COMMIT");
        Ok(())
    }
}

impl Drop for BulkLoad<'_> {
    fn drop(&mut self) {
        if self.open {
            self.store.end_bulk_load("ROLLBACK");
        }
    }
}

/// Imports carts whose ids are distinct: one SELECT of what is stored, one
/// DELETE of the items being replaced, multi-row INSERTs of carts and items,
/// one UPDATE for the carts whose order came first.
fn import_distinct(
    conn: &Connection,
    carts: &[Hashed<'_>],
    result: &mut CartImport,
) -> rusqlite::Result<()> {
    if carts.is_empty() {
        return Ok(());
    }
    let mut stored: HashMap<String, (i64, Vec<u8>)> = HashMap::with_capacity(carts.len());
    {
        let mut select = conn.prepare_cached(
            "SELECT c.id, c.updated_at, c.snapshot_hash
             FROM rarray(?1) AS a JOIN carts AS c ON c.id = a.value",
        )?;
        let mut rows = select.query([ids(carts.iter().map(|(cart, ..)| cart.id.clone()))])?;
        while let Some(row) = rows.next()? {
            stored.insert(row.get(0)?, (row.get(1)?, row.get(2)?));
        }
    }
    // Which snapshots replace the stored cart: those not older, unless the
    // same snapshot (same time, same hash) is stored already.
    let mut written: Vec<&Hashed<'_>> = Vec::with_capacity(carts.len());
    for hashed in carts {
        let (cart, hash, _) = hashed;
        let updated_at = to_unix(cart.updated_at);
        if let Some((stored_at, stored_hash)) = stored.get(&cart.id) {
            let same = *stored_at == updated_at
                && (stored_hash[..] == hash[..] || *stored_hash == legacy_snapshot_hash(cart));
            if *stored_at > updated_at || same {
                result.unchanged += 1;
                continue;
            }
        }
        written.push(hashed);
    }
    result.upserted += written.len() as u64;
    if written.is_empty() {
        return Ok(());
    }
    write_carts(conn, &written)?;
    // An order may have arrived before its cart's snapshot. (Looking for
    // one per cart costs more than all else on a first import, which has
    // none.)
    let orders: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM orders)")?
        .query_row([], |row| row.get(0))?;
    if !orders {
        return Ok(());
    }
    result.marked_ordered +=
        conn.prepare_cached(
            "UPDATE carts SET status = 'ordered'
             WHERE id IN rarray(?1) AND status = 'open' AND (
                EXISTS (SELECT 1 FROM orders o WHERE o.cart_id = carts.id)
                OR EXISTS (SELECT 1 FROM orders o
                           WHERE o.cart_id IS NULL AND o.email_norm = carts.email_norm
                             AND o.created_at >= carts.updated_at))",
        )?
        .execute([ids(written.iter().map(|(cart, ..)| cart.id.clone()))])? as u64;
    Ok(())
}

/// Upserts the carts, `CART_ROWS` to a statement.
fn write_carts(conn: &Connection, carts: &[&Hashed<'_>]) -> rusqlite::Result<()> {
    let mut full =
        conn.prepare_cached(&multi_row(CART_INSERT, CART_VALUES, CART_ROWS, CART_UPSERT))?;
    let mut single = conn.prepare_cached(&multi_row(CART_INSERT, CART_VALUES, 1, CART_UPSERT))?;
    let mut chunks = carts.chunks_exact(CART_ROWS);
    for chunk in &mut chunks {
        bind_carts(&mut full, chunk)?;
        full.raw_execute()?;
    }
    for cart in chunks.remainder() {
        bind_carts(&mut single, std::slice::from_ref(cart))?;
        single.raw_execute()?;
    }
    Ok(())
}

fn bind_carts(
    statement: &mut rusqlite::CachedStatement<'_>,
    carts: &[&Hashed<'_>],
) -> rusqlite::Result<()> {
    let mut at = 1;
    for (cart, hash, items) in carts.iter().copied() {
        let values: [&dyn ToSql; 18] = [
            &cart.id,
            &cart.email,
            &normalize_email(&cart.email),
            &cart.first_name,
            &cart.locale,
            &cart.currency.as_str(),
            &cart.status.as_str(),
            &cart.accepts_marketing,
            &to_unix(cart.created_at),
            &to_unix(cart.updated_at),
            &cart.utc_offset_seconds,
            &cart.total_minor(),
            &cart.item_count(),
            &&hash[..],
            &cart.timezone,
            &cart.phone,
            &cart.sms_consent,
            &items.as_ref(),
        ];
        for value in values {
            statement.raw_bind_parameter(at, value)?;
            at += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::from_unix;

    fn cart(id: &str, at: i64, status: CartStatus, skus: &[&str]) -> Cart {
        Cart {
            id: id.into(),
            email: "Mia@Example.com".into(),
            first_name: "Mia".into(),
            locale: "en".into(),
            currency: "EUR".parse().unwrap(),
            status,
            accepts_marketing: true,
            created_at: from_unix(at - 60),
            updated_at: from_unix(at),
            utc_offset_seconds: Some(3600),
            timezone: String::new(),
            phone: String::new(),
            sms_consent: false,
            items: skus
                .iter()
                .map(|sku| LineItem {
                    sku: (*sku).into(),
                    name: format!("Product {sku}"),
                    category: String::new(),
                    quantity: 1,
                    unit_price_minor: 1250,
                    image_url: String::new(),
                    product_url: String::new(),
                })
                .collect(),
        }
    }

    fn stored(store: &Store, id: &str) -> (String, Vec<String>) {
        let cart = store.cart(id).unwrap().unwrap();
        let skus = cart.items.iter().map(|item| item.sku.clone()).collect();
        (cart.status.as_str().to_string(), skus)
    }

    #[test]
    fn a_batch_writes_like_one_cart_at_a_time() {
        let store = Store::open_in_memory().unwrap();
        let first = store
            .import_carts(&[
                cart("a", 100, CartStatus::Open, &["A1", "A2"]),
                cart("b", 100, CartStatus::Open, &["B1"]),
            ])
            .unwrap();
        assert_eq!((first.upserted, first.unchanged), (2, 0));
        // Same again: unchanged. Older: unchanged. Newer: replaces items.
        let again = store
            .import_carts(&[
                cart("a", 100, CartStatus::Open, &["A1", "A2"]),
                cart("b", 99, CartStatus::Open, &["B9"]),
            ])
            .unwrap();
        assert_eq!((again.upserted, again.unchanged), (0, 2));
        let newer = store
            .import_carts(&[cart("a", 100, CartStatus::Open, &["A3"])])
            .unwrap();
        assert_eq!(newer.upserted, 1, "same time, other content: replaced");
        assert_eq!(stored(&store, "a").1, vec!["A3"]);
        assert_eq!(stored(&store, "b").1, vec!["B1"]);
    }

    #[test]
    fn an_id_twice_in_one_batch_is_written_in_order() {
        let store = Store::open_in_memory().unwrap();
        let done = store
            .import_carts(&[
                cart("a", 100, CartStatus::Ordered, &["A1"]),
                cart("a", 200, CartStatus::Open, &["A2", "A3"]),
                cart("a", 150, CartStatus::Open, &["A4"]),
                cart("a", 200, CartStatus::Open, &["A2", "A3"]),
            ])
            .unwrap();
        assert_eq!((done.upserted, done.unchanged), (2, 2));
        // Ordered stays ordered; the newest snapshot's items.
        assert_eq!(
            stored(&store, "a"),
            (
                "ordered".to_string(),
                vec!["A2".to_string(), "A3".to_string()]
            )
        );
    }

    #[test]
    fn an_order_before_its_cart_marks_it_on_arrival() {
        let store = Store::open_in_memory().unwrap();
        let order = Order {
            id: "o1".into(),
            email: "mia@example.com".into(),
            cart_id: None,
            total_minor: 1250,
            currency: "EUR".parse().unwrap(),
            created_at: from_unix(150),
            skus: Vec::new(),
        };
        store.import_orders(&[order]).unwrap();
        let done = store
            .import_carts(&[
                cart("before", 100, CartStatus::Open, &["A1"]),
                cart("after", 200, CartStatus::Open, &["A1"]),
            ])
            .unwrap();
        assert_eq!(done.marked_ordered, 1);
        assert_eq!(stored(&store, "before").0, "ordered");
        assert_eq!(stored(&store, "after").0, "open");
    }

    #[test]
    fn a_hash_stored_by_the_first_release_still_counts_as_unchanged() {
        let store = Store::open_in_memory().unwrap();
        let snapshot = cart("a", 100, CartStatus::Open, &["A1"]);
        store.import_carts(std::slice::from_ref(&snapshot)).unwrap();
        store
            .conn()
            .execute(
                "UPDATE carts SET snapshot_hash = ?1 WHERE id = 'a'",
                [legacy_snapshot_hash(&snapshot)],
            )
            .unwrap();
        let again = store.import_carts(&[snapshot]).unwrap();
        assert_eq!((again.upserted, again.unchanged), (0, 1));
    }

    #[test]
    fn the_snapshot_hash_is_stable() {
        // Stored in every store: changing the encoding needs a new tag and
        // a fallback like `legacy_snapshot_hash`.
        let hash = snapshot_hash(
            &cart("a", 1_700_000_000, CartStatus::Open, &["A1", "A2"]),
            &mut Vec::new(),
        );
        let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(
            hex,
            "63db882f26edfe499d322eeb8a6f05b7ff8cafa1bdeb97af0bd3dc1f71fec93a"
        );
    }

    fn schema(store: &Store) -> Vec<(String, String)> {
        store
            .conn()
            .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_bulk_load_keeps_the_schema_and_a_broken_one_keeps_nothing() {
        let store = Store::open_in_memory().unwrap();
        let before = schema(&store);
        let carts = [
            cart("a", 100, CartStatus::Open, &["A1"]),
            cart("b", 200, CartStatus::Open, &["B1", "B2"]),
        ];
        // Not finished (a crash, a failed commit): rolled back, indexes kept.
        let bulk = store.begin_bulk_load().unwrap().expect("empty store");
        store.import_carts(&carts).unwrap();
        drop(bulk);
        assert_eq!(schema(&store), before);
        assert!(store.cart("a").unwrap().is_none());
        let foreign_keys: bool = store
            .conn()
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .unwrap();
        assert!(foreign_keys);

        let bulk = store.begin_bulk_load().unwrap().expect("still empty");
        assert_eq!(store.import_carts(&carts).unwrap().upserted, 2);
        bulk.finish().unwrap();
        assert_eq!(schema(&store), before);
        assert_eq!(stored(&store, "b").1, vec!["B1", "B2"]);
        let window = store
            .candidates(from_unix(0), from_unix(1_000))
            .unwrap()
            .into_iter()
            .map(|candidate| candidate.id)
            .collect::<Vec<_>>();
        assert_eq!(window, vec!["a", "b"]);
        // Not into a store that holds carts, nor inside a transaction.
        assert!(store.begin_bulk_load().unwrap().is_none());
        assert!(store.conn().is_autocommit());
        let empty = Store::open_in_memory().unwrap();
        empty.begin_discarded().unwrap();
        assert!(empty.begin_bulk_load().unwrap().is_none());
    }

    fn journal_mode(store: &Store) -> String {
        store
            .conn()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn a_bulk_load_writes_without_the_wal_and_leaves_the_store_in_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recart.db");
        let store = Store::open(&path).unwrap();
        let carts = [
            cart("a", 100, CartStatus::Open, &["A1"]),
            cart("b", 200, CartStatus::Open, &["B1", "B2"]),
        ];
        let bulk = store.begin_bulk_load().unwrap().expect("empty store");
        assert_eq!(journal_mode(&store), "delete");
        store.import_carts(&carts).unwrap();
        drop(bulk);
        assert_eq!(journal_mode(&store), "wal");
        assert!(store.cart("a").unwrap().is_none());

        let bulk = store.begin_bulk_load().unwrap().expect("still empty");
        store.import_carts(&carts).unwrap();
        bulk.finish().unwrap();
        assert_eq!(journal_mode(&store), "wal");
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(stored(&store, "b").1, vec!["B1", "B2"]);

        // With another connection on the store, the load keeps the WAL.
        let other_path = dir.path().join("other.db");
        let store = Store::open(&other_path).unwrap();
        let reader = Store::open(&other_path).unwrap();
        assert!(reader.cart("a").unwrap().is_none());
        let bulk = store.begin_bulk_load().unwrap().expect("empty store");
        assert_eq!(journal_mode(&store), "wal");
        store.import_carts(&carts).unwrap();
        bulk.finish().unwrap();
        assert_eq!(stored(&reader, "b").1, vec!["B1", "B2"]);
    }

    /// Migration 10 moved the items of stored carts into their rows: the
    /// same items come back, in the same order, and the `cart_items` view
    /// shows them as the table did.
    #[test]
    fn migration_10_keeps_the_items_of_stored_carts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recart.db");
        let mut conn = Connection::open(&path).unwrap();
        rusqlite_migration::Migrations::from_slice(super::super::MIGRATIONS)
            .to_version(&mut conn, 9)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO carts (id, email, email_norm, first_name, locale, currency, status,
                    accepts_marketing, created_at, updated_at, total_minor, item_count, snapshot_hash)
             VALUES ('a', 'm@x.org', 'm@x.org', 'Mia', 'en', 'EUR', 'open', 1, 1, 2, 500, 3, x''),
                    ('e', 'e@x.org', 'e@x.org', 'Eve', 'en', 'EUR', 'open', 1, 1, 2, 0, 0, x'');
             INSERT INTO cart_items VALUES
                    ('a', 1, 'S2', 'Sock \"2\"', 'socks', 2, 100, '', 'https://x.org/s2'),
                    ('a', 0, 'S1', 'Schuh ü', 'shoes', 1, 300, 'https://x.org/s1.jpg', '');",
        )
        .unwrap();
        let view_before = view_rows(&conn);
        drop(conn);

        let store = Store::open(&path).unwrap();
        let a = store.cart("a").unwrap().unwrap();
        let items: Vec<(&str, &str, &str, u32, i64, &str, &str)> = a
            .items
            .iter()
            .map(|item| {
                (
                    item.sku.as_str(),
                    item.name.as_str(),
                    item.category.as_str(),
                    item.quantity,
                    item.unit_price_minor,
                    item.image_url.as_str(),
                    item.product_url.as_str(),
                )
            })
            .collect();
        assert_eq!(
            items,
            vec![
                ("S1", "Schuh ü", "shoes", 1, 300, "https://x.org/s1.jpg", ""),
                ("S2", "Sock \"2\"", "socks", 2, 100, "", "https://x.org/s2"),
            ]
        );
        assert!(store.cart("e").unwrap().unwrap().items.is_empty());
        assert_eq!(view_rows(store.conn()), view_before);
    }

    fn view_rows(conn: &Connection) -> Vec<String> {
        conn.prepare(
            "SELECT cart_id || '|' || position || '|' || sku || '|' || name || '|' || category
                    || '|' || quantity || '|' || unit_price_minor || '|' || image_url
                    || '|' || product_url
             FROM cart_items ORDER BY cart_id, position",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    #[test]
    fn a_batch_that_fails_rolls_the_bulk_load_back() {
        let store = Store::open_in_memory().unwrap();
        let before = schema(&store);
        store
            .conn()
            .execute_batch(
                "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.carts WHEN NEW.id = 'boom'
                 BEGIN SELECT RAISE(ABORT, 'boom'); END",
            )
            .unwrap();
        let bulk = store.begin_bulk_load().unwrap().expect("empty store");
        store
            .import_carts(&[cart("a", 100, CartStatus::Open, &["A1"])])
            .unwrap();
        assert!(
            store
                .import_carts(&[cart("boom", 100, CartStatus::Open, &["B1"])])
                .is_err()
        );
        bulk.finish().unwrap();
        assert!(store.cart("a").unwrap().is_none());
        assert_eq!(schema(&store), before);
        // Batches commit one by one again.
        store
            .import_carts(&[cart("a", 100, CartStatus::Open, &["A1"])])
            .unwrap();
        assert!(store.conn().is_autocommit());
    }

    #[test]
    fn candidates_come_in_window_order_with_their_items_and_bad_items_fail() {
        let store = Store::open_in_memory().unwrap();
        // More than a few of the parser's chunks, and one cart out of the
        // window at each end.
        let carts: Vec<Cart> = (0..1_300)
            .map(|n| {
                cart(
                    &format!("c{n:04}"),
                    1_000 + n,
                    CartStatus::Open,
                    &["A", "B"],
                )
            })
            .collect();
        store.import_carts(&carts).unwrap();
        let found = store
            .candidates(from_unix(1_001), from_unix(2_298))
            .unwrap();
        let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
        let expected: Vec<String> = (1..1_299).map(|n| format!("c{n:04}")).collect();
        assert_eq!(ids, expected);
        assert!(found.iter().all(|c| c.items.len() == 2
            && c.items[1].sku == "B"
            && c.items[1].line_total_minor == 1250));
        store
            .conn()
            .execute("UPDATE carts SET items = '[[\"A\"' WHERE id = 'c0700'", [])
            .unwrap();
        let error = store
            .candidates(from_unix(1_001), from_unix(2_298))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the stored items are not valid: cart c0700: "),
            "{error}"
        );
    }

    #[test]
    fn many_carts_in_several_statements() {
        let store = Store::open_in_memory().unwrap();
        let carts: Vec<Cart> = (0..(CART_ROWS * 2 + 5))
            .map(|n| cart(&format!("c{n}"), 100, CartStatus::Open, &["A", "B", "C"]))
            .collect();
        let done = store.import_carts(&carts).unwrap();
        assert_eq!(done.upserted, carts.len() as u64);
        let items: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM cart_items", [], |row| row.get(0))
            .unwrap();
        assert_eq!(items, carts.len() as i64 * 3);
    }
}
