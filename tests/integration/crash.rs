//! The crash and signal protocol against Postfix's `smtp-sink`: a run
//! killed at a random moment leaves `unknown` only the mails that may have
//! reached the server (at most one per connection), releases every other
//! claim, and the next run sends those; a run stopped by SIGTERM finishes
//! what is on the wire, records it, releases the rest and leaves nothing
//! `unknown`. No reminder is ever received twice.
//!
//! `RECART_CRASH_ROUNDS` (default 5 per case) and `RECART_CRASH_SEED` are
//! knobs; `scripts/crash-test --rounds N --seed N` sets them.

use std::collections::BTreeSet;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::faults::{
    Rng, Sink, assert_no_duplicates, big_shop, config, keys, ledger, smtp_sink_or_skip, states,
};
use crate::fixtures::NOW;
use crate::harness::Test;

fn rounds() -> usize {
    std::env::var("RECART_CRASH_ROUNDS")
        .ok()
        .map_or(5, |v| v.parse().expect("RECART_CRASH_ROUNDS: a number"))
}

fn seed() -> u64 {
    std::env::var("RECART_CRASH_SEED").ok().map_or_else(
        || {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap();
            now.as_secs()
                .wrapping_mul(1_000_000_000)
                .wrapping_add(u64::from(now.subsec_nanos()))
                | 1
        },
        |v| v.parse().expect("RECART_CRASH_SEED: a number"),
    )
}

/// A shop of `carts` imported carts whose runs go straight to sending.
fn sending_shop(carts: usize, sink: &Sink, connections: usize) -> Test {
    let t = big_shop(carts, sink.port(), connections);
    t.write(
        "recart.toml",
        config(sink.port(), connections).replace(
            "[[sources]]\npath = \"carts.csv\"\nformat = \"native\"\n",
            "",
        ),
    );
    t
}

/// Waits up to `delay` for the child to end by itself.
fn wait_or_timeout(child: &mut Child, delay: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(5));
    }
    None
}

fn count(t: &Test, state: &str) -> usize {
    ledger(t).values().filter(|s| *s == state).count()
}

/// The end of every case: one clean run sends what is left; every cart
/// was received once or is `unknown`, and the ledger agrees with the sink.
fn assert_every_cart_received_once_or_unknown(t: &Test, sink: &mut Sink, carts: usize, seed: u64) {
    let last = t.recart(&["run", "--now", NOW]);
    assert!(matches!(last.status, 0 | 3 | 6), "{last:?}");
    let messages = sink.settle(Duration::from_secs(2));
    assert_no_duplicates(&messages);
    let book = ledger(t);
    let received: BTreeSet<_> = keys(&messages).into_iter().collect();
    for key in &received {
        let state = book.get(key).map(String::as_str);
        assert!(
            matches!(state, Some("sent" | "unknown")),
            "{key:?} reached the sink but is {state:?} in the ledger (seed {seed})"
        );
    }
    for (key, state) in &book {
        assert_ne!(state, "claimed", "{key:?} still claimed (seed {seed})");
        if state == "sent" {
            assert!(
                received.contains(key),
                "{key:?} is sent but was never received (seed {seed})"
            );
        }
    }
    for n in 0..carts {
        let key = (format!("F-{n:05}"), "1h".to_string());
        assert!(
            received.contains(&key) || book.get(&key).is_some_and(|s| s == "unknown"),
            "{key:?} neither received nor unknown: {:?} (seed {seed})",
            book.get(&key)
        );
    }
    eprintln!(
        "crash test: {} received; ledger {:?}",
        received.len(),
        states(&book)
    );
}

