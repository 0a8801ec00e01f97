//! Releases that cost only what changed, and stay what they were: identical files are
//! shared (one inode) with the live release, a later publish never writes into an older
//! one, nothing in a release points outside it, and a build killed after its switch is
//! recorded as the published build it was.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::*;

/// Every file of a release: relative path -> (inode, content).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u64, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(root, &p, out);
            } else if t.is_file() {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, (e.metadata().unwrap().ino(), fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn releases(www: &Path) -> PathBuf {
    let mut name = www.file_name().unwrap().to_os_string();
    name.push(".releases");
    www.with_file_name(name)
}

#[test]
fn releases_share_identical_files_and_a_later_publish_never_writes_into_an_older_one() {
    let w = World::new("share");
    let www = w.path("www");
    // No `clean`: `grow.txt` is appended to in place, as some generators do; if a release
    // shared an inode with the output, the next build would change the live release.
    let step = "mkdir -p dist/assets && cp index.md dist/index.html && printf 'logo' > dist/assets/logo.svg \
                && head -c 100000 /dev/zero > dist/assets/big.bin && echo \"$DEPLOY_HOOK_COMMIT\" >> dist/grow.txt";
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nsteps = [{}]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}",
            toml_str(step),
            www.to_str().unwrap()
        ),
    );
    w.push("index.md", "one\n");
    assert_eq!(w.gitee_push().run().word(), "succeeded");
    let first = w.status()["last"]["release"].as_str().unwrap().to_string();
    let first_dir = releases(&www).join(&first);
    let before = snapshot(&first_dir);
    assert_eq!(before.len(), 4, "{before:?}");

    w.push("index.md", "two\n");
    let r = w.gitee_push().run();
    assert_eq!(r.word(), "succeeded", "{}", r.json);
    let s = w.status();
    let second = s["last"]["release"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    let after = snapshot(&releases(&www).join(&second));

    // The older release is exactly as it was: same inodes, same bytes.
    assert_eq!(snapshot(&first_dir), before, "publishing changed an older release");
    // Identical files are one inode; changed ones are new inodes.
    for shared in ["assets/logo.svg", "assets/big.bin"] {
        let p = PathBuf::from(shared);
        assert_eq!(before[&p].0, after[&p].0, "{shared} is not shared");
        assert!(fs::metadata(first_dir.join(shared)).unwrap().nlink() >= 2);
    }
    for changed in ["index.html", "grow.txt"] {
        let p = PathBuf::from(changed);
        assert_ne!(before[&p].0, after[&p].0, "{changed} changed but shares the old inode");
        assert_ne!(before[&p].1, after[&p].1);
    }
    assert_eq!(fs::read_to_string(www.join("index.html")).unwrap(), "two\n");
    let log = w.log_text(&s["last"]);
    assert!(log.contains("2 files shared with the live release, 2 written"), "{log}");
    // The output's own files are not any release's: the next build may rewrite them.
    let out_ino = fs::metadata(w.repo.join("dist/grow.txt")).unwrap().ino();
    assert_ne!(out_ino, after[Path::new("grow.txt")].0);
}

/// Commits a symlink `name -> target` in the seed checkout and pushes it.
fn push_symlink(w: &World, name: &str, target: &str) {
    let path = w.seed.join(name);
    let _ = fs::remove_file(&path);
    let _ = fs::remove_dir_all(&path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, &path).unwrap();
    git(&w.seed, &["add", "-A"]);
    git(&w.seed, &["commit", "-q", "-m", &format!("link {name}")]);
    git(&w.seed, &["push", "-q", "origin", "main"]);
}

