//! Web hosts (real sshd on loopback, webhosts.rs) as `status` and `rollback` see them: a
//! release folder's name is shown escaped.

use std::fs;

use crate::util::*;
use crate::webhosts::Fleet;

/// A step that writes a page holding the commit being built.
const PAGE: &str = "mkdir -p dist && echo \"$DEPLOY_HOOK_COMMIT\" > dist/index.html";

fn fleet_world(name: &str, n: usize, extra_publish: &str) -> (World, Fleet) {
    let w = World::new(name);
    let fleet = Fleet::start(&w, n);
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nsteps = [{}]\n[hooks.docs.publish]\nfrom = \"dist\"\nkeep = 3\n{}{extra_publish}",
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
