//! One way to run a child: absolute cwd, cleared environment plus an allow-list, stdin from
//! /dev/null, output into the build log, its own process group, a niceness, and a timeout
//! that sends SIGTERM and then SIGKILL to the whole group.
//!
//! Output goes straight into the log file (no pipes), so a chatty child can never block on
//! a full pipe, and what it printed is there even if the worker dies.
//!
//! It also owns how a build's processes are found again: a builder is a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), so whatever a step leaves behind (a `setsid` daemon, a
//! double fork) is reparented to it and killed when the step ends; and a dead builder's
//! leftovers are found by its session (see `kill_session`).

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long a group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Status(i32),
    Signal(i32),
    TimedOut,
    /// Stopped because `cancel` said so (a newer delivery superseded the build).
    Cancelled,
    /// The program could not be started at all.
    NotStarted(String),
}

impl Exit {
    pub fn success(&self) -> bool {
        *self == Exit::Status(0)
    }

    fn from_status(s: ExitStatus) -> Exit {
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Status(c),
            (None, Some(sig)) => Exit::Signal(sig),
            _ => Exit::Status(-1),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Status(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
            Exit::TimedOut => write!(f, "timed out; its process group was killed"),
            Exit::Cancelled => write!(f, "stopped: superseded by a newer delivery"),
            Exit::NotStarted(why) => write!(f, "could not start: {why}"),
        }
    }
}

/// Finds `program` on a `:`-separated `path`, as execvp would; a name with a `/` is taken
/// as it is (relative to the process's working directory).
pub fn which(program: &str, path: &str) -> Option<PathBuf> {
    find_program(program, path, Path::new("."))
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Where a step's program is, the one rule for the pipeline and `check`: a bare name is
/// looked up on `path`; a name with a `/` (`./build.sh`, `node_modules/.bin/vitepress`) is
/// relative to `cwd`, the repo, not to whatever folder the worker was started in (`/`
/// under a web server); an absolute name is taken as it is.
pub fn find_program(program: &str, path: &str, cwd: &Path) -> Option<PathBuf> {
    if program.contains('/') {
        let p = cwd.join(program);
        return executable(&p).then_some(p);
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| executable(p))
}

/// Why `find_program` found nothing, in words that say where it looked.
pub fn not_found(program: &str, path: &str, cwd: &Path) -> String {
    if program.starts_with('/') {
        format!("{program} is not an executable file")
    } else if program.contains('/') {
        format!(
            "{program} is not an executable file in {} (a program named with a '/' is relative to repo)",
            cwd.display()
        )
    } else {
        format!("{program} not found on PATH {path}")
    }
}

pub struct Spec<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    pub nice: i32,
    pub timeout: Duration,
}

fn kill_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the group; no memory is involved.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Runs a child to completion with its output appended to `log`. `cancel` is polled while
/// it runs; when it returns true the group is stopped as on a timeout.
pub fn run(spec: &Spec, log: &File, cancel: &mut dyn FnMut() -> bool) -> io::Result<Exit> {
    let path = spec.env.get("PATH").map(String::as_str).unwrap_or("");
    let Some(program) = find_program(&spec.argv[0], path, spec.cwd) else {
        return Ok(Exit::NotStarted(not_found(&spec.argv[0], path, spec.cwd)));
    };
    let nice = spec.nice;
    let mut cmd = Command::new(&program);
    cmd.arg0(&spec.argv[0])
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env)
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setpriority(libc::PRIO_PROCESS, 0, nice);
            // If the worker dies, the step's leader dies with it; the rest of its group is
            // found and killed by the next worker (queue::recover).
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ok(Exit::NotStarted(e.to_string())),
    };
    let exit = wait_or_stop(&mut child, spec.timeout, cancel);
    // Whatever the step left behind (its group outlives a leader that exited, a `setsid`
    // child is in no group of ours) has been reparented to us, the subreaper: end it now,
    // so that nothing of this step runs on into the next one or past the build.
    kill_orphans();
    exit
}

fn wait_or_stop(
    child: &mut std::process::Child,
    timeout: Duration,
    cancel: &mut dyn FnMut() -> bool,
) -> io::Result<Exit> {
    let pgid = child.id() as i32;
    let deadline = Instant::now() + timeout;
    // Polled, since the timeout and `cancel` need looking at too. The cap is short because
    // it is added to every step's end: with 50 ms, a build's fetch, reset and two steps
    // lost up to 0.2 s here; at 10 ms the polling costs no measurable CPU.
    let mut tick = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Exit::from_status(status));
        }
        let stop = if Instant::now() >= deadline {
            Some(Exit::TimedOut)
        } else if cancel() {
            Some(Exit::Cancelled)
        } else {
            None
        };
        if let Some(why) = stop {
            stop_group(pgid, child);
            return Ok(why);
        }
        std::thread::sleep(tick);
        tick = (tick * 2).min(Duration::from_millis(10));
    }
}

/// SIGTERM to the group, up to `KILL_GRACE` for the leader to exit, then SIGKILL to
/// whatever is left of the group (children that ignore SIGTERM, grandchildren).
fn stop_group(pgid: i32, child: &mut std::process::Child) {
    kill_group(pgid, libc::SIGTERM);
    let until = Instant::now() + KILL_GRACE;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_group(pgid, libc::SIGKILL);
    let _ = child.wait();
}

/// Runs a short git command and returns its trimmed stdout; stderr goes to the log.
pub fn capture(argv: &[&str], cwd: &Path, env: &BTreeMap<String, String>, log: &File) -> io::Result<Option<String>> {
    let path = env.get("PATH").map(String::as_str).unwrap_or("");
    let Some(program) = which(argv[0], path) else {
        return Ok(None);
    };
    let out = Command::new(program)
        .args(&argv[1..])
        .env_clear()
        .envs(env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stderr(log.try_clone()?)
        .output()?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

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
