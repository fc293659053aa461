//! The policy, as a pure function: given the candidate carts, what the
//! ledger and the orders say, the suppressions, the policy and `now`, decide
//! for every cart whether a step is due and, if not, why. No I/O, no clock.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, FixedOffset, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::coupon::CouponRule;
use crate::model::{CartStatus, Currency, SendState};

mod reason;

pub use reason::SkipReason;

/// One reminder of the sequence, with the policy already merged into its
/// own overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    /// Delay after the cart's last activity.
    pub after: TimeDelta,
    /// Template stem: `<template>.subject`, `.html`, `.txt`.
    pub template: String,
    /// A/B variants (template stems); empty means just `template`.
    pub variants: Vec<String>,
    pub require_consent: bool,
    pub filters: Filters,
    /// The coupon the step's mail promises, if any (`coupon = …`). The plan
    /// does not look at it: a pool that ran dry is found when the mail is
    /// composed (skip `no-coupon`).
    pub coupon: Option<CouponRule>,
    /// `email` (the default) or a `webhook` for SMS / push providers.
    pub channel: Channel,
    /// The step requires SMS consent (`require = "sms_consent"`).
    pub require_sms_consent: bool,
    /// `cooldown` and `max_per_address` count the address's reminders on
    /// every channel for this step, not only on its own (`cross_channel`).
    pub cross_channel: bool,
}

/// How a step reaches the customer.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Channel {
    #[default]
    Email,
    Webhook(Webhook),
}

/// A channel as the caps tell channels apart: every webhook step is the
/// one channel `webhook`, as a step's `channel` key names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Email,
    Webhook,
}

impl Channel {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Channel::Email => ChannelKind::Email,
            Channel::Webhook(_) => ChannelKind::Webhook,
        }
    }
}

/// A webhook step: one signed JSON POST per cart.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The environment variable holding the HMAC key for the signature.
    pub secret_env: Option<String>,
    /// How long one call may take, connection included.
    pub timeout: std::time::Duration,
}

impl Step {
    /// The template a cart gets: a variant chosen by a stable hash of the
    /// cart id, so a cart always sees the same variant.
    pub fn template_for(&self, cart_id: &str) -> &str {
        if self.variants.is_empty() {
            return &self.template;
        }
        let digest = Sha256::digest(cart_id.as_bytes());
        let value = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        let at = usize::try_from(value % self.variants.len() as u64)
            .expect("below the number of variants, a usize");
        &self.variants[at]
    }

    /// Every template stem the step may use (none for a webhook step
    /// without templates).
    pub fn templates(&self) -> Vec<&str> {
        if self.template.is_empty() && self.variants.is_empty() {
            Vec::new()
        } else if self.variants.is_empty() {
            vec![&self.template]
        } else {
            self.variants.iter().map(String::as_str).collect()
        }
    }
}

/// A money threshold: one amount for every currency, or one per currency
/// (a currency not listed has no threshold).
#[derive(Debug, Clone, PartialEq)]
pub enum Threshold {
    Any(Decimal),
    PerCurrency(BTreeMap<String, Decimal>),
}

impl Threshold {
    pub fn for_currency(&self, currency: &Currency) -> Option<Decimal> {
        match self {
            Threshold::Any(amount) => Some(*amount),
            Threshold::PerCurrency(amounts) => amounts.get(currency.as_str()).copied(),
        }
    }
}

/// What a cart must contain (or not) to be reminded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filters {
    pub min_value: Option<Threshold>,
    pub max_value: Option<Threshold>,
    pub include_skus: Vec<glob::Pattern>,
    pub exclude_skus: Vec<glob::Pattern>,
    pub include_categories: Vec<glob::Pattern>,
    pub exclude_categories: Vec<glob::Pattern>,
}

