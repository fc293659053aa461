//! Cart snapshots: set-wise upserts of a batch, a snapshot replacing the
//! stored cart only when it is not older and not the same.

use std::collections::{HashMap, HashSet};

use postgres::types::Type;
use rusqlite::{Connection, ToSql};

use crate::error::Result;
use crate::model::{Cart, Snapshot, normalize_email};

use super::engine::{DbResult, Engine, args};
use super::items::encode_items;
use super::snapshot::{legacy_snapshot_hash, snapshot_hash};
use super::staging::{Staging, stage};
use super::{Store, ids, to_unix};

/// What importing a batch of carts did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CartImport {
    pub upserted: u64,
    pub unchanged: u64,
    pub marked_ordered: u64,
    /// Snapshots of forgotten people, dropped.
    pub forgotten: u64,
}

/// Carts per multi-row INSERT (18 parameters each).
pub(super) const CART_ROWS: usize = 32;

/// The columns a snapshot writes, in the order it binds them.
macro_rules! cart_columns {
    () => {
        "id, email, email_norm, first_name, locale, currency, status,
                            accepts_marketing, created_at, updated_at, utc_offset, total_minor,
                            item_count, snapshot_hash, timezone, phone, sms_consent, items"
    };
}

const CART_INSERT: &str = concat!("INSERT INTO carts (", cart_columns!(), ") VALUES ");
const CART_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// What a snapshot replaces of a stored cart.
macro_rules! cart_upsert {
    () => {
        " ON CONFLICT (id) DO UPDATE SET
            email = excluded.email, email_norm = excluded.email_norm,
            first_name = excluded.first_name, locale = excluded.locale,
            currency = excluded.currency,
            -- a bought cart stays bought: never reopened by a snapshot
            status = CASE WHEN carts.status = 'ordered' THEN 'ordered' ELSE excluded.status END,
            accepts_marketing = excluded.accepts_marketing, created_at = excluded.created_at,
            updated_at = excluded.updated_at, utc_offset = excluded.utc_offset,
            total_minor = excluded.total_minor, item_count = excluded.item_count,
            snapshot_hash = excluded.snapshot_hash, timezone = excluded.timezone,
            phone = excluded.phone, sms_consent = excluded.sms_consent, items = excluded.items"
    };
}

const CART_UPSERT: &str = cart_upsert!();

/// `head`, `rows` copies of `values` separated by commas, then `tail`: one
/// INSERT statement for many rows.
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

impl Store {
    /// Stores cart snapshots. A snapshot replaces the stored cart (items
    /// included) only if it is not older; the same snapshot again changes
    /// nothing. An `ordered` cart stays ordered whatever a snapshot says, and
    /// a cart that has an order already is marked ordered on arrival. A
    /// forgotten person's snapshots are dropped, and counted.
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
        self.write_db(|db| {
            let mut result = CartImport::default();
            let kept: Vec<Hashed<'_>>;
            let carts = match self.forgotten_in(db)? {
                None => carts,
                Some(forgotten) => {
                    kept = carts
                        .iter()
                        .filter(|(cart, ..)| !forgotten.contains(&cart.email))
                        .cloned()
                        .collect();
                    result.forgotten = (carts.len() - kept.len()) as u64;
                    &kept
                }
            };
            // The batch is written set-wise, which needs distinct ids: a run
            // of carts is cut where an id comes back, so the later snapshot
            // meets the earlier one as stored, as if written one by one.
            let mut seen: HashSet<&str> = HashSet::with_capacity(carts.len());
            let mut start = 0;
            for (index, (cart, ..)) in carts.iter().enumerate() {
                if !seen.insert(&cart.id) {
                    import_distinct(db, &carts[start..index], &mut result)?;
                    start = index;
                    seen.clear();
                    seen.insert(&cart.id);
                }
            }
            import_distinct(db, &carts[start..], &mut result)?;
            Ok(result)
        })
    }
}

