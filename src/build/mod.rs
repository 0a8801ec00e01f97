//! The build engine: what happens to a delivery once it is accepted.
//!
//! `enqueue` is the one way a build is asked for (a delivery, `run`); `queue` is the lock
//! and pending-marker protocol (at most one build per site, none lost) and the workers;
//! `pipeline` is one build (sync, clean, steps, publish); `finish` records a build that
//! ended, whoever saw it end, and tells about it; `state` is the per-hook state folder
//! they share with `status`; `tree` is what the steps left in a checkout, whichever hook
//! (or preview) built there; `buildlog` writes a build's log; `reporting` tells
//! `crate::report` what the author is to see of each build; `preview` is a preview of a
//! branch or pull request: what it is of, its name, its files, its git side.

pub mod buildlog;
pub mod enqueue;
pub mod finish;
pub mod pipeline;
pub mod preview;
pub mod queue;
pub mod release;
pub mod reporting;
pub mod state;
pub mod tokens;
pub mod tree;
