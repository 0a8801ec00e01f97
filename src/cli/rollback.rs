//! `deploy-hook rollback`: the published site back to the release before (or a named one),
//! locally or on every web host, all or none, under the build lock like a build.

use std::io::Write;
use std::path::Path;

use super::{become_owner, hook_and_state};
use crate::build::queue;
use crate::build::state::HookState;
use crate::config::{self, Config, Hook};
use crate::error::{Error, Result};
use crate::publish;
use crate::publish::hosts;
use crate::sys::log::{q, Log};
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
    if let Some(fleet) = &hook.fleet {
        become_owner(&cfg, Some(&hook.name), true)?;
        return rollback_fleet(to, &cfg, hook, &state, fleet, out);
    }
    let publish = hook.publish.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "hook {} does not publish ([hooks.{}.publish] is not set), so there is nothing to roll back",
            hook.name, hook.name
        ))
    })?;
    become_owner(&cfg, Some(&hook.name), true)?;
    state.ensure()?;
    let mut log = Log::open(&cfg.log);
    if queue::is_building(&state)? {
        writeln!(out, "{}: a build is running; waiting for it to finish", hook.name).ok();
    }
    // Like every holder of the build lock, it hands over a delivery that came meanwhile.
    let (from, target) = queue::while_locked(&cfg, hook, &state, || {
        let from = publish::live(&publish.to);
        let target = publish::rollback_target(&publish.to, to).map_err(Error::Usage)?;
        publish::switch(&publish.to, &target)
            .map_err(|e| Error::io(format!("cannot switch {}", publish.to.display()), e))?;
        record_rollback(&state, &from, &target)?;
        Ok((from, target))
    })?;
    log_rollback(&mut log, &hook.name, from.as_deref(), &target);
    writeln!(
        out,
        "{}: {} now serves release {target} (was {})",
        hook.name,
        publish.to.display(),
        from.as_deref().unwrap_or("-")
    )
    .ok();
    Ok(0)
}

/// `rollback` of a hook that publishes to web hosts: every target, all or none.
fn rollback_fleet(
    to: Option<&str>,
    cfg: &Config,
    hook: &Hook,
    state: &HookState,
    fleet: &config::Fleet,
    out: &mut dyn Write,
) -> Result<i32> {
    state.ensure()?;
    let mut log = Log::open(&cfg.log);
    if queue::is_building(state)? {
        writeln!(out, "{}: a build is running; waiting for it to finish", hook.name).ok();
    }
    // Like every holder of the build lock, it hands over a delivery that came meanwhile.
    let (from, target) = queue::while_locked(cfg, hook, state, || {
        let env = hosts::tool_env(hook, &state.home_dir());
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| Error::io("cannot open /dev/null", e))?;
        let tools = hosts::Tools {
            env: &env,
            state_dir: &state.dir,
            upload_timeout: hook.step_timeout,
            log: &null,
        };
        let (from, target) = match hosts::rollback(fleet, to, &tools) {
            Ok(done) => done,
            Err(f) if f.target == "all" => return Err(Error::Usage(f.message)),
            Err(f) => {
                return Err(Error::io(
                    format!(
                        "rollback failed at {}; every target serves what it served before",
                        f.target
                    ),
                    std::io::Error::other(f.message),
                ))
            }
        };
        record_rollback(state, &from, &target)?;
        Ok((from, target))
    })?;
    log_rollback(&mut log, &hook.name, from.as_deref(), &target);
    let names: Vec<String> = hosts::targets(fleet).into_iter().map(|t| t.name).collect();
    writeln!(
        out,
        "{}: {} now serve release {target} (was {})",
        hook.name,
        names.join(", "),
        from.as_deref().unwrap_or("-")
    )
    .ok();
    Ok(0)
}
