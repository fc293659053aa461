//! `recart token verify TOKEN`: what a signed link token binds, or why it
//! is invalid.

use super::Context;
use crate::cli::TokenAction;
use crate::compose::link_signer;
use crate::error::{Completion, Error, Result};
use crate::store::Store;
use crate::token::{self, TokenError};

pub fn execute(action: TokenAction, ctx: &mut Context<'_>) -> Result<Completion> {
    let TokenAction::Verify { token, email, now } = action;
    let config = ctx.config()?;
    let now = now.unwrap_or(ctx.now);
    let signer = link_signer(&config)?;
    let invalid = |error: TokenError| Error::Token(format!("invalid: {error}"));
    let unverified = token::Unverified::parse(&token).map_err(invalid)?;
    let email = if let Some(email) = email {
        email.trim().to_string()
    } else {
        let store = if config.store_exists() {
            Some(Store::open_configured(&config)?)
        } else {
            None
        };
        token_email(&unverified, store.as_ref())?.ok_or_else(|| {
            Error::Token(format!(
                "cannot verify: cart {:?} is not in the store (give --email)",
                unverified.cart_id
            ))
        })?
    };
    let claims = unverified.verify(&signer, &email, now).map_err(invalid)?;
    let out = &mut *ctx.out;
    out.data("valid");
    out.data(&format!("cart_id: {}", claims.cart_id));
    out.data(&format!("email: {}", claims.email));
    out.data(&format!("step: {}", claims.step));
    out.data(&format!(
        "expires: {}",
        claims
            .expires
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    Ok(Completion::Done)
}

/// The address to check a token against: its own (v1), else the stored
/// cart's.
pub fn token_email(
    unverified: &token::Unverified,
    store: Option<&Store>,
) -> Result<Option<String>> {
    if let Some(email) = &unverified.email {
        return Ok(Some(email.clone()));
    }
    match store {
        Some(store) => Ok(store.cart(&unverified.cart_id)?.map(|cart| cart.email)),
        None => Ok(None),
    }
}
