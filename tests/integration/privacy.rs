//! Privacy: `forget` and `prune` leave nothing of the people they erase in
//! the store's files (`.db`, `-wal`, `-shm`), whatever SQLite's b-trees
//! kept; a forgotten person's carts and orders are not stored again; and
//! neither command gets in the way of a run.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::fixtures::{ADA, Config, LATER, NATIVE_HEADER, NOW, Transport, shop};
use crate::harness::Test;
use crate::smtp_server::SmtpServer;

/// The person erased, as the shop wrote the address.
const VICTIM: &str = "Victim.Person@Example.com";
/// Their first name: nobody else's.
const VICTIM_NAME: &str = "Philippa";

/// First names, half sorting before "victim" and half after, so the
/// victim's address sorts in the middle of everyone's.
const FIRST: [&str; 24] = [
    "Anna", "Bruno", "Carla", "Dmitri", "Elif", "Farid", "Giulia", "Hannes", "Ingrid", "Jamal",
    "Kerstin", "Leon", "Vivienne", "Volker", "Walter", "Wanda", "Wiebke", "Xaver", "Xenia",
    "Yannick", "Yasmin", "Yuki", "Zeynep", "Zoltan",
];
const LAST: [&str; 20] = [
    "Schmidt", "Novak", "Rossi", "Garcia", "Nowak", "Jensen", "Dubois", "Keller", "Moreau",
    "Silva", "Horvat", "Larsen", "Bauer", "Costa", "Fischer", "Lambert", "Meier", "Nilsson",
    "Ortiz", "Petrov",
];
const DOMAINS: [&str; 4] = [
    "Example.com",
    "mail.example",
    "customers.example.org",
    "example.net",
];
const PRODUCTS: [(&str, &str, &str, &str); 4] = [
    ("MWB-01", "Merino Wool Beanie", "Accessories", "29.00"),
    ("TRV-MUG-350", "Insulated Travel Mug", "Kitchen", "14.50"),
    ("APR-LIN-NAT", "Linen Apron", "Kitchen", "48.00"),
    ("NB-DOT-A5", "Dotted Notebook A5", "Stationery", "9.50"),
];

/// One generated shopper: cart id, address, first name, last activity.
struct Shopper {
    cart_id: String,
    email: String,
    first_name: String,
    updated_at: DateTime<Utc>,
}

/// `n` carts, one a shopper, ids in the order of their last activity
/// (from `newest` back, 2 minutes apart); `victims` of them (by index)
/// are the victim's.
fn shoppers(n: usize, prefix: &str, newest: DateTime<Utc>, victims: &[usize]) -> Vec<Shopper> {
    (0..n)
        .map(|i| {
            let (email, first_name) = if victims.contains(&i) {
                (VICTIM.to_string(), VICTIM_NAME.to_string())
            } else {
                let first = FIRST[i % FIRST.len()];
                let last = LAST[(i / FIRST.len()) % LAST.len()];
                let domain = DOMAINS[i % DOMAINS.len()];
                (
                    format!("{first}.{last}{}{prefix}@{domain}", i % 7),
                    first.to_string(),
                )
            };
            let minutes = i64::try_from(2 * (n - i)).unwrap();
            Shopper {
                cart_id: format!("{prefix}C-{i:05}"),
                email,
                first_name,
                updated_at: newest - TimeDelta::minutes(minutes),
            }
        })
        .collect()
}

/// A native carts CSV of `shoppers`, one to three items each; `later`
/// moves every last activity on (a re-export of changed carts).
fn carts_csv(shoppers: &[Shopper], later: TimeDelta) -> String {
    let mut csv = format!("{NATIVE_HEADER}\n");
    for (i, shopper) in shoppers.iter().enumerate() {
        let updated = shopper.updated_at + later;
        let created = updated - TimeDelta::minutes(10);
        for (sku, name, category, price) in PRODUCTS.iter().take(1 + i % 3) {
            writeln!(
                csv,
                "{},{},{},en-GB,EUR,open,true,{},{},{sku},{name},{category},1,{price},https://cdn.shop.example/img/{sku}.jpg,https://shop.example/products/{sku}",
                shopper.cart_id,
                shopper.email,
                shopper.first_name,
                created.to_rfc3339(),
                updated.to_rfc3339(),
            )
            .unwrap();
        }
    }
    csv
}

