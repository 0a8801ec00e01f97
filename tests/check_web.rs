//! The web server in front of deploy-hook, set up wrong in the ways users did, started here
//! for real (nginx + fcgiwrap, as servers.rs starts them, with the site check reads): the
//! deliveries fail as they failed for the user, `check` FAILs, says what to do, and holds
//! once it is done. And where log lines really go.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::check::{chown, text, www_data_world};
use crate::servers::{find, gitee_headers, spawn, template, wait_listening, HttpReply, Proc, PUSH};
use crate::util::*;

/// How fcgiwrap runs: as whom, and with `-f` (the CGI's stderr to nginx) or without (to
/// fcgiwrap's own stderr: /dev/null, as once spawn-fcgi has daemonized it).
#[derive(Clone, Copy)]
pub struct Fcgi {
    pub user: &'static str,
    pub forward_stderr: bool,
}

pub const WWW_DATA_F: Fcgi = Fcgi {
    user: "www-data",
    forward_stderr: true,
};

/// nginx + fcgiwrap running this binary, with one site; `check` (through `World::cmd`)
/// reads the same site in the world's own nginx config.
pub struct Served {
    pub port: u16,
    pub error_log: PathBuf,
    _procs: Vec<Proc>,
}

impl Served {
    /// `site(port, snippet)`: the text of the one site, given the port to listen on and
    /// the snippet that hands a request to fcgiwrap.
    pub fn start(w: &World, fcgi: Fcgi, site: impl Fn(u16, &Path) -> String) -> Served {
        let dir = w.path("served");
        fs::create_dir_all(&dir).unwrap();
        crate::own_web::write_fastcgi_params(&dir);
        let socket = dir.join("fcgiwrap.sock");
        let snippet = dir.join("deploy-hook-fcgiwrap.conf");
        fs::write(
            &snippet,
            template(
                "fcgiwrap.conf",
                &[
                    (
                        "include fastcgi_params;",
                        format!("include {}/fastcgi_params;", dir.display()),
                    ),
                    ("/usr/bin/deploy-hook", BIN.to_string()),
                    ("unix:/run/fcgiwrap.socket", format!("unix:{}", socket.display())),
                ],
            ),
        )
        .unwrap();
        let port = free_port();
        w.web.nginx_site(&site(port, &snippet));
        let error_log = dir.join("error.log");
        let conf = dir.join("nginx.conf");
        fs::write(
            &conf,
            format!(
                "user www-data;\nworker_processes 1;\npid {run}/nginx.pid;\nerror_log {e} info;\ndaemon off;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  fastcgi_temp_path {d}/fastcgi;\n  proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {site};\n}}\n",
                d = dir.display(),
                // Where the world's nginx.conf says, as a running nginx writes it.
                run = w.web.run_dir().display(),
                e = error_log.display(),
                site = w.web.nginx_dir().join("site.conf").display()
            ),
        )
        .unwrap();
        chown("www-data:www-data", true, &dir);
        let mut spawn_fcgi = Command::new(find("spawn-fcgi"));
        spawn_fcgi.args(["-n", "-s"]).arg(&socket).args(["-M", "0660"]);
        if fcgi.user != "root" {
            spawn_fcgi.args(["-u", fcgi.user, "-g", fcgi.user]);
        }
        spawn_fcgi
            .args(["-U", "www-data", "-G", "www-data", "--"])
            .arg(find("fcgiwrap"));
        if fcgi.forward_stderr {
            spawn_fcgi.arg("-f");
        }
        spawn_fcgi.args(["-c", "2"]).stdout(Stdio::null()).stderr(Stdio::null());
        let fcgiwrap = spawn("fcgiwrap", &mut spawn_fcgi);
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
                .stderr(fs::File::create(w.path("nginx.stderr")).unwrap()),
        );
        wait_listening(port, &error_log);
        Served {
            port,
            error_log,
            _procs: vec![nginx, fcgiwrap],
        }
    }

    pub fn post(&self, path: &str, headers: &[(String, String)]) -> HttpReply {
        crate::servers::http(self.port, "POST", path, headers, Some(PUSH), false)
    }

    pub fn error_log_text(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

/// The shipped site (nginx/deploy-hook.conf), with `config` as its DEPLOY_HOOK_CONFIG.
pub fn shipped_site(port: u16, snippet: &Path, config: &Path) -> String {
    template(
        "nginx/deploy-hook.conf",
        &[
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            ("listen [::]:80;", String::new()),
            ("snippets/deploy-hook-fcgiwrap.conf", snippet.display().to_string()),
            ("/etc/deploy-hook/config.toml", config.display().to_string()),
        ],
    )
}

/// Two Gitee hooks, docs and blog, on the world's checkout (blog's build HOME trusts the
/// root-owned "forge" as docs' does).
fn two_hooks(w: &World) {
    let blog_home = w.state.join("blog/home");
    fs::create_dir_all(&blog_home).unwrap();
    fs::copy(w.hook_dir().join("home/.gitconfig"), blog_home.join(".gitconfig")).unwrap();
    chown("www-data:", true, &w.state.join("blog"));
    let hook = |name: &str| {
        format!(
            "[hooks.{name}]\nprovider = \"gitee\"\nsecret_file = {:?}\nrepo = {:?}\nsteps = [\"true\"]\n",
            w.secret_file.to_str().unwrap(),
            w.repo.to_str().unwrap()
        )
    };
    fs::write(
        &w.config,
        format!(
            "state_dir = {:?}\n[log]\nsyslog = \"\"\n\n{}\n{}",
            w.state.to_str().unwrap(),
            hook("docs"),
            hook("blog")
        ),
    )
    .unwrap();
}

#[test]
fn a_location_without_path_info_for_two_hooks_fails_check() {
    requires!(Root, WwwData, Nginx);
    let w = www_data_world("web-path-info");
    two_hooks(&w);
    // The admin's own location for the hooks: the snippet and the config, no PATH_INFO.
    let config = w.config.clone();
    let served = Served::start(&w, WWW_DATA_F, |port, snippet| {
        format!(
            "server {{\n  listen 127.0.0.1:{port};\n  location /hooks/ {{\n    include {};\n    fastcgi_param DEPLOY_HOOK_CONFIG {};\n  }}\n}}\n",
            snippet.display(),
            config.display()
        )
    });
    let reply = served.post("/hooks/docs", &gitee_headers(SECRET));
    assert_eq!(reply.status, 404, "every delivery to the URL init prints: {reply:?}");
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let site = w.web.nginx_dir().join("site.conf");
    assert!(
        t.contains(&format!(
            "FAIL  nginx: /hooks/blog, /hooks/docs reach location /hooks/ ({}), which passes no PATH_INFO: with 2 hooks in the config",
            site.display()
        )),
        "{t}"
    );
    assert!(t.contains("fastcgi_param PATH_INFO /$deploy_hook_name;"), "{t}");
    assert!(t.contains("or give the forge /hooks/?hook=NAME"), "{t}");

    // The shipped site passes the name: 202, and check holds.
    drop(served);
    let served = Served::start(&w, WWW_DATA_F, |port, snippet| shipped_site(port, snippet, &config));
    let reply = served.post("/hooks/docs", &gitee_headers(SECRET));
    assert_eq!(reply.status, 202, "{reply:?}\n{}", served.error_log_text());
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("ok    nginx: /hooks/blog, /hooks/docs reach deploy-hook with the hook's name (PATH_INFO)"),
        "{t}"
    );
}

