//! Commands run as root on a server where www-data owns the hook: they become www-data
//! first, so nothing they leave is root's and every later delivery still works. And what
//! `status` says about how builds ended and about a rollback.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::check::{as_www_data, text, www_data_world};
use crate::util::*;

/// Every file under `paths` owned by root, as `find -user root` lists them.
fn root_owned(paths: &[&Path]) -> Vec<String> {
    let out = Command::new("find")
        .args(paths)
        .args(["-user", "root"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A signed GitLab push delivered to the real binary as the web server runs it: as
/// www-data, from `/`, with the CGI environment.
pub fn delivery_as_www_data(w: &World) -> Reply {
    let body = br#"{"ref":"refs/heads/main"}"#;
    let mut child = Command::new("/usr/sbin/runuser")
        .args(["-u", "www-data", "--", BIN])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("REQUEST_METHOD", "POST")
        .env("PATH_INFO", "/docs")
        .env("CONTENT_TYPE", "application/json")
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_X_GITLAB_EVENT", "Push Hook")
        .env("HTTP_X_GITLAB_TOKEN", SECRET)
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    parse_reply(&out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn publishing_www_data_world(name: &str) -> World {
    let w = www_data_world(name);
    w.config(
        "gitlab",
        &format!(
            "steps = [[\"sh\", \"-c\", \"mkdir -p out && echo $DEPLOY_HOOK_COMMIT > out/index.html\"]]\n[hooks.docs.publish]\nfrom = \"out\"\nto = {:?}\n",
            w.path("www/site").to_str().unwrap()
        ),
    );
    w
}

#[test]
fn run_rollback_and_status_as_root_leave_nothing_roots_and_deliveries_still_build() {
    requires!(Root, WwwData);
    let w = publishing_www_data_world("root-safe");
    let www = w.path("www");
    let site = www.join("site");
    for i in 0..2 {
        w.push("index.md", &format!("build {i}\n"));
        let out = w.cmd(&["run", "docs", "--wait"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            root_owned(&[&w.state, &www]),
            Vec::<String>::new(),
            "after run --wait {i}"
        );
    }
    let live = fs::read_link(&site).unwrap();
    let out = w.cmd(&["rollback", "docs"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(fs::read_link(&site).unwrap(), live, "rollback switched the site");
    assert_eq!(root_owned(&[&w.state, &www]), Vec::<String>::new(), "after rollback");
    // The rollback holds the site; resume, as root too, lifts it (and switches back).
    let out = w.cmd(&["resume", "docs"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read_link(&site).unwrap(),
        live,
        "resume switched to the newest build"
    );
    assert_eq!(root_owned(&[&w.state, &www]), Vec::<String>::new(), "after resume");

    // status and status --follow take the build lock to see whether a build runs: on a
    // state folder that has none yet, they must not create a root-owned one.
    fs::remove_file(w.hook_dir().join("build.lock")).unwrap();
    for args in [&["status", "docs"][..], &["status"], &["status", "docs", "--follow"]] {
        w.cmd(args);
        assert_eq!(root_owned(&[&w.state, &www]), Vec::<String>::new(), "after {args:?}");
    }

    // A build started by root without --wait runs in a worker that is www-data too.
    let head = w.push("index.md", "async from root\n");
    let out = w.cmd(&["run", "docs"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = w.wait_idle();
    assert_eq!(
        (s["last"]["result"].as_str(), s["last"]["commit"].as_str()),
        (Some("succeeded"), Some(head.as_str()))
    );
    assert_eq!(root_owned(&[&w.state, &www]), Vec::<String>::new(), "after run");

    // The web server's deliveries still work: 202, and the push is built and published.
    let head = w.push("index.md", "after root\n");
    let r = delivery_as_www_data(&w);
    assert_eq!((r.status, r.word()), (202, "queued"), "{} {}", r.json, r.stderr);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{}", w.log_text(&s["last"]));
    assert_eq!(fs::read_to_string(site.join("index.html")).unwrap().trim(), head);
    assert_eq!(
        root_owned(&[&w.state, &www]),
        Vec::<String>::new(),
        "after the delivery"
    );
}

#[test]
fn status_follow_exits_0_only_for_a_build_that_succeeded() {
    requires!(Root, WwwData);
    let w = www_data_world("follow-exit");
    w.config("gitlab", "steps = [\"test -e ok\"]");
    let follow = |w: &World| {
        let out = as_www_data(w, &["status", "docs", "--follow"]);
        (out.status.code(), text(&out))
    };
    // no build yet
    let (code, t) = follow(&w);
    assert_eq!(code, Some(1), "{t}");
    // the last build failed, nothing runs
    let out = as_www_data(&w, &["run", "docs", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (code, t) = follow(&w);
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("failed"), "{t}");
    // the last build succeeded
    w.push("ok", "");
    let out = as_www_data(&w, &["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let (code, t) = follow(&w);
    assert_eq!(code, Some(0), "{t}");
    assert!(t.contains("succeeded"), "{t}");
}

fn record(id: &str, result: &str, step: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "delivery": "d", "started": "2026-11-28T01:00:00Z",
        "finished": "2026-11-28T01:00:05Z", "result": result, "commit": "1dd2afcb671dd2afcb67",
        "failed_step": step, "log": "/x.log", "duration_secs": 5.0
    })
}

#[test]
fn status_says_how_a_build_ended_and_shows_a_rollback() {
    let w = World::new("status-text");
    w.config("gitlab", "steps = [\"true\"]");
    fs::create_dir_all(w.hook_dir()).unwrap();
    let history = vec![
        record("20261128-010004-000", "superseded", "pnpm docs:build"),
        record("20261128-010003-000", "interrupted", "pnpm install"),
        record("20261128-010002-000", "timed_out", "pnpm docs:build"),
        record("20261128-010001-000", "failed", "pnpm install"),
    ];
    let status = serde_json::json!({
        "state": "idle", "pending": false, "last": history[0].clone(), "history": history,
        "live_release": "20261128-005900-000-1dd2afc",
        "last_rollback": {"from": "20261128-010001-000-9f8e7d6", "to": "20261128-005900-000-1dd2afc", "at": "2026-11-28T01:00:06Z"}
    });
    fs::write(w.hook_dir().join("status.json"), status.to_string()).unwrap();
    let out = w.cmd(&["status", "docs"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let line = |id: &str| {
        let id = format!("20261128-{id}-000");
        t.lines()
            .find(|l| l.trim_start().starts_with(&id))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("010004").contains("superseded during: pnpm docs:build"), "{t}");
    assert!(line("010003").contains("interrupted at: pnpm install"), "{t}");
    assert!(line("010002").contains("timed out: pnpm docs:build"), "{t}");
    assert!(line("010001").contains("failed: pnpm install"), "{t}");
    assert!(!t.contains("failed: pnpm docs:build"), "{t}");
    assert!(
        t.contains("rollback: to 20261128-005900-000-1dd2afc from 20261128-010001-000-9f8e7d6 at 2026-11-28T01:00:06Z"),
        "{t}"
    );
}

/// `sh -c SCRIPT` as www-data, from `/`: what a build step (or anything www-data runs) can do.
fn as_www_data_sh(script: &str) {
    let out = Command::new("/usr/sbin/runuser")
        .args(["-u", "www-data", "--", "sh", "-c", script])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(out.status.success(), "as www-data: {script}: {}", text(&out));
}

#[test]
fn a_state_folder_www_data_swapped_for_a_symlink_to_roots_folder_never_makes_a_root_command_root() {
    requires!(Root, WwwData);
    let w = www_data_world("root-symlink");
    // Each build records who ran its step.
    let who = w.path("who-built");
    w.config(
        "gitlab",
        &format!(
            "steps = [[\"sh\", \"-c\", \"id -u >> {} && mkdir -p out && echo $DEPLOY_HOOK_COMMIT > out/index.html\"]]\n[hooks.docs.publish]\nfrom = \"out\"\nto = {:?}\n",
            who.display(),
            w.path("www/site").to_str().unwrap()
        ),
    );
    let www = w.path("www");
    let site = www.join("site");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(&who).unwrap(),
        "33\n",
        "root's run built as www-data"
    );
    let live = fs::read_link(&site).unwrap();

    // A root-owned folder anyone may write (as /tmp is), and a build step as www-data: it
    // puts a HOME there whose .gitconfig trusts every repository, and swaps the hook's
    // state folder (www-data's, in www-data's state dir) for a symlink to it.
    let evil = w.path("evil");
    fs::create_dir(&evil).unwrap();
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o1777)).unwrap();
    let hook = w.hook_dir();
    as_www_data_sh(&format!(
        "mkdir {evil}/home && printf '[safe]\\n\\tdirectory = *\\n' > {evil}/home/.gitconfig && mv {hook} {hook}.old && ln -s {evil} {hook}",
        evil = evil.display(),
        hook = hook.display()
    ));
    fs::remove_file(&who).unwrap();
    w.push("index.md", "pushed after the swap\n");

    // The admin runs the README's commands as root: each refuses, says why and what to do,
    // and no step runs (before the fix, this one ran the step as uid 0).
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(
        !who.exists(),
        "a step ran, as uid {:?}: {}",
        fs::read_to_string(&who).unwrap_or_default().trim(),
        text(&out)
    );
    for args in [
        &["run", "docs", "--wait"][..],
        &["run", "docs"],
        &["rollback", "docs"],
        &["resume", "docs"],
        &["status", "docs"],
        &["status"],
        &["status", "docs", "--follow"],
        &["__worker", "docs"],
    ] {
        let out = w.cmd(args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(77), "{args:?} as root: {t}");
        assert!(
            t.contains(&format!("{} is a symbolic link", hook.display())),
            "{args:?}: {t}"
        );
        assert!(t.contains(&format!("rm {}", hook.display())), "{args:?}: {t}");
    }
    // check reports it (as www-data, the state dir's owner) and says what to do.
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("{} is a symbolic link", hook.display())), "{t}");

    // Nothing was built, as root or at all; nothing root's appeared; the site is unchanged.
    assert!(!who.exists(), "a step ran: {:?}", fs::read_to_string(&who));
    assert_eq!(root_owned(&[&w.state, &www]), Vec::<String>::new());
    let in_evil = Command::new("find")
        .arg(&evil)
        .args(["-mindepth", "1", "-user", "root"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&in_evil.stdout),
        "",
        "root wrote into {}",
        evil.display()
    );
    assert_eq!(fs::read_link(&site).unwrap(), live);

    // The printed fix (remove the symlink; here the real folder goes back too) makes root's
    // run build, as www-data, again.
    fs::remove_file(&hook).unwrap();
    fs::rename(hook.with_extension("old"), &hook).unwrap();
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&who).unwrap(), "33\n");
    assert_eq!(root_owned(&[&w.state, &www]), Vec::<String>::new());
}

/// A hook that is root's throughout, whose step records who ran it, publishing to `www`.
fn root_world_recording(name: &str) -> (World, std::path::PathBuf) {
    let w = World::new(name);
    let who = w.path("who-built");
    w.config(
        "gitlab",
        &format!(
            "steps = [[\"sh\", \"-c\", \"id -u >> {} && mkdir -p out && echo $DEPLOY_HOOK_COMMIT > out/index.html\"]]\n[hooks.docs.publish]\nfrom = \"out\"\nto = {:?}\n",
            who.display(),
            w.path("www/site").to_str().unwrap()
        ),
    );
    fs::create_dir_all(w.path("www")).unwrap();
    (w, who)
}

#[test]
fn staying_root_needs_the_checkout_and_the_publish_folder_to_be_roots_alone() {
    requires!(Root, WwwData);
    let (w, who) = root_world_recording("root-alone");
    // Everything root's: a command started as root stays root, and builds.
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&who).unwrap(), "0\n");

    // www-data can change the checkout (its .git/config, package.json): a root run would
    // run what www-data wrote. Every root-run command refuses, and check says so.
    let www = w.path("www");
    let site = www.join("site");
    for (what, named, path, give) in [
        ("repo", w.repo.clone(), w.repo.clone(), "chown"),
        ("publish.to", site.clone(), www.clone(), "chown"),
        ("repo", w.repo.clone(), w.repo.clone(), "group-write"),
    ] {
        match give {
            "chown" => crate::check::chown("www-data:www-data", true, &path),
            _ => {
                let f = path.join("index.md");
                crate::check::chown("root:www-data", false, &f);
                fs::set_permissions(&f, fs::Permissions::from_mode(0o664)).unwrap();
            }
        }
        fs::remove_file(&who).ok();
        w.push("index.md", &format!("after {what} changed hands\n"));
        let out = w.cmd(&["run", "docs", "--wait"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(77), "{what} ({give}): {t}");
        assert!(
            t.contains(&format!("its {what} {} is not root's alone", named.display())),
            "{t}"
        );
        assert!(
            t.contains(&format!(
                "fix: give the hook to the web server's user, so that commands started as root run as it: chown -R www-data: {} && chown -R www-data: {} {} {}",
                w.hook_dir().display(),
                w.repo.display(),
                site.display(),
                www.join("site.releases").display()
            )),
            "{t}"
        );
        assert!(!who.exists(), "a step ran as root: {t}");
        // The same refusal for a delivery a web server hands over as root, and in check.
        let r = w
            .cgi()
            .header("X-Gitlab-Event", "Push Hook")
            .header("X-Gitlab-Token", SECRET)
            .body(br#"{"ref":"refs/heads/main"}"#)
            .run();
        assert_eq!(r.status, 500, "{} {}", r.json, r.stderr);
        assert!(r.stderr.contains("is not root's alone"), "{}", r.stderr);
        let out = w.cmd(&["check"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(
            t.contains("a command started as root would refuse to run") && t.contains("is not root's alone"),
            "{t}"
        );
        assert!(!who.exists(), "a step ran as root: {t}");
        // Made root's alone again, the run builds (as root).
        crate::check::chown("root:root", true, &path);
        fs::set_permissions(path.join("index.md"), fs::Permissions::from_mode(0o644)).ok();
        let out = w.cmd(&["run", "docs", "--wait"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(fs::read_to_string(&who).unwrap(), "0\n");
    }

    // The other way out the fix names: the hook becomes www-data's, and a root run builds
    // as www-data.
    w.trust_remote_in_build_home();
    fs::write(&who, "").unwrap();
    crate::check::chown("www-data:www-data", false, &who);
    for p in [&w.hook_dir(), &w.repo, &www] {
        crate::check::chown("www-data:www-data", true, p);
    }
    crate::check::chown("www-data:www-data", false, &w.state);
    w.push("index.md", "given to www-data\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&who).unwrap(), "33\n");
}

#[test]
fn a_delivery_handed_over_as_root_builds_as_the_hooks_owner() {
    requires!(Root, WwwData);
    // fcgiwrap misconfigured to run as root, on a hook that is www-data's.
    let w = www_data_world("root-cgi");
    let who = w.path("who-built");
    fs::write(&who, "").unwrap();
    crate::check::chown("www-data:www-data", false, &who);
    w.config(
        "gitlab",
        &format!(
            "steps = [[\"sh\", \"-c\", \"id -u >> {} && mkdir -p out && echo $DEPLOY_HOOK_COMMIT > out/index.html\"]]\n[hooks.docs.publish]\nfrom = \"out\"\nto = {:?}\n",
            who.display(),
            w.path("www/site").to_str().unwrap()
        ),
    );
    let head = w.push("index.md", "delivered to a root CGI\n");
    let r = w
        .cgi()
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", SECRET)
        .body(br#"{"ref":"refs/heads/main"}"#)
        .run();
    assert_eq!((r.status, r.word()), (202, "queued"), "{} {}", r.json, r.stderr);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{s}\n{}", w.log_text(&s["last"]));
    assert_eq!(fs::read_to_string(&who).unwrap(), "33\n", "built as www-data");
    assert_eq!(fs::read_to_string(w.path("www/site/index.html")).unwrap().trim(), head);
    assert_eq!(root_owned(&[&w.state, &w.path("www")]), Vec::<String>::new());
    // The web server's own deliveries still work after it.
    w.push("index.md", "delivered by www-data\n");
    let r = delivery_as_www_data(&w);
    assert_eq!((r.status, r.word()), (202, "queued"), "{} {}", r.json, r.stderr);
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
}
