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
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use chrono_tz::Tz;
use minijinja::value::{Enumerator, Object, Serde, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::coupon::{Coupon, format_date};
use crate::error::{Error, Result};
use crate::model::Cart;
use crate::plan::Step;

mod css;

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

pub struct Renderer {
    env: Environment<'static>,
    /// `shop`, the same for every mail.
    shop: Value,
    /// For dates of carts that name neither a zone nor an offset.
    timezone: Tz,
    /// template → locale (lower case, `-`; "" for the default) → its set.
    sets: BTreeMap<String, BTreeMap<String, Set>>,
}

/// What templates see of one mail. The cart parts are minijinja objects
/// over the shared cart, not serialised up front: a field becomes a value
/// when a template reads it (most read a few of them), and its keys and
/// their order are those of the structs this replaced, so `tojson`,
/// `|items` and printing a whole object give what they gave. A name that
/// is not there is undefined, which strict undefined makes an error.
#[derive(Debug)]
struct Context {
    shop: Value,
    customer: Value,
    cart: Value,
    items: Value,
    links: Value,
    step: Value,
    /// None when the step promises no coupon: `{% if coupon %}` works
    /// under strict undefined.
    coupon: Value,
}

impl Object for Context {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        Some(
            match key {
                "shop" => &self.shop,
                "customer" => &self.customer,
                "cart" => &self.cart,
                "items" => &self.items,
                "links" => &self.links,
                "step" => &self.step,
                "coupon" => &self.coupon,
                _ => return None,
            }
            .clone(),
        )
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&[
            "shop", "customer", "cart", "items", "links", "step", "coupon",
        ])
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(7)
    }
}

#[derive(Serialize)]
struct CouponView<'a> {
    code: &'a str,
    /// The last day it is valid, written for the cart's locale in the
    /// customer's zone; None if it does not expire.
    expires: Option<String>,
}

#[derive(Serialize)]
struct Shop<'a> {
    name: &'a str,
}

/// `customer`: email, first_name.
#[derive(Debug)]
struct CustomerView(Arc<Cart>);

impl Object for CustomerView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        match key {
            "email" => Some(Value::from(self.0.email.as_str())),
            "first_name" => Some(Value::from(self.0.first_name.as_str())),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["email", "first_name"])
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(2)
    }
}

/// `cart`: id, currency, total (formatted for the locale), item_count,
/// locale.
#[derive(Debug)]
struct CartView {
    cart: Arc<Cart>,
    /// Formatted once, however many parts show it.
    total: OnceLock<Value>,
}

impl Object for CartView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let cart = &self.cart;
        match key {
            "id" => Some(Value::from(cart.id.as_str())),
            "currency" => Some(Value::from(cart.currency.as_str())),
            "total" => Some(
                self.total
                    .get_or_init(|| money(cart, cart.total_minor()))
                    .clone(),
            ),
            "item_count" => Some(Value::from(cart.item_count())),
            "locale" => Some(Value::from(cart.locale.as_str())),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["id", "currency", "total", "item_count", "locale"])
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(5)
    }
}

/// One of `items`: name, sku, category, quantity, unit_price, line_total
/// (both formatted), image_url, product_url (web URLs only).
#[derive(Debug)]
struct ItemView {
    cart: Arc<Cart>,
    index: usize,
    unit_price: OnceLock<Value>,
    line_total: OnceLock<Value>,
}

impl Object for ItemView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let cart = &self.cart;
        let item = &cart.items[self.index];
        match key {
            "name" => Some(Value::from(item.name.as_str())),
            "sku" => Some(Value::from(item.sku.as_str())),
            "category" => Some(Value::from(item.category.as_str())),
            "quantity" => Some(Value::from(item.quantity)),
            "unit_price" => Some(
                self.unit_price
                    .get_or_init(|| money(cart, item.unit_price_minor))
                    .clone(),
            ),
            "line_total" => Some(
                self.line_total
                    .get_or_init(|| money(cart, item.line_total_minor()))
                    .clone(),
            ),
            "image_url" => Some(Value::from(web_url(&item.image_url))),
            "product_url" => Some(Value::from(web_url(&item.product_url))),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&[
            "name",
            "sku",
            "category",
            "quantity",
            "unit_price",
            "line_total",
            "image_url",
            "product_url",
        ])
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(8)
    }
}

/// An amount of the cart's currency, written for its locale.
fn money(cart: &Cart, minor: i64) -> Value {
    Value::from(cart.currency.format_in(minor, &cart.locale))
}

