//! The policy, as a pure function: given the candidate carts, what the
//! ledger says was sent, the suppressions, the policy and `now`, decide for
//! every cart whether a step is due and, if not, why. No I/O, no clock.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::model::{CartStatus, Currency, SendState};

/// One reminder of the sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    /// Delay after the cart's last activity.
    pub after: TimeDelta,
    /// Template stem: `<template>.subject`, `.html`, `.txt`.
    pub template: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub require_consent: bool,
    /// Cart total, in the cart's currency.
    pub min_value: Decimal,
    /// Flood guard: carts idle longer than this are never reminded.
    pub max_age: TimeDelta,
    /// At most one reminder per address per this period, across carts.
    pub cooldown: TimeDelta,
}

/// What the plan needs to know of a cart (its items are loaded only for
/// the carts that are sent).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub email: String,
    /// Lower-cased address: what suppressions and cooldowns match on.
    pub email_norm: String,
    pub status: CartStatus,
    pub accepts_marketing: bool,
    pub updated_at: DateTime<Utc>,
    pub total_minor: i64,
    pub currency: Currency,
}

/// What the ledger and suppressions say, as far as the candidates go.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Cart id → step name → state of that send.
    pub sends: HashMap<String, HashMap<String, SendState>>,
    /// Normalised address → when it was last sent a reminder.
    pub last_sent_to: HashMap<String, DateTime<Utc>>,
    /// Normalised addresses never to mail.
    pub suppressed: HashSet<String>,
}

/// Why a cart gets no mail in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// The cart was bought.
    Ordered,
    /// The shop closed the cart.
    Closed,
    /// The address is on the suppression list.
    Suppressed,
    /// No marketing consent and the policy requires it.
    NoConsent,
    /// Idle longer than `max_age`.
    TooOld,
    /// The cart total is below `min_value`.
    BelowMinValue,
    /// The next step's delay has not passed yet.
    NotDue,
    /// Every step was sent.
    Done,
    /// The address had a reminder within `cooldown`.
    Cooldown,
    /// Another run holds a claim on this send.
    Claimed,
    /// An earlier attempt's outcome is unknown; not re-sent automatically.
    Unknown,
    /// An earlier attempt failed permanently.
    Failed,
    /// Over the run's `--limit`.
    Limit,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Ordered => "ordered",
            SkipReason::Closed => "closed",
            SkipReason::Suppressed => "suppressed",
            SkipReason::NoConsent => "no-consent",
            SkipReason::TooOld => "too-old",
            SkipReason::BelowMinValue => "below-min-value",
            SkipReason::NotDue => "not-due",
            SkipReason::Done => "done",
            SkipReason::Cooldown => "cooldown",
            SkipReason::Claimed => "claimed",
            SkipReason::Unknown => "unknown",
            SkipReason::Failed => "failed",
            SkipReason::Limit => "limit",
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

/// Decides every candidate. Sends come out most overdue first, so that a
/// run cut short (by `--limit` or an error) serves the oldest carts first.
pub fn plan(
    candidates: &[Candidate],
    history: &History,
    policy: &Policy,
    steps: &[Step],
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&candidates[a], &candidates[b]);
        a.updated_at
            .cmp(&b.updated_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    // Addresses given a reminder by this plan: the cooldown covers them too.
    let mut planned_to: HashSet<&str> = HashSet::new();
    order
        .into_iter()
        .map(|index| {
            let cart = &candidates[index];
            let (step, verdict) = decide(cart, history, policy, steps, now, &planned_to);
            if verdict == Verdict::Send {
                planned_to.insert(&cart.email_norm);
            }
            Decision {
                cart: index,
                step,
                verdict,
            }
        })
        .collect()
}

