//! `recart bounces import`: a bounce mailbox (Maildir and mbox) of
//! delivery-status and feedback reports in the shapes Postfix, Exim, Gmail
//! and Microsoft send (`tests/data/bounces/`), filled in from a real run
//! with the file transport: every outcome, its effect on the ledger and
//! the suppression list, the listing of what needs a person, and a second
//! import that counts nothing twice.

use crate::fixtures::{Config, LATER, NOW, Transport, carts_csv, shop};
use crate::harness::{Test, mail_file};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bounces");

/// A shop with `return_path` set whose first run mailed eight carts,
/// `B-1`…`B-8` (`b1@example.com`…), step 1h.
pub fn mailed_shop(config: &Config, carts: usize) -> Test {
    mailed_shop_with(config, carts, |toml| toml)
}

/// [`mailed_shop`], its `recart.toml` changed by `edit` first.
pub fn mailed_shop_with(config: &Config, carts: usize, edit: fn(String) -> String) -> Test {
    let t = shop(config);
    let toml = edit(t.read("recart.toml")).replacen(
        "from = \"Shop <hello@shop.example>\"\n",
        "from = \"Shop <hello@shop.example>\"\nreturn_path = \"bounces+{token}@shop.example\"\n",
        1,
    );
    t.write("recart.toml", toml);
    let rows: Vec<String> = (1..=carts)
        .map(|i| {
            format!(
                "B-{i},b{i}@example.com,Cust{i},en-GB,EUR,open,true,2026-11-21T08:00:00Z,\
                 2026-11-21T09:00:00Z,SKU-{i},Thing {i},Stuff,1,20.00,\
                 https://cdn.shop.example/img/{i}.jpg,https://shop.example/p/{i}"
            )
        })
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    t.write("carts.csv", carts_csv(&rows));
    t.recart(&["run", "--now", NOW]).expect_success();
    t
}

/// What the outbox tells of one mail: its envelope sender, Message-ID,
/// recipient and the whole file.
pub struct Sent {
    pub return_path: String,
    pub message_id: String,
    pub rcpt: String,
    pub original: String,
}

pub fn sent(t: &Test, cart: &str) -> Sent {
    let original = t.read(mail_file("outbox", cart, "1h", "eml"));
    let header = |name: &str| {
        original
            .split("\r\n")
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {original}"))
            .trim()
            .to_string()
    };
    let return_path = header("Return-Path:").trim_matches(['<', '>']).to_string();
    assert!(
        return_path.starts_with("bounces+") && return_path.ends_with("@shop.example"),
        "{return_path}"
    );
    Sent {
        return_path,
        message_id: header("Message-ID:").trim_matches(['<', '>']).to_string(),
        rcpt: format!("{}@example.com", cart.to_lowercase().replace('-', "")),
        original: original.replace("\r\n", "\n"),
    }
}

/// A fixture with its placeholders filled from `sent`.
pub fn fill(fixture: &str, sent: &Sent) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{fixture}"))
        .unwrap_or_else(|e| panic!("{fixture}: {e}"))
        .replace("@@RETURN_PATH@@", &sent.return_path)
        .replace("@@MESSAGE_ID@@", &sent.message_id)
        .replace("@@RCPT@@", &sent.rcpt)
        .replace("@@ORIGINAL@@", &sent.original)
}

/// mboxrd: a `From ` line (quoted or not) of a message gets one more `>`.
fn mbox_entry(from: &str, message: &str) -> String {
    let mut entry = format!("From {from} Sat Nov 21 12:00:05 2026\n");
    for line in message.lines() {
        if line.trim_start_matches('>').starts_with("From ") {
            entry.push('>');
        }
        entry.push_str(line);
        entry.push('\n');
    }
    entry.push('\n');
    entry
}

