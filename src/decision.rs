//! What became of one (cart, step) in a run. The plan decides send or skip
//! ([`crate::plan::Verdict`]); composing may still skip (gone, no coupon,
//! limit); the ledger turns a send into sent, retry, failed or unknown. The
//! printer and the run summary read this type, never a string.

use crate::plan::SkipReason;

/// The reason of a due mail that was not handed over because the transport
/// broke down: it stays due.
pub const NOT_SENT: &str = "not-sent";

/// One decision, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Due; a dry run would send it.
    Send,
    /// Handed over and accepted.
    Sent,
    /// Refused for now, or never handed over ([`NOT_SENT`]): due again.
    Retry(String),
    /// Refused for good.
    Failed(String),
    /// It may or may not have gone out.
    Unknown(String),
    /// Not sent, and why.
    Skip(SkipReason),
}

/// A decision without its reason: what the summary counts and the dry-run
/// table sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Send,
    Sent,
    Retry,
    Failed,
    Unknown,
    Skip,
}

impl Kind {
    /// The word printed for it (`--json`, the dry-run table).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Send => "send",
            Kind::Sent => "sent",
            Kind::Retry => "retry",
            Kind::Failed => "failed",
            Kind::Unknown => "unknown",
            Kind::Skip => "skip",
        }
    }
}

impl Decision {
    /// A due mail the transport never took: it stays due.
    pub fn not_sent() -> Decision {
        Decision::Retry(NOT_SENT.to_string())
    }

    pub fn kind(&self) -> Kind {
        match self {
            Decision::Send => Kind::Send,
            Decision::Sent => Kind::Sent,
            Decision::Retry(_) => Kind::Retry,
            Decision::Failed(_) => Kind::Failed,
            Decision::Unknown(_) => Kind::Unknown,
            Decision::Skip(_) => Kind::Skip,
        }
    }

    /// The reason printed beside it, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Decision::Send | Decision::Sent => None,
            Decision::Retry(reason) | Decision::Failed(reason) | Decision::Unknown(reason) => {
                Some(reason)
            }
            Decision::Skip(reason) => Some(reason.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_reasons_print_as_before() {
        assert_eq!(Decision::Send.kind().as_str(), "send");
        assert_eq!(Decision::Send.reason(), None);
        assert_eq!(Decision::not_sent().kind().as_str(), "retry");
        assert_eq!(Decision::not_sent().reason(), Some("not-sent"));
        let skip = Decision::Skip(SkipReason::Limit);
        assert_eq!(
            (skip.kind().as_str(), skip.reason()),
            ("skip", Some("limit"))
        );
        assert!(Kind::Send < Kind::Skip, "sends sort before skips");
    }
}
