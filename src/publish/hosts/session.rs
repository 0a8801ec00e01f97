//! One open connection per target, for the whole of a publish or a rollback: `ssh ... host
//! sh` (a ControlMaster that rsync's ssh reuses) or a local `sh`, reading commands on stdin
//! and answering on stdout. A command's answer ends with a marker line that carries its exit
//! status, so many commands share one connection and one round trip each.
//!
//! What the connection prints on stderr (ssh's own messages) goes into the build log
//! through a reader thread. Dropping a `Session` ends that for good, so that the order is
//! certain: the child's group is stopped, the reader gets `STDERR_DRAIN` to read to the
//! end, and then the session finishes the log's stream itself, taking it from the reader.
//! Everything a connection writes into the log is therefore written before it is dropped,
//! which a publish or a rollback does before it returns, so before the build seals the log
//! (`BuildLog::seal`); a process that escaped the group and still holds the stderr can
//! write nothing into the log after that.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::scripts::{parse_probe, probe_script, Probe};
use super::{fail, targets, Failure, Target, Tools};
use crate::build::buildlog::Stream;
use crate::config::Hosts;
use crate::sys::process::{Process, Running};

/// How long one command on a host may take (a probe, a rename, a prune).
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The marker that ends a command's answer on a host's `sh`; never in our own output.
pub(super) const MARK: &str = "__deploy_hook_done_";

/// The longest line a host may answer with. Our commands print release names, paths and
/// counts; a longer line is a host that prints something else (a login banner, a
/// `.bashrc` gone wrong), and it must not take our memory: 1 GiB without a newline once
/// made `status` take 2.1 GB.
pub(super) const LINE_MAX: usize = 64 << 10;

/// The most one command's answer may hold (a listing of many releases is far less).
pub(super) const ANSWER_MAX: usize = 4 << 20;

/// Once the connection's group is stopped, how long its stderr may stay open for the rest
/// of what it said: a process outside the group (a `setsid` ProxyCommand) may hold it for
/// ever.
const STDERR_DRAIN: Duration = Duration::from_secs(1);

/// What the reader of a host's stdout hands over.
pub(super) enum Answer {
    Line(String),
    /// A line longer than `LINE_MAX`: nothing more is read from this host.
    TooLong,
}

/// One open connection to a target: `ssh ... host sh` (a ControlMaster that rsync reuses),
/// or a local `sh`, reading commands on stdin and answering on stdout.
pub(super) struct Session {
    pub(super) name: String,
    pub(super) child: Running,
    pub(super) stdin: Option<ChildStdin>,
    /// stdout lines, with the instant each arrived (for the switch spread).
    pub(super) lines: Receiver<(Instant, Answer)>,
    /// The end of what ssh printed on stderr: why a connection failed.
    pub(super) err_tail: Arc<Mutex<Vec<u8>>>,
    /// Where the stderr reader writes into the build log, until the session takes it
    /// (`end_stderr`).
    err_log: Arc<Mutex<Option<Stream>>>,
    /// Disconnected once the stderr reader has ended (it sends nothing).
    err_done: Receiver<()>,
    /// Why this connection can no longer be used, once it cannot.
    pub(super) broken: Option<String>,
    /// The ControlMaster's socket, for rsync's `-e`.
    pub(super) control: Option<PathBuf>,
    pub(super) seq: u64,
}

