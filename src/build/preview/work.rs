//! A preview's queue: a delivery asks for its build or its removal (`ask_build`,
//! `ask_removal`), and its worker (`deploy-hook __worker HOOK --preview NAME`) builds it or
//! removes it, as the hook's own worker builds the site.
//!
//! The queue is queue.rs's protocol on the preview's own state folder and `build.lock`:
//! one build of a preview runs, one more waits, none is lost. A preview's lock is its own:
//! nothing of the production site's (`repo`, its lock, its `to`) is locked or changed by a
//! preview. The production site comes first (`first`): a preview build waits for its turn
//! while production builds, and is stopped when production starts; its delivery then waits
//! again, and the worker builds it once production is done.
//!
//! A removal (a pull request closed or merged, a branch deleted, `keep`, `previews
//! --remove`) is asked with the preview's `remove` file and done by its worker too, with
//! the preview's lock held: a build of it is never half removed. The newer of a build and
//! a removal wins (`Store::ask_build`, `Store::ask_removal`).

use std::fs::File;
use std::path::Path;

use fs2::FileExt;

use super::store::{Record, Store};
use super::{first, slots};
use super::{tree, Subject};
use crate::build::enqueue::{enqueue, Ask, Enqueued, Site, Then};
use crate::build::pipeline::{self, Build, PreviewBuild};
use crate::build::queue;
use crate::build::reporting::{self, Reports};
use crate::build::state::{BuildResult, HookState, Pending, State};
use crate::build::tokens::TokenClaim;
use crate::config::{Config, Hook, Previews};
use crate::error::{Behind, Error, Outcome, Result};
use crate::publish::local;
use crate::sys::log::{q, Log};
use crate::sys::process::{self, Out, Process};
use crate::sys::time;

/// Why a preview is removed: what its `remove` file says, and the log line.
pub const CLOSED: &str = "closed";
pub const DELETED: &str = "deleted";
pub const KEEP: &str = "keep";
pub const BY_HAND: &str = "by hand";
/// The failed step of a build the fork check refused (`stage::trusted`).
pub const FORK_CHECK: &str = "fork check";

fn previews_of(hook: &Hook) -> Result<&Previews> {
    hook.previews.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "hook {} has no previews: add [hooks.{}.previews] (docs/previews.md)",
            hook.name, hook.name
        ))
    })
}

/// A delivery asks for preview `subject`'s build: it is made (named) when new, the delivery
/// recorded in its queue, and its worker started when none runs.
pub fn ask_build(
    cfg: &Config,
    hook: &Hook,
    subject: &Subject,
    pending: Pending,
    token: Option<TokenClaim>,
) -> Result<Outcome> {
    let previews = previews_of(hook)?;
    let store = Store::new(&cfg.state_dir, &hook.name);
    let git_ref = subject.git_ref(hook.provider);
    let pending = Pending {
        git_ref: git_ref.clone(),
        ..pending
    };
    let (record, _, enqueued) = store.ask_build(subject, &git_ref, |record| {
        let state = HookState::new(&store.root(), &record.name);
        state.ensure()?;
        let site = Site {
            hook,
            state: &state,
            preview: Some(&record.name),
        };
        let ask = Ask {
            pending,
            force: false,
            token,
            then: Then::Answer,
        };
        enqueue(cfg, site, ask)
    })?;
    let behind = match enqueued {
        Enqueued::Queued { behind, .. } => behind,
        Enqueued::Built(_) => Behind::Nothing,
    };
    Ok(Outcome::PreviewQueued {
        url: previews.url_of(&record.name),
        name: record.name,
        of: subject.to_string(),
        behind,
    })
}

/// A delivery asks for the removal of preview `subject`: its worker removes it, after
/// stopping a build of it that runs.
pub fn ask_removal(cfg: &Config, hook: &Hook, subject: &Subject, why: &str) -> Result<Outcome> {
    previews_of(hook)?;
    let store = Store::new(&cfg.state_dir, &hook.name);
    let Some(record) = store.find(subject) else {
        return Ok(Outcome::Ignored(format!("{subject} has no preview; nothing to remove")));
    };
    remove_later(cfg, hook, &store, &record.name, why)?;
    Ok(Outcome::PreviewRemoved {
        name: record.name,
        of: subject.to_string(),
    })
}

