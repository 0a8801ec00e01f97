//! The one way a build is asked for: by a delivery (`delivery::handle`) and by
//! `deploy-hook run`. In the order of queue.rs's protocol: the busy check of
//! `on_busy = "reject"`, the waiting marker (`pending`, holding the replay token it accepts),
//! the supersede request, then the lock probe and a detached worker, or the build waited
//! for (`run --wait`, a sync delivery).
//!
//! What is built is a `Site`: a hook's config and the queue its builds go through (the
//! state folder with its marker, status and lock). Every site today is a hook's own; a
//! preview of a branch is another site of the same hook, with a state folder and lock of
//! its own, asked for through the same path.

use crate::build::queue;
use crate::build::reporting::Reports;
use crate::build::state::{BuildRecord, HookState, Pending};
use crate::build::tokens::TokenClaim;
use crate::config::{Config, Hook, OnBusy};
use crate::error::{Behind, Error, Result};
use crate::sys::log::Log;

/// What to build: the hook's config, and the state folder of the queue it goes through.
#[derive(Clone, Copy)]
pub struct Site<'a> {
    pub hook: &'a Hook,
    pub state: &'a HookState,
    /// A preview of the hook (by name), whose state folder `state` is: its builds queue
    /// as the hook's do (one runs, one waits), with no `on_busy` (a push to a pull request
    /// never makes a forge's delivery fail, nor stops a preview's build).
    pub preview: Option<&'a str>,
}

/// What a build of a site is asked with.
pub struct Ask<'a> {
    /// The delivery that asks for it (`run`'s is made up: `manual-<ms>`).
    pub pending: Pending,
    /// `run --force`: that build runs every step, even for a commit already live.
    pub force: bool,
    /// A Gitee signing token reserved for this delivery: it is accepted (seen from now
    /// on) with the delivery's marker; when no marker is written (busy), it holds nothing.
    pub token: Option<TokenClaim>,
    pub then: Then<'a>,
}

/// What the caller does once the delivery is recorded.
pub enum Then<'a> {
    /// Start a worker when no build runs, and answer at once (an async delivery, `run`).
    Answer,
    /// Build in a worker with a cleared environment and wait for its result (a sync
    /// delivery: no request header may be in any ancestor of a step).
    WaitInWorker,
    /// Build in this process and wait (`run --wait`), the report made here.
    WaitHere(&'a mut Log, &'a mut Reports),
}

/// What became of an ask.
#[derive(Debug)]
pub enum Enqueued {
    /// Recorded; `behind` says whether a worker was started or a running build will
    /// take it. `held`: a rollback holds the site, so its build will not go live.
    Queued { behind: Behind, held: bool },
    /// Built, waited for: its record (boxed: it is far larger than the other answer).
    Built(Box<BuildRecord>),
}

/// Asks for a build of `site`; see the module's comment for the order of things.
pub fn enqueue(cfg: &Config, site: Site, ask: Ask) -> Result<Enqueued> {
    let Site { hook, state, preview } = site;
    let on_busy = if preview.is_some() { OnBusy::Queue } else { hook.on_busy };
    let Ask {
        pending,
        force,
        token,
        then,
    } = ask;
    if on_busy == OnBusy::Reject && queue::is_building(state)? {
        return Err(Error::Busy);
    }
    if force {
        // Before `pending`: the build that takes this delivery sees the marker.
        crate::build::state::write_atomic(&state.force_path(), b"")
            .map_err(|e| Error::io(format!("cannot write {}", state.force_path().display()), e))?;
    }
    let mut pending = pending;
    let tokens: Vec<String> = token.map(|t| t.marker_line()).into_iter().collect();
    if preview.is_none() {
        // Accepted with the marker (one write that waits for the disk, for both): whatever
        // happens to this process now, it is built, and its token is seen.
        pending.tokens.extend(tokens.iter().cloned());
    }
    let status = state.mark_pending(&pending)?;
    if preview.is_some() && !tokens.is_empty() {
        // The replay check reads the hook's own state (its `seen-tokens` and marker), not
        // a preview's: a preview delivery's token is settled there once its marker is
        // written. Killed in between, it is built and a retry of it is built again.
        let own = HookState::new(&cfg.state_dir, &hook.name);
        let since = crate::build::tokens::horizon(crate::sys::time::now_ms(), hook.max_age_secs);
        own.locked(|| own.settle_tokens(&tokens, since))?;
    }
    if on_busy == OnBusy::Supersede {
        queue::request_supersede(state)?;
    }
    match then {
        Then::Answer => {
            let free = queue::try_lock(state)?.is_some();
            match (free, preview) {
                (true, Some(name)) => queue::spawn_preview_worker(&cfg.file, &hook.name, name, state)?,
                (true, None) => queue::spawn_worker(&cfg.file, &hook.name, state)?,
                (false, _) => {}
            }
            let behind = if free {
                Behind::Nothing
            } else if on_busy == OnBusy::Supersede {
                Behind::Superseded
            } else {
                Behind::Running
            };
            let held = preview.is_none() && hook.publish.is_some() && status.held.is_some();
            Ok(Enqueued::Queued { behind, held })
        }
        Then::WaitInWorker => queue::build_in_worker(&cfg.file, hook, state).map(|r| Enqueued::Built(Box::new(r))),
        Then::WaitHere(log, reports) => {
            queue::build_now(cfg, hook, state, log, reports).map(|r| Enqueued::Built(Box::new(r)))
        }
    }
}
