//! The sends ledger: what the plan needs to know of past sends, and the
//! claim → send → confirm protocol that makes every (cart, step) go out at
//! most once, even across crashed or overlapping runs.

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::Result;
use crate::model::{SendState, normalize_email};

use super::engine::{DbResult, Engine, Row, args};
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

/// A claim its run will never confirm: on `SQLite`, one older than the
/// lease (its run died, or still sends past the lease); on PostgreSQL,
/// one whose run is dead (no connection holds its lock).
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

/// Claims a (cart, step): a new entry, or over one in a state the
/// statement allows again, only while the cart is open and its address
/// not suppressed. Concurrent claims of one (cart, step) meet at its
/// unique key: one inserts (or updates), the other waits for it and then
/// sees a `claimed` entry it may not take.
macro_rules! claim_sql {
    ($reclaimable:literal) => {
        concat!(
            "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts, claimed_at, variant)
             SELECT ?1, ?2, ?3, ?4, 'claimed', ?5, 1, ?6, ?7
             WHERE EXISTS (SELECT 1 FROM carts WHERE id = ?1 AND status = 'open')
               AND NOT EXISTS (SELECT 1 FROM suppressions WHERE email_norm = ?4)
             ON CONFLICT (cart_id, step) DO UPDATE SET
                state = 'claimed', run_id = excluded.run_id, attempts = sends.attempts + 1,
                claimed_at = excluded.claimed_at, email = excluded.email,
                email_norm = excluded.email_norm, reason = NULL, variant = excluded.variant
             WHERE ",
            $reclaimable
        )
    };
}

/// A claim over no entry or one in `retry`.
const CLAIM: &str = claim_sql!("sends.state = 'retry'");

/// A claim over no entry, or one in `retry` or `unknown` (re-sending
/// unknown sends).
const CLAIM_OR_UNKNOWN: &str = claim_sql!("sends.state IN ('retry', 'unknown')");

/// Records an outcome: only over an entry this run (?7) still holds as
/// `claimed`, so a run whose claims another settled (it was taken for
/// dead) never overwrites what was recorded.
const CONFIRM: &str = "UPDATE sends SET
        state = CASE WHEN ?3 = 'retry' AND attempts >= ?8 THEN 'failed' ELSE ?3 END,
        reason = CASE WHEN ?3 = 'retry' AND attempts >= ?8
                      THEN 'gave up after ' || attempts || ' attempts: ' || ?4
                      ELSE ?4 END,
        message_id = ?5,
        sent_at = CASE WHEN ?3 = 'sent' THEN ?6 ELSE sent_at END
 WHERE cart_id = ?1 AND step = ?2 AND run_id = ?7 AND state = 'claimed'";

/// Releases a first claim this run still holds: as if never claimed.
const RELEASE_NEW: &str = "DELETE FROM sends
 WHERE cart_id = ?1 AND step = ?2 AND run_id = ?3 AND state = 'claimed' AND attempts = 1";

/// Releases a repeated claim this run still holds: `retry` again, the
/// attempt not counted.
const RELEASE_RETRY: &str = "UPDATE sends SET state = 'retry', attempts = attempts - 1
 WHERE cart_id = ?1 AND step = ?2 AND run_id = ?3 AND state = 'claimed'";

/// The order in which a transaction writes `keys`' ledger entries: as
/// given on `SQLite` (one writer at a time), by (cart, step) on
/// PostgreSQL, so that workers writing the same entries at once lock them
/// in the same order and never wait for each other in a cycle.
fn write_order<'k>(db: &Engine, keys: impl Iterator<Item = (&'k str, &'k str)>) -> Vec<usize> {
    let keys: Vec<(&str, &str)> = keys.collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    if db.is_postgres() {
        order.sort_by_key(|&index| keys[index]);
    }
    order
}

impl Store {
    /// Claims sends before they leave, in one transaction (IMMEDIATE on
    /// `SQLite`). A claim succeeds only for a (cart, step) with no ledger
    /// entry or one in `retry`, whose cart is still open and whose address
    /// is not suppressed — so a send another run claimed, or a cart bought
    /// since the plan, is never sent. Returns which claims were won.
    pub fn claim(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        claims: &[Claim],
        resend_unknown: bool,
    ) -> Result<Vec<bool>> {
        let sql = if resend_unknown {
            CLAIM_OR_UNKNOWN
        } else {
            CLAIM
        };
        let reclaimable = if resend_unknown {
            "sends.state IN ('retry', 'unknown')"
        } else {
            "sends.state = 'retry'"
        };
        // PostgreSQL, outside a dry run: one statement, atomic by itself,
        // one round trip.
        if !self.db().in_transaction()
            && let Some(won) = super::claim_sets::claim(self.db(), reclaimable, run_id, now, claims)
        {
            return won.map_err(|source| self.error(source));
        }
        self.write_db(|db| {
            if let Some(won) = super::claim_sets::claim(db, reclaimable, run_id, now, claims) {
                return won;
            }
            let order = write_order(
                db,
                claims
                    .iter()
                    .map(|claim| (claim.cart_id.as_str(), claim.step.as_str())),
            );
            let mut won = vec![false; claims.len()];
            for index in order {
                let claim = &claims[index];
                let changed = db.execute(
                    sql,
                    args![
                        &claim.cart_id,
                        &claim.step,
                        &claim.email,
                        normalize_email(&claim.email).as_str(),
                        run_id,
                        to_unix(now),
                        &claim.variant,
                    ],
                )?;
                won[index] = changed == 1;
            }
            Ok(won)
        })
    }

