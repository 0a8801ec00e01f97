//! What the config file says, as serde reads it: the raw TOML shapes, before any check.
//!
//! Every table denies unknown keys, and most values keep their span so that `super` can
//! name the line of a value it refuses. Turning these shapes into a checked `Config`
//! (defaults, validation, paths resolved) is `super`'s job; nothing outside `config` sees
//! them. A new key goes here first, then into `validate_hook` or `Config::parse`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::Cmd;
use crate::error::{Error, Result};

/// Reads config text into its raw shape; a syntax or type error names the line.
pub(super) fn parse(file: &Path, text: &str) -> Result<RawConfig> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        // The message alone ("invalid type: sequence, expected a string") does not
        // say which key; the line does.
        let shown = line
            .and_then(|l| text.lines().nth(l - 1))
            .map(|l| format!(" (in `{}`)", crate::text::printable(l.trim(), 80)))
            .unwrap_or_default();
        Error::Config {
            file: file.to_path_buf(),
            line,
            key: String::new(),
            message: format!("{}{shown}", e.message().trim_end()),
        }
    })
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) syslog: Option<String>,
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
    pub(super) steps: Option<Spanned<Vec<Cmd>>>,
    pub(super) env: Option<Spanned<BTreeMap<String, String>>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) step_timeout_secs: Option<Spanned<u64>>,
    pub(super) nice: Option<Spanned<i64>>,
    pub(super) mode: Option<Spanned<String>>,
    pub(super) on_busy: Option<Spanned<String>>,
    pub(super) keep_logs: Option<Spanned<u64>>,
    pub(super) on_failure: Option<Cmd>,
    pub(super) on_success: Option<Cmd>,
    pub(super) publish: Option<Spanned<RawPublish>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPublish {
    pub(super) from: String,
    pub(super) to: String,
    pub(super) keep: Option<u64>,
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
