//! What a run says when recart is switched on: whether the store ever sent
//! a mail (a first run says how many carts it mails), and how many open
//! carts lie beyond the candidate window (the dry-run table and the
//! preview count them instead of leaving them out unsaid).

use chrono::{DateTime, Utc};

use super::engine::args;
use super::{Store, count_from_sql, to_unix};

/// Whether any mail was ever sent, by the partial index on `sent_at`.
pub(crate) const HAS_SENT: &str = "SELECT EXISTS (SELECT 1 FROM sends WHERE sent_at IS NOT NULL)";

/// Open carts last active before `?1`, counted in the window's index.
pub(crate) const OPEN_BEFORE: &str =
    "SELECT count(*) FROM carts WHERE status = 'open' AND updated_at < ?1";

impl Store {
    /// Whether this store ever sent a mail.
    pub fn has_sent(&self) -> crate::error::Result<bool> {
        self.db()
            .value(HAS_SENT, args![])
            .map_err(|source| self.error(source))
    }

    /// Open carts last active before `before` (outside the window).
    pub fn open_carts_idle_before(&self, before: DateTime<Utc>) -> crate::error::Result<u64> {
        self.db()
            .value(OPEN_BEFORE, args![to_unix(before)])
            .map(count_from_sql)
            .map_err(|source| self.error(source))
    }
}
