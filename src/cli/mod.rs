//! The subcommands for people and scripts: `run`, `status`, `sign`, `rollback`, and the
//! hidden `__worker` that async deliveries start. `check` lives in check.rs and gets plain
//! values from here. The command line itself is declared in `args.rs`; this file holds
//! what each subcommand does.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::build::queue;
use crate::build::state::{HookState, Pending, Status};
use crate::config::{self, Config, GiteeMode, Hook, OnBusy, Provider, Secret};
use crate::delivery::cgi::Env;
use crate::delivery::verify;
use crate::error::{Error, Result};
use crate::publish;
use crate::publish::hosts;
use crate::sys::log::{q, Log};
use crate::sys::time;

mod args;
mod init;

pub use args::{Cli, Command, InitArgs, InitProvider, SignFormat};

/// Parses the command line and runs the subcommand; returns the exit code. clap's own
/// answers (help, version, a usage error with its suggestion) are printed here.
pub fn main(argv: Vec<OsString>, env: &Env, out: &mut dyn Write) -> Result<i32> {
    use clap::Parser;
    let cli = match Cli::try_parse_from(std::iter::once(OsString::from("deploy-hook")).chain(argv)) {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            out.flush().ok();
            eprint!("{}", with_newline(e.render().to_string()));
            // A usage error exits as every usage error does (error.rs), whatever clap's default.
            return Ok(Error::Usage(String::new()).exit_code());
        }
        Err(e) => {
            write!(out, "{}", with_newline(e.render().to_string())).ok();
            return Ok(0);
        }
    };
    // check locates the config itself (it reports where it looked); the others get a path.
    let Cli { config: flag, command } = cli;
    let config = config::locate(flag.clone(), env.get(std::ffi::OsStr::new(config::CONFIG_ENV)).cloned());
    match command {
        Command::Check { json } => crate::check::run(&crate::check::Options { config: flag, json }, env, out),
        Command::Run { hook, wait, force } => run(&config, &hook, RunOptions { wait, force }, out),
        Command::Status { hook, follow: true, .. } => follow(&config, hook.as_deref(), out),
        Command::Status { hook, json, .. } => status(&config, hook.as_deref(), json, out),
        Command::Rollback { hook, to } => rollback(&config, &hook, to.as_deref(), out),
        Command::Sign {
            hook,
            body,
            timestamp,
            format,
            show_secret,
        } => sign(
            &config,
            &hook,
            &SignOptions {
                body,
                timestamp,
                format,
                show_secret,
            },
            out,
        ),
        Command::Init(a) => init::run(&a, &config, env, out),
        Command::Worker { hook, wait } => worker(&config, &hook, wait, out),
    }
}

/// clap ends some of its texts (the long help) without a newline; a shell prompt would follow.
fn with_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// What `run` was asked for besides the hook.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Build in this process and report the result.
    pub wait: bool,
    /// Build even when the head is already live (the unchanged-build check honours it).
    pub force: bool,
}

/// What `sign` was asked for besides the hook.
pub struct SignOptions {
    pub body: Option<PathBuf>,
    pub timestamp: Option<String>,
    pub format: Option<SignFormat>,
    pub show_secret: bool,
}

fn hook_and_state<'a>(cfg: &'a Config, name: &str) -> Result<(&'a Hook, HookState)> {
    let hook = cfg.hook(Some(name)).map_err(|_| {
        let names: Vec<&str> = cfg.hooks.keys().map(String::as_str).collect();
        Error::Usage(format!(
            "no hook named {name:?} in {}; hooks: {}",
            cfg.file.display(),
            names.join(", ")
        ))
    })?;
    let state = HookState::new(&cfg.state_dir, &hook.name);
    Ok((hook, state))
}

