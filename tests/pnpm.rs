//! The default steps (`pnpm install`, `pnpm docs:build`) with real pnpm on a tiny site
//! whose build needs nothing from the network.

use std::fs;

use crate::util::*;

pub const PACKAGE_JSON: &str = r#"{
  "name": "tiny-docs",
  "private": true,
  "version": "1.0.0",
  "scripts": { "docs:build": "node build.js" }
}
"#;

pub const BUILD_JS: &str = r#"const fs = require('fs');
const out = 'docs/.vuepress/dist';
fs.mkdirSync(out, { recursive: true });
const md = fs.readFileSync('docs/README.md', 'utf8');
fs.writeFileSync(out + '/index.html', '<h1>' + md.trim() + '</h1>\n' + (process.env.DEPLOY_HOOK_COMMIT || '') + '\n');
"#;

/// Pushes the tiny site (no dependencies: `pnpm install` needs no network); returns the
/// head commit.
pub fn tiny_site(w: &World, readme: &str) -> String {
    w.push("package.json", PACKAGE_JSON);
    w.push("build.js", BUILD_JS);
    w.push("docs/README.md", readme)
}

#[test]
fn default_steps_build_a_tiny_site_with_real_pnpm() {
    let pnpm = ["/usr/local/bin/pnpm", "/usr/bin/pnpm"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    assert!(
        pnpm.is_some(),
        "pnpm is not installed: .ci/run installs it with npm install -g pnpm"
    );
    let w = World::new("pnpm");
    let head = tiny_site(&w, "Hello from deploy-hook\n");
    let www = w.path("www");
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nclean = [\"docs/.vuepress/dist\"]\nenv = {{ NODE_ENV = \"production\" }}\n[hooks.docs.publish]\nfrom = \"docs/.vuepress/dist\"\nto = {:?}",
            www.to_str().unwrap()
        ),
    );
    // Run as root, check wants the web server's user able to create the state folder.
    crate::check::chown("www-data:www-data", false, &w.dir);
    let check = w.cmd(&["check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let r = w.gitee_push().run();
    let s = w.status();
    assert_eq!(
        (r.status, r.word()),
        (200, "succeeded"),
        "{}\n{}",
        r.json,
        w.log_text(&s["last"])
    );
    let log = w.log_text(&s["last"]);
    assert!(
        log.contains("$ pnpm install") && log.contains("$ pnpm docs:build"),
        "{log}"
    );
    let html = fs::read_to_string(www.join("index.html")).unwrap();
    assert_eq!(html, format!("<h1>Hello from deploy-hook</h1>\n{head}\n"));
    assert!(w.hook_dir().join("home").is_dir());
}
