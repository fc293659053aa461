//! Where ingest meets the store: [`StoreSink`] takes a file's (or a shop
//! database's) batches into the store as they are read, and [`Imports`] is
//! the one policy for how a command goes on when one input fails.

use std::fmt::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::error::{Completion, Error, Result};
use crate::ingest::{self, Format, RowError, Sink};
use crate::model::{Cart, Order, Product, Snapshot};
use crate::output::Output;
use crate::store::{BulkLoad, CartImport, OrderImport, ProductImport, Store};

/// Row errors printed on stderr per file; the rest are counted (and all go
/// to `--errors FILE`).
pub const ERRORS_SHOWN: u64 = 100;

/// Says how many of a file's rejected rows were not printed, if any.
pub fn more_not_shown(path: &Path, rejected: u64, out: &mut Output) {
    if rejected > ERRORS_SHOWN {
        out.warn(&format!(
            "{}: {} more rejected rows not shown",
            path.display(),
            rejected - ERRORS_SHOWN
        ));
    }
}

/// Who reads an input's row errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// `import`: a person at the command: every row error, and the format
    /// `auto` chose.
    Person,
    /// `run`, hourly from cron: a row error the last read of the same
    /// input rejected too was reported then; it is counted, and printed
    /// only with `-v`.
    Schedule,
}

/// The row errors of one input (a file's path, a shop database's source)
/// as its last read rejected them: 64-bit fingerprints of (field, value,
/// message) — not the line, which moves in every re-export — kept in the
/// store. A row error is "reported before" if the last read had it; a
/// fingerprint the last read had twice covers two rows, so a new bad row
/// that reads like an old one is still new.
struct Reported {
    source: String,
    /// Fingerprint → rows of the last read with it, not yet met again.
    before: std::collections::HashMap<u64, u32>,
    stored: Vec<u64>,
    /// This read's.
    now: Vec<u64>,
}

impl Reported {
    fn load(store: &Store, source: String) -> Result<Reported> {
        let mut stored = store.reported_row_errors(&source)?;
        stored.sort_unstable();
        let mut before = std::collections::HashMap::new();
        for fingerprint in &stored {
            *before.entry(*fingerprint).or_insert(0) += 1;
        }
        Ok(Reported {
            source,
            before,
            stored,
            now: Vec::new(),
        })
    }

    /// Takes one row error of this read: whether it was reported before.
    fn seen(&mut self, error: &RowError) -> bool {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for part in [&error.field, &error.value, &error.message] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        let digest = hasher.finalize();
        let fingerprint = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        self.now.push(fingerprint);
        match self.before.get_mut(&fingerprint) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    }

    /// Remembers this read's row errors (a write only when they changed).
    fn save(mut self, store: &Store) -> Result<()> {
        self.now.sort_unstable();
        if self.now == self.stored {
            return Ok(());
        }
        store.set_reported_row_errors(&self.source, &self.now)
    }
}

/// What importing one file (or one shop database) did.
#[derive(Debug, Default, Clone)]
pub struct FileImport {
    pub path: PathBuf,
    pub rows: u64,
    pub rejected: u64,
    /// Of the rejected rows, those the input's last read rejected too
    /// ([`Audience::Schedule`]): reported then, not again.
    pub reported_before: u64,
    /// Rows of checkouts or orders without an e-mail address.
    pub skipped: u64,
    pub carts: Option<CartImport>,
    pub orders: Option<OrderImport>,
    pub products: Option<ProductImport>,
    pub marked_ordered: u64,
    /// Carts and orders of forgotten people, dropped.
    pub forgotten: u64,
}

