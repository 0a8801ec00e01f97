//! The one error type, the answers of a handled delivery (`Outcome`) and the exit codes:
//! the one place that maps errors and answers to HTTP statuses, `status` words and exit
//! codes. The table of answers in docs/reference.md is `Error::http_status` and
//! `Outcome::http_status`; the man page's EXIT STATUS and `--help`'s are `EXIT_CODES`.
//!
//! Every message here may reach a forge's delivery log or a terminal, so none of them holds a
//! secret, a token or an expected signature. Detail that only the server's owner should see
//! (paths, OS errors) is in the `Display` of the server-side errors, which goes to the log
//! and the terminal; a delivery's answer gets `public_message()` instead.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Declares the exit codes once: a constant for each, and the table that `--help` and the
/// man page are generated from.
macro_rules! exit_codes {
    ($($name:ident = $code:literal: $what:literal,)*) => {
        /// The exit codes of the subcommands, with what each means.
        pub mod exit {
            $(#[doc = $what] pub const $name: i32 = $code;)*
        }
        /// Every exit code and its meaning, in order: `--help`'s and the man page's.
        pub const EXIT_CODES: &[(i32, &str)] = &[$(($code, $what)),*];
    };
}

exit_codes! {
    OK = 0: "Success.",
    FAILED = 1: "A check failed, or the build that run --wait or status --follow waited for did not succeed (an unchanged build counts as success).",
    USAGE = 2: "Usage error (also: nothing to roll back to).",
    IO = 74: "I/O error, or another failure on the server's side; the message says which.",
    BUSY = 75: "Busy: on_busy = \"reject\" and a build is running.",
    REFUSED = 77: "Refused to run as root: the state folders do not say for sure whom to become (a symlink, another user's folder), or a hook that would stay root has a checkout or publish folder another user can change; the message says what to do.",
    CONFIG = 78: "Config error.",
}

#[derive(Debug)]
pub enum Error {
    /// Wrong command line: exit 2, like most Unix tools.
    Usage(String),
    /// The config file is missing, unparsable or invalid.
    Config {
        file: PathBuf,
        line: Option<usize>,
        key: String,
        message: String,
    },
    /// An I/O failure on the server side (state dir, repo, spawning a child).
    Io { context: String, source: io::Error },
    /// Another failure on the server's side that is not an OS error: a web host that failed
    /// a rollback, a build worker that gave no result, a broken invariant. The message says
    /// what happened; like `Io`, it goes to the log and a terminal, never into an answer.
    Internal(String),
    /// The CGI request used another method than POST.
    MethodNotAllowed(String),
    /// No signature or token was sent.
    Unauthorized(String),
    /// A signature or token was sent and does not verify, or its timestamp is stale.
    Forbidden(String),
    /// No hook of that name (or the name is not a valid hook name; empty: the request names
    /// none and the config has several, so none is the one). The name comes from the
    /// request: whoever builds this makes it printable first (`sys::text::printable`, 64).
    UnknownHook(String),
    /// The body is larger than `max_body_bytes`.
    TooLarge { limit: u64 },
    /// A malformed body or header.
    BadRequest(String),
    /// A content type we cannot read a payload from; made printable by whoever builds it,
    /// like `UnknownHook`.
    UnsupportedMediaType(String),
    /// `on_busy = "reject"` and a build is running.
    Busy,
    /// Started as root, a command will not stay root, nor become anyone, on the say of what
    /// others can change (`sys::privilege`): why, and what to do.
    Refused { why: String, fix: String },
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn config(file: impl Into<PathBuf>, key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            file: file.into(),
            line: None,
            key: key.into(),
            message: message.into(),
        }
    }

    /// The HTTP status a delivery gets for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Usage(_) | Error::Config { .. } | Error::Io { .. } | Error::Internal(_) | Error::Refused { .. } => {
                500
            }
            Error::MethodNotAllowed(_) => 405,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::UnknownHook(_) => 404,
            Error::TooLarge { .. } => 413,
            Error::BadRequest(_) => 400,
            Error::UnsupportedMediaType(_) => 415,
            Error::Busy => 429,
        }
    }

    /// The `status` word of the JSON answer.
    pub fn status_word(&self) -> &'static str {
        match self {
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::Busy => "busy",
            _ => "error",
        }
    }

    /// The exit code of a subcommand that failed with this error (sysexits.h where one fits:
    /// EX_IOERR, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Config { .. } => exit::CONFIG,
            Error::Io { .. } | Error::Internal(_) => exit::IO,
            Error::Busy => exit::BUSY,
            Error::Refused { .. } => exit::REFUSED,
            _ => exit::FAILED,
        }
    }

    /// What the caller of a CGI request may read: short, and without server paths.
    pub fn public_message(&self) -> String {
        match self {
            Error::Config { .. } | Error::Io { .. } | Error::Internal(_) | Error::Usage(_) | Error::Refused { .. } => {
                "the server could not handle this delivery; its log has the details".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) | Error::Internal(msg) => write!(f, "{msg}"),
            Error::Config {
                file,
                line,
                key,
                message,
            } => {
                write!(f, "{}", file.display())?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                }
                if key.is_empty() {
                    write!(f, ": {message}")
                } else {
                    write!(f, ": {key}: {message}")
                }
            }
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::MethodNotAllowed(method) => {
                write!(f, "method {method} is not allowed: webhooks are delivered with POST")
            }
            Error::Unauthorized(msg) | Error::Forbidden(msg) | Error::BadRequest(msg) => {
                write!(f, "{msg}")
            }
            Error::UnknownHook(name) if name.is_empty() => {
                write!(f, "the URL names no hook; name one: /NAME or ?hook=NAME")
            }
            Error::UnknownHook(name) => write!(f, "no hook named \"{name}\" is configured here"),
            Error::TooLarge { limit } => {
                write!(f, "the body is larger than this hook accepts ({limit} bytes)")
            }
            Error::UnsupportedMediaType(ct) => write!(
                f,
                "content type \"{ct}\" is not supported: send application/json or application/x-www-form-urlencoded"
            ),
            Error::Busy => write!(
                f,
                "a build is running and this hook rejects deliveries while it builds; retry later"
            ),
            Error::Refused { why, fix } => write!(f, "refusing to run as root: {why}\nfix: {fix}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a delivery that was handled is answered: every answer that is not an `Error`. A sync
/// delivery whose build failed is one of them (`Failed`): the delivery was fine, the build
/// was not.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Async: a build of `branch` was started, or will run after the one running now.
    /// `held`: a rollback holds the hook, so the build will not be switched to.
    Queued { branch: String, behind: Behind, held: bool },
    /// Sync: the build succeeded. `held`: its release was made but not switched to (a
    /// rollback holds the hook).
    Succeeded {
        branch: String,
        commit: String,
        secs: f64,
        build: String,
        held: bool,
    },
    /// Sync: the head is already built and live with the same config.
    Unchanged {
        branch: String,
        commit: String,
        build: String,
    },
    /// Sync: the build did not succeed. `result` is its result word (`failed`, `timed_out`,
    /// ...), `at` the stage by position and program name only: a step's arguments may hold
    /// a token, and this answer goes to the forge.
    Failed {
        build: String,
        result: BuildResult,
        at: Option<String>,
    },
    /// A preview's build was started or queued: `name` (`of`: "pull request 7") will be
    /// at `url`.
    PreviewQueued {
        name: String,
        of: String,
        url: String,
        behind: Behind,
    },
    /// A preview will be removed (its pull request was closed or merged, its branch deleted).
    PreviewRemoved { name: String, of: String },
    /// A ping or test delivery.
    Pong { hook: String, branch: String },
    /// Another branch, a tag, a deletion, another event: why it builds nothing.
    Ignored(String),
    /// A Gitee signing token accepted before: a replay.
    Duplicate,
}

/// How a build ended: `result` in status.json, the build log's `result:` line, the `build
/// end` log line, `DEPLOY_HOOK_RESULT`, a sync answer. Spelled in status.json as it always
/// was (`timed_out`), so an old status.json reads and a new one reads the same. It lives
/// here, with the answers and the exit codes, because it decides both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildResult {
    /// Every step ran and the output was published.
    Succeeded,
    /// The head was already built and live with the same config: nothing ran.
    Unchanged,
    /// A stage failed: a step's exit status, a publish that failed, a clean that refused.
    Failed,
    /// A step ran longer than `step_timeout_secs`.
    TimedOut,
    /// Stopped for a newer delivery (`on_busy = "supersede"`); that one builds next.
    Superseded,
    /// Its worker died (kill -9, a reboot); recorded by whoever took the lock next.
    Interrupted,
    /// A preview's build, stopped so that a production build could run at once; the
    /// preview is built again after it.
    Stopped,
    /// A word this version does not know (written by a newer one): read, never written by us.
    #[serde(other)]
    Unknown,
}

