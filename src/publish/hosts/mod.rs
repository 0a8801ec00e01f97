//! Publishing one release to several web hosts, all or none, with the tools that already
//! run the internet's static fan-out: ssh and rsync. No agent and no daemon on a web host:
//! only `sh`, `ln`, `mv`, `rm` and `rsync` run there.
//!
//! As with Capistrano and Deployer, every host keeps its releases beside the served path,
//! which is a symlink to one of them; a release has the same name on every host:
//!
//! ```text
//! web1:/var/www/docs            -> docs.releases/20261128-004015-123-1a2b3c4
//! web1:/var/www/docs.releases/  one folder per release, newest last by name
//! ```
//!
//! A publish has two phases. Phase 1 uploads the release to every host at once, with rsync
//! over the `ssh` command and `--link-dest` against that host's live release (only changed
//! files travel and take space), into `.staging-<release>`, renamed into place when whole.
//! Phase 2 runs only when every upload succeeded: a new symlink is made beside `<path>` on
//! every host, then renamed over `<path>` (`mv -T`, one rename(2)) on all of them at once.
//! An upload that fails switches no host; a switch that fails switches the hosts that did
//! switch back. Either way the caller records `failed_step = "publish <host>"`.
//!
//! One ssh connection per host stays open across both phases: a ControlMaster (its socket
//! in the hook's state folder) whose own session is a `sh` reading our commands on stdin;
//! rsync's ssh rides the same connection. Phase 2 then costs one round trip per host, not
//! an ssh handshake, so the hosts switch within milliseconds of each other.
//!
//! The local `to`, when it is set beside `hosts`, is one more target, driven the same way
//! through a local `sh`, so it switches with the hosts and carries the same release names.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Fleet;
use crate::sys::process::which;
use crate::sys::time;

/// How long one command on a host may take (a probe, a rename, a prune).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The marker that ends a command's answer on a host's `sh`; never in our own output.
const MARK: &str = "__deploy_hook_done_";

/// Where a release goes: a web host over ssh, or the local `to`.
#[derive(Debug, Clone)]
pub struct Target {
    /// What the log, `status` and `failed_step` call it: the host as written in `hosts`
    /// (`web1`), `host:path` when one host is named twice, or `local`.
    pub name: String,
    /// The ssh destination; `None` for the local `to`.
    pub ssh_host: Option<String>,
    /// The served path on that machine (absolute).
    pub path: String,
}

impl Target {
    fn releases(&self) -> String {
        format!("{}.releases", self.path)
    }

    /// The served path's folder and file name (`/var/www`, `docs`).
    fn split(&self) -> (String, String) {
        match self.path.rsplit_once('/') {
            Some(("", base)) => ("/".into(), base.into()),
            Some((dir, base)) => (dir.into(), base.into()),
            None => (".".into(), self.path.clone()),
        }
    }

    /// The new symlink made beside `path` before it is renamed over `path`.
    fn switch_link(&self) -> String {
        let (dir, base) = self.split();
        format!("{}/.{base}.switch", dir.trim_end_matches('/'))
    }

    /// What the symlink holds: relative, so the release folder can move with its parent.
    fn link_value(&self, release: &str) -> String {
        format!("{}.releases/{release}", self.split().1)
    }

    fn rsync_dest(&self, dir: &str) -> String {
        match &self.ssh_host {
            Some(h) => format!("{h}:{dir}/"),
            None => format!("{dir}/"),
        }
    }
}

/// The targets of a fleet, the local `to` first.
pub fn targets(fleet: &Fleet) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(to) = &fleet.to {
        out.push(Target {
            name: "local".into(),
            ssh_host: None,
            path: to.to_string_lossy().into_owned(),
        });
    }
    for h in &fleet.hosts {
        let twice = fleet.hosts.iter().filter(|o| o.host == h.host).count() > 1;
        out.push(Target {
            name: if twice {
                format!("{}:{}", h.host, h.path)
            } else {
                h.host.clone()
            },
            ssh_host: Some(h.host.clone()),
            path: h.path.clone(),
        });
    }
    out
}

/// A word for a host's `sh`, always single-quoted.
pub fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A word for rsync's `-e` string. rsync splits it at spaces and honours single and double
/// quotes but not backslashes, so a word may hold one kind of quote, not both (config.rs
/// refuses the rest).
fn rsync_e_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        s.to_string()
    } else if !s.contains('\'') {
        format!("'{s}'")
    } else {
        format!("\"{s}\"")
    }
}

/// What the publish needs besides the fleet: the programs' environment, where the ssh
/// control sockets live, the build log.
pub struct Tools<'a> {
    /// The environment of ssh and rsync: the build's (PATH, HOME, LANG, the hook's env).
    pub env: &'a BTreeMap<String, String>,
    /// The hook's state folder: the ssh control sockets and an empty folder live there.
    pub state_dir: &'a Path,
    /// How long one upload may take (the hook's step timeout).
    pub upload_timeout: Duration,
    pub log: &'a File,
}

impl Tools<'_> {
    fn note(&self, line: &str) {
        let mut f = self.log;
        let _ = writeln!(f, "{line}");
    }
}

/// One open connection to a target: `ssh ... host sh` (a ControlMaster that rsync reuses),
/// or a local `sh`, reading commands on stdin and answering on stdout.
struct Session {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// stdout lines, with the instant each arrived (for the switch spread).
    lines: Receiver<(Instant, String)>,
    /// The last lines ssh printed on stderr: why a connection failed.
    err_tail: Arc<Mutex<Vec<String>>>,
    /// The ControlMaster's socket, for rsync's `-e`.
    control: Option<PathBuf>,
    seq: u64,
}

