use super::*;
use proptest::prelude::*;

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
fn consent_is_required_by_default_and_per_step() {
    let mut no_consent = cart("c1", 2);
    no_consent.accepts_marketing = false;
    assert_eq!(
        reason(no_consent.clone(), &History::default(), &policy()),
        passed(SkipReason::NoConsent)
    );
    let mut lax = steps();
    lax[0].require_consent = false;
    assert_eq!(
        decide_with(no_consent, &History::default(), &policy(), &lax).1,
        Verdict::Send
    );
}

#[test]
fn each_gate_has_its_reason() {
    let history = History::default();
    let mut suppressed = History::default();
    suppressed.suppressed.insert("c1@example.com".into());
    assert_eq!(
        reason(cart("c1", 2), &suppressed, &policy()),
        skip(SkipReason::Suppressed)
    );
    assert_eq!(
        reason(cart("c1", 7 * 24 + 1), &history, &policy()),
        skip(SkipReason::TooOld)
    );
    let guarded = Policy {
        not_before: Some(now() - TimeDelta::hours(1)),
        ..policy()
    };
    assert_eq!(
        reason(cart("c1", 2), &history, &guarded),
        skip(SkipReason::BeforeNotBefore)
    );
    for (status, expected) in [
        (CartStatus::Ordered, SkipReason::Ordered),
        (CartStatus::Closed, SkipReason::Closed),
    ] {
        let mut bought = cart("c1", 2);
        bought.status = status;
        assert_eq!(reason(bought, &history, &policy()), skip(expected));
    }
    let mut empty = cart("c1", 2);
    empty.items.clear();
    assert_eq!(
        reason(empty, &history, &policy()),
        skip(SkipReason::EmptyCart)
    );
    let mut free = cart("c1", 2);
    free.total_minor = 0;
    assert_eq!(
        reason(free, &history, &policy()),
        skip(SkipReason::ZeroValue)
    );
}

#[test]
fn value_thresholds_work_per_currency() {
    let with = |filters: Filters| {
        let mut steps = steps();
        steps[0].filters = filters;
        decide_with(cart("c1", 2), &History::default(), &policy(), &steps).1
    };
    let euros = |cents| Some(Threshold::Any(Decimal::new(cents, 2)));
    assert_eq!(
        with(Filters {
            min_value: euros(5001),
            ..Filters::default()
        }),
        passed(SkipReason::BelowMinValue)
    );
    assert_eq!(
        with(Filters {
            min_value: euros(5000),
            ..Filters::default()
        }),
        Verdict::Send
    );
    assert_eq!(
        with(Filters {
            max_value: euros(4999),
            ..Filters::default()
        }),
        passed(SkipReason::AboveMaxValue)
    );
    let per_currency = |eur: i64| {
        Some(Threshold::PerCurrency(BTreeMap::from([
            ("EUR".to_string(), Decimal::new(eur, 0)),
            ("USD".to_string(), Decimal::new(1000, 0)),
        ])))
    };
    assert_eq!(
        with(Filters {
            min_value: per_currency(60),
            ..Filters::default()
        }),
        passed(SkipReason::BelowMinValue)
    );
    assert_eq!(
        with(Filters {
            min_value: per_currency(40),
            ..Filters::default()
        }),
        Verdict::Send
    );
    // A currency the table does not name has no threshold.
    let sek_only = Some(Threshold::PerCurrency(BTreeMap::from([(
        "SEK".to_string(),
        Decimal::new(10_000, 0),
    )])));
    assert_eq!(
        with(Filters {
            min_value: sek_only,
            ..Filters::default()
        }),
        Verdict::Send
    );
}

#[test]
fn content_filters_match_globs_case_insensitively() {
    let with = |filters: Filters| {
        let mut steps = steps();
        steps[0].filters = filters;
        let mut two = cart("c1", 2);
        two.items
            .push(CandidateItem::new("GIFT-CARD-50", "Gift Cards", 5000));
        decide_with(two, &History::default(), &policy(), &steps).1
    };
    let patterns = |texts: &[&str]| texts.iter().map(|t| pattern(t)).collect::<Vec<_>>();
    assert_eq!(
        with(Filters {
            exclude_skus: patterns(&["gift-card-*"]),
            ..Filters::default()
        }),
        passed(SkipReason::ExcludedSku)
    );
    assert_eq!(
        with(Filters {
            include_skus: patterns(&["BOOT-*"]),
            ..Filters::default()
        }),
        passed(SkipReason::SkuNotIncluded)
    );
    assert_eq!(
        with(Filters {
            include_skus: patterns(&["TENT-*"]),
            ..Filters::default()
        }),
        Verdict::Send
    );
    assert_eq!(
        with(Filters {
            exclude_categories: patterns(&["gift*"]),
            ..Filters::default()
        }),
        passed(SkipReason::ExcludedCategory)
    );
    assert_eq!(
        with(Filters {
            include_categories: patterns(&["footwear"]),
            ..Filters::default()
        }),
        passed(SkipReason::CategoryNotIncluded)
    );
    assert_eq!(
        with(Filters {
            include_categories: patterns(&["tents"]),
            ..Filters::default()
        }),
        Verdict::Send
    );
}

