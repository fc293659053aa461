//! Coupons: a step may promise a code. `coupon = "pool"` draws one unused
//! code from a pool imported with `recart coupons import FILE`;
//! `coupon = "generate"` derives one from the cart, the step and the
//! link-signing key (HMAC), so it is the same code every time that (cart,
//! step) is rendered and no other cart or step gets it.
//!
//! Which code a (cart, step) got is recorded in the store (table `coupons`)
//! before its mail is claimed; see `Store::coupon`.

use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Utc};

use crate::error::{Error, Result};
use crate::ingest::RowError;
use crate::model::parse_time;
use crate::token::Signer;

/// `coupon_prefix` when a `generate` step gives none.
pub const DEFAULT_PREFIX: &str = "COMEBACK-";
/// `coupon_ttl` when a `generate` step gives none.
pub const DEFAULT_TTL: TimeDelta = TimeDelta::days(7);
/// The pool of codes imported without a `pool` column, and of steps
/// without `coupon_pool`.
pub const DEFAULT_POOL: &str = "default";
/// A pool code is only given out if it stays valid at least this long
/// after the run: nobody gets a code that dies before they read the mail.
pub const MIN_VALIDITY: TimeDelta = TimeDelta::days(1);
/// The random part of a generated code: 10 characters of 5 bits.
const GENERATED_LENGTH: usize = 10;
/// No `0`/`O`, `1`/`I`: codes are typed in by people.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Longest code accepted in a pool file, and longest prefix.
const MAX_CODE: usize = 64;
const MAX_PREFIX: usize = 32;

/// What a step's mail promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponRule {
    /// One unused code of the named pool.
    Pool { pool: String },
    /// `prefix` + a code derived from (cart, step) and the link key, valid
    /// for `ttl` from the first time it is given.
    Generate { prefix: String, ttl: TimeDelta },
}

/// A code given to one (cart, step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub code: String,
    /// None: the code does not expire (a pool code imported without one).
    pub expires: Option<DateTime<Utc>>,
}

/// The code `generate` gives a (cart, step): `prefix` followed by 10
/// characters of `HMAC-SHA256(key, "coupon\n" + cart_id + "\n" + step)`.
/// Stable across runs, different for every cart and step (50 bits), and
/// not guessable without the key.
pub fn generate_code(signer: &Signer, prefix: &str, cart_id: &str, step: &str) -> String {
    let mac = signer.mac_of(format!("coupon\n{cart_id}\n{step}").as_bytes());
    let bits = u64::from_be_bytes(mac[..8].try_into().expect("8 bytes"));
    let mut code = String::with_capacity(prefix.len() + GENERATED_LENGTH);
    code.push_str(prefix);
    for index in 0..GENERATED_LENGTH {
        let value = (bits >> (59 - 5 * index)) & 0x1f;
        code.push(ALPHABET[value as usize] as char);
    }
    code
}

/// `coupon_prefix`: letters, digits, `-` and `_`, at most 32.
pub fn check_prefix(prefix: &str) -> std::result::Result<(), String> {
    if prefix.len() > MAX_PREFIX {
        return Err(format!("{prefix:?} is longer than {MAX_PREFIX} characters"));
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "{prefix:?} may hold only letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

/// A pool name: non-empty, letters, digits, `-`, `_`, `.`.
pub fn check_pool_name(pool: &str) -> std::result::Result<(), String> {
    if pool.is_empty()
        || pool.len() > MAX_CODE
        || !pool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "{pool:?} is not a pool name (letters, digits, '-', '_', '.')"
        ));
    }
    Ok(())
}

/// One code of a pool file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolCode {
    pub code: String,
    pub pool: String,
    pub expires: Option<DateTime<Utc>>,
}

/// What a pool file holds: its good codes and its bad rows.
#[derive(Debug, Default)]
pub struct PoolFile {
    pub rows: u64,
    pub codes: Vec<PoolCode>,
    pub rejected: Vec<RowError>,
}

/// Reads a pool file: a CSV with a `code` column, optionally `expires`
/// (RFC 3339, or a date `YYYY-MM-DD`: valid through that day, UTC) and
/// `pool` (else `default`). Other columns are ignored. A bad row is
/// rejected on its own.
pub fn read_pool(path: &Path) -> Result<PoolFile> {
    let input = |message: String| Error::Input {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|error| match error.into_kind() {
            csv::ErrorKind::Io(source) => Error::io(path, source),
            other => input(format!("{other:?}")),
        })?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|error| input(format!("cannot read the header: {error}")))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let code_at = column("code").ok_or_else(|| {
        input(format!(
            "no `code` column (the header is {:?}; expected code[,expires][,pool])",
            headers.join(",")
        ))
    })?;
    let (expires_at, pool_at) = (column("expires"), column("pool"));
    let mut file = PoolFile::default();
    for record in reader.records() {
        file.rows += 1;
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, csv::Position::line);
                file.rejected.push(RowError {
                    path: path.to_path_buf(),
                    line,
                    field: "(row)".into(),
                    value: String::new(),
                    message: error.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        let field = |at: Option<usize>| at.and_then(|at| record.get(at)).unwrap_or("");
        let reject = |name: &str, value: &str, message: String| RowError {
            path: path.to_path_buf(),
            line,
            field: name.into(),
            value: value.into(),
            message,
        };
        if record.iter().all(str::is_empty) {
            file.rows -= 1;
            continue;
        }
        let code = field(Some(code_at));
        if let Err(message) = check_code(code) {
            file.rejected.push(reject("code", code, message));
            continue;
        }
        let expires = match field(expires_at) {
            "" => None,
            text => match parse_expiry(text) {
                Ok(at) => Some(at),
                Err(message) => {
                    file.rejected.push(reject("expires", text, message));
                    continue;
                }
            },
        };
        let pool = match field(pool_at) {
            "" => DEFAULT_POOL,
            pool => pool,
        };
        if let Err(message) = check_pool_name(pool) {
            file.rejected.push(reject("pool", pool, message));
            continue;
        }
        file.codes.push(PoolCode {
            code: code.to_string(),
            pool: pool.to_string(),
            expires,
        });
    }
    Ok(file)
}

