//! Where the author looks (issue 15): the commit status on the forge (`forge`), the build
//! page (`page`), the team's chat (`notify`). A build tells its `Reporter` when it starts,
//! at each step and when it ends; the reporter writes the page at once (a few small
//! files) and queues what goes over the network.
//!
//! Never in the way:
//! - Only the build worker makes a `Reporter`; a delivery's CGI process never comes here,
//!   so the HTTP client costs a delivery nothing.
//! - Requests go out from one sender thread per target (the forge, each `[[notify]]`), in
//!   order per target, so a build never waits for the network, and a rebuild's `running`
//!   never overtakes the last `success` on GitLab. Each message is tried at most three
//!   times within 12 s (`http`); the worker waits for what is still queued only after it
//!   has let go of the build lock, and at most `JOIN` (`join`).
//! - Nothing here changes a build's result: every failure is a log line (the URL through
//!   `http::redact`, never a token, never a request body).
//!
//! Secrets read here (the token, the robots' URLs and secrets) are read from their files
//! when needed, kept in memory only, and masked out of everything published (`logtext`).

pub(crate) mod event;
pub(crate) mod excerpt;
pub(crate) mod forge;
pub(crate) mod http;
pub(crate) mod logtext;
pub(crate) mod notify;
pub(crate) mod page;
pub(crate) mod sign;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use self::event::{Build, Conclusion, Event};
use self::http::{Answer, Client, Request};
use self::logtext::Masker;
use crate::config::{Config, Forge, Hook, LogConfig, Notify, Page, Report, Secret};
use crate::sys::log::{q, Log};
use crate::sys::time;

/// The longest the worker waits, after its last build, for messages still queued.
pub const JOIN: Duration = Duration::from_secs(15);

/// While a build runs, its log is published at each step only up to this size; the whole
/// log always at the end.
const LIVE_LOG_MAX: u64 = 2 << 20;

/// One message for one target.
struct Job {
    /// For log lines: `github status failure 4be09a7`. No secret.
    what: String,
    request: Request,
    /// Values to mask in what the answer says (the token, the robot's URL parts).
    secrets: Masker,
}

/// Where a job goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Forge(Forge),
    Notify(crate::config::NotifyKind),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Forge(Forge::Github) => "github",
            Target::Forge(Forge::Gitea) => "gitea",
            Target::Forge(Forge::Gitlab) => "gitlab",
            Target::Forge(Forge::Gitee) => "gitee",
            Target::Notify(k) => k.name(),
        }
    }
}

/// Whether the target took it: `Ok`, or why not.
fn judge(t: &Target, a: &Answer) -> std::result::Result<(), String> {
    match t {
        Target::Forge(f) => forge::judge(*f, a),
        Target::Notify(k) => notify::judge(*k, a),
    }
}

/// A target's thread and its queue.
struct Sender {
    target: Target,
    queue: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

/// What one build worker reports, for one hook.
pub struct Reporter {
    hook: String,
    branch: String,
    checkout: PathBuf,
    keep_logs: usize,
    report: Option<Report>,
    page: Option<Page>,
    notify: Vec<Notify>,
    masker: Masker,
    /// The server's paths a failure line may name, longest first, and what is shown for
    /// each: the checkout (made relative), the steps' HOME (`~`), the hook's state folder
    /// (`<state>`), `state_dir`, the local publish target.
    places: Vec<(String, String)>,
    log_config: LogConfig,
    /// Made by the first sender thread that needs it (reading the system's roots takes a
    /// few milliseconds: not the build's), shared by the others.
    client: Arc<OnceLock<Client>>,
    /// Index 0: the forge; 1..: each `[[notify]]`. Started at their first message.
    senders: Vec<Option<Sender>>,
    /// A superseded build's status waits for the commit that replaced it.
    superseded: Option<Build>,
}

impl Reporter {
    /// The reporter of `hook` in `cfg`. With none of `[report]`, `[page]` and `[[notify]]`
    /// it does nothing and reads nothing.
    pub fn new(hook: &Hook, cfg: &Config) -> Reporter {
        let log_config = &cfg.log;
        let mut r = Reporter {
            hook: hook.name.clone(),
            branch: hook.branch.clone(),
            checkout: hook.repo.clone(),
            keep_logs: hook.keep_logs,
            report: hook.report.clone(),
            page: hook.page.clone(),
            notify: hook.notify.clone(),
            masker: Masker::default(),
            places: places(hook, cfg),
            log_config: log_config.clone(),
            client: Arc::new(OnceLock::new()),
            senders: (0..=hook.notify.len()).map(|_| None).collect(),
            superseded: None,
        };
        if r.active() {
            r.masker = masker(cfg);
        }
        r
    }

