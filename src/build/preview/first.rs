//! Production comes first: a production build never waits for a preview build, and no
//! preview build shares the machine with it.
//!
//! `<state_dir>/<hook>/first.lock` (flock(2)): every preview build holds it shared for the
//! whole build, and waits for it while production holds it; production holds it exclusive
//! for its builds. When production finds previews holding it, it asks each running preview
//! build to stop (the preview's `stop` file names the build, which the build polls as it
//! polls for `supersede`: its step's process group gets SIGTERM, then SIGKILL), and waits
//! for the lock, which the kernel hands over the moment the last preview lets go. It waits
//! for the lock, not for processes to vanish: a process group's zombies keep answering
//! `kill(-pgid, 0)` until their new parent reaps them. A preview that has not let go after
//! the steps' grace period has its worker killed.
//!
//! Shared locks are granted at once beside another shared holder, so a stopped preview's
//! worker asking for its turn again would get it before the running preview let go, and
//! production would stop rebuild after rebuild. `first.gate` closes the door: production
//! holds it exclusive from before it asks for `first.lock` until its turn ends, and a
//! preview takes its turn only through it (shared, for the moment of taking `first.lock`).
//!
//! A stopped preview build is recorded as such, its delivery waits again, and its worker
//! waits for the lock: the preview is built again as soon as production is done. Measured
//! on a VitePress site, a production push during a preview build took 0.99 times as long
//! as alone, stopping the preview costing about 80 ms (BENCHMARKS.md).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs2::FileExt;

use super::store::Store;
use crate::build::state::{open_lock_file, write_atomic, HookState};
use crate::error::{Error, Result};
use crate::sys::process::{self, Identity};

/// How long production lets a preview take to stop on its own before its worker is
/// killed: the steps' own grace period (SIGTERM, then SIGKILL) and a margin.
const STOP_GRACE: Duration = Duration::from_secs(process::KILL_GRACE.as_secs() + 2);
/// After this, production builds even if a preview could not be made to let go (a process
/// stuck in the kernel): being late is worse than sharing the CPU.
const GIVE_UP: Duration = Duration::from_secs(30);

fn lock_path(hook_dir: &Path) -> PathBuf {
    hook_dir.join("first.lock")
}

/// The door to `first.lock` (see above).
fn gate_path(hook_dir: &Path) -> PathBuf {
    hook_dir.join("first.gate")
}

fn open(hook_dir: &Path) -> Result<File> {
    open_lock_file(&lock_path(hook_dir))
}

/// The stop request of a preview build: its state folder's `stop`, holding the build's id.
fn stop_path(preview_dir: &Path) -> PathBuf {
    preview_dir.join("stop")
}

/// Who holds the lock for a preview: `worker` in its state folder (`pid:start`).
fn worker_path(preview_dir: &Path) -> PathBuf {
    preview_dir.join("worker")
}

/// A preview build's hold on the machine: shared with other previews, never with
/// production. Dropping it lets go.
pub struct PreviewTurn {
    _file: File,
    worker: PathBuf,
}

impl Drop for PreviewTurn {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.worker);
    }
}

/// Waits until production does not build, and holds the machine for the preview whose
/// state folder is `preview_dir`. A stop request left from before is void.
pub fn preview_turn(hook_dir: &Path, preview_dir: &Path) -> Result<PreviewTurn> {
    let gate = open_lock_file(&gate_path(hook_dir))?;
    // Waits while production waits for its turn or has it.
    FileExt::lock_shared(&gate).map_err(|e| Error::io("cannot lock first.gate", e))?;
    let file = open(hook_dir)?;
    FileExt::lock_shared(&file).map_err(|e| Error::io("cannot lock first.lock", e))?;
    drop(gate);
    let _ = fs::remove_file(stop_path(preview_dir));
    let worker = worker_path(preview_dir);
    if let Some(me) = Identity::me() {
        let _ = write_atomic(&worker, me.to_string().as_bytes());
    }
    Ok(PreviewTurn { _file: file, worker })
}

