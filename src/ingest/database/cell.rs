//! A value of a shop database's result ([`Cell`]), as a CSV field's text,
//! as a watermark, and as an SQL literal.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone as _, Utc};
use chrono_tz::Tz;
use rusqlite::types::Value;

/// One value of a result, as its database typed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(Vec<u8>),
    /// An exact number (DECIMAL, NUMERIC): its digits, never a float.
    Decimal(String),
    /// A time stored without a zone: read in the source's `timezone`.
    Naive(NaiveDateTime),
    /// A time with its zone (`TIMESTAMP WITH TIME ZONE`, MySQL's
    /// `TIMESTAMP` read in a UTC session).
    At(DateTime<Utc>),
}

impl Cell {
    /// The text a CSV field would hold: NULL is blank, integer times are
    /// unix seconds, zoneless times are read in `zone`.
    fn text(&self, field: &str, zone: Tz) -> Vec<u8> {
        let mut text = Vec::new();
        self.write_text(field, zone, &mut text);
        text
    }

    /// [`Cell::text`], appended to `out` (a buffer used again and again:
    /// three million values make no allocation each).
    pub(super) fn write_text(&self, field: &str, zone: Tz, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let time = |at: DateTime<Utc>, out: &mut Vec<u8>| {
            out.extend_from_slice(at.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        };
        match self {
            Cell::Null => {}
            Cell::Int(seconds) if field == "created_at" || field == "updated_at" => {
                match DateTime::from_timestamp(*seconds, 0) {
                    Some(at) => time(at, out),
                    None => {
                        let _ = write!(out, "{seconds}");
                    }
                }
            }
            Cell::Int(number) => {
                let _ = write!(out, "{number}");
            }
            Cell::Float(number) => {
                let _ = write!(out, "{number}");
            }
            Cell::Text(bytes) => out.extend_from_slice(bytes),
            Cell::Decimal(digits) => out.extend_from_slice(trim_zeros(digits).as_bytes()),
            Cell::Naive(at) => match zone.from_local_datetime(at).earliest() {
                Some(local) => time(local.with_timezone(&Utc), out),
                // A time skipped by a DST change: the shop cannot have
                // written it; the row's reader reports the text.
                None => {
                    let _ = write!(out, "{at}");
                }
            },
            Cell::At(at) => time(*at, out),
        }
    }

    /// The value as stored for a watermark: what the database gave, so
    /// that `:since` compares with its own kind of value.
    pub fn watermark(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(number) => Value::Integer(*number),
            Cell::Float(number) => Value::Real(*number),
            Cell::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
            Cell::Decimal(digits) => Value::Text(digits.clone()),
            Cell::Naive(at) => Value::Text(at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
            Cell::At(at) => Value::Text(at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        }
    }

    /// An SQL literal of an id (`:cart_ids` in MySQL).
    pub fn literal(&self) -> String {
        match self {
            Cell::Int(number) => number.to_string(),
            other => quote(&String::from_utf8_lossy(&other.text("", Tz::UTC))),
        }
    }
}

/// A decimal without the zeros its scale adds: Magento's `qty` 2.0000 is
/// the whole number 2, its `price` 19.9900 the amount 19.99.
fn trim_zeros(digits: &str) -> &str {
    if digits.contains('.') {
        digits.trim_end_matches('0').trim_end_matches('.')
    } else {
        digits
    }
}

/// A string literal, escaped for MySQL and PostgreSQL alike (backslashes
/// doubled too: MySQL reads them as escapes; PostgreSQL's `E''` form).
fn quote(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('\'', "''");
    if escaped.len() == text.len() {
        format!("'{text}'")
    } else if text.contains('\\') {
        format!("E'{escaped}'")
    } else {
        format!("'{escaped}'")
    }
}

/// `query` with `:since` replaced by the watermark as a literal (NULL on
/// the first run). The watermark is the database's own value, so the
/// server compares it with its own kind; a literal also lets PostgreSQL
/// infer the type from the comparison.
pub fn with_since(query: &str, since: Option<&Value>, mysql: bool) -> String {
    let literal = match since {
        None | Some(Value::Null) => "NULL".to_string(),
        Some(Value::Integer(number)) => number.to_string(),
        Some(Value::Real(number)) => number.to_string(),
        Some(Value::Text(text)) if mysql => {
            format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
        }
        Some(Value::Text(text)) => quote(text),
        Some(Value::Blob(bytes)) => quote(&String::from_utf8_lossy(bytes)),
    };
    query.replace(":since", &literal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoneless_times_are_read_in_the_sources_zone() {
        let at = NaiveDateTime::parse_from_str("2026-03-06 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let paris: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            Cell::Naive(at).text("updated_at", paris),
            b"2026-03-06T09:00:00Z"
        );
        assert_eq!(
            Cell::Naive(at).text("updated_at", Tz::UTC),
            b"2026-03-06T10:00:00Z"
        );
        assert_eq!(
            Cell::Naive(at).watermark(),
            Value::Text("2026-03-06 10:00:00.000000".into())
        );
    }

    #[test]
    fn since_is_a_literal_and_ids_are_quoted() {
        let query = "SELECT 1 WHERE :since IS NULL OR t >= :since";
        assert_eq!(
            with_since(query, None, true),
            "SELECT 1 WHERE NULL IS NULL OR t >= NULL"
        );
        let since = Value::Text("2026-03-06 10:00:00".into());
        assert!(with_since(query, Some(&since), false).ends_with("t >= '2026-03-06 10:00:00'"));
        assert_eq!(Cell::Text(b"it's".to_vec()).literal(), "'it''s'");
        assert_eq!(Cell::Int(7).literal(), "7");
        assert_eq!(Cell::Decimal("19.9900".into()).text("", Tz::UTC), b"19.99");
        assert_eq!(Cell::Decimal("2.0000".into()).text("", Tz::UTC), b"2");
        assert_eq!(Cell::Decimal("100".into()).text("", Tz::UTC), b"100");
    }
}
