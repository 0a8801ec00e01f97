//! End to end through real nginx + fcgiwrap and real Apache (mod_cgid) on loopback, started
//! here with the project's own `nginx/deploy-hook.conf`, `fcgiwrap.conf` and
//! `apache/deploy-hook.conf`, templated only for paths and ports. fcgiwrap and Apache's
//! CGIs run as www-data, which owns the repo and the state dir, as on a real server.
//!
//! Nothing is installed here: `.ci/run` (and `tests/run.sh`) install nginx, fcgiwrap,
//! spawn-fcgi and apache2 with apt-get. Every server is stopped by its process group when
//! its guard drops, also when a test fails.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const WWW_DATA: u32 = 33;

pub fn find(name: &str) -> PathBuf {
    system_program(name, "nginx fcgiwrap spawn-fcgi apache2")
}

/// A server process group, stopped when dropped.
pub struct Proc {
    child: Child,
    name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        let _ = self.name;
    }
}

pub fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
    let child = cmd
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Proc { child, name }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Nginx,
    Apache,
}

/// A running web server in front of deploy-hook.
pub struct Web {
    pub port: u16,
    pub error_log: PathBuf,
    // Dropped in order: the web server first, then fcgiwrap.
    _procs: Vec<Proc>,
}

pub fn template(file: &str, pairs: &[(&str, String)]) -> String {
    let mut text = fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
    for (from, to) in pairs {
        assert!(
            text.contains(from),
            "{file} no longer contains {from:?}: update the test's template"
        );
        text = text.replace(from, to);
    }
    text
}

fn chown_www_data(path: &Path) {
    let ok = Command::new("chown")
        .args(["-R", "www-data:www-data"])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Gives the checkout and the state dir to www-data, as on a real server, and a copy of
/// the binary to the web server. The "forge" (remote.git) stays root's: www-data's git
/// trusts it through the build HOME's .gitconfig, as a user would set up for a remote on
/// the same machine.
fn prepare(w: &World) -> PathBuf {
    let bin = w.path("bin/deploy-hook");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::copy(BIN, &bin).unwrap();
    w.trust_remote_in_build_home();
    let ok = Command::new("chown")
        .args(["www-data:www-data"])
        .arg(&w.dir)
        .status()
        .unwrap();
    assert!(ok.success());
    chown_www_data(&w.repo);
    chown_www_data(&w.state);
    // As the README sets it up: readable by the web server's group only.
    let ok = Command::new("chown")
        .arg("root:www-data")
        .arg(&w.secret_file)
        .status()
        .unwrap();
    assert!(ok.success());
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&w.secret_file, fs::Permissions::from_mode(0o640)).unwrap();
    bin
}

