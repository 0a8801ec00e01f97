//! `check`: what it must catch on a real server (ownership left by root, a remote that
//! refuses, node missing, devDependencies skipped, the web server's config), what it must
//! never print (a remote's credentials), and its `--json` form.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::*;

pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn chown(owner: &str, recursive: bool, path: &Path) {
    let mut cmd = Command::new("chown");
    if recursive {
        cmd.arg("-R");
    }
    assert!(cmd.arg(owner).arg(path).status().unwrap().success());
}

/// A world set up as the README says: the checkout, the state folder and the publish
/// folder (`www`) belong to www-data, the secret is root:www-data 0640. The "forge"
/// (remote.git) stays root's, trusted through the build HOME's .gitconfig.
pub fn www_data_world(name: &str) -> World {
    let w = World::new(name);
    w.trust_remote_in_build_home();
    fs::create_dir_all(w.path("www")).unwrap();
    chown("www-data:www-data", false, &w.dir);
    for p in [&w.repo, &w.state, &w.path("www")] {
        chown("www-data:www-data", true, p);
    }
    chown("root:www-data", false, &w.secret_file);
    fs::set_permissions(&w.secret_file, fs::Permissions::from_mode(0o640)).unwrap();
    w
}

/// `cmd` as www-data, with the world's config and its own web servers (`World::cmd`).
pub fn as_www_data(w: &World, args: &[&str]) -> std::process::Output {
    Command::new("/usr/sbin/runuser")
        .args(["-u", "www-data", "--", BIN])
        .args(args)
        .env_clear()
        .env("PATH", w.web.path("/usr/local/bin:/usr/bin:/bin"))
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .current_dir("/")
        .output()
        .unwrap()
}

/// git in a checkout that is www-data's (root's git calls it dubious otherwise).
fn git_in_www_data_repo(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "safe.directory=*"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(ok.success(), "git {args:?}");
}

fn publish_config(w: &World) -> String {
    format!(
        "steps = [[\"sh\", \"-c\", \"mkdir -p out && echo $DEPLOY_HOOK_COMMIT > out/index.html\"]]\n[hooks.docs.publish]\nfrom = \"out\"\nto = {:?}\n",
        w.path("www/site").to_str().unwrap()
    )
}

