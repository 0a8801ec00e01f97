//! Publishing one release to several web hosts, all or none, with the tools that already
//! run the internet's static fan-out: ssh and rsync. No agent and no daemon on a web host:
//! only `sh`, `ln`, `mv`, `rm` and `rsync` run there.
//!
//! As with Capistrano and Deployer, every host keeps its releases beside the served path,
//! which is a symlink to one of them; a release has the same name on every host:
//!
//! ```text
//! web1:/var/www/docs            -> docs.releases/20261128-004015-123-1a2b3c4
//! web1:/var/www/docs.releases/  one folder per release, newest last by name
//! ```
//!
//! A publish has two phases. Phase 1 uploads the release to every host at once, with rsync
//! over the `ssh` command and `--link-dest` against that host's live release (only changed
//! files travel and take space), into `.staging-<release>`, renamed into place when whole.
//! Phase 2 runs only when every upload succeeded: a new symlink is made beside `<path>` on
//! every host, then renamed over `<path>` (`mv -T`, one rename(2)) on all of them at once.
//! An upload that fails switches no host; a switch that fails switches the hosts that did
//! switch back. Either way the caller records `failed_step = "publish <host>"`.
//!
//! One ssh connection per host stays open across both phases: a ControlMaster (its socket
//! in the hook's state folder) whose own session is a `sh` reading our commands on stdin;
//! rsync's ssh rides the same connection. Phase 2 then costs one round trip per host, not
//! an ssh handshake, so the hosts switch within milliseconds of each other.
//!
//! The local `to`, when it is set beside `hosts`, is one more target, driven the same way
//! through a local `sh`, so it switches with the hosts and carries the same release names.
//!
//! Here: the targets, phase 1 (upload with rsync) and the publish and rollback as wholes.
//! `session` is the connection to a target, `scripts` what runs on its `sh`, `switch`
//! phase 2 and the switch back, `status` what each target serves now.

mod inspect;
mod scripts;
mod session;
mod status;
mod switch;

use std::path::Path;
use std::time::Instant;

use super::releases::{self, Choice, PruneFailure};
use super::{Failure, FailureKind, Tools};
use crate::config::Hosts;
use crate::sys::process::{Exit, Out, Process};

use crate::sys::text::{printable, shell_quote};
use crate::sys::time;
pub use inspect::{inspect_each, Stuck};
use scripts::rsync_e_word;
pub use scripts::{Probe, Served};
use session::{first_failure, ssh_base, Connections, Session};
pub use status::{status, status_text, HostStatus};
use switch::switch_all;

/// Where a release goes: a web host over ssh, or the local `to`.
#[derive(Debug, Clone)]
pub struct Target {
    /// What the log, `status` and `failed_step` call it: the host as written in `hosts`
    /// (`web1`), `host:path` when one host is named twice, or `local`.
    pub name: String,
    /// The ssh destination; `None` for the local `to`.
    pub ssh_host: Option<String>,
    /// The served path on that machine (absolute).
    pub path: String,
}

impl Target {
    pub fn releases(&self) -> String {
        format!("{}.releases", self.path)
    }

    /// The served path's folder and file name (`/var/www`, `docs`).
    pub fn split(&self) -> (String, String) {
        match self.path.rsplit_once('/') {
            Some(("", base)) => ("/".into(), base.into()),
            Some((dir, base)) => (dir.into(), base.into()),
            None => (".".into(), self.path.clone()),
        }
    }

    /// The new symlink made beside `path` before it is renamed over `path`.
    fn switch_link(&self) -> String {
        let (dir, base) = self.split();
        format!("{}/.{base}.switch", dir.trim_end_matches('/'))
    }

    /// What the symlink holds: relative, so the release folder can move with its parent.
    fn link_value(&self, release: &str) -> String {
        format!("{}.releases/{release}", self.split().1)
    }

    fn rsync_dest(&self, dir: &str) -> String {
        match &self.ssh_host {
            Some(h) => format!("{h}:{dir}/"),
            None => format!("{dir}/"),
        }
    }
}

