//! Atomic publish: the build output becomes a new release folder, and the served path
//! (`to`, a symlink) is switched to it with one rename(2). A web server serving `to` sees
//! the old site or the new one, never a missing or half-copied one.
//!
//! A release costs only what changed: a file identical to the same path in the live
//! release is a hard link to it. Releases are immutable, so sharing is safe: publish only
//! ever creates new names and new inodes, and never opens an existing file for writing.
//! Nothing in a release points outside it (`resolve_from`, `resolve_inside`).
//!
//! ```text
//! /var/www/docs            -> docs.releases/20261128-004015-123-1a2b3c4   (symlink)
//! /var/www/docs.releases/  one folder per release, newest last by name
//! ```

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::releases;
use super::{resolve_inside, LocalError};
use crate::sys::time;

/// What a publish cost: files shared with the live release, files written anew.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub linked: u64,
    pub copied: u64,
    pub copied_bytes: u64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files shared with the live release, {} written ({} KiB)",
            self.linked,
            self.copied,
            self.copied_bytes.div_ceil(1024)
        )
    }
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

/// True when the regular file `live` has the same size, mode and content as `new`.
fn same_file(new: &Path, new_meta: &fs::Metadata, live: &Path, bufs: &mut (Vec<u8>, Vec<u8>)) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(old_meta) = fs::symlink_metadata(live) else {
        return false;
    };
    if !old_meta.is_file()
        || old_meta.len() != new_meta.len()
        || old_meta.permissions().mode() != new_meta.permissions().mode()
    {
        return false;
    }
    let (Ok(mut a), Ok(mut b)) = (fs::File::open(new), fs::File::open(live)) else {
        return false;
    };
    let (ba, bb) = (&mut bufs.0, &mut bufs.1);
    loop {
        let n = match a.read(ba) {
            Ok(0) => return b.read(&mut bb[..1]).is_ok_and(|m| m == 0),
            Ok(n) => n,
            Err(_) => return false,
        };
        if b.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// Makes `staging` a copy of `root` (the build output): a file identical to the same
/// path in one of the releases `live` is a hard link to it, any other file a new inode. Nothing is ever written
/// into an existing inode, so the live release (and every older one) stays as it was.
///
/// Why copy and not move the new files out of the output: the files that are written
/// anew are only the changed ones, and on this machine copying them cost a few ms for a
/// one-page change (BENCHMARKS.md, "publish alone"); moving would save that but leave the
/// output incomplete, which breaks a site committed to the repo (`from = "public"`,
/// git would restore every moved file on the next build) and generators that only write
/// what changed.
fn stage_tree(
    root: &Path,
    at: &mut Vec<OsString>,
    live: &[&Path],
    staging: &Path,
    stats: &mut Stats,
    bufs: &mut (Vec<u8>, Vec<u8>),
) -> Result<(), LocalError> {
    use std::os::unix::fs::PermissionsExt;
    let rel: PathBuf = at.iter().collect();
    let (src_dir, dst_dir) = (root.join(&rel), staging.join(&rel));
    fs::create_dir(&dst_dir)?;
    let mode = fs::metadata(&src_dir)?.permissions().mode();
    fs::set_permissions(&dst_dir, fs::Permissions::from_mode(mode & 0o7777))?;
    for entry in fs::read_dir(&src_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let (src, dst) = (entry.path(), dst_dir.join(&name));
        let kind = entry.file_type()?;
        let rel_child = rel.join(&name);
        if kind.is_symlink() {
            let target = fs::read_link(&src)?;
            if resolve_inside(root, at.clone(), &target, &mut 0).is_none() {
                return Err(LocalError::Refused(format!(
                    "the output holds a symlink that leaves it: {} -> {} (a release may only link inside itself)",
                    rel_child.display(),
                    target.display()
                )));
            }
            std::os::unix::fs::symlink(&target, &dst)?;
        } else if kind.is_dir() {
            at.push(name);
            stage_tree(root, at, live, staging, stats, bufs)?;
            at.pop();
        } else if kind.is_file() {
            let meta = entry.metadata()?;
            // The first release that has the same file: the live one, then any other
            // (a preview's: the live production release).
            let same = live
                .iter()
                .map(|l| l.join(&rel_child))
                .find(|o| same_file(&src, &meta, o, bufs));
            if let Some(old) = same {
                if fs::hard_link(&old, &dst).is_ok() {
                    stats.linked += 1;
                    continue;
                }
                // EMLINK and the like: a copy is always right, only bigger.
            }
            stats.copied_bytes += fs::copy(&src, &dst)?;
            stats.copied += 1;
        } else {
            return Err(LocalError::Refused(format!(
                "the output holds {}, which is not a file, folder or symlink",
                rel_child.display()
            )));
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
pub fn switch(to: &Path, release: &str) -> Result<Option<String>, LocalError> {
    let dir = releases_dir(to);
    if !dir.join(release).is_dir() {
        return Err(LocalError::Refused(format!(
            "no release {release} in {}",
            dir.display()
        )));
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
            Err(LocalError::Refused(format!(
                "{} exists and is neither a symlink nor a directory",
                to.display()
            )))
        }
        _ => {
            fs::rename(&tmp, to).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })?;
            Ok(None)
        }
    }
}

/// A release made beside `to`, not yet switched to (`super::Staged`).
pub struct Made {
    pub to: PathBuf,
    pub release: String,
    pub stats: Stats,
}

/// Makes release `release` of `from` (already resolved inside the repo, see
/// `super::resolve_from`), sharing every unchanged file with the live one. Nothing is
/// switched: `switch` does that, when the hook is not held.
pub fn make(from: &Path, to: &Path, release: &str) -> Result<Made, LocalError> {
    make_sharing(from, to, release, None)
}

/// `make`, sharing unchanged files with `also` too, a release of another site (a preview
/// shares with the live production release): the live release of `to` is looked at first,
/// then `also`. Links need both on one file system; across two, files are copied.
pub fn make_sharing(from: &Path, to: &Path, release: &str, also: Option<&Path>) -> Result<Made, LocalError> {
    if !from.is_dir() {
        return Err(LocalError::Refused(format!(
            "{} is not a folder after the steps: is publish.from right?",
            from.display()
        )));
    }
    let dir = releases_dir(to);
    fs::create_dir_all(&dir)?;
    // A build killed while copying leaves its staging folder; the lock says none is copying now.
    for e in fs::read_dir(&dir)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(".staging-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    let staging = dir.join(format!(".staging-{release}"));
    let _ = fs::remove_dir_all(&staging);
    let live_dir = live(to).map(|l| dir.join(l)).filter(|d| d.is_dir());
    let sources: Vec<&Path> = live_dir
        .as_deref()
        .into_iter()
        .chain(also.filter(|d| d.is_dir()))
        .collect();
    let mut stats = Stats::default();
    let mut bufs = (vec![0u8; 128 * 1024], vec![0u8; 128 * 1024]);
    stage_tree(from, &mut Vec::new(), &sources, &staging, &mut stats, &mut bufs).inspect_err(|_| {
        let _ = fs::remove_dir_all(&staging);
    })?;
    fs::rename(&staging, dir.join(release))?;
    Ok(Made {
        to: to.to_path_buf(),
        release: release.to_string(),
        stats,
    })
}

/// Removes a release that will not be switched to (a superseded build's).
pub fn remove(to: &Path, release: &str) {
    let _ = fs::remove_dir_all(releases_dir(to).join(release));
}

/// Removes the releases `keep` lets go; returns the ones that could not be removed, with
/// why (a file in it that this user may not delete). A release half removed stays listed,
/// so the next prune tries again.
pub fn prune(to: &Path, keep: &releases::Keep) -> Vec<(String, String)> {
    let dir = releases_dir(to);
    let mut failed = Vec::new();
    for name in keep.to_prune(live(to).as_deref(), &list(to)) {
        if let Err(e) = fs::remove_dir_all(dir.join(&name)) {
            failed.push((name, e.to_string()));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cfg {
        to: PathBuf,
        keep: usize,
    }

    /// Makes and switches a release, as a publish that is not held does.
    fn publish_as(from: &Path, cfg: &Cfg, commit: Option<&str>) -> Result<(Made, Option<String>), LocalError> {
        let made = make(from, &cfg.to, &releases::name(commit))?;
        let note = switch(&cfg.to, &made.release)?;
        Ok((made, note))
    }

    /// The release a rollback without history goes to.
    fn back(to: &Path) -> Result<String, String> {
        releases::choose(releases::Choice::Back(&[]), live(to).as_deref(), &list(to))
    }

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
        let cfg = Cfg {
            to: d.join("www"),
            keep: 2,
        };
        let mut names = vec![];
        for i in 0..4 {
            fs::write(from.join("index.html"), format!("v{i}")).unwrap();
            fs::write(from.join("sub/a.txt"), "a").unwrap();
            let (p, _) = publish_as(&from, &cfg, Some(&format!("abcdef{i}0000"))).unwrap();
            let keep = releases::Keep {
                keep: cfg.keep,
                history: Vec::new(),
                made: None,
            };
            assert!(prune(&cfg.to, &keep).is_empty());
            assert_eq!(fs::read_to_string(cfg.to.join("index.html")).unwrap(), format!("v{i}"));
            assert_eq!(live(&cfg.to).unwrap(), p.release);
            names.push(p.release);
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        assert_eq!(list(&cfg.to), names[2..].to_vec());
        let to = back(&cfg.to).unwrap();
        assert_eq!(to, names[2]);
        switch(&cfg.to, &to).unwrap();
        assert_eq!(fs::read_to_string(cfg.to.join("index.html")).unwrap(), "v2");
        assert!(back(&cfg.to).is_err(), "nothing older is kept");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn first_publish_over_a_real_directory_keeps_it() {
        let d = temp("first");
        fs::create_dir_all(d.join("www")).unwrap();
        fs::write(d.join("www/index.html"), "old site").unwrap();
        fs::create_dir_all(d.join("dist")).unwrap();
        fs::write(d.join("dist/index.html"), "new site").unwrap();
        let cfg = Cfg {
            to: d.join("www"),
            keep: 5,
        };
        let (_, note) = publish_as(&d.join("dist"), &cfg, None).unwrap();
        assert!(note.unwrap().contains("kept as release"));
        assert_eq!(fs::read_to_string(d.join("www/index.html")).unwrap(), "new site");
        let prev = back(&cfg.to).unwrap();
        switch(&cfg.to, &prev).unwrap();
        assert_eq!(fs::read_to_string(d.join("www/index.html")).unwrap(), "old site");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_output_is_an_error_and_changes_nothing() {
        let d = temp("missing");
        let cfg = Cfg {
            to: d.join("www"),
            keep: 5,
        };
        assert!(publish_as(&d.join("dist"), &cfg, None).is_err());
        assert!(fs::symlink_metadata(d.join("www")).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn identical_files_are_shared_and_old_releases_never_change() {
        use std::os::unix::fs::MetadataExt;
        let d = temp("share");
        let from = d.join("dist");
        fs::create_dir_all(from.join("sub")).unwrap();
        fs::write(from.join("same.txt"), "same").unwrap();
        fs::write(from.join("sub/page.html"), "v1").unwrap();
        let cfg = Cfg {
            to: d.join("www"),
            keep: 5,
        };
        let (one, _) = publish_as(&from, &cfg, Some("aaaaaaa")).unwrap();
        assert_eq!(one.stats.copied, 2);
        fs::write(from.join("sub/page.html"), "v2").unwrap();
        let (two, _) = publish_as(&from, &cfg, Some("bbbbbbb")).unwrap();
        assert_eq!((two.stats.linked, two.stats.copied), (1, 1), "{}", two.stats);
        let rel = |r: &str, f: &str| releases_dir(&cfg.to).join(r).join(f);
        let ino = |p: PathBuf| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(rel(&one.release, "same.txt")), ino(rel(&two.release, "same.txt")));
        assert_ne!(
            ino(rel(&one.release, "sub/page.html")),
            ino(rel(&two.release, "sub/page.html"))
        );
        assert_eq!(fs::read_to_string(rel(&one.release, "sub/page.html")).unwrap(), "v1");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_release_of_another_site_shares_what_is_the_same() {
        use std::os::unix::fs::MetadataExt;
        let d = temp("sharing");
        let from = d.join("dist");
        fs::create_dir_all(&from).unwrap();
        fs::write(from.join("same.txt"), "same").unwrap();
        fs::write(from.join("page.html"), "production").unwrap();
        let prod = d.join("www");
        let live = make(&from, &prod, "r1").unwrap();
        switch(&prod, &live.release).unwrap();
        let live_dir = releases_dir(&prod).join("r1");
        // a preview: one page changed, one new
        fs::write(from.join("page.html"), "preview").unwrap();
        fs::write(from.join("new.html"), "new").unwrap();
        let preview = d.join("previews/pr-7");
        fs::create_dir_all(preview.parent().unwrap()).unwrap();
        let first = make_sharing(&from, &preview, "p1", Some(&live_dir)).unwrap();
        assert_eq!((first.stats.linked, first.stats.copied), (1, 2), "{}", first.stats);
        let ino = |p: PathBuf| fs::metadata(p).unwrap().ino();
        let p1 = releases_dir(&preview).join("p1");
        assert_eq!(ino(p1.join("same.txt")), ino(live_dir.join("same.txt")));
        assert_eq!(fs::read_to_string(p1.join("page.html")).unwrap(), "preview");
        assert_eq!(fs::read_to_string(live_dir.join("page.html")).unwrap(), "production");
        switch(&preview, "p1").unwrap();
        // its next release shares with its own live release first, then production's
        let second = make_sharing(&from, &preview, "p2", Some(&live_dir)).unwrap();
        assert_eq!((second.stats.linked, second.stats.copied), (3, 0), "{}", second.stats);
        assert_eq!(
            ino(releases_dir(&preview).join("p2/new.html")),
            ino(p1.join("new.html"))
        );
        // a missing other release is no error: everything else is copied
        let third = make_sharing(&from, &d.join("previews/pr-8"), "p3", Some(&d.join("gone"))).unwrap();
        assert_eq!(third.stats.copied, 3);
        fs::remove_dir_all(&d).unwrap();
    }
}
