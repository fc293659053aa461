use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::{Claim, Confirmation, DeadClaim, RunCounts, UnknownSend};
use crate::model::{CartStatus, SendState};
use crate::store::Store;
use crate::store::engine::args;
use crate::store::testing::{both_stores, postgres_store, put_carts};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

/// Open carts `ids`, each with its own address (`<id>@example.com`).
fn open_carts(store: &Store, ids: &[&str]) {
    let carts: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut cart = crate::compose::sample_cart(now());
            cart.id = (*id).to_string();
            cart.email = format!("{id}@Example.com");
            cart
        })
        .collect();
    put_carts(store, &carts);
}

fn claim(id: &str, step: &str) -> Claim {
    Claim {
        cart_id: id.into(),
        step: step.into(),
        email: format!("{id}@Example.com"),
        variant: None,
    }
}

fn outcome(id: &str, state: SendState, handed_over: bool) -> (Confirmation, bool) {
    let confirmation = Confirmation {
        cart_id: id.into(),
        step: "1h".into(),
        state,
        reason: Some(format!("{} for {id}", state.as_str())),
        message_id: Some(format!("<{id}@shop.example>")),
    };
    (confirmation, handed_over)
}

/// (state, run, attempts, reason, `sent_at`) of every entry, by cart.
type Entry = (String, i64, i64, Option<String>, Option<i64>);

fn entries(store: &Store) -> HashMap<String, Entry> {
    let mut entries = HashMap::new();
    store
        .db()
        .each(
            "SELECT cart_id, state, run_id, attempts, reason, sent_at FROM sends",
            args![],
            |row| {
                let entry = (
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                );
                entries.insert(row.get(0)?, entry);
                Ok(())
            },
        )
        .unwrap();
    entries
}

#[test]
fn a_claim_is_confirmed_released_retried_and_given_up_alike_on_both_engines() {
    for (engine, store) in both_stores("recart_unit_ledger_round_trip") {
        open_carts(&store, &["a", "b", "c", "e"]);
        let mut bought = crate::compose::sample_cart(now());
        bought.id = "o".into();
        bought.status = CartStatus::Ordered;
        put_carts(&store, &[bought]);
        assert_eq!(
            store
                .suppress(&["E@example.com ".into()], "asked", now())
                .unwrap(),
            1
        );
        assert_eq!(
            store.suppressions().unwrap(),
            [("e@example.com".into(), "asked".into(), now())],
            "{engine}"
        );
        let run = store.start_run(now(), now()).unwrap();
        let next = store.start_run(now(), now()).unwrap();
        assert!(next > run, "{engine}");
        let ids = ["a", "b", "c", "o", "e"];
        let claims: Vec<Claim> = ids.iter().map(|id| claim(id, "1h")).collect();
        assert_eq!(
            store.claim(run, now(), &claims, false).unwrap(),
            [true, true, true, false, false],
            "{engine}: not a bought cart, not a suppressed address"
        );
        assert_eq!(
            store.claim(next, now(), &claims, false).unwrap(),
            [false; 5],
            "{engine}"
        );
        assert_eq!(store.claiming_runs().unwrap(), [run], "{engine}");
        let at = now() + TimeDelta::minutes(1);
        store
            .confirm(
                run,
                at,
                &[
                    outcome("a", SendState::Sent, true),
                    outcome("b", SendState::Retry, true),
                    outcome("c", SendState::Retry, false),
                ],
                2,
            )
            .unwrap();
        let found = entries(&store);
        let sent_at = Some(at.timestamp());
        assert_eq!(
            found["a"],
            ("sent".into(), run, 1, Some("sent for a".into()), sent_at),
            "{engine}"
        );
        assert_eq!(found["b"].0, "retry", "{engine}");
        assert!(!found.contains_key("c"), "{engine}: released");
        assert!(store.claiming_runs().unwrap().is_empty(), "{engine}");

        // Only the retry and the released claim are due again.
        let again: Vec<Claim> = ["a", "b", "c"].iter().map(|id| claim(id, "1h")).collect();
        assert_eq!(
            store.claim(next, now(), &again, false).unwrap(),
            [false, true, true],
            "{engine}"
        );
        assert_eq!(entries(&store)["b"].2, 2, "{engine}: second attempt");
        // A repeated claim released is `retry` again, the attempt not counted.
        store
            .confirm(next, at, &[outcome("b", SendState::Sent, false)], 2)
            .unwrap();
        assert_eq!(entries(&store)["b"].0, "retry", "{engine}");
        assert_eq!(entries(&store)["b"].2, 1, "{engine}");
        // A retry on the last attempt allowed gives up.
        assert_eq!(
            store.claim(next, now(), &again[1..2], false).unwrap(),
            [true]
        );
        store
            .confirm(next, at, &[outcome("b", SendState::Retry, true)], 2)
            .unwrap();
        let (state, _, attempts, reason, _) = entries(&store)["b"].clone();
        assert_eq!(
            (state.as_str(), attempts, reason.as_deref()),
            ("failed", 2, Some("gave up after 2 attempts: retry for b")),
            "{engine}"
        );
    }
}

