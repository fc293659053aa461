//! Several workers on one PostgreSQL store (`store.url`), against Postfix's
//! `smtp-sink` and a real PostgreSQL server: three `recart run` processes
//! at once share one run — every cart received exactly once, per-address
//! rules held across them — and a worker killed mid-run leaves no
//! duplicate; the others, or the next run, send whatever it had not
//! possibly handed over.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::db_servers;
use crate::faults::{Rng, Sink, assert_no_duplicates, config, smtp_sink_or_skip};
use crate::fixtures::{NATIVE_HEADER, NOW, shop};
use crate::harness::Test;

/// A shop whose store is database `name` of the test PostgreSQL server,
/// sending to `sink` over `connections` per worker; `None` without a
/// server (after a note).
fn postgres_shop(name: &str, sink: &Sink, connections: usize) -> Option<(Test, String)> {
    let server = db_servers::postgres()?;
    let url = server.database(name, "SELECT 1");
    let toml = config(sink.port(), connections).replace(
        "[store]\npath = \"recart.db\"\n",
        &format!("[store]\nurl = \"{url}\"\n"),
    );
    assert!(toml.contains(&url), "the fixture's config names its store");
    let toml = toml.replace(
        "[[sources]]\npath = \"carts.csv\"\nformat = \"native\"\n",
        "",
    );
    let t = shop(&crate::fixtures::Config::new(
        crate::fixtures::Transport::Smtp(sink.port()),
    ))
    .file("recart.toml", toml);
    Some((t, url))
}

/// Open carts due for the 1h step at `NOW`, two per address (`W-<n>-a`,
/// idle since 09:00, and `W-<n>-b`, since 10:00: the older is superseded),
/// for addresses `first..first + addresses`.
fn paired_carts(first: usize, addresses: usize) -> String {
    let mut csv = format!("{NATIVE_HEADER}\n");
    for n in first..first + addresses {
        for (suffix, updated) in [("a", "09:00"), ("b", "10:00")] {
            writeln!(
                csv,
                "W-{n:05}-{suffix},w{n:05}@example.com,Cust{n},en-GB,EUR,open,true,\
                 2026-11-21T08:00:00Z,2026-11-21T{updated}:00Z,SKU-{n},Thing {n},Stuff,1,12.50,\
                 https://cdn.shop.example/img/{n}.jpg,https://shop.example/products/{n}"
            )
            .unwrap();
        }
    }
    csv
}

/// `(cart, step) → state` of the PostgreSQL store's ledger.
fn ledger(url: &str) -> BTreeMap<(String, String), String> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .query("SELECT cart_id, step, state FROM recart.sends", &[])
        .unwrap()
        .iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect()
}

fn count(book: &BTreeMap<(String, String), String>, state: &str) -> usize {
    book.values().filter(|s| *s == state).count()
}

/// Address → mails received.
fn received(sink: &mut Sink) -> BTreeMap<String, usize> {
    let messages = sink.settle(Duration::from_secs(1));
    assert_no_duplicates(&messages);
    let mut by_address = BTreeMap::new();
    for message in &messages {
        for address in message.recipients() {
            *by_address.entry(address.clone()).or_default() += 1;
        }
    }
    by_address
}

