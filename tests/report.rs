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
fn check_masks_what_the_api_answers_and_names_a_redirect() {
    requires!(Python);
    let w = World::new("report-check-echo");
    let d = Doubles::start(&w.path("doubles"), &json!({}));
    let token = secret_file(&w, "docs.token", "gtea_echoed_token_4711", 0o600);
    // An API that echoes the refused token in its 401 answer.
    w.config("gitea", &report_table(&d.url("/echo401/api/v1"), "acme/docs", &token));
    let text = check_text(&w);
    let lines = report_lines(&text);
    assert!(
        lines.contains("\"fail\"") && lines.contains("invalid credentials: token ***"),
        "{text}"
    );
    assert!(
        !text.contains("gtea_echoed_token_4711"),
        "check printed the token:\n{text}"
    );
    // An API URL that redirects (http to https, a moved instance): not followed, said so.
    w.config("gitea", &report_table(&d.url("/redirect/api/v1"), "acme/docs", &token));
    let lines = report_lines(&check_text(&w));
    assert!(
        lines.contains("\"skip\"")
            && lines.contains(
                "answered with a redirect (HTTP 302 to api.example.com), which is not followed; use the API's base URL"
            ),
        "{lines}"
    );
    // What could not be checked is not said to hold.
    let out = w.cmd(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    assert!(
        !text.contains("check: everything holds\n") && last.contains(" not checked"),
        "{text}"
    );
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

const DINGTALK_SECRET: &str = "SECdeploy-hook-test-0123456789abcdef";
const FEISHU_SECRET: &str = "deploy-hook-feishu-test-secret";

/// A signed GitHub push to main, as the CGI gets it.
fn github_push(w: &World) -> Reply {
    let body = br#"{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111"}"#;
    w.cgi()
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", github_sig(SECRET, body))
        .body(body)
        .run()
}

/// The step of these tests: fails with the VitePress log (in colour, as VitePress prints
/// it with CI=true) while `fail` is in the checkout, else succeeds; prints a secret of the
/// hook's env either way, which the published log must not show.
fn step() -> String {
    format!(
        "echo \"token in use: $NPM_TOKEN\"; if [ -e fail ]; then cat {}; exit 1; fi; echo built",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/failures/vitepress-color.log")
            .display()
    )
}

/// Whether a worker of this world still runs (its command line names the world's config).
fn worker_alive(w: &World) -> bool {
    let config = w.config.to_str().unwrap().to_string();
    fs::read_dir("/proc").unwrap().flatten().any(|e| {
        fs::read(e.path().join("cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("__worker") && c.contains(&config)
        })
    })
}

/// The texts of the messages a robot double took (their bodies, as JSON text).
fn taken(d: &Doubles, service: &str) -> Vec<String> {
    d.to(service)
        .iter()
        .filter(|r| r["ok"] == true)
        .map(|r| r["body"].to_string())
        .collect()
}

#[test]
fn a_push_shows_its_status_on_the_commit_the_page_and_one_message_on_the_failure_and_one_on_the_fix() {
    requires!(Python);
    let w = World::new("report-all");
    let d = Doubles::start(
        &w.path("doubles"),
        &json!({
            "github": {"token": GITHUB_TOKEN, "repo": "acme/docs", "scopes": "repo:status"},
            "dingtalk": {"access_token": "dt-access", "secret": DINGTALK_SECRET, "keyword": "deploy-hook"},
            "feishu": {"hook": "fs-hook", "secret": FEISHU_SECRET},
        }),
    );
    let token = secret_file(&w, "docs.token", GITHUB_TOKEN, 0o600);
    let dingtalk = secret_file(
        &w,
        "docs.dingtalk",
        &d.url("/dingtalk/robot/send?access_token=dt-access"),
        0o600,
    );
    let dingtalk_secret = secret_file(&w, "docs.dingtalk-secret", DINGTALK_SECRET, 0o600);
    let feishu = secret_file(
        &w,
        "docs.feishu",
        &d.url("/feishu/open-apis/bot/v2/hook/fs-hook"),
        0o600,
    );
    let feishu_secret = secret_file(&w, "docs.feishu-secret", FEISHU_SECRET, 0o600);
    let page = w.path("page");
    // on_success and on_failure still run beside the report, each once per build
    let told = w.path("told");
    let tell = |word: &str| {
        format!(
            "[\"sh\", \"-c\", \"echo {word} $DEPLOY_HOOK_RESULT >> {}\"]",
            told.display()
        )
    };
    w.config(
        "github",
        &format!(
            "steps = [{step}]\nenv = {{ NPM_TOKEN = \"npm_secret_value_42\" }}\non_success = {on_success}\non_failure = {on_failure}\n{report}\
             [hooks.docs.page]\ndir = {page:?}\nurl = \"https://docs.example.com/_builds/\"\nlogs = true\n\
             [[hooks.docs.notify]]\nkind = \"dingtalk\"\nurl_file = {dingtalk:?}\nsecret_file = {dingtalk_secret:?}\n\
             [[hooks.docs.notify]]\nkind = \"feishu\"\nurl_file = {feishu:?}\nsecret_file = {feishu_secret:?}\n",
            step = toml_str(&step()),
            on_success = tell("on_success"),
            on_failure = tell("on_failure"),
            report = report_table(&d.url("/github"), "acme/docs", &token),
            page = page.to_str().unwrap(),
            dingtalk = dingtalk.to_str().unwrap(),
            dingtalk_secret = dingtalk_secret.to_str().unwrap(),
            feishu = feishu.to_str().unwrap(),
            feishu_secret = feishu_secret.to_str().unwrap(),
        ),
    );
    let limit = std::time::Duration::from_secs(60);

    // 1. a push that fails: pending, then failure, on its commit; one message per robot
    fs::write(w.seed.join("fail"), "").unwrap();
    let broken = w.push("docs/install.md", "<section>\n");
    assert_eq!(github_push(&w).status, 202);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "failed", "{s}");
    let id = s["last"]["id"].as_str().unwrap().to_string();
    let statuses = d.wait_for("github", 2, limit);
    let states: Vec<&str> = statuses.iter().map(|r| r["body"]["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["pending", "failure"], "{statuses:?}");
    for r in &statuses {
        assert_eq!(r["ok"], true, "the double took it: {r}");
        assert_eq!(r["path"], format!("/github/repos/acme/docs/statuses/{broken}"));
        assert_eq!(r["body"]["context"], "deploy-hook/docs");
        assert_eq!(
            r["body"]["target_url"],
            format!("https://docs.example.com/_builds/#b{id}")
        );
    }
    let failure = statuses[1]["body"]["description"].as_str().unwrap();
    assert!(
        failure.contains("install.md (7:1): Element is missing end tag."),
        "{failure}"
    );
    d.wait_for("dingtalk", 1, limit);
    d.wait_for("feishu", 1, limit);
    wait_for("the worker to end", limit, || !worker_alive(&w));
    let (ding, fei) = (taken(&d, "dingtalk"), taken(&d, "feishu"));
    assert_eq!((ding.len(), fei.len()), (1, 1), "one message each: {:?}", d.requests());
    let post: serde_json::Value = serde_json::from_str(&fei[0]).unwrap();
    let links: Vec<&serde_json::Value> = post["content"]["post"]["zh_cn"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|line| line.as_array().unwrap())
        .filter(|e| e["tag"] == "a")
        .collect();
    assert!(!links.is_empty(), "{post}");
    for a in links {
        let label = a["text"].as_str().unwrap();
        assert_eq!(label, label.trim(), "a Feishu link's text is its words: {post}");
    }
    for m in [&ding[0], &fei[0]] {
        assert!(m.contains("install.md (7:1): Element is missing end tag."), "{m}");
        assert!(!m.contains("ELIFECYCLE") && !m.contains("\\u001b"), "{m}");
        assert!(m.contains(&broken[..7]) && m.contains(&format!("#b{id}")), "{m}");
    }
    // the page, its log published with the secret masked and the colours gone
    let html = fs::read_to_string(page.join("index.html")).unwrap();
    assert!(
        html.contains("idle · last build failed") && html.contains(&broken[..7]),
        "{html}"
    );
    let log = fs::read_to_string(page.join(format!("builds/{id}.log.txt"))).unwrap();
    assert!(
        log.contains("token in use: ***") && !log.contains("npm_secret_value_42"),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}') && log.contains("Element is missing end tag."),
        "{log}"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&fs::read_to_string(page.join("status.json")).unwrap()).unwrap()
            ["badge"],
        "failing"
    );

    // 2. the fix: pending, success; one message per robot saying it is fixed
    fs::remove_file(w.seed.join("fail")).unwrap();
    let fixed = w.push("docs/install.md", "<section></section>\n");
    assert_eq!(github_push(&w).status, 202);
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
    let statuses = d.wait_for("github", 4, limit);
    assert_eq!(statuses[2]["body"]["state"], "pending");
    assert_eq!(statuses[3]["body"]["state"], "success");
    assert_eq!(statuses[3]["path"], format!("/github/repos/acme/docs/statuses/{fixed}"));
    wait_for("the worker to end", limit, || !worker_alive(&w));
    let (ding, fei) = (taken(&d, "dingtalk"), taken(&d, "feishu"));
    assert_eq!((ding.len(), fei.len()), (2, 2), "{:?}", d.requests());
    assert!(
        ding[1].contains("build fixed") && fei[1].contains("build fixed"),
        "{ding:?} {fei:?}"
    );

    // 3. another success: statuses, and no message (on = failed, fixed)
    w.push("index.md", "more\n");
    assert_eq!(github_push(&w).status, 202);
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
    d.wait_for("github", 6, limit);
    wait_for("the worker to end", limit, || !worker_alive(&w));
    assert_eq!((taken(&d, "dingtalk").len(), taken(&d, "feishu").len()), (2, 2));

    // 4. the same push again: unchanged, which is a success on the commit (SPEC)
    let again = github_push(&w);
    assert_eq!(again.status, 202);
    assert_eq!(w.wait_idle()["last"]["result"], "unchanged");
    let statuses = d.wait_for("github", 8, limit);
    assert_eq!(statuses[6]["body"]["state"], "pending", "{statuses:?}");
    assert_eq!(statuses[7]["body"]["state"], "success", "{statuses:?}");
    assert_eq!(statuses[7]["path"], statuses[5]["path"], "the same commit");
    assert!(
        statuses[7]["body"]["description"]
            .as_str()
            .unwrap()
            .starts_with("Nothing changed"),
        "{statuses:?}"
    );
    wait_for("the worker to end", limit, || !worker_alive(&w));
    assert_eq!((taken(&d, "dingtalk").len(), taken(&d, "feishu").len()), (2, 2));
    assert_eq!(
        fs::read_to_string(&told).unwrap(),
        "on_failure failed\non_success succeeded\non_success succeeded\n",
        "on_success and on_failure ran as before (not after an unchanged build)"
    );
    assert!(
        d.requests().iter().all(|r| r["ok"] == true),
        "every request was as the services want it: {:?}",
        d.requests()
    );
    // No token, robot URL query or secret in any file the hook wrote: its logs (worker,
    // builds), state and page.
    let secrets = [
        GITHUB_TOKEN,
        "dt-access",
        DINGTALK_SECRET,
        FEISHU_SECRET,
        "fs-hook",
        "npm_secret_value_42",
    ];
    let mut files = Vec::new();
    let mut dirs = vec![w.hook_dir(), page.clone()];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() && e.file_name() != "checkout" {
                dirs.push(e.path());
            } else if t.is_file() {
                files.push(e.path());
            }
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("worker.log"))
            && files.iter().any(|f| f.extension().is_some_and(|e| e == "log")),
        "the logs are among them: {files:?}"
    );
    for f in &files {
        let text = String::from_utf8_lossy(&fs::read(f).unwrap()).into_owned();
        for secret in secrets {
            // the build's own log holds what its step printed; the env value is the hook's own
            if secret == "npm_secret_value_42" && f.starts_with(w.hook_dir()) {
                continue;
            }
            assert!(!text.contains(secret), "{secret} in {}:\n{text}", f.display());
        }
    }
}

