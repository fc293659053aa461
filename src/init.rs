//! `recart init DIR`: a working setup in one command — a commented
//! `recart.toml` (file transport, `not_before` the time of init), the
//! starter templates, a link-signing key and a sample carts CSV timed
//! relative to now, so that `recart init demo && cd demo && recart run
//! --dry-run` shows its decisions (the sample carts skipped as idle since
//! before `not_before`; without that line they are mailed).

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use crate::error::{Error, Result};
use crate::output::Output;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "reminder.subject",
        include_str!("../templates/reminder.subject"),
    ),
    ("reminder.html", include_str!("../templates/reminder.html")),
    ("reminder.txt", include_str!("../templates/reminder.txt")),
    (
        "reminder.preheader",
        include_str!("../templates/reminder.preheader"),
    ),
    (
        "reminder-2.subject",
        include_str!("../templates/reminder-2.subject"),
    ),
    (
        "reminder-2.html",
        include_str!("../templates/reminder-2.html"),
    ),
    (
        "reminder-2.txt",
        include_str!("../templates/reminder-2.txt"),
    ),
    (
        "reminder-2.preheader",
        include_str!("../templates/reminder-2.preheader"),
    ),
    (
        "reminder-3.subject",
        include_str!("../templates/reminder-3.subject"),
    ),
    (
        "reminder-3.html",
        include_str!("../templates/reminder-3.html"),
    ),
    (
        "reminder-3.txt",
        include_str!("../templates/reminder-3.txt"),
    ),
    (
        "reminder-3.preheader",
        include_str!("../templates/reminder-3.preheader"),
    ),
];

const CONFIG: &str = r#"# recart configuration. Paths are relative to this file's directory.

[store]
path = "recart.db"              # SQLite, created on first use

[templates]
dir = "templates"               # <name>.subject, <name>.html, <name>.txt

[shop]
name = "Demo Shop"

# Imported at the start of every `recart run`.
[[sources]]
path = "carts.csv"              # a glob, e.g. "exports/carts_*.csv"
format = "native"               # auto | native | native-orders

[transport]
kind = "file"                   # file: one .eml per mail in `dir`; smtp: a real relay
dir = "outbox"
from = "Demo Shop <hello@shop.example>"
# kind = "smtp"
# host = "127.0.0.1"
# port = 587
# tls = "starttls"              # starttls | implicit | none
# username = "apikey"
# password_env = "RECART_SMTP_PASSWORD"
# connections = 4

[links]
recover = "https://shop.example/cart/recover/{token}"
unsubscribe = "https://shop.example/unsubscribe/{token}"
secret_env = "RECART_SECRET"    # the link-signing key, if this variable is set
secret_file = "recart.secret"   # else this file

[policy]
require_consent = true          # only mail customers who accepted marketing
min_value = "0.00"              # smallest cart total worth a reminder
max_age = "7d"                  # never remind carts idle longer than this
cooldown = "20h"                # at most one reminder per address per period
# When recart was switched on (`recart init` wrote the time it ran): carts
# idle since before then are never reminded, so a first run over a shop's
# old carts mails nobody who left long ago. The sample carts in carts.csv
# are older: remove this line to see their mails.
not_before = "{not_before}"

# The sequence: each `after` counts from the cart's last activity.
[[steps]]
name = "1h"
after = "1h"
template = "reminder"

[[steps]]
name = "24h"
after = "24h"
template = "reminder-2"

[[steps]]
name = "72h"
after = "72h"
template = "reminder-3"
coupon = "generate"             # a code made for each cart: pool | generate
coupon_prefix = "COMEBACK-"     # generate: the start of every code
coupon_ttl = "7d"               # generate: how long a code is valid
# For codes your shop made, use coupon = "pool" and import them with
# `recart coupons import codes.csv` (columns: code, expires).
"#;