#[test]
fn three_workers_share_one_run_and_send_every_cart_once() {
    let name = "three_workers_share_one_run";
    let Some(binary) = smtp_sink_or_skip(name) else {
        return;
    };
    let mut sink = Sink::start(&binary, &[]);
    let Some((t, url)) = postgres_shop("recart_workers_three", &sink, 2) else {
        return;
    };
    // 2,000 due carts of 1,000 addresses.
    t.write("carts.csv", paired_carts(0, 1000));
    t.recart(&["import", "carts.csv"]).expect_success();
    let workers: Vec<_> = (0..3)
        .map(|_| t.spawn_piped(&["run", "--now", NOW]))
        .collect();
    for worker in workers {
        let output = worker.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{:?}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let by_address = received(&mut sink);
    assert_eq!(by_address.len(), 1000, "every address mailed");
    assert!(
        by_address.values().all(|n| *n == 1),
        "one mail per address (the older cart superseded): {:?}",
        by_address
            .iter()
            .filter(|(_, n)| **n > 1)
            .collect::<Vec<_>>()
    );
    let book = ledger(&url);
    assert_eq!(count(&book, "sent"), 1000);
    for n in 0..1000 {
        let newer = (format!("W-{n:05}-b"), "1h".to_string());
        assert_eq!(
            book.get(&newer).map(String::as_str),
            Some("sent"),
            "{newer:?}"
        );
    }
    // A second round finds nothing more to send.
    t.recart(&["run", "--now", NOW]).expect_success();
    assert_eq!(received(&mut sink).len(), 1000);
    sink.stop();
}

#[test]
fn a_worker_killed_mid_run_leaves_no_duplicate_and_its_work_is_taken_over() {
    let name = "a_worker_killed_mid_run";
    let Some(binary) = smtp_sink_or_skip(name) else {
        return;
    };
    let rounds: usize = std::env::var("RECART_CRASH_ROUNDS")
        .ok()
        .map_or(20, |v| v.parse().expect("RECART_CRASH_ROUNDS: a number"));
    let seed: u64 = std::env::var("RECART_CRASH_SEED")
        .ok()
        .map_or(0x5eed_1234_5678_9abd, |v| v.parse().expect("a number"));
    let mut rng = Rng(seed);
    // Some mails wait a second for the server's answer to DATA.
    let mut sink = Sink::start(&binary, &["-W", "DATA:1:30"]);
    let Some((t, url)) = postgres_shop("recart_workers_killed", &sink, 1) else {
        return;
    };
    let per_round = 12;
    let mut killed = 0;
    for round in 0..rounds {
        t.write("carts.csv", paired_carts(round * per_round, per_round));
        t.recart(&["import", "carts.csv"]).expect_success();
        let mut workers: Vec<_> = (0..3).map(|_| t.spawn(&["run", "--now", NOW])).collect();
        std::thread::sleep(Duration::from_millis(100 + rng.below(1200)));
        let victim = usize::try_from(rng.below(3)).unwrap();
        if workers[victim].try_wait().unwrap().is_none() {
            workers[victim].kill().unwrap();
            killed += 1;
        }
        for (index, worker) in workers.iter_mut().enumerate() {
            let status = worker.wait().unwrap();
            if index != victim {
                assert!(
                    matches!(status.code(), Some(0 | 3 | 6)),
                    "round {round}: worker {index} {status:?} (seed {seed})"
                );
            }
        }
        // The next run settles the dead worker's claims from its journal.
        let settle = t.recart(&["run", "--now", NOW]);
        assert!(matches!(settle.status, 0 | 6), "round {round}: {settle:?}");
        let book = ledger(&url);
        assert_eq!(count(&book, "claimed"), 0, "round {round} (seed {seed})");
        assert!(
            count(&book, "unknown") <= killed,
            "round {round}: more unknown than one per killed worker's connection: {} (seed {seed})",
            count(&book, "unknown")
        );
    }
    let by_address = received(&mut sink);
    let book = ledger(&url);
    for n in 0..rounds * per_round {
        let address = format!("w{n:05}@example.com");
        let newer = (format!("W-{n:05}-b"), "1h".to_string());
        let state = book.get(&newer).map(String::as_str);
        assert!(
            by_address.get(&address) == Some(&1) || state == Some("unknown"),
            "{address}: received {:?}, ledger {state:?} (seed {seed})",
            by_address.get(&address)
        );
    }
    eprintln!(
        "{name}: {killed} of {rounds} rounds killed a worker; {} unknown",
        count(&book, "unknown")
    );
    sink.stop();
}
