//! Ingest: input files → [`Cart`] snapshots and [`Order`]s, with every bad
//! row reported by file, line, field and value, and every good row kept.
//!
//! Files are streamed: rows are read one at a time ([`table`]), grouped into
//! carts or orders by their key ([`group`]), and handed to a [`Sink`] in
//! batches, so memory stays bounded whatever the file's size.

mod catalog;
pub mod database;
mod decode;
mod group;
mod grouped;
mod line_item;
pub mod mysql;
mod native;
pub mod postgres;
pub mod presets;
mod shopify;
pub mod sink;
pub mod sqlite;
mod table;
mod text;

pub use decode::parse_encoding;
pub use text::MAX_FIELD_BYTES;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use crate::error::{Error, Result};
use crate::model::{Cart, Order, Snapshot, known_offset, parse_time};

/// The input formats `import --format` and `[[sources]] format` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Recognised by the header.
    Auto,
    Native,
    NativeOrders,
    Shopify,
    ShopifyOrders,
    /// A product catalog: `sku,name,image_url,product_url,price,currency,in_stock`.
    Catalog,
    /// Shopify's products export (one row per variant).
    ShopifyProducts,
}

impl Format {
    /// A product catalog, not carts or orders.
    pub fn is_catalog(self) -> bool {
        matches!(self, Format::Catalog | Format::ShopifyProducts)
    }

    /// Orders, not carts.
    pub fn is_orders(self) -> bool {
        matches!(self, Format::NativeOrders | Format::ShopifyOrders)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Native => "native",
            Format::NativeOrders => "native-orders",
            Format::Shopify => "shopify",
            Format::ShopifyOrders => "shopify-orders",
            Format::Catalog => "catalog",
            Format::ShopifyProducts => "shopify-products",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Format::Auto),
            "native" => Ok(Format::Native),
            "native-orders" => Ok(Format::NativeOrders),
            "shopify" => Ok(Format::Shopify),
            "shopify-orders" => Ok(Format::ShopifyOrders),
            "catalog" => Ok(Format::Catalog),
            "shopify-products" => Ok(Format::ShopifyProducts),
            other => Err(format!(
                "{other:?} is not a format (expected auto, native, native-orders, shopify, \
                 shopify-orders, catalog or shopify-products)"
            )),
        }
    }
}

/// The field names of the native formats: the targets a column mapping
/// (`[[sources]] columns`) may name.
pub const NATIVE_FIELDS: &[&str] = &[
    "cart_id",
    "email",
    "first_name",
    "locale",
    "currency",
    "status",
    "accepts_marketing",
    "created_at",
    "updated_at",
    "sku",
    "product_name",
    "category",
    "quantity",
    "unit_price",
    "image_url",
    "product_url",
    "order_id",
    "total",
];

/// How to read one file.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    /// Native field name → the file's column that holds it.
    pub columns: Vec<(String, String)>,
    /// A chrono strftime format for the native formats' times, tried before
    /// the standard ones. Without `%z` the time is taken as UTC.
    pub date_format: Option<String>,
    /// Carts (or orders) handed to the sink at a time.
    pub batch: usize,
    /// Catalogs without a currency column (Shopify's products export): the
    /// currency of their prices.
    pub currency: Option<crate::model::Currency>,
    /// Shopify's products export has no URL: `{handle}` in this makes one.
    pub product_url: Option<String>,
    /// The file's encoding when it is not UTF-8 (`[[sources]] encoding`,
    /// `import --encoding`); `None`: UTF-8, checked row by row.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// The time of the import: a cart's last activity or an order's time
    /// more than [`FUTURE_GRACE`] after it is a row error. `None` checks
    /// nothing (tests, fuzzing).
    pub now: Option<DateTime<Utc>>,
}

/// How far after `now` an input's time may be: clocks and time zones of
/// exports are off by hours, not by more than a day.
pub const FUTURE_GRACE: TimeDelta = TimeDelta::days(1);

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Auto,
            columns: Vec::new(),
            date_format: None,
            batch: 2000,
            currency: None,
            product_url: None,
            encoding: None,
            now: None,
        }
    }
}

impl Options {
    pub fn format(format: Format) -> Options {
        Options {
            format,
            ..Options::default()
        }
    }
}

