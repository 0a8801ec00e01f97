//! What one publish to a bucket sends, and in which order: the pure part of `bucket`, with
//! no rclone and no network, so that the order that never serves a page without its assets
//! is decided (and tested) here.
//!
//! A bucket has no atomic switch. What a reader gets is decided object by object, so the
//! order of the uploads is the promise:
//!
//! 1. non-HTML files whose path is new (content-hashed assets get new names): no page of
//!    the live release names them, so no reader sees them yet;
//! 2. non-HTML files whose path was live with other bytes (`hashmap.json`, `robots.txt`):
//!    they may name a new asset of class 1, which is already there;
//! 3. the HTML files: each names assets of classes 1 and 2 or unchanged ones, all there;
//! 4. deletions: objects that are in neither the new release nor the live one (a page
//!    loaded before the last publish still finds its assets for one more release);
//! 5. the manifest, `.deploy-hook/release.json`, last: the bucket serves the new release
//!    once it says so.
//!
//! Within a class, files go up in parallel (one rclone call per class and Cache-Control
//! value), so the classes are the only order there is.
//!
//! What changed is decided by the live release's manifest (each file's sha256), read from
//! the bucket, against the new release's files, so a one-page change sends a few objects,
//! not the site. Paths that a publish that did not finish may have left with other bytes
//! (`pending`) are sent again whatever the manifest says.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sys::text::printable;

/// Where the manifest lives in the bucket, beside the site.
pub const MANIFEST: &str = ".deploy-hook/release.json";
/// The folder of the manifest: no site file may be in it.
pub const OWN_FOLDER: &str = ".deploy-hook";
/// The manifest's format; a manifest of another format is read as no manifest (every file
/// is sent again, nothing is deleted).
const FORMAT: u32 = 1;

/// One file of a release: its content's hash and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub sha256: String,
    pub size: u64,
}

/// `.deploy-hook/release.json`: the release a bucket serves, every file of it with its
/// hash, and the objects kept there that are not files of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub release: String,
    /// The release the bucket served before this one.
    #[serde(default)]
    pub previous: Option<String>,
    pub files: BTreeMap<String, Entry>,
    /// Objects in the bucket that are not files of this release: the files of the release
    /// before that left in this one (kept one release, for pages loaded before the switch),
    /// what a deletion could not remove, and what a publish that did not finish left. The
    /// next publish deletes those that are in neither its release nor this one.
    #[serde(default)]
    pub kept: BTreeSet<String>,
    /// `publish.cache_control` when the files were sent (prefix, value; longest first): a
    /// file whose value changes since is sent again, with its new header.
    #[serde(default)]
    pub cache_control: Vec<(String, String)>,
}

impl Manifest {
    /// Reads a manifest from the bucket; `None` when it is not one deploy-hook can use (the
    /// caller then treats the bucket as holding no release it knows).
    pub fn parse(bytes: &[u8]) -> Option<Manifest> {
        Manifest::read(bytes).ok()
    }

