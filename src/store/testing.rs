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
    let url = crate::config::StoreUrl {
        url: format!("{server}/{name}"),
        password_env: None,
        password_file: None,
    };
    Some(Store::open_postgres(&url, super::BUSY_TIMEOUT).unwrap())
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
