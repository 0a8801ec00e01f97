//! The one error type, and the one place that maps errors to HTTP statuses and exit codes.
//!
//! Every message here may reach a forge's delivery log or a terminal, so none of them holds a
//! secret, a token or an expected signature. Detail that only the server's owner should see
//! (paths, OS errors) is kept apart in `detail()` and goes to the log.

use std::fmt;
use std::io;
use std::path::PathBuf;

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
    /// No hook of that name (or the name is not a valid hook name).
    UnknownHook(String),
    /// The body is larger than `max_body_bytes`.
    TooLarge { limit: u64 },
    /// A malformed body or header.
    BadRequest(String),
    /// A content type we cannot read a payload from.
    UnsupportedMediaType(String),
    /// `on_busy = "reject"` and a build is running.
    Busy,
    /// Started as root, a command will not stay root, nor become anyone, on the say of what
    /// others can change (privilege.rs): why, and what to do.
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

    /// The exit code of a subcommand that failed with this error (sysexits.h where one fits).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Config { .. } => 78,                  // EX_CONFIG
            Error::Io { .. } | Error::Internal(_) => 74, // EX_IOERR
            Error::Busy => 75,                           // EX_TEMPFAIL
            Error::Refused { .. } => 77,                 // EX_NOPERM
            _ => 1,
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
            Error::UnknownHook(name) => write!(
                f,
                "no hook named \"{}\" is configured here",
                crate::sys::text::printable(name, 64)
            ),
            Error::TooLarge { limit } => {
                write!(f, "the body is larger than this hook accepts ({limit} bytes)")
            }
            Error::UnsupportedMediaType(ct) => write!(
                f,
                "content type \"{}\" is not supported: send application/json or application/x-www-form-urlencoded",
                crate::sys::text::printable(ct, 80)
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
