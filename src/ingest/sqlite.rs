//! A shop's own `SQLite` database as a source (see [`super::database`]):
//! `:since` is bound to the stored watermark, `items_query` takes one
//! cart's id as `:cart_id`. The database is opened read-only.

use std::path::Path;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

use super::database::{Cell, DatabaseSource, Feed, Since};

/// Runs the source's queries on the file, opened read-only; each cart's
/// items are queried by `:cart_id` (in-process: a query per cart costs
/// microseconds).
pub(super) fn run(
    source: &DatabaseSource,
    path: &Path,
    since: &Since,
    feed: &mut Feed,
) -> Result<()> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| Error::Input {
        path: path.to_path_buf(),
        message: format!("cannot open read-only: {error}"),
    })?;
    let mut carts = conn
        .prepare(&source.carts_query)
        .map_err(|error| feed.fail("carts_query", error))?;
    let mut items = conn
        .prepare(&source.items_query)
        .map_err(|error| feed.fail("items_query", error))?;
    let Some(cart_id_parameter) = items.parameter_index(":cart_id").ok().flatten() else {
        return Err(feed.fail(
            "items_query",
            "has no :cart_id parameter (expected e.g. WHERE cart_id = :cart_id)",
        ));
    };
    feed.carts_columns(&names(&carts))?;
    feed.items_columns(&names(&items), false)?;
    bind_since(&mut carts, since.carts.as_ref(), "carts_query", feed)?;
    let mut rows = carts.raw_query();
    while let Some(row) = rows
        .next()
        .map_err(|error| feed.fail("carts_query", error))?
    {
        let cart = cells(row).map_err(|error| feed.fail("carts_query", error))?;
        let id = feed
            .cart_id_column()
            .map_or(Value::Null, |column| value(&cart[column]));
        items
            .raw_bind_parameter(cart_id_parameter, id)
            .map_err(|error| feed.fail("items_query", error))?;
        let mut lines = Vec::new();
        let mut item_rows = items.raw_query();
        while let Some(item) = item_rows
            .next()
            .map_err(|error| feed.fail("items_query", error))?
        {
            lines.push(cells(item).map_err(|error| feed.fail("items_query", error))?);
        }
        if !feed.carts(&[cart], &lines) {
            return Ok(());
        }
    }
    feed.carts_done();
    if let Some(query) = &source.orders_query {
        let mut orders = conn
            .prepare(query)
            .map_err(|error| feed.fail("orders_query", error))?;
        feed.orders_columns(&names(&orders))?;
        bind_since(&mut orders, since.orders.as_ref(), "orders_query", feed)?;
        let mut rows = orders.raw_query();
        let mut batch = Vec::new();
        while let Some(row) = rows
            .next()
            .map_err(|error| feed.fail("orders_query", error))?
        {
            batch.push(cells(row).map_err(|error| feed.fail("orders_query", error))?);
            if batch.len() == super::database::BATCH {
                if !feed.orders(&batch) {
                    return Ok(());
                }
                batch.clear();
            }
        }
        feed.orders(&batch);
    }
    Ok(())
}

