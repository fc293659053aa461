//! Real runs over SMTP to the in-process test server.

use std::net::TcpListener;

use crate::{
    fixtures::{ADA, ALAN, Config, GRACE, HEDY, KATHERINE, LATER, NOW, Transport, shop},
    harness::{carts_with, for_cart},
    mime::html_unescape,
    smtp_server::SmtpServer,
};

fn pair(cart: &str, step: &str) -> (String, String) {
    (cart.to_string(), step.to_string())
}

#[test]
fn run_delivers_reminders_over_smtp_and_records_them() {
    let server = SmtpServer::start();
    let t = shop(&Config::new(Transport::Smtp(server.port())));

    // -v: every run's summary (from cron, only one that needs a person).
    let out = t.recart(&["-v", "run", "--json", "--now", NOW]);
    out.expect_success();
    let decisions = out.decisions();
    assert_eq!(carts_with(&decisions, "sent"), ["C-1001", "C-1002"]);
    for d in &decisions {
        if d.outcome == "sent" {
            assert_eq!(d.step.as_deref(), Some("1h"), "{d:?}");
            assert!(d.reason.is_none(), "{d:?}");
        }
    }
    // Alan's due 1h step is passed over, his 24h step held back: no consent.
    let alan = for_cart(&decisions, "C-1003");
    assert_eq!(alan.len(), 2);
    for d in alan {
        assert_eq!(
            (d.outcome.as_str(), d.reason.as_deref()),
            ("skip", Some("no-consent"))
        );
    }
    assert!(!out.stderr.trim().is_empty(), "no summary on stderr");

    // Exactly one mail each to Ada and Grace, nobody else.
    assert_eq!(server.recipients(), [ADA, GRACE]);
    let messages = server.messages();
    assert_eq!(messages.len(), 2);

    let ada = &server.messages_to(ADA)[0];
    assert_eq!(ada.from, "hello@shop.example");
    let mail = ada.mail();
    assert_eq!(mail.subject(), "Still thinking it over, Ada?");
    let from = mail.header("From").unwrap_or_default();
    assert!(from.contains("hello@shop.example"), "From: {from}");
    assert!(mail.header("To").unwrap_or_default().contains(ADA));
    assert!(mail.header("Message-ID").is_some(), "no Message-ID");
    let text = mail.part("text/plain").expect("a text/plain part");
    for needle in [
        "Hi Ada,",
        "in your cart at Northwind Test Shop:",
        "1 x Merino Wool Beanie (MWB-01, Accessories)",
        "2 x Insulated Travel Mug (TRV-MUG-350, Kitchen)",
        "EUR",
        "https://shop.example/cart/recover/",
        "https://shop.example/unsubscribe/",
        "Cart C-1001 (en-GB), reminder 1h, sent to ada.lovelace@example.com.",
    ] {
        assert!(text.contains(needle), "text part lacks {needle:?}:\n{text}");
    }
    let html = html_unescape(&mail.part("text/html").expect("a text/html part"));
    for needle in [
        "Merino Wool Beanie",
        "Insulated Travel Mug",
        "https://cdn.shop.example/img/mwb-01.jpg",
        "https://shop.example/products/insulated-travel-mug",
        "https://shop.example/cart/recover/",
    ] {
        assert!(html.contains(needle), "html part lacks {needle:?}:\n{html}");
    }
    // A token is filled in, not left as a placeholder.
    assert!(!text.contains("{token}"), "{text}");

    let grace = server.messages_to(GRACE)[0].mail();
    assert_eq!(grace.subject(), "Still thinking it over, Grace?");
    let text = grace.text();
    assert!(text.contains("Linen Apron"), "{text}");
    assert!(text.contains("Espresso Cup Set"), "{text}");
    assert!(text.contains("USD"), "{text}");

    let store = t.store();
    assert_eq!(
        store.sends_in("sent"),
        [pair("C-1001", "1h"), pair("C-1002", "1h")]
    );
    // And Alan's 1h step, passed over (no consent): nothing sent.
    assert_eq!(store.sends_in("skipped"), [pair("C-1003", "1h")]);
    assert_eq!(store.sends().len(), 3, "{:?}", store.sends());
}

