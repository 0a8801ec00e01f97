//! The CGI side: a `Request` from the environment and stdin, a `Response` written as a
//! CGI reply (RFC 3875).
//!
//! Web servers differ in what they pass: nginx sends `CONTENT_LENGTH=` (empty) on a GET and
//! no `PATH_INFO` with Debian's `fastcgi_params`; Apache passes a chunked body with no
//! `CONTENT_LENGTH` at all. Variables are read as bytes (`vars_os` in main), so a
//! non-UTF-8 header cannot panic anything here.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;

use serde::Serialize;

use crate::config::valid_hook_name;
use crate::error::{Error, Result};
use crate::sys::text::{percent_decode, printable};

/// The process environment, captured once in `main`.
pub type Env = BTreeMap<OsString, OsString>;

#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    pub path_info: Option<Vec<u8>>,
    pub query: Option<Vec<u8>>,
    pub content_type: Option<String>,
    content_length: Option<Vec<u8>>,
    /// Header variables by CGI name (`HTTP_X_GITEE_TOKEN`).
    headers: BTreeMap<String, Vec<u8>>,
    pub body: Vec<u8>,
    /// Bytes of stdin read so far, and whether its end was seen.
    consumed: u64,
    saw_eof: bool,
}

/// `X-Gitee-Token` -> `HTTP_X_GITEE_TOKEN`
fn cgi_name(header: &str) -> String {
    let mut name = String::from("HTTP_");
    name.extend(
        header
            .chars()
            .map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }),
    );
    name
}

impl Request {
    /// Everything but the body.
    pub fn from_env(env: &Env) -> Request {
        let bytes = |k: &str| env.get(OsStr::new(k)).map(|v| v.as_bytes().to_vec());
        let mut headers = BTreeMap::new();
        for (k, v) in env {
            if let Some(k) = k.to_str() {
                if k.starts_with("HTTP_") {
                    headers.insert(k.to_string(), v.as_bytes().to_vec());
                }
            }
        }
        Request {
            method: bytes("REQUEST_METHOD")
                .map(|m| String::from_utf8_lossy(&m).into_owned())
                .unwrap_or_default(),
            path_info: bytes("PATH_INFO"),
            query: bytes("QUERY_STRING"),
            content_type: bytes("CONTENT_TYPE")
                .filter(|c| !c.is_empty())
                .map(|c| String::from_utf8_lossy(&c).into_owned()),
            content_length: bytes("CONTENT_LENGTH"),
            headers,
            body: Vec::new(),
            consumed: 0,
            saw_eof: false,
        }
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(&cgi_name(name)).map(Vec::as_slice)
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The hook named by `PATH_INFO` (`/NAME`), else by the query (`hook=NAME`); `None`
    /// when neither names one. A name that is not a valid hook name is an unknown hook.
    pub fn hook_name(&self) -> Result<Option<String>> {
        let invalid = |raw: &[u8]| Error::UnknownHook(printable(&String::from_utf8_lossy(raw), 64));
        if let Some(p) = self.path_info.as_deref().filter(|p| !p.is_empty() && *p != b"/") {
            let trimmed = p.strip_prefix(b"/").unwrap_or(p);
            let trimmed = trimmed.strip_suffix(b"/").unwrap_or(trimmed);
            return match std::str::from_utf8(trimmed) {
                Ok(name) if valid_hook_name(name) => Ok(Some(name.to_string())),
                _ => Err(invalid(p)),
            };
        }
        if let Some(q) = self.query.as_deref() {
            for pair in q.split(|b| *b == b'&') {
                if let Some(v) = pair.strip_prefix(b"hook=") {
                    let decoded = percent_decode(v, true).ok_or_else(|| invalid(v))?;
                    return match std::str::from_utf8(&decoded) {
                        Ok(name) if valid_hook_name(name) => Ok(Some(name.to_string())),
                        _ => Err(invalid(&decoded)),
                    };
                }
            }
        }
        Ok(None)
    }

    /// The announced body length: `None` when absent or empty (read to end of file then).
    pub fn content_length(&self) -> Result<Option<u64>> {
        match self.content_length.as_deref() {
            None | Some(b"") => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| Error::BadRequest("CONTENT_LENGTH is not a number".into())),
        }
    }

