//! `deploy-hook rollback`: the published site back to the release before (or a named one),
//! locally or on every web host, all or none, under the build lock like a build.

use std::io::Write;
use std::path::Path;

use super::{become_owner, hook_and_state};
use crate::build::queue;
use crate::build::state::HookState;
use crate::config::{Config, Destinations};
use crate::error::{exit, Error, Result};
use crate::publish::{self, hosts, FailureKind};
use crate::sys::log::{q, Log};
use crate::sys::text::printable;
use crate::sys::time;

/// Records a rollback in status.json: the live release and the `last_rollback` line.
fn record_rollback(state: &HookState, from: &Option<String>, target: &str) -> Result<()> {
    state.update_status(|s| {
        s.live_release = Some(target.to_string());
        s.last_rollback = Some(crate::build::state::Rollback {
            from: from.clone(),
            to: target.to_string(),
            at: time::rfc3339(time::now()),
        });
    })?;
    Ok(())
}

fn log_rollback(log: &mut Log, hook: &str, from: Option<&str>, target: &str) {
    log.info(&format!(
        "rollback hook={hook} from={} to={}",
        q(from.unwrap_or("-")),
        q(target)
    ));
}

pub(super) fn rollback(config: &Path, name: &str, to: Option<&str>, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let (hook, state) = hook_and_state(&cfg, name)?;
    let Some(p) = &hook.publish else {
        return Err(Error::Usage(format!(
            "hook {} does not publish ([hooks.{}.publish] is not set), so there is nothing to roll back",
            hook.name, hook.name
        )));
    };
    become_owner(&cfg, Some(&hook.name), true)?;
    state.ensure()?;
    let mut log = Log::open(&cfg.log);
    if queue::is_building(&state)? {
        writeln!(out, "{}: a build is running; waiting for it to finish", hook.name).ok();
    }
    // Like every holder of the build lock, it hands over a delivery that came meanwhile.
    let (from, target) = queue::while_locked(&cfg, hook, &state, || {
        let env = hook.child_env(&state.home_dir());
        let null = crate::build::buildlog::BuildLog::discard().map_err(|e| Error::io("cannot open /dev/null", e))?;
        let tools = publish::Tools {
            env: &env,
            state_dir: &state.dir,
            upload_timeout: hook.step_timeout,
            log: &null,
        };
        let (from, target) = publish::rollback(p, to, &tools).map_err(|f| match (f.kind, f.target) {
            (FailureKind::Refused, _) => Error::Usage(f.message),
            (_, Some(t)) => Error::Internal(format!(
                "rollback failed at {t}; every target serves what it served before: {}",
                f.message
            )),
            (_, None) => Error::Internal(f.message),
        })?;
        record_rollback(&state, &from, &target)?;
        Ok((from, target))
    })?;
    log_rollback(&mut log, &hook.name, from.as_deref(), &target);
    let (what, verb) = match &p.to {
        Destinations::Local(to) => (to.display().to_string(), "serves"),
        Destinations::Hosts(h) => {
            let names: Vec<String> = hosts::targets(h).into_iter().map(|t| t.name).collect();
            (names.join(", "), "serve")
        }
    };
    writeln!(
        out,
        "{}: {what} now {verb} release {} (was {})",
        hook.name,
        printable(&target, 1000),
        printable(from.as_deref().unwrap_or("-"), 1000)
    )
    .ok();
    Ok(exit::OK)
}
