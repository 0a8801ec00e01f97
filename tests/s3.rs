//! A real S3 server for the bucket tests: SeaweedFS (`weed server -s3`), one per test, on
//! loopback ports chosen free, with its data in the test's folder. Debian's rclone talks to
//! it through `rclone.conf` (remote `s3`), as a user's rclone talks to S3, OSS, COS or R2.
//!
//! The server holds bucket `site`, which anyone may read (an `anonymous` identity with
//! `Read:site`, as a CDN reads a public bucket) and only the keys of `rclone.conf` may
//! write. It starts in its own process group and is killed as a group (it takes half a
//! minute to stop on SIGTERM); it is ready when a signed ListBuckets works, a few seconds
//! after it starts (an unsigned request gets 403 before the filer is up).
//!
//! Every rclone here runs with a cleared environment, as deploy-hook runs it: rclone 1.60
//! cannot make an S3 client when `AWS_CA_BUNDLE` is set, and some machines set it.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::servers::{http, HttpReply};
use crate::util::*;

/// The bucket every test server holds.
pub const BUCKET: &str = "site";
/// The rclone remote of `rclone.conf`.
pub const REMOTE: &str = "s3";

pub struct S3 {
    pub dir: PathBuf,
    /// The S3 port: signed requests (rclone) and anonymous reads (readers, a CDN).
    pub port: u16,
    pub rclone_conf: PathBuf,
    weed: Option<Child>,
}

/// `n` distinct free loopback ports, none handed to another server of this run
/// (`free_port`): weed binds some of them seconds after it starts.
fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// A random-enough secret for this server's keys (never printed).
fn secret() -> String {
    let mut b = [0u8; 18];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    hex(&b)
}

impl S3 {
    /// Starts a server with its data in `dir`, and waits until it answers. A port found
    /// free can be taken by another test's server before weed binds it: then weed exits
    /// saying so, and it is started again on other ports.
    pub fn start(dir: &Path) -> S3 {
        for attempt in 1.. {
            match S3::try_start(dir) {
                Ok(s3) => return s3,
                Err(log) if log.contains("address already in use") && attempt < 5 => {
                    let _ = fs::remove_dir_all(dir);
                }
                Err(log) => panic!("weed exited: {log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// One start: `Err` with the end of weed's log when it exits before it answers.
    fn try_start(dir: &Path) -> Result<S3, String> {
        let weed = crate::tier::weed().expect("weed is installed by tests/run.sh");
        fs::create_dir_all(dir.join("data")).unwrap();
        let p = free_ports(9);
        let key = format!("dh{}", &secret()[..10]);
        let secret = secret();
        let identities = serde_json::json!({ "identities": [
            { "name": "deploy-hook", "credentials": [ { "accessKey": key, "secretKey": secret } ],
              "actions": [ "Admin", "Read", "List", "Tagging", "Write" ] },
            { "name": "anonymous", "actions": [ format!("Read:{BUCKET}") ] } ] });
        fs::write(dir.join("s3.json"), identities.to_string()).unwrap();
        let rclone_conf = dir.join("rclone.conf");
        // provider = SeaweedFS: rclone 1.60 knows it; path-style addressing (no DNS per bucket).
        fs::write(
            &rclone_conf,
            format!(
                "[{REMOTE}]\ntype = s3\nprovider = SeaweedFS\naccess_key_id = {key}\nsecret_access_key = {secret}\nendpoint = http://127.0.0.1:{}\nforce_path_style = true\n",
                p[6]
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&rclone_conf, fs::Permissions::from_mode(0o600)).unwrap();
        let log = fs::File::create(dir.join("weed.log")).unwrap();
        let a = |s: &str| s.to_string();
        // Every port named (each service has an HTTP and a gRPC port; gRPC defaults to
        // HTTP + 10000, which collides between servers), the iceberg and lance ports off,
        // the filer's socket in our folder, every address loopback.
        let args = vec![
            a("server"),
            format!("-dir={}", dir.join("data").display()),
            a("-ip=127.0.0.1"),
            a("-ip.bind=127.0.0.1"),
            format!("-master.port={}", p[0]),
            format!("-master.port.grpc={}", p[1]),
            a("-master.volumeSizeLimitMB=64"),
            format!("-volume.port={}", p[2]),
            format!("-volume.port.grpc={}", p[3]),
            a("-volume.max=0"),
            a("-filer"),
            format!("-filer.port={}", p[4]),
            format!("-filer.port.grpc={}", p[5]),
            format!("-filer.localSocket={}", dir.join("filer.sock").display()),
            a("-s3"),
            format!("-s3.port={}", p[6]),
            format!("-s3.port.grpc={}", p[7]),
            format!("-s3.config={}", dir.join("s3.json").display()),
            a("-s3.port.iceberg=0"),
            a("-s3.port.lance=0"),
            format!("-metricsPort={}", p[8]),
        ];
        let mut cmd = Command::new(weed);
        cmd.args(&args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        // SAFETY: prctl only, between fork and exec: weed dies with the test binary.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut s3 = S3 {
            dir: dir.to_path_buf(),
            port: p[6],
            rclone_conf,
            weed: Some(cmd.spawn().unwrap()),
        };
        let start = Instant::now();
        loop {
            if let Some(status) = s3.weed.as_mut().unwrap().try_wait().unwrap() {
                s3.weed = None;
                let log = fs::read_to_string(dir.join("weed.log")).unwrap_or_default();
                let busy = if log.contains("address already in use") {
                    "address already in use: "
                } else {
                    ""
                };
                return Err(format!("{busy}({status}) {}", s3.log_tail()));
            }
            let out = s3.rclone(&[
                "lsd",
                &format!("{REMOTE}:"),
                "--contimeout",
                "1s",
                "--timeout",
                "2s",
                "--low-level-retries",
                "1",
                "--retries",
                "1",
            ]);
            if out.status.success() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "S3 did not answer in 90 s: {}",
                s3.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s3.rclone_ok(&["mkdir", &format!("{REMOTE}:{BUCKET}")]);
        Ok(s3)
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// rclone with this server's config, in a cleared environment.
    pub fn rclone(&self, args: &[&str]) -> Output {
        Command::new(system_program("rclone", "rclone"))
            .arg("--config")
            .arg(&self.rclone_conf)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn rclone_ok(&self, args: &[&str]) -> String {
        let out = self.rclone(args);
        assert!(
            out.status.success(),
            "rclone {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `s3:site/<path>`.
    pub fn remote(&self, path: &str) -> String {
        format!("{REMOTE}:{BUCKET}/{path}")
    }

    /// An anonymous GET of `site/<path>`, as a CDN or a reader would make it.
    pub fn get(&self, path: &str) -> HttpReply {
        http(self.port, "GET", &format!("/{BUCKET}/{path}"), &[], None, false)
    }

    /// Every object under `site/<prefix>/`, by path below it.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .rclone_ok(&["lsf", "-R", "--files-only", &self.remote(prefix)])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    }

    /// Kills the server's whole process group, and waits until its S3 port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.weed.take() {
            // SAFETY: kill(2) on the process group weed leads.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
        }
        wait_for("the S3 port to close", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
        });
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        if let Some(mut child) = self.weed.take() {
            // SAFETY: as in `stop`.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}
