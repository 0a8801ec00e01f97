//! The README's Config block, pasted as it is with only its paths changed, passes `check`
//! and builds and publishes a site whose generator is a devDependency (as VitePress and
//! VuePress are), with the default steps.

use std::fs;
use std::process::Command;

use crate::util::*;

/// The first ```toml block under the README's `## Config` heading.
fn readme_config_block() -> String {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## Config\n").nth(1).expect("a ## Config section");
    let block = section.split("```toml\n").nth(1).expect("a toml block under ## Config");
    block.split("\n```").next().unwrap().to_string()
}

#[test]
fn the_readme_config_block_with_its_paths_adjusted_passes_check() {
    let w = World::new("readme-config");
    let www = w.path("www");
    let logs = w.path("log");
    fs::create_dir_all(&www).unwrap();
    fs::create_dir_all(&logs).unwrap();
    // a site whose generator is in devDependencies, as VuePress and VitePress sites have
    // it; here a local package, so that `pnpm install` needs no network
    site_with_a_local_generator(&w);
    let mut text = readme_config_block();
    for (from, to) in [
        ("/var/lib/deploy-hook", w.state.clone()),
        ("/var/log/deploy-hook/deploy-hook.log", logs.join("deploy-hook.log")),
        ("/etc/deploy-hook/docs.secret", w.secret_file.clone()),
        ("/srv/docs", w.repo.clone()),
        ("/var/www/docs", www.join("docs")),
    ] {
        let quoted = format!("\"{from}\"");
        assert!(
            text.contains(&quoted),
            "the README's Config block no longer sets {from}"
        );
        text = text.replace(&quoted, &format!("{:?}", to.to_str().unwrap()));
    }
    // nothing else of this machine is named, so the test checks what a reader would paste
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let value = line.split('#').next().unwrap();
        for abs in value.split('"').skip(1).step_by(2).filter(|v| v.starts_with('/')) {
            assert!(
                abs == "/dev/log" || abs.contains(w.dir.to_str().unwrap()) || abs.starts_with("/usr/local/bin:"),
                "an unadjusted path in the README's Config block: {abs}"
            );
        }
    }
    fs::create_dir_all(&w.state).unwrap();
    fs::write(&w.config, &text).unwrap();
    // set up as the README's Install says: the web server's user owns the checkout, the
    // state dir, the publish folder and the log folder; the secret is root:www-data 0640
    let run = |args: &[&str]| {
        let ok = Command::new(args[0]).args(&args[1..]).status().unwrap();
        assert!(ok.success(), "{args:?}");
    };
    // a copy of the binary the web server's user can reach, as /usr/local/bin/deploy-hook
    let bin = w.path("bin/deploy-hook");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::copy(BIN, &bin).unwrap();
    run(&["chown", "-R", "www-data:www-data", w.dir.to_str().unwrap()]);
    run(&["chown", "root:www-data", w.secret_file.to_str().unwrap()]);
    run(&["chmod", "640", w.secret_file.to_str().unwrap()]);
    let out = Command::new("/usr/sbin/runuser")
        .args(["-u", "www-data", "--"])
        .arg(&bin)
        .arg("check")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .current_dir("/")
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "check failed on the README's Config block:\n{text}\n{report}"
    );
    assert!(!report.contains("FAIL"), "{report}");

    // and it builds and publishes the site, as the web server's user
    let out = Command::new("/usr/sbin/runuser")
        .args(["-u", "www-data", "--"])
        .arg(&bin)
        .args(["run", "docs", "--wait"])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .current_dir("/")
        .output()
        .unwrap();
    let s = w.status();
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        w.log_text(&s["last"])
    );
    assert_eq!(
        fs::read_to_string(www.join("docs/index.html")).unwrap(),
        "<h1>Hello from the README's config</h1>\n"
    );
}

/// package.json with `docs:build` = `vuepress build docs` and `vuepress` in
/// devDependencies, from a folder in the repo; the generator writes docs/.vuepress/dist.
fn site_with_a_local_generator(w: &World) {
    use std::os::unix::fs::PermissionsExt;
    let files = [
        (
            "package.json",
            r#"{"name": "docs", "private": true, "version": "1.0.0",
 "scripts": {"docs:build": "vuepress build docs"},
 "devDependencies": {"vuepress": "file:./tools/vuepress"}}
"#,
        ),
        (
            "tools/vuepress/package.json",
            r#"{"name": "vuepress", "version": "0.0.0", "bin": {"vuepress": "cli.js"}}
"#,
        ),
        (
            "tools/vuepress/cli.js",
            r#"#!/usr/bin/env node
const fs = require("fs");
fs.mkdirSync("docs/.vuepress/dist", { recursive: true });
const md = fs.readFileSync("docs/README.md", "utf8").trim();
fs.writeFileSync("docs/.vuepress/dist/index.html", "<h1>" + md + "</h1>\n");
"#,
        ),
        ("docs/README.md", "Hello from the README's config\n"),
    ];
    for (rel, text) in files {
        let p = w.seed.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
    }
    fs::set_permissions(w.seed.join("tools/vuepress/cli.js"), fs::Permissions::from_mode(0o755)).unwrap();
    git(&w.seed, &["add", "-A"]);
    git(&w.seed, &["commit", "-q", "-m", "a site"]);
    git(&w.seed, &["push", "-q", "origin", "main"]);
}