fn decide(
    cart: &Candidate,
    history: &History,
    policy: &Policy,
    steps: &[Step],
    now: DateTime<Utc>,
    planned_to: &HashSet<&str>,
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
    if policy.require_consent && !cart.accepts_marketing {
        return skip(None, SkipReason::NoConsent);
    }
    let idle = now - cart.updated_at;
    if idle > policy.max_age {
        return skip(None, SkipReason::TooOld);
    }
    if cart.currency.minor_to_amount(cart.total_minor) < policy.min_value {
        return skip(None, SkipReason::BelowMinValue);
    }

    // The next step is the first one not sent; earlier ones must be sent.
    let sent = history.sends.get(&cart.id);
    let state_of = |step: &Step| sent.and_then(|states| states.get(&step.name)).copied();
    let Some(next) = steps
        .iter()
        .position(|step| state_of(step) != Some(SendState::Sent))
    else {
        return skip(None, SkipReason::Done);
    };
    match state_of(&steps[next]) {
        None | Some(SendState::Retry) => {}
        Some(SendState::Claimed) => return skip(Some(next), SkipReason::Claimed),
        Some(SendState::Unknown) => return skip(Some(next), SkipReason::Unknown),
        Some(SendState::Failed) => return skip(Some(next), SkipReason::Failed),
        Some(SendState::Sent) => unreachable!("the next step is one not sent"),
    }
    if idle < steps[next].after {
        return skip(Some(next), SkipReason::NotDue);
    }
    if policy.cooldown > TimeDelta::zero() {
        let recent = history
            .last_sent_to
            .get(&cart.email_norm)
            .is_some_and(|&at| now - at < policy.cooldown);
        if recent || planned_to.contains(cart.email_norm.as_str()) {
            return skip(Some(next), SkipReason::Cooldown);
        }
    }
    (Some(next), Verdict::Send)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        at("2026-11-21T12:00:00Z")
    }

    fn steps() -> Vec<Step> {
        [("1h", 1), ("24h", 24), ("72h", 72)]
            .into_iter()
            .map(|(name, hours)| Step {
                name: name.into(),
                after: TimeDelta::hours(hours),
                template: "reminder".into(),
            })
            .collect()
    }

    fn policy() -> Policy {
        Policy {
            require_consent: true,
            min_value: Decimal::ZERO,
            max_age: TimeDelta::days(7),
            cooldown: TimeDelta::hours(20),
        }
    }

    fn cart(id: &str, idle_hours: i64) -> Candidate {
        Candidate {
            id: id.into(),
            email: format!("{id}@example.com"),
            email_norm: format!("{id}@example.com").to_lowercase(),
            status: CartStatus::Open,
            accepts_marketing: true,
            updated_at: now() - TimeDelta::hours(idle_hours),
            total_minor: 5000,
            currency: "EUR".parse().unwrap(),
        }
    }

    fn decide_one(cart: Candidate, history: &History, policy: &Policy) -> (Option<usize>, Verdict) {
        let decisions = plan(&[cart], history, policy, &steps(), now());
        (decisions[0].step, decisions[0].verdict)
    }

    fn sent(history: &mut History, cart: &str, step: &str, state: SendState) {
        history
            .sends
            .entry(cart.into())
            .or_default()
            .insert(step.into(), state);
    }

    #[test]
    fn a_cart_idle_past_the_first_delay_gets_step_one() {
        let verdict = decide_one(cart("c1", 2), &History::default(), &policy());
        assert_eq!(verdict, (Some(0), Verdict::Send));
    }

    #[test]
    fn the_clock_decides_when_a_step_is_due() {
        let mut fresh = cart("c1", 0);
        fresh.updated_at = now() - TimeDelta::minutes(59);
        assert_eq!(
            decide_one(fresh.clone(), &History::default(), &policy()),
            (Some(0), Verdict::Skip(SkipReason::NotDue))
        );
        fresh.updated_at = now() - TimeDelta::minutes(60);
        assert_eq!(
            decide_one(fresh, &History::default(), &policy()),
            (Some(0), Verdict::Send)
        );
    }

    #[test]
    fn steps_go_in_order_and_never_twice() {
        // Idle 30h but step 1 not sent: step 1 comes first, never step 2.
        assert_eq!(
            decide_one(cart("c1", 30), &History::default(), &policy()),
            (Some(0), Verdict::Send)
        );
        let mut history = History::default();
        sent(&mut history, "c1", "1h", SendState::Sent);
        assert_eq!(
            decide_one(cart("c1", 30), &history, &policy()),
            (Some(1), Verdict::Send)
        );
        assert_eq!(
            decide_one(cart("c1", 10), &history, &policy()),
            (Some(1), Verdict::Skip(SkipReason::NotDue))
        );
        sent(&mut history, "c1", "24h", SendState::Sent);
        sent(&mut history, "c1", "72h", SendState::Sent);
        assert_eq!(
            decide_one(cart("c1", 100), &history, &policy()),
            (None, Verdict::Skip(SkipReason::Done))
        );
    }

    #[test]
    fn ledger_states_other_than_sent_block_the_step() {
        for (state, verdict) in [
            (SendState::Claimed, Verdict::Skip(SkipReason::Claimed)),
            (SendState::Unknown, Verdict::Skip(SkipReason::Unknown)),
            (SendState::Failed, Verdict::Skip(SkipReason::Failed)),
            (SendState::Retry, Verdict::Send),
        ] {
            let mut history = History::default();
            sent(&mut history, "c1", "1h", state);
            assert_eq!(
                decide_one(cart("c1", 2), &history, &policy()),
                (Some(0), verdict),
                "{state:?}"
            );
        }
    }

    #[test]
    fn each_gate_has_its_reason() {
        let mut no_consent = cart("c1", 2);
        no_consent.accepts_marketing = false;
        assert_eq!(
            decide_one(no_consent.clone(), &History::default(), &policy()).1,
            Verdict::Skip(SkipReason::NoConsent)
        );
        let lax = Policy {
            require_consent: false,
            ..policy()
        };
        assert_eq!(
            decide_one(no_consent, &History::default(), &lax).1,
            Verdict::Send
        );

        let mut history = History::default();
        history.suppressed.insert("c1@example.com".into());
        assert_eq!(
            decide_one(cart("c1", 2), &history, &policy()).1,
            Verdict::Skip(SkipReason::Suppressed)
        );

        assert_eq!(
            decide_one(cart("c1", 7 * 24 + 1), &History::default(), &policy()).1,
            Verdict::Skip(SkipReason::TooOld)
        );

        let picky = Policy {
            min_value: Decimal::new(5001, 2),
            ..policy()
        };
        assert_eq!(
            decide_one(cart("c1", 2), &History::default(), &picky).1,
            Verdict::Skip(SkipReason::BelowMinValue)
        );
        let exact = Policy {
            min_value: Decimal::new(5000, 2),
            ..policy()
        };
        assert_eq!(
            decide_one(cart("c1", 2), &History::default(), &exact).1,
            Verdict::Send
        );

        for (status, reason) in [
            (CartStatus::Ordered, SkipReason::Ordered),
            (CartStatus::Closed, SkipReason::Closed),
        ] {
            let mut bought = cart("c1", 2);
            bought.status = status;
            assert_eq!(
                decide_one(bought, &History::default(), &policy()).1,
                Verdict::Skip(reason)
            );
        }
    }

    #[test]
    fn cooldown_spaces_reminders_to_one_address() {
        let mut history = History::default();
        history
            .last_sent_to
            .insert("c1@example.com".into(), now() - TimeDelta::hours(19));
        assert_eq!(
            decide_one(cart("c1", 2), &history, &policy()).1,
            Verdict::Skip(SkipReason::Cooldown)
        );
        history
            .last_sent_to
            .insert("c1@example.com".into(), now() - TimeDelta::hours(20));
        assert_eq!(
            decide_one(cart("c1", 2), &history, &policy()).1,
            Verdict::Send
        );

        // Two carts of one address in one run: the older goes, the other waits.
        let mut first = cart("a", 5);
        let mut second = cart("b", 3);
        first.email_norm = "same@example.com".into();
        second.email_norm = "same@example.com".into();
        let decisions = plan(
            &[second, first],
            &History::default(),
            &policy(),
            &steps(),
            now(),
        );
        assert_eq!(decisions[0].cart, 1);
        assert_eq!(decisions[0].verdict, Verdict::Send);
        assert_eq!(decisions[1].verdict, Verdict::Skip(SkipReason::Cooldown));
    }

    #[test]
    fn the_most_overdue_carts_come_first() {
        let carts = [cart("new", 2), cart("old", 50), cart("mid", 10)];
        let order: Vec<&str> = plan(&carts, &History::default(), &policy(), &steps(), now())
            .iter()
            .map(|d| carts[d.cart].id.as_str())
            .collect();
        assert_eq!(order, ["old", "mid", "new"]);
    }
}
