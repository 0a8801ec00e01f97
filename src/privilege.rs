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
//! Nothing here runs in CGI mode: the web server never starts us as root.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

/// The folder whose owner a hook's files belong to: the hook's state folder, or, before
/// its first delivery, the state dir that will hold it.
pub fn owner_folder(state_dir: &Path, hook: Option<&str>) -> Option<PathBuf> {
    hook.map(|h| state_dir.join(h))
        .into_iter()
        .chain(std::iter::once(state_dir.to_path_buf()))
        .find(|p| p.is_dir())
}

/// The account that owns `folder` (a uid with no passwd entry cannot be switched to
/// properly, since initgroups needs a name: that is an error, not a silent root run).
pub fn owner_of(folder: &Path) -> Result<User> {
    let meta = std::fs::metadata(folder).map_err(|e| Error::io(format!("cannot read {}", folder.display()), e))?;
    user_by_uid(meta.uid()).ok_or_else(|| {
        Error::io(
            format!(
                "{} belongs to uid {}, which has no passwd entry; chown it to the web server's user",
                folder.display(),
                meta.uid()
            ),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })
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

/// Started as root, and the hook's state folder (or the state dir) belongs to another user:
/// become that user. Returns who we became; `None` when nothing changed (not root, root's
/// own folders, or no folder yet to learn the owner from).
pub fn become_owner(state_dir: &Path, hook: Option<&str>) -> Result<Option<User>> {
    if euid() != 0 {
        return Ok(None);
    }
    let Some(folder) = owner_folder(state_dir, hook) else {
        return Ok(None);
    };
    let owner = owner_of(&folder)?;
    if owner.uid == 0 {
        return Ok(None);
    }
    become_user(&owner)?;
    Ok(Some(owner))
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

    #[test]
    fn the_hook_folder_wins_over_the_state_dir() {
        let dir = std::env::temp_dir().join(format!("dh-priv-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        assert_eq!(owner_folder(&dir, Some("docs")), Some(dir.join("docs")));
        assert_eq!(owner_folder(&dir, Some("other")), Some(dir.clone()));
        assert_eq!(owner_folder(&dir.join("missing"), Some("docs")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
