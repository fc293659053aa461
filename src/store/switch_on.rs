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

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use crate::model::SendState;
    use crate::store::testing::{both_stores, put_carts};
    use crate::store::{Claim, Confirmation};

    #[test]
    fn a_store_knows_whether_it_ever_sent_and_what_lies_beyond_the_window() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        for (engine, store) in both_stores("recart_unit_ledger_switch_on") {
            let carts: Vec<_> = (0..3)
                .map(|n| {
                    let mut cart = crate::compose::sample_cart(now - TimeDelta::days(n));
                    cart.id = format!("c{n}");
                    cart
                })
                .collect();
            put_carts(&store, &carts);
            assert!(!store.has_sent().unwrap(), "{engine}");
            let idle = |days| store.open_carts_idle_before(now - TimeDelta::days(days));
            assert_eq!(idle(0).unwrap(), 3, "{engine}");
            assert_eq!(idle(1).unwrap(), 2, "{engine}");
            assert_eq!(idle(3).unwrap(), 0, "{engine}");
            let claim = Claim {
                cart_id: "c0".into(),
                step: "1h".into(),
                email: "sample@example.com".into(),
                variant: None,
            };
            store.claim(1, now, &[claim], false).unwrap();
            assert!(!store.has_sent().unwrap(), "{engine}: only claimed");
            let sent = Confirmation {
                cart_id: "c0".into(),
                step: "1h".into(),
                state: SendState::Sent,
                reason: None,
                message_id: None,
            };
            store.confirm(1, now, &[(sent, true)], 5).unwrap();
            assert!(store.has_sent().unwrap(), "{engine}");
        }
    }
}