    /// Whether the hook reports anything at all.
    pub fn active(&self) -> bool {
        self.report.is_some() || self.page.is_some() || !self.notify.is_empty()
    }

    /// Whether the hook has a page.
    pub fn has_page(&self) -> bool {
        self.page.is_some()
    }

    /// The forge's page of a commit, without its id, for the build page's links.
    pub fn commit_url(&self) -> Option<String> {
        self.report.as_ref().and_then(forge::commit_url)
    }

    /// The lines that say what failed, from a failed build's log: its failed step's
    /// output, stripped of terminal codes and masked. `failed_step` is the command line the
    /// build recorded.
    pub fn failure_lines(&self, log_path: &Path, failed_step: Option<&str>) -> Vec<String> {
        if !self.active() {
            return Vec::new();
        }
        let Ok(bytes) = std::fs::read(log_path) else {
            return Vec::new();
        };
        let text = self
            .masker
            .mask(&logtext::strip_terminal(&String::from_utf8_lossy(&bytes)));
        let mut text = logtext::section(&text, failed_step).join("\n");
        for (path, shown) in &self.places {
            text = text.replace(path.as_str(), shown);
        }
        let lines: Vec<&str> = text.lines().collect();
        excerpt::pick(&lines, &self.checkout.to_string_lossy())
    }

    /// A commit's subject or author (anyone's text) as every report shows it: without
    /// terminal codes and control characters, secrets masked.
    pub fn clean(&self, text: &str) -> String {
        self.masker.mask(&logtext::strip_terminal(text).replace('\n', " "))
    }

    /// Rewrites the page, when the hook has one; a failure is logged, never more.
    pub fn write_page(&self, view: &page::View, log: &mut Log) {
        let Some(p) = &self.page else { return };
        if let Err(e) = page::write(&p.dir, view) {
            log.warn(&format!(
                "page not written hook={} dir={} detail={}",
                self.hook,
                q(&p.dir.to_string_lossy()),
                q(&e.to_string())
            ));
        }
    }

    /// Publishes build `id`'s log (stripped, masked) when the page has `logs`. `live`: the
    /// build still runs, so a big log waits for the end.
    pub fn publish_log(&self, id: &str, log_path: &Path, live: bool, log: &mut Log) {
        let Some(p) = self.page.as_ref().filter(|p| p.logs) else {
            return;
        };
        if live && std::fs::metadata(log_path).is_ok_and(|m| m.len() > LIVE_LOG_MAX) {
            return;
        }
        let Ok(bytes) = std::fs::read(log_path) else { return };
        let text = self
            .masker
            .mask(&logtext::strip_terminal(&String::from_utf8_lossy(&bytes)));
        if let Err(e) = page::write_log(&p.dir, id, &text, self.keep_logs) {
            log.warn(&format!(
                "page log not written hook={} id={id} detail={}",
                self.hook,
                q(&e.to_string())
            ));
        }
    }

    /// The build's entry on the page, for `target_url` and messages.
    fn entry_url(&self, id: &str) -> Option<String> {
        self.page.as_ref().map(|p| format!("{}#b{id}", p.url))
    }

    fn log_url(&self, id: &str) -> Option<String> {
        self.page
            .as_ref()
            .filter(|p| p.logs)
            .map(|p| format!("{}builds/{id}.log.txt", p.url))
    }

    /// A build's commit is known: the forge hears `pending`/`running`, robots with
    /// `started` hear of it, and a superseded build before it gets its final status,
    /// naming this commit.
    pub fn started(&mut self, b: &Build, log: &mut Log) {
        if let Some(old) = self.superseded.take() {
            self.status(&old, b.commit.as_ref().map(|c| c.short().to_string()).as_deref(), log);
        }
        self.status(b, None, log);
        self.notify(b, Event::Started, log);
    }

