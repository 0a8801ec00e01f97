//! Messages to the team's chat: DingTalk, Feishu/Lark, WeCom and Slack robots, and a plain
//! JSON webhook. Each names the hook, what happened, the short commit and its subject, the
//! author, where it failed and the lines that say why, and the page's link.
//!
//! Subjects, authors and log lines are user text: escaped for each robot's markup
//! (Markdown for DingTalk and WeCom, mrkdwn for Slack); Feishu's `post` and the webhook's
//! JSON carry them as plain strings. Every message holds the words `deploy-hook`, which a
//! DingTalk robot's keyword setting can ask for. DingTalk, Feishu and WeCom answer HTTP 200
//! even when they refuse a message: their JSON code says whether it was taken.

use std::time::Duration;

use super::event::{duration_words, Build, Conclusion, Event};
use super::excerpt::cut;
use super::http::{reason, Answer, Request};
use super::sign;
use crate::config::NotifyKind;

/// What a message is about.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub hook: &'a str,
    pub event: Event,
    pub build: &'a Build,
    pub branch: &'a str,
    /// The build's entry on the page.
    pub page: Option<String>,
    /// Its published log.
    pub log: Option<String>,
}

impl Message<'_> {
    /// `deploy-hook · docs: build failed`
    pub fn title(&self) -> String {
        let what = match (self.event, self.build.conclusion) {
            (Event::Started, _) => "build started".to_string(),
            (Event::Fixed, _) => "build fixed".to_string(),
            (Event::Succeeded, Conclusion::Unchanged) => "build succeeded (nothing changed)".to_string(),
            (_, c) => format!("build {}", c.label()),
        };
        format!("deploy-hook · {}: {what}", self.hook)
    }

    /// What happened, in a sentence of our own words.
    pub fn what(&self) -> String {
        let b = self.build;
        let took = duration_words(b.duration_secs);
        let at = b.failed_at.as_deref().unwrap_or("the build");
        match b.conclusion {
            Conclusion::Building => format!("Build {} of {} started", b.id, self.branch),
            Conclusion::Failed => format!("{at} failed after {took}"),
            Conclusion::TimedOut => match b.timeout_secs {
                Some(t) => format!("{at} timed out after {}", duration_words(t as f64)),
                None => format!("{at} timed out"),
            },
            Conclusion::Interrupted => "The build was interrupted: its worker died".into(),
            Conclusion::Unchanged => match &b.release {
                Some(r) => format!("Nothing changed; release {r} stays live"),
                None => "Nothing changed since the last build".into(),
            },
            Conclusion::Unknown => "The build ended; this version does not know how".into(),
            Conclusion::Succeeded | Conclusion::Superseded => match &b.release {
                Some(r) => format!("Built in {took}; release {r} is live"),
                None => format!("Built in {took}"),
            },
        }
    }

    /// `4be09a7 Fix the install page — Ana`, unescaped.
    fn commit_parts(&self) -> Option<(String, String, String)> {
        self.build
            .commit
            .as_ref()
            .map(|c| (c.short().to_string(), cut(&c.subject, 200), cut(&c.author, 80)))
    }

    fn links(&self) -> Vec<(&'static str, &str)> {
        let mut l = Vec::new();
        if let Some(p) = &self.page {
            l.push(("Build page", p.as_str()));
        }
        if let Some(g) = &self.log {
            l.push(("Log", g.as_str()));
        }
        l
    }
}

