//! Publishing a build's output: one release, made from `publish.from` and switched to on
//! every destination at once, or on none.
//!
//! `config::Publish` says where releases go (`Destinations`); this file is the one place
//! that matches on it, for each thing done with a publish: publish, prune, what is live,
//! roll back. `local` publishes to the local served path alone, `hosts` to web hosts over
//! ssh and rsync (with the local path as one more target), `bucket` to a bucket behind a
//! CDN with rclone (beside the local path, the web hosts, or alone), `releases` holds what
//! they share (names, pruning, the release a rollback goes to). What every publish checks
//! of the output (it is inside the repo, and no symlink in it leads out) is here too.
//!
//! A publish has two phases on every destination: make the release there (`Staged`, none
//! switched), then switch to it. Between the two, and only here, is decided whether to
//! switch at all: not when a newer delivery superseded the build, and not while the hook is
//! held by a rollback (`releases::Held`: the release is made everywhere, so `resume` can
//! switch to it, but nothing is switched). A destination obeys the hold by having no way to
//! switch but `Staged::switch`.
//!
//! A bucket has no switch of its own to obey the hold with: it is sent nothing until
//! `Staged::switch`. It switches just before the destination beside it (its switch takes
//! seconds, theirs milliseconds), and is put back when theirs fails. `Failure` names which
//! destination failed whatever its kind (`web1`, `local`, `bucket`).

pub mod bucket;
pub mod hosts;
pub mod local;
pub mod releases;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::build::buildlog::BuildLog;
use crate::config::{Destinations, Publish};

pub use releases::{By, Choice, Held, Keep, Live, PruneFailure};

/// A release made on every destination: switched to, or not (the hook is held).
pub struct Published {
    pub release: String,
    /// False: the hook is held; the release is made everywhere and no target switched.
    pub switched: bool,
    /// What a prune done within the publish (web hosts, over the connections it has) could
    /// not remove.
    pub prune_failures: Vec<PruneFailure>,
}

/// What status.json says that a publish obeys: the hold, and the live history whose way
/// back pruning keeps.
pub struct Standing<'a> {
    pub held: Option<&'a Held>,
    /// Newest first.
    pub history: &'a [Live],
}

/// What a publish needs besides the config: the programs' environment, where the ssh
/// control sockets live, the build log.
pub struct Tools<'a> {
    /// The environment of ssh and rsync: the hook's `child_env` (the build's adds its own
    /// `DEPLOY_HOOK_*`).
    pub env: &'a BTreeMap<String, String>,
    /// The hook's state folder: the ssh control sockets and an empty folder live there.
    pub state_dir: &'a Path,
    /// How long one upload may take (the hook's step timeout).
    pub upload_timeout: Duration,
    pub log: &'a BuildLog,
    /// The hook's repo: where `after_publish` runs.
    pub repo: &'a Path,
}

impl Tools<'_> {
    /// A line in the build log.
    pub(crate) fn note(&self, line: &str) {
        self.log.line(line);
    }
}

/// A publish or rollback that did not happen: where, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The destination that failed, as the log, `status` and `failed_step` name it (`web1`,
    /// `local`); `None` for a hook that publishes to its local `to` alone, where there is
    /// nothing to tell apart.
    pub target: Option<String>,
    pub message: String,
    pub kind: FailureKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Something went wrong on a destination.
    Failed,
    /// Stopped on purpose: a newer delivery superseded the build.
    Stopped,
    /// Nothing was tried: what was asked cannot be done (nothing to roll back to, the
    /// destinations serve different releases). The person asking can change that.
    Refused,
}

impl Failure {
    pub(crate) fn refused(message: impl Into<String>) -> Failure {
        Failure {
            target: None,
            message: message.into(),
            kind: FailureKind::Refused,
        }
    }
}

