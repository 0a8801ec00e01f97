//! The web server that starts deploy-hook, as it is configured and running now: the
//! nginx config in use (`nginx -T`), Apache's (`apache2ctl -S`, `-t -D DUMP_INCLUDES`,
//! `-M`), fcgiwrap's socket and the user it runs as. A location that runs another copy of
//! the binary, sends no hook name, or a fcgiwrap that runs as someone other than the
//! owner of the state folder breaks deliveries while the config itself is fine.
//!
//! What needs root (reading the whole server config, other users' processes) is gathered
//! by `Observed::gather` before `check` becomes the build's user; the verdicts come after.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Ctx, Report};
use crate::sys::privilege;
use crate::sys::process::{which, Exit, Process};

/// How long `nginx -T`, `apache2ctl -S` and the like may take.
const WEB_TIMEOUT: Duration = Duration::from_secs(30);

/// Debian's fcgiwrap.socket unit listens here.
const DEFAULT_FCGIWRAP_SOCKET: &str = "/run/fcgiwrap.socket";

/// A location (nginx) or ScriptAlias (Apache) that runs deploy-hook.
#[derive(Debug, Clone)]
struct Entry {
    /// How the config names it, e.g. `location ~ "^/hooks/..."`.
    name: String,
    /// SCRIPT_FILENAME, or the ScriptAlias target.
    program: String,
    /// The hook's name reaches us as PATH_INFO.
    path_info: bool,
    /// `DEPLOY_HOOK_CONFIG` it passes, if any.
    config: Option<String>,
    /// nginx: the `unix:` socket of its fastcgi_pass.
    socket: Option<String>,
}

/// What one web server's config says, or why it could not be read.
#[derive(Debug, Default)]
struct Server {
    /// `None`: not installed.
    found: Option<PathBuf>,
    /// The config could not be dumped: the first error line.
    error: Option<String>,
    entries: Vec<Entry>,
    /// Apache: the user it runs CGIs as, and whether mod_cgi(d) is loaded.
    user: Option<String>,
    cgi_module: bool,
}

/// A running fcgiwrap: its uid and the unix sockets it listens on.
#[derive(Debug)]
struct Fcgiwrap {
    pid: u32,
    uid: u32,
    sockets: Vec<String>,
}

#[derive(Debug, Default)]
pub(super) struct Observed {
    nginx: Server,
    apache: Server,
    fcgiwrap: Vec<Fcgiwrap>,
}

fn output(program: &Path, args: &[&str], path: &str) -> std::io::Result<(bool, String, String)> {
    let mut p = Process::new(program.to_string_lossy());
    p.args(args)
        .env_var("PATH", path)
        .env_var("LANG", "C")
        .timeout(WEB_TIMEOUT)
        // A full nginx -T of a big site is a few MB.
        .capture_limit(64 << 20);
    let done = p.output();
    if let Exit::NotStarted(why) = done.exit {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, why));
    }
    Ok((
        done.exit.success(),
        String::from_utf8_lossy(&done.stdout).into_owned(),
        String::from_utf8_lossy(&done.stderr).into_owned(),
    ))
}

fn first_error(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("emerg") || l.contains("error") || l.contains("denied") || l.contains("failed"))
        .or_else(|| stderr.lines().next())
        .unwrap_or("no output")
        .trim()
        .to_string()
}

