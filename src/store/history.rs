//! What the plan needs to know of the past, for the carts it decides: the
//! window's (one run), or a partition's (a worker of a shared run, which
//! reads it when it takes the partition, as other workers left it).

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::model::SendState;
use crate::plan::{History, OrderFact, Policy, SendRecord};

use super::engine::{Arg, DbError, DbResult, args};
use super::ledger::{HISTORY_ORDERS, HISTORY_SENDS, HISTORY_SUPPRESSED, RECENT_SENDS};
use super::{Store, from_unix, to_unix};

/// The ledger entries of some carts, by id.
const SENDS_OF: &str = "SELECT cart_id, step, state, attempts, claimed_at FROM sends
                 WHERE cart_id IN rarray(?1)";

/// Reminders (possibly) sent since ?1 to some addresses.
const RECENT_SENDS_TO: &str = "SELECT email_norm, claimed_at, step FROM sends
                 WHERE email_norm IN rarray(?2) AND claimed_at > ?1
                   AND state IN ('sent', 'claimed', 'unknown')";

/// Orders since ?2 of some addresses, with their SKUs.
const ORDERS_OF: &str = "SELECT o.id, o.email_norm, o.created_at, i.sku FROM orders o
                 LEFT JOIN order_items i ON i.order_id = o.id
                 WHERE o.email_norm IN rarray(?1) AND o.created_at >= ?2
                 ORDER BY o.id";

/// The suppressed among some addresses.
const SUPPRESSED_OF: &str = "SELECT email_norm FROM suppressions WHERE email_norm IN rarray(?1)";

/// The open addresses of the window, matched against the forgotten.
const WINDOW_ADDRESSES: &str = "SELECT DISTINCT email_norm FROM carts
                 WHERE status = 'open' AND updated_at BETWEEN ?1 AND ?2";

/// One history's statements and their parameters.
struct Reads<'a> {
    sends: (&'a str, Vec<Arg<'a>>),
    recent: (&'a str, Vec<Arg<'a>>),
    orders: (&'a str, Vec<Arg<'a>>),
    suppressed: (&'a str, Vec<Arg<'a>>),
    /// The addresses concerned, as a statement, or as given.
    addresses: Result<(&'a str, Vec<Arg<'a>>), &'a [String]>,
}

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
        let orders_since = to_unix(oldest.min(now - policy.purchased_within));
        let caps_since = to_unix(now - policy.cooldown.max(policy.window));
        let (oldest, newest) = (to_unix(oldest), to_unix(newest));
        let window = || args![oldest, newest].to_vec();
        self.read_history(&Reads {
            sends: (HISTORY_SENDS, window()),
            recent: (RECENT_SENDS, args![caps_since].to_vec()),
            orders: (HISTORY_ORDERS, args![oldest, newest, orders_since].to_vec()),
            suppressed: (HISTORY_SUPPRESSED, window()),
            addresses: Ok((WINDOW_ADDRESSES, window())),
        })
    }

    /// [`Store::history`] of the carts `cart_ids` of the addresses
    /// `addresses` (normalised), whose oldest was last active at `oldest`.
    pub fn history_of(
        &self,
        cart_ids: &[String],
        addresses: &[String],
        oldest: DateTime<Utc>,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<History> {
        let orders_since = to_unix(oldest.min(now - policy.purchased_within));
        let caps_since = to_unix(now - policy.cooldown.max(policy.window));
        self.read_history(&Reads {
            sends: (SENDS_OF, args![cart_ids].to_vec()),
            recent: (RECENT_SENDS_TO, args![caps_since, addresses].to_vec()),
            orders: (ORDERS_OF, args![addresses, orders_since].to_vec()),
            suppressed: (SUPPRESSED_OF, args![addresses].to_vec()),
            addresses: Err(addresses),
        })
    }

    fn read_history(&self, reads: &Reads<'_>) -> Result<History> {
        let db = self.db();
        let run = || -> DbResult<History> {
            let mut history = History::default();
            db.each(reads.sends.0, &reads.sends.1, |row| {
                let record = SendRecord {
                    state: row
                        .text(2)?
                        .parse::<SendState>()
                        .unwrap_or(SendState::Unknown),
                    attempts: u32::try_from(row.get::<i64>(3)?)
                        .map_err(|_| DbError::Value("column 3: attempts out of range".into()))?,
                    at: from_unix(row.get(4)?),
                };
                history
                    .sends
                    .entry(row.get(0)?)
                    .or_default()
                    .insert(row.get(1)?, record);
                Ok(())
            })?;
            // A claimed or unknown send may have reached the inbox: it counts
            // for the caps like a sent one.
            db.each(reads.recent.0, &reads.recent.1, |row| {
                history.add_recent(row.get(0)?, from_unix(row.get(1)?), row.text(2)?);
                Ok(())
            })?;
            let mut last_order: Option<String> = None;
            db.each(reads.orders.0, &reads.orders.1, |row| {
                let id = row.text(0)?;
                let sku: Option<String> = row.get(3)?;
                let facts = history.orders.entry(row.get(1)?).or_default();
                // One fact per order; its SKUs come one row each.
                if last_order.as_deref() != Some(id) {
                    facts.push(OrderFact {
                        created_at: from_unix(row.get(2)?),
                        skus: HashSet::default(),
                    });
                    last_order = Some(id.to_owned());
                }
                if let (Some(sku), Some(fact)) = (sku, facts.last_mut()) {
                    fact.skus.insert(sku);
                }
                Ok(())
            })?;
            db.each(reads.suppressed.0, &reads.suppressed.1, |row| {
                history.suppressed.insert(row.get(0)?);
                Ok(())
            })?;
            // Forgotten people are known by a hash only: match the
            // candidates' addresses against it.
            let mut forgotten = HashSet::new();
            db.each("SELECT email_hash FROM forgotten", args![], |row| {
                forgotten.insert(row.get::<String>(0)?);
                Ok(())
            })?;
            if !forgotten.is_empty() {
                let mut check = |address: &str| {
                    if forgotten.contains(&super::forget_hash(address)) {
                        history.suppressed.insert(address.to_owned());
                    }
                };
                match &reads.addresses {
                    Ok((sql, args)) => db.each(sql, args, |row| {
                        check(row.text(0)?);
                        Ok(())
                    })?,
                    Err(addresses) => addresses.iter().for_each(|address| check(address)),
                }
            }
            Ok(history)
        };
        run().map_err(|source| self.error(source))
    }
}
