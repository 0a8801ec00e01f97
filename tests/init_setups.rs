//! `init` beyond the first run: a token in `--repo-url` (kept out of what others can read,
//! never printed, and still what the build's fetch uses), the URL it prints (what the web
//! server really serves), its advice for a second hook, and a hook already in the config.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::check::chown;
use crate::init::{admin_seeing, text, uid_of, GitDaemon};
use crate::servers::{find, spawn, wait_listening, Proc};
use crate::util::*;

const TOKEN: &str = "TOKEN-s3cr3t-7f1e";

/// A forge that serves `remote.git` over http only to `deploy:TOKEN` (basic auth): nginx
/// in front of git's own http-backend, run by fcgiwrap as nobody.
struct HttpForge {
    port: u16,
    _procs: Vec<Proc>,
}

impl HttpForge {
    fn start(w: &World) -> HttpForge {
        let dir = w.path("forge");
        fs::create_dir_all(&dir).unwrap();
        crate::own_web::write_fastcgi_params(&dir);
        fs::write(dir.join("htpasswd"), format!("deploy:{{PLAIN}}{TOKEN}\n")).unwrap();
        let socket = dir.join("fcgi.sock");
        let port = free_port();
        fs::write(
            dir.join("nginx.conf"),
            format!(
                "user www-data;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\ndaemon off;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  fastcgi_temp_path {d}/fastcgi;\n  proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      auth_basic \"forge\";\n      auth_basic_user_file {d}/htpasswd;\n      include {d}/fastcgi_params;\n      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;\n      fastcgi_param GIT_PROJECT_ROOT {root};\n      fastcgi_param GIT_HTTP_EXPORT_ALL 1;\n      fastcgi_param PATH_INFO $uri;\n      fastcgi_param REMOTE_USER $remote_user;\n      fastcgi_pass unix:{s};\n    }}\n  }}\n}}\n",
                d = dir.display(),
                root = w.dir.display(),
                s = socket.display()
            ),
        )
        .unwrap();
        chown("www-data:", true, &dir);
        chown("nobody:nogroup", true, &w.remote);
        let fcgi = spawn(
            "fcgiwrap",
            Command::new(find("spawn-fcgi"))
                .args(["-n", "-s"])
                .arg(&socket)
                .args([
                    "-M", "0660", "-u", "nobody", "-g", "nogroup", "-U", "www-data", "-G", "www-data", "--",
                ])
                .arg(find("fcgiwrap"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for("the forge's fcgiwrap", Duration::from_secs(10), || socket.exists());
        let nginx = spawn(
            "nginx",
            Command::new(find("nginx"))
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_listening(port, &dir.join("error.log"));
        HttpForge {
            port,
            _procs: vec![nginx, fcgi],
        }
    }
}

/// The admin's config folder, with a config that names the world's state folder.
fn etc(w: &World) -> PathBuf {
    let etc = w.path("etc");
    fs::create_dir_all(&etc).unwrap();
    let config = etc.join("config.toml");
    fs::write(
        &config,
        format!("state_dir = {:?}\n\n[log]\nsyslog = \"\"\n", w.state.to_str().unwrap()),
    )
    .unwrap();
    config
}

fn init(w: &World, config: &Path, name: &str, url: &str, extra: &[&str]) -> std::process::Output {
    let dir = w.path(&format!("srv/{name}"));
    let mut args = vec![
        "init",
        name,
        "--provider",
        "gitee",
        "--repo-url",
        url,
        "--dir",
        dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    admin_seeing(&w.web, BIN, &args)
}

/// Every file under `dir` whose text holds `needle`, with its mode.
fn files_holding(dir: &Path, needle: &str) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            out.extend(files_holding(&p, needle));
        } else if m.is_file() && String::from_utf8_lossy(&fs::read(&p).unwrap_or_default()).contains(needle) {
            out.push((p, m.mode() & 0o7777));
        }
    }
    out
}

#[test]
fn a_token_in_the_repo_url_is_kept_from_others_never_printed_and_still_fetches() {
    requires!(Root, WwwData, Nginx);
    let w = World::new("init-token");
    let forge = HttpForge::start(&w);
    let config = etc(&w);
    let url = format!("http://deploy:{TOKEN}@127.0.0.1:{}/remote.git", forge.port);
    let out = init(&w, &config, "docs", &url, &[]);
    let t = text(&out);
    assert!(t.contains("docs: set up"), "{t}");
    assert!(!t.contains(TOKEN), "init printed the token: {t}");
    assert!(
        t.contains(&format!("cloned http://127.0.0.1:{}/remote.git into", forge.port)),
        "{t}"
    );

    // The checkout holds no token; the only file that does is the user's alone.
    let dir = w.path("srv/docs");
    let git_config = fs::read_to_string(dir.join(".git/config")).unwrap();
    assert!(!git_config.contains(TOKEN), "{git_config}");
    let holding = files_holding(&w.dir, TOKEN)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(w.path("forge")))
        .collect::<Vec<_>>();
    let file = w.state.join("docs/git-credentials");
    assert_eq!(holding, vec![(file.clone(), 0o600)], "{t}");
    assert_eq!(fs::metadata(&file).unwrap().uid(), uid_of("www-data"));

    // The build's fetch uses it: a push is built, as www-data, from the authenticated forge.
    // The build runs no site generator here: a step that does nothing (the table is last).
    let mut text_now = fs::read_to_string(&config).unwrap();
    text_now.push_str("steps = [\"true\"]\n");
    fs::write(&config, text_now).unwrap();
    // A push to the forge's repository, nobody's (root's git calls it dubious meanwhile).
    chown("root:root", true, &w.remote);
    let head = w.push("index.md", "pushed after init\n");
    chown("nobody:nogroup", true, &w.remote);
    let out = Command::new("/usr/sbin/runuser")
        .args(["-u", "www-data", "--", BIN, "run", "docs", "--wait", "--config"])
        .arg(&config)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/")
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains(TOKEN), "{said}");
    assert_eq!(git(&dir, &["-c", "safe.directory=*", "rev-parse", "HEAD"]), head);

