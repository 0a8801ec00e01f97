//! How many preview builds of a hook run at once: `previews.jobs` slots, each a lock file
//! (`<state_dir>/<hook>/preview-slots/N.lock`, flock(2)) that a preview's worker holds for
//! one build. Twenty pull requests at once are then built `jobs` at a time, not twenty
//! VitePress builds together on two cores; the others' deliveries wait in their queues
//! (nothing is lost) and their workers wait for a slot. Production's build takes no slot:
//! it is never limited by previews (`first` makes previews wait for it, not the other way).

use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use fs2::FileExt;

use crate::build::state::open_lock_file;
use crate::error::{Error, Result};

/// A preview build's slot: let go when dropped.
pub struct Slot {
    _file: File,
}

/// Waits for a free slot of the `jobs` of the hook whose state folder is `hook_dir`, and
/// holds it. A free one is taken at once; when all are held, this worker waits for one of
/// them (chosen by its process id, so waiting workers spread over the slots).
pub fn take(hook_dir: &Path, jobs: usize) -> Result<Slot> {
    let dir = hook_dir.join("preview-slots");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let jobs = jobs.max(1);
    let mut files = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let path = dir.join(format!("{i}.lock"));
        let file = open_lock_file(&path)?;
        files.push(file);
    }
    let free = files.iter().position(|f| f.try_lock_exclusive().is_ok());
    let i = free.unwrap_or(std::process::id() as usize % jobs);
    let file = files.swap_remove(i);
    if free.is_none() {
        file.lock_exclusive()
            .map_err(|e| Error::io("cannot lock a preview build slot", e))?;
    }
    Ok(Slot { _file: file })
}
