//! The files in a hook's state folder: no temp left behind when a write fails, every file
//! 0640, build logs pruned oldest first even when ids share a millisecond.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::util::*;

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && e.file_name() != "home" {
            out.extend(files(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

/// A signed Gitee push through the CGI under `sh`, with `setup` run first (umask, ulimit).
fn deliver_under(w: &World, setup: &str) -> Reply {
    let ts = (now_ms() - 1000).to_string();
    let body = br#"{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111"}"#;
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{setup}; exec {BIN}"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("REQUEST_METHOD", "POST")
        .env("PATH_INFO", "/docs")
        .env("CONTENT_TYPE", "application/json")
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .env("HTTP_X_GITEE_TOKEN", gitee_token(SECRET, &ts))
        .env("HTTP_X_GITEE_TIMESTAMP", &ts)
        .env("HTTP_X_GITEE_EVENT", "Push Hook")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut child = out;
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    parse_reply(&out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_failed_write_leaves_no_temp_file() {
    let w = World::new("state-tmp");
    w.config("gitee", "steps = [\"true\"]");
    let r = deliver_under(&w, "umask 022");
    assert_eq!(r.status, 202, "{}", r.json);
    w.wait_idle();
    let status_len = fs::metadata(w.hook_dir().join("status.json")).unwrap().len();
    assert!(status_len > 512, "status.json is only {status_len} bytes");
    // a file size limit of 512 bytes: status.json cannot be rewritten, as on a full disk
    // (SIGXFSZ ignored, so the write fails with EFBIG instead of killing the program)
    let r = deliver_under(&w, "trap '' XFSZ; ulimit -f 1");
    assert_eq!(r.status, 500, "{}", r.json);
    let left: Vec<_> = files(&w.state)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp."))
        .collect();
    assert!(left.is_empty(), "temp files left behind: {left:?}");
    // and the state is still readable
    assert_eq!(w.status()["last"]["result"], "succeeded");
}

#[test]
fn every_state_file_is_0640() {
    let w = World::new("state-modes");
    w.config("gitee", "steps = [\"echo to-the-worker-log >&2\"]");
    let r = deliver_under(&w, "umask 022");
    assert_eq!(r.status, 202, "{}", r.json);
    w.wait_idle();
    let all = files(&w.hook_dir());
    assert!(all.iter().any(|p| p.ends_with("worker.log")), "{all:?}");
    for p in all {
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{} is {mode:o}", p.display());
    }
}

#[test]
fn build_logs_of_one_millisecond_are_pruned_oldest_first() {
    let w = World::new("state-prune");
    w.config("gitee", "keep_logs = 11\nsteps = [\"true\"]");
    let builds = w.hook_dir().join("builds");
    fs::create_dir_all(&builds).unwrap();
    // eleven builds made in one millisecond, long ago, named as the binary names them
    let base = "20000101-000000-000";
    let mut seeded = vec![format!("{base}.log")];
    seeded.extend((2..=11).map(|n| format!("{base}-{n:02}.log")));
    for name in &seeded {
        fs::write(builds.join(name), "old\n").unwrap();
    }
    let r = w.gitee_push().run();
    assert_eq!(r.status, 202, "{}", r.json);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    // twelve logs, eleven kept: the first of that millisecond went
    assert!(!builds.join(&seeded[0]).exists(), "the oldest log was kept");
    for name in &seeded[1..] {
        assert!(builds.join(name).exists(), "{name} was pruned before the oldest");
    }
}
