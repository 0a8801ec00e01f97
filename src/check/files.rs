//! Owners and modes of everything a build writes: the checkout, each hook's state folder
//! and the publish target. One root-owned `status.json`, build log or site symlink (left by
//! a command run as root) makes every later delivery answer 500, and one root-owned `dist`
//! in the checkout (root ran the site's build there by hand) makes every later build fail
//! with EACCES, while the config itself is fine. And what a prune left: a release it could
//! not remove stays half-deleted, beyond `keep`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{writable, Ctx, Report};
use crate::build::state::HookState;
use crate::publish::{local, Keep, Live, PruneFailure};
use crate::sys::privilege;

/// Enough to walk a pnpm store; a bigger tree is reported as not fully walked.
const MAX_ENTRIES: usize = 200_000;
/// Paths named in a problem; the rest are counted.
const SHOWN: usize = 3;

#[derive(Default)]
struct Walk {
    wrong_owner: Vec<(PathBuf, u32)>,
    wrong_mode: Vec<(PathBuf, u32)>,
    seen: usize,
    /// Files whose own mode matters (deploy-hook opens them for writing): not a release's
    /// files, not what the steps' tools keep in HOME (pnpm's store holds read-only files
    /// on purpose); there only the owner and the folders' modes count.
    file_modes: bool,
    /// Below this folder only owners are checked (the steps' HOME: their tools' business).
    owner_only_under: Option<PathBuf>,
}

impl Walk {
    /// Looks at `path` itself (never through a symlink) and, for a folder, everything in it.
    fn visit(&mut self, path: &Path, uid: u32) {
        if self.seen >= MAX_ENTRIES {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        self.seen += 1;
        if meta.uid() != uid {
            self.wrong_owner.push((path.to_path_buf(), meta.uid()));
        }
        let mode = meta.mode() & 0o7777;
        // The owner must be able to replace, remove and lock what is there: rwx on a
        // folder, rw on a file. A symlink's own mode means nothing.
        let owner_only = self
            .owner_only_under
            .as_ref()
            .is_some_and(|d| path.starts_with(d) && path != d);
        let needed = if owner_only {
            0
        } else if meta.is_dir() {
            0o700
        } else if meta.is_file() && self.file_modes {
            0o600
        } else {
            0
        };
        if mode & needed != needed {
            self.wrong_mode.push((path.to_path_buf(), mode));
        }
        if meta.is_dir() {
            let Ok(entries) = std::fs::read_dir(path) else {
                return;
            };
            let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                self.visit(&e, uid);
            }
        }
    }

