//! `recart prune` (old carts, orders and ledger addresses) and `recart
//! forget` (one person, GDPR Art. 17).

use chrono::{DateTime, Utc};

use super::Context;
use crate::error::{Completion, Result};
use crate::store::Store;

/// Carts last active and orders placed before `cutoff` are deleted; older
/// ledger entries keep their counts but lose their addresses.
pub fn prune(cutoff: DateTime<Utc>, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let store = Store::open(&config.store_path)?;
    let pruned = store.prune(cutoff)?;
    ctx.out.data(&format!(
        "before {}: {} carts and {} orders deleted, {} ledger entries anonymised",
        cutoff.to_rfc3339(),
        pruned.carts,
        pruned.orders,
        pruned.sends_anonymised
    ));
    Ok(Completion::Done)
}

/// Erases each person from the store, keeping a hash of the address so it
/// is never mailed again.
pub fn forget(emails: &[String], ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let store = Store::open(&config.store_path)?;
    for email in emails {
        let done = store.forget(email, ctx.now)?;
        ctx.out.data(&format!(
            "{email}: {} carts and {} orders deleted, {} ledger entries anonymised; kept as a hash so it is never mailed",
            done.carts, done.orders, done.sends_anonymised
        ));
    }
    Ok(Completion::Done)
}