    /// Reads the body: `CONTENT_LENGTH` bytes, or to end of file when it is absent, and
    /// never more than `limit` bytes either way.
    pub fn read_body(&mut self, stdin: &mut dyn Read, limit: u64) -> Result<()> {
        let too_large = Error::TooLarge { limit };
        match self.content_length()? {
            Some(n) if n > limit => return Err(too_large),
            Some(n) => {
                let mut body = Vec::with_capacity(n as usize);
                stdin
                    .take(n)
                    .read_to_end(&mut body)
                    .map_err(|e| Error::BadRequest(format!("the body could not be read: {e}")))?;
                self.consumed = body.len() as u64;
                self.saw_eof = self.consumed < n;
                if (body.len() as u64) < n {
                    return Err(Error::BadRequest(format!(
                        "the body ended after {} of the {n} bytes CONTENT_LENGTH announced",
                        body.len()
                    )));
                }
                self.body = body;
            }
            None => {
                let mut body = Vec::new();
                stdin
                    .take(limit + 1)
                    .read_to_end(&mut body)
                    .map_err(|e| Error::BadRequest(format!("the body could not be read: {e}")))?;
                self.consumed = body.len() as u64;
                self.saw_eof = self.consumed <= limit;
                if body.len() as u64 > limit {
                    return Err(too_large);
                }
                self.body = body;
            }
        }
        Ok(())
    }
}

/// How much of a refused body is read and thrown away at most.
const DRAIN_CAP: u64 = 64 << 20;

impl Request {
    /// Reads what is left of the body and throws it away. Under Apache's mod_cgid a CGI
    /// that exits with body bytes unread gets its connection reset, and the answer it
    /// already wrote is lost; so every answer that refused a body early (413, 404, a
    /// config error) is followed by this. Bounded by `DRAIN_CAP`.
    pub fn drain_body(&mut self, stdin: &mut dyn Read) {
        if self.saw_eof {
            return;
        }
        let left = match self.content_length() {
            Ok(Some(n)) => n.saturating_sub(self.consumed),
            _ => DRAIN_CAP,
        };
        let _ = std::io::copy(&mut stdin.take(left.min(DRAIN_CAP)), &mut std::io::sink());
        self.saw_eof = true;
    }
}

/// The JSON answer every delivery gets.
#[derive(Debug, Serialize)]
pub struct Answer {
    pub status: String,
    pub hook: String,
    pub delivery: String,
    pub message: String,
}

#[derive(Debug)]
pub struct Response {
    pub code: u16,
    pub answer: Answer,
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    }
}

impl Response {
    pub fn new(code: u16, status: &str, hook: &str, delivery: &str, message: impl Into<String>) -> Response {
        Response {
            code,
            answer: Answer {
                status: status.to_string(),
                hook: hook.to_string(),
                delivery: delivery.to_string(),
                message: message.into(),
            },
        }
    }

