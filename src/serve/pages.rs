//! The HTML pages `serve` answers with: the unsubscribe page (asking, or
//! saying it is done) and the page for a link that does not work. Each is
//! a template set per locale, as the mails' are: `<page>[.<locale>].html`
//! in the templates directory (the cart's full locale, then its language,
//! then the file without a locale), else the built-in English page.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Serialize;

use crate::error::{Error, Result};

/// The unsubscribe page: `done` false asks (a form that POSTs), true says
/// the address is unsubscribed.
pub const UNSUBSCRIBE: &str = "unsubscribe";
/// A link whose token is malformed, forged, expired or of a cart no
/// longer stored.
pub const INVALID_LINK: &str = "invalid-link";

const BUILT_IN: [(&str, &str); 2] = [
    (UNSUBSCRIBE, include_str!("unsubscribe.html")),
    (INVALID_LINK, include_str!("invalid-link.html")),
];

/// What every page is told about the shop.
#[derive(Debug, Clone, Serialize)]
pub struct Shop {
    pub name: String,
    /// Its home page, if known.
    pub url: Option<String>,
}

pub struct Pages {
    env: Environment<'static>,
    /// page → locale (normalised: `de-at`; "" for the default, always
    /// there) → the template registered for it: its file's name, or
    /// [`built_in_name`].
    locales: BTreeMap<&'static str, BTreeMap<String, String>>,
    shop: Shop,
}

impl Pages {
    /// Loads the pages' files from `dir` (none is required) and renders
    /// each once, so that a template that fails does so at start, naming
    /// its file.
    pub fn load(dir: &Path, shop: Shop) -> Result<Pages> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        let names = file_names(dir)?;
        let mut locales = BTreeMap::new();
        for (page, built_in) in BUILT_IN {
            env.add_template_owned(built_in_name(page), built_in)
                .expect("the built-in pages are valid templates");
            let mut found = BTreeMap::from([(String::new(), built_in_name(page))]);
            for file in &names {
                let Some(locale) = file
                    .strip_prefix(page)
                    .and_then(|rest| rest.strip_suffix(".html"))
                    .and_then(|rest| rest.strip_prefix('.').or(rest.is_empty().then_some(rest)))
                else {
                    continue;
                };
                if !is_locale(locale) {
                    continue;
                }
                let path = dir.join(file);
                let source = std::fs::read_to_string(&path).map_err(|error| Error::Template {
                    name: path.display().to_string(),
                    message: error.to_string(),
                })?;
                env.add_template_owned(file.clone(), source)
                    .map_err(|error| template_error(&path, &error))?;
                found.insert(normalize_locale(locale), file.clone());
            }
            locales.insert(page, found);
        }
        let pages = Pages { env, locales, shop };
        pages.try_all(dir)?;
        Ok(pages)
    }

    /// The unsubscribe page for `email` (shown masked).
    pub fn unsubscribe(&self, locale: &str, email: &str, done: bool) -> String {
        self.render(
            UNSUBSCRIBE,
            locale,
            context! { email => mask_email(email), done => done },
        )
    }

    /// The page for a link that does not work; `unsubscribe`: it was an
    /// unsubscribe link.
    pub fn invalid_link(&self, locale: &str, expired: bool, unsubscribe: bool) -> String {
        self.render(
            INVALID_LINK,
            locale,
            context! { expired => expired, unsubscribe => unsubscribe },
        )
    }

    fn render(&self, page: &'static str, locale: &str, values: Value) -> String {
        let (chosen, name) = self.choose(page, locale);
        let context =
            context! { shop => Value::from(Serde(&self.shop)), locale => chosen, ..values };
        let rendered = self
            .env
            .get_template(name)
            .and_then(|template| template.render(&context));
        // Every file was rendered at start; should one still fail (a
        // filter over a particular address), the built-in page stands in
        // rather than an error page.
        rendered.unwrap_or_else(|_| {
            self.env
                .get_template(&built_in_name(page))
                .and_then(|template| template.render(&context))
                .unwrap_or_default()
        })
    }

    /// The page's (locale, template) for a cart's locale: the full tag,
    /// then shorter prefixes, then the default.
    fn choose(&self, page: &str, locale: &str) -> (&str, &str) {
        let found = &self.locales[page];
        let mut tag = normalize_locale(locale);
        while !tag.is_empty() {
            if let Some((locale, name)) = found.get_key_value(&tag) {
                return (locale, name);
            }
            tag.truncate(tag.rfind('-').unwrap_or(0));
        }
        ("", &found[""])
    }

    fn try_all(&self, dir: &Path) -> Result<()> {
        for locales in self.locales.values() {
            for (locale, name) in locales {
                let template = self.env.get_template(name).expect("registered above");
                for done in [false, true] {
                    let context = context! {
                        shop => Value::from(Serde(&self.shop)), locale => locale, email => "a***e@example.com",
                        done => done, expired => done, unsubscribe => !done,
                    };
                    template
                        .render(context)
                        .map_err(|error| template_error(&dir.join(name), &error))?;
                }
            }
        }
        Ok(())
    }
}

