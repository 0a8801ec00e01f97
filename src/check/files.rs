//! Owners and modes of everything a build writes: the checkout, each hook's state folder
//! and the publish target. One root-owned `status.json`, build log or site symlink (left by
//! a command run as root) makes every later delivery answer 500, and one root-owned `dist`
//! in the checkout (root ran the site's build there by hand) makes every later build fail
//! with EACCES, while the config itself is fine. And what a prune left: a release it could
//! not remove stays half-deleted, beyond `keep`.
//!
//! The state folder and the publish target are the build user's, so a build step (the
//! repository's code) can plant a symlink where deploy-hook makes a file of its own, or
//! point the served path anywhere. deploy-hook opens its files by name, through such a
//! link: nothing is gained that the build user did not have, but every delivery, `status`
//! and `run` then fail on the link's target, naming neither the link nor the fix. So what
//! deploy-hook makes itself is looked at with lstat, never followed, and anything else in
//! its place is a `FAIL` whose fix is the `rm` of it.

use std::fs::FileType;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{writable, Ctx, Report};
use crate::build::state::HookState;
use crate::publish::{local, Keep, Live, PruneFailure};
use crate::sys::privilege;
use crate::sys::text::shell_quote;

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
    /// Paths reported by another check, with another fix (`rm`, not `chown`).
    skip: Vec<PathBuf>,
}

impl Walk {
    /// Looks at `path` itself (never through a symlink) and, for a folder, everything in it.
    fn visit(&mut self, path: &Path, uid: u32) {
        if self.seen >= MAX_ENTRIES || self.skip.iter().any(|p| p == path) {
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
    let dir = &state.dir;
    match std::fs::symlink_metadata(dir) {
        Err(_) => {
            r.ok(
                "state files",
                format!("state folder {} will be created by the first delivery", dir.display()),
            );
            return;
        }
        Ok(m) if !m.is_dir() => {
            r.fail(
                "state files",
                format!(
                    "state folder {} is {}, not a folder: deploy-hook makes it itself, and would open every file of the hook's state through it",
                    dir.display(),
                    described(dir, m.file_type())
                ),
                format!("rm -- {} (the next delivery makes it again)", quoted(dir)),
            );
            return;
        }
        Ok(_) => {}
    }
    let Some(uid) = expected_uid(ctx) else {
        return;
    };
    let planted = check_own_entries(dir, uid, r);
    let mut walk = Walk {
        file_modes: true,
        owner_only_under: Some(state.home_dir()),
        skip: planted,
        ..Walk::default()
    };
    walk.visit(dir, uid);
    if !walk.skip.is_empty() && walk.wrong_owner.is_empty() && walk.wrong_mode.is_empty() {
        // Not "every file is fine" under the FAIL just printed for some of them.
        return;
    }
    walk.report(
        r,
        "state files",
        &format!("state folder {}", dir.display()),
        &[dir],
        &ctx.user,
    );
}

/// What deploy-hook makes in a hook's state folder, by name, and whether as a folder: the
/// files of `build::state` (its module doc lists them), `build::queue`'s `builder`,
/// `rebuilt` and `supersede`, the previews' locks and folders, the bucket's and the web
/// hosts' folders, and `init`'s credentials.
const OWN_ENTRIES: &[(&str, bool)] = &[
    ("build.lock", false),
    ("state.lock", false),
    ("pending", false),
    ("taking", false),
    ("builder", false),
    ("status.json", false),
    ("seen-tokens", false),
    ("worker.log", false),
    ("force", false),
    ("rebuilt", false),
    ("supersede", false),
    ("first.lock", false),
    ("first.gate", false),
    (crate::cli::init::CREDENTIALS, false),
    ("builds", true),
    ("home", true),
    ("previews", true),
    ("worktrees", true),
    ("preview-slots", true),
    ("bucket", true),
    ("empty", true),
];

/// Whether `path` is a regular file deploy-hook may read: not a symlink, not a FIFO (whose
/// open would wait for a writer forever).
pub(super) fn plain_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// The entries of `dir` that deploy-hook makes itself and that are not what it makes: a
/// symlink, another kind of file, or a hard link to another user's file (`chown -R` would
/// give that file away). Each is a `FAIL` whose fix removes it; returns them, so that the
/// owners' walk does not name them again with `chown`.
fn check_own_entries(dir: &Path, uid: u32, r: &mut Report) -> Vec<PathBuf> {
    let mut links: Vec<(PathBuf, String)> = Vec::new();
    let mut wrong: Vec<(PathBuf, String, bool)> = Vec::new();
    for (name, folder) in OWN_ENTRIES {
        let path = dir.join(name);
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let t = m.file_type();
        if t.is_symlink() {
            let to = std::fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            links.push((path, to));
        } else if !(if *folder { t.is_dir() } else { t.is_file() }) {
            let want = if *folder { "a folder" } else { "a file" };
            wrong.push((path.clone(), format!("{}, not {want}", described(&path, t)), t.is_dir()));
        } else if t.is_file() && m.nlink() > 1 && m.uid() != uid {
            wrong.push((
                path,
                format!("a hard link to a file of {}'s", owner_name(m.uid())),
                false,
            ));
        }
    }
    links.sort();
    wrong.sort();
    let what = format!("state folder {}", dir.display());
    if !links.is_empty() {
        let n = links.len();
        let shown: Vec<(PathBuf, String)> = links.iter().map(|(p, to)| (p.clone(), format!("to {to}"))).collect();
        r.fail(
            "state links",
            format!(
                "{what}: {} that deploy-hook makes itself {}, which it would open and write through: {}",
                count(n),
                if n == 1 { "is a symlink" } else { "are symlinks" },
                shown_list(&shown)
            ),
            removal(links.iter().map(|(p, _)| (p.as_path(), false))),
        );
    }
    if !wrong.is_empty() {
        let n = wrong.len();
        let shown: Vec<(PathBuf, String)> = wrong.iter().map(|(p, why, _)| (p.clone(), why.clone())).collect();
        r.fail(
            "state entries",
            format!(
                "{what}: {} that deploy-hook makes itself {} not what it makes: {}",
                count(n),
                if n == 1 { "is" } else { "are" },
                shown_list(&shown)
            ),
            removal(wrong.iter().map(|(p, _, d)| (p.as_path(), *d))),
        );
    }
    links
        .into_iter()
        .map(|(p, _)| p)
        .chain(wrong.into_iter().map(|(p, _, _)| p))
        .collect()
}

/// `path (why)` for the first few, then how many more.
fn shown_list(v: &[(PathBuf, String)]) -> String {
    let mut s: Vec<String> = v
        .iter()
        .take(SHOWN)
        .map(|(p, why)| format!("{} ({why})", p.display()))
        .collect();
    if v.len() > SHOWN {
        s.push(format!("and {} more", v.len() - SHOWN));
    }
    s.join(", ")
}

/// The one command that removes every path (`rm -r` for the folders), each quoted: the
/// paths are the config's and the names deploy-hook gives, but the fix is pasted into a
/// root shell.
fn removal<'a>(paths: impl Iterator<Item = (&'a Path, bool)>) -> String {
    let (dirs, files): (Vec<_>, Vec<_>) = paths.partition(|(_, d)| *d);
    let words = |v: &[(&Path, bool)]| v.iter().map(|(p, _)| quoted(p)).collect::<Vec<_>>().join(" ");
    let mut parts = Vec::new();
    if !dirs.is_empty() {
        parts.push(format!("rm -r -- {}", words(&dirs)));
    }
    if !files.is_empty() {
        parts.push(format!("rm -- {}", words(&files)));
    }
    parts.join(" && ")
}

