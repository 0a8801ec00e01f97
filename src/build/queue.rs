//! At most one build per site at a time, and no delivery lost.
//!
//! The protocol, with the build lock (flock, held for the whole build; the kernel drops it
//! when its holder dies) and each hook's `pending` marker (the newest delivery still
//! waiting):
//!
//! 1. A delivery writes `pending` first, then tries the lock without blocking.
//!    Got it: it starts a worker. Held: it answers at once; the holder will see `pending`.
//! 2. A worker, holding the lock, takes `pending` and builds; it repeats while `pending`
//!    is there again after a build. Each build fetches the branch head as it is when the
//!    build starts, so one follow-up build covers any number of deliveries.
//! 3. After releasing the lock the holder looks at `pending` once more, and if it is there
//!    tries the lock again. This closes the race with a delivery that wrote `pending` and
//!    found the lock held just before the release: either that delivery's own try, or the
//!    holder's second look, sees the other's step. Every holder does this, not only the
//!    worker: `run --wait`, a sync delivery's build and `rollback` too (`hand_over`).
//!
//! So the last build always starts after the last delivery was recorded.
//!
//! "The lock" is a set of flocks, taken in one global order (by path) so that two takers
//! never wait for each other: the hook's own `build.lock`, its working tree (the `repo`
//! folder itself), and its publish target (the `<to>.releases` folder). Two hooks on one
//! checkout or one web root (a GitHub hook and a Gitee mirror of one site) therefore
//! never build at the same time, and step 3 looks at the `pending` of every hook that
//! shares a lock with the holder. The folders themselves are locked, not files in the
//! state dir, so that deleting the state dir during a build cannot free the lock; and a
//! lock taken on a file that was replaced meanwhile is let go and taken again.

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use fs2::FileExt;
use serde::{Deserialize, Serialize};

use crate::build::buildlog::BuildLog;
use crate::build::finish::{self, Finished};
use crate::build::pipeline::{self, Build};
use crate::build::preview::first;
use crate::build::preview::store::Store;
use crate::build::reporting::Reports;
use crate::build::state::{write_atomic, BuildRecord, HookState, Pending, State, Wait};
use crate::config::{Config, Hook, OnBusy};
use crate::error::{Error, Result};
use crate::publish::{self, local};
use crate::sys::log::Log;
use crate::sys::process::{self, Identity, Process};
use crate::sys::time;

/// The build lock of a hook; dropping it releases every flock in it.
pub struct BuildLock {
    _files: Vec<File>,
}

/// The hook's own lock (`build.lock`) alone: whether this hook's builder runs. That is
/// what `status` and an async delivery ask; building takes the whole set (`lock`).
pub fn try_lock(state: &HookState) -> Result<Option<BuildLock>> {
    let file = state.open_lock_file(&state.build_lock_path())?;
    match file.try_lock_exclusive() {
        Ok(()) => Ok(Some(BuildLock { _files: vec![file] })),
        Err(e) if contended(&e) => Ok(None),
        Err(e) => Err(Error::io("cannot lock build.lock", e)),
    }
}

/// Whether this hook's build runs right now, asked without taking the lock: a process that
/// only looks (`status`, the busy check of `on_busy = "reject"`) must not hold the lock
/// even for a moment, or a delivery that tries it then would count on a holder that never
/// builds it. The kernel's table of locks (/proc/locks) answers; without it, a try.
pub fn is_building(state: &HookState) -> Result<bool> {
    let path = state.build_lock_path();
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Error::io(
                format!("cannot read {}{}", path.display(), super::state::planted(&path)),
                e,
            ))
        }
    };
    match process::flock_held(meta.dev(), meta.ino()) {
        Some(held) => Ok(held),
        None => Ok(try_lock(state)?.is_none()),
    }
}

fn contended(e: &std::io::Error) -> bool {
    e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
}

/// A part of the lock: something a build of `hook` must have to itself. Taken in the order
/// of their paths.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LockPart {
    /// `<state_dir>/<hook>/build.lock`, created when missing.
    HookFile(PathBuf),
    /// A folder: the working tree, or `<to>.releases`.
    Folder(PathBuf),
}

impl LockPart {
    fn path(&self) -> &Path {
        match self {
            LockPart::HookFile(p) | LockPart::Folder(p) => p,
        }
    }
}

