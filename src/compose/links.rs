//! The links of one reminder, signed: recovery (with `links.utm`) and
//! unsubscribe (HTTPS and mailto), and the key that signs them.

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::Cart;
use crate::plan::Step;
use crate::render::Links;
use crate::token::{self, Claims, Signer};

/// How long an unsubscribe link keeps working: long after the reminder.
const UNSUBSCRIBE_TTL_DAYS: i64 = 366;

/// Signs the links of each mail of a run.
pub struct LinkMaker<'a> {
    pub config: &'a Config,
    pub signer: &'a Signer,
    pub now: DateTime<Utc>,
}

impl LinkMaker<'_> {
    pub fn for_cart(&self, cart: &Cart, step: &Step) -> Links {
        let recover = self.signer.sign(&Claims {
            cart_id: cart.id.clone(),
            email: cart.email.clone(),
            step: step.name.clone(),
            expires: self.now + self.config.links.recover_ttl,
        });
        let unsubscribe = self.signer.sign(&Claims {
            cart_id: cart.id.clone(),
            email: cart.email.clone(),
            step: token::UNSUBSCRIBE.into(),
            expires: self.now + TimeDelta::days(UNSUBSCRIBE_TTL_DAYS),
        });
        let links = &self.config.links;
        Links {
            recover: with_query(&links.recover.replace("{token}", &recover), &links.utm),
            unsubscribe: links.unsubscribe.replace("{token}", &unsubscribe),
            unsubscribe_mailto: links
                .unsubscribe_mailto
                .as_ref()
                .map(|mailto| mailto.replace("{token}", &unsubscribe)),
        }
    }
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
