//! `[hooks.NAME.report]`, `[hooks.NAME.page]` and `[[hooks.NAME.notify]]`, checked: where
//! the author looks (the commit status on the forge, the build page, the team's chat).
//! `crate::report` carries them out in the build worker; nothing here reads a token or a
//! robot's URL (they live in files read at use, like the hook's secret), so `status` and
//! the CGI never need them.
//!
//! Every URL is `https://`, or `http://` to this machine only (127.0.0.0/8, ::1,
//! localhost): a token never crosses a network in clear text. None has a user or password
//! in it: it would end up in logs.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw::{RawNotify, RawPage, RawReport};
use super::At;
use super::Provider;
use crate::error::Result;

/// A hook's forge by family: whose pull request events its deliveries carry
/// (`delivery::event`) and whose API its builds are reported to (`report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    /// GitHub: `POST {api}/repos/{repo}/statuses/{sha}`.
    Github,
    /// Gitea, Forgejo and Gogs (whose events are Gitea's): the same status request as
    /// GitHub, their own states (Gogs has no status API: `report` refuses it).
    Gitea,
    /// GitLab: `POST {api}/projects/{id}/statuses/{sha}`.
    Gitlab,
    /// Gitee has no commit status in its v5 API: a commit comment instead.
    Gitee,
}

impl Forge {
    pub fn of(provider: Provider) -> Forge {
        match provider {
            Provider::Github => Forge::Github,
            Provider::Gitea | Provider::Gogs => Forge::Gitea,
            Provider::Gitlab => Forge::Gitlab,
            Provider::Gitee => Forge::Gitee,
        }
    }
}

/// `[hooks.NAME.report]`, checked.
#[derive(Debug, Clone)]
pub struct Report {
    pub forge: Forge,
    /// The API's base URL, without a trailing `/`.
    pub api: String,
    /// `owner/name`; on GitLab `group/sub/project` or the numeric project id.
    pub repo: String,
    /// The token's file, read at use; readable by the build's user only (`check` says).
    pub token_file: PathBuf,
    /// The status's name on the forge (GitLab calls it `name`).
    pub context: String,
}

/// `[hooks.NAME.page]`, checked.
#[derive(Debug, Clone)]
pub struct Page {
    /// The folder the web server serves the page from.
    pub dir: PathBuf,
    /// Where readers see `dir`, ending in `/`: links and `target_url` start with it.
    pub url: String,
    /// Whether each build's log is published too (secrets masked).
    pub logs: bool,
}

/// The kinds of `[[notify]]`: four chat robots and a plain JSON webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    Dingtalk,
    Feishu,
    Wecom,
    Slack,
    Webhook,
}

impl NotifyKind {
    pub fn name(self) -> &'static str {
        match self {
            NotifyKind::Dingtalk => "dingtalk",
            NotifyKind::Feishu => "feishu",
            NotifyKind::Wecom => "wecom",
            NotifyKind::Slack => "slack",
            NotifyKind::Webhook => "webhook",
        }
    }

    /// Whether `secret_file` means something for this kind: DingTalk's and Feishu's
    /// signing, and our webhook's signature header.
    pub fn signs(self) -> bool {
        matches!(self, NotifyKind::Dingtalk | NotifyKind::Feishu | NotifyKind::Webhook)
    }
}

/// The events a `[[notify]]` is sent on (`on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct On {
    /// A build failed, timed out, or its worker died.
    pub failed: bool,
    /// The first success after a build that failed.
    pub fixed: bool,
    /// Every success (an unchanged build too).
    pub succeeded: bool,
    /// A build started (its commit is known).
    pub started: bool,
}

/// One `[[hooks.NAME.notify]]`, checked.
#[derive(Debug, Clone)]
pub struct Notify {
    pub kind: NotifyKind,
    /// The robot's URL (it holds its access token), read at use.
    pub url_file: PathBuf,
    /// DingTalk's, Feishu's or the webhook's signing secret, read at use.
    pub secret_file: Option<PathBuf>,
    pub on: On,
}

/// The words of `on`, in the order docs/config.md lists them.
pub const EVENTS: [&str; 4] = ["failed", "fixed", "succeeded", "started"];