#[test]
fn check_as_root_checks_as_the_state_folders_owner_and_sees_what_root_left() {
    requires!(Root, WwwData);
    let w = www_data_world("check-root-left");
    w.config("gitlab", &publish_config(&w));
    let out = as_www_data(&w, &["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    // Read-only files that are fine: pnpm's store in the steps' HOME, a site's own files.
    let store = w.hook_dir().join("home/.local/share/pnpm/store");
    fs::create_dir_all(&store).unwrap();
    fs::write(store.join("blob"), "x").unwrap();
    fs::set_permissions(store.join("blob"), fs::Permissions::from_mode(0o444)).unwrap();
    chown("www-data:www-data", true, &w.hook_dir().join("home"));
    let release = w.path("www/site").join("index.html");
    fs::set_permissions(&release, fs::Permissions::from_mode(0o444)).unwrap();
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("as user www-data, the owner of"), "{t}");
    assert!(t.contains("started as root"), "{t}");
    assert!(t.contains("remote origin answers (as www-data)"), "{t}");

    // What a command run as root used to leave: a root-owned status.json and site symlink.
    let status = w.hook_dir().join("status.json");
    let bytes = fs::read(&status).unwrap();
    fs::remove_file(&status).unwrap();
    fs::write(&status, bytes).unwrap();
    let site = w.path("www/site");
    let target = fs::read_link(&site).unwrap();
    fs::remove_file(&site).unwrap();
    std::os::unix::fs::symlink(&target, &site).unwrap();
    for who in ["root", "www-data"] {
        let out = if who == "root" {
            w.cmd(&["check"])
        } else {
            as_www_data(&w, &["check"])
        };
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "as {who}: {t}");
        assert!(
            t.contains(&format!("{} (owned by root)", status.display())),
            "as {who}: {t}"
        );
        assert!(
            t.contains(&format!("{} (owned by root)", site.display())),
            "as {who}: {t}"
        );
        assert!(
            t.contains(&format!("fix: chown -R www-data: {}", w.hook_dir().display())),
            "as {who}: {t}"
        );
        assert!(t.contains("2 problems found"), "as {who}: {t}");
    }
    // The printed fixes, applied, make it hold again.
    chown("www-data:", true, &w.hook_dir());
    chown("www-data:", true, &site);
    let out = w.cmd(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn check_as_root_sees_a_config_the_web_servers_user_cannot_read() {
    requires!(Root, WwwData);
    let w = www_data_world("check-config-mode");
    w.config("gitlab", "steps = [\"true\"]");
    fs::set_permissions(&w.config, fs::Permissions::from_mode(0o600)).unwrap();
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("cannot be read by www-data"), "{t}");
    assert!(
        t.contains(&format!(
            "fix: chown root:www-data {c} && chmod 640 {c}",
            c = w.config.display()
        )),
        "{t}"
    );
    chown("root:www-data", false, &w.config);
    fs::set_permissions(&w.config, fs::Permissions::from_mode(0o640)).unwrap();
    let out = w.cmd(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn check_never_prints_a_remotes_credentials_and_reaches_it_as_the_build_does() {
    requires!(Root, WwwData);
    let w = www_data_world("check-remote");
    w.config("gitlab", "steps = [\"true\"]");
    // Nothing listens on a port found free and given to no server: a remote that cannot be
    // reached.
    let port = free_port();
    let url = format!("https://deploy:TOKEN-s3cr3t@127.0.0.1:{port}/docs.git");
    git_in_www_data_repo(&w.repo, &["remote", "set-url", "origin", &url]);
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(!t.contains("TOKEN-s3cr3t") && !t.contains("deploy:"), "{t}");
    assert!(
        t.contains(&format!("remote origin is https://127.0.0.1:{port}/docs.git")),
        "{t}"
    );
    assert!(t.contains("git ls-remote origin failed as www-data"), "{t}");
    let json = w.cmd(&["check", "--json"]);
    assert!(!text(&json).contains("TOKEN-s3cr3t"));
    // Nor does a build that fetches from it: its log, its status, run's output.
    let run = as_www_data(&w, &["run", "docs", "--wait"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let s = w.status();
    let log = w.log_text(&s["last"]);
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
    for t in [text(&run), log, s.to_string(), text(&w.cmd(&["status", "docs"]))] {
        assert!(!t.contains("TOKEN-s3cr3t"), "{t}");
    }

    // A reachable remote without the branch.
    git_in_www_data_repo(&w.repo, &["remote", "set-url", "origin", w.remote.to_str().unwrap()]);
    w.config("gitlab", "steps = [\"true\"]\nbranch = \"release\"");
    let t = text(&w.cmd(&["check"]));
    assert!(t.contains("remote origin has no branch release"), "{t}");

    // A local remote that www-data's git refuses (dubious ownership), though root's works.
    fs::remove_file(w.hook_dir().join("home/.gitconfig")).unwrap();
    w.config("gitlab", "steps = [\"true\"]");
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("dubious ownership") && t.contains("safe.directory"), "{t}");
}

#[test]
fn check_finds_pnpm_without_node_once_and_labels_notifications() {
    requires!(Root, WwwData);
    let w = www_data_world("check-node");
    let bin = w.path("bin");
    fs::create_dir_all(&bin).unwrap();
    for p in ["git", "sh"] {
        std::os::unix::fs::symlink(format!("/usr/bin/{p}"), bin.join(p)).unwrap();
    }
    let pnpm = bin.join("pnpm");
    fs::write(&pnpm, "#!/bin/sh\nexec node \"$@\"\n").unwrap();
    fs::set_permissions(&pnpm, fs::Permissions::from_mode(0o755)).unwrap();
    let path = bin.to_str().unwrap();
    w.config(
        "gitlab",
        &format!("path = {path:?}\non_failure = [\"/nonexistent/notify\", \"failed\"]\non_success = [\"notify-ok\"]"),
    );
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!("pnpm needs node, which is not found on path {path}")),
        "{t}"
    );
    assert!(
        t.contains("on_failure: /nonexistent/notify does not exist or is not executable"),
        "{t}"
    );
    assert!(!t.contains("/nonexistent/notify is not found on path"), "{t}");
    assert!(
        t.contains(&format!("on_success: notify-ok is not found on path {path}")),
        "{t}"
    );
    assert!(t.contains("3 problems found"), "{t}");

    // No pnpm at all: the default steps call it twice, and it is one problem.
    fs::remove_file(&pnpm).unwrap();
    w.config("gitlab", &format!("path = {path:?}"));
    let t = text(&w.cmd(&["check"]));
    assert_eq!(t.matches("pnpm is not found on path").count(), 1, "{t}");
    assert!(t.contains("npm install -g pnpm"), "{t}");
}

#[test]
fn check_sees_node_env_production_skipping_the_site_generator() {
    requires!(Root, WwwData);
    let w = www_data_world("check-node-env");
    fs::write(
        w.repo.join("package.json"),
        r#"{"scripts": {"docs:build": "vitepress build docs"}, "devDependencies": {"vitepress": "^1.0.0", "vue": "^3"}}"#,
    )
    .unwrap();
    chown("www-data:www-data", true, &w.repo);
    let steps = "steps = [[\"true\", \"pnpm\"]]";
    w.config("gitlab", &format!("{steps}\nenv = {{ NODE_ENV = \"production\" }}"));
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("NODE_ENV=production") && t.contains("vitepress"), "{t}");
    assert!(t.contains("fix: remove NODE_ENV from env"), "{t}");
    w.config("gitlab", steps);
    let out = w.cmd(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn check_as_root_before_any_state_folder_names_the_web_servers_user_in_fixes() {
    requires!(Root, WwwData);
    // A www-data checkout, and no state folder yet: root would stay root, and run git and
    // the steps in www-data's checkout; it refuses, and check says so. The fix gives the
    // hook to www-data rather than handing the repo to root.
    let w = World::new("check-root-fix");
    chown("www-data:www-data", true, &w.repo);
    w.config("gitlab", "steps = [\"true\"]");
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "fix: give the hook to the web server's user, so that commands started as root run as it: install -d -o www-data -g www-data -m 750 {} && chown -R www-data: {}",
            w.state.display(),
            w.repo.display()
        )),
        "{t}"
    );
    assert!(t.contains("runuser -u www-data -- deploy-hook check"), "{t}");
}

