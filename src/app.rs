//! The commands, wiring the stages together: import, run, suppress, check.
//! Everything here takes its time from the caller (`now`, or a clock for
//! bookkeeping), so every decision is reproducible.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::Config;
use crate::deliver::{self, FileTransport, Outcome, Outgoing, Transport};
use crate::error::{Error, Result, exit};
use crate::ingest::{self, Format};
use crate::model::{Cart, CartStatus, LineItem, Order, SendState, parse_email};
use crate::output::{DecisionRecord, Output};
use crate::plan::{self, Decision, Step, Verdict};
use crate::render::{Links, Renderer};
use crate::store::{CartImport, Claim, Confirmation, OrderImport, RunCounts, Store};
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
    pub marked_ordered: u64,
}

impl FileImport {
    /// The figures, as `import` prints them.
    pub fn line(&self) -> String {
        let path = self.path.display();
        let mut line = match (&self.carts, &self.orders) {
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
                    out.log(&format!("recart: {previous}"));
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
            out.log(&format!("recart: {error}"));
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
    reported: u64,
}

impl ingest::Sink for StoreSink<'_> {
    fn format(&mut self, format: Format, detected: bool) {
        if detected && self.announce {
            let line = format!("{}: format {format} (detected)", self.path.display());
            self.progress.suspend(|| self.out.log(&line));
        }
    }

    fn carts(&mut self, carts: Vec<Cart>) -> Result<()> {
        let done = self.store.import_carts(&carts)?;
        let total = self.carts.get_or_insert_default();
        total.upserted += done.upserted;
        total.unchanged += done.unchanged;
        total.marked_ordered += done.marked_ordered;
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

    fn rejected(&mut self, error: ingest::RowError) -> Result<()> {
        if let Some(errors) = self.errors.as_deref_mut() {
            errors.row(&error)?;
        }
        self.reported += 1;
        if self.reported <= ERRORS_SHOWN {
            self.progress.suspend(|| self.out.log(&error.to_string()));
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
        reported: 0,
    };
    let read = ingest::read_file(path, options, &mut sink);
    sink.progress.finish_and_clear();
    let summary = read?;
    if sink.reported > ERRORS_SHOWN {
        sink.out.log(&format!(
            "{}: {} more rejected rows not shown",
            path.display(),
            sink.reported - ERRORS_SHOWN
        ));
    }
    let orders = summary.format.is_some_and(Format::is_orders);
    let result = FileImport {
        path: path.to_path_buf(),
        rows: summary.rows,
        rejected: summary.rejected_rows,
        skipped: summary.skipped_rows,
        carts: (!orders).then(|| sink.carts.unwrap_or_default()),
        orders: orders.then(|| sink.orders.unwrap_or_default()),
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
        reported: 0,
    };
    let read = ingest::sqlite::read(source, since, &mut sink)?;
    if sink.reported > ERRORS_SHOWN {
        sink.out.log(&format!(
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
}

impl RunSummary {
    pub fn count(&self, decision: &str) -> u64 {
        self.decisions.get(decision).copied().unwrap_or(0)
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

/// Mails go out in batches: claimed together, sent, confirmed together.
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
    let renderer = Renderer::load(&config.templates_dir, &config.steps, &config.shop_name)?;
    let signer = link_signer(config)?;
    let links = LinkMaker {
        config,
        signer: &signer,
        now,
    };
    for step in &config.steps {
        let mut sample = sample_cart(now);
        for template in step.templates() {
            for locale in std::iter::once(String::new()).chain(renderer.locales(template)) {
                sample.locale = locale;
                renderer.render_template(
                    &sample,
                    step,
                    template,
                    &links.for_cart(&sample, step),
                )?;
            }
        }
    }
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
    // ones not yet due are listed as such), and not so old that listing
    // them as too old would drown the rest.
    let newest = now;
    let oldest = now - config.policy.max_age - config.policy.max_age;
    let policy = plan::Policy {
        resend_unknown: options.resend_unknown,
        ..config.policy.clone()
    };
    let candidates = store.candidates(oldest, newest)?;
    let history = store.history(oldest, newest, now, &policy)?;
    let decisions = plan::plan(&candidates, &history, &policy, &config.steps, now);

    let mut preview = match &options.preview {
        Some(dir) => Some(FileTransport::new(dir)?),
        None => None,
    };
    let mut printer = Printer {
        json: options.json,
        table: (options.dry_run && !options.json).then(Vec::new),
    };
    let mut sender = Sender {
        store: &store,
        config,
        run_id,
        now,
        resend_unknown: options.resend_unknown,
        transport: None,
    };
    let mut budget = options
        .limit
        .unwrap_or(if options.to.is_some() { 1 } else { usize::MAX });
    let mut fatal = None;
    let mut batch: Vec<(&Decision, Outgoing)> = Vec::new();

    let mut decisions = decisions.iter().peekable();
    while let Some(decision) = decisions.next() {
        let cart = &candidates[decision.cart];
        let step_name = decision.step.map(|index| config.steps[index].name.as_str());
        let mut emit =
            |decision: &str, reason: &str, summary: &mut RunSummary, out: &mut Output| {
                printer.emit(
                    out,
                    summary,
                    DecisionRecord {
                        cart_id: &cart.id,
                        email: &cart.email,
                        step: step_name,
                        decision,
                        reason: Some(reason),
                    },
                );
            };
        match decision.verdict {
            Verdict::Skip(reason) => emit("skip", reason.as_str(), &mut summary, out),
            Verdict::Send if fatal.is_some() => emit("retry", NOT_SENT, &mut summary, out),
            Verdict::Send if budget == 0 => {
                emit("skip", plan::SkipReason::Limit.as_str(), &mut summary, out)
            }
            Verdict::Send => {
                budget -= 1;
                let step = &config.steps[decision.step.expect("a send has a step")];
                let to = options.to.as_deref();
                match compose(&store, config, &renderer, &links, &cart.id, step, to)? {
                    Some(mail) => batch.push((decision, mail)),
                    None => emit("skip", "gone", &mut summary, out),
                }
            }
        }
        if batch.len() >= BATCH || (decisions.peek().is_none() && !batch.is_empty()) {
            if let Some(preview) = &mut preview {
                let mails: Vec<Outgoing> = batch.iter().map(|(_, mail)| mail.clone()).collect();
                if let Some(message) = preview.send(&mails).fatal {
                    return Err(Error::Transport(format!("preview: {message}")));
                }
            }
            if options.dry_run {
                for (decision, mail) in batch.drain(..) {
                    let cart = &candidates[decision.cart];
                    printer.emit(
                        out,
                        &mut summary,
                        DecisionRecord {
                            cart_id: &cart.id,
                            email: &cart.email,
                            step: Some(&mail.step),
                            decision: "send",
                            reason: None,
                        },
                    );
                }
            } else {
                let (batch_completion, batch_fatal) = sender.deliver(
                    &candidates,
                    std::mem::take(&mut batch),
                    &mut printer,
                    &mut summary,
                    out,
                )?;
                completion = completion.or(batch_completion);
                fatal = fatal.or(batch_fatal);
            }
        }
    }
    if let Some(transport) = &mut sender.transport {
        transport.close();
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

/// Prints decisions as they are made: JSON lines, or rows of the dry-run
/// table; and counts them.
struct Printer {
    json: bool,
    table: Option<Vec<Vec<String>>>,
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
            *summary
                .skips
                .entry(record.reason.unwrap_or("").to_string())
                .or_default() += 1;
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
    for source in &config.sources {
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
                    out.log(&format!("recart: {error}"));
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
                    summary.carts_imported += result.carts.map_or(0, |c| c.upserted);
                    summary.orders_imported += result.orders.map_or(0, |o| o.added);
                    summary.rows_rejected += result.rejected;
                    if result.rejected > 0 {
                        completion = Completion::Partial;
                    }
                }
                Err(error @ Error::Input { .. }) => {
                    out.log(&format!("recart: {error}"));
                    completion = Completion::Partial;
                }
                Err(other) => return Err(other),
            }
        }
    }
    Ok(completion)
}

/// Loads the cart and renders its mail; `None` if the cart vanished.
fn compose(
    store: &Store,
    config: &Config,
    renderer: &Renderer,
    links: &LinkMaker<'_>,
    cart_id: &str,
    step: &Step,
    to: Option<&str>,
) -> Result<Option<Outgoing>> {
    let Some(cart) = store.cart(cart_id)? else {
        return Ok(None);
    };
    let signed = links.for_cart(&cart, step);
    let rendered = renderer.render(&cart, step, &signed)?;
    deliver::build(&deliver::Letter {
        from: &config.from,
        reply_to: config.reply_to.as_ref(),
        to_name: &cart.first_name,
        // A test send goes to the operator's address instead of the customer's.
        to_email: to.unwrap_or(&cart.email),
        cart_id: &cart.id,
        step: &step.name,
        rendered: &rendered,
        links: &signed,
        date: links.now,
    })
    .map(Some)
}

/// Delivers batches for one run: claim → send → confirm.
struct Sender<'a> {
    store: &'a Store,
    config: &'a Config,
    run_id: i64,
    now: DateTime<Utc>,
    resend_unknown: bool,
    /// Opened at the first batch: a run with nothing to send connects to
    /// nothing.
    transport: Option<Box<dyn Transport>>,
}

impl Sender<'_> {
    /// Returns whether anything failed, and the transport's breakdown if any.
    fn deliver(
        &mut self,
        candidates: &[plan::Candidate],
        batch: Vec<(&Decision, Outgoing)>,
        printer: &mut Printer,
        summary: &mut RunSummary,
        out: &mut Output,
    ) -> Result<(Completion, Option<String>)> {
        // Connect before claiming: a server that cannot be reached leaves
        // every mail of the batch due, unclaimed.
        if self.transport.is_none() {
            match deliver::open(self.config) {
                Ok(transport) => self.transport = Some(transport),
                Err(Error::Transport(message)) => {
                    for (decision, mail) in &batch {
                        let cart = &candidates[decision.cart];
                        printer.emit(
                            out,
                            summary,
                            DecisionRecord {
                                cart_id: &cart.id,
                                email: &cart.email,
                                step: Some(&mail.step),
                                decision: "retry",
                                reason: Some(NOT_SENT),
                            },
                        );
                    }
                    return Ok((Completion::Done, Some(message)));
                }
                Err(other) => return Err(other),
            }
        }
        let steps = &self.config.steps;
        let claims: Vec<Claim> = batch
            .iter()
            .map(|(decision, mail)| Claim {
                cart_id: mail.cart_id.clone(),
                step: mail.step.clone(),
                email: candidates[decision.cart].email.clone(),
                variant: decision
                    .step
                    .map(|index| &steps[index])
                    .filter(|step| !step.variants.is_empty())
                    .map(|step| step.template_for(&mail.cart_id).to_string()),
            })
            .collect();
        let won = self
            .store
            .claim(self.run_id, self.now, &claims, self.resend_unknown)?;
        let mut claimed = Vec::new();
        for ((decision, mail), won) in batch.into_iter().zip(won) {
            if won {
                claimed.push((decision, mail));
            } else {
                let cart = &candidates[decision.cart];
                printer.emit(
                    out,
                    summary,
                    DecisionRecord {
                        cart_id: &cart.id,
                        email: &cart.email,
                        step: Some(&mail.step),
                        decision: "skip",
                        reason: Some(plan::SkipReason::Claimed.as_str()),
                    },
                );
            }
        }
        let transport = self.transport.as_mut().expect("connected above");
        let mails: Vec<Outgoing> = claimed.iter().map(|(_, mail)| mail.clone()).collect();
        let report = transport.send(&mails);
        let mut completion = Completion::Done;
        let mut confirmations = Vec::with_capacity(mails.len());
        let mut hard_bounces = Vec::new();
        for ((decision, mail), outcome) in claimed.iter().zip(&report.outcomes) {
            let cart = &candidates[decision.cart];
            let (state, reason) = match outcome {
                Outcome::Sent => (Some(SendState::Sent), None),
                Outcome::Retry(reason) => (Some(SendState::Retry), Some(reason.clone())),
                Outcome::Failed(reason) => {
                    if is_hard_bounce(reason) {
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
                    cart_id: mail.cart_id.clone(),
                    step: mail.step.clone(),
                    state: state.unwrap_or(SendState::Retry),
                    reason: reason.clone(),
                    message_id: Some(mail.message_id.clone()),
                },
                state.is_some(),
            ));
            printer.emit(
                out,
                summary,
                DecisionRecord {
                    cart_id: &cart.id,
                    email: &cart.email,
                    step: Some(&mail.step),
                    decision: state.map_or("retry", SendState::as_str),
                    reason: match state {
                        None => Some(NOT_SENT),
                        Some(_) => reason.as_deref(),
                    },
                },
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
        items: vec![
            item("SAMPLE-TENT", "Sample tent", 1, 19900),
            item("SAMPLE-MUG", "Sample mug", 2, 1250),
        ],
    }
}

// ---------------------------------------------------------------- check, suppress

/// `recart check`: the configuration loads (done by the caller), the link
/// key is there, and every step's templates render against a sample cart.
pub fn check(config: &Config, now: DateTime<Utc>, out: &mut Output) -> Result<Completion> {
    let renderer = Renderer::load(&config.templates_dir, &config.steps, &config.shop_name)?;
    let signer = link_signer(config)?;
    let links = LinkMaker {
        config,
        signer: &signer,
        now,
    };
    let mut sample = sample_cart(now);
    for step in &config.steps {
        for template in step.templates() {
            // "" picks the default set.
            for locale in std::iter::once(String::new()).chain(renderer.locales(template)) {
                sample.locale = locale.clone();
                let mail = renderer.render_template(
                    &sample,
                    step,
                    template,
                    &links.for_cart(&sample, step),
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
