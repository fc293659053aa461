use crate::{
    fixtures::{
        ADA, ALAN, CARTS_CSV, Config, GRACE, HEDY, KATHERINE, NOW, SECRET, SECRET_ENV, Transport,
        carts_csv, shop, with_templates_in,
    },
    harness::{Decision, Test, carts_with, for_cart},
    mime::Mail,
    smtp_server::SmtpServer,
};

#[test]
fn dry_run_changes_nothing_in_a_fresh_directory() {
    let server = SmtpServer::start();
    let t = shop(&Config::new(Transport::Smtp(server.port())));
    t.recart(&["run", "--dry-run", "--now", NOW])
        .expect_success();

    assert_eq!(
        server.connections(),
        0,
        "dry-run connected to the SMTP server"
    );
    assert!(!t.exists("outbox"));
    assert_eq!(t.sends_if_any(), []);
    assert_eq!(
        t.cart_ids_if_any(),
        Vec::<String>::new(),
        "dry-run stored carts"
    );
}

#[test]
fn dry_run_changes_nothing_in_an_existing_store() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&["import", "carts.csv"]).expect_success();
    let store = t.store();
    let before: Vec<Vec<String>> = [
        "carts",
        "items",
        "cart_items",
        "sends",
        "orders",
        "suppressions",
    ]
    .iter()
    .map(|table| store.dump(table))
    .collect();
    drop(store);

    let out = t.recart(&["run", "--dry-run", "--now", NOW]);
    out.expect_success();

    // The table says who would get what and why the others are skipped.
    for needle in ["C-1001", ADA, "C-1002", GRACE, "C-1003", "no-consent"] {
        out.expect_stdout_contains(needle);
    }
    assert!(!out.stderr.trim().is_empty(), "no summary on stderr");

    assert!(!t.exists("outbox"), "dry-run wrote to the outbox");
    let store = t.store();
    let after: Vec<Vec<String>> = [
        "carts",
        "items",
        "cart_items",
        "sends",
        "orders",
        "suppressions",
    ]
    .iter()
    .map(|table| store.dump(table))
    .collect();
    assert_eq!(before, after, "dry-run changed the store");
    assert!(store.sends().is_empty());
}

#[test]
fn json_output_has_one_decision_per_line() {
    let t = shop(&Config::new(Transport::File));
    let out = t.recart(&["run", "--dry-run", "--json", "--now", NOW]);
    out.expect_success();
    assert!(!out.stderr.trim().is_empty(), "no summary on stderr");

    // Every line is an object with exactly the contract's types (checked by
    // `decisions`), and a reason exactly when it is not a send.
    let decisions = out.decisions();
    for d in &decisions {
        match d.outcome.as_str() {
            "send" => {
                assert!(d.reason.is_none(), "send with a reason: {d:?}");
                assert!(d.step.is_some(), "send without a step: {d:?}");
            }
            "skip" => assert!(d.reason.is_some(), "skip without a reason: {d:?}"),
            other => panic!("dry-run decided {other:?}: {d:?}"),
        }
    }

    assert_eq!(
        for_cart(&decisions, "C-1001"),
        [&Decision {
            cart_id: "C-1001".into(),
            email: ADA.into(),
            step: Some("1h".into()),
            outcome: "send".into(),
            reason: None,
        }]
    );
    assert_eq!(
        for_cart(&decisions, "C-1002"),
        [&Decision {
            cart_id: "C-1002".into(),
            email: GRACE.into(),
            step: Some("1h".into()),
            outcome: "send".into(),
            reason: None,
        }]
    );
    // Alan's 1h step is due and he gave no consent: it is passed over,
    // and his next step (24h, not due) is held back for the same reason.
    let alan = for_cart(&decisions, "C-1003");
    assert_eq!(alan.len(), 2, "{decisions:#?}");
    for (decision, step) in alan.iter().zip(["1h", "24h"]) {
        assert_eq!(decision.email, ALAN);
        assert_eq!(decision.step.as_deref(), Some(step));
        assert_eq!(decision.outcome, "skip");
        assert_eq!(decision.reason.as_deref(), Some("no-consent"));
    }

    // Katherine is not due yet and Hedy's cart is too old: whether they are
    // listed as skips or left out of the candidate window, nobody mails them.
    for d in &decisions {
        if d.email == KATHERINE || d.email == HEDY {
            assert_eq!(d.outcome, "skip", "{d:?}");
        }
    }
    assert_eq!(carts_with(&decisions, "send"), ["C-1001", "C-1002"]);
}

