//! What `check` asks of every target besides the probe: what is in its releases folder that
//! the publishing user cannot remove. A prune is `rm -rf` of the releases `keep` lets go;
//! one folder of root's in a release (a site built by hand as root, copied there) stops it
//! half way and leaves a half-deleted release behind, on every publish after.
//!
//! Asked over the same connection as the probe, so a target is reached once. Only `check`
//! asks it: it walks every release, which a publish has no reason to pay for.

use super::scripts::{parse_probe, probe_script, Probe};
use super::session::Connections;
use super::{Failure, Target, Tools};
use crate::config::Hosts;
use crate::sys::text::shell_quote;

/// Paths named in a finding; the rest are counted.
const SHOWN: usize = 3;

/// Entries of a target's releases folder its publishing user cannot remove: not its own,
/// or a folder it may not write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stuck {
    /// The user that publishes there (`id -un`).
    pub user: Option<String>,
    pub count: u64,
    /// The first few, as `find` printed them.
    pub paths: Vec<String>,
}

fn stuck_script(t: &Target) -> String {
    format!(
        "r={r}; u=$(id -u)
printf 'user %s\\n' \"$(id -un)\"
if [ -d \"$r\" ]; then
  find \"$r\" \\( ! -user \"$u\" -o \\( -type d ! -perm -u=w \\) \\) -print 2>/dev/null | awk 'NR<={SHOWN} {{ print \"stuck \" $0 }} END {{ print \"stuck-count \" NR }}'
fi
true",
        r = shell_quote(&t.releases())
    )
}

fn parse_stuck(out: &str) -> Stuck {
    let mut s = Stuck::default();
    for line in out.lines() {
        if let Some(u) = line.strip_prefix("user ") {
            s.user = Some(u.to_string()).filter(|u| !u.is_empty());
        } else if let Some(p) = line.strip_prefix("stuck ") {
            s.paths.push(p.to_string());
        } else if let Some(n) = line.strip_prefix("stuck-count ") {
            s.count = n.trim().parse().unwrap_or(0);
        }
    }
    s
}

/// A target as `check` finds it: the probe and what a prune could not remove, or why it
/// could not be asked.
pub type Inspected = Result<(Probe, Stuck), Failure>;

/// Every target with its probe and what a prune could not remove there, asked with a short
/// connect timeout (a host that is down must not hold `check` up).
pub fn inspect_each(cfg: &Hosts, tools: &Tools) -> Vec<(Target, Inspected)> {
    let mut conns = Connections::open(cfg, tools, false, 5);
    let found = conns.each(|_, t, s| {
        let probe = parse_probe(&s.run_ok("probing", &probe_script(t))?);
        let stuck = parse_stuck(&s.run_ok("looking into the releases", &stuck_script(t))?);
        Ok((probe, stuck))
    });
    conns.targets.iter().cloned().zip(found).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_find_found_is_read() {
        let s =
            parse_stuck("user web\nstuck /w/docs.releases/a/dist\nstuck /w/docs.releases/a/dist/x\nstuck-count 7\n");
        assert_eq!((s.count, s.user.as_deref()), (7, Some("web")));
        assert_eq!(s.paths, vec!["/w/docs.releases/a/dist", "/w/docs.releases/a/dist/x"]);
        assert_eq!(parse_stuck(""), Stuck::default());
    }
}