/// Where the server offers PIPELINING, each envelope goes in one write
/// (MAIL, RCPT and DATA before any reply); where it does not, recart waits
/// for each reply. Both deliver the same mails.
#[test]
fn envelopes_are_pipelined_only_where_the_server_offers_it() {
    for (server, pipelined) in [
        (SmtpServer::start_pipelining(), true),
        (SmtpServer::start(), false),
    ] {
        let t = shop(&Config::new(Transport::Smtp(server.port())));
        t.recart(&["run", "--now", NOW]).expect_success();
        assert_eq!(server.recipients(), [ADA, GRACE]);
        let expected = if pipelined { 2 } else { 0 };
        assert_eq!(
            server.pipelined_envelopes(),
            expected,
            "pipelining {pipelined}"
        );
        assert_eq!(t.store().sends_in("sent").len(), 2);
    }
}

#[test]
fn running_again_at_the_same_time_sends_nothing_new() {
    let server = SmtpServer::start();
    let t = shop(&Config::new(Transport::Smtp(server.port())));
    t.recart(&["run", "--now", NOW]).expect_success();
    assert_eq!(server.messages().len(), 2);
    let sends = t.store().sends();

    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_success();
    let decisions = out.decisions();
    assert!(
        carts_with(&decisions, "sent").is_empty(),
        "sent again: {decisions:#?}"
    );
    for d in for_cart(&decisions, "C-1001")
        .into_iter()
        .chain(for_cart(&decisions, "C-1002"))
    {
        assert_eq!(d.outcome, "skip", "{d:?}");
    }
    assert_eq!(server.messages().len(), 2, "a mail went out twice");
    assert_eq!(t.store().sends(), sends);
}

#[test]
fn a_later_run_sends_the_next_step_to_carts_that_got_the_first() {
    let server = SmtpServer::start();
    let t = shop(&Config::new(Transport::Smtp(server.port())));
    t.recart(&["run", "--now", NOW]).expect_success();
    assert_eq!(server.messages().len(), 2);

    let out = t.recart(&["run", "--json", "--now", LATER]);
    out.expect_success();
    let decisions = out.decisions();
    for cart in ["C-1001", "C-1002"] {
        let sent: Vec<_> = for_cart(&decisions, cart)
            .into_iter()
            .filter(|d| d.outcome == "sent")
            .collect();
        assert_eq!(sent.len(), 1, "{cart}: {decisions:#?}");
        assert_eq!(sent[0].step.as_deref(), Some("24h"), "{cart}");
    }

    for (address, subject) in [
        (ADA, "Your cart is waiting, Ada"),
        (GRACE, "Your cart is waiting, Grace"),
    ] {
        let messages = server.messages_to(address);
        assert_eq!(messages.len(), 2, "{address}");
        assert_eq!(messages[1].mail().subject(), subject);
    }
    assert!(
        server.messages_to(ALAN).is_empty(),
        "mailed without consent"
    );
    assert!(
        server.messages_to(HEDY).is_empty(),
        "mailed a cart older than max_age"
    );
    // Katherine never had the 1h reminder; whatever the policy for missed
    // steps, she gets at most one mail in one run.
    assert!(server.messages_to(KATHERINE).len() <= 1);

    let store = t.store();
    let sent = store.sends_in("sent");
    for expected in [
        pair("C-1001", "1h"),
        pair("C-1001", "24h"),
        pair("C-1002", "1h"),
        pair("C-1002", "24h"),
    ] {
        assert!(sent.contains(&expected), "{expected:?} not in {sent:?}");
    }
    assert!(!sent.iter().any(|(cart, _)| cart == "C-1003"));
}

