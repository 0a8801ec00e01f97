//! Releases, whatever the destination: their names, what was live and in which order, which
//! release a rollback goes back to, and which ones `keep` lets go. A destination only lists
//! its releases and removes the ones it is told to (`local` by reading and removing folders,
//! `hosts` over each host's `sh`), so that every destination keeps and rolls back by the same
//! rules.
//!
//! A release name is its time and its short commit (`20261128-004015-123-1a2b3c4`): names
//! sort in the order the releases were made, and the same release has the same name on
//! every destination of a publish.
//!
//! Rollback goes back through what was live, not by name. The live history (status.json's
//! `live_history`, newest first) holds the way back: a publish or a resume puts its release
//! on top; a rollback to a release takes off everything above it, so the release rolled back
//! from (a bad one) is never the target of the next rollback. v1, v2, v3 (bad), rollback
//! (v2), v4 (bad), rollback goes to v2, then v1; never to v3. Only when the history has no
//! more (a state folder from before it was kept, or every release it names is pruned) does
//! the way back continue by name, older than the last one reached.

use serde::{Deserialize, Serialize};

use crate::sys::time;

/// How many entries the live history keeps: far more than any `keep`, whose way back is
/// all that is ever walked (pruned releases are skipped).
const HISTORY: usize = 50;

/// The name of a new release of `commit`: the time now, then the short commit.
pub fn name(commit: Option<&str>) -> String {
    let short = commit.map(|c| &c[..c.len().min(7)]).unwrap_or("nocommit");
    format!("{}-{short}", time::compact(time::now()))
}

/// Whether `s` is a release name as `name` makes them: `YYYYMMDD-HHMMSS-mmm-` then a short
/// commit (or `nocommit`), lowercase letters and digits. Names read from elsewhere (a
/// bucket's manifest) go into local paths, so nothing else is taken for one.
pub fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let commit = b.get(20..).unwrap_or_default();
    b.len() > 20
        && digits(0..8)
        && b[8] == b'-'
        && digits(9..15)
        && b[15] == b'-'
        && digits(16..19)
        && b[19] == b'-'
        && commit.len() <= 40
        && commit.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// How a release went live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// A build published it.
    Publish,
    /// `deploy-hook rollback` switched back to it.
    Rollback,
    /// `deploy-hook resume` switched to it: the newest succeeded build's release.
    Resume,
}

/// A release that went live, and when: one entry of the live history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    pub release: String,
    /// RFC 3339.
    pub since: String,
    pub by: By,
}

/// The hold a rollback puts on a hook: builds still run and make their releases, but no
/// destination is switched until `deploy-hook resume` (status.json's `held`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// When the first rollback of the hold ran (RFC 3339); a second rollback keeps it.
    pub since: String,
    /// The release the rollback made live, served for as long as the hold lasts.
    pub release: String,
}

/// `release` went live `at`, `by` a publish, a rollback or a resume: the history (newest
/// first) gets it on top. A rollback takes off what was above the release it goes back to
/// (when it is not in the history, every newer release by name): those are the releases
/// rolled back from, never to be gone back to.
pub fn went_live(history: &mut Vec<Live>, release: &str, by: By, at: String) {
    match by {
        By::Rollback => match history.iter().position(|l| l.release == release) {
            Some(i) => {
                history.drain(..=i);
            }
            None => history.retain(|l| l.release.as_str() < release),
        },
        By::Publish | By::Resume => history.retain(|l| l.release != release),
    }
    history.insert(
        0,
        Live {
            release: release.to_string(),
            since: at,
            by,
        },
    );
    history.truncate(HISTORY);
}

/// The releases successive rollbacks from `live` go to, in order: back through `history`
/// (newest first) from where `live` is in it, then by name, older than the last one reached
/// (or than `live`, when the history does not know it). Only releases in `all` (the ones
/// every destination has) are gone to.
pub fn way_back(history: &[Live], live: &str, all: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(i) = history.iter().position(|l| l.release == live) {
        for l in &history[i + 1..] {
            if l.release != live && all.contains(&l.release) && !out.contains(&l.release) {
                out.push(l.release.clone());
            }
        }
    }
    let oldest = out.last().map(String::as_str).unwrap_or(live).to_string();
    let mut older: Vec<&String> = all
        .iter()
        .filter(|r| r.as_str() < oldest.as_str() && r.as_str() != live && !out.contains(r))
        .collect();
    older.sort();
    out.extend(older.into_iter().rev().cloned());
    out
}

