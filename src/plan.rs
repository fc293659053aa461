//! The policy, as a pure function: given the candidate carts, what the
//! ledger and the orders say, the suppressions, the policy and `now`, decide
//! for every cart whether a step is due and, if not, why. No I/O, no clock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::coupon::CouponRule;
use crate::model::{CartStatus, Currency, SendState};

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
}

/// How a step reaches the customer.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Channel {
    #[default]
    Email,
    Webhook(Webhook),
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
    /// Normalised address → times it was sent (or may have been sent) a
    /// reminder, within the longest of `cooldown` and `window`.
    pub sent_to: HashMap<String, Vec<DateTime<Utc>>>,
    /// Normalised address → its orders.
    pub orders: HashMap<String, Vec<OrderFact>>,
    /// Normalised addresses never to mail.
    pub suppressed: HashSet<String>,
}

/// Why a cart gets no mail in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// The cart was bought, or its customer ordered after its last activity.
    Ordered,
    /// The shop closed the cart.
    Closed,
    /// The customer bought one of the cart's products within `purchased_within`.
    AlreadyPurchased,
    /// The address is on the suppression list.
    Suppressed,
    /// The same address has a more recently active open cart.
    Superseded,
    /// No marketing consent and the policy requires it.
    NoConsent,
    /// Idle longer than `max_age`.
    TooOld,
    /// Last active before `not_before`.
    BeforeNotBefore,
    /// The cart has no items.
    EmptyCart,
    /// The cart total is zero.
    ZeroValue,
    /// The catalog says its products are out of stock.
    OutOfStock,
    /// The step requires SMS consent and the customer did not give it.
    NoSmsConsent,
    /// The cart total is below `min_value`.
    BelowMinValue,
    /// The cart total is above `max_value`.
    AboveMaxValue,
    /// No item matches `include_skus`.
    SkuNotIncluded,
    /// An item matches `exclude_skus`.
    ExcludedSku,
    /// No item matches `include_categories`.
    CategoryNotIncluded,
    /// An item matches `exclude_categories`.
    ExcludedCategory,
    /// The next step's delay has not passed yet.
    NotDue,
    /// Every step was sent.
    Done,
    /// It is night where the customer is.
    QuietHours,
    /// The address had a reminder within `cooldown`.
    Cooldown,
    /// The address had `max_per_address` reminders within `window`.
    FrequencyCap,
    /// Over `max_sends_per_run`: due again next run.
    Budget,
    /// Refused for now by the server; waiting out the backoff.
    RetryWait,
    /// Another run holds a claim on this send.
    Claimed,
    /// An earlier attempt's outcome is unknown; not re-sent automatically.
    Unknown,
    /// An earlier attempt failed permanently.
    Failed,
    /// Over the run's `--limit`.
    Limit,
    /// The step promises a pool coupon and the pool has no usable code left
    /// (set by the run when it composes the mail, not by the plan).
    NoCoupon,
    /// The cart left the store between the plan and composing its mail.
    Gone,
}

impl SkipReason {
    pub const ALL: [SkipReason; 31] = [
        SkipReason::Ordered,
        SkipReason::Closed,
        SkipReason::AlreadyPurchased,
        SkipReason::Suppressed,
        SkipReason::Superseded,
        SkipReason::NoConsent,
        SkipReason::TooOld,
        SkipReason::BeforeNotBefore,
        SkipReason::EmptyCart,
        SkipReason::ZeroValue,
        SkipReason::OutOfStock,
        SkipReason::NoSmsConsent,
        SkipReason::BelowMinValue,
        SkipReason::AboveMaxValue,
        SkipReason::SkuNotIncluded,
        SkipReason::ExcludedSku,
        SkipReason::CategoryNotIncluded,
        SkipReason::ExcludedCategory,
        SkipReason::NotDue,
        SkipReason::Done,
        SkipReason::QuietHours,
        SkipReason::Cooldown,
        SkipReason::FrequencyCap,
        SkipReason::Budget,
        SkipReason::RetryWait,
        SkipReason::Claimed,
        SkipReason::Unknown,
        SkipReason::Failed,
        SkipReason::Limit,
        SkipReason::NoCoupon,
        SkipReason::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Ordered => "ordered",
            SkipReason::Closed => "closed",
            SkipReason::AlreadyPurchased => "already-purchased",
            SkipReason::Suppressed => "suppressed",
            SkipReason::Superseded => "superseded",
            SkipReason::NoConsent => "no-consent",
            SkipReason::TooOld => "too-old",
            SkipReason::BeforeNotBefore => "before-not-before",
            SkipReason::EmptyCart => "empty-cart",
            SkipReason::ZeroValue => "zero-value",
            SkipReason::OutOfStock => "out-of-stock",
            SkipReason::NoSmsConsent => "no-sms-consent",
            SkipReason::BelowMinValue => "below-min-value",
            SkipReason::AboveMaxValue => "above-max-value",
            SkipReason::SkuNotIncluded => "sku-not-included",
            SkipReason::ExcludedSku => "excluded-sku",
            SkipReason::CategoryNotIncluded => "category-not-included",
            SkipReason::ExcludedCategory => "excluded-category",
            SkipReason::NotDue => "not-due",
            SkipReason::Done => "done",
            SkipReason::QuietHours => "quiet-hours",
            SkipReason::Cooldown => "cooldown",
            SkipReason::FrequencyCap => "frequency-cap",
            SkipReason::Budget => "budget",
            SkipReason::RetryWait => "retry-wait",
            SkipReason::Claimed => "claimed",
            SkipReason::Unknown => "unknown",
            SkipReason::Failed => "failed",
            SkipReason::Limit => "limit",
            SkipReason::NoCoupon => "no-coupon",
            SkipReason::Gone => "gone",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Skip(SkipReason),
}

/// The decision for one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into the candidates.
    pub cart: usize,
    /// Index into the steps: the step sent, or the step the skip concerns.
    pub step: Option<usize>,
    pub verdict: Verdict,
}

