//! Publishing a build's output: to the local served path (`local`), and to web hosts over
//! ssh and rsync (`hosts`).

pub mod hosts;
pub mod local;

pub use local::*;