/// Which release a rollback or resume switches to.
#[derive(Debug, Clone, Copy)]
pub enum Choice<'a> {
    /// The one before the live one, back through the live history (`way_back`).
    Back(&'a [Live]),
    /// This one, by name (`rollback --to`, `resume`).
    Named(&'a str),
}

/// The release `choice` means for destinations serving `live` and holding `all` (the
/// releases every one of them has), or why there is none, as the person asking reads it.
pub fn choose(choice: Choice, live: Option<&str>, all: &[String]) -> Result<String, String> {
    match choice {
        Choice::Named(n) if all.iter().any(|r| r == n) => Ok(n.to_string()),
        Choice::Named(n) => Err(format!("no release named {n}; releases: {}", all.join(", "))),
        Choice::Back(history) => {
            let live = live.ok_or("nothing is published yet: there is nothing to roll back to")?;
            way_back(history, live, all).into_iter().next().ok_or_else(|| {
                format!("no release that was live before {live} is kept: there is nothing to roll back to")
            })
        }
    }
}

/// What a prune must keep on a destination, whatever `keep` says of the rest.
#[derive(Debug, Clone)]
pub struct Keep {
    /// `publish.keep`.
    pub keep: usize,
    /// The live history as it is once this publish is done.
    pub history: Vec<Live>,
    /// A release made but not switched to (a held hook's newest build: `resume` goes to it).
    pub made: Option<String>,
}

impl Keep {
    /// The releases of `all` that must stay on a destination serving `live`: the live one,
    /// the next `keep - 1` rollbacks' targets, and the release made while held.
    pub fn needed(&self, live: Option<&str>, all: &[String]) -> Vec<String> {
        let mut out: Vec<String> = live.map(String::from).into_iter().collect();
        if let Some(l) = live {
            out.extend(
                way_back(&self.history, l, all)
                    .into_iter()
                    .take(self.keep.saturating_sub(1)),
            );
        }
        out.extend(self.made.clone());
        out
    }

    /// The releases `keep` lets go, oldest first: the oldest beyond `keep`, never one that is
    /// `needed`. `all` is sorted, oldest first.
    pub fn to_prune(&self, live: Option<&str>, all: &[String]) -> Vec<String> {
        let needed = self.needed(live, all);
        let mut excess = all.len().saturating_sub(self.keep);
        let mut out = Vec::new();
        for name in all {
            if excess == 0 {
                break;
            }
            if !needed.contains(name) {
                out.push(name.clone());
                excess -= 1;
            }
        }
        out
    }
}

/// A release a prune could not remove, with why (status.json's `prune_failures`, where
/// `check` finds them; the build log and syslog say it too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneFailure {
    /// `local`, or the web host as `hosts` names it.
    pub target: String,
    pub release: String,
    pub error: String,
    /// RFC 3339.
    pub at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn history(steps: &[(&str, By)]) -> Vec<Live> {
        let mut h = Vec::new();
        for (r, by) in steps {
            went_live(&mut h, r, *by, String::new());
        }
        h
    }

    #[test]
    fn rollback_walks_back_through_what_was_live() {
        use By::*;
        let all = names(&["v1", "v2", "v3", "v4"]);
        // v1, v2, v3 (bad), rollback to v2, v4 (bad) published: back to v2, then v1.
        let h = history(&[
            ("v1", Publish),
            ("v2", Publish),
            ("v3", Publish),
            ("v2", Rollback),
            ("v4", Publish),
        ]);
        assert_eq!(way_back(&h, "v4", &all), names(&["v2", "v1"]));
        assert_eq!(choose(Choice::Back(&h), Some("v4"), &all), Ok("v2".into()));
        // a second rollback goes further back, never to v3 or v4
        let mut h2 = h.clone();
        went_live(&mut h2, "v2", Rollback, String::new());
        assert_eq!(way_back(&h2, "v2", &all), names(&["v1"]));
        // --to v1 from v4, then further back: nothing newer than v1 is gone back to
        let mut h3 = h.clone();
        went_live(&mut h3, "v1", Rollback, String::new());
        assert!(way_back(&h3, "v1", &all).is_empty());
        // a named release the history never had: newer ones are dropped, older ones kept
        let h4 = history(&[("v2", Publish), ("v4", Publish), ("v3", Rollback)]);
        assert_eq!(h4.iter().map(|l| l.release.as_str()).collect::<Vec<_>>(), ["v3", "v2"]);
        // resume puts the newest build on top once
        let h5 = history(&[("v1", Publish), ("v2", Publish), ("v1", Rollback), ("v2", Resume)]);
        assert_eq!(h5.iter().map(|l| l.release.as_str()).collect::<Vec<_>>(), ["v2", "v1"]);
    }

    #[test]
    fn without_history_the_way_back_is_by_name_and_skips_what_is_gone() {
        let all = names(&["a", "b", "c"]);
        assert_eq!(way_back(&[], "c", &all), names(&["b", "a"]));
        assert_eq!(way_back(&[], "x", &all), names(&["c", "b", "a"]));
        let h = history(&[("a", By::Publish), ("gone", By::Publish), ("c", By::Publish)]);
        assert_eq!(way_back(&h, "c", &all), names(&["a"]));
        assert_eq!(
            choose(Choice::Back(&[]), Some("a"), &all),
            Err("no release that was live before a is kept: there is nothing to roll back to".into())
        );
        assert!(choose(Choice::Back(&[]), None, &all).is_err());
        assert!(choose(Choice::Named("nope"), Some("a"), &all).is_err());
        assert_eq!(choose(Choice::Named("b"), Some("a"), &all), Ok("b".into()));
    }

    #[test]
    fn pruning_keeps_the_live_release_and_the_way_back_within_keep() {
        use By::*;
        let all = names(&["a", "b", "c", "d", "e"]);
        let keep = |h: Vec<Live>, made: Option<&str>| Keep {
            keep: 3,
            history: h,
            made: made.map(String::from),
        };
        // published in order: the oldest go
        let k = keep(
            history(&[
                ("a", Publish),
                ("b", Publish),
                ("c", Publish),
                ("d", Publish),
                ("e", Publish),
            ]),
            None,
        );
        assert_eq!(k.to_prune(Some("e"), &all), names(&["a", "b"]));
        // after a rollback to b, e published: b stays (the way back is e, b, a)
        let k = keep(
            history(&[
                ("a", Publish),
                ("b", Publish),
                ("c", Publish),
                ("d", Publish),
                ("b", Rollback),
                ("e", Publish),
            ]),
            None,
        );
        assert_eq!(k.to_prune(Some("e"), &all), names(&["c", "d"]));
        // held at b with e made: b, a and e stay
        let k = keep(
            history(&[
                ("a", Publish),
                ("b", Publish),
                ("c", Publish),
                ("d", Publish),
                ("b", Rollback),
            ]),
            Some("e"),
        );
        assert_eq!(k.to_prune(Some("b"), &all), names(&["c", "d"]));
        // no history: by name, and newer than the live one is what was rolled back from
        let k = keep(Vec::new(), None);
        assert_eq!(k.to_prune(Some("c"), &all), names(&["d", "e"]));
        assert!(keep(Vec::new(), None)
            .to_prune(Some("e"), &names(&["d", "e"]))
            .is_empty());
    }

    #[test]
    fn a_release_name_is_what_name_makes() {
        assert!(valid_name(&name(Some("1a2b3c4d5e6f"))));
        assert!(valid_name(&name(None)));
        assert!(valid_name("20261128-004015-123-1a2b3c4"));
        for bad in [
            "",
            "r1",
            "..",
            "20261128-004015-123-",
            "20261128-004015-123-../x",
            "20261128-004015-123-1A2B",
            "20261128-004015-1234-1a2b",
            "2026112x-004015-123-1a2b",
            "20261128_004015-123-1a2b",
            "/20261128-004015-123-1a2b",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