/// What a URL may be where deploy-hook sends a token or a message: `https://`, or
/// `http://` to this machine; no user or password; no space or control character.
/// `query` says whether a query is allowed (a robot's URL carries its token there).
/// Returns the URL as written, or why it is refused.
pub fn check_url(url: &str, query: bool) -> std::result::Result<&str, String> {
    checked(url, query, false)
}

/// What a link may be that readers follow and deploy-hook never sends to (the page's
/// `url`): `check_url`'s rules, but `http://` to any host, as the site itself may be.
pub fn check_link(url: &str) -> std::result::Result<&str, String> {
    checked(url, false, true)
}

fn checked(url: &str, query: bool, link: bool) -> std::result::Result<&str, String> {
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("holds a space or a control character".into());
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "is not an absolute URL (https://...)".to_string())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("holds a user or password; put credentials in the token file, never in a URL".into());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err("names no host".into());
    }
    match scheme {
        "https" => {}
        "http" if link || loopback(host) => {}
        "http" => return Err(
            "must be https://: what is sent there would cross the network in the clear (http:// only to this machine)"
                .into(),
        ),
        _ if link => return Err("must be an http:// or https:// URL".into()),
        _ => return Err("must be an https:// URL".into()),
    }
    if url.contains('#') {
        return Err("must not have a #fragment".into());
    }
    if !query && url.contains('?') {
        return Err("must not have a ?query".into());
    }
    Ok(url)
}

/// 127.0.0.0/8, ::1 and localhost: where http:// cannot be overheard.
fn loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// The checked `[report]` of a hook, when it has one.
pub(super) fn report(at: &At, provider: Provider, raw: Option<Spanned<RawReport>>) -> Result<Option<Report>> {
    let Some(r) = raw else { return Ok(None) };
    let span = r.span();
    let r = r.into_inner();
    let err = |key: &str, message: String| at.ctx.err(span.clone(), &at.key(&format!("report.{key}")), message);
    let (forge, default_api) = match provider {
        Provider::Github => (Forge::Github, Some("https://api.github.com")),
        Provider::Gitlab => (Forge::Gitlab, Some("https://gitlab.com/api/v4")),
        Provider::Gitee => (Forge::Gitee, Some("https://gitee.com/api/v5")),
        Provider::Gitea => (Forge::Gitea, None),
        Provider::Gogs => {
            return at.ctx.err(
                span,
                &at.key("report"),
                "Gogs has no commit status API: use [[hooks.NAME.notify]] and [hooks.NAME.page] for this hook, or Gitea/Forgejo (a Gogs fork that has one)",
            )
        }
    };
    let api = match (r.api.as_deref(), default_api) {
        (Some(a), _) => a,
        (None, Some(d)) => d,
        (None, None) => {
            return err(
                "api",
                "is required for Gitea and Forgejo: the API's URL, like \"https://git.example.com/api/v1\"".into(),
            )
        }
    };
    let api = match check_url(api, false) {
        Ok(a) => a.trim_end_matches('/').to_string(),
        Err(m) => return err("api", m),
    };
    if !valid_repo(forge, &r.repo) {
        let what = if forge == Forge::Gitlab {
            "\"group/project\" (subgroups too) or the project's numeric id"
        } else {
            "\"owner/name\""
        };
        let hint = if r.repo.ends_with(".git") {
            " (drop the .git)"
        } else {
            ""
        };
        return err("repo", format!("{:?} is not {what}{hint}", r.repo));
    }
    if r.token_file.is_empty() {
        return err(
            "token_file",
            "must name the file that holds the API token (readable by the build's user only)".into(),
        );
    }
    let context = r.context.unwrap_or_else(|| format!("deploy-hook/{}", at.name));
    if context.is_empty() || context.chars().count() > 100 || context.chars().any(char::is_control) {
        return err("context", "must be 1 to 100 printable characters".into());
    }
    Ok(Some(Report {
        forge,
        api,
        repo: r.repo,
        token_file: at.ctx.resolve(&r.token_file),
        context,
    }))
}

/// `owner/name` (GitHub, Gitea, Gitee), or on GitLab a path of groups and the project, or
/// a numeric id. Names are what the forges allow in a URL path unencoded.
fn valid_repo(forge: Forge, repo: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty() && p != "." && p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if repo.ends_with(".git") {
        return false;
    }
    let parts: Vec<&str> = repo.split('/').collect();
    match forge {
        Forge::Gitlab if repo.bytes().all(|b| b.is_ascii_digit()) => !repo.is_empty(),
        Forge::Gitlab => parts.len() >= 2 && parts.iter().all(|p| part(p)),
        _ => parts.len() == 2 && parts.iter().all(|p| part(p)),
    }
}

