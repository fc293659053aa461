//! Delivery under faults, against Postfix's real `smtp-sink(1)` on a loopback
//! port: soft and hard bounces, a server that goes away mid-run, two
//! overlapping runs, and runs killed with SIGKILL at random points.
//!
//! smtp-sink dumps every message it accepted (after the final ".") into a
//! file of its own; a transaction the client abandons leaves no file. A
//! mail is identified by its Message-ID header, which recart derives from
//! (cart, step), so a duplicate in the dumps is a reminder sent twice.
//!
//! Without smtp-sink these tests print a note and pass, unless `CI` is set:
//! then they fail.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    net::{TcpListener, TcpStream},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime},
};

use tempfile::TempDir;

use crate::{
    fixtures::{ADA, Config, GRACE, NOW, Transport, shop},
    harness::{Output, Test, carts_with},
};

mod bounces;
mod disconnects;
mod overlap;

// ---------------------------------------------------------------- the sink

/// A running smtp-sink, killed on drop; its dumps outlive it until the
/// `Sink` is dropped.
pub(crate) struct Sink {
    child: Option<Child>,
    port: u16,
    /// Holds `dump/` (one file per accepted message) and `sink.log`.
    dir: TempDir,
}

impl Dumped {
    /// The envelope's recipients, lower-cased.
    pub(crate) fn recipients(&self) -> &[String] {
        &self.recipients
    }
}

/// One message in smtp-sink's dump directory.
#[derive(Debug, Clone)]
pub(crate) struct Dumped {
    file: PathBuf,
    recipients: Vec<String>,
    message_id: Option<String>,
    /// The whole message is there (its multipart's closing boundary). A
    /// sink that terminates (`-M`) flushes the dumps of transactions other
    /// sessions had in progress, cut short: those it never accepted.
    complete: bool,
}

fn smtp_sink_path() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("smtp-sink"))
                .collect()
        })
        .unwrap_or_default();
    candidates.push("/usr/sbin/smtp-sink".into());
    candidates.push("/usr/lib/postfix/sbin/smtp-sink".into());
    candidates.into_iter().find(|p| p.is_file())
}

