//! The build page: static files in `page.dir` that the web server serves, rewritten by the
//! build as it goes (start, each step, end). `index.html` (the hook, building or idle, the
//! live release, the last builds), `badge.svg` (`passing`, `failing`, `building`),
//! `status.json` (the public part of the hook's state) and, with `logs`, each build's log
//! as `builds/ID.log.txt`.
//!
//! Rules:
//! - every text from a commit, a branch, an author or a log is escaped (`& < > " '`), and
//!   the page's Content-Security-Policy lets run only its own clock script (`CLOCK`, by its
//!   hash), so a missed escape still runs no script;
//! - nothing is loaded from elsewhere: the style and the clock are inline, there is no web
//!   font, the badge is a file beside it;
//! - it reads well on a phone (the table becomes cards below 640 px) and in the dark;
//! - while a build runs it reloads itself every 5 s (`<meta http-equiv="refresh">`);
//! - each file is replaced by rename(2): a reader never gets half a page. Not synced to
//!   disk: a page lost in a power cut is rewritten by the next build.
//! - the page says nothing of the server: no path, no command line (a step's arguments may
//!   hold a token), only positions like `step 2 (pnpm)`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::event::{duration_words, Build, Conclusion};
use crate::sys::time;

/// The running build, as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub id: String,
    /// RFC 3339.
    pub started: String,
    /// `step 2 of 3 (pnpm)`, `fetch`, `publish`: never a command line.
    pub step: Option<String>,
    /// RFC 3339.
    pub step_started: Option<String>,
}

/// A rollback's hold: builds run and record their release, nothing is switched.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub since: String,
    pub release: String,
}

/// A preview of a branch or pull request (issue 16), as the page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub name: String,
    pub git_ref: String,
    pub commit: Option<String>,
    pub url: String,
    /// RFC 3339.
    pub built: String,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct View {
    pub hook: String,
    pub branch: String,
    pub running: Option<Running>,
    /// A delivery waits for the next build.
    pub pending: bool,
    pub live_release: Option<String>,
    pub held: Option<Held>,
    /// Newest first; the running build first while one runs.
    pub builds: Vec<Build>,
    /// The forge's page of a commit, without the id: `https://github.com/acme/docs/commit/`.
    pub commit_url: Option<String>,
    /// Whether `builds/ID.log.txt` are published.
    pub logs: bool,
    pub previews: Vec<Preview>,
    /// When the page is written, since the epoch.
    pub now: Duration,
}

impl View {
    /// The badge's word: `building` while a build runs, else how the last build that was
    /// not superseded ended.
    pub fn badge(&self) -> &'static str {
        if self.running.is_some() {
            return "building";
        }
        match self.last_finished().map(|b| b.conclusion) {
            Some(c) if c.failure() => "failing",
            _ => "passing",
        }
    }

    fn last_finished(&self) -> Option<&Build> {
        self.builds
            .iter()
            .find(|b| !matches!(b.conclusion, Conclusion::Building | Conclusion::Superseded))
    }
}

/// `& < > " '` as HTML entities: for text and attribute values alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-30 06:00:11` (UTC) from RFC 3339.
fn when(rfc3339: &str) -> String {
    rfc3339.replace('T', " ").trim_end_matches('Z').to_string()
}

/// While a build runs, the page's one script: the time since each `data-start` (the
/// build's start, the step's), counted in the reader's browser, in `duration_words`'
/// units. Without it (scripts off) the page says since when, never a duration that was
/// right only when the page was written. Allowed by its hash (`clock_csp`), which the
/// shipped nginx and Apache snippets carry too.
pub const CLOCK: &str = "function w(s){var r=Math.round(s),p=function(n){return String(n).padStart(2,'0')};return s<10?s.toFixed(1)+' s':r<60?r+' s':r<3600?Math.floor(r/60)+' min '+p(r%60)+' s':Math.floor(r/3600)+' h '+p(Math.floor(r%3600/60))+' min'}function t(){document.querySelectorAll('[data-start]').forEach(function(e){var s=(Date.now()-Date.parse(e.dataset.start))/1000;if(s>=0)e.textContent=(e.dataset.before||'')+w(s)+(e.dataset.after||'')})}t();setInterval(t,1000);";

