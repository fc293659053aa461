//! What the database sources share (`sqlite`, `mysql`, `postgres`): the
//! queries' contract, their values turned into the text a CSV field would
//! hold, and the native grouping reading them, so a database's rows are
//! validated exactly like CSV rows.
//!
//! `carts_query` returns one row per cart (native field names as columns,
//! `:since` = the stored watermark), `items_query` the items of a batch of
//! carts (`:cart_ids`, with a `cart_id` column; `SQLite`: one cart,
//! `:cart_id`), `orders_query` orders (`:since` = the orders' watermark).
//! A driver runs them on a thread of its own and hands the rows to a
//! [`Feed`]; memory stays one batch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::types::Value;

use crate::error::{Error, Result};

use super::grouped::{Grouped, Handover};
use super::table::Table;
use super::{Format, Options, Sink, Summary, TimeFormat, group, native};

mod cell;

pub use cell::{Cell, with_since};

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

/// Item fields `items_query` may return (and `cart_id`, which ties an item
/// to its cart in a batch).
pub const ITEM_FIELDS: &[&str] = &[
    "sku",
    "product_name",
    "category",
    "quantity",
    "unit_price",
    "image_url",
    "product_url",
];

/// Order fields `orders_query` may return.
pub const ORDER_FIELDS: &[&str] = &[
    "order_id",
    "email",
    "cart_id",
    "total",
    "currency",
    "created_at",
];

const CARTS_REQUIRED: &[&str] = &["cart_id", "email", "currency", "updated_at"];
const ITEMS_REQUIRED: &[&str] = &["quantity", "unit_price"];
const ORDERS_REQUIRED: &[&str] = &["order_id", "email", "total", "currency", "created_at"];

/// Carts read (and their items queried) at a time.
pub const BATCH: usize = 2000;

/// Which database, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Sqlite(PathBuf),
    /// `mysql://user@host:port/db` (MySQL or MariaDB).
    Mysql(String),
    /// `postgres://user@host:port/db`.
    Postgres(String),
}