/// smtp-sink, or `None` after a skip note when it is not installed; in CI
/// (`CI` set) its absence fails the test.
#[track_caller]
pub(crate) fn smtp_sink_or_skip(test: &str) -> Option<PathBuf> {
    let path = smtp_sink_path();
    if path.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: smtp-sink is not installed (apt-get install postfix); required when CI is set"
        );
        eprintln!("note: skipping {test}: smtp-sink not found (apt-get install postfix)");
    }
    path
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Sink {
    /// Starts smtp-sink with `faults` (its own switches) on a free loopback
    /// port, dumping each accepted message to a file.
    pub(crate) fn start(binary: &Path, faults: &[&str]) -> Sink {
        let dir = tempfile::Builder::new()
            .prefix("recart-sink-")
            .tempdir()
            .expect("sink tempdir");
        let dump = dir.path().join("dump");
        fs::create_dir(&dump).unwrap();
        // As root smtp-sink runs as nobody, who must reach and write the
        // dump directory.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&dump, fs::Permissions::from_mode(0o777)).unwrap();

        let mut last_log = String::new();
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let log = fs::File::create(dir.path().join("sink.log")).unwrap();
            let mut command = Command::new(binary);
            if is_root() {
                command.args(["-u", "nobody"]);
            }
            command
                .args(faults)
                .arg("-d")
                .arg(format!("{}/%M.", dump.display()))
                .arg(format!("127.0.0.1:{port}"))
                .arg("256")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            let mut child = command.spawn().expect("spawn smtp-sink");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sink {
                        child: Some(child),
                        port,
                        dir,
                    };
                }
                thread::sleep(Duration::from_millis(20));
            }
            child.kill().ok();
            child.wait().ok();
            last_log = fs::read_to_string(dir.path().join("sink.log")).unwrap_or_default();
        }
        panic!("could not start smtp-sink {faults:?}: {last_log}");
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Whether the sink process has exited (e.g. after `-M`).
    pub(crate) fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().unwrap().is_some(),
            None => true,
        }
    }

    pub(crate) fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.dir.path().join("dump"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    /// Every message accepted so far.
    pub(crate) fn messages(&self) -> Vec<Dumped> {
        self.dumps().into_iter().filter(|m| m.complete).collect()
    }

    /// Every dump, including transactions cut short or in flight.
    pub(crate) fn dumps(&self) -> Vec<Dumped> {
        self.files().iter().filter_map(|f| parse_dump(f)).collect()
    }

    /// Waits until the dumps have not changed for `quiet` and, while the
    /// sink runs, none is in flight (at most 15 s). smtp-sink creates a
    /// transaction's dump at DATA and writes it as the message comes; a
    /// delayed answer (`-W`, a random multiple of its delay) can keep it
    /// half-written for seconds before it is finished, or deleted because
    /// the client went away without ".". Returns every accepted message.
    pub(crate) fn settle(&mut self, quiet: Duration) -> Vec<Dumped> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = self.snapshot();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            let now = self.snapshot();
            if now != seen {
                seen = now;
                since = Instant::now();
                continue;
            }
            let in_flight = !self.exited() && self.dumps().iter().any(|m| !m.complete);
            if since.elapsed() >= quiet && !in_flight {
                break;
            }
        }
        self.messages()
    }

    /// Each dump's name and size.
    pub(crate) fn snapshot(&self) -> Vec<(PathBuf, u64)> {
        self.files()
            .into_iter()
            .map(|f| {
                let size = fs::metadata(&f).map_or(0, |m| m.len());
                (f, size)
            })
            .collect()
    }

    /// Waits (up to 10 s) until at least `n` messages are accepted.
    pub(crate) fn wait_for(&self, n: usize) -> Vec<Dumped> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let messages = self.messages();
            if messages.len() >= n || Instant::now() >= deadline {
                return messages;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// None if the sink deleted the dump since it was listed (a transaction
/// abandoned without ".").
fn parse_dump(file: &Path) -> Option<Dumped> {
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{}: {e}", file.display()),
    };
    let mut recipients = Vec::new();
    let mut message_id = None;
    let mut boundary = None;
    for line in text.lines() {
        if line.is_empty() {
            break; // end of the headers
        }
        if let Some((_, rest)) = line.split_once("boundary=") {
            boundary = Some(rest.trim().trim_matches('"').to_string());
        }
        if let Some(args) = line.strip_prefix("X-Rcpt-Args: ") {
            let address = args.split_whitespace().next().unwrap_or("");
            recipients.push(address.trim_matches(['<', '>']).to_ascii_lowercase());
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("message-id")
            && message_id.is_none()
        {
            message_id = Some(value.trim().to_string());
        }
    }
    let complete = boundary.is_some_and(|b| text.contains(&format!("--{b}--")));
    Some(Dumped {
        file: file.to_path_buf(),
        recipients,
        message_id,
        complete,
    })
}

/// The Message-ID recart gives the mail of (cart, step) from the tests'
/// sender.
fn message_id(cart_id: &str, step: &str) -> String {
    let from = "Shop <hello@shop.example>".parse().unwrap();
    recart::deliver::message_id(cart_id, step, &from)
}

/// Message-ID → how many times the sinks accepted it; panics on a dump
/// without one.
fn tally(messages: &[Dumped]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for m in messages {
        let id = m
            .message_id
            .clone()
            .unwrap_or_else(|| panic!("{}: no Message-ID", m.file.display()));
        *counts.entry(id).or_default() += 1;
    }
    counts
}

#[track_caller]
pub(crate) fn assert_no_duplicates(messages: &[Dumped]) {
    let twice: Vec<_> = tally(messages)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "{} reminder(s) received more than once (Message-ID, count): {twice:?}",
        twice.len()
    );
}

// ---------------------------------------------------------------- shops

/// The shop of the other tests, sending to `port` over `connections`.
pub(crate) fn config(port: u16, connections: usize) -> String {
    Config::new(Transport::Smtp(port)).to_toml().replace(
        "tls = \"none\"\n",
        &format!("tls = \"none\"\nconnections = {connections}\n"),
    )
}

/// Points the shop's config at another sink.
fn retarget(t: &Test, port: u16, connections: usize) {
    t.write("recart.toml", config(port, connections));
}

/// `n` open carts with consent, all due for the 1h step at `NOW` (idle
/// 2 hours), one item each: ids `F-00000`.., addresses `f00000@example.com`..
fn cart_of(address: &str) -> String {
    let digits = address
        .strip_prefix('f')
        .and_then(|a| a.strip_suffix("@example.com"))
        .unwrap_or_else(|| panic!("not a generated address: {address}"));
    format!("F-{digits}")
}

/// A shop of `n` generated carts, imported, sending to `port`.
pub(crate) fn big_shop(n: usize, port: u16, connections: usize) -> Test {
    let t = shop(&Config::new(Transport::Smtp(port)))
        .file("recart.toml", config(port, connections))
        .file("carts.csv", crate::fixtures::many_carts(n));
    t.recart(&["import", "carts.csv"]).expect_success();
    t
}

/// `(cart_id, step) → state` of the ledger.
pub(crate) fn ledger(t: &Test) -> BTreeMap<(String, String), String> {
    t.store()
        .sends()
        .into_iter()
        .map(|s| ((s.cart_id, s.step), s.state))
        .collect()
}

pub(crate) fn states(ledger: &BTreeMap<(String, String), String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for state in ledger.values() {
        *counts.entry(state.clone()).or_default() += 1;
    }
    counts
}