/// An unknown send is claimed again only when re-sending unknown
/// ones, or settled by hand; a run's figures are kept.
#[test]
fn unknown_sends_and_runs_alike_on_both_engines() {
    for (engine, store) in both_stores("recart_unit_ledger_unknown") {
        open_carts(&store, &["u", "d"]);
        let run = store.start_run(now(), now()).unwrap();
        let next = store.start_run(now(), now()).unwrap();
        let at = now() + TimeDelta::minutes(1);
        let sent_at = Some(at.timestamp());
        store.claim(run, now(), &[claim("u", "1h")], false).unwrap();
        store
            .confirm(run, at, &[outcome("u", SendState::Unknown, true)], 2)
            .unwrap();
        let unknown = store.unknown_sends(None, None).unwrap();
        assert_eq!(
            unknown,
            [UnknownSend {
                cart_id: "u".into(),
                step: "1h".into(),
                email: "u@Example.com".into(),
                claimed_at: now(),
                run_id: Some(run),
                reason: Some("unknown for u".into()),
            }],
            "{engine}"
        );
        assert!(
            store
                .unknown_sends(Some(now() + TimeDelta::seconds(1)), None)
                .unwrap()
                .is_empty(),
            "{engine}"
        );
        assert_eq!(
            store
                .claim(next, now(), &[claim("u", "1h")], false)
                .unwrap(),
            [false]
        );
        assert!(
            store
                .settle_unknown("u", "1h", SendState::Sent, at)
                .unwrap(),
            "{engine}"
        );
        assert!(
            !store
                .settle_unknown("u", "1h", SendState::Sent, at)
                .unwrap()
        );
        assert_eq!(entries(&store)["u"].4, sent_at, "{engine}");
        store
            .claim(next, now(), &[claim("d", "1h")], false)
            .unwrap();
        store
            .confirm(next, at, &[outcome("d", SendState::Unknown, true)], 2)
            .unwrap();
        assert_eq!(
            store.claim(run, now(), &[claim("d", "1h")], true).unwrap(),
            [true],
            "{engine}: re-sending unknown sends"
        );

        let mut counts = RunCounts {
            sent: 3,
            ..RunCounts::default()
        };
        counts.skips.insert(("1h".into(), "no-consent".into()), 2);
        store.finish_run(run, at, counts, 3).unwrap();
        let finished: (i64, i64, i64) = store
            .db()
            .one(
                "SELECT r.sent, r.exit_code, s.count FROM runs r
                 JOIN run_skips s ON s.run_id = r.id WHERE r.id = ?1",
                args![run],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap()
            .unwrap();
        assert_eq!(finished, (3, 3, 2), "{engine}");
    }
}

/// The plan's history reads the same on both engines: the window's
/// ledger entries, recent sends, orders with their SKUs, and the
/// suppressed or forgotten addresses.
#[test]
fn the_history_reads_alike_on_both_engines() {
    for (engine, store) in both_stores("recart_unit_ledger_history") {
        open_carts(&store, &["a", "b", "f"]);
        store.claim(1, now(), &[claim("a", "1h")], false).unwrap();
        store
            .confirm(1, now(), &[outcome("a", SendState::Retry, true)], 5)
            .unwrap();
        store.claim(1, now(), &[claim("b", "24h")], false).unwrap();
        store
            .suppress(&["b@example.com".into()], "asked", now())
            .unwrap();
        let placed = (now() - TimeDelta::days(2)).timestamp();
        store
            .write_db(|db| {
                db.execute(
                    "INSERT INTO orders (id, email, email_norm, total_minor, currency, created_at)
                     VALUES ('o1', 'A@example.com', 'a@example.com', 100, 'EUR', ?1),
                            ('o2', 'A@example.com', 'a@example.com', 100, 'EUR', ?1)",
                    args![placed],
                )?;
                db.execute(
                    "INSERT INTO order_items (order_id, sku) VALUES ('o1', 'X'), ('o1', 'Y')",
                    args![],
                )?;
                db.execute(
                    "INSERT INTO forgotten (email_hash, created_at) VALUES (?1, 0)",
                    args![crate::store::forget_hash("f@example.com").as_str()],
                )
            })
            .unwrap();
        let policy = crate::plan::Policy::default();
        let oldest = now() - TimeDelta::days(1);
        let history = store.history(oldest, now(), now(), &policy).unwrap();
        let record = &history.sends["a"]["1h"];
        assert_eq!(
            (record.state, record.attempts, record.at),
            (SendState::Retry, 1, now()),
            "{engine}"
        );
        assert_eq!(history.sends["b"]["24h"].state, SendState::Claimed);
        assert_eq!(history.sent_to.len(), 1, "{engine}: the claimed send");
        let recent = history.sent_to["b@example.com"][0];
        assert_eq!(history.recent_steps[recent.step as usize], "24h");
        let mut skus: Vec<Vec<&str>> = history.orders["a@example.com"]
            .iter()
            .map(|order| {
                let mut skus: Vec<&str> = order.skus.iter().map(String::as_str).collect();
                skus.sort_unstable();
                skus
            })
            .collect();
        skus.sort();
        assert_eq!(skus, [vec![], vec!["X", "Y"]], "{engine}");
        let mut suppressed: Vec<&str> = history.suppressed.iter().map(String::as_str).collect();
        suppressed.sort_unstable();
        assert_eq!(suppressed, ["b@example.com", "f@example.com"], "{engine}");
    }
}

/// A run whose claims another settled (it was taken for dead) and that
/// confirms afterwards changes nothing.
#[test]
fn a_confirm_by_another_run_changes_nothing() {
    for (engine, store) in both_stores("recart_unit_ledger_fenced") {
        open_carts(&store, &["a", "b"]);
        let claims = [claim("a", "1h"), claim("b", "1h")];
        assert_eq!(store.claim(1, now(), &claims, false).unwrap(), [true; 2]);
        store
            .confirm(
                2,
                now(),
                &[
                    outcome("a", SendState::Sent, true),
                    outcome("b", SendState::Retry, false),
                ],
                5,
            )
            .unwrap();
        let found = entries(&store);
        assert_eq!((found["a"].0.as_str(), found["a"].1), ("claimed", 1));
        assert_eq!((found["b"].0.as_str(), found["b"].1), ("claimed", 1));
        // Settled by run 1's recovery: a late confirm by run 1 of an
        // entry no longer claimed changes nothing either.
        store
            .confirm(1, now(), &[outcome("a", SendState::Unknown, true)], 5)
            .unwrap();
        store
            .confirm(1, now(), &[outcome("a", SendState::Sent, true)], 5)
            .unwrap();
        assert_eq!(entries(&store)["a"].0, "unknown", "{engine}");
    }
}

#[test]
fn dead_claims_on_sqlite_are_those_past_the_lease() {
    let store = Store::open_in_memory().unwrap();
    open_carts(&store, &["a", "b"]);
    let lease = TimeDelta::minutes(30);
    store.claim(1, now(), &[claim("b", "1h")], false).unwrap();
    store
        .claim(2, now() + lease, &[claim("a", "1h")], false)
        .unwrap();
    let dead = |at| store.dead_claims(at, lease).unwrap();
    assert!(dead(now() + lease - TimeDelta::seconds(1)).is_empty());
    let first = DeadClaim {
        cart_id: "b".into(),
        step: "1h".into(),
        run_id: 1,
    };
    assert_eq!(dead(now() + lease), std::slice::from_ref(&first));
    let second = DeadClaim {
        cart_id: "a".into(),
        step: "1h".into(),
        run_id: 2,
    };
    assert_eq!(dead(now() + lease * 2), [first, second]);
}

/// On PostgreSQL a claim is dead when its run is: no connection holds
/// the run's lock. Its age does not matter, and a live run's claims
/// are never dead, however old.
#[test]
fn dead_claims_on_postgres_are_those_of_dead_runs() {
    let Some(store) = postgres_store("recart_unit_ledger_dead_claims") else {
        return;
    };
    let url = store.path().display().to_string();
    let other = crate::store::testing::connect(&url);
    open_carts(&store, &["a", "b", "c", "d"]);
    let (live, gone, never) = (
        store.start_run(now(), now()).unwrap(),
        other.start_run(now(), now()).unwrap(),
        store.start_run(now(), now()).unwrap(),
    );
    store.hold_run(live).unwrap();
    other.hold_run(gone).unwrap();
    let old = now() - TimeDelta::days(30);
    store
        .claim(live, old, &[claim("a", "1h"), claim("d", "1h")], false)
        .unwrap();
    other
        .claim(gone, now(), &[claim("b", "1h")], false)
        .unwrap();
    store
        .claim(never, now(), &[claim("c", "1h")], false)
        .unwrap();
    let lease = TimeDelta::minutes(30);
    let dead_runs = |store: &Store| -> Vec<(i64, String)> {
        store
            .dead_claims(now(), lease)
            .unwrap()
            .into_iter()
            .map(|claim| (claim.run_id, claim.cart_id))
            .collect()
    };
    assert_eq!(dead_runs(&store), [(never, "c".to_string())]);
    assert_eq!(dead_runs(&other), [(never, "c".to_string())]);
    drop(other);
    // The server ends the session, and its locks, with the connection.
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = dead_runs(&store);
        if dead.len() > 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(dead, [(gone, "b".to_string()), (never, "c".to_string())]);
}

/// Two workers claiming the same sends at once, in opposite orders:
/// each (cart, step) is won once, as a new claim and over a `retry`.
#[test]
fn concurrent_workers_win_each_send_once() {
    let Some(store) = postgres_store("recart_unit_ledger_concurrent") else {
        return;
    };
    let url = store.path().display().to_string();
    let ids: Vec<String> = (0..60).map(|n| format!("c{n:02}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    open_carts(&store, &refs);
    let claims: Vec<Claim> = ids
        .iter()
        .flat_map(|id| [claim(id, "1h"), claim(id, "24h")])
        .collect();
    let barrier = std::sync::Barrier::new(2);
    let work = |run_id: i64, reversed: bool| {
        let store = crate::store::testing::connect(&url);
        let mut claims = claims.clone();
        if reversed {
            claims.reverse();
        }
        // A failure is returned, not a panic: the other worker would
        // wait at the barrier for ever.
        let claim_all = || -> (Vec<&Claim>, Option<String>) {
            barrier.wait();
            let mut won = Vec::new();
            let mut failed = None;
            for group in claims.chunks(8) {
                match store.claim(run_id, now(), group, false) {
                    Ok(wins) => won.extend(
                        group
                            .iter()
                            .zip(wins)
                            .filter(|(_, won)| *won)
                            .map(|(claim, _)| claim),
                    ),
                    Err(error) => {
                        failed = Some(error.to_string());
                        break;
                    }
                }
            }
            // Both are through before either confirms.
            barrier.wait();
            (won, failed)
        };
        let (first, failed) = claim_all();
        let retry: Vec<(Confirmation, bool)> = first
            .iter()
            .map(|claim| {
                let confirmation = Confirmation {
                    cart_id: claim.cart_id.clone(),
                    step: claim.step.clone(),
                    state: SendState::Retry,
                    reason: None,
                    message_id: None,
                };
                (confirmation, true)
            })
            .collect();
        let confirmed = store.confirm(run_id, now(), &retry, 5);
        let (second, failed_again) = claim_all();
        assert_eq!(failed.or(failed_again), None, "run {run_id}");
        confirmed.unwrap();
        [first, second].map(|won| {
            won.into_iter()
                .map(|claim| (claim.cart_id.clone(), claim.step.clone()))
                .collect::<Vec<_>>()
        })
    };
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| work(1, false));
        let second = scope.spawn(|| work(2, true));
        (first.join().unwrap(), second.join().unwrap())
    });
    for round in 0..2 {
        let mut won: Vec<&(String, String)> = first[round].iter().chain(&second[round]).collect();
        won.sort();
        let mut expected: Vec<(String, String)> = claims
            .iter()
            .map(|claim| (claim.cart_id.clone(), claim.step.clone()))
            .collect();
        expected.sort();
        assert_eq!(
            won,
            expected.iter().collect::<Vec<_>>(),
            "round {round}: each won once"
        );
    }
    let attempts: i64 = store
        .db()
        .value("SELECT sum(attempts) FROM sends", args![])
        .unwrap();
    assert_eq!(attempts, 2 * 120);
}
