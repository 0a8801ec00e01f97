//! What a verified delivery asks for, read from its event and body: a build of the hook's
//! branch, a preview built or removed, or nothing (with the reason the forge's log shows).
//!
//! | forge | push | pull request | deleted branch |
//! |---|---|---|---|
//! | GitHub | `push` | `pull_request`: `opened`, `synchronize`, `reopened` build; `closed` removes | push with `deleted` |
//! | Gitea, Forgejo, Gogs | `push` | `pull_request`: `opened`, `synchronized`, `reopened`; `closed` | `delete`, then a push with a zero `after` |
//! | GitLab | `Push Hook` | `Merge Request Hook`: `open`, `reopen`, `update` with `oldrev` (new commits); `close`, `merge` | push with a zero `after` |
//! | Gitee | `Push Hook` | `Merge Request Hook`: `open`, `reopen`, `update` with `action_desc = "source_branch_changed"`; `close`, `merge` | push with `deleted` |
//!
//! Any other action (an edited title, a label, an approval) builds nothing. A pull request
//! whose head repository is not the base repository (a fork; GitHub's `head.repo: null`, a
//! deleted fork, counts as one) is answered and not built unless `previews.forks`.
//!
//! The body chooses only which branch or pull request, that is which ref of the hook's own
//! remote (`build::preview::Subject`); and Gitee's sign mode does not sign the body at all.
//! So the fork test here only spares a needless build: the build itself checks in git that
//! the pull ref's commit is the head of a branch of the hook's remote (someone with write
//! access pushed it), whatever the body said.

use serde::Deserialize;

use crate::build::preview::{self, Subject};
use crate::config::{Hook, Previews};
use crate::error::{Error, Result};
use crate::sys::text::printable;

use super::verify::Kind;

/// What a delivery asks of the previews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewAction {
    /// Build (or build again) the preview of this branch or pull request.
    Build(Subject),
    /// Remove it: the pull request was closed or merged, or the branch deleted.
    Remove(Subject),
}

/// Which forge's pull request event a body is.
pub use crate::config::Forge;

fn malformed(what: &str, e: serde_json::Error) -> Error {
    Error::BadRequest(format!("the payload is not a JSON {what} event: {e}"))
}

/// A commit id made only of zeros (40 for SHA-1, 64 for SHA-256): the ref was deleted.
fn zero(sha: Option<&str>) -> bool {
    sha.is_some_and(|a| !a.is_empty() && a.bytes().all(|b| b == b'0'))
}

/// The fields of a push payload that decide what happens. Everything else is skipped
/// without being stored.
#[derive(Deserialize)]
struct PushFields {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    deleted: Option<bool>,
    after: Option<String>,
}

/// A push: to the hook's branch (a build), to a branch with a preview (its build or, when
/// the branch was deleted, its removal), or nothing.
pub fn push(json: &[u8], hook: &Hook) -> Result<Kind> {
    let fields: PushFields = serde_json::from_slice(json).map_err(|e| malformed("push", e))?;
    let git_ref = fields
        .git_ref
        .ok_or_else(|| Error::BadRequest("the push payload has no \"ref\"".into()))?;
    let deleted = fields.deleted == Some(true) || zero(fields.after.as_deref());
    let branch = &hook.branch;
    let shown = printable(&git_ref, 100);
    if git_ref.starts_with("refs/tags/") {
        return Ok(Kind::Ignored(format!(
            "tag push ({shown}); this hook builds branch {branch}"
        )));
    }
    let Some(pushed) = git_ref.strip_prefix("refs/heads/") else {
        return Ok(Kind::Ignored(format!(
            "push to {shown}; this hook builds branch {branch}"
        )));
    };
    if pushed == branch {
        if deleted {
            return Ok(Kind::Ignored(format!("branch {branch} was deleted; nothing to build")));
        }
        return Ok(Kind::Push { git_ref });
    }
    let Some(previews) = &hook.previews else {
        return Ok(Kind::Ignored(format!(
            "push to {shown}; this hook builds branch {branch}"
        )));
    };
    if !preview::valid_branch(pushed) {
        return Ok(Kind::Ignored(format!(
            "push to {shown}, which is not a branch name git accepts; no preview"
        )));
    }
    let subject = Subject::Branch(pushed.to_string());
    if deleted {
        // Whatever `branches` says now: a preview made before the config changed goes too.
        return Ok(Kind::Preview(PreviewAction::Remove(subject)));
    }
    if !previews.wants_branch(pushed) {
        return Ok(Kind::Ignored(format!(
            "push to {shown}; this hook builds branch {branch}, and previews branches matching {}",
            patterns(previews)
        )));
    }
    Ok(Kind::Preview(PreviewAction::Build(subject)))
}

