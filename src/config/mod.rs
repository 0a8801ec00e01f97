//! The config file, read into a checked `Config` before anything else runs.
//!
//! Raw TOML is deserialized (`raw`) with unknown keys denied, then every value is validated and
//! every relative path is resolved against the config file's folder (under fcgiwrap and
//! Apache the working directory is the script's folder, which means nothing to the config).
//! Secrets are not read here: `Secret::load` reads them when a delivery needs them, so that
//! `status` works for a user who may not read the secret file.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::error::{Error, Result};

mod raw;

use raw::RawHook;

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
/// pathspecs, relative to `repo`) changed since the hook's last succeeded build, when
/// there is none, or when the hook's config changed since then (pipeline.rs decides).
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

/// SPEC's default steps: install only when its inputs changed, then build.
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
    /// Reads the secret. A file is trimmed of its trailing newline; an empty secret is an
    /// error, so that no hook ever verifies against "".
    pub fn load(&self) -> Result<Vec<u8>> {
        let mut bytes = match self {
            Secret::Inline(s) => s.as_bytes().to_vec(),
            Secret::File(path) => {
                std::fs::read(path).map_err(|e| Error::io(format!("cannot read secret_file {}", path.display()), e))?
            }
        };
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        if bytes.is_empty() {
            let what = match self {
                Secret::Inline(_) => "secret is empty".to_string(),
                Secret::File(p) => format!("secret_file {} is empty", p.display()),
            };
            return Err(Error::io(what, std::io::Error::from(std::io::ErrorKind::InvalidData)));
        }
        Ok(bytes)
    }
}

#[derive(Debug, Clone)]
pub struct Publish {
    pub from: PathBuf,
    pub to: PathBuf,
    pub keep: usize,
}

/// A web host a release is published to: an ssh destination (an ssh_config host alias,
/// or `user@host`) and the served path there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHost {
    pub host: String,
    pub path: String,
}

