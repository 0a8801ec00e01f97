//! Gitea, Forgejo and Gogs: a bare hex HMAC-SHA256 of the JSON payload in
//! `X-Gitea-Signature` / `X-Forgejo-Signature` (provider "gitea") or `X-Gogs-Signature`
//! (provider "gogs"). In form mode the JSON is the `payload` field, and that is what is
//! signed, not the form body.

use super::{delivery_id, event_header, hmac_sha256, payload, Delivery, Kind};
use crate::config::{Hook, Provider};
use crate::delivery::cgi::Request;
use crate::delivery::event::{self, Forge};
use crate::error::{Error, Result};
use hmac::Mac;

/// The header value Gitea sends for a JSON payload.
pub fn signature(secret: &[u8], json: &[u8]) -> String {
    crate::sys::text::hex_encode(&hmac_sha256(secret, &[json]).finalize().into_bytes())
}

fn check(secret: &[u8], name: &str, header: &[u8], json: &[u8]) -> Result<()> {
    let sent = std::str::from_utf8(header)
        .ok()
        .filter(|h| h.len() == 64)
        .and_then(crate::sys::text::hex_decode)
        .ok_or_else(|| Error::Forbidden(format!("{name} is malformed: expected 64 hex digits")))?;
    hmac_sha256(secret, &[json])
        .verify_slice(&sent)
        .map_err(|_| Error::Forbidden(format!("{name} does not verify: check the webhook secret")))
}

pub fn verify(hook: &Hook, secret: &[u8], req: &Request, now_ms: u128) -> Result<Delivery> {
    let sig_headers: &[&str] = match hook.provider {
        Provider::Gogs => &["X-Gogs-Signature"],
        _ => &["X-Gitea-Signature", "X-Forgejo-Signature"],
    };
    let (name, sig) = sig_headers
        .iter()
        .find_map(|n| req.header(n).filter(|v| !v.is_empty()).map(|v| (*n, v)))
        .ok_or_else(|| Error::Unauthorized(format!("no {}: set the webhook's secret", sig_headers[0])))?;
    let payload = payload(req)?;
    check(secret, name, sig, &payload.json)?;
    let event = event_header(req, hook.provider)?;
    let id = delivery_id(req, hook.provider, now_ms);
    let kind = match event.as_str() {
        "push" => event::push(&payload.json, hook)?,
        "pull_request" => event::pull_request(Forge::Gitea, &event, &payload.json, hook)?,
        "delete" => event::gitea_delete(&payload.json, hook)?,
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

    #[test]
    fn signs_and_checks_the_json() {
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?")
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(check(
            b"Jefe",
            "X-Gitea-Signature",
            sig.as_bytes(),
            b"what do ya want for nothing?"
        )
        .is_ok());
        assert!(check(
            b"Jefe",
            "X-Gitea-Signature",
            sig.as_bytes(),
            b"what do ya want for nothing!"
        )
        .is_err());
        assert!(check(
            b"Jeff",
            "X-Gitea-Signature",
            sig.as_bytes(),
            b"what do ya want for nothing?"
        )
        .is_err());
        assert!(check(
            b"Jefe",
            "X-Gitea-Signature",
            format!("sha256={sig}").as_bytes(),
            b"what do ya want for nothing?"
        )
        .is_err());
        assert!(check(
            b"Jefe",
            "X-Gitea-Signature",
            &sig.as_bytes()[..62],
            b"what do ya want for nothing?"
        )
        .is_err());
    }
}