fn patterns(p: &Previews) -> String {
    if p.branches.is_empty() {
        return "no pattern (previews.branches = [])".into();
    }
    let shown: Vec<String> = p
        .branches
        .iter()
        .take(5)
        .map(|g| format!("{:?}", printable(g, 40)))
        .collect();
    shown.join(", ")
}

/// Gitea's `delete` event (`ref_type`, and `ref` as a short name), sent before the push
/// with a zero `after`: a deleted branch's preview goes.
pub fn gitea_delete(json: &[u8], hook: &Hook) -> Result<Kind> {
    #[derive(Deserialize)]
    struct Delete {
        #[serde(rename = "ref")]
        git_ref: Option<String>,
        ref_type: Option<String>,
    }
    let d: Delete = serde_json::from_slice(json).map_err(|e| malformed("delete", e))?;
    let name = d.git_ref.unwrap_or_default();
    let name = name.strip_prefix("refs/heads/").unwrap_or(&name);
    match (&hook.previews, d.ref_type.as_deref()) {
        (Some(_), Some("branch")) if name != hook.branch && preview::valid_branch(name) => {
            Ok(Kind::Preview(PreviewAction::Remove(Subject::Branch(name.to_string()))))
        }
        (_, Some("branch")) => Ok(Kind::Ignored(format!(
            "branch {} was deleted; no preview to remove",
            printable(name, 100)
        ))),
        _ => Ok(Kind::Ignored("a tag was deleted; nothing to build".into())),
    }
}

/// What a pull request event says, whichever forge sent it.
struct Pull {
    number: u64,
    action: String,
    /// The action builds: the request was opened or reopened, or got new commits.
    builds: bool,
    /// The action removes: the request was closed or merged.
    removes: bool,
    /// The head is in another repository, as far as the body tells.
    fork: bool,
}

