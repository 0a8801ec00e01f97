//! Verifying a delivery and deciding what it asks for.
//!
//! Each forge has its own file with its signature rule; this module holds what they share:
//! constant-time comparison and payload extraction (JSON or form `payload=`). What a
//! verified delivery asks for (a build, a preview, nothing) is read in `delivery::event`.
//! Verification always happens before the body is trusted for anything.

mod gitea;
mod gitee;
mod github;
mod gitlab;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{Hook, Provider};
use crate::delivery::cgi::Request;
use crate::delivery::event::PreviewAction;
use crate::error::{Error, Result};
use crate::sys::text::{percent_decode, printable};

pub use gitea::signature as gitea_signature;
pub use gitee::sign_token as gitee_sign_token;
pub use github::signature as github_signature;

pub type HmacSha256 = Hmac<Sha256>;

/// What a verified delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Ping,
    /// A push to the watched branch.
    Push {
        git_ref: String,
    },
    /// A preview to build or remove (`[hooks.NAME.previews]`).
    Preview(PreviewAction),
    /// Anything else, with the reason told to the forge.
    Ignored(String),
}

#[derive(Debug, Clone)]
pub struct Delivery {
    /// The forge's event name as sent (`push`, `Push Hook`, ...).
    pub event: String,
    /// The forge's delivery id, or one made up here when the forge sends none.
    pub id: String,
    pub kind: Kind,
    /// Gitee signing mode: the decoded token, for the replay check.
    pub replay_token: Option<Vec<u8>>,
}

/// Which payload bytes the forge signed, and where the JSON is.
pub struct Payload<'a> {
    /// The JSON document (the body, or the decoded `payload` form field).
    pub json: std::borrow::Cow<'a, [u8]>,
}

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac
}

/// Constant-time equality of a sent token with the configured secret, whatever their
/// lengths: both sides go through HMAC under the secret, and the MACs are compared with
/// `verify_slice`, so neither the content nor the length of the secret leaks through timing.
pub fn token_matches(secret: &[u8], sent: &[u8]) -> bool {
    let expected = hmac_sha256(secret, &[b"deploy-hook token", secret])
        .finalize()
        .into_bytes();
    hmac_sha256(secret, &[b"deploy-hook token", sent])
        .verify_slice(&expected)
        .is_ok()
}

/// The value of `key` in an `a=1&b=2` string, percent-decoded.
pub fn form_field(form: &[u8], key: &str) -> Result<Option<Vec<u8>>> {
    for pair in form.split(|b| *b == b'&') {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let k = percent_decode(k, true)
            .ok_or_else(|| Error::BadRequest("the form body is not valid percent-encoding".into()))?;
        if k == key.as_bytes() {
            let v = percent_decode(v, true)
                .ok_or_else(|| Error::BadRequest(format!("the form field {key:?} is not valid percent-encoding")))?;
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Finds the JSON document of a delivery by its content type.
pub fn payload<'a>(req: &'a Request) -> Result<Payload<'a>> {
    let ct = req.content_type.as_deref().unwrap_or("application/json");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" => Ok(Payload {
            json: std::borrow::Cow::Borrowed(&req.body),
        }),
        "application/x-www-form-urlencoded" => match form_field(&req.body, "payload")? {
            Some(json) => Ok(Payload {
                json: std::borrow::Cow::Owned(json),
            }),
            None => Err(Error::BadRequest("the form body has no payload field".into())),
        },
        _ => Err(Error::UnsupportedMediaType(printable(ct, 80))),
    }
}

/// The headers a forge names its event and its delivery id in (the first one sent counts).
struct HeaderNames {
    event: &'static [&'static str],
    id: &'static [&'static str],
}

