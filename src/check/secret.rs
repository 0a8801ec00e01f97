//! A hook's secret, for `check`: the file is there, not empty, readable by the build's user
//! and nobody else, and whether spaces around the secret were pasted with it (they are not
//! part of it: `config::Secret::load`). And Gitee signing hooks that share a secret: a
//! delivery to one can be replayed to the other.

use std::os::unix::fs::PermissionsExt;

use super::Report;
use crate::config::{Config, GiteeMode, Hook, Provider, Secret};
use crate::error::Error;

pub(super) fn check(hook: &Hook, user: &str, r: &mut Report) {
    match &hook.secret {
        Secret::Inline(_) => r.warn(
            "secret",
            "the secret is inline in the config; a secret_file readable only by the web server's user is safer",
        ),
        // One read, through Secret::load: an empty secret is its only Error::Internal.
        Secret::File(f) => match (std::fs::metadata(f), hook.secret.load()) {
            (Err(e), _) => r.fail(
                "secret",
                format!("secret_file {}: {e}", f.display()),
                format!(
                    "write the secret (the one set in the forge) to {} and chmod 600 it",
                    f.display()
                ),
            ),
            (Ok(_), Err(Error::Internal(_))) => r.fail(
                "secret",
                format!("secret_file {} is empty", f.display()),
                "write the secret set in the forge into it",
            ),
            (Ok(_), Err(e)) => r.fail(
                "secret",
                format!("{e}"),
                format!(
                    "chown root:{user} {f} && chmod 640 {f} (readable by the web server's group)",
                    f = f.display()
                ),
            ),
            (Ok(m), Ok(_)) if m.permissions().mode() & 0o004 != 0 => r.fail(
                "secret",
                format!(
                    "secret_file {} is readable by everyone (mode {:o})",
                    f.display(),
                    m.permissions().mode() & 0o777
                ),
                format!("chmod 600 {} (or 640 with the web server's group)", f.display()),
            ),
            (Ok(m), Ok(_)) => r.ok(
                "secret",
                format!(
                    "secret_file {} is set (mode {:o})",
                    f.display(),
                    m.permissions().mode() & 0o777
                ),
            ),
        },
    }
    say_padding(hook, r);
}

/// A secret with spaces or tabs around it (pasted so): deploy-hook uses what is between,
/// and the forge must have just that too. A trailing newline is what every editor adds,
/// and not worth a line.
fn say_padding(hook: &Hook, r: &mut Report) {
    let Ok(written) = hook.secret.load_as_written() else {
        return;
    };
    let mut end = written.as_slice();
    while let [rest @ .., b'\n' | b'\r'] = end {
        end = rest;
    }
    if end.is_empty() || end.trim_ascii().len() == end.len() {
        return;
    }
    let whose = match &hook.secret {
        Secret::File(f) => format!("secret_file {}", f.display()),
        Secret::Inline(_) => "the secret".into(),
    };
    let forge = match (hook.provider, hook.gitee_mode) {
        (Provider::Gitlab, _) | (Provider::Gitee, GiteeMode::Password) => {
            "the forge sends it in a header, where HTTP drops such spaces anyway"
        }
        _ => "the forge signs with the secret it keeps, so it must not have them either",
    };
    r.warn(
        "secret spaces",
        format!(
            "{whose} has spaces or tabs around the secret: they are ignored, the secret is what is between them ({forge}: paste it there without them)"
        ),
    );
}

/// Gitee hooks in signing mode with the same secret (the same `secret_file`, or the same
/// secret in two files or inline). Gitee's signature covers only the timestamp and the
/// secret, not the hook or the body, and each hook remembers only the tokens it has seen:
/// a delivery to one, replayed to the other within `max_age_secs`, is taken. A secret this
/// user cannot read is not compared (its own line says so); none is ever printed.
pub(super) fn check_shared(cfg: &Config, r: &mut Report) {
    let signing: Vec<(&Hook, Option<Vec<u8>>)> = cfg
        .hooks
        .values()
        .filter(|h| h.provider == Provider::Gitee && h.gitee_mode == GiteeMode::Sign)
        .map(|h| (h, h.secret.load().ok()))
        .collect();
    for (i, (a, sa)) in signing.iter().enumerate() {
        for (b, sb) in &signing[i + 1..] {
            let same_file = matches!((&a.secret, &b.secret), (Secret::File(x), Secret::File(y)) if x == y);
            let same_secret = matches!((sa, sb), (Some(x), Some(y)) if x == y);
            if same_file || same_secret {
                r.warn(
                    "shared",
                    format!(
                        "Gitee hooks {} and {} sign with the same secret{}: Gitee's signature covers only the timestamp and the secret, so a delivery to one can be replayed to the other; give each hook its own secret (a secret_file each, and the new one set in that hook's Gitee webhook)",
                        a.name,
                        b.name,
                        match (&a.secret, same_file) {
                            (Secret::File(f), true) => format!(" (secret_file {})", f.display()),
                            _ => String::new(),
                        }
                    ),
                );
            }
        }
    }
}
