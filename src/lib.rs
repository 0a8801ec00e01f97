//! deploy-hook: a CGI program that verifies a forge's webhook delivery, makes sure at most
//! one build per site runs at a time (overlapping deliveries collapse into one follow-up
//! build, none is lost), updates a git checkout, runs the build, publishes it atomically,
//! and answers the forge at once. There is no daemon: between deliveries nothing runs.
//!
//! The folders follow the flow, and imports only go down this list:
//!
//! ```text
//! cli, check   the subcommands; check validates the config and the machine
//! delivery     a CGI request (cgi), verified (verify), answered, its build queued
//! build        the lock and pending protocol (queue), one build (pipeline), state files
//! report       what the author sees: commit statuses, the build page, chat messages
//! publish      a release to the local path (local) or to web hosts (hosts); releases
//! config       the config file, checked
//! sys          processes, privilege, log, time, text
//! error        Error, Outcome (the answers) and the exit codes; uses nothing of ours
//! ```
//!
//! Nothing here is a library for others: `run` is the program (main.rs calls it), `fuzzing`
//! is what the fuzz targets drive, and `generate` what `cargo xtask generate` makes the man
//! page and the completion from.

pub(crate) mod build;
pub(crate) mod check;
pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod delivery;
pub(crate) mod error;
pub(crate) mod publish;
pub(crate) mod report;
pub(crate) mod sys;

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};

pub use delivery::cgi::Env;

/// The whole program: CGI mode when there are no arguments and `REQUEST_METHOD` is set,
/// else a subcommand. Returns the exit code.
pub fn run(args: Vec<OsString>, env: Env, stdin: &mut dyn Read, stdout: &mut dyn Write) -> i32 {
    // Nothing we were handed (fcgiwrap's socket on fd 3, say) may reach a child.
    sys::process::cloexec_inherited_fds();
    if args.is_empty() && env.contains_key(OsStr::new("REQUEST_METHOD")) {
        return delivery::serve(&env, stdin, stdout);
    }
    // Only here is the clap Command built: CGI mode above never pays for it.
    let result = cli::main(args, &env, stdout);
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = stdout.flush();
            // A message may quote what a web host or a release folder's name holds.
            eprintln!("deploy-hook: {}", sys::text::printable_lines(&e.to_string()));
            e.exit_code()
        }
    }
}

/// What `cargo xtask generate` makes the man page and the bash completion from.
pub mod generate {
    /// The command line as clap defines it.
    pub fn command() -> clap::Command {
        use clap::CommandFactory;
        crate::cli::Cli::command()
    }

    /// The exit codes and what each means (the man page's EXIT STATUS).
    pub use crate::error::EXIT_CODES;
}

/// The parsers the fuzz targets (tests/fuzz) drive, each from bytes or text, and nothing
/// else: not an API. Each entry point runs what a delivery or a subcommand runs on that
/// input; a panic is the finding.
pub mod fuzzing {
    use std::path::Path;

    use crate::config::Config;
    pub use crate::delivery::cgi::Env;
    use crate::delivery::cgi::Request;
    use crate::delivery::verify;

    /// Where the fuzzed config text says it was read from.
    const CONFIG: &str = "/etc/deploy-hook/config.toml";

    /// Parses and validates config text; of what it accepts, picks the hook a delivery
    /// without a name gets, and renders every step as the build log and `status` do.
    pub fn config(text: &str) {
        if let Ok(cfg) = Config::parse(Path::new(CONFIG), text) {
            let _ = cfg.hook(None);
            for h in cfg.hooks.values() {
                for s in &h.steps {
                    let _ = s.run.to_string();
                    let _ = s.run.argv();
                    let _ = s.if_changed.len();
                }
            }
        }
    }

    /// Reads a CGI request from its environment and a body (at most 64 KiB), names its
    /// hook, and when the body reads, takes its payload and classifies it as each forge's
    /// push, pull request and delete events (`classify`).
    pub fn request(env: &Env, body: &[u8]) {
        let mut req = Request::from_env(env);
        let _ = req.hook_name();
        let _ = req.content_length();
        if req.read_body(&mut &body[..], 1 << 16).is_ok() {
            if let Ok(p) = verify::payload(&req) {
                classify(&p.json);
            }
        }
    }