fn run(config: &Path, name: &str, opts: RunOptions, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let (hook, state) = hook_and_state(&cfg, name)?;
    become_owner(&cfg, Some(&hook.name), true)?;
    state.ensure()?;
    let mut log = Log::open(&cfg.log);
    if hook.on_busy == OnBusy::Reject && queue::is_building(&state)? {
        return Err(Error::Busy);
    }
    let p = Pending {
        delivery: format!("manual-{}", time::now_ms()),
        event: "manual".into(),
        git_ref: format!("refs/heads/{}", hook.branch),
        received: time::rfc3339(time::now()),
    };
    if opts.force {
        // Before `pending`: the build that takes this delivery sees the marker.
        crate::build::state::write_atomic(&state.force_path(), b"")
            .map_err(|e| Error::io(format!("cannot write {}", state.force_path().display()), e))?;
    }
    state.mark_pending(&p)?;
    if hook.on_busy == OnBusy::Supersede {
        queue::request_supersede(&state)?;
    }
    log.info(&format!(
        "delivery hook={} provider=manual event=manual id={} status=- outcome=queued",
        hook.name, p.delivery
    ));
    if opts.wait {
        if queue::is_building(&state)? {
            writeln!(out, "{}: a build is running; waiting for it, then building", hook.name).ok();
        }
        let record = queue::build_now(&cfg, hook, &state, &mut log)?;
        writeln!(
            out,
            "{}: build {} {} (commit {}, {:.1}s)\nlog: {}",
            hook.name,
            record.id,
            record.result,
            record.commit.as_deref().unwrap_or("-"),
            record.duration_secs,
            record.log
        )
        .ok();
        if let Some(step) = &record.failed_step {
            writeln!(out, "failed step: {step}").ok();
        }
        return Ok(if succeeded(&record.result) { 0 } else { 1 });
    }
    if queue::try_lock(&state)?.is_some() {
        queue::spawn_worker(&cfg.file, &hook.name, &state)?;
        writeln!(
            out,
            "{}: build started; follow it with: deploy-hook status {}",
            hook.name, hook.name
        )
        .ok();
    } else {
        writeln!(
            out,
            "{}: a build is running; another from the newest commit follows it",
            hook.name
        )
        .ok();
    }
    Ok(0)
}

/// The status as a person or a script should see it: a "building" status whose lock is
/// free belongs to a worker that died.
fn live_status(state: &HookState) -> Result<(Status, bool)> {
    let status = state.read_status()?;
    let stale = status.state == "building" && state.dir.exists() && !queue::is_building(state).unwrap_or(true);
    Ok((status, stale))
}

