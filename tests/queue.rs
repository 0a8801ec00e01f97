//! The build lock and the queue under attack: a sync build's ancestors, Gitee tokens of
//! refused deliveries, deliveries during `rollback`, hooks sharing a checkout or a web
//! root, a worker killed at the worst moment, processes that try to outlive their build,
//! and a state dir deleted during a build.
//!
//! Where a test must catch a process in a window (waiting for a lock), it looks at
//! `/proc/locks` for the blocked request instead of sleeping: no timed assertion.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fs2::FileExt;

use crate::util::*;

/// Whether some process is blocked waiting for a flock on `path` (a "->" line in
/// /proc/locks names a blocked request, by device:inode).
fn someone_waits_for(path: &Path) -> bool {
    let Ok(ino) = fs::metadata(path).map(|m| m.ino().to_string()) else {
        return false;
    };
    fs::read_to_string("/proc/locks").unwrap_or_default().lines().any(|l| {
        l.contains("->")
            && l.split_whitespace()
                .any(|f| f.matches(':').count() == 2 && f.rsplit(':').next() == Some(ino.as_str()))
    })
}

/// The pid holding (not waiting for) a lock on `path`, from /proc/locks.
fn lock_holder(path: &Path) -> Option<u32> {
    let ino = fs::metadata(path).ok()?.ino().to_string();
    fs::read_to_string("/proc/locks").ok()?.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let on_it = f
            .iter()
            .any(|f| f.matches(':').count() == 2 && f.rsplit(':').next() == Some(ino.as_str()));
        (on_it && !l.contains("->")).then(|| f.get(4)?.parse().ok()).flatten()
    })
}

/// The real binary with a subcommand, in the background.
fn spawn(w: &World, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `deploy-hook __worker docs`, as a delivery starts it.
fn spawn_worker(w: &World) -> Child {
    let mut c = Command::new(BIN);
    c.args(["__worker", "--config"])
        .arg(&w.config)
        .arg("docs")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.spawn().unwrap()
}

/// A step that records `start NAME` / `end NAME` in `record` around waiting for `gate`.
fn named_gated_step(record: &Path, gate: &Path) -> String {
    format!(
        "echo \"start $DEPLOY_HOOK_NAME\" >> {r}; while [ ! -e {g} ]; do sleep 0.02; done; echo \"end $DEPLOY_HOOK_NAME\" >> {r}",
        r = record.display(),
        g = gate.display()
    )
}

/// The builds in `record`, in order, as hook names; panics when two overlapped.
fn turns(record: &Path) -> Vec<String> {
    let text = fs::read_to_string(record).unwrap_or_default();
    let mut out = Vec::new();
    let mut open: Option<&str> = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("start", h)) => {
                assert!(open.is_none(), "two builds ran at the same time:\n{text}");
                open = Some(h);
            }
            Some(("end", h)) => {
                assert_eq!(open.take(), Some(h), "{text}");
                out.push(h.to_string());
            }
            _ => panic!("bad record line {line:?}"),
        }
    }
    assert!(open.is_none(), "a build never ended:\n{text}");
    out
}

fn starts(record: &Path) -> usize {
    fs::read_to_string(record).unwrap_or_default().matches("start").count()
}

