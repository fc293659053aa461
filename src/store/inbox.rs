//! What came back to the inbox (`bounces import`): the sends reports name,
//! found by Message-ID, and each report's outcome, recorded once with its
//! effect on the ledger and the suppression list.

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::model::SendState;

use super::engine::{DbResult, Row, args};
use super::{Store, to_unix};

/// A send a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    pub cart_id: String,
    pub step: String,
    /// Empty once `prune` or `forget` erased it.
    pub email_norm: String,
    pub state: SendState,
}

/// What recording a report does besides remembering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// A permanent failure: the send is `bounced` (if it was `sent` or
    /// `unknown`), its address suppressed as `hard-bounce`.
    HardBounce,
    /// Its address suppressed as `complaint`.
    Complaint,
}

/// One report read, as `record_report` stores it.
#[derive(Debug, Clone)]
pub struct InboxReport<'a> {
    /// `id:<Message-ID>`, or `sha256:<hex>` of its bytes.
    pub key: &'a str,
    pub outcome: &'a str,
    pub send: Option<&'a SentMail>,
    pub detail: &'a str,
    pub effect: Effect,
}

const SEND_COLUMNS: &str = "cart_id, step, email_norm, state";

fn sent_mail(row: &Row<'_>) -> DbResult<SentMail> {
    let state: String = row.get(3)?;
    Ok(SentMail {
        cart_id: row.get(0)?,
        step: row.get(1)?,
        email_norm: row.get(2)?,
        state: state.parse().unwrap_or(SendState::Unknown),
    })
}

impl Store {
    /// Whether a report with this key was read before.
    pub fn report_seen(&self, key: &str) -> Result<bool> {
        self.db()
            .one(
                "SELECT 1 FROM mail_reports WHERE key = ?1",
                args![key],
                |_| Ok(()),
            )
            .map(|found| found.is_some())
            .map_err(|source| self.error(source))
    }

    /// The send whose Message-ID is `<id>`.
    pub fn send_by_message_id(&self, id: &str) -> Result<Option<SentMail>> {
        self.db()
            .one(
                &format!("SELECT {SEND_COLUMNS} FROM sends WHERE message_id = ?1"),
                args![&format!("<{id}>")],
                sent_mail,
            )
            .map_err(|source| self.error(source))
    }

    /// The send whose Message-ID starts with `<digest>.recart@` (whatever
    /// the domain `from` had then): what a return-path token names.
    pub fn send_by_digest(&self, digest: &str) -> Result<Option<SentMail>> {
        let start = format!("<{digest}.recart@");
        // Every character of a domain sorts below DEL (in byte order:
        // `SQLite`'s, and PostgreSQL's in a "C" collation).
        let end = format!("{start}\u{7f}");
        self.db()
            .one(
                &format!(
                    "SELECT {SEND_COLUMNS} FROM sends
                     WHERE message_id >= ?1 AND message_id < ?2 LIMIT 1"
                ),
                args![&start, &end],
                sent_mail,
            )
            .map_err(|source| self.error(source))
    }

