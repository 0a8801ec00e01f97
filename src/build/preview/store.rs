//! The previews of a hook on disk: one folder per preview in the hook's state folder, with
//! the record of what it is a preview of (`preview.json`), found by its subject (the branch
//! or pull request), never by making its name again (`name`).
//!
//! ```text
//! <state_dir>/<hook>/previews/names.lock     flock(2) held while a name is given
//! <state_dir>/<hook>/previews/NAME/          the preview's own state folder: lock, pending,
//!                                            status.json and build logs, as a hook's
//! <state_dir>/<hook>/previews/NAME/preview.json   name, subject, ref, created, last built
//! <state_dir>/<hook>/previews/NAME/remove    its removal is asked for (closed, deleted, keep)
//! <state_dir>/<hook>/worktrees/NAME/         its working tree (git worktree), outside repo
//! ```
//!
//! The working trees are in the state folder, not in `repo`: production's `git clean -ffdx`
//! would delete a working tree inside the checkout, and a `clean` path could cover it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use fs2::FileExt;
use serde::{Deserialize, Serialize};

use super::{name, Subject};
use crate::build::state::{open_lock_file, write_atomic};
use crate::error::{Error, Result};
use crate::sys::time;

/// What `preview.json` says of one preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The preview's name: a DNS label, given once (`name::allocate`).
    pub name: String,
    pub subject: Subject,
    /// The ref of the hook's remote it builds (`Subject::git_ref`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// When the first delivery for it came.
    pub created: String,
    /// When its last build ended, whatever its result (RFC 3339), and the same in
    /// milliseconds: `keep` removes the least recently built preview first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_ms: Option<u64>,
    /// The commit of the release it serves, and when that release was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Its last build was refused by the fork check: it serves nothing of its own and
    /// neither counts for `keep` nor stays (`let_go_locked` lets it go).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

impl Record {
    /// The order `keep` removes previews in: the least recently built first, a preview
    /// never built by when it was made.
    pub fn last_built_ms(&self) -> u64 {
        self.built_ms
            .or_else(|| time::parse_rfc3339(&self.created).map(|s| s * 1000))
            .unwrap_or(0)
    }
}

/// The previews of one hook, in `<state_dir>/<hook>/`.
#[derive(Debug, Clone)]
pub struct Store {
    /// The hook's state folder.
    pub hook_dir: PathBuf,
}

impl Store {
    pub fn new(state_dir: &Path, hook: &str) -> Store {
        Store {
            hook_dir: state_dir.join(hook),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.hook_dir.join("previews")
    }

    /// `HOME` of every build of the hook, previews' too: one pnpm store, so that a new
    /// working tree's `pnpm install` links packages instead of downloading them.
    pub fn home_dir(&self) -> PathBuf {
        self.hook_dir.join("home")
    }

    /// The preview's own state folder.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    /// The preview's working tree. Its last component is the name: git names the
    /// worktree's admin folder (`.git/worktrees/NAME`) after it.
    pub fn worktree(&self, name: &str) -> PathBuf {
        self.hook_dir.join("worktrees").join(name)
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.dir(name).join("preview.json")
    }

    /// The record of preview `name`, if there is one. A damaged record reads as none: the
    /// preview is then made again under a name of its own.
    pub fn get(&self, name: &str) -> Option<Record> {
        if !name::valid(name) {
            return None;
        }
        let bytes = fs::read(self.record_path(name)).ok()?;
        serde_json::from_slice::<Record>(&bytes).ok().filter(|r| r.name == name)
    }

    /// Every preview, by name.
    pub fn list(&self) -> Vec<Record> {
        let Ok(entries) = fs::read_dir(self.root()) else {
            return Vec::new();
        };
        let mut out: Vec<Record> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| self.get(n)))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The preview of `subject`, if it has one.
    pub fn find(&self, subject: &Subject) -> Option<Record> {
        self.list().into_iter().find(|r| &r.subject == subject)
    }