#[test]
fn a_config_the_web_server_names_and_that_is_not_there_fails_check() {
    requires!(Root, WwwData, Nginx);
    let w = www_data_world("web-config");
    w.config("gitee", "steps = [\"true\"]");
    let gone = w.path("etc/deploy-hook/config.toml");
    let served = Served::start(&w, WWW_DATA_F, |port, snippet| shipped_site(port, snippet, &gone));
    let reply = served.post("/hooks/docs", &gitee_headers(SECRET));
    assert_eq!(reply.status, 500, "every delivery: {reply:?}");
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "passes DEPLOY_HOOK_CONFIG={}, which does not exist: every delivery through it is answered 500",
            gone.display()
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "fix: write `fastcgi_param DEPLOY_HOOK_CONFIG {};`",
            w.config.display()
        )),
        "{t}"
    );
    // A config www-data cannot read is as bad (check reads nginx's config as root, then
    // judges as www-data).
    fs::create_dir_all(gone.parent().unwrap()).unwrap();
    fs::copy(&w.config, &gone).unwrap();
    fs::set_permissions(&gone, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("which www-data cannot read"), "{t}");
    assert_eq!(served.post("/hooks/docs", &gitee_headers(SECRET)).status, 500);

    // The printed fix: name the config that is there.
    drop(served);
    let config = w.config.clone();
    let served = Served::start(&w, WWW_DATA_F, |port, snippet| shipped_site(port, snippet, &config));
    assert_eq!(served.post("/hooks/docs", &gitee_headers(SECRET)).status, 202);
    let out = w.cmd(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn fcgiwrap_running_as_root_fails_check() {
    requires!(Root, WwwData, Nginx);
    // Everything root's, and fcgiwrap started as root: every push is built as root.
    let w = World::new("web-root");
    let who = w.path("who-built");
    w.config(
        "gitee",
        &format!("steps = [{}]", toml_str(&format!("id -u > {}", who.display()))),
    );
    let config = w.config.clone();
    let served = Served::start(
        &w,
        Fcgi {
            user: "root",
            forward_stderr: true,
        },
        |port, snippet| shipped_site(port, snippet, &config),
    );
    let reply = served.post("/hooks/docs", &gitee_headers(SECRET));
    assert_eq!(reply.status, 202, "{reply:?}");
    w.wait_idle();
    assert_eq!(fs::read_to_string(&who).unwrap(), "0\n", "the push was built as root");
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("serving") && t.contains("runs as root: every delivery runs deploy-hook"),
        "{t}"
    );
    assert!(t.contains("fix: run fcgiwrap as www-data: spawn-fcgi"), "{t}");
}

