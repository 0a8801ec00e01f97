//! The commit status on the forge: the requests, one table of states, and how each forge's
//! answer reads. GitHub and Gitea/Forgejo take `POST {api}/repos/{repo}/statuses/{sha}`
//! with `Authorization: token T`; GitLab `POST {api}/projects/{id}/statuses/{sha}` with
//! `PRIVATE-TOKEN: T`. Gitee's v5 API has no commit status: a commit comment on a failure
//! and on the first success after one, the token in the JSON body (never in a URL, which
//! gets logged).
//!
//! | build | GitHub, Gitea | GitLab |
//! |---|---|---|
//! | starts (its commit known) | pending | running |
//! | succeeded, unchanged | success | success |
//! | failed, timed out | failure | failed |
//! | interrupted (its worker died) | error | failed |
//! | superseded | error | canceled |
//!
//! GitLab is sent `running` only (never `pending`): it refuses a second `running` for the
//! same unfinished status ("Cannot transition status via :run from :running"), which means
//! it is already so and counts as sent.

use super::event::{duration_words, Build, Conclusion, Event};
use super::excerpt::cut;
use super::http::{reason, Answer, Request};
use crate::config::{Forge, Report};

/// GitHub refuses a longer description (422); the same limit serves every forge.
pub const DESCRIPTION_MAX: usize = 140;

/// A status: the forge's state word and our description.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub state: &'static str,
    pub description: String,
}

/// The status a build has on `forge`. `newer`: for a superseded build, the short id of the
/// commit that replaced it, when known.
pub fn status(forge: Forge, b: &Build, newer: Option<&str>) -> Status {
    use Conclusion::*;
    let gitlab = forge == Forge::Gitlab;
    let state = match b.conclusion {
        Building if gitlab => "running",
        Building => "pending",
        Succeeded | Unchanged => "success",
        Failed | TimedOut if gitlab => "failed",
        Failed | TimedOut => "failure",
        Interrupted if gitlab => "failed",
        Interrupted => "error",
        Superseded if gitlab => "canceled",
        Superseded => "error",
        // Never sent (`Reporter::status`): a newer version's word.
        Unknown if gitlab => "failed",
        Unknown => "error",
    };
    Status {
        state,
        description: cut(&description(b, newer), DESCRIPTION_MAX),
    }
}

/// Plain words of ours, and at most the first failure line (already masked, its paths
/// relative): never a path on the server.
fn description(b: &Build, newer: Option<&str>) -> String {
    let at = b.failed_at.as_deref().unwrap_or("the build");
    let took = duration_words(b.duration_secs);
    match b.conclusion {
        Conclusion::Building => format!("Building (build {})", b.id),
        Conclusion::Succeeded => match &b.release {
            Some(r) => format!("Published release {r} in {took}"),
            None => format!("Built in {took}"),
        },
        Conclusion::Unchanged => match &b.release {
            Some(r) => format!("Nothing changed: release {r} stays live"),
            None => "Nothing changed since the last build".into(),
        },
        Conclusion::Failed => match b.lines.first() {
            Some(l) => format!("{at} failed: {l}"),
            None => format!("{at} failed after {took}"),
        },
        Conclusion::TimedOut => match b.timeout_secs {
            Some(t) => format!("{at} timed out after {}", duration_words(t as f64)),
            None => format!("{at} timed out"),
        },
        Conclusion::Interrupted => "Build interrupted (its worker died)".into(),
        Conclusion::Superseded => match newer {
            Some(c) => format!("Superseded by {c}"),
            None => "Superseded by a newer delivery".into(),
        },
        Conclusion::Unknown => "Ended; this version does not know how".into(),
    }
}