pub fn wait_listening(port: u16, log: &Path) {
    wait_for(
        &format!("a server on port {port} (log: {})", log.display()),
        Duration::from_secs(20),
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

impl Web {
    pub fn start(kind: Kind, w: &World) -> Web {
        match kind {
            Kind::Nginx => Web::nginx(w),
            Kind::Apache => Web::apache(w),
        }
    }

    pub fn nginx(w: &World) -> Web {
        let bin = prepare(w);
        let dir = w.path("nginx");
        fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let socket = dir.join("fcgiwrap.sock");
        let error_log = dir.join("error.log");
        let snippet = dir.join("fcgiwrap.conf");
        crate::own_web::write_fastcgi_params(&dir);
        fs::write(
            &snippet,
            template(
                "fcgiwrap.conf",
                &[
                    (
                        "include fastcgi_params;",
                        format!("include {}/fastcgi_params;", dir.display()),
                    ),
                    ("/usr/bin/deploy-hook", bin.display().to_string()),
                    ("unix:/run/fcgiwrap.socket", format!("unix:{}", socket.display())),
                ],
            ),
        )
        .unwrap();
        let site = dir.join("site.conf");
        fs::write(
            &site,
            template(
                "nginx/deploy-hook.conf",
                &[
                    ("listen 80;", format!("listen 127.0.0.1:{port};")),
                    ("listen [::]:80;", String::new()),
                    ("snippets/deploy-hook-fcgiwrap.conf", snippet.display().to_string()),
                    ("/etc/deploy-hook/config.toml", w.config.display().to_string()),
                ],
            ),
        )
        .unwrap();
        let conf = dir.join("nginx.conf");
        fs::write(
            &conf,
            format!(
                "user www-data;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {e} info;\ndaemon off;\nevents {{ worker_connections 512; }}\nhttp {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  fastcgi_temp_path {d}/fastcgi;\n  proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {site};\n}}\n",
                d = dir.display(),
                e = error_log.display(),
                site = site.display()
            ),
        )
        .unwrap();
        chown_www_data(&dir);
        // fcgiwrap as www-data, as Debian's fcgiwrap.service runs it (-f: the CGI's stderr
        // goes to nginx's error log); -c 4: four requests at a time.
        let fcgi = spawn(
            "fcgiwrap",
            Command::new(find("spawn-fcgi"))
                .args(["-n", "-s"])
                .arg(&socket)
                .args([
                    "-M", "0660", "-u", "www-data", "-g", "www-data", "-U", "www-data", "-G", "www-data", "--",
                ])
                .arg(find("fcgiwrap"))
                .args(["-f", "-c", "4"])
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.join("fcgiwrap.stderr")).unwrap()),
        );
        wait_for("fcgiwrap's socket", Duration::from_secs(10), || socket.exists());
        let nginx = spawn(
            "nginx",
            Command::new(find("nginx"))
                .arg("-e")
                .arg(&error_log)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.join("nginx.stderr")).unwrap()),
        );
        wait_listening(port, &error_log);
        Web {
            port,
            error_log,
            _procs: vec![nginx, fcgi],
        }
    }

    pub fn apache(w: &World) -> Web {
        let bin = prepare(w);
        let dir = w.path("apache");
        fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let error_log = dir.join("error.log");
        let site = dir.join("deploy-hook.conf");
        fs::write(
            &site,
            template(
                "apache/deploy-hook.conf",
                &[
                    ("/usr/bin/deploy-hook", bin.display().to_string()),
                    ("/etc/deploy-hook/config.toml", w.config.display().to_string()),
                ],
            ),
        )
        .unwrap();
        let m = "/usr/lib/apache2/modules";
        let conf = dir.join("httpd.conf");
        fs::write(
            &conf,
            format!(
                "ServerRoot {d}\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nDefaultRuntimeDir {d}\nMutex file:{d} default\nErrorLog {e}\nLogLevel info\nUser www-data\nGroup www-data\n\
                 LoadModule mpm_event_module {m}/mod_mpm_event.so\nLoadModule authz_core_module {m}/mod_authz_core.so\nLoadModule alias_module {m}/mod_alias.so\nLoadModule cgid_module {m}/mod_cgid.so\nLoadModule env_module {m}/mod_env.so\n\
                 ScriptSock {d}/cgid.sock\n<Directory />\n    Require all denied\n</Directory>\nInclude {site}\n",
                d = dir.display(),
                e = error_log.display(),
                site = site.display()
            ),
        )
        .unwrap();
        chown_www_data(&dir);
        let apache = spawn(
            "apache2",
            Command::new(find("apache2"))
                .arg("-f")
                .arg(&conf)
                .arg("-DFOREGROUND")
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.join("apache.stderr")).unwrap()),
        );
        wait_listening(port, &error_log);
        Web {
            port,
            error_log,
            _procs: vec![apache],
        }
    }

    pub fn post(&self, path: &str, headers: &[(String, String)], body: &[u8]) -> HttpReply {
        http(self.port, "POST", path, headers, Some(body), false)
    }

    pub fn post_chunked(&self, path: &str, headers: &[(String, String)], body: &[u8]) -> HttpReply {
        http(self.port, "POST", path, headers, Some(body), true)
    }

    pub fn get(&self, path: &str) -> HttpReply {
        http(self.port, "GET", path, &[], None, false)
    }

    pub fn error_log_text(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.head, String::from_utf8_lossy(&self.body)))
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..eol])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// One HTTP/1.1 request with `Connection: close`, written by hand so the body's framing
/// (Content-Length or chunked) is exactly what the test says.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    chunked: bool,
) -> HttpReply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut bytes = Vec::new();
    match (body, chunked) {
        (Some(b), false) => {
            req.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            bytes.extend_from_slice(req.as_bytes());
            bytes.extend_from_slice(b);
        }
        (Some(b), true) => {
            req.push_str("Transfer-Encoding: chunked\r\n\r\n");
            bytes.extend_from_slice(req.as_bytes());
            for part in b.chunks(1000) {
                bytes.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                bytes.extend_from_slice(part);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        }
        (None, _) => {
            req.push_str("\r\n");
            bytes.extend_from_slice(req.as_bytes());
        }
    }
    // A server may answer (413) before reading all of a large body; that is not an error.
    let _ = s.write_all(&bytes);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP reply: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    HttpReply { status, head, body }
}