fn ssh_base(fleet: &Fleet, connect_timeout: u32) -> Vec<String> {
    let mut argv = fleet.ssh.clone();
    for o in [
        "BatchMode=yes".to_string(),
        format!("ConnectTimeout={connect_timeout}"),
        "ServerAliveInterval=10".into(),
        "ServerAliveCountMax=3".into(),
    ] {
        argv.push("-o".into());
        argv.push(o);
    }
    argv
}

impl Session {
    /// Starts the connection; `control` makes it a ControlMaster on that socket. Called on
    /// the thread that lives for the whole publish: the child dies with its spawning thread.
    fn open(
        target: &Target,
        fleet: &Fleet,
        tools: &Tools,
        control: Option<PathBuf>,
        connect_timeout: u32,
    ) -> Result<Session, String> {
        let argv = match &target.ssh_host {
            None => vec!["sh".to_string()],
            Some(host) => {
                let mut a = ssh_base(fleet, connect_timeout);
                if let Some(c) = &control {
                    let _ = std::fs::remove_file(c); // a socket left by a killed build
                    a.extend([
                        "-o".into(),
                        "ControlMaster=yes".into(),
                        "-o".into(),
                        format!("ControlPath={}", c.to_string_lossy().replace('%', "%%")),
                        "-o".into(),
                        "ControlPersist=no".into(),
                    ]);
                }
                a.extend(["-T".into(), "--".into(), host.clone(), "sh".into()]);
                a
            }
        };
        let path = tools.env.get("PATH").map(String::as_str).unwrap_or("/usr/bin:/bin");
        let program = which(&argv[0], path).ok_or_else(|| format!("{} is not found on PATH {path}", argv[0]))?;
        let mut cmd = Command::new(program);
        cmd.arg0(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(tools.env)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // The connection must not outlive the build that opened it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", argv[0]))?;
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        std::thread::spawn(move || {
            let Some(out) = stdout else { return };
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let err_tail = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&err_tail);
        let mut log = tools.log.try_clone().ok();
        let name = target.name.clone();
        std::thread::spawn(move || {
            let Some(err) = stderr else { return };
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = log.as_mut() {
                    let _ = writeln!(f, "[{name}] {line}");
                }
                if let Ok(mut t) = tail.lock() {
                    t.push(line);
                    let excess = t.len().saturating_sub(3);
                    t.drain(..excess);
                }
            }
        });
        Ok(Session {
            name: target.name.clone(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
            err_tail,
            control,
            seq: 0,
        })
    }

    /// Sends a script; its answer is read by `wait`. The script's stdin is /dev/null (it
    /// must never eat the commands that follow it) and its stderr joins its stdout.
    fn send(&mut self, script: &str) -> Result<u64, String> {
        self.seq += 1;
        let seq = self.seq;
        let text = format!("{{\n{script}\n}} </dev/null 2>&1\nprintf '\\n{MARK}{seq} %s\\n' \"$?\"\n");
        let stdin = self.stdin.as_mut().ok_or("the connection is closed")?;
        match stdin.write_all(text.as_bytes()).and_then(|_| stdin.flush()) {
            Ok(()) => Ok(seq),
            Err(_) => Err(self.lost()),
        }
    }

    /// The answer to command `seq`: its exit status, its output, and when it arrived.
    fn wait(&mut self, seq: u64, timeout: Duration) -> Result<(i32, String, Instant), String> {
        let marker = format!("{MARK}{seq} ");
        let deadline = Instant::now() + timeout;
        let mut output = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => match line.strip_prefix(&marker) {
                    Some(code) => {
                        return Ok((code.trim().parse().unwrap_or(-1), output.trim().to_string(), at));
                    }
                    None => {
                        output.push_str(&line);
                        output.push('\n');
                    }
                },
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no answer within {}s", timeout.as_secs()));
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.lost()),
            }
        }
    }

    fn run(&mut self, script: &str) -> Result<(i32, String), String> {
        let seq = self.send(script)?;
        self.wait(seq, COMMAND_TIMEOUT).map(|(c, o, _)| (c, o))
    }

    /// Runs a script that must succeed; the error holds what it printed.
    fn run_ok(&mut self, what: &str, script: &str) -> Result<String, String> {
        match self.run(script)? {
            (0, out) => Ok(out),
            (code, out) => Err(format!(
                "{what} failed (exit status {code}){}",
                if out.is_empty() {
                    String::new()
                } else {
                    format!(": {}", out.replace('\n', " / "))
                }
            )),
        }
    }

    /// Why the connection ended, from ssh's exit status and its last words.
    fn lost(&mut self) -> String {
        self.stdin = None;
        let until = Instant::now() + Duration::from_secs(2);
        let mut status = None;
        while Instant::now() < until {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The stderr reader may still be on the last line.
        std::thread::sleep(Duration::from_millis(20));
        let tail = self.err_tail.lock().map(|t| t.join(" / ")).unwrap_or_default();
        format!(
            "the connection to {} ended{}{}",
            self.name,
            status.map(|s| format!(" ({s})")).unwrap_or_default(),
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            }
        )
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // EOF ends the remote sh, and with it the ControlMaster; a kill covers a hung one.
        self.stdin = None;
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: kill(2) on the session's own process group.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
        if let Some(c) = &self.control {
            let _ = std::fs::remove_file(c);
        }
    }
}

