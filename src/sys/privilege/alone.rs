//! What a command that stays root runs: git and the steps in the checkout, a publish into
//! the served path's folder. Root stays root only when the state folders say everything of
//! the hook is root's (`decide`); but the checkout and the publish target are other paths,
//! and when another user (www-data) can write them, their `.git/config` (a `core.fsmonitor`
//! or an alias), `package.json`'s scripts, or a symlink swapped into the releases folder run
//! or write as root. So staying root also needs each of them to be root's alone: every
//! folder on the way written by root only, and everything in them root's and written by
//! root only, a symlink leading out of them to a place only root controls. Else the command
//! refuses, naming the first thing another user can change and both ways out.
//!
//! Read with `lstat`, like the rest of this module; a tree too big to walk is not vouched
//! for.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{name_of, only_root_controls, refused, WEB_USER};
use crate::error::Result;

/// What the config calls a HOME set in a hook's `env` (`config::Hook::root_paths`): only
/// what tools read there is walked.
pub const HOME: &str = "env HOME";

/// Entries walked per path at most: a checkout's node_modules fits many times over.
const MAX_ENTRIES: usize = 500_000;

/// `paths` (what each is, as the config calls it, and where) are root's alone; else the
/// refusal that names what another user can change, and both ways out: the hook given to
/// the web server's user (its state folder made or given to it: commands started as root
/// then run as it), or the path made root's alone.
pub fn root_alone(hook: &str, state_dir: &Path, paths: &[(&str, PathBuf)]) -> Result<()> {
    for (what, path) in paths {
        if let Err(why) = check(path, *what == HOME) {
            let folder = state_dir.join(hook);
            let state = if folder.exists() {
                format!("chown -R {WEB_USER}: {}", folder.display())
            } else if state_dir.exists() {
                format!("install -d -o {WEB_USER} -g {WEB_USER} -m 750 {}", folder.display())
            } else {
                format!("install -d -o {WEB_USER} -g {WEB_USER} -m 750 {}", state_dir.display())
            };
            let existing: Vec<String> = paths
                .iter()
                .filter(|(_, p)| std::fs::symlink_metadata(p).is_ok())
                .map(|(_, p)| p.display().to_string())
                .collect();
            return Err(refused(
                format!(
                    "everything of hook {hook} in the state folder is root's, so the command would run as root, but its {what} {} is not root's alone: {why}; git and the steps would run what another user can change",
                    path.display()
                ),
                format!(
                    "give the hook to the web server's user, so that commands started as root run as it: {state} && chown -R {WEB_USER}: {}; or make it root's alone: chown -R root: {p} && chmod -R go-w {p}",
                    existing.join(" "),
                    p = path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `path` (a folder, a symlink to one, or not there yet) is root's alone. For a
/// HOME, what tools read there: the folder itself and its dot-files and dot-folders
/// (`.gitconfig`, `.npmrc`, `.config`, the pnpm store...), not whatever else it holds.
fn check(path: &Path, home: bool) -> std::result::Result<(), String> {
    only_root_controls(path)?;
    let mut seen = 0;
    match std::fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{} cannot be read ({e})", path.display())),
    }
    if !home {
        return walk(path, path, &mut seen, true);
    }
    walk(path, path, &mut seen, false)?;
    for e in read_dir(path)? {
        if e.file_name().as_encoded_bytes().starts_with(b".") {
            walk(path, &e.path(), &mut seen, true)?;
        }
    }
    Ok(())
}

/// The entries of a folder; one gone meanwhile (a build of the hook runs, a prune removes
/// a release) has nothing left to run and is left out.
fn read_dir(path: &Path) -> std::result::Result<Vec<std::fs::DirEntry>, String> {
    match std::fs::read_dir(path) {
        Ok(entries) => Ok(entries.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{} cannot be read ({e})", path.display())),
    }
}

/// `path` (and, with `deep`, everything under it): root's, written by root only; a symlink
/// that leads out of `top` leads somewhere only root controls. What is gone by the time it
/// is looked at is skipped: a running build adds and removes files of its own (root's).
fn walk(top: &Path, path: &Path, seen: &mut usize, deep: bool) -> std::result::Result<(), String> {
    *seen += 1;
    if *seen > MAX_ENTRIES {
        return Err(format!(
            "it holds more than {MAX_ENTRIES} entries, too many to vouch for"
        ));
    }
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{} cannot be read ({e})", path.display())),
    };
    if m.uid() != 0 {
        return Err(format!("{} is {}'s", path.display(), name_of(m.uid())));
    }
    if m.file_type().is_symlink() {
        let target = match std::fs::read_link(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{} cannot be read ({e})", path.display())),
        };
        let resolved = lexical(&path.parent().unwrap_or(Path::new("/")).join(&target));
        if !resolved.starts_with(top) {
            outside(&resolved)
                .map_err(|why| format!("{} leads to {}, and {why}", path.display(), resolved.display()))?;
        }
        return Ok(());
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} can be written by others than root (mode {:04o})",
            path.display(),
            m.mode() & 0o7777
        ));
    }
    if deep && m.is_dir() {
        for e in read_dir(path)? {
            walk(top, &e.path(), seen, true)?;
        }
    }
    Ok(())
}

/// Where a symlink leads out of the tree: root decides what is there (every folder on the
/// way is root's alone) and it is root's, written by root only (a folder is not walked:
/// /usr/lib is root's business).
fn outside(target: &Path) -> std::result::Result<(), String> {
    // Who decides what the folder holding it is, and then who may change what it holds.
    let parent = target.parent().unwrap_or(Path::new("/"));
    only_root_controls(parent)?;
    let folder = std::fs::metadata(parent).map_err(|e| format!("{} cannot be read ({e})", parent.display()))?;
    let entry_roots = std::fs::symlink_metadata(target).is_ok_and(|m| m.uid() == 0);
    if folder.uid() != 0 {
        return Err(format!("{} belongs to {}", parent.display(), name_of(folder.uid())));
    }
    if folder.mode() & 0o022 != 0 && !(folder.mode() & 0o1000 != 0 && entry_roots) {
        return Err(format!(
            "{} can be written by others than root (mode {:04o})",
            parent.display(),
            folder.mode() & 0o7777
        ));
    }
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{} cannot be read ({e})", target.display())),
        Ok(m) if m.file_type().is_symlink() => only_root_controls(target),
        Ok(m) if m.uid() != 0 => Err(format!("{} is {}'s", target.display(), name_of(m.uid()))),
        Ok(m) if m.mode() & 0o022 != 0 => Err(format!(
            "{} can be written by others than root (mode {:04o})",
            target.display(),
            m.mode() & 0o7777
        )),
        Ok(_) => Ok(()),
    }
}

/// `a/b/../c` as `a/c`, without asking the file system (a symlink's target as written).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}
