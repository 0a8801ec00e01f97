//! One build: sync the checkout (and its submodules) to the head of `remote/branch`, remove
//! the `clean` paths, run the steps, publish; then `finish` records it and tells about it.
//!
//! The caller holds the hook's build lock (queue.rs). Everything a build does is written to
//! its own log, and `status.json` is kept current at each stage so `status` can say what is
//! running. A build that fails at any stage leaves the published site as it was.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::build::buildlog::{self, BuildLog};
use crate::build::finish::{self, Finished};
use crate::build::preview::{self, store::Record, store::Store};
use crate::build::release;
use crate::build::reporting::Reports;
use crate::build::state::{Base, BuildRecord, BuildResult, Current, HookState, Pending, State};
use crate::build::tree::{self, StepRun};
use crate::config::{Cmd, Destinations, Hook, Previews};
use crate::error::{Error, Result};
use crate::publish;
use crate::sys::log::{q, Log};
use crate::sys::process::{Exit, Out, Process};
use crate::sys::time;

/// The environment of every step: the hook's (`Hook::child_env`, as `check` sees it) and
/// the build's `DEPLOY_HOOK_*` (docs/config.md, "The steps' environment"). A preview's
/// build has the hook's `HOME` (its pnpm store: packages are linked, not downloaded again)
/// and says which preview it is.
pub fn step_env(
    hook: &Hook,
    state: &HookState,
    preview: Option<&PreviewBuild>,
    p: &Pending,
    log_path: &Path,
) -> BTreeMap<String, String> {
    let home = match preview {
        Some(pb) => pb.store.home_dir(),
        None => state.home_dir(),
    };
    let mut env = hook.child_env(&home);
    let git_ref = if p.git_ref.is_empty() {
        format!("refs/heads/{}", hook.branch)
    } else {
        p.git_ref.clone()
    };
    env.insert("DEPLOY_HOOK_NAME".into(), hook.name.clone());
    env.insert("DEPLOY_HOOK_REF".into(), git_ref);
    env.insert("DEPLOY_HOOK_DELIVERY".into(), p.delivery.clone());
    env.insert("DEPLOY_HOOK_EVENT".into(), p.event.clone());
    env.insert("DEPLOY_HOOK_LOG".into(), log_path.to_string_lossy().into_owned());
    if let Some(pb) = preview {
        env.insert("DEPLOY_HOOK_PREVIEW".into(), pb.record.name.clone());
        env.insert("DEPLOY_HOOK_PREVIEW_URL".into(), pb.previews.url_of(&pb.record.name));
    }
    env
}

/// A new build id: sortable by time, unique within the hook.
fn new_build_id(state: &HookState) -> String {
    let base = time::compact(time::now());
    next_id(&base, |id| state.builds_dir().join(format!("{id}.log")).exists())
}

/// The first free id for `base` (a time to the millisecond): `base`, then `base-02`,
/// `base-03`, ... Ids sort as strings in the order they were made (the number is padded,
/// and `base` is a prefix of the others), which is the order `buildlog::prune` removes them in.
fn next_id(base: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut id = base.to_string();
    let mut n = 2;
    while taken(&id) {
        id = format!("{base}-{n:02}");
        n += 1;
    }
    id
}

/// Removes a `clean` path, refusing one that leads outside the repo through a symlink.
fn remove_inside(repo: &Path, rel: &Path) -> std::result::Result<bool, String> {
    let target = repo.join(rel);
    let parent = target.parent().unwrap_or(repo);
    let (Ok(real_repo), Ok(real_parent)) = (repo.canonicalize(), parent.canonicalize()) else {
        return Ok(false); // the parent does not exist, so neither does the target
    };
    if !real_parent.starts_with(&real_repo) {
        return Err(format!(
            "{} leads outside the repo through a symlink; not removed",
            rel.display()
        ));
    }
    match fs::symlink_metadata(&target) {
        Err(_) => Ok(false),
        Ok(m) if m.is_dir() => fs::remove_dir_all(&target).map(|_| true).map_err(|e| e.to_string()),
        Ok(_) => fs::remove_file(&target).map(|_| true).map_err(|e| e.to_string()),
    }
}

