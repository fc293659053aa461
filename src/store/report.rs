//! What `recart report` and `recart runs` read from the store.

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::model::SendState;

use super::engine::{DbResult, args};
use super::{Store, count_from_sql, from_unix, to_unix};

/// A ledger entry in the report's period.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSend {
    pub cart_id: String,
    pub email_norm: String,
    pub step: String,
    pub state: SendState,
    pub claimed_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The A/B variant the mail used, if its step has variants.
    pub variant: Option<String>,
}

/// A click on a recovery link of one of the period's sends.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportClick {
    pub cart_id: String,
    pub step: String,
    pub clicked_at: DateTime<Utc>,
}

/// What `recart report` reads for a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportData {
    pub sends: Vec<ReportSend>,
    pub orders: Vec<ReportOrder>,
    /// (step or "", reason, count) of the period's runs.
    pub skips: Vec<(String, String, u64)>,
    pub clicks: Vec<ReportClick>,
    /// (address, when) of unsubscribes (suppressions with reason
    /// `unsubscribe`) in the period, of addresses the period's sends went to.
    pub unsubscribes: Vec<(String, DateTime<Utc>)>,
    /// (cart, step) of the period's sends a complaint came back for.
    pub complaints: Vec<(String, String)>,
}

/// An order that may be attributed to a reminder.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOrder {
    pub id: String,
    pub email_norm: String,
    pub created_at: DateTime<Utc>,
    pub total_minor: i64,
    pub currency: String,
}

/// One row of `recart runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    pub imported: i64,
    pub sent: i64,
    pub skipped: i64,
    pub retry: i64,
    pub failed: i64,
    pub unknown: i64,
    pub exit_code: Option<i64>,
}

