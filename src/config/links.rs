//! `[links]`: the URLs a mail links to and the key that signs their tokens.

use chrono::TimeDelta;

use super::raw::RawLinks;
use super::{Context, Links};
use crate::error::Result;

/// The placeholders recart fills in a link template: `{token}`, the
/// signed token, and `{cart_id}`, the cart's id percent-encoded.
pub const LINK_PLACEHOLDERS: &[&str] = &["token", "cart_id"];

/// `[links]`, which is required.
pub(super) fn links(
    cx: &Context<'_>,
    raw: Option<RawLinks>,
    shop_url: Option<&str>,
) -> Result<Links> {
    let raw = raw.ok_or_else(|| {
        cx.fail(
            "links",
            "is required: base (where recart serve is reached) or the recover and unsubscribe URLs the mails link to",
        )
    })?;
    for (key, url) in [
        ("links.recover", raw.recover.as_ref()),
        ("links.unsubscribe", raw.unsubscribe.as_ref()),
        ("links.unsubscribe_mailto", raw.unsubscribe_mailto.as_ref()),
    ] {
        if let Some(url) = url {
            check_placeholders(cx, key, url, LINK_PLACEHOLDERS)?;
        }
    }
    let (recover, unsubscribe, base) = endpoints(cx, &raw)?;
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
    let cart = match raw.cart {
        Some(cart) => Some(check_cart_url(cx, cart)?),
        None if base.is_some() => {
            return Err(cx.fail(
                "links.cart",
                "is required with links.base: the shop's cart page recovery links redirect to, like \"https://shop.example/cart/{cart_id}\"",
            ));
        }
        None => None,
    };
    let home = match shop_url {
        Some(url) => Some(check_home(cx, url)?),
        None => cart.as_deref().and_then(origin),
    };
    Ok(Links {
        recover,
        unsubscribe,
        unsubscribe_mailto: raw.unsubscribe_mailto,
        utm: raw.utm.into_iter().collect(),
        secret_env: raw.secret_env,
        secret_file: raw.secret_file.map(|file| cx.resolve(file)),
        recover_ttl: raw.recover_ttl.map_or(TimeDelta::days(14), TimeDelta::from),
        base,
        cart,
        home,
    })
}

/// The recover and unsubscribe URL templates: `recart serve`'s under
/// `links.base`, or the shop's own (`links.recover`, `links.unsubscribe`);
/// one or the other, and the base itself if given.
fn endpoints(cx: &Context<'_>, raw: &RawLinks) -> Result<(String, String, Option<String>)> {
    const EITHER: &str = "set links.base (recart serve) or links.recover and links.unsubscribe (your own endpoints), not both";
    match (&raw.base, &raw.recover, &raw.unsubscribe) {
        (Some(base), None, None) => {
            let base = check_base(cx, base)?;
            Ok((
                format!("{base}/r/{{token}}"),
                format!("{base}/u/{{token}}"),
                Some(base),
            ))
        }
        (Some(_), Some(_), _) => Err(cx.fail("links.recover", EITHER)),
        (Some(_), None, Some(_)) => Err(cx.fail("links.unsubscribe", EITHER)),
        (None, Some(recover), Some(unsubscribe)) => {
            check_token_url(cx, "links.recover", recover)?;
            check_token_url(cx, "links.unsubscribe", unsubscribe)?;
            Ok((recover.clone(), unsubscribe.clone(), None))
        }
        (None, Some(_), None) => Err(cx.fail(
            "links.unsubscribe",
            "is required beside links.recover (or set links.base alone: recart serve's URL)",
        )),
        (None, None, Some(_)) => Err(cx.fail(
            "links.recover",
            "is required beside links.unsubscribe (or set links.base alone: recart serve's URL)",
        )),
        (None, None, None) => Err(cx.fail(
            "links",
            "needs base (where recart serve is reached, like \"https://mail.shop.example\") or recover and unsubscribe (your own endpoints)",
        )),
    }
}

/// `links.base`: an http(s) URL without query or fragment; its trailing
/// `/` dropped, so `{base}/r/…` has one.
fn check_base(cx: &Context<'_>, base: &str) -> Result<String> {
    let valid = url::Url::parse(base).is_ok_and(|parsed| {
        matches!(parsed.scheme(), "https" | "http")
            && parsed.host().is_some()
            && parsed.query().is_none()
            && parsed.fragment().is_none()
    });
    if valid {
        Ok(base.trim_end_matches('/').to_string())
    } else {
        Err(cx.fail(
            "links.base",
            format!(
                "{base:?} is not an http(s) URL without query like \"https://mail.shop.example\""
            ),
        ))
    }
}

/// `links.cart`: an http(s) URL template with a `{cart_id}` placeholder.
fn check_cart_url(cx: &Context<'_>, cart: String) -> Result<String> {
    let example = cart.replace("{cart_id}", "C-1001");
    let valid = cart.contains("{cart_id}")
        && url::Url::parse(&example)
            .is_ok_and(|parsed| matches!(parsed.scheme(), "https" | "http"));
    if valid {
        Ok(cart)
    } else {
        Err(cx.fail(
            "links.cart",
            format!(
                "{cart:?} is not an http(s) URL with a {{cart_id}} placeholder like \"https://shop.example/cart/{{cart_id}}\""
            ),
        ))
    }
}

