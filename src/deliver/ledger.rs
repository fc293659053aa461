//! The ledger protocol, the one place where a reminder is claimed, handed
//! over and confirmed: claim a group (at most once per (cart, step), in
//! one store transaction) → hand its mails to the transport's thread →
//! confirm each outcome when the group's report is back (`sent`, `retry`,
//! `failed`, `unknown`; a mail never handed over is released). A few
//! groups are on their way at once, so a crash leaves at most those
//! claimed. A hard bounce (5.1.x) suppresses the address.
//!
//! The store is reached only through [`LedgerStore`], the interface a
//! second store engine implements.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::handover::{self, Fate, Guards};
use super::{Background, BatchReport, Outcome, Outgoing, Transport, WebhookCall, WebhookClient};
use crate::config::Config;
use crate::decision::Decision;
use crate::error::{Error, Result};
use crate::model::SendState;
use crate::plan::SkipReason;
use crate::store::{Claim, Confirmation, DeadClaim, Store};

#[cfg(test)]
mod tests;

/// Claimed groups sent or waiting to be sent, at most, while the run
/// composes and claims the next: a crash leaves at most these `unknown`.
pub const GROUPS_IN_FLIGHT: usize = 4;

/// What the ledger protocol needs of a store.
pub trait LedgerStore {
    /// Claims sends before they leave; returns which claims were won. A
    /// claim is won only for a (cart, step) with no entry, or one in
    /// `retry` (or `unknown` with `resend_unknown`), whose cart is still
    /// open and whose address is not suppressed.
    fn claim(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        claims: &[Claim],
        resend_unknown: bool,
    ) -> Result<Vec<bool>>;

    /// Records outcomes of claimed sends; a claim not handed over
    /// (`false`) is released.
    fn confirm(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        outcomes: &[(Confirmation, bool)],
        max_attempts: u32,
    ) -> Result<()>;

    /// Adds addresses to the suppression list; returns how many were new.
    fn suppress(&self, emails: &[String], reason: &str, at: DateTime<Utc>) -> Result<u64>;

    /// The claims older than `lease` that no run confirmed.
    fn dead_claims(&self, now: DateTime<Utc>, lease: TimeDelta) -> Result<Vec<DeadClaim>>;

    /// The runs holding claims.
    fn claiming_runs(&self) -> Result<Vec<i64>>;

    /// Whether run `run_id` is over. Only PostgreSQL's runs overlap (its
    /// workers share a run); elsewhere the run lock makes every other run
    /// a dead one.
    fn run_is_dead(&self, _run_id: i64) -> Result<bool> {
        Ok(true)
    }
}

impl LedgerStore for Store {
    fn claim(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        claims: &[Claim],
        resend_unknown: bool,
    ) -> Result<Vec<bool>> {
        Store::claim(self, run_id, now, claims, resend_unknown)
    }

    fn confirm(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        outcomes: &[(Confirmation, bool)],
        max_attempts: u32,
    ) -> Result<()> {
        Store::confirm(self, run_id, now, outcomes, max_attempts)
    }

    fn suppress(&self, emails: &[String], reason: &str, at: DateTime<Utc>) -> Result<u64> {
        Store::suppress(self, emails, reason, at)
    }

    fn dead_claims(&self, now: DateTime<Utc>, lease: TimeDelta) -> Result<Vec<DeadClaim>> {
        Store::dead_claims(self, now, lease)
    }

    fn claiming_runs(&self) -> Result<Vec<i64>> {
        Store::claiming_runs(self)
    }

    fn run_is_dead(&self, run_id: i64) -> Result<bool> {
        Store::run_is_dead(self, run_id)
    }
}

/// What settling dead runs' claims did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Never handed over: due again.
    pub released: u64,
    /// Handed over with the server's answer in the journal: recorded so.
    pub answered: u64,
    /// May have reached the server: `unknown`.
    pub unknown: u64,
}

impl Recovered {
    pub fn add(&mut self, other: Recovered) {
        self.released += other.released;
        self.answered += other.answered;
        self.unknown += other.unknown;
    }

    pub fn any(&self) -> bool {
        self.released + self.answered + self.unknown > 0
    }
}

