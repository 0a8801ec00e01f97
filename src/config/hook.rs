//! One `[hooks.NAME]` table, from its raw shape to a checked `Hook`: a small function per
//! key or group of keys, each with its default and the error that names the key and line.
//! The checks run in the order the keys are documented, so that of several mistakes the
//! first one a person reads in the file is the one reported. `[hooks.NAME.publish]` and
//! `[hooks.NAME.previews]` have files of their own (`publish.rs`, `previews.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::RawHook;
use super::{
    choose, default_steps, inside_relative, valid_env_name, valid_git_name, At, Ctx, GiteeMode, Hook, Mode, OnBusy,
    Provider, Secret, Step,
};
use crate::error::Result;

pub(super) fn validate_hook(ctx: &Ctx, name: &str, line: usize, raw: RawHook) -> Result<Hook> {
    let at = At { ctx, name, line };
    let provider = provider(&at, &raw.provider)?;
    let secret = secret(&at, raw.secret, raw.secret_file)?;
    let (gitee_mode, max_age_secs) = gitee(&at, provider, &raw.gitee_mode, raw.max_age_secs)?;
    let repo = repo(&at, &raw.repo)?;
    let remote = remote(&at, raw.remote)?;
    let branch = branch(&at, raw.branch)?;
    let clean = clean(&at, raw.clean)?;
    let steps = steps(&at, raw.steps)?;
    let env = env(&at, raw.env)?;
    let path = path(&at, raw.path)?;
    let step_timeout = step_timeout(&at, raw.step_timeout_secs)?;
    let nice = nice(&at, raw.nice)?;
    let mode = choose(
        ctx,
        &at.key("mode"),
        &raw.mode,
        Mode::Async,
        &[("async", Mode::Async), ("sync", Mode::Sync)],
    )?;
    let on_busy = choose(
        ctx,
        &at.key("on_busy"),
        &raw.on_busy,
        OnBusy::Queue,
        &[
            ("queue", OnBusy::Queue),
            ("reject", OnBusy::Reject),
            ("supersede", OnBusy::Supersede),
        ],
    )?;
    let keep_logs = keep_logs(&at, raw.keep_logs)?;
    let log_max_bytes = log_max_bytes(&at, raw.log_max_bytes)?;
    let publish = super::publish::validate(&at, &repo, raw.publish)?;
    let report = super::report::report(&at, provider, raw.report)?;
    let page = super::report::page(&at, &repo, publish.as_ref().and_then(|p| p.local_to()), raw.page)?;
    let notify = super::report::notify(&at, raw.notify)?;
    let previews = super::previews::validate(&at, &repo, publish.as_ref(), raw.previews)?;

    Ok(Hook {
        name: name.to_string(),
        provider,
        secret,
        gitee_mode,
        max_age_secs,
        repo,
        remote,
        branch,
        clean,
        steps,
        env,
        path,
        step_timeout,
        nice,
        mode,
        on_busy,
        keep_logs,
        log_max_bytes,
        on_failure: raw.on_failure,
        on_success: raw.on_success,
        publish,
        report,
        page,
        notify,
        previews,
    })
}

fn provider(at: &At, raw: &Spanned<String>) -> Result<Provider> {
    choose(
        at.ctx,
        &at.key("provider"),
        &Some(raw.clone()),
        Provider::Gitee,
        &[
            ("gitee", Provider::Gitee),
            ("github", Provider::Github),
            ("gitlab", Provider::Gitlab),
            ("gitea", Provider::Gitea),
            ("gogs", Provider::Gogs),
        ],
    )
}

/// Exactly one of `secret` and `secret_file`, never empty: a hook without a secret would
/// accept anyone's delivery.
fn secret(at: &At, inline: Option<String>, file: Option<String>) -> Result<Secret> {
    let table = format!("hooks.{}", at.name);
    match (inline, file) {
        (Some(_), Some(_)) => Err(at.on_table(table, "set secret or secret_file, not both")),
        (None, None) => Err(at.on_table(table, "no secret: set secret_file = \"/etc/deploy-hook/NAME.secret\" (or secret = \"...\"); a hook without a secret would accept anyone's delivery")),
        (Some(s), None) if s.is_empty() => Err(at.on_table(table, "secret is empty")),
        (Some(s), None) => Ok(Secret::Inline(s)),
        (None, Some(f)) if f.is_empty() => Err(at.on_table(table, "secret_file is empty")),
        (None, Some(f)) => Ok(Secret::File(at.ctx.resolve(&f))),
    }
}

