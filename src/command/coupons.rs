//! `recart coupons import|list|export`: the code pools of `coupon = "pool"`
//! steps, and the codes given out (pool or generated), for the shop.

use crate::config::Config;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::Context;
use crate::cli::{CouponsAction, ExportFormat};
use crate::coupon;
use crate::error::{Completion, Result};
use crate::ingest::sink::{ERRORS_SHOWN, more_not_shown};
use crate::output::Output;
use crate::store::Store;

pub fn execute(action: CouponsAction, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    match action {
        CouponsAction::Import { file } => import(&config, &file, ctx.now, ctx.out),
        CouponsAction::List => list(&config, ctx.now, ctx.out),
        CouponsAction::Export { since, format } => export(&config, since, format, ctx.out),
    }
}

/// Adds a pool file's codes (CSV: `code`, optional `expires` and `pool`);
/// bad rows are reported and skipped.
fn import(
    config: &Config,
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
    let store = Store::open_configured(config)?;
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
fn list(config: &Config, now: DateTime<Utc>, out: &mut Output) -> Result<Completion> {
    let store = Store::open_configured(config)?;
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

/// The codes given to carts, oldest first: CSV
/// (`code,pool,cart_id,step,email,issued_at,expires_at,mail`; `pool` empty
/// for a generated code, `expires_at` empty for one that never expires,
/// `mail` the ledger state of its mail, empty before its claim) or one
/// JSON object per code with the same keys.
fn export(
    config: &Config,
    since: Option<DateTime<Utc>>,
    format: ExportFormat,
    out: &mut Output,
) -> Result<Completion> {
    let store = Store::open_configured(config)?;
    let issued = store.issued_coupons(since)?;
    let time = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match format {
        ExportFormat::Json => {
            for coupon in &issued {
                out.json(&serde_json::json!({
                    "code": coupon.code,
                    "pool": coupon.pool,
                    "cart_id": coupon.cart_id,
                    "step": coupon.step,
                    "email": coupon.email,
                    "issued_at": time(coupon.issued_at),
                    "expires_at": coupon.expires.map(time),
                    "mail": coupon.mail,
                }));
            }
        }
        ExportFormat::Csv => {
            // Into memory, every record as wide as the header: cannot fail.
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer
                .write_record([
                    "code",
                    "pool",
                    "cart_id",
                    "step",
                    "email",
                    "issued_at",
                    "expires_at",
                    "mail",
                ])
                .expect("a record into memory");
            for coupon in &issued {
                writer
                    .write_record([
                        &coupon.code,
                        coupon.pool.as_deref().unwrap_or(""),
                        &coupon.cart_id,
                        &coupon.step,
                        &coupon.email,
                        &time(coupon.issued_at),
                        &coupon.expires.map(time).unwrap_or_default(),
                        coupon.mail.as_deref().unwrap_or(""),
                    ])
                    .expect("a record into memory");
            }
            let bytes = writer.into_inner().expect("a flush into memory");
            out.raw(&String::from_utf8(bytes).expect("CSV of text is text"));
        }
    }
    out.log(&format!("recart coupons export: {} codes", issued.len()));
    Ok(Completion::Done)
}
