//! Where log lines go when syslog cannot be reached: the `[log] file`, else only warnings
//! and errors to stderr. A normal 202 must leave nothing in nginx's error log, where
//! fcgiwrap puts a CGI's stderr at `[error]` level.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::servers::{gitee_headers, Web, PUSH};
use crate::util::*;

/// What fcgiwrap handed to nginx from our stderr.
fn our_lines(error_log: &str) -> Vec<&str> {
    error_log
        .lines()
        .filter(|l| l.contains("FastCGI sent in stderr") || l.contains("deploy-hook["))
        .collect()
}

#[test]
fn nginx_202_without_syslog_or_file_leaves_no_line_in_the_error_log() {
    requires!(Root, WwwData, Nginx);
    let w = World::new("log-quiet");
    w.config("gitee", "steps = [\"true\"]");
    let web = Web::nginx(&w);
    let reply = web.post("/hooks/docs", &gitee_headers(SECRET), PUSH);
    assert_eq!(reply.status, 202, "{reply:?}\n{}", web.error_log_text());
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    let log = web.error_log_text();
    assert!(our_lines(&log).is_empty(), "{log}");
    // the worker's stderr (worker.log) got no info line either
    let worker = fs::read_to_string(w.hook_dir().join("worker.log")).unwrap_or_default();
    assert!(!worker.contains("build end"), "{worker}");

    // a failing build is a warning: that one does reach the error log, without the
    // delivery line
    w.config("gitee", "mode = \"sync\"\nsteps = [\"exit 3\"]");
    let reply = web.post("/hooks/docs", &gitee_headers(SECRET), PUSH);
    assert_eq!(reply.status, 500, "{reply:?}");
    let log = web.error_log_text();
    assert!(
        our_lines(&log)
            .iter()
            .any(|l| l.contains("build end") && l.contains("result=failed")),
        "{log}"
    );
    assert!(!our_lines(&log).iter().any(|l| l.contains("delivery hook=")), "{log}");
}

#[test]
fn nginx_with_a_log_file_writes_every_line_there_and_survives_rotation() {
    requires!(Root, WwwData, Nginx);
    let w = World::new("log-file");
    w.config("gitee", "steps = [\"true\"]");
    let dir = w.path("logs");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("deploy-hook.log");
    // syslog configured but not reachable: the file takes the lines
    let text = fs::read_to_string(&w.config).unwrap().replace(
        "syslog = \"\"\n",
        &format!(
            "syslog = {:?}\nfile = {:?}\n",
            w.path("no-syslog.sock").to_str().unwrap(),
            file.to_str().unwrap()
        ),
    );
    fs::write(&w.config, text).unwrap();
    let web = Web::nginx(&w);
    assert!(Command::new("chown")
        .args(["www-data:www-data"])
        .arg(&dir)
        .status()
        .unwrap()
        .success());

    let reply = web.post("/hooks/docs", &gitee_headers(SECRET), PUSH);
    assert_eq!(reply.status, 202, "{reply:?}\n{}", web.error_log_text());
    w.wait_idle();
    let lines = fs::read_to_string(&file).unwrap();
    assert!(
        lines.contains("delivery hook=docs") && lines.contains("outcome=queued"),
        "{lines}"
    );
    wait_for("the build end line", std::time::Duration::from_secs(30), || {
        fs::read_to_string(&file).unwrap().contains("build end hook=docs")
    });
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o640);
    let log = web.error_log_text();
    assert!(our_lines(&log).is_empty(), "{log}");

    // logrotate moves the file away; the next line creates a new one, no signal needed
    fs::rename(&file, dir.join("deploy-hook.log.1")).unwrap();
    let reply = web.post("/hooks/docs", &gitee_headers(SECRET), PUSH);
    assert_eq!(reply.status, 202, "{reply:?}");
    w.wait_idle();
    let fresh = fs::read_to_string(&file).unwrap();
    assert!(fresh.contains("delivery hook=docs"), "{fresh}");
    assert!(!fs::read_to_string(dir.join("deploy-hook.log.1"))
        .unwrap()
        .contains(&reply.json()["delivery"].as_str().unwrap().to_string()));
}

#[test]
fn a_rejected_delivery_is_logged_with_the_event_and_delivery_id_it_was_sent_with() {
    let w = World::new("log-rejected-ids");
    w.config("github", "steps = [\"true\"]");
    let body = br#"{"ref":"refs/heads/main"}"#;
    let wrong = github_sig("a-wrong-secret", body);
    let r = w
        .cgi()
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("X-Hub-Signature-256", &wrong)
        .body(body)
        .run();
    assert_eq!(r.status, 403, "{} {}", r.json, r.stderr);
    assert!(
        r.stderr
            .contains("event=push id=72d3162e-cc78-11e3-81ab-4c9367dc0958 status=403"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(&wrong) && !r.stderr.contains(&wrong[7..]),
        "{}",
        r.stderr
    );
    // No signature at all (401): the same, and a delivery id that is not a sane token is
    // left out rather than logged.
    let r = w
        .cgi()
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "x\u{1b}[2J y")
        .body(body)
        .run();
    assert_eq!(r.status, 401, "{} {}", r.json, r.stderr);
    assert!(r.stderr.contains("event=push id=\"\" status=401"), "{}", r.stderr);
}

#[test]
fn a_delivery_to_a_hook_that_is_not_there_is_logged_with_the_event_and_id_it_was_sent_with() {
    let w = World::new("log-unknown-ids");
    w.config("github", "steps = [\"true\"]");
    let body = br#"{"ref":"refs/heads/main"}"#;
    // A forge's webhook pointed at /blog, a hook this server does not have.
    let r = w
        .cgi()
        .env("PATH_INFO", "/blog")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("X-Hub-Signature-256", github_sig("whatever", body))
        .body(body)
        .run();
    assert_eq!(r.status, 404, "{} {}", r.json, r.stderr);
    assert!(
        r.stderr
            .contains("event=push id=72d3162e-cc78-11e3-81ab-4c9367dc0958 status=404"),
        "{}",
        r.stderr
    );
    // Gitee's headers name theirs too.
    let r = w
        .cgi()
        .env("PATH_INFO", "/blog")
        .header("X-Gitee-Event", "Push Hook")
        .body(body)
        .run();
    assert_eq!(r.status, 404, "{} {}", r.json, r.stderr);
    assert!(r.stderr.contains("event=\"Push Hook\""), "{}", r.stderr);
}
