//! What `recart serve` reads and writes: the address and locale behind a
//! link's cart, whether an address is suppressed, and the clicks on
//! recovery links.

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::model::normalize_email;

use super::engine::args;
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
        self.db()
            .one(
                "SELECT email, locale FROM carts WHERE id = ?1",
                args![cart_id],
                |row| {
                    Ok(Recipient {
                        email: row.get(0)?,
                        locale: row.get(1)?,
                    })
                },
            )
            .map_err(|source| self.error(source))
    }

    /// Whether the address is suppressed (any case).
    pub fn is_suppressed(&self, email: &str) -> Result<bool> {
        self.db()
            .one(
                "SELECT 1 FROM suppressions WHERE email_norm = ?1",
                args![&normalize_email(email)],
                |_| Ok(()),
            )
            .map(|found| found.is_some())
            .map_err(|source| self.error(source))
    }

    /// Records a click on the recovery link of (cart, step), with the
    /// variant the ledger recorded for that reminder, if any.
    pub fn record_click(&self, cart_id: &str, step: &str, at: DateTime<Utc>) -> Result<()> {
        self.write_db(|db| {
            db.execute(
                "INSERT INTO clicks (cart_id, step, variant, clicked_at)
                 VALUES (?1, ?2, (SELECT variant FROM sends WHERE cart_id = ?1 AND step = ?2), ?3)",
                args![cart_id, step, to_unix(at)],
            )
        })
        .map(|_| ())
    }

    /// Clicks recorded at or after `since`, oldest first.
    pub fn clicks(&self, since: DateTime<Utc>) -> Result<Vec<Click>> {
        let mut clicks = Vec::new();
        self.db()
            .each(
                "SELECT cart_id, step, variant, clicked_at FROM clicks
                 WHERE clicked_at >= ?1 ORDER BY clicked_at, id",
                args![to_unix(since)],
                |row| {
                    clicks.push(Click {
                        cart_id: row.get(0)?,
                        step: row.get(1)?,
                        variant: row.get(2)?,
                        at: super::from_unix(row.get(3)?),
                    });
                    Ok(())
                },
            )
            .map_err(|source| self.error(source))?;
        Ok(clicks)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::store::testing::both_stores;

    #[test]
    fn clicks_carry_the_variant_the_ledger_sent() {
        for (engine, store) in both_stores("recart_unit_clicks_variant") {
            let at = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
            store
                .db()
                .batch(
                    "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts, claimed_at, variant)
                     VALUES ('C1', '1h', 'a@example.com', 'a@example.com', 'sent', 1, 1, 0, 'reminder-b')",
                )
                .unwrap();
            store.record_click("C1", "1h", at).unwrap();
            store.record_click("C1", "24h", at).unwrap();
            let later = at + chrono::Duration::hours(1);
            store.record_click("C1", "1h", later).unwrap();
            let click = |step: &str, variant: Option<&str>, at| Click {
                cart_id: "C1".into(),
                step: step.into(),
                variant: variant.map(Into::into),
                at,
            };
            assert_eq!(
                store.clicks(at).unwrap(),
                vec![
                    click("1h", Some("reminder-b"), at),
                    click("24h", None, at),
                    click("1h", Some("reminder-b"), later),
                ],
                "{engine}"
            );
            // Since a time: the clicks from then on.
            assert_eq!(
                store.clicks(later).unwrap(),
                vec![click("1h", Some("reminder-b"), later)],
                "{engine}"
            );
        }
    }

    #[test]
    fn a_link_finds_its_cart_and_a_suppressed_address_in_any_case() {
        for (engine, store) in both_stores("recart_unit_clicks_recipient") {
            assert_eq!(store.recipient("C1").unwrap(), None, "{engine}");
            store
                .db()
                .execute(
                    "INSERT INTO carts (id, email, email_norm, first_name, locale, currency, status,
                                        accepts_marketing, created_at, updated_at, total_minor,
                                        item_count, snapshot_hash)
                     VALUES ('C1', 'Ann@x.example', 'ann@x.example', 'Ann', 'de', 'EUR', 'open',
                             1, 0, 0, 1000, 1, ?1)",
                    args![&b"hash"[..]],
                )
                .unwrap();
            assert_eq!(
                store.recipient("C1").unwrap(),
                Some(Recipient {
                    email: "Ann@x.example".into(),
                    locale: "de".into()
                }),
                "{engine}"
            );
            assert!(!store.is_suppressed("A@example.com").unwrap(), "{engine}");
            store
                .db()
                .batch(
                    "INSERT INTO suppressions (email_norm, reason, created_at)
                     VALUES ('a@example.com', 'unsubscribe', 0)",
                )
                .unwrap();
            assert!(store.is_suppressed("A@example.com").unwrap(), "{engine}");
            assert!(!store.is_suppressed("b@example.com").unwrap(), "{engine}");
        }
    }
}