/// A `[[sources]]` that is a shop's database.
#[derive(Debug, Clone)]
pub struct DatabaseSource {
    pub kind: Kind,
    pub carts_query: String,
    pub items_query: String,
    pub orders_query: Option<String>,
    pub date_format: Option<String>,
    /// The zone of times stored without one (`DATETIME`, `timestamp`).
    pub timezone: Tz,
    /// A statement's time limit on the server.
    pub timeout: Duration,
    /// Where the password comes from: never the config or the URL.
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl DatabaseSource {
    /// How errors name the source: the file, or the URL (no password).
    pub fn name(&self) -> PathBuf {
        match &self.kind {
            Kind::Sqlite(path) => path.clone(),
            Kind::Mysql(url) | Kind::Postgres(url) => PathBuf::from(url),
        }
    }

    /// The key its carts' watermark is stored under: a changed query
    /// starts over.
    pub fn watermark_key(&self) -> String {
        match &self.kind {
            Kind::Sqlite(path) => format!("sqlite:{}\n{}", path.display(), self.carts_query),
            Kind::Mysql(url) | Kind::Postgres(url) => format!("{url}\n{}", self.carts_query),
        }
    }

    /// The key of its orders' watermark.
    pub fn orders_watermark_key(&self) -> Option<String> {
        let query = self.orders_query.as_ref()?;
        Some(format!("{}\norders\n{query}", self.name().display()))
    }

    /// The password, from `password_env` or `password_file`.
    pub fn password(&self) -> std::result::Result<Option<String>, String> {
        crate::config::password(self.password_env.as_deref(), self.password_file.as_deref())
    }
}

/// For each field, the query's column holding it.
pub fn columns(
    names: &[String],
    query: &str,
    fields: &[&str],
    required: &[&str],
    extra: &[&str],
) -> std::result::Result<Vec<Option<usize>>, String> {
    for name in names {
        if !fields.contains(&name.as_str()) && !extra.contains(&name.as_str()) {
            return Err(format!(
                "{query}: returns a column {name:?}, which is not a field it can give \
                 (expected {}); rename it with AS",
                fields
                    .iter()
                    .chain(extra)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|field| !names.iter().any(|name| name == field))
        .collect();
    if !missing.is_empty() {
        return Err(format!("{query}: returns no column {}", missing.join(", ")));
    }
    Ok(fields
        .iter()
        .chain(extra)
        .map(|field| names.iter().position(|name| name == field))
        .collect())
}

/// The source's queries by name: carts, items, and orders if given.
fn queries(source: &DatabaseSource) -> Vec<(&'static str, &str)> {
    let mut queries = vec![
        ("carts_query", source.carts_query.as_str()),
        ("items_query", source.items_query.as_str()),
    ];
    if let Some(orders) = &source.orders_query {
        queries.push(("orders_query", orders.as_str()));
    }
    queries
}

/// `query` wrapped to return at most one row: what `recart check` runs.
pub fn at_most_one_row(query: &str) -> String {
    format!(
        "SELECT * FROM ({}) AS q LIMIT 1",
        query.trim().trim_end_matches(';')
    )
}

/// Whether the columns `names` of query `name` are fields it can give,
/// the required ones among them.
pub fn probe_columns(
    name: &str,
    names: &[String],
    batched: bool,
) -> std::result::Result<(), String> {
    let (fields, required, extra): (&[&str], &[&str], &[&str]) = match name {
        "carts_query" => (CART_FIELDS, CARTS_REQUIRED, &[]),
        "items_query" if batched => (
            ITEM_FIELDS,
            &["cart_id", "quantity", "unit_price"],
            &["cart_id"],
        ),
        "items_query" => (ITEM_FIELDS, ITEMS_REQUIRED, &["cart_id"]),
        _ => (ORDER_FIELDS, ORDERS_REQUIRED, &[]),
    };
    columns(names, name, fields, required, extra)
        .map(drop)
        .map_err(|message| message.trim_start_matches(&format!("{name}: ")).to_string())
}

/// `recart check`: connects and runs each query once, wrapped to return at
/// most one row ([`at_most_one_row`]), `:since` NULL (as on a first run)
/// and `:cart_ids`/`:cart_id` matching nothing, then checks the columns it
/// returns. The error names the source, the query and the database's own
/// words. Returns the queries run.
pub fn check(source: &DatabaseSource) -> Result<Vec<&'static str>> {
    let queries = queries(source);
    let result = match &source.kind {
        Kind::Sqlite(path) => super::sqlite::probe(path, &queries),
        Kind::Mysql(url) => super::mysql::probe(source, url, &queries),
        Kind::Postgres(url) => super::postgres::probe(source, url, &queries),
    };
    result.map_err(|(query, message)| Error::Input {
        path: source.name(),
        message: format!("{query}: {message}"),
    })?;
    Ok(queries.into_iter().map(|(name, _)| name).collect())
}

enum Message {
    /// A batch's rows, with their numbers: one hand-over a batch, not a
    /// row (a million carts are three million rows).
    Rows(Vec<(u64, csv::ByteRecord)>),
    /// The newest `updated_at` of the carts handed over so far: once they
    /// are stored, the watermark may move to it.
    Mark(Value),
    Done(Option<Value>),
    Failed(Error),
}

/// Where a driver hands its rows: they become native rows on the channel
/// the grouping reads.
pub struct Feed {
    name: PathBuf,
    carts: mpsc::SyncSender<Message>,
    orders: mpsc::SyncSender<Message>,
    zone: Tz,
    times: TimeFormat,
    carts_columns: Vec<Option<usize>>,
    items_columns: Vec<Option<usize>>,
    orders_columns: Vec<Option<usize>>,
    line: u64,
    newest: Option<(DateTime<Utc>, Value)>,
    stopped: bool,
    carts_finished: bool,
    /// Raised by a signal: the read ends at the next batch, as if its
    /// rows had ended there (what was stored stays, and so does its mark).
    stop: Option<Arc<AtomicBool>>,
}

impl Feed {
    fn new(
        name: PathBuf,
        (carts, orders): (mpsc::SyncSender<Message>, mpsc::SyncSender<Message>),
        zone: Tz,
        times: TimeFormat,
        stop: Option<Arc<AtomicBool>>,
    ) -> Feed {
        Feed {
            name,
            carts,
            orders,
            zone,
            times,
            carts_columns: Vec::new(),
            items_columns: Vec::new(),
            orders_columns: Vec::new(),
            line: 0,
            newest: None,
            stopped: false,
            carts_finished: false,
            stop,
        }
    }

    /// An error of `query` (the database's own words).
    pub fn fail(&self, query: &str, error: impl std::fmt::Display) -> Error {
        Error::Input {
            path: self.name.clone(),
            message: format!("{query}: {error}"),
        }
    }

    /// The columns `carts_query` returns, by name.
    pub fn carts_columns(&mut self, names: &[String]) -> Result<()> {
        self.carts_columns = columns(names, "carts_query", CART_FIELDS, CARTS_REQUIRED, &[])
            .map_err(|message| {
                self.fail("carts_query", message.trim_start_matches("carts_query: "))
            })?;
        Ok(())
    }

    /// The columns `items_query` returns; `batched`: it needs `cart_id`.
    pub fn items_columns(&mut self, names: &[String], batched: bool) -> Result<()> {
        let required: &[&str] = if batched {
            &["cart_id", "quantity", "unit_price"]
        } else {
            ITEMS_REQUIRED
        };
        self.items_columns = columns(names, "items_query", ITEM_FIELDS, required, &["cart_id"])
            .map_err(|message| {
                self.fail("items_query", message.trim_start_matches("items_query: "))
            })?;
        Ok(())
    }

    /// The columns `orders_query` returns.
    pub fn orders_columns(&mut self, names: &[String]) -> Result<()> {
        self.orders_columns = columns(names, "orders_query", ORDER_FIELDS, ORDERS_REQUIRED, &[])
            .map_err(|message| {
                self.fail("orders_query", message.trim_start_matches("orders_query: "))
            })?;
        Ok(())
    }

    /// The column of a cart's `cart_id`.
    pub fn cart_id_column(&self) -> Option<usize> {
        self.carts_columns[0]
    }

    fn record(
        &self,
        fields: &[&str],
        columns: &[Option<usize>],
        row: &[Cell],
        into: &mut csv::ByteRecord,
        buffer: &mut Vec<u8>,
    ) {
        for (field, column) in fields.iter().zip(columns) {
            match column.and_then(|index| row.get(index)) {
                Some(Cell::Text(bytes)) => into.push_field(bytes),
                Some(cell) => {
                    buffer.clear();
                    cell.write_text(field, self.zone, buffer);
                    into.push_field(buffer);
                }
                None => into.push_field(b""),
            }
        }
    }

    /// A batch of carts with their items (tied by the items' `cart_id`
    /// column, or all the first cart's when there is none). `false`: the
    /// reader stopped; stop reading.
    pub fn carts(&mut self, carts: &[Vec<Cell>], items: &[Vec<Cell>]) -> bool {
        if self.stop_asked() {
            return false;
        }
        let item_cart = self.items_columns.get(ITEM_FIELDS.len()).copied().flatten();
        // An id's text, in `buffer`: an item's and its cart's match as
        // text (an integer id and its digits are one cart).
        let id_text = |cell: Option<&Cell>, buffer: &mut Vec<u8>| {
            buffer.clear();
            if let Some(cell) = cell {
                cell.write_text("", Tz::UTC, buffer);
            }
        };
        let mut buffer = Vec::new();
        // Items come in runs of a cart's (as queries order them): one key
        // a run, not an item (texts and hashes of 3 million items cost a
        // second and a half of an import of a million carts).
        let mut by_cart: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        let mut runs = items.iter().enumerate().peekable();
        while let Some((first, item)) = runs.next() {
            let cart = item_cart.map(|column| &item[column]);
            let mut lines = vec![first];
            while let Some((index, _)) =
                runs.next_if(|(_, next)| item_cart.map(|column| &next[column]) == cart)
            {
                lines.push(index);
            }
            id_text(cart, &mut buffer);
            by_cart.entry(buffer.clone()).or_default().extend(lines);
        }
        let updated_at = CART_FIELDS.iter().position(|f| *f == "updated_at").unwrap();
        let mut rows = Vec::with_capacity(carts.len().max(items.len()));
        for cart in carts {
            self.line += 1;
            let mut head = csv::ByteRecord::new();
            self.record(
                CART_FIELDS,
                &self.carts_columns,
                cart,
                &mut head,
                &mut buffer,
            );
            if let Some(index) = self.carts_columns[updated_at] {
                let parsed = std::str::from_utf8(&head[updated_at])
                    .ok()
                    .and_then(|text| self.times.parse(text).ok());
                if let Some((at, _)) = parsed
                    && !self.times.is_future(at)
                    && self.newest.as_ref().is_none_or(|(seen, _)| at > *seen)
                {
                    self.newest = Some((at, cart[index].watermark()));
                }
            }
            let id = item_cart
                .and(self.cart_id_column())
                .map(|column| &cart[column]);
            id_text(id, &mut buffer);
            let lines = by_cart.get(&buffer).map_or(&[][..], Vec::as_slice);
            if lines.is_empty() {
                let mut record = head.clone();
                for _ in ITEM_FIELDS {
                    record.push_field(b"");
                }
                rows.push((self.line, record));
            }
            // A cart's later rows carry its id alone (`cart_id` is the
            // first field): the grouping reads a cart's fields from its
            // first row (a later row's may be blank), so they are neither
            // copied nor parsed again.
            let mut id_only = csv::ByteRecord::new();
            if lines.len() > 1 {
                for (field, text) in head.iter().enumerate() {
                    id_only.push_field(if field == 0 { text } else { b"" });
                }
            }
            for (nth, &index) in lines.iter().enumerate() {
                let mut record = if nth == 0 {
                    head.clone()
                } else {
                    id_only.clone()
                };
                self.record(
                    ITEM_FIELDS,
                    &self.items_columns,
                    &items[index],
                    &mut record,
                    &mut buffer,
                );
                rows.push((self.line, record));
            }
        }
        self.stopped |= self.carts.send(Message::Rows(rows)).is_err();
        if let Some((_, value)) = &self.newest {
            self.stopped |= self.carts.send(Message::Mark(value.clone())).is_err();
        }
        !self.stopped
    }

    /// Every cart was handed over: the grouping may finish.
    pub fn carts_done(&mut self) {
        let newest = self.newest.take().map(|(_, value)| value);
        let _ = self.carts.send(Message::Done(newest));
        self.line = 0;
        self.carts_finished = true;
    }

    /// Whether a signal asked the read to stop (the batch in hand is not
    /// handed over).
    fn stop_asked(&mut self) -> bool {
        self.stopped |= self
            .stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::Relaxed));
        self.stopped
    }

    /// A batch of orders.
    pub fn orders(&mut self, orders: &[Vec<Cell>]) -> bool {
        if self.stop_asked() {
            return false;
        }
        let created_at = ORDER_FIELDS
            .iter()
            .position(|f| *f == "created_at")
            .unwrap();
        let mut rows = Vec::with_capacity(orders.len());
        let mut buffer = Vec::new();
        for order in orders {
            self.line += 1;
            let mut record = csv::ByteRecord::new();
            self.record(
                ORDER_FIELDS,
                &self.orders_columns,
                order,
                &mut record,
                &mut buffer,
            );
            if let Some(index) = self.orders_columns[created_at] {
                let parsed = std::str::from_utf8(&record[created_at])
                    .ok()
                    .and_then(|text| self.times.parse(text).ok());
                if let Some((at, _)) = parsed
                    && !self.times.is_future(at)
                    && self.newest.as_ref().is_none_or(|(seen, _)| at > *seen)
                {
                    self.newest = Some((at, order[index].watermark()));
                }
            }
            rows.push((self.line, record));
        }
        self.stopped |= self.orders.send(Message::Rows(rows)).is_err();
        !self.stopped
    }

    fn orders_done(&mut self) {
        // A read stopped early moves no orders' watermark: what `newest`
        // holds then may be the carts'.
        let newest = self.newest.take().map(|(_, value)| value);
        let newest = newest.filter(|_| self.carts_finished && !self.stopped);
        let _ = self.orders.send(Message::Done(newest));
    }
}

pub(super) type Shared = std::rc::Rc<std::cell::RefCell<Option<Value>>>;

struct Records {
    receiver: mpsc::Receiver<Message>,
    /// The rest of the batch being read.
    rows: std::vec::IntoIter<(u64, csv::ByteRecord)>,
    watermark: Shared,
    /// The last [`Message::Mark`] read: every row before it was handed to
    /// the grouping, so once the grouping stores its batch, all are.
    marked: Shared,
}

impl Iterator for Records {
    type Item = Result<(u64, csv::ByteRecord)>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.rows.next() {
                return Some(Ok(row));
            }
            return match self.receiver.recv().ok()? {
                Message::Rows(rows) => {
                    self.rows = rows.into_iter();
                    continue;
                }
                Message::Mark(value) => {
                    *self.marked.borrow_mut() = Some(value);
                    continue;
                }
                Message::Done(watermark) => {
                    *self.watermark.borrow_mut() = watermark;
                    None
                }
                Message::Failed(error) => Some(Err(error)),
            };
        }
    }
}