/// A native orders CSV: one order for each of `shoppers`, placed `at`.
fn orders_csv(shoppers: &[&Shopper], at: DateTime<Utc>) -> String {
    let mut csv = String::from("order_id,email,cart_id,total,currency,created_at\n");
    for shopper in shoppers {
        writeln!(
            csv,
            "O-{},{},,29.00,EUR,{}",
            shopper.cart_id,
            shopper.email,
            at.to_rfc3339()
        )
        .unwrap();
    }
    csv
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The store's three files, lower-cased (ASCII), each with its name; a
/// file that does not exist reads as empty.
fn store_files(t: &Test) -> Vec<(String, Vec<u8>)> {
    ["recart.db", "recart.db-wal", "recart.db-shm"]
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(t.join(name)).unwrap_or_default();
            (name.to_string(), bytes.to_ascii_lowercase())
        })
        .collect()
}

/// Where `needle` (any case) occurs in the store's files: "file@offset".
fn traces(t: &Test, needle: &str) -> Vec<String> {
    let needle = needle.to_ascii_lowercase();
    store_files(t)
        .iter()
        .flat_map(|(name, bytes)| {
            memchr::memmem::find_iter(bytes, needle.as_bytes())
                .map(move |at| format!("{name}@{at}"))
        })
        .collect()
}

/// Every e-mail address in the store's files, lower-cased: the bytes
/// around each `@` that an address may hold.
fn addresses_in_files(t: &Test) -> HashSet<String> {
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._+-".contains(&b);
    let domain = |b: u8| b.is_ascii_alphanumeric() || b".-".contains(&b);
    let mut found = HashSet::new();
    for (_, bytes) in store_files(t) {
        for at in memchr::memchr_iter(b'@', &bytes) {
            let start = bytes[..at]
                .iter()
                .rposition(|&b| !local(b))
                .map_or(0, |p| p + 1);
            let end = bytes[at + 1..]
                .iter()
                .position(|&b| !domain(b))
                .map_or(bytes.len(), |p| at + 1 + p);
            found.insert(String::from_utf8_lossy(&bytes[start..end]).into_owned());
        }
    }
    found
}

/// A shop of `n` carts imported as a shop's hourly exports would bring
/// them (a first file, then files that overlap it with newer snapshots),
/// reminded once at `NOW`, then orders from every fifth shopper and the
/// victim, and the victim unsubscribed: the victim's address, name and
/// carts are all over the store's b-trees, and their history in it.
fn busy_shop(n: usize) -> (Test, Vec<Shopper>) {
    let mut config = Config::new(Transport::File);
    config.sources.clear();
    let t = shop(&config);
    // One of the victim's carts is among the first stored, and so is its
    // order: the page that held it is an interior page of `orders` by the
    // time they are forgotten (a stale copy no REINDEX reaches); the other
    // is in the middle of every index.
    let victims = [2, n / 2];
    let people = shoppers(n, "", time(NOW) - TimeDelta::hours(2), &victims);
    let third = n / 3;
    t.write(
        "export-1.csv",
        carts_csv(&people[..third * 2], TimeDelta::zero()),
    );
    t.write(
        "export-2.csv",
        carts_csv(&people[third..], TimeDelta::minutes(1)),
    );
    t.write(
        "export-3.csv",
        carts_csv(&people[n / 2 - 50..n / 2 + 50], TimeDelta::minutes(2)),
    );
    for file in ["export-1.csv", "export-2.csv", "export-3.csv"] {
        t.recart(&["import", file]).expect_success();
    }
    t.recart(&["run", "--now", NOW]).expect_success();
    let buyers: Vec<&Shopper> = people
        .iter()
        .enumerate()
        .filter(|(i, shopper)| i % 5 == 0 || shopper.email == VICTIM)
        .map(|(_, shopper)| shopper)
        .collect();
    t.write(
        "orders.csv",
        orders_csv(&buyers, time(NOW) + TimeDelta::minutes(30)),
    );
    t.recart(&["import", "orders.csv"]).expect_success();
    t.recart(&["suppress", "add", VICTIM]).expect_success();
    (t, people)
}

