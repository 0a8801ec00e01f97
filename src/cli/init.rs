//! `deploy-hook init`: from an installed package to a hook that `check` passes, in one
//! command. New users failed on exactly these steps: who owns the checkout, the state
//! folder and the secret, and which signature mode the forge is set to.
//!
//! Order matters so that a run that stops half way can simply be run again: the secret,
//! the state folder, the publish folder and the clone come first (each kept when it is
//! already there), and the `[hooks.NAME]` table is appended to the config last. A hook in
//! the config is therefore a finished setup, and a second run for it changes nothing.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::args::{InitArgs, InitProvider};
use super::forge;
use crate::check::redact_url;
use crate::config;
use crate::delivery::cgi::Env;
use crate::error::{exit, Error, Result};
use crate::sys::privilege::{self, User};
use crate::sys::process::{Exit, Process};
use crate::sys::text::shell_quote;

mod files;

use files::{
    c_name, highest_missing, make_dir_at, make_dir_for, make_parents, open_dir, open_dir_at, replace_file, write_new,
};

/// The commented config with no hook that the package installs; written when the config
/// file is missing.
pub const TEMPLATE: &str = include_str!("../../debian/config.toml");

/// Where clones go when `--dir` is not given: `/srv` is the FHS place for served data.
const DEFAULT_CLONE_PARENT: &str = "/srv/deploy-hook";

/// `env` is the environment init was started with: its check looks for the web server on
/// the same PATH as a `deploy-hook check` the admin runs next.
///
/// A run that stops half way says what it made: those are kept (removing folders as root
/// is riskier than leaving them), and a run again reuses each of them.
pub fn run(a: &InitArgs, config_path: &Path, env: &Env, out: &mut dyn Write) -> Result<i32> {
    let mut done: Vec<String> = Vec::new();
    let result = set_up(a, config_path, env, out, &mut done);
    let made: Vec<&String> = done.iter().filter(|d| d.starts_with("made ")).collect();
    if result.is_err() && !made.is_empty() {
        writeln!(
            out,
            "{}: stopped before the config was changed; what this run made is kept (init run again reuses them, or remove them):",
            a.name
        )
        .ok();
        for d in made {
            writeln!(out, "  - {d}").ok();
        }
    }
    result
}

