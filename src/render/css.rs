//! CSS inlining, once per template rather than once per mail.
//!
//! Parsing every rendered mail with html5ever to inline its `<style>` was
//! most of the cost of a mail. For most templates the result does not
//! depend on the cart: rules match elements by tag, class and id, the
//! template writes those literally, and loops and branches only repeat or
//! drop whole elements. So the template source itself is inlined, with its
//! Jinja tags standing in as comments (blocks) and private-use text
//! (expressions), and the tags put back afterwards.
//!
//! That is only done when it is sure to give the same mail: no selector
//! that looks at siblings, positions or attributes; no Jinja inside a tag
//! except in the value of an attribute other than `class`, `id` or
//! `style`; HTML elements and Jinja blocks nest within each other; no
//! `|safe` output; only `if`, `for`, `set` and `with` blocks. The renderer
//! also renders sample carts both ways at load and compares. Any other
//! template is inlined per mail, as before.

use chrono::{DateTime, TimeDelta, Utc};

use super::Links;
use crate::coupon::Coupon;
use crate::model::{Cart, CartStatus, LineItem};

/// Where the preheader goes in a template inlined ahead: escaped cart data
/// cannot contain `<!--`, so the mark is never confused with it.
pub(super) const PREHEADER_MARK: &str = "<!--recart-preheader-->";

/// Inlines `<style>` rules into `style=` attributes; at-rules (`@media`)
/// stay in a `<style>` block. Never loads anything from the network or
/// from files.
pub(super) fn inline_html(html: String) -> Result<String, String> {
    // Most mails without a style sheet: given back as they are.
    let bytes = html.as_bytes();
    let has_style = memchr::memchr_iter(b'<', bytes).any(|at| {
        bytes
            .get(at + 1..at + 6)
            .is_some_and(|tag| tag.eq_ignore_ascii_case(b"style"))
    });
    if !has_style {
        return Ok(html);
    }
    css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_style_tags(false)
        .keep_at_rules(true)
        .keep_link_tags(true)
        .build()
        .inline(&html)
        .map_err(|error| format!("cannot inline its CSS: {error}"))
}

