//! Work that cannot change the result is skipped: an `if_changed` step (the default
//! `pnpm install`) runs only when its inputs changed since the last succeeded build, and a
//! commit that is already built and live is `unchanged`. Real git, real pnpm.

use std::fs;

use crate::pnpm::{tiny_site, BUILD_JS};
use crate::util::*;

const LOCKFILE: &str = "lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n  excludeLinksFromLockfile: false\n\nimporters:\n\n  .: {}\n";

/// The tiny pnpm site with the default steps, published; `extra` is more hook TOML.
fn pnpm_world(name: &str, extra: &str) -> World {
    let w = World::new(name);
    tiny_site(&w, "Hello\n");
    w.push("pnpm-lock.yaml", LOCKFILE);
    pnpm_config(&w, extra);
    w
}

fn pnpm_config(w: &World, extra: &str) {
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nclean = [\"docs/.vuepress/dist\"]\n{extra}\n[hooks.docs.publish]\nfrom = \"docs/.vuepress/dist\"\nto = {:?}",
            w.path("www").to_str().unwrap()
        ),
    );
}

/// Delivers a push and returns (answer's status word, the build's log).
fn build(w: &World) -> (String, String) {
    let r = w.gitee_push().run();
    let log = w.log_text(&w.status()["last"]);
    (r.word().to_string(), log)
}

fn installed(log: &str) -> bool {
    log.contains("\n$ pnpm install\n")
}

#[test]
fn the_install_step_runs_only_when_its_inputs_changed_since_the_last_succeeded_build() {
    requires!(Pnpm);
    let w = pnpm_world("if-changed", "");
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(installed(&log), "the first build must install: {log}");
    assert!(log.contains("pnpm install: runs (no succeeded build yet)"), "{log}");
    let base = w.status()["last"]["commit"].as_str().unwrap()[..10].to_string();

    // Only docs change: install is skipped, the build runs, the page is new.
    w.push("docs/README.md", "Docs only\n");
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(!installed(&log), "install ran for a docs change: {log}");
    assert!(
        log.contains(&format!(
            "pnpm install: skipped: package.json, pnpm-lock.yaml, pnpm-workspace.yaml, .npmrc unchanged since {base}"
        )),
        "{log}"
    );
    assert!(log.contains("$ pnpm docs:build"), "{log}");
    assert!(fs::read_to_string(w.path("www/index.html"))
        .unwrap()
        .contains("Docs only"));
    let base = w.status()["last"]["commit"].as_str().unwrap()[..10].to_string();

    // The lockfile changes: install runs and says why.
    w.push("pnpm-lock.yaml", &format!("{LOCKFILE}# v2\n"));
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(installed(&log), "{log}");
    assert!(
        log.contains(&format!("pnpm install: runs (pnpm-lock.yaml changed since {base})")),
        "{log}"
    );

    // The lockfile changes in a build that fails: the next build (docs only) installs
    // again, since a failed build is never the base.
    let good = w.status()["last"]["commit"].as_str().unwrap()[..10].to_string();
    w.push("pnpm-lock.yaml", &format!("{LOCKFILE}# v3\n"));
    w.push("build.js", "process.exit(1);\n");
    let (word, log) = build(&w);
    assert_eq!(word, "failed", "{log}");
    assert!(installed(&log), "{log}");
    w.push("build.js", BUILD_JS);
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(
        log.contains(&format!("pnpm install: runs (pnpm-lock.yaml changed since {good})")),
        "after a failed build the base is still the last succeeded one: {log}"
    );

    // The lockfile goes back to the base's in a failed build that installed it: the next
    // build installs again, though the lockfile equals the base's, since node_modules
    // is now the failed build's.
    let good = w.status()["last"]["commit"].as_str().unwrap()[..10].to_string();
    w.push("pnpm-lock.yaml", &format!("{LOCKFILE}# v4\n"));
    w.push("build.js", "process.exit(1);\n");
    assert_eq!(build(&w).0, "failed");
    w.push("pnpm-lock.yaml", &format!("{LOCKFILE}# v3\n"));
    w.push("build.js", BUILD_JS);
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(
        log.contains(&format!(
            "pnpm install: runs (a build since {good} that did not succeed ran it)"
        )),
        "{log}"
    );

    // The hook's config changes: every step runs once, then skips again.
    pnpm_config(&w, "env = { SITE_FLAVOUR = \"b\" }");
    w.push("docs/README.md", "Config changed\n");
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(
        log.contains("pnpm install: runs (the hook's config changed since"),
        "{log}"
    );
    w.push("docs/README.md", "Config the same\n");
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(!installed(&log), "{log}");
    assert!(log.contains("timing: fetch "), "{log}");
    assert!(log.contains(", steps ") && log.contains(", publish "), "{log}");
}

