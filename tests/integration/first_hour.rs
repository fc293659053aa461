//! The first hour of an operator: installing (man pages, systemd units),
//! scheduling (a run from cron is quiet unless something needs a person)
//! and switching on (no flood of reminders for carts idle from before).

use std::path::Path;

use clap::CommandFactory as _;

use crate::fixtures::{CARTS_CSV, Config, LATER, NOW, SECRET, SECRET_ENV, Transport, shop};
use crate::harness::Test;

/// `recart man --dir DIR`: a page per subcommand, nested ones too, each
/// naming every option of its command.
#[test]
fn man_dir_writes_a_page_per_subcommand_that_names_its_options() {
    fn check(command: &clap::Command, name: &str, t: &Test, pages: &mut usize) {
        let page = t.read(format!("man1/{name}.1"));
        *pages += 1;
        for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(page.contains(&roff), "{name}.1 does not name --{long}");
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_name() != "help" {
                check(sub, &format!("{name}-{}", sub.get_name()), t, pages);
            }
        }
    }
    let t = Test::new();
    let out = t.recart(&["man", "--dir", "man1"]);
    out.expect_success();
    let mut root = recart::cli::Cli::command();
    root.build();
    let mut pages = 0;
    check(&root, "recart", &t, &mut pages);
    assert!(pages > 20, "only {pages} pages");
    assert!(t.exists("man1/recart-suppress-add.1"));
    assert!(t.read("man1/recart-run.1").contains("\\-\\-dry\\-run"));
    // The main page names the others.
    assert!(t.read("man1/recart.1").contains("recart\\-run(1)"));
    assert_eq!(t.files_in("man1", ".1").len(), pages);
}

/// The words of a systemd command line, as systemd splits it (double
/// quotes, backslash escapes, `%%` and `$$`).
fn systemd_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut word = String::new();
        let quoted = c == '"';
        if quoted {
            chars.next();
        }
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted => break,
                ' ' if !quoted => break,
                '\\' => word.extend(chars.next()),
                '%' | '$' if chars.peek() == Some(&c) => {
                    chars.next();
                    word.push(c);
                }
                _ => word.push(c),
            }
        }
        words.push(word);
    }
    words
}

