//! The operator's view: preview gallery (in a real browser), report,
//! runs, check, logs, prune and forget, completions and man page.

use std::path::Path;
use std::process::Command;

use crate::{
    fixtures::{ADA, Config, GRACE, NOW, Transport, shop},
    harness::{Test, carts_with, mail_file},
};

/// A tool some tests need: present, or (outside CI) the test is skipped.
pub(crate) fn tool(name: &str) -> Option<String> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required in CI (.ci/run installs it)"
        );
        eprintln!("skipped: {name} is not installed");
    }
    found
}

pub(crate) fn artefacts() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_preview_gallery_opens_from_disk_in_a_browser() {
    let t = shop(&Config::new(Transport::File));
    let out = t.recart(&[
        "run",
        "--dry-run",
        "--json",
        "--preview",
        "preview",
        "--now",
        NOW,
    ]);
    out.expect_success();
    let planned = carts_with(&out.decisions(), "send");
    assert_eq!(planned.len(), 2);
    assert!(!t.exists("outbox"), "a dry run delivers nothing");
    let index = t.join("preview/index.html");
    assert!(index.exists());
    for cart in &planned {
        assert!(t.exists(mail_file("preview", cart, "1h", "eml")), "{cart}");
        assert!(t.exists(mail_file("preview", cart, "1h", "html")), "{cart}");
    }
    let page = t.read("preview/index.html");
    assert!(page.contains(ADA) && page.contains(GRACE));
    assert!(page.contains("no-consent") && page.contains("not-due"));

    let Some(chromium) = tool("chromium") else {
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let browser = |extra: &[&str]| {
        let mut command = Command::new(&chromium);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--allow-file-access-from-files",
        ]);
        command.arg(format!("--user-data-dir={}", profile.path().display()));
        command.args(extra);
        command.arg(format!("file://{}", index.display()));
        command.output().expect("chromium runs")
    };
    // The page as the browser built it: every planned mail is a row.
    let dom = browser(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("class=\"mail\"").count(),
        planned.len(),
        "{dom}"
    );
    assert!(dom.contains("2 mails planned"), "{dom}");
    let shot = artefacts().join("preview-index.png");
    let _ = std::fs::remove_file(&shot);
    browser(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1200,900",
    ]);
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}

#[test]
fn report_counts_sends_skips_and_recovered_revenue_per_currency() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&["run", "--now", NOW]).expect_success();
    // Ada (EUR) orders a day later: recovered. Grace (USD) orders 6 days
    // later: outside the 5-day window.
    t.write(
        "orders.csv",
        "order_id,email,cart_id,total,currency,created_at\n\
         O-1,ada.lovelace@example.com,,87.00,EUR,2026-11-22T12:00:00Z\n\
         O-2,grace.hopper@example.com,,80.00,USD,2026-11-27T12:30:00Z\n",
    );
    t.recart(&["import", "orders.csv"]).expect_success();
    let out = t.recart(&["report", "--json", "--now", "2026-11-28T00:00:00Z"]);
    out.expect_success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let first = &report["steps"][0];
    assert_eq!(first["step"], "1h");
    assert_eq!(first["sent"], 2);
    assert_eq!(first["skipped"]["no-consent"], 1);
    assert_eq!(report["total"]["recovered_carts"], 1);
    assert_eq!(report["total"]["recovered_revenue"]["EUR"], "87.00");
    assert!(report["total"]["recovered_revenue"].get("USD").is_none());
    assert_eq!(report["reminded_carts"], 2);

    let table = t.recart(&[
        "report",
        "--now",
        "2026-11-28T00:00:00Z",
        "--html",
        "report.html",
    ]);
    table.expect_success();
    table.expect_stdout_contains("recovery rate 50.0% (1 of 2 reminded carts)");
    let html = t.read("report.html");
    assert!(html.contains("<svg") && !html.contains("<script"));
    let csv = t.recart(&["report", "--csv", "--now", "2026-11-28T00:00:00Z"]);
    csv.expect_stdout_contains("total,,recovered_revenue,EUR,87.00");

    let runs = t.recart(&["runs", "--json"]);
    runs.expect_success();
    assert_eq!(runs.json_lines().len(), 1);
    assert_eq!(runs.json_lines()[0]["sent"], 2);
}

#[test]
fn check_names_a_typo_and_an_undefined_template_variable() {
    let t = shop(&Config::new(Transport::File));
    let config = t.read("recart.toml");
    t.write(
        "recart.toml",
        format!("{config}\n[report]\nattribution_windw = \"5d\"\n"),
    );
    let out = t.recart(&["check"]);
    out.expect_status(2);
    out.expect_stderr_contains("attribution_windw");
    out.expect_stderr_contains("did you mean `attribution_window`?");

    t.write("recart.toml", &config);
    t.recart(&["check"]).expect_success();
    let html = t.read("templates/reminder.html");
    t.write(
        "templates/reminder.html",
        html.replacen("{{ customer.first_name }}", "{{ customer.frist_name }}", 1),
    );
    let out = t.recart(&["check"]);
    out.expect_status(2);
    out.expect_stderr_contains("reminder.html");
    out.expect_stderr_contains("line ");
    out.expect_stderr_contains("frist_name");
}

