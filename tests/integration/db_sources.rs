//! The shop's own database as a source, through the presets, against real
//! MariaDB and PostgreSQL servers (`db_servers`).

use crate::db_servers;
use crate::fixtures::{Config, Transport, shop};
use crate::harness::{carts_with, for_cart};

const NOW: &str = "2026-11-21T12:00:00Z";
const LATER: &str = "2026-11-22T12:00:00Z";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/presets/{name}.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A shop whose only source is `block` (a `[[sources]]` body).
fn shop_with(block: &str) -> crate::harness::Test {
    let mut config = Config::new(Transport::File);
    config.sources.clear();
    config.extra = format!("[[sources]]\n{block}\n");
    shop(&config)
}

#[test]
fn magento2_quotes_are_imported_and_an_order_stops_the_reminders() {
    let Some(server) = db_servers::mariadb() else {
        return;
    };
    let url = server.database("magento_preset", &fixture("magento2"));
    let t = shop_with(&format!(
        "url = \"{url}\"\npreset = \"magento2\"\ntimeout = \"30s\""
    ));
    let out = t.recart(&["run", "--dry-run", "--json", "--now", NOW]);
    // Quote 103's e-mail is bad: reported with the source and its id.
    out.expect_status(3)
        .expect_stderr_contains("field email")
        .expect_stderr_contains("cart 103 not imported");
    let decisions = out.decisions();
    assert_eq!(carts_with(&decisions, "send"), ["101", "102"]);
    // 104 is inactive (ordered or merged); 105 unsubscribed (status 3).
    assert!(for_cart(&decisions, "104").is_empty());
    assert_eq!(
        for_cart(&decisions, "105")[0].reason.as_deref(),
        Some("no-consent")
    );
    // The guest's address comes from the billing address.
    assert_eq!(for_cart(&decisions, "102")[0].email, "grace@example.com");

    t.recart(&["run", "--now", NOW]).expect_status(3);
    // After the watermark (09:25): a quote never saved again (updated_at
    // zero) and one saved again are read; the preset finds them through
    // the index on updated_at.
    server.execute(
        "magento_preset",
        "SET time_zone = '+00:00';
         INSERT INTO quote VALUES
           (106, 1, '2026-11-21 10:00:00', '0000-00-00 00:00:00', 1, 1, 'new@example.com',
            'New', 'EUR'),
           (107, 1, '2026-11-20 10:00:00', '2026-11-21 10:30:00', 1, 1, 'back@example.com',
            'Back', 'EUR');
         INSERT INTO quote_item (quote_id, sku, name, qty, price) VALUES
           (106, 'CUP', 'Cup', 1.0000, 9.0000), (107, 'CUP', 'Cup', 1.0000, 9.0000);",
    );
    t.recart(&["run", "--now", NOW]).expect_status(0);
    let stored = "SELECT count(*) FROM carts WHERE id IN ('106', '107')";
    assert_eq!(t.store().count(stored), 2);
    server.execute(
        "magento_preset",
        "SET time_zone = '+00:00';
         INSERT INTO sales_order (increment_id, quote_id, customer_email, grand_total,
                                  order_currency_code, created_at)
         VALUES ('000000042', 101, 'ada@example.com', 288.9800, 'EUR', '2026-11-21 13:00:00');
         UPDATE quote SET is_active = 0 WHERE entity_id = 101;",
    );
    let out = t.recart(&["run", "--dry-run", "--json", "--now", LATER]);
    let decisions = out.decisions();
    let ada = for_cart(&decisions, "101");
    assert!(
        ada.iter().all(|d| d.outcome != "send"),
        "an order in sales_order stops the reminders: {ada:?}"
    );
    assert_eq!(carts_with(&decisions, "send"), ["102"]);
}

