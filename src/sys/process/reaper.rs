//! Finding a build's processes again, and keeping ours to ourselves.
//!
//! A builder is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so whatever a step leaves
//! behind (a `setsid` daemon, a double fork) is reparented to it and killed when the step
//! ends (`kill_orphans`); a dead builder's leftovers are found by its session
//! (`kill_session`) or by the `DEPLOY_HOOK_LOG` in their environment (`kill_by_env`). A
//! process is named by its pid and its start time (`Identity`), since a pid alone is
//! reused. And no child inherits a descriptor or a request header of ours.

use std::ffi::CStr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Kills every process whose environment holds `key=value`: the leftovers of a build whose
/// worker died (steps carry `DEPLOY_HOOK_LOG`, unique per build). Returns how many.
pub fn kill_by_env(key: &str, value: &str) -> usize {
    let needle = format!("{key}={value}");
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: plain kill(2).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                killed += 1;
            }
        }
    }
    killed
}

/// Marks every descriptor above stderr close-on-exec, so no child inherits what the web
/// server handed us (under fcgiwrap fd 3 is the FastCGI socket).
pub fn cloexec_inherited_fds() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range(2) only changes descriptor flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return;
    }
    // Older kernels: walk the open descriptors.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds.into_iter().filter(|fd| *fd > 2) {
        // SAFETY: fcntl on a descriptor number; a closed one just fails.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// A process as the kernel knows it: its pid and its start time (clock ticks after boot).
/// A pid alone is reused; a pid with its start time names one process only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub pid: u32,
    pub start: u64,
}

impl Identity {
    pub fn me() -> Option<Identity> {
        Identity::of(std::process::id())
    }

    pub fn of(pid: u32) -> Option<Identity> {
        stat(pid).map(|s| Identity { pid, start: s.start })
    }

    /// Whether this very process still runs (a zombie does not).
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start && s.state != 'Z')
    }

    /// The `pid:start` form of `Display`.
    pub fn parse(text: &str) -> Option<Identity> {
        let (pid, start) = text.split_once(':')?;
        Some(Identity {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.pid, self.start)
    }
}

/// The fields of `/proc/PID/stat` we use.
struct Stat {
    state: char,
    ppid: i32,
    session: i32,
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Every process, with its stat; those that end while we look are skipped.
fn processes() -> Vec<(u32, Stat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

/// Whether some process holds a flock on the file (`dev`, `ino`), from /proc/locks; `None`
/// when that table cannot be read.
pub fn flock_held(dev: u64, ino: u64) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    // The device is printed as hex major:minor (glibc's encoding of dev_t).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let wanted = format!("{major:02x}:{minor:02x}:{ino}");
    Some(table.lines().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        // "N: FLOCK ADVISORY WRITE pid maj:min:ino 0 EOF"; a blocked request has "->" after
        // "N:" and holds nothing.
        fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&wanted.as_str())
    }))
}

/// This boot's id: a start time means nothing across a reboot.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Makes this process the reaper of every orphan among its descendants, so that a step's
/// daemon (`setsid cmd &`, a double fork) is reparented to us rather than to init, and
/// `kill_orphans` can end it.
pub fn become_subreaper() {
    // SAFETY: prctl(2) with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Children of ours that are not a build's leftovers: workers handed a queue (they are not
/// waited for). Their pids cannot be reused while they are our unreaped children.
static SPARED: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Keeps `kill_orphans` away from this child of ours.
pub fn spare(pid: u32) {
    if let Ok(mut s) = SPARED.lock() {
        s.push(pid as i32);
    }
}

/// Kills and reaps every child of this process but the spared ones: as a subreaper, those
/// are what the build's steps left behind. Killing one reparents its own children to us,
/// so this repeats until none is left. Returns how many were killed.
pub fn kill_orphans() -> usize {
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    let spared = SPARED.lock().map(|s| s.clone()).unwrap_or_default();
    let mut killed = 0;
    for _ in 0..100 {
        let kids: Vec<i32> = processes()
            .into_iter()
            .filter(|(pid, s)| s.ppid == me && !spared.contains(&(*pid as i32)))
            .map(|(pid, _)| pid as i32)
            .collect();
        if kids.is_empty() {
            break;
        }
        for pid in kids {
            // SAFETY: kill(2) and waitpid(2) on a child of ours: the pid cannot have been
            // reused before we reap it.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            killed += 1;
        }
    }
    killed
}

/// Kills what is left of a dead builder's session. An async worker and a sync build child
/// each start a session (setsid), and every step inherits it unless it calls setsid itself
/// (those are ended by the builder while it lives: `kill_orphans`). Clearing the
/// environment (`env -i`) or changing the process group does not leave a session, so this
/// finds what `kill_by_env` cannot.
///
/// A session id is its leader's pid, and Linux does not hand out a pid while a session
/// still uses it as its id: so while any of our leftovers lives, no other session can have
/// this id. To be safe against the rest (the pid reused after the whole session ended),
/// nothing is done when a process with the leader's pid runs (alive: the builder lives or
/// the pid is reused; only the builder itself as a zombie counts as dead), after a reboot,
/// and only processes that started after the builder are killed.
pub fn kill_session(leader: &Identity, boot: &str) -> usize {
    if boot != boot_id() {
        return 0;
    }
    if let Some(s) = stat(leader.pid) {
        if !(s.start == leader.start && s.state == 'Z') {
            return 0;
        }
    }
    let me = std::process::id();
    let mut killed = 0;
    for _ in 0..100 {
        let left: Vec<u32> = processes()
            .into_iter()
            .filter(|(pid, s)| {
                *pid != me
                    && *pid != leader.pid
                    && s.session == leader.pid as i32
                    && s.start >= leader.start
                    && s.state != 'Z'
            })
            .map(|(pid, _)| pid)
            .collect();
        if left.is_empty() {
            break;
        }
        for pid in left {
            // SAFETY: plain kill(2).
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            killed += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    killed
}

/// Blanks the values of the request's `HTTP_*` variables in this process's own environment
/// block, which is what `/proc/PID/environ` shows to every process of the same user (a
/// step, say, looking at its ancestors): a GitLab token or a Gitee password travels in a
/// header. Call it once the environment has been read (main.rs keeps its own copy).
pub fn scrub_request_environ() {
    // SAFETY: `environ` is the NULL-terminated array of the C strings of our environment
    // block; no thread runs yet that could change it. Each value is overwritten in place
    // with NULs, so every string stays a valid (shorter) C string where it was.
    unsafe {
        let mut p = libc::environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            let s = *p;
            let bytes = CStr::from_ptr(s).to_bytes();
            if bytes.starts_with(b"HTTP_") {
                if let Some(eq) = bytes.iter().position(|b| *b == b'=') {
                    std::ptr::write_bytes(s.add(eq + 1), 0, bytes.len() - eq - 1);
                }
            }
            p = p.add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_held_flock_is_seen_in_the_kernel_table() {
        use fs2::FileExt;
        use std::os::unix::fs::MetadataExt;
        let path = std::env::temp_dir().join(format!("dh-flock-{}", std::process::id()));
        let f = std::fs::File::create(&path).unwrap();
        let m = f.metadata().unwrap();
        assert_eq!(super::flock_held(m.dev(), m.ino()), Some(false));
        f.lock_exclusive().unwrap();
        assert_eq!(super::flock_held(m.dev(), m.ino()), Some(true));
        FileExt::unlock(&f).unwrap();
        assert_eq!(super::flock_held(m.dev(), m.ino()), Some(false));
        std::fs::remove_file(&path).unwrap();
    }
}
