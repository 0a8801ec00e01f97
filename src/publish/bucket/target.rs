//! The bucket as a destination beside the others (`publish::Staged`): its part of a
//! publish between making the release and switching to it, rollback and resume, and what
//! `status` and `check` ask of it.
//!
//! The release is made in the bucket's local copy first; the bucket itself is sent
//! nothing until the switch, so a held hook or a superseded build leaves it untouched. The
//! local copy is a served path with its releases, as for `publish.to`: the local `to`
//! itself when the hook has one (made and switched as its own destination), else
//! `<state_dir>/<hook>/bucket/site`, a symlink no web server needs to know about, made and
//! switched here. Its symlink says which release the bucket serves, as far as this machine
//! knows; the bucket's manifest is what the bucket says.

use std::path::{Path, PathBuf};

use super::{restore, switch, upload, Local, Rclone, Upload};
use crate::config::{Bucket, Hosts};
use crate::publish::{local, releases, Failure, FailureKind, Tools};
use crate::sys::process::{Out, Process};

/// What a destination is called in the log, `status` and `failed_step`.
pub const NAME: &str = "bucket";

fn fail(target: &str, message: impl Into<String>) -> Failure {
    Failure {
        target: Some(target.to_string()),
        message: message.into(),
        kind: FailureKind::Failed,
    }
}

/// rclone for this bucket, with the build's PATH and HOME; its messages go to the log and
/// its file lists into the bucket's state folder (made here).
pub fn rclone(cfg: &Bucket, tools: &Tools) -> Result<Rclone, String> {
    let local = Local::new(tools.state_dir);
    local.ensure()?;
    rclone_in(cfg, tools, local.dir())
}

/// rclone for this bucket, its file lists in `work` (a folder only this user can write).
pub fn rclone_in(cfg: &Bucket, tools: &Tools, work: &Path) -> Result<Rclone, String> {
    let path = tools.env.get("PATH").map(String::as_str).unwrap_or("/usr/bin:/bin");
    let home = tools
        .env
        .get("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools.state_dir.to_path_buf());
    Rclone::new(
        path,
        &home,
        &cfg.rclone_config,
        &cfg.remote,
        tools.upload_timeout,
        work,
        Some(tools.log),
    )
}

/// The served path of the bucket's local copy: the local `to`, else the state folder's.
pub fn copy_path(local_to: Option<&Path>, state_dir: &Path) -> PathBuf {
    local_to
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Local::new(state_dir).mirror())
}

/// The bucket, switched to a new release, with what it takes to put it back.
struct Switched {
    store: Rclone,
    up: Upload,
    /// The local folder of the release it served before.
    live_src: Option<PathBuf>,
}

/// The bucket's two phases for `release`, a folder in `releases`: upload (new paths only,
/// no reader sees them), then switch. A switch that fails is undone here.
fn phases(cfg: &Bucket, releases: &Path, release: &str, tools: &Tools) -> Result<Switched, Failure> {
    let local = Local::new(tools.state_dir);
    let mut store = rclone(cfg, tools).map_err(|m| fail(NAME, m))?;
    let mut note = |line: &str| tools.note(&format!("{NAME}: {line}"));
    tools.note(&format!("\n{NAME}: publishing {release} to {}", cfg.remote));
    let src = releases.join(release);
    if !src.is_dir() {
        return Err(fail(
            NAME,
            format!(
                "its local copy has no release {release} in {}; nothing was switched",
                releases.display()
            ),
        ));
    }
    let mut up = upload(&mut store, &local, &cfg.cache_control, &src, release, &mut note)
        .map_err(|m| fail(NAME, format!("{m}; nothing was switched")))?;
    let live_src = up.was_live().map(|l| releases.join(l));
    if let Err(m) = switch(&mut store, &local, &cfg.cache_control, &mut up, &mut note) {
        let back = put_back(&mut store, &local, &up, live_src.as_deref(), tools);
        return Err(fail(NAME, format!("{m}; {back}")));
    }
    Ok(Switched { store, up, live_src })
}

/// `restore`, and what it came to, for the failure's message.
fn put_back(store: &mut Rclone, local: &Local, up: &Upload, live_src: Option<&Path>, tools: &Tools) -> String {
    match up.was_live() {
        None => "the bucket served no release before; the next publish completes it".to_string(),
        Some(was) if was == up.plan.manifest.release => format!("the bucket serves {was} as before"),
        Some(was) => match restore(store, local, up, live_src) {
            Ok(()) => {
                tools.note(&format!("{NAME}: serves {was} again"));
                format!("the bucket serves {was} again")
            }
            Err(m) => {
                tools.note(&format!("{NAME}: could not put {was} back: {m}"));
                format!("the bucket could not be put back to {was} ({m}): the next publish or rollback repairs it")
            }
        },
    }
}