/// `gitee_mode` and `max_age_secs`, which only Gitee's signing has.
fn gitee(
    at: &At,
    provider: Provider,
    mode: &Option<Spanned<String>>,
    max_age_secs: Option<u64>,
) -> Result<(GiteeMode, u64)> {
    if provider != Provider::Gitee {
        if let Some(m) = mode {
            return at
                .ctx
                .err(m.span(), &at.key("gitee_mode"), "applies only to provider = \"gitee\"");
        }
        if max_age_secs.is_some() {
            return Err(at.on_table(at.key("max_age_secs"), "applies only to provider = \"gitee\""));
        }
    }
    let gitee_mode = choose(
        at.ctx,
        &at.key("gitee_mode"),
        mode,
        GiteeMode::Sign,
        &[("sign", GiteeMode::Sign), ("password", GiteeMode::Password)],
    )?;
    let max_age_secs = max_age_secs.unwrap_or(3600);
    if max_age_secs == 0 || max_age_secs > 7 * 86_400 {
        return Err(at.on_table(at.key("max_age_secs"), "must be between 1 and 604800 seconds"));
    }
    Ok((gitee_mode, max_age_secs))
}

fn repo(at: &At, raw: &Spanned<String>) -> Result<PathBuf> {
    if raw.get_ref().is_empty() {
        return at
            .ctx
            .err(raw.span(), &at.key("repo"), "must name the git working tree to build");
    }
    Ok(at.ctx.resolve(raw.get_ref()))
}

fn remote(at: &At, raw: Option<Spanned<String>>) -> Result<String> {
    match raw {
        None => Ok("origin".to_string()),
        Some(r) if valid_git_name(r.get_ref()) => Ok(r.into_inner()),
        Some(r) => at.ctx.err(
            r.span(),
            &at.key("remote"),
            format!("{:?} is not a valid remote name", r.get_ref()),
        ),
    }
}

/// The branch, without a `refs/heads/` prefix if one was written.
fn branch(at: &At, raw: Option<Spanned<String>>) -> Result<String> {
    let Some(b) = raw else {
        return Ok("main".to_string());
    };
    let name = b.get_ref().strip_prefix("refs/heads/").unwrap_or(b.get_ref());
    if !valid_git_name(name) {
        return at.ctx.err(
            b.span(),
            &at.key("branch"),
            format!("{:?} is not a valid branch name", b.get_ref()),
        );
    }
    Ok(name.to_string())
}

/// Relative paths inside the repo: `clean` never removes anything outside it.
fn clean(at: &At, raw: Option<Spanned<Vec<String>>>) -> Result<Vec<PathBuf>> {
    let Some(c) = raw else {
        return Ok(Vec::new());
    };
    let mut clean = Vec::new();
    for p in c.get_ref() {
        match inside_relative(p) {
            Some(rel) => clean.push(rel),
            None => {
                return at.ctx.err(
                    c.span(),
                    &at.key("clean"),
                    format!("{p:?} is not a relative path inside repo; clean never removes anything outside the repo"),
                )
            }
        }
    }
    Ok(clean)
}

fn steps(at: &At, raw: Option<Spanned<Vec<Step>>>) -> Result<Vec<Step>> {
    match raw {
        None => Ok(default_steps()),
        Some(s) if s.get_ref().is_empty() => at.ctx.err(
            s.span(),
            &at.key("steps"),
            "no steps: leave the key out for the default (pnpm install, pnpm docs:build)",
        ),
        Some(s) => Ok(s.into_inner()),
    }
}

