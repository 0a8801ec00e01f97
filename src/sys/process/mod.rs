//! The one way to run a child, as cargo-util's `ProcessBuilder`: a `Process` says what to
//! run and how, and one loop runs it. Every child of deploy-hook (the steps, git, rsync,
//! ssh, the web servers `check` asks, the workers) starts here, with:
//!
//! - a cleared environment plus the map it is given (`env`): nothing of ours leaks in;
//! - an absolute working folder (`/` unless told), stdin on /dev/null unless piped;
//! - its own process group (or its own session, `new_session`), so that one signal reaches
//!   whatever it started; a niceness; `PR_SET_PDEATHSIG`, so that it dies with the thread
//!   that started it (unless it must outlive us: `outlive_us`, the workers);
//! - a time limit, and one way to stop it (`end_group`): SIGTERM to the group, up to
//!   `KILL_GRACE` for the leader to go, then SIGKILL to the group. When the leader ends,
//!   what is left of its group is killed too, before the leader is reaped (its pid, the
//!   group's id, cannot be reused until then);
//! - for a command a person waits on (`init`'s clone), `forward_signals` (`signals`): its
//!   own group keeps a terminal's Ctrl-C from reaching it, so the signal we get is passed
//!   on to the group (git and its ssh or https helper), and we die of it once the group
//!   is gone;
//! - its stdout and stderr drained together (`read2`), captured (bounded) or handed to a
//!   sink as they come (the build log's writer, `build::buildlog`), so a chatty child can
//!   never deadlock against us.
//!
//! A step's output used to go straight into the log file, with no pipe, so that it could
//! never block on us and what it printed survived the worker's death. It now goes through
//! a pipe to the log's writer, which caps the log (a step that printed 3 GB wrote a 3 GB
//! log). Kept: the child never waits on us for long, since the loop reads whenever poll(2)
//! says there is something, and its output is written to the file line by line as it
//! comes; the child dies with the worker anyway (`PR_SET_PDEATHSIG`). Given up: what the
//! writer holds when the worker dies (an unfinished line, and the output it holds back
//! once the log is past half its cap) is lost.
//!
//! Its `Display` is the command line, shell-quoted, for errors and the build log. (It
//! shows the arguments as they are: a caller whose argument holds a credential says what
//! it ran in its own words.)
//!
//! `reaper` finds a build's processes again: a builder is a child subreaper, so whatever a
//! step leaves behind outside its group (a `setsid` daemon, a double fork) is reparented to
//! it and killed when the step ends (`end_leftovers`); a dead builder's leftovers are found
//! by its session.

mod read2;
mod reaper;
mod signals;

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use read2::{Dest, Source};
pub use reaper::{
    become_subreaper, boot_id, cloexec_inherited_fds, flock_held, kill_by_env, kill_orphans, kill_session,
    scrub_request_environ, spare, Identity,
};
use signals::Forwarding;

/// How long a group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// What a capture keeps of each of stdout and stderr, unless told otherwise: a child that
/// prints without end must not take our memory with it.
pub const CAPTURE_LIMIT: usize = 1 << 20;

/// After the leader ended and its group was killed, how long its pipes may stay open: a
/// process in another group (a `setsid` daemon) may hold them for ever.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

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

/// Where one of a child's output streams goes.
pub enum Out<'a> {
    /// Kept in `Finished`, up to the capture limit.
    Capture,
    /// Handed over in pieces as the child writes them (not split at lines).
    To(&'a mut dyn FnMut(&[u8])),
    /// For stderr only: into stdout's pipe, in the order the child wrote them.
    Stdout,
}

/// How a child that was run to its end ended, and what it printed.
#[derive(Debug)]
pub struct Finished {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    fn not_started(why: String) -> Finished {
        Finished {
            exit: Exit::NotStarted(why),
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Its stdout as text, trimmed: git's answers.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// The account a child runs as (`init` clones as the web server's user).
struct Switch {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

/// A child to run: what, where, with what, for how long. Built with the methods below,
/// then `run` (to its end) or `spawn` (a child that lives on beside us).
pub struct Process {
    /// The program as written: looked up on the env's PATH (or relative to `cwd` when it
    /// holds a `/`), and the child's argv[0].
    program: String,
    arg0: Option<String>,
    args: Vec<OsString>,
    cwd: PathBuf,
    env: BTreeMap<String, String>,
    timeout: Option<Duration>,
    nice: Option<i32>,
    session: bool,
    pdeathsig: bool,
    leftovers: bool,
    forward_signals: bool,
    user: Option<Switch>,
    capture_limit: usize,
}

impl Process {
    pub fn new(program: impl Into<String>) -> Process {
        Process {
            program: program.into(),
            arg0: None,
            args: Vec::new(),
            cwd: PathBuf::from("/"),
            env: BTreeMap::new(),
            timeout: None,
            nice: None,
            session: false,
            pdeathsig: true,
            leftovers: false,
            forward_signals: false,
            user: None,
            capture_limit: CAPTURE_LIMIT,
        }
    }