    fn report(&self, r: &mut Report, item: &str, what: &str, roots: &[&Path], user: &str) {
        if self.wrong_owner.is_empty() && self.wrong_mode.is_empty() {
            let partial = if self.seen >= MAX_ENTRIES {
                format!(" (the first {MAX_ENTRIES} entries)")
            } else {
                String::new()
            };
            r.ok(
                item,
                format!("{what}: every file is {user}'s and writable by it{partial}"),
            );
            return;
        }
        let list = |v: &[(PathBuf, u32)], describe: &dyn Fn(u32) -> String| {
            let mut s: Vec<String> = v
                .iter()
                .take(SHOWN)
                .map(|(p, x)| format!("{} ({})", p.display(), describe(*x)))
                .collect();
            if v.len() > SHOWN {
                s.push(format!("and {} more", v.len() - SHOWN));
            }
            s.join(", ")
        };
        let targets: Vec<String> = roots.iter().map(|p| p.display().to_string()).collect();
        let targets = targets.join(" ");
        if !self.wrong_owner.is_empty() {
            let owner = |uid: u32| {
                privilege::user_by_uid(uid)
                    .map(|u| format!("owned by {}", u.name))
                    .unwrap_or_else(|| format!("owned by uid {uid}"))
            };
            r.fail(
                item,
                format!(
                    "{what}: {} not owned by {user}, so builds and deliveries cannot write them: {}",
                    count(self.wrong_owner.len()),
                    list(&self.wrong_owner, &owner)
                ),
                format!("chown -R {user}: {targets}"),
            );
        }
        if !self.wrong_mode.is_empty() {
            let mode = |m: u32| format!("mode {m:o}");
            r.fail(
                &format!("{item} modes"),
                format!(
                    "{what}: {} that {user} cannot write: {}",
                    count(self.wrong_mode.len()),
                    list(&self.wrong_mode, &mode)
                ),
                format!("chmod -R u+rwX {targets}"),
            );
        }
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}

/// The uid every file must have: ours, or, for a root that stayed root, the build user's.
fn expected_uid(ctx: &Ctx) -> Option<u32> {
    if ctx.as_root {
        privilege::user_by_name(&ctx.user).map(|u| u.uid)
    } else {
        Some(privilege::euid())
    }
}

pub(super) fn check_state(ctx: &Ctx, state: &HookState, r: &mut Report) {
    if !state.dir.exists() {
        r.ok(
            "state files",
            format!(
                "state folder {} will be created by the first delivery",
                state.dir.display()
            ),
        );
        return;
    }
    let Some(uid) = expected_uid(ctx) else {
        return;
    };
    let mut walk = Walk {
        file_modes: true,
        owner_only_under: Some(state.home_dir()),
        ..Walk::default()
    };
    walk.visit(&state.dir, uid);
    walk.report(
        r,
        "state files",
        &format!("state folder {}", state.dir.display()),
        &[&state.dir],
        &ctx.user,
    );
}

/// The local served path of a hook that publishes to it alone: its folder is writable by
/// the build's user, what it is now, and the owners of what is already published.
pub(super) fn check_publish(ctx: &Ctx, to: &Path, pruning: &Pruning, r: &mut Report) {
    let user = &ctx.user;
    let parent = to.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() || (!ctx.as_root && !writable(parent)) {
        r.fail(
            "publish",
            format!("publish: {} is not a folder {user} can write", parent.display()),
            format!("install -d -o {user} -g {user} {}", parent.display()),
        );
    } else {
        match std::fs::symlink_metadata(to) {
            Ok(m) if m.file_type().is_symlink() => r.ok(
                "publish",
                format!(
                    "publish: {} is a symlink to release {}",
                    to.display(),
                    local::live(to).unwrap_or_default()
                ),
            ),
            Ok(m) if m.is_dir() => r.warn(
                "publish",
                format!(
                    "publish: {} is a directory; the first publish keeps it as the oldest release and puts a symlink in its place",
                    to.display()
                ),
            ),
            Ok(_) => r.fail(
                "publish",
                format!("publish: {} is a file", to.display()),
                "remove it, or point publish.to elsewhere",
            ),
            Err(_) => r.ok(
                "publish",
                format!("publish: {} will be created by the first build", to.display()),
            ),
        }
        check_publish_files(ctx, to, r);
        check_prune(ctx, to, pruning, r);
    }
}

/// Owners and modes of the served path and its releases.
fn check_publish_files(ctx: &Ctx, to: &Path, r: &mut Report) {
    let releases = local::releases_dir(to);
    if std::fs::symlink_metadata(to).is_err() && !releases.exists() {
        return;
    }
    let Some(uid) = expected_uid(ctx) else {
        return;
    };
    let mut walk = Walk::default();
    walk.visit(to, uid);
    walk.visit(&releases, uid);
    // `chown -R` does not follow the symlink, so it changes the link itself: -h is implied.
    walk.report(
        r,
        "publish files",
        &format!("publish target {} and its releases", to.display()),
        &[to, &releases],
        &ctx.user,
    );
}

/// Every file of the checkout is the build's user's: git replaces them on each fetch, and
/// the steps rewrite their output (a `dist` that root made is one they cannot write).
pub(super) fn check_checkout(ctx: &Ctx, repo: &Path, r: &mut Report) {
    let Some(uid) = expected_uid(ctx) else {
        return;
    };
    // Owners only below the top: git's objects and pnpm's hard-linked packages are
    // read-only files on purpose.
    let mut walk = Walk {
        owner_only_under: Some(repo.to_path_buf()),
        ..Walk::default()
    };
    walk.visit(repo, uid);
    walk.report(
        r,
        "checkout files",
        &format!("checkout {}", repo.display()),
        &[repo],
        &ctx.user,
    );
}

/// What pruning a hook's releases goes by, and what the last prune recorded it could not
/// remove (status.json's `prune_failures`): the same rules as the publish's
/// (`publish::Keep`), so that check names exactly the releases a prune should have removed.
pub(super) struct Pruning {
    pub(super) keep: usize,
    pub(super) history: Vec<Live>,
    /// A rollback holds the hook: its newest release is kept for `resume`.
    pub(super) held: bool,
    pub(super) failures: Vec<PruneFailure>,
}

impl Pruning {
    /// The releases of `all` (sorted) that a prune should have removed on a destination
    /// serving `live`.
    pub(super) fn left(&self, live: Option<&str>, all: &[String]) -> Vec<String> {
        let keep = Keep {
            keep: self.keep,
            history: self.history.clone(),
            made: if self.held { all.last().cloned() } else { None },
        };
        keep.to_prune(live, all)
    }

