//! The subcommands for people and scripts: `run`, `status`, `sign`, `rollback`, and the
//! hidden `__worker` that async deliveries start. `check` lives in check.rs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use crate::cgi::Env;
use crate::config::{self, Config, GiteeMode, Hook, OnBusy, Provider, Secret};
use crate::error::{Error, Result};
use crate::log::{q, Log};
use crate::publish;
use crate::queue;
use crate::state::{HookState, Pending, Status};
use crate::time;
use crate::verify;

pub const USAGE: &str = "\
deploy-hook: rebuild a site from a git push, as a CGI program

Usage:
  deploy-hook                       (CGI mode: run by nginx/fcgiwrap or Apache with REQUEST_METHOD set)
  deploy-hook check    [--config FILE]            validate the config and this machine
  deploy-hook run      HOOK [--wait]              queue a build by hand
  deploy-hook status   [HOOK] [--json]            state and last builds
  deploy-hook status   HOOK --follow              stream the running build's log until it ends
  deploy-hook rollback HOOK [--to RELEASE]        switch the site back to the previous release
  deploy-hook sign     HOOK [--body FILE] [--timestamp MS] [--format env|curl]
                                                  print the headers of a correctly signed delivery
  deploy-hook --help | --version

The config is --config FILE, else $DEPLOY_HOOK_CONFIG, else /etc/deploy-hook/config.toml.
";

/// Parsed command line.
pub struct Args {
    pub config: Option<PathBuf>,
    pub words: Vec<String>,
    flags: BTreeMap<String, Option<String>>,
}

const VALUE_FLAGS: &[&str] = &["--config", "--body", "--timestamp", "--to", "--format"];
const BOOL_FLAGS: &[&str] = &[
    "--wait",
    "--json",
    "--follow",
    "--help",
    "-h",
    "--version",
    "-V",
    "--show-secret",
];

impl Args {
    pub fn parse(args: Vec<OsString>) -> Result<Args> {
        let mut words = Vec::new();
        let mut flags = BTreeMap::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let a = a
                .into_string()
                .map_err(|a| Error::Usage(format!("argument {a:?} is not UTF-8")))?;
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (a.clone(), None),
            };
            if VALUE_FLAGS.contains(&flag.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .and_then(|v| v.into_string().ok())
                        .ok_or_else(|| Error::Usage(format!("{flag} needs a value")))?,
                };
                flags.insert(flag, Some(v));
            } else if BOOL_FLAGS.contains(&flag.as_str()) && inline.is_none() {
                flags.insert(flag, None);
            } else if a.starts_with('-') && a.len() > 1 {
                return Err(Error::Usage(format!("unknown option {a}; see deploy-hook --help")));
            } else {
                words.push(a);
            }
        }
        let config = flags.remove("--config").flatten().map(PathBuf::from);
        Ok(Args { config, words, flags })
    }

    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains_key(flag)
    }

    pub fn value(&self, flag: &str) -> Option<&str> {
        self.flags.get(flag).and_then(|v| v.as_deref())
    }

    fn allow(&self, allowed: &[&str], max_words: usize) -> Result<()> {
        if let Some(f) = self.flags.keys().find(|f| !allowed.contains(&f.as_str())) {
            return Err(Error::Usage(format!(
                "{f} does not go with {}; see deploy-hook --help",
                self.words[0]
            )));
        }
        if self.words.len() > max_words {
            return Err(Error::Usage(format!(
                "unexpected argument {:?}; see deploy-hook --help",
                self.words[max_words]
            )));
        }
        Ok(())
    }

    fn hook_word(&self) -> Result<&str> {
        self.words
            .get(1)
            .map(String::as_str)
            .ok_or_else(|| Error::Usage(format!("deploy-hook {} needs a HOOK name", self.words[0])))
    }

    pub fn load_config(&self, env: &Env) -> Result<Config> {
        let path = config::locate(
            self.config.clone(),
            env.get(std::ffi::OsStr::new(config::CONFIG_ENV)).cloned(),
        );
        Config::load(&path)
    }
}