#[test]
fn file_transport_writes_one_eml_per_mail_and_records_sends() {
    let t = shop(&Config::new(Transport::File));
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_success();
    let decisions = out.decisions();
    assert_eq!(carts_with(&decisions, "sent"), ["C-1001", "C-1002"]);

    let files = t.files_in("outbox", ".eml");
    assert_eq!(files.len(), 2, "{files:?}");
    let mut to: Vec<String> = files
        .iter()
        .map(|f| {
            let mail = Mail::parse(&std::fs::read_to_string(f).unwrap());
            assert!(
                mail.subject().starts_with("Still thinking it over, "),
                "{mail:?}"
            );
            mail.header("To").unwrap_or_default()
        })
        .collect();
    to.sort();
    assert!(to[0].contains(ADA), "{to:?}");
    assert!(to[1].contains(GRACE), "{to:?}");

    assert_eq!(
        t.store().sends_in("sent"),
        [
            ("C-1001".to_string(), "1h".to_string()),
            ("C-1002".to_string(), "1h".to_string())
        ]
    );
}

#[test]
fn paths_in_the_config_are_relative_to_its_directory() {
    // Store, source, templates and outbox all live next to the config, and
    // the command runs from the directory above it.
    let t = with_templates_in(Test::new(), "shop/templates")
        .file("shop/recart.toml", Config::new(Transport::File).to_toml())
        .file("shop/carts.csv", CARTS_CSV)
        .env(SECRET_ENV, SECRET);
    t.recart(&["--config", "shop/recart.toml", "run", "--now", NOW])
        .expect_success();
    assert_eq!(t.files_in("shop/outbox", ".eml").len(), 2);
    assert!(t.exists("shop/recart.db"));
    assert!(!t.exists("outbox"));
    assert!(!t.exists("recart.db"));
}

#[test]
fn config_comes_from_recart_config_env_unless_given_on_the_command_line() {
    let t = with_templates_in(Test::new(), "shop/templates")
        .file("broken.toml", "this is not TOML = [")
        .file("shop/recart.toml", Config::new(Transport::File).to_toml())
        .file("shop/carts.csv", CARTS_CSV)
        .env(SECRET_ENV, SECRET)
        .env("RECART_CONFIG", "shop/recart.toml");

    t.recart(&["run", "--dry-run", "--now", NOW])
        .expect_success()
        .expect_stdout_contains("C-1001");

    // --config wins over $RECART_CONFIG.
    t.recart(&["--config", "broken.toml", "run", "--dry-run", "--now", NOW])
        .expect_status(2)
        .expect_stderr_contains("broken.toml");
}

#[test]
fn missing_config_file_is_a_config_error() {
    let t = Test::new();
    t.recart(&["run", "--dry-run", "--now", NOW])
        .expect_status(2)
        .expect_stderr_contains("recart.toml");
}