/// The targets of a publish to web hosts, the local `to` first.
pub fn targets(cfg: &Hosts) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(to) = &cfg.local {
        out.push(Target {
            name: "local".into(),
            ssh_host: None,
            path: to.to_string_lossy().into_owned(),
        });
    }
    for h in &cfg.hosts {
        let twice = cfg.hosts.iter().filter(|o| o.host == h.host).count() > 1;
        out.push(Target {
            name: if twice {
                format!("{}:{}", h.host, h.path)
            } else {
                h.host.clone()
            },
            ssh_host: Some(h.host.clone()),
            path: h.path.clone(),
        });
    }
    out
}

/// `target` failed.
fn fail(target: &str, message: impl Into<String>) -> Failure {
    Failure {
        target: Some(target.to_string()),
        message: message.into(),
        kind: FailureKind::Failed,
    }
}

/// The bytes rsync sent, from its `--stats` (`Total bytes sent: 1,234`).
fn stat(out: &str, label: &str) -> Option<u64> {
    let line = out.lines().find(|l| l.trim_start().starts_with(label))?;
    let digits: String = line[line.find(':')? + 1..]
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

/// Runs rsync into `dest` over the session's connection; returns its `--stats` output.
fn rsync(t: &Target, session: &Session, cfg: &Hosts, tools: &Tools, args: &[String]) -> Result<String, String> {
    let mut argv: Vec<String> = vec!["rsync".into()];
    if t.ssh_host.is_some() {
        let mut e = ssh_base(cfg, 10);
        if let Some(c) = &session.control {
            e.push("-o".into());
            e.push(format!("ControlPath={}", c.to_string_lossy().replace('%', "%%")));
        }
        argv.push("-e".into());
        argv.push(e.iter().map(|w| rsync_e_word(w)).collect::<Vec<_>>().join(" "));
    }
    argv.extend(args.iter().cloned());
    let mut p = Process::argv(&argv);
    p.env(tools.env).timeout(tools.upload_timeout);
    let mut err = tools.log.stream("");
    let done = p.run(Out::Capture, Out::To(&mut |b| err.write(b)), &mut || false);
    drop(err);
    match done.exit {
        Exit::Status(0) => Ok(String::from_utf8_lossy(&done.stdout).into_owned()),
        Exit::TimedOut => Err(format!(
            "rsync took longer than {}s (step_timeout_secs) and was stopped",
            tools.upload_timeout.as_secs()
        )),
        Exit::NotStarted(why) if !why.contains("not found on PATH") => Err(format!("cannot start rsync: {why}")),
        Exit::NotStarted(why) => Err(format!("{why}: apt-get install rsync")),
        other => Err(format!(
            "rsync failed ({other}); its messages are in the build log above"
        )),
    }
}

/// Phase 1 on one target: clear old staging, upload into `.staging-<release>` with
/// `--link-dest` against the live release, rename it into place.
fn upload_one(
    t: &Target,
    s: &mut Session,
    probe: &Probe,
    cfg: &Hosts,
    tools: &Tools,
    from: &Path,
    release: &str,
) -> Result<(), String> {
    if probe.served == Served::Other {
        return Err(format!(
            "{} is a file, neither a symlink nor a folder: remove it, or publish elsewhere",
            t.path
        ));
    }
    let r = t.releases();
    if probe.releases_dir {
        // A build killed while uploading leaves its staging folder; the lock says none is
        // uploading now.
        s.run_ok(
            "removing an old staging folder",
            &format!("rm -rf -- {}/.staging-*", shell_quote(&r)),
        )?;
    } else {
        // Only sh, ln, mv, rm and rsync are asked of a host: rsync of an empty folder makes
        // the releases folder.
        let empty = tools.state_dir.join("empty");
        let _ = std::fs::create_dir(&empty);
        rsync(
            t,
            s,
            cfg,
            tools,
            &[
                "-d".into(),
                "--chmod=a+rX,u+w".into(),
                "--protect-args".into(),
                format!("{}/", empty.display()),
                t.rsync_dest(&r),
            ],
        )
        .map_err(|e| format!("cannot create {r}: {e}"))?;
    }
    let staging = format!("{r}/.staging-{release}");
    let mut args: Vec<String> = [
        "--recursive",
        "--links",
        // Content decides, not mtime: a build rewrites every file, and an unchanged one
        // must be hard-linked to the live release instead of sent again.
        "--checksum",
        "--chmod=a+rX,u+w",
        "--protect-args",
        "--stats",
        "--timeout=120",
    ]
    .map(String::from)
    .to_vec();
    if let Some(live) = probe.live().filter(|l| probe.releases.iter().any(|r| r == l)) {
        args.push(format!("--link-dest={r}/{live}"));
    }
    args.push(format!("{}/", from.display()));
    args.push(t.rsync_dest(&staging));
    let started = Instant::now();
    let out = rsync(t, s, cfg, tools, &args)?;
    let sent = stat(&out, "Total bytes sent").unwrap_or(0);
    let files = stat(&out, "Number of regular files transferred").unwrap_or(0);
    let size = stat(&out, "Total file size").unwrap_or(0);
    s.run_ok(
        "renaming the upload into place",
        &format!(
            "mv -T -- {} {}",
            shell_quote(&staging),
            shell_quote(&format!("{r}/{release}"))
        ),
    )?;
    tools.note(&format!(
        "{}: uploaded {release} in {:.2}s: {files} changed file{} of {size} bytes in all; rsync sent {sent} bytes",
        t.name,
        started.elapsed().as_secs_f64(),
        if files == 1 { "" } else { "s" }
    ));
    Ok(())
}

/// Removes an upload that will not be switched to, wherever it got to.
fn remove_release(conns: &mut Connections, release: &str) {
    conns.each(|_, t, s| {
        s.run(&format!(
            "rm -rf -- {} {}",
            shell_quote(&format!("{}/.staging-{release}", t.releases())),
            shell_quote(&format!("{}/{release}", t.releases()))
        ))
        .map(|_| ())
    });
}

/// A release uploaded to every target and renamed into place there, none switched to yet:
/// phase 1 done, with the connections still open for phase 2 and the prune.
pub struct Uploaded<'a> {
    conns: Connections<'a>,
    probes: Vec<Probe>,
    release: String,
}

