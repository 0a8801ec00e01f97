//! The publish order against a bucket in memory that looks, after every single object it
//! writes or deletes, at what a reader could get at that instant. The same check over a
//! wrong order finds the misses, so it can fail; tests/bucket.rs does the same through
//! rclone and a real S3 server, with a reader polling it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::plan::is_html;
use super::*;

/// A bucket in memory, and the readers' view of it after every change.
#[derive(Default)]
struct Memory {
    objects: BTreeMap<String, Vec<u8>>,
    headers: BTreeMap<String, Option<String>>,
    /// Each instant a page named an asset the bucket did not have: "page -> asset".
    misses: Vec<String>,
    /// The calls made, in order: "upload N", "put PATH", "delete N", "read PATH".
    calls: Vec<String>,
    /// Fails the first upload that holds this path.
    fail_upload_of: Option<String>,
}

/// The `/path` references of a page or a map: `src="/x"`, `href="/x"`, `"/x"`.
fn names(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter_map(|s| s.strip_prefix('/'))
        .map(String::from)
        .collect()
}

impl Memory {
    /// What a reader could get now: each page, and what it names, followed (a page names
    /// map.json, which names chunks). An object no page leads to is not reached: a new
    /// asset that names another new one is never read before the pages that name it.
    fn look(&mut self) {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<(String, String)> = self
            .objects
            .keys()
            .filter(|p| is_html(p))
            .map(|p| (p.clone(), p.clone()))
            .collect();
        while let Some((page, path)) = todo.pop() {
            if !seen.insert(path.clone()) {
                continue;
            }
            let Some(bytes) = self.objects.get(&path) else {
                self.misses.push(format!("{page} -> {path}"));
                continue;
            };
            for next in names(&String::from_utf8_lossy(bytes)) {
                todo.push((path.clone(), next));
            }
        }
    }
}

impl Store for Memory {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        self.calls.push(format!("read {path}"));
        Ok(self.objects.get(path).cloned())
    }

    fn upload(&mut self, src: &Path, paths: &[&str], cache_control: Option<&str>) -> Result<(), String> {
        self.calls.push(format!("upload {}", paths.len()));
        if let Some(bad) = self.fail_upload_of.take_if(|bad| paths.contains(&bad.as_str())) {
            return Err(format!("injected failure uploading {bad}"));
        }
        // One by one, looking after each: files of one call go up in any order.
        for p in paths {
            let bytes = fs::read(src.join(p)).map_err(|e| e.to_string())?;
            self.objects.insert(p.to_string(), bytes);
            self.headers.insert(p.to_string(), cache_control.map(String::from));
            self.look();
        }
        Ok(())
    }

    fn put(&mut self, local: &Path, path: &str, cache_control: &str) -> Result<(), String> {
        self.calls.push(format!("put {path}"));
        self.objects
            .insert(path.to_string(), fs::read(local).map_err(|e| e.to_string())?);
        self.headers.insert(path.to_string(), Some(cache_control.to_string()));
        self.look();
        Ok(())
    }

    fn delete(&mut self, paths: &[String]) -> Result<(), String> {
        self.calls.push(format!("delete {}", paths.len()));
        for p in paths {
            self.objects.remove(p);
            self.look();
        }
        Ok(())
    }
}

struct Site {
    dir: PathBuf,
    local: Local,
    table: Vec<(String, String)>,
}

impl Site {
    fn new(name: &str) -> Site {
        let dir = std::env::temp_dir().join(format!("dh-bucket-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Site {
            local: Local::new(&dir.join("state")),
            table: vec![
                ("assets/".into(), "public, max-age=31536000, immutable".into()),
                (String::new(), "public, max-age=300".into()),
            ],
            dir,
        }
    }

    /// A release folder: version `v` of page p, which names its own chunk (and, from v2 on,
    /// a new shared asset); index names the shared app; map.json names p's chunk.
    fn release(&self, name: &str, v: u32) -> PathBuf {
        let r = self.dir.join(name);
        let files: Vec<(String, String)> = vec![
            (
                "index.html".into(),
                "<script src=\"/assets/app.1.js\"></script><link href=\"/map.json\">".into(),
            ),
            ("assets/app.1.js".into(), "app".into()),
            (
                "p.html".into(),
                format!(
                    "<script src=\"/assets/p.{v}.js\"></script>{}",
                    if v >= 2 { "<link href=\"/assets/extra.js\">" } else { "" }
                ),
            ),
            (format!("assets/p.{v}.js"), format!("chunk {v}")),
            ("map.json".into(), format!("{{\"p\": \"/assets/p.{v}.js\"}}")),
        ];
        for (p, c) in files
            .into_iter()
            .chain((v >= 2).then(|| ("assets/extra.js".into(), "x".into())))
        {
            let f = r.join(p);
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, c).unwrap();
        }
        r
    }