/// What a target serves now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// `path` is a symlink to this release (`None`: a symlink that leads nowhere).
    Release(Option<String>),
    /// `path` is a real folder: the site from before deploy-hook.
    Folder,
    Missing,
    /// A file or something else: a publish refuses to replace it.
    Other,
}

/// A target as the probe found it.
#[derive(Debug, Clone)]
pub struct Probe {
    pub served: Served,
    pub releases_dir: bool,
    /// The finished releases, oldest first.
    pub releases: Vec<String>,
    /// Whether rsync is on the host's PATH, and `path`'s folder writable (for `check`).
    pub rsync: Option<String>,
    pub folder_writable: bool,
    pub releases_writable: bool,
}

impl Probe {
    pub fn live(&self) -> Option<&str> {
        match &self.served {
            Served::Release(r) => r.as_deref(),
            _ => None,
        }
    }
}

fn probe_script(t: &Target) -> String {
    let (dir, _) = t.split();
    format!(
        "p={p}; r={r}; d={d}
if [ -L \"$p\" ]; then
  if l=$(cd -P -- \"$p\" 2>/dev/null && pwd -P); then printf 'live %s\\n' \"${{l##*/}}\"; else echo 'live'; fi
elif [ -d \"$p\" ]; then echo folder
elif [ -e \"$p\" ]; then echo other
else echo missing
fi
if [ -d \"$r\" ]; then
  echo releases
  [ -w \"$r\" ] && echo releases-writable
  for x in \"$r\"/*/; do [ -d \"$x\" ] && {{ x=${{x%/}}; printf 'release %s\\n' \"${{x##*/}}\"; }}; done
fi
[ -d \"$d\" ] && [ -w \"$d\" ] && echo folder-writable
printf 'rsync %s\\n' \"$(command -v rsync)\"
true",
        p = sq(&t.path),
        r = sq(&t.releases()),
        d = sq(&dir)
    )
}

fn parse_probe(out: &str) -> Probe {
    let mut p = Probe {
        served: Served::Missing,
        releases_dir: false,
        releases: Vec::new(),
        rsync: None,
        folder_writable: false,
        releases_writable: false,
    };
    for line in out.lines() {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "live" => p.served = Served::Release(Some(rest.to_string()).filter(|s| !s.is_empty())),
            "folder" => p.served = Served::Folder,
            "other" => p.served = Served::Other,
            "missing" => p.served = Served::Missing,
            "releases" => p.releases_dir = true,
            "releases-writable" => p.releases_writable = true,
            "folder-writable" => p.folder_writable = true,
            "release" if !rest.starts_with('.') && !rest.is_empty() => p.releases.push(rest.to_string()),
            "rsync" => p.rsync = Some(rest.to_string()).filter(|s| !s.is_empty()),
            _ => {}
        }
    }
    p.releases.sort();
    p
}

/// A failed publish or rollback: which target, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub target: String,
    pub message: String,
    /// Stopped on purpose (a newer delivery superseded the build), not failed.
    pub stopped: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.target, self.message)
    }
}

fn fail(target: &str, message: impl Into<String>) -> Failure {
    Failure {
        target: target.to_string(),
        message: message.into(),
        stopped: false,
    }
}

/// The releases `keep` lets go: the oldest beyond `keep`, never the live one, the one
/// before it, nor `was_live` (what served before this publish: the known-good one).
pub fn to_prune(all: &[String], live: Option<&str>, was_live: Option<&str>, keep: usize) -> Vec<String> {
    let live_idx = live.and_then(|l| all.iter().position(|r| r == l));
    let protected = |i: usize| live_idx.is_some_and(|l| i == l || i + 1 == l) || was_live == Some(all[i].as_str());
    let mut excess = all.len().saturating_sub(keep);
    let mut out = Vec::new();
    for (i, name) in all.iter().enumerate() {
        if excess == 0 {
            break;
        }
        if !protected(i) {
            out.push(name.clone());
            excess -= 1;
        }
    }
    out
}

/// The release name of a build: its time and short commit, as the local publish names it.
pub fn release_name(commit: Option<&str>) -> String {
    let short = commit.map(|c| &c[..c.len().min(7)]).unwrap_or("nocommit");
    format!("{}-{short}", time::compact(time::now()))
}

fn unix_ms(at: Instant) -> f64 {
    let now = Instant::now();
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let back = now.saturating_duration_since(at);
    (wall.saturating_sub(back)).as_secs_f64() * 1000.0
}

/// The connections of one publish or rollback, opened at once, in the targets' order.
struct Fleetwide<'a> {
    targets: Vec<Target>,
    sessions: Vec<Result<Session, String>>,
    tools: &'a Tools<'a>,
}

impl<'a> Fleetwide<'a> {
    fn open(fleet: &Fleet, tools: &'a Tools<'a>, mux: bool, connect_timeout: u32) -> Fleetwide<'a> {
        let targets = targets(fleet);
        let sessions = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let control = tools.state_dir.join(format!("ssh-{i}.sock"));
                // A unix socket's path holds at most 107 bytes; without one rsync makes
                // its own connection, and the switch still goes over the open sh.
                let control = (mux && control.as_os_str().len() < 100).then_some(control);
                Session::open(t, fleet, tools, control, connect_timeout)
            })
            .collect();
        Fleetwide {
            targets,
            sessions,
            tools,
        }
    }

    /// Runs `f` for every target at once; `f` gets the target, its session and its index.
    fn each<T: Send>(
        &mut self,
        f: impl Fn(usize, &Target, &mut Session) -> Result<T, String> + Sync,
    ) -> Vec<Result<T, Failure>> {
        let targets = &self.targets;
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .sessions
                .iter_mut()
                .enumerate()
                .map(|(i, session)| {
                    let f = &f;
                    let t = &targets[i];
                    s.spawn(move || match session {
                        Ok(session) => f(i, t, session).map_err(|m| fail(&t.name, m)),
                        Err(e) => Err(fail(&t.name, e.clone())),
                    })
                })
                .collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(i, h)| {
                    h.join()
                        .unwrap_or_else(|_| Err(fail(&targets[i].name, "internal error: a publish thread panicked")))
                })
                .collect()
        })
    }

    fn probe_all(&mut self) -> Vec<Result<Probe, Failure>> {
        self.each(|_, t, s| Ok(parse_probe(&s.run_ok("probing", &probe_script(t))?)))
    }

    fn session(&mut self, i: usize) -> Option<&mut Session> {
        self.sessions[i].as_mut().ok()
    }
}

