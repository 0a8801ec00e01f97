//! The signatures robots ask for, as their vendors document them. The tests' doubles
//! verify them with code of their own, written from the same documents.
//!
//! - DingTalk (加签): the URL gets `timestamp` (ms) and `sign` = URL-encoded
//!   base64(HMAC-SHA256(key = secret, message = timestamp + "\n" + secret)).
//! - Feishu/Lark (签名校验): the JSON body gets `timestamp` (s) and `sign` =
//!   base64(HMAC-SHA256(key = timestamp + "\n" + secret, message = empty)): the key and the
//!   message are the other way round from DingTalk's, the classic mistake.
//! - Our plain webhook: `X-Deploy-Hook-Signature-256: sha256=<hex HMAC-SHA256(secret,
//!   body)>`, GitHub's scheme, so a receiver can reuse its check.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: new_from_slice cannot fail for it.
    let mut m = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    m.update(message);
    m.finalize().into_bytes().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// DingTalk's `url` with `&timestamp=..&sign=..` added; `now_ms` is the time in ms.
pub fn dingtalk_url(url: &str, secret: &str, now_ms: u128) -> String {
    let sign = b64(&hmac(secret.as_bytes(), format!("{now_ms}\n{secret}").as_bytes()));
    // `+`, `/` and `=` must be escaped, or a `+` arrives as a space and the sign fails.
    let encoded: String = sign
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}timestamp={now_ms}&sign={encoded}")
}

/// Feishu's `timestamp` and `sign` fields, added to the message body; `now_s` in seconds.
pub fn feishu_sign(body: &mut serde_json::Value, secret: &str, now_s: u64) {
    let sign = b64(&hmac(format!("{now_s}\n{secret}").as_bytes(), b""));
    body["timestamp"] = serde_json::Value::String(now_s.to_string());
    body["sign"] = serde_json::Value::String(sign);
}

/// The webhook's signature header value for `body`.
pub fn webhook_signature(body: &[u8], secret: &str) -> String {
    format!(
        "sha256={}",
        crate::sys::text::hex_encode(&hmac(secret.as_bytes(), body))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned vectors, computed by the tests' own verifier (Python, from the vendors'
    /// documents) and by `openssl dgst` (a third implementation).
    #[test]
    fn vectors() {
        let u = dingtalk_url(
            "https://oapi.dingtalk.com/robot/send?access_token=x",
            "SECdeploy-hook-test-0123456789abcdef",
            1_700_000_000_000,
        );
        assert_eq!(
            u,
            "https://oapi.dingtalk.com/robot/send?access_token=x&timestamp=1700000000000&sign=UPAb7JxWmFj3jtCLqcDjIzUFY%2B4CDLowxCqE1a05cww%3D"
        );
        let mut body = serde_json::json!({"msg_type": "text"});
        feishu_sign(&mut body, "deploy-hook-feishu-test-secret", 1_700_000_000);
        assert_eq!(body["timestamp"], "1700000000");
        assert_eq!(body["sign"], "Q4r1ueIh1R55mvHZSE8ZoVbTLsxhC7rpflosOvzsNk4=");
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        assert_eq!(
            webhook_signature(b"Hello, World!", "It's a Secret to Everybody"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
