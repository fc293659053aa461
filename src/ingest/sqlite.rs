//! A shop's own `SQLite` database as a source: `carts_query` returns one row
//! per cart (native field names as columns, `:since` bound to the stored
//! watermark), `items_query` the items of one cart (`:cart_id`). The rows
//! are turned into native rows — cart fields beside each item's — and read
//! by the native grouping, so they are validated exactly like CSV rows.
//!
//! The database is opened read-only. The queries run on a thread that
//! hands rows over a bounded channel: memory stays one batch, as for files.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

use super::table::Table;
use super::{Format, Options, Sink, Summary, TimeFormat, group, native};

/// Cart fields `carts_query` may return.
pub const CART_FIELDS: &[&str] = &[
    "cart_id",
    "email",
    "first_name",
    "locale",
    "currency",
    "status",
    "accepts_marketing",
    "created_at",
    "updated_at",
    "timezone",
];

/// Item fields `items_query` may return.
pub const ITEM_FIELDS: &[&str] = &[
    "sku",
    "product_name",
    "category",
    "quantity",
    "unit_price",
    "image_url",
    "product_url",
];

const CARTS_REQUIRED: &[&str] = &["cart_id", "email", "currency", "updated_at"];
const ITEMS_REQUIRED: &[&str] = &["quantity", "unit_price"];

/// A `[[sources]] sqlite = …` source.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    pub path: PathBuf,
    pub carts_query: String,
    pub items_query: String,
    pub date_format: Option<String>,
}

impl SqliteSource {
    /// The key its watermark is stored under: a changed query starts over.
    pub fn watermark_key(&self) -> String {
        format!("sqlite:{}\n{}", self.path.display(), self.carts_query)
    }
}

/// What a read found: the summary, and the new watermark — the
/// `updated_at` value (as the shop's database holds it) of the newest cart
/// read, or `None` when no cart was read.
pub struct Read {
    pub summary: Summary,
    pub watermark: Option<Value>,
}

/// Reads the carts `carts_query` returns for `since` (NULL on the first
/// run), with their items, into `sink`. A cart last active more than a day
/// after `now` is rejected, and does not move the watermark: its corrected
/// row is read on the next run.
pub fn read(
    source: &SqliteSource,
    since: Option<Value>,
    now: Option<DateTime<Utc>>,
    sink: &mut dyn Sink,
) -> Result<Read> {
    let fail = |message: String| Error::Input {
        path: source.path.clone(),
        message,
    };
    let conn = Connection::open_with_flags(
        &source.path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| fail(format!("cannot open read-only: {error}")))?;
    let (carts_columns, items_columns) = {
        let carts = conn
            .prepare(&source.carts_query)
            .map_err(|error| fail(format!("carts_query: {error}")))?;
        let items = conn
            .prepare(&source.items_query)
            .map_err(|error| fail(format!("items_query: {error}")))?;
        if items.parameter_index(":cart_id").ok().flatten().is_none() {
            return Err(fail(
                "items_query: has no :cart_id parameter (expected e.g. WHERE cart_id = :cart_id)"
                    .into(),
            ));
        }
        (
            columns(&carts, "carts_query", CART_FIELDS, CARTS_REQUIRED).map_err(fail)?,
            columns(&items, "items_query", ITEM_FIELDS, ITEMS_REQUIRED).map_err(fail)?,
        )
    };
    let (sender, receiver) = mpsc::sync_channel::<Message>(1024);
    let job = Job {
        conn,
        source: source.clone(),
        carts_columns,
        items_columns,
        since,
        times: TimeFormat::new(source.date_format.clone(), now),
    };
    let worker = std::thread::spawn(move || {
        let sender_for_error = sender.clone();
        if let Err(error) = job.run(&sender) {
            let _ = sender_for_error.send(Message::Failed(error));
        }
    });
    let watermark = Rc::new(RefCell::new(None));
    let records = Records {
        receiver,
        watermark: Rc::clone(&watermark),
    };
    let names = CART_FIELDS
        .iter()
        .chain(ITEM_FIELDS)
        .map(ToString::to_string)
        .collect();
    let mut table = Table::from_records(&source.path, names, Box::new(records));
    let times = TimeFormat::new(source.date_format.clone(), now);
    let options = Options {
        now,
        ..Options::format(Format::Native)
    };
    let result = group::read(&mut table, &native::Carts { times }, &options, sink);
    drop(table);
    let _ = worker.join();
    let mut summary = result?;
    summary.format = Some(Format::Native);
    let watermark = watermark.borrow_mut().take();
    Ok(Read { summary, watermark })
}

