use crate::{
    fixtures::{ADA, Config, GRACE, NOW, Transport, carts_csv, shop},
    harness::carts_with,
};

#[test]
fn import_reports_counts_per_file() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&["import", "carts.csv"])
        .expect_success()
        .expect_stdout_line("carts.csv: 7 rows read, 5 carts upserted, 0 unchanged, 0 rejected");
    let store = t.store();
    assert_eq!(
        store.cart_ids(),
        ["C-1001", "C-1002", "C-1003", "C-1004", "C-1005"]
    );
    assert_eq!(store.item_count(), 7);
}

#[test]
fn reimporting_the_same_file_changes_nothing() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&["import", "carts.csv"]).expect_success();
    let store = t.store();
    let carts = store.dump("carts");
    let items = (store.dump("items"), store.dump("cart_items"));
    drop(store);

    t.recart(&["import", "carts.csv"])
        .expect_success()
        .expect_stdout_line("carts.csv: 7 rows read, 0 carts upserted, 5 unchanged, 0 rejected");

    let store = t.store();
    assert_eq!(store.dump("carts"), carts, "carts changed on re-import");
    assert_eq!(
        (store.dump("items"), store.dump("cart_items")),
        items,
        "items changed on re-import"
    );
}

#[test]
fn import_reports_one_line_per_file() {
    let t = shop(&Config::new(Transport::File)).file(
        "more/carts-2.csv",
        carts_csv(&[
            "C-1101,lin.chen@example.com,Lin,en-US,USD,open,true,2026-11-21T06:00:00Z,2026-11-21T06:30:00Z,SOCK-WL-M,Wool Hiking Socks,Apparel,2,18.00,,",
        ]),
    );
    let out = t.recart(&["import", "carts.csv", "more/carts-2.csv"]);
    out.expect_success()
        .expect_stdout_line("carts.csv: 7 rows read, 5 carts upserted, 0 unchanged, 0 rejected")
        .expect_stdout_line(
            "more/carts-2.csv: 1 rows read, 1 carts upserted, 0 unchanged, 0 rejected",
        );
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
}

/// Line numbers are 1-based and count the header as line 1.
const BAD_CSV_ROWS: &[&str] = &[
    // 2, 3: a good two-item cart
    "C-2001,lin.chen@example.com,Lin,en-US,USD,open,true,2026-11-21T06:00:00Z,2026-11-21T06:30:00Z,SOCK-WL-M,Wool Hiking Socks,Apparel,2,18.00,,",
    "C-2001,,,,,,,,,BTL-STEEL-750,Steel Water Bottle,Outdoor,1,24.95,,",
    // 4: e-mail without @
    "C-2002,maria.garcia.example.com,Maria,es-ES,EUR,open,true,2026-11-21T06:00:00Z,2026-11-21T06:40:00Z,TOTE-CNV,Canvas Tote Bag,Accessories,1,19.00,,",
    // 5, 6: second row has a negative quantity: the whole cart goes
    "C-2003,noah.smith@example.net,Noah,en-US,USD,open,true,2026-11-21T05:00:00Z,2026-11-21T05:20:00Z,CAND-SOY-L,Soy Candle (Large),Home,1,26.00,,",
    "C-2003,,,,,,,,,CAND-SOY-S,Soy Candle (Small),Home,-2,14.00,,",
    // 7: price that is not a decimal
    "C-2004,yuki.tanaka@example.jp,Yuki,ja-JP,EUR,open,true,2026-11-21T04:00:00Z,2026-11-21T04:10:00Z,TEA-SEN-100,Sencha Green Tea 100g,Pantry,1,\"12,99€\",,",
    // 8: time that is not a time
    "C-2005,olivia.brown@example.co.uk,Olivia,en-GB,GBP,open,true,2026-11-21T03:00:00Z,yesterday afternoon,SCARF-CSH,Cashmere Scarf,Accessories,1,120.00,,",
    // 9: a good one-item cart after the bad ones
    "C-2006,ahmed.khan@example.com,Ahmed,en-GB,GBP,open,true,2026-11-21T02:00:00Z,2026-11-21T02:45:00Z,PLANT-POT-M,Terracotta Plant Pot,Garden,2,11.50,,",
];