/// Phase 1: uploads `from` as `release` to every target, or to none (an upload that fails
/// is removed everywhere).
pub fn upload<'a>(cfg: &Hosts, from: &Path, release: &str, tools: &'a Tools<'a>) -> Result<Uploaded<'a>, Failure> {
    match super::link_leaving(from) {
        Ok(None) => {}
        Ok(Some((link, target))) => {
            return Err(fail(
                "local",
                format!(
                    "the output holds a symlink that leaves it: {} -> {} (a release may only link inside itself): not published",
                    link.display(),
                    target.display()
                ),
            ))
        }
        Err(e) => return Err(fail("local", format!("cannot read the build output: {e}"))),
    }
    let names: Vec<String> = targets(cfg).iter().map(|t| t.name.clone()).collect();
    tools.note(&format!("\npublishing {release} to {}", names.join(", ")));
    let phase1 = Instant::now();
    let mut conns = Connections::open(cfg, tools, true, 10);
    let probes = conns.probe_all();
    if let Some(f) = first_failure(&probes) {
        tools.note(&format!("{f}; nothing was uploaded or switched"));
        return Err(f);
    }
    let probes: Vec<Probe> = probes.into_iter().flatten().collect();
    let uploads = conns.each(|i, t, s| upload_one(t, s, &probes[i], cfg, tools, from, release));
    if let Some(f) = first_failure(&uploads) {
        tools.note(&format!("upload failed: {f}; no target is switched"));
        remove_release(&mut conns, release);
        return Err(f);
    }
    tools.note(&format!(
        "upload phase: {:.2}s for {} target{}",
        phase1.elapsed().as_secs_f64(),
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    ));
    Ok(Uploaded {
        conns,
        probes,
        release: release.to_string(),
    })
}

