use super::*;

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
