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
        skip(SkipReason::NoConsent)
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
        skip(SkipReason::BelowMinValue)
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
        skip(SkipReason::AboveMaxValue)
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
        skip(SkipReason::BelowMinValue)
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
        skip(SkipReason::ExcludedSku)
    );
    assert_eq!(
        with(Filters {
            include_skus: patterns(&["BOOT-*"]),
            ..Filters::default()
        }),
        skip(SkipReason::SkuNotIncluded)
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
        skip(SkipReason::ExcludedCategory)
    );
    assert_eq!(
        with(Filters {
            include_categories: patterns(&["footwear"]),
            ..Filters::default()
        }),
        skip(SkipReason::CategoryNotIncluded)
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
        history.sent_to.insert(
            "c1@example.com".into(),
            hours_ago
                .iter()
                .map(|h| now() - TimeDelta::hours(*h))
                .collect(),
        );
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

/// A random world: carts over a few addresses, orders, suppressions, and a
/// random policy. The simulation then runs the plan hour after hour,
/// applying its sends to the history as a real run would.
#[derive(Debug, Clone)]
struct World {
    carts: Vec<Candidate>,
    orders: Vec<(String, OrderFact)>,
    suppressed: Vec<String>,
    policy: Policy,
    require_consent: bool,
    hours: Vec<i64>,
}

fn world() -> impl Strategy<Value = World> {
    let cart = (
        0..6u8,
        0..200i64,
        any::<bool>(),
        0..3u8,
        0..4u8,
        prop::option::of(0..3u8),
    )
        .prop_map(|(address, idle, consent, status, sku, zone)| {
            let id_seed = idle * 7 + i64::from(address);
            let mut cart = cart(&format!("c{id_seed}"), idle);
            cart.email_norm = format!("a{address}@example.com");
            cart.email = cart.email_norm.clone();
            cart.accepts_marketing = consent;
            cart.status = match status {
                0 => CartStatus::Ordered,
                _ => CartStatus::Open,
            };
            cart.items = vec![CandidateItem::new(&format!("SKU-{sku}"), "cat", 5000)];
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
    (
        prop::collection::vec(cart, 1..12),
        prop::collection::vec(order, 0..4),
        prop::collection::vec(0..6u8, 0..2),
        0..30i64,
        prop::option::of(1..4u32),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(1..30i64, 1..8),
    )
        .prop_map(
            |(mut carts, orders, suppressed, cooldown, cap, quiet, consent, hours)| {
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
                    require_consent: consent,
                    hours,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn invariants_hold_over_many_runs(world in world()) {
        let mut steps = steps();
        for step in &mut steps {
            step.require_consent = world.require_consent;
        }
        let mut history = History::default();
        for (address, order) in &world.orders {
            history.orders.entry(address.clone()).or_default().push(order.clone());
        }
        history.suppressed = world.suppressed.iter().cloned().collect();
        let mut sent: HashSet<(String, String)> = HashSet::new();
        let mut sent_times: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
        let mut now = now();
        for hours in &world.hours {
            now += TimeDelta::hours(*hours);
            let decisions = plan(&world.carts, &history, &world.policy, &steps, now);
            prop_assert_eq!(decisions.len(), world.carts.len());
            let mut this_run: HashSet<&str> = HashSet::new();
            for decision in decisions.iter().filter(|d| d.verdict == Verdict::Send) {
                let cart = &world.carts[decision.cart];
                let index = decision.step.unwrap();
                let step = &steps[index];
                // Never a second send of a (cart, step).
                prop_assert!(sent.insert((cart.id.clone(), step.name.clone())));
                // Steps in order.
                for earlier in &steps[..index] {
                    prop_assert!(sent.contains(&(cart.id.clone(), earlier.name.clone())));
                }
                // Never to suppressed, non-consenting, ordered or purchased.
                prop_assert!(!history.suppressed.contains(&cart.email_norm));
                prop_assert!(!world.require_consent || cart.accepts_marketing);
                prop_assert_eq!(cart.status, CartStatus::Open);
                for (address, order) in &world.orders {
                    if *address == cart.email_norm {
                        prop_assert!(order.created_at < cart.updated_at);
                        let recent = now - order.created_at <= world.policy.purchased_within;
                        prop_assert!(!(recent && cart.items.iter().any(|item| order.skus.contains(&item.sku))));
                    }
                }
                // Due, and not at night.
                prop_assert!(now - cart.updated_at >= step.after);
                if let Some(quiet) = &world.policy.quiet_hours {
                    prop_assert!(!quiet.contains(local_time(cart, &world.policy, now)));
                }
                // One reminder per address per run; cooldown and cap across runs.
                prop_assert!(this_run.insert(&cart.email_norm));
                let times = sent_times.entry(cart.email_norm.clone()).or_default();
                if world.policy.cooldown > TimeDelta::zero() {
                    prop_assert!(times.iter().all(|&t| now - t >= world.policy.cooldown));
                }
                if let Some(cap) = world.policy.max_per_address {
                    let recent = times.iter().filter(|&&t| now - t < world.policy.window).count();
                    prop_assert!(recent < cap as usize);
                }
                times.push(now);
            }
            // Record the run as the store would.
            for decision in decisions.iter().filter(|d| d.verdict == Verdict::Send) {
                let cart = &world.carts[decision.cart];
                let step = &steps[decision.step.unwrap()];
                mark(&mut history, &cart.id, &step.name, SendState::Sent);
                history.sent_to.entry(cart.email_norm.clone()).or_default().push(now);
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
        skip(SkipReason::BelowMinValue)
    );
}

#[test]
fn a_step_may_require_sms_consent() {
    let mut steps = steps();
    steps[0].require_sms_consent = true;
    let history = History::default();
    assert_eq!(
        decide_with(cart("c1", 2), &history, &policy(), &steps).1,
        skip(SkipReason::NoSmsConsent)
    );
    let mut consenting = cart("c1", 2);
    consenting.sms_consent = true;
    assert_eq!(
        decide_with(consenting, &history, &policy(), &steps).1,
        Verdict::Send
    );
}