#[test]
fn purchases_stop_reminders_three_ways() {
    let order = |hours_ago: i64, skus: &[&str]| OrderFact {
        created_at: now() - TimeDelta::hours(hours_ago),
        skus: skus.iter().map(ToString::to_string).collect(),
    };
    let with = |orders: Vec<OrderFact>| {
        let mut history = History::default();
        history.orders.insert("c1@example.com".into(), orders);
        reason(cart("c1", 5), &history, &policy())
    };
    // An order after the cart's last activity.
    assert_eq!(with(vec![order(3, &[])]), skip(SkipReason::Ordered));
    // An earlier order of one of the cart's products, within 30 days.
    assert_eq!(
        with(vec![order(24 * 10, &["TENT-1"])]),
        skip(SkipReason::AlreadyPurchased)
    );
    assert_eq!(with(vec![order(24 * 31, &["TENT-1"])]), Verdict::Send);
    // An earlier order of something else.
    assert_eq!(with(vec![order(24 * 10, &["MUG-1"])]), Verdict::Send);
}

#[test]
fn only_the_newest_open_cart_of_an_address_is_reminded() {
    let mut old = cart("old", 30);
    let mut new = cart("new", 3);
    old.email_norm = "same@example.com".into();
    new.email_norm = "same@example.com".into();
    let carts = [old, new];
    let decisions = plan(&carts, &History::default(), &policy(), &steps(), now());
    let by_id: HashMap<&str, Verdict> = decisions
        .iter()
        .map(|d| (carts[d.cart].id.as_str(), d.verdict))
        .collect();
    assert_eq!(by_id["new"], Verdict::Send);
    assert_eq!(by_id["old"], skip(SkipReason::Superseded));
}

#[test]
fn caps_space_reminders_to_one_address() {
    let sent = |hours_ago: &[i64]| {
        let mut history = History::default();
        for hours in hours_ago {
            let at = now() - TimeDelta::hours(*hours);
            history.add_recent("c1@example.com".into(), at, "1h");
        }
        history
    };
    assert_eq!(
        reason(cart("c1", 2), &sent(&[19]), &policy()),
        skip(SkipReason::Cooldown)
    );
    assert_eq!(
        reason(cart("c1", 2), &sent(&[20]), &policy()),
        Verdict::Send
    );
    let capped = Policy {
        max_per_address: Some(3),
        window: TimeDelta::days(7),
        ..policy()
    };
    assert_eq!(
        reason(cart("c1", 2), &sent(&[30, 60, 100]), &capped),
        skip(SkipReason::FrequencyCap)
    );
    assert_eq!(
        reason(cart("c1", 2), &sent(&[30, 60, 24 * 8]), &capped),
        Verdict::Send
    );
}

