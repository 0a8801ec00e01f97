//! Overlapping deliveries never stack builds and are never lost; a worker killed with
//! SIGKILL leaves a free lock, an "interrupted" record, and a hook that builds again.

use std::fs;
use std::time::Duration;

use crate::util::*;

/// (start commit, end commit) pairs in order, from a gated step's record.
fn builds(record: &std::path::Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(record).unwrap_or_default();
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines() {
        let mut f = line.split(' ');
        match (f.next(), f.next()) {
            (Some("start"), Some(c)) => {
                assert!(open.is_none(), "two builds overlapped:\n{text}");
                open = Some(c.to_string());
            }
            (Some("end"), Some(c)) => {
                let s = open.take().unwrap_or_else(|| panic!("end without start:\n{text}"));
                assert_eq!(s, c, "{text}");
                out.push((s, c.to_string()));
            }
            _ => panic!("bad record line {line:?}"),
        }
    }
    assert!(open.is_none(), "a build never ended:\n{text}");
    out
}

#[test]
fn ten_deliveries_during_a_build_collapse_into_one_follow_up() {
    let w = World::new("burst");
    let (record, gate) = (w.path("record"), w.path("gate"));
    w.config("gitee", &format!("steps = [{}]", toml_str(&gated_step(&record, &gate))));
    let first = w.push("index.md", "first build\n");
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the first build to start", Duration::from_secs(30), || record.exists());
    let newest = w.push("index.md", "newest\n");

    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10).map(|_| s.spawn(|| w.gitee_push().run())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The first build is still held at its gate: every answer came without waiting for it.
    assert!(
        !fs::read_to_string(&record).unwrap().contains("end"),
        "a delivery waited for the build"
    );
    for r in &replies {
        assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    }
    assert!(w.hook_dir().join("pending").exists());
    assert_eq!(w.status()["pending"], true);

    fs::write(&gate, "").unwrap();
    let s = w.wait_idle();
    let b = builds(&record);
    assert_eq!(b.len(), 2, "one build and one follow-up: {b:?}");
    assert_eq!(b[0].0, first);
    assert_eq!(b[1].0, newest, "the follow-up built the newest commit");
    assert_eq!(s["last"]["commit"], newest.as_str());
    assert_eq!(s["pending"], false);
}

#[test]
fn deliveries_racing_the_end_of_a_build_are_never_lost() {
    // Deliveries arrive while builds end and start; after the last one, the last build
    // must have started after it and built the newest commit.
    let w = World::new("race");
    let record = w.path("record");
    let step = format!(
        "echo \"start $DEPLOY_HOOK_COMMIT\" >> {r}; sleep 0.05; echo \"end $DEPLOY_HOOK_COMMIT\" >> {r}",
        r = record.display()
    );
    w.config("gitee", &format!("steps = [{}]", toml_str(&step)));
    let mut newest = String::new();
    for round in 0..8 {
        newest = w.push("index.md", &format!("round {round}\n"));
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| assert_eq!(w.gitee_push().run().status, 202));
            }
        });
        // Not a wait for anything: rounds land at varying points of the builds (start,
        // middle, end); what is asserted holds for every timing.
        std::thread::sleep(Duration::from_millis(20 * (round % 4)));
    }
    let s = w.wait_idle();
    let b = builds(&record);
    assert_eq!(b.last().unwrap().0, newest, "{b:?}");
    assert_eq!(s["last"]["commit"], newest.as_str());
    assert!(b.len() <= 24);
}

#[test]
fn a_killed_worker_is_recorded_interrupted_and_the_next_delivery_builds() {
    let w = World::new("crash");
    let (record, gate) = (w.path("record"), w.path("gate"));
    let step_pid = w.path("step.pid");
    let step = format!("echo $$ > {}; {}", step_pid.display(), gated_step(&record, &gate));
    w.config("gitee", &format!("steps = [{}]", toml_str(&step)));
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the build to start", Duration::from_secs(30), || {
        step_pid.exists() && record.exists()
    });
    let s = w.status();
    assert_eq!(s["state"], "building");
    let worker = s["current"]["pid"].as_i64().unwrap() as i32;
    let step: i32 = fs::read_to_string(&step_pid).unwrap().trim().parse().unwrap();
    assert!(!w.lock_free());

    // SIGKILL the detached worker mid-build.
    unsafe {
        libc::kill(worker, libc::SIGKILL);
    }
    wait_for("the lock to be free", Duration::from_secs(10), || w.lock_free());
    wait_for("the step to die with its worker", Duration::from_secs(10), || {
        !pid_alive(step)
    });

    // The next delivery is the event here: the recovery that a look at the status starts
    // (a worker, as a delivery starts one) is kept from the lock by holding the checkout's
    // part of it, until that worker gave up.
    let tree = fs::File::open(&w.repo).unwrap();
    fs2::FileExt::lock_exclusive(&tree).unwrap();
    let out = w.cmd(&["status", "docs", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["interrupted"], true, "{st}");
    let out = w.cmd(&["status", "docs"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("interrupted"));
    w.wait_no_worker();
    drop(tree);

    fs::write(&gate, "").unwrap();
    let head = w.push("index.md", "after the crash\n");
    assert_eq!(w.gitee_push().run().status, 202);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    assert_eq!(s["last"]["commit"], head.as_str());
    let h = w.history();
    assert_eq!(h.len(), 2, "{s}");
    assert_eq!(h[1]["result"], "interrupted");
    assert!(
        h[1]["failed_step"].as_str().unwrap().contains("gate"),
        "the interrupted step is named: {}",
        h[1]
    );
}