#[test]
fn skip_reasons_below_min_value_suppressed_and_cooldown() {
    let mut config = Config::new(Transport::File);
    config.min_value = "20.00".into();
    let t = shop(&config).file(
        "carts.csv",
        carts_csv(&[
            // Due, consenting, 58.00: sent.
            "C-1001,ada.lovelace@example.com,Ada,en-GB,EUR,open,true,2026-11-21T08:55:00Z,2026-11-21T09:30:00Z,MWB-01,Merino Wool Beanie,Accessories,2,29.00,,",
            // 12.00 < min_value.
            "C-3001,lin.chen@example.com,Lin,en-US,USD,open,true,2026-11-21T08:00:00Z,2026-11-21T08:30:00Z,PEN-GEL-3,Gel Pen 3-pack,Stationery,1,12.00,,",
            // Suppressed address.
            "C-3002,maria.garcia@example.com,Maria,es-ES,EUR,open,true,2026-11-21T08:00:00Z,2026-11-21T08:40:00Z,TOTE-CNV,Canvas Tote Bag,Accessories,2,19.00,,",
            // Two due carts for one address: the newer one supersedes the older.
            "C-3003,sam.lee@example.com,Sam,en-US,USD,open,true,2026-11-21T07:00:00Z,2026-11-21T07:15:00Z,KNF-CHEF-20,Chef's Knife 20cm,Kitchen,1,89.00,,",
            "C-3004,sam.lee@example.com,Sam,en-US,USD,open,true,2026-11-21T09:00:00Z,2026-11-21T09:45:00Z,BRD-OAK-L,Oak Cutting Board,Kitchen,1,54.00,,",
        ]),
    );
    t.recart(&["suppress", "add", "maria.garcia@example.com"])
        .expect_success();

    let out = t.recart(&["run", "--dry-run", "--json", "--now", NOW]);
    out.expect_success();
    let decisions = out.decisions();
    let reason = |cart: &str| -> Vec<(String, Option<String>)> {
        for_cart(&decisions, cart)
            .iter()
            .map(|d| (d.outcome.clone(), d.reason.clone()))
            .collect()
    };
    assert_eq!(reason("C-1001"), [("send".into(), None)]);
    // Passed over at 1h (due), held back at 24h (not due).
    assert_eq!(
        reason("C-3001"),
        [
            ("skip".into(), Some("below-min-value".into())),
            ("skip".into(), Some("below-min-value".into()))
        ]
    );
    assert_eq!(
        reason("C-3002"),
        [("skip".into(), Some("suppressed".into()))]
    );

    assert_eq!(
        reason("C-3003"),
        [("skip".into(), Some("superseded".into()))]
    );
    assert_eq!(reason("C-3004"), [("send".into(), None)]);
}

#[test]
fn cooldown_holds_back_a_new_cart_of_a_recently_mailed_address() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&["run", "--now", NOW]).expect_success();
    assert_eq!(t.files_in("outbox", ".eml").len(), 2);

    // Ada comes back at 12:30 and abandons another cart; at 14:00 it is due
    // for the 1h step, but she was mailed at 12:00 and the cooldown is 20h.
    t.write(
        "ada-again.csv",
        carts_csv(&[
            "C-1101,ada.lovelace@example.com,Ada,en-GB,EUR,open,true,2026-11-21T12:20:00Z,2026-11-21T12:30:00Z,SCARF-CSH,Cashmere Scarf,Accessories,1,120.00,,",
        ]),
    );
    t.recart(&["import", "ada-again.csv"]).expect_success();
    let out = t.recart(&["run", "--json", "--now", "2026-11-21T14:00:00Z"]);
    out.expect_success();
    let decisions = out.decisions();
    let ada = for_cart(&decisions, "C-1101");
    assert_eq!(ada.len(), 1, "{decisions:#?}");
    assert_eq!(
        (ada[0].outcome.as_str(), ada[0].reason.as_deref()),
        ("skip", Some("cooldown")),
        "{decisions:#?}"
    );
    // Only Katherine's cart (due since 12:40) went out.
    assert_eq!(carts_with(&decisions, "sent"), ["C-1004"]);

    // After the cooldown it goes out.
    let out = t.recart(&["run", "--json", "--now", "2026-11-22T08:30:00Z"]);
    out.expect_success();
    assert!(
        carts_with(&out.decisions(), "sent").contains(&"C-1101".to_string()),
        "{}",
        out.stdout
    );
}

#[test]
fn limit_caps_the_mails_of_one_run() {
    let t = shop(&Config::new(Transport::File));
    let out = t.recart(&["run", "--json", "--limit", "1", "--now", NOW]);
    out.expect_success();
    assert_eq!(
        carts_with(&out.decisions(), "sent").len(),
        1,
        "{}",
        out.stdout
    );
    assert_eq!(t.files_in("outbox", ".eml").len(), 1);

    // The next run picks up the rest.
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_success();
    assert_eq!(
        carts_with(&out.decisions(), "sent").len(),
        1,
        "{}",
        out.stdout
    );
    assert_eq!(t.files_in("outbox", ".eml").len(), 2);
    assert_eq!(t.store().sends_in("sent").len(), 2);
}

