//! `deploy-hook sign`: the headers a forge would send with a correctly signed push, as
//! environment assignments for a local run of the CGI and as curl flags, so that a person can
//! test a hook without the forge. A password-style token is never printed unless asked.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{hook_and_state, SignFormat};
use crate::config::{Config, GiteeMode, Hook, Provider, Secret};
use crate::delivery::verify;
use crate::error::{exit, Error, Result};
use crate::sys::text::shell_quote;
use crate::sys::time;

/// What `sign` was asked for besides the hook.
pub struct SignOptions {
    pub body: Option<PathBuf>,
    pub timestamp: Option<String>,
    pub format: Option<SignFormat>,
    pub show_secret: bool,
}

/// The headers a forge would send for `body`, in order.
fn signed_headers(
    hook: &Hook,
    secret: &Secret,
    body: &[u8],
    timestamp: &str,
    show_secret: bool,
) -> Result<Vec<(String, String)>> {
    let h = |k: &str, v: String| (k.to_string(), v);
    // A password-style token is the secret itself: point at the file instead of printing it.
    let password = || -> Result<String> {
        match (secret, show_secret) {
            (Secret::File(f), false) => Ok(format!("$(cat {})", shell_quote(&f.to_string_lossy()))),
            (Secret::Inline(_), false) => Err(Error::Usage(
                "this hook's token is the secret itself, which is inline in the config; pass --show-secret to print it"
                    .into(),
            )),
            (_, true) => Ok(String::from_utf8_lossy(&secret.load()?).into_owned()),
        }
    };
    let delivery = format!("manual-{}", time::now_ms());
    Ok(match hook.provider {
        Provider::Gitee => {
            let token = match hook.gitee_mode {
                GiteeMode::Sign => verify::gitee_sign_token(&secret.load()?, timestamp),
                GiteeMode::Password => password()?,
            };
            vec![
                h("User-Agent", "git-oschina-hook".into()),
                h("X-Gitee-Token", token),
                h("X-Gitee-Timestamp", timestamp.into()),
                h("X-Gitee-Event", "Push Hook".into()),
                h("X-Gitee-Ping", "false".into()),
            ]
        }
        Provider::Github => vec![
            h("X-GitHub-Event", "push".into()),
            h("X-GitHub-Delivery", delivery),
            h("X-Hub-Signature-256", verify::github_signature(&secret.load()?, body)),
        ],
        Provider::Gitlab => vec![
            h("X-Gitlab-Event", "Push Hook".into()),
            h("X-Gitlab-Token", password()?),
        ],
        Provider::Gitea => vec![
            h("X-Gitea-Event", "push".into()),
            h("X-Gitea-Delivery", delivery),
            h("X-Gitea-Signature", verify::gitea_signature(&secret.load()?, body)),
        ],
        Provider::Gogs => vec![
            h("X-Gogs-Event", "push".into()),
            h("X-Gogs-Delivery", delivery),
            h("X-Gogs-Signature", verify::gitea_signature(&secret.load()?, body)),
        ],
    })
}

/// Whether a header value is the `$(cat SECRET_FILE)` printed instead of a token.
fn reads_secret_file(v: &str) -> bool {
    v.starts_with("$(cat ") && v.ends_with(')')
}

/// `word` for a shell line: in double quotes when it holds `$(cat SECRET_FILE)`, which must
/// stay live (the file is read when the line runs), else quoted by `shell_quote`.
fn shell_word(word: &str, reads_file: bool) -> String {
    if reads_file {
        format!("\"{word}\"")
    } else {
        shell_quote(word)
    }
}

pub(super) fn sign(config: &Path, name: &str, opts: &SignOptions, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let (hook, _) = hook_and_state(&cfg, name)?;
    let (body, body_note) = match &opts.body {
        Some(f) => (
            std::fs::read(f).map_err(|e| Error::io(format!("cannot read --body {}", f.display()), e))?,
            format!("the body of {}", f.display()),
        ),
        None => {
            let b = format!("{{\"ref\":\"refs/heads/{}\"}}", hook.branch);
            let note = format!("this minimal push body (--body FILE signs another): {b}");
            (b.into_bytes(), note)
        }
    };
    // clap checked that a given timestamp is all digits.
    let timestamp = opts.timestamp.clone().unwrap_or_else(|| time::now_ms().to_string());
    let headers = signed_headers(hook, &hook.secret, &body, &timestamp, opts.show_secret)?;
    let format = match opts.format {
        None => "both",
        Some(SignFormat::Env) => "env",
        Some(SignFormat::Curl) => "curl",
    };
    let mut env_lines = vec![
        ("REQUEST_METHOD".to_string(), "POST".to_string()),
        ("PATH_INFO".into(), format!("/{}", hook.name)),
        ("CONTENT_TYPE".into(), "application/json".into()),
        ("CONTENT_LENGTH".into(), body.len().to_string()),
    ];
    env_lines.extend(
        headers
            .iter()
            .map(|(k, v)| (format!("HTTP_{}", k.to_ascii_uppercase().replace('-', "_")), v.clone())),
    );
    let mut text = String::new();
    if format == "both" {
        text.push_str(&format!(
            "# A signed push delivery for hook {} ({}{}), over {body_note}\n",
            hook.name,
            hook.provider.name(),
            if hook.provider == Provider::Gitee {
                format!(
                    ", {} mode, timestamp {timestamp}",
                    if hook.gitee_mode == GiteeMode::Sign {
                        "signing"
                    } else {
                        "password"
                    }
                )
            } else {
                String::new()
            }
        ));
        text.push_str("# For a local run: eval these lines, then: deploy-hook < BODY_FILE\n");
    }
    if format != "curl" {
        for (k, v) in &env_lines {
            text.push_str(&format!("export {k}={}\n", shell_word(v, reads_secret_file(v))));
        }
    }
    if format == "both" {
        text.push_str("# For curl (add --data-binary @BODY_FILE and the hook's URL):\n");
    }
    if format != "env" {
        let mut flags = vec![format!("-H {}", shell_word("Content-Type: application/json", false))];
        for (k, v) in &headers {
            let line = format!("{k}: {v}");
            flags.push(format!("-H {}", shell_word(&line, reads_secret_file(v))));
        }
        text.push_str(&flags.join(" "));
        text.push('\n');
    }
    out.write_all(text.as_bytes()).ok();
    Ok(exit::OK)
}
