//! Running a subcommand as root without breaking the server.
//!
//! Deliveries run as the web server's user (www-data), which owns each hook's state folder.
//! An admin who types `deploy-hook rollback docs` as root would otherwise leave a root-owned
//! `status.json`, build log or site symlink behind, and every later delivery would answer
//! 500 because www-data can no longer write them. So `run`, `rollback`, `status`, `check`
//! and the worker, started as root, first become the owner of the hook's state folder
//! (its group and supplementary groups too), before they read or write anything of the
//! hook. The config is read as root first only to learn where that folder is.
//!
//! Whom to become is decided by `lstat`, never through a symlink, and only from what root
//! alone could have made (see `decide`): www-data owns the state dir, so anything in it is
//! www-data's to swap, and a state folder swapped for a symlink to a root-owned folder once
//! made a root-run build run as root. When in doubt the command refuses, saying why and
//! what to do, rather than stay root.
//!
//! Staying root needs more than root's state folders: the checkout and the publish target
//! the command would work in as root must be root's alone too (`alone`).
//!
//! The same rule holds for a delivery that a web server misconfigured to run us as root
//! (fcgiwrap started as root) hands over: it becomes the state folder's owner, or refuses
//! (500, the reason in the log). `check` fails such a web server.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

mod alone;
pub use alone::{Read, HOME, RCLONE_CONFIG};

/// An account from the passwd database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() }
}

/// Reads a passwd entry with getpwuid_r/getpwnam_r (thread-safe, no static buffer).
fn passwd(by: impl Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> i32) -> Option<User> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed passwd is a valid out-parameter; the lookup fills it, pointing into buf.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    if by(&mut pw, buf.as_mut_ptr(), buf.len(), &mut found) != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success pw_name and pw_dir are NUL-terminated strings inside buf.
    let (name, home) = unsafe { (CStr::from_ptr(pw.pw_name), CStr::from_ptr(pw.pw_dir)) };
    Some(User {
        name: name.to_string_lossy().into_owned(),
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        home: PathBuf::from(std::ffi::OsStr::from_bytes(home.to_bytes())),
    })
}

/// The account with this user id, if the passwd database has one.
pub fn user_by_uid(uid: u32) -> Option<User> {
    // SAFETY: getpwuid_r writes only into the buffers it is given.
    passwd(|pw, buf, len, found| unsafe { libc::getpwuid_r(uid, pw, buf, len, found) })
}

/// The account with this name, if the passwd database has one.
pub fn user_by_name(name: &str) -> Option<User> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam_r reads a valid C string and writes only into the buffers it is given.
    passwd(|pw, buf, len, found| unsafe { libc::getpwnam_r(c.as_ptr(), pw, buf, len, found) })
}

/// The name of the user this process runs as ("uid N" when passwd has no entry).
pub fn current_user_name() -> String {
    let uid = euid();
    user_by_uid(uid).map(|u| u.name).unwrap_or_else(|| format!("uid {uid}"))
}

/// Whom a command started as root runs as, for the hooks it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whom {
    /// Everything of these hooks is root's, and only root can change that: stay root.
    Root,
    /// Become this user before touching anything of the hooks.
    User(User),
}

