//! "The lines that say what failed": of a failed step's output, the few lines a person
//! needs to fix it, not the last fifty lines of a stack trace. A VitePress failure gives
//! `[vite:vue] [plugin vite:vue] docs/install.md (7:1): Element is missing end tag.`, not
//! pnpm's closing `ELIFECYCLE Command failed with exit code 1.`
//!
//! Each line is judged on its own: noise (stack frames, pnpm's and npm's epilogue, script
//! echo, progress) is dropped; the others are scored by the markers build tools put on
//! errors (an error code, `file (line:col): message`, `[vite:...]`, `SyntaxError`, `ERROR`,
//! `file:line:col`, words like "failed"). The strongest lines are kept in log order, one
//! of each message (VitePress prints the same error three times, in three wrappers), at
//! most `MAX_LINES` of at most `MAX_CHARS`. When nothing is marked, the last lines.
//! The matchers are plain string code: the patterns are few and fixed.

/// At most this many lines.
pub const MAX_LINES: usize = 5;
/// Each line at most this many characters (cut with `…`).
pub const MAX_CHARS: usize = 300;

/// The failure lines of a failed step's output (already stripped of terminal codes and
/// masked). `checkout`: the hook's working tree, whose paths are made relative (a chat
/// message shows no server path).
pub fn pick(output: &[&str], checkout: &str) -> Vec<String> {
    let mut candidates: Vec<(usize, u8, String)> = Vec::new();
    for (i, raw) in output.iter().enumerate() {
        if raw.trim().is_empty() || noise(raw) {
            continue;
        }
        let line = tidy(raw, checkout);
        let s = score(&line);
        candidates.push((i, s, line));
    }
    let best = candidates.iter().map(|c| c.1).max().unwrap_or(0);
    let picked: Vec<String> = if best == 0 {
        let from = candidates.len().saturating_sub(MAX_LINES);
        candidates.drain(from..).map(|c| c.2).collect()
    } else {
        let mut marked: Vec<&(usize, u8, String)> = candidates.iter().filter(|c| c.1 > 0).collect();
        marked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut keep: Vec<(usize, &str)> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (i, s, line) in marked {
            let key = dedupe_key(line);
            // Weaker lines only to fill up to two.
            if seen.contains(&key) || (*s + 2 < best && keep.len() >= 2) {
                continue;
            }
            seen.push(key);
            keep.push((*i, line));
            if keep.len() == MAX_LINES {
                break;
            }
        }
        keep.sort();
        keep.into_iter().map(|(_, l)| l.to_string()).collect()
    };
    picked.into_iter().map(|l| cut(&l, MAX_CHARS)).collect()
}

/// `s` cut to `max` characters, the cut marked with `…`.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Lines never worth a message. Judged on the line as printed: stack frames are known by
/// their indent.
fn noise(raw: &str) -> bool {
    let t = raw.trim_start();
    let indented = t.len() < raw.len();
    (indented && (t.starts_with("at ") || t.starts_with("at\t")))
        || raw.contains("ELIFECYCLE")
        || npm_epilogue(raw)
        || raw.starts_with("> ")
        || raw.starts_with("Progress: resolved")
        || t.trim_start_matches(['-', 'x', '✖', '✓', '✔'])
            .trim_start()
            .starts_with("building client + server bundles")
        || (!t.is_empty() && t.trim_end().chars().all(|c| c == '^'))
        || first_word(t).is_some_and(|w| w == "Done" || w == "Packages:")
        || (!t.is_empty() && t.trim_end().chars().all(|c| c == '+'))
}

/// npm's closing lines: `npm ERR! code 1`, `npm error A complete log of this run...`.
fn npm_epilogue(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix("npm ERR! ").or_else(|| raw.strip_prefix("npm error ")) else {
        return false;
    };
    rest.trim().is_empty()
        || ["A complete log", "code", "path", "errno", "command failed"]
            .iter()
            .any(|p| rest.starts_with(p))
}

fn first_word(s: &str) -> Option<&str> {
    s.split_whitespace().next()
}

/// How surely a line says what failed: 0 (not at all) to 5.
fn score(line: &str) -> u8 {
    if error_code(line) || file_position_message(line) {
        5
    } else if vite_wrapper(line) || js_error(line) || broken_link(line) {
        4
    } else if error_prefix(line) || file_line_col(line) {
        3
    } else if failure_word(line) {
        2
    } else {
        0
    }
}