/// The status request for commit `sha`.
pub fn status_request(
    cfg: &Report,
    token: &str,
    sha: &str,
    s: &Status,
    target_url: Option<&str>,
    branch: &str,
) -> Request {
    match cfg.forge {
        Forge::Gitlab => {
            let mut body = serde_json::json!({
                "state": s.state,
                "name": cfg.context,
                "ref": branch,
                "description": s.description,
            });
            if let Some(t) = target_url {
                body["target_url"] = t.into();
            }
            Request::post_json(
                format!("{}/projects/{}/statuses/{sha}", cfg.api, gitlab_id(&cfg.repo)),
                vec![
                    ("PRIVATE-TOKEN".into(), token.into()),
                    ("Content-Type".into(), "application/json".into()),
                    ("Accept".into(), "application/json".into()),
                ],
                &body,
            )
        }
        // Gitee gets comments instead (`gitee_comment`); it is here only to keep one match.
        Forge::Github | Forge::Gitea | Forge::Gitee => {
            let mut body = serde_json::json!({
                "state": s.state,
                "context": cfg.context,
                "description": s.description,
            });
            if let Some(t) = target_url {
                body["target_url"] = t.into();
            }
            Request::post_json(
                format!("{}/repos/{}/statuses/{sha}", cfg.api, cfg.repo),
                token_headers(cfg.forge, token),
                &body,
            )
        }
    }
}

fn token_headers(forge: Forge, token: &str) -> Vec<(String, String)> {
    let mut h = vec![
        ("Authorization".into(), format!("token {token}")),
        ("Content-Type".into(), "application/json".into()),
    ];
    if forge == Forge::Github {
        h.push(("Accept".into(), "application/vnd.github+json".into()));
        h.push(("X-GitHub-Api-Version".into(), "2022-11-28".into()));
    } else {
        h.push(("Accept".into(), "application/json".into()));
    }
    h
}

/// GitLab's project id in a URL: the numeric id, or the path with every `/` encoded.
fn gitlab_id(repo: &str) -> String {
    repo.replace('/', "%2F")
}

/// Gitee's commit comment; the token goes in the body, as Gitee's v5 documentation has it.
pub fn gitee_comment(cfg: &Report, token: &str, sha: &str, text: &str) -> Request {
    Request::post_json(
        format!("{}/repos/{}/commits/{sha}/comments", cfg.api, cfg.repo),
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("Accept".into(), "application/json".into()),
        ],
        &serde_json::json!({"access_token": token, "body": text}),
    )
}

/// The comment's text (Gitee renders Markdown): the hook, what happened, the failure lines
/// in a code block, the page's link.
pub fn comment_text(context: &str, b: &Build, event: Event, link: Option<&str>) -> String {
    let mut t = format!("**{}**: ", context.replace(['*', '`'], ""));
    match event {
        Event::Failed => {
            t.push_str(&format!("build {} {}", b.id, b.conclusion.label()));
            if let Some(at) = &b.failed_at {
                t.push_str(&format!(" at {at}"));
            }
        }
        _ => {
            t.push_str(&format!("fixed: build {} succeeded", b.id));
            if let Some(r) = &b.release {
                t.push_str(&format!(", release {r} is live"));
            }
        }
    }
    if !b.lines.is_empty() {
        // Backticks cannot close the block: a line of the log is shown, never rendered.
        let lines: Vec<String> = b.lines.iter().map(|l| l.replace('`', "'")).collect();
        t.push_str(&format!("\n\n```text\n{}\n```", lines.join("\n")));
    }
    if let Some(l) = link {
        t.push_str(&format!("\n\n[Build page]({l})"));
    }
    t
}

/// Whether the forge took it: `Ok`, or why not (the answer's own words).
pub fn judge(forge: Forge, a: &Answer) -> Result<(), String> {
    match a {
        Answer::Http { status: 200..=299, .. } => Ok(()),
        Answer::Http { status: 400, body, .. }
            if forge == Forge::Gitlab && body.contains("Cannot transition status") =>
        {
            // Already in that state (a second `running`): nothing to do.
            Ok(())
        }
        other => Err(reason(other)),
    }
}