impl Store {
    /// Sends claimed within `[since, now]`; orders placed within
    /// `[since, now]` by the addresses those sends went to; skips recorded
    /// by runs whose `now` falls in the period; clicks (until `now`),
    /// unsubscribes and complaints that concern those sends.
    pub fn report_data(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<ReportData> {
        let db = self.db();
        let period = args![to_unix(since), to_unix(now)];
        let run = || -> DbResult<ReportData> {
            let mut data = ReportData::default();
            db.each(
                "SELECT cart_id, email_norm, step, state, claimed_at, sent_at, variant FROM sends
                 WHERE claimed_at BETWEEN ?1 AND ?2 ORDER BY claimed_at, cart_id, step",
                period,
                |row| {
                    let state: String = row.get(3)?;
                    data.sends.push(ReportSend {
                        cart_id: row.get(0)?,
                        email_norm: row.get(1)?,
                        step: row.get(2)?,
                        state: state.parse().unwrap_or(SendState::Unknown),
                        claimed_at: from_unix(row.get(4)?),
                        sent_at: row.get::<Option<i64>>(5)?.map(from_unix),
                        variant: row.get(6)?,
                    });
                    Ok(())
                },
            )?;
            db.each(
                "SELECT id, email_norm, created_at, total_minor, currency FROM orders
                 WHERE created_at BETWEEN ?1 AND ?2 AND email_norm IN (
                     SELECT email_norm FROM sends WHERE claimed_at BETWEEN ?1 AND ?2)
                 ORDER BY created_at, id",
                period,
                |row| {
                    data.orders.push(ReportOrder {
                        id: row.get(0)?,
                        email_norm: row.get(1)?,
                        created_at: from_unix(row.get(2)?),
                        total_minor: row.get(3)?,
                        currency: row.get(4)?,
                    });
                    Ok(())
                },
            )?;
            // `SUM` is NUMERIC on PostgreSQL: read back as an i64 all the same.
            db.each(
                "SELECT k.step, k.reason, SUM(k.count) FROM run_skips k JOIN runs r ON r.id = k.run_id
                 WHERE r.now BETWEEN ?1 AND ?2 GROUP BY k.step, k.reason ORDER BY k.step, k.reason",
                period,
                |row| {
                    data.skips
                        .push((row.get(0)?, row.get(1)?, count_from_sql(row.get(2)?)));
                    Ok(())
                },
            )?;
            db.each(
                "SELECT k.cart_id, k.step, k.clicked_at FROM clicks k
                 JOIN sends s ON s.cart_id = k.cart_id AND s.step = k.step
                 WHERE s.claimed_at BETWEEN ?1 AND ?2 AND k.clicked_at <= ?2
                 ORDER BY k.clicked_at, k.id",
                period,
                |row| {
                    data.clicks.push(ReportClick {
                        cart_id: row.get(0)?,
                        step: row.get(1)?,
                        clicked_at: from_unix(row.get(2)?),
                    });
                    Ok(())
                },
            )?;
            db.each(
                "SELECT email_norm, created_at FROM suppressions
                 WHERE reason = 'unsubscribe' AND created_at BETWEEN ?1 AND ?2 AND email_norm IN (
                     SELECT email_norm FROM sends WHERE claimed_at BETWEEN ?1 AND ?2)
                 ORDER BY created_at, email_norm",
                period,
                |row| {
                    data.unsubscribes
                        .push((row.get(0)?, from_unix(row.get(1)?)));
                    Ok(())
                },
            )?;
            db.each(
                "SELECT DISTINCT r.cart_id, r.step FROM mail_reports r
                 JOIN sends s ON s.cart_id = r.cart_id AND s.step = r.step
                 WHERE r.outcome = 'complaint' AND s.claimed_at BETWEEN ?1 AND ?2
                 ORDER BY r.cart_id, r.step",
                period,
                |row| {
                    data.complaints.push((row.get(0)?, row.get(1)?));
                    Ok(())
                },
            )?;
            Ok(data)
        };
        run().map_err(|source| self.error(source))
    }

    /// The most recent runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>> {
        let mut runs = Vec::new();
        self.db()
            .each(
                "SELECT id, started_at, finished_at, now, imported, sent, skipped, retry, failed,
                        unknown, exit_code
                 FROM runs ORDER BY id DESC LIMIT ?1",
                args![i64::try_from(limit).unwrap_or(i64::MAX)],
                |row| {
                    runs.push(RunRow {
                        id: row.get(0)?,
                        started_at: from_unix(row.get(1)?),
                        finished_at: row.get::<Option<i64>>(2)?.map(from_unix),
                        now: from_unix(row.get(3)?),
                        imported: row.get(4)?,
                        sent: row.get(5)?,
                        skipped: row.get(6)?,
                        retry: row.get(7)?,
                        failed: row.get(8)?,
                        unknown: row.get(9)?,
                        exit_code: row.get(10)?,
                    });
                    Ok(())
                },
            )
            .map_err(|source| self.error(source))?;
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_stores;

    fn at(seconds: i64) -> DateTime<Utc> {
        from_unix(seconds)
    }

    /// Sends, orders, runs, clicks, unsubscribes and complaints in and
    /// around the period [1000, 5000].
    const DATA: &str = "
        INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts, claimed_at,
                           sent_at, variant)
        VALUES ('C1', '1h', 'Ann@x', 'ann@x', 'sent', 1, 1, 1500, 1510, 'reminder-a'),
               ('C2', '24h', 'bob@x', 'bob@x', 'unknown', 2, 2, 2000, NULL, NULL),
               ('C3', '1h', 'cy@x', 'cy@x', 'sent', 1, 1, 500, 510, NULL),
               ('C4', '1h', 'dee@x', 'dee@x', 'bounced', 3, 1, 6000, 6010, NULL);
        INSERT INTO orders (id, email, email_norm, cart_id, total_minor, currency, created_at)
        VALUES ('O1', 'Ann@x', 'ann@x', 'C1', 4999, 'EUR', 3000),
               ('O2', 'cy@x', 'cy@x', NULL, 100, 'EUR', 3000),
               ('O3', 'Ann@x', 'ann@x', NULL, 200, 'EUR', 6000);
        INSERT INTO runs (id, started_at, finished_at, now, imported, sent, skipped, retry,
                          failed, unknown, exit_code)
        VALUES (1, 1990, 2100, 2000, 10, 1, 2, 0, 0, 0, 0),
               (2, 3990, NULL, 4000, 0, 0, 4, 1, 0, 1, NULL),
               (3, 6990, 7100, 7000, 5, 1, 100, 0, 1, 0, 3);
        INSERT INTO run_skips (run_id, step, reason, count)
        VALUES (1, '1h', 'quiet-hours', 2), (2, '1h', 'quiet-hours', 3),
               (2, '', 'suppressed', 1), (3, '1h', 'quiet-hours', 100);
        INSERT INTO suppressions (email_norm, reason, created_at)
        VALUES ('ann@x', 'unsubscribe', 3500), ('bob@x', 'hard-bounce', 3500),
               ('cy@x', 'unsubscribe', 3500);
        INSERT INTO mail_reports (key, outcome, cart_id, step, detail, processed_at)
        VALUES ('id:1', 'complaint', 'C2', '24h', '', 4000),
               ('id:2', 'complaint', 'C2', '24h', '', 4100),
               ('id:3', 'complaint', 'C3', '1h', '', 4100),
               ('id:4', 'hard-bounce', 'C1', '1h', '', 4100);
    ";

