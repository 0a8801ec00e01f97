//! Reaching the remote as the build will: `git ls-remote` with the build's environment
//! (cleared, the hook's PATH and HOME, its `env`), no terminal to prompt on, and a time
//! limit, so a wrong token, a missing deploy key or an unknown host key shows up here and
//! not in the first build's log. And never printing a remote's credentials.

use std::path::Path;
use std::time::Duration;

use super::{Ctx, Report};
use crate::config::Hook;
use crate::sys::process::{Exit, Process};

/// How long the remote gets to answer; a build's fetch has `step_timeout_secs`, but a
/// remote that needs more than this just to list its branches is a problem worth seeing.
const LS_REMOTE_TIMEOUT: Duration = Duration::from_secs(20);

/// A remote URL without its credentials, as git prints one: `https://user:TOKEN@host/x`
/// becomes `https://host/x`. An scp-like `git@host:x` names a user, not a secret, and stays.
pub fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let without_user = match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..start], &rest[at + 1..]),
        None => url.to_string(),
    };
    // `?private_token=...` (GitLab) and the like: keep the names, hide the values.
    match without_user.split_once('?') {
        Some((base, query)) => {
            let query = query.split('#').next().unwrap_or_default();
            let names: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) => format!("{k}=***"),
                    None => kv.to_string(),
                })
                .collect();
            format!("{base}?{}", names.join("&"))
        }
        None => without_user,
    }
}

/// Every URL in a line of git's output, redacted (git redacts its own, but not every
/// helper it runs does).
fn redact_text(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let quoted = w.trim_matches(|c| c == '\'' || c == '"');
            if quoted.contains("://") {
                w.replace(quoted, &redact_url(quoted))
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

enum Outcome {
    Done { ok: bool, stdout: String, stderr: String },
    TimedOut,
    NotRun(String),
}

/// Runs git in its own session (no controlling terminal: ssh cannot ask about a host key
/// or a passphrase, as in a build), stopping its whole group after the time limit.
fn run_git(hook: &Hook, home: &Path, args: &[&str], limit: Duration) -> Outcome {
    let mut p = Process::new("git");
    p.args(args)
        .env(&hook.child_env(home))
        .cwd(&hook.repo)
        .new_session()
        .timeout(limit);
    let done = p.output();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match done.exit {
        Exit::TimedOut => Outcome::TimedOut,
        Exit::NotStarted(why) if why.contains("not found on PATH") => {
            Outcome::NotRun("git is not on the hook's path".into())
        }
        Exit::NotStarted(why) => Outcome::NotRun(why),
        exit => Outcome::Done {
            ok: exit.success(),
            stdout: text(&done.stdout),
            stderr: text(&done.stderr),
        },
    }
}

/// The fix for what git said, for the usual ways a remote refuses.
fn advice(err: &str, ctx: &Ctx, home: &Path) -> String {
    let user = &ctx.user;
    let e = err.to_ascii_lowercase();
    if e.contains("dubious ownership") {
        format!(
            "the remote is a local repository owned by another user: add it to safe.directory in {}/.gitconfig (git config --file {}/.gitconfig --add safe.directory PATH)",
            home.display(),
            home.display()
        )
    } else if e.contains("host key verification failed") {
        format!(
            "as {user}: ssh-keyscan HOST >> {}/.ssh/known_hosts (check the key's fingerprint), or set GIT_SSH_COMMAND in the hook's env",
            home.display()
        )
    } else if e.contains("permission denied (publickey") || e.contains("could not read from remote") {
        format!(
            "give {user} a deploy key the forge accepts: in {}/.ssh, or env GIT_SSH_COMMAND = \"ssh -i KEY -o IdentitiesOnly=yes\"",
            home.display()
        )
    } else if e.contains("could not read username")
        || e.contains("authentication failed")
        || e.contains("terminal prompts disabled")
        || e.contains("403")
        || e.contains("401")
    {
        "the remote refuses the credentials: use a deploy key, or a token the forge accepts in the remote URL (git remote set-url)".into()
    } else if e.contains("could not resolve") || e.contains("connect") || e.contains("timed out") {
        "check the host name and that this machine reaches it (DNS, firewall, proxy)".into()
    } else {
        format!("run, as {user}: git -C REPO ls-remote REMOTE, and fix what it says")
    }
}

pub(super) fn check_reachable(ctx: &Ctx, hook: &Hook, home: &Path, r: &mut Report) {
    let branch_ref = format!("refs/heads/{}", hook.branch);
    let args = ["ls-remote", "--heads", "--", hook.remote.as_str(), branch_ref.as_str()];
    let user = &ctx.user;
    match run_git(hook, home, &args, LS_REMOTE_TIMEOUT) {
        Outcome::Done { ok: true, stdout, .. } => match stdout.split_whitespace().next() {
            Some(commit) => r.ok(
                "remote reachable",
                format!(
                    "remote {} answers (as {}); {} is at {}",
                    hook.remote,
                    crate::sys::privilege::current_user_name(),
                    hook.branch,
                    &commit[..commit.len().min(10)]
                ),
            ),
            None => r.fail(
                "remote reachable",
                format!("remote {} has no branch {}", hook.remote, hook.branch),
                format!(
                    "push the branch, or set branch = \"...\" in [hooks.{}] to one the remote has",
                    hook.name
                ),
            ),
        },
        Outcome::Done { stderr, .. } => {
            let line = stderr
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("fatal:") || l.contains("denied") || l.contains("failed"))
                .or_else(|| stderr.lines().map(str::trim).find(|l| !l.is_empty()))
                .unwrap_or("no output");
            r.fail(
                "remote reachable",
                format!(
                    "git ls-remote {} failed as {user} with the build's environment: {}",
                    hook.remote,
                    redact_text(line)
                ),
                advice(&stderr, ctx, home),
            );
        }
        Outcome::TimedOut => r.fail(
            "remote reachable",
            format!(
                "git ls-remote {} did not answer within {} s (as {user}, with no terminal to prompt on)",
                hook.remote,
                LS_REMOTE_TIMEOUT.as_secs()
            ),
            "check that this machine reaches the remote's host (firewall, proxy), and that ssh needs no prompt (BatchMode)",
        ),
        Outcome::NotRun(why) => r.fail(
            "remote reachable",
            format!("git ls-remote could not be run: {why}"),
            "install git, or add its folder to the hook's path",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_cut_out_of_urls_as_git_does() {
        assert_eq!(
            redact_url("https://user:TOKEN@gitee.com/a/b.git"),
            "https://gitee.com/a/b.git"
        );
        assert_eq!(redact_url("https://oauth2:x@h:8443/a?b=c@d"), "https://h:8443/a?b=***");
        assert_eq!(
            redact_url("https://127.0.0.1:9/x.git?private_token=QSECRET"),
            "https://127.0.0.1:9/x.git?private_token=***"
        );
        assert_eq!(redact_url("https://TOKEN@h"), "https://h");
        assert_eq!(redact_url("https://h/a@b"), "https://h/a@b");
        assert_eq!(redact_url("git@github.com:a/b.git"), "git@github.com:a/b.git");
        assert_eq!(redact_url("/srv/git/docs.git"), "/srv/git/docs.git");
        assert_eq!(
            redact_text("fatal: unable to access 'https://u:T@h/x/': 403"),
            "fatal: unable to access 'https://h/x/': 403"
        );
    }
}
