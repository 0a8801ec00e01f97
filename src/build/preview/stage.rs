//! The stages of a preview's build that differ from the production site's
//! (`build::pipeline` runs the rest, clean and steps, the same way in the preview's tree):
//! its ref fetched and checked, its working tree set to it, its release published beside
//! the other previews, sharing files with the live production release.

use std::path::PathBuf;

use super::tree;
use crate::build::pipeline::{Failed, PreviewBuild, Run};
use crate::build::release;
use crate::config::Cmd;
use crate::publish::{self, local, releases};
use crate::sys::process::Exit;

/// Releases a preview keeps: the live one and the one before (nobody rolls a preview back,
/// but a request in flight may still read the one before).
const KEEP: usize = 2;

/// What a preview's build compares with, for `unchanged` and `if_changed`: the hook's
/// config, and where the preview is published.
pub fn config_hash(hook_hash: &str, pb: &PreviewBuild) -> String {
    use sha2::{Digest, Sha256};
    let text = format!("{hook_hash} preview {:?}", pb.previews.to);
    Sha256::digest(text.as_bytes())
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The release the preview serves now.
pub fn live(pb: &PreviewBuild) -> Option<String> {
    local::live(&pb.previews.path_of(&pb.record.name))
}

/// Fetches the preview's ref from the hook's remote into the checkout's objects (never
/// `FETCH_HEAD`); with `forks = false`, first checks with `git ls-remote` that a pull
/// request's commit is the head of a branch of that remote, so that a fork's commits are
/// never fetched. Returns the commit.
pub(in crate::build) fn fetch(
    run: &mut Run,
    pb: &PreviewBuild,
    cancel: &mut dyn FnMut(&str) -> bool,
) -> Result<String, Failed> {
    let hook = run.hook;
    let name = &pb.record.name;
    for stale in tree::stale_locks(&hook.repo, pb.store, name) {
        run.note(&format!(
            "removed {} (left by a build that was killed)",
            stale.display()
        ));
    }
    // The fork check comes before the fetch: a fork's commits never enter the checkout.
    let checked = match matches!(pb.record.subject, super::Subject::Pull(_)) && !pb.previews.forks {
        true => Some(trusted(run, pb, cancel)?),
        false => None,
    };
    let fetch = tree::fetch(&hook.remote, &pb.record.git_ref, name);
    if let Err(f) = run.command_in(&hook.repo, &fetch, "git fetch", cancel) {
        run.note(&format!(
            "the forge holds no {} on {}, or it could not be fetched (see above); nothing else is built in its place",
            pb.record.git_ref, hook.remote
        ));
        return Err(f);
    }
    let Some(commit) = run.git_answer_in(&hook.repo, &["rev-parse", "--verify", &tree::local_ref(name)]) else {
        return Err(Failed::new(
            "git rev-parse",
            "git fetch",
            Exit::NotStarted(format!("{} was not fetched", pb.record.git_ref)),
        ));
    };
    run.note(&format!("{} is {commit}", pb.record.git_ref));
    if let Some(checked) = checked.filter(|c| *c != commit) {
        // Force-pushed between the check and the fetch: what came is not what was checked.
        forget_ref(run, name);
        let why = format!(
            "refused: {} moved from {checked} to {commit} while it was checked; built again by its next delivery",
            pb.record.git_ref
        );
        run.note(&why);
        return Err(Failed::new("fork check", "fork check", Exit::NotStarted(why)));
    }
    Ok(commit)
}

/// Deletes the preview's local ref (what a refused fetch brought is not kept).
fn forget_ref(run: &mut Run, name: &str) {
    let _ = run.git_answer_in(&run.hook.repo, &["update-ref", "-d", &tree::local_ref(name)]);
}

/// The fork check, made in git rather than taken from the delivery's body (which Gitee's
/// sign mode does not even sign): a pull request's head commit is built only when it is the
/// head of a branch of the hook's remote, where only someone with push access puts it.
/// Asked of the remote before anything is fetched (`git ls-remote`); returns the commit.
fn trusted(run: &mut Run, pb: &PreviewBuild, cancel: &mut dyn FnMut(&str) -> bool) -> Result<String, Failed> {
    let hook = run.hook;
    let heads = tree::heads(&hook.remote);
    run.set_step(Some(heads.to_string()));
    let listed = match &heads {
        Cmd::Argv(a) => run.git_answer_in(&hook.repo, &a[1..].iter().map(String::as_str).collect::<Vec<_>>()),
        Cmd::Shell(_) => None,
    };
    let pull = run.git_answer_in(&hook.repo, &["ls-remote", &hook.remote, &pb.record.git_ref]);
    if cancel(&run.id) {
        return Err(Failed::new("git ls-remote", "fork check", Exit::Cancelled));
    }
    let Some(listed) = listed else {
        return Err(Failed::new(
            heads.to_string(),
            "fork check",
            Exit::NotStarted(format!("cannot list the branches of {}", hook.remote)),
        ));
    };
    let Some(commit) = pull.as_deref().and_then(|out| tree::commit_of(out, &pb.record.git_ref)) else {
        let why = format!(
            "the forge holds no {} on {}, or it could not be listed (see above); nothing else is built in its place",
            pb.record.git_ref, hook.remote
        );
        run.note(&why);
        return Err(Failed::new("git ls-remote", "git fetch", Exit::NotStarted(why)));
    };
    let commit = commit.as_str();
    if tree::is_a_branch_head(&listed, commit) {
        run.note(&format!(
            "{commit} is the head of a branch of {}: fetched and built",
            hook.remote
        ));
        return Ok(commit.to_string());
    }
    let why = format!(
        "refused: {} ({commit}) is not the head of any branch of {}, so it may come from a fork; previews.forks = false builds only pull requests whose head is a branch of the hook's repository",
        pb.record.git_ref, hook.remote
    );
    run.note(&why);
    // A ref an earlier build fetched (before the pull request came from a fork) goes too.
    forget_ref(run, &pb.record.name);
    Err(Failed::new("fork check", "fork check", Exit::NotStarted(why)))
}

/// Makes the preview's working tree hold `commit` and nothing else but `node_modules`.
pub(in crate::build) fn checkout(
    run: &mut Run,
    pb: &PreviewBuild,
    commit: &str,
    cancel: &mut dyn FnMut(&str) -> bool,
) -> Result<(), Failed> {
    let tree_dir = pb.store.worktree(&pb.record.name);
    if let Some(parent) = tree_dir.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    // Made (not reused): `git worktree prune` and `add`, one preview at a time.
    let _made = match tree_dir.join(".git").is_file() {
        true => None,
        false => Some(tree::worktrees_lock(&run.hook.repo).map_err(|e| {
            let why = format!("cannot lock {}'s working trees: {e}", run.hook.repo.display());
            run.note(&why);
            Failed::new("git worktree add", "git checkout", Exit::NotStarted(why))
        })?),
    };
    for (dir, cmd) in tree::checkout(&run.hook.repo, &tree_dir, commit) {
        run.command_in(&dir, &cmd, "git checkout", cancel)?;
    }
    Ok(())
}

/// Publishes the preview: a release beside its other ones, sharing unchanged files with
/// its live release and the live production release, then `previews.to/NAME` switched to
/// it. A rollback's hold is the production site's, not the previews'.
pub(in crate::build) fn publish(
    run: &mut Run,
    pb: &PreviewBuild,
    cancel: &mut dyn FnMut(&str) -> bool,
    commit: Option<&str>,
) -> Result<publish::Published, Failed> {
    let Some(p) = &run.hook.publish else {
        return Err(Failed::new(
            "publish",
            "publish",
            Exit::NotStarted("previews need [publish]".into()),
        ));
    };
    if cancel(&run.id) {
        return Err(Failed::new("publish", "publish", Exit::Cancelled));
    }
    run.set_step(Some("publish".into()));
    let to = pb.previews.path_of(&pb.record.name);
    let production: Option<PathBuf> = p
        .local_to()
        .and_then(|t| local::live(t).map(|l| local::releases_dir(t).join(l)));
    let clock = std::time::Instant::now();
    let made = publish::resolve_from(&run.tree, &p.from)
        .and_then(|from| local::make_sharing(&from, &to, &releases::name(commit), production.as_deref()));
    let made = match made {
        Ok(m) => m,
        Err(e) => {
            run.note(&format!("\npublish failed: {e}"));
            return Err(Failed::new("publish", "publish", Exit::NotStarted(e.to_string())));
        }
    };
    release::ready(run.state, &made.release);
    if let Err(e) = local::switch(&to, &made.release) {
        run.note(&format!("\npublish failed: {e}"));
        return Err(Failed::new("publish", "publish", Exit::NotStarted(e.to_string())));
    }
    run.note(&format!(
        "\npublished {} as {} -> {}: {} (shared with this preview's live release and the live production release), in {:.1} ms",
        p.from.display(),
        to.display(),
        made.release,
        made.stats,
        clock.elapsed().as_secs_f64() * 1000.0
    ));
    Ok(publish::Published {
        release: made.release,
        switched: true,
        prune_failures: Vec::new(),
    })
}

/// Removes the preview's releases beyond `KEEP`, after its build is recorded.
pub(in crate::build) fn prune(run: &mut Run, pb: &PreviewBuild) {
    let keep = publish::Keep {
        keep: KEEP,
        history: Vec::new(),
        made: None,
    };
    for (release, error) in local::prune(&pb.previews.path_of(&pb.record.name), &keep) {
        run.note(&format!("could not prune release {release}: {error}"));
    }
}
