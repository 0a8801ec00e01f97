//! A preview's git side: its ref fetched from the hook's remote into the checkout's object
//! store, the fork check, its working tree (`git worktree`), and its removal.
//!
//! - The fetch writes `refs/deploy-hook/previews/NAME` and never `FETCH_HEAD`
//!   (`--no-write-fetch-head`): production resets its checkout to `FETCH_HEAD`, and a
//!   preview's fetch beside it would otherwise make production deploy a pull request's
//!   commit. `--no-auto-maintenance`: git's maintenance after a fetch detaches into a
//!   session of its own, which would outlive a preview build that production stops.
//! - `+`: a pull request's head is force-pushed as often as not.
//! - A missing ref fails the build with the ref's name. Gitee's `refs/pull/N/head` in
//!   particular is a convention, not a document of Gitee's; its `refs/pull/N/MERGE` (the
//!   merge result, other content) is never tried in its place.
//! - The working tree is detached (two working trees cannot have one branch checked out,
//!   and a preview moves no branch), and reused: `checkout --force` and `clean -ffdx`
//!   keep its `node_modules`, so `pnpm install` has little to do.
//! - `git worktree add`, `prune` and a working tree's removal run one at a time in a
//!   checkout (`worktrees_lock`): a `prune` while another preview's `add` is half done
//!   deletes that tree's admin folder under it ("could not open .git/worktrees/NAME/locked").
//!   The lock is the checkout's (hooks may share one), short, and never production's build
//!   lock: production never waits for a preview.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use fs2::FileExt;

use super::store::Store;
use crate::config::Cmd;

/// The ref of the checkout that holds what preview `name` builds.
pub fn local_ref(name: &str) -> String {
    format!("refs/deploy-hook/previews/{name}")
}

fn argv(words: &[&str]) -> Cmd {
    Cmd::Argv(words.iter().map(|w| w.to_string()).collect())
}

/// `git fetch` of `git_ref` from `remote` into the preview's local ref, run in the checkout.
pub fn fetch(remote: &str, git_ref: &str, name: &str) -> Cmd {
    argv(&[
        "git",
        "fetch",
        "--no-write-fetch-head",
        "--no-auto-maintenance",
        "--no-tags",
        remote,
        &format!("+{git_ref}:{}", local_ref(name)),
    ])
}

/// `git ls-remote --heads` of `remote`: the fork check compares the pull ref's commit with
/// the heads of the remote's branches.
pub fn heads(remote: &str) -> Cmd {
    argv(&["git", "ls-remote", "--heads", remote])
}

/// The commit `ls-remote` output (`SHA\tref` lines) gives for exactly `git_ref`.
pub fn commit_of(ls_remote: &str, git_ref: &str) -> Option<String> {
    ls_remote
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(sha, r)| *r == git_ref && !sha.is_empty())
        .map(|(sha, _)| sha.to_string())
}

/// Whether `commit` is the head of a branch in `ls-remote --heads` output (`SHA\tref`
/// lines): then someone with push access to the hook's remote pushed it.
pub fn is_a_branch_head(ls_remote: &str, commit: &str) -> bool {
    !commit.is_empty()
        && ls_remote
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .any(|(sha, r)| sha == commit && r.starts_with("refs/heads/"))
}

/// What to run, in order, to make the working tree `tree` hold `commit` and nothing else
/// (but `node_modules`), from the checkout `repo`. A tree that is not a working tree of
/// `repo` any more (its folder lost, a crash while it was made) is made again.
pub fn checkout(repo: &Path, tree: &Path, commit: &str) -> Vec<(PathBuf, Cmd)> {
    let tree_s = tree.to_string_lossy();
    if tree.join(".git").is_file() {
        vec![
            (
                tree.to_path_buf(),
                argv(&["git", "checkout", "--quiet", "--detach", "--force", commit]),
            ),
            (
                tree.to_path_buf(),
                argv(&["git", "clean", "-ffdxq", "-e", "node_modules"]),
            ),
        ]
    } else {
        vec![
            (repo.to_path_buf(), argv(&["git", "worktree", "prune"])),
            (
                repo.to_path_buf(),
                argv(&[
                    "git", "worktree", "add", "--quiet", "--detach", "--force", &tree_s, commit,
                ]),
            ),
        ]
    }
}

/// Waits for, takes and returns the checkout's lock on its working trees
/// (`.git/deploy-hook-worktrees.lock`), held while `git worktree add`, `prune` or a working
/// tree's removal runs; let go when dropped.
pub fn worktrees_lock(repo: &Path) -> std::io::Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(repo.join(".git").join("deploy-hook-worktrees.lock"))?;
    file.lock_exclusive()?;
    Ok(file)
}

/// Lock files a build killed in the middle of git leaves behind, which would fail this
/// preview's next git command ("Unable to create ... index.lock: File exists"): its
/// working tree's index lock and its ref's lock. Only this preview's worker, holding its
/// lock, touches either, so one found here is stale. Returns the ones removed.
pub fn stale_locks(repo: &Path, store: &Store, name: &str) -> Vec<PathBuf> {
    let git_dir = repo.join(".git");
    let candidates = [
        git_dir.join("worktrees").join(name).join("index.lock"),
        git_dir.join(format!("{}.lock", local_ref(name))),
    ];
    let mut removed = Vec::new();
    for c in candidates {
        if fs::remove_file(&c).is_ok() {
            removed.push(c);
        }
    }
    // A working tree folder without its `.git` file is no working tree: made again.
    let tree = store.worktree(name);
    if tree.is_dir() && !tree.join(".git").is_file() && fs::remove_dir_all(&tree).is_ok() {
        removed.push(tree);
    }
    removed
}

/// What to run in `repo` to forget preview `name`'s working tree and ref (its folder is
/// removed by the caller first, whatever git says).
pub fn forget(name: &str) -> Vec<Cmd> {
    vec![
        argv(&["git", "worktree", "prune"]),
        argv(&["git", "update-ref", "-d", &local_ref(name)]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_never_writes_fetch_head() {
        let f = fetch("origin", "refs/pull/7/head", "pr-7").to_string();
        assert_eq!(
            f,
            "git fetch --no-write-fetch-head --no-auto-maintenance --no-tags origin +refs/pull/7/head:refs/deploy-hook/previews/pr-7"
        );
    }

    #[test]
    fn branch_heads() {
        let out = "aaa\trefs/heads/main\nbbb\trefs/heads/feature/x\nccc\trefs/pull/7/head\n";
        assert!(is_a_branch_head(out, "bbb"));
        assert!(!is_a_branch_head(out, "ccc"), "a pull ref is not a branch");
        assert!(!is_a_branch_head(out, "bb"));
        assert!(!is_a_branch_head(out, ""));
        assert!(!is_a_branch_head("", "aaa"));
        assert_eq!(commit_of(out, "refs/pull/7/head").as_deref(), Some("ccc"));
        assert_eq!(commit_of(out, "refs/pull/7"), None);
        assert_eq!(commit_of("", "refs/pull/7/head"), None);
    }
}
