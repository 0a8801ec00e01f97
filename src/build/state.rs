//! The per-hook state folder, `<state_dir>/<hook>/`, and the files in it.
//!
//! ```text
//! build.lock     flock(2) held by the one process that builds (see queue.rs)
//! state.lock     flock(2) held for a moment around every change to the files below
//! pending        the newest delivery still waiting for a build (JSON)
//! taking         that delivery once a builder took it, until its build is recorded
//! builder        who builds now: pid, start time, boot, session (to clean up after it)
//! status.json    state, pending, the running build, the last builds
//! seen-tokens    Gitee signing tokens already accepted, for the replay check (tokens.rs)
//! builds/ID.log  one log per build
//! home/          HOME of the steps, unless the hook's env sets one
//! worker.log     stderr of detached workers (warnings and errors when syslog and log.file fail)
//! force          `run --force` asks the next build to run every step (pipeline.rs)
//! ```
//!
//! Every file is replaced with write-to-temp + rename, so a reader never sees half a file.
//!
//! ## What waits for the disk, and why that is enough
//!
//! A write that waits for the disk (fdatasync) costs from a millisecond on a quiet disk to
//! tens while a build writes, and a delivery is answered while the forge waits; so a
//! delivery makes one such write at most, and a ping, an ignored event, a rejected or a
//! replayed delivery none. The one is the `pending` marker, before the answer
//! (`Wait::Durable`): a delivery answered 202 is on disk, and a power cut cannot lose it.
//! `status.json`'s copy of "pending" is written without waiting: the marker is the truth,
//! and every status write puts the copy right. The builder's writes wait as before
//! (`Wait::Whole`), off the delivery's path.
//!
//! A Gitee push also records its signing token, so that a replay builds nothing. The
//! token is reserved in `seen-tokens` by a line appended without waiting for the disk,
//! naming the process that answers (pid and start time), and is accepted by going into
//! the marker (`Pending::tokens`), in that one write that waits. A token is taken while
//! the waiting marker holds it, while a live process reserves it, or once it is settled
//! in `seen-tokens`: a builder that takes the marker first writes its tokens there as
//! accepted, waiting for the disk, then takes it (`take_pending`). So at every moment an
//! accepted token is on disk in the marker or in `seen-tokens`. After a power cut:
//!
//! - the marker is on disk: the delivery is built once, and a replay finds its token in
//!   the marker;
//! - the marker is not: the cut came before its write was done, so the delivery was not
//!   answered 202 and the forge sends it again; its reservation, if it reached the disk,
//!   names a process of the boot before, which holds nothing, so that retry is built. The
//!   same goes for a process killed between the reservation and the marker.
//!
//! So no delivery answered 202 is lost, and no replay is built. What a cut can still
//! cost: falling between the marker's rename and the end of its flush, it may leave the
//! new name with no content on a filesystem that allocates late. Such a marker still asks
//! for a build (an unreadable marker is built: `take_pending`) but has lost its token, so
//! the forge's retry of that unanswered delivery is built once more: two builds of one
//! push, the second one usually `unchanged`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use fs2::FileExt;
use serde::{Deserialize, Serialize};

pub use crate::error::BuildResult;
use crate::error::{Error, Result};
use crate::publish;

/// How many finished builds `status.json` remembers.
pub const HISTORY: usize = 10;

/// What a hook's builder does, as `state` in status.json says it. A status that says
/// `building` while nobody holds the build lock belongs to a builder that died
/// (`queue::recover`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Building,
    /// No build runs (an unknown word reads as this: the lock says the rest).
    #[default]
    #[serde(other)]
    Idle,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildRecord {
    pub id: String,
    pub delivery: String,
    pub started: String,
    pub finished: String,
    pub result: BuildResult,
    pub commit: Option<String>,
    pub failed_step: Option<String>,
    /// Where it failed by stage name and position only (`step 2 (deploy)`), for answers
    /// and syslog, which must not carry a step's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
    pub log: String,
    #[serde(default)]
    pub duration_secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The hook was held (a rollback): `release` was made on every destination but no
    /// target was switched to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

/// The build that is running now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Current {
    pub id: String,
    pub delivery: String,
    pub started: String,
    pub pid: u32,
    pub log: String,
    pub commit: Option<String>,
    /// The command line of the running step, or "git fetch ..." while syncing.
    pub step: Option<String>,
    pub step_started: Option<String>,
    /// The release this build made, set just before `to` is switched to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// `pipeline::config_hash` of the hook this build runs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The delivery's event and ref: with `delivery`, what `queue::recover` puts back to
    /// be built again when this build's worker dies.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub git_ref: String,
}

