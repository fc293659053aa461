//! The HTML side of a mail: which templates are escaped and how, the
//! preheader block, and the text part derived from the HTML.

use minijinja::AutoEscape;

/// The escaping for a template by its name: HTML for `.html` and
/// `.preheader`, none for the subject and text.
pub(super) fn escape_for(name: &str) -> AutoEscape {
    // Names are `<stem>[.<locale>].<part>` as the renderer spells them, so
    // the part is exactly what follows the last dot.
    match name.rsplit_once('.') {
        Some((_, "html" | "preheader")) => AutoEscape::Html,
        _ => AutoEscape::None,
    }
}

/// minijinja's own HTML escaping also writes `/` as `&#x2f;`: harmless,
/// but every URL in a mail would carry it. Only the five characters that
/// can end text or a quoted value are escaped here.
pub(super) fn html_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> std::result::Result<(), minijinja::Error> {
    let (AutoEscape::Html, Some(text)) = (state.auto_escape(), value.as_str()) else {
        return minijinja::escape_formatter(out, state, value);
    };
    // A value longer than a part may be cannot fit: the output refuses it
    // whole (see `Bounded`), before 100 MB are scanned here.
    if value.is_safe() || text.len() > super::MAX_PART_BYTES {
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

/// The plain-text part for a set without `.txt`: the HTML as text, links
/// as numbered footnotes.
pub fn html_to_text(html: &str) -> String {
    html2text::config::plain()
        .string_from_read(html.as_bytes(), 78)
        .unwrap_or_default()
}

/// Puts the (already escaped) preheader as a hidden block first in the
/// body, padded so that inboxes do not pull body text into the preview.
/// No tiny `font-size` in its style: `SpamAssassin` scores that as
/// invisible text (`FONT_INVIS_MSGID`); `display:none` alone is not held
/// against it.
pub(super) fn with_preheader(html: String, preheader: &str) -> String {
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