fn check_code(code: &str) -> std::result::Result<(), String> {
    if code.is_empty() {
        return Err("is empty (expected a coupon code)".into());
    }
    if code.chars().count() > MAX_CODE {
        return Err(format!("is longer than {MAX_CODE} characters"));
    }
    if code.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("holds white space or control characters".into());
    }
    Ok(())
}

/// RFC 3339 (or `YYYY-MM-DD HH:MM:SS ±HHMM`), or a bare date: valid through
/// the end of that day, UTC.
fn parse_expiry(text: &str) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let end = date.and_hms_opt(23, 59, 59).expect("a valid time");
        return Ok(end.and_utc());
    }
    parse_time(text)
        .map(|(at, _)| at)
        .map_err(|_| format!("{text:?} is not a time (RFC 3339, or a date YYYY-MM-DD)"))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// How a locale writes dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `November 28, 2026`
    UsWords,
    /// `28 November 2026`
    Words,
    /// `28.11.2026`
    Dots,
    /// `28/11/2026`
    Slashes,
    /// `28-11-2026`
    Dashes,
    /// `2026-11-28`
    Iso,
}

impl Style {
    fn of(language: &str, region: &str) -> Style {
        match language {
            "en" if region == "us" => Style::UsWords,
            "de" | "da" | "nb" | "nn" | "no" | "fi" | "pl" | "cs" | "sk" | "ru" | "uk" | "tr"
            | "ro" | "hr" | "sl" | "bg" | "et" | "lv" | "is" => Style::Dots,
            "fr" | "es" | "it" | "pt" | "el" | "id" => Style::Slashes,
            "nl" => Style::Dashes,
            "sv" | "lt" => Style::Iso,
            _ => Style::Words,
        }
    }
}

/// `de_AT` → (`de`, `at`).
fn language_and_region(locale: &str) -> (String, String) {
    let mut parts = locale.split(['-', '_']).map(str::to_ascii_lowercase);
    let language = parts.next().unwrap_or_default();
    let region = parts.next().unwrap_or_default();
    (language, region)
}

/// A date as a reader of `locale` writes it: `November 28, 2026` (en-US),
/// `28 November 2026` (other English, and unknown languages),
/// `28.11.2026` (de, da, nb, fi, pl, cs, …), `28/11/2026` (fr, es, it,
/// pt), `28-11-2026` (nl), `2026-11-28` (sv, lt).
pub fn format_date(date: NaiveDate, locale: &str) -> String {
    let (language, region) = language_and_region(locale);
    let (d, m, y) = (date.day(), date.month(), date.year());
    let month = MONTHS[date.month0() as usize];
    match Style::of(&language, &region) {
        Style::UsWords => format!("{month} {d}, {y}"),
        Style::Words => format!("{d} {month} {y}"),
        Style::Dots => format!("{d:02}.{m:02}.{y}"),
        Style::Slashes => format!("{d:02}/{m:02}/{y}"),
        Style::Dashes => format!("{d:02}-{m:02}-{y}"),
        Style::Iso => format!("{y}-{m:02}-{d:02}"),
    }
}

