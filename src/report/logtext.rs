//! A build log made fit for other eyes: terminal codes removed (a log is written by
//! programs that colour their output even without a terminal: VitePress with `CI=true`),
//! secrets masked, and the part that belongs to the failed step found. The published
//! `builds/ID.log.txt`, the failure lines of a message and the page all go through here.

/// What a masked value becomes.
pub const MASK: &str = "***";

/// Removes terminal escape sequences and control characters, and applies carriage-return
/// overwrites (a progress bar shows as its last state). Tabs and newlines stay.
///
/// Sequences: CSI (`ESC [` or U+009B, parameters, intermediates, a final byte), OSC
/// (`ESC ]` or U+009D up to BEL or ST: titles, OSC 8 hyperlinks), DCS/SOS/PM/APC strings
/// (`ESC P|X|^|_` up to ST) and the two-byte escapes (`ESC (B`, `ESC 7`).
pub fn strip_terminal(text: &str) -> String {
    let without = strip_sequences(text);
    let mut out = String::with_capacity(without.len());
    for (i, line) in without.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // A trailing "\r" is a CRLF line end, not an overwrite.
        let line = line.strip_suffix('\r').unwrap_or(line);
        let shown = line.rsplit('\r').next().unwrap_or(line);
        out.extend(shown.chars().filter(|c| *c == '\t' || !c.is_control()));
    }
    out
}

/// Removes the colour and style sequences (SGR: `ESC [` or U+009B, parameters, `m`) and
/// nothing else: for text that is then escaped for a terminal (`status --follow`), where a
/// colour shown as `\u{1b}[32m` is noise, while any other sequence is kept, to be shown
/// escaped.
pub fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Piece::Char(c) => out.push(c),
            Piece::Sequence { sgr: true, .. } => {}
            Piece::Sequence { raw, .. } => out.push_str(raw),
        }
    }
    out
}

fn strip_sequences(text: &str) -> String {
    pieces(text)
        .filter_map(|p| match p {
            Piece::Char(c) => Some(c),
            Piece::Sequence { .. } => None,
        })
        .collect()
}

/// A character of text, or one whole terminal sequence.
enum Piece<'a> {
    Char(char),
    Sequence {
        raw: &'a str,
        /// A CSI that sets colours or style (final byte `m`, no intermediates).
        sgr: bool,
    },
}

/// `text` cut into characters and terminal sequences, as `strip_terminal` describes them.
fn pieces(text: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, c) = chars.next()?;
        let kind = match c {
            '\u{1b}' => chars
                .next_if(|(_, n)| "[]PX^_".contains(*n))
                .map(|(_, n)| n)
                .or(Some('\u{1b}')),
            '\u{9b}' => Some('['),
            '\u{9d}' => Some(']'),
            _ => None,
        };
        let mut sgr = false;
        match kind {
            None => return Some(Piece::Char(c)),
            Some('[') => {
                while chars.next_if(|(_, n)| ('\u{30}'..='\u{3f}').contains(n)).is_some() {}
                let mut intermediates = false;
                while chars.next_if(|(_, n)| ('\u{20}'..='\u{2f}').contains(n)).is_some() {
                    intermediates = true;
                }
                let last = chars.next_if(|(_, n)| ('\u{40}'..='\u{7e}').contains(n));
                sgr = !intermediates && last.is_some_and(|(_, n)| n == 'm');
            }
            Some(']') => {
                // Up to BEL or ST; an ESC that is not ST starts the next sequence.
                while let Some((_, n)) = chars.next_if(|(_, n)| *n != '\u{1b}') {
                    if n == '\u{7}' || n == '\u{9c}' {
                        break;
                    }
                }
                if chars.peek().is_some_and(|(_, n)| *n == '\u{1b}') {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(|(_, n)| *n == '\\') {
                        chars.next();
                        chars.next();
                    }
                }
            }
            Some('P' | 'X' | '^' | '_') => {
                while chars.next_if(|(_, n)| *n != '\u{1b}' && *n != '\u{9c}').is_some() {}
                if chars.next_if(|(_, n)| *n == '\u{9c}').is_none() {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(|(_, n)| *n == '\\') {
                        chars.next();
                        chars.next();
                    }
                }
            }
            Some(_) => {
                // ESC, intermediates, a final byte: ESC ( B, ESC 7, ESC =.
                while chars.next_if(|(_, n)| ('\u{20}'..='\u{2f}').contains(n)).is_some() {}
                chars.next_if(|(_, n)| ('\u{30}'..='\u{7e}').contains(n));
            }
        }
        let end = chars.peek().map_or(text.len(), |(i, _)| *i);
        Some(Piece::Sequence {
            raw: &text[start..end],
            sgr,
        })
    })
}