/// Local hours in which no reminder is sent; `start > end` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    pub fn contains(&self, time: NaiveTime) -> bool {
        let time = time.with_nanosecond(0).unwrap_or(time);
        if self.start <= self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Flood guard: carts idle longer than this are never reminded.
    pub max_age: TimeDelta,
    /// Carts last active before this are never reminded (a safe first run).
    pub not_before: Option<DateTime<Utc>>,
    /// At most one reminder per address per this period, across carts.
    pub cooldown: TimeDelta,
    /// At most this many reminders per address per `window`.
    pub max_per_address: Option<u32>,
    pub window: TimeDelta,
    pub quiet_hours: Option<QuietHours>,
    /// The customer's zone when the cart says nothing.
    pub timezone: Tz,
    /// An order of one of the cart's SKUs within this stops reminders.
    pub purchased_within: TimeDelta,
    /// At most this many sends per run, most overdue first.
    pub max_sends_per_run: Option<usize>,
    /// A send refused for now waits this long, doubled on every attempt.
    pub retry_after: TimeDelta,
    /// Sends whose outcome is unknown are due again (`run --resend-unknown`).
    pub resend_unknown: bool,
    /// ... those claimed within this range only (`--unknown-since`,
    /// `--unknown-until`; inclusive, open where `None`).
    pub resend_unknown_claimed: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub out_of_stock: OutOfStock,
}

impl Policy {
    /// Whether an `unknown` send claimed at `claimed_at` is sent again.
    pub fn resends_unknown(&self, claimed_at: DateTime<Utc>) -> bool {
        let (since, until) = self.resend_unknown_claimed;
        self.resend_unknown
            && since.is_none_or(|since| claimed_at >= since)
            && until.is_none_or(|until| claimed_at <= until)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_age: TimeDelta::days(7),
            not_before: None,
            cooldown: TimeDelta::hours(20),
            max_per_address: None,
            window: TimeDelta::days(7),
            quiet_hours: None,
            timezone: Tz::UTC,
            purchased_within: TimeDelta::days(30),
            max_sends_per_run: None,
            retry_after: TimeDelta::minutes(30),
            resend_unknown: false,
            resend_unknown_claimed: (None, None),
            out_of_stock: OutOfStock::default(),
        }
    }
}

/// What the plan needs to know of a cart.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub email: String,
    /// Lower-cased address: what suppressions, orders and caps match on.
    pub email_norm: String,
    pub status: CartStatus,
    pub accepts_marketing: bool,
    pub updated_at: DateTime<Utc>,
    pub total_minor: i64,
    pub currency: Currency,
    pub items: Vec<CandidateItem>,
    /// The customer agreed to SMS / messaging (webhook steps may require it).
    pub sms_consent: bool,
    /// IANA zone name from the input, if any.
    pub timezone: Option<String>,
    /// The UTC offset the input's timestamps were written in, if known.
    pub utc_offset_seconds: Option<i32>,
}

/// A line item, as far as the plan goes.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateItem {
    pub sku: String,
    pub category: String,
    /// Quantity × unit price (the catalog's price when the cart has none).
    pub line_total_minor: i64,
    /// What the catalog says; `None` when it does not know the SKU.
    pub in_stock: Option<bool>,
}

impl CandidateItem {
    pub fn new(sku: &str, category: &str, line_total_minor: i64) -> CandidateItem {
        CandidateItem {
            sku: sku.into(),
            category: category.into(),
            line_total_minor,
            in_stock: None,
        }
    }
}

/// What a reminder does with products the catalog says are out of stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutOfStock {
    /// Leave them out of the mail (a cart left empty is skipped).
    #[default]
    DropItem,
    /// Skip the whole cart.
    SkipCart,
    /// Show them anyway.
    Ignore,
}

/// An order, as far as stopping reminders goes.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFact {
    pub created_at: DateTime<Utc>,
    pub skus: HashSet<String>,
}

/// One ledger entry, as far as the plan goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRecord {
    pub state: SendState,
    /// How many times it was claimed.
    pub attempts: u32,
    /// When it was last claimed.
    pub at: DateTime<Utc>,
}