/// Runs a subcommand; returns the exit code.
pub fn main(args: Args, env: &Env, out: &mut dyn Write) -> Result<i32> {
    if args.has("--version") || args.has("-V") {
        writeln!(out, "deploy-hook {}", env!("CARGO_PKG_VERSION")).ok();
        return Ok(0);
    }
    if args.has("--help") || args.has("-h") || args.words.is_empty() {
        write!(out, "{USAGE}").ok();
        return Ok(if args.words.is_empty() && !args.has("--help") && !args.has("-h") {
            2
        } else {
            0
        });
    }
    match args.words[0].as_str() {
        "check" => {
            args.allow(&["--json"], 1)?;
            let opts = crate::check::Options {
                config: args.config.clone(),
                json: args.has("--json"),
            };
            crate::check::run(&opts, env, out)
        }
        "run" => {
            args.allow(&["--wait"], 2)?;
            run(&args, env, out)
        }
        "status" if args.has("--follow") => {
            args.allow(&["--follow"], 2)?;
            follow(&args, env, out)
        }
        "status" => {
            args.allow(&["--json"], 2)?;
            status(&args, env, out)
        }
        "sign" => {
            args.allow(&["--body", "--timestamp", "--format", "--show-secret"], 2)?;
            sign(&args, env, out)
        }
        "rollback" => {
            args.allow(&["--to"], 2)?;
            rollback(&args, env, out)
        }
        "__worker" => worker(&args, env),
        other => Err(Error::Usage(format!(
            "unknown command {other:?}; see deploy-hook --help"
        ))),
    }
}

fn hook_and_state<'a>(cfg: &'a Config, name: &str) -> Result<(&'a Hook, HookState)> {
    let hook = cfg.hook(Some(name)).map_err(|_| {
        let names: Vec<&str> = cfg.hooks.keys().map(String::as_str).collect();
        Error::Usage(format!(
            "no hook named {name:?} in {}; hooks: {}",
            cfg.file.display(),
            names.join(", ")
        ))
    })?;
    let state = HookState::new(&cfg.state_dir, &hook.name);
    Ok((hook, state))
}

fn run(args: &Args, env: &Env, out: &mut dyn Write) -> Result<i32> {
    let cfg = args.load_config(env)?;
    let (hook, state) = hook_and_state(&cfg, args.hook_word()?)?;
    state.ensure()?;
    let mut log = Log::open(&cfg.log);
    if hook.on_busy == OnBusy::Reject && queue::is_building(&state)? {
        return Err(Error::Busy);
    }
    let p = Pending {
        delivery: format!("manual-{}", time::now_ms()),
        event: "manual".into(),
        git_ref: format!("refs/heads/{}", hook.branch),
        received: time::rfc3339(time::now()),
    };
    state.mark_pending(&p)?;
    if hook.on_busy == OnBusy::Supersede {
        queue::request_supersede(&state)?;
    }
    log.info(&format!(
        "delivery hook={} provider=manual event=manual id={} status=- outcome=queued",
        hook.name, p.delivery
    ));
    if args.has("--wait") {
        if queue::is_building(&state)? {
            writeln!(out, "{}: a build is running; waiting for it, then building", hook.name).ok();
        }
        let record = queue::build_now(&cfg.file, hook, &state, &mut log)?;
        writeln!(
            out,
            "{}: build {} {} (commit {}, {:.1}s)\nlog: {}",
            hook.name,
            record.id,
            record.result,
            record.commit.as_deref().unwrap_or("-"),
            record.duration_secs,
            record.log
        )
        .ok();
        if let Some(step) = &record.failed_step {
            writeln!(out, "failed step: {step}").ok();
        }
        return Ok(if record.result == "succeeded" { 0 } else { 1 });
    }
    if queue::try_lock(&state)?.is_some() {
        queue::spawn_worker(&cfg.file, &hook.name, &state)?;
        writeln!(
            out,
            "{}: build started; follow it with: deploy-hook status {}",
            hook.name, hook.name
        )
        .ok();
    } else {
        writeln!(
            out,
            "{}: a build is running; another from the newest commit follows it",
            hook.name
        )
        .ok();
    }
    Ok(0)
}

/// The status as a person or a script should see it: a "building" status whose lock is
/// free belongs to a worker that died.
fn live_status(state: &HookState) -> Result<(Status, bool)> {
    let status = state.read_status()?;
    let stale = status.state == "building" && state.dir.exists() && !queue::is_building(state).unwrap_or(true);
    Ok((status, stale))
}

