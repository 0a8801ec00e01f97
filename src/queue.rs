//! At most one build per hook at a time, and no delivery lost.
//!
//! The protocol, with `build.lock` (flock, held for the whole build; the kernel drops it
//! when its holder dies) and the `pending` marker (the newest delivery still waiting):
//!
//! 1. A delivery writes `pending` first, then tries the lock without blocking.
//!    Got it: it starts a worker. Held: it answers at once; the holder will see `pending`.
//! 2. A worker, holding the lock, takes `pending` and builds; it repeats while `pending`
//!    is there again after a build. Each build fetches the branch head as it is when the
//!    build starts, so one follow-up build covers any number of deliveries.
//! 3. After releasing the lock the worker looks at `pending` once more, and if it is there
//!    tries the lock again. This closes the race with a delivery that wrote `pending` and
//!    found the lock held just before the release: either that delivery's own try, or the
//!    worker's second look, sees the other's step.
//!
//! So the last build always starts after the last delivery was recorded.

use std::fs::{self, File};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use fs2::FileExt;

use crate::config::{Hook, OnBusy};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::pipeline::{self, Build};
use crate::process;
use crate::state::{BuildRecord, HookState, Pending};
use crate::time;

/// The hook's build lock; dropping it releases it.
pub struct BuildLock {
    _file: File,
}

pub fn try_lock(state: &HookState) -> Result<Option<BuildLock>> {
    let file = state.open_lock_file(&state.build_lock_path())?;
    match file.try_lock_exclusive() {
        Ok(()) => Ok(Some(BuildLock { _file: file })),
        Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(None),
        Err(e) => Err(Error::io("cannot lock build.lock", e)),
    }
}

pub fn wait_lock(state: &HookState) -> Result<BuildLock> {
    let file = state.open_lock_file(&state.build_lock_path())?;
    file.lock_exclusive()
        .map_err(|e| Error::io("cannot lock build.lock", e))?;
    Ok(BuildLock { _file: file })
}

/// Whether a build holds the lock right now.
pub fn is_building(state: &HookState) -> Result<bool> {
    Ok(try_lock(state)?.is_none())
}

/// With the lock held: a status that still says "building" belongs to a worker that died.
/// Its leftover processes are killed and the build is recorded as interrupted.
pub fn recover(_lock: &BuildLock, hook: &Hook, state: &HookState, log: &mut Log) -> Result<()> {
    let status = state.read_status()?;
    if status.state != "building" {
        return Ok(());
    }
    let killed = status
        .current
        .as_ref()
        .map(|c| process::kill_by_env("DEPLOY_HOOK_LOG", &c.log))
        .unwrap_or(0);
    let now = time::now();
    // A worker killed after it switched `to` to its release has published: that build
    // succeeded, it only missed writing so.
    let live = hook.publish.as_ref().and_then(|p| crate::publish::live(&p.to));
    let published = |c: &crate::state::Current| c.release.is_some() && c.release == live;
    state.update_status(|s| {
        let record = match s.current.take() {
            Some(c) if published(&c) => BuildRecord {
                duration_secs: time::parse_rfc3339(&c.started)
                    .map(|t| now.as_secs().saturating_sub(t) as f64)
                    .unwrap_or(0.0),
                id: c.id,
                delivery: c.delivery,
                started: c.started,
                finished: time::rfc3339(now),
                result: "succeeded".into(),
                commit: c.commit,
                failed_step: None,
                failed_at: None,
                log: c.log,
                release: c.release.clone(),
            },
            Some(c) => BuildRecord {
                duration_secs: time::parse_rfc3339(&c.started)
                    .map(|t| now.as_secs().saturating_sub(t) as f64)
                    .unwrap_or(0.0),
                id: c.id,
                delivery: c.delivery,
                started: c.started,
                finished: time::rfc3339(now),
                result: "interrupted".into(),
                commit: c.commit,
                failed_step: c.step,
                failed_at: None,
                log: c.log,
                release: None,
            },
            None => BuildRecord {
                id: "unknown".into(),
                delivery: String::new(),
                started: String::new(),
                finished: time::rfc3339(now),
                result: "interrupted".into(),
                commit: None,
                failed_step: None,
                failed_at: None,
                log: String::new(),
                duration_secs: 0.0,
                release: None,
            },
        };
        if record.result == "succeeded" {
            s.live_release = record.release.clone();
        }
        s.finish(record);
    })?;
    let was_published = status.current.as_ref().is_some_and(published);
    log.warn(&format!(
        "build {} hook={} id={} (its worker died after {}; {killed} leftover processes killed)",
        if was_published { "succeeded" } else { "interrupted" },
        hook.name,
        status.current.map(|c| c.id).unwrap_or_default(),
        if was_published { "publishing" } else { "starting it" }
    ));
    Ok(())
}