/// When a code stops being valid, as a reader of `locale` writes it: the
/// date (`format_date`) or, for a code valid for less than a day more
/// (`short`), the time and the day, without the year: `14:30, 21 November`
/// (en-GB and unknown languages), `2:30 PM, November 21` (en-US),
/// `14:30, 21.11.` (de, …), `14:30, 21/11` (fr, …), `14:30, 21-11` (nl),
/// `14:30, 11-21` (sv, lt). `at` is the time in the customer's zone.
pub fn format_expiry(at: NaiveDateTime, locale: &str, short: bool) -> String {
    if !short {
        return format_date(at.date(), locale);
    }
    let (language, region) = language_and_region(locale);
    let (d, m) = (at.day(), at.month());
    let month = MONTHS[at.month0() as usize];
    let time = at.format("%H:%M");
    match Style::of(&language, &region) {
        Style::UsWords => format!("{}, {month} {d}", at.format("%-I:%M %p")),
        Style::Words => format!("{time}, {d} {month}"),
        Style::Dots => format!("{time}, {d:02}.{m:02}."),
        Style::Slashes => format!("{time}, {d:02}/{m:02}"),
        Style::Dashes => format!("{time}, {d:02}-{m:02}"),
        Style::Iso => format!("{time}, {m:02}-{d:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_stable_unique_and_prefixed() {
        let signer = Signer::new(b"key");
        let code = generate_code(&signer, "COMEBACK-", "C1", "72h");
        assert_eq!(code, generate_code(&signer, "COMEBACK-", "C1", "72h"));
        assert!(code.starts_with("COMEBACK-"), "{code}");
        let random = &code["COMEBACK-".len()..];
        assert_eq!(random.len(), GENERATED_LENGTH);
        assert!(random.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        // Another cart, another step, another key: another code.
        assert_ne!(code, generate_code(&signer, "COMEBACK-", "C2", "72h"));
        assert_ne!(code, generate_code(&signer, "COMEBACK-", "C1", "24h"));
        assert_ne!(
            code,
            generate_code(&Signer::new(b"other"), "COMEBACK-", "C1", "72h")
        );
        // The prefix does not change the random part.
        assert!(generate_code(&signer, "", "C1", "72h").ends_with(random));
        // Many carts, no two alike.
        let codes: std::collections::HashSet<String> = (0..20_000)
            .map(|n| generate_code(&signer, "X-", &format!("cart-{n}"), "72h"))
            .collect();
        assert_eq!(codes.len(), 20_000);
    }

    #[test]
    fn prefixes_and_pool_names_are_checked() {
        assert!(check_prefix("COMEBACK-").is_ok());
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("NO SPACE").is_err());
        assert!(check_prefix(&"X".repeat(33)).is_err());
        assert!(check_pool_name("default").is_ok());
        assert!(check_pool_name("").is_err());
        assert!(check_pool_name("a b").is_err());
    }

    #[test]
    fn pool_files_keep_good_rows_and_name_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codes.csv");
        std::fs::write(
            &path,
            "\u{feff}Code,Expires,Pool,Note\n\
             SAVE10-AAA,2026-12-31,,first\n\
             SAVE10-BBB,2026-12-01T00:00:00Z,vip,\n\
             ,2026-12-31,,no code\n\
             BAD CODE,,,\n\
             SAVE10-CCC,next week,,\n\
             \n\
             SAVE10-DDD\n",
        )
        .unwrap();
        let file = read_pool(&path).unwrap();
        let codes: Vec<(&str, &str)> = file
            .codes
            .iter()
            .map(|c| (c.code.as_str(), c.pool.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                ("SAVE10-AAA", "default"),
                ("SAVE10-BBB", "vip"),
                ("SAVE10-DDD", "default")
            ]
        );
        assert_eq!(
            file.codes[0].expires,
            Some("2026-12-31T23:59:59Z".parse().unwrap())
        );
        assert_eq!(file.codes[2].expires, None);
        let errors: Vec<(u64, &str)> = file
            .rejected
            .iter()
            .map(|e| (e.line, e.field.as_str()))
            .collect();
        assert_eq!(errors, [(4, "code"), (5, "code"), (6, "expires")]);
        assert_eq!(file.rows, 6);
    }

    #[test]
    fn a_pool_file_needs_a_code_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codes.csv");
        std::fs::write(&path, "coupon,expires\nX,\n").unwrap();
        let error = read_pool(&path).unwrap_err();
        assert!(error.to_string().contains("no `code` column"), "{error}");
    }

    #[test]
    fn dates_per_locale() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        for (locale, expected) in [
            ("en-US", "November 28, 2026"),
            ("en_us", "November 28, 2026"),
            ("en-GB", "28 November 2026"),
            ("en", "28 November 2026"),
            ("", "28 November 2026"),
            ("xx", "28 November 2026"),
            ("de-AT", "28.11.2026"),
            ("fr", "28/11/2026"),
            ("nl-NL", "28-11-2026"),
            ("sv-SE", "2026-11-28"),
        ] {
            assert_eq!(format_date(date, locale), expected, "{locale}");
        }
    }

    #[test]
    fn a_short_lived_code_shows_its_time() {
        let at = NaiveDate::from_ymd_opt(2026, 11, 21)
            .unwrap()
            .and_hms_opt(14, 30, 0)
            .unwrap();
        for (locale, expected) in [
            ("en-GB", "14:30, 21 November"),
            ("", "14:30, 21 November"),
            ("en-US", "2:30 PM, November 21"),
            ("de-AT", "14:30, 21.11."),
            ("fr", "14:30, 21/11"),
            ("nl", "14:30, 21-11"),
            ("sv", "14:30, 11-21"),
        ] {
            assert_eq!(format_expiry(at, locale, true), expected, "{locale}");
        }
        // Valid for longer: the date, as before.
        assert_eq!(format_expiry(at, "en-GB", false), "21 November 2026");
        let morning = at.date().and_hms_opt(9, 5, 0).unwrap();
        assert_eq!(
            format_expiry(morning, "en-US", true),
            "9:05 AM, November 21"
        );
    }
}
