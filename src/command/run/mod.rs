//! `recart run`: import the configured sources, plan, compose, deliver,
//! record. A dry run does all of it inside a transaction it rolls back.
//!
//! Due reminders are composed in batches (rendered in parallel while the
//! next batch is loaded), then claimed, sent and confirmed in groups by
//! the ledger protocol ([`crate::deliver::ledger`]).

mod chosen;
mod partitions;
mod printer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use super::Context;
use crate::cli::RunArgs;
use crate::compose::{self, Compose, Composed, Composer, LinkMaker};
use crate::config::{Config, Transport};
use crate::decision::{Decision, Kind};
use crate::deliver::handover::{Guards, Journal};
use crate::deliver::ledger::{self, Due, GROUPS_IN_FLIGHT, LedgerStore, Sender, Settled};
use crate::deliver::{Gallery, Reminder};
use crate::error::{Completion, Error, Result, exit};
use crate::ingest::sink::{Audience, Imports, import_database, import_file};
use crate::model::parse_email;
use crate::output::Output;
use crate::plan::{self, Candidate, SkipReason, Step, Verdict};
use crate::render::Renderer;
use crate::store::{PassOver, RunCounts, Store};

pub use printer::{Printer, RunSummary};

/// `--wait`: SQLite's longest busy timeout (i32 milliseconds, 24 days).
const WAIT_FOREVER: std::time::Duration = std::time::Duration::from_millis(i32::MAX as u64);

/// Mails claimed at once per SMTP connection.
const CLAIM_PER_CONNECTION: usize = 8;

/// Mails are composed in batches, then claimed, sent and confirmed in
/// groups.
const BATCH: usize = 200;

/// What one `recart run` is asked to do, with `--now` resolved.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    pub json: bool,
    pub preview: Option<PathBuf>,
    pub limit: Option<usize>,
    /// Re-send mails whose earlier outcome is unknown, on purpose.
    pub resend_unknown: bool,
    /// ... those claimed within this range only.
    pub unknown_claimed: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    /// Test send: deliver the due mails to this address only, record nothing.
    pub to: Option<String>,
    /// With `to` (or a dry run's preview): this cart's mail, due or not.
    pub cart: Option<String>,
    /// ... and this step's.
    pub step: Option<String>,
    /// Wait for another run's lock instead of exiting.
    pub wait: bool,
    /// Raised by SIGTERM, SIGINT or SIGHUP: stop handing mails over.
    pub stop: Arc<AtomicBool>,
}

impl RunOptions {
    pub fn new(args: &RunArgs, now: DateTime<Utc>) -> RunOptions {
        RunOptions {
            now: args.now.unwrap_or(now),
            dry_run: args.dry_run,
            json: args.json,
            preview: args.preview.clone(),
            limit: args.limit,
            resend_unknown: args.resend_unknown,
            unknown_claimed: (args.unknown_since, args.unknown_until),
            to: args.to.clone(),
            cart: args.cart.clone(),
            step: args.step.clone(),
            wait: args.wait,
            stop: Arc::default(),
        }
    }

    /// Whatever this run writes to the store is rolled back at the end.
    fn discards(&self) -> bool {
        self.dry_run || self.to.is_some()
    }
}

/// `recart run`, with its summary line on stderr: always for a dry run
/// (a person asked) and where stderr is read as a log (a terminal, the
/// journal, `-v`, JSON logs); from cron only when something needs a
/// person (README, "From cron").
pub fn execute(args: &RunArgs, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let options = RunOptions::new(args, ctx.now);
    stop_on_signals(&options.stop)?;
    let started = (ctx.clock)();
    let (completion, summary) = run(&config, &options, ctx.clock, ctx.out)?;
    let news = completion != Completion::Done || summary.needs_a_person();
    if !news && !options.dry_run && !ctx.out.logs_every_run() {
        return Ok(completion);
    }
    // A line of its own in text; JSON logs carry it as the summary's
    // `first_run` field.
    if let Some(first) = summary.first_run.filter(|_| !ctx.out.json_logs()) {
        ctx.out
            .log(&format!("recart run: {}", first.line(options.dry_run)));
    }
    let seconds = ((ctx.clock)() - started).as_seconds_f64();
    let mut fields = summary.fields();
    fields["duration_s"] = serde_json::json!((seconds * 1000.0).round() / 1000.0);
    fields["exit_code"] = serde_json::json!(completion.exit_code());
    ctx.out.summary(
        &format!("recart run: {} in {seconds:.2}s", summary.line()),
        fields,
    );
    Ok(completion)
}