/// The headers of a signed Gitee push, as Gitee sends them.
pub fn gitee_headers(secret: &str) -> Vec<(String, String)> {
    let ts = fresh_gitee_ts();
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), "git-oschina-hook".into()),
        ("X-Gitee-Token".into(), gitee_token(secret, &ts)),
        ("X-Gitee-Timestamp".into(), ts),
        ("X-Gitee-Event".into(), "Push Hook".into()),
        ("X-Gitee-Ping".into(), "false".into()),
    ]
}

pub const PUSH: &[u8] = br#"{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111"}"#;

fn gated_world(name: &str) -> (World, PathBuf, PathBuf) {
    let w = World::new(name);
    let (record, gate) = (w.path("record"), w.path("gate"));
    w.config("gitee", &format!("steps = [{}]", toml_str(&gated_step(&record, &gate))));
    (w, record, gate)
}

fn answered_before_the_build_ends(kind: Kind) {
    let (w, record, gate) = gated_world(&format!("{kind:?}-async").to_lowercase());
    let head = w.push("index.md", "through the web server\n");
    let web = Web::start(kind, &w);
    let reply = if kind == Kind::Apache {
        web.post_chunked("/hooks/docs", &gitee_headers(SECRET), PUSH)
    } else {
        web.post("/hooks/docs", &gitee_headers(SECRET), PUSH)
    };
    assert_eq!(reply.status, 202, "{reply:?}\n{}", web.error_log_text());
    assert_eq!(reply.json()["status"], "queued");
    assert!(reply
        .head
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
    // The build is held at its gate: the answer did not wait for it.
    wait_for("the build to start", Duration::from_secs(30), || record.exists());
    assert!(!fs::read_to_string(&record).unwrap().contains("end"));
    assert_eq!(w.status()["state"], "building");
    fs::write(&gate, "").unwrap();
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    assert_eq!(s["last"]["commit"], head.as_str());
    // the build ran as www-data
    let meta = fs::metadata(w.path("record")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), WWW_DATA);
}

#[test]
fn nginx_answers_202_at_once_and_the_build_completes() {
    requires!(Root, WwwData, Nginx);
    answered_before_the_build_ends(Kind::Nginx);
}

#[test]
fn apache_with_a_chunked_body_answers_202_at_once_and_builds() {
    requires!(Root, WwwData, Apache);
    answered_before_the_build_ends(Kind::Apache);
}

