//! Faults: a worker killed in each pipeline stage, programs missing from the steps' PATH,
//! the state dir deleted, a stale pending marker, a full disk. Each ends in a clear status
//! and log line, a free lock, and a next delivery that builds.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::util::*;

fn kill_worker(w: &World) {
    let pid = w.status()["current"]["pid"].as_i64().expect("a running build") as i32;
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    wait_for("the lock to be free", Duration::from_secs(10), || w.lock_free());
}

/// After a fault: the next delivery builds the head, and the fault is in the history.
fn recovers(w: &World, fault_result: &str) {
    let head = w.push("index.md", &format!("after {fault_result} {}\n", now_ms()));
    assert_eq!(w.gitee_push().run().status, 202);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    assert_eq!(s["last"]["commit"], head.as_str());
    assert_eq!(w.history()[1]["result"], fault_result, "{s}");
}

#[test]
fn a_worker_killed_during_git_fetch() {
    let w = World::new("kill-git");
    // a git that waits for a gate during fetch, first on the hook's path
    let bin = w.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let gate = w.path("gate");
    fs::write(
        bin.join("git"),
        format!("#!/bin/sh\nif [ \"$1\" = fetch ]; then touch {d}/in-fetch; while [ ! -e {g} ]; do sleep 0.02; done; fi\nexec /usr/bin/git \"$@\"\n", d = w.dir.display(), g = gate.display()),
    )
    .unwrap();
    fs::set_permissions(bin.join("git"), fs::Permissions::from_mode(0o755)).unwrap();
    w.config(
        "gitee",
        &format!("path = \"{}:/usr/bin:/bin\"\nsteps = [\"true\"]", bin.display()),
    );
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the fetch", Duration::from_secs(30), || w.path("in-fetch").exists());
    assert!(w.status()["current"]["step"].as_str().unwrap().starts_with("git fetch"));
    kill_worker(&w);
    fs::write(&gate, "").unwrap();
    recovers(&w, "interrupted");
    assert_eq!(w.history()[1]["failed_step"], "git fetch origin main");
}

#[test]
fn a_worker_killed_during_publish_leaves_the_live_site() {
    let w = World::new("kill-publish");
    let www = w.path("www");
    // many files that differ from the live release's, so the copy into the release takes a while
    let step = "mkdir -p dist && cd dist && seq 1 5000 | sed \"s/$/ $DEPLOY_HOOK_COMMIT/\" | split -l 1 -a 5 - f && cp ../index.md index.html";
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nsteps = [{}]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}",
            toml_str(step),
            www.to_str().unwrap()
        ),
    );
    w.push("index.md", "live\n");
    assert_eq!(w.gitee_push().run().status, 202);
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
    let live = fs::read_link(&www).unwrap();

    w.push("index.md", "never published\n");
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the publish stage", Duration::from_secs(60), || {
        w.status()["current"]["step"] == "publish"
    });
    kill_worker(&w);
    assert_eq!(fs::read_link(&www).unwrap(), live, "a killed publish switched the site");
    assert_eq!(fs::read_to_string(www.join("index.html")).unwrap(), "live\n");
    recovers(&w, "interrupted");
    assert_eq!(w.history()[1]["failed_step"], "publish");
    let leftovers: Vec<_> = fs::read_dir(w.path("www.releases"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".staging"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the killed publish's staging folder was not cleaned up"
    );
}

#[test]
fn pnpm_missing_from_path_fails_clearly() {
    let w = World::new("no-pnpm");
    let bin = w.path("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/git", bin.join("git")).unwrap();
    // the default steps, with a path that has git and no pnpm
    w.config("gitee", &format!("mode = \"sync\"\npath = {:?}", bin.to_str().unwrap()));
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (500, "failed"));
    let s = w.status();
    assert_eq!(s["last"]["failed_step"], "pnpm install");
    let log = w.log_text(&s["last"]);
    assert!(
        log.contains(&format!("pnpm not found on PATH {}", bin.display())),
        "{log}"
    );
    let check = w.cmd(&["check"]);
    assert!(String::from_utf8_lossy(&check.stdout).contains("npm install -g pnpm"));
    w.config("gitee", "steps = [\"true\"]");
    recovers(&w, "failed");
}