    /// Reads a manifest from the bucket, or says why it is not one deploy-hook can use.
    /// Whoever holds the bucket's keys can write it, and its names go into local paths
    /// (`release`, `previous`: a release folder) and into the lists of objects to delete
    /// (`files`, `kept`), so only a release name `releases::name` makes and plain relative
    /// paths are taken; anything else makes the whole manifest damaged.
    pub fn read(bytes: &[u8]) -> Result<Manifest, String> {
        let m = serde_json::from_slice::<Manifest>(bytes).map_err(|e| format!("it is not JSON of a manifest ({e})"))?;
        if m.format != FORMAT {
            return Err(format!("its format is {}, not {FORMAT}", m.format));
        }
        for name in std::iter::once(&m.release).chain(&m.previous) {
            if !crate::publish::releases::valid_name(name) {
                return Err(format!("{:?} is not a release name", printable(name, 80)));
            }
        }
        if let Some(p) = m.files.keys().chain(&m.kept).find(|p| !plain_path(p)) {
            return Err(format!(
                "{:?} is not a plain relative path of the site",
                printable(p, 200)
            ));
        }
        Ok(m)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Compact: it is read and written on every publish (a 2,000-file site: ~240 KB).
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A path as `scan` makes them: relative, `/`-separated, no empty, `.` or `..` part, no line
/// break or NUL, and not in deploy-hook's own folder.
fn plain_path(p: &str) -> bool {
    !p.contains(['\n', '\r', '\0'])
        && p.split('/').all(|part| !matches!(part, "" | "." | ".."))
        && p.split('/').next() != Some(OWN_FOLDER)
}

/// Whether a path is an HTML page: it names assets, so it goes up after them, and it is
/// served `no-cache`.
pub fn is_html(path: &str) -> bool {
    let lower = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    lower.ends_with(".html") || lower.ends_with(".htm")
}

/// The `Cache-Control` a file is uploaded with: `no-cache` for HTML (a reader must ask
/// again to see the next release), else the value of the longest matching prefix of
/// `by_prefix` (longest first), else none (the bucket's and the CDN's own rules apply).
pub fn cache_control<'a>(path: &str, by_prefix: &'a [(String, String)]) -> Option<&'a str> {
    if is_html(path) {
        return Some("no-cache");
    }
    by_prefix
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix.as_str()))
        .map(|(_, v)| v.as_str())
}

/// Every file of a release folder with its hash, by path relative to `root` (`/`
/// separated). A symlink (they stay inside the release: every publish checks) is read
/// through, as a web server would serve it: a bucket has no links.
pub fn scan(root: &Path) -> Result<BTreeMap<String, Entry>, String> {
    let mut out = BTreeMap::new();
    let mut buf = vec![0u8; 128 * 1024];
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("cannot read {}: {e}", root.display()))?;
    walk(root, &mut Vec::new(), &mut vec![real_root], &mut out, &mut buf)?;
    if let Some(own) = out.keys().find(|p| p.starts_with(&format!("{OWN_FOLDER}/"))) {
        return Err(format!(
            "the output holds {own}, but {OWN_FOLDER}/ in the bucket is deploy-hook's own (its manifest): rename that folder"
        ));
    }
    Ok(out)
}

fn walk(
    root: &Path,
    at: &mut Vec<OsString>,
    chain: &mut Vec<PathBuf>,
    out: &mut BTreeMap<String, Entry>,
    buf: &mut [u8],
) -> Result<(), String> {
    let rel: PathBuf = at.iter().collect();
    let dir = root.join(&rel);
    let entries = fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let path = entry.path();
        let rel_child = rel.join(&name);
        let Some(key) = rel_child.to_str().filter(|k| !k.contains(['\n', '\r'])) else {
            return Err(format!(
                "{} cannot be listed for rclone (a file name must be UTF-8 without a line break): rename it",
                rel_child.display()
            ));
        };
        // Through symlinks: what the link leads to is what a web server would serve.
        let meta = fs::metadata(&path).map_err(|e| format!("cannot read {key}: {e}"))?;
        if meta.is_dir() {
            let real = path.canonicalize().map_err(|e| format!("cannot read {key}: {e}"))?;
            // A link back up the tree would make the walk endless (and the bucket hold
            // infinitely many paths).
            if chain.contains(&real) {
                return Err(format!(
                    "{key} is a symlink to a folder that holds it: a bucket cannot hold that loop"
                ));
            }
            chain.push(real);
            at.push(name);
            walk(root, at, chain, out, buf)?;
            at.pop();
            chain.pop();
        } else if meta.is_file() {
            let mut f = fs::File::open(&path).map_err(|e| format!("cannot read {key}: {e}"))?;
            let mut h = Sha256::new();
            loop {
                let n = f.read(buf).map_err(|e| format!("cannot read {key}: {e}"))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            let sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            out.insert(
                key.to_string(),
                Entry {
                    sha256,
                    size: meta.len(),
                },
            );
        } else {
            return Err(format!("{key} is not a file or a folder"));
        }
    }
    Ok(())
}