/// Settles the claims that dead runs left (older than `lease`) from their
/// hand-over journals: a claim never handed over is released, one whose
/// answer was recorded gets it, and the rest become `unknown`. Then
/// deletes the journals of runs that hold no claim (`current` excepted).
pub fn recover(
    store: &dyn LedgerStore,
    store_path: &Path,
    current: i64,
    now: DateTime<Utc>,
    delivery: &crate::config::Delivery,
) -> Result<Recovered> {
    let mut recovered = Recovered::default();
    let dead = store.dead_claims(now, delivery.lease)?;
    for claims in dead.chunk_by(|a, b| a.run_id == b.run_id) {
        let run_id = claims[0].run_id;
        let journal = handover::read(store_path, run_id);
        let confirmations: Vec<(Confirmation, bool)> = claims
            .iter()
            .map(|claim| {
                let fate = journal.fate(&claim.cart_id, &claim.step);
                let (state, reason, message_id, handed_over) = match fate {
                    Fate::NotHandedOver => {
                        recovered.released += 1;
                        (SendState::Retry, None, None, false)
                    }
                    Fate::Answered {
                        state,
                        reason,
                        message_id,
                    } => {
                        recovered.answered += 1;
                        (state, reason, message_id, true)
                    }
                    Fate::Unknown { why } => {
                        recovered.unknown += 1;
                        let reason = format!("run {run_id}: {why}");
                        (SendState::Unknown, Some(reason), None, true)
                    }
                };
                let confirmation = Confirmation {
                    cart_id: claim.cart_id.clone(),
                    step: claim.step.clone(),
                    state,
                    reason,
                    message_id,
                };
                (confirmation, handed_over)
            })
            .collect();
        store.confirm(run_id, now, &confirmations, delivery.max_attempts)?;
    }
    let holding = store.claiming_runs()?;
    if let Ok(entries) = std::fs::read_dir(handover::dir_of(store_path)) {
        for entry in entries.flatten() {
            let run = entry
                .file_name()
                .to_str()
                .and_then(|name| name.strip_prefix("run-"))
                .and_then(|id| id.parse::<i64>().ok());
            // Another worker's journal (PostgreSQL) is its until it ends,
            // claims or not.
            if let Some(run) = run
                && run != current
                && !holding.contains(&run)
                && store.run_is_dead(run)?
            {
                handover::remove(store_path, run);
            }
        }
    }
    Ok(recovered)
}

/// A composed reminder: a mail, or a webhook call.
#[derive(Debug)]
pub enum Reminder {
    Mail(Outgoing),
    Webhook(WebhookCall),
}

impl Reminder {
    pub fn cart_id(&self) -> &str {
        match self {
            Reminder::Mail(mail) => &mail.cart_id,
            Reminder::Webhook(call) => &call.cart_id,
        }
    }

    pub fn step(&self) -> &str {
        match self {
            Reminder::Mail(mail) => &mail.step,
            Reminder::Webhook(call) => &call.step,
        }
    }

    /// What the ledger records as the message's id.
    pub fn message_id(&self) -> &str {
        match self {
            Reminder::Mail(mail) => &mail.message_id,
            Reminder::Webhook(call) => &call.idempotency_key,
        }
    }
}

/// A reminder due to go, with what its claim records. `T` is the caller's
/// handle on it, given back with its decision.
#[derive(Debug)]
pub struct Due<T> {
    pub tag: T,
    pub email: String,
    /// The A/B variant the mail was rendered from, if the step has variants.
    pub variant: Option<String>,
    pub reminder: Reminder,
}

/// Opens the transport when the first mail is due, with the run's guards.
pub type Opener<'a> = Box<dyn Fn(&Config, Guards) -> Result<Box<dyn Transport>> + 'a>;

/// Where the ledger tells each reminder's decision: (tag, step, decision).
pub type Report<'r, T> = &'r mut dyn FnMut(&T, &str, Decision);

/// How the groups settled so far went.
#[derive(Debug, Default)]
pub struct Settled {
    /// Something was not sent.
    pub partial: bool,
    /// The transport broke down: nothing more can be sent this run.
    pub fatal: Option<String>,
}

