//! `recart bounces import PATH…`: the bounces and complaints of a bounce
//! mailbox into the ledger and the suppression list; the figures per
//! outcome on stdout, each message that needs a person on stderr.

use super::Context;
use crate::bounces::{self, Outcome};
use crate::cli::BouncesAction;
use crate::compose::link_signer;
use crate::error::{Completion, Result};
use crate::store::Store;

pub fn execute(action: BouncesAction, ctx: &mut Context<'_>) -> Result<Completion> {
    let BouncesAction::Import { paths, now, json } = action;
    let config = ctx.config()?;
    // Return-path tokens are signed with the links' key.
    let signer = link_signer(&config)?;
    let store = Store::open_configured(&config)?;
    let now = now.unwrap_or(ctx.now);
    let out = &mut *ctx.out;
    let tally = bounces::import(&store, &signer, &paths, now, &mut |problem| {
        out.warn(&format!(
            "recart: {}: {}: {}",
            problem.location,
            problem.outcome.as_str(),
            problem.why
        ));
    })?;
    if json {
        let mut figures = serde_json::Map::new();
        for (outcome, count) in &tally.counts {
            figures.insert(outcome.as_str().into(), (*count).into());
        }
        figures.insert(
            "problems".into(),
            serde_json::to_value(&tally.problems).unwrap_or_default(),
        );
        out.json(&figures);
    } else {
        let rows: Vec<Vec<String>> = tally
            .counts
            .iter()
            .map(|(outcome, count)| vec![outcome.as_str().to_string(), count.to_string()])
            .collect();
        out.table(&["OUTCOME", "MESSAGES"], &rows);
    }
    let attention = tally.counts[&Outcome::Unmatched] + tally.counts[&Outcome::Unparsable];
    Ok(if attention > 0 {
        Completion::Partial
    } else {
        Completion::Done
    })
}
