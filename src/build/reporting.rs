//! The build's side of what the author sees (`crate::report`): what the build engine knows
//! (status.json, the running build, its log, the checkout's commits) turned into what the
//! report shows, at the moments it shows it: the page when a build starts, at each step
//! and when it ends; the forge's status and the robots' messages when the commit is known
//! and when the build is recorded (by its own worker, or by recovery after it died).
//!
//! A preview's build (issue 16) reports only its commit status, named `CONTEXT/preview` and
//! linked to the preview's address; the page is the production site's, and lists the
//! previews (rewritten after a preview's build and removal, `page_now`); robots are about
//! the production site.
//!
//! Only the build worker (and `run --wait`) makes `Reports`; a delivery never does. Nothing
//! here can fail a build: the page is a few file writes whose failure is logged, and what
//! goes over the network is queued to the reporter's threads.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::build::preview::{self, store::Store};
use crate::build::state::{BuildRecord, HookState, Status};
use crate::config::{Config, Hook, LogConfig};
use crate::error::BuildResult;
use crate::report::event::{Build, Commit, Conclusion};
use crate::report::page::{Held, Preview, Running, View};
use crate::report::{Reporter, JOIN};
use crate::sys::log::Log;
use crate::sys::process::{Out, Process};
use crate::sys::time;

/// What one worker reports for one hook, with what it learnt of the commits.
pub struct Reports {
    reporter: Reporter,
    /// Subject and author by commit id, read from the checkout once each.
    commits: HashMap<String, (String, String)>,
    /// The failure lines of the last failed build read (by id): its message and the
    /// page's box read them once.
    lines: Option<(String, Vec<String>)>,
    /// Where the reporter's warnings go; opened when there is something to report.
    log: Option<Log>,
    log_config: LogConfig,
    /// A preview's build: its address, where its commit status links.
    target_url: Option<String>,
}

impl Reports {
    pub fn new(hook: &Hook, cfg: &Config) -> Reports {
        Reports {
            reporter: Reporter::new(hook, cfg),
            commits: HashMap::new(),
            lines: None,
            log: None,
            log_config: cfg.log.clone(),
            target_url: None,
        }
    }

