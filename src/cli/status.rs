//! `deploy-hook status`: the state and the last builds of each hook as a person or a script
//! reads them, what each web host serves, and `--follow`, which streams a running build's
//! log until it ends.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{become_owner, hook_and_state};
use crate::build::queue;
use crate::build::state::{BuildResult, Current, HookState, State, Status};
use crate::config::{self, Config, Destinations, Hook};
use crate::error::{exit, Error, Result};
use crate::publish::{self, bucket, hosts};
use crate::report::logtext::strip_colours;
use crate::sys::text::{printable, printable_lines};
use crate::sys::time;

/// A value from status.json, a web host or the build log, as the terminal gets it: what
/// www-data or a web host can write must not move the admin's cursor or set their title.
fn shown(s: &str) -> String {
    printable(s, 1000)
}

/// A build log streamed to the terminal: whole lines, colours dropped and the rest escaped
/// (`shown`), so that an escape sequence is never cut between two reads and sent half raw.
#[derive(Default)]
struct LogLines {
    partial: Vec<u8>,
}

impl LogLines {
    /// The complete lines in `partial` + `more`, escaped; keeps the rest for later.
    fn take(&mut self, more: &[u8]) -> String {
        self.partial.extend_from_slice(more);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return String::new();
        };
        let lines: Vec<u8> = self.partial.drain(..=end).collect();
        printable_lines(&strip_colours(&String::from_utf8_lossy(&lines)))
    }

    /// What is left when the build ended: a last line without its newline.
    fn rest(&mut self) -> String {
        let rest = std::mem::take(&mut self.partial);
        if rest.is_empty() {
            String::new()
        } else {
            printable_lines(&strip_colours(&String::from_utf8_lossy(&rest))) + "\n"
        }
    }
}

/// The status as a person or a script should see it: a "building" status whose lock is
/// free belongs to a worker that died.
/// `stale`: it says building and its builder is gone (the lock is free, or the builder
/// that took it died and another process now recovers its build); `unheld`: and nobody
/// holds the lock, so nobody recovers it yet.
fn live_status(state: &HookState) -> Result<(Status, bool, bool)> {
    let status = state.read_status()?;
    let building = status.state == State::Building && state.dir.exists();
    let unheld = building && !queue::is_building(state).unwrap_or(true);
    let stale = unheld || (building && queue::builder_gone(state));
    Ok((status, stale, unheld))
}

pub(super) fn status(config: &Path, one: Option<&str>, json_out: bool, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let names: Vec<String> = match one {
        Some(n) => vec![hook_and_state(&cfg, n)?.0.name.clone()],
        None => cfg.hooks.keys().cloned().collect(),
    };
    become_owner(&cfg, one, false)?;
    let mut json = serde_json::Map::new();
    for name in &names {
        let (hook, state) = hook_and_state(&cfg, name)?;
        let (status, stale, unheld) = live_status(&state)?;
        // Looking is the one event there may be after a worker died: start its recovery,
        // unless someone holds the lock (and so recovers it).
        let recovering = stale && (!unheld || queue::start_recovery(&cfg, hook, &state).is_ok());
        let live = hook
            .publish
            .as_ref()
            .and_then(|p| publish::live(p, status.live_release.as_deref()));
        let hosts = match hook.publish.as_ref().map(|p| &p.to) {
            Some(Destinations::Hosts(h)) => Some(hosts_status(hook, &state, h)),
            Some(Destinations::Local(_) | Destinations::Bucket { .. }) | None => None,
        };
        let bucket = hook
            .publish
            .as_ref()
            .and_then(|p| p.bucket())
            .map(|b| bucket_status(hook, &state, b));
        if json_out {
            let mut v = serde_json::to_value(&status).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("hook".into(), name.clone().into());
                o.insert("interrupted".into(), stale.into());
                // Always there, null when not held, so that a script can test it.
                o.entry("held").or_insert(serde_json::Value::Null);
                if let Some(l) = &live {
                    o.insert("live_release".into(), l.clone().into());
                }
                if let Some(h) = &hosts {
                    o.insert("hosts".into(), serde_json::to_value(h).unwrap_or_default());
                }
                if let Some(b) = &bucket {
                    o.insert("bucket".into(), serde_json::to_value(b).unwrap_or_default());
                }
                if let Some(p) = &hook.previews {
                    let store = crate::build::preview::store::Store::new(&cfg.state_dir, &hook.name);
                    let shown = crate::build::preview::shown(&store, p);
                    o.insert("previews".into(), serde_json::to_value(shown).unwrap_or_default());
                }
            }
            json.insert(name.clone(), v);
        } else {
            print_status(out, hook, &status, (stale, recovering), live.as_deref());
            if let Some(h) = &hosts {
                out.write_all(hosts::status_text(h).as_bytes()).ok();
            }
            if let Some(b) = &bucket {
                out.write_all(bucket::target::status_text(b).as_bytes()).ok();
            }
            out.write_all(super::previews::status_lines(&cfg, hook).as_bytes()).ok();
        }
    }
    if json_out {
        let v = if one.is_some() {
            json.into_iter().next().map(|(_, v)| v).unwrap_or_default()
        } else {
            serde_json::Value::Object(json)
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default()).ok();
    }
    Ok(exit::OK)
}

