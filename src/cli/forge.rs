//! What `init` prints for the person setting a hook up: what to paste into the forge's
//! webhook form (the URL as the web server really serves it, the secret, the events), what
//! to do next with nginx (without overwriting the site of a hook set up before), and, for a
//! hook already in the config, which of the given options differ from it.

use std::io::Write;
use std::path::Path;

use super::args::InitProvider;
use crate::check::HookUrl;

/// The way to `/hooks/NAME` the forge is given: the running server's first (nginx or
/// Apache: the one that answers), then one that passes the name, https, a host name.
fn best(urls: &[HookUrl]) -> Option<&HookUrl> {
    urls.iter()
        .max_by_key(|u| (u.running, u.with_name, u.scheme == "https", u.host.is_some()))
}

/// The URL the forge is given: what the running web server serves `/hooks/NAME` on now
/// (https when that server has TLS, its server_name), else plain http on this machine's
/// name, as the shipped site serves it. Returns (URL, the host for the test line, a note
/// that says which server, whether it runs, and the other server's config if it has one).
fn hook_url(name: &str, urls: &[HookUrl]) -> (String, String, String) {
    let here = hostname().unwrap_or_else(|| "YOUR-HOST".into());
    match best(urls) {
        Some(u) => {
            let host = u.host.clone().unwrap_or(here);
            let mut note = if u.running {
                format!("(as {} serves it: {}", u.server, u.file)
            } else {
                format!(
                    "(as {}'s config says: {}; {} is not running: start it",
                    u.server, u.file, u.server
                )
            };
            if let Some(other) = urls.iter().find(|o| o.server != u.server) {
                note.push_str(&format!(
                    "; {} has a config for deploy-hook too ({}), {}",
                    other.server,
                    other.file,
                    if other.running {
                        "and runs"
                    } else {
                        "but is not running"
                    }
                ));
            }
            note.push(')');
            (
                format!("{}://{host}{}", u.scheme, u.path),
                format!("{}://{host}{}", u.scheme, u.path),
                note,
            )
        }
        None => (
            format!("http://{here}/hooks/{name}"),
            format!("http://$(hostname -f)/hooks/{name}"),
            "(plain http, as the shipped nginx site serves it; https once it has TLS: docs/tls.md)".into(),
        ),
    }
}

/// The events previews need besides pushes, per forge, as docs/previews.md's table says:
/// a hook given `[hooks.NAME.previews]` later needs them ticked on the same webhook.
const PREVIEWS_GITHUB: &str = "  previews:     with [hooks.NAME.previews], choose individual events: Pushes and Pull requests (docs/previews.md)\n";
const PREVIEWS_GITLAB: &str =
    "  previews:     with [hooks.NAME.previews], tick Merge request events too (docs/previews.md)\n";
const PREVIEWS_GITEA: &str =
    "  previews:     with [hooks.NAME.previews], Custom events: Push, Pull Request, Delete (docs/previews.md)\n";
const PREVIEWS_GITEE: &str =
    "  previews:     with [hooks.NAME.previews], tick Pull Request (合并请求) too (docs/previews.md)\n";

/// What to type into the forge's webhook form. The secret is printed here, and only here.
pub(super) fn paste_instructions(
    out: &mut dyn Write,
    name: &str,
    branch: &str,
    provider: InitProvider,
    secret: &str,
    urls: &[crate::check::HookUrl],
) {
    let (url, test_url, note) = hook_url(name, urls);
    let mut t = String::new();
    t.push_str(&format!(
        "Paste into the forge's webhook settings ({}):\n",
        provider_name(provider)
    ));
    t.push_str(&format!("  URL:          {url}   {note}\n"));
    match provider {
        InitProvider::Gitee => {
            t.push_str("  WebHook 密码/签名密钥: choose 签名密钥 (signing key), not WebHook 密码 (password)\n");
            t.push_str(&format!("  signing key:  {secret}\n"));
            t.push_str("  events:       Push (推送)\n");
            t.push_str(PREVIEWS_GITEE);
            t.push_str("  content type: Gitee always sends application/json\n");
        }
        InitProvider::Github => {
            t.push_str("  Content type: application/json\n");
            t.push_str(&format!("  Secret:       {secret}\n"));
            t.push_str("  events:       Just the push event\n");
            t.push_str(PREVIEWS_GITHUB);
        }
        InitProvider::Gitlab => {
            t.push_str(&format!("  Secret token: {secret}\n"));
            t.push_str("  Trigger:      Push events (this branch, or all branches: others are ignored)\n");
            t.push_str(PREVIEWS_GITLAB);
            t.push_str("  content type: GitLab always sends application/json\n");
        }
        InitProvider::Gitea | InitProvider::Gogs => {
            t.push_str("  HTTP method:  POST\n");
            t.push_str("  POST content type: application/json\n");
            t.push_str(&format!("  Secret:       {secret}\n"));
            t.push_str("  Trigger on:   Push events\n");
            t.push_str(PREVIEWS_GITEA);
        }
    }
    // The body is the one `sign` signs by default; the host is the nginx site's
    // server_name, which the README's Quick start sets to `hostname -f`. `sign` runs
    // first, on its own: when it fails (no config, a secret it cannot read) the line
    // stops there, instead of sending an unsigned request that only says 401.
    t.push_str(&format!(
        "Test it from here, once the web server serves it (a push of {branch}):\n  \
         h=$(deploy-hook sign {name} --format curl) && eval \"curl -sS {test_url} --data-binary '{{\\\"ref\\\":\\\"refs/heads/{branch}\\\"}}' $h\"\n"
    ));
    out.write_all(t.as_bytes()).ok();
}