/// SIGTERM, SIGINT and SIGHUP raise `stop`: the run stops claiming, lets
/// the mails on the wire finish, records them and releases the rest. A
/// second one ends the process at once (exit 128 + the signal), with the
/// guarantees of a SIGKILL: the next run settles the claims.
fn stop_on_signals(stop: &Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for signal in [SIGTERM, SIGINT, SIGHUP] {
        let register = || -> std::io::Result<()> {
            // Registered first, so that it sees the flag as the signal
            // before this one left it.
            signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stop.clone())?;
            signal_hook::flag::register(signal, stop.clone())?;
            Ok(())
        };
        register()
            .map_err(|error| Error::Usage(format!("cannot handle signal {signal}: {error}")))?;
    }
    Ok(())
}

/// The run itself; `clock` is read for bookkeeping only (when the run
/// started and ended), every decision is taken at `options.now`.
pub fn run(
    config: &Config,
    options: &RunOptions,
    clock: super::Clock<'_>,
    out: &mut Output,
) -> Result<(Completion, RunSummary)> {
    let now = options.now;
    // Everything that can fail for configuration reasons fails first.
    let renderer = Renderer::load(&config.templates_dir, &config.steps, &config.shop_name)?
        .with_timezone(config.policy.timezone)
        .at(now);
    let signer = compose::link_signer(config)?;
    let links = LinkMaker {
        config,
        signer: &signer,
        now,
    };
    compose::try_every_template(config, &renderer, &links, |_| {})?;
    let webhook_keys = compose::webhook_keys(config)?;
    if let Some(address) = &options.to {
        parse_email(address).map_err(|message| Error::Usage(format!("--to: {message}")))?;
    }
    chosen::check_options(options)?;

    let store = if options.discards() && !config.store_exists() {
        Store::open_in_memory()?
    } else if options.wait {
        // As long as another run, or a bulk first import, holds the store.
        Store::open_configured_waiting(config, WAIT_FOREVER)?
    } else {
        Store::open_configured(config)?
    };
    let mut summary = RunSummary {
        dry_run: options.dry_run,
        ..RunSummary::default()
    };
    let mut guards = Guards {
        journal: None,
        stop: options.stop.clone(),
    };
    let run_id = if options.discards() {
        store.begin_discarded()?;
        0
    } else {
        // One real run at a time per store; the lock goes when the process does.
        store.lock_runs(options.wait)?;
        let run_id = store.start_run(clock(), now)?;
        store.hold_run(run_id)?;
        summary.recovered =
            ledger::recover(&store, &config.store_path, run_id, now, &config.delivery)?;
        guards.journal = Some(Arc::new(Journal::create(&config.store_path, run_id)?));
        run_id
    };
    // Under the lock, before anything is sent: a first run says what it mails.
    let first_run = options.to.is_none() && !store.has_sent()?;
    // Workers of one PostgreSQL store import one at a time: the second
    // finds the snapshots unchanged, the watermarks moved.
    let imported =
        store.importing_alone(|| import_sources(config, &store, options, &mut summary, out))?;

    // The candidate window, by index: open carts active up to now (the
    // ones not yet due are listed as such) and at most `max_age` ago —
    // older ones could only be skipped as too old, and listing them would
    // double what an idle run reads.
    let oldest = now - config.policy.max_age;
    let policy = plan::Policy {
        resend_unknown: options.resend_unknown,
        resend_unknown_claimed: options.unknown_claimed,
        ..config.policy.clone()
    };
    let candidates = store.candidates(oldest, now)?;
    // Workers sharing a run read the ledger partition by partition.
    let shared = partitions::shared(&store, options);
    let decisions = if shared {
        Vec::new()
    } else {
        let history = store.history(oldest, now, now, &policy)?;
        let decisions = plan::plan(&candidates, &history, &policy, &config.steps, now);
        record_passed_over(&store, config, &candidates, &decisions, run_id, now)?;
        decisions
    };
    // `--cart`/`--step`: the one mail asked for, whatever the plan and the
    // ledger say of it.
    let unrecorded = chosen::Unrecorded(&store);
    let (candidates, decisions, ledger): (_, _, &dyn LedgerStore) =
        if options.cart.is_some() || options.step.is_some() {
            let chosen = chosen::choose(&store, config, options, &candidates, &decisions)?;
            out.log(&format!(
                "recart run: trying cart {}, step {} ({})",
                chosen.candidate.id, config.steps[chosen.step].name, chosen.why
            ));
            let decisions = chosen.decisions();
            (vec![chosen.candidate], decisions, &unrecorded)
        } else {
            (candidates, decisions, &store)
        };

    let table = options.dry_run && !options.json;
    let beyond_window = if table || options.preview.is_some() {
        outside_the_window(&store, config, oldest)?
    } else {
        None
    };
    let gallery = match &options.preview {
        Some(dir) => {
            let mut gallery = Gallery::new(dir)?;
            if let Some(note) = &beyond_window {
                gallery.note(note);
            }
            Some(gallery)
        }
        None => None,
    };
    let dkim = crate::deliver::DkimKey::load(config)?;
    let how = Compose {
        to: options.to.as_deref(),
        encode: !options.dry_run || gallery.is_some(),
        dkim: dkim.as_ref(),
    };
    let composer = Composer::new(&store, config, &renderer, &links, &webhook_keys, how)?;
    let mut printer = Printer::new(options.json, table, gallery, summary);
    printer.table_note = beyond_window;
    let sender = Sender::new(ledger, config, run_id, now, options.resend_unknown, guards);
    let mut batches = Batches::new(config, options, &candidates, out, printer, sender);
    if shared {
        let window = partitions::Window {
            store: &store,
            config,
            policy: &policy,
            candidates: &candidates,
            oldest,
            now,
            run_id,
        };
        window.send_by_partition(&mut batches, &composer)?;
    } else {
        batches.run(&composer, &decisions)?;
    }
    batches.finish()?;
    let Batches {
        mut printer,
        settled,
        ..
    } = batches;
    let mut completion = imported.or(if settled.partial {
        Completion::Partial
    } else {
        Completion::Done
    });
    if printer.summary.recovered.any() {
        completion = completion.or(Completion::Recovered);
    }
    if first_run {
        printer.summary.first_run = printer.first_run(now);
    }
    if options.stop.load(Ordering::Relaxed) {
        printer.summary.interrupted = true;
        completion = completion.or(Completion::Interrupted);
    }
    finish(
        &store,
        options,
        run_id,
        clock,
        printer.take(out)?,
        completion,
        settled.fatal,
        out,
    )
}