/// What the ledger, the orders and the suppressions say, as far as the
/// candidates go.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Cart id → step name → that send.
    pub sends: HashMap<String, HashMap<String, SendRecord>>,
    /// Normalised address → the reminders sent (or that may have been
    /// sent) to it within the longest of `cooldown` and `window`.
    pub sent_to: HashMap<String, Vec<RecentSend>>,
    /// The step names [`RecentSend::step`] points into.
    pub recent_steps: Vec<String>,
    /// Normalised address → its orders.
    pub orders: HashMap<String, Vec<OrderFact>>,
    /// Normalised addresses never to mail.
    pub suppressed: HashSet<String>,
}

/// A reminder (possibly) sent to an address, for the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentSend {
    /// When it was claimed.
    pub at: DateTime<Utc>,
    /// Its step: an index into [`History::recent_steps`] (a few names, not
    /// a string per send).
    pub step: u32,
}

impl History {
    /// Adds a reminder of `step` (possibly) sent to `email_norm` at `at`.
    pub fn add_recent(&mut self, email_norm: String, at: DateTime<Utc>, step: &str) {
        let index = self
            .recent_steps
            .iter()
            .position(|name| name == step)
            .unwrap_or_else(|| {
                self.recent_steps.push(step.to_string());
                self.recent_steps.len() - 1
            });
        let step = u32::try_from(index).expect("fewer than 2^32 step names");
        self.sent_to
            .entry(email_norm)
            .or_default()
            .push(RecentSend { at, step });
    }

    /// Takes in `other`, the history of other carts and addresses.
    pub fn absorb(&mut self, other: History) {
        self.sends.extend(other.sends);
        for (email_norm, sends) in other.sent_to {
            for send in sends {
                let step = &other.recent_steps[send.step as usize];
                self.add_recent(email_norm.clone(), send.at, step);
            }
        }
        self.orders.extend(other.orders);
        self.suppressed.extend(other.suppressed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Skip(SkipReason),
    /// The step was due and the cart does not meet its conditions: it is
    /// passed over for good (the run records it `skipped`) and the cart's
    /// next step is decided on in another decision.
    PassOver(SkipReason),
}

/// A decision: a candidate's, or a step passed over for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into the candidates.
    pub cart: usize,
    /// Index into the steps: the step sent, or the step the skip concerns.
    pub step: Option<usize>,
    pub verdict: Verdict,
}

/// Decides every candidate. Steps passed over come first (the run records
/// them before anything is sent), then sends, most overdue first, so that
/// a budget or a run cut short serves the longest-waiting carts; skips
/// follow in order of last activity. Every candidate has one decision
/// that is not a pass-over.
pub fn plan(
    candidates: &[Candidate],
    history: &History,
    policy: &Policy,
    steps: &[Step],
    now: DateTime<Utc>,
) -> Vec<Decision> {
    // The most recently active open cart of each address is the one that
    // speaks for the customer.
    let mut newest: HashMap<&str, usize> = HashMap::new();
    for (index, cart) in candidates.iter().enumerate() {
        if cart.status != CartStatus::Open {
            continue;
        }
        newest
            .entry(cart.email_norm.as_str())
            .and_modify(|best| {
                let current = &candidates[*best];
                if (cart.updated_at, &cart.id) > (current.updated_at, &current.id) {
                    *best = index;
                }
            })
            .or_insert(index);
    }
    let cx = Context {
        history,
        policy,
        steps,
        now,
        // The channel of each step the recent sends name; `None` for a step
        // no longer configured, which counts on every channel.
        recent_channels: history
            .recent_steps
            .iter()
            .map(|name| {
                steps
                    .iter()
                    .find(|step| step.name == *name)
                    .map(|step| step.channel.kind())
            })
            .collect(),
    };

    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&candidates[a], &candidates[b]);
        a.updated_at
            .cmp(&b.updated_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut passed = Vec::new();
    let mut sends = Vec::new();
    let mut skips = Vec::new();
    for index in order {
        let cart = &candidates[index];
        let superseded = newest.get(cart.email_norm.as_str()) != Some(&index);
        let passes = |step, reason| {
            passed.push(Decision {
                cart: index,
                step: Some(step),
                verdict: Verdict::PassOver(reason),
            });
        };
        let (step, verdict) = decide(cart, superseded, &cx, passes);
        let decision = Decision {
            cart: index,
            step,
            verdict,
        };
        match verdict {
            Verdict::Send => sends.push(decision),
            Verdict::Skip(_) | Verdict::PassOver(_) => skips.push(decision),
        }
    }

    // Most overdue first: the longest past its step's delay.
    let overdue = |decision: &Decision| {
        let step = &steps[decision.step.expect("a send has a step")];
        now - candidates[decision.cart].updated_at - step.after
    };
    sends.sort_by(|a, b| {
        overdue(b)
            .cmp(&overdue(a))
            .then_with(|| candidates[a.cart].id.cmp(&candidates[b.cart].id))
    });
    if let Some(budget) = policy.max_sends_per_run {
        for decision in sends.iter_mut().skip(budget) {
            decision.verdict = Verdict::Skip(SkipReason::Budget);
        }
    }
    passed.extend(sends);
    passed.extend(skips);
    passed
}

/// What every cart's decision is taken against.
struct Context<'a> {
    history: &'a History,
    policy: &'a Policy,
    steps: &'a [Step],
    now: DateTime<Utc>,
    /// The channel of each of `history.recent_steps`, if still a step.
    recent_channels: Vec<Option<ChannelKind>>,
}

