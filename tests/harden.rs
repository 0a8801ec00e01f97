//! What a red-team pass found, each pinned: text that www-data or a bucket controls never
//! reaches a terminal raw, a hook that stays root reads and runs only what root alone
//! controls, a damaged bucket manifest is never trusted, a bucket that never answers fails
//! in seconds, and a Gitee signing secret shared between hooks is pointed out.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::check::text;
use crate::util::*;

/// Terminal control sequences: ESC (CSI, OSC), BEL, and the 8-bit CSI.
fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n')
}

#[test]
fn check_escapes_a_remote_url_a_build_step_set() {
    let w = World::new("check-escape");
    w.config("gitlab", "steps = [\"true\"]");
    // A build step (www-data) can set remote.origin.url to anything: a title change (OSC),
    // a screen clear (CSI) and a bell.
    let url = "/srv/x\u{1b}]0;PWNED\u{7}\u{1b}[2J.git";
    git(&w.repo, &["remote", "set-url", "origin", url]);
    let out = w.cmd(&["check"]);
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(t.contains("remote origin is"), "{t}");
    assert!(!has_control(&t), "raw control characters reach the terminal: {t:?}");
    assert!(t.contains("\\u{1b}]0;PWNED\\u{7}"), "{t}");
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!has_control(&e), "{e:?}");
}

/// A world whose hook publishes `public/` (committed) to an rclone `alias` remote: a local
/// folder stands for the bucket, since what is tested is what deploy-hook asks of it.
fn alias_bucket_world(name: &str) -> (World, std::path::PathBuf) {
    let w = World::new(name);
    let bucket = w.path("bucket");
    // rclone's `cat` of a missing file on a local remote says "directory not found", as
    // for a missing bucket: the first publish finds a manifest it cannot use instead.
    fs::create_dir_all(bucket.join("site/.deploy-hook")).unwrap();
    fs::write(bucket.join("site/.deploy-hook/release.json"), "{}").unwrap();
    let conf = w.path("rclone.conf");
    fs::write(&conf, format!("[b]\ntype = alias\nremote = {}\n", bucket.display())).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nsteps = [[\"true\"]]\n[hooks.docs.publish]\nfrom = \"public\"\nbucket = \"b:site\"\nrclone_config = {:?}\n",
            conf.display()
        ),
    );
    fs::create_dir_all(w.seed.join("public")).unwrap();
    w.push("public/index.html", "v1\n");
    (w, bucket)
}

#[test]
fn a_bucket_manifest_naming_paths_outside_the_site_is_ignored() {
    requires!(S3);
    let (w, bucket) = alias_bucket_world("manifest-damaged");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let manifest = bucket.join("site/.deploy-hook/release.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();

    // Whoever holds the bucket's keys rewrites the manifest: its release leads out of the
    // releases folder, and its kept list names objects outside the bucket path, which the
    // next publish would delete.
    fs::write(bucket.join("precious.txt"), "not the site's\n").unwrap();
    fs::create_dir_all(w.path("outside")).unwrap();
    fs::write(w.path("outside/precious.txt"), "not the bucket's\n").unwrap();
    m["release"] = "../../../outside".into();
    m["kept"] = serde_json::json!([
        "../precious.txt",
        "../../outside/precious.txt",
        "index.html/../../precious.txt"
    ]);
    fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();

    w.push("public/index.html", "v2\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = w.log_text(&w.status()["last"]);
    assert!(
        log.contains(".deploy-hook/release.json in the bucket is damaged, \"../../../outside\" is not a release name: it is ignored, every file is sent, nothing is deleted"),
        "{log}"
    );
    assert_eq!(
        fs::read_to_string(bucket.join("precious.txt")).unwrap(),
        "not the site's\n"
    );
    assert_eq!(
        fs::read_to_string(w.path("outside/precious.txt")).unwrap(),
        "not the bucket's\n"
    );
    assert_eq!(fs::read_to_string(bucket.join("site/index.html")).unwrap(), "v2\n");

    // The same with a good release name but a kept path that climbs out.
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    m["kept"] = serde_json::json!(["../precious.txt"]);
    fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    w.push("public/index.html", "v3\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = w.log_text(&w.status()["last"]);
    assert!(
        log.contains("is damaged, \"../precious.txt\" is not a plain relative path of the site"),
        "{log}"
    );
    assert_eq!(
        fs::read_to_string(bucket.join("precious.txt")).unwrap(),
        "not the site's\n"
    );
    // And the manifest the publish wrote is a good one again.
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m["kept"], serde_json::json!([]), "{m}");
}