/// What the worker needs to run one build.
pub struct Build<'a> {
    pub hook: &'a Hook,
    pub state: &'a HookState,
    pub log: &'a mut Log,
    /// Polled while a child runs; true stops the build (supersede; for a preview,
    /// production's turn).
    pub cancel: &'a mut dyn FnMut(&str) -> bool,
    /// What the author is to see of it: the page, the commit status, the robots.
    pub reports: &'a mut Reports,
    /// A preview's build, in its own working tree; `None` for the hook's own.
    pub preview: Option<&'a PreviewBuild<'a>>,
}

/// What a preview's build needs besides the hook: which preview, where previews go.
pub struct PreviewBuild<'a> {
    pub record: &'a Record,
    pub previews: &'a Previews,
    pub store: &'a Store,
}

pub(in crate::build) struct Run<'a> {
    pub(in crate::build) id: String,
    pub(in crate::build) log: BuildLog,
    pub(in crate::build) env: BTreeMap<String, String>,
    pub(in crate::build) hook: &'a Hook,
    pub(in crate::build) state: &'a HookState,
    /// Where the steps run: the hook's `repo`, or a preview's working tree.
    pub(in crate::build) tree: PathBuf,
    pub(in crate::build) preview: Option<&'a PreviewBuild<'a>>,
    /// The delivery being built: waiting again (`put_back`) when the build must follow.
    pending: &'a Pending,
    reports: &'a mut Reports,
}

impl Run<'_> {
    pub(in crate::build) fn note(&mut self, line: &str) {
        self.log.line(line);
    }

    pub(in crate::build) fn set_step(&mut self, step: Option<String>) {
        let written = self.state.update_progress(|s| {
            if let Some(c) = s.current.as_mut() {
                c.step = step;
                c.step_started = Some(time::rfc3339(time::now()));
            }
        });
        if let Ok(status) = written {
            self.reports.page(self.hook, self.state, &status);
        }
    }

    /// Runs a command of the build (a step, git, a notification) to its end, its output
    /// into the log.
    /// Returns how it ended and the end of its output (`buildlog::TAIL`).
    fn child(&self, dir: &Path, cmd: &Cmd, timeout: Duration, cancel: &mut dyn FnMut() -> bool) -> (Exit, String) {
        let mut p = Process::argv(&cmd.argv());
        p.cwd(dir)
            .env(&self.env)
            .nice(self.hook.nice)
            .timeout(timeout)
            .end_leftovers();
        let mut out = self.log.stream("");
        let exit = p.run(Out::To(&mut |b| out.write(b)), Out::Stdout, cancel).exit;
        (exit, out.finish())
    }

    /// What a short git command prints (its stdout, trimmed), when it succeeds; its stderr
    /// goes into the log. Run where the steps run.
    pub(in crate::build) fn git_answer(&self, args: &[&str]) -> Option<String> {
        self.git_answer_in(&self.tree, args)
    }

    /// `git_answer` in another folder (a preview's fetch: the hook's `repo`).
    pub(in crate::build) fn git_answer_in(&self, dir: &Path, args: &[&str]) -> Option<String> {
        let mut p = Process::new("git");
        p.args(args)
            .cwd(dir)
            .env(&self.env)
            .nice(self.hook.nice)
            .timeout(self.hook.step_timeout);
        let mut err = self.log.stream("");
        let done = p.run(Out::Capture, Out::To(&mut |b| err.write(b)), &mut || false);
        done.exit.success().then(|| done.stdout_text())
    }

    /// Runs one command of the build where the steps run, logged; the error is the command
    /// as written, its public label `at` and how it ended.
    pub(in crate::build) fn command(
        &mut self,
        cmd: &Cmd,
        at: &str,
        cancel: &mut dyn FnMut(&str) -> bool,
    ) -> std::result::Result<(), Failed> {
        let tree = self.tree.clone();
        self.command_in(&tree, cmd, at, cancel)
    }

    /// `command` in another folder.
    pub(in crate::build) fn command_in(
        &mut self,
        dir: &Path,
        cmd: &Cmd,
        at: &str,
        cancel: &mut dyn FnMut(&str) -> bool,
    ) -> std::result::Result<(), Failed> {
        let line = cmd.to_string();
        self.set_step(Some(line.clone()));
        self.note(&format!("\n$ {line}"));
        let started = Instant::now();
        let id = self.id.clone();
        let (exit, output_tail) = self.child(dir, cmd, self.hook.step_timeout, &mut || cancel(&id));
        self.note(&format!("-> {exit} ({:.1}s)", started.elapsed().as_secs_f64()));
        if exit.success() {
            Ok(())
        } else {
            Err(Failed {
                step: line,
                at: at.to_string(),
                exit,
                output_tail,
            })
        }
    }
}

