//! Gitee: signing-key mode (`X-Gitee-Token = base64(HMAC-SHA256(secret, ts + "\n" + secret))`,
//! timestamp in ms within `max_age_secs`) and password mode (`X-Gitee-Token == secret`).
//!
//! The signature covers no part of the body, so the body only decides whether this is a
//! push to the watched branch (what is built is always the head of `remote/branch`) or
//! which branch or pull request of the hook's remote a preview is of (see
//! `delivery::event`: the fork check is made in git, not on the body's word).

use base64::Engine;
use hmac::Mac;

use super::{delivery_id, event_header, hmac_sha256, payload, token_matches, Delivery, Kind};
use crate::config::{GiteeMode, Hook};
use crate::delivery::cgi::Request;
use crate::delivery::event::{self, Forge};
use crate::error::{Error, Result};

/// The token Gitee sends for `timestamp` (ms, as a decimal string) in signing mode.
pub fn sign_token(secret: &[u8], timestamp: &str) -> String {
    let mac = hmac_sha256(secret, &[timestamp.as_bytes(), b"\n", secret])
        .finalize()
        .into_bytes();
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// What a delivery's own headers say about the mode it was sent in: a signing-mode token is
/// the base64 of a 32-byte HMAC (percent-encoded by some setups) and comes with
/// X-Gitee-Timestamp; anything else is a WebHook password. Decided from the sent token's
/// shape only, never by comparing it with the secret, so the hint tells nothing about it.
fn looks_signed(token: &[u8], timestamp: Option<&[u8]>) -> bool {
    let decoded = if token.contains(&b'%') {
        crate::sys::text::percent_decode(token, false)
    } else {
        Some(token.to_vec())
    };
    timestamp.is_some_and(|t| !t.is_empty())
        && decoded
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
            .is_some_and(|mac| mac.len() == 32)
}

/// The hint for a sign-mode hook that got a delivery that looks like password mode.
const EXPECTS_SIGN: &str = "this hook expects the signing key (签名密钥) mode; this delivery's token looks like a WebHook password (WebHook 密码): choose 签名密钥 in Gitee, or set gitee_mode = \"password\"";
/// The hint for a password-mode hook that got a signed delivery.
const EXPECTS_PASSWORD: &str = "this hook expects the WebHook password (WebHook 密码) mode; this delivery's token looks like a signature made with a signing key (签名密钥): choose WebHook 密码 in Gitee, or set gitee_mode = \"sign\"";

/// Checks a signing-mode token; returns the decoded MAC, the identity of this delivery for
/// the replay check.
fn check_sign(
    secret: &[u8],
    token: &[u8],
    timestamp: Option<&[u8]>,
    max_age_secs: u64,
    now_ms: u128,
) -> Result<Vec<u8>> {
    let ts = timestamp.filter(|t| !t.is_empty()).ok_or_else(|| {
        Error::Unauthorized(format!(
            "X-Gitee-Timestamp is missing: signing mode needs it; {EXPECTS_SIGN}"
        ))
    })?;
    let ts_str = std::str::from_utf8(ts)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| Error::BadRequest("X-Gitee-Timestamp is not a number of milliseconds".into()))?;
    let ts_ms: u128 = ts_str
        .parse()
        .map_err(|_| Error::BadRequest("X-Gitee-Timestamp is out of range".into()))?;
    let age_ms = now_ms.abs_diff(ts_ms);
    if age_ms > u128::from(max_age_secs) * 1000 {
        return Err(Error::Forbidden(format!(
            "X-Gitee-Timestamp is {}s away from this server's clock (at most {max_age_secs}s allowed); check the server's time",
            age_ms / 1000
        )));
    }
    if !looks_signed(token, timestamp) {
        return Err(Error::Forbidden(format!(
            "X-Gitee-Token does not verify: {EXPECTS_SIGN}"
        )));
    }
    let token = if token.contains(&b'%') {
        crate::sys::text::percent_decode(token, false)
            .ok_or_else(|| Error::Forbidden("X-Gitee-Token does not verify".into()))?
    } else {
        token.to_vec()
    };
    let sent = base64::engine::general_purpose::STANDARD
        .decode(&token)
        .map_err(|_| Error::Forbidden(format!("X-Gitee-Token does not verify: {EXPECTS_SIGN}")))?;
    hmac_sha256(secret, &[ts_str.as_bytes(), b"\n", secret])
        .verify_slice(&sent)
        .map_err(|_| {
            Error::Forbidden(
                "X-Gitee-Token does not verify: the delivery is signed, as this hook expects, but not with this hook's signing key (签名密钥): paste the same key in Gitee and in deploy-hook's secret".into(),
            )
        })?;
    Ok(sent)
}

