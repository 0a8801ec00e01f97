//! Several web hosts, all or none: three real sshd and three real nginx on loopback
//! (webhosts.rs), the real binary publishing to them with real ssh and rsync, and a poller
//! reading all three sites while it does.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::*;
use crate::webhosts::{Fleet, Host};

/// A step that writes three pages holding the commit being built.
const PAGES: &str = "mkdir -p dist && for p in index a b; do echo \"$DEPLOY_HOOK_COMMIT $p\" > dist/$p.html; done";

fn fleet_world(name: &str, n: usize, extra_publish: &str) -> (World, Fleet) {
    let w = World::new(name);
    let fleet = Fleet::start(&w, n);
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nsteps = [{}]\n[hooks.docs.publish]\nfrom = \"dist\"\nkeep = 3\n{}{extra_publish}",
            toml_str(PAGES),
            fleet.publish_toml()
        ),
    );
    (w, fleet)
}

/// `run docs --wait`; returns the build record.
fn build(w: &World) -> serde_json::Value {
    let out = w.cmd(&["run", "docs", "--wait"]);
    let status = w.status();
    let last = status["last"].clone();
    assert!(
        !last.is_null(),
        "no build recorded: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    last
}

fn assert_serves(fleet: &Fleet, commit: &str) {
    for h in &fleet.hosts {
        let (status, body) = h.get("/index.html");
        assert_eq!(
            (status, body.trim()),
            (200, format!("{commit} index").as_str()),
            "{} should serve {commit}",
            h.name
        );
    }
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

/// One read of every host's page, with when it started and ended (unix ms).
#[derive(Debug, Clone)]
struct Sweep {
    start: f64,
    end: f64,
    pages: Vec<(u16, String)>,
}

/// Reads `/index.html` of every host every 5 ms until dropped or stopped.
struct Poller<'a> {
    stop: &'a AtomicBool,
}

impl Drop for Poller<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn poll(hosts: &[Host], stop: &AtomicBool, sweeps: &Mutex<Vec<Sweep>>) {
    while !stop.load(Ordering::SeqCst) {
        let start = now_ms();
        let pages = hosts
            .iter()
            .map(|h| {
                let (s, b) = h.get("/index.html");
                (s, b.trim().to_string())
            })
            .collect();
        let end = now_ms();
        sweeps.lock().unwrap().push(Sweep { start, end, pages });
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The switch window the build logged: (spread ms, first rename sent, last answer), unix ms.
fn switch_window(log: &str) -> (f64, f64, f64) {
    let line = log
        .lines()
        .find(|l| l.contains("switch spread"))
        .unwrap_or_else(|| panic!("no switch spread in the log:\n{log}"));
    let num = |after: &str| -> f64 {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        rest.trim_start()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num("switch spread"), num("sent at"), num("last answer at"))
}

/// The bytes rsync sent to `target` in this build, from the log.
fn bytes_sent(log: &str, target: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.starts_with(&format!("{target}: uploaded")))
        .unwrap_or_else(|| panic!("no upload line for {target}:\n{log}"));
    line.split("rsync sent ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[test]
fn three_hosts_switch_together_and_never_miss_a_page() {
    requires!(Root, WwwData, Sshd, Nginx);
    let (w, fleet) = fleet_world("hosts-switch", 3, "");
    let c1 = w.push("index.md", "one\n");
    let first = build(&w);
    assert_eq!(first["result"], "succeeded", "{}", w.log_text(&first));
    assert_serves(&fleet, &c1);
    let release1 = fleet.hosts[0].live().unwrap();
    for h in &fleet.hosts {
        assert_eq!(h.live().as_ref(), Some(&release1), "one release name on every host");
    }

    let c2 = w.push("index.md", "two\n");
    let stop = AtomicBool::new(false);
    let sweeps = Mutex::new(Vec::new());
    let second = std::thread::scope(|s| {
        let _stop = Poller { stop: &stop };
        s.spawn(|| poll(&fleet.hosts, &stop, &sweeps));
        // Let the poller see the old release first.
        wait_for("the poller's first sweeps", Duration::from_secs(10), || {
            sweeps.lock().unwrap().len() >= 3
        });
        build(&w)
    });
    let log = w.log_text(&second);
    assert_eq!(second["result"], "succeeded", "{log}");
    assert_serves(&fleet, &c2);

    let sweeps = sweeps.into_inner().unwrap();
    let (old, new) = (format!("{c1} index"), format!("{c2} index"));
    let (spread, window_start, window_end) = switch_window(&log);
    let mut mixed = Vec::new();
    let mut seen_all_new = false;
    for sw in &sweeps {
        for (status, body) in &sw.pages {
            assert_eq!(*status, 200, "a host's page was missing: {sw:?}");
            assert!(*body == old || *body == new, "a page from neither release: {sw:?}");
        }
        let n_new = sw.pages.iter().filter(|(_, b)| *b == new).count();
        if n_new == sw.pages.len() {
            seen_all_new = true;
        } else {
            assert!(
                !seen_all_new || n_new == sw.pages.len(),
                "a host went back to the old release: {sw:?}"
            );
            if n_new > 0 {
                mixed.push(sw.clone());
            }
        }
    }
    // Hosts disagree only while the switch runs: every sweep that saw old and new pages
    // overlaps the window between the first rename sent and the last host's answer.
    for sw in &mixed {
        assert!(
            sw.end >= window_start && sw.start <= window_end,
            "hosts disagreed outside the switch window [{window_start}, {window_end}]: {sw:?}"
        );
    }
    let observed = match (mixed.first(), mixed.last()) {
        (Some(a), Some(b)) => b.end - a.start,
        _ => 0.0,
    };
    println!(
        "hosts: switch spread {spread:.1} ms (build log); {} sweeps, {} saw hosts disagree, over {observed:.1} ms",
        sweeps.len(),
        mixed.len()
    );
    assert!(log.contains("upload phase:") && log.contains("switch phase:"), "{log}");
}

#[test]
fn an_unwritable_host_switches_no_host_until_fixed() {
    requires!(Root, WwwData, Sshd, Nginx);
    let (w, fleet) = fleet_world("hosts-unwritable", 3, "");
    let c1 = w.push("index.md", "one\n");
    assert_eq!(build(&w)["result"], "succeeded");
    let releases = fleet.hosts[2].dir.join("www/site.releases");
    fs::set_permissions(&releases, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();

    let c2 = w.push("index.md", "two\n");
    let failed = build(&w);
    let log = w.log_text(&failed);
    assert_eq!(failed["result"], "failed", "{log}");
    assert_eq!(failed["failed_step"], "publish web3", "{log}");
    assert_serves(&fleet, &c1);
    for h in &fleet.hosts[..2] {
        assert_eq!(
            h.releases().len(),
            1,
            "{}: the upload is removed again: {:?}",
            h.name,
            h.releases()
        );
    }
    assert!(log.contains("no target is switched"), "{log}");

    fs::set_permissions(&releases, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fixed = build(&w);
    assert_eq!(fixed["result"], "succeeded", "{}", w.log_text(&fixed));
    assert_serves(&fleet, &c2);
}

#[test]
fn a_host_lost_mid_upload_switches_no_host_until_it_is_back() {
    requires!(Root, WwwData, Sshd, Nginx);
    let (w, mut fleet) = fleet_world("hosts-lost", 3, "");
    let c1 = w.push("index.md", "one\n");
    assert_eq!(build(&w)["result"], "succeeded");

    let c2 = w.push("index.md", "two\n");
    fs::write(fleet.hosts[2].fault("hold-upload"), "").unwrap();
    let uploading = fleet.hosts[2].fault("uploading");
    let failed = std::thread::scope(|s| {
        let b = s.spawn(|| build(&w));
        wait_for("web3's upload to start", Duration::from_secs(60), || uploading.exists());
        // web3 goes down mid-upload: its sshd and every session it serves.
        fleet.hosts[2].stop_sshd();
        b.join().unwrap()
    });
    let _ = fs::remove_file(fleet.hosts[2].fault("hold-upload"));
    let log = w.log_text(&failed);
    assert_eq!(failed["result"], "failed", "{log}");
    assert_eq!(failed["failed_step"], "publish web3", "{log}");
    assert_serves(&fleet, &c1);

    fleet.hosts[2].start_sshd();
    let fixed = build(&w);
    assert_eq!(fixed["result"], "succeeded", "{}", w.log_text(&fixed));
    assert_serves(&fleet, &c2);
}

#[test]
fn a_failed_switch_switches_the_others_back() {
    requires!(Root, WwwData, Sshd, Nginx);
    let (w, fleet) = fleet_world("hosts-switchback", 3, "");
    let c1 = w.push("index.md", "one\n");
    assert_eq!(build(&w)["result"], "succeeded");
    let release1 = fleet.hosts[0].live().unwrap();

    let c2 = w.push("index.md", "two\n");
    fs::write(fleet.hosts[1].fault("fail-switch"), "").unwrap();
    let stop = AtomicBool::new(false);
    let sweeps = Mutex::new(Vec::new());
    let failed = std::thread::scope(|s| {
        let _stop = Poller { stop: &stop };
        s.spawn(|| poll(&fleet.hosts, &stop, &sweeps));
        build(&w)
    });
    let log = w.log_text(&failed);
    assert_eq!(failed["result"], "failed", "{log}");
    assert_eq!(failed["failed_step"], "publish web2", "{log}");
    assert!(log.contains("injected fault on web2"), "{log}");
    // web1 and web3 had switched; they are switched back.
    for h in ["web1", "web3"] {
        assert!(log.contains(&format!("{h}: switched back to {release1}")), "{log}");
    }
    assert_serves(&fleet, &c1);
    for sw in sweeps.into_inner().unwrap() {
        assert!(sw.pages.iter().all(|(s, _)| *s == 200), "a page was missing: {sw:?}");
    }
    for h in &fleet.hosts {
        assert_eq!(h.live().as_ref(), Some(&release1));
        assert_eq!(h.releases().len(), 1, "{}: {:?}", h.name, h.releases());
    }

    fs::remove_file(fleet.hosts[1].fault("fail-switch")).unwrap();
    let fixed = build(&w);
    assert_eq!(fixed["result"], "succeeded", "{}", w.log_text(&fixed));
    assert_serves(&fleet, &c2);
}

#[test]
fn a_build_superseded_during_its_upload_switches_no_host() {
    requires!(Root, WwwData, Sshd, Nginx);
    let w = World::new("hosts-supersede");
    let fleet = Fleet::start(&w, 2);
    w.config(
        "gitee",
        &format!(
            "on_busy = \"supersede\"\nclean = [\"dist\"]\nsteps = [{}]\n[hooks.docs.publish]\nfrom = \"dist\"\n{}",
            toml_str(PAGES),
            fleet.publish_toml()
        ),
    );
    let c1 = w.push("index.md", "one\n");
    assert_eq!(build(&w)["result"], "succeeded");

    // Build c2 in the background; hold web1's upload; a delivery of c3 supersedes it.
    let c2 = w.push("index.md", "two\n");
    fs::write(fleet.hosts[0].fault("hold-upload"), "").unwrap();
    assert!(w.cmd(&["run", "docs"]).status.success());
    let uploading = fleet.hosts[0].fault("uploading");
    wait_for("web1's upload to start", Duration::from_secs(60), || uploading.exists());
    let c3 = w.push("index.md", "three\n");
    assert_eq!(w.gitee_push().run().status, 202);
    fs::remove_file(fleet.hosts[0].fault("hold-upload")).unwrap();
    w.wait_idle();

    let history = w.history();
    let (newest, stopped) = (&history[0], &history[1]);
    assert_eq!(
        (newest["result"].as_str(), newest["commit"].as_str()),
        (Some("succeeded"), Some(c3.as_str()))
    );
    assert_eq!(
        (stopped["result"].as_str(), stopped["commit"].as_str()),
        (Some("superseded"), Some(c2.as_str()))
    );
    assert!(
        w.log_text(stopped).contains("no target is switched"),
        "{}",
        w.log_text(stopped)
    );
    assert_serves(&fleet, &c3);
    for h in &fleet.hosts {
        // c1's release and c3's: c2's upload was removed, never switched to.
        assert_eq!(h.releases().len(), 2, "{}: {:?}", h.name, h.releases());
    }
    let _ = c1;
}

#[test]
fn a_served_path_with_quotes_spaces_and_dollars_is_published_and_rolled_back() {
    requires!(Root, WwwData, Sshd, Nginx);
    let w = World::new("hosts-quoting");
    let site = "it's a \"site\" $(touch PWNED) `x` ;";
    let fleet = Fleet::start_with(&w, 2, site);
    w.config(
        "gitee",
        &format!(
            "clean = [\"dist\"]\nsteps = [{}]\n[hooks.docs.publish]\nfrom = \"dist\"\n{}",
            toml_str(PAGES),
            fleet.publish_toml()
        ),
    );
    let c1 = w.push("index.md", "one\n");
    let first = build(&w);
    assert_eq!(first["result"], "succeeded", "{}", w.log_text(&first));
    let c2 = w.push("index.md", "two\n");
    let second = build(&w);
    assert_eq!(second["result"], "succeeded", "{}", w.log_text(&second));
    let page = |h: &Host| fs::read_to_string(h.path.join("index.html")).unwrap();
    for h in &fleet.hosts {
        assert_eq!(page(h).trim(), format!("{c2} index"));
        assert_eq!(h.releases().len(), 2, "{:?}", h.releases());
    }
    let out = w.cmd(&["rollback", "docs"]);
    assert!(out.status.success(), "{out:?}");
    for h in &fleet.hosts {
        assert_eq!(page(h).trim(), format!("{c1} index"));
        // Nothing in the path ran as a command, here or there.
        for dir in [h.dir.join("www"), h.dir.clone(), std::path::PathBuf::from("/")] {
            assert!(!dir.join("PWNED").exists(), "{}", dir.display());
        }
    }
}

#[test]
fn a_site_folder_already_on_a_host_is_kept_as_the_oldest_release() {
    requires!(Root, WwwData, Sshd, Nginx);
    let (w, fleet) = fleet_world("hosts-folder", 2, "");
    // web2 already serves a site from a real folder, owned by the ssh user.
    let old = &fleet.hosts[1];
    fs::create_dir_all(&old.path).unwrap();
    fs::write(old.path.join("index.html"), "the site from before\n").unwrap();
    let out = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{}:", crate::webhosts::WEB_USER))
        .arg(&old.path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let c1 = w.push("index.md", "one\n");
    let first = build(&w);
    assert_eq!(first["result"], "succeeded", "{}", w.log_text(&first));
    assert_serves(&fleet, &c1);
    let kept = old.releases();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept[0].starts_with("0000-") && kept[0].ends_with("-before-deploy-hook"),
        "{kept:?}"
    );

    // Rolling back to it is explicit: web1 never had that release, so all or none refuses.
    let out = w.cmd(&["rollback", "docs", "--to", &kept[0]]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("web1"), "{out:?}");
    assert_serves(&fleet, &c1);
}

#[test]
fn rollback_status_and_check_cover_every_host_and_the_local_copy() {
    requires!(Root, WwwData, Sshd, Nginx);
    let w0 = World::new("hosts-rollback-to");
    let to = w0.path("www");
    let (w, fleet) = fleet_world("hosts-rollback", 3, &format!("to = {:?}\n", to.to_str().unwrap()));
    let c1 = w.push("index.md", "one\n");
    assert_eq!(build(&w)["result"], "succeeded");
    let r1 = fleet.hosts[0].live().unwrap();
    let c2 = w.push("index.md", "two\n");
    let second = build(&w);
    assert_eq!(second["result"], "succeeded", "{}", w.log_text(&second));
    let r2 = fleet.hosts[0].live().unwrap();
    assert_ne!(r1, r2);
    assert_serves(&fleet, &c2);
    let local = |rel: &str| fs::read_to_string(to.join(rel)).unwrap();
    assert_eq!(local("index.html").trim(), format!("{c2} index"));

    // check as root also reports the root-owned state folder; the hosts' lines must hold.
    let check = w.cmd(&["check"]);
    let text = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(!text.contains("FAIL  host") && !text.contains("FAIL  local"), "{text}");
    for h in ["web1", "web2", "web3"] {
        assert!(text.contains(&format!("host {h}: reachable")), "{text}");
    }

    let out = w.cmd(&["rollback", "docs"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert_serves(&fleet, &c1);
    assert_eq!(local("index.html").trim(), format!("{c1} index"));
    let status = w.status();
    assert_eq!(status["live_release"], r1.as_str());
    assert_eq!(status["last_rollback"]["to"], r1.as_str());
    assert_eq!(status["last_rollback"]["from"], r2.as_str());

    let json: serde_json::Value = serde_json::from_slice(&w.cmd(&["status", "docs", "--json"]).stdout).unwrap();
    let hosts = json["hosts"].as_array().unwrap_or_else(|| panic!("no hosts in {json}"));
    assert_eq!(hosts.len(), 4, "local and three hosts: {json}");
    for h in hosts {
        assert_eq!(h["live"], r1.as_str(), "{json}");
        assert_eq!(h["disagrees"], false, "{json}");
    }

    // Someone switches web2 by hand: status says so, and a rollback needs a named release.
    let link = fleet.hosts[1].path.clone();
    let tmp = link.with_file_name(".by-hand");
    std::os::unix::fs::symlink(format!("site.releases/{r2}"), &tmp).unwrap();
    fs::rename(&tmp, &link).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&w.cmd(&["status", "docs", "--json"]).stdout).unwrap();
    let web2 = json["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "web2")
        .unwrap()
        .clone();
    assert_eq!(
        (web2["live"].as_str(), web2["disagrees"].as_bool()),
        (Some(r2.as_str()), Some(true)),
        "{json}"
    );
    let text = String::from_utf8_lossy(&w.cmd(&["status", "docs"]).stdout).into_owned();
    assert!(
        text.lines().any(|l| l.contains("web2") && l.contains("DISAGREES")),
        "{text}"
    );
    let out = w.cmd(&["rollback", "docs"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to"), "{out:?}");

    let out = w.cmd(&["rollback", "docs", "--to", &r2]);
    assert!(out.status.success(), "{out:?}");
    assert_serves(&fleet, &c2);
    assert_eq!(local("index.html").trim(), format!("{c2} index"));

    // A host that cannot be reached fails check, naming it.
    let mut fleet = fleet;
    fleet.hosts[1].stop_sshd();
    let check = w.cmd(&["check"]);
    let text = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(!check.status.success(), "{text}");
    assert!(text.contains("FAIL  host web2: cannot run sh there"), "{text}");
    assert!(
        !text.contains("FAIL  host web1") && !text.contains("FAIL  host web3"),
        "{text}"
    );
    drop(w0);
}

#[test]
fn one_changed_page_of_two_thousand_sends_only_that_page() {
    requires!(Root, WwwData, Sshd, Nginx);
    let w = World::new("hosts-bytes");
    let fleet = Fleet::start(&w, 3);
    // 2,000 pages of 4 KiB, each different, committed as the site itself.
    let mut total = 0u64;
    for i in 0..2000 {
        let dir = w.seed.join(format!("site/s{:02}", i % 40));
        fs::create_dir_all(&dir).unwrap();
        let body: String = format!("<p>page {i}</p>\n").repeat(4096 / 14 + 1)[..4096].to_string();
        total += body.len() as u64;
        fs::write(dir.join(format!("p{i}.html")), body).unwrap();
    }
    fs::write(w.seed.join("site/index.html"), "one\n").unwrap();
    git(&w.seed, &["add", "-A"]);
    git(&w.seed, &["commit", "-q", "-m", "site"]);
    git(&w.seed, &["push", "-q", "origin", "main"]);
    w.config(
        "gitee",
        &format!(
            "steps = [\"true\"]\n[hooks.docs.publish]\nfrom = \"site\"\n{}",
            fleet.publish_toml()
        ),
    );
    let first = build(&w);
    let log1 = w.log_text(&first);
    assert_eq!(first["result"], "succeeded", "{log1}");
    let full = bytes_sent(&log1, "web1");
    assert!(
        full > total,
        "the first upload sends everything: {full} of {total}\n{log1}"
    );

    let page = "<p>this page changed</p>\n".repeat(100);
    w.push("site/s07/p1007.html", &page);
    let second = build(&w);
    let log2 = w.log_text(&second);
    assert_eq!(second["result"], "succeeded", "{log2}");
    for h in &fleet.hosts {
        let sent = bytes_sent(&log2, &h.name);
        let line = log2
            .lines()
            .find(|l| l.starts_with(&format!("{}: uploaded", h.name)))
            .unwrap();
        assert!(line.contains(": 1 changed file "), "{line}");
        // The page plus rsync's file list (names and checksums of 2,001 files).
        assert!(
            sent * 20 < total,
            "{}: {sent} bytes sent for one page of {}\n{log2}",
            h.name,
            page.len()
        );
        println!(
            "hosts: one changed page ({} bytes) of 2,001 files ({total} bytes): rsync sent {sent} bytes to {}, first upload {full}",
            page.len(),
            h.name
        );
        // Unchanged pages are hard links to the live release's: no new space.
        let rels = h.releases();
        let a = fs::metadata(h.dir.join(format!("www/site.releases/{}/s00/p0.html", rels[0]))).unwrap();
        let b = fs::metadata(h.dir.join(format!("www/site.releases/{}/s00/p0.html", rels[1]))).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(a.ino(), b.ino(), "{}: an unchanged page is shared", h.name);
        let (status, body) = h.get("/s07/p1007.html");
        assert_eq!((status, body), (200, page.clone()));
    }
}

/// A web host whose shell answers a line without end (a login banner or a startup file
/// gone wrong: 1 GiB without a newline made `status` take 2.1 GB) fails that host at once
/// with a message that says so, in bounded memory; every host keeps the release it served.
#[test]
fn a_host_that_answers_a_huge_line_fails_in_bounded_memory_and_the_others_keep_their_release() {
    requires!(Root, WwwData, Sshd, Nginx);
    let (w, fleet) = fleet_world("hosts-huge-answer", 3, "");
    let c1 = w.push("index.md", "one\n");
    assert_eq!(build(&w)["result"], "succeeded");
    let release1 = fleet.hosts[0].live().unwrap();

    let c2 = w.push("index.md", "two\n");
    // 128 MiB with no newline from web2's `sh`, before it reads our commands.
    fs::write(fleet.hosts[1].fault("huge-answer"), "").unwrap();
    // `run --wait` builds in its own process: its peak memory is the build's.
    let mut child = std::process::Command::new(BIN)
        .args(["run", "docs", "--wait"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    wait_for("the build to end", Duration::from_secs(300), || {
        if let Ok(s) = fs::read_to_string(&status_file) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        child.try_wait().unwrap().is_some()
    });
    let failed = w.status()["last"].clone();
    let log = w.log_text(&failed);
    assert_eq!(failed["result"], "failed", "{log}");
    assert_eq!(failed["failed_step"], "publish web2", "{log}");
    assert!(log.contains("web2: answered a line longer than 64 KiB"), "{log}");
    assert!(
        peak_kb > 0 && peak_kb < 64 * 1024,
        "the build's peak memory: {peak_kb} kB"
    );
    assert_serves(&fleet, &c1);
    for h in &fleet.hosts {
        assert_eq!(h.live().as_ref(), Some(&release1), "{}", h.name);
    }

    fs::remove_file(fleet.hosts[1].fault("huge-answer")).unwrap();
    let fixed = build(&w);
    assert_eq!(fixed["result"], "succeeded", "{}", w.log_text(&fixed));
    assert_serves(&fleet, &c2);
}
