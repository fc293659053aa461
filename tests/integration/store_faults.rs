//! The store under the operator's hands: one lock however the store is
//! named, runs and imports that wait for a bulk first import, a full disk,
//! and the server's own words in what a run reports.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::faults::{Sink, big_shop, config, smtp_sink_or_skip};
use crate::fixtures::{Config, GRACE, NOW, Transport, many_carts, shop};
use crate::harness::carts_with;
use crate::smtp_server::SmtpServer;

/// Waits (polling, bounded) until `ready` holds.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A run naming the store through a symbolic link (or a path with `..`)
/// is refused while a run holds it under its own name: the lock is the
/// store file's.
#[test]
fn a_store_named_through_a_symlink_or_another_path_is_one_store() {
    let Some(binary) = smtp_sink_or_skip("a_store_named_through_a_symlink_or_another_path") else {
        return;
    };
    // Every DATA answered after a second: the first run is still sending.
    let sink = Sink::start(&binary, &["-w", "1"]);
    let t = big_shop(40, sink.port(), 1);
    std::fs::create_dir(t.join("other")).unwrap();
    std::os::unix::fs::symlink(t.join("recart.db"), t.join("other/linked.db")).unwrap();
    let first = config(sink.port(), 1);
    t.write(
        "other/recart.toml",
        first
            .replace("path = \"recart.db\"", "path = \"linked.db\"")
            .replace("dir = \"templates\"", "dir = \"../templates\"")
            .replace("path = \"carts.csv\"", "path = \"../carts.csv\""),
    );
    t.write(
        "dotted.toml",
        first.replace("path = \"recart.db\"", "path = \"other/../recart.db\""),
    );
    let mut running = t.spawn(&["run", "--now", NOW]);
    wait_until("the first run's claims", || {
        t.store()
            .count("SELECT count(*) FROM sends WHERE state = 'claimed'")
            > 0
    });
    for config in ["other/recart.toml", "dotted.toml"] {
        let second = t.recart(&["--config", config, "run", "--now", NOW]);
        second
            .expect_status(4)
            .expect_stderr_contains("another recart run holds");
    }
    running.kill().unwrap();
    running.wait().unwrap();
    // The killed run's claims were not touched by the refused ones: the
    // next run settles them from its journal.
    let next = t.recart(&["run", "--now", NOW, "--limit", "0"]);
    assert!(matches!(next.status, 6), "{next:?}");
}

/// A run while a bulk first import holds the store waits for it (30 s,
/// or with `--wait` as long as it takes) instead of failing with
/// "database is locked"; a second import waits too.
#[test]
fn a_run_and_an_import_during_a_bulk_first_import_wait_for_it() {
    let t = shop(&Config::new(Transport::File)).file("big.csv", many_carts(60_000));
    let mut import = t.spawn(&["import", "big.csv"]);
    // The rollback journal exists while the bulk load holds the store.
    wait_until("the bulk load", || t.exists("recart.db-journal"));
    let run = t.recart(&["run", "--now", NOW, "--limit", "1"]);
    assert!(matches!(run.status, 0), "{run:?}");
    t.recart(&["run", "--wait", "--now", NOW, "--limit", "1"])
        .expect_success();
    let second = t.recart(&["import", "carts.csv"]);
    second.expect_success();
    assert!(import.wait().unwrap().success());
    assert!(t.store().count("SELECT count(*) FROM carts") >= 60_000);
}

/// Mounts a tmpfs of `size` at `dir`; None (after a note) where this
/// process may not.
fn small_disk(dir: &Path, size: &str) -> Option<Unmount> {
    std::fs::create_dir_all(dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        eprintln!("note: skipping a full-disk case: cannot mount a tmpfs here (needs root)");
        return None;
    }
    Some(Unmount(dir.to_path_buf()))
}

/// Unmounts on drop.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The outbox fills up: the run stops handing mails over, records what it
/// wrote, leaves no partial file and no claim; the rest stays due.
#[test]
fn a_full_disk_stops_the_run_with_nothing_stranded() {
    let t = shop(&Config::new(Transport::File)).file("carts.csv", many_carts(40));
    let Some(_disk) = small_disk(&t.join("outbox"), "40k") else {
        return;
    };
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(1)
        .expect_stderr_contains("No space left on device");
    let sent = carts_with(&out.decisions(), "sent");
    let files: Vec<_> = std::fs::read_dir(t.join("outbox"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!sent.is_empty() && sent.len() < 40, "{sent:?}");
    assert_eq!(files.len(), sent.len(), "{files:?}");
    assert!(
        files
            .iter()
            .all(|name| Path::new(name).extension().is_some_and(|e| e == "eml")),
        "{files:?}"
    );
    let store = t.store();
    assert_eq!(
        store.count("SELECT count(*) FROM sends WHERE state = 'claimed'"),
        0
    );
    assert_eq!(store.sends_in("sent").len(), sent.len());
    assert_eq!(
        store.count("SELECT count(*) FROM sends WHERE state <> 'sent'"),
        0,
        "the rest is due, not in the ledger"
    );
}

/// The store's disk fills up during an import after some batches were
/// committed: their figures are printed, and the failure named once.
#[test]
fn a_full_disk_during_an_import_names_what_was_stored_and_the_failure_once() {
    let t = shop(&Config::new(Transport::File)).file("big.csv", many_carts(20_000));
    std::fs::create_dir(t.join("disk")).unwrap();
    let Some(_disk) = small_disk(&t.join("disk"), "1200k") else {
        return;
    };
    t.write(
        "recart.toml",
        Config::new(Transport::File)
            .to_toml()
            .replace("path = \"recart.db\"", "path = \"disk/recart.db\""),
    );
    // A first import into an empty store is one transaction: stored first,
    // so that the big file is read batch by batch.
    t.recart(&["import", "carts.csv"]).expect_success();
    let out = t.recart(&["import", "big.csv"]);
    out.expect_status(1);
    assert!(
        out.stdout.contains("carts upserted") && out.stdout.contains("before the store failed"),
        "{out:?}"
    );
    assert_eq!(
        out.stderr.matches("database or disk is full").count(),
        1,
        "{}",
        out.stderr
    );
}

/// A 421 (the server closing down) keeps the server's own text in what
/// the run reports.
#[test]
fn a_421_keeps_the_servers_words() {
    let server = SmtpServer::start();
    server.reply_to_rcpt(
        GRACE,
        "421 4.3.2 Shutting down for maintenance, back at 13:00",
    );
    let t = shop(&Config::new(Transport::Smtp(server.port())));
    let out = t.recart(&["run", "--json", "--now", NOW]);
    let grace: Vec<_> = out
        .decisions()
        .into_iter()
        .filter(|d| d.cart_id == "C-1002")
        .collect();
    assert_eq!(grace.len(), 1, "{out:?}");
    let reason = grace[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("Shutting down for maintenance, back at 13:00"),
        "{reason}"
    );
}