/// Rounds of: a run, killed (SIGKILL) at a random moment; then a run that only
/// settles what the dead one left (`--limit 0`), which must leave at most
/// one `unknown` per connection.
fn sigkill_rounds(name: &str, faults: &[&str], connections: usize) {
    let Some(binary) = smtp_sink_or_skip(name) else {
        return;
    };
    let (rounds, seed) = (rounds(), seed());
    eprintln!("{name}: {rounds} rounds, RECART_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut sink = Sink::start(&binary, faults);
    let carts = rounds * (3 * connections + 4);
    let t = sending_shop(carts, &sink, connections);
    let mut killed = 0;
    for round in 0..rounds {
        let limit = connections as u64 + rng.below(2 * connections as u64 + 4);
        let mut child = t.spawn(&["run", "--now", NOW, "--limit", &limit.to_string()]);
        let delay = Duration::from_millis(50 + rng.below(2000));
        if let Some(status) = wait_or_timeout(&mut child, delay) {
            assert!(
                matches!(status.code(), Some(0 | 3 | 6)),
                "round {round}: recart exited {status:?} unkilled (seed {seed})"
            );
            continue;
        }
        child.kill().expect("SIGKILL recart");
        child.wait().unwrap();
        killed += 1;
        let before = count(&t, "unknown");
        let settle = t.recart(&["run", "--now", NOW, "--limit", "0"]);
        assert!(
            matches!(settle.status, 0 | 6),
            "round {round}: {settle:?} (seed {seed})"
        );
        let unknown = count(&t, "unknown") - before;
        assert!(
            unknown <= connections,
            "round {round}: {unknown} unknown after a kill with {connections} connections (seed {seed}): {}",
            settle.stderr
        );
        assert_eq!(count(&t, "claimed"), 0, "round {round} (seed {seed})");
    }
    eprintln!("{name}: {killed} of {rounds} rounds killed");
    assert_every_cart_received_once_or_unknown(&t, &mut sink, carts, seed);
}

#[test]
fn sigkill_with_1_connection_and_slow_data() {
    sigkill_rounds("sigkill_with_1_connection_and_slow_data", &["-w", "1"], 1);
}

#[test]
fn sigkill_with_4_connections_and_slow_data() {
    sigkill_rounds("sigkill_with_4_connections_and_slow_data", &["-w", "1"], 4);
}

#[test]
fn sigkill_with_16_connections_and_slow_data() {
    sigkill_rounds(
        "sigkill_with_16_connections_and_slow_data",
        &["-w", "1"],
        16,
    );
}

#[test]
fn sigkill_with_1_connection_and_sometimes_slow_data() {
    let faults = ["-W", "DATA:1:30"];
    sigkill_rounds(
        "sigkill_with_1_connection_and_sometimes_slow_data",
        &faults,
        1,
    );
}

#[test]
fn sigkill_with_4_connections_and_sometimes_slow_data() {
    let faults = ["-W", "DATA:1:30"];
    sigkill_rounds(
        "sigkill_with_4_connections_and_sometimes_slow_data",
        &faults,
        4,
    );
}

#[test]
fn sigkill_with_16_connections_and_sometimes_slow_data() {
    let faults = ["-W", "DATA:1:30"];
    sigkill_rounds(
        "sigkill_with_16_connections_and_sometimes_slow_data",
        &faults,
        16,
    );
}

/// Rounds of: a run sent SIGTERM at a random moment. It finishes what is
/// on the wire, records it, releases the rest and exits 5; nothing is left
/// `unknown` or `claimed`, and the next runs send every cart once.
#[test]
fn sigterm_drains_and_leaves_nothing_unknown() {
    let name = "sigterm_drains_and_leaves_nothing_unknown";
    let Some(binary) = smtp_sink_or_skip(name) else {
        return;
    };
    let (rounds, seed) = (rounds(), seed());
    eprintln!("{name}: {rounds} rounds, RECART_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let connections = 4;
    let mut sink = Sink::start(&binary, &["-w", "1"]);
    let carts = rounds * 16;
    let t = sending_shop(carts, &sink, connections);
    let mut stopped = 0;
    for round in 0..rounds {
        let limit = 4 + rng.below(12);
        let mut child = t.spawn(&["run", "--now", NOW, "--limit", &limit.to_string()]);
        let delay = Duration::from_millis(100 + rng.below(1500));
        if wait_or_timeout(&mut child, delay).is_some() {
            continue;
        }
        let status = crate::harness::sigterm(&mut child);
        // It may have ended on its own just before the signal.
        assert!(
            matches!(status.code(), Some(0 | 3 | 5)),
            "round {round}: {status:?} after SIGTERM (seed {seed})"
        );
        stopped += u32::from(status.code() == Some(5));
        assert_eq!(
            count(&t, "claimed"),
            0,
            "round {round}: claims left (seed {seed})"
        );
        assert_eq!(
            count(&t, "unknown"),
            0,
            "round {round}: unknown left (seed {seed})"
        );
    }
    eprintln!("{name}: {stopped} of {rounds} rounds stopped by SIGTERM");
    assert_every_cart_received_once_or_unknown(&t, &mut sink, carts, seed);
    assert_eq!(count(&t, "unknown"), 0);
}

/// Plants a claim of run `run_id` on the 1h step of `cart`, as a run
/// that died would leave it.
fn plant_claim(t: &Test, cart: &str, run_id: i64) {
    let n = cart.strip_prefix("F-").unwrap();
    let claimed_at = chrono::DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .timestamp()
        - 60;
    t.store()
        .conn()
        .execute(
            "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts, claimed_at)
             VALUES (?1, '1h', ?2, ?2, 'claimed', ?3, 1, ?4)",
            rusqlite::params![cart, format!("f{n}@example.com"), run_id, claimed_at],
        )
        .unwrap();
}

/// A dead run's claims are settled from its journal: one it never handed
/// over is released (and sent now), one it was handing over is `unknown`,
/// one whose answer it recorded gets it, and a run without a journal (or
/// from another boot) leaves its claims `unknown`. The run says so: exit 6
/// and the figures in its summary.
#[test]
fn a_dead_runs_claims_are_settled_from_its_journal_and_the_run_says_so() {
    let Some(binary) = smtp_sink_or_skip("a_dead_runs_claims_are_settled_from_its_journal") else {
        return;
    };
    let mut sink = Sink::start(&binary, &[]);
    let t = sending_shop(5, &sink, 1);
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    std::fs::create_dir_all(t.join("recart.db.handover")).unwrap();
    std::fs::write(
        t.join("recart.db.handover/run-90"),
        format!(
            "[\"boot\",\"{}\"]\n[\"handing-over\",\"F-00001\",\"1h\",\"<m1>\"]\n\
             [\"handing-over\",\"F-00002\",\"1h\",\"<m2>\"]\n\
             [\"outcome\",\"F-00002\",\"1h\",\"sent\",\"\"]\n",
            boot.trim()
        ),
    )
    .unwrap();
    for cart in ["F-00000", "F-00001", "F-00002"] {
        plant_claim(&t, cart, 90);
    }
    plant_claim(&t, "F-00003", 91); // no journal: unknown
    let out = t.recart(&["run", "--now", NOW]);
    out.expect_status(6).expect_stderr_contains(
        "an earlier run died: of its claims 1 released (due again), 1 recorded from its \
         hand-over journal, 2 unknown",
    );
    let book = ledger(&t);
    let state = |cart: &str| book[&(cart.to_string(), "1h".to_string())].clone();
    assert_eq!(state("F-00000"), "sent", "released, then sent by this run");
    assert_eq!(state("F-00001"), "unknown");
    assert_eq!(state("F-00002"), "sent", "from the journal");
    assert_eq!(state("F-00003"), "unknown");
    assert_eq!(state("F-00004"), "sent");
    let received: BTreeSet<_> = keys(&sink.wait_for(2)).into_iter().map(|k| k.0).collect();
    assert_eq!(
        received,
        BTreeSet::from(["F-00000".into(), "F-00004".into()])
    );
    assert!(
        !t.exists("recart.db.handover/run-90"),
        "a settled run's journal is deleted"
    );
    // Nothing left to settle: an ordinary exit.
    t.recart(&["run", "--now", NOW]).expect_success();
    sink.stop();
}

/// `unknown list` shows what may or may not have gone out; `--resend-unknown`
/// sends it right away (its own claim does not count against the
/// cooldown), limited to a claim-time range; `mark-sent` and `resend`
/// settle one mail by hand.
#[test]
fn unknown_mails_are_listed_settled_by_hand_and_resent_right_after_a_crash() {
    let Some(binary) = smtp_sink_or_skip("unknown_mails_are_listed") else {
        return;
    };
    let mut sink = Sink::start(&binary, &[]);
    let t = sending_shop(4, &sink, 1);
    for (cart, run) in [("F-00000", 80), ("F-00001", 81), ("F-00002", 82)] {
        plant_claim(&t, cart, run);
    }
    t.recart(&["run", "--now", NOW, "--limit", "0"])
        .expect_status(6);
    let list = t.recart(&["unknown", "list", "--json"]);
    list.expect_success();
    let listed: Vec<String> = list
        .json_lines()
        .iter()
        .map(|line| line["cart_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ["F-00000", "F-00001", "F-00002"]);

    t.recart(&["unknown", "mark-sent", "F-00000", "1h"])
        .expect_success();
    t.recart(&["unknown", "mark-sent", "F-00000", "1h"])
        .expect_status(2)
        .expect_stderr_contains("no unknown send");
    // Claimed a minute before NOW: a range after that resends nothing.
    let later = t.recart(&[
        "run",
        "--json",
        "--now",
        NOW,
        "--resend-unknown",
        "--unknown-since",
        "2026-11-21T13:00:00Z",
    ]);
    later.expect_success();
    assert_eq!(
        crate::harness::carts_with(&later.decisions(), "sent"),
        ["F-00003"]
    );
    // Right after the crash, well within the 20h cooldown.
    let resent = t.recart(&["run", "--json", "--now", NOW, "--resend-unknown"]);
    resent.expect_success();
    assert_eq!(
        crate::harness::carts_with(&resent.decisions(), "sent"),
        ["F-00001", "F-00002"]
    );
    t.recart(&["unknown", "list"]).expect_success();
    assert_eq!(count(&t, "unknown"), 0);
    assert_eq!(count(&t, "sent"), 4);
    sink.wait_for(3);
    sink.stop();
}