    /// Records steps passed over (`skipped`), in one transaction: over no
    /// entry, or one in `retry` (a mail refused for now and never
    /// delivered); any other entry stays as it is.
    pub fn pass_over(&self, run_id: i64, now: DateTime<Utc>, steps: &[PassOver<'_>]) -> Result<()> {
        self.write_db(|db| {
            let order = write_order(db, steps.iter().map(|step| (step.cart_id, step.step)));
            for index in order {
                let step = &steps[index];
                db.execute(
                    "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts, claimed_at, reason)
                     VALUES (?1, ?2, ?3, ?4, 'skipped', ?5, 0, ?6, ?7)
                     ON CONFLICT (cart_id, step) DO UPDATE SET
                        state = 'skipped', run_id = excluded.run_id, claimed_at = excluded.claimed_at,
                        reason = excluded.reason
                     WHERE sends.state = 'retry'",
                    args![
                        step.cart_id,
                        step.step,
                        step.email,
                        normalize_email(step.email).as_str(),
                        run_id,
                        to_unix(now),
                        step.reason,
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Records the outcome of claimed sends, only where `run_id` still
    /// holds the claim. A claim whose mail was never handed to the server
    /// (`handed_over` false) is released: it stays due. A `retry` on the
    /// last allowed attempt becomes `failed`.
    pub fn confirm(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        outcomes: &[(Confirmation, bool)],
        max_attempts: u32,
    ) -> Result<()> {
        if !self.db().in_transaction() && outcomes.iter().all(|(_, handed_over)| *handed_over) {
            let handed: Vec<&Confirmation> = outcomes.iter().map(|(outcome, _)| outcome).collect();
            if let Some(done) =
                super::claim_sets::confirm(self.db(), run_id, now, &handed, max_attempts)
            {
                return done.map_err(|source| self.error(source));
            }
        }
        self.write_db(|db| {
            let handed: Vec<&Confirmation> = outcomes
                .iter()
                .filter(|(_, handed_over)| *handed_over)
                .map(|(outcome, _)| outcome)
                .collect();
            // PostgreSQL: the outcomes of the mails handed over at once.
            let at_once = super::claim_sets::confirm(db, run_id, now, &handed, max_attempts);
            let at_once = at_once.transpose()?.is_some();
            let order = write_order(
                db,
                outcomes
                    .iter()
                    .map(|(outcome, _)| (outcome.cart_id.as_str(), outcome.step.as_str())),
            );
            for index in order {
                let (outcome, handed_over) = &outcomes[index];
                if *handed_over && at_once {
                    continue;
                }
                if *handed_over {
                    db.execute(
                        CONFIRM,
                        args![
                            &outcome.cart_id,
                            &outcome.step,
                            outcome.state.as_str(),
                            &outcome.reason,
                            &outcome.message_id,
                            to_unix(now),
                            run_id,
                            max_attempts,
                        ],
                    )?;
                } else {
                    let key = args![&outcome.cart_id, &outcome.step, run_id];
                    if db.execute(RELEASE_NEW, key)? == 0 {
                        db.execute(RELEASE_RETRY, key)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// The claims no run will confirm, by run, then cart and step. On
    /// `SQLite` (one run at a time, under the run lock): those older than
    /// `lease`. On PostgreSQL, where several runs send at once: those of
    /// dead runs ([`Store::run_is_dead`]), whatever their age, and never
    /// one of a live run.
    pub fn dead_claims(&self, now: DateTime<Utc>, lease: TimeDelta) -> Result<Vec<DeadClaim>> {
        let db = self.db();
        let read = |row: &Row<'_>| -> DbResult<DeadClaim> {
            Ok(DeadClaim {
                cart_id: row.get(0)?,
                step: row.get(1)?,
                run_id: row.get(2)?,
            })
        };
        let mut dead = Vec::new();
        if db.is_postgres() {
            for run_id in self.claiming_runs()? {
                if !self.run_is_dead(run_id)? {
                    continue;
                }
                db.each(
                    "SELECT cart_id, step, run_id FROM sends
                     WHERE state = 'claimed' AND run_id = ?1
                     ORDER BY cart_id, step",
                    args![run_id],
                    |row| {
                        dead.push(read(row)?);
                        Ok(())
                    },
                )
                .map_err(|source| self.error(source))?;
            }
        } else {
            db.each(
                "SELECT cart_id, step, run_id FROM sends
                 WHERE state = 'claimed' AND claimed_at <= ?1
                 ORDER BY run_id, cart_id, step",
                args![to_unix(now - lease)],
                |row| {
                    dead.push(read(row)?);
                    Ok(())
                },
            )
            .map_err(|source| self.error(source))?;
        }
        Ok(dead)
    }

    /// The sends whose outcome is unknown, claimed within `[since, until]`,
    /// oldest first.
    pub fn unknown_sends(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<UnknownSend>> {
        let mut unknown = Vec::new();
        self.db()
            .each(
                "SELECT cart_id, step, email, claimed_at, run_id, reason FROM sends
                 WHERE state = 'unknown' AND claimed_at BETWEEN ?1 AND ?2
                 ORDER BY claimed_at, cart_id, step",
                args![
                    since.map_or(i64::MIN, to_unix),
                    until.map_or(i64::MAX, to_unix)
                ],
                |row| {
                    unknown.push(UnknownSend {
                        cart_id: row.get(0)?,
                        step: row.get(1)?,
                        email: row.get::<Option<String>>(2)?.unwrap_or_default(),
                        claimed_at: from_unix(row.get(3)?),
                        run_id: row.get(4)?,
                        reason: row.get(5)?,
                    });
                    Ok(())
                },
            )
            .map_err(|source| self.error(source))?;
        Ok(unknown)
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
        self.write_db(|db| {
            let changed = db.execute(
                "UPDATE sends SET state = ?3,
                        reason = 'was unknown; settled by hand',
                        sent_at = CASE WHEN ?3 = 'sent' THEN ?4 ELSE sent_at END
                 WHERE cart_id = ?1 AND step = ?2 AND state = 'unknown'",
                args![cart_id, step, state.as_str(), to_unix(now)],
            )?;
            Ok(changed == 1)
        })
    }

    /// The runs that hold claims, dead or alive.
    pub fn claiming_runs(&self) -> Result<Vec<i64>> {
        let mut runs = Vec::new();
        self.db()
            .each(
                "SELECT DISTINCT run_id FROM sends WHERE state = 'claimed' ORDER BY run_id",
                args![],
                |row| {
                    runs.push(row.get(0)?);
                    Ok(())
                },
            )
            .map_err(|source| self.error(source))?;
        Ok(runs)
    }

    /// Records the start of a run; returns its id.
    pub fn start_run(&self, started_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<i64> {
        self.write_db(|db| {
            db.value(
                "INSERT INTO runs (started_at, now) VALUES (?1, ?2) RETURNING id",
                args![to_unix(started_at), to_unix(now)],
            )
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
        self.write_db(|db| {
            db.execute(
                "UPDATE runs SET finished_at = ?2, imported = ?3, sent = ?4, skipped = ?5,
                        retry = ?6, failed = ?7, unknown = ?8, exit_code = ?9
                 WHERE id = ?1",
                args![
                    run_id,
                    to_unix(finished_at),
                    count_to_sql(imported),
                    count_to_sql(sent),
                    count_to_sql(skipped),
                    count_to_sql(retry),
                    count_to_sql(failed),
                    count_to_sql(unknown),
                    u32::from(exit_code),
                ],
            )?;
            for ((step, reason), count) in &skips {
                db.execute(
                    "INSERT INTO run_skips (run_id, step, reason, count) VALUES (?1, ?2, ?3, ?4)",
                    args![run_id, step, reason, count_to_sql(*count)],
                )?;
            }
            Ok(())
        })
    }
}

impl Store {
    /// Adds addresses to the suppression list; returns how many were new.
    pub fn suppress(&self, emails: &[String], reason: &str, at: DateTime<Utc>) -> Result<u64> {
        self.write_db(|db| {
            let mut added = 0;
            for email in emails {
                added += db.execute(
                    "INSERT INTO suppressions (email_norm, reason, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (email_norm) DO NOTHING",
                    args![normalize_email(email).as_str(), reason, to_unix(at)],
                )?;
            }
            Ok(added)
        })
    }

    /// Every suppressed address with its reason and time, by address.
    pub fn suppressions(&self) -> Result<Vec<(String, String, DateTime<Utc>)>> {
        let mut suppressed = Vec::new();
        self.db()
            .each(
                "SELECT email_norm, reason, created_at FROM suppressions ORDER BY email_norm",
                args![],
                |row| {
                    suppressed.push((row.get(0)?, row.get(1)?, from_unix(row.get(2)?)));
                    Ok(())
                },
            )
            .map_err(|source| self.error(source))?;
        Ok(suppressed)
    }
}

#[cfg(test)]
mod tests;