/// Writes the starter files into `dir`; never overwrites a file.
pub fn init(dir: &Path, now: DateTime<Utc>, out: &mut Output) -> Result<()> {
    let config_path = dir.join("recart.toml");
    if config_path.exists() {
        return Err(Error::Usage(format!(
            "{} already exists; not overwriting it",
            config_path.display()
        )));
    }
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).map_err(|source| Error::io(&templates, source))?;
    let mut files: Vec<(std::path::PathBuf, String, u32)> = TEMPLATES
        .iter()
        .map(|(name, text)| (templates.join(name), text.to_string(), 0o644))
        .collect();
    files.push((dir.join("carts.csv"), sample_carts(now), 0o644));
    // The key signs links and makes coupon codes: for the owner's eyes.
    files.push((dir.join("recart.secret"), random_key()?, 0o600));
    // Last: an init that stopped part-way can be run again.
    let not_before = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let config = CONFIG.replace("{not_before}", &not_before);
    files.push((config_path, config, 0o644));
    for (path, text, mode) in files {
        write_new(&path, &text, mode, out)?;
    }
    out.log(&format!(
        "next: cd {} && recart run --dry-run && recart run",
        dir.display()
    ));
    out.log(&format!(
        "(policy.not_before = {not_before}: the sample carts, idle since before, are \
         shown and not mailed; remove that line from recart.toml to mail them)"
    ));
    Ok(())
}

/// Writes `text` into a new file at `path`, or keeps what is there.
fn write_new(path: &Path, text: &str, mode: u32, out: &mut Output) -> Result<()> {
    // Created new (`O_EXCL`): whatever is there, a symbolic link
    // included, is kept, never written through.
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path);
    match created {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .map_err(|source| Error::io(path, source))?;
            out.data(&format!("wrote {}", path.display()));
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            out.log(&format!("{} exists; kept as it is", path.display()));
        }
        Err(source) => return Err(Error::io(path, source)),
    }
    Ok(())
}

/// 32 random bytes, hex: the link-signing key.
fn random_key() -> Result<String> {
    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 32];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|source| Error::io(path, source))?;
    Ok(format!("{}\n", hex::encode(bytes)))
}

/// (id, email, first name, currency, consent, minutes idle, items)
type SampleCart = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    i64,
    &'static [SampleItem],
);
/// (sku, name, category, quantity, unit price)
type SampleItem = (&'static str, &'static str, &'static str, u32, &'static str);

/// A few carts idle for different times, so each step and skip shows.
fn sample_carts(now: DateTime<Utc>) -> String {
    let at = |minutes: i64| {
        (now - TimeDelta::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let carts: &[SampleCart] = &[
        (
            "D-1001",
            "ann.meyer@example.com",
            "Ann",
            "EUR",
            true,
            95,
            &[
                ("TENT-2P", "Ridge Tent 2P", "tents", 1, "249.00"),
                ("MUG-ENAMEL", "Enamel Mug", "accessories", 2, "12.50"),
            ],
        ),
        (
            "D-1002",
            "bo.lind@example.net",
            "Bo",
            "SEK",
            true,
            300,
            &[(
                "BAG-0C",
                "Down Sleeping Bag 0°C",
                "sleeping-bags",
                1,
                "1899.00",
            )],
        ),
        (
            "D-1003",
            "carla.ruiz@example.org",
            "Carla",
            "EUR",
            false,
            150,
            &[("BOOT-HIKE", "Trail Boots", "footwear", 1, "159.90")],
        ),
        (
            "D-1004",
            "dan.okafor@example.com",
            "",
            "USD",
            true,
            26 * 60,
            &[
                ("JACKET-RAIN", "Storm Shell Jacket", "jackets", 1, "189.00"),
                ("SOCKS-WOOL", "Merino Socks", "accessories", 3, "14.00"),
            ],
        ),
        (
            "D-1005",
            "eva.novak@example.com",
            "Eva",
            "GBP",
            true,
            20,
            &[("LAMP-HEAD", "Head Torch 400", "accessories", 1, "39.00")],
        ),
        (
            "D-1006",
            "finn.berg@example.net",
            "Finn",
            "EUR",
            true,
            60 * 24 * 40,
            &[("STOVE-GAS", "Compact Gas Stove", "cooking", 1, "54.00")],
        ),
    ];
    let mut csv = String::from(
        "cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url\n",
    );
    for (id, email, name, currency, consent, idle, items) in carts {
        for (index, (sku, product, category, quantity, price)) in items.iter().enumerate() {
            let cart_fields = if index == 0 {
                format!(
                    "{email},{name},en,{currency},open,{consent},{},{}",
                    at(idle + 30),
                    at(*idle)
                )
            } else {
                ",,,,,,,".to_string()
            };
            let _ = writeln!(
                csv,
                "{id},{cart_fields},{sku},{product},{category},{quantity},{price},https://cdn.shop.example/img/{sku}.jpg,https://shop.example/products/{sku}"
            );
        }
    }
    csv
}

/// `recart init --systemd DIR`: `recart.service` and `recart.timer` into
/// `dir`, for the configuration at `config_path` and the binary `exe` (the
/// running one); files already there are kept.
pub fn systemd(dir: &Path, config_path: &Path, exe: &Path, out: &mut Output) -> Result<()> {
    let config_path = std::fs::canonicalize(config_path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::config(
                config_path,
                "no such configuration file: the units run it, so write it first \
                 (`recart init`), or name it with --config",
            )
        } else {
            Error::io(config_path, source)
        }
    })?;
    let config = crate::config::Config::load(&config_path)?;
    let exe = std::fs::canonicalize(exe).map_err(|source| Error::io(exe, source))?;
    let units = SystemdUnits::new(&config, &exe, owner())?;
    std::fs::create_dir_all(dir).map_err(|source| Error::io(dir, source))?;
    write_new(&dir.join("recart.service"), &units.service, 0o644, out)?;
    write_new(&dir.join("recart.timer"), &units.timer, 0o644, out)?;
    out.log(&format!(
        "next: sudo cp {0}/recart.service {0}/recart.timer /etc/systemd/system/ && \
         sudo systemctl daemon-reload && sudo systemctl enable --now recart.timer",
        dir.display()
    ));
    Ok(())
}

