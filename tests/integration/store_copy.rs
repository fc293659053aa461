//! `recart store copy --to`: a store filled through the binary goes to
//! PostgreSQL and back to a new `SQLite` file unchanged; a target that
//! holds rows already is refused.

use rusqlite::types::Value;

use crate::db_servers;
use crate::fixtures::{Config, NOW, Transport, shop};
use crate::harness::Test;

/// The tables `store copy` copies.
const TABLES: [&str; 14] = [
    "carts",
    "orders",
    "order_items",
    "sends",
    "suppressions",
    "coupons",
    "runs",
    "run_skips",
    "forgotten",
    "products",
    "source_watermarks",
    "reported_row_errors",
    "clicks",
    "mail_reports",
];

/// Every row of every copied table of the `SQLite` store at `rel`, sorted.
fn rows(t: &Test, rel: &str) -> Vec<(String, Vec<Vec<Value>>)> {
    let conn = rusqlite::Connection::open(t.join(rel)).unwrap();
    TABLES
        .iter()
        .map(|table| {
            let mut query = conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1"))
                .unwrap();
            let width = query.column_count();
            let mut rows: Vec<Vec<Value>> = query
                .query_map([], |row| {
                    (0..width).map(|i| row.get::<_, Value>(i)).collect()
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.sort_by_key(|row| format!("{row:?}"));
            ((*table).to_owned(), rows)
        })
        .collect()
}

#[test]
fn a_store_goes_to_postgres_and_back_unchanged() {
    let Some(server) = db_servers::postgres() else {
        return;
    };
    let url = server.database("recart_it_store_copy", "");
    let config = Config::new(Transport::File);
    let t = shop(&config).file(
        "pg.toml",
        config
            .to_toml()
            .replace("path = \"recart.db\"", &format!("url = \"{url}\"")),
    );
    t.recart(&["import", "carts.csv"]).expect_success();
    t.recart(&["run", "--now", NOW]).expect_success();
    t.recart(&["suppress", "add", "alan.turing@example.org"])
        .expect_success();
    t.recart(&["forget", "grace.hopper@example.com"])
        .expect_success();

    let out = t.recart(&["store", "copy", "--to", &url]);
    out.expect_success()
        .expect_stdout_line("carts: 4")
        .expect_stdout_line("sends: 3")
        .expect_stdout_line("runs: 1")
        .expect_stdout_line("suppressions: 1")
        .expect_stdout_line("forgotten: 1");

    t.recart(&["--config", "pg.toml", "store", "copy", "--to", "back.db"])
        .expect_success()
        .expect_stdout_line("carts: 4");
    let before = rows(&t, "recart.db");
    assert!(
        before
            .iter()
            .any(|(table, rows)| table == "sends" && rows.len() == 3)
    );
    assert_eq!(rows(&t, "back.db"), before);

    // Neither target is empty any more: both are refused, named.
    t.recart(&["store", "copy", "--to", &url])
        .expect_status(2)
        .expect_stderr_contains("recart_it_store_copy")
        .expect_stderr_contains("already holds carts");
    t.recart(&["store", "copy", "--to", "back.db"])
        .expect_status(2)
        .expect_stderr_contains("back.db");
    assert_eq!(rows(&t, "back.db"), before);

    // The PostgreSQL store erases people and prunes as the file does.
    t.recart(&["--config", "pg.toml", "forget", "ada.lovelace@example.com"])
        .expect_success()
        .expect_stdout_contains("1 carts and 0 orders deleted, 1 ledger entries anonymised");
    t.recart(&[
        "--config",
        "pg.toml",
        "prune",
        "--older-than",
        "1d",
        "--now",
        "2026-12-31T00:00:00Z",
    ])
    .expect_success()
    .expect_stdout_contains("3 carts and 0 orders deleted, 1 ledger entries anonymised");
}

#[test]
fn a_password_in_the_target_url_is_refused_and_not_echoed() {
    let t = shop(&Config::new(Transport::File));
    let out = t.recart(&[
        "store",
        "copy",
        "--to",
        "postgres://recart:hunter2@127.0.0.1:1/recart",
    ]);
    out.expect_status(2)
        .expect_stderr_contains("--password-env");
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    t.recart(&[
        "store",
        "copy",
        "--to",
        "postgres://recart@127.0.0.1:1/recart",
        "--password-env",
        "RECART_TEST_NO_SUCH_VARIABLE",
    ])
    .expect_status(2)
    .expect_stderr_contains("RECART_TEST_NO_SUCH_VARIABLE is not set");
}
