//! The command line, declared once with clap: it is what `--help` prints, what the parser
//! accepts, and what the man page and the bash completion are generated from.
//!
//! Only the subcommands build it. CGI mode (no arguments, `REQUEST_METHOD` set) is
//! dispatched in `lib::run` before any of this is touched, so a delivery never pays for it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "deploy-hook",
    version,
    about = "Rebuild a site from a git push, as a CGI program",
    long_about = "Rebuild a site from a git push, as a CGI program.\n\n\
        Run with no arguments and REQUEST_METHOD set (by nginx through fcgiwrap, or by \
        Apache), it handles one webhook delivery: it verifies it, queues a build (at most \
        one runs per site; overlapping deliveries collapse into one follow-up build) and \
        answers at once. The subcommands are for people and scripts.",
    after_help = "The config is --config FILE, else $DEPLOY_HOOK_CONFIG, else /etc/deploy-hook/config.toml.",
    arg_required_else_help = true,
    propagate_version = true
)]
pub struct Cli {
    /// The config file [default: $DEPLOY_HOOK_CONFIG, else /etc/deploy-hook/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and this machine, like `nginx -t`; exit 0 only when everything holds
    Check {
        /// Print the checklist as JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Queue a build by hand, through the same lock and queue as a delivery
    Run {
        /// The hook, as named by [hooks.NAME] in the config
        hook: String,
        /// Build now and wait for the result (exit 0 only when it succeeded)
        #[arg(long)]
        wait: bool,
        /// Build even when the fetched head is already live and nothing changed
        #[arg(long)]
        force: bool,
    },
    /// Show the state and the last builds of every hook, or of one
    Status {
        /// Only this hook (required with --follow when the config has several)
        hook: Option<String>,
        /// Print JSON, for scripts
        #[arg(long, conflicts_with = "follow")]
        json: bool,
        /// Stream the build's log until it ends (when a delivery waits, the build that takes it); exit 0 only when it succeeded
        #[arg(long)]
        follow: bool,
    },
    /// Switch the published site back to the release live before (or to --to RELEASE), and hold it there
    #[command(
        long_about = "Switch the published site back to the release that was live before the live one \
        (run again to go further back, in the order releases were live), or to --to RELEASE, on every \
        destination at once or on none. The hook is then held: deliveries still build and make their \
        releases, but no destination is switched to them until `deploy-hook resume HOOK`."
    )]
    Rollback {
        /// The hook, as named by [hooks.NAME] in the config
        hook: String,
        /// The release to serve, a name from `status` (default: the one live before the live one)
        #[arg(long, value_name = "RELEASE")]
        to: Option<String>,
    },
    /// Lift the hold of a rollback: switch to the newest succeeded build's release
    Resume {
        /// The hook, as named by [hooks.NAME] in the config
        hook: String,
    },
    /// List the previews of a hook's branches and pull requests, or remove one
    #[command(
        long_about = "List the previews of a hook ([hooks.NAME.previews]): each one's name, the \
        branch or pull ref it builds, the commit it serves, when that was built, its address, and \
        its last build. --remove NAME removes one: its site, releases, working tree and state (a \
        build of it that runs is stopped first)."
    )]
    Previews {
        /// The hook, as named by [hooks.NAME] in the config
        hook: String,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
        /// Remove this preview (a name from the list, like pr-7)
        #[arg(long, value_name = "NAME")]
        remove: Option<String>,
    },
    /// Print the headers of a correctly signed delivery for a hook (for a local run or curl)
    Sign {
        /// The hook, as named by [hooks.NAME] in the config
        hook: String,
        /// Sign the body in FILE (default: a minimal push to the hook's branch)
        #[arg(long, value_name = "FILE")]
        body: Option<PathBuf>,
        /// The timestamp to sign, in milliseconds since the epoch (default: now)
        #[arg(long, value_name = "MS", value_parser = milliseconds)]
        timestamp: Option<String>,
        /// Print only environment assignments (env) or only curl flags (curl); default both
        #[arg(long, value_enum)]
        format: Option<SignFormat>,
        /// Print a password-style token itself instead of `$(cat SECRET_FILE)`
        #[arg(long)]
        show_secret: bool,
    },
    /// Set up a hook: config, secret, state folder and clone with the right owners, then check
    #[command(
        long_about = "Set up a hook in one go, as root: adds [hooks.NAME] to the config (writing \
        the file from the commented template when it is missing, keeping what is there), makes a \
        random secret file readable by USER only, the hook's state folder owned by USER, clones \
        the repo as USER into DIR when it is not there, runs `check` as USER, and prints what to \
        paste into the forge. Run again for an existing hook, it changes nothing and says so; it \
        never overwrites a secret."
    )]
    Init(InitArgs),
    /// The build worker that an accepted delivery starts; not for people
    #[command(name = "__worker", hide = true)]
    Worker {
        hook: String,
        /// Build now, waiting for the lock, and print the result as JSON (a sync delivery's build)
        #[arg(long)]
        wait: bool,
        /// Build (or remove) this preview of the hook instead
        #[arg(long, value_name = "NAME", conflicts_with = "wait")]
        preview: Option<String>,
    },
}