impl Observed {
    pub(super) fn gather(admin_path: &str) -> Observed {
        Observed {
            nginx: gather_nginx(admin_path),
            apache: gather_apache(admin_path),
            fcgiwrap: gather_fcgiwrap(),
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
                        format!("{label}'s config could not be read ({e}); run check as root to read it"),
                    );
                    continue;
                }
                _ => {}
            }
            if server.entries.is_empty() {
                let what = if label == "nginx" { "location" } else { "ScriptAlias" };
                r.ok(&item, format!("{label}: no {what} runs deploy-hook"));
                continue;
            }
            for e in &server.entries {
                runs_us += 1;
                self.check_entry(ctx, label, e, r);
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
        if runs_us == 0 && (self.nginx.found.is_some() || self.apache.found.is_some()) {
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
        if let Some(c) = &e.config {
            if Path::new(c) != ctx.cfg.file.as_path() {
                r.warn(
                    &format!("{item} config"),
                    format!(
                        "{label}: {} passes DEPLOY_HOOK_CONFIG={c}, not {} checked here: run check --config {c}",
                        e.name,
                        ctx.cfg.file.display()
                    ),
                );
            }
        }
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
        if name == builder {
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

// ---- nginx -------------------------------------------------------------------------

fn gather_nginx(path: &str) -> Server {
    let Some(nginx) = which("nginx", path) else {
        return Server::default();
    };
    let mut s = Server {
        found: Some(nginx.clone()),
        ..Server::default()
    };
    match output(&nginx, &["-T"], path) {
        Ok((true, stdout, _)) => s.entries = nginx_entries(&stdout),
        Ok((false, _, stderr)) => s.error = Some(first_error(&stderr)),
        Err(e) => s.error = Some(e.to_string()),
    }
    s
}

/// A directive: `name args;` or `name args { block }`.
#[derive(Debug, Clone)]
struct Directive {
    name: String,
    args: Vec<String>,
    block: Option<Vec<Directive>>,
}

/// Splits nginx config text into words, `{`, `}` and `;`, without comments and quotes.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '{' | '}' | ';' => out.push(c.to_string()),
            '"' | '\'' => {
                let mut w = String::new();
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                w.push(e);
                            }
                        }
                        d if d == c => break,
                        d => w.push(d),
                    }
                }
                out.push(w);
            }
            c if c.is_whitespace() => {}
            c => {
                let mut w = c.to_string();
                while let Some(&d) = chars.peek() {
                    if d.is_whitespace() || "{};".contains(d) {
                        break;
                    }
                    w.push(d);
                    chars.next();
                }
                out.push(w);
            }
        }
    }
    out
}

fn parse_block(tokens: &[String], i: &mut usize) -> Vec<Directive> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    while *i < tokens.len() {
        let t = &tokens[*i];
        *i += 1;
        match t.as_str() {
            ";" => {
                if !words.is_empty() {
                    out.push(Directive {
                        name: words.remove(0),
                        args: std::mem::take(&mut words),
                        block: None,
                    });
                }
            }
            "{" => {
                let block = parse_block(tokens, i);
                if !words.is_empty() {
                    out.push(Directive {
                        name: words.remove(0),
                        args: std::mem::take(&mut words),
                        block: Some(block),
                    });
                }
            }
            "}" => return out,
            _ => words.push(t.clone()),
        }
    }
    out
}

/// `*` and `?` as nginx's include globs use them.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Replaces every `include` with the directives of the files it names, as `nginx -T`
/// printed them.
fn expand(
    directives: Vec<Directive>,
    files: &BTreeMap<String, Vec<Directive>>,
    base: &Path,
    depth: usize,
) -> Vec<Directive> {
    let mut out = Vec::new();
    for mut d in directives {
        if d.name == "include" && d.block.is_none() && depth < 16 {
            if let Some(arg) = d.args.first() {
                let pattern = if arg.starts_with('/') {
                    arg.clone()
                } else {
                    base.join(arg).display().to_string()
                };
                for (file, ds) in files {
                    if glob_match(&pattern, file) {
                        out.extend(expand(ds.clone(), files, base, depth + 1));
                    }
                }
            }
            continue;
        }
        if let Some(b) = d.block.take() {
            d.block = Some(expand(b, files, base, depth + 1));
        }
        out.push(d);
    }
    out
}