fn status_of(w: &World, hook: &str) -> serde_json::Value {
    fs::read(w.state.join(hook).join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn idle(w: &World, hook: &str) -> bool {
    let d = w.state.join(hook);
    status_of(w, hook)["state"] != "building" && !d.join("pending").exists() && !d.join("taking").exists()
}

/// A config with hooks `docs` and `mirror`, both Gitee; `mirror` gets `mirror_extra`.
fn two_hooks(w: &World, common: &str, mirror_repo: &Path, docs_extra: &str, mirror_extra: &str) {
    let hook = |name: &str, repo: &Path, extra: &str| {
        format!(
            "[hooks.{name}]\nprovider = \"gitee\"\nsecret_file = {:?}\nrepo = {:?}\n{common}\n{extra}\n",
            w.secret_file.to_str().unwrap(),
            repo.to_str().unwrap()
        )
    };
    let text = format!(
        "state_dir = {:?}\n[log]\nsyslog = \"\"\n\n{}\n{}",
        w.state.to_str().unwrap(),
        hook("docs", &w.repo, docs_extra),
        hook("mirror", mirror_repo, mirror_extra)
    );
    fs::write(&w.config, text).unwrap();
}

/// A signed Gitee push with a fixed timestamp: sending it twice is a replay.
fn gitee_delivery(w: &World, ts: &str) -> Cgi {
    w.cgi()
        .header("X-Gitee-Token", gitee_token(SECRET, ts))
        .header("X-Gitee-Timestamp", ts)
        .header("X-Gitee-Event", "Push Hook")
        .body(br#"{"ref":"refs/heads/main"}"#)
}

/// Kills a process at the end of a test, whatever happened (PID 1 here reaps nothing).
struct KillOnDrop(Vec<PathBuf>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for f in &self.0 {
            if let Some(pid) = fs::read_to_string(f).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

#[test]
fn a_sync_build_has_no_request_header_in_any_ancestor() {
    for (provider, extra) in [("gitlab", ""), ("gitee", "gitee_mode = \"password\"")] {
        let w = World::new("sync-ancestors");
        let secret = format!("tok-{provider}-{}", now_ms());
        fs::write(&w.secret_file, format!("{secret}\n")).unwrap();
        let needle = w.path("needle");
        fs::write(&needle, &secret).unwrap();
        let walk = w.path("walk");
        // From the step's parent up to PID 1: each ancestor's pid, and LEAK when the
        // token is in its environment.
        let step = format!(
            "p=$PPID; while [ -n \"$p\" ] && [ \"$p\" -gt 1 ]; do echo \"$p\" >> {walk}; \
             if tr '\\0' '\\n' < /proc/$p/environ | grep -q -F -f {needle}; then echo \"LEAK $p\" >> {walk}; fi; \
             p=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f2); done",
            walk = walk.display(),
            needle = needle.display()
        );
        w.config(
            provider,
            &format!("{extra}\nmode = \"sync\"\nsteps = [{}]", toml_str(&step)),
        );
        let cgi = match provider {
            "gitlab" => w
                .cgi()
                .header("X-Gitlab-Event", "Push Hook")
                .header("X-Gitlab-Token", &secret),
            _ => w
                .cgi()
                .header("X-Gitee-Token", &secret)
                .header("X-Gitee-Event", "Push Hook"),
        };
        let r = cgi.body(br#"{"ref":"refs/heads/main"}"#).run();
        assert_eq!((r.status, r.word()), (200, "succeeded"), "{provider}: {}", r.json);
        let text = fs::read_to_string(&walk).unwrap();
        assert!(
            text.lines().any(|l| l == std::process::id().to_string()),
            "{provider}: the walk passed the CGI up to this test: {text}"
        );
        assert!(
            !text.contains("LEAK"),
            "{provider}: a step's ancestor holds the token:\n{text}"
        );
    }
}

#[test]
fn a_gitee_delivery_refused_as_busy_is_built_when_retried() {
    let w = World::new("busy-token");
    let (record, gate) = (w.path("record"), w.path("gate"));
    w.config(
        "gitee",
        &format!(
            "on_busy = \"reject\"\nsteps = [{}]",
            toml_str(&gated_step(&record, &gate))
        ),
    );
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the build to start", Duration::from_secs(30), || record.exists());
    let head = w.push("index.md", "retried\n");
    let ts = (now_ms() - 1000).to_string();
    let r = gitee_delivery(&w, &ts).run();
    assert_eq!((r.status, r.word()), (429, "busy"), "{}", r.json);
    fs::write(&gate, "").unwrap();
    w.wait_idle();
    // Gitee retries the same delivery, token and all: it is built, once.
    let r = gitee_delivery(&w, &ts).run();
    assert_eq!((r.status, r.word()), (202, "queued"), "the retry: {}", r.json);
    let s = w.wait_idle();
    assert_eq!(s["last"]["commit"], head.as_str());
    let r = gitee_delivery(&w, &ts).run();
    assert_eq!((r.status, r.word()), (200, "duplicate"), "{}", r.json);
    assert_eq!(w.history().len(), 2);
}

#[test]
fn a_gitee_delivery_answered_500_after_the_replay_check_is_built_when_retried() {
    let w = World::new("500-token");
    w.config("gitee", "steps = [\"true\"]");
    fs::create_dir_all(w.hook_dir().join("pending")).unwrap();
    let ts = (now_ms() - 1000).to_string();
    // `pending` cannot be written: the delivery cannot be queued
    let r = gitee_delivery(&w, &ts).run();
    assert_eq!((r.status, r.word()), (500, "error"), "{}", r.json);
    fs::remove_dir(w.hook_dir().join("pending")).unwrap();
    let r = gitee_delivery(&w, &ts).run();
    assert_eq!((r.status, r.word()), (202, "queued"), "the retry: {}", r.json);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded");
}

#[test]
fn identical_gitee_deliveries_at_once_build_once() {
    let w = World::new("twins");
    w.config("gitee", "steps = [\"true\"]");
    for round in 0..6 {
        let ts = (now_ms() - 1000 - round).to_string();
        let words: Vec<String> = std::thread::scope(|s| {
            let h: Vec<_> = (0..2)
                .map(|_| s.spawn(|| gitee_delivery(&w, &ts).run().word().to_string()))
                .collect();
            h.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = words.clone();
        sorted.sort();
        assert_eq!(sorted, ["duplicate", "queued"], "round {round}: {words:?}");
        w.wait_idle();
    }
}

#[test]
fn a_damaged_seen_tokens_file_does_not_refuse_deliveries() {
    let w = World::new("bad-tokens");
    w.config("gitee", "steps = [\"true\"]");
    fs::create_dir_all(w.hook_dir()).unwrap();
    fs::write(
        w.hook_dir().join("seen-tokens"),
        b"\xff\xfe\x00\x01 not utf-8\n\xc3\x28\n",
    )
    .unwrap();
    let ts = (now_ms() - 1000).to_string();
    let r = gitee_delivery(&w, &ts).run();
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    assert!(
        r.stderr.contains("damaged records dropped"),
        "a warning is logged: {}",
        r.stderr
    );
    w.wait_idle();
    // the replay check works again from the rewritten file
    let r = gitee_delivery(&w, &ts).run();
    assert_eq!((r.status, r.word()), (200, "duplicate"), "{}", r.json);
}

#[test]
fn a_delivery_during_rollback_is_built() {
    let w = World::new("rollback-pending");
    let www = w.path("www");
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nsteps = [\"mkdir -p dist && cp index.md dist/index.html\"]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}",
            www.to_str().unwrap()
        ),
    );
    for n in 0..2 {
        w.push("index.md", &format!("release {n}\n"));
        assert_eq!(w.gitee_push().run().status, 202);
        w.wait_idle();
    }
    // Hold rollback inside its lock: it waits for the state lock that we hold, then is
    // stopped there while a delivery comes.
    let state_lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(w.hook_dir().join("state.lock"))
        .unwrap();
    state_lock.lock_exclusive().unwrap();
    let rollback = spawn(&w, &["rollback", "docs"]);
    let state_lock_path = w.hook_dir().join("state.lock");
    wait_for("rollback to hold the build lock", Duration::from_secs(30), || {
        !w.lock_free() && someone_waits_for(&state_lock_path)
    });
    unsafe {
        libc::kill(rollback.id() as i32, libc::SIGSTOP);
    }
    wait_for("rollback to stop", Duration::from_secs(10), || {
        fs::read_to_string(format!("/proc/{}/stat", rollback.id()))
            .map(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('T'))
            .unwrap_or(false)
    });
    FileExt::unlock(&state_lock).unwrap();
    let head = w.push("index.md", "pushed during the rollback\n");
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    unsafe {
        libc::kill(rollback.id() as i32, libc::SIGCONT);
    }
    let out = rollback.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(
        "the delivery during the rollback to be built",
        Duration::from_secs(60),
        || w.status()["last"]["commit"] == head.as_str(),
    );
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
}

/// Hook `mirror` shares something with `docs` (set up by `share`): a build of one never
/// runs while the other's does, and a delivery for `mirror` during a build of `docs` is
/// built after it. `contended` is the folder `mirror` must wait for.
fn hooks_take_turns(w: &World, contended: &Path) {
    let (record, gate) = (w.path("record"), w.path("gate"));
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("docs to start", Duration::from_secs(30), || starts(&record) == 1);
    let r = w.gitee_push().env("PATH_INFO", "/mirror").run();
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    let waiter = spawn(w, &["run", "mirror", "--wait"]);
    // Either mirror starts at once (the bug), or `run --wait` is blocked on the folder.
    wait_for("mirror to start or to wait", Duration::from_secs(30), || {
        starts(&record) > 1 || someone_waits_for(contended)
    });
    assert_eq!(starts(&record), 1, "mirror started during the build of docs");
    fs::write(&gate, "").unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    wait_for("both hooks to be idle", Duration::from_secs(60), || {
        idle(w, "docs") && idle(w, "mirror")
    });
    let t = turns(&record);
    assert_eq!(t[0], "docs", "{t:?}");
    assert_eq!(t.last().map(String::as_str), Some("mirror"), "{t:?}");
    assert_eq!(status_of(w, "mirror")["last"]["result"], "succeeded");
}

#[test]
fn two_hooks_on_one_working_tree_take_turns() {
    let w = World::new("shared-repo");
    let (record, gate) = (w.path("record"), w.path("gate"));
    let common = format!("steps = [{}]", toml_str(&named_gated_step(&record, &gate)));
    two_hooks(&w, &common, &w.repo, "", "");
    hooks_take_turns(&w, &w.repo);
    let check = String::from_utf8_lossy(&w.cmd(&["check"]).stdout).into_owned();
    assert!(
        check.contains("hooks docs, mirror share the working tree"),
        "check names the sharing: {check}"
    );
}

#[test]
fn two_hooks_on_one_publish_target_take_turns() {
    let w = World::new("shared-www");
    let (record, gate) = (w.path("record"), w.path("gate"));
    git(&w.dir, &["clone", "-q", w.remote.to_str().unwrap(), "repo2"]);
    let www = w.path("www");
    let common = format!(
        "steps = [{}, \"mkdir -p dist && cp index.md dist/index.html\"]\n[hooks.@HOOK@.publish]\nfrom = \"dist\"\nto = {:?}",
        toml_str(&named_gated_step(&record, &gate)),
        www.to_str().unwrap()
    );
    let hook = |name: &str| common.replace("@HOOK@", name);
    // each hook's publish table must follow its own keys, so it goes in `extra`
    two_hooks(&w, "", &w.path("repo2"), &hook("docs"), &hook("mirror"));
    hooks_take_turns(&w, &w.path("www.releases"));
    let check = String::from_utf8_lossy(&w.cmd(&["check"]).stdout).into_owned();
    assert!(
        check.contains("hooks docs, mirror share the publish target"),
        "check names the sharing: {check}"
    );
}

#[test]
fn a_delivery_for_a_hook_sharing_the_working_tree_is_built_after() {
    let w = World::new("shared-handover");
    let (record, gate) = (w.path("record"), w.path("gate"));
    let common = format!("steps = [{}]", toml_str(&named_gated_step(&record, &gate)));
    two_hooks(&w, &common, &w.repo, "", "");
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("docs to start", Duration::from_secs(30), || starts(&record) == 1);
    let head = w.push("index.md", "for the mirror\n");
    let r = w.gitee_push().env("PATH_INFO", "/mirror").run();
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    fs::write(&gate, "").unwrap();
    wait_for("the mirror's delivery to be built", Duration::from_secs(60), || {
        status_of(&w, "mirror")["last"]["commit"] == head.as_str()
    });
    wait_for("both hooks to be idle", Duration::from_secs(60), || {
        idle(&w, "docs") && idle(&w, "mirror")
    });
    assert_eq!(turns(&record), ["docs", "mirror"]);
}

#[test]
fn deleting_the_state_dir_during_a_build_starts_no_second_build() {
    let w = World::new("state-deleted-building");
    let (record, gate) = (w.path("record"), w.path("gate"));
    w.config(
        "gitee",
        &format!("steps = [{}]", toml_str(&named_gated_step(&record, &gate))),
    );
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the build to start", Duration::from_secs(30), || starts(&record) == 1);
    fs::remove_dir_all(&w.state).unwrap();
    let head = w.push("index.md", "after the state dir went\n");
    assert_eq!(w.gitee_push().run().status, 202);
    let waiter = spawn(&w, &["run", "docs", "--wait"]);
    wait_for("a second build to start or to wait", Duration::from_secs(30), || {
        starts(&record) > 1 || someone_waits_for(&w.repo)
    });
    assert_eq!(starts(&record), 1, "a second build started during the first");
    fs::write(&gate, "").unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let s = w.wait_idle();
    assert_eq!(s["last"]["commit"], head.as_str());
    turns(&record);
}

#[test]
fn a_worker_killed_after_taking_the_delivery_loses_nothing() {
    let w = World::new("taken");
    w.config("gitee", "steps = [\"true\"]");
    assert_eq!(w.gitee_push().run().status, 202);
    w.wait_idle();
    let state_lock_path = w.hook_dir().join("state.lock");
    let state_lock = fs::OpenOptions::new().write(true).open(&state_lock_path).unwrap();
    // Catch a worker between taking `pending` and recording "building": hold the state
    // lock so that it waits in the take, let it take, and hold the lock again before it
    // records the build. What we see under the lock tells whether we caught it there.
    let mut caught = None;
    for attempt in 0..60 {
        let id = format!("lost-{attempt}");
        let p = format!(
            "{{\"delivery\":\"{id}\",\"event\":\"Push Hook\",\"git_ref\":\"refs/heads/main\",\"received\":\"\"}}"
        );
        fs::write(w.hook_dir().join("pending"), p).unwrap();
        state_lock.lock_exclusive().unwrap();
        let mut worker = spawn_worker(&w);
        wait_for("the worker to wait for the state lock", Duration::from_secs(30), || {
            someone_waits_for(&state_lock_path)
        });
        FileExt::unlock(&state_lock).unwrap();
        // Queue behind the worker only once it holds the lock for its take: then the lock
        // passes to us when the take is done, before the worker wants it back to record
        // the build (re-locking at once would mostly win the lock before the worker).
        let pid = worker.id();
        let since = std::time::Instant::now();
        while lock_holder(&state_lock_path) != Some(pid)
            && w.hook_dir().join("pending").exists()
            && since.elapsed() < Duration::from_secs(30)
        {
            std::thread::yield_now();
        }
        state_lock.lock_exclusive().unwrap();
        let taken = !w.hook_dir().join("pending").exists() && w.status()["state"] != "building";
        if taken {
            worker.kill().unwrap();
            worker.wait().unwrap();
            FileExt::unlock(&state_lock).unwrap();
            caught = Some(id);
            break;
        }
        FileExt::unlock(&state_lock).unwrap();
        worker.wait().unwrap();
        w.wait_idle();
    }
    let id = caught.expect("the window was never caught");
    let out = w.cmd(&["status", "docs", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["pending"], true, "the taken delivery still waits: {st}");
    // whoever takes the lock next builds it
    let mut next = spawn_worker(&w);
    assert!(next.wait().unwrap().success());
    let s = w.wait_idle();
    assert_eq!(s["last"]["delivery"], id.as_str(), "{s}");
    // Its build found the commit already built and live: nothing lost, nothing to do.
    assert_eq!(s["last"]["result"], "unchanged", "{s}");
}

#[test]
fn a_setsid_child_of_a_step_ends_with_its_step() {
    let w = World::new("setsid");
    let (p1, p2) = (w.path("daemon1.pid"), w.path("daemon2.pid"));
    let _cleanup = KillOnDrop(vec![p1.clone(), p2.clone()]);
    let daemon = |pidfile: &Path| {
        format!(
            "setsid sh -c 'echo $$ > {p}; exec sleep 1000' & while [ ! -s {p} ]; do sleep 0.01; done",
            p = pidfile.display()
        )
    };
    // step 1 leaves a daemon and succeeds; step 2 leaves one and times out
    w.config(
        "gitee",
        &format!(
            "step_timeout_secs = 2\nsteps = [{}, {}]",
            toml_str(&daemon(&p1)),
            toml_str(&format!("{}; sleep 1000", daemon(&p2)))
        ),
    );
    assert_eq!(w.gitee_push().run().status, 202);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "timed_out", "{s}");
    for p in [&p1, &p2] {
        let pid: i32 = fs::read_to_string(p).unwrap().trim().parse().unwrap();
        assert!(!pid_alive(pid), "{} outlived its step", p.display());
    }
}

#[test]
fn an_env_i_child_of_a_killed_worker_is_ended_by_the_recovery() {
    let w = World::new("env-i");
    let (pidfile, gate) = (w.path("orphan.pid"), w.path("gate"));
    let _cleanup = KillOnDrop(vec![pidfile.clone()]);
    let step = format!(
        "env -i sh -c 'echo $$ > {p}; exec sleep 1000' & while [ ! -s {p} ]; do sleep 0.01; done; while [ ! -e {g} ]; do sleep 0.02; done",
        p = pidfile.display(),
        g = gate.display()
    );
    w.config("gitee", &format!("steps = [{}]", toml_str(&step)));
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the step to start its child", Duration::from_secs(30), || {
        fs::read_to_string(&pidfile).is_ok_and(|p| p.ends_with('\n'))
    });
    let orphan: i32 = fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let worker = w.status()["current"]["pid"].as_i64().unwrap() as i32;
    unsafe {
        libc::kill(worker, libc::SIGKILL);
    }
    wait_for("the lock to be free", Duration::from_secs(10), || w.lock_free());
    assert!(pid_alive(orphan), "the child is left over after the kill");
    fs::write(&gate, "").unwrap();
    // the next delivery finds the dead build and cleans up after it
    assert_eq!(w.gitee_push().run().status, 202);
    let s = w.wait_idle();
    assert_eq!(w.history()[1]["result"], "interrupted", "{s}");
    assert!(!pid_alive(orphan), "the env -i child survived the recovery");
}

#[test]
fn looking_at_the_status_takes_no_lock() {
    // A process that takes the build lock even for a moment makes a delivery that tries it
    // then answer "a build is running", and nothing builds it. `status` only looks, also
    // when it must tell a running build from one whose worker died.
    let w = World::new("status-probe");
    let (record, gate) = (w.path("record"), w.path("gate"));
    w.config("gitee", &format!("steps = [{}]", toml_str(&gated_step(&record, &gate))));
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the build to start", Duration::from_secs(30), || record.exists());
    let worker = w.status()["current"]["pid"].as_i64().unwrap() as i32;
    unsafe {
        libc::kill(worker, libc::SIGKILL);
    }
    wait_for("the lock to be free", Duration::from_secs(10), || w.lock_free());
    fs::write(&gate, "").unwrap();
    // Seeing the dead builder, status starts a worker to recover it, as a delivery would;
    // that worker takes the lock. Holding the working tree's part of the lock (as a build
    // of a hook sharing it would) stops the worker before it opens build.lock (the parts
    // are taken in the order of their paths, and the checkout's comes first), so that an
    // open seen below can only be status's own.
    assert!(w.repo < w.hook_dir().join("build.lock"));
    let tree = fs::File::open(&w.repo).unwrap();
    tree.lock_exclusive().unwrap();
    let lock = std::ffi::CString::new(w.hook_dir().join("build.lock").to_str().unwrap()).unwrap();
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK) };
    assert!(fd >= 0);
    assert!(unsafe { libc::inotify_add_watch(fd, lock.as_ptr(), libc::IN_OPEN) } >= 0);
    let mut texts = String::new();
    for args in [
        &["status", "docs"][..],
        &["status", "docs", "--json"],
        &["status"],
        &["status", "docs", "--follow"],
    ] {
        texts.push_str(&String::from_utf8_lossy(&w.cmd(args).stdout));
    }
    let mut buf = [0u8; 4096];
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    unsafe { libc::close(fd) };
    assert!(texts.contains("interrupted"), "status tells the dead build: {texts}");
    assert!(n <= 0, "status opened the build lock");
    // The recovery status asked for did not happen (the tree was held); once it is free,
    // the next look starts it, and the build is recorded.
    drop(tree);
    assert!(w.cmd(&["status", "docs"]).status.success());
    wait_for("the recovery", Duration::from_secs(60), || w.history().len() == 2);
}