impl FileImport {
    /// The figures, as `import` prints them.
    pub fn line(&self) -> String {
        let path = self.path.display();
        let mut line = match (&self.carts, &self.orders) {
            _ if self.products.is_some() => {
                let products = self.products.unwrap_or_default();
                format!(
                    "{path}: {} rows read, {} products upserted, {} unchanged, {} rejected",
                    self.rows, products.upserted, products.unchanged, self.rejected
                )
            }
            (_, Some(orders)) => format!(
                "{path}: {} rows read, {} orders added, {} unchanged, {} rejected, {} carts marked ordered",
                self.rows, orders.added, orders.unchanged, self.rejected, self.marked_ordered
            ),
            (carts, None) => {
                let carts = carts.unwrap_or_default();
                format!(
                    "{path}: {} rows read, {} carts upserted, {} unchanged, {} rejected",
                    self.rows, carts.upserted, carts.unchanged, self.rejected
                )
            }
        };
        if self.reported_before > 0 {
            let _ = write!(line, " ({} reported before)", self.reported_before);
        }
        if self.skipped > 0 {
            let _ = write!(line, ", {} skipped (no e-mail)", self.skipped);
        }
        if self.forgotten > 0 {
            let _ = write!(line, ", {} forgotten", self.forgotten);
        }
        line
    }

    /// Carts newly stored or changed.
    pub fn carts_upserted(&self) -> u64 {
        self.carts.map_or(0, |carts| carts.upserted)
    }

    /// Orders newly stored.
    pub fn orders_added(&self) -> u64 {
        self.orders.map_or(0, |orders| orders.added)
    }
}

/// The one outcome policy of `import` and of `run`'s sources: an input
/// that cannot be read as a whole (not what its format says, or an I/O
/// error) is named on stderr and skipped, and the command ends partial;
/// every other input is imported. A store error stops the command. Rows
/// rejected inside an input make it partial too.
#[derive(Debug, Default)]
pub struct Imports {
    pub completion: Completion,
    pub carts_upserted: u64,
    pub orders_added: u64,
    pub rows_rejected: u64,
    /// Of those, rows the input's last read rejected too.
    pub rows_reported_before: u64,
    inputs: usize,
    failures: usize,
    /// Held back: when every input failed, it is the command's error.
    last_failure: Option<Error>,
}

impl Imports {
    /// Takes one input's result: its figures (returned, to be printed), or
    /// its failure (named once).
    pub fn take(
        &mut self,
        result: Result<FileImport>,
        out: &mut Output,
    ) -> Result<Option<FileImport>> {
        self.inputs += 1;
        match result {
            Ok(import) => {
                self.carts_upserted += import.carts_upserted();
                self.orders_added += import.orders_added();
                self.rows_rejected += import.rejected;
                self.rows_reported_before += import.reported_before;
                // News once: rows an earlier run rejected and reported
                // alone do not make a run partial again.
                if import.rejected > import.reported_before {
                    self.completion = Completion::Partial;
                }
                Ok(Some(import))
            }
            Err(error @ (Error::Input { .. } | Error::Io { .. })) => {
                self.failures += 1;
                self.completion = Completion::Partial;
                if let Some(previous) = self.last_failure.replace(error) {
                    out.warn(&format!("recart: {previous}"));
                }
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// How the inputs went: the last failure is named now, or is the error
    /// if `all_failed_is_error` and no input could be read.
    pub fn finish(mut self, all_failed_is_error: bool, out: &mut Output) -> Result<Completion> {
        match self.last_failure.take() {
            Some(error) if all_failed_is_error && self.failures == self.inputs => Err(error),
            Some(error) => {
                out.warn(&format!("recart: {error}"));
                Ok(self.completion)
            }
            None => Ok(self.completion),
        }
    }
}

/// `--errors FILE`: the rejected rows as CSV, for the operator to fix.
pub struct ErrorsFile {
    path: PathBuf,
    writer: csv::Writer<std::fs::File>,
}

impl ErrorsFile {
    pub fn create(path: &Path) -> Result<ErrorsFile> {
        // The rows hold customers' addresses: for the owner's eyes when
        // created (a file that exists keeps its mode).
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| Error::io(path, source))?;
        let mut errors = ErrorsFile {
            path: path.to_path_buf(),
            writer: csv::Writer::from_writer(file),
        };
        errors.write(["file", "line", "field", "value", "message"])?;
        Ok(errors)
    }

    fn write<'a>(&mut self, record: impl IntoIterator<Item = &'a str>) -> Result<()> {
        self.writer
            .write_record(record)
            .map_err(|error| Error::io(&self.path, error.into()))
    }

    fn row(&mut self, error: &RowError) -> Result<()> {
        let path = error.path.to_string_lossy();
        let line = error.line.to_string();
        self.write([
            path.as_ref(),
            &line,
            &error.field,
            &error.value,
            &error.message,
        ])
    }

    pub fn finish(mut self) -> Result<()> {
        self.writer
            .flush()
            .map_err(|source| Error::io(&self.path, source))
    }
}

/// Takes one input's batches into the store as they are read.
struct StoreSink<'a> {
    store: &'a Store,
    path: &'a Path,
    out: &'a mut Output,
    errors: Option<&'a mut ErrorsFile>,
    progress: indicatif::ProgressBar,
    /// `Person`: say which format `auto` chose; `Schedule`: `reported`.
    audience: Audience,
    carts: Option<CartImport>,
    orders: Option<OrderImport>,
    products: Option<ProductImport>,
    /// Row errors to print: the first `ERRORS_SHOWN` are.
    shown: u64,
    /// `Audience::Schedule`: the input's row errors as last reported.
    reported: Option<Reported>,
    reported_before: u64,
    /// The first import into an empty store, once carts arrive.
    bulk: Option<BulkLoad<'a>>,
    bulk_tried: bool,
}

