//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`.
//!
//! The legacy SHA-1 `X-Hub-Signature` is not accepted: a delivery that carries only that
//! one is answered 401 with a message saying so.

use super::{delivery_id, event_header, hmac_sha256, payload, Delivery, Kind};
use crate::config::Hook;
use crate::delivery::cgi::Request;
use crate::delivery::event::{self, Forge};
use crate::error::{Error, Result};
use hmac::Mac;

/// The header value GitHub sends for `body`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        crate::sys::text::hex_encode(&hmac_sha256(secret, &[body]).finalize().into_bytes())
    )
}

fn check(secret: &[u8], header: Option<&[u8]>, sha1_present: bool, body: &[u8]) -> Result<()> {
    let Some(sig) = header.filter(|h| !h.is_empty()) else {
        return Err(Error::Unauthorized(if sha1_present {
            "only X-Hub-Signature (SHA-1) was sent; deploy-hook needs X-Hub-Signature-256: set a secret on the GitHub webhook".into()
        } else {
            "no X-Hub-Signature-256: set the webhook's secret in GitHub".into()
        }));
    };
    let sent = std::str::from_utf8(sig)
        .ok()
        .and_then(|s| s.strip_prefix("sha256="))
        .filter(|h| h.len() == 64)
        .and_then(crate::sys::text::hex_decode)
        .ok_or_else(|| {
            Error::Forbidden("X-Hub-Signature-256 is malformed: expected sha256= and 64 hex digits".into())
        })?;
    hmac_sha256(secret, &[body])
        .verify_slice(&sent)
        .map_err(|_| Error::Forbidden("X-Hub-Signature-256 does not verify: check the webhook secret".into()))
}

pub fn verify(hook: &Hook, secret: &[u8], req: &Request, now_ms: u128) -> Result<Delivery> {
    check(
        secret,
        req.header("X-Hub-Signature-256"),
        req.header("X-Hub-Signature").is_some(),
        &req.body,
    )?;
    let event = event_header(req, hook.provider)?;
    let id = delivery_id(req, hook.provider, now_ms);
    let kind = match event.as_str() {
        "ping" => Kind::Ping,
        "push" => event::push(&payload(req)?.json, hook)?,
        "pull_request" => event::pull_request(Forge::Github, &event, &payload(req)?.json, hook)?,
        other => Kind::Ignored(format!(
            "event \"{}\" does not start a build",
            crate::sys::text::printable(other, 60)
        )),
    };
    Ok(Delivery {
        event,
        id,
        kind,
        replay_token: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn documented_vector() {
        assert_eq!(signature(SECRET, b"Hello, World!"), SIG);
        assert!(check(SECRET, Some(SIG.as_bytes()), false, b"Hello, World!").is_ok());
        assert!(check(
            SECRET,
            Some(SIG.to_uppercase().replace("SHA256=", "sha256=").as_bytes()),
            false,
            b"Hello, World!"
        )
        .is_ok());
    }

    #[test]
    fn refuses_each_way() {
        let code = |h: Option<&[u8]>, sha1: bool, body: &[u8]| check(SECRET, h, sha1, body).unwrap_err().http_status();
        assert_eq!(code(Some(SIG.as_bytes()), false, b"Hello, World?"), 403, "other body");
        assert_eq!(code(Some(b"sha256=00"), false, b"Hello, World!"), 403, "short");
        assert_eq!(
            code(Some(&SIG.as_bytes()[7..]), false, b"Hello, World!"),
            403,
            "no prefix"
        );
        assert_eq!(
            code(
                Some(SIG.replace("sha256=", "sha1=").as_bytes()),
                false,
                b"Hello, World!"
            ),
            403
        );
        assert_eq!(
            code(Some(SIG.replace('7', "g").as_bytes()), false, b"Hello, World!"),
            403,
            "not hex"
        );
        assert_eq!(code(Some(format!("{SIG} ").as_bytes()), false, b"Hello, World!"), 403);
        assert_eq!(code(Some(b"\xff\xfe"), false, b"Hello, World!"), 403);
        assert_eq!(code(None, false, b"Hello, World!"), 401);
        assert_eq!(code(Some(b""), false, b"Hello, World!"), 401);
        let e = check(SECRET, None, true, b"x").unwrap_err();
        assert!(e.to_string().contains("SHA-1"));
        assert!(check(b"other secret", Some(SIG.as_bytes()), false, b"Hello, World!").is_err());
    }
}