/// Decides whom a command started as root becomes for `hooks` (none: the state dir alone),
/// from what is on disk, without following a symlink anywhere the hooks' users can write.
///
/// The rule, as an attacker would test it: whoever can write a folder decides what its
/// entries are. The web server's user (www-data) owns the state dir, so it can replace any
/// hook folder in it, with a symlink to a root-owned folder say; it cannot change the state
/// dir itself when the folders above it are root's. So:
/// - a state dir owned by a user: that user, always. A hook folder in it must be a real
///   folder of the same user (a missing one is made later, as that user);
/// - no state dir yet: the owner of the folder that will hold it, when that is a user's;
///   root when only root can make it;
/// - a state dir that is root's, and that only root can change (it and every folder above
///   it writable by root alone): a hook folder's owner is trusted when the hook folder is a
///   real folder; root stays root only for a hook folder that is root's throughout, or for
///   one that does not exist yet;
/// - anything else (a symlink, something else than a folder, a folder others can write, a
///   user without a passwd entry, hooks of different users): refused, with why and what
///   to do. Staying root "because it looked like root's" is never the fallback.
pub fn decide(state_dir: &Path, hooks: &[&str]) -> Result<Whom> {
    let sd = state_dir;
    let meta = match std::fs::symlink_metadata(sd) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Nothing of any hook exists. Whoever owns the folder that will hold it decides
            // what it will be: a user's folder, that user (a folder, not a symlink to one);
            // else root makes it, if nobody else can make it first.
            let above = sd.ancestors().skip(1).find_map(|a| std::fs::symlink_metadata(a).ok());
            if let Some(m) = above.filter(|m| m.is_dir() && m.uid() != 0) {
                return user_by_uid(m.uid()).map(Whom::User).ok_or_else(|| {
                    refused(
                        format!(
                            "state_dir {} does not exist, and the folder that will hold it belongs to uid {}, which has no passwd entry",
                            sd.display(),
                            m.uid()
                        ),
                        format!("install -d -o {WEB_USER} -g {WEB_USER} -m 750 {}", sd.display()),
                    )
                });
            }
            only_root_controls(sd).map_err(|why| {
                refused(
                    format!(
                        "state_dir {} does not exist, and {why}, so someone other than root could make it",
                        sd.display()
                    ),
                    format!("install -d -o {WEB_USER} -g {WEB_USER} -m 750 {}", sd.display()),
                )
            })?;
            return Ok(Whom::Root);
        }
        Err(e) => return Err(Error::io(format!("cannot read state_dir {}", sd.display()), e)),
    };
    if meta.file_type().is_symlink() {
        return Err(refused(
            format!(
                "state_dir {} is a symbolic link{}; whoever can write the folder that holds it could point it elsewhere",
                sd.display(),
                link_target(sd)
            ),
            "set state_dir in the config to the folder itself (readlink -f shows it)".to_string(),
        ));
    }
    if !meta.is_dir() {
        return Err(refused(
            format!("state_dir {} is not a folder", sd.display()),
            format!(
                "remove it, then: install -d -o {WEB_USER} -g {WEB_USER} -m 750 {}",
                sd.display()
            ),
        ));
    }
    let owner = meta.uid();
    if owner == 0 {
        let give = format!("chown -R {WEB_USER}: {} (as the package sets it up)", sd.display());
        if meta.mode() & 0o022 != 0 {
            return Err(refused(
                format!(
                    "state_dir {} is root's but others can write it (mode {:04o}), so what is in it need not be root's doing",
                    sd.display(),
                    meta.mode() & 0o7777
                ),
                format!("{give}, or: chmod go-w {}", sd.display()),
            ));
        }
        only_root_controls(sd).map_err(|why| {
            refused(
                format!(
                    "state_dir {} is root's, but {why}, so it could be swapped for another folder",
                    sd.display()
                ),
                give.clone(),
            )
        })?;
    }
    // Whose each hook is. A hook folder not made yet has nothing to read and says nothing
    // (it is made later, as whoever this decides); with none at all, the state dir's owner.
    let mut owners: Vec<(PathBuf, u32)> = Vec::new();
    for hook in hooks {
        let folder = sd.join(hook);
        if let Some(uid) = hook_folder_owner(sd, owner, &folder)? {
            owners.push((folder, uid));
        }
    }
    if owners.is_empty() {
        owners.push((sd.to_path_buf(), owner));
    }
    let (folder, uid) = owners[0].clone();
    if owners.iter().any(|(_, u)| *u != uid) {
        let list: Vec<String> = owners
            .iter()
            .map(|(f, u)| format!("{} is {}'s", f.display(), name_of(*u)))
            .collect();
        return Err(refused(
            format!(
                "the hooks' state folders belong to different users ({})",
                list.join(", ")
            ),
            "name one hook, or run the command as that hook's user: runuser -u USER -- deploy-hook ...".to_string(),
        ));
    }
    if uid == 0 {
        return Ok(Whom::Root);
    }
    user_by_uid(uid).map(Whom::User).ok_or_else(|| {
        refused(
            format!(
                "{} belongs to uid {uid}, which has no passwd entry (a user without a name cannot be switched to properly)",
                folder.display()
            ),
            format!(
                "chown -R {WEB_USER}: {} (the user the web server runs deploy-hook as)",
                folder.display()
            ),
        )
    })
}

/// The web server's user that the fixes name: Debian's.
const WEB_USER: &str = "www-data";

fn refused(why: String, fix: String) -> Error {
    Error::Refused { why, fix }
}

