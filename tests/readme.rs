//! The README's Config block, pasted as it is with only its paths changed, passes `check`.

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
    // a VitePress site, its generator in devDependencies as `npm create vitepress` makes it
    w.push(
        "package.json",
        r#"{"scripts": {"docs:build": "vitepress build docs"}, "devDependencies": {"vitepress": "^1.6.3"}}"#,
    );
    crate::util::git(&w.repo, &["pull", "-q", "origin", "main"]);
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
}
