//! `[hooks.NAME.previews]`: a site of its own for every branch and pull request, checked.
//!
//! A preview publishes what `publish.from` names (the same build, another commit), so the
//! table needs a `[publish]`; its releases live under `to`, on this machine, outside the
//! repo and apart from the production site's own path and releases. `url` says where a
//! preview is seen, with `{name}` for the preview's name (a DNS label). `branches` are
//! globs in which `*` matches any run of characters, `/` included, so that `["*"]` means
//! every branch.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw::RawPreviews;
use super::{At, Previews, Publish};
use crate::error::{Error, Result};

/// The default of `keep`: previews kept at most.
const KEEP: u64 = 10;
/// The default of `jobs`: one preview build at a time (a VitePress build takes a core and
/// then some; many at once starve the machine, production included).
const JOBS: u64 = 1;

/// The checked previews of a hook, when it has a previews table.
pub(super) fn validate(
    at: &At,
    repo: &Path,
    publish: Option<&Publish>,
    raw: Option<Spanned<RawPreviews>>,
) -> Result<Option<Previews>> {
    let Some(p) = raw else {
        return Ok(None);
    };
    let span = p.span();
    let p = p.into_inner();
    let err = |key: &str, message: String| Error::Config {
        file: at.ctx.file.to_path_buf(),
        line: Some(at.ctx.line_of(span.start)),
        key: at.key(&format!("previews.{key}")),
        message,
    };
    if publish.is_none() {
        return at.ctx.err(
            span,
            &at.key("previews"),
            "needs [hooks.NAME.publish]: a preview publishes the build output that publish.from names",
        );
    }
    let to = match p.to.as_deref() {
        None | Some("") => {
            return Err(err(
                "to",
                "must name the folder that holds the previews (preview NAME is served from TO/NAME)".into(),
            ))
        }
        Some(t) => at.ctx.resolve(t),
    };
    if to.parent().is_none() || to.file_name().is_none() {
        return Err(err("to", "must name a folder below another folder".into()));
    }
    if to.starts_with(repo) || repo.starts_with(&to) {
        return Err(err("to", "must be outside repo".into()));
    }
    if let Some(live) = publish.and_then(Publish::local_to) {
        // `<to>.releases`, as publish/local.rs names it (config is below publish).
        let mut name = live.file_name().map(std::ffi::OsString::from).unwrap_or_default();
        name.push(".releases");
        let releases = live.with_file_name(name);
        for (what, path) in [("publish.to", live), ("publish.to's releases", releases.as_path())] {
            if to.starts_with(path) || path.starts_with(&to) {
                return Err(err(
                    "to",
                    format!(
                        "must be apart from {what} ({}): a preview's name would be a path of the production site, or the other way round",
                        path.display()
                    ),
                ));
            }
        }
    }
    let url = url(p.url.as_deref()).map_err(|m| err("url", m))?;
    let branches = match p.branches {
        None => vec!["*".to_string()],
        Some(globs) => {
            if let Some(bad) = globs.iter().find(|g| !plain_glob(g)) {
                return Err(err(
                    "branches",
                    format!("{bad:?} is not a branch pattern: a branch name with * (any characters, / included) and ? (one character)"),
                ));
            }
            globs
        }
    };
    let keep = p.keep.unwrap_or(KEEP);
    if !(1..=1000).contains(&keep) {
        return Err(err("keep", "must be between 1 and 1000".into()));
    }
    let jobs = p.jobs.unwrap_or(JOBS);
    if !(1..=64).contains(&jobs) {
        return Err(err(
            "jobs",
            "must be between 1 and 64 (preview builds of this hook at once; each runs the steps, pnpm and all)".into(),
        ));
    }
    Ok(Some(Previews {
        to,
        url,
        branches,
        pull_requests: p.pull_requests.unwrap_or(true),
        forks: p.forks.unwrap_or(false),
        keep: keep as usize,
        jobs: jobs as usize,
    }))
}

/// `url`: an http(s) address with `{name}` in it, which a preview's name replaces.
fn url(raw: Option<&str>) -> std::result::Result<String, String> {
    let Some(u) = raw.filter(|u| !u.is_empty()) else {
        return Err(
            "must say where a preview is seen, with {name} for its name: \"https://{name}.preview.docs.example.com/\""
                .into(),
        );
    };
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("{u:?} must start with https:// or http://"))?;
    if !u.contains("{name}") {
        return Err(format!(
            "{u:?} has no {{name}}: every preview needs an address of its own"
        ));
    }
    if rest.starts_with('/') || u.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{u:?} is not a web address"));
    }
    Ok(u.to_string())
}

/// A branch pattern: something a branch name could match, with no control character.
fn plain_glob(g: &str) -> bool {
    !g.is_empty() && g.len() <= 255 && !g.chars().any(|c| c.is_control() || c == ' ')
}