/// For each field, the query's column holding it.
fn columns(
    statement: &rusqlite::Statement<'_>,
    query: &str,
    fields: &[&str],
    required: &[&str],
) -> std::result::Result<Vec<Option<usize>>, String> {
    let names = statement.column_names();
    for name in &names {
        if !fields.contains(name) {
            return Err(format!(
                "{query}: returns a column {name:?}, which is not a field it can give \
                 (expected {}); rename it with AS",
                fields.join(", ")
            ));
        }
    }
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|field| !names.contains(field))
        .collect();
    if !missing.is_empty() {
        return Err(format!("{query}: returns no column {}", missing.join(", ")));
    }
    Ok(fields
        .iter()
        .map(|field| names.iter().position(|name| name == field))
        .collect())
}

enum Message {
    Row(u64, csv::ByteRecord),
    Done(Option<Value>),
    Failed(Error),
}

struct Records {
    receiver: mpsc::Receiver<Message>,
    watermark: Rc<RefCell<Option<Value>>>,
}

impl Iterator for Records {
    type Item = Result<(u64, csv::ByteRecord)>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.receiver.recv().ok()? {
            Message::Row(line, record) => Some(Ok((line, record))),
            Message::Done(watermark) => {
                *self.watermark.borrow_mut() = watermark;
                None
            }
            Message::Failed(error) => Some(Err(error)),
        }
    }
}

struct Job {
    conn: Connection,
    source: SqliteSource,
    carts_columns: Vec<Option<usize>>,
    items_columns: Vec<Option<usize>>,
    since: Option<Value>,
    times: TimeFormat,
}

impl Job {
    fn run(self, sender: &mpsc::SyncSender<Message>) -> Result<()> {
        let fail = |query: &str, error: rusqlite::Error| Error::Input {
            path: self.source.path.clone(),
            message: format!("{query}: {error}"),
        };
        let mut carts = self
            .conn
            .prepare(&self.source.carts_query)
            .map_err(|error| fail("carts_query", error))?;
        let mut items = self
            .conn
            .prepare(&self.source.items_query)
            .map_err(|error| fail("items_query", error))?;
        if let Some(index) = carts
            .parameter_index(":since")
            .map_err(|error| fail("carts_query", error))?
        {
            let since = self.since.clone().unwrap_or(Value::Null);
            carts
                .raw_bind_parameter(index, since)
                .map_err(|error| fail("carts_query", error))?;
        }
        let cart_id_parameter = items
            .parameter_index(":cart_id")
            .map_err(|error| fail("items_query", error))?
            .expect("checked before");
        let updated_at = CART_FIELDS.iter().position(|f| *f == "updated_at").unwrap();
        let cart_id = CART_FIELDS.iter().position(|f| *f == "cart_id").unwrap();
        let mut newest: Option<(DateTime<Utc>, Value)> = None;
        let mut rows = carts.raw_query();
        let mut line = 0;
        while let Some(row) = rows.next().map_err(|error| fail("carts_query", error))? {
            line += 1;
            let mut cart = Vec::with_capacity(CART_FIELDS.len());
            for (field, column) in CART_FIELDS.iter().zip(&self.carts_columns) {
                let value = match column {
                    Some(index) => row
                        .get_ref(*index)
                        .map_err(|error| fail("carts_query", error))?,
                    None => ValueRef::Null,
                };
                cart.push(text(field, value));
            }
            if let Some(index) = self.carts_columns[updated_at] {
                let raw: Value = row.get(index).map_err(|error| fail("carts_query", error))?;
                let parsed = std::str::from_utf8(&cart[updated_at])
                    .ok()
                    .and_then(|text| self.times.parse(text).ok());
                if let Some((at, _)) = parsed
                    && !self.times.is_future(at)
                    && newest.as_ref().is_none_or(|(seen, _)| at > *seen)
                {
                    newest = Some((at, raw));
                }
            }
            let id: Value = match self.carts_columns[cart_id] {
                Some(index) => row.get(index).map_err(|error| fail("carts_query", error))?,
                None => Value::Null,
            };
            items
                .raw_bind_parameter(cart_id_parameter, id)
                .map_err(|error| fail("items_query", error))?;
            let mut item_rows = items.raw_query();
            let mut any = false;
            while let Some(item) = item_rows
                .next()
                .map_err(|error| fail("items_query", error))?
            {
                any = true;
                let mut record = csv::ByteRecord::new();
                for field in &cart {
                    record.push_field(field);
                }
                for (field, column) in ITEM_FIELDS.iter().zip(&self.items_columns) {
                    let value = match column {
                        Some(index) => item
                            .get_ref(*index)
                            .map_err(|error| fail("items_query", error))?,
                        None => ValueRef::Null,
                    };
                    record.push_field(&text(field, value));
                }
                if sender.send(Message::Row(line, record)).is_err() {
                    return Ok(());
                }
            }
            if !any {
                let mut record = csv::ByteRecord::new();
                for field in &cart {
                    record.push_field(field);
                }
                for _ in ITEM_FIELDS {
                    record.push_field(b"");
                }
                if sender.send(Message::Row(line, record)).is_err() {
                    return Ok(());
                }
            }
        }
        let _ = sender.send(Message::Done(newest.map(|(_, raw)| raw)));
        Ok(())
    }
}

