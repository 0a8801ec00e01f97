//! The config file, read into a checked `Config` before anything else runs.
//!
//! Raw TOML is deserialized (`raw`) with unknown keys denied, then every value is validated
//! (`hook` for a `[hooks.NAME]` table, `publish` for its publish table) and every relative
//! path is resolved against the config file's folder (under fcgiwrap and Apache the working
//! directory is the script's folder, which means nothing to the config).
//! Secrets are not read here: `Secret::load` reads them when a delivery needs them, so that
//! `status` works for a user who may not read the secret file.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::error::{Error, Result};
pub use crate::sys::log::LogConfig;
use crate::sys::text::printable;
pub use hook::MIN_LOG_MAX_BYTES;

mod apart;
mod hook;
mod names;
mod previews;
mod publish;
mod raw;
mod report;
mod root;

pub use names::valid_hook_name;
use names::{inside_relative, valid_env_name, valid_git_name};

pub use report::{check_url, Forge, Notify, NotifyKind, On, Page, Report};

pub const DEFAULT_CONFIG: &str = "/etc/deploy-hook/config.toml";
pub const CONFIG_ENV: &str = "DEPLOY_HOOK_CONFIG";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Gitee,
    Github,
    Gitlab,
    Gitea,
    Gogs,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Gitee => "gitee",
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Gitea => "gitea",
            Provider::Gogs => "gogs",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiteeMode {
    Sign,
    Password,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Async,
    Sync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBusy {
    Queue,
    Reject,
    Supersede,
}

/// A command to run: an argv array, or a string for `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Argv(Vec<String>),
    Shell(String),
}

impl Cmd {
    pub fn argv(&self) -> Vec<String> {
        match self {
            Cmd::Argv(v) => v.clone(),
            Cmd::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        }
    }

    /// The program that must be found on the hook's `path`.
    pub fn program(&self) -> &str {
        match self {
            Cmd::Argv(v) => &v[0],
            Cmd::Shell(_) => "/bin/sh",
        }
    }
}

/// A command as a person wrote it: an argv shell-quoted, a shell string as it is.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cmd::Argv(v) => {
                let words: Vec<String> = v.iter().map(|w| crate::sys::text::shell_quote(w)).collect();
                write!(f, "{}", words.join(" "))
            }
            Cmd::Shell(s) => write!(f, "{s}"),
        }
    }
}

/// One step of a build. With `if_changed`, it runs only when one of those paths (git
/// pathspecs, relative to `repo`) changed since its last successful run in the checkout,
/// by whichever hook, when there is none, or when the config changed since then
/// (`build::pipeline` decides, from `build::tree`'s record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub run: Cmd,
    pub if_changed: Vec<String>,
}

impl Step {
    pub fn always(run: Cmd) -> Step {
        Step {
            run,
            if_changed: Vec::new(),
        }
    }
}

/// The lockfiles and settings that decide what `pnpm install` does.
pub const INSTALL_INPUTS: [&str; 4] = ["package.json", "pnpm-lock.yaml", "pnpm-workspace.yaml", ".npmrc"];

/// The default steps (docs/config.md, "Steps"): install only when its inputs changed, then build.
pub fn default_steps() -> Vec<Step> {
    vec![
        Step {
            run: Cmd::Argv(vec!["pnpm".into(), "install".into()]),
            if_changed: INSTALL_INPUTS.map(String::from).to_vec(),
        },
        Step::always(Cmd::Argv(vec!["pnpm".into(), "docs:build".into()])),
    ]
}

#[derive(Debug, Clone)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
}

impl Secret {
    /// Reads the secret, without the spaces, tabs and newlines around it: a secret pasted
    /// into a file or the config picks them up by accident, and a forge never sends them
    /// (GitLab's token and Gitee's password travel in a header, whose surrounding spaces
    /// HTTP strips). An empty secret is an error, so that no hook ever verifies against "".
    /// A file that cannot be read is `Error::Io`; an empty secret is `Error::Internal`, and
    /// nothing else is.
    pub fn load(&self) -> Result<Vec<u8>> {
        let bytes = self.load_as_written()?;
        let bytes = bytes.trim_ascii().to_vec();
        if bytes.is_empty() {
            let what = match self {
                Secret::Inline(_) => "secret is empty".to_string(),
                Secret::File(p) => format!("secret_file {} is empty", p.display()),
            };
            return Err(Error::Internal(what));
        }
        Ok(bytes)
    }