/// What a preset's fixture holds and what the test expects of it: the
/// carts the first dry run mails, the one without consent, the bad one
/// (rejected, named), the ones not read at all; then `order` (the shop's
/// SQL) buys `bought`, and only `left` is mailed at the next run.
struct Case<'a> {
    database: &'a str,
    preset: &'a str,
    block: &'a str,
    send: &'a [&'a str],
    no_consent: Option<&'a str>,
    bad: &'a str,
    absent: &'a [&'a str],
    order: &'a str,
    bought: &'a str,
    left: &'a [&'a str],
    require_consent: bool,
}

fn preset_case(server: &db_servers::Server, case: &Case) -> crate::harness::Test {
    let url = server.database(case.database, &fixture(case.preset));
    let mut config = Config::new(Transport::File);
    config.sources.clear();
    config.require_consent = case.require_consent;
    config.extra = format!(
        "[[sources]]\nurl = \"{url}\"\npreset = \"{}\"\ntimeout = \"30s\"\n{}\n",
        case.preset, case.block
    );
    let t = shop(&config);
    t.recart(&["check"])
        .expect_success()
        .expect_stdout_contains("carts_query, items_query, orders_query ran");
    let out = t.recart(&["run", "--dry-run", "--json", "--now", NOW]);
    out.expect_status(3)
        .expect_stderr_contains("field email")
        .expect_stderr_contains(&format!("cart {} not imported", case.bad));
    let decisions = out.decisions();
    assert_eq!(carts_with(&decisions, "send"), case.send, "{decisions:?}");
    for cart in case.absent {
        assert!(
            for_cart(&decisions, cart).is_empty(),
            "{cart}: {decisions:?}"
        );
    }
    if let Some(cart) = case.no_consent {
        assert_eq!(
            for_cart(&decisions, cart)[0].reason.as_deref(),
            Some("no-consent")
        );
    }
    t.recart(&["run", "--now", NOW]).expect_status(3);
    server.execute(case.database, case.order);
    let out = t.recart(&["run", "--dry-run", "--json", "--now", LATER]);
    let decisions = out.decisions();
    let bought = for_cart(&decisions, case.bought);
    assert!(
        bought.iter().all(|d| d.outcome != "send"),
        "an order in the shop's tables stops the reminders: {bought:?}"
    );
    assert_eq!(carts_with(&decisions, "send"), case.left, "{decisions:?}");
    t
}

#[test]
fn prestashop_carts_are_imported_and_an_order_stops_the_reminders() {
    let Some(server) = db_servers::mariadb() else {
        return;
    };
    let t = preset_case(
        server,
        &Case {
            database: "prestashop_preset",
            preset: "prestashop",
            block: "timezone = \"Europe/Paris\"",
            send: &["201", "202"],
            no_consent: Some("205"),
            bad: "203",
            // 204 has an order, 206 no customer.
            absent: &["204", "206"],
            order:
                "INSERT INTO ps_orders (reference, id_customer, id_cart, id_currency, total_paid,
                                           total_paid_tax_incl, date_add, date_upd)
                    VALUES ('QWERTYUIO', 1, 201, 1, 288.980000, 288.980000,
                            '2026-11-21 14:00:00', '2026-11-21 14:00:00');",
            bought: "201",
            left: &["202"],
            require_consent: true,
        },
    );
    // Local times in Paris, the price rounded to cents, the name in the
    // cart's language.
    let store = t.store();
    let (updated, price, name): (String, i64, String) = store
        .conn()
        .query_row(
            "SELECT strftime('%Y-%m-%dT%H:%M:%S', c.updated_at, 'unixepoch'),
                    i.unit_price_minor, i.name
             FROM carts c JOIN cart_items i ON i.cart_id = c.id WHERE c.id = '202'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(updated, "2026-11-21T09:05:00");
    assert_eq!((price, name.as_str()), (1042, "Chaussettes"));
}

#[test]
fn sylius_orders_on_postgresql_are_imported_and_an_order_stops_the_reminders() {
    let Some(server) = db_servers::postgres() else {
        return;
    };
    sylius(server, "sylius_preset", "sylius");
}