    /// Runs `f` with `names.lock` held: two deliveries at once never give one name twice,
    /// and a request for a preview (its `pending`, or its `remove`) is never written into a
    /// preview that is being removed: each happens wholly before or after the removal.
    pub fn naming<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let root = self.root();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&root)
            .map_err(|e| Error::io(format!("cannot create {}", root.display()), e))?;
        let path = root.join("names.lock");
        let lock = open_lock_file(&path)?;
        lock.lock_exclusive()
            .map_err(|e| Error::io(format!("cannot lock {}", path.display()), e))?;
        let out = f();
        let _ = FileExt::unlock(&lock);
        out
    }

    /// The preview of `subject`, made (named, its folder and record written) when it has
    /// none. The second value is true when it was made now.
    #[cfg(test)]
    pub fn find_or_make(&self, subject: &Subject, git_ref: &str) -> Result<(Record, bool)> {
        self.naming(|| self.find_or_make_locked(subject, git_ref))
    }

    /// Asks for a build of the preview of `subject` (made when it has none): with
    /// `names.lock` held, a removal asked before is withdrawn (the newer request wins) and
    /// `ask` records the delivery (`enqueue`).
    pub fn ask_build<T>(
        &self,
        subject: &Subject,
        git_ref: &str,
        ask: impl FnOnce(&Record) -> Result<T>,
    ) -> Result<(Record, bool, T)> {
        self.naming(|| {
            let (record, made) = self.find_or_make_locked(subject, git_ref)?;
            let _ = fs::remove_file(self.removal_path(&record.name));
            let out = ask(&record)?;
            Ok((record, made, out))
        })
    }

    /// Asks for the removal of preview `name` (`why`: the word its log line gives): its
    /// worker removes it (after a build it is running). The newer request wins: a build
    /// asked for before is dropped with it.
    pub fn ask_removal(&self, name: &str, why: &str) -> Result<()> {
        self.naming(|| self.ask_removal_locked(name, why))
    }

    /// `ask_removal` with `names.lock` held. A preview already gone is removed already.
    fn ask_removal_locked(&self, name: &str, why: &str) -> Result<()> {
        let path = self.removal_path(name);
        if !self.dir(name).is_dir() {
            return Ok(());
        }
        match write_atomic(&path, why.as_bytes()) {
            Ok(()) => Ok(()),
            Err(_) if !self.dir(name).is_dir() => Ok(()),
            Err(e) => Err(Error::io(format!("cannot write {}", path.display()), e)),
        }
    }

    /// Whether preview `name`'s removal is asked for.
    pub fn removal_asked(&self, name: &str) -> bool {
        self.removal_path(name).exists()
    }

    /// Why preview `name`'s removal is asked for, when it is.
    pub fn removal_why(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.removal_path(name))
            .ok()
            .map(|w| w.trim().to_string())
    }

    /// Drops a removal asked for (the worker found it was wrong).
    pub fn withdraw_removal(&self, name: &str) {
        let _ = fs::remove_file(self.removal_path(name));
    }

    fn removal_path(&self, name: &str) -> PathBuf {
        self.dir(name).join("remove")
    }

    fn find_or_make_locked(&self, subject: &Subject, git_ref: &str) -> Result<(Record, bool)> {
        {
            let all = self.list();
            if let Some(r) = all.iter().find(|r| &r.subject == subject) {
                return Ok((r.clone(), false));
            }
            let taken: BTreeMap<String, Subject> = all.into_iter().map(|r| (r.name, r.subject)).collect();
            // A folder without a readable record (a crash while one was made) is taken too.
            let mut taken = taken;
            if let Ok(entries) = fs::read_dir(self.root()) {
                for e in entries.flatten() {
                    if let Some(n) = e.file_name().to_str().filter(|n| !taken.contains_key(*n)) {
                        if e.path().is_dir() {
                            taken.insert(n.to_string(), Subject::Branch(String::new()));
                        }
                    }
                }
            }
            let name = name::allocate(subject, &taken).ok_or_else(|| {
                Error::Internal(format!(
                    "no free preview name for {subject}: both of its hashed names are taken"
                ))
            })?;
            let dir = self.dir(&name);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(&dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
            let record = Record {
                name,
                subject: subject.clone(),
                git_ref: git_ref.to_string(),
                created: time::rfc3339(time::now()),
                built: None,
                built_ms: None,
                commit: None,
                published: None,
                release: None,
                refused: false,
            };
            self.put(&record)?;
            Ok((record, true))
        }
    }

    /// Writes a preview's record (its folder exists).
    pub fn put(&self, record: &Record) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(record).unwrap_or_default();
        json.push(b'\n');
        let path = self.record_path(&record.name);
        write_atomic(&path, &json).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }

    /// Forgets preview `name`: its state folder goes (its record last, so that a crash on
    /// the way leaves a preview that is found, and removed, again).
    pub fn forget(&self, name: &str) -> Result<()> {
        let dir = self.dir(name);
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten().filter(|e| e.file_name() != "preview.json") {
                let p = e.path();
                let gone = if e.file_type().is_ok_and(|t| t.is_dir()) {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                gone.map_err(|e| Error::io(format!("cannot remove {}", p.display()), e))?;
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("cannot remove {}", dir.display()), e)),
        }
    }

    /// With `names.lock` held (`naming`): the previews `keep` lets go now, their removal
    /// asked for. From one snapshot: the previews whose removal is not asked yet count;
    /// beyond `keep` of them, the least recently built go first, never `keeping` nor one
    /// that `busy` says builds or waits for a build now (it goes, if it must, after its
    /// build, when the next one is let go). So workers finishing at once never let go more
    /// than `keep` asks, nor the newest preview before it was ever built.
    pub fn let_go_locked(&self, keep: usize, keeping: &str, busy: impl Fn(&str) -> bool) -> Result<Vec<Record>> {
        let mut live = self.list();
        live.retain(|r| !self.removal_asked(&r.name));
        // Refused by the fork check: not counted, and let go when idle.
        let (refused, mut live): (Vec<Record>, Vec<Record>) = live.into_iter().partition(|r| r.refused);
        let mut out: Vec<Record> = refused
            .into_iter()
            .filter(|r| r.name != keeping && !busy(&r.name))
            .collect();
        if live.len() > keep {
            let excess = live.len() - keep;
            live.retain(|r| r.name != keeping && !busy(&r.name));
            live.sort_by_key(|r| (r.last_built_ms(), r.name.clone()));
            live.truncate(excess);
            out.extend(live);
        }
        for r in &out {
            self.ask_removal_locked(&r.name, super::work::KEEP)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> Store {
        let dir = std::env::temp_dir().join(format!("dh-previews-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Store::new(&dir, "docs")
    }

    #[test]
    fn names_are_given_once_and_found_by_subject() {
        let s = temp("names");
        let a = Subject::Branch("feature/Foo_Bar".into());
        let b = Subject::Branch("feature-foo-bar".into());
        let (ra, made) = s.find_or_make(&a, "refs/heads/feature/Foo_Bar").unwrap();
        assert!(made);
        assert_eq!(ra.name, "branch-feature-foo-bar");
        let (rb, _) = s.find_or_make(&b, "refs/heads/feature-foo-bar").unwrap();
        assert_eq!(rb.name, "branch-feature-foo-bar-a404f7");
        let (again, made) = s.find_or_make(&a, "refs/heads/feature/Foo_Bar").unwrap();
        assert!(!made);
        assert_eq!(again, ra);
        assert_eq!(s.find(&b).unwrap().name, rb.name);
        let (pr, _) = s.find_or_make(&Subject::Pull(7), "refs/pull/7/head").unwrap();
        assert_eq!(pr.name, "pr-7");
        assert_eq!(
            s.list().iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["branch-feature-foo-bar", "branch-feature-foo-bar-a404f7", "pr-7"]
        );
        // forgetting the first does not rename the second, and the first's next name is
        // the plain one again
        s.forget(&ra.name).unwrap();
        assert!(!s.dir(&ra.name).exists());
        assert_eq!(s.find(&b).unwrap().name, rb.name);
        assert_eq!(s.find(&a), None);
        fs::remove_dir_all(s.hook_dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_folder_without_its_record_keeps_its_name_taken() {
        let s = temp("damaged");
        fs::create_dir_all(s.dir("branch-a")).unwrap();
        fs::write(s.dir("branch-a").join("preview.json"), "{ damaged").unwrap();
        let (r, _) = s.find_or_make(&Subject::Branch("a".into()), "refs/heads/a").unwrap();
        assert_ne!(r.name, "branch-a");
        assert!(name::valid(&r.name));
        assert!(s.get("../x").is_none() && s.get("names.lock").is_none());
        fs::remove_dir_all(s.hook_dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn keep_lets_the_least_recently_built_go() {
        let s = temp("keep");
        for (i, b) in ["a", "b", "c", "d"].iter().enumerate() {
            let (mut r, _) = s.find_or_make(&Subject::Branch(b.to_string()), "x").unwrap();
            // built in the order d, a, c, b (b never: it counts by when it was made, long ago)
            r.built_ms = match *b {
                "b" => None,
                _ => Some([2000, 0, 3000, 1000][i] + 1_900_000_000_000),
            };
            r.created = "2020-01-01T00:00:00Z".into();
            s.put(&r).unwrap();
        }
        let names = |v: Vec<Record>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
        let idle = |_: &str| false;
        // each choice asks for the removals; withdrawn again before the next one
        let go = |keep, keeping, busy: &dyn Fn(&str) -> bool| {
            let chosen = names(s.naming(|| s.let_go_locked(keep, keeping, busy)).unwrap());
            for n in &chosen {
                assert!(s.removal_asked(n), "{n}");
                s.withdraw_removal(n);
            }
            chosen
        };
        assert_eq!(go(4, "branch-a", &idle), Vec::<String>::new());
        assert_eq!(go(3, "branch-a", &idle), ["branch-b"]);
        assert_eq!(go(2, "branch-a", &idle), ["branch-b", "branch-d"]);
        // the one just built stays, even when it is the oldest by its record
        assert_eq!(go(1, "branch-b", &idle), ["branch-d", "branch-a", "branch-c"]);
        // one that builds or waits now is never chosen, though the least recently built
        assert_eq!(go(3, "branch-a", &|n: &str| n == "branch-b"), ["branch-d"]);
        let all_busy = |n: &str| n != "branch-a";
        assert_eq!(go(1, "branch-a", &all_busy), Vec::<String>::new());
        // a removal asked already counts as gone: nothing more goes for it
        s.ask_removal("branch-b", "closed").unwrap();
        assert_eq!(go(2, "branch-a", &idle), ["branch-d"]);
        assert_eq!(go(3, "branch-a", &idle), Vec::<String>::new());
        // refused by the fork check: never counted, and let go when idle
        let mut r = s.get("branch-c").unwrap();
        r.refused = true;
        s.put(&r).unwrap();
        assert_eq!(go(3, "branch-a", &idle), ["branch-c"]);
        assert_eq!(go(3, "branch-a", &|n: &str| n == "branch-c"), Vec::<String>::new());
        // one that vanished meanwhile is removed already
        s.ask_removal("gone", "keep").unwrap();
        assert!(!s.dir("gone").exists());
        fs::remove_dir_all(s.hook_dir.parent().unwrap()).unwrap();
    }
}
