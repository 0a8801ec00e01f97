//! Setups where `check` once said "everything holds" while every delivery or build then
//! failed. Each is built here for real (the build or the delivery fails first, as it did
//! for the user), and check must FAIL it, say what to do, and hold again once that is done.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::check::{as_www_data, chown, text, www_data_world};
use crate::util::*;
use crate::webhosts::Fleet;

/// A build step as a site generator runs it: it empties its output folder first
/// (VitePress' `emptyOutDir`), then writes the pages.
const SITE_STEP: &str =
    "rm -rf out && mkdir -p out/assets && echo \"$DEPLOY_HOOK_COMMIT\" > out/index.html && echo js > out/assets/app.js";

/// Root runs the site's build by hand in the checkout (`pnpm docs:build` as root): the
/// output folder and everything in it become root's.
fn root_builds_by_hand(w: &World) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(SITE_STEP)
        .env("DEPLOY_HOOK_COMMIT", "by-hand")
        .current_dir(&w.repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::metadata(w.repo.join("out/assets/app.js"))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap(),
        0
    );
}

fn check_as_both(w: &World) -> Vec<(i32, String)> {
    [w.cmd(&["check"]), as_www_data(w, &["check"])]
        .iter()
        .map(|o| (o.status.code().unwrap_or(-1), text(o)))
        .collect()
}

/// A build as the web server runs it; returns (exit code, the build's log).
fn build_as_www_data(w: &World) -> (i32, String) {
    let out = as_www_data(w, &["run", "docs", "--wait"]);
    let log = w.log_text(&w.status()["last"]);
    (out.status.code().unwrap_or(-1), format!("{}\n{log}", text(&out)))
}

/// Root's dist in the checkout: the next build fails with EACCES, check names the files
/// and the chown, and after it both hold.
fn root_files_in_the_checkout(w: &World) {
    let (code, log) = build_as_www_data(w);
    assert_eq!(code, 0, "{log}");
    root_builds_by_hand(w);
    w.push("index.md", "after root built by hand\n");
    let (code, log) = build_as_www_data(w);
    assert_eq!(code, 1, "the build must fail as it did for the user: {log}");
    assert!(log.contains("Permission denied"), "{log}");
    for (code, t) in check_as_both(w) {
        assert_eq!(code, 1, "{t}");
        assert!(
            t.contains(&format!(
                "FAIL  checkout {}: 4 files not owned by www-data",
                w.repo.display()
            )),
            "{t}"
        );
        assert!(
            t.contains(&format!("{} (owned by root)", w.repo.join("out").display())),
            "{t}"
        );
        assert!(
            t.contains(&format!("fix: chown -R www-data: {}", w.repo.display())),
            "{t}"
        );
    }
    chown("www-data:", true, &w.repo);
    let (code, log) = build_as_www_data(w);
    assert_eq!(code, 0, "{log}");
}