#[test]
fn forget_leaves_nothing_of_the_person_in_the_store_files() {
    let (t, people) = busy_shop(3000);
    assert!(!traces(&t, VICTIM).is_empty() && !traces(&t, VICTIM_NAME).is_empty());
    // An idle connection keeps the `-wal` and `-shm` files after recart
    // exits (the last one to close removes them), as a running shop would.
    let reader = t.store();
    assert_eq!(reader.count("SELECT count(*) FROM carts"), 3000);

    let out = t.recart(&["forget", "victim.PERSON@example.COM"]);
    out.expect_success();
    out.expect_stdout_contains("2 carts and 2 orders deleted, 1 ledger entries anonymised");

    assert!(t.exists("recart.db-wal") && t.exists("recart.db-shm"));
    assert_eq!(traces(&t, VICTIM), Vec::<String>::new(), "the address");
    assert_eq!(
        traces(&t, VICTIM_NAME),
        Vec::<String>::new(),
        "the first name"
    );
    // Everyone else is still there, in the tables and in the files.
    assert_eq!(reader.count("SELECT count(*) FROM carts"), 2998);
    assert_eq!(reader.count("SELECT count(*) FROM sends"), 2999);
    let others = addresses_in_files(&t);
    assert!(others.contains(&people[0].email.to_ascii_lowercase()));
}

#[test]
fn prune_leaves_nothing_of_the_pruned_addresses_in_the_store_files() {
    // Older shoppers, reminded at NOW; newer ones, reminded three days on
    // (only them: one step).
    let (t, older) = busy_shop(2000);
    let mut config = Config::new(Transport::File);
    config.sources.clear();
    config.steps.truncate(1);
    t.write("recart.toml", config.to_toml());
    let then = time(NOW) + TimeDelta::days(3);
    let newer = shoppers(1000, "n", then - TimeDelta::hours(2), &[]);
    t.write("newer.csv", carts_csv(&newer, TimeDelta::zero()));
    t.recart(&["import", "newer.csv"]).expect_success();
    let later = then.to_rfc3339();
    t.recart(&["run", "--now", &later]).expect_success();
    // Keeps the `-wal` and `-shm` files, as in the test above.
    let reader = t.store();
    assert_eq!(reader.count("SELECT count(*) FROM carts"), 3000);

    // Everything before NOW + 1h goes: the older carts, their orders and
    // the addresses of the reminders claimed at NOW.
    let out = t.recart(&["prune", "--older-than", "71h", "--now", &later]);
    out.expect_success();
    out.expect_stdout_contains("2000 carts and 401 orders deleted, 1999 ledger entries anonymised");

    let left = addresses_in_files(&t);
    // (The victim unsubscribed: the suppression list keeps that address.)
    let pruned: Vec<&str> = older
        .iter()
        .map(|shopper| shopper.email.as_str())
        .filter(|email| *email != VICTIM && left.contains(&email.to_ascii_lowercase()))
        .collect();
    assert_eq!(
        pruned,
        Vec::<&str>::new(),
        "pruned addresses left in the files"
    );
    assert_eq!(traces(&t, VICTIM_NAME), Vec::<String>::new());
    for shopper in &newer {
        assert!(left.contains(&shopper.email.to_ascii_lowercase()));
    }
}

