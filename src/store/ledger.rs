//! The sends ledger: what the plan needs to know of past sends, and the
//! claim → send → confirm protocol that makes every (cart, step) go out at
//! most once, even across crashed or overlapping runs.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::params;

use crate::error::Result;
use crate::model::{SendState, normalize_email};
use crate::plan::{History, OrderFact, Policy, SendRecord};

use super::{Store, count_to_sql, from_unix, to_unix};

/// A send about to be attempted.
#[derive(Debug, Clone)]
pub struct Claim {
    pub cart_id: String,
    pub step: String,
    pub email: String,
    /// The A/B variant (template) the mail uses, if the step has variants.
    pub variant: Option<String>,
}

/// The outcome of one attempted send.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub cart_id: String,
    pub step: String,
    pub state: SendState,
    pub reason: Option<String>,
    pub message_id: Option<String>,
}

/// A claim no run confirmed within the lease: its run died (or still
/// sends, past the lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadClaim {
    pub cart_id: String,
    pub step: String,
    pub run_id: i64,
}

/// A step the plan passed over for a cart: recorded `skipped`, so that it
/// is never sent, and the cart's later steps go on.
#[derive(Debug, Clone, Copy)]
pub struct PassOver<'a> {
    pub cart_id: &'a str,
    pub step: &'a str,
    pub email: &'a str,
    /// The skip reason: the condition the cart did not meet.
    pub reason: &'a str,
}

/// A send whose outcome is unknown, for an operator to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSend {
    pub cart_id: String,
    pub step: String,
    pub email: String,
    pub claimed_at: DateTime<Utc>,
    pub run_id: Option<i64>,
    pub reason: Option<String>,
}

/// Figures of one run, as recorded in the `runs` and `run_skips` tables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunCounts {
    pub imported: u64,
    pub sent: u64,
    pub skipped: u64,
    pub retry: u64,
    pub failed: u64,
    pub unknown: u64,
    /// (step or "", reason) → how many carts were skipped so.
    pub skips: std::collections::BTreeMap<(String, String), u64>,
}

/// The ledger entries of the window's carts.
pub(crate) const HISTORY_SENDS: &str = "SELECT s.cart_id, s.step, s.state, s.attempts, s.claimed_at
                 FROM sends s JOIN carts c ON c.id = s.cart_id
                 WHERE c.status = 'open' AND c.updated_at BETWEEN ?1 AND ?2";

/// Reminders (possibly) sent since ?1, with their steps (the caps count
/// per channel): bounded by time, not by the store.
pub(crate) const RECENT_SENDS: &str = "SELECT email_norm, claimed_at, step FROM sends
                 WHERE claimed_at > ?1 AND state IN ('sent', 'claimed', 'unknown')";

/// Orders since ?3 of the window's addresses, with their SKUs.
pub(crate) const HISTORY_ORDERS: &str = "SELECT o.id, o.email_norm, o.created_at, i.sku FROM orders o
                 LEFT JOIN order_items i ON i.order_id = o.id
                 WHERE o.created_at >= ?3 AND o.email_norm IN (
                    SELECT email_norm FROM carts WHERE status = 'open' AND updated_at BETWEEN ?1 AND ?2)
                 ORDER BY o.id";

/// The suppressed addresses among the window's.
pub(crate) const HISTORY_SUPPRESSED: &str =
    "SELECT DISTINCT s.email_norm FROM suppressions s JOIN carts c ON c.email_norm = s.email_norm
                 WHERE c.status = 'open' AND c.updated_at BETWEEN ?1 AND ?2";

