//! Render: a cart and a step through the step's templates into a message
//! (subject, HTML, text). Templates are minijinja with strict undefined, so
//! a typo fails the run before anything is sent; `.html` and `.preheader`
//! are autoescaped.
//!
//! Per template and locale there is a set of files: `<name>[.<locale>].subject`
//! and `.html` (required), `.txt` (else derived from the HTML) and
//! `.preheader` (optional: a hidden first line that inboxes show beside the
//! subject). A cart gets the set of its locale, else of its language, else
//! the default: `de-AT` → `de` → none. The HTML's `<style>` rules are
//! inlined into `style=` attributes (at-rules such as `@media` stay in a
//! `<style>` block), for clients that strip `<style>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::coupon::{Coupon, format_expiry};
use crate::error::{Error, Result};
use crate::model::Cart;
use crate::plan::Step;

mod css;
mod errors;
mod html;
#[cfg(test)]
mod tests;
mod views;

pub use html::html_to_text;

use html::{escape_for, html_formatter, with_preheader};
use views::{Context, CouponView, Shop, View};

/// The most one part of one mail (subject, HTML with its CSS inlined,
/// text, preheader) may come to. A reminder is tens of KB; the starter
/// HTML of a 500-item cart is about 530 KB. A template that writes more
/// is broken or hostile: that mail fails instead of growing without end.
pub const MAX_PART_BYTES: usize = 1 << 20;

/// The template instructions one part of one mail may run (minijinja's
/// fuel: nearly every instruction costs 1): 100 times what the starter
/// templates use for a 500-item cart, so that loops in loops fail that
/// mail in well under a second.
pub const FUEL: u64 = 100 * STARTER_FUEL_500_ITEMS;

/// The most fuel a starter template part uses for a 500-item cart, about
/// 43 an item (measured by a test in `render/tests.rs`, which keeps it
/// true).
pub const STARTER_FUEL_500_ITEMS: u64 = 22_000;

/// The parts of one mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    /// With the preheader in place and the CSS inlined.
    pub html: String,
    pub text: String,
    /// The locale of the template set used; empty for the default set.
    pub locale: String,
}

/// Another open cart of the same customer, as `other_carts` shows it.
#[derive(Debug, Clone)]
pub struct OtherCart {
    pub cart: Arc<Cart>,
    /// Its own recovery link, signed.
    pub recover: String,
}

/// The links a mail carries, already signed.
#[derive(Debug, Clone, Serialize)]
pub struct Links {
    pub recover: String,
    pub unsubscribe: String,
    /// For the `List-Unsubscribe` header, when configured.
    pub unsubscribe_mailto: Option<String>,
}

const SUBJECT: &str = "subject";
const HTML: &str = "html";
const TEXT: &str = "txt";
const PREHEADER: &str = "preheader";
const PARTS: [&str; 4] = [SUBJECT, HTML, TEXT, PREHEADER];
/// The HTML with its CSS inlined ahead (see `css`), under a name no file
/// can have.
const INLINED_HTML: &str = "~inlined.html";

/// Which optional parts one template set has.
#[derive(Debug, Clone, Copy, Default)]
struct Set {
    text: bool,
    preheader: bool,
    /// The HTML's CSS was inlined once at load (`INLINED_HTML`).
    inlined: bool,
}

/// The template sets of a plan's steps, loaded and checked once, and what
/// every mail they render shares.
pub struct Renderer {
    env: Environment<'static>,
    /// `shop`, the same for every mail.
    shop: Value,
    /// For dates of carts that name neither a zone nor an offset.
    timezone: Tz,
    /// The time mails are rendered at: a coupon valid for less than a day
    /// after it shows its time of expiry, not only the day.
    now: Option<DateTime<Utc>>,
    /// template → locale (lower case, `-`; "" for the default) → its set.
    sets: BTreeMap<String, BTreeMap<String, Set>>,
    /// Some template reads `other_carts`: only then are they loaded.
    uses_other_carts: bool,
}

/// `de_AT` → `de-at`.
fn normalize_locale(locale: &str) -> String {
    locale.trim().replace('_', "-").to_ascii_lowercase()
}

/// The name a template part is registered under: `<stem>[.<locale>].<part>`.
fn template_name(template: &str, locale: &str, part: &str) -> String {
    if locale.is_empty() {
        format!("{template}.{part}")
    } else {
        format!("{template}.{locale}.{part}")
    }
}