/// Asks the build of the preview whose state folder is `preview_dir` that runs now, if any,
/// to stop (production's turn, the preview's removal).
pub fn stop(preview_dir: &Path) {
    let status = HookState {
        dir: preview_dir.to_path_buf(),
    }
    .read_status()
    .unwrap_or_default();
    if let Some(cur) = status
        .current
        .filter(|_| status.state == crate::build::state::State::Building)
    {
        let _ = write_atomic(&stop_path(preview_dir), cur.id.as_bytes());
    }
}

/// Whether production asked the preview build `id` to stop (polled while it runs).
pub fn stop_requested(preview_dir: &Path, id: &str) -> bool {
    fs::read_to_string(stop_path(preview_dir)).is_ok_and(|s| s.trim() == id)
}

/// Production's hold on the machine: no preview builds while it is held.
pub struct ProductionTurn {
    _file: File,
    _gate: File,
}

/// What taking the machine for production took: preview builds asked to stop, and preview
/// workers killed because they did not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    pub stopped: Vec<String>,
    pub killed: Vec<String>,
    /// The previews did not let go in time; production builds anyway.
    pub gave_up: bool,
}

/// Takes the machine for a production build of the hook whose state folder is `hook_dir`,
/// stopping the preview builds that hold it. Never waits for a preview build to end.
pub fn production_turn(hook_dir: &Path, store: &Store) -> Result<(ProductionTurn, Taken)> {
    let gate = open_lock_file(&gate_path(hook_dir))?;
    // Held shared by a preview only while it takes `first.lock`, which it gets at once
    // (nobody holds that exclusive without this gate): never a preview build's wait.
    FileExt::lock_exclusive(&gate).map_err(|e| Error::io("cannot lock first.gate", e))?;
    let file = open(hook_dir)?;
    let mut taken = Taken::default();
    let started = Instant::now();
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => {
                return Ok((
                    ProductionTurn {
                        _file: file,
                        _gate: gate,
                    },
                    taken,
                ))
            }
            Err(e) if e.raw_os_error() != fs2::lock_contended_error().raw_os_error() => {
                return Err(Error::io("cannot lock first.lock", e));
            }
            Err(_) => {}
        }
        // Looked at each time: a preview may have taken its turn just before us and
        // started its build since.
        for r in store.list() {
            let dir = store.dir(&r.name);
            let status = HookState { dir: dir.clone() }.read_status().unwrap_or_default();
            if let Some(cur) = status
                .current
                .filter(|_| status.state == crate::build::state::State::Building)
            {
                if !stop_requested(&dir, &cur.id) {
                    let _ = write_atomic(&stop_path(&dir), cur.id.as_bytes());
                    taken.stopped.push(r.name.clone());
                }
            }
        }
        let waited = started.elapsed();
        if waited > STOP_GRACE && taken.killed.is_empty() {
            for r in store.list() {
                let dir = store.dir(&r.name);
                let worker = fs::read_to_string(worker_path(&dir))
                    .ok()
                    .and_then(|w| Identity::parse(w.trim()));
                if let Some(w) = worker.filter(Identity::alive) {
                    // SAFETY: plain kill(2) of a process we identified by pid and start time.
                    unsafe {
                        libc::kill(w.pid as i32, libc::SIGKILL);
                    }
                    let status = HookState { dir: dir.clone() }.read_status().unwrap_or_default();
                    if let Some(cur) = status.current {
                        process::kill_by_env("DEPLOY_HOOK_LOG", &cur.log);
                    }
                    taken.killed.push(r.name.clone());
                }
            }
        }
        if waited > GIVE_UP {
            taken.gave_up = true;
            return Ok((
                ProductionTurn {
                    _file: file,
                    _gate: gate,
                },
                taken,
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::preview::Subject;
    use crate::build::state::Current;

    fn temp(name: &str) -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("dh-first-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::new(&dir, "docs");
        fs::create_dir_all(&store.hook_dir).unwrap();
        (dir, store)
    }

    fn building(store: &Store, name: &str, id: &str) {
        HookState { dir: store.dir(name) }
            .update_status(|s| {
                s.state = crate::build::state::State::Building;
                s.current = Some(Current {
                    id: id.into(),
                    delivery: String::new(),
                    started: String::new(),
                    pid: std::process::id(),
                    log: "/nonexistent/log".into(),
                    commit: None,
                    step: None,
                    step_started: None,
                    release: None,
                    config: None,
                    event: String::new(),
                    git_ref: String::new(),
                });
            })
            .unwrap();
    }

    #[test]
    fn production_stops_a_running_preview_and_previews_wait_for_production() {
        let (dir, store) = temp("stop");
        let (r, _) = store.find_or_make(&Subject::Pull(7), "refs/pull/7/head").unwrap();
        let pdir = store.dir(&r.name);
        let hook_dir = store.hook_dir.clone();
        // the preview build: holds its turn until asked to stop, as a step's cancel poll would
        let turn = preview_turn(&hook_dir, &pdir).unwrap();
        assert!(worker_path(&pdir).exists());
        building(&store, &r.name, "b1");
        let pdir2 = pdir.clone();
        let preview = std::thread::spawn(move || {
            while !stop_requested(&pdir2, "b1") {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(turn);
        });
        let (prod, taken) = production_turn(&hook_dir, &store).unwrap();
        preview.join().unwrap();
        assert_eq!(taken.stopped, ["pr-7"]);
        assert!(taken.killed.is_empty() && !taken.gave_up);
        assert!(!worker_path(&pdir).exists(), "the stopped preview let go");
        // while production builds, no preview gets its turn; after, one does
        assert!(FileExt::try_lock_shared(&open(&hook_dir).unwrap()).is_err());
        drop(prod);
        assert!(FileExt::try_lock_shared(&open(&hook_dir).unwrap()).is_ok());
        // a stop request of an earlier build does not stop the next one
        let t = preview_turn(&hook_dir, &pdir).unwrap();
        assert!(!stop_requested(&pdir, "b1"));
        drop(t);
        // nothing holds it: production takes it at once and stops nothing
        let (_p, taken) = production_turn(&hook_dir, &store).unwrap();
        assert_eq!(taken, Taken::default());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_preview_that_asks_for_its_turn_while_production_waits_comes_after_production() {
        // A stopped preview's worker asks for its turn again at once; as a shared lock it
        // would be granted beside the preview still letting go, again and again, and
        // production would wait for each rebuild to be stopped (seen: three stops in a row).
        let (dir, store) = temp("gate");
        let (r, _) = store.find_or_make(&Subject::Pull(7), "refs/pull/7/head").unwrap();
        let pdir = store.dir(&r.name);
        let hook_dir = store.hook_dir.clone();
        let turn = preview_turn(&hook_dir, &pdir).unwrap();
        building(&store, &r.name, "b1");
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, h, s) = (order.clone(), hook_dir.clone(), store.hook_dir.clone());
        let production = std::thread::spawn(move || {
            let store = Store { hook_dir: s };
            let (t, _) = production_turn(&h, &store).unwrap();
            o.lock().unwrap().push("production");
            drop(t);
        });
        // production waits: it has asked the running build to stop
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stop_requested(&pdir, "b1") {
            assert!(Instant::now() < deadline, "production never asked the preview to stop");
            std::thread::sleep(Duration::from_millis(2));
        }
        // the same preview's worker (or another preview's) asks for its turn again
        let (o, h, p) = (order.clone(), hook_dir.clone(), pdir.clone());
        let again = std::thread::spawn(move || {
            let t = preview_turn(&h, &p).unwrap();
            o.lock().unwrap().push("preview");
            drop(t);
        });
        // given the time to be (wrongly) granted beside the running build
        let deadline = Instant::now() + Duration::from_millis(300);
        while order.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(turn);
        production.join().unwrap();
        again.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["production", "preview"]);
        fs::remove_dir_all(dir).unwrap();
    }
}
