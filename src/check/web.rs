//! The web server that starts deploy-hook, as it is configured and running now: the
//! nginx config in use (`nginx -T`, read in `nginx.rs`), Apache's (`apache2ctl -S`,
//! `-t -D DUMP_INCLUDES`, `-M`), fcgiwrap's socket, the user it runs as and where its
//! CGIs' stderr goes. A location that runs another copy of the binary, names a config that
//! is not there, a `/hooks/NAME` that reaches deploy-hook without the hook's name while
//! the config has several hooks, a fcgiwrap that runs as root or as someone other than the
//! owner of the state folder: each breaks deliveries while the config itself is fine.
//!
//! What needs root (reading the whole server config, other users' processes) is gathered
//! by `Observed::gather` (`gather.rs`) before `check` becomes the build's user; the
//! verdicts come after, here.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use super::gather::{gather_apache, gather_fcgiwrap, gather_nginx, Fcgiwrap, Server};
use super::nginx::{self, Route, Vhost};
use super::{Ctx, Report};
use crate::sys::privilege;

/// Debian's fcgiwrap.socket unit listens here.
pub(super) const DEFAULT_FCGIWRAP_SOCKET: &str = "/run/fcgiwrap.socket";

/// A location (nginx) or ScriptAlias (Apache) that runs deploy-hook.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// How the config names it, e.g. `location ~ "^/hooks/..."`.
    pub(super) name: String,
    /// The config file it is written in.
    pub(super) file: String,
    /// SCRIPT_FILENAME, or the ScriptAlias target.
    pub(super) program: String,
    /// The hook's name reaches us as PATH_INFO.
    pub(super) path_info: bool,
    /// `DEPLOY_HOOK_CONFIG` it passes, if any.
    pub(super) config: Option<String>,
    /// Apache: the URL path the ScriptAlias maps (`/hooks`); the hook's URL is under it.
    pub(super) alias: Option<String>,
    /// nginx: the `unix:` socket of its fastcgi_pass.
    pub(super) socket: Option<String>,
}

/// Where the stderr of a delivery goes, as the running web server shows it: where its
/// warnings and errors land when neither syslog nor a log file takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DeliveryStderr {
    /// fcgiwrap `-f`: nginx's error log, at `[error]`.
    NginxErrorLog,
    /// fcgiwrap without `-f`: its own stderr (this file; `/dev/null` loses them).
    FcgiwrapOwn { pid: u32, target: String },
    /// Apache's ErrorLog (the main one, when `apache2ctl -S` names it).
    ApacheErrorLog(Option<String>),
}

impl DeliveryStderr {
    /// Nothing reads it: the lines are lost.
    pub(super) fn lost(&self) -> bool {
        matches!(self, DeliveryStderr::FcgiwrapOwn { target, .. } if target == "/dev/null")
    }

    pub(super) fn describe(&self) -> String {
        match self {
            DeliveryStderr::NginxErrorLog => "nginx's error log (fcgiwrap runs with -f)".into(),
            DeliveryStderr::FcgiwrapOwn { pid, target } => format!(
                "fcgiwrap's own stderr, {target} (fcgiwrap, pid {pid}, runs without -f, so nginx never sees it)"
            ),
            DeliveryStderr::ApacheErrorLog(Some(f)) => format!("Apache's error log {f}"),
            DeliveryStderr::ApacheErrorLog(None) => "Apache's error log".into(),
        }
    }
}

/// A URL the web server hands `/hooks/NAME` to deploy-hook on, for `init` to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookUrl {
    /// `nginx` or `Apache`.
    pub server: &'static str,
    /// That server runs now (its pid file names a live process).
    pub running: bool,
    /// The URL's path: `/hooks/NAME`, or `/hooks/?hook=NAME` where the name is not passed.
    pub path: String,
    /// `https` when the server listens with TLS, else `http`.
    pub scheme: &'static str,
    /// Its server_name, when it names a host.
    pub host: Option<String>,
    /// The config file that hands it to deploy-hook.
    pub file: String,
    /// It passes the hook's name (PATH_INFO): `/hooks/NAME` works with several hooks.
    pub with_name: bool,
}

