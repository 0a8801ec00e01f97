//! Web hosts (real sshd on loopback, webhosts.rs) as `status`, `rollback` and `resume` see
//! them: a release folder's name is shown escaped; a rollback holds every host, `resume`
//! switches them together, and rollback goes back through what was live on all of them.

use std::fs;
use std::time::Duration;

use crate::util::*;
use crate::webhosts::Fleet;

/// A step that writes a page holding the commit being built.
const PAGE: &str = "mkdir -p dist && echo \"$DEPLOY_HOOK_COMMIT\" > dist/index.html";

fn fleet_world(name: &str, n: usize, extra_publish: &str) -> (World, Fleet) {
    fleet_world_keeping(name, n, 3, extra_publish)
}

fn fleet_world_keeping(name: &str, n: usize, keep: usize, extra_publish: &str) -> (World, Fleet) {
    let w = World::new(name);
    let fleet = Fleet::start(&w, n);
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nsteps = [{}]\n[hooks.docs.publish]\nfrom = \"dist\"\nkeep = {keep}\n{}{extra_publish}",
            toml_str(PAGE),
            fleet.publish_toml()
        ),
    );
    (w, fleet)
}

/// `run docs --wait`; returns the build record.
fn build(w: &World) -> serde_json::Value {
    let out = w.cmd(&["run", "docs", "--wait"]);
    let last = w.status()["last"].clone();
    assert!(
        !last.is_null(),
        "no build recorded: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    last
}

#[test]
fn status_escapes_a_web_hosts_release_name() {
    requires!(Root, WwwData, Sshd, Nginx);
    let (w, fleet) = fleet_world("hosts-escapes", 1, "");
    w.push("index.md", "one\n");
    let first = build(&w);
    assert_eq!(first["result"], "succeeded", "{}", w.log_text(&first));
    // Whoever can write on the host renames the live release and points the site at it.
    let h = &fleet.hosts[0];
    let hostile = "20990101-000000-000-\u{1b}]0;owned\u{7}\u{1b}[2J";
    let releases = h.path.with_file_name("site.releases");
    fs::rename(releases.join(h.live().unwrap()), releases.join(hostile)).unwrap();
    let tmp = h.path.with_file_name(".by-hand");
    std::os::unix::fs::symlink(format!("site.releases/{hostile}"), &tmp).unwrap();
    fs::rename(&tmp, &h.path).unwrap();

    let out = w.cmd(&["status", "docs"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "status printed the host's name raw:\n{text:?}"
    );
    assert!(text.contains("20990101-000000-000-\\u{1b}]0;owned\\u{7}"), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&w.cmd(&["status", "docs", "--json"]).stdout).unwrap();
    assert_eq!(json["hosts"][0]["live"], hostile, "JSON keeps the name exact: {json}");
}

fn assert_serves(fleet: &Fleet, local: &std::path::Path, commit: &str) {
    for h in &fleet.hosts {
        let (status, body) = h.get("/index.html");
        assert_eq!((status, body.trim()), (200, commit), "{} should serve {commit}", h.name);
    }
    let page = fs::read_to_string(local.join("index.html")).unwrap();
    assert_eq!(page.trim(), commit, "the local copy should serve {commit}");
}

#[test]
fn every_host_is_held_by_a_rollback_resumes_together_and_rolls_back_through_what_was_live() {
    requires!(Root, WwwData, Sshd, Nginx);
    let w0 = World::new("hosts-hold-to");
    let to = w0.path("www");
    let (w, fleet) = fleet_world("hosts-hold", 2, &format!("to = {:?}\n", to.to_str().unwrap()));
    let mut commits = Vec::new();
    for v in ["v1", "v2", "v3-bad"] {
        commits.push(w.push("index.md", v));
        let b = build(&w);
        assert_eq!(b["result"], "succeeded", "{}", w.log_text(&b));
    }
    let out = w.cmd(&["rollback", "docs"]);
    assert!(out.status.success(), "{out:?}");
    assert_serves(&fleet, &to, &commits[1]);
    let r2 = fleet.hosts[0].live().unwrap();

    // Held: the build uploads its release everywhere and switches no target.
    let c4 = w.push("index.md", "v4-bad");
    let held = build(&w);
    let log = w.log_text(&held);
    assert_eq!(
        (held["result"].as_str(), held["held"].as_bool()),
        (Some("succeeded"), Some(true)),
        "{log}"
    );
    let r4 = held["release"].as_str().unwrap().to_string();
    assert!(log.contains("but did not switch to it: the hook is held"), "{log}");
    assert!(!log.contains("switch phase"), "{log}");
    assert_serves(&fleet, &to, &commits[1]);
    for h in &fleet.hosts {
        assert!(h.releases().contains(&r4), "{}: {:?}", h.name, h.releases());
        assert_eq!(h.live().as_ref(), Some(&r2));
    }
    let json: serde_json::Value = serde_json::from_slice(&w.cmd(&["status", "docs", "--json"]).stdout).unwrap();
    assert_eq!(json["held"]["release"], r2.as_str(), "{json}");

    let out = w.cmd(&["resume", "docs"]);
    assert!(out.status.success(), "{out:?}");
    assert_serves(&fleet, &to, &c4);
    // Back from v4 is v2 on every host: what was live before it, not v3-bad.
    let out = w.cmd(&["rollback", "docs"]);
    assert!(out.status.success(), "{out:?}");
    assert_serves(&fleet, &to, &commits[1]);
    let out = w.cmd(&["rollback", "docs"]);
    assert!(out.status.success(), "{out:?}");
    assert_serves(&fleet, &to, &commits[0]);
    drop(w0);
}

#[test]
fn a_release_a_host_cannot_prune_is_logged_and_recorded() {
    requires!(Root, WwwData, Sshd, Nginx);
    let (w, fleet) = fleet_world_keeping("hosts-prune-failure", 2, 2, "");
    w.push("index.md", "one\n");
    assert_eq!(build(&w)["result"], "succeeded");
    let first = fleet.hosts[1].live().unwrap();
    // A folder of root's in web2's first release: the ssh user cannot empty it.
    let rooted = fleet.hosts[1]
        .path
        .with_file_name("site.releases")
        .join(&first)
        .join("assets");
    fs::create_dir_all(&rooted).unwrap();
    fs::write(rooted.join("app.js"), "root's\n").unwrap();
    for n in 2..=3 {
        w.push("index.md", &format!("{n}\n"));
        let b = build(&w);
        assert_eq!(b["result"], "succeeded", "{}", w.log_text(&b));
    }
    let s = w.status();
    let log = w.log_text(&s["last"]);
    assert!(log.contains(&format!("web1: pruned {first}")), "{log}");
    assert!(
        log.contains(&format!("web2: could not prune release {first}: ")) && log.contains("ermission denied"),
        "the build log says nothing of web2's failed prune:\n{log}"
    );
    let failures = s["prune_failures"]
        .as_array()
        .unwrap_or_else(|| panic!("not recorded: {s}"));
    assert_eq!(failures.len(), 1, "{s}");
    assert_eq!(
        (failures[0]["target"].as_str(), failures[0]["release"].as_str()),
        (Some("web2"), Some(first.as_str()))
    );
    assert!(!fleet.hosts[0].releases().contains(&first));
    assert!(fleet.hosts[1].releases().contains(&first), "half removed, still listed");
}

#[test]
fn a_host_whose_switch_answers_late_is_switched_back_and_checked() {
    requires!(Root, WwwData, Sshd, Nginx);
    let (w, fleet) = fleet_world("hosts-late-switch", 3, "");
    let c1 = w.push("index.md", "one\n");
    assert_eq!(build(&w)["result"], "succeeded");
    let release1 = fleet.hosts[0].live().unwrap();

    // web2's rename waits until released: longer than the switch may take.
    w.push("index.md", "two\n");
    let (held, release, done) = (
        fleet.hosts[1].fault("switch-held"),
        fleet.hosts[1].fault("release-switch"),
        fleet.hosts[1].fault("switch-done"),
    );
    fs::write(fleet.hosts[1].fault("hold-switch"), "").unwrap();
    let failed = std::thread::scope(|s| {
        let b = s.spawn(|| build(&w));
        wait_for("web2's rename to be held", Duration::from_secs(60), || held.exists());
        // The build gives up waiting for web2's answer (it says so in its log); only then
        // is web2's rename done: late, after the others were switched back.
        let log = w.hook_dir().join("builds");
        wait_for(
            "the build to give up on web2's answer",
            Duration::from_secs(120),
            || {
                fs::read_dir(&log)
                    .unwrap()
                    .flatten()
                    .any(|e| fs::read_to_string(e.path()).is_ok_and(|t| t.contains("no answer within")))
            },
        );
        fs::write(&release, "").unwrap();
        b.join().unwrap()
    });
    wait_for("web2's late rename", Duration::from_secs(60), || done.exists());
    let log = w.log_text(&failed);
    assert_eq!(failed["result"], "failed", "{log}");
    assert_eq!(failed["failed_step"], "publish web2", "{log}");
    for h in &fleet.hosts {
        let (status, body) = h.get("/index.html");
        assert_eq!(
            (status, body.trim()),
            (200, c1.as_str()),
            "{} serves the new release after a failed switch:\n{log}",
            h.name
        );
        assert_eq!(h.live().as_ref(), Some(&release1), "{}", h.name);
    }
    assert!(
        log.contains(&format!("web2: switched back to {release1} (checked: it serves it)")),
        "{log}"
    );
    for h in ["web1", "web3"] {
        assert!(log.contains(&format!("{h}: switched back to {release1}")), "{log}");
    }
}