    /// Records a report and its effect in one transaction. Returns false
    /// (and does nothing) if a report with its key was recorded first.
    pub fn record_report(&self, report: &InboxReport<'_>, now: DateTime<Utc>) -> Result<bool> {
        self.write_db(|db| {
            let added = db.execute(
                "INSERT INTO mail_reports (key, outcome, cart_id, step, detail, processed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key) DO NOTHING",
                args![
                    report.key,
                    report.outcome,
                    report.send.map(|send| &send.cart_id),
                    report.send.map(|send| &send.step),
                    report.detail,
                    to_unix(now)
                ],
            )?;
            if added == 0 {
                return Ok(false);
            }
            let Some(send) = report.send else {
                return Ok(true);
            };
            let reason = match report.effect {
                Effect::None => return Ok(true),
                Effect::HardBounce => {
                    db.execute(
                        "UPDATE sends SET state = 'bounced', reason = ?3
                         WHERE cart_id = ?1 AND step = ?2 AND state IN ('sent', 'unknown')",
                        args![&send.cart_id, &send.step, report.detail],
                    )?;
                    "hard-bounce"
                }
                Effect::Complaint => "complaint",
            };
            // An address erased since (`prune`, `forget`) is not known.
            if send.email_norm.contains('@') {
                db.execute(
                    "INSERT INTO suppressions (email_norm, reason, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (email_norm) DO NOTHING",
                    args![&send.email_norm, reason, to_unix(now)],
                )?;
            }
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_stores;

    /// A report finds its send by index, whatever the store's size.
    #[test]
    fn sends_are_found_by_message_id_through_the_index() {
        let store = Store::open_in_memory().unwrap();
        for sql in [
            format!("SELECT {SEND_COLUMNS} FROM sends WHERE message_id = ?1"),
            format!(
                "SELECT {SEND_COLUMNS} FROM sends WHERE message_id >= ?1 AND message_id < ?2 LIMIT 1"
            ),
        ] {
            let plan: Vec<String> = store
                .db()
                .sqlite()
                .unwrap()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(
                    rusqlite::params_from_iter(std::iter::repeat_n("", sql.matches('?').count())),
                    |row| row.get(3),
                )
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                plan.iter().any(|step| step.contains("sends_by_message_id")),
                "{sql}: {plan:?}"
            );
        }
    }

    #[test]
    fn a_report_is_recorded_once_with_its_effect() {
        for (engine, store) in both_stores("recart_unit_inbox_report") {
            let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap();
            store
                .db()
                .batch(
                    "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts,
                                        claimed_at, message_id)
                     VALUES ('C1', '1h', 'Ann@x.example', 'ann@x.example', 'sent', 1, 1, 0,
                             '<6000aee29d7c7feb02cd5206ad96832f.recart@old.example>')",
                )
                .unwrap();
            let send = store
                .send_by_digest("6000aee29d7c7feb02cd5206ad96832f")
                .unwrap()
                .unwrap();
            assert_eq!(
                (send.cart_id.as_str(), send.email_norm.as_str(), send.state),
                ("C1", "ann@x.example", SendState::Sent),
                "{engine}"
            );
            assert_eq!(
                store
                    .send_by_message_id("6000aee29d7c7feb02cd5206ad96832f.recart@old.example")
                    .unwrap(),
                Some(send.clone()),
                "{engine}"
            );
            assert_eq!(
                store.send_by_message_id("other@x").unwrap(),
                None,
                "{engine}"
            );
            assert_eq!(
                store.send_by_digest(&"0".repeat(32)).unwrap(),
                None,
                "{engine}"
            );
            // A digest is whole: its start alone names nothing.
            assert_eq!(store.send_by_digest("6000aee2").unwrap(), None, "{engine}");
            assert!(!store.report_seen("id:r1@mx").unwrap(), "{engine}");
            let report = InboxReport {
                key: "id:r1@mx",
                outcome: "hard-bounce",
                send: Some(&send),
                detail: "5.1.1",
                effect: Effect::HardBounce,
            };
            assert!(store.record_report(&report, now).unwrap(), "{engine}");
            assert!(!store.record_report(&report, now).unwrap(), "{engine}");
            assert!(store.report_seen("id:r1@mx").unwrap(), "{engine}");
            let (state, reason) = store
                .db()
                .one("SELECT state, reason FROM sends", args![], |row| {
                    Ok((row.get::<String>(0)?, row.get::<String>(1)?))
                })
                .unwrap()
                .unwrap();
            assert_eq!(
                (state.as_str(), reason.as_str()),
                ("bounced", "5.1.1"),
                "{engine}"
            );
            // A complaint about the same send: recorded, the address
            // stays suppressed as it first was.
            let complaint = InboxReport {
                key: "sha256:ab",
                outcome: "complaint",
                send: Some(&send),
                detail: "",
                effect: Effect::Complaint,
            };
            assert!(store.record_report(&complaint, now).unwrap(), "{engine}");
            // A report about no known send: remembered, nothing else.
            let stray = InboxReport {
                key: "id:r2@mx",
                outcome: "delayed",
                send: None,
                detail: "",
                effect: Effect::None,
            };
            assert!(store.record_report(&stray, now).unwrap(), "{engine}");
            let mut suppressed = Vec::new();
            store
                .db()
                .each(
                    "SELECT email_norm, reason, created_at FROM suppressions",
                    args![],
                    |row| {
                        suppressed.push((
                            row.get::<String>(0)?,
                            row.get::<String>(1)?,
                            row.get::<i64>(2)?,
                        ));
                        Ok(())
                    },
                )
                .unwrap();
            assert_eq!(
                suppressed,
                [(
                    "ann@x.example".to_string(),
                    "hard-bounce".to_string(),
                    1_795_000_000
                )],
                "{engine}"
            );
            let reports: i64 = store
                .db()
                .value(
                    "SELECT COUNT(*) FROM mail_reports WHERE cart_id IS NOT NULL",
                    args![],
                )
                .unwrap();
            assert_eq!(reports, 2, "{engine}");
        }
    }
}