    // git rewriting the config keeps it so: the token stays out.
    let out = Command::new("/usr/sbin/runuser")
        .args(["-u", "www-data", "--", "git", "-C"])
        .arg(&dir)
        .args(["config", "core.autocrlf", "false"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!fs::read_to_string(dir.join(".git/config")).unwrap().contains(TOKEN));

    // check reaches the forge as the build does, and prints no token either.
    let out = admin_seeing(&w.web, BIN, &["check", "--config", config.to_str().unwrap()]);
    let t = text(&out);
    assert!(t.contains("remote origin answers (as www-data)"), "{t}");
    assert!(!t.contains(TOKEN), "{t}");
}

/// A self-signed certificate and key for `name`, in `dir`.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    (cert, key)
}

/// The shipped site as the admin installed it for the first hook, with `listen` as given.
fn installed_site(w: &World, listen: &str, server_name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let snippet = fs::read_to_string(root.join("fcgiwrap.conf"))
        .unwrap()
        .replace("/usr/bin/deploy-hook", BIN)
        .replace("/run/fcgiwrap.socket", w.path("fcgiwrap.socket").to_str().unwrap());
    fs::write(w.web.nginx_dir().join("snippets/deploy-hook-fcgiwrap.conf"), snippet).unwrap();
    fs::read_to_string(root.join("nginx/deploy-hook.conf"))
        .unwrap()
        .replace("listen 80;", listen)
        .replace("listen [::]:80;", "")
        .replace("server_name hooks.example.com;", &format!("server_name {server_name};"))
        .replace(
            "/etc/deploy-hook/config.toml",
            w.path("etc/config.toml").to_str().unwrap(),
        )
}

