//! Bounces and complaints: the reports that come back to the return path
//! (`recart bounces import`). Each message of the mailbox is read as a
//! delivery-status or feedback report (`parse`), matched to its send — by
//! the return-path token (`transport.return_path`), else by the returned
//! mail's Message-ID — and recorded once: a permanent failure bounces the
//! send and suppresses its address, a complaint suppresses it, a transient
//! failure is counted. What cannot be read or matched is counted and
//! listed, never an error for the whole mailbox.

pub mod mailbox;
pub mod parse;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::Result;
use crate::store::{Effect, InboxReport, SentMail, Store};
use crate::token::{Signer, verify_return_path_token};

use self::parse::{Report, Said};

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A permanent failure (`5.x.x`): send bounced, address suppressed.
    HardBounce,
    /// A transient failure (`4.x.x`): counted.
    SoftBounce,
    /// A feedback report: address suppressed.
    Complaint,
    /// A report that asks for nothing: delivered (`2.x.x`), `not-spam`.
    Ignored,
    /// A report that names no send recart knows.
    Unmatched,
    /// Not a report, or one that cannot be read.
    Unparsable,
    /// Read by an earlier import (or earlier in this one).
    AlreadyProcessed,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::HardBounce,
        Outcome::SoftBounce,
        Outcome::Complaint,
        Outcome::Ignored,
        Outcome::Unmatched,
        Outcome::Unparsable,
        Outcome::AlreadyProcessed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::HardBounce => "hard-bounce",
            Outcome::SoftBounce => "soft-bounce",
            Outcome::Complaint => "complaint",
            Outcome::Ignored => "ignored",
            Outcome::Unmatched => "unmatched",
            Outcome::Unparsable => "unparsable",
            Outcome::AlreadyProcessed => "already-processed",
        }
    }
}

/// A message that needs a person: unmatched or unparsable, where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file (and, in an mbox, `:line`).
    pub location: String,
    pub outcome: Outcome,
    pub why: String,
}

/// The figures of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub counts: BTreeMap<Outcome, u64>,
    pub problems: Vec<Problem>,
}

/// Feedback types that are no complaint (RFC 5965, RFC 6591).
const NOT_COMPLAINTS: [&str; 2] = ["not-spam", "auth-failure"];

/// Reads every message of the mailboxes at `paths`; `on_problem` hears of
/// each unmatched or unparsable one as it is found.
pub fn import(
    store: &Store,
    signer: &Signer,
    paths: &[PathBuf],
    now: DateTime<Utc>,
    on_problem: &mut dyn FnMut(&Problem),
) -> Result<Tally> {
    let mut tally = Tally::default();
    for outcome in Outcome::ALL {
        tally.counts.insert(outcome, 0);
    }
    for path in paths {
        mailbox::each_message(path, &mut |location, bytes| {
            let (outcome, why) = read_one(store, signer, &bytes, now)?;
            *tally.counts.entry(outcome).or_default() += 1;
            if let Some(why) = why {
                let problem = Problem {
                    location,
                    outcome,
                    why,
                };
                on_problem(&problem);
                tally.problems.push(problem);
            }
            Ok(())
        })?;
    }
    Ok(tally)
}

/// One message: its outcome, and why if it needs a person.
fn read_one(
    store: &Store,
    signer: &Signer,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(Outcome, Option<String>)> {
    let hashed = || format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    let report = match parse::parse(bytes) {
        Ok(report) => report,
        Err(why) => {
            let key = hashed();
            let recorded = store.report_seen(&key)?
                || !store.record_report(
                    &InboxReport {
                        key: &key,
                        outcome: Outcome::Unparsable.as_str(),
                        send: None,
                        detail: &why,
                        effect: Effect::None,
                    },
                    now,
                )?;
            return Ok(if recorded {
                (Outcome::AlreadyProcessed, None)
            } else {
                (Outcome::Unparsable, Some(why))
            });
        }
    };
    let key = report
        .message_id
        .as_ref()
        .map_or_else(hashed, |id| format!("id:{id}"));
    if store.report_seen(&key)? {
        return Ok((Outcome::AlreadyProcessed, None));
    }
    let found = find_send(store, signer, &report)?;
    let (outcome, effect) = match (&report.said, &found) {
        (Said::Delivery { .. }, _) if report.said.class() == Some('2') => {
            (Outcome::Ignored, Effect::None)
        }
        (Said::Feedback { feedback_type }, _)
            if NOT_COMPLAINTS.contains(&feedback_type.as_str()) =>
        {
            (Outcome::Ignored, Effect::None)
        }
        (_, Err(_)) => (Outcome::Unmatched, Effect::None),
        (Said::Delivery { .. }, Ok(_)) if report.said.class() == Some('5') => {
            (Outcome::HardBounce, Effect::HardBounce)
        }
        (Said::Delivery { .. }, Ok(_)) => (Outcome::SoftBounce, Effect::None),
        (Said::Feedback { .. }, Ok(_)) => (Outcome::Complaint, Effect::Complaint),
    };
    let detail = match (&found, outcome) {
        (Err(why), Outcome::Unmatched) => format!("{}: {why}", report.said.detail()),
        _ => report.said.detail(),
    };
    let recorded = store.record_report(
        &InboxReport {
            key: &key,
            outcome: outcome.as_str(),
            send: found.as_ref().ok(),
            detail: &detail,
            effect,
        },
        now,
    )?;
    Ok(match (recorded, outcome) {
        (false, _) => (Outcome::AlreadyProcessed, None),
        (true, Outcome::Unmatched) => (outcome, Some(detail)),
        (true, _) => (outcome, None),
    })
}

/// The send a report is about: by a return-path token this key signed,
/// else by the returned mail's Message-ID; or why none was found.
fn find_send(
    store: &Store,
    signer: &Signer,
    report: &Report,
) -> Result<std::result::Result<SentMail, String>> {
    let mut why = Vec::new();
    for token in &report.tokens {
        match verify_return_path_token(signer, token) {
            Some(digest) => match store.send_by_digest(&digest)? {
                Some(send) => return Ok(Ok(send)),
                None => why.push(
                    "its return-path token names no send in the store (pruned, or another store's)"
                        .into(),
                ),
            },
            None => why.push("a return-path token not signed with this store's link key".into()),
        }
    }
    for id in &report.message_ids {
        let found = match recart_digest(id) {
            Some(digest) => store.send_by_digest(digest)?,
            None => store.send_by_message_id(id)?,
        };
        if let Some(send) = found {
            return Ok(Ok(send));
        }
        why.push(format!("no send has Message-ID <{id}>"));
    }
    if why.is_empty() {
        why.push(
            "it names no send: no return-path token, and no Message-ID of the returned mail".into(),
        );
    }
    why.dedup();
    Ok(Err(why.join("; ")))
}

/// The send digest of a Message-ID recart made (`<digest>.recart@domain`).
fn recart_digest(id: &str) -> Option<&str> {
    let (digest, rest) = id.split_once('.')?;
    (digest.len() == 32
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && rest.starts_with("recart@"))
    .then_some(digest)
}