/// `check`'s question to the API, read-only: the repository as the token sees it.
pub fn probe_request(cfg: &Report, token: &str) -> Request {
    match cfg.forge {
        Forge::Gitlab => Request::get(
            format!("{}/projects/{}", cfg.api, gitlab_id(&cfg.repo)),
            vec![("PRIVATE-TOKEN".into(), token.into())],
        ),
        // Gitee documents only the access_token parameter; redact() masks it in any log.
        Forge::Gitee => Request::get(
            format!("{}/repos/{}?access_token={token}", cfg.api, cfg.repo),
            Vec::new(),
        ),
        Forge::Github | Forge::Gitea => Request::get(
            format!("{}/repos/{}", cfg.api, cfg.repo),
            token_headers(cfg.forge, token),
        ),
    }
}

/// What `check` says of the probe's answer.
#[derive(Debug, PartialEq)]
pub enum Probe {
    /// The token may write statuses (or comments).
    Writes(String),
    /// It reads the repo; whether it may write cannot be told without writing.
    Unknown(String),
    /// It may not: why, and what to do.
    Cannot(String, String),
    /// The API did not answer, or not as an API does (a redirect, a 5xx): nothing could be
    /// checked. Says what it did: `did not answer (...)`, `answered HTTP 503: ...`.
    Unreachable(String),
}

pub fn probe_verdict(cfg: &Report, a: &Answer) -> Probe {
    let repo = &cfg.repo;
    let where_ = token_place(cfg.forge);
    let status = match a {
        Answer::Transport(t) => return Probe::Unreachable(format!("did not answer ({t})")),
        Answer::Http { status, .. } => *status,
    };
    match status {
        401 => {
            return Probe::Cannot(
                format!("the API refuses the token ({})", reason(a)),
                format!("make a new token ({where_}) and write it to the token file"),
            )
        }
        403 | 404 => {
            return Probe::Cannot(
                format!("the token cannot see {repo} ({})", reason(a)),
                format!("check repo = {repo:?}, and give the token access to it ({where_})"),
            )
        }
        200..=299 => {}
        300..=399 => {
            return Probe::Unreachable(format!(
                "answered with a redirect (HTTP {status} to {}), which is not followed; use the API's base URL",
                crate::report::http::redirect_to(a).unwrap_or_default()
            ))
        }
        _ => return Probe::Unreachable(format!("answered {}", reason(a))),
    }
    let json = a.json().unwrap_or_default();
    match cfg.forge {
        Forge::Github | Forge::Gitea | Forge::Gitee => {
            let perms = if cfg.forge == Forge::Gitee {
                &json["permission"]
            } else {
                &json["permissions"]
            };
            if perms["push"] == false && perms["admin"] != true {
                return Probe::Cannot(
                    format!("the token's user has no write access to {repo}"),
                    format!("give the token's user write access to {repo}, or use a token of a user who has it"),
                );
            }
            let scopes = match a {
                Answer::Http { scopes, .. } => scopes.clone(),
                Answer::Transport(_) => None,
            };
            match (cfg.forge, scopes) {
                (Forge::Github, Some(s)) => {
                    let has = s.split(',').map(str::trim).any(|x| x == "repo" || x == "repo:status");
                    if has {
                        Probe::Writes(format!("the token may write commit statuses to {repo} (scopes: {s})"))
                    } else {
                        Probe::Cannot(
                            format!("the token reads {repo} but lacks the repo:status scope (scopes: {s})"),
                            format!("make a token with the repo:status scope ({where_})"),
                        )
                    }
                }
                (Forge::Github, None) => Probe::Unknown(format!(
                    "the token reads {repo}; a fine-grained token does not say whether it may write statuses: give it \"Commit statuses: Read and write\""
                )),
                (_, _) if perms["push"] == true || perms["admin"] == true => {
                    Probe::Writes(format!("the token's user may write to {repo}"))
                }
                _ => Probe::Unknown(format!("the token reads {repo}")),
            }
        }
        Forge::Gitlab => {
            let level = |k: &str| json["permissions"][k]["access_level"].as_u64().unwrap_or(0);
            let best = level("project_access").max(level("group_access"));
            if best >= 30 {
                Probe::Writes(format!("the token may set statuses on {repo} (access level {best})"))
            } else if json["permissions"].is_object() {
                Probe::Cannot(
                    format!("the token's access to {repo} is below Developer (level {best})"),
                    "use a token with the Developer role or more, and the api scope".into(),
                )
            } else {
                Probe::Unknown(format!("the token reads {repo}"))
            }
        }
    }
}