fn set_up(a: &InitArgs, config_path: &Path, env: &Env, out: &mut dyn Write, done: &mut Vec<String>) -> Result<i32> {
    if !config::valid_hook_name(&a.name) {
        return Err(Error::Usage(format!(
            "{:?} is not a valid hook name: use letters, digits, - and _ (at most 64), starting with a letter or digit",
            a.name
        )));
    }
    let user = privilege::user_by_name(&a.user).ok_or_else(|| {
        Error::Usage(format!(
            "no user named {:?}: pass --user with the user your web server runs deploy-hook as",
            a.user
        ))
    })?;
    if privilege::euid() != 0 && privilege::euid() != user.uid {
        return Err(Error::Usage(format!(
            "init gives files to {}: run it as root (e.g. sudo deploy-hook init ...)",
            user.name
        )));
    }
    let name = a.name.as_str();
    // How long the clone may take before it is stopped (a prompt that never comes, say).
    let limit = Duration::from_secs(a.timeout);

    // The config as it is now: a hook already there means there is nothing to do.
    let existing = match fs::read_to_string(config_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(format!("cannot read {}", config_path.display()), e)),
    };
    let text = existing.clone().unwrap_or_else(|| TEMPLATE.to_string());
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        Error::config(
            config_path,
            "",
            format!(
                "is not valid TOML ({}); fix it first (deploy-hook check shows where)",
                e.message()
            ),
        )
    })?;
    let config_dir = config_path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let state_dir = match table.get("state_dir").and_then(|v| v.as_str()) {
        Some(s) => config_dir.join(s),
        None => PathBuf::from("/var/lib/deploy-hook"),
    };
    if let Some(there) = table.get("hooks").and_then(|h| h.get(name)) {
        let differs = differences(a, there, &config_dir, &state_dir.join(name), &user)?;
        out.write_all(forge::already_there(name, config_path, &differs).as_bytes())
            .ok();
        return Ok(if differs.is_empty() { exit::OK } else { exit::USAGE });
    }
    let others: Vec<String> = table
        .get("hooks")
        .and_then(|h| h.as_table())
        .map(|h| h.keys().cloned().collect())
        .unwrap_or_default();
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| Path::new(DEFAULT_CLONE_PARENT).join(name));
    let dir = absolute(&dir)?;
    let publish_to = a.publish_to.as_deref().map(absolute).transpose()?;

    // The secret: random, readable by the user only (root reads anything). Never replaced.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&config_dir)
        .map_err(|e| Error::io(format!("cannot create {}", config_dir.display()), e))?;
    let secret_file = config_dir.join(format!("{name}.secret"));
    let secret = match fs::read(&secret_file) {
        Ok(s) => {
            done.push(format!("kept the existing secret file {}", secret_file.display()));
            // As a delivery reads it (Secret::load): without the spaces around it.
            String::from_utf8_lossy(&s).trim().to_string()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = random_secret()?;
            write_new(&secret_file, format!("{s}\n").as_bytes(), 0o400, Some(&user))?;
            done.push(format!(
                "made the secret file {} (owner {}, mode 0400)",
                secret_file.display(),
                user.name
            ));
            s
        }
        Err(e) => return Err(Error::io(format!("cannot read {}", secret_file.display()), e)),
    };

    // The state folder and the steps' HOME inside it, the user's. The state dir may be the
    // user's already (the package makes it www-data's), so each folder is made and opened
    // relative to the one above it, never through a symlink: the user could have planted
    // one (a build step of another hook can) to have root make the new hook's state in a
    // folder of root's, or hand it a file of root's.
    let state = state_dir.join(name);
    let home = state.join("home");
    let above = open_dir(state_dir.parent().unwrap_or(Path::new("/")))?;
    if make_dir_at(&above, &state_dir, &user, 0o750)? {
        done.push(format!("made {} (owner {})", state_dir.display(), user.name));
    }
    let sd = open_dir_at(
        &above,
        &state_dir,
        "set state_dir in the config to the folder itself (readlink -f shows it)",
    )?;
    if make_dir_at(&sd, &state, &user, 0o750)? {
        done.push(format!("made {} (owner {})", state.display(), user.name));
    }
    let st = open_dir_at(&sd, &state, &format!("rm {}, then run init again", state.display()))?;
    if make_dir_at(&st, &home, &user, 0o750)? {
        done.push(format!("made {} (owner {})", home.display(), user.name));
    }
    // What a command started as root will decide for this hook: it must be the user.
    match privilege::decide(&state_dir, &[name])? {
        privilege::Whom::User(u) if u.uid == user.uid => {}
        privilege::Whom::Root if user.uid == 0 => {}
        other => {
            let who = match other {
                privilege::Whom::User(u) => u.name,
                privilege::Whom::Root => "root".into(),
            };
            return Err(Error::Refused {
                why: format!(
                    "commands started as root would run this hook as {who}, not {}: {} is not {}'s",
                    user.name,
                    state.display(),
                    user.name
                ),
                fix: format!("chown -R {}: {}, then run init again", user.name, state.display()),
            });
        }
    }

    // The publish target's folder: a build switches a symlink in it, so the user writes it.
    if let Some(to) = &publish_to {
        let parent = to.parent().unwrap_or(Path::new("/"));
        if let Some(top) = highest_missing(parent).filter(|t| t != parent) {
            make_parents(parent)?;
            done.push(format!("made {} (owner root)", top.display()));
        }
        if make_dir_for(parent, &user, 0o755)? {
            done.push(format!("made {} (owner {})", parent.display(), user.name));
        }
    }

    // The clone, as the user, so git's ownership check never objects.
    let branch = if dir.join(".git").exists() {
        done.push(format!("kept the existing checkout {}", dir.display()));
        match &a.branch {
            Some(b) => b.clone(),
            None => current_branch(&dir, &user, &home, limit)?,
        }
    } else {
        if dir.exists() && fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
            return Err(Error::Usage(format!(
                "{} exists and is not a git checkout: pass another --dir, or empty it",
                dir.display()
            )));
        }
        if let Some(top) = highest_missing(&dir) {
            make_parents(&dir)?;
            if top != dir {
                done.push(format!("made {} (owner root)", top.display()));
            }
        }
        if make_dir_for(&dir, &user, 0o755)? {
            done.push(format!("made {} (owner {}, for the clone)", dir.display(), user.name));
        }
        // A token in the URL goes to a file of the user's alone, read by git's store
        // helper, and the checkout's .git/config (0644 in a 0755 folder: anyone's to read)
        // gets the URL without it: on every fetch of the build, and whatever git rewrites.
        let (url, credential) = split_credentials(&a.repo_url);
        let mut git = Process::new("git");
        git.arg("clone").arg("--quiet");
        if let Some(c) = &credential {
            let file = state.join(CREDENTIALS);
            write_credentials(&st, &file, c, &user)?;
            let helper = format!("store --file={}", shell_quote(&file.to_string_lossy()));
            // The empty value first: no helper of the system's config is asked or told.
            git.args(["--config", "credential.helper=", "--config"])
                .arg(format!("credential.helper={helper}"));
            done.push(format!(
                "kept the credentials of --repo-url in {} (owner {}, mode 0600), out of the checkout's .git/config",
                file.display(),
                user.name
            ));
        }
        if let Some(b) = &a.branch {
            git.args(["--branch", b]);
        }
        git.arg("--").arg(&url).arg(&dir);
        run_as(&mut git, &user, &home, "git clone", Some(&a.repo_url), limit)?;
        done.push(format!(
            "cloned {} into {} as {}",
            redact_url(&a.repo_url),
            dir.display(),
            user.name
        ));
        match &a.branch {
            Some(b) => b.clone(),
            None => current_branch(&dir, &user, &home, limit)?,
        }
    };

    // Last: the hook's table, appended so that every comment of the admin's stays.
    let provider = forge::provider_name(a.provider);
    let mut hook = format!(
        "\n[hooks.{name}]\nprovider = \"{provider}\"\nsecret_file = {}\n",
        toml_string(&secret_file.to_string_lossy())
    );
    if a.provider == InitProvider::Gitee {
        hook.push_str("gitee_mode = \"sign\"                     # the forge's 签名密钥 (signing key) mode\n");
    }
    hook.push_str(&format!(
        "repo = {}\nbranch = {}\n",
        toml_string(&dir.to_string_lossy()),
        toml_string(&branch)
    ));
    if let (Some(from), Some(to)) = (&a.publish_from, &publish_to) {
        hook.push_str(&format!(
            "\n[hooks.{name}.publish]\nfrom = {}\nto = {}\n",
            toml_string(&from.to_string_lossy()),
            toml_string(&to.to_string_lossy())
        ));
    }
    let mut new_text = text.clone();
    if !new_text.ends_with('\n') {
        new_text.push('\n');
    }
    new_text.push_str(&hook);
    // Refuse to write a config that does not parse: better a clear error than a broken server.
    toml::from_str::<toml::Table>(&new_text).map_err(|e| {
        Error::config(
            config_path,
            format!("hooks.{name}"),
            format!("the new table would not parse ({}); nothing was written", e.message()),
        )
    })?;
    replace_file(config_path, new_text.as_bytes())?;
    done.push(if existing.is_some() {
        format!("added [hooks.{name}] to {}", config_path.display())
    } else {
        format!("wrote {} from the template, with [hooks.{name}]", config_path.display())
    });

    writeln!(out, "{name}: set up").ok();
    for d in done.iter() {
        writeln!(out, "  - {d}").ok();
    }
    writeln!(
        out,
        "\n{name}: deploy-hook check (as {}, the state folder's owner):",
        user.name
    )
    .ok();
    out.flush().ok();
    // What nginx serves /hooks/NAME on now, read as root like check's own view of it.
    let urls = crate::check::hook_urls(&crate::check::admin_path(env), name);
    // check started as root reads the web server's config as root, then becomes the state
    // folder's owner (USER, made above) for everything of the hook; this process has
    // nothing left to do as root. It finds nginx and apache2ctl on init's own PATH, as the
    // admin's `deploy-hook check` would: the two must not disagree.
    let checked = crate::check::run(
        &crate::check::Options {
            config: Some(config_path.to_path_buf()),
            json: false,
        },
        env,
        out,
    )?;

    writeln!(out).ok();
    forge::paste_instructions(out, name, &branch, a.provider, &secret, &urls);
    writeln!(out).ok();
    out.write_all(forge::next_steps(name, publish_to.as_deref(), &urls, &others).as_bytes())
        .ok();
    if checked != 0 {
        writeln!(
            out,
            "\n{name}: the hook is set up, but check found problems (above): fix them, then run deploy-hook check"
        )
        .ok();
        return Ok(exit::FAILED);
    }
    Ok(exit::OK)
}