/// The pids of this world's workers.
fn worker_pids(w: &World) -> Vec<i32> {
    let config = w.config.to_str().unwrap().to_string();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("__worker") && c.contains(&config)
            })
        })
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

/// A hook whose forge API and robot never answer: `mode` async or sync.
fn hanging_world(name: &str, mode: &str) -> (World, Doubles) {
    let w = World::new(name);
    let d = Doubles::start(&w.path("doubles"), &json!({}));
    let token = secret_file(&w, "docs.token", GITHUB_TOKEN, 0o600);
    let robot = secret_file(&w, "docs.webhook", &d.url("/hang/webhook?key=robot-key-77"), 0o600);
    w.config(
        "github",
        &format!(
            "mode = {mode:?}\nsteps = [\"true\"]\n{}[[hooks.docs.notify]]\nkind = \"webhook\"\nurl_file = {:?}\non = [\"started\", \"succeeded\"]\n",
            report_table(&d.url("/hang/github"), "acme/docs", &token),
            robot.to_str().unwrap()
        ),
    );
    (w, d)
}

#[test]
fn a_hanging_api_holds_neither_the_build_nor_the_next_delivery() {
    requires!(Python);
    let (w, d) = hanging_world("report-hang", "async");
    let limit = std::time::Duration::from_secs(60);
    w.push("index.md", "one\n");
    assert_eq!(github_push(&w).status, 202);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "the build's result is its own: {s}");
    // Its worker still waits on the API (it lets go of the lock first)...
    let first = worker_pids(&w);
    assert_eq!(first.len(), 1, "the first worker, sending: {first:?}");
    // It did try: its sender thread's first request reaches the double at its own pace,
    // which a build of `true` can beat.
    d.wait_for("hang", 1, limit);
    // ...and the next delivery builds at once, beside it. (The first worker lives at least
    // a request's 5 s timeout after its build: a bound, not a measured time.)
    w.push("index.md", "two\n");
    assert_eq!(github_push(&w).status, 202);
    wait_for("the second build", limit, || {
        w.history().len() == 2 && w.status()["state"] == "idle"
    });
    assert!(
        first.iter().any(|p| pid_alive(*p)),
        "the second build was recorded while the first worker was still sending"
    );
    assert_eq!(w.history()[0]["result"], "succeeded");
    // Both workers give up within their bound, saying so without the token or the query.
    wait_for("the workers to give up", limit, || worker_pids(&w).is_empty());
    let log = fs::read_to_string(w.hook_dir().join("worker.log")).unwrap_or_default();
    assert!(log.contains("report try failed") && log.contains("to=github"), "{log}");
    assert!(
        log.contains("report abandoned") || log.contains("report not sent"),
        "{log}"
    );
    assert!(
        log.contains("/hang/webhook?key=***"),
        "the URL, its query masked: {log}"
    );
    for secret in [GITHUB_TOKEN, "robot-key-77"] {
        assert!(!log.contains(secret), "{secret} in the log: {log}");
    }
}