    /// A build is recorded: its final status, and the messages its event asks for.
    /// `previous`: how the last build before it that was not superseded ended.
    pub fn finished(&mut self, b: &Build, previous: Option<Conclusion>, log: &mut Log) {
        if b.conclusion == Conclusion::Superseded {
            // Sent when the next build knows its commit (or at the end).
            if let Some(old) = self.superseded.replace(b.clone()) {
                self.status(&old, None, log);
            }
            return;
        }
        if let Some(old) = self.superseded.take() {
            let newer = b.commit.as_ref().map(|c| c.short().to_string());
            self.status(&old, newer.as_deref(), log);
        }
        self.status(b, None, log);
        if let Some(event) = Event::of(b.conclusion, previous) {
            self.gitee_comment(b, event, log);
            self.notify(b, event, log);
        }
    }

    /// Queues `b`'s commit status (not on Gitee, which has none).
    fn status(&mut self, b: &Build, newer: Option<&str>, log: &mut Log) {
        let Some(cfg) = self.report.clone() else { return };
        let Some(commit) = &b.commit else { return };
        if cfg.forge == Forge::Gitee || b.conclusion == Conclusion::Unknown {
            return;
        }
        let Some(token) = self.token(&cfg, log) else { return };
        let s = forge::status(cfg.forge, b, newer);
        let target = b.target_url.clone().or_else(|| self.entry_url(&b.id));
        let request = forge::status_request(&cfg, &token, &commit.sha, &s, target.as_deref(), &self.branch);
        let what = format!("status {} {}", s.state, commit.short());
        self.queue(0, Target::Forge(cfg.forge), what, request, masker_of(&[&token]), log);
    }

    /// Gitee's stand-in for a status: a comment on a failure and on the fix.
    fn gitee_comment(&mut self, b: &Build, event: Event, log: &mut Log) {
        let Some(cfg) = self.report.clone().filter(|c| c.forge == Forge::Gitee) else {
            return;
        };
        let Some(commit) = &b.commit else { return };
        if !matches!(event, Event::Failed | Event::Fixed) {
            return;
        }
        let Some(token) = self.token(&cfg, log) else { return };
        let text = forge::comment_text(&cfg.context, b, event, self.entry_url(&b.id).as_deref());
        let request = forge::gitee_comment(&cfg, &token, &commit.sha, &text);
        let what = format!("comment {} {}", event.word(), commit.short());
        self.queue(0, Target::Forge(Forge::Gitee), what, request, masker_of(&[&token]), log);
    }

    /// Queues the message of `event` to every `[[notify]]` that wants it.
    fn notify(&mut self, b: &Build, event: Event, log: &mut Log) {
        for i in 0..self.notify.len() {
            let n = self.notify[i].clone();
            if !event.wanted(&n.on) {
                continue;
            }
            let Some(url) = read_secret_file(&n.url_file, "url_file", &self.hook, log) else {
                continue;
            };
            if let Err(why) = crate::config::check_url(&url, true) {
                log.warn(&format!(
                    "notify skipped hook={} kind={} url_file={} detail={}",
                    self.hook,
                    n.kind.name(),
                    q(&n.url_file.to_string_lossy()),
                    q(&format!("the URL in it {why}"))
                ));
                continue;
            }
            let secret = match &n.secret_file {
                Some(f) => match read_secret_file(f, "secret_file", &self.hook, log) {
                    Some(s) => Some(s),
                    None => continue,
                },
                None => None,
            };
            let m = notify::Message {
                hook: &self.hook,
                event,
                build: b,
                branch: &self.branch,
                page: self.entry_url(&b.id),
                log: self.log_url(&b.id),
            };
            let request = notify::request(n.kind, &url, secret.as_deref(), &m, time::now());
            let what = format!(
                "{} {}",
                event.word(),
                b.commit.as_ref().map_or(b.id.as_str(), |c| c.short())
            );
            let secrets = masker_of(&[&url, secret.as_deref().unwrap_or("")]);
            self.queue(i + 1, Target::Notify(n.kind), what, request, secrets, log);
        }
    }

    fn token(&self, cfg: &Report, log: &mut Log) -> Option<String> {
        read_secret_file(&cfg.token_file, "token_file", &self.hook, log)
    }