#[test]
fn a_forgotten_person_is_not_stored_again() {
    let t = shop(&Config::new(Transport::File));
    let first = t.recart(&["-v", "run", "--now", NOW]);
    first.expect_success();
    assert!(!first.stderr.contains("forgotten"), "{}", first.stderr);
    let orders = "order_id,email,cart_id,total,currency,created_at\n\
         O-1,Ada.Lovelace@example.com,,87.00,EUR,2026-11-22T12:00:00Z\n\
         O-2,grace.hopper@example.com,,80.00,USD,2026-11-22T12:00:00Z\n";
    t.write("orders.csv", orders);
    t.recart(&["forget", "ADA.LOVELACE@example.com"])
        .expect_success();

    // Her cart and order come back in later exports (newer, in another
    // case): dropped and counted, by `import` and by `run`'s sources.
    let csv = t
        .read("carts.csv")
        .replace("2026-11-21T09:30:00Z", "2026-11-23T09:30:00Z")
        .replace(ADA, "Ada.Lovelace@Example.COM");
    t.write("carts.csv", csv);
    let import = t.recart(&["import", "carts.csv"]);
    import.expect_success();
    import.expect_stdout_line(
        "carts.csv: 7 rows read, 0 carts upserted, 4 unchanged, 0 rejected, 1 forgotten",
    );
    let import = t.recart(&["import", "orders.csv"]);
    import.expect_success();
    import.expect_stdout_contains("1 orders added");
    import.expect_stdout_contains(", 1 forgotten");
    let run = t.recart(&["-v", "run", "--json", "--now", LATER]);
    run.expect_success();
    run.expect_stderr_contains(
        "carts.csv: 7 rows read, 0 carts upserted, 4 unchanged, 0 rejected, 1 forgotten",
    );
    assert!(run.decisions().iter().all(|d| d.cart_id != "C-1001"));

    let store = t.store();
    assert_eq!(
        store.count("SELECT count(*) FROM carts WHERE email_norm LIKE 'ada%'")
            + store.count("SELECT count(*) FROM orders WHERE email_norm LIKE 'ada%'"),
        0
    );
    assert_eq!(store.count("SELECT count(*) FROM orders"), 1);
    assert!(traces(&t, "lovelace").is_empty());
}

/// An SMTP server that keeps a run waiting: it accepts connections and
/// says nothing until `release`, then passes them on to a real one.
struct Gate {
    connected: mpsc::Receiver<TcpStream>,
    port: u16,
}

impl Gate {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, connected) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if tx.send(stream).is_err() {
                    break;
                }
            }
        });
        Gate { connected, port }
    }

    /// The run's first connection: it has taken the run lock by now.
    fn wait_for_run(&self) -> TcpStream {
        self.connected
            .recv_timeout(Duration::from_mins(1))
            .expect("the run never connected")
    }

    /// Passes `first`, and every connection after it, on to `server`.
    fn release(self, first: TcpStream, server: &SmtpServer) {
        let port = server.port();
        pipe(first, port);
        thread::spawn(move || {
            for client in self.connected {
                pipe(client, port);
            }
        });
    }
}

/// Copies bytes between `client` and the server at `port`, both ways.
fn pipe(client: TcpStream, port: u16) {
    let upstream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for (mut from, mut to) in [
        (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
        (upstream, client),
    ] {
        thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}

#[test]
fn forget_waits_for_a_run_and_never_breaks_it() {
    let server = SmtpServer::start();
    let gate = Gate::start();
    let t = shop(&Config::new(Transport::Smtp(gate.port)));
    let run = t.spawn_piped(&["run", "--now", NOW]);
    let connection = gate.wait_for_run();

    // The run holds the store: `forget` does nothing and says why.
    let refused = t.recart(&["forget", ADA]);
    refused.expect_status(4);
    refused.expect_stderr_contains("another recart run holds");
    assert_eq!(
        t.store()
            .count("SELECT count(*) FROM carts WHERE id = 'C-1001'"),
        1
    );

    // With --wait it says so and waits for the run's end.
    let mut forget = t.spawn_piped(&["forget", "--wait", ADA]);
    let mut stderr = BufReader::new(forget.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("waiting for the run that holds"), "{line}");
    assert!(line.trim_end().ends_with("recart.db"), "{line}");
    assert!(forget.try_wait().unwrap().is_none());

    gate.release(connection, &server);
    let run = run.wait_with_output().unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "the run was broken: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(forget.wait().unwrap().code(), Some(0));
    // The run sent both due mails and recorded them; then Ada was erased.
    assert_eq!(server.messages().len(), 2);
    let store = t.store();
    assert_eq!(store.sends_in("sent").len(), 2);
    assert_eq!(
        store.count("SELECT count(*) FROM sends WHERE email_norm = ''"),
        1
    );
    assert!(store.sends_in("claimed").is_empty());
    assert!(traces(&t, "lovelace").is_empty());
}
