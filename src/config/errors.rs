//! Messages for what serde refuses while reading the file: led by the key
//! at fault (`steps[1].after: …`), like the checks of the section modules,
//! with a suggestion when an unknown key or word looks like a typo.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The message for `error`, met while deserialising `text`.
pub(super) fn describe(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let hint = did_you_mean(message).unwrap_or_default();
    match error.span().and_then(|span| key_at(text, &span)) {
        Some(key) => format!("{key}: {message}{hint}"),
        // A syntax error, or one serde could not place: toml's own message
        // shows the line.
        None => format!("{}{hint}", error.to_string().trim_end()),
    }
}

/// The dotted path (`steps[1].after`) of the innermost key or value whose
/// span holds `span`: toml's errors carry a span but no key.
fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    let document = DeTable::parse(text).ok()?;
    let mut found = None;
    search_table(document.get_ref(), span, "", &mut found);
    found
}

fn search_table(
    table: &DeTable<'_>,
    span: &Range<usize>,
    prefix: &str,
    found: &mut Option<String>,
) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if holds(&key.span(), span) {
            *found = Some(path.clone());
        }
        search_value(value, span, &path, found);
    }
}

fn search_value(
    value: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
    path: &str,
    found: &mut Option<String>,
) {
    // A `[table]`'s span is only its header line (an inline table's is all
    // of it): either way its keys are searched below, and the deepest wins.
    if holds(&value.span(), span) {
        *found = Some(path.to_string());
    }
    match value.get_ref() {
        DeValue::Table(table) => search_table(table, span, path, found),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                search_value(item, span, &format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

fn holds(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    !outer.is_empty() && outer.start <= inner.start && inner.end <= outer.end
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown
/// variant"): the closest known word, when one is close enough to be a
/// typo.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|start| message.split(start).nth(1))?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected")?.1;
    let best = nearest(unknown, expected.split('`').skip(1).step_by(2))?;
    Some(format!("\ndid you mean `{best}`?"))
}

/// The word of `known` nearest to `unknown`, when it is close enough to be
/// a typo of it (Jaro-Winkler similarity of 0.8 or more).
pub(crate) fn nearest<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|known| (strsim::jaro_winkler(unknown, known), known))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|best| best.0 >= 0.8)
        .map(|best| best.1)
}