    /// `argv` as a config writes a command: the program, then its arguments.
    pub fn argv<S: AsRef<str>>(argv: &[S]) -> Process {
        let mut p = Process::new(argv.first().map(|s| s.as_ref()).unwrap_or_default());
        p.args(argv.iter().skip(1).map(|s| s.as_ref()));
        p
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Process {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Process {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// The child's argv[0], when it is not the program as written.
    pub fn arg0(&mut self, arg0: impl Into<String>) -> &mut Process {
        self.arg0 = Some(arg0.into());
        self
    }

    /// Its working folder, which a program named with a `/` is relative to.
    pub fn cwd(&mut self, cwd: impl Into<PathBuf>) -> &mut Process {
        self.cwd = cwd.into();
        self
    }

    /// Its whole environment: nothing else reaches it.
    pub fn env(&mut self, env: &BTreeMap<String, String>) -> &mut Process {
        self.env = env.clone();
        self
    }

    /// One more variable of its environment.
    pub fn env_var(&mut self, key: &str, value: impl Into<String>) -> &mut Process {
        self.env.insert(key.to_string(), value.into());
        self
    }

    /// How long it may run before its group is stopped (`Exit::TimedOut`).
    pub fn timeout(&mut self, limit: Duration) -> &mut Process {
        self.timeout = Some(limit);
        self
    }

    pub fn nice(&mut self, nice: i32) -> &mut Process {
        self.nice = Some(nice);
        self
    }

    /// Its own session (setsid) instead of only its own group: no controlling terminal, so
    /// ssh cannot prompt; and a worker's leftovers are found by their session.
    pub fn new_session(&mut self) -> &mut Process {
        self.session = true;
        self
    }

    /// No `PR_SET_PDEATHSIG`: a worker goes on when the web server kills its parent.
    pub fn outlive_us(&mut self) -> &mut Process {
        self.pdeathsig = false;
        self
    }

    /// After it ended, kill every child of ours but the spared ones (`kill_orphans`): in a
    /// builder, a subreaper, those are what it left outside its group.
    pub fn end_leftovers(&mut self) -> &mut Process {
        self.leftovers = true;
        self
    }

    /// For a command a person waits on (`init`'s clone): a SIGINT, SIGTERM or SIGHUP we
    /// get while it runs is passed on to its whole group, which then has `KILL_GRACE` to
    /// end before SIGKILL; once it is reaped, we die of that signal, as we would have
    /// without it. Its group is its own, so a terminal's Ctrl-C reaches only us: without
    /// this, git died with us (`PR_SET_PDEATHSIG`) but its ssh or https helper stayed.
    /// A signal we ignore (`nohup`'s SIGHUP) stays ignored. `run` only, in one thread at a
    /// time: the signals' dispositions are the process's.
    pub fn forward_signals(&mut self) -> &mut Process {
        self.forward_signals = true;
        self
    }

    /// Runs it as `user`, with that user's groups; only when we are root.
    pub fn user(&mut self, user: &crate::sys::privilege::User) -> &mut Process {
        self.user = Some(Switch {
            uid: user.uid,
            gid: user.gid,
            groups: groups_of(&user.name, user.gid),
        });
        self
    }

    /// What a capture keeps of each stream (`CAPTURE_LIMIT` unless told).
    pub fn capture_limit(&mut self, bytes: usize) -> &mut Process {
        self.capture_limit = bytes;
        self
    }

    /// Runs it to its end, both streams captured.
    pub fn output(&self) -> Finished {
        self.run(Out::Capture, Out::Capture, &mut || false)
    }

    /// Runs it to its end: stdout and stderr go where they are told, `cancel` is asked
    /// between reads (true stops it as a timeout does).
    pub fn run<'a>(&self, out: Out<'a>, err: Out<'a>, cancel: &mut dyn FnMut() -> bool) -> Finished {
        let forwarding = self.forward_signals.then(Forwarding::install);
        let done = self.run_to_end(out, err, cancel);
        if let Some(f) = forwarding {
            f.end();
        }
        done
    }

    fn run_to_end<'a>(&self, out: Out<'a>, err: Out<'a>, cancel: &mut dyn FnMut() -> bool) -> Finished {
        let mut cmd = match self.command() {
            Ok(c) => c,
            Err(why) => return Finished::not_started(why),
        };
        let mut sources = Vec::new();
        let merge = matches!(err, Out::Stdout);
        let mut stdout_piped = false;
        let wired = wire(out, self.capture_limit, merge, &mut sources).and_then(|(stdout, second)| {
            stdout_piped = !sources.is_empty();
            cmd.stdout(stdout);
            let stderr = match second {
                Some(s) => s,
                None => wire(err, self.capture_limit, false, &mut sources)?.0,
            };
            cmd.stderr(stderr);
            Ok(())
        });
        if let Err(e) = wired {
            return Finished::not_started(format!("cannot make its pipes: {e}"));
        }
        let child = cmd.spawn();
        // Our copies of the write ends go with the Command: the pipes end when the child's do.
        drop(cmd);
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return Finished::not_started(e.to_string()),
        };
        let exit = self.wait(&mut child, &mut sources, cancel);
        // A capture over its limit keeps its start (git's answer, nginx -T's first lines).
        let mut captured = sources.into_iter().map(|s| s.into_captured().0);
        let stdout = if stdout_piped { captured.next() } else { None };
        let (stdout, stderr) = (stdout.unwrap_or_default(), captured.next().unwrap_or_default());
        Finished { exit, stdout, stderr }
    }

