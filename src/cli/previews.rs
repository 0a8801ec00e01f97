//! `deploy-hook previews HOOK [--json] [--remove NAME]`: the previews of a hook's branches
//! and pull requests as a person or a script reads them, and removing one by hand.

use std::io::Write;
use std::path::Path;

use super::{become_owner, hook_and_state};
use crate::build::preview::{self, name, store::Store, work, Of, Shown};
use crate::build::state::State;
use crate::config::{Config, Hook};
use crate::error::{exit, Error, Result};
use crate::sys::log::Log;
use crate::sys::text::printable;

/// A value that a delivery or a build wrote, as the terminal gets it (a branch name is
/// anyone's who can push).
fn shown(s: &str) -> String {
    printable(s, 300)
}

/// The REF column's widest cell: a longer ref (a branch name can be 255 characters) is cut
/// with `…`, so that the table stays readable; `--json` has it whole.
const REF_WIDTH: usize = 40;

fn cut(s: String, width: usize) -> String {
    if s.chars().count() <= width {
        return s;
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

pub(super) fn previews(
    config: &Path,
    hook: &str,
    json: bool,
    remove: Option<&str>,
    out: &mut dyn Write,
) -> Result<i32> {
    let cfg = Config::load(config)?;
    let (hook, _) = hook_and_state(&cfg, hook)?;
    let Some(previews) = &hook.previews else {
        return Err(Error::Usage(format!(
            "hook {} has no previews: add [hooks.{}.previews] to {} (docs/previews.md)",
            hook.name,
            hook.name,
            cfg.file.display()
        )));
    };
    become_owner(&cfg, Some(&hook.name), false)?;
    let store = Store::new(&cfg.state_dir, &hook.name);
    if let Some(name) = remove {
        return remove_one(&cfg, hook, &store, name, out);
    }
    let all = preview::shown(&store, previews);
    if json {
        let v = serde_json::json!({ "hook": hook.name, "keep": previews.keep, "previews": all });
        writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default()).ok();
    } else {
        print(out, hook, previews.keep, &all);
    }
    Ok(exit::OK)
}

fn remove_one(cfg: &Config, hook: &Hook, store: &Store, name: &str, out: &mut dyn Write) -> Result<i32> {
    let known = || {
        let names: Vec<String> = store.list().into_iter().map(|r| r.name).collect();
        if names.is_empty() {
            "it has none".to_string()
        } else {
            format!("previews: {}", names.join(", "))
        }
    };
    if !name::valid(name) || store.get(name).is_none() {
        return Err(Error::Usage(format!(
            "hook {} has no preview named {:?}; {}",
            hook.name,
            shown(name),
            known()
        )));
    }
    let mut log = Log::open(&cfg.log);
    if work::remove_now(cfg, hook, name, &mut log)? {
        writeln!(out, "{}: removed preview {name}", hook.name).ok();
    }
    Ok(exit::OK)
}

/// One line per preview, a header first.
fn print(out: &mut dyn Write, hook: &Hook, keep: usize, all: &[Shown]) {
    if all.is_empty() {
        writeln!(out, "{}: no previews (at most {keep})", hook.name).ok();
        return;
    }
    writeln!(out, "{}: {} previews (at most {keep})", hook.name, all.len()).ok();
    let rows: Vec<[String; 6]> = all
        .iter()
        .map(|p| {
            let state = match (&p.state, p.removing, p.pending, &p.last) {
                (_, true, _, _) => "removing".to_string(),
                (State::Building, ..) => "building".to_string(),
                (_, _, true, _) => "waiting".to_string(),
                (_, _, _, Some(last)) => last.result.to_string(),
                _ => "-".to_string(),
            };
            [
                p.name.clone(),
                state,
                cut(shown(&p.git_ref), REF_WIDTH),
                p.commit
                    .as_deref()
                    .map(|c| c[..c.len().min(10)].to_string())
                    .unwrap_or_else(|| "-".into()),
                p.built.clone().unwrap_or_else(|| "-".into()),
                shown(&p.url),
            ]
        })
        .collect();
    let header = ["NAME", "LAST", "REF", "COMMIT", "BUILT", "URL"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s
    };
    writeln!(out, "{}", line(header)).ok();
    for r in &rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]])).ok();
    }
    for p in all
        .iter()
        .filter(|p| p.last.as_ref().is_some_and(|l| !l.result.is_good()))
    {
        if let Some(l) = &p.last {
            let of = match &p.of {
                Of::Branch(b) => format!("branch {}", shown(b)),
                Of::PullRequest(n) => format!("pull request {n}"),
            };
            writeln!(
                out,
                "{} ({of}): last build {} {}{}; log: {}",
                p.name,
                shown(&l.id),
                l.result,
                l.failed_step
                    .as_ref()
                    .map(|s| format!(" at {}", shown(s)))
                    .unwrap_or_default(),
                shown(&l.log)
            )
            .ok();
        }
    }
}

/// The previews as `status` lists them below a hook's builds.
pub(super) fn status_lines(cfg: &Config, hook: &Hook) -> String {
    let Some(previews) = &hook.previews else {
        return String::new();
    };
    let store = Store::new(&cfg.state_dir, &hook.name);
    let all = preview::shown(&store, previews);
    let mut out = Vec::new();
    print(&mut out, hook, previews.keep, &all);
    String::from_utf8_lossy(&out).into_owned()
}
