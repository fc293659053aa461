//! Unit tests of the store: schema and query plans, cart snapshots, the
//! bulk load, the candidate window and orders.

use rusqlite::Connection;
use rusqlite_migration::Migrations;

use super::carts::CART_ROWS;
use super::engine::args;
use super::snapshot::{legacy_snapshot_hash, snapshot_hash};
use super::testing::{both_stores, put_carts};
use super::{MIGRATIONS, Store, candidates, from_unix, ledger, switch_on};
use crate::model::{Cart, CartStatus, LineItem, Order};

mod bulk_load;
mod migrations;
mod query_plans;

#[test]
fn orders_keep_their_skus_once() {
    for (engine, store) in both_stores("recart_unit_import_order_skus") {
        orders_keep_their_skus_once_on(engine, &store);
    }
}

fn orders_keep_their_skus_once_on(engine: &str, store: &Store) {
    let order = crate::model::Order {
        id: "5550001".into(),
        email: "mia@example.com".into(),
        cart_id: None,
        total_minor: 100,
        currency: "EUR".parse().unwrap(),
        created_at: from_unix(1_700_000_000),
        skus: vec!["TR2-42-SL".into(), "MS-01".into()],
    };
    store.import_orders(std::slice::from_ref(&order)).unwrap();
    let again = store.import_orders(&[order]).unwrap();
    assert_eq!(again.unchanged, 1, "{engine}");
    let mut skus: Vec<String> = Vec::new();
    store
        .db()
        .each(
            "SELECT sku FROM order_items WHERE order_id = '5550001' ORDER BY sku",
            args![],
            |row| {
                skus.push(row.get(0)?);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(skus, vec!["MS-01", "TR2-42-SL"], "{engine}");
}

fn cart(id: &str, at: i64, status: CartStatus, skus: &[&str]) -> Cart {
    Cart {
        id: id.into(),
        email: "Mia@Example.com".into(),
        first_name: "Mia".into(),
        locale: "en".into(),
        currency: "EUR".parse().unwrap(),
        status,
        accepts_marketing: true,
        created_at: from_unix(at - 60),
        updated_at: from_unix(at),
        utc_offset_seconds: Some(3600),
        timezone: String::new(),
        phone: String::new(),
        sms_consent: false,
        items: skus
            .iter()
            .map(|sku| LineItem {
                sku: (*sku).into(),
                name: format!("Product {sku}"),
                category: String::new(),
                quantity: 1,
                unit_price_minor: 1250,
                image_url: String::new(),
                product_url: String::new(),
            })
            .collect(),
    }
}

/// A stored cart's status and SKUs, read on either engine.
fn stored(store: &Store, id: &str) -> (String, Vec<String>) {
    let (status, items): (String, String) = store
        .db()
        .one(
            "SELECT status, items FROM carts WHERE id = ?1",
            args![id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
        .unwrap();
    let items = super::items::decode_items(1, &items).unwrap();
    (status, items.into_iter().map(|item| item.sku).collect())
}

#[test]
fn a_batch_writes_like_one_cart_at_a_time() {
    for (engine, store) in both_stores("recart_unit_import_like_one_by_one") {
        a_batch_writes_like_one_cart_at_a_time_on(engine, &store);
    }
}

fn a_batch_writes_like_one_cart_at_a_time_on(engine: &str, store: &Store) {
    let first = store
        .import_carts(&[
            cart("a", 100, CartStatus::Open, &["A1", "A2"]),
            cart("b", 100, CartStatus::Open, &["B1"]),
        ])
        .unwrap();
    assert_eq!((first.upserted, first.unchanged), (2, 0), "{engine}");
    // Same again: unchanged. Older: unchanged. Newer: replaces items.
    let again = store
        .import_carts(&[
            cart("a", 100, CartStatus::Open, &["A1", "A2"]),
            cart("b", 99, CartStatus::Open, &["B9"]),
        ])
        .unwrap();
    assert_eq!((again.upserted, again.unchanged), (0, 2), "{engine}");
    let newer = store
        .import_carts(&[cart("a", 100, CartStatus::Open, &["A3"])])
        .unwrap();
    assert_eq!(
        newer.upserted, 1,
        "{engine}: same time, other content: replaced"
    );
    assert_eq!(stored(store, "a").1, vec!["A3"], "{engine}");
    assert_eq!(stored(store, "b").1, vec!["B1"], "{engine}");
}

#[test]
fn an_id_twice_in_one_batch_is_written_in_order() {
    for (engine, store) in both_stores("recart_unit_import_id_twice") {
        let done = store
            .import_carts(&[
                cart("a", 100, CartStatus::Ordered, &["A1"]),
                cart("a", 200, CartStatus::Open, &["A2", "A3"]),
                cart("a", 150, CartStatus::Open, &["A4"]),
                cart("a", 200, CartStatus::Open, &["A2", "A3"]),
            ])
            .unwrap();
        assert_eq!((done.upserted, done.unchanged), (2, 2), "{engine}");
        // Ordered stays ordered; the newest snapshot's items.
        assert_eq!(
            stored(&store, "a"),
            (
                "ordered".to_string(),
                vec!["A2".to_string(), "A3".to_string()]
            ),
            "{engine}"
        );
    }
}

#[test]
fn an_order_before_its_cart_marks_it_on_arrival() {
    for (engine, store) in both_stores("recart_unit_import_order_first") {
        an_order_before_its_cart_marks_it_on_arrival_on(engine, &store);
    }
}

fn an_order_before_its_cart_marks_it_on_arrival_on(engine: &str, store: &Store) {
    let order = Order {
        id: "o1".into(),
        email: "mia@example.com".into(),
        cart_id: None,
        total_minor: 1250,
        currency: "EUR".parse().unwrap(),
        created_at: from_unix(150),
        skus: Vec::new(),
    };
    store.import_orders(&[order]).unwrap();
    let done = store
        .import_carts(&[
            cart("before", 100, CartStatus::Open, &["A1"]),
            cart("after", 200, CartStatus::Open, &["A1"]),
        ])
        .unwrap();
    assert_eq!(done.marked_ordered, 1, "{engine}");
    assert_eq!(stored(store, "before").0, "ordered", "{engine}");
    assert_eq!(stored(store, "after").0, "open", "{engine}");
}

#[test]
fn a_hash_stored_by_the_first_release_still_counts_as_unchanged() {
    for (engine, store) in both_stores("recart_unit_import_legacy_hash") {
        let snapshot = cart("a", 100, CartStatus::Open, &["A1"]);
        store.import_carts(std::slice::from_ref(&snapshot)).unwrap();
        store
            .db()
            .execute(
                "UPDATE carts SET snapshot_hash = ?1 WHERE id = 'a'",
                args![&legacy_snapshot_hash(&snapshot)],
            )
            .unwrap();
        let again = store.import_carts(&[snapshot]).unwrap();
        assert_eq!((again.upserted, again.unchanged), (0, 1), "{engine}");
    }
}

#[test]
fn the_snapshot_hash_is_stable() {
    // Stored in every store: changing the encoding needs a new tag and
    // a fallback like `legacy_snapshot_hash`.
    let hash = snapshot_hash(
        &cart("a", 1_700_000_000, CartStatus::Open, &["A1", "A2"]),
        &mut Vec::new(),
    );
    assert_eq!(
        hex::encode(hash),
        "63db882f26edfe499d322eeb8a6f05b7ff8cafa1bdeb97af0bd3dc1f71fec93a"
    );
}

#[test]
fn candidates_come_in_window_order_with_their_items_and_bad_items_fail() {
    for (engine, store) in both_stores("recart_unit_candidates_window") {
        // More than a few of the parser's chunks, and one cart out of the
        // window at each end.
        let carts: Vec<Cart> = (0..1_300)
            .map(|n| {
                cart(
                    &format!("c{n:04}"),
                    1_000 + n,
                    CartStatus::Open,
                    &["A", "B"],
                )
            })
            .collect();
        put_carts(&store, &carts);
        let found = store
            .candidates(from_unix(1_001), from_unix(2_298))
            .unwrap();
        let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
        let expected: Vec<String> = (1..1_299).map(|n| format!("c{n:04}")).collect();
        assert_eq!(ids, expected, "{engine}");
        assert!(found.iter().all(|c| c.items.len() == 2
            && c.items[1].sku == "B"
            && c.items[1].line_total_minor == 1250
            && c.accepts_marketing
            && c.utc_offset_seconds == Some(3600)));
        store
            .db()
            .execute(
                "UPDATE carts SET items = '[[\"A\"' WHERE id = 'c0700'",
                args![],
            )
            .unwrap();
        let error = store
            .candidates(from_unix(1_001), from_unix(2_298))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the stored items are not valid: cart c0700: "),
            "{engine}: {error}"
        );
    }
}

#[test]
fn many_carts_in_several_statements() {
    for (engine, store) in both_stores("recart_unit_import_many_carts") {
        let carts: Vec<Cart> = (0..(CART_ROWS * 2 + 5))
            .map(|n| cart(&format!("c{n}"), 100, CartStatus::Open, &["A", "B", "C"]))
            .collect();
        let done = store.import_carts(&carts).unwrap();
        assert_eq!(done.upserted, carts.len() as u64, "{engine}");
        let items: i64 = store
            .db()
            .value("SELECT count(*) FROM cart_items", args![])
            .unwrap();
        assert_eq!(items, i64::try_from(carts.len()).unwrap() * 3, "{engine}");
    }
}

/// Stored in every store that forgot someone: the same lower-case hex in
/// every release, or a forgotten address could be mailed again.
#[test]
fn the_forget_hash_is_stable() {
    assert_eq!(
        super::forget_hash(" Mia@Example.com "),
        "acbc6181e0ced5ad87380ab6cdef5fd2480a5936bac1a5d0482d6a7eaad698e1"
    );
}

/// A batch's other open carts: one query for every due cart, by address
/// (any case), newest first, in the window, never the cart itself, at
/// most `MAX_OTHER_CARTS` each.
#[test]
fn other_open_carts_are_read_for_a_batch_by_address() {
    let mut carts: Vec<Cart> = (0..14)
        .map(|n| cart(&format!("m{n:02}"), 1_000 + n, CartStatus::Open, &["A"]))
        .collect();
    carts[0].updated_at = from_unix(10); // before the window
    carts[1].status = CartStatus::Ordered;
    let mut other = cart("x1", 1_000, CartStatus::Open, &["B"]);
    other.email = "someone@example.com".into();
    let mut alone = cart("y1", 1_000, CartStatus::Open, &["C"]);
    alone.email = "alone@example.com".into();
    carts.extend([other.clone(), alone]);
    other.id = "x2".into();
    other.email = "SOMEONE@example.com".into();
    carts.push(other);
    for (engine, store) in both_stores("recart_unit_candidates_other_carts") {
        put_carts(&store, &carts);

        let found = store
            .other_open_carts(
                &["m13", "x1", "y1", "gone"],
                from_unix(100),
                from_unix(2_000),
            )
            .unwrap();
        let ids =
            |due: &str| -> Vec<String> { found[due].iter().map(|cart| cart.id.clone()).collect() };
        let expected: Vec<String> = (3..13).rev().map(|n| format!("m{n:02}")).collect();
        assert_eq!(ids("m13"), expected, "{engine}");
        assert_eq!(candidates::MAX_OTHER_CARTS, expected.len());
        assert_eq!(ids("x1"), ["x2"]);
        assert_eq!(
            &found["x1"][0],
            carts.last().unwrap(),
            "{engine}: the whole cart"
        );
        assert!(!found.contains_key("y1") && !found.contains_key("gone"));
    }
}

/// A step passed over is a `skipped` entry: written over no entry or a
/// `retry`, over nothing else, never claimed afterwards, read back by the
/// plan's history and not counted by the caps.
#[test]
fn a_step_passed_over_is_recorded_once_and_never_claimed() {
    use super::{Claim, Confirmation, PassOver};
    use crate::model::SendState;
    for (engine, store) in both_stores("recart_unit_ledger_passed_over") {
        let at = 1_800_000_000;
        let now = from_unix(at + 3_600 * 100);
        put_carts(&store, &[cart("a", at, CartStatus::Open, &["S"])]);
        let claim = |step: &str| Claim {
            cart_id: "a".into(),
            step: step.into(),
            email: "Mia@Example.com".into(),
            variant: None,
        };
        // 24h: refused for now; 72h: sent.
        assert_eq!(
            store
                .claim(1, now, &[claim("24h"), claim("72h")], false)
                .unwrap(),
            [true, true]
        );
        let outcome = |step: &str, state| Confirmation {
            cart_id: "a".into(),
            step: step.into(),
            state,
            reason: None,
            message_id: None,
        };
        store
            .confirm(
                1,
                now,
                &[
                    (outcome("24h", SendState::Retry), true),
                    (outcome("72h", SendState::Sent), true),
                ],
                5,
            )
            .unwrap();
        let pass = |step: &'static str, reason: &'static str| PassOver {
            cart_id: "a",
            step,
            email: "Mia@Example.com",
            reason,
        };
        store
            .pass_over(
                2,
                now,
                &[
                    pass("1h", "no-consent"),
                    pass("24h", "no-sms-consent"),
                    pass("72h", "no-consent"),
                ],
            )
            .unwrap();
        store
            .pass_over(3, now, &[pass("1h", "excluded-sku")])
            .unwrap();
        let mut rows: Vec<(String, String, Option<String>, i64)> = Vec::new();
        store
            .db()
            .each(
                "SELECT step, state, reason, run_id FROM sends ORDER BY step",
                args![],
                |row| {
                    rows.push((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?));
                    Ok(())
                },
            )
            .unwrap();
        let row = |step: &str, state: &str, reason: Option<&str>, run: i64| {
            (
                step.to_string(),
                state.to_string(),
                reason.map(str::to_string),
                run,
            )
        };
        assert_eq!(
            rows,
            [
                row("1h", "skipped", Some("no-consent"), 2),
                row("24h", "skipped", Some("no-sms-consent"), 2),
                row("72h", "sent", None, 1),
            ],
            "{engine}"
        );
        // Never claimed again, not even by a re-send of unknown sends.
        assert_eq!(store.claim(4, now, &[claim("1h")], true).unwrap(), [false]);
        let history = store
            .history(from_unix(0), now, now, &crate::plan::Policy::default())
            .unwrap();
        assert_eq!(
            history.sends["a"]["1h"].state,
            SendState::Skipped,
            "{engine}"
        );
        let recent: Vec<&str> = history.sent_to["mia@example.com"]
            .iter()
            .map(|send| history.recent_steps[send.step as usize].as_str())
            .collect();
        assert_eq!(
            recent,
            ["72h"],
            "{engine}: only what may have reached the customer"
        );
    }
}
