//! Publishing to object storage behind a CDN (S3, Aliyun OSS, Tencent COS, R2, ...), with
//! rclone, so that a reader never gets a page that names an asset the bucket does not have.
//!
//! A bucket has no atomic switch: `plan` orders the uploads so that it needs none (new
//! assets, then files changed in place, then HTML, then deletions, then the manifest last)
//! and sends only what the live release's manifest says changed. `rclone` runs rclone.
//!
//! A publish to a bucket has the two phases of the other destinations, so that it joins
//! their all-or-none: `upload` reads the live manifest and sends the new paths (class 1, no
//! reader can reach them yet: nothing is switched); `switch` sends the rest and the manifest.
//! A `switch` that fails, or a switch of another destination that fails after it, is undone
//! by `restore`, which sends the live release's bytes back from its local copy.
//!
//! What the bucket serves is always also on this machine, as a release folder: rollback and
//! restore send a release's exact bytes from there. That folder is beside the local `to`
//! when one is set, else `<state_dir>/<hook>/bucket/site.releases/` (`Local::mirror`).
//! The state folder also keeps `pending`: the paths a publish has started to send. A publish
//! killed or failed half way leaves the bucket holding other bytes there than its manifest
//! says; the next publish sends those paths again whatever the manifest says.

mod plan;
mod rclone;
pub mod target;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use plan::{Manifest, Plan, MANIFEST, OWN_FOLDER};
pub use rclone::{Rclone, Store};

/// The bucket's own folder in the hook's state folder.
#[derive(Debug, Clone)]
pub struct Local {
    dir: PathBuf,
}

impl Local {
    /// `<hook state folder>/bucket`.
    pub fn new(hook_state: &Path) -> Local {
        Local {
            dir: hook_state.join("bucket"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ensure(&self) -> Result<(), String> {
        fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))
    }

    /// The served path of the bucket's local copy when the hook has no local `to`: a
    /// symlink to the release the bucket serves, with the releases beside it, as for `to`.
    pub fn mirror(&self) -> PathBuf {
        self.dir.join("site")
    }

    fn pending_file(&self) -> PathBuf {
        self.dir.join("pending.json")
    }

    /// The paths a publish that did not finish may have left with other bytes.
    pub fn pending(&self) -> BTreeSet<String> {
        fs::read(self.pending_file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn set_pending(&self, paths: &BTreeSet<String>) -> Result<(), String> {
        let file = self.pending_file();
        if paths.is_empty() {
            return match fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("cannot remove {}: {e}", file.display()))
                }
                _ => Ok(()),
            };
        }
        write_atomically(&file, &serde_json::to_vec(paths).unwrap_or_default())
    }

    /// The last manifest this machine wrote to the bucket, as it was sent.
    pub fn manifest_file(&self) -> PathBuf {
        self.dir.join("release.json")
    }

    /// The list of changed paths `after_publish` gets in `DEPLOY_HOOK_CHANGED`.
    pub fn changed_file(&self) -> PathBuf {
        self.dir.join("changed.txt")
    }
}

