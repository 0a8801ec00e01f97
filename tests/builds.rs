//! The pipeline through the real binary: the steps' environment, failures, timeouts that
//! kill whole process groups, clean paths, logs and publish.

use std::fs;
use std::time::Duration;

use crate::util::*;

#[test]
fn steps_get_the_documented_environment_and_nothing_of_the_request() {
    let w = World::new("env");
    let dump = w.path("env.dump");
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nenv = {{ NODE_ENV = \"production\" }}\npath = \"/usr/local/bin:/usr/bin:/bin\"\nsteps = [[\"sh\", \"-c\", \"env > {}\"]]",
            dump.display()
        ),
    );
    let head = w.push("index.md", "env test\n");
    let r = w
        .gitee_push()
        .header("X-Extra-Header", "from-the-request")
        .env("SERVER_SOFTWARE", "nginx")
        .env("REMOTE_ADDR", "127.0.0.1")
        .run();
    assert_eq!(r.word(), "succeeded", "{}", r.json);
    let text = fs::read_to_string(&dump).unwrap();
    let vars: std::collections::BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(vars["PATH"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(vars["HOME"], w.hook_dir().join("home").to_str().unwrap());
    assert!(w.hook_dir().join("home").is_dir());
    assert_eq!(vars["LANG"], "C.UTF-8");
    assert_eq!(vars["GIT_TERMINAL_PROMPT"], "0");
    assert_eq!(vars["NODE_ENV"], "production");
    assert_eq!(vars["DEPLOY_HOOK_NAME"], "docs");
    assert_eq!(vars["DEPLOY_HOOK_REF"], "refs/heads/main");
    assert_eq!(vars["DEPLOY_HOOK_COMMIT"], head);
    assert_eq!(vars["DEPLOY_HOOK_DELIVERY"], r.json["delivery"].as_str().unwrap());
    assert_eq!(vars["DEPLOY_HOOK_EVENT"], "Push Hook");
    assert_eq!(vars["DEPLOY_HOOK_LOG"], w.status()["last"]["log"].as_str().unwrap());
    for (k, v) in &vars {
        assert!(!k.starts_with("HTTP_"), "{k} reached a step");
        assert!(
            ![
                "REQUEST_METHOD",
                "SERVER_SOFTWARE",
                "REMOTE_ADDR",
                "CONTENT_TYPE",
                "DEPLOY_HOOK_CONFIG",
                "PATH_INFO"
            ]
            .contains(k),
            "{k} reached a step"
        );
        assert!(!v.contains(SECRET), "the secret reached a step in {k}");
    }
    assert!(!text.contains("from-the-request"));
    // env may set HOME
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nenv = {{ HOME = {:?} }}\nsteps = [\"env > {}\"]",
            w.dir.to_str().unwrap(),
            dump.display()
        ),
    );
    assert_eq!(w.gitee_push().run().word(), "succeeded");
    assert!(fs::read_to_string(&dump)
        .unwrap()
        .contains(&format!("HOME={}\n", w.dir.display())));
}

#[test]
fn a_failing_step_stops_the_build_and_is_named() {
    let w = World::new("fail");
    w.config(
        "gitee",
        "steps = [\"echo one > one.txt\", [\"sh\", \"-c\", \"echo to-the-log; exit 3\"], \"touch three.txt\"]",
    );
    assert_eq!(w.gitee_push().run().status, 202);
    let s = w.wait_idle();
    let last = &s["last"];
    assert_eq!(last["result"], "failed", "{s}");
    assert_eq!(last["failed_step"], "sh -c 'echo to-the-log; exit 3'");
    assert!(w.repo.join("one.txt").exists());
    assert!(!w.repo.join("three.txt").exists(), "the build went on after a failure");
    let log = w.log_text(last);
    assert!(log.contains("$ sh -c 'echo to-the-log; exit 3'"), "{log}");
    assert!(
        log.contains("$ echo one > one.txt"),
        "a shell step is logged as written: {log}"
    );
    assert!(log.contains("to-the-log\n-> exit status 3"), "{log}");
    assert!(log.contains("result: failed"), "{log}");
}

#[test]
fn a_missing_program_fails_the_build_with_a_clear_log() {
    let w = World::new("missing-program");
    w.config(
        "gitee",
        "mode = \"sync\"\nsteps = [[\"no-such-program-xyz\", \"build\"]]",
    );
    let r = w.gitee_push().run();
    assert_eq!(r.word(), "failed");
    let s = w.status();
    assert_eq!(s["last"]["failed_step"], "no-such-program-xyz build");
    assert!(
        w.log_text(&s["last"]).contains("no-such-program-xyz not found on PATH"),
        "{}",
        w.log_text(&s["last"])
    );
}

#[test]
fn an_unreachable_remote_fails_at_fetch() {
    let w = World::new("bad-remote");
    git(
        &w.repo,
        &["remote", "set-url", "origin", w.path("nowhere.git").to_str().unwrap()],
    );
    w.config("gitee", "mode = \"sync\"\nsteps = [\"touch built\"]");
    assert_eq!(w.gitee_push().run().word(), "failed");
    let s = w.status();
    assert_eq!(s["last"]["failed_step"], "git fetch origin main");
    assert!(!w.repo.join("built").exists());
}

#[test]
fn a_timeout_kills_the_whole_group_even_children_that_ignore_sigterm() {
    let w = World::new("timeout");
    let (cpid, gpid) = (w.path("child.pid"), w.path("grandchild.pid"));
    let step = format!(
        "trap '' TERM; sh -c 'trap \"\" TERM; echo $$ > {g}; while true; do sleep 0.1; done' & echo $$ > {c}; while true; do sleep 0.1; done",
        c = cpid.display(),
        g = gpid.display()
    );
    w.config(
        "gitee",
        &format!("step_timeout_secs = 1\nsteps = [{}, \"touch after\"]", toml_str(&step)),
    );
    assert_eq!(w.gitee_push().run().status, 202);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "timed_out", "{s}");
    assert!(s["last"]["failed_step"].as_str().unwrap().contains("trap"));
    assert!(!w.repo.join("after").exists());
    for f in [&cpid, &gpid] {
        let pid: i32 = fs::read_to_string(f).unwrap().trim().parse().unwrap();
        wait_for(&format!("pid {pid} to be gone"), Duration::from_secs(10), || {
            !pid_alive(pid)
        });
    }
    assert!(w.log_text(&s["last"]).contains("timed out"));
}