/// `shop.url`: the shop's home page, an http(s) URL.
fn check_home(cx: &Context<'_>, url: &str) -> Result<String> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => Ok(parsed.into()),
        _ => Err(cx.fail(
            "shop.url",
            format!("{url:?} is not an http(s) URL like \"https://shop.example/\""),
        )),
    }
}

/// The origin of a (checked) `links.cart` template, as a home page.
fn origin(cart: &str) -> Option<String> {
    let parsed = url::Url::parse(&cart.replace("{cart_id}", "C-1001")).ok()?;
    Some(format!("{}/", parsed.origin().ascii_serialization()))
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const STEPS: &str = "[[steps]]\nname = \"1h\"\nafter = \"1h\"\ntemplate = \"reminder\"\n";

    fn parse(links: &str) -> crate::error::Result<Config> {
        Config::parse(
            Path::new("/shop/recart.toml"),
            &format!("[links]\n{links}secret_env = \"RECART_SECRET\"\n\n{STEPS}"),
        )
    }

    fn error(links: &str) -> String {
        parse(links).unwrap_err().to_string()
    }

    #[test]
    fn base_makes_the_serve_urls_and_needs_a_cart_page() {
        let config = parse(
            "base = \"https://mail.shop.example/\"\ncart = \"https://shop.example/abandoned-cart/{cart_id}?from=mail\"\n",
        )
        .unwrap();
        let links = &config.links;
        assert_eq!(links.recover, "https://mail.shop.example/r/{token}");
        assert_eq!(links.unsubscribe, "https://mail.shop.example/u/{token}");
        assert_eq!(links.base.as_deref(), Some("https://mail.shop.example"));
        assert_eq!(links.home.as_deref(), Some("https://shop.example/"));
        // A path prefix (behind a proxy) is kept.
        let config = parse(
            "base = \"https://shop.example/recart\"\ncart = \"https://shop.example/c/{cart_id}\"\n",
        )
        .unwrap();
        assert_eq!(
            config.links.recover,
            "https://shop.example/recart/r/{token}"
        );

        let e = error("base = \"https://mail.shop.example\"\n");
        assert!(e.contains("links.cart: is required with links.base"), "{e}");
        let e =
            error("base = \"mail.shop.example\"\ncart = \"https://shop.example/c/{cart_id}\"\n");
        assert!(e.contains("links.base: \"mail.shop.example\""), "{e}");
        let e = error(
            "base = \"https://m.example/?x=1\"\ncart = \"https://shop.example/c/{cart_id}\"\n",
        );
        assert!(e.contains("links.base"), "{e}");
        let e = error("base = \"https://m.example\"\ncart = \"https://shop.example/cart\"\n");
        assert!(
            e.contains("links.cart: \"https://shop.example/cart\""),
            "{e}"
        );
    }

    #[test]
    fn base_or_the_two_templates_one_or_the_other() {
        let own = "recover = \"https://shop.example/r/{token}\"\nunsubscribe = \"https://shop.example/u/{token}\"\n";
        let config = parse(own).unwrap();
        assert_eq!(config.links.base, None);
        assert_eq!(config.links.cart, None);
        assert_eq!(config.links.home, None);
        let base = "base = \"https://m.example\"\ncart = \"https://shop.example/c/{cart_id}\"\n";
        let e = error(&format!("{own}{base}"));
        assert!(e.contains("links.recover: set links.base"), "{e}");
        let e = error(&format!(
            "unsubscribe = \"https://shop.example/u/{{token}}\"\n{base}"
        ));
        assert!(e.contains("links.unsubscribe: set links.base"), "{e}");
        let e = error("recover = \"https://shop.example/r/{token}\"\n");
        assert!(e.contains("links.unsubscribe: is required"), "{e}");
        let e = error("unsubscribe = \"https://shop.example/u/{token}\"\n");
        assert!(e.contains("links.recover: is required"), "{e}");
        let e = error("");
        assert!(e.contains("links: needs base"), "{e}");
    }

    #[test]
    fn the_home_page_is_shop_url_else_the_cart_pages_origin() {
        let text = |shop: &str| {
            format!(
                "[shop]\n{shop}\n[links]\nbase = \"https://m.example\"\ncart = \"https://shop.example:8443/c/{{cart_id}}\"\nsecret_env = \"S\"\n\n{STEPS}"
            )
        };
        let path = Path::new("/shop/recart.toml");
        let config = Config::parse(path, &text("url = \"https://www.shop.example/en/\"")).unwrap();
        assert_eq!(
            config.links.home.as_deref(),
            Some("https://www.shop.example/en/")
        );
        let config = Config::parse(path, &text("")).unwrap();
        assert_eq!(
            config.links.home.as_deref(),
            Some("https://shop.example:8443/")
        );
        let e = Config::parse(path, &text("url = \"shop.example\"")).unwrap_err();
        assert!(e.to_string().contains("shop.url: \"shop.example\""), "{e}");
    }
}
