//! What the web servers are, gathered before `check` becomes the build's user (reading
//! the whole server config and other users' processes needs root): nginx's config in use
//! (`nginx -T`), Apache's (`apache2ctl -t -D DUMP_INCLUDES`, `-S`, `-M`), whether each
//! runs (the live process its pid file names), and the running fcgiwrap processes. The
//! verdicts on all of it are `web.rs`'s.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::nginx::{self, Vhost};
use super::web::Entry;
use crate::sys::process::{which, Exit, Process};

/// How long `nginx -T`, `apache2ctl -S` and the like may take.
const WEB_TIMEOUT: Duration = Duration::from_secs(30);

/// What one web server's config says, or why it could not be read.
#[derive(Debug, Default)]
pub(super) struct Server {
    /// `None`: not installed.
    pub(super) found: Option<PathBuf>,
    /// The config could not be dumped: the first error line.
    pub(super) error: Option<String>,
    pub(super) entries: Vec<Entry>,
    /// nginx: its servers and their locations.
    pub(super) vhosts: Vec<Vhost>,
    /// Apache: the user it runs CGIs as, whether mod_cgi(d) is loaded, its main ErrorLog.
    pub(super) user: Option<String>,
    pub(super) cgi_module: bool,
    pub(super) error_log: Option<String>,
    /// The pid file its config names, and the live server process it holds, if any:
    /// a config that runs deploy-hook serves nothing while its server is stopped.
    pub(super) pid_file: Option<String>,
    pub(super) pid: Option<u32>,
}

impl Server {
    /// How its config names the thing that runs deploy-hook.
    pub(super) fn what(label: &str) -> &'static str {
        if label == "nginx" {
            "location"
        } else {
            "ScriptAlias"
        }
    }
}

/// The pid in `pid_file` when it is a live process named one of `names` (the master of
/// nginx, Apache's parent): whether that server runs now, as `service X status` decides.
fn live_pid(pid_file: &str, names: &[&str]) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    names.contains(&comm.trim()).then_some(pid)
}

/// A running fcgiwrap: its uid, the unix sockets it listens on, and where a CGI's stderr
/// goes: to nginx with `-f`, else to fcgiwrap's own stderr (`/dev/null` once spawn-fcgi
/// has daemonized it).
#[derive(Debug)]
pub(super) struct Fcgiwrap {
    pub(super) pid: u32,
    pub(super) uid: u32,
    pub(super) sockets: Vec<String>,
    pub(super) forwards_stderr: bool,
    pub(super) stderr: Option<String>,
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

// ---- nginx -------------------------------------------------------------------------

pub(super) fn gather_nginx(path: &str) -> Server {
    let Some(nginx) = which("nginx", path) else {
        return Server::default();
    };
    let mut s = Server {
        found: Some(nginx.clone()),
        ..Server::default()
    };
    match output(&nginx, &["-T"], path) {
        Ok((true, stdout, _)) => {
            let parsed = nginx::parse(&stdout);
            s.entries = parsed.entries;
            s.vhosts = parsed.vhosts;
            // The `pid` directive of the config in use, else the one nginx was built with.
            let pid_file = stdout
                .lines()
                .find_map(|l| {
                    let t = nginx::tokens(l);
                    (t.len() >= 2 && t[0] == "pid").then(|| t[1].clone())
                })
                .or_else(|| {
                    let (_, _, built) = output(&nginx, &["-V"], path).ok()?;
                    built
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("--pid-path="))
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "/run/nginx.pid".into());
            s.pid = live_pid(&pid_file, &["nginx"]);
            s.pid_file = Some(pid_file);
        }
        Ok((false, _, stderr)) => s.error = Some(first_error(&stderr)),
        Err(e) => s.error = Some(e.to_string()),
    }
    s
}

// ---- Apache ------------------------------------------------------------------------

pub(super) fn gather_apache(path: &str) -> Server {
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
            let words = nginx::tokens(line);
            if words.first().is_some_and(|w| w.eq_ignore_ascii_case("ScriptAlias")) && words.len() >= 3 {
                let target = &words[2];
                if Path::new(target)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("deploy-hook"))
                {
                    s.entries.push(Entry {
                        name: format!("ScriptAlias {} ({f})", words[1]),
                        file: f.clone(),
                        program: target.clone(),
                        // The rest of the URL after the alias is PATH_INFO.
                        path_info: true,
                        config: None,
                        alias: Some(words[1].clone()),
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
        s.error_log = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Main ErrorLog: \""))
            .and_then(|l| l.split('"').next())
            .map(str::to_string);
        s.pid_file = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("PidFile: \""))
            .and_then(|l| l.split('"').next())
            .map(str::to_string);
        s.pid = s.pid_file.as_deref().and_then(|f| live_pid(f, &["apache2", "httpd"]));
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
pub(super) fn gather_fcgiwrap() -> Vec<Fcgiwrap> {
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
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let forwards_stderr = cmdline.split(|b| *b == 0).any(|a| a == b"-f");
        let stderr = std::fs::read_link(entry.path().join("fd/2"))
            .ok()
            .map(|p| p.display().to_string());
        out.push(Fcgiwrap {
            pid,
            uid: meta.uid(),
            sockets,
            forwards_stderr,
            stderr,
        });
    }
    out
}