/// The first failure, in the targets' order, of a fleet-wide step.
fn first_failure<T>(results: &[Result<T, Failure>]) -> Option<Failure> {
    results.iter().find_map(|r| r.as_ref().err().cloned())
}

/// How a switched target is put back as it was.
fn switch_back_script(t: &Target, before: &Served, kept: &str) -> String {
    let (p, l) = (sq(&t.path), sq(&t.switch_link()));
    match before {
        Served::Release(Some(old)) => format!(
            "rm -f -- {l} && ln -s -- {v} {l} && mv -T -- {l} {p}",
            v = sq(&t.link_value(old))
        ),
        Served::Folder => format!(
            "if [ -L {p} ] || [ ! -e {p} ]; then rm -f -- {p} && mv -T -- {k} {p}; fi",
            k = sq(&format!("{}/{kept}", t.releases()))
        ),
        _ => format!("rm -f -- {p}"),
    }
}

/// The switch of every target to `release`, both steps: the new symlinks beside `path`
/// everywhere, then the renames everywhere at once. On a failure the targets that switched
/// are switched back and the error names the first target that failed.
fn switch_all(fw: &mut Fleetwide, probes: &[Probe], release: &str) -> Result<(), Failure> {
    let kept = format!("0000-{}-before-deploy-hook", time::compact(time::now()));
    let made = fw.each(|_, t, s| {
        s.run_ok(
            "making the new symlink",
            &format!(
                "rm -f -- {l} && ln -s -- {v} {l}",
                l = sq(&t.switch_link()),
                v = sq(&t.link_value(release))
            ),
        )
        .map(|_| ())
    });
    if let Some(f) = first_failure(&made) {
        fw.each(|_, t, s| s.run(&format!("rm -f -- {}", sq(&t.switch_link()))).map(|_| ()));
        return Err(f);
    }

    // The renames: written to every host first, answers read after, so the hosts switch
    // within one round trip of each other.
    let n = fw.targets.len();
    let mut sent = Vec::with_capacity(n);
    let first_send = Instant::now();
    for (i, probe) in probes.iter().enumerate().take(n) {
        let t = fw.targets[i].clone();
        let (p, l) = (sq(&t.path), sq(&t.switch_link()));
        let script = match probe.served {
            Served::Folder => format!(
                "mv -T -- {p} {k} && mv -T -- {l} {p}",
                k = sq(&format!("{}/{kept}", t.releases()))
            ),
            _ => format!("mv -T -- {l} {p}"),
        };
        sent.push(match fw.session(i) {
            Some(s) => s.send(&script),
            None => Err("no connection".into()),
        });
    }
    let mut answers: Vec<Result<Instant, String>> = Vec::with_capacity(n);
    for (i, seq) in sent.into_iter().enumerate() {
        let answer = match (seq, fw.session(i)) {
            (Ok(seq), Some(s)) => match s.wait(seq, COMMAND_TIMEOUT) {
                Ok((0, _, at)) => Ok(at),
                Ok((code, out, _)) => Err(format!(
                    "switching {} failed (exit status {code}): {}",
                    fw.targets[i].path,
                    out.replace('\n', " / ")
                )),
                Err(e) => Err(e),
            },
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err("no connection".into()),
        };
        answers.push(answer);
    }
    let failed: Vec<usize> = (0..n).filter(|i| answers[*i].is_err()).collect();
    if failed.is_empty() {
        let last = answers
            .iter()
            .filter_map(|a| a.as_ref().ok())
            .max()
            .copied()
            .unwrap_or(first_send);
        let spread = last.saturating_duration_since(first_send);
        fw.tools.note(&format!(
            "switched {n} target{} to {release}: switch spread {:.1} ms (first rename sent at {:.3}, last answer at {:.3}, unix ms)",
            if n == 1 { "" } else { "s" },
            spread.as_secs_f64() * 1000.0,
            unix_ms(first_send),
            unix_ms(last)
        ));
        return Ok(());
    }

    // Put back every target whose rename went through, and the folder of a failed target
    // whose first rename (the old folder aside) went through but not its second.
    for (i, answer) in answers.iter().enumerate() {
        let t = fw.targets[i].clone();
        let before = probes[i].served.clone();
        let script = match (answer, &before) {
            (Ok(_), _) => switch_back_script(&t, &before, &kept),
            (Err(_), Served::Folder) => switch_back_script(&t, &before, &kept),
            (Err(_), _) => continue,
        };
        let what = match &before {
            Served::Release(Some(r)) => r.clone(),
            Served::Folder => "its old folder".into(),
            _ => "nothing".into(),
        };
        let result = match fw.session(i) {
            Some(s) => s.run_ok("switching back", &script),
            None => Err("no connection".into()),
        };
        match (answer, result) {
            (Ok(_), Ok(_)) => fw.tools.note(&format!("{}: switched back to {what}", t.name)),
            (Ok(_), Err(e)) => fw.tools.note(&format!(
                "{}: COULD NOT BE SWITCHED BACK: it serves {release} while the others serve the old release ({e}); `deploy-hook status` shows it, and the next build or rollback fixes it",
                t.name
            )),
            (Err(_), _) => {}
        }
    }
    fw.each(|_, t, s| s.run(&format!("rm -f -- {}", sq(&t.switch_link()))).map(|_| ()));
    let i = failed[0];
    let msg = match &answers[i] {
        Err(e) => e.clone(),
        Ok(_) => String::new(),
    };
    Err(fail(&fw.targets[i].name, msg))
}