fn supersede_path(state: &HookState) -> std::path::PathBuf {
    state.dir.join("supersede")
}

/// Asks the running build to stop so that a new one starts from the newest head.
pub fn request_supersede(state: &HookState) -> Result<()> {
    if let Some(cur) = state.read_status()?.current {
        crate::state::write_atomic(&supersede_path(state), cur.id.as_bytes())
            .map_err(|e| Error::io("cannot write the supersede marker", e))?;
    }
    Ok(())
}

/// With the lock held: builds while a delivery is waiting. Returns the last build.
pub fn drain(lock: &BuildLock, hook: &Hook, state: &HookState, log: &mut Log) -> Result<Option<BuildRecord>> {
    recover(lock, hook, state, log)?;
    let mut last = None;
    while let Some(p) = state.take_pending()? {
        last = Some(build_one(hook, state, log, &p)?);
    }
    Ok(last)
}

fn build_one(hook: &Hook, state: &HookState, log: &mut Log, p: &Pending) -> Result<BuildRecord> {
    let marker = supersede_path(state);
    let supersede = hook.on_busy == OnBusy::Supersede;
    let mut cancel = |id: &str| supersede && fs::read_to_string(&marker).is_ok_and(|m| m.trim() == id);
    let record = pipeline::build(
        Build {
            hook,
            state,
            log,
            cancel: &mut cancel,
        },
        p,
    )
    .inspect_err(|_| {
        // The build could not even be recorded (a full disk, a vanished state dir): put
        // the delivery back, so that the next delivery or `run` builds it.
        if !state.has_pending() {
            let _ = state.mark_pending(p);
        }
    })?;
    if fs::read_to_string(&marker).is_ok_and(|m| m.trim() == record.id) {
        let _ = fs::remove_file(&marker);
    }
    Ok(record)
}

/// The detached worker: build until nothing waits, then exit.
pub fn work(hook: &Hook, state: &HookState, log: &mut Log) -> Result<()> {
    loop {
        let Some(lock) = try_lock(state)? else {
            return Ok(()); // the holder will see `pending`
        };
        drain(&lock, hook, state, log)?;
        drop(lock);
        if !state.has_pending() {
            return Ok(());
        }
    }
}

/// Starts a detached worker for `hook`: its own session, stdin and stdout on /dev/null,
/// stderr into `worker.log`, and no descriptor of ours (they are all close-on-exec), so the
/// web server's response completes as soon as this process exits.
pub fn spawn_worker(config_file: &Path, hook: &str, state: &HookState) -> Result<()> {
    // 0640 like every other state file: its lines name builds and paths.
    let stderr = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(state.worker_log_path())
        .map_err(|e| Error::io(format!("cannot open {}", state.worker_log_path().display()), e))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("deploy-hook")
        .arg("__worker")
        .arg("--config")
        .arg(config_file)
        .arg(hook)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: setsid(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    // The child is not waited for: when this process exits it is reparented and reaped.
    cmd.spawn()
        .map(drop)
        .map_err(|e| Error::io("cannot start the build worker", e))
}

/// Sync mode and `run --wait`: wait for the lock and build here. When another process
/// built after this delivery was recorded, its result is this delivery's result.
pub fn build_now(config_file: &Path, hook: &Hook, state: &HookState, log: &mut Log) -> Result<BuildRecord> {
    let lock = wait_lock(state)?;
    recover(&lock, hook, state, log)?;
    let record = match state.take_pending()? {
        Some(p) => build_one(hook, state, log, &p)?,
        None => state
            .read_status()?
            .last
            .ok_or_else(|| Error::io("no build recorded", std::io::Error::from(std::io::ErrorKind::NotFound)))?,
    };
    drop(lock);
    if state.has_pending() && try_lock(state)?.is_some() {
        spawn_worker(config_file, &hook.name, state)?;
    }
    Ok(record)
}
