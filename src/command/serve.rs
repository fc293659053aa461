//! `recart serve --listen ADDR`: the HTTP endpoints the mails link to
//! (`src/serve/`), over the same store as the runs.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Context;
use crate::compose::link_signer;
use crate::error::{Completion, Error, Result};
use crate::serve::{self, Clock};

pub fn execute(
    listen: &str,
    now: Option<DateTime<Utc>>,
    ctx: &mut Context<'_>,
) -> Result<Completion> {
    let config = ctx.config()?;
    if config.links.cart.is_none() {
        return Err(Error::config(
            &config.path,
            "links.cart: is required by recart serve: the shop's cart page recovery links redirect to, like \"https://shop.example/cart/{cart_id}\"",
        ));
    }
    let signer = link_signer(&config)?;
    // Live: each request reads the clock main.rs handed over; `--now`
    // (hidden, for tests) pins it, so that expiry is checked at a known time.
    let clock: Clock = match now {
        Some(now) => Arc::new(move || now),
        None => Arc::new(ctx.clock),
    };
    serve::serve(&config, signer, listen, clock, ctx.out)
}
