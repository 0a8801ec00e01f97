//! Test helpers: a throwaway world (bare remote, checkout, state dir, config) and a CGI
//! invocation builder that runs the real binary with a controlled environment and stdin.

#![allow(dead_code)]

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::own_web::OwnWeb;

pub const BIN: &str = env!("CARGO_BIN_EXE_deploy-hook");
pub const SECRET: &str = "SECabc123-test-secret";
/// Every provider and mode, as (provider, extra hook TOML).
pub const PROVIDER_MODES: [(&str, &str); 6] = [
    ("gitee", ""),
    ("gitee", "gitee_mode = \"password\""),
    ("github", ""),
    ("gitlab", ""),
    ("gitea", ""),
    ("gogs", ""),
];
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

pub fn fixture(name: &str) -> Vec<u8> {
    fs::read(Path::new(FIXTURES).join(name)).unwrap()
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Gitee signing-mode token, computed here independently of the binary.
pub fn gitee_token(secret: &str, ts: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(secret.as_bytes(), &[ts.as_bytes(), b"\n", secret.as_bytes()]))
}

pub fn github_sig(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex(&mac(secret.as_bytes(), &[body])))
}

pub fn gitea_sig(secret: &str, json: &[u8]) -> String {
    hex(&mac(secret.as_bytes(), &[json]))
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A free loopback port for a server a test starts, never one handed out before in this
/// test process (`cargo test` runs every test in one). The kernel's "free" lasts only until
/// the server binds it, a moment or (weed's filer, a restarted sshd) seconds later; another
/// test's pick meanwhile could get the same port, and then one server fails to bind while
/// the other answers both tests' requests. The suite needs a few hundred ports of thousands.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// A Gitee timestamp (unix ms, about a minute ago, well inside the signing window) that no
/// other call in this test process returns: Gitee's timestamps differ between deliveries,
/// and the same one twice is a replay, answered "duplicate". Taken in one atomic step, so
/// that deliveries made at once on several threads (a burst during a build) never share one.
pub fn fresh_gitee_ts() -> String {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let base = now_ms() as u64 - 60_000;
    let prev = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(base.max(last + 1)))
        .unwrap_or_else(|last| last);
    base.max(prev + 1).to_string()
}

/// A program of a Debian package the tests need, wherever the package puts it; `packages`
/// is what to install when it is missing (tests/run.sh does). Only for a test that
/// declares the need with `requires!`.
pub fn system_program(name: &str, packages: &str) -> PathBuf {
    crate::tier::find_system_program(name)
        .unwrap_or_else(|| panic!("{name} is not installed: apt-get install {packages} (tests/run.sh does)"))
}

