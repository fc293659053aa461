//! The commands, wiring the stages together: import, run, suppress, check.
//! Everything here takes its time from the caller (`now`, or a clock for
//! bookkeeping), so every decision is reproducible.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::Config;
use crate::coupon::{self, Coupon, CouponRule};
use crate::deliver::{self, Outcome, Outgoing};
use crate::error::{Error, Result, exit};
use crate::ingest::{self, Format};
use crate::model::{Cart, CartStatus, LineItem, Order, SendState, Snapshot, parse_email};
use crate::output::{DecisionRecord, Output};
use crate::plan::{self, Decision, Step, Verdict};
use crate::render::{Links, Renderer};
use crate::store::{
    BulkLoad, CartImport, Claim, Confirmation, Draw, OrderImport, ProductImport, RunCounts, Store,
};
use crate::token::{self, Claims, Signer};

/// How a command ended when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Done,
    /// Some rows or mails failed; the rest was done.
    Partial,
}

impl Completion {
    pub fn exit_code(self) -> u8 {
        match self {
            Completion::Done => exit::OK,
            Completion::Partial => exit::PARTIAL,
        }
    }

    fn or(self, other: Completion) -> Completion {
        if self == Completion::Partial || other == Completion::Partial {
            Completion::Partial
        } else {
            Completion::Done
        }
    }
}

/// The wall clock, for bookkeeping only (when a run started and ended).
pub type Clock<'a> = &'a dyn Fn() -> DateTime<Utc>;

// ---------------------------------------------------------------- import

/// What importing one file did.
#[derive(Debug, Default, Clone)]
pub struct FileImport {
    pub path: PathBuf,
    pub rows: u64,
    pub rejected: u64,
    /// Rows of checkouts or orders without an e-mail address.
    pub skipped: u64,
    pub carts: Option<CartImport>,
    pub orders: Option<OrderImport>,
    pub products: Option<ProductImport>,
    pub marked_ordered: u64,
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
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped (no e-mail)", self.skipped));
        }
        line
    }
}

/// `recart import FILE...`; `errors` is where rejected rows are written as
/// CSV (`file,line,field,value,message`).
pub fn import(
    store_path: &Path,
    files: &[PathBuf],
    format: Format,
    errors: Option<&Path>,
    out: &mut Output,
) -> Result<Completion> {
    let store = Store::open(store_path)?;
    let mut errors = errors.map(ErrorsFile::create).transpose()?;
    let mut completion = Completion::Done;
    let mut last_failure = None;
    let mut failures = 0;
    let options = ingest::Options::format(format);
    for file in files {
        match import_file(&store, file, &options, errors.as_mut(), true, out) {
            Ok(result) => {
                out.data(&result.line());
                if result.rejected > 0 {
                    completion = Completion::Partial;
                }
            }
            // One unreadable file does not stop the others.
            Err(error @ (Error::Input { .. } | Error::Io { .. })) => {
                failures += 1;
                completion = Completion::Partial;
                if let Some(previous) = last_failure.replace(error) {
                    out.warn(&format!("recart: {previous}"));
                }
            }
            Err(other) => return Err(other),
        }
    }
    if let Some(errors) = errors {
        errors.finish()?;
    }
    match last_failure {
        Some(error) if failures == files.len() => Err(error),
        Some(error) => {
            out.warn(&format!("recart: {error}"));
            Ok(completion)
        }
        None => Ok(completion),
    }
}

/// `--errors FILE`: the rejected rows as CSV, for the operator to fix.
pub struct ErrorsFile {
    path: PathBuf,
    writer: csv::Writer<std::fs::File>,
}

impl ErrorsFile {
    pub fn create(path: &Path) -> Result<ErrorsFile> {
        let file = std::fs::File::create(path).map_err(|source| Error::io(path, source))?;
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

    fn row(&mut self, error: &ingest::RowError) -> Result<()> {
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

/// Row errors printed on stderr per file; the rest are counted (and all go
/// to `--errors FILE`).
const ERRORS_SHOWN: u64 = 100;

/// Takes a file's batches into the store as they are read.
struct StoreSink<'a> {
    store: &'a Store,
    path: &'a Path,
    out: &'a mut Output,
    errors: Option<&'a mut ErrorsFile>,
    progress: indicatif::ProgressBar,
    /// Say which format `auto` chose (`import`; `run` stays quiet for cron).
    announce: bool,
    carts: Option<CartImport>,
    orders: Option<OrderImport>,
    products: Option<ProductImport>,
    reported: u64,
    /// The first import into an empty store, once carts arrive.
    bulk: Option<BulkLoad<'a>>,
    bulk_tried: bool,
}

impl StoreSink<'_> {
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
    }

    /// Commits a bulk load, if one was started. Called however the read
    /// ended: the batches read before an error are kept, as when each
    /// batch commits on its own.
    fn finish(&mut self) -> Result<()> {
        self.bulk.take().map_or(Ok(()), BulkLoad::finish)
    }
}

impl ingest::Sink for StoreSink<'_> {
    fn format(&mut self, format: Format, detected: bool) {
        if detected && self.announce {
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
        Ok(())
    }

    fn products(&mut self, products: Vec<crate::model::Product>) -> Result<()> {
        let done = self.store.import_products(&products)?;
        let total = self.products.get_or_insert_default();
        total.upserted += done.upserted;
        total.unchanged += done.unchanged;
        Ok(())
    }

    fn rejected(&mut self, error: ingest::RowError) -> Result<()> {
        if let Some(errors) = self.errors.as_deref_mut() {
            errors.row(&error)?;
        }
        self.reported += 1;
        if self.reported <= ERRORS_SHOWN {
            self.progress.suspend(|| self.out.warn(&error.to_string()));
        }
        Ok(())
    }

    fn progress(&mut self, bytes: u64) {
        self.progress.set_position(bytes);
    }
}

/// Reads one file into the store, batch by batch; reports its rejected
/// rows on stderr (and into `errors`).
fn import_file(
    store: &Store,
    path: &Path,
    options: &ingest::Options,
    errors: Option<&mut ErrorsFile>,
    announce: bool,
    out: &mut Output,
) -> Result<FileImport> {
    let size = std::fs::metadata(path).map_or(0, |meta| meta.len());
    let progress = out.progress(size);
    let mut sink = StoreSink {
        store,
        path,
        out,
        errors,
        progress,
        announce,
        carts: None,
        orders: None,
        products: None,
        reported: 0,
        bulk: None,
        bulk_tried: false,
    };
    store.import_cache(true)?;
    let read = ingest::read_file_alongside(path, options, &mut sink);
    let finished = sink.finish();
    let cache = store.import_cache(false);
    sink.progress.finish_and_clear();
    let summary = read?;
    finished?;
    cache?;
    if sink.reported > ERRORS_SHOWN {
        sink.out.warn(&format!(
            "{}: {} more rejected rows not shown",
            path.display(),
            sink.reported - ERRORS_SHOWN
        ));
    }
    let orders = summary.format.is_some_and(Format::is_orders);
    let catalog = summary.format.is_some_and(Format::is_catalog);
    let result = FileImport {
        path: path.to_path_buf(),
        rows: summary.rows,
        rejected: summary.rejected_rows,
        skipped: summary.skipped_rows,
        carts: (!orders && !catalog).then(|| sink.carts.unwrap_or_default()),
        orders: orders.then(|| sink.orders.unwrap_or_default()),
        products: catalog.then(|| sink.products.unwrap_or_default()),
        marked_ordered: sink.carts.map_or(0, |c| c.marked_ordered)
            + sink.orders.map_or(0, |o| o.marked_ordered),
    };
    Ok(result)
}

