//! The build page in a real browser: headless Chromium (Debian's `chromium`) loads it through
//! real nginx, configured with the shipped `nginx/builds.conf`, for an idle, a building and
//! a failed hook. The test reads the DOM Chromium dumps and keeps its screenshots (a phone
//! and a desktop width) in `$TMPDIR/deploy-hook-tests/screenshots/`, which outlives the test.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// A commit subject no page may run: it must show as text.
pub const HOSTILE: &str = "<script>alert('x')</script> & <img src=x onerror=alert(1)> 修复安装页";

/// nginx serving `dir` at `/_builds/`, with the shipped location block; stopped on drop.
pub struct PageServer {
    child: Child,
    pub port: u16,
}

impl Drop for PageServer {
    fn drop(&mut self) {
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl PageServer {
    /// Starts nginx for `page` (the hook's page.dir) on `port`.
    pub fn start(w: &World, page: &Path, port: u16) -> PageServer {
        let dir = w.path("page-nginx");
        fs::create_dir_all(&dir).unwrap();
        let snippet = fs::read_to_string(Path::new(ROOT).join("nginx/builds.conf")).unwrap();
        assert!(
            snippet.contains("/var/www/docs-builds/"),
            "nginx/builds.conf no longer names its example dir"
        );
        let location = snippet.replace("/var/www/docs-builds/", &format!("{}/", page.display()));
        let conf = dir.join("nginx.conf");
        fs::write(
            &conf,
            format!(
                "pid {d}/nginx.pid;\nerror_log {d}/error.log info;\ndaemon off;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n{location}\n  }}\n}}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(system_program("nginx", "nginx"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("nginx.stderr")).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        wait_for("nginx for the page", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        PageServer { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/_builds/{path}", self.port)
    }

    /// `GET /_builds/{path}`: the status line and headers, and the body.
    pub fn get(&self, path: &str) -> (String, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "GET /_builds/{path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
        (
            String::from_utf8_lossy(&raw[..split]).into_owned(),
            raw[split + 4..].to_vec(),
        )
    }
}

/// Where screenshots are kept: outside the test's world, which is removed when it passes.
pub fn shots_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join("deploy-hook-tests")
        .join("screenshots")
        .join(test);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Loads `url` in headless Chromium at `width` x `height`: the DOM as loaded, and a
/// screenshot written to `png` (checked to exist: Chromium exits 0 without one when a page
/// refreshes at once).
pub fn chromium(url: &str, png: &Path, width: u32, height: u32) -> String {
    let profile = png.with_extension("profile");
    let _ = fs::remove_dir_all(&profile);
    fs::create_dir_all(&profile).unwrap();
    let out = Command::new("timeout")
        .arg("90")
        .arg(system_program("chromium", "chromium"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // Its stderr is noisy (dbus, Vulkan, Debian's wrapper script) and harmless: kept, not judged.
    fs::write(png.with_extension("stderr.txt"), &out.stderr).unwrap();
    let _ = fs::remove_dir_all(&profile);
    assert!(out.status.success(), "chromium failed ({}) on {url}", out.status);
    assert!(png.exists(), "chromium wrote no screenshot of {url}");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    fs::write(png.with_extension("dom.html"), &dom).unwrap();
    dom
}

/// Commits `file` with `content` and the subject `subject` to main on the remote.
pub fn push_with_subject(w: &World, file: &str, content: &str, subject: &str) -> String {
    let path = w.seed.join(file);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    git(&w.seed, &["add", "-A"]);
    git(&w.seed, &["commit", "-q", "-m", subject]);
    git(&w.seed, &["push", "-q", "origin", "HEAD:main"]);
    git(&w.seed, &["rev-parse", "HEAD"])
}

/// The step of the page tests: waits for `gate` when `wait` is in the checkout, fails with
/// the VitePress log when `fail` is.
fn step(gate: &Path) -> String {
    format!(
        "if [ -e wait ]; then while [ ! -e {g} ]; do sleep 0.02; done; fi; if [ -e fail ]; then cat {log}; exit 1; fi; echo built",
        g = gate.display(),
        log = Path::new(ROOT).join("tests/fixtures/failures/vitepress-color.log").display()
    )
}

#[test]
fn the_page_in_chromium_through_nginx_idle_building_and_failed() {
    requires!(Nginx, Chromium);
    let w = World::new("page-chromium");
    let page = w.path("page");
    let gate = w.path("gate");
    let server_port = free_port();
    w.config(
        "gitee",
        &format!(
            "steps = [{step}]\n[hooks.docs.page]\ndir = {dir:?}\nurl = \"http://127.0.0.1:{server_port}/_builds/\"\nlogs = true\n",
            step = toml_str(&step(&gate)),
            dir = page.to_str().unwrap(),
        ),
    );
    let shots = shots_dir("page-chromium");

    // idle, after a build that passed
    push_with_subject(&w, "index.md", "one\n", "First page");
    w.gitee_push().run();
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
    let web = PageServer::start(&w, &page, server_port);
    let dom = chromium(&web.url(""), &shots.join("idle-390.png"), 390, 844);
    assert!(
        dom.contains("idle · last build passed") && dom.contains("First page"),
        "{dom}"
    );
    assert!(
        !dom.contains("http-equiv=\"refresh\""),
        "an idle page does not reload itself"
    );
    chromium(&web.url(""), &shots.join("idle-1280.png"), 1280, 800);
    let (head, badge) = web.get("badge.svg");
    assert!(
        head.contains("image/svg+xml") && String::from_utf8_lossy(&badge).contains("passing"),
        "{head}"
    );

    // building: held at its gate
    fs::write(w.seed.join("wait"), "").unwrap();
    fs::write(w.seed.join("fail"), "").unwrap();
    let hostile = push_with_subject(&w, "index.md", "two\n", HOSTILE);
    w.gitee_push().run();
    wait_for("the page to say building", Duration::from_secs(60), || {
        fs::read_to_string(page.join("index.html")).is_ok_and(|h| h.contains("step 1 of 1"))
    });
    let dom = chromium(&web.url(""), &shots.join("building-390.png"), 390, 844);
    assert!(
        dom.contains("http-equiv=\"refresh\"") && dom.contains("building"),
        "{dom}"
    );
    assert!(dom.contains("step 1 of 1 (sh)"), "the running step, by position: {dom}");
    // How long it runs is counted in the browser (the page's clock script, allowed by the
    // snippet's CSP), not the 0.0 s it was when the page was written; without scripts, the
    // page says since when.
    for after in ["data-after=\" so far\">", "data-after=\"\">for "] {
        let shown = dom
            .split(after)
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or_else(|| panic!("{after} in {dom}"));
        assert!(
            !shown.starts_with("since") && !shown.is_empty() && shown.as_bytes()[0].is_ascii_digit(),
            "the clock ran: {shown:?} in {dom}"
        );
    }
    let html = fs::read_to_string(page.join("index.html")).unwrap();
    assert!(
        html.contains(" so far\">since ") && !html.contains("0.0 s so far"),
        "as written: since when, no duration: {html}"
    );
    chromium(&web.url(""), &shots.join("building-1280.png"), 1280, 800);

    // failed: the lines that say why, the subject as text, the log as text
    fs::write(&gate, "").unwrap();
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "failed", "{s}");
    let id = s["last"]["id"].as_str().unwrap().to_string();
    let dom = chromium(
        &format!("{}#b{id}", web.url("")),
        &shots.join("failed-390.png"),
        390,
        844,
    );
    chromium(&web.url(""), &shots.join("failed-1280.png"), 1280, 800);
    assert!(dom.contains("idle · last build failed"), "{dom}");
    assert!(
        dom.contains("docs/install.md (7:1): Element is missing end tag."),
        "the failure lines: {dom}"
    );
    assert!(!dom.contains("ELIFECYCLE"), "{dom}");
    assert!(
        dom.contains("data-label=\"Started (UTC)\""),
        "a phone's card names the time zone too: {dom}"
    );
    assert!(
        dom.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt; 修复安装页"),
        "the hostile subject shows as text: {dom}"
    );
    assert!(!dom.contains("<script") && !dom.contains("<img src=\"x\""), "{dom}");
    assert!(
        dom.contains(&format!("id=\"b{id}\"")) && dom.contains(&hostile[..7]),
        "{dom}"
    );
    let (head, log) = web.get(&format!("builds/{id}.log.txt"));
    assert!(head.contains("text/plain; charset=utf-8"), "{head}");
    let log = String::from_utf8(log).unwrap();
    assert!(
        log.contains("Element is missing end tag.") && !log.contains('\u{1b}'),
        "colour codes removed: {log}"
    );
    let (head, status) = web.get("status.json");
    assert!(head.contains("application/json"), "{head}");
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["builds"][0]["subject"], HOSTILE);
    assert_eq!(status["badge"], "failing");
    let text = status.to_string();
    assert!(
        !text.contains(w.dir.to_str().unwrap()),
        "status.json holds no path of the server: {text}"
    );
}

/// Apache serving `page` at `/_builds/` with `snippet` (the shipped apache/builds.conf, its
/// dir replaced), as www-data; stopped on drop.
fn apache_page(w: &World, name: &str, page: &Path, snippet: &str) -> (crate::servers::Proc, u16) {
    let dir = w.path(name);
    fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let site = dir.join("builds.conf");
    fs::write(&site, snippet.replace("/var/www/docs-builds", page.to_str().unwrap())).unwrap();
    let m = "/usr/lib/apache2/modules";
    let modules: String = [
        "mpm_event",
        "authz_core",
        "authz_user",
        "authn_core",
        "authn_file",
        "auth_basic",
        "alias",
        "mime",
        "dir",
        "headers",
    ]
    .iter()
    .map(|n| format!("LoadModule {n}_module {m}/mod_{n}.so\n"))
    .collect();
    let conf = dir.join("httpd.conf");
    fs::write(
        &conf,
        format!(
            "ServerRoot {d}\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nDefaultRuntimeDir {d}\nMutex file:{d} default\nErrorLog {d}/error.log\nTypesConfig /dev/null\nUser www-data\nGroup www-data\n{modules}\
             <Directory />\n    Require all denied\n</Directory>\nInclude {site}\n",
            d = dir.display(),
            site = site.display()
        ),
    )
    .unwrap();
    let ok = Command::new("chown")
        .args(["-R", "www-data:www-data"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(ok.success());
    let apache = crate::servers::spawn(
        "apache2",
        Command::new(crate::servers::find("apache2"))
            .arg("-f")
            .arg(&conf)
            .arg("-DFOREGROUND")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("apache.stderr")).unwrap()),
    );
    crate::servers::wait_listening(port, &dir.join("error.log"));
    (apache, port)
}

#[test]
fn the_apache_snippet_serves_the_page_as_text_and_its_auth_lines_close_it() {
    requires!(Apache);
    let w = World::new("page-apache");
    let page = w.path("page");
    w.config(
        "gitee",
        &format!(
            "steps = [{step}]\n[hooks.docs.page]\ndir = {dir:?}\nurl = \"https://docs.example.com/_builds/\"\nlogs = true\n",
            step = toml_str(&format!("echo '<b>not bold</b>'; cat {}; exit 1", Path::new(ROOT).join("tests/fixtures/failures/vitepress.log").display())),
            dir = page.to_str().unwrap(),
        ),
    );
    push_with_subject(&w, "index.md", "one\n", HOSTILE);
    assert!(!w.cmd(&["run", "docs", "--wait"]).status.success());
    let id = w.status()["last"]["id"].as_str().unwrap().to_string();
    // The web server reads what the build wrote.
    let ok = Command::new("chmod").args(["-R", "a+rX"]).arg(&w.dir).status().unwrap();
    assert!(ok.success());
    let shipped = fs::read_to_string(Path::new(ROOT).join("apache/builds.conf")).unwrap();
    assert!(
        shipped.contains("/var/www/docs-builds"),
        "apache/builds.conf no longer names its example dir"
    );

    let (_apache, port) = apache_page(&w, "apache-open", &page, &shipped);
    let get = |port: u16, path: &str, auth: Option<&str>| {
        let headers: Vec<(String, String)> = auth
            .map(|a| vec![("Authorization".to_string(), a.to_string())])
            .unwrap_or_default();
        crate::servers::http(port, "GET", &format!("/_builds/{path}"), &headers, None, false)
    };
    let index = get(port, "", None);
    assert_eq!(index.status, 200, "{}", index.head);
    let head = index.head.to_lowercase();
    assert!(head.contains("content-type: text/html; charset=utf-8"), "{head}");
    assert!(head.contains("content-security-policy: default-src 'none'"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert!(String::from_utf8_lossy(&index.body).contains("&lt;script&gt;alert"));
    let log = get(port, &format!("builds/{id}.log.txt"), None);
    assert_eq!(log.status, 200, "{}", log.head);
    assert!(
        log.head
            .to_lowercase()
            .contains("content-type: text/plain; charset=utf-8"),
        "{}",
        log.head
    );
    assert!(
        String::from_utf8_lossy(&log.body).contains("<b>not bold</b>"),
        "the log as it was printed"
    );
    let status = get(port, "status.json", None);
    assert!(
        status.head.to_lowercase().contains("content-type: application/json"),
        "{}",
        status.head
    );
    assert_eq!(status.json()["badge"], "failing");
    let badge = get(port, "badge.svg", None);
    assert!(
        badge.head.to_lowercase().contains("content-type: image/svg+xml"),
        "{}",
        badge.head
    );
    let listing = get(port, "builds/", None);
    assert!(
        matches!(listing.status, 403 | 404),
        "no listing of the logs: {}",
        listing.head
    );
    drop(_apache);

    // The Auth lines, uncommented as the snippet says, close the page to the team.
    let users = w.path("htpasswd");
    let hash = Command::new(system_program("openssl", "openssl"))
        .args(["passwd", "-apr1", "team-pass"])
        .output()
        .unwrap();
    assert!(hash.status.success());
    fs::write(&users, format!("ana:{}", String::from_utf8_lossy(&hash.stdout))).unwrap();
    let closed: String = shipped
        .lines()
        .map(|l| match l.trim_start().strip_prefix("# ") {
            Some(rest)
                if ["AuthType", "AuthName", "AuthUserFile", "Require valid-user"]
                    .iter()
                    .any(|k| rest.starts_with(k)) =>
            {
                format!(
                    "    {}\n",
                    rest.replace("/etc/apache2/docs-builds.htpasswd", users.to_str().unwrap())
                )
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert_eq!(
        closed.matches("\n    Auth").count(),
        3,
        "the snippet's Auth lines: {closed}"
    );
    let (_apache, port) = apache_page(&w, "apache-closed", &page, &closed);
    assert_eq!(get(port, "", None).status, 401, "the page without a password");
    assert_eq!(
        get(port, &format!("builds/{id}.log.txt"), None).status,
        401,
        "a log without a password"
    );
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "ana:team-pass")
    );
    assert_eq!(
        get(port, "", Some(&basic)).status,
        200,
        "the page with the team's password"
    );
}