/// Where nginx (as `nginx -T` on `admin_path` shows it) and Apache (its ScriptAlias) hand
/// `/hooks/NAME` to deploy-hook, each marked running or not; empty when neither does, or
/// neither can be read. Read as root, before anything else.
pub fn hook_urls(admin_path: &str, name: &str) -> Vec<HookUrl> {
    let server = gather_nginx(admin_path);
    let uri = format!("/hooks/{name}");
    let mut out = Vec::new();
    for v in &server.vhosts {
        if let Route::To(i) = nginx::route(v, &uri) {
            if let Some(e) = v.locations[i].entry {
                let with_name = server.entries[e].path_info;
                out.push(HookUrl {
                    server: "nginx",
                    running: server.pid.is_some(),
                    path: if with_name {
                        uri.clone()
                    } else {
                        format!("/hooks/?hook={name}")
                    },
                    scheme: if v.https { "https" } else { "http" },
                    host: v.host().map(str::to_string),
                    file: v.file.clone(),
                    with_name,
                });
            }
        }
    }
    let apache = gather_apache(admin_path);
    for e in &apache.entries {
        let Some(alias) = &e.alias else { continue };
        out.push(HookUrl {
            server: "Apache",
            running: apache.pid.is_some(),
            path: format!("{}/{name}", alias.trim_end_matches('/')),
            scheme: "http",
            host: None,
            file: e.file.clone(),
            with_name: true,
        });
    }
    out
}

#[derive(Debug, Default)]
pub(super) struct Observed {
    nginx: Server,
    apache: Server,
    fcgiwrap: Vec<Fcgiwrap>,
    /// Gathered as this user (root reads everything; another user cannot run `nginx -T`).
    gathered_as: String,
}

impl Observed {
    pub(super) fn gather(admin_path: &str) -> Observed {
        Observed {
            nginx: gather_nginx(admin_path),
            apache: gather_apache(admin_path),
            fcgiwrap: gather_fcgiwrap(),
            gathered_as: privilege::user_by_uid(privilege::euid())
                .map(|u| u.name)
                .unwrap_or_else(|| format!("uid {}", privilege::euid())),
        }
    }