/// Records the steps the plan passed over as `skipped`, in one
/// transaction before anything is claimed: a later step never reaches the
/// ledger before an earlier one passed over (a dry run's is rolled back).
fn record_passed_over(
    store: &Store,
    config: &Config,
    candidates: &[Candidate],
    decisions: &[plan::Decision],
    run_id: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    let passed: Vec<PassOver<'_>> = decisions
        .iter()
        .filter_map(|decision| match (decision.verdict, decision.step) {
            (Verdict::PassOver(reason), Some(step)) => {
                let cart = &candidates[decision.cart];
                Some(PassOver {
                    cart_id: &cart.id,
                    step: &config.steps[step].name,
                    email: &cart.email,
                    reason: reason.as_str(),
                })
            }
            _ => None,
        })
        .collect();
    if passed.is_empty() {
        return Ok(());
    }
    store.pass_over(run_id, now, &passed)
}

/// "9 carts idle longer than `max_age` 7d not shown": the open carts before
/// the window (`oldest`), which the run does not read, counted by index
/// for the dry-run table and the preview; none if there are none.
fn outside_the_window(
    store: &Store,
    config: &Config,
    oldest: DateTime<Utc>,
) -> Result<Option<String>> {
    let count = store.open_carts_idle_before(oldest)?;
    Ok((count > 0).then(|| {
        format!(
            "{} {} idle longer than max_age {} not shown",
            printer::thousands(count),
            if count == 1 { "cart" } else { "carts" },
            printer::short_duration(config.policy.max_age)
        )
    }))
}