#[test]
fn no_consent_means_no_mail_ever() {
    let server = SmtpServer::start();
    let t = shop(&Config::new(Transport::Smtp(server.port())));
    for now in [NOW, "2026-11-22T12:00:00Z", LATER, "2026-11-25T12:00:00Z"] {
        let out = t.recart(&["run", "--json", "--now", now]);
        out.expect_success();
        for d in out.decisions() {
            if d.email == ALAN {
                assert_eq!(d.outcome, "skip", "at {now}: {d:?}");
                // Each step passed over in its turn; then none is left.
                let reason = d.reason.as_deref();
                assert!(
                    reason == Some("no-consent")
                        || (now == "2026-11-25T12:00:00Z" && reason == Some("done")),
                    "at {now}: {d:?}"
                );
            }
        }
    }
    assert!(
        !server
            .rcpt_attempts()
            .iter()
            .any(|r| r.eq_ignore_ascii_case(ALAN)),
        "RCPT TO {ALAN} was attempted"
    );
    assert!(
        t.store()
            .sends()
            .iter()
            .all(|s| s.cart_id != "C-1003" || s.state == "skipped"),
        "a send was recorded for the cart without consent"
    );
}

#[test]
fn dry_run_over_smtp_sends_nothing() {
    let server = SmtpServer::start();
    let t = shop(&Config::new(Transport::Smtp(server.port())));
    let out = t.recart(&["run", "--dry-run", "--json", "--now", NOW]);
    out.expect_success();
    assert_eq!(carts_with(&out.decisions(), "send"), ["C-1001", "C-1002"]);
    assert_eq!(server.connections(), 0);

    // And the real run afterwards still sends both.
    t.recart(&["run", "--now", NOW]).expect_success();
    assert_eq!(server.recipients(), [ADA, GRACE]);
}

#[test]
fn a_permanently_rejected_recipient_is_failed_and_the_rest_delivered() {
    let server = SmtpServer::start();
    server.reply_to_rcpt(
        GRACE,
        "550 5.1.1 <grace.hopper@example.com>: Recipient address rejected: User unknown",
    );
    let t = shop(&Config::new(Transport::Smtp(server.port())));

    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(3);
    let decisions = out.decisions();
    assert_eq!(carts_with(&decisions, "sent"), ["C-1001"]);
    let grace = for_cart(&decisions, "C-1002");
    assert_eq!(grace.len(), 1);
    assert_eq!(grace[0].outcome, "failed", "{grace:?}");
    assert!(grace[0].reason.is_some(), "failed without a reason");

    assert_eq!(server.recipients(), [ADA]);
    let store = t.store();
    assert_eq!(store.sends_in("sent"), [pair("C-1001", "1h")]);
    assert_eq!(store.sends_in("failed"), [pair("C-1002", "1h")]);
    drop(store);

    // A permanent failure is not retried (Katherine's cart is due by 13:00).
    server.clear_rcpt_replies();
    t.recart(&["run", "--now", "2026-11-21T13:00:00Z"])
        .expect_success();
    let grace_attempts = server
        .rcpt_attempts()
        .iter()
        .filter(|r| r.eq_ignore_ascii_case(GRACE))
        .count();
    assert_eq!(grace_attempts, 1, "{:?}", server.rcpt_attempts());
    assert_eq!(server.recipients(), [ADA, KATHERINE]);
}