/// The world's one Gitee hook, with `[log]` as given.
fn log_config(w: &World, log: &str) {
    w.config("gitee", "steps = [\"true\"]");
    let text = fs::read_to_string(&w.config)
        .unwrap()
        .replace("[log]\nsyslog = \"\"\n", &format!("[log]\n{log}\n"));
    fs::write(&w.config, text).unwrap();
}

#[test]
fn rejected_deliveries_are_logged_where_check_says_and_lost_lines_fail_it() {
    requires!(Root, WwwData, Nginx);
    let w = www_data_world("web-logs");
    // No syslog here (no rsyslog runs), no log file.
    log_config(
        &w,
        &format!("syslog = {:?}", w.path("no-syslog.sock").to_str().unwrap()),
    );
    let config = w.config.clone();
    let mut bad = gitee_headers(SECRET);
    bad[2].1 = gitee_token("a-wrong-secret", &bad[3].1);
    let token = bad[2].1.clone();

    // fcgiwrap with -f: a rejection reaches nginx's error log, without the token.
    let served = Served::start(&w, WWW_DATA_F, |port, snippet| shipped_site(port, snippet, &config));
    assert_eq!(served.post("/hooks/docs", &bad).status, 403);
    wait_for("the rejection in nginx's error log", Duration::from_secs(10), || {
        served.error_log_text().contains("status=403 outcome=forbidden")
    });
    assert!(!served.error_log_text().contains(&token));
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("warn  the syslog socket"), "{t}");
    assert!(
        t.contains("to nginx's error log (fcgiwrap runs with -f); an async build's to")
            && t.contains(&format!("{}/<hook>/worker.log", w.state.display())),
        "{t}"
    );
    drop(served);

    // fcgiwrap without -f: its stderr (/dev/null) takes them, and nobody sees them.
    let served = Served::start(
        &w,
        Fcgi {
            user: "www-data",
            forward_stderr: false,
        },
        |port, snippet| shipped_site(port, snippet, &config),
    );
    let before = served.error_log_text().len();
    assert_eq!(served.post("/hooks/docs", &bad).status, 403);
    assert_eq!(served.post("/hooks/docs", &gitee_headers(SECRET)).status, 202);
    w.wait_idle();
    let since = served.error_log_text()[before..].to_string();
    assert!(!since.contains("status=403"), "{since}");
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("fcgiwrap's own stderr, /dev/null (fcgiwrap, pid") && t.contains("the deliveries' lines are lost"),
        "{t}"
    );
    assert!(
        t.contains("fix: set file = \"/var/log/deploy-hook/deploy-hook.log\" in [log]"),
        "{t}"
    );

    // The fix: a log file www-data can write takes every line, the rejection as a warning.
    let logs = w.path("log");
    fs::create_dir_all(&logs).unwrap();
    chown("www-data:", false, &logs);
    let file = logs.join("deploy-hook.log");
    log_config(
        &w,
        &format!(
            "syslog = {:?}\nfile = {:?}",
            w.path("no-syslog.sock").to_str().unwrap(),
            file.to_str().unwrap()
        ),
    );
    assert_eq!(served.post("/hooks/docs", &bad).status, 403);
    let lines = fs::read_to_string(&file).unwrap();
    assert!(
        lines.contains("warning: delivery hook=docs provider=gitee") && lines.contains("status=403 outcome=forbidden"),
        "{lines}"
    );
    assert!(!lines.contains(&token) && !lines.contains(SECRET), "{lines}");
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("ok    log lines go to {}", file.display())), "{t}");
}