/// Reads the carts a SQLite source changed since its watermark into the
/// store, then moves the watermark to the newest cart read.
fn import_sqlite(
    store: &Store,
    source: &ingest::sqlite::SqliteSource,
    out: &mut Output,
) -> Result<FileImport> {
    let key = source.watermark_key();
    let since = store.watermark(&key)?;
    let progress = indicatif::ProgressBar::hidden();
    let mut sink = StoreSink {
        store,
        path: &source.path,
        out,
        errors: None,
        progress,
        announce: false,
        carts: None,
        orders: None,
        products: None,
        reported: 0,
        bulk: None,
        bulk_tried: false,
    };
    let read = ingest::sqlite::read(source, since, &mut sink);
    let finished = sink.finish();
    let read = read?;
    finished?;
    if sink.reported > ERRORS_SHOWN {
        sink.out.warn(&format!(
            "{}: {} more rejected rows not shown",
            source.path.display(),
            sink.reported - ERRORS_SHOWN
        ));
    }
    if let Some(watermark) = read.watermark {
        store.set_watermark(&key, watermark)?;
    }
    Ok(FileImport {
        path: source.path.clone(),
        rows: read.summary.rows,
        rejected: read.summary.rejected_rows,
        skipped: read.summary.skipped_rows,
        carts: Some(sink.carts.unwrap_or_default()),
        orders: None,
        products: None,
        marked_ordered: sink.carts.map_or(0, |c| c.marked_ordered),
    })
}

// ---------------------------------------------------------------- run

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    pub json: bool,
    pub preview: Option<PathBuf>,
    pub limit: Option<usize>,
    /// Re-send mails whose earlier outcome is unknown, on purpose.
    pub resend_unknown: bool,
    /// Test send: deliver the due mails to this address only, record nothing.
    pub to: Option<String>,
    /// Wait for another run's lock instead of exiting.
    pub wait: bool,
}

impl RunOptions {
    /// Whatever this run writes to the store is rolled back at the end.
    fn discards(&self) -> bool {
        self.dry_run || self.to.is_some()
    }
}

/// The figures of a run, for the summary line.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub dry_run: bool,
    pub carts_imported: u64,
    pub orders_imported: u64,
    pub rows_rejected: u64,
    /// Claims of crashed runs turned `unknown` at the start of this run.
    pub expired_claims: u64,
    /// `send` (dry run), `sent`, `retry`, `failed`, `unknown`, `skip`.
    pub decisions: BTreeMap<&'static str, u64>,
    pub skips: BTreeMap<String, u64>,
    /// (step or "", reason) → count, as recorded for `recart report`.
    pub skips_by_step: BTreeMap<(String, String), u64>,
}

impl RunSummary {
    pub fn count(&self, decision: &str) -> u64 {
        self.decisions.get(decision).copied().unwrap_or(0)
    }

    /// The figures as JSON fields, for `--log-format json`.
    pub fn fields(&self) -> serde_json::Value {
        serde_json::json!({
            "event": if self.dry_run { "dry-run" } else { "run" },
            "imported_carts": self.carts_imported,
            "imported_orders": self.orders_imported,
            "rows_rejected": self.rows_rejected,
            "would_send": self.count("send"),
            "sent": self.count("sent"),
            "retry": self.count("retry"),
            "failed": self.count("failed"),
            "unknown": self.count("unknown") + self.expired_claims,
            "skipped": self.count("skip"),
            "skipped_by_reason": self.skips,
        })
    }

    /// One line for the log, e.g. for cron.
    pub fn line(&self) -> String {
        let mut line = format!(
            "imported {} carts, {} orders ({} rows rejected); ",
            self.carts_imported, self.orders_imported, self.rows_rejected
        );
        if self.dry_run {
            line.push_str(&format!("dry run: {} would be sent", self.count("send")));
        } else {
            line.push_str(&format!(
                "{} sent, {} retry, {} failed, {} unknown",
                self.count("sent"),
                self.count("retry"),
                self.count("failed"),
                self.count("unknown")
            ));
        }
        line.push_str(&format!(", {} skipped", self.count("skip")));
        if !self.skips.is_empty() {
            let reasons: Vec<String> = self
                .skips
                .iter()
                .map(|(reason, count)| format!("{reason} {count}"))
                .collect();
            line.push_str(&format!(" ({})", reasons.join(", ")));
        }
        if self.expired_claims > 0 {
            line.push_str(&format!(
                "; {} claims of an earlier run that died marked unknown",
                self.expired_claims
            ));
        }
        line
    }
}

/// The reason of a due mail that was not handed over because the transport
/// broke down: it stays due (decision `retry`).
const NOT_SENT: &str = "not-sent";

/// Mails claimed at once per SMTP connection.
const CLAIM_PER_CONNECTION: usize = 8;

/// Claimed groups sent or waiting to be sent, at most, while the run
/// composes and claims the next: a crash leaves at most these `unknown`.
const GROUPS_IN_FLIGHT: usize = 4;

/// Mails are composed in batches, then claimed, sent and confirmed in
/// groups.
const BATCH: usize = 200;

