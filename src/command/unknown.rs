//! `recart unknown list|mark-sent|resend`: the mails a dead run may or may
//! not have handed over, for an operator to decide one by one (or all at
//! once with `run --resend-unknown`, optionally within a claim-time range).

use super::Context;
use crate::cli::UnknownAction;
use crate::error::{Completion, Error, Result};
use crate::model::SendState;
use crate::store::Store;

pub fn execute(action: UnknownAction, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let store = Store::open_configured(&config)?;
    let (cart, step, state) = match action {
        UnknownAction::List { since, until, json } => {
            let unknown = store.unknown_sends(since, until)?;
            if json {
                for send in &unknown {
                    ctx.out.json(&serde_json::json!({
                        "cart_id": send.cart_id,
                        "step": send.step,
                        "email": send.email,
                        "claimed_at": send.claimed_at.to_rfc3339(),
                        "run": send.run_id,
                        "reason": send.reason,
                    }));
                }
            } else {
                let rows: Vec<Vec<String>> = unknown
                    .into_iter()
                    .map(|send| {
                        vec![
                            send.cart_id,
                            send.step,
                            send.email,
                            send.claimed_at.to_rfc3339(),
                            send.run_id
                                .map_or_else(|| "-".into(), |run| run.to_string()),
                            send.reason.unwrap_or_default(),
                        ]
                    })
                    .collect();
                ctx.out
                    .table(&["CART", "STEP", "EMAIL", "CLAIMED", "RUN", "WHY"], &rows);
            }
            return Ok(Completion::Done);
        }
        UnknownAction::MarkSent { cart, step } => (cart, step, SendState::Sent),
        UnknownAction::Resend { cart, step } => (cart, step, SendState::Retry),
    };
    if !store.settle_unknown(&cart, &step, state, ctx.now)? {
        return Err(Error::Usage(format!(
            "cart {cart:?} step {step:?} has no unknown send (see `recart unknown list`)"
        )));
    }
    let what = match state {
        SendState::Sent => "recorded sent",
        _ => "due again at the next run",
    };
    ctx.out.data(&format!("cart {cart} step {step}: {what}"));
    Ok(Completion::Done)
}
