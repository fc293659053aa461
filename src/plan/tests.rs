use super::*;

mod channels;
mod gates;
mod properties;
mod quiet_hours;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    at("2026-11-21T12:00:00Z")
}

fn step(name: &str, hours: i64) -> Step {
    Step {
        name: name.into(),
        after: TimeDelta::hours(hours),
        template: "reminder".into(),
        variants: Vec::new(),
        require_consent: true,
        filters: Filters::default(),
        channel: Channel::Email,
        require_sms_consent: false,
        cross_channel: false,
        coupon: None,
    }
}

fn steps() -> Vec<Step> {
    vec![step("1h", 1), step("24h", 24), step("72h", 72)]
}

fn policy() -> Policy {
    Policy::default()
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
        items: vec![CandidateItem::new("TENT-1", "tents", 5000)],
        sms_consent: false,
        timezone: None,
        utc_offset_seconds: None,
    }
}

fn decide_with(
    cart: Candidate,
    history: &History,
    policy: &Policy,
    steps: &[Step],
) -> (Option<usize>, Verdict) {
    let decisions = plan(&[cart], history, policy, steps, now());
    (decisions[0].step, decisions[0].verdict)
}

fn decide_one(cart: Candidate, history: &History, policy: &Policy) -> (Option<usize>, Verdict) {
    decide_with(cart, history, policy, &steps())
}

fn reason(cart: Candidate, history: &History, policy: &Policy) -> Verdict {
    decide_one(cart, history, policy).1
}

fn skip(reason: SkipReason) -> Verdict {
    Verdict::Skip(reason)
}

/// The step was due and the cart does not qualify: passed over.
fn passed(reason: SkipReason) -> Verdict {
    Verdict::PassOver(reason)
}

fn mark(history: &mut History, cart: &str, step: &str, state: SendState) {
    mark_at(history, cart, step, state, 1, now() - TimeDelta::days(1));
}

fn mark_at(
    history: &mut History,
    cart: &str,
    step: &str,
    state: SendState,
    attempts: u32,
    at: DateTime<Utc>,
) {
    history.sends.entry(cart.into()).or_default().insert(
        step.into(),
        SendRecord {
            state,
            attempts,
            at,
        },
    );
}

fn pattern(text: &str) -> glob::Pattern {
    glob::Pattern::new(text).unwrap()
}

#[test]
fn a_cart_idle_past_the_first_delay_gets_step_one() {
    assert_eq!(
        decide_one(cart("c1", 2), &History::default(), &policy()),
        (Some(0), Verdict::Send)
    );
}

#[test]
fn the_clock_decides_when_a_step_is_due() {
    let mut fresh = cart("c1", 0);
    fresh.updated_at = now() - TimeDelta::minutes(59);
    assert_eq!(
        decide_one(fresh.clone(), &History::default(), &policy()),
        (Some(0), skip(SkipReason::NotDue))
    );
    fresh.updated_at = now() - TimeDelta::minutes(60);
    assert_eq!(
        decide_one(fresh, &History::default(), &policy()),
        (Some(0), Verdict::Send)
    );
}

#[test]
fn steps_go_in_order_and_never_twice() {
    assert_eq!(
        decide_one(cart("c1", 30), &History::default(), &policy()),
        (Some(0), Verdict::Send)
    );
    let mut history = History::default();
    mark(&mut history, "c1", "1h", SendState::Sent);
    assert_eq!(
        decide_one(cart("c1", 30), &history, &policy()),
        (Some(1), Verdict::Send)
    );
    // A newer snapshot (activity 10h ago) moves the clock of unsent steps.
    assert_eq!(
        decide_one(cart("c1", 10), &history, &policy()),
        (Some(1), skip(SkipReason::NotDue))
    );
    mark(&mut history, "c1", "24h", SendState::Sent);
    mark(&mut history, "c1", "72h", SendState::Sent);
    assert_eq!(
        decide_one(cart("c1", 100), &history, &policy()),
        (None, skip(SkipReason::Done))
    );
}

#[test]
fn ledger_states_other_than_sent_block_the_step() {
    for (state, verdict) in [
        (SendState::Claimed, skip(SkipReason::Claimed)),
        (SendState::Unknown, skip(SkipReason::Unknown)),
        (SendState::Failed, skip(SkipReason::Failed)),
        (SendState::Bounced, skip(SkipReason::Failed)),
        (SendState::Retry, Verdict::Send),
    ] {
        let mut history = History::default();
        mark(&mut history, "c1", "1h", state);
        assert_eq!(
            decide_one(cart("c1", 2), &history, &policy()),
            (Some(0), verdict),
            "{state:?}"
        );
    }
}