/// A repository as GitHub, Gitea and Gitee describe the two sides of a pull request.
#[derive(Deserialize)]
struct Repo {
    id: Option<serde_json::Value>,
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct Side {
    repo: Option<Repo>,
    /// Gitea's repository id of the side.
    repo_id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct GhPr {
    number: Option<u64>,
    head: Option<Side>,
    base: Option<Side>,
}

/// GitHub's, Gitea's and Gitee's pull request event (Gitee adds `action_desc`).
#[derive(Deserialize)]
struct GhEvent {
    action: Option<String>,
    action_desc: Option<String>,
    number: Option<u64>,
    pull_request: Option<GhPr>,
}

/// Whether the head of a pull request is in another repository than its base. Anything
/// missing or unlike counts as a fork: a deleted fork (`head.repo: null`), a renamed one.
fn gh_fork(pr: &GhPr) -> bool {
    let (Some(head), Some(base)) = (&pr.head, &pr.base) else {
        return true;
    };
    if let (Some(h), Some(b)) = (&head.repo_id, &base.repo_id) {
        if h != b {
            return true;
        }
    }
    match (&head.repo, &base.repo) {
        (Some(h), Some(b)) => {
            h.full_name.is_none()
                || h.full_name != b.full_name
                || matches!((&h.id, &b.id), (Some(x), Some(y)) if x != y)
        }
        _ => true,
    }
}

fn gh_pull(forge: Forge, json: &[u8]) -> Result<Pull> {
    let e: GhEvent = serde_json::from_slice(json).map_err(|e| malformed("pull request", e))?;
    let pr = e
        .pull_request
        .ok_or_else(|| Error::BadRequest("the pull request event has no \"pull_request\"".into()))?;
    let number = pr
        .number
        .or(e.number)
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::BadRequest("the pull request event has no number".into()))?;
    let action = e.action.unwrap_or_default();
    let (builds, removes) = match (forge, action.as_str()) {
        (Forge::Github, "opened" | "synchronize" | "reopened") => (true, false),
        (Forge::Gitea, "opened" | "synchronized" | "reopened") => (true, false),
        (Forge::Github | Forge::Gitea, "closed") => (false, true),
        // Gitee lists no reopen action; `reopen` is taken should it come.
        (Forge::Gitee, "open" | "reopen") => (true, false),
        (Forge::Gitee, "update") => (e.action_desc.as_deref() == Some("source_branch_changed"), false),
        (Forge::Gitee, "close" | "merge") => (false, true),
        _ => (false, false),
    };
    Ok(Pull {
        number,
        action,
        builds,
        removes,
        fork: gh_fork(&pr),
    })
}

fn gitlab_pull(json: &[u8]) -> Result<Pull> {
    #[derive(Deserialize)]
    struct Attributes {
        action: Option<String>,
        iid: Option<u64>,
        source_project_id: Option<u64>,
        target_project_id: Option<u64>,
        oldrev: Option<String>,
    }
    #[derive(Deserialize)]
    struct Event {
        object_attributes: Option<Attributes>,
    }
    let e: Event = serde_json::from_slice(json).map_err(|e| malformed("merge request", e))?;
    let a = e
        .object_attributes
        .ok_or_else(|| Error::BadRequest("the merge request event has no \"object_attributes\"".into()))?;
    let number = a
        .iid
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::BadRequest("the merge request event has no \"iid\"".into()))?;
    let action = a.action.unwrap_or_default();
    // GitLab sends `update` for an edited title or label too; only an update that pushed
    // commits has `oldrev`.
    let new_commits = a.oldrev.as_deref().is_some_and(|r| !r.is_empty());
    let (builds, removes) = match action.as_str() {
        "open" | "reopen" => (true, false),
        "update" => (new_commits, false),
        "close" | "merge" => (false, true),
        _ => (false, false),
    };
    Ok(Pull {
        number,
        action,
        builds,
        removes,
        fork: a.source_project_id.is_none() || a.source_project_id != a.target_project_id,
    })
}

