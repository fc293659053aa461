//! `recart prune` (old carts, orders and ledger addresses) and `recart
//! forget` (one person, GDPR Art. 17). Both rewrite the store file so that
//! nothing erased stays in it, under the run lock: a run never finds its
//! store being rewritten, nor writes an erased address back.

use chrono::{DateTime, Utc};

use super::Context;
use crate::error::{Completion, Error, Result};
use crate::output::Output;
use crate::store::Store;

/// Carts last active and orders placed before `cutoff` are deleted; older
/// ledger entries keep their counts but lose their addresses.
pub fn prune(cutoff: DateTime<Utc>, wait: bool, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let store = Store::open_configured(&config)?;
    run_lock(&store, wait, ctx.out)?;
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
/// is never stored or mailed again.
pub fn forget(emails: &[String], wait: bool, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let store = Store::open_configured(&config)?;
    run_lock(&store, wait, ctx.out)?;
    let forgotten = store.forget(emails, ctx.now)?;
    for (email, done) in emails.iter().zip(forgotten) {
        ctx.out.data(&format!(
            "{email}: {} carts and {} orders deleted, {} ledger entries anonymised; kept as a hash so it is never stored or mailed again",
            done.carts, done.orders, done.sends_anonymised
        ));
    }
    Ok(Completion::Done)
}

/// The run lock (`run`'s): exits with 4 if a run holds it, or says that it
/// waits and waits with `wait`.
fn run_lock(store: &Store, wait: bool, out: &mut Output) -> Result<()> {
    match store.lock_out_runs(false) {
        Err(Error::Busy { lock }) if wait => {
            out.log(&format!(
                "waiting for the run that holds {}",
                lock.display()
            ));
            store.lock_out_runs(true)
        }
        locked => locked,
    }
}