#[test]
fn bad_rows_are_reported_with_file_line_and_field_and_good_carts_kept() {
    let t = shop(&Config::new(Transport::File)).file("bad.csv", carts_csv(BAD_CSV_ROWS));
    let out = t.recart(&["import", "bad.csv"]);
    // "rejected" counts rows not imported: the four bad rows plus the good
    // row of C-2003, which goes with its cart.
    out.expect_status(3)
        .expect_stdout_line("bad.csv: 8 rows read, 2 carts upserted, 0 unchanged, 5 rejected");
    for prefix in [
        "bad.csv:4: field email: ",
        "bad.csv:6: field quantity: ",
        "bad.csv:7: field unit_price: ",
        "bad.csv:8: field updated_at: ",
    ] {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.starts_with(prefix) && l.len() > prefix.len()),
            "stderr has no line starting with {prefix:?} followed by a message\n--- stderr ---\n{}",
            out.stderr
        );
    }
    // Good rows are not reported as errors.
    for good in ["bad.csv:2:", "bad.csv:3:", "bad.csv:5:", "bad.csv:9:"] {
        assert!(
            !out.stderr.contains(good),
            "good row reported: {good}\n{}",
            out.stderr
        );
    }

    let store = t.store();
    assert_eq!(store.cart_ids(), ["C-2001", "C-2006"]);
    assert_eq!(store.item_count(), 3);
}

const ORDERS_CSV: &str = "\
order_id,email,cart_id,total,currency,created_at
O-50001,ada.lovelace@example.com,C-1001,58.00,EUR,2026-11-21T10:15:00Z
O-50002,grace.hopper@example.com,,80.00,USD,2026-11-21 05:02:00 -0500
";

#[test]
fn orders_mark_carts_ordered_by_cart_id_and_by_email() {
    let t = shop(&Config::new(Transport::File)).file("orders.csv", ORDERS_CSV);
    t.recart(&["import", "carts.csv"]).expect_success();
    t.recart(&["import", "--format", "native-orders", "orders.csv"])
        .expect_success()
        .expect_stdout_line(
            "orders.csv: 2 rows read, 2 orders added, 0 unchanged, 0 rejected, 2 carts marked ordered",
        );

    let store = t.store();
    assert_eq!(store.cart_status("C-1001").as_deref(), Some("ordered"));
    assert_eq!(store.cart_status("C-1002").as_deref(), Some("ordered"));
    assert_eq!(store.cart_status("C-1003").as_deref(), Some("open"));
    drop(store);

    // Nobody is reminded of a cart they bought.
    let out = t.recart(&["run", "--dry-run", "--json", "--now", NOW]);
    out.expect_success();
    let decisions = out.decisions();
    for email in [ADA, GRACE] {
        assert!(
            !decisions
                .iter()
                .any(|d| d.email == email && d.outcome == "send"),
            "{email} would be reminded after ordering: {decisions:#?}"
        );
    }
    assert!(carts_with(&decisions, "send").is_empty(), "{decisions:#?}");

    // Orders are idempotent too.
    t.recart(&["import", "--format", "native-orders", "orders.csv"])
        .expect_success()
        .expect_stdout_line(
            "orders.csv: 2 rows read, 0 orders added, 2 unchanged, 0 rejected, 0 carts marked ordered",
        );
}

#[test]
fn auto_format_recognises_an_orders_file() {
    let t = shop(&Config::new(Transport::File)).file("orders.csv", ORDERS_CSV);
    t.recart(&["import", "carts.csv"]).expect_success();
    t.recart(&["import", "orders.csv"])
        .expect_success()
        .expect_stdout_line(
            "orders.csv: 2 rows read, 2 orders added, 0 unchanged, 0 rejected, 2 carts marked ordered",
        );
}