/// Where a build stopped.
pub(in crate::build) struct Failed {
    /// The command as written, for the build log and status.json (the admin's).
    step: String,
    /// The stage by name and position only, never an argument: the forge's answer and
    /// syslog carry this one, and an argument may be `--api-token=...`.
    at: String,
    exit: Exit,
    /// The end of the failed command's output, its last lines (at most `buildlog::TAIL`
    /// bytes), whatever the log's cap cut: what a report says about why it failed. Empty
    /// when no command failed (clean, publish).
    #[allow(dead_code)] // the reports (the forge's commit status, chat) are to read it
    output_tail: String,
}

impl Failed {
    pub(in crate::build) fn new(step: impl Into<String>, at: &str, exit: Exit) -> Failed {
        Failed {
            step: step.into(),
            at: at.to_string(),
            exit,
            output_tail: String::new(),
        }
    }
}

/// `step 2 (deploy)`: a step's position and its program's file name.
pub fn step_label(position: usize, cmd: &Cmd) -> String {
    let program = cmd.program();
    format!("step {position} ({})", program.rsplit('/').next().unwrap_or(program))
}

/// How a build that stopped at a command ended. A preview's build is only ever stopped
/// for production (`preview::first`).
fn result_of(exit: &Exit, preview: bool) -> BuildResult {
    match exit {
        Exit::TimedOut => BuildResult::TimedOut,
        Exit::Cancelled if preview => BuildResult::Stopped,
        Exit::Cancelled => BuildResult::Superseded,
        _ => BuildResult::Failed,
    }
}

