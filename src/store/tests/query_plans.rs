use super::*;

/// The query plan of `sql`, one line per step (`EXPLAIN QUERY PLAN`).
fn query_plan(store: &Store, sql: &str) -> Vec<String> {
    let mut statement = store
        .conn()
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let zeros = std::iter::repeat_n(0_i64, statement.parameter_count());
    statement
        .query_map(rusqlite::params_from_iter(zeros), |row| row.get(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The hourly run's cost must grow with the carts in the window, not
/// with the store: the window and history queries are driven by
/// indexes (a `SCAN` of a table means reading all of it), and the
/// recent sends are read from their index alone.
#[test]
fn window_queries_use_their_indexes() {
    let store = Store::open_in_memory().unwrap();
    let queries = [
        ("candidates", candidates::CANDIDATES),
        ("history sends", ledger::HISTORY_SENDS),
        ("recent sends", ledger::RECENT_SENDS),
        ("history orders", ledger::HISTORY_ORDERS),
        ("history suppressed", ledger::HISTORY_SUPPRESSED),
    ];
    for (name, sql) in queries {
        let plan = query_plan(&store, sql);
        let scans: Vec<&String> = plan
            .iter()
            .filter(|step| step.starts_with("SCAN"))
            .collect();
        assert!(scans.is_empty(), "{name}: full scan in {plan:#?}");
        assert!(
            plan.iter().any(|step| step.starts_with("SEARCH")),
            "{name}: no index search in {plan:#?}"
        );
    }
    let plan = query_plan(&store, ledger::RECENT_SENDS);
    assert!(
        plan.iter()
            .any(|step| step.contains("USING COVERING INDEX sends_recent")),
        "recent sends: not from its index alone: {plan:#?}"
    );
    for (name, sql) in [
        ("candidates", candidates::CANDIDATES),
        ("history sends", ledger::HISTORY_SENDS),
        ("history suppressed", ledger::HISTORY_SUPPRESSED),
    ] {
        let plan = query_plan(&store, sql);
        assert!(
            plan.iter().any(|step| step.contains("carts_open_window")),
            "{name}: window not by its index: {plan:#?}"
        );
    }
    // A batch of due carts, and the catalog entries of the window's
    // SKUs, are read by key: only the list of keys is scanned.
    for (name, sql, table) in [
        ("due carts", candidates::DUE_CARTS, "c"),
        ("catalog prices", candidates::CATALOG_PRICES, "p"),
        ("other open carts", candidates::OTHER_OPEN_CARTS, "c"),
    ] {
        let plan = query_plan(&store, sql);
        assert!(
            plan.iter()
                .all(|step| !step.starts_with("SCAN") || step.starts_with("SCAN a")),
            "{name}: full scan in {plan:#?}"
        );
        assert!(
            plan.iter()
                .any(|step| step.starts_with(&format!("SEARCH {table} USING"))),
            "{name}: not by key: {plan:#?}"
        );
    }
}

/// Switching on costs an idle run nothing it grows with: whether anything
/// was ever sent, and the open carts beyond the window, by index.
#[test]
fn switch_on_queries_use_their_indexes() {
    let store = Store::open_in_memory().unwrap();
    for (name, sql, index) in [
        ("has sent", switch_on::HAS_SENT, "sends_by_sent_at"),
        ("open before", switch_on::OPEN_BEFORE, "carts_open_window"),
    ] {
        let plan = query_plan(&store, sql);
        assert!(
            plan.iter()
                .all(|step| !step.starts_with("SCAN") || step == "SCAN CONSTANT ROW"),
            "{name}: full scan in {plan:#?}"
        );
        assert!(
            plan.iter().any(|step| step.contains(index)),
            "{name}: not by {index}: {plan:#?}"
        );
    }
    assert!(!store.has_sent().unwrap());
    assert_eq!(store.open_carts_idle_before(from_unix(0)).unwrap(), 0);
}

/// Writing a cart or a send checks its status or state without a
/// temporary b-tree (an IN list of constants), and the checks still hold.
#[test]
fn status_checks_build_no_temporary_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("recart.db")).unwrap();
    let conn = store.conn();
    let writes = [
        "INSERT INTO carts (id, email, email_norm, first_name, locale, currency, status,
            accepts_marketing, created_at, updated_at, total_minor, item_count, snapshot_hash)
         VALUES ('C', 'a@b.c', 'a@b.c', '', '', 'EUR', ?1, 1, 0, 0, 0, 0, x'00')",
        "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts, claimed_at)
         VALUES ('C', '1h', 'a@b.c', 'a@b.c', ?1, 1, 1, 0)",
        "UPDATE sends SET state = ?1",
    ];
    for sql in writes {
        let opcodes: Vec<String> = conn
            .prepare(&format!("EXPLAIN {sql}"))
            .unwrap()
            .query_map(["open"], |row| row.get(1))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(opcodes.iter().all(|op| op != "OpenEphemeral"), "{sql}");
    }
    let bad = conn.execute(writes[0], ["abandoned"]).unwrap_err();
    assert!(bad.to_string().contains("CHECK constraint failed"), "{bad}");
    conn.execute(writes[0], ["open"]).unwrap();
    let bad = conn.execute(writes[1], ["maybe"]).unwrap_err();
    assert!(bad.to_string().contains("CHECK constraint failed"), "{bad}");
    conn.execute(writes[1], ["claimed"]).unwrap();
    for state in [
        "sent", "retry", "failed", "unknown", "skipped", "bounced", "claimed",
    ] {
        conn.execute(writes[2], [state]).unwrap();
    }
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // A second connection sees the new schema too.
    drop(store);
    let again = Store::open(&dir.path().join("recart.db")).unwrap();
    let sql: String = again
        .conn()
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'sends'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(sql.contains("state = 'claimed' OR"), "{sql}");
}

#[test]
fn the_large_page_cache_is_for_imports_only() {
    let store = Store::open_in_memory().unwrap();
    let cache = || -> i64 {
        store
            .conn()
            .query_row("PRAGMA cache_size", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(cache(), -2000);
    store.import_cache(true).unwrap();
    assert_eq!(cache(), -65_536);
    store.import_cache(false).unwrap();
    assert_eq!(cache(), -2000);
}

#[test]
fn statement_journals_stay_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("recart.db")).unwrap();
    let temp_store: i64 = store
        .conn()
        .query_row("PRAGMA temp_store", [], |row| row.get(0))
        .unwrap();
    assert_eq!(temp_store, 2, "temp_store = MEMORY");
}
