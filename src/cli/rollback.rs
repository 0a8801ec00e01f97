//! `deploy-hook rollback` and `deploy-hook resume`: the published site back to the release
//! that was live before (or a named one), locally or on every web host, all or none, under
//! the build lock like a build; and the hold that a rollback puts on the hook, which
//! `resume` lifts.
//!
//! A rollback holds the hook (as Netlify locks auto publishing when an older deploy is
//! published, and Vercel stops assigning new deployments after an instant rollback):
//! deliveries still build and make their releases, but nothing is switched, so a redelivery
//! of the bad commit cannot quietly publish it again. `resume` switches every destination
//! to the newest succeeded build's release and lifts the hold.

use std::io::Write;
use std::path::Path;

use super::{become_owner, hook_and_state};
use crate::build::buildlog::BuildLog;
use crate::build::state::{HookState, Status};
use crate::build::{queue, reporting};
use crate::config::{Config, Destinations, Hook, Publish};
use crate::error::{exit, Error, Result};
use crate::publish::{self, hosts, By, Choice, FailureKind, Held};
use crate::sys::log::{q, Log};
use crate::sys::text::printable;
use crate::sys::time;

/// What is switched: the local `to`, every target of the web hosts, the bucket; and the
/// verb for it.
fn switched_what(p: &Publish) -> (String, &'static str) {
    let mut names: Vec<String> = match &p.to {
        Destinations::Local(to) => vec![to.display().to_string()],
        Destinations::Hosts(h) => hosts::targets(h).into_iter().map(|t| t.name).collect(),
        Destinations::Bucket { local, .. } => local.iter().map(|to| to.display().to_string()).collect(),
    };
    if let Some(b) = p.bucket() {
        names.push(format!("bucket {}", b.remote));
    }
    let verb = if names.len() == 1 { "serves" } else { "serve" };
    (names.join(", "), verb)
}

/// The hook's publish, or why there is nothing to switch.
fn publish_of<'a>(hook: &'a Hook, what: &str) -> Result<&'a Publish> {
    hook.publish.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "hook {} does not publish ([hooks.{}.publish] is not set), so there is nothing to {what}",
            hook.name, hook.name
        ))
    })
}

/// Runs `f` with the hook's build lock held and the tools to switch its destinations; a
/// running build is waited for first (and said so). Like every holder of the build lock,
/// it hands over a delivery that came meanwhile.
fn locked<T>(
    cfg: &Config,
    hook: &Hook,
    state: &HookState,
    out: &mut dyn Write,
    f: impl FnOnce(&publish::Tools) -> Result<T>,
) -> Result<T> {
    state.ensure()?;
    if queue::is_building(state)? {
        writeln!(out, "{}: a build is running; waiting for it to finish", hook.name).ok();
    }
    queue::while_locked(cfg, hook, state, || {
        let env = hook.child_env(&state.home_dir());
        let null = BuildLog::discard().map_err(|e| Error::io("cannot open /dev/null", e))?;
        let tools = publish::Tools {
            env: &env,
            state_dir: &state.dir,
            upload_timeout: hook.step_timeout,
            log: &null,
            repo: &hook.repo,
        };
        f(&tools)
    })
}

/// Switches every destination to what `choice` means, all or none.
fn switch(p: &Publish, choice: Choice, tools: &publish::Tools) -> Result<(Option<String>, String)> {
    publish::switch_to(p, choice, tools).map_err(|f| match (f.kind, f.target) {
        (FailureKind::Refused, _) => Error::Usage(f.message),
        (_, Some(t)) => Error::Internal(format!(
            "switch failed at {t}; every target that could be put back serves what it served before: {}",
            f.message
        )),
        (_, None) => Error::Internal(f.message),
    })
}