    /// Hands a job to its target's thread, starting the thread at its first job.
    fn queue(&mut self, slot: usize, target: Target, what: String, request: Request, secrets: Masker, log: &mut Log) {
        let job = Job { what, request, secrets };
        if self.senders[slot].is_none() {
            let client = Arc::clone(&self.client);
            let (tx, rx) = mpsc::channel::<Job>();
            let hook = self.hook.clone();
            let log_config = self.log_config.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("report-{}", target.name()))
                .spawn(move || send_all(&client, target, &hook, &log_config, rx));
            match spawned {
                Ok(thread) => {
                    self.senders[slot] = Some(Sender {
                        target,
                        queue: tx,
                        thread,
                    })
                }
                Err(e) => {
                    log.warn(&format!(
                        "report not sent hook={} to={} detail={}",
                        self.hook,
                        target.name(),
                        q(&format!("cannot start its thread: {e}"))
                    ));
                    return;
                }
            }
        }
        if let Some(s) = &self.senders[slot] {
            let _ = s.queue.send(job);
        }
    }

    /// After the worker's last build, with the build lock let go: sends what is still
    /// held back, then waits at most `limit` for the queues to empty. What is left is
    /// logged and dropped when the process exits.
    pub fn join(mut self, limit: Duration, log: &mut Log) {
        if let Some(old) = self.superseded.take() {
            self.status(&old, None, log);
        }
        let deadline = Instant::now() + limit;
        let senders: Vec<Sender> = self.senders.into_iter().flatten().collect();
        let mut waiting = Vec::new();
        for s in senders {
            drop(s.queue); // the thread ends when its queue is empty
            waiting.push((s.target, s.thread));
        }
        for (target, thread) in waiting {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                log.warn(&format!(
                    "report abandoned hook={} to={} detail={}",
                    self.hook,
                    target.name(),
                    q(&format!(
                        "still sending {}s after the last build; what is left is not sent",
                        limit.as_secs()
                    ))
                ));
            }
        }
    }
}

/// A target's thread: sends its jobs in order, each with its tries, and logs how each
/// ended. Its own log handle: `Log` is not shared between threads.
fn send_all(client: &OnceLock<Client>, target: Target, hook: &str, log_config: &LogConfig, rx: mpsc::Receiver<Job>) {
    let mut log = Log::open(log_config);
    let client = client.get_or_init(|| {
        let (client, warning) = Client::new(Path::new(http::SYSTEM_BUNDLE));
        if let Some(w) = warning {
            log.warn(&format!("report hook={hook} detail={}", q(&w)));
        }
        client
    });
    for job in rx {
        let url = http::redact(&job.request.url);
        let (answer, tries) = client.send_with_retries(
            &job.request,
            |a| judge(&target, a).is_err() && a.retryable(),
            |n, a| {
                log.warn(&format!(
                    "report try failed hook={hook} to={} what={} try={n} url={} detail={}",
                    target.name(),
                    q(&job.what),
                    q(&url),
                    q(&job.secrets.mask(&http::reason(a)))
                ))
            },
        );
        match judge(&target, &answer) {
            Ok(()) => log.info(&format!(
                "report sent hook={hook} to={} what={} tries={tries}",
                target.name(),
                q(&job.what)
            )),
            Err(why) => log.warn(&format!(
                "report not sent hook={hook} to={} what={} tries={tries} url={} detail={}",
                target.name(),
                q(&job.what),
                q(&url),
                q(&job.secrets.mask(&why))
            )),
        }
    }
}