#[test]
fn clean_paths_are_removed_and_local_changes_reset() {
    let w = World::new("clean");
    w.push("docs/guide.md", "guide\n");
    w.config("gitee", "mode = \"sync\"\nclean = [\"docs/.vuepress/dist\", \"gone.txt\"]\nsteps = [\"test ! -e docs/.vuepress/dist && test ! -e gone.txt && test -e keep.txt\"]");
    fs::create_dir_all(w.repo.join("docs/.vuepress/dist/assets")).unwrap();
    fs::write(w.repo.join("docs/.vuepress/dist/assets/old.js"), "old").unwrap();
    fs::write(w.repo.join("gone.txt"), "x").unwrap();
    fs::write(w.repo.join("keep.txt"), "untracked and not in clean").unwrap();
    fs::write(w.repo.join("index.md"), "local modification\n").unwrap();
    assert_eq!(
        w.gitee_push().run().word(),
        "succeeded",
        "{}",
        w.log_text(&w.status()["last"])
    );
    assert_eq!(fs::read_to_string(w.repo.join("index.md")).unwrap(), "first\n");
    assert_eq!(fs::read_to_string(w.repo.join("docs/guide.md")).unwrap(), "guide\n");
}

#[test]
fn clean_refuses_to_follow_a_symlink_out_of_the_repo() {
    let w = World::new("clean-symlink");
    let outside = w.path("outside");
    fs::create_dir_all(outside.join("dist")).unwrap();
    fs::write(outside.join("dist/precious"), "keep me").unwrap();
    std::os::unix::fs::symlink(&outside, w.repo.join("link")).unwrap();
    w.config("gitee", "mode = \"sync\"\nclean = [\"link/dist\"]\nsteps = [\"true\"]");
    assert_eq!(w.gitee_push().run().word(), "failed");
    assert!(
        outside.join("dist/precious").exists(),
        "clean removed a file outside the repo"
    );
    assert!(w.status()["last"]["failed_step"].as_str().unwrap().starts_with("clean"));
}

#[test]
fn build_logs_are_pruned_to_keep_logs() {
    let w = World::new("prune");
    w.config("gitee", "mode = \"sync\"\nkeep_logs = 2\nsteps = [\"true\"]");
    for i in 0..4 {
        w.push("index.md", &format!("{i}\n")); // a new commit: the same one would be unchanged
        assert_eq!(w.gitee_push().run().word(), "succeeded");
    }
    let logs = fs::read_dir(w.hook_dir().join("builds")).unwrap().count();
    assert_eq!(logs, 2);
    let h = w.history();
    assert_eq!(h.len(), 4);
    assert!(
        std::path::Path::new(h[0]["log"].as_str().unwrap()).exists(),
        "the newest log was pruned"
    );
}

#[test]
fn publish_switches_the_site_only_after_a_successful_build() {
    let w = World::new("publish");
    let www = w.path("www");
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nclean = [\"dist\"]\nsteps = [\"mkdir -p dist && cp index.md dist/index.html && test ! -e fail-now\"]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}\nkeep = 3",
            www.to_str().unwrap()
        ),
    );
    w.push("index.md", "v1\n");
    assert_eq!(w.gitee_push().run().word(), "succeeded");
    assert_eq!(fs::read_to_string(www.join("index.html")).unwrap(), "v1\n");
    assert!(fs::symlink_metadata(&www).unwrap().file_type().is_symlink());
    w.push("fail-now", "x");
    w.push("index.md", "v2 broken\n");
    assert_eq!(w.gitee_push().run().word(), "failed");
    assert_eq!(
        fs::read_to_string(www.join("index.html")).unwrap(),
        "v1\n",
        "a failed build changed the site"
    );
    let s = w.status();
    assert!(s["live_release"].as_str().unwrap().len() > 10, "{s}");
}

