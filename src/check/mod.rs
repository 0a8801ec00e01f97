//! `deploy-hook check`: validate the config and the machine it will run on, like `nginx -t`.
//!
//! Each line is a check that passed (`ok`), a problem that will break deliveries (`FAIL`,
//! with the fix), something worth knowing (`warn`), or a check that could not be made here
//! (`skip`). Exit 0 only when nothing failed; the last line counts the problems and what
//! was not checked. It checks as the build will run: started as
//! root it first becomes the owner of the state folder, as the web server's user would be,
//! and runs git with the build's environment. `--json` prints the same items for scripts.
//!
//! The pieces: `files` (owners and modes of what the build writes: checkout, state, the
//! publish target and what pruning left), `secret` (each hook's secret file), `log` (where
//! log lines really go), `remote` (reaching the remote as the build does, and never
//! printing its credentials), `node` (what a Node.js site needs), `web` and `nginx` (the
//! web server that starts us, and where it sends `/hooks/NAME`), `hosts` (the web hosts a
//! hook publishes to), `bucket` (the bucket a hook publishes to), `report` (the token and
//! robot files, the page's folder, and whether the forge lets the token write statuses).

mod bucket;
mod files;
mod gather;
mod hosts;
mod log;
mod nginx;
mod node;
mod previews;
mod remote;
mod report;
mod secret;
mod web;

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::build::state::HookState;
use crate::config::{Config, Destinations, GiteeMode, Hook, Provider};
use crate::delivery::cgi::Env;
use crate::error::{exit, Error, Result};
use crate::sys::privilege;
use crate::sys::process::{which, Exit, Process};
use crate::sys::text::printable;

/// How long a local git command (rev-parse, remote get-url) may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(20);

pub use remote::redact_url;
pub use web::{hook_urls, HookUrl};

/// What the command line asks of `check`, as plain values.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--config FILE`, else `$DEPLOY_HOOK_CONFIG`, else the default path.
    pub config: Option<PathBuf>,
    /// `--json`: a list of `{item, ok, detail, fix}` instead of the checklist.
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Skip,
    Fail,
}

/// One line of the checklist.
#[derive(Debug, Clone)]
struct Item {
    /// What was checked, e.g. `docs: repo`.
    item: String,
    level: Level,
    detail: String,
    fix: Option<String>,
}

#[derive(Default)]
struct Report {
    /// The hook whose section is being written, prefixed to item names.
    section: Option<String>,
    /// Checklist lines in order: section headers (`None`) and items.
    lines: Vec<(Option<String>, Option<Item>)>,
    failures: usize,
}

impl Report {
    fn push(&mut self, item: &str, level: Level, detail: String, fix: Option<String>) {
        let item = match &self.section {
            Some(s) => format!("{s}: {item}"),
            None => item.to_string(),
        };
        if level == Level::Fail {
            self.failures += 1;
        }
        self.lines.push((
            None,
            Some(Item {
                item,
                level,
                detail,
                fix,
            }),
        ));
    }
    fn ok(&mut self, item: &str, detail: impl Into<String>) {
        self.push(item, Level::Ok, detail.into(), None);
    }
    fn warn(&mut self, item: &str, detail: impl Into<String>) {
        self.push(item, Level::Warn, detail.into(), None);
    }
    fn skip(&mut self, item: &str, detail: impl Into<String>) {
        self.push(item, Level::Skip, detail.into(), None);
    }
    fn fail(&mut self, item: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(item, Level::Fail, detail.into(), Some(fix.into()));
    }
    fn heading(&mut self, text: String) {
        self.lines.push((Some(text), None));
    }

