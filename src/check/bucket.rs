//! `check` for a hook with `publish.bucket`: rclone is installed where the hook's path
//! finds it, the rclone config is there (and not readable by others: it holds the keys),
//! it defines the remote, the bucket answers (and which release it serves), and the user
//! that publishes can write and delete an object where a publish writes. Asked with the
//! rclone, flags and cleared environment a publish uses (`publish::bucket`), so a bucket
//! that passes here is one a build can write.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use super::Report;
use crate::build::state::HookState;
use crate::config::{Bucket, Config, Hook};
use crate::publish::bucket::{self, target};
use crate::publish::Tools;
use crate::sys::process::find_program;

/// The bucket of `publish.bucket`, as the build's user sees it.
pub(super) fn check(hook: &Hook, state: &HookState, home: &Path, cfg: &Bucket, r: &mut Report) {
    let env = hook.child_env(home);
    let Ok(null) = crate::build::buildlog::BuildLog::discard() else {
        return r.fail("bucket", "cannot open /dev/null", "this machine is broken");
    };
    // rclone's file lists and the probe's file: a folder of this user's alone, removed after.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let scratch = std::env::temp_dir().join(format!("deploy-hook-check-{}-{nanos}", std::process::id()));
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&scratch) {
        return r.fail(
            "bucket",
            format!("cannot make {}: {e}", scratch.display()),
            "the temporary folder must be writable",
        );
    }
    let tools = Tools {
        env: &env,
        state_dir: &state.dir,
        // A check that hangs helps no one: a minute is plenty for a probe.
        upload_timeout: hook.step_timeout.min(std::time::Duration::from_secs(60)),
        log: &null,
        repo: &hook.repo,
    };
    check_bucket(hook, cfg, &tools, &scratch, r);
    let _ = std::fs::remove_dir_all(&scratch);
}

fn check_bucket(hook: &Hook, cfg: &Bucket, tools: &Tools, scratch: &Path, r: &mut Report) {
    let conf = cfg.rclone_config.display();
    let mut store = match target::rclone_in(cfg, tools, scratch) {
        Ok(s) => s,
        Err(m) => {
            return r.fail(
                "bucket",
                m,
                "apt-get install rclone, or add its folder to the hook's path",
            )
        }
    };
    match store.version() {
        Ok(v) => r.ok("bucket", format!("rclone found: {} ({v})", store.program().display())),
        Err(m) => return r.fail("bucket", m, "reinstall rclone: apt-get install --reinstall rclone"),
    }
    match std::fs::metadata(&cfg.rclone_config) {
        Err(e) => {
            return r.fail(
                "bucket",
                format!("cannot read rclone_config {conf}: {e}"),
                format!("write {conf} with a [remote] section for the bucket, readable by this user (docs/bucket.md)"),
            )
        }
        // Its owner and group may read it (640 root:www-data: root writes it, the build's
        // user reads it); nobody else may read it, and only its owner write it (a union
        // remote written into it makes a publish delete what the writer chooses).
        Ok(m) if m.mode() & 0o027 != 0 => r.warn(
            "bucket",
            format!(
                "rclone_config {conf} is {} (mode {:04o}); it holds the bucket's keys: chown root:{user} {conf} && chmod 640 {conf}",
                if m.mode() & 0o007 != 0 {
                    "readable by other users"
                } else {
                    "writable by its group"
                },
                m.mode() & 0o7777,
                user = crate::sys::privilege::current_user_name(),
            ),
        ),
        Ok(m) => r.ok(
            "bucket",
            format!(
                "rclone_config {conf} is readable by its owner and group only (mode {:04o})",
                m.mode() & 0o7777
            ),
        ),
    }
    let name = cfg.remote.split(':').next().unwrap_or_default();
    match store.remotes() {
        Ok(list) if list.iter().any(|l| l.trim_end_matches(':') == name) => {
            r.ok("bucket", format!("remote {name} is defined in {conf}"))
        }
        Ok(list) => {
            return r.fail(
                "bucket",
                format!(
                    "remote {name} is not defined in {conf} (it defines: {})",
                    if list.is_empty() {
                        "none".to_string()
                    } else {
                        list.join(" ")
                    }
                ),
                format!("add a [{name}] section to {conf} (docs/bucket.md has examples), or fix publish.bucket"),
            )
        }
        Err(m) => {
            return r.fail(
                "bucket",
                format!("rclone cannot read {conf}: {m}"),
                format!("fix {conf}: `rclone --config {conf} listremotes` must work as this user"),
            )
        }
    }
    match bucket::served(&mut store) {
        Ok(Some(m)) => r.ok("bucket", format!("{} answers; it serves release {}", cfg.remote, m.release)),
        Ok(None) => r.ok(
            "bucket",
            format!("{} answers; deploy-hook has published nothing there yet", cfg.remote),
        ),
        Err(m) => {
            return r.fail(
                "bucket",
                format!("{} does not answer: {m}", cfg.remote),
                format!(
                    "check the endpoint, region and keys of [{name}] in {conf}; `rclone --config {conf} lsf {}` must work as this user",
                    cfg.remote
                ),
            )
        }
    }
    match bucket::probe(&mut store, scratch) {
        Ok(()) => r.ok(
            "bucket",
            format!("this user can write and delete objects in {}", cfg.remote),
        ),
        Err(m) => r.fail(
            "bucket",
            format!("cannot write a probe object to {}/{}: {m}", cfg.remote, bucket::OWN_FOLDER),
            "the keys in rclone_config need to write and delete objects under the bucket path (S3: s3:PutObject and s3:DeleteObject)",
        ),
    }
    if let Some(cmd) = &cfg.after_publish {
        let path = tools.env.get("PATH").map(String::as_str).unwrap_or_default();
        match find_program(cmd.program(), path, &hook.repo) {
            Some(p) => r.ok("bucket", format!("after_publish runs {}", p.display())),
            None => r.fail(
                "bucket",
                format!(
                    "after_publish: {}",
                    crate::sys::process::not_found(cmd.program(), path, &hook.repo)
                ),
                "install it, or name it by its full path in publish.after_publish",
            ),
        }
    }
}

/// Hooks whose buckets are one path: each publish would read the other's manifest as its
/// live release, send the other's files back and delete them. A path inside another one
/// works (deploy-hook deletes only what its manifests list) but the outer site's files may
/// land on the inner one's.
pub(super) fn check_shared(cfg: &Config, r: &mut Report) {
    let buckets: Vec<(&str, &str)> = cfg
        .hooks
        .values()
        .filter_map(|h| Some((h.name.as_str(), h.publish.as_ref()?.bucket()?.remote.as_str())))
        .collect();
    for (i, (a, ra)) in buckets.iter().enumerate() {
        for (b, rb) in &buckets[i + 1..] {
            if ra == rb {
                r.fail(
                    "shared",
                    format!("hooks {a} and {b} publish to the same bucket path {ra}: each would take the other's site for its own"),
                    "give each hook a path of its own in the bucket, like REMOTE:BUCKET/docs and REMOTE:BUCKET/blog",
                );
            } else if ra.starts_with(&format!("{rb}/")) || rb.starts_with(&format!("{ra}/")) {
                r.warn(
                    "shared",
                    format!("hooks {a} and {b} publish to nested bucket paths ({ra}, {rb}): the outer site's files may overwrite the inner one's"),
                );
            }
        }
    }
}
