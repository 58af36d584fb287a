//! Text from outside (a registry, an artifact, a guest) made safe to show on a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` may change what a terminal shows beyond printing itself: C0 controls (ESC
/// starts the sequences that retitle, clear or move), DEL, C1 controls, the bidi marks,
/// overrides and isolates that reorder a line, and the Unicode line and paragraph
/// separators.
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{061c}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `text` with every control character written as a Rust escape (`\u{1b}`), so it can
/// neither drive the terminal nor, unless `keep_newlines`, begin a line that looks like
/// ours. Tabs stay; so do newlines with `keep_newlines` (a multi-line report of ours).
/// Borrows when there is nothing to escape. `--json` output needs none of this: JSON
/// escapes control characters itself.
pub fn escape_controls(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let needs = |c: char| is_control(c) && c != '\t' && !(keep_newlines && c == '\n');
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn controls_are_escaped_and_plain_text_borrowed() {
        let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\r\nvalidated OK\u{9b}\u{202e}\u{2028}";
        assert_eq!(
            escape_controls(hostile, false),
            "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{d}\\u{a}validated OK\\u{9b}\\u{202e}\\u{2028}"
        );
        assert_eq!(escape_controls("a\nb\u{1b}", true), "a\nb\\u{1b}");
        assert!(matches!(
            escape_controls("plain\ttext é", false),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