impl Renderer {
    /// Loads every template set the steps name; a missing file or a
    /// template minijinja refuses is an error naming it (the first).
    pub fn load(dir: &Path, steps: &[Step], shop_name: &str) -> Result<Renderer> {
        let (renderer, errors) = Renderer::load_all(dir, steps, shop_name)?;
        match errors.into_iter().next() {
            Some(error) => Err(error),
            None => Ok(renderer),
        }
    }

    /// Loads every template set that can be loaded, and gives the errors
    /// of every one that cannot (for `check`, which reports them all; a
    /// set with an error is left out). Only a template directory that
    /// cannot be listed fails outright.
    pub fn load_all(dir: &Path, steps: &[Step], shop_name: &str) -> Result<(Renderer, Vec<Error>)> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(escape_for);
        env.set_formatter(html_formatter);
        env.set_fuel(Some(FUEL));
        // Debug mode (off by default in release builds) makes an error name
        // the undefined expression (`cart.itmes`), not just its line. It
        // costs only when an undefined value is made or an error raised.
        env.set_debug(true);
        let listing = file_names(dir)?;
        let mut sets: BTreeMap<String, BTreeMap<String, Set>> = BTreeMap::new();
        let mut errors = Vec::new();
        for (step, stem) in steps
            .iter()
            .flat_map(|step| step.templates().into_iter().map(move |stem| (step, stem)))
        {
            if sets.contains_key(stem) {
                continue;
            }
            let mut by_locale = BTreeMap::new();
            for (spelled, parts) in parts_by_locale(&listing, stem) {
                match load_set(&mut env, dir, step, stem, &spelled, &parts) {
                    Ok((locale, set)) => {
                        by_locale.insert(locale, set);
                    }
                    Err(set_errors) => errors.extend(set_errors),
                }
            }
            sets.insert(stem.to_string(), by_locale);
        }
        let uses_other_carts = env.templates().any(|(_, template)| {
            template
                .undeclared_variables(false)
                .contains(views::OTHER_CARTS)
        });
        let mut renderer = Renderer {
            env,
            shop: Value::from(Serde(&Shop { name: shop_name })),
            timezone: Tz::UTC,
            now: None,
            sets,
            uses_other_carts,
        };
        renderer.keep_only_verified_inlining();
        Ok((renderer, errors))
    }

    /// Whether some template reads `other_carts`: a run loads a customer's
    /// other carts only then.
    pub fn uses_other_carts(&self) -> bool {
        self.uses_other_carts
    }

    /// Whether the template's set for `locale` ("" the default) loaded.
    pub fn has_set(&self, template: &str, locale: &str) -> bool {
        self.sets
            .get(template)
            .is_some_and(|sets| sets.contains_key(locale))
    }

    /// Renders sample carts through every set inlined ahead both ways and
    /// keeps inlining ahead only where the mails come out the same.
    fn keep_only_verified_inlining(&mut self) {
        let samples = css::samples();
        // The first sample shows the others as its customer's other carts.
        let others: Vec<OtherCart> = samples[1..]
            .iter()
            .map(|(cart, _)| OtherCart {
                cart: Arc::new(cart.clone()),
                recover: css::sample_links().recover,
            })
            .collect();
        let mut refused = Vec::new();
        for (stem, sets) in &self.sets {
            for (locale, set) in sets.iter().filter(|(_, set)| set.inlined) {
                let same = samples.iter().enumerate().all(|(index, (cart, coupon))| {
                    let cart = Arc::new(cart.clone());
                    let others = if index == 0 { &others[..] } else { &[] };
                    let context = self.context(
                        &cart,
                        "sample",
                        &css::sample_links(),
                        coupon.as_ref(),
                        others,
                    );
                    let per_mail = self.render_html(stem, locale, *set, &context, false);
                    let ahead = self.render_html(stem, locale, *set, &context, true);
                    match (per_mail, ahead) {
                        (Ok(per_mail), Ok(ahead)) => css::same_document(&per_mail, &ahead),
                        // A sample the template cannot render says nothing.
                        (Err(_), Err(_)) => true,
                        _ => false,
                    }
                });
                if !same {
                    refused.push((stem.clone(), locale.clone()));
                }
            }
        }
        for (stem, locale) in refused {
            if let Some(set) = self
                .sets
                .get_mut(&stem)
                .and_then(|sets| sets.get_mut(&locale))
            {
                set.inlined = false;
            }
        }
    }

    /// The zone dates are shown in for carts that give neither a zone nor
    /// an offset (`policy.timezone`); UTC unless set.
    #[must_use]
    pub fn with_timezone(mut self, timezone: Tz) -> Renderer {
        self.timezone = timezone;
        self
    }

    /// The time mails are rendered at (the run's `now`).
    #[must_use]
    pub fn at(mut self, now: DateTime<Utc>) -> Renderer {
        self.now = Some(now);
        self
    }

    /// The time `at` is for the cart's customer, on their clock.
    fn local_time(&self, cart: &Cart, at: DateTime<Utc>) -> NaiveDateTime {
        if let Ok(zone) = cart.timezone.parse::<Tz>() {
            return at.with_timezone(&zone).naive_local();
        }
        if let Some(offset) = cart.utc_offset_seconds.and_then(FixedOffset::east_opt) {
            return at.with_timezone(&offset).naive_local();
        }
        at.with_timezone(&self.timezone).naive_local()
    }

    /// The locales a template has its own set for (not the default).
    pub fn locales(&self, template: &str) -> Vec<String> {
        self.sets
            .get(template)
            .map(|sets| sets.keys().filter(|l| !l.is_empty()).cloned().collect())
            .unwrap_or_default()
    }

    /// The set for a cart's locale: the full tag, then shorter prefixes,
    /// then the default.
    fn choose(&self, template: &str, locale: &str) -> (String, Set) {
        let sets = &self.sets[template];
        let mut tag = normalize_locale(locale);
        while !tag.is_empty() {
            if let Some(set) = sets.get(&tag) {
                return (tag, *set);
            }
            tag.truncate(tag.rfind('-').unwrap_or(0));
        }
        (String::new(), sets.get("").copied().unwrap_or_default())
    }

    /// Renders the step's template for this cart (its A/B variant, if the
    /// step has variants), with the coupon the cart got for the step.
    pub fn render(
        &self,
        cart: &Cart,
        step: &Step,
        links: &Links,
        coupon: Option<&Coupon>,
    ) -> Result<Rendered> {
        self.render_shared(&Arc::new(cart.clone()), step, links, coupon, &[])
    }

    /// `render` for a cart already shared: the templates read it in place
    /// (no copy); `others` are the customer's other open carts.
    pub fn render_shared(
        &self,
        cart: &Arc<Cart>,
        step: &Step,
        links: &Links,
        coupon: Option<&Coupon>,
        others: &[OtherCart],
    ) -> Result<Rendered> {
        self.render_stem(
            cart,
            step,
            step.template_for(&cart.id),
            links,
            coupon,
            others,
        )
    }

    /// Renders one given template stem of the step; when it fails, tries
    /// each part on its own, so that the error of every part that fails is
    /// there (for `check`).
    pub fn try_template(
        &self,
        cart: &Cart,
        step: &Step,
        stem: &str,
        links: &Links,
        coupon: Option<&Coupon>,
        others: &[OtherCart],
    ) -> std::result::Result<Rendered, Vec<Error>> {
        let cart = Arc::new(cart.clone());
        let first = match self.render_stem(&cart, step, stem, links, coupon, others) {
            Ok(rendered) => return Ok(rendered),
            Err(error) => error,
        };
        let context = self.context(&cart, &step.name, links, coupon, others);
        let (locale, set) = self.choose(stem, &cart.locale);
        let mut errors = Vec::new();
        let mut part = |result: Result<String>| {
            if let Err(error) = result {
                errors.push(error);
            }
        };
        part(self.render_part(stem, &locale, SUBJECT, &context));
        if set.preheader {
            part(self.render_part(stem, &locale, PREHEADER, &context));
        }
        // The HTML alone: the preheader's own error is above.
        let html_alone = Set {
            preheader: false,
            ..set
        };
        part(self.render_html(stem, &locale, html_alone, &context, false));
        if set.text {
            part(self.render_part(stem, &locale, TEXT, &context));
        }
        if errors.is_empty() {
            errors.push(first);
        }
        Err(errors)
    }

    /// Renders the set of `stem` that fits the cart's locale.
    fn render_stem(
        &self,
        cart: &Arc<Cart>,
        step: &Step,
        stem: &str,
        links: &Links,
        coupon: Option<&Coupon>,
        others: &[OtherCart],
    ) -> Result<Rendered> {
        let context = self.context(cart, &step.name, links, coupon, others);
        let (locale, set) = self.choose(stem, &cart.locale);
        let html = self.render_html(stem, &locale, set, &context, set.inlined)?;
        let text = if set.text {
            self.render_part(stem, &locale, TEXT, &context)?
        } else {
            html_to_text(&html)
        };
        Ok(Rendered {
            subject: one_line(&self.render_part(stem, &locale, SUBJECT, &context)?),
            html,
            text,
            locale,
        })
    }

    /// What templates see of a cart.
    fn context(
        &self,
        cart: &Arc<Cart>,
        step: &str,
        links: &Links,
        coupon: Option<&Coupon>,
        others: &[OtherCart],
    ) -> Value {
        let coupon = coupon.map(|coupon| CouponView {
            code: &coupon.code,
            expires: coupon.expires.map(|at| {
                let short = self.now.is_some_and(|now| at - now < TimeDelta::days(1));
                format_expiry(self.local_time(cart, at), &cart.locale, short)
            }),
        });
        Context::new(&self.shop, cart, step, links, coupon.as_ref(), others).into_value()
    }

    /// Renders one part of one set as it is, within the bounds: at most
    /// `MAX_PART_BYTES` of output and `FUEL` instructions.
    fn render_part(&self, stem: &str, locale: &str, part: &str, context: &Value) -> Result<String> {
        let name = template_name(stem, locale, part);
        let template = self
            .env
            .get_template(&name)
            .map_err(|error| Error::Template {
                name: name.clone(),
                message: error.to_string(),
            })?;
        let mut out = Bounded(Vec::with_capacity(2 * template.source().len()));
        match template.render_captured_to(context, &mut out) {
            Ok(_) => Ok(String::from_utf8(out.0).expect("minijinja writes text")),
            Err(error) => Err(self.render_error(&name, &error, context)),
        }
    }

    /// An error from rendering one part: `TemplateBound` when it went over
    /// a bound (that mail fails, the run goes on), else a template error
    /// that names what failed, in the template (an included one, maybe)
    /// where it failed.
    fn render_error(&self, name: &str, error: &minijinja::Error, context: &Value) -> Error {
        use std::error::Error as _;
        let over_output = error
            .source()
            .and_then(|source| source.downcast_ref::<std::io::Error>())
            .and_then(std::io::Error::get_ref)
            .is_some_and(|inner| inner.downcast_ref::<OutputBound>().is_some());
        let message = if over_output {
            output_bound()
        } else if error.kind() == minijinja::ErrorKind::OutOfFuel {
            format!(
                "over the limit of {FUEL} template instructions per part (loops too deep or too long?)"
            )
        } else {
            let failed = error.name().unwrap_or(name);
            let template = self.env.get_template(failed).ok();
            let source = template.as_ref().map(minijinja::Template::source);
            return Error::Template {
                name: failed.to_string(),
                message: errors::describe(error, source, Some((&self.env, context))),
            };
        };
        Error::TemplateBound {
            name: name.to_string(),
            message,
        }
    }

    /// The HTML with its preheader and inlined CSS: from the template
    /// inlined ahead when `ahead`, else inlined after rendering. Errors
    /// always come from the template as written, so their lines are right.
    fn render_html(
        &self,
        stem: &str,
        locale: &str,
        set: Set,
        context: &Value,
        ahead: bool,
    ) -> Result<String> {
        let preheader = if set.preheader {
            one_line(&self.render_part(stem, locale, PREHEADER, context)?)
        } else {
            String::new()
        };
        // An empty preheader adds no block; the template inlined ahead has
        // one in place when the set has a preheader.
        let block_as_ahead = set.preheader != preheader.is_empty();
        if ahead && block_as_ahead {
            match self.render_part(stem, locale, INLINED_HTML, context) {
                Ok(html) if !set.preheader => return Ok(html),
                Ok(html) => return Ok(html.replacen(css::PREHEADER_MARK, &preheader, 1)),
                // The same bound as written: not worth running it again.
                Err(Error::TemplateBound { message, .. }) => {
                    return Err(Error::TemplateBound {
                        name: template_name(stem, locale, HTML),
                        message,
                    });
                }
                Err(_) => {}
            }
        }
        let html = self.render_part(stem, locale, HTML, context)?;
        let inlined = css::inline_html(with_preheader(html, &preheader)).map_err(|message| {
            Error::Template {
                name: template_name(stem, locale, HTML),
                message,
            }
        })?;
        // The bound is on the HTML as sent, whichever way it was inlined.
        if inlined.len() > MAX_PART_BYTES {
            return Err(Error::TemplateBound {
                name: template_name(stem, locale, HTML),
                message: output_bound(),
            });
        }
        Ok(inlined)
    }
}