#[test]
fn the_budget_serves_the_most_overdue_first() {
    let carts = [cart("new", 2), cart("old", 50), cart("mid", 10)];
    let budget = Policy {
        max_sends_per_run: Some(2),
        ..policy()
    };
    let decisions = plan(&carts, &History::default(), &budget, &steps(), now());
    let summary: Vec<(&str, Verdict)> = decisions
        .iter()
        .map(|d| (carts[d.cart].id.as_str(), d.verdict))
        .collect();
    assert_eq!(
        summary,
        [
            ("old", Verdict::Send),
            ("mid", Verdict::Send),
            ("new", skip(SkipReason::Budget))
        ]
    );
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

fn quiet() -> Policy {
    Policy {
        quiet_hours: Some(QuietHours {
            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        }),
        ..policy()
    }
}

fn zoned(zone: &str, idle_hours: i64) -> Candidate {
    let mut cart = cart("c1", idle_hours);
    cart.timezone = Some(zone.into());
    cart
}

/// Decides at `when` for a cart idle 2 hours then.
fn quiet_at(zone: Option<&str>, offset: Option<i32>, when: &str) -> Verdict {
    let when = at(when);
    let mut cart = cart("c1", 0);
    cart.updated_at = when - TimeDelta::hours(2);
    cart.timezone = zone.map(str::to_string);
    cart.utc_offset_seconds = offset;
    plan(&[cart], &History::default(), &quiet(), &steps(), when)[0].verdict
}

#[test]
fn quiet_hours_follow_the_customers_clock() {
    assert_eq!(
        zoned("Europe/Stockholm", 2).timezone.as_deref(),
        Some("Europe/Stockholm")
    );
    // 12:00 UTC is 13:00 in Stockholm (winter) and 07:00 in New York.
    assert_eq!(
        quiet_at(Some("Europe/Stockholm"), None, "2026-11-21T12:00:00Z"),
        Verdict::Send
    );
    assert_eq!(
        quiet_at(Some("America/New_York"), None, "2026-11-21T12:00:00Z"),
        skip(SkipReason::QuietHours)
    );
    assert_eq!(
        quiet_at(Some("America/New_York"), None, "2026-11-21T13:00:00Z"),
        Verdict::Send
    );
    // Without a zone: the offset the input was written in…
    assert_eq!(
        quiet_at(None, Some(-5 * 3600), "2026-11-21T12:00:00Z"),
        skip(SkipReason::QuietHours)
    );
    // …else the policy's zone (UTC here): 12:00 is day.
    assert_eq!(quiet_at(None, None, "2026-11-21T12:00:00Z"), Verdict::Send);
    assert_eq!(
        quiet_at(None, None, "2026-11-21T22:00:00Z"),
        skip(SkipReason::QuietHours)
    );
}

/// An unknown offset (`Z`, zone-less and integer times) is the policy's
/// zone; a written offset is the customer's own, `+00:00` included.
#[test]
fn without_a_known_offset_the_policys_zone_holds_quiet_hours() {
    let new_york = Policy {
        timezone: "America/New_York".parse().unwrap(),
        ..quiet()
    };
    // 08:30 UTC is 03:30 in New York (EST), 14:00 in India, 08:30 in London.
    let decide = |offset: Option<i32>, when: &str| {
        let when = at(when);
        let mut cart = cart("c1", 0);
        cart.updated_at = when - TimeDelta::hours(2);
        cart.utc_offset_seconds = offset;
        plan(&[cart], &History::default(), &new_york, &steps(), when)[0].verdict
    };
    assert_eq!(
        decide(None, "2026-11-21T08:30:00Z"),
        skip(SkipReason::QuietHours)
    );
    assert_eq!(decide(None, "2026-11-21T13:00:00Z"), Verdict::Send);
    assert_eq!(decide(Some(19_800), "2026-11-21T08:30:00Z"), Verdict::Send);
    assert_eq!(decide(Some(0), "2026-11-21T08:30:00Z"), Verdict::Send);
    assert_eq!(
        decide(Some(0), "2026-11-21T07:30:00Z"),
        skip(SkipReason::QuietHours)
    );
}

#[test]
fn quiet_hours_are_right_across_dst_changes() {
    let stockholm = Some("Europe/Stockholm");
    // Spring forward 2026-03-29: 01:59 CET then 03:00 CEST. Quiet ends 08:00 local.
    assert_eq!(
        quiet_at(stockholm, None, "2026-03-29T05:59:00Z"),
        skip(SkipReason::QuietHours)
    ); // 07:59 CEST
    assert_eq!(
        quiet_at(stockholm, None, "2026-03-29T06:00:00Z"),
        Verdict::Send
    ); // 08:00 CEST
    assert_eq!(
        quiet_at(stockholm, None, "2026-03-28T06:59:00Z"),
        skip(SkipReason::QuietHours)
    ); // 07:59 CET
    assert_eq!(
        quiet_at(stockholm, None, "2026-03-28T07:00:00Z"),
        Verdict::Send
    ); // 08:00 CET
    // Fall back 2026-10-25: 21:00 local is 20:00 UTC the day before, 21:00 UTC after.
    assert_eq!(
        quiet_at(stockholm, None, "2026-10-24T18:59:00Z"),
        Verdict::Send
    ); // 20:59 CEST
    assert_eq!(
        quiet_at(stockholm, None, "2026-10-24T19:00:00Z"),
        skip(SkipReason::QuietHours)
    ); // 21:00 CEST
    assert_eq!(
        quiet_at(stockholm, None, "2026-10-25T19:59:00Z"),
        Verdict::Send
    ); // 20:59 CET
    assert_eq!(
        quiet_at(stockholm, None, "2026-10-25T20:00:00Z"),
        skip(SkipReason::QuietHours)
    ); // 21:00 CET
    let new_york = Some("America/New_York");
    // Spring forward 2026-03-08 (EST -5 → EDT -4); fall back 2026-11-01.
    assert_eq!(
        quiet_at(new_york, None, "2026-03-08T11:59:00Z"),
        skip(SkipReason::QuietHours)
    ); // 07:59 EDT
    assert_eq!(
        quiet_at(new_york, None, "2026-03-08T12:00:00Z"),
        Verdict::Send
    ); // 08:00 EDT
    assert_eq!(
        quiet_at(new_york, None, "2026-11-01T12:59:00Z"),
        skip(SkipReason::QuietHours)
    ); // 07:59 EST
    assert_eq!(
        quiet_at(new_york, None, "2026-11-01T13:00:00Z"),
        Verdict::Send
    ); // 08:00 EST
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

// ------------------------------------------------------------ properties

/// A random world: carts over a few addresses, orders, suppressions, a
/// random policy and a random sequence (e-mail and webhook steps, some
/// requiring SMS consent or a minimum value, some capped across channels).
/// The simulation then runs the plan hour after hour, applying its
/// decisions to the history as a real run would; between runs a cart's
/// consent may change, and a webhook may be refused for good.
#[derive(Debug, Clone)]
struct World {
    carts: Vec<Candidate>,
    orders: Vec<(String, OrderFact)>,
    suppressed: Vec<String>,
    policy: Policy,
    steps: Vec<Step>,
    /// Hours to the next run; the cart whose consents flip before it; whether
    /// that run's webhook calls are refused for good.
    runs: Vec<(i64, usize, bool)>,
}

/// Step `index` of a random sequence: `(webhook, needs SMS consent, a
/// minimum of 60.00, cross-channel caps)`.
fn random_step(index: usize, shape: (bool, bool, bool, bool), consent: bool) -> Step {
    let (webhook, sms, minimum, cross) = shape;
    let mut step = step(&format!("s{index}"), [1, 24, 72][index]);
    step.require_consent = consent;
    if webhook {
        step.channel = Channel::Webhook(Webhook {
            url: "https://hooks.example/cart".into(),
            headers: Vec::new(),
            secret_env: None,
            timeout: std::time::Duration::from_secs(1),
        });
        step.require_sms_consent = sms;
    }
    if minimum {
        step.filters.min_value = Some(Threshold::Any(Decimal::new(6000, 2)));
    }
    step.cross_channel = cross;
    step
}

fn world() -> impl Strategy<Value = World> {
    let cart = (
        0..6u8,
        0..200i64,
        (any::<bool>(), any::<bool>()),
        0..3u8,
        0..4u8,
        prop::option::of(0..3u8),
        any::<bool>(),
    )
        .prop_map(|(address, idle, consents, status, sku, zone, big)| {
            let id_seed = idle * 7 + i64::from(address);
            let mut cart = cart(&format!("c{id_seed}"), idle);
            cart.email_norm = format!("a{address}@example.com");
            cart.email = cart.email_norm.clone();
            (cart.accepts_marketing, cart.sms_consent) = consents;
            cart.status = match status {
                0 => CartStatus::Ordered,
                _ => CartStatus::Open,
            };
            let total = if big { 8000 } else { 5000 };
            cart.items = vec![CandidateItem::new(&format!("SKU-{sku}"), "cat", total)];
            cart.total_minor = total;
            cart.timezone = zone
                .map(|z| ["Europe/Stockholm", "America/New_York", "Asia/Tokyo"][z as usize].into());
            cart
        });
    let order = (0..6u8, 0..400i64, 0..4u8).prop_map(|(address, hours_ago, sku)| {
        (
            format!("a{address}@example.com"),
            OrderFact {
                created_at: now() - TimeDelta::hours(hours_ago),
                skus: HashSet::from([format!("SKU-{sku}")]),
            },
        )
    });
    let shape = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    (
        prop::collection::vec(cart, 1..12),
        prop::collection::vec(order, 0..4),
        prop::collection::vec(0..6u8, 0..2),
        (0..30i64, prop::option::of(1..4u32), any::<bool>()),
        (any::<bool>(), prop::collection::vec(shape, 3)),
        prop::collection::vec((1..30i64, 0..12usize, prop::bool::weighted(0.2)), 1..8),
    )
        .prop_map(
            |(mut carts, orders, suppressed, (cooldown, cap, quiet), (consent, shapes), runs)| {
                carts.sort_by(|a, b| a.id.cmp(&b.id));
                carts.dedup_by(|a, b| a.id == b.id);
                World {
                    carts,
                    orders,
                    suppressed: suppressed
                        .iter()
                        .map(|a| format!("a{a}@example.com"))
                        .collect(),
                    policy: Policy {
                        cooldown: TimeDelta::hours(cooldown),
                        max_per_address: cap,
                        window: TimeDelta::days(2),
                        quiet_hours: quiet.then(|| QuietHours {
                            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
                            end: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                        }),
                        ..Policy::default()
                    },
                    steps: shapes
                        .into_iter()
                        .enumerate()
                        .map(|(index, shape)| random_step(index, shape, consent))
                        .collect(),
                    runs,
                }
            },
        )
}

/// Whether `cart` meets `step`'s conditions: consent, SMS consent, value.
fn qualifies(cart: &Candidate, step: &Step) -> bool {
    (!step.require_consent || cart.accepts_marketing)
        && (!step.require_sms_consent || cart.sms_consent)
        && (step.filters.min_value.is_none() || cart.total_minor >= 6000)
}

/// What the simulation's ledger holds of a (cart, step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Sent,
    PassedOver,
    /// A webhook refused for good.
    Refused,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn invariants_hold_over_many_runs(world in world()) {
        let World { mut carts, steps, policy, .. } = world.clone();
        let mut history = History::default();
        for (address, order) in &world.orders {
            history.orders.entry(address.clone()).or_default().push(order.clone());
        }
        history.suppressed = world.suppressed.iter().cloned().collect();
        let mut ledger: HashMap<(String, String), Done> = HashMap::new();
        // Address → (when, channel) of every reminder it got.
        let mut sent_times: HashMap<String, Vec<(DateTime<Utc>, ChannelKind)>> = HashMap::new();
        let mut now = now();
        for &(hours, flip, refuse) in &world.runs {
            now += TimeDelta::hours(hours);
            // A new snapshot may change the cart's consents.
            let flipped = flip % carts.len();
            carts[flipped].accepts_marketing ^= true;
            carts[flipped].sms_consent ^= true;
            let decisions = plan(&carts, &history, &policy, &steps, now);
            // One decision per cart besides the steps passed over, which come first.
            let main = decisions
                .iter()
                .filter(|d| !matches!(d.verdict, Verdict::PassOver(_)))
                .count();
            prop_assert_eq!(main, carts.len());
            let passes = decisions
                .iter()
                .take_while(|d| matches!(d.verdict, Verdict::PassOver(_)))
                .count();
            prop_assert_eq!(passes, decisions.len() - main);
            let mut this_run: HashSet<&str> = HashSet::new();
            for decision in &decisions {
                let cart = &carts[decision.cart];
                let key = |index: usize| (cart.id.clone(), steps[index].name.clone());
                let earlier_done = |index: usize, ledger: &HashMap<(String, String), Done>| {
                    (0..index).all(|earlier| ledger.contains_key(&key(earlier)))
                };
                match decision.verdict {
                    Verdict::PassOver(reason) => {
                        let index = decision.step.unwrap();
                        let step = &steps[index];
                        // Due, not qualifying, in order, and only once.
                        prop_assert!(reason.passes_over());
                        prop_assert!(now - cart.updated_at >= step.after);
                        prop_assert!(!qualifies(cart, step));
                        prop_assert!(earlier_done(index, &ledger));
                        prop_assert!(ledger.insert(key(index), Done::PassedOver).is_none());
                    }
                    Verdict::Send => {
                        let index = decision.step.unwrap();
                        let step = &steps[index];
                        // Never a second send, nor one passed over; steps in order.
                        prop_assert!(!ledger.contains_key(&key(index)));
                        prop_assert!(earlier_done(index, &ledger));
                        // Never to suppressed, non-qualifying, ordered or purchased.
                        prop_assert!(!history.suppressed.contains(&cart.email_norm));
                        prop_assert!(qualifies(cart, step));
                        prop_assert_eq!(cart.status, CartStatus::Open);
                        for (address, order) in &world.orders {
                            if *address == cart.email_norm {
                                prop_assert!(order.created_at < cart.updated_at);
                                let recent = now - order.created_at <= policy.purchased_within;
                                prop_assert!(!(recent && cart.items.iter().any(|item| order.skus.contains(&item.sku))));
                            }
                        }
                        // Due, and not at night.
                        prop_assert!(now - cart.updated_at >= step.after);
                        if let Some(quiet) = &policy.quiet_hours {
                            prop_assert!(!quiet.contains(local_time(cart, &policy, now)));
                        }
                        // One reminder per address per run; cooldown and cap
                        // across runs, on the step's channel or on all.
                        prop_assert!(this_run.insert(&cart.email_norm));
                        let kind = step.channel.kind();
                        let times = sent_times.entry(cart.email_norm.clone()).or_default();
                        let counted: Vec<DateTime<Utc>> = times
                            .iter()
                            .filter(|(_, channel)| step.cross_channel || *channel == kind)
                            .map(|(at, _)| *at)
                            .collect();
                        if policy.cooldown > TimeDelta::zero() {
                            prop_assert!(counted.iter().all(|&t| now - t >= policy.cooldown));
                        }
                        if let Some(cap) = policy.max_per_address {
                            let recent = counted.iter().filter(|&&t| now - t < policy.window).count();
                            prop_assert!(recent < cap as usize);
                        }
                        let refused = refuse && kind == ChannelKind::Webhook;
                        if !refused {
                            times.push((now, kind));
                        }
                        ledger.insert(key(index), if refused { Done::Refused } else { Done::Sent });
                    }
                    Verdict::Skip(_) => {}
                }
            }
            // Record the run as the store would.
            for decision in &decisions {
                let (cart, index) = (&carts[decision.cart], decision.step);
                let state = match (decision.verdict, index) {
                    (Verdict::PassOver(_), Some(_)) => SendState::Skipped,
                    (Verdict::Send, Some(index)) => {
                        match ledger[&(cart.id.clone(), steps[index].name.clone())] {
                            Done::Refused => SendState::Failed,
                            _ => SendState::Sent,
                        }
                    }
                    _ => continue,
                };
                let step = &steps[index.unwrap()];
                mark_at(&mut history, &cart.id, &step.name, state, 1, now);
                if state == SendState::Sent {
                    history.add_recent(cart.email_norm.clone(), now, &step.name);
                }
            }
        }
    }
}

#[test]
fn out_of_stock_items_are_dropped_or_skip_the_cart() {
    let stocked = |in_stock: [Option<bool>; 2]| {
        let mut cart = cart("c1", 2);
        cart.items = vec![
            CandidateItem {
                in_stock: in_stock[0],
                ..CandidateItem::new("TENT-1", "tents", 4000)
            },
            CandidateItem {
                in_stock: in_stock[1],
                ..CandidateItem::new("MUG-1", "mugs", 1000)
            },
        ];
        cart
    };
    let rule = |out_of_stock| Policy {
        out_of_stock,
        ..policy()
    };
    let both_out = [Some(false), Some(false)];
    let one_out = [Some(true), Some(false)];
    let unknown = [None, None];
    let history = History::default();
    assert_eq!(
        reason(stocked(both_out), &history, &rule(OutOfStock::DropItem)),
        skip(SkipReason::OutOfStock)
    );
    assert_eq!(
        reason(stocked(one_out), &history, &rule(OutOfStock::DropItem)),
        Verdict::Send
    );
    assert_eq!(
        reason(stocked(unknown), &history, &rule(OutOfStock::DropItem)),
        Verdict::Send
    );
    assert_eq!(
        reason(stocked(one_out), &history, &rule(OutOfStock::SkipCart)),
        skip(SkipReason::OutOfStock)
    );
    assert_eq!(
        reason(stocked(both_out), &history, &rule(OutOfStock::Ignore)),
        Verdict::Send
    );
    // The value filters see what the mail shows: the mug alone is €10.
    let mut steps = steps();
    steps[0].filters.min_value = Some(Threshold::Any(Decimal::new(2000, 2)));
    let mut mug_only = stocked([Some(false), Some(true)]);
    mug_only.total_minor = 5000;
    assert_eq!(
        decide_with(mug_only, &history, &rule(OutOfStock::DropItem), &steps).1,
        passed(SkipReason::BelowMinValue)
    );
}

#[test]
fn a_step_may_require_sms_consent() {
    let mut steps = steps();
    steps[0].require_sms_consent = true;
    let history = History::default();
    assert_eq!(
        decide_with(cart("c1", 2), &history, &policy(), &steps).1,
        passed(SkipReason::NoSmsConsent)
    );
    let mut consenting = cart("c1", 2);
    consenting.sms_consent = true;
    assert_eq!(
        decide_with(consenting, &history, &policy(), &steps).1,
        Verdict::Send
    );
}

fn webhook(mut step: Step) -> Step {
    step.channel = Channel::Webhook(Webhook {
        url: "https://hooks.example/cart".into(),
        headers: Vec::new(),
        secret_env: None,
        timeout: std::time::Duration::from_secs(1),
    });
    step
}

/// 1h e-mail, 24h SMS (a webhook needing SMS consent), 72h e-mail.
fn email_sms_email() -> Vec<Step> {
    let mut sms = webhook(step("24h", 24));
    sms.require_sms_consent = true;
    vec![step("1h", 1), sms, step("72h", 72)]
}

/// Every decision of one run over `cart`: `(step, verdict)`.
fn decisions(cart: Candidate, history: &History, steps: &[Step]) -> Vec<(Option<usize>, Verdict)> {
    plan(&[cart], history, &policy(), steps, now())
        .iter()
        .map(|d| (d.step, d.verdict))
        .collect()
}

#[test]
fn a_step_the_cart_does_not_qualify_for_is_passed_over_once_due() {
    let steps = email_sms_email();
    let mut history = History::default();
    mark(&mut history, "c1", "1h", SendState::Sent);
    // Not due yet: the reason is shown, nothing is passed over.
    assert_eq!(
        decisions(cart("c1", 10), &history, &steps),
        [(Some(1), skip(SkipReason::NoSmsConsent))]
    );
    // Due: passed over, and the 72h e-mail keeps its own clock.
    assert_eq!(
        decisions(cart("c1", 30), &history, &steps),
        [
            (Some(1), passed(SkipReason::NoSmsConsent)),
            (Some(2), skip(SkipReason::NotDue))
        ]
    );
    mark(&mut history, "c1", "24h", SendState::Skipped);
    assert_eq!(
        decisions(cart("c1", 72), &history, &steps),
        [(Some(2), Verdict::Send)]
    );
    // A run that comes late passes over and sends in one go.
    let mut late = History::default();
    mark(&mut late, "c1", "1h", SendState::Sent);
    assert_eq!(
        decisions(cart("c1", 80), &late, &steps),
        [
            (Some(1), passed(SkipReason::NoSmsConsent)),
            (Some(2), Verdict::Send)
        ]
    );
    // A passed-over step stays passed over, consent or not.
    let mut consenting = cart("c1", 30);
    consenting.sms_consent = true;
    assert_eq!(
        decisions(consenting, &history, &steps),
        [(Some(2), skip(SkipReason::NotDue))]
    );
    // No step left: done.
    mark(&mut history, "c1", "72h", SendState::Skipped);
    assert_eq!(
        decisions(cart("c1", 100), &history, &steps),
        [(None, skip(SkipReason::Done))]
    );
}

#[test]
fn consent_and_filters_pass_over_what_the_cart_is_waits() {
    let mut no_consent = cart("c1", 30);
    no_consent.accepts_marketing = false;
    let mut lax = steps();
    lax[1] = webhook(step("24h", 24));
    lax[1].require_consent = false;
    // The e-mail needs consent; the webhook does not and goes.
    assert_eq!(
        decisions(no_consent, &History::default(), &lax),
        [
            (Some(0), passed(SkipReason::NoConsent)),
            (Some(1), Verdict::Send)
        ]
    );
    // A step's own minimum: passed over; the next step has none.
    let mut coupon = steps();
    coupon[0].filters.min_value = Some(Threshold::Any(Decimal::new(10_000, 2)));
    assert_eq!(
        decisions(cart("c1", 30), &History::default(), &coupon),
        [
            (Some(0), passed(SkipReason::BelowMinValue)),
            (Some(1), Verdict::Send)
        ]
    );
    // An empty cart, or one out of stock, waits at its step.
    let mut empty = cart("c1", 30);
    empty.items.clear();
    assert_eq!(
        decisions(empty, &History::default(), &steps()),
        [(Some(0), skip(SkipReason::EmptyCart))]
    );
    let mut sold_out = cart("c1", 30);
    sold_out.items[0].in_stock = Some(false);
    assert_eq!(
        decisions(sold_out, &History::default(), &steps()),
        [(Some(0), skip(SkipReason::OutOfStock))]
    );
}

#[test]
fn a_refused_webhook_lets_the_next_step_go_a_refused_mail_does_not() {
    let mut hooks = steps();
    hooks[0] = webhook(step("1h", 1));
    let mut history = History::default();
    mark(&mut history, "c1", "1h", SendState::Failed);
    assert_eq!(
        decisions(cart("c1", 30), &history, &hooks),
        [(Some(1), Verdict::Send)]
    );
    assert_eq!(
        decisions(cart("c1", 30), &history, &steps()),
        [(Some(0), skip(SkipReason::Failed))]
    );
}

#[test]
fn only_a_step_never_delivered_is_passed_over() {
    let mut no_consent = cart("c1", 5);
    no_consent.accepts_marketing = false;
    // A retry (refused for now): passed over once its wait is over.
    let mut history = History::default();
    mark_at(
        &mut history,
        "c1",
        "1h",
        SendState::Retry,
        1,
        now() - TimeDelta::hours(1),
    );
    assert_eq!(
        decisions(no_consent.clone(), &history, &steps()),
        [
            (Some(0), passed(SkipReason::NoConsent)),
            (Some(1), skip(SkipReason::NoConsent))
        ]
    );
    // An unknown one may have reached the customer: re-sent on purpose
    // or not, it is never passed over.
    let mut history = History::default();
    mark(&mut history, "c1", "1h", SendState::Unknown);
    let resend = Policy {
        resend_unknown: true,
        ..policy()
    };
    let run = plan(&[no_consent], &history, &resend, &steps(), now());
    assert_eq!(run.len(), 1);
    assert_eq!(
        (run[0].step, run[0].verdict),
        (Some(0), skip(SkipReason::NoConsent))
    );
}

/// An address sent the `1h` e-mail `hours_ago`, and a `24h` webhook step due.
fn after_an_email(hours_ago: i64, cross_channel: bool) -> Verdict {
    let mut steps = steps();
    steps[1] = webhook(step("24h", 24));
    steps[1].cross_channel = cross_channel;
    let mut history = History::default();
    mark(&mut history, "c1", "1h", SendState::Sent);
    let at = now() - TimeDelta::hours(hours_ago);
    history.add_recent("c1@example.com".into(), at, "1h");
    decide_with(cart("c1", 30), &history, &policy(), &steps).1
}

#[test]
fn caps_count_per_channel_unless_a_step_counts_them_all() {
    // The e-mail's cooldown (20h) does not hold back an SMS 6h later…
    assert_eq!(after_an_email(6, false), Verdict::Send);
    // …unless the step opts into the cross-channel cap.
    assert_eq!(after_an_email(6, true), skip(SkipReason::Cooldown));
    assert_eq!(after_an_email(20, true), Verdict::Send);

    // An SMS does not hold back an e-mail; a step no longer configured
    // counts on every channel.
    let sent = |step: &str| {
        let mut history = History::default();
        history.add_recent("c1@example.com".into(), now() - TimeDelta::hours(6), step);
        decide_one(cart("c1", 2), &history, &policy()).1
    };
    let mut sms_first = steps();
    sms_first.insert(0, webhook(step("sms", 0)));
    let mut history = History::default();
    history.add_recent("c1@example.com".into(), now() - TimeDelta::hours(6), "sms");
    mark(&mut history, "c1", "sms", SendState::Sent);
    assert_eq!(
        decide_with(cart("c1", 2), &history, &policy(), &sms_first),
        (Some(1), Verdict::Send)
    );
    assert_eq!(sent("1h"), skip(SkipReason::Cooldown));
    assert_eq!(sent("renamed-step"), skip(SkipReason::Cooldown));

    // The frequency cap likewise.
    let capped = Policy {
        max_per_address: Some(1),
        cooldown: TimeDelta::zero(),
        ..policy()
    };
    let mut webhooks = steps();
    webhooks[0] = webhook(step("1h", 1));
    let mut history = History::default();
    history.add_recent("c1@example.com".into(), now() - TimeDelta::hours(30), "72h");
    assert_eq!(
        reason(cart("c1", 2), &history, &capped),
        skip(SkipReason::FrequencyCap)
    );
    assert_eq!(
        decide_with(cart("c1", 2), &history, &capped, &webhooks).1,
        Verdict::Send
    );
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
