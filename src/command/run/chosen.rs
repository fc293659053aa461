//! `run --cart ID --step NAME` (with `--to`, or `--dry-run --preview`): the
//! operator picks one mail, and it is made whatever the plan says of it —
//! not due, skipped for any reason, or out of the candidate window.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{Cart, normalize_email};
use crate::plan::{self, Candidate, CandidateItem, Verdict};
use crate::store::{Claim, Confirmation, DeadClaim, Store};

use super::RunOptions;
use crate::deliver::ledger::LedgerStore;

/// The one mail the operator asked for: its cart (as the plan sees it) and
/// its step, and why these were chosen, in words.
pub struct Chosen {
    pub candidate: Candidate,
    pub step: usize,
    pub why: String,
}

impl Chosen {
    /// The plan of this one mail: send it.
    pub fn decisions(&self) -> Vec<plan::Decision> {
        vec![plan::Decision {
            cart: 0,
            step: Some(self.step),
            verdict: Verdict::Send,
        }]
    }
}

/// `--cart`/`--step` are only for a test send or a preview.
pub fn check_options(options: &RunOptions) -> Result<()> {
    let asked = options.cart.is_some() || options.step.is_some();
    if asked && options.to.is_none() && !(options.dry_run && options.preview.is_some()) {
        return Err(Error::Usage(
            "--cart and --step pick a mail to try: use them with --to ADDRESS (a test send), \
             or with --dry-run --preview DIR"
                .into(),
        ));
    }
    Ok(())
}

/// The mail `--cart`/`--step` name, the rest chosen from the plan: the
/// step the plan is at for the cart (else the first), the cart the plan
/// has due for the step (else the most recently active in the window).
pub fn choose(
    store: &Store,
    config: &Config,
    options: &RunOptions,
    candidates: &[Candidate],
    decisions: &[plan::Decision],
) -> Result<Chosen> {
    let steps = &config.steps;
    let step = match &options.step {
        Some(name) => Some(steps.iter().position(|s| &s.name == name).ok_or_else(|| {
            let known: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            Error::Usage(format!(
                "--step {name:?}: no such step (the steps are {})",
                known.join(", ")
            ))
        })?),
        None => None,
    };
    let mut why = String::new();
    let id = if let Some(id) = &options.cart {
        id
    } else {
        let step = step.expect("--cart or --step is given");
        let (index, chosen) = cart_for_step(candidates, decisions, step).ok_or_else(|| {
            Error::Usage(format!(
                "--step {:?}: the window holds no cart to try it with; name one with --cart",
                steps[step].name
            ))
        })?;
        why.push_str(chosen);
        &candidates[index].id
    };
    let cart = store
        .cart(id)?
        .ok_or_else(|| Error::Usage(format!("--cart {id:?}: no such cart in the store")))?;
    let in_window = candidates.iter().position(|c| c.id == cart.id);
    let planned = in_window.and_then(|index| decisions.iter().find(|d| d.cart == index));
    let step = match (step, planned.and_then(|d| d.step)) {
        (Some(step), _) => step,
        (None, Some(planned)) => {
            why.push_str("step chosen: the one the plan is at for the cart; ");
            planned
        }
        (None, None) => {
            why.push_str("step chosen: the first; ");
            0
        }
    };
    if options.to.is_some() && matches!(steps[step].channel, plan::Channel::Webhook(_)) {
        return Err(Error::Usage(format!(
            "--step {:?} calls a webhook, it sends no mail: try it with --dry-run --preview DIR",
            steps[step].name
        )));
    }
    match (in_window, planned) {
        (None, _) => {
            let _ = write!(
                why,
                "the cart is outside the plan's window (status {}, last active {})",
                cart.status.as_str(),
                cart.updated_at.to_rfc3339()
            );
        }
        (Some(_), None) => why.push_str("the plan says nothing of it"),
        (Some(_), Some(planned)) => why.push_str(&plan_says(planned, step, config)),
    }
    let candidate = match in_window {
        Some(index) => candidates[index].clone(),
        None => candidate_of(&cart),
    };
    Ok(Chosen {
        candidate,
        step,
        why,
    })
}

/// The cart to try `step` with when no `--cart` is given: one the plan has
/// due for it, else the most recently active in the window; and why.
fn cart_for_step(
    candidates: &[Candidate],
    decisions: &[plan::Decision],
    step: usize,
) -> Option<(usize, &'static str)> {
    let due = decisions
        .iter()
        .find(|d| d.step == Some(step) && d.verdict == Verdict::Send);
    match due {
        Some(due) => Some((due.cart, "cart chosen: due for this step; ")),
        None => candidates.len().checked_sub(1).map(|newest| {
            (
                newest,
                "cart chosen: none is due for this step, the most recently active in the window; ",
            )
        }),
    }
}

/// What the plan decided for the cart, against the step chosen.
fn plan_says(planned: &plan::Decision, step: usize, config: &Config) -> String {
    let name = |at: Option<usize>| at.map_or("-", |at| config.steps[at].name.as_str());
    match (planned.verdict, planned.step) {
        (Verdict::Send, Some(at)) if at == step => "the plan has it due".into(),
        (Verdict::Skip(reason) | Verdict::PassOver(reason), at)
            if at.is_none() || at == Some(step) =>
        {
            format!("the plan would skip it: {reason}")
        }
        (Verdict::Send, at) => format!("the plan has it due for step {}", name(at)),
        (Verdict::Skip(reason) | Verdict::PassOver(reason), at) => {
            format!("the plan skips it at step {}: {reason}", name(at))
        }
    }
}

/// A cart outside the window, as the printer shows it.
fn candidate_of(cart: &Cart) -> Candidate {
    Candidate {
        id: cart.id.clone(),
        email: cart.email.clone(),
        email_norm: normalize_email(&cart.email),
        status: cart.status,
        accepts_marketing: cart.accepts_marketing,
        updated_at: cart.updated_at,
        total_minor: cart.total_minor(),
        currency: cart.currency.clone(),
        items: cart
            .items
            .iter()
            .map(|item| CandidateItem::new(&item.sku, &item.category, item.line_total_minor()))
            .collect(),
        sms_consent: cart.sms_consent,
        timezone: (!cart.timezone.is_empty()).then(|| cart.timezone.clone()),
        utc_offset_seconds: cart.utc_offset_seconds,
    }
}

/// The ledger of a chosen test send: every claim is won (the mail was
/// asked for, whatever the ledger holds for it) and nothing is recorded.
pub struct Unrecorded<'a>(pub &'a Store);

impl LedgerStore for Unrecorded<'_> {
    fn claim(&self, _: i64, _: DateTime<Utc>, claims: &[Claim], _: bool) -> Result<Vec<bool>> {
        Ok(vec![true; claims.len()])
    }

    fn confirm(&self, _: i64, _: DateTime<Utc>, _: &[(Confirmation, bool)], _: u32) -> Result<()> {
        Ok(())
    }

    fn suppress(&self, _: &[String], _: &str, _: DateTime<Utc>) -> Result<u64> {
        Ok(0)
    }

    fn dead_claims(&self, now: DateTime<Utc>, lease: TimeDelta) -> Result<Vec<DeadClaim>> {
        self.0.dead_claims(now, lease)
    }

    fn claiming_runs(&self) -> Result<Vec<i64>> {
        self.0.claiming_runs()
    }

    fn run_is_dead(&self, run_id: i64) -> Result<bool> {
        self.0.run_is_dead(run_id)
    }
}