fn status(args: &Args, env: &Env, out: &mut dyn Write) -> Result<i32> {
    let cfg = args.load_config(env)?;
    let names: Vec<String> = match args.words.get(1) {
        Some(n) => vec![hook_and_state(&cfg, n)?.0.name.clone()],
        None => cfg.hooks.keys().cloned().collect(),
    };
    let mut json = serde_json::Map::new();
    for name in &names {
        let (hook, state) = hook_and_state(&cfg, name)?;
        let (status, stale) = live_status(&state)?;
        let live = hook.publish.as_ref().and_then(|p| publish::live(&p.to));
        if args.has("--json") {
            let mut v = serde_json::to_value(&status).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("hook".into(), name.clone().into());
                o.insert("interrupted".into(), stale.into());
                if let Some(l) = &live {
                    o.insert("live_release".into(), l.clone().into());
                }
            }
            json.insert(name.clone(), v);
        } else {
            print_status(out, hook, &status, stale, live.as_deref());
        }
    }
    if args.has("--json") {
        let v = if args.words.len() > 1 {
            json.into_iter().next().map(|(_, v)| v).unwrap_or_default()
        } else {
            serde_json::Value::Object(json)
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default()).ok();
    }
    Ok(0)
}

/// Streams the running build's log until that build ends; exit 0 when it succeeded.
fn follow(args: &Args, env: &Env, out: &mut dyn Write) -> Result<i32> {
    use std::io::{Read, Seek, SeekFrom};
    let cfg = args.load_config(env)?;
    let name = match args.words.get(1) {
        Some(n) => n.clone(),
        None => cfg
            .hook(None)
            .map_err(|_| Error::Usage("status --follow needs a HOOK name".into()))?
            .name
            .clone(),
    };
    let (_, state) = hook_and_state(&cfg, &name)?;
    let (status, stale) = live_status(&state)?;
    let current = match status.current {
        Some(c) if status.state == "building" && !stale => c,
        _ => {
            let last = status
                .last
                .as_ref()
                .map(|l| format!("; the last build, {}, {}: {}", l.id, l.result, l.log))
                .unwrap_or_default();
            writeln!(out, "{name}: no build is running{last}").ok();
            return Ok(0);
        }
    };
    writeln!(out, "{name}: following build {} ({})", current.id, current.log).ok();
    let mut file =
        std::fs::File::open(&current.log).map_err(|e| Error::io(format!("cannot open {}", current.log), e))?;
    let mut pos = 0u64;
    let mut buf = Vec::new();
    loop {
        // Read the verdict before the last read, so no line written before the end is missed.
        let st = state.read_status()?;
        let finished = st.current.as_ref().is_none_or(|c| c.id != current.id) || !queue::is_building(&state)?;
        file.seek(SeekFrom::Start(pos))
            .map_err(|e| Error::io("cannot read the build log", e))?;
        buf.clear();
        file.read_to_end(&mut buf)
            .map_err(|e| Error::io("cannot read the build log", e))?;
        pos += buf.len() as u64;
        out.write_all(&buf).ok();
        out.flush().ok();
        if finished {
            let record = st.history.iter().find(|b| b.id == current.id);
            let result = record.map(|b| b.result.as_str()).unwrap_or("interrupted");
            writeln!(out, "{name}: build {} {result}", current.id).ok();
            return Ok(if result == "succeeded" { 0 } else { 1 });
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn since(ts: &str) -> String {
    time::parse_rfc3339(ts)
        .map(|t| time::human_duration(time::now().as_secs().saturating_sub(t) as f64))
        .unwrap_or_else(|| "?".into())
}

fn short(commit: Option<&str>) -> &str {
    commit.map(|c| &c[..c.len().min(10)]).unwrap_or("-")
}

fn print_status(out: &mut dyn Write, hook: &Hook, s: &Status, stale: bool, live: Option<&str>) {
    let mut w = String::new();
    w.push_str(&format!(
        "{} ({} push to {}, repo {})\n",
        hook.name,
        hook.provider.name(),
        hook.branch,
        hook.repo.display()
    ));
    match (&s.current, stale) {
        (Some(c), false) if s.state == "building" => {
            w.push_str(&format!(
                "  state:   building {} for {} (commit {}, delivery {})\n",
                c.id,
                since(&c.started),
                short(c.commit.as_deref()),
                c.delivery
            ));
            if let Some(step) = &c.step {
                w.push_str(&format!(
                    "  step:    {step} (for {})\n",
                    c.step_started.as_deref().map(since).unwrap_or_default()
                ));
            }
            w.push_str(&format!("  log:     {}\n", c.log));
        }
        (Some(c), true) => {
            w.push_str(&format!(
                "  state:   interrupted: build {} lost its worker; the next build records it and cleans up\n",
                c.id
            ));
        }
        _ => w.push_str("  state:   idle\n"),
    }
    w.push_str(&format!(
        "  pending: {}\n",
        if s.pending {
            "yes, a build from the newest commit follows"
        } else {
            "no"
        }
    ));
    if let Some(l) = live {
        w.push_str(&format!("  live:    {l}\n"));
    }
    match &s.last {
        None => w.push_str("  last:    no build yet\n"),
        Some(_) => {
            w.push_str("  recent builds (newest first):\n");
            for b in &s.history {
                w.push_str(&format!(
                    "    {:<24} {:<11} commit {:<10} {:>7}  {}{}\n",
                    b.id,
                    b.result,
                    short(b.commit.as_deref()),
                    time::human_duration(b.duration_secs),
                    b.finished,
                    b.failed_step
                        .as_ref()
                        .map(|f| format!("  failed: {f}"))
                        .unwrap_or_default()
                ));
            }
            if let Some(last) = &s.last {
                w.push_str(&format!("  last log: {}\n", last.log));
            }
        }
    }
    out.write_all(w.as_bytes()).ok();
}

fn rollback(args: &Args, env: &Env, out: &mut dyn Write) -> Result<i32> {
    let cfg = args.load_config(env)?;
    let (hook, state) = hook_and_state(&cfg, args.hook_word()?)?;
    let publish = hook.publish.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "hook {} does not publish ([hooks.{}.publish] is not set), so there is nothing to roll back",
            hook.name, hook.name
        ))
    })?;
    state.ensure()?;
    let mut log = Log::open(&cfg.log);
    if queue::is_building(&state)? {
        writeln!(out, "{}: a build is running; waiting for it to finish", hook.name).ok();
    }
    let lock = queue::wait_lock(&state)?;
    let from = publish::live(&publish.to);
    let target = publish::rollback_target(&publish.to, args.value("--to")).map_err(Error::Usage)?;
    publish::switch(&publish.to, &target)
        .map_err(|e| Error::io(format!("cannot switch {}", publish.to.display()), e))?;
    state.update_status(|s| {
        s.live_release = Some(target.clone());
        s.last_rollback = Some(crate::state::Rollback {
            from: from.clone(),
            to: target.clone(),
            at: time::rfc3339(time::now()),
        });
    })?;
    drop(lock);
    log.info(&format!(
        "rollback hook={} from={} to={}",
        hook.name,
        q(from.as_deref().unwrap_or("-")),
        q(&target)
    ));
    writeln!(
        out,
        "{}: {} now serves release {target} (was {})",
        hook.name,
        publish.to.display(),
        from.as_deref().unwrap_or("-")
    )
    .ok();
    Ok(0)
}