/// Imports carts whose ids are distinct: one SELECT of what is stored, the
/// carts that replace it written (see [`write_carts`] and
/// [`write_carts_postgres`]), one UPDATE for the carts whose order came
/// first.
fn import_distinct(db: &Engine, carts: &[Hashed<'_>], result: &mut CartImport) -> DbResult<()> {
    if carts.is_empty() {
        return Ok(());
    }
    let stored = stored_snapshots(db, carts)?;
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
    if written.is_empty() {
        return Ok(());
    }
    let Some(conn) = db.sqlite() else {
        return write_carts_postgres(db, &written, result);
    };
    result.upserted += written.len() as u64;
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

/// The stored update time and snapshot hash of those of `carts` that are
/// stored, by id.
fn stored_snapshots(
    db: &Engine,
    carts: &[Hashed<'_>],
) -> DbResult<HashMap<String, (i64, Vec<u8>)>> {
    const SELECT: &str = "SELECT c.id, c.updated_at, c.snapshot_hash
             FROM rarray(?1) AS a JOIN carts AS c ON c.id = a.value";
    let mut stored: HashMap<String, (i64, Vec<u8>)> = HashMap::with_capacity(carts.len());
    if let Some(conn) = db.sqlite() {
        let mut select = conn.prepare_cached(SELECT)?;
        let mut rows = select.query([ids(carts.iter().map(|(cart, ..)| cart.id.clone()))])?;
        while let Some(row) = rows.next()? {
            stored.insert(row.get(0)?, (row.get(1)?, row.get(2)?));
        }
    } else {
        let keys: Vec<String> = carts.iter().map(|(cart, ..)| cart.id.clone()).collect();
        db.each(SELECT, args![&keys], |row| {
            stored.insert(row.get(0)?, (row.get(1)?, row.get(2)?));
            Ok(())
        })?;
    }
    Ok(stored)
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

/// The staging table of a batch's carts on PostgreSQL: `carts`' columns.
const CART_STAGING: Staging = Staging {
    name: "import_carts",
    columns: "id TEXT, email TEXT, email_norm TEXT, first_name TEXT, locale TEXT, currency TEXT,
              status TEXT, accepts_marketing BIGINT, created_at BIGINT, updated_at BIGINT,
              utc_offset BIGINT, total_minor BIGINT, item_count BIGINT, snapshot_hash BYTEA,
              timezone TEXT, phone TEXT, sms_consent BIGINT, items TEXT",
    copied: cart_columns!(),
    types: &[
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::BYTEA,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
    ],
};

/// Upserts the carts on PostgreSQL: copied into the staging table, then
/// one INSERT from there (which replaces a stored cart only if the
/// snapshot is still newer or other, should another import have written
/// it meanwhile), then one UPDATE for the carts whose order came first.
fn write_carts_postgres(
    db: &Engine,
    carts: &[&Hashed<'_>],
    result: &mut CartImport,
) -> DbResult<()> {
    stage(db, &CART_STAGING, |writer| {
        for (cart, hash, items) in carts.iter().copied() {
            writer.write(&[
                &cart.id,
                &cart.email,
                &normalize_email(&cart.email),
                &cart.first_name,
                &cart.locale,
                &cart.currency.as_str(),
                &cart.status.as_str(),
                &i64::from(cart.accepts_marketing),
                &to_unix(cart.created_at),
                &to_unix(cart.updated_at),
                &cart.utc_offset_seconds.map(i64::from),
                &cart.total_minor(),
                &cart.item_count(),
                &&hash[..],
                &cart.timezone,
                &cart.phone,
                &i64::from(cart.sms_consent),
                &items.as_ref(),
            ])?;
        }
        Ok(())
    })?;
    let upserted = db.execute(
        concat!(
            "INSERT INTO carts (",
            cart_columns!(),
            ") SELECT ",
            cart_columns!(),
            " FROM import_carts",
            cart_upsert!(),
            "
         WHERE carts.updated_at < excluded.updated_at
            OR (carts.updated_at = excluded.updated_at
                AND carts.snapshot_hash <> excluded.snapshot_hash)"
        ),
        args![],
    )?;
    result.upserted += upserted;
    result.unchanged += carts.len() as u64 - upserted;
    if !db.value::<bool>("SELECT EXISTS (SELECT 1 FROM orders)", args![])? {
        return Ok(());
    }
    result.marked_ordered += db.execute(
        "UPDATE carts SET status = 'ordered' FROM import_carts AS s
         WHERE carts.id = s.id AND carts.status = 'open' AND (
            EXISTS (SELECT 1 FROM orders o WHERE o.cart_id = carts.id)
            OR EXISTS (SELECT 1 FROM orders o
                       WHERE o.cart_id IS NULL AND o.email_norm = carts.email_norm
                         AND o.created_at >= carts.updated_at))",
        args![],
    )?;
    Ok(())
}

/// Binds the columns of `carts`, one row after another, to a multi-row
/// upsert.
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
pub(super) mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::model::{CartStatus, LineItem, Order};
    use crate::store::testing::both_stores;
    use crate::store::{forget_hash, from_unix};

    /// Every row `sql` reads (its first `columns` columns), as text to
    /// compare between engines.
    pub(in crate::store) fn dump(store: &Store, sql: &str, columns: usize) -> Vec<String> {
        let mut rows = Vec::new();
        store
            .db()
            .each(sql, args![], |row| {
                let values = (0..columns)
                    .map(|index| row.get::<Value>(index))
                    .collect::<DbResult<Vec<_>>>()?;
                rows.push(format!("{values:?}"));
                Ok(())
            })
            .unwrap();
        rows
    }

    pub(in crate::store) fn all_carts(store: &Store) -> Vec<String> {
        dump(
            store,
            concat!("SELECT ", cart_columns!(), " FROM carts ORDER BY id"),
            18,
        )
    }

    /// Forgets `email` as `forget` does, for the import to drop it.
    pub(in crate::store) fn forgotten(store: &Store, email: &str) {
        store
            .db()
            .execute(
                "INSERT INTO forgotten (email_hash, created_at) VALUES (?1, 0)",
                args![&forget_hash(email)],
            )
            .unwrap();
    }

    pub(in crate::store) fn cart(id: &str, email: &str, at: i64, status: CartStatus) -> Cart {
        Cart {
            id: id.into(),
            email: email.into(),
            // Text the COPY must carry as it is.
            first_name: "Zoë \\N\t\"x\"\n'y'".into(),
            locale: "sv".into(),
            currency: "SEK".parse().unwrap(),
            status,
            accepts_marketing: at % 2 == 0,
            created_at: from_unix(at - 60),
            updated_at: from_unix(at),
            utc_offset_seconds: (at % 3 != 0).then_some(-18_000),
            timezone: "Europe/Stockholm".into(),
            phone: "+46 70 000".into(),
            sms_consent: at % 2 == 1,
            items: vec![LineItem {
                sku: format!("SKU-{at}"),
                name: "Sko, röd".into(),
                category: "shoes".into(),
                quantity: 2,
                unit_price_minor: at,
                image_url: String::new(),
                product_url: "https://shop.example/p?a=1&b=2".into(),
            }],
        }
    }

    fn order(id: &str, email: &str, cart_id: Option<&str>, at: i64) -> Order {
        Order {
            id: id.into(),
            email: email.into(),
            cart_id: cart_id.map(Into::into),
            total_minor: 999,
            currency: "SEK".parse().unwrap(),
            created_at: from_unix(at),
            skus: vec!["S1".into()],
        }
    }

    fn counts(done: CartImport) -> [u64; 4] {
        [
            done.upserted,
            done.unchanged,
            done.marked_ordered,
            done.forgotten,
        ]
    }

    /// The same batches on both engines: the same counts (as `SQLite`
    /// always gave them) and the same stored carts.
    #[test]
    fn both_engines_import_carts_alike() {
        let mut outcomes = Vec::new();
        for (engine, store) in both_stores("recart_unit_import_carts_alike") {
            forgotten(&store, "gone@example.com");
            let first = vec![
                cart("a", "a@example.com", 100, CartStatus::Open),
                cart("b", "B@Example.com", 100, CartStatus::Open),
                cart("c", "c@example.com", 99, CartStatus::Ordered),
                cart("g", " Gone@Example.com", 100, CartStatus::Open),
            ];
            let mut seen = vec![counts(store.import_carts(&first).unwrap())];
            assert_eq!(seen[0], [3, 0, 0, 1], "{engine}: the forgotten one dropped");
            // An order closes its cart (by id, and by address).
            let orders = store
                .import_orders(&[
                    order("o1", "a@example.com", Some("a"), 200),
                    order("o2", "b@example.com", None, 150),
                    order("o3", "e@example.com", None, 300),
                ])
                .unwrap();
            assert_eq!((orders.added, orders.marked_ordered), (3, 2), "{engine}");
            let second = vec![
                // Same again: unchanged, and still ordered.
                cart("a", "a@example.com", 100, CartStatus::Open),
                // Newer: written, but a bought cart stays bought.
                cart("b", "B@Example.com", 120, CartStatus::Open),
                // New, and its order came first.
                cart("e", "E@example.com", 250, CartStatus::Open),
                // Older than the one before it in the batch: unchanged.
                cart("e", "E@example.com", 240, CartStatus::Open),
                // Same time, other content: written, but still ordered.
                cart("c", "c@example.com", 99, CartStatus::Closed),
                cart("g", "gone@example.com", 400, CartStatus::Open),
            ];
            seen.push(counts(store.import_carts(&second).unwrap()));
            assert_eq!(seen[1], [3, 2, 1, 1], "{engine}");
            seen.push(counts(
                store.import_snapshots(&Snapshot::hash_all(second)).unwrap(),
            ));
            assert_eq!(seen[2], [0, 5, 0, 1], "{engine}: re-import unchanged");
            let statuses = dump(&store, "SELECT id, status FROM carts ORDER BY id", 2);
            assert_eq!(
                statuses,
                [
                    r#"[Text("a"), Text("ordered")]"#,
                    r#"[Text("b"), Text("ordered")]"#,
                    r#"[Text("c"), Text("ordered")]"#,
                    r#"[Text("e"), Text("ordered")]"#,
                ],
                "{engine}"
            );
            outcomes.push((engine, seen, all_carts(&store)));
        }
        for (engine, seen, rows) in &outcomes[1..] {
            assert_eq!(seen, &outcomes[0].1, "{engine}: counts");
            assert_eq!(rows, &outcomes[0].2, "{engine}: stored carts");
        }
    }

    /// A dry run's batches share its transaction: each staging table is
    /// emptied before use, and each batch sees the one before.
    #[test]
    fn batches_of_a_dry_run_see_each_other() {
        for (engine, store) in both_stores("recart_unit_import_dry_run") {
            store.begin_discarded().unwrap();
            let batch = [
                cart("a", "a@example.com", 100, CartStatus::Open),
                cart("b", "b@example.com", 100, CartStatus::Open),
            ];
            let first = store.import_carts(&batch).unwrap();
            assert_eq!(counts(first), [2, 0, 0, 0], "{engine}");
            let again = store.import_carts(&batch[1..]).unwrap();
            assert_eq!(counts(again), [0, 1, 0, 0], "{engine}");
            assert_eq!(all_carts(&store).len(), 2, "{engine}");
        }
    }

    /// A batch that fails in the transaction that made the staging table
    /// takes the table with it: the next batch makes it again.
    #[test]
    fn a_batch_after_a_failed_first_one_is_staged_again() {
        for (engine, store) in both_stores("recart_unit_import_failed_first") {
            if engine == "sqlite" {
                continue;
            }
            let mut bad = cart("a", "a@example.com", 100, CartStatus::Open);
            // PostgreSQL's text holds no NUL (the input refuses them).
            bad.first_name = "A\0".into();
            assert!(store.import_carts(&[bad]).is_err(), "{engine}");
            let done = store
                .import_carts(&[cart("a", "a@example.com", 100, CartStatus::Open)])
                .unwrap();
            assert_eq!(counts(done), [1, 0, 0, 0], "{engine}");
        }
    }
}
