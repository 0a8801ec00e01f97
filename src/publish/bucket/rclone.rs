//! The bucket through rclone: the few rclone commands a publish needs, with the flags that
//! make each of them cheap and quick to fail, run in a cleared environment.
//!
//! - Upload: `copy --files-from-raw LIST` (`--files-from` would skip a name starting with
//!   `#` or `;`), with `--no-check-dest --no-traverse --s3-no-check-bucket --s3-no-head`:
//!   the manifest already says what changed, so rclone asks the bucket nothing per file
//!   (one HEAD and one PUT per file instead of a listing of the site). `--copy-links`: a
//!   symlink in the release (it stays inside it) is uploaded as what it leads to.
//! - Read an object: `cat --error-on-no-transfer` (a missing object is exit 9; without the
//!   flag it is an empty output and exit 0). Never `--s3-no-head-object` with `cat`: rclone
//!   then takes the object for a folder and prints nothing.
//! - Delete: `delete --files-from-raw LIST --no-traverse`.
//! - Every call: `--retries 1 --contimeout 5s --s3-no-check-bucket` and our own deadline,
//!   the hook's step timeout, after which its process group is killed. A read (`cat`,
//!   `version`, `listremotes`) also gets `--low-level-retries 1 --timeout 5s`, so that a
//!   bucket that accepts connections and never answers fails the publish (whose first call
//!   reads the manifest) and `check` in about 40 s; a write (`copy`, `copyto`, `delete`)
//!   gets `--low-level-retries 3 --timeout 30s`, because a loaded server may take more
//!   than 5 s to answer a PUT it is storing. With rclone's defaults an unreachable endpoint
//!   takes minutes to fail, and one that never answers, for ever.
//!
//! The environment is PATH, HOME and LANG only: rclone 1.60 cannot make any S3 client when
//! `AWS_CA_BUNDLE` is set (Debian's curl-ish setups and some CI machines set it), and the
//! web server's and the steps' variables have no business in it. Everything rclone needs is
//! in `rclone_config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::build::buildlog::BuildLog;
use crate::sys::process::{which, Exit, Process};

/// What a bucket is to a publish: a place to read, upload, write and delete objects. rclone
/// is the one real implementation; the unit tests use a map in memory.
pub trait Store {
    /// The object at `path` (relative to the bucket path), `None` when there is none.
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, String>;
    /// Uploads the files `paths` of the folder `src` to the same paths, in parallel, each
    /// with `Cache-Control: cache_control` when it is set.
    fn upload(&mut self, src: &Path, paths: &[&str], cache_control: Option<&str>) -> Result<(), String>;
    /// Uploads the local file `local` to `path`.
    fn put(&mut self, local: &Path, path: &str, cache_control: &str) -> Result<(), String>;
    /// Deletes the objects at `paths`; one that is not there is no error.
    fn delete(&mut self, paths: &[String]) -> Result<(), String>;
}

/// rclone's exit status for "no file was transferred" with `--error-on-no-transfer`: the
/// object that `cat` was asked for is not there.
const NO_TRANSFER: i32 = 9;
/// rclone's exit status for "directory not found": for `cat` on S3, the bucket itself.
const DIR_NOT_FOUND: i32 = 3;
/// The most of rclone's output kept: a manifest of 200,000 files. A bigger one is cut,
/// reads as no manifest, and the publish sends every file.
const MANIFEST_LIMIT: usize = 64 << 20;

/// The flags of every call: fail within seconds, not minutes, and never create the bucket.
const COMMON: [&str; 5] = ["--retries", "1", "--contimeout", "5s", "--s3-no-check-bucket"];

/// The limits of a read, which moves little: a request that gets no answer for 5 s fails.
/// rclone 1.60 makes up to 8 requests for one `cat` of a bucket that never answers (it
/// asks for the object, then lists it as a folder; each is tried twice by rclone's pacer
/// and twice by the S3 client, whatever `--low-level-retries` below 2 says), so such a
/// read fails in about 40 s.
const READ: [&str; 4] = ["--low-level-retries", "1", "--timeout", "5s"];