/// Why something on this machine was not published or switched.
#[derive(Debug)]
pub enum LocalError {
    /// An OS call failed.
    Io(io::Error),
    /// What was found is not what a publish can work with; the message says what, and
    /// what to do about it.
    Refused(String),
}

impl From<io::Error> for LocalError {
    fn from(e: io::Error) -> LocalError {
        LocalError::Io(e)
    }
}

impl std::fmt::Display for LocalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalError::Io(e) => write!(f, "{e}"),
            LocalError::Refused(why) => write!(f, "{why}"),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Some(t) => write!(f, "{t}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// A release made on every target of one destination, none switched to it yet.
enum Staged<'a> {
    /// The release beside the local `to`, and when its making started.
    Local(local::Made, Instant),
    Hosts(hosts::Uploaded<'a>),
    /// A bucket, and the local `to` or the web hosts beside it (none: its local copy is the
    /// state folder's).
    Bucket(Option<Box<Staged<'a>>>, Box<bucket::target::Staged<'a>>),
}

impl Staged<'_> {
    /// Makes the release on every target, or on none.
    fn make<'a>(p: &'a Publish, from: &Path, release: &str, tools: &'a Tools<'a>) -> Result<Staged<'a>, Failure> {
        match &p.to {
            Destinations::Local(to) => {
                let clock = Instant::now();
                let made = local::make(from, to, release).map_err(|e| Failure {
                    target: None,
                    message: e.to_string(),
                    kind: FailureKind::Failed,
                })?;
                Ok(Staged::Local(made, clock))
            }
            Destinations::Hosts(h) => {
                let Some(b) = &h.bucket else {
                    return hosts::upload(h, from, release, tools).map(Staged::Hosts);
                };
                // The bucket's own copy first (it is local and quick), the upload after.
                let mut bucket = bucket::target::Staged::make(b, h.local.as_deref(), from, release, tools)?;
                match hosts::upload(h, from, release, tools) {
                    Ok(up) => Ok(Staged::Bucket(Some(Box::new(Staged::Hosts(up))), Box::new(bucket))),
                    Err(f) => {
                        bucket.discard();
                        Err(f)
                    }
                }
            }
            Destinations::Bucket { local, bucket: b } => {
                let beside = match local {
                    Some(to) => {
                        let clock = Instant::now();
                        let made = local::make(from, to, release).map_err(|e| Failure {
                            target: Some("local".into()),
                            message: e.to_string(),
                            kind: FailureKind::Failed,
                        })?;
                        Some(Box::new(Staged::Local(made, clock)))
                    }
                    None => None,
                };
                let bucket = bucket::target::Staged::make(b, local.as_deref(), from, release, tools)?;
                Ok(Staged::Bucket(beside, Box::new(bucket)))
            }
        }
    }

    /// Switches every target to the release, all or none.
    fn switch(&mut self, tools: &Tools) -> Result<(), Failure> {
        match self {
            Staged::Local(made, clock) => {
                let note = local::switch(&made.to, &made.release).map_err(|e| Failure {
                    target: None,
                    message: e.to_string(),
                    kind: FailureKind::Failed,
                })?;
                tools.note(&format!(
                    "\npublished {} -> {}: {}, in {:.1} ms",
                    made.to.display(),
                    made.release,
                    made.stats,
                    clock.elapsed().as_secs_f64() * 1000.0
                ));
                if let Some(note) = note {
                    tools.note(&note);
                }
                Ok(())
            }
            Staged::Hosts(up) => up.switch(),
            Staged::Bucket(beside, b) => {
                if let Err(f) = b.switch() {
                    // Nothing was switched: the release goes everywhere it was made.
                    b.discard();
                    if let Some(beside) = beside {
                        beside.discard();
                    }
                    return Err(f);
                }
                if let Some(beside) = beside {
                    if let Err(mut f) = beside.switch(tools) {
                        b.put_back();
                        b.discard();
                        // The local `to` beside a bucket is one destination of several.
                        f.target.get_or_insert_with(|| "local".into());
                        return Err(f);
                    }
                }
                b.published();
                Ok(())
            }
        }
    }

    /// The release will never be switched to: removed everywhere.
    fn discard(&mut self) {
        match self {
            Staged::Local(made, _) => local::remove(&made.to, &made.release),
            Staged::Hosts(up) => up.discard(),
            Staged::Bucket(beside, b) => {
                b.discard();
                if let Some(beside) = beside {
                    beside.discard();
                }
            }
        }
    }

    /// Prunes what must be pruned while the destination is at hand: the web hosts over the
    /// connections the publish has. The local `to` is pruned after the build is recorded
    /// (`prune`): a build killed while pruning is still a published, succeeded build.
    fn prune_now(&mut self, keep: &Keep, switched: bool) -> Vec<PruneFailure> {
        match self {
            Staged::Local(..) => Vec::new(),
            Staged::Hosts(up) => up.prune(keep, switched),
            Staged::Bucket(beside, _) => beside.as_mut().map(|b| b.prune_now(keep, switched)).unwrap_or_default(),
        }
    }
}