#[test]
fn secret_file_is_used_when_the_secret_env_variable_is_unset() {
    let mut config = Config::new(Transport::File);
    config.secret =
        "secret_env = \"RECART_TEST_SECRET_NOT_SET\"\nsecret_file = \"secrets/link.key\"".into();
    let t = shop(&config).file("secrets/link.key", "a-file-based-signing-key-6d1e2f\n");
    t.recart(&["run", "--now", NOW]).expect_success();
    let files = t.files_in("outbox", ".eml");
    assert_eq!(files.len(), 2);
    let mail = Mail::parse(&std::fs::read_to_string(&files[0]).unwrap());
    let text = mail.text();
    assert!(
        text.contains("https://shop.example/cart/recover/"),
        "no recovery link:\n{text}"
    );
}

#[test]
fn no_link_secret_at_all_is_a_config_error() {
    let mut config = Config::new(Transport::File);
    config.secret = "secret_env = \"RECART_TEST_SECRET_NOT_SET\"".into();
    let t = shop(&config);
    t.recart(&["run", "--now", NOW])
        .expect_status(2)
        .expect_stderr_contains("RECART_TEST_SECRET_NOT_SET");
    assert!(t.files_in("outbox", ".eml").is_empty());
}

#[test]
fn a_template_that_does_not_render_fails_the_run_before_any_mail() {
    // `items[1]` is undefined for one-item carts; strict undefined makes that
    // an error. Ada's cart (two items) renders, Grace's (one item) does not:
    // nothing at all may be sent.
    let t = shop(&Config::new(Transport::File))
        .file(
            "templates/reminder.txt",
            "Hi {{ customer.first_name }}, you also liked {{ items[1].name }}.\n{{ links.recover }}\n",
        )
        .file(
            "carts.csv",
            carts_csv(&[
                "C-1001,ada.lovelace@example.com,Ada,en-GB,EUR,open,true,2026-11-21T08:55:00Z,2026-11-21T09:30:00Z,MWB-01,Merino Wool Beanie,Accessories,1,29.00,,",
                "C-1001,,,,,,,,,TRV-MUG-350,Insulated Travel Mug,Kitchen,2,14.50,,",
                "C-1002,grace.hopper@example.com,Grace,en-US,USD,open,true,2026-11-21T08:00:00Z,2026-11-21T09:12:00Z,APR-LIN-NAT,Linen Apron,Kitchen,1,48.00,,",
            ]),
        );
    let out = t.recart(&["run", "--now", NOW]);
    assert!(
        out.status == 1 || out.status == 2,
        "wanted exit 1 or 2, got {}\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.expect_stderr_contains("reminder");
    assert!(t.files_in("outbox", ".eml").is_empty(), "a mail was sent");
    assert!(t.sends_if_any().iter().all(|s| s.state != "sent"));
}

#[test]
fn an_earlier_order_of_a_cart_product_stops_its_reminders() {
    // Ada bought the beanie in her cart nine days ago (an order with SKUs,
    // one row per item); Grace's earlier order was of something else.
    let t = shop(&Config::new(Transport::File)).file(
        "orders.csv",
        "order_id,email,cart_id,total,currency,created_at,sku\n\
         O-77,Ada.Lovelace@example.com,,29.00,EUR,2026-11-12T10:00:00Z,MWB-01\n\
         O-77,,,,,,SOCK-02\n\
         O-78,grace.hopper@example.com,,12.00,USD,2026-11-12T10:00:00Z,PEN-01\n",
    );
    t.recart(&["import", "carts.csv", "orders.csv"])
        .expect_success();
    let decisions = t
        .recart(&["run", "--dry-run", "--json", "--now", NOW])
        .expect_success()
        .decisions();
    let ada = for_cart(&decisions, "C-1001");
    assert_eq!(ada[0].outcome, "skip");
    assert_eq!(ada[0].reason.as_deref(), Some("already-purchased"));
    assert_eq!(for_cart(&decisions, "C-1002")[0].outcome, "send");
}