    pub(super) fn check(&self, ctx: &Ctx, r: &mut Report) {
        r.section = None;
        r.heading("[web server]".into());
        let state_owner = std::fs::metadata(&ctx.cfg.state_dir)
            .ok()
            .and_then(|m| privilege::user_by_uid(m.uid()))
            .map(|u| u.name);
        let builder = state_owner.clone().unwrap_or_else(|| ctx.user.clone());
        let mut runs_us = 0;
        // Servers whose config this user could not read: whether they run deploy-hook is
        // not known, so "nothing runs it" must not be said.
        let unreadable = self.unreadable();
        for (label, server) in [("nginx", &self.nginx), ("apache2", &self.apache)] {
            let item = format!("{label} config");
            match (&server.found, &server.error) {
                (None, _) => {
                    r.skip(&item, format!("{label} is not installed: its config was not checked"));
                    continue;
                }
                (Some(_), Some(e)) => {
                    r.skip(
                        &item,
                        if self.gathered_as == "root" {
                            format!("{label}'s config could not be read ({e}): `{label} -t` (as root) says where it is wrong")
                        } else {
                            format!("{label}'s config could not be read ({e}); run check as root to read it")
                        },
                    );
                    continue;
                }
                _ => {}
            }
            let what = Server::what(label);
            if server.entries.is_empty() {
                r.ok(&item, format!("{label}: no {what} runs deploy-hook"));
                continue;
            }
            for e in &server.entries {
                runs_us += 1;
                self.check_entry(ctx, label, e, r);
            }
            let pid_file = server.pid_file.as_deref().unwrap_or("(none named)");
            match server.pid {
                Some(pid) => r.ok(
                    &format!("{label} running"),
                    format!("{label} is running (pid {pid}, {pid_file})"),
                ),
                None => r.warn(
                    &format!("{label} running"),
                    format!(
                        "{label} is not running (no live {label} process in {pid_file}): its {what} above serves no delivery until it starts (service {label} start, or systemctl start {label})"
                    ),
                ),
            }
            if label == "apache2" {
                if !server.cgi_module {
                    r.fail(
                        "apache2 cgi",
                        "apache2 has a ScriptAlias for deploy-hook but neither mod_cgid nor mod_cgi is loaded",
                        "a2enmod cgid && systemctl restart apache2",
                    );
                }
                match &server.user {
                    Some(u) if u == "root" => r.fail(
                        "apache2 user",
                        "apache2 runs CGIs as root: every delivery runs deploy-hook, and so every build, as root",
                        format!("set User and Group to {} in apache2's envvars (APACHE_RUN_USER), then restart it", privilege_fix_user(&builder)),
                    ),
                    Some(u) if *u == builder => r.ok(
                        "apache2 user",
                        format!("apache2 runs CGIs as {u}, the owner of the state folder"),
                    ),
                    Some(u) => r.fail(
                        "apache2 user",
                        format!(
                            "apache2 runs CGIs as {u}, but {builder} owns the state folder {}: deliveries cannot write it",
                            ctx.cfg.state_dir.display()
                        ),
                        format!("chown -R {u}: {} (and the repo and publish target)", ctx.cfg.state_dir.display()),
                    ),
                    None => {}
                }
            }
        }
        if !self.nginx.entries.is_empty() && !self.apache.entries.is_empty() {
            let state = |s: &Server| if s.pid.is_some() { "running" } else { "not running" };
            r.warn(
                "web server",
                format!(
                    "both nginx ({}) and Apache ({}) have a config that runs deploy-hook: a forge's URL reaches the one that answers on its host and port",
                    state(&self.nginx),
                    state(&self.apache)
                ),
            );
        }
        self.check_routes(ctx, r);
        if runs_us == 0 && !unreadable.is_empty() {
            r.skip(
                "web server",
                format!(
                    "whether a web server runs deploy-hook was not checked: {} could not be read as {}{}",
                    unreadable.iter().map(|l| format!("{l}'s config")).collect::<Vec<_>>().join(" and "),
                    self.gathered_as,
                    if self.gathered_as == "root" {
                        String::new()
                    } else {
                        format!(
                            "; run check as root (deploy-hook check): it reads the web server's config as root, then checks the hooks as {}",
                            ctx.user
                        )
                    }
                ),
            );
        } else if runs_us == 0 && (self.nginx.found.is_some() || self.apache.found.is_some()) {
            r.warn(
                "web server",
                "no nginx location or Apache ScriptAlias runs deploy-hook yet: deliveries cannot reach it (docs/setup.md: nginx + fcgiwrap, or Apache)",
            );
        }
        // fcgiwrap matters when nginx hands deploy-hook to it.
        let sockets: Vec<String> = {
            let mut s: Vec<String> = self.nginx.entries.iter().filter_map(|e| e.socket.clone()).collect();
            s.sort();
            s.dedup();
            s
        };
        for sock in &sockets {
            self.check_fcgiwrap(sock, &builder, ctx, r);
        }
    }

