//! `[links]`: the URLs a mail links to and the key that signs their tokens.

use chrono::TimeDelta;

use super::raw::RawLinks;
use super::{Context, Links};
use crate::error::Result;

/// `[links]`, which is required.
pub(super) fn links(cx: &Context<'_>, raw: Option<RawLinks>) -> Result<Links> {
    let raw = raw.ok_or_else(|| {
        cx.fail(
            "links",
            "is required: the recover and unsubscribe URLs the mails link to",
        )
    })?;
    check_token_url(cx, "links.recover", &raw.recover)?;
    check_token_url(cx, "links.unsubscribe", &raw.unsubscribe)?;
    if let Some(mailto) = &raw.unsubscribe_mailto {
        check_mailto(cx, mailto)?;
    }
    for (name, value) in &raw.utm {
        if name.trim().is_empty() || value.trim().is_empty() {
            return Err(cx.fail(
                "links.utm",
                format!("{name:?} = {value:?}: names and values must not be empty"),
            ));
        }
    }
    if raw.secret_env.is_none() && raw.secret_file.is_none() {
        return Err(cx.fail(
            "links",
            "needs secret_env or secret_file: the key that signs link tokens",
        ));
    }
    Ok(Links {
        recover: raw.recover,
        unsubscribe: raw.unsubscribe,
        unsubscribe_mailto: raw.unsubscribe_mailto,
        utm: raw.utm.into_iter().collect(),
        secret_env: raw.secret_env,
        secret_file: raw.secret_file.map(|file| cx.resolve(file)),
        recover_ttl: raw.recover_ttl.map_or(TimeDelta::days(14), TimeDelta::from),
    })
}

/// An http(s) URL template with a `{token}` placeholder.
fn check_token_url(cx: &Context<'_>, key: &str, url: &str) -> Result<()> {
    if !url.contains("{token}") {
        return Err(cx.fail(key, format!("{url:?} has no {{token}} placeholder")));
    }
    let example = url.replace("{token}", "TOKEN");
    match url::Url::parse(&example) {
        Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => Ok(()),
        _ => Err(cx.fail(
            key,
            format!("{url:?} is not an http(s) URL like \"https://shop.example/r/{{token}}\""),
        )),
    }
}

/// `links.unsubscribe_mailto`: a `mailto:` URL to one address.
fn check_mailto(cx: &Context<'_>, mailto: &str) -> Result<()> {
    let example = mailto.replace("{token}", "TOKEN");
    let valid = url::Url::parse(&example).is_ok_and(|parsed| {
        parsed.scheme() == "mailto" && parsed.path().parse::<lettre::Address>().is_ok()
    });
    if valid {
        Ok(())
    } else {
        Err(cx.fail(
            "links.unsubscribe_mailto",
            format!(
                "{mailto:?} is not a mailto URL like \"mailto:unsubscribe@shop.example?subject=unsubscribe%20{{token}}\""
            ),
        ))
    }
}