/// The steps' extra variables: plain names, not PATH (the `path` key) and not ours
/// (`DEPLOY_HOOK_*`) or a request header's (`HTTP_*`).
fn env(at: &At, raw: Option<Spanned<BTreeMap<String, String>>>) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    let Some(e) = raw else {
        return Ok(env);
    };
    let span = e.span();
    let key = at.key("env");
    for (k, v) in e.into_inner() {
        if !valid_env_name(&k) {
            return at.ctx.err(span, &key, format!("{k:?} is not a valid variable name"));
        }
        if k == "PATH" {
            return at
                .ctx
                .err(span, &key, "set PATH with the hook's `path` key, not in env");
        }
        if k.starts_with("DEPLOY_HOOK_") || k.starts_with("HTTP_") {
            return at.ctx.err(span, &key, format!("{k} is reserved"));
        }
        if v.contains('\0') {
            return at.ctx.err(span, &key, format!("{k} holds a NUL byte"));
        }
        env.insert(k, v);
    }
    Ok(env)
}

fn path(at: &At, raw: Option<Spanned<String>>) -> Result<String> {
    match raw {
        None => Ok("/usr/local/bin:/usr/bin:/bin".to_string()),
        Some(p) if p.get_ref().is_empty() || !p.get_ref().split(':').all(|d| d.starts_with('/')) => at.ctx.err(
            p.span(),
            &at.key("path"),
            "must be a ':'-separated list of absolute folders",
        ),
        Some(p) => Ok(p.into_inner()),
    }
}

fn step_timeout(at: &At, raw: Option<Spanned<u64>>) -> Result<Duration> {
    match raw {
        None => Ok(Duration::from_secs(1800)),
        Some(t) if *t.get_ref() == 0 => at.ctx.err(t.span(), &at.key("step_timeout_secs"), "must be at least 1"),
        Some(t) => Ok(Duration::from_secs(*t.get_ref())),
    }
}

fn nice(at: &At, raw: Option<Spanned<i64>>) -> Result<i32> {
    match raw {
        None => Ok(10),
        Some(n) if (0..=19).contains(n.get_ref()) => Ok(*n.get_ref() as i32),
        Some(n) => at.ctx.err(n.span(), &at.key("nice"), "must be between 0 and 19"),
    }
}

fn keep_logs(at: &At, raw: Option<Spanned<u64>>) -> Result<usize> {
    match raw {
        None => Ok(30),
        Some(k) if *k.get_ref() == 0 => at.ctx.err(k.span(), &at.key("keep_logs"), "must be at least 1"),
        Some(k) => Ok(*k.get_ref() as usize),
    }
}

/// The cap of a build log when the config sets none: 8 MiB, far more than a site's build
/// prints, and 240 MB at most for the 30 logs kept by default.
const DEFAULT_LOG_MAX_BYTES: u64 = 8 << 20;

/// The smallest cap: room for a build's own lines and some of its output.
pub const MIN_LOG_MAX_BYTES: u64 = 64 << 10;