#[derive(Serialize)]
struct StepView<'a> {
    name: &'a str,
}

/// `de_AT` → `de-at`.
fn normalize_locale(locale: &str) -> String {
    locale.trim().replace('_', "-").to_ascii_lowercase()
}

fn template_name(template: &str, locale: &str, part: &str) -> String {
    if locale.is_empty() {
        format!("{template}.{part}")
    } else {
        format!("{template}.{locale}.{part}")
    }
}

fn escape_for(name: &str) -> AutoEscape {
    if name.ends_with(".html") || name.ends_with(".preheader") {
        AutoEscape::Html
    } else {
        AutoEscape::None
    }
}

/// minijinja's own HTML escaping also writes `/` as `&#x2f;`: harmless,
/// but every URL in a mail would carry it. Only the five characters that
/// can end text or a quoted value are escaped here.
fn html_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> std::result::Result<(), minijinja::Error> {
    let (AutoEscape::Html, Some(text)) = (state.auto_escape(), value.as_str()) else {
        return minijinja::escape_formatter(out, state, value);
    };
    if value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    let mut rest = text;
    // A byte scan: the five are ASCII, so never inside another character.
    while let Some(at) = rest
        .bytes()
        .position(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
    {
        out.write_str(&rest[..at])?;
        out.write_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        })?;
        rest = &rest[at + 1..];
    }
    out.write_str(rest)?;
    Ok(())
}

