//! Durations as people write them in the file and on the command line.

use std::fmt;

use chrono::TimeDelta;
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Durations as people write them: `30m`, `1h`, `7d`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let std = humantime::parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is not a duration like \"30m\", \"24h\" or \"7d\""))?;
    // Times are shifted by these durations: keep them well inside what a
    // date can hold.
    match TimeDelta::from_std(std) {
        Ok(delta) if delta <= TimeDelta::days(36_500) => Ok(delta),
        _ => Err(format!("{text:?} is too long (at most 100 years)")),
    }
}

/// A duration key of the file (`after = "1h"`), read by [`parse_duration`]:
/// the one way every duration key is deserialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HumanDuration(pub TimeDelta);

impl HumanDuration {
    /// As a `std` duration, for timeouts.
    pub fn to_std(self) -> std::time::Duration {
        // `parse_duration` never gives a negative duration, the one thing
        // `to_std` refuses.
        self.0.to_std().unwrap_or_default()
    }
}

impl From<HumanDuration> for TimeDelta {
    fn from(duration: HumanDuration) -> Self {
        duration.0
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a duration like \"30m\", \"24h\" or \"7d\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
        parse_duration(text).map(HumanDuration).map_err(E::custom)
    }
}
