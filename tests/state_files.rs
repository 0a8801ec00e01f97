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

/// A status.json as the versions before typed results wrote it: every result word, a base,
/// dirty steps, a rollback.
const OLD_STATUS: &str = r#"{
  "state": "idle",
  "pending": false,
  "last": {"id": "20261128-010600-000", "delivery": "d6", "started": "2026-11-28T01:06:00Z", "finished": "2026-11-28T01:06:01Z", "result": "interrupted", "commit": null, "failed_step": "pnpm docs:build", "log": "/nowhere/6.log", "duration_secs": 1.0},
  "current": null,
  "history": [
    {"id": "20261128-010600-000", "delivery": "d6", "started": "2026-11-28T01:06:00Z", "finished": "2026-11-28T01:06:01Z", "result": "interrupted", "commit": null, "failed_step": "pnpm docs:build", "log": "/nowhere/6.log", "duration_secs": 1.0},
    {"id": "20261128-010500-000", "delivery": "d5", "started": "2026-11-28T01:05:00Z", "finished": "2026-11-28T01:05:01Z", "result": "superseded", "commit": "5555555555555555555555555555555555555555", "failed_step": "pnpm install", "failed_at": "step 1 (pnpm)", "log": "/nowhere/5.log", "duration_secs": 1.0},
    {"id": "20261128-010400-000", "delivery": "d4", "started": "2026-11-28T01:04:00Z", "finished": "2026-11-28T01:04:09Z", "result": "timed_out", "commit": "4444444444444444444444444444444444444444", "failed_step": "sleep 1000", "failed_at": "step 1 (sleep)", "log": "/nowhere/4.log", "duration_secs": 9.0},
    {"id": "20261128-010300-000", "delivery": "d3", "started": "2026-11-28T01:03:00Z", "finished": "2026-11-28T01:03:01Z", "result": "failed", "commit": "3333333333333333333333333333333333333333", "failed_step": "false", "failed_at": "step 1 (false)", "log": "/nowhere/3.log", "duration_secs": 0.5},
    {"id": "20261128-010200-000", "delivery": "d2", "started": "2026-11-28T01:02:00Z", "finished": "2026-11-28T01:02:01Z", "result": "unchanged", "commit": "1111111111111111111111111111111111111111", "failed_step": null, "log": "/nowhere/2.log", "duration_secs": 0.1, "release": "20261128-010100-000-1111111111"},
    {"id": "20261128-010100-000", "delivery": "d1", "started": "2026-11-28T01:01:00Z", "finished": "2026-11-28T01:01:03Z", "result": "succeeded", "commit": "1111111111111111111111111111111111111111", "failed_step": null, "log": "/nowhere/1.log", "duration_secs": 3.2, "release": "20261128-010100-000-1111111111"}
  ],
  "live_release": "20261128-010100-000-1111111111",
  "last_rollback": {"from": "20261128-005900-000-0000000000", "to": "20261128-010100-000-1111111111", "at": "2026-11-28T01:01:30Z"},
  "base": {"id": "20261128-010100-000", "commit": "1111111111111111111111111111111111111111", "config": "0123456789abcdef01234567", "release": "20261128-010100-000-1111111111"},
  "dirty_steps": [0]
}
"#;

#[test]
fn an_old_status_json_reads_and_a_new_one_is_written_the_same_way() {
    let w = World::new("state-compat");
    w.config("gitee", "mode = \"sync\"\nsteps = [\"true\"]");
    fs::create_dir_all(w.hook_dir()).unwrap();
    fs::write(w.hook_dir().join("status.json"), OLD_STATUS).unwrap();
    let old: serde_json::Value = serde_json::from_str(OLD_STATUS).unwrap();

    // `status` reads every word as it was written
    let out = w.cmd(&["status", "docs", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["history", "last", "base", "last_rollback", "state"] {
        assert_eq!(st[key], old[key], "{key}: {st}");
    }
    // ... but the dirty steps, which the checkout's own record of its steps replaced: a
    // checkout without that record runs every if_changed step once, the safe side.
    assert_eq!(st["dirty_steps"], serde_json::Value::Null, "{st}");
    let text = String::from_utf8(w.cmd(&["status", "docs"]).stdout).unwrap();
    for shown in [
        "interrupted at: pnpm docs:build",
        "superseded during: pnpm install",
        "timed out: sleep 1000",
        "failed: false",
    ] {
        assert!(text.contains(shown), "{shown}: {text}");
    }

    // a build written now: the old records are kept as they were, the new one is spelt
    // with the same keys and words
    let r = w.gitee_push().run();
    assert_eq!(r.word(), "succeeded", "{}", r.json);
    let new = w.status();
    assert_eq!(new["state"], "idle");
    assert_eq!(new["last"]["result"], "succeeded");
    let history = new["history"].as_array().unwrap();
    assert_eq!(&history[1..], &old["history"].as_array().unwrap()[..], "{new}");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    // a new build's record has the keys of the old "succeeded" one (no release: no publish)
    let mut old_keys = keys(&old["history"][5]);
    old_keys.retain(|k| k != "release");
    assert_eq!(keys(&history[0]), old_keys);
    // and the status the keys of the old one (but the dirty steps)
    let mut old_keys = keys(&old);
    old_keys.retain(|k| k != "dirty_steps");
    assert_eq!(keys(&new), old_keys);
}
