//! Hooks' folders kept apart from one another: one hook's build, preview or removal
//! replaces and deletes what is under its own `publish.to`, `previews.to` and `page.dir`,
//! so none of these (nor a checkout, nor `state_dir`) may be or hold another hook's. A
//! preview named `pr-3` under one hook's `previews.to` would otherwise replace, then on the
//! pull request's close delete, another hook's production site at that path. Within one
//! hook, `previews.rs` and the page's own check keep its folders apart; here, across hooks.

use std::path::{Component, Path, PathBuf};

use super::{Hook, Publish};

/// A folder of a hook that this file keeps apart: its key (as `hooks.NAME.KEY` names it),
/// what it is called in a message, and where it is.
struct Place {
    key: &'static str,
    what: &'static str,
    path: PathBuf,
}

/// The folders of `hook` that its builds, previews or page write to (and its checkout).
fn places(hook: &Hook) -> Vec<Place> {
    let mut out = vec![Place {
        key: "repo",
        what: "repo",
        path: hook.repo.clone(),
    }];
    if let Some(to) = hook.publish.as_ref().and_then(Publish::local_to) {
        // `<to>.releases`, as publish/local.rs names it.
        let mut releases = to.file_name().map(std::ffi::OsString::from).unwrap_or_default();
        releases.push(".releases");
        out.push(Place {
            key: "publish.to",
            what: "publish.to",
            path: to.to_path_buf(),
        });
        out.push(Place {
            key: "publish.to",
            what: "publish.to's releases",
            path: to.with_file_name(releases),
        });
    }
    if let Some(p) = &hook.previews {
        out.push(Place {
            key: "previews.to",
            what: "previews.to",
            path: p.to.clone(),
        });
    }
    if let Some(p) = &hook.page {
        out.push(Place {
            key: "page.dir",
            what: "page.dir",
            path: p.dir.clone(),
        });
    }
    out
}

/// `p` with `.` and `..` taken out as written (no file system look: the folders need not
/// exist yet), so `/x/a/../b` and `/x/b` compare equal.
fn plain(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// How `a` stands to `b`: "is also", "is inside", "holds", or `None` when apart.
fn how(a: &Path, b: &Path) -> Option<&'static str> {
    let (a, b) = (plain(a), plain(b));
    if a == b {
        Some("is also")
    } else if a.starts_with(&b) {
        Some("is inside")
    } else if b.starts_with(&a) {
        Some("holds")
    } else {
        None
    }
}

/// The first of `hook`'s folders that is, is inside or holds `state_dir` or a folder of
/// one of `others` (hooks read before it): the key to name (`hooks.NAME.KEY`) and the
/// message. Hooks may share a checkout (`repo` equal to `repo`) and a site (`publish.to`
/// equal to `publish.to`: their builds take turns on it); two pages in one folder have a
/// message of their own (`Config::parse`).
pub(super) fn clash<'a>(
    state_dir: &Path,
    hook: &Hook,
    others: impl Iterator<Item = &'a Hook>,
) -> Option<(String, String)> {
    let mine = places(hook);
    for m in &mine {
        if let Some(how) = how(&m.path, state_dir) {
            return Some((
                m.key.to_string(),
                format!(
                    "{} ({}) {how} state_dir ({}): the state folder holds every hook's locks, queues and logs, and builds and removals would write into it or it into them; give each a folder of its own",
                    m.what,
                    m.path.display(),
                    state_dir.display()
                ),
            ));
        }
    }
    for other in others {
        for theirs in places(other) {
            for m in &mine {
                // One checkout, or one site (`publish.to` and so its releases: two forges'
                // hooks of one site take turns on it, queue.rs), may be shared.
                let shared = matches!(m.key, "repo" | "publish.to")
                    && m.what == theirs.what
                    && plain(&m.path) == plain(&theirs.path);
                let both_pages = m.key == "page.dir" && theirs.key == "page.dir";
                if shared || both_pages {
                    continue;
                }
                if let Some(how) = how(&m.path, &theirs.path) {
                    return Some((
                        m.key.to_string(),
                        format!(
                            "{} ({}) {how} hooks.{}.{} ({}): a build, preview or removal of hook {} would replace or delete files of hook {}, or the other way round; give each hook folders of its own, apart from each other",
                            m.what,
                            m.path.display(),
                            other.name,
                            theirs.what,
                            theirs.path.display(),
                            hook.name,
                            other.name,
                        ),
                    ));
                }
            }
        }
    }
    None
}
