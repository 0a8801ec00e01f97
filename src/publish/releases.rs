//! Releases, whatever the destination: their names, which ones `keep` lets go, and which one
//! a rollback goes back to. A destination only lists its releases and removes the ones it
//! is told to (`local` by reading and removing folders, `hosts` over each host's `sh`), so
//! that every destination keeps and rolls back by the same rules.
//!
//! A release name is its time and its short commit (`20261128-004015-123-1a2b3c4`): names
//! sort in the order the releases were made, and the same release has the same name on
//! every destination of a publish.

use crate::sys::time;

/// The name of a new release of `commit`: the time now, then the short commit.
pub fn name(commit: Option<&str>) -> String {
    let short = commit.map(|c| &c[..c.len().min(7)]).unwrap_or("nocommit");
    format!("{}-{short}", time::compact(time::now()))
}

/// The releases `keep` lets go, oldest first: the oldest beyond `keep`, never the live one,
/// the one before it (the rollback target), nor `was_live` (what served before this
/// publish: after a rollback to an old release, that is the known-good one to go back to).
/// `all` is sorted, oldest first.
pub fn to_prune(all: &[String], live: Option<&str>, was_live: Option<&str>, keep: usize) -> Vec<String> {
    let live_idx = live.and_then(|l| all.iter().position(|r| r == l));
    let protected = |i: usize| live_idx.is_some_and(|l| i == l || i + 1 == l) || was_live == Some(all[i].as_str());
    let mut excess = all.len().saturating_sub(keep);
    let mut out = Vec::new();
    for (i, name) in all.iter().enumerate() {
        if excess == 0 {
            break;
        }
        if !protected(i) {
            out.push(name.clone());
            excess -= 1;
        }
    }
    out
}

/// Why there is no release before the live one to roll back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoneBefore {
    /// The live release is not among the releases (it was removed, or renamed by hand).
    NotListed,
    /// The live release is the oldest one kept.
    Oldest,
}

/// The release a rollback without `--to` goes to: the one before `live` in `all` (sorted,
/// oldest first).
pub fn before<'a>(all: &'a [String], live: &str) -> Result<&'a str, NoneBefore> {
    match all.iter().position(|r| r == live) {
        Some(i) if i > 0 => Ok(&all[i - 1]),
        Some(_) => Err(NoneBefore::Oldest),
        None => Err(NoneBefore::NotListed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_live_previous_and_replaced() {
        let all: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        assert_eq!(to_prune(&all, Some("e"), Some("d"), 3), vec!["a", "b"]);
        // after a rollback to b, a publish of e keeps b (replaced), d and e
        assert_eq!(to_prune(&all, Some("e"), Some("b"), 3), vec!["a", "c"]);
        assert_eq!(to_prune(&all, Some("c"), None, 2), vec!["a", "d", "e"]);
        assert!(to_prune(&all, Some("e"), None, 5).is_empty());
    }

    #[test]
    fn the_release_before_the_live_one() {
        let all: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(before(&all, "c"), Ok("b"));
        assert_eq!(before(&all, "a"), Err(NoneBefore::Oldest));
        assert_eq!(before(&all, "x"), Err(NoneBefore::NotListed));
    }
}
