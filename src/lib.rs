//! deploy-hook: a CGI program that verifies a forge's webhook delivery, makes sure at most
//! one build per site runs at a time (overlapping deliveries collapse into one follow-up
//! build, none is lost), updates a git checkout, runs the build, publishes it atomically,
//! and answers the forge at once. There is no daemon: between deliveries nothing runs.
//!
//! Data flows one way: `cgi` (request) -> `verify` (delivery) -> `queue` (lock and pending
//! marker) -> `pipeline` (git, steps, `publish`) -> response and `state` (status.json).

pub mod build;
pub mod check;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod error;
pub mod publish;
pub mod sys;

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
            eprintln!("deploy-hook: {e}");
            e.exit_code()
        }
    }
}