pub fn verify(hook: &Hook, secret: &[u8], req: &Request, now_ms: u128) -> Result<Delivery> {
    let token = req.header("X-Gitee-Token").filter(|t| !t.is_empty()).ok_or_else(|| {
        Error::Unauthorized("no X-Gitee-Token: set the hook's password or signing key in Gitee".into())
    })?;
    let replay_token = match hook.gitee_mode {
        GiteeMode::Sign => Some(check_sign(
            secret,
            token,
            req.header("X-Gitee-Timestamp"),
            hook.max_age_secs,
            now_ms,
        )?),
        GiteeMode::Password => {
            if !token_matches(secret, token) {
                let why = if looks_signed(token, req.header("X-Gitee-Timestamp")) {
                    format!("X-Gitee-Token does not match: {EXPECTS_PASSWORD}")
                } else {
                    "X-Gitee-Token does not match the WebHook password (WebHook 密码) of this hook".to_string()
                };
                return Err(Error::Forbidden(why));
            }
            None
        }
    };

    let event = event_header(req, hook.provider)?;
    let id = delivery_id(req, hook.provider, now_ms);
    let ping = req
        .header_str("X-Gitee-Ping")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let kind = if ping {
        Kind::Ping
    } else {
        match event.as_str() {
            "Push Hook" | "push_hooks" => event::push(&payload(req)?.json, hook)?,
            "Merge Request Hook" | "merge_request_hooks" => {
                event::pull_request(Forge::Gitee, &event, &payload(req)?.json, hook)?
            }
            "Tag Push Hook" | "tag_push_hooks" => Kind::Ignored("tag push; this hook builds a branch".into()),
            other => Kind::Ignored(format!(
                "event \"{}\" does not start a build",
                crate::sys::text::printable(other, 60)
            )),
        }
    };
    Ok(Delivery {
        event,
        id,
        kind,
        replay_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u128 = 1_700_000_000_000;

    #[test]
    fn documented_vectors() {
        assert_eq!(
            sign_token(b"this is secret", "1576754827988"),
            "2D978FIy4DMMTbiN80zQkNH1Eq/kMBt3gL6OnWfGzzY="
        );
        assert_eq!(
            sign_token(b"SECabc123", "1700000000000"),
            "N5P09a4+p1AMJIJWnIvQd2Yxw9+fu/oEBnPrjCcsLXk="
        );
    }

    #[test]
    fn sign_mode_accepts_the_vector_plain_and_percent_encoded() {
        let tok = b"N5P09a4+p1AMJIJWnIvQd2Yxw9+fu/oEBnPrjCcsLXk=";
        assert!(check_sign(b"SECabc123", tok, Some(b"1700000000000"), 3600, NOW).is_ok());
        let enc = b"N5P09a4%2Bp1AMJIJWnIvQd2Yxw9%2Bfu%2FoEBnPrjCcsLXk%3D";
        assert_eq!(
            check_sign(b"SECabc123", enc, Some(b"1700000000000"), 3600, NOW).unwrap(),
            check_sign(b"SECabc123", tok, Some(b"1700000000000"), 3600, NOW).unwrap()
        );
        // within the window either side
        assert!(check_sign(b"SECabc123", tok, Some(b"1700000000000"), 3600, NOW + 3_599_000).is_ok());
        assert!(check_sign(b"SECabc123", tok, Some(b"1700000000000"), 3600, NOW - 3_599_000).is_ok());
    }

    #[test]
    fn sign_mode_refuses_each_way() {
        let tok: &[u8] = b"N5P09a4+p1AMJIJWnIvQd2Yxw9+fu/oEBnPrjCcsLXk=";
        let ts: Option<&[u8]> = Some(b"1700000000000");
        let status = |r: Result<Vec<u8>>| r.unwrap_err().http_status();
        assert_eq!(
            status(check_sign(b"SECabc124", tok, ts, 3600, NOW)),
            403,
            "wrong secret"
        );
        assert_eq!(
            status(check_sign(b"SECabc123", tok, Some(b"1700000000001"), 3600, NOW)),
            403,
            "other timestamp"
        );
        assert_eq!(
            status(check_sign(b"SECabc123", tok, ts, 3600, NOW + 3_601_000)),
            403,
            "too old"
        );
        assert_eq!(
            status(check_sign(b"SECabc123", tok, ts, 3600, NOW - 3_601_000)),
            403,
            "too far ahead"
        );
        assert_eq!(status(check_sign(b"SECabc123", b"not base64!", ts, 3600, NOW)), 403);
        assert_eq!(status(check_sign(b"SECabc123", b"%zz", ts, 3600, NOW)), 403);
        assert_eq!(
            status(check_sign(b"SECabc123", &tok[..20], ts, 3600, NOW)),
            403,
            "truncated"
        );
        assert_eq!(
            status(check_sign(b"SECabc123", b"SECabc123", ts, 3600, NOW)),
            403,
            "password sent to a sign hook"
        );
        assert_eq!(status(check_sign(b"SECabc123", tok, None, 3600, NOW)), 401);
        assert_eq!(status(check_sign(b"SECabc123", tok, Some(b""), 3600, NOW)), 401);
        assert_eq!(status(check_sign(b"SECabc123", tok, Some(b"17e11"), 3600, NOW)), 400);
        assert_eq!(
            status(check_sign(b"SECabc123", tok, Some(b"-1700000000000"), 3600, NOW)),
            400
        );
        assert_eq!(
            status(check_sign(b"SECabc123", tok, Some(b"99999999999999999999"), 3600, NOW)),
            400
        );
    }
}
