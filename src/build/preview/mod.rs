//! Previews of branches and pull requests: what a preview is of (`Subject`), the ref of the
//! hook's own remote that holds it, and its name (`name`).
//!
//! A delivery only says which branch or pull request; what is built is what the forge holds
//! at that ref, fetched from the hook's remote (never a commit or a repository the body
//! names), so a body that was not signed (Gitee's sign mode signs no body) can choose
//! among the remote's refs and nothing else.

pub mod first;
pub mod name;
pub mod slots;
pub mod stage;
pub mod store;
pub mod tree;
pub mod work;

use serde::{Deserialize, Serialize};

use crate::build::queue;
use crate::build::state::{BuildRecord, HookState, State};
use crate::config::{Previews, Provider};
use store::{Record, Store};

/// What a preview is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// A branch of the hook's remote, by its name without `refs/heads/` (a valid branch
    /// name: `valid_branch`).
    Branch(String),
    /// A pull request (GitLab: merge request), by its number in the repository (GitLab's
    /// `iid`, not its global id).
    Pull(u64),
}

impl Subject {
    /// The ref of the hook's remote that holds what the preview builds: the branch, or the
    /// forge's pull ref. Gitee's `refs/pull/N/head` is not documented by Gitee (its
    /// `refs/pull/N/MERGE` is, and holds the merge result, not the head): a missing ref
    /// fails the preview with the ref's name, and nothing else is tried.
    pub fn git_ref(&self, provider: Provider) -> String {
        match (self, provider) {
            (Subject::Branch(b), _) => format!("refs/heads/{b}"),
            (Subject::Pull(n), Provider::Gitlab) => format!("refs/merge-requests/{n}/head"),
            (Subject::Pull(n), _) => format!("refs/pull/{n}/head"),
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Branch(b) => write!(f, "branch {}", crate::sys::text::printable(b, 100)),
            Subject::Pull(n) => write!(f, "pull request {n}"),
        }
    }
}

/// A preview as `previews`, `status` and the build page show it.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub name: String,
    /// `{"branch": "feature/x"}` or `{"pull_request": 7}`.
    #[serde(flatten)]
    pub of: Of,
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit it serves (none before its first published build).
    pub commit: Option<String>,
    pub url: String,
    /// When the release it serves was built.
    pub built: Option<String>,
    pub release: Option<String>,
    /// `building` while a build of it runs.
    pub state: State,
    /// A delivery for it waits.
    pub pending: bool,
    /// Its removal is asked for.
    pub removing: bool,
    /// Its last build, whatever its result.
    pub last: Option<BuildRecord>,
}

/// What a preview is of, as JSON shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Of {
    Branch(String),
    PullRequest(u64),
}

/// The previews of a hook, by name, as they are now.
pub fn shown(store: &Store, previews: &Previews) -> Vec<Shown> {
    store.list().into_iter().map(|r| show(store, previews, r)).collect()
}

fn show(store: &Store, previews: &Previews, r: Record) -> Shown {
    let state = HookState {
        dir: store.dir(&r.name),
    };
    let (status, pending) = state.read_with_pending().unwrap_or_default();
    let building = status.state == State::Building && queue::is_building(&state).unwrap_or(false);
    Shown {
        url: previews.url_of(&r.name),
        of: match &r.subject {
            Subject::Branch(b) => Of::Branch(b.clone()),
            Subject::Pull(n) => Of::PullRequest(*n),
        },
        removing: store.removal_asked(&r.name),
        git_ref: r.git_ref,
        commit: r.commit,
        built: r.published,
        release: r.release,
        state: if building { State::Building } else { State::Idle },
        pending,
        last: status.last,
        name: r.name,
    }
}

/// Whether git accepts `name` as a branch (`git check-ref-format refs/heads/NAME`), and it
/// cannot be read as an option or split a refspec: only such a name from a delivery's body
/// ever reaches git. Unicode is fine, as in git.
pub fn valid_branch(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "@"
        && !name.starts_with('-')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("@{")
        && name.chars().all(|c| !c.is_control() && !" ~^:?*[\\\u{7f}".contains(c))
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_per_forge() {
        let pr = Subject::Pull(7);
        assert_eq!(pr.git_ref(Provider::Github), "refs/pull/7/head");
        assert_eq!(pr.git_ref(Provider::Gitea), "refs/pull/7/head");
        assert_eq!(pr.git_ref(Provider::Gitee), "refs/pull/7/head");
        assert_eq!(pr.git_ref(Provider::Gitlab), "refs/merge-requests/7/head");
        let b = Subject::Branch("feature/文档".into());
        assert_eq!(b.git_ref(Provider::Gitlab), "refs/heads/feature/文档");
        assert_eq!(b.to_string(), "branch feature/文档");
        assert_eq!(pr.to_string(), "pull request 7");
    }

    #[test]
    fn branch_names_as_git_checks_them() {
        for ok in [
            "main",
            "feature/a-b_c.d",
            "文档",
            "docs/文档-更新",
            "a@b",
            "UPPER",
            "x.y",
        ] {
            assert!(valid_branch(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "/",
            "a/",
            "/a",
            "a//b",
            "a..b",
            ".hidden",
            "a/.b",
            "a.lock",
            "a/b.lock/c",
            "a.",
            "-x",
            "a b",
            "a:b",
            "a~1",
            "a^",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "a\u{7f}",
            "a\nb",
            "@",
            "a@{1}",
        ] {
            assert!(!valid_branch(bad), "{bad:?}");
        }
        assert!(!valid_branch(&"x".repeat(256)));
    }
}