    /// The reports of a build of the preview at `url` that builds `git_ref`: its commit
    /// status only, named `CONTEXT/preview` (a commit may be production's too, and its status
    /// is not to be overwritten), linked to `url`, on GitLab for the ref it builds (a merge
    /// request's pipelines are on `refs/merge-requests/N/head`).
    pub fn for_preview(hook: &Hook, cfg: &Config, git_ref: &str, url: &str) -> Reports {
        let mut h = hook.clone();
        h.page = None;
        h.notify.clear();
        if let Some(r) = h.report.as_mut() {
            let context = format!("{}/preview", r.context);
            if context.chars().count() <= 100 {
                r.context = context;
            }
        }
        h.branch = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref).to_string();
        let mut r = Reports::new(&h, cfg);
        r.target_url = Some(url.to_string());
        r
    }

    /// Its own log handle: the build's is borrowed elsewhere while it runs.
    fn log(&mut self) -> Log {
        self.log.take().unwrap_or_else(|| Log::open(&self.log_config))
    }

    /// Rewrites the page from `status` (status.json as just written), with the running
    /// build's log when the page publishes logs.
    pub fn page(&mut self, hook: &Hook, state: &HookState, status: &Status) {
        if !self.reporter.has_page() {
            return;
        }
        let mut log = self.log();
        let view = self.view(hook, state, status);
        self.reporter.write_page(&view, &mut log);
        if let Some((c, path)) = status
            .current
            .as_ref()
            .and_then(|c| own_log(state, &c.log).map(|p| (c, p)))
        {
            self.reporter.publish_log(&c.id, path, true, &mut log);
        }
        self.log = Some(log);
    }

    /// The running build knows its commit: the forge hears `pending`, robots with
    /// `started` hear of it, and the page shows the commit.
    pub fn started(&mut self, hook: &Hook, state: &HookState, status: &Status) {
        if !self.reporter.active() {
            return;
        }
        let mut log = self.log();
        if let Some(c) = &status.current {
            let commit = c.commit.as_deref().and_then(|sha| self.commit(hook, state, sha));
            let b = Build {
                id: c.id.clone(),
                conclusion: Conclusion::Building,
                commit,
                started: c.started.clone(),
                duration_secs: 0.0,
                failed_at: None,
                release: None,
                lines: Vec::new(),
                timeout_secs: None,
                target_url: self.target_url.clone(),
            };
            self.reporter.started(&b, &mut log);
        }
        self.log = Some(log);
        self.page(hook, state, status);
    }

    /// `record` was recorded; `status` is status.json with it. The page with its log, its
    /// final status, the messages its event asks for. Recovery calls this too, for a
    /// build whose worker died.
    pub fn finished(&mut self, hook: &Hook, state: &HookState, status: &Status, record: &BuildRecord) {
        // A preview's build stopped for production's is built again at once: its commit's
        // status stays pending.
        if !self.reporter.active() || record.result == BuildResult::Stopped {
            return;
        }
        let b = self.build_of(hook, state, record, true);
        let previous = status
            .history
            .iter()
            .filter(|r| r.id != record.id)
            .map(conclusion)
            .find(|c| *c != Conclusion::Superseded);
        self.page(hook, state, status);
        let mut log = self.log();
        self.reporter.finished(&b, previous, &mut log);
        self.log = Some(log);
    }

    /// Publishes a finished build's log, once nothing writes into it any more (it is cut
    /// to `log_max_bytes` last).
    pub fn publish_log(&mut self, state: &HookState, record: &BuildRecord) {
        let Some(path) = own_log(state, &record.log).filter(|_| self.reporter.has_page()) else {
            return;
        };
        let mut log = self.log();
        self.reporter.publish_log(&record.id, path, false, &mut log);
        self.log = Some(log);
    }

    /// After the worker's last build, with the build lock let go: what is still queued
    /// goes out, for at most `JOIN`.
    pub fn join(mut self) {
        if !self.reporter.active() {
            return;
        }
        let mut log = self.log();
        self.reporter.join(JOIN, &mut log);
    }

    /// A recorded build as the report shows it; `lines`: read the failure lines from its
    /// log (only the builds a message or the page's failure box is about).
    fn build_of(&mut self, hook: &Hook, state: &HookState, r: &BuildRecord, lines: bool) -> Build {
        let c = conclusion(r);
        let commit = r.commit.as_deref().and_then(|sha| self.commit(hook, state, sha));
        let failed_at = r
            .failed_at
            .clone()
            .or_else(|| r.failed_step.as_deref().map(|s| step_words(hook, s, false)));
        Build {
            id: r.id.clone(),
            conclusion: c,
            commit,
            started: r.started.clone(),
            duration_secs: r.duration_secs,
            failed_at,
            release: r.release.clone(),
            lines: if lines && c.failure() {
                self.failure_lines(state, r)
            } else {
                Vec::new()
            },
            timeout_secs: (c == Conclusion::TimedOut).then_some(hook.step_timeout.as_secs()),
            target_url: self.target_url.clone(),
        }
    }

    fn failure_lines(&mut self, state: &HookState, r: &BuildRecord) -> Vec<String> {
        match &self.lines {
            Some((id, lines)) if *id == r.id => lines.clone(),
            _ => {
                let lines = own_log(state, &r.log)
                    .map(|p| self.reporter.failure_lines(p, r.failed_step.as_deref()))
                    .unwrap_or_default();
                self.lines = Some((r.id.clone(), lines.clone()));
                lines
            }
        }
    }

    fn view(&mut self, hook: &Hook, state: &HookState, status: &Status) -> View {
        self.learn(hook, state, status);
        let mut builds = Vec::new();
        let running = status.current.as_ref().map(|c| {
            builds.push(Build {
                id: c.id.clone(),
                conclusion: Conclusion::Building,
                commit: c.commit.as_deref().and_then(|sha| self.commit(hook, state, sha)),
                started: c.started.clone(),
                duration_secs: 0.0,
                failed_at: None,
                release: None,
                lines: Vec::new(),
                timeout_secs: None,
                target_url: None,
            });
            Running {
                id: c.id.clone(),
                started: c.started.clone(),
                step: c.step.as_deref().map(|s| step_words(hook, s, true)),
                step_started: c.step_started.clone(),
            }
        });
        // The failure lines only of the build the failure box is about: the last one that
        // was not superseded.
        let boxed = status
            .history
            .iter()
            .find(|r| conclusion(r) != Conclusion::Superseded)
            .map(|r| r.id.clone());
        for r in &status.history {
            let with_lines = boxed.as_deref() == Some(r.id.as_str()) && running.is_none();
            builds.push(self.build_of(hook, state, r, with_lines));
        }
        View {
            hook: hook.name.clone(),
            branch: hook.branch.clone(),
            running,
            pending: status.pending,
            live_release: status.live_release.clone(),
            held: status.held.as_ref().map(|h| Held {
                since: h.since.clone(),
                release: h.release.clone(),
            }),
            builds,
            commit_url: self.reporter.commit_url(),
            logs: hook.page.as_ref().is_some_and(|p| p.logs),
            previews: previews_of(hook, state),
            now: time::now(),
        }
    }

    /// Reads the subjects and authors of the commits `status` names that are not known yet,
    /// with one git command.
    fn learn(&mut self, hook: &Hook, state: &HookState, status: &Status) {
        let wanted: Vec<&str> = status
            .current
            .iter()
            .filter_map(|c| c.commit.as_deref())
            .chain(status.history.iter().filter_map(|r| r.commit.as_deref()))
            .filter(|sha| !self.commits.contains_key(*sha))
            .collect();
        self.read_commits(hook, state, &wanted);
    }

    fn commit(&mut self, hook: &Hook, state: &HookState, sha: &str) -> Option<Commit> {
        if !self.commits.contains_key(sha) {
            self.read_commits(hook, state, &[sha]);
        }
        let (subject, author) = self.commits.get(sha).cloned().unwrap_or_default();
        Some(Commit {
            sha: sha.to_string(),
            subject,
            author,
        })
    }

    fn read_commits(&mut self, hook: &Hook, state: &HookState, shas: &[&str]) {
        // Only commit ids: nothing git could read as an option.
        let shas: Vec<&str> = shas.iter().copied().filter(|s| hex_id(s)).collect();
        if shas.is_empty() {
            return;
        }
        let home = hook.env.get("HOME").map(Into::into).unwrap_or_else(|| state.home_dir());
        let mut p = Process::new("git");
        p.args([
            "log",
            "--no-walk=unsorted",
            "--ignore-missing",
            "--format=%H%x00%s%x00%an",
        ])
        .args(&shas)
        .cwd(&hook.repo)
        .env(&hook.child_env(&home))
        .nice(hook.nice)
        .timeout(Duration::from_secs(10));
        let done = p.run(Out::Capture, Out::Capture, &mut || false);
        for line in String::from_utf8_lossy(&done.stdout).lines() {
            let mut parts = line.splitn(3, '\0');
            if let (Some(sha), Some(subject), Some(author)) = (parts.next(), parts.next(), parts.next()) {
                let (subject, author) = (self.reporter.clean(subject), self.reporter.clean(author));
                self.commits.insert(sha.to_string(), (subject, author));
            }
        }
        // Gone from the checkout (a force push and a gc): known, without words.
        for sha in shas {
            self.commits.entry(sha.to_string()).or_default();
        }
    }
}