/// The forge's web page of a commit, without the id, for the build page's links: derived
/// from the API's URL (`https://api.github.com` is github.com; a self-hosted API is under
/// the site's own URL). `None` when it cannot be told (a GitLab project by number).
pub fn commit_url(cfg: &Report) -> Option<String> {
    let api = cfg.api.as_str();
    let site = match cfg.forge {
        Forge::Github if api == "https://api.github.com" => "https://github.com",
        Forge::Github => api.strip_suffix("/api/v3")?,
        Forge::Gitea => api.strip_suffix("/api/v1")?,
        Forge::Gitlab => api.strip_suffix("/api/v4")?,
        Forge::Gitee => api.strip_suffix("/api/v5")?,
    };
    if cfg.forge == Forge::Gitlab {
        if cfg.repo.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return Some(format!("{site}/{}/-/commit/", cfg.repo));
    }
    Some(format!("{site}/{}/commit/", cfg.repo))
}

/// Where a person makes the token, per forge (docs/report.md has the steps).
pub fn token_place(forge: Forge) -> &'static str {
    match forge {
        Forge::Github => "GitHub: Settings, Developer settings, Personal access tokens",
        Forge::Gitea => "Gitea: Settings, Applications, Generate token, repository: Read and write",
        Forge::Gitlab => "GitLab: the project's Settings, Access tokens, role Developer, scope api",
        Forge::Gitee => "Gitee: Settings, Personal access tokens, scope projects",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(c: Conclusion) -> Build {
        Build {
            id: "20261130-060011-6".into(),
            conclusion: c,
            commit: None,
            started: String::new(),
            duration_secs: 38.2,
            failed_at: Some("step 2 (pnpm)".into()),
            release: Some("20261130-060011-6".into()),
            lines: vec!["docs/install.md (7:1): Element is missing end tag.".into()],
            timeout_secs: Some(1800),
            target_url: None,
        }
    }

    fn cfg(forge: Forge, repo: &str) -> Report {
        Report {
            forge,
            api: "http://127.0.0.1:9/api".into(),
            repo: repo.into(),
            token_file: "/t".into(),
            context: "deploy-hook/docs".into(),
        }
    }

    #[test]
    fn the_table() {
        use Conclusion::*;
        let words = |f: Forge| {
            [
                Building,
                Succeeded,
                Unchanged,
                Failed,
                TimedOut,
                Interrupted,
                Superseded,
            ]
            .map(|c| status(f, &build(c), None).state)
        };
        assert_eq!(
            words(Forge::Github),
            ["pending", "success", "success", "failure", "failure", "error", "error"]
        );
        assert_eq!(words(Forge::Gitea), words(Forge::Github));
        assert_eq!(
            words(Forge::Gitlab),
            ["running", "success", "success", "failed", "failed", "failed", "canceled"]
        );
        assert_eq!(
            status(Forge::Github, &build(Failed), None).description,
            "step 2 (pnpm) failed: docs/install.md (7:1): Element is missing end tag."
        );
        assert_eq!(
            status(Forge::Github, &build(TimedOut), None).description,
            "step 2 (pnpm) timed out after 30 min 00 s"
        );
        assert_eq!(
            status(Forge::Gitlab, &build(Superseded), Some("89abcde")).description,
            "Superseded by 89abcde"
        );
        let mut long = build(Failed);
        long.lines = vec!["é".repeat(300)];
        let d = status(Forge::Github, &long, None).description;
        assert_eq!(d.chars().count(), DESCRIPTION_MAX);
    }

    #[test]
    fn requests() {
        let s = status(Forge::Gitlab, &build(Conclusion::Building), None);
        let r = status_request(
            &cfg(Forge::Gitlab, "grp/sub/docs"),
            "glpat",
            &"a".repeat(40),
            &s,
            None,
            "main",
        );
        assert!(r
            .url
            .ends_with(&format!("/projects/grp%2Fsub%2Fdocs/statuses/{}", "a".repeat(40))));
        assert!(r.headers.contains(&("PRIVATE-TOKEN".into(), "glpat".into())));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (body["state"].as_str(), body["name"].as_str()),
            (Some("running"), Some("deploy-hook/docs"))
        );
        let g = gitee_comment(&cfg(Forge::Gitee, "a/b"), "tok", "c0ffee", "x");
        assert!(!g.url.contains("tok"), "the token is never in a URL: {}", g.url);
        assert!(judge(
            Forge::Gitlab,
            &Answer::Http {
                status: 400,
                body: r#"{"message":"Cannot transition status via :run from :running"}"#.into(),
                scopes: None,
                location: None,
            }
        )
        .is_ok());
        assert!(judge(Forge::Github, &Answer::Transport("x".into())).is_err());
    }

    #[test]
    fn a_comment_shows_lines_and_never_closes_its_block() {
        let mut b = build(Conclusion::Failed);
        b.lines.push("```<script>".into());
        let t = comment_text("deploy-hook/docs", &b, Event::Failed, Some("https://x/#b1"));
        assert!(
            t.starts_with("**deploy-hook/docs**: build 20261130-060011-6 failed at step 2 (pnpm)"),
            "{t}"
        );
        assert_eq!(t.matches("```").count(), 2, "{t}");
        assert!(t.ends_with("[Build page](https://x/#b1)"));
    }

    #[test]
    fn commit_pages() {
        let mut c = cfg(Forge::Github, "acme/docs");
        c.api = "https://api.github.com".into();
        assert_eq!(commit_url(&c).as_deref(), Some("https://github.com/acme/docs/commit/"));
        let mut c = cfg(Forge::Gitlab, "grp/docs");
        c.api = "https://gitlab.com/api/v4".into();
        assert_eq!(commit_url(&c).as_deref(), Some("https://gitlab.com/grp/docs/-/commit/"));
        c.repo = "17".into();
        assert_eq!(commit_url(&c), None);
        let mut c = cfg(Forge::Gitea, "a/b");
        c.api = "https://git.example.com/api/v1".into();
        assert_eq!(commit_url(&c).as_deref(), Some("https://git.example.com/a/b/commit/"));
    }

    #[test]
    fn probes() {
        let ok = |body: &str, scopes: Option<&str>| Answer::Http {
            status: 200,
            body: body.into(),
            scopes: scopes.map(String::from),
            location: None,
        };
        let gh = cfg(Forge::Github, "acme/docs");
        assert!(matches!(
            probe_verdict(&gh, &ok(r#"{"permissions":{"push":true}}"#, Some("repo:status, user"))),
            Probe::Writes(_)
        ));
        assert!(matches!(
            probe_verdict(&gh, &ok(r#"{"permissions":{"push":true}}"#, Some("read:user"))),
            Probe::Cannot(..)
        ));
        assert!(matches!(
            probe_verdict(&gh, &ok(r#"{"permissions":{"push":true}}"#, None)),
            Probe::Unknown(_)
        ));
        assert!(matches!(
            probe_verdict(&gh, &ok(r#"{"permissions":{"push":false}}"#, Some("repo"))),
            Probe::Cannot(..)
        ));
        let gl = cfg(Forge::Gitlab, "17");
        assert!(matches!(
            probe_verdict(
                &gl,
                &ok(
                    r#"{"permissions":{"project_access":{"access_level":20},"group_access":{"access_level":40}}}"#,
                    None
                )
            ),
            Probe::Writes(_)
        ));
        assert!(matches!(
            probe_verdict(
                &gl,
                &ok(
                    r#"{"permissions":{"project_access":{"access_level":20},"group_access":null}}"#,
                    None
                )
            ),
            Probe::Cannot(..)
        ));
        let bad = Answer::Http {
            status: 401,
            body: r#"{"message":"Bad credentials"}"#.into(),
            scopes: None,
            location: None,
        };
        assert!(matches!(probe_verdict(&gh, &bad), Probe::Cannot(..)));
        assert!(matches!(
            probe_verdict(&gh, &Answer::Transport("x".into())),
            Probe::Unreachable(_)
        ));
    }
}