/// Writes a file whole or not at all (a power cut leaves the old one or the new one).
fn write_atomically(file: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = file.with_extension("tmp");
    fs::write(&tmp, bytes)
        .and_then(|()| fs::File::open(&tmp)?.sync_all())
        .and_then(|()| fs::rename(&tmp, file))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// A publish to the bucket between its two phases.
#[derive(Debug)]
pub struct Upload {
    pub plan: Plan,
    /// What the bucket served when the publish began (its manifest), if deploy-hook knows.
    pub live: Option<Manifest>,
    /// The local release folder the files are sent from.
    src: PathBuf,
    started: Instant,
}

impl Upload {
    /// The release the bucket served before, by name.
    pub fn was_live(&self) -> Option<&str> {
        self.live.as_ref().map(|m| m.release.as_str())
    }
}

/// The release the bucket serves, from its manifest; `None` when it has none deploy-hook
/// can read.
pub fn served(store: &mut dyn Store) -> Result<Option<Manifest>, String> {
    let bytes = store.read(MANIFEST)?;
    Ok(bytes.and_then(|b| Manifest::parse(&b)))
}

/// Phase 1: reads what the bucket serves, decides what to send to make it serve the release
/// folder `src` as `release`, and sends the files at new paths, which no page the bucket
/// serves names yet. Nothing a reader gets has changed when it returns.
pub fn upload(
    store: &mut dyn Store,
    local: &Local,
    table: &[(String, String)],
    src: &Path,
    release: &str,
    note: &mut dyn FnMut(&str),
) -> Result<Upload, String> {
    let started = Instant::now();
    let files = plan::scan(src)?;
    let live = match store.read(MANIFEST)? {
        None => None,
        Some(bytes) => match Manifest::read(&bytes) {
            Ok(m) => Some(m),
            Err(why) => {
                note(&format!(
                    "{MANIFEST} in the bucket is damaged, {why}: it is ignored, every file is sent, nothing is deleted"
                ));
                None
            }
        },
    };
    let mut pending = local.pending();
    let plan = Plan::new(release, files, live.as_ref(), &pending, table);
    // Recorded before anything is sent: whatever happens next, the next publish knows
    // which objects may not be what the manifest says.
    pending.extend(plan.touched().cloned());
    local.ensure()?;
    local.set_pending(&pending)?;
    send(store, src, &plan.new_paths, table)?;
    Ok(Upload {
        plan,
        live,
        src: src.to_path_buf(),
        started,
    })
}

/// Sends `paths` of `src`, one rclone call per `Cache-Control` value.
fn send(store: &mut dyn Store, src: &Path, paths: &[String], table: &[(String, String)]) -> Result<(), String> {
    for (cache, group) in plan::by_cache_control(paths, table) {
        store.upload(src, &group, cache)?;
    }
    Ok(())
}

/// Phase 2: the files changed in place, the HTML, the deletions, and the manifest last.
/// When it returns `Ok` the bucket serves the new release; `Err` leaves it serving a mix
/// for `restore` to undo.
pub fn switch(
    store: &mut dyn Store,
    local: &Local,
    table: &[(String, String)],
    up: &mut Upload,
    note: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let plan = &mut up.plan;
    // A rollback or resume to the release the bucket serves already, with nothing out of
    // place: there is nothing to send, and its manifest stays as it is.
    if up.live.as_ref().is_some_and(|l| l.release == plan.manifest.release)
        && plan.touched().next().is_none()
        && plan.delete.is_empty()
    {
        note(&format!("serves {} already", plan.manifest.release));
        return local.set_pending(&BTreeSet::new());
    }
    for path in &plan.changed {
        if plan::cache_control(path, table).is_some_and(|c| c.contains("immutable")) {
            note(&format!(
                "warning: {path} changed in place, but its Cache-Control says immutable: a reader or CDN that has it keeps the old bytes (publish.cache_control should give immutable only to content-hashed names)"
            ));
        }
    }
    send(store, &up.src, &plan.changed, table)?;
    send(store, &up.src, &plan.html, table)?;
    let deleted = match plan.delete.len() {
        0 => 0,
        n => match store.delete(&plan.delete) {
            Ok(()) => n,
            Err(e) => {
                // Extra objects cost a little storage and no reader anything: the manifest
                // keeps them, and the next publish deletes them.
                note(&format!(
                    "could not delete {n} old objects ({e}); the next publish tries again"
                ));
                plan.keep_undeleted();
                0
            }
        },
    };
    let bytes = plan.manifest.to_bytes();
    let file = local.manifest_file();
    write_atomically(&file, &bytes)?;
    store.put(&file, MANIFEST, "no-cache")?;
    local.set_pending(&BTreeSet::new())?;
    let kib = plan.upload_bytes().div_ceil(1024);
    note(&format!(
        "bucket serves {}: {} new, {} changed, {} HTML sent ({kib} KiB), {} unchanged, {} deleted, in {:.2}s",
        plan.manifest.release,
        plan.new_paths.len(),
        plan.changed.len(),
        plan.html.len(),
        plan.unchanged,
        deleted,
        up.started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Puts the bucket back to the release it served before `up` began, after a switch that
/// failed (the bucket's or another destination's): the paths `up` sent get the live
/// release's bytes (and headers) again from `live_src`, its local folder, and its manifest
/// is written again, keeping the new paths `up` sent for the next publish to delete. Deletions are
/// not undone: they only ever remove objects of neither release.
pub fn restore(store: &mut dyn Store, local: &Local, up: &Upload, live_src: Option<&Path>) -> Result<(), String> {
    let Some(live) = &up.live else {
        // Nothing was served before: there is nothing to go back to. The next publish
        // sends every file again (they are pending).
        return Err("the bucket served no release before this publish; the next publish completes it".into());
    };
    let Some(src) = live_src.filter(|s| s.is_dir()) else {
        return Err(format!(
            "the local copy of {} is gone, so its bytes cannot be sent back; the next publish or rollback repairs the bucket",
            live.release
        ));
    };
    let files = plan::scan(src)?;
    if files != live.files {
        return Err(format!(
            "the local copy of {} ({}) is not what the bucket's manifest lists; the next publish or rollback repairs the bucket",
            live.release,
            src.display()
        ));
    }
    let touched: BTreeSet<String> = up.plan.touched().cloned().collect();
    let mut back = Plan::new(&live.release, files, Some(live), &touched, &live.cache_control);
    // Not a new release: the same manifest, with what `up` left in the bucket kept for the
    // next publish to delete, and nothing deleted now.
    back.delete.clear();
    back.manifest.previous = live.previous.clone();
    back.manifest.kept = live
        .kept
        .iter()
        .chain(touched.iter().filter(|p| !live.files.contains_key(*p)))
        .cloned()
        .collect();
    // With the headers they had.
    send(store, src, &back.changed, &live.cache_control)?;
    send(store, src, &back.html, &live.cache_control)?;
    let file = local.manifest_file();
    write_atomically(&file, &back.manifest.to_bytes())?;
    store.put(&file, MANIFEST, "no-cache")?;
    local.set_pending(&BTreeSet::new())
}

/// Writes and deletes a probe object under `.deploy-hook/`, for `check`: the user that
/// publishes can write where a publish writes (listing buckets is not asked: scoped keys
/// often may not). `scratch` is a folder of this user's for the probe's local file.
pub fn probe(store: &mut dyn Store, scratch: &Path) -> Result<(), String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!("probe-{}-{nanos}", std::process::id());
    let file = scratch.join(&name);
    fs::write(&file, "deploy-hook check\n").map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let at = format!("{OWN_FOLDER}/{name}");
    let put = store.put(&file, &at, "no-cache");
    let _ = fs::remove_file(&file);
    put?;
    store.delete(&[at])
}

#[cfg(test)]
mod tests;