fn worker(args: &Args, env: &Env) -> Result<i32> {
    let cfg = args.load_config(env)?;
    let (hook, state) = hook_and_state(&cfg, args.hook_word()?)?;
    let mut log = Log::open(&cfg.log);
    if let Err(e) = queue::work(hook, &state, &mut log) {
        log.error(&format!(
            "worker failed hook={} detail={}",
            hook.name,
            q(&e.to_string())
        ));
        return Ok(e.exit_code());
    }
    Ok(0)
}

/// The headers a forge would send for `body`, in order.
fn signed_headers(
    hook: &Hook,
    secret: &Secret,
    body: &[u8],
    timestamp: &str,
    show_secret: bool,
) -> Result<Vec<(String, String)>> {
    let h = |k: &str, v: String| (k.to_string(), v);
    // A password-style token is the secret itself: point at the file instead of printing it.
    let password = || -> Result<String> {
        match (secret, show_secret) {
            (Secret::File(f), false) => Ok(format!("$(cat {})", crate::text::shell_quote(&f.to_string_lossy()))),
            (Secret::Inline(_), false) => Err(Error::Usage(
                "this hook's token is the secret itself, which is inline in the config; pass --show-secret to print it"
                    .into(),
            )),
            (_, true) => Ok(String::from_utf8_lossy(&secret.load()?).into_owned()),
        }
    };
    let delivery = format!("manual-{}", time::now_ms());
    Ok(match hook.provider {
        Provider::Gitee => {
            let token = match hook.gitee_mode {
                GiteeMode::Sign => verify::gitee_sign_token(&secret.load()?, timestamp),
                GiteeMode::Password => password()?,
            };
            vec![
                h("User-Agent", "git-oschina-hook".into()),
                h("X-Gitee-Token", token),
                h("X-Gitee-Timestamp", timestamp.into()),
                h("X-Gitee-Event", "Push Hook".into()),
                h("X-Gitee-Ping", "false".into()),
            ]
        }
        Provider::Github => vec![
            h("X-GitHub-Event", "push".into()),
            h("X-GitHub-Delivery", delivery),
            h("X-Hub-Signature-256", verify::github_signature(&secret.load()?, body)),
        ],
        Provider::Gitlab => vec![
            h("X-Gitlab-Event", "Push Hook".into()),
            h("X-Gitlab-Token", password()?),
        ],
        Provider::Gitea => vec![
            h("X-Gitea-Event", "push".into()),
            h("X-Gitea-Delivery", delivery),
            h("X-Gitea-Signature", verify::gitea_signature(&secret.load()?, body)),
        ],
        Provider::Gogs => vec![
            h("X-Gogs-Event", "push".into()),
            h("X-Gogs-Delivery", delivery),
            h("X-Gogs-Signature", verify::gitea_signature(&secret.load()?, body)),
        ],
    })
}

