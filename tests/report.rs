//! Where the author looks: commit statuses, the build page and chat messages, against the
//! doubles of the forge APIs and robots (tests/doubles.rs), with the real binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::doubles::Doubles;
use crate::util::*;

const GITHUB_TOKEN: &str = "ghp_doubletoken0123456789";

/// Writes `value` to `name` in the world's folder with `mode`; returns the path.
fn secret_file(w: &World, name: &str, value: &str, mode: u32) -> PathBuf {
    let p = w.path(name);
    fs::write(&p, format!("{value}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn check_text(w: &World) -> String {
    let out = w.cmd(&["check", "--json"]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `check --json`'s items about the report, the page and the robots, one per line:
/// `LEVEL ITEM: DETAIL (fix: FIX)`.
fn report_lines(text: &str) -> String {
    let items: Vec<serde_json::Value> = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    items
        .iter()
        .filter(|i| {
            let item = i["item"].as_str().unwrap_or("");
            ["docs: report", "docs: page", "docs: notify"]
                .iter()
                .any(|p| item.starts_with(p))
        })
        .map(|i| format!("{} {}: {} (fix: {})", i["level"], i["item"], i["detail"], i["fix"]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn report_table(api: &str, repo: &str, token: &Path) -> String {
    format!(
        "[hooks.docs.report]\napi = {api:?}\nrepo = {repo:?}\ntoken_file = {:?}\n",
        token.to_str().unwrap()
    )
}

#[test]
fn check_reports_the_token_files_mode_and_whether_it_may_write_statuses() {
    requires!(Python);
    let w = World::new("report-check");
    let d = Doubles::start(
        &w.path("doubles"),
        &json!({"github": {"token": GITHUB_TOKEN, "repo": "acme/docs", "scopes": "repo:status"}}),
    );
    let token = secret_file(&w, "docs.token", GITHUB_TOKEN, 0o644);
    w.config("github", &report_table(&d.url("/github"), "acme/docs", &token));
    let text = check_text(&w);
    let lines = report_lines(&text);
    assert!(
        lines.contains("\"fail\"") && lines.contains("is readable by everyone (mode 644)"),
        "{text}"
    );
    assert!(text.contains(&format!("chmod 600 {}", token.display())), "{text}");
    assert!(lines.contains("may write commit statuses to acme/docs"), "{text}");
    assert!(!text.contains(GITHUB_TOKEN), "check never prints the token:\n{text}");

    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    let lines = report_lines(&check_text(&w));
    assert!(
        lines.contains("readable by") && lines.contains("only (mode 600)"),
        "{lines}"
    );
    assert!(!lines.contains("\"fail\""), "{lines}");

    // a token the forge refuses, a repo it cannot see, an API that does not answer
    fs::write(&token, "ghp_wrong\n").unwrap();
    let lines = report_lines(&check_text(&w));
    assert!(
        lines.contains("\"fail\"") && lines.contains("refuses the token"),
        "{lines}"
    );
    fs::write(&token, format!("{GITHUB_TOKEN}\n")).unwrap();
    w.config("github", &report_table(&d.url("/github"), "acme/other", &token));
    let lines = report_lines(&check_text(&w));
    assert!(
        lines.contains("\"fail\"") && lines.contains("cannot see acme/other"),
        "{lines}"
    );
    let hole = format!("http://127.0.0.1:{}/github", d.blackhole);
    w.config("github", &report_table(&hole, "acme/docs", &token));
    let lines = report_lines(&check_text(&w));
    assert!(lines.contains("\"skip\"") && lines.contains("not checked"), "{lines}");
    assert!(d.to("github").iter().all(|r| r["method"] == "GET"), "check only reads");
}

#[test]
fn check_reports_robot_url_files_and_the_page_folder() {
    requires!(Python);
    let w = World::new("report-check-robots");
    let url = secret_file(
        &w,
        "docs.dingtalk",
        "http://10.1.2.3/robot/send?access_token=tok123",
        0o600,
    );
    let secret = secret_file(&w, "docs.dingtalk-secret", "not-a-sec-secret", 0o640);
    let slack = secret_file(&w, "docs.slack", "https://hooks.example.com/x/y?key=zzz9", 0o600);
    let empty = secret_file(&w, "docs.empty", "", 0o600);
    w.config(
        "gitee",
        &format!(
            "[hooks.docs.page]\ndir = {page:?}\nurl = \"https://docs.example.com/_builds/\"\n\
             [[hooks.docs.notify]]\nkind = \"dingtalk\"\nurl_file = {url:?}\nsecret_file = {secret:?}\n\
             [[hooks.docs.notify]]\nkind = \"slack\"\nurl_file = {slack:?}\n\
             [[hooks.docs.notify]]\nkind = \"wecom\"\nurl_file = {empty:?}\n",
            page = w.path("builds-page").to_str().unwrap(),
            url = url.to_str().unwrap(),
            secret = secret.to_str().unwrap(),
            slack = slack.to_str().unwrap(),
            empty = empty.to_str().unwrap(),
        ),
    );
    let text = check_text(&w);
    let lines = report_lines(&text);
    assert!(
        lines.contains("must be https://"),
        "an http URL to another machine fails: {text}"
    );
    assert!(lines.contains("readable by its group (mode 640)"), "{lines}");
    assert!(lines.contains("does not hold a DingTalk signing secret"), "{lines}");
    assert!(
        lines.contains("does not look like a slack robot's URL") && lines.contains("key=***"),
        "{lines}"
    );
    assert!(lines.contains("is empty"), "{lines}");
    assert!(lines.contains("page dir") && lines.contains("builds-page"), "{lines}");
    for secret in ["tok123", "zzz9", "not-a-sec-secret"] {
        assert!(!text.contains(secret), "check printed {secret}:\n{text}");
    }
}