#[test]
fn sylius_orders_on_mariadb_are_imported_and_an_order_stops_the_reminders() {
    let Some(server) = db_servers::mariadb() else {
        return;
    };
    sylius(server, "sylius_mysql_preset", "sylius-mysql");
}

fn sylius(server: &db_servers::Server, database: &str, preset: &str) {
    preset_case(
        server,
        &Case {
            database,
            preset,
            block: "",
            send: &["301", "302"],
            no_consent: Some("305"),
            bad: "303",
            absent: &["304", "306"],
            order: "UPDATE sylius_order SET state = 'new', number = '000000042',
                           checkout_completed_at = '2026-11-21 13:00:00',
                           updated_at = '2026-11-21 13:00:00'
                    WHERE id = 301;",
            bought: "301",
            left: &["302"],
            require_consent: true,
        },
    );
}

#[test]
fn woocommerce_drafts_are_imported_and_an_order_stops_the_reminders() {
    let Some(server) = db_servers::mariadb() else {
        return;
    };
    // WooCommerce keeps no marketing consent (see the preset).
    let t = preset_case(
        server,
        &Case {
            database: "woocommerce_preset",
            preset: "woocommerce",
            block: "",
            send: &["401", "402"],
            no_consent: None,
            bad: "403",
            // 404 is an order, 405 has no e-mail yet, 406 is a refund.
            absent: &["404", "405", "406"],
            order: "UPDATE wp_wc_orders SET status = 'wc-processing',
                           date_created_gmt = '2026-11-21 13:00:00',
                           date_updated_gmt = '2026-11-21 13:00:00'
                    WHERE id = 401;",
            bought: "401",
            left: &["402"],
            require_consent: false,
        },
    );
    let store = t.store();
    let items: Vec<(String, i64)> = store
        .conn()
        .prepare("SELECT sku, unit_price_minor FROM cart_items WHERE cart_id = '401' ORDER BY sku")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        items,
        [
            ("SHIRT-M-BLUE".to_string(), 1999),
            ("TENT-2".to_string(), 24900)
        ]
    );
}

#[test]
fn show_preset_prints_a_block_to_copy() {
    let t = crate::harness::Test::new();
    let out = t.recart(&["sources", "show-preset", "magento2"]);
    out.expect_success()
        .expect_stdout_contains("[[sources]]")
        .expect_stdout_contains("FROM quote q");
    t.recart(&["sources", "show-preset", "shopware"])
        .expect_status(2)
        .expect_stderr_contains("woocommerce");
}

/// `count` active quotes (ids from 1001, one a minute from 2026-11-01),
/// each with its one item: `SKU-n`, quantity n mod 3 + 1.
fn add_quotes(server: &db_servers::Server, database: &str, count: u32) {
    server.execute(
        database,
        &format!(
            "SET time_zone = '+00:00';
             INSERT INTO quote (entity_id, store_id, created_at, updated_at, is_active,
                                items_count, customer_email, customer_firstname,
                                quote_currency_code)
             SELECT 1000 + seq, 1, '2026-11-01 00:00:00' + INTERVAL seq MINUTE,
                    '2026-11-01 00:00:00' + INTERVAL seq MINUTE, 1, 1,
                    CONCAT('p', seq, '@example.com'), 'P', 'EUR'
             FROM seq_1_to_{count};
             INSERT INTO quote_item (quote_id, sku, name, qty, price)
             SELECT 1000 + seq, CONCAT('SKU-', seq), 'Thing', seq MOD 3 + 1, 1.5000
             FROM seq_1_to_{count};"
        ),
    );
}