#[test]
fn a_temporarily_rejected_recipient_is_retried_on_a_later_run() {
    let server = SmtpServer::start();
    server.reply_to_rcpt(
        GRACE,
        "450 4.2.0 <grace.hopper@example.com>: Mailbox busy, try later",
    );
    let t = shop(&Config::new(Transport::Smtp(server.port())));

    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(3);
    let decisions = out.decisions();
    assert_eq!(carts_with(&decisions, "sent"), ["C-1001"]);
    assert_eq!(carts_with(&decisions, "retry"), ["C-1002"]);
    assert_eq!(t.store().sends_in("retry"), [pair("C-1002", "1h")]);
    assert!(server.messages_to(GRACE).is_empty());

    // Grace's retry, and Katherine's cart, due since 12:40.
    server.clear_rcpt_replies();
    let out = t.recart(&["run", "--json", "--now", "2026-11-21T13:00:00Z"]);
    out.expect_success();
    assert_eq!(carts_with(&out.decisions(), "sent"), ["C-1002", "C-1004"]);
    assert_eq!(server.messages_to(GRACE).len(), 1);
    assert_eq!(server.messages_to(ADA).len(), 1, "Ada mailed twice");
    assert_eq!(
        t.store().sends_in("sent"),
        [
            pair("C-1001", "1h"),
            pair("C-1002", "1h"),
            pair("C-1004", "1h")
        ]
    );
}

#[test]
fn an_unreachable_server_sends_nothing_and_a_later_run_catches_up() {
    // A port with nobody listening.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let t = shop(&Config::new(Transport::Smtp(port)));
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(1);
    let decisions = out.decisions();
    assert!(carts_with(&decisions, "sent").is_empty());
    // Nothing left the machine: both are to be retried, and say so.
    assert_eq!(carts_with(&decisions, "retry"), ["C-1001", "C-1002"]);
    assert!(t.store().sends_in("sent").is_empty());

    let server = SmtpServer::start();
    t.write(
        "recart.toml",
        Config::new(Transport::Smtp(server.port())).to_toml(),
    );
    // By 13:00 Katherine's cart is due too.
    t.recart(&["run", "--now", "2026-11-21T13:00:00Z"])
        .expect_success();
    assert_eq!(server.recipients(), [ADA, GRACE, KATHERINE]);
    assert_eq!(
        t.store().sends_in("sent"),
        [
            pair("C-1001", "1h"),
            pair("C-1002", "1h"),
            pair("C-1004", "1h")
        ]
    );
}

/// The test server itself: a raw SMTP conversation with dot-stuffing.
#[test]
fn smtp_test_server_speaks_smtp() {
    use std::io::{BufRead, BufReader, Write};

    let server = SmtpServer::start();
    server.reply_to_rcpt("nobody@example.com", "550 5.1.1 user unknown");
    let stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut read_reply = || {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let done = line.as_bytes().get(3) == Some(&b' ');
            lines.push(line.trim_end().to_string());
            if done {
                return lines;
            }
        }
    };
    assert!(read_reply()[0].starts_with("220 "));
    let mut say = |line: &str| writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    say("EHLO client.example");
    let ehlo = read_reply();
    assert_eq!(ehlo.last().unwrap(), "250 8BITMIME");
    assert!(ehlo.contains(&"250-SIZE 10485760".to_string()));
    for (line, code) in [
        ("NOOP", "250"),
        ("MAIL FROM:<shop@example.com> BODY=8BITMIME", "250"),
        ("RCPT TO:<nobody@example.com>", "550"),
        ("RCPT TO:<Someone@Example.com>", "250"),
        ("DATA", "354"),
    ] {
        say(line);
        assert!(read_reply()[0].starts_with(code), "{line}");
    }
    say("Subject: =?utf-8?q?Caf=C3=A9?=\r\n\r\nline one\r\n..leading dot\r\n.");
    assert!(read_reply()[0].starts_with("250"));
    say("RSET");
    assert!(read_reply()[0].starts_with("250"));
    say("QUIT");
    assert!(read_reply()[0].starts_with("221"));

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].from, "shop@example.com");
    assert_eq!(messages[0].recipients, ["Someone@Example.com"]);
    assert_eq!(
        messages[0].data,
        "Subject: =?utf-8?q?Caf=C3=A9?=\r\n\r\nline one\r\n.leading dot\r\n"
    );
    assert_eq!(messages[0].mail().subject(), "Café");
    assert_eq!(
        server.rcpt_attempts(),
        ["nobody@example.com", "Someone@Example.com"]
    );
}