/// What a read found: the carts' and the orders' summaries, and their new
/// watermarks (`None`: nothing read, the watermark stays).
pub struct Read {
    pub carts: Summary,
    pub watermark: Option<Value>,
    pub orders: Option<Summary>,
    pub orders_watermark: Option<Value>,
}

/// The watermarks a read starts from.
pub struct Since {
    pub carts: Option<Value>,
    pub orders: Option<Value>,
}

/// Reads a database source: `driver` runs the queries on a thread of its
/// own and feeds the rows; the carts then the orders are grouped here and
/// handed to `sink`. A cart or order more than a day after `now` is
/// rejected and does not move the watermark.
pub fn read(
    source: &DatabaseSource,
    since: Since,
    now: Option<DateTime<Utc>>,
    sink: &mut dyn Sink,
) -> Result<Read> {
    read_marking(source, since, now, sink, &mut |_| Ok(()), None)
}

/// [`read`], calling `mark` with the carts' watermark after each batch of
/// carts `sink` stored; once `stop` is raised, the read ends at the next
/// batch (its rows so far stored and marked, the orders not read).
pub fn read_marking(
    source: &DatabaseSource,
    since: Since,
    now: Option<DateTime<Utc>>,
    sink: &mut dyn Sink,
    mark: &mut dyn FnMut(Value) -> Result<()>,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Read> {
    let name = source.name();
    let (carts_sender, carts_receiver) = mpsc::sync_channel::<Message>(4);
    let (orders_sender, orders_receiver) = mpsc::sync_channel::<Message>(4);
    let mut feed = Feed::new(
        name.clone(),
        (carts_sender, orders_sender),
        source.timezone,
        TimeFormat::new(source.date_format.clone(), now),
        stop,
    );
    let job = source.clone();
    let worker = std::thread::spawn(move || {
        let result = match &job.kind {
            Kind::Sqlite(path) => super::sqlite::run(&job, path, &since, &mut feed),
            Kind::Mysql(url) => super::mysql::run(&job, url, &since, &mut feed),
            Kind::Postgres(url) => super::postgres::run(&job, url, &since, &mut feed),
        };
        match result {
            Ok(()) => feed.orders_done(),
            // Whichever phase is being read takes the error.
            Err(error) if feed.carts_finished => {
                let _ = feed.orders.send(Message::Failed(error));
            }
            Err(error) => {
                let _ = feed.carts.send(Message::Failed(error));
            }
        }
    });
    // Three threads, as a file's import has: the driver reads and turns
    // rows into native records, the grouping validates and hashes them,
    // and this one stores the batches (the store is one connection).
    let (carts, orders) = std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<Grouped>(2);
        let grouping =
            scope.spawn(move || group_all(source, now, carts_receiver, orders_receiver, sender));
        let take = |grouped| match grouped {
            Grouped::Snapshots(snapshots, marked) => sink
                .snapshots(snapshots)
                .and_then(|()| marked.map_or(Ok(()), &mut *mark)),
            Grouped::Orders(orders) => sink.orders(orders),
            Grouped::Rejected(error) => sink.rejected(error),
            Grouped::Progress(bytes) => {
                sink.progress(bytes);
                Ok(())
            }
        };
        // Once the grouping stops, so does the driver: the grouping drops
        // its rows.
        super::consume(receiver, grouping, take, |error| (Err(error), None))
    });
    let _ = worker.join();
    let (carts, watermark) = carts?;
    let (orders, orders_watermark) = match orders.transpose()? {
        Some((summary, watermark)) => (Some(summary), watermark),
        None => (None, None),
    };
    Ok(Read {
        carts,
        watermark,
        orders,
        orders_watermark,
    })
}

