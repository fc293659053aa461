//! `recart init DIR`: a working setup in one command — a commented
//! `recart.toml` (file transport), the starter templates, a link-signing
//! key and a sample carts CSV timed relative to now, so that
//! `recart init demo && cd demo && recart run` sends its first mails.

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
    files.push((config_path, CONFIG.to_string(), 0o644));
    for (path, text, mode) in files {
        // Created new (`O_EXCL`): whatever is there, a symbolic link
        // included, is kept, never written through.
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path);
        match created {
            Ok(mut file) => {
                file.write_all(text.as_bytes())
                    .map_err(|source| Error::io(&path, source))?;
                out.data(&format!("wrote {}", path.display()));
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                out.log(&format!("{} exists; kept as it is", path.display()));
            }
            Err(source) => return Err(Error::io(&path, source)),
        }
    }
    out.log(&format!(
        "next: cd {} && recart run --dry-run && recart run",
        dir.display()
    ));
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
