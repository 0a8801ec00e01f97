//! `[hooks.NAME.publish]`: where a build's output goes, checked. The output (`from`) is a
//! folder inside the repo and outside `.git`; the local served path (`to`) is outside the
//! repo; each web host (`hosts`) is an ssh destination and an absolute path there; `ssh` is
//! an argv that rsync's `-e` can carry.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::hook::At;
use super::raw::RawPublish;
use super::{inside_relative, Destinations, Hosts, Publish, RemoteHost};
use crate::error::Result;

impl RemoteHost {
    /// `web1:/var/www/docs`. The host is one word that ssh cannot take for an option; the
    /// path is absolute and holds no newline (it travels in sh scripts, quoted).
    pub fn parse(s: &str) -> std::result::Result<RemoteHost, String> {
        let Some((host, path)) = s.split_once(':') else {
            return Err(format!(
                "{s:?} is not HOST:/PATH (an ssh host alias, a colon, the served path there)"
            ));
        };
        if host.is_empty()
            || host.starts_with('-')
            || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
        {
            return Err(format!(
                "{host:?} is not an ssh host: letters, digits, '-', '_', '.', '@' (user@host), not starting with '-'"
            ));
        }
        if !path.starts_with('/') || path.contains(['\n', '\0']) {
            return Err(format!("{path:?} must be an absolute path on {host}"));
        }
        let path = path.trim_end_matches('/');
        let base = path.rsplit('/').next().unwrap_or("");
        if base.is_empty() || base == "." || base == ".." {
            return Err(format!("{s:?} must name a path below a folder"));
        }
        Ok(RemoteHost {
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}

/// The checked publish of a hook, when it has a publish table.
pub(super) fn validate(at: &At, repo: &Path, raw: Option<Spanned<RawPublish>>) -> Result<Option<Publish>> {
    let Some(p) = raw else {
        return Ok(None);
    };
    let span = p.span();
    let p = p.into_inner();
    let Some(from) = inside_relative(&p.from) else {
        return at.ctx.err(
            span,
            &at.key("publish.from"),
            format!("{:?} is not a relative path inside repo (and outside .git)", p.from),
        );
    };
    let hosts = p.hosts.unwrap_or_default();
    let to = to(at, repo, p.to.as_deref(), hosts.is_empty(), &span)?;
    let keep = p.keep.unwrap_or(5);
    if keep < 2 {
        return at.ctx.err(
            span,
            &at.key("publish.keep"),
            "must be at least 2 (the live release and the one to roll back to)",
        );
    }
    let mut remote = Vec::new();
    for h in &hosts {
        let parsed = RemoteHost::parse(h).or_else(|m| at.ctx.err(span.clone(), &at.key("publish.hosts"), m))?;
        if remote.contains(&parsed) {
            return at
                .ctx
                .err(span, &at.key("publish.hosts"), format!("{h:?} is named twice"));
        }
        remote.push(parsed);
    }
    let ssh = ssh(at, p.ssh, hosts.is_empty(), &span)?;
    let to = match to {
        // `to` is required when there are no hosts (checked above).
        Some(to) if remote.is_empty() => Destinations::Local(to),
        local => Destinations::Hosts(Hosts {
            local,
            hosts: remote,
            ssh,
        }),
    };
    Ok(Some(Publish {
        from,
        keep: keep as usize,
        to,
    }))
}

/// The local served path: required unless there are web hosts, below a folder, outside
/// the repo.
fn to(
    at: &At,
    repo: &Path,
    raw: Option<&str>,
    no_hosts: bool,
    span: &std::ops::Range<usize>,
) -> Result<Option<PathBuf>> {
    let err = |message: &str| at.ctx.err(span.clone(), &at.key("publish.to"), message);
    match raw {
        None if no_hosts => err("must name the symlink the web server serves (or set publish.hosts)"),
        None => Ok(None),
        Some("") => err("must name the symlink the web server serves"),
        Some(t) => {
            let to = at.ctx.resolve(t);
            if to.parent().is_none() || to.file_name().is_none() {
                return err("must name a path below a folder");
            }
            if to.starts_with(repo) || repo.starts_with(&to) {
                return err("must be outside repo");
            }
            Ok(Some(to))
        }
    }
}

/// The ssh command for the web hosts, an argv; only with `hosts`.
fn ssh(at: &At, raw: Option<Vec<String>>, no_hosts: bool, span: &std::ops::Range<usize>) -> Result<Vec<String>> {
    let err = |message: String| at.ctx.err(span.clone(), &at.key("publish.ssh"), message);
    let Some(argv) = raw else {
        return Ok(vec!["ssh".to_string()]);
    };
    if no_hosts {
        return err("is used only with publish.hosts".into());
    }
    if argv.first().is_none_or(|p| p.is_empty()) {
        return err("must name the ssh program, like [\"ssh\", \"-F\", \"/etc/deploy-hook/ssh_config\"]".into());
    }
    // rsync's -e takes one string it splits itself: quotes, no backslashes.
    if let Some(w) = argv
        .iter()
        .find(|w| (w.contains('\'') && w.contains('"')) || w.contains(['\0', '\n']))
    {
        return err(format!(
            "{w:?} holds both quote kinds or a newline, which rsync's -e cannot carry"
        ));
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::tests::{err, parse, MINIMAL};
    use super::{Destinations, RemoteHost};

    #[test]
    fn publish_to_several_hosts() {
        let base = format!("{MINIMAL}[hooks.docs.publish]\nfrom = \"dist\"\n");
        let c = parse(&format!(
            "{base}hosts = [\"web1:/var/www/docs\", \"deploy@web2:/var/www/docs/\"]\nssh = [\"ssh\", \"-F\", \"/etc/deploy-hook/ssh_config\"]\n"
        ))
        .unwrap();
        let hosts = |c: &super::super::Config| match &c.hooks["docs"].publish.as_ref().unwrap().to {
            Destinations::Hosts(h) => h.clone(),
            Destinations::Local(_) => panic!("a publish with hosts is a publish to hosts"),
        };
        let f = hosts(&c);
        assert_eq!(f.local, None, "no local publish without `to`");
        assert_eq!(
            f.hosts[1],
            RemoteHost {
                host: "deploy@web2".into(),
                path: "/var/www/docs".into()
            }
        );
        assert_eq!(f.ssh, ["ssh", "-F", "/etc/deploy-hook/ssh_config"]);
        let c = parse(&format!("{base}to = \"/var/www/docs\"\nhosts = [\"web1:/srv/www\"]\n")).unwrap();
        let f = hosts(&c);
        assert_eq!(
            (f.local.as_deref(), f.ssh.as_slice()),
            (Some(Path::new("/var/www/docs")), &["ssh".to_string()][..])
        );
        for (bad, why) in [
            ("hosts = [\"web1\"]", "HOST:/PATH"),
            ("hosts = [\"web1:docs\"]", "absolute"),
            ("hosts = [\"-oProxyCommand=x:/a\"]", "not an ssh host"),
            ("hosts = [\"web 1:/a\"]", "not an ssh host"),
            ("hosts = [\"web1:/\"]", "below a folder"),
            ("hosts = [\"web1:/a\", \"web1:/a/\"]", "twice"),
            ("hosts = [\"web1:/a\"]\nssh = []", "ssh program"),
            (
                "hosts = [\"web1:/a\"]\nssh = [\"ssh\", \"-o\", \"X='a\\\"b'\"]",
                "quote",
            ),
            ("to = \"/var/www/x\"\nssh = [\"ssh\"]", "only with publish.hosts"),
            ("", "or set publish.hosts"),
        ] {
            let e = err(&format!("{base}{bad}\n"));
            assert!(e.contains("hooks.docs.publish.") && e.contains(why), "{bad} -> {e}");
        }
    }
}