/// Runs one build for the waiting delivery `p` and records it. Errors are only those of
/// the state folder itself; a failing step is a failed build, not an error.
pub fn build(b: Build, p: &Pending) -> Result<BuildRecord> {
    let Build {
        hook,
        state,
        log,
        cancel,
        reports,
        preview,
    } = b;
    let id = new_build_id(state);
    let log_path = state.builds_dir().join(format!("{id}.log"));
    let file = BuildLog::create(&log_path, hook.log_max_bytes)
        .map_err(|e| Error::io(format!("cannot create the build log {}", log_path.display()), e))?;
    let started_at = time::now();
    let started = time::rfc3339(started_at);
    let clock = Instant::now();
    let env = step_env(hook, state, preview, p, &log_path);
    let tree = match preview {
        Some(pb) => pb.store.worktree(&pb.record.name),
        None => hook.repo.clone(),
    };
    let mut run = Run {
        id: id.clone(),
        log: file,
        env,
        hook,
        state,
        tree,
        preview,
        pending: p,
        reports,
    };
    if !hook.env.contains_key("HOME") {
        let _ = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&run.env["HOME"]);
    }
    // One status write both says "building" and reads what this build compares with.
    let mut plan = Plan {
        base: None,
        config: match preview {
            Some(pb) => preview::stage::config_hash(&config_hash(hook), pb),
            None => config_hash(hook),
        },
        force: fs::remove_file(state.force_path()).is_ok(),
        live_release: None,
        held: None,
        live_history: Vec::new(),
    };
    let building = state.update_status(|s| {
        plan.base = s.base.clone();
        plan.live_release = s.live_release.clone();
        // No rollback or resume runs while this build holds the lock: these hold until its end.
        // A rollback holds the production site, not its previews.
        plan.held = s.held.clone().filter(|_| preview.is_none());
        plan.live_history = s.live_history.clone();
        s.state = State::Building;
        s.current = Some(Current {
            id: id.clone(),
            delivery: p.delivery.clone(),
            started: started.clone(),
            pid: std::process::id(),
            log: log_path.to_string_lossy().into_owned(),
            commit: None,
            step: None,
            step_started: None,
            release: None,
            config: Some(plan.config.clone()),
            event: p.event.clone(),
            git_ref: p.git_ref.clone(),
        });
    })?;
    run.reports.page(hook, state, &building);
    log.info(&format!(
        "build start hook={} id={id} delivery={} event={}",
        hook.name,
        q(&p.delivery),
        q(&p.event)
    ));
    let of = match preview {
        Some(pb) => format!(" (preview {}, {})", pb.record.name, pb.record.subject),
        None => String::new(),
    };
    run.note(&format!(
        "deploy-hook build {id} of hook {}{of}\ndelivery {} ({}), ref {}\nstarted {started} in {}",
        hook.name,
        p.delivery,
        p.event,
        run.env["DEPLOY_HOOK_REF"],
        run.tree.display()
    ));

    if plan.force {
        run.note("forced (deploy-hook run --force): every step runs");
    }

    let mut commit = None;
    let mut timing = Timing::default();
    let outcome = stages(&mut run, hook, cancel, &mut commit, &plan, &mut timing);

    let (result, failed_step, failed_at, published, release) = match outcome {
        Ok(Done::Built(published)) => {
            let release = published.as_ref().map(|p| p.release.clone());
            (BuildResult::Succeeded, None, None, published, release)
        }
        Ok(Done::Unchanged(base)) => (BuildResult::Unchanged, None, None, None, base.release),
        Err(f) => (
            result_of(&f.exit, preview.is_some()),
            Some(f.step),
            Some(f.at),
            None,
            None,
        ),
    };
    let duration = clock.elapsed().as_secs_f64();
    run.note(&format!("\ntiming: {timing}"));
    run.note(&format!(
        "result: {result}{} after {:.1}s",
        failed_step.as_ref().map(|s| format!(" at {s}")).unwrap_or_default(),
        duration
    ));
    let record = BuildRecord {
        id: id.clone(),
        delivery: p.delivery.clone(),
        started,
        finished: time::rfc3339(time::now()),
        result,
        commit: commit.clone(),
        failed_step: failed_step.clone(),
        failed_at: failed_at.clone(),
        log: log_path.to_string_lossy().into_owned(),
        duration_secs: (duration * 10.0).round() / 10.0,
        release: release.clone(),
        held: published.as_ref().is_some_and(|p| !p.switched),
    };
    let ended = Finished {
        hook,
        state,
        record: record.clone(),
        // What went live: the release it switched to (none while a rollback holds the site).
        live: published.as_ref().filter(|p| p.switched).map(|p| p.release.clone()),
        env: run.env.clone(),
        build_log: &run.log,
        recovered: false,
        reports: &mut *run.reports,
        preview_url: preview.map(|pb| pb.previews.url_of(&pb.record.name)),
    };
    let recorded = finish::finished(ended, log, |s| {
        if let Some(p) = &published {
            // What this publish's own prune (the web hosts') could not remove; the local
            // prune below adds its own.
            s.prune_failures = p.prune_failures.clone();
        }
    })?;
    // After the record: a build killed while pruning has still published and succeeded.
    if let (Some(pb), Some(_)) = (preview, &published) {
        preview::stage::prune(&mut run, pb);
    } else if let Some(p) = &published {
        release::prune(&mut run, log, &recorded, p);
    }
    // Last: nothing writes into the log any more.
    if let Err(e) = run.log.seal() {
        log.warn(&format!(
            "build log hook={} id={id}: cannot cut it to log_max_bytes: {e}",
            hook.name
        ));
    }
    // Published once nothing writes into it: cut to log_max_bytes last.
    run.reports.publish_log(state, &record);
    buildlog::prune(&state.builds_dir(), hook.keep_logs);
    Ok(record)
}

/// What a build compares with, read when it starts.
struct Plan {
    /// The hook's last succeeded build.
    base: Option<Base>,
    /// `config_hash` of the hook now.
    config: String,
    /// `run --force`: build even an unchanged commit, run every step.
    force: bool,
    /// The live release as status.json has it.
    live_release: Option<String>,
    /// The hold a rollback put on the hook: the release is made, not switched to.
    held: Option<publish::Held>,
    /// What was live, newest first (pruning keeps its way back).
    live_history: Vec<publish::Live>,
}

