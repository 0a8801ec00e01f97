//! A webhook delivery, from CGI request to CGI response: request -> verified delivery ->
//! queued build -> response, with one log line per delivery.
//!
//! Whatever fails inside, the caller gets a complete JSON answer; a failure on our side is
//! a 500 whose detail goes to the log, never into the answer.

pub mod cgi;
pub mod event;
pub mod verify;

use self::event::PreviewAction;
use crate::build::preview::work as preview;
use crate::build::preview::Subject;

use std::ffi::OsStr;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use self::cgi::{Env, Request, Response};
use self::verify::Kind;
use crate::build::enqueue::{enqueue, Ask, Enqueued, Site, Then};
use crate::build::state::{HookState, Pending};
use crate::config::{self, Config, Mode, Provider};
use crate::error::{exit, BuildResult, Error, Outcome, Result};
use crate::sys::log::{q, Level, Log};
use crate::sys::time;

/// What the delivery's log line says, filled in as the request is understood.
#[derive(Default)]
struct Seen {
    hook: String,
    provider: String,
    event: String,
    delivery: String,
}

/// Serves one CGI request. Always answers; always returns 0 (the status is in the reply).
pub fn serve(env: &Env, stdin: &mut dyn Read, stdout: &mut dyn Write) -> i32 {
    // `env` is our copy; the request's headers leave the environment block that other
    // processes of this user can read in /proc (a GitLab token, a Gitee password).
    crate::sys::process::scrub_request_environ();
    let mut req = Request::from_env(env);
    let path = config::locate(None, env.get(OsStr::new(config::CONFIG_ENV)).cloned());
    let mut log = Log::stderr();
    let mut seen = Seen::default();
    let response = match handle(&mut req, &path, stdin, &mut log, &mut seen) {
        Ok(o) => Response::new(
            o.http_status(),
            o.status_word(),
            &seen.hook,
            &seen.delivery,
            o.to_string(),
        ),
        Err(e) => {
            let code = e.http_status();
            if code >= 500 {
                log.error(&format!("error hook={} detail={}", q(&seen.hook), q(&e.to_string())));
            }
            Response::new(code, e.status_word(), &seen.hook, &seen.delivery, e.public_message())
        }
    };
    let a = &response.answer;
    // A rejected delivery (a wrong secret, a hook that is not there) is a warning: it must
    // reach the admin wherever lines go, stderr included. Its line holds no token.
    let level = match response.code {
        401 | 403 | 404 => Level::Warning,
        _ => Level::Info,
    };
    log.line(
        level,
        &format!(
            "delivery hook={} provider={} event={} id={} status={} outcome={} message={}",
            q(&seen.hook),
            q(&seen.provider),
            q(&seen.event),
            q(&seen.delivery),
            response.code,
            a.status,
            q(&a.message)
        ),
    );
    let _ = response.write_to(stdout);
    // A person running the program by hand at a terminal is not a web server waiting to
    // hand over a body.
    if !std::io::stdin().is_terminal() {
        req.drain_body(stdin);
    }
    exit::OK
}