/// Publishes the output of the build of `commit` in `repo` to every destination, all or
/// none, and switches to it unless the hook is held (`standing`). `stopped` is asked before
/// anything is switched (true: a newer delivery superseded the build); `ready` gets the
/// release's name just before the first switch.
pub fn publish(
    p: &Publish,
    repo: &Path,
    commit: Option<&str>,
    tools: &Tools,
    standing: &Standing,
    stopped: &mut dyn FnMut() -> bool,
    ready: &mut dyn FnMut(&str),
) -> Result<Published, Failure> {
    let release = releases::name(commit);
    let target = match &p.to {
        Destinations::Local(_) => None,
        Destinations::Hosts(_) | Destinations::Bucket { local: Some(_), .. } => Some("local".to_string()),
        Destinations::Bucket { local: None, .. } => Some(bucket::target::NAME.to_string()),
    };
    let from = resolve_from(repo, &p.from).map_err(|e| Failure {
        target,
        message: e.to_string(),
        kind: FailureKind::Failed,
    })?;
    let mut staged = Staged::make(p, &from, &release, tools)?;
    // A superseded build never publishes: the last moment to stop is before any switch.
    if stopped() {
        tools.note("superseded after the release was made: no target is switched");
        staged.discard();
        return Err(Failure {
            target: None,
            message: "superseded by a newer delivery".into(),
            kind: FailureKind::Stopped,
        });
    }
    let mut keep = Keep {
        keep: p.keep,
        history: standing.history.to_vec(),
        made: None,
    };
    // The one check of the hold, for every destination.
    let switched = match standing.held {
        Some(_) => {
            let local_made = match &staged {
                Staged::Bucket(Some(beside), _) => beside.as_ref(),
                other => other,
            };
            if let Staged::Local(made, clock) = local_made {
                tools.note(&format!(
                    "\nmade release {} beside {}: {}, in {:.1} ms",
                    made.release,
                    made.to.display(),
                    made.stats,
                    clock.elapsed().as_secs_f64() * 1000.0
                ));
            }
            keep.made = Some(release.clone());
            false
        }
        None => {
            ready(&release);
            staged.switch(tools)?;
            releases::went_live(&mut keep.history, &release, By::Publish, String::new());
            true
        }
    };
    let prune_failures = staged.prune_now(&keep, switched);
    Ok(Published {
        release,
        switched,
        prune_failures,
    })
}