    /// What the last prune said it could not remove on `target` (`local`, or a web host as
    /// `hosts` names it), for the releases still there.
    pub(super) fn recorded(&self, target: &str, all: &[String]) -> String {
        let said: Vec<String> = self
            .failures
            .iter()
            .filter(|f| f.target == target && (all.contains(&f.release) || f.release.starts_with('(')))
            .map(|f| format!("{}: {} (at {})", f.release, f.error, f.at))
            .collect();
        if said.is_empty() {
            String::new()
        } else {
            format!("; the last prune said: {}", said.join("; "))
        }
    }
}

/// A release `keep` lets go that is still there: a prune failed on it (it stops at the
/// first thing it cannot remove, and leaves the release half-deleted), or keep was lowered.
fn check_prune(ctx: &Ctx, to: &Path, pruning: &Pruning, r: &mut Report) {
    let keep = pruning.keep;
    let all = local::list(to);
    let left = pruning.left(local::live(to).as_deref(), &all);
    let said = pruning.recorded("local", &all);
    if left.is_empty() {
        if !said.is_empty() {
            r.warn("prune", format!("nothing is beyond keep = {keep} now{said}"));
        }
        return;
    }
    let dir = local::releases_dir(to);
    let Some(uid) = expected_uid(ctx) else {
        return;
    };
    let mut walk = Walk::default();
    for name in &left {
        walk.visit(&dir.join(name), uid);
    }
    let names = left.join(", ");
    if walk.wrong_owner.is_empty() && walk.wrong_mode.is_empty() {
        r.warn(
            "prune",
            format!(
                "{} beyond keep = {keep} in {}: {names} (a prune failed, or keep was lowered; the next publish prunes them){said}",
                if left.len() == 1 { "1 release".to_string() } else { format!("{} releases", left.len()) },
                dir.display()
            ),
        );
        return;
    }
    let mut stuck: Vec<String> = walk
        .wrong_owner
        .iter()
        .chain(&walk.wrong_mode)
        .take(SHOWN)
        .map(|(p, _)| p.display().to_string())
        .collect();
    stuck.dedup();
    r.fail(
        "prune",
        format!(
            "a prune could not remove {names} (beyond keep = {keep}): it is left half-deleted, because {} in it cannot be removed by {}: {}{said}",
            count(walk.wrong_owner.len() + walk.wrong_mode.len()),
            ctx.user,
            stuck.join(", ")
        ),
        format!(
            "chown -R {}: {} (the next publish prunes it)",
            ctx.user,
            dir.display()
        ),
    );
}