    /// The one loop: drain, and watch the leader, the clock and `cancel`, until the leader
    /// ends or is stopped; then end its group, reap it, and read what is left.
    fn wait(&self, child: &mut Child, sources: &mut [Source], cancel: &mut dyn FnMut() -> bool) -> Exit {
        let pid = child.id() as i32;
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut buf = vec![0u8; 64 * 1024];
        // Short at first: the tick is added to every command's end, and most are quick
        // (git rev-parse); at 10 ms the polling costs no measurable CPU.
        let mut tick = Duration::from_millis(1);
        let mut next_look = Instant::now();
        let mut stopped = None;
        while !leader_ended(pid) {
            let now = Instant::now();
            if now >= next_look {
                let caught = if self.forward_signals { signals::caught() } else { 0 };
                let mut first = libc::SIGTERM;
                if caught != 0 {
                    // Passed on as it came: git removes a clone it did not finish.
                    first = caught;
                    stopped = Some(Exit::Signal(caught));
                } else if deadline.is_some_and(|d| now >= d) {
                    stopped = Some(Exit::TimedOut);
                } else if cancel() {
                    stopped = Some(Exit::Cancelled);
                }
                if stopped.is_some() {
                    end_group(pid, first, KILL_GRACE, &mut || {
                        read2::pump(sources, Duration::from_millis(20), &mut buf)
                    });
                    break;
                }
                next_look = now + tick;
                tick = (tick * 2).min(Duration::from_millis(10));
            }
            read2::pump(sources, tick, &mut buf);
        }
        // The leader is gone (a zombie until reaped, so its pid still names the group):
        // whatever is left of its group goes with it.
        kill_group(pid, libc::SIGKILL);
        let status = child.wait();
        if self.leftovers {
            // Whatever the step left behind (a `setsid` child is in no group of ours) has
            // been reparented to us, the subreaper: end it now, so that nothing of this
            // step runs on into the next one or past the build.
            kill_orphans();
        }
        let until = Instant::now() + DRAIN_AFTER_EXIT;
        while !read2::all_closed(sources) && Instant::now() < until {
            read2::pump(sources, Duration::from_millis(50), &mut buf);
        }
        match (stopped, status) {
            (Some(why), _) => why,
            (None, Ok(s)) => Exit::from_status(s),
            (None, Err(e)) => Exit::NotStarted(format!("cannot wait for it: {e}")),
        }
    }

