//! A build finished: the one place that records it, says so in the log, and tells the
//! people who must be told.
//!
//! Both ends of a build come here: its own worker when the pipeline ends
//! (`pipeline::build`), and the next holder of the lock when that worker died
//! (`queue::recover`: `interrupted`, or `succeeded` when it had switched the site before
//! it died). So a killed build is told about as a failed one is, with the same
//! environment, and whatever tells about builds (`on_success` / `on_failure` today; a
//! forge's commit status, a chat message, the build page) has one place to hook in:
//! `tell`, called once the result is recorded and can no longer change.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::build::buildlog::BuildLog;
use crate::build::reporting::Reports;
use crate::build::state::{BuildRecord, BuildResult, HookState, Status};
use crate::config::{Cmd, Hook};
use crate::error::Result;
use crate::sys::log::{q, Log};
use crate::sys::process::{Out, Process};

/// How long `on_success` / `on_failure` may run.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// A build that ended, as it is recorded and told.
pub struct Finished<'a> {
    pub hook: &'a Hook,
    pub state: &'a HookState,
    pub record: BuildRecord,
    /// The release it switched the site to, if it did (`Status::finish`).
    pub live: Option<String>,
    /// The build's environment (`pipeline::step_env`, with `DEPLOY_HOOK_COMMIT` once the
    /// commit is known): what its notifications run with, plus the result's variables.
    pub env: BTreeMap<String, String>,
    /// Its build log: where the notifications' output goes.
    pub build_log: &'a BuildLog,
    /// Recorded by `queue::recover`, not by its own worker.
    pub recovered: bool,
    /// What the author sees of it (the forge's status, the robots, the page).
    pub reports: &'a mut Reports,
    /// A preview's build: the preview's address. `on_success` and `on_failure` are the
    /// production site's; a forge's commit status of a preview links here.
    pub preview_url: Option<String>,
}

/// Records the build (`also` changes status.json in the same write), logs its end, and
/// tells about it (`tell`). Returns the status as recorded. An error is the state folder's
/// only: nothing is told about a build that could not be recorded.
pub fn finished(f: Finished, log: &mut Log, also: impl FnOnce(&mut Status)) -> Result<Status> {
    let recorded = f.state.update_status(|s| {
        also(s);
        s.finish(f.record.clone(), f.live.clone());
    })?;
    let r = &f.record;
    let line = format!(
        "build end hook={}{} id={} commit={} result={}{}{}{} duration={:.1}s",
        f.hook.name,
        match &f.preview_url {
            Some(_) => format!(
                " preview={}",
                f.state.dir.file_name().unwrap_or_default().to_string_lossy()
            ),
            None => String::new(),
        },
        r.id,
        r.commit.as_deref().unwrap_or("-"),
        r.result,
        r.failed_at
            .as_ref()
            .map(|s| format!(" failed_at={}", q(s)))
            .unwrap_or_default(),
        if r.held { " held=yes" } else { "" },
        if f.recovered { " recovered=yes" } else { "" },
        r.duration_secs
    );
    if r.result.is_good() {
        log.info(&line);
    } else {
        log.warn(&line);
    }
    // First what is only queued (the statuses and messages go out from their threads),
    // then the notification commands, which may take their minute.
    f.reports.finished(f.hook, f.state, &recorded, &f.record);
    tell(&f, log);
    Ok(recorded)
}

/// Tells about a recorded build: `on_success` after one that succeeded, `on_failure` after
/// one that failed, timed out or was interrupted (a production build's: a preview's failure
/// is its pull request's business, not the site's). A superseded build did not fail (a newer
/// one is on its way), and an unchanged one did nothing. A notification that fails is
/// logged and changes nothing.
fn tell(f: &Finished, log: &mut Log) {
    if f.preview_url.is_some() {
        return;
    }
    let r = &f.record;
    let (cmd, which) = match r.result {
        BuildResult::Succeeded => (&f.hook.on_success, "on_success"),
        BuildResult::Failed | BuildResult::TimedOut | BuildResult::Interrupted => (&f.hook.on_failure, "on_failure"),
        BuildResult::Unchanged | BuildResult::Superseded | BuildResult::Stopped | BuildResult::Unknown => return,
    };
    if let Some(cmd) = cmd {
        notify(f, cmd, which, log);
    }
}

/// Runs one notification command in the checkout with the build's environment and the
/// result's variables, its output into the build log.
fn notify(f: &Finished, cmd: &Cmd, which: &str, log: &mut Log) {
    let r = &f.record;
    let mut env = f.env.clone();
    env.insert("DEPLOY_HOOK_RESULT".into(), r.result.as_str().into());
    env.insert(
        "DEPLOY_HOOK_FAILED_STEP".into(),
        r.failed_step.clone().unwrap_or_default(),
    );
    env.insert("DEPLOY_HOOK_BUILD".into(), r.id.clone());
    f.build_log.line(&format!("\nnotify: $ {cmd}"));
    let mut p = Process::argv(&cmd.argv());
    p.cwd(&f.hook.repo)
        .env(&env)
        .nice(f.hook.nice)
        .timeout(NOTIFY_TIMEOUT)
        .end_leftovers();
    let mut out = f.build_log.stream("");
    let exit = p.run(Out::To(&mut |b| out.write(b)), Out::Stdout, &mut || false).exit;
    out.finish();
    f.build_log.line(&format!("-> {exit}"));
    if !exit.success() {
        log.warn(&format!(
            "notify failed hook={} id={} command={} outcome={}",
            f.hook.name,
            r.id,
            q(&format!(
                "{which} ({})",
                cmd.program().rsplit('/').next().unwrap_or("-")
            )),
            q(&exit.to_string())
        ));
    }
}
