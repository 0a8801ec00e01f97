//! The publish stage of a production build (`pipeline`): the release made on every
//! destination and switched to on all or none of them (or made and not switched while a
//! rollback holds the site), and, once the build is recorded, the releases `keep` lets go
//! pruned. A preview's publish is `preview::stage`'s.

use crate::build::pipeline::{self, Failed, Run};
use crate::build::state::{HookState, Status};
use crate::config::Hook;
use crate::publish::{self, FailureKind};
use crate::sys::log::{q, Log};
use crate::sys::process::Exit;

/// Records the release a build made in status.json, just before the switch: a worker killed
/// between the switch and its record is then recovered as the succeeded build it was
/// (queue::recover), not as interrupted.
pub(in crate::build) fn ready(state: &HookState, release: &str) {
    let _ = state.update_status(|s| {
        if let Some(c) = s.current.as_mut() {
            c.release = Some(release.to_string());
        }
    });
}

/// Publishes the output when the hook has a `[publish]`, to every destination or none; a
/// failure names the destination that failed when there are several.
pub(in crate::build) fn publish_stage(
    run: &mut Run,
    hook: &Hook,
    cancel: &mut dyn FnMut(&str) -> bool,
    commit: Option<&str>,
    held: Option<&publish::Held>,
    history: &[publish::Live],
) -> std::result::Result<Option<publish::Published>, Failed> {
    let Some(p) = &hook.publish else { return Ok(None) };
    if cancel(&run.id) {
        return Err(Failed::new("publish", "publish", Exit::Cancelled));
    }
    run.set_step(Some("publish".into()));
    let state = run.state;
    let mut ready = |release: &str| ready(state, release);
    let tools = publish::Tools {
        env: &run.env,
        state_dir: &run.state.dir,
        upload_timeout: hook.step_timeout,
        log: &run.log,
        repo: &hook.repo,
    };
    let id = run.id.clone();
    let standing = publish::Standing { held, history };
    let published = publish::publish(
        p,
        &hook.repo,
        commit,
        &tools,
        &standing,
        &mut || cancel(&id),
        &mut ready,
    );
    match published {
        Ok(p) => {
            if let Some(held) = held.filter(|_| !p.switched) {
                run.note(&format!(
                    "\nbuilt release {} but did not switch to it: the hook is held since {} (deploy-hook rollback to {}); `deploy-hook resume {}` switches every target to the newest succeeded build's release and lifts the hold",
                    p.release, held.since, held.release, hook.name
                ));
            }
            Ok(Some(p))
        }
        Err(f) if f.kind == FailureKind::Stopped => Err(Failed::new("publish", "publish", Exit::Cancelled)),
        Err(f) => {
            let at = f.target.as_ref().map(|t| format!(" at {t}")).unwrap_or_default();
            run.note(&format!("\npublish failed{at}: {}", f.message));
            if f.target.as_deref() == Some(publish::bucket::target::NAME) {
                run.note(&format!("next: {}", pipeline::bucket_next_step(&hook.name)));
            }
            // The host's name goes to status.json and the log; the forge's answer and syslog
            // say only "publish" (a host name may be an internal address).
            let step = match &f.target {
                Some(t) => format!("publish {t}"),
                None => "publish".into(),
            };
            Err(Failed::new(step, "publish", Exit::NotStarted(f.message)))
        }
    }
}

/// After the build is recorded (a build killed while pruning has still published and
/// succeeded): the releases `keep` lets go, on this machine (the web hosts prune within
/// their publish); what could not be removed is said and kept in status.json.
pub(in crate::build) fn prune(run: &mut Run, log: &mut Log, recorded: &Status, p: &publish::Published) {
    let Some(cfg) = &run.hook.publish else { return };
    let keep = publish::Keep {
        keep: cfg.keep,
        history: recorded.live_history.clone(),
        made: (!p.switched).then(|| p.release.clone()),
    };
    let mut failed = p.prune_failures.clone();
    let local = publish::prune(cfg, &keep, &run.state.dir);
    if !local.is_empty() {
        failed.extend(local.iter().cloned());
        let _ = run
            .state
            .update_status(|s| s.prune_failures.extend(local.iter().cloned()));
    }
    note_prune_failures(run, log, &failed);
}

/// Says what a prune could not remove, in the build log and to syslog: a release left
/// half removed (a file in it this user may not delete) takes space until someone looks.
/// status.json's `prune_failures` keeps them for `check`.
fn note_prune_failures(run: &mut Run, log: &mut Log, failed: &[publish::PruneFailure]) {
    for f in failed {
        let line = format!(
            "prune failed hook={} target={} release={} error={}",
            run.hook.name,
            q(&f.target),
            q(&f.release),
            q(&f.error)
        );
        run.note(&format!(
            "{}: could not prune release {}: {} (it stays, perhaps half removed; remove it by hand as its owner, e.g. root)",
            f.target, f.release, f.error
        ));
        log.warn(&line);
    }
}
