//! Work that cannot change the result is skipped: an `if_changed` step (the default
//! `pnpm install`) runs only when its inputs changed since its last successful run in the
//! checkout, by whichever hook, and a commit that is already built and live is
//! `unchanged`. Real git, real pnpm.

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
fn the_install_step_runs_only_when_its_inputs_changed_since_its_last_successful_run() {
    requires!(Pnpm);
    let w = pnpm_world("if-changed", "");
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(installed(&log), "the first build must install: {log}");
    assert!(
        log.contains("pnpm install: runs (no successful run of it recorded in this working tree)"),
        "{log}"
    );
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

    // The lockfile changes: install runs and says why, since its last run (the first build).
    w.push("pnpm-lock.yaml", &format!("{LOCKFILE}# v2\n"));
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(installed(&log), "{log}");
    assert!(
        log.contains(&format!("pnpm install: runs (pnpm-lock.yaml changed since {base})")),
        "{log}"
    );

    // The lockfile changes in a build that installs it and then fails: node_modules is
    // that lockfile's, so the next build of it (docs only) does not install again.
    w.push("pnpm-lock.yaml", &format!("{LOCKFILE}# v3\n"));
    let installed_at = w.push("build.js", "process.exit(1);\n");
    let (word, log) = build(&w);
    assert_eq!(word, "failed", "{log}");
    assert!(installed(&log), "{log}");
    w.push("build.js", BUILD_JS);
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(
        log.contains(&format!(
            "pnpm install: skipped: package.json, pnpm-lock.yaml, pnpm-workspace.yaml, .npmrc unchanged since {}",
            &installed_at[..10]
        )),
        "{log}"
    );

    // The lockfile goes back to the live build's in a build after one that installed
    // another: the install runs again, though the lockfile equals the live build's.
    let good = w.status()["last"]["commit"].as_str().unwrap().to_string();
    w.push("pnpm-lock.yaml", &format!("{LOCKFILE}# v4\n"));
    let other = w.push("build.js", "process.exit(1);\n");
    assert_eq!(build(&w).0, "failed");
    w.push("pnpm-lock.yaml", &format!("{LOCKFILE}# v3\n"));
    w.push("build.js", BUILD_JS);
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(
        log.contains(&format!(
            "pnpm install: runs (pnpm-lock.yaml changed since {})",
            &other[..10]
        )),
        "{log}"
    );
    assert_ne!(good, other);

    // An install that fails is not recorded as done: with the inputs back as they were at
    // its last success, it runs again.
    let before = fs::read_to_string(w.seed.join("package.json")).unwrap();
    w.push("package.json", "{ not json\n");
    let (word, log) = build(&w);
    assert_eq!(word, "failed", "{log}");
    assert!(installed(&log), "{log}");
    w.push("package.json", &before);
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(
        log.contains("pnpm install: runs (no successful run of it recorded in this working tree)"),
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

/// A tiny dependency in two versions, as local folders: installing it needs no network.
fn dep_lockfile(dir: &str) -> String {
    format!(
        "lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n  excludeLinksFromLockfile: false\n\nimporters:\n\n  .:\n    dependencies:\n      tiny-dep:\n        specifier: file:./{dir}\n        version: file:{dir}\n\npackages:\n\n  tiny-dep@file:{dir}:\n    resolution: {{directory: {dir}, type: directory}}\n\nsnapshots:\n\n  tiny-dep@file:{dir}: {{}}\n"
    )
}

fn dep_package_json(dir: &str) -> String {
    format!(
        "{{\n  \"name\": \"tiny-docs\",\n  \"private\": true,\n  \"scripts\": {{ \"docs:build\": \"node build.js\" }},\n  \"dependencies\": {{ \"tiny-dep\": \"file:./{dir}\" }}\n}}\n"
    )
}

/// Hooks `docs` (main) and `docs2` (dev) on the world's checkout, the default steps,
/// each publishing to `www-<hook>`; `extra` is more TOML for both.
fn two_hooks_on_one_checkout(w: &World, extra: &str) {
    let hook = |name: &str, branch: &str| {
        format!(
            "[hooks.{name}]\nprovider = \"gitee\"\nsecret_file = {:?}\nrepo = {:?}\nbranch = {branch:?}\nmode = \"sync\"\nclean = [\"docs/.vuepress/dist\"]\n{extra}\n[hooks.{name}.publish]\nfrom = \"docs/.vuepress/dist\"\nto = {:?}\n",
            w.secret_file.to_str().unwrap(),
            w.repo.to_str().unwrap(),
            w.path(&format!("www-{name}")).to_str().unwrap()
        )
    };
    fs::write(
        &w.config,
        format!(
            "state_dir = {:?}\n[log]\nsyslog = \"\"\n\n{}\n{}",
            w.state.to_str().unwrap(),
            hook("docs", "main"),
            hook("docs2", "dev")
        ),
    )
    .unwrap();
}

#[test]
fn check_warns_when_hooks_on_one_checkout_have_a_pnpm_store_each() {
    let w = World::new("deps-stores");
    let warning = "run pnpm in ";
    two_hooks_on_one_checkout(&w, "");
    let check = String::from_utf8_lossy(&w.cmd(&["check"]).stdout).into_owned();
    assert!(
        check.contains(&format!("hooks docs, docs2 {warning}")) && check.contains("npm_config_store_dir"),
        "{check}"
    );
    let store = w.path("pnpm-store");
    two_hooks_on_one_checkout(
        &w,
        &format!("env = {{ npm_config_store_dir = {:?} }}", store.to_str().unwrap()),
    );
    let check = String::from_utf8_lossy(&w.cmd(&["check"]).stdout).into_owned();
    assert!(check.contains("hooks docs, docs2 share the working tree"), "{check}");
    assert!(!check.contains(warning), "{check}");
}

/// The page says which version of the dependency `node_modules` held when it was built.
const DEP_BUILD_JS: &str = r#"const fs = require('fs');
const out = 'docs/.vuepress/dist';
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(out + '/index.html', fs.readFileSync('docs/README.md', 'utf8') + 'deps ' + require('tiny-dep') + '\n');
"#;

#[test]
fn two_hooks_on_one_checkout_each_publish_their_own_dependencies() {
    requires!(Pnpm);
    let w = World::new("deps-per-tree");
    for v in ["v1", "v2"] {
        w.push(
            &format!("dep-{v}/package.json"),
            &format!(
                "{{\"name\": \"tiny-dep\", \"version\": \"{}.0.0\", \"main\": \"index.js\"}}\n",
                &v[1..]
            ),
        );
        w.push(&format!("dep-{v}/index.js"), &format!("module.exports = '{v}';\n"));
    }
    w.push("build.js", DEP_BUILD_JS);
    w.push("docs/README.md", "main\n");
    w.push("pnpm-lock.yaml", &dep_lockfile("dep-v1"));
    w.push("package.json", &dep_package_json("dep-v1"));
    // dev branches off main and depends on v2
    w.push_to("dev", "pnpm-lock.yaml", &dep_lockfile("dep-v2"));
    w.push_to("dev", "package.json", &dep_package_json("dep-v2"));
    w.push_to("dev", "docs/README.md", "dev\n");

    // Two hooks on one checkout, the default steps (install only when its inputs changed).
    // One pnpm store for both: with a store of its own each, pnpm asks before it reinstalls
    // and, with no terminal to answer, installs nothing (check warns about that, below).
    let store = w.path("pnpm-store");
    two_hooks_on_one_checkout(
        &w,
        &format!("env = {{ npm_config_store_dir = {:?} }}", store.to_str().unwrap()),
    );
    let build = |name: &str| {
        let out = w.cmd(&["run", name, "--wait"]);
        let s: serde_json::Value =
            serde_json::from_slice(&fs::read(w.state.join(name).join("status.json")).unwrap()).unwrap();
        let log = w.log_text(&s["last"]);
        assert!(out.status.success(), "{name}: {log}");
        assert_eq!(s["last"]["result"], "succeeded", "{name}: {log}");
        let page = fs::read_to_string(w.path(&format!("www-{name}/index.html"))).unwrap();
        (page, log)
    };

    let (page, log) = build("docs");
    assert!(installed(&log), "{log}");
    assert_eq!(page, "main\ndeps v1\n");
    let (page, log) = build("docs2");
    assert!(installed(&log), "{log}");
    assert_eq!(page, "dev\ndeps v2\n");

    // A content-only push to main: node_modules is dev's now, so main installs again.
    // (`push_to` would start the branch afresh from the seed's HEAD, dev.)
    git(&w.seed, &["checkout", "-q", "main"]);
    w.push_to("main", "docs/README.md", "main again\n");
    let (page, log) = build("docs");
    assert!(installed(&log), "install was skipped on dev's node_modules: {log}");
    assert!(log.contains("pnpm install: runs ("), "{log}");
    assert_eq!(page, "main again\ndeps v1\n", "{log}");
    // ... and the converse: another content-only push on the same hook skips it.
    let installed_at = w.head();
    w.push_to("main", "docs/README.md", "main a third time\n");
    let (page, log) = build("docs");
    assert!(!installed(&log), "{log}");
    assert!(
        log.contains(&format!(
            "pnpm install: skipped: package.json, pnpm-lock.yaml, pnpm-workspace.yaml, .npmrc unchanged since {}",
            &installed_at[..10]
        )),
        "{log}"
    );
    assert_eq!(page, "main a third time\ndeps v1\n");

    // dev again, content only: node_modules is main's, so dev installs again too.
    git(&w.seed, &["checkout", "-q", "dev"]);
    w.push_to("dev", "docs/README.md", "dev again\n");
    let (page, log) = build("docs2");
    assert!(installed(&log), "{log}");
    assert_eq!(page, "dev again\ndeps v2\n", "{log}");
}

/// A site whose build needs its dependency (`tiny-dep`, v1) in `node_modules`, with the
/// default steps; `clean` as given.
fn deps_world(name: &str, clean: &str) -> World {
    let w = World::new(name);
    w.push(
        "dep-v1/package.json",
        "{\"name\": \"tiny-dep\", \"version\": \"1.0.0\", \"main\": \"index.js\"}\n",
    );
    w.push("dep-v1/index.js", "module.exports = 'v1';\n");
    w.push("build.js", DEP_BUILD_JS);
    w.push("docs/README.md", "one\n");
    w.push("pnpm-lock.yaml", &dep_lockfile("dep-v1"));
    w.push("package.json", &dep_package_json("dep-v1"));
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nclean = {clean}\n[hooks.docs.publish]\nfrom = \"docs/.vuepress/dist\"\nto = {:?}",
            w.path("www").to_str().unwrap()
        ),
    );
    w
}