/// What a publish sends, class by class, and the manifest it writes last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Class 1: non-HTML files at paths the live release does not have.
    pub new_paths: Vec<String>,
    /// Class 2: non-HTML files the live release has with other bytes.
    pub changed: Vec<String>,
    /// Class 3: HTML files that are new or changed.
    pub html: Vec<String>,
    /// Class 4: objects in neither the new release nor the live one.
    pub delete: Vec<String>,
    /// Class 5: what the bucket serves once it is written.
    pub manifest: Manifest,
    /// Files the bucket already has with these bytes.
    pub unchanged: usize,
}

impl Plan {
    /// Decides what to send to a bucket whose manifest is `live` (`None`: nothing known
    /// there) so that it serves `files` as `release`. `pending` are paths a publish that did
    /// not finish may have left with other bytes than `live` says.
    pub fn new(
        release: &str,
        files: BTreeMap<String, Entry>,
        live: Option<&Manifest>,
        pending: &BTreeSet<String>,
        table: &[(String, String)],
    ) -> Plan {
        let empty = BTreeMap::new();
        let live_files = live.map(|l| &l.files).unwrap_or(&empty);
        let live_table = live.map(|l| l.cache_control.as_slice()).unwrap_or(&[]);
        let (mut new_paths, mut changed, mut html) = (Vec::new(), Vec::new(), Vec::new());
        let mut unchanged = 0;
        for (path, entry) in &files {
            let was = live_files.get(path);
            let same_header = cache_control(path, live_table) == cache_control(path, table);
            if was == Some(entry) && same_header && !pending.contains(path) {
                unchanged += 1;
            } else if is_html(path) {
                html.push(path.clone());
            } else if was.is_some() {
                changed.push(path.clone());
            } else {
                new_paths.push(path.clone());
            }
        }
        let gone = |p: &&String| !files.contains_key(*p) && !live_files.contains_key(*p);
        // What was kept one release (or left over) and is in neither release goes now.
        let delete: Vec<String> = live
            .map(|l| l.kept.iter().filter(gone).cloned().collect())
            .unwrap_or_default();
        // Kept for one release: the live files that leave, and what an unfinished publish
        // may have put there that is in neither release (a reader may have been sent it).
        let kept = live_files
            .keys()
            .filter(|p| !files.contains_key(*p))
            .chain(pending.iter().filter(gone))
            .cloned()
            .collect();
        Plan {
            new_paths,
            changed,
            html,
            delete,
            manifest: Manifest {
                format: FORMAT,
                release: release.to_string(),
                previous: live.map(|l| l.release.clone()),
                files,
                kept,
                cache_control: table.to_vec(),
            },
            unchanged,
        }
    }

    /// Every path this plan writes, classes 1 to 3: what the bucket may hold with other
    /// bytes than its manifest says if the publish stops before the manifest is written.
    pub fn touched(&self) -> impl Iterator<Item = &String> {
        self.new_paths.iter().chain(&self.changed).chain(&self.html)
    }