/// The given options that the hook's table (or its checkout) says otherwise. Only what
/// was given on the command line counts: a default says nothing about intent.
fn differences(
    a: &InitArgs,
    there: &toml::Value,
    config_dir: &Path,
    state: &Path,
    user: &User,
) -> Result<Vec<forge::Differs>> {
    let get = |key: &str| there.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let path_of = |v: Option<String>| v.map(|p| config_dir.join(p));
    let mut out = Vec::new();
    let mut differ = |given: String, has: String| out.push(forge::Differs { given, has });
    let provider = forge::provider_name(a.provider);
    match get("provider") {
        Some(p) if p == provider => {}
        p => differ(
            format!("--provider {provider}"),
            format!(
                "provider = {}",
                p.map(|p| toml_string(&p)).unwrap_or_else(|| "(none)".into())
            ),
        ),
    }
    let repo = path_of(get("repo"));
    if let Some(dir) = &a.dir {
        let dir = absolute(dir)?;
        if Some(&dir) != repo.as_ref() {
            differ(
                format!("--dir {}", dir.display()),
                format!(
                    "repo = {}",
                    repo.as_ref().map(|r| r.display().to_string()).unwrap_or_default()
                ),
            );
        }
    }
    if let Some(b) = &a.branch {
        let has = get("branch").unwrap_or_else(|| "main".into());
        if *b != has {
            differ(format!("--branch {b}"), format!("branch = {}", toml_string(&has)));
        }
    }
    let publish = there.get("publish");
    let publish_get = |key: &str| {
        publish
            .and_then(|p| p.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    if let Some(from) = &a.publish_from {
        let has = publish_get("from");
        if has.as_deref() != Some(&*from.to_string_lossy()) {
            differ(
                format!("--publish-from {}", from.display()),
                match has {
                    Some(h) => format!("publish.from = {}", toml_string(&h)),
                    None => "no [publish]".into(),
                },
            );
        }
    }
    if let Some(to) = &a.publish_to {
        let to = absolute(to)?;
        let has = path_of(publish_get("to"));
        if Some(&to) != has.as_ref() {
            differ(
                format!("--publish-to {}", to.display()),
                match has {
                    Some(h) => format!("publish.to = {}", toml_string(&h.to_string_lossy())),
                    None => "no publish.to".into(),
                },
            );
        }
    }
    // The checkout's remote, as its user's git reads it; compared without credentials.
    if let Some(r) = repo.as_ref().filter(|r| r.join(".git").exists()) {
        let mut git = Process::new("git");
        git.arg("-C").arg(r).args(["remote", "get-url", "origin"]);
        let limit = Duration::from_secs(a.timeout);
        if let Ok(url) = run_as(&mut git, user, &state.join("home"), "git remote get-url", None, limit) {
            let (has, given) = (redact_url(url.trim()), redact_url(&a.repo_url));
            if has != given {
                differ(
                    format!("--repo-url {given}"),
                    format!("the checkout {} fetches {has}", r.display()),
                );
            }
        }
    }
    // Whose the hook is: what a command started as root becomes for it.
    if let Ok(m) = std::fs::symlink_metadata(state) {
        if m.uid() != user.uid {
            let owner = privilege::user_by_uid(m.uid())
                .map(|u| u.name)
                .unwrap_or_else(|| format!("uid {}", m.uid()));
            differ(
                format!("--user {}", user.name),
                format!("{} is {owner}'s", state.display()),
            );
        }
    }
    Ok(out)
}

/// The file in the hook's state folder that holds the credentials of `--repo-url`.
pub(crate) const CREDENTIALS: &str = "git-credentials";

/// An http(s) URL without its userinfo, and the credential git's store helper keeps for it
/// (`https://user:TOKEN@host:port`); other URLs as they are (`ssh://git@host` names a user
/// for ssh, not a secret).
fn split_credentials(url: &str) -> (String, Option<String>) {
    let scheme_end = url.find("://").map(|i| i + 3);
    let Some(start) = scheme_end.filter(|_| {
        let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
        scheme == "http" || scheme == "https"
    }) else {
        return (url.to_string(), None);
    };
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => (
            format!("{}{}", &url[..start], &rest[at + 1..]),
            Some(format!("{}{}", &url[..start], &rest[..end])),
        ),
        None => (url.to_string(), None),
    }
}

/// Writes the credential file in the hook's state folder (open as `st`), mode 0600 and the
/// user's, never through a symlink (the folder is the user's: a build step could plant
/// one); one left by an earlier run that stopped before the config was written goes first.
fn write_credentials(st: &fs::File, path: &Path, credential: &str, user: &User) -> Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let err = |e| Error::io(format!("cannot write {}", path.display()), e);
    let name = c_name(path)?;
    // SAFETY: unlinkat/openat with a valid descriptor and a NUL-terminated name; checked.
    unsafe {
        if libc::unlinkat(st.as_raw_fd(), name.as_ptr(), 0) != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(err(e));
            }
        }
    }
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: as above.
    let fd = unsafe { libc::openat(st.as_raw_fd(), name.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let mut f = unsafe { fs::File::from_raw_fd(fd) };
    std::os::unix::fs::fchown(&f, Some(user.uid), Some(user.gid)).map_err(err)?;
    f.write_all(format!("{credential}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(err)
}

/// A TOML basic string (JSON's escaping is a subset of TOML's).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    std::env::current_dir()
        .map(|d| d.join(p))
        .map_err(|e| Error::io("cannot read the current folder", e))
}

/// 20 random bytes as 40 hex digits: pastes into every forge's form unchanged.
fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 20];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("cannot read /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The branch a fresh clone checked out: the remote's default.
fn current_branch(dir: &Path, user: &User, home: &Path, limit: Duration) -> Result<String> {
    let mut git = Process::new("git");
    git.arg("-C").arg(dir).args(["symbolic-ref", "--short", "HEAD"]);
    let out = run_as(&mut git, user, home, "git symbolic-ref", None, limit)?;
    let b = out.trim().to_string();
    if b.is_empty() {
        return Err(Error::Usage(format!(
            "cannot tell the branch of {}: pass --branch",
            dir.display()
        )));
    }
    Ok(b)
}

/// Runs `git` as `user` with the build's kind of environment: HOME in the hook's state
/// folder (the user's own home, /var/www for www-data, is not theirs to write), no prompt
/// for credentials, and a time limit after which its whole group is stopped (a clone's
/// ssh or https helper too); an init interrupted meanwhile (Ctrl-C) stops that group too,
/// then dies of the signal. Returns its stdout; its stderr goes into the error when it
/// fails.
fn run_as(
    git: &mut Process,
    user: &User,
    home: &Path,
    what: &str,
    url: Option<&str>,
    limit: Duration,
) -> Result<String> {
    git.env_var("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env_var("HOME", home.to_string_lossy())
        .env_var("USER", &user.name)
        .env_var("LOGNAME", &user.name)
        .env_var("LANG", "C.UTF-8")
        .env_var("GIT_TERMINAL_PROMPT", "0")
        .env_var("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .timeout(limit)
        .forward_signals();
    if privilege::euid() == 0 {
        git.user(user);
    }
    let done = git.output();
    let stdout = String::from_utf8_lossy(&done.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    match &done.exit {
        Exit::TimedOut => {
            // Not a usage error: the command line may be right and the remote slow.
            return Err(Error::Internal(format!(
                "{what} as {} did not finish in {} s (a credential prompt?); it was stopped, with what it started; nothing was added to the config",
                user.name,
                limit.as_secs()
            )));
        }
        Exit::NotStarted(why) => return Err(Error::Internal(format!("cannot run {what} as {}: {why}", user.name))),
        _ => {}
    }
    if !done.exit.success() {
        // git indents the command it suggests with a tab: shown as spaces, not as `\t`.
        let said = stderr.trim().replace('\t', "    ");
        // git hides a URL's password itself; this makes sure of it.
        let said = match url {
            Some(u) => said.replace(u, &crate::check::redact_url(u)),
            None => said,
        };
        let hint = match dubious_repository(&said) {
            Some(repo) => trust_advice(&repo, user, home),
            None => format!(
                "(it runs with HOME={} and no prompt: credentials must work for {} without one, \
                 e.g. a deploy key or a token in the URL)",
                home.display(),
                user.name
            ),
        };
        // Not a usage error: the command line may be right and the remote, its
        // credentials or the server's git be what refuses (74, as a clone that hangs).
        return Err(Error::Internal(format!(
            "{what} as {} failed: {said}\n{hint}; nothing was added to the config",
            user.name
        )));
    }
    Ok(stdout)
}

/// The repository git refused as "dubious ownership" (owned by another user than the one
/// running git), as git names it.
fn dubious_repository(stderr: &str) -> Option<String> {
    let rest = stderr.split("detected dubious ownership in repository at '").nth(1)?;
    rest.split('\'').next().map(str::to_string)
}

/// What makes `user`'s git accept a repository another user owns. git's own advice
/// (`--global`, run by whoever reads it: root) changes root's config, which the user's
/// clone never reads.
fn trust_advice(repo: &str, user: &User, home: &Path) -> String {
    let q = shell_quote(repo);
    format!(
        "git refuses a repository that {u} does not own; the --global above is root's own git, not {u}'s clone. Either:\n  \
         - give it to {u} (who must read it anyway): chown -R {u}: {q}\n  \
         - or trust it for this hook's git only: runuser -u {u} -- git config --file {} --add safe.directory {q}\n  \
         - or trust it for every user of the machine: git config --system --add safe.directory {q} \
         (the trade-off: git then runs with that repository's config, which its owner can change, for every user; only for an owner you trust)",
        shell_quote(&home.join(".gitconfig").to_string_lossy()),
        u = user.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_valid_toml_with_no_hook() {
        let t: toml::Table = toml::from_str(TEMPLATE).unwrap();
        assert!(t.get("hooks").is_none());
    }

    #[test]
    fn secrets_are_hex_and_differ() {
        let (a, b) = (random_secret().unwrap(), random_secret().unwrap());
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn credentials_leave_an_http_url_and_nothing_else() {
        assert_eq!(
            split_credentials("https://oauth2:T0K@git.example.org:8443/a/b.git"),
            (
                "https://git.example.org:8443/a/b.git".into(),
                Some("https://oauth2:T0K@git.example.org:8443".into())
            )
        );
        assert_eq!(
            split_credentials("http://TOKEN@h/x?y=a@b"),
            ("http://h/x?y=a@b".into(), Some("http://TOKEN@h".into()))
        );
        for plain in [
            "https://h/x.git",
            "ssh://git@h/x.git",
            "git@h:x.git",
            "/srv/git/x.git",
            "git://h/x",
        ] {
            assert_eq!(split_credentials(plain), (plain.to_string(), None));
        }
    }

    #[test]
    fn strings_are_quoted_for_toml() {
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        let t: toml::Table = toml::from_str(&format!("x = {}", toml_string("é \"q\" \\ \n"))).unwrap();
        assert_eq!(t["x"].as_str(), Some("é \"q\" \\ \n"));
    }
}