/// One cart's decision; `pass_over(step, reason)` is told of each step
/// passed over on the way.
fn decide(
    cart: &Candidate,
    superseded: bool,
    cx: &Context<'_>,
    mut pass_over: impl FnMut(usize, SkipReason),
) -> (Option<usize>, Verdict) {
    let (history, policy, now) = (cx.history, cx.policy, cx.now);
    let skip = |step, reason| (step, Verdict::Skip(reason));
    match cart.status {
        CartStatus::Open => {}
        CartStatus::Ordered => return skip(None, SkipReason::Ordered),
        CartStatus::Closed => return skip(None, SkipReason::Closed),
    }
    if history.suppressed.contains(&cart.email_norm) {
        return skip(None, SkipReason::Suppressed);
    }
    let orders = history
        .orders
        .get(&cart.email_norm)
        .map_or(&[][..], Vec::as_slice);
    if orders
        .iter()
        .any(|order| order.created_at >= cart.updated_at)
    {
        return skip(None, SkipReason::Ordered);
    }
    if orders.iter().any(|order| {
        now - order.created_at <= policy.purchased_within
            && cart.items.iter().any(|item| order.skus.contains(&item.sku))
    }) {
        return skip(None, SkipReason::AlreadyPurchased);
    }
    if superseded {
        return skip(None, SkipReason::Superseded);
    }
    let idle = now - cart.updated_at;
    if idle > policy.max_age {
        return skip(None, SkipReason::TooOld);
    }
    if policy
        .not_before
        .is_some_and(|limit| cart.updated_at < limit)
    {
        return skip(None, SkipReason::BeforeNotBefore);
    }

    // The next step is the first one not done: sent, passed over, or a
    // webhook refused for good. An earlier step still open holds the
    // later ones back.
    let sent = history.sends.get(&cart.id);
    for (next, step) in cx.steps.iter().enumerate() {
        let record = sent.and_then(|records| records.get(&step.name)).copied();
        if let Some(record) = record {
            match record.state {
                SendState::Sent | SendState::Skipped => continue,
                // A provider's refusal of one call (a 4xx) says nothing of
                // the channels of the later steps.
                SendState::Failed if step.channel.kind() == ChannelKind::Webhook => continue,
                // A bounced mail failed, only later than a refused one.
                SendState::Failed | SendState::Bounced => {
                    return skip(Some(next), SkipReason::Failed);
                }
                SendState::Retry => {
                    // 30m, 1h, 2h, …: exponential backoff from the last attempt.
                    let doublings = record.attempts.saturating_sub(1).min(20);
                    let wait = policy
                        .retry_after
                        .checked_mul(1_i32 << doublings)
                        .unwrap_or(TimeDelta::MAX);
                    if now - record.at < wait {
                        return skip(Some(next), SkipReason::RetryWait);
                    }
                }
                SendState::Unknown if policy.resends_unknown(record.at) => {}
                SendState::Claimed => return skip(Some(next), SkipReason::Claimed),
                SendState::Unknown => return skip(Some(next), SkipReason::Unknown),
            }
        }
        if let Some(reason) = unmet(cart, step, policy.out_of_stock) {
            // Its time has come and the cart does not qualify: the step is
            // passed over and the next one's clock runs on. Never over an
            // `unknown` send, which may have reached the customer.
            if reason.passes_over()
                && idle >= step.after
                && record.is_none_or(|record| record.state == SendState::Retry)
            {
                pass_over(next, reason);
                continue;
            }
            return skip(Some(next), reason);
        }
        return due(cart, next, record, cx);
    }
    skip(None, SkipReason::Done)
}

