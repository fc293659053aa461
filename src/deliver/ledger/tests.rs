//! The ledger protocol against a real (in-memory) store and a scripted
//! transport: what is claimed, confirmed, released and suppressed.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use lettre::address::{Address, Envelope};

use super::*;
use crate::compose::sample_cart;
use crate::deliver::BatchReport;
use crate::deliver::handover::Guards;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn config() -> Config {
    let text = r#"
[links]
recover = "https://shop.example/r/{token}"
unsubscribe = "https://shop.example/u/{token}"
secret_env = "RECART_SECRET"

[[steps]]
name = "1h"
after = "1h"
template = "reminder"
"#;
    Config::parse(Path::new("/shop/recart.toml"), text).unwrap()
}

/// Stores on both engines (`name`: the PostgreSQL database), each holding
/// one open cart per id, each with its own address.
fn stores(name: &str, ids: &[&str]) -> Vec<(&'static str, Store)> {
    let carts: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut cart = sample_cart(now());
            cart.id = (*id).to_string();
            cart.email = format!("{id}@example.com");
            cart
        })
        .collect();
    let stores = crate::store::testing::both_stores(name);
    for (_, store) in &stores {
        crate::store::testing::put_carts(store, &carts);
    }
    stores
}

fn due(id: &str) -> Due<String> {
    let address: Address = format!("{id}@example.com").parse().unwrap();
    let from: Address = "shop@shop.example".parse().unwrap();
    Due {
        tag: id.to_string(),
        email: address.to_string(),
        variant: None,
        reminder: Reminder::Mail(Outgoing {
            cart_id: id.to_string(),
            step: "1h".into(),
            message_id: format!("<{id}@shop.example>"),
            envelope: Envelope::new(Some(from), vec![address]).unwrap(),
            bytes: b"Subject: hi\r\n\r\nhi\r\n".to_vec(),
        }),
    }
}

/// Answers each mail by its cart id's prefix.
struct Scripted;

impl Transport for Scripted {
    fn send(&mut self, mails: &[Outgoing]) -> BatchReport {
        let outcomes = mails
            .iter()
            .map(|mail| match mail.cart_id.split('-').next().unwrap() {
                "sent" => Outcome::Sent,
                "retry" => Outcome::Retry("transient error (451): try later".into()),
                "bounce" => Outcome::Failed("permanent error (550): 5.1.1 no such user".into()),
                "spam" => Outcome::Failed("permanent error (554): 5.7.1 spam".into()),
                "unknown" => Outcome::Unknown("connection lost after DATA".into()),
                _ => Outcome::NotHandedOver,
            })
            .collect();
        BatchReport {
            outcomes,
            fatal: None,
        }
    }
}

/// Sends `ids` as one group through a fresh sender; the decisions by id.
fn send_once(
    store: &Store,
    config: &Config,
    run_id: i64,
    ids: &[&str],
) -> HashMap<String, Decision> {
    let mut decisions = HashMap::new();
    let mut report = |id: &String, step: &str, decision: Decision| {
        assert_eq!(step, "1h");
        decisions.insert(id.clone(), decision);
    };
    let mut sender = Sender::new(store, config, run_id, now(), false, Guards::default())
        .with_opener(|_, _| Ok(Box::new(Scripted) as Box<dyn Transport>));
    let group = ids.iter().map(|id| due(id)).collect();
    assert_eq!(sender.dispatch(group, &mut report).unwrap(), None);
    let settled = sender.finish(&mut report).unwrap();
    assert_eq!(settled.fatal, None);
    decisions
}

#[test]
fn each_outcome_is_confirmed_and_only_retry_and_released_claims_are_due_again() {
    let ids = [
        "sent-1",
        "retry-1",
        "bounce-1",
        "spam-1",
        "unknown-1",
        "lost-1",
    ];
    for (engine, store) in stores("recart_unit_ledger_outcomes", &ids) {
        each_outcome_is_confirmed(engine, &store, &ids);
    }
}

fn each_outcome_is_confirmed(engine: &str, store: &Store, ids: &[&str]) {
    let config = config();
    let first = send_once(store, &config, 1, ids);
    assert_eq!(first["sent-1"], Decision::Sent, "{engine}");
    assert!(matches!(first["retry-1"], Decision::Retry(ref r) if r.contains("451")));
    assert!(matches!(first["bounce-1"], Decision::Failed(ref r) if r.contains("5.1.1")));
    assert!(matches!(first["unknown-1"], Decision::Unknown(_)));
    assert_eq!(first["lost-1"], Decision::not_sent());

    // A second run may claim again only what stayed due: the retry and
    // the mail never handed over. The 5.1.1 bounce suppressed its address.
    let claims: Vec<Claim> = ids
        .iter()
        .map(|id| Claim {
            cart_id: (*id).to_string(),
            step: "1h".into(),
            email: format!("{id}@example.com"),
            variant: None,
        })
        .collect();
    let won = LedgerStore::claim(store, 2, now(), &claims, false).unwrap();
    assert_eq!(won, [false, true, false, false, false, true], "{engine}");
    let suppressed: Vec<String> = store
        .suppressions()
        .unwrap()
        .into_iter()
        .map(|(email, reason, _)| format!("{email} {reason}"))
        .collect();
    assert_eq!(suppressed, ["bounce-1@example.com hard-bounce"], "{engine}");
}