#[test]
fn nginx_twenty_concurrent_deliveries_during_a_build() {
    requires!(Root, WwwData, Nginx);
    let (w, record, gate) = gated_world("nginx-burst");
    let web = Web::nginx(&w);
    let first = w.push("index.md", "first build\n");
    assert_eq!(web.post("/hooks/docs", &gitee_headers(SECRET), PUSH).status, 202);
    wait_for("the first build to start", Duration::from_secs(30), || record.exists());
    let newest = w.push("index.md", "newest\n");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|_| s.spawn(|| web.post("/hooks/docs", &gitee_headers(SECRET), PUSH).status))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| (200..300).contains(s)), "{statuses:?}");
    assert!(
        !fs::read_to_string(&record).unwrap().contains("end"),
        "a delivery waited for the build"
    );
    fs::write(&gate, "").unwrap();
    let s = w.wait_idle();
    let text = fs::read_to_string(&record).unwrap();
    let starts: Vec<&str> = text.lines().filter(|l| l.starts_with("start")).collect();
    let ends: Vec<&str> = text.lines().filter(|l| l.starts_with("end")).collect();
    assert_eq!(starts.len(), 2, "one build and one follow-up:\n{text}");
    assert_eq!(ends.len(), 2);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("start") && lines[1].starts_with("end") && lines[2].starts_with("start"),
        "builds overlapped:\n{text}"
    );
    assert!(lines[0].contains(&first) && lines[2].contains(&newest), "{text}");
    assert_eq!(s["last"]["commit"], newest.as_str());
}

fn refusals(kind: Kind) {
    let w = World::new(&format!("{kind:?}-refusals").to_lowercase());
    w.config("gitee", "steps = [\"true\"]");
    let web = Web::start(kind, &w);
    let r = web.get("/hooks/docs");
    assert_eq!(r.status, 405, "{r:?}");
    assert!(r.head.contains("Allow: POST"), "{}", r.head);
    assert_eq!(r.json()["status"], "error");

    // Over the server's limit: refused on the announced length, before any body is sent
    // (sending 6 MiB to a server that already answered can end in a reset that loses the
    // answer).
    let mut announced = gitee_headers(SECRET);
    announced.push(("Content-Length".into(), (6 * 1024 * 1024).to_string()));
    let r = http(web.port, "POST", "/hooks/docs", &announced, None, false);
    assert_eq!(r.status, 413, "{r:?}");
    // Over max_body_bytes but under the server's limit: deploy-hook's own JSON 413.
    w.config_with("max_body_bytes = 1000", "gitee", "steps = [\"true\"]");
    let r = web.post("/hooks/docs", &gitee_headers(SECRET), &[b' '; 2000]);
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["status"], "error");
    w.config("gitee", "steps = [\"true\"]");

    let mut bad = gitee_headers(SECRET);
    bad[2].1 = gitee_token("not the secret", &bad[3].1);
    let r = web.post("/hooks/docs", &bad, PUSH);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.json()["status"], "forbidden");
    let r = web.post("/hooks/blog", &gitee_headers(SECRET), PUSH);
    assert_eq!(r.status, 404, "{r:?}");
    assert!(w.status()["last"].is_null(), "a refused delivery built");
}

#[test]
fn nginx_refuses_get_oversize_and_bad_signatures() {
    requires!(Root, WwwData, Nginx);
    refusals(Kind::Nginx);
}

#[test]
fn apache_refuses_get_oversize_and_bad_signatures() {
    requires!(Root, WwwData, Apache);
    refusals(Kind::Apache);
}

#[test]
fn nginx_hook_by_query_string() {
    requires!(Root, WwwData, Nginx);
    let w = World::new("nginx-query");
    w.config("gitee", "steps = [\"true\"]");
    let web = Web::nginx(&w);
    let r = web.post("/hooks/?hook=docs", &gitee_headers(SECRET), PUSH);
    assert_eq!(r.status, 202, "{r:?}");
    w.wait_idle();
    assert_eq!(w.status()["last"]["result"], "succeeded");
}

#[test]
fn default_pipeline_with_real_pnpm_as_www_data() {
    requires!(Root, WwwData, Nginx, Pnpm);
    let w = World::new("nginx-pnpm");
    let head = crate::pnpm::tiny_site(&w, "Served by nginx\n");
    let www = w.path("www");
    w.config(
        "gitee",
        &format!(
            "clean = [\"docs/.vuepress/dist\"]\n[hooks.docs.publish]\nfrom = \"docs/.vuepress/dist\"\nto = {:?}",
            www.to_str().unwrap()
        ),
    );
    let web = Web::nginx(&w);
    // check passes as the web server's user
    let out = Command::new(BIN)
        .arg("check")
        .env_clear()
        .env("PATH", w.web.path("/usr/bin:/bin"))
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .uid(WWW_DATA)
        .gid(WWW_DATA)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let r = web.post("/hooks/docs", &gitee_headers(SECRET), PUSH);
    assert_eq!(r.status, 202, "{r:?}");
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{}", w.log_text(&s["last"]));
    let html = fs::read_to_string(www.join("index.html")).unwrap();
    assert_eq!(html, format!("<h1>Served by nginx</h1>\n{head}\n"));
    let meta = fs::metadata(www.join("index.html")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), WWW_DATA);
    assert!(w.hook_dir().join("home").is_dir(), "pnpm's HOME");
}