/// The name the built-in page is registered under: no file has a `/` in
/// its name, and `.html` turns on HTML escaping.
fn built_in_name(page: &str) -> String {
    format!("(built-in)/{page}.html")
}

/// "" (the default) or a tag such as `de`, `de-AT`, `de_AT`.
fn is_locale(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `de_AT` → `de-at`.
fn normalize_locale(locale: &str) -> String {
    locale.trim().replace('_', "-").to_ascii_lowercase()
}

fn template_error(path: &Path, error: &minijinja::Error) -> Error {
    let line = error
        .line()
        .map(|line| format!(" line {line}"))
        .unwrap_or_default();
    Error::Template {
        name: format!("{}{line}", path.display()),
        message: error.to_string(),
    }
}

fn file_names(dir: &Path) -> Result<Vec<String>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(std::result::Result::ok)
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect();
            names.sort();
            Ok(names)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(Error::io(dir, error)),
    }
}

/// An address as a page shows it to whoever holds the link: enough for
/// its owner to recognise (the first and last character of the local
/// part, the domain), not the whole of it for anyone else.
pub fn mask_email(email: &str) -> String {
    let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    let chars: Vec<char> = local.chars().collect();
    let masked = match chars.as_slice() {
        [] => String::new(),
        [first] | [first, _] => format!("{first}***"),
        [first, .., last] => format!("{first}***{last}"),
    };
    if domain.is_empty() {
        masked
    } else {
        format!("{masked}@{domain}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> Shop {
        Shop {
            name: "Tea & Co".into(),
            url: Some("https://shop.example/".into()),
        }
    }

    #[test]
    fn addresses_are_masked() {
        assert_eq!(mask_email("ada.lovelace@example.com"), "a***e@example.com");
        assert_eq!(mask_email("al@example.com"), "a***@example.com");
        assert_eq!(mask_email("é@example.com"), "é***@example.com");
        assert_eq!(mask_email("x"), "x***");
    }

    #[test]
    fn built_in_pages_escape_and_post() {
        let dir = tempfile::tempdir().unwrap();
        let pages = Pages::load(dir.path(), shop()).unwrap();
        let page = pages.unsubscribe("en-GB", "ada.lovelace@example.com", false);
        assert!(page.contains("Tea &amp; Co"), "{page}");
        assert!(page.contains("a***e@example.com"), "{page}");
        assert!(!page.contains("ada.lovelace"), "{page}");
        assert!(page.contains("<form method=\"post\">"), "{page}");
        assert!(
            page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""),
            "{page}"
        );
        let done = pages.unsubscribe("en-GB", "ada.lovelace@example.com", true);
        assert!(done.contains("You are unsubscribed"), "{done}");
        assert!(!done.contains("<form"), "{done}");
        let invalid = pages.invalid_link("", true, false);
        assert!(invalid.contains("expired"), "{invalid}");
        // minijinja's escaping writes `/` as `&#x2f;`, which browsers read back.
        assert!(
            invalid.contains("href=\"https:&#x2f;&#x2f;shop.example&#x2f;\""),
            "{invalid}"
        );
    }

    #[test]
    fn a_locale_gets_its_own_file_then_its_languages_then_the_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("unsubscribe.de.html"), "de {{ email }}").unwrap();
        std::fs::write(
            dir.path().join("unsubscribe.de_AT.html"),
            "at {{ shop.name }}",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("unsubscribe.html"),
            "default {% if done %}done{% endif %}",
        )
        .unwrap();
        let pages = Pages::load(dir.path(), shop()).unwrap();
        assert_eq!(
            pages.unsubscribe("de-DE", "ann@example.com", false),
            "de a***n@example.com"
        );
        assert_eq!(
            pages.unsubscribe("de-AT", "ann@example.com", false),
            "at Tea &amp; Co"
        );
        assert_eq!(
            pages.unsubscribe("fr", "ann@example.com", true),
            "default done"
        );
        // No file of its own: the built-in page.
        assert!(
            pages
                .invalid_link("de", false, true)
                .contains("does not work")
        );
    }

    #[test]
    fn a_broken_page_fails_at_start_naming_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("unsubscribe.fr.html"), "{% if %}").unwrap();
        let error = Pages::load(dir.path(), shop()).err().unwrap().to_string();
        assert!(error.contains("unsubscribe.fr.html"), "{error}");
    }
}