impl Store {
    /// Ledger entries, recent sends, orders and suppressions that concern
    /// the open carts last active within `[oldest, newest]`.
    pub fn history(
        &self,
        oldest: DateTime<Utc>,
        newest: DateTime<Utc>,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<History> {
        let run = || -> rusqlite::Result<History> {
            let mut history = History::default();
            let window = params![to_unix(oldest), to_unix(newest)];
            let mut sends = self.conn().prepare_cached(HISTORY_SENDS)?;
            let mut rows = sends.query(window)?;
            while let Some(row) = rows.next()? {
                let state: String = row.get(2)?;
                let record = SendRecord {
                    state: state.parse::<SendState>().unwrap_or(SendState::Unknown),
                    attempts: row.get(3)?,
                    at: from_unix(row.get(4)?),
                };
                history
                    .sends
                    .entry(row.get(0)?)
                    .or_default()
                    .insert(row.get(1)?, record);
            }
            // A claimed or unknown send may have reached the inbox: it counts
            // for the caps like a sent one.
            let caps_since = now - policy.cooldown.max(policy.window);
            let mut recent = self.conn().prepare_cached(RECENT_SENDS)?;
            let mut rows = recent.query([to_unix(caps_since)])?;
            while let Some(row) = rows.next()? {
                let step = row.get_ref(2)?.as_str()?;
                history.add_recent(row.get(0)?, from_unix(row.get(1)?), step);
            }
            let orders_since = oldest.min(now - policy.purchased_within);
            let mut orders = self.conn().prepare_cached(HISTORY_ORDERS)?;
            let mut rows = orders.query(params![
                to_unix(oldest),
                to_unix(newest),
                to_unix(orders_since)
            ])?;
            let mut last_order: Option<String> = None;
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let email_norm: String = row.get(1)?;
                let sku: Option<String> = row.get(3)?;
                let facts = history.orders.entry(email_norm).or_default();
                // One fact per order; its SKUs come one row each.
                if last_order.as_deref() != Some(id.as_str()) {
                    facts.push(OrderFact {
                        created_at: from_unix(row.get(2)?),
                        skus: HashSet::default(),
                    });
                    last_order = Some(id);
                }
                if let (Some(sku), Some(fact)) = (sku, facts.last_mut()) {
                    fact.skus.insert(sku);
                }
            }
            let mut suppressed = self.conn().prepare_cached(HISTORY_SUPPRESSED)?;
            let mut rows = suppressed.query(window)?;
            while let Some(row) = rows.next()? {
                history.suppressed.insert(row.get(0)?);
            }
            // Forgotten people are known by a hash only: match the
            // candidates' addresses against it.
            let forgotten = self.forgotten_hashes().map_err(|error| match error {
                crate::error::Error::Store {
                    source: super::engine::DbError::Sqlite(source),
                    ..
                } => source,
                other => rusqlite::Error::ToSqlConversionFailure(other.to_string().into()),
            })?;
            if !forgotten.is_empty() {
                let mut addresses = self.conn().prepare_cached(
                    "SELECT DISTINCT email_norm FROM carts
                     WHERE status = 'open' AND updated_at BETWEEN ?1 AND ?2",
                )?;
                let mut rows = addresses.query(window)?;
                while let Some(row) = rows.next()? {
                    let address: String = row.get(0)?;
                    if forgotten.contains(&super::forget_hash(&address)) {
                        history.suppressed.insert(address);
                    }
                }
            }
            Ok(history)
        };
        run().map_err(|source| self.error(source))
    }

    /// Claims sends before they leave, in one IMMEDIATE transaction. A claim
    /// succeeds only for a (cart, step) with no ledger entry or one in
    /// `retry`, whose cart is still open and whose address is not
    /// suppressed — so a send another run claimed, or a cart bought since
    /// the plan, is never sent. Returns which claims were won.
    pub fn claim(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        claims: &[Claim],
        resend_unknown: bool,
    ) -> Result<Vec<bool>> {
        // Which existing entries may be claimed again.
        let reclaimable = if resend_unknown {
            "sends.state IN ('retry', 'unknown')"
        } else {
            "sends.state = 'retry'"
        };
        self.write(|conn| {
            let mut insert = conn.prepare_cached(&format!(
                "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts, claimed_at, variant)
                 SELECT ?1, ?2, ?3, ?4, 'claimed', ?5, 1, ?6, ?7
                 WHERE EXISTS (SELECT 1 FROM carts WHERE id = ?1 AND status = 'open')
                   AND NOT EXISTS (SELECT 1 FROM suppressions WHERE email_norm = ?4)
                 ON CONFLICT (cart_id, step) DO UPDATE SET
                    state = 'claimed', run_id = excluded.run_id, attempts = sends.attempts + 1,
                    claimed_at = excluded.claimed_at, email = excluded.email,
                    email_norm = excluded.email_norm, reason = NULL, variant = excluded.variant
                 WHERE {reclaimable}"
            ))?;
            claims
                .iter()
                .map(|claim| {
                    let changed = insert.execute(params![
                        claim.cart_id,
                        claim.step,
                        claim.email,
                        normalize_email(&claim.email),
                        run_id,
                        to_unix(now),
                        claim.variant,
                    ])?;
                    Ok(changed == 1)
                })
                .collect()
        })
    }

