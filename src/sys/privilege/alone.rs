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
//! Root also reads and runs what the config names outside those paths: the rclone config
//! (a `union` remote written in by another user makes root delete root's files), each
//! folder of the hook's `path` (where rclone, git, pnpm and the steps' programs are looked
//! up: a program planted there runs as root), a step's or a notification's program named
//! by its full path, and the ssh config, keys and known_hosts of `publish.ssh`. Each must
//! be root's alone too (`reads_root_alone`): the file and every folder on the way, a
//! folder of programs with everything in it.
//!
//! Read with `lstat`, like the rest of this module; a tree too big to walk is not vouched
//! for.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{name_of, only_root_controls, refused, WEB_USER};
use crate::error::Result;

/// What the config calls a HOME set in a hook's `env` (`config::Hook::root_paths`): only
/// what tools read there is walked.
pub const HOME: &str = "env HOME";

/// What the config calls the rclone config (`config::Hook::root_reads`).
pub const RCLONE_CONFIG: &str = "publish.rclone_config";

/// Entries walked per path at most: a checkout's node_modules fits many times over.
const MAX_ENTRIES: usize = 500_000;

/// Something besides the hook's own paths that a command that stays root reads or runs, as
/// the config names it (`config::Hook::root_reads`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// What the config calls it: `publish.rclone_config`, `path folder`, ...
    pub what: String,
    pub path: PathBuf,
    /// A folder of programs (a `path` folder): the folder and everything in it, rather than
    /// one file.
    pub programs: bool,
}

/// `reads` are root's alone (see the module's doc); else the refusal that names the first
/// thing another user can change, and both ways out: the hook given to the web server's
/// user (`paths` are the hook's own, given with it), or that thing made root's alone.
pub fn reads_root_alone(hook: &str, state_dir: &Path, paths: &[(&str, PathBuf)], reads: &[Read]) -> Result<()> {
    for r in reads {
        let checked = if r.programs { programs(&r.path) } else { file(&r.path) };
        if let Err(why) = checked {
            let p = r.path.display();
            let own = if r.programs {
                format!(
                    "take {p} out of the hook's path, or make it root's alone: chown -R root {p} && chmod -R go-w {p}"
                )
            } else if r.what == RCLONE_CONFIG {
                // The build's user reads it through its group (docs/bucket.md).
                format!(
                    "make it root's alone, in a folder only root can write: chown root:{WEB_USER} {p} && chmod 640 {p}"
                )
            } else {
                format!("make it root's alone, in a folder only root can write: chown root {p} && chmod go-w {p}")
            };
            return Err(refused(
                format!(
                    "everything of hook {hook} in the state folder is root's, so the command would run as root, but its {} {p} is not root's alone: {why}; root would read or run what another user can change",
                    r.what
                ),
                format!("{}; or {own}", give_to_web_user(hook, state_dir, paths)),
            ));
        }
    }
    Ok(())
}

/// A file root reads or runs: every folder on the way only root can change, and the file
/// (or where a symlink leads) root's, written by root only. Not there is fine: nobody but
/// root can put it there.
fn file(path: &Path) -> std::result::Result<(), String> {
    // The folders on the way, the one holding it included.
    only_root_controls(path)?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    // Where it really is (root decides every folder on the way, checked just now): a
    // symlink in it is read from there, as the kernel reads it.
    let Some(parent) = real(parent)? else { return Ok(()) };
    let path = parent.join(path.file_name().unwrap_or_default());
    let mut seen = 0;
    walk(&path, &path, &mut seen, false)
}

/// `path` with every symlink on the way resolved; `None` when it is not there.
fn real(path: &Path) -> std::result::Result<Option<PathBuf>, String> {
    match path.canonicalize() {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{} cannot be read ({e})", path.display())),
    }
}

/// A folder programs are looked up in: only root decides what it is, and everything in it
/// (one level: what a PATH lookup finds) is root's, written by root only.
fn programs(folder: &Path) -> std::result::Result<(), String> {
    only_root_controls(folder)?;
    // /bin is a symlink to usr/bin on Debian: its entries' links are relative to usr/bin.
    let Some(folder) = real(folder)? else { return Ok(()) };
    let folder = folder.as_path();
    let mut seen = 0;
    walk(folder, folder, &mut seen, false)?;
    for e in read_dir(folder)? {
        walk(folder, &e.path(), &mut seen, false)?;
    }
    Ok(())
}

/// The first way out of a refusal: the hook's state folder and its own `paths` given to
/// the web server's user, so that commands started as root run as it.
fn give_to_web_user(hook: &str, state_dir: &Path, paths: &[(&str, PathBuf)]) -> String {
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
    let own = if existing.is_empty() {
        String::new()
    } else {
        format!(" && chown -R {WEB_USER}: {}", existing.join(" "))
    };
    format!("give the hook to the web server's user, so that commands started as root run as it: {state}{own}")
}

/// `paths` (what each is, as the config calls it, and where) are root's alone; else the
/// refusal that names what another user can change, and both ways out: the hook given to
/// the web server's user (its state folder made or given to it: commands started as root
/// then run as it), or the path made root's alone.
pub fn root_alone(hook: &str, state_dir: &Path, paths: &[(&str, PathBuf)]) -> Result<()> {
    for (what, path) in paths {
        if let Err(why) = check(path, *what == HOME) {
            return Err(refused(
                format!(
                    "everything of hook {hook} in the state folder is root's, so the command would run as root, but its {what} {} is not root's alone: {why}; git and the steps would run what another user can change",
                    path.display()
                ),
                format!(
                    "{}; or make it root's alone: chown -R root: {p} && chmod -R go-w {p}",
                    give_to_web_user(hook, state_dir, paths),
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
    // A device of root's (`GlobalKnownHostsFile /dev/null` in an ssh config): what is
    // written to it changes nothing that is read from it.
    if m.file_type().is_char_device() {
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
        // A chain of links (/usr/bin/c++ -> /etc/alternatives/c++ -> ...): root decides
        // every folder on its way, and what it ends at is root's, written by root only.
        Ok(m) if m.file_type().is_symlink() => {
            only_root_controls(target)?;
            match std::fs::metadata(target) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("{} cannot be read ({e})", target.display())),
                Ok(m) if m.uid() != 0 => Err(format!("{} leads to a file of {}", target.display(), name_of(m.uid()))),
                Ok(m) if !m.is_dir() && m.mode() & 0o022 != 0 => Err(format!(
                    "{} leads to a file others than root can write (mode {:04o})",
                    target.display(),
                    m.mode() & 0o7777
                )),
                Ok(_) => Ok(()),
            }
        }
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