/// Whether two rendered mails are the same document once parsed, but for
/// white space between tags (they differ in how text is escaped, and a
/// table's white space may fall before or after its `<tbody>`).
pub(super) fn same_document(a: &str, b: &str) -> bool {
    let normal = |html: &str| {
        let serialized = css_inline::CSSInliner::options()
            .load_remote_stylesheets(false)
            .keep_style_tags(true)
            .keep_link_tags(true)
            .build()
            .inline(html)?;
        let mut out = String::with_capacity(serialized.len());
        for (index, piece) in serialized.split('>').enumerate() {
            if index > 0 {
                out.push('>');
            }
            let trimmed = piece.trim_start();
            out.push_str(if trimmed.starts_with('<') || trimmed.is_empty() {
                trimmed
            } else {
                piece
            });
        }
        Ok::<_, css_inline::InlineError>(out)
    };
    match (normal(a), normal(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Carts that take templates down their usual branches: items with and
/// without links and images, none at all, a coupon with and without an
/// end date, a name or none.
pub(super) fn samples() -> Vec<(Cart, Option<Coupon>)> {
    let at = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000);
    let item = |sku: &str, quantity, urls: bool| LineItem {
        sku: sku.into(),
        name: format!("Item {sku} <b>&amp;</b> \"quoted\""),
        category: "gear".into(),
        quantity,
        unit_price_minor: 1250,
        image_url: if urls {
            format!("https://shop.example/i/{sku}.jpg")
        } else {
            String::new()
        },
        product_url: if urls {
            format!("https://shop.example/p/{sku}?a=1&b=2")
        } else {
            String::new()
        },
    };
    let cart = |first_name: &str, items: Vec<LineItem>| Cart {
        id: "sample".into(),
        email: "sample@example.com".into(),
        first_name: first_name.into(),
        locale: String::new(),
        currency: "EUR".parse().expect("a currency"),
        status: CartStatus::Open,
        accepts_marketing: true,
        created_at: at,
        updated_at: at,
        utc_offset_seconds: None,
        timezone: String::new(),
        phone: String::new(),
        sms_consent: false,
        items,
    };
    let coupon = |expires| Coupon {
        code: "SAMPLE-CODE".into(),
        expires,
    };
    vec![
        (
            cart("Ann", vec![item("A1", 2, true), item("B2", 1, false)]),
            Some(coupon(Some(at))),
        ),
        (cart("", Vec::new()), None),
        (cart("Bo", vec![item("C3", 1, true)]), Some(coupon(None))),
        (
            cart(
                "",
                vec![
                    item("D4", 3, false),
                    item("E5", 1, true),
                    item("F6", 1, true),
                ],
            ),
            None,
        ),
    ]
}

pub(super) fn sample_links() -> Links {
    Links {
        recover: "https://shop.example/r/SAMPLE?x=1&y=2".into(),
        unsubscribe: "https://shop.example/u/SAMPLE".into(),
        unsubscribe_mailto: None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TagKind {
    /// `{{ … }}`
    Expression,
    /// `{% … %}` and `{# … #}`
    Statement,
}

struct Tag<'a> {
    kind: TagKind,
    text: &'a str,
}

/// The template with its CSS inlined and its Jinja tags intact, or None
/// when that might not give the same mails as inlining each one.
pub(super) fn inline_template(source: &str) -> Option<String> {
    let (substituted, tags) = substitute(source)?;
    let substituted = with_explicit_tbody(&substituted);
    if !nests_and_matches_simply(&substituted, &tags) {
        return None;
    }
    let inlined = inline_html(substituted).ok()?;
    restore(&inlined, &tags)
}

fn expression_mark(index: usize) -> String {
    format!("\u{E000}{index}\u{E001}")
}

fn statement_mark(index: usize) -> String {
    format!("<!--recart:{index}-->")
}

/// The source with every Jinja tag replaced by its mark, and the tags.
fn substitute(source: &str) -> Option<(String, Vec<Tag<'_>>)> {
    if source.contains('\u{E000}') || source.contains("<!--recart:") {
        return None;
    }
    let mut out = String::with_capacity(source.len());
    let mut tags = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find('{') {
        let close = match rest.as_bytes().get(start + 1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => "#}",
            _ => {
                out.push_str(&rest[..=start]);
                rest = &rest[start + 1..];
                continue;
            }
        };
        out.push_str(&rest[..start]);
        let end = start + 2 + rest[start + 2..].find(close)? + 2;
        let text = &rest[start..end];
        let kind = if close == "}}" {
            TagKind::Expression
        } else {
            TagKind::Statement
        };
        if kind == TagKind::Expression && text.contains("safe") {
            return None;
        }
        out.push_str(&match kind {
            TagKind::Expression => expression_mark(tags.len()),
            TagKind::Statement => statement_mark(tags.len()),
        });
        tags.push(Tag { kind, text });
        rest = &rest[end..];
    }
    out.push_str(rest);
    Some((out, tags))
}

/// Writes out the `<tbody>` the parser would add to a table that starts
/// with a row: else it would open it after a `{% for %}` before the first
/// row, and the loop would repeat it.
fn with_explicit_tbody(marked: &str) -> String {
    let mut out = String::with_capacity(marked.len() + 64);
    let mut opened: Vec<bool> = Vec::new();
    let mut rest = marked;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        let lower: String = rest
            .chars()
            .take(7)
            .collect::<String>()
            .to_ascii_lowercase();
        if lower.starts_with("<table") && !lower[6..].starts_with(|c: char| c.is_alphanumeric()) {
            let Some((_, _, after)) = start_tag_attributes(&rest[6..]) else {
                break;
            };
            out.push_str(&rest[..rest.len() - after.len()]);
            rest = after;
            let mut ahead = rest;
            loop {
                ahead = ahead.trim_start();
                match ahead.strip_prefix("<!--").and_then(|c| c.split_once("-->")) {
                    Some((_, tail)) => ahead = tail,
                    None => break,
                }
            }
            let starts_with_row = ahead
                .get(..3)
                .is_some_and(|tag| tag.eq_ignore_ascii_case("<tr"))
                && !ahead[3..].starts_with(|c: char| c.is_alphanumeric());
            if starts_with_row {
                out.push_str("<tbody>");
            }
            opened.push(starts_with_row);
        } else if lower.starts_with("</table") {
            if opened.pop() == Some(true) {
                out.push_str("</tbody>");
            }
            out.push('<');
            rest = &rest[1..];
        } else {
            out.push('<');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The keyword of a `{% … %}` tag (`if`, `endfor`, …); "#" for a comment.
fn keyword(tag: &str) -> &str {
    if tag.starts_with("{#") {
        return "#";
    }
    tag[2..tag.len() - 2]
        .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace())
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
}

const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

#[derive(Debug, PartialEq)]
enum Open<'a> {
    Element(String),
    Block(&'a str),
}

/// Walks the marked source: elements and Jinja blocks must nest, marks
/// inside tags only in harmless attribute values, none in `<style>`, and
/// the style rules must use simple selectors only.
fn nests_and_matches_simply(marked: &str, tags: &[Tag<'_>]) -> bool {
    let mut stack: Vec<Open<'_>> = Vec::new();
    let mut rest = marked;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--recart:") {
            let Some((index, tail)) = after.split_once("-->") else {
                return false;
            };
            let Some(tag) = index.parse::<usize>().ok().and_then(|i| tags.get(i)) else {
                return false;
            };
            if !block_nests(keyword(tag.text), &mut stack) {
                return false;
            }
            rest = tail;
        } else if let Some(after) = rest.strip_prefix("<!--") {
            let Some((comment, tail)) = after.split_once("-->") else {
                return false;
            };
            if comment.contains('\u{E000}') || comment.contains("<!--recart:") {
                return false;
            }
            rest = tail;
        } else if rest.starts_with("<!") || rest.starts_with("<?") {
            let Some(end) = rest.find('>') else {
                return false;
            };
            rest = &rest[end + 1..];
        } else if let Some(after) = rest.strip_prefix("</") {
            let name_end = after
                .find(|c: char| c == '>' || c.is_whitespace())
                .unwrap_or(after.len());
            let name = after[..name_end].to_ascii_lowercase();
            if stack.pop() != Some(Open::Element(name)) {
                return false;
            }
            let Some(end) = after.find('>') else {
                return false;
            };
            rest = &after[end + 1..];
        } else {
            let after = &rest[1..];
            let name_end = after
                .find(|c: char| c == '>' || c == '/' || c.is_whitespace())
                .unwrap_or(after.len());
            let name = after[..name_end].to_ascii_lowercase();
            if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                // A lone `<` in text.
                rest = after;
                continue;
            }
            let Some((attributes, self_closing, tail)) = start_tag_attributes(&after[name_end..])
            else {
                return false;
            };
            if !attributes_are_harmless(attributes) {
                return false;
            }
            rest = tail;
            if name == "style" || name == "script" {
                let Some(end) = rest.to_ascii_lowercase().find(&format!("</{name}")) else {
                    return false;
                };
                let content = &rest[..end];
                if content.contains('\u{E000}') || content.contains("<!--recart:") {
                    return false;
                }
                if name == "style" && !simple_selectors(content) {
                    return false;
                }
                rest = &rest[end..];
                let Some(close) = rest.find('>') else {
                    return false;
                };
                rest = &rest[close + 1..];
            } else if !self_closing && !VOID.contains(&name.as_str()) {
                stack.push(Open::Element(name));
            }
        }
    }
    !stack.iter().any(|open| matches!(open, Open::Block(_)))
}

/// Applies one `{% … %}` to the stack: block starts push, `else`/`elif`
/// need their block on top, ends pop it. Other statements are refused.
fn block_nests<'a>(keyword: &'a str, stack: &mut Vec<Open<'a>>) -> bool {
    match keyword {
        // A comment, and `{% set x = … %}` only: a block `set` captures
        // markup (its `endset` is refused).
        "#" | "set" => true,
        "if" | "for" | "with" => {
            stack.push(Open::Block(keyword));
            true
        }
        "elif" => stack.last() == Some(&Open::Block("if")),
        "else" => matches!(stack.last(), Some(Open::Block("if" | "for"))),
        "endif" | "endfor" | "endwith" => stack.pop() == Some(Open::Block(&keyword[3..])),
        _ => false,
    }
}

/// Splits a start tag after its name into its attributes' text, whether it
/// closes itself, and what follows the `>`. Quoted values may hold `>`.
fn start_tag_attributes(after_name: &str) -> Option<(&str, bool, &str)> {
    let mut quote = None;
    for (at, c) in after_name.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => {
                let attributes = &after_name[..at];
                let self_closing = attributes.trim_end().ends_with('/');
                return Some((attributes, self_closing, &after_name[at + 1..]));
            }
            // Inside a quoted value, or any other character outside one.
            _ => {}
        }
    }
    None
}