/// `recart run`: import the configured sources, plan, render, deliver,
/// record. A dry run does all of it inside a transaction it rolls back.
pub fn run(
    config: &Config,
    options: &RunOptions,
    clock: Clock<'_>,
    out: &mut Output,
) -> Result<(Completion, RunSummary)> {
    let now = options.now;
    // Everything that can fail for configuration reasons fails first.
    let renderer = Renderer::load(&config.templates_dir, &config.steps, &config.shop_name)?
        .with_timezone(config.policy.timezone);
    let signer = link_signer(config)?;
    let links = LinkMaker {
        config,
        signer: &signer,
        now,
    };
    for step in &config.steps {
        let mut sample = sample_cart(now);
        let coupon = sample_coupon(step, &signer, &sample, now);
        for template in step.templates() {
            for locale in std::iter::once(String::new()).chain(renderer.locales(template)) {
                sample.locale = locale;
                renderer.render_template(
                    &sample,
                    step,
                    template,
                    &links.for_cart(&sample, step),
                    coupon.as_ref(),
                )?;
            }
        }
    }
    let webhook_keys = webhook_keys(config)?;
    if let Some(address) = &options.to {
        parse_email(address).map_err(|message| Error::Usage(format!("--to: {message}")))?;
    }

    // One real run at a time per store; the lock goes when the process does.
    let _lock = if options.discards() {
        None
    } else {
        Some(lock_store(&config.store_path, options.wait)?)
    };
    let store = if options.discards() && !config.store_path.exists() {
        Store::open_in_memory()?
    } else {
        Store::open(&config.store_path)?
    };
    if options.discards() {
        store.begin_discarded()?;
    }
    let run_id = if options.discards() {
        0
    } else {
        store.start_run(clock(), now)?
    };

    let mut summary = RunSummary {
        dry_run: options.dry_run,
        ..RunSummary::default()
    };
    if !options.discards() {
        summary.expired_claims = store.expire_claims(now, config.delivery.lease)?;
    }
    let mut completion = import_sources(config, &store, &mut summary, out)?;

    // The candidate window, by index: open carts active up to now (the
    // ones not yet due are listed as such) and at most `max_age` ago —
    // older ones could only be skipped as too old, and listing them would
    // double what an idle run reads.
    let newest = now;
    let oldest = now - config.policy.max_age;
    let policy = plan::Policy {
        resend_unknown: options.resend_unknown,
        ..config.policy.clone()
    };
    let candidates = store.candidates(oldest, newest)?;
    let history = store.history(oldest, newest, now, &policy)?;
    let decisions = plan::plan(&candidates, &history, &policy, &config.steps, now);

    let mut printer = Printer {
        json: options.json,
        table: (options.dry_run && !options.json).then(Vec::new),
        gallery: match &options.preview {
            Some(dir) => Some(deliver::Gallery::new(dir)?),
            None => None,
        },
    };
    let mut sender = Sender {
        store: &store,
        config,
        run_id,
        now,
        resend_unknown: options.resend_unknown,
        transport: None,
        in_flight: Default::default(),
        webhooks: Default::default(),
    };
    let composer = Composer {
        store: &store,
        catalog: store.has_products()?,
        out_of_stock: config.policy.out_of_stock,
        signer: &signer,
        builder: Builder {
            config,
            renderer: &renderer,
            links: &links,
            to: options.to.as_deref(),
            encode: !options.dry_run || printer.gallery.is_some(),
            webhook_keys: &webhook_keys,
        },
        cores: std::thread::available_parallelism().map_or(1, usize::from),
    };
    let mut budget = options
        .limit
        .unwrap_or(if options.to.is_some() { 1 } else { usize::MAX });
    let mut fatal = None;
    // Due reminders wait here until a batch is full, then are composed
    // together (rendered in parallel). Under --limit or --to one at a
    // time, so that a cart skipped while composing leaves its place to the
    // next.
    let mut due: Vec<(&Decision, &Step)> = Vec::new();
    let mut batch: Vec<(&Decision, Pending)> = Vec::new();
    // How many mails are claimed at once: enough to keep every SMTP
    // connection busy, few enough that a crash strands little.
    let claim_group = match &config.transport {
        crate::config::Transport::Smtp(settings) => settings.connections * CLAIM_PER_CONNECTION,
        crate::config::Transport::File { .. } => BATCH,
    };
    // Composed about as many at a time as are on their way, so that
    // composing the next overlaps sending these.
    let compose_every = if options.limit.is_some() || options.to.is_some() {
        1
    } else if options.dry_run {
        BATCH
    } else {
        (claim_group * GROUPS_IN_FLIGHT).clamp(32, BATCH)
    };

    let mut decisions = decisions.iter().peekable();
    std::thread::scope(|scope| -> Result<()> {
        let mut building = None;
        while let Some(decision) = decisions.next() {
            let cart = &candidates[decision.cart];
            let step_name = decision.step.map(|index| config.steps[index].name.as_str());
            let record = |decision, reason| decision_of(cart, step_name, decision, Some(reason));
            match decision.verdict {
                Verdict::Skip(reason) => {
                    printer.emit(out, &mut summary, record("skip", reason.as_str()))
                }
                Verdict::Send if fatal.is_some() => {
                    printer.emit(out, &mut summary, record("retry", NOT_SENT))
                }
                Verdict::Send if budget == 0 => printer.emit(
                    out,
                    &mut summary,
                    record("skip", plan::SkipReason::Limit.as_str()),
                ),
                Verdict::Send => {
                    budget -= 1;
                    due.push((
                        decision,
                        &config.steps[decision.step.expect("a send has a step")],
                    ));
                }
            }
            let last = decisions.peek().is_none();
            // One batch is rendered on other threads while the next is loaded
            // (not under --limit or --to, where each result counts at once).
            let mut ready = Vec::new();
            if due.len() >= compose_every || (last && !due.is_empty()) {
                let wanted: Vec<(&str, &Step)> = due
                    .iter()
                    .map(|(decision, step)| (candidates[decision.cart].id.as_str(), *step))
                    .collect();
                let job = composer.start_composing(scope, &wanted, printer.gallery.is_some())?;
                ready.extend(building.replace((std::mem::take(&mut due), job)));
            }
            if last || compose_every == 1 {
                ready.extend(building.take());
            }
            for (composing, job) in ready {
                let composed = Composer::finish_composing(job, printer.gallery.as_mut())?;
                for ((decision, step), result) in composing.into_iter().zip(composed) {
                    let cart = &candidates[decision.cart];
                    let skip = |reason| decision_of(cart, Some(&step.name), "skip", Some(reason));
                    match result {
                        Composed::Ready(pending) => batch.push((decision, pending)),
                        Composed::Gone => printer.emit(out, &mut summary, skip("gone")),
                        // Never a mail without the code it promises; it does not
                        // count against --limit.
                        Composed::NoCoupon => {
                            budget += 1;
                            printer.emit(
                                out,
                                &mut summary,
                                skip(plan::SkipReason::NoCoupon.as_str()),
                            );
                        }
                    }
                }
            }
            if batch.len() >= compose_every || (last && !batch.is_empty()) {
                if options.dry_run {
                    for (decision, pending) in batch.drain(..) {
                        let cart = &candidates[decision.cart];
                        printer.emit(
                            out,
                            &mut summary,
                            decision_of(cart, Some(pending.step()), "send", None),
                        );
                    }
                } else {
                    // Claimed, sent and confirmed a few at a time, a few groups
                    // on their way at once: a run killed mid-batch leaves at
                    // most those `unknown`.
                    let mut rest = std::mem::take(&mut batch);
                    while !rest.is_empty() {
                        let group: Vec<_> = rest.drain(..rest.len().min(claim_group)).collect();
                        while sender.in_flight.len() >= GROUPS_IN_FLIGHT {
                            let (group_completion, group_fatal) =
                                sender.settle(&candidates, &mut printer, &mut summary, out)?;
                            completion = completion.or(group_completion);
                            fatal = fatal.take().or(group_fatal);
                        }
                        if fatal.is_some() {
                            for (decision, pending) in &group {
                                let cart = &candidates[decision.cart];
                                printer.emit(
                                    out,
                                    &mut summary,
                                    decision_of(
                                        cart,
                                        Some(pending.step()),
                                        "retry",
                                        Some(NOT_SENT),
                                    ),
                                );
                            }
                            continue;
                        }
                        let group_fatal =
                            sender.dispatch(&candidates, group, &mut printer, &mut summary, out)?;
                        fatal = fatal.take().or(group_fatal);
                    }
                }
            }
        }
        Ok(())
    })?;
    let (last_completion, last_fatal) =
        sender.finish(&candidates, &mut printer, &mut summary, out)?;
    completion = completion.or(last_completion);
    fatal = fatal.take().or(last_fatal);
    if let Some(gallery) = printer.gallery.take() {
        let index = gallery.finish()?;
        out.log(&format!("recart run: preview in {}", index.display()));
    }
    if let Some(mut rows) = printer.table.take() {
        // Sends first, then skips grouped by reason; plan order within.
        rows.sort_by(|a, b| (a[3] != "send", &a[4]).cmp(&(b[3] != "send", &b[4])));
        out.table(&["CART", "EMAIL", "STEP", "DECISION", "REASON"], &rows);
    }
    if let Some(address) = &options.to {
        out.log(&format!(
            "recart run: test send: {} mail(s) delivered to {address}; nothing recorded",
            summary.count("sent")
        ));
    }
    if !options.discards() {
        let counts = RunCounts {
            imported: summary.carts_imported + summary.orders_imported,
            sent: summary.count("sent"),
            skipped: summary.count("skip"),
            retry: summary.count("retry"),
            failed: summary.count("failed"),
            unknown: summary.count("unknown") + summary.expired_claims,
            skips: summary.skips_by_step.clone(),
        };
        let code = if fatal.is_some() {
            exit::ERROR
        } else {
            completion.exit_code()
        };
        store.finish_run(run_id, clock(), counts, code)?;
    }
    if let Some(message) = fatal {
        out.log(&format!("recart run: {}", summary.line()));
        return Err(Error::Transport(format!(
            "{message}; sending stopped, the mails not handed over stay due"
        )));
    }
    Ok((completion, summary))
}

/// Takes the store's run lock (`<store>.lock`): exits at once if another
/// run holds it, or waits with `wait`. The operating system releases it
/// when the process ends, however it ends.
fn lock_store(store_path: &Path, wait: bool) -> Result<std::fs::File> {
    let mut path = store_path.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| Error::io(&path, source))?;
    if wait {
        file.lock().map_err(|source| Error::io(&path, source))?;
        return Ok(file);
    }
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy { lock: path }),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::io(&path, source)),
    }
}

/// The printed record of a decision about `cart`.
fn decision_of<'a>(
    cart: &'a plan::Candidate,
    step: Option<&'a str>,
    decision: &'a str,
    reason: Option<&'a str>,
) -> DecisionRecord<'a> {
    DecisionRecord {
        cart_id: &cart.id,
        email: &cart.email,
        step,
        decision,
        reason,
    }
}

/// Prints decisions as they are made: JSON lines, or rows of the dry-run
/// table; and counts them.
struct Printer {
    json: bool,
    table: Option<Vec<Vec<String>>>,
    /// `--preview DIR`: planned mails are added as they are composed,
    /// skips as they are printed.
    gallery: Option<deliver::Gallery>,
}

impl Printer {
    fn emit(&mut self, out: &mut Output, summary: &mut RunSummary, record: DecisionRecord<'_>) {
        let decision = match record.decision {
            "send" => "send",
            "sent" => "sent",
            "retry" => "retry",
            "failed" => "failed",
            "unknown" => "unknown",
            _ => "skip",
        };
        *summary.decisions.entry(decision).or_default() += 1;
        if decision == "skip" {
            let reason = record.reason.unwrap_or("").to_string();
            *summary
                .skips_by_step
                .entry((record.step.unwrap_or("").to_string(), reason.clone()))
                .or_default() += 1;
            if let Some(gallery) = &mut self.gallery {
                gallery.add_skip(&reason, record.cart_id, record.email, record.step);
            }
            *summary.skips.entry(reason).or_default() += 1;
        }
        if self.json {
            out.json(&record);
        }
        if let Some(rows) = &mut self.table {
            rows.push(vec![
                record.cart_id.to_string(),
                record.email.to_string(),
                record.step.unwrap_or("-").to_string(),
                record.decision.to_string(),
                record.reason.unwrap_or("").to_string(),
            ]);
        }
    }
}

