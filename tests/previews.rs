//! Previews of branches and pull requests: `nginx/previews.conf` through a real nginx, with
//! the Host header choosing the preview (`pr-7.preview.test`).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// The domain the tests serve previews under, in place of the shipped file's.
pub const DOMAIN: &str = "preview.test";

/// nginx on a free loopback port with `nginx/previews.conf` (its domain and root made the
/// test's) and a default server that says so; killed and reaped on drop.
pub struct PreviewNginx {
    child: Child,
    pub port: u16,
}

impl Drop for PreviewNginx {
    fn drop(&mut self) {
        // nginx leads its own process group: its master and workers go together.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl PreviewNginx {
    /// Serves the previews in `to` (previews.to).
    pub fn start(w: &World, to: &Path) -> PreviewNginx {
        let dir = w.path("nginx-previews");
        fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let shipped = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/nginx/previews.conf")).unwrap();
        let mut site = shipped.clone();
        for (from, to) in [
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            ("listen [::]:80;", String::new()),
            (
                "\\.preview\\.docs\\.example\\.com$",
                format!("\\.{}$", DOMAIN.replace('.', "\\.")),
            ),
            (
                "root /var/www/docs-previews/$preview;",
                format!("root {}/$preview;", to.display()),
            ),
        ] {
            assert!(
                site.contains(from),
                "nginx/previews.conf no longer holds {from:?}: update the test"
            );
            site = site.replace(from, &to);
        }
        assert!(
            !shipped
                .lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains("default_server")),
            "the shipped file must not claim the default server"
        );
        fs::write(dir.join("previews.conf"), site).unwrap();
        fs::write(
            dir.join("nginx.conf"),
            format!(
                "worker_processes 1;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\ndaemon off;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  default_type text/html;\n  client_body_temp_path {d}/client_body;\n  fastcgi_temp_path {d}/fastcgi;\n  proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{ listen 127.0.0.1:{port} default_server; server_name _; return 404 \"default server\\n\"; }}\n  include {d}/previews.conf;\n}}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let nginx = system_program("nginx", "nginx");
        let t = Command::new(&nginx)
            .arg("-t")
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .output()
            .unwrap();
        assert!(t.status.success(), "nginx -t: {}", String::from_utf8_lossy(&t.stderr));
        let child = Command::new(&nginx)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let server = PreviewNginx { child, port };
        wait_for("nginx to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        server
    }

    /// GET `path` with `Host: host` (sent as it is, as `curl --path-as-is -H` does): the
    /// status and the body.
    pub fn get(&self, host: &str, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        let reply = String::from_utf8_lossy(&reply);
        let status = reply
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status: {reply}"));
        let body = reply
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// GET `path` of preview `name`.
    pub fn preview(&self, name: &str, path: &str) -> (u16, String) {
        self.get(&format!("{name}.{DOMAIN}"), path)
    }
}

/// Makes preview `name` in `to` as deploy-hook lays it out: `to/NAME` a relative symlink to
/// `NAME.releases/<release>`, with `pages` (path, text) in the release.
fn lay_out(to: &Path, name: &str, release: &str, pages: &[(&str, &str)]) {
    let dir = to.join(format!("{name}.releases")).join(release);
    for (path, text) in pages {
        let file = dir.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, text).unwrap();
    }
    let tmp = to.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("{name}.releases/{release}"), &tmp).unwrap();
    fs::rename(&tmp, to.join(name)).unwrap();
}

#[test]
fn the_shipped_nginx_file_serves_each_preview_at_its_own_host_name() {
    requires!(Nginx);
    let w = World::new("previews-nginx");
    let to = w.path("www/docs-previews");
    fs::create_dir_all(&to).unwrap();
    fs::write(w.path("www/secret.txt"), "outside previews.to\n").unwrap();
    lay_out(
        &to,
        "pr-7",
        "r1",
        &[
            ("index.html", "pr-7 home\n"),
            ("guide/intro.html", "pr-7 guide\n"),
            ("404.html", "pr-7 own 404\n"),
        ],
    );
    lay_out(
        &to,
        "branch-feature-foo-bar",
        "r1",
        &[("index.html", "branch home\n"), ("guide/intro.html", "branch guide\n")],
    );
    let n = PreviewNginx::start(&w, &to);
    let port = n.port;
    let long = "a".repeat(63);
    let too_long = "a".repeat(64);
    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        ("a preview's page", "pr-7.preview.test".into(), "/", 200, "pr-7 home"),
        (
            "a clean URL",
            "pr-7.preview.test".into(),
            "/guide/intro",
            200,
            "pr-7 guide",
        ),
        (
            "another preview",
            "branch-feature-foo-bar.preview.test".into(),
            "/guide/intro",
            200,
            "branch guide",
        ),
        (
            "the preview's own 404",
            "pr-7.preview.test".into(),
            "/nope",
            404,
            "pr-7 own 404",
        ),
        (
            "no 404.html: nginx's",
            "branch-feature-foo-bar.preview.test".into(),
            "/nope",
            404,
            "404 Not Found",
        ),
        (
            "an unknown preview",
            "pr-8.preview.test".into(),
            "/",
            404,
            "404 Not Found",
        ),
        ("upper case Host", "PR-7.Preview.TEST".into(), "/", 200, "pr-7 home"),
        ("a trailing dot", "pr-7.preview.test.".into(), "/", 200, "pr-7 home"),
        (
            "a port in Host",
            format!("pr-7.preview.test:{port}"),
            "/",
            200,
            "pr-7 home",
        ),
        (
            "the releases folder",
            "pr-7.releases.preview.test".into(),
            "/",
            404,
            "default server",
        ),
        ("a leading dash", "-x.preview.test".into(), "/", 404, "default server"),
        (
            "a 64-character label",
            format!("{too_long}.preview.test"),
            "/",
            404,
            "default server",
        ),
        (
            "a 63-character label",
            format!("{long}.preview.test"),
            "/",
            404,
            "404 Not Found",
        ),
        ("the bare domain", "preview.test".into(), "/", 404, "default server"),
        ("another domain", "pr-7.example.com".into(), "/", 404, "default server"),
        ("dots in Host", "..preview.test".into(), "/", 400, ""),
        ("a slash in Host", "pr-7/../x.preview.test".into(), "/", 400, ""),
        (
            "../ in the URI",
            "pr-7.preview.test".into(),
            "/../../secret.txt",
            400,
            "",
        ),
        (
            "encoded ../",
            "pr-7.preview.test".into(),
            "/%2e%2e/%2e%2e/secret.txt",
            400,
            "",
        ),
        (
            "../ to a sibling",
            "pr-7.preview.test".into(),
            "/../branch-feature-foo-bar/index.html",
            400,
            "",
        ),
    ];
    for (what, host, path, status, body) in &cases {
        let (got, text) = n.get(host, path);
        assert_eq!(got, *status, "{what}: {host}{path} -> {text}");
        assert!(
            text.contains(body),
            "{what}: {host}{path} -> {got} {text:?}, want {body:?}"
        );
        assert!(!text.contains("outside previews.to"), "{what}: left previews.to");
    }
    // a switch of the symlink is seen by the next request
    lay_out(&to, "pr-7", "r2", &[("index.html", "pr-7 second\n")]);
    assert_eq!(n.preview("pr-7", "/"), (200, "pr-7 second\n".into()));
}

// ----------------------------------------------------------------------------------------
// Previews built from real, signed deliveries through the real binary as a CGI.

/// A world whose hook `docs` builds `main` into `www/docs` and previews into
/// `www/previews`; `provider` and `previews` (extra keys of the previews table) vary. Its
/// one step writes the page (the preview's name, ref and commit), a file every build has
/// alike (shared with production by a hard link), and appends to `ran` what it built.
/// With `gate` set, a preview's step waits for that file (production's never does).
fn preview_world(name: &str, provider: &str, previews: &str, gate: Option<&Path>) -> World {
    let w = World::new(name);
    let ran = w.path("ran");
    let wait = match gate {
        Some(g) => format!(
            "if [ -n \"$DEPLOY_HOOK_PREVIEW\" ]; then echo \"start $DEPLOY_HOOK_PREVIEW $DEPLOY_HOOK_COMMIT\" >> {r}; while [ ! -e {g} ]; do sleep 0.02; done; fi; ",
            r = ran.display(),
            g = g.display()
        ),
        None => String::new(),
    };
    let step = format!(
        "{wait}mkdir -p dist && printf '%s %s %s\\n' \"${{DEPLOY_HOOK_PREVIEW:-production}}\" \"$DEPLOY_HOOK_REF\" \"$DEPLOY_HOOK_COMMIT\" > dist/index.html && echo 'the same in every build' > dist/shared.txt && echo \"${{DEPLOY_HOOK_PREVIEW_URL:-}}\" > dist/url.txt && echo \"built ${{DEPLOY_HOOK_PREVIEW:-production}} $DEPLOY_HOOK_COMMIT\" >> {r}",
        r = ran.display()
    );
    w.config(
        provider,
        &format!(
            "clean = [\"dist\"]\nsteps = [{}]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}\n[hooks.docs.previews]\nto = {:?}\nurl = \"http://{{name}}.{DOMAIN}/\"\n{previews}\n",
            toml_str(&step),
            w.path("www/docs").to_str().unwrap(),
            w.path("www/previews").to_str().unwrap(),
        ),
    );
    fs::create_dir_all(w.path("www")).unwrap();
    w
}

/// A delivery of `event` with `body`, signed as `provider` signs it.
fn deliver(w: &World, provider: &str, event: &str, body: &[u8]) -> Reply {
    let cgi = w.cgi().body(body);
    match provider {
        "github" => cgi
            .header("X-GitHub-Event", event)
            .header("X-Hub-Signature-256", github_sig(SECRET, body)),
        "gitlab" => cgi.header("X-Gitlab-Event", event).header("X-Gitlab-Token", SECRET),
        "gitea" => cgi
            .header("X-Gitea-Event", event)
            .header("X-Gitea-Signature", gitea_sig(SECRET, body)),
        "gitee" => {
            // signing mode: the token covers the timestamp, never the body
            let ts = fresh_gitee_ts();
            cgi.header("X-Gitee-Event", event)
                .header("X-Gitee-Timestamp", &ts)
                .header("X-Gitee-Token", gitee_token(SECRET, &ts))
        }
        other => panic!("no provider {other}"),
    }
    .run()
}

/// A different number each call, for names of this run's own.
fn rand_ms() -> u128 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    u128::from(N.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

fn push_body(branch: &str, after: &str) -> Vec<u8> {
    format!("{{\"ref\":\"refs/heads/{branch}\",\"after\":\"{after}\"}}").into_bytes()
}

/// The JSON of `json` with `path` (`/`-separated keys) set to `value`.
fn set(json: &[u8], path: &str, value: serde_json::Value) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(json).unwrap();
    let mut at = &mut v;
    for k in path.split('/') {
        at = &mut at[k];
    }
    *at = value;
    serde_json::to_vec(&v).unwrap()
}

fn preview_dir(w: &World, name: &str) -> PathBuf {
    w.hook_dir().join("previews").join(name)
}

fn preview_status(w: &World, name: &str) -> serde_json::Value {
    fs::read(preview_dir(w, name).join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn lock_free(path: &Path) -> bool {
    use fs2::FileExt;
    match fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => {
            let free = f.try_lock_exclusive().is_ok();
            let _ = FileExt::unlock(&f);
            free
        }
        Err(_) => true,
    }
}

/// Waits until preview `name` has built `builds` times and nothing of it runs or waits.
fn wait_preview(w: &World, name: &str, builds: usize) -> serde_json::Value {
    wait_for(&format!("preview {name}'s build"), Duration::from_secs(120), || {
        let s = preview_status(w, name);
        let dir = preview_dir(w, name);
        s["state"] == "idle"
            && s["history"].as_array().is_some_and(|h| h.len() >= builds)
            && !dir.join("pending").exists()
            && !dir.join("taking").exists()
            && lock_free(&dir.join("build.lock"))
    });
    preview_status(w, name)
}

/// Waits until preview `name` is gone (removed), with nothing of it left.
fn wait_removed(w: &World, name: &str) {
    wait_for(
        &format!("preview {name} to be removed"),
        Duration::from_secs(60),
        || !preview_dir(w, name).exists(),
    );
}

fn served(w: &World, name: &str, file: &str) -> Option<String> {
    fs::read_to_string(w.path("www/previews").join(name).join(file)).ok()
}

fn previews_json(w: &World) -> serde_json::Value {
    let out = w.cmd(&["previews", "docs", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn names(w: &World) -> Vec<String> {
    previews_json(w)["previews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

fn ino(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).unwrap().ino()
}

#[test]
fn a_branch_gets_a_preview_of_its_own_and_production_is_never_touched() {
    let w = preview_world("preview-branch", "github", "", None);
    let main = w.head();
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let production_page = fs::read_to_string(w.path("www/docs/index.html")).unwrap();
    assert_eq!(production_page, format!("production refs/heads/main {main}\n"));
    let production_tree = git(&w.repo, &["status", "--porcelain", "--ignored"]);

    let c1 = w.push_to("feature/Foo_Bar", "page.md", "feature\n");
    let r = deliver(&w, "github", "push", &push_body("feature/Foo_Bar", &c1));
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    let msg = r.json["message"].as_str().unwrap();
    assert!(
        msg.contains("preview branch-feature-foo-bar of branch feature/Foo_Bar")
            && msg.contains("http://branch-feature-foo-bar.preview.test/"),
        "{msg}"
    );
    let s = wait_preview(&w, "branch-feature-foo-bar", 1);
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    assert_eq!(
        served(&w, "branch-feature-foo-bar", "index.html").unwrap(),
        format!("branch-feature-foo-bar refs/heads/feature/Foo_Bar {c1}\n")
    );
    assert_eq!(
        served(&w, "branch-feature-foo-bar", "url.txt").unwrap(),
        "http://branch-feature-foo-bar.preview.test/\n"
    );
    // the preview's files that are the same as the live production release's are its files
    let live = fs::canonicalize(w.path("www/docs")).unwrap();
    let preview = fs::canonicalize(w.path("www/previews/branch-feature-foo-bar")).unwrap();
    assert_ne!(live, preview);
    assert_eq!(ino(&live.join("shared.txt")), ino(&preview.join("shared.txt")));
    // built in a working tree in the state folder, outside the checkout
    let tree = w.hook_dir().join("worktrees/branch-feature-foo-bar");
    assert!(tree.join(".git").is_file(), "a git worktree at {}", tree.display());
    assert_eq!(git(&tree, &["rev-parse", "HEAD"]), c1);

    // production's checkout, FETCH_HEAD, live site and status are as they were
    assert_eq!(git(&w.repo, &["rev-parse", "HEAD"]), main);
    assert_eq!(git(&w.repo, &["rev-parse", "FETCH_HEAD"]), main);
    assert_eq!(git(&w.repo, &["status", "--porcelain", "--ignored"]), production_tree);
    assert_eq!(
        fs::read_to_string(w.path("www/docs/index.html")).unwrap(),
        production_page
    );
    assert_eq!(w.status()["history"].as_array().unwrap().len(), 1);

    // a new commit on the branch: the preview follows, in the same tree
    let c2 = w.push_to("feature/Foo_Bar", "page.md", "feature 2\n");
    let r = deliver(&w, "github", "push", &push_body("feature/Foo_Bar", &c2));
    assert_eq!(r.status, 202, "{}", r.json);
    let s = wait_preview(&w, "branch-feature-foo-bar", 2);
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    assert_eq!(
        served(&w, "branch-feature-foo-bar", "index.html").unwrap(),
        format!("branch-feature-foo-bar refs/heads/feature/Foo_Bar {c2}\n")
    );

    // seen by `previews` and `status`
    let listed = previews_json(&w);
    let p = &listed["previews"][0];
    assert_eq!(
        (
            p["name"].as_str(),
            p["branch"].as_str(),
            p["ref"].as_str(),
            p["commit"].as_str()
        ),
        (
            Some("branch-feature-foo-bar"),
            Some("feature/Foo_Bar"),
            Some("refs/heads/feature/Foo_Bar"),
            Some(c2.as_str())
        ),
        "{listed}"
    );
    assert_eq!(p["url"], "http://branch-feature-foo-bar.preview.test/");
    assert!(p["built"].is_string(), "{listed}");
    let text = String::from_utf8(w.cmd(&["previews", "docs"]).stdout).unwrap();
    assert!(
        text.contains("branch-feature-foo-bar") && text.contains(&c2[..10]),
        "{text}"
    );
    let status = String::from_utf8(w.cmd(&["status", "docs"]).stdout).unwrap();
    assert!(status.contains("branch-feature-foo-bar"), "{status}");
    let json: serde_json::Value = serde_json::from_slice(&w.cmd(&["status", "docs", "--json"]).stdout).unwrap();
    assert_eq!(json["previews"][0]["name"], "branch-feature-foo-bar", "{json}");
    // the hook's own branch is production, never a preview
    let r = deliver(&w, "github", "push", &push_body("main", &main));
    assert_eq!(r.status, 202);
    w.wait_idle();
    assert_eq!(names(&w), ["branch-feature-foo-bar"]);
}

/// Pushes `branch` with a commit and the same commit as `pull_ref` (a pull request from a
/// branch of the same repository, as the forge makes its pull ref); returns the commit.
fn pull_request_from_branch(w: &World, branch: &str, pull_ref: &str) -> String {
    let c = w.push_to(branch, "pr.md", &format!("{branch} {pull_ref}\n"));
    git(&w.seed, &["push", "-q", "-f", "origin", &format!("HEAD:{pull_ref}")]);
    c
}

#[test]
fn pull_requests_of_every_forge_get_previews_and_closing_removes_them() {
    for (provider, event, opened, closed, branch, pull_ref, name) in [
        (
            "github",
            "pull_request",
            "github-pull_request-opened.json",
            Some("github-pull_request-closed.json"),
            "changes",
            "refs/pull/2/head",
            "pr-2",
        ),
        (
            "gitlab",
            "Merge Request Hook",
            "gitlab-merge_request-create.json",
            Some("gitlab-merge_request-merge.json"),
            "feature",
            "refs/merge-requests/1/head",
            "pr-1",
        ),
        (
            "gitea",
            "pull_request",
            "gitea-pull_request-opened.json",
            Some("gitea-pull_request-closed.json"),
            "feature",
            "refs/pull/1/head",
            "pr-1",
        ),
        (
            "gitee",
            "Merge Request Hook",
            "gitee-merge_request-open.json",
            Some("gitee-merge_request-merge.json"),
            "feat-3",
            "refs/pull/9/head",
            "pr-9",
        ),
    ] {
        let w = preview_world(&format!("preview-pr-{provider}"), provider, "", None);
        let c = pull_request_from_branch(&w, branch, pull_ref);
        // the real payload, byte for byte, signed
        let r = deliver(&w, provider, event, &fixture(opened));
        assert_eq!((r.status, r.word()), (202, "queued"), "{provider}: {}", r.json);
        assert!(
            r.json["message"]
                .as_str()
                .unwrap()
                .contains(&format!("http://{name}.preview.test/")),
            "{}",
            r.json
        );
        let s = wait_preview(&w, name, 1);
        assert_eq!(s["last"]["result"], "succeeded", "{provider}: {s}");
        assert_eq!(
            served(&w, name, "index.html").unwrap(),
            format!("{name} {pull_ref} {c}\n"),
            "{provider}"
        );
        let listed = previews_json(&w);
        let number: u64 = name[3..].parse().unwrap();
        assert_eq!(listed["previews"][0]["pull_request"], number, "{listed}");
        assert!(!w.path("www/docs").exists(), "{provider}: production was not built");

        // closed or merged: everything of it goes
        let r = deliver(&w, provider, event, &fixture(closed.unwrap()));
        assert_eq!((r.status, r.word()), (202, "queued"), "{provider}: {}", r.json);
        assert!(
            r.json["message"].as_str().unwrap().contains("will be removed"),
            "{}",
            r.json
        );
        wait_removed(&w, name);
        assert!(
            fs::symlink_metadata(w.path("www/previews").join(name)).is_err(),
            "{provider}"
        );
        assert!(!w.path(&format!("www/previews/{name}.releases")).exists(), "{provider}");
        assert!(!w.hook_dir().join("worktrees").join(name).exists(), "{provider}");
        let r = Command::new("git")
            .args([
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/deploy-hook/previews/{name}"),
            ])
            .current_dir(&w.repo)
            .output()
            .unwrap();
        assert!(!r.status.success(), "{provider}: the preview's ref is gone");
        assert!(!git(&w.repo, &["worktree", "list"]).contains(name), "{provider}");
        assert_eq!(names(&w), Vec::<String>::new());
        // closing again: nothing to remove
        let r = deliver(&w, provider, event, &fixture(closed.unwrap()));
        assert_eq!((r.status, r.word()), (200, "ignored"), "{provider}: {}", r.json);
    }
}

#[test]
fn a_pull_request_from_a_fork_is_never_built_even_when_the_body_says_otherwise() {
    let w = preview_world("preview-fork", "github", "", None);
    let ran = w.path("ran");
    // the fork's commit: only under the pull ref, on no branch of the repository
    git(&w.seed, &["checkout", "-q", "-b", "fork-work"]);
    fs::write(w.seed.join("evil.md"), "from a fork\n").unwrap();
    git(&w.seed, &["add", "-A"]);
    git(&w.seed, &["commit", "-q", "-m", "fork"]);
    let fork = git(&w.seed, &["rev-parse", "HEAD"]);
    git(&w.seed, &["push", "-q", "origin", "HEAD:refs/pull/2/head"]);

    // the body says so: answered, not built
    let opened = fixture("github-pull_request-opened.json");
    let from_fork = set(
        &opened,
        "pull_request/head/repo/full_name",
        "mallory/Hello-World".into(),
    );
    let r = deliver(&w, "github", "pull_request", &from_fork);
    assert_eq!((r.status, r.word()), (200, "ignored"), "{}", r.json);
    assert!(r.json["message"].as_str().unwrap().contains("fork"), "{}", r.json);
    assert!(!w.hook_dir().join("previews/pr-2").exists());

    // the body lies (a signed body saying the head is the base repository): git says no
    let r = deliver(&w, "github", "pull_request", &opened);
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    let s = wait_preview(&w, "pr-2", 1);
    assert_eq!(s["last"]["result"], "failed", "{s}");
    assert_eq!(s["last"]["failed_step"], "fork check", "{s}");
    let log = fs::read_to_string(s["last"]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("is not the head of any branch"), "{log}");
    assert!(served(&w, "pr-2", "index.html").is_none(), "nothing served");
    assert!(
        !fs::read_to_string(&ran).unwrap_or_default().contains(&fork),
        "no step ran on the fork's commit"
    );

    // Gitee's sign mode signs no body at all: a forged body is checked the same way
    let g = preview_world("preview-fork-gitee", "gitee", "", None);
    git(&g.seed, &["checkout", "-q", "-b", "fork-work"]);
    fs::write(g.seed.join("evil.md"), "from a fork\n").unwrap();
    git(&g.seed, &["add", "-A"]);
    git(&g.seed, &["commit", "-q", "-m", "fork"]);
    git(&g.seed, &["push", "-q", "origin", "HEAD:refs/pull/9/head"]);
    let r = deliver(
        &g,
        "gitee",
        "Merge Request Hook",
        &fixture("gitee-merge_request-open.json"),
    );
    assert_eq!(r.status, 202, "{}", r.json);
    let s = wait_preview(&g, "pr-9", 1);
    assert_eq!(
        (s["last"]["result"].as_str(), s["last"]["failed_step"].as_str()),
        (Some("failed"), Some("fork check")),
        "{s}"
    );
    assert!(served(&g, "pr-9", "index.html").is_none());

    // forks = true: built as it is
    let t = preview_world("preview-fork-trusted", "github", "forks = true", None);
    git(&t.seed, &["checkout", "-q", "-b", "fork-work"]);
    fs::write(t.seed.join("evil.md"), "from a fork\n").unwrap();
    git(&t.seed, &["add", "-A"]);
    git(&t.seed, &["commit", "-q", "-m", "fork"]);
    let fork = git(&t.seed, &["rev-parse", "HEAD"]);
    git(&t.seed, &["push", "-q", "origin", "HEAD:refs/pull/2/head"]);
    let r = deliver(&t, "github", "pull_request", &from_fork);
    assert_eq!(r.status, 202, "{}", r.json);
    let s = wait_preview(&t, "pr-2", 1);
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    assert_eq!(
        served(&t, "pr-2", "index.html").unwrap(),
        format!("pr-2 refs/pull/2/head {fork}\n")
    );
}

#[test]
fn a_missing_pull_ref_fails_with_its_name_and_nothing_else_is_built() {
    let w = preview_world("preview-noref", "gitee", "forks = true", None);
    // Gitee documents refs/pull/N/MERGE; only that one is there
    w.push_to("feat-3", "pr.md", "x\n");
    git(&w.seed, &["push", "-q", "origin", "HEAD:refs/pull/9/MERGE"]);
    let r = deliver(
        &w,
        "gitee",
        "Merge Request Hook",
        &fixture("gitee-merge_request-open.json"),
    );
    assert_eq!(r.status, 202, "{}", r.json);
    let s = wait_preview(&w, "pr-9", 1);
    assert_eq!(s["last"]["result"], "failed", "{s}");
    let step = s["last"]["failed_step"].as_str().unwrap();
    assert!(
        step.starts_with("git fetch") && step.contains("refs/pull/9/head"),
        "{s}"
    );
    let log = fs::read_to_string(s["last"]["log"].as_str().unwrap()).unwrap();
    assert!(
        log.contains("refs/pull/9/head") && log.contains("nothing else is built"),
        "{log}"
    );
    assert!(served(&w, "pr-9", "index.html").is_none());
    let fetched = Command::new("git")
        .args(["rev-parse", "--verify", "-q", "refs/deploy-hook/previews/pr-9"])
        .current_dir(&w.repo)
        .output()
        .unwrap();
    assert!(
        !fetched.status.success(),
        "refs/pull/9/MERGE was not fetched in its place"
    );
}

#[test]
fn deleting_a_branch_removes_its_preview_on_each_forge() {
    let w = preview_world("preview-delete", "github", "", None);
    let c = w.push_to("docs-x", "a.md", "x\n");
    deliver(&w, "github", "push", &push_body("docs-x", &c));
    wait_preview(&w, "branch-docs-x", 1);
    // a delivery that says the branch is deleted while the remote still has it: kept
    let r = deliver(
        &w,
        "github",
        "push",
        format!(
            "{{\"ref\":\"refs/heads/docs-x\",\"deleted\":true,\"after\":\"{}\"}}",
            "0".repeat(40)
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.json);
    wait_for("the removal to be looked at", Duration::from_secs(60), || {
        !preview_dir(&w, "branch-docs-x").join("remove").exists()
    });
    assert!(
        served(&w, "branch-docs-x", "index.html").is_some(),
        "the branch is still there: kept"
    );
    // deleted for real
    git(&w.seed, &["push", "-q", "origin", "--delete", "docs-x"]);
    let r = deliver(
        &w,
        "github",
        "push",
        format!(
            "{{\"ref\":\"refs/heads/docs-x\",\"deleted\":true,\"after\":\"{}\"}}",
            "0".repeat(40)
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.json);
    wait_removed(&w, "branch-docs-x");
    assert!(fs::symlink_metadata(w.path("www/previews/branch-docs-x")).is_err());

    // Gitea: the delete event (then a push with a zero `after`, which finds nothing)
    let g = preview_world("preview-delete-gitea", "gitea", "", None);
    let c = g.push_to("feature", "a.md", "x\n");
    deliver(&g, "gitea", "push", &push_body("feature", &c));
    wait_preview(&g, "branch-feature", 1);
    git(&g.seed, &["push", "-q", "origin", "--delete", "feature"]);
    let r = deliver(
        &g,
        "gitea",
        "delete",
        br#"{"ref":"feature","ref_type":"branch","pusher_type":"user"}"#,
    );
    assert_eq!(r.status, 202, "{}", r.json);
    wait_removed(&g, "branch-feature");
    let r = deliver(&g, "gitea", "push", &push_body("feature", &"0".repeat(40)));
    assert_eq!((r.status, r.word()), (200, "ignored"), "{}", r.json);
}

#[test]
fn keep_removes_the_least_recently_built_preview() {
    let w = preview_world("preview-keep", "github", "keep = 2", None);
    for b in ["a", "b", "c"] {
        let c = w.push_to(b, "x.md", b);
        let r = deliver(&w, "github", "push", &push_body(b, &c));
        assert_eq!(r.status, 202, "{}", r.json);
        wait_preview(&w, &format!("branch-{b}"), 1);
    }
    wait_removed(&w, "branch-a");
    assert_eq!(names(&w), ["branch-b", "branch-c"]);
    // b is rebuilt: now c is the least recently built
    let c = w.push_to("b", "x.md", "b2");
    deliver(&w, "github", "push", &push_body("b", &c));
    wait_preview(&w, "branch-b", 2);
    let c = w.push_to("d", "x.md", "d");
    deliver(&w, "github", "push", &push_body("d", &c));
    wait_preview(&w, "branch-d", 1);
    wait_removed(&w, "branch-c");
    assert_eq!(names(&w), ["branch-b", "branch-d"]);
    assert!(served(&w, "branch-c", "index.html").is_none());
}

#[test]
fn a_production_push_during_a_preview_build_stops_it_and_the_preview_is_built_after() {
    let gate = std::env::temp_dir().join(format!("dh-preview-gate-{}-{}", std::process::id(), rand_ms()));
    let _ = fs::remove_file(&gate);
    let w = preview_world("preview-first", "github", "", Some(&gate));
    let ran = w.path("ran");
    let slow = w.push_to("slow", "s.md", "slow\n");
    let r = deliver(&w, "github", "push", &push_body("slow", &slow));
    assert_eq!(r.status, 202, "{}", r.json);
    wait_for("the preview's step to start", Duration::from_secs(60), || {
        fs::read_to_string(&ran)
            .unwrap_or_default()
            .contains("start branch-slow")
    });

    // production: built while the preview's step still waits for a gate nobody opens
    git(&w.seed, &["checkout", "-q", "main"]);
    let m = w.push("index.md", "second\n");
    let r = deliver(&w, "github", "push", &push_body("main", &m));
    assert_eq!(r.status, 202, "{}", r.json);
    let s = w.wait_idle();
    assert_eq!(
        (s["last"]["result"].as_str(), s["last"]["commit"].as_str()),
        (Some("succeeded"), Some(m.as_str())),
        "{s}"
    );
    assert_eq!(
        fs::read_to_string(w.path("www/docs/index.html")).unwrap(),
        format!("production refs/heads/main {m}\n")
    );
    assert!(!gate.exists(), "production did not wait for the preview");

    // the preview's build was stopped, and it is being built again
    wait_for("the stopped build to be recorded", Duration::from_secs(60), || {
        preview_status(&w, "branch-slow")["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|b| b["result"] == "stopped"))
    });
    wait_for("the preview to be built again", Duration::from_secs(60), || {
        fs::read_to_string(&ran)
            .unwrap_or_default()
            .matches("start branch-slow")
            .count()
            == 2
    });
    fs::write(&gate, "").unwrap();
    let s = wait_preview(&w, "branch-slow", 2);
    let results: Vec<&str> = s["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["succeeded", "stopped"], "{s}");
    assert_eq!(
        served(&w, "branch-slow", "index.html").unwrap(),
        format!("branch-slow refs/heads/slow {slow}\n")
    );
    // production's build and the preview's never ran at once: the preview's steps ran
    // before production's and after it, never between
    let text = fs::read_to_string(&ran).unwrap();
    let order: Vec<&str> = text
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .map(|l| {
            if l.starts_with("built production") {
                "production"
            } else if l.starts_with("start") {
                "preview start"
            } else {
                "preview built"
            }
        })
        .collect();
    assert_eq!(
        order,
        ["preview start", "production", "preview start", "preview built"],
        "{text}"
    );
    let _ = fs::remove_file(&gate);
}

#[test]
fn names_are_dns_labels_cut_or_hashed_and_branch_names_git_refuses_never_reach_git() {
    let w = preview_world("preview-names", "github", "", None);
    let long = "x".repeat(200);
    let mut made = Vec::new();
    for (branch, name) in [
        ("Feature/Foo_Bar", "branch-feature-foo-bar".to_string()),
        ("feature-foo-bar", "branch-feature-foo-bar-a404f7".to_string()),
        ("docs/文档-更新", "branch-docs-804a8f".to_string()),
        (long.as_str(), format!("branch-{}-e09a8d", "x".repeat(49))),
    ] {
        let c = w.push_to(branch, "n.md", branch);
        let r = deliver(&w, "github", "push", &push_body(branch, &c));
        assert_eq!(r.status, 202, "{branch}: {}", r.json);
        assert!(
            r.json["message"]
                .as_str()
                .unwrap()
                .contains(&format!("preview {name} ")),
            "{branch}: {}",
            r.json
        );
        let s = wait_preview(&w, &name, 1);
        assert_eq!(s["last"]["result"], "succeeded", "{branch}: {s}");
        assert_eq!(
            served(&w, &name, "index.html").unwrap(),
            format!("{name} refs/heads/{branch} {c}\n"),
            "{branch}"
        );
        assert!(name.len() <= 63);
        made.push(name);
    }
    made.sort();
    assert_eq!(names(&w), made);
    // a name is given once: the first branch keeps its name when pushed again
    let c = w.push_to("Feature/Foo_Bar", "n.md", "again");
    deliver(&w, "github", "push", &push_body("Feature/Foo_Bar", &c));
    wait_preview(&w, "branch-feature-foo-bar", 2);
    assert_eq!(names(&w), made);

    // names git refuses are answered and never reach git; nothing is made
    for bad in ["..", "a..b", "/", "a//b", "-x", "a b", "x.lock", ".hidden", "a:b"] {
        let r = deliver(&w, "github", "push", &push_body(bad, &c));
        assert_eq!((r.status, r.word()), (200, "ignored"), "{bad:?}: {}", r.json);
        assert!(
            r.json["message"]
                .as_str()
                .unwrap()
                .contains("not a branch name git accepts"),
            "{}",
            r.json
        );
    }
    assert_eq!(names(&w), made);
}

#[test]
fn previews_are_served_through_nginx_at_their_own_host_names() {
    requires!(Nginx);
    let w = preview_world("preview-served", "github", "", None);
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let c = pull_request_from_branch(&w, "changes", "refs/pull/2/head");
    deliver(
        &w,
        "github",
        "pull_request",
        &fixture("github-pull_request-opened.json"),
    );
    wait_preview(&w, "pr-2", 1);
    let u = w.push_to("docs/文档-更新", "u.md", "unicode\n");
    deliver(&w, "github", "push", &push_body("docs/文档-更新", &u));
    wait_preview(&w, "branch-docs-804a8f", 1);
    let n = PreviewNginx::start(&w, &w.path("www/previews"));
    assert_eq!(n.preview("pr-2", "/"), (200, format!("pr-2 refs/pull/2/head {c}\n")));
    assert_eq!(
        n.preview("pr-2", "/shared.txt"),
        (200, "the same in every build\n".into())
    );
    assert_eq!(
        n.preview("branch-docs-804a8f", "/"),
        (200, format!("branch-docs-804a8f refs/heads/docs/文档-更新 {u}\n"))
    );
    assert_eq!(n.preview("pr-3", "/").0, 404, "an unknown preview");
    assert_eq!(n.get("pr-2.releases.preview.test", "/").0, 404);
    // closed: gone from nginx at once
    deliver(
        &w,
        "github",
        "pull_request",
        &fixture("github-pull_request-closed.json"),
    );
    wait_removed(&w, "pr-2");
    assert_eq!(n.preview("pr-2", "/").0, 404);
    assert_eq!(n.preview("branch-docs-804a8f", "/").0, 200);
}

#[test]
fn previews_remove_stops_a_running_build_and_removes_everything() {
    let gate = std::env::temp_dir().join(format!("dh-preview-gate-rm-{}-{}", std::process::id(), rand_ms()));
    let _ = fs::remove_file(&gate);
    let w = preview_world("preview-remove", "github", "", Some(&gate));
    let c = w.push_to("x", "x.md", "x\n");
    deliver(&w, "github", "push", &push_body("x", &c));
    wait_for("the preview's step to start", Duration::from_secs(60), || {
        fs::read_to_string(w.path("ran"))
            .unwrap_or_default()
            .contains("start branch-x")
    });
    let out = w.cmd(&["previews", "docs", "--remove", "branch-x"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "docs: removed preview branch-x\n");
    assert!(!preview_dir(&w, "branch-x").exists());
    assert!(!w.hook_dir().join("worktrees/branch-x").exists());
    assert!(!gate.exists(), "the build was stopped, not waited for");
    assert_eq!(names(&w), Vec::<String>::new());
    let text = String::from_utf8(w.cmd(&["previews", "docs"]).stdout).unwrap();
    assert_eq!(text, "docs: no previews (at most 10)\n");

    // a name that is not one: exit 2, with the names there are
    let out = w.cmd(&["previews", "docs", "--remove", "branch-x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no preview named"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = w.cmd(&["previews", "docs", "--remove", "../etc"]);
    assert_eq!(out.status.code(), Some(2));
    // a hook without previews: exit 2, saying how to get them
    w.config("github", "steps = [\"true\"]");
    let out = w.cmd(&["previews", "docs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[hooks.docs.previews]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_says_where_previews_go_and_what_is_missing() {
    let w = preview_world("preview-check", "github", "", None);
    let text = String::from_utf8(w.cmd(&["check"]).stdout).unwrap();
    let line = |t: &str| {
        t.lines()
            .find(|l| l.contains("previews.to"))
            .map(String::from)
            .unwrap_or_default()
    };
    assert!(line(&text).contains("does not exist"), "{text}");
    assert!(
        text.contains("install -d -o") && text.contains("www/previews"),
        "{text}"
    );
    fs::create_dir_all(w.path("www/previews")).unwrap();
    let text = String::from_utf8(w.cmd(&["check"]).stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("previews go to") && l.contains("http://NAME.preview.test/")),
        "{text}"
    );
    assert!(!line(&text).contains("does not exist"), "{text}");
}

#[test]
fn pull_requests_follow_new_commits_ignore_edits_and_come_back_when_reopened() {
    // (provider, event, opened, new commits, closed, reopened, branch, pull ref, name)
    let gitlab_create = fixture("gitlab-merge_request-create.json");
    let gitlab_update = set(
        &set(&gitlab_create, "object_attributes/action", "update".into()),
        "object_attributes/oldrev",
        "1111111111111111111111111111111111111111".into(),
    );
    let github_opened = fixture("github-pull_request-opened.json");
    let gitea_opened = fixture("gitea-pull_request-opened.json");
    let gitee_open = fixture("gitee-merge_request-open.json");
    for (provider, event, opened, updated, closed, reopened, branch, pull_ref, name) in [
        (
            "github",
            "pull_request",
            github_opened.clone(),
            fixture("github-pull_request-synchronize.json"),
            fixture("github-pull_request-closed.json"),
            set(&github_opened, "action", "reopened".into()),
            "changes",
            "refs/pull/2/head",
            "pr-2",
        ),
        (
            "gitlab",
            "Merge Request Hook",
            gitlab_create.clone(),
            gitlab_update,
            fixture("gitlab-merge_request-close.json"),
            set(&gitlab_create, "object_attributes/action", "reopen".into()),
            "feature",
            "refs/merge-requests/1/head",
            "pr-1",
        ),
        (
            "gitea",
            "pull_request",
            gitea_opened.clone(),
            fixture("gitea-pull_request-synchronized.json"),
            fixture("gitea-pull_request-closed.json"),
            set(&gitea_opened, "action", "reopened".into()),
            "feature",
            "refs/pull/1/head",
            "pr-1",
        ),
        (
            "gitee",
            "Merge Request Hook",
            gitee_open.clone(),
            fixture("gitee-merge_request-update.json"),
            fixture("gitee-merge_request-merge.json"),
            gitee_open.clone(),
            "feat-3",
            "refs/pull/9/head",
            "pr-9",
        ),
    ] {
        let w = preview_world(&format!("preview-sync-{provider}"), provider, "", None);
        let c1 = pull_request_from_branch(&w, branch, pull_ref);
        let r = deliver(&w, provider, event, &opened);
        assert_eq!((r.status, r.word()), (202, "queued"), "{provider}: {}", r.json);
        wait_preview(&w, name, 1);
        assert_eq!(
            served(&w, name, "index.html").unwrap(),
            format!("{name} {pull_ref} {c1}\n"),
            "{provider}"
        );

        // new commits: built again, in place, with what the pull ref now holds
        let c2 = w.push_to(branch, "pr.md", "a new commit\n");
        git(&w.seed, &["push", "-q", "-f", "origin", &format!("HEAD:{pull_ref}")]);
        assert_ne!(c1, c2);
        let r = deliver(&w, provider, event, &updated);
        assert_eq!((r.status, r.word()), (202, "queued"), "{provider}: {}", r.json);
        let s = wait_preview(&w, name, 2);
        assert_eq!(s["last"]["result"], "succeeded", "{provider}: {s}");
        assert_eq!(
            served(&w, name, "index.html").unwrap(),
            format!("{name} {pull_ref} {c2}\n"),
            "{provider}"
        );

        // an edit that brings no commit (a title, a label): answered, nothing built
        let edit = match provider {
            "github" | "gitea" => set(&opened, "action", "edited".into()),
            "gitlab" => set(&opened, "object_attributes/action", "update".into()),
            _ => set(&updated, "action_desc", "update_label".into()),
        };
        let r = deliver(&w, provider, event, &edit);
        assert_eq!((r.status, r.word()), (200, "ignored"), "{provider}: {}", r.json);
        assert_eq!(
            preview_status(&w, name)["history"].as_array().unwrap().len(),
            2,
            "{provider}: nothing built"
        );

        // closed (or merged), then reopened: removed, then made again
        let r = deliver(&w, provider, event, &closed);
        assert_eq!((r.status, r.word()), (202, "queued"), "{provider}: {}", r.json);
        wait_removed(&w, name);
        assert!(served(&w, name, "index.html").is_none(), "{provider}");
        let r = deliver(&w, provider, event, &reopened);
        assert_eq!((r.status, r.word()), (202, "queued"), "{provider}: {}", r.json);
        let s = wait_preview(&w, name, 1);
        assert_eq!(s["last"]["result"], "succeeded", "{provider}: {s}");
        assert_eq!(
            served(&w, name, "index.html").unwrap(),
            format!("{name} {pull_ref} {c2}\n"),
            "{provider}"
        );
        assert_eq!(names(&w), [name], "{provider}");
    }
}

#[test]
fn deleting_a_branch_removes_its_preview_on_gitlab_and_gitee_too() {
    let zeros = "0".repeat(40);
    for (provider, event, deleted) in [
        // GitLab: a push whose `after` is zeros, no `deleted` field
        (
            "gitlab",
            "Push Hook",
            format!("{{\"object_kind\":\"push\",\"ref\":\"refs/heads/docs-x\",\"before\":\"{}\",\"after\":\"{zeros}\",\"checkout_sha\":null}}", "1".repeat(40)),
        ),
        // Gitee: `deleted: true` (and zeros)
        (
            "gitee",
            "Push Hook",
            format!("{{\"hook_name\":\"push_hooks\",\"ref\":\"refs/heads/docs-x\",\"deleted\":true,\"created\":false,\"after\":\"{zeros}\"}}"),
        ),
    ] {
        let w = preview_world(&format!("preview-delete-{provider}"), provider, "", None);
        let c = w.push_to("docs-x", "a.md", "x\n");
        let r = deliver(&w, provider, event, &push_body("docs-x", &c));
        assert_eq!((r.status, r.word()), (202, "queued"), "{provider}: {}", r.json);
        wait_preview(&w, "branch-docs-x", 1);
        assert!(served(&w, "branch-docs-x", "index.html").is_some(), "{provider}");
        git(&w.seed, &["push", "-q", "origin", "--delete", "docs-x"]);
        let r = deliver(&w, provider, event, deleted.as_bytes());
        assert_eq!((r.status, r.word()), (202, "queued"), "{provider}: {}", r.json);
        wait_removed(&w, "branch-docs-x");
        assert!(fs::symlink_metadata(w.path("www/previews/branch-docs-x")).is_err(), "{provider}");
        assert!(!w.path("www/previews/branch-docs-x.releases").exists(), "{provider}");
        assert!(!w.hook_dir().join("worktrees/branch-docs-x").exists(), "{provider}");
        assert_eq!(names(&w), Vec::<String>::new(), "{provider}");
    }
}

#[test]
fn a_merge_request_from_a_gitlab_fork_is_answered_and_never_built() {
    let w = preview_world("preview-fork-gitlab", "gitlab", "", None);
    pull_request_from_branch(&w, "feature", "refs/merge-requests/1/head");
    let from_fork = set(
        &fixture("gitlab-merge_request-create.json"),
        "object_attributes/source_project_id",
        4_861_504.into(),
    );
    let r = deliver(&w, "gitlab", "Merge Request Hook", &from_fork);
    assert_eq!((r.status, r.word()), (200, "ignored"), "{}", r.json);
    assert!(r.json["message"].as_str().unwrap().contains("fork"), "{}", r.json);
    assert!(!w.hook_dir().join("previews/pr-1").exists());
    assert!(!w.path("ran").exists(), "no step ran");
    // Gitee's fork body is answered the same way
    let g = preview_world("preview-fork-gitee-body", "gitee", "", None);
    let r = deliver(
        &g,
        "gitee",
        "Merge Request Hook",
        &fixture("gitee-merge_request-open-fork.json"),
    );
    assert_eq!((r.status, r.word()), (200, "ignored"), "{}", r.json);
    assert!(!g.hook_dir().join("previews/pr-9").exists());
}

#[test]
fn previews_end_to_end_as_www_data_through_nginx_and_fcgiwrap() {
    requires!(Root, WwwData, Nginx);
    use crate::servers::Web;
    use std::os::unix::fs::MetadataExt;
    let w = preview_world("preview-www-data", "github", "", None);
    let ok = Command::new("chown")
        .args(["-R", "www-data:www-data"])
        .arg(w.path("www"))
        .status()
        .unwrap();
    assert!(ok.success());
    let web = Web::nginx(&w);
    let www_data = fs::metadata(&w.repo).unwrap().uid();
    let post = |event: &str, body: &[u8]| {
        web.post(
            "/hooks/docs",
            &[
                ("X-GitHub-Event".to_string(), event.to_string()),
                ("X-Hub-Signature-256".to_string(), github_sig(SECRET, body)),
                ("Content-Type".to_string(), "application/json".to_string()),
            ],
            body,
        )
    };
    // production first, then a pull request: both built by www-data's worker
    let main = w.head();
    let r = post("push", &push_body("main", &main));
    assert_eq!(r.status, 202, "{r:?}\n{}", web.error_log_text());
    w.wait_idle();
    let c = pull_request_from_branch(&w, "changes", "refs/pull/2/head");
    let r = post("pull_request", &fixture("github-pull_request-opened.json"));
    assert_eq!(r.status, 202, "{r:?}\n{}", web.error_log_text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("http://pr-2.preview.test/"),
        "{:?}",
        r.json()
    );
    let s = wait_preview(&w, "pr-2", 1);
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    let tree = w.hook_dir().join("worktrees/pr-2");
    assert_eq!(
        fs::metadata(&tree).unwrap().uid(),
        www_data,
        "the worktree is www-data's"
    );
    let release = fs::canonicalize(w.path("www/previews/pr-2")).unwrap();
    assert_eq!(fs::metadata(release.join("index.html")).unwrap().uid(), www_data);
    let live = fs::canonicalize(w.path("www/docs")).unwrap();
    assert_eq!(ino(&live.join("shared.txt")), ino(&release.join("shared.txt")));

    // served by the shipped previews.conf, by Host header
    let n = PreviewNginx::start(&w, &w.path("www/previews"));
    assert_eq!(n.preview("pr-2", "/"), (200, format!("pr-2 refs/pull/2/head {c}\n")));
    assert_eq!(n.get("PR-2.Preview.Test.", "/").0, 200, "nginx lowercases the Host");
    assert_eq!(n.preview("pr-3", "/").0, 404);

    // `previews` and `status` as root drop to the state's owner and see it
    let listed = previews_json(&w);
    assert_eq!(listed["previews"][0]["name"], "pr-2", "{listed}");
    let status = String::from_utf8(w.cmd(&["status", "docs"]).stdout).unwrap();
    assert!(status.contains("pr-2"), "{status}");

    // merged: removed, and nginx answers 404 at once
    let r = post("pull_request", &fixture("github-pull_request-closed.json"));
    assert_eq!(r.status, 202, "{r:?}");
    wait_removed(&w, "pr-2");
    assert_eq!(n.preview("pr-2", "/").0, 404);
    assert!(!tree.exists());
}

#[test]
fn with_a_report_a_previews_commit_status_links_to_the_preview_and_the_page_lists_it() {
    requires!(Python);
    use crate::doubles::Doubles;
    use std::os::unix::fs::PermissionsExt;
    const TOKEN: &str = "ghp_previewtoken0123456789";
    let w = preview_world("preview-report", "github", "", None);
    let d = Doubles::start(
        &w.path("doubles"),
        &serde_json::json!({"github": {"token": TOKEN, "repo": "acme/docs", "scopes": "repo:status"}}),
    );
    let token = w.path("docs.token");
    fs::write(&token, format!("{TOKEN}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    let page = w.path("page");
    let mut config = fs::read_to_string(&w.config).unwrap();
    config.push_str(&format!(
        "[hooks.docs.report]\napi = {:?}\nrepo = \"acme/docs\"\ntoken_file = {:?}\n\
         [hooks.docs.page]\ndir = {:?}\nurl = \"https://docs.example.com/_builds/\"\n",
        d.url("/github"),
        token.to_str().unwrap(),
        page.to_str().unwrap()
    ));
    fs::write(&w.config, config).unwrap();
    let limit = Duration::from_secs(60);
    let page_previews = || -> Vec<String> {
        fs::read(page.join("status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|s| s["previews"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|p| format!("{} {} {}", p["name"], p["url"], p["commit"]))
            .collect()
    };

    let main = w.head();
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    d.wait_for("github", 2, limit);
    assert!(page_previews().is_empty());

    let c = pull_request_from_branch(&w, "changes", "refs/pull/2/head");
    let r = deliver(
        &w,
        "github",
        "pull_request",
        &fixture("github-pull_request-opened.json"),
    );
    assert_eq!(r.status, 202, "{}", r.json);
    let s = wait_preview(&w, "pr-2", 1);
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    let statuses = d.wait_for("github", 4, limit);
    let (production, preview): (Vec<_>, Vec<_>) = statuses
        .iter()
        .partition(|r| r["body"]["context"] == "deploy-hook/docs");
    // production's: on its commit, linked to its entry on the page
    assert_eq!(production.len(), 2, "{statuses:?}");
    for r in &production {
        assert_eq!(r["path"], format!("/github/repos/acme/docs/statuses/{main}"));
        assert!(
            r["body"]["target_url"]
                .as_str()
                .unwrap()
                .starts_with("https://docs.example.com/_builds/#b"),
            "{r}"
        );
    }
    // the preview's: on the pull request's commit, named apart, linked to the preview
    let states: Vec<&str> = preview.iter().map(|r| r["body"]["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["pending", "success"], "{statuses:?}");
    for r in &preview {
        assert_eq!(r["ok"], true, "the double took it: {r}");
        assert_eq!(r["path"], format!("/github/repos/acme/docs/statuses/{c}"));
        assert_eq!(r["body"]["context"], "deploy-hook/docs/preview");
        assert_eq!(r["body"]["target_url"], "http://pr-2.preview.test/");
    }
    // the page: production's builds only, and the preview in its list (status.json is
    // replaced before index.html: both are waited for)
    wait_for("the page to list the preview", limit, || {
        !page_previews().is_empty()
            && fs::read_to_string(page.join("index.html")).is_ok_and(|h| h.contains("pr-2.preview.test"))
    });
    assert_eq!(
        page_previews(),
        [format!("\"pr-2\" \"http://pr-2.preview.test/\" \"{c}\"")]
    );
    let html = fs::read_to_string(page.join("index.html")).unwrap();
    assert!(
        html.contains("<h2>Previews</h2>") && html.contains("href=\"http://pr-2.preview.test/\""),
        "{html}"
    );
    let public: serde_json::Value = serde_json::from_slice(&fs::read(page.join("status.json")).unwrap()).unwrap();
    let builds: Vec<&str> = public["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["commit"].as_str().unwrap_or(""))
        .collect();
    assert!(
        builds.len() == 1 && builds[0].starts_with(&main[..7]),
        "only production's build is among the builds: {public}"
    );

    // closed: gone from the page too
    let r = deliver(
        &w,
        "github",
        "pull_request",
        &fixture("github-pull_request-closed.json"),
    );
    assert_eq!(r.status, 202, "{}", r.json);
    wait_removed(&w, "pr-2");
    // status.json is replaced before index.html (report/page.rs): both are waited for.
    let index_lists_it = || {
        fs::read_to_string(page.join("index.html"))
            .unwrap()
            .contains("pr-2.preview.test")
    };
    wait_for("the page to drop the preview", limit, || {
        page_previews().is_empty() && !index_lists_it()
    });
    assert!(!index_lists_it());
    // no token in anything the page shows
    assert!(!fs::read_to_string(page.join("index.html")).unwrap().contains(TOKEN));
}

#[test]
fn a_replayed_gitee_preview_delivery_is_a_duplicate_and_builds_nothing() {
    let w = preview_world("preview-replay", "gitee", "", None);
    let c = w.push_to("docs-x", "a.md", "x\n");
    let ts = (now_ms() - 1000).to_string();
    let send = || {
        w.cgi()
            .body(&push_body("docs-x", &c))
            .header("X-Gitee-Event", "Push Hook")
            .header("X-Gitee-Timestamp", &ts)
            .header("X-Gitee-Token", gitee_token(SECRET, &ts))
            .run()
    };
    let r = send();
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    wait_preview(&w, "branch-docs-x", 1);
    // the same signed delivery again, after its build: seen, as a production one is
    let r = send();
    assert_eq!((r.status, r.word()), (200, "duplicate"), "{}", r.json);
    assert!(!preview_dir(&w, "branch-docs-x").join("pending").exists());
    assert_eq!(
        preview_status(&w, "branch-docs-x")["history"].as_array().unwrap().len(),
        1,
        "built once"
    );
}

#[test]
fn staying_root_needs_the_previews_folder_to_be_roots_alone_too() {
    requires!(Root, WwwData);
    let w = preview_world("preview-root-alone", "github", "", None);
    let to = w.path("www/previews");
    fs::create_dir_all(&to).unwrap();
    // everything root's: a command started as root stays root, and builds
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // www-data could plant a symlink where root makes a preview's releases: refused
    crate::check::chown("www-data:www-data", true, &to);
    let out = w.cmd(&["run", "docs", "--wait"]);
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(77), "{t}");
    assert!(
        t.contains(&format!("its previews.to {} is not root's alone", to.display())),
        "{t}"
    );
}

/// Appends hook `gl` to `w`'s config (its checkout shared with `docs`, which is allowed),
/// with `tables` (its publish and previews tables).
fn add_hook_gl(w: &World, tables: &str) {
    let mut text = fs::read_to_string(&w.config).unwrap();
    text.push_str(&format!(
        "\n[hooks.gl]\nprovider = \"gitlab\"\nsecret_file = {:?}\nrepo = {:?}\nsteps = [[\"true\"]]\n{tables}\n",
        w.secret_file.to_str().unwrap(),
        w.repo.to_str().unwrap(),
    ));
    fs::write(&w.config, text).unwrap();
}

/// The config error a delivery is answered with (500) and `check` fails with, which names
/// both hooks' keys.
fn refused(w: &World, body: &[u8], mine: &str, theirs: &str) {
    let r = deliver_docs(w, body);
    assert_eq!(r.status, 500, "{}", r.json);
    assert!(
        r.stderr.contains(mine) && r.stderr.contains(theirs),
        "{mine} / {theirs}: {}",
        r.stderr
    );
    let out = w.cmd(&["check"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains(mine) && all.contains(theirs), "{mine} / {theirs}: {all}");
}

#[test]
fn a_preview_can_never_be_or_hold_another_hooks_folders() {
    let w = preview_world("preview-cross-hook", "github", "", None);
    pull_request_from_branch(&w, "changes", "refs/pull/2/head");
    let opened = fixture("github-pull_request-opened.json");
    let config = fs::read_to_string(&w.config).unwrap();
    let previews = w.path("www/previews");

    // hook gl's production site is docs's preview pr-2's path
    let site = previews.join("pr-2");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("index.html"), "gl's site\n").unwrap();
    add_hook_gl(
        &w,
        &format!(
            "[hooks.gl.publish]\nfrom = \"dist\"\nto = {:?}\n",
            site.to_str().unwrap()
        ),
    );
    refused(&w, &opened, "hooks.gl.publish.to", "hooks.docs.previews.to");
    assert_eq!(fs::read_to_string(site.join("index.html")).unwrap(), "gl's site\n");
    assert!(!w.hook_dir().join("previews/pr-2").exists(), "no preview was made");
    assert!(!git(&w.repo, &["worktree", "list"]).contains("pr-2"));

    // two hooks' previews in one folder
    fs::write(&w.config, &config).unwrap();
    add_hook_gl(
        &w,
        &format!(
            "[hooks.gl.publish]\nfrom = \"dist\"\nto = {:?}\n[hooks.gl.previews]\nto = {:?}\nurl = \"http://{{name}}.gl.test/\"\n",
            w.path("www/gl").to_str().unwrap(),
            previews.to_str().unwrap()
        ),
    );
    refused(&w, &opened, "hooks.gl.previews.to", "hooks.docs.previews.to");

    // a hook's site holding another's releases, written with `..`
    fs::write(&w.config, &config).unwrap();
    add_hook_gl(
        &w,
        &format!(
            "[hooks.gl.publish]\nfrom = \"dist\"\nto = \"{}/x/../docs.releases/gl\"\n",
            w.path("www").to_str().unwrap()
        ),
    );
    refused(&w, &opened, "hooks.gl.publish.to", "hooks.docs.publish.to's releases");

    // a hook's site inside another's site (sharing one site, the same path, is allowed:
    // tests/queue.rs)
    fs::write(&w.config, &config).unwrap();
    add_hook_gl(
        &w,
        &format!(
            "[hooks.gl.publish]\nfrom = \"dist\"\nto = {:?}\n",
            w.path("www/docs/gl").to_str().unwrap()
        ),
    );
    refused(&w, &opened, "hooks.gl.publish.to", "hooks.docs.publish.to");

    // previews inside state_dir (one hook is enough)
    let text = config.replace(
        &format!("to = {:?}\nurl", previews.to_str().unwrap()),
        &format!("to = {:?}\nurl", w.state.join("p").to_str().unwrap()),
    );
    assert_ne!(text, config);
    fs::write(&w.config, &text).unwrap();
    refused(&w, &opened, "hooks.docs.previews.to", "state_dir");

    // hooks sharing a checkout, each with folders of its own: fine, and built
    fs::write(&w.config, &config).unwrap();
    add_hook_gl(
        &w,
        &format!(
            "[hooks.gl.publish]\nfrom = \"dist\"\nto = {:?}\n[hooks.gl.previews]\nto = {:?}\nurl = \"http://{{name}}.gl.test/\"\n",
            w.path("www/gl").to_str().unwrap(),
            w.path("www/gl-previews").to_str().unwrap()
        ),
    );
    let r = deliver_docs(&w, &opened);
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    let s = wait_preview(&w, "pr-2", 1);
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
}

/// A signed GitHub pull request delivery to hook `docs` (`/hooks/docs`: two hooks).
fn deliver_docs(w: &World, body: &[u8]) -> Reply {
    w.cgi()
        .env("PATH_INFO", "/docs")
        .body(body)
        .header("X-GitHub-Event", "pull_request")
        .header("X-Hub-Signature-256", github_sig(SECRET, body))
        .run()
}

/// Puts a `git` first on the hook's `path` that notes in `overlaps` a `git worktree`
/// command started while another one runs in the checkout (the first holds on until a
/// second one tries, or 1.5 s pass), and runs the real git.
fn watch_worktree_commands(w: &World) -> PathBuf {
    let bin = w.path("bin");
    let d = w.path("git-watch");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&d).unwrap();
    let real = system_program("git", "git");
    let script = format!(
        "#!/bin/sh\nD={d}\nif [ \"$1\" = worktree ]; then\n  if mkdir \"$D/inside\" 2>/dev/null; then\n    i=0; while [ ! -e \"$D/tried\" ] && [ $i -lt 75 ]; do sleep 0.02; i=$((i+1)); done\n    {real} \"$@\"; rc=$?; rmdir \"$D/inside\"; exit $rc\n  fi\n  echo \"$*\" >> \"$D/overlaps\"; touch \"$D/tried\"\nfi\nexec {real} \"$@\"\n",
        d = d.display(),
        real = real.display()
    );
    fs::write(bin.join("git"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(bin.join("git"), fs::Permissions::from_mode(0o755)).unwrap();
    let text = fs::read_to_string(&w.config).unwrap().replacen(
        "clean = [",
        &format!("path = \"{}:/usr/local/bin:/usr/bin:/bin\"\nclean = [", bin.display()),
        1,
    );
    fs::write(&w.config, text).unwrap();
    d.join("overlaps")
}

#[test]
fn previews_built_at_once_never_run_git_worktree_commands_together() {
    let w = preview_world("preview-worktree-lock", "github", "jobs = 3", None);
    let overlaps = watch_worktree_commands(&w);
    let commits: Vec<String> = ["a", "b", "c"].iter().map(|b| w.push_to(b, "x.md", b)).collect();
    for (b, c) in ["a", "b", "c"].iter().zip(&commits) {
        let r = deliver(&w, "github", "push", &push_body(b, c));
        assert_eq!(r.status, 202, "{}", r.json);
    }
    for b in ["a", "b", "c"] {
        let s = wait_preview(&w, &format!("branch-{b}"), 1);
        assert_eq!(s["last"]["result"], "succeeded", "{s}");
    }
    assert_eq!(
        fs::read_to_string(&overlaps).unwrap_or_default(),
        "",
        "git worktree commands ran together in the checkout"
    );
}

/// Waits until every preview of `names` is removed or settled: idle, nothing waiting, no
/// removal asked, its lock free.
fn wait_settled(w: &World, names: &[String]) {
    wait_for("the previews to settle", Duration::from_secs(180), || {
        names.iter().all(|n| {
            let dir = preview_dir(w, n);
            !dir.exists()
                || (preview_status(w, n)["state"] == "idle"
                    && !dir.join("pending").exists()
                    && !dir.join("taking").exists()
                    && !dir.join("remove").exists()
                    && lock_free(&dir.join("build.lock")))
        })
    });
}

#[test]
fn keep_after_many_previews_at_once_keeps_exactly_keep_and_every_worker_finishes() {
    let w = preview_world("preview-keep-many", "github", "keep = 3\njobs = 8", None);
    let branches: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
    let commits: Vec<String> = branches.iter().map(|b| w.push_to(b, "x.md", b)).collect();
    for (b, c) in branches.iter().zip(&commits) {
        let r = deliver(&w, "github", "push", &push_body(b, c));
        assert_eq!(r.status, 202, "{}", r.json);
    }
    let all: Vec<String> = branches.iter().map(|b| format!("branch-{b}")).collect();
    wait_settled(&w, &all);
    let listed = previews_json(&w);
    let kept = listed["previews"].as_array().unwrap();
    assert_eq!(kept.len(), 3, "exactly keep previews are left: {listed}");
    for p in kept {
        let name = p["name"].as_str().unwrap();
        assert_eq!(p["removing"], false, "{listed}");
        assert!(served(&w, name, "index.html").is_some(), "{name} is served: {listed}");
    }
    // every removed one is gone from the web too
    for n in &all {
        if !preview_dir(&w, n).exists() {
            assert!(fs::symlink_metadata(w.path("www/previews").join(n)).is_err(), "{n}");
        }
    }
    // no worker ended on another preview's removal
    for n in all.iter().filter(|n| preview_dir(&w, n).exists()) {
        let log = fs::read_to_string(preview_dir(&w, n).join("worker.log")).unwrap_or_default();
        assert!(!log.contains("cannot"), "{n}: {log}");
    }
}

/// Puts a first step before the hook's own that notes, for each preview build, how many
/// working trees there are (in `trees`) and a build started while another one runs (in
/// `overlaps`; the first holds on until a second one starts, or 1 s passes).
fn watch_preview_builds(w: &World) -> (PathBuf, PathBuf) {
    let d = w.path("build-watch");
    fs::create_dir_all(&d).unwrap();
    let watch = format!(
        "if [ -n \"$DEPLOY_HOOK_PREVIEW\" ]; then D={d}; ls {trees} | wc -l >> $D/trees; if mkdir $D/inside 2>/dev/null; then i=0; while [ ! -e $D/tried ] && [ $i -lt 50 ]; do sleep 0.02; i=$((i+1)); done; rmdir $D/inside; else echo $DEPLOY_HOOK_PREVIEW >> $D/overlaps; touch $D/tried; fi; fi",
        d = d.display(),
        trees = w.hook_dir().join("worktrees").display()
    );
    let text =
        fs::read_to_string(&w.config)
            .unwrap()
            .replacen("steps = [", &format!("steps = [{}, ", toml_str(&watch)), 1);
    fs::write(&w.config, text).unwrap();
    (d.join("trees"), d.join("overlaps"))
}

#[test]
fn preview_builds_run_jobs_at_a_time_and_keep_comes_before_a_new_working_tree() {
    let w = preview_world("preview-jobs", "github", "keep = 2", None);
    let (trees, overlaps) = watch_preview_builds(&w);
    let branches: Vec<String> = (0..5).map(|i| format!("j{i}")).collect();
    let commits: Vec<String> = branches.iter().map(|b| w.push_to(b, "x.md", b)).collect();
    for (b, c) in branches.iter().zip(&commits) {
        let r = deliver(&w, "github", "push", &push_body(b, c));
        assert_eq!(r.status, 202, "{}", r.json);
    }
    let all: Vec<String> = branches.iter().map(|b| format!("branch-{b}")).collect();
    wait_settled(&w, &all);
    let ran = fs::read_to_string(w.path("ran")).unwrap();
    assert_eq!(
        ran.lines().filter(|l| l.starts_with("built branch-")).count(),
        5,
        "every delivery was built: {ran}"
    );
    assert_eq!(
        fs::read_to_string(&overlaps).unwrap_or_default(),
        "",
        "previews.jobs = 1 (the default): one preview build at a time"
    );
    let most = fs::read_to_string(&trees)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse::<usize>().unwrap())
        .max()
        .unwrap();
    assert!(most <= 3, "at most keep + jobs working trees: {most}");
    assert_eq!(names(&w).len(), 2, "{}", previews_json(&w));

    // a slot held (as by a long preview build): production still builds, and a preview's
    // delivery waits in its queue until a slot is free, then is built
    use fs2::FileExt;
    let slot = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(w.hook_dir().join("preview-slots/0.lock"))
        .unwrap();
    slot.lock_exclusive().unwrap();
    let c = w.push_to("late", "x.md", "late");
    let r = deliver(&w, "github", "push", &push_body("late", &c));
    assert_eq!(r.status, 202, "{}", r.json);
    let c = w.push_to("main", "x.md", "production");
    let r = deliver(&w, "github", "push", &push_body("main", &c));
    assert!(r.status < 300, "{}", r.json);
    wait_for("production's build", Duration::from_secs(60), || {
        fs::read_to_string(w.path("www/docs/index.html")).is_ok_and(|t| t.contains(&c))
    });
    assert!(
        preview_dir(&w, "branch-late").join("pending").exists(),
        "its delivery waits"
    );
    assert!(served(&w, "branch-late", "index.html").is_none());
    FileExt::unlock(&slot).unwrap();
    let s = wait_preview(&w, "branch-late", 1);
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
}

#[test]
fn a_forks_commits_are_never_fetched_and_its_refused_preview_does_not_count_for_keep() {
    let w = preview_world("preview-fork-objects", "github", "keep = 2", None);
    let c = w.push_to("a", "x.md", "a");
    assert_eq!(deliver(&w, "github", "push", &push_body("a", &c)).status, 202);
    wait_preview(&w, "branch-a", 1);
    // the fork's commit: only under the pull ref
    git(&w.seed, &["checkout", "-q", "-b", "fork-work", "main"]);
    fs::write(w.seed.join("evil.md"), "from a fork\n").unwrap();
    git(&w.seed, &["add", "-A"]);
    git(&w.seed, &["commit", "-q", "-m", "fork"]);
    let fork = git(&w.seed, &["rev-parse", "HEAD"]);
    git(&w.seed, &["push", "-q", "origin", "HEAD:refs/pull/2/head"]);
    let r = deliver(
        &w,
        "github",
        "pull_request",
        &fixture("github-pull_request-opened.json"),
    );
    assert_eq!(r.status, 202, "{}", r.json);
    let s = wait_preview(&w, "pr-2", 1);
    assert_eq!(s["last"]["failed_step"], "fork check", "{s}");
    let has = |what: &str| {
        Command::new("git")
            .args(["cat-file", "-e", what])
            .current_dir(&w.repo)
            .status()
            .unwrap()
            .success()
    };
    assert!(!has(&fork), "the fork's commit is not in the production checkout");
    assert!(!has("refs/deploy-hook/previews/pr-2"), "no ref of it either");

    // keep = 2: a refused preview does not count, and goes at the next build
    let c = w.push_to("b", "x.md", "b");
    assert_eq!(deliver(&w, "github", "push", &push_body("b", &c)).status, 202);
    wait_preview(&w, "branch-b", 1);
    wait_removed(&w, "pr-2");
    assert_eq!(names(&w), ["branch-a", "branch-b"]);
}

#[test]
fn a_long_branch_name_is_cut_in_the_previews_table_and_whole_in_json() {
    let w = preview_world("preview-long-ref", "github", "", None);
    let branch = format!("feature/{}", "a-very-long-branch-name-".repeat(8));
    let c = w.push_to(&branch, "x.md", "long");
    let r = deliver(&w, "github", "push", &push_body(&branch, &c));
    assert_eq!(r.status, 202, "{}", r.json);
    let name = names(&w).pop().unwrap();
    wait_preview(&w, &name, 1);
    let out = w.cmd(&["previews", "docs"]);
    let t = String::from_utf8_lossy(&out.stdout);
    let row = t.lines().find(|l| l.starts_with(&name)).unwrap();
    assert!(!row.contains(&branch), "{t}");
    assert!(row.contains("refs/heads/feature/a-very-long-branch-n…"), "{t}");
    assert_eq!(previews_json(&w)["previews"][0]["ref"], format!("refs/heads/{branch}"));
}