#[test]
fn init_prints_what_the_site_serves_and_never_the_first_sites_file_for_a_second_hook() {
    requires!(Root, WwwData);
    let w = World::new("init-url");
    let daemon = GitDaemon::start(&w.dir, &w.remote);
    let config = etc(&w);
    let url = daemon.url("remote.git");
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let host = host.trim();

    // No site yet (the quick start installs it after init): plain http, as the shipped
    // site serves it, and the way to install that site.
    let docs_www = w.path("www/docs/site");
    let out = init(
        &w,
        &config,
        "docs",
        &url,
        &["--publish-from", "dist", "--publish-to", docs_www.to_str().unwrap()],
    );
    let t = text(&out);
    assert!(t.contains("docs: set up"), "{t}");
    assert!(
        t.contains(&format!("URL:          http://{host}/hooks/docs   (plain http, as the shipped nginx site serves it; https once it has TLS: docs/tls.md)")),
        "{t}"
    );
    assert!(!t.contains("https://"), "{t}");
    assert!(
        t.contains(&format!(
            "/usr/share/doc/deploy-hook/examples/nginx-site.conf > /etc/nginx/sites-enabled/deploy-hook; then set its root to {}",
            docs_www.display()
        )),
        "{t}"
    );

    // The admin installs it, with TLS (certbot's way: listen 443 ssl): the second hook's
    // URL is https on the site's name, and its advice keeps the first site's file.
    let (cert, key) = certificate(&w.dir, "docs.test-site.org");
    let site = installed_site(
        &w,
        &format!(
            "listen 127.0.0.1:1 ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};",
            cert.display(),
            key.display()
        ),
        "docs.test-site.org",
    );
    w.web.nginx_site(&site);
    let socket = w.path("fcgiwrap.socket");
    let _fcgiwrap_socket = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    chown("www-data:www-data", false, &socket);
    let www = w.path("www/blog/site");
    let out = init(
        &w,
        &config,
        "blog",
        &url,
        &["--publish-from", "dist", "--publish-to", www.to_str().unwrap()],
    );
    let t = text(&out);
    assert!(t.contains("blog: set up"), "{t}");
    let site_file = w.web.nginx_dir().join("site.conf");
    assert!(
        t.contains(&format!(
            "URL:          https://docs.test-site.org/hooks/blog   (as nginx's config says: {}; nginx is not running: start it)",
            site_file.display()
        )),
        "{t}"
    );
    assert!(
        t.contains("h=$(deploy-hook sign blog --format curl) && eval \"curl -sS https://docs.test-site.org/hooks/blog"),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "nginx already hands /hooks/blog to deploy-hook ({})",
            site_file.display()
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "sed \"s#/var/www/docs;#{};#\" /usr/share/doc/deploy-hook/examples/nginx-published-site.conf > /etc/nginx/sites-enabled/blog",
            www.display()
        )),
        "{t}"
    );
    assert!(!t.contains("> /etc/nginx/sites-enabled/deploy-hook"), "{t}");

    // Plain http again (no TLS): http on the site's name.
    w.web
        .nginx_site(&installed_site(&w, "listen 127.0.0.1:1;", "docs.test-site.org"));
    let out = init(&w, &config, "wiki", &url, &[]);
    let t = text(&out);
    assert!(t.contains("URL:          http://docs.test-site.org/hooks/wiki"), "{t}");

    // The test line, run as printed: with a deploy-hook that cannot sign (no config there)
    // it stops before curl; with the config, curl gets the signature's headers.
    let line = t
        .lines()
        .skip_while(|l| !l.starts_with("Test it from here"))
        .nth(1)
        .unwrap_or_else(|| panic!("no test line: {t}"))
        .trim()
        .to_string();
    let bin = w.path("test-line-bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("deploy-hook")).unwrap();
    let called = w.path("curl-called");
    fs::write(
        bin.join("curl"),
        format!(
            "#!/bin/sh
printf '%s\\n' \"$@\" > {}\n",
            called.display()
        ),
    )
    .unwrap();
    fs::set_permissions(bin.join("curl"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run_line = |config: &Path| {
        Command::new("sh")
            .args(["-c", &line])
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("DEPLOY_HOOK_CONFIG", config)
            .output()
            .unwrap()
    };
    let out = run_line(&w.path("etc/no-such-config.toml"));
    assert!(!out.status.success(), "{line}: {}", text(&out));
    assert!(!called.exists(), "curl ran without a signature: {line}");
    let out = run_line(&config);
    assert!(out.status.success(), "{line}: {}", text(&out));
    let args = fs::read_to_string(&called).unwrap();
    assert!(
        args.contains("http://docs.test-site.org/hooks/wiki") && args.contains("X-Gitee-Token: "),
        "{args}"
    );
}

#[test]
fn init_on_a_hook_already_there_says_which_options_differ() {
    requires!(Root, WwwData);
    let w = World::new("init-again");
    let daemon = GitDaemon::start(&w.dir, &w.remote);
    let config = etc(&w);
    let url = daemon.url("remote.git");
    let www = w.path("www/docs/site");
    let first = ["--publish-from", "dist", "--publish-to", www.to_str().unwrap()];
    let out = init(&w, &config, "docs", &url, &first);
    assert!(text(&out).contains("docs: set up"), "{}", text(&out));
    let before = fs::read(&config).unwrap();

    // The same options: nothing to say but that nothing changed.
    let out = init(&w, &config, "docs", &url, &first);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("nothing was changed") && !t.contains("differ"), "{t}");

    // Others: each named with what the config (or the checkout) has instead; exit 2.
    let other_url = daemon.url("other.git");
    let out = admin_seeing(
        &w.web,
        BIN,
        &[
            "init",
            "docs",
            "--provider",
            "github",
            "--repo-url",
            &other_url,
            "--branch",
            "dev",
            "--publish-from",
            "build",
            "--publish-to",
            www.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("nothing was changed"), "{t}");
    assert!(t.contains("These options differ from it, and were not applied:"), "{t}");
    for line in [
        "--provider github".to_string(),
        "but provider = \"gitee\"".into(),
        "--branch dev".into(),
        "but branch = \"main\"".into(),
        "--publish-from build".into(),
        "but publish.from = \"dist\"".into(),
        format!("--repo-url {other_url}"),
        format!("but the checkout {} fetches {url}", w.path("srv/docs").display()),
    ] {
        assert!(t.contains(&line), "{line}: {t}");
    }
    assert!(
        !t.contains("--publish-to"),
        "the same publish.to is not a difference: {t}"
    );
    assert!(t.contains(&format!("edit [hooks.docs] in {}", config.display())), "{t}");
    assert!(fs::read(&config).unwrap() == before, "nothing was written");
}

#[test]
fn with_nginx_stopped_and_apache_serving_init_and_check_describe_apache() {
    requires!(Root, WwwData, Nginx, Apache);
    let w = World::new("init-apache");
    let daemon = GitDaemon::start(&w.dir, &w.remote);
    let config = etc(&w);
    let url = daemon.url("remote.git");
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let host = host.trim().to_string();
    // The shipped nginx site is installed, but nginx is stopped; Apache runs the shipped
    // conf (the package's conf-available/deploy-hook.conf) and answers.
    w.web
        .nginx_site(&installed_site(&w, "listen 127.0.0.1:1;", "docs.test-site.org"));
    let apache_conf = crate::servers::template(
        "apache/deploy-hook.conf",
        &[
            ("/usr/bin/deploy-hook", BIN.to_string()),
            ("/etc/deploy-hook/config.toml", config.display().to_string()),
        ],
    );
    w.web.apache_site("www-data", &apache_conf);
    let _apache = w.web.start_apache();
    let reply = crate::servers::http(w.web.apache_port, "POST", "/hooks/docs", &[], Some(b"{}"), false);
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(
        reply.head.contains("Content-Type: application/json") && body.contains("\"status\":\"error\""),
        "Apache runs deploy-hook (which answers, in its JSON, that nothing is set up yet): {reply:?} {body}"
    );

    let www = w.path("www/docs/site");
    let out = init(
        &w,
        &config,
        "docs",
        &url,
        &["--publish-from", "dist", "--publish-to", www.to_str().unwrap()],
    );
    let t = text(&out);
    let apache_file = w.web.apache_dir().join("conf-enabled/deploy-hook.conf");
    let nginx_file = w.web.nginx_dir().join("site.conf");
    assert!(
        t.contains(&format!(
            "URL:          http://{host}/hooks/docs   (as Apache serves it: {}; nginx has a config for deploy-hook too ({}), but is not running)",
            apache_file.display(),
            nginx_file.display()
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "Next: Apache already hands /hooks/docs to deploy-hook ({})",
            apache_file.display()
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "sed \"s#/var/www/docs/site#{}#; s/docs.example.com/$(hostname -f)/\" /usr/share/doc/deploy-hook/examples/apache-site.conf > /etc/apache2/sites-available/docs.conf",
            www.display()
        )),
        "{t}"
    );
    assert!(
        !t.contains("as nginx serves it") && !t.contains("nginx-site.conf"),
        "{t}"
    );
    // check (init runs it) says which one runs.
    assert!(
        t.contains("warn  nginx is not running (no live nginx process in"),
        "{t}"
    );
    assert!(t.contains("ok    apache2 is running (pid "), "{t}");
    assert!(
        t.contains("warn  both nginx (not running) and Apache (running) have a config that runs deploy-hook"),
        "{t}"
    );
    // What init printed is what Apache serves: a signed push through it is queued.
    let secret = fs::read_to_string(w.path("etc/docs.secret")).unwrap();
    let reply = crate::servers::http(
        w.web.apache_port,
        "POST",
        "/hooks/docs",
        &crate::servers::gitee_headers(secret.trim()),
        Some(crate::servers::PUSH),
        false,
    );
    assert_eq!(reply.status, 202, "{reply:?}");
}
