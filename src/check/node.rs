//! What a Node.js site's build needs beyond its programs: `node` itself beside
//! pnpm/npm/yarn (they are node scripts, or run the site generator with it), and
//! devDependencies that an install actually installs (`NODE_ENV=production` makes
//! `pnpm install` and `npm install` skip them, and that is where VitePress, VuePress and
//! Docusaurus live).

use super::{Ctx, Report};
use crate::config::Hook;
use crate::sys::process::which;

const PACKAGE_MANAGERS: &[&str] = &["pnpm", "npm", "yarn", "npx", "pnpx", "corepack"];

/// Site generators and bundlers a docs site builds with; a name ending in `/` is a scope.
const BUILD_TOOLS: &[&str] = &[
    "vitepress",
    "vuepress",
    "vuepress-vite",
    "@vuepress/",
    "@docusaurus/",
    "docusaurus",
    "vite",
    "astro",
    "@11ty/eleventy",
    "hexo",
    "gatsby",
    "next",
    "nuxt",
    "rspress",
    "@rspress/",
    "docsify-cli",
    "@vue/cli-service",
    "webpack",
    "webpack-cli",
    "rollup",
    "esbuild",
    "typescript",
];

/// The package managers the steps (and notifications) call, also inside a shell string.
fn managers_used(hook: &Hook) -> Vec<&'static str> {
    let mut used = Vec::new();
    for cmd in hook
        .steps
        .iter()
        .map(|s| &s.run)
        .chain(hook.on_success.iter())
        .chain(hook.on_failure.iter())
    {
        for arg in cmd.argv() {
            for word in arg.split(|c: char| c.is_whitespace() || ";&|()`$\"'".contains(c)) {
                let base = word.rsplit('/').next().unwrap_or(word);
                if let Some(m) = PACKAGE_MANAGERS.iter().find(|m| **m == base) {
                    if !used.contains(m) {
                        used.push(*m);
                    }
                }
            }
        }
    }
    used
}

pub(super) fn check(ctx: &Ctx, hook: &Hook, r: &mut Report) {
    let used = managers_used(hook);
    if !used.is_empty() {
        match which("node", &hook.path) {
            Some(p) => r.ok("node", format!("node found: {} (for {})", p.display(), used.join(", "))),
            None => r.fail(
                "node",
                format!(
                    "{} needs node, which is not found on path {}",
                    used.join(", "),
                    hook.path
                ),
                format!(
                    "add node's folder (dirname $(command -v node)) to the hook's path, or apt-get install nodejs (run as {})",
                    ctx.user
                ),
            ),
        }
    }
    let production = hook
        .env
        .get("NODE_ENV")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("production"));
    if !production {
        return;
    }
    let file = hook.repo.join("package.json");
    let Ok(text) = std::fs::read(&file) else {
        return;
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&text) else {
        r.warn(
            "NODE_ENV",
            format!(
                "{} is not valid JSON; NODE_ENV=production was not checked against it",
                file.display()
            ),
        );
        return;
    };
    let dev: Vec<&str> = json["devDependencies"]
        .as_object()
        .map(|o| {
            o.keys()
                .map(String::as_str)
                .filter(|k| {
                    BUILD_TOOLS
                        .iter()
                        .any(|t| if t.ends_with('/') { k.starts_with(t) } else { k == t })
                })
                .collect()
        })
        .unwrap_or_default();
    if dev.is_empty() {
        r.ok(
            "NODE_ENV",
            "env NODE_ENV=production: no build tool of package.json is a devDependency",
        );
    } else {
        r.fail(
            "NODE_ENV",
            format!(
                "env NODE_ENV=production makes the install skip devDependencies, and {}'s devDependencies hold the build tool: {}",
                file.display(),
                dev.join(", ")
            ),
            format!(
                "remove NODE_ENV from env in [hooks.{}] (the site generator sets production for its own build)",
                hook.name
            ),
        );
    }
}
