//! What a stored field may hold. Ids (cart, order, SKU) must be printable:
//! they go into signed link tokens, file names and headers, where a control
//! character (a newline, a tab) breaks them, so a row with one is rejected.
//! Names (first name, product name, category) are shown to people, and a
//! tab or line break in them is what a sloppy export does: they are kept
//! with each run of control characters (and the white space around it)
//! replaced by one space.

/// The largest field recart stores, in bytes: a longer one is a row error.
/// Far above any real id, name or URL; it keeps a malformed export (an
/// unbalanced quote swallowing the rest of the file into one field) from
/// being stored as a value.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// The first control character (Unicode category Cc: C0, DEL, C1) of
/// `text`, if any.
pub fn control_character(text: &str) -> Option<char> {
    // Cheap for the usual ASCII id: C1 controls are the only ones outside
    // ASCII, and their UTF-8 encoding starts with 0xC2.
    if text
        .bytes()
        .all(|byte| byte >= 0x20 && byte != 0x7F && byte != 0xC2)
    {
        return None;
    }
    text.chars().find(|c| c.is_control())
}

/// `text` with each run of control characters, and the white space around
/// it, replaced by one space.
pub fn printable(text: &str) -> String {
    if control_character(text).is_none() {
        return text.to_string();
    }
    let mut clean = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_control() {
            clean.truncate(clean.trim_end().len());
            while chars
                .next_if(|c| c.is_control() || c.is_whitespace())
                .is_some()
            {}
            clean.push(' ');
        } else {
            clean.push(c);
        }
    }
    clean.trim().to_string()
}

/// A control character as a message names it: `'\n' (U+000A)`.
pub fn describe(c: char) -> String {
    format!("{c:?} (U+{:04X})", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_in_and_beyond_ascii() {
        assert_eq!(control_character("C-1001"), None);
        assert_eq!(control_character("Größe 42 – rot"), None);
        assert_eq!(control_character("C-10\n01"), Some('\n'));
        assert_eq!(control_character("C\t1"), Some('\t'));
        assert_eq!(control_character("C\u{7f}1"), Some('\u{7f}'));
        assert_eq!(control_character("C\u{85}1"), Some('\u{85}'));
        assert_eq!(control_character("C\0"), Some('\0'));
        assert_eq!(describe('\n'), "'\\n' (U+000A)");
    }

    #[test]
    fn names_keep_their_words_with_one_space_for_each_run_of_controls() {
        assert_eq!(printable("Merino Socks"), "Merino Socks");
        assert_eq!(printable("Merino\tSocks"), "Merino Socks");
        assert_eq!(printable("Merino \r\n  Socks\u{7}"), "Merino Socks");
        assert_eq!(printable("\u{1b}[31mRed\u{1b}[0m Mug"), "[31mRed [0m Mug");
        assert_eq!(printable("Tee\u{85}shirt"), "Tee shirt");
        assert_eq!(printable("\u{0}"), "");
    }
}
