//! The live site never breaks: atomic publish under a poller, rollback, status a person can
//! read (and follow), notifications, and supersede.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::util::*;

/// A step whose behaviour the pushed commit decides (`mode.txt`): it always writes a page
/// into dist first, then succeeds (`ok`), fails, sleeps past the timeout, or hangs on a
/// gate that never opens.
fn moody_step(record: &Path) -> String {
    format!(
        "mkdir -p dist && m=$(cat mode.txt) && echo \"$m $DEPLOY_HOOK_COMMIT\" > dist/index.html && echo \"start $m $DEPLOY_HOOK_COMMIT\" >> {r} && case $m in fail) exit 1;; timeout) sleep 30;; hang) while [ ! -e never-opened ]; do sleep 0.02; done;; esac",
        r = record.display()
    )
}

fn publishing_world(name: &str, extra: &str) -> (World, PathBuf, PathBuf) {
    let w = World::new(name);
    let (www, record) = (w.path("www"), w.path("record"));
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nstep_timeout_secs = 3\n{extra}\nsteps = [{}]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}\nkeep = 3",
            toml_str(&moody_step(&record)),
            www.to_str().unwrap()
        ),
    );
    (w, www, record)
}

fn started(record: &Path, commit: &str) -> bool {
    fs::read_to_string(record).unwrap_or_default().contains(commit)
}

#[test]
fn the_live_page_is_never_missing_and_never_from_a_build_that_did_not_succeed() {
    let (w, www, record) = publishing_world("poller", "on_busy = \"supersede\"");
    let page = www.join("index.html");
    let ok1 = w.push("mode.txt", "ok\n");
    w.gitee_push().run();
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");

    // Poll the page every few milliseconds for the rest of the test.
    let stop = AtomicBool::new(false);
    let seen: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let missing = Mutex::new(0usize);
    /// Stops the poller however the test ends, so a failed assertion cannot hang it.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    std::thread::scope(|s| {
        let _stop = Stop(&stop);
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                match fs::read_to_string(&page) {
                    Ok(text) => {
                        let mut seen = seen.lock().unwrap();
                        if seen.last() != Some(&text) {
                            seen.push(text);
                        }
                    }
                    Err(_) => *missing.lock().unwrap() += 1,
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });

        // fails
        w.push("mode.txt", "fail\n");
        w.gitee_push().run();
        assert_eq!(w.wait_idle()["last"]["result"], "failed");
        // times out
        w.push("mode.txt", "timeout\n");
        w.gitee_push().run();
        assert_eq!(w.wait_idle()["last"]["result"], "timed_out");
        // its worker is killed with SIGKILL
        let killed = w.push("mode.txt", "hang\n");
        w.gitee_push().run();
        wait_for("the hanging build", Duration::from_secs(30), || {
            started(&record, &killed)
        });
        let pid = w.status()["current"]["pid"].as_i64().unwrap() as i32;
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        wait_for("the lock", Duration::from_secs(10), || w.lock_free());
        // superseded: a hanging build, then a good push stops it
        w.push("mode.txt", "ok\n");
        let hang = w.push("mode.txt", "hang\n");
        w.gitee_push().run();
        wait_for("the build to supersede", Duration::from_secs(30), || {
            started(&record, &hang)
        });
        let ok2 = w.push("mode.txt", "ok\n");
        assert_eq!(w.gitee_push().run().status, 202);
        let s = w.wait_idle();
        assert_eq!(s["last"]["result"], "succeeded", "{s}");
        assert_eq!(s["last"]["commit"], ok2.as_str());
        // The poller stops once it has seen the last page, not after a guessed while.
        let last_page = format!("ok {ok2}\n");
        wait_for("the poller to see the last page", Duration::from_secs(30), || {
            seen.lock().unwrap().last() == Some(&last_page)
        });
        stop.store(true, Ordering::SeqCst);

        let results: Vec<String> = w
            .history()
            .iter()
            .map(|b| b["result"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            results,
            [
                "succeeded",
                "superseded",
                "interrupted",
                "timed_out",
                "failed",
                "succeeded"
            ],
            "newest first"
        );
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            vec![format!("ok {ok1}\n"), format!("ok {ok2}\n")],
            "the poller saw a page of a build that did not succeed"
        );
        assert_eq!(*missing.lock().unwrap(), 0, "the poller found the page missing");
    });
}

