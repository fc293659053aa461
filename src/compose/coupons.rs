//! The coupon each reminder carries: drawn from a pool or generated, once
//! per (cart, step), recorded before the claim.

use chrono::{DateTime, TimeDelta, Utc};

use crate::coupon::{self, Coupon, CouponRule};
use crate::error::Result;
use crate::model::Cart;
use crate::plan::Step;
use crate::store::{Draw, Store};
use crate::token::Signer;

/// The made-up pool code templates are tried with (nothing is drawn).
const SAMPLE_POOL_CODE: &str = "SAMPLE-CODE-10";

/// A pool with no code left to give.
#[derive(Debug, PartialEq, Eq)]
pub struct PoolDry;

/// The coupon a step's templates are tried with: its generated code for
/// the sample cart, or a made-up pool code; None when the step promises
/// none.
pub fn sample_coupon(
    step: &Step,
    signer: &Signer,
    cart: &Cart,
    now: DateTime<Utc>,
) -> Option<Coupon> {
    match step.coupon.as_ref()? {
        CouponRule::Generate { prefix, ttl } => Some(Coupon {
            code: coupon::generate_code(signer, prefix, &cart.id, &step.name),
            expires: Some(now + *ttl),
        }),
        CouponRule::Pool { .. } => Some(Coupon {
            code: SAMPLE_POOL_CODE.into(),
            expires: Some(now + TimeDelta::days(7)),
        }),
    }
}

/// The coupon (cart, step) gets — the one it already has, else a new
/// draw, recorded now (before the claim; rolled back with a dry run) —
/// or `Err(PoolDry)` when the step promises one and the pool is dry.
pub fn coupon_for(
    store: &Store,
    signer: &Signer,
    cart_id: &str,
    step: &Step,
    now: DateTime<Utc>,
) -> Result<std::result::Result<Option<Coupon>, PoolDry>> {
    let Some(rule) = &step.coupon else {
        return Ok(Ok(None));
    };
    let generated;
    let draw = match rule {
        CouponRule::Pool { pool } => Draw::Pool {
            pool,
            valid_until: now + coupon::MIN_VALIDITY,
        },
        CouponRule::Generate { prefix, ttl } => {
            generated = Coupon {
                code: coupon::generate_code(signer, prefix, cart_id, &step.name),
                expires: Some(now + *ttl),
            };
            Draw::Generated(&generated)
        }
    };
    Ok(store
        .coupon(cart_id, &step.name, draw, now)?
        .map(Some)
        .ok_or(PoolDry))
}