#[test]
fn check_json_lists_every_item_with_its_fix() {
    requires!(Root, WwwData);
    let w = www_data_world("check-json");
    w.config("gitlab", "steps = [[\"no-such-program-here\"]]");
    let out = w.cmd(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let items: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(items.len() > 5, "{items:?}");
    assert_eq!(items[0]["item"], "checked as");
    assert!(
        items[0]["detail"].as_str().unwrap().starts_with("as user www-data"),
        "{items:?}"
    );
    for i in &items {
        assert!(
            i["item"].is_string() && i["detail"].is_string() && i["ok"].is_boolean(),
            "{i}"
        );
        assert_eq!(i["ok"] == false, i["fix"].is_string(), "{i}");
    }
    let bad: Vec<&serde_json::Value> = items.iter().filter(|i| i["ok"] == false).collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["item"], "docs: step no-such-program-here");
    assert!(bad[0]["fix"].as_str().unwrap().contains("add its folder"), "{bad:?}");
}

#[test]
fn check_reads_the_nginx_config_in_use_and_fcgiwraps_socket() {
    requires!(Root, WwwData, Nginx);
    let w = www_data_world("check-nginx");
    w.config("gitlab", "steps = [\"true\"]");
    let socket = w.path("fcgiwrap.socket");
    let shipped_site = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/nginx/deploy-hook.conf")).unwrap();
    let shipped_snippet = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fcgiwrap.conf")).unwrap();
    // The shipped site and snippet, changed only for a port and this world's paths; the
    // site's `include snippets/...` and the snippet's `include fastcgi_params;` find the
    // files next to the world's nginx.conf.
    let site = shipped_site
        .replace("listen 80;", "listen 127.0.0.1:1;")
        .replace("listen [::]:80;", "")
        .replace("/etc/deploy-hook/config.toml", w.config.to_str().unwrap());
    let good = shipped_snippet
        .replace("/usr/bin/deploy-hook", BIN)
        .replace("/run/fcgiwrap.socket", socket.to_str().unwrap());
    w.web.nginx_site_with_snippet(&site, &good);
    let check = || {
        let out = w.cmd(&["check"]);
        (out.status.code(), text(&out))
    };
    // No fcgiwrap listening: nginx would answer 502.
    let (code, t) = check();
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("(this binary); /hooks/NAME reaches it with PATH_INFO"),
        "{t}"
    );
    assert!(
        t.contains("location = /hooks/") && t.contains("passes no PATH_INFO"),
        "{t}"
    );
    assert!(
        t.contains(&format!("fcgiwrap's socket {} is not there", socket.display())),
        "{t}"
    );
    // A socket owned by root (as if fcgiwrap ran as root): never root.
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let (code, t) = check();
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("is root: every delivery runs deploy-hook"), "{t}");
    chown("www-data:www-data", false, &socket);
    let (code, t) = check();
    assert_eq!(code, Some(0), "{t}");
    assert!(t.contains("is www-data, the owner of the state folder"), "{t}");
    // A location that runs another copy of the binary.
    let other = w.path("old/deploy-hook");
    fs::create_dir_all(other.parent().unwrap()).unwrap();
    fs::copy(BIN, &other).unwrap();
    let stale = good.replace(BIN, other.to_str().unwrap());
    w.web.nginx_site_with_snippet(&site, &stale);
    let (code, t) = check();
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains(&format!("runs {}, not this deploy-hook", other.display())),
        "{t}"
    );
    drop(listener);
}