#[test]
fn root_files_in_the_checkout_fail_check_for_a_local_publish() {
    requires!(Root, WwwData);
    let w = www_data_world("setup-root-dist");
    w.config(
        "gitlab",
        &format!(
            "steps = [{}]\n[hooks.docs.publish]\nfrom = \"out\"\nto = {:?}\nkeep = 2\n",
            toml_str(SITE_STEP),
            w.path("www/site").to_str().unwrap()
        ),
    );
    root_files_in_the_checkout(&w);
    let out = w.cmd(&["check"]);
    assert!(out.status.success(), "{}", text(&out));

    // A release a prune cannot remove: root copied a folder of its own into the oldest
    // release. The publishes after it leave it half-deleted, beyond keep = 2.
    let releases = w.path("www/site.releases");
    let oldest = fs::read_dir(&releases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    fs::create_dir_all(oldest.join("assets/by-root")).unwrap();
    fs::write(oldest.join("assets/by-root/x.js"), "x").unwrap();
    for i in 0..2 {
        w.push("index.md", &format!("publish {i}\n"));
        let (code, log) = build_as_www_data(&w);
        assert_eq!(code, 0, "{log}");
    }
    assert!(oldest.exists(), "the prune could not remove it");
    let name = oldest.file_name().unwrap().to_str().unwrap();
    for (code, t) in check_as_both(&w) {
        assert_eq!(code, 1, "{t}");
        assert!(
            t.contains(&format!(
                "FAIL  a prune could not remove {name} (beyond keep = 2): it is left half-deleted"
            )),
            "{t}"
        );
        assert!(
            t.contains(&format!("{}", oldest.join("assets/by-root").display())),
            "{t}"
        );
        assert!(
            t.contains(&format!("fix: chown -R www-data: {}", releases.display())),
            "{t}"
        );
    }
    chown("www-data:", true, &releases);
    w.push("index.md", "after the chown\n");
    let (code, log) = build_as_www_data(&w);
    assert_eq!(code, 0, "{log}");
    assert!(!oldest.exists(), "pruned at last");
    let out = w.cmd(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Lets www-data use the fleet's ssh setup (its key must be the user's own, mode 0600).
fn fleet_for_www_data(fleet: &Fleet) {
    chown("www-data:", false, &fleet.ssh_config);
    chown("www-data:", false, &fleet.ssh_config.with_file_name("known_hosts"));
    for h in &fleet.hosts {
        chown("www-data:", false, &h.dir.join("client_key"));
    }
}

#[test]
fn root_files_in_the_checkout_and_on_a_web_host_fail_check_for_a_hook_with_hosts() {
    requires!(Root, WwwData, Sshd, Nginx);
    let w = www_data_world("setup-root-hosts");
    let fleet = Fleet::start(&w, 1);
    fleet_for_www_data(&fleet);
    w.config(
        "gitlab",
        &format!(
            "steps = [{}]\n[hooks.docs.publish]\nfrom = \"out\"\nkeep = 2\n{}",
            toml_str(SITE_STEP),
            fleet.publish_toml()
        ),
    );
    root_files_in_the_checkout(&w);
    let out = w.cmd(&["check"]);
    assert!(out.status.success(), "{}", text(&out));

    // On web1, a folder of root's in the oldest release: the prune (rm -rf as the ssh
    // user) stops there on every publish after.
    let web1 = &fleet.hosts[0];
    let releases = Path::new(&format!("{}.releases", web1.path.display())).to_path_buf();
    let oldest = releases.join(&web1.releases()[0]);
    fs::create_dir_all(oldest.join("by-root")).unwrap();
    fs::write(oldest.join("by-root/x.js"), "x").unwrap();
    for i in 0..2 {
        w.push("index.md", &format!("publish {i}\n"));
        let (code, log) = build_as_www_data(&w);
        assert_eq!(code, 0, "{log}");
    }
    assert!(oldest.exists(), "the prune could not remove it");
    let name = oldest.file_name().unwrap().to_str().unwrap();
    for (code, t) in check_as_both(&w) {
        assert_eq!(code, 1, "{t}");
        assert!(
            t.contains(&format!(
                "FAIL  host web1: 2 entries in {} not the publishing user's",
                releases.display()
            )),
            "{t}"
        );
        assert!(t.contains(&oldest.join("by-root").display().to_string()), "{t}");
        assert!(
            t.contains(&format!("left beyond keep = 2 by a prune that failed: {name}")),
            "{t}"
        );
        assert!(
            t.contains(&format!(
                "fix: on web1: chown -R {}: {}",
                crate::webhosts::WEB_USER,
                releases.display()
            )),
            "{t}"
        );
    }
    chown(&format!("{}:", crate::webhosts::WEB_USER), true, &releases);
    w.push("index.md", "after the chown\n");
    let (code, log) = build_as_www_data(&w);
    assert_eq!(code, 0, "{log}");
    assert!(!oldest.exists(), "pruned at last");
    let out = w.cmd(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn check_as_the_build_user_names_a_checkout_git_calls_dubious() {
    requires!(Root, WwwData);
    // The hook is www-data's, its checkout another user's: git, as www-data, refuses it.
    let w = www_data_world("setup-dubious");
    w.config("gitlab", "steps = [\"true\"]");
    chown("nobody:nogroup", true, &w.repo);
    let (code, log) = build_as_www_data(&w);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("dubious ownership"), "{log}");
    for (code, t) in check_as_both(&w) {
        assert_eq!(code, 1, "{t}");
        assert!(t.contains("dubious ownership") && t.contains("safe.directory"), "{t}");
        assert!(t.contains(&format!("chown -R www-data: {}", w.repo.display())), "{t}");
    }
}