/// `'sha256-...'`: the CSP source that allows `CLOCK` and nothing else.
pub fn clock_csp() -> String {
    use base64::Engine;
    use sha2::Digest;
    let hash = sha2::Sha256::digest(CLOCK.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// A time since `start` (RFC 3339) that the page's clock keeps counting: `since HH:MM:SS
/// UTC` as written, `BEFORE 1 min 05 s AFTER` in a browser that runs the clock.
fn ticking(start: &str, before: &str, after: &str) -> String {
    let at = when(start);
    let at = at.split(' ').nth(1).unwrap_or(&at);
    format!(
        "<span data-start=\"{}\" data-before=\"{}\" data-after=\"{}\">since {} UTC</span>",
        escape(start),
        escape(before),
        escape(after),
        escape(at)
    )
}

const CSS: &str = r#":root{--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--ok:#1a7f37;--bad:#cf222e;--run:#9a6700;--card:#f6f8fa;--code:#eff1f3}
@media (prefers-color-scheme:dark){.pill{color:#0d1117}:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--ok:#3fb950;--bad:#f85149;--run:#d29922;--card:#151b23;--code:#1f2630}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC",sans-serif}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.2rem 0 .6rem;display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
h2{font-size:1.05rem;margin:1rem 0 .4rem}
.pill{font-size:.8rem;font-weight:600;padding:.1rem .6rem;border-radius:999px;color:#fff;white-space:nowrap}
.succeeded{background:var(--ok)} .failed,.timed_out,.interrupted{background:var(--bad)} .building,.superseded,.held{background:var(--run)} .unchanged{background:var(--muted)}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:0 0 1rem;color:var(--muted)}
.facts dd{margin:0;color:var(--fg);overflow-wrap:anywhere}
.why,.hold{border-left:4px solid var(--bad);background:var(--card);padding:.6rem .8rem;margin:0 0 1.2rem;border-radius:4px}
.hold{border-color:var(--run)}
.why p,.hold p{margin:0 0 .4rem}
pre{margin:0;padding:.5rem;background:var(--code);border-radius:4px;white-space:pre-wrap;overflow-wrap:anywhere;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
a{color:inherit}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.8rem;color:var(--muted);font-weight:600}
td.subject{overflow-wrap:anywhere}
td.step{white-space:nowrap}
tr:target{outline:2px solid var(--run);outline-offset:-2px}
.num{white-space:nowrap}
footer{margin-top:1.5rem;color:var(--muted);font-size:.8rem}
@media (max-width:640px){
 thead{display:none}
 table,tbody{display:block}
 tr{display:flex;flex-wrap:wrap;align-items:baseline;gap:.15rem .7rem;border:1px solid var(--line);border-radius:8px;margin:0 0 .7rem;padding:.5rem .7rem;background:var(--card)}
 td{border:0;padding:0;order:5;flex:1 1 100%;display:grid;grid-template-columns:5.5rem 1fr;gap:.5rem}
 td::before{content:attr(data-label);color:var(--muted);font-size:.8rem}
 td.result,td.commit,td.log{flex:0 0 auto;display:block}
 td.result::before,td.commit::before,td.log::before,td.subject::before{content:none}
 td.result{order:1} td.commit{order:2} td.log{order:3;margin-left:auto} td.subject{order:4;display:block;font-weight:600}
 td:empty{display:none}
}"#;

/// `index.html`.
pub fn index(v: &View) -> String {
    let state = match (&v.running, v.last_finished()) {
        (Some(_), _) => ("building", "building".to_string()),
        (None, Some(b)) if b.conclusion.failure() => (
            b.conclusion.word(),
            format!("idle · last build {}", b.conclusion.label()),
        ),
        (None, Some(_)) => ("succeeded", "idle · last build passed".to_string()),
        (None, None) => ("unchanged", "idle".to_string()),
    };
    let refresh = if v.running.is_some() {
        "<meta http-equiv=\"refresh\" content=\"5\">\n"
    } else {
        ""
    };
    let mut facts: Vec<(&str, String)> = Vec::new();
    if let Some(r) = &v.running {
        let step = r.step.as_deref().unwrap_or("starting");
        let start = r.step_started.as_deref().unwrap_or(r.started.as_str());
        facts.push((
            "Running",
            format!(
                "build {} · {}, {}",
                escape(&r.id),
                escape(step),
                ticking(start, "for ", "")
            ),
        ));
    }
    if v.pending {
        facts.push(("Waiting", "a delivery waits for the next build".into()));
    }
    facts.push(("Branch", format!("<code>{}</code>", escape(&v.branch))));
    if let Some(r) = &v.live_release {
        facts.push(("Live release", format!("<code>{}</code>", escape(r))));
    }
    let facts: String = facts
        .iter()
        .map(|(k, val)| format!("<dt>{k}</dt><dd>{val}</dd>"))
        .collect();
    let hold = v.held.as_ref().map_or(String::new(), |h| {
        format!(
            "<section class=\"hold\" id=\"held\"><p><b>Held</b> at release <code>{}</code> since {} UTC (a rollback): builds still run and record their release, the site does not change. <code>deploy-hook resume {}</code> lifts it.</p></section>\n",
            escape(&h.release),
            escape(&when(&h.since)),
            escape(&v.hook)
        )
    });
    let why = match v.last_finished() {
        Some(b) if b.conclusion.failure() && v.running.is_none() => failure_box(v, b),
        _ => String::new(),
    };
    let rows: String = v.builds.iter().map(|b| row(v, b)).collect::<Vec<_>>().join("\n");
    let previews = previews(v);
    let footer_refresh = if v.running.is_some() {
        "; this page reloads itself every 5 s while a build runs"
    } else {
        ""
    };
    let badge = v.badge();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; script-src {clock_csp}">
<meta name="referrer" content="no-referrer">
{refresh}<title>{hook} · {state_text} · deploy-hook</title>
<link rel="icon" href="data:,">
<style>{CSS}</style></head>
<body><main>
<h1 id="hook">{hook} <span class="pill {state_class}" id="state">{state_text}</span> <img src="badge.svg" alt="build: {badge}" height="20"></h1>
<dl class="facts">{facts}</dl>
{hold}{why}<h2>Last builds</h2>
<table id="builds"><thead><tr><th>Result</th><th>Commit</th><th>Subject</th><th>Author</th><th>Started (UTC)</th><th>Duration</th><th>Failed step</th><th>Log</th></tr></thead>
<tbody>
{rows}
</tbody></table>
{previews}<footer>Written by deploy-hook at {now} UTC{footer_refresh}. <a href="status.json">status.json</a></footer>
</main>{clock}</body></html>
"#,
        clock_csp = clock_csp(),
        clock = if v.running.is_some() {
            format!("<script>{CLOCK}</script>")
        } else {
            String::new()
        },
        hook = escape(&v.hook),
        state_class = state.0,
        state_text = escape(&state.1),
        now = when(&time::rfc3339(v.now)),
    )
}

/// The box that says why the last build failed.
fn failure_box(v: &View, b: &Build) -> String {
    let at = b
        .failed_at
        .as_ref()
        .map(|s| format!(" at {}", escape(s)))
        .unwrap_or_default();
    let log = if v.logs {
        format!(" <a href=\"{}\">Full log</a>", log_href(&b.id))
    } else {
        String::new()
    };
    let lines = if b.lines.is_empty() {
        String::new()
    } else {
        let text: Vec<String> = b.lines.iter().map(|l| escape(l)).collect();
        format!("<pre id=\"lines\">{}</pre>", text.join("\n"))
    };
    format!(
        "<section class=\"why\" id=\"why\"><p><b>Build <a href=\"#b{id}\">{id}</a> {what}</b>{at}.{log}</p>{lines}</section>\n",
        id = escape(&b.id),
        what = escape(b.conclusion.label()),
    )
}

fn log_href(id: &str) -> String {
    format!("builds/{}.log.txt", escape(id))
}

fn row(v: &View, b: &Build) -> String {
    let c = b.conclusion;
    let commit = match (&b.commit, &v.commit_url) {
        (Some(k), Some(base)) => format!(
            "<a href=\"{}\"><code>{}</code></a>",
            escape(&format!("{base}{}", k.sha)),
            escape(k.short())
        ),
        (Some(k), None) => format!("<code>{}</code>", escape(k.short())),
        (None, _) => String::new(),
    };
    let (subject, author) = b
        .commit
        .as_ref()
        .map(|k| (escape(&k.subject), escape(&k.author)))
        .unwrap_or_default();
    let duration = match c {
        Conclusion::Building => ticking(&b.started, "", " so far"),
        _ => escape(&duration_words(b.duration_secs)),
    };
    let log = if v.logs {
        format!("<a href=\"{}\">log</a>", log_href(&b.id))
    } else {
        String::new()
    };
    format!(
        "<tr id=\"b{id}\"><td data-label=\"Result\" class=\"result\"><span class=\"pill {word}\">{label}</span></td><td data-label=\"Commit\" class=\"commit\">{commit}</td><td data-label=\"Subject\" class=\"subject\">{subject}</td><td data-label=\"Author\">{author}</td><td data-label=\"Started (UTC)\" class=\"num\">{started}</td><td data-label=\"Duration\" class=\"num\">{duration}</td><td data-label=\"Failed step\" class=\"step\">{step}</td><td data-label=\"Log\" class=\"log\">{log}</td></tr>",
        id = escape(&b.id),
        word = c.word(),
        label = escape(c.label()),
        started = escape(&when(&b.started)),
        step = escape(b.failed_at.as_deref().unwrap_or("")),
    )
}

fn previews(v: &View) -> String {
    if v.previews.is_empty() {
        return String::new();
    }
    let rows: String = v
        .previews
        .iter()
        .map(|p| {
            format!(
                "<tr><td data-label=\"Preview\" class=\"subject\"><a href=\"{url}\">{name}</a></td><td data-label=\"Ref\"><code>{r}</code></td><td data-label=\"Commit\"><code>{c}</code></td><td data-label=\"Built\" class=\"num\">{built}</td></tr>",
                url = escape(&p.url),
                name = escape(&p.name),
                r = escape(&p.git_ref),
                c = escape(p.commit.as_deref().map(|c| &c[..c.len().min(7)]).unwrap_or("")),
                built = escape(&when(&p.built)),
            )
        })
        .collect();
    format!(
        "<h2>Previews</h2>\n<table id=\"previews\"><thead><tr><th>Preview</th><th>Ref</th><th>Commit</th><th>Built (UTC)</th></tr></thead>\n<tbody>\n{rows}\n</tbody></table>\n"
    )
}

/// A shields.io "flat" badge. The three words are fixed, so their widths (for Verdana
/// 11 px, as shields measures) are constants.
pub fn badge(word: &str) -> String {
    let (color, width) = match word {
        "failing" => ("#e05d44", 43),
        "building" => ("#dfb317", 57),
        _ => ("#4c1", 51),
    };
    let word = escape(word);
    let label = 37;
    let w = label + width;
    let mid = label * 10 + width * 5;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="build: {word}"><title>build: {word}</title>
<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>
<clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath>
<g clip-path="url(#r)"><rect width="{label}" height="20" fill="#555"/><rect x="{label}" width="{width}" height="20" fill="{color}"/><rect width="{w}" height="20" fill="url(#s)"/></g>
<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" text-rendering="geometricPrecision" font-size="110">
<text aria-hidden="true" x="185" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">build</text><text x="185" y="140" transform="scale(.1)">build</text>
<text aria-hidden="true" x="{mid}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{word}</text><text x="{mid}" y="140" transform="scale(.1)">{word}</text></g></svg>
"##
    )
}

/// `status.json`: what the page shows, for scripts. No path, no command line, no pid.
pub fn public_status(v: &View) -> serde_json::Value {
    let build = |b: &Build| {
        serde_json::json!({
            "id": b.id,
            "result": b.conclusion.word(),
            "commit": b.commit.as_ref().map(|c| c.sha.clone()),
            "subject": b.commit.as_ref().map(|c| c.subject.clone()),
            "author": b.commit.as_ref().map(|c| c.author.clone()),
            "started": b.started,
            "duration_secs": b.duration_secs,
            "failed_step": b.failed_at,
            "release": b.release,
            "lines": b.lines,
        })
    };
    serde_json::json!({
        "hook": v.hook,
        "branch": v.branch,
        "state": if v.running.is_some() { "building" } else { "idle" },
        "badge": v.badge(),
        "pending": v.pending,
        "current": v.running.as_ref().map(|r| serde_json::json!({
            "id": r.id, "started": r.started, "step": r.step, "step_started": r.step_started,
        })),
        "live_release": v.live_release,
        "held": v.held.as_ref().map(|h| serde_json::json!({"since": h.since, "release": h.release})),
        "builds": v.builds.iter().map(build).collect::<Vec<_>>(),
        "previews": v.previews.iter().map(|p| serde_json::json!({
            "name": p.name, "ref": p.git_ref, "commit": p.commit, "url": p.url, "built": p.built,
        })).collect::<Vec<_>>(),
        "written": time::rfc3339(v.now),
    })
}

/// Writes `data` to `dir/name` through a temp file beside it and rename(2), readable by
/// the web server (0644: the page is for readers; who may read it is the web server's
/// business, docs/report.md).
pub fn replace(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{}.tmp.{}", name.replace('/', "_"), std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data))
        .and_then(|()| fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)
}

/// Writes `index.html`, `badge.svg` and `status.json` into `dir`, badge and status first:
/// the page they belong to comes last.
pub fn write(dir: &Path, v: &View) -> std::io::Result<()> {
    ensure_dir(dir)?;
    replace(dir, "badge.svg", badge(v.badge()).as_bytes())?;
    let mut status = serde_json::to_vec_pretty(&public_status(v)).unwrap_or_default();
    status.push(b'\n');
    replace(dir, "status.json", &status)?;
    replace(dir, "index.html", index(v).as_bytes())
}

/// The published log of build `id` (already stripped and masked); keeps the newest `keep`.
pub fn write_log(dir: &Path, id: &str, text: &str, keep: usize) -> std::io::Result<()> {
    let builds = dir.join("builds");
    ensure_dir(&builds)?;
    replace(&builds, &format!("{id}.log.txt"), text.as_bytes())?;
    prune_logs(&builds, keep);
    Ok(())
}

/// Keeps the newest `keep` published logs (ids sort by time, as the state's logs do).
fn prune_logs(builds: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(builds) else { return };
    let mut logs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".log.txt"))
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(keep);
    for old in &logs[..excess] {
        let _ = fs::remove_file(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_snippets_allow_the_clock_and_nothing_else() {
        for snippet in [
            include_str!("../../nginx/builds.conf"),
            include_str!("../../apache/builds.conf"),
        ] {
            let csp = snippet
                .lines()
                .find(|l| l.contains("Content-Security-Policy"))
                .expect("a CSP line");
            assert!(csp.contains(&format!("script-src {};", clock_csp())), "{csp}");
        }
    }
    use crate::report::event::Commit;

    fn b(id: &str, c: Conclusion, subject: &str) -> Build {
        Build {
            id: id.into(),
            conclusion: c,
            commit: Some(Commit {
                sha: "4be09a7c0ffee000000000000000000000000000".into(),
                subject: subject.into(),
                author: "Mallory \"<b>\" O'Hara".into(),
            }),
            started: "2026-11-30T06:00:11Z".into(),
            duration_secs: 38.2,
            failed_at: c.failure().then(|| "step 2 (pnpm)".to_string()),
            release: None,
            lines: if c.failure() {
                vec!["docs/install.md (7:1): Element is missing end tag.".into()]
            } else {
                Vec::new()
            },
            timeout_secs: None,
            target_url: None,
        }
    }

    fn view(running: bool, builds: Vec<Build>) -> View {
        View {
            hook: "docs".into(),
            branch: "main".into(),
            running: running.then(|| Running {
                id: "3".into(),
                started: "2026-11-30T06:10:00Z".into(),
                step: Some("step 2 of 2 (pnpm)".into()),
                step_started: Some("2026-11-30T06:10:20Z".into()),
            }),
            pending: false,
            live_release: Some("20261130-052210-5".into()),
            held: None,
            builds,
            commit_url: Some("https://github.com/acme/docs/commit/".into()),
            logs: true,
            previews: Vec::new(),
            now: Duration::from_secs(time::parse_rfc3339("2026-11-30T06:11:00Z").unwrap()),
        }
    }

    #[test]
    fn hostile_text_is_text() {
        let hostile = "<script>alert('x')</script> & <img src=x onerror=alert(1)> 修复";
        let v = view(
            false,
            vec![b("2", Conclusion::Failed, hostile), b("1", Conclusion::Succeeded, "ok")],
        );
        let html = index(&v);
        assert!(!html.contains("<script") && !html.contains("<img src=x"), "{html}");
        assert!(html
            .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt; 修复"));
        assert!(html.contains("Mallory &quot;&lt;b&gt;&quot; O&#39;Hara"));
        assert!(html.contains("default-src 'none'") && !html.contains("http-equiv=\"refresh\""));
        assert!(html.contains("id=\"b2\"") && html.contains("href=\"builds/2.log.txt\""));
        assert!(html.contains("id=\"why\"") && html.contains("install.md (7:1): Element is missing end tag."));
        assert_eq!(v.badge(), "failing");
        assert!(!html.contains("src=\"http") && !html.contains("stylesheet") && !html.contains("<script"));
    }

    #[test]
    fn building_refreshes_and_says_the_step() {
        let mut running = b("3", Conclusion::Building, "next");
        running.started = "2026-11-30T06:10:00Z".into();
        let v = view(true, vec![running, b("2", Conclusion::Failed, "x")]);
        let html = index(&v);
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(
            html.contains("step 2 of 2 (pnpm), <span data-start=\"2026-11-30T06:10:20Z\" data-before=\"for \" data-after=\"\">since 06:10:20 UTC</span>"),
            "{html}"
        );
        assert!(html.contains(&format!("<script>{CLOCK}</script>")), "{html}");
        assert!(!html.contains("id=\"why\""), "no failure box while building");
        assert_eq!(v.badge(), "building");
        assert!(badge("building").contains("#dfb317"));
        let s = public_status(&v);
        assert_eq!(
            (s["state"].as_str(), s["builds"][0]["result"].as_str()),
            (Some("building"), Some("building"))
        );
    }

    #[test]
    fn superseded_builds_do_not_set_the_badge_and_holds_show() {
        let mut v = view(
            false,
            vec![b("3", Conclusion::Superseded, "x"), b("2", Conclusion::Succeeded, "y")],
        );
        assert_eq!(v.badge(), "passing");
        v.held = Some(Held {
            since: "2026-11-30T07:00:00Z".into(),
            release: "20261130-052210-5".into(),
        });
        let html = index(&v);
        assert!(
            html.contains("id=\"held\"") && html.contains("deploy-hook resume docs"),
            "{html}"
        );
        assert_eq!(public_status(&v)["held"]["release"], "20261130-052210-5");
    }

    #[test]
    fn files_are_replaced_and_logs_pruned() {
        let dir = std::env::temp_dir().join(format!("dh-page-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let v = view(false, vec![b("1", Conclusion::Succeeded, "ok")]);
        write(&dir, &v).unwrap();
        for f in ["index.html", "badge.svg", "status.json"] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        for id in ["20261130-000001", "20261130-000002", "20261130-000003"] {
            write_log(&dir, id, "text", 2).unwrap();
        }
        let mut left: Vec<String> = fs::read_dir(dir.join("builds"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["20261130-000002.log.txt", "20261130-000003.log.txt"]);
        let leftovers = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(leftovers, 0, "no temp file left");
        fs::remove_dir_all(&dir).unwrap();
    }
}