    /// What a build's log (a step's output: anyone's text) goes through before others see
    /// it: terminal codes removed, secrets masked, the failed step's section found, the
    /// lines that say what failed picked, and those lines on the page and in each robot's
    /// message. The log's first line names the failed step.
    pub fn build_log(bytes: &[u8]) {
        use crate::report::event::{Build, Commit, Conclusion, Event};
        use crate::report::{excerpt, logtext, notify, page};
        let text = String::from_utf8_lossy(bytes);
        let failed_step = text.lines().next();
        let mut masker = logtext::Masker::default();
        masker.add("s3cret-value");
        let clean = masker.mask(&logtext::strip_terminal(&text));
        let lines = excerpt::pick(&logtext::section(&clean, failed_step), "/srv/docs");
        let b = Build {
            id: "1".into(),
            conclusion: Conclusion::Failed,
            commit: Some(Commit {
                sha: "0123456789abcdef0123456789abcdef01234567".into(),
                subject: text.chars().take(200).collect(),
                author: failed_step.unwrap_or("").into(),
            }),
            started: "2026-11-30T06:00:11Z".into(),
            duration_secs: 1.0,
            failed_at: failed_step.map(String::from),
            release: None,
            lines,
            timeout_secs: None,
            target_url: None,
        };
        let m = notify::Message {
            hook: "docs",
            event: Event::Failed,
            build: &b,
            branch: "main",
            page: None,
            log: None,
        };
        for kind in [
            crate::config::NotifyKind::Dingtalk,
            crate::config::NotifyKind::Feishu,
            crate::config::NotifyKind::Wecom,
            crate::config::NotifyKind::Slack,
            crate::config::NotifyKind::Webhook,
        ] {
            let _ = notify::request(
                kind,
                "https://robot.invalid/x",
                Some("k"),
                &m,
                std::time::Duration::ZERO,
            );
        }
        let view = page::View {
            hook: "docs".into(),
            branch: "main".into(),
            running: None,
            pending: false,
            live_release: None,
            held: None,
            builds: vec![b],
            commit_url: None,
            logs: true,
            previews: Vec::new(),
            now: std::time::Duration::ZERO,
        };
        let _ = page::index(&view);
        let _ = page::public_status(&view);
    }

    /// A hook of each forge with previews, for `classify`.
    const PREVIEWS: &str = "[hooks.docs]\nprovider = \"PROVIDER\"\nsecret = \"s\"\nrepo = \"/srv/docs\"\n\
        [hooks.docs.publish]\nfrom = \"dist\"\nto = \"/var/www/docs\"\n\
        [hooks.docs.previews]\nto = \"/var/www/previews\"\nurl = \"https://{name}.p.test/\"\n";

    /// Reads `json` as every event each forge sends (push, pull request, Gitea's delete),
    /// for a hook that builds `main` and previews every branch and pull request.
    fn classify(json: &[u8]) {
        use crate::delivery::event::{self, Forge};
        static CONFIGS: std::sync::OnceLock<Vec<Config>> = std::sync::OnceLock::new();
        let configs = CONFIGS.get_or_init(|| {
            ["github", "gitlab", "gitea", "gitee"]
                .iter()
                .filter_map(|p| Config::parse(Path::new(CONFIG), &PREVIEWS.replace("PROVIDER", p)).ok())
                .collect()
        });
        for cfg in configs {
            let Ok(hook) = cfg.hook(None) else { continue };
            let _ = event::push(json, hook);
            let _ = event::pull_request(Forge::of(hook.provider), "pull_request", json, hook);
            let _ = event::gitea_delete(json, hook);
        }
    }

    /// Verifies a delivery (headers from `env`, the body as it is) for the only hook of
    /// `config`, whose secret is `secret`, at `now_ms`. Panics when `config` is not a valid
    /// config with one hook: the target must give one.
    pub fn verify(config: &str, secret: &[u8], env: &Env, body: Vec<u8>, now_ms: u128) {
        let cfg = Config::parse(Path::new(CONFIG), config).expect("a valid config");
        let hook = cfg.hook(None).expect("one hook");
        let mut req = Request::from_env(env);
        req.body = body;
        let _ = verify::verify(hook, secret, &req, now_ms);
    }
}