#[test]
fn a_sync_delivery_is_answered_before_the_report_is_sent() {
    requires!(Python);
    let (w, _d) = hanging_world("report-hang-sync", "sync");
    w.push("index.md", "one\n");
    let r = github_push(&w);
    assert_eq!((r.status, r.word()), (200, "succeeded"), "{}", r.json);
    // The answer came while the worker still sends to an API that never answers.
    assert!(!worker_pids(&w).is_empty(), "the answer did not wait for the report");
    wait_for("the worker to give up", std::time::Duration::from_secs(60), || {
        worker_pids(&w).is_empty()
    });
}

#[test]
fn a_worker_killed_mid_build_is_reported_when_recovery_records_it() {
    requires!(Python);
    let w = World::new("report-recovery");
    let d = Doubles::start(
        &w.path("doubles"),
        &json!({"github": {"token": GITHUB_TOKEN, "repo": "acme/docs"}, "webhook": {"secret": "hook-signing-key"}}),
    );
    let token = secret_file(&w, "docs.token", GITHUB_TOKEN, 0o600);
    let robot = secret_file(&w, "docs.webhook", &d.url("/webhook/builds"), 0o600);
    let key = secret_file(&w, "docs.webhook-key", "hook-signing-key", 0o600);
    let (record, gate) = (w.path("record"), w.path("gate"));
    w.config(
        "github",
        &format!(
            "steps = [{}]\n{}[[hooks.docs.notify]]\nkind = \"webhook\"\nurl_file = {:?}\nsecret_file = {:?}\n",
            toml_str(&gated_step(&record, &gate)),
            report_table(&d.url("/github"), "acme/docs", &token),
            robot.to_str().unwrap(),
            key.to_str().unwrap()
        ),
    );
    let limit = std::time::Duration::from_secs(60);
    let head = w.push("index.md", "one\n");
    assert_eq!(github_push(&w).status, 202);
    wait_for("the step to start", limit, || record.exists());
    d.wait_for("github", 1, limit);
    // The worker dies (kill -9, the OOM killer); its step is left waiting at the gate.
    for pid in worker_pids(&w) {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    wait_for("the worker to be gone", limit, || worker_pids(&w).is_empty());
    fs::write(&gate, "").unwrap();
    assert_eq!(github_push(&w).status, 202);
    let s = w.wait_idle();
    assert_eq!(s["history"][1]["result"], "interrupted", "{s}");
    assert_eq!(s["history"][0]["result"], "succeeded", "{s}");
    let statuses = d.wait_for("github", 4, limit);
    let interrupted = statuses
        .iter()
        .find(|r| r["body"]["state"] == "error")
        .unwrap_or_else(|| panic!("an error status: {statuses:?}"));
    assert_eq!(interrupted["path"], format!("/github/repos/acme/docs/statuses/{head}"));
    assert_eq!(
        interrupted["body"]["description"],
        "Build interrupted (its worker died)"
    );
    let messages = d.wait_for("webhook", 1, limit);
    assert_eq!(messages[0]["ok"], true, "signed as the double checks: {messages:?}");
    assert_eq!(messages[0]["body"]["event"], "failed");
    assert_eq!(messages[0]["body"]["result"], "interrupted");
    assert_eq!(messages[0]["body"]["commit"]["sha"], head.as_str());
    assert_eq!(messages[0]["headers"]["x-deploy-hook-event"], "failed");
    wait_for("the worker to end", limit, || worker_pids(&w).is_empty());
    // the next success is the fix
    let messages = d.to("webhook");
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[1]["body"]["event"], "fixed");
}