/// Every location that hands a request to a program named deploy-hook, from `nginx -T`.
fn nginx_entries(dump: &str) -> Vec<Entry> {
    let mut files: BTreeMap<String, Vec<Directive>> = BTreeMap::new();
    let mut order = Vec::new();
    let mut current: Option<(String, String)> = None;
    let flush = |cur: Option<(String, String)>, files: &mut BTreeMap<String, Vec<Directive>>| {
        if let Some((name, text)) = cur {
            let t = tokens(&text);
            let mut i = 0;
            files.insert(name, parse_block(&t, &mut i));
        }
    };
    for line in dump.lines() {
        if let Some(name) = line
            .strip_prefix("# configuration file ")
            .and_then(|l| l.strip_suffix(':'))
        {
            flush(current.take(), &mut files);
            order.push(name.to_string());
            current = Some((name.to_string(), String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    flush(current.take(), &mut files);
    let Some(main) = order.first() else {
        return Vec::new();
    };
    let base = Path::new(main)
        .parent()
        .unwrap_or(Path::new("/etc/nginx"))
        .to_path_buf();
    let root = expand(files.get(main).cloned().unwrap_or_default(), &files, &base, 0);
    let mut entries = Vec::new();
    collect_locations(&root, &[], &mut entries);
    entries
}

/// The value of `fastcgi_param NAME value` in `ds`, the last one winning.
fn param<'a>(ds: &'a [Directive], name: &str) -> Option<&'a str> {
    ds.iter()
        .filter(|d| d.name == "fastcgi_param" && d.args.first().map(String::as_str) == Some(name))
        .filter_map(|d| d.args.get(1).map(String::as_str))
        .next_back()
}

fn collect_locations(ds: &[Directive], outer: &[&[Directive]], out: &mut Vec<Entry>) {
    for d in ds {
        let Some(block) = &d.block else {
            continue;
        };
        if d.name == "location" {
            // fastcgi_param is inherited from outer levels only by a block that sets none.
            let own = block.iter().any(|x| x.name == "fastcgi_param");
            let lookup = |name: &str| {
                if own {
                    param(block, name)
                } else {
                    outer.iter().rev().find_map(|o| param(o, name))
                }
            };
            let script = lookup("SCRIPT_FILENAME");
            let config = lookup("DEPLOY_HOOK_CONFIG");
            let is_us = script.is_some_and(|s| {
                Path::new(s)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("deploy-hook"))
            }) || config.is_some();
            if is_us {
                let path_info = lookup("PATH_INFO").is_some_and(|v| !v.is_empty() && v != "$fastcgi_path_info")
                    || block.iter().any(|x| x.name == "fastcgi_split_path_info");
                let socket = block
                    .iter()
                    .rev()
                    .find(|x| x.name == "fastcgi_pass")
                    .and_then(|x| x.args.first())
                    .and_then(|a| a.strip_prefix("unix:"))
                    .map(str::to_string);
                out.push(Entry {
                    name: format!("location {}", d.args.join(" ")),
                    program: script.unwrap_or("(no SCRIPT_FILENAME)").to_string(),
                    path_info,
                    config: config.map(str::to_string),
                    socket: socket.or_else(|| Some(DEFAULT_FCGIWRAP_SOCKET.to_string())),
                });
            }
        }
        let mut next: Vec<&[Directive]> = outer.to_vec();
        next.push(ds);
        collect_locations(block, &next, out);
    }
}

// ---- Apache ------------------------------------------------------------------------

fn gather_apache(path: &str) -> Server {
    let Some(ctl) = which("apache2ctl", path).or_else(|| which("apachectl", path)) else {
        return Server::default();
    };
    let mut s = Server {
        found: Some(ctl.clone()),
        ..Server::default()
    };
    let files = match output(&ctl, &["-t", "-D", "DUMP_INCLUDES"], path) {
        Ok((true, stdout, _)) => stdout
            .lines()
            .filter_map(|l| l.trim().split_once(") ").map(|(_, f)| f.trim().to_string()))
            .collect::<Vec<_>>(),
        Ok((false, _, stderr)) => {
            s.error = Some(first_error(&stderr));
            return s;
        }
        Err(e) => {
            s.error = Some(e.to_string());
            return s;
        }
    };
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines() {
            let words = tokens(line);
            if words.first().is_some_and(|w| w.eq_ignore_ascii_case("ScriptAlias")) && words.len() >= 3 {
                let target = &words[2];
                if Path::new(target)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("deploy-hook"))
                {
                    s.entries.push(Entry {
                        name: format!("ScriptAlias {} ({f})", words[1]),
                        program: target.clone(),
                        // The rest of the URL after the alias is PATH_INFO.
                        path_info: true,
                        config: None,
                        socket: None,
                    });
                }
            }
            if words.first().is_some_and(|w| w.eq_ignore_ascii_case("SetEnv"))
                && words.get(1).is_some_and(|w| w == crate::config::CONFIG_ENV)
            {
                if let (Some(e), Some(v)) = (s.entries.last_mut(), words.get(2)) {
                    e.config = Some(v.clone());
                }
            }
        }
    }
    if let Ok((_, stdout, _)) = output(&ctl, &["-S"], path) {
        s.user = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("User: name=\""))
            .and_then(|l| l.split('"').next())
            .map(str::to_string);
    }
    if let Ok((_, stdout, _)) = output(&ctl, &["-M"], path) {
        s.cgi_module = stdout.lines().any(|l| {
            let l = l.trim();
            l.starts_with("cgid_module") || l.starts_with("cgi_module")
        });
    }
    s
}

