//! `deploy-hook init`: one command from nothing to a hook that `check` passes, with every
//! file owned by the web server's user, against a remote served by `git daemon` on
//! loopback and owned by another user (nobody), as a real forge's would be.
//!
//! init gives files to www-data, so these tests are in the system tier (root).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::util::*;

pub fn uid_of(name: &str) -> u32 {
    let out = Command::new("id").args(["-u", name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `git daemon` serving `base` on a loopback port as nobody; killed (its whole process
/// group) and waited for when dropped.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    /// Serves the bare repositories under `base`, after giving them to nobody.
    pub fn start(base: &Path, repo: &Path) -> GitDaemon {
        let ok = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(repo)
            .status()
            .unwrap();
        assert!(ok.success());
        let port = free_port();
        let child = Command::new("git")
            .arg("daemon")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .args(["--export-all", "--user=nobody", "--group=nogroup"])
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("git daemon (apt-get install git)");
        let d = GitDaemon { child, port };
        wait_for("git daemon to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        d
    }

    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signals to the process group this guard started.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let _ = self.child.wait();
        // SAFETY: as above; anything of the group still there (a forked server) goes too.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const ADMIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `program` with a clean environment, as an admin's shell would (PATH only).
pub fn admin(program: &str, args: &[&str]) -> Output {
    admin_with_path(ADMIN_PATH, program, args)
}

/// `admin`, for a command that runs check (init does): the world's own web servers first
/// on the PATH, so check reads them and not the machine's.
pub fn admin_seeing(web: &OwnWeb, program: &str, args: &[&str]) -> Output {
    admin_with_path(&web.path(ADMIN_PATH), program, args)
}

fn admin_with_path(path: &str, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

struct Setup {
    w: World,
    _daemon: GitDaemon,
    url: String,
    config: PathBuf,
    dir: PathBuf,
    www: PathBuf,
}

fn setup(name: &str) -> Setup {
    let w = World::new(name);
    crate::pnpm::tiny_site(&w, "Hello from init\n");
    let daemon = GitDaemon::start(&w.dir, &w.remote);
    let url = daemon.url("remote.git");
    let etc = w.path("etc");
    fs::create_dir_all(&etc).unwrap();
    let config = etc.join("config.toml");
    fs::write(
        &config,
        format!(
            "# the admin's own comment, kept\nstate_dir = {:?}\n\n[log]\nsyslog = \"\"  # stderr\n",
            w.state.to_str().unwrap()
        ),
    )
    .unwrap();
    Setup {
        dir: w.path("srv/docs"),
        www: w.path("www/docs/site"),
        w,
        _daemon: daemon,
        url,
        config,
    }
}

fn init(s: &Setup, extra: &[&str]) -> Output {
    let mut args = vec![
        "init",
        "docs",
        "--provider",
        "gitee",
        "--repo-url",
        &s.url,
        "--dir",
        s.dir.to_str().unwrap(),
        "--publish-from",
        "docs/.vuepress/dist",
        "--publish-to",
        s.www.to_str().unwrap(),
        "--config",
        s.config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    admin_seeing(&s.w.web, BIN, &args)
}

#[test]
fn init_sets_up_a_hook_that_check_passes_and_a_second_run_changes_nothing() {
    requires!(Root, WwwData, Pnpm);
    let s = setup("init");
    let www_data = uid_of("www-data");
    // The web server the admin has set up (the shipped site, running this binary with this
    // config) is where init's check looks: on the PATH init was started with.
    let socket = s.w.path("fcgiwrap.socket");
    let shipped = |file: &str| fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    s.w.web.nginx_site_with_snippet(
        &shipped("nginx/deploy-hook.conf")
            .replace("listen 80;", "listen 127.0.0.1:1;")
            .replace("listen [::]:80;", "")
            .replace("/etc/deploy-hook/config.toml", s.config.to_str().unwrap()),
        &shipped("fcgiwrap.conf")
            .replace("/usr/bin/deploy-hook", BIN)
            .replace("/run/fcgiwrap.socket", socket.to_str().unwrap()),
    );
    let _fcgiwrap_socket = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    crate::check::chown("www-data:www-data", false, &socket);

    let out = init(&s, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("events:       Push (推送)")
            && t.contains("previews:     with [hooks.NAME.previews], tick Pull Request (合并请求) too"),
        "the events previews need are named too: {t}"
    );
    assert!(
        t.contains(&format!(
            "runs {BIN} (this binary); /hooks/NAME reaches it with PATH_INFO"
        )),
        "init's check reads the web server on init's PATH: {t}"
    );

    // The secret: random, the user's alone, and printed exactly once.
    let secret_file = s.config.parent().unwrap().join("docs.secret");
    let secret = fs::read_to_string(&secret_file).unwrap().trim().to_string();
    assert_eq!(secret.len(), 40, "{secret:?}");
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(t.matches(&secret).count(), 1, "the secret, exactly once: {t}");
    let m = fs::metadata(&secret_file).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (www_data, 0o400));

    // The state folder, the clone and the publish folder are www-data's.
    for p in [
        s.w.state.join("docs"),
        s.w.state.join("docs/home"),
        s.dir.clone(),
        s.www.parent().unwrap().to_path_buf(),
    ] {
        assert_eq!(
            fs::metadata(&p).unwrap().uid(),
            www_data,
            "{} is www-data's",
            p.display()
        );
    }
    assert_eq!(
        git(&s.dir, &["-c", "safe.directory=*", "rev-parse", "HEAD"]),
        s.w.head()
    );
    assert_eq!(fs::metadata(s.dir.join("package.json")).unwrap().uid(), www_data);

    // The config keeps the admin's text and gains the hook, Gitee in signing-key mode.
    let config = fs::read_to_string(&s.config).unwrap();
    assert!(config.starts_with("# the admin's own comment, kept\n"), "{config}");
    assert!(config.contains("syslog = \"\"  # stderr"), "{config}");
    assert!(
        config.contains("[hooks.docs]") && config.contains("gitee_mode = \"sign\""),
        "{config}"
    );
    assert!(
        config.contains("[hooks.docs.publish]") && config.contains("branch = \"main\""),
        "{config}"
    );
    assert!(
        !config.contains(&secret),
        "the config names the secret file, not the secret"
    );

    // It ran check, which passed; what it prints for the forge.
    assert!(t.contains("everything holds"), "{t}");
    assert!(
        t.contains("/hooks/docs") && t.contains("签名密钥") && t.contains("application/json"),
        "{t}"
    );

    // The config it wrote passes check on its own, run as root (check becomes www-data).
    let check = admin_seeing(&s.w.web, BIN, &["check", "--config", s.config.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(!text(&check).contains(&secret));

    // A second run changes nothing and says so; the secret is not printed again.
    let before = (
        fs::read(&s.config).unwrap(),
        fs::read(&secret_file).unwrap(),
        fs::metadata(&s.config).unwrap().mtime_nsec(),
        fs::metadata(&secret_file).unwrap().mtime_nsec(),
    );
    let again = init(&s, &[]);
    let t2 = text(&again);
    assert!(again.status.success(), "{t2}");
    assert!(t2.contains("nothing was changed"), "{t2}");
    assert!(!t2.contains(&secret), "{t2}");
    let after = (
        fs::read(&s.config).unwrap(),
        fs::read(&secret_file).unwrap(),
        fs::metadata(&s.config).unwrap().mtime_nsec(),
        fs::metadata(&secret_file).unwrap().mtime_nsec(),
    );
    assert!(before == after, "a second init touched the config or the secret");
}

#[test]
fn init_refuses_what_it_cannot_set_up_and_writes_nothing() {
    requires!(Root, WwwData);
    let s = setup("init-refuses");
    let config = fs::read(&s.config).unwrap();

    let bad = admin_seeing(
        &s.w.web,
        BIN,
        &[
            "init",
            "no/slash",
            "--provider",
            "github",
            "--repo-url",
            &s.url,
            "--config",
            s.config.to_str().unwrap(),
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("not a valid hook name"), "{}", text(&bad));

    let nobody = init(&s, &["--user", "no-such-user-here"]);
    assert_eq!(nobody.status.code(), Some(2), "{}", text(&nobody));
    assert!(text(&nobody).contains("no user named"), "{}", text(&nobody));

    let half = init(&s, &["--publish-from", "dist"]);
    assert_eq!(
        half.status.code(),
        Some(2),
        "--publish-from and --publish-to go together"
    );

    // A folder in the way that is not a checkout: refused, nothing added to the config.
    fs::create_dir_all(&s.dir).unwrap();
    fs::write(s.dir.join("precious.txt"), "mine\n").unwrap();
    let blocked = init(&s, &[]);
    assert_eq!(blocked.status.code(), Some(2), "{}", text(&blocked));
    assert!(text(&blocked).contains("is not a git checkout"), "{}", text(&blocked));
    assert_eq!(fs::read_to_string(s.dir.join("precious.txt")).unwrap(), "mine\n");

    // A remote that does not exist: the clone fails, the config is untouched, and the
    // message says why without a prompt.
    fs::remove_dir_all(&s.dir).unwrap();
    let wrong_url = s.url.replace("remote.git", "nothing-here.git");
    let out = admin_seeing(
        &s.w.web,
        BIN,
        &[
            "init",
            "docs",
            "--provider",
            "github",
            "--repo-url",
            &wrong_url,
            "--dir",
            s.dir.to_str().unwrap(),
            "--config",
            s.config.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(74), "{}", text(&out));
    assert!(text(&out).contains("git clone as www-data failed"), "{}", text(&out));
    assert!(
        fs::read(&s.config).unwrap() == config,
        "a failed init adds nothing to the config"
    );
}

#[test]
fn init_refuses_a_state_folder_planted_as_a_symlink_and_gives_root_nothing() {
    requires!(Root, WwwData);
    let s = setup("init-symlink");
    // The packaged state dir, www-data's; a build step of another hook (www-data) plants
    // the new hook's state folder as a symlink to a root-owned folder anyone may write.
    let state = &s.w.state;
    let ok = admin(
        "install",
        &[
            "-d",
            "-o",
            "www-data",
            "-g",
            "www-data",
            "-m",
            "750",
            state.to_str().unwrap(),
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    let evil = s.w.path("evil");
    fs::create_dir(&evil).unwrap();
    fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let planted = state.join("docs");
    let ln = admin(
        "runuser",
        &[
            "-u",
            "www-data",
            "--",
            "ln",
            "-s",
            evil.to_str().unwrap(),
            planted.to_str().unwrap(),
        ],
    );
    assert!(ln.status.success(), "{}", text(&ln));
    let config = fs::read(&s.config).unwrap();

    let out = init(&s, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(77), "{t}");
    assert!(t.contains(&format!("{} is a symbolic link", planted.display())), "{t}");
    assert!(t.contains(&format!("rm {}", planted.display())), "{t}");
    assert!(
        fs::read(&s.config).unwrap() == config,
        "no hook was added to the config"
    );
    assert_eq!(
        fs::read_dir(&evil).unwrap().count(),
        0,
        "init made nothing in the folder the symlink points to"
    );

    // The printed fix: remove it; init then makes the folder, www-data's. (Its check may
    // still fail on a machine whose own web server runs an installed deploy-hook.)
    fs::remove_file(&planted).unwrap();
    let out = init(&s, &[]);
    let t = text(&out);
    assert!(t.contains("docs: set up"), "{t}");
    assert!(fs::read_to_string(&s.config).unwrap().contains("[hooks.docs]"), "{t}");
    let m = fs::symlink_metadata(&planted).unwrap();
    assert!(m.is_dir() && m.uid() == uid_of("www-data"), "{m:?}");
}

#[test]
fn init_from_a_repository_www_data_does_not_own_says_how_to_trust_it_and_what_it_left() {
    requires!(Root, WwwData);
    let s = setup("init-dubious");
    let config = fs::read(&s.config).unwrap();
    // The forge is a bare repository of root's on this machine, cloned by path.
    let url = format!("file://{}", s.w.remote.display());
    let out = admin_seeing(
        &s.w.web,
        BIN,
        &[
            "init",
            "docs",
            "--provider",
            "gitee",
            "--repo-url",
            &url,
            "--dir",
            s.dir.to_str().unwrap(),
            "--publish-from",
            "dist",
            "--publish-to",
            s.www.to_str().unwrap(),
            "--config",
            s.config.to_str().unwrap(),
        ],
    );
    let t = text(&out);
    // Not a usage error (2): the command line is right, the server's git refused.
    assert_eq!(out.status.code(), Some(74), "{t}");
    assert!(t.contains("detected dubious ownership"), "the premise: {t}");
    // git's message as git prints it: a tab, not an escaped one.
    assert!(!t.contains("\\t"), "{t}");
    assert!(
        t.contains(&format!(
            "git config --global --add safe.directory {}",
            s.w.remote.display()
        )),
        "{t}"
    );
    // The advice that works for www-data's clone, and its trade-off.
    assert!(
        t.contains(&format!("chown -R www-data: {}", s.w.remote.display())),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "git config --system --add safe.directory {}",
            s.w.remote.display()
        )),
        "{t}"
    );
    assert!(t.contains("--global above is root's own git"), "{t}");
    assert_eq!(fs::read(&s.config).unwrap(), config, "nothing added to the config");
    // What this run made is named, and a second run reuses it.
    let secret_file = s.config.parent().unwrap().join("docs.secret");
    assert!(
        t.contains(&format!(
            "  - made the secret file {} (owner www-data",
            secret_file.display()
        )),
        "{t}"
    );
    for made in [
        &secret_file,
        &s.w.state.join("docs"),
        &s.www.parent().unwrap().to_path_buf(),
        &s.dir,
    ] {
        assert!(made.exists(), "{}", made.display());
        assert!(
            t.contains(&format!("made {}", made.display())) || made == &secret_file,
            "{}: {t}",
            made.display()
        );
    }
    assert!(
        t.contains("what this run made is kept (init run again reuses them"),
        "{t}"
    );

    // Trusted as the message says (system-wide, here through the build HOME's config, the
    // narrowest of the choices): the second run sets it up with what the first one left.
    let secret = fs::read(s.config.parent().unwrap().join("docs.secret")).unwrap();
    let home_config = s.w.state.join("docs/home/.gitconfig");
    fs::write(
        &home_config,
        format!("[safe]\n\tdirectory = {}\n", s.w.remote.display()),
    )
    .unwrap();
    crate::check::chown("www-data:www-data", false, &home_config);
    let out = admin_seeing(
        &s.w.web,
        BIN,
        &[
            "init",
            "docs",
            "--provider",
            "gitee",
            "--repo-url",
            &url,
            "--dir",
            s.dir.to_str().unwrap(),
            "--publish-from",
            "dist",
            "--publish-to",
            s.www.to_str().unwrap(),
            "--config",
            s.config.to_str().unwrap(),
        ],
    );
    let t = text(&out);
    assert!(t.contains("docs: set up"), "{t}");
    assert!(t.contains("kept the existing secret file"), "{t}");
    assert_eq!(
        fs::read(s.config.parent().unwrap().join("docs.secret")).unwrap(),
        secret
    );
}