fn import_sources(
    config: &Config,
    store: &Store,
    summary: &mut RunSummary,
    out: &mut Output,
) -> Result<Completion> {
    let mut completion = Completion::Done;
    // Catalogs first: a cart's products are known when it is planned.
    for source in config.catalogs.iter().chain(&config.sources) {
        if let Some(sqlite) = &source.sqlite {
            match import_sqlite(store, sqlite, out) {
                Ok(result) => {
                    summary.carts_imported += result.carts.map_or(0, |c| c.upserted);
                    summary.rows_rejected += result.rejected;
                    if result.rejected > 0 {
                        completion = Completion::Partial;
                    }
                }
                Err(error @ Error::Input { .. }) => {
                    out.warn(&format!("recart: {error}"));
                    completion = Completion::Partial;
                }
                Err(other) => return Err(other),
            }
            continue;
        }
        let paths = glob::glob(&source.pattern).map_err(|error| {
            Error::config(
                &config.path,
                format!("sources path {:?}: {error}", source.pattern),
            )
        })?;
        for path in paths {
            let path = path.map_err(|error| Error::io(error.path().to_path_buf(), error.into()))?;
            match import_file(store, &path, &source.options(), None, false, out) {
                Ok(result) => {
                    out.detail(&result.line());
                    summary.carts_imported += result.carts.map_or(0, |c| c.upserted);
                    summary.orders_imported += result.orders.map_or(0, |o| o.added);
                    summary.rows_rejected += result.rejected;
                    if result.rejected > 0 {
                        completion = Completion::Partial;
                    }
                }
                Err(error @ Error::Input { .. }) => {
                    out.warn(&format!("recart: {error}"));
                    completion = Completion::Partial;
                }
                Err(other) => return Err(other),
            }
        }
    }
    Ok(completion)
}

/// A composed reminder: a mail, or a webhook call.
enum Pending {
    Mail(Outgoing),
    Webhook(deliver::WebhookCall),
}

impl Pending {
    fn cart_id(&self) -> &str {
        match self {
            Pending::Mail(mail) => &mail.cart_id,
            Pending::Webhook(call) => &call.cart_id,
        }
    }

    fn step(&self) -> &str {
        match self {
            Pending::Mail(mail) => &mail.step,
            Pending::Webhook(call) => &call.step,
        }
    }

    /// What the ledger records as the message's id.
    fn message_id(&self) -> &str {
        match self {
            Pending::Mail(mail) => &mail.message_id,
            Pending::Webhook(call) => &call.idempotency_key,
        }
    }
}

/// Turns due carts into reminders: loads the cart, draws its coupon, fills
/// it from the catalog (all through the store), then builds the reminder.
struct Composer<'a> {
    store: &'a Store,
    /// The store holds a product catalog to fill items from.
    catalog: bool,
    out_of_stock: plan::OutOfStock,
    signer: &'a Signer,
    builder: Builder<'a>,
    /// The cores to build on: asked once (it reads cgroup files), not per
    /// batch.
    cores: usize,
}

/// Renders and builds reminders from prepared carts: no store, so it can
/// work on several threads at once.
struct Builder<'a> {
    config: &'a Config,
    renderer: &'a Renderer,
    links: &'a LinkMaker<'a>,
    /// Test send: the address every mail goes to instead.
    to: Option<&'a str>,
    /// Whether the MIME message is needed: not in a dry run without a
    /// gallery, where nothing carries it.
    encode: bool,
    /// Webhook steps' signing keys, by step name.
    webhook_keys: &'a std::collections::HashMap<String, Vec<u8>>,
}

/// A due cart loaded and given its coupon, ready to render.
struct Prepared<'s> {
    /// Shared, so the templates read it in place.
    cart: std::sync::Arc<Cart>,
    step: &'s Step,
    coupon: Option<Coupon>,
}

/// A composed reminder and, for the gallery, its subject and HTML.
struct Built {
    pending: Pending,
    shown: Option<(String, String)>,
}

/// A batch being rendered and built on other threads: per worker, its
/// share of the prepared carts and what it built of them.
type BuildJob<'scope, 's> = Vec<
    std::thread::ScopedJoinHandle<
        'scope,
        (
            Vec<std::result::Result<Prepared<'s>, Composed>>,
            Result<Vec<Option<Built>>>,
        ),
    >,
>;

impl<'c> Composer<'c> {
    /// Starts composing the reminders for `wanted` (cart id, step): carts
    /// are loaded and coupons drawn here, one by one (the store is one
    /// connection); rendering and MIME building, the bulk of the work, are
    /// spread over the machine's cores while the caller goes on.
    /// `finish_composing` gives the results, in order.
    fn start_composing<'scope, 's: 'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        wanted: &[(&str, &'s Step)],
        keep_shown: bool,
    ) -> Result<BuildJob<'scope, 's>> {
        let mut prepared: Vec<std::result::Result<Prepared<'s>, Composed>> =
            Vec::with_capacity(wanted.len());
        let ids: Vec<&str> = wanted.iter().map(|(cart_id, _)| *cart_id).collect();
        let mut carts = self.store.carts(&ids)?;
        for (cart_id, step) in wanted {
            prepared.push(self.prepare(carts.remove(*cart_id), step)?);
        }
        let threads = self.cores.min(prepared.len().div_ceil(16)).max(1);
        let chunk = prepared.len().div_ceil(threads).max(1);
        let builder = &self.builder;
        let mut job = Vec::with_capacity(threads);
        while !prepared.is_empty() {
            let rest = prepared.split_off(chunk.min(prepared.len()));
            let part = std::mem::replace(&mut prepared, rest);
            job.push(scope.spawn(move || {
                let built = part
                    .iter()
                    .map(|item| match item {
                        Ok(prepared) => builder.build(prepared, keep_shown).map(Some),
                        Err(_) => Ok(None),
                    })
                    .collect();
                (part, built)
            }));
        }
        Ok(job)
    }

    /// Waits for a batch started by `start_composing`; with a gallery,
    /// each reminder is also written there.
    fn finish_composing(
        job: BuildJob<'_, '_>,
        gallery: Option<&mut deliver::Gallery>,
    ) -> Result<Vec<Composed>> {
        let mut prepared = Vec::new();
        let mut built = Vec::new();
        for worker in job {
            let (part, part_built) = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            prepared.extend(part);
            built.extend(part_built?);
        }
        let mut gallery = gallery;
        let mut composed = Vec::with_capacity(prepared.len());
        for (item, built) in prepared.into_iter().zip(built) {
            match (item, built) {
                (Err(skipped), _) => composed.push(skipped),
                (Ok(prepared), Some(built)) => {
                    if let Some(gallery) = gallery.as_deref_mut() {
                        let cart = &prepared.cart;
                        let value = cart.currency.format_in(cart.total_minor(), &cart.locale);
                        match (&built.pending, &built.shown) {
                            (Pending::Webhook(call), _) => {
                                gallery.add_webhook(call, &cart.email, &value)?
                            }
                            (Pending::Mail(mail), Some((subject, html))) => {
                                gallery.add_mail(mail, &cart.email, &value, subject, html)?
                            }
                            (Pending::Mail(_), None) => {}
                        }
                    }
                    composed.push(Composed::Ready(built.pending));
                }
                (Ok(_), None) => unreachable!("every prepared cart is built"),
            }
        }
        Ok(composed)
    }

    /// Draws the loaded cart's coupon, fills it from the catalog; or says
    /// why there is nothing to send.
    fn prepare<'s>(
        &self,
        cart: Option<Cart>,
        step: &'s Step,
    ) -> Result<std::result::Result<Prepared<'s>, Composed>> {
        let Some(mut cart) = cart else {
            return Ok(Err(Composed::Gone));
        };
        let now = self.builder.links.now;
        let Ok(coupon) = coupon_for(self.store, self.signer, &cart.id, step, now)? else {
            return Ok(Err(Composed::NoCoupon));
        };
        if self.catalog {
            let skus: Vec<&str> = cart.items.iter().map(|item| item.sku.as_str()).collect();
            let products = self.store.products(&skus)?;
            crate::render::fill_from_catalog(&mut cart, &products, self.out_of_stock);
        }
        Ok(Ok(Prepared {
            cart: std::sync::Arc::new(cart),
            step,
            coupon,
        }))
    }
}

