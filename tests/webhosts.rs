//! Web hosts for the tests: per host a real `sshd -f CONF` on a loopback port, with its own
//! host key, its own authorized client key and its own target folder, and a real nginx
//! serving that folder on its own port. An `ssh_config` with the aliases web1, web2, ...
//! and a `known_hosts` holding each host's key make `ssh -F <ssh_config> web1` work in
//! batch mode, as a user would set it up.
//!
//! Every host logs in the same system user, `deploy-hook-web` (made here when missing,
//! with /bin/sh as its shell), who owns the host's folders: not root, so an unwritable
//! folder is really unwritable. sshd's `SetEnv PATH` puts the host's `bin/` first: the
//! `mv` and `rsync` there are the real ones unless a fault flag file in the host's
//! `faults/` folder says otherwise (`fail-switch`: mv over the served path fails;
//! `hold-switch`: the next mv over the served path, taking the flag, writes `switch-held`
//! and waits for `release-switch`, then renames and writes `switch-done`: a switch that
//! answers late; `hold-upload`: rsync on the host waits, after writing `uploading`, until
//! the flag goes; `huge-answer`: the `sh` a session runs first prints 128 MiB with no
//! newline).
//!
//! Nothing is installed here: `tests/run.sh` installs openssh-server, openssh-client,
//! rsync and nginx. Every daemon, and every process under it (sshd's sessions), is killed
//! and waited for when its guard drops: PID 1 here does not reap orphans.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use crate::util::*;

pub const WEB_USER: &str = "deploy-hook-web";

fn sbin(name: &str) -> PathBuf {
    system_program(name, "openssh-server openssh-client rsync nginx")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The web hosts' login user, made once per machine; and sshd's privilege separation folder.
fn ensure_user() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !Command::new("id")
            .arg("-u")
            .arg(WEB_USER)
            .output()
            .unwrap()
            .status
            .success()
        {
            run(Command::new(sbin("useradd")).args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/",
                "--shell",
                "/bin/sh",
                WEB_USER,
            ]));
        }
        // A locked account ("!") may not log in even with a key when sshd runs without PAM.
        run(Command::new(sbin("usermod")).args(["-p", "*", WEB_USER]));
        fs::create_dir_all("/run/sshd").unwrap();
        fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755)).unwrap();
    });
}

fn chown_web(path: &Path) {
    run(Command::new("chown").arg("-R").arg(format!("{WEB_USER}:")).arg(path));
}

fn keygen(file: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "deploy-hook-test", "-f"])
        .arg(file));
}

/// The pids of every process below `pid`, children first found, by /proc's parent links.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parents = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|x| x.parse::<i32>().ok());
        if let Some(pp) = ppid {
            parents.push((p, pp));
        }
    }
    let mut out = vec![];
    let mut frontier = vec![pid];
    while let Some(x) = frontier.pop() {
        for (p, pp) in &parents {
            if *pp == x && !out.contains(p) {
                out.push(*p);
                frontier.push(*p);
            }
        }
    }
    out
}