/// The first of the step's conditions the cart does not meet: consent,
/// SMS consent, then the content filters.
fn unmet(cart: &Candidate, step: &Step, rule: OutOfStock) -> Option<SkipReason> {
    if step.require_consent && !cart.accepts_marketing {
        return Some(SkipReason::NoConsent);
    }
    if step.require_sms_consent && !cart.sms_consent {
        return Some(SkipReason::NoSmsConsent);
    }
    filter(cart, &step.filters, rule)
}

/// Whether step `next`, whose conditions the cart meets, goes now: its
/// delay, the quiet hours, the caps.
fn due(
    cart: &Candidate,
    next: usize,
    record: Option<SendRecord>,
    cx: &Context<'_>,
) -> (Option<usize>, Verdict) {
    let (policy, now, step) = (cx.policy, cx.now, &cx.steps[next]);
    let skip = |reason| (Some(next), Verdict::Skip(reason));
    if now - cart.updated_at < step.after {
        return skip(SkipReason::NotDue);
    }
    if let Some(quiet) = &policy.quiet_hours
        && quiet.contains(local_time(cart, policy, now))
    {
        return skip(SkipReason::QuietHours);
    }
    let sent_to = cx
        .history
        .sent_to
        .get(&cart.email_norm)
        .map_or(&[][..], Vec::as_slice);
    // An unknown send re-sent on purpose does not hold back itself: its
    // own claim is one of the address's recent sends (at its claim time).
    let own = record
        .filter(|record| record.state == SendState::Unknown)
        .and_then(|record| {
            let name = cx
                .history
                .recent_steps
                .iter()
                .position(|n| *n == step.name)?;
            sent_to
                .iter()
                .position(|send| send.at == record.at && send.step as usize == name)
        });
    // The caps count the step's own channel (and steps no longer
    // configured), or every channel for a `cross_channel` step.
    let kind = step.channel.kind();
    let counts = |send: &RecentSend| {
        step.cross_channel
            || cx
                .recent_channels
                .get(send.step as usize)
                .copied()
                .flatten()
                .is_none_or(|channel| channel == kind)
    };
    let others = || {
        sent_to
            .iter()
            .enumerate()
            .filter(move |&(index, send)| Some(index) != own && counts(send))
            .map(|(_, send)| send.at)
    };
    if policy.cooldown > TimeDelta::zero() && others().any(|at| now - at < policy.cooldown) {
        return skip(SkipReason::Cooldown);
    }
    if let Some(cap) = policy.max_per_address {
        let recent = others().filter(|&at| now - at < policy.window).count();
        if recent >= cap as usize {
            return skip(SkipReason::FrequencyCap);
        }
    }
    (Some(next), Verdict::Send)
}