    /// The checklist for a terminal. Every detail and fix goes through `printable`, as in
    /// `status`: they quote what a build step or a bucket wrote (a remote URL, a release
    /// name in a manifest or on a web host), and an escape sequence in them must not reach
    /// the admin's terminal raw. `--json` escapes through JSON instead.
    fn text(&self, header: &str) -> String {
        let show = |s: &str| printable(s, usize::MAX);
        let mut t = format!("{}\n", show(header));
        for (head, item) in &self.lines {
            if let Some(h) = head {
                t.push_str(&format!("{}\n", show(h)));
            }
            if let Some(i) = item {
                let word = match i.level {
                    Level::Ok => "ok  ",
                    Level::Warn => "warn",
                    Level::Skip => "skip",
                    Level::Fail => "FAIL",
                };
                t.push_str(&format!("  {word}  {}\n", show(&i.detail)));
                if let Some(f) = &i.fix {
                    t.push_str(&format!("        fix: {}\n", show(f)));
                }
            }
        }
        // What could not be checked (`skip`) is not said to hold.
        let skipped = self
            .lines
            .iter()
            .filter(|(_, i)| i.as_ref().is_some_and(|i| i.level == Level::Skip))
            .count();
        let not_checked = format!(
            "{skipped} not checked (the skip line{} above)",
            if skipped == 1 { "" } else { "s" }
        );
        match (self.failures, skipped) {
            (0, 0) => t.push_str("check: everything holds\n"),
            (0, _) => t.push_str(&format!(
                "check: everything holds that could be checked; {not_checked}\n"
            )),
            (n, _) => {
                t.push_str(&format!("check: {n} problem{} found", if n == 1 { "" } else { "s" }));
                if skipped > 0 {
                    t.push_str(&format!("; {not_checked}"));
                }
                t.push('\n');
            }
        }
        t
    }

    /// The items as a list; the first, `checked as`, says as whom (the text's header).
    fn json(&self, who: &str) -> String {
        let first = serde_json::json!({
            "item": "checked as", "ok": true, "level": "ok", "detail": who, "fix": null,
        });
        let rest = self.lines.iter().filter_map(|(_, i)| i.as_ref()).map(|i| {
            serde_json::json!({
                "item": i.item,
                "ok": i.level != Level::Fail,
                "level": match i.level {
                    Level::Ok => "ok",
                    Level::Warn => "warn",
                    Level::Skip => "skip",
                    Level::Fail => "fail",
                },
                "detail": i.detail,
                "fix": i.fix,
            })
        });
        let items: Vec<serde_json::Value> = std::iter::once(first).chain(rest).collect();
        let mut s = serde_json::to_string_pretty(&items).unwrap_or_default();
        s.push('\n');
        s
    }
}

fn writable(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) on a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Who the checks are for, and how they are run.
struct Ctx<'a> {
    cfg: &'a Config,
    /// The user builds run as, named in every fix: this process's user, or, for a root that
    /// could not learn it from the state folder, the likely web server's user.
    user: String,
    /// Still root: the web server never runs us as root, so some checks mean less.
    as_root: bool,
}

/// The web server's user when nothing on disk names it: Debian's.
const DEFAULT_WEB_USER: &str = "www-data";