fn handle(req: &mut Request, path: &Path, stdin: &mut dyn Read, log: &mut Log, seen: &mut Seen) -> Result<Outcome> {
    let cfg = Config::load(path)?;
    *log = Log::open(&cfg.log);
    let hook = match req.hook_name().and_then(|name| cfg.hook(name.as_deref())) {
        Ok(hook) => hook,
        Err(e) => {
            // A delivery to a hook that is not there is logged with what it says it is,
            // whichever forge sent it (a known hook's provider reads it below).
            (seen.event, seen.delivery) = verify::claimed_by_any(req);
            return Err(e);
        }
    };
    seen.hook = hook.name.clone();
    seen.provider = hook.provider.name().to_string();
    if hook.provider == Provider::Gitee && hook.gitee_mode == config::GiteeMode::Password {
        seen.provider.push_str("/password");
    }
    // What the request says it is, for the log line of a rejection; replaced by the
    // verified values below.
    (seen.event, seen.delivery) = verify::claimed(hook.provider, req);
    if req.method != "POST" {
        return Err(Error::MethodNotAllowed(crate::sys::text::printable(&req.method, 16)));
    }
    // A web server misconfigured to run us as root (fcgiwrap started as root): the rule of
    // a command started as root (`sys::privilege`), before anything of the hook is touched:
    // become the state folder's owner, or stay root only where root alone controls it all.
    if crate::sys::privilege::euid() == 0 {
        crate::sys::privilege::become_owner(&cfg.state_dir, &cfg.hook_paths(&[hook.name.as_str()]))?;
    }
    let state = HookState::new(&cfg.state_dir, &hook.name);
    state.ensure()?;

    req.read_body(stdin, cfg.max_body_bytes)?;
    let secret = hook.secret.load()?;
    let now_ms = time::now_ms();
    let delivery = verify::verify(hook, &secret, req, now_ms)?;
    drop(secret);
    seen.event = delivery.event.clone();
    seen.delivery = delivery.id.clone();

    let git_ref = match &delivery.kind {
        Kind::Ping => {
            return Ok(Outcome::Pong {
                hook: hook.name.clone(),
                branch: hook.branch.clone(),
            })
        }
        Kind::Ignored(why) => return Ok(Outcome::Ignored(why.clone())),
        Kind::Push { git_ref } => git_ref.clone(),
        // A preview builds too: asked for below, once its replay token is claimed.
        Kind::Preview(_) => String::new(),
    };

    // What builds nothing needs no replay record: a replayed ping is answered pong again.
    // A push's Gitee signing token is reserved here and accepted with the delivery's
    // marker (`enqueue`); a 429 or a 500 leaves it unaccepted, so that the forge's retry
    // is built, not answered "duplicate".
    let claim = match &delivery.replay_token {
        None => None,
        Some(token) => {
            let (claim, damaged) = state.claim_token(token, now_ms, hook.max_age_secs)?;
            if damaged {
                log.warn(&format!(
                    "damaged records dropped hook={} file={} (the replay check keeps the rest)",
                    hook.name,
                    q(&state.dir.join("seen-tokens").to_string_lossy())
                ));
            }
            match claim {
                Some(c) => Some(c),
                None => return Ok(Outcome::Duplicate),
            }
        }
    };

    if let Kind::Preview(action) = &delivery.kind {
        let pending = Pending {
            delivery: delivery.id.clone(),
            event: delivery.event.clone(),
            git_ref: String::new(),
            received: time::rfc3339(time::now()),
            tokens: Vec::new(),
        };
        // A preview is built after the answer, whatever `mode` says: a forge waits
        // seconds, a build takes longer.
        return match action {
            PreviewAction::Build(subject) => preview::ask_build(&cfg, hook, subject, pending, claim),
            PreviewAction::Remove(subject) => {
                let why = match subject {
                    Subject::Branch(_) => preview::DELETED,
                    Subject::Pull(_) => preview::CLOSED,
                };
                preview::ask_removal(&cfg, hook, subject, why)
            }
        };
    }

    let pending = Pending {
        delivery: delivery.id.clone(),
        event: delivery.event.clone(),
        git_ref,
        received: time::rfc3339(time::now()),
        tokens: Vec::new(),
    };
    let then = match hook.mode {
        Mode::Async => Then::Answer,
        Mode::Sync => Then::WaitInWorker,
    };
    let site = Site {
        hook,
        state: &state,
        preview: None,
    };
    let ask = Ask {
        pending,
        force: false,
        token: claim,
        then,
    };
    match enqueue(&cfg, site, ask)? {
        Enqueued::Queued { behind, held } => Ok(Outcome::Queued {
            branch: hook.branch.clone(),
            behind,
            held,
        }),
        Enqueued::Built(record) => {
            let commit = record.commit.as_deref().map(|c| &c[..c.len().min(12)]).unwrap_or("-");
            Ok(match record.result {
                BuildResult::Unchanged => Outcome::Unchanged {
                    branch: hook.branch.clone(),
                    commit: commit.to_string(),
                    build: record.id,
                },
                BuildResult::Succeeded => Outcome::Succeeded {
                    branch: hook.branch.clone(),
                    commit: commit.to_string(),
                    secs: record.duration_secs,
                    build: record.id,
                    held: record.held,
                },
                _ => Outcome::Failed {
                    build: record.id,
                    result: record.result,
                    at: record.failed_at,
                },
            })
        }
    }
}