/// The (cart, step) of every dumped message, checked against the
/// Message-ID recart derives from it; the generated shops send only the 1h
/// step at `NOW`.
pub(crate) fn keys(messages: &[Dumped]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| {
            assert_eq!(m.recipients.len(), 1, "{m:?}");
            let cart = cart_of(&m.recipients[0]);
            assert_eq!(
                m.message_id.as_deref(),
                Some(message_id(&cart, "1h").as_str()),
                "{m:?}"
            );
            (cart, "1h".to_string())
        })
        .collect()
}

/// `--now` plus `minutes`.
pub(crate) fn now_plus(minutes: i64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339(NOW).unwrap();
    (base + chrono::TimeDelta::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------- crashes

/// A small xorshift generator: reproducible from the seed it prints.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Rounds of: start `recart run` against a slow sink, SIGKILL it at a
/// random moment, start it again. Whatever the moment, the sink never gets
/// a (cart, step) twice, and everything it got is `sent` or `unknown`.
///
/// `RECART_CRASH_ROUNDS` (default 20) and `RECART_CRASH_SEED` are knobs;
/// `scripts/crash-test --rounds N --seed N` sets them.
#[test]
fn killing_runs_at_random_points_never_sends_twice() {
    let Some(binary) = smtp_sink_or_skip("killing_runs_at_random_points_never_sends_twice") else {
        return;
    };
    let rounds: usize = std::env::var("RECART_CRASH_ROUNDS")
        .ok()
        .map_or(20, |v| v.parse().expect("RECART_CRASH_ROUNDS: a number"));
    let seed: u64 = std::env::var("RECART_CRASH_SEED").ok().map_or_else(
        || {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap();
            // The nanoseconds since the epoch, modulo 2^64: their low bits
            // are what differs from one run to the next.
            now.as_secs()
                .wrapping_mul(1_000_000_000)
                .wrapping_add(u64::from(now.subsec_nanos()))
                | 1
        },
        |v| v.parse().expect("RECART_CRASH_SEED: a number"),
    );
    eprintln!("crash test: {rounds} rounds, RECART_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    // Slow, and unevenly so: the answers to DATA and to the final "." each
    // take 0 s (70 %), 1 s (21 %), 2 s.. so kills land before, during and
    // after the hand-over, and some runs finish.
    let mut sink = Sink::start(&binary, &["-W", "DATA:1:30", "-W", ".:1:30"]);
    let carts = 20 * rounds.max(1);
    let t = big_shop(carts, sink.port(), 4);
    // Imported once: the runs go straight to sending.
    t.write(
        "recart.toml",
        config(sink.port(), 4).replace(
            "[[sources]]\npath = \"carts.csv\"\nformat = \"native\"\n",
            "",
        ),
    );

    let started = Instant::now();
    let mut finished = 0;
    for round in 0..rounds {
        // Each run sends at most --limit mails (one batch), so the rounds
        // do not use up the carts.
        let limit = 1 + rng.below(12);
        let mut child = t.spawn(&["run", "--now", NOW, "--limit", &limit.to_string()]);
        let delay = Duration::from_millis(20 + rng.below(2500));
        let deadline = Instant::now() + delay;
        let mut status = None;
        while Instant::now() < deadline {
            if let Some(s) = child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        let Some(s) = status else {
            child.kill().expect("SIGKILL recart"); // SIGKILL on Unix
            child.wait().unwrap();
            continue;
        };
        finished += 1;
        // 6: it settled what the run killed before it left.
        assert!(
            matches!(s.code(), Some(0 | 3 | 6)),
            "round {round}: recart exited {s:?} without being killed (seed {seed})"
        );
    }
    eprintln!(
        "crash test: {rounds} rounds in {:?}, {finished} finished before the kill",
        started.elapsed()
    );

    // One last run that is not killed turns the last claims unknown.
    let last = t.recart(&["run", "--now", NOW, "--limit", "1"]);
    assert!(matches!(last.status, 0 | 3 | 6), "{last:?}");
    // Let the sink finish what the killed runs left in flight.
    let messages = sink.settle(Duration::from_secs(2));
    assert!(
        sink.dumps().iter().all(|m| m.complete),
        "smtp-sink kept a message cut short"
    );
    assert_no_duplicates(&messages);
    let book = ledger(&t);
    let received = keys(&messages);
    for key in &received {
        let state = book.get(key).map(String::as_str);
        assert!(
            matches!(state, Some("sent" | "unknown")),
            "{key:?} reached the sink but is {state:?} in the ledger (seed {seed})"
        );
    }
    let received: BTreeSet<_> = received.into_iter().collect();
    for (key, state) in &book {
        assert_ne!(state, "claimed", "{key:?} still claimed (seed {seed})");
        if state == "sent" {
            assert!(
                received.contains(key),
                "{key:?} is sent but the sink never got it (seed {seed})"
            );
        }
    }
    eprintln!(
        "crash test: the sink received {} mails; ledger {:?}",
        messages.len(),
        states(&book)
    );
}