    /// Starts it and leaves it running: a connection that reads commands (a web host's
    /// `sh`), a worker. The caller ends it (`Running::stop`) or hands it over.
    pub fn spawn(&self, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> io::Result<Running> {
        let mut cmd = self
            .command()
            .map_err(|why| io::Error::new(io::ErrorKind::NotFound, why))?;
        cmd.stdin(stdin).stdout(stdout).stderr(stderr);
        Ok(Running { child: cmd.spawn()? })
    }

    /// The std Command, with everything but the output streams.
    fn command(&self) -> Result<Command, String> {
        let path = self.env.get("PATH").map(String::as_str).unwrap_or("");
        let Some(program) = find_program(&self.program, path, &self.cwd) else {
            return Err(not_found(&self.program, path, &self.cwd));
        };
        let mut cmd = Command::new(program);
        cmd.arg0(self.arg0.as_deref().unwrap_or(&self.program))
            .args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir(&self.cwd)
            .stdin(Stdio::null());
        if !self.session {
            cmd.process_group(0);
        }
        let (session, nice, pdeathsig) = (self.session, self.nice, self.pdeathsig);
        let user = self.user.as_ref().map(|u| (u.uid, u.gid, u.groups.clone()));
        // SAFETY: getpid(2) cannot fail.
        let parent = unsafe { libc::getpid() };
        // SAFETY: only async-signal-safe system calls run between fork and exec; the
        // groups were looked up before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if session && libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(n) = nice {
                    libc::setpriority(libc::PRIO_PROCESS, 0, n);
                }
                if pdeathsig {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    // The parent died before the prctl: the signal will never come.
                    if libc::getppid() != parent {
                        libc::_exit(1);
                    }
                }
                if let Some((uid, gid, groups)) = &user {
                    if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setgid(*gid) != 0
                        || libc::setuid(*uid) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        Ok(cmd)
    }
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", crate::sys::text::shell_quote(&self.program))?;
        for a in &self.args {
            write!(f, " {}", crate::sys::text::shell_quote(&a.to_string_lossy()))?;
        }
        Ok(())
    }
}

/// A child started by `spawn`, in its own group. It is reaped only by `stop`: until then
/// its pid names its group, and signals to the group reach nobody else.
pub struct Running {
    child: Child,
}

impl Running {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// How it ended, once it has (without reaping it).
    pub fn ended(&self) -> Option<ExitStatus> {
        ended_status(self.child.id() as i32)
    }