    /// The secret as written, spaces and all (`check` says when there are some).
    pub fn load_as_written(&self) -> Result<Vec<u8>> {
        match self {
            Secret::Inline(s) => Ok(s.as_bytes().to_vec()),
            Secret::File(path) => {
                std::fs::read(path).map_err(|e| Error::io(format!("cannot read secret_file {}", path.display()), e))
            }
        }
    }
}

/// `[hooks.NAME.publish]`: the build output, how many releases each destination keeps, and
/// where they go. `publish/` carries it out; every operation on it (publish, prune, what is
/// live, rollback, status, check) matches on `to` once, in `publish/mod.rs`.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The output folder, relative to `repo`.
    pub from: PathBuf,
    /// Releases kept per destination (at least 2: the live one and one to roll back to).
    pub keep: usize,
    pub to: Destinations,
}

/// Where releases go. A variant per way of publishing, so that no combination the config
/// refuses can be built: a hook publishes to its local `to` alone; or to its web hosts, with
/// the local `to` and a bucket as more of them; or to a bucket, with the local `to` as one
/// more. Every destination but `Local` alone switches all or none.
#[derive(Debug, Clone)]
pub enum Destinations {
    /// `publish.to` alone: a release is staged on this machine with hard links and switched
    /// with one rename(2) (`publish/local.rs`).
    Local(PathBuf),
    /// `publish.hosts`: every web host, and the local `to` and the bucket when set, all or
    /// none (`publish/hosts`).
    Hosts(Hosts),
    /// `publish.bucket` without hosts: the bucket, and the local `to` when set, all or none
    /// (`publish/bucket`).
    Bucket { local: Option<PathBuf>, bucket: Bucket },
}

/// `publish.bucket`: object storage behind a CDN, written with rclone (`publish/bucket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// `REMOTE:BUCKET/PATH`, REMOTE a section of `rclone_config`; no trailing `/`.
    pub remote: String,
    /// The rclone config file that defines REMOTE, with its keys.
    pub rclone_config: PathBuf,
    /// The `Cache-Control` of files that are not HTML, by path prefix, longest prefix first
    /// (`""` matches every path); HTML is always `no-cache`.
    pub cache_control: Vec<(String, String)>,
    /// Run after each publish or rollback that changed what the bucket serves, with the
    /// list of changed paths in the file `DEPLOY_HOOK_CHANGED` names (a CDN purge).
    pub after_publish: Option<Cmd>,
}

/// A web host a release is published to: an ssh destination (an ssh_config host alias,
/// or `user@host`) and the served path there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHost {
    pub host: String,
    pub path: String,
}

/// The web hosts of a publish (never empty), and the local `to` that switches with them.
#[derive(Debug, Clone)]
pub struct Hosts {
    /// `publish.to`, driven like one more host (through a local `sh`) when set.
    pub local: Option<PathBuf>,
    pub hosts: Vec<RemoteHost>,
    /// The ssh command, an argv.
    pub ssh: Vec<String>,
    /// `publish.bucket`, switched with the hosts when set.
    pub bucket: Option<Bucket>,
}

impl Publish {
    /// The local served path, whichever way the hook publishes.
    pub fn local_to(&self) -> Option<&Path> {
        match &self.to {
            Destinations::Local(to) => Some(to),
            Destinations::Hosts(h) => h.local.as_deref(),
            Destinations::Bucket { local, .. } => local.as_deref(),
        }
    }

