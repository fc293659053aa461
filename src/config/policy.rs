//! `[policy]`: who is reminded and when, and the content filters that steps
//! inherit.

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::Context;
use super::duration::HumanDuration;
use super::raw::{RawFilters, RawPolicy};
use crate::error::Result;
use crate::model::Currency;
use crate::plan::{Filters, Policy, QuietHours, Threshold};

/// `[policy]`, with `retry_after` (a `[transport]` key the plan applies).
pub(super) fn policy(cx: &Context<'_>, raw: &RawPolicy, retry_after: TimeDelta) -> Result<Policy> {
    let or = |value: Option<HumanDuration>, default| value.map_or(default, TimeDelta::from);
    Ok(Policy {
        resend_unknown_claimed: (None, None),
        max_age: or(raw.max_age, TimeDelta::days(7)),
        not_before: match &raw.not_before {
            Some(text) => Some(parse_time(text).map_err(|m| cx.fail("policy.not_before", m))?),
            None => None,
        },
        cooldown: or(raw.cooldown, TimeDelta::hours(20)),
        max_per_address: raw.max_per_address,
        window: or(raw.window, TimeDelta::days(7)),
        quiet_hours: match &raw.quiet_hours {
            Some(text) => {
                Some(parse_quiet_hours(text).map_err(|m| cx.fail("policy.quiet_hours", m))?)
            }
            None => None,
        },
        timezone: match &raw.timezone {
            Some(name) => name.trim().parse::<Tz>().map_err(|_| {
                cx.fail(
                    "policy.timezone",
                    format!("{name:?} is not an IANA time zone like \"Europe/Berlin\""),
                )
            })?,
            None => Tz::UTC,
        },
        purchased_within: or(raw.purchased_within, TimeDelta::days(30)),
        max_sends_per_run: raw.max_sends_per_run,
        retry_after,
        resend_unknown: false,
        out_of_stock: raw.out_of_stock.into(),
    })
}

/// `policy.not_before`.
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| format!("{text:?} is not an RFC 3339 time like 2026-11-21T00:00:00Z"))
}

/// Resolves filters; what `raw` leaves out comes from `inherited`. Keys are
/// named `{prefix}.min_value`….
pub(super) fn filters(
    cx: &Context<'_>,
    raw: &RawFilters<'_>,
    inherited: &Filters,
    prefix: &str,
) -> Result<Filters> {
    let threshold =
        |key: &str, value: Option<&toml::Value>, inherited: &Option<Threshold>| match value {
            None => Ok(inherited.clone()),
            Some(value) => parse_threshold(value)
                .map(Some)
                .map_err(|message| cx.fail(format!("{prefix}.{key}"), message)),
        };
    let patterns = |key: &str, value: Option<&[String]>, inherited: &Vec<glob::Pattern>| match value
    {
        None => Ok(inherited.clone()),
        Some(texts) => texts
            .iter()
            .map(|text| {
                glob::Pattern::new(text).map_err(|error| {
                    cx.fail(
                        format!("{prefix}.{key}"),
                        format!("{text:?} is not a glob pattern: {error}"),
                    )
                })
            })
            .collect(),
    };
    Ok(Filters {
        min_value: threshold("min_value", raw.min_value, &inherited.min_value)?,
        max_value: threshold("max_value", raw.max_value, &inherited.max_value)?,
        include_skus: patterns("include_skus", raw.include_skus, &inherited.include_skus)?,
        exclude_skus: patterns("exclude_skus", raw.exclude_skus, &inherited.exclude_skus)?,
        include_categories: patterns(
            "include_categories",
            raw.include_categories,
            &inherited.include_categories,
        )?,
        exclude_categories: patterns(
            "exclude_categories",
            raw.exclude_categories,
            &inherited.exclude_categories,
        )?,
    })
}

/// `"20.00"`, `20`, or `{ EUR = "20", USD = "25" }`.
fn parse_threshold(value: &toml::Value) -> Result<Threshold, String> {
    let amount = |value: &toml::Value| -> Result<Decimal, String> {
        let text = match value {
            toml::Value::String(text) => text.trim().to_string(),
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Float(number) => number.to_string(),
            other => return Err(format!("{other} is not an amount")),
        };
        let amount: Decimal = text
            .parse()
            .map_err(|_| format!("{text:?} is not a decimal amount"))?;
        if amount.is_sign_negative() {
            return Err(format!("{text:?} is negative"));
        }
        Ok(amount)
    };
    match value {
        toml::Value::Table(table) => table
            .iter()
            .map(|(currency, value)| {
                let code: Currency = currency.parse()?;
                Ok((code.as_str().to_string(), amount(value)?))
            })
            .collect::<Result<_, String>>()
            .map(Threshold::PerCurrency),
        other => amount(other).map(Threshold::Any),
    }
}

/// `"21:00-08:00"`: local hours without reminders.
fn parse_quiet_hours(text: &str) -> Result<QuietHours, String> {
    let bad = || format!("{text:?} is not a range of local times like \"21:00-08:00\"");
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let time = |part: &str| NaiveTime::parse_from_str(part.trim(), "%H:%M").map_err(|_| bad());
    Ok(QuietHours {
        start: time(start)?,
        end: time(end)?,
    })
}