pub fn run(opts: &Options, env: &Env, out: &mut dyn Write) -> Result<i32> {
    let path = crate::config::locate(
        opts.config.clone(),
        env.get(std::ffi::OsStr::new(crate::config::CONFIG_ENV)).cloned(),
    );
    let admin_path = admin_path(env);
    let started = privilege::current_user_name();
    let mut r = Report::default();
    let cfg = Config::load(&path);
    // The web server's config may be readable by root only (certificates): read it before
    // becoming the build's user.
    let web = web::Observed::gather(&admin_path);
    let mut who = format!("as user {started}");
    let mut as_root = privilege::euid() == 0;
    // Refused: the state folders do not say whom to check as, and checking as root would
    // run git with a HOME and a checkout others may have prepared. Nothing more is checked.
    let mut refused = false;
    if let Ok(cfg) = &cfg {
        if as_root {
            // The decision `run` makes, for every hook at once: check sees what they see.
            let hooks: Vec<&str> = cfg.hooks.keys().map(String::as_str).collect();
            match privilege::become_owner(&cfg.state_dir, &cfg.hook_paths(&hooks)) {
                Ok(Some(u)) => {
                    who = format!(
                        "as user {}, the owner of {}{}; started as {started}",
                        u.name,
                        if cfg.state_dir.exists() {
                            ""
                        } else {
                            "the folder that will hold "
                        },
                        cfg.state_dir.display()
                    );
                    as_root = false;
                }
                Ok(None) => {}
                Err(Error::Refused { why, fix }) => {
                    r.fail(
                        "user",
                        format!("a command started as root would refuse to run: {why}"),
                        fix,
                    );
                    refused = true;
                }
                Err(e) => {
                    r.fail(
                        "user",
                        format!("{e}"),
                        format!("chown -R {DEFAULT_WEB_USER}: {}", cfg.state_dir.display()),
                    );
                    refused = true;
                }
            }
        }
    }
    let user = if as_root {
        cfg.as_ref()
            .ok()
            .and_then(guess_web_user)
            .unwrap_or_else(|| DEFAULT_WEB_USER.to_string())
    } else {
        privilege::current_user_name()
    };
    let header = format!("deploy-hook check {} ({who})", path.display());
    match &cfg {
        Err(e) => r.fail(
            "config",
            format!("config: {e}"),
            "correct the config file; deploy-hook --help shows where it is looked for",
        ),
        Ok(_) if refused => r.skip(
            "checks",
            format!("nothing else was checked as root; apply the fix, or run: runuser -u {user} -- deploy-hook check"),
        ),
        Ok(cfg) => {
            let ctx = Ctx {
                cfg,
                user: user.clone(),
                as_root,
            };
            if as_root {
                r.warn(
                    "user",
                    format!(
                        "checking as root: the web server runs deploy-hook as its own user, and the state dir (missing, or root's) does not tell which; run: runuser -u {user} -- deploy-hook check"
                    ),
                );
            }
            check_config(&ctx, &web, &mut r);
            web.check(&ctx, &mut r);
        }
    }
    let text = if opts.json { r.json(&who) } else { r.text(&header) };
    out.write_all(text.as_bytes()).ok();
    Ok(if r.failures == 0 { exit::OK } else { exit::FAILED })
}

/// Where `nginx` and `apache2ctl` are looked for: the PATH check was started with, then the
/// admin's sbin folders (a sudo or cron PATH may lack them).
pub fn admin_path(env: &Env) -> String {
    format!(
        "{}:/usr/local/sbin:/usr/sbin:/sbin",
        env.get(std::ffi::OsStr::new("PATH"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
    )
}

/// Still root: whether `user` could create a folder in `parent` (it owns it, or anyone may).
fn creatable_by(parent: &Path, user: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Some(u), Ok(m)) = (privilege::user_by_name(user), std::fs::metadata(parent)) else {
        return false;
    };
    (m.uid() == u.uid && m.mode() & 0o300 == 0o300) || m.mode() & 0o003 == 0o003
}

/// Root with no state folder yet: the user that owns a hook's repo is the likely builder.
fn guess_web_user(cfg: &Config) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    cfg.hooks
        .values()
        .filter_map(|h| std::fs::metadata(&h.repo).ok())
        .map(|m| m.uid())
        .find(|uid| *uid != 0)
        .and_then(privilege::user_by_uid)
        .map(|u| u.name)
}