/// Asks preview `name`'s worker to remove it (starting one when none runs), stopping a
/// build of it that runs.
fn remove_later(cfg: &Config, hook: &Hook, store: &Store, name: &str, why: &str) -> Result<()> {
    store.ask_removal(name, why)?;
    start_removal(cfg, hook, store, name)
}

/// Once preview `name`'s removal is asked: stops a build of it that runs, and starts its
/// worker when none runs. A preview whose folder is gone was removed meanwhile: done.
fn start_removal(cfg: &Config, hook: &Hook, store: &Store, name: &str) -> Result<()> {
    let state = HookState::new(&store.root(), name);
    if !state.dir.is_dir() {
        return Ok(());
    }
    first::stop(&state.dir);
    // The lock is let go at once (before the worker starts, which takes it).
    let free = queue::try_lock(&state).map(|lock| lock.is_some());
    match free {
        Ok(true) => queue::spawn_preview_worker(&cfg.file, &hook.name, name, &state),
        Ok(false) => Ok(()),
        Err(_) if !state.dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes preview `name` by hand (`previews --remove`): asks for it, then waits for the
/// preview's lock (its running build is stopped) and removes what is left.
pub fn remove_now(cfg: &Config, hook: &Hook, name: &str, log: &mut Log) -> Result<bool> {
    let previews = previews_of(hook)?;
    let store = Store::new(&cfg.state_dir, &hook.name);
    if store.get(name).is_none() {
        return Ok(false);
    }
    store.ask_removal(name, BY_HAND)?;
    let state = HookState::new(&store.root(), name);
    first::stop(&state.dir);
    // Its worker, if one runs, removes it once it lets go; else we do.
    if let Some(_lock) = own_lock(&state, true)? {
        if store.naming(|| remove_if_asked(hook, previews, &store, name, log))? {
            reporting::page_now(hook, &hook_state(&store), cfg);
        }
    }
    Ok(true)
}

/// The hook's own state folder (production's), whose page lists the previews.
fn hook_state(store: &Store) -> HookState {
    HookState {
        dir: store.hook_dir.clone(),
    }
}

/// The preview's own lock (`build.lock` in its state folder): blocking, or `None` when it
/// is held or the preview is gone.
fn own_lock(state: &HookState, wait: bool) -> Result<Option<File>> {
    if !state.dir.is_dir() {
        return Ok(None);
    }
    let file = match state.open_lock_file(&state.build_lock_path()) {
        Ok(f) => f,
        Err(_) if !state.dir.is_dir() => return Ok(None),
        Err(e) => return Err(e),
    };
    let got = if wait {
        file.lock_exclusive()
    } else {
        file.try_lock_exclusive()
    };
    match got {
        Ok(()) => Ok(Some(file)),
        Err(e) if !wait && e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(None),
        Err(e) => Err(Error::io("cannot lock a preview's build.lock", e)),
    }
}

/// The worker of preview `name`: builds while a delivery for it waits, removes it when
/// asked, and exits. Production comes first: each build waits for its turn.
pub fn work(cfg: &Config, hook: &Hook, name: &str, log: &mut Log) -> Result<()> {
    let store = Store::new(&cfg.state_dir, &hook.name);
    let Some(previews) = hook.previews.as_ref() else {
        log.warn(&format!(
            "preview worker hook={} preview={name}: the hook has no previews any more; nothing done",
            hook.name
        ));
        return Ok(());
    };
    process::become_subreaper();
    // Made at its first build; what it queued goes out after the preview's lock is let go.
    let mut reports = None;
    let worked = builds(cfg, hook, previews, &store, name, log, &mut reports);
    if let Some(r) = reports {
        r.join();
    }
    worked
}

/// `work`'s loop: builds and removes until nothing waits.
fn builds(
    cfg: &Config,
    hook: &Hook,
    previews: &Previews,
    store: &Store,
    name: &str,
    log: &mut Log,
    reports: &mut Option<Reports>,
) -> Result<()> {
    let store = store.clone();
    let state = HookState::new(&store.root(), name);
    loop {
        let Some(lock) = own_lock(&state, false)? else {
            return Ok(()); // its holder sees what waits
        };
        if store.naming(|| remove_if_asked(hook, previews, &store, name, log))? {
            // The page lists the previews.
            reporting::page_now(hook, &hook_state(&store), cfg);
            return Ok(());
        }
        recover(hook, &state, name, log)?;
        // A preview's marker holds no token (its delivery settled it in the hook's own
        // `seen-tokens`, `enqueue`): nothing of it is kept by age here.
        let since = crate::build::tokens::horizon(time::now_ms(), hook.max_age_secs);
        while state.has_pending() {
            // One of `previews.jobs` slots first: its delivery waits in the queue meanwhile.
            let slot = slots::take(&store.hook_dir, previews.jobs)?;
            let Some(p) = state.take_pending(since)? else {
                break;
            };
            // A new working tree only within `keep`: the least recently built go first.
            if !store.worktree(name).join(".git").is_file() {
                keep(cfg, hook, previews, &store, name, log);
            }
            let turn = first::preview_turn(&store.hook_dir, &state.dir)?;
            let Some(record) = store.get(name).filter(|_| !store.removal_asked(name)) else {
                state.put_back(&p)?;
                break;
            };
            let pb = PreviewBuild {
                record: &record,
                previews,
                store: &store,
            };
            let mut cancel = |id: &str| first::stop_requested(&state.dir, id);
            let reports =
                reports.get_or_insert_with(|| Reports::for_preview(hook, cfg, &record.git_ref, &previews.url_of(name)));
            let built = pipeline::build(
                Build {
                    hook,
                    state: &state,
                    log,
                    cancel: &mut cancel,
                    preview: Some(&pb),
                    reports,
                },
                &p,
            )
            .inspect_err(|_| {
                let _ = state.put_back(&p);
            })?;
            drop(turn);
            drop(slot);
            note_built(&store, &record, &built);
            if built.result == BuildResult::Succeeded {
                reporting::page_now(hook, &hook_state(&store), cfg);
            }
            match built.result {
                // Stopped for production (or for its removal): its delivery waits again, and
                // its next turn comes after production's.
                BuildResult::Stopped => state.put_back(&p)?,
                BuildResult::Succeeded => keep(cfg, hook, previews, &store, name, log),
                _ => {}
            }
        }
        drop(lock);
        if !state.has_pending() && !store.removal_asked(name) {
            return Ok(());
        }
    }
}

/// With the preview's lock held: a status that still says "building" belongs to a worker
/// that died. Its build is recorded as interrupted and its delivery waits again.
fn recover(hook: &Hook, state: &HookState, name: &str, log: &mut Log) -> Result<()> {
    state.untake()?;
    let status = state.read_status()?;
    let (State::Building, Some(c)) = (status.state, status.current) else {
        return Ok(());
    };
    process::kill_by_env("DEPLOY_HOOK_LOG", &c.log);
    let record = c.recovered(false);
    state.update_status(|s| s.finish(record, None))?;
    state.put_back(&c.pending())?;
    log.warn(&format!(
        "build interrupted hook={} preview={name} id={} (its worker died); built again",
        hook.name, c.id
    ));
    Ok(())
}

/// What the preview's record says after a build: when it was built (for `keep`), and what
/// it serves once a build published.
fn note_built(store: &Store, record: &Record, built: &crate::build::state::BuildRecord) {
    let Some(mut r) = store.get(&record.name) else { return };
    r.built = Some(built.finished.clone());
    r.built_ms = Some(time::now_ms() as u64);
    r.refused = built.result == BuildResult::Failed && built.failed_step.as_deref() == Some(FORK_CHECK);
    if built.result == BuildResult::Succeeded {
        r.commit = built.commit.clone();
        r.release = built.release.clone();
        r.published = Some(built.finished.clone());
    }
    let _ = store.put(&r);
}

/// `keep`: once `name` was built, the least recently built previews beyond `keep` go
/// (`Store::let_go_locked`: chosen and asked under `names.lock`, so that workers finishing
/// at once agree). What fails here is logged: it never ends this worker's other work.
fn keep(cfg: &Config, hook: &Hook, previews: &Previews, store: &Store, name: &str, log: &mut Log) {
    let busy = |n: &str| {
        let s = HookState::new(&store.root(), n);
        s.has_pending() || queue::is_building(&s).unwrap_or(true)
    };
    let chosen = match store.naming(|| store.let_go_locked(previews.keep, name, busy)) {
        Ok(c) => c,
        Err(e) => {
            log.warn(&format!(
                "previews.keep hook={} preview={name}: {e}; tried again after the next build",
                hook.name
            ));
            return;
        }
    };
    for r in chosen {
        log.info(&format!(
            "preview removed hook={} preview={} why={} (previews.keep = {})",
            hook.name,
            r.name,
            q(KEEP),
            previews.keep
        ));
        if let Err(e) = start_removal(cfg, hook, store, &r.name) {
            log.warn(&format!(
                "preview removal hook={} preview={}: {e}; its removal is asked and done by the next worker of it",
                hook.name, r.name
            ));
        }
    }
}

/// With `names.lock` and the preview's lock held: removes preview `name` when its removal
/// is asked for. A deleted branch's preview stays when the branch is there after all (a
/// delivery's body is not always signed: Gitee's sign mode). True when it was removed.
fn remove_if_asked(hook: &Hook, previews: &Previews, store: &Store, name: &str, log: &mut Log) -> Result<bool> {
    let Some(why) = store.removal_why(name) else {
        return Ok(false);
    };
    let record = store.get(name);
    if let (
        DELETED,
        Some(Record {
            subject: Subject::Branch(b),
            ..
        }),
    ) = (why.as_str(), &record)
    {
        if branch_exists(hook, store, b) {
            log.warn(&format!(
                "preview kept hook={} preview={name}: a delivery said branch {} was deleted, but {} has it",
                hook.name,
                q(b),
                hook.remote
            ));
            store.withdraw_removal(name);
            return Ok(false);
        }
    }
    remove(hook, previews, store, name)?;
    log.info(&format!(
        "preview removed hook={} preview={name} why={}",
        hook.name,
        q(&why)
    ));
    Ok(true)
}

/// Whether the hook's remote has branch `b` (unknown counts as yes: nothing is removed on
/// a failed look).
fn branch_exists(hook: &Hook, store: &Store, b: &str) -> bool {
    let done = git(
        hook,
        store,
        &["ls-remote", "--heads", &hook.remote, &format!("refs/heads/{b}")],
    );
    !done.0 || !done.1.trim().is_empty()
}

/// Runs git in the hook's checkout, as a build would: (succeeded, stdout).
fn git(hook: &Hook, store: &Store, args: &[&str]) -> (bool, String) {
    let mut p = Process::new("git");
    p.args(args)
        .cwd(&hook.repo)
        .env(&hook.child_env(&store.home_dir()))
        .nice(hook.nice)
        .timeout(hook.step_timeout);
    let done = p.run(Out::Capture, Out::Capture, &mut || false);
    (done.exit.success(), done.stdout_text())
}

/// Removes preview `name`: first what is served (`previews.to/NAME`: the web server
/// answers 404 at once), then its releases, its working tree, its ref, its state.
fn remove(hook: &Hook, previews: &Previews, store: &Store, name: &str) -> Result<()> {
    let served = previews.path_of(name);
    if std::fs::symlink_metadata(&served).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(&served).map_err(|e| Error::io(format!("cannot remove {}", served.display()), e))?;
    }
    let releases = local::releases_dir(&served);
    remove_dir(&releases)?;
    let _worktrees = tree::worktrees_lock(&hook.repo)
        .map_err(|e| Error::io(format!("cannot lock {}'s working trees", hook.repo.display()), e))?;
    remove_dir(&store.worktree(name))?;
    for cmd in tree::forget(name) {
        if let crate::config::Cmd::Argv(a) = cmd {
            git(hook, store, &a[1..].iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
    store.forget(name)
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("cannot remove {}", dir.display()), e)),
    }
}

/// After a production build (queue's hand-over): a preview with a delivery waiting, or a
/// removal, whose lock is free gets a worker (its own worker was killed for production,
/// or died).
pub fn hand_over(cfg: &Config, hook: &Hook) -> Result<()> {
    if hook.previews.is_none() {
        return Ok(());
    }
    let store = Store::new(&cfg.state_dir, &hook.name);
    for r in store.list() {
        let state = HookState::new(&store.root(), &r.name);
        let waits = state.has_pending() || store.removal_asked(&r.name);
        if waits && queue::try_lock(&state)?.is_some() {
            queue::spawn_preview_worker(&cfg.file, &hook.name, &r.name, &state)?;
        }
    }
    Ok(())
}