/// The folders a hook's build changes, canonical (so two spellings of one folder are one
/// lock): its working tree and its releases folder. Shared with `check`.
pub fn shared_keys(hook: &Hook) -> Vec<(&'static str, PathBuf)> {
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut keys = vec![("working tree", canonical(&hook.repo))];
    if let Some(to) = local_to(hook) {
        keys.push(("publish target", canonical(&local::releases_dir(to))));
    }
    keys
}

/// The local `to` a hook publishes to: alone, or beside its web hosts. The web hosts' own
/// paths cannot be locked from here: one build host per site (docs/hosts.md).
fn local_to(hook: &Hook) -> Option<&Path> {
    hook.publish.as_ref().and_then(|p| p.local_to())
}

fn lock_parts(hook: &Hook, state: &HookState) -> Vec<LockPart> {
    if let Some(to) = local_to(hook) {
        // Publishing creates it anyway; made here so that it can be locked from the first
        // build on. When it cannot be made, no publish can happen, so it needs no lock.
        let _ = fs::create_dir(local::releases_dir(to));
    }
    let mut t: Vec<LockPart> = shared_keys(hook)
        .into_iter()
        .map(|(_, p)| LockPart::Folder(p))
        .collect();
    t.push(LockPart::HookFile(state.build_lock_path()));
    t.sort_by(|a, b| a.path().cmp(b.path()));
    t.dedup_by(|a, b| a.path() == b.path());
    t
}

/// When `folder` is where the hook's `<to>.releases` symlink leads (a build step can plant
/// one: the folder beside `to` is the build user's), that link and its fix, else nothing.
fn releases_link(hook: &Hook, folder: &Path) -> String {
    let Some(releases) = local_to(hook).map(local::releases_dir) else {
        return String::new();
    };
    let is_link = fs::symlink_metadata(&releases).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link || fs::canonicalize(&releases).ok().as_deref() != Some(folder) {
        return String::new();
    }
    format!(
        " ({} is a symlink to it, and deploy-hook makes that folder itself: remove it, rm -- {}, and build again)",
        releases.display(),
        crate::sys::text::shell_quote(&releases.to_string_lossy())
    )
}

/// Takes the hook's whole lock: blocking, or giving up (`None`) when any part is held.
pub fn lock(hook: &Hook, state: &HookState, wait: bool) -> Result<Option<BuildLock>> {
    'again: loop {
        // Inside the loop: the state dir may have been deleted while we waited.
        state.ensure()?;
        let mut files = Vec::new();
        for t in lock_parts(hook, state) {
            let file = match &t {
                LockPart::HookFile(p) => state.open_lock_file(p)?,
                LockPart::Folder(p) => match File::open(p) {
                    Ok(f) => f,
                    // A missing working tree fails its build at once; nothing to protect.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(Error::io(
                            format!("cannot open {} to lock it{}", p.display(), releases_link(hook, p)),
                            e,
                        ))
                    }
                },
            };
            let got = if wait {
                file.lock_exclusive()
            } else {
                file.try_lock_exclusive()
            };
            match got {
                Ok(()) => {}
                Err(e) if !wait && contended(&e) => return Ok(None),
                Err(e) => return Err(Error::io(format!("cannot lock {}", t.path().display()), e)),
            }
            // The file may have been deleted (the state dir removed) and made again while we
            // opened or waited: a lock on the old one excludes nobody. Let go, start over.
            if !same_file(&file, t.path()) {
                continue 'again;
            }
            files.push(file);
        }
        return Ok(Some(BuildLock { _files: files }));
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The hooks whose builds exclude `hook`'s (sharing a working tree or a publish target),
/// `hook` included.
fn sharers<'a>(cfg: &'a Config, hook: &Hook) -> Vec<&'a Hook> {
    let mine: Vec<PathBuf> = shared_keys(hook).into_iter().map(|(_, p)| p).collect();
    cfg.hooks
        .values()
        .filter(|h| h.name == hook.name || shared_keys(h).iter().any(|(_, p)| mine.contains(p)))
        .collect()
}