/// A value for a shell line: `$(cat FILE)` stays live inside double quotes; anything else
/// is single-quoted.
fn shell_value(v: &str) -> String {
    if v.starts_with("$(cat ") && v.ends_with(')') {
        format!("\"{v}\"")
    } else {
        crate::text::shell_quote(v)
    }
}

fn sign(args: &Args, env: &Env, out: &mut dyn Write) -> Result<i32> {
    let cfg = args.load_config(env)?;
    let (hook, _) = hook_and_state(&cfg, args.hook_word()?)?;
    let (body, body_note) = match args.value("--body") {
        Some(f) => (
            std::fs::read(f).map_err(|e| Error::io(format!("cannot read --body {f}"), e))?,
            format!("the body of {f}"),
        ),
        None => {
            let b = format!("{{\"ref\":\"refs/heads/{}\"}}", hook.branch);
            let note = format!("this minimal push body (--body FILE signs another): {b}");
            (b.into_bytes(), note)
        }
    };
    let timestamp = match args.value("--timestamp") {
        Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t.to_string(),
        Some(t) => {
            return Err(Error::Usage(format!(
                "--timestamp {t:?} is not a number of milliseconds"
            )))
        }
        None => time::now_ms().to_string(),
    };
    let headers = signed_headers(hook, &hook.secret, &body, &timestamp, args.has("--show-secret"))?;
    let format = args.value("--format").unwrap_or("both");
    if !["both", "env", "curl"].contains(&format) {
        return Err(Error::Usage(format!("--format {format:?}: use env or curl")));
    }
    let mut env_lines = vec![
        ("REQUEST_METHOD".to_string(), "POST".to_string()),
        ("PATH_INFO".into(), format!("/{}", hook.name)),
        ("CONTENT_TYPE".into(), "application/json".into()),
        ("CONTENT_LENGTH".into(), body.len().to_string()),
    ];
    env_lines.extend(
        headers
            .iter()
            .map(|(k, v)| (format!("HTTP_{}", k.to_ascii_uppercase().replace('-', "_")), v.clone())),
    );
    let mut text = String::new();
    if format == "both" {
        text.push_str(&format!(
            "# A signed push delivery for hook {} ({}{}), over {body_note}\n",
            hook.name,
            hook.provider.name(),
            if hook.provider == Provider::Gitee {
                format!(
                    ", {} mode, timestamp {timestamp}",
                    if hook.gitee_mode == GiteeMode::Sign {
                        "signing"
                    } else {
                        "password"
                    }
                )
            } else {
                String::new()
            }
        ));
        text.push_str("# For a local run: eval these lines, then: deploy-hook < BODY_FILE\n");
    }
    if format != "curl" {
        for (k, v) in &env_lines {
            text.push_str(&format!("export {k}={}\n", shell_value(v)));
        }
    }
    if format == "both" {
        text.push_str("# For curl (add --data-binary @BODY_FILE and the hook's URL):\n");
    }
    if format != "env" {
        let mut flags = vec![format!("-H {}", shell_value("Content-Type: application/json"))];
        for (k, v) in &headers {
            let line = format!("{k}: {v}");
            flags.push(format!("-H {}", shell_value_header(&line, v)));
        }
        text.push_str(&flags.join(" "));
        text.push('\n');
    }
    out.write_all(text.as_bytes()).ok();
    Ok(0)
}

fn shell_value_header(line: &str, value: &str) -> String {
    if value.starts_with("$(cat ") {
        format!("\"{line}\"")
    } else {
        crate::text::shell_quote(line)
    }
}