/// Marks may only sit inside a quoted value of an attribute that selectors
/// do not look at (`class`, `id`) and that inlining does not rewrite
/// (`style`).
fn attributes_are_harmless(attributes: &str) -> bool {
    let has_mark = |text: &str| text.contains('\u{E000}') || text.contains("<!--recart:");
    let mut rest = attributes;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            return true;
        }
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if has_mark(name) {
            return false;
        }
        rest = rest[name_end..].trim_start();
        let Some(value_start) = rest.strip_prefix('=') else {
            continue;
        };
        let value_start = value_start.trim_start();
        let (value, tail, quoted) = if let Some(q @ ('"' | '\'')) = value_start.chars().next() {
            let Some(end) = value_start[1..].find(q) else {
                return false;
            };
            (&value_start[1..=end], &value_start[end + 2..], true)
        } else {
            let end = value_start
                .find(char::is_whitespace)
                .unwrap_or(value_start.len());
            (&value_start[..end], &value_start[end..], false)
        };
        if has_mark(value)
            && (!quoted || ["class", "id", "style"].contains(&name.to_ascii_lowercase().as_str()))
        {
            return false;
        }
        rest = tail;
    }
}

/// True when every selector outside at-rules uses only tags, classes, ids,
/// `*` and descendant or child combinators: what the template's literal
/// ancestry decides.
fn simple_selectors(css: &str) -> bool {
    let mut css = css.to_string();
    while let Some(start) = css.find("/*") {
        let end = css[start..]
            .find("*/")
            .map_or(css.len(), |end| start + end + 2);
        css.replace_range(start..end, " ");
    }
    let mut rest = css.as_str();
    while let Some(open) = rest.find('{') {
        let prelude = rest[..open].trim();
        if prelude.starts_with('@') {
            // Skip the at-rule's whole block: @media rules stay in <style>.
            let mut depth = 0;
            let mut end = rest.len();
            for (at, c) in rest[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + at + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &rest[end..];
            continue;
        }
        if prelude.contains([':', '[', '+', '~', '\\']) {
            return false;
        }
        let Some(close) = rest[open..].find('}') else {
            return false;
        };
        rest = &rest[open + close + 1..];
    }
    true
}

/// Puts the Jinja tags back in place of their marks; None unless every
/// mark is there exactly once and in order.
fn restore(inlined: &str, tags: &[Tag<'_>]) -> Option<String> {
    let mut out = String::with_capacity(inlined.len());
    let mut rest = inlined;
    for (index, tag) in tags.iter().enumerate() {
        let mark = match tag.kind {
            TagKind::Expression => expression_mark(index),
            TagKind::Statement => statement_mark(index),
        };
        let at = rest.find(&mark)?;
        out.push_str(&rest[..at]);
        out.push_str(tag.text);
        rest = &rest[at + mark.len()..];
    }
    if rest.contains('\u{E000}') || rest.contains("<!--recart:") {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STYLE: &str = "<style>.a { color: red; } td { padding: 1px; } @media (max-width: 600px) { .a { color: blue !important; } }</style>";

    fn page(body: &str) -> String {
        format!("<!DOCTYPE html><html><head>{STYLE}</head><body>{body}</body></html>")
    }

    #[test]
    fn html_without_a_style_sheet_is_left_as_it_is() {
        let plain = "<p class=\"a\">Hi &amp; bye</p><stylish>".to_string();
        assert_eq!(inline_html(plain.clone()).unwrap(), plain);
        for tag in ["style", "STYLE", "Style"] {
            let styled = format!("<{tag}>p {{ color: red }}</{tag}><p>Hi</p>");
            let inlined = inline_html(styled).unwrap();
            assert!(inlined.contains("color: red"), "{inlined}");
            assert!(
                !inlined.to_ascii_lowercase().contains("<style"),
                "{inlined}"
            );
        }
    }

    #[test]
    fn loops_branches_and_values_keep_their_tags_and_get_styles() {
        let source = page(
            "<table>{% for item in items %}<tr><td class=\"a\"><a href=\"{{ item.url }}\">{{ item.name }}</a></td></tr>{% endfor %}</table>{% if x %}<p class=\"a\">{{ x }}</p>{% else %}<p>none</p>{% endif %}",
        );
        let inlined = inline_template(&source).expect("simple template");
        assert!(inlined.contains("{% for item in items %}<tr>"), "{inlined}");
        let cell = inlined
            .split("<td ")
            .nth(1)
            .expect("a cell")
            .split('>')
            .next()
            .unwrap();
        assert!(
            cell.contains("color: red") && cell.contains("padding: 1px"),
            "{inlined}"
        );
        assert!(inlined.contains("<table><tbody>{% for"), "{inlined}");
        assert!(inlined.contains("href=\"{{ item.url }}\""), "{inlined}");
        assert!(
            inlined.contains("{% else %}<p>none</p>{% endif %}"),
            "{inlined}"
        );
        assert!(inlined.contains("@media"), "{inlined}");
    }

    #[test]
    fn templates_that_could_style_differently_per_mail_are_refused() {
        for body in [
            // A class chosen per mail.
            "<p class=\"{{ kind }}\">x</p>",
            // Jinja where an attribute goes.
            "<p {% if x %}class=\"a\"{% endif %}>x</p>",
            // An element opened in one branch and closed after it.
            "{% if x %}<div class=\"a\">{% else %}<div>{% endif %}x</div>",
            // Markup from data.
            "<p>{{ note|safe }}</p>",
            // Statements other than if/for/set/with.
            "{% include \"x.html\" %}",
            "{% raw %}{{ x }}{% endraw %}",
            // An unclosed element inside a block.
            "{% if x %}<p class=\"a\">x{% endif %}",
        ] {
            assert_eq!(inline_template(&page(body)), None, "{body}");
        }
        let positional = "<html><head><style>tr:first-child td { color: red; }</style></head><body><table>{% for i in items %}<tr><td>{{ i }}</td></tr>{% endfor %}</table></body></html>";
        assert_eq!(inline_template(positional), None);
        let in_style =
            "<html><head><style>.a { color: {{ c }}; }</style></head><body></body></html>";
        assert_eq!(inline_template(in_style), None);
    }

    #[test]
    fn selectors_are_simple_only_outside_at_rules() {
        assert!(simple_selectors(
            "/* a:b */ body, .x > td .y { a: b } @media (max-width: 1px) { a:hover { x: y } }"
        ));
        assert!(!simple_selectors("a:hover { color: red }"));
        assert!(!simple_selectors("td + td { color: red }"));
        assert!(!simple_selectors("a[href] { color: red }"));
    }
}