/// One rejected row: where it is, which field, its value, and what was
/// expected.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub path: PathBuf,
    /// 1-based line in the file where the row starts (the header is line 1).
    pub line: u64,
    pub field: String,
    /// The field's text as found (empty for `(row)`).
    pub value: String,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: field {}: {}",
            self.path.display(),
            self.line,
            self.field,
            self.message
        )
    }
}

/// Where the records of a file go, batch by batch.
pub trait Sink {
    /// The format the file is read as; `detected` when `auto` chose it.
    fn format(&mut self, _format: Format, _detected: bool) {}
    fn carts(&mut self, carts: Vec<Cart>) -> Result<()>;
    /// Carts hashed already ([`read_file_alongside`] hashes them on its
    /// reader thread). Sinks that store no hash take them as carts.
    fn snapshots(&mut self, snapshots: Vec<Snapshot>) -> Result<()> {
        self.carts(
            snapshots
                .into_iter()
                .map(|snapshot| snapshot.cart)
                .collect(),
        )
    }
    fn orders(&mut self, orders: Vec<Order>) -> Result<()>;
    /// Products of a catalog. Sinks that take none refuse them.
    fn products(&mut self, _products: Vec<crate::model::Product>) -> Result<()> {
        Err(Error::Usage(
            "a product catalog cannot be imported here; use [[catalog]] or --format catalog".into(),
        ))
    }
    fn rejected(&mut self, error: RowError) -> Result<()>;
    /// Bytes of the file read so far.
    fn progress(&mut self, _bytes: u64) {}
}

/// What one file held.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub format: Option<Format>,
    pub rows: u64,
    /// Rows not imported because they are wrong (a bad row rejects its
    /// whole cart, so this counts the cart's other rows too).
    pub rejected_rows: u64,
    /// Rows not imported because they cannot be used, though nothing is
    /// wrong with them: checkouts and orders without an e-mail address.
    pub skipped_rows: u64,
}

/// Reads one file in the given format (or the one its header shows),
/// handing carts or orders to `sink` in batches.
pub fn read_file(path: &Path, options: &Options, sink: &mut dyn Sink) -> Result<Summary> {
    let table = table::Table::open(path, &options.columns, options.encoding)?;
    read_table(table, options, sink)
}

/// Reads one file as [`read_file`] does, but on a thread of its own while
/// `sink` takes the batches on this one: parsing and validating overlap the
/// store's writes. The reader runs at most two batches ahead, so memory
/// stays bounded. If the sink fails, reading stops and its error is
/// returned.
pub fn read_file_alongside(path: &Path, options: &Options, sink: &mut dyn Sink) -> Result<Summary> {
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel(2);
        let reader = scope.spawn(move || read_file(path, options, &mut Forward { sender, path }));
        let take = |event| match event {
            Event::Format(format, detected) => {
                sink.format(format, detected);
                Ok(())
            }
            Event::Snapshots(snapshots) => sink.snapshots(snapshots),
            Event::Orders(orders) => sink.orders(orders),
            Event::Products(products) => sink.products(products),
            Event::Rejected(error) => sink.rejected(error),
            Event::Progress(bytes) => {
                sink.progress(bytes);
                Ok(())
            }
        };
        consume(receiver, reader, take, Err)
    })
}

/// Hands what a producer thread sends (`receiver`) to `take`, in order,
/// until `take` fails; then lets the producer go (its next send fails, and
/// it stops) and waits for it. A failed `take`'s error, made a result by
/// `failed`, wins over what the producer returns.
pub(crate) fn consume<E, R>(
    receiver: std::sync::mpsc::Receiver<E>,
    producer: std::thread::ScopedJoinHandle<'_, R>,
    mut take: impl FnMut(E) -> Result<()>,
    failed: impl FnOnce(Error) -> R,
) -> R {
    let mut error = None;
    for event in &receiver {
        if let Err(failure) = take(event) {
            error = Some(failure);
            break;
        }
    }
    drop(receiver);
    let produced = producer
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    match error {
        Some(error) => failed(error),
        None => produced,
    }
}

/// What the reader thread of [`read_file_alongside`] hands over, in order.
enum Event {
    Format(Format, bool),
    Snapshots(Vec<Snapshot>),
    Orders(Vec<Order>),
    Products(Vec<crate::model::Product>),
    Rejected(RowError),
    Progress(u64),
}