impl Settled {
    /// Takes in how more groups went.
    pub fn add(&mut self, other: Settled) {
        self.partial |= other.partial;
        self.fatal = self.fatal.take().or(other.fatal);
    }
}

/// Delivers one run's groups: claim → send → confirm. Sending runs on the
/// transport's own thread; a group is confirmed when its report is back
/// ([`Sender::settle`]), while later groups are claimed and sent.
pub struct Sender<'a, T> {
    store: &'a dyn LedgerStore,
    config: &'a Config,
    run_id: i64,
    now: DateTime<Utc>,
    resend_unknown: bool,
    /// Opened at the first group with a mail: a run with nothing to send
    /// connects to nothing.
    transport: Option<Background>,
    opener: Opener<'a>,
    /// The run's hand-over journal (none in a dry run or a test send) and
    /// its stop flag.
    guards: Guards,
    /// Claimed groups whose outcomes are not recorded yet, oldest first.
    in_flight: VecDeque<InFlight<T>>,
    /// One client per timeout the webhook steps ask for.
    webhooks: HashMap<Duration, WebhookClient>,
}

/// A claimed group on its way: its reminders, and how many of them are
/// mails handed to the transport (the rest are webhook calls, made when
/// the group is settled).
struct InFlight<T> {
    claimed: Vec<Due<T>>,
    mails: usize,
}