/// A user's name for a message ("uid N" when passwd has none).
fn name_of(uid: u32) -> String {
    user_by_uid(uid).map(|u| u.name).unwrap_or_else(|| format!("uid {uid}"))
}

/// " (to TARGET)" for a message about a symlink.
fn link_target(path: &Path) -> String {
    std::fs::read_link(path)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default()
}

/// The uid a hook's state folder says to become, checked by `lstat` (never through a
/// symlink); `None` when it does not exist yet. `sd_owner` is the state dir's owner; when
/// it is root, only root can have made what is in it (checked before).
fn hook_folder_owner(sd: &Path, sd_owner: u32, folder: &Path) -> Result<Option<u32>> {
    let meta = match std::fs::symlink_metadata(folder) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("cannot read {}", folder.display()), e)),
    };
    let writers = if sd_owner == 0 {
        "root alone".to_string()
    } else {
        format!("{}, and so every build step", name_of(sd_owner))
    };
    let run_as = format!(
        "runuser -u {} -- deploy-hook ...",
        if sd_owner == 0 {
            WEB_USER.to_string()
        } else {
            name_of(sd_owner)
        }
    );
    if meta.file_type().is_symlink() {
        return Err(refused(
            format!(
                "{} is a symbolic link{}, not a folder: whoever can write {} ({writers}) can put one there to choose whom a command run as root becomes",
                folder.display(),
                link_target(folder),
                sd.display()
            ),
            format!(
                "rm {} (the next build makes the folder again), or run the command as the web server's user: {run_as}",
                folder.display()
            ),
        ));
    }
    if !meta.is_dir() {
        return Err(refused(
            format!("{} is not a folder", folder.display()),
            format!("rm {} (the next build makes the folder again)", folder.display()),
        ));
    }
    let uid = meta.uid();
    if sd_owner != 0 && uid != sd_owner {
        let owner = name_of(sd_owner);
        return Err(refused(
            format!(
                "{} belongs to {}, not to {owner}, the owner of {}: only the state dir's owner's own folder says whom to run as",
                folder.display(),
                name_of(uid),
                sd.display()
            ),
            format!("chown -R {owner}: {}", folder.display()),
        ));
    }
    if uid == 0 {
        root_throughout(folder)?;
    }
    Ok(Some(uid))
}

