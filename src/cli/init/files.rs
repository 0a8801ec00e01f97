//! The files and folders `init` makes as root for another user: never through a symlink
//! that user could have planted (each folder is made and opened relative to the one above
//! it, chowned through its own descriptor), and the config replaced by rename.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys::privilege::{self, User};

/// Creates a new file (never replacing one) with `mode`, owned by `owner`.
pub(super) fn write_new(path: &Path, bytes: &[u8], mode: u32, owner: Option<&User>) -> Result<()> {
    let err = |e| Error::io(format!("cannot write {}", path.display()), e);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    if let Some(u) = owner {
        std::os::unix::fs::fchown(&f, Some(u.uid), Some(u.gid)).map_err(err)?;
    }
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(err)
}

/// Replaces the config by rename, keeping its owner and mode (a new one is 0644: www-data
/// reads it; secrets live in their own files).
pub(super) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |e| Error::io(format!("cannot write {}", path.display()), e);
    let (mode, owner) = match fs::metadata(path) {
        Ok(m) => (m.permissions().mode() & 0o7777, Some((m.uid(), m.gid()))),
        Err(_) => (0o644, None),
    };
    let tmp = path.with_extension(format!("toml.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        fs::remove_file(&tmp).ok();
    }
    result.map_err(err)
}

/// The highest of `dir` and the folders above it that is missing (what `make_parents` and
/// `make_dir_for` make), if any.
pub(super) fn highest_missing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err())
        .last()
        .map(Path::to_path_buf)
}

/// Makes the folders above `dir` (as root's, 0755), so that `dir` itself can be the user's.
pub(super) fn make_parents(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
    }
    Ok(())
}

/// Makes `dir` owned by `user` when it is missing; true when it made it. An existing
/// folder (or symlink) is left as it is (`check` says when its owner is wrong).
pub(super) fn make_dir_for(dir: &Path, user: &User, mode: u32) -> Result<bool> {
    make_dir_at(&open_dir(dir.parent().unwrap_or(Path::new("/")))?, dir, user, mode)
}

/// A folder opened for the `*at` calls below.
pub(super) fn open_dir(dir: &Path) -> Result<fs::File> {
    fs::File::open(dir).map_err(|e| Error::io(format!("cannot open {}", dir.display()), e))
}

/// Makes `path` (its last part, in the open folder `parent`) owned by `user` with `mode`,
/// when nothing is there; true when it made it. The chown and chmod go to the folder made,
/// through a descriptor opened without following a symlink: a path looked up again could
/// have been swapped for a symlink to any file of root's in between.
pub(super) fn make_dir_at(parent: &fs::File, path: &Path, user: &User, mode: u32) -> Result<bool> {
    use std::os::fd::AsRawFd;
    let err = |e| Error::io(format!("cannot create {}", path.display()), e);
    let name = c_name(path)?;
    // SAFETY: mkdirat with a valid descriptor and a NUL-terminated name; the result is checked.
    if unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Ok(false);
        }
        return Err(err(e));
    }
    let dir = openat_dir(parent, &name).map_err(err)?;
    let meta = dir.metadata().map_err(err)?;
    if meta.uid() != privilege::euid() {
        return Err(Error::Internal(format!(
            "{} was replaced while it was being made",
            path.display()
        )));
    }
    std::os::unix::fs::fchown(&dir, Some(user.uid), Some(user.gid)).map_err(err)?;
    dir.set_permissions(fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(true)
}

/// Opens the folder `path` (its last part, in the open folder `parent`), refusing a
/// symlink or anything else that is not a folder; `fix` says what to do then.
pub(super) fn open_dir_at(parent: &fs::File, path: &Path, fix: &str) -> Result<fs::File> {
    let name = c_name(path)?;
    openat_dir(parent, &name).map_err(|e| match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Error::Refused {
            why: format!(
                "{} is a symbolic link{}, not a folder: whoever can write {} can put one there to have root make the hook's state where it points",
                path.display(),
                fs::read_link(path)
                    .map(|t| format!(" (to {})", t.display()))
                    .unwrap_or_default(),
                path.parent().unwrap_or(Path::new("/")).display()
            ),
            fix: fix.to_string(),
        },
        Ok(m) if !m.is_dir() => Error::Refused {
            why: format!("{} is not a folder", path.display()),
            fix: fix.to_string(),
        },
        _ => Error::io(format!("cannot open {}", path.display()), e),
    })
}

/// openat(2) of a folder, not following a symlink at `name`.
pub(super) fn openat_dir(parent: &fs::File, name: &CString) -> std::io::Result<fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat with a valid descriptor and a NUL-terminated name; the result is checked.
    let fd = unsafe { libc::openat(parent.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

/// The last part of `path`, for the `*at` calls.
pub(super) fn c_name(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    path.file_name()
        .and_then(|n| CString::new(n.as_bytes()).ok())
        .ok_or_else(|| Error::Usage(format!("{} does not name a folder", path.display())))
}