pub(super) fn ssh_base(cfg: &Hosts, connect_timeout: u32) -> Vec<String> {
    let mut argv = cfg.ssh.clone();
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
    pub(super) fn open(
        target: &Target,
        cfg: &Hosts,
        tools: &Tools,
        control: Option<PathBuf>,
        connect_timeout: u32,
    ) -> Result<Session, String> {
        let argv = match &target.ssh_host {
            None => vec!["sh".to_string()],
            Some(host) => {
                let mut a = ssh_base(cfg, connect_timeout);
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
        // Its own group, and PR_SET_PDEATHSIG: the connection must not outlive the build
        // that opened it.
        let mut child = Process::argv(&argv)
            .env(tools.env)
            .spawn(Stdio::piped(), Stdio::piped(), Stdio::piped())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => e.to_string(),
                _ => format!("cannot start {}: {e}", argv[0]),
            })?;
        let (tx, rx) = mpsc::channel();
        let stdout = child.take_stdout();
        let stderr = child.take_stderr();
        std::thread::spawn(move || {
            if let Some(out) = stdout {
                read_lines(BufReader::new(out), &tx);
            }
        });
        let err_tail = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&err_tail);
        let err_log = Arc::new(Mutex::new(Some(tools.log.stream(&format!("[{}] ", target.name)))));
        let log = Arc::clone(&err_log);
        let (done, err_done) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _done = done;
            let Some(mut err) = stderr else { return };
            let mut buf = [0u8; 8192];
            // Into the build log (capped there) while the session lets it, and the last
            // 1 KiB here, for `lost`.
            while let Ok(n @ 1..) = err.read(&mut buf) {
                if let Ok(mut stream) = log.lock() {
                    if let Some(stream) = stream.as_mut() {
                        stream.write(&buf[..n]);
                    }
                }
                if let Ok(mut t) = tail.lock() {
                    t.extend_from_slice(&buf[..n]);
                    let excess = t.len().saturating_sub(1024);
                    t.drain(..excess);
                }
            }
        });
        Ok(Session {
            name: target.name.clone(),
            stdin: child.take_stdin(),
            child,
            lines: rx,
            err_tail,
            err_log,
            err_done,
            broken: None,
            control,
            seq: 0,
        })
    }

    /// Sends a script; its answer is read by `wait`. The script's stdin is /dev/null (it
    /// must never eat the commands that follow it) and its stderr joins its stdout.
    pub(super) fn send(&mut self, script: &str) -> Result<u64, String> {
        self.seq += 1;
        let seq = self.seq;
        let text = format!("{{\n{script}\n}} </dev/null 2>&1\nprintf '\\n{MARK}{seq} %s\\n' \"$?\"\n");
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let stdin = self.stdin.as_mut().ok_or("the connection is closed")?;
        match stdin.write_all(text.as_bytes()).and_then(|_| stdin.flush()) {
            Ok(()) => Ok(seq),
            Err(_) => Err(self.lost()),
        }
    }

    /// The answer to command `seq`: its exit status, its output, and when it arrived.
    pub(super) fn wait(&mut self, seq: u64, timeout: Duration) -> Result<(i32, String, Instant), String> {
        let marker = format!("{MARK}{seq} ");
        let deadline = Instant::now() + timeout;
        let mut output = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, Answer::Line(line))) => match line.strip_prefix(&marker) {
                    Some(code) => {
                        return Ok((code.trim().parse().unwrap_or(-1), output.trim().to_string(), at));
                    }
                    // The end of an earlier command that was given up on (no answer in time).
                    None if line.starts_with(MARK) => {}
                    None if output.len() + line.len() >= ANSWER_MAX => {
                        return Err(self.break_off(format!(
                            "answered more than {} MiB to one command; it is not read any further",
                            ANSWER_MAX >> 20
                        )));
                    }
                    None => {
                        output.push_str(&line);
                        output.push('\n');
                    }
                },
                Ok((_, Answer::TooLong)) => {
                    return Err(self.break_off(format!(
                        "answered a line longer than {} KiB, which no command of ours prints (a login banner, or a shell startup file that prints?); it is not read any further: `ssh HOST sh` must print nothing of its own",
                        LINE_MAX >> 10
                    )));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no answer within {}s", timeout.as_secs()));
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.lost()),
            }
        }
    }

    pub(super) fn run(&mut self, script: &str) -> Result<(i32, String), String> {
        let seq = self.send(script)?;
        self.wait(seq, COMMAND_TIMEOUT).map(|(c, o, _)| (c, o))
    }

    /// Runs a script that must succeed; the error holds what it printed.
    pub(super) fn run_ok(&mut self, what: &str, script: &str) -> Result<String, String> {
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
    pub(super) fn lost(&mut self) -> String {
        self.stdin = None;
        let until = Instant::now() + Duration::from_secs(2);
        let mut status = None;
        while Instant::now() < until {
            if let Some(s) = self.child.ended() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The stderr reader may still be on the last line: it ends with the stderr.
        let _ = self.err_done.recv_timeout(Duration::from_millis(200));
        let tail = self.err_tail.lock().map(|t| last_lines(&t)).unwrap_or_default();
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

/// Hands over a host's stdout line by line, and stops at a line longer than `LINE_MAX`
/// (`BufRead::lines` would gather it whole, however long).
fn read_lines(mut from: impl BufRead, to: &mpsc::Sender<(Instant, Answer)>) {
    let mut line = Vec::new();
    loop {
        let Ok(buf) = from.fill_buf() else { return };
        if buf.is_empty() {
            return;
        }
        let (take, whole) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        from.consume(take);
        if line.len() > LINE_MAX {
            let _ = to.send((Instant::now(), Answer::TooLong));
            return;
        }
        if whole {
            line.pop();
            let text = String::from_utf8_lossy(&line).into_owned();
            if to.send((Instant::now(), Answer::Line(text))).is_err() {
                return;
            }
            line.clear();
        }
    }
}

/// The last three lines of `text`, as one line.
fn last_lines(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

impl Session {
    /// Gives up this connection for good: what it sends is out of step with what we ask.
    /// (Its target's name is added where the message is shown.)
    fn break_off(&mut self, why: String) -> String {
        self.stdin = None;
        self.broken = Some(why.clone());
        why
    }
}

impl Session {
    /// Ends what this connection writes into the build log (see the module's comment):
    /// waits up to `STDERR_DRAIN` for the stderr reader to reach the end, then finishes
    /// the stream. Call it once the child's group is stopped.
    fn end_stderr(&mut self) {
        let _ = self.err_done.recv_timeout(STDERR_DRAIN);
        let stream = self.err_log.lock().ok().and_then(|mut s| s.take());
        if let Some(stream) = stream {
            stream.finish();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // EOF ends the remote sh, and with it the ControlMaster; the group is stopped when
        // it hangs.
        self.stdin = None;
        self.child.stop(Duration::from_millis(500), Duration::from_millis(500));
        self.end_stderr();
        if let Some(c) = &self.control {
            let _ = std::fs::remove_file(c);
        }
    }
}

/// The connections of one publish or rollback, opened at once, in the targets' order.
pub(super) struct Connections<'a> {
    pub(super) targets: Vec<Target>,
    pub(super) sessions: Vec<Result<Session, String>>,
    pub(super) tools: &'a Tools<'a>,
    /// To open a connection again (`reopen_if_lost`).
    cfg: Hosts,
    connect_timeout: u32,
}

impl<'a> Connections<'a> {
    pub(super) fn open(cfg: &Hosts, tools: &'a Tools<'a>, mux: bool, connect_timeout: u32) -> Connections<'a> {
        let targets = targets(cfg);
        let sessions = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let control = tools.state_dir.join(format!("ssh-{i}.sock"));
                // A unix socket's path holds at most 107 bytes; without one rsync makes
                // its own connection, and the switch still goes over the open sh.
                let control = (mux && control.as_os_str().len() < 100).then_some(control);
                Session::open(t, cfg, tools, control, connect_timeout)
            })
            .collect();
        Connections {
            targets,
            sessions,
            tools,
            cfg: cfg.clone(),
            connect_timeout,
        }
    }

    /// Opens target `i`'s connection again when it ended (its `sh` or ssh is gone), without
    /// a ControlMaster; true when a new one is open. Call it on the thread that outlives the
    /// session: a session's processes die with the thread that started them.
    pub(super) fn reopen_if_lost(&mut self, i: usize) -> bool {
        let gone = match &mut self.sessions[i] {
            Ok(s) => s.stdin.is_none() || s.child.ended().is_some(),
            Err(_) => true,
        };
        if !gone {
            return false;
        }
        self.sessions[i] = Session::open(&self.targets[i], &self.cfg, self.tools, None, self.connect_timeout);
        self.sessions[i].is_ok()
    }

    /// Runs `f` for every target at once; `f` gets the target, its session and its index.
    pub(super) fn each<T: Send>(
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

    pub(super) fn probe_all(&mut self) -> Vec<Result<Probe, Failure>> {
        self.each(|_, t, s| Ok(parse_probe(&s.run_ok("probing", &probe_script(t))?)))
    }

    pub(super) fn session(&mut self, i: usize) -> Option<&mut Session> {
        self.sessions[i].as_mut().ok()
    }
}

/// The first failure, in the targets' order, of a step run on every target.
pub(super) fn first_failure<T>(results: &[Result<T, Failure>]) -> Option<Failure> {
    results.iter().find_map(|r| r.as_ref().err().cloned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;
    use crate::build::buildlog::BuildLog;
    use crate::publish::Tools;

    /// Lets the stderr holder go when the test ends, passed or not.
    struct Gate<'a>(&'a Path);

    impl Drop for Gate<'_> {
        fn drop(&mut self) {
            let _ = fs::write(self.0, "");
        }
    }

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < until, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What a connection's `ssh` said on stderr is in the build log once the connection is
    /// dropped (a publish drops them all before the build seals its log), even while a
    /// process it started outside its group still holds that stderr; and what that process
    /// writes later never reaches the log.
    #[test]
    fn a_dropped_connection_has_written_its_stderr_and_writes_no_more() {
        let dir = std::env::temp_dir().join(format!("dh-session-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).unwrap();
        let (gate, holder) = (dir.join("gate"), dir.join("holder"));
        let _gate = Gate(&gate);
        // A `sh` that says its last words on stderr, without a newline, and leaves a
        // process in a session of its own holding that stderr until the gate opens.
        fs::write(
            bin.join("sh"),
            format!(
                "#!/bin/sh\nprintf LAST-WORDS >&2\nsetsid /bin/sh -c 'echo $$ > {h}; while [ ! -e {g} ]; do sleep 0.01; done; echo LATE-LINE >&2' </dev/null >/dev/null &\nexec /bin/sh\n",
                h = holder.display(),
                g = gate.display()
            ),
        )
        .unwrap();
        fs::set_permissions(bin.join("sh"), fs::Permissions::from_mode(0o755)).unwrap();
        let log_path = dir.join("b.log");
        let log = BuildLog::create(&log_path, 8 << 20).unwrap();
        let env = BTreeMap::from([("PATH".to_string(), format!("{}:/usr/bin:/bin", bin.display()))]);
        let tools = Tools {
            env: &env,
            state_dir: &dir,
            upload_timeout: Duration::from_secs(60),
            log: &log,
            repo: &dir,
        };
        let cfg = Hosts {
            local: Some(dir.join("site")),
            hosts: Vec::new(),
            ssh: vec!["ssh".into()],
            bucket: None,
        };
        let mut session = Session::open(&targets(&cfg)[0], &cfg, &tools, None, 5).unwrap();
        assert_eq!(session.run_ok("echo", "echo up").unwrap(), "up");
        wait_until("the holder to start", || holder.exists());
        let reader = Arc::clone(&session.err_log);
        drop(session);
        let text = fs::read_to_string(&log_path).unwrap();
        assert!(text.contains("[local] LAST-WORDS\n"), "{text:?}");
        // The holder writes, then lets the stderr go: the reader reads it and ends.
        fs::write(&gate, "").unwrap();
        wait_until("the stderr reader to end", || Arc::strong_count(&reader) == 1);
        let text = fs::read_to_string(&log_path).unwrap();
        assert!(!text.contains("LATE-LINE"), "{text:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
