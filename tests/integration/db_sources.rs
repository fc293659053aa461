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