/// Which send each fixture is about (the malformed ones borrow B-3's
/// addresses).
const MAILDIR: [(&str, &str, &str); 14] = [
    ("new", "postfix-hard.eml", "B-1"),
    ("new", "exim-hard.eml", "B-2"),
    ("cur", "gmail-soft.eml", "B-3"),
    ("new", "microsoft-hard.eml", "B-4"),
    ("cur", "microsoft-arf.eml", "B-5"),
    ("new", "yahoo-arf.eml", "B-6"),
    ("new", "relayed-dsn.eml", "B-8"),
    ("new", "autoreply.eml", "B-3"),
    ("new", "dsn-without-status.eml", "B-3"),
    ("new", "arf-without-type.eml", "B-3"),
    ("new", "empty.eml", "B-3"),
    ("new", "truncated.eml", "B-3"),
    ("new", "unknown-send.eml", "B-3"),
    ("new", "forged-token.eml", "B-3"),
];

fn suppression(t: &Test, email: &str) -> Option<String> {
    t.store()
        .conn()
        .query_row(
            "SELECT reason FROM suppressions WHERE email_norm = ?1",
            [email],
            |row| row.get(0),
        )
        .ok()
}

fn state(t: &Test, cart: &str) -> String {
    t.store()
        .conn()
        .query_row(
            "SELECT state FROM sends WHERE cart_id = ?1 AND step = '1h'",
            [cart],
            |row| row.get(0),
        )
        .unwrap()
}

