//! What the `if_changed` steps last left in a working tree: `<git dir>/deploy-hook/steps.json`.
//!
//! A step such as `pnpm install` leaves its work (`node_modules`) in the checkout, not in
//! the hook's state, and several hooks may build in one checkout (a `main` hook and a `dev`
//! hook take turns there). So whether a step may be skipped is decided by what last ran in
//! this working tree, whichever hook ran it: the record lives in the tree's own git dir
//! (`git rev-parse --absolute-git-dir`: a linked worktree has a git dir of its own, so each
//! worktree keeps its own record) and is written by the build, as the build's user.
//!
//! Keyed by the step's command as written. A step's entry is removed (synced) before the
//! step runs and written after it succeeds, so a step that fails, times out or dies midway
//! leaves no entry, and the next build runs it whatever changed. `must_run` decides from it,
//! for the pipeline. A preview's working tree is a linked worktree: a record of its own.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::build::pipeline::{short, Run};
use crate::build::state::write_atomic;
use crate::config::Step;

/// One step's last successful run in this working tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRun {
    /// `inputs_hash` of its `if_changed` paths at `commit`.
    pub inputs: String,
    /// The commit it ran at.
    pub commit: String,
    /// The hook that ran it, and that hook's `pipeline::config_hash` then.
    pub hook: String,
    pub config: String,
    /// When it finished (RFC 3339), for a person reading the file.
    #[serde(default)]
    pub finished: String,
    /// The hook's `clean` paths that existed when it finished, as written in the config:
    /// what it may have left there (`node_modules`, when `rm -rf node_modules dist` is
    /// written as `clean`). A build whose `clean` removes one of them runs it again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    #[serde(default)]
    steps: BTreeMap<String, StepRun>,
}

/// The record of one working tree.
#[derive(Debug, Clone)]
pub struct TreeRecord {
    path: PathBuf,
}

impl TreeRecord {
    /// The record of the working tree whose git dir is `git_dir`.
    pub fn in_git_dir(git_dir: &Path) -> TreeRecord {
        TreeRecord {
            path: git_dir.join("deploy-hook").join("steps.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What an unreadable or damaged record says: nothing, so every step runs.
    fn read(&self) -> Record {
        fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write(&self, record: &Record) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
        }
        let mut json = serde_json::to_vec_pretty(record).unwrap_or_default();
        json.push(b'\n');
        write_atomic(&self.path, &json)
    }

    /// The last successful run of `step` here, if one is recorded.
    pub fn get(&self, step: &str) -> Option<StepRun> {
        self.read().steps.remove(step)
    }

    /// Forgets `step` before it runs: from now until it succeeds, what it leaves is
    /// unknown. An error means the old entry may still stand.
    pub fn forget(&self, step: &str) -> std::io::Result<()> {
        let mut record = self.read();
        if record.steps.remove(step).is_none() {
            // Nothing to forget (a record that cannot be read says nothing either).
            return Ok(());
        }
        self.write(&record)
    }

    /// Records that `step` succeeded.
    pub fn remember(&self, step: &str, run: StepRun) -> std::io::Result<()> {
        let mut record = self.read();
        record.steps.insert(step.to_string(), run);
        self.write(&record)
    }
}

/// A fingerprint of what step `step`'s `if_changed` paths hold in the commit checked out
/// (git's index after the reset: each path's mode and blob), or None when git cannot say.
pub(in crate::build) fn inputs_hash(run: &Run, step: &Step) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut argv = vec!["ls-files", "--stage", "--"];
    argv.extend(step.if_changed.iter().map(String::as_str));
    let listed = run.git_answer(&argv)?;
    Some(
        Sha256::digest(listed.as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// Why `step` (with `if_changed`) must run, or `Err` with the log line saying why it is
/// skipped. `force` is `run --force`, `config` the hook's `pipeline::config_hash`; `last`
/// is its last successful run in this working tree, by whichever hook (below), `inputs`
/// what its paths hold now (`inputs_hash`), and `removed` the `clean` paths this build
/// removed.
pub(in crate::build) fn must_run(
    run: &Run,
    (force, config): (bool, &str),
    step: &Step,
    (last, removed): (Option<&StepRun>, &[String]),
    inputs: Option<&str>,
    head: &str,
) -> std::result::Result<String, String> {
    if force {
        return Ok("forced".into());
    }
    let Some(last) = last else {
        return Ok("no successful run of it recorded in this working tree".into());
    };
    if let Some(gone) = last.left.iter().find(|p| removed.contains(p)) {
        return Ok(format!("clean removed {gone}, which its last run left"));
    }
    let Some(inputs) = inputs else {
        return Ok(format!("cannot list {} at {}", step.if_changed.join(", "), short(head)));
    };
    // Another hook that builds in this checkout (another branch) ran it last.
    let by = if last.hook == run.hook.name {
        String::new()
    } else {
        format!(" (run by hook {})", last.hook)
    };
    if last.config != config {
        return Ok(if by.is_empty() {
            format!("the hook's config changed since {}", short(&last.commit))
        } else {
            format!(
                "hook {} ran it last here, at {}, with another config",
                last.hook,
                short(&last.commit)
            )
        });
    }
    if last.inputs == inputs {
        return Err(format!(
            "skipped: {} unchanged since {}{by}",
            step.if_changed.join(", "),
            short(&last.commit)
        ));
    }
    let mut argv = vec!["diff", "--name-only", "--no-renames", &last.commit, head, "--"];
    argv.extend(step.if_changed.iter().map(String::as_str));
    match run.git_answer(&argv) {
        Some(changed) if !changed.is_empty() => {
            let files: Vec<&str> = changed.lines().take(3).collect();
            let more = changed.lines().count().saturating_sub(3);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            Ok(format!(
                "{}{more} changed since {}{by}",
                files.join(", "),
                short(&last.commit)
            ))
        }
        // That commit is gone (a force push and a gc), or git failed.
        _ => Ok(format!(
            "{} differ from its last run here, at {}{by}",
            step.if_changed.join(", "),
            short(&last.commit)
        )),
    }
}

/// The record of what the steps left in the checkout (tree.rs), or None when git cannot
/// name its git dir: then every `if_changed` step runs.
pub(in crate::build) fn record(run: &mut Run) -> Option<TreeRecord> {
    let found = run
        .git_answer(&["rev-parse", "--absolute-git-dir"])
        .filter(|d| !d.is_empty())
        .map(|d| TreeRecord::in_git_dir(Path::new(&d)));
    if found.is_none() {
        run.note("cannot find the checkout's git dir: every step with if_changed runs");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(commit: &str) -> StepRun {
        StepRun {
            inputs: format!("inputs-{commit}"),
            commit: commit.into(),
            hook: "docs".into(),
            config: "c".into(),
            finished: String::new(),
            left: Vec::new(),
        }
    }

    #[test]
    fn a_step_is_forgotten_until_it_succeeds_and_a_damaged_record_says_nothing() {
        let dir = std::env::temp_dir().join(format!("dh-tree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let t = TreeRecord::in_git_dir(&dir);
        assert_eq!(t.get("pnpm install"), None);
        t.forget("pnpm install").unwrap(); // nothing to forget: nothing written
        assert!(!t.path().exists());
        t.remember("pnpm install", run("a")).unwrap();
        t.remember("make", run("b")).unwrap();
        assert_eq!(t.get("pnpm install"), Some(run("a")));
        t.forget("pnpm install").unwrap();
        assert_eq!((t.get("pnpm install"), t.get("make")), (None, Some(run("b"))));
        fs::write(t.path(), "{ damaged").unwrap();
        assert_eq!(t.get("make"), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
