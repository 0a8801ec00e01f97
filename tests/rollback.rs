//! Rollback goes back through what was live, not by name; it holds the site (deliveries
//! build and make their releases, nothing is switched) until `resume`; pruning keeps what
//! the next rollbacks need.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

/// A hook publishing `index.html` = the pushed `page.txt`, in sync mode (each delivery's
/// answer is its build's).
fn site_world(name: &str, keep: usize) -> (World, PathBuf) {
    let w = World::new(name);
    let www = w.path("www");
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nclean = [\"dist\"]\nsteps = [\"mkdir -p dist && cp page.txt dist/index.html\"]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}\nkeep = {keep}",
            www.to_str().unwrap()
        ),
    );
    (w, www)
}

fn page(www: &Path) -> String {
    fs::read_to_string(www.join("index.html")).unwrap().trim().to_string()
}

/// Pushes `page` and delivers it; returns the answer.
fn deliver(w: &World, text: &str) -> Reply {
    w.push("page.txt", &format!("{text}\n"));
    w.gitee_push().run()
}

fn releases(w: &World) -> Vec<String> {
    let mut r: Vec<String> = fs::read_dir(w.path("www.releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    r.sort();
    r
}

fn ok(w: &World, args: &[&str]) -> String {
    let out = w.cmd(args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

#[test]
fn rollback_goes_back_through_what_was_live_not_by_name_and_pruning_keeps_that_way() {
    let (w, www) = site_world("rollback-history", 3);
    for v in ["v1", "v2", "v3-bad"] {
        assert_eq!(deliver(&w, v).word(), "succeeded");
    }
    ok(&w, &["rollback", "docs"]);
    assert_eq!(page(&www), "v2");
    // v4 is built while held, then resumed to: it is live, and bad.
    assert_eq!(deliver(&w, "v4-bad").word(), "succeeded");
    assert_eq!(page(&www), "v2", "held: not switched");
    ok(&w, &["resume", "docs"]);
    assert_eq!(page(&www), "v4-bad");
    // Back from v4 is v2, what was live before it: not v3-bad, the release before it by name.
    ok(&w, &["rollback", "docs"]);
    assert_eq!(
        page(&www),
        "v2",
        "rollback went back by name, not through what was live"
    );
    ok(&w, &["rollback", "docs"]);
    assert_eq!(page(&www), "v1", "a second rollback goes further back");
    let out = w.cmd(&["rollback", "docs"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to roll back to"),
        "{out:?}"
    );
    let s = w.status();
    let history: Vec<&str> = s["live_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["by"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["rollback"], "{s}");
    assert!(s["live_history"][0]["since"].is_string(), "{s}");

    // resume goes to the newest succeeded build's release (v4-bad); v5 and v6 follow. With
    // keep = 3, what stays is the way back from v6 (v5, then v4-bad), whatever the names.
    ok(&w, &["resume", "docs"]);
    assert_eq!(page(&www), "v4-bad");
    for v in ["v5", "v6"] {
        assert_eq!(deliver(&w, v).word(), "succeeded");
    }
    assert_eq!(page(&www), "v6");
    assert_eq!(releases(&w).len(), 3, "{:?}", releases(&w));
    ok(&w, &["rollback", "docs"]);
    assert_eq!(page(&www), "v5");
    ok(&w, &["rollback", "docs"]);
    assert_eq!(
        page(&www),
        "v4-bad",
        "resume made v4-bad live, so it was live before v5"
    );
}

#[test]
fn rollback_holds_the_site_until_resume_and_a_second_rollback_goes_further_back() {
    let (w, www) = site_world("rollback-hold", 5);
    for v in ["v1", "v2", "v3"] {
        assert_eq!(deliver(&w, v).word(), "succeeded");
    }
    let out = ok(&w, &["rollback", "docs"]);
    assert!(out.contains("held") && out.contains("deploy-hook resume docs"), "{out}");
    assert_eq!(page(&www), "v2");
    let s = w.status();
    let live = s["live_release"].as_str().unwrap().to_string();
    assert_eq!(s["held"]["release"], live.as_str(), "{s}");
    let since = s["held"]["since"].as_str().expect("held.since").to_string();
    let json: serde_json::Value = serde_json::from_slice(&w.cmd(&["status", "docs", "--json"]).stdout).unwrap();
    assert_eq!(json["held"], serde_json::json!({"since": since, "release": live}));
    let text = ok(&w, &["status", "docs"]);
    assert!(
        text.contains(&format!("held:    since {since} at release {live}")),
        "{text}"
    );

    // A delivery during the hold builds and makes its release, and switches nothing.
    let r = deliver(&w, "v4");
    assert_eq!((r.status, r.word()), (200, "succeeded"), "{}", r.json);
    let message = r.json["message"].as_str().unwrap();
    assert!(
        message.contains("held by a rollback") && message.contains("deploy-hook resume"),
        "{message}"
    );
    assert_eq!(page(&www), "v2", "a held hook switched");
    let s = w.status();
    let built = s["last"]["release"].as_str().unwrap().to_string();
    assert_eq!(s["last"]["held"], true, "{s}");
    assert_eq!(s["live_release"], live.as_str());
    assert!(releases(&w).contains(&built), "the held build made its release");
    let log = w.log_text(&s["last"]);
    assert!(
        log.contains(&format!(
            "built release {built} but did not switch to it: the hook is held"
        )) && log.contains("deploy-hook resume docs"),
        "{log}"
    );
    assert!(ok(&w, &["status", "docs"]).contains("not switched to (held)"));
    // The async answer says so too.
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nsteps = [\"mkdir -p dist && cp page.txt dist/index.html\"]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}\nkeep = 5",
            www.to_str().unwrap()
        ),
    );
    w.push("page.txt", "v5\n");
    let r = w.gitee_push().run();
    assert_eq!(r.word(), "queued");
    assert!(
        r.json["message"].as_str().unwrap().contains("held by a rollback"),
        "{}",
        r.json
    );
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
    assert_eq!(page(&www), "v2");
    // `run` says it too.
    let out = ok(&w, &["run", "docs"]);
    assert!(
        out.contains("held by a rollback") && out.contains("deploy-hook resume docs"),
        "{out}"
    );
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
    assert_eq!(page(&www), "v2");
    let newest = w.status()["last"]["release"].as_str().unwrap().to_string();

    // A second rollback goes further back through what was live (v1), not to a held build.
    ok(&w, &["rollback", "docs"]);
    assert_eq!(page(&www), "v1");
    let s = w.status();
    assert_eq!(s["held"]["since"], since.as_str(), "the hold goes on: {s}");
    assert_ne!(s["held"]["release"], live.as_str());

    // resume: the newest succeeded build's release, everywhere, and the hold is lifted.
    let out = ok(&w, &["resume", "docs"]);
    assert!(out.contains(&newest), "{out}");
    assert_eq!(page(&www), "v5");
    let s = w.status();
    assert!(s.get("held").is_none_or(|h| h.is_null()), "{s}");
    assert_eq!(s["live_release"], newest.as_str());
    let json: serde_json::Value = serde_json::from_slice(&w.cmd(&["status", "docs", "--json"]).stdout).unwrap();
    assert!(json["held"].is_null(), "{json}");
    assert!(!ok(&w, &["status", "docs"]).contains("held:"));
    assert!(ok(&w, &["resume", "docs"]).contains("not held"));
    // Builds go live again.
    w.push("page.txt", "v6\n");
    w.gitee_push().run();
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
    assert_eq!(page(&www), "v6");
}

#[test]
fn a_release_that_cannot_be_pruned_is_logged_and_recorded_until_it_can() {
    requires!(Root, WwwData);
    let w = crate::check::www_data_world("prune-failure");
    let www = w.path("www/site");
    w.config(
        "gitlab",
        &format!(
            "steps = [[\"sh\", \"-c\", \"mkdir -p out && echo $DEPLOY_HOOK_COMMIT > out/index.html\"]]\n[hooks.docs.publish]\nfrom = \"out\"\nto = {:?}\nkeep = 2\n",
            www.to_str().unwrap()
        ),
    );
    let build = |n: usize| {
        w.push("index.md", &format!("build {n}\n"));
        let out = crate::check::as_www_data(&w, &["run", "docs", "--wait"]);
        assert!(out.status.success(), "{}", crate::check::text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    build(1);
    let first = fs::read_link(&www)
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // Root built in the release once (as the admin's `pnpm docs:build` as root did): a
    // folder of root's that www-data cannot empty.
    let rooted = w.path("www/site.releases").join(&first).join("assets");
    fs::create_dir_all(&rooted).unwrap();
    fs::write(rooted.join("app.js"), "root's\n").unwrap();
    build(2);
    let said = build(3);
    let s = w.status();
    let log = w.log_text(&s["last"]);
    assert!(
        log.contains(&format!("local: could not prune release {first}: ")) && log.contains("ermission denied"),
        "the build log says nothing of the failed prune:\n{log}"
    );
    assert!(
        said.contains("prune failed hook=docs target=local") && said.contains(&first),
        "no log line (syslog, here stderr) for the failed prune:\n{said}"
    );
    let failures = s["prune_failures"]
        .as_array()
        .unwrap_or_else(|| panic!("not recorded: {s}"));
    assert_eq!(failures.len(), 1, "{s}");
    assert_eq!(
        (failures[0]["target"].as_str(), failures[0]["release"].as_str()),
        (Some("local"), Some(first.as_str()))
    );
    assert!(
        failures[0]["error"].as_str().unwrap().contains("ermission denied"),
        "{s}"
    );
    assert!(
        w.path("www/site.releases").join(&first).exists(),
        "half removed, still listed"
    );

    // Removed by hand: the next prune succeeds and the record is cleared.
    fs::remove_dir_all(&rooted).unwrap();
    build(4);
    let s = w.status();
    assert!(
        s.get("prune_failures")
            .is_none_or(|f| f.as_array().is_some_and(|a| a.is_empty())),
        "{s}"
    );
    assert!(!w.path("www/site.releases").join(&first).exists());
}
