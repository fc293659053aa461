//! The store's scenarios on both engines: the same commands against a
//! SQLite file and a PostgreSQL database (`store.url`, a real server from
//! `db_servers.rs`) print the same things, decide the same way and send
//! the same mails — imports, dry runs, runs, a second run that sends
//! nothing twice, an order and a suppression that stop reminders, the
//! three steps over days, unknown sends settled by hand, the report and
//! erasure.

use std::fmt::Write as _;

use crate::db_servers;
use crate::fixtures::{ADA, Config, GRACE, NOW, Transport, shop};
use crate::harness::Test;

/// The fixture shop on SQLite, and the same on PostgreSQL database
/// `name` (none without a server, after a note).
fn shops(name: &str) -> Vec<(&'static str, Test)> {
    let config = Config::new(Transport::File);
    let mut shops = vec![("sqlite", shop(&config))];
    if let Some(server) = db_servers::postgres() {
        let url = server.database(name, "SELECT 1");
        let toml = config.to_toml().replace(
            "[store]\npath = \"recart.db\"\n",
            &format!("[store]\nurl = \"{url}\"\n"),
        );
        shops.push(("postgres", shop(&config).file("recart.toml", toml)));
    }
    shops
}

/// What a command printed, with what differs by nature between two
/// stores taken out: durations, the store's name, and the order of a
/// run's lines (on PostgreSQL they come partition by partition).
fn said(out: &crate::harness::Output) -> String {
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort_unstable();
    let text = format!("{}\n--\n{}", lines.join("\n"), out.stderr);
    text.lines()
        .filter(|line| !line.contains("duration_s") && !line.contains(" in 0."))
        .map(|line| {
            let line = line
                .split(" in ")
                .next()
                .unwrap_or(line)
                .replace("recart.db", "STORE");
            // `runs` and `suppress list` say when by the wall clock.
            let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
            if !line.contains(&today) {
                return line;
            }
            line.split_whitespace()
                .map(|word| {
                    if word.contains(&today) || word.contains(':') && word.len() == 8 {
                        "<clock>"
                    } else if word.ends_with('s') && word[..word.len() - 1].parse::<u32>().is_ok() {
                        "<took>"
                    } else {
                        word
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The outbox's mails, by name, with their contents.
fn outbox(t: &Test) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(t.join("outbox")) else {
        return Vec::new();
    };
    let mut mails: Vec<(String, String)> = entries
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut mail = std::fs::read_to_string(&path).unwrap();
            // The MIME boundary is random.
            if let Some(start) = mail.find("boundary=\"") {
                let start = start + "boundary=\"".len();
                let end = start + mail[start..].find('"').unwrap();
                let boundary = mail[start..end].to_string();
                mail = mail.replace(&boundary, "BOUNDARY");
            }
            (name, mail)
        })
        .collect();
    mails.sort();
    mails
}

/// Runs the same commands on every shop and checks each prints what the
/// SQLite one printed; returns the outputs.
fn alike(shops: &[(&str, Test)], args: &[&str]) -> Vec<crate::harness::Output> {
    let outputs: Vec<_> = shops.iter().map(|(_, t)| t.recart(args)).collect();
    for ((engine, _), out) in shops.iter().zip(&outputs).skip(1) {
        assert_eq!(
            out.status, outputs[0].status,
            "{engine}: recart {args:?}: {out:?}"
        );
        assert_eq!(said(out), said(&outputs[0]), "{engine}: recart {args:?}");
    }
    outputs
}

#[test]
fn the_store_scenarios_go_alike_on_both_engines() {
    let shops = shops("recart_engines_scenarios");
    alike(&shops, &["import", "carts.csv"]);
    alike(&shops, &["run", "--dry-run", "--json", "--now", NOW]);
    let first = alike(&shops, &["run", "--json", "--now", NOW]);
    assert_eq!(first[0].status, 0);
    assert!(first[0].stdout.contains("\"decision\":\"sent\""));
    // Never twice: the same run again sends nothing.
    alike(&shops, &["run", "--json", "--now", NOW]);
    let mails: Vec<_> = shops.iter().map(|(_, t)| outbox(t)).collect();
    assert_eq!(mails[0].len(), 2, "Ada's and Grace's first reminders");
    for (mail, (engine, _)) in mails.iter().zip(&shops).skip(1) {
        assert_eq!(mail, &mails[0], "{engine}: the same mails, byte for byte");
    }

    // Grace buys; Ada unsubscribes by hand: the next steps stop for both.
    for (_, t) in &shops {
        t.write(
            "orders.csv",
            format!(
                "order_id,email,cart_id,total,currency,created_at\n\
                 O-1,{GRACE},C-1002,80.00,USD,2026-11-21T13:00:00Z\n"
            ),
        );
    }
    alike(
        &shops,
        &["import", "--format", "native-orders", "orders.csv"],
    );
    alike(&shops, &["suppress", "add", ADA]);
    alike(&shops, &["suppress", "list"]);
    let later = alike(&shops, &["run", "--json", "--now", "2026-11-22T12:00:00Z"]);
    assert!(
        !later[0].stdout.contains("\"decision\":\"send\""),
        "{}",
        later[0].stdout
    );
    alike(&shops, &["run", "--json", "--now", "2026-11-24T12:00:00Z"]);
    alike(&shops, &["unknown", "list"]);
    alike(&shops, &["runs"]);
    alike(
        &shops,
        &[
            "report",
            "--since",
            "2026-11-20T00:00:00Z",
            "--now",
            "2026-11-24T12:00:00Z",
        ],
    );
    alike(&shops, &["forget", GRACE]);
    alike(&shops, &["import", "carts.csv"]);
    alike(
        &shops,
        &[
            "run",
            "--dry-run",
            "--json",
            "--now",
            "2026-11-24T12:00:00Z",
        ],
    );
}

/// A role the server allows one connection (`CONNECTION LIMIT 1`): a run
/// whose window is large enough to read the ledger on a second connection
/// reads it all on its one, and sends as ever.
#[test]
fn a_role_allowed_one_connection_runs_on_it_alone() {
    let Some(server) = db_servers::postgres() else {
        return;
    };
    server.execute(
        "postgres",
        "DROP ROLE IF EXISTS recart_it_one; CREATE ROLE recart_it_one LOGIN CONNECTION LIMIT 1;",
    );
    server.execute(
        "postgres",
        "CREATE DATABASE recart_it_one OWNER recart_it_one;",
    );
    let url = format!(
        "postgres://recart_it_one@127.0.0.1:{}/recart_it_one",
        server.port
    );
    let config = Config::new(Transport::File);
    let toml = config.to_toml().replace(
        "[store]\npath = \"recart.db\"\n",
        &format!("[store]\nurl = \"{url}\"\n"),
    );
    // 2,200 open carts due (more than the 2,000 from which a run reads the
    // ledger in halves), two per address.
    let mut csv = format!("{}\n", crate::fixtures::NATIVE_HEADER);
    for n in 0..1100 {
        for (suffix, updated) in [("a", "09:00"), ("b", "10:00")] {
            writeln!(
                csv,
                "O-{n:05}-{suffix},o{n:05}@example.com,C{n},en-GB,EUR,open,true,\
                 2026-11-21T08:00:00Z,2026-11-21T{updated}:00Z,SKU-{n},Thing {n},Stuff,1,12.50,,"
            )
            .unwrap();
        }
    }
    let t = shop(&config)
        .file("recart.toml", toml)
        .file("many.csv", csv);
    t.recart(&["import", "many.csv"]).expect_success();
    t.recart(&["run", "--now", NOW]).expect_success();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let sent: i64 = client
        .query_one(
            "SELECT count(*) FROM recart.sends WHERE cart_id LIKE 'O-%' AND state = 'sent'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(sent, 1100, "one mail an address, the newer cart's");
}
