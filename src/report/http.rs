//! The one HTTP client of deploy-hook (ureq), for commit statuses and chat robots. Only the
//! build worker makes it; a delivery's CGI process never reaches this file.
//!
//! - Trust comes from the system's CA bundle (`/etc/ssl/certs/ca-certificates.crt`,
//!   Debian's ca-certificates), read when the first message is sent.
//! - No proxy from the environment: ureq would read `HTTP_PROXY`, which in a CGI process is
//!   the request's `Proxy:` header ("httpoxy"). The worker's environment is cleared anyway.
//! - No redirect is followed: a 3xx is an answer to log, never a hop that carries a token
//!   to another host.
//! - 4xx and 5xx are answers to read (GitLab's 400 says why), not opaque errors.
//! - Every request is bounded: 3 s to connect, 5 s in all; at most 64 KiB of answer.
//! - A URL is logged only through `redact` (its query values and a robot's token masked),
//!   and a transport error is described in our words, never with the URL in it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};

/// Debian's bundle of trusted roots.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// To connect (DNS, TCP, TLS).
pub const CONNECT: Duration = Duration::from_secs(3);
/// One request in all, answer included.
pub const TOTAL: Duration = Duration::from_secs(5);
/// Tries of one message.
pub const ATTEMPTS: u32 = 3;
/// One message in all, its tries and pauses included: a try that could not end by then is
/// not started.
pub const MESSAGE: Duration = Duration::from_secs(12);
/// What is read of an answer.
const ANSWER_LIMIT: u64 = 64 * 1024;

/// A request to send: built on the build's thread, sent by a sender thread.
#[derive(Debug, Clone)]
pub struct Request {
    pub post: bool,
    /// Holds a token in the query for some robots: log it only through `redact`.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn post_json(url: String, headers: Vec<(String, String)>, body: &serde_json::Value) -> Request {
        Request {
            post: true,
            url,
            headers,
            body: body.to_string().into_bytes(),
        }
    }

    pub fn get(url: String, headers: Vec<(String, String)>) -> Request {
        Request {
            post: false,
            url,
            headers,
            body: Vec::new(),
        }
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The service answered: its status, body (at most 64 KiB), from GitHub the token's
    /// scopes (`X-OAuth-Scopes`), and a redirect's `Location` (never followed).
    Http {
        status: u16,
        body: String,
        scopes: Option<String>,
        location: Option<String>,
    },
    /// No answer: DNS, connect, TLS, timeout. Never holds the URL.
    Transport(String),
}

impl Answer {
    pub fn json(&self) -> Option<serde_json::Value> {
        match self {
            Answer::Http { body, .. } => serde_json::from_str(body).ok(),
            Answer::Transport(_) => None,
        }
    }