    /// Writes the complete CGI reply.
    pub fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let body = serde_json::to_string(&self.answer).unwrap_or_else(|_| "{}".into());
        let mut head = format!(
            "Status: {} {}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n",
            self.code,
            reason(self.code)
        );
        if self.code == 405 {
            head.push_str("Allow: POST\r\n");
        }
        if self.code == 429 {
            head.push_str("Retry-After: 60\r\n");
        }
        write!(out, "{head}Content-Length: {}\r\n\r\n{body}\n", body.len() + 1)?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &[u8])]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsStr::from_bytes(v).to_os_string()))
            .collect()
    }

    #[test]
    fn headers_by_http_name() {
        let r = Request::from_env(&env(&[("HTTP_X_GITEE_TOKEN", b"abc"), ("HTTP_X_BAD", b"\xff")]));
        assert_eq!(r.header("X-Gitee-Token"), Some(&b"abc"[..]));
        assert_eq!(r.header("x-gitee-token"), Some(&b"abc"[..]));
        assert_eq!(r.header_str("X-Bad"), None);
        assert_eq!(r.header("X-Missing"), None);
    }

    #[test]
    fn hook_from_path_query_or_none() {
        let name = |pairs: &[(&str, &[u8])]| Request::from_env(&env(pairs)).hook_name();
        assert_eq!(name(&[("PATH_INFO", b"/docs")]).unwrap().as_deref(), Some("docs"));
        assert_eq!(name(&[("PATH_INFO", b"/docs/")]).unwrap().as_deref(), Some("docs"));
        assert_eq!(
            name(&[("QUERY_STRING", b"x=1&hook=blog")]).unwrap().as_deref(),
            Some("blog")
        );
        assert_eq!(
            name(&[("PATH_INFO", b"/"), ("QUERY_STRING", b"hook=blog")])
                .unwrap()
                .as_deref(),
            Some("blog")
        );
        assert_eq!(name(&[("PATH_INFO", b"")]).unwrap(), None);
        assert_eq!(name(&[]).unwrap(), None);
        for bad in [&b"/../etc"[..], b"/a/b", b"/a\nb", b"/\xff", b"//"] {
            assert!(
                matches!(name(&[("PATH_INFO", bad)]), Err(Error::UnknownHook(_))),
                "{bad:?}"
            );
        }
        assert!(name(&[("QUERY_STRING", b"hook=..%2Fx")]).is_err());
        assert!(name(&[("QUERY_STRING", b"hook=%zz")]).is_err());
    }

    #[test]
    fn body_by_length_or_to_eof() {
        let read = |cl: Option<&[u8]>, input: &[u8], limit: u64| {
            let mut pairs: Vec<(&str, &[u8])> = vec![];
            if let Some(cl) = cl {
                pairs.push(("CONTENT_LENGTH", cl));
            }
            let mut r = Request::from_env(&env(&pairs));
            r.read_body(&mut &input[..], limit).map(|_| r.body)
        };
        assert_eq!(read(Some(b"3"), b"abcdef", 10).unwrap(), b"abc");
        assert_eq!(read(None, b"abcdef", 10).unwrap(), b"abcdef");
        assert_eq!(read(Some(b""), b"abcdef", 10).unwrap(), b"abcdef");
        assert_eq!(read(None, b"abcdef", 6).unwrap(), b"abcdef");
        assert_eq!(read(None, b"abcdef", 5).unwrap_err().http_status(), 413);
        assert_eq!(read(Some(b"11"), b"abcdef", 10).unwrap_err().http_status(), 413);
        assert_eq!(read(Some(b"7"), b"abcdef", 10).unwrap_err().http_status(), 400);
        for bad in [&b"-1"[..], b"1e3", b" 3", b"abc", b"99999999999999999999999"] {
            assert_eq!(read(Some(bad), b"abc", 10).unwrap_err().http_status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn a_refused_body_is_drained() {
        let input = vec![b'x'; 3000];
        let mut stdin = &input[..];
        let mut r = Request::from_env(&env(&[("CONTENT_LENGTH", b"2000")]));
        assert_eq!(r.read_body(&mut stdin, 1000).unwrap_err().http_status(), 413);
        r.drain_body(&mut stdin);
        assert_eq!(stdin.len(), 1000, "exactly the announced body is drained");
        let mut stdin = &input[..];
        let mut r = Request::from_env(&env(&[]));
        assert_eq!(r.read_body(&mut stdin, 100).unwrap_err().http_status(), 413);
        r.drain_body(&mut stdin);
        assert!(stdin.is_empty(), "no CONTENT_LENGTH: drained to the end");
        let mut stdin = &input[..];
        let mut r = Request::from_env(&env(&[("CONTENT_LENGTH", b"10")]));
        r.drain_body(&mut stdin);
        assert_eq!(stdin.len(), 2990, "an unread body is drained by its length");
    }

    #[test]
    fn response_is_a_complete_cgi_reply() {
        let mut out = Vec::new();
        Response::new(405, "error", "docs", "", "use POST")
            .write_to(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Status: 405 Method Not Allowed\r\n"));
        assert!(text.contains("Allow: POST\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["hook"], "docs");
    }
}