fn header_names(p: Provider) -> HeaderNames {
    let (event, id): (&'static [&'static str], &'static [&'static str]) = match p {
        Provider::Gitee => (&["X-Gitee-Event", "X-Git-Oschina-Event"], &["X-Gitee-Delivery"]),
        Provider::Github => (&["X-GitHub-Event"], &["X-GitHub-Delivery"]),
        Provider::Gitlab => (&["X-Gitlab-Event"], &["X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"]),
        Provider::Gogs => (&["X-Gogs-Event"], &["X-Gogs-Delivery"]),
        Provider::Gitea => (
            &["X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event"],
            &["X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery"],
        ),
    };
    HeaderNames { event, id }
}

/// The delivery id header, if it is a sane token.
fn sent_id(req: &Request, headers: &[&str]) -> Option<String> {
    headers.iter().find_map(|h| {
        req.header_str(h)
            .filter(|v| {
                !v.is_empty() && v.len() <= 100 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            })
            .map(str::to_string)
    })
}

/// The delivery id header, if it is a sane token; else an id made up here.
fn delivery_id(req: &Request, provider: Provider, now_ms: u128) -> String {
    sent_id(req, header_names(provider).id).unwrap_or_else(|| format!("local-{now_ms}-{}", std::process::id()))
}

/// The event and delivery id a request says it carries, before it is verified: for the log
/// line of a delivery that is rejected, so the admin can find it in the forge's list of
/// recent deliveries. Only these two headers (never a token or signature), the event
/// escaped and capped, the id only when it is a plain token; empty when not sent.
pub fn claimed(provider: Provider, req: &Request) -> (String, String) {
    let names = header_names(provider);
    let event = names
        .event
        .iter()
        .find_map(|n| req.header(n))
        .map(|v| printable(String::from_utf8_lossy(v).trim(), 100))
        .unwrap_or_default();
    (event, sent_id(req, names.id).unwrap_or_default())
}

/// `claimed` for a request to no known hook, so no known provider: the first forge whose
/// event header it carries (Gitea first: it also sends Gogs' and GitHub's headers).
pub fn claimed_by_any(req: &Request) -> (String, String) {
    [
        Provider::Gitea,
        Provider::Gitee,
        Provider::Gitlab,
        Provider::Github,
        Provider::Gogs,
    ]
    .into_iter()
    .map(|p| claimed(p, req))
    .find(|(event, _)| !event.is_empty())
    .unwrap_or_default()
}

/// Verifies the delivery against the hook's secret and says what it asks for.
pub fn verify(hook: &Hook, secret: &[u8], req: &Request, now_ms: u128) -> Result<Delivery> {
    match hook.provider {
        Provider::Gitee => gitee::verify(hook, secret, req, now_ms),
        Provider::Github => github::verify(hook, secret, req, now_ms),
        Provider::Gitlab => gitlab::verify(hook, secret, req, now_ms),
        Provider::Gitea | Provider::Gogs => gitea::verify(hook, secret, req, now_ms),
    }
}

/// The event header, required.
fn event_header(req: &Request, provider: Provider) -> Result<String> {
    let names = header_names(provider).event;
    for n in names {
        if let Some(v) = req.header(n) {
            return match std::str::from_utf8(v) {
                Ok(s) if !s.trim().is_empty() && s.len() <= 100 => Ok(s.trim().to_string()),
                _ => Err(Error::BadRequest(format!("the {n} header is malformed"))),
            };
        }
    }
    Err(Error::BadRequest(format!(
        "no {} header: is this a webhook delivery from the configured forge?",
        names[0]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields() {
        assert_eq!(
            form_field(b"a=1&payload=%7B%22x%22%3A1%7D", "payload")
                .unwrap()
                .unwrap(),
            b"{\"x\":1}"
        );
        assert_eq!(form_field(b"a=1", "payload").unwrap(), None);
        assert!(form_field(b"payload=%G0", "payload").is_err());
    }

    #[test]
    fn tokens_compare_in_full() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secret", b"secreT"));
        assert!(!token_matches(b"secret", b"secret "));
        assert!(!token_matches(b"secret", b""));
        assert!(!token_matches(b"secret", b"secre"));
    }
}