/// The request for one robot. `url` and `secret` come from the `[[notify]]`'s files;
/// `now` is the time since the epoch (the signatures' timestamps).
pub fn request(kind: NotifyKind, url: &str, secret: Option<&str>, m: &Message, now: Duration) -> Request {
    let json = vec![(
        "Content-Type".to_string(),
        "application/json; charset=utf-8".to_string(),
    )];
    match kind {
        NotifyKind::Dingtalk => {
            let url = match secret {
                Some(s) => sign::dingtalk_url(url, s, now.as_millis()),
                None => url.to_string(),
            };
            Request::post_json(url, json, &dingtalk(m))
        }
        NotifyKind::Feishu => {
            let mut body = feishu(m);
            if let Some(s) = secret {
                sign::feishu_sign(&mut body, s, now.as_secs());
            }
            Request::post_json(url.to_string(), json, &body)
        }
        NotifyKind::Wecom => Request::post_json(url.to_string(), json, &wecom(m)),
        NotifyKind::Slack => Request::post_json(url.to_string(), json, &slack(m)),
        NotifyKind::Webhook => {
            let body = webhook(m).to_string().into_bytes();
            let mut headers = json;
            headers.push(("X-Deploy-Hook-Event".into(), m.event.word().into()));
            if let Some(s) = secret {
                headers.push(("X-Deploy-Hook-Signature-256".into(), sign::webhook_signature(&body, s)));
            }
            Request {
                post: true,
                url: url.to_string(),
                headers,
                body,
            }
        }
    }
}

/// User text for Markdown: a backslash before the characters that make emphasis, code,
/// links and HTML, and before a leading `#` (a heading). Parentheses stay: without `[`
/// they make no link, and robots that show escapes literally would show them everywhere.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        if "\\`*_[]<>".contains(c) || (i == 0 && c == '#') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Markdown for DingTalk and WeCom: a heading, the commit, what happened, the lines as
/// quotes, the links.
fn markdown(m: &Message, heading: &str) -> String {
    let mut t = format!("{heading}\n\n");
    if let Some((short, subject, author)) = m.commit_parts() {
        t.push_str(&format!("**{short}** {} — {}\n\n", md(&subject), md(&author)));
    }
    t.push_str(&format!("{}\n\n", m.what()));
    for l in &m.build.lines {
        t.push_str(&format!("> {}\n", md(l)));
    }
    if !m.build.lines.is_empty() {
        t.push('\n');
    }
    let links: Vec<String> = m
        .links()
        .iter()
        .map(|(label, url)| format!("[{label}]({url})"))
        .collect();
    t.push_str(&links.join(" · "));
    t.trim_end().to_string()
}

fn dingtalk(m: &Message) -> serde_json::Value {
    let title = m.title();
    // DingTalk takes 20000 bytes in all; ours stay far below, cut anyway.
    let text = cut_bytes(&markdown(m, &format!("#### {title}")), 18_000);
    serde_json::json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
}

fn wecom(m: &Message) -> serde_json::Value {
    let colour = match m.event {
        Event::Failed => "warning",
        Event::Started => "comment",
        Event::Fixed | Event::Succeeded => "info",
    };
    let heading = format!(
        "**deploy-hook · {}** <font color=\"{colour}\">{}</font>",
        m.hook,
        m.event.word()
    );
    // WeCom refuses markdown.content over 4096 bytes (UTF-8).
    let content = cut_bytes(&markdown(m, &heading), 4000);
    serde_json::json!({"msgtype": "markdown", "markdown": {"content": content}})
}

/// Feishu's rich text: a title and lines of plain text and links (no markup to escape).
fn feishu(m: &Message) -> serde_json::Value {
    let text = |s: String| serde_json::json!([{"tag": "text", "text": s}]);
    let mut content = Vec::new();
    if let Some((short, subject, author)) = m.commit_parts() {
        content.push(text(format!("{short} {subject} — {author}")));
    }
    content.push(text(m.what()));
    for l in &m.build.lines {
        content.push(text(format!("> {l}")));
    }
    // Links on one line, apart by a separator of their own: a label is only its words.
    let mut links: Vec<serde_json::Value> = Vec::new();
    for (label, url) in m.links() {
        if !links.is_empty() {
            links.push(serde_json::json!({"tag": "text", "text": " · "}));
        }
        links.push(serde_json::json!({"tag": "a", "text": label, "href": url}));
    }
    if !links.is_empty() {
        content.push(serde_json::Value::Array(links));
    }
    serde_json::json!({
        "msg_type": "post",
        "content": {"post": {"zh_cn": {"title": m.title(), "content": content}}}
    })
}

