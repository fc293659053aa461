use super::*;

#[test]
fn soft_bounce_is_retried_and_sent_on_a_later_run() {
    let Some(binary) = smtp_sink_or_skip("soft_bounce_is_retried_and_sent_on_a_later_run") else {
        return;
    };
    let refusing = Sink::start(&binary, &["-r", "RCPT", "-b", "451 4.3.0 try again later"]);
    let t = shop(&Config::new(Transport::Smtp(refusing.port())));

    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(3);
    let decisions = out.decisions();
    assert_eq!(carts_with(&decisions, "retry"), ["C-1001", "C-1002"]);
    for d in decisions.iter().filter(|d| d.outcome == "retry") {
        let reason = d.reason.as_deref().unwrap_or_default();
        assert!(reason.contains("451"), "{d:?}");
    }
    assert!(carts_with(&decisions, "sent").is_empty());
    assert!(
        refusing.messages().is_empty(),
        "the refusing sink took a mail"
    );
    let store = t.store();
    assert_eq!(store.sends_in("retry").len(), 2, "{:?}", store.sends());
    drop(store);

    // The sink recovers; within the backoff (30m) nothing is sent yet.
    let sink = Sink::start(&binary, &[]);
    retarget(&t, sink.port(), 4);
    let out = t.recart(&["run", "--json", "--now", &now_plus(10)]);
    out.expect_success();
    let decisions = out.decisions();
    assert!(carts_with(&decisions, "sent").is_empty(), "{decisions:#?}");
    for cart in ["C-1001", "C-1002"] {
        let d = decisions.iter().find(|d| d.cart_id == cart).unwrap();
        assert_eq!(
            (d.outcome.as_str(), d.reason.as_deref()),
            ("skip", Some("retry-wait"))
        );
    }

    // After it, both go out, once.
    let out = t.recart(&["run", "--json", "--now", &now_plus(35)]);
    out.expect_success();
    assert_eq!(carts_with(&out.decisions(), "sent"), ["C-1001", "C-1002"]);
    let messages = sink.wait_for(2);
    assert_eq!(messages.len(), 2, "{messages:?}");
    let mut recipients: Vec<String> = messages.iter().flat_map(|m| m.recipients.clone()).collect();
    recipients.sort();
    assert_eq!(recipients, [ADA, GRACE]);
    for (cart, address) in [("C-1001", ADA), ("C-1002", GRACE)] {
        let m = messages.iter().find(|m| m.recipients == [address]).unwrap();
        assert_eq!(
            m.message_id.as_deref(),
            Some(message_id(cart, "1h").as_str())
        );
    }
    let store = t.store();
    assert_eq!(store.sends_in("sent").len(), 2, "{:?}", store.sends());
    // Besides Alan's 1h step, passed over (no consent).
    assert_eq!(store.sends().len(), 3);
    assert_eq!(store.sends_in("skipped"), [("C-1003".into(), "1h".into())]);
}

#[test]
fn hard_bounce_is_failed_and_the_address_suppressed() {
    let Some(binary) = smtp_sink_or_skip("hard_bounce_is_failed_and_the_address_suppressed") else {
        return;
    };
    let sink = Sink::start(&binary, &["-f", "RCPT", "-B", "550 5.1.1 user unknown"]);
    let t = shop(&Config::new(Transport::Smtp(sink.port())));

    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(3);
    let decisions = out.decisions();
    assert_eq!(carts_with(&decisions, "failed"), ["C-1001", "C-1002"]);
    for d in decisions.iter().filter(|d| d.outcome == "failed") {
        let reason = d.reason.as_deref().unwrap_or_default();
        assert!(reason.contains("5.1.1"), "{d:?}");
    }
    assert!(sink.messages().is_empty());

    let store = t.store();
    assert_eq!(store.sends_in("failed").len(), 2, "{:?}", store.sends());
    let suppressed = store.count(
        "SELECT count(*) FROM suppressions WHERE reason = 'hard-bounce'
           AND email_norm IN ('ada.lovelace@example.com', 'grace.hopper@example.com')",
    );
    assert_eq!(suppressed, 2);
    drop(store);
    let list = t.recart(&["suppress", "list"]);
    list.expect_success()
        .expect_stdout_contains(ADA)
        .expect_stdout_contains("hard-bounce");

    // Nothing more ever goes to them, not even the next step.
    let good = Sink::start(&binary, &[]);
    retarget(&t, good.port(), 4);
    let out = t.recart(&["run", "--json", "--now", crate::fixtures::LATER]);
    out.expect_success();
    let decisions = out.decisions();
    for cart in ["C-1001", "C-1002"] {
        let d = decisions.iter().find(|d| d.cart_id == cart).unwrap();
        assert_eq!(
            (d.outcome.as_str(), d.reason.as_deref()),
            ("skip", Some("suppressed"))
        );
    }
    let sent = carts_with(&decisions, "sent");
    let messages = good.wait_for(sent.len());
    let recipients: Vec<_> = messages.iter().flat_map(|m| m.recipients.clone()).collect();
    assert_eq!(messages.len(), sent.len(), "{messages:?}");
    assert!(
        !recipients.iter().any(|r| r == ADA || r == GRACE),
        "{recipients:?}"
    );
}