impl Current {
    /// The delivery this build is for, to be built again (`queue::recover`).
    pub fn pending(&self) -> Pending {
        Pending {
            delivery: self.delivery.clone(),
            event: self.event.clone(),
            git_ref: self.git_ref.clone(),
            received: crate::sys::time::rfc3339(crate::sys::time::now()),
            tokens: Vec::new(),
        }
    }

    /// This build's record, made by a later process because its worker died: ended now,
    /// succeeded when it had published (`to` was switched to its release), else
    /// interrupted in the step it was running (`queue::recover`, a preview's `recover`).
    pub fn recovered(&self, published: bool) -> BuildRecord {
        use crate::sys::time;
        let now = time::now();
        BuildRecord {
            duration_secs: time::parse_rfc3339(&self.started)
                .map(|t| now.as_secs().saturating_sub(t) as f64)
                .unwrap_or(0.0),
            id: self.id.clone(),
            delivery: self.delivery.clone(),
            started: self.started.clone(),
            finished: time::rfc3339(now),
            result: if published {
                BuildResult::Succeeded
            } else {
                BuildResult::Interrupted
            },
            commit: self.commit.clone(),
            failed_step: if published { None } else { self.step.clone() },
            failed_at: None,
            log: self.log.clone(),
            release: if published { self.release.clone() } else { None },
            held: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub state: State,
    pub pending: bool,
    pub last: Option<BuildRecord>,
    #[serde(default)]
    pub current: Option<Current>,
    /// Finished builds, newest first.
    #[serde(default)]
    pub history: Vec<BuildRecord>,
    /// The published release, when the hook publishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_release: Option<String>,
    /// The last `deploy-hook rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rollback: Option<Rollback>,
    /// What the last succeeded build built: what an `unchanged` build compares with. A
    /// build that did not succeed never replaces it. (`if_changed` steps compare with the
    /// checkout's own record, tree.rs: what they leave is the checkout's, not the hook's.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Base>,
    /// What was live, newest first, with when and how: the way back `rollback` walks
    /// (`publish::releases`), which pruning keeps within `keep`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_history: Vec<publish::Live>,
    /// Set by `rollback`, lifted by `resume`: builds make their releases but no
    /// destination is switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<publish::Held>,
    /// Releases the last prune could not remove (`check` reports them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune_failures: Vec<publish::PruneFailure>,
}

/// The last succeeded build, as later builds compare with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Base {
    pub id: String,
    pub commit: String,
    /// `pipeline::config_hash` of the hook when it built.
    pub config: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rollback {
    pub from: Option<String>,
    pub to: String,
    pub at: String,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            state: State::Idle,
            pending: false,
            last: None,
            current: None,
            history: Vec::new(),
            live_release: None,
            last_rollback: None,
            base: None,
            live_history: Vec::new(),
            held: None,
            prune_failures: Vec::new(),
        }
    }
}

impl Status {
    /// `release` went live now, `by` a publish, a rollback or a resume: the live release and
    /// the live history (`publish::releases::went_live`).
    pub fn went_live(&mut self, release: &str, by: publish::By) {
        self.live_release = Some(release.to_string());
        publish::releases::went_live(
            &mut self.live_history,
            release,
            by,
            crate::sys::time::rfc3339(crate::sys::time::now()),
        );
    }

    /// The one transition "a build finished", whoever records it: the build's own worker
    /// (`pipeline::build`) or the next holder of the lock after its worker died
    /// (`queue::recover`). `live` is the release this build switched to, if it did (not
    /// while a rollback holds the site, nor for an unchanged build).
    ///
    /// A succeeded build becomes the base that later builds compare with (`unchanged`),
    /// with the config it ran with (`Current::config`). Any other result leaves the base.
    pub fn finish(&mut self, record: BuildRecord, live: Option<String>) {
        let config = self.current.take().filter(|c| c.id == record.id).and_then(|c| c.config);
        if let Some(release) = &live {
            self.went_live(release, publish::By::Publish);
        }
        if record.result == BuildResult::Succeeded {
            if let (Some(commit), Some(config)) = (&record.commit, config) {
                self.base = Some(Base {
                    id: record.id.clone(),
                    commit: commit.clone(),
                    config,
                    release: record.release.clone(),
                });
            }
        }
        self.state = State::Idle;
        self.history.insert(0, record.clone());
        self.history.truncate(HISTORY);
        self.last = Some(record);
    }
}

