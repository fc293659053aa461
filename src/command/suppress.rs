//! `recart suppress add|import|list`: addresses that are never mailed.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::Context;
use super::token::token_email;
use crate::cli::SuppressAction;
use crate::compose::link_signer;
use crate::config::Config;
use crate::error::{Completion, Error, Result};
use crate::model::parse_email;
use crate::output::Output;
use crate::store::Store;
use crate::token::{self, Signer};

pub fn execute(action: SuppressAction, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    match action {
        SuppressAction::Add { emails } => add(&config, &emails, ctx.now, ctx.out),
        SuppressAction::Import { file } => import(&config, &file, ctx.now, ctx.out),
        SuppressAction::List => list(&config, ctx.out),
    }
}

fn add(
    config: &Config,
    emails: &[String],
    now: DateTime<Utc>,
    out: &mut Output,
) -> Result<Completion> {
    let mut valid = Vec::new();
    for email in emails {
        valid.push(parse_email(email).map_err(Error::Usage)?);
    }
    let store = Store::open_configured(config)?;
    let added = store.suppress(&valid, "manual", now)?;
    out.data(&format!(
        "{added} added, {} already suppressed",
        valid.len() as u64 - added
    ));
    Ok(Completion::Done)
}

fn list(config: &Config, out: &mut Output) -> Result<Completion> {
    let store = Store::open_configured(config)?;
    let rows: Vec<Vec<String>> = store
        .suppressions()?
        .into_iter()
        .map(|(email, reason, at)| vec![email, reason, at.to_rfc3339()])
        .collect();
    out.table(&["EMAIL", "REASON", "SINCE"], &rows);
    Ok(Completion::Done)
}

/// Reads addresses from a file: one per line, or a CSV with an `email` (or
/// `token`) column. A field without `@` is read as a signed unsubscribe
/// token (alone, or the last part of an unsubscribe URL or mail subject):
/// it suppresses the address it binds. Expired unsubscribe tokens count
/// (the signature proves the address got the link); forged ones and
/// recovery tokens do not. Lines that hold neither are reported and
/// skipped.
fn import(
    config: &Config,
    file: &Path,
    now: DateTime<Utc>,
    out: &mut Output,
) -> Result<Completion> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|error| csv_error(file, error))?;
    let mut records = reader.records().peekable();
    // A header naming the column, or none: then the first field is read.
    let mut column = 0;
    if let Some(Ok(header)) = records.peek()
        && let Some(index) = header.iter().position(|field| {
            field.eq_ignore_ascii_case("email") || field.eq_ignore_ascii_case("token")
        })
    {
        column = index;
        records.next();
    }
    let mut emails = Vec::new();
    let mut tokens = 0;
    let mut completion = Completion::Done;
    let mut tokens_context: Option<(Signer, Option<Store>)> = None;
    for record in records {
        let (line, read) = match record {
            Ok(record) => {
                let line = record.position().map_or(0, csv::Position::line);
                let field = record.get(column).unwrap_or("");
                if field.is_empty() {
                    continue;
                }
                let read = if field.contains('@') {
                    parse_email(field)
                } else {
                    let (signer, store) = match &tokens_context {
                        Some(context) => context,
                        None => tokens_context.insert(token_context(config)?),
                    };
                    unsubscribe_address(signer, store.as_ref(), field).inspect(|_| tokens += 1)
                };
                (line, read)
            }
            Err(error) => {
                let line = error.position().map_or(0, csv::Position::line);
                (line, Err(error.to_string()))
            }
        };
        match read {
            Ok(email) => emails.push(email),
            Err(message) => {
                out.log(&format!(
                    "{}:{line}: field email: {message}",
                    file.display()
                ));
                completion = Completion::Partial;
            }
        }
    }
    let store = match tokens_context.and_then(|(_, store)| store) {
        Some(store) => store,
        None => Store::open_configured(config)?,
    };
    let added = store.suppress(&emails, "import", now)?;
    out.data(&format!(
        "{}: {} addresses read ({tokens} from tokens), {added} added, {} already suppressed",
        file.display(),
        emails.len(),
        emails.len() as u64 - added
    ));
    Ok(completion)
}

fn csv_error(file: &Path, error: csv::Error) -> Error {
    match error.into_kind() {
        csv::ErrorKind::Io(source) => Error::io(file, source),
        other => Error::Input {
            path: file.to_path_buf(),
            message: format!("{other:?}"),
        },
    }
}

/// What verifying tokens needs: the key, and the store (if there is one)
/// for v2 tokens, which carry no address.
fn token_context(config: &Config) -> Result<(Signer, Option<Store>)> {
    let store = if config.store_exists() {
        Some(Store::open_configured(config)?)
    } else {
        None
    };
    Ok((link_signer(config)?, store))
}

/// The address a signed unsubscribe token binds; `field` may be the token
/// alone or end with it (a URL, a subject line).
fn unsubscribe_address(
    signer: &Signer,
    store: Option<&Store>,
    field: &str,
) -> std::result::Result<String, String> {
    let token = field
        .rsplit(|c: char| c.is_whitespace() || "/?#&=:".contains(c))
        .find(|part| !part.is_empty())
        .unwrap_or(field);
    let unverified = token::Unverified::parse(token)
        .map_err(|_| "neither an e-mail address nor a token".to_string())?;
    if unverified.step != token::UNSUBSCRIBE {
        return Err(format!(
            "a token for step {:?}, not an unsubscribe token",
            unverified.step
        ));
    }
    let email = token_email(&unverified, store)
        .map_err(|error| error.to_string())?
        .ok_or_else(|| {
            format!(
                "token for cart {:?}, which is not in the store",
                unverified.cart_id
            )
        })?;
    unverified
        .authenticate(signer, &email)
        .map(|claims| claims.email)
        .map_err(|error| error.to_string())
}