/// The bucket's part of a publish, between making the release and switching to it
/// (`publish::Staged`): the release is in the local copy; the bucket is untouched until
/// `switch`, so that a held hook (or a superseded build) sends it nothing.
pub struct Staged<'a> {
    cfg: &'a Bucket,
    tools: &'a Tools<'a>,
    /// The served path of the local copy.
    copy: PathBuf,
    /// The copy is the state folder's: made, switched, discarded and pruned here (else it
    /// is the local `to`, which its own destination makes and switches).
    own: bool,
    release: String,
    switched: Option<Switched>,
}

impl<'a> Staged<'a> {
    /// Makes the release in the state folder's copy when the hook has no local `to` (the
    /// local `to` is made by its own destination).
    pub fn make(
        cfg: &'a Bucket,
        local_to: Option<&Path>,
        from: &Path,
        release: &str,
        tools: &'a Tools<'a>,
    ) -> Result<Staged<'a>, Failure> {
        let copy = copy_path(local_to, tools.state_dir);
        let own = local_to.is_none();
        if own {
            Local::new(tools.state_dir).ensure().map_err(|m| fail(NAME, m))?;
            let made = local::make(from, &copy, release).map_err(|e| fail(NAME, e.to_string()))?;
            tools.note(&format!(
                "{NAME}: made release {release} in its local copy: {}",
                made.stats
            ));
        }
        Ok(Staged {
            cfg,
            tools,
            copy,
            own,
            release: release.to_string(),
            switched: None,
        })
    }

    /// The bucket serves the release, and its own copy says so. When it fails, the bucket
    /// serves what it served.
    pub fn switch(&mut self) -> Result<(), Failure> {
        self.switched = Some(phases(
            self.cfg,
            &local::releases_dir(&self.copy),
            &self.release,
            self.tools,
        )?);
        if self.own {
            // Only this machine's record of what the bucket serves: the bucket serves the
            // release either way.
            if let Err(e) = local::switch(&self.copy, &self.release) {
                self.tools.note(&format!(
                    "{NAME}: cannot switch its local copy {}: {e}",
                    self.copy.display()
                ));
            }
        }
        Ok(())
    }

    /// Another destination could not switch after the bucket did: the bucket serves what
    /// it served before again, and so does its own copy.
    pub fn put_back(&mut self) {
        let Some(mut s) = self.switched.take() else { return };
        let back = put_back(
            &mut s.store,
            &Local::new(self.tools.state_dir),
            &s.up,
            s.live_src.as_deref(),
            self.tools,
        );
        self.tools.note(&format!("{NAME}: {back}"));
        if let (true, Some(was)) = (self.own, s.up.was_live()) {
            let _ = local::switch(&self.copy, was);
        }
    }

    /// The release will never be switched to: removed from the state folder's copy (unless
    /// the copy still points at it: a first publish put back to nothing).
    pub fn discard(&mut self) {
        if self.own && local::live(&self.copy).as_deref() != Some(self.release.as_str()) {
            local::remove(&self.copy, &self.release);
        }
    }

    /// The switch went through everywhere: `after_publish` purges the CDN.
    pub fn published(&self) {
        if let Some(s) = &self.switched {
            after_publish(self.cfg, &s.up.plan.purge_list(), &self.release, self.tools);
        }
    }
}

/// Removes the releases `keep` lets go from the state folder's copy, when the hook has no
/// local `to`; returns those that could not be removed, with why.
pub fn prune(local_to: Option<&Path>, state_dir: &Path, keep: &releases::Keep) -> Vec<(String, String)> {
    match local_to {
        Some(_) => Vec::new(),
        None => local::prune(&copy_path(None, state_dir), keep),
    }
}

/// A rollback or resume of the bucket and its local copy (the local `to`, or the state
/// folder's) to the release `choice` means among the copy's releases, all or none. The
/// bucket is asked even when the copy already serves that release: after a put back that
/// failed, it may not.
pub fn switch_to(
    cfg: &Bucket,
    local_to: Option<&Path>,
    choice: releases::Choice,
    tools: &Tools,
) -> Result<(Option<String>, String), Failure> {
    let copy = copy_path(local_to, tools.state_dir);
    let from = local::live(&copy);
    let target = releases::choose(choice, from.as_deref(), &local::list(&copy))
        .map_err(|why| Failure::refused(crate::sys::text::printable(&why, 2000)))?;
    let s = phases(cfg, &local::releases_dir(&copy), &target, tools)?;
    if from.as_deref() != Some(target.as_str()) {
        if let Err(e) = local::switch(&copy, &target) {
            let mut s = s;
            let back = put_back(
                &mut s.store,
                &Local::new(tools.state_dir),
                &s.up,
                s.live_src.as_deref(),
                tools,
            );
            let (who, what) = match local_to {
                Some(to) => ("local", to.display().to_string()),
                None => (NAME, format!("its local copy {}", copy.display())),
            };
            return Err(fail(who, format!("cannot switch {what}: {e}; {back}")));
        }
    }
    after_publish(cfg, &s.up.plan.purge_list(), &target, tools);
    Ok((from, target))
}