/// Waits for `cond`, failing the test with `what` after `limit` (a bound, not a timing
/// assertion: it only keeps a broken build from hanging the suite).
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child's output, read on its own thread, so a test can wait for a line to appear with
/// a deadline (a blocking read has none) and then read the rest.
pub struct Watched {
    text: String,
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Watched {
    pub fn new(mut from: impl std::io::Read + Send + 'static) -> Watched {
        let (tx, chunks) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Watched {
            text: String::new(),
            chunks,
        }
    }

    /// Waits until the output holds `needle`; fails the test with `what` and the output so
    /// far after `limit` or at the end of the output.
    pub fn wait_for(&mut self, what: &str, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.text.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Err(e) => panic!("gave up waiting for {what} ({e:?}); the output so far:\n{}", self.text),
            }
        }
    }

    /// Everything, once the output has ended.
    pub fn rest(mut self) -> String {
        while let Ok(chunk) = self.chunks.recv() {
            self.text.push_str(&String::from_utf8_lossy(&chunk));
        }
        self.text
    }
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie (reparented to a PID 1 that does not reap) counts as dead.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .map(|r| !r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// A throwaway world for one test.
pub struct World {
    pub dir: PathBuf,
    pub remote: PathBuf,
    pub seed: PathBuf,
    pub repo: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    pub secret_file: PathBuf,
    /// The web servers `check` sees: this world's own, never the machine's.
    pub web: OwnWeb,
}

impl World {
    pub fn new(name: &str) -> World {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir()
            .join("deploy-hook-tests")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let w = World {
            remote: dir.join("remote.git"),
            seed: dir.join("seed"),
            repo: dir.join("repo"),
            state: dir.join("state"),
            config: dir.join("config.toml"),
            secret_file: dir.join("hook.secret"),
            web: OwnWeb::new(dir.join("own-web")),
            dir,
        };
        git(&w.dir, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
        git(&w.dir, &["init", "-q", "-b", "main", "seed"]);
        git(&w.seed, &["remote", "add", "origin", w.remote.to_str().unwrap()]);
        fs::write(w.seed.join("index.md"), "first\n").unwrap();
        git(&w.seed, &["add", "-A"]);
        git(&w.seed, &["commit", "-q", "-m", "first"]);
        git(&w.seed, &["push", "-q", "origin", "main"]);
        git(&w.dir, &["clone", "-q", w.remote.to_str().unwrap(), "repo"]);
        fs::write(&w.secret_file, format!("{SECRET}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&w.secret_file, fs::Permissions::from_mode(0o600)).unwrap();
        w
    }

    /// Commits `content` to `file` on `branch` of the remote; returns the commit id.
    pub fn push(&self, file: &str, content: &str) -> String {
        self.push_to("main", file, content)
    }

    pub fn push_to(&self, branch: &str, file: &str, content: &str) -> String {
        let current = git(&self.seed, &["rev-parse", "--abbrev-ref", "HEAD"]);
        if current != branch {
            git(&self.seed, &["checkout", "-q", "-B", branch]);
        }
        let path = self.seed.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        git(&self.seed, &["add", "-A"]);
        git(&self.seed, &["commit", "-q", "-m", &format!("change {file}")]);
        git(&self.seed, &["push", "-q", "-f", "origin", &format!("HEAD:{branch}")]);
        git(&self.seed, &["rev-parse", "HEAD"])
    }

    pub fn head(&self) -> String {
        git(&self.seed, &["rev-parse", "HEAD"])
    }

    /// Writes a config with one hook `docs`; `hook` is extra TOML for the hook table,
    /// `top` extra TOML before it.
    pub fn config(&self, provider: &str, hook: &str) -> &World {
        self.config_with("", provider, hook)
    }

    pub fn config_with(&self, top: &str, provider: &str, hook: &str) -> &World {
        let text = format!(
            "state_dir = {state:?}\n{top}\n[log]\nsyslog = \"\"\n\n[hooks.docs]\nprovider = {provider:?}\nsecret_file = {secret:?}\nrepo = {repo:?}\n{hook}\n",
            state = self.state.to_str().unwrap(),
            secret = self.secret_file.to_str().unwrap(),
            repo = self.repo.to_str().unwrap(),
        );
        fs::write(&self.config, text).unwrap();
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn hook_dir(&self) -> PathBuf {
        self.state.join("docs")
    }

    /// Lets a build user other than root fetch from the root-owned "forge" (remote.git):
    /// git's ownership check trusts it through the build HOME's .gitconfig, as a user
    /// would set up for a remote on the same machine.
    pub fn trust_remote_in_build_home(&self) {
        let home = self.hook_dir().join("home");
        fs::create_dir_all(&home).unwrap();
        fs::write(
            home.join(".gitconfig"),
            format!("[safe]\n\tdirectory = {}\n", self.remote.display()),
        )
        .unwrap();
    }

    pub fn status(&self) -> serde_json::Value {
        match fs::read(self.hook_dir().join("status.json")) {
            Ok(b) => serde_json::from_slice(&b).unwrap(),
            Err(_) => serde_json::json!({"state": "idle", "pending": false, "last": null, "history": []}),
        }
    }

    pub fn lock_free(&self) -> bool {
        use fs2::FileExt;
        let Ok(f) = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.hook_dir().join("build.lock"))
        else {
            return true;
        };
        let free = f.try_lock_exclusive().is_ok();
        if free {
            let _ = FileExt::unlock(&f);
        }
        free
    }

    /// Waits until no build runs or waits, and returns the status.
    pub fn wait_idle(&self) -> serde_json::Value {
        wait_for("the builds to finish", Duration::from_secs(120), || {
            let s = self.status();
            s["state"] == "idle" && !self.hook_dir().join("pending").exists() && self.lock_free()
        });
        self.status()
    }

    /// Waits until no worker of this world runs (`deploy-hook __worker ... <config>`), for
    /// a test that must know a worker it started indirectly (`status` does) is done.
    pub fn wait_no_worker(&self) {
        let config = self.config.to_string_lossy().into_owned();
        wait_for("the workers to end", Duration::from_secs(60), || {
            !fs::read_dir("/proc").into_iter().flatten().flatten().any(|e| {
                let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
                    return false;
                };
                let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
                let zombie = fs::read_to_string(e.path().join("stat"))
                    .map(|st| st.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
                    .unwrap_or(true);
                !zombie && args.contains(&&b"__worker"[..]) && args.contains(&config.as_bytes())
            })
        });
    }

    pub fn history(&self) -> Vec<serde_json::Value> {
        self.status()["history"].as_array().cloned().unwrap_or_default()
    }

    /// A CGI invocation for this world's config.
    pub fn cgi(&self) -> Cgi {
        Cgi::new(&self.config)
    }

    /// A signed Gitee push delivery for `main`.
    pub fn gitee_push(&self) -> Cgi {
        // Distinct per delivery, as Gitee's are: the same timestamp would be a replay.
        let ts = fresh_gitee_ts();
        self.cgi()
            .header("X-Gitee-Token", gitee_token(SECRET, &ts))
            .header("X-Gitee-Timestamp", &ts)
            .header("X-Gitee-Event", "Push Hook")
            .body(br#"{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111"}"#)
    }

    /// The binary with `args`, this world's config, the test's PATH after the world's own
    /// web servers (`check` sees them, not the machine's).
    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env_clear()
            .env("PATH", self.web.path(&std::env::var("PATH").unwrap_or_default()))
            .env("DEPLOY_HOOK_CONFIG", &self.config)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn log_text(&self, build: &serde_json::Value) -> String {
        fs::read_to_string(build["log"].as_str().unwrap()).unwrap_or_default()
    }
}

impl Drop for World {
    /// Kills this world's builds (a failed test may leave one waiting on a gate), then
    /// removes the folder unless the test failed (it is kept for a look).
    fn drop(&mut self) {
        if let Ok(pid) = self.status()["current"]["pid"].as_i64().ok_or(()) {
            if self.status()["state"] == "building" {
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
        }
        let needle = format!("DEPLOY_HOOK_LOG={}", self.dir.display());
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(env) = fs::read(entry.path().join("environ")) else {
                continue;
            };
            if env.split(|b| *b == 0).any(|kv| kv.starts_with(needle.as_bytes())) {
                if let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() {
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub struct Cgi {
    env: Vec<(OsString, OsString)>,
    body: Vec<u8>,
    content_length: Option<String>,
    /// A program the binary runs under (`strace ...`), as a web server would run it.
    wrapper: Vec<String>,
}

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub json: serde_json::Value,
    pub raw: Vec<u8>,
    pub stderr: String,
}

impl Reply {
    pub fn word(&self) -> &str {
        self.json["status"].as_str().unwrap_or("")
    }
}

impl Cgi {
    pub fn new(config: &Path) -> Cgi {
        Cgi {
            env: vec![
                ("REQUEST_METHOD".into(), "POST".into()),
                ("PATH_INFO".into(), "/docs".into()),
                ("CONTENT_TYPE".into(), "application/json".into()),
                ("DEPLOY_HOOK_CONFIG".into(), config.into()),
                ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
            ],
            body: Vec::new(),
            content_length: None,
            wrapper: Vec::new(),
        }
    }

    /// Runs the binary under `wrapper` (its argv, the binary and no argument follow).
    pub fn wrap(mut self, wrapper: &[&str]) -> Cgi {
        self.wrapper = wrapper.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<OsString>) -> Cgi {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn unset(mut self, k: &str) -> Cgi {
        self.env.retain(|(key, _)| key != k);
        self
    }

    pub fn header(self, name: &str, v: impl Into<OsString>) -> Cgi {
        let key = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        self.env(&key, v)
    }

    pub fn body(mut self, b: &[u8]) -> Cgi {
        self.body = b.to_vec();
        self
    }

    /// Overrides CONTENT_LENGTH; `""` sends it empty, as nginx does on a GET.
    pub fn content_length(mut self, v: &str) -> Cgi {
        self.content_length = Some(v.to_string());
        self
    }

    /// Sends the body with no CONTENT_LENGTH at all, as Apache does with a chunked body.
    pub fn chunked(mut self) -> Cgi {
        self.content_length = Some("<none>".into());
        self
    }

    pub fn run(self) -> Reply {
        let mut cmd = match self.wrapper.split_first() {
            None => Command::new(BIN),
            Some((program, args)) => {
                let mut c = Command::new(crate::tier::find_system_program(program).unwrap_or_else(|| program.into()));
                c.args(args).arg(BIN);
                c
            }
        };
        cmd.env_clear().env("PATH", "/usr/bin:/bin");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        match self.content_length.as_deref() {
            None => {
                cmd.env("CONTENT_LENGTH", self.body.len().to_string());
            }
            Some("<none>") => {}
            Some(v) => {
                cmd.env("CONTENT_LENGTH", v);
            }
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .current_dir("/")
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let body = self.body.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        // wait_with_output returns only when stdout and stderr are closed by every holder:
        // a worker that kept them open would hang here, as it would hang fcgiwrap.
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        parse_reply(&out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub fn parse_reply(raw: &[u8], stderr: String) -> Reply {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not a CGI reply: {text:?} stderr: {stderr}"));
    let status = head
        .lines()
        .find_map(|l| l.strip_prefix("Status: "))
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no Status line: {head}"));
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body:?}"));
    for key in ["status", "hook", "delivery", "message"] {
        assert!(json[key].is_string(), "answer lacks {key}: {json}");
    }
    assert!(head.contains("Content-Type: application/json"), "{head}");
    Reply {
        status,
        head: head.to_string(),
        json,
        raw: raw.to_vec(),
        stderr,
    }
}

/// A shell step that records its start and end in `record` and waits for `gate` to exist.
pub fn gated_step(record: &Path, gate: &Path) -> String {
    format!(
        "echo \"start $DEPLOY_HOOK_COMMIT $(date +%s%N)\" >> {r}; while [ ! -e {g} ]; do sleep 0.02; done; echo \"end $DEPLOY_HOOK_COMMIT $(date +%s%N)\" >> {r}",
        r = record.display(),
        g = gate.display()
    )
}

pub fn toml_str(s: &str) -> String {
    format!("{s:?}")
}

/// `deploy-hook sign HOOK --body FILE --format env`, eval'd by a shell that then runs the
/// real binary with the body on stdin: a delivery exactly as `sign` says to make one.
/// Returns the reply and what `sign` printed.
pub fn deliver_signed(w: &World, body_file: &Path) -> (Reply, String) {
    let env_lines = String::from_utf8(
        w.cmd(&["sign", "docs", "--body", body_file.to_str().unwrap(), "--format", "env"])
            .stdout,
    )
    .unwrap();
    let script = format!("{env_lines}\nexec {BIN} < {}", body_file.display());
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .output()
        .unwrap();
    (
        parse_reply(&out.stdout, String::from_utf8_lossy(&out.stderr).into_owned()),
        env_lines,
    )
}