/// The bytes rsync sent, from its `--stats` (`Total bytes sent: 1,234`).
fn stat(out: &str, label: &str) -> Option<u64> {
    let line = out.lines().find(|l| l.trim_start().starts_with(label))?;
    let digits: String = line[line.find(':')? + 1..]
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

/// Runs rsync into `dest` over the session's connection; returns its `--stats` output.
fn rsync(t: &Target, session: &Session, fleet: &Fleet, tools: &Tools, args: &[String]) -> Result<String, String> {
    let mut argv: Vec<String> = vec!["rsync".into()];
    if t.ssh_host.is_some() {
        let mut e = ssh_base(fleet, 10);
        if let Some(c) = &session.control {
            e.push("-o".into());
            e.push(format!("ControlPath={}", c.to_string_lossy().replace('%', "%%")));
        }
        argv.push("-e".into());
        argv.push(e.iter().map(|w| rsync_e_word(w)).collect::<Vec<_>>().join(" "));
    }
    argv.extend(args.iter().cloned());
    let path = tools.env.get("PATH").map(String::as_str).unwrap_or("/usr/bin:/bin");
    let program =
        which("rsync", path).ok_or_else(|| format!("rsync is not found on PATH {path}: apt-get install rsync"))?;
    let err = tools.log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(tools.env)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .process_group(0);
    // SAFETY: prctl only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start rsync: {e}"))?;
    let mut out = String::new();
    let reader = child.stdout.take().map(|o| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(o), &mut s);
            s
        })
    });
    let deadline = Instant::now() + tools.upload_timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: kill(2) on rsync's own process group.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
                break Err(format!(
                    "rsync took longer than {}s (step_timeout_secs) and was stopped",
                    tools.upload_timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(e.to_string()),
        }
    };
    if let Some(r) = reader {
        out = r.join().unwrap_or_default();
    }
    let status = status?;
    if status.success() {
        Ok(out)
    } else {
        Err(format!(
            "rsync failed ({status}); its messages are in the build log above"
        ))
    }
}

/// Phase 1 on one target: clear old staging, upload into `.staging-<release>` with
/// `--link-dest` against the live release, rename it into place.
fn upload(
    t: &Target,
    s: &mut Session,
    probe: &Probe,
    fleet: &Fleet,
    tools: &Tools,
    from: &Path,
    release: &str,
) -> Result<(), String> {
    if probe.served == Served::Other {
        return Err(format!(
            "{} is a file, neither a symlink nor a folder: remove it, or publish elsewhere",
            t.path
        ));
    }
    let r = t.releases();
    if probe.releases_dir {
        // A build killed while uploading leaves its staging folder; the lock says none is
        // uploading now.
        s.run_ok(
            "removing an old staging folder",
            &format!("rm -rf -- {}/.staging-*", sq(&r)),
        )?;
    } else {
        // Only sh, ln, mv, rm and rsync are asked of a host: rsync of an empty folder makes
        // the releases folder.
        let empty = tools.state_dir.join("empty");
        let _ = std::fs::create_dir(&empty);
        rsync(
            t,
            s,
            fleet,
            tools,
            &[
                "-d".into(),
                "--chmod=a+rX,u+w".into(),
                "--protect-args".into(),
                format!("{}/", empty.display()),
                t.rsync_dest(&r),
            ],
        )
        .map_err(|e| format!("cannot create {r}: {e}"))?;
    }
    let staging = format!("{r}/.staging-{release}");
    let mut args: Vec<String> = [
        "--recursive",
        "--links",
        // Content decides, not mtime: a build rewrites every file, and an unchanged one
        // must be hard-linked to the live release instead of sent again.
        "--checksum",
        "--chmod=a+rX,u+w",
        "--protect-args",
        "--stats",
        "--timeout=120",
    ]
    .map(String::from)
    .to_vec();
    if let Some(live) = probe.live().filter(|l| probe.releases.iter().any(|r| r == l)) {
        args.push(format!("--link-dest={r}/{live}"));
    }
    args.push(format!("{}/", from.display()));
    args.push(t.rsync_dest(&staging));
    let started = Instant::now();
    let out = rsync(t, s, fleet, tools, &args)?;
    let sent = stat(&out, "Total bytes sent").unwrap_or(0);
    let files = stat(&out, "Number of regular files transferred").unwrap_or(0);
    let size = stat(&out, "Total file size").unwrap_or(0);
    s.run_ok(
        "renaming the upload into place",
        &format!("mv -T -- {} {}", sq(&staging), sq(&format!("{r}/{release}"))),
    )?;
    tools.note(&format!(
        "{}: uploaded {release} in {:.2}s: {files} changed file{} of {size} bytes in all; rsync sent {sent} bytes",
        t.name,
        started.elapsed().as_secs_f64(),
        if files == 1 { "" } else { "s" }
    ));
    Ok(())
}