impl Cli {
    /// The definition as `--help` shows it: with the exit codes (error.rs's table, the one
    /// the man page is generated from) after the rest.
    pub fn command_for_help() -> clap::Command {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let mut after = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
        after.push_str("\n\nExit status:");
        for (code, what) in crate::error::EXIT_CODES {
            after.push_str(&format!("\n  {code:>2}  {what}"));
        }
        cmd.after_help(after)
    }
}

/// `deploy-hook init`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// The hook's name: letters, digits, - and _ (the URL is http://HOST/hooks/NAME; https once the site has TLS)
    pub name: String,
    /// The forge that delivers
    #[arg(long, value_enum)]
    pub provider: InitProvider,
    /// The repository to clone, as USER will fetch it (https://..., git@..., file://...)
    #[arg(long, value_name = "URL")]
    pub repo_url: String,
    /// The branch whose pushes build (default: the repository's default branch)
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// Where the checkout lives [default: /srv/deploy-hook/NAME]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The build output to publish, inside the checkout (e.g. docs/.vitepress/dist)
    #[arg(long, value_name = "PATH", requires = "publish_to")]
    pub publish_from: Option<PathBuf>,
    /// The served path: a symlink to the live release, switched atomically by each build
    #[arg(long, value_name = "DIR", requires = "publish_from")]
    pub publish_to: Option<PathBuf>,
    /// The user that builds: the web server's (fcgiwrap's or Apache's) user
    #[arg(long, value_name = "USER", default_value = "www-data")]
    pub user: String,
    /// How long the clone may take, in seconds, before it is stopped with what it started
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitProvider {
    Gitee,
    Github,
    Gitlab,
    Gitea,
    Gogs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SignFormat {
    /// `export NAME='value'` lines for a local run of the CGI
    Env,
    /// `-H 'Header: value'` flags for curl
    Curl,
}

/// Keeps the digits as given: the timestamp is signed as text.
fn milliseconds(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err("not a number of milliseconds".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
        Cli::command_for_help().debug_assert();
    }

    #[test]
    fn flags_parse_where_they_always_did() {
        let c = Cli::try_parse_from(["deploy-hook", "__worker", "--config", "/x.toml", "docs"]).unwrap();
        assert_eq!(c.config.as_deref(), Some(std::path::Path::new("/x.toml")));
        assert!(matches!(c.command, Command::Worker { ref hook, wait: false, preview: None } if hook == "docs"));
        let c = Cli::try_parse_from(["deploy-hook", "__worker", "docs", "--preview", "pr-7"]).unwrap();
        assert!(matches!(c.command, Command::Worker { preview: Some(ref p), .. } if p == "pr-7"));
        let c = Cli::try_parse_from(["deploy-hook", "previews", "docs", "--remove", "pr-7", "--json"]).unwrap();
        assert!(matches!(c.command, Command::Previews { json: true, remove: Some(ref r), .. } if r == "pr-7"));
        let c = Cli::try_parse_from(["deploy-hook", "run", "docs", "--wait", "--force", "--config=/y"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Run {
                wait: true,
                force: true,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["deploy-hook", "status", "--json", "--follow"]).is_err());
        assert!(Cli::try_parse_from(["deploy-hook", "sign", "docs", "--timestamp", "12a"]).is_err());
    }
}