impl BuildResult {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildResult::Succeeded => "succeeded",
            BuildResult::Unchanged => "unchanged",
            BuildResult::Failed => "failed",
            BuildResult::TimedOut => "timed_out",
            BuildResult::Superseded => "superseded",
            BuildResult::Interrupted => "interrupted",
            BuildResult::Stopped => "stopped",
            BuildResult::Unknown => "unknown",
        }
    }

    /// What `run --wait` and `status --follow` exit 0 for: it succeeded, or had nothing to do.
    pub fn is_good(self) -> bool {
        matches!(self, BuildResult::Succeeded | BuildResult::Unchanged)
    }

    /// The exit code of a command that waited for a build with this result.
    pub fn exit_code(self) -> i32 {
        if self.is_good() {
            exit::OK
        } else {
            exit::FAILED
        }
    }
}

impl fmt::Display for BuildResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a queued build waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behind {
    /// Nothing: it was started now.
    Nothing,
    /// The running build; it follows it.
    Running,
    /// The running build, which is being stopped (`on_busy = "supersede"`).
    Superseded,
}

impl Outcome {
    /// The HTTP status of the answer.
    pub fn http_status(&self) -> u16 {
        match self {
            Outcome::Queued { .. } | Outcome::PreviewQueued { .. } | Outcome::PreviewRemoved { .. } => 202,
            Outcome::Failed { .. } => 500,
            Outcome::Succeeded { .. }
            | Outcome::Unchanged { .. }
            | Outcome::Pong { .. }
            | Outcome::Ignored(_)
            | Outcome::Duplicate => 200,
        }
    }

