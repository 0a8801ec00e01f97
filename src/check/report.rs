//! What `[report]`, `[page]` and `[[notify]]` need of this machine: token and URL files
//! the build's user reads and nobody else does, a page folder it can write, and a token
//! the forge lets write statuses for `repo` (asked read-only, when the API answers).
//! Nothing here prints a token or a robot's URL: a file is named, never shown.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{writable, Ctx, Report};
use crate::config::{check_url, Forge, Hook, NotifyKind};
use crate::report::forge::{self, Probe};
use crate::report::http::{self, Client};

pub fn check(ctx: &Ctx, hook: &Hook, r: &mut Report) {
    if let Some(cfg) = &hook.report {
        if let Some(token) = secret_file(ctx, &cfg.token_file, "report token", "token_file", r) {
            probe(ctx, cfg, &token, r);
        }
    }
    if let Some(p) = &hook.page {
        page_dir(ctx, &p.dir, r);
    }
    for (i, n) in hook.notify.iter().enumerate() {
        let item = format!("notify {} ({})", i + 1, n.kind.name());
        if let Some(url) = secret_file(ctx, &n.url_file, &item, "url_file", r) {
            robot_url(n.kind, &url, &n.url_file, &item, r);
        }
        if let Some(f) = &n.secret_file {
            if let Some(secret) = secret_file(ctx, f, &item, "secret_file", r) {
                if n.kind == NotifyKind::Dingtalk && !secret.starts_with("SEC") {
                    r.warn(
                        &item,
                        format!(
                            "secret_file {} does not hold a DingTalk signing secret (they start with SEC)",
                            f.display()
                        ),
                    );
                }
            }
        }
    }
}

/// A file that holds a secret: readable by the build's user, by nobody else, not empty.
/// Returns its first line when it can be read.
fn secret_file(ctx: &Ctx, path: &Path, item: &str, key: &str, r: &mut Report) -> Option<String> {
    let user = &ctx.user;
    let fix_mode = format!("chmod 600 {p}; chown {user}: {p}", p = path.display());
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => {
            r.fail(
                item,
                format!("{key} {} is not a file", path.display()),
                format!("write it as a file: {fix_mode}"),
            );
            return None;
        }
        Err(e) => {
            r.fail(
                item,
                format!("{key} {}: {e}", path.display()),
                format!("write it (docs/report.md says where it comes from), then {fix_mode}"),
            );
            return None;
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            r.fail(
                item,
                format!("{key} {} cannot be read by {user}: {e}", path.display()),
                fix_mode,
            );
            return None;
        }
    };
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        r.fail(
            item,
            format!("{key} {} is empty", path.display()),
            "write the value into it (one line)",
        );
        return None;
    };
    if mode & 0o007 != 0 {
        r.fail(
            item,
            format!("{key} {} is readable by everyone (mode {mode:o})", path.display()),
            fix_mode,
        );
    } else if mode & 0o070 != 0 {
        r.warn(
            item,
            format!(
                "{key} {} is readable by its group (mode {mode:o}); keep it to the build's user: {fix_mode}",
                path.display(),
            ),
        );
    } else {
        r.ok(
            item,
            format!("{key} {} is readable by {user} only (mode {mode:o})", path.display()),
        );
    }
    Some(first.to_string())
}

/// Asks the forge, read-only, whether the token may write statuses for `repo`. An API
/// that does not answer is no failure: the build will try anyway, and logs what it gets.
fn probe(ctx: &Ctx, cfg: &crate::config::Report, token: &str, r: &mut Report) {
    let (client, warning) = Client::new(Path::new(http::SYSTEM_BUNDLE));
    if let Some(w) = warning {
        r.warn("report api", w);
    }
    let answer = client.send(&forge::probe_request(cfg, token));
    let what = if cfg.forge == Forge::Gitee {
        "comment on"
    } else {
        "set statuses on"
    };
    // The API's words go through the build log's masker: an API may echo the token it
    // refused (or another hook's secret) in its answer.
    let m = crate::report::masker(ctx.cfg);
    match forge::probe_verdict(cfg, &answer) {
        Probe::Writes(d) => r.ok("report api", m.mask(&d)),
        Probe::Unknown(d) => r.warn("report api", m.mask(&d)),
        Probe::Cannot(d, fix) => r.fail(
            "report api",
            m.mask(&format!("the token cannot {what} {}: {d}", cfg.repo)),
            m.mask(&fix),
        ),
        Probe::Unreachable(d) => r.skip(
            "report api",
            m.mask(&format!("not checked: {} {d}", http::redact(&cfg.api))),
        ),
    }
}

/// A robot's URL: https (http to this machine only), and the shape its kind has.
fn robot_url(kind: NotifyKind, url: &str, file: &Path, item: &str, r: &mut Report) {
    if let Err(why) = check_url(url, true) {
        r.fail(
            item,
            format!("the URL in {} {why}", file.display()),
            "put the robot's https:// URL in the file, on one line",
        );
        return;
    }
    let looks = match kind {
        NotifyKind::Dingtalk => url.contains("access_token="),
        NotifyKind::Feishu => url.contains("/open-apis/bot/v2/hook/"),
        NotifyKind::Wecom => url.contains("key="),
        NotifyKind::Slack => url.contains("/services/"),
        NotifyKind::Webhook => true,
    };
    let shown = http::redact(url);
    if looks {
        r.ok(item, format!("robot URL {shown}"));
    } else {
        r.warn(
            item,
            format!(
                "{shown} does not look like a {} robot's URL (docs/report.md shows one)",
                kind.name()
            ),
        );
    }
}

/// The page's folder: there and writable by the build's user, or creatable by it.
fn page_dir(ctx: &Ctx, dir: &Path, r: &mut Report) {
    let user = &ctx.user;
    let fix = format!("install -d -o {user} -g {user} -m 755 {}", dir.display());
    if dir.is_dir() {
        if ctx.as_root || writable(dir) {
            r.ok("page", format!("page dir {} is writable", dir.display()));
        } else {
            r.fail(
                "page",
                format!("page dir {} is not writable by {user}", dir.display()),
                fix,
            );
        }
        return;
    }
    match dir.ancestors().skip(1).find(|a| a.exists()) {
        Some(p) if !ctx.as_root && writable(p) => r.ok(
            "page",
            format!("page dir {} will be made by the first build", dir.display()),
        ),
        _ => r.fail("page", format!("page dir {} does not exist", dir.display()), fix),
    }
}