#[test]
fn rollback_serves_the_previous_release_and_keep_spares_live_and_previous() {
    let (w, www, _) = publishing_world("rollback", "mode = \"sync\"");
    let page = || fs::read_to_string(www.join("index.html")).unwrap();
    w.push("mode.txt", "ok\n");
    let mut commits = Vec::new();
    for i in 0..4 {
        commits.push(w.push("n.txt", &i.to_string()));
        assert_eq!(w.gitee_push().run().word(), "succeeded");
    }
    let releases = || {
        let mut r: Vec<String> = fs::read_dir(w.path("www.releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        r.sort();
        r
    };
    let kept = releases();
    assert_eq!(kept.len(), 3, "keep = 3: {kept:?}");
    assert_eq!(page(), format!("ok {}\n", commits[3]));

    let out = w.cmd(&["rollback", "docs"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        page(),
        format!("ok {}\n", commits[2]),
        "rollback serves the release before"
    );
    let s = w.status();
    assert_eq!(s["last_rollback"]["to"], s["live_release"]);
    assert_eq!(s["last_rollback"]["from"], kept[2].as_str());
    assert_eq!(s["live_release"], kept[1].as_str());

    // back again reaches the oldest kept release, then there is nothing older
    assert!(w.cmd(&["rollback", "docs"]).status.success());
    assert_eq!(page(), format!("ok {}\n", commits[1]));
    let out = w.cmd(&["rollback", "docs"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to roll back to"));
    // an unknown release is refused and changes nothing
    let out = w.cmd(&["rollback", "docs", "--to", "no-such-release"]);
    assert!(!out.status.success());
    assert_eq!(page(), format!("ok {}\n", commits[1]));

    // A publish now prunes one release, but not the one that was live (the oldest here)
    // nor the one before the new live one.
    let newest = w.push("n.txt", "new");
    assert_eq!(w.gitee_push().run().word(), "succeeded");
    // The rollbacks hold the site: the build made its release; resume switches to it.
    assert_eq!(page(), format!("ok {}\n", commits[1]));
    assert!(w.cmd(&["resume", "docs"]).status.success());
    assert_eq!(page(), format!("ok {newest}\n"));
    let after = releases();
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(
        after[0], kept[0],
        "the release live before the publish was pruned: {after:?}"
    );
    assert_eq!(
        after[1], kept[2],
        "the release before the live one was pruned: {after:?}"
    );
    assert!(!after.contains(&kept[1]));
    assert!(w.cmd(&["rollback", "docs", "--to", &kept[0]]).status.success());
    assert_eq!(page(), format!("ok {}\n", commits[1]));
}

#[test]
fn status_shows_building_step_pending_and_follow_ends_with_the_build() {
    let w = World::new("status-follow");
    let (record, gate) = (w.path("record"), w.path("gate"));
    w.config(
        "gitee",
        &format!(
            "steps = [\"echo step-one-output\", {}]",
            toml_str(&gated_step(&record, &gate))
        ),
    );
    let head = w.push("index.md", "follow me\n");
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the build to start", Duration::from_secs(30), || record.exists());

    let t = String::from_utf8(w.cmd(&["status", "docs"]).stdout).unwrap();
    assert!(t.contains("state:   building"), "{t}");
    assert!(t.contains("step:    echo \"start"), "the running step is shown: {t}");
    assert!(t.contains(&head[..10]), "{t}");
    assert!(t.contains("pending: no"), "{t}");
    assert_eq!(w.gitee_push().run().status, 202);
    let t = String::from_utf8(w.cmd(&["status", "docs"]).stdout).unwrap();
    assert!(t.contains("pending: yes"), "{t}");
    let j: serde_json::Value = serde_json::from_slice(&w.cmd(&["status", "docs", "--json"]).stdout).unwrap();
    assert_eq!(j["state"], "building");
    assert_eq!(j["pending"], true);
    assert!(j["current"]["step"].as_str().unwrap().contains("gate"));

    let mut follower = std::process::Command::new(BIN)
        .args(["status", "docs", "--follow"])
        .env_clear()
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The gate opens once the follower has printed the log so far: it follows the build.
    let mut out = Watched::new(follower.stdout.take().unwrap());
    out.wait_for(
        "status --follow to print the first step's output",
        "step-one-output",
        Duration::from_secs(30),
    );
    fs::write(&gate, "").unwrap();
    let t = out.rest();
    let status = follower.wait().unwrap();
    assert!(status.success(), "{t}");
    assert!(
        t.contains("step-one-output") && t.contains("result: succeeded"),
        "the log was streamed: {t}"
    );
    assert!(t.contains("succeeded\n"), "{t}");
    w.wait_idle();
    let t = String::from_utf8(w.cmd(&["status", "docs", "--follow"]).stdout).unwrap();
    assert!(t.contains("no build is running"), "{t}");
}

#[test]
fn notifiers_get_the_build_variables_and_their_failure_changes_nothing() {
    let w = World::new("notify");
    let (ok_env, fail_env) = (w.path("ok.env"), w.path("fail.env"));
    let hook = |steps: &str, on_success: &str| {
        format!(
            "mode = \"sync\"\nsteps = [{steps}]\non_success = {on_success}\non_failure = [\"sh\", \"-c\", \"env > {}\"]",
            fail_env.display()
        )
    };
    w.config(
        "gitee",
        &hook("\"true\"", &format!("[\"sh\", \"-c\", \"env > {}\"]", ok_env.display())),
    );
    let head = w.push("index.md", "notify\n");
    assert_eq!(w.gitee_push().run().word(), "succeeded");
    let env = fs::read_to_string(&ok_env).unwrap();
    let s = w.status();
    for line in [
        "DEPLOY_HOOK_RESULT=succeeded".to_string(),
        "DEPLOY_HOOK_NAME=docs".into(),
        format!("DEPLOY_HOOK_COMMIT={head}"),
        format!("DEPLOY_HOOK_LOG={}", s["last"]["log"].as_str().unwrap()),
        format!("DEPLOY_HOOK_BUILD={}", s["last"]["id"].as_str().unwrap()),
        "DEPLOY_HOOK_FAILED_STEP=".into(),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing from:\n{env}");
    }
    assert!(!env.contains(SECRET) && !env.contains("HTTP_"));
    assert!(!fail_env.exists());

    w.config("gitee", &hook("\"exit 4\"", "[\"true\"]"));
    assert_eq!(w.gitee_push().run().word(), "failed");
    let env = fs::read_to_string(&fail_env).unwrap();
    assert!(
        env.contains("DEPLOY_HOOK_RESULT=failed\n") && env.contains("DEPLOY_HOOK_FAILED_STEP=exit 4\n"),
        "{env}"
    );

    // a notifier that fails is logged; the build is still a success
    w.config("gitee", &hook("\"true\"", "[\"sh\", \"-c\", \"exit 7\"]"));
    w.push("index.md", "a new commit: the same one again would be unchanged\n");
    let r = w.gitee_push().run();
    assert_eq!(r.word(), "succeeded");
    assert!(
        r.stderr.contains("notify failed hook=docs") && r.stderr.contains("exit status 7"),
        "{}",
        r.stderr
    );
    assert_eq!(w.status()["last"]["result"], "succeeded");
}

#[test]
fn supersede_stops_the_running_build_and_builds_the_newest_at_once() {
    let w = World::new("supersede");
    let (record, gate) = (w.path("record"), w.path("gate"));
    let www = w.path("www");
    // A's step hangs on a gate nobody opens before the end (timeout 120 s): only a
    // supersede ends it early. B's commit carries no gate wait.
    let step = format!(
        "if [ -e slow ]; then {}; fi; mkdir -p dist && echo $DEPLOY_HOOK_COMMIT > dist/index.html",
        gated_step(&record, &gate)
    );
    w.config(
        "gitee",
        &format!("on_busy = \"supersede\"\nstep_timeout_secs = 120\nsteps = [{}]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}", toml_str(&step), www.to_str().unwrap()),
    );
    let a = w.push("slow", "1");
    let started = std::time::Instant::now();
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("A to start", Duration::from_secs(30), || record.exists());
    git(&w.seed, &["rm", "-q", "slow"]);
    git(&w.seed, &["commit", "-q", "-m", "fast"]);
    git(&w.seed, &["push", "-q", "origin", "HEAD:main"]);
    let b = w.head();
    let r = w.gitee_push().run();
    assert_eq!(r.status, 202);
    assert!(r.json["message"].as_str().unwrap().contains("stopped"), "{}", r.json);
    let s = w.wait_idle();
    let elapsed = started.elapsed();
    let h = w.history();
    assert_eq!(h.len(), 2, "{s}");
    assert_eq!(
        (h[1]["result"].as_str(), h[1]["commit"].as_str()),
        (Some("superseded"), Some(a.as_str()))
    );
    assert_eq!(
        (h[0]["result"].as_str(), h[0]["commit"].as_str()),
        (Some("succeeded"), Some(b.as_str()))
    );
    assert!(
        !fs::read_to_string(&record).unwrap().contains("end"),
        "A's step ran to its end"
    );
    assert_eq!(fs::read_to_string(www.join("index.html")).unwrap(), format!("{b}\n"));
    let releases = fs::read_dir(w.path("www.releases")).unwrap().count();
    assert_eq!(releases, 1, "the superseded build published");
    eprintln!(
        "supersede: from A's delivery to B live in {:.2}s",
        elapsed.as_secs_f64()
    );
}