/// Masks secrets in text meant for others: every value it was given (the hook's secret,
/// the report token, the robots' URLs and secrets, the `env` values whose names say they
/// are secret), and what looks like a credential whoever wrote it: a URL's user and
/// password, the value of `token=`, `access_token=`, `key=`, `sign=`, `secret=`,
/// `password=`, and what follows `Authorization:` or `PRIVATE-TOKEN:`.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    values: Vec<String>,
}

/// Secret values shorter than this are not masked: masking "abc" everywhere would make a
/// log unreadable, and a secret that short protects nothing anyway.
const SHORTEST: usize = 4;

/// Query parameter names whose values are credentials.
const CREDENTIAL_PARAMS: [&str; 8] = [
    "token",
    "access_token",
    "private_token",
    "key",
    "sign",
    "secret",
    "password",
    "signature",
];

impl Masker {
    /// Adds a secret value (and each of its lines, for a multi-line file).
    pub fn add(&mut self, value: &str) {
        for v in std::iter::once(value.trim()).chain(value.lines().map(str::trim)) {
            if v.chars().count() >= SHORTEST && !self.values.iter().any(|x| x == v) {
                self.values.push(v.to_string());
            }
        }
        // Longest first: a secret that contains another is masked whole.
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    /// Whether an `env` variable's name says its value is a secret.
    pub fn secret_name(name: &str) -> bool {
        let n = name.to_ascii_uppercase();
        [
            "TOKEN",
            "SECRET",
            "PASSWORD",
            "PASSWD",
            "KEY",
            "AUTH",
            "CREDENTIAL",
            "COOKIE",
        ]
        .iter()
        .any(|w| n.contains(w))
    }

    /// `text` with every secret replaced by `***`, line by line.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        let masked: Vec<String> = out.split('\n').map(mask_patterns).collect();
        masked.join("\n")
    }
}

/// The credential patterns of one line.
fn mask_patterns(line: &str) -> String {
    let mut line = mask_userinfo(line);
    for header in ["authorization:", "private-token:", "proxy-authorization:"] {
        if let Some(i) = find_ascii_ci(&line, header) {
            let start = i + header.len();
            line = format!("{} {MASK}", &line[..start]);
        }
    }
    mask_params(&line)
}