#[test]
fn a_bounce_mailbox_bounces_suppresses_counts_and_lists() {
    let t = mailed_shop(&Config::new(Transport::File), 8);
    for (index, (folder, fixture, cart)) in MAILDIR.iter().enumerate() {
        let flags = if *folder == "cur" { ":2,S" } else { "" };
        t.write(
            format!("Maildir/{folder}/17950000{index:02}.{fixture}.mx{flags}"),
            fill(fixture, &sent(&t, cart)),
        );
    }
    // An mbox as Postfix's local(8) delivers it: the Postfix bounce again
    // (read already) and a not-spam report.
    let mbox = mbox_entry("MAILER-DAEMON", &fill("postfix-hard.eml", &sent(&t, "B-1")))
        + &mbox_entry(
            "feedback@fbl.example.net",
            &fill("not-spam-arf.eml", &sent(&t, "B-7")),
        );
    t.write("bounces.mbox", mbox);

    let out = t.recart(&[
        "bounces",
        "import",
        "Maildir",
        "bounces.mbox",
        "--json",
        "--now",
        NOW,
    ]);
    out.expect_status(3);
    let figures: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for (outcome, count) in [
        ("hard-bounce", 3),
        ("soft-bounce", 1),
        ("complaint", 2),
        ("ignored", 2),
        ("unmatched", 2),
        ("unparsable", 5),
        ("already-processed", 1),
    ] {
        assert_eq!(figures[outcome], count, "{outcome}: {figures:#}");
    }
    // Each message that needs a person, with its file and why.
    let problems = figures["problems"].as_array().unwrap();
    let why = |fixture: &str| -> (String, String) {
        let problem = problems
            .iter()
            .find(|problem| problem["location"].as_str().unwrap().contains(fixture))
            .unwrap_or_else(|| panic!("{fixture} not listed: {figures:#}"));
        (
            problem["outcome"].as_str().unwrap().to_string(),
            problem["why"].as_str().unwrap().to_string(),
        )
    };
    for (fixture, outcome, because) in [
        (
            "autoreply",
            "unparsable",
            "not a delivery-status or feedback report",
        ),
        (
            "truncated",
            "unparsable",
            "not a delivery-status or feedback report",
        ),
        ("dsn-without-status", "unparsable", "without a Status"),
        ("arf-without-type", "unparsable", "without a Feedback-Type"),
        ("empty", "unparsable", "an empty message"),
        (
            "unknown-send",
            "unmatched",
            "no send has Message-ID <autumn-news-0042@shop.example>",
        ),
        (
            "forged-token",
            "unmatched",
            "not signed with this store's link key",
        ),
    ] {
        let (found, text) = why(fixture);
        assert_eq!(found, outcome, "{fixture}: {text}");
        assert!(text.contains(because), "{fixture}: {text}");
    }
    assert_eq!(problems.len(), 7, "{figures:#}");
    out.expect_stderr_contains("forged-token.eml.mx: unmatched: ");

    // Permanent failures: bounced and suppressed, whether matched by the
    // return path (Postfix, Microsoft) or by Message-ID alone (Exim).
    for cart in ["B-1", "B-2", "B-4"] {
        assert_eq!(state(&t, cart), "bounced", "{cart}");
        let email = format!("{}@example.com", cart.to_lowercase().replace('-', ""));
        assert_eq!(suppression(&t, &email).as_deref(), Some("hard-bounce"));
    }
    // The server's words are kept, the address in them is not (`forget`
    // does not look there).
    let reason: String = t
        .store()
        .conn()
        .query_row(
            "SELECT reason FROM sends WHERE cart_id = 'B-1'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        reason,
        "5.1.1 550 5.1.1 <address> Recipient address rejected: User unknown in virtual mailbox table"
    );
    assert_eq!(
        t.store()
            .count("SELECT count(*) FROM mail_reports WHERE detail LIKE '%@example.com%'"),
        0
    );
    // A transient failure is counted, nothing more.
    assert_eq!(state(&t, "B-3"), "sent");
    assert_eq!(suppression(&t, "b3@example.com"), None);
    // Complaints (by return path, by Message-ID): suppressed, still sent.
    for cart in ["B-5", "B-6"] {
        assert_eq!(state(&t, cart), "sent");
        let email = format!("{}@example.com", cart.to_lowercase().replace('-', ""));
        assert_eq!(suppression(&t, &email).as_deref(), Some("complaint"));
    }
    for email in ["b7@example.com", "b8@example.com"] {
        assert_eq!(suppression(&t, email), None, "{email}");
    }
    assert_eq!(t.store().count("SELECT count(*) FROM mail_reports"), 15);

    // The same mailbox again: nothing counted twice, nothing to attend to.
    let again = t.recart(&[
        "bounces",
        "import",
        "Maildir",
        "bounces.mbox",
        "--now",
        LATER,
    ]);
    again.expect_success();
    again.expect_stdout_contains("already-processed");
    again.expect_stdout_line("already-processed  16");
    assert_eq!(t.store().count("SELECT count(*) FROM mail_reports"), 15);

    // The loop closes: the next run mails none of the suppressed, and the
    // bounced step is not sent again.
    let run = t.recart(&["run", "--dry-run", "--json", "--now", LATER]);
    run.expect_success();
    let decisions = run.decisions();
    for cart in ["B-1", "B-2", "B-4", "B-5", "B-6"] {
        let decision = decisions.iter().find(|d| d.cart_id == cart).unwrap();
        assert_eq!(
            (decision.outcome.as_str(), decision.reason.as_deref()),
            ("skip", Some("suppressed")),
            "{cart}"
        );
    }
    let b3 = decisions.iter().find(|d| d.cart_id == "B-3").unwrap();
    assert_eq!(
        (b3.outcome.as_str(), b3.step.as_deref()),
        ("send", Some("24h"))
    );
}

/// A mailbox path that is no mailbox fails the command (exit 1), naming it.
#[test]
fn a_missing_mailbox_is_an_error_naming_it() {
    let t = mailed_shop(&Config::new(Transport::File), 1);
    let out = t.recart(&["bounces", "import", "no-such-maildir"]);
    out.expect_status(1);
    out.expect_stderr_contains("no-such-maildir");
    std::fs::create_dir_all(t.join("plain-dir")).unwrap();
    let out = t.recart(&["bounces", "import", "plain-dir"]);
    out.expect_status(1);
    out.expect_stderr_contains("not a Maildir");
}