/// More carts than a batch (2,000): read a batch ahead of their items,
/// each batch's items in one query, every cart with its own; and a carts
/// query the server refuses is named, nothing of it stored, and the run
/// ends partial (3), as for any source it cannot read.
#[test]
fn many_batches_keep_their_items_and_a_refused_carts_query_is_named() {
    let Some(server) = db_servers::mariadb() else {
        return;
    };
    let url = server.database("magento_batches", &fixture("magento2"));
    add_quotes(server, "magento_batches", 4500);
    let t = shop_with(&format!("url = \"{url}\"\npreset = \"magento2\""));
    t.recart(&["run", "--now", NOW]).expect_status(3);
    let store = t.store();
    assert_eq!(
        store.count("SELECT count(*) FROM carts WHERE length(id) = 4"),
        4500
    );
    // Each cart its own item: quantity seq mod 3 + 1, SKU-seq.
    assert_eq!(
        store.count(
            "SELECT count(*) FROM carts WHERE length(id) = 4 AND item_count = (id - 1000) % 3 + 1
               AND items LIKE '%\"SKU-' || (id - 1000) || '\"%'"
        ),
        4500
    );
    let t = shop_with(&format!(
        "url = \"{url}\"
carts_query = \"SELECT entity_id AS cart_id, customer_email AS email, quote_currency_code AS currency, updated_typo AS updated_at FROM quote WHERE :since IS NULL OR updated_at >= :since\"
items_query = \"SELECT quote_id AS cart_id, qty AS quantity, price AS unit_price FROM quote_item WHERE quote_id IN (:cart_ids)\""
    ));
    t.recart(&["run", "--now", NOW])
        .expect_status(3)
        // The server's own words, without the driver's wrapping.
        .expect_stderr_contains(&format!("{url}: carts_query: ERROR 1054 (42S22): "))
        .expect_stderr_contains("Unknown column 'updated_typo'");
    assert_eq!(t.store().count("SELECT count(*) FROM carts"), 0);
}

#[test]
fn check_runs_each_query_and_names_the_one_that_fails() {
    let Some(server) = db_servers::mariadb() else {
        return;
    };
    let url = server.database("magento_check", &fixture("magento2"));
    let t = shop_with(&format!("url = \"{url}\"\npreset = \"magento2\""));
    t.recart(&["check"])
        .expect_success()
        .expect_stdout_contains(&format!(
            "source {url}: connected; carts_query, items_query, orders_query ran"
        ));
    // A column the shop's schema does not have: the database's own words.
    let t = shop_with(&format!(
        "url = \"{url}\"
carts_query = \"SELECT entity_id AS cart_id, customer_email AS email, quote_currency_code AS currency, updated_at FROM quote WHERE :since IS NULL OR updated_at >= :since\"
items_query = \"SELECT quote_id AS cart_id, qty_typo AS quantity, price AS unit_price FROM quote_item WHERE quote_id IN (:cart_ids)\""
    ));
    t.recart(&["check"])
        .expect_status(1)
        .expect_stderr_contains(&format!("{url}: items_query: "))
        .expect_stderr_contains("Unknown column 'qty_typo'");
    // A column recart does not know.
    let t = shop_with(&format!(
        "url = \"{url}\"
carts_query = \"SELECT entity_id AS cart_id, customer_email AS email, quote_currency_code AS currency, updated_at, store_id FROM quote WHERE :since IS NULL OR updated_at >= :since\"
items_query = \"SELECT quote_id AS cart_id, qty AS quantity, price AS unit_price FROM quote_item WHERE quote_id IN (:cart_ids)\""
    ));
    t.recart(&["check"])
        .expect_status(1)
        .expect_stderr_contains("carts_query: returns a column \"store_id\"");
}

