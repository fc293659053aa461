use super::*;

fn schema(store: &Store) -> Vec<(String, String)> {
    store
        .conn()
        .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn a_bulk_load_keeps_the_schema_and_a_broken_one_keeps_nothing() {
    let store = Store::open_in_memory().unwrap();
    let before = schema(&store);
    let carts = [
        cart("a", 100, CartStatus::Open, &["A1"]),
        cart("b", 200, CartStatus::Open, &["B1", "B2"]),
    ];
    // Not finished (a crash, a failed commit): rolled back, indexes kept.
    let bulk = store.begin_bulk_load().unwrap().expect("empty store");
    store.import_carts(&carts).unwrap();
    drop(bulk);
    assert_eq!(schema(&store), before);
    assert!(store.cart("a").unwrap().is_none());
    let foreign_keys: bool = store
        .conn()
        .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
        .unwrap();
    assert!(foreign_keys);

    let bulk = store.begin_bulk_load().unwrap().expect("still empty");
    assert_eq!(store.import_carts(&carts).unwrap().upserted, 2);
    bulk.finish().unwrap();
    assert_eq!(schema(&store), before);
    assert_eq!(stored(&store, "b").1, vec!["B1", "B2"]);
    let window = store
        .candidates(from_unix(0), from_unix(1_000))
        .unwrap()
        .into_iter()
        .map(|candidate| candidate.id)
        .collect::<Vec<_>>();
    assert_eq!(window, vec!["a", "b"]);
    // Not into a store that holds carts, nor inside a transaction.
    assert!(store.begin_bulk_load().unwrap().is_none());
    assert!(store.conn().is_autocommit());
    let empty = Store::open_in_memory().unwrap();
    empty.begin_discarded().unwrap();
    assert!(empty.begin_bulk_load().unwrap().is_none());
}

fn journal_mode(store: &Store) -> String {
    store
        .conn()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn a_bulk_load_writes_without_the_wal_and_leaves_the_store_in_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recart.db");
    let store = Store::open(&path).unwrap();
    let carts = [
        cart("a", 100, CartStatus::Open, &["A1"]),
        cart("b", 200, CartStatus::Open, &["B1", "B2"]),
    ];
    let bulk = store.begin_bulk_load().unwrap().expect("empty store");
    assert_eq!(journal_mode(&store), "delete");
    store.import_carts(&carts).unwrap();
    drop(bulk);
    assert_eq!(journal_mode(&store), "wal");
    assert!(store.cart("a").unwrap().is_none());

    let bulk = store.begin_bulk_load().unwrap().expect("still empty");
    store.import_carts(&carts).unwrap();
    bulk.finish().unwrap();
    assert_eq!(journal_mode(&store), "wal");
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(stored(&store, "b").1, vec!["B1", "B2"]);

    // With another connection on the store, the load keeps the WAL.
    let other_path = dir.path().join("other.db");
    let store = Store::open(&other_path).unwrap();
    let reader = Store::open(&other_path).unwrap();
    assert!(reader.cart("a").unwrap().is_none());
    let bulk = store.begin_bulk_load().unwrap().expect("empty store");
    assert_eq!(journal_mode(&store), "wal");
    store.import_carts(&carts).unwrap();
    bulk.finish().unwrap();
    assert_eq!(stored(&reader, "b").1, vec!["B1", "B2"]);
}

#[test]
fn a_batch_that_fails_rolls_the_bulk_load_back() {
    let store = Store::open_in_memory().unwrap();
    let before = schema(&store);
    store
        .conn()
        .execute_batch(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.carts WHEN NEW.id = 'boom'
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .unwrap();
    let bulk = store.begin_bulk_load().unwrap().expect("empty store");
    store
        .import_carts(&[cart("a", 100, CartStatus::Open, &["A1"])])
        .unwrap();
    assert!(
        store
            .import_carts(&[cart("boom", 100, CartStatus::Open, &["B1"])])
            .is_err()
    );
    bulk.finish().unwrap();
    assert!(store.cart("a").unwrap().is_none());
    assert_eq!(schema(&store), before);
    // Batches commit one by one again.
    store
        .import_carts(&[cart("a", 100, CartStatus::Open, &["A1"])])
        .unwrap();
    assert!(store.conn().is_autocommit());
}
