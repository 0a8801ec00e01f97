//! What `status` and `status --follow` print to the admin's terminal: never a terminal
//! escape from a commit subject, a step's output or a release folder's name (escaped as the
//! rest of the output is); and `--follow` right after a delivery follows that delivery's
//! build, not the one before.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// What a hostile commit subject, step or release name may hold: clear the screen, set the
/// terminal's title, ring the bell, move the cursor home (CSI, OSC, BEL, CR).
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}H\rX";

/// Fails when `text` holds a byte a terminal acts on (anything below 0x20 but newline, DEL,
/// or a C1 control).
fn assert_inert(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| (c.is_control() && *c != '\n') || ('\u{80}'..='\u{9f}').contains(c))
        .collect();
    assert!(bad.is_empty(), "{what} printed terminal controls {bad:?}:\n{text}");
}

fn follow(w: &World) -> (std::process::Child, Watched) {
    let mut child = Command::new(BIN)
        .args(["status", "docs", "--follow"])
        .env_clear()
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Watched::new(child.stdout.take().unwrap());
    (child, out)
}

#[test]
fn follow_and_status_escape_subjects_step_output_and_release_names() {
    let w = World::new("status-escapes");
    let (record, gate, www) = (w.path("record"), w.path("gate"), w.path("www"));
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nsteps = [{}, {}, \"mkdir -p dist && echo page > dist/index.html\"]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}",
            toml_str(&format!("printf '\\033[32m✓\\033[0m green \\033[1;31mbold red\\033[m\\n{}step-output\\n'", HOSTILE.replace('\u{1b}', "\\033").replace('\u{7}', "\\007").replace('\u{9b}', "\\302\\233").replace('\r', "\\r"))),
            toml_str(&gated_step(&record, &gate)),
            www.to_str().unwrap()
        ),
    );
    // A commit whose subject is hostile: `git reset --hard` prints it into the build log.
    fs::write(w.seed.join("index.md"), "hostile\n").unwrap();
    git(&w.seed, &["add", "-A"]);
    git(&w.seed, &["commit", "-q", "-m", &format!("subject {HOSTILE} end")]);
    git(&w.seed, &["push", "-q", "origin", "main"]);
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the build to reach the gate", Duration::from_secs(30), || {
        record.exists()
    });

    let (mut child, mut out) = follow(&w);
    out.wait_for("the step's output", "step-output", Duration::from_secs(30));
    fs::write(&gate, "").unwrap();
    let text = out.rest();
    assert!(child.wait().unwrap().success(), "{text}");
    let log = fs::read_to_string(w.status()["last"]["log"].as_str().unwrap()).unwrap();
    assert!(
        log.contains(HOSTILE),
        "the test's premise: the log holds them raw:\n{log}"
    );
    assert_inert("status --follow", &text);
    assert!(
        text.contains("subject \\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{9b}H\\rX end"),
        "the subject is shown, escaped:\n{text}"
    );
    assert!(text.contains("\\u{1b}[2J\\u{1b}]0;owned"), "{text}");
    // Colours (SGR: ESC [ ... m) are dropped, not shown as escapes; the rest stays escaped.
    assert!(text.contains("✓ green bold red\n"), "{text}");
    assert!(!text.contains("\\u{1b}[32m") && !text.contains("\\u{1b}[0m"), "{text}");

    // A release folder renamed by whoever can write there, and the site pointed at it.
    let releases = w.path("www.releases");
    let live = fs::read_link(&www).unwrap();
    let hostile = format!("20990101-000000-000-{HOSTILE}");
    fs::rename(releases.join(live.file_name().unwrap()), releases.join(&hostile)).unwrap();
    let tmp = w.path(".www.tmp");
    std::os::unix::fs::symlink(format!("www.releases/{hostile}"), &tmp).unwrap();
    fs::rename(&tmp, &www).unwrap();
    let out = w.cmd(&["status", "docs"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert_inert("status", &text);
    assert!(text.contains("live:    20990101-000000-000-\\u{1b}[2J"), "{text}");
    let out = w.cmd(&["status", "docs", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["live_release"], hostile.as_str(), "JSON keeps the name exact");

    // rollback names the releases it switches between.
    w.push("index.md", "second\n");
    assert_eq!(w.gitee_push().run().status, 202);
    fs::write(&gate, "").unwrap();
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
    let out = w.cmd(&["rollback", "docs", "--to", &hostile]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert_inert("rollback", &said);
    let out = w.cmd(&["status", "docs"]);
    assert_inert("status after the rollback", &String::from_utf8_lossy(&out.stdout));
}

#[test]
fn follow_right_after_a_queued_delivery_follows_its_build_not_the_one_before() {
    let w = World::new("status-follow-pending");
    w.config(
        "gitee",
        "steps = [\"test \\\"$(cat mode.txt)\\\" = ok && echo built-$(cat mode.txt)\"]",
    );
    w.push("mode.txt", "bad\n");
    assert_eq!(w.gitee_push().run().status, 202);
    assert_eq!(w.wait_idle()["last"]["result"], "failed");

    // The next delivery is queued while no build has taken it yet: the build lock is held
    // here, as it is in the moment between a 202 and its worker's start.
    let good = w.push("mode.txt", "ok\n");
    fs::create_dir_all(w.hook_dir()).unwrap();
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(w.hook_dir().join("build.lock"))
        .unwrap();
    fs2::FileExt::lock_exclusive(&lock).unwrap();
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    let (mut child, mut out) = follow(&w);
    out.wait_for("--follow to start", "docs: ", Duration::from_secs(30));
    // The holder lets go and a worker takes what waits (as the holder's hand-over does).
    fs2::FileExt::unlock(&lock).unwrap();
    assert!(w.cmd(&["run", "docs"]).status.success());
    let text = out.rest();
    let code = child.wait().unwrap().code();
    assert!(
        !text.contains("the last build"),
        "--follow reported the build before the delivery:\n{text}"
    );
    assert!(text.contains("built-ok"), "the delivery's build was streamed:\n{text}");
    assert_eq!(code, Some(0), "the followed build succeeded:\n{text}");
    let s = w.wait_idle();
    assert_eq!(s["last"]["commit"], good.as_str());
}