/// The names of the files in the template directory; none if it does not
/// exist.
fn file_names(dir: &Path) -> Result<Vec<String>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(std::result::Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(Error::io(dir, error)),
    }
}

/// The parts of a template's sets found among the files: locale as the
/// file spells it → its parts. The default set ("") is
/// always there, so that its missing files are reported.
fn parts_by_locale(listing: &[String], stem: &str) -> BTreeMap<String, Vec<&'static str>> {
    let mut found: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    found.entry(String::new()).or_default();
    let prefix = format!("{stem}.");
    for file in listing {
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let (locale, part) = rest.rsplit_once('.').unwrap_or(("", rest));
        let Some(part) = PARTS.iter().find(|p| **p == part) else {
            continue;
        };
        if locale.is_empty()
            || locale
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            found.entry(locale.to_string()).or_default().push(part);
        }
    }
    // In the order of `PARTS`, whatever the listing's: errors come in it.
    for parts in found.values_mut() {
        parts.sort_by_key(|part| PARTS.iter().position(|p| p == part));
    }
    found
}

/// Adds one set's files to the environment, and its HTML inlined ahead
/// where `css` can do that; gives the set's normalised locale and what it
/// has, or every error of the set: a missing subject or HTML, a file that
/// cannot be read or that minijinja refuses, each naming the file.
fn load_set(
    env: &mut Environment<'static>,
    dir: &Path,
    step: &Step,
    stem: &str,
    spelled: &str,
    parts: &[&str],
) -> std::result::Result<(String, Set), Vec<Error>> {
    let mut errors = Vec::new();
    for required in [SUBJECT, HTML] {
        if !parts.contains(&required) {
            let path = dir.join(template_name(stem, spelled, required));
            errors.push(Error::Template {
                name: path.display().to_string(),
                message: format!("missing (step {:?} needs it)", step.name),
            });
        }
    }
    let locale = normalize_locale(spelled);
    let preheader = parts.contains(&PREHEADER);
    let mut inlined = false;
    for part in parts {
        let path: PathBuf = dir.join(template_name(stem, spelled, part));
        let source = match std::fs::read_to_string(&path) {
            Ok(source) => source,
            Err(error) => {
                errors.push(Error::Template {
                    name: path.display().to_string(),
                    message: error.to_string(),
                });
                continue;
            }
        };
        if *part == HTML {
            let marked = if preheader {
                with_preheader(source.clone(), css::PREHEADER_MARK)
            } else {
                source.clone()
            };
            if let Some(ahead) = css::inline_template(&marked) {
                // A source minijinja refuses is reported below from the
                // file itself.
                inlined = env
                    .add_template_owned(template_name(stem, &locale, INLINED_HTML), ahead)
                    .is_ok();
            }
        }
        if let Err(error) =
            env.add_template_owned(template_name(stem, &locale, part), source.clone())
        {
            errors.push(syntax_error(&path, &error, &source));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let set = Set {
        text: parts.contains(&TEXT),
        preheader,
        inlined,
    };
    Ok((locale, set))
}

/// A part's output while it is rendered: refuses to grow past
/// `MAX_PART_BYTES`, so a runaway template stops there (minijinja gives up
/// at the first refused write).
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + bytes.len() > MAX_PART_BYTES {
            return Err(std::io::Error::other(OutputBound));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `Bounded` refuses a write with, to tell it from other failures.
#[derive(Debug)]
struct OutputBound;

impl std::fmt::Display for OutputBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "output over {MAX_PART_BYTES} bytes")
    }
}

impl std::error::Error for OutputBound {}

fn output_bound() -> String {
    format!(
        "output over the limit of {} MiB per part",
        MAX_PART_BYTES >> 20
    )
}

/// A template minijinja refuses to load, as an error naming its file,
/// with the line as written.
fn syntax_error(path: &Path, error: &minijinja::Error, source: &str) -> Error {
    Error::Template {
        name: path.display().to_string(),
        message: errors::describe(error, Some(source), None),
    }
}

/// A subject is one line: CR, LF and other controls can never reach the
/// header (no header injection from cart data), runs of white space fold.
/// No-break spaces (as in `1.234,50 €`) stay.
fn one_line(text: &str) -> String {
    text.split(|c: char| {
        c.is_ascii_whitespace() || c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
    })
    .filter(|word| !word.is_empty())
    .collect::<Vec<_>>()
    .join(" ")
}