/// The limits of a write: a PUT that a loaded server is still storing may take more than
/// 5 s to be answered, so 30 s without a byte, each request tried up to 3 times.
const WRITE: [&str; 4] = ["--low-level-retries", "3", "--timeout", "30s"];

/// Which limits a call gets: `READ` or `WRITE`.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
}

/// The flags of every upload: ask the bucket nothing the manifest already says.
const UPLOAD: [&str; 4] = ["--no-check-dest", "--no-traverse", "--s3-no-head", "--copy-links"];

/// rclone, configured for one bucket path.
pub struct Rclone {
    program: PathBuf,
    config: PathBuf,
    /// `remote:bucket/path`, without a trailing `/`.
    remote: String,
    env: BTreeMap<String, String>,
    /// The longest one call may take.
    timeout: Duration,
    /// Where the file lists for `--files-from-raw` are written.
    work: PathBuf,
    /// rclone's messages are appended here (the build log), as well as kept for the error.
    log: Option<BuildLog>,
}

/// How one rclone call ended.
struct Ran {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Rclone {
    /// rclone as `path` finds it, for `remote` with `config`; lists go into `work`.
    pub fn new(
        path: &str,
        home: &Path,
        config: &Path,
        remote: &str,
        timeout: Duration,
        work: &Path,
        log: Option<&BuildLog>,
    ) -> Result<Rclone, String> {
        let program = which("rclone", path)
            .ok_or_else(|| format!("rclone is not found on PATH {path}: apt-get install rclone"))?;
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), path.to_string());
        env.insert("HOME".to_string(), home.to_string_lossy().into_owned());
        env.insert("LANG".to_string(), "C.UTF-8".to_string());
        Ok(Rclone {
            program,
            config: config.to_path_buf(),
            remote: remote.trim_end_matches('/').to_string(),
            env,
            timeout,
            work: work.to_path_buf(),
            log: log.cloned(),
        })
    }

    /// `remote:bucket/path/rel`.
    pub fn at(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.remote.clone()
        } else {
            format!("{}/{rel}", self.remote)
        }
    }

    /// The program found, for `check`.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Runs `rclone --config CONFIG <COMMON> <READ or WRITE> args...`, output captured,
    /// within the deadline (then its group is stopped).
    fn run(&self, kind: Kind, args: &[&str]) -> Result<Ran, String> {
        let mut p = Process::new(self.program.to_string_lossy());
        let limits = match kind {
            Kind::Read => READ,
            Kind::Write => WRITE,
        };
        p.arg("--config")
            .arg(&self.config)
            .args(COMMON)
            .args(limits)
            .args(args)
            .env(&self.env)
            .timeout(self.timeout)
            // A manifest lists every file of the site: 240 KB for 2,000 files.
            .capture_limit(MANIFEST_LIMIT);
        let done = p.output();
        let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
        if let (Some(log), false) = (&self.log, stderr.trim().is_empty()) {
            log.line(stderr.trim_end());
        }
        let code = match done.exit {
            Exit::Status(c) => Some(c),
            Exit::TimedOut => {
                return Err(format!(
                    "rclone {} took longer than {}s and was stopped (the limit: step_timeout_secs in a build, at most 60s in check and status)",
                    args.first().unwrap_or(&""),
                    self.timeout.as_secs()
                ))
            }
            Exit::NotStarted(why) => return Err(format!("cannot start rclone: {why}")),
            Exit::Signal(_) | Exit::Cancelled => None,
        };
        Ok(Ran {
            code,
            stdout: done.stdout,
            stderr,
        })
    }

    /// Runs a call that must succeed.
    fn run_ok(&self, kind: Kind, args: &[&str]) -> Result<Ran, String> {
        let ran = self.run(kind, args)?;
        if ran.code == Some(0) {
            Ok(ran)
        } else {
            Err(failure(args.first().copied().unwrap_or(""), &ran))
        }
    }

    /// Writes `paths` one per line into a list file for `--files-from-raw`.
    fn list(&self, name: &str, paths: &[&str]) -> Result<PathBuf, String> {
        let file = self.work.join(name);
        let mut text = String::new();
        for p in paths {
            text.push_str(p);
            text.push('\n');
        }
        std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        Ok(file)
    }

    /// `rclone version`'s first line, for `check`.
    pub fn version(&self) -> Result<String, String> {
        let ran = self.run_ok(Kind::Read, &["version"])?;
        Ok(String::from_utf8_lossy(&ran.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string())
    }

    /// The remotes rclone_config defines (`name:` each), for `check`. `listremotes` prints
    /// names only, never a key.
    pub fn remotes(&self) -> Result<Vec<String>, String> {
        let ran = self.run_ok(Kind::Read, &["listremotes"])?;
        Ok(String::from_utf8_lossy(&ran.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }
}

/// An rclone call that failed, in one line: the command, its exit status and the last of
/// what it said (the cause is at the end: `dial tcp ...: connection refused`).
fn failure(command: &str, ran: &Ran) -> String {
    let said: Vec<&str> = ran.stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = said[said.len().saturating_sub(3)..].join(" / ");
    let code = ran
        .code
        .map(|c| format!("exit status {c}"))
        .unwrap_or_else(|| "killed".into());
    if tail.is_empty() {
        format!("rclone {command} failed ({code})")
    } else {
        format!("rclone {command} failed ({code}): {tail}")
    }
}

impl Store for Rclone {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let at = self.at(path);
        let ran = self.run(Kind::Read, &["cat", "--error-on-no-transfer", &at])?;
        match ran.code {
            Some(0) => Ok(Some(ran.stdout)),
            Some(NO_TRANSFER) => Ok(None),
            // deploy-hook never creates a bucket (--s3-no-check-bucket): which region, which
            // ACL and who pays are the owner's choices.
            Some(DIR_NOT_FOUND) => Err(format!(
                "{}: {}; create the bucket first (in the provider's console, or rclone mkdir {})",
                failure("cat", &ran),
                "the bucket does not exist",
                self.remote.split('/').next().unwrap_or(&self.remote)
            )),
            _ => Err(failure("cat", &ran)),
        }
    }

    fn upload(&mut self, src: &Path, paths: &[&str], cache_control: Option<&str>) -> Result<(), String> {
        if paths.is_empty() {
            return Ok(());
        }
        let list = self.list("upload.list", paths)?;
        let list = list.to_string_lossy().into_owned();
        let src = src.to_string_lossy().into_owned();
        let header = cache_control.map(|c| format!("Cache-Control: {c}"));
        let mut args = vec!["copy", "--files-from-raw", &list, "--transfers", "8"];
        args.extend(UPLOAD);
        if let Some(h) = &header {
            args.extend(["--header-upload", h]);
        }
        let remote = self.at("");
        args.extend([src.as_str(), remote.as_str()]);
        self.run_ok(Kind::Write, &args).map(|_| ())
    }

    fn put(&mut self, local: &Path, path: &str, cache_control: &str) -> Result<(), String> {
        let local = local.to_string_lossy().into_owned();
        let header = format!("Cache-Control: {cache_control}");
        let at = self.at(path);
        let mut args = vec!["copyto"];
        args.extend(UPLOAD);
        args.extend(["--header-upload", &header, &local, &at]);
        self.run_ok(Kind::Write, &args).map(|_| ())
    }

    fn delete(&mut self, paths: &[String]) -> Result<(), String> {
        if paths.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let list = self.list("delete.list", &refs)?;
        let list = list.to_string_lossy().into_owned();
        let remote = self.at("");
        self.run_ok(
            Kind::Write,
            &["delete", "--files-from-raw", &list, "--no-traverse", &remote],
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_cause() {
        let ran = Ran {
            code: Some(1),
            stdout: Vec::new(),
            stderr: "2026/11/30 06:53:03 Failed to cat: RequestError: send request failed\ncaused by: Get \"http://127.0.0.1:9/site\": dial tcp 127.0.0.1:9: connect: connection refused\n".into(),
        };
        let m = failure("cat", &ran);
        assert!(m.starts_with("rclone cat failed (exit status 1): "), "{m}");
        assert!(m.ends_with("connection refused"), "{m}");
        let quiet = Ran {
            code: None,
            stdout: Vec::new(),
            stderr: String::new(),
        };
        assert_eq!(failure("copy", &quiet), "rclone copy failed (killed)");
    }
}
