//! Small text helpers that several layers need: making a string safe to show, percent and
//! hex decoding, shell quoting (the one quoting for `sh`; rsync's `-e` has its own syntax,
//! see `publish::hosts::scripts`).
//!
//! They sit at the bottom of the module graph and use nothing of ours, so that `cgi`,
//! `config` and `verify` can all use them without importing each other.

/// A string safe to show in a message: control characters escaped, length capped.
///
/// Only control characters and invisible formatting ones are escaped (`\n`, `\u{1b}`,
/// `\u{202e}`): other text, `é` or the `�` of an invalid byte, is shown as it is, and a
/// backslash stays one backslash. So applying it twice changes nothing, and a message that
/// goes through it and then through JSON is escaped once, by JSON.
pub fn printable(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars().take(max) {
        // Control characters, and the invisible ones that reorder or hide text (bidi
        // overrides, zero-width spaces), which could make a log line read as another.
        let invisible =
            matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if c.is_control() || invisible {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// `printable` for text of many lines (a build log streamed to a terminal, a message): each
/// line escaped, uncapped, the newlines kept.
pub fn printable_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&printable(line, usize::MAX));
    }
    out
}

/// Decodes lowercase or uppercase hex; `None` on any other character or an odd length.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Percent-decoding for URLs and form bodies; `plus_is_space` for form encoding.
pub fn percent_decode(s: &[u8], plus_is_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let v = hex_decode(std::str::from_utf8(hex).ok()?)?;
                out.push(v[0]);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Whether a word means itself to a POSIX shell (and to rsync's `-e` splitting) unquoted:
/// letters, digits and `-_./:=@%+,` only. None of those is special in an argument.
pub fn plain_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
}

/// Quotes one word for a POSIX shell: as it is when plain, else in single quotes, a quote
/// inside as `'\''`. The one shell quoting of the program: for command lines a person can
/// paste back into a shell (the build log, `sign`), and for the scripts a web host's `sh`
/// runs. A plain `a=b` stays bare, so a quoted word must not be the first word of a command,
/// where that is an assignment; none of our scripts puts one there.
pub fn shell_quote(s: &str) -> String {
    if plain_word(s) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_and_caps() {
        assert_eq!(printable("a\nb", 10), "a\\nb");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("/\u{fffd}é\\", 10), "/\u{fffd}é\\");
        assert_eq!(printable(&printable("a\tb\u{1b}", 10), 20), "a\\tb\\u{1b}");
        assert_eq!(printable("main\u{202e}gnp.exe", 20), "main\\u{202e}gnp.exe");
        assert_eq!(printable_lines("a\u{1b}[2J\nb\r\n"), "a\\u{1b}[2J\nb\\r\n");
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex_decode("00ffAb").unwrap(), vec![0, 255, 171]);
        assert!(hex_decode("0").is_none());
        assert!(hex_decode("zz").is_none());
        assert_eq!(hex_encode(&[0, 255, 171]), "00ffab");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a%2Bb%3D", false).unwrap(), b"a+b=");
        assert_eq!(percent_decode(b"a+b", true).unwrap(), b"a b");
        assert_eq!(percent_decode(b"a+b", false).unwrap(), b"a+b");
        assert!(percent_decode(b"%2", false).is_none());
        assert!(percent_decode(b"%zz", false).is_none());
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("pnpm"), "pnpm");
        assert_eq!(shell_quote("docs:build"), "docs:build");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("/var/www/it's here"), r"'/var/www/it'\''s here'");
    }
}
