//! `check` for a hook with `publish.hosts`: rsync here, and for every target the ssh command
//! reaches it in batch mode (no prompt), rsync is there, the served path's folder is
//! writable, what it serves now, and whether a prune can do its work there (nothing in the
//! releases folder the publishing user cannot remove, no release left beyond `keep`).
//! Asked over the same connection a publish uses (`publish::hosts`), so a target that
//! passes here is one a build can reach.

use std::path::Path;

use super::files::Pruning;
use super::Report;
use crate::build::state::HookState;
use crate::config::{Hook, Hosts};
use crate::publish::hosts::{self, Probe, Served, Stuck, Target};
use crate::publish::Tools;
use crate::sys::process::which;

/// The web hosts of `publish.hosts`, as the build's user sees them.
pub(super) fn check(hook: &Hook, state: &HookState, home: &Path, cfg: &Hosts, pruning: &Pruning, r: &mut Report) {
    let env = hook.child_env(home);
    let Ok(null) = crate::build::buildlog::BuildLog::discard() else {
        return r.fail("hosts", "cannot open /dev/null", "this machine is broken");
    };
    let tools = Tools {
        env: &env,
        // Where control sockets would go; check opens none.
        state_dir: &state.dir,
        upload_timeout: hook.step_timeout,
        log: &null,
        repo: &hook.repo,
    };
    check_hosts(cfg, &tools, pruning, r);
}

fn check_hosts(cfg: &Hosts, tools: &Tools, pruning: &Pruning, r: &mut Report) {
    let path = tools.env.get("PATH").cloned().unwrap_or_default();
    match which("rsync", &path) {
        Some(p) => r.ok("hosts", format!("rsync found here: {}", p.display())),
        None => r.fail(
            "hosts",
            format!("rsync is not found on path {path}"),
            "apt-get install rsync".to_string(),
        ),
    }
    let ssh_line = cfg.ssh.join(" ");
    if which(&cfg.ssh[0], &path).is_none() {
        r.fail(
            "hosts",
            format!("{} (publish.ssh) is not found on path {path}", cfg.ssh[0]),
            "apt-get install openssh-client, or name ssh by its full path in publish.ssh".to_string(),
        );
        return;
    }
    for (t, found) in hosts::inspect_each(cfg, tools) {
        let (dir, _) = t.split();
        // What a line calls the target, and where its fix is made.
        let (label, on) = match &t.ssh_host {
            Some(h) => (format!("host {h}"), format!("on {h}: ")),
            None => ("local".to_string(), String::new()),
        };
        let (p, stuck) = match found {
            Ok(found) => found,
            Err(f) => {
                let host = t.ssh_host.as_deref().unwrap_or("localhost");
                r.fail("hosts", 
                    format!("{label}: cannot run sh there with `{ssh_line} {host}` in batch mode: {}", f.message),
                    format!("as this user, `{ssh_line} {host} true` must work with no prompt: a key without a passphrase (IdentityFile), the host's key in known_hosts (ssh-keyscan), the right User; see docs/hosts.md"),
                );
                continue;
            }
        };
        if t.ssh_host.is_some() {
            r.ok("hosts", format!("{label}: reachable with {ssh_line}"));
            match &p.rsync {
                Some(found) => r.ok("hosts", format!("{label}: rsync found: {found}")),
                None => r.fail(
                    "hosts",
                    format!("{label}: rsync is not installed"),
                    format!("{on}apt-get install rsync"),
                ),
            }
        }
        if p.folder_writable && (!p.releases_dir || p.releases_writable) {
            r.ok("hosts", format!("{label}: {dir} is writable"));
        } else if !p.folder_writable {
            r.fail(
                "hosts",
                format!("{label}: {dir} does not exist or is not writable by the user that publishes"),
                format!("{on}install -d -o <that user> {dir}"),
            );
        } else {
            r.fail(
                "hosts",
                format!("{label}: {} is not writable by the user that publishes", t.releases()),
                format!("{on}chown -R <that user> {}", t.releases()),
            );
        }
        let path = &t.path;
        match &p.served {
            Served::Release(Some(rel)) => r.ok("hosts", format!("{label}: {path} serves release {rel}")),
            Served::Release(None) => r.warn("hosts", format!("{label}: {path} is a symlink that leads nowhere; the next publish replaces it")),
            Served::Folder => r.warn("hosts", format!("{label}: {path} is a folder; the first publish keeps it as the oldest release and puts a symlink in its place")),
            Served::Missing => r.ok("hosts", format!("{label}: {path} will be created by the first publish")),
            Served::Other => r.fail("hosts", format!("{label}: {path} is a file"), format!("{on}remove it, or publish to another path")),
        }
        check_prune(&t, &p, &stuck, pruning, &label, &on, r);
    }
}

/// Whether pruning works on a target: nothing in its releases folder the publishing user
/// cannot remove, and no release left beyond `keep` (what a prune that failed leaves).
fn check_prune(t: &Target, p: &Probe, stuck: &Stuck, pruning: &Pruning, label: &str, on: &str, r: &mut Report) {
    let keep = pruning.keep;
    let releases = t.releases();
    let left = pruning.left(p.live(), &p.releases);
    let said = pruning.recorded(&t.name, &p.releases);
    if stuck.count > 0 {
        let mut shown = stuck.paths.join(", ");
        if stuck.count > stuck.paths.len() as u64 {
            shown.push_str(&format!(" and {} more", stuck.count - stuck.paths.len() as u64));
        }
        let left_note = if left.is_empty() {
            String::new()
        } else {
            format!(
                "; left beyond keep = {keep} by a prune that failed: {}",
                left.join(", ")
            )
        };
        r.fail(
            "hosts",
            format!(
                "{label}: {} in {releases} not the publishing user's (or folders it cannot write), so a prune cannot remove them and leaves half-deleted releases: {shown}{left_note}{said}",
                files(stuck.count)
            ),
            format!(
                "{on}chown -R {}: {releases} (the next publish prunes what is beyond keep)",
                stuck.user.as_deref().unwrap_or("<the user that publishes>")
            ),
        );
    } else if !left.is_empty() {
        r.warn(
            "hosts",
            format!(
                "{label}: {} beyond keep = {keep} in {releases}: {} (a prune failed, or keep was lowered; the next publish prunes them){said}",
                if left.len() == 1 { "1 release".to_string() } else { format!("{} releases", left.len()) },
                left.join(", ")
            ),
        );
    } else if !said.is_empty() {
        r.warn("hosts", format!("{label}: nothing is beyond keep = {keep} now{said}"));
    }
}

fn files(n: u64) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}