    #[test]
    fn a_period_reads_the_same_on_both_engines() {
        for (engine, store) in both_stores("recart_unit_report_period") {
            store.db().batch(DATA).unwrap();
            store.record_click("C1", "1h", at(2500)).unwrap();
            // After the period's end, and about a send before its start.
            store.record_click("C2", "24h", at(6000)).unwrap();
            store.record_click("C3", "1h", at(2500)).unwrap();
            let data = store.report_data(at(1000), at(5000)).unwrap();
            let expected = ReportData {
                sends: vec![
                    ReportSend {
                        cart_id: "C1".into(),
                        email_norm: "ann@x".into(),
                        step: "1h".into(),
                        state: SendState::Sent,
                        claimed_at: at(1500),
                        sent_at: Some(at(1510)),
                        variant: Some("reminder-a".into()),
                    },
                    ReportSend {
                        cart_id: "C2".into(),
                        email_norm: "bob@x".into(),
                        step: "24h".into(),
                        state: SendState::Unknown,
                        claimed_at: at(2000),
                        sent_at: None,
                        variant: None,
                    },
                ],
                orders: vec![ReportOrder {
                    id: "O1".into(),
                    email_norm: "ann@x".into(),
                    created_at: at(3000),
                    total_minor: 4999,
                    currency: "EUR".into(),
                }],
                // Summed over the period's runs (a NUMERIC on PostgreSQL).
                skips: vec![
                    (String::new(), "suppressed".into(), 1),
                    ("1h".into(), "quiet-hours".into(), 5),
                ],
                clicks: vec![ReportClick {
                    cart_id: "C1".into(),
                    step: "1h".into(),
                    clicked_at: at(2500),
                }],
                unsubscribes: vec![("ann@x".into(), at(3500))],
                complaints: vec![("C2".into(), "24h".into())],
            };
            assert_eq!(data, expected, "{engine}");
            // A period without anything in it.
            assert_eq!(
                store.report_data(at(8000), at(9000)).unwrap(),
                ReportData::default(),
                "{engine}"
            );
        }
    }

    #[test]
    fn runs_come_newest_first() {
        for (engine, store) in both_stores("recart_unit_report_runs") {
            store.db().batch(DATA).unwrap();
            let runs = store.runs(2).unwrap();
            assert_eq!(
                runs,
                [
                    RunRow {
                        id: 3,
                        started_at: at(6990),
                        finished_at: Some(at(7100)),
                        now: at(7000),
                        imported: 5,
                        sent: 1,
                        skipped: 100,
                        retry: 0,
                        failed: 1,
                        unknown: 0,
                        exit_code: Some(3),
                    },
                    RunRow {
                        id: 2,
                        started_at: at(3990),
                        finished_at: None,
                        now: at(4000),
                        imported: 0,
                        sent: 0,
                        skipped: 4,
                        retry: 1,
                        failed: 0,
                        unknown: 1,
                        exit_code: None,
                    },
                ],
                "{engine}"
            );
            let all: Vec<i64> = store.runs(10).unwrap().iter().map(|run| run.id).collect();
            assert_eq!(all, [3, 2, 1], "{engine}");
        }
    }
}
