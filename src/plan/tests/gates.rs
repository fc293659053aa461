use super::*;

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