#[test]
fn the_state_dir_deleted_while_idle_is_recreated() {
    let w = World::new("state-deleted");
    w.config("gitee", "steps = [\"true\"]");
    assert_eq!(w.gitee_push().run().status, 202);
    w.wait_idle();
    fs::remove_dir_all(&w.state).unwrap();
    let head = w.push("index.md", "after the state dir went\n");
    assert_eq!(w.gitee_push().run().status, 202);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded");
    assert_eq!(s["last"]["commit"], head.as_str());
}

#[test]
fn a_stale_pending_marker_is_built_by_the_next_delivery_or_run() {
    let w = World::new("stale-pending");
    w.config("gitee", "steps = [\"true\"]");
    w.gitee_push().run();
    w.wait_idle();
    // a marker left behind with no worker (a crash between recording it and starting one)
    fs::write(w.hook_dir().join("pending"), "{\"delivery\":\"old\"").unwrap();
    assert_eq!(w.status()["state"], "idle");
    let head = w.push("index.md", "stale marker\n");
    assert!(w.cmd(&["run", "docs"]).status.success());
    let s = w.wait_idle();
    assert_eq!(s["last"]["commit"], head.as_str());
    assert_eq!(
        w.history().len(),
        2,
        "the stale marker and the run collapse into one build: {s}"
    );
    assert!(!w.hook_dir().join("pending").exists());
}

/// Unmounts its folder when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A tmpfs of `size` on the test's state folder, as root.
fn small_disk_for_state(w: &World, size: &str) -> Unmount {
    fs::create_dir_all(&w.state).unwrap();
    // mode 0755: a tmpfs is 1777 by default, and root's commands refuse a state dir that
    // others can write.
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
        .arg(&w.state)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "cannot mount a tmpfs on {} (root without CAP_SYS_ADMIN?)",
        w.state.display()
    );
    Unmount(w.state.clone())
}

