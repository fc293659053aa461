//! Stores for unit tests on both engines: an in-memory `SQLite` one, and a
//! PostgreSQL one in a fresh database of the server `RECART_TEST_POSTGRES`
//! names (`postgres://postgres@127.0.0.1:5432`; `.ci/run` starts one).
//! Without it a test prints a note and runs on `SQLite` alone, unless `CI`
//! is set.

use super::Store;

/// The PostgreSQL server's URL, if there is one to test against.
fn server() -> Option<String> {
    match std::env::var("RECART_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "RECART_TEST_POSTGRES is not set; .ci/run starts a server and sets it"
            );
            eprintln!("note: RECART_TEST_POSTGRES is not set; this test runs on SQLite alone");
            None
        }
    }
}

/// A store on a new, empty PostgreSQL database `name` (dropped first if a
/// run before left it); `None` without a server.
pub fn postgres_store(name: &str) -> Option<Store> {
    let server = server()?;
    let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
        .unwrap_or_else(|error| panic!("{server}: {error}"));
    // One statement each: neither may run in a transaction block.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    Some(connect(&format!("{server}/{name}")))
}

/// A connection to the PostgreSQL store at `url` (a store's `path()`): a
/// second one to the same database is another worker.
pub fn connect(url: &str) -> Store {
    let url = crate::config::StoreUrl {
        url: url.to_owned(),
        password_env: None,
        password_file: None,
    };
    Store::open_postgres(&url, super::BUSY_TIMEOUT).unwrap()
}

/// The same test's stores on both engines, named for its messages: an
/// in-memory `SQLite` one, and a PostgreSQL one in database `name`.
pub fn both_stores(name: &str) -> Vec<(&'static str, Store)> {
    let mut stores = vec![("sqlite", Store::open_in_memory().unwrap())];
    if let Some(store) = postgres_store(name) {
        stores.push(("postgres", store));
    }
    stores
}

/// Writes `carts` as rows, on either engine, without the import (for
/// tests of what reads them): the address normalised, no snapshot hash.
pub fn put_carts(store: &Store, carts: &[crate::model::Cart]) {
    use super::engine::args;
    store
        .write_db(|db| {
            for cart in carts {
                db.execute(
                    "INSERT INTO carts (id, email, email_norm, first_name, locale, currency,
                         status, accepts_marketing, created_at, updated_at, utc_offset,
                         total_minor, item_count, snapshot_hash, timezone, phone, sms_consent,
                         items)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                             ?16, ?17, ?18)",
                    args![
                        &cart.id,
                        &cart.email,
                        crate::model::normalize_email(&cart.email).as_str(),
                        &cart.first_name,
                        &cart.locale,
                        cart.currency.as_str(),
                        cart.status.as_str(),
                        cart.accepts_marketing,
                        super::to_unix(cart.created_at),
                        super::to_unix(cart.updated_at),
                        cart.utc_offset_seconds,
                        cart.items
                            .iter()
                            .map(|item| i64::from(item.quantity) * item.unit_price_minor)
                            .sum::<i64>(),
                        i64::try_from(cart.items.len()).unwrap(),
                        &[0_u8][..],
                        &cart.timezone,
                        &cart.phone,
                        cart.sms_consent,
                        super::encode_items(&cart.items).as_str(),
                    ],
                )?;
            }
            Ok(())
        })
        .unwrap();
}