    fn check_entry(&self, ctx: &Ctx, label: &str, e: &Entry, r: &mut Report) {
        let item = format!("{label} {}", e.name);
        let this = std::fs::metadata("/proc/self/exe").ok().map(|m| (m.dev(), m.ino()));
        let target = std::fs::metadata(&e.program).ok().map(|m| (m.dev(), m.ino()));
        let me = std::fs::read_link("/proc/self/exe")
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "this binary".into());
        match target {
            None => r.fail(
                &item,
                format!("{label}: {} runs {}, which does not exist", e.name, e.program),
                format!("point it at {me} (SCRIPT_FILENAME / ScriptAlias), then reload {label}"),
            ),
            Some(t) if Some(t) != this => r.fail(
                &item,
                format!(
                    "{label}: {} runs {}, not this deploy-hook ({me}): deliveries run another copy",
                    e.name, e.program
                ),
                format!(
                    "point it at {me} (SCRIPT_FILENAME / ScriptAlias), or remove the other copy; then reload {label}"
                ),
            ),
            Some(_) => {
                let how = if e.path_info {
                    "/hooks/NAME reaches it with PATH_INFO"
                } else {
                    "it passes no PATH_INFO, so only /hooks/?hook=NAME (or one hook alone) reaches a hook"
                };
                r.ok(
                    &item,
                    format!("{label}: {} runs {} (this binary); {how}", e.name, e.program),
                );
            }
        }
        self.check_entry_config(ctx, label, e, r);
    }

    /// The config a location makes deploy-hook read must be there, and readable by the
    /// build's user: without it every delivery through the location is answered 500.
    fn check_entry_config(&self, ctx: &Ctx, label: &str, e: &Entry, r: &mut Report) {
        let item = format!("{label} {} config", e.name);
        let (path, how) = match &e.config {
            Some(c) => (PathBuf::from(c), format!("passes DEPLOY_HOOK_CONFIG={c}")),
            None => (
                PathBuf::from(crate::config::DEFAULT_CONFIG),
                format!(
                    "passes no DEPLOY_HOOK_CONFIG, so deploy-hook reads {}",
                    crate::config::DEFAULT_CONFIG
                ),
            ),
        };
        let set = if label == "nginx" {
            format!(
                "fastcgi_param DEPLOY_HOOK_CONFIG {};` in that location ({}), then nginx -s reload",
                ctx.cfg.file.display(),
                e.file
            )
        } else {
            format!(
                "SetEnv DEPLOY_HOOK_CONFIG {}` in its <Location> ({}), then apache2ctl graceful",
                ctx.cfg.file.display(),
                e.file
            )
        };
        match std::fs::File::open(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => r.fail(
                &item,
                format!(
                    "{label}: {} {how}, which does not exist: every delivery through it is answered 500",
                    e.name
                ),
                format!("write `{set}"),
            ),
            Err(err) => r.fail(
                &item,
                format!(
                    "{label}: {} {how}, which {} cannot read ({err}): every delivery through it is answered 500",
                    e.name, ctx.user
                ),
                format!(
                    "chown root:{u} {f} && chmod 640 {f} (and let {u} into its folder), or write `{set}",
                    u = ctx.user,
                    f = path.display()
                ),
            ),
            Ok(f) => {
                let same = match (f.metadata(), std::fs::metadata(&ctx.cfg.file)) {
                    (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                    _ => false,
                };
                if !same {
                    r.warn(
                        &item,
                        format!(
                            "{label}: {} {how}, not {} checked here: run check --config {}",
                            e.name,
                            ctx.cfg.file.display(),
                            path.display()
                        ),
                    );
                }
            }
        }
    }

    /// Where `/hooks/NAME` goes, for every hook of the config, in each nginx server that
    /// runs deploy-hook: to a location that passes the hook's name, or, with several hooks,
    /// one that does not (deploy-hook cannot tell which hook is meant: 404).
    fn check_routes(&self, ctx: &Ctx, r: &mut Report) {
        let server = &self.nginx;
        let ours: Vec<&Vhost> = server
            .vhosts
            .iter()
            .filter(|v| v.locations.iter().any(|l| l.entry.is_some()))
            .collect();
        if ours.is_empty() {
            return;
        }
        let hooks: Vec<&str> = ctx.cfg.hooks.keys().map(String::as_str).collect();
        // Per hook, the best any server does with its URL: 3 with the name, 2 cannot tell,
        // 1 without the name (this entry), 0 not to deploy-hook at all.
        let mut named = Vec::new();
        let mut unnamed: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        let mut elsewhere = Vec::new();
        let mut unknown: Option<String> = None;
        for h in &hooks {
            let uri = format!("/hooks/{h}");
            let mut best: (u8, Option<usize>) = (0, None);
            for v in &ours {
                let found = match nginx::route(v, &uri) {
                    Route::To(i) => match v.locations[i].entry {
                        Some(e) if server.entries[e].path_info => (3, Some(e)),
                        Some(e) => (1, Some(e)),
                        None => (0, None),
                    },
                    Route::Nowhere => (0, None),
                    Route::Unknown(p) => {
                        unknown = Some(p);
                        (2, None)
                    }
                };
                if found.0 > best.0 {
                    best = found;
                }
            }
            match best {
                (3, _) => named.push(*h),
                (1, Some(e)) => unnamed.entry(e).or_default().push(*h),
                (2, _) => {}
                _ => elsewhere.push(*h),
            }
        }
        let urls = |hs: &[&str]| hs.iter().map(|h| format!("/hooks/{h}")).collect::<Vec<_>>().join(", ");
        if !named.is_empty() {
            r.ok(
                "nginx /hooks/NAME",
                format!(
                    "nginx: {} reach{} deploy-hook with the hook's name (PATH_INFO)",
                    urls(&named),
                    if named.len() == 1 { "es" } else { "" }
                ),
            );
        }
        for (e, hs) in &unnamed {
            let entry = &server.entries[*e];
            let what = format!(
                "nginx: {} reach{} {} ({}), which passes no PATH_INFO",
                urls(hs),
                if hs.len() == 1 { "es" } else { "" },
                entry.name,
                entry.file
            );
            if hooks.len() == 1 {
                r.ok(
                    "nginx /hooks/NAME",
                    format!("{what}: enough while the config has one hook (deploy-hook takes the only one); a second hook needs the name passed"),
                );
            } else {
                r.fail(
                    "nginx /hooks/NAME",
                    format!(
                        "{what}: with {} hooks in the config, deploy-hook cannot tell which one a delivery there is for, and answers 404 to every one",
                        hooks.len()
                    ),
                    format!(
                        "pass the name as the shipped site does (nginx/deploy-hook.conf): a location ~ \"^/hooks/(?<deploy_hook_name>[A-Za-z0-9_-]{{1,64}})/?$\" with fastcgi_param PATH_INFO /$deploy_hook_name; in {}, then nginx -s reload; or give the forge /hooks/?hook=NAME",
                        entry.file
                    ),
                );
            }
        }
        if !elsewhere.is_empty() {
            r.warn(
                "nginx /hooks/NAME",
                format!(
                    "nginx: {} reach{} no location that runs deploy-hook (a forge given that URL gets 404 or 405): give the forge the URL of the location that does",
                    urls(&elsewhere),
                    if elsewhere.len() == 1 { "es" } else { "" }
                ),
            );
        }
        if let Some(p) = unknown {
            r.skip(
                "nginx /hooks/NAME",
                format!("nginx: where /hooks/NAME goes was not decided: check cannot read the regex of location ~ {p}"),
            );
        }
    }

    /// The servers that are installed but whose config could not be read (as this user).
    pub(super) fn unreadable(&self) -> Vec<&'static str> {
        [("nginx", &self.nginx), ("apache2", &self.apache)]
            .into_iter()
            .filter(|(_, s)| s.found.is_some() && s.error.is_some())
            .map(|(l, _)| l)
            .collect()
    }

    /// Where the stderr of a delivery goes, for each way the web servers run deploy-hook.
    pub(super) fn delivery_stderr(&self) -> Vec<DeliveryStderr> {
        let mut out = Vec::new();
        let mut sockets: Vec<&String> = self.nginx.entries.iter().filter_map(|e| e.socket.as_ref()).collect();
        sockets.sort();
        sockets.dedup();
        for sock in sockets {
            match self.fcgiwrap.iter().find(|f| f.sockets.iter().any(|s| s == sock)) {
                Some(f) if !f.forwards_stderr => out.push(DeliveryStderr::FcgiwrapOwn {
                    pid: f.pid,
                    target: f.stderr.clone().unwrap_or_else(|| "(unknown)".into()),
                }),
                // -f, or started on the first request by Debian's unit (which passes -f).
                _ => out.push(DeliveryStderr::NginxErrorLog),
            }
        }
        if !self.apache.entries.is_empty() {
            out.push(DeliveryStderr::ApacheErrorLog(self.apache.error_log.clone()));
        }
        out.dedup();
        out
    }

    fn check_fcgiwrap(&self, sock: &str, builder: &str, ctx: &Ctx, r: &mut Report) {
        let item = format!("fcgiwrap {sock}");
        let meta = match std::fs::metadata(sock) {
            Ok(m) if m.file_type().is_socket() => m,
            Ok(_) => {
                r.fail(
                    &item,
                    format!("{sock}, where nginx sends deliveries, is not a socket"),
                    format!(
                        "remove it and start fcgiwrap: systemctl restart fcgiwrap.socket (or spawn-fcgi -s {sock} ...)"
                    ),
                );
                return;
            }
            Err(_) => {
                r.fail(
                    &item,
                    format!("fcgiwrap's socket {sock} is not there: nginx answers 502 to every delivery"),
                    format!(
                        "systemctl enable --now fcgiwrap.socket, or: spawn-fcgi -s {sock} -M 0660 -u {builder} -g {builder} -U www-data -G www-data -- /usr/sbin/fcgiwrap -f"
                    ),
                );
                return;
            }
        };
        let serving: Vec<&Fcgiwrap> = self
            .fcgiwrap
            .iter()
            .filter(|f| f.sockets.iter().any(|s| s == sock))
            .collect();
        let (uid, whose) = match serving.first() {
            Some(f) => (f.uid, format!("fcgiwrap (pid {}) serving {sock} runs as", f.pid)),
            // Socket-activated (systemd starts fcgiwrap on the first request): the socket's
            // owner is the user the unit runs it as on Debian.
            None => (
                meta.uid(),
                format!("no fcgiwrap runs yet on {sock}; its owner, who starts it, is"),
            ),
        };
        let name = privilege::user_by_uid(uid)
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {uid}"));
        if uid == 0 {
            let web = privilege_fix_user(builder);
            r.fail(
                &item,
                format!(
                    "{whose} root: every delivery runs deploy-hook, and so every build and whatever a push puts in the repo, started as root"
                ),
                format!(
                    "run fcgiwrap as {web}: spawn-fcgi -s {sock} -M 0660 -u {web} -g {web} -U www-data -G www-data -- /usr/sbin/fcgiwrap -f (or the unit's User={web}){}",
                    if builder == "root" {
                        format!(", and give it the hooks: chown -R {web}: {} and each repo and publish target", ctx.cfg.state_dir.display())
                    } else {
                        String::new()
                    }
                ),
            );
        } else if name == builder {
            r.ok(&item, format!("{whose} {name}, the owner of the state folder"));
        } else {
            r.fail(
                &item,
                format!(
                    "{whose} {name}, but {builder} owns the state folder {}: deliveries cannot write it",
                    ctx.cfg.state_dir.display()
                ),
                format!(
                    "run fcgiwrap as {builder} (spawn-fcgi -u {builder} ..., or the unit's User=), or chown -R {name}: {} and the repo and publish target",
                    ctx.cfg.state_dir.display()
                ),
            );
        }
    }
}

/// The user a fix should name for the web server: the builder, unless that is root (then
/// the web server's usual user).
fn privilege_fix_user(builder: &str) -> &str {
    if builder == "root" {
        super::DEFAULT_WEB_USER
    } else {
        builder
    }
}