/// The items a reminder shows, by the out-of-stock rule; `None` when the
/// rule skips the cart.
pub fn shown_items(items: &[CandidateItem], rule: OutOfStock) -> Option<Vec<&CandidateItem>> {
    let out = |item: &&CandidateItem| item.in_stock == Some(false);
    match rule {
        OutOfStock::SkipCart if items.iter().any(|item| out(&item)) => None,
        OutOfStock::Ignore | OutOfStock::SkipCart => Some(items.iter().collect()),
        OutOfStock::DropItem => {
            let shown: Vec<&CandidateItem> = items.iter().filter(|item| !out(item)).collect();
            (shown.is_empty() == items.is_empty()).then_some(shown)
        }
    }
}

/// The first content filter the cart fails, if any.
fn filter(cart: &Candidate, filters: &Filters, rule: OutOfStock) -> Option<SkipReason> {
    fn sku(item: &CandidateItem) -> &str {
        &item.sku
    }
    fn category(item: &CandidateItem) -> &str {
        &item.category
    }
    if cart.items.is_empty() {
        return Some(SkipReason::EmptyCart);
    }
    let Some(items) = shown_items(&cart.items, rule) else {
        return Some(SkipReason::OutOfStock);
    };
    // With items left out, the value is what the mail shows.
    let total_minor = if items.len() == cart.items.len() {
        cart.total_minor
    } else {
        items
            .iter()
            .map(|item| item.line_total_minor)
            .fold(0, i64::saturating_add)
    };
    if total_minor == 0 {
        return Some(SkipReason::ZeroValue);
    }
    let total = cart.currency.minor_to_amount(total_minor);
    if let Some(min) = filters
        .min_value
        .as_ref()
        .and_then(|t| t.for_currency(&cart.currency))
        && total < min
    {
        return Some(SkipReason::BelowMinValue);
    }
    if let Some(max) = filters
        .max_value
        .as_ref()
        .and_then(|t| t.for_currency(&cart.currency))
        && total > max
    {
        return Some(SkipReason::AboveMaxValue);
    }
    let options = glob::MatchOptions {
        case_sensitive: false,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    let any = |patterns: &[glob::Pattern], pick: fn(&CandidateItem) -> &str| {
        items.iter().any(|item| {
            patterns
                .iter()
                .any(|pattern| pattern.matches_with(pick(item), options))
        })
    };
    if !filters.include_skus.is_empty() && !any(&filters.include_skus, sku) {
        return Some(SkipReason::SkuNotIncluded);
    }
    if any(&filters.exclude_skus, sku) {
        return Some(SkipReason::ExcludedSku);
    }
    if !filters.include_categories.is_empty() && !any(&filters.include_categories, category) {
        return Some(SkipReason::CategoryNotIncluded);
    }
    if any(&filters.exclude_categories, category) {
        return Some(SkipReason::ExcludedCategory);
    }
    None
}

/// The customer's wall-clock time at `now`: from the cart's zone, else the
/// offset its timestamps were written in, else the policy's zone.
pub fn local_time(cart: &Candidate, policy: &Policy, now: DateTime<Utc>) -> NaiveTime {
    if let Some(zone) = cart
        .timezone
        .as_deref()
        .and_then(|name| name.parse::<Tz>().ok())
    {
        return now.with_timezone(&zone).time();
    }
    if let Some(offset) = cart.utc_offset_seconds.and_then(FixedOffset::east_opt) {
        return now.with_timezone(&offset).time();
    }
    now.with_timezone(&policy.timezone).time()
}

#[cfg(test)]
mod tests;