/// A delivery waiting for its build. Only the newest one is kept: a build always takes the
/// branch head as it is when the build starts, so older waiting deliveries add nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    pub delivery: String,
    pub event: String,
    pub git_ref: String,
    pub received: String,
    /// The Gitee signing tokens of the deliveries this marker stands for (`<sha256> <ms>`,
    /// as `seen-tokens` has them), until a builder takes it and settles them there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct HookState {
    pub dir: PathBuf,
}

/// Writes `data` to `path` through a temp file and rename(2), waiting for the disk before
/// the rename (`Wait::Whole`).
/// Opens (creating it, 0640, never truncating) a file that is only ever flocked: every
/// lock of a hook's state, its builds and its previews.
pub fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .open(path)
        .map_err(|e| Error::io(format!("cannot open {}{}", path.display(), planted(path)), e))
}

/// For an error on a file deploy-hook makes itself: when a symlink stands there (planted by
/// a build step: the folder is the build user's), what the error is really about and the
/// fix, else nothing. `check` reports the same before anything fails.
pub fn planted(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => format!(
            " (it is a symlink to {}, and deploy-hook makes this file itself: remove it, rm -- {})",
            fs::read_link(path).unwrap_or_default().display(),
            crate::sys::text::shell_quote(&path.to_string_lossy())
        ),
        _ => String::new(),
    }
}

pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_replacing(path, data, Wait::Whole)
}

/// What a replacing write (`write_replacing`) waits for. A reader never sees half a file
/// whichever it is; they differ in what a power cut leaves and in what they cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Nothing: a power cut may lose the write (the old file stays, or, on a filesystem
    /// that allocates late, an empty one). For what repeats another file (status.json's
    /// `pending`) or what the next write puts right (a build's progress).
    Nothing,
    /// The data, before the rename: after a power cut the file is the old one or the new
    /// one, whole. The rename itself reaches the disk with the filesystem's next commit
    /// (seconds later), in order with the changes made after it. For what must never be
    /// lost half-way: `status.json` (the live release, the hold), `seen-tokens`.
    Whole,
    /// The new name, after the rename, through the still open file: on ext4 (Debian's
    /// default) and xfs the one flush that puts the data on disk also commits the journal
    /// that holds the rename, so that when it returns the write survives a power cut. The
    /// usual flush-then-rename would need a second flush, of the folder, for that. A cut
    /// during the flush may leave the new name empty on a filesystem that allocates late:
    /// for the `pending` marker, whose unreadable form still asks for a build
    /// (`take_pending`).
    Durable,
}