/// The user this process runs as, unless root: the service runs as the
/// owner of the store, not as root. (`/proc/self` belongs to the
/// process's effective user.)
fn owner() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    (uid != 0).then_some(uid)
}

/// A service that runs `recart run` once, and the timer that starts it
/// every hour.
#[derive(Debug)]
pub struct SystemdUnits {
    pub service: String,
    pub timer: String,
}

/// The exit codes that are no failure for the operator (README, "From
/// systemd"): 4, another run holds the store (nothing done; the next hour
/// catches up), and 5, stopped by the SIGTERM systemd sends on stop or
/// shutdown, after finishing and recording the mails on the wire. 3
/// (partial) and 6 (an earlier run died) need a person.
pub const SYSTEMD_SUCCESS: &str = "4 5";

impl SystemdUnits {
    /// `uid`: the user to run as (none: root).
    pub fn new(config: &crate::config::Config, exe: &Path, uid: Option<u32>) -> Result<Self> {
        let exec = format!(
            "{} --config {} run",
            systemd_word(exe)?,
            systemd_word(&config.path)?
        );
        let stop = drain_seconds(config);
        let user = match uid {
            Some(uid) => format!("User={uid}\n"),
            None => "# Runs as root: set User= to the owner of the store.\n".to_string(),
        };
        let service = format!(
            "# Written by `recart init --systemd`. One `recart run`; recart.timer starts it hourly.
[Unit]
Description=recart: abandoned-cart reminders (one run)
Documentation=man:recart-run(1)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
{user}ExecStart={exec}
# Variables the configuration names (links.secret_env, transport.password_env):
# EnvironmentFile=/etc/recart.env
# 4: another run holds the store, nothing done (the next hour catches up);
# 5: stopped by systemd's SIGTERM after finishing the mails on the wire.
# 3 (partial) and 6 (an earlier run died) need a person: the unit fails.
SuccessExitStatus={SYSTEMD_SUCCESS}
# On SIGTERM a run stops claiming, lets each connection finish its mail
# (every SMTP command may wait transport.timeout) and records it.
KillSignal=SIGTERM
TimeoutStopSec={stop}
"
        );
        let timer = "# Written by `recart init --systemd`: starts recart.service every hour.
[Unit]
Description=recart: abandoned-cart reminders, hourly
Documentation=man:recart-run(1)

[Timer]
OnCalendar=hourly
# A run missed while the machine was off happens when it is back.
Persistent=true

[Install]
WantedBy=timers.target
"
        .to_string();
        Ok(SystemdUnits { service, timer })
    }
}