fn check_config(ctx: &Ctx, web: &web::Observed, r: &mut Report) {
    let cfg = ctx.cfg;
    let user = &ctx.user;
    let names: Vec<&str> = cfg.hooks.keys().map(String::as_str).collect();
    r.ok(
        "config",
        format!(
            "config parses: {} hook{} ({})",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ),
    );

    // Read as root before becoming the build's user: the web server must read it too.
    if !ctx.as_root {
        if let Err(e) = std::fs::File::open(&cfg.file) {
            r.fail(
                "config readable",
                format!("the config {} cannot be read by {user}: {e}", cfg.file.display()),
                format!(
                    "chown root:{user} {f} && chmod 640 {f} (and let {user} into its folder)",
                    f = cfg.file.display()
                ),
            );
        }
    }

    let sd = &cfg.state_dir;
    if sd.is_dir() {
        if ctx.as_root {
            // Root is still root only when the state dir is root's own.
            r.fail(
                "state_dir",
                format!(
                    "state_dir {} is owned by root: deliveries, run as the web server's user, cannot write it",
                    sd.display()
                ),
                format!("chown -R {user}: {}", sd.display()),
            );
        } else if writable(sd) {
            r.ok("state_dir", format!("state_dir {} is writable", sd.display()));
        } else {
            r.fail(
                "state_dir",
                format!("state_dir {} is not writable by {user}", sd.display()),
                format!("chown -R {user}: {}", sd.display()),
            );
        }
    } else {
        let parent = sd.ancestors().skip(1).find(|a| a.exists());
        match parent {
            Some(p) if (ctx.as_root && creatable_by(p, user)) || (!ctx.as_root && writable(p)) => r.ok(
                "state_dir",
                format!("state_dir {} will be created on the first delivery", sd.display()),
            ),
            _ => r.fail(
                "state_dir",
                format!("state_dir {} does not exist", sd.display()),
                format!("install -d -o {user} -g {user} -m 750 {}", sd.display()),
            ),
        }
    }

    log::check(ctx, web, r);

    check_sharing(cfg, r);
    bucket::check_shared(cfg, r);
    secret::check_shared(cfg, r);

    for hook in cfg.hooks.values() {
        let mode = match (hook.provider, hook.gitee_mode) {
            (Provider::Gitee, GiteeMode::Sign) => " (signing key)",
            (Provider::Gitee, GiteeMode::Password) => " (password)",
            _ => "",
        };
        r.section = None;
        r.heading(format!(
            "[{}] {}{mode}, branch {}",
            hook.name,
            hook.provider.name(),
            hook.branch
        ));
        r.section = Some(hook.name.clone());
        check_hook(ctx, hook, r);
    }
    r.section = None;
}

/// Runs git in the repo as the build does (the hook's `child_env`): whether it succeeded,
/// its stdout and its stderr, trimmed.
fn git(hook: &Hook, home: &Path, args: &[&str]) -> Option<(bool, String, String)> {
    let mut p = Process::new("git");
    p.args(args)
        .env(&hook.child_env(home))
        .cwd(&hook.repo)
        .timeout(GIT_TIMEOUT);
    let done = p.output();
    if let Exit::NotStarted(_) = done.exit {
        return None;
    }
    Some((done.exit.success(), done.stdout_text(), done.stderr_text()))
}

/// Where a step's program is: the pipeline's own rule (`process::find_program`), so that
/// check and the build never disagree.
fn resolve_program(program: &str, hook: &Hook) -> Option<PathBuf> {
    crate::sys::process::find_program(program, &hook.path, &hook.repo)
}

fn check_programs(ctx: &Ctx, hook: &Hook, r: &mut Report) {
    // One line per program and role: two steps with pnpm are one problem, not two.
    let mut seen = BTreeSet::new();
    let roles = hook
        .steps
        .iter()
        .map(|s| ("step", &s.run))
        .chain(hook.on_success.iter().map(|s| ("on_success", s)))
        .chain(hook.on_failure.iter().map(|s| ("on_failure", s)));
    for (role, step) in roles {
        let program = step.program();
        if !seen.insert((role, program.to_string())) {
            continue;
        }
        let label = if role == "step" {
            String::new()
        } else {
            format!("{role}: ")
        };
        let item = format!("{role} {program}");
        match resolve_program(program, hook) {
            Some(p) => r.ok(&item, format!("{label}{program} found: {}", p.display())),
            None if program.starts_with('/') => r.fail(
                &item,
                format!("{label}{program} does not exist or is not executable"),
                format!("install it there, or correct the path in {role}"),
            ),
            None if program.contains('/') => r.fail(
                &item,
                format!(
                    "{label}{program} is not in the repo {} (a program with a / is relative to repo)",
                    hook.repo.display()
                ),
                format!("commit it (executable: chmod +x, git add --chmod=+x) or correct the path in {role}"),
            ),
            None => {
                let fix = if program == "pnpm" {
                    format!(
                        "npm install -g pnpm (then check it landed in one of {}), or add its folder to the hook's path",
                        hook.path
                    )
                } else {
                    format!(
                        "install {program}, or add its folder (dirname $(command -v {program})) to the hook's path ({})",
                        hook.path
                    )
                };
                r.fail(
                    &item,
                    format!("{label}{program} is not found on path {}", hook.path),
                    fix,
                );
            }
        }
    }
    node::check(ctx, hook, r);
}

