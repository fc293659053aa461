//! `run --to ADDRESS --cart ID --step NAME`: the operator's test send of
//! any cart's mail for any step — due or not, skipped by the plan or out
//! of its window — to ADDRESS only, with nothing recorded; and the same
//! choice for a preview (`--dry-run --preview DIR`).

use crate::{
    fixtures::{Config, HEDY, NOW, Transport, shop},
    harness::{Test, mail_file},
    smtp_server::SmtpServer,
};

const QA: &str = "qa@shop.example";

/// What the store holds that a test send must leave alone.
fn recorded(t: &Test) -> Vec<Vec<String>> {
    let store = t.store();
    ["sends", "runs", "coupons", "suppressions", "carts"]
        .iter()
        .map(|table| store.dump(table))
        .collect()
}

#[test]
fn a_test_send_delivers_any_cart_and_step_to_the_address_only() {
    let server = SmtpServer::start();
    let t = shop(&Config::new(Transport::Smtp(server.port())));
    t.recart(&["run", "--now", NOW]).expect_success();
    assert_eq!(server.messages().len(), 2);
    // Hedy's cart is 11 days old (outside the window) and her address is
    // suppressed: the plan would never mail her.
    t.recart(&["suppress", "add", HEDY]).expect_success();
    let before = recorded(&t);

    // C-1001 was sent its 1h reminder already: the ledger would refuse it.
    let out = t.recart(&[
        "run", "--to", QA, "--cart", "C-1001", "--step", "1h", "--now", NOW,
    ]);
    out.expect_success()
        .expect_stderr_contains(
            "trying cart C-1001, step 1h (the plan skips it at step 24h: not-due)",
        )
        .expect_stderr_contains("1 mail(s) delivered to qa@shop.example");
    // C-1003 has no consent (its 1h step was passed over by the first run,
    // so the plan is at 24h); the 72h step is not due for anyone.
    let out = t.recart(&[
        "run", "--to", QA, "--cart", "C-1003", "--step", "72h", "--now", NOW,
    ]);
    out.expect_success()
        .expect_stderr_contains("(the plan skips it at step 24h: no-consent)");
    let out = t.recart(&[
        "run", "--to", QA, "--cart", "C-1005", "--step", "24h", "--now", NOW,
    ]);
    out.expect_success()
        .expect_stderr_contains("the cart is outside the plan's window (status open");

    let tests = &server.messages()[2..];
    assert_eq!(tests.len(), 3);
    assert!(tests.iter().all(|m| m.recipients == [QA]), "{tests:?}");
    let subjects: Vec<String> = tests.iter().map(|m| m.mail().subject()).collect();
    assert_eq!(
        subjects,
        [
            "Still thinking it over, Ada?",
            "Your cart is waiting, Alan",
            "Your cart is waiting, Hedy"
        ]
    );
    assert!(tests[2].mail().text().contains("Brass Desk Lamp"));
    // Nothing recorded: no send, no run, no coupon, the store as it was.
    assert_eq!(recorded(&t), before);

    // Only --step: a cart the plan has due for it, else the newest one.
    let out = t.recart(&["run", "--to", QA, "--step", "24h", "--now", NOW]);
    out.expect_success().expect_stderr_contains(
        "trying cart C-1004, step 24h (cart chosen: none is due for this step",
    );
    // Only --cart: the step the plan is at for it.
    let out = t.recart(&["run", "--to", QA, "--cart", "C-1002", "--now", NOW]);
    out.expect_success().expect_stderr_contains(
        "trying cart C-1002, step 24h (step chosen: the one the plan is at for the cart",
    );
    assert_eq!(server.messages().len(), 7);
    assert_eq!(recorded(&t), before);
}

#[test]
fn a_test_send_names_an_unknown_cart_or_step_and_needs_an_address() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&[
        "run", "--to", QA, "--cart", "C-9999", "--step", "1h", "--now", NOW,
    ])
    .expect_status(2)
    .expect_stderr_contains("--cart \"C-9999\": no such cart");
    t.recart(&[
        "run", "--to", QA, "--cart", "C-1001", "--step", "2h", "--now", NOW,
    ])
    .expect_status(2)
    .expect_stderr_contains("--step \"2h\": no such step (the steps are 1h, 24h, 72h)");
    // A real run must not pick one cart out of the plan.
    for args in [
        &["run", "--cart", "C-1001", "--now", NOW][..],
        &["run", "--dry-run", "--step", "1h", "--now", NOW][..],
    ] {
        t.recart(args)
            .expect_status(2)
            .expect_stderr_contains("use them with --to ADDRESS");
    }
    assert!(!t.exists("outbox"));
    assert_eq!(t.sends_if_any(), []);
}

#[test]
fn a_preview_shows_the_chosen_cart_and_step() {
    let t = shop(&Config::new(Transport::File));
    // Katherine's cart is 20 minutes old: not due for anything yet.
    let out = t.recart(&[
        "run",
        "--dry-run",
        "--json",
        "--preview",
        "preview",
        "--cart",
        "C-1004",
        "--step",
        "72h",
        "--now",
        NOW,
    ]);
    out.expect_success().expect_stderr_contains(
        "trying cart C-1004, step 72h (the plan skips it at step 1h: not-due)",
    );
    let decisions = out.decisions();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(
        (decisions[0].cart_id.as_str(), decisions[0].outcome.as_str()),
        ("C-1004", "send")
    );
    assert!(t.exists(mail_file("preview", "C-1004", "72h", "eml")));
    assert!(!t.exists(mail_file("preview", "C-1001", "1h", "eml")));
    assert!(!t.exists("outbox"));
    assert_eq!(t.sends_if_any(), []);
}
