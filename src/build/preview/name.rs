//! Preview names: `pr-<number>` for a pull request, `branch-<slug>` for a branch. A name is
//! a DNS label (1 to 63 of `a-z0-9-`, no `-` at either end, no `--` at positions 3-4),
//! because each preview is served at `NAME.<domain>`.
//!
//! The slug is the branch name lower-cased, every character other than `a-z0-9` made `-`,
//! runs of `-` collapsed and trimmed. When that loses more than case and separators
//! (unicode, other characters), when it is empty or too long, or when the plain name is
//! already another branch's, a short hash of the full ref is added (`sha256`, 6 hex
//! digits, 12 if even that is taken), so that distinct branches get distinct names.
//!
//! Which of two colliding branches got the plain name depends on which came first, so a
//! name is given once and stored with its ref; a preview is found again by its ref, never
//! by making its name again.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::Subject;

/// A DNS label's longest.
pub const MAX: usize = 63;
const PREFIX: &str = "branch-";

/// `feature/Foo_Bar` -> `feature-foo-bar`.
pub fn slug(branch: &str) -> String {
    let mut out = String::new();
    for c in branch.chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

fn ref_hash(full_ref: &str, digits: usize) -> String {
    Sha256::digest(full_ref.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..digits]
        .to_string()
}

/// `base` cut to leave room for `-<hash>`, with the hash added.
fn with_hash(base: &str, full_ref: &str, digits: usize) -> String {
    let hash = ref_hash(full_ref, digits);
    let room = MAX - digits - 1;
    let cut = base[..base.len().min(room)].trim_end_matches('-');
    format!("{cut}-{hash}")
}

/// The name of a new preview of `subject`, given the names `taken` by other previews (name
/// -> what it is a preview of). `None` only when both hashed names are another branch's:
/// 48 bits of sha256 colliding among one hook's live previews.
pub fn allocate(subject: &Subject, taken: &BTreeMap<String, Subject>) -> Option<String> {
    let branch = match subject {
        Subject::Pull(n) => return Some(format!("pr-{n}")),
        Subject::Branch(b) => b,
    };
    let free = |name: &str| taken.get(name).is_none_or(|s| s == subject);
    let full_ref = format!("refs/heads/{branch}");
    let s = slug(branch);
    let plain = format!("{PREFIX}{s}");
    // Only case and separators may be lost without a hash: a branch with other characters
    // never takes a short name that a plain ASCII branch would want later.
    let lossless = branch
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
    if !s.is_empty() && lossless && plain.len() <= MAX && free(&plain) {
        return Some(plain);
    }
    let base = if s.is_empty() {
        PREFIX.trim_end_matches('-')
    } else {
        &plain
    };
    [6, 12]
        .into_iter()
        .map(|digits| with_hash(base, &full_ref, digits))
        .find(|name| free(name))
}

/// Whether `name` is a DNS label as previews are named: what `--remove NAME` accepts and
/// what the web server's pattern captures.
pub fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=MAX).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !(b.len() >= 4 && &b[2..4] == b"--")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(b: &str) -> Subject {
        Subject::Branch(b.into())
    }

    #[test]
    fn names_given_in_order() {
        let mut taken = BTreeMap::new();
        let mut give = |b: &str| {
            let n = allocate(&branch(b), &taken).unwrap();
            assert!(valid(&n), "{b} -> {n}");
            assert!(taken.insert(n.clone(), branch(b)).is_none(), "{b} got a taken name {n}");
            n
        };
        assert_eq!(give("feature/Foo_Bar"), "branch-feature-foo-bar");
        assert_eq!(give("feature-foo-bar"), "branch-feature-foo-bar-a404f7");
        assert_eq!(give("Feature/foo.bar"), "branch-feature-foo-bar-e87cbe");
        assert_eq!(give("文档"), "branch-7fdfe6");
        assert_eq!(give("docs/文档-更新"), "branch-docs-804a8f");
        assert_eq!(give("a--b"), "branch-a-b");
        assert_eq!(give("-lead-and-trail-"), "branch-lead-and-trail");
        assert_eq!(
            give("dependabot/npm_and_yarn/vite-5.4.2"),
            "branch-dependabot-npm-and-yarn-vite-5-4-2"
        );
        let long = give(&"x".repeat(200));
        assert_eq!(long, format!("branch-{}-e09a8d", "x".repeat(49)));
        assert_eq!(long.len(), MAX);
        assert_ne!(give(&format!("{}y", "x".repeat(200))), long, "cut names stay apart");
    }

    #[test]
    fn a_ref_keeps_its_name_and_prs_are_numbers() {
        let mut taken = BTreeMap::new();
        taken.insert("branch-a".to_string(), branch("a"));
        assert_eq!(
            allocate(&branch("a"), &taken).unwrap(),
            "branch-a",
            "its own name is free to it"
        );
        assert_eq!(allocate(&Subject::Pull(7), &taken).unwrap(), "pr-7");
        // both hashed names of a branch taken by others: no name rather than a shared one
        let full = "refs/heads/A";
        for d in [6, 12] {
            taken.insert(with_hash("branch-a", full, d), branch("other"));
        }
        assert_eq!(allocate(&branch("A"), &taken), None);
    }

    #[test]
    fn dns_labels() {
        assert!(valid("pr-7") && valid("branch-a") && valid(&"a".repeat(63)));
        for bad in ["", "-a", "a-", "ab--c", "A", "a.b", "a_b", "a/b", "文", &"a".repeat(64)] {
            assert!(!valid(bad), "{bad}");
        }
    }

    /// Many random branch names (a small deterministic generator, no crate): every name a
    /// valid label, and no two branches share one.
    #[test]
    fn random_names_are_distinct_labels() {
        let alphabet: Vec<char> = "abcAB-_./0129文档é ".chars().collect();
        let mut seed: u64 = 16;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let mut taken = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5000 {
            let len = 1 + next() % 90;
            let b: String = (0..len).map(|_| alphabet[next() % alphabet.len()]).collect();
            if !seen.insert(b.clone()) {
                continue;
            }
            let n = allocate(&branch(&b), &taken).unwrap();
            assert!(valid(&n), "{b:?} -> {n}");
            assert!(taken.insert(n.clone(), branch(&b)).is_none(), "{b:?} -> {n} twice");
        }
    }
}
