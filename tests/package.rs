//! The Debian package, end to end, on this machine: `cargo deb`, lintian, `apt-get install`
//! of the .deb, `deploy-hook init` against a remote served by `git daemon` on loopback (and
//! owned by nobody), the system nginx started with the package's own snippet and site
//! example (rewritten only for a loopback port and temp paths), fcgiwrap as www-data, a
//! delivery signed with the installed `deploy-hook sign` and sent with curl, and the page
//! served by that nginx. Then `apt-get purge`. Everything runs from the installed package.
//!
//! It installs a system package, so it is in the system tier (root), and it leaves an
//! existing install of deploy-hook alone: on a machine where deploy-hook is installed for
//! real it says so on stderr and skips. `init` and `check` see the nginx this test starts
//! (with the package's own snippet and site), never the machine's.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::init::{admin, admin_seeing, text, uid_of, GitDaemon};
use crate::util::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The package's files, as docs/packaging.md lists them.
const LAYOUT: &[&str] = &[
    "/usr/bin/deploy-hook",
    "/etc/deploy-hook/config.toml",
    "/etc/nginx/snippets/deploy-hook-fcgiwrap.conf",
    "/etc/apache2/conf-available/deploy-hook.conf",
    "/usr/share/doc/deploy-hook/examples/nginx-site.conf",
    "/usr/share/doc/deploy-hook/examples/nginx-published-site.conf",
    "/usr/share/doc/deploy-hook/examples/nginx-previews.conf",
    "/usr/share/doc/deploy-hook/examples/apache.conf",
    "/usr/share/doc/deploy-hook/examples/fcgiwrap-deploy-hook.conf",
    "/usr/share/doc/deploy-hook/examples/nginx-builds.conf",
    "/usr/share/doc/deploy-hook/examples/apache-builds.conf",
    "/usr/share/doc/deploy-hook/examples/apache-site.conf",
    "/usr/share/man/man1/deploy-hook.1.gz",
    "/usr/share/man/man5/deploy-hook.conf.5.gz",
    "/usr/share/bash-completion/completions/deploy-hook",
    "/usr/share/doc/deploy-hook/README.md",
    "/usr/share/doc/deploy-hook/docs/config.md",
];

/// A machine-wide lock, held while this test has the package installed.
fn machine_lock() -> fs::File {
    use fs2::FileExt;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/lock/deploy-hook-package-test.lock")
        .or_else(|_| {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(std::env::temp_dir().join("deploy-hook-package-test.lock"))
        })
        .unwrap();
    f.lock_exclusive().unwrap();
    f
}

fn installed() -> bool {
    let out = admin("dpkg-query", &["-W", "-f=${Status}", "deploy-hook"]);
    String::from_utf8_lossy(&out.stdout).contains("install ok installed")
}

/// The installed package; purged when dropped (last, after the servers stopped), with
/// the secret file init made (not the package's, so dpkg would leave it).
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = fs::remove_file("/etc/deploy-hook/docs.secret");
        let out = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=600", "purge", "-y", "-q", "deploy-hook"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!("apt-get purge deploy-hook failed: {}", text(&o));
            }
        }
    }
}

/// A server's process group, stopped and waited for when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let pgid = self.0.id() as i32;
        // SAFETY: signals to the process group this guard started.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        wait_for("a server to stop", Duration::from_secs(10), || {
            matches!(self.0.try_wait(), Ok(Some(_)))
        });
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, stderr: &Path) -> Server {
    Server(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(stderr).unwrap())
            .process_group(0)
            .spawn()
            .unwrap(),
    )
}

/// A shipped file with some strings replaced; each must be there (else the test is stale).
fn rewrite(file: &str, pairs: &[(&str, String)]) -> String {
    let mut t = fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    for (from, to) in pairs {
        assert!(t.contains(from), "{file} no longer contains {from:?}");
        t = t.replace(from, to);
    }
    t
}

/// The README and every page of docs/ under `root`.
fn doc_pages(root: &str) -> Vec<PathBuf> {
    let mut pages = vec![Path::new(root).join("README.md")];
    for e in fs::read_dir(Path::new(root).join("docs")).unwrap() {
        pages.push(e.unwrap().path());
    }
    pages
}

/// The targets of a Markdown page's links to other .md pages of the documentation
/// (`[text](docs/setup.md#x)` gives `docs/setup.md`). Links that leave the documentation
/// (`../nginx/site.conf`, the source's own files, web addresses) are not shipped as docs.
fn relative_doc_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in text.split("](").skip(1) {
        let target = part.split(')').next().unwrap_or("");
        let file = target.split('#').next().unwrap_or("");
        if file.ends_with(".md") && !file.contains("://") && !file.starts_with("../") && file != "ARCHITECTURE.md" {
            out.push(file.to_string());
        }
    }
    out
}