/// pnpm's `ERR_PNPM_FETCH_404`, npm's `npm ERR! code E404`.
fn error_code(line: &str) -> bool {
    if let Some(i) = line.find("ERR_PNPM_") {
        let before_ok = i == 0 || !is_word(line[..i].chars().next_back().unwrap_or(' '));
        let name = &line[i + "ERR_PNPM_".len()..];
        return before_ok && name.starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit());
    }
    line.contains("ERR!")
        && line.split_whitespace().collect::<Vec<_>>().windows(2).any(|w| {
            w[0] == "code"
                && w[1].starts_with('E')
                && w[1].len() > 1
                && w[1][1..].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
}

/// Vite's and Vue's `docs/install.md (7:1): message`.
fn file_position_message(line: &str) -> bool {
    const EXTS: [&str; 14] = [
        "md", "vue", "mdx", "js", "jsx", "ts", "tsx", "css", "scss", "html", "json", "yml", "yaml", "toml",
    ];
    let mut rest = line;
    while let Some(i) = rest.find(" (") {
        let file = rest[..i].rsplit(char::is_whitespace).next().unwrap_or("");
        let after = &rest[i + 2..];
        let has_ext = file
            .rsplit_once('.')
            .is_some_and(|(stem, ext)| !stem.is_empty() && EXTS.contains(&ext));
        if has_ext {
            if let Some((pos, tail)) = after.split_once("): ") {
                if let Some((l, c)) = pos.split_once(':') {
                    if digits(l) && digits(c) && !tail.is_empty() {
                        return true;
                    }
                }
            }
        }
        rest = after;
    }
    false
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `[vite:vue]`, `[plugin vite:vue]`, `[vitepress]`, `[vuepress]`.
fn vite_wrapper(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    l.contains("[vite]")
        || l.contains("[vite:")
        || l.contains("[plugin ")
        || l.contains("[vitepress]")
        || l.contains("[vuepress]")
}

/// `SyntaxError`, `TypeError`, `ReferenceError`, `RangeError`, `Error: `.
fn js_error(line: &str) -> bool {
    ["SyntaxError", "TypeError", "ReferenceError", "RangeError"]
        .iter()
        .any(|e| has_word(line, e, false))
        || line
            .match_indices("Error: ")
            .any(|(i, _)| i == 0 || !is_word(line[..i].chars().next_back().unwrap_or(' ')))
}

/// Docusaurus' broken links report.
fn broken_link(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    l.contains("docusaurus found broken links")
        || l.contains("docusaurus found broken anchors")
        || l.contains("broken link on source page")
        || l.starts_with("- broken link")
}

/// `error: ...`, `[ERROR] ...`, `ERROR ...` at the start of a line.
fn error_prefix(line: &str) -> bool {
    let t = line.trim_start();
    let l = t.to_ascii_lowercase();
    for p in ["[error]", "error"] {
        if let Some(rest) = l.strip_prefix(p) {
            return rest.starts_with([':', ' ', '\t']) || (p == "[error]" && rest.is_empty());
        }
    }
    false
}

/// `path/file.ext:12:3`.
fn file_line_col(line: &str) -> bool {
    line.split_whitespace().any(|token| {
        let token = token.trim_end_matches([')', ',', ';', '.']);
        let mut parts = token.rsplitn(3, ':');
        let (Some(col), Some(row), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        digits(col) && digits(row) && !file.is_empty() && !file.ends_with(':')
    })
}

/// Words that say something went wrong, as words: not inside a flag or a hyphenated name.
fn failure_word(line: &str) -> bool {
    [
        "error",
        "failed",
        "cannot",
        "can't",
        "not found",
        "missing",
        "denied",
        "timed out",
        "timeout",
    ]
    .iter()
    .any(|w| {
        // Part of a flag or a hyphenated name (`--error-on-no-transfer`) says nothing failed.
        let hay = line.to_lowercase();
        hay.match_indices(w).any(|(i, m)| {
            let free = |c: Option<char>| c.is_none_or(|c| !is_word(c) && c != '-');
            free(hay[..i].chars().next_back()) && free(hay[i + m.len()..].chars().next())
        })
    })
}

/// Whether `word` is in `line` with no letter, digit or `_` right before or after it.
fn has_word(line: &str, word: &str, ignore_case: bool) -> bool {
    let (hay, needle) = if ignore_case {
        (line.to_lowercase(), word.to_lowercase())
    } else {
        (line.to_string(), word.to_string())
    };
    hay.match_indices(&needle).any(|(i, m)| {
        let before = hay[..i].chars().next_back().is_none_or(|c| !is_word(c));
        let after = hay[i + m.len()..].chars().next().is_none_or(|c| !is_word(c));
        before && after
    })
}

/// A line's message without the wrappers that repeat it (`[vite:vue]`, `[plugin ...]`,
/// `SyntaxError:`, `error`, `file:`) and without leading folders, lowercased: two lines
/// with one key say the same thing.
fn dedupe_key(line: &str) -> String {
    let mut rest = line.trim();
    loop {
        let before = rest;
        if rest.starts_with('[') {
            if let Some(end) = rest.find(']') {
                let inner = rest[1..end].to_ascii_lowercase();
                if inner.starts_with("vite") || inner.starts_with("plugin ") {
                    rest = rest[end + 1..].trim_start();
                }
            }
        }
        for w in ["SyntaxError:", "TypeError:", "Error:", "error:", "error", "file:"] {
            // `get`: the line is anyone's text, and w.len() may fall inside a character.
            if rest.get(..w.len()).is_some_and(|head| head.eq_ignore_ascii_case(w)) {
                rest = rest[w.len()..].trim_start();
            }
        }
        if rest == before {
            break;
        }
    }
    let key = rest.to_lowercase();
    // "docs/install.md" and "/srv/x/docs/install.md" are one file.
    match key.split_once(char::is_whitespace) {
        Some((first, tail)) => format!("{} {tail}", first.rsplit('/').next().unwrap_or(first)),
        None => key.rsplit('/').next().unwrap_or(&key).to_string(),
    }
}

/// One space for any run of spaces (pnpm frames its codes with U+2009 THIN SPACE), trimmed,
/// and the checkout's path made relative.
fn tidy(raw: &str, checkout: &str) -> String {
    let spaced: Vec<&str> = raw
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    let line = spaced.join(" ");
    let checkout = checkout.trim_end_matches('/');
    if checkout.len() > 1 {
        line.replace(&format!("{checkout}/"), "").replace(checkout, ".")
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::logtext::strip_terminal;

    fn lines_of(log: &str, checkout: &str) -> Vec<String> {
        let text = strip_terminal(log);
        let lines: Vec<&str> = text.lines().collect();
        pick(&lines, checkout)
    }

    #[test]
    fn vitepress_says_which_file_and_line() {
        for log in [
            include_str!("../../tests/fixtures/failures/vitepress.log"),
            include_str!("../../tests/fixtures/failures/vitepress-color.log"),
        ] {
            let got = lines_of(log, "/tmp/vp");
            assert_eq!(
                got[0], "[vite:vue] [plugin vite:vue] docs/install.md (7:1): Element is missing end tag.",
                "{got:?}"
            );
            assert!(got
                .iter()
                .any(|l| l.contains("install.md (7:1): Element is missing end tag.")));
            assert!(
                !got.iter()
                    .any(|l| l.contains("ELIFECYCLE") || l.starts_with("at ") || l.contains("/tmp/vp")),
                "{got:?}"
            );
            assert!(got.len() <= 2, "one message, not its three wrappers: {got:?}");
        }
    }

    #[test]
    fn other_tools() {
        let got = lines_of(include_str!("../../tests/fixtures/failures/pnpm-404.log"), "/tmp/pi1");
        assert!(got[0].contains("ERR_PNPM_FETCH_404"), "{got:?}");
        let got = lines_of(include_str!("../../tests/fixtures/failures/pnpm-nomatch.log"), "/x");
        assert!(got[0].contains("ERR_PNPM_NO_MATCHING_VERSION"), "{got:?}");
        let got = lines_of(include_str!("../../tests/fixtures/failures/vuepress.log"), "/tmp/vpr");
        assert!(got.iter().any(|l| l.contains("Element is missing end tag")), "{got:?}");
        let got = lines_of(include_str!("../../tests/fixtures/failures/docusaurus.log"), "/tmp/dcs");
        assert!(got.iter().any(|l| l.to_lowercase().contains("broken link")), "{got:?}");
        assert!(!got.iter().any(|l| l.contains("node_modules")), "{got:?}");
    }

    #[test]
    fn unmarked_output_gives_its_last_lines_and_lines_are_capped() {
        let out: Vec<String> = (1..=9).map(|i| format!("plain {i}")).collect();
        let refs: Vec<&str> = out.iter().map(String::as_str).collect();
        assert_eq!(
            pick(&refs, "/x"),
            ["plain 5", "plain 6", "plain 7", "plain 8", "plain 9"]
        );
        let long = format!("error: {}", "x".repeat(400));
        let got = pick(&[long.as_str()], "/x");
        assert_eq!(got[0].chars().count(), MAX_CHARS);
        assert!(got[0].ends_with('…'));
        assert!(pick(&[], "/x").is_empty());
    }

    #[test]
    fn markers() {
        assert!(file_position_message("docs/a.md (7:1): Element is missing end tag."));
        assert!(!file_position_message("see (7:1): x"));
        assert!(file_line_col("file: docs/install.md:7:1"));
        assert!(!file_line_col("at 10:30 today"));
        assert!(error_prefix("[ERROR] Error: x") && error_prefix("error Command failed") && !error_prefix("errors: 0"));
        assert!(has_word("Build FAILED.", "failed", true) && !has_word("unfailedness", "failed", true));
        // found by the fuzzer: a prefix's length inside a character
        assert_eq!(dedupe_key("[plu\u{fffd}n x"), "[plu\u{fffd}n x");
        assert_eq!(dedupe_key("erré"), "erré");
        assert_eq!(
            dedupe_key("[vite:vue] [plugin vite:vue] docs/install.md (7:1): x"),
            dedupe_key("SyntaxError: [plugin vite:vue] /srv/docs/install.md (7:1): x")
        );
    }
}