/// `https://user:pass@host` -> `https://***@host`.
fn mask_userinfo(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `name=value` for the credential names, in a query or on a command line.
fn mask_params(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let boundary =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b'-');
        if boundary {
            if let Some(name) = CREDENTIAL_PARAMS.iter().find(|n| {
                let n = n.as_bytes();
                bytes.len() > i + n.len() && bytes[i..i + n.len()].eq_ignore_ascii_case(n) && bytes[i + n.len()] == b'='
            }) {
                let value_start = i + name.len() + 1;
                let value_end = line[value_start..]
                    .find(|c: char| c == '&' || c.is_whitespace() || c == '"' || c == '\'' || c == ';' || c == ',')
                    .map_or(line.len(), |e| value_start + e);
                if value_end > value_start {
                    out.push_str(&line[copied..value_start]);
                    out.push_str(MASK);
                    copied = value_end;
                }
                i = value_end.max(i + 1);
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&line[copied..]);
    out
}

/// The pipeline's line after a command, `-> exit 1 (2.0s)`: not any output that starts
/// with an arrow.
fn end_line(line: &str) -> bool {
    line.starts_with("-> ") && line.ends_with("s)")
}

fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The output of the failed step in a build log: the lines after its command line
/// (`$ COMMAND`, as the pipeline writes it) up to its end line (`-> ...`). `failed_step` is
/// the command as the build recorded it. A publish failure is the log's `publish failed`
/// part; anything else the log's last 40 lines.
pub fn section<'a>(log: &'a str, failed_step: Option<&str>) -> Vec<&'a str> {
    let lines: Vec<&str> = log.lines().collect();
    let command = failed_step.map(|s| format!("$ {s}"));
    let start = match &command {
        Some(c) => lines.iter().rposition(|l| l == c),
        None => None,
    };
    if let Some(s) = start {
        let end = lines[s + 1..]
            .iter()
            .position(|l| end_line(l))
            .map_or(lines.len(), |e| s + 1 + e);
        return lines[s + 1..end].to_vec();
    }
    if failed_step.is_some_and(|s| s.starts_with("publish")) {
        if let Some(p) = lines.iter().rposition(|l| l.starts_with("publish failed")) {
            return lines[p..].iter().take(40).copied().collect();
        }
    }
    // The build's own closing lines are not what failed.
    let end = lines
        .iter()
        .rposition(|l| l.starts_with("timing: "))
        .unwrap_or(lines.len());
    lines[end.saturating_sub(40)..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_codes_go() {
        let s = "\u{1b}[31mred\u{1b}[39m \u{1b}]8;;https://x.invalid\u{7}link\u{1b}]8;;\u{7} \u{1b}]0;title\u{1b}\\ok\u{1b}(B \u{9b}1mZ";
        assert_eq!(strip_terminal(s), "red link ok Z");
        assert_eq!(strip_terminal("10%\r50%\r100% done\r\n"), "100% done\n");
        assert_eq!(strip_terminal("a\tb\u{7}\u{0}c\u{7f}"), "a\tbc");
        assert_eq!(strip_terminal("\u{1b}Pq#0;2;0;0;0\u{1b}\\after"), "after");
        // A lone ESC at the end, an unfinished CSI: nothing is left of them.
        assert_eq!(
            strip_colours("\u{1b}[32m✓\u{1b}[0m ok \u{1b}[1;38:5:2mb\u{1b}[m \u{1b}[2J\u{1b}]0;t\u{7} \u{1b}[3"),
            "✓ ok b \u{1b}[2J\u{1b}]0;t\u{7} \u{1b}[3"
        );
        assert_eq!(strip_colours("x\u{1b}"), "x\u{1b}");
        assert_eq!(strip_terminal("x\u{1b}"), "x");
        assert_eq!(strip_terminal("x\u{1b}[3"), "x");
        let colour = include_str!("../../tests/fixtures/failures/vitepress-color.log");
        let plain = strip_terminal(colour);
        assert!(!plain.contains('\u{1b}') && plain.contains("build error:"), "{plain}");
    }

    #[test]
    fn secrets_are_masked() {
        let mut m = Masker::default();
        m.add("ghp_0123456789abcdef");
        m.add("abc");
        let text = "push https://bot:hunter2@git.example.com/x.git with ghp_0123456789abcdef\n\
                    GET /send?access_token=dt-123&timestamp=1&sign=aGVsbG8%3D abc\n\
                    curl -H 'Authorization: token zzz' -H \"PRIVATE-TOKEN: glpat-1\"\n\
                    monkey=1 key=K1 api_key=K2";
        let masked = m.mask(text);
        for gone in [
            "hunter2",
            "ghp_0123456789abcdef",
            "dt-123",
            "aGVsbG8",
            "zzz",
            "glpat-1",
            "K1",
        ] {
            assert!(!masked.contains(gone), "{gone} in {masked}");
        }
        assert!(masked.contains("https://***@git.example.com/x.git"), "{masked}");
        assert!(masked.contains("timestamp=1") && masked.contains(" abc"), "{masked}");
        assert!(masked.contains("monkey=1"), "{masked}");
        // `api_key` is not `key`: a name is matched whole.
        assert!(masked.contains("api_key=K2"), "{masked}");
        assert!(Masker::secret_name("NPM_TOKEN") && !Masker::secret_name("NODE_ENV"));
    }

    #[test]
    fn the_failed_steps_section() {
        let log = "deploy-hook build 1\n\n$ git fetch origin main\n-> exit 0 (0.1s)\n\n$ pnpm install\nok\n-> exit 0 (1.0s)\n\n$ pnpm docs:build\nline 1\n-> an arrow of its own\nline 2\n-> exit 1 (2.0s)\n\ntiming: x\nresult: failed\n";
        assert_eq!(
            section(log, Some("pnpm docs:build")),
            ["line 1", "-> an arrow of its own", "line 2"]
        );
        assert_eq!(section(log, Some("pnpm install")), ["ok"]);
        let publish = format!("{log}\npublish failed at web1: rsync: connection refused\n");
        assert_eq!(
            section(&publish, Some("publish web1")),
            ["publish failed at web1: rsync: connection refused"]
        );
        let tail = section(log, Some("never ran"));
        assert_eq!(tail.last(), Some(&""), "ends before the timing line: {tail:?}");
    }
}