#[test]
fn retries_back_off_exponentially_and_unknown_waits_for_a_decision() {
    let retried = |attempts, minutes_ago| {
        let mut history = History::default();
        mark_at(
            &mut history,
            "c1",
            "1h",
            SendState::Retry,
            attempts,
            now() - TimeDelta::minutes(minutes_ago),
        );
        reason(cart("c1", 5), &history, &policy())
    };
    assert_eq!(retried(1, 29), skip(SkipReason::RetryWait));
    assert_eq!(retried(1, 30), Verdict::Send);
    assert_eq!(retried(2, 59), skip(SkipReason::RetryWait));
    assert_eq!(retried(2, 60), Verdict::Send);
    assert_eq!(retried(4, 239), skip(SkipReason::RetryWait));
    assert_eq!(retried(4, 240), Verdict::Send);

    let mut history = History::default();
    mark(&mut history, "c1", "1h", SendState::Unknown);
    assert_eq!(
        reason(cart("c1", 5), &history, &policy()),
        skip(SkipReason::Unknown)
    );
    let resend = Policy {
        resend_unknown: true,
        ..policy()
    };
    assert_eq!(reason(cart("c1", 5), &history, &resend), Verdict::Send);
}

#[test]
fn variants_are_stable_per_cart_and_spread() {
    let mut step = step("1h", 1);
    step.variants = vec!["a".into(), "b".into()];
    let first: Vec<&str> = (0..100)
        .map(|i| step.template_for(&format!("cart-{i}")))
        .collect();
    let again: Vec<&str> = (0..100)
        .map(|i| step.template_for(&format!("cart-{i}")))
        .collect();
    assert_eq!(first, again);
    let a = first.iter().filter(|v| **v == "a").count();
    assert!((30..=70).contains(&a), "{a} of 100 got variant a");
}

#[test]
fn a_first_run_over_old_carts_floods_nobody() {
    // 10,000 carts idle 1–6 days on an old database; the shop switches
    // recart on with not_before = now: nothing is sent.
    let carts: Vec<Candidate> = (0..10_000)
        .map(|i| cart(&format!("old-{i}"), 24 + (i % 120)))
        .collect();
    let guarded = Policy {
        not_before: Some(now()),
        ..policy()
    };
    let decisions = plan(&carts, &History::default(), &guarded, &steps(), now());
    assert_eq!(decisions.len(), 10_000);
    assert!(
        decisions
            .iter()
            .all(|d| d.verdict == skip(SkipReason::BeforeNotBefore))
    );
    // A cart active after the switch-on is reminded as usual.
    let mut fresh = cart("fresh", 0);
    fresh.updated_at = now() + TimeDelta::minutes(5) - TimeDelta::hours(2);
    let later = Policy {
        not_before: Some(now() - TimeDelta::hours(2)),
        ..policy()
    };
    assert_eq!(reason(fresh, &History::default(), &later), Verdict::Send);
}

#[test]
fn a_resent_unknown_send_does_not_hold_back_itself_only() {
    let claimed = now() - TimeDelta::hours(2);
    let resend = Policy {
        resend_unknown: true,
        ..policy()
    };
    let with_recent = |steps_sent: &[&str]| {
        let mut history = History::default();
        mark_at(&mut history, "c1", "1h", SendState::Unknown, 1, claimed);
        for step in steps_sent {
            history.add_recent("c1@example.com".into(), claimed, step);
        }
        reason(cart("c1", 5), &history, &resend)
    };
    assert_eq!(with_recent(&["1h"]), Verdict::Send);
    // Another step's send at the same second still counts.
    assert_eq!(with_recent(&["1h", "24h"]), skip(SkipReason::Cooldown));
    assert_eq!(with_recent(&["24h"]), skip(SkipReason::Cooldown));
}

#[test]
fn a_history_read_in_halves_absorbs_into_the_whole() {
    let steps_of = |history: &History, address: &str| -> Vec<(String, DateTime<Utc>)> {
        history.sent_to[address]
            .iter()
            .map(|send| (history.recent_steps[send.step as usize].clone(), send.at))
            .collect()
    };
    let (early, late) = (at("2026-03-01T10:00:00Z"), at("2026-03-02T10:00:00Z"));
    let mut first = History::default();
    first.add_recent("a@example.com".into(), early, "second");
    mark(&mut first, "1", "first", SendState::Sent);
    let mut second = History::default();
    // Its step names are numbered in another order than the first's.
    second.add_recent("b@example.com".into(), early, "first");
    second.add_recent("b@example.com".into(), late, "second");
    mark(&mut second, "2", "first", SendState::Unknown);
    second.suppressed.insert("c@example.com".into());
    second.orders.insert("b@example.com".into(), Vec::new());
    first.absorb(second);
    assert_eq!(
        steps_of(&first, "a@example.com"),
        [("second".into(), early)]
    );
    assert_eq!(
        steps_of(&first, "b@example.com"),
        [("first".into(), early), ("second".into(), late)]
    );
    assert_eq!(first.sends.len(), 2);
    assert_eq!(first.sends["2"]["first"].state, SendState::Unknown);
    assert!(first.suppressed.contains("c@example.com"));
    assert!(first.orders.contains_key("b@example.com"));
}
