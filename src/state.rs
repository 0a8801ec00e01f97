//! The per-hook state folder, `<state_dir>/<hook>/`, and the files in it.
//!
//! ```text
//! build.lock     flock(2) held by the one process that builds (see queue.rs)
//! state.lock     flock(2) held for a moment around every change to the files below
//! pending        the newest delivery still waiting for a build (JSON)
//! status.json    state, pending, the running build, the last builds
//! seen-tokens    Gitee signing tokens already accepted, for the replay check
//! builds/ID.log  one log per build
//! home/          HOME of the steps, unless the hook's env sets one
//! worker.log     stderr of detached workers (warnings and errors when syslog and log.file fail)
//! ```
//!
//! Every file is replaced with write-to-temp + rename, so a reader never sees half a file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use fs2::FileExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How many finished builds `status.json` remembers.
pub const HISTORY: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildRecord {
    pub id: String,
    pub delivery: String,
    pub started: String,
    pub finished: String,
    /// succeeded | failed | timed_out | interrupted | superseded
    pub result: String,
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// idle | building
    pub state: String,
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
            state: "idle".into(),
            pending: false,
            last: None,
            current: None,
            history: Vec::new(),
            live_release: None,
            last_rollback: None,
        }
    }
}

impl Status {
    pub fn finish(&mut self, record: BuildRecord) {
        self.state = "idle".into();
        self.current = None;
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
}

#[derive(Debug, Clone)]
pub struct HookState {
    pub dir: PathBuf,
}

/// Writes `data` to `path` through a temp file and rename(2).
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_data()
        })
        .and_then(|()| fs::rename(&tmp, path));
    // A half-written temp (a full disk, a file size limit) is removed, not left behind.
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
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
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))
    }

    /// Runs `f` with the state lock held: the short lock that orders every change to
    /// `pending`, `status.json` and `seen-tokens`.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
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
            Err(e) => Err(Error::io(format!("cannot read {}", self.status_path().display()), e)),
        }
    }

    fn write_status_unlocked(&self, status: &mut Status) -> Result<()> {
        status.pending = self.pending_path().exists();
        let mut json = serde_json::to_vec_pretty(status).unwrap_or_default();
        json.push(b'\n');
        write_atomic(&self.status_path(), &json)
            .map_err(|e| Error::io(format!("cannot write {}", self.status_path().display()), e))
    }

    /// Read-modify-write of status.json; `pending` is always set from the marker's presence.
    pub fn update_status(&self, f: impl FnOnce(&mut Status)) -> Result<Status> {
        self.locked(|| {
            let mut status = self.read_status()?;
            f(&mut status);
            self.write_status_unlocked(&mut status)?;
            Ok(status)
        })
    }

    /// Records a delivery that wants a build. Written before anyone tries the build lock:
    /// see the protocol in queue.rs.
    pub fn mark_pending(&self, p: &Pending) -> Result<()> {
        self.locked(|| {
            let json = serde_json::to_vec(p).unwrap_or_default();
            write_atomic(&self.pending_path(), &json)
                .map_err(|e| Error::io(format!("cannot write {}", self.pending_path().display()), e))?;
            let mut status = self.read_status()?;
            self.write_status_unlocked(&mut status)
        })
    }

    /// Takes the waiting delivery, if any. A marker that cannot be parsed (left by an older
    /// version, or damaged) still asks for a build.
    pub fn take_pending(&self) -> Result<Option<Pending>> {
        self.locked(|| {
            let path = self.pending_path();
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
            };
            fs::remove_file(&path).map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
            let mut status = self.read_status()?;
            self.write_status_unlocked(&mut status)?;
            Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| Pending {
                delivery: "unknown".into(),
                event: "unknown".into(),
                git_ref: String::new(),
                received: String::new(),
            })))
        })
    }

    pub fn has_pending(&self) -> bool {
        self.pending_path().exists()
    }

    /// The replay check of Gitee's signing mode: true when this token was accepted before.
    /// Tokens are kept (hashed) for twice the allowed clock skew, the longest a replayed
    /// token could still pass the timestamp check.
    pub fn seen_before(&self, token: &[u8], now_ms: u128, max_age_secs: u64) -> Result<bool> {
        let digest: String = Sha256::digest(token).iter().map(|b| format!("{b:02x}")).collect();
        let horizon = now_ms.saturating_sub(u128::from(max_age_secs) * 2000);
        let path = self.dir.join("seen-tokens");
        self.locked(|| {
            let text = match fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
            };
            let mut kept = String::new();
            let mut seen = false;
            for line in text.lines() {
                let mut parts = line.split(' ');
                let (Some(h), Some(t)) = (parts.next(), parts.next().and_then(|t| t.parse::<u128>().ok())) else {
                    continue;
                };
                if t < horizon {
                    continue;
                }
                seen |= h == digest;
                kept.push_str(line);
                kept.push('\n');
            }
            if !seen {
                kept.push_str(&format!("{digest} {now_ms}\n"));
            }
            write_atomic(&path, kept.as_bytes())
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            Ok(seen)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_state(name: &str) -> HookState {
        let dir = std::env::temp_dir().join(format!("dh-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let s = HookState::new(&dir, "docs");
        s.ensure().unwrap();
        s
    }

    #[test]
    fn pending_round_trip_keeps_the_newest() {
        let s = temp_state("pending");
        assert_eq!(s.take_pending().unwrap(), None);
        let p = |d: &str| Pending {
            delivery: d.into(),
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            received: String::new(),
        };
        s.mark_pending(&p("a")).unwrap();
        assert!(s.read_status().unwrap().pending);
        s.mark_pending(&p("b")).unwrap();
        assert_eq!(s.take_pending().unwrap().unwrap().delivery, "b");
        assert!(!s.read_status().unwrap().pending);
        assert_eq!(s.take_pending().unwrap(), None);
        fs::write(s.pending_path(), "garbage").unwrap();
        assert_eq!(s.take_pending().unwrap().unwrap().delivery, "unknown");
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn replayed_tokens_are_seen_and_expire() {
        let s = temp_state("tokens");
        assert!(!s.seen_before(b"tok", 1_000_000_000, 3600).unwrap());
        assert!(s.seen_before(b"tok", 1_000_000_500, 3600).unwrap());
        assert!(!s.seen_before(b"other", 1_000_000_600, 3600).unwrap());
        // far later the first record is pruned
        assert!(!s.seen_before(b"tok", 1_000_000_000 + 7_200_001, 3600).unwrap());
        let text = fs::read_to_string(s.dir.join("seen-tokens")).unwrap();
        assert!(!text.contains("tok"), "tokens are stored hashed");
        fs::remove_dir_all(s.dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn history_is_capped_newest_first() {
        let mut st = Status::default();
        for i in 0..(HISTORY + 3) {
            st.finish(BuildRecord {
                id: i.to_string(),
                delivery: String::new(),
                started: String::new(),
                finished: String::new(),
                result: "succeeded".into(),
                commit: None,
                failed_step: None,
                failed_at: None,
                log: String::new(),
                duration_secs: 0.0,
                release: None,
            });
        }
        assert_eq!(st.history.len(), HISTORY);
        assert_eq!(st.history[0].id, (HISTORY + 2).to_string());
        assert_eq!(st.last.as_ref().unwrap().id, (HISTORY + 2).to_string());
    }
}