/// Runs each of `queries` once, wrapped to return at most one row
/// (`recart check`), `:since` and `:cart_id` NULL.
pub(super) fn probe(
    path: &Path,
    queries: &[(&'static str, &str)],
) -> std::result::Result<(), (&'static str, String)> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| ("connect", format!("cannot open read-only: {error}")))?;
    for &(name, query) in queries {
        let mut statement = conn
            .prepare(&super::database::at_most_one_row(query))
            .map_err(|error| (name, error.to_string()))?;
        let columns = names(&statement);
        let mut rows = statement.raw_query();
        rows.next().map_err(|error| (name, error.to_string()))?;
        super::database::probe_columns(name, &columns, false).map_err(|error| (name, error))?;
    }
    Ok(())
}

fn names(statement: &rusqlite::Statement<'_>) -> Vec<String> {
    statement
        .column_names()
        .into_iter()
        .map(ToString::to_string)
        .collect()
}

fn bind_since(
    statement: &mut rusqlite::Statement<'_>,
    since: Option<&Value>,
    query: &str,
    feed: &Feed,
) -> Result<()> {
    if let Some(index) = statement
        .parameter_index(":since")
        .map_err(|error| feed.fail(query, error))?
    {
        statement
            .raw_bind_parameter(index, since.cloned().unwrap_or(Value::Null))
            .map_err(|error| feed.fail(query, error))?;
    }
    Ok(())
}

fn cells(row: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<Cell>> {
    (0..row.as_ref().column_count())
        .map(|index| {
            Ok(match row.get_ref(index)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(number) => Cell::Int(number),
                ValueRef::Real(number) => Cell::Float(number),
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Cell::Text(bytes.to_vec()),
            })
        })
        .collect()
}

/// A cell bound back as the parameter it came from.
fn value(cell: &Cell) -> Value {
    match cell {
        Cell::Int(number) => Value::Integer(*number),
        Cell::Float(number) => Value::Real(*number),
        Cell::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::Text(text.to_string()),
            Err(_) => Value::Blob(bytes.clone()),
        },
        _ => Value::Null,
    }
}

/// Reads one `SQLite` file as a test would.
#[cfg(test)]
pub(crate) fn read_all(
    source: &DatabaseSource,
    since: Option<Value>,
) -> Result<(super::Parsed, Option<Value>)> {
    let mut parsed = super::Parsed::default();
    let since = Since {
        carts: since,
        orders: None,
    };
    let read = super::database::read(source, since, None, &mut parsed)?;
    parsed.summary = read.carts;
    Ok((parsed, read.watermark))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::database::Kind;
    use chrono::DateTime;
    use std::path::PathBuf;

    /// A shop's own schema, unlike recart's: integer times, REAL prices.
    fn shop_db(dir: &std::path::Path) -> PathBuf {
        let path = dir.join("shop.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE quotes (id INTEGER PRIMARY KEY, customer_email TEXT, currency TEXT,
                                  opted_in INTEGER, modified INTEGER, state TEXT);
             CREATE TABLE quote_lines (quote_id INTEGER, sku TEXT, title TEXT, qty INTEGER,
                                       price REAL);
             INSERT INTO quotes VALUES
               (1, 'mia@example.com', 'EUR', 1, 1772800000, 'open'),
               (2, 'ben@example.com', 'EUR', 0, 1772800100, 'open'),
               (3, 'not an address', 'EUR', 1, 1772800200, 'open');
             INSERT INTO quote_lines VALUES
               (1, 'TENT-2', 'Tent', 1, 249.0), (1, 'MAT-1', 'Mat', 2, 19.99),
               (2, 'SOCK', 'Socks', 3, 12.5),
               (3, 'SOCK', 'Socks', 1, 12.5);",
        )
        .unwrap();
        path
    }

    fn source(path: PathBuf) -> DatabaseSource {
        DatabaseSource {
            kind: Kind::Sqlite(path),
            carts_query: "SELECT id AS cart_id, customer_email AS email, currency,
                                 opted_in AS accepts_marketing, modified AS updated_at,
                                 state AS status
                          FROM quotes WHERE :since IS NULL OR modified >= :since
                          ORDER BY modified"
                .into(),
            items_query: "SELECT sku, title AS product_name, qty AS quantity, price AS unit_price
                          FROM quote_lines WHERE quote_id = :cart_id ORDER BY rowid"
                .into(),
            orders_query: None,
            date_format: None,
            timezone: chrono_tz::Tz::UTC,
            timeout: std::time::Duration::from_mins(1),
            password_env: None,
            password_file: None,
        }
    }

    fn path(source: &DatabaseSource) -> PathBuf {
        source.name()
    }

    #[test]
    fn reads_carts_with_items_validated_like_csv_rows() {
        let dir = tempfile::tempdir().unwrap();
        let source = source(shop_db(dir.path()));
        let (parsed, watermark) = read_all(&source, None).unwrap();
        assert_eq!(parsed.summary.rows, 4);
        assert_eq!(parsed.carts.len(), 2);
        let mia = &parsed.carts[0];
        assert_eq!(mia.id, "1");
        assert!(mia.accepts_marketing);
        assert_eq!(mia.updated_at.timestamp(), 1_772_800_000);
        assert_eq!(mia.utc_offset_seconds, None, "unix seconds give no offset");
        assert_eq!(mia.total_minor(), 24_900 + 2 * 1_999);
        assert_eq!(parsed.carts[1].items[0].unit_price_minor, 1_250);
        // The bad cart: the source, its row, its field, its cart id.
        assert_eq!(parsed.errors.len(), 1);
        let error = &parsed.errors[0];
        assert_eq!(error.path, path(&source));
        assert_eq!((error.line, error.field.as_str()), (3, "email"));
        assert!(error.message.contains("cart 3 not imported"), "{error}");
        // The newest cart read, as the shop's database holds it.
        assert_eq!(watermark, Some(Value::Integer(1_772_800_200)));
    }

    #[test]
    fn the_watermark_is_bound_as_since() {
        let dir = tempfile::tempdir().unwrap();
        let source = source(shop_db(dir.path()));
        let (parsed, _) = read_all(&source, Some(Value::Integer(1_772_800_100))).unwrap();
        assert_eq!(parsed.summary.rows, 2, "quotes 2 and 3 only");
        assert_eq!(parsed.carts.len(), 1);
        let (parsed, watermark) = read_all(&source, Some(Value::Integer(1_900_000_000))).unwrap();
        assert_eq!(parsed.summary.rows, 0);
        assert_eq!(watermark, None);
    }

    /// A cart dated more than a day after now is rejected and leaves the
    /// watermark where the carts before it put it: once the shop fixes the
    /// row, the next run reads it.
    #[test]
    fn a_cart_from_the_future_does_not_move_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let source = source(shop_db(dir.path()));
        let now = DateTime::from_timestamp(1_772_800_100, 0);
        let conn = Connection::open(path(&source)).unwrap();
        conn.execute("UPDATE quotes SET modified = 1900000000 WHERE id = 2", [])
            .unwrap();
        let mut parsed = super::super::Parsed::default();
        let since = Since {
            carts: None,
            orders: None,
        };
        let read = super::super::database::read(&source, since, now, &mut parsed).unwrap();
        let fields: Vec<&str> = parsed.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "updated_at"]);
        assert_eq!(read.watermark, Some(Value::Integer(1_772_800_200)));
    }

    #[test]
    fn query_problems_name_the_query() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = source(shop_db(dir.path()));
        bad.carts_query = "SELECT id AS cart_id, customer_email AS emial FROM quotes".into();
        let error = read_all(&bad, None).unwrap_err().to_string();
        assert!(
            error.contains("carts_query") && error.contains("emial"),
            "{error}"
        );
        let mut bad = source(path(&bad));
        bad.items_query =
            "SELECT sku, qty AS quantity, price AS unit_price FROM quote_lines".into();
        let error = read_all(&bad, None).unwrap_err().to_string();
        assert!(error.contains(":cart_id"), "{error}");
        let mut bad = source(path(&bad));
        bad.carts_query = "SELEKT 1".into();
        let error = read_all(&bad, None).unwrap_err().to_string();
        assert!(error.contains("carts_query"), "{error}");
    }

    #[test]
    fn the_database_is_opened_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut source = source(shop_db(dir.path()));
        source.carts_query = "DELETE FROM quotes RETURNING id AS cart_id, customer_email AS email,
                              currency, modified AS updated_at"
            .into();
        assert!(read_all(&source, None).is_err());
        let conn = Connection::open(path(&source)).unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM quotes", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 3);
    }

    /// The watermark moves after each stored batch, not at the end of the
    /// read: a store that fails at the second batch keeps the first
    /// batch's newest `updated_at`.
    #[test]
    fn the_watermark_moves_after_each_stored_batch() {
        struct FailsAtSecondBatch(usize);
        impl crate::ingest::Sink for FailsAtSecondBatch {
            fn carts(&mut self, _: Vec<crate::model::Cart>) -> Result<()> {
                self.0 += 1;
                if self.0 == 2 {
                    return Err(crate::error::Error::Usage("the store is full".into()));
                }
                Ok(())
            }
            fn orders(&mut self, _: Vec<crate::model::Order>) -> Result<()> {
                Ok(())
            }
            fn rejected(&mut self, _: crate::ingest::RowError) -> Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = shop_db(dir.path());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 10 UNION ALL SELECT i + 1 FROM n WHERE i < 2509)
             INSERT INTO quotes SELECT i, 'p' || i || '@example.com', 'EUR', 1, 1772900000 + i,
                                       'open' FROM n;",
        )
        .unwrap();
        let mut marks = Vec::new();
        let since = Since {
            carts: None,
            orders: None,
        };
        let read = super::super::database::read_marking(
            &source(path),
            since,
            None,
            &mut FailsAtSecondBatch(0),
            &mut |value| {
                marks.push(value);
                Ok(())
            },
            None,
        );
        // The store's own error, not the grouping's "reading stopped": the
        // batches are grouped on a thread of their own and stored here.
        let error = read.err().expect("the store failed").to_string();
        assert!(error.contains("the store is full"), "{error}");
        // The first 2,000 carts: quotes 1 to 3, then 10 to 2006.
        assert_eq!(marks, [Value::Integer(1_772_902_006)]);
    }
}
