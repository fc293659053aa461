//! Template errors as an operator reads them: what failed, the line as
//! written, and the key that was probably meant —
//! "`cart.itmes` is undefined (line 50: `{% for item in cart.itmes %}`);
//! did you mean `items`?".

use std::fmt::Write as _;
use std::ops::Range;

use minijinja::Environment;
use minijinja::value::{Value, ValueKind};

use super::views;

/// Source lines longer than this are shown around the failing spot.
const MAX_EXCERPT_CHARS: usize = 100;

/// What a template error says: minijinja's detail (in debug mode it names
/// the undefined expression), the line and its text from `source`, and for
/// an undefined name the nearest key the failing view has. `context`, the
/// mail's context in the environment, is where that view is looked up;
/// without it (a syntax error at load) there is no suggestion.
pub(super) fn describe(
    error: &minijinja::Error,
    source: Option<&str>,
    context: Option<(&Environment<'static>, &Value)>,
) -> String {
    let mut message = match error.detail() {
        // minijinja's own sentence: "`cart.itmes` is undefined".
        Some(detail) if detail.starts_with('`') => detail.to_string(),
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    if let Some(line) = error.line() {
        match source.and_then(|source| excerpt(source, line, error.range())) {
            Some(text) => {
                let _ = write!(message, " (line {line}: `{text}`)");
            }
            None => {
                let _ = write!(message, " (line {line})");
            }
        }
    }
    if let Some(near) = error
        .detail()
        .and_then(undefined_expression)
        .and_then(|expression| suggestion(expression, context))
    {
        let _ = write!(message, "; did you mean `{near}`?");
    }
    message
}

/// The expression minijinja names as undefined: "`x.y` is undefined",
/// alone or inside another message.
fn undefined_expression(detail: &str) -> Option<&str> {
    let mut pieces = detail.split('`');
    pieces.next()?;
    while let (Some(expression), Some(after)) = (pieces.next(), pieces.next()) {
        if after.starts_with(" is undefined") {
            return Some(expression);
        }
    }
    None
}

/// The key nearest to the undefined one, close enough to be a typo: among
/// the keys of its parent when that can be looked up in the context (the
/// top-level names for a bare name), else among every key of every view
/// (a loop variable's parent is gone once the template stopped).
fn suggestion(
    expression: &str,
    context: Option<(&Environment<'static>, &Value)>,
) -> Option<String> {
    let (env, context) = context?;
    if expression.ends_with(']') {
        // `items[5]`: an index, no name to correct.
        return None;
    }
    let (parent, name) = match expression.rsplit_once('.') {
        Some((parent, name)) => (Some(parent), name),
        None => (None, expression),
    };
    let parent = match parent {
        None => Some(context.clone()),
        Some(parent) => env
            .compile_expression_owned(parent.to_string())
            .and_then(|compiled| compiled.eval(context))
            .ok()
            .filter(|value| value.kind() == ValueKind::Map),
    };
    let keys: Vec<String> = match parent {
        Some(value) => value
            .try_iter()
            .map(|keys| {
                keys.filter_map(|key| key.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        None => views::every_key().map(str::to_string).collect(),
    };
    crate::config::nearest(name, keys.iter().map(String::as_str)).map(str::to_string)
}

/// Line `line` (1-based) of `source`, trimmed; a long one cut around where
/// `range` (byte offsets in `source`) starts, if on that line.
fn excerpt(source: &str, line: usize, range: Option<Range<usize>>) -> Option<String> {
    let start = source
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>();
    let text = source.get(start..)?.lines().next()?;
    let trimmed = text.trim();
    if trimmed.chars().count() <= MAX_EXCERPT_CHARS {
        return Some(trimmed.to_string());
    }
    // The characters before the failing spot on this line, else the start.
    let focus = range
        .filter(|range| range.start >= start && range.start <= start + text.len())
        .and_then(|range| text.get(..range.start - start))
        .map_or(0, |before| before.chars().count());
    let first = focus.saturating_sub(MAX_EXCERPT_CHARS / 3);
    let cut: String = text.chars().skip(first).take(MAX_EXCERPT_CHARS).collect();
    let lead = if first > 0 { "…" } else { "" };
    let tail = if first + MAX_EXCERPT_CHARS < text.chars().count() {
        "…"
    } else {
        ""
    };
    Some(format!("{lead}{}{tail}", cut.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_undefined_expression_is_found_alone_or_inside_another_message() {
        assert_eq!(
            undefined_expression("`cart.itmes` is undefined"),
            Some("cart.itmes")
        );
        assert_eq!(
            undefined_expression(
                "cannot calculate length of value of type undefined (`cart.itmes` is undefined)"
            ),
            Some("cart.itmes")
        );
        assert_eq!(undefined_expression("filter `x` is unknown"), None);
    }

    #[test]
    fn a_long_line_is_cut_around_the_failing_spot() {
        let padding = "x".repeat(300);
        let source = format!("first\n{padding} {{{{ cart.itmes }}}} {padding}\n");
        let at = source.find("cart.itmes").unwrap();
        let text = excerpt(&source, 2, Some(at..at + 10)).unwrap();
        assert!(text.contains("cart.itmes"), "{text}");
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert_eq!(excerpt(&source, 1, None).unwrap(), "first");
        assert_eq!(excerpt("  {{ a }}  ", 1, None).unwrap(), "{{ a }}");
    }
}
