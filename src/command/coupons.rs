//! `recart coupons import|list`: the code pools of `coupon = "pool"` steps.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::Context;
use crate::cli::CouponsAction;
use crate::coupon;
use crate::error::{Completion, Result};
use crate::ingest::sink::{ERRORS_SHOWN, more_not_shown};
use crate::output::Output;
use crate::store::Store;

pub fn execute(action: CouponsAction, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    match action {
        CouponsAction::Import { file } => import(&config.store_path, &file, ctx.now, ctx.out),
        CouponsAction::List => list(&config.store_path, ctx.now, ctx.out),
    }
}

/// Adds a pool file's codes (CSV: `code`, optional `expires` and `pool`);
/// bad rows are reported and skipped.
fn import(
    store_path: &Path,
    file: &Path,
    now: DateTime<Utc>,
    out: &mut Output,
) -> Result<Completion> {
    let pool = coupon::read_pool(file)?;
    let shown = usize::try_from(ERRORS_SHOWN).unwrap_or(usize::MAX);
    for error in pool.rejected.iter().take(shown) {
        out.warn(&error.to_string());
    }
    more_not_shown(file, pool.rejected.len() as u64, out);
    let store = Store::open(store_path)?;
    let done = store.import_coupons(&pool.codes, now)?;
    out.data(&format!(
        "{}: {} rows read, {} codes added, {} already known, {} rejected",
        file.display(),
        pool.rows,
        done.added,
        done.known,
        pool.rejected.len()
    ));
    Ok(if pool.rejected.is_empty() {
        Completion::Done
    } else {
        Completion::Partial
    })
}

/// Per pool, the codes still free, given and expired unused; the
/// generated codes as pool `(generated)`.
fn list(store_path: &Path, now: DateTime<Utc>, out: &mut Output) -> Result<Completion> {
    let store = Store::open(store_path)?;
    let rows: Vec<Vec<String>> = store
        .coupon_stock(now)?
        .into_iter()
        .map(|stock| {
            vec![
                stock.pool.unwrap_or_else(|| "(generated)".into()),
                stock.free.to_string(),
                stock.given.to_string(),
                stock.expired.to_string(),
            ]
        })
        .collect();
    out.table(&["POOL", "FREE", "GIVEN", "EXPIRED"], &rows);
    Ok(Completion::Done)
}