/// The end of a run: the ledger's `runs` row, and the breakdown of the
/// transport (if any) as the run's error.
#[allow(clippy::too_many_arguments)] // the run's pieces, each used once
fn finish(
    store: &Store,
    options: &RunOptions,
    run_id: i64,
    clock: super::Clock<'_>,
    summary: RunSummary,
    completion: Completion,
    fatal: Option<String>,
    out: &mut Output,
) -> Result<(Completion, RunSummary)> {
    if let Some(address) = &options.to {
        out.log(&format!(
            "recart run: test send: {} mail(s) delivered to {address}; nothing recorded",
            summary.count(Kind::Sent)
        ));
    }
    if !options.discards() {
        let counts = RunCounts {
            imported: summary.carts_imported + summary.orders_imported,
            sent: summary.count(Kind::Sent),
            skipped: summary.count(Kind::Skip),
            retry: summary.count(Kind::Retry),
            failed: summary.count(Kind::Failed),
            unknown: summary.count(Kind::Unknown) + summary.recovered.unknown,
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

impl Printer {
    /// Writes the preview's index and the dry-run table; gives the summary.
    fn take(&mut self, out: &mut Output) -> Result<RunSummary> {
        if let Some(gallery) = self.gallery.take() {
            let index = gallery.finish()?;
            out.log(&format!("recart run: preview in {}", index.display()));
        }
        self.print_table(out);
        Ok(std::mem::take(&mut self.summary))
    }
}

/// A due reminder and its step, waiting to be composed or claimed.
type Waiting<'a, R> = Vec<(usize, &'a Step, R)>;

/// The decisions of one run on their way: due reminders gather into
/// batches, are composed, then claimed, sent and confirmed group by group.
struct Batches<'a, 'o> {
    config: &'a Config,
    options: &'a RunOptions,
    candidates: &'a [Candidate],
    out: &'o mut Output,
    printer: Printer,
    sender: Sender<'a, usize>,
    /// Mails the run may still send (`--limit`, or one for `--to`).
    budget: usize,
    settled: Settled,
    /// Due reminders waiting until a batch is full.
    due: Waiting<'a, ()>,
    /// Composed reminders waiting to be claimed.
    ready: Waiting<'a, Reminder>,
    /// How many mails are claimed at once: enough to keep every SMTP
    /// connection busy, few enough that a crash strands little.
    claim_group: usize,
    /// How many are composed at once.
    compose_every: usize,
}

impl<'a, 'o> Batches<'a, 'o> {
    fn new(
        config: &'a Config,
        options: &'a RunOptions,
        candidates: &'a [Candidate],
        out: &'o mut Output,
        printer: Printer,
        sender: Sender<'a, usize>,
    ) -> Batches<'a, 'o> {
        let claim_group = match &config.transport {
            Transport::Smtp(settings) => settings.connections * CLAIM_PER_CONNECTION,
            Transport::File { .. } => BATCH,
        };
        // Under --limit or --to one at a time, so that a cart skipped while
        // composing leaves its place to the next; else about as many as are
        // on their way, so that composing the next overlaps sending these.
        let compose_every = if options.limit.is_some() || options.to.is_some() {
            1
        } else if options.dry_run {
            BATCH
        } else {
            (claim_group * GROUPS_IN_FLIGHT).clamp(32, BATCH)
        };
        Batches {
            config,
            options,
            candidates,
            out,
            printer,
            sender,
            budget: options
                .limit
                .unwrap_or(if options.to.is_some() { 1 } else { usize::MAX }),
            settled: Settled::default(),
            due: Vec::new(),
            ready: Vec::new(),
            claim_group,
            compose_every,
        }
    }

    /// A signal asked the run to stop: nothing more is claimed.
    fn stopping(&self) -> bool {
        self.options.stop.load(Ordering::Relaxed)
    }

    fn emit(&mut self, cart: usize, step: Option<&str>, decision: &Decision) {
        self.printer
            .emit(self.out, &self.candidates[cart], step, decision);
    }

    /// Goes through the plan's decisions; one batch is rendered on other
    /// threads while the next is loaded (not under --limit or --to, where
    /// each result counts at once).
    fn run(&mut self, composer: &Composer<'_>, decisions: &[plan::Decision]) -> Result<()> {
        std::thread::scope(|scope| -> Result<()> {
            let mut building = None;
            for (index, decision) in decisions.iter().enumerate() {
                self.decide(decision);
                let last = index + 1 == decisions.len();
                let mut finished = Vec::new();
                if self.due.len() >= self.compose_every || (last && !self.due.is_empty()) {
                    let due = std::mem::take(&mut self.due);
                    let wanted: Vec<(&str, &Step)> = due
                        .iter()
                        .map(|(cart, step, ())| (self.candidates[*cart].id.as_str(), *step))
                        .collect();
                    let keep_shown = self.printer.gallery.is_some();
                    let job = composer.start_composing(scope, &wanted, keep_shown)?;
                    finished.extend(building.replace((due, job)));
                }
                if last || self.compose_every == 1 {
                    finished.extend(building.take());
                }
                for (due, job) in finished {
                    let composed = Composer::finish_composing(job, self.printer.gallery.as_mut())?;
                    self.take_composed(due, composed);
                }
                if self.ready.len() >= self.compose_every || (last && !self.ready.is_empty()) {
                    self.deliver_ready()?;
                }
            }
            Ok(())
        })
    }

    /// Waits for the mails still on their way, and closes the transport.
    fn finish(&mut self) -> Result<()> {
        let Batches {
            sender,
            printer,
            out,
            candidates,
            ..
        } = self;
        let last = sender.finish(&mut |cart, step, decision| {
            printer.emit(out, &candidates[*cart], Some(step), &decision);
        })?;
        self.settled.add(last);
        Ok(())
    }

    /// Takes one of the plan's decisions: printed if a skip, else due.
    fn decide(&mut self, decision: &plan::Decision) {
        let steps = &self.config.steps;
        let step_name = decision.step.map(|index| steps[index].name.as_str());
        match decision.verdict {
            Verdict::Skip(reason) | Verdict::PassOver(reason) => {
                self.emit(decision.cart, step_name, &Decision::Skip(reason));
            }
            Verdict::Send if self.settled.fatal.is_some() || self.stopping() => {
                self.emit(decision.cart, step_name, &Decision::not_sent());
            }
            Verdict::Send if self.budget == 0 => {
                self.emit(decision.cart, step_name, &Decision::Skip(SkipReason::Limit));
            }
            Verdict::Send => {
                self.budget -= 1;
                let step = &steps[decision.step.expect("a send has a step")];
                self.due.push((decision.cart, step, ()));
            }
        }
    }

    /// Takes a composed batch: reminders ready to claim, or skipped.
    fn take_composed(&mut self, due: Waiting<'a, ()>, composed: Vec<Composed>) {
        for ((cart, step, ()), result) in due.into_iter().zip(composed) {
            let skip = |reason| Decision::Skip(reason);
            match result {
                Composed::Ready(reminder) => self.ready.push((cart, step, reminder)),
                Composed::Gone => self.emit(cart, Some(&step.name), &skip(SkipReason::Gone)),
                // Never a mail without the code it promises; it does not
                // count against --limit.
                Composed::NoCoupon => {
                    self.budget += 1;
                    self.emit(cart, Some(&step.name), &skip(SkipReason::NoCoupon));
                }
                // This mail could not be made (a template bound, its
                // address): nothing claimed, a later run tries it again;
                // not counted against --limit, and the run ends partial.
                Composed::Failed(reason) => {
                    self.budget += 1;
                    self.settled.partial = true;
                    self.emit(cart, Some(&step.name), &Decision::Failed(reason));
                }
            }
        }
    }

    /// Dry run: prints the composed reminders as `send`. Else claims, sends
    /// and confirms them a group at a time, a few groups on their way at
    /// once: a run killed mid-batch leaves at most those `unknown`.
    fn deliver_ready(&mut self) -> Result<()> {
        let mut rest = std::mem::take(&mut self.ready);
        if self.options.dry_run {
            for (cart, step, _) in rest {
                self.emit(cart, Some(&step.name), &Decision::Send);
            }
            return Ok(());
        }
        while !rest.is_empty() {
            let group: Vec<_> = rest.drain(..rest.len().min(self.claim_group)).collect();
            let stopping = self.stopping();
            let Batches {
                sender,
                printer,
                out,
                candidates,
                settled,
                ..
            } = self;
            let mut report = |cart: &usize, step: &str, decision: Decision| {
                printer.emit(out, &candidates[*cart], Some(step), &decision);
            };
            while !sender.has_room() {
                settled.add(sender.settle(&mut report)?);
            }
            if settled.fatal.is_some() || stopping {
                for (cart, step, _) in &group {
                    report(cart, &step.name, Decision::not_sent());
                }
                continue;
            }
            let group = group
                .into_iter()
                .map(|(cart, step, reminder)| Due {
                    tag: cart,
                    email: candidates[cart].email.clone(),
                    variant: (!step.variants.is_empty())
                        .then(|| step.template_for(reminder.cart_id()).to_string()),
                    reminder,
                })
                .collect();
            let fatal = sender.dispatch(group, &mut report)?;
            settled.add(Settled {
                partial: false,
                fatal,
            });
        }
        Ok(())
    }
}

/// Imports every configured catalog, then every source, under the one
/// outcome policy: a source that cannot be read is named and skipped.
/// Input times more than a day after the run's `now` are rejected.
fn import_sources(
    config: &Config,
    store: &Store,
    options: &RunOptions,
    summary: &mut RunSummary,
    out: &mut Output,
) -> Result<Completion> {
    let now = options.now;
    let mut imports = Imports::default();
    // Catalogs first: a cart's products are known when it is planned.
    for source in config.catalogs.iter().chain(&config.sources) {
        // A signal: the sources not begun are left for the next run.
        if options.stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        if let Some(database) = &source.database {
            let stop = Some(Arc::clone(&options.stop));
            for import in import_database(store, database, Some(now), Audience::Schedule, out, stop)
            {
                imports.take(import, out)?;
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
            let read = path
                .map_err(|error| Error::io(error.path().to_path_buf(), error.into()))
                .and_then(|path| {
                    let options = source.options(now);
                    import_file(store, &path, &options, None, Audience::Schedule, out)
                });
            if let Some(import) = imports.take(read, out)? {
                out.detail(&import.line());
            }
        }
    }
    summary.carts_imported = imports.carts_upserted;
    summary.orders_imported = imports.orders_added;
    summary.rows_rejected = imports.rows_rejected;
    summary.rows_reported_before = imports.rows_reported_before;
    // A run goes on with what it could read.
    imports.finish(false, out)
}