/// A hook folder root stays root for: no one else may write it, and nothing in it is
/// another user's (a build log, the steps' HOME with its .gitconfig, ...), since root would
/// use all of that.
fn root_throughout(folder: &Path) -> Result<()> {
    let fix = format!(
        "chown -R {WEB_USER}: {} (commands started as root then run as {WEB_USER}), or make it root's alone: chown -R root: {} && chmod go-w {}",
        folder.display(),
        folder.display(),
        folder.display()
    );
    let mode = std::fs::symlink_metadata(folder)
        .map_err(|e| Error::io(format!("cannot read {}", folder.display()), e))?
        .mode();
    if mode & 0o022 != 0 {
        return Err(refused(
            format!(
                "{} is root's but others can write it (mode {:04o})",
                folder.display(),
                mode & 0o7777
            ),
            fix,
        ));
    }
    let entries = std::fs::read_dir(folder).map_err(|e| Error::io(format!("cannot read {}", folder.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot read {}", folder.display()), e))?;
        let path = entry.path();
        // DirEntry::metadata does not follow a symlink. An entry gone meanwhile (the
        // temporary file of a state write, renamed into place) has nothing to use.
        let m = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let others_write = m.is_dir() && m.mode() & 0o022 != 0;
        if m.uid() != 0 || others_write {
            return Err(refused(
                format!(
                    "{} is root's, but {} in it is {}",
                    folder.display(),
                    path.display(),
                    if others_write {
                        "a folder others can write".to_string()
                    } else {
                        format!("{}'s", name_of(m.uid()))
                    }
                ),
                fix,
            ));
        }
    }
    Ok(())
}

/// Whether root alone decides what `path` names: each folder on the way to it (through
/// any symlink on the way) is root's and writable by root only, or, like /tmp, sticky with
/// the entry in it root's. A missing part must be in such a folder (then only root can make
/// it); the last part may be a file. The error says which folder someone else can change.
fn only_root_controls(path: &Path) -> std::result::Result<(), String> {
    use std::collections::VecDeque;
    use std::path::Component;
    /// A part of a path still to walk, owned (a symlink's target joins the queue).
    enum Part {
        Root,
        Up,
        Name(std::ffi::OsString),
    }
    let parts = |p: &Path| -> Vec<Part> {
        p.components()
            .filter_map(|c| match c {
                Component::RootDir => Some(Part::Root),
                Component::ParentDir => Some(Part::Up),
                Component::Normal(n) => Some(Part::Name(n.to_os_string())),
                Component::CurDir | Component::Prefix(_) => None,
            })
            .collect()
    };
    let path = std::path::absolute(path).map_err(|e| format!("cannot tell where {} is ({e})", path.display()))?;
    let mut todo: VecDeque<Part> = parts(&path).into();
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        let name = match part {
            Part::Root => {
                cur = PathBuf::from("/");
                continue;
            }
            Part::Up => {
                // `cur` holds no symlink, so its parent is what ".." names.
                cur.pop();
                continue;
            }
            Part::Name(n) => n,
        };
        let next = cur.join(&name);
        let dir = std::fs::symlink_metadata(&cur).map_err(|e| format!("{} cannot be read ({e})", cur.display()))?;
        let entry = match std::fs::symlink_metadata(&next) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{} cannot be read ({e})", next.display())),
        };
        // Whoever can write `cur` decides what `next` is.
        if dir.uid() != 0 {
            return Err(format!("{} belongs to {}", cur.display(), name_of(dir.uid())));
        }
        let sticky_guards = dir.mode() & 0o1000 != 0 && entry.as_ref().is_some_and(|m| m.uid() == 0);
        if dir.mode() & 0o022 != 0 && !sticky_guards {
            return Err(format!(
                "{} can be written by others than root (mode {:04o})",
                cur.display(),
                dir.mode() & 0o7777
            ));
        }
        match entry {
            // Only root can make it, and then everything under it.
            None => return Ok(()),
            Some(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(format!("{} has too many symbolic links on the way", path.display()));
                }
                let target =
                    std::fs::read_link(&next).map_err(|e| format!("{} cannot be read ({e})", next.display()))?;
                for part in parts(&target).into_iter().rev() {
                    todo.push_front(part);
                }
            }
            Some(m) if m.is_dir() => cur = next,
            // A file at the end (a symlink's chain can end at a program): root alone decided
            // which file it is; whether it is root's is the caller's question.
            Some(_) if todo.is_empty() => return Ok(()),
            Some(_) => return Err(format!("{} is not a folder", next.display())),
        }
    }
    Ok(())
}

