//! The system layer: what every other part needs from the machine, using nothing of theirs.
//! Running children and finding their leftovers (`process`), changing user (`privilege`),
//! log lines (`log`), the clock (`time`), and small text helpers (`text`).

pub mod log;
pub mod privilege;
pub mod process;
pub mod text;
pub mod time;