    /// Ends it: up to `natural` for it to end by itself (its stdin was closed, say), then
    /// `end_group` with `grace`; its group is killed and it is reaped either way.
    pub fn stop(&mut self, natural: Duration, grace: Duration) -> Option<ExitStatus> {
        let pid = self.child.id() as i32;
        let until = Instant::now() + natural;
        while !leader_ended(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !leader_ended(pid) {
            end_group(pid, libc::SIGTERM, grace, &mut || {
                std::thread::sleep(Duration::from_millis(10))
            });
        }
        kill_group(pid, libc::SIGKILL);
        self.child.wait().ok()
    }
}

/// The one TERM-grace-KILL: SIGTERM (or the signal we were stopped with, `first`) to the
/// group, up to `grace` for its leader to end (`meanwhile` runs between looks: the caller
/// drains its pipes), then SIGKILL to whatever is left of the group (children that ignore
/// SIGTERM, grandchildren). The leader is not reaped here, so that its pid still names the
/// group.
fn end_group(pgid: i32, first: i32, grace: Duration, meanwhile: &mut dyn FnMut()) {
    kill_group(pgid, first);
    let until = Instant::now() + grace;
    while !leader_ended(pgid) && Instant::now() < until {
        meanwhile();
    }
    kill_group(pgid, libc::SIGKILL);
}

fn kill_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the group; no memory is involved.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Whether our child `pid` has ended, without reaping it (`WNOWAIT`).
fn leader_ended(pid: i32) -> bool {
    ended_status(pid).is_some()
}

/// How our child `pid` ended, if it has, without reaping it (`WNOWAIT`): its pid, and so
/// its group's id, stays ours until it is reaped.
fn ended_status(pid: i32) -> Option<ExitStatus> {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid(2).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = loop {
        // SAFETY: waitid on our own child, writing into `info`.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break r;
        }
    };
    if r != 0 {
        // Not ours any more (reaped): it has ended, how is not known.
        return Some(ExitStatus::from_raw(-1 << 8));
    }
    // SAFETY: waitid sets si_pid (0 when nothing ended) and, for an ended child, si_status.
    let (found, status) = unsafe { (info.si_pid(), info.si_status()) };
    if found == 0 {
        return None;
    }
    // The wait(2) encoding: an exit code in the second byte, else the signal.
    Some(match info.si_code {
        libc::CLD_EXITED => ExitStatus::from_raw((status & 0xff) << 8),
        _ => ExitStatus::from_raw(status & 0x7f),
    })
}

/// The child's end of one of its output streams (and a second one, for stderr into the
/// same place, when `twice`); a pipe's read end joins `sources`.
fn wire<'a>(
    o: Out<'a>,
    limit: usize,
    twice: bool,
    sources: &mut Vec<Source<'a>>,
) -> io::Result<(Stdio, Option<Stdio>)> {
    let dest = match o {
        Out::Stdout => return Ok((Stdio::null(), twice.then(Stdio::null))),
        Out::Capture => Dest::Capture {
            buf: Vec::new(),
            limit,
            dropped: 0,
        },
        Out::To(f) => Dest::To(f),
    };
    let (r, w) = read2::pipe()?;
    let second = if twice { Some(Stdio::from(w.try_clone()?)) } else { None };
    sources.push(Source::new(r, dest)?);
    Ok((Stdio::from(w), second))
}

/// The supplementary groups of `name` (as initgroups would set them), looked up before a
/// fork: initgroups itself reads files and allocates, which a forked child must not.
fn groups_of(name: &str, gid: libc::gid_t) -> Vec<libc::gid_t> {
    let Ok(c) = CString::new(name.as_bytes()) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let want = n;
        // SAFETY: getgrouplist writes at most `n` groups into the buffer and sets `n`.
        let r = unsafe { libc::getgrouplist(c.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if r >= 0 {
            groups.truncate(n as usize);
            return groups;
        }
        if n <= want {
            return vec![gid];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Process {
        let mut p = Process::new("sh");
        p.arg("-c").arg(script).env_var("PATH", "/usr/bin:/bin");
        p
    }

    #[test]
    fn a_child_filling_both_pipes_is_drained_and_a_capture_keeps_its_start() {
        // Far more than a pipe holds, on stderr first: reading stdout to its end first
        // would wait for ever.
        let mut p = sh("head -c 3000000 /dev/zero | tr '\\0' e >&2; printf 'out'; head -c 300000 /dev/zero");
        p.capture_limit(1000);
        let done = p.output();
        assert_eq!(done.exit, Exit::Status(0));
        assert_eq!(&done.stdout[..3], b"out");
        assert_eq!((done.stdout.len(), done.stderr.len()), (1000, 1000));
    }

    #[test]
    fn stderr_joins_stdout_in_the_order_written() {
        let mut seen = Vec::new();
        let mut sink = |b: &[u8]| seen.extend_from_slice(b);
        let exit = sh("echo one; echo two >&2; echo three").run(Out::To(&mut sink), Out::Stdout, &mut || false);
        assert_eq!(exit.exit, Exit::Status(0));
        assert_eq!(String::from_utf8_lossy(&seen), "one\ntwo\nthree\n");
    }

    #[test]
    fn a_timeout_stops_the_whole_group_and_what_the_leader_left_dies_with_it() {
        let dir = std::env::temp_dir().join(format!("dh-process-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("grandchild");
        // The grandchild ignores SIGTERM and holds stdout open; the leader waits for ever.
        let mut p = sh(&format!(
            "sh -c 'trap \"\" TERM; echo $$ > {}; exec sleep 1000' & sleep 1000",
            pidfile.display()
        ));
        p.timeout(Duration::from_millis(300));
        let done = p.output();
        assert_eq!(done.exit, Exit::TimedOut);
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        assert!(!alive(pid), "the grandchild {pid} outlived the timeout");

        // A leader that ends leaves nothing of its group behind, though it holds our pipe.
        let p = sh(&format!("sleep 1000 & echo $! > {}", pidfile.display()));
        let done = p.output();
        assert_eq!(done.exit, Exit::Status(0));
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        assert!(!alive(pid), "the background child {pid} outlived its leader");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Alive and not a zombie (nobody may reap an orphan where PID 1 does not).
    fn alive(pid: i32) -> bool {
        for _ in 0..200 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Ok(s) if !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z') => {}
                _ => return false,
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    #[test]
    fn cancel_stops_it_and_a_missing_program_is_not_started() {
        let mut asked = 0;
        let done = sh("sleep 1000").run(Out::Capture, Out::Capture, &mut || {
            asked += 1;
            asked > 3
        });
        assert_eq!(done.exit, Exit::Cancelled);
        let done = Process::new("no-such-program-xyz").env_var("PATH", "/bin").output();
        assert_eq!(
            done.exit,
            Exit::NotStarted("no-such-program-xyz not found on PATH /bin".into())
        );
    }

    #[test]
    fn it_shows_as_a_command_line_a_shell_takes_back() {
        let mut p = Process::new("git");
        p.args(["commit", "-m", "it's done", "--author=a b"]);
        assert_eq!(p.to_string(), r#"git commit -m 'it'\''s done' '--author=a b'"#);
    }
}