impl Builder<'_> {
    /// Renders and builds one reminder: pure work, safe on any thread.
    fn build(&self, prepared: &Prepared<'_>, keep_shown: bool) -> Result<Built> {
        let Prepared { cart, step, coupon } = prepared;
        let signed = self.links.for_cart(cart, step);
        if let plan::Channel::Webhook(webhook) = &step.channel {
            let call = webhook_call(
                cart,
                step,
                webhook,
                &signed,
                coupon.as_ref(),
                self.links.now,
                self.webhook_keys,
            );
            return Ok(Built {
                pending: Pending::Webhook(call),
                shown: None,
            });
        }
        let rendered = self
            .renderer
            .render_shared(cart, step, &signed, coupon.as_ref())?;
        let build = if self.encode {
            deliver::build
        } else {
            deliver::check
        };
        let mail = build(&deliver::Letter {
            from: &self.config.from,
            reply_to: self.config.reply_to.as_ref(),
            to_name: &cart.first_name,
            // A test send goes to the operator's address instead of the customer's.
            to_email: self.to.unwrap_or(&cart.email),
            cart_id: &cart.id,
            step: &step.name,
            rendered: &rendered,
            links: &signed,
            date: self.links.now,
        })?;
        Ok(Built {
            pending: Pending::Mail(mail),
            shown: keep_shown.then_some((rendered.subject, rendered.html)),
        })
    }
}

/// The JSON document a webhook step posts: customer, cart with items and
/// totals, links, coupon, step, and a key stable per (cart, step).
fn webhook_call(
    cart: &Cart,
    step: &Step,
    webhook: &plan::Webhook,
    links: &Links,
    coupon: Option<&Coupon>,
    now: DateTime<Utc>,
    keys: &std::collections::HashMap<String, Vec<u8>>,
) -> deliver::WebhookCall {
    let currency = &cart.currency;
    let idempotency_key = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}\0{}", cart.id, step.name));
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("recart-{hex}")
    };
    let document = serde_json::json!({
        "event": "cart.reminder",
        "idempotency_key": idempotency_key,
        "step": step.name,
        "created_at": now.to_rfc3339(),
        "customer": {
            "email": cart.email,
            "first_name": cart.first_name,
            "phone": (!cart.phone.is_empty()).then_some(&cart.phone),
            "sms_consent": cart.sms_consent,
            "locale": cart.locale,
        },
        "cart": {
            "id": cart.id,
            "currency": currency.as_str(),
            "total": currency.minor_to_amount(cart.total_minor()).to_string(),
            "total_formatted": currency.format_in(cart.total_minor(), &cart.locale),
            "item_count": cart.item_count(),
            "items": cart.items.iter().map(|item| serde_json::json!({
                "sku": item.sku,
                "name": item.name,
                "quantity": item.quantity,
                "unit_price": currency.minor_to_amount(item.unit_price_minor).to_string(),
                "line_total": currency.minor_to_amount(item.line_total_minor()).to_string(),
                "image_url": item.image_url,
                "product_url": item.product_url,
            })).collect::<Vec<_>>(),
        },
        "links": { "recover": links.recover, "unsubscribe": links.unsubscribe },
        "coupon": coupon.map(|coupon| serde_json::json!({
            "code": coupon.code,
            "expires": coupon.expires.map(|at| at.to_rfc3339()),
        })),
    });
    let body = serde_json::to_vec(&document).expect("JSON serialises");
    deliver::WebhookCall {
        cart_id: cart.id.clone(),
        step: step.name.clone(),
        timeout: webhook.timeout,
        url: webhook.url.clone(),
        headers: webhook.headers.clone(),
        signature: keys
            .get(&step.name)
            .map(|key| deliver::signature(key, &body)),
        body,
        idempotency_key,
    }
}

/// What composing one due reminder gave.
enum Composed {
    Ready(Pending),
    /// The cart vanished from the store.
    Gone,
    /// The step promises a pool coupon and the pool is dry.
    NoCoupon,
}

/// Delivers groups for one run: claim → send → confirm. Sending runs on
/// the transport's own thread; a group is confirmed when its report is
/// back (`settle`), while later groups are claimed and sent.
struct Sender<'a> {
    store: &'a Store,
    config: &'a Config,
    run_id: i64,
    now: DateTime<Utc>,
    resend_unknown: bool,
    /// Opened at the first batch: a run with nothing to send connects to
    /// nothing.
    transport: Option<deliver::Background>,
    /// Claimed groups whose outcomes are not recorded yet, oldest first.
    in_flight: std::collections::VecDeque<InFlight<'a>>,
    /// One client per timeout the webhook steps ask for.
    webhooks: std::collections::HashMap<std::time::Duration, deliver::WebhookClient>,
}

/// A claimed group on its way: its reminders, and how many of them are
/// mails handed to the transport (the rest are webhook calls, made when
/// the group is settled).
struct InFlight<'a> {
    claimed: Vec<(&'a Decision, Pending)>,
    mails: usize,
}