/// Removes an upload that will not be switched to, wherever it got to.
fn remove_release(fw: &mut Fleetwide, release: &str) {
    fw.each(|_, t, s| {
        s.run(&format!(
            "rm -rf -- {} {}",
            sq(&format!("{}/.staging-{release}", t.releases())),
            sq(&format!("{}/{release}", t.releases()))
        ))
        .map(|_| ())
    });
}

/// Publishes `from` as `release` on every target of the fleet, all or none. Once every
/// upload is in place, `stopped` is asked (true: a newer delivery superseded the build, and
/// nothing is switched), then `ready` is called, before the first switch. Returns the
/// release the first target served before.
pub fn publish(
    fleet: &Fleet,
    from: &Path,
    release: &str,
    tools: &Tools,
    stopped: &mut dyn FnMut() -> bool,
    ready: &mut dyn FnMut(&str),
) -> Result<Option<String>, Failure> {
    match crate::publish::link_leaving(from) {
        Ok(None) => {}
        Ok(Some((link, target))) => {
            return Err(fail(
                "local",
                format!(
                    "the output holds a symlink that leaves it: {} -> {} (a release may only link inside itself): not published",
                    link.display(),
                    target.display()
                ),
            ))
        }
        Err(e) => return Err(fail("local", format!("cannot read the build output: {e}"))),
    }
    let names: Vec<String> = targets(fleet).iter().map(|t| t.name.clone()).collect();
    tools.note(&format!("\npublishing {release} to {}", names.join(", ")));
    let phase1 = Instant::now();
    let mut fw = Fleetwide::open(fleet, tools, true, 10);
    let probes = fw.probe_all();
    if let Some(f) = first_failure(&probes) {
        tools.note(&format!("{f}; nothing was uploaded or switched"));
        return Err(f);
    }
    let probes: Vec<Probe> = probes.into_iter().flatten().collect();
    let uploads = fw.each(|i, t, s| upload(t, s, &probes[i], fleet, tools, from, release));
    if let Some(f) = first_failure(&uploads) {
        tools.note(&format!("upload failed: {f}; no target is switched"));
        remove_release(&mut fw, release);
        return Err(f);
    }
    tools.note(&format!(
        "upload phase: {:.2}s for {} target{}",
        phase1.elapsed().as_secs_f64(),
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    ));

    // A superseded build never publishes: the last moment to stop is before any switch.
    if stopped() {
        tools.note("superseded after the upload: no target is switched");
        remove_release(&mut fw, release);
        return Err(Failure {
            stopped: true,
            ..fail("all", "superseded by a newer delivery")
        });
    }
    ready(release);
    let phase2 = Instant::now();
    if let Err(f) = switch_all(&mut fw, &probes, release) {
        tools.note(&format!("switch failed: {f}; every target keeps the release it served"));
        // The new release goes where it is not live (a target that could not be switched
        // back keeps it: it serves it).
        fw.each(|_, t, s| {
            s.run(&format!(
                "[ \"$(cd -P -- {p} 2>/dev/null && pwd -P)\" = \"$(cd -P -- {d} 2>/dev/null && pwd -P)\" ] || rm -rf -- {d}",
                p = sq(&t.path),
                d = sq(&format!("{}/{release}", t.releases()))
            ))
            .map(|_| ())
        });
        return Err(f);
    }
    tools.note(&format!(
        "switch phase: {:.1} ms",
        phase2.elapsed().as_secs_f64() * 1000.0
    ));

    // keep: per target, never the live release, the one before it, or the one replaced.
    let keep = fleet.keep;
    fw.each(|i, t, s| {
        let mut all = probes[i].releases.clone();
        all.push(release.to_string());
        all.sort();
        let gone = to_prune(&all, Some(release), probes[i].live(), keep);
        if gone.is_empty() {
            return Ok(());
        }
        let words: Vec<String> = gone.iter().map(|g| sq(&format!("{}/{g}", t.releases()))).collect();
        let r = s.run(&format!("rm -rf -- {}", words.join(" ")));
        if let Ok((0, _)) = r {
            tools.note(&format!("{}: pruned {}", t.name, gone.join(", ")));
        }
        Ok(())
    });
    Ok(probes.first().and_then(|p| p.live().map(String::from)))
}

