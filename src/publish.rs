//! Atomic publish: the build output is copied into a new release folder, and the served
//! path (`to`, a symlink) is switched to it with one rename(2). A web server serving `to`
//! sees the old site or the new one, never a missing or half-copied one.
//!
//! ```text
//! /var/www/docs            -> docs.releases/20261128-004015-123-1a2b3c4   (symlink)
//! /var/www/docs.releases/  one folder per release, newest last by name
//! ```

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Publish;
use crate::time;

pub struct Published {
    pub release: String,
    /// Something the log should say (a first publish over a real directory).
    pub note: Option<String>,
}

/// The folder that holds the releases of `to`: `<to>.releases` beside it.
pub fn releases_dir(to: &Path) -> PathBuf {
    let mut name = to.file_name().map(OsString::from).unwrap_or_default();
    name.push(".releases");
    to.with_file_name(name)
}

/// The release `to` points at now.
pub fn live(to: &Path) -> Option<String> {
    let target = fs::read_link(to).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// The finished releases, oldest first.
pub fn list(to: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(releases_dir(to))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: two valid C strings; renameat2 with RENAME_EXCHANGE swaps the two names.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Points `to` at `release` in one step. Returns a note when a real directory had to be
/// moved aside (the first publish over an existing site).
pub fn switch(to: &Path, release: &str) -> io::Result<Option<String>> {
    let dir = releases_dir(to);
    if !dir.join(release).is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no release {release} in {}", dir.display()),
        ));
    }
    let rel_target = Path::new(dir.file_name().unwrap_or_default()).join(release);
    let parent = to.parent().unwrap_or(Path::new("/"));
    let tmp = parent.join(format!(
        ".{}.switch-{}",
        to.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&rel_target, &tmp)?;
    match fs::symlink_metadata(to) {
        Ok(m) if m.is_dir() => {
            // A real directory: swap it with the new symlink atomically, then keep it as
            // the oldest release so a rollback can still reach it.
            rename_exchange(&tmp, to).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })?;
            let kept = format!("{}-before-deploy-hook", time::compact(time::now()));
            let kept = format!("0000-{kept}");
            fs::rename(&tmp, dir.join(&kept))?;
            Ok(Some(format!(
                "{} was a directory; it is kept as release {kept}",
                to.display()
            )))
        }
        Ok(m) if !m.file_type().is_symlink() => {
            let _ = fs::remove_file(&tmp);
            Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is neither a symlink nor a directory", to.display()),
            ))
        }
        _ => {
            fs::rename(&tmp, to).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })?;
            Ok(None)
        }
    }
}

/// Copies `from` into a new release and switches `to` to it; prunes old releases.
pub fn publish(from: &Path, cfg: &Publish, commit: Option<&str>) -> io::Result<Published> {
    if !from.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} is not a folder after the steps: is publish.from right?",
                from.display()
            ),
        ));
    }
    let dir = releases_dir(&cfg.to);
    fs::create_dir_all(&dir)?;
    // A build killed while copying leaves its staging folder; the lock says none is copying now.
    for e in fs::read_dir(&dir)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(".staging-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    let short = commit.map(|c| &c[..c.len().min(7)]).unwrap_or("nocommit");
    let release = format!("{}-{short}", time::compact(time::now()));
    let staging = dir.join(format!(".staging-{release}"));
    let _ = fs::remove_dir_all(&staging);
    copy_tree(from, &staging).inspect_err(|_| {
        let _ = fs::remove_dir_all(&staging);
    })?;
    fs::rename(&staging, dir.join(&release))?;
    let before = live(&cfg.to);
    let note = switch(&cfg.to, &release)?;
    prune(&cfg.to, cfg.keep, before.as_deref());
    Ok(Published { release, note })
}