fn quoted(p: &Path) -> String {
    shell_quote(&p.to_string_lossy())
}

/// What a file is, for a message: `a symlink to X`, `a FIFO`, `a file`...
fn described(path: &Path, t: FileType) -> String {
    if t.is_symlink() {
        let to = std::fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        format!("a symlink to {to}")
    } else if t.is_dir() {
        "a folder".into()
    } else if t.is_file() {
        "a file".into()
    } else if t.is_fifo() {
        "a FIFO".into()
    } else if t.is_socket() {
        "a socket".into()
    } else {
        "a device".into()
    }
}

fn owner_name(uid: u32) -> String {
    privilege::user_by_uid(uid)
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The local served path of a hook that publishes to it alone: its folder is writable by
/// the build's user, what it is now (a symlink to one of its releases), its releases
/// folder, and the owners of what is already published.
pub(super) fn check_publish(ctx: &Ctx, hook: &str, to: &Path, pruning: &Pruning, r: &mut Report) {
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
            Ok(m) if m.file_type().is_symlink() => match linked_release(to) {
                Ok(release) => r.ok(
                    "publish",
                    format!("publish: {} is a symlink to release {release}", to.display()),
                ),
                Err(why) => r.fail(
                    "publish",
                    format!("publish: {} is {}, {why}", to.display(), described(to, m.file_type())),
                    format!("rm -- {} && deploy-hook run {hook} (it publishes again)", quoted(to)),
                ),
            },
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
        check_releases_folder(hook, to, r);
        check_publish_files(ctx, to, r);
        check_prune(ctx, to, pruning, r);
    }
}

/// The release a served path's symlink names, when it is one a publish makes: a plain
/// name in `<to>.releases` (relative, as `local::switch` writes it, or absolute), a folder
/// there, not a link. Else why not, saying where it points.
fn linked_release(to: &Path) -> Result<String, String> {
    let releases = local::releases_dir(to);
    let not_a_release = || format!("which is not a release in {}", releases.display());
    let target = std::fs::read_link(to).map_err(|e| format!("which cannot be read: {e}"))?;
    // Lexically, as the web server resolves it: `..` in it is not a release either.
    let full = to.parent().unwrap_or(Path::new("/")).join(&target);
    let name = match (full.parent(), full.file_name()) {
        (Some(dir), Some(name)) if dir == releases && !name.to_string_lossy().starts_with('.') => name,
        _ => return Err(not_a_release()),
    };
    let release = releases.join(name);
    match std::fs::symlink_metadata(&release) {
        Ok(m) if m.is_dir() => Ok(name.to_string_lossy().into_owned()),
        Ok(m) => Err(format!(
            "{}, which is {}, not a release folder",
            release.display(),
            described(&release, m.file_type())
        )),
        Err(_) => Err(format!(
            "and there is no release {} in {}",
            name.to_string_lossy(),
            releases.display()
        )),
    }
}

/// `<to>.releases` is deploy-hook's own folder: a symlink there makes each publish write
/// into, and each build lock, whatever it points to.
fn check_releases_folder(hook: &str, to: &Path, r: &mut Report) {
    let releases = local::releases_dir(to);
    let Ok(m) = std::fs::symlink_metadata(&releases) else {
        return;
    };
    if m.is_dir() {
        return;
    }
    let why = if m.file_type().is_symlink() {
        ": deploy-hook makes it itself, a folder, and would publish into it and lock it through the link"
    } else {
        ", not a folder: deploy-hook makes it itself, and publishes into it"
    };
    r.fail(
        "publish releases",
        format!(
            "publish: {} is {}{why}",
            releases.display(),
            described(&releases, m.file_type())
        ),
        format!(
            "rm -- {} && deploy-hook run {hook} (it publishes again)",
            quoted(&releases)
        ),
    );
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