fn log_max_bytes(at: &At, raw: Option<Spanned<u64>>) -> Result<u64> {
    match raw {
        None => Ok(DEFAULT_LOG_MAX_BYTES),
        Some(m) if *m.get_ref() < MIN_LOG_MAX_BYTES => at.ctx.err(
            m.span(),
            &at.key("log_max_bytes"),
            format!("must be at least {MIN_LOG_MAX_BYTES} (64 KiB)"),
        ),
        Some(m) => Ok(*m.get_ref()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{err, parse, MINIMAL};
    use super::super::{Cmd, Step};

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                "provider = \"gitee\"",
                "provider = \"bitbucket\"",
                "hooks.docs.provider",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nmode = \"later\"",
                "hooks.docs.mode",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\non_busy = \"drop\"",
                "hooks.docs.on_busy",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nnice = 25",
                "hooks.docs.nice",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nbranch = \"-x\"",
                "hooks.docs.branch",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nremote = \"a b\"",
                "hooks.docs.remote",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nclean = [\"../etc\"]",
                "hooks.docs.clean",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nclean = [\"/etc\"]",
                "hooks.docs.clean",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nsteps = []",
                "hooks.docs.steps",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nenv = { PATH = \"/x\" }",
                "hooks.docs.env",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nenv = { DEPLOY_HOOK_NAME = \"x\" }",
                "hooks.docs.env",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\npath = \"bin\"",
                "hooks.docs.path",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nstep_timeout_secs = 0",
                "hooks.docs.step_timeout_secs",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nkeep_logs = 0",
                "hooks.docs.keep_logs",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nlog_max_bytes = 1000",
                "hooks.docs.log_max_bytes",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\nmax_age_secs = 0",
                "hooks.docs.max_age_secs",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\ngitee_mode = \"hmac\"",
                "hooks.docs.gitee_mode",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\n[hooks.docs.publish]\nfrom = \"/abs\"\nto = \"/var/www/x\"",
                "hooks.docs.publish.from",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\n[hooks.docs.publish]\nfrom = \"dist\"\nto = \"/var/www/x\"\nkeep = 1",
                "hooks.docs.publish.keep",
            ),
            (
                "repo = \"/srv/docs\"",
                "repo = \"/srv/docs\"\n[hooks.docs.publish]\nfrom = \"dist\"\nto = \"/srv/docs/out\"",
                "hooks.docs.publish.to",
            ),
        ];
        for (from, to, key) in cases {
            let text = MINIMAL.replace(from, to);
            let e = err(&text);
            assert!(e.contains(key), "{text}\n-> {e}");
            assert!(e.starts_with("/etc/deploy-hook/config.toml:"), "{e}");
        }
    }

    #[test]
    fn steps_must_be_commands() {
        for bad in [
            "steps = [[]]",
            "steps = [42]",
            "steps = [\"  \"]",
            "steps = [[\"\", \"x\"]]",
            "on_failure = []",
        ] {
            let e = err(&format!("{MINIMAL}{bad}\n"));
            assert!(e.contains(":5"), "{bad} -> {e}");
        }
    }

    #[test]
    fn steps_may_be_tables_with_if_changed() {
        let c = parse(&format!(
            "{MINIMAL}steps = [{{ run = [\"pnpm\", \"install\"], if_changed = [\"package.json\", \"docs/**\"] }}, {{ run = \"make\" }}, [\"pnpm\", \"docs:build\"]]\n"
        ))
        .unwrap();
        let h = &c.hooks["docs"];
        assert_eq!(h.steps[0].run, Cmd::Argv(vec!["pnpm".into(), "install".into()]));
        assert_eq!(h.steps[0].if_changed, ["package.json", "docs/**"]);
        assert_eq!(h.steps[1], Step::always(Cmd::Shell("make".into())));
        assert_eq!(
            h.steps[2],
            Step::always(Cmd::Argv(vec!["pnpm".into(), "docs:build".into()]))
        );
        for bad in [
            "steps = [{ run = [\"x\"], if_changed = [] }]",
            "steps = [{ run = [\"x\"], if_changed = [\"/etc/passwd\"] }]",
            "steps = [{ if_changed = [\"a\"] }]",
            "steps = [{ run = [\"x\"], when = \"a\" }]",
            "steps = [{ run = [] }]",
        ] {
            let e = err(&format!("{MINIMAL}{bad}\n"));
            assert!(e.contains(":5"), "{bad} -> {e}");
        }
    }

    #[test]
    fn secrets_exactly_one_and_never_empty() {
        let none = MINIMAL.replace("secret = \"s3cret\"\n", "");
        assert!(err(&none).contains("no secret"));
        let both = MINIMAL.replace("secret = \"s3cret\"", "secret = \"a\"\nsecret_file = \"/x\"");
        assert!(err(&both).contains("not both"));
        let empty = MINIMAL.replace("s3cret", "");
        assert!(err(&empty).contains("secret is empty"));
        let e = err(&MINIMAL
            .replace("\"gitee\"", "\"github\"")
            .replace("repo =", "gitee_mode = \"sign\"\nrepo ="));
        assert!(e.contains("gitee_mode") && e.contains("only"), "{e}");
    }
}