    fn publish(&self, store: &mut Memory, src: &Path, release: &str) -> Result<Upload, String> {
        let mut up = upload(store, &self.local, &self.table, src, release, &mut |_| {})?;
        switch(store, &self.local, &self.table, &mut up, &mut |_| {})?;
        Ok(up)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn served_release(store: &mut Memory) -> String {
    served(store).unwrap().unwrap().release
}

#[test]
fn the_order_never_serves_a_page_without_its_assets() {
    let s = Site::new("order");
    let mut b = Memory::default();
    s.publish(
        &mut b,
        &s.release("20260101-000000-000-r1", 1),
        "20260101-000000-000-r1",
    )
    .unwrap();
    b.calls.clear();
    let up = s
        .publish(
            &mut b,
            &s.release("20260101-000000-000-r2", 2),
            "20260101-000000-000-r2",
        )
        .unwrap();
    assert!(b.misses.is_empty(), "a reader missed: {:?}", b.misses);
    // Read the manifest; new assets (one call per Cache-Control), changed map.json, HTML,
    // the manifest last (nothing to delete yet).
    assert_eq!(
        b.calls,
        [
            "read .deploy-hook/release.json",
            "upload 2",
            "upload 1",
            "upload 1",
            "put .deploy-hook/release.json"
        ]
    );
    assert_eq!(served_release(&mut b), "20260101-000000-000-r2");
    assert_eq!(up.plan.new_paths, ["assets/extra.js", "assets/p.2.js"]);
    assert_eq!(up.plan.unchanged, 2, "index.html and app.1.js are not sent again");
    assert!(
        b.objects.contains_key("assets/p.1.js"),
        "r1's chunk stays while r2 is live"
    );
    assert_eq!(b.headers["p.html"].as_deref(), Some("no-cache"));
    assert_eq!(b.headers["map.json"].as_deref(), Some("public, max-age=300"));
    assert_eq!(
        b.headers["assets/p.2.js"].as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(b.headers[MANIFEST].as_deref(), Some("no-cache"));
    // r3 = r2's files again: r1's chunk, in neither r3 nor r2, is deleted.
    s.publish(
        &mut b,
        &s.release("20260101-000000-000-r3", 2),
        "20260101-000000-000-r3",
    )
    .unwrap();
    assert!(!b.objects.contains_key("assets/p.1.js"));
    assert!(b.misses.is_empty(), "{:?}", b.misses);
    assert!(s.local.pending().is_empty());
}

#[test]
fn the_check_finds_the_misses_of_a_wrong_order() {
    let s = Site::new("wrong");
    let mut b = Memory::default();
    s.publish(
        &mut b,
        &s.release("20260101-000000-000-r1", 1),
        "20260101-000000-000-r1",
    )
    .unwrap();
    // The same plan sent HTML first: the reader's check must see p.html name missing assets.
    let src = s.release("20260101-000000-000-r2", 2);
    let files = plan::scan(&src).unwrap();
    let live = served(&mut b).unwrap();
    let p = Plan::new(
        "20260101-000000-000-r2",
        files,
        live.as_ref(),
        &BTreeSet::new(),
        &s.table,
    );
    send(&mut b, &src, &p.html, &s.table).unwrap();
    send(&mut b, &src, &p.new_paths, &s.table).unwrap();
    assert!(
        b.misses.iter().any(|m| m == "p.html -> assets/p.2.js"),
        "the check must catch HTML sent before its assets: {:?}",
        b.misses
    );
}

#[test]
fn a_failed_switch_is_restored_from_the_live_release() {
    let s = Site::new("restore");
    let mut b = Memory::default();
    let r1 = s.release("20260101-000000-000-r1", 1);
    s.publish(&mut b, &r1, "20260101-000000-000-r1").unwrap();
    let before = b.objects.clone();
    b.fail_upload_of = Some("p.html".into());
    let mut up = upload(
        &mut b,
        &s.local,
        &s.table,
        &s.release("20260101-000000-000-r2", 2),
        "20260101-000000-000-r2",
        &mut |_| {},
    )
    .unwrap();
    let err = switch(&mut b, &s.local, &s.table, &mut up, &mut |_| {}).unwrap_err();
    assert!(err.contains("injected"), "{err}");
    assert_eq!(
        b.objects["map.json"],
        fs::read(s.release("20260101-000000-000-r2", 2).join("map.json")).unwrap()
    );
    assert!(
        !s.local.pending().is_empty(),
        "the bucket is not what its manifest says"
    );
    restore(&mut b, &s.local, &up, Some(&r1)).unwrap();
    for (path, bytes) in &before {
        if path != MANIFEST {
            assert_eq!(&b.objects[path], bytes, "{path} is r1's again");
        }
    }
    let m = served(&mut b).unwrap().unwrap();
    assert_eq!(m.release, "20260101-000000-000-r1");
    assert!(
        m.kept.contains("assets/p.2.js"),
        "the new paths sent are deleted later: {:?}",
        m.kept
    );
    assert!(s.local.pending().is_empty());
    assert!(b.misses.is_empty(), "{:?}", b.misses);
    // Two publishes later they are gone.
    s.publish(
        &mut b,
        &s.release("20260101-000000-000-r3", 3),
        "20260101-000000-000-r3",
    )
    .unwrap();
    s.publish(
        &mut b,
        &s.release("20260101-000000-000-r4", 3),
        "20260101-000000-000-r4",
    )
    .unwrap();
    assert!(!b.objects.contains_key("assets/p.2.js"));
}

#[test]
fn what_a_stopped_publish_sent_is_sent_again() {
    let s = Site::new("stopped");
    let mut b = Memory::default();
    s.publish(
        &mut b,
        &s.release("20260101-000000-000-r1", 1),
        "20260101-000000-000-r1",
    )
    .unwrap();
    // Phase 1 of r2, then the publish stops (superseded, killed): nothing is switched.
    let up = upload(
        &mut b,
        &s.local,
        &s.table,
        &s.release("20260101-000000-000-r2", 2),
        "20260101-000000-000-r2",
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(served_release(&mut b), "20260101-000000-000-r1");
    assert!(s.local.pending().contains("p.html"));
    drop(up);
    // Someone changes map.json in the bucket by hand: it is pending, so it is sent again.
    b.objects.insert("map.json".into(), b"{}".to_vec());
    let up = s
        .publish(
            &mut b,
            &s.release("20260101-000000-000-r1b", 1),
            "20260101-000000-000-r1b",
        )
        .unwrap();
    assert!(up.plan.changed.contains(&"map.json".to_string()), "{:?}", up.plan);
    assert_eq!(
        b.objects["map.json"],
        fs::read(s.release("20260101-000000-000-r1", 1).join("map.json")).unwrap()
    );
    assert!(
        up.plan.manifest.kept.contains("assets/extra.js"),
        "a stray new path is kept, then deleted"
    );
}

#[test]
fn a_rollback_serves_the_old_release_exact_bytes() {
    let s = Site::new("rollback");
    let mut b = Memory::default();
    let r1 = s.release("20260101-000000-000-r1", 1);
    s.publish(&mut b, &r1, "20260101-000000-000-r1").unwrap();
    s.publish(
        &mut b,
        &s.release("20260101-000000-000-r2", 2),
        "20260101-000000-000-r2",
    )
    .unwrap();
    let up = s.publish(&mut b, &r1, "20260101-000000-000-r1").unwrap();
    assert_eq!(up.was_live(), Some("20260101-000000-000-r2"));
    for (path, entry) in plan::scan(&r1).unwrap() {
        let got = &b.objects[&path];
        assert_eq!(got.len() as u64, entry.size);
        assert_eq!(got, &fs::read(r1.join(&path)).unwrap(), "{path}");
    }
    assert_eq!(
        served(&mut b).unwrap().unwrap().previous.as_deref(),
        Some("20260101-000000-000-r2")
    );
    assert!(b.misses.is_empty(), "{:?}", b.misses);
}

#[test]
fn a_probe_leaves_nothing() {
    let s = Site::new("probe");
    let mut b = Memory::default();
    fs::create_dir_all(s.local.dir()).unwrap();
    probe(&mut b, s.local.dir()).unwrap();
    assert!(b.objects.is_empty());
    assert!(b.calls[0].starts_with("put .deploy-hook/probe-"), "{:?}", b.calls);
}