/// Groups of hooks that share a working tree or a publish target: (what, folder, hooks).
/// `check` shows them.
pub fn shared(cfg: &Config) -> Vec<(&'static str, PathBuf, Vec<String>)> {
    let mut groups: Vec<(&'static str, PathBuf, Vec<String>)> = Vec::new();
    for hook in cfg.hooks.values() {
        for (what, key) in shared_keys(hook) {
            match groups.iter_mut().find(|g| g.1 == key) {
                Some(g) => g.2.push(hook.name.clone()),
                None => groups.push((what, key, vec![hook.name.clone()])),
            }
        }
    }
    groups.retain(|g| g.2.len() > 1);
    groups
}

/// Step 3 of the protocol for every holder: after releasing the lock, a hook sharing it
/// (or this one) with a delivery waiting gets a worker, when its lock is free. When it is
/// not, its holder will do the same.
pub fn hand_over(cfg: &Config, hook: &Hook, include_self: bool) -> Result<()> {
    for h in sharers(cfg, hook) {
        if h.name == hook.name && !include_self {
            continue;
        }
        let state = HookState::new(&cfg.state_dir, &h.name);
        if state.has_pending() && lock(h, &state, false)?.is_some() {
            spawn_worker(&cfg.file, &h.name, &state)?;
        }
    }
    // A preview whose worker production had to kill waits with nobody to build it.
    crate::build::preview::work::hand_over(cfg, hook)?;
    Ok(())
}

/// For a holder of the lock that does not build (`rollback`): waits for the hook's lock,
/// runs `f`, releases the lock and hands over what waits, as the worker does.
pub fn while_locked<T>(cfg: &Config, hook: &Hook, state: &HookState, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let held = lock(hook, state, true)?;
    let out = f();
    drop(held);
    hand_over(cfg, hook, true)?;
    out
}

/// Who builds now, for cleaning up after it if it dies (`recover`).
#[derive(Debug, Serialize, Deserialize)]
struct Builder {
    process: Identity,
    boot: String,
    /// Whether it leads its own session (an async worker, a sync build child): then the
    /// session is its build's, and what is left of it is found by session.
    session_leader: bool,
}

fn builder_path(state: &HookState) -> PathBuf {
    state.dir.join("builder")
}

/// Whether the process that last took this hook's lock to build (`builder`) is gone: then
/// a status that still says "building" is a dead builder's, even while another process
/// holds the lock (to recover it). Read without taking the lock, as `status` must.
pub fn builder_gone(state: &HookState) -> bool {
    let builder: Option<Builder> = fs::read(builder_path(state))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    builder.is_some_and(|b| b.boot != process::boot_id() || !b.process.alive())
}

fn note_builder(state: &HookState) {
    let Some(process) = Identity::me() else { return };
    // SAFETY: getsid(0) and getpid cannot fail.
    let session_leader = unsafe { libc::getsid(0) == libc::getpid() };
    let b = Builder {
        process,
        boot: process::boot_id(),
        session_leader,
    };
    if let Ok(json) = serde_json::to_vec(&b) {
        let _ = write_atomic(&builder_path(state), &json);
    }
}

/// With the lock held: a delivery taken by a builder that died before recording its build
/// waits again; a status that still says "building" belongs to a builder that died: what
/// is left of its processes is killed, and its build is recorded and told about as any
/// finished build (`finish`): `interrupted`, or `succeeded` when it had switched the site.
/// An interrupted build's delivery waits again, so that it is built, not only recorded
/// (unless a newer delivery waits: the build of the newest head covers both), once: when
/// that rebuild is interrupted too, on the same commit, it is recorded and not built again.
///
/// Without a daemon, this runs when someone next takes the lock: a worker started by the
/// next delivery, `run`, or `status` seeing the dead builder (`start_recovery`).
pub fn recover(_lock: &BuildLock, hook: &Hook, state: &HookState, log: &mut Log, reports: &mut Reports) -> Result<()> {
    if state.untake()? {
        log.warn(&format!(
            "delivery put back hook={} (its builder stopped before the build was recorded)",
            hook.name
        ));
    }
    let status = state.read_status()?;
    if status.state != State::Building {
        return Ok(());
    }
    let mut killed = status
        .current
        .as_ref()
        .map(|c| process::kill_by_env("DEPLOY_HOOK_LOG", &c.log))
        .unwrap_or(0);
    let builder: Option<Builder> = fs::read(builder_path(state))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(b) = builder.filter(|b| b.session_leader) {
        killed += process::kill_session(&b.process, &b.boot);
    }
    // A worker killed after it switched `to` to its release has published: that build
    // succeeded, it only missed writing so.
    // Web hosts are not asked (recovery must not wait on ssh): such a build is recorded
    // as interrupted, and the next build publishes again.
    let live = hook.publish.as_ref().and_then(|p| publish::live(p, None));
    let Some(c) = &status.current else {
        // Nothing says which build it was: only the state is put right.
        state.update_status(|s| s.state = State::Idle)?;
        log.warn(&format!(
            "build interrupted hook={} (its worker died; no record of which build)",
            hook.name
        ));
        return Ok(());
    };
    let published = c.release.is_some() && c.release == live;
    let record = c.recovered(published);
    let why = format!(
        "its worker died after {}; {killed} leftover processes killed",
        if published { "publishing" } else { "starting it" }
    );
    log.warn(&format!(
        "build {} hook={} id={} ({why})",
        record.result, hook.name, record.id
    ));
    let delivery = c.pending();
    // Built once more after an interruption, not for ever: a build whose step kills its
    // worker (memory, a `kill`) would otherwise be rebuilt, and reported, at every
    // `status`, `run` and delivery. A new delivery or `run` has a new id, and builds.
    let again = format!("{} {}", c.delivery, c.commit.as_deref().unwrap_or("-"));
    let rebuilt = rebuilt_path(state);
    let stop = !published && fs::read_to_string(&rebuilt).is_ok_and(|r| r == again);
    if stop {
        log.warn(&format!(
            "build {} hook={} id={} not built again: it was the rebuild of an interrupted build of the same commit; a new delivery or `run` builds it",
            record.result, hook.name, record.id
        ));
    } else if !published {
        state.put_back(&delivery)?;
        write_atomic(&rebuilt, again.as_bytes()).map_err(|e| Error::io("cannot write the rebuild marker", e))?;
    }
    // Its own log, when it is where our logs are (status.json is not trusted with a path).
    let log_path = Path::new(&c.log);
    let build_log = match log_path.parent() == Some(state.builds_dir().as_path()) {
        true => BuildLog::reopen(log_path, hook.log_max_bytes),
        false => BuildLog::discard(),
    }
    .or_else(|_| BuildLog::discard())
    .map_err(|e| Error::io("cannot open /dev/null", e))?;
    build_log.line(&format!(
        "\nrecovered {}: {why}\nresult: {}{}",
        record.finished,
        record.result,
        record
            .failed_step
            .as_ref()
            .map(|s| format!(" at {s}"))
            .unwrap_or_default()
    ));
    let mut env = pipeline::step_env(hook, state, None, &delivery, log_path);
    if let Some(commit) = &c.commit {
        env.insert("DEPLOY_HOOK_COMMIT".into(), commit.clone());
    }
    let ended = Finished {
        hook,
        state,
        record: record.clone(),
        // It ran every step and published: the same transition as a build that says so.
        live: if published { c.release.clone() } else { None },
        env,
        build_log: &build_log,
        recovered: true,
        reports: &mut *reports,
        preview_url: None,
    };
    finish::finished(ended, log, |_| {})?;
    let _ = build_log.seal();
    reports.publish_log(state, &record);
    Ok(())
}

/// The delivery and commit of the last interrupted build that recovery put back to be
/// built again (`recover`).
fn rebuilt_path(state: &HookState) -> PathBuf {
    state.dir.join("rebuilt")
}

/// `status` saw a builder that died: starts a worker, as a delivery does, to recover its
/// build (`recover`) and build its delivery again. Without trying the lock first, since
/// `status` only looks (`is_building`): the worker takes the lock, or finds it held and
/// leaves the recovery to its holder.
pub fn start_recovery(cfg: &Config, hook: &Hook, state: &HookState) -> Result<()> {
    spawn_worker(&cfg.file, &hook.name, state)
}

fn supersede_path(state: &HookState) -> std::path::PathBuf {
    state.dir.join("supersede")
}

/// Asks the running build to stop so that a new one starts from the newest head.
pub fn request_supersede(state: &HookState) -> Result<()> {
    if let Some(cur) = state.read_status()?.current {
        // Not waited for on disk: a delivery makes one write that waits (the marker), and
        // after a power cut there is no running build to stop.
        crate::build::state::write_replacing(&supersede_path(state), cur.id.as_bytes(), Wait::Nothing)
            .map_err(|e| Error::io("cannot write the supersede marker", e))?;
    }
    Ok(())
}

/// How far back the Gitee tokens a taken marker settles in `seen-tokens` are kept.
fn tokens_since(hook: &Hook) -> u128 {
    crate::build::tokens::horizon(time::now_ms(), hook.max_age_secs)
}

/// With the lock held: builds while a delivery is waiting. Returns the last build.
pub fn drain(
    lock: &BuildLock,
    hook: &Hook,
    state: &HookState,
    log: &mut Log,
    reports: &mut Reports,
) -> Result<Option<BuildRecord>> {
    recover(lock, hook, state, log, reports)?;
    note_builder(state);
    let _turn = production_turn(hook, state, log)?;
    let mut last = None;
    while let Some(p) = state.take_pending(tokens_since(hook))? {
        last = Some(build_one(hook, state, log, &p, reports)?);
    }
    Ok(last)
}

fn build_one(hook: &Hook, state: &HookState, log: &mut Log, p: &Pending, reports: &mut Reports) -> Result<BuildRecord> {
    let marker = supersede_path(state);
    let supersede = hook.on_busy == OnBusy::Supersede;
    let mut cancel = |id: &str| supersede && fs::read_to_string(&marker).is_ok_and(|m| m.trim() == id);
    let record = pipeline::build(
        Build {
            hook,
            state,
            log,
            cancel: &mut cancel,
            reports,
            preview: None,
        },
        p,
    )
    .inspect_err(|_| {
        // The build could not even be recorded (a full disk, a vanished state dir): put
        // the delivery back, so that the next delivery or `run` builds it.
        let _ = state.put_back(p);
    })?;
    if fs::read_to_string(&marker).is_ok_and(|m| m.trim() == record.id) {
        let _ = fs::remove_file(&marker);
    }
    Ok(record)
}

/// Production comes first (`preview::first`): with previews, the machine is taken for the
/// production build, and the preview builds that hold it are stopped (and built again
/// after). Never waits for a preview build.
fn production_turn(hook: &Hook, state: &HookState, log: &mut Log) -> Result<Option<first::ProductionTurn>> {
    if hook.previews.is_none() {
        return Ok(None);
    }
    let store = Store {
        hook_dir: state.dir.clone(),
    };
    let (turn, taken) = first::production_turn(&state.dir, &store)?;
    for name in &taken.stopped {
        log.info(&format!(
            "preview stopped hook={} preview={name} (a production build comes first; it is built again after)",
            hook.name
        ));
    }
    for name in &taken.killed {
        log.warn(&format!(
            "preview worker killed hook={} preview={name} (it did not stop in time for a production build)",
            hook.name
        ));
    }
    if taken.gave_up {
        log.warn(&format!(
            "previews did not let go hook={}; the production build runs beside them",
            hook.name
        ));
    }
    Ok(Some(turn))
}

/// The detached worker: build until nothing waits, then hand over to the hooks that share
/// the lock, and exit.
pub fn work(cfg: &Config, hook: &Hook, log: &mut Log) -> Result<()> {
    let state = HookState::new(&cfg.state_dir, &hook.name);
    // What a step leaves running (a `setsid` child, a daemon) is reparented to us and ended
    // when the step ends (process::kill_orphans).
    process::become_subreaper();
    let mut reports = Reports::new(hook, cfg);
    let built = loop {
        let Some(lock) = lock(hook, &state, false)? else {
            break Ok(()); // the holder hands over what waits
        };
        let drained = drain(&lock, hook, &state, log, &mut reports);
        drop(lock);
        if drained.is_err() || !state.has_pending() {
            break drained.map(drop);
        }
    };
    // Only after our last release: a worker started here for another hook of this lock is
    // a child of ours, and is spared by kill_orphans anyway.
    let handed = hand_over(cfg, hook, false);
    // With the lock let go and the next worker started: what the report still sends
    // delays nobody's build.
    reports.join();
    built.and(handed)
}

/// A worker for `hook`: `deploy-hook __worker` in its own session, with a cleared
/// environment, stdin on /dev/null, no descriptor of ours (they are all close-on-exec),
/// and no `PR_SET_PDEATHSIG`: it goes on when the web server kills its parent. Its stderr
/// goes into `worker.log`.
fn worker(
    config_file: &Path,
    hook: &str,
    preview: Option<&str>,
    state: &HookState,
    wait: bool,
) -> Result<(Process, File)> {
    // 0640 like every other state file: its lines name builds and paths.
    let stderr = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(state.worker_log_path())
        .map_err(|e| Error::io(format!("cannot open {}", state.worker_log_path().display()), e))?;
    let mut p = Process::new("/proc/self/exe");
    p.arg0("deploy-hook").arg("__worker");
    if wait {
        p.arg("--wait");
    }
    if let Some(name) = preview {
        p.arg("--preview").arg(name);
    }
    p.arg("--config")
        .arg(config_file)
        .arg(hook)
        .env_var("PATH", "/usr/local/bin:/usr/bin:/bin")
        .new_session()
        .outlive_us();
    Ok((p, stderr))
}

/// Starts a detached worker for `hook`, so the web server's response completes as soon as
/// this process exits (stdout and stderr are not the web server's).
pub fn spawn_worker(config_file: &Path, hook: &str, state: &HookState) -> Result<()> {
    spawn(config_file, hook, None, state)
}

/// Starts a detached worker for preview `name` of `hook` (its state folder is `state`).
pub fn spawn_preview_worker(config_file: &Path, hook: &str, name: &str, state: &HookState) -> Result<()> {
    spawn(config_file, hook, Some(name), state)
}

fn spawn(config_file: &Path, hook: &str, preview: Option<&str>, state: &HookState) -> Result<()> {
    let (p, stderr) = worker(config_file, hook, preview, state, false)?;
    // The child is not waited for: when this process exits it is reparented and reaped.
    let child = p
        .spawn(Stdio::null(), Stdio::null(), Stdio::from(stderr))
        .map_err(|e| Error::io("cannot start the build worker", e))?;
    process::spare(child.id());
    Ok(())
}

/// Sync mode: the build runs in a worker with a cleared environment, as in async mode, and
/// this process waits for its result. So no step has the request's headers (a GitLab
/// token, a Gitee password) in an ancestor's environment; and the worker leads its own
/// session, so that what a dead one leaves behind can be found (`recover`). If the web
/// server gives up on this request and kills us, the build goes on.
pub fn build_in_worker(config_file: &Path, hook: &Hook, state: &HookState) -> Result<BuildRecord> {
    let (p, _) = worker(config_file, &hook.name, None, state, true)?;
    let mut child = p
        .spawn(Stdio::null(), Stdio::piped(), Stdio::piped())
        .map_err(|e| Error::io("cannot start the build worker", e))?;
    // The build's log lines go where ours go (the web server's error log), as long as we
    // live; through a pipe, not our stderr itself, so that a build that outlives us (the
    // web server gave up on this request) holds nothing of the web server's open.
    let relay = child.take_stderr().map(|mut from| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut std::io::stderr());
        })
    });
    // The answer is the result, not the worker's end: after handing it over the worker
    // closes both pipes and may still send the build's report (report::JOIN). It is not
    // waited for, as an async delivery's worker is not.
    let mut out = Vec::new();
    if let Some(mut stdout) = child.take_stdout() {
        let _ = std::io::Read::read_to_end(&mut stdout, &mut out);
    }
    if let Some(r) = relay {
        let _ = r.join();
    }
    process::spare(child.id());
    serde_json::from_slice(&out).map_err(|_| {
        Error::Internal(match child.ended() {
            Some(status) => format!("the build worker ended ({status}) without a result; its errors are above"),
            None => "the build worker gave no result; its errors are above".to_string(),
        })
    })
}

/// `run --wait` and a sync delivery's worker: wait for the lock and build here, then hand
/// over what waits. When another process built after this delivery was recorded, its
/// result is this delivery's result.
pub fn build_now(
    cfg: &Config,
    hook: &Hook,
    state: &HookState,
    log: &mut Log,
    reports: &mut Reports,
) -> Result<BuildRecord> {
    process::become_subreaper();
    // A lock that is waited for is never given up on: `None` cannot come back.
    let held = lock(hook, state, true)?.ok_or_else(|| Error::Internal("cannot lock the build".into()))?;
    let built = (|| {
        recover(&held, hook, state, log, reports)?;
        note_builder(state);
        let _turn = production_turn(hook, state, log)?;
        match state.take_pending(tokens_since(hook))? {
            Some(p) => build_one(hook, state, log, &p, reports),
            // Another holder took this delivery and built it: its record is the answer.
            None => state
                .read_status()?
                .last
                .ok_or_else(|| Error::Internal("no build recorded".into())),
        }
    })();
    drop(held);
    let handed = hand_over(cfg, hook, true);
    let record = built?;
    handed?;
    Ok(record)
}