#[test]
fn a_step_table_runs_a_shell_string_and_skips_by_pathspec() {
    let w = World::new("step-table");
    let count = w.path("gen.count");
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nsteps = [{{ run = \"echo ran >> {}\", if_changed = [\"schema/**\"] }}, [\"true\"]]",
            count.display()
        ),
    );
    let runs = || fs::read_to_string(&count).unwrap_or_default().lines().count();
    assert_eq!(w.gitee_push().run().word(), "succeeded");
    assert_eq!(runs(), 1);
    w.push("docs/a.md", "a\n");
    assert_eq!(w.gitee_push().run().word(), "succeeded");
    assert_eq!(runs(), 1, "a change outside schema/** ran the step");
    w.push("schema/deep/x.json", "{}\n");
    assert_eq!(w.gitee_push().run().word(), "succeeded");
    assert_eq!(runs(), 2, "a change under schema/** did not run the step");
}

#[test]
fn a_redelivery_is_unchanged_and_runs_no_step_until_forced_or_rolled_back() {
    let w = World::new("unchanged");
    let www = w.path("www");
    let count = w.path("steps.count");
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nsteps = [\"echo ran >> {} && mkdir -p dist && cp index.md dist/index.html\"]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}",
            count.display(),
            www.to_str().unwrap()
        ),
    );
    let runs = || fs::read_to_string(&count).unwrap_or_default().lines().count();
    w.push("index.md", "one\n");
    assert_eq!(w.gitee_push().run().word(), "succeeded");
    w.push("index.md", "two\n");
    assert_eq!(w.gitee_push().run().word(), "succeeded");
    assert_eq!(runs(), 2);
    let built = w.status()["last"].clone();

    // The forge redelivers the same push: nothing runs, nothing is published.
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (200, "unchanged"), "{}", r.json);
    assert_eq!(runs(), 2, "a step ran for an unchanged commit");
    let s = w.status();
    assert_eq!(s["last"]["result"], "unchanged", "{s}");
    assert_eq!(s["last"]["commit"], built["commit"]);
    assert_eq!(s["last"]["release"], built["release"]);
    assert_eq!(s["live_release"], built["release"]);
    let log = w.log_text(&s["last"]);
    assert!(log.contains("unchanged: "), "{log}");
    assert!(
        !log.contains("git reset"),
        "an unchanged build reset the checkout: {log}"
    );
    let text = String::from_utf8(w.cmd(&["status", "docs"]).stdout).unwrap();
    assert!(text.contains("unchanged"), "{text}");

    // In async mode too.
    w.config(
        "gitee",
        &format!(
            "steps = [\"echo ran >> {} && mkdir -p dist && cp index.md dist/index.html\"]\n[hooks.docs.publish]\nfrom = \"dist\"\nto = {:?}",
            count.display(),
            www.to_str().unwrap()
        ),
    );
    assert_eq!(w.gitee_push().run().status, 202);
    assert_eq!(w.wait_idle()["last"]["result"], "unchanged");
    assert_eq!(runs(), 2);

    // `run --force` builds it anyway, running every step.
    let out = w.cmd(&["run", "docs", "--wait", "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = w.status();
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    assert_eq!(runs(), 3, "run --force ran no step");
    assert!(w.log_text(&s["last"]).contains("forced (deploy-hook run --force)"));
    assert!(
        !w.hook_dir().join("force").exists(),
        "the force marker outlived its build"
    );
    // ... once: the next redelivery is unchanged again.
    w.gitee_push().run();
    assert_eq!(w.wait_idle()["last"]["result"], "unchanged");
    assert_eq!(runs(), 3);
    // `run --wait` of an unchanged commit exits 0 and says so.
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unchanged"));

    // After a rollback the commit is not live any more: a redelivery builds it again.
    let out = w.cmd(&["rollback", "docs"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let forced = w.status()["last"]["release"].clone(); // the unchanged record names the live release
    assert_ne!(
        w.status()["live_release"],
        forced,
        "rollback left the forced release live"
    );
    w.gitee_push().run();
    assert_eq!(w.wait_idle()["last"]["result"], "succeeded");
    assert_eq!(runs(), 4);
    assert_eq!(fs::read_to_string(www.join("index.html")).unwrap(), "two\n");
}
