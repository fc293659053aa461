//! Policy semantics through the binary: whose clock quiet hours are read
//! on, steps a cart does not qualify for, and caps per channel.

use std::time::Duration;

use crate::{
    fixtures::{Config, NOW, Transport, carts_csv, shop},
    harness::{Test, for_cart},
    http_server::{HttpServer, Request},
};

/// A shop in New York with quiet hours, one 1h step, and these carts.
fn new_york_shop(rows: &[&str]) -> Test {
    let mut config = Config::new(Transport::File);
    config.steps.truncate(1);
    let toml = config.to_toml().replace(
        "[policy]\n",
        "[policy]\ntimezone = \"America/New_York\"\nquiet_hours = \"21:00-08:00\"\n",
    );
    shop(&config)
        .file("recart.toml", toml)
        .file("carts.csv", carts_csv(rows))
}

/// `Z` says the time is UTC and nothing of the customer's offset (RFC
/// 9557): such a cart is on `policy.timezone`'s clock. A written offset
/// (`+05:30`, or `+00:00`) is the customer's own.
#[test]
fn a_z_time_is_held_on_the_policys_clock_and_an_offset_is_the_customers() {
    let t = new_york_shop(&[
        "Z-1,zulu@example.com,Zoe,en-US,USD,open,true,2026-11-21T05:00:00Z,2026-11-21T06:00:00Z,S-1,Socks,Clothing,1,10.00,,",
        "I-1,india@example.com,Ira,en-IN,USD,open,true,2026-11-21T11:00:00+05:30,2026-11-21T11:30:00+05:30,S-1,Socks,Clothing,1,10.00,,",
        "L-1,london@example.com,Leo,en-GB,USD,open,true,2026-11-21T05:00:00+00:00,2026-11-21T06:00:00+00:00,S-1,Socks,Clothing,1,10.00,,",
        "M-1,minus@example.com,Max,en-US,USD,open,true,2026-11-21T05:00:00-00:00,2026-11-21T06:00:00-00:00,S-1,Socks,Clothing,1,10.00,,",
    ]);
    // 08:30 UTC: 03:30 in New York, 14:00 in India, 08:30 in London.
    let decisions = t
        .recart(&["run", "--json", "--now", "2026-11-21T08:30:00Z"])
        .expect_success()
        .decisions();
    let outcome = |id: &str| {
        let found = for_cart(&decisions, id);
        assert_eq!(found.len(), 1, "{id}: {found:?}");
        (found[0].outcome.clone(), found[0].reason.clone())
    };
    let held = ("skip".to_string(), Some("quiet-hours".to_string()));
    assert_eq!(outcome("Z-1"), held);
    assert_eq!(outcome("M-1"), held, "-00:00 is an unknown offset too");
    assert_eq!(outcome("I-1"), ("sent".to_string(), None));
    assert_eq!(outcome("L-1"), ("sent".to_string(), None));
    let offsets: Vec<(String, Option<i64>)> = t
        .store()
        .conn()
        .prepare("SELECT id, utc_offset FROM carts ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        offsets,
        [
            ("I-1".to_string(), Some(19_800)),
            ("L-1".to_string(), Some(0)),
            ("M-1".to_string(), None),
            ("Z-1".to_string(), None),
        ]
    );

    // 13:00 UTC is 08:00 in New York: the quiet hours are over.
    let decisions = t
        .recart(&["run", "--json", "--now", "2026-11-21T13:00:00Z"])
        .expect_success()
        .decisions();
    for id in ["Z-1", "M-1"] {
        assert_eq!(for_cart(&decisions, id)[0].outcome, "sent", "{id}");
    }
    assert_eq!(t.store().sends_in("sent").len(), 4);
}

const HOOK_KEY_ENV: &str = "RECART_TEST_WEBHOOK_KEY";

/// Carts idle 2h at NOW, with phones; W-3 gave no SMS consent.
const PHONE_CARTS: &str = "\
cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url,phone,sms_consent
W-1,nina.simone@example.com,Nina,en-US,USD,open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,VNL-01,Vinyl Record,Music,1,30.00,,,+15550100,yes
W-2,miles.davis@example.com,Miles,en-US,USD,open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,TRP-01,Trumpet Mute,Music,1,45.00,,,+15550101,yes
W-3,ella.fitzgerald@example.com,Ella,en-US,USD,open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,MIC-01,Ribbon Mic,Audio,1,120.00,,,,no
";

/// A webhook step to `server` needing SMS consent, with `extra` keys.
fn sms_step(name: &str, after: &str, server: &HttpServer, extra: &str) -> String {
    format!(
        "[[steps]]\nname = \"{name}\"\nafter = \"{after}\"\nchannel = \"webhook\"\nurl = \"{}\"\n\
         secret_env = \"{HOOK_KEY_ENV}\"\nrequire = \"sms_consent\"\n{extra}\n",
        server.url("/hooks/cart")
    )
}

