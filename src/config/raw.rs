//! What the config file says, as serde reads it: the raw TOML shapes, before any check.
//!
//! Every table denies unknown keys, and most values keep their span so that `super` can
//! name the line of a value it refuses. Turning these shapes into a checked `Config`
//! (defaults, validation, paths resolved) is `super`'s job; nothing outside `config` sees
//! them. A new key goes here first, then into `validate_hook` or `Config::parse`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::{Cmd, Step};
use crate::error::{Error, Result};

/// Reads config text into its raw shape; a syntax or type error names the line and key.
///
/// The error never quotes the line or a value from it: a config error goes to the web
/// server's error log on every delivery and to `check`'s output, and the line may be
/// `secret = ...`, a typo of it, an unterminated string or a token in `env`.
pub(super) fn parse(file: &Path, text: &str) -> Result<RawConfig> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        // The message alone ("invalid type: sequence, expected a string") does not
        // say which key; the line and the key written on it do.
        let key = line
            .and_then(|l| text.lines().nth(l - 1))
            .and_then(key_of_line)
            .map(|k| format!(" (key `{k}`)"))
            .unwrap_or_default();
        Error::Config {
            file: file.to_path_buf(),
            line,
            key: String::new(),
            message: format!("{}{key}", without_values(e.message())),
        }
    })
}

/// The key a TOML line sets (`a.b` of `a.b = 1`), or the table it opens (`[hooks.docs]`);
/// `None` when the line holds no plain key, e.g. a stray value inside an array.
fn key_of_line(line: &str) -> Option<String> {
    let line = line.trim();
    let key = if let Some(header) = line.strip_prefix('[') {
        let header = header.trim_start_matches('[');
        format!("[{}]", header.split(']').next()?.trim())
    } else {
        line.split_once('=')?.0.trim().to_string()
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.\"'[] ".contains(c);
    let inner = key.trim_matches(|c| c == '[' || c == ']');
    if inner.is_empty() || key.len() > 80 || !key.chars().all(plain) || inner.trim().contains(' ') {
        return None;
    }
    (key.starts_with('[') || nameable(&key)).then_some(key)
}

/// Whether a key written in the file may be named in an error. Every key deploy-hook
/// knows is lower-case words; a line that is a pasted secret (`Zm9vYmFy... = 1`, a hex
/// token) is not, and naming it would put the secret into the web server's error log.
fn nameable(key: &str) -> bool {
    key.split('.').all(|seg| {
        let seg = seg.trim().trim_matches(|c| c == '"' || c == '\'');
        !seg.is_empty() && seg.len() <= 32 && seg.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
    })
}

/// A TOML/serde error message without the value it quotes: `invalid type: integer
/// `98127346`, expected a string` becomes `invalid type: integer, expected a string`.
/// Several lines become one, for a log line.
fn without_values(message: &str) -> String {
    let one_line = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    // `unknown field `X`, expected one of ...`: X is whatever the line said.
    if let Some(rest) = one_line.strip_prefix("unknown field `") {
        if let Some((field, tail)) = rest.split_once('`') {
            return if nameable(field) {
                one_line
            } else {
                format!("unknown key{tail}")
            };
        }
    }
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some(rest) = one_line.strip_prefix(prefix) {
            // serde's `Unexpected` is a kind, then the value in backticks or quotes.
            let (what, tail) = match rest.find(", expected") {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let kind = what
                .split([' ', '`', '"'])
                .take_while(|w| !w.is_empty())
                .collect::<Vec<_>>();
            let kind = if prefix == "unknown variant " {
                ""
            } else {
                &kind.join(" ")
            };
            return format!("{prefix}{kind}{tail}")
                .replace(" ,", ",")
                .trim_end()
                .to_string();
        }
    }
    one_line
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) state_dir: Option<String>,
    pub(super) max_body_bytes: Option<u64>,
    pub(super) log: Option<RawLog>,
    #[serde(default)]
    pub(super) hooks: BTreeMap<String, Spanned<RawHook>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) syslog: Option<String>,
    pub(super) file: Option<String>,
    pub(super) ident: Option<String>,
    pub(super) facility: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    pub(super) provider: Spanned<String>,
    pub(super) secret: Option<String>,
    pub(super) secret_file: Option<String>,
    pub(super) gitee_mode: Option<Spanned<String>>,
    pub(super) max_age_secs: Option<u64>,
    pub(super) repo: Spanned<String>,
    pub(super) remote: Option<Spanned<String>>,
    pub(super) branch: Option<Spanned<String>>,
    pub(super) clean: Option<Spanned<Vec<String>>>,
    pub(super) steps: Option<Spanned<Vec<Step>>>,
    pub(super) env: Option<Spanned<BTreeMap<String, String>>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) step_timeout_secs: Option<Spanned<u64>>,
    pub(super) nice: Option<Spanned<i64>>,
    pub(super) mode: Option<Spanned<String>>,
    pub(super) on_busy: Option<Spanned<String>>,
    pub(super) keep_logs: Option<Spanned<u64>>,
    pub(super) log_max_bytes: Option<Spanned<u64>>,
    pub(super) on_failure: Option<Cmd>,
    pub(super) on_success: Option<Cmd>,
    pub(super) publish: Option<Spanned<RawPublish>>,
    pub(super) report: Option<Spanned<RawReport>>,
    pub(super) page: Option<Spanned<RawPage>>,
    pub(super) notify: Option<Vec<Spanned<RawNotify>>>,
    pub(super) previews: Option<Spanned<RawPreviews>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPublish {
    pub(super) from: String,
    pub(super) to: Option<String>,
    pub(super) keep: Option<u64>,
    pub(super) hosts: Option<Vec<String>>,
    pub(super) ssh: Option<Vec<String>>,
    pub(super) bucket: Option<String>,
    pub(super) rclone_config: Option<String>,
    pub(super) cache_control: Option<CacheControl>,
    pub(super) after_publish: Option<Cmd>,
}