/// A column's value as the text a CSV field would hold: NULL is blank,
/// numbers are written out, integer times are unix seconds (written as RFC
/// 3339), text and blobs are their bytes (invalid UTF-8 is reported by the
/// row's reader).
fn text(field: &str, value: ValueRef<'_>) -> Vec<u8> {
    match value {
        ValueRef::Null => Vec::new(),
        ValueRef::Integer(seconds) if field == "created_at" || field == "updated_at" => {
            match DateTime::from_timestamp(seconds, 0) {
                Some(at) => at.to_rfc3339_opts(SecondsFormat::Secs, true).into_bytes(),
                None => seconds.to_string().into_bytes(),
            }
        }
        ValueRef::Integer(number) => number.to_string().into_bytes(),
        ValueRef::Real(number) => number.to_string().into_bytes(),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.to_vec(),
    }
}

/// Reads one `SQLite` file as a test would.
#[cfg(test)]
pub(crate) fn read_all(
    source: &SqliteSource,
    since: Option<Value>,
) -> Result<(super::Parsed, Option<Value>)> {
    let mut parsed = super::Parsed::default();
    let read = read(source, since, None, &mut parsed)?;
    parsed.summary = read.summary;
    Ok((parsed, read.watermark))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn source(path: PathBuf) -> SqliteSource {
        SqliteSource {
            path,
            carts_query: "SELECT id AS cart_id, customer_email AS email, currency,
                                 opted_in AS accepts_marketing, modified AS updated_at,
                                 state AS status
                          FROM quotes WHERE :since IS NULL OR modified >= :since
                          ORDER BY modified"
                .into(),
            items_query: "SELECT sku, title AS product_name, qty AS quantity, price AS unit_price
                          FROM quote_lines WHERE quote_id = :cart_id ORDER BY rowid"
                .into(),
            date_format: None,
        }
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
        assert_eq!(error.path, source.path);
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
        let conn = Connection::open(&source.path).unwrap();
        conn.execute("UPDATE quotes SET modified = 1900000000 WHERE id = 2", [])
            .unwrap();
        let mut parsed = super::super::Parsed::default();
        let read = read(&source, None, now, &mut parsed).unwrap();
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
        let mut bad = source(bad.path.clone());
        bad.items_query =
            "SELECT sku, qty AS quantity, price AS unit_price FROM quote_lines".into();
        let error = read_all(&bad, None).unwrap_err().to_string();
        assert!(error.contains(":cart_id"), "{error}");
        let mut bad = source(bad.path.clone());
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
        let conn = Connection::open(&source.path).unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM quotes", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 3);
    }
}