struct Forward<'p> {
    sender: std::sync::mpsc::SyncSender<Event>,
    path: &'p Path,
}

impl Forward<'_> {
    fn send(&self, event: Event) -> Result<()> {
        // Only when the sink failed: its error is the one returned.
        self.sender.send(event).map_err(|_| Error::Input {
            path: self.path.to_path_buf(),
            message: "reading stopped".into(),
        })
    }
}

impl Sink for Forward<'_> {
    fn format(&mut self, format: Format, detected: bool) {
        let _ = self.send(Event::Format(format, detected));
    }
    fn carts(&mut self, carts: Vec<Cart>) -> Result<()> {
        self.send(Event::Snapshots(Snapshot::hash_all(carts)))
    }
    fn orders(&mut self, orders: Vec<Order>) -> Result<()> {
        self.send(Event::Orders(orders))
    }
    fn products(&mut self, products: Vec<crate::model::Product>) -> Result<()> {
        self.send(Event::Products(products))
    }
    fn rejected(&mut self, error: RowError) -> Result<()> {
        self.send(Event::Rejected(error))
    }
    fn progress(&mut self, bytes: u64) {
        let _ = self.send(Event::Progress(bytes));
    }
}

fn read_table(mut table: table::Table, options: &Options, sink: &mut dyn Sink) -> Result<Summary> {
    let path = table.header().path.clone();
    let (format, detected) = match options.format {
        Format::Auto => (
            detect(table.header()).ok_or_else(|| Error::Input {
                path: path.clone(),
                message: "the header matches no known format (native, native-orders, shopify, \
                          shopify-orders); give --format, or map the columns in recart.toml"
                    .into(),
            })?,
            true,
        ),
        other => (other, false),
    };
    sink.format(format, detected);
    let times = TimeFormat::new(options.date_format.clone(), options.now);
    // Shopify's exports have their own time format: no `date_format`.
    let shopify_times = TimeFormat::new(None, options.now);
    let mut summary = match format {
        Format::Native => group::read(&mut table, &native::Carts { times }, options, sink)?,
        Format::NativeOrders => group::read(&mut table, &native::Orders { times }, options, sink)?,
        Format::Shopify => {
            let times = shopify_times;
            group::read(&mut table, &shopify::Checkouts { times }, options, sink)?
        }
        Format::ShopifyOrders => {
            let times = shopify_times;
            group::read(&mut table, &shopify::Orders { times }, options, sink)?
        }
        Format::Catalog => group::read(&mut table, &catalog::Native, options, sink)?,
        Format::ShopifyProducts => {
            let grouping =
                catalog::ShopifyProducts::new(options).map_err(|message| Error::Input {
                    path: path.clone(),
                    message,
                })?;
            group::read(&mut table, &grouping, options, sink)?
        }
        Format::Auto => unreachable!("resolved above"),
    };
    summary.format = Some(format);
    Ok(summary)
}

fn detect(header: &table::Header) -> Option<Format> {
    if header.has_columns(native::CART_COLUMNS_REQUIRED) {
        Some(Format::Native)
    } else if header.has_columns(native::ORDER_COLUMNS_REQUIRED) {
        Some(Format::NativeOrders)
    } else if header.has_columns(catalog::NATIVE_REQUIRED) {
        Some(Format::Catalog)
    } else if header.has_columns(catalog::SHOPIFY_REQUIRED) {
        Some(Format::ShopifyProducts)
    } else if shopify::is_shopify(header) {
        Some(if shopify::is_orders(header) {
            Format::ShopifyOrders
        } else {
            Format::Shopify
        })
    } else {
        None
    }
}

/// Everything a file held, collected in memory: for tests and small files.
#[derive(Debug, Default)]
pub struct Parsed {
    pub summary: Summary,
    pub carts: Vec<Cart>,
    pub orders: Vec<Order>,
    pub errors: Vec<RowError>,
}