impl RemoteHost {
    /// `web1:/var/www/docs`. The host is one word that ssh cannot take for an option; the
    /// path is absolute and holds no newline (it travels in sh scripts, quoted).
    pub fn parse(s: &str) -> std::result::Result<RemoteHost, String> {
        let Some((host, path)) = s.split_once(':') else {
            return Err(format!(
                "{s:?} is not HOST:/PATH (an ssh host alias, a colon, the served path there)"
            ));
        };
        if host.is_empty()
            || host.starts_with('-')
            || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
        {
            return Err(format!(
                "{host:?} is not an ssh host: letters, digits, '-', '_', '.', '@' (user@host), not starting with '-'"
            ));
        }
        if !path.starts_with('/') || path.contains(['\n', '\0']) {
            return Err(format!("{path:?} must be an absolute path on {host}"));
        }
        let path = path.trim_end_matches('/');
        let base = path.rsplit('/').next().unwrap_or("");
        if base.is_empty() || base == "." || base == ".." {
            return Err(format!("{s:?} must name a path below a folder"));
        }
        Ok(RemoteHost {
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}

/// A publish to several web hosts over ssh (hosts.rs), and to the local `to` when set.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub from: PathBuf,
    pub to: Option<PathBuf>,
    pub keep: usize,
    pub hosts: Vec<RemoteHost>,
    /// The ssh command, an argv.
    pub ssh: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub name: String,
    /// Line of the `[hooks.NAME]` table, for messages.
    pub line: usize,
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
    pub on_failure: Option<Cmd>,
    pub on_success: Option<Cmd>,
    /// The local publish, when `publish.to` is set and `publish.hosts` is not.
    pub publish: Option<Publish>,
    /// The publish to web hosts, when `publish.hosts` is set (with the local `to` if any).
    pub fleet: Option<Fleet>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The syslog socket; `None` (`syslog = ""`) when syslog is not to be used.
    pub syslog: Option<PathBuf>,
    /// An append-only log file, used when syslog cannot be reached.
    pub file: Option<PathBuf>,
    pub ident: String,
    pub facility: syslog::Facility,
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

/// Hook names travel in URLs, file names and log lines: keep them plain.
pub fn valid_hook_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Branch and remote names end up as git arguments: refuse anything git would read as an
/// option or that `git check-ref-format` refuses.
fn valid_git_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.ends_with(".lock")
        && !s.contains("..")
        && !s.contains("@{")
        && !s.contains("//")
        && s.chars().all(|c| !c.is_control() && !" ~^:?*[\\".contains(c))
}

fn valid_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A relative path that stays inside the folder it is joined to.
fn inside_relative(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    if p.is_empty() || p.contains('\0') {
        return None;
    }
    let mut clean = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    // `.git` holds the remote's credentials and the hooks git runs: never published,
    // never cleaned.
    if clean.as_os_str().is_empty() || clean.starts_with(".git") {
        None
    } else {
        Some(clean)
    }
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

    fn err<T>(&self, span: std::ops::Range<usize>, key: &str, msg: impl Into<String>) -> Result<T> {
        Err(Error::Config {
            file: self.file.to_path_buf(),
            line: Some(self.line_of(span.start)),
            key: key.to_string(),
            message: msg.into(),
        })
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
            let hook = validate_hook(&ctx, &name, line, spanned.into_inner())?;
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
            Some(n) => self.hooks.get(n).ok_or_else(|| Error::UnknownHook(n.to_string())),
            None if self.hooks.len() == 1 => Ok(self.hooks.values().next().expect("one hook")),
            None => Err(Error::UnknownHook(String::new())),
        }
    }
}

fn validate_hook(ctx: &Ctx, name: &str, line: usize, raw: RawHook) -> Result<Hook> {
    let key = |k: &str| format!("hooks.{name}.{k}");
    let at_hook = |key: String, message: &str| Error::Config {
        file: ctx.file.to_path_buf(),
        line: Some(line),
        key,
        message: message.to_string(),
    };

    let provider = choose(
        ctx,
        &key("provider"),
        &Some(raw.provider.clone()),
        Provider::Gitee,
        &[
            ("gitee", Provider::Gitee),
            ("github", Provider::Github),
            ("gitlab", Provider::Gitlab),
            ("gitea", Provider::Gitea),
            ("gogs", Provider::Gogs),
        ],
    )?;

    let secret = match (raw.secret, raw.secret_file) {
        (Some(_), Some(_)) => {
            return Err(at_hook(format!("hooks.{name}"), "set secret or secret_file, not both"))
        }
        (None, None) => {
            return Err(at_hook(format!("hooks.{name}"), "no secret: set secret_file = \"/etc/deploy-hook/NAME.secret\" (or secret = \"...\"); a hook without a secret would accept anyone's delivery"))
        }
        (Some(s), None) if s.is_empty() => {
            return Err(at_hook(format!("hooks.{name}"), "secret is empty"))
        }
        (Some(s), None) => Secret::Inline(s),
        (None, Some(f)) if f.is_empty() => {
            return Err(at_hook(format!("hooks.{name}"), "secret_file is empty"))
        }
        (None, Some(f)) => Secret::File(ctx.resolve(&f)),
    };

    if provider != Provider::Gitee {
        if let Some(m) = &raw.gitee_mode {
            return ctx.err(m.span(), &key("gitee_mode"), "applies only to provider = \"gitee\"");
        }
        if raw.max_age_secs.is_some() {
            return Err(at_hook(key("max_age_secs"), "applies only to provider = \"gitee\""));
        }
    }
    let gitee_mode = choose(
        ctx,
        &key("gitee_mode"),
        &raw.gitee_mode,
        GiteeMode::Sign,
        &[("sign", GiteeMode::Sign), ("password", GiteeMode::Password)],
    )?;
    let max_age_secs = raw.max_age_secs.unwrap_or(3600);
    if max_age_secs == 0 || max_age_secs > 7 * 86_400 {
        return Err(at_hook(key("max_age_secs"), "must be between 1 and 604800 seconds"));
    }

    if raw.repo.get_ref().is_empty() {
        return ctx.err(raw.repo.span(), &key("repo"), "must name the git working tree to build");
    }
    let repo = ctx.resolve(raw.repo.get_ref());

    let remote = match raw.remote {
        None => "origin".to_string(),
        Some(r) if valid_git_name(r.get_ref()) => r.into_inner(),
        Some(r) => {
            return ctx.err(
                r.span(),
                &key("remote"),
                format!("{:?} is not a valid remote name", r.get_ref()),
            )
        }
    };
    let branch = match raw.branch {
        None => "main".to_string(),
        Some(b) => {
            let b_name = b.get_ref().strip_prefix("refs/heads/").unwrap_or(b.get_ref());
            if !valid_git_name(b_name) {
                return ctx.err(
                    b.span(),
                    &key("branch"),
                    format!("{:?} is not a valid branch name", b.get_ref()),
                );
            }
            b_name.to_string()
        }
    };

    let mut clean = Vec::new();
    if let Some(c) = raw.clean {
        for p in c.get_ref() {
            match inside_relative(p) {
                Some(rel) => clean.push(rel),
                None => {
                    return ctx.err(
                        c.span(),
                        &key("clean"),
                        format!(
                            "{p:?} is not a relative path inside repo; clean never removes anything outside the repo"
                        ),
                    )
                }
            }
        }
    }

    let steps = match raw.steps {
        None => default_steps(),
        Some(s) if s.get_ref().is_empty() => {
            return ctx.err(
                s.span(),
                &key("steps"),
                "no steps: leave the key out for the default (pnpm install, pnpm docs:build)",
            )
        }
        Some(s) => s.into_inner(),
    };

    let mut env = BTreeMap::new();
    if let Some(e) = raw.env {
        let span = e.span();
        for (k, v) in e.into_inner() {
            if !valid_env_name(&k) {
                return ctx.err(span, &key("env"), format!("{k:?} is not a valid variable name"));
            }
            if k == "PATH" {
                return ctx.err(span, &key("env"), "set PATH with the hook's `path` key, not in env");
            }
            if k.starts_with("DEPLOY_HOOK_") || k.starts_with("HTTP_") {
                return ctx.err(span, &key("env"), format!("{k} is reserved"));
            }
            if v.contains('\0') {
                return ctx.err(span, &key("env"), format!("{k} holds a NUL byte"));
            }
            env.insert(k, v);
        }
    }

    let path = match raw.path {
        None => "/usr/local/bin:/usr/bin:/bin".to_string(),
        Some(p) => {
            if p.get_ref().is_empty() || !p.get_ref().split(':').all(|d| d.starts_with('/')) {
                return ctx.err(
                    p.span(),
                    &key("path"),
                    "must be a ':'-separated list of absolute folders",
                );
            }
            p.into_inner()
        }
    };

    let step_timeout = match raw.step_timeout_secs {
        None => Duration::from_secs(1800),
        Some(t) if *t.get_ref() == 0 => return ctx.err(t.span(), &key("step_timeout_secs"), "must be at least 1"),
        Some(t) => Duration::from_secs(*t.get_ref()),
    };
    let nice = match raw.nice {
        None => 10,
        Some(n) if (0..=19).contains(n.get_ref()) => *n.get_ref() as i32,
        Some(n) => return ctx.err(n.span(), &key("nice"), "must be between 0 and 19"),
    };
    let mode = choose(
        ctx,
        &key("mode"),
        &raw.mode,
        Mode::Async,
        &[("async", Mode::Async), ("sync", Mode::Sync)],
    )?;
    let on_busy = choose(
        ctx,
        &key("on_busy"),
        &raw.on_busy,
        OnBusy::Queue,
        &[
            ("queue", OnBusy::Queue),
            ("reject", OnBusy::Reject),
            ("supersede", OnBusy::Supersede),
        ],
    )?;
    let keep_logs = match raw.keep_logs {
        None => 30,
        Some(k) if *k.get_ref() == 0 => return ctx.err(k.span(), &key("keep_logs"), "must be at least 1"),
        Some(k) => *k.get_ref() as usize,
    };

    let (publish, fleet) = match raw.publish {
        None => (None, None),
        Some(p) => {
            let span = p.span();
            let p = p.into_inner();
            let Some(from) = inside_relative(&p.from) else {
                return ctx.err(
                    span,
                    &key("publish.from"),
                    format!("{:?} is not a relative path inside repo (and outside .git)", p.from),
                );
            };
            let hosts = p.hosts.unwrap_or_default();
            let to = match p.to.as_deref() {
                None if hosts.is_empty() => {
                    return ctx.err(
                        span,
                        &key("publish.to"),
                        "must name the symlink the web server serves (or set publish.hosts)",
                    )
                }
                None => None,
                Some("") => return ctx.err(span, &key("publish.to"), "must name the symlink the web server serves"),
                Some(t) => {
                    let to = ctx.resolve(t);
                    if to.parent().is_none() || to.file_name().is_none() {
                        return ctx.err(span, &key("publish.to"), "must name a path below a folder");
                    }
                    if to.starts_with(&repo) || repo.starts_with(&to) {
                        return ctx.err(span, &key("publish.to"), "must be outside repo");
                    }
                    Some(to)
                }
            };
            let keep = p.keep.unwrap_or(5);
            if keep < 2 {
                return ctx.err(
                    span,
                    &key("publish.keep"),
                    "must be at least 2 (the live release and the one to roll back to)",
                );
            }
            let mut remote = Vec::new();
            for h in &hosts {
                let parsed = RemoteHost::parse(h).or_else(|m| ctx.err(span.clone(), &key("publish.hosts"), m))?;
                if remote.contains(&parsed) {
                    return ctx.err(span, &key("publish.hosts"), format!("{h:?} is named twice"));
                }
                remote.push(parsed);
            }
            let ssh = match p.ssh {
                None => vec!["ssh".to_string()],
                Some(_) if hosts.is_empty() => {
                    return ctx.err(span, &key("publish.ssh"), "is used only with publish.hosts")
                }
                Some(argv) => {
                    if argv.first().is_none_or(|p| p.is_empty()) {
                        return ctx.err(
                            span,
                            &key("publish.ssh"),
                            "must name the ssh program, like [\"ssh\", \"-F\", \"/etc/deploy-hook/ssh_config\"]",
                        );
                    }
                    // rsync's -e takes one string it splits itself: quotes, no backslashes.
                    if let Some(w) = argv
                        .iter()
                        .find(|w| (w.contains('\'') && w.contains('"')) || w.contains(['\0', '\n']))
                    {
                        return ctx.err(
                            span,
                            &key("publish.ssh"),
                            format!("{w:?} holds both quote kinds or a newline, which rsync's -e cannot carry"),
                        );
                    }
                    argv
                }
            };
            let keep = keep as usize;
            if remote.is_empty() {
                let to = to.unwrap_or_default();
                (Some(Publish { from, to, keep }), None)
            } else {
                (
                    None,
                    Some(Fleet {
                        from,
                        to,
                        keep,
                        hosts: remote,
                        ssh,
                    }),
                )
            }
        }
    };

    Ok(Hook {
        name: name.to_string(),
        line,
        provider,
        secret,
        gitee_mode,
        max_age_secs,
        repo,
        remote,
        branch,
        clean,
        steps,
        env,
        path,
        step_timeout,
        nice,
        mode,
        on_busy,
        keep_logs,
        on_failure: raw.on_failure,
        on_success: raw.on_success,
        publish,
        fleet,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("/etc/deploy-hook/config.toml"), text)
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("config should be refused").to_string()
    }

    const MINIMAL: &str = "[hooks.docs]\nprovider = \"gitee\"\nsecret = \"s3cret\"\nrepo = \"/srv/docs\"\n";

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
            (h.nice, h.mode, h.on_busy, h.keep_logs),
            (10, Mode::Async, OnBusy::Queue, 30)
        );
        assert!(h.publish.is_none() && h.on_failure.is_none());
        assert_eq!(h.line, 1);
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
        assert_eq!((p.to.as_path(), p.keep), (Path::new("/var/www/docs"), 5));
        assert!(matches!(&h.secret, Secret::File(f) if f == Path::new("/etc/deploy-hook/docs.secret")));
        assert_eq!(h.line, 8);
    }

    #[test]
    fn publish_to_several_hosts() {
        let base = format!("{MINIMAL}[hooks.docs.publish]\nfrom = \"dist\"\n");
        let c = parse(&format!(
            "{base}hosts = [\"web1:/var/www/docs\", \"deploy@web2:/var/www/docs/\"]\nssh = [\"ssh\", \"-F\", \"/etc/deploy-hook/ssh_config\"]\n"
        ))
        .unwrap();
        let h = &c.hooks["docs"];
        assert!(h.publish.is_none(), "no local publish without `to`");
        let f = h.fleet.as_ref().unwrap();
        assert_eq!(f.to, None);
        assert_eq!(
            f.hosts[1],
            RemoteHost {
                host: "deploy@web2".into(),
                path: "/var/www/docs".into()
            }
        );
        assert_eq!(f.ssh, ["ssh", "-F", "/etc/deploy-hook/ssh_config"]);
        let c = parse(&format!("{base}to = \"/var/www/docs\"\nhosts = [\"web1:/srv/www\"]\n")).unwrap();
        let f = c.hooks["docs"].fleet.as_ref().unwrap();
        assert_eq!(
            (f.to.as_deref(), f.ssh.as_slice()),
            (Some(Path::new("/var/www/docs")), &["ssh".to_string()][..])
        );
        for (bad, why) in [
            ("hosts = [\"web1\"]", "HOST:/PATH"),
            ("hosts = [\"web1:docs\"]", "absolute"),
            ("hosts = [\"-oProxyCommand=x:/a\"]", "not an ssh host"),
            ("hosts = [\"web 1:/a\"]", "not an ssh host"),
            ("hosts = [\"web1:/\"]", "below a folder"),
            ("hosts = [\"web1:/a\", \"web1:/a/\"]", "twice"),
            ("hosts = [\"web1:/a\"]\nssh = []", "ssh program"),
            (
                "hosts = [\"web1:/a\"]\nssh = [\"ssh\", \"-o\", \"X='a\\\"b'\"]",
                "quote",
            ),
            ("to = \"/var/www/x\"\nssh = [\"ssh\"]", "only with publish.hosts"),
            ("", "or set publish.hosts"),
        ] {
            let e = err(&format!("{base}{bad}\n"));
            assert!(e.contains("hooks.docs.publish.") && e.contains(why), "{bad} -> {e}");
        }
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
    fn bad_values_name_the_key() {
        let cases = [
            (
                "provider = \"gitee\"",
                "provider = \"bitbucket\"",
                "hooks.docs.provider",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nmode = \"later\"",
                "hooks.docs.mode",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\non_busy = \"drop\"",
                "hooks.docs.on_busy",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nnice = 25",
                "hooks.docs.nice",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nbranch = \"-x\"",
                "hooks.docs.branch",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nremote = \"a b\"",
                "hooks.docs.remote",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nclean = [\"../etc\"]",
                "hooks.docs.clean",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nclean = [\"/etc\"]",
                "hooks.docs.clean",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nsteps = []",
                "hooks.docs.steps",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nenv = { PATH = \"/x\" }",
                "hooks.docs.env",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nenv = { DEPLOY_HOOK_NAME = \"x\" }",
                "hooks.docs.env",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\npath = \"bin\"",
                "hooks.docs.path",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nstep_timeout_secs = 0",
                "hooks.docs.step_timeout_secs",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nkeep_logs = 0",
                "hooks.docs.keep_logs",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nmax_age_secs = 0",
                "hooks.docs.max_age_secs",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\ngitee_mode = \"hmac\"",
                "hooks.docs.gitee_mode",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\n[hooks.docs.publish]\nfrom = \"/abs\"\nto = \"/var/www/x\"",
                "hooks.docs.publish.from",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\n[hooks.docs.publish]\nfrom = \"dist\"\nto = \"/var/www/x\"\nkeep = 1",
                "hooks.docs.publish.keep",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\n[hooks.docs.publish]\nfrom = \"dist\"\nto = \"/srv/docs/out\"",
                "hooks.docs.publish.to",
            ),
        ];
        for (from, to, key) in cases {
            let text = MINIMAL.replace(from, to);
            let e = err(&text);
            assert!(e.contains(key), "{text}\n-> {e}");
            assert!(e.starts_with("/etc/deploy-hook/config.toml:"), "{e}");
        }
    }

    #[test]
    fn steps_must_be_commands() {
        for bad in [
            "steps = [[]]",
            "steps = [42]",
            "steps = [\"  \"]",
            "steps = [[\"\", \"x\"]]",
            "on_failure = []",
        ] {
            let e = err(&format!("{MINIMAL}{bad}\n"));
            assert!(e.contains(":5"), "{bad} -> {e}");
        }
    }

    #[test]
    fn steps_may_be_tables_with_if_changed() {
        let c = parse(&format!(
            "{MINIMAL}steps = [{{ run = [\"pnpm\", \"install\"], if_changed = [\"package.json\", \"docs/**\"] }}, {{ run = \"make\" }}, [\"pnpm\", \"docs:build\"]]\n"
        ))
        .unwrap();
        let h = &c.hooks["docs"];
        assert_eq!(h.steps[0].run, Cmd::Argv(vec!["pnpm".into(), "install".into()]));
        assert_eq!(h.steps[0].if_changed, ["package.json", "docs/**"]);
        assert_eq!(h.steps[1], Step::always(Cmd::Shell("make".into())));
        assert_eq!(
            h.steps[2],
            Step::always(Cmd::Argv(vec!["pnpm".into(), "docs:build".into()]))
        );
        for bad in [
            "steps = [{ run = [\"x\"], if_changed = [] }]",
            "steps = [{ run = [\"x\"], if_changed = [\"/etc/passwd\"] }]",
            "steps = [{ if_changed = [\"a\"] }]",
            "steps = [{ run = [\"x\"], when = \"a\" }]",
            "steps = [{ run = [] }]",
        ] {
            let e = err(&format!("{MINIMAL}{bad}\n"));
            assert!(e.contains(":5"), "{bad} -> {e}");
        }
    }

    #[test]
    fn secrets_exactly_one_and_never_empty() {
        let none = MINIMAL.replace("secret = \"s3cret\"\n", "");
        assert!(err(&none).contains("no secret"));
        let both = MINIMAL.replace("secret = \"s3cret\"", "secret = \"a\"\nsecret_file = \"/x\"");
        assert!(err(&both).contains("not both"));
        let empty = MINIMAL.replace("s3cret", "");
        assert!(err(&empty).contains("secret is empty"));
        let e = err(&MINIMAL
            .replace("\"gitee\"", "\"github\"")
            .replace("repo =", "gitee_mode = \"sign\"\nrepo ="));
        assert!(e.contains("gitee_mode") && e.contains("only"), "{e}");
    }

    #[test]
    fn secret_file_is_trimmed_of_its_newline() {
        let dir = std::env::temp_dir().join(format!("dh-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s");
        std::fs::write(&f, "abc def\r\n").unwrap();
        assert_eq!(Secret::File(f.clone()).load().unwrap(), b"abc def");
        std::fs::write(&f, "\n").unwrap();
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
