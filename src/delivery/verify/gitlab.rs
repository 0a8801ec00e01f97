//! GitLab: `X-Gitlab-Token` is the secret itself, compared in constant time.

use super::{delivery_id, event_header, payload, token_matches, Delivery, Kind};
use crate::config::Hook;
use crate::delivery::cgi::Request;
use crate::delivery::event::{self, Forge};
use crate::error::{Error, Result};

pub fn verify(hook: &Hook, secret: &[u8], req: &Request, now_ms: u128) -> Result<Delivery> {
    let token = req
        .header("X-Gitlab-Token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Unauthorized("no X-Gitlab-Token: set the webhook's secret token in GitLab".into()))?;
    if !token_matches(secret, token) {
        return Err(Error::Forbidden(
            "X-Gitlab-Token does not match the secret token".into(),
        ));
    }
    let event = event_header(req, hook.provider)?;
    let id = delivery_id(req, hook.provider, now_ms);
    let kind = match event.as_str() {
        "Push Hook" => event::push(&payload(req)?.json, hook)?,
        "Merge Request Hook" => event::pull_request(Forge::Gitlab, &event, &payload(req)?.json, hook)?,
        "Tag Push Hook" => Kind::Ignored("tag push; this hook builds a branch".into()),
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