/// `recart init --systemd`: a oneshot service running this very binary
/// with `--config` absolute (a path with a space in it), and an hourly
/// timer; files already there are kept; `systemd-analyze verify` takes
/// them.
#[test]
fn init_systemd_writes_units_that_run_this_binary_with_an_absolute_config() {
    let t = Test::new();
    t.recart(&["init", "my shop"]).expect_success();
    let t = t.current_dir("my shop");
    t.recart(&["init", "--systemd", "units"]).expect_success();

    let service = t.read("my shop/units/recart.service");
    let exec = service
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    let words = systemd_words(exec);
    let binary = Path::new(&words[0]);
    assert!(binary.is_absolute() && binary.is_file(), "{exec}");
    assert_eq!(
        binary.canonicalize().unwrap(),
        Path::new(crate::harness::RECART).canonicalize().unwrap()
    );
    assert_eq!(words[1], "--config");
    let config = Path::new(&words[2]);
    assert!(config.is_absolute(), "{exec}");
    assert_eq!(
        config,
        t.join("my shop/recart.toml").canonicalize().unwrap()
    );
    assert_eq!(words[3..], ["run"]);
    for line in [
        "Type=oneshot",
        "SuccessExitStatus=4 5",
        "KillSignal=SIGTERM",
    ] {
        assert!(service.lines().any(|l| l == line), "no {line}:\n{service}");
    }
    let stop: u64 = service
        .lines()
        .find_map(|line| line.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec=")
        .parse()
        .unwrap();
    assert!(
        stop > 30,
        "TimeoutStopSec={stop}, not above the SMTP timeout"
    );
    let timer = t.read("my shop/units/recart.timer");
    assert!(timer.lines().any(|line| line == "OnCalendar=hourly"));

    // Never overwritten.
    t.write("my shop/units/recart.timer", "# mine\n");
    t.recart(&["init", "--systemd", "units"]).expect_success();
    assert_eq!(t.read("my shop/units/recart.timer"), "# mine\n");
    std::fs::remove_file(t.join("my shop/units/recart.timer")).unwrap();
    t.recart(&["init", "--systemd", "units"]).expect_success();

    // Without a configuration there is nothing to run.
    let out = t.recart(&["--config", "elsewhere.toml", "init", "--systemd", "units2"]);
    out.expect_status(2);
    out.expect_stderr_contains("elsewhere.toml");
    assert!(!t.exists("my shop/units2/recart.service"));

    let Some(analyze) = crate::operator::tool("systemd-analyze") else {
        return;
    };
    // `--man=no`: the man pages the units name are installed apart.
    let verify = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(t.join("my shop/units/recart.service"))
        .arg(t.join("my shop/units/recart.timer"))
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// A cart whose address is no address: rejected at every import.
const BAD_ROW: &str = "C-9001,not-an-address,Bad,en-GB,EUR,open,true,2026-11-21T08:00:00Z,2026-11-21T09:00:00Z,SKU-X,Thing,Stuff,1,10.00,,";
const BAD_ROW_TOO: &str = "C-9002,not-an-address,Bad,en-GB,EUR,open,true,2026-11-21T08:00:00Z,2026-11-21T09:00:00Z,SKU-Y,Thing,Stuff,1,10.00,,";

/// From cron (stderr is no terminal) a run prints nothing unless something
/// needs a person; a bad row is news once, not at every hourly re-read.
#[test]
fn a_run_from_cron_prints_only_what_needs_a_person() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&["run", "--now", NOW]).expect_success();
    // Reminders sent, nothing wrong: cron has nothing to mail.
    let quiet = t.recart(&["run", "--now", LATER]);
    quiet.expect_success();
    assert_eq!(quiet.stderr, "", "a run that needs nobody printed");
    // Asked for: -v, JSON logs, a dry run.
    t.recart(&["-v", "run", "--now", LATER])
        .expect_success()
        .expect_stderr_contains("recart run: imported");
    t.recart(&["--log-format", "json", "run", "--now", LATER])
        .expect_success()
        .expect_stderr_contains("\"rows_reported_before\":0");
    t.recart(&["run", "--dry-run", "--now", LATER])
        .expect_success()
        .expect_stderr_contains("recart run: imported");

    // A bad row: its error and the summary, exit 3.
    t.write("carts.csv", format!("{CARTS_CSV}{BAD_ROW}\n"));
    let bad = t.recart(&["run", "--now", LATER]);
    bad.expect_status(3);
    bad.expect_stderr_contains("carts.csv:9: field email");
    bad.expect_stderr_contains("(1 rows rejected)");
    // The same file an hour later: counted, not reported again.
    let again = t.recart(&["run", "--now", LATER]);
    again.expect_success();
    assert_eq!(again.stderr, "", "the same bad row was reported again");
    t.recart(&["-v", "run", "--now", LATER])
        .expect_success()
        .expect_stderr_contains("carts.csv:9: field email")
        .expect_stderr_contains("(reported before)")
        .expect_stderr_contains("(1 rows rejected, 1 of them reported before)");
    // The shop's next export: the old bad row on another line, and a new
    // one that reads just like it. Only the new one is news.
    let mut rows: Vec<&str> = CARTS_CSV.lines().collect();
    rows.insert(1, BAD_ROW);
    rows.push(BAD_ROW_TOO);
    t.write("carts.csv", rows.join("\n") + "\n");
    let next = t.recart(&["run", "--now", LATER]);
    next.expect_status(3);
    assert_eq!(
        next.stderr.matches("field email").count(),
        1,
        "{}",
        next.stderr
    );
    next.expect_stderr_contains("(2 rows rejected, 1 of them reported before)");
    // Fixed: nothing left to report; the bad row coming back is news again.
    t.write("carts.csv", CARTS_CSV);
    assert_eq!(t.recart(&["run", "--now", LATER]).stderr, "");
    t.write("carts.csv", format!("{CARTS_CSV}{BAD_ROW}\n"));
    t.recart(&["run", "--now", LATER])
        .expect_status(3)
        .expect_stderr_contains("carts.csv:9: field email");
    // `import`, by hand, always shows every row error.
    t.recart(&["import", "--now", LATER, "carts.csv"])
        .expect_status(3)
        .expect_stderr_contains("carts.csv:9: field email");
}