#[test]
fn logs_can_be_json_quiet_or_verbose() {
    let t = shop(&Config::new(Transport::File));
    let out = t.recart(&["--log-format", "json", "run", "--dry-run", "--now", NOW]);
    out.expect_success();
    let line: serde_json::Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(line["event"], "dry-run");
    assert_eq!(line["would_send"], 2);
    // Alan's 1h step passed over, his 24h step held back.
    assert_eq!(line["skipped_by_reason"]["no-consent"], 2);
    let quiet = t.recart(&["-q", "run", "--dry-run", "--now", NOW]);
    quiet.expect_success();
    assert_eq!(quiet.stderr.trim(), "");
    let verbose = t.recart(&["-v", "run", "--dry-run", "--now", NOW]);
    verbose.expect_stderr_contains("carts.csv: 7 rows read");
}

/// Everything in the store as text, the way `sqlite3 .dump` prints it.
fn dump(t: &Test) -> String {
    if let Some(sqlite3) = tool("sqlite3") {
        let output = Command::new(sqlite3)
            .arg(t.join("recart.db"))
            .arg(".dump")
            .output()
            .unwrap();
        return String::from_utf8_lossy(&output.stdout).to_lowercase();
    }
    let store = t.store();
    let tables: Vec<String> = {
        let mut query = store
            .conn()
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap();
        query
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    tables
        .iter()
        .flat_map(|table| store.dump(table))
        .collect::<Vec<_>>()
        .join("\n")
        .to_lowercase()
}

#[test]
fn forget_leaves_no_trace_and_a_reimport_is_never_mailed() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&["run", "--now", NOW]).expect_success();
    t.write(
        "orders.csv",
        "order_id,email,cart_id,total,currency,created_at\n\
         O-1,Ada.Lovelace@example.com,,87.00,EUR,2026-11-22T12:00:00Z\n",
    );
    t.recart(&["import", "orders.csv"]).expect_success();
    t.recart(&["suppress", "add", ADA]).expect_success();
    assert!(dump(&t).contains("ada.lovelace"));

    let out = t.recart(&["forget", "ADA.LOVELACE@example.com"]);
    out.expect_success();
    let after = dump(&t);
    assert!(!after.contains("ada.lovelace"), "{after}");
    assert!(!after.contains("lovelace"), "{after}");

    // Her cart comes back in a later export, newer: not stored again, so
    // never mailed (privacy.rs has the details).
    let csv = t
        .read("carts.csv")
        .replace("2026-11-21T09:30:00Z", "2026-11-23T09:30:00Z");
    t.write("carts.csv", csv);
    let decisions = t
        .recart(&["run", "--json", "--now", "2026-11-23T12:00:00Z"])
        .decisions();
    assert!(
        decisions.iter().all(|d| d.cart_id != "C-1001"),
        "{decisions:?}"
    );
    assert!(!dump(&t).contains("lovelace"));
}

#[test]
fn prune_deletes_old_carts_and_orders_and_keeps_anonymous_counts() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&["run", "--now", NOW]).expect_success();
    let out = t.recart(&[
        "prune",
        "--older-than",
        "90d",
        "--now",
        "2027-03-01T00:00:00Z",
    ]);
    out.expect_success();
    out.expect_stdout_contains("5 carts");
    let after = dump(&t);
    for address in ["ada.lovelace", "grace.hopper", "alan.turing"] {
        assert!(!after.contains(address), "{address} left: {after}");
    }
    // The counts stay: the report still shows what was sent.
    let report = t.recart(&[
        "report",
        "--json",
        "--since",
        "2026-11-01T00:00:00Z",
        "--now",
        "2026-11-30T00:00:00Z",
    ]);
    let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(report["steps"][0]["sent"], 2);
}

#[test]
fn completions_and_man_page_come_from_the_cli_definitions() {
    let t = Test::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = t.recart(&["completions", shell]);
        out.expect_success();
        out.expect_stdout_contains("recart");
        out.expect_stdout_contains("forget");
    }
    let man = t.recart(&["man"]);
    man.expect_success();
    man.expect_stdout_contains(".TH recart 1");
}

#[test]
fn check_smtp_greets_the_relay_and_sends_nothing() {
    let server = crate::smtp_server::SmtpServer::start();
    let t = shop(&Config::new(Transport::Smtp(server.port())));
    let out = t.recart(&["check", "--smtp"]);
    out.expect_success();
    out.expect_stdout_contains(&format!("SMTP 127.0.0.1:{}: connected", server.port()));
    assert_eq!(server.connections(), 1);
    assert!(server.messages().is_empty());

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let t = shop(&Config::new(Transport::Smtp(closed)));
    let out = t.recart(&["check", "--smtp"]);
    out.expect_status(1);
    out.expect_stderr_contains(&format!("127.0.0.1:{closed}"));
}