/// `publish.cache_control`: one value for every file that is not HTML, or a table of path
/// prefix to value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CacheControl {
    All(String),
    ByPrefix(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for CacheControl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<CacheControl, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CacheControl;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Cache-Control value like \"public, max-age=300\", or a table of path prefix to value like { \"assets/\" = \"public, max-age=31536000, immutable\", \"\" = \"public, max-age=300\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<CacheControl, E> {
                Ok(CacheControl::All(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<CacheControl, A::Error> {
                BTreeMap::deserialize(de::value::MapAccessDeserializer::new(map)).map(CacheControl::ByPrefix)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[hooks.NAME.report]`: the commit status on the forge.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    pub(super) api: Option<String>,
    pub(super) repo: String,
    pub(super) token_file: String,
    pub(super) context: Option<String>,
}

/// `[hooks.NAME.page]`: the build page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPage {
    pub(super) dir: String,
    pub(super) url: String,
    pub(super) logs: Option<bool>,
}

/// One `[[hooks.NAME.notify]]`: a chat robot or a plain JSON webhook.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) kind: Spanned<String>,
    pub(super) url_file: String,
    pub(super) secret_file: Option<String>,
    pub(super) on: Option<Vec<String>>,
}

/// `[hooks.NAME.previews]`: previews of branches and pull requests.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPreviews {
    pub(super) to: Option<String>,
    pub(super) url: Option<String>,
    pub(super) branches: Option<Vec<String>>,
    pub(super) pull_requests: Option<bool>,
    pub(super) forks: Option<bool>,
    pub(super) keep: Option<u64>,
    pub(super) jobs: Option<u64>,
}

impl<'de> Deserialize<'de> for Cmd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Cmd, D::Error> {
        struct CmdVisitor;
        impl<'de> Visitor<'de> for CmdVisitor {
            type Value = Cmd;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a command: an array of strings like [\"pnpm\", \"install\"], or a string run with /bin/sh -c",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Cmd, E> {
                if v.trim().is_empty() {
                    return Err(E::custom("a command string must not be empty"));
                }
                Ok(Cmd::Shell(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Cmd, A::Error> {
                let mut argv = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    argv.push(word);
                }
                match argv.first() {
                    None => Err(de::Error::custom("a command array must name a program")),
                    Some(p) if p.is_empty() => Err(de::Error::custom("a command's program must not be empty")),
                    Some(_) if argv.iter().any(|w| w.contains('\0')) => {
                        Err(de::Error::custom("a command must not contain NUL bytes"))
                    }
                    Some(_) => Ok(Cmd::Argv(argv)),
                }
            }
        }
        d.deserialize_any(CmdVisitor)
    }
}

/// A step: a command as above, or a table `{ run = ..., if_changed = [...] }`.
impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Step, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            run: Cmd,
            if_changed: Option<Vec<String>>,
        }
        struct StepVisitor;
        impl<'de> Visitor<'de> for StepVisitor {
            type Value = Step;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a step: an array like [\"pnpm\", \"install\"], a string run with /bin/sh -c, or a table { run = [...], if_changed = [\"package.json\"] }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Step, E> {
                Cmd::deserialize(de::value::StrDeserializer::new(v)).map(Step::always)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Step, A::Error> {
                Cmd::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Step::always)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Step, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if t.if_changed.as_ref().is_some_and(Vec::is_empty) {
                    return Err(de::Error::custom(
                        "if_changed lists no path: name the files whose change makes the step run, or leave the key out to run it every build",
                    ));
                }
                let if_changed = t.if_changed.unwrap_or_default();
                for p in &if_changed {
                    if p.trim().is_empty() || p.starts_with('/') || p.contains('\0') {
                        return Err(de::Error::custom(
                            "if_changed paths are git pathspecs relative to repo, like \"package.json\" or \"docs/**\"",
                        ));
                    }
                }
                Ok(Step { run: t.run, if_changed })
            }
        }
        d.deserialize_any(StepVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_from_messages() {
        assert_eq!(
            without_values("invalid type: integer `98127346`, expected a string"),
            "invalid type: integer, expected a string"
        );
        assert_eq!(
            without_values("invalid type: string \"hunter 2\", expected u64"),
            "invalid type: string, expected u64"
        );
        assert_eq!(
            without_values("invalid inline table\nexpected `}`"),
            "invalid inline table; expected `}`"
        );
    }

    #[test]
    fn the_key_of_a_line() {
        assert_eq!(key_of_line("  secret = \"abc").as_deref(), Some("secret"));
        assert_eq!(
            key_of_line("[hooks.docs.publish]").as_deref(),
            Some("[hooks.docs.publish]")
        );
        assert_eq!(key_of_line("\"hunter2\","), None);
        assert_eq!(key_of_line("secret hunter2 = 1"), None);
        // A pasted secret on a line of its own is not a key to name.
        assert_eq!(key_of_line("Zm9vYmFyYmF6cXV4aHVudGVy = 1"), None);
        assert_eq!(key_of_line("9f86d081884c7d659a2feaa0c55ad015 = 1"), None);
        assert_eq!(key_of_line("secert = \"x\"").as_deref(), Some("secert"));
    }

    #[test]
    fn unknown_keys_are_named_only_when_they_look_like_keys() {
        assert_eq!(
            without_values("unknown field `secert`, expected one of `provider`, `secret`"),
            "unknown field `secert`, expected one of `provider`, `secret`"
        );
        assert_eq!(
            without_values("unknown field `Zm9vYmFyYmF6cXV4aHVudGVy`, expected one of `provider`"),
            "unknown key, expected one of `provider`"
        );
    }
}
