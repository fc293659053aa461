//! TLS to PostgreSQL, for the store and for a shop's database, and to a
//! shop's MariaDB: the test servers also speak TLS, with a certificate for
//! 127.0.0.1 from a private CA (`db_servers`). `sslmode=verify-full` with
//! that CA in `sslrootcert` (MySQL: `ssl-mode=VERIFY_IDENTITY`, `ssl-ca`)
//! connects; `sslmode=require` without it is refused, since recart checks
//! the certificate, and the error says how to give the CA.

use crate::db_servers;
use crate::fixtures::{Config, NOW, Transport, shop};

#[test]
fn a_store_over_tls_checks_the_servers_certificate() {
    let Some(server) = db_servers::postgres() else {
        return;
    };
    let url = server.database("recart_it_tls_store", "");
    let config = Config::new(Transport::File);
    let store = |query: &str| {
        config
            .to_toml()
            .replace("path = \"recart.db\"", &format!("url = \"{url}?{query}\""))
    };
    let ca = server.ca_file();
    let t = shop(&config)
        .file(
            "verified.toml",
            store(&format!("sslmode=verify-full&sslrootcert={}", ca.display())),
        )
        .file("unknown.toml", store("sslmode=require"))
        .file(
            "nofile.toml",
            store("sslmode=verify-full&sslrootcert=missing.pem"),
        );
    t.recart(&["--config", "verified.toml", "import", "carts.csv"])
        .expect_success();
    t.recart(&["--config", "verified.toml", "run", "--now", NOW])
        .expect_success();
    t.recart(&["--config", "unknown.toml", "run", "--now", NOW])
        .expect_status(1)
        .expect_stderr_contains("cannot connect: error performing TLS handshake: ")
        .expect_stderr_contains("give the CA that signed it with sslrootcert=FILE");
    t.recart(&["--config", "nofile.toml", "run", "--now", NOW])
        .expect_status(2)
        .expect_stderr_contains("sslrootcert missing.pem: ");
}

#[test]
fn a_shop_database_over_tls_checks_the_servers_certificate() {
    let Some(server) = db_servers::postgres() else {
        return;
    };
    let verified = format!(
        "sslmode=verify-full&sslrootcert={}",
        server.ca_file().display()
    );
    check_source(
        server,
        "sylius",
        &verified,
        "sslmode=require",
        "sslrootcert=FILE",
    );
}

#[test]
fn a_shop_mariadb_over_tls_checks_the_servers_certificate() {
    let Some(server) = db_servers::mariadb() else {
        return;
    };
    let verified = format!(
        "ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        server.ca_file().display()
    );
    check_source(
        server,
        "magento2",
        &verified,
        "ssl-mode=REQUIRED",
        "ssl-ca=FILE",
    );
}

/// `recart check` of the preset's source: it connects with `verified`'s
/// options and not with `unchecked`'s, whose error names `hint`.
fn check_source(
    server: &db_servers::Server,
    preset: &str,
    verified: &str,
    unchecked: &str,
    hint: &str,
) {
    let sql = std::fs::read_to_string(format!(
        "{}/tests/data/presets/{preset}.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let url = server.database(&format!("recart_it_tls_{preset}"), &sql);
    let source = |query: &str| {
        let mut config = Config::new(Transport::File);
        config.sources.clear();
        config.extra = format!(
            "[[sources]]\nurl = \"{url}?{query}\"\npreset = \"{preset}\"\ntimezone = \"UTC\"\n"
        );
        shop(&config)
    };
    source(verified)
        .recart(&["check"])
        .expect_success()
        .expect_stdout_contains("carts_query");
    source(unchecked)
        .recart(&["check"])
        .expect_status(1)
        .expect_stderr_contains("connect: cannot connect: ")
        .expect_stderr_contains(hint);
}
