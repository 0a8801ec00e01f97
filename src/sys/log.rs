//! Log lines: to syslog over the configured unix socket; when it cannot be reached, to the
//! configured log file; when neither is usable, warnings and errors to stderr.
//!
//! stderr is the last resort because fcgiwrap and Apache put a CGI's stderr in their error
//! log at `[error]` level: a normal 202 must not write there, or every delivery looks like
//! a failure. The file is opened for each line (`O_APPEND`), so logrotate can move it away
//! without a signal: the next line creates a new one.
//!
//! Lines are `key=value` pairs so they can be grepped. Nothing that is logged is ever a
//! secret, a token or an expected signature: callers pass only names, ids and outcomes.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use syslog::{Formatter3164, Logger as SysLogger, LoggerBackend};

/// Where log lines go, as the config's `[log]` table says (checked in `config`).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The syslog socket; `None` (`syslog = ""`) when syslog is not to be used.
    pub syslog: Option<PathBuf>,
    /// An append-only log file, used when syslog cannot be reached.
    pub file: Option<PathBuf>,
    pub ident: String,
    pub facility: syslog::Facility,
}

pub struct Log {
    syslog: Option<SysLogger<LoggerBackend, Formatter3164>>,
    file: Option<PathBuf>,
    ident: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

impl Log {
    /// Opens the configured socket; an unreachable socket means the file, else stderr.
    pub fn open(cfg: &LogConfig) -> Log {
        let syslog = cfg.syslog.as_ref().and_then(|path| {
            let formatter = Formatter3164 {
                facility: cfg.facility,
                hostname: None,
                process: cfg.ident.clone(),
                pid: std::process::id(),
            };
            syslog::unix_custom(formatter, path).ok()
        });
        Log {
            syslog,
            file: cfg.file.clone(),
            ident: cfg.ident.clone(),
        }
    }

    /// A logger for before the config is known: warnings and errors to stderr.
    pub fn stderr() -> Log {
        Log {
            syslog: None,
            file: None,
            ident: "deploy-hook".into(),
        }
    }

    pub fn line(&mut self, level: Level, msg: &str) {
        // One line per message: a newline inside a value would forge a second log line.
        let msg: String = msg.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        if let Some(sys) = self.syslog.as_mut() {
            let sent = match level {
                Level::Info => sys.info(&msg),
                Level::Warning => sys.warning(&msg),
                Level::Error => sys.err(&msg),
            };
            if sent.is_ok() {
                return;
            }
            self.syslog = None;
        }
        let pid = std::process::id();
        if let Some(path) = &self.file {
            let stamp = crate::sys::time::rfc3339(crate::sys::time::now());
            // One write of the whole line: O_APPEND keeps lines of concurrent processes whole.
            let text = format!("{stamp} {}[{pid}]: {}: {msg}\n", self.ident, level.word());
            let written = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .open(path)
                .and_then(|mut f| f.write_all(text.as_bytes()));
            match written {
                Ok(()) => return,
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "{}[{pid}]: cannot write the log file {}: {e}",
                        self.ident,
                        path.display()
                    );
                    // Tried once per process: a file that cannot be written now will not be
                    // writable for the next line either.
                    self.file = None;
                }
            }
        }
        if level != Level::Info {
            let _ = writeln!(std::io::stderr(), "{}[{pid}]: {msg}", self.ident);
        }
    }

    pub fn info(&mut self, msg: &str) {
        self.line(Level::Info, msg);
    }

    pub fn warn(&mut self, msg: &str) {
        self.line(Level::Warning, msg);
    }

    pub fn error(&mut self, msg: &str) {
        self.line(Level::Error, msg);
    }
}

/// Quotes a log value when it holds spaces or quotes, so lines stay `key=value` parsable.
pub fn q(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=') {
        value.to_string()
    } else {
        format!("{value:?}")
    }
}