impl Uploaded<'_> {
    /// The upload will never be switched to (a superseded build): removed everywhere.
    pub fn discard(&mut self) {
        remove_release(&mut self.conns, &self.release);
    }

    /// Phase 2: every target switched to the release, all or none.
    pub fn switch(&mut self) -> Result<(), Failure> {
        let release = self.release.clone();
        let phase2 = Instant::now();
        if let Err(f) = switch_all(&mut self.conns, &self.probes, &release) {
            self.conns.tools.note(&format!(
                "switch failed: {f}; every target that could be put back serves the release it served"
            ));
            // The new release goes where it is not live (a target that could not be
            // switched back keeps it: it serves it).
            self.conns.each(|_, t, s| {
                s.run(&format!(
                    "[ \"$(cd -P -- {p} 2>/dev/null && pwd -P)\" = \"$(cd -P -- {d} 2>/dev/null && pwd -P)\" ] || rm -rf -- {d}",
                    p = shell_quote(&t.path),
                    d = shell_quote(&format!("{}/{release}", t.releases()))
                ))
                .map(|_| ())
            });
            return Err(f);
        }
        self.conns.tools.note(&format!(
            "switch phase: {:.1} ms",
            phase2.elapsed().as_secs_f64() * 1000.0
        ));
        Ok(())
    }

    /// Removes on each target what `keep` lets go (`releases::Keep`), over the open
    /// connections; `switched`: the release is live now (else each target serves what it
    /// served). Returns what could not be removed, and why.
    pub fn prune(&mut self, keep: &releases::Keep, switched: bool) -> Vec<PruneFailure> {
        let (probes, release, tools) = (&self.probes, &self.release, self.conns.tools);
        let results = self.conns.each(|i, t, s| {
            let mut all = probes[i].releases.clone();
            all.push(release.clone());
            all.sort();
            let live = if switched {
                Some(release.as_str())
            } else {
                probes[i].live()
            };
            let gone = keep.to_prune(live, &all);
            if gone.is_empty() {
                return Ok(Vec::new());
            }
            prune_one(t, s, &gone, tools)
        });
        let mut failed = Vec::new();
        for (t, r) in self.conns.targets.iter().zip(results) {
            match r {
                Ok(f) => failed.extend(f),
                Err(f) => failed.push(PruneFailure {
                    target: t.name.clone(),
                    release: "(every release to prune)".into(),
                    error: f.message,
                    at: time::rfc3339(time::now()),
                }),
            }
        }
        failed
    }
}

/// Removes `gone` on one target, one release at a time, so that one that cannot be removed
/// (a file in it this user may not delete) is named with rm's first complaint.
fn prune_one(t: &Target, s: &mut Session, gone: &[String], tools: &Tools) -> Result<Vec<PruneFailure>, String> {
    let words: Vec<String> = gone
        .iter()
        .map(|g| shell_quote(&format!("{}/{g}", t.releases())))
        .collect();
    let out = s.run_ok(
        "pruning",
        &format!(
            "for x in {}; do if ! e=$(rm -rf -- \"$x\" 2>&1); then printf 'unpruned %s\\t%s\\n' \"${{x##*/}}\" \"${{e%%\n*}}\"; fi; done",
            words.join(" ")
        ),
    )?;
    let mut failed = Vec::new();
    for line in out.lines() {
        let Some((name, error)) = line.strip_prefix("unpruned ").and_then(|l| l.split_once('\t')) else {
            continue;
        };
        failed.push(PruneFailure {
            target: t.name.clone(),
            release: name.to_string(),
            error: error.to_string(),
            at: time::rfc3339(time::now()),
        });
    }
    let removed: Vec<&str> = gone
        .iter()
        .map(String::as_str)
        .filter(|g| !failed.iter().any(|f| f.release == *g))
        .collect();
    if !removed.is_empty() {
        tools.note(&format!("{}: pruned {}", t.name, removed.join(", ")));
    }
    Ok(failed)
}