/// A site whose theme is a git submodule: each build checks the submodules out at the
/// commit's revisions (recursively), so a bumped theme is the one published. The file://
/// transport is allowed for submodules through the hook's env, as only a test needs it
/// (git refuses it by default since 2.38).
#[test]
fn a_bumped_theme_submodule_is_the_one_published() {
    let w = World::new("submodule");
    let git_file = |dir: &std::path::Path, args: &[&str]| {
        let mut all = vec!["-c", "protocol.file.allow=always"];
        all.extend_from_slice(args);
        git(dir, &all)
    };
    // The theme, with a submodule of its own (its fonts).
    git(&w.dir, &["init", "-q", "--bare", "-b", "main", "fonts.git"]);
    git(&w.dir, &["init", "-q", "--bare", "-b", "main", "theme.git"]);
    git(
        &w.dir,
        &["clone", "-q", w.path("fonts.git").to_str().unwrap(), "fonts-seed"],
    );
    let fonts = w.path("fonts-seed");
    fs::write(fonts.join("font.txt"), "font 1\n").unwrap();
    git(&fonts, &["add", "-A"]);
    git(&fonts, &["commit", "-q", "-m", "font"]);
    git(&fonts, &["push", "-q", "origin", "HEAD:main"]);
    git(
        &w.dir,
        &["clone", "-q", w.path("theme.git").to_str().unwrap(), "theme-seed"],
    );
    let theme = w.path("theme-seed");
    fs::write(theme.join("style.css"), "theme v1\n").unwrap();
    git_file(
        &theme,
        &["submodule", "add", "-q", w.path("fonts.git").to_str().unwrap(), "fonts"],
    );
    git(&theme, &["add", "-A"]);
    git(&theme, &["commit", "-q", "-m", "v1"]);
    git(&theme, &["push", "-q", "origin", "HEAD:main"]);
    git_file(
        &w.seed,
        &["submodule", "add", "-q", w.path("theme.git").to_str().unwrap(), "theme"],
    );
    git(&w.seed, &["commit", "-q", "-m", "theme v1"]);
    git(&w.seed, &["push", "-q", "origin", "main"]);

    let www = w.path("www/site");
    fs::create_dir_all(www.parent().unwrap()).unwrap();
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nsteps = [\"mkdir -p dist && cp theme/style.css theme/fonts/font.txt dist/\"]\n\
             env = {{ GIT_CONFIG_COUNT = \"1\", GIT_CONFIG_KEY_0 = \"protocol.file.allow\", GIT_CONFIG_VALUE_0 = \"always\" }}\n\
             [hooks.docs.publish]\nfrom = \"dist\"\nto = {}\n",
            toml_str(www.to_str().unwrap())
        ),
    );
    let build = |what: &str| {
        let out = w.cmd(&["run", "docs", "--wait"]);
        let last = w.status()["last"].clone();
        assert_eq!(
            last["result"],
            "succeeded",
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            w.log_text(&last)
        );
        last
    };
    build("the first build");
    assert_eq!(fs::read_to_string(www.join("style.css")).unwrap(), "theme v1\n");
    assert_eq!(fs::read_to_string(www.join("font.txt")).unwrap(), "font 1\n");

    // The theme moves on (its fonts too), and the site is bumped to it.
    fs::write(fonts.join("font.txt"), "font 2\n").unwrap();
    git(&fonts, &["commit", "-q", "-am", "font 2"]);
    git(&fonts, &["push", "-q", "origin", "HEAD:main"]);
    fs::write(theme.join("style.css"), "theme v2\n").unwrap();
    git_file(&theme, &["submodule", "update", "-q", "--remote", "fonts"]);
    git(&theme, &["commit", "-q", "-am", "v2"]);
    git(&theme, &["push", "-q", "origin", "HEAD:main"]);
    git_file(&w.seed, &["submodule", "update", "-q", "--remote", "theme"]);
    git(&w.seed, &["commit", "-q", "-am", "theme v2"]);
    git(&w.seed, &["push", "-q", "origin", "main"]);
    let bumped = build("the build of the bump");
    assert!(w
        .log_text(&bumped)
        .contains("$ git submodule update --init --recursive --force"));
    assert_eq!(fs::read_to_string(www.join("style.css")).unwrap(), "theme v2\n");
    assert_eq!(fs::read_to_string(www.join("font.txt")).unwrap(), "font 2\n");
}