/// Whether `name` matches `glob`: `*` is any run of characters (`/` too), `?` one
/// character, anything else itself. Iterative with one backtrack point, so a pattern with
/// many stars costs O(len(name) * len(glob)) at worst, never exponential.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, ni));
                gi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                gi += 1;
                ni += 1;
            }
            _ => match star {
                // The last star takes one more character, and the rest is tried again.
                Some((sg, sn)) => {
                    gi = sg + 1;
                    ni = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

impl Previews {
    /// Whether pushes to `branch` get a preview (the hook's own branch never does: it is
    /// the production site).
    pub fn wants_branch(&self, branch: &str) -> bool {
        self.branches.iter().any(|g| glob_matches(g, branch))
    }

    /// Where preview `name` is seen.
    pub fn url_of(&self, name: &str) -> String {
        self.url.replace("{name}", name)
    }

    /// The served path of preview `name`: a symlink to its live release.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.to.join(name)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::tests::{err, parse, MINIMAL};
    use super::glob_matches;

    fn with(previews: &str) -> String {
        format!("{MINIMAL}[hooks.docs.publish]\nfrom = \"dist\"\nto = \"/var/www/docs\"\n[hooks.docs.previews]\n{previews}\n")
    }

    #[test]
    fn the_spec_example_and_the_defaults() {
        let c = parse(&with(
            "to = \"/var/www/docs-previews\"\nurl = \"https://{name}.preview.docs.example.com/\"\nbranches = [\"*\"]\npull_requests = true\nforks = false\nkeep = 10",
        ))
        .unwrap();
        let p = c.hooks["docs"].previews.clone().unwrap();
        assert_eq!(p.to, Path::new("/var/www/docs-previews"));
        assert_eq!(p.url_of("pr-7"), "https://pr-7.preview.docs.example.com/");
        assert_eq!(p.path_of("pr-7"), Path::new("/var/www/docs-previews/pr-7"));
        assert_eq!((p.pull_requests, p.forks, p.keep, p.jobs), (true, false, 10, 1));
        let d = parse(&with("to = \"previews\"\nurl = \"http://{name}.p.test/\""))
            .unwrap()
            .hooks["docs"]
            .previews
            .clone()
            .unwrap();
        assert_eq!(
            d.to,
            Path::new("/etc/deploy-hook/previews"),
            "relative to the config's folder"
        );
        assert_eq!(d.branches, ["*"]);
        assert_eq!((d.pull_requests, d.forks, d.keep), (true, false, 10));
        assert!(d.wants_branch("feature/a/b") && d.wants_branch("文档"));
        assert!(parse(MINIMAL).unwrap().hooks["docs"].previews.is_none());
    }

    #[test]
    fn bad_values_name_the_key() {
        let url = "url = \"https://{name}.p.test/\"";
        for (body, key, why) in [
            (url.to_string(), "previews.to", "must name the folder"),
            (format!("to = \"\"\n{url}"), "previews.to", "must name the folder"),
            (
                format!("to = \"/srv/docs/previews\"\n{url}"),
                "previews.to",
                "outside repo",
            ),
            (
                format!("to = \"/var/www\"\n{url}"),
                "previews.to",
                "apart from publish.to",
            ),
            (
                format!("to = \"/var/www/docs/p\"\n{url}"),
                "previews.to",
                "apart from publish.to",
            ),
            (
                format!("to = \"/var/www/docs.releases/p\"\n{url}"),
                "previews.to",
                "releases",
            ),
            ("to = \"/var/www/p\"".to_string(), "previews.url", "{name}"),
            (
                "to = \"/var/www/p\"\nurl = \"https://p.test/\"".to_string(),
                "previews.url",
                "no {name}",
            ),
            (
                "to = \"/var/www/p\"\nurl = \"ftp://{name}.p.test/\"".to_string(),
                "previews.url",
                "https://",
            ),
            (
                "to = \"/var/www/p\"\nurl = \"https://{name}.p test/\"".to_string(),
                "previews.url",
                "not a web address",
            ),
            (
                format!("to = \"/var/www/p\"\n{url}\nkeep = 0"),
                "previews.keep",
                "between 1",
            ),
            (
                format!("to = \"/var/www/p\"\n{url}\njobs = 0"),
                "previews.jobs",
                "between 1 and 64",
            ),
            (
                format!("to = \"/var/www/p\"\n{url}\njobs = 65"),
                "previews.jobs",
                "between 1 and 64",
            ),
            (
                format!("to = \"/var/www/p\"\n{url}\nbranches = [\"\"]"),
                "previews.branches",
                "not a branch pattern",
            ),
            (
                format!("to = \"/var/www/p\"\n{url}\nbranches = [\"a b\"]"),
                "previews.branches",
                "not a branch pattern",
            ),
        ] {
            let e = err(&with(&body));
            assert!(
                e.contains(&format!("hooks.docs.{key}")) && e.contains(why),
                "{body}\n-> {e}"
            );
            assert!(e.starts_with("/etc/deploy-hook/config.toml:"), "{e}");
        }
        let e = err(&format!("{MINIMAL}[hooks.docs.previews]\nto = \"/var/www/p\"\n{url}\n"));
        assert!(
            e.contains("hooks.docs.previews") && e.contains("[hooks.NAME.publish]"),
            "{e}"
        );
        let e = err(&with(&format!("to = \"/var/www/p\"\n{url}\nfork = true")));
        assert!(e.contains("unknown field `fork`"), "{e}");
    }

    #[test]
    fn globs_match_whole_names_and_star_crosses_slashes() {
        for (g, n) in [
            ("*", "main"),
            ("*", "feature/a/b"),
            ("feature/*", "feature/x/y"),
            ("release-?", "release-1"),
            ("*-docs", "a-b-docs"),
            ("a*b*c", "axxbyyc"),
            ("文档*", "文档-更新"),
            ("exact", "exact"),
        ] {
            assert!(glob_matches(g, n), "{g} ~ {n}");
        }
        for (g, n) in [
            ("feature/*", "feat"),
            ("release-?", "release-10"),
            ("exact", "exact2"),
            ("a*b*c", "axxbyy"),
            ("", "x"),
        ] {
            assert!(!glob_matches(g, n), "{g} !~ {n}");
        }
        // many stars stay cheap (no exponential backtracking)
        let g = "*a".repeat(40);
        assert!(!glob_matches(&g, &"a".repeat(39)));
        assert!(glob_matches(&g, &"ba".repeat(40)));
    }
}