/// Removes the releases `keep` lets go on the destinations that are pruned after the build
/// is recorded (the local `to`); returns what could not be removed. `keep` holds the live
/// history as recorded, and the release made when it was not switched to.
pub fn prune(p: &Publish, keep: &Keep, state_dir: &Path) -> Vec<PruneFailure> {
    let failed = |target: &str, list: Vec<(String, String)>| -> Vec<PruneFailure> {
        list.into_iter()
            .map(|(release, error)| PruneFailure {
                target: target.into(),
                release,
                error,
                at: crate::sys::time::rfc3339(crate::sys::time::now()),
            })
            .collect()
    };
    match &p.to {
        Destinations::Local(to) | Destinations::Bucket { local: Some(to), .. } => {
            failed("local", local::prune(to, keep))
        }
        // The bucket's copy in the state folder.
        Destinations::Hosts(h) if h.bucket.is_some() && h.local.is_none() => {
            failed(bucket::target::NAME, bucket::target::prune(None, state_dir, keep))
        }
        Destinations::Bucket { local: None, .. } => {
            failed(bucket::target::NAME, bucket::target::prune(None, state_dir, keep))
        }
        Destinations::Hosts(_) => Vec::new(),
    }
}

/// The release served now, as far as it can be known without a round trip: the local
/// symlink, or for web hosts and a bucket alone `recorded`, what status.json says (asking
/// every host over ssh, or the bucket, would cost more than the callers save).
pub fn live(p: &Publish, recorded: Option<&str>) -> Option<String> {
    match &p.to {
        Destinations::Local(to) | Destinations::Bucket { local: Some(to), .. } => local::live(to),
        Destinations::Hosts(_) | Destinations::Bucket { local: None, .. } => recorded.map(String::from),
    }
}

/// Switches every destination to the release `choice` means (`releases::choose`), all or
/// none: a rollback, or a resume. Returns (the release served before, the release served
/// now).
pub fn switch_to(p: &Publish, choice: Choice, tools: &Tools) -> Result<(Option<String>, String), Failure> {
    match &p.to {
        Destinations::Local(to) => {
            let from = local::live(to);
            let target = releases::choose(choice, from.as_deref(), &local::list(to))
                .map_err(|why| Failure::refused(crate::sys::text::printable(&why, 2000)))?;
            if from.as_deref() != Some(target.as_str()) {
                local::switch(to, &target).map_err(|e| Failure {
                    target: None,
                    message: format!("cannot switch {}: {e}", to.display()),
                    kind: FailureKind::Failed,
                })?;
            }
            Ok((from, target))
        }
        Destinations::Hosts(h) => match &h.bucket {
            None => hosts::switch_to(h, choice, tools, &mut |_| Ok(())),
            Some(b) => bucket::target::switch_to_with_hosts(h, b, choice, tools),
        },
        Destinations::Bucket { local, bucket: b } => bucket::target::switch_to(b, local.as_deref(), choice, tools),
    }
}

/// `repo/from`, resolved, when it is a folder inside `repo`. A committed symlink
/// `public -> /somewhere/else` would otherwise publish whatever it points at.
pub fn resolve_from(repo: &Path, from: &Path) -> Result<PathBuf, LocalError> {
    let real_repo = repo.canonicalize()?;
    let real = repo.join(from).canonicalize().map_err(|_| {
        LocalError::Refused(format!(
            "{} is not a folder after the steps: is publish.from right?",
            repo.join(from).display()
        ))
    })?;
    // Strictly below the repo and never into `.git`: a committed `public -> .` or
    // `public -> .git` would otherwise publish the repo's config with its credentials.
    let below = real
        .strip_prefix(&real_repo)
        .ok()
        .filter(|r| r.components().next().is_some() && !r.starts_with(".git"));
    if below.is_none() {
        return Err(LocalError::Refused(format!(
            "publish.from {} resolves to {}, outside the repo {} or not below it (the repo itself and its .git are never published): not published",
            from.display(),
            real.display(),
            real_repo.display()
        )));
    }
    if !real.is_dir() {
        return Err(LocalError::Refused(format!(
            "{} is not a folder after the steps: is publish.from right?",
            real.display()
        )));
    }
    Ok(real)
}

