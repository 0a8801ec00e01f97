//! The config blocks a reader pastes, pasted as they are with only their paths changed, pass
//! `check` and build and publish a site whose generator is a devDependency (as VitePress and
//! VuePress are), with the default steps: the full block of the config reference
//! (docs/config.md, "Every key"), the README's minimal config, its bucket, and its previews.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// The first ```toml block under the `## {heading}` heading of `file` (from the top of the
/// repository).
fn toml_block(file: &str, heading: &str) -> String {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let section = text
        .split(&format!("\n## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("a ## {heading} section in {file}"));
    let block = section
        .split("```toml\n")
        .nth(1)
        .unwrap_or_else(|| panic!("a toml block under ## {heading} in {file}"));
    block.split("\n```").next().unwrap().to_string()
}

/// `text` with each quoted path of `paths` replaced by this world's; every one must be there.
fn adjust(w: &World, mut text: String, what: &str, paths: &[(&str, &Path)]) -> String {
    for (from, to) in paths {
        let quoted = format!("\"{from}\"");
        assert!(text.contains(&quoted), "{what} no longer sets {from}");
        text = text.replace(&quoted, &format!("{:?}", to.to_str().unwrap()));
    }
    // nothing else of this machine is named, so the test checks what a reader would paste
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let value = line.split('#').next().unwrap();
        for abs in value.split('"').skip(1).step_by(2).filter(|v| v.starts_with('/')) {
            assert!(
                abs == "/dev/log" || abs.contains(w.dir.to_str().unwrap()) || abs.starts_with("/usr/local/bin:"),
                "an unadjusted path in {what}: {abs}"
            );
        }
    }
    text
}

#[test]
fn the_config_reference_block_with_its_paths_adjusted_passes_check_and_publishes() {
    requires!(Root, WwwData, Pnpm);
    let w = World::new("readme-config");
    let www = w.path("www");
    let logs = w.path("log");
    fs::create_dir_all(&www).unwrap();
    fs::create_dir_all(&logs).unwrap();
    // a site whose generator is in devDependencies, as VuePress and VitePress sites have
    // it; here a local package, so that `pnpm install` needs no network
    site_with_a_local_generator(&w, "docs/.vuepress/dist");
    // the report's token and the robot's URL, where docs/report.md says to put them; the
    // block's first build succeeds, which sends nothing (a Gitee comment and the robot's
    // default events are failures and fixes)
    let token = w.path("docs.token");
    let robot = w.path("docs.dingtalk");
    fs::write(&token, "a-gitee-token\n").unwrap();
    fs::write(&robot, "https://oapi.dingtalk.com/robot/send?access_token=x\n").unwrap();
    for f in [&token, &robot] {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(f, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let block = toml_block("docs/config.md", "Every key");
    let text = adjust(
        &w,
        block,
        "the config reference's block (docs/config.md)",
        &[
            ("/var/lib/deploy-hook", &w.state),
            ("/var/log/deploy-hook/deploy-hook.log", &logs.join("deploy-hook.log")),
            ("/etc/deploy-hook/docs.secret", &w.secret_file),
            ("/srv/docs", &w.repo),
            ("/var/www/docs", &www.join("docs")),
            ("/etc/deploy-hook/docs.token", &token),
            ("/var/www/docs-builds", &www.join("docs-builds")),
            ("/etc/deploy-hook/docs.dingtalk", &robot),
        ],
    );
    // No test reaches the internet: the forge's API is this machine's, where nothing
    // listens (check says it could not ask).
    assert!(text.contains("\"https://gitee.com/api/v5\""), "the block's report api");
    let text = text.replace("\"https://gitee.com/api/v5\"", "\"http://127.0.0.1:9/api/v5\"");
    // the page lists the build that published
    let page = www.join("docs-builds/index.html");
    checks_builds_and_publishes(&w, &text, &www.join("docs/index.html"));
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.contains("idle · last build passed"), "{html}");
}

#[test]
fn the_readme_minimal_config_with_its_paths_adjusted_passes_check_and_publishes() {
    requires!(Root, WwwData, Pnpm);
    let w = World::new("readme-minimal");
    let www = w.path("www");
    fs::create_dir_all(www.join("docs")).unwrap();
    site_with_a_local_generator(&w, "docs/.vitepress/dist");
    let block = toml_block("README.md", "A minimal config");
    let text = adjust(
        &w,
        block,
        "the README's minimal config",
        &[
            ("/etc/deploy-hook/docs.secret", &w.secret_file),
            ("/srv/deploy-hook/docs", &w.repo),
            ("/var/www/docs/site", &www.join("docs/site")),
        ],
    );
    // The block relies on the default state_dir, /var/lib/deploy-hook: this machine's. The
    // world's own goes first, outside the block.
    let text = format!("state_dir = {:?}\n{text}", w.state.to_str().unwrap());
    checks_builds_and_publishes(&w, &text, &www.join("docs/site/index.html"));
}

#[test]
fn the_readme_bucket_config_with_its_paths_adjusted_passes_check_and_publishes() {
    requires!(Root, WwwData, Pnpm, S3);
    let w = World::new("readme-bucket");
    let s3 = crate::s3::S3::start(&w.path("s3"));
    site_with_a_local_generator(&w, "docs/.vitepress/dist");
    // The README's hook, publishing to its bucket block instead of a local folder.
    let minimal = toml_block("README.md", "A minimal config");
    let hook = minimal.split("[hooks.docs.publish]").next().unwrap().to_string();
    let bucket = toml_block("README.md", "Bucket and CDN");
    assert!(
        bucket.contains("\"oss:docs-bucket/site\""),
        "the README's block names its bucket:\n{bucket}"
    );
    let bucket = bucket.replace("\"oss:docs-bucket/site\"", "\"s3:site/readme\"");
    let text = adjust(
        &w,
        format!("{hook}{bucket}"),
        "the README's bucket config",
        &[
            ("/etc/deploy-hook/docs.secret", &w.secret_file),
            ("/srv/deploy-hook/docs", &w.repo),
            ("/etc/deploy-hook/rclone.conf", &s3.rclone_conf),
        ],
    );
    let text = format!("state_dir = {:?}\n{text}", w.state.to_str().unwrap());
    checks_and_builds(&w, &text);
    let page = s3.get("readme/index.html");
    assert_eq!(
        (page.status, String::from_utf8_lossy(&page.body).as_ref()),
        (200, "<h1>Hello from the README's config</h1>\n")
    );
}

#[test]
fn the_readme_previews_steps_followed_as_written_give_a_pushed_branch_its_preview() {
    requires!(Root, WwwData, Pnpm);
    let w = World::new("readme-previews");
    let www = w.path("www");
    fs::create_dir_all(www.join("docs")).unwrap();
    site_with_a_local_generator(&w, "docs/.vitepress/dist");
    let minimal = toml_block("README.md", "A minimal config");
    // the block of step 3, indented in its list item
    let previews: String = toml_block("README.md", "Previews")
        .split("```")
        .next()
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    assert!(previews.starts_with("[hooks.docs.previews]"), "{previews}");
    // step 3 says: below the hook's publish table (the minimal config's last)
    let text = adjust(
        &w,
        format!("{minimal}\n{previews}"),
        "the README's minimal config and its previews",
        &[
            ("/etc/deploy-hook/docs.secret", &w.secret_file),
            ("/srv/deploy-hook/docs", &w.repo),
            ("/var/www/docs/site", &www.join("docs/site")),
            ("/var/www/docs-previews", &www.join("docs-previews")),
        ],
    );
    let text = format!("state_dir = {:?}\n{text}", w.state.to_str().unwrap());
    // step 2, as written
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(readme.contains("`install -d -o www-data -g www-data /var/www/docs-previews`"));
    let ok = Command::new("install")
        .args(["-d", "-o", "www-data", "-g", "www-data"])
        .arg(www.join("docs-previews"))
        .status()
        .unwrap();
    assert!(ok.success());
    checks_and_builds(&w, &text);

    // a branch pushed: answered with the preview's address, then built and published
    // the author pushes a branch (the setup gave this world's folder, the "forge" and the
    // author's clone too, to www-data: the author is www-data here)
    fs::write(w.seed.join("docs/README.md"), "Hello from a branch\n").unwrap();
    let author = |args: &[&str]| {
        let out = Command::new("/usr/sbin/runuser")
            .args([
                "-u",
                "www-data",
                "--",
                "git",
                "-c",
                "user.name=A",
                "-c",
                "user.email=a@example.com",
            ])
            .args(args)
            .current_dir(&w.seed)
            .env("HOME", &w.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    author(&["checkout", "-q", "-b", "feature/x"]);
    author(&["commit", "-qam", "a branch"]);
    author(&["push", "-q", "origin", "feature/x"]);
    let c = author(&["rev-parse", "HEAD"]);
    let ts = (now_ms() - 60_000).to_string();
    let r = w
        .cgi()
        .header("X-Gitee-Token", gitee_token(SECRET, &ts))
        .header("X-Gitee-Timestamp", &ts)
        .header("X-Gitee-Event", "Push Hook")
        .body(format!("{{\"ref\":\"refs/heads/feature/x\",\"after\":\"{c}\"}}").as_bytes())
        .run();
    assert_eq!(r.status, 202, "{}", r.json);
    assert!(
        r.json["message"]
            .as_str()
            .unwrap()
            .contains("https://branch-feature-x.preview.docs.example.com/"),
        "{}",
        r.json
    );
    let page = www.join("docs-previews/branch-feature-x/index.html");
    wait_for("the preview", std::time::Duration::from_secs(120), || page.exists());
    assert_eq!(fs::read_to_string(&page).unwrap(), "<h1>Hello from a branch</h1>\n");
    assert_eq!(
        fs::read_to_string(www.join("docs/site/index.html")).unwrap(),
        "<h1>Hello from the README's config</h1>\n",
        "the production site is as it was"
    );
    // The page is there once published; the preview's record says so when its build ends.
    let listed = || String::from_utf8_lossy(&w.cmd(&["previews", "docs"]).stdout).to_string();
    wait_for("the preview's record", std::time::Duration::from_secs(60), || {
        listed().contains(&c[..10])
    });
    let listed = listed();
    assert!(
        listed.contains("branch-feature-x") && listed.contains(&c[..10]),
        "{listed}"
    );
}

/// Writes `text` as the config, then as the web server's user: `check` passes with no FAIL,
/// and `run --wait` builds and publishes the page to `index`.
fn checks_builds_and_publishes(w: &World, text: &str, index: &Path) {
    checks_and_builds(w, text);
    assert_eq!(
        fs::read_to_string(index).unwrap(),
        "<h1>Hello from the README's config</h1>\n"
    );
}

/// Writes `text` as the config, then as the web server's user: `check` passes with no FAIL,
/// and `run --wait` builds and publishes.
fn checks_and_builds(w: &World, text: &str) {
    fs::create_dir_all(&w.state).unwrap();
    fs::write(&w.config, text).unwrap();
    // set up as docs/setup.md says: the web server's user owns the checkout, the state dir,
    // the publish folder and the log folder; the secret is root:www-data 0640
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
        .env("PATH", w.web.path("/usr/local/bin:/usr/bin:/bin"))
        .env("DEPLOY_HOOK_CONFIG", &w.config)
        .current_dir("/")
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "check failed on the config:\n{text}\n{report}");
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
}

/// package.json with `docs:build` = `vuepress build docs` and `vuepress` in
/// devDependencies, from a folder in the repo; the generator writes `out`.
fn site_with_a_local_generator(w: &World, out: &str) {
    use std::os::unix::fs::PermissionsExt;
    let cli = format!(
        r#"#!/usr/bin/env node
const fs = require("fs");
fs.mkdirSync("{out}", {{ recursive: true }});
const md = fs.readFileSync("docs/README.md", "utf8").trim();
fs.writeFileSync("{out}/index.html", "<h1>" + md + "</h1>\n");
"#
    );
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
        ("tools/vuepress/cli.js", cli.as_str()),
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