#[test]
fn a_clean_path_that_removes_what_a_skipped_step_left_makes_that_step_run() {
    requires!(Pnpm);
    // `rm -rf node_modules dist` as a habit, written as `clean`.
    let w = deps_world("clean-node-modules", r#"["node_modules", "docs/.vuepress/dist"]"#);
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(installed(&log), "{log}");
    // Only docs change, but clean removed node_modules, which install left: it runs.
    w.push("docs/README.md", "two\n");
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(installed(&log), "{log}");
    assert!(
        log.contains("pnpm install: runs (clean removed node_modules, which its last run left)"),
        "{log}"
    );
    assert_eq!(fs::read_to_string(w.path("www/index.html")).unwrap(), "two\ndeps v1\n");
    // A clean path that its run did not leave (the site's output) skips nothing more.
    let w = deps_world("clean-dist-only", r#"["docs/.vuepress/dist"]"#);
    assert_eq!(build(&w).0, "succeeded");
    w.push("docs/README.md", "two\n");
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    assert!(!installed(&log), "{log}");
}

#[test]
fn a_build_that_fails_after_skipping_a_step_is_built_again_at_once_with_that_step() {
    requires!(Pnpm);
    let w = deps_world("skipped-then-failed", r#"["docs/.vuepress/dist"]"#);
    let (word, log) = build(&w);
    assert_eq!(word, "succeeded", "{log}");
    // What install left is lost behind deploy-hook's back (a disk cleanup, a person).
    fs::remove_dir_all(w.repo.join("node_modules")).unwrap();
    w.push("docs/README.md", "two\n");
    let (word, log) = build(&w);
    assert_eq!(word, "failed", "{log}");
    assert!(!installed(&log), "{log}");
    assert!(
        log.contains("pnpm install was skipped in this build: it runs in the build that follows at once"),
        "{log}"
    );
    let failed = w.status()["last"]["id"].clone();
    // Nobody pushes again, nobody runs anything: the site heals by itself, in one build.
    let s = w.wait_idle();
    assert_ne!(s["last"]["id"], failed, "no build followed the failed one: {s}");
    let log = w.log_text(&s["last"]);
    assert_eq!(s["last"]["result"], "succeeded", "{log}");
    assert!(installed(&log), "{log}");
    assert!(
        log.contains("pnpm install: runs (no successful run of it recorded in this working tree)"),
        "{log}"
    );
    assert_eq!(fs::read_to_string(w.path("www/index.html")).unwrap(), "two\ndeps v1\n");
    // And only once: a build that fails with nothing skipped is not built again.
    fs::write(w.repo.join("node_modules").join(".keep"), "").unwrap();
    w.push("build.js", "process.exit(3);\n");
    let (word, log) = build(&w);
    assert_eq!(word, "failed", "{log}");
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "failed", "{s}");
    assert!(!w.hook_dir().join("pending").exists());
}

#[test]
fn a_build_superseded_after_skipping_a_step_leaves_that_step_skippable() {
    requires!(Pnpm);
    let w = deps_world("skipped-then-superseded", r#"["docs/.vuepress/dist"]"#);
    let (record, gate) = (w.path("record"), w.path("gate"));
    fs::write(&gate, "").unwrap();
    w.config(
        "gitee",
        &format!(
            "on_busy = \"supersede\"\nclean = [\"docs/.vuepress/dist\"]\nsteps = [{{ run = [\"pnpm\", \"install\"], if_changed = [\"package.json\", \"pnpm-lock.yaml\"] }}, {}, [\"pnpm\", \"docs:build\"]]\n[hooks.docs.publish]\nfrom = \"docs/.vuepress/dist\"\nto = {:?}",
            toml_str(&gated_step(&record, &gate)),
            w.path("www").to_str().unwrap()
        ),
    );
    assert_eq!(w.gitee_push().run().status, 202);
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{}", w.log_text(&s["last"]));
    // A content-only push: install is skipped, and the build waits at the gate ...
    fs::remove_file(&gate).unwrap();
    w.push("docs/README.md", "two\n");
    assert_eq!(w.gitee_push().run().status, 202);
    let starts = |n: usize| fs::read_to_string(&record).unwrap_or_default().matches("start").count() == n;
    wait_for(
        "the second build to reach the gate",
        std::time::Duration::from_secs(60),
        || starts(2),
    );
    // ... where a newer push stops it: not a failure of the build's own, so install's
    // record stands and the newer build skips it too.
    w.push("docs/README.md", "three\n");
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for(
        "the newest build to reach the gate",
        std::time::Duration::from_secs(60),
        || starts(3),
    );
    fs::write(&gate, "").unwrap();
    let s = w.wait_idle();
    let history = w.history();
    let superseded = history
        .iter()
        .find(|b| b["result"] == "superseded")
        .expect("a superseded build");
    let log = w.log_text(superseded);
    assert!(!log.contains("was skipped in this build"), "{log}");
    let log = w.log_text(&s["last"]);
    assert_eq!(s["last"]["result"], "succeeded", "{log}");
    assert!(!installed(&log), "{log}");
    assert_eq!(
        fs::read_to_string(w.path("www/index.html")).unwrap(),
        "three\ndeps v1\n"
    );
}