fn status(config: &Path, one: Option<&str>, json_out: bool, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let names: Vec<String> = match one {
        Some(n) => vec![hook_and_state(&cfg, n)?.0.name.clone()],
        None => cfg.hooks.keys().cloned().collect(),
    };
    become_owner(&cfg, one, false)?;
    let mut json = serde_json::Map::new();
    for name in &names {
        let (hook, state) = hook_and_state(&cfg, name)?;
        let (status, stale) = live_status(&state)?;
        let live = hook.publish.as_ref().and_then(|p| publish::live(&p.to));
        let fleet = hook.fleet.as_ref().map(|f| fleet_status(hook, &state, f));
        let live = live.or_else(|| fleet.as_ref().and_then(|_| status.live_release.clone()));
        if json_out {
            let mut v = serde_json::to_value(&status).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("hook".into(), name.clone().into());
                o.insert("interrupted".into(), stale.into());
                if let Some(l) = &live {
                    o.insert("live_release".into(), l.clone().into());
                }
                if let Some(f) = &fleet {
                    o.insert("hosts".into(), serde_json::to_value(f).unwrap_or_default());
                }
            }
            json.insert(name.clone(), v);
        } else {
            print_status(out, hook, &status, stale, live.as_deref());
            if let Some(f) = &fleet {
                out.write_all(hosts::status_text(f).as_bytes()).ok();
            }
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
    Ok(0)
}

/// Streams the running build's log until that build ends; exit 0 when it succeeded.
fn follow(config: &Path, one: Option<&str>, out: &mut dyn Write) -> Result<i32> {
    use std::io::{Read, Seek, SeekFrom};
    let cfg = Config::load(config)?;
    let name = match one {
        Some(n) => n.to_string(),
        None => cfg
            .hook(None)
            .map_err(|_| Error::Usage("status --follow needs a HOOK name".into()))?
            .name
            .clone(),
    };
    let (_, state) = hook_and_state(&cfg, &name)?;
    become_owner(&cfg, Some(&name), false)?;
    let (status, stale) = live_status(&state)?;
    let current = match status.current {
        Some(c) if status.state == "building" && !stale => c,
        _ => {
            // Nothing to follow: the verdict is the last build's, so that a script waiting
            // on `--follow` never takes a failed build for a good one.
            let Some(l) = status.last.as_ref() else {
                writeln!(out, "{name}: no build is running, and none has run yet").ok();
                return Ok(1);
            };
            writeln!(
                out,
                "{name}: no build is running; the last build, {}, {}: {}",
                l.id, l.result, l.log
            )
            .ok();
            return Ok(if succeeded(&l.result) { 0 } else { 1 });
        }
    };
    writeln!(out, "{name}: following build {} ({})", current.id, current.log).ok();
    let mut file =
        std::fs::File::open(&current.log).map_err(|e| Error::io(format!("cannot open {}", current.log), e))?;
    let mut pos = 0u64;
    let mut buf = Vec::new();
    loop {
        // Read the verdict before the last read, so no line written before the end is missed.
        let st = state.read_status()?;
        let finished = st.current.as_ref().is_none_or(|c| c.id != current.id) || !queue::is_building(&state)?;
        file.seek(SeekFrom::Start(pos))
            .map_err(|e| Error::io("cannot read the build log", e))?;
        buf.clear();
        file.read_to_end(&mut buf)
            .map_err(|e| Error::io("cannot read the build log", e))?;
        pos += buf.len() as u64;
        out.write_all(&buf).ok();
        out.flush().ok();
        if finished {
            let record = st.history.iter().find(|b| b.id == current.id);
            let result = record.map(|b| b.result.as_str()).unwrap_or("interrupted");
            writeln!(out, "{name}: build {} {result}", current.id).ok();
            return Ok(if succeeded(result) { 0 } else { 1 });
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A build `--follow` and `run --wait` count as good: it succeeded, or had nothing to do.
fn succeeded(result: &str) -> bool {
    result == "succeeded" || result == "unchanged"
}

/// How a build that did not succeed relates to the step it names.
fn ended_in(result: &str) -> &'static str {
    match result {
        "interrupted" => "interrupted at",
        "superseded" => "superseded during",
        "timed_out" => "timed out",
        _ => "failed",
    }
}

/// Started as root on a hook whose state folder is another user's: become that user
/// before touching anything of the hook (see privilege.rs); no hook named means every
/// hook of the config. `say`: tell the person.
fn become_owner(cfg: &Config, hook: Option<&str>, say: bool) -> Result<()> {
    let hooks: Vec<&str> = match hook {
        Some(h) => vec![h],
        None => cfg.hooks.keys().map(String::as_str).collect(),
    };
    if let Some(u) = crate::sys::privilege::become_owner(&cfg.state_dir, &hooks)? {
        if say {
            eprintln!(
                "deploy-hook: started as root; running as {}, the owner of the hook's state folder",
                u.name
            );
        }
    }
    Ok(())
}

fn since(ts: &str) -> String {
    time::parse_rfc3339(ts)
        .map(|t| time::human_duration(time::now().as_secs().saturating_sub(t) as f64))
        .unwrap_or_else(|| "?".into())
}

fn short(commit: Option<&str>) -> &str {
    commit.map(|c| &c[..c.len().min(10)]).unwrap_or("-")
}

fn print_status(out: &mut dyn Write, hook: &Hook, s: &Status, stale: bool, live: Option<&str>) {
    let mut w = String::new();
    w.push_str(&format!(
        "{} ({} push to {}, repo {})\n",
        hook.name,
        hook.provider.name(),
        hook.branch,
        hook.repo.display()
    ));
    match (&s.current, stale) {
        (Some(c), false) if s.state == "building" => {
            w.push_str(&format!(
                "  state:   building {} for {} (commit {}, delivery {})\n",
                c.id,
                since(&c.started),
                short(c.commit.as_deref()),
                c.delivery
            ));
            if let Some(step) = &c.step {
                w.push_str(&format!(
                    "  step:    {step} (for {})\n",
                    c.step_started.as_deref().map(since).unwrap_or_default()
                ));
            }
            w.push_str(&format!("  log:     {}\n", c.log));
        }
        (Some(c), true) => {
            w.push_str(&format!(
                "  state:   interrupted: build {} lost its worker; the next build records it and cleans up\n",
                c.id
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
        w.push_str(&format!("  live:    {l}\n"));
    }
    if let Some(rb) = &s.last_rollback {
        w.push_str(&format!(
            "  rollback: to {} from {} at {}\n",
            rb.to,
            rb.from.as_deref().unwrap_or("-"),
            rb.at
        ));
    }
    match &s.last {
        None => w.push_str("  last:    no build yet\n"),
        Some(_) => {
            w.push_str("  recent builds (newest first):\n");
            for b in &s.history {
                w.push_str(&format!(
                    "    {:<24} {:<11} commit {:<10} {:>7}  {}{}\n",
                    b.id,
                    b.result,
                    short(b.commit.as_deref()),
                    time::human_duration(b.duration_secs),
                    b.finished,
                    b.failed_step
                        .as_ref()
                        .map(|f| format!("  {}: {f}", ended_in(&b.result)))
                        .unwrap_or_default()
                ));
            }
            if let Some(last) = &s.last {
                w.push_str(&format!("  last log: {}\n", last.log));
            }
        }
    }
    out.write_all(w.as_bytes()).ok();
}

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

fn rollback(config: &Path, name: &str, to: Option<&str>, out: &mut dyn Write) -> Result<i32> {
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

/// What every target of a fleet serves, asked over ssh now (a host changed by hand shows).
fn fleet_status(hook: &Hook, state: &HookState, fleet: &config::Fleet) -> Vec<hosts::HostStatus> {
    let env = hosts::tool_env(hook, &state.home_dir());
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return Vec::new();
    };
    let tools = hosts::Tools {
        env: &env,
        state_dir: &state.dir,
        upload_timeout: hook.step_timeout,
        log: &null,
    };
    hosts::status(fleet, &tools)
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

fn worker(config: &Path, name: &str, wait: bool, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let (hook, state) = hook_and_state(&cfg, name)?;
    become_owner(&cfg, Some(&hook.name), false)?;
    let mut log = Log::open(&cfg.log);
    // --wait: a sync delivery's build, whose result goes to the waiting CGI on stdout.
    let done = if wait {
        queue::build_now(&cfg, hook, &state, &mut log).and_then(|record| {
            serde_json::to_writer(&mut *out, &record).map_err(|e| Error::io("cannot hand the result over", e.into()))
        })
    } else {
        queue::work(&cfg, hook, &mut log)
    };
    if let Err(e) = done {
        log.error(&format!(
            "worker failed hook={} detail={}",
            hook.name,
            q(&e.to_string())
        ));
        return Ok(e.exit_code());
    }
    Ok(0)
}

/// The headers a forge would send for `body`, in order.
fn signed_headers(
    hook: &Hook,
    secret: &Secret,
    body: &[u8],
    timestamp: &str,
    show_secret: bool,
) -> Result<Vec<(String, String)>> {
    let h = |k: &str, v: String| (k.to_string(), v);
    // A password-style token is the secret itself: point at the file instead of printing it.
    let password =
        || -> Result<String> {
            match (secret, show_secret) {
            (Secret::File(f), false) => Ok(format!("$(cat {})", crate::sys::text::shell_quote(&f.to_string_lossy()))),
            (Secret::Inline(_), false) => Err(Error::Usage(
                "this hook's token is the secret itself, which is inline in the config; pass --show-secret to print it"
                    .into(),
            )),
            (_, true) => Ok(String::from_utf8_lossy(&secret.load()?).into_owned()),
        }
        };
    let delivery = format!("manual-{}", time::now_ms());
    Ok(match hook.provider {
        Provider::Gitee => {
            let token = match hook.gitee_mode {
                GiteeMode::Sign => verify::gitee_sign_token(&secret.load()?, timestamp),
                GiteeMode::Password => password()?,
            };
            vec![
                h("User-Agent", "git-oschina-hook".into()),
                h("X-Gitee-Token", token),
                h("X-Gitee-Timestamp", timestamp.into()),
                h("X-Gitee-Event", "Push Hook".into()),
                h("X-Gitee-Ping", "false".into()),
            ]
        }
        Provider::Github => vec![
            h("X-GitHub-Event", "push".into()),
            h("X-GitHub-Delivery", delivery),
            h("X-Hub-Signature-256", verify::github_signature(&secret.load()?, body)),
        ],
        Provider::Gitlab => vec![
            h("X-Gitlab-Event", "Push Hook".into()),
            h("X-Gitlab-Token", password()?),
        ],
        Provider::Gitea => vec![
            h("X-Gitea-Event", "push".into()),
            h("X-Gitea-Delivery", delivery),
            h("X-Gitea-Signature", verify::gitea_signature(&secret.load()?, body)),
        ],
        Provider::Gogs => vec![
            h("X-Gogs-Event", "push".into()),
            h("X-Gogs-Delivery", delivery),
            h("X-Gogs-Signature", verify::gitea_signature(&secret.load()?, body)),
        ],
    })
}

/// A value for a shell line: `$(cat FILE)` stays live inside double quotes; anything else
/// is single-quoted.
fn shell_value(v: &str) -> String {
    if v.starts_with("$(cat ") && v.ends_with(')') {
        format!("\"{v}\"")
    } else {
        crate::sys::text::shell_quote(v)
    }
}

fn sign(config: &Path, name: &str, opts: &SignOptions, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let (hook, _) = hook_and_state(&cfg, name)?;
    let (body, body_note) = match &opts.body {
        Some(f) => (
            std::fs::read(f).map_err(|e| Error::io(format!("cannot read --body {}", f.display()), e))?,
            format!("the body of {}", f.display()),
        ),
        None => {
            let b = format!("{{\"ref\":\"refs/heads/{}\"}}", hook.branch);
            let note = format!("this minimal push body (--body FILE signs another): {b}");
            (b.into_bytes(), note)
        }
    };
    // clap checked that a given timestamp is all digits.
    let timestamp = opts.timestamp.clone().unwrap_or_else(|| time::now_ms().to_string());
    let headers = signed_headers(hook, &hook.secret, &body, &timestamp, opts.show_secret)?;
    let format = match opts.format {
        None => "both",
        Some(SignFormat::Env) => "env",
        Some(SignFormat::Curl) => "curl",
    };
    let mut env_lines = vec![
        ("REQUEST_METHOD".to_string(), "POST".to_string()),
        ("PATH_INFO".into(), format!("/{}", hook.name)),
        ("CONTENT_TYPE".into(), "application/json".into()),
        ("CONTENT_LENGTH".into(), body.len().to_string()),
    ];
    env_lines.extend(
        headers
            .iter()
            .map(|(k, v)| (format!("HTTP_{}", k.to_ascii_uppercase().replace('-', "_")), v.clone())),
    );
    let mut text = String::new();
    if format == "both" {
        text.push_str(&format!(
            "# A signed push delivery for hook {} ({}{}), over {body_note}\n",
            hook.name,
            hook.provider.name(),
            if hook.provider == Provider::Gitee {
                format!(
                    ", {} mode, timestamp {timestamp}",
                    if hook.gitee_mode == GiteeMode::Sign {
                        "signing"
                    } else {
                        "password"
                    }
                )
            } else {
                String::new()
            }
        ));
        text.push_str("# For a local run: eval these lines, then: deploy-hook < BODY_FILE\n");
    }
    if format != "curl" {
        for (k, v) in &env_lines {
            text.push_str(&format!("export {k}={}\n", shell_value(v)));
        }
    }
    if format == "both" {
        text.push_str("# For curl (add --data-binary @BODY_FILE and the hook's URL):\n");
    }
    if format != "env" {
        let mut flags = vec![format!("-H {}", shell_value("Content-Type: application/json"))];
        for (k, v) in &headers {
            let line = format!("{k}: {v}");
            flags.push(format!("-H {}", shell_value_header(&line, v)));
        }
        text.push_str(&flags.join(" "));
        text.push('\n');
    }
    out.write_all(text.as_bytes()).ok();
    Ok(0)
}

fn shell_value_header(line: &str, value: &str) -> String {
    if value.starts_with("$(cat ") {
        format!("\"{line}\"")
    } else {
        crate::sys::text::shell_quote(line)
    }
}