#[test]
fn a_claim_another_run_holds_is_skipped_and_not_sent() {
    let config = config();
    for (engine, store) in stores("recart_unit_ledger_held", &["sent-1", "sent-2"]) {
        let claim = Claim {
            cart_id: "sent-2".into(),
            step: "1h".into(),
            email: "sent-2@example.com".into(),
            variant: None,
        };
        assert_eq!(
            LedgerStore::claim(&store, 7, now(), &[claim], false).unwrap(),
            [true]
        );
        let decisions = send_once(&store, &config, 8, &["sent-1", "sent-2"]);
        assert_eq!(decisions["sent-1"], Decision::Sent, "{engine}");
        assert_eq!(
            decisions["sent-2"],
            Decision::Skip(SkipReason::Claimed),
            "{engine}"
        );
    }
}

#[test]
fn a_transport_that_cannot_open_claims_nothing_and_leaves_every_mail_due() {
    let config = config();
    for (engine, store) in stores("recart_unit_ledger_no_transport", &["sent-1"]) {
        let mut decisions = Vec::new();
        let mut report = |id: &String, _: &str, decision| decisions.push((id.clone(), decision));
        let mut sender = Sender::new(&store, &config, 1, now(), false, Guards::default())
            .with_opener(|_, _| Err(Error::Transport("connection refused".into())));
        let fatal = sender.dispatch(vec![due("sent-1")], &mut report).unwrap();
        assert_eq!(fatal.as_deref(), Some("connection refused"));
        sender.finish(&mut report).unwrap();
        assert_eq!(
            decisions,
            [("sent-1".to_string(), Decision::not_sent())],
            "{engine}"
        );
        let claim = Claim {
            cart_id: "sent-1".into(),
            step: "1h".into(),
            email: "sent-1@example.com".into(),
            variant: None,
        };
        assert_eq!(
            LedgerStore::claim(&store, 2, now(), &[claim], false).unwrap(),
            [true],
            "{engine}"
        );
    }
}

#[test]
fn at_most_a_few_groups_are_on_their_way() {
    let ids: Vec<String> = (0..=GROUPS_IN_FLIGHT)
        .map(|n| format!("sent-{n}"))
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let config = config();
    for (_, store) in stores("recart_unit_ledger_in_flight", &refs) {
        let mut report = |_: &String, _: &str, _| {};
        let mut sender = Sender::new(&store, &config, 1, now(), false, Guards::default())
            .with_opener(|_, _| Ok(Box::new(Scripted) as Box<dyn Transport>));
        for id in &refs[..GROUPS_IN_FLIGHT] {
            assert!(sender.has_room());
            sender.dispatch(vec![due(id)], &mut report).unwrap();
        }
        assert!(!sender.has_room());
        sender.settle(&mut report).unwrap();
        assert!(sender.has_room());
        sender.finish(&mut report).unwrap();
    }
}

#[test]
fn hard_bounces_are_5_1_x() {
    assert!(is_hard_bounce("permanent error (550): 5.1.1 user unknown"));
    assert!(!is_hard_bounce(
        "permanent error (554): 5.7.1 rejected as spam"
    ));
    assert!(!is_hard_bounce("transient error (450): 4.1.1 try later"));
}

/// Recovery settles the claims of dead runs only: on `SQLite` every claim
/// found (the run lock is held, the lease is 0), on PostgreSQL those of
/// runs no connection holds, never those of a worker still sending.
#[test]
fn recovery_settles_only_the_claims_of_dead_runs() {
    let config = config();
    let journals = tempfile::tempdir().unwrap();
    let store_path = journals.path().join("recart.db");
    for (engine, store) in stores("recart_unit_ledger_recovery", &["sent-1", "sent-2"]) {
        let live = store.is_postgres().then(|| {
            let live = crate::store::testing::connect(&store.path().display().to_string());
            live.hold_run(6).unwrap();
            live
        });
        let claim = |id: &str| Claim {
            cart_id: id.into(),
            step: "1h".into(),
            email: format!("{id}@example.com"),
            variant: None,
        };
        assert_eq!(
            LedgerStore::claim(&store, 5, now(), &[claim("sent-1")], false).unwrap(),
            [true]
        );
        assert_eq!(
            LedgerStore::claim(&store, 6, now(), &[claim("sent-2")], false).unwrap(),
            [true]
        );
        // No journal: whatever they handed over may have reached the server.
        let recovered = recover(&store, &store_path, 7, now(), &config.delivery).unwrap();
        let expected = if live.is_some() { 1 } else { 2 };
        assert_eq!(recovered.unknown, expected, "{engine}");
        assert_eq!(
            store.claiming_runs().unwrap(),
            if live.is_some() { vec![6] } else { vec![] },
            "{engine}"
        );
    }
}