#[test]
fn a_full_disk_for_the_build_log_ends_clearly_and_recovers() {
    requires!(Root);
    let w = World::new("disk-full");
    let _unmount = small_disk_for_state(&w, "512k");
    // a step that writes far more than the disk holds into the build log
    w.config(
        "gitee",
        "mode = \"sync\"\nsteps = [\"head -c 4000000 /dev/zero | tr '\\\\0' x\"]",
    );
    let r = w.gitee_push().run();
    assert!(r.status == 500 || r.status == 200, "{}", r.json);
    assert!(w.lock_free());
    // Free the space first: a look at a build that could not be recorded starts its
    // recovery, which builds its delivery again (with the config of then).
    for e in fs::read_dir(w.hook_dir().join("builds")).unwrap().flatten() {
        fs::remove_file(e.path()).unwrap();
    }
    w.config("gitee", "mode = \"sync\"\nsteps = [\"true\"]");
    let out = w.cmd(&["status", "docs", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = st["last"]["result"].as_str().unwrap_or("none").to_string();
    assert!(
        last == "failed" || st["interrupted"] == true,
        "a clear status after a full disk: {st}"
    );
    // the recovery that look started (if any) ends; then the next delivery builds
    w.wait_idle();
    w.push("index.md", "after the disk was freed\n");
    let r = w.gitee_push().run();
    assert_eq!(r.word(), "succeeded", "{}\n{}", r.json, r.stderr);
}

#[test]
fn a_build_that_cannot_be_recorded_puts_its_delivery_back() {
    let w = World::new("unrecordable");
    let (record, gate) = (w.path("record"), w.path("gate"));
    w.config("gitee", &format!("steps = [{}]", toml_str(&gated_step(&record, &gate))));
    let head = w.push("index.md", "put back\n");
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the build to start", Duration::from_secs(30), || record.exists());
    // status.json becomes a directory: the end of the build cannot be recorded
    let status = w.hook_dir().join("status.json");
    fs::remove_file(&status).unwrap();
    fs::create_dir(&status).unwrap();
    fs::write(&gate, "").unwrap();
    wait_for("the worker to give up", Duration::from_secs(30), || {
        w.lock_free() && w.hook_dir().join("pending").exists()
    });
    let worker_log = fs::read_to_string(w.hook_dir().join("worker.log")).unwrap();
    assert!(worker_log.contains("worker failed hook=docs"), "{worker_log}");
    fs::remove_dir(&status).unwrap();
    assert!(w.cmd(&["run", "docs", "--wait"]).status.success());
    let s = w.wait_idle();
    assert_eq!(s["last"]["commit"], head.as_str());
    assert!(!w.hook_dir().join("pending").exists());
}

/// A hook whose only step waits for `gate` and whose `on_failure` appends its result,
/// build id and failed step to `told`; a build of the head is running in it, its step
/// started. Returns (head, gate, told).
fn building_world(w: &World) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let (record, gate, told) = (w.path("record"), w.path("gate"), w.path("told"));
    let on_failure = format!(
        "[\"sh\", \"-c\", \"echo $DEPLOY_HOOK_RESULT $DEPLOY_HOOK_BUILD $DEPLOY_HOOK_DELIVERY >> {}\"]",
        told.display()
    );
    w.config(
        "gitee",
        &format!(
            "steps = [{}]\non_failure = {on_failure}",
            toml_str(&gated_step(&record, &gate))
        ),
    );
    let head = w.push("index.md", "killed\n");
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the step to start", Duration::from_secs(30), || record.exists());
    (head, gate, told)
}

/// What `on_failure` was told, one line per run.
fn told(path: &std::path::Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_worker_killed_mid_step_is_told_once_and_the_next_delivery_builds_the_head() {
    let w = World::new("kill-told");
    let (_, gate, told_file) = building_world(&w);
    let killed = w.status()["current"]["id"].as_str().unwrap().to_string();
    kill_worker(&w);
    fs::write(&gate, "").unwrap();
    let head = w.push("index.md", "after the kill\n");
    assert_eq!(w.gitee_push().run().status, 202);
    let s = w.wait_idle();
    assert_eq!(told(&told_file).len(), 1, "{:?}", told(&told_file));
    assert!(
        told(&told_file)[0].starts_with(&format!("interrupted {killed} ")),
        "{:?}",
        told(&told_file)
    );
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    assert_eq!(s["last"]["commit"], head.as_str());
    assert_eq!(w.history()[1]["result"], "interrupted", "{s}");
    let log = w.log_text(&w.history()[1]);
    assert!(
        log.contains("result: interrupted") && log.contains("notify: $"),
        "{log}"
    );
}

#[test]
fn status_seeing_a_dead_builder_records_it_tells_and_builds_its_delivery_again() {
    let w = World::new("kill-status");
    let (head, gate, told_file) = building_world(&w);
    let dead = w.status()["current"].clone();
    kill_worker(&w);
    fs::write(&gate, "").unwrap();
    // Nobody delivers again: looking at the status is the next event.
    let out = w.cmd(&["status", "docs"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("builds its delivery again"), "{text}");
    wait_for(
        "the interrupted build to be built again",
        Duration::from_secs(60),
        || w.history().len() == 2 && w.status()["state"] == "idle",
    );
    let s = w.wait_idle();
    let told = told(&told_file);
    assert_eq!(
        told,
        [format!(
            "interrupted {} {}",
            dead["id"].as_str().unwrap(),
            dead["delivery"].as_str().unwrap()
        )]
    );
    assert_eq!(w.history()[1]["result"], "interrupted", "{s}");
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    assert_eq!(s["last"]["commit"], head.as_str());
    assert_eq!(
        s["last"]["delivery"], dead["delivery"],
        "the interrupted delivery is the one built"
    );
}

#[test]
fn status_follow_and_run_wait_after_a_dead_builder_tell_once_and_build() {
    // --follow: it says the build it would follow was interrupted (exit 1), and the
    // recovery it starts builds the delivery again.
    let w = World::new("kill-follow");
    let (head, gate, told_file) = building_world(&w);
    kill_worker(&w);
    fs::write(&gate, "").unwrap();
    let out = w.cmd(&["status", "docs", "--follow"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("was interrupted"), "{text}");
    wait_for("the delivery to be built again", Duration::from_secs(60), || {
        w.history().len() == 2 && w.status()["state"] == "idle"
    });
    assert_eq!(w.wait_idle()["last"]["commit"], head.as_str());
    assert_eq!(told(&told_file).len(), 1, "{:?}", told(&told_file));

    // run --wait: it recovers first (told once), then builds
    let w = World::new("kill-run");
    let (_, gate, told_file) = building_world(&w);
    kill_worker(&w);
    fs::write(&gate, "").unwrap();
    let head = w.push("index.md", "run after the kill\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let s = w.wait_idle();
    assert_eq!(told(&told_file).len(), 1, "{:?}", told(&told_file));
    assert!(told(&told_file)[0].starts_with("interrupted "));
    assert_eq!(s["last"]["commit"], head.as_str());
    assert_eq!(w.history()[1]["result"], "interrupted", "{s}");
}

/// The end of a build cuts a log over `log_max_bytes` in its middle into a copy that takes
/// its place: when the copy cannot be written (a full disk, or a worker killed while it is
/// written), the log stays whole as it was, and nothing half written is left beside it.
/// It used to be rewritten in place, which a killed worker left garbled.
#[test]
fn a_log_that_cannot_be_cut_for_a_full_disk_stays_whole() {
    requires!(Root);
    let w = World::new("disk-full-seal");
    let _unmount = small_disk_for_state(&w, "1m");
    let builds = w.hook_dir().join("builds");
    let filler = w.path("filler-at");
    // Three steps each cut (the log ends over its cap), then one that leaves the state
    // folder 16 KiB: room for the build's last lines and status.json, not for the cut
    // copy of the log (64 KiB).
    let loud = "echo FIRST-LINE; yes 'a line the step prints again and again' | head -n 20000; echo LAST-LINE";
    let fill = format!(
        "set -- $(stat -f -c '%a %S' {state}); head -c $(($1 * $2 - 16384)) /dev/zero > {state}/filler; echo {state}/filler > {at}",
        state = w.state.display(),
        at = filler.display()
    );
    let steps = |last: &str| {
        format!(
            "log_max_bytes = 65536\nsteps = [{}, {}, {}{last}]\n",
            toml_str(loud),
            toml_str(loud),
            toml_str(loud)
        )
    };
    w.config("gitee", &steps(&format!(", {}", toml_str(&fill))));
    let out = w.cmd(&["run", "docs", "--wait"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = w.status()["last"].clone();
    assert_eq!(last["result"], "succeeded", "{said}");
    assert!(filler.exists(), "the disk was not filled: {said}");
    assert!(said.contains("cannot cut it to log_max_bytes"), "{said}");
    let log = fs::read_to_string(last["log"].as_str().unwrap()).unwrap();
    assert!(log.starts_with("deploy-hook build "), "{log}");
    assert_eq!(log.matches("bytes of this output cut here").count(), 3, "{log}");
    assert!(
        !log.contains("bytes of this log cut here"),
        "the log was cut in place: {log}"
    );
    assert!(
        log.lines().last().unwrap_or("").starts_with("result: succeeded"),
        "{log}"
    );
    let names = |dir: &std::path::Path| -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(
        names(&builds).iter().all(|n| n.ends_with(".log")),
        "{:?}",
        names(&builds)
    );

    // With room again, the next build's log is cut to its cap, and a half-written copy a
    // killed worker left is removed.
    fs::remove_file(w.state.join("filler")).unwrap();
    let left = builds.join("20200101-000000-000.sealing");
    fs::write(&left, "half a log").unwrap();
    w.config("gitee", &steps(""));
    assert!(w.cmd(&["run", "docs", "--wait", "--force"]).status.success());
    let last = w.status()["last"].clone();
    assert_eq!(last["result"], "succeeded");
    let log = fs::read_to_string(last["log"].as_str().unwrap()).unwrap();
    assert!(log.len() <= 65536, "{} bytes", log.len());
    assert!(log.contains("bytes of this log cut here"), "{log}");
    assert!(
        log.lines().last().unwrap_or("").starts_with("result: succeeded"),
        "{log}"
    );
    assert!(!left.exists(), "a stale copy was left: {:?}", names(&builds));
}
