//! The subcommands: check, sign, run, status, and the command line itself.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::util::*;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn check_passes_on_a_good_setup() {
    requires!(Root, WwwData);
    // Set up as the README says (www-data owns the checkout and the state folder); run as
    // root, check becomes www-data and checks what the web server's deliveries will meet.
    let w = crate::check::www_data_world("check-ok");
    w.config("gitee", "steps = [[\"git\", \"--version\"], \"true\"]");
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("everything holds"), "{t}");
    assert!(t.contains("is a git checkout") && t.contains("remote origin"), "{t}");
    assert!(!t.contains(SECRET));
}

#[test]
fn check_names_each_problem_with_its_fix() {
    let w = World::new("check-bad");
    type Breaker = Box<dyn Fn(&World)>;
    let cases: Vec<(&str, Breaker, &str)> = vec![
        (
            "repo missing",
            Box::new(|w: &World| fs::remove_dir_all(&w.repo).unwrap()),
            "does not exist",
        ),
        (
            "not a checkout",
            Box::new(|w: &World| {
                fs::remove_dir_all(&w.repo).unwrap();
                fs::create_dir(&w.repo).unwrap();
            }),
            "is not a git checkout",
        ),
        (
            "secret readable by everyone",
            Box::new(|w: &World| fs::set_permissions(&w.secret_file, fs::Permissions::from_mode(0o644)).unwrap()),
            "chmod 600",
        ),
        (
            "secret empty",
            Box::new(|w: &World| fs::write(&w.secret_file, "\n").unwrap()),
            "is empty",
        ),
        (
            "secret missing",
            Box::new(|w: &World| fs::remove_file(&w.secret_file).unwrap()),
            "write the secret",
        ),
        (
            "no remote",
            Box::new(|w: &World| {
                git(&w.repo, &["remote", "remove", "origin"]);
            }),
            "no remote named origin",
        ),
    ];
    for (what, breaker, expect) in cases {
        check_names(what, breaker, expect);
    }
    // a step program not on the hook's path
    w.config(
        "gitee",
        "path = \"/nonexistent/bin:/usr/bin:/bin\"\nsteps = [[\"pnpm-not-here\", \"build\"]]",
    );
    let t = text(&w.cmd(&["check"]));
    assert!(
        t.contains("pnpm-not-here is not found on path /nonexistent/bin:/usr/bin:/bin"),
        "{t}"
    );
    // a broken config is named with its line
    fs::write(
        &w.config,
        "state_dir = \"/x\"\n[hooks.docs]\nprovider = \"gitee\"\nsecret = \"s\"\nrepo = \"/r\"\nbranhc = \"x\"\n",
    )
    .unwrap();
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("config.toml:6") && t.contains("branhc"), "{t}");
}

/// A fresh world broken by `breaker`: check fails and names `expect`, with a fix.
fn check_names(what: &str, breaker: impl Fn(&World), expect: &str) {
    let w = World::new("check-case");
    w.config("gitee", "steps = [\"true\"]");
    breaker(&w);
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{what}: {t}");
    assert!(
        t.contains("FAIL") && t.contains(expect),
        "{what}: expected {expect:?} in\n{t}"
    );
    assert!(t.contains("fix:"), "{what}: {t}");
}

#[test]
fn check_names_a_checkout_owned_by_another_user() {
    requires!(Root);
    // Root's hook, nobody's checkout: root would run git and the steps in it, so check, as
    // root, names the checkout as what root would refuse (and runs no git there).
    check_names(
        "another user's checkout",
        |w: &World| {
            let status = Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(&w.repo)
                .status()
                .unwrap();
            assert!(status.success());
        },
        "is not root's alone",
    );
}