impl<'a> StoreSink<'a> {
    fn new(
        store: &'a Store,
        path: &'a Path,
        out: &'a mut Output,
        errors: Option<&'a mut ErrorsFile>,
        progress: indicatif::ProgressBar,
        audience: Audience,
        reported: Option<Reported>,
    ) -> StoreSink<'a> {
        StoreSink {
            store,
            path,
            out,
            errors,
            progress,
            audience,
            carts: None,
            orders: None,
            products: None,
            shown: 0,
            reported,
            reported_before: 0,
            bulk: None,
            bulk_tried: false,
        }
    }

    fn begin_bulk_load(&mut self) -> Result<()> {
        if !self.bulk_tried {
            self.bulk_tried = true;
            self.bulk = self.store.begin_bulk_load()?;
        }
        Ok(())
    }

    fn add_carts(&mut self, done: CartImport) {
        let total = self.carts.get_or_insert_default();
        total.upserted += done.upserted;
        total.unchanged += done.unchanged;
        total.marked_ordered += done.marked_ordered;
        total.forgotten += done.forgotten;
    }

    /// Commits a bulk load, if one was started. Called however the read
    /// ended: the batches read before an error are kept, as when each
    /// batch commits on its own.
    fn finish(&mut self) -> Result<()> {
        self.bulk.take().map_or(Ok(()), BulkLoad::finish)
    }

    /// A store failure (a full disk) stopped the input part-way: says what
    /// was stored before it, once, beside the error the command ends with.
    /// A bulk first import is one transaction: then nothing was.
    fn stopped_by(&mut self, error: &Error, bulk: bool) {
        if matches!(error, Error::Input { .. } | Error::Io { .. }) {
            return;
        }
        let carts = self.carts.unwrap_or_default();
        let orders = self.orders.unwrap_or_default();
        let line = if bulk {
            format!(
                "{}: nothing stored (a first import is one transaction, rolled back)",
                self.path.display()
            )
        } else {
            format!(
                "{}: {} carts upserted, {} unchanged, {} orders added before the store failed; \
                 the rest of the file was not imported",
                self.path.display(),
                carts.upserted,
                carts.unchanged,
                orders.added
            )
        };
        if self.audience == Audience::Person {
            self.out.data(&line);
        } else {
            self.out.warn(&line);
        }
    }

    /// The input's figures, once read as `format`.
    fn import(&mut self, summary: &ingest::Summary) -> FileImport {
        more_not_shown(self.path, self.shown, self.out);
        let format = summary.format;
        let orders = format.is_some_and(Format::is_orders);
        let catalog = format.is_some_and(Format::is_catalog);
        FileImport {
            path: self.path.to_path_buf(),
            rows: summary.rows,
            rejected: summary.rejected_rows,
            reported_before: self.reported_before,
            skipped: summary.skipped_rows,
            carts: (!orders && !catalog).then(|| self.carts.unwrap_or_default()),
            orders: orders.then(|| self.orders.unwrap_or_default()),
            products: catalog.then(|| self.products.unwrap_or_default()),
            marked_ordered: self.carts.map_or(0, |c| c.marked_ordered)
                + self.orders.map_or(0, |o| o.marked_ordered),
            forgotten: self.carts.map_or(0, |c| c.forgotten)
                + self.orders.map_or(0, |o| o.forgotten),
        }
    }
}