/// A rollback or resume of every target to one release, all or none: the release `choice`
/// means (`releases::choose`, over the releases every target has). `before_switch` gets the
/// release just before the targets switch (the bucket's phases: when it fails, no target is
/// switched). Returns (what they served, the release now served).
pub fn switch_to(
    cfg: &Hosts,
    choice: Choice,
    tools: &Tools,
    before_switch: &mut dyn FnMut(&str) -> Result<(), Failure>,
) -> Result<(Option<String>, String), Failure> {
    let mut conns = Connections::open(cfg, tools, false, 10);
    let probes = conns.probe_all();
    if let Some(f) = first_failure(&probes) {
        return Err(f);
    }
    let probes: Vec<Probe> = probes.into_iter().flatten().collect();
    let lives: Vec<Option<&str>> = probes.iter().map(Probe::live).collect();
    let from = lives[0].map(String::from);
    let target = match choice {
        Choice::Named(n) => n.to_string(),
        Choice::Back(_) => {
            if lives.iter().any(|l| *l != lives[0]) {
                let each: Vec<String> = conns
                    .targets
                    .iter()
                    .zip(&lives)
                    .map(|(t, l)| format!("{} serves {}", t.name, printable(l.unwrap_or("no release"), 200)))
                    .collect();
                return Err(Failure::refused(format!(
                    "the targets serve different releases ({}): name the one to serve with --to RELEASE",
                    each.join(", ")
                )));
            }
            // The releases every target has: a rollback goes where all of them can.
            let everywhere: Vec<String> = probes[0]
                .releases
                .iter()
                .filter(|r| probes.iter().all(|p| p.releases.contains(r)))
                .cloned()
                .collect();
            releases::choose(choice, lives[0], &everywhere).map_err(Failure::refused)?
        }
    };
    for (t, p) in conns.targets.iter().zip(&probes) {
        if !p.releases.contains(&target) {
            return Err(fail(
                &t.name,
                format!(
                    "has no release {} (it has: {}); nothing was switched",
                    printable(&target, 200),
                    printable(&p.releases.join(", "), 2000)
                ),
            ));
        }
        if matches!(p.served, Served::Other | Served::Folder) {
            return Err(fail(
                &t.name,
                format!("{} is not a symlink; nothing was switched", t.path),
            ));
        }
    }
    before_switch(&target)?;
    if lives.iter().all(|l| *l == Some(target.as_str())) {
        return Ok((from, target));
    }
    switch_all(&mut conns, &probes, &target)?;
    Ok((from, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_stats_are_read() {
        let out = "Number of files: 2,001 (reg: 2,000, dir: 1)\nNumber of regular files transferred: 1\nTotal file size: 51,200,000 bytes\nTotal bytes sent: 41,922\n";
        assert_eq!(stat(out, "Total bytes sent"), Some(41_922));
        assert_eq!(stat(out, "Number of regular files transferred"), Some(1));
        assert_eq!(stat(out, "Total file size"), Some(51_200_000));
    }

    #[test]
    fn a_target_knows_its_names() {
        let t = Target {
            name: "web1".into(),
            ssh_host: Some("web1".into()),
            path: "/var/www/docs".into(),
        };
        assert_eq!(t.releases(), "/var/www/docs.releases");
        assert_eq!(t.switch_link(), "/var/www/.docs.switch");
        assert_eq!(t.link_value("r1"), "docs.releases/r1");
        assert_eq!(t.rsync_dest("/x"), "web1:/x/");
        let top = Target {
            name: "local".into(),
            ssh_host: None,
            path: "/docs".into(),
        };
        assert_eq!(top.switch_link(), "/.docs.switch");
    }
}
