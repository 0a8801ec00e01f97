//! `deploy-hook check`: validate the config and the machine it will run on, like `nginx -t`.
//!
//! Each line is a check that passed (`ok`), a problem that will break deliveries (`FAIL`,
//! with the fix), or something worth knowing (`warn`). Exit 0 only when nothing failed.
//! It catches what breaks in practice: the repo missing or not a checkout, git's "dubious
//! ownership" refusal when the web server's user does not own the repo, programs missing
//! from the steps' PATH, secrets missing, empty or readable by everyone.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cgi::Env;
use crate::cli::Args;
use crate::config::{Config, GiteeMode, Hook, Provider, Secret};
use crate::error::{Error, Result};
use crate::process::which;
use crate::publish;
use crate::state::HookState;

#[derive(Default)]
struct Report {
    text: String,
    failures: usize,
}

impl Report {
    fn ok(&mut self, msg: impl AsRef<str>) {
        self.text.push_str(&format!("  ok    {}\n", msg.as_ref()));
    }
    fn warn(&mut self, msg: impl AsRef<str>) {
        self.text.push_str(&format!("  warn  {}\n", msg.as_ref()));
    }
    fn fail(&mut self, msg: impl AsRef<str>, fix: impl AsRef<str>) {
        self.failures += 1;
        self.text
            .push_str(&format!("  FAIL  {}\n        fix: {}\n", msg.as_ref(), fix.as_ref()));
    }
}

fn writable(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) on a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn current_user() -> (u32, String) {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"));
    (uid, name)
}

pub fn run(args: &Args, env: &Env, out: &mut dyn Write) -> Result<i32> {
    let (_, user) = current_user();
    let path = crate::config::locate(
        args.config.clone(),
        env.get(std::ffi::OsStr::new(crate::config::CONFIG_ENV)).cloned(),
    );
    let mut r = Report::default();
    r.text
        .push_str(&format!("deploy-hook check {} (as user {user})\n", path.display()));
    match Config::load(&path) {
        Err(e) => r.fail(
            format!("config: {e}"),
            "correct the config file; deploy-hook --help shows where it is looked for",
        ),
        Ok(cfg) => check_config(&cfg, &user, &mut r),
    }
    if r.failures == 0 {
        r.text.push_str("check: everything holds\n");
    } else {
        r.text.push_str(&format!(
            "check: {} problem{} found{}\n",
            r.failures,
            if r.failures == 1 { "" } else { "s" },
            if user == "root" {
                " (run it as the web server's user too: sudo -u www-data deploy-hook check)"
            } else {
                ""
            }
        ));
    }
    out.write_all(r.text.as_bytes()).ok();
    Ok(if r.failures == 0 { 0 } else { 1 })
}

fn check_config(cfg: &Config, user: &str, r: &mut Report) {
    let names: Vec<&str> = cfg.hooks.keys().map(String::as_str).collect();
    r.ok(format!(
        "config parses: {} hook{} ({})",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ));

    let sd = &cfg.state_dir;
    if sd.is_dir() {
        if writable(sd) {
            r.ok(format!("state_dir {} is writable", sd.display()));
        } else {
            r.fail(
                format!("state_dir {} is not writable by {user}", sd.display()),
                format!("chown -R {user} {}", sd.display()),
            );
        }
    } else {
        let parent = sd.ancestors().skip(1).find(|a| a.exists());
        match parent {
            Some(p) if writable(p) => r.ok(format!(
                "state_dir {} will be created on the first delivery",
                sd.display()
            )),
            _ => r.fail(
                format!(
                    "state_dir {} does not exist and cannot be created by {user}",
                    sd.display()
                ),
                format!("install -d -o {user} {}", sd.display()),
            ),
        }
    }

    match &cfg.log.syslog {
        None => r.ok("log: stderr (syslog = \"\")"),
        Some(sock) => {
            if std::os::unix::net::UnixDatagram::unbound()
                .and_then(|s| s.connect(sock))
                .is_ok()
            {
                r.ok(format!("syslog socket {} is reachable", sock.display()));
            } else {
                r.warn(format!(
                    "syslog socket {} cannot be reached; log lines go to stderr (the web server's error log)",
                    sock.display()
                ));
            }
        }
    }

    for hook in cfg.hooks.values() {
        let mode = match (hook.provider, hook.gitee_mode) {
            (Provider::Gitee, GiteeMode::Sign) => " (signing key)",
            (Provider::Gitee, GiteeMode::Password) => " (password)",
            _ => "",
        };
        r.text.push_str(&format!(
            "[{}] {}{mode}, branch {}\n",
            hook.name,
            hook.provider.name(),
            hook.branch
        ));
        check_hook(cfg, hook, user, r);
    }
}

fn check_secret(hook: &Hook, r: &mut Report) {
    match &hook.secret {
        Secret::Inline(_) => {
            r.warn("the secret is inline in the config; a secret_file readable only by the web server's user is safer")
        }
        // One read, through Secret::load: it reports an empty file as InvalidData.
        Secret::File(f) => match (std::fs::metadata(f), hook.secret.load()) {
            (Err(e), _) => r.fail(
                format!("secret_file {}: {e}", f.display()),
                format!(
                    "write the secret (the one set in the forge) to {} and chmod 600 it",
                    f.display()
                ),
            ),
            (Ok(_), Err(Error::Io { source, .. })) if source.kind() == std::io::ErrorKind::InvalidData => r.fail(
                format!("secret_file {} is empty", f.display()),
                "write the secret set in the forge into it",
            ),
            (Ok(_), Err(e)) => r.fail(
                format!("{e}"),
                format!("chown it to the web server's user and chmod 600 {}", f.display()),
            ),
            (Ok(m), Ok(_)) if m.permissions().mode() & 0o004 != 0 => r.fail(
                format!(
                    "secret_file {} is readable by everyone (mode {:o})",
                    f.display(),
                    m.permissions().mode() & 0o777
                ),
                format!("chmod 600 {} (or 640 with the web server's group)", f.display()),
            ),
            (Ok(m), Ok(_)) => r.ok(format!(
                "secret_file {} is set (mode {:o})",
                f.display(),
                m.permissions().mode() & 0o777
            )),
        },
    }
}