    /// The `status` word of the JSON answer.
    pub fn status_word(&self) -> &'static str {
        match self {
            Outcome::Queued { .. } | Outcome::PreviewQueued { .. } | Outcome::PreviewRemoved { .. } => "queued",
            Outcome::Succeeded { .. } => "succeeded",
            Outcome::Unchanged { .. } => "unchanged",
            Outcome::Failed { .. } => "failed",
            Outcome::Pong { .. } => "pong",
            Outcome::Ignored(_) => "ignored",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// What a held hook's answer adds: the site stays as the rollback left it.
const HELD: &str = "; the site is held by a rollback: the build makes its release but nothing is switched to it until `deploy-hook resume` is run on the server";

/// The answer's message, for the person reading the forge's delivery log.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Queued { branch, behind, held } => {
                match behind {
                    Behind::Nothing => write!(f, "build of {branch} started")?,
                    Behind::Superseded => write!(
                        f,
                        "the running build is being stopped; {branch} will be built from its newest commit next"
                    )?,
                    Behind::Running => write!(
                        f,
                        "a build is running; {branch} will be built again from its newest commit right after it"
                    )?,
                }
                if *held {
                    f.write_str(HELD)?;
                }
                Ok(())
            }
            Outcome::Succeeded {
                branch,
                commit,
                secs,
                build,
                held,
            } => {
                write!(f, "built {branch} at {commit} in {secs:.1}s (build {build})")?;
                if *held {
                    f.write_str(HELD)?;
                }
                Ok(())
            }
            Outcome::Unchanged { branch, commit, build } => write!(
                f,
                "{branch} is already built and live at {commit}; nothing to do (build {build})"
            ),
            Outcome::Failed { build, result, at } => {
                write!(f, "build {build} {}", result.as_str().replace('_', " "))?;
                if let Some(at) = at {
                    write!(f, " at {at}")?;
                }
                write!(f, "; the server's build log has the output")
            }
            Outcome::PreviewQueued { name, of, url, behind } => match behind {
                Behind::Running => write!(
                    f,
                    "preview {name} of {of} is building; it will be built again from the newest commit right after, at {url}"
                ),
                _ => write!(f, "preview {name} of {of} is being built; it will be at {url}"),
            },
            Outcome::PreviewRemoved { name, of } => write!(f, "preview {name} of {of} will be removed"),
            Outcome::Pong { hook, branch } => {
                write!(f, "hook {hook} is set up; pushes to {branch} will be built")
            }
            Outcome::Ignored(why) => write!(f, "{why}"),
            Outcome::Duplicate => write!(f, "this signed delivery was accepted before; nothing new to do"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_code_is_in_the_table() {
        let errors = [
            Error::Usage("x".into()),
            Error::config("/c", "k", "m"),
            Error::io("x", io::Error::from(io::ErrorKind::NotFound)),
            Error::Internal("x".into()),
            Error::Busy,
            Error::Refused {
                why: "w".into(),
                fix: "f".into(),
            },
            Error::Forbidden("x".into()),
        ];
        for e in errors {
            assert!(EXIT_CODES.iter().any(|(c, _)| *c == e.exit_code()), "{e:?}");
        }
        assert_eq!(EXIT_CODES[0], (exit::OK, "Success."));
    }

    #[test]
    fn answers_say_what_happened() {
        let queued = |behind| Outcome::Queued {
            branch: "main".into(),
            behind,
            held: false,
        };
        assert_eq!(queued(Behind::Nothing).to_string(), "build of main started");
        assert_eq!(
            (
                queued(Behind::Running).http_status(),
                queued(Behind::Running).status_word()
            ),
            (202, "queued")
        );
        let failed = Outcome::Failed {
            build: "b1".into(),
            result: BuildResult::TimedOut,
            at: Some("step 2 (deploy)".into()),
        };
        assert_eq!(
            failed.to_string(),
            "build b1 timed out at step 2 (deploy); the server's build log has the output"
        );
        assert_eq!((failed.http_status(), failed.status_word()), (500, "failed"));
        assert_eq!(
            (Outcome::Duplicate.http_status(), Outcome::Duplicate.status_word()),
            (200, "duplicate")
        );
    }
}