/// The checked `[page]` of a hook, when it has one. Its folder is outside the hook's
/// checkout (a build would reset it, or publish it) and outside what `publish.to` switches.
pub(super) fn page(
    at: &At,
    repo: &Path,
    publish_to: Option<&Path>,
    raw: Option<Spanned<RawPage>>,
) -> Result<Option<Page>> {
    let Some(p) = raw else { return Ok(None) };
    let span = p.span();
    let p = p.into_inner();
    let err = |key: &str, message: String| at.ctx.err(span.clone(), &at.key(&format!("page.{key}")), message);
    if p.dir.is_empty() {
        return err("dir", "must name the folder the web server serves the page from".into());
    }
    let dir = at.ctx.resolve(&p.dir);
    if dir.parent().is_none() {
        return err("dir", "must be a folder below /".into());
    }
    if dir.starts_with(repo) || repo.starts_with(&dir) {
        return err("dir", "must be outside repo (a build resets the checkout)".into());
    }
    if let Some(to) = publish_to {
        // `<to>.releases`, where publish/local.rs keeps the releases `to` points into.
        let mut name = to.file_name().map(std::ffi::OsString::from).unwrap_or_default();
        name.push(".releases");
        let releases = to.with_file_name(name);
        if dir.starts_with(to) || to.starts_with(&dir) || dir.starts_with(&releases) {
            return err(
                "dir",
                "must be outside publish.to and its releases (each publish switches them)".into(),
            );
        }
    }
    let url = match check_link(&p.url) {
        Ok(u) if u.ends_with('/') => u.to_string(),
        Ok(u) => format!("{u}/"),
        Err(m) => return err("url", m),
    };
    Ok(Some(Page {
        dir,
        url,
        logs: p.logs.unwrap_or(false),
    }))
}

