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
    requires!(Root, WwwData, Pnpm);
    let pnpm = ["/usr/local/bin/pnpm", "/usr/bin/pnpm"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    assert!(
        pnpm.is_some(),
        "pnpm is not installed: .ci/run installs it with npm install -g pnpm"
    );
    // Set up as the README says: www-data owns the checkout and the state folder, and the
    // delivery comes as the web server runs it, as www-data; check (run as root) becomes
    // www-data too.
    let w = crate::check::www_data_world("pnpm");
    let head = tiny_site(&w, "Hello from deploy-hook\n");
    let www = w.path("www/site");
    w.config(
        "gitlab",
        &format!(
            "mode = \"sync\"\nclean = [\"docs/.vuepress/dist\"]\nenv = {{ NODE_ENV = \"production\" }}\n[hooks.docs.publish]\nfrom = \"docs/.vuepress/dist\"\nto = {:?}",
            www.to_str().unwrap()
        ),
    );
    let check = w.cmd(&["check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let r = crate::root::delivery_as_www_data(&w);
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
    // Built as www-data, though check ran as root.
    use std::os::unix::fs::MetadataExt;
    let www_data = crate::init::uid_of("www-data");
    assert_eq!(fs::metadata(www.join("index.html")).unwrap().uid(), www_data);
}
