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
    pub dir: PathBuf,
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
    /// Serves the previews in `to` (previews.to). `user`: the worker's user, when nginx
    /// runs with a master (as root), to see what a web server's user may read.
    pub fn start(w: &World, to: &Path, user: Option<&str>) -> PreviewNginx {
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
        let (master, user) = match user {
            Some(u) => ("on", format!("user {u};\n")),
            None => ("off", String::new()),
        };
        fs::write(
            dir.join("nginx.conf"),
            format!(
                "{user}worker_processes 1;\nmaster_process {master};\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\ndaemon off;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  default_type text/html;\n  client_body_temp_path {d}/client_body;\n  fastcgi_temp_path {d}/fastcgi;\n  proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{ listen 127.0.0.1:{port} default_server; server_name _; return 404 \"default server\\n\"; }}\n  include {d}/previews.conf;\n}}\n",
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
        let server = PreviewNginx { child, port, dir };
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
    let n = PreviewNginx::start(&w, &to, None);
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