/// A build's log as status.json names it, when it is one of the hook's own: status.json is
/// not trusted with a path, and what is read here may be published.
fn own_log<'a>(state: &HookState, path: &'a str) -> Option<&'a Path> {
    let p = Path::new(path);
    (p.parent() == Some(state.builds_dir().as_path())).then_some(p)
}

/// The previews the page lists: those that serve a release, by name.
fn previews_of(hook: &Hook, state: &HookState) -> Vec<Preview> {
    let Some(p) = &hook.previews else {
        return Vec::new();
    };
    let store = Store {
        hook_dir: state.dir.clone(),
    };
    preview::shown(&store, p)
        .into_iter()
        .filter_map(|s| {
            Some(Preview {
                built: s.built?,
                name: s.name,
                git_ref: s.git_ref,
                commit: s.commit,
                url: s.url,
            })
        })
        .collect()
}

/// After a change to what is live outside a build (`rollback`, `resume`; a preview's
/// build or removal): the page says it (the live release, the hold, the previews).
pub fn page_now(hook: &Hook, state: &HookState, cfg: &Config) {
    if hook.page.is_none() {
        return;
    }
    if let Ok(status) = state.read_status() {
        Reports::new(hook, cfg).page(hook, state, &status);
    }
}

/// How a recorded build ended, as the report says it.
fn conclusion(r: &BuildRecord) -> Conclusion {
    Conclusion::from(r.result)
}

fn hex_id(s: &str) -> bool {
    (4..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the page may say of a running or failed command: its position and program, or
/// the stage, never its arguments (one may hold a token). A failed step is labelled as the
/// build records it (`step 2 (pnpm)`, `pipeline::step_label`), whether its build ended or
/// its worker died; the running one with the count, for progress (`step 2 of 3 (pnpm)`).
fn step_words(hook: &Hook, command: &str, running: bool) -> String {
    if command.starts_with("git fetch") {
        return "fetching".into();
    }
    if command.starts_with("git reset") {
        return "checking out".into();
    }
    if command == "publish" || command.starts_with("publish ") {
        return "publishing".into();
    }
    if command.starts_with("clean ") {
        return "cleaning".into();
    }
    match hook.steps.iter().position(|s| s.run.to_string() == command) {
        Some(i) if running => {
            let program = hook.steps[i].run.program();
            format!(
                "step {} of {} ({})",
                i + 1,
                hook.steps.len(),
                program.rsplit('/').next().unwrap_or(program)
            )
        }
        Some(i) => crate::build::pipeline::step_label(i + 1, &hook.steps[i].run),
        None => "running".into(),
    }
}