impl Sink for StoreSink<'_> {
    fn format(&mut self, format: Format, detected: bool) {
        if detected && self.audience == Audience::Person {
            let line = format!("{}: format {format} (detected)", self.path.display());
            self.progress.suspend(|| self.out.log(&line));
        }
    }

    fn carts(&mut self, carts: Vec<Cart>) -> Result<()> {
        self.begin_bulk_load()?;
        let done = self.store.import_carts(&carts)?;
        self.add_carts(done);
        Ok(())
    }

    fn snapshots(&mut self, snapshots: Vec<Snapshot>) -> Result<()> {
        self.begin_bulk_load()?;
        let done = self.store.import_snapshots(&snapshots)?;
        self.add_carts(done);
        Ok(())
    }

    fn orders(&mut self, orders: Vec<Order>) -> Result<()> {
        let done = self.store.import_orders(&orders)?;
        let total = self.orders.get_or_insert_default();
        total.added += done.added;
        total.unchanged += done.unchanged;
        total.marked_ordered += done.marked_ordered;
        total.forgotten += done.forgotten;
        Ok(())
    }

    fn products(&mut self, products: Vec<Product>) -> Result<()> {
        let done = self.store.import_products(&products)?;
        let total = self.products.get_or_insert_default();
        total.upserted += done.upserted;
        total.unchanged += done.unchanged;
        Ok(())
    }

    fn rejected(&mut self, error: RowError) -> Result<()> {
        if let Some(errors) = self.errors.as_deref_mut() {
            errors.row(&error)?;
        }
        let before = self
            .reported
            .as_mut()
            .is_some_and(|reported| reported.seen(&error));
        if before {
            self.reported_before += 1;
            if !self.out.verbose() {
                return Ok(());
            }
        }
        self.shown += 1;
        if self.shown <= ERRORS_SHOWN {
            let out = &mut *self.out;
            self.progress.suspend(|| {
                if before {
                    out.detail(&format!("{error} (reported before)"));
                } else {
                    out.warn(&error.to_string());
                }
            });
        }
        Ok(())
    }

    fn progress(&mut self, bytes: u64) {
        self.progress.set_position(bytes);
    }
}

/// The row errors last reported for `source`, when the audience is a
/// schedule.
fn reported(store: &Store, source: String, audience: Audience) -> Result<Option<Reported>> {
    match audience {
        Audience::Person => Ok(None),
        Audience::Schedule => Reported::load(store, source).map(Some),
    }
}

/// Reads one file into the store, batch by batch; reports its rejected
/// rows on stderr (and into `errors`) as `audience` wants them.
pub fn import_file(
    store: &Store,
    path: &Path,
    options: &ingest::Options,
    errors: Option<&mut ErrorsFile>,
    audience: Audience,
    out: &mut Output,
) -> Result<FileImport> {
    let size = std::fs::metadata(path).map_or(0, |meta| meta.len());
    let progress = out.progress(size);
    let reported = reported(store, path.to_string_lossy().into_owned(), audience)?;
    let mut sink = StoreSink::new(store, path, out, errors, progress, audience, reported);
    store.import_cache(true)?;
    let read = ingest::read_file_alongside(path, options, &mut sink);
    let bulk = sink.bulk.is_some();
    let finished = sink.finish();
    let cache = store.import_cache(false);
    sink.progress.finish_and_clear();
    if let Some(error) = read.as_ref().err().or(finished.as_ref().err()) {
        sink.stopped_by(error, bulk);
    }
    let summary = read?;
    finished?;
    cache?;
    if let Some(reported) = sink.reported.take() {
        reported.save(store)?;
    }
    Ok(sink.import(&summary))
}