    /// Worth another try: no answer at all, 429, or a 5xx. A 4xx will not get better (a
    /// bad token, a bad repo, a refused body), nor will a robot's error code.
    pub fn retryable(&self) -> bool {
        match self {
            Answer::Transport(_) => true,
            Answer::Http { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    /// A client that trusts the roots in `bundle`. Without them (the file is missing) it
    /// still works for `http://` to this machine, and says why https will fail.
    pub fn new(bundle: &Path) -> (Client, Option<String>) {
        let (roots, warning) = match std::fs::read(bundle) {
            Ok(pem) => {
                let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                    .filter_map(|i| match i {
                        Ok(PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                let warning = certs
                    .is_empty()
                    .then(|| format!("no certificate in {}: https requests will fail", bundle.display()));
                (certs, warning)
            }
            Err(e) => (
                Vec::new(),
                Some(format!(
                    "cannot read the CA bundle {}: {e} (apt-get install ca-certificates); https requests will fail",
                    bundle.display()
                )),
            ),
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT))
            .timeout_global(Some(TOTAL))
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .user_agent(concat!("deploy-hook/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .into();
        (Client { agent }, warning)
    }

    pub fn send(&self, r: &Request) -> Answer {
        let answer = if r.post {
            let mut req = self.agent.post(&r.url);
            for (k, v) in &r.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            req.send(&r.body[..])
        } else {
            let mut req = self.agent.get(&r.url);
            for (k, v) in &r.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            req.call()
        };
        match answer {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let scopes = resp
                    .headers()
                    .get("x-oauth-scopes")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(ANSWER_LIMIT)
                    .read_to_string()
                    .unwrap_or_else(|e| format!("(the answer could not be read: {})", transport_words(&e)));
                Answer::Http {
                    status,
                    body,
                    scopes,
                    location,
                }
            }
            Err(e) => Answer::Transport(transport_words(&e)),
        }
    }

    /// Sends `r` at most `ATTEMPTS` times, pausing 0.5 s then 1 s, while `retry` says the
    /// answer is worth it and a try can still end within `MESSAGE` of the first. `tried`
    /// hears of each try that will be followed by another.
    pub fn send_with_retries(
        &self,
        r: &Request,
        retry: impl Fn(&Answer) -> bool,
        mut tried: impl FnMut(u32, &Answer),
    ) -> (Answer, u32) {
        let deadline = Instant::now() + MESSAGE;
        let mut n = 0;
        loop {
            n += 1;
            let a = self.send(r);
            let pause = Duration::from_millis(500 * u64::from(n));
            if n >= ATTEMPTS || !retry(&a) || Instant::now() + pause + TOTAL > deadline {
                return (a, n);
            }
            tried(n, &a);
            std::thread::sleep(pause);
        }
    }
}

/// A transport error in our words: what failed, never the URL (ureq's `BadUri` quotes it,
/// and a robot's URL holds its token).
fn transport_words(e: &ureq::Error) -> String {
    use ureq::Error as E;
    match e {
        E::Timeout(t) => format!("no answer in time ({t})"),
        E::HostNotFound => "host not found".into(),
        // An OS or TLS error says what failed (refused, UnknownIssuer), never where.
        E::Io(io) if !io.to_string().contains("://") => format!("connection failed: {io}"),
        E::Io(io) => format!("connection failed: {}", io.kind()),
        E::Tls(why) => format!("TLS: {why}"),
        E::BadUri(_) => "not a valid URL".into(),
        E::Protocol(p) => format!("not HTTP/1.1 as expected: {p}"),
        E::BodyExceedsLimit(_) => "the answer is larger than 64 KiB".into(),
        other => {
            let text = other.to_string();
            // Only our own words for anything that might quote a URL.
            if text.contains("://") {
                "the request failed".into()
            } else {
                text
            }
        }
    }
}

/// What a log line may say of a URL: `scheme://host[:port]/path?name=***`: no user or
/// password, every query value masked (DingTalk's and WeCom's tokens are there), and the
/// last segment of a Feishu (`/hook/TOKEN`) or Slack (`/services/T/B/TOKEN`) path.
pub fn redact(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = base.split('#').next().unwrap_or(base);
    let (scheme, rest) = base.split_once("://").unwrap_or(("", base));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, String::new()),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let mut path = path;
    if path.contains("/hook/") || path.contains("/services/") {
        if let Some(i) = path.rfind('/') {
            path.replace_range(i + 1.., "***");
        }
    }
    let names: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| format!("{}=***", p.split('=').next().unwrap_or("")))
        .collect();
    let mut out = format!("{scheme}://{host}{path}");
    if !names.is_empty() {
        out.push('?');
        out.push_str(&names.join("&"));
    }
    out
}

/// The `message` a service put in an error answer (GitHub's `message`, a robot's
/// `errmsg`/`msg`), else the body's start: made printable and short, for a log line.
pub fn reason(a: &Answer) -> String {
    if let Some(to) = redirect_to(a) {
        return format!("HTTP {} to {to}: a redirect, not followed", status_of(a));
    }
    match a {
        Answer::Transport(t) => t.clone(),
        Answer::Http { status, body, .. } => {
            let json = a.json();
            let said = json
                .as_ref()
                .and_then(|j| {
                    ["message", "errmsg", "msg", "error", "error_description"]
                        .iter()
                        .find_map(|k| match &j[*k] {
                            serde_json::Value::String(s) => Some(s.clone()),
                            serde_json::Value::Null => None,
                            other => Some(other.to_string()),
                        })
                })
                .unwrap_or_else(|| body.trim().to_string());
            format!("HTTP {status}: {}", crate::sys::text::printable(&said, 200))
        }
    }
}

fn status_of(a: &Answer) -> u16 {
    match a {
        Answer::Http { status, .. } => *status,
        Answer::Transport(_) => 0,
    }
}

/// Where a redirect (3xx) points: the host of its `Location` (no path or query: they may
/// hold a token), or "another path" for a relative one. `None` for any other answer.
pub fn redirect_to(a: &Answer) -> Option<String> {
    let Answer::Http {
        status: 300..=399,
        location,
        ..
    } = a
    else {
        return None;
    };
    let Some(location) = location else {
        return Some("nowhere (no Location)".into());
    };
    Some(match location.split_once("://") {
        Some((_, rest)) => {
            let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
            let host = authority.rsplit('@').next().unwrap_or(authority);
            crate::sys::text::printable(host, 100)
        }
        None => "another path on the same host".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_logged_without_their_secrets() {
        assert_eq!(
            redact("https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1&sign=x%2B"),
            "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=***&sign=***"
        );
        assert_eq!(
            redact("https://open.feishu.cn/open-apis/bot/v2/hook/0123-abcd"),
            "https://open.feishu.cn/open-apis/bot/v2/hook/***"
        );
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/secretpart"),
            "https://hooks.slack.com/services/T0/B0/***"
        );
        assert_eq!(
            redact("https://user:pw@api.example.com/repos/a/b/statuses/c"),
            "https://api.example.com/repos/a/b/statuses/c"
        );
        assert_eq!(redact("http://127.0.0.1:8/x#frag"), "http://127.0.0.1:8/x");
    }

    #[test]
    fn retry_and_reasons() {
        let http = |status: u16, body: &str| Answer::Http {
            status,
            body: body.into(),
            scopes: None,
            location: None,
        };
        assert!(http(503, "").retryable() && http(429, "").retryable());
        assert!(!http(401, "").retryable() && !http(200, "").retryable());
        assert!(Answer::Transport("x".into()).retryable());
        assert_eq!(
            reason(&http(401, r#"{"message":"Bad credentials"}"#)),
            "HTTP 401: Bad credentials"
        );
        assert_eq!(
            reason(&http(200, r#"{"errcode":310000,"errmsg":"sign not match"}"#)),
            "HTTP 200: sign not match"
        );
        assert_eq!(reason(&http(400, "no_text\n")), "HTTP 400: no_text");
        assert_eq!(
            reason(&http(400, r#"{"message":{"description":["is too long"]}}"#)),
            r#"HTTP 400: {"description":["is too long"]}"#
        );
    }

    #[test]
    fn a_client_without_roots_still_sends_to_loopback_and_says_why() {
        let (client, warning) = Client::new(Path::new("/nonexistent/bundle.crt"));
        assert!(warning.unwrap().contains("ca-certificates"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            s.write_all(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            head
        });
        let r = Request::post_json(
            format!("http://127.0.0.1:{port}/x?token=t"),
            vec![("X-Test".into(), "1".into())],
            &serde_json::json!({"a": 1}),
        );
        let a = client.send(&r);
        let head = server.join().unwrap().to_ascii_lowercase();
        assert!(
            matches!(a, Answer::Http { status: 302, .. }),
            "a redirect is an answer, not followed: {a:?}"
        );
        assert!(head.starts_with("post /x?token=t http/1.1"), "{head}");
        assert!(
            head.contains("x-test: 1") && head.contains("user-agent: deploy-hook/"),
            "{head}"
        );
        // Nothing listens on port 1: an answer-less failure, in our words.
        let gone = client.send(&Request::get("http://127.0.0.1:1/?access_token=secret".into(), vec![]));
        match gone {
            Answer::Transport(t) => assert!(!t.contains("secret") && !t.contains("127.0.0.1"), "{t}"),
            other => panic!("{other:?}"),
        }
    }
}