/// A daemon and everything it started, killed and waited for when dropped.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    fn spawn(cmd: &mut Command) -> Daemon {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        Daemon { child }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // sshd's sessions leave its process group (setsid): find them by parentage.
        for p in descendants(pid) {
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
        }
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16, what: &str) {
    wait_for(what, Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// One web host: sshd + nginx + its folders.
pub struct Host {
    pub name: String,
    pub dir: PathBuf,
    /// The served path (`publish.hosts`' path): `<dir>/www/site`, a symlink once published.
    pub path: PathBuf,
    pub ssh_port: u16,
    pub http_port: u16,
    sshd: Option<Daemon>,
    _nginx: Daemon,
}

impl Host {
    fn start(dir: &Path, name: &str, site: &str) -> Host {
        let dir = dir.join(name);
        for sub in ["www", "bin", "faults", "nginx"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let path = dir.join("www").join(site);
        keygen(&dir.join("ssh_host_ed25519_key"));
        keygen(&dir.join("client_key"));
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        // The fault switches: real mv and rsync unless a flag says otherwise.
        let faults = dir.join("faults");
        let quoted = format!("'{}'", path.display().to_string().replace('\'', "'\\''"));
        fs::write(
            dir.join("bin/mv"),
            format!(
                "#!/bin/sh\nfor last; do :; done\nif [ \"$last\" = {p} ]; then\n  if [ -e {f}/fail-switch ]; then echo \"mv: injected fault on {name}: cannot replace $last\" >&2; exit 1; fi\n  if [ -e {f}/hold-switch ]; then rm -f {f}/hold-switch; : > {f}/switch-held; while [ ! -e {f}/release-switch ]; do sleep 0.05; done; /bin/mv \"$@\"; rc=$?; : > {f}/switch-done; exit $rc; fi\nfi\nexec /bin/mv \"$@\"\n",
                f = faults.display(),
                p = quoted
            ),
        )
        .unwrap();
        fs::write(
            dir.join("bin/rsync"),
            format!(
                "#!/bin/sh\nif [ -e {f}/hold-upload ]; then : > {f}/uploading; while [ -e {f}/hold-upload ]; do sleep 0.05; done; fi\nexec /usr/bin/rsync \"$@\"\n",
                f = faults.display()
            ),
        )
        .unwrap();
        // The session's `sh` (sshd runs `sh` through the login shell, on the PATH above).
        fs::write(
            dir.join("bin/sh"),
            format!(
                "#!/bin/sh\nif [ -e {f}/huge-answer ]; then head -c 134217728 /dev/zero | tr '\\0' x; fi\nexec /bin/sh \"$@\"\n",
                f = faults.display()
            ),
        )
        .unwrap();
        for b in ["mv", "rsync", "sh"] {
            fs::set_permissions(dir.join("bin").join(b), fs::Permissions::from_mode(0o755)).unwrap();
        }
        chown_web(&dir.join("www"));
        chown_web(&faults);

        let http_port = free_port();
        let ngx = dir.join("nginx");
        fs::write(
            ngx.join("nginx.conf"),
            format!(
                "user www-data;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\ndaemon off;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/client_body;\n  fastcgi_temp_path {d}/fastcgi;\n  proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{http_port};\n    root {root};\n    location / {{ try_files $uri =404; }}\n  }}\n}}\n",
                d = ngx.display(),
                // nginx would read `$` and quotes in a root as its own syntax.
                root = if site == "site" { path.clone() } else { dir.join("www") }.display()
            ),
        )
        .unwrap();
        run(Command::new("chown").arg("-R").arg("www-data:").arg(&ngx));
        let nginx = Daemon::spawn(
            Command::new(sbin("nginx"))
                .arg("-e")
                .arg(ngx.join("error.log"))
                .arg("-p")
                .arg(&ngx)
                .arg("-c")
                .arg(ngx.join("nginx.conf"))
                .stderr(fs::File::create(ngx.join("stderr")).unwrap()),
        );
        let mut host = Host {
            name: name.to_string(),
            dir,
            path,
            ssh_port: free_port(),
            http_port,
            sshd: None,
            _nginx: nginx,
        };
        host.start_sshd();
        wait_listening(http_port, &format!("nginx of {name}"));
        host
    }

    /// Starts (or restarts) this host's sshd on its port, with its keys.
    pub fn start_sshd(&mut self) {
        let conf = self.dir.join("sshd_config");
        fs::write(
            &conf,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/ssh_host_ed25519_key\nAuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\nAllowUsers {WEB_USER}\nPidFile none\nMaxStartups 100\nMaxSessions 50\nSetEnv PATH={d}/bin:/usr/bin:/bin\nLogLevel VERBOSE\n",
                port = self.ssh_port,
                d = self.dir.display()
            ),
        )
        .unwrap();
        self.sshd = Some(Daemon::spawn(
            Command::new(sbin("sshd"))
                .arg("-D")
                .arg("-f")
                .arg(&conf)
                .arg("-E")
                .arg(self.dir.join("sshd.log")),
        ));
        wait_listening(self.ssh_port, &format!("sshd of {}", self.name));
    }

    /// Stops this host's sshd and every session it serves: the host is down for ssh.
    pub fn stop_sshd(&mut self) {
        self.sshd = None;
    }

    pub fn fault(&self, flag: &str) -> PathBuf {
        self.dir.join("faults").join(flag)
    }

    /// The page `/NAME` as this host's nginx serves it: (status, body).
    pub fn get(&self, page: &str) -> (u16, String) {
        let r = crate::servers::http(self.http_port, "GET", page, &[], None, false);
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    }

    /// The release this host's served path points at.
    pub fn live(&self) -> Option<String> {
        fs::read_link(&self.path)
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    pub fn releases(&self) -> Vec<String> {
        let mut name = self.path.file_name().unwrap().to_os_string();
        name.push(".releases");
        let mut v: Vec<String> = fs::read_dir(self.path.with_file_name(name))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Several web hosts and the ssh setup that reaches them.
pub struct Fleet {
    pub hosts: Vec<Host>,
    pub ssh_config: PathBuf,
}

impl Fleet {
    pub fn start(w: &World, n: usize) -> Fleet {
        Fleet::start_with(w, n, "site")
    }

    /// Hosts whose served path is `<host>/www/<site>`.
    pub fn start_with(w: &World, n: usize, site: &str) -> Fleet {
        ensure_user();
        let dir = w.path("hosts");
        fs::create_dir_all(&dir).unwrap();
        let hosts: Vec<Host> = (1..=n).map(|i| Host::start(&dir, &format!("web{i}"), site)).collect();
        let known = dir.join("known_hosts");
        let ssh_config = dir.join("ssh_config");
        let (mut k, mut c) = (String::new(), String::new());
        for h in &hosts {
            let key = fs::read_to_string(h.dir.join("ssh_host_ed25519_key.pub")).unwrap();
            let key: Vec<&str> = key.split_whitespace().take(2).collect();
            k.push_str(&format!("[127.0.0.1]:{} {}\n", h.ssh_port, key.join(" ")));
            c.push_str(&format!(
                "Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User {WEB_USER}\n  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n\n",
                name = h.name,
                port = h.ssh_port,
                d = h.dir.display(),
                known = known.display()
            ));
        }
        fs::write(&known, k).unwrap();
        fs::write(&ssh_config, c).unwrap();
        Fleet { hosts, ssh_config }
    }

    /// The `[hooks.docs.publish]` lines for these hosts.
    pub fn publish_toml(&self) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| format!("{:?}", format!("{}:{}", h.name, h.path.display())))
            .collect();
        format!(
            "hosts = [{}]\nssh = [\"ssh\", \"-F\", {:?}]\n",
            hosts.join(", "),
            self.ssh_config.to_str().unwrap()
        )
    }
}