// ---- fcgiwrap ----------------------------------------------------------------------

/// Running fcgiwrap processes and the unix sockets they hold (from /proc/net/unix, by
/// inode). Other users' /proc/PID/fd are readable by root only: gathered before the switch.
fn gather_fcgiwrap() -> Vec<Fcgiwrap> {
    let mut by_inode: BTreeMap<String, String> = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string("/proc/net/unix") {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 8 {
                by_inode.insert(f[6].to_string(), f[7].to_string());
            }
        }
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "fcgiwrap" {
            continue;
        }
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        let mut sockets = Vec::new();
        for fd in std::fs::read_dir(entry.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let l = link.to_string_lossy();
                if let Some(inode) = l.strip_prefix("socket:[").and_then(|x| x.strip_suffix(']')) {
                    if let Some(p) = by_inode.get(inode) {
                        sockets.push(p.clone());
                    }
                }
            }
        }
        out.push(Fcgiwrap {
            pid,
            uid: meta.uid(),
            sockets,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dumped_config_yields_the_locations_that_run_us() {
        let dump = "# configuration file /etc/nginx/nginx.conf:\nhttp { include /etc/nginx/sites-enabled/*; }\n\n\
# configuration file /etc/nginx/sites-enabled/hook:\nserver {\n  location ~ \"^/hooks/(?<n>[a-z]{1,64})$\" {\n    include snippets/dh.conf;\n    fastcgi_param PATH_INFO /$n;\n  }\n  location = /hooks/ { include snippets/dh.conf; } # comment ; {\n  location / { root /var/www; }\n}\n\n\
# configuration file /etc/nginx/snippets/dh.conf:\nfastcgi_param SCRIPT_FILENAME /usr/bin/deploy-hook;\nfastcgi_pass unix:/run/x.sock;\n";
        let e = nginx_entries(dump);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].path_info && !e[1].path_info);
        assert_eq!(e[0].program, "/usr/bin/deploy-hook");
        assert_eq!(e[1].socket.as_deref(), Some("/run/x.sock"));
        assert!(e[0].name.contains("^/hooks/"));
    }

    #[test]
    fn globs_match_like_nginx_includes() {
        assert!(glob_match("/etc/nginx/sites-enabled/*", "/etc/nginx/sites-enabled/a"));
        assert!(!glob_match("/etc/nginx/conf.d/*.conf", "/etc/nginx/conf.d/a.txt"));
    }
}