pub(super) fn rollback(config: &Path, name: &str, to: Option<&str>, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let (hook, state) = hook_and_state(&cfg, name)?;
    let p = publish_of(hook, "roll back")?;
    become_owner(&cfg, Some(&hook.name), true)?;
    let mut log = Log::open(&cfg.log);
    let (from, target, status) = locked(&cfg, hook, &state, out, |tools| {
        let history = state.read_status()?.live_history;
        let choice = match to {
            Some(named) => Choice::Named(named),
            None => Choice::Back(&history),
        };
        let (from, target) = switch(p, choice, tools)?;
        let status = state.update_status(|s| {
            s.went_live(&target, By::Rollback);
            let now = time::rfc3339(time::now());
            s.last_rollback = Some(crate::build::state::Rollback {
                from: from.clone(),
                to: target.clone(),
                at: now.clone(),
            });
            // A second rollback keeps the hold it is part of.
            let since = s.held.take().map(|h| h.since).unwrap_or(now);
            s.held = Some(Held {
                since,
                release: target.clone(),
            });
        })?;
        Ok((from, target, status))
    })?;
    reporting::page_now(hook, &state, &cfg);
    log.info(&format!(
        "rollback hook={} from={} to={} held=yes",
        hook.name,
        q(from.as_deref().unwrap_or("-")),
        q(&target)
    ));
    let (what, verb) = switched_what(p);
    writeln!(
        out,
        "{}: {what} now {verb} release {} (was {})",
        hook.name,
        printable(&target, 1000),
        printable(from.as_deref().unwrap_or("-"), 1000)
    )
    .ok();
    writeln!(out, "{}", held_line(&hook.name, &status)).ok();
    Ok(exit::OK)
}

/// What a held hook does, and how it ends, for the person who just rolled back.
fn held_line(hook: &str, status: &Status) -> String {
    let since = status.held.as_ref().map(|h| h.since.as_str()).unwrap_or("-");
    format!(
        "{hook}: held since {since}: deliveries still build and make their releases, but no target is switched to them until `deploy-hook resume {hook}` (a further `rollback` goes further back)"
    )
}

pub(super) fn resume(config: &Path, name: &str, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let (hook, state) = hook_and_state(&cfg, name)?;
    let p = publish_of(hook, "resume")?;
    become_owner(&cfg, Some(&hook.name), true)?;
    let mut log = Log::open(&cfg.log);
    let done = locked(&cfg, hook, &state, out, |tools| {
        let status = state.read_status()?;
        let Some(held) = status.held else {
            return Ok(None);
        };
        // The newest succeeded build's release: what the hook would serve had it not been held.
        let newest = status.base.and_then(|b| b.release);
        let switched = match &newest {
            Some(r) => Some(switch(p, Choice::Named(r), tools)?),
            None => None,
        };
        state.update_status(|s| {
            if let Some((_, to)) = &switched {
                s.went_live(to, By::Resume);
            }
            s.held = None;
        })?;
        Ok(Some((held, switched)))
    })?;
    let Some((held, switched)) = done else {
        writeln!(
            out,
            "{}: not held (no rollback since the last resume); nothing to do",
            hook.name
        )
        .ok();
        return Ok(exit::OK);
    };
    let (from, to) = match &switched {
        Some((from, to)) => (from.as_deref().unwrap_or("-"), to.as_str()),
        None => (held.release.as_str(), held.release.as_str()),
    };
    reporting::page_now(hook, &state, &cfg);
    log.info(&format!("resume hook={} from={} to={}", hook.name, q(from), q(to)));
    let (what, verb) = switched_what(p);
    match &switched {
        Some(_) => writeln!(
            out,
            "{}: hold lifted (it was held since {}); {what} now {verb} release {}, the newest succeeded build's (was {})",
            hook.name,
            printable(&held.since, 100),
            printable(to, 1000),
            printable(from, 1000)
        ),
        None => writeln!(
            out,
            "{}: hold lifted (it was held since {}); no build has succeeded with a release, so {what} still {verb} {}",
            hook.name,
            printable(&held.since, 100),
            printable(to, 1000)
        ),
    }
    .ok();
    Ok(exit::OK)
}
