//! What every target serves, asked over ssh now, for `status`: a host changed by hand, or
//! one a failed switch-back left behind, shows.

use std::collections::BTreeMap;

use super::scripts::{Probe, Served};
use super::session::Connections;
use super::{Failure, Target, Tools};
use crate::config::Hosts;
use crate::sys::text::printable;

/// Every target with what the probe found there, asked with a short connect timeout:
/// `status` and `check` must answer even when a host is down.
pub fn probe_each(cfg: &Hosts, tools: &Tools) -> Vec<(Target, Result<Probe, Failure>)> {
    let mut conns = Connections::open(cfg, tools, false, 5);
    let probes = conns.probe_all();
    conns.targets.iter().cloned().zip(probes).collect()
}

/// What each target serves, for `status`: its live release, or why it could not be asked.
pub struct Live {
    pub target: Target,
    pub live: Result<Option<String>, String>,
}

/// Asks every target what it serves (short connect timeout: `status` must answer).
pub fn live_all(cfg: &Hosts, tools: &Tools) -> Vec<Live> {
    probe_each(cfg, tools)
        .into_iter()
        .map(|(target, p)| Live {
            target,
            live: p
                .map(|p| match p.served {
                    Served::Release(r) => r,
                    Served::Folder => Some("(a folder, not yet published)".into()),
                    _ => None,
                })
                .map_err(|f| f.message),
        })
        .collect()
}

/// The release most targets serve; a target serving another one disagrees.
pub fn majority(lives: &[Live]) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in lives {
        if let Ok(Some(r)) = &l.live {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(r, _)| r.to_string())
}

/// A target in `status`: what it serves, and whether that is what most targets serve.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostStatus {
    pub name: String,
    pub path: String,
    pub live: Option<String>,
    /// Why the target could not be asked (unreachable host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True when it serves another release than most targets: after a switch-back that
    /// failed, or a change by hand. An unreachable target is not counted as disagreeing.
    pub disagrees: bool,
}

/// Every target's live release, for `status`.
pub fn status(cfg: &Hosts, tools: &Tools) -> Vec<HostStatus> {
    let lives = live_all(cfg, tools);
    let most = majority(&lives);
    lives
        .into_iter()
        .map(|l| {
            let (live, error) = match l.live {
                Ok(r) => (r, None),
                Err(e) => (None, Some(e)),
            };
            HostStatus {
                disagrees: error.is_none() && live != most,
                name: l.target.name,
                path: l.target.path,
                live,
                error,
            }
        })
        .collect()
}

/// `status`'s lines for the targets, below the hook's own.
pub fn status_text(targets: &[HostStatus]) -> String {
    let width = targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut w = String::new();
    for (i, t) in targets.iter().enumerate() {
        // A release folder's name and ssh's words come from the host: escaped, as every
        // value `status` prints.
        let what = match (&t.live, &t.error) {
            (_, Some(e)) => format!("cannot be asked: {}", printable(e, 1000)),
            (Some(r), None) => printable(r, 1000),
            (None, None) => "nothing published".into(),
        };
        w.push_str(&format!(
            "  {:<9}{:<width$}  {what}{}\n",
            if i == 0 { "hosts:" } else { "" },
            printable(&t.name, 1000),
            if t.disagrees {
                "  DISAGREES with the others (a failed switch-back, or a change by hand; the next build or rollback fixes it)"
            } else {
                ""
            }
        ));
    }
    w
}