impl Sink for Parsed {
    fn carts(&mut self, carts: Vec<Cart>) -> Result<()> {
        self.carts.extend(carts);
        Ok(())
    }
    fn orders(&mut self, orders: Vec<Order>) -> Result<()> {
        self.orders.extend(orders);
        Ok(())
    }
    fn rejected(&mut self, error: RowError) -> Result<()> {
        self.errors.push(error);
        Ok(())
    }
}

/// Reads a whole file into memory.
pub fn parse_file(path: &Path, options: &Options) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    parsed.summary = read_file(path, options, &mut parsed)?;
    Ok(parsed)
}

/// Reads CSV bytes into memory without a store, as `import` would read
/// a file holding them: for fuzzing and tests. Errors are the file's
/// (empty, binary, no known header); row errors are in `Parsed::errors`.
pub fn parse_bytes(bytes: &[u8], options: &Options) -> Result<Parsed> {
    let table = table::Table::from_reader(
        Path::new("input.csv"),
        Box::new(std::io::Cursor::new(bytes.to_vec())),
        &options.columns,
        options.encoding,
    )?;
    let mut parsed = Parsed::default();
    parsed.summary = read_table(table, options, &mut parsed)?;
    Ok(parsed)
}

#[cfg(test)]
pub(crate) fn parse_text(text: &str, options: &Options) -> Result<Parsed> {
    parse_bytes(text.as_bytes(), options)
}

/// Input times: the source's `date_format` first, then RFC 3339 and
/// `YYYY-MM-DD HH:MM:SS ±HHMM`; and the latest a snapshot's may be.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimeFormat {
    format: Option<String>,
    /// `now` and a day's grace ([`FUTURE_GRACE`]); `None`: no limit.
    latest: Option<DateTime<Utc>>,
}

impl TimeFormat {
    pub(crate) fn new(format: Option<String>, now: Option<DateTime<Utc>>) -> TimeFormat {
        TimeFormat {
            format,
            latest: now.map(|now| now + FUTURE_GRACE),
        }
    }

    /// The time and the customer's UTC offset, if the text gives one
    /// ([`known_offset`]): a `date_format` without `%z` gives none.
    pub(crate) fn parse(&self, text: &str) -> Result<(DateTime<Utc>, Option<i32>), String> {
        if let Some(format) = &self.format {
            let trimmed = text.trim();
            if let Ok(time) = DateTime::parse_from_str(trimmed, format) {
                let offset = time.offset().local_minus_utc();
                return Ok((time.with_timezone(&Utc), known_offset(trimmed, offset)));
            }
            if let Ok(time) = NaiveDateTime::parse_from_str(trimmed, format) {
                return Ok((time.and_utc(), None));
            }
            return parse_time(text).map_err(|_| {
                format!("{text:?} is not a time in the date_format {format:?} (nor RFC 3339)")
            });
        }
        parse_time(text)
    }

    /// Whether `at` is later than any input time may be.
    pub(crate) fn is_future(&self, at: DateTime<Utc>) -> bool {
        self.latest.is_some_and(|latest| at > latest)
    }