/// Removes the oldest releases beyond `keep`, never the live one, nor the one before it,
/// nor `was_live` (the release live before this publish: after a rollback to an old
/// release, that is the known-good one to go back to).
pub fn prune(to: &Path, keep: usize, was_live: Option<&str>) {
    let all = list(to);
    let live = live(to);
    let live_idx = live.as_ref().and_then(|l| all.iter().position(|r| r == l));
    let protected = |i: usize| live_idx.is_some_and(|l| i == l || i + 1 == l) || was_live == Some(all[i].as_str());
    let mut excess = all.len().saturating_sub(keep);
    let dir = releases_dir(to);
    for (i, name) in all.iter().enumerate() {
        if excess == 0 {
            break;
        }
        if protected(i) {
            continue;
        }
        if fs::remove_dir_all(dir.join(name)).is_ok() {
            excess -= 1;
        }
    }
}

/// The release a rollback goes to: `--to NAME`, else the one before the live one.
pub fn rollback_target(to: &Path, named: Option<&str>) -> Result<String, String> {
    let all = list(to);
    if let Some(n) = named {
        return if all.iter().any(|r| r == n) {
            Ok(n.to_string())
        } else {
            Err(format!("no release named {n}; releases: {}", all.join(", ")))
        };
    }
    let live = live(to).ok_or_else(|| format!("{} is not a published release yet", to.display()))?;
    let idx = all
        .iter()
        .position(|r| *r == live)
        .ok_or_else(|| format!("the live release {live} is not in {}", releases_dir(to).display()))?;
    if idx == 0 {
        return Err(format!(
            "{live} is the oldest release; there is nothing to roll back to"
        ));
    }
    Ok(all[idx - 1].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dh-publish-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn publish_switches_and_keeps_the_live_and_previous() {
        let d = temp("keep");
        let from = d.join("dist");
        fs::create_dir_all(from.join("sub")).unwrap();
        let cfg = Publish {
            from: "dist".into(),
            to: d.join("www"),
            keep: 2,
        };
        let mut names = vec![];
        for i in 0..4 {
            fs::write(from.join("index.html"), format!("v{i}")).unwrap();
            fs::write(from.join("sub/a.txt"), "a").unwrap();
            let p = publish(&from, &cfg, Some(&format!("abcdef{i}0000"))).unwrap();
            assert_eq!(fs::read_to_string(cfg.to.join("index.html")).unwrap(), format!("v{i}"));
            assert_eq!(live(&cfg.to).unwrap(), p.release);
            names.push(p.release);
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        assert_eq!(list(&cfg.to), names[2..].to_vec());
        let back = rollback_target(&cfg.to, None).unwrap();
        assert_eq!(back, names[2]);
        switch(&cfg.to, &back).unwrap();
        assert_eq!(fs::read_to_string(cfg.to.join("index.html")).unwrap(), "v2");
        assert!(rollback_target(&cfg.to, None).is_err(), "nothing older is kept");
        assert!(rollback_target(&cfg.to, Some("nope")).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn first_publish_over_a_real_directory_keeps_it() {
        let d = temp("first");
        fs::create_dir_all(d.join("www")).unwrap();
        fs::write(d.join("www/index.html"), "old site").unwrap();
        fs::create_dir_all(d.join("dist")).unwrap();
        fs::write(d.join("dist/index.html"), "new site").unwrap();
        let cfg = Publish {
            from: "dist".into(),
            to: d.join("www"),
            keep: 5,
        };
        let p = publish(&d.join("dist"), &cfg, None).unwrap();
        assert!(p.note.unwrap().contains("kept as release"));
        assert_eq!(fs::read_to_string(d.join("www/index.html")).unwrap(), "new site");
        let prev = rollback_target(&cfg.to, None).unwrap();
        switch(&cfg.to, &prev).unwrap();
        assert_eq!(fs::read_to_string(d.join("www/index.html")).unwrap(), "old site");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_output_is_an_error_and_changes_nothing() {
        let d = temp("missing");
        let cfg = Publish {
            from: "dist".into(),
            to: d.join("www"),
            keep: 5,
        };
        assert!(publish(&d.join("dist"), &cfg, None).is_err());
        assert!(fs::symlink_metadata(d.join("www")).is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