/// The checked `[[notify]]` tables of a hook, in the order written.
pub(super) fn notify(at: &At, raw: Option<Vec<Spanned<RawNotify>>>) -> Result<Vec<Notify>> {
    let mut out = Vec::new();
    for (i, n) in raw.unwrap_or_default().into_iter().enumerate() {
        let span = n.span();
        let n = n.into_inner();
        let table = format!("notify[{}]", i + 1);
        let err = |key: &str, message: String| at.ctx.err(span.clone(), &at.key(&format!("{table}.{key}")), message);
        let kind = super::choose(
            at.ctx,
            &at.key(&format!("{table}.kind")),
            &Some(n.kind),
            NotifyKind::Webhook,
            &[
                ("dingtalk", NotifyKind::Dingtalk),
                ("feishu", NotifyKind::Feishu),
                ("lark", NotifyKind::Feishu),
                ("wecom", NotifyKind::Wecom),
                ("slack", NotifyKind::Slack),
                ("webhook", NotifyKind::Webhook),
            ],
        )?;
        if n.url_file.is_empty() {
            return err("url_file", "must name the file that holds the robot's URL".into());
        }
        let secret_file = match n.secret_file.as_deref() {
            None => None,
            Some(_) if !kind.signs() => {
                return err(
                    "secret_file",
                    format!(
                        "{} messages are not signed: secret_file is for dingtalk, feishu and webhook",
                        kind.name()
                    ),
                )
            }
            Some("") => return err("secret_file", "is empty".into()),
            Some(f) => Some(at.ctx.resolve(f)),
        };
        let on = match n.on {
            None => On {
                failed: true,
                fixed: true,
                ..On::default()
            },
            Some(words) if words.is_empty() => {
                return err(
                    "on",
                    format!(
                        "lists no event: leave it out for [\"failed\", \"fixed\"], or pick from {}",
                        EVENTS.join(", ")
                    ),
                )
            }
            Some(words) => {
                let mut on = On::default();
                for w in &words {
                    match w.as_str() {
                        "failed" => on.failed = true,
                        "fixed" => on.fixed = true,
                        "succeeded" => on.succeeded = true,
                        "started" => on.started = true,
                        other => {
                            return err(
                                "on",
                                format!("{other:?} is not an event; the events: {}", EVENTS.join(", ")),
                            )
                        }
                    }
                }
                on
            }
        };
        out.push(Notify {
            kind,
            url_file: at.ctx.resolve(&n.url_file),
            secret_file,
            on,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{err, parse, MINIMAL};
    use super::*;

    fn with(provider: &str, tables: &str) -> String {
        format!("{}{tables}\n", MINIMAL.replace("\"gitee\"", &format!("{provider:?}")))
    }

    #[test]
    fn the_spec_example_parses_with_defaults() {
        let c = parse(&with(
            "github",
            "[hooks.docs.report]\nrepo = \"acme/docs\"\ntoken_file = \"/etc/deploy-hook/docs.token\"\n\
             [hooks.docs.page]\ndir = \"/var/www/docs-builds\"\nurl = \"https://docs.example.com/_builds\"\nlogs = true\n\
             [[hooks.docs.notify]]\nkind = \"dingtalk\"\nurl_file = \"/etc/deploy-hook/docs.dingtalk\"\nsecret_file = \"/etc/deploy-hook/docs.dingtalk-secret\"\n\
             [[hooks.docs.notify]]\nkind = \"slack\"\nurl_file = \"slack.url\"\non = [\"started\", \"succeeded\"]\n",
        ))
        .unwrap();
        let h = &c.hooks["docs"];
        let r = h.report.as_ref().unwrap();
        assert_eq!(
            (r.forge, r.api.as_str(), r.repo.as_str(), r.context.as_str()),
            (Forge::Github, "https://api.github.com", "acme/docs", "deploy-hook/docs")
        );
        let p = h.page.as_ref().unwrap();
        assert_eq!((p.url.as_str(), p.logs), ("https://docs.example.com/_builds/", true));
        assert_eq!(h.notify.len(), 2);
        assert_eq!(
            h.notify[0].on,
            On {
                failed: true,
                fixed: true,
                ..On::default()
            }
        );
        assert_eq!(h.notify[1].url_file, Path::new("/etc/deploy-hook/slack.url"));
        assert!(h.notify[1].on.started && h.notify[1].on.succeeded && !h.notify[1].on.failed);
        let gl = parse(&with(
            "gitlab",
            "[hooks.docs.report]\nrepo = \"grp/sub/docs\"\ntoken_file = \"/t\"\ncontext = \"docs build\"\n",
        ))
        .unwrap();
        let r = gl.hooks["docs"].report.clone().unwrap();
        assert_eq!(
            (r.api.as_str(), r.context.as_str()),
            ("https://gitlab.com/api/v4", "docs build")
        );
        let gitea = parse(&with(
            "gitea",
            "[hooks.docs.report]\napi = \"http://127.0.0.1:3000/api/v1/\"\nrepo = \"a/b\"\ntoken_file = \"/t\"\n",
        ))
        .unwrap();
        assert_eq!(
            gitea.hooks["docs"].report.as_ref().unwrap().api,
            "http://127.0.0.1:3000/api/v1"
        );
        assert!(parse(MINIMAL).unwrap().hooks["docs"].report.is_none());
    }

    #[test]
    fn bad_tables_name_the_key() {
        let report = |provider: &str, body: &str| with(provider, &format!("[hooks.docs.report]\n{body}"));
        let page = |body: &str| with("github", &format!("[hooks.docs.page]\n{body}"));
        let notify = |body: &str| with("github", &format!("[[hooks.docs.notify]]\n{body}"));
        for (text, key, why) in [
            (
                report("gogs", "repo = \"a/b\"\ntoken_file = \"/t\""),
                "hooks.docs.report",
                "Gogs",
            ),
            (
                report("gitea", "repo = \"a/b\"\ntoken_file = \"/t\""),
                "report.api",
                "required",
            ),
            (
                report(
                    "github",
                    "api = \"http://api.example.com\"\nrepo = \"a/b\"\ntoken_file = \"/t\"",
                ),
                "report.api",
                "https",
            ),
            (
                report(
                    "github",
                    "api = \"https://u:p@api.example.com\"\nrepo = \"a/b\"\ntoken_file = \"/t\"",
                ),
                "report.api",
                "password",
            ),
            (
                report(
                    "github",
                    "api = \"https://x/?token=1\"\nrepo = \"a/b\"\ntoken_file = \"/t\"",
                ),
                "report.api",
                "query",
            ),
            (
                report("github", "repo = \"acme/docs.git\"\ntoken_file = \"/t\""),
                "report.repo",
                "drop the .git",
            ),
            (
                report("github", "repo = \"a/b/c\"\ntoken_file = \"/t\""),
                "report.repo",
                "owner/name",
            ),
            (
                report("gitlab", "repo = \"docs\"\ntoken_file = \"/t\""),
                "report.repo",
                "group/project",
            ),
            (
                report("github", "repo = \"a/b\"\ntoken_file = \"\""),
                "report.token_file",
                "token",
            ),
            (
                report("github", "repo = \"a/b\"\ntoken_file = \"/t\"\ncontext = \"\""),
                "report.context",
                "printable",
            ),
            (report("github", "repo = \"a/b\""), "token_file", "missing"),
            (
                page("dir = \"/srv/docs/out\"\nurl = \"https://x/\""),
                "page.dir",
                "outside repo",
            ),
            (
                page("dir = \"/var/lib/deploy-hook/docs/page\"\nurl = \"https://x/\""),
                "page.dir",
                "state_dir",
            ),
            (page("dir = \"/var/www/b\"\nurl = \"ftp://x/\""), "page.url", "https"),
            (
                page("dir = \"/var/www/b\"\nurl = \"https://x/#top\""),
                "page.url",
                "fragment",
            ),
            (
                notify("kind = \"teams\"\nurl_file = \"/u\""),
                "notify[1].kind",
                "dingtalk",
            ),
            (
                notify("kind = \"wecom\"\nurl_file = \"/u\"\nsecret_file = \"/s\""),
                "notify[1].secret_file",
                "not signed",
            ),
            (
                notify("kind = \"slack\"\nurl_file = \"/u\"\non = []"),
                "notify[1].on",
                "no event",
            ),
            (
                notify("kind = \"slack\"\nurl_file = \"/u\"\non = [\"broken\"]"),
                "notify[1].on",
                "fixed",
            ),
            (
                notify("kind = \"slack\"\nurl_file = \"\""),
                "notify[1].url_file",
                "robot",
            ),
        ] {
            let e = err(&text);
            assert!(e.contains(key) && e.contains(why), "{text}\n-> {e}");
        }
        let in_publish = with(
            "github",
            "[hooks.docs.publish]\nfrom = \"dist\"\nto = \"/var/www/docs\"\n[hooks.docs.page]\ndir = \"/var/www/docs.releases/b\"\nurl = \"https://x/\"",
        );
        assert!(err(&in_publish).contains("outside publish.to"), "{}", err(&in_publish));
    }

    #[test]
    fn the_page_may_be_seen_over_plain_http_on_any_host() {
        // A link readers follow, where nothing is sent: the quick start's site is http://.
        let page = |url: &str| {
            parse(&with(
                "gitee",
                &format!("[hooks.docs.page]\ndir = \"/var/www/docs-builds\"\nurl = {url:?}\n"),
            ))
        };
        let c = page("http://vm/_builds").unwrap();
        assert_eq!(c.hooks["docs"].page.as_ref().unwrap().url, "http://vm/_builds/");
        for (url, why) in [
            ("http://u:p@vm/_builds/", "password"),
            ("ftp://vm/_builds/", "http"),
            ("http://vm/_builds/#top", "fragment"),
        ] {
            let e = page(url).unwrap_err().to_string();
            assert!(e.contains("page.url") && e.contains(why), "{url} -> {e}");
        }
    }

    #[test]
    fn urls() {
        assert!(check_url("https://oapi.dingtalk.com/robot/send?access_token=x", true).is_ok());
        assert!(check_url("http://127.0.0.1:8080/x", false).is_ok());
        assert!(check_url("http://[::1]:8080/x", false).is_ok());
        assert!(check_url("http://localhost/x", false).is_ok());
        assert!(check_url("http://10.0.0.1/x", false).is_err());
        assert!(check_url("http://127.0.0.1.example.com/x", false).is_err());
        assert!(check_url("https:///x", false).is_err());
        assert!(check_url("https://a b/", false).is_err());
        assert!(check_url("https://x/?q", false).is_err());
        assert!(check_url("javascript:alert(1)", false).is_err());
    }
}