    /// The bucket, whichever way the hook publishes.
    pub fn bucket(&self) -> Option<&Bucket> {
        match &self.to {
            Destinations::Local(_) => None,
            Destinations::Hosts(h) => h.bucket.as_ref(),
            Destinations::Bucket { bucket, .. } => Some(bucket),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub name: String,
    pub provider: Provider,
    pub secret: Secret,
    pub gitee_mode: GiteeMode,
    pub max_age_secs: u64,
    pub repo: PathBuf,
    pub remote: String,
    pub branch: String,
    pub clean: Vec<PathBuf>,
    pub steps: Vec<Step>,
    pub env: BTreeMap<String, String>,
    pub path: String,
    pub step_timeout: Duration,
    pub nice: i32,
    pub mode: Mode,
    pub on_busy: OnBusy,
    pub keep_logs: usize,
    /// The cap of each build log (`build::buildlog`).
    pub log_max_bytes: u64,
    pub on_failure: Option<Cmd>,
    pub on_success: Option<Cmd>,
    /// `[hooks.NAME.publish]`, when the hook publishes its output.
    pub publish: Option<Publish>,
    /// `[hooks.NAME.report]`: a commit status on the forge for every build.
    pub report: Option<Report>,
    /// `[hooks.NAME.page]`: the build page.
    pub page: Option<Page>,
    /// `[[hooks.NAME.notify]]`: chat robots and webhooks, in the order written.
    pub notify: Vec<Notify>,
    /// `[hooks.NAME.previews]`, when branches and pull requests get previews.
    pub previews: Option<Previews>,
}

/// `[hooks.NAME.previews]`: every branch matching `branches` and every pull request gets a
/// site of its own, built in a working tree of its own and published under `to`
/// (`config/previews.rs` checks it; docs/previews.md).
#[derive(Debug, Clone)]
pub struct Previews {
    /// The folder of the previews: preview NAME is served from `to/NAME`, a symlink to its
    /// live release in `to/NAME.releases/`.
    pub to: PathBuf,
    /// Where a preview is seen, with `{name}` for its name.
    pub url: String,
    /// Globs of the branches (other than the hook's own) whose pushes get a preview.
    pub branches: Vec<String>,
    /// Whether pull (merge) requests get previews.
    pub pull_requests: bool,
    /// Whether a pull request whose head is in another repository is built: its code runs
    /// on this server as the build's user.
    pub forks: bool,
    /// At most this many previews; the least recently built one goes first.
    pub keep: usize,
    /// At most this many preview builds of the hook run at once (`build::preview::slots`);
    /// production's build is never counted.
    pub jobs: usize,
}

impl Hook {
    /// The environment of every child a hook runs, in a build and outside one (`check`'s
    /// git, `status`'s and `rollback`'s ssh): the one list of docs/config.md ("The steps'
    /// environment") but the build's own `DEPLOY_HOOK_*`, which the pipeline adds. `home`
    /// is the hook's state `home/`; an `env` HOME wins. Nothing of the request (no `HTTP_*`
    /// variable) and no secret is in it.
    pub fn child_env(&self, home: &Path) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("PATH".into(), self.path.clone());
        env.insert("HOME".into(), home.to_string_lossy().into_owned());
        env.insert("LANG".into(), "C.UTF-8".into());
        // No credential prompt: nobody is there to answer it, and git would wait for ever.
        env.insert("GIT_TERMINAL_PROMPT".into(), "0".into());
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The absolute path of the file this was read from.
    pub file: PathBuf,
    pub state_dir: PathBuf,
    pub max_body_bytes: u64,
    pub log: LogConfig,
    pub hooks: BTreeMap<String, Hook>,
}

/// Where the config is: `--config`, else `$DEPLOY_HOOK_CONFIG`, else the default path.
pub fn locate(flag: Option<PathBuf>, env_value: Option<OsString>) -> PathBuf {
    flag.or_else(|| env_value.filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    dir: PathBuf,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    fn error(&self, span: std::ops::Range<usize>, key: &str, msg: impl Into<String>) -> Error {
        Error::Config {
            file: self.file.to_path_buf(),
            line: Some(self.line_of(span.start)),
            key: key.to_string(),
            message: msg.into(),
        }
    }

    fn err<T>(&self, span: std::ops::Range<usize>, key: &str, msg: impl Into<String>) -> Result<T> {
        Err(self.error(span, key, msg))
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }
}

/// Where in the file a hook's keys are: its table's line, and its name for `hooks.NAME.KEY`.
/// Here, not in `hook.rs`, because `publish.rs` reads `[hooks.NAME.publish]` with it too:
/// `hook.rs` calls `publish.rs`, never the other way.
struct At<'a> {
    ctx: &'a Ctx<'a>,
    name: &'a str,
    /// Line of the `[hooks.NAME]` table, for keys whose value has no span of its own.
    line: usize,
}

impl At<'_> {
    fn key(&self, k: &str) -> String {
        format!("hooks.{}.{k}", self.name)
    }

    /// An error on the hook's table line, for keys read without a span.
    fn on_table(&self, key: String, message: &str) -> Error {
        Error::Config {
            file: self.ctx.file.to_path_buf(),
            line: Some(self.line),
            key,
            message: message.to_string(),
        }
    }
}

fn choose<T: Copy>(
    ctx: &Ctx,
    key: &str,
    value: &Option<Spanned<String>>,
    default: T,
    choices: &[(&str, T)],
) -> Result<T> {
    let Some(v) = value else { return Ok(default) };
    match choices.iter().find(|(name, _)| *name == v.get_ref()) {
        Some((_, t)) => Ok(*t),
        None => {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            ctx.err(
                v.span(),
                key,
                format!("{:?} is not one of: {}", v.get_ref(), names.join(", ")),
            )
        }
    }
}

impl Config {
    /// What a command started as root works on for the hooks named (`sys::privilege`):
    /// each hook's name, `root_paths` and `root_reads`. A name the config does not have is
    /// left out.
    pub fn hook_paths<'a>(&'a self, names: &[&'a str]) -> Vec<crate::sys::privilege::HookPaths<'a>> {
        names
            .iter()
            .map(|n| crate::sys::privilege::HookPaths {
                name: n,
                paths: self.hooks.get(*n).map(Hook::root_paths).unwrap_or_default(),
                reads: self.hooks.get(*n).map(Hook::root_reads).unwrap_or_default(),
            })
            .collect()
    }

    /// Reads and validates the config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read the config file: {e} (pass --config FILE or set {CONFIG_ENV})"),
        })?;
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io("cannot read the current directory", e))?
                .join(path)
        };
        Config::parse(&abs, &text)
    }

    /// Validates config text that was read from `file` (an absolute path).
    pub fn parse(file: &Path, text: &str) -> Result<Config> {
        let raw = raw::parse(file, text)?;
        let ctx = Ctx {
            file,
            text,
            dir: file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/")),
        };

        let state_dir = ctx.resolve(raw.state_dir.as_deref().unwrap_or("/var/lib/deploy-hook"));
        let max_body_bytes = raw.max_body_bytes.unwrap_or(5 * 1024 * 1024);
        if max_body_bytes == 0 || max_body_bytes > 1 << 30 {
            return Err(Error::config(
                file,
                "max_body_bytes",
                "must be between 1 and 1073741824",
            ));
        }

        let raw_log = raw.log.unwrap_or_default();
        let facility_name = raw_log.facility.unwrap_or_else(|| "daemon".into());
        let facility = facility_name.parse::<syslog::Facility>().map_err(|_| {
            Error::config(
                file,
                "log.facility",
                format!("{facility_name:?} is not a syslog facility (daemon, user, local0 .. local7, ...)"),
            )
        })?;
        let ident = raw_log.ident.unwrap_or_else(|| "deploy-hook".into());
        if ident.is_empty() || ident.len() > 48 || !ident.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::config(
                file,
                "log.ident",
                "must be 1 to 48 printable ASCII characters",
            ));
        }
        let syslog = match raw_log.syslog.as_deref() {
            None => Some(PathBuf::from("/dev/log")),
            Some("") => None,
            Some(p) => Some(ctx.resolve(p)),
        };
        let log_file = match raw_log.file.as_deref() {
            None | Some("") => None,
            Some(p) if p.ends_with('/') => {
                return Err(Error::config(file, "log.file", "must name a file, not a folder"))
            }
            Some(p) => Some(ctx.resolve(p)),
        };

        if raw.hooks.is_empty() {
            return Err(Error::config(
                file,
                "hooks",
                "no hook is configured: add a [hooks.NAME] table",
            ));
        }
        let mut hooks = BTreeMap::new();
        for (name, spanned) in raw.hooks {
            let line = ctx.line_of(spanned.span().start);
            if !valid_hook_name(&name) {
                return ctx.err(
                    spanned.span(),
                    &format!("hooks.{name}"),
                    "a hook name may hold only letters, digits, '-' and '_' (at most 64), and starts with a letter or digit",
                );
            }
            let span = spanned.span();
            let hook = hook::validate_hook(&ctx, &name, line, spanned.into_inner())?;
            if hook.page.as_ref().is_some_and(|p| p.dir.starts_with(&state_dir)) {
                // The state folder holds the logs unmasked and the replay tokens.
                return ctx.err(span, &format!("hooks.{name}.page.dir"), "must be outside state_dir");
            }
            // Two pages in one folder overwrite each other's index.html and status.json,
            // and each hook's log pruning deletes the other's logs.
            if let Some(dir) = hook.page.as_ref().map(|p| &p.dir) {
                let shared = hooks.values().find_map(|other: &Hook| {
                    let theirs = &other.page.as_ref()?.dir;
                    let how = if theirs == dir {
                        "is also"
                    } else if dir.starts_with(theirs) {
                        "is inside"
                    } else if theirs.starts_with(dir) {
                        "holds"
                    } else {
                        return None;
                    };
                    Some(format!(
                        "{} {how} hooks.{}.page.dir ({}): two hooks' pages would overwrite each other's index.html and status.json, and each would prune the other's logs; give each hook a folder of its own",
                        dir.display(),
                        other.name,
                        theirs.display()
                    ))
                });
                if let Some(message) = shared {
                    return ctx.err(span, &format!("hooks.{name}.page.dir"), message);
                }
            }
            if let Some((key, message)) = apart::clash(&state_dir, &hook, hooks.values()) {
                return ctx.err(span, &format!("hooks.{name}.{key}"), message);
            }
            hooks.insert(name, hook);
        }

        Ok(Config {
            file: file.to_path_buf(),
            state_dir,
            max_body_bytes,
            log: LogConfig {
                syslog,
                file: log_file,
                ident,
                facility,
            },
            hooks,
        })
    }

    /// The hook a delivery is for: the named one, or the only one when none is named.
    pub fn hook(&self, name: Option<&str>) -> Result<&Hook> {
        match name {
            Some(n) => self.hooks.get(n).ok_or_else(|| Error::UnknownHook(printable(n, 64))),
            None if self.hooks.len() == 1 => Ok(self.hooks.values().next().expect("one hook")),
            None => Err(Error::UnknownHook(String::new())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("/etc/deploy-hook/config.toml"), text)
    }

    pub(super) fn err(text: &str) -> String {
        parse(text).expect_err("config should be refused").to_string()
    }

    pub(super) const MINIMAL: &str = "[hooks.docs]\nprovider = \"gitee\"\nsecret = \"s3cret\"\nrepo = \"/srv/docs\"\n";

    #[test]
    fn minimal_config_gets_the_spec_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/deploy-hook"));
        assert_eq!(c.max_body_bytes, 5_242_880);
        assert_eq!(c.log.syslog, Some(PathBuf::from("/dev/log")));
        let h = &c.hooks["docs"];
        assert_eq!(h.gitee_mode, GiteeMode::Sign);
        assert_eq!(h.max_age_secs, 3600);
        assert_eq!((h.remote.as_str(), h.branch.as_str()), ("origin", "main"));
        assert_eq!(
            h.steps,
            vec![
                Step {
                    run: Cmd::Argv(vec!["pnpm".into(), "install".into()]),
                    if_changed: ["package.json", "pnpm-lock.yaml", "pnpm-workspace.yaml", ".npmrc"]
                        .map(String::from)
                        .to_vec()
                },
                Step::always(Cmd::Argv(vec!["pnpm".into(), "docs:build".into()]))
            ]
        );
        assert_eq!(h.path, "/usr/local/bin:/usr/bin:/bin");
        assert_eq!(h.step_timeout, Duration::from_secs(1800));
        assert_eq!(
            (h.nice, h.mode, h.on_busy, h.keep_logs, h.log_max_bytes),
            (10, Mode::Async, OnBusy::Queue, 30, 8 << 20)
        );
        assert!(h.publish.is_none() && h.on_failure.is_none());
    }

    #[test]
    fn the_spec_example_parses() {
        let text = r#"
state_dir = "/var/lib/deploy-hook"
max_body_bytes = 5242880
[log]
syslog = "/dev/log"
ident = "deploy-hook"
facility = "daemon"
[hooks.docs]
provider = "gitee"
secret_file = "/etc/deploy-hook/docs.secret"
gitee_mode = "sign"
max_age_secs = 3600
repo = "/srv/docs"
remote = "origin"
branch = "main"
clean = ["docs/.vuepress/dist"]
steps = [["pnpm", "install"], ["pnpm", "docs:build"], "echo done > /dev/null"]
env = { NODE_ENV = "production" }
path = "/usr/local/bin:/usr/bin:/bin"
step_timeout_secs = 1800
nice = 10
mode = "async"
on_busy = "queue"
keep_logs = 30
log_max_bytes = 8388608
on_failure = ["/usr/local/bin/notify", "failed"]
on_success = ["/usr/local/bin/notify", "ok"]
[hooks.docs.publish]
from = "docs/.vuepress/dist"
to = "/var/www/docs"
keep = 5
"#;
        let c = parse(text).unwrap();
        let h = &c.hooks["docs"];
        assert_eq!(h.steps[2], Step::always(Cmd::Shell("echo done > /dev/null".into())));
        assert_eq!(h.steps[2].run.argv()[..2], ["/bin/sh".to_string(), "-c".to_string()]);
        assert_eq!(h.clean, vec![PathBuf::from("docs/.vuepress/dist")]);
        assert_eq!(h.env["NODE_ENV"], "production");
        let p = h.publish.as_ref().unwrap();
        assert!(matches!(&p.to, Destinations::Local(to) if to == Path::new("/var/www/docs")));
        assert_eq!(p.keep, 5);
        assert!(matches!(&h.secret, Secret::File(f) if f == Path::new("/etc/deploy-hook/docs.secret")));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let c = parse(
            "state_dir = \"state\"\n[hooks.a]\nprovider = \"github\"\nsecret_file = \"a.secret\"\nrepo = \"site\"\n",
        )
        .unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/etc/deploy-hook/state"));
        assert_eq!(c.hooks["a"].repo, PathBuf::from("/etc/deploy-hook/site"));
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let e = err(&format!("{MINIMAL}brnach = \"main\"\n"));
        assert!(e.contains(":5") && e.contains("brnach"), "{e}");
        let e = err("stat_dir = \"/x\"\n");
        assert!(e.contains(":1") && e.contains("stat_dir"), "{e}");
    }

    #[test]
    fn a_secret_is_what_is_between_the_spaces_around_it() {
        let dir = std::env::temp_dir().join(format!("dh-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s");
        std::fs::write(&f, "abc def\r\n").unwrap();
        assert_eq!(Secret::File(f.clone()).load().unwrap(), b"abc def");
        std::fs::write(&f, "  \tabc def \n\n").unwrap();
        assert_eq!(Secret::File(f.clone()).load().unwrap(), b"abc def");
        assert_eq!(Secret::File(f.clone()).load_as_written().unwrap(), b"  \tabc def \n\n");
        assert_eq!(Secret::Inline(" x ".into()).load().unwrap(), b"x");
        std::fs::write(&f, " \n").unwrap();
        assert!(Secret::File(f.clone()).load().is_err());
        assert!(Secret::File(dir.join("missing")).load().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hook_names_are_plain() {
        assert!(valid_hook_name("docs") && valid_hook_name("my-site_2"));
        for bad in ["", "../x", "a/b", "-x", "a b", "é", &"x".repeat(65)] {
            assert!(!valid_hook_name(bad), "{bad}");
        }
        let e = err("[hooks.\"a/b\"]\nprovider = \"gitee\"\nsecret = \"x\"\nrepo = \"/r\"\n");
        assert!(e.contains("hooks.a/b"), "{e}");
    }

    #[test]
    fn choosing_the_hook() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.hook(None).unwrap().name, "docs");
        assert_eq!(c.hook(Some("docs")).unwrap().name, "docs");
        assert!(matches!(c.hook(Some("blog")), Err(Error::UnknownHook(_))));
        let two = format!("{MINIMAL}[hooks.blog]\nprovider = \"gitlab\"\nsecret = \"t\"\nrepo = \"/srv/blog\"\n");
        let c = parse(&two).unwrap();
        assert!(matches!(c.hook(None), Err(Error::UnknownHook(_))));
    }

    #[test]
    fn commands_display_as_written() {
        assert_eq!(Cmd::Shell("echo hi".into()).to_string(), "echo hi");
        assert_eq!(
            Cmd::Argv(vec!["sh".into(), "-c".into(), "echo hi".into()]).to_string(),
            "sh -c 'echo hi'"
        );
    }
}