/// Seconds systemd waits after SIGTERM before it kills a run: what one
/// mail on the wire may still take on each connection — the envelope's
/// answers, the message's, and QUIT, each up to the longest timeout (SMTP
/// or a webhook step's; at least the default 30 s) — plus 30 s to record.
fn drain_seconds(config: &crate::config::Config) -> u64 {
    let smtp = match &config.transport {
        crate::config::Transport::Smtp(settings) => settings.timeout,
        crate::config::Transport::File { .. } => std::time::Duration::ZERO,
    };
    let longest = config
        .steps
        .iter()
        .filter_map(|step| match &step.channel {
            crate::plan::Channel::Webhook(webhook) => Some(webhook.timeout),
            crate::plan::Channel::Email => None,
        })
        .chain([smtp, std::time::Duration::from_secs(30)])
        .max()
        .unwrap_or_default();
    5 * longest.as_secs() + 30
}

/// A path as one word of a systemd command line: as it is when it holds
/// nothing systemd reads specially, else double-quoted with `\`, `"`
/// escaped and `%`, `$` doubled (specifiers, variables).
fn systemd_word(path: &Path) -> Result<String> {
    let text = path.to_str().ok_or_else(|| {
        Error::Usage(format!(
            "{}: not UTF-8, cannot be written into a systemd unit",
            path.display()
        ))
    })?;
    if text.chars().any(char::is_control) {
        return Err(Error::Usage(format!(
            "{text:?}: a control character in the path, cannot be written into a systemd unit"
        )));
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@".contains(c);
    if text.chars().all(plain) {
        return Ok(text.to_string());
    }
    let mut word = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' | '"' => {
                word.push('\\');
                word.push(c);
            }
            '%' => word.push_str("%%"),
            '$' => word.push_str("$$"),
            _ => word.push(c),
        }
    }
    word.push('"');
    Ok(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[transport]
kind = "smtp"
host = "relay.example"
from = "Shop <hello@shop.example>"
timeout = "90s"

[links]
recover = "https://shop.example/r/{token}"
unsubscribe = "https://shop.example/u/{token}"
secret_env = "RECART_SECRET"

[[steps]]
name = "1h"
after = "1h"
template = "reminder"
"#;

    #[test]
    fn the_service_runs_the_binary_and_config_by_absolute_paths_and_drains_on_stop() {
        let config =
            crate::config::Config::parse(Path::new("/srv/my shop/recart.toml"), CONFIG).unwrap();
        let units = SystemdUnits::new(
            &config,
            Path::new("/home/ann/.cargo/bin/recart"),
            Some(1000),
        )
        .unwrap();
        assert!(units.service.contains(
            "\nExecStart=/home/ann/.cargo/bin/recart --config \"/srv/my shop/recart.toml\" run\n"
        ));
        assert!(units.service.contains("\nType=oneshot\n"));
        assert!(units.service.contains("\nUser=1000\n"));
        assert!(units.service.contains("\nSuccessExitStatus=4 5\n"));
        assert!(units.service.contains("\nKillSignal=SIGTERM\n"));
        // Above the 90 s SMTP timeout: each connection's mail on the wire.
        assert!(units.service.contains("\nTimeoutStopSec=480\n"));
        assert!(units.timer.contains("\nOnCalendar=hourly\n"));
        let root = SystemdUnits::new(&config, Path::new("/usr/bin/recart"), None).unwrap();
        assert!(!root.service.contains("\nUser="));
    }

    #[test]
    fn paths_are_quoted_for_systemd_when_they_need_it() {
        let word = |text: &str| systemd_word(Path::new(text)).unwrap();
        assert_eq!(word("/usr/local/bin/recart"), "/usr/local/bin/recart");
        assert_eq!(word("/srv/a b/r.toml"), "\"/srv/a b/r.toml\"");
        assert_eq!(
            word("/srv/100%/$HOME\\\"x"),
            "\"/srv/100%%/$$HOME\\\\\\\"x\""
        );
        assert!(systemd_word(Path::new("/srv/a\nb")).is_err());
    }
}