    /// The paths a CDN may hold old copies of once this plan is done: files that were live
    /// and changed (classes 2 and 3, HTML that is new included: a CDN may have cached its
    /// 404), and deleted ones. New assets were never served, so they are not listed.
    pub fn purge_list(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .changed
            .iter()
            .chain(&self.html)
            .chain(&self.delete)
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// The bytes of the files that go up.
    pub fn upload_bytes(&self) -> u64 {
        self.touched()
            .filter_map(|p| self.manifest.files.get(p))
            .map(|e| e.size)
            .sum()
    }

    /// A deletion that failed: those objects stay in the bucket, and the manifest keeps
    /// them for the next publish to delete.
    pub fn keep_undeleted(&mut self) {
        let left = std::mem::take(&mut self.delete);
        self.manifest.kept.extend(left);
    }
}

/// Groups `paths` by the `Cache-Control` each is uploaded with, in a stable order: one
/// rclone call per group, since rclone sets one header for all the files of a call.
pub fn by_cache_control<'a>(
    paths: &'a [String],
    table: &'a [(String, String)],
) -> BTreeMap<Option<&'a str>, Vec<&'a str>> {
    let mut groups: BTreeMap<Option<&str>, Vec<&str>> = BTreeMap::new();
    for p in paths {
        groups.entry(cache_control(p, table)).or_default().push(p);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(content: &str) -> Entry {
        Entry {
            sha256: format!("{:x}", Sha256::digest(content.as_bytes())),
            size: content.len() as u64,
        }
    }

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, Entry> {
        list.iter().map(|(p, c)| (p.to_string(), entry(c))).collect()
    }

    #[test]
    fn html_is_told_by_its_extension() {
        assert!(is_html("index.html") && is_html("guide/A.HTM") && is_html("x.Html"));
        assert!(!is_html("app.js") && !is_html("html/logo.svg") && !is_html("page.html.gz"));
    }

    #[test]
    fn cache_control_by_the_longest_prefix_and_never_for_html() {
        let table = vec![
            ("assets/fonts/".to_string(), "public, max-age=600".to_string()),
            ("assets/".to_string(), "public, max-age=31536000, immutable".to_string()),
            (String::new(), "public, max-age=300".to_string()),
        ];
        assert_eq!(cache_control("index.html", &table), Some("no-cache"));
        assert_eq!(cache_control("assets/page.html", &table), Some("no-cache"));
        assert_eq!(
            cache_control("assets/app.1a2b.js", &table),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(
            cache_control("assets/fonts/a.woff2", &table),
            Some("public, max-age=600")
        );
        assert_eq!(cache_control("robots.txt", &table), Some("public, max-age=300"));
        assert_eq!(cache_control("robots.txt", &[]), None);
    }

    #[test]
    fn a_first_publish_sends_everything_in_classes() {
        let f = files(&[("index.html", "i"), ("assets/a.1.js", "a"), ("robots.txt", "r")]);
        let p = Plan::new("20260101-000000-000-r1", f, None, &BTreeSet::new(), &[]);
        assert_eq!(p.new_paths, ["assets/a.1.js", "robots.txt"]);
        assert!(p.changed.is_empty() && p.delete.is_empty() && p.manifest.kept.is_empty());
        assert_eq!(p.html, ["index.html"]);
        assert_eq!((p.manifest.previous.as_deref(), p.unchanged), (None, 0));
    }

    #[test]
    fn only_what_changed_is_sent_and_a_removed_file_is_kept_one_release() {
        let r1 = Plan::new(
            "20260101-000000-000-r1",
            files(&[
                ("index.html", "i1"),
                ("p.html", "p1"),
                ("assets/p.1.js", "1"),
                ("map.json", "m1"),
            ]),
            None,
            &BTreeSet::new(),
            &[],
        )
        .manifest;
        // r2: p.html names a new chunk, the old one leaves, map.json changes in place.
        let r2 = Plan::new(
            "20260101-000000-000-r2",
            files(&[
                ("index.html", "i1"),
                ("p.html", "p2"),
                ("assets/p.2.js", "2"),
                ("map.json", "m2"),
            ]),
            Some(&r1),
            &BTreeSet::new(),
            &[],
        );
        assert_eq!(r2.new_paths, ["assets/p.2.js"]);
        assert_eq!(r2.changed, ["map.json"]);
        assert_eq!(r2.html, ["p.html"]);
        assert_eq!(r2.unchanged, 1);
        assert!(
            r2.delete.is_empty(),
            "a file that left is kept while its release may be read"
        );
        assert_eq!(r2.manifest.kept, BTreeSet::from(["assets/p.1.js".to_string()]));
        assert_eq!(r2.manifest.previous.as_deref(), Some("20260101-000000-000-r1"));
        assert_eq!(r2.purge_list(), ["map.json", "p.html"]);
        // r3: the chunk of r1 is in neither r3 nor r2: it goes now.
        let r3 = Plan::new(
            "20260101-000000-000-r3",
            files(&[
                ("index.html", "i1"),
                ("p.html", "p2"),
                ("assets/p.2.js", "2"),
                ("map.json", "m2"),
            ]),
            Some(&r2.manifest),
            &BTreeSet::new(),
            &[],
        );
        assert_eq!(r3.delete, ["assets/p.1.js"]);
        assert_eq!(r3.touched().count(), 0);
        assert!(r3.manifest.kept.is_empty());
    }

    #[test]
    fn a_file_that_comes_back_is_not_deleted() {
        let r1 = Plan::new(
            "20260101-000000-000-r1",
            files(&[("a.html", "a"), ("x.js", "x")]),
            None,
            &BTreeSet::new(),
            &[],
        )
        .manifest;
        let r2 = Plan::new(
            "20260101-000000-000-r2",
            files(&[("a.html", "a")]),
            Some(&r1),
            &BTreeSet::new(),
            &[],
        )
        .manifest;
        let r3 = Plan::new(
            "20260101-000000-000-r3",
            files(&[("a.html", "a"), ("x.js", "x2")]),
            Some(&r2),
            &BTreeSet::new(),
            &[],
        );
        assert!(r3.delete.is_empty());
        assert_eq!(r3.new_paths, ["x.js"], "not in the live manifest: sent as new");
    }

    #[test]
    fn what_an_unfinished_publish_touched_is_sent_again_or_kept() {
        let r1 = Plan::new(
            "20260101-000000-000-r1",
            files(&[("a.html", "a"), ("x.js", "x")]),
            None,
            &BTreeSet::new(),
            &[],
        )
        .manifest;
        // A publish of another release stopped after sending a.html, x.js and orphan.js.
        let pending: BTreeSet<String> = ["a.html", "x.js", "orphan.js"].map(String::from).into();
        let p = Plan::new(
            "20260101-000000-000-r2",
            files(&[("a.html", "a"), ("x.js", "x")]),
            Some(&r1),
            &pending,
            &[],
        );
        assert_eq!(
            (p.html.as_slice(), p.changed.as_slice()),
            (&["a.html".to_string()][..], &["x.js".to_string()][..])
        );
        assert_eq!(p.manifest.kept, BTreeSet::from(["orphan.js".to_string()]));
        let next = Plan::new(
            "20260101-000000-000-r3",
            files(&[("a.html", "a")]),
            Some(&p.manifest),
            &BTreeSet::new(),
            &[],
        );
        assert_eq!(next.delete, ["orphan.js"]);
    }

    #[test]
    fn an_undeleted_object_is_kept_for_the_next_publish() {
        let r1 = Plan::new(
            "20260101-000000-000-r1",
            files(&[("a.html", "a"), ("x.js", "x")]),
            None,
            &BTreeSet::new(),
            &[],
        )
        .manifest;
        let r2 = Plan::new(
            "20260101-000000-000-r2",
            files(&[("a.html", "a")]),
            Some(&r1),
            &BTreeSet::new(),
            &[],
        )
        .manifest;
        let mut r3 = Plan::new(
            "20260101-000000-000-r3",
            files(&[("a.html", "b")]),
            Some(&r2),
            &BTreeSet::new(),
            &[],
        );
        assert_eq!(r3.delete, ["x.js"]);
        r3.keep_undeleted();
        assert!(r3.delete.is_empty() && r3.manifest.kept.contains("x.js"));
    }

    #[test]
    fn a_changed_cache_control_sends_the_files_it_changes_again() {
        let old = vec![(String::new(), "public, max-age=300".to_string())];
        let new = vec![
            ("assets/".to_string(), "public, max-age=31536000, immutable".to_string()),
            (String::new(), "public, max-age=300".to_string()),
        ];
        let f = files(&[("a.html", "a"), ("assets/x.1.js", "x"), ("robots.txt", "r")]);
        let r1 = Plan::new("20260101-000000-000-r1", f.clone(), None, &BTreeSet::new(), &old).manifest;
        let same = Plan::new("20260101-000000-000-r2", f.clone(), Some(&r1), &BTreeSet::new(), &old);
        assert_eq!(same.touched().count(), 0);
        let p = Plan::new("20260101-000000-000-r2", f, Some(&r1), &BTreeSet::new(), &new);
        assert_eq!(p.changed, ["assets/x.1.js"], "only the file whose header changes");
        assert_eq!(p.manifest.cache_control, new);
    }

    #[test]
    fn manifests_round_trip_and_other_formats_are_not_read() {
        let m = Plan::new(
            "20260101-000000-000-r1",
            files(&[("a.html", "a")]),
            None,
            &BTreeSet::new(),
            &[],
        )
        .manifest;
        assert_eq!(Manifest::parse(&m.to_bytes()), Some(m.clone()));
        assert_eq!(
            Manifest::parse(b"{\"format\": 2, \"release\": \"x\", \"files\": {}}"),
            None
        );
        assert_eq!(Manifest::parse(b"<html>"), None);
        // Names that would leave the release folder or the bucket path: damaged.
        let damaged = |f: &dyn Fn(&mut Manifest)| {
            let mut bad = m.clone();
            f(&mut bad);
            Manifest::read(&bad.to_bytes()).unwrap_err()
        };
        assert!(damaged(&|b| b.release = "../../etc".into()).contains("is not a release name"));
        assert!(damaged(&|b| b.previous = Some("/tmp".into())).contains("is not a release name"));
        for p in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "",
            "a/",
            ".deploy-hook/release.json",
            "a\nb",
        ] {
            let why = damaged(&|b| {
                b.kept.insert(p.into());
            });
            assert!(why.contains("is not a plain relative path"), "{p:?}: {why}");
            let e = m.files.values().next().unwrap().clone();
            assert!(damaged(&|b| {
                b.files.insert(p.into(), e.clone());
            })
            .contains("is not a plain relative path"));
        }
        assert!(Manifest::read(&m.to_bytes()).is_ok());
    }

    #[test]
    fn scanning_reads_through_links_and_refuses_what_a_bucket_cannot_hold() {
        let d = std::env::temp_dir().join(format!("dh-bucket-scan-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("a")).unwrap();
        fs::write(d.join("a/x.js"), "x").unwrap();
        fs::write(d.join("#notes.html"), "n").unwrap();
        std::os::unix::fs::symlink("x.js", d.join("a/y.js")).unwrap();
        std::os::unix::fs::symlink("a", d.join("latest")).unwrap();
        let got = scan(&d).unwrap();
        let keys: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(keys, ["#notes.html", "a/x.js", "a/y.js", "latest/x.js", "latest/y.js"]);
        assert_eq!(got["a/y.js"], entry("x"));
        std::os::unix::fs::symlink("..", d.join("a/up")).unwrap();
        assert!(scan(&d).unwrap_err().contains("loop"));
        fs::remove_file(d.join("a/up")).unwrap();
        fs::write(d.join("bad\nname.js"), "b").unwrap();
        assert!(scan(&d).unwrap_err().contains("line break"));
        fs::remove_file(d.join("bad\nname.js")).unwrap();
        fs::create_dir_all(d.join(".deploy-hook")).unwrap();
        fs::write(d.join(".deploy-hook/release.json"), "{}").unwrap();
        assert!(scan(&d).unwrap_err().contains("deploy-hook's own"));
        fs::remove_dir_all(&d).unwrap();
    }
}