/// Each status links to its build's entry on the page, the builds in order.
fn assert_target_urls(w: &World, forge: &[serde_json::Value]) {
    let mut ids: Vec<String> = w
        .history()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    ids.reverse();
    let urls: Vec<String> = forge
        .iter()
        .map(|r| r["body"]["target_url"].as_str().unwrap_or_default().to_string())
        .collect();
    let want: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            let url = format!("https://docs.example.com/_builds/#b{id}");
            [url.clone(), url]
        })
        .collect();
    assert_eq!(urls, want, "pending and result of each build link to its entry");
}

/// `run --wait` of the hook, as its owner would: the result is printed, then the report
/// is sent before the command exits.
fn run_wait(w: &World) -> String {
    let out = w.cmd(&["run", "docs", "--wait"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn gitlab_gitea_and_gitee_and_the_other_robots_get_what_their_documents_ask() {
    requires!(Python);
    for (provider, conf, api, repo, token) in [
        (
            "gitlab",
            json!({"gitlab": {"token": "glpat-double", "project": "grp/sub/docs", "id": 17}}),
            "/gitlab/api/v4",
            "grp/sub/docs",
            "glpat-double",
        ),
        (
            "gitea",
            json!({"gitea": {"token": "gitea-double", "repo": "acme/docs"}}),
            "/gitea/api/v1",
            "acme/docs",
            "gitea-double",
        ),
        (
            "gitee",
            json!({"gitee": {"token": "gitee-double", "repo": "acme/docs"}}),
            "/gitee/api/v5",
            "acme/docs",
            "gitee-double",
        ),
    ] {
        let w = World::new(&format!("report-{provider}"));
        let mut conf = conf;
        conf["wecom"] = json!({"key": "wc-key"});
        conf["slack"] = json!({"path": "T000/B000/slacksecret"});
        let d = Doubles::start(&w.path("doubles"), &conf);
        let token_file = secret_file(&w, "docs.token", token, 0o600);
        let wecom = secret_file(
            &w,
            "docs.wecom",
            &d.url("/wecom/cgi-bin/webhook/send?key=wc-key"),
            0o600,
        );
        let slack = secret_file(&w, "docs.slack", &d.url("/slack/services/T000/B000/slacksecret"), 0o600);
        let webhook = secret_file(&w, "docs.webhook", &d.url("/webhook/x"), 0o600);
        let every = "on = [\"started\", \"failed\", \"fixed\", \"succeeded\"]";
        w.config(
            provider,
            &format!(
                "steps = [{step}]\n{report}\
                 [hooks.docs.page]\ndir = {page:?}\nurl = \"https://docs.example.com/_builds/\"\n\
                 [[hooks.docs.notify]]\nkind = \"wecom\"\nurl_file = {wecom:?}\n{every}\n\
                 [[hooks.docs.notify]]\nkind = \"slack\"\nurl_file = {slack:?}\n{every}\n\
                 [[hooks.docs.notify]]\nkind = \"webhook\"\nurl_file = {webhook:?}\n{every}\n",
                step = toml_str(&step()),
                report = report_table(&d.url(api), repo, &token_file),
                page = w.path("page").to_str().unwrap(),
                wecom = wecom.to_str().unwrap(),
                slack = slack.to_str().unwrap(),
                webhook = webhook.to_str().unwrap(),
            ),
        );
        fs::write(w.seed.join("fail"), "").unwrap();
        let head = w.push("index.md", "one\n");
        assert!(run_wait(&w).contains("failed"), "{provider}");
        assert!(run_wait(&w).contains("failed"), "{provider}: the same commit again");
        fs::remove_file(w.seed.join("fail")).unwrap();
        let fixed = w.push("index.md", "two\n");
        assert!(run_wait(&w).contains("succeeded"), "{provider}");
        w.push("index.md", "three\n");
        assert!(run_wait(&w).contains("succeeded"), "{provider}");
        let all = d.requests();
        assert!(
            !all.is_empty() && all.iter().all(|r| r["ok"] == true),
            "{provider}: {all:#?}"
        );
        let forge = d.to(provider);
        match provider {
            "gitlab" => {
                let states: Vec<&str> = forge.iter().map(|r| r["body"]["state"].as_str().unwrap()).collect();
                assert_eq!(
                    states,
                    ["running", "failed", "running", "failed", "running", "success", "running", "success"]
                );
                assert_eq!(
                    forge[0]["path"],
                    format!("/gitlab/api/v4/projects/grp%2Fsub%2Fdocs/statuses/{head}")
                );
                assert_eq!(forge[0]["headers"]["private-token"], token);
                assert_eq!(forge[0]["body"]["name"], "deploy-hook/docs");
                assert_target_urls(&w, &forge);
            }
            "gitea" => {
                let states: Vec<&str> = forge.iter().map(|r| r["body"]["state"].as_str().unwrap()).collect();
                assert_eq!(
                    states,
                    ["pending", "failure", "pending", "failure", "pending", "success", "pending", "success"]
                );
                assert_eq!(forge[0]["headers"]["authorization"], format!("token {token}"));
                assert_target_urls(&w, &forge);
            }
            _ => {
                // a comment on each failure and on the fix, none on the next success
                assert_eq!(forge.len(), 3, "{forge:#?}");
                assert_eq!(
                    forge[0]["path"],
                    format!("/gitee/api/v5/repos/acme/docs/commits/{head}/comments")
                );
                assert_eq!(
                    forge[2]["path"],
                    format!("/gitee/api/v5/repos/acme/docs/commits/{fixed}/comments")
                );
                assert!(
                    forge.iter().all(|r| r["query"] == json!({})),
                    "the token never in a URL"
                );
                assert!(forge[0]["body"]["body"]
                    .as_str()
                    .unwrap()
                    .contains("Element is missing end tag."));
                assert!(forge[2]["body"]["body"].as_str().unwrap().contains("fixed"));
            }
        }
        // every event to every robot: started + result for each of the 4 builds
        for robot in ["wecom", "slack", "webhook"] {
            assert_eq!(d.to(robot).len(), 8, "{provider} {robot}: {:#?}", d.to(robot));
        }
        let hooks = d.to("webhook");
        let events: Vec<&str> = hooks.iter().map(|r| r["body"]["event"].as_str().unwrap()).collect();
        assert_eq!(
            events,
            [
                "started",
                "failed",
                "started",
                "failed",
                "started",
                "fixed",
                "started",
                "succeeded"
            ],
            "{provider}"
        );
    }
}

#[test]
fn a_superseded_build_names_the_commit_that_replaced_it() {
    requires!(Python);
    let w = World::new("report-supersede");
    let d = Doubles::start(
        &w.path("doubles"),
        &json!({"github": {"token": GITHUB_TOKEN, "repo": "acme/docs"}}),
    );
    let token = secret_file(&w, "docs.token", GITHUB_TOKEN, 0o600);
    let (record, gate) = (w.path("record"), w.path("gate"));
    // the step waits at the gate only for the first commit (its checkout holds `wait`)
    let step = format!("if [ -e wait ]; then {}; fi", gated_step(&record, &gate));
    w.config(
        "github",
        &format!(
            "on_busy = \"supersede\"\nsteps = [{}]\n{}",
            toml_str(&step),
            report_table(&d.url("/github"), "acme/docs", &token)
        ),
    );
    let limit = std::time::Duration::from_secs(60);
    fs::write(w.seed.join("wait"), "").unwrap();
    let first = w.push("index.md", "one\n");
    assert_eq!(github_push(&w).status, 202);
    wait_for("the first build's step", limit, || record.exists());
    fs::remove_file(w.seed.join("wait")).unwrap();
    let second = w.push("index.md", "two\n");
    assert_eq!(github_push(&w).status, 202);
    wait_for("both builds", limit, || {
        w.history().len() == 2 && w.status()["state"] == "idle"
    });
    assert_eq!(w.history()[1]["result"], "superseded");
    wait_for("the worker to end", limit, || worker_pids(&w).is_empty());
    let statuses = d.to("github");
    let old: Vec<&serde_json::Value> = statuses
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with(&first))
        .collect();
    let last = old.last().unwrap();
    assert_eq!(last["body"]["state"], "error", "{statuses:#?}");
    assert_eq!(last["body"]["description"], format!("Superseded by {}", &second[..7]));
    assert!(statuses.iter().all(|r| r["ok"] == true), "{statuses:#?}");
    assert_eq!(statuses.last().unwrap()["body"]["state"], "success");
}

#[test]
fn the_page_shows_a_rollbacks_hold_until_resume() {
    let w = World::new("report-held");
    let (page, www) = (w.path("page"), w.path("www"));
    w.config(
        "gitee",
        &format!(
            "steps = [\"mkdir -p dist && git rev-parse HEAD > dist/index.html\"]\n\
             [hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}\n\
             [hooks.docs.page]\ndir = {:?}\nurl = \"https://docs.example.com/_builds/\"\n",
            www.join("site").to_str().unwrap(),
            page.to_str().unwrap()
        ),
    );
    for n in ["one", "two"] {
        w.push("index.md", n);
        assert!(run_wait(&w).contains("succeeded"));
    }
    let status =
        || -> serde_json::Value { serde_json::from_slice(&fs::read(page.join("status.json")).unwrap()).unwrap() };
    assert!(status()["held"].is_null());
    let out = w.cmd(&["rollback", "docs"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let held = status();
    let release = held["held"]["release"]
        .as_str()
        .expect("the page says the hook is held")
        .to_string();
    assert_eq!(held["live_release"], release.as_str());
    let html = fs::read_to_string(page.join("index.html")).unwrap();
    assert!(
        html.contains("id=\"held\"") && html.contains(&release) && html.contains("deploy-hook resume docs"),
        "{html}"
    );
    let out = w.cmd(&["resume", "docs"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(status()["held"].is_null());
    assert!(!fs::read_to_string(page.join("index.html"))
        .unwrap()
        .contains("id=\"held\""));
}

#[test]
fn https_trusts_the_systems_roots_only() {
    requires!(Python);
    let w = World::new("report-tls");
    // A local https API whose certificate no system root signed.
    let (cert, key) = (w.path("cert.pem"), w.path("key.pem"));
    let made = std::process::Command::new(system_program("openssl", "openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let port = free_port();
    let script = format!(
        "import http.server, ssl\n\
         class H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(b'{{}}')\n\
         s = http.server.HTTPServer(('127.0.0.1', {port}), H)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain({cert:?}, {key:?})\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\ns.serve_forever()\n",
        cert = cert.to_str().unwrap(),
        key = key.to_str().unwrap()
    );
    let mut server = std::process::Command::new(system_program("python3", "python3"))
        .arg("-c")
        .arg(script)
        .spawn()
        .unwrap();
    wait_for("the https server", std::time::Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let token = secret_file(&w, "docs.token", GITHUB_TOKEN, 0o600);
    w.config(
        "github",
        &report_table(&format!("https://127.0.0.1:{port}/api"), "acme/docs", &token),
    );
    let lines = report_lines(&check_text(&w));
    let _ = server.kill();
    let _ = server.wait();
    // The TLS handshake ran (rustls, ring) and refused the certificate: not checked, not trusted.
    assert!(
        lines.contains("\"skip\"") && lines.contains("invalid peer certificate"),
        "{lines}"
    );
}

#[test]
fn a_build_publishes_no_secret_of_any_hook_in_the_config() {
    requires!(Python);
    let w = World::new("report-other-secrets");
    let d = Doubles::start(
        &w.path("doubles"),
        &json!({"github": {"token": GITHUB_TOKEN, "repo": "acme/docs"}}),
    );
    let token = secret_file(&w, "docs.token", GITHUB_TOKEN, 0o600);
    let robot = secret_file(&w, "docs.webhook", &d.url("/webhook/builds"), 0o600);
    // Another hook's secrets, each in a file the build's user may read (the same user runs
    // every hook's build): its webhook secret, report token, robot URL and signing secret,
    // an rclone key, the token init keeps for its remote, an env token, an inline secret.
    let other = [
        ("other.secret", "other-hook-secret-5150"),
        ("other.token", "gtea_other_token_8086"),
        (
            "other.dingtalk",
            "https://oapi.dingtalk.com/robot/send?access_token=otherdingtoken77",
        ),
        ("other.dingtalk-secret", "SECother-signing-secret-6502"),
    ];
    for (name, value) in other {
        secret_file(&w, name, value, 0o600);
    }
    let rclone = w.path("rclone.conf");
    fs::write(
        &rclone,
        "[s3]\ntype = s3\naccess_key_id = OTHERKEYID1234\nsecret_access_key = other/rclone+secret9\n",
    )
    .unwrap();
    let credentials = w.state.join("other/git-credentials");
    fs::create_dir_all(credentials.parent().unwrap()).unwrap();
    fs::write(&credentials, "https://bot:glpat-otherremote42@git.example.com\n").unwrap();
    let third = "inline-third-hook-secret-31";
    let files: Vec<String> = ["other.secret", "other.token", "other.dingtalk", "other.dingtalk-secret"]
        .iter()
        .map(|n| w.path(n).display().to_string())
        .chain([rclone.display().to_string(), credentials.display().to_string()])
        .collect();
    // The step prints each as an error line (so each is a failure line too), then fails.
    let step = format!(
        "for f in {}; do echo \"error: $(cat $f)\"; done; echo \"error: $OTHER_ENV\"; echo 'error: {third}'; exit 1",
        files.join(" ")
    );
    let page = w.path("page");
    w.config(
        "github",
        &format!(
            "steps = [{step}]\n{report}\
             [hooks.docs.page]\ndir = {page:?}\nurl = \"https://docs.example.com/_builds/\"\nlogs = true\n\
             [[hooks.docs.notify]]\nkind = \"webhook\"\nurl_file = {robot:?}\n\
             [hooks.other]\nprovider = \"gitea\"\nsecret_file = {secret:?}\nrepo = {repo:?}\n\
             env = {{ OTHER_TOKEN = \"other-env-token-1701\" }}\n\
             [hooks.other.publish]\nfrom = \"public\"\nbucket = \"s3:site/other\"\nrclone_config = {rclone:?}\n\
             [hooks.other.report]\napi = \"http://127.0.0.1:1/api/v1\"\nrepo = \"acme/other\"\ntoken_file = {token:?}\n\
             [[hooks.other.notify]]\nkind = \"dingtalk\"\nurl_file = {ding:?}\nsecret_file = {ding_secret:?}\n\
             [hooks.third]\nprovider = \"github\"\nsecret = {third:?}\nrepo = {repo3:?}\n",
            step = toml_str(&step.replace("$OTHER_ENV", "other-env-token-1701")),
            report = report_table(&d.url("/github"), "acme/docs", &token),
            page = page.to_str().unwrap(),
            robot = robot.to_str().unwrap(),
            secret = w.path("other.secret").to_str().unwrap(),
            repo = w.path("other-repo").to_str().unwrap(),
            rclone = rclone.to_str().unwrap(),
            token = w.path("other.token").to_str().unwrap(),
            ding = w.path("other.dingtalk").to_str().unwrap(),
            ding_secret = w.path("other.dingtalk-secret").to_str().unwrap(),
            repo3 = w.path("third-repo").to_str().unwrap(),
        ),
    );
    w.push("index.md", "one\n");
    let out = run_wait(&w);
    assert!(out.contains("failed"), "{out}");
    let limit = std::time::Duration::from_secs(60);
    let statuses = d.wait_for("github", 2, limit);
    let messages = d.wait_for("webhook", 1, limit);
    let id = w.history()[0]["id"].as_str().unwrap().to_string();
    let published = [
        (
            "the log",
            fs::read_to_string(page.join(format!("builds/{id}.log.txt"))).unwrap(),
        ),
        ("status.json", fs::read_to_string(page.join("status.json")).unwrap()),
        ("index.html", fs::read_to_string(page.join("index.html")).unwrap()),
        ("the status", statuses[1]["body"].to_string()),
        ("the message", messages[0]["body"].to_string()),
    ];
    assert!(
        published[0].1.contains("error: ***"),
        "the lines are there, masked: {}",
        published[0].1
    );
    assert!(published[4].1.contains("error: ***"), "{}", published[4].1);
    for secret in [
        "other-hook-secret-5150",
        "gtea_other_token_8086",
        "otherdingtoken77",
        "SECother-signing-secret-6502",
        "OTHERKEYID1234",
        "other/rclone+secret9",
        "glpat-otherremote42",
        "other-env-token-1701",
        third,
    ] {
        for (what, text) in &published {
            assert!(!text.contains(secret), "{secret} in {what}:\n{text}");
        }
    }
}

#[test]
fn two_hooks_may_not_share_a_page_folder() {
    let w = World::new("report-shared-page");
    let page = w.path("page");
    for (other_dir, why) in [
        (page.clone(), "the same folder"),
        (page.join("blog"), "one inside the other"),
    ] {
        w.config(
            "github",
            &format!(
                "[hooks.docs.page]\ndir = {page:?}\nurl = \"https://docs.example.com/_builds/\"\n\
                 [hooks.blog]\nprovider = \"gitea\"\nsecret_file = {secret:?}\nrepo = {repo:?}\n\
                 [hooks.blog.page]\ndir = {other:?}\nurl = \"https://blog.example.com/_builds/\"\n",
                page = page.to_str().unwrap(),
                secret = w.secret_file.to_str().unwrap(),
                repo = w.path("blog-repo").to_str().unwrap(),
                other = other_dir.to_str().unwrap(),
            ),
        );
        for args in [&["check"][..], &["run", "docs", "--wait"]] {
            let out = w.cmd(args);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.status.success(), "{why} {args:?}: {text}");
            assert!(
                text.contains("page.dir")
                    && text.contains("docs")
                    && text.contains("blog")
                    && text.contains("a folder of its own"),
                "{why} {args:?}: the error names both hooks: {text}"
            );
        }
        assert!(!page.join("index.html").exists(), "{why}: nothing was written");
    }
}

/// A hook with a page, a webhook robot on every event and the GitHub double, whose step is
/// `step`; returns the doubles.
fn lines_world(w: &World, doubles: &str, step: &str, extra: &str) -> Doubles {
    let d = Doubles::start(
        &w.path(doubles),
        &json!({"github": {"token": GITHUB_TOKEN, "repo": "acme/docs"}}),
    );
    let token = secret_file(w, "docs.token", GITHUB_TOKEN, 0o600);
    let robot = secret_file(w, "docs.webhook", &d.url("/webhook/builds"), 0o600);
    w.config(
        "github",
        &format!(
            "steps = [{step}]\n{extra}{report}\
             [hooks.docs.page]\ndir = {page:?}\nurl = \"https://docs.example.com/_builds/\"\n\
             [[hooks.docs.notify]]\nkind = \"webhook\"\nurl_file = {robot:?}\non = [\"started\", \"failed\", \"succeeded\"]\n",
            step = toml_str(step),
            report = report_table(&d.url("/github"), "acme/docs", &token),
            page = w.path("page").to_str().unwrap(),
            robot = robot.to_str().unwrap(),
        ),
    );
    d
}

#[test]
fn failure_lines_show_no_server_path_and_pick_error_words_not_flags() {
    requires!(Python);
    let w = World::new("report-paths");
    let www = w.path("www");
    let state = w.state.to_str().unwrap().to_string();
    let step = format!(
        "echo \"error: cannot read $HOME/.npmrc-missing\"; echo 'error: stale {state}/docs/build.lock'; \
         echo 'error: cannot write {www}/site.releases/r1'; exit 1",
        www = www.display()
    );
    let publish = format!(
        "[hooks.docs.publish]\nfrom = \"public\"\nto = {:?}\n",
        www.join("site").to_str().unwrap()
    );
    let d = lines_world(&w, "doubles", &step, &publish);
    w.push("index.md", "one\n");
    assert!(run_wait(&w).contains("failed"));
    let limit = std::time::Duration::from_secs(60);
    let statuses = d.wait_for("github", 2, limit);
    let messages = d.wait_for("webhook", 2, limit);
    let shown = [
        ("the status", statuses[1]["body"]["description"].to_string()),
        ("the message", messages[1]["body"]["lines"].to_string()),
        ("status.json", fs::read_to_string(w.path("page/status.json")).unwrap()),
    ];
    for (what, text) in &shown {
        assert!(
            !text.contains(&state) && !text.contains(www.to_str().unwrap()),
            "a server path in {what}: {text}"
        );
    }
    let lines = &shown[1].1;
    for want in [
        "cannot read ~/.npmrc-missing",
        "stale <state>/build.lock",
        "cannot write <publish.to>.releases/r1",
    ] {
        assert!(lines.contains(want), "{want} in {lines}");
    }

    // A flag that holds an error word (`--error-on-no-transfer`) says nothing failed: the
    // lines are the step's last ones, with the one that says why.
    drop(d);
    let d2 = lines_world(
        &w,
        "doubles-2",
        "echo 'rclone cat --error-on-no-transfer s:b/x'; echo 'the disk quota is exceeded'; exit 1",
        "",
    );
    w.push("index.md", "two\n");
    assert!(run_wait(&w).contains("failed"));
    let messages = d2.wait_for("webhook", 2, limit);
    let lines = messages[1]["body"]["lines"].to_string();
    assert!(lines.contains("the disk quota is exceeded"), "{lines}");
}

#[test]
fn control_characters_of_a_commit_reach_no_message_status_or_page() {
    requires!(Python);
    let w = World::new("report-controls");
    let d = lines_world(&w, "doubles", "exit 1", "");
    fs::write(w.seed.join("index.md"), "two\n").unwrap();
    git(&w.seed, &["add", "-A"]);
    let out = std::process::Command::new("git")
        .current_dir(&w.seed)
        .args([
            "-c",
            "user.name=Eve\u{1b}[1mBold\u{7}",
            "-c",
            "user.email=eve@example.com",
            "commit",
            "-q",
            "-m",
            "\u{1b}[31mRed\u{1b}[0m subject\u{8}\u{8}X \u{1b}]0;title\u{7}end",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    git(&w.seed, &["push", "-q", "origin", "HEAD:main"]);
    assert!(run_wait(&w).contains("failed"));
    let limit = std::time::Duration::from_secs(60);
    let messages = d.wait_for("webhook", 2, limit);
    let statuses = d.wait_for("github", 2, limit);
    let shown = [
        ("the message", messages[1]["body"].to_string()),
        ("the status", statuses[1]["body"].to_string()),
        ("index.html", fs::read_to_string(w.path("page/index.html")).unwrap()),
        ("status.json", fs::read_to_string(w.path("page/status.json")).unwrap()),
    ];
    for (what, text) in &shown {
        for bad in [
            "\\u001b", "\u{1b}", "\\u0007", "\u{7}", "\\b", "\u{8}", "&#27;", "&#x1b;",
        ] {
            assert!(!text.contains(bad), "{bad:?} in {what}: {text}");
        }
    }
    assert_eq!(messages[1]["body"]["commit"]["subject"], "Red subjectX end");
    assert_eq!(messages[1]["body"]["commit"]["author"], "EveBold");
    assert!(shown[2].1.contains("Red subjectX end"), "{}", shown[2].1);
}

#[test]
fn a_build_that_kills_its_worker_is_rebuilt_once_not_on_every_status() {
    requires!(Python);
    let w = World::new("report-killer");
    let d = Doubles::start(&w.path("doubles"), &json!({}));
    let robot = secret_file(&w, "docs.webhook", &d.url("/webhook/builds"), 0o600);
    // While `killer` exists, the step kills the worker that runs it (its first ancestor
    // whose command line is a worker's), as a step that runs the machine out of memory
    // would get it killed.
    let killer = w.path("killer");
    fs::write(&killer, "").unwrap();
    let step = format!(
        "if [ -e {k} ]; then p=$$; while [ \"$p\" -gt 1 ]; do \
           if [ \"$(tr '\\0' '\\n' < /proc/$p/cmdline | sed -n 2p)\" = __worker ]; then kill -9 $p; exit 1; fi; \
           p=$(cut -d' ' -f4 /proc/$p/stat); done; fi; echo built",
        k = killer.display()
    );
    w.config(
        "github",
        &format!(
            "steps = [{}]\n[[hooks.docs.notify]]\nkind = \"webhook\"\nurl_file = {:?}\n",
            toml_str(&step),
            robot.to_str().unwrap()
        ),
    );
    let limit = std::time::Duration::from_secs(60);
    let head = w.push("index.md", "one\n");
    assert_eq!(github_push(&w).status, 202);
    let dead = |w: &World| {
        wait_for("the worker to be gone", limit, || worker_pids(w).is_empty());
    };
    dead(&w);
    assert_eq!(w.status()["state"], "building", "its worker died mid-build");
    // `status` sees the dead worker: recovery records the build and builds it once more,
    // which kills its worker again.
    let status = |w: &World| {
        let out = w.cmd(&["status", "docs"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    status(&w);
    wait_for("the rebuild", limit, || {
        w.history().len() == 1 && worker_pids(&w).is_empty() && w.status()["state"] == "building"
    });
    // The second time, the rebuild of the same commit is recorded and not built again.
    status(&w);
    wait_for("the second recovery", limit, || {
        w.history().len() == 2 && worker_pids(&w).is_empty()
    });
    assert_eq!(w.status()["state"], "idle", "not rebuilt again: {}", w.status());
    for _ in 0..3 {
        status(&w);
        w.wait_no_worker();
    }
    let s = w.status();
    assert_eq!(s["state"], "idle", "{s}");
    let history = w.history();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history
        .iter()
        .all(|b| b["result"] == "interrupted" && b["commit"] == head.as_str()));
    wait_for("the messages", limit, || d.to("webhook").len() >= 2);
    let messages = d.to("webhook");
    assert_eq!(messages.len(), 2, "one message per interrupted build: {messages:?}");
    assert_eq!(
        messages[0]["body"]["build"]["failed_step"], "step 1 (sh)",
        "labelled as a failed build's step is"
    );
    let log = fs::read_to_string(w.hook_dir().join("worker.log")).unwrap_or_default();
    assert!(log.contains("not built again"), "{log}");
    // `run` still builds it (and a new delivery would).
    fs::remove_file(&killer).unwrap();
    let out = run_wait(&w);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(w.history()[0]["commit"], head.as_str());
}