/// Under systemd stderr is the journal, a log: every run's summary goes
/// there. An inherited `JOURNAL_STREAM` that is not stderr changes nothing.
#[test]
fn a_run_logs_its_summary_to_the_journal() {
    use std::os::unix::fs::MetadataExt as _;
    let t = shop(&Config::new(Transport::File));
    t.recart(&["run", "--now", NOW]).expect_success();
    let run = |journal: bool| -> String {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let writer = std::fs::File::from(std::os::fd::OwnedFd::from(writer));
        let meta = writer.metadata().unwrap();
        let stream = if journal {
            format!("{}:{}", meta.dev(), meta.ino())
        } else {
            format!("{}:{}", meta.dev(), meta.ino() + 1)
        };
        let mut command = std::process::Command::new(crate::harness::RECART);
        command
            .args(["--config", "recart.toml", "run", "--now", LATER])
            .current_dir(t.path())
            .env(SECRET_ENV, SECRET)
            .env("JOURNAL_STREAM", stream)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(writer);
        let mut child = command.spawn().unwrap();
        drop(command);
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut reader, &mut stderr).unwrap();
        assert!(child.wait().unwrap().success(), "{stderr}");
        stderr
    };
    assert!(run(true).contains("recart run: imported"));
    assert_eq!(run(false), "");
}

/// `recart init` writes `not_before` = the time it ran: the sample carts,
/// idle since before, are shown and not mailed; the one idle longer than
/// `max_age` is counted under the dry-run table.
#[test]
fn init_switches_on_at_the_time_of_init() {
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let t = Test::new();
    t.recart(&["init", "shop"]).expect_success();
    let after = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    let config: toml::Table = t.read("shop/recart.toml").parse().unwrap();
    let not_before = config["policy"]["not_before"].as_str().expect("not_before");
    let not_before = chrono::DateTime::parse_from_rfc3339(not_before).unwrap();
    assert!(before <= not_before && not_before <= after, "{not_before}");
    assert!(
        t.read("shop/recart.toml")
            .contains("# When recart was switched on")
    );

    let t = t.current_dir("shop");
    let dry = t.recart(&["run", "--dry-run"]);
    dry.expect_success();
    assert!(!dry.stdout.contains(" send"), "{}", dry.stdout);
    assert_eq!(
        dry.stdout.matches("before-not-before").count(),
        5,
        "{}",
        dry.stdout
    );
    dry.expect_stdout_contains("\n1 cart idle longer than max_age 7d not shown\n");
    let run = t.recart(&["run"]);
    run.expect_success();
    assert!(t.files_in("shop/outbox", ".eml").is_empty());
    assert_eq!(run.stderr, "");
}

/// The first run over a store that never sent anything says how many
/// carts it mails and how long the longest idle of them was idle (and so
/// does its dry run); the dry-run table and the preview count the open
/// carts beyond the window.
#[test]
fn the_first_run_says_how_many_carts_it_mails() {
    let t = shop(&Config::new(Transport::File));
    // C-1001 idle 2h30, C-1002 2h48 are due; C-1005, 11 days, is beyond max_age.
    let dry = t.recart(&["run", "--dry-run", "--preview", "preview", "--now", NOW]);
    dry.expect_success();
    dry.expect_stderr_contains(
        "recart run: first run: 2 carts would be mailed, the oldest idle 2 hours\n",
    );
    dry.expect_stdout_contains("\n1 cart idle longer than max_age 7d not shown\n");
    assert!(
        t.read("preview/index.html")
            .contains("<p class=\"note\">1 cart idle longer than max_age 7d not shown.</p>")
    );
    let json = t.recart(&["--log-format", "json", "run", "--dry-run", "--now", NOW]);
    json.expect_stderr_contains("\"first_run\":{\"carts\":2,\"oldest_idle_s\":10080}");

    // From cron too: the first run that mails is news.
    let first = t.recart(&["run", "--now", NOW]);
    first.expect_success();
    first
        .expect_stderr_contains("recart run: first run: 2 carts mailed, the oldest idle 2 hours\n");
    // Once.
    let dry = t.recart(&["run", "--dry-run", "--now", LATER]);
    assert!(!dry.stderr.contains("first run"), "{}", dry.stderr);
    assert_eq!(t.recart(&["run", "--now", LATER]).stderr, "");
}