pub(super) fn provider_name(p: InitProvider) -> &'static str {
    match p {
        InitProvider::Gitee => "gitee",
        InitProvider::Github => "github",
        InitProvider::Gitlab => "gitlab",
        InitProvider::Gitea => "gitea",
        InitProvider::Gogs => "gogs",
    }
}

/// What to do next with nginx. The first hook: the shipped site, as the README's step 3
/// writes it. A later one: its deliveries already reach deploy-hook through the site that
/// serves `/hooks/`, and only its published folder needs a server of its own, in a file of
/// its own: copying the example again would replace the first hook's edited site.
pub(super) fn next_steps(name: &str, publish_to: Option<&Path>, urls: &[HookUrl], others: &[String]) -> String {
    if let Some(u) = best(urls).filter(|u| u.server == "Apache") {
        return apache_next_steps(name, publish_to, u);
    }
    const EXAMPLES: &str = "/usr/share/doc/deploy-hook/examples";
    let first_site = "/etc/nginx/sites-enabled/deploy-hook";
    if urls.is_empty() && others.is_empty() {
        let root = match publish_to {
            Some(to) if to != Path::new("/var/www/docs/site") => {
                format!("; then set its root to {} (it serves /var/www/docs/site)", to.display())
            }
            _ => String::new(),
        };
        return format!(
            "Next: serve it with the shipped nginx site (README, step 3):\n  \
             sed \"s/hooks.example.com/$(hostname -f)/\" {EXAMPLES}/nginx-site.conf > {first_site}{root}\n  \
             nginx -t && nginx -s reload\n\
             then run the test line above, and push.\n"
        );
    }
    let reach = match best(urls) {
        Some(u) => format!("nginx already hands /hooks/{name} to deploy-hook ({}): its deliveries need no change there", u.file),
        None => format!(
            "the nginx site of {} serves /hooks/NAME for every hook: leave it as it is (copying the example again would replace it)",
            others.join(", ")
        ),
    };
    let site = match publish_to {
        Some(to) => format!(
            "\nIts published folder needs a server of its own, in a file of its own (never {first_site}: that is the first site's):\n  \
             sed \"s#/var/www/docs;#{};#\" {EXAMPLES}/nginx-published-site.conf > /etc/nginx/sites-enabled/{name}\n  \
             then set its server_name (docs.example.com) to the name its readers use, and: nginx -t && nginx -s reload",
            to.display()
        ),
        None => String::new(),
    };
    format!("Next: {reach}.{site}\nThen run the test line above, and push.\n")
}

/// What to do next when Apache hands `/hooks/NAME` to deploy-hook: nothing for the
/// deliveries; the published folder gets a site of its own from the shipped example.
fn apache_next_steps(name: &str, publish_to: Option<&Path>, u: &HookUrl) -> String {
    const EXAMPLES: &str = "/usr/share/doc/deploy-hook/examples";
    let start = if u.running {
        String::new()
    } else {
        "\nApache is not running: service apache2 start (or systemctl start apache2).".into()
    };
    let site = match publish_to {
        Some(to) => format!(
            "\nIts published folder needs a site of its own:\n  \
             sed \"s#/var/www/docs/site#{}#; s/docs.example.com/$(hostname -f)/\" {EXAMPLES}/apache-site.conf > /etc/apache2/sites-available/{name}.conf\n  \
             a2enmod rewrite && a2ensite {name} && apache2ctl configtest && apache2ctl graceful",
            to.display()
        ),
        None => String::new(),
    };
    format!(
        "Next: Apache already hands {} to deploy-hook ({}): its deliveries need no change there.{start}{site}\nThen run the test line above, and push.\n",
        u.path, u.file
    )
}

/// One option `init` was given that the hook's table in the config says otherwise.
pub(super) struct Differs {
    /// The option as given (`--branch dev`).
    pub given: String,
    /// What the config, or the checkout, has instead (`branch = "main"`).
    pub has: String,
}

/// What `init` says about a hook already in the config: nothing was changed, and, when
/// some of the given options say otherwise, which, and how to change them.
pub(super) fn already_there(name: &str, config: &Path, differs: &[Differs]) -> String {
    let mut t = format!(
        "{name}: [hooks.{name}] is already in {}; nothing was changed.\n",
        config.display()
    );
    if differs.is_empty() {
        t.push_str(&format!(
            "See it with: deploy-hook status {name}; check it with: deploy-hook check\n"
        ));
        return t;
    }
    t.push_str("These options differ from it, and were not applied:\n");
    let width = differs.iter().map(|d| d.given.chars().count()).max().unwrap_or(0);
    for d in differs {
        let pad = width - d.given.chars().count();
        t.push_str(&format!("  {}{}   but {}\n", d.given, " ".repeat(pad), d.has));
    }
    t.push_str(&format!(
        "To change them, edit [hooks.{name}] in {} and run deploy-hook check; or remove the table and run init again (the secret, the state folder and the checkout are kept)\n",
        config.display()
    ));
    t
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let h = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!h.is_empty()).then_some(h)
}