/// Becomes `user` for good: supplementary groups, group, then user (the order matters: only
/// root may set groups). Sets `HOME`, `USER` and `LOGNAME` to the account's, so nothing we
/// run later looks into root's home. Checks that root cannot be regained.
pub fn become_user(user: &User) -> Result<()> {
    let fail = |what: &str| {
        Error::io(
            format!("cannot become user {} ({what})", user.name),
            std::io::Error::last_os_error(),
        )
    };
    let name = CString::new(user.name.as_str()).map_err(|_| fail("a name with a NUL byte"))?;
    // SAFETY: plain system calls on valid arguments; each result is checked.
    unsafe {
        if libc::initgroups(name.as_ptr(), user.gid as _) != 0 {
            return Err(fail("initgroups"));
        }
        if libc::setgid(user.gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::setuid(user.uid) != 0 {
            return Err(fail("setuid"));
        }
        if user.uid != 0 && (libc::setuid(0) == 0 || libc::geteuid() != user.uid || libc::getegid() != user.gid) {
            return Err(fail("root could be regained"));
        }
    }
    // Single-threaded here (a subcommand, before any work); children get a cleared
    // environment anyway, this is for anything in this process that looks at HOME.
    std::env::set_var("HOME", &user.home);
    std::env::set_var("USER", &user.name);
    std::env::set_var("LOGNAME", &user.name);
    Ok(())
}

/// A hook a command started as root works on: its name, and the paths it would run in or
/// write as root besides its state folder (the checkout, the local publish target), each
/// with what the config calls it.
pub struct HookPaths<'a> {
    pub name: &'a str,
    pub paths: Vec<(&'static str, PathBuf)>,
    /// What else it would read or run as root, that the config names (`alone::Read`).
    pub reads: Vec<Read>,
}

/// Started as root: becomes whom `decide` names for `hooks` (see there), before anything of
/// them is read or written. Staying root also needs each hook's paths to be root's alone
/// (`alone::root_alone`), or the command refuses. Returns who we became; `None` when
/// nothing changed (not root, or everything of these hooks is root's alone).
pub fn become_owner(state_dir: &Path, hooks: &[HookPaths]) -> Result<Option<User>> {
    if euid() != 0 {
        return Ok(None);
    }
    let names: Vec<&str> = hooks.iter().map(|h| h.name).collect();
    match decide(state_dir, &names)? {
        Whom::Root => {
            for h in hooks {
                alone::root_alone(h.name, state_dir, &h.paths)?;
                alone::reads_root_alone(h.name, state_dir, &h.paths, &h.reads)?;
            }
            Ok(None)
        }
        Whom::User(u) => {
            become_user(&u)?;
            Ok(Some(u))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_its_name_are_found_both_ways() {
        let root = user_by_uid(0).unwrap();
        assert_eq!(root.name, "root");
        assert_eq!(user_by_name("root"), Some(root));
        assert_eq!(user_by_name("no-such-user-here"), None);
    }

    /// A throwaway folder, root's and 0755 in sticky /tmp (so root alone controls it),
    /// removed when dropped. The tests chown, so they need root.
    struct Tmp(PathBuf);
    impl Tmp {
        fn new(name: &str) -> Option<Tmp> {
            if euid() != 0 {
                eprintln!("SKIPPED privilege::{name}: it needs root (it gives folders to other users)");
                return None;
            }
            let dir = std::env::temp_dir().join(format!("dh-priv-{name}-{}", std::process::id()));
            std::fs::remove_dir_all(&dir).ok();
            std::fs::create_dir(&dir).unwrap();
            set_mode(&dir, 0o755);
            Some(Tmp(dir))
        }
        /// A folder at `rel`, owned by `uid`, with `mode`.
        fn dir(&self, rel: &str, uid: u32, mode: u32) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::create_dir(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
            set_mode(&p, mode);
            p
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    fn set_mode(p: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn www() -> User {
        user_by_name("www-data").expect("a www-data user (Debian has one)")
    }

    /// The refusal's words, or a panic saying what was decided instead.
    fn refusal(r: Result<Whom>) -> String {
        match r {
            Err(e @ Error::Refused { .. }) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_state_dir_of_www_data_means_www_data_and_its_hook_folders_must_be_its_own() {
        let Some(t) = Tmp::new("www") else { return };
        let w = www();
        let sd = t.dir("state", w.uid, 0o750);
        // First run: no hook folder yet.
        assert_eq!(decide(&sd, &["docs"]).unwrap(), Whom::User(w.clone()));
        assert_eq!(decide(&sd, &[]).unwrap(), Whom::User(w.clone()));
        t.dir("state/docs", w.uid, 0o750);
        assert_eq!(decide(&sd, &["docs", "new"]).unwrap(), Whom::User(w.clone()));

        // The attack: a root-owned folder anyone may write, and the hook folder swapped for
        // a symlink to it.
        let evil = t.dir("evil", 0, 0o1777);
        std::fs::rename(sd.join("docs"), sd.join("docs.old")).unwrap();
        std::os::unix::fs::symlink(&evil, sd.join("docs")).unwrap();
        let why = refusal(decide(&sd, &["docs"]));
        assert!(
            why.contains(&format!(
                "{} is a symbolic link (to {})",
                sd.join("docs").display(),
                evil.display()
            )),
            "{why}"
        );
        assert!(why.contains(&format!("fix: rm {}", sd.join("docs").display())), "{why}");
        // Every hook at once (status, check) sees it too.
        refusal(decide(&sd, &["new", "docs"]));
        std::fs::remove_file(sd.join("docs")).unwrap();

        // A root-owned folder (left by an older root run, or renamed there), another
        // user's, a uid without a name, a file: refused, with the chown to apply.
        for (uid, says) in [
            (0, "belongs to root, not to www-data"),
            (65534, "belongs to nobody, not to www-data"),
            (4_000_017, "belongs to uid 4000017, not to www-data"),
        ] {
            let f = t.dir("state/docs", uid, 0o750);
            let why = refusal(decide(&sd, &["docs"]));
            assert!(why.contains(says), "{why}");
            assert!(
                why.contains(&format!("fix: chown -R www-data: {}", f.display())),
                "{why}"
            );
            std::fs::remove_dir(&f).unwrap();
        }
        std::fs::write(sd.join("docs"), "").unwrap();
        assert!(refusal(decide(&sd, &["docs"])).contains("is not a folder"));
    }

    #[test]
    fn a_state_dir_only_root_can_change_trusts_its_real_hook_folders() {
        let Some(t) = Tmp::new("root") else { return };
        let w = www();
        let sd = t.dir("state", 0, 0o755);
        // Missing or root's own: root stays root (nobody else can have made them).
        assert_eq!(decide(&sd, &["docs"]).unwrap(), Whom::Root);
        let docs = t.dir("state/docs", 0, 0o750);
        std::fs::create_dir(docs.join("home")).unwrap();
        assert_eq!(decide(&sd, &["docs"]).unwrap(), Whom::Root);
        // A www-data folder root put there: www-data.
        let blog = t.dir("state/blog", w.uid, 0o750);
        assert_eq!(decide(&sd, &["blog"]).unwrap(), Whom::User(w.clone()));
        // A hook folder not made yet says nothing when others do.
        assert_eq!(decide(&sd, &["blog", "new"]).unwrap(), Whom::User(w.clone()));
        // Hooks of different users at once (status, check): refused, naming them.
        let why = refusal(decide(&sd, &["docs", "blog"]));
        assert!(why.contains("belong to different users"), "{why}");
        assert!(why.contains(&format!("{} is www-data's", blog.display())), "{why}");
        // Root's folder holding another user's HOME (with its .gitconfig): not root's alone.
        std::os::unix::fs::chown(docs.join("home"), Some(w.uid), None).unwrap();
        let why = refusal(decide(&sd, &["docs"]));
        assert!(
            why.contains(&format!("{} in it is www-data's", docs.join("home").display())),
            "{why}"
        );
        std::os::unix::fs::chown(docs.join("home"), Some(0), None).unwrap();
        set_mode(&docs, 0o770);
        assert!(refusal(decide(&sd, &["docs"])).contains("others can write it (mode 0770)"));
        set_mode(&docs, 0o750);
        // A symlink is refused here too, though only root could have made it.
        std::os::unix::fs::symlink(&blog, sd.join("link")).unwrap();
        assert!(refusal(decide(&sd, &["link"])).contains("is a symbolic link"));
        // A uid with no name cannot be become.
        let ghost = t.dir("state/ghost", 4_000_017, 0o750);
        let why = refusal(decide(&sd, &["ghost"]));
        assert!(
            why.contains(&format!(
                "{} belongs to uid 4000017, which has no passwd entry",
                ghost.display()
            )),
            "{why}"
        );

        // The state dir others can write: its entries are theirs to choose.
        for mode in [0o775, 0o757, 0o1777] {
            set_mode(&sd, mode);
            let why = refusal(decide(&sd, &["blog"]));
            assert!(why.contains("is root's but others can write it"), "{mode:o}: {why}");
            assert!(why.contains("chown -R www-data:"), "{why}");
        }
        set_mode(&sd, 0o755);
    }

    #[test]
    fn a_state_dir_that_is_a_symlink_or_missing_under_a_folder_others_write_is_refused() {
        let Some(t) = Tmp::new("above") else { return };
        let w = www();
        // Missing, in a folder only root writes: root makes it.
        assert_eq!(decide(&t.0.join("state"), &["docs"]).unwrap(), Whom::Root);
        assert_eq!(decide(&t.0.join("a/b/state"), &["docs"]).unwrap(), Whom::Root);
        // Missing, in www-data's folder: www-data's to make, so www-data.
        let shared = t.dir("shared", w.uid, 0o755);
        assert_eq!(decide(&shared.join("state"), &["docs"]).unwrap(), Whom::User(w.clone()));
        assert_eq!(decide(&shared.join("a/state"), &[]).unwrap(), Whom::User(w.clone()));
        // Missing, in a sticky folder of root's, or through a symlink to www-data's folder:
        // someone else could make it first.
        let tmp = t.dir("tmp", 0, 0o1777);
        let why = refusal(decide(&tmp.join("state"), &["docs"]));
        assert!(why.contains("can be written by others than root (mode 1777)"), "{why}");
        assert!(why.contains("install -d -o www-data -g www-data -m 750"), "{why}");
        let to_shared = t.0.join("to-shared");
        std::os::unix::fs::symlink(&shared, &to_shared).unwrap();
        let why = refusal(decide(&to_shared.join("state"), &["docs"]));
        assert!(
            why.contains(&format!("{} belongs to www-data", shared.display())),
            "{why}"
        );
        // Root's state dir, but in www-data's folder: it could be swapped for another.
        let sd = shared.join("state");
        std::fs::create_dir(&sd).unwrap();
        let why = refusal(decide(&sd, &["docs"]));
        assert!(why.contains("so it could be swapped"), "{why}");
        // www-data's own state dir in its own folder: www-data either way.
        std::os::unix::fs::chown(&sd, Some(w.uid), None).unwrap();
        assert_eq!(decide(&sd, &["docs"]).unwrap(), Whom::User(w.clone()));

        // The state dir itself a symlink: refused, whoever made it.
        let real = t.dir("real", w.uid, 0o750);
        let link = t.0.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let why = refusal(decide(&link, &["docs"]));
        assert!(
            why.contains(&format!(
                "state_dir {} is a symbolic link (to {})",
                link.display(),
                real.display()
            )),
            "{why}"
        );
        // A symlink above the state dir is followed, and what it leads through is checked.
        let via = t.0.join("via");
        std::os::unix::fs::symlink(&shared, &via).unwrap();
        std::os::unix::fs::chown(&sd, Some(0), None).unwrap();
        assert!(refusal(decide(&via.join("state"), &["docs"]))
            .contains(&format!("{} belongs to www-data", shared.display())));
        let root_via = t.0.join("root-via");
        std::os::unix::fs::symlink("a/../real-root", &root_via).unwrap();
        t.dir("a", 0, 0o755);
        t.dir("real-root", 0, 0o755);
        t.dir("real-root/state", 0, 0o755);
        assert_eq!(decide(&root_via.join("state"), &["docs"]).unwrap(), Whom::Root);
    }

    #[test]
    fn staying_root_needs_the_paths_to_be_roots_throughout() {
        let Some(t) = Tmp::new("alone") else { return };
        let w = www();
        let sd = t.dir("state", 0, 0o755);
        let repo = t.dir("repo", 0, 0o755);
        std::fs::create_dir_all(repo.join("node_modules/.bin")).unwrap();
        std::fs::write(repo.join("package.json"), "{}").unwrap();
        std::os::unix::fs::symlink("../../package.json", repo.join("node_modules/.bin/x")).unwrap();
        let paths = |p: &Path| vec![("repo", p.to_path_buf()), ("publish.to", t.0.join("www/site"))];
        // Root's throughout, a symlink inside, a publish target not made yet: fine.
        alone::root_alone("docs", &sd, &paths(&repo)).unwrap();
        // A file www-data owns, a folder its group may write, a symlink out to its folder.
        std::os::unix::fs::chown(repo.join("package.json"), Some(w.uid), None).unwrap();
        let why = refusal(alone::root_alone("docs", &sd, &paths(&repo)).map(|()| Whom::Root));
        assert!(why.contains("package.json is www-data's"), "{why}");
        assert!(why.contains("install -d -o www-data -g www-data -m 750"), "{why}");
        std::os::unix::fs::chown(repo.join("package.json"), Some(0), None).unwrap();
        set_mode(&repo.join("node_modules"), 0o775);
        let why = refusal(alone::root_alone("docs", &sd, &paths(&repo)).map(|()| Whom::Root));
        assert!(
            why.contains("node_modules can be written by others than root (mode 0775)"),
            "{why}"
        );
        set_mode(&repo.join("node_modules"), 0o755);
        let theirs = t.dir("theirs", w.uid, 0o755);
        std::fs::write(theirs.join("bin.js"), "").unwrap();
        std::os::unix::fs::symlink(theirs.join("bin.js"), repo.join("node_modules/.bin/y")).unwrap();
        let why = refusal(alone::root_alone("docs", &sd, &paths(&repo)).map(|()| Whom::Root));
        assert!(
            why.contains(&format!("leads to {}", theirs.join("bin.js").display())),
            "{why}"
        );
        std::fs::remove_file(repo.join("node_modules/.bin/y")).unwrap();
        // The folder that will hold the publish target is www-data's: it could put a
        // symlink there for root to write through.
        let www = t.dir("www", w.uid, 0o755);
        let why = refusal(alone::root_alone("docs", &sd, &paths(&repo)).map(|()| Whom::Root));
        assert!(why.contains(&format!("{} belongs to www-data", www.display())), "{why}");
    }
}