/// Decides every candidate. Sends come first, most overdue first, so that
/// a budget or a run cut short serves the longest-waiting carts; skips
/// follow in order of last activity.
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

    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&candidates[a], &candidates[b]);
        a.updated_at
            .cmp(&b.updated_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut sends = Vec::new();
    let mut skips = Vec::new();
    for index in order {
        let cart = &candidates[index];
        let superseded = newest.get(cart.email_norm.as_str()) != Some(&index);
        let (step, verdict) = decide(cart, superseded, history, policy, steps, now);
        let decision = Decision {
            cart: index,
            step,
            verdict,
        };
        match verdict {
            Verdict::Send => sends.push(decision),
            Verdict::Skip(_) => skips.push(decision),
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
    sends.extend(skips);
    sends
}

fn decide(
    cart: &Candidate,
    superseded: bool,
    history: &History,
    policy: &Policy,
    steps: &[Step],
    now: DateTime<Utc>,
) -> (Option<usize>, Verdict) {
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

    // The next step is the first one not sent; earlier ones must be sent.
    let sent = history.sends.get(&cart.id);
    let record_of = |step: &Step| sent.and_then(|records| records.get(&step.name)).copied();
    let Some(next) = steps
        .iter()
        .position(|step| record_of(step).map(|r| r.state) != Some(SendState::Sent))
    else {
        return skip(None, SkipReason::Done);
    };
    let step = &steps[next];
    if let Some(record) = record_of(step) {
        match record.state {
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
            // A bounced mail failed, only later than a refused one.
            SendState::Failed | SendState::Bounced => {
                return skip(Some(next), SkipReason::Failed);
            }
            SendState::Sent => unreachable!("the next step is one not sent"),
        }
    }
    if step.require_consent && !cart.accepts_marketing {
        return skip(Some(next), SkipReason::NoConsent);
    }
    if step.require_sms_consent && !cart.sms_consent {
        return skip(Some(next), SkipReason::NoSmsConsent);
    }
    if let Some(reason) = filter(cart, &step.filters, policy.out_of_stock) {
        return skip(Some(next), reason);
    }
    if idle < step.after {
        return skip(Some(next), SkipReason::NotDue);
    }
    if let Some(quiet) = &policy.quiet_hours
        && quiet.contains(local_time(cart, policy, now))
    {
        return skip(Some(next), SkipReason::QuietHours);
    }
    let sent_to = history
        .sent_to
        .get(&cart.email_norm)
        .map_or(&[][..], Vec::as_slice);
    // An unknown send re-sent on purpose does not hold back itself: its
    // own claim is one of the address's recent sends (at its claim time).
    let own = record_of(step)
        .filter(|record| record.state == SendState::Unknown)
        .and_then(|record| sent_to.iter().position(|&at| at == record.at));
    let others = || {
        sent_to
            .iter()
            .enumerate()
            .filter(move |&(index, _)| Some(index) != own)
            .map(|(_, &at)| at)
    };
    if policy.cooldown > TimeDelta::zero() && others().any(|at| now - at < policy.cooldown) {
        return skip(Some(next), SkipReason::Cooldown);
    }
    if let Some(cap) = policy.max_per_address {
        let recent = others().filter(|&at| now - at < policy.window).count();
        if recent >= cap as usize {
            return skip(Some(next), SkipReason::FrequencyCap);
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