    /// Records steps passed over (`skipped`), in one transaction: over no
    /// entry, or one in `retry` (a mail refused for now and never
    /// delivered); any other entry stays as it is.
    pub fn pass_over(&self, run_id: i64, now: DateTime<Utc>, steps: &[PassOver<'_>]) -> Result<()> {
        self.write(|conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts, claimed_at, reason)
                 VALUES (?1, ?2, ?3, ?4, 'skipped', ?5, 0, ?6, ?7)
                 ON CONFLICT (cart_id, step) DO UPDATE SET
                    state = 'skipped', run_id = excluded.run_id, claimed_at = excluded.claimed_at,
                    reason = excluded.reason
                 WHERE sends.state = 'retry'",
            )?;
            for step in steps {
                insert.execute(params![
                    step.cart_id,
                    step.step,
                    step.email,
                    normalize_email(step.email),
                    run_id,
                    to_unix(now),
                    step.reason,
                ])?;
            }
            Ok(())
        })
    }

    /// Records the outcome of claimed sends. A claim whose mail was never
    /// handed to the server (`handed_over` false) is released: it stays due.
    /// A `retry` on the last allowed attempt becomes `failed`.
    pub fn confirm(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        outcomes: &[(Confirmation, bool)],
        max_attempts: u32,
    ) -> Result<()> {
        self.write(|conn| {
            let mut update = conn.prepare_cached(
                "UPDATE sends SET
                        state = CASE WHEN ?3 = 'retry' AND attempts >= ?8 THEN 'failed' ELSE ?3 END,
                        reason = CASE WHEN ?3 = 'retry' AND attempts >= ?8
                                      THEN 'gave up after ' || attempts || ' attempts: ' || ?4
                                      ELSE ?4 END,
                        message_id = ?5,
                        sent_at = CASE WHEN ?3 = 'sent' THEN ?6 ELSE sent_at END
                 WHERE cart_id = ?1 AND step = ?2 AND run_id = ?7 AND state = 'claimed'",
            )?;
            let mut release_new = conn.prepare_cached(
                "DELETE FROM sends
                 WHERE cart_id = ?1 AND step = ?2 AND run_id = ?3 AND state = 'claimed' AND attempts = 1",
            )?;
            let mut release_retry = conn.prepare_cached(
                "UPDATE sends SET state = 'retry', attempts = attempts - 1
                 WHERE cart_id = ?1 AND step = ?2 AND run_id = ?3 AND state = 'claimed'",
            )?;
            for (outcome, handed_over) in outcomes {
                if *handed_over {
                    update.execute(params![
                        outcome.cart_id,
                        outcome.step,
                        outcome.state.as_str(),
                        outcome.reason,
                        outcome.message_id,
                        to_unix(now),
                        run_id,
                        max_attempts,
                    ])?;
                } else {
                    let key = params![outcome.cart_id, outcome.step, run_id];
                    if release_new.execute(key)? == 0 {
                        release_retry.execute(key)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// The claims older than `lease` that no run confirmed, by run.
    pub fn dead_claims(&self, now: DateTime<Utc>, lease: TimeDelta) -> Result<Vec<DeadClaim>> {
        let run = || -> rusqlite::Result<Vec<DeadClaim>> {
            let mut select = self.conn().prepare_cached(
                "SELECT cart_id, step, run_id FROM sends
                 WHERE state = 'claimed' AND claimed_at <= ?1
                 ORDER BY run_id, cart_id, step",
            )?;
            let rows = select.query_map([to_unix(now - lease)], |row| {
                Ok(DeadClaim {
                    cart_id: row.get(0)?,
                    step: row.get(1)?,
                    run_id: row.get(2)?,
                })
            })?;
            rows.collect()
        };
        run().map_err(|source| self.error(source))
    }

    /// The sends whose outcome is unknown, claimed within `[since, until]`,
    /// oldest first.
    pub fn unknown_sends(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<UnknownSend>> {
        let run = || -> rusqlite::Result<Vec<UnknownSend>> {
            let mut select = self.conn().prepare_cached(
                "SELECT cart_id, step, email, claimed_at, run_id, reason FROM sends
                 WHERE state = 'unknown' AND claimed_at BETWEEN ?1 AND ?2
                 ORDER BY claimed_at, cart_id, step",
            )?;
            let bounds = (
                since.map_or(i64::MIN, to_unix),
                until.map_or(i64::MAX, to_unix),
            );
            let rows = select.query_map([bounds.0, bounds.1], |row| {
                Ok(UnknownSend {
                    cart_id: row.get(0)?,
                    step: row.get(1)?,
                    email: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    claimed_at: from_unix(row.get(3)?),
                    run_id: row.get(4)?,
                    reason: row.get(5)?,
                })
            })?;
            rows.collect()
        };
        run().map_err(|source| self.error(source))
    }

    /// An operator's word on an unknown send: it was delivered (`sent`),
    /// or it was not and is due again (`retry`, after the usual wait from
    /// its claim). Returns whether
    /// (cart, step) was unknown.
    pub fn settle_unknown(
        &self,
        cart_id: &str,
        step: &str,
        state: SendState,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(|conn| {
            let changed = conn.execute(
                "UPDATE sends SET state = ?3,
                        reason = 'was unknown; settled by hand',
                        sent_at = CASE WHEN ?3 = 'sent' THEN ?4 ELSE sent_at END
                 WHERE cart_id = ?1 AND step = ?2 AND state = 'unknown'",
                params![cart_id, step, state.as_str(), to_unix(now)],
            )?;
            Ok(changed == 1)
        })
    }

    /// The runs that hold claims, dead or alive.
    pub fn claiming_runs(&self) -> Result<Vec<i64>> {
        let run = || -> rusqlite::Result<Vec<i64>> {
            let mut select = self.conn().prepare_cached(
                "SELECT DISTINCT run_id FROM sends WHERE state = 'claimed' ORDER BY run_id",
            )?;
            let rows = select.query_map([], |row| row.get(0))?;
            rows.collect()
        };
        run().map_err(|source| self.error(source))
    }

    /// Records the start of a run; returns its id.
    pub fn start_run(&self, started_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<i64> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO runs (started_at, now) VALUES (?1, ?2)",
                params![to_unix(started_at), to_unix(now)],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    pub fn finish_run(
        &self,
        run_id: i64,
        finished_at: DateTime<Utc>,
        counts: RunCounts,
        exit_code: u8,
    ) -> Result<()> {
        // Taken apart: the skips are moved into the closure, not copied.
        let RunCounts {
            imported,
            sent,
            skipped,
            retry,
            failed,
            unknown,
            skips,
        } = counts;
        self.write(|conn| {
            conn.execute(
                "UPDATE runs SET finished_at = ?2, imported = ?3, sent = ?4, skipped = ?5,
                        retry = ?6, failed = ?7, unknown = ?8, exit_code = ?9
                 WHERE id = ?1",
                params![
                    run_id,
                    to_unix(finished_at),
                    count_to_sql(imported),
                    count_to_sql(sent),
                    count_to_sql(skipped),
                    count_to_sql(retry),
                    count_to_sql(failed),
                    count_to_sql(unknown),
                    exit_code,
                ],
            )?;
            let mut insert = conn.prepare_cached(
                "INSERT INTO run_skips (run_id, step, reason, count) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for ((step, reason), count) in &skips {
                insert.execute(params![run_id, step, reason, count_to_sql(*count)])?;
            }
            Ok(())
        })
    }
}

impl Store {
    /// Adds addresses to the suppression list; returns how many were new.
    pub fn suppress(&self, emails: &[String], reason: &str, at: DateTime<Utc>) -> Result<u64> {
        self.write(|conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO suppressions (email_norm, reason, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (email_norm) DO NOTHING",
            )?;
            let mut added = 0;
            for email in emails {
                added +=
                    insert.execute(params![normalize_email(email), reason, to_unix(at)])? as u64;
            }
            Ok(added)
        })
    }

    /// Every suppressed address with its reason and time, by address.
    pub fn suppressions(&self) -> Result<Vec<(String, String, DateTime<Utc>)>> {
        let run = || -> rusqlite::Result<Vec<(String, String, DateTime<Utc>)>> {
            let mut query = self.conn().prepare(
                "SELECT email_norm, reason, created_at FROM suppressions ORDER BY email_norm",
            )?;
            query
                .query_map([], |row| {
                    Ok((row.get(0)?, row.get(1)?, from_unix(row.get(2)?)))
                })?
                .collect()
        };
        run().map_err(|source| self.error(source))
    }
}
