//! The links of one reminder, signed: recovery (with `links.utm`) and
//! unsubscribe (HTTPS and mailto), and the key that signs them.

use chrono::{DateTime, TimeDelta, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::Cart;
use crate::plan::Step;
use crate::render::Links;
use crate::token::{self, Claims, Signer};

/// How long an unsubscribe link keeps working: long after the reminder.
const UNSUBSCRIBE_TTL_DAYS: i64 = 366;

/// What `{cart_id}` leaves as it is: RFC 3986's unreserved characters,
/// which mean the same in a path segment, a query and a `mailto:` URL.
const CART_ID_KEEPS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Signs the links of each mail of a run.
pub struct LinkMaker<'a> {
    pub config: &'a Config,
    pub signer: &'a Signer,
    pub now: DateTime<Utc>,
}

impl LinkMaker<'_> {
    pub fn for_cart(&self, cart: &Cart, step: &Step) -> Links {
        let unsubscribe = self.signer.sign(&Claims {
            cart_id: cart.id.clone(),
            email: cart.email.clone(),
            step: token::UNSUBSCRIBE.into(),
            expires: self.now + TimeDelta::days(UNSUBSCRIBE_TTL_DAYS),
        });
        let links = &self.config.links;
        let cart_id = encoded_cart_id(&cart.id);
        Links {
            recover: self.recover(cart, step),
            unsubscribe: fill(&links.unsubscribe, &unsubscribe, &cart_id),
            unsubscribe_mailto: links
                .unsubscribe_mailto
                .as_ref()
                .map(|mailto| fill(mailto, &unsubscribe, &cart_id)),
        }
    }

    /// The cart's recovery link alone (for a customer's other carts).
    pub fn recover(&self, cart: &Cart, step: &Step) -> String {
        let token = self.signer.sign(&Claims {
            cart_id: cart.id.clone(),
            email: cart.email.clone(),
            step: step.name.clone(),
            expires: self.now + self.config.links.recover_ttl,
        });
        let links = &self.config.links;
        let url = fill(&links.recover, &token, &encoded_cart_id(&cart.id));
        with_query(&url, &links.utm)
    }
}

/// A link template with its placeholders (`config::LINK_PLACEHOLDERS`)
/// filled: `{token}` (URL-safe already) and `{cart_id}` (percent-encoded).
fn fill(template: &str, token: &str, cart_id: &str) -> String {
    template
        .replace("{token}", token)
        .replace("{cart_id}", cart_id)
}

/// A cart id as one URL path segment (or query value): every character
/// but the unreserved ones percent-encoded, so `/`, `?`, `#`, `&` and
/// spaces in a shop's ids cannot change what the link points to.
fn encoded_cart_id(id: &str) -> String {
    utf8_percent_encode(id, CART_ID_KEEPS).to_string()
}

impl LinkMaker<'_> {
    /// The envelope sender of a (cart, step) mail under
    /// `transport.return_path`, its token signed with the links' key.
    pub fn return_path(&self, cart_id: &str, step: &str) -> Option<lettre::Address> {
        let template = self.config.return_path.as_ref()?;
        let token = token::return_path_token(self.signer, cart_id, step);
        // The config checked the template with a token of this shape.
        template.address(&token).parse().ok()
    }
}

/// Appends `links.utm` to a URL's query (before any `#fragment`),
/// percent-encoded; an invalid URL is left as it is (config checked it).
fn with_query(url: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return url.to_string();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.query_pairs_mut().extend_pairs(pairs);
            parsed.into()
        }
        Err(_) => url.to_string(),
    }
}

/// The link-signing key: from the environment variable `links.secret_env`,
/// else from the file `links.secret_file`.
pub fn link_signer(config: &Config) -> Result<Signer> {
    let links = &config.links;
    if let Some(variable) = &links.secret_env
        && let Ok(value) = std::env::var(variable)
        && !value.trim().is_empty()
    {
        return Ok(Signer::new(value.trim().as_bytes()));
    }
    if let Some(file) = &links.secret_file {
        let value = std::fs::read_to_string(file).map_err(|error| {
            Error::config(
                &config.path,
                format!("links.secret_file {}: {error}", file.display()),
            )
        })?;
        if value.trim().is_empty() {
            return Err(Error::config(
                &config.path,
                format!("links.secret_file {} is empty", file.display()),
            ));
        }
        return Ok(Signer::new(value.trim().as_bytes()));
    }
    Err(Error::config(
        &config.path,
        format!(
            "links.secret_env: the variable {} is not set (it holds the key that signs links)",
            links.secret_env.as_deref().unwrap_or("?")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cart_id_is_one_path_segment() {
        assert_eq!(encoded_cart_id("C-1001_a.b~"), "C-1001_a.b~");
        assert_eq!(
            encoded_cart_id("a/b?c#d&e f%ü"),
            "a%2Fb%3Fc%23d%26e%20f%25%C3%BC"
        );
        assert_eq!(
            fill("https://s.example/c/{cart_id}/r/{token}", "T.k", "a%2Fb"),
            "https://s.example/c/a%2Fb/r/T.k"
        );
    }

    #[test]
    fn utm_pairs_go_before_the_fragment_percent_encoded() {
        let pairs = [("utm_source".to_string(), "re cart".to_string())];
        assert_eq!(
            with_query("https://shop.example/c?x=1#top", &pairs),
            "https://shop.example/c?x=1&utm_source=re+cart#top"
        );
        assert_eq!(with_query("not a url", &pairs), "not a url");
        assert_eq!(with_query("https://a.example/", &[]), "https://a.example/");
    }
}