type Grouping = Result<(Summary, Option<Value>)>;

/// The grouping thread: the carts, then the orders if the carts were read.
fn group_all(
    source: &DatabaseSource,
    now: Option<DateTime<Utc>>,
    carts: mpsc::Receiver<Message>,
    orders: mpsc::Receiver<Message>,
    sender: mpsc::SyncSender<Grouped>,
) -> (Grouping, Option<Grouping>) {
    let name = source.name();
    let marked = Shared::default();
    let mut handover = Handover {
        sender,
        marked: std::rc::Rc::clone(&marked),
        name: name.clone(),
    };
    let records = Records {
        receiver: carts,
        rows: Vec::new().into_iter(),
        watermark: Shared::default(),
        marked,
    };
    let carts = group_rows(
        &name,
        records,
        CART_FIELDS.iter().chain(ITEM_FIELDS),
        now,
        source,
        &mut handover,
        false,
    );
    if carts.is_err() || source.orders_query.is_none() {
        return (carts, None);
    }
    let records = Records {
        receiver: orders,
        rows: Vec::new().into_iter(),
        watermark: Shared::default(),
        marked: Shared::default(),
    };
    let orders = group_rows(
        &name,
        records,
        ORDER_FIELDS.iter(),
        now,
        source,
        &mut handover,
        true,
    );
    (carts, Some(orders))
}