/// The shipped Apache conf, running this binary with this world's config.
fn apache_site(w: &World) -> String {
    fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/apache/deploy-hook.conf"))
        .unwrap()
        .replace("/usr/bin/deploy-hook", BIN)
        .replace("/etc/deploy-hook/config.toml", w.config.to_str().unwrap())
}

#[test]
fn check_reads_the_apache_config_in_use() {
    requires!(Root, WwwData, Apache);
    let w = www_data_world("check-apache");
    w.config("gitlab", "steps = [\"true\"]");
    let check = || {
        let out = w.cmd(&["check"]);
        (out.status.code(), text(&out))
    };
    w.web.apache_site("www-data", &apache_site(&w));
    let (code, t) = check();
    assert_eq!(code, Some(0), "{t}");
    assert!(
        t.contains("apache2: ScriptAlias /hooks") && t.contains(&format!("runs {BIN} (this binary)")),
        "{t}"
    );
    assert!(
        t.contains("apache2 runs CGIs as www-data, the owner of the state folder"),
        "{t}"
    );

    w.web.apache_with("daemon", false, &apache_site(&w));
    let (code, t) = check();
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("neither mod_cgid nor mod_cgi is loaded") && t.contains("a2enmod cgid"),
        "{t}"
    );
    assert!(
        t.contains("apache2 runs CGIs as daemon, but www-data owns the state folder"),
        "{t}"
    );
}

/// A loopback HTTP "forge" on its own thread: `refuse` answers every request 401 (what a
/// forge says to a wrong or missing token); otherwise it accepts and never answers.
struct FakeForge {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeForge {
    fn start(refuse: bool) -> FakeForge {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut s, _)) if refuse => {
                        s.set_nonblocking(false).unwrap();
                        let mut buf = [0u8; 4096];
                        let _ = s.read(&mut buf);
                        let _ = s.write_all(
                            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"forge\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                    Ok((s, _)) => held.push(s),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        });
        FakeForge {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn check_sees_a_remote_that_refuses_the_credentials_or_never_answers() {
    requires!(Root, WwwData);
    let w = www_data_world("check-refused");
    w.config("gitlab", "steps = [\"true\"]");
    let forge = FakeForge::start(true);
    for (url, expect) in [
        (
            format!("http://127.0.0.1:{}/docs.git", forge.port),
            "terminal prompts disabled",
        ),
        (
            format!("http://deploy:WRONG-token@127.0.0.1:{}/docs.git", forge.port),
            "Authentication failed",
        ),
    ] {
        git_in_www_data_repo(&w.repo, &["remote", "set-url", "origin", &url]);
        let out = w.cmd(&["check"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(
            t.contains("git ls-remote origin failed as www-data") && t.contains(expect),
            "{t}"
        );
        assert!(t.contains("fix: the remote refuses the credentials"), "{t}");
        assert!(!t.contains("WRONG-token"), "{t}");
    }
    drop(forge);
    // A remote that accepts the connection and never answers: check gives up, and says so.
    let forge = FakeForge::start(false);
    let url = format!("http://127.0.0.1:{}/docs.git", forge.port);
    git_in_www_data_repo(&w.repo, &["remote", "set-url", "origin", &url]);
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("git ls-remote origin did not answer within 20 s"), "{t}");
}
