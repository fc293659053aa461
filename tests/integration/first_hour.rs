//! The first hour of an operator: installing (man pages, systemd units),
//! scheduling (a run from cron is quiet unless something needs a person)
//! and switching on (no flood of reminders for carts idle from before).

use std::path::Path;

use clap::CommandFactory as _;

use crate::harness::Test;

/// `recart man --dir DIR`: a page per subcommand, nested ones too, each
/// naming every option of its command.
#[test]
fn man_dir_writes_a_page_per_subcommand_that_names_its_options() {
    fn check(command: &clap::Command, name: &str, t: &Test, pages: &mut usize) {
        let page = t.read(format!("man1/{name}.1"));
        *pages += 1;
        for arg in command.get_arguments() {
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
