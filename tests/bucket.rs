//! Publishing to a bucket: the real binary, Debian's rclone and a real S3 server
//! (SeaweedFS, tests/s3.rs), a reader polling the bucket while a release goes up.
//!
//! The site is committed to the repo (`from = "public"`, a step that does nothing), so each
//! test says exactly which files a release has.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::s3::S3;
use crate::util::*;

/// A world whose hook publishes `public/` to `s3:site/<prefix>` (and to `extra_publish`).
fn bucket_world(name: &str, prefix: &str, extra_publish: &str) -> (World, S3) {
    let w = World::new(name);
    let s3 = S3::start(&w.path("s3"));
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nsteps = [[\"true\"]]\n[hooks.docs.publish]\nfrom = \"public\"\nkeep = 3\nbucket = \"s3:site/{prefix}\"\nrclone_config = {:?}\ncache_control = {{ \"assets/\" = \"public, max-age=31536000, immutable\" }}\n{extra_publish}",
            s3.rclone_conf.display()
        ),
    );
    (w, s3)
}

/// Makes the seed's `public/` exactly `files`, commits and pushes it.
fn push_site(w: &World, files: &BTreeMap<String, String>) -> String {
    let public = w.seed.join("public");
    let _ = fs::remove_dir_all(&public);
    for (path, content) in files {
        let f = public.join(path);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, content).unwrap();
    }
    git(&w.seed, &["add", "-A"]);
    git(&w.seed, &["commit", "-q", "--allow-empty", "-m", "site"]);
    git(&w.seed, &["push", "-q", "origin", "main"]);
    w.head()
}

fn site(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect()
}

/// A signed delivery in sync mode: the answer comes after the build.
fn deliver(w: &World) -> serde_json::Value {
    let r = w.gitee_push().run();
    let last = w.status()["last"].clone();
    assert!(!last.is_null(), "no build: {} {}", r.status, r.stderr);
    last
}

fn assert_bucket_holds(s3: &S3, prefix: &str, files: &BTreeMap<String, String>) {
    for (path, content) in files {
        let r = s3.get(&format!("{prefix}/{}", url_path(path)));
        assert_eq!(
            (r.status, String::from_utf8_lossy(&r.body).as_ref()),
            (200, content.as_str()),
            "{path} in the bucket"
        );
    }
}

/// A path as it goes in a URL (`#` and spaces escaped).
fn url_path(p: &str) -> String {
    p.replace('%', "%25").replace('#', "%23").replace(' ', "%20")
}