/// A pull (merge) request event: its preview built or removed, or nothing.
pub fn pull_request(forge: Forge, event: &str, json: &[u8], hook: &Hook) -> Result<Kind> {
    let Some(previews) = &hook.previews else {
        return Ok(Kind::Ignored(format!(
            "event \"{}\" does not start a build: this hook has no previews",
            printable(event, 60)
        )));
    };
    let p = match forge {
        Forge::Gitlab => gitlab_pull(json)?,
        _ => gh_pull(forge, json)?,
    };
    let what = match forge {
        Forge::Gitlab => "merge request",
        _ => "pull request",
    };
    let subject = Subject::Pull(p.number);
    if p.removes {
        return Ok(Kind::Preview(PreviewAction::Remove(subject)));
    }
    if !p.builds {
        let action = printable(&p.action, 40);
        return Ok(Kind::Ignored(if action == "update" || action.is_empty() {
            format!("{what} {} changed without new commits; nothing to build", p.number)
        } else {
            format!("{what} {} action \"{action}\" changes nothing to build", p.number)
        }));
    }
    if !previews.pull_requests {
        return Ok(Kind::Ignored(format!(
            "{what}s are not previewed here (previews.pull_requests = false)"
        )));
    }
    if p.fork && !previews.forks {
        return Ok(Kind::Ignored(format!(
            "{what} {} comes from another repository (a fork); its code is not built here (previews.forks = false)",
            p.number
        )));
    }
    Ok(Kind::Preview(PreviewAction::Build(subject)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn hook(provider: &str, branch: &str, previews: &str) -> Hook {
        let text = format!(
            "[hooks.docs]\nprovider = {provider:?}\nsecret = \"s\"\nrepo = \"/srv/docs\"\nbranch = {branch:?}\n[hooks.docs.publish]\nfrom = \"dist\"\nto = \"/var/www/docs\"\n{previews}"
        );
        let cfg = Config::parse(std::path::Path::new("/etc/deploy-hook/config.toml"), &text).unwrap();
        cfg.hooks["docs"].clone()
    }

    fn with_previews(provider: &str, extra: &str) -> Hook {
        hook(
            provider,
            "main",
            &format!("[hooks.docs.previews]\nto = \"/var/www/p\"\nurl = \"https://{{name}}.p.test/\"\n{extra}"),
        )
    }

    fn build(s: Subject) -> Kind {
        Kind::Preview(PreviewAction::Build(s))
    }

    fn remove(s: Subject) -> Kind {
        Kind::Preview(PreviewAction::Remove(s))
    }

    fn ignored(k: Kind, needle: &str) {
        assert!(
            matches!(&k, Kind::Ignored(m) if m.contains(needle)),
            "{k:?} should be ignored with {needle:?}"
        );
    }

    /// The JSON with `path` (keys, `/`-separated) set to `value`.
    fn set(json: &[u8], path: &str, value: serde_json::Value) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(json).unwrap();
        let mut at = &mut v;
        for k in path.split('/') {
            at = &mut at[k];
        }
        *at = value;
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn pushes_the_production_branch_and_previews() {
        let h = with_previews("github", "branches = [\"feature/*\", \"docs-?\"]");
        let push = |r: &str, extra: &str| push(format!("{{\"ref\":{r:?}{extra}}}").as_bytes(), &h).unwrap();
        assert_eq!(
            push("refs/heads/main", ""),
            Kind::Push {
                git_ref: "refs/heads/main".into()
            }
        );
        assert_eq!(
            push("refs/heads/feature/a", ""),
            build(Subject::Branch("feature/a".into()))
        );
        assert_eq!(push("refs/heads/docs-1", ""), build(Subject::Branch("docs-1".into())));
        ignored(
            push("refs/heads/other", ""),
            "previews branches matching \"feature/*\", \"docs-?\"",
        );
        ignored(push("refs/tags/v1", ""), "tag push");
        ignored(push("refs/heads/main", ",\"deleted\":true"), "main was deleted");
        // deleted: GitHub and Gitee say so, GitLab and Gitea give a zero `after` (SHA-1 or SHA-256)
        let gone = Subject::Branch("feature/a".into());
        assert_eq!(push("refs/heads/feature/a", ",\"deleted\":true"), remove(gone.clone()));
        assert_eq!(
            push("refs/heads/feature/a", &format!(",\"after\":\"{}\"", "0".repeat(40))),
            remove(gone.clone())
        );
        assert_eq!(
            push("refs/heads/feature/a", &format!(",\"after\":\"{}\"", "0".repeat(64))),
            remove(gone)
        );
        // a deleted branch that no pattern matches now may still have a preview from before
        assert_eq!(
            push("refs/heads/other", ",\"deleted\":true"),
            remove(Subject::Branch("other".into()))
        );
        // names git refuses never reach it
        for bad in [
            "refs/heads/..",
            "refs/heads/a/../b",
            "refs/heads/-x",
            "refs/heads/a:b",
            "refs/heads/",
        ] {
            ignored(push(bad, ""), "not a branch name git accepts");
        }
        assert_eq!(
            push("refs/heads/feature/文档", ""),
            build(Subject::Branch("feature/文档".into()))
        );
        // without previews, another branch is ignored as before
        let plain = hook("github", "main", "");
        ignored(
            super::push(br#"{"ref":"refs/heads/feature/a"}"#, &plain).unwrap(),
            "this hook builds branch main",
        );
        ignored(
            super::push(br#"{"ref":"refs/heads/feature/a","deleted":true}"#, &plain).unwrap(),
            "builds branch main",
        );
        assert!(matches!(super::push(b"{}", &h), Err(Error::BadRequest(_))));
        assert!(matches!(super::push(b"[", &h), Err(Error::BadRequest(_))));
    }

    #[test]
    fn real_pushes_of_each_forge() {
        for (provider, file, branch) in [
            ("github", "github-push.json", "master"),
            ("gitlab", "gitlab-push.json", "master"),
            ("gitea", "gitea-push.json", "develop"),
            ("gitee", "gitee-push.json", "release"),
        ] {
            let h = with_previews(provider, "");
            assert_eq!(
                push(&fixture(file), &h).unwrap(),
                build(Subject::Branch(branch.into())),
                "{file}"
            );
            let own = hook(provider, branch, "");
            assert!(
                matches!(push(&fixture(file), &own).unwrap(), Kind::Push { .. }),
                "{file}"
            );
            let deleted = set(&fixture(file), "after", "0".repeat(40).into());
            assert_eq!(
                push(&deleted, &h).unwrap(),
                remove(Subject::Branch(branch.into())),
                "{file}"
            );
        }
    }

    #[test]
    fn real_pull_requests_of_each_forge() {
        for (forge, provider, file, want) in [
            (Forge::Github, "github", "github-pull_request-opened.json", Some(true)),
            (
                Forge::Github,
                "github",
                "github-pull_request-synchronize.json",
                Some(true),
            ),
            (Forge::Github, "github", "github-pull_request-closed.json", Some(false)),
            (Forge::Gitea, "gitea", "gitea-pull_request-opened.json", Some(true)),
            (
                Forge::Gitea,
                "gitea",
                "gitea-pull_request-synchronized.json",
                Some(true),
            ),
            (Forge::Gitea, "gitea", "gitea-pull_request-closed.json", Some(false)),
            (Forge::Gitlab, "gitlab", "gitlab-merge_request-create.json", Some(true)),
            (Forge::Gitlab, "gitlab", "gitlab-merge_request-close.json", Some(false)),
            (Forge::Gitlab, "gitlab", "gitlab-merge_request-merge.json", Some(false)),
            (Forge::Gitee, "gitee", "gitee-merge_request-open.json", Some(true)),
            (Forge::Gitee, "gitee", "gitee-merge_request-update.json", Some(true)),
            (Forge::Gitee, "gitee", "gitee-merge_request-merge.json", Some(false)),
        ] {
            let h = with_previews(provider, "");
            let json = fixture(file);
            let k = pull_request(forge, "pull", &json, &h).unwrap();
            let number = match forge {
                Forge::Github => 2,
                Forge::Gitee => 9,
                _ => 1,
            };
            let subject = Subject::Pull(number);
            match want {
                Some(true) => assert_eq!(k, build(subject), "{file}"),
                Some(false) => assert_eq!(k, remove(subject), "{file}"),
                None => unreachable!(),
            }
        }
    }

    #[test]
    fn actions_that_change_no_commit_build_nothing() {
        let gl = with_previews("gitlab", "");
        let create = fixture("gitlab-merge_request-create.json");
        let update = set(&create, "object_attributes/action", "update".into());
        ignored(
            pull_request(Forge::Gitlab, "x", &update, &gl).unwrap(),
            "merge request 1 changed without new commits",
        );
        let pushed = set(
            &update,
            "object_attributes/oldrev",
            "95790bf891e76fee5e1747ab589903a6a1f80f22".into(),
        );
        assert_eq!(
            pull_request(Forge::Gitlab, "x", &pushed, &gl).unwrap(),
            build(Subject::Pull(1))
        );
        let approved = set(&create, "object_attributes/action", "approved".into());
        ignored(
            pull_request(Forge::Gitlab, "x", &approved, &gl).unwrap(),
            "action \"approved\"",
        );

        let ge = with_previews("gitee", "");
        let upd = fixture("gitee-merge_request-update.json");
        for desc in ["update_label", "target_branch_changed"] {
            let k = pull_request(Forge::Gitee, "x", &set(&upd, "action_desc", desc.into()), &ge).unwrap();
            ignored(k, "pull request 9 changed without new commits");
        }
        let tested = set(&fixture("gitee-merge_request-open.json"), "action", "tested".into());
        ignored(
            pull_request(Forge::Gitee, "x", &tested, &ge).unwrap(),
            "action \"tested\"",
        );

        let gh = with_previews("github", "");
        let labeled = set(&fixture("github-pull_request-opened.json"), "action", "labeled".into());
        ignored(
            pull_request(Forge::Github, "x", &labeled, &gh).unwrap(),
            "action \"labeled\"",
        );
        // Gitea's word is `synchronized`, GitHub's `synchronize`: each only on its forge
        let wrong = set(
            &fixture("github-pull_request-opened.json"),
            "action",
            "synchronized".into(),
        );
        ignored(pull_request(Forge::Github, "x", &wrong, &gh).unwrap(), "synchronized");
    }

    #[test]
    fn forks_are_answered_not_built() {
        let gh = with_previews("github", "");
        let opened = fixture("github-pull_request-opened.json");
        let cases = [
            set(
                &opened,
                "pull_request/head/repo/full_name",
                "mallory/Hello-World".into(),
            ),
            set(&opened, "pull_request/head/repo/id", 1.into()),
            set(&opened, "pull_request/head/repo", serde_json::Value::Null),
            set(&opened, "pull_request/head", serde_json::Value::Null),
        ];
        for body in &cases {
            ignored(
                pull_request(Forge::Github, "x", body, &gh).unwrap(),
                "pull request 2 comes from another repository",
            );
        }
        let trusting = with_previews("github", "forks = true");
        assert_eq!(
            pull_request(Forge::Github, "x", &cases[0], &trusting).unwrap(),
            build(Subject::Pull(2))
        );
        // a fork's PR that closes still removes its preview (made with forks = true)
        let closed = set(
            &fixture("github-pull_request-closed.json"),
            "pull_request/head/repo",
            serde_json::Value::Null,
        );
        assert_eq!(
            pull_request(Forge::Github, "x", &closed, &gh).unwrap(),
            remove(Subject::Pull(2))
        );

        let gt = with_previews("gitea", "");
        let body = set(
            &fixture("gitea-pull_request-opened.json"),
            "pull_request/head/repo_id",
            1.into(),
        );
        ignored(pull_request(Forge::Gitea, "x", &body, &gt).unwrap(), "a fork");

        let gl = with_previews("gitlab", "");
        let body = set(
            &fixture("gitlab-merge_request-create.json"),
            "object_attributes/source_project_id",
            999.into(),
        );
        ignored(
            pull_request(Forge::Gitlab, "x", &body, &gl).unwrap(),
            "merge request 1 comes from another repository",
        );

        let ge = with_previews("gitee", "");
        let body = fixture("gitee-merge_request-open-fork.json");
        ignored(pull_request(Forge::Gitee, "x", &body, &ge).unwrap(), "a fork");
    }

    #[test]
    fn without_previews_or_pull_requests() {
        let plain = hook("github", "main", "");
        let opened = fixture("github-pull_request-opened.json");
        ignored(
            pull_request(Forge::Github, "pull_request", &opened, &plain).unwrap(),
            "this hook has no previews",
        );
        let no_prs = with_previews("github", "pull_requests = false");
        ignored(
            pull_request(Forge::Github, "x", &opened, &no_prs).unwrap(),
            "previews.pull_requests = false",
        );
        // closing still removes what was made before
        let closed = fixture("github-pull_request-closed.json");
        assert_eq!(
            pull_request(Forge::Github, "x", &closed, &no_prs).unwrap(),
            remove(Subject::Pull(2))
        );
    }

    #[test]
    fn malformed_pull_requests() {
        let gh = with_previews("github", "");
        for body in [
            &b"{}"[..],
            b"[]",
            b"{\"pull_request\":{}}",
            b"{\"pull_request\":{\"number\":0}}",
            b"{\"pull_request\":{\"number\":-1}}",
        ] {
            assert!(
                matches!(pull_request(Forge::Github, "x", body, &gh), Err(Error::BadRequest(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let gl = with_previews("gitlab", "");
        assert!(matches!(
            pull_request(
                Forge::Gitlab,
                "x",
                b"{\"object_attributes\":{\"action\":\"open\"}}",
                &gl
            ),
            Err(Error::BadRequest(_))
        ));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            pull_request(Forge::Github, "x", deep.as_bytes(), &gh),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn gitea_delete_events() {
        let h = with_previews("gitea", "");
        let del =
            |r: &str, t: &str| gitea_delete(format!("{{\"ref\":{r:?},\"ref_type\":{t:?}}}").as_bytes(), &h).unwrap();
        assert_eq!(del("feature", "branch"), remove(Subject::Branch("feature".into())));
        ignored(del("v1", "tag"), "a tag was deleted");
        ignored(del("main", "branch"), "no preview to remove");
        ignored(del("..", "branch"), "no preview to remove");
        let plain = hook("gitea", "main", "");
        ignored(
            gitea_delete(br#"{"ref":"feature","ref_type":"branch"}"#, &plain).unwrap(),
            "no preview",
        );
    }
}