impl<'a> Sender<'a> {
    fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Claims a group and hands its mails to the transport; returns the
    /// transport's breakdown if it cannot even be opened (then nothing is
    /// claimed and every mail stays due).
    fn dispatch(
        &mut self,
        candidates: &[plan::Candidate],
        group: Vec<(&'a Decision, Pending)>,
        printer: &mut Printer,
        summary: &mut RunSummary,
        out: &mut Output,
    ) -> Result<Option<String>> {
        // Connect before claiming: a server that cannot be reached leaves
        // every mail of the group due, unclaimed.
        let has_mail = group.iter().any(|(_, p)| matches!(p, Pending::Mail(_)));
        if has_mail && self.transport.is_none() {
            match deliver::open(self.config) {
                Ok(transport) => {
                    self.transport = Some(deliver::Background::start(transport));
                }
                Err(Error::Transport(message)) => {
                    for (decision, pending) in &group {
                        let cart = &candidates[decision.cart];
                        printer.emit(
                            out,
                            summary,
                            decision_of(cart, Some(pending.step()), "retry", Some(NOT_SENT)),
                        );
                    }
                    return Ok(Some(message));
                }
                Err(other) => return Err(other),
            }
        }
        let steps = &self.config.steps;
        let claims: Vec<Claim> = group
            .iter()
            .map(|(decision, pending)| Claim {
                cart_id: pending.cart_id().to_string(),
                step: pending.step().to_string(),
                email: candidates[decision.cart].email.clone(),
                variant: decision
                    .step
                    .map(|index| &steps[index])
                    .filter(|step| !step.variants.is_empty())
                    .map(|step| step.template_for(pending.cart_id()).to_string()),
            })
            .collect();
        let won = self
            .store
            .claim(self.run_id, self.now, &claims, self.resend_unknown)?;
        let mut claimed = Vec::new();
        for ((decision, pending), won) in group.into_iter().zip(won) {
            if won {
                claimed.push((decision, pending));
            } else {
                let cart = &candidates[decision.cart];
                printer.emit(
                    out,
                    summary,
                    decision_of(
                        cart,
                        Some(pending.step()),
                        "skip",
                        Some(plan::SkipReason::Claimed.as_str()),
                    ),
                );
            }
        }
        // The bytes go to the transport; the rest stays for the ledger.
        let mails: Vec<Outgoing> = claimed
            .iter_mut()
            .filter_map(|(_, pending)| match pending {
                Pending::Mail(mail) => Some(Outgoing {
                    bytes: std::mem::take(&mut mail.bytes),
                    ..mail.clone()
                }),
                Pending::Webhook(_) => None,
            })
            .collect();
        let count = mails.len();
        if count > 0
            && let Some(transport) = &self.transport
        {
            transport.submit(mails);
        }
        self.in_flight.push_back(InFlight {
            claimed,
            mails: count,
        });
        Ok(None)
    }

    /// Waits for the oldest group's report, makes its webhook calls, and
    /// records every outcome. Returns whether anything failed, and the
    /// transport's breakdown if any.
    fn settle(
        &mut self,
        candidates: &[plan::Candidate],
        printer: &mut Printer,
        summary: &mut RunSummary,
        out: &mut Output,
    ) -> Result<(Completion, Option<String>)> {
        let Some(InFlight { claimed, mails }) = self.in_flight.pop_front() else {
            return Ok((Completion::Done, None));
        };
        let report = match &self.transport {
            Some(transport) if mails > 0 => transport.receive(mails),
            _ => deliver::BatchReport::default(),
        };
        let mut mail_outcomes = report.outcomes.into_iter();
        let mut outcomes = Vec::with_capacity(claimed.len());
        for (_, pending) in &claimed {
            outcomes.push(match pending {
                Pending::Mail(_) => mail_outcomes.next().unwrap_or(Outcome::NotHandedOver),
                Pending::Webhook(call) => self
                    .webhooks
                    .entry(call.timeout)
                    .or_insert_with(|| deliver::WebhookClient::new(call.timeout))
                    .post(call),
            });
        }
        let mut completion = Completion::Done;
        let mut confirmations = Vec::with_capacity(claimed.len());
        let mut hard_bounces = Vec::new();
        for ((decision, pending), outcome) in claimed.iter().zip(&outcomes) {
            let cart = &candidates[decision.cart];
            let (state, reason) = match outcome {
                Outcome::Sent => (Some(SendState::Sent), None),
                Outcome::Retry(reason) => (Some(SendState::Retry), Some(reason.clone())),
                Outcome::Failed(reason) => {
                    if matches!(pending, Pending::Mail(_)) && is_hard_bounce(reason) {
                        hard_bounces.push(cart.email.clone());
                    }
                    (Some(SendState::Failed), Some(reason.clone()))
                }
                Outcome::Unknown(reason) => (Some(SendState::Unknown), Some(reason.clone())),
                Outcome::NotHandedOver => (None, None),
            };
            if state != Some(SendState::Sent) {
                completion = Completion::Partial;
            }
            confirmations.push((
                Confirmation {
                    cart_id: pending.cart_id().to_string(),
                    step: pending.step().to_string(),
                    state: state.unwrap_or(SendState::Retry),
                    reason: reason.clone(),
                    message_id: Some(pending.message_id().to_string()),
                },
                state.is_some(),
            ));
            printer.emit(
                out,
                summary,
                decision_of(
                    cart,
                    Some(pending.step()),
                    state.map_or("retry", SendState::as_str),
                    match state {
                        None => Some(NOT_SENT),
                        Some(_) => reason.as_deref(),
                    },
                ),
            );
        }
        self.store.confirm(
            self.run_id,
            self.now,
            &confirmations,
            self.config.delivery.max_attempts,
        )?;
        if !hard_bounces.is_empty() {
            self.store
                .suppress(&hard_bounces, "hard-bounce", self.now)?;
        }
        Ok((completion, report.fatal))
    }

    /// Waits for every group on its way, records it, and ends the
    /// transport's sessions.
    fn finish(
        &mut self,
        candidates: &[plan::Candidate],
        printer: &mut Printer,
        summary: &mut RunSummary,
        out: &mut Output,
    ) -> Result<(Completion, Option<String>)> {
        let mut completion = Completion::Done;
        let mut fatal = None;
        while self.has_in_flight() {
            let (group_completion, group_fatal) = self.settle(candidates, printer, summary, out)?;
            completion = completion.or(group_completion);
            fatal = fatal.take().or(group_fatal);
        }
        if let Some(transport) = &mut self.transport {
            transport.finish();
        }
        Ok((completion, fatal))
    }
}

/// The signing key of each webhook step that names one (`secret_env`): a
/// step naming a variable that is not set is a configuration error.
fn webhook_keys(config: &Config) -> Result<std::collections::HashMap<String, Vec<u8>>> {
    let mut keys = std::collections::HashMap::new();
    for (index, step) in config.steps.iter().enumerate() {
        if let plan::Channel::Webhook(plan::Webhook {
            secret_env: Some(variable),
            ..
        }) = &step.channel
        {
            let key = std::env::var(variable)
                .ok()
                .filter(|value| !value.trim().is_empty())
                .ok_or_else(|| {
                    Error::config(
                        &config.path,
                        format!("steps[{index}].secret_env: the variable {variable} is not set"),
                    )
                })?;
            keys.insert(step.name.clone(), key.trim().as_bytes().to_vec());
        }
    }
    Ok(keys)
}

/// A 5.1.x status (bad destination mailbox) means the address will never
/// work: it is suppressed.
fn is_hard_bounce(reason: &str) -> bool {
    reason
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|word| word.starts_with("5.1.") && word.len() > 4)
}

/// Signs the links of one mail.
struct LinkMaker<'a> {
    config: &'a Config,
    signer: &'a Signer,
    now: DateTime<Utc>,
}

impl LinkMaker<'_> {
    fn for_cart(&self, cart: &Cart, step: &Step) -> Links {
        let recover = self.signer.sign(&Claims {
            cart_id: cart.id.clone(),
            email: cart.email.clone(),
            step: step.name.clone(),
            expires: self.now + self.config.links.recover_ttl,
        });
        // An unsubscribe link must keep working long after the reminder.
        let unsubscribe = self.signer.sign(&Claims {
            cart_id: cart.id.clone(),
            email: cart.email.clone(),
            step: token::UNSUBSCRIBE.into(),
            expires: self.now + TimeDelta::days(366),
        });
        let links = &self.config.links;
        Links {
            recover: with_query(&links.recover.replace("{token}", &recover), &links.utm),
            unsubscribe: links.unsubscribe.replace("{token}", &unsubscribe),
            unsubscribe_mailto: links
                .unsubscribe_mailto
                .as_ref()
                .map(|mailto| mailto.replace("{token}", &unsubscribe)),
        }
    }
}

/// Appends `links.utm` to a URL's query (before any `#fragment`),
/// percent-encoded; an invalid URL is left as it is (config checked it).
fn with_query(url: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return url.to_string();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.query_pairs_mut().extend_pairs(pairs);
            parsed.into()
        }
        Err(_) => url.to_string(),
    }
}

/// The link-signing key: from the environment variable `links.secret_env`,
/// else from the file `links.secret_file`.
fn link_signer(config: &Config) -> Result<Signer> {
    let links = &config.links;
    if let Some(variable) = &links.secret_env
        && let Ok(value) = std::env::var(variable)
        && !value.trim().is_empty()
    {
        return Ok(Signer::new(value.trim().as_bytes()));
    }
    if let Some(file) = &links.secret_file {
        let value = std::fs::read_to_string(file).map_err(|error| {
            Error::config(
                &config.path,
                format!("links.secret_file {}: {error}", file.display()),
            )
        })?;
        if value.trim().is_empty() {
            return Err(Error::config(
                &config.path,
                format!("links.secret_file {} is empty", file.display()),
            ));
        }
        return Ok(Signer::new(value.trim().as_bytes()));
    }
    Err(Error::config(
        &config.path,
        format!(
            "links.secret_env: the variable {} is not set (it holds the key that signs links)",
            links.secret_env.as_deref().unwrap_or("?")
        ),
    ))
}

/// The coupon a step's templates are tried with: its generated code for
/// the sample cart, or a made-up pool code (nothing is drawn); None when
/// the step promises none.
fn sample_coupon(step: &Step, signer: &Signer, cart: &Cart, now: DateTime<Utc>) -> Option<Coupon> {
    match step.coupon.as_ref()? {
        CouponRule::Generate { prefix, ttl } => Some(Coupon {
            code: coupon::generate_code(signer, prefix, &cart.id, &step.name),
            expires: Some(now + *ttl),
        }),
        CouponRule::Pool { .. } => Some(Coupon {
            code: "SAMPLE-CODE-10".into(),
            expires: Some(now + TimeDelta::days(7)),
        }),
    }
}

/// A pool with no code left to give.
struct PoolDry;