fn all_text_under(dir: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if p.file_name()
                .is_some_and(|n| n == "remote.git" || n == "seed" || n == ".git")
            {
                continue;
            }
            out.push_str(&all_text_under(&p));
        } else if ft.is_file() && p.file_name().is_some_and(|n| n != "hook.secret" && n != "config.toml") {
            out.push_str(&String::from_utf8_lossy(&fs::read(&p).unwrap_or_default()));
        }
    }
    out
}

#[test]
fn log_lines_reach_syslog_or_the_servers_error_log_and_never_the_secret() {
    requires!(Root, WwwData, Nginx, Apache);
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;
    let w = World::new("server-logs");
    let sock_path = w.path("syslog.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    fs::set_permissions(&sock_path, fs::Permissions::from_mode(0o666)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let config = |syslog: &Path| {
        let text = format!(
            "state_dir = {:?}\n[log]\nsyslog = {:?}\n[hooks.docs]\nprovider = \"gitee\"\nsecret_file = {:?}\nrepo = {:?}\nsteps = [\"true\"]\n",
            w.state.to_str().unwrap(),
            syslog.to_str().unwrap(),
            w.secret_file.to_str().unwrap(),
            w.repo.to_str().unwrap()
        );
        fs::write(&w.config, text).unwrap();
    };
    config(&sock_path);
    let nginx = Web::nginx(&w);
    let mut bad = gitee_headers(SECRET);
    bad[2].1 = gitee_token("wrong", &bad[3].1);
    assert_eq!(nginx.post("/hooks/docs", &bad, PUSH).status, 403);
    let headers = gitee_headers(SECRET);
    let token = headers[2].1.clone();
    assert_eq!(nginx.post("/hooks/docs", &headers, PUSH).status, 202);
    w.wait_idle();
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if lines.iter().any(|l| l.contains("build end"))
            && lines.iter().filter(|l| l.contains("delivery hook=docs")).count() == 2
        {
            break;
        }
    }
    let all = lines.join("\n");
    assert!(all.contains("status=403 outcome=forbidden"), "{all}");
    assert!(all.contains("status=202 outcome=queued"), "{all}");
    assert!(
        all.contains("build start hook=docs") && all.contains("result=succeeded"),
        "{all}"
    );
    assert!(
        !nginx.error_log_text().contains("delivery hook="),
        "with syslog up, nothing goes to the error log"
    );

    // No socket and no log file: only warnings and errors reach each server's error log
    // (fcgiwrap and Apache put them at [error]); a normal answer leaves nothing there.
    config(&w.path("no-such.sock"));
    let headers2 = gitee_headers(SECRET);
    assert_eq!(
        nginx
            .post("/hooks/docs", &headers2, b"{\"ref\":\"refs/heads/other\"}")
            .status,
        200
    );
    let away = w.path("secret.away");
    fs::rename(&w.secret_file, &away).unwrap();
    assert_eq!(nginx.post("/hooks/docs", &gitee_headers(SECRET), PUSH).status, 500);
    wait_for("nginx's error log", Duration::from_secs(10), || {
        nginx.error_log_text().contains("error hook=docs")
    });
    assert!(
        nginx.error_log_text().contains("cannot read secret_file")
            && !nginx.error_log_text().contains("outcome=ignored"),
        "{}",
        nginx.error_log_text()
    );
    drop(nginx);
    fs::rename(&away, &w.secret_file).unwrap();
    let apache = Web::apache(&w);
    fs::rename(&w.secret_file, &away).unwrap();
    assert_eq!(apache.get("/hooks/docs").status, 405);
    assert_eq!(
        apache.post_chunked("/hooks/docs", &gitee_headers(SECRET), PUSH).status,
        500
    );
    wait_for("Apache's error log", Duration::from_secs(10), || {
        apache.error_log_text().contains("error hook=docs")
    });
    assert!(
        !apache.error_log_text().contains("status=405"),
        "{}",
        apache.error_log_text()
    );
    fs::rename(&away, &w.secret_file).unwrap();

    let everything = format!("{all}\n{}", all_text_under(&w.dir));
    for secret in [SECRET, token.as_str(), headers2[2].1.as_str()] {
        assert!(!everything.contains(secret), "a secret or token was logged");
    }
}

