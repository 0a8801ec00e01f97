//! `[hooks.NAME.previews]` on this machine: the previews' folder the build's user writes
//! into, on the production site's file system (else a preview's files are copies, not
//! links), and a git that can fetch without touching `FETCH_HEAD` (production's).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{git, writable, Ctx, Report};
use crate::config::{Hook, Previews};

/// `git fetch --no-write-fetch-head` and `--no-auto-maintenance` came with git 2.29.
const GIT_NEEDED: (u32, u32) = (2, 29);

pub(super) fn check(ctx: &Ctx, hook: &Hook, previews: &Previews, home: &Path, r: &mut Report) {
    let user = &ctx.user;
    let to = &previews.to;
    if !to.is_dir() {
        r.fail(
            "previews",
            format!("previews.to {} does not exist", to.display()),
            format!("install -d -o {user} -g {user} {}", to.display()),
        );
    } else if !ctx.as_root && !writable(to) {
        r.fail(
            "previews",
            format!("previews.to {} is not writable by {user}", to.display()),
            format!("chown {user}: {}", to.display()),
        );
    } else {
        r.ok(
            "previews",
            format!("previews go to {}, seen at {}", to.display(), previews.url_of("NAME")),
        );
        let production = hook.publish.as_ref().and_then(|p| p.local_to());
        let folder_of = |p: &Path| p.parent().and_then(|d| std::fs::metadata(d).ok()).map(|m| m.dev());
        if let (Some(live), Ok(mine)) = (production, std::fs::metadata(to)) {
            if folder_of(live).is_some_and(|dev| dev != mine.dev()) {
                r.warn(
                    "previews",
                    format!(
                        "previews.to {} is on another file system than publish.to {}: a preview's files are copied, not shared with the live site",
                        to.display(),
                        live.display()
                    ),
                );
            }
        }
    }
    match git(hook, home, &["version"]).map(|(_, out, _)| out) {
        Some(v) if version(&v).is_some_and(|got| got >= GIT_NEEDED) => {}
        Some(v) => r.fail(
            "previews git",
            format!("previews need git 2.29 or newer (to fetch without touching production's FETCH_HEAD); this is {v}"),
            "apt-get install git from Debian 12 or newer",
        ),
        None => {}
    }
}

/// `git version 2.39.5` -> (2, 39).
fn version(text: &str) -> Option<(u32, u32)> {
    let v = text.split_whitespace().nth(2)?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn git_versions() {
        assert_eq!(super::version("git version 2.39.5"), Some((2, 39)));
        assert_eq!(super::version("git version 2.47.3.windows.1"), Some((2, 47)));
        assert_eq!(super::version("nonsense"), None);
        assert!(super::version("git version 2.28.0").unwrap() < super::GIT_NEEDED);
    }
}