/// A rollback of every target to one release, all or none: `named`, else the release
/// before the one they all serve. Returns (what they served, the release now served).
pub fn rollback(fleet: &Fleet, named: Option<&str>, tools: &Tools) -> Result<(Option<String>, String), Failure> {
    let mut fw = Fleetwide::open(fleet, tools, false, 10);
    let probes = fw.probe_all();
    if let Some(f) = first_failure(&probes) {
        return Err(f);
    }
    let probes: Vec<Probe> = probes.into_iter().flatten().collect();
    let lives: Vec<Option<&str>> = probes.iter().map(Probe::live).collect();
    let from = lives[0].map(String::from);
    let target = match named {
        Some(n) => n.to_string(),
        None => {
            if lives.iter().any(|l| *l != lives[0]) {
                let each: Vec<String> = fw
                    .targets
                    .iter()
                    .zip(&lives)
                    .map(|(t, l)| format!("{} serves {}", t.name, l.unwrap_or("no release")))
                    .collect();
                return Err(fail(
                    "all",
                    format!(
                        "the targets serve different releases ({}): name the one to serve with --to RELEASE",
                        each.join(", ")
                    ),
                ));
            }
            let Some(live) = lives[0] else {
                return Err(fail(
                    "all",
                    "nothing is published yet: there is nothing to roll back to",
                ));
            };
            let all = &probes[0].releases;
            match all.iter().position(|r| r == live) {
                Some(i) if i > 0 => all[i - 1].clone(),
                Some(_) => {
                    return Err(fail(
                        "all",
                        format!("{live} is the oldest release; there is nothing to roll back to"),
                    ))
                }
                None => {
                    return Err(fail(
                        &fw.targets[0].name,
                        format!("the live release {live} is not among the releases"),
                    ))
                }
            }
        }
    };
    for (t, p) in fw.targets.iter().zip(&probes) {
        if !p.releases.contains(&target) {
            return Err(fail(
                &t.name,
                format!(
                    "has no release {target} (it has: {}); nothing was switched",
                    p.releases.join(", ")
                ),
            ));
        }
        if matches!(p.served, Served::Other | Served::Folder) {
            return Err(fail(
                &t.name,
                format!("{} is not a symlink; nothing was switched", t.path),
            ));
        }
    }
    switch_all(&mut fw, &probes, &target)?;
    Ok((from, target))
}

/// What each target serves, for `status`: its live release, or why it could not be asked.
pub struct Live {
    pub target: Target,
    pub live: Result<Option<String>, String>,
}

/// Asks every target what it serves (short connect timeout: `status` must answer).
pub fn live_all(fleet: &Fleet, tools: &Tools) -> Vec<Live> {
    let mut fw = Fleetwide::open(fleet, tools, false, 5);
    let probes = fw.probe_all();
    fw.targets
        .iter()
        .cloned()
        .zip(probes)
        .map(|(target, p)| Live {
            target,
            live: p
                .map(|p| match p.served {
                    Served::Release(r) => r,
                    Served::Folder => Some("(a folder, not yet published)".into()),
                    _ => None,
                })
                .map_err(|f| f.message),
        })
        .collect()
}

/// The release most targets serve; a target serving another one disagrees.
pub fn majority(lives: &[Live]) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in lives {
        if let Ok(Some(r)) = &l.live {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(r, _)| r.to_string())
}

/// A target in `status`: what it serves, and whether that is what most targets serve.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostStatus {
    pub name: String,
    pub path: String,
    pub live: Option<String>,
    /// Why the target could not be asked (unreachable host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True when it serves another release than most targets: after a switch-back that
    /// failed, or a change by hand. An unreachable target is not counted as disagreeing.
    pub disagrees: bool,
}

/// Every target's live release, for `status`.
pub fn status(fleet: &Fleet, tools: &Tools) -> Vec<HostStatus> {
    let lives = live_all(fleet, tools);
    let most = majority(&lives);
    lives
        .into_iter()
        .map(|l| {
            let (live, error) = match l.live {
                Ok(r) => (r, None),
                Err(e) => (None, Some(e)),
            };
            HostStatus {
                disagrees: error.is_none() && live != most,
                name: l.target.name,
                path: l.target.path,
                live,
                error,
            }
        })
        .collect()
}

/// `status`'s lines for the targets, below the hook's own.
pub fn status_text(targets: &[HostStatus]) -> String {
    let width = targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut w = String::new();
    for (i, t) in targets.iter().enumerate() {
        let what = match (&t.live, &t.error) {
            (_, Some(e)) => format!("cannot be asked: {e}"),
            (Some(r), None) => r.clone(),
            (None, None) => "nothing published".into(),
        };
        w.push_str(&format!(
            "  {:<9}{:<width$}  {what}{}\n",
            if i == 0 { "hosts:" } else { "" },
            t.name,
            if t.disagrees {
                "  DISAGREES with the others (a failed switch-back, or a change by hand; the next build or rollback fixes it)"
            } else {
                ""
            }
        ));
    }
    w
}