#[test]
fn nothing_outside_the_repo_or_the_output_is_ever_published() {
    let w = World::new("escape");
    let www = w.path("www");
    let outside = w.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("index.html"), "not yours").unwrap();
    // A plain static site: the output is committed, nothing is built.
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nsteps = [[\"true\"]]\n[hooks.docs.publish]\nfrom = \"public\"\nto = {:?}",
            www.to_str().unwrap()
        ),
    );

    // 1. `from` itself is a symlink that leaves the repo.
    push_symlink(&w, "public", outside.to_str().unwrap());
    let r = w.gitee_push().run();
    assert_eq!(r.word(), "failed", "{}", r.json);
    let s = w.status();
    assert_eq!(s["last"]["failed_step"], "publish");
    let log = w.log_text(&s["last"]);
    assert!(log.contains("outside the repo"), "{log}");
    assert!(fs::symlink_metadata(&www).is_err(), "a release was published");

    // 2. A symlink in the output that leaves it: the log names it.
    fs::remove_file(w.seed.join("public")).unwrap();
    w.push("public/index.html", "<h1>docs</h1>\n");
    push_symlink(&w, "public/leak.txt", w.secret_file.to_str().unwrap());
    let r = w.gitee_push().run();
    assert_eq!(r.word(), "failed", "{}", r.json);
    let s = w.status();
    let log = w.log_text(&s["last"]);
    assert!(
        log.contains("symlink that leaves it: leak.txt ->"),
        "the log does not name the link: {log}"
    );
    assert!(!r.raw.windows(SECRET.len()).any(|x| x == SECRET.as_bytes()));
    assert!(fs::symlink_metadata(&www).is_err(), "a release was published");
    // ... also one that climbs out with `..`.
    fs::remove_file(w.seed.join("public/leak.txt")).unwrap();
    push_symlink(&w, "public/sub/up.txt", "../../../hook.secret");
    assert_eq!(w.gitee_push().run().word(), "failed");
    assert!(w
        .log_text(&w.status()["last"])
        .contains("sub/up.txt -> ../../../hook.secret"));

    // ... and one that climbs out through another link (`s -> ../..`, `t -> s/../..`):
    // read link by link it stays inside, resolved as the kernel does it does not.
    fs::remove_dir_all(w.seed.join("public/sub")).unwrap();
    push_symlink(&w, "public/a/b/s", "../..");
    push_symlink(&w, "public/a/b/t", "s/../../hook.secret");
    assert_eq!(w.gitee_push().run().word(), "failed");
    assert!(w.log_text(&w.status()["last"]).contains("a/b/t -> s/../../hook.secret"));
    fs::remove_dir_all(w.seed.join("public/a")).unwrap();

    // 3. `from` resolving to the repo itself or into its .git (where a remote URL's
    // credentials live): refused.
    let public = fs::read_to_string(w.seed.join("public/index.html")).unwrap();
    for target in [".git", "."] {
        let _ = fs::remove_dir_all(w.seed.join("public"));
        push_symlink(&w, "public", target);
        let r = w.gitee_push().run();
        assert_eq!(r.word(), "failed", "public -> {target}: {}", r.json);
        let log = w.log_text(&w.status()["last"]);
        assert!(log.contains("never published"), "{log}");
        assert!(fs::symlink_metadata(&www).is_err(), "a release was published");
    }
    fs::remove_file(w.seed.join("public")).unwrap();
    w.push("public/index.html", &public);

    // 4. Symlinks within the output are fine.
    push_symlink(&w, "public/home.html", "index.html");
    let r = w.gitee_push().run();
    assert_eq!(r.word(), "succeeded", "{}", w.log_text(&w.status()["last"]));
    assert_eq!(fs::read_to_string(www.join("home.html")).unwrap(), "<h1>docs</h1>\n");
}

#[test]
fn a_build_killed_after_its_switch_is_recorded_as_published() {
    let w = World::new("kill-after-switch");
    let www = w.path("www");
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nsteps = [\"mkdir -p dist && cp index.md dist/index.html\"]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}\nkeep = 2",
            www.to_str().unwrap()
        ),
    );
    w.gitee_push().run();
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
    let first = fs::read_link(&www).unwrap();
    // Old releases with many files, so that pruning them (after the switch) takes a while.
    for name in ["0001-old-a", "0002-old-b", "0003-old-c"] {
        let dir = releases(&www).join(name);
        fs::create_dir_all(&dir).unwrap();
        for i in 0..4000 {
            fs::write(dir.join(format!("{i}.html")), "old").unwrap();
        }
    }

    let head = w.push("index.md", "second\n");
    w.gitee_push().run();
    wait_for("the switch", Duration::from_secs(60), || {
        fs::read_link(&www).is_ok_and(|l| l != first)
    });
    // Killed right after the switch (or a little later: the record must be right either way).
    let s = w.status();
    if s["state"] == "building" {
        let pid = s["current"]["pid"].as_i64().unwrap() as i32;
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        wait_for("the worker to die", Duration::from_secs(10), || w.lock_free());
    }
    // The next `run` recovers what the killed worker left.
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = w.wait_idle();
    let killed = s["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["commit"] == head.as_str() && b["id"] != s["last"]["id"])
        .cloned()
        .unwrap_or_else(|| s["history"][1].clone());
    assert_eq!(killed["result"], "succeeded", "{s}");
    assert!(killed["failed_step"].is_null(), "{s}");
    // The recovered build is live, so `run` found nothing to do.
    assert_eq!(s["last"]["result"], "unchanged", "{s}");
    let release = killed["release"].as_str().unwrap();
    let live = fs::read_link(&www).unwrap();
    assert_eq!(release, live.file_name().unwrap().to_str().unwrap(), "{s}");
    assert_eq!(s["live_release"], killed["release"], "{s}");
    assert!(
        s["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["result"] != "interrupted"),
        "{s}"
    );
    assert_eq!(fs::read_to_string(www.join("index.html")).unwrap(), "second\n");
}