/// Reads what a database source changed since its watermarks into the
/// store — its carts, then its orders — and moves each watermark to the
/// newest row read, once its rows are stored (the carts' after each
/// batch). `now`: see [`ingest::Options::now`]; `audience`: as for
/// [`import_file`]. One result for the carts, one for the orders. Once
/// `stop` is raised (a signal), the read ends at the next batch: what was
/// stored stays, with its watermark.
pub fn import_database(
    store: &Store,
    source: &ingest::database::DatabaseSource,
    now: Option<chrono::DateTime<chrono::Utc>>,
    audience: Audience,
    out: &mut Output,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> Vec<Result<FileImport>> {
    let name = source.name();
    let key = source.watermark_key();
    let orders_key = source.orders_watermark_key();
    let since = (|| {
        Ok(ingest::database::Since {
            carts: store.watermark(&key)?,
            orders: orders_key
                .as_deref()
                .map(|key| store.watermark(key))
                .transpose()?
                .flatten(),
        })
    })();
    let since = match since {
        Ok(since) => since,
        Err(error) => return vec![Err(error)],
    };
    let progress = indicatif::ProgressBar::hidden();
    let reported = match reported(store, key.clone(), audience) {
        Ok(reported) => reported,
        Err(error) => return vec![Err(error)],
    };
    let mut sink = StoreSink::new(store, &name, out, None, progress, audience, reported);
    // After each stored batch of carts: a read that dies later re-reads
    // at most one batch.
    let read = ingest::database::read_marking(
        source,
        since,
        now,
        &mut sink,
        &mut |value| store.set_watermark(&key, &value),
        stop,
    );
    let finished = sink.finish();
    let stored = (|| {
        let read = read?;
        finished?;
        if let Some(reported) = sink.reported.take() {
            reported.save(store)?;
        }
        let carts = sink.import(&read.carts);
        if let Some(watermark) = read.watermark {
            store.set_watermark(&key, &watermark)?;
        }
        let orders = match (read.orders, orders_key) {
            (Some(summary), Some(key)) => {
                let mut orders = sink.import(&summary);
                orders.path = name.join("orders");
                orders.carts = None;
                if let Some(watermark) = read.orders_watermark {
                    store.set_watermark(&key, &watermark)?;
                }
                Some(orders)
            }
            _ => None,
        };
        Ok((carts, orders))
    })();
    match stored {
        Ok((carts, orders)) => std::iter::once(Ok(carts)).chain(orders.map(Ok)).collect(),
        Err(error) => vec![Err(error)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output() -> Output {
        Output::new(Box::new(std::io::sink()), Box::new(std::io::sink()))
    }

    fn read(rows: u64, rejected: u64) -> FileImport {
        FileImport {
            rows,
            rejected,
            carts: Some(CartImport {
                upserted: rows - rejected,
                ..CartImport::default()
            }),
            ..FileImport::default()
        }
    }

    fn io_error() -> Result<FileImport> {
        Err(Error::io(
            "dir.csv",
            std::io::Error::other("Is a directory"),
        ))
    }

    #[test]
    fn an_unreadable_input_is_skipped_and_makes_the_outcome_partial() {
        let mut out = output();
        let mut imports = Imports::default();
        assert!(imports.take(io_error(), &mut out).unwrap().is_none());
        assert!(imports.take(Ok(read(3, 0)), &mut out).unwrap().is_some());
        assert_eq!(imports.carts_upserted, 3);
        assert_eq!(imports.finish(true, &mut out).unwrap(), Completion::Partial);
    }

    #[test]
    fn when_every_input_fails_the_last_failure_is_the_error_if_asked() {
        let mut out = output();
        let mut imports = Imports::default();
        imports.take(io_error(), &mut out).unwrap();
        assert!(matches!(
            imports.finish(true, &mut out),
            Err(Error::Io { .. })
        ));
        let mut imports = Imports::default();
        imports.take(io_error(), &mut out).unwrap();
        assert_eq!(
            imports.finish(false, &mut out).unwrap(),
            Completion::Partial
        );
    }

    #[test]
    fn rejected_rows_make_it_partial_and_store_errors_stop_it() {
        let mut out = output();
        let mut imports = Imports::default();
        imports.take(Ok(read(5, 2)), &mut out).unwrap();
        assert_eq!(imports.rows_rejected, 2);
        let store_error = Err(Error::Usage("a store failure".into()));
        assert!(imports.take(store_error, &mut out).is_err());
        assert_eq!(imports.finish(true, &mut out).unwrap(), Completion::Partial);
    }
}