fn git(hook: &Hook, home: &Path, args: &[&str]) -> Option<(bool, String, String)> {
    let git = which("git", &hook.path)?;
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), hook.path.clone());
    env.insert("HOME".into(), home.to_string_lossy().into_owned());
    env.insert("LANG".into(), "C.UTF-8".into());
    env.insert("GIT_TERMINAL_PROMPT".into(), "0".into());
    env.extend(hook.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let out = Command::new(git)
        .args(args)
        .env_clear()
        .envs(&env)
        .current_dir(&hook.repo)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

fn check_hook(cfg: &Config, hook: &Hook, user: &str, r: &mut Report) {
    check_secret(hook, r);
    let repo = &hook.repo;
    let home = hook
        .env
        .get("HOME")
        .map(Into::into)
        .unwrap_or_else(|| HookState::new(&cfg.state_dir, &hook.name).home_dir());

    if which("git", &hook.path).is_none() {
        r.fail(
            format!("git is not found on path {}", hook.path),
            "apt-get install git, or add git's folder to the hook's path",
        );
    } else if !repo.is_dir() {
        r.fail(
            format!("repo {} does not exist", repo.display()),
            format!(
                "git clone --branch {} <your repo URL> {} (as {user})",
                hook.branch,
                repo.display()
            ),
        );
    } else {
        match git(hook, &home, &["rev-parse", "--is-inside-work-tree"]) {
            Some((true, out, _)) if out == "true" => {
                r.ok(format!("repo {} is a git checkout", repo.display()));
                if writable(repo) && writable(&repo.join(".git")) {
                    r.ok(format!("repo is writable by {user}"));
                } else {
                    r.fail(
                        format!("repo {} is not writable by {user}", repo.display()),
                        format!("chown -R {user} {}", repo.display()),
                    );
                }
                match git(hook, &home, &["remote", "get-url", &hook.remote]) {
                    Some((true, url, _)) => r.ok(format!("remote {} is {url}", hook.remote)),
                    _ => r.fail(
                        format!("the checkout has no remote named {}", hook.remote),
                        format!(
                            "git -C {} remote add {} <your repo URL>, or set remote = \"...\"",
                            repo.display(),
                            hook.remote
                        ),
                    ),
                }
            }
            Some((_, _, err)) if err.contains("dubious ownership") => r.fail(
                format!(
                    "git refuses repo {}: dubious ownership (it is not owned by {user})",
                    repo.display()
                ),
                format!(
                    "chown -R {user} {} (best), or: git config --system --add safe.directory {}",
                    repo.display(),
                    repo.display()
                ),
            ),
            Some((_, _, err)) => r.fail(
                format!(
                    "repo {} is not a git checkout ({})",
                    repo.display(),
                    err.lines().next().unwrap_or("")
                ),
                format!("git clone --branch {} <your repo URL> {}", hook.branch, repo.display()),
            ),
            None => r.fail(
                format!("git could not be run in {}", repo.display()),
                "check the folder's permissions",
            ),
        }
    }

    for step in hook
        .steps
        .iter()
        .chain(hook.on_success.iter())
        .chain(hook.on_failure.iter())
    {
        let program = step.program();
        match which(program, &hook.path) {
            Some(p) => r.ok(format!("{program} found: {}", p.display())),
            None => {
                let fix = if program == "pnpm" {
                    format!(
                        "npm install -g pnpm (then check it landed in one of {}), or add its folder to the hook's path",
                        hook.path
                    )
                } else {
                    format!(
                        "install {program}, or add its folder to the hook's path ({})",
                        hook.path
                    )
                };
                r.fail(format!("{program} is not found on path {}", hook.path), fix);
            }
        }
    }

    match hook.env.get("HOME") {
        Some(h) if !Path::new(h).is_dir() => r.fail(
            format!("env HOME {h} does not exist"),
            format!("install -d -o {user} {h}"),
        ),
        Some(h) => r.ok(format!("steps run with HOME {h}")),
        None => r.ok(format!(
            "steps run with HOME {} (pnpm keeps its store there)",
            home.display()
        )),
    }

    if let Some(p) = &hook.publish {
        let parent = p.to.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() || !writable(parent) {
            r.fail(
                format!("publish: {} is not a writable folder", parent.display()),
                format!("install -d -o {user} {}", parent.display()),
            );
        } else {
            match std::fs::symlink_metadata(&p.to) {
                Ok(m) if m.file_type().is_symlink() => r.ok(format!("publish: {} is a symlink to release {}", p.to.display(), publish::live(&p.to).unwrap_or_default())),
                Ok(m) if m.is_dir() => r.warn(format!(
                    "publish: {} is a directory; the first publish keeps it as the oldest release and puts a symlink in its place",
                    p.to.display()
                )),
                Ok(_) => r.fail(format!("publish: {} is a file", p.to.display()), "remove it, or point publish.to elsewhere"),
                Err(_) => r.ok(format!("publish: {} will be created by the first build", p.to.display())),
            }
        }
    }
}
