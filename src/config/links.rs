//! `[links]`: the URLs a mail links to and the key that signs their tokens.

use chrono::TimeDelta;

use super::raw::RawLinks;
use super::{Context, Links};
use crate::error::Result;

/// The placeholders recart fills in a link template: `{token}`, the
/// signed token, and `{cart_id}`, the cart's id percent-encoded.
pub const LINK_PLACEHOLDERS: &[&str] = &["token", "cart_id"];

/// `[links]`, which is required.
pub(super) fn links(cx: &Context<'_>, raw: Option<RawLinks>) -> Result<Links> {
    let raw = raw.ok_or_else(|| {
        cx.fail(
            "links",
            "is required: the recover and unsubscribe URLs the mails link to",
        )
    })?;
    for (key, url) in [
        ("links.recover", Some(&raw.recover)),
        ("links.unsubscribe", Some(&raw.unsubscribe)),
        ("links.unsubscribe_mailto", raw.unsubscribe_mailto.as_ref()),
    ] {
        if let Some(url) = url {
            check_placeholders(cx, key, url, LINK_PLACEHOLDERS)?;
        }
    }
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
    match url::Url::parse(&example(url)) {
        Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => Ok(()),
        _ => Err(cx.fail(
            key,
            format!("{url:?} is not an http(s) URL like \"https://shop.example/r/{{token}}\""),
        )),
    }
}

/// `links.unsubscribe_mailto`: a `mailto:` URL to one address.
fn check_mailto(cx: &Context<'_>, mailto: &str) -> Result<()> {
    let valid = url::Url::parse(&example(mailto)).is_ok_and(|parsed| {
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

/// A link template with its placeholders filled with examples.
fn example(url: &str) -> String {
    url.replace("{token}", "TOKEN").replace("{cart_id}", "CART")
}

/// Every `{…}` in a link template must be one of `known`. Braces have no
/// place in a URL as written (RFC 3986), so a `{cartid}` is a typo: sent,
/// it would be a broken link in every mail, so the configuration is
/// refused (by `check` and `run` alike) rather than warned about.
pub(super) fn check_placeholders(
    cx: &Context<'_>,
    key: &str,
    url: &str,
    known: &[&str],
) -> Result<()> {
    let listed = known
        .iter()
        .map(|name| format!("{{{name}}}"))
        .collect::<Vec<_>>()
        .join(" and ");
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(cx.fail(
                key,
                format!("{url:?} has a `{{` without its `}}` (recart fills {listed})"),
            ));
        };
        let name = &after[..close];
        if !known.contains(&name) {
            let hint = super::nearest(name, known.iter().copied())
                .map(|near| format!("; did you mean {{{near}}}?"))
                .unwrap_or_default();
            return Err(cx.fail(
                key,
                format!(
                    "{url:?} has the unknown placeholder {{{name}}}{hint} (recart fills {listed})"
                ),
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}