/// Slack's mrkdwn escapes only `&`, `<` and `>`.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn slack(m: &Message) -> serde_json::Value {
    let mut t = format!("*{}*\n", slack_escape(&m.title()));
    if let Some((short, subject, author)) = m.commit_parts() {
        t.push_str(&format!(
            "`{short}` {} — {}\n",
            slack_escape(&subject),
            slack_escape(&author)
        ));
    }
    t.push_str(&format!("{}\n", slack_escape(&m.what())));
    if !m.build.lines.is_empty() {
        let lines: Vec<String> = m
            .build
            .lines
            .iter()
            .map(|l| slack_escape(&l.replace("```", "'''")))
            .collect();
        t.push_str(&format!("```{}```\n", lines.join("\n")));
    }
    let links: Vec<String> = m
        .links()
        .iter()
        .map(|(label, url)| format!("<{url}|{label}>"))
        .collect();
    t.push_str(&links.join(" · "));
    let fallback = match m.build.commit.as_ref() {
        Some(c) => format!("{} ({})", m.title(), c.short()),
        None => m.title(),
    };
    serde_json::json!({
        "text": fallback,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": cut(t.trim_end(), 3000)}}]
    })
}

/// The plain webhook's body, version 1 (docs/report.md describes every field).
pub fn webhook(m: &Message) -> serde_json::Value {
    let b = m.build;
    serde_json::json!({
        "version": 1,
        "event": m.event.word(),
        "hook": m.hook,
        "result": b.conclusion.word(),
        "build": {
            "id": b.id,
            "started": b.started,
            "duration_secs": b.duration_secs,
            "failed_step": b.failed_at,
            "release": b.release,
            "page_url": m.page,
            "log_url": m.log,
        },
        "commit": b.commit.as_ref().map(|c| serde_json::json!({
            "sha": c.sha, "short": c.short(), "subject": c.subject, "author": c.author, "branch": m.branch,
        })),
        "lines": b.lines,
    })
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Whether the robot took the message: `Ok`, or why not in its own words.
pub fn judge(kind: NotifyKind, a: &Answer) -> Result<(), String> {
    let Answer::Http { status, .. } = a else {
        return Err(reason(a));
    };
    if !(200..300).contains(status) {
        return Err(reason(a));
    }
    let json = a.json().unwrap_or_default();
    let taken = match kind {
        NotifyKind::Dingtalk | NotifyKind::Wecom => json["errcode"] == 0,
        NotifyKind::Feishu => json["code"] == 0 || json["StatusCode"] == 0,
        NotifyKind::Slack | NotifyKind::Webhook => true,
    };
    if taken {
        Ok(())
    } else {
        Err(reason(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::event::Commit;

    fn failed() -> Build {
        Build {
            id: "20261130-060011-6".into(),
            conclusion: Conclusion::Failed,
            commit: Some(Commit {
                sha: "4be09a7c0ffee0000000000000000000000000000".into(),
                subject: "<b>Fix</b> [x](y) *now*".into(),
                author: "Ana".into(),
            }),
            started: "2026-11-30T06:00:11Z".into(),
            duration_secs: 38.2,
            failed_at: Some("step 2 (pnpm)".into()),
            release: None,
            lines: vec!["docs/install.md (7:1): Element is missing end tag.".into()],
            timeout_secs: None,
            target_url: None,
        }
    }

    fn message(b: &Build) -> Message<'_> {
        Message {
            hook: "docs",
            event: Event::Failed,
            build: b,
            branch: "main",
            page: Some("https://docs.example.com/_builds/#b20261130-060011-6".into()),
            log: None,
        }
    }

    fn body(r: &Request) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn every_kind_names_the_hook_commit_step_lines_and_link() {
        let b = failed();
        let m = message(&b);
        let now = Duration::from_secs(1_700_000_000);
        for kind in [
            NotifyKind::Dingtalk,
            NotifyKind::Feishu,
            NotifyKind::Wecom,
            NotifyKind::Slack,
            NotifyKind::Webhook,
        ] {
            let r = request(kind, "https://robot.example/x", None, &m, now);
            let text = String::from_utf8(r.body.clone()).unwrap();
            for want in [
                "docs",
                "4be09a7",
                "Ana",
                "step 2",
                "install.md (7:1)",
                "_builds/#b20261130-060011-6",
            ] {
                let plain = text.replace('\\', "");
                assert!(plain.contains(want), "{kind:?} lacks {want}: {text}");
            }
            if kind != NotifyKind::Webhook {
                assert!(text.contains("deploy-hook"), "{kind:?}: the keyword");
            }
            // Markup kinds get it escaped; Feishu's text tags and the JSON show it as it is.
            let markup = matches!(kind, NotifyKind::Dingtalk | NotifyKind::Wecom | NotifyKind::Slack);
            assert_eq!(
                text.contains("<b>Fix"),
                !markup,
                "{kind:?} shows markup as text: {text}"
            );
        }
    }

    #[test]
    fn shapes_and_signatures() {
        let b = failed();
        let m = message(&b);
        let now = Duration::from_millis(1_700_000_000_123);
        let d = request(
            NotifyKind::Dingtalk,
            "https://o/robot/send?access_token=a",
            Some("SECx"),
            &m,
            now,
        );
        assert!(d.url.contains("&timestamp=1700000000123&sign="), "{}", d.url);
        assert_eq!(body(&d)["msgtype"], "markdown");
        assert!(body(&d)["markdown"]["text"]
            .as_str()
            .unwrap()
            .contains(r"\<b\>Fix\</b\> \[x\](y) \*now\*"));
        let f = request(NotifyKind::Feishu, "https://f/hook/t", Some("s"), &m, now);
        let fb = body(&f);
        assert_eq!(
            (fb["msg_type"].as_str(), fb["timestamp"].as_str()),
            (Some("post"), Some("1700000000"))
        );
        assert!(fb["content"]["post"]["zh_cn"]["content"]
            .to_string()
            .contains("<b>Fix</b>"));
        let s = body(&request(NotifyKind::Slack, "https://s", None, &m, now));
        assert!(s["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("&lt;b&gt;Fix"));
        let w = request(NotifyKind::Webhook, "https://w", Some("k"), &m, now);
        assert!(w
            .headers
            .iter()
            .any(|(k, v)| k == "X-Deploy-Hook-Signature-256" && v == &sign::webhook_signature(&w.body, "k")));
        assert_eq!(body(&w)["commit"]["short"], "4be09a7");
        let long = "汉".repeat(3000);
        assert!(cut_bytes(&long, 4000).len() <= 4000);
    }

    #[test]
    fn answers() {
        let http = |status: u16, body: &str| Answer::Http {
            status,
            body: body.into(),
            scopes: None,
            location: None,
        };
        assert!(judge(NotifyKind::Dingtalk, &http(200, r#"{"errcode":0,"errmsg":"ok"}"#)).is_ok());
        let e = judge(
            NotifyKind::Dingtalk,
            &http(200, r#"{"errcode":310000,"errmsg":"sign not match"}"#),
        )
        .unwrap_err();
        assert!(e.contains("sign not match"), "{e}");
        assert!(judge(
            NotifyKind::Feishu,
            &http(200, r#"{"code":19021,"msg":"sign match fail"}"#)
        )
        .is_err());
        assert!(judge(NotifyKind::Feishu, &http(200, r#"{"StatusCode":0}"#)).is_ok());
        assert!(judge(NotifyKind::Slack, &http(200, "ok")).is_ok());
        assert!(judge(NotifyKind::Slack, &http(400, "no_text")).is_err());
        assert!(judge(NotifyKind::Webhook, &http(204, "")).is_ok());
    }
}