/// A rollback or resume of the web hosts of `h` and its bucket to one release, all or
/// none: the hosts choose it (`hosts::switch_to`), the bucket switches to it from its local
/// copy just before them, and is put back when their switch fails.
pub fn switch_to_with_hosts(
    h: &Hosts,
    cfg: &Bucket,
    choice: releases::Choice,
    tools: &Tools,
) -> Result<(Option<String>, String), Failure> {
    let copy = copy_path(h.local.as_deref(), tools.state_dir);
    let mut switched: Option<Switched> = None;
    let mut before = |release: &str| {
        switched = Some(phases(cfg, &local::releases_dir(&copy), release, tools)?);
        Ok(())
    };
    match super::super::hosts::switch_to(h, choice, tools, &mut before) {
        Err(f) => {
            if let Some(mut s) = switched {
                let back = put_back(
                    &mut s.store,
                    &Local::new(tools.state_dir),
                    &s.up,
                    s.live_src.as_deref(),
                    tools,
                );
                tools.note(&format!("{NAME}: {back}"));
            }
            Err(f)
        }
        Ok((from, target)) => {
            if h.local.is_none() {
                if let Err(e) = local::switch(&copy, &target) {
                    tools.note(&format!("{NAME}: cannot switch its local copy {}: {e}", copy.display()));
                }
            }
            if let Some(s) = &switched {
                after_publish(cfg, &s.up.plan.purge_list(), &target, tools);
            }
            Ok((from, target))
        }
    }
}

/// The release the bucket serves by its manifest, `Ok(None)` when it has none.
pub fn served(cfg: &Bucket, tools: &Tools) -> Result<Option<String>, String> {
    let mut store = rclone(cfg, tools)?;
    super::served(&mut store).map(|m| m.map(|m| m.release))
}

/// Runs `after_publish`, when set and something a CDN may have cached changed, in `repo`
/// with the publish's environment plus `DEPLOY_HOOK_CHANGED` (a file of the changed paths,
/// one per line, relative to the site's root) and `DEPLOY_HOOK_RELEASE`. Its output goes
/// to the log; its failure is said there and changes nothing: the bucket serves the new
/// release, and a CDN that was not purged serves old copies until they expire.
pub fn after_publish(cfg: &Bucket, changed: &[String], release: &str, tools: &Tools) {
    let Some(cmd) = &cfg.after_publish else {
        return;
    };
    if changed.is_empty() {
        tools.note("after_publish: not run, no path a CDN may have cached changed");
        return;
    }
    let file = Local::new(tools.state_dir).changed_file();
    let mut text = changed.join("\n");
    text.push('\n');
    if let Err(e) = std::fs::write(&file, text) {
        tools.note(&format!("after_publish: not run, cannot write {}: {e}", file.display()));
        return;
    }
    let mut env = tools.env.clone();
    env.insert("DEPLOY_HOOK_CHANGED".into(), file.to_string_lossy().into_owned());
    env.insert("DEPLOY_HOOK_RELEASE".into(), release.to_string());
    tools.note(&format!("\nafter_publish ({} changed paths): $ {cmd}", changed.len()));
    let mut out = tools.log.stream("");
    let exit = Process::argv(&cmd.argv())
        .cwd(tools.repo)
        .env(&env)
        .timeout(tools.upload_timeout)
        .run(Out::To(&mut |b| out.write(b)), Out::Stdout, &mut || false)
        .exit;
    // Also beside the bucket's state: rollback and resume have no build log to show it in.
    let tail = out.finish();
    let record = Local::new(tools.state_dir).dir().join("after_publish.log");
    let _ = std::fs::write(&record, format!("release {release}\n$ {cmd}\n{tail}-> {exit}\n"));
    if exit.success() {
        tools.note(&format!("-> {exit}"));
    } else {
        tools.note(&format!(
            "-> {exit}: after_publish failed; the bucket serves {release}, a CDN may serve old copies until they expire"
        ));
    }
}

/// The bucket in `status`: what its manifest says it serves.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub remote: String,
    /// The release in its manifest; `None` when it has none deploy-hook can read.
    pub release: Option<String>,
    /// Why the bucket could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Asks the bucket what it serves, for `status`.
pub fn status(cfg: &Bucket, tools: &Tools) -> Status {
    let (release, error) = match served(cfg, tools) {
        Ok(r) => (r, None),
        Err(e) => (None, Some(e)),
    };
    Status {
        remote: cfg.remote.clone(),
        release,
        error,
    }
}

/// The `bucket:` line of `status`.
pub fn status_text(s: &Status) -> String {
    use crate::sys::text::printable;
    let what = match (&s.release, &s.error) {
        (_, Some(e)) => format!("cannot be asked: {}", printable(e, 300)),
        (Some(r), None) => format!("serves {}", printable(r, 80)),
        (None, None) => "serves nothing deploy-hook published".into(),
    };
    format!("  bucket:  {} {what}\n", s.remote)
}