#[test]
fn sign_output_makes_a_delivery_that_verifies() {
    for (provider, extra) in PROVIDER_MODES {
        let w = World::new("sign");
        w.config(provider, &format!("mode = \"sync\"\nsteps = [\"true\"]\n{extra}"));
        let body = w.path("body.json");
        fs::write(&body, br#"{"ref":"refs/heads/main","after":"abc"}"#).unwrap();
        let out = w.cmd(&["sign", "docs", "--body", body.to_str().unwrap()]);
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert!(t.contains("export REQUEST_METHOD=POST") && t.contains("-H "), "{t}");
        assert!(!t.contains(SECRET), "sign printed the secret: {t}");
        // eval the env form in a shell and run the real binary with the body on stdin
        let (r, env_lines) = deliver_signed(&w, &body);
        assert_eq!(
            (r.status, r.word()),
            (200, "succeeded"),
            "{provider} {extra}: {} / {env_lines}",
            r.json
        );
    }
}

#[test]
fn sign_uses_the_given_timestamp() {
    let w = World::new("sign-ts");
    fs::write(&w.secret_file, "SECabc123\n").unwrap();
    w.config("gitee", "");
    let out = w.cmd(&["sign", "docs", "--timestamp", "1700000000000", "--format", "curl"]);
    let t = text(&out);
    assert!(
        t.contains("X-Gitee-Token: N5P09a4+p1AMJIJWnIvQd2Yxw9+fu/oEBnPrjCcsLXk="),
        "{t}"
    );
    assert!(t.contains("X-Gitee-Timestamp: 1700000000000"), "{t}");
    assert_eq!(w.cmd(&["sign", "docs", "--timestamp", "soon"]).status.code(), Some(2));
}

#[test]
fn run_builds_by_hand_through_the_same_queue() {
    let w = World::new("run");
    w.config("gitee", "steps = [\"echo $DEPLOY_HOOK_EVENT > event.txt\"]");
    let head = w.push("index.md", "manual\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("succeeded") && t.contains(&head), "{t}");
    assert_eq!(fs::read_to_string(w.repo.join("event.txt")).unwrap(), "manual\n");

    let out = w.cmd(&["run", "docs"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = w.wait_idle();
    assert_eq!(w.history().len(), 2, "{s}");

    w.config("gitee", "steps = [\"false\"]");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "a failed build fails run --wait");
    assert!(text(&out).contains("failed step: false"));
}

#[test]
fn status_shows_idle_failed_and_json() {
    let w = World::new("status");
    w.config("gitee", "mode = \"sync\"\nsteps = [\"false\"]");
    let t = text(&w.cmd(&["status"]));
    assert!(t.contains("idle") && t.contains("no build yet"), "{t}");
    w.gitee_push().run();
    let t = text(&w.cmd(&["status", "docs"]));
    assert!(t.contains("failed") && t.contains("failed: false"), "{t}");
    let out = w.cmd(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["docs"]["last"]["result"], "failed");
    assert_eq!(v["docs"]["state"], "idle");
    assert_eq!(v["docs"]["pending"], false);
    let one: serde_json::Value = serde_json::from_slice(&w.cmd(&["status", "docs", "--json"]).stdout).unwrap();
    assert_eq!(one["hook"], "docs");
}

#[test]
fn the_command_line_helps() {
    let w = World::new("usage");
    w.config("gitee", "");
    let out = w.cmd(&["--version"]);
    assert!(text(&out).starts_with("deploy-hook "));
    let out = w.cmd(&["--help"]);
    let t = text(&out);
    assert!(out.status.success() && t.contains("Usage: deploy-hook"), "{t}");
    for sub in ["check", "run", "status", "rollback", "resume", "sign"] {
        assert!(t.contains(&format!("\n  {sub} ")), "--help lists {sub}: {t}");
    }
    assert!(!t.contains("__worker"), "the worker is hidden: {t}");
    let out = w.cmd(&[]);
    assert_eq!(out.status.code(), Some(2), "no arguments and no REQUEST_METHOD");
    let out = w.cmd(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("unrecognized subcommand 'frobnicate'"),
        "{}",
        text(&out)
    );
    // A typo gets a suggestion, and each subcommand has its own help.
    let out = w.cmd(&["stauts"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("similar subcommand exists: 'status'"),
        "{}",
        text(&out)
    );
    let out = w.cmd(&["run", "--help"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("deploy-hook run") && t.contains("--wait") && t.contains("--force"),
        "{t}"
    );
    assert!(!t.contains("--follow"), "run's help is run's alone: {t}");
    let out = w.cmd(&["run", "docs", "--wiat"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("--wait"),
        "a similar flag is suggested: {}",
        text(&out)
    );
    let out = w.cmd(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("<HOOK>"), "{}", text(&out));
    let out = w.cmd(&["status", "docs", "--json", "--follow"]);
    assert_eq!(out.status.code(), Some(2), "--json and --follow do not go together");
    let out = w.cmd(&["run", "blog"]);
    assert!(text(&out).contains("hooks: docs"), "{}", text(&out));
    let out = w.cmd(&["status", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let out = w.cmd(&["check", "--config", w.path("nope.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("cannot read the config file"));
}

#[test]
fn run_asks_for_a_build_as_a_delivery_does_busy_or_superseding() {
    let w = World::new("run-on-busy");
    let (record, gate) = (w.path("record"), w.path("gate"));
    let gated = toml_str(&gated_step(&record, &gate));
    w.config("gitee", &format!("on_busy = \"reject\"\nsteps = [{gated}]"));
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the build to start", std::time::Duration::from_secs(30), || {
        record.exists()
    });
    for args in [&["run", "docs"][..], &["run", "docs", "--wait"]] {
        let out = w.cmd(args);
        assert_eq!(out.status.code(), Some(75), "{args:?}: {}", text(&out));
        assert!(
            !w.hook_dir().join("pending").exists(),
            "{args:?}: a refused run was queued"
        );
    }
    fs::write(&gate, "").unwrap();
    w.wait_idle();

    // supersede: the running build is stopped and the newest head is built next
    fs::remove_file(&gate).unwrap();
    w.config("gitee", &format!("on_busy = \"supersede\"\nsteps = [{gated}]"));
    let head = w.push("index.md", "newest\n");
    let first = w.gitee_push().run();
    assert_eq!(first.status, 202);
    wait_for("the second build to start", std::time::Duration::from_secs(30), || {
        fs::read_to_string(&record).unwrap_or_default().matches("start").count() == 2
    });
    let out = w.cmd(&["run", "docs"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("a build is running"), "{}", text(&out));
    wait_for("the newest build to start", std::time::Duration::from_secs(30), || {
        fs::read_to_string(&record).unwrap_or_default().matches("start").count() == 3
    });
    fs::write(&gate, "").unwrap();
    let s = w.wait_idle();
    let results: Vec<String> = w.history().iter().map(|b| b["result"].to_string()).collect();
    assert_eq!(results[..2], ["\"succeeded\"", "\"superseded\""], "{s}");
    assert_eq!(s["last"]["commit"], head.as_str());
}