fn header(r: &crate::servers::HttpReply, name: &str) -> Option<String> {
    r.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn manifest(s3: &S3, prefix: &str) -> serde_json::Value {
    let r = s3.get(&format!("{prefix}/.deploy-hook/release.json"));
    assert_eq!(r.status, 200, "no manifest in the bucket");
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn a_bucket_gets_only_what_changed_and_keeps_a_removed_file_one_release() {
    requires!(S3);
    let (w, s3) = bucket_world("bucket-publish", "docs", "");
    let r1 = site(&[
        (
            "index.html",
            "<script src=\"/assets/app.1.js\"></script><script src=\"/assets/p.1.js\"></script>",
        ),
        ("guide/intro.html", "intro v1"),
        ("assets/app.1.js", "app"),
        ("assets/p.1.js", "page chunk 1"),
        ("robots.txt", "User-agent: *"),
        // rclone's --files-from would take these for comments: --files-from-raw does not.
        ("#notes.html", "notes"),
        (";semi.txt", "semi"),
        ("a b.txt", "space"),
    ]);
    let c1 = push_site(&w, &r1);
    // rclone 1.60 cannot make an S3 client when AWS_CA_BUNDLE is set; deploy-hook's must not
    // see the web server's environment.
    let reply = w
        .gitee_push()
        .env("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
        .run();
    let first = w.status()["last"].clone();
    assert_eq!(
        (reply.status, first["result"].as_str()),
        (200, Some("succeeded")),
        "{}",
        w.log_text(&first)
    );
    assert_bucket_holds(&s3, "docs", &r1);
    let m = manifest(&s3, "docs");
    assert_eq!(m["release"], first["release"], "the manifest names the release");
    assert!(first["release"].as_str().unwrap().ends_with(&c1[..7]));
    assert_eq!(m["files"].as_object().unwrap().len(), r1.len());

    let html = s3.get("docs/index.html");
    assert_eq!(header(&html, "Cache-Control").as_deref(), Some("no-cache"));
    assert!(header(&html, "Content-Type").unwrap().starts_with("text/html"));
    let asset = s3.get("docs/assets/app.1.js");
    assert_eq!(
        header(&asset, "Cache-Control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        header(&s3.get("docs/robots.txt"), "Cache-Control").as_deref(),
        Some("public, max-age=300"),
        "other files: the default"
    );

    // Marks on objects that r2 does not change (emptied behind deploy-hook's back): a
    // publish that sent them again would erase the marks.
    let empty = w.path("empty");
    fs::write(&empty, "").unwrap();
    let mark = |p: &str| s3.rclone_ok(&["copyto", &empty.to_string_lossy(), &s3.remote(&format!("docs/{p}"))]);
    for unchanged in ["guide/intro.html", "robots.txt", "assets/app.1.js"] {
        mark(unchanged);
        assert_eq!(s3.get(&format!("docs/{unchanged}")).body.len(), 0);
    }

    // r2: the index names a new chunk, the old chunk leaves the site.
    let mut r2 = r1.clone();
    r2.remove("assets/p.1.js");
    r2.insert("assets/p.2.js".into(), "page chunk 2".into());
    r2.insert(
        "index.html".into(),
        "<script src=\"/assets/app.1.js\"></script><script src=\"/assets/p.2.js\"></script>".into(),
    );
    push_site(&w, &r2);
    let second = deliver(&w);
    assert_eq!(second["result"], "succeeded", "{}", w.log_text(&second));
    let log = w.log_text(&second);
    assert!(
        log.contains("1 new, 0 changed, 1 HTML sent"),
        "the build log says what was sent:\n{log}"
    );
    for unchanged in ["guide/intro.html", "robots.txt", "assets/app.1.js"] {
        assert_eq!(
            s3.get(&format!("docs/{unchanged}")).body.len(),
            0,
            "{unchanged} is unchanged: it must not be sent again"
        );
    }
    assert_eq!(s3.get("docs/index.html").body, r2["index.html"].as_bytes());
    assert_eq!(s3.get("docs/assets/p.2.js").status, 200);
    assert_eq!(
        s3.get("docs/assets/p.1.js").status,
        200,
        "a file that left is kept while the release before may still be read"
    );
    assert_eq!(manifest(&s3, "docs")["previous"], first["release"]);

    // r3: the old chunk is in neither r3 nor r2: it goes.
    let mut r3 = r2.clone();
    r3.insert("guide/intro.html".into(), "intro v3".into());
    push_site(&w, &r3);
    let third = deliver(&w);
    assert_eq!(third["result"], "succeeded", "{}", w.log_text(&third));
    assert_eq!(s3.get("docs/assets/p.1.js").status, 404);
    assert_eq!(s3.get("docs/guide/intro.html").body, b"intro v3");
    assert_eq!(manifest(&s3, "docs")["release"], third["release"]);
    // Nothing but the site and the manifest.
    let mut expected: Vec<String> = r3.keys().cloned().collect();
    expected.push(".deploy-hook/release.json".into());
    expected.sort();
    assert_eq!(s3.list("docs"), expected);
}

/// A VitePress-shaped site: `pages` pages, each naming shared assets and its own chunk;
/// page `changed` at version `v` names a new chunk and, from v1 on, a new shared asset.
fn vp_site(pages: usize, changed: usize, v: u32) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let shared = ["assets/app.a1b2.js", "assets/style.c3d4.css"];
    for s in shared {
        f.insert(s.to_string(), format!("/* {s} */"));
    }
    if v > 0 {
        f.insert(format!("assets/extra.{v}.js"), "/* new shared asset */".into());
    }
    for i in 0..pages {
        let ver = if i == changed { v } else { 0 };
        let chunk = format!("assets/p{i}.{ver}.js");
        f.insert(chunk.clone(), format!("export default 'page {i} v{ver}'"));
        let extra = if i == changed && v > 0 {
            format!("<script src=\"/assets/extra.{v}.js\"></script>")
        } else {
            String::new()
        };
        let path = if i == 0 {
            "index.html".to_string()
        } else {
            format!("guide/p{i}.html")
        };
        f.insert(
            path,
            format!(
                "<html><head><script src=\"/{}\"></script><link href=\"/{}\">{extra}</head><body>page {i} v{ver}<script src=\"/{chunk}\"></script></body></html>",
                shared[0], shared[1]
            ),
        );
    }
    f
}

/// The `/path` assets a page names.
fn refs(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"/", "href=\"/"] {
        let mut rest = page;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

/// What a reader polling the bucket saw.
#[derive(Default, Debug)]
struct Seen {
    rounds: usize,
    /// Every version of each page read.
    versions: BTreeMap<String, BTreeSet<String>>,
    /// A page named an asset the bucket answered 404 for: "page -> asset".
    misses: Vec<String>,
    /// Answers that were neither 200 nor (for an asset) 404.
    errors: Vec<String>,
}

/// Reads `pages` under `prefix` every 10 ms, anonymously as a CDN would, and every asset
/// each names that it has not found yet (content-hashed assets never change), until `stop`.
fn poll(s3: &S3, prefix: &str, pages: &[&str], stop: &AtomicBool, seen: &Mutex<Seen>) {
    let mut found: BTreeSet<String> = BTreeSet::new();
    while !stop.load(Ordering::SeqCst) {
        for page in pages {
            let r = s3.get(&format!("{prefix}/{page}"));
            if r.status != 200 {
                seen.lock().unwrap().errors.push(format!("{page}: {}", r.status));
                continue;
            }
            let body = String::from_utf8_lossy(&r.body).into_owned();
            for asset in refs(&body) {
                if found.contains(&asset) {
                    continue;
                }
                match s3.get(&format!("{prefix}/{asset}")).status {
                    200 => {
                        found.insert(asset);
                    }
                    404 => seen.lock().unwrap().misses.push(format!("{page} -> {asset}")),
                    other => seen.lock().unwrap().errors.push(format!("{asset}: {other}")),
                }
            }
            seen.lock()
                .unwrap()
                .versions
                .entry(page.to_string())
                .or_default()
                .insert(body);
        }
        seen.lock().unwrap().rounds += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the reader has read `page` with `text` in it.
fn wait_seen(seen: &Mutex<Seen>, page: &str, text: &str) {
    wait_for(
        &format!("the reader to read {page} with {text:?}"),
        Duration::from_secs(120),
        || {
            seen.lock()
                .unwrap()
                .versions
                .get(page)
                .is_some_and(|v| v.iter().any(|b| b.contains(text)))
        },
    );
}

#[test]
fn a_reader_never_gets_a_page_whose_assets_are_missing() {
    requires!(S3);
    let (w, s3) = bucket_world("bucket-zero-miss", "zm", "");
    let pages = ["guide/p5.html", "index.html", "guide/p6.html"];
    push_site(&w, &vp_site(60, 5, 0));
    let first = deliver(&w);
    assert_eq!(first["result"], "succeeded", "{}", w.log_text(&first));

    // The one-page change that brings a new chunk and a new shared asset, while a reader polls.
    push_site(&w, &vp_site(60, 5, 1));
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Seen::default());
    std::thread::scope(|scope| {
        scope.spawn(|| poll(&s3, "zm", &pages, &stop, &seen));
        wait_seen(&seen, "guide/p5.html", "page 5 v0");
        let second = deliver(&w);
        assert_eq!(second["result"], "succeeded", "{}", w.log_text(&second));
        wait_seen(&seen, "guide/p5.html", "page 5 v1");
        stop.store(true, Ordering::SeqCst);
    });
    let seen = seen.into_inner().unwrap();
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    assert!(
        seen.misses.is_empty(),
        "a reader got a page without its assets: {:?}",
        seen.misses
    );
    assert!(seen.rounds > 2, "{seen:?}");

    // The same reader catches the wrong order, so the check above can fail: r1's files in
    // another path, then the changed page before its assets (sent by hand with rclone).
    let local = w.path("wrong");
    for (v, dir) in [(0, "r1"), (1, "r2")] {
        for (p, c) in vp_site(60, 5, v) {
            let f = local.join(dir).join(&p);
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, c).unwrap();
        }
    }
    s3.rclone_ok(&["copy", &local.join("r1").to_string_lossy(), &s3.remote("wrong")]);
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Seen::default());
    std::thread::scope(|scope| {
        scope.spawn(|| poll(&s3, "wrong", &pages, &stop, &seen));
        wait_seen(&seen, "guide/p5.html", "page 5 v0");
        let page = local.join("r2/guide/p5.html");
        s3.rclone_ok(&["copyto", &page.to_string_lossy(), &s3.remote("wrong/guide/p5.html")]);
        wait_seen(&seen, "guide/p5.html", "page 5 v1");
        s3.rclone_ok(&["copy", &local.join("r2").to_string_lossy(), &s3.remote("wrong")]);
        stop.store(true, Ordering::SeqCst);
    });
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.misses.iter().any(|m| m.starts_with("guide/p5.html -> assets/")),
        "HTML before its assets must be seen as a miss: {seen:?}"
    );
}

/// Every object of `site/<prefix>/` but the manifest, with its bytes.
fn objects(s3: &S3, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    s3.list(prefix)
        .into_iter()
        .filter(|p| !p.starts_with(".deploy-hook/"))
        .map(|p| {
            let bytes = s3.get(&format!("{prefix}/{}", url_path(&p))).body;
            (p, bytes)
        })
        .collect()
}

/// The files of a release folder, with their bytes.
fn folder(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn rollback_makes_the_bucket_serve_the_old_release_exact_bytes() {
    requires!(S3);
    let (w, s3) = bucket_world("bucket-rollback", "rb", "");
    push_site(&w, &vp_site(10, 3, 0));
    let first = deliver(&w);
    assert_eq!(first["result"], "succeeded", "{}", w.log_text(&first));
    push_site(&w, &vp_site(10, 3, 1));
    let second = deliver(&w);
    assert_eq!(second["result"], "succeeded", "{}", w.log_text(&second));
    let r1 = first["release"].as_str().unwrap();
    // The bucket's local copy (no local `to`): in the state folder.
    let copy = w.hook_dir().join("bucket/site.releases");
    let r1_files = folder(&copy.join(r1));
    assert_eq!(r1_files.len(), vp_site(10, 3, 0).len());

    let out = w.cmd(&["rollback", "docs"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("bucket s3:site/rb now serves release {r1}")),
        "{said}"
    );
    let m = manifest(&s3, "rb");
    assert_eq!(m["release"], r1);
    assert_eq!(m["previous"], second["release"]);
    let now = objects(&s3, "rb");
    for (path, bytes) in &r1_files {
        assert_eq!(now.get(path), Some(bytes), "{path}: r1's exact bytes");
    }
    // r2's new paths are kept one more release (a page read just before still works).
    assert!(now.contains_key("assets/extra.1.js"));
    let status = w.cmd(&["status", "docs", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["bucket"]["release"], r1, "{v}");
    assert_eq!(v["bucket"]["remote"], "s3:site/rb");
}

#[test]
fn a_bucket_that_is_down_switches_nothing_anywhere() {
    requires!(S3);
    let (w, mut s3) = bucket_world("bucket-down", "down", "");
    // A local `to` beside the bucket: it switches with it, or not at all.
    let served = w.path("www/docs");
    fs::create_dir_all(served.parent().unwrap()).unwrap();
    let text = fs::read_to_string(&w.config).unwrap();
    fs::write(
        &w.config,
        text.replace("keep = 3\n", &format!("keep = 3\nto = {:?}\n", served.display())),
    )
    .unwrap();
    push_site(&w, &site(&[("index.html", "one")]));
    let first = deliver(&w);
    assert_eq!(first["result"], "succeeded", "{}", w.log_text(&first));
    assert_eq!(fs::read_to_string(served.join("index.html")).unwrap(), "one");
    let live = fs::read_link(&served).unwrap();

    s3.stop();
    push_site(&w, &site(&[("index.html", "two")]));
    let second = deliver(&w);
    let log = w.log_text(&second);
    assert_eq!(second["result"], "failed", "{log}");
    assert_eq!(second["failed_step"], "publish bucket", "{log}");
    assert!(log.contains("nothing was switched"), "{log}");
    // What to do next, in the log and in status: nothing retries by itself.
    let next = "nothing retries by itself; once the bucket answers, `deploy-hook run docs` publishes the newest commit (so does the next push)";
    assert!(log.contains(&format!("next: {next}")), "{log}");
    let out = w.cmd(&["status", "docs"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains(&format!(
            "  next:    the last publish to the bucket failed and nothing was switched; {next}"
        )),
        "{said}"
    );
    // And `run` does try again (not "unchanged": the failed commit is not live).
    let out = w.cmd(&["run", "docs", "--wait"]);
    let again = w.status()["last"].clone();
    assert_eq!(
        again["failed_step"],
        "publish bucket",
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ne!(again["id"], second["id"]);
    assert_eq!(fs::read_link(&served).unwrap(), live, "the local `to` was not switched");
    assert_eq!(fs::read_to_string(served.join("index.html")).unwrap(), "one");
    let releases: Vec<String> = fs::read_dir(w.path("www/docs.releases"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        releases.len(),
        1,
        "the new release was not left beside `to`: {releases:?}"
    );
    assert_eq!(w.status()["live_release"], first["release"]);
}

#[test]
fn status_check_and_after_publish_see_the_bucket() {
    requires!(S3);
    let record = "changed.txt";
    let (w, s3) = bucket_world(
        "bucket-status",
        "st",
        &format!(
            "after_publish = [\"sh\", \"-c\", \"cp \\\"$DEPLOY_HOOK_CHANGED\\\" {record}; echo \\\"$DEPLOY_HOOK_RELEASE\\\" >> {record}\"]\n"
        ),
    );
    push_site(
        &w,
        &site(&[("index.html", "one"), ("a.html", "a"), ("assets/x.1.js", "x")]),
    );
    let first = deliver(&w);
    assert_eq!(first["result"], "succeeded", "{}", w.log_text(&first));
    push_site(
        &w,
        &site(&[("index.html", "two"), ("a.html", "a"), ("assets/x.2.js", "x2")]),
    );
    let second = deliver(&w);
    assert_eq!(second["result"], "succeeded", "{}", w.log_text(&second));
    let changed = fs::read_to_string(w.repo.join(record)).unwrap();
    // The page that changed, not the new asset (never served, so in no cache).
    assert_eq!(
        changed,
        format!("index.html\n{}\n", second["release"].as_str().unwrap()),
        "{}",
        w.log_text(&second)
    );

    let out = w.cmd(&["status", "docs"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "bucket:  s3:site/st serves {}",
            second["release"].as_str().unwrap()
        )),
        "{text}"
    );

    // A rollback changes what the bucket serves: after_publish runs for it too.
    let out = w.cmd(&["rollback", "docs"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let changed = fs::read_to_string(w.repo.join(record)).unwrap();
    let first_release = first["release"].as_str().unwrap();
    assert_eq!(changed, format!("index.html\n{first_release}\n"));
    let ran = fs::read_to_string(w.hook_dir().join("bucket/after_publish.log")).unwrap();
    assert!(ran.starts_with(&format!("release {first_release}\n$ sh -c ")), "{ran}");
    assert!(ran.ends_with("-> exit status 0\n"), "{ran}");
    assert!(w.cmd(&["resume", "docs"]).status.success());

    let out = w.cmd(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    // (The test's state folder is root's, which check fails on; the bucket's lines pass.)
    let from = text.find("rclone found").unwrap_or_else(|| panic!("{text}"));
    let to = text.find("after_publish runs").unwrap_or_else(|| panic!("{text}"));
    let lines: Vec<&str> = text[from..to].lines().skip(1).filter(|l| l.len() > 8).collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines.iter().all(|l| l.trim_start().starts_with("ok ")), "{text}");
    assert!(text.contains("remote s3 is defined in"), "{text}");
    assert!(
        text.contains(&format!(
            "s3:site/st answers; it serves release {}",
            second["release"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(
        text.contains("this user can write and delete objects in s3:site/st"),
        "{text}"
    );
    assert!(
        s3.list("st/.deploy-hook").iter().all(|p| !p.contains("probe")),
        "the probe is deleted"
    );

    // A remote the config does not define is a failed check that says which.
    let conf = fs::read_to_string(&w.config).unwrap();
    fs::write(&w.config, conf.replace("\"s3:site/st\"", "\"nope:site/st\"")).unwrap();
    let out = w.cmd(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("remote nope is not defined in"), "{text}");
}

#[test]
fn web_hosts_and_a_bucket_switch_together_or_not_at_all() {
    requires!(Root, WwwData, Sshd, Nginx, S3);
    let w = World::new("bucket-hosts");
    let mut s3 = S3::start(&w.path("s3"));
    let fleet = crate::webhosts::Fleet::start(&w, 2);
    let pages = "mkdir -p public && echo \"$DEPLOY_HOOK_COMMIT\" > public/index.html";
    w.config(
        "gitee",
        &format!(
            "steps = [{}]\n[hooks.docs.publish]\nfrom = \"public\"\nkeep = 3\n{}bucket = \"s3:site/fleet\"\nrclone_config = {:?}\n",
            toml_str(pages),
            fleet.publish_toml(),
            s3.rclone_conf.display()
        ),
    );
    let build = |w: &World| {
        w.cmd(&["run", "docs", "--wait"]);
        w.status()["last"].clone()
    };
    let serves = |commit: &str| {
        for h in &fleet.hosts {
            assert_eq!(h.get("/index.html").1.trim(), commit, "{}", h.name);
        }
    };
    let c1 = w.push("index.md", "one\n");
    let first = build(&w);
    assert_eq!(first["result"], "succeeded", "{}", w.log_text(&first));
    serves(&c1);
    assert_eq!(s3.get("fleet/index.html").body, format!("{c1}\n").as_bytes());
    let release1 = first["release"].as_str().unwrap().to_string();

    // A web host that cannot switch: the bucket had switched, and is put back.
    w.push("index.md", "two\n");
    fs::write(fleet.hosts[1].fault("fail-switch"), "").unwrap();
    let failed = build(&w);
    let log = w.log_text(&failed);
    assert_eq!(
        (failed["result"].as_str(), failed["failed_step"].as_str()),
        (Some("failed"), Some("publish web2")),
        "{log}"
    );
    assert!(log.contains(&format!("bucket: serves {release1} again")), "{log}");
    serves(&c1);
    assert_eq!(manifest(&s3, "fleet")["release"], release1.as_str());
    assert_eq!(s3.get("fleet/index.html").body, format!("{c1}\n").as_bytes(), "{log}");
    fs::remove_file(fleet.hosts[1].fault("fail-switch")).unwrap();

    // A bucket that is down: no web host is switched.
    s3.stop();
    let down = build(&w);
    let log = w.log_text(&down);
    assert_eq!(down["failed_step"], "publish bucket", "{log}");
    serves(&c1);
    for h in &fleet.hosts {
        assert_eq!(h.live().as_deref(), Some(release1.as_str()), "{}", h.name);
        assert_eq!(
            h.releases(),
            std::slice::from_ref(&release1),
            "{}: the new release is removed",
            h.name
        );
    }
}

#[test]
fn check_fails_two_hooks_on_one_bucket_path() {
    let w = World::new("bucket-shared");
    let conf = w.path("rclone.conf");
    let hook = |name: &str, remote: &str| {
        format!(
            "[hooks.{name}]\nprovider = \"gitee\"\nsecret_file = {:?}\nrepo = {:?}\n[hooks.{name}.publish]\nfrom = \"public\"\nbucket = {remote:?}\nrclone_config = {:?}\n",
            w.secret_file.display(),
            w.repo.display(),
            conf.display()
        )
    };
    let write = |second: &str| {
        fs::write(
            &w.config,
            format!(
                "state_dir = {:?}\n[log]\nsyslog = \"\"\n{}{}",
                w.state.display(),
                hook("docs", "s3:site/docs"),
                hook("blog", second)
            ),
        )
        .unwrap();
        String::from_utf8_lossy(&w.cmd(&["check"]).stdout).into_owned()
    };
    let text = write("s3:site/docs/");
    assert!(
        text.contains("FAIL  hooks blog and docs publish to the same bucket path s3:site/docs"),
        "{text}"
    );
    let text = write("s3:site/docs/blog");
    assert!(
        text.contains("warn  hooks blog and docs publish to nested bucket paths"),
        "{text}"
    );
    let text = write("s3:site/blog");
    assert!(!text.contains("bucket path"), "{text}");
}

#[test]
fn a_rollback_holds_the_bucket_until_resume() {
    requires!(S3);
    let (w, s3) = bucket_world("bucket-hold", "hold", "");
    let page = |v: &str| site(&[("index.html", v), ("assets/a.js", "a")]);
    let served = || String::from_utf8_lossy(&s3.get("hold/index.html").body).into_owned();
    let ok = |args: &[&str]| {
        let out = w.cmd(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut releases = Vec::new();
    for v in ["v1", "v2", "v3-bad"] {
        push_site(&w, &page(v));
        let b = deliver(&w);
        assert_eq!(b["result"], "succeeded", "{}", w.log_text(&b));
        releases.push(b["release"].as_str().unwrap().to_string());
    }
    assert_eq!(served(), "v3-bad");
    let said = ok(&["rollback", "docs"]);
    assert!(said.contains("bucket s3:site/hold"), "{said}");
    assert_eq!(served(), "v2");
    assert_eq!(manifest(&s3, "hold")["release"], releases[1].as_str());

    // Held: the build makes its release in the bucket's local copy, and sends the bucket
    // nothing.
    push_site(&w, &page("v4"));
    let held = deliver(&w);
    let log = w.log_text(&held);
    assert_eq!(held["result"], "succeeded", "{log}");
    assert_eq!(served(), "v2", "held: the bucket is not switched\n{log}");
    assert_eq!(manifest(&s3, "hold")["release"], releases[1].as_str());
    let v4 = held["release"].as_str().unwrap().to_string();
    assert!(w.hook_dir().join("bucket/site.releases").join(&v4).is_dir(), "{log}");
    assert!(
        !log.contains("bucket: publishing"),
        "nothing is sent while held:\n{log}"
    );

    let said = ok(&["resume", "docs"]);
    assert_eq!(served(), "v4", "{said}");
    assert_eq!(manifest(&s3, "hold")["release"], v4.as_str());
    // Back from v4 is v2, what the bucket served before it, not v3-bad.
    ok(&["rollback", "docs"]);
    assert_eq!(served(), "v2");
}
