//! PostgreSQL's claim and confirm of a whole group of sends in one
//! statement each (the keys as arrays, `unnest`ed): a worker's round trips
//! per group, not per mail, with the same rules as the statements per send
//! in `ledger.rs`, which `SQLite` keeps (no round trip there).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use postgres::types::Type;

use crate::model::normalize_email;

use super::engine::{DbResult, Engine};
use super::ledger::{Claim, Confirmation};
use super::to_unix;

/// Claims the group; `reclaimable` is the states an entry may be claimed
/// over again in. Entries are written in (cart, step) order, the lock
/// order every worker keeps.
fn claim_sql(reclaimable: &str) -> String {
    format!(
        "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts, claimed_at,
                            variant)
         SELECT k.cart_id, k.step, k.email, k.email_norm, 'claimed', $5::bigint, 1, $6::bigint,
                k.variant
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $7::text[])
              AS k (cart_id, step, email, email_norm, variant)
         WHERE EXISTS (SELECT 1 FROM carts WHERE id = k.cart_id AND status = 'open')
           AND NOT EXISTS (SELECT 1 FROM suppressions WHERE email_norm = k.email_norm)
         ORDER BY k.cart_id, k.step
         ON CONFLICT (cart_id, step) DO UPDATE SET
            state = 'claimed', run_id = excluded.run_id, attempts = sends.attempts + 1,
            claimed_at = excluded.claimed_at, email = excluded.email,
            email_norm = excluded.email_norm, reason = NULL, variant = excluded.variant
         WHERE {reclaimable}
         RETURNING cart_id, step"
    )
}

/// Records the outcomes of mails handed over: only over entries run $8
/// still holds as `claimed` (the fence). Each entry is to be found by its
/// key, planned afresh each time (see `confirm`): the fence is written
/// with `IS NOT DISTINCT FROM` (the columns are `NOT NULL`, so it means
/// `=`) so that the planner cannot answer it from `sends_claimed`, whose
/// entries for a run pile up dead as its claims are confirmed (a scan of
/// them per statement made a run quadratic).
const CONFIRM_SET: &str = "UPDATE sends SET
        state = CASE WHEN k.state = 'retry' AND sends.attempts >= $5 THEN 'failed' ELSE k.state END,
        reason = CASE WHEN k.state = 'retry' AND sends.attempts >= $5
                      THEN 'gave up after ' || sends.attempts || ' attempts: ' || k.reason
                      ELSE k.reason END,
        message_id = k.message_id,
        sent_at = CASE WHEN k.state = 'sent' THEN $6 ELSE sends.sent_at END
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $7::text[])
          AS k (cart_id, step, state, reason, message_id)
     WHERE sends.cart_id = k.cart_id AND sends.step = k.step
       AND sends.run_id IS NOT DISTINCT FROM $8 AND sends.state IS NOT DISTINCT FROM 'claimed'";

/// Whether `keys` are all different (one statement may write an entry
/// once only).
fn distinct<'k>(keys: impl Iterator<Item = (&'k str, &'k str)>) -> bool {
    let mut seen = HashSet::new();
    keys.into_iter().all(|key| seen.insert(key))
}

/// The group's claims in one statement; `None` on `SQLite`, or for a
/// group naming one (cart, step) twice (claimed one by one then).
pub(super) fn claim(
    db: &Engine,
    reclaimable: &str,
    run_id: i64,
    now: DateTime<Utc>,
    claims: &[Claim],
) -> Option<DbResult<Vec<bool>>> {
    if !db.is_postgres() || !distinct(claims.iter().map(|c| (c.cart_id.as_str(), c.step.as_str())))
    {
        return None;
    }
    let ids: Vec<&str> = claims.iter().map(|c| c.cart_id.as_str()).collect();
    let steps: Vec<&str> = claims.iter().map(|c| c.step.as_str()).collect();
    let emails: Vec<&str> = claims.iter().map(|c| c.email.as_str()).collect();
    let norms: Vec<String> = claims.iter().map(|c| normalize_email(&c.email)).collect();
    let variants: Vec<Option<&str>> = claims.iter().map(|c| c.variant.as_deref()).collect();
    let claimed_at = to_unix(now);
    let rows = db.postgres_query(
        &claim_sql(reclaimable),
        &[
            &ids,
            &steps,
            &emails,
            &norms,
            &run_id,
            &claimed_at,
            &variants,
        ],
    )?;
    Some(rows.map(|rows| {
        let won: HashSet<(String, String)> = rows
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
            .collect();
        claims
            .iter()
            .map(|c| won.contains(&(c.cart_id.clone(), c.step.clone())))
            .collect()
    }))
}

