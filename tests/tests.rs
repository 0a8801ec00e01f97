//! The integration tests: one binary, running the real `deploy-hook` executable as a CGI
//! program and as a command, against real git repositories made in temp dirs.

// Tests may read the real environment (the PATH to hand to the binary).
#![allow(clippy::disallowed_methods)]

#[macro_use]
mod tier;
mod doubles;
mod own_web;
mod util;

mod answers;
mod bucket;
mod builds;
mod changes;
mod check;
mod check_setups;
mod check_web;
mod children;
mod cli;
mod concurrency;
mod config_errors;
mod deliveries;
mod faults;
mod harden;
mod hostile;
mod hosts;
mod hosts_rollback;
mod init;
mod init_setups;
mod logging;
mod package;
mod page;
mod payloads;
mod pnpm;
mod previews;
mod programs;
mod queue;
mod readme;
mod releases;
mod report;
mod rollback;
mod root;
mod s3;
mod secrets;
mod servers;
mod site;
mod site_conf;
mod state_files;
mod status;
mod webhosts;