fn group_rows<'a>(
    name: &std::path::Path,
    records: Records,
    fields: impl Iterator<Item = &'a &'a str>,
    now: Option<DateTime<Utc>>,
    source: &DatabaseSource,
    sink: &mut dyn Sink,
    orders: bool,
) -> Result<(Summary, Option<Value>)> {
    let watermark = std::rc::Rc::clone(&records.watermark);
    let names = fields.map(ToString::to_string).collect();
    let mut table = Table::from_records(name, names, Box::new(records));
    let times = TimeFormat::new(source.date_format.clone(), now);
    let options = Options {
        now,
        batch: BATCH,
        ..Options::format(Format::Native)
    };
    let mut summary = if orders {
        group::read(&mut table, &native::Orders { times }, &options, sink)?
    } else {
        group::read(&mut table, &native::Carts { times }, &options, sink)?
    };
    summary.format = Some(if orders {
        Format::NativeOrders
    } else {
        Format::Native
    });
    drop(table);
    let watermark = watermark.borrow_mut().take();
    Ok((summary, watermark))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read stopped by a signal after some carts were handed over moves
    /// no orders' watermark: the newest time it holds is the carts'.
    #[test]
    fn a_stopped_read_moves_no_orders_watermark() {
        let (carts, carts_received) = mpsc::sync_channel(8);
        let (orders, orders_received) = mpsc::sync_channel(8);
        let stop = Arc::new(AtomicBool::new(false));
        let mut feed = Feed::new(
            PathBuf::from("shop"),
            (carts, orders),
            Tz::UTC,
            TimeFormat::new(None, None),
            Some(Arc::clone(&stop)),
        );
        let names = ["cart_id", "email", "currency", "updated_at"].map(String::from);
        feed.carts_columns(&names).unwrap();
        feed.items_columns(
            &["cart_id".into(), "quantity".into(), "unit_price".into()],
            true,
        )
        .unwrap();
        let cart = |id: i64, at: &str| {
            vec![
                Cell::Int(id),
                Cell::Text(b"a@example.com".to_vec()),
                Cell::Text(b"EUR".to_vec()),
                Cell::Text(at.as_bytes().to_vec()),
            ]
        };
        assert!(feed.carts(&[cart(1, "2026-11-01T10:00:00Z")], &[]));
        stop.store(true, Ordering::Relaxed);
        assert!(!feed.carts(&[cart(2, "2026-11-02T10:00:00Z")], &[]));
        feed.orders_done();
        let marks: Vec<Message> = carts_received.try_iter().collect();
        assert!(
            matches!(marks.last(), Some(Message::Mark(_))),
            "the first batch's mark"
        );
        assert!(matches!(
            orders_received.try_recv(),
            Ok(Message::Done(None))
        ));
    }
}