/// Where a symlink found at `at` (path components under `root`) with `target` ends,
/// following the symlinks it meets inside `root` as the kernel would; `None` when it
/// leaves `root` (an absolute target, too many `..`, or a loop). Releases are never
/// changed after they are made, so this answer holds for as long as the release lives.
fn resolve_inside(root: &Path, mut at: Vec<OsString>, target: &Path, hops: &mut u32) -> Option<Vec<OsString>> {
    for c in target.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return None,
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop()?;
            }
            Component::Normal(n) => {
                at.push(n.to_owned());
                let here: PathBuf = at.iter().collect();
                if let Ok(next) = fs::read_link(root.join(here)) {
                    *hops += 1;
                    if *hops > 40 {
                        return None;
                    }
                    at.pop();
                    at = resolve_inside(root, at, &next, hops)?;
                }
            }
        }
    }
    Some(at)
}

/// The first symlink under `root` whose target leaves `root`, with that target, resolved as
/// the kernel would (through the other symlinks it meets). Every publish, local or to
/// other hosts, refuses such an output.
pub fn link_leaving(root: &Path) -> io::Result<Option<(PathBuf, PathBuf)>> {
    fn walk(root: &Path, at: &mut Vec<OsString>) -> io::Result<Option<(PathBuf, PathBuf)>> {
        let rel: PathBuf = at.iter().collect();
        for entry in fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                let target = fs::read_link(entry.path())?;
                if resolve_inside(root, at.clone(), &target, &mut 0).is_none() {
                    return Ok(Some((rel.join(entry.file_name()), target)));
                }
            } else if kind.is_dir() {
                at.push(entry.file_name());
                let found = walk(root, at)?;
                at.pop();
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        Ok(None)
    }
    walk(root, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dh-publish-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn symlinks_that_leave_the_output_are_found() {
        let d = temp("links");
        let root = d.join("out");
        fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("b", root.join("a/down")).unwrap();
        let at = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let inside = |dir: &[&str], t: &str| resolve_inside(&root, at(dir), Path::new(t), &mut 0).is_some();
        assert!(inside(&[], "a/b"));
        assert!(inside(&["a"], "../a/b/c.txt"));
        assert!(inside(&["a", "b"], "up/x"), "a/b/up is the root itself");
        assert!(!inside(&[], "/etc/passwd"));
        assert!(!inside(&[], "../x"));
        assert!(!inside(&["a"], "../../x"));
        assert!(!inside(&["a", "b"], "up/../x"), "up is the root, so up/.. leaves it");
        assert!(!inside(&["a"], "down/up/../x"), "followed through two symlinks");
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(!inside(&[], "loop"), "a loop never resolves");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn links_leaving_the_output_are_found() {
        let d = std::env::temp_dir().join(format!("dh-publish-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::os::unix::fs::symlink("../index.html", d.join("a/up")).unwrap();
        std::os::unix::fs::symlink("../../a/b", d.join("a/b/loop")).unwrap();
        assert_eq!(link_leaving(&d).unwrap().map(|l| l.0), None);
        std::os::unix::fs::symlink("../../../etc/passwd", d.join("a/b/out")).unwrap();
        assert_eq!(link_leaving(&d).unwrap().map(|l| l.0), Some(PathBuf::from("a/b/out")));
        std::fs::remove_file(d.join("a/b/out")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("abs")).unwrap();
        assert_eq!(link_leaving(&d).unwrap().map(|l| l.0), Some(PathBuf::from("abs")));
        std::fs::remove_file(d.join("abs")).unwrap();
        // Read link by link, `s/..` is `a/b`; the kernel goes up from where `s` points.
        std::os::unix::fs::symlink("../..", d.join("a/b/s")).unwrap();
        assert_eq!(link_leaving(&d).unwrap().map(|l| l.0), None);
        std::os::unix::fs::symlink("s/../../etc", d.join("a/b/t")).unwrap();
        assert_eq!(link_leaving(&d).unwrap().map(|l| l.0), Some(PathBuf::from("a/b/t")));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