fn curl(args: &[&str]) -> String {
    let out = admin("curl", args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_debian_package_installs_sets_up_a_hook_and_publishes_through_nginx() {
    requires!(Root, WwwData, Nginx, Pnpm, Packaging);
    // cargo deb: the release build and the package.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .args(["deb", "--locked"])
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(built.status.success(), "cargo deb: {}", text(&built));
    let deb = PathBuf::from(
        String::from_utf8_lossy(&built.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .trim(),
    );
    let file_name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        file_name.starts_with("deploy-hook_") && file_name.ends_with(".deb") && deb.exists(),
        "{}",
        deb.display()
    );

    // lintian: no error.
    let lint = admin("lintian", &[deb.to_str().unwrap()]);
    let errors: Vec<String> = text(&lint)
        .lines()
        .filter(|l| l.starts_with("E:"))
        .map(String::from)
        .collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));

    // One package test at a time on this machine (several checkouts may run the suite at
    // once): the lock is held until the package is purged.
    let _machine = machine_lock();
    if installed() {
        crate::tier::say(&format!(
            "SKIPPED {}: deploy-hook is installed on this machine already, and this test installs and purges it; run it where deploy-hook is not installed",
            crate::tier::test_name()
        ));
        return;
    }

    // apt-get install ./deploy-hook_*.deb (waiting for dpkg's lock if another apt runs)
    let install = Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q"])
        .arg(&deb)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _installed = Installed;
    assert!(install.status.success(), "apt-get install: {}", text(&install));

    // The layout, and the state folder postinst made.
    for f in LAYOUT {
        assert!(Path::new(f).exists(), "{f} is not installed");
    }
    let www_data = uid_of("www-data");
    let state = fs::metadata("/var/lib/deploy-hook").unwrap();
    assert_eq!((state.uid(), state.mode() & 0o7777), (www_data, 0o750));
    let template = fs::read_to_string("/etc/deploy-hook/config.toml").unwrap();
    assert!(
        !template.lines().any(|l| l.starts_with("[hooks")),
        "the template has no hook"
    );
    let man = admin("zcat", &["/usr/share/man/man1/deploy-hook.1.gz"]);
    assert!(
        text(&man).contains(".SH COMMANDS") && text(&man).contains("rollback"),
        "{}",
        text(&man)
    );
    let man5 = admin("zcat", &["/usr/share/man/man5/deploy-hook.conf.5.gz"]);
    assert!(
        text(&man5).contains(".SH \"EVERY KEY\"") && text(&man5).contains("step_timeout_secs"),
        "{}",
        text(&man5)
    );
    // Every page of docs/ is installed, and every link of the installed README and docs to
    // a file of the documentation leads to an installed file.
    for page in fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let page = page.unwrap().file_name();
        let installed = Path::new("/usr/share/doc/deploy-hook/docs").join(&page);
        assert!(installed.exists(), "{} is not installed", installed.display());
    }
    for page in doc_pages("/usr/share/doc/deploy-hook") {
        let text = fs::read_to_string(&page).unwrap();
        for target in relative_doc_links(&text) {
            let to = page.parent().unwrap().join(&target);
            assert!(
                to.exists(),
                "{} links to {target}, which is not installed",
                page.display()
            );
        }
    }

    // A remote with a tiny site, owned by nobody and served over git://.
    let w = World::new("package");
    crate::pnpm::tiny_site(&w, "Hello from the package\n");
    let daemon = GitDaemon::start(&w.dir, &w.remote);
    let dir = w.path("srv/docs");
    let www = w.path("www/docs/site");

    // deploy-hook init, with the package's config and the default user (www-data).
    let out = admin_seeing(
        &w.web,
        "/usr/bin/deploy-hook",
        &[
            "init",
            "docs",
            "--provider",
            "gitee",
            "--repo-url",
            &daemon.url("remote.git"),
            "--dir",
            dir.to_str().unwrap(),
            "--publish-from",
            "docs/.vuepress/dist",
            "--publish-to",
            www.to_str().unwrap(),
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "init: {t}");
    let secret = fs::read_to_string("/etc/deploy-hook/docs.secret")
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(t.matches(&secret).count(), 1, "init prints the secret once: {t}");
    let config = fs::read_to_string("/etc/deploy-hook/config.toml").unwrap();
    assert!(config.starts_with(&template), "init appended to the template");

    // The system nginx with the shipped snippet and site example, and fcgiwrap as www-data.
    let nd = w.path("nginx");
    fs::create_dir_all(&nd).unwrap();
    let socket = nd.join("fcgiwrap.sock");
    let port = free_port();
    let snippet = nd.join("deploy-hook-fcgiwrap.conf");
    fs::write(
        &snippet,
        rewrite(
            "/etc/nginx/snippets/deploy-hook-fcgiwrap.conf",
            &[
                (
                    "include fastcgi_params;",
                    format!("include {}/fastcgi_params;", nd.display()),
                ),
                ("unix:/run/fcgiwrap.socket", format!("unix:{}", socket.display())),
            ],
        ),
    )
    .unwrap();
    crate::own_web::write_fastcgi_params(&nd);
    let site = nd.join("site.conf");
    let site_text = rewrite(
        "/usr/share/doc/deploy-hook/examples/nginx-site.conf",
        &[
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            ("listen [::]:80;", String::new()),
            ("snippets/deploy-hook-fcgiwrap.conf", snippet.display().to_string()),
            ("root /var/www/docs/site;", format!("root {};", www.display())),
        ],
    );
    fs::write(&site, &site_text).unwrap();
    // check sees this same site, in the world's own nginx config.
    w.web.nginx_site(&site_text);
    let conf = nd.join("nginx.conf");
    fs::write(
        &conf,
        format!(
            "user www-data;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\ndaemon off;\n\
             events {{ worker_connections 64; }}\nhttp {{\n  access_log {d}/access.log;\n\
             client_body_temp_path {d}/client_body;\n  fastcgi_temp_path {d}/fastcgi;\n  proxy_temp_path {d}/proxy;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {site};\n}}\n",
            d = nd.display(),
            site = site.display()
        ),
    )
    .unwrap();
    let ok = Command::new("chown")
        .args(["-R", "www-data:www-data"])
        .arg(&nd)
        .status()
        .unwrap();
    assert!(ok.success());
    let _fcgiwrap = spawn(
        Command::new("spawn-fcgi")
            .args(["-n", "-s"])
            .arg(&socket)
            .args([
                "-M", "0660", "-u", "www-data", "-g", "www-data", "-U", "www-data", "-G", "www-data", "--",
            ])
            .args(["/usr/sbin/fcgiwrap", "-f", "-c", "2"]),
        &nd.join("fcgiwrap.stderr"),
    );
    wait_for("fcgiwrap's socket", Duration::from_secs(20), || socket.exists());
    let _nginx = spawn(
        Command::new("/usr/sbin/nginx").arg("-p").arg(&nd).arg("-c").arg(&conf),
        &nd.join("nginx.stderr"),
    );
    wait_for("nginx to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    // A delivery signed with the installed `deploy-hook sign`, sent with curl.
    let body = w.path("body.json");
    fs::write(&body, br#"{"ref":"refs/heads/main"}"#).unwrap();
    fs::set_permissions(&body, fs::Permissions::from_mode(0o644)).unwrap();
    let url = format!("http://127.0.0.1:{port}/hooks/docs");
    let script = format!(
        "h=$(deploy-hook sign docs --body {b} --format curl) && eval \"curl -sS -w '\\n%{{http_code}}' {url} --data-binary @{b} $h\"",
        b = body.display()
    );
    let sent = admin("sh", &["-c", &script]);
    let answer = text(&sent);
    assert!(
        answer.trim_end().ends_with("202"),
        "{answer}\n{}",
        fs::read_to_string(nd.join("error.log")).unwrap_or_default()
    );

    // The page, published by the build and served by the same nginx.
    let page_url = format!("http://127.0.0.1:{port}/");
    wait_for("the published page", Duration::from_secs(300), || {
        curl(&["-sS", &page_url]).contains("Hello from the package")
    });
    assert!(fs::symlink_metadata(&www).unwrap().file_type().is_symlink());
    // The page can be served a moment before the worker has written the build's result.
    wait_for("the build recorded as succeeded", Duration::from_secs(60), || {
        let status = admin("/usr/bin/deploy-hook", &["status", "docs", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
        v["state"] == "idle" && v["last"]["result"] == "succeeded"
    });

    // Nothing the deliveries and builds left in the state folder is root's.
    let find = admin("find", &["/var/lib/deploy-hook", "-uid", "0"]);
    assert_eq!(
        String::from_utf8_lossy(&find.stdout).trim(),
        "",
        "root-owned files in the state folder"
    );

    // The config init wrote passes check, now with the hook built, and check finds the
    // package's site running the installed binary and fcgiwrap running as www-data.
    let check = admin_seeing(&w.web, "/usr/bin/deploy-hook", &["check"]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("runs /usr/bin/deploy-hook (this binary)")
            && text(&check).contains("runs as www-data, the owner of the state folder"),
        "{}",
        text(&check)
    );
    assert!(!text(&check).contains(&secret));

    drop(_nginx);
    drop(_fcgiwrap);
    drop(daemon);
    drop(_installed);
    assert!(!installed(), "apt-get purge removed the package");
    for gone in [
        "/usr/bin/deploy-hook",
        "/var/lib/deploy-hook",
        "/etc/deploy-hook/config.toml",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after apt-get purge");
    }
}