/// An items query the server refuses during a run (read on the items'
/// own thread) is named with the server's words; no cart of the source is
/// stored and the run ends 3, as for any unreadable source.
#[test]
fn a_refused_items_query_in_a_run_is_named_and_stores_nothing() {
    let Some(server) = db_servers::mariadb() else {
        return;
    };
    let url = server.database("magento_items_refused", &fixture("magento2"));
    let t = shop_with(&format!(
        "url = \"{url}\"
carts_query = \"SELECT entity_id AS cart_id, customer_email AS email, quote_currency_code AS currency, updated_at FROM quote WHERE :since IS NULL OR updated_at >= :since\"
items_query = \"SELECT quote_id AS cart_id, qty_typo AS quantity, price AS unit_price FROM quote_item WHERE quote_id IN (:cart_ids)\""
    ));
    t.recart(&["run", "--now", NOW])
        .expect_status(3)
        .expect_stderr_contains(&format!("{url}: items_query: ERROR 1054 (42S22): "))
        .expect_stderr_contains("Unknown column 'qty_typo'");
    assert_eq!(t.store().count("SELECT count(*) FROM carts"), 0);
}

/// SIGTERM during an import from a slow shop database ends the read at
/// the next batch: the run exits 5, the carts query is killed rather than
/// read out (the server counts the `KILL`), what was stored stays and no
/// orders' watermark moves; the next run imports the rest.
#[test]
fn sigterm_during_an_import_stops_it_at_the_next_batch() {
    use mysql::prelude::Queryable as _;
    let Some(server) = db_servers::mariadb() else {
        return;
    };
    let url = server.database("magento_sigterm", &fixture("magento2"));
    add_quotes(server, "magento_sigterm", 10_000);
    // The server takes half a millisecond a quote, in the index's order: a
    // batch of 2,000 a second.
    let t = shop_with(&format!(
        "url = \"{url}\"
carts_query = \"SELECT entity_id AS cart_id, customer_email AS email, quote_currency_code AS currency, updated_at FROM quote FORCE INDEX (quote_updated_at) WHERE (:since IS NULL OR updated_at >= :since) AND SLEEP(0.0005) = 0 ORDER BY updated_at, entity_id\"
items_query = \"SELECT quote_id AS cart_id, sku, qty AS quantity, price AS unit_price FROM quote_item WHERE quote_id IN (:cart_ids)\"
orders_query = \"SELECT increment_id AS order_id, customer_email AS email, quote_id AS cart_id, grand_total AS total, order_currency_code AS currency, created_at FROM sales_order WHERE :since IS NULL OR created_at >= :since\""
    ));
    let mut admin = mysql::Conn::new(mysql::Opts::from_url(&url).unwrap()).unwrap();
    let kills = |admin: &mut mysql::Conn| -> u64 {
        let row: Option<(String, u64)> = admin
            .query_first("SHOW GLOBAL STATUS LIKE 'Com_kill'")
            .unwrap();
        row.unwrap().1
    };
    let kills_before = kills(&mut admin);
    let mut child = t.spawn(&["run", "--now", NOW]);
    // Once its carts query runs, the run has its signal handlers.
    let started = std::time::Instant::now();
    loop {
        let running: Option<u64> = admin
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE '%SLEEP(0.0005)%' AND INFO NOT LIKE '%PROCESSLIST%'",
            )
            .unwrap();
        if running.unwrap_or(0) > 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_mins(1),
            "the carts query did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = crate::harness::sigterm(&mut child);
    assert_eq!(status.code(), Some(5), "a run stopped by a signal exits 5");
    assert!(
        kills(&mut admin) > kills_before,
        "the carts query was killed"
    );
    let store = t.store();
    let stored = store.count("SELECT count(*) FROM carts WHERE CAST(id AS INTEGER) > 1000");
    assert!(stored < 10_000, "the import stopped early: {stored} carts");
    assert_eq!(stored % 2000, 0, "whole batches: {stored} carts");
    assert_eq!(
        store.count("SELECT count(*) FROM source_watermarks WHERE source LIKE '%orders%'"),
        0,
        "no orders were read, so no orders' watermark"
    );
    drop(store);
    // The fixture's quote 102 has no e-mail: reported, the run partial.
    t.recart(&["run", "--now", NOW]).expect_status(3);
    assert_eq!(
        t.store()
            .count("SELECT count(*) FROM carts WHERE CAST(id AS INTEGER) > 1000"),
        10_000
    );
}