/// `write_atomic`, waiting for the disk as `wait` says.
pub(super) fn write_replacing(path: &Path, data: &[u8], wait: Wait) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            if wait == Wait::Whole {
                f.sync_data()?;
            }
            Ok(f)
        })
        .and_then(|f| fs::rename(&tmp, path).map(|()| f));
    match written {
        Ok(f) if wait == Wait::Durable => f.sync_data(),
        Ok(_) => Ok(()),
        Err(e) => {
            // A half-written temp (a full disk, a file size limit) is removed, not left behind.
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

impl HookState {
    pub fn new(state_dir: &Path, hook: &str) -> HookState {
        HookState {
            dir: state_dir.join(hook),
        }
    }

    pub fn build_lock_path(&self) -> PathBuf {
        self.dir.join("build.lock")
    }
    pub fn pending_path(&self) -> PathBuf {
        self.dir.join("pending")
    }
    /// A taken delivery whose build is not recorded yet: see `take_pending`.
    pub fn taking_path(&self) -> PathBuf {
        self.dir.join("taking")
    }
    pub fn status_path(&self) -> PathBuf {
        self.dir.join("status.json")
    }
    pub fn builds_dir(&self) -> PathBuf {
        self.dir.join("builds")
    }
    pub fn home_dir(&self) -> PathBuf {
        self.dir.join("home")
    }
    pub fn worker_log_path(&self) -> PathBuf {
        self.dir.join("worker.log")
    }
    /// Written by `run --force`: the next build runs every step, even for a commit that is
    /// already live.
    pub fn force_path(&self) -> PathBuf {
        self.dir.join("force")
    }

    /// Creates the folders; the error says what to do about it.
    pub fn ensure(&self) -> Result<()> {
        for (dir, mode) in [(&self.dir, 0o750), (&self.builds_dir(), 0o750)] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .map_err(|e| Error::io(format!("cannot create the state folder {} (create it, owned by the user the web server runs deploy-hook as)", dir.display()), e))?;
        }
        Ok(())
    }

    pub fn open_lock_file(&self, path: &Path) -> Result<File> {
        open_lock_file(path)
    }

    /// Runs `f` with the state lock held: the short lock that orders every change to
    /// `pending`, `status.json` and `seen-tokens`.
    pub(super) fn locked<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let lock = self.open_lock_file(&self.dir.join("state.lock"))?;
        lock.lock_exclusive()
            .map_err(|e| Error::io("cannot lock state.lock", e))?;
        let out = f();
        let _ = FileExt::unlock(&lock);
        out
    }

    pub fn read_status(&self) -> Result<Status> {
        match fs::read(self.status_path()) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Status::default()),
            Err(e) => Err(Error::io(
                format!(
                    "cannot read {}{}",
                    self.status_path().display(),
                    planted(&self.status_path())
                ),
                e,
            )),
        }
    }

    /// status.json and whether a delivery waits for a build (`has_pending`), read together
    /// under the state lock: a delivery being taken is then seen waiting or building, never
    /// neither (`status --follow` decides from this which build to wait for).
    pub fn read_with_pending(&self) -> Result<(Status, bool)> {
        self.locked(|| Ok((self.read_status()?, self.has_pending())))
    }

    /// Writes status.json, with the state lock held. Every write goes through here, so
    /// `pending` is always the markers' word (`has_pending`), and a build recorded as
    /// building has its taken delivery (`taking`) settled.
    fn write_status_unlocked(&self, status: &mut Status, sync: bool) -> Result<()> {
        if status.state == State::Building {
            // The taken delivery's build is recorded now: it can no longer be lost.
            let _ = fs::remove_file(self.taking_path());
        }
        status.pending = self.has_pending();
        let mut json = serde_json::to_vec_pretty(status).unwrap_or_default();
        json.push(b'\n');
        let wait = if sync { Wait::Whole } else { Wait::Nothing };
        write_replacing(&self.status_path(), &json, wait)
            .map_err(|e| Error::io(format!("cannot write {}", self.status_path().display()), e))
    }

    /// `update_status` for progress only (the running step, the commit): not synced to
    /// disk, since each costs about 10 ms on a busy disk and a power cut that loses one
    /// loses nothing the build's next synced write does not put right.
    pub fn update_progress(&self, f: impl FnOnce(&mut Status)) -> Result<Status> {
        self.update(f, false)
    }

    /// Read-modify-write of status.json, synced; `pending` is always set from the markers.
    pub fn update_status(&self, f: impl FnOnce(&mut Status)) -> Result<Status> {
        self.update(f, true)
    }

    fn update(&self, f: impl FnOnce(&mut Status), sync: bool) -> Result<Status> {
        self.locked(|| {
            let mut status = self.read_status()?;
            f(&mut status);
            self.write_status_unlocked(&mut status, sync)?;
            Ok(status)
        })
    }

    /// Records a delivery that wants a build. Written before anyone tries the build lock:
    /// see the protocol in queue.rs.
    /// Returns the status as it now is.
    ///
    /// The marker is the one write of a delivery that waits for the disk: see the module's
    /// comment. It replaces a marker that waits, keeping the tokens that one holds.
    pub fn mark_pending(&self, p: &Pending) -> Result<Status> {
        self.locked(|| {
            let mut p = p.clone();
            if let Some(old) = fs::read(self.pending_path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Pending>(&b).ok())
            {
                let older: Vec<String> = old.tokens.into_iter().filter(|t| !p.tokens.contains(t)).collect();
                p.tokens.splice(0..0, older);
            }
            let json = serde_json::to_vec(&p).unwrap_or_default();
            write_replacing(&self.pending_path(), &json, Wait::Durable)
                .map_err(|e| Error::io(format!("cannot write {}", self.pending_path().display()), e))?;
            // Only a copy of what the marker says (the marker is what survives a power cut),
            // rewritten when it changes: not for every delivery during a build.
            let mut status = self.read_status()?;
            if !status.pending {
                self.write_status_unlocked(&mut status, false)?;
            }
            Ok(status)
        })
    }

    /// Takes the waiting delivery, if any. A marker that cannot be parsed (left by an older
    /// version, or damaged) still asks for a build.
    ///
    /// The marker is renamed to `taking`, not removed: it is removed only when the build is
    /// recorded as "building" (`update_status`). A builder that dies in between leaves
    /// `taking`, which the next holder of the build lock puts back (`untake`), so the
    /// delivery is built rather than lost.
    ///
    /// The Gitee tokens the marker holds are settled in `seen-tokens` first (see the
    /// module's comment), which keeps what was received since `tokens_since` (ms:
    /// `tokens::horizon` of the hook's `max_age_secs`).
    pub fn take_pending(&self, tokens_since: u128) -> Result<Option<Pending>> {
        self.locked(|| {
            let path = self.pending_path();
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
            };
            let p = serde_json::from_slice(&bytes).unwrap_or_else(|_| Pending {
                delivery: "unknown".into(),
                event: "unknown".into(),
                git_ref: String::new(),
                received: String::new(),
                tokens: Vec::new(),
            });
            // Its tokens are on disk in `seen-tokens` before the marker goes.
            self.settle_tokens(&p.tokens, tokens_since)?;
            fs::rename(&path, self.taking_path())
                .map_err(|e| Error::io(format!("cannot rename {}", path.display()), e))?;
            let mut status = self.read_status()?;
            self.write_status_unlocked(&mut status, true)?;
            Ok(Some(p))
        })
    }

    /// With the build lock held: a `taking` marker belongs to a builder that stopped
    /// before its build was recorded. It waits again, unless a newer delivery already
    /// waits (the build from the newest head covers both). True when one was put back.
    pub fn untake(&self) -> Result<bool> {
        if !self.taking_path().exists() {
            return Ok(false);
        }
        self.locked(|| {
            let taking = self.taking_path();
            let back = !self.pending_path().exists();
            let done = if back {
                fs::rename(&taking, self.pending_path())
            } else {
                fs::remove_file(&taking)
            };
            match done {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(Error::io(format!("cannot put back {}", taking.display()), e)),
            }
            let mut status = self.read_status()?;
            self.write_status_unlocked(&mut status, true)?;
            Ok(back)
        })
    }

    /// A build that could not even be recorded gives its delivery back, so that the next
    /// delivery or `run` builds it.
    pub fn put_back(&self, p: &Pending) -> Result<()> {
        if self.taking_path().exists() {
            return self.untake().map(drop);
        }
        if !self.pending_path().exists() {
            self.mark_pending(p)?;
        }
        Ok(())
    }

    /// Whether a delivery waits for a build (or was taken and its build not yet recorded).
    pub fn has_pending(&self) -> bool {
        self.pending_path().exists() || self.taking_path().exists()
    }
}
#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::build) fn temp_state(name: &str) -> HookState {
        let dir = std::env::temp_dir().join(format!("dh-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let s = HookState::new(&dir, "docs");
        s.ensure().unwrap();
        s
    }

    #[test]
    fn pending_round_trip_keeps_the_newest() {
        let s = temp_state("pending");
        assert_eq!(s.take_pending(0).unwrap(), None);
        let p = |d: &str| Pending {
            delivery: d.into(),
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            received: String::new(),
            tokens: Vec::new(),
        };
        s.mark_pending(&p("a")).unwrap();
        assert!(s.read_status().unwrap().pending);
        s.mark_pending(&p("b")).unwrap();
        assert_eq!(s.take_pending(0).unwrap().unwrap().delivery, "b");
        s.update_status(|st| st.state = State::Building).unwrap();
        assert!(!s.read_status().unwrap().pending);
        assert_eq!(s.take_pending(0).unwrap(), None);
        fs::write(s.pending_path(), "garbage").unwrap();
        assert_eq!(s.take_pending(0).unwrap().unwrap().delivery, "unknown");
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_taken_delivery_stays_until_its_build_is_recorded() {
        let s = temp_state("taking");
        let p = Pending {
            delivery: "d1".into(),
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            received: String::new(),
            tokens: Vec::new(),
        };
        s.mark_pending(&p).unwrap();
        assert_eq!(s.take_pending(0).unwrap().unwrap().delivery, "d1");
        assert!(
            s.has_pending() && s.read_status().unwrap().pending,
            "taken, not yet building"
        );
        // the builder died here: the next holder puts it back
        assert!(s.untake().unwrap());
        assert_eq!(s.take_pending(0).unwrap().unwrap().delivery, "d1");
        s.update_status(|st| st.state = State::Building).unwrap();
        assert!(!s.has_pending() && !s.read_status().unwrap().pending);
        assert!(!s.untake().unwrap());
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }

    fn record(id: &str, result: BuildResult, release: Option<&str>) -> BuildRecord {
        BuildRecord {
            id: id.into(),
            delivery: String::new(),
            started: String::new(),
            finished: String::new(),
            result,
            commit: Some(format!("commit-{id}")),
            failed_step: None,
            failed_at: None,
            log: String::new(),
            duration_secs: 0.0,
            release: release.map(String::from),
            held: false,
        }
    }

    fn building(st: &mut Status, id: &str) {
        st.state = State::Building;
        st.current = Some(Current {
            id: id.into(),
            delivery: String::new(),
            started: String::new(),
            pid: 1,
            log: String::new(),
            commit: None,
            step: None,
            step_started: None,
            release: None,
            config: Some(format!("config-{id}")),
            event: String::new(),
            git_ref: String::new(),
        });
    }

    #[test]
    fn only_a_succeeded_build_becomes_the_base() {
        let mut st = Status::default();
        building(&mut st, "1");
        st.finish(record("1", BuildResult::Succeeded, Some("r1")), Some("r1".into()));
        let base = st.base.clone().unwrap();
        assert_eq!((base.commit.as_str(), base.config.as_str()), ("commit-1", "config-1"));
        assert_eq!((st.state, st.current.is_none()), (State::Idle, true));
        assert_eq!(st.live_release.as_deref(), Some("r1"));
        for (id, result) in [
            ("2", BuildResult::Failed),
            ("3", BuildResult::Interrupted),
            ("4", BuildResult::Superseded),
        ] {
            building(&mut st, id);
            st.finish(record(id, result, None), None);
            assert_eq!(st.base, Some(base.clone()), "{result}");
            assert_eq!(st.live_release.as_deref(), Some("r1"), "{result}");
        }
        // an unchanged build names what stays live and changes no base
        building(&mut st, "5");
        st.finish(record("5", BuildResult::Unchanged, Some("r1")), Some("r1".into()));
        assert_eq!(st.base.as_ref(), Some(&base));
        building(&mut st, "6");
        st.finish(record("6", BuildResult::Succeeded, Some("r6")), Some("r6".into()));
        assert_eq!(st.base.as_ref().unwrap().release.as_deref(), Some("r6"));
        assert_eq!(st.history.len(), 6);
    }

    #[test]
    fn a_word_of_a_newer_version_is_read_not_lost() {
        let text = r#"{"state":"resting","pending":false,"last":null,"history":[{"id":"1","delivery":"d",
            "started":"","finished":"","result":"cancelled","commit":null,"failed_step":null,"log":""}],
            "live_release":"r1"}"#;
        let st: Status = serde_json::from_str(text).unwrap();
        assert_eq!(st.state, State::Idle);
        assert_eq!(st.history[0].result, BuildResult::Unknown);
        assert_eq!(st.live_release.as_deref(), Some("r1"), "the rest is kept");
        let words: Vec<&str> = [BuildResult::TimedOut, BuildResult::Succeeded]
            .iter()
            .map(|r| r.as_str())
            .collect();
        assert_eq!(
            serde_json::to_string(&[BuildResult::TimedOut, BuildResult::Succeeded]).unwrap(),
            format!("[\"{}\",\"{}\"]", words[0], words[1])
        );
    }

    #[test]
    fn history_is_capped_newest_first() {
        let mut st = Status::default();
        for i in 0..(HISTORY + 3) {
            st.finish(
                BuildRecord {
                    id: i.to_string(),
                    delivery: String::new(),
                    started: String::new(),
                    finished: String::new(),
                    result: BuildResult::Succeeded,
                    commit: None,
                    failed_step: None,
                    failed_at: None,
                    log: String::new(),
                    duration_secs: 0.0,
                    release: None,
                    held: false,
                },
                None,
            );
        }
        assert_eq!(st.history.len(), HISTORY);
        assert_eq!(st.history[0].id, (HISTORY + 2).to_string());
        assert_eq!(st.last.as_ref().unwrap().id, (HISTORY + 2).to_string());
    }
}
