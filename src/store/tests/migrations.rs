use super::*;

#[test]
fn migrations_are_valid() {
    Migrations::from_slice(MIGRATIONS).validate().unwrap();
}

/// Migration 10 moved the items of stored carts into their rows: the
/// same items come back, in the same order, and the `cart_items` view
/// shows them as the table did.
#[test]
fn migration_10_keeps_the_items_of_stored_carts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recart.db");
    let mut conn = Connection::open(&path).unwrap();
    rusqlite_migration::Migrations::from_slice(MIGRATIONS)
        .to_version(&mut conn, 9)
        .unwrap();
    conn.execute_batch(
        "INSERT INTO carts (id, email, email_norm, first_name, locale, currency, status,
                accepts_marketing, created_at, updated_at, total_minor, item_count, snapshot_hash)
         VALUES ('a', 'm@x.org', 'm@x.org', 'Mia', 'en', 'EUR', 'open', 1, 1, 2, 500, 3, x''),
                ('e', 'e@x.org', 'e@x.org', 'Eve', 'en', 'EUR', 'open', 1, 1, 2, 0, 0, x'');
         INSERT INTO cart_items VALUES
                ('a', 1, 'S2', 'Sock \"2\"', 'socks', 2, 100, '', 'https://x.org/s2'),
                ('a', 0, 'S1', 'Schuh ü', 'shoes', 1, 300, 'https://x.org/s1.jpg', '');",
    )
    .unwrap();
    let view_before = view_rows(&conn);
    drop(conn);

    let store = Store::open(&path).unwrap();
    let a = store.cart("a").unwrap().unwrap();
    let items: Vec<(&str, &str, &str, u32, i64, &str, &str)> = a
        .items
        .iter()
        .map(|item| {
            (
                item.sku.as_str(),
                item.name.as_str(),
                item.category.as_str(),
                item.quantity,
                item.unit_price_minor,
                item.image_url.as_str(),
                item.product_url.as_str(),
            )
        })
        .collect();
    assert_eq!(
        items,
        vec![
            ("S1", "Schuh ü", "shoes", 1, 300, "https://x.org/s1.jpg", ""),
            ("S2", "Sock \"2\"", "socks", 2, 100, "", "https://x.org/s2"),
        ]
    );
    assert!(store.cart("e").unwrap().unwrap().items.is_empty());
    assert_eq!(view_rows(store.conn()), view_before);
}

/// Migration 12: a stored offset of 0 (written for `Z` and zone-less times
/// as for `+00:00`) becomes unknown for open carts; other offsets stay. A
/// re-import of the same snapshot is still no change: an unknown offset
/// hashes as 0 did.
#[test]
fn migration_12_makes_zero_offsets_of_open_carts_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recart.db");
    let mut conn = Connection::open(&path).unwrap();
    rusqlite_migration::Migrations::from_slice(MIGRATIONS)
        .to_version(&mut conn, 11)
        .unwrap();
    conn.execute_batch(
        "INSERT INTO carts (id, email, email_norm, first_name, locale, currency, status,
                accepts_marketing, created_at, updated_at, utc_offset, total_minor, item_count,
                snapshot_hash)
         VALUES ('z', 'm@x.org', 'm@x.org', '', 'en', 'EUR', 'open', 1, 1, 2, 0, 500, 1, x''),
                ('i', 'i@x.org', 'i@x.org', '', 'en', 'EUR', 'open', 1, 1, 2, 19800, 500, 1, x''),
                ('o', 'o@x.org', 'o@x.org', '', 'en', 'EUR', 'ordered', 1, 1, 2, 0, 500, 1, x'');",
    )
    .unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();
    let offset = |id: &str| -> Option<i32> {
        store
            .conn()
            .query_row("SELECT utc_offset FROM carts WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .unwrap()
    };
    assert_eq!(offset("z"), None);
    assert_eq!(offset("i"), Some(19_800));
    assert_eq!(offset("o"), Some(0), "not reminded: left as it was");

    let mut zulu = cart("a", 1_000, CartStatus::Open, &["S"]);
    zulu.utc_offset_seconds = Some(0);
    let before = snapshot_hash(&zulu, &mut Vec::new());
    zulu.utc_offset_seconds = None;
    assert_eq!(snapshot_hash(&zulu, &mut Vec::new()), before);
}

fn view_rows(conn: &Connection) -> Vec<String> {
    conn.prepare(
        "SELECT cart_id || '|' || position || '|' || sku || '|' || name || '|' || category
                || '|' || quantity || '|' || unit_price_minor || '|' || image_url
                || '|' || product_url
         FROM cart_items ORDER BY cart_id, position",
    )
    .unwrap()
    .query_map([], |row| row.get(0))
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}