enum Done {
    Built(Option<publish::Published>),
    /// The fetched head is the base's commit, live, with the same config: nothing to do.
    Unchanged(Base),
}

/// How long each stage took, for the build log's timing line.
#[derive(Default)]
struct Timing {
    fetch: Option<f64>,
    clean: Option<f64>,
    steps: Option<f64>,
    publish: Option<f64>,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            ("fetch", self.fetch),
            ("clean", self.clean),
            ("steps", self.steps),
            ("publish", self.publish),
        ];
        let text: Vec<String> = parts
            .iter()
            .filter_map(|(name, t)| t.map(|t| format!("{name} {t:.2}s")))
            .collect();
        write!(f, "{}", text.join(", "))
    }
}

/// A fingerprint of everything in the hook's config that decides what a build makes: a
/// change to any of it makes the next build run every step (and never `unchanged`).
/// Secrets, notifications, modes and timeouts change nothing that is built, so they are
/// left out. Debug formatting is stable within a version; after an upgrade every step
/// runs once, which is the safe side.
pub fn config_hash(hook: &Hook) -> String {
    use sha2::{Digest, Sha256};
    // Spelled as before the publish type had destinations, so that an upgrade does not make
    // every hook's next build run every step: the local publish, and the one to web hosts.
    let (publish, hosts) = match hook.publish.as_ref().map(|p| (p, &p.to)) {
        None => (None, None),
        Some((p, Destinations::Local(to))) => (Some((&p.from, to)), None),
        Some((p, Destinations::Hosts(h))) => (None, Some((&p.from, &h.local, h.hosts.as_slice()))),
        Some((p, Destinations::Bucket { local, .. })) => (None, Some((&p.from, local, &[][..]))),
    };
    let mut text = format!(
        "{:?}",
        (
            &hook.repo,
            &hook.remote,
            &hook.branch,
            &hook.clean,
            &hook.steps,
            &hook.env,
            &hook.path,
            publish,
            hosts
        )
    );
    // Where the bucket is and the headers its files get decide what a publish sends; only
    // hooks with a bucket have it, so that other hooks' fingerprints stay as they were.
    if let Some(b) = hook.publish.as_ref().and_then(|p| p.bucket()) {
        text.push_str(&format!(" bucket {:?} {:?}", b.remote, b.cache_control));
    }
    Sha256::digest(text.as_bytes())
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(in crate::build) fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// The build knows its commit: status.json says it, and the author hears that it builds.
fn commit_known(run: &mut Run, commit: &str) {
    let known = run.state.update_progress(|s| {
        if let Some(cur) = s.current.as_mut() {
            cur.commit = Some(commit.to_string());
        }
    });
    if let Ok(status) = known {
        run.reports.started(run.hook, run.state, &status);
    }
}

/// Sync, clean, steps, publish. The error names the failed stage and how it ended.
fn stages(
    run: &mut Run,
    hook: &Hook,
    cancel: &mut dyn FnMut(&str) -> bool,
    commit: &mut Option<String>,
    plan: &Plan,
    timing: &mut Timing,
) -> std::result::Result<Done, Failed> {
    let clock = Instant::now();
    let fetched = match run.preview {
        Some(pb) => Some(preview::stage::fetch(run, pb, cancel)?),
        None => {
            let fetch = Cmd::Argv(vec![
                "git".into(),
                "fetch".into(),
                hook.remote.clone(),
                hook.branch.clone(),
            ]);
            run.command(&fetch, "git fetch", cancel)?;
            run.git_answer(&["rev-parse", "FETCH_HEAD"])
        }
    };
    // Already built and live, with the same config: a redelivery, or a follow-up build
    // that finds nothing new. No reset, no step, no publish.
    if let (Some(base), Some(head), false) = (&plan.base, &fetched, plan.force) {
        // Several hosts: what status.json recorded (rollback records there too).
        let is_live = match (run.preview, &hook.publish) {
            (Some(pb), _) => base.release.is_some() && preview::stage::live(pb) == base.release,
            (None, Some(p)) => base.release.is_some() && publish::live(p, plan.live_release.as_deref()) == base.release,
            (None, None) => true,
        };
        if base.commit == *head && base.config == plan.config && is_live {
            timing.fetch = Some(clock.elapsed().as_secs_f64());
            run.note(&format!(
                "commit {head}\nunchanged: {} is the commit of build {}{}, with the same config; nothing to do (deploy-hook run {} --force builds anyway)",
                short(head),
                base.id,
                base.release.as_ref().map(|r| format!(", live as {r}")).unwrap_or_default(),
                hook.name
            ));
            commit_known(run, head);
            *commit = fetched;
            return Ok(Done::Unchanged(base.clone()));
        }
    }
    match (run.preview, &fetched) {
        (Some(pb), Some(head)) => preview::stage::checkout(run, pb, head, cancel)?,
        _ => {
            let reset = Cmd::Argv(["git", "reset", "--hard", "FETCH_HEAD"].map(String::from).to_vec());
            run.command(&reset, "git reset", cancel)?;
        }
    }
    // A theme in a submodule must be the commit's, or a bumped theme publishes the old one:
    // checked out at the commit's revisions, recursively, with the fetch's environment and
    // time limit. `sync` first, so that a submodule's URL changed in `.gitmodules` is used.
    // (git refuses file:// submodules by default since 2.38; `env` can allow them, with
    // GIT_CONFIG_* or a `home/.gitconfig`.)
    if run.tree.join(".gitmodules").exists() {
        for argv in [
            &["git", "submodule", "sync", "--recursive"][..],
            &["git", "submodule", "update", "--init", "--recursive", "--force"][..],
        ] {
            run.command(
                &Cmd::Argv(argv.iter().map(|a| a.to_string()).collect()),
                "git submodule",
                cancel,
            )?;
        }
    }
    let head = run.git_answer(&["rev-parse", "HEAD"]);
    if let Some(c) = &head {
        run.env.insert("DEPLOY_HOOK_COMMIT".into(), c.clone());
        run.note(&format!("commit {c}"));
        commit_known(run, c);
    }
    *commit = head.clone();
    timing.fetch = Some(clock.elapsed().as_secs_f64());

    let clock = Instant::now();
    let mut removed = Vec::new();
    for rel in &hook.clean {
        match remove_inside(&run.tree, rel) {
            Ok(true) => {
                run.note(&format!("removed {}", rel.display()));
                removed.push(rel.to_string_lossy().into_owned());
            }
            Ok(false) => {}
            Err(why) => {
                run.note(&format!("clean: {why}"));
                return Err(Failed::new(
                    format!("clean {}", rel.display()),
                    "clean",
                    Exit::NotStarted(why),
                ));
            }
        }
    }
    timing.clean = Some(clock.elapsed().as_secs_f64());

    let clock = Instant::now();
    let tree = if hook.steps.is_empty() { None } else { tree::record(run) };
    // The steps skipped so far: should a later step fail, they are forgotten and the
    // delivery built again at once (`again`), in case what they left is what is missing.
    let mut skipped: Vec<String> = Vec::new();
    for (i, step) in hook.steps.iter().enumerate() {
        let key = step.run.to_string();
        let label = step_label(i + 1, &step.run);
        let mut inputs = None;
        if !step.if_changed.is_empty() {
            let last = tree.as_ref().and_then(|t| t.get(&key));
            inputs = tree::inputs_hash(run, step);
            let head = head.as_deref().unwrap_or("HEAD");
            let plan = (plan.force, plan.config.as_str());
            let by = (last.as_ref(), removed.as_slice());
            match tree::must_run(run, plan, step, by, inputs.as_deref(), head) {
                Ok(why) => run.note(&format!("\n{}: runs ({why})", step.run)),
                Err(why) => {
                    run.note(&format!("\n{}: {why}", step.run));
                    skipped.push(key);
                    continue;
                }
            }
        }
        // Forgotten before it starts, whichever hook runs it, with or without if_changed:
        // from now until it succeeds, what it leaves in the checkout is unknown.
        if let Some(t) = &tree {
            if let Err(e) = t.forget(&key) {
                let why = format!(
                    "cannot update {}: {e} (it must be writable by the build's user, {})",
                    t.path().display(),
                    crate::sys::privilege::current_user_name()
                );
                run.note(&format!("\n{}: {why}", step.run));
                return Err(Failed::new(key, &label, Exit::NotStarted(why)));
            }
        }
        let result = run.command(&step.run, &label, cancel);
        timing.steps = Some(clock.elapsed().as_secs_f64());
        // A step that failed on its own, not one stopped for a newer delivery (whose build
        // follows anyway) or for production (a preview's).
        let failed = matches!(&result, Err(f) if f.exit != Exit::Cancelled);
        if failed && !skipped.is_empty() {
            if let Some(t) = &tree {
                again(run, t, &skipped);
            }
        }
        result?;
        if let (Some(t), Some(inputs), Some(commit)) = (&tree, inputs, &head) {
            let done = StepRun {
                inputs,
                commit: commit.clone(),
                hook: hook.name.clone(),
                config: plan.config.clone(),
                finished: time::rfc3339(time::now()),
                left: hook
                    .clean
                    .iter()
                    .filter(|rel| run.tree.join(rel).symlink_metadata().is_ok())
                    .map(|rel| rel.to_string_lossy().into_owned())
                    .collect(),
            };
            // Not recorded: the next build runs it again, the safe side.
            if let Err(e) = t.remember(&key, done) {
                run.note(&format!("cannot record it in {}: {e}", t.path().display()));
            }
        }
    }
    timing.steps = Some(clock.elapsed().as_secs_f64());

    let clock = Instant::now();
    let out = match run.preview {
        Some(pb) => preview::stage::publish(run, pb, cancel, commit.as_deref()).map(Some),
        None => release::publish_stage(
            run,
            hook,
            cancel,
            commit.as_deref(),
            plan.held.as_ref(),
            &plan.live_history,
        ),
    };
    if hook.publish.is_some() {
        timing.publish = Some(clock.elapsed().as_secs_f64());
    }
    out.map(Done::Built)
}

/// After a step failed in a build that skipped `skipped`: what they left may be what is
/// missing (node_modules removed behind our back), so they are forgotten and the delivery
/// is built again at once, once: in that build nothing forgotten can be skipped.
fn again(run: &mut Run, tree: &tree::TreeRecord, skipped: &[String]) {
    let mut forgotten = Vec::new();
    for key in skipped {
        match tree.forget(key) {
            Ok(()) => forgotten.push(key),
            // Not forgotten: the record stands, and the next build would skip it again.
            Err(e) => run.note(&format!(
                "{key} was skipped in this build: cannot update {}: {e}",
                tree.path().display()
            )),
        }
    }
    if forgotten.is_empty() {
        return;
    }
    let delivery = Pending {
        received: time::rfc3339(time::now()),
        tokens: Vec::new(),
        ..run.pending.clone()
    };
    let next = match run.state.put_back(&delivery) {
        Ok(()) => "it runs in the build that follows at once".to_string(),
        Err(e) => format!("it runs in the next build (this delivery could not wait again: {e})"),
    };
    for key in forgotten {
        run.note(&format!("{key} was skipped in this build: {next}"));
    }
}

/// What to do after a publish the bucket did not take (down, unreachable, refusing): no
/// build is tried again by itself, so the admin is told what brings the site up to date.
pub(crate) fn bucket_next_step(hook: &str) -> String {
    format!(
        "nothing retries by itself; once the bucket answers, `deploy-hook run {hook}` publishes the newest commit (so does the next push)"
    )
}

#[cfg(test)]
mod tests {
    use super::next_id;

    #[test]
    fn ids_of_one_millisecond_sort_in_creation_order() {
        let mut made: Vec<String> = Vec::new();
        for _ in 0..12 {
            let id = next_id("20261128-042930-449", |id| made.iter().any(|m| m == id));
            made.push(id);
        }
        assert_eq!(made[1], "20261128-042930-449-02");
        let mut sorted = made.clone();
        sorted.sort();
        assert_eq!(sorted, made);
    }
}
