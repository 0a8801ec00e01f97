//! Where a step's program is found: a name with a `/` is relative to `repo`
//! (docs/builds.md, "What a build does"), wherever the worker was started (`/` under a web
//! server), and `check` finds it the same way.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::util::*;

/// Commits an executable script at `rel` in the remote.
fn commit_script(w: &World, rel: &str, body: &str) {
    let p = w.seed.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn relative_programs_run_from_the_repo_through_the_cgi_and_check_finds_them() {
    let w = World::new("relative-programs");
    let marks = w.path("marks");
    commit_script(&w, "build.sh", &format!("echo build.sh >> {}", marks.display()));
    commit_script(
        &w,
        "scripts/build",
        &format!("echo \"scripts/build $1\" >> {}", marks.display()),
    );
    commit_script(
        &w,
        "node_modules/.bin/vitepress",
        &format!("echo \"vitepress $*\" >> {}", marks.display()),
    );
    commit_script(&w, "ok.sh", &format!("echo on_success >> {}", marks.display()));
    w.push("index.md", "relative programs\n");
    w.config(
        "gitee",
        "steps = [[\"./build.sh\"], [\"scripts/build\", \"x\"], [\"node_modules/.bin/vitepress\", \"build\", \"docs\"]]\non_success = [\"./ok.sh\"]",
    );
    // the CGI runs with cwd `/`, as under a web server; the worker it starts too
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{s}\n{}", w.log_text(&s["last"]));
    assert_eq!(
        fs::read_to_string(&marks).unwrap(),
        "build.sh\nscripts/build x\nvitepress build docs\non_success\n"
    );

    // check, also started from `/`, finds each of them in the repo
    let out = Command::new(BIN)
        .arg("check")
        .env_clear()
        .env("PATH", w.web.path("/usr/bin:/bin"))
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for program in ["./build.sh", "scripts/build", "node_modules/.bin/vitepress", "./ok.sh"] {
        let found = w.repo.join(program);
        assert!(
            text.contains(&format!("{program} found: {}", found.display())),
            "{program}:\n{text}"
        );
    }

    // a missing one: the log says where it looked, and never "not found on PATH"
    w.config("gitee", "steps = [[\"./missing.sh\"]]");
    w.gitee_push().run();
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "failed", "{s}");
    let log = w.log_text(&s["last"]);
    assert!(log.contains("./missing.sh is not an executable file in"), "{log}");
    assert!(!log.contains("not found on PATH"), "{log}");
}

#[test]
fn an_absolute_program_is_not_looked_for_on_path() {
    let w = World::new("absolute-program");
    w.config("gitee", "mode = \"sync\"\nsteps = [[\"/nonexistent/deploy\"]]");
    let r = w.gitee_push().run();
    assert_eq!(r.word(), "failed", "{}", r.json);
    let log = w.log_text(&w.status()["last"]);
    assert!(log.contains("/nonexistent/deploy is not an executable file"), "{log}");
    assert!(!log.contains("not found on PATH"), "{log}");
    let out = w.cmd(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/nonexistent/deploy") && !text.contains("is not found on path"),
        "{text}"
    );
}