/// The environment of ssh and rsync outside a build (status, rollback, check): the hook's
/// PATH and env, and HOME as the steps get it (ssh itself takes `~` from /etc/passwd).
pub fn tool_env(hook: &crate::config::Hook, home: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".into(), hook.path.clone());
    env.insert("HOME".into(), home.to_string_lossy().into_owned());
    env.insert("LANG".into(), "C.UTF-8".into());
    env.extend(hook.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// One line of `check`'s report.
pub enum Finding {
    Ok(String),
    Warn(String),
    Fail(String, String),
}

/// `check` for the fleet: ssh reaches every host in batch mode, rsync is on both ends,
/// `path`'s folder is writable there.
pub fn check(fleet: &Fleet, tools: &Tools) -> Vec<Finding> {
    let mut out = Vec::new();
    let path = tools.env.get("PATH").cloned().unwrap_or_default();
    match which("rsync", &path) {
        Some(p) => out.push(Finding::Ok(format!("rsync found here: {}", p.display()))),
        None => out.push(Finding::Fail(
            format!("rsync is not found on path {path}"),
            "apt-get install rsync".into(),
        )),
    }
    let ssh_line = fleet.ssh.join(" ");
    if which(&fleet.ssh[0], &path).is_none() {
        out.push(Finding::Fail(
            format!("{} (publish.ssh) is not found on path {path}", fleet.ssh[0]),
            "apt-get install openssh-client, or name ssh by its full path in publish.ssh".into(),
        ));
        return out;
    }
    let mut fw = Fleetwide::open(fleet, tools, false, 5);
    let probes = fw.probe_all();
    for (t, p) in fw.targets.iter().zip(probes) {
        let (dir, _) = t.split();
        // What a line calls the target, and where its fix is made.
        let (label, on) = match &t.ssh_host {
            Some(h) => (format!("host {h}"), format!("on {h}: ")),
            None => ("local".to_string(), String::new()),
        };
        let p = match p {
            Ok(p) => p,
            Err(f) => {
                let host = t.ssh_host.as_deref().unwrap_or("localhost");
                out.push(Finding::Fail(
                    format!("{label}: cannot run sh there with `{ssh_line} {host}` in batch mode: {}", f.message),
                    format!("as this user, `{ssh_line} {host} true` must work with no prompt: a key without a passphrase (IdentityFile), the host's key in known_hosts (ssh-keyscan), the right User; see docs/hosts.md"),
                ));
                continue;
            }
        };
        if t.ssh_host.is_some() {
            out.push(Finding::Ok(format!("{label}: reachable with {ssh_line}")));
            match &p.rsync {
                Some(r) => out.push(Finding::Ok(format!("{label}: rsync found: {r}"))),
                None => out.push(Finding::Fail(
                    format!("{label}: rsync is not installed"),
                    format!("{on}apt-get install rsync"),
                )),
            }
        }
        if p.folder_writable && (!p.releases_dir || p.releases_writable) {
            out.push(Finding::Ok(format!("{label}: {dir} is writable")));
        } else if !p.folder_writable {
            out.push(Finding::Fail(
                format!("{label}: {dir} does not exist or is not writable by the user that publishes"),
                format!("{on}install -d -o <that user> {dir}"),
            ));
        } else {
            out.push(Finding::Fail(
                format!("{label}: {} is not writable by the user that publishes", t.releases()),
                format!("{on}chown -R <that user> {}", t.releases()),
            ));
        }
        let path = &t.path;
        match &p.served {
            Served::Release(Some(r)) => out.push(Finding::Ok(format!("{label}: {path} serves release {r}"))),
            Served::Release(None) => out.push(Finding::Warn(format!("{label}: {path} is a symlink that leads nowhere; the next publish replaces it"))),
            Served::Folder => out.push(Finding::Warn(format!("{label}: {path} is a folder; the first publish keeps it as the oldest release and puts a symlink in its place"))),
            Served::Missing => out.push(Finding::Ok(format!("{label}: {path} will be created by the first publish"))),
            Served::Other => out.push(Finding::Fail(format!("{label}: {path} is a file"), format!("{on}remove it, or publish to another path"))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_live_previous_and_replaced() {
        let all: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        assert_eq!(to_prune(&all, Some("e"), Some("d"), 3), vec!["a", "b"]);
        // after a rollback to b, a publish of e keeps b (replaced), d and e
        assert_eq!(to_prune(&all, Some("e"), Some("b"), 3), vec!["a", "c"]);
        assert_eq!(to_prune(&all, Some("c"), None, 2), vec!["a", "d", "e"]);
        assert!(to_prune(&all, Some("e"), None, 5).is_empty());
    }

    #[test]
    fn probe_output_is_read() {
        let p = parse_probe("live 2026-b\nreleases\nreleases-writable\nrelease 2026-b\nrelease 2026-a\nfolder-writable\nrsync /usr/bin/rsync\n");
        assert_eq!(p.served, Served::Release(Some("2026-b".into())));
        assert_eq!(p.releases, vec!["2026-a", "2026-b"]);
        assert!(p.folder_writable && p.releases_writable && p.releases_dir);
        assert_eq!(p.rsync.as_deref(), Some("/usr/bin/rsync"));
        let p = parse_probe("missing\nrsync \n");
        assert_eq!((p.served, p.rsync, p.releases_dir), (Served::Missing, None, false));
        assert_eq!(parse_probe("live\n").served, Served::Release(None));
    }

    #[test]
    fn quoting_for_sh_and_rsync() {
        assert_eq!(sq("/var/www/it's here"), r"'/var/www/it'\''s here'");
        assert_eq!(rsync_e_word("ssh"), "ssh");
        assert_eq!(rsync_e_word("/etc/my config"), "'/etc/my config'");
        assert_eq!(rsync_e_word("it's"), "\"it's\"");
    }

    #[test]
    fn rsync_stats_are_read() {
        let out = "Number of files: 2,001 (reg: 2,000, dir: 1)\nNumber of regular files transferred: 1\nTotal file size: 51,200,000 bytes\nTotal bytes sent: 41,922\n";
        assert_eq!(stat(out, "Total bytes sent"), Some(41_922));
        assert_eq!(stat(out, "Number of regular files transferred"), Some(1));
        assert_eq!(stat(out, "Total file size"), Some(51_200_000));
    }

    #[test]
    fn a_target_knows_its_names() {
        let t = Target {
            name: "web1".into(),
            ssh_host: Some("web1".into()),
            path: "/var/www/docs".into(),
        };
        assert_eq!(t.releases(), "/var/www/docs.releases");
        assert_eq!(t.switch_link(), "/var/www/.docs.switch");
        assert_eq!(t.link_value("r1"), "docs.releases/r1");
        assert_eq!(t.rsync_dest("/x"), "web1:/x/");
        let top = Target {
            name: "local".into(),
            ssh_host: None,
            path: "/docs".into(),
        };
        assert_eq!(top.switch_link(), "/.docs.switch");
    }
}