/// The server paths of `hook` that failure lines show short, longest first (a path inside
/// another is replaced first). The checkout becomes relative (`excerpt`).
fn places(hook: &Hook, cfg: &Config) -> Vec<(String, String)> {
    let state = cfg.state_dir.join(&hook.name);
    let home = hook
        .env
        .get("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| state.join("home"));
    let checkout = hook.repo.to_string_lossy().trim_end_matches('/').to_string();
    let mut out = vec![
        (format!("{checkout}/"), String::new()),
        (checkout, ".".to_string()),
        (home.to_string_lossy().into_owned(), "~".to_string()),
        (state.to_string_lossy().into_owned(), "<state>".to_string()),
        (cfg.state_dir.to_string_lossy().into_owned(), "<state_dir>".to_string()),
    ];
    if let Some(to) = hook.publish.as_ref().and_then(|p| p.local_to()) {
        out.push((to.to_string_lossy().into_owned(), "<publish.to>".to_string()));
    }
    // `/` alone, or a path of one letter, is no place to replace.
    out.retain(|(p, _)| p.trim_end_matches('/').len() > 1);
    out.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    out
}

/// A masker of these values alone.
fn masker_of(values: &[&str]) -> Masker {
    let mut m = Masker::default();
    for v in values {
        m.add(v);
        // A robot's URL: its token is a query value (DingTalk, WeCom) or the path's last
        // segment (Feishu, Slack), and may show without the rest of the URL. Tokens are
        // long; a short value (`?v=2`, the path's `send`) is a word, not a secret.
        if v.contains("://") {
            let (base, query) = v.split_once('?').unwrap_or((v, ""));
            let parts = query
                .split('&')
                .filter_map(|pair| pair.split_once('=').map(|(_, value)| value));
            let last = (base.contains("/hook/") || base.contains("/services/"))
                .then(|| base.rsplit('/').next())
                .flatten();
            for part in parts.chain(last).filter(|p| p.len() >= 8) {
                m.add(part);
            }
        }
    }
    m
}

/// Every secret value the config names, of every hook: a build runs as the same user as
/// every other hook's build and can read their files too, so one hook's page, statuses and
/// messages must not show another's secrets either. Of each hook: its webhook secret
/// (inline or in its file), the report token, the robots' URLs and secrets, the `env`
/// values whose names say they are secret, the keys of its rclone config, and the token
/// `init` kept for its remote (`git-credentials` in its state folder). A file that cannot
/// be read cannot be printed by a build either. `check` masks what an API answers with it.
pub fn masker(cfg: &Config) -> Masker {
    let mut values: Vec<String> = Vec::new();
    let read = |p: &Path| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    for hook in cfg.hooks.values() {
        if let Ok(s) = hook.secret.load() {
            values.push(String::from_utf8_lossy(&s).into_owned());
        }
        if let Secret::Inline(s) = &hook.secret {
            values.push(s.clone());
        }
        if let Some(t) = hook.report.as_ref().and_then(|r| read(&r.token_file)) {
            values.push(t);
        }
        for n in &hook.notify {
            values.extend(read(&n.url_file));
            values.extend(n.secret_file.as_deref().and_then(read));
        }
        values.extend(
            hook.env
                .iter()
                .filter(|(k, _)| Masker::secret_name(k))
                .map(|(_, v)| v.clone()),
        );
        if let Some(text) = hook
            .publish
            .as_ref()
            .and_then(|p| p.bucket())
            .and_then(|b| read(&b.rclone_config))
        {
            values.extend(rclone_secrets(&text));
        }
        let credentials = cfg.state_dir.join(&hook.name).join(crate::cli::init::CREDENTIALS);
        if let Some(text) = read(&credentials) {
            values.extend(text.lines().filter_map(url_password));
        }
    }
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    masker_of(&refs)
}

/// The values of an rclone config's keys whose names say they are secret
/// (`secret_access_key`, `access_key_id`, `token`, `pass`, `service_account_credentials`).
fn rclone_secrets(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .filter(|(k, _)| Masker::secret_name(k) || k.eq_ignore_ascii_case("pass"))
        .map(|(_, v)| v.to_string())
        .collect()
}

/// The password of a credential URL (`https://user:TOKEN@host`), as written.
fn url_password(line: &str) -> Option<String> {
    let rest = line.trim().split_once("://")?.1;
    let userinfo = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (userinfo, _) = userinfo.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password.to_string())
}

/// A token or URL file's first line, trimmed; `None` (logged) when it cannot be read or is
/// empty. The log names the file, never what is in it.
fn read_secret_file(path: &Path, key: &str, hook: &str, log: &mut Log) -> Option<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            log.warn(&format!(
                "report not sent hook={hook} {key}={} detail={}",
                q(&path.to_string_lossy()),
                q(&format!("cannot read it: {e}"))
            ));
            return None;
        }
    };
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => Some(line.to_string()),
        None => {
            log.warn(&format!(
                "report not sent hook={hook} {key}={} detail=\"it is empty\"",
                q(&path.to_string_lossy())
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_robots_token_is_masked_alone_and_its_words_are_not() {
        let m = masker_of(&[
            "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef&v=2",
            "https://open.feishu.cn/open-apis/bot/v2/hook/fs-0123456789",
            "https://example.com/deploy/notify?mode=json",
        ]);
        let text = m.mask("send 0123456789abcdef and fs-0123456789 to deploy notify json");
        assert_eq!(text, "send *** and *** to deploy notify json");
    }
}
