//! What `recart serve` reads and writes: the address and locale behind a
//! link's cart, whether an address is suppressed, and the clicks on
//! recovery links.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use crate::error::Result;
use crate::model::normalize_email;

use super::{Store, to_unix};

/// Whom a cart's links were sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub email: String,
    pub locale: String,
}

/// A click on a recovery link, as `clicks` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    pub cart_id: String,
    pub step: String,
    /// The variant the ledger recorded for the reminder, if any.
    pub variant: Option<String>,
    pub at: DateTime<Utc>,
}

impl Store {
    /// The address and locale of a stored cart (not its items).
    pub fn recipient(&self, cart_id: &str) -> Result<Option<Recipient>> {
        self.conn()
            .prepare_cached("SELECT email, locale FROM carts WHERE id = ?1")
            .and_then(|mut query| {
                query
                    .query_row([cart_id], |row| {
                        Ok(Recipient {
                            email: row.get(0)?,
                            locale: row.get(1)?,
                        })
                    })
                    .optional()
            })
            .map_err(|source| self.error(source))
    }

    /// Whether the address is suppressed (any case).
    pub fn is_suppressed(&self, email: &str) -> Result<bool> {
        self.conn()
            .prepare_cached("SELECT 1 FROM suppressions WHERE email_norm = ?1")
            .and_then(|mut query| query.exists([normalize_email(email)]))
            .map_err(|source| self.error(source))
    }

    /// Records a click on the recovery link of (cart, step), with the
    /// variant the ledger recorded for that reminder, if any.
    pub fn record_click(&self, cart_id: &str, step: &str, at: DateTime<Utc>) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO clicks (cart_id, step, variant, clicked_at)
                 VALUES (?1, ?2, (SELECT variant FROM sends WHERE cart_id = ?1 AND step = ?2), ?3)",
            )?
            .execute((cart_id, step, to_unix(at)))
        })
        .map(|_| ())
    }

    /// Clicks recorded at or after `since`, oldest first.
    pub fn clicks(&self, since: DateTime<Utc>) -> Result<Vec<Click>> {
        let run = || -> rusqlite::Result<Vec<Click>> {
            let mut query = self.conn().prepare(
                "SELECT cart_id, step, variant, clicked_at FROM clicks
                 WHERE clicked_at >= ?1 ORDER BY clicked_at, id",
            )?;
            query
                .query_map([to_unix(since)], |row| {
                    Ok(Click {
                        cart_id: row.get(0)?,
                        step: row.get(1)?,
                        variant: row.get(2)?,
                        at: super::from_unix(row.get(3)?),
                    })
                })?
                .collect()
        };
        run().map_err(|source| self.error(source))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn clicks_carry_the_variant_the_ledger_sent() {
        let store = Store::open_in_memory().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        store
            .conn()
            .execute_batch(
                "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts, claimed_at, variant)
                 VALUES ('C1', '1h', 'a@example.com', 'a@example.com', 'sent', 1, 1, 0, 'reminder-b')",
            )
            .unwrap();
        store.record_click("C1", "1h", at).unwrap();
        store.record_click("C1", "24h", at).unwrap();
        assert_eq!(
            store.clicks(at).unwrap(),
            vec![
                Click {
                    cart_id: "C1".into(),
                    step: "1h".into(),
                    variant: Some("reminder-b".into()),
                    at
                },
                Click {
                    cart_id: "C1".into(),
                    step: "24h".into(),
                    variant: None,
                    at
                },
            ]
        );
        assert!(store.recipient("C1").unwrap().is_none());
        assert!(!store.is_suppressed("A@example.com").unwrap());
        store
            .suppress(&["a@example.com".into()], "unsubscribe", at)
            .unwrap();
        assert!(store.is_suppressed("A@example.com").unwrap());
    }
}