#[test]
fn nginx_load_two_hundred_deliveries_twenty_at_a_time_none_lost() {
    requires!(Root, WwwData, Nginx);
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;
    let w = World::new("nginx-load");
    let record = w.path("record");
    let sock_path = w.path("syslog.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    fs::set_permissions(&sock_path, fs::Permissions::from_mode(0o666)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let step = format!(
        "echo \"start $DEPLOY_HOOK_COMMIT\" >> {r}; sleep 0.3; echo \"end $DEPLOY_HOOK_COMMIT\" >> {r}",
        r = record.display()
    );
    fs::write(
        &w.config,
        format!(
            "state_dir = {:?}\n[log]\nsyslog = {:?}\n[hooks.docs]\nprovider = \"gitee\"\nsecret_file = {:?}\nrepo = {:?}\nsteps = [{}]\n",
            w.state.to_str().unwrap(),
            sock_path.to_str().unwrap(),
            w.secret_file.to_str().unwrap(),
            w.repo.to_str().unwrap(),
            toml_str(&step)
        ),
    )
    .unwrap();
    let web = Web::nginx(&w);
    // Drain the log socket while the load runs.
    let lines = std::sync::Mutex::new(String::new());
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut newest = String::new();
    let mut replies = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 4096];
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let mut l = lines.lock().unwrap();
                    l.push_str(&String::from_utf8_lossy(&buf[..n]));
                    l.push('\n');
                }
            }
        });
        for round in 0..10 {
            newest = w.push("index.md", &format!("round {round}\n"));
            let batch: Vec<HttpReply> = std::thread::scope(|s2| {
                let hs: Vec<_> = (0..20)
                    .map(|_| s2.spawn(|| web.post("/hooks/docs", &gitee_headers(SECRET), PUSH)))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            replies.extend(batch);
        }
        w.wait_idle();
        // The drain stops once every delivery's line is in, not after a guessed while.
        let ids: Vec<String> = replies
            .iter()
            .map(|r| format!("id={} status=", r.json()["delivery"].as_str().unwrap()))
            .collect();
        wait_for("a log line for every delivery", Duration::from_secs(60), || {
            let l = lines.lock().unwrap();
            ids.iter().all(|id| l.contains(id))
        });
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    assert_eq!(replies.len(), 200);
    for r in &replies {
        assert!((200..300).contains(&r.status), "{r:?}");
    }
    let text = fs::read_to_string(&record).unwrap();
    let mut open = false;
    for line in text.lines() {
        assert!(
            line.starts_with(if open { "end" } else { "start" }),
            "two builds at once:\n{text}"
        );
        open = !open;
    }
    assert!(!open);
    let last_start = text.lines().rfind(|l| l.starts_with("start")).unwrap();
    assert!(
        last_start.ends_with(&newest),
        "the newest commit was not built last:\n{text}"
    );
    assert_eq!(w.status()["last"]["commit"], newest.as_str());
    let builds = text.lines().filter(|l| l.starts_with("start")).count();
    let log = lines.into_inner().unwrap();
    for r in &replies {
        let id = r.json()["delivery"].as_str().unwrap().to_string();
        assert!(
            log.contains(&format!("id={id} status={}", r.status)),
            "delivery {id} is not in the log"
        );
    }
    eprintln!("load: 200 deliveries through nginx, {builds} builds, none overlapping");
}