/// How long `--follow` waits for a waiting delivery's build while no build runs at all (the
/// build lock is free): a worker takes the lock within milliseconds of a 202, so one that
/// has not in this time is not coming (`worker.log` says why).
const NO_WORKER_PATIENCE: Duration = Duration::from_secs(30);

/// The build running now (its worker holds the lock), if any.
fn running(state: &HookState, st: &Status) -> Result<Option<Current>> {
    match &st.current {
        Some(c) if st.state == State::Building && queue::is_building(state)? => Ok(Some(c.clone())),
        _ => Ok(None),
    }
}

/// Streams a build's log until the build ends, with a verdict for a script: exit 0 when
/// the build it followed succeeded (or was unchanged).
///
/// Which build: when a delivery waits (`pending`, or taken and not yet recorded), the first
/// build that starts from now on, since that build takes the newest waiting delivery (or a
/// newer one) and builds the branch head as it is then; a build running meanwhile is
/// streamed too, as what comes first. Else the running build. Else nothing runs or waits,
/// and the verdict is the last build's, so that a script waiting on `--follow` never takes
/// a failed build for a good one. A followed build that was superseded hands over to the
/// build that superseded it.
pub(super) fn follow(config: &Path, one: Option<&str>, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let name = match one {
        Some(n) => n.to_string(),
        None => cfg
            .hook(None)
            .map_err(|_| Error::Usage("status --follow needs a HOOK name".into()))?
            .name
            .clone(),
    };
    let (hook, state) = hook_and_state(&cfg, &name)?;
    become_owner(&cfg, Some(&name), false)?;
    // Read together: a delivery being taken is seen waiting or building, never neither.
    let (status, waiting) = state.read_with_pending()?;
    let now = running(&state, &status)?;
    // Builds that started before now: not the one a waiting delivery gets.
    let mut before: HashSet<String> = status.history.iter().map(|b| b.id.clone()).collect();
    if let (Some(dead), None, State::Building) = (&status.current, &now, status.state) {
        // Its worker died: start its recovery, which records it and builds its delivery
        // again. The build followed is that one, which did not succeed.
        let recovering = queue::start_recovery(&cfg, hook, &state).is_ok();
        if !waiting {
            writeln!(
                out,
                "{name}: build {} was interrupted: its worker died; {}",
                shown(&dead.id),
                if recovering {
                    format!("a worker now records it and builds its delivery again (deploy-hook status {name} --follow follows that build)")
                } else {
                    "the next build records it".to_string()
                }
            )
            .ok();
            return Ok(exit::FAILED);
        }
        before.insert(dead.id.clone());
    }
    let mut target = None;
    if waiting {
        before.extend(now.map(|c| c.id));
        writeln!(out, "{name}: a delivery waits; following the build that takes it").ok();
    } else if let Some(c) = now {
        target = Some(c.id);
    } else {
        let Some(l) = status.last.as_ref() else {
            writeln!(out, "{name}: no build is running, and none has run yet").ok();
            return Ok(exit::FAILED);
        };
        writeln!(
            out,
            "{name}: no build is running; the last build, {}, {}: {}",
            shown(&l.id),
            l.result,
            shown(&l.log)
        )
        .ok();
        return Ok(l.result.exit_code());
    }
    let mut streamed: HashSet<String> = HashSet::new();
    let mut no_worker_since: Option<Instant> = None;
    loop {
        let st = state.read_status()?;
        if let Some(c) = running(&state, &st)?.filter(|c| !streamed.contains(&c.id)) {
            if target.is_none() && !before.contains(&c.id) {
                target = Some(c.id.clone());
            }
            stream(&state, &name, &c.id, &c.log, out)?;
            streamed.insert(c.id);
            no_worker_since = None;
            continue;
        }
        if let Some(t) = &target {
            // It ended: its record, or none when its worker died before writing one.
            let record = st.history.iter().find(|b| &b.id == t);
            if let (Some(r), false) = (record, streamed.contains(t)) {
                // It ran and ended between two looks.
                stream(&state, &name, &r.id, &r.log, out)?;
                streamed.insert(r.id.clone());
            }
            let result = record.map(|b| b.result).unwrap_or(BuildResult::Interrupted);
            if result == BuildResult::Superseded {
                writeln!(out, "{name}: following the build that superseded it").ok();
                before.extend(st.history.iter().map(|b| b.id.clone()));
                target = None;
                continue;
            }
            return Ok(result.exit_code());
        }
        // Still waiting: a build that started and ended between two looks is the one.
        if let Some(r) = st.history.iter().rev().find(|b| !before.contains(&b.id)) {
            target = Some(r.id.clone());
            continue;
        }
        if queue::is_building(&state)? {
            no_worker_since = None;
        } else if no_worker_since.get_or_insert_with(Instant::now).elapsed() > NO_WORKER_PATIENCE {
            writeln!(
                out,
                "{name}: no build took the waiting delivery within {}s and none runs: the build worker did not start (see {}); deploy-hook run {name} starts one",
                NO_WORKER_PATIENCE.as_secs(),
                state.worker_log_path().display()
            )
            .ok();
            return Ok(exit::FAILED);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Streams build `id`'s log from its start until the build no longer runs, then says how
/// it ended.
fn stream(state: &HookState, name: &str, id: &str, log: &str, out: &mut dyn Write) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    writeln!(out, "{name}: following build {} ({})", shown(id), shown(log)).ok();
    let mut file = std::fs::File::open(log).map_err(|e| Error::io(format!("cannot open {log}"), e))?;
    let mut pos = 0u64;
    let mut buf = Vec::new();
    let mut lines = LogLines::default();
    loop {
        // Read the verdict before the last read, so no line written before the end is missed.
        let st = state.read_status()?;
        let finished = running(state, &st)?.is_none_or(|c| c.id != id);
        file.seek(SeekFrom::Start(pos))
            .map_err(|e| Error::io("cannot read the build log", e))?;
        buf.clear();
        file.read_to_end(&mut buf)
            .map_err(|e| Error::io("cannot read the build log", e))?;
        pos += buf.len() as u64;
        out.write_all(lines.take(&buf).as_bytes()).ok();
        out.flush().ok();
        if finished {
            out.write_all(lines.rest().as_bytes()).ok();
            let record = st.history.iter().find(|b| b.id == id);
            let result = record.map(|b| b.result).unwrap_or(BuildResult::Interrupted);
            writeln!(out, "{name}: build {} {result}", shown(id)).ok();
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn by_word(by: publish::By) -> &'static str {
    match by {
        publish::By::Publish => "publish",
        publish::By::Rollback => "rollback",
        publish::By::Resume => "resume",
    }
}

/// How a build that did not succeed relates to the step it names.
fn ended_in(result: BuildResult) -> &'static str {
    match result {
        BuildResult::Interrupted => "interrupted at",
        BuildResult::Superseded => "superseded during",
        BuildResult::TimedOut => "timed out",
        _ => "failed",
    }
}

fn since(ts: &str) -> String {
    time::parse_rfc3339(ts)
        .map(|t| time::human_duration(time::now().as_secs().saturating_sub(t) as f64))
        .unwrap_or_else(|| "?".into())
}

/// The first 10 characters of a commit id (by character: status.json may hold anything).
fn short(commit: Option<&str>) -> &str {
    match commit {
        Some(c) => c.char_indices().nth(10).map_or(c, |(i, _)| &c[..i]),
        None => "-",
    }
}

/// `stale`: the status says building, and its builder is gone (`live_status`);
/// `recovering`: a worker records that build and builds its delivery again.
fn print_status(out: &mut dyn Write, hook: &Hook, s: &Status, (stale, recovering): (bool, bool), live: Option<&str>) {
    let mut w = String::new();
    w.push_str(&format!(
        "{} ({} push to {}, repo {})\n",
        hook.name,
        hook.provider.name(),
        shown(&hook.branch),
        shown(&hook.repo.display().to_string())
    ));
    match (&s.current, stale) {
        (Some(c), false) if s.state == State::Building => {
            w.push_str(&format!(
                "  state:   building {} for {} (commit {}, delivery {})\n",
                shown(&c.id),
                since(&c.started),
                shown(short(c.commit.as_deref())),
                shown(&c.delivery)
            ));
            if let Some(step) = &c.step {
                w.push_str(&format!(
                    "  step:    {} (for {})\n",
                    shown(step),
                    c.step_started.as_deref().map(since).unwrap_or_default()
                ));
            }
            w.push_str(&format!("  log:     {}\n", shown(&c.log)));
        }
        (Some(c), true) => {
            w.push_str(&format!(
                "  state:   interrupted: build {} lost its worker; {}\n",
                shown(&c.id),
                if recovering {
                    "a worker now records it, cleans up and builds its delivery again"
                } else {
                    "the next build records it and cleans up"
                }
            ));
        }
        _ => w.push_str("  state:   idle\n"),
    }
    w.push_str(&format!(
        "  pending: {}\n",
        if s.pending {
            "yes, a build from the newest commit follows"
        } else {
            "no"
        }
    ));
    if let Some(l) = live {
        // When it went live, if the live history knows (it does for what deploy-hook switched).
        let since = s
            .live_history
            .first()
            .filter(|h| h.release == l)
            .map(|h| format!(" (since {}, by {})", shown(&h.since), by_word(h.by)))
            .unwrap_or_default();
        w.push_str(&format!("  live:    {}{since}\n", shown(l)));
    }
    if let Some(h) = &s.held {
        w.push_str(&format!(
            "  held:    since {} at release {}: builds make their releases but none is switched to; deploy-hook resume {} lifts it\n",
            shown(&h.since),
            shown(&h.release),
            hook.name
        ));
    }
    if let Some(rb) = &s.last_rollback {
        w.push_str(&format!(
            "  rollback: to {} from {} at {}\n",
            shown(&rb.to),
            shown(rb.from.as_deref().unwrap_or("-")),
            shown(&rb.at)
        ));
    }
    match &s.last {
        None => w.push_str("  last:    no build yet\n"),
        Some(_) => {
            w.push_str("  recent builds (newest first):\n");
            for b in &s.history {
                w.push_str(&format!(
                    "    {:<24} {:<11} commit {:<10} {:>7}  {}{}\n",
                    shown(&b.id),
                    b.result,
                    shown(short(b.commit.as_deref())),
                    time::human_duration(b.duration_secs),
                    shown(&b.finished),
                    match (&b.failed_step, &b.release) {
                        (Some(f), _) => format!("  {}: {}", ended_in(b.result), shown(f)),
                        (None, Some(r)) if b.held => format!("  made {}, not switched to (held)", shown(r)),
                        _ => String::new(),
                    }
                ));
            }
            if let Some(last) = &s.last {
                w.push_str(&format!("  last log: {}\n", shown(&last.log)));
                let bucket_step = format!("publish {}", bucket::target::NAME);
                if last.result == BuildResult::Failed && last.failed_step.as_deref() == Some(bucket_step.as_str()) {
                    w.push_str(&format!(
                        "  next:    the last publish to the bucket failed and nothing was switched; {}\n",
                        crate::build::pipeline::bucket_next_step(&hook.name)
                    ));
                }
            }
        }
    }
    out.write_all(w.as_bytes()).ok();
}

/// What every web host serves, asked over ssh now (a host changed by hand shows).
fn hosts_status(hook: &Hook, state: &HookState, cfg: &config::Hosts) -> Vec<hosts::HostStatus> {
    let env = hook.child_env(&state.home_dir());
    let Ok(null) = crate::build::buildlog::BuildLog::discard() else {
        return Vec::new();
    };
    let tools = publish::Tools {
        env: &env,
        state_dir: &state.dir,
        upload_timeout: hook.step_timeout,
        log: &null,
        repo: &hook.repo,
    };
    hosts::status(cfg, &tools)
}

/// What the bucket serves, asked now (its manifest).
fn bucket_status(hook: &Hook, state: &HookState, cfg: &config::Bucket) -> bucket::target::Status {
    let env = hook.child_env(&state.home_dir());
    let (remote, release) = (cfg.remote.clone(), None);
    let Ok(null) = crate::build::buildlog::BuildLog::discard() else {
        return bucket::target::Status {
            remote,
            release,
            error: Some("cannot open /dev/null".into()),
        };
    };
    let tools = publish::Tools {
        env: &env,
        state_dir: &state.dir,
        upload_timeout: hook.step_timeout.min(std::time::Duration::from_secs(60)),
        log: &null,
        repo: &hook.repo,
    };
    bucket::target::status(cfg, &tools)
}