fn check_hook(ctx: &Ctx, hook: &Hook, r: &mut Report) {
    let cfg = ctx.cfg;
    let user = &ctx.user;
    secret::check(hook, user, r);
    let repo = &hook.repo;
    let state = HookState::new(&cfg.state_dir, &hook.name);
    let home: PathBuf = hook.env.get("HOME").map(Into::into).unwrap_or_else(|| state.home_dir());

    if which("git", &hook.path).is_none() {
        r.fail(
            "git",
            format!("git is not found on path {}", hook.path),
            "apt-get install git, or add git's folder to the hook's path",
        );
    } else if !repo.is_dir() {
        r.fail(
            "repo",
            format!("repo {} does not exist", repo.display()),
            format!(
                "runuser -u {user} -- git clone --branch {} <your repo URL> {}",
                hook.branch,
                repo.display()
            ),
        );
    } else {
        match git(hook, &home, &["rev-parse", "--is-inside-work-tree"]) {
            Some((true, out, _)) if out == "true" => {
                r.ok("repo", format!("repo {} is a git checkout", repo.display()));
                if ctx.as_root {
                    // root writes anywhere: say nothing about what the build's user may do
                } else if writable(repo) && writable(&repo.join(".git")) {
                    r.ok("repo writable", format!("repo is writable by {user}"));
                } else {
                    r.fail(
                        "repo writable",
                        format!("repo {} is not writable by {user}", repo.display()),
                        format!("chown -R {user}: {}", repo.display()),
                    );
                }
                files::check_checkout(ctx, repo, r);
                match git(hook, &home, &["remote", "get-url", &hook.remote]) {
                    Some((true, url, _)) => {
                        r.ok("remote", format!("remote {} is {}", hook.remote, redact_url(&url)));
                        if redact_url(&url) != url {
                            say_exposed_credential(repo, r);
                        }
                        remote::check_reachable(ctx, hook, &home, r);
                    }
                    _ => r.fail(
                        "remote",
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
                "repo",
                format!(
                    "git refuses repo {}: dubious ownership (it is not owned by {})",
                    repo.display(),
                    privilege::current_user_name()
                ),
                format!(
                    "chown -R {user}: {} (best), or: git config --system --add safe.directory {}",
                    repo.display(),
                    repo.display()
                ),
            ),
            Some((_, _, err)) => r.fail(
                "repo",
                format!(
                    "repo {} is not a git checkout ({})",
                    repo.display(),
                    err.lines().next().unwrap_or("")
                ),
                format!(
                    "runuser -u {user} -- git clone --branch {} <your repo URL> {}",
                    hook.branch,
                    repo.display()
                ),
            ),
            None => r.fail(
                "repo",
                format!("git could not be run in {}", repo.display()),
                "check the folder's permissions",
            ),
        }
    }

    check_programs(ctx, hook, r);

    match hook.env.get("HOME") {
        Some(h) if !Path::new(h).is_dir() => r.fail(
            "home",
            format!("env HOME {h} does not exist"),
            format!("install -d -o {user} -g {user} {h}"),
        ),
        Some(h) => r.ok("home", format!("steps run with HOME {h}")),
        None => r.ok(
            "home",
            format!("steps run with HOME {} (pnpm keeps its store there)", home.display()),
        ),
    }

    files::check_state(ctx, &state, r);

    if let Some(p) = &hook.publish {
        // What the publishes recorded: the way back pruning keeps, and what it could not
        // remove last time.
        // Not through a planted symlink or FIFO (`files::check_state` names it).
        let status = if files::plain_file(&state.status_path()) {
            state.read_status().unwrap_or_default()
        } else {
            Default::default()
        };
        let pruning = files::Pruning {
            keep: p.keep,
            history: status.live_history,
            held: status.held.is_some(),
            failures: status.prune_failures,
        };
        match &p.to {
            Destinations::Local(to) | Destinations::Bucket { local: Some(to), .. } => {
                files::check_publish(ctx, &hook.name, to, &pruning, r)
            }
            Destinations::Hosts(h) => hosts::check(hook, &state, &home, h, &pruning, r),
            Destinations::Bucket { local: None, .. } => {}
        }
        if let Some(b) = p.bucket() {
            bucket::check(hook, &state, &home, b, r);
        }
    }

    report::check(ctx, hook, r);
    if let Some(p) = &hook.previews {
        previews::check(ctx, hook, p, &home, r);
    }
}

/// A remote URL with a token in it, in a .git/config every user of the machine can read
/// (git writes it 0644, in folders that are 0755 by default).
fn say_exposed_credential(repo: &Path, r: &mut Report) {
    let file = repo.join(".git/config");
    let readable = |p: &Path, bits: u32| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & bits == bits);
    if readable(&file, 0o004) && readable(repo, 0o001) && readable(&repo.join(".git"), 0o001) {
        r.warn(
            "remote credential",
            format!(
                "the remote URL holds a credential, and {} is readable by every user of this machine: keep it in a file of the build user's alone (docs/setup.md, Private repositories)",
                file.display()
            ),
        );
    }
}

/// Hooks that share a working tree or a publish target take turns: one lock covers them
/// (queue.rs). Worth knowing, and a mistake when they build different branches.
fn check_sharing(cfg: &Config, r: &mut Report) {
    for (what, folder, hooks) in crate::build::queue::shared(cfg) {
        let branches: std::collections::BTreeSet<&str> = hooks
            .iter()
            .filter_map(|h| cfg.hooks.get(h))
            .map(|h| h.branch.as_str())
            .collect();
        let also = if branches.len() > 1 {
            "; they build different branches, so each build replaces the other's"
        } else {
            ""
        };
        r.warn(
            "shared",
            format!(
                "hooks {} share the {what} {}: their builds take turns (one lock){also}",
                hooks.join(", "),
                folder.display()
            ),
        );
        if what == "working tree" {
            check_pnpm_stores(cfg, &hooks, &folder, r);
        }
    }
}

/// Hooks that run pnpm in one checkout need one pnpm store. pnpm ties `node_modules` to the
/// store that filled it, and each hook's steps have a HOME (and so a store) of their own
/// by default: pnpm then asks before it reinstalls from another store and, with no
/// terminal to answer, installs nothing and exits 0, so a hook publishes the other's
/// dependencies.
fn check_pnpm_stores(cfg: &Config, hooks: &[String], repo: &Path, r: &mut Report) {
    let runs_pnpm = |h: &crate::config::Hook| {
        h.steps.iter().any(|s| match &s.run {
            crate::config::Cmd::Argv(v) => v.first().is_some_and(|p| p.rsplit('/').next() == Some("pnpm")),
            crate::config::Cmd::Shell(text) => text.contains("pnpm"),
        })
    };
    // The repo's own .npmrc may name the store for every hook.
    let npmrc = std::fs::read_to_string(repo.join(".npmrc")).unwrap_or_default();
    if npmrc.lines().any(|l| l.trim_start().starts_with("store-dir")) {
        return;
    }
    let stores: BTreeSet<String> = hooks
        .iter()
        .filter_map(|h| cfg.hooks.get(h))
        .filter(|h| runs_pnpm(h))
        .map(|h| {
            let env = h.child_env(&HookState::new(&cfg.state_dir, &h.name).home_dir());
            match env.get("npm_config_store_dir").or(env.get("NPM_CONFIG_STORE_DIR")) {
                Some(store) => format!("store {store}"),
                None => format!("HOME {}", env.get("HOME").map(String::as_str).unwrap_or("")),
            }
        })
        .collect();
    if stores.len() > 1 {
        r.warn(
            "shared",
            format!(
                "hooks {} run pnpm in {} with a pnpm store each: pnpm does not reinstall from another store without a terminal to ask, so a hook may publish the other's dependencies; give them one store: the same env = {{ npm_config_store_dir = \"...\" }} in each (docs/builds.md, Overlapping deliveries)",
                hooks.join(", "),
                repo.display()
            ),
        );
    }
}