/// The coupon (cart, step) gets — the one it already has, else a new
/// draw, recorded now (before the claim; rolled back with a dry run) —
/// or `Err(PoolDry)` when the step promises one and the pool is dry.
fn coupon_for(
    store: &Store,
    signer: &Signer,
    cart_id: &str,
    step: &Step,
    now: DateTime<Utc>,
) -> Result<std::result::Result<Option<Coupon>, PoolDry>> {
    let Some(rule) = &step.coupon else {
        return Ok(Ok(None));
    };
    let generated;
    let draw = match rule {
        CouponRule::Pool { pool } => Draw::Pool {
            pool,
            valid_until: now + coupon::MIN_VALIDITY,
        },
        CouponRule::Generate { prefix, ttl } => {
            generated = Coupon {
                code: coupon::generate_code(signer, prefix, cart_id, &step.name),
                expires: Some(now + *ttl),
            };
            Draw::Generated(&generated)
        }
    };
    Ok(store
        .coupon(cart_id, &step.name, draw, now)?
        .map(Some)
        .ok_or(PoolDry))
}

/// A realistic cart to try every template on before anything is sent.
fn sample_cart(now: DateTime<Utc>) -> Cart {
    let item = |sku: &str, name: &str, quantity, price| LineItem {
        sku: sku.into(),
        name: name.into(),
        category: "sample".into(),
        quantity,
        unit_price_minor: price,
        image_url: format!("https://shop.example/img/{sku}.jpg"),
        product_url: format!("https://shop.example/products/{sku}"),
    };
    Cart {
        id: "SAMPLE-1".into(),
        email: "sample@example.com".into(),
        first_name: "Sam".into(),
        locale: "en".into(),
        currency: "EUR".parse().expect("a valid code"),
        status: CartStatus::Open,
        accepts_marketing: true,
        created_at: now - TimeDelta::hours(3),
        updated_at: now - TimeDelta::hours(2),
        utc_offset_seconds: Some(0),
        timezone: String::new(),
        phone: String::new(),
        sms_consent: false,
        items: vec![
            item("SAMPLE-TENT", "Sample tent", 1, 19900),
            item("SAMPLE-MUG", "Sample mug", 2, 1250),
        ],
    }
}

// ---------------------------------------------------------------- check, suppress

/// `recart check`: the configuration loads (done by the caller), the link
/// key is there, and every step's templates render against a sample cart.
pub fn check(
    config: &Config,
    now: DateTime<Utc>,
    smtp: bool,
    out: &mut Output,
) -> Result<Completion> {
    let renderer = Renderer::load(&config.templates_dir, &config.steps, &config.shop_name)?
        .with_timezone(config.policy.timezone);
    let signer = link_signer(config)?;
    let links = LinkMaker {
        config,
        signer: &signer,
        now,
    };
    let mut sample = sample_cart(now);
    for step in &config.steps {
        let coupon = sample_coupon(step, &signer, &sample, now);
        for template in step.templates() {
            // "" picks the default set.
            for locale in std::iter::once(String::new()).chain(renderer.locales(template)) {
                sample.locale = locale.clone();
                let mail = renderer.render_template(
                    &sample,
                    step,
                    template,
                    &links.for_cart(&sample, step),
                    coupon.as_ref(),
                )?;
                let which = if locale.is_empty() {
                    template.to_string()
                } else {
                    format!("{template}.{locale}")
                };
                out.data(&format!(
                    "step {}: template {which} renders (subject: {:?})",
                    step.name, mail.subject
                ));
            }
        }
    }
    if smtp {
        match &config.transport {
            crate::config::Transport::Smtp(settings) => {
                // Connecting does EHLO, STARTTLS and AUTH; closing says QUIT.
                let mut transport = deliver::open(config)?;
                transport.close();
                out.data(&format!(
                    "SMTP {}:{}: connected, {}authenticated, quit without sending",
                    settings.host,
                    settings.port,
                    if settings.username.is_some() {
                        ""
                    } else {
                        "not "
                    }
                ));
            }
            crate::config::Transport::File { dir } => out.data(&format!(
                "transport.kind = \"file\" ({}): no SMTP relay to check",
                dir.display()
            )),
        }
    }
    out.data(&format!("{}: ok", config.path.display()));
    Ok(Completion::Done)
}

pub fn suppress_add(
    store_path: &Path,
    emails: &[String],
    now: DateTime<Utc>,
    out: &mut Output,
) -> Result<Completion> {
    let mut valid = Vec::new();
    for email in emails {
        valid.push(parse_email(email).map_err(Error::Usage)?);
    }
    let store = Store::open(store_path)?;
    let added = store.suppress(&valid, "manual", now)?;
    out.data(&format!(
        "{added} added, {} already suppressed",
        valid.len() as u64 - added
    ));
    Ok(Completion::Done)
}

/// Reads addresses from a file: one per line, or a CSV with an `email`
/// column. A field without `@` is read as a signed unsubscribe token (alone,
/// or the last part of an unsubscribe URL or mail subject): it suppresses
/// the address it binds. Expired unsubscribe tokens count (the signature
/// proves the address got the link); forged ones and recovery tokens do
/// not. Lines that hold neither are reported and skipped.
pub fn suppress_import(
    config: &Config,
    file: &Path,
    now: DateTime<Utc>,
    out: &mut Output,
) -> Result<Completion> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::io(file, source))?;
    let mut lines = text.lines().enumerate().peekable();
    let mut column = None;
    if let Some((_, header)) = lines.peek() {
        let fields: Vec<String> = header
            .split(',')
            .map(|f| f.trim().to_ascii_lowercase())
            .collect();
        if let Some(index) = fields.iter().position(|f| f == "email" || f == "token") {
            column = Some(index);
            lines.next();
        }
    }
    let mut emails = Vec::new();
    let mut tokens = 0;
    let mut completion = Completion::Done;
    let mut tokens_context: Option<(Signer, Option<Store>)> = None;
    let store_path = &config.store_path;
    for (index, line) in lines {
        let field = match column {
            Some(column) => line.split(',').nth(column).unwrap_or(""),
            None => line,
        };
        let field = field.trim().trim_matches('"');
        if field.is_empty() {
            continue;
        }
        let read = if field.contains('@') {
            parse_email(field)
        } else {
            let (signer, store) = match &tokens_context {
                Some(context) => context,
                None => tokens_context.insert((
                    link_signer(config)?,
                    if store_path.exists() {
                        Some(Store::open(store_path)?)
                    } else {
                        None
                    },
                )),
            };
            let token = field
                .rsplit(|c: char| c.is_whitespace() || "/?#&=:".contains(c))
                .find(|part| !part.is_empty())
                .unwrap_or(field);
            unsubscribe_address(signer, store.as_ref(), token).inspect(|_| tokens += 1)
        };
        match read {
            Ok(email) => emails.push(email),
            Err(message) => {
                out.log(&format!(
                    "{}:{}: field email: {message}",
                    file.display(),
                    index + 1
                ));
                completion = Completion::Partial;
            }
        }
    }
    let store = match tokens_context.and_then(|(_, store)| store) {
        Some(store) => store,
        None => Store::open(store_path)?,
    };
    let added = store.suppress(&emails, "import", now)?;
    out.data(&format!(
        "{}: {} addresses read ({tokens} from tokens), {added} added, {} already suppressed",
        file.display(),
        emails.len(),
        emails.len() as u64 - added
    ));
    Ok(completion)
}

/// The address a signed unsubscribe token binds.
fn unsubscribe_address(
    signer: &Signer,
    store: Option<&Store>,
    token: &str,
) -> std::result::Result<String, String> {
    let unverified = token::Unverified::parse(token)
        .map_err(|_| "neither an e-mail address nor a token".to_string())?;
    if unverified.step != token::UNSUBSCRIBE {
        return Err(format!(
            "a token for step {:?}, not an unsubscribe token",
            unverified.step
        ));
    }
    let email = token_email(&unverified, store)
        .map_err(|error| error.to_string())?
        .ok_or_else(|| {
            format!(
                "token for cart {:?}, which is not in the store",
                unverified.cart_id
            )
        })?;
    unverified
        .authenticate(signer, &email)
        .map(|claims| claims.email)
        .map_err(|error| error.to_string())
}

/// The address to check a token against: its own (v1), else the stored
/// cart's.
fn token_email(unverified: &token::Unverified, store: Option<&Store>) -> Result<Option<String>> {
    if let Some(email) = &unverified.email {
        return Ok(Some(email.clone()));
    }
    match store {
        Some(store) => Ok(store.cart(&unverified.cart_id)?.map(|cart| cart.email)),
        None => Ok(None),
    }
}

