//! Log lines to syslog over the configured unix socket, or to stderr when it cannot be
//! reached (fcgiwrap and Apache put a CGI's stderr in their error log).
//!
//! Lines are `key=value` pairs so they can be grepped. Nothing that is logged is ever a
//! secret, a token or an expected signature: callers pass only names, ids and outcomes.

use std::io::Write;

use syslog::{Formatter3164, Logger as SysLogger, LoggerBackend};

use crate::config::LogConfig;

pub struct Log {
    syslog: Option<SysLogger<LoggerBackend, Formatter3164>>,
    ident: String,
}

#[derive(Clone, Copy)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Log {
    /// Opens the configured socket; an unreachable socket means stderr.
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
            ident: cfg.ident.clone(),
        }
    }

    /// A logger that only writes to stderr, for before the config is known.
    pub fn stderr() -> Log {
        Log {
            syslog: None,
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
        let _ = writeln!(std::io::stderr(), "{}[{}]: {msg}", self.ident, std::process::id());
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