/// The 1h e-mail, then `more` steps, over `PHONE_CARTS`.
fn phone_shop(more: &str) -> Test {
    let mut config = Config::new(Transport::File);
    config.steps.truncate(1);
    config.extra = more.to_string();
    shop(&config)
        .file("carts.csv", PHONE_CARTS)
        .env(HOOK_KEY_ENV, "webhook-signing-key-for-tests")
}

/// `(step, state, reason)` of a cart's ledger entries, by step.
fn ledger(t: &Test, cart: &str) -> Vec<(String, String, Option<String>)> {
    t.store()
        .conn()
        .prepare(
            "SELECT step, state, reason FROM sends WHERE cart_id = ?1 ORDER BY claimed_at, step",
        )
        .unwrap()
        .query_map([cart], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// An SMS step a customer gave no SMS consent for, or whose webhook the
/// provider refused for good, no longer stops the 72h e-mail: the step is
/// passed over (recorded `skipped`, once) and the next one keeps its clock.
#[test]
fn a_step_passed_over_or_refused_lets_the_72h_email_go() {
    let server = HttpServer::start();
    let t = phone_shop(&format!(
        "{}[[steps]]\nname = \"72h\"\nafter = \"72h\"\ntemplate = \"follow-up\"\n",
        sms_step("24h", "24h", &server, "")
    ));
    server.answer("\"W-1\"", 400, Duration::ZERO);
    t.recart(&["run", "--now", NOW]).expect_success();
    assert_eq!(t.store().sends_in("sent").len(), 3);

    // Day 2: W-1's SMS is refused for good, W-2's sent, W-3 has no consent.
    let out = t.recart(&["run", "--json", "--now", "2026-11-22T11:00:00Z"]);
    out.expect_status(3);
    let decisions = out.decisions();
    let ella: Vec<(Option<&str>, &str, Option<&str>)> = for_cart(&decisions, "W-3")
        .iter()
        .map(|d| (d.step.as_deref(), d.outcome.as_str(), d.reason.as_deref()))
        .collect();
    assert_eq!(
        ella,
        [
            (Some("24h"), "skip", Some("no-sms-consent")),
            (Some("72h"), "skip", Some("not-due")),
        ]
    );
    assert_eq!(for_cart(&decisions, "W-1")[0].outcome, "failed");
    let skipped = |step: &str, reason: &str| {
        (
            step.to_string(),
            "skipped".to_string(),
            Some(reason.to_string()),
        )
    };
    assert_eq!(ledger(&t, "W-3")[1], skipped("24h", "no-sms-consent"));

    // Recorded once: a later run does not pass it over again.
    let decisions = t
        .recart(&["run", "--json", "--now", "2026-11-22T15:00:00Z"])
        .expect_success()
        .decisions();
    assert_eq!(
        for_cart(&decisions, "W-3")
            .iter()
            .map(|d| d.reason.as_deref())
            .collect::<Vec<_>>(),
        [Some("not-due")]
    );

    // Day 4: the 72h e-mail goes to all three.
    let decisions = t
        .recart(&["run", "--json", "--now", "2026-11-24T11:00:00Z"])
        .expect_success()
        .decisions();
    for cart in ["W-1", "W-2", "W-3"] {
        let sent: Vec<(Option<&str>, &str)> = for_cart(&decisions, cart)
            .iter()
            .map(|d| (d.step.as_deref(), d.outcome.as_str()))
            .collect();
        assert_eq!(sent, [(Some("72h"), "sent")], "{cart}");
    }
    let ella = ledger(&t, "W-3");
    assert_eq!(ella.len(), 3, "{ella:?}");
    assert_eq!(ella[1], skipped("24h", "no-sms-consent"));
    let bodies: Vec<serde_json::Value> = server.requests().iter().map(Request::json).collect();
    assert_eq!(bodies.len(), 2, "W-1 refused, W-2 sent, never W-3");
}

/// The e-mail's 20h cooldown does not hold back an SMS 6h later (per
/// channel), unless the SMS step has `cross_channel = true`.
#[test]
fn cooldown_is_per_channel_unless_a_step_counts_every_channel() {
    for (cross, expected) in [(false, "sent"), (true, "skip")] {
        let server = HttpServer::start();
        let extra = if cross { "cross_channel = true" } else { "" };
        let t = phone_shop(&sms_step("7h", "7h", &server, extra));
        t.recart(&["run", "--now", NOW]).expect_success();
        let decisions = t
            .recart(&["run", "--json", "--now", "2026-11-21T18:00:00Z"])
            .expect_success()
            .decisions();
        let nina = for_cart(&decisions, "W-1");
        assert_eq!(nina[0].step.as_deref(), Some("7h"));
        assert_eq!(nina[0].outcome, expected, "cross_channel = {cross}");
        if cross {
            assert_eq!(nina[0].reason.as_deref(), Some("cooldown"));
            assert!(server.requests().is_empty());
        } else {
            assert_eq!(server.requests().len(), 2, "W-1 and W-2");
        }
    }
}