#[test]
fn unknown_format_is_a_usage_error() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&["import", "--format", "magento", "carts.csv"])
        .expect_status(2)
        .expect_stderr_contains("magento");
    assert!(t.cart_ids_if_any().is_empty());
}

#[test]
fn missing_input_file_is_an_error_naming_it() {
    let t = shop(&Config::new(Transport::File));
    let out = t.recart(&["import", "no-such-export.csv"]);
    assert_ne!(out.status, 0, "{out:?}");
    out.expect_stderr_contains("no-such-export.csv");
}

/// A first import into an empty store is one transaction written through a
/// rollback journal. Killed half-way, it leaves a hot journal; the next
/// open rolls it back to the empty store, indexes and all, and an import
/// then loads the whole file and leaves the store in WAL mode.
#[test]
fn a_first_import_killed_half_way_leaves_the_store_as_it_was() {
    let carts = 30_000;
    let csv = crate::fixtures::many_carts(carts);
    let t = shop(&Config::new(Transport::File)).file("big.csv", csv);
    // The store exists, without carts, before the import starts.
    t.recart(&["report"]).expect_success();
    let journal = t.join("recart.db-journal");

    let mut child = t.spawn(&["import", "big.csv"]);
    // Killed as soon as the load has written through its journal.
    let mut killed = false;
    while child.try_wait().unwrap().is_none() {
        if journal.exists() {
            child.kill().expect("SIGKILL recart");
            killed = true;
            break;
        }
        std::thread::yield_now();
    }
    child.wait().unwrap();
    assert!(killed, "the import finished before its journal was seen");
    assert!(journal.exists(), "no hot journal after the kill");

    let store = t.store();
    assert_eq!(store.count("SELECT count(*) FROM carts"), 0);
    assert_eq!(
        store.count(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index'
             AND name IN ('carts_by_email', 'carts_open_window')"
        ),
        2,
        "the dropped indexes are back"
    );
    assert_eq!(
        store.count("SELECT count(*) FROM pragma_integrity_check WHERE integrity_check <> 'ok'"),
        0
    );
    drop(store);

    t.recart(&["import", "big.csv"]).expect_success();
    let store = t.store();
    assert_eq!(
        store.count("SELECT count(*) FROM carts"),
        i64::try_from(carts).unwrap()
    );
    assert_eq!(
        store.count("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"),
        1
    );
}

/// One outcome policy for `import` and `run`: an input that cannot be read
/// (here a directory where a file should be: an I/O error) is named and
/// skipped, the others are imported, and the command ends partial (3).
#[test]
fn an_unreadable_file_is_named_and_skipped_and_the_rest_imported() {
    let t = shop(&Config::new(Transport::File));
    std::fs::create_dir(t.join("broken.csv")).unwrap();
    t.recart(&["import", "broken.csv", "carts.csv"])
        .expect_status(3)
        .expect_stderr_contains("broken.csv")
        .expect_stdout_line("carts.csv: 7 rows read, 5 carts upserted, 0 unchanged, 0 rejected");
    assert_eq!(t.store().cart_ids().len(), 5);
    // Nothing readable at all: the import failed.
    t.recart(&["import", "broken.csv"])
        .expect_status(1)
        .expect_stderr_contains("broken.csv");
}

#[test]
fn a_run_names_an_unreadable_source_and_sends_from_the_others() {
    let mut config = Config::new(Transport::File);
    config
        .sources
        .push(("exports/*.csv".into(), "native".into()));
    let t = shop(&config);
    std::fs::create_dir_all(t.join("exports/broken.csv")).unwrap();
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(3).expect_stderr_contains("broken.csv");
    assert_eq!(carts_with(&out.decisions(), "sent"), ["C-1001", "C-1002"]);
}