impl Renderer {
    /// Loads every template set the steps name; a missing file is an error
    /// naming it.
    pub fn load(dir: &Path, steps: &[Step], shop_name: &str) -> Result<Renderer> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(escape_for);
        env.set_formatter(html_formatter);
        let listing: Vec<String> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(Error::io(dir, error)),
        };
        let mut sets: BTreeMap<String, BTreeMap<String, Set>> = BTreeMap::new();
        for (step, stem) in steps
            .iter()
            .flat_map(|step| step.templates().into_iter().map(move |stem| (step, stem)))
        {
            if sets.contains_key(stem) {
                continue;
            }
            // file locale (as spelled) → parts present
            let mut found: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            found.entry(String::new()).or_default();
            let prefix = format!("{}.", stem);
            for file in &listing {
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
            let mut by_locale = BTreeMap::new();
            for (spelled, parts) in found {
                for required in [SUBJECT, HTML] {
                    if !parts.contains(&required) {
                        let path = dir.join(template_name(stem, &spelled, required));
                        return Err(Error::Template {
                            name: path.display().to_string(),
                            message: format!("missing (step {:?} needs it)", step.name),
                        });
                    }
                }
                let locale = normalize_locale(&spelled);
                let preheader = parts.contains(&PREHEADER);
                let mut inlined = false;
                for part in &parts {
                    let path: PathBuf = dir.join(template_name(stem, &spelled, part));
                    let source =
                        std::fs::read_to_string(&path).map_err(|error| Error::Template {
                            name: path.display().to_string(),
                            message: error.to_string(),
                        })?;
                    if *part == HTML {
                        let marked = if preheader {
                            with_preheader(source.clone(), css::PREHEADER_MARK)
                        } else {
                            source.clone()
                        };
                        if let Some(ahead) = css::inline_template(&marked) {
                            // A source minijinja refuses is reported below
                            // from the file itself.
                            inlined = env
                                .add_template_owned(
                                    template_name(stem, &locale, INLINED_HTML),
                                    ahead,
                                )
                                .is_ok();
                        }
                    }
                    env.add_template_owned(template_name(stem, &locale, part), source)
                        .map_err(|error| template_error(&path, &error))?;
                }
                by_locale.insert(
                    locale,
                    Set {
                        text: parts.contains(&TEXT),
                        preheader,
                        inlined,
                    },
                );
            }
            sets.insert(stem.to_string(), by_locale);
        }
        let mut renderer = Renderer {
            env,
            shop: Value::from(Serde(&Shop { name: shop_name })),
            timezone: Tz::UTC,
            sets,
        };
        renderer.keep_only_verified_inlining();
        Ok(renderer)
    }

    /// Renders sample carts through every set inlined ahead both ways and
    /// keeps inlining ahead only where the mails come out the same.
    fn keep_only_verified_inlining(&mut self) {
        let samples = css::samples();
        let mut refused = Vec::new();
        for (stem, sets) in &self.sets {
            for (locale, set) in sets.iter().filter(|(_, set)| set.inlined) {
                let same = samples.iter().all(|(cart, coupon)| {
                    let cart = Arc::new(cart.clone());
                    let context =
                        self.context(&cart, "sample", &css::sample_links(), coupon.as_ref());
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
    pub fn with_timezone(mut self, timezone: Tz) -> Renderer {
        self.timezone = timezone;
        self
    }

    /// The date `at` falls on for the cart's customer.
    fn local_date(&self, cart: &Cart, at: DateTime<Utc>) -> NaiveDate {
        if let Ok(zone) = cart.timezone.parse::<Tz>() {
            return at.with_timezone(&zone).date_naive();
        }
        if let Some(offset) = cart.utc_offset_seconds.and_then(FixedOffset::east_opt) {
            return at.with_timezone(&offset).date_naive();
        }
        at.with_timezone(&self.timezone).date_naive()
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
        self.render_shared(&Arc::new(cart.clone()), step, links, coupon)
    }

    /// `render` for a cart already shared: the templates read it in place
    /// (no copy).
    pub fn render_shared(
        &self,
        cart: &Arc<Cart>,
        step: &Step,
        links: &Links,
        coupon: Option<&Coupon>,
    ) -> Result<Rendered> {
        self.render_stem(cart, step, step.template_for(&cart.id), links, coupon)
    }

    /// Renders one given template stem of the step.
    pub fn render_template(
        &self,
        cart: &Cart,
        step: &Step,
        stem: &str,
        links: &Links,
        coupon: Option<&Coupon>,
    ) -> Result<Rendered> {
        self.render_stem(&Arc::new(cart.clone()), step, stem, links, coupon)
    }

    fn render_stem(
        &self,
        cart: &Arc<Cart>,
        step: &Step,
        stem: &str,
        links: &Links,
        coupon: Option<&Coupon>,
    ) -> Result<Rendered> {
        let context = self.context(cart, &step.name, links, coupon);
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
    ) -> Value {
        let items = (0..cart.items.len())
            .map(|index| {
                Value::from_object(ItemView {
                    cart: Arc::clone(cart),
                    index,
                    unit_price: OnceLock::new(),
                    line_total: OnceLock::new(),
                })
            })
            .collect::<Vec<_>>();
        Value::from_object(Context {
            shop: self.shop.clone(),
            customer: Value::from_object(CustomerView(Arc::clone(cart))),
            cart: Value::from_object(CartView {
                cart: Arc::clone(cart),
                total: OnceLock::new(),
            }),
            items: Value::from_object(items),
            links: Value::from(Serde(links)),
            step: Value::from(Serde(&StepView { name: step })),
            coupon: match coupon {
                Some(coupon) => Value::from(Serde(&CouponView {
                    code: &coupon.code,
                    expires: coupon
                        .expires
                        .map(|at| format_date(self.local_date(cart, at), &cart.locale)),
                })),
                None => Value::from(()),
            },
        })
    }

    fn render_part(&self, stem: &str, locale: &str, part: &str, context: &Value) -> Result<String> {
        let name = template_name(stem, locale, part);
        let template = self
            .env
            .get_template(&name)
            .map_err(|error| Error::Template {
                name: name.clone(),
                message: error.to_string(),
            })?;
        template
            .render(context)
            .map_err(|error| template_error(Path::new(&name), &error))
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
        if ahead
            && block_as_ahead
            && let Ok(html) = self.render_part(stem, locale, INLINED_HTML, context)
        {
            if !set.preheader {
                return Ok(html);
            }
            return Ok(html.replacen(css::PREHEADER_MARK, &preheader, 1));
        }
        let html = self.render_part(stem, locale, HTML, context)?;
        css::inline_html(with_preheader(html, &preheader)).map_err(|message| Error::Template {
            name: template_name(stem, locale, HTML),
            message,
        })
    }
}

/// A URL from cart data as a link or image source: http(s) only, so a
/// `javascript:` or `data:` URL from a CSV never reaches an `href`.
/// Fills what the cart's items leave out — name (blank, or just the SKU),
/// image, product URL, price (zero) — from the catalog by SKU; the cart's
/// own values win where present. Items the catalog says are out of stock
/// are left out unless the rule is `ignore` (the plan has skipped carts the
/// rule does not allow).
pub fn fill_from_catalog(
    cart: &mut Cart,
    catalog: &std::collections::HashMap<String, crate::model::Product>,
    rule: crate::plan::OutOfStock,
) {
    let currency = cart.currency.clone();
    cart.items.retain(|item| {
        rule == crate::plan::OutOfStock::Ignore
            || catalog.get(&item.sku).and_then(|p| p.in_stock) != Some(false)
    });
    for item in &mut cart.items {
        let Some(product) = catalog.get(&item.sku) else {
            continue;
        };
        if (item.name.is_empty() || item.name == item.sku) && !product.name.is_empty() {
            item.name = product.name.clone();
        }
        if item.image_url.is_empty() {
            item.image_url = product.image_url.clone();
        }
        if item.product_url.is_empty() {
            item.product_url = product.product_url.clone();
        }
        if item.unit_price_minor == 0
            && product.currency.as_ref() == Some(&currency)
            && let Some(price) = product.price_minor
        {
            item.unit_price_minor = price;
        }
    }
}

fn web_url(url: &str) -> &str {
    let url = url.trim();
    // Compared in place: templates read a URL per item and part.
    let starts_with = |prefix: &str| {
        url.as_bytes()
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    if starts_with("https://") || starts_with("http://") {
        url
    } else {
        ""
    }
}

/// The plain-text part for a set without `.txt`: the HTML as text, links
/// as numbered footnotes.
pub fn html_to_text(html: &str) -> String {
    html2text::config::plain()
        .string_from_read(html.as_bytes(), 78)
        .unwrap_or_default()
}

/// Puts the (already escaped) preheader as a hidden block first in the
/// body, padded so that inboxes do not pull body text into the preview.
/// No tiny `font-size` in its style: SpamAssassin scores that as invisible
/// text (`FONT_INVIS_MSGID`); `display:none` alone is not held against it.
fn with_preheader(html: String, preheader: &str) -> String {
    if preheader.is_empty() {
        return html;
    }
    let block = format!(
        "<div style=\"display:none;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all\">{preheader}{}</div>",
        "&#847;&zwnj;&nbsp;".repeat(20)
    );
    let lower = html.to_ascii_lowercase();
    let at = lower
        .find("<body")
        .and_then(|start| lower[start..].find('>').map(|end| start + end + 1))
        .unwrap_or(0);
    format!("{}{block}{}", &html[..at], &html[at..])
}

fn template_error(path: &Path, error: &minijinja::Error) -> Error {
    let mut message = error.kind().to_string();
    if let Some(detail) = error.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    if let Some(line) = error.line() {
        message = format!("line {line}: {message}");
    }
    Error::Template {
        name: path.display().to_string(),
        message,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CartStatus, LineItem};
    use chrono::{TimeDelta, Utc};

    fn cart() -> Cart {
        Cart {
            id: "C1".into(),
            email: "ann@example.com".into(),
            first_name: "Ann\r\nBcc: x@evil.example".into(),
            locale: "en".into(),
            currency: "EUR".parse().unwrap(),
            status: CartStatus::Open,
            accepts_marketing: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            utc_offset_seconds: None,
            timezone: String::new(),
            phone: String::new(),
            sms_consent: false,
            items: vec![LineItem {
                sku: "S1".into(),
                name: "<script>alert(1)</script> Tent".into(),
                category: "tents".into(),
                quantity: 2,
                unit_price_minor: 19900,
                image_url: String::new(),
                product_url: "https://shop.example/p/tent".into(),
            }],
        }
    }

    fn setup(subject: &str, html: &str, text: &str) -> (tempfile::TempDir, Step) {
        let dir = tempfile::tempdir().unwrap();
        for (part, source) in [("subject", subject), ("html", html), ("txt", text)] {
            std::fs::write(dir.path().join(format!("reminder.{part}")), source).unwrap();
        }
        let step = Step {
            name: "1h".into(),
            after: TimeDelta::hours(1),
            template: "reminder".into(),
            variants: Vec::new(),
            require_consent: true,
            filters: Default::default(),
            channel: Default::default(),
            require_sms_consent: false,
            coupon: None,
        };
        (dir, step)
    }

    fn links() -> Links {
        Links {
            recover: "https://shop.example/r/T".into(),
            unsubscribe: "https://shop.example/u/T".into(),
            unsubscribe_mailto: None,
        }
    }

    #[test]
    fn renders_items_escapes_html_and_folds_subjects() {
        let (dir, step) = setup(
            "{{ customer.first_name }}, your cart at {{ shop.name }}\n",
            "{% for item in items %}<p>{{ item.quantity }} × {{ item.name }} {{ item.line_total }}</p>{% endfor %}",
            "{% for item in items %}{{ item.quantity }} × {{ item.name }} {{ item.line_total }}\n{% endfor %}{{ links.recover }}",
        );
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        let mail = renderer.render(&cart(), &step, &links(), None).unwrap();
        assert_eq!(mail.subject, "Ann Bcc: x@evil.example, your cart at Shop");
        assert!(mail.html.contains("&lt;script&gt;"), "{}", mail.html);
        assert!(!mail.html.contains("<script>"));
        assert!(mail.html.contains("€398.00"));
        assert!(
            mail.text
                .contains("2 × <script>alert(1)</script> Tent €398.00")
        );
        assert!(mail.text.contains("https://shop.example/r/T"));
    }

    #[test]
    fn the_coupon_is_there_when_the_step_has_one() {
        let (dir, step) = setup(
            "{% if coupon %}{{ coupon.code }} for you{% else %}Your cart{% endif %}",
            "{% if coupon %}<b>{{ coupon.code }}</b>{% if coupon.expires %} until {{ coupon.expires }}{% endif %}{% endif %}",
            "{% if coupon %}{{ coupon.code }}{% else %}no coupon{% endif %}",
        );
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        let none = renderer.render(&cart(), &step, &links(), None).unwrap();
        assert_eq!(none.subject, "Your cart");
        assert_eq!(none.text, "no coupon");
        let coupon = Coupon {
            code: "COMEBACK-<X>".into(),
            // 23:30 UTC is the next day in Vienna.
            expires: Some("2026-11-28T23:30:00Z".parse().unwrap()),
        };
        let mut cart = cart();
        let mail = renderer
            .render(&cart, &step, &links(), Some(&coupon))
            .unwrap();
        assert_eq!(mail.subject, "COMEBACK-<X> for you");
        assert!(
            mail.html
                .contains("<b>COMEBACK-&lt;X&gt;</b> until 28 November 2026"),
            "{}",
            mail.html
        );
        cart.locale = "de-AT".into();
        cart.timezone = "Europe/Vienna".into();
        let mail = renderer
            .render(&cart, &step, &links(), Some(&coupon))
            .unwrap();
        assert!(mail.html.contains("until 29.11.2026"), "{}", mail.html);
        // A code that never expires.
        let forever = Coupon {
            code: "SAVE10".into(),
            expires: None,
        };
        let mail = renderer
            .render(&cart, &step, &links(), Some(&forever))
            .unwrap();
        assert!(mail.html.contains("<b>SAVE10</b>"), "{}", mail.html);
        assert!(!mail.html.contains("until"));
    }

    #[test]
    fn undefined_names_and_missing_files_are_errors() {
        let (dir, step) = setup("{{ custmer.first_name }}", "x", "x");
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        let error = renderer.render(&cart(), &step, &links(), None).unwrap_err();
        assert!(error.to_string().contains("reminder.subject"), "{error}");
        assert_eq!(error.exit_code(), crate::error::exit::USAGE);

        std::fs::remove_file(dir.path().join("reminder.html")).unwrap();
        let error = Renderer::load(dir.path(), &[step], "Shop").err().unwrap();
        assert!(error.to_string().contains("reminder.html"), "{error}");
    }

    #[test]
    fn the_lazy_context_is_strict_and_looks_like_the_serialised_one() {
        for typo in [
            "{{ cart.totl }}",
            "{{ customer.nam }}",
            "{% for item in items %}{{ item.nme }}{% endfor %}",
            "{{ links.recovr }}",
            "{{ nothing }}",
        ] {
            let (dir, step) = setup(typo, "x", "x");
            let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
            let error = renderer.render(&cart(), &step, &links(), None);
            assert!(error.is_err(), "{typo} renders");
        }
        // Keys in the order the structs it replaced had, values as they were.
        let (dir, step) = setup(
            "x",
            "x",
            "{% for k, v in cart|items %}{{ k }}={{ v }};{% endfor %}\n\
             {{ items[0]|tojson }}\n{{ customer }}\n{{ items|length }} {{ coupon is none }}",
        );
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        let mail = renderer.render(&cart(), &step, &links(), None).unwrap();
        let expected = [
            "id=C1;currency=EUR;total=€398.00;item_count=2;locale=en;",
            r#"{"name": "\u003cscript\u003ealert(1)\u003c/script\u003e Tent", "sku": "S1", "category": "tents", "quantity": 2, "unit_price": "€199.00", "line_total": "€398.00", "image_url": "", "product_url": "https://shop.example/p/tent"}"#,
            r#"{'email': 'ann@example.com', 'first_name': 'Ann\r\nBcc: x@evil.example'}"#,
            "1 True",
        ];
        assert_eq!(mail.text, expected.join("\n"));
    }

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, source) in files {
            std::fs::write(dir.join(name), source).unwrap();
        }
    }

    #[test]
    fn text_is_derived_from_the_html_when_there_is_no_txt() {
        let (dir, step) = setup("Hi", "", "");
        std::fs::remove_file(dir.path().join("reminder.txt")).unwrap();
        write(
            dir.path(),
            &[(
                "reminder.html",
                "<html><head><style>p { color: red; }</style></head><body>\
                 <h1>Your cart</h1>{% for item in items %}<p>{{ item.name }}: {{ item.line_total }}</p>{% endfor %}\
                 <p><a href=\"{{ links.recover }}\">Back to your cart</a></p></body></html>",
            )],
        );
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        let mail = renderer.render(&cart(), &step, &links(), None).unwrap();
        assert!(mail.text.contains("Your cart"), "{}", mail.text);
        assert!(
            mail.text
                .contains("<script>alert(1)</script> Tent: €398.00"),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("Back to your cart"), "{}", mail.text);
        assert!(
            mail.text.contains("https://shop.example/r/T"),
            "{}",
            mail.text
        );
        assert!(
            !mail.text.contains("color"),
            "CSS leaked into the text: {}",
            mail.text
        );
        assert!(!mail.text.contains("&lt;"), "{}", mail.text);
    }

    #[test]
    fn css_is_inlined_and_media_queries_stay() {
        let (dir, step) = setup(
            "Hi",
            "<html><head><style>.box { color: #123456; padding: 4px; } \
             @media only screen and (max-width: 620px) { .box { padding: 0 !important; } }</style></head>\
             <body><td class=\"box\">x</td><p class=\"box\" style=\"margin: 0\">y</p></body></html>",
            "text",
        );
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        let html = renderer
            .render(&cart(), &step, &links(), None)
            .unwrap()
            .html;
        assert!(html.contains("color: #123456"), "{html}");
        assert!(html.contains("<p class=\"box\" style=\""), "{html}");
        assert!(
            html.contains("margin: 0"),
            "the template's own style is kept: {html}"
        );
        assert!(html.contains("@media"), "{html}");
        assert!(
            !html.contains(".box { color"),
            "inlined rules leave the <style>: {html}"
        );
    }

    #[test]
    fn the_preheader_is_a_hidden_escaped_first_line() {
        let (dir, step) = setup(
            "Hi",
            "<html><head><title>t</title></head><body class=\"b\"><p>Body</p></body></html>",
            "text",
        );
        write(
            dir.path(),
            &[("reminder.preheader", "Saved for you, {{ items[0].name }}\n")],
        );
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        let mail = renderer.render(&cart(), &step, &links(), None).unwrap();
        let body = mail.html.find("<body").unwrap();
        let hidden = mail.html.find("<div style=\"display:none").unwrap();
        let first = mail.html.find("<p>Body").unwrap();
        assert!(body < hidden && hidden < first, "{}", mail.html);
        assert!(
            mail.html
                .contains("Saved for you, &lt;script&gt;alert(1)&lt;"),
            "{}",
            mail.html
        );
        assert!(!mail.text.contains("Saved for you"));
    }

    #[test]
    fn locales_fall_back_from_region_to_language_to_default() {
        let (dir, step) = setup("Your cart {{ cart.total }}", "<p>en</p>", "en");
        write(
            dir.path(),
            &[
                ("reminder.de.subject", "Ihr Warenkorb {{ cart.total }}"),
                ("reminder.de.html", "<p>de</p>"),
                ("reminder.de.txt", "de"),
                ("reminder.de_CH.subject", "Ihr Warenkorb (CH)"),
                ("reminder.de_CH.html", "<p>de-ch</p>"),
                ("reminder.html.bak", "ignored"),
            ],
        );
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        assert_eq!(renderer.locales("reminder"), vec!["de", "de-ch"]);
        let mut cart = cart();
        for (locale, subject, text, chosen) in [
            ("de-AT", "Ihr Warenkorb 398,00\u{a0}€", "de", "de"),
            ("de", "Ihr Warenkorb 398,00\u{a0}€", "de", "de"),
            ("DE_at", "Ihr Warenkorb 398,00\u{a0}€", "de", "de"),
            ("de-CH", "Ihr Warenkorb (CH)", "de-ch", "de-ch"),
            ("fr-FR", "Your cart 398,00\u{a0}€", "en", ""),
            ("en-US", "Your cart €398.00", "en", ""),
            ("", "Your cart €398.00", "en", ""),
        ] {
            cart.locale = locale.into();
            let mail = renderer.render(&cart, &step, &links(), None).unwrap();
            assert_eq!(mail.subject, subject, "{locale}");
            assert!(mail.text.contains(text), "{locale}: {}", mail.text);
            assert_eq!(mail.locale, chosen, "{locale}");
        }
    }

    #[test]
    fn only_web_urls_reach_links() {
        assert_eq!(web_url("https://shop.example/p"), "https://shop.example/p");
        assert_eq!(web_url(" HTTP://shop.example/p "), "HTTP://shop.example/p");
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            "//evil",
            "http:/x",
            "",
        ] {
            assert_eq!(web_url(bad), "", "{bad}");
        }
    }

    #[test]
    fn a_locale_set_needs_its_subject_and_html() {
        let (dir, step) = setup("s", "h", "t");
        write(dir.path(), &[("reminder.de.html", "<p>de</p>")]);
        let error = Renderer::load(dir.path(), &[step], "Shop").err().unwrap();
        assert!(error.to_string().contains("reminder.de.subject"), "{error}");
    }

    fn starter() -> Renderer {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let steps: Vec<Step> = ["reminder", "reminder-2", "reminder-3"]
            .iter()
            .map(|template| Step {
                name: template.to_string(),
                after: TimeDelta::hours(1),
                template: template.to_string(),
                variants: Vec::new(),
                require_consent: true,
                filters: Default::default(),
                channel: Default::default(),
                require_sms_consent: false,
                coupon: None,
            })
            .collect();
        Renderer::load(&dir, &steps, "Shop & Co").unwrap()
    }

    fn starter_step(template: &str) -> Step {
        Step {
            name: template.into(),
            after: TimeDelta::hours(1),
            template: template.into(),
            variants: Vec::new(),
            require_consent: true,
            filters: Default::default(),
            channel: Default::default(),
            require_sms_consent: false,
            coupon: None,
        }
    }

    /// The element names and attribute names of serialized HTML, as a
    /// browser's tokenizer would find them (quoted values skipped).
    fn markup(html: &str) -> (Vec<String>, Vec<String>) {
        let (mut tags, mut attributes) = (Vec::new(), Vec::new());
        let mut chars = html.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '<' {
                continue;
            }
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '!' || c == '/' {
                    name.push(c.to_ascii_lowercase());
                    chars.next();
                } else {
                    break;
                }
            }
            tags.push(name);
            let mut word = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '>' => break,
                    '"' | '\'' => {
                        for d in chars.by_ref() {
                            if d == c {
                                break;
                            }
                        }
                    }
                    '=' => attributes.push(std::mem::take(&mut word).to_ascii_lowercase()),
                    c if c.is_whitespace() => word.clear(),
                    c => word.push(c),
                }
            }
        }
        (tags, attributes)
    }

    #[test]
    fn starter_templates_escape_hostile_cart_fields() {
        let renderer = starter();
        let mut cart = cart();
        cart.first_name = "\"><img src=x onerror=alert(1)>".into();
        cart.items[0].name = "\"><img src=x onerror=alert(2)><script>alert(3)</script>".into();
        cart.items[0].image_url = "https://x/\" onerror=\"alert(5)".into();
        cart.items[0].product_url = "javascript:alert(6)".into();
        for template in ["reminder", "reminder-2", "reminder-3"] {
            let mail = renderer
                .render(&cart, &starter_step(template), &links(), None)
                .unwrap();
            let (tags, attributes) = markup(&mail.html);
            assert!(
                !tags.contains(&"script".to_string()),
                "{template}: {tags:?}"
            );
            assert!(!attributes.contains(&"onerror".to_string()), "{template}");
            assert_eq!(
                tags.iter().filter(|tag| *tag == "img").count(),
                1,
                "{template}: only the product image is an <img>"
            );
            assert!(
                mail.html
                    .contains("src=\"https://x/&quot; onerror=&quot;alert(5)\""),
                "{template}"
            );
            assert!(mail.html.contains("&lt;script&gt;alert(3)"), "{template}");
            assert!(!mail.html.contains("javascript:"), "{template}");
            assert!(mail.html.contains("Shop &amp; Co"), "{template}");
            assert!(!mail.subject.contains('\n'));
        }
    }

    #[test]
    fn starter_templates_are_inlined_ahead_and_give_the_mails_inlining_each_would() {
        let renderer = starter();
        let mut carts = vec![cart()];
        let mut hostile = cart();
        hostile.first_name = "\"><b class=\"button\">x</b>".into();
        hostile.items[0].name = "<td class=\"price\">&amp; ' /".into();
        carts.push(hostile);
        let mut empty = cart();
        empty.items.clear();
        empty.first_name.clear();
        carts.push(empty);
        let mut many = cart();
        many.items = (0..5).map(|_| cart().items[0].clone()).collect();
        many.items[1].image_url = "https://shop.example/i.jpg".into();
        many.locale = "de-AT".into();
        carts.push(many);
        let coupon = sample_coupon();
        for (stem, sets) in &renderer.sets {
            for (locale, set) in sets {
                assert!(set.inlined, "{stem} {locale:?} is inlined ahead");
                for cart in &carts {
                    for coupon in [None, Some(&coupon)] {
                        let cart = Arc::new(cart.clone());
                        let context = renderer.context(&cart, stem, &links(), coupon);
                        let ahead = renderer.render_html(stem, locale, *set, &context, true);
                        let each = renderer.render_html(stem, locale, *set, &context, false);
                        let (ahead, each) = (ahead.unwrap(), each.unwrap());
                        assert!(
                            css::same_document(&ahead, &each),
                            "{stem} {locale:?}:\n{ahead}\n---\n{each}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_template_that_styles_by_position_is_inlined_per_mail() {
        let (dir, step) = setup(
            "Hi",
            "<html><head><style>tr:first-child td { color: red; }</style></head><body><table>{% for item in items %}<tr><td>{{ item.name }}</td></tr>{% endfor %}</table></body></html>",
            "Hi",
        );
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        assert!(!renderer.sets["reminder"][""].inlined);
        let mut cart = cart();
        cart.items.push(cart.items[0].clone());
        let mail = renderer.render(&cart, &step, &links(), None).unwrap();
        assert_eq!(mail.html.matches("color: red").count(), 1, "{}", mail.html);
    }

    #[test]
    fn starter_templates_render_empty_carts_without_a_table() {
        let renderer = starter();
        let mut cart = cart();
        cart.items.clear();
        let coupon = sample_coupon();
        for (template, coupon) in ["reminder", "reminder-2", "reminder-3"]
            .into_iter()
            .flat_map(|template| [(template, None), (template, Some(&coupon))])
        {
            let mail = renderer
                .render(&cart, &starter_step(template), &links(), coupon)
                .unwrap();
            assert!(!mail.html.contains("class=\"items\""), "{template}");
            assert!(!mail.html.contains("Total ("), "{template}");
            assert!(!mail.text.contains("Total ("), "{template}");
            assert!(mail.html.contains("https://shop.example/r/T"), "{template}");
        }
    }

    fn sample_coupon() -> Coupon {
        Coupon {
            code: "COMEBACK-7KQ2M9XD4F".into(),
            expires: Some("2026-11-28T12:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn the_last_starter_reminder_shows_its_coupon() {
        let renderer = starter();
        let coupon = sample_coupon();
        let step = starter_step("reminder-3");
        let mail = renderer
            .render(&cart(), &step, &links(), Some(&coupon))
            .unwrap();
        for part in [&mail.html, &mail.text] {
            assert!(part.contains("COMEBACK-7KQ2M9XD4F"), "{part}");
            assert!(part.contains("Valid until 28 November 2026."), "{part}");
        }
        assert!(mail.html.contains("with a code for your order"));
        // Without a coupon: no trace of one.
        let mail = renderer.render(&cart(), &step, &links(), None).unwrap();
        for part in [&mail.html, &mail.text] {
            assert!(!part.contains("code at checkout"), "{part}");
            assert!(!part.contains("Valid until"), "{part}");
        }
        // A code without expiry: no date line.
        let forever = Coupon {
            expires: None,
            ..coupon
        };
        let mail = renderer
            .render(&cart(), &step, &links(), Some(&forever))
            .unwrap();
        assert!(mail.text.contains("COMEBACK-7KQ2M9XD4F"));
        assert!(!mail.text.contains("Valid until"));
    }
}
