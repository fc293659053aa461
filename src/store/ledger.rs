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
mod tests {
    use std::collections::HashMap;

    use chrono::{DateTime, TimeDelta, TimeZone, Utc};

    use super::{Claim, Confirmation, DeadClaim, RunCounts, UnknownSend};
    use crate::model::{CartStatus, SendState};
    use crate::store::Store;
    use crate::store::engine::args;
    use crate::store::testing::{both_stores, postgres_store, put_carts};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
    }

    /// Open carts `ids`, each with its own address (`<id>@example.com`).
    fn open_carts(store: &Store, ids: &[&str]) {
        let carts: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut cart = crate::compose::sample_cart(now());
                cart.id = (*id).to_string();
                cart.email = format!("{id}@Example.com");
                cart
            })
            .collect();
        put_carts(store, &carts);
    }

    fn claim(id: &str, step: &str) -> Claim {
        Claim {
            cart_id: id.into(),
            step: step.into(),
            email: format!("{id}@Example.com"),
            variant: None,
        }
    }

    fn outcome(id: &str, state: SendState, handed_over: bool) -> (Confirmation, bool) {
        let confirmation = Confirmation {
            cart_id: id.into(),
            step: "1h".into(),
            state,
            reason: Some(format!("{} for {id}", state.as_str())),
            message_id: Some(format!("<{id}@shop.example>")),
        };
        (confirmation, handed_over)
    }

    /// (state, run, attempts, reason, `sent_at`) of every entry, by cart.
    type Entry = (String, i64, i64, Option<String>, Option<i64>);

    fn entries(store: &Store) -> HashMap<String, Entry> {
        let mut entries = HashMap::new();
        store
            .db()
            .each(
                "SELECT cart_id, state, run_id, attempts, reason, sent_at FROM sends",
                args![],
                |row| {
                    let entry = (
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    );
                    entries.insert(row.get(0)?, entry);
                    Ok(())
                },
            )
            .unwrap();
        entries
    }

    #[test]
    fn a_claim_is_confirmed_released_retried_and_given_up_alike_on_both_engines() {
        for (engine, store) in both_stores("recart_unit_ledger_round_trip") {
            open_carts(&store, &["a", "b", "c", "e"]);
            let mut bought = crate::compose::sample_cart(now());
            bought.id = "o".into();
            bought.status = CartStatus::Ordered;
            put_carts(&store, &[bought]);
            assert_eq!(
                store
                    .suppress(&["E@example.com ".into()], "asked", now())
                    .unwrap(),
                1
            );
            assert_eq!(
                store.suppressions().unwrap(),
                [("e@example.com".into(), "asked".into(), now())],
                "{engine}"
            );
            let run = store.start_run(now(), now()).unwrap();
            let next = store.start_run(now(), now()).unwrap();
            assert!(next > run, "{engine}");
            let ids = ["a", "b", "c", "o", "e"];
            let claims: Vec<Claim> = ids.iter().map(|id| claim(id, "1h")).collect();
            assert_eq!(
                store.claim(run, now(), &claims, false).unwrap(),
                [true, true, true, false, false],
                "{engine}: not a bought cart, not a suppressed address"
            );
            assert_eq!(
                store.claim(next, now(), &claims, false).unwrap(),
                [false; 5],
                "{engine}"
            );
            assert_eq!(store.claiming_runs().unwrap(), [run], "{engine}");
            let at = now() + TimeDelta::minutes(1);
            store
                .confirm(
                    run,
                    at,
                    &[
                        outcome("a", SendState::Sent, true),
                        outcome("b", SendState::Retry, true),
                        outcome("c", SendState::Retry, false),
                    ],
                    2,
                )
                .unwrap();
            let found = entries(&store);
            let sent_at = Some(at.timestamp());
            assert_eq!(
                found["a"],
                ("sent".into(), run, 1, Some("sent for a".into()), sent_at),
                "{engine}"
            );
            assert_eq!(found["b"].0, "retry", "{engine}");
            assert!(!found.contains_key("c"), "{engine}: released");
            assert!(store.claiming_runs().unwrap().is_empty(), "{engine}");

            // Only the retry and the released claim are due again.
            let again: Vec<Claim> = ["a", "b", "c"].iter().map(|id| claim(id, "1h")).collect();
            assert_eq!(
                store.claim(next, now(), &again, false).unwrap(),
                [false, true, true],
                "{engine}"
            );
            assert_eq!(entries(&store)["b"].2, 2, "{engine}: second attempt");
            // A repeated claim released is `retry` again, the attempt not counted.
            store
                .confirm(next, at, &[outcome("b", SendState::Sent, false)], 2)
                .unwrap();
            assert_eq!(entries(&store)["b"].0, "retry", "{engine}");
            assert_eq!(entries(&store)["b"].2, 1, "{engine}");
            // A retry on the last attempt allowed gives up.
            assert_eq!(
                store.claim(next, now(), &again[1..2], false).unwrap(),
                [true]
            );
            store
                .confirm(next, at, &[outcome("b", SendState::Retry, true)], 2)
                .unwrap();
            let (state, _, attempts, reason, _) = entries(&store)["b"].clone();
            assert_eq!(
                (state.as_str(), attempts, reason.as_deref()),
                ("failed", 2, Some("gave up after 2 attempts: retry for b")),
                "{engine}"
            );
        }
    }

    /// An unknown send is claimed again only when re-sending unknown
    /// ones, or settled by hand; a run's figures are kept.
    #[test]
    fn unknown_sends_and_runs_alike_on_both_engines() {
        for (engine, store) in both_stores("recart_unit_ledger_unknown") {
            open_carts(&store, &["u", "d"]);
            let run = store.start_run(now(), now()).unwrap();
            let next = store.start_run(now(), now()).unwrap();
            let at = now() + TimeDelta::minutes(1);
            let sent_at = Some(at.timestamp());
            store.claim(run, now(), &[claim("u", "1h")], false).unwrap();
            store
                .confirm(run, at, &[outcome("u", SendState::Unknown, true)], 2)
                .unwrap();
            let unknown = store.unknown_sends(None, None).unwrap();
            assert_eq!(
                unknown,
                [UnknownSend {
                    cart_id: "u".into(),
                    step: "1h".into(),
                    email: "u@Example.com".into(),
                    claimed_at: now(),
                    run_id: Some(run),
                    reason: Some("unknown for u".into()),
                }],
                "{engine}"
            );
            assert!(
                store
                    .unknown_sends(Some(now() + TimeDelta::seconds(1)), None)
                    .unwrap()
                    .is_empty(),
                "{engine}"
            );
            assert_eq!(
                store
                    .claim(next, now(), &[claim("u", "1h")], false)
                    .unwrap(),
                [false]
            );
            assert!(
                store
                    .settle_unknown("u", "1h", SendState::Sent, at)
                    .unwrap(),
                "{engine}"
            );
            assert!(
                !store
                    .settle_unknown("u", "1h", SendState::Sent, at)
                    .unwrap()
            );
            assert_eq!(entries(&store)["u"].4, sent_at, "{engine}");
            store
                .claim(next, now(), &[claim("d", "1h")], false)
                .unwrap();
            store
                .confirm(next, at, &[outcome("d", SendState::Unknown, true)], 2)
                .unwrap();
            assert_eq!(
                store.claim(run, now(), &[claim("d", "1h")], true).unwrap(),
                [true],
                "{engine}: re-sending unknown sends"
            );

            let mut counts = RunCounts {
                sent: 3,
                ..RunCounts::default()
            };
            counts.skips.insert(("1h".into(), "no-consent".into()), 2);
            store.finish_run(run, at, counts, 3).unwrap();
            let finished: (i64, i64, i64) = store
                .db()
                .one(
                    "SELECT r.sent, r.exit_code, s.count FROM runs r
                     JOIN run_skips s ON s.run_id = r.id WHERE r.id = ?1",
                    args![run],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .unwrap()
                .unwrap();
            assert_eq!(finished, (3, 3, 2), "{engine}");
        }
    }

    /// The plan's history reads the same on both engines: the window's
    /// ledger entries, recent sends, orders with their SKUs, and the
    /// suppressed or forgotten addresses.
    #[test]
    fn the_history_reads_alike_on_both_engines() {
        for (engine, store) in both_stores("recart_unit_ledger_history") {
            open_carts(&store, &["a", "b", "f"]);
            store.claim(1, now(), &[claim("a", "1h")], false).unwrap();
            store
                .confirm(1, now(), &[outcome("a", SendState::Retry, true)], 5)
                .unwrap();
            store.claim(1, now(), &[claim("b", "24h")], false).unwrap();
            store
                .suppress(&["b@example.com".into()], "asked", now())
                .unwrap();
            let placed = (now() - TimeDelta::days(2)).timestamp();
            store
                .write_db(|db| {
                    db.execute(
                        "INSERT INTO orders (id, email, email_norm, total_minor, currency, created_at)
                         VALUES ('o1', 'A@example.com', 'a@example.com', 100, 'EUR', ?1),
                                ('o2', 'A@example.com', 'a@example.com', 100, 'EUR', ?1)",
                        args![placed],
                    )?;
                    db.execute(
                        "INSERT INTO order_items (order_id, sku) VALUES ('o1', 'X'), ('o1', 'Y')",
                        args![],
                    )?;
                    db.execute(
                        "INSERT INTO forgotten (email_hash, created_at) VALUES (?1, 0)",
                        args![crate::store::forget_hash("f@example.com").as_str()],
                    )
                })
                .unwrap();
            let policy = crate::plan::Policy::default();
            let oldest = now() - TimeDelta::days(1);
            let history = store.history(oldest, now(), now(), &policy).unwrap();
            let record = &history.sends["a"]["1h"];
            assert_eq!(
                (record.state, record.attempts, record.at),
                (SendState::Retry, 1, now()),
                "{engine}"
            );
            assert_eq!(history.sends["b"]["24h"].state, SendState::Claimed);
            assert_eq!(history.sent_to.len(), 1, "{engine}: the claimed send");
            let recent = history.sent_to["b@example.com"][0];
            assert_eq!(history.recent_steps[recent.step as usize], "24h");
            let mut skus: Vec<Vec<&str>> = history.orders["a@example.com"]
                .iter()
                .map(|order| {
                    let mut skus: Vec<&str> = order.skus.iter().map(String::as_str).collect();
                    skus.sort_unstable();
                    skus
                })
                .collect();
            skus.sort();
            assert_eq!(skus, [vec![], vec!["X", "Y"]], "{engine}");
            let mut suppressed: Vec<&str> = history.suppressed.iter().map(String::as_str).collect();
            suppressed.sort_unstable();
            assert_eq!(suppressed, ["b@example.com", "f@example.com"], "{engine}");
        }
    }

    /// A run whose claims another settled (it was taken for dead) and that
    /// confirms afterwards changes nothing.
    #[test]
    fn a_confirm_by_another_run_changes_nothing() {
        for (engine, store) in both_stores("recart_unit_ledger_fenced") {
            open_carts(&store, &["a", "b"]);
            let claims = [claim("a", "1h"), claim("b", "1h")];
            assert_eq!(store.claim(1, now(), &claims, false).unwrap(), [true; 2]);
            store
                .confirm(
                    2,
                    now(),
                    &[
                        outcome("a", SendState::Sent, true),
                        outcome("b", SendState::Retry, false),
                    ],
                    5,
                )
                .unwrap();
            let found = entries(&store);
            assert_eq!((found["a"].0.as_str(), found["a"].1), ("claimed", 1));
            assert_eq!((found["b"].0.as_str(), found["b"].1), ("claimed", 1));
            // Settled by run 1's recovery: a late confirm by run 1 of an
            // entry no longer claimed changes nothing either.
            store
                .confirm(1, now(), &[outcome("a", SendState::Unknown, true)], 5)
                .unwrap();
            store
                .confirm(1, now(), &[outcome("a", SendState::Sent, true)], 5)
                .unwrap();
            assert_eq!(entries(&store)["a"].0, "unknown", "{engine}");
        }
    }

    #[test]
    fn dead_claims_on_sqlite_are_those_past_the_lease() {
        let store = Store::open_in_memory().unwrap();
        open_carts(&store, &["a", "b"]);
        let lease = TimeDelta::minutes(30);
        store.claim(1, now(), &[claim("b", "1h")], false).unwrap();
        store
            .claim(2, now() + lease, &[claim("a", "1h")], false)
            .unwrap();
        let dead = |at| store.dead_claims(at, lease).unwrap();
        assert!(dead(now() + lease - TimeDelta::seconds(1)).is_empty());
        let first = DeadClaim {
            cart_id: "b".into(),
            step: "1h".into(),
            run_id: 1,
        };
        assert_eq!(dead(now() + lease), std::slice::from_ref(&first));
        let second = DeadClaim {
            cart_id: "a".into(),
            step: "1h".into(),
            run_id: 2,
        };
        assert_eq!(dead(now() + lease * 2), [first, second]);
    }

    /// On PostgreSQL a claim is dead when its run is: no connection holds
    /// the run's lock. Its age does not matter, and a live run's claims
    /// are never dead, however old.
    #[test]
    fn dead_claims_on_postgres_are_those_of_dead_runs() {
        let Some(store) = postgres_store("recart_unit_ledger_dead_claims") else {
            return;
        };
        let url = store.path().display().to_string();
        let other = crate::store::testing::connect(&url);
        open_carts(&store, &["a", "b", "c", "d"]);
        let (live, gone, never) = (
            store.start_run(now(), now()).unwrap(),
            other.start_run(now(), now()).unwrap(),
            store.start_run(now(), now()).unwrap(),
        );
        store.hold_run(live).unwrap();
        other.hold_run(gone).unwrap();
        let old = now() - TimeDelta::days(30);
        store
            .claim(live, old, &[claim("a", "1h"), claim("d", "1h")], false)
            .unwrap();
        other
            .claim(gone, now(), &[claim("b", "1h")], false)
            .unwrap();
        store
            .claim(never, now(), &[claim("c", "1h")], false)
            .unwrap();
        let lease = TimeDelta::minutes(30);
        let dead_runs = |store: &Store| -> Vec<(i64, String)> {
            store
                .dead_claims(now(), lease)
                .unwrap()
                .into_iter()
                .map(|claim| (claim.run_id, claim.cart_id))
                .collect()
        };
        assert_eq!(dead_runs(&store), [(never, "c".to_string())]);
        assert_eq!(dead_runs(&other), [(never, "c".to_string())]);
        drop(other);
        // The server ends the session, and its locks, with the connection.
        let mut dead = Vec::new();
        for _ in 0..100 {
            dead = dead_runs(&store);
            if dead.len() > 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(dead, [(gone, "b".to_string()), (never, "c".to_string())]);
    }

    /// Two workers claiming the same sends at once, in opposite orders:
    /// each (cart, step) is won once, as a new claim and over a `retry`.
    #[test]
    fn concurrent_workers_win_each_send_once() {
        let Some(store) = postgres_store("recart_unit_ledger_concurrent") else {
            return;
        };
        let url = store.path().display().to_string();
        let ids: Vec<String> = (0..60).map(|n| format!("c{n:02}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        open_carts(&store, &refs);
        let claims: Vec<Claim> = ids
            .iter()
            .flat_map(|id| [claim(id, "1h"), claim(id, "24h")])
            .collect();
        let barrier = std::sync::Barrier::new(2);
        let work = |run_id: i64, reversed: bool| {
            let store = crate::store::testing::connect(&url);
            let mut claims = claims.clone();
            if reversed {
                claims.reverse();
            }
            // A failure is returned, not a panic: the other worker would
            // wait at the barrier for ever.
            let claim_all = || -> (Vec<&Claim>, Option<String>) {
                barrier.wait();
                let mut won = Vec::new();
                let mut failed = None;
                for group in claims.chunks(8) {
                    match store.claim(run_id, now(), group, false) {
                        Ok(wins) => won.extend(
                            group
                                .iter()
                                .zip(wins)
                                .filter(|(_, won)| *won)
                                .map(|(claim, _)| claim),
                        ),
                        Err(error) => {
                            failed = Some(error.to_string());
                            break;
                        }
                    }
                }
                // Both are through before either confirms.
                barrier.wait();
                (won, failed)
            };
            let (first, failed) = claim_all();
            let retry: Vec<(Confirmation, bool)> = first
                .iter()
                .map(|claim| {
                    let confirmation = Confirmation {
                        cart_id: claim.cart_id.clone(),
                        step: claim.step.clone(),
                        state: SendState::Retry,
                        reason: None,
                        message_id: None,
                    };
                    (confirmation, true)
                })
                .collect();
            let confirmed = store.confirm(run_id, now(), &retry, 5);
            let (second, failed_again) = claim_all();
            assert_eq!(failed.or(failed_again), None, "run {run_id}");
            confirmed.unwrap();
            [first, second].map(|won| {
                won.into_iter()
                    .map(|claim| (claim.cart_id.clone(), claim.step.clone()))
                    .collect::<Vec<_>>()
            })
        };
        let (first, second) = std::thread::scope(|scope| {
            let first = scope.spawn(|| work(1, false));
            let second = scope.spawn(|| work(2, true));
            (first.join().unwrap(), second.join().unwrap())
        });
        for round in 0..2 {
            let mut won: Vec<&(String, String)> =
                first[round].iter().chain(&second[round]).collect();
            won.sort();
            let mut expected: Vec<(String, String)> = claims
                .iter()
                .map(|claim| (claim.cart_id.clone(), claim.step.clone()))
                .collect();
            expected.sort();
            assert_eq!(
                won,
                expected.iter().collect::<Vec<_>>(),
                "round {round}: each won once"
            );
        }
        let attempts: i64 = store
            .db()
            .value("SELECT sum(attempts) FROM sends", args![])
            .unwrap();
        assert_eq!(attempts, 2 * 120);
    }
}