/// `recart token verify TOKEN`: what it binds, or why it is invalid.
pub fn token_verify(
    config: &Config,
    text: &str,
    email: Option<&str>,
    now: DateTime<Utc>,
    out: &mut Output,
) -> Result<Completion> {
    let signer = link_signer(config)?;
    let invalid = |error: token::TokenError| Error::Token(format!("invalid: {error}"));
    let unverified = token::Unverified::parse(text).map_err(invalid)?;
    let email = match email {
        Some(email) => email.trim().to_string(),
        None => {
            let store = if config.store_path.exists() {
                Some(Store::open(&config.store_path)?)
            } else {
                None
            };
            token_email(&unverified, store.as_ref())?.ok_or_else(|| {
                Error::Token(format!(
                    "cannot verify: cart {:?} is not in the store (give --email)",
                    unverified.cart_id
                ))
            })?
        }
    };
    let claims = unverified.verify(&signer, &email, now).map_err(invalid)?;
    out.data("valid");
    out.data(&format!("cart_id: {}", claims.cart_id));
    out.data(&format!("email: {}", claims.email));
    out.data(&format!("step: {}", claims.step));
    out.data(&format!(
        "expires: {}",
        claims
            .expires
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    Ok(Completion::Done)
}

// ---------------------------------------------------------------- coupons

/// `recart coupons import FILE`: adds a pool file's codes (CSV: `code`,
/// optional `expires` and `pool`); bad rows are reported and skipped.
pub fn coupons_import(
    store_path: &Path,
    file: &Path,
    now: DateTime<Utc>,
    out: &mut Output,
) -> Result<Completion> {
    let pool = coupon::read_pool(file)?;
    for error in pool.rejected.iter().take(ERRORS_SHOWN as usize) {
        out.log(&error.to_string());
    }
    if pool.rejected.len() as u64 > ERRORS_SHOWN {
        out.log(&format!(
            "{}: {} more rejected rows not shown",
            file.display(),
            pool.rejected.len() as u64 - ERRORS_SHOWN
        ));
    }
    let store = Store::open(store_path)?;
    let done = store.import_coupons(&pool.codes, now)?;
    out.data(&format!(
        "{}: {} rows read, {} codes added, {} already known, {} rejected",
        file.display(),
        pool.rows,
        done.added,
        done.known,
        pool.rejected.len()
    ));
    Ok(if pool.rejected.is_empty() {
        Completion::Done
    } else {
        Completion::Partial
    })
}

/// `recart coupons list`: per pool, the codes still free, given and
/// expired unused; the generated codes as pool `(generated)`.
pub fn coupons_list(store_path: &Path, now: DateTime<Utc>, out: &mut Output) -> Result<Completion> {
    let store = Store::open(store_path)?;
    let rows: Vec<Vec<String>> = store
        .coupon_stock(now)?
        .into_iter()
        .map(|stock| {
            vec![
                stock.pool.unwrap_or_else(|| "(generated)".into()),
                stock.free.to_string(),
                stock.given.to_string(),
                stock.expired.to_string(),
            ]
        })
        .collect();
    out.table(&["POOL", "FREE", "GIVEN", "EXPIRED"], &rows);
    Ok(Completion::Done)
}

pub fn suppress_list(store_path: &Path, out: &mut Output) -> Result<Completion> {
    let store = Store::open(store_path)?;
    let rows: Vec<Vec<String>> = store
        .suppressions()?
        .into_iter()
        .map(|(email, reason, at)| vec![email, reason, at.to_rfc3339()])
        .collect();
    out.table(&["EMAIL", "REASON", "SINCE"], &rows);
    Ok(Completion::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_bounces_are_5_1_x() {
        assert!(is_hard_bounce("permanent error (550): 5.1.1 user unknown"));
        assert!(!is_hard_bounce(
            "permanent error (554): 5.7.1 rejected as spam"
        ));
        assert!(!is_hard_bounce("transient error (450): 4.1.1 try later"));
    }
}

// ---------------------------------------------------------------- report, runs

/// How `report` prints its figures on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

/// `recart report`: per step what was sent, failed, retried, unknown and
/// skipped over `[since, now]`, and what the reminders recovered.
pub fn report(
    config: &Config,
    now: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
    format: ReportFormat,
    html: Option<&Path>,
    out: &mut Output,
) -> Result<Completion> {
    let since = since.unwrap_or(now - TimeDelta::days(30));
    if since > now {
        return Err(Error::Usage(format!(
            "--since {} is after --now {}",
            since.to_rfc3339(),
            now.to_rfc3339()
        )));
    }
    let store = Store::open(&config.store_path)?;
    let (sends, orders, skips) = store.report_data(since, now)?;
    let steps: Vec<String> = config.steps.iter().map(|s| s.name.clone()).collect();
    let report = crate::report::build(
        since,
        now,
        config.attribution_window,
        &steps,
        &sends,
        &orders,
        &skips,
    );
    match format {
        ReportFormat::Table => {
            out.table(&crate::report::Report::TABLE_HEADER, &report.table_rows());
            for note in report.notes() {
                out.data(&note);
            }
        }
        ReportFormat::Json => out.json(&report),
        ReportFormat::Csv => out.raw(&report.csv()),
    }
    if let Some(path) = html {
        std::fs::write(path, report.html()).map_err(|source| Error::io(path, source))?;
        out.log(&format!("wrote {}", path.display()));
    }
    Ok(Completion::Done)
}

/// `recart runs`: the last runs from the store, newest first.
pub fn runs(config: &Config, limit: usize, json: bool, out: &mut Output) -> Result<Completion> {
    let store = Store::open(&config.store_path)?;
    let runs = store.runs(limit)?;
    if json {
        for run in &runs {
            out.json(&serde_json::json!({
                "id": run.id,
                "started_at": run.started_at.to_rfc3339(),
                "finished_at": run.finished_at.map(|t| t.to_rfc3339()),
                "now": run.now.to_rfc3339(),
                "imported": run.imported,
                "sent": run.sent,
                "skipped": run.skipped,
                "retry": run.retry,
                "failed": run.failed,
                "unknown": run.unknown,
                "exit_code": run.exit_code,
            }));
        }
        return Ok(Completion::Done);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            vec![
                run.id.to_string(),
                run.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                run.finished_at.map_or_else(
                    || "unfinished".to_string(),
                    |end| format!("{}s", (end - run.started_at).num_seconds()),
                ),
                run.now.to_rfc3339(),
                run.imported.to_string(),
                run.sent.to_string(),
                run.skipped.to_string(),
                run.retry.to_string(),
                run.failed.to_string(),
                run.unknown.to_string(),
                run.exit_code
                    .map_or_else(|| "-".into(), |code| code.to_string()),
            ]
        })
        .collect();
    out.table(
        &[
            "RUN", "STARTED", "TOOK", "NOW", "IMPORTED", "SENT", "SKIPPED", "RETRY", "FAILED",
            "UNKNOWN", "EXIT",
        ],
        &rows,
    );
    Ok(Completion::Done)
}

// ---------------------------------------------------------------- prune, forget

/// `recart prune --older-than D`: carts last active and orders placed before
/// `cutoff` are deleted; older ledger entries keep their counts but lose
/// their addresses.
pub fn prune(config: &Config, cutoff: DateTime<Utc>, out: &mut Output) -> Result<Completion> {
    let store = Store::open(&config.store_path)?;
    let pruned = store.prune(cutoff)?;
    out.data(&format!(
        "before {}: {} carts and {} orders deleted, {} ledger entries anonymised",
        cutoff.to_rfc3339(),
        pruned.carts,
        pruned.orders,
        pruned.sends_anonymised
    ));
    Ok(Completion::Done)
}

/// `recart forget EMAIL...`: erases each person from the store.
pub fn forget(
    config: &Config,
    emails: &[String],
    now: DateTime<Utc>,
    out: &mut Output,
) -> Result<Completion> {
    let store = Store::open(&config.store_path)?;
    for email in emails {
        let done = store.forget(email, now)?;
        out.data(&format!(
            "{email}: {} carts and {} orders deleted, {} ledger entries anonymised; kept as a hash so it is never mailed",
            done.carts, done.orders, done.sends_anonymised
        ));
    }
    Ok(Completion::Done)
}