    /// A snapshot's time (a cart's last activity, an order's time), as
    /// [`parse`](Self::parse) reads it, refused when more than a day after
    /// now: stored, it would count every later, corrected snapshot of the
    /// cart as older, and ignore it.
    pub(crate) fn snapshot_time(
        &self,
        row: &table::Row<'_>,
        column: &str,
        text: &str,
    ) -> Result<(DateTime<Utc>, Option<i32>), RowError> {
        let (at, offset) = self
            .parse(text)
            .map_err(|message| row.error(column, message))?;
        match self.latest {
            Some(latest) if at > latest => Err(row.error(
                column,
                format!(
                    "{text:?} is more than a day after now ({}): a clock or time zone error? \
                     Stored, it would hide every later snapshot of the cart",
                    (latest - FUTURE_GRACE).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            )),
            _ => Ok((at, offset)),
        }
    }
}

/// Checks a `date_format` before any file is read.
pub fn check_date_format(format: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        Err(format!(
            "{format:?} is not a strftime format like \"%d/%m/%Y %H:%M\""
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format_by_header() {
        let shopify = include_str!("../../tests/data/shopify-abandoned-checkouts.header.csv");
        let orders = include_str!("../../tests/data/shopify-orders.header.csv");
        for (header, format) in [
            (
                "cart_id,email,currency,updated_at,sku,quantity,unit_price\n",
                Format::Native,
            ),
            (
                "order_id,email,total,currency,created_at\n",
                Format::NativeOrders,
            ),
            (shopify, Format::Shopify),
            (orders, Format::ShopifyOrders),
        ] {
            let parsed = parse_text(header, &Options::default()).unwrap();
            assert_eq!(parsed.summary.format, Some(format), "{header}");
            assert_eq!(parsed.summary.rows, 0);
        }
        let error = parse_text("a,b,c\n1,2,3\n", &Options::default()).unwrap_err();
        assert!(error.to_string().contains("no known format"), "{error}");
    }

    /// Fails on its second batch of carts.
    struct Failing(Parsed);

    impl Sink for Failing {
        fn carts(&mut self, carts: Vec<Cart>) -> Result<()> {
            if !self.0.carts.is_empty() {
                return Err(Error::Usage("the store is full".into()));
            }
            self.0.carts(carts)
        }
        fn orders(&mut self, orders: Vec<Order>) -> Result<()> {
            self.0.orders(orders)
        }
        fn rejected(&mut self, error: RowError) -> Result<()> {
            self.0.rejected(error)
        }
    }

    #[test]
    fn a_file_read_alongside_gives_what_it_gives_read_directly() {
        use std::fmt::Write as _;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("carts.csv");
        let mut text = String::from("cart_id,email,currency,updated_at,sku,quantity,unit_price\n");
        for n in 0..50 {
            let quantity = if n == 7 { "x" } else { "1" };
            writeln!(
                text,
                "c{n},a{n}@example.com,EUR,2026-03-01T10:00:00Z,S{n},{quantity},2.50"
            )
            .unwrap();
        }
        std::fs::write(&path, text).unwrap();
        let mut options = Options::format(Format::Auto);
        options.batch = 4;
        let direct = parse_file(&path, &options).unwrap();
        let mut alongside = Parsed::default();
        alongside.summary = read_file_alongside(&path, &options, &mut alongside).unwrap();
        assert_eq!(alongside.summary, direct.summary);
        assert_eq!(alongside.carts, direct.carts);
        assert_eq!(alongside.errors, direct.errors);
        assert_eq!(direct.carts.len(), 49);

        // A sink that fails stops the reader, and its error is the one returned.
        let mut failing = Failing(Parsed::default());
        let error = read_file_alongside(&path, &options, &mut failing).unwrap_err();
        assert!(error.to_string().contains("the store is full"), "{error}");
        assert_eq!(failing.0.carts.len(), 4);
    }

    #[test]
    fn date_format_is_tried_first() {
        let times = TimeFormat::new(Some("%d/%m/%Y %H:%M".into()), None);
        let (at, offset) = times.parse("07/03/2026 13:28").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-03-07T13:28:00+00:00");
        assert_eq!(
            offset, None,
            "read as UTC; the customer's offset is not known"
        );
        assert!(times.parse("2026-03-07T13:28:00Z").is_ok());
        let zoned = TimeFormat::new(Some("%d/%m/%Y %H:%M %z".into()), None);
        assert_eq!(
            zoned.parse("07/03/2026 13:28 +0530").unwrap().1,
            Some(19_800)
        );
        assert_eq!(zoned.parse("07/03/2026 13:28 +0000").unwrap().1, Some(0));
        assert_eq!(zoned.parse("07/03/2026 13:28 -0000").unwrap().1, None);
        assert!(times.parse("13:28 7 March").is_err());
        assert!(check_date_format("%d/%m/%Y %H:%M").is_ok());
        assert!(check_date_format("%Q").is_err());
    }
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// Inputs the fuzzer once crashed on (`tests/data/fuzz/`): each must
    /// parse, or fail, without a panic.
    #[test]
    fn fuzzer_findings_no_longer_panic() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
        for (file, format) in [("native-orders-decimal-overflow.csv", Format::NativeOrders)] {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            for format in [format, Format::Auto] {
                let mut options = Options::format(format);
                options.batch = 3;
                let parsed = parse_bytes(&bytes, &options);
                if let Ok(parsed) = parsed {
                    assert!(
                        !parsed.errors.is_empty() || parsed.summary.rows == 0,
                        "{file}"
                    );
                }
            }
        }
    }
}