/// The outcomes of mails handed over, in one statement; `None` on
/// `SQLite` or when a (cart, step) comes twice.
pub(super) fn confirm(
    db: &Engine,
    run_id: i64,
    now: DateTime<Utc>,
    outcomes: &[&Confirmation],
    max_attempts: u32,
) -> Option<DbResult<()>> {
    if !db.is_postgres()
        || !distinct(
            outcomes
                .iter()
                .map(|o| (o.cart_id.as_str(), o.step.as_str())),
        )
    {
        return None;
    }
    let ids: Vec<&str> = outcomes.iter().map(|o| o.cart_id.as_str()).collect();
    let steps: Vec<&str> = outcomes.iter().map(|o| o.step.as_str()).collect();
    let states: Vec<&str> = outcomes.iter().map(|o| o.state.as_str()).collect();
    let reasons: Vec<Option<&str>> = outcomes.iter().map(|o| o.reason.as_deref()).collect();
    let message_ids: Vec<Option<&str>> = outcomes.iter().map(|o| o.message_id.as_deref()).collect();
    let (sent_at, max_attempts) = (to_unix(now), i64::from(max_attempts));
    let done = db.postgres_query_replanned(
        CONFIRM_SET,
        &[
            (&ids, Type::TEXT_ARRAY),
            (&steps, Type::TEXT_ARRAY),
            (&states, Type::TEXT_ARRAY),
            (&reasons, Type::TEXT_ARRAY),
            (&max_attempts, Type::INT8),
            (&sent_at, Type::INT8),
            (&message_ids, Type::TEXT_ARRAY),
            (&run_id, Type::INT8),
        ],
    )?;
    Some(done.map(|_| ()))
}

#[cfg(test)]
mod tests {
    use postgres::types::Type;

    use super::CONFIRM_SET;
    use crate::store::testing::postgres_store;

    /// A run's confirms go by key, not through all of the run's entries
    /// (quadratic in the run): with the statistics of a store in use, and
    /// with a new store's (taken while `sends` was empty) once the run has
    /// filled it past a few thousand entries.
    #[test]
    fn a_confirm_finds_its_entries_by_key_however_large_the_run() {
        let Some(store) = postgres_store("confirm_by_key") else {
            return;
        };
        let db = store.db();
        let fill = |from: u32, to: u32| {
            db.batch(&format!(
                "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts,
                                    claimed_at)
                 SELECT 'c' || n, 'first', 'a@example.com', 'a@example.com', 'claimed', 7, 1, 0
                 FROM generate_series({from}, {to}) AS n"
            ))
            .unwrap();
        };
        db.batch("ANALYZE sends").unwrap();
        fill(1, 20_000);
        assert_by_key(db);
        fill(20_001, 25_000);
        db.batch("ANALYZE sends").unwrap();
        assert_by_key(db);
    }

    fn assert_by_key(db: &crate::store::engine::Engine) {
        let ids: Vec<String> = (1..=32).map(|n| format!("c{n}")).collect();
        let steps = vec!["first"; 32];
        let states = vec!["sent"; 32];
        let reasons = vec![None::<&str>; 32];
        let message_ids: Vec<String> = (1..=32).map(|n| format!("<{n}@example.com>")).collect();
        let plan = db
            .postgres_query_replanned(
                &format!("EXPLAIN {CONFIRM_SET}"),
                &[
                    (&ids, Type::TEXT_ARRAY),
                    (&steps, Type::TEXT_ARRAY),
                    (&states, Type::TEXT_ARRAY),
                    (&reasons, Type::TEXT_ARRAY),
                    (&3_i64, Type::INT8),
                    (&0_i64, Type::INT8),
                    (&message_ids, Type::TEXT_ARRAY),
                    (&7_i64, Type::INT8),
                ],
            )
            .unwrap()
            .unwrap();
        let plan: Vec<String> = plan.iter().map(|row| row.get(0)).collect();
        let plan = plan.join("\n");
        assert!(plan.contains("Index Scan using sends_pkey"), "{plan}");
        assert!(
            !plan.contains("sends_claimed") && !plan.contains("Seq Scan"),
            "{plan}"
        );
    }
}
