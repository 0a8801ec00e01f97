//! The subcommands for people and scripts. The command line is declared once in `args.rs`;
//! this file dispatches it and holds `run` and the hidden `__worker` that async deliveries
//! start; `status`, `rollback` (with `resume`), `sign` and `init` have a file each. `check` is its own
//! module (`crate::check`) and gets plain values from here.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use crate::build::enqueue::{enqueue, Ask, Enqueued, Site, Then};
use crate::build::queue;
use crate::build::reporting::Reports;
use crate::build::state::{HookState, Pending};
use crate::config::{self, Config, Hook, OnBusy};
use crate::delivery::cgi::Env;
use crate::error::{exit, Behind, Error, Result};
use crate::sys::log::{q, Log};
use crate::sys::time;

mod args;
mod forge;
pub(crate) mod init;
mod previews;
mod rollback;
mod sign;
mod status;

use rollback::{resume, rollback};
use sign::{sign, SignOptions};
use status::{follow, status};

pub use args::{Cli, Command, SignFormat};

/// Parses the command line and runs the subcommand; returns the exit code. clap's own
/// answers (help, version, a usage error with its suggestion) are printed here.
pub fn main(argv: Vec<OsString>, env: &Env, out: &mut dyn Write) -> Result<i32> {
    use clap::FromArgMatches;
    let argv = std::iter::once(OsString::from("deploy-hook")).chain(argv);
    let parsed = Cli::command_for_help()
        .try_get_matches_from(argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            out.flush().ok();
            eprint!("{}", with_newline(e.render().to_string()));
            // A usage error exits as every usage error does (error.rs), whatever clap's default.
            return Ok(exit::USAGE);
        }
        Err(e) => {
            write!(out, "{}", with_newline(e.render().to_string())).ok();
            return Ok(exit::OK);
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
        Command::Resume { hook } => resume(&config, &hook, out),
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
        Command::Previews { hook, json, remove } => previews::previews(&config, &hook, json, remove.as_deref(), out),
        Command::Worker { hook, wait, preview } => worker(&config, &hook, wait, preview.as_deref(), out),
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

pub(super) fn hook_and_state<'a>(cfg: &'a Config, name: &str) -> Result<(&'a Hook, HookState)> {
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
    let p = Pending {
        delivery: format!("manual-{}", time::now_ms()),
        event: "manual".into(),
        git_ref: format!("refs/heads/{}", hook.branch),
        received: time::rfc3339(time::now()),
        tokens: Vec::new(),
    };
    let id = p.delivery.clone();
    let running = queue::is_building(&state)?;
    if opts.wait && running && hook.on_busy != OnBusy::Reject {
        writeln!(out, "{}: a build is running; waiting for it, then building", hook.name).ok();
    }
    // `--wait` builds here: what the author sees of the build is sent from here too, after
    // the result is printed.
    let mut reports = Reports::new(hook, &cfg);
    let ask = Ask {
        pending: p,
        force: opts.force,
        token: None,
        then: if opts.wait {
            Then::WaitHere(&mut log, &mut reports)
        } else {
            Then::Answer
        },
    };
    let site = Site {
        hook,
        state: &state,
        preview: None,
    };
    let enqueued = match enqueue(&cfg, site, ask) {
        Ok(e) => e,
        Err(e) => {
            reports.join();
            return Err(e);
        }
    };
    let outcome = match &enqueued {
        Enqueued::Queued { .. } => "queued".to_string(),
        Enqueued::Built(record) => record.result.to_string(),
    };
    log.info(&format!(
        "delivery hook={} provider=manual event=manual id={id} status=- outcome={outcome}",
        hook.name
    ));
    match enqueued {
        Enqueued::Built(record) => {
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
            if let (Some(r), true) = (&record.release, record.held) {
                writeln!(
                    out,
                    "release {r} was made but not switched to: a rollback holds the hook; deploy-hook resume {} switches to it",
                    hook.name
                )
                .ok();
            }
            // The result is printed; the build's statuses and messages go out before we exit.
            out.flush().ok();
            reports.join();
            Ok(record.result.exit_code())
        }
        Enqueued::Queued { behind, held } => {
            if behind == Behind::Nothing {
                writeln!(
                    out,
                    "{}: build started; follow it with: deploy-hook status {} --follow",
                    hook.name, hook.name
                )
                .ok();
            } else {
                writeln!(
                    out,
                    "{}: a build is running; another from the newest commit follows it (deploy-hook status {} --follow follows it)",
                    hook.name, hook.name
                )
                .ok();
            }
            if held {
                writeln!(
                    out,
                    "{}: held by a rollback: the build makes its release but nothing is switched to it until deploy-hook resume {}",
                    hook.name, hook.name
                )
                .ok();
            }
            Ok(exit::OK)
        }
    }
}

/// Started as root on a hook whose state folder is another user's: become that user
/// before touching anything of the hook (see `sys::privilege`); no hook named means every
/// hook of the config. `say`: tell the person.
pub(super) fn become_owner(cfg: &Config, hook: Option<&str>, say: bool) -> Result<()> {
    let hooks: Vec<&str> = match hook {
        Some(h) => vec![h],
        None => cfg.hooks.keys().map(String::as_str).collect(),
    };
    if let Some(u) = crate::sys::privilege::become_owner(&cfg.state_dir, &cfg.hook_paths(&hooks))? {
        if say {
            eprintln!(
                "deploy-hook: started as root; running as {}, the owner of the hook's state folder",
                u.name
            );
        }
    }
    Ok(())
}

fn worker(config: &Path, name: &str, wait: bool, preview: Option<&str>, out: &mut dyn Write) -> Result<i32> {
    let cfg = Config::load(config)?;
    let (hook, state) = hook_and_state(&cfg, name)?;
    become_owner(&cfg, Some(&hook.name), false)?;
    let mut log = Log::open(&cfg.log);
    // --wait: a sync delivery's build, whose result goes to the waiting CGI on stdout.
    let done = if let Some(p) = preview {
        crate::build::preview::work::work(&cfg, hook, p, &mut log)
    } else if wait {
        let mut reports = Reports::new(hook, &cfg);
        let handed = queue::build_now(&cfg, hook, &state, &mut log, &mut reports).and_then(|record| {
            serde_json::to_writer(&mut *out, &record).map_err(|e| Error::io("cannot hand the result over", e.into()))
        });
        // The delivery has its answer: let go of its pipes before the report is sent, so
        // that the web server's answer waits for nothing more.
        let _ = out.flush();
        let_go_of_the_caller(&state);
        reports.join();
        handed
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
    Ok(exit::OK)
}

/// A sync worker after handing its result over: stdout becomes /dev/null and stderr the
/// hook's `worker.log`, so the waiting delivery reads the end of both pipes now, not when
/// this process exits.
fn let_go_of_the_caller(state: &HookState) {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null");
    let errors = std::fs::OpenOptions::new()
        .append(true)
        .open(state.worker_log_path())
        .or_else(|_| std::fs::OpenOptions::new().write(true).open("/dev/null"));
    // SAFETY: dup2(2) onto our own standard descriptors, from files we hold open.
    unsafe {
        if let Ok(n) = &null {
            libc::dup2(n.as_raw_fd(), 1);
        }
        if let Ok(e) = &errors {
            libc::dup2(e.as_raw_fd(), 2);
        }
    }
}