impl<'a, T> Sender<'a, T> {
    /// A sender that opens the configured transport when it first needs it;
    /// `guards` record each hand-over before it happens, and stop them.
    pub fn new(
        store: &'a dyn LedgerStore,
        config: &'a Config,
        run_id: i64,
        now: DateTime<Utc>,
        resend_unknown: bool,
        guards: Guards,
    ) -> Sender<'a, T> {
        Sender {
            store,
            config,
            run_id,
            now,
            resend_unknown,
            transport: None,
            opener: Box::new(super::open),
            guards,
            in_flight: VecDeque::new(),
            webhooks: HashMap::new(),
        }
    }

    /// Opens transports with `opener` instead of from the configuration.
    #[must_use]
    pub fn with_opener(
        mut self,
        opener: impl Fn(&Config, Guards) -> Result<Box<dyn Transport>> + 'a,
    ) -> Sender<'a, T> {
        self.opener = Box::new(opener);
        self
    }

    /// Whether another group may be claimed before the oldest is settled.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < GROUPS_IN_FLIGHT
    }

    /// Claims a group and hands its mails to the transport. When the
    /// transport cannot even be opened, nothing is claimed, every
    /// reminder stays due, and the breakdown is returned.
    pub fn dispatch(
        &mut self,
        group: Vec<Due<T>>,
        report: Report<'_, T>,
    ) -> Result<Option<String>> {
        // Connect before claiming: a server that cannot be reached leaves
        // every mail of the group due, unclaimed.
        let has_mail = group
            .iter()
            .any(|due| matches!(due.reminder, Reminder::Mail(_)));
        if has_mail && self.transport.is_none() {
            match (self.opener)(self.config, self.guards.clone()) {
                Ok(transport) => self.transport = Some(Background::start(transport)),
                Err(Error::Transport(message)) => {
                    for due in &group {
                        report(&due.tag, due.reminder.step(), Decision::not_sent());
                    }
                    return Ok(Some(message));
                }
                Err(other) => return Err(other),
            }
        }
        let claims: Vec<Claim> = group
            .iter()
            .map(|due| Claim {
                cart_id: due.reminder.cart_id().to_string(),
                step: due.reminder.step().to_string(),
                email: due.email.clone(),
                variant: due.variant.clone(),
            })
            .collect();
        let won = self
            .store
            .claim(self.run_id, self.now, &claims, self.resend_unknown)?;
        let mut claimed = Vec::with_capacity(group.len());
        for (due, won) in group.into_iter().zip(won) {
            if won {
                claimed.push(due);
            } else {
                let skip = Decision::Skip(SkipReason::Claimed);
                report(&due.tag, due.reminder.step(), skip);
            }
        }
        // The bytes go to the transport; the rest stays for the ledger.
        let mails: Vec<Outgoing> = claimed
            .iter_mut()
            .filter_map(|due| match &mut due.reminder {
                Reminder::Mail(mail) => Some(Outgoing {
                    bytes: std::mem::take(&mut mail.bytes),
                    ..mail.clone()
                }),
                Reminder::Webhook(_) => None,
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
    /// records every outcome.
    pub fn settle(&mut self, report: Report<'_, T>) -> Result<Settled> {
        let Some(InFlight { claimed, mails }) = self.in_flight.pop_front() else {
            return Ok(Settled::default());
        };
        let transport_report = match &self.transport {
            Some(transport) if mails > 0 => transport.receive(mails),
            _ => BatchReport::default(),
        };
        let mut mail_outcomes = transport_report.outcomes.into_iter();
        let mut settled = Settled {
            partial: false,
            fatal: transport_report.fatal,
        };
        let mut confirmations = Vec::with_capacity(claimed.len());
        let mut hard_bounces = Vec::new();
        for due in &claimed {
            let outcome = match &due.reminder {
                Reminder::Mail(_) => mail_outcomes.next().unwrap_or(Outcome::NotHandedOver),
                Reminder::Webhook(call) => self.call(call),
            };
            if let (Reminder::Mail(_), Outcome::Failed(reason)) = (&due.reminder, &outcome)
                && is_hard_bounce(reason)
            {
                hard_bounces.push(due.email.clone());
            }
            let (state, decision) = classify(outcome);
            settled.partial |= state != Some(SendState::Sent);
            confirmations.push((
                Confirmation {
                    cart_id: due.reminder.cart_id().to_string(),
                    step: due.reminder.step().to_string(),
                    state: state.unwrap_or(SendState::Retry),
                    reason: decision
                        .reason()
                        .filter(|_| state.is_some())
                        .map(str::to_string),
                    message_id: Some(due.reminder.message_id().to_string()),
                },
                state.is_some(),
            ));
            report(&due.tag, due.reminder.step(), decision);
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
        Ok(settled)
    }

    /// Makes a webhook call, recording the hand-over first.
    fn call(&mut self, call: &WebhookCall) -> Outcome {
        if self.guards.stopping() {
            return Outcome::NotHandedOver;
        }
        if let Err(error) =
            self.guards
                .handing_over(&call.cart_id, &call.step, &call.idempotency_key)
        {
            return Outcome::Retry(format!("not called: cannot record the hand-over: {error}"));
        }
        let outcome = self
            .webhooks
            .entry(call.timeout)
            .or_insert_with(|| WebhookClient::new(call.timeout))
            .post(call);
        self.guards.outcome(&call.cart_id, &call.step, &outcome);
        outcome
    }

    /// Waits for every group on its way, records it, and ends the
    /// transport's sessions. The journal has served once every claim is
    /// confirmed.
    pub fn finish(&mut self, report: Report<'_, T>) -> Result<Settled> {
        let mut settled = Settled::default();
        while !self.in_flight.is_empty() {
            settled.add(self.settle(report)?);
        }
        if let Some(transport) = &mut self.transport {
            transport.finish();
        }
        if let Some(journal) = &self.guards.journal {
            journal.remove();
        }
        Ok(settled)
    }
}

/// What the ledger records for an outcome (None: released, never handed
/// over) and the decision printed for it.
fn classify(outcome: Outcome) -> (Option<SendState>, Decision) {
    match outcome {
        Outcome::Sent => (Some(SendState::Sent), Decision::Sent),
        Outcome::Retry(reason) => (Some(SendState::Retry), Decision::Retry(reason)),
        Outcome::Failed(reason) => (Some(SendState::Failed), Decision::Failed(reason)),
        Outcome::Unknown(reason) => (Some(SendState::Unknown), Decision::Unknown(reason)),
        Outcome::NotHandedOver => (None, Decision::not_sent()),
    }
}

/// A 5.1.x status (bad destination mailbox) means the address will never
/// work: it is suppressed.
pub fn is_hard_bounce(reason: &str) -> bool {
    reason
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|word| word.starts_with("5.1.") && word.len() > 4)
}