#[test]
fn a_secret_pasted_with_spaces_around_it_works_and_check_says_so() {
    for (provider, extra) in PROVIDER_MODES {
        let w = World::new("secret-spaces");
        fs::write(&w.secret_file, format!("  {SECRET} \t\n")).unwrap();
        w.config(provider, &format!("{extra}\nsteps = [\"true\"]\nmode = \"sync\""));
        let body = br#"{"ref":"refs/heads/main"}"#;
        let cgi = match provider {
            "gitee" if extra.is_empty() => w.gitee_push(),
            "gitee" => w
                .cgi()
                .header("X-Gitee-Token", SECRET)
                .header("X-Gitee-Event", "Push Hook")
                .body(body),
            "github" => w
                .cgi()
                .header("X-GitHub-Event", "push")
                .header("X-Hub-Signature-256", github_sig(SECRET, body))
                .body(body),
            "gitlab" => w
                .cgi()
                .header("X-Gitlab-Event", "Push Hook")
                .header("X-Gitlab-Token", SECRET)
                .body(body),
            _ => w
                .cgi()
                .header(
                    if provider == "gitea" {
                        "X-Gitea-Event"
                    } else {
                        "X-Gogs-Event"
                    },
                    "push",
                )
                .header(
                    if provider == "gitea" {
                        "X-Gitea-Signature"
                    } else {
                        "X-Gogs-Signature"
                    },
                    gitea_sig(SECRET, body),
                )
                .body(body),
        };
        let r = cgi.run();
        assert_eq!(r.status, 200, "{provider} {extra}: {} {}", r.json, r.stderr);
        assert_eq!(r.word(), "succeeded", "{provider} {extra}: {}", r.json);
        let t = text(&w.cmd(&["check"]));
        assert!(
            t.contains(&format!(
                "warn  secret_file {} has spaces or tabs around the secret: they are ignored",
                w.secret_file.display()
            )),
            "{provider}: {t}"
        );
    }
}

#[test]
fn check_as_www_data_that_cannot_read_nginx_does_not_claim_no_location_runs_it() {
    requires!(Root, WwwData, Nginx);
    let w = www_data_world("web-unreadable");
    w.config("gitee", "steps = [\"true\"]");
    let config = w.config.clone();
    let served = Served::start(&w, WWW_DATA_F, |port, snippet| shipped_site(port, snippet, &config));
    assert_eq!(served.post("/hooks/docs", &gitee_headers(SECRET)).status, 202);
    w.wait_idle();
    // nginx's pid file as Debian has it: root's, 0644 in /run; `nginx -T` as www-data
    // cannot open it, and stops.
    let pid = w.web.run_dir().join("nginx.pid");
    if !pid.exists() {
        fs::write(&pid, "1\n").unwrap();
    }
    chown("root:root", false, &pid);
    fs::set_permissions(&pid, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = crate::check::as_www_data(&w, &["check"]);
    let t = text(&out);
    assert!(
        t.contains("skip  nginx's config could not be read") && t.contains("Permission denied"),
        "the premise: www-data cannot read nginx's config: {t}"
    );
    assert!(
        !t.contains("no nginx location or Apache ScriptAlias runs deploy-hook yet"),
        "deliveries reach it (202 above), and check cannot know otherwise: {t}"
    );
    assert!(
        t.contains("skip  whether a web server runs deploy-hook was not checked: nginx's config could not be read as www-data; run check as root (deploy-hook check): it reads the web server's config as root, then checks the hooks as www-data"),
        "{t}"
    );
    // As root it reads it, and finds the location.
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("ok    nginx: /hooks/docs reaches deploy-hook with the hook's name"),
        "{t}"
    );
}

#[test]
fn check_as_root_with_a_broken_nginx_config_does_not_say_to_run_it_as_root() {
    requires!(Root, WwwData, Nginx);
    let w = www_data_world("web-broken");
    w.config("gitee", "steps = [\"true\"]");
    w.web
        .nginx_site("server { listen 127.0.0.1:1; no_such_directive on; }\n");
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert!(
        t.contains("skip  nginx's config could not be read (")
            && t.contains("`nginx -t` (as root) says where it is wrong"),
        "{t}"
    );
    assert!(
        t.contains(
            "skip  whether a web server runs deploy-hook was not checked: nginx's config could not be read as root\n"
        ),
        "{t}"
    );
    assert!(!t.contains("run check as root"), "it is root: {t}");
    assert!(
        !t.contains("no nginx location or Apache ScriptAlias runs deploy-hook yet"),
        "{t}"
    );
}
