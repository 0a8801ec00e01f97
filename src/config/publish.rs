//! `[hooks.NAME.publish]`: where a build's output goes, checked. The output (`from`) is a
//! folder inside the repo and outside `.git`; the local served path (`to`) is outside the
//! repo; each web host (`hosts`) is an ssh destination and an absolute path there; `ssh` is
//! an argv that rsync's `-e` can carry; the bucket (`bucket`) is an rclone `REMOTE:PATH`
//! with the rclone config that defines it, its `Cache-Control` values are header-safe, and
//! `after_publish` goes with it.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw::{CacheControl, RawPublish};
use super::{inside_relative, At, Bucket, Cmd, Destinations, Hosts, Publish, RemoteHost};
use crate::error::Result;

/// The `Cache-Control` of files that are not HTML when `cache_control` does not say: short,
/// so that a file changed in place (robots.txt, a favicon) is fetched again within minutes,
/// and explicit, so that no browser guesses a lifetime from the file's age.
pub const DEFAULT_CACHE_CONTROL: &str = "public, max-age=300";

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
    let bucket = bucket(at, &span, p.bucket, p.rclone_config, p.cache_control, p.after_publish)?;
    let to = to(at, repo, p.to.as_deref(), hosts.is_empty() && bucket.is_none(), &span)?;
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
    let to = match (to, bucket) {
        (Some(to), None) if remote.is_empty() => Destinations::Local(to),
        (local, Some(bucket)) if remote.is_empty() => Destinations::Bucket { local, bucket },
        // `to` is required when there are neither hosts nor a bucket (checked above), so
        // `remote` is not empty here.
        (local, bucket) => Destinations::Hosts(Hosts {
            local,
            hosts: remote,
            ssh,
            bucket,
        }),
    };
    Ok(Some(Publish {
        from,
        keep: keep as usize,
        to,
    }))
}

/// The local served path: required unless there are web hosts or a bucket, below a folder,
/// outside the repo.
fn to(
    at: &At,
    repo: &Path,
    raw: Option<&str>,
    no_hosts: bool,
    span: &std::ops::Range<usize>,
) -> Result<Option<PathBuf>> {
    let err = |message: &str| at.ctx.err(span.clone(), &at.key("publish.to"), message);
    match raw {
        None if no_hosts => err("must name the symlink the web server serves (or set publish.hosts or publish.bucket)"),
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

impl Bucket {
    /// `REMOTE:BUCKET/PATH`: a remote that `rclone_config` names (not an on-the-fly
    /// `:s3,...:` remote, whose keys would be in this file), and a path in it. Returned
    /// without a trailing `/`.
    pub fn parse_remote(s: &str) -> std::result::Result<String, String> {
        let Some((remote, path)) = s.split_once(':') else {
            return Err(format!(
                "{s:?} is not REMOTE:BUCKET/PATH (a remote of rclone_config, a colon, the bucket and the path in it)"
            ));
        };
        if remote.is_empty()
            || remote.starts_with('-')
            || !remote
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+@".contains(&b))
        {
            return Err(format!(
                "{remote:?} is not an rclone remote name: letters, digits, '-', '_', '.', '+', '@', not starting with '-'; the remote is a [section] of rclone_config"
            ));
        }
        let path = path.trim_end_matches('/');
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if path.is_empty()
            || path.chars().any(char::is_control)
            || segments.iter().any(|g| g.is_empty() || *g == "." || *g == "..")
        {
            return Err(format!(
                "{s:?} must name a bucket (and a path in it) after the colon, like {remote}:docs-bucket/site, without empty, '.' or '..' parts"
            ));
        }
        Ok(format!("{remote}:{path}"))
    }
}

/// The bucket of a publish, when `bucket` is set, with what only a bucket uses.
fn bucket(
    at: &At,
    span: &std::ops::Range<usize>,
    raw: Option<String>,
    rclone_config: Option<String>,
    cache_control: Option<CacheControl>,
    after_publish: Option<Cmd>,
) -> Result<Option<Bucket>> {
    let err = |key: &str, message: String| at.ctx.error(span.clone(), &at.key(key), message);
    let Some(raw) = raw else {
        for (key, set) in [
            ("publish.rclone_config", rclone_config.is_some()),
            ("publish.cache_control", cache_control.is_some()),
            ("publish.after_publish", after_publish.is_some()),
        ] {
            if set {
                return Err(err(key, "is used only with publish.bucket".into()));
            }
        }
        return Ok(None);
    };
    let remote = Bucket::parse_remote(&raw).map_err(|m| err("publish.bucket", m))?;
    let rclone_config = match rclone_config.as_deref() {
        None | Some("") => {
            return Err(err(
                "publish.rclone_config",
                "must name the rclone config file that defines the bucket's remote, like \"/etc/deploy-hook/rclone.conf\" (see docs/bucket.md)".into(),
            ))
        }
        Some(f) => at.ctx.resolve(f),
    };
    let cache_control = cache_table(cache_control).map_err(|m| err("publish.cache_control", m))?;
    Ok(Some(Bucket {
        remote,
        rclone_config,
        cache_control,
        after_publish,
    }))
}

/// `cache_control` as (prefix, value) pairs, longest prefix first, with `""` (every path)
/// defaulting to `DEFAULT_CACHE_CONTROL`.
fn cache_table(raw: Option<CacheControl>) -> std::result::Result<Vec<(String, String)>, String> {
    let mut table = match raw {
        None => Default::default(),
        Some(CacheControl::All(v)) => std::collections::BTreeMap::from([(String::new(), v)]),
        Some(CacheControl::ByPrefix(t)) => t,
    };
    for (prefix, value) in &table {
        // A header value travels as one rclone argument and one HTTP header line.
        if value.is_empty() || value.len() > 256 || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(format!(
                "{value:?} for {prefix:?} is not a Cache-Control value: printable ASCII, 1 to 256 characters"
            ));
        }
        if prefix.starts_with('/') || prefix.chars().any(char::is_control) || prefix.split('/').any(|g| g == "..") {
            return Err(format!(
                "{prefix:?} is not a path prefix in the site: relative, like \"assets/\""
            ));
        }
        if prefix.is_empty() && value.contains("immutable") {
            return Err(format!(
                "{value:?} for every file: immutable pins a file changed in place (robots.txt, hashmap.json) in caches for good; give it to the folder of content-hashed files only, like {{ \"assets/\" = {value:?} }}"
            ));
        }
    }
    table
        .entry(String::new())
        .or_insert_with(|| DEFAULT_CACHE_CONTROL.to_string());
    let mut pairs: Vec<(String, String)> = table.into_iter().collect();
    pairs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    Ok(pairs)
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
    use super::{Bucket, Destinations, RemoteHost, DEFAULT_CACHE_CONTROL};

    #[test]
    fn publish_to_several_hosts() {
        let base = format!("{MINIMAL}[hooks.docs.publish]\nfrom = \"dist\"\n");
        let c = parse(&format!(
            "{base}hosts = [\"web1:/var/www/docs\", \"deploy@web2:/var/www/docs/\"]\nssh = [\"ssh\", \"-F\", \"/etc/deploy-hook/ssh_config\"]\n"
        ))
        .unwrap();
        let hosts = |c: &super::super::Config| match &c.hooks["docs"].publish.as_ref().unwrap().to {
            Destinations::Hosts(h) => h.clone(),
            other => panic!("a publish with hosts is a publish to hosts: {other:?}"),
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

    #[test]
    fn publish_to_a_bucket() {
        let base = format!("{MINIMAL}[hooks.docs.publish]\nfrom = \"dist\"\n");
        let conf = "rclone_config = \"rclone.conf\"\n";
        let c = parse(&format!("{base}bucket = \"oss:docs-bucket/site/\"\n{conf}")).unwrap();
        let p = c.hooks["docs"].publish.clone().unwrap();
        let Destinations::Bucket { local: None, bucket } = &p.to else {
            panic!("a bucket alone: {:?}", p.to)
        };
        assert_eq!(bucket.remote, "oss:docs-bucket/site", "the trailing / is cut");
        assert_eq!(bucket.rclone_config, Path::new("/etc/deploy-hook/rclone.conf"));
        assert_eq!(
            bucket.cache_control,
            [(String::new(), DEFAULT_CACHE_CONTROL.to_string())]
        );
        assert_eq!(p.local_to(), None);
        assert!(p.bucket().is_some());

        // Beside a local `to`, and beside hosts (with or without `to`): one destination each way.
        let c = parse(&format!("{base}to = \"/var/www/docs\"\nbucket = \"s3:b\"\n{conf}")).unwrap();
        let p = c.hooks["docs"].publish.clone().unwrap();
        assert!(matches!(&p.to, Destinations::Bucket { local: Some(_), .. }));
        assert_eq!(p.local_to(), Some(Path::new("/var/www/docs")));
        let c = parse(&format!("{base}hosts = [\"web1:/srv/www\"]\nbucket = \"s3:b\"\n{conf}")).unwrap();
        let p = c.hooks["docs"].publish.clone().unwrap();
        assert!(matches!(&p.to, Destinations::Hosts(h) if h.bucket.is_some() && h.local.is_none()));

        let c = parse(&format!(
            "{base}bucket = \"s3:b\"\n{conf}cache_control = {{ \"assets/\" = \"public, max-age=31536000, immutable\", \"assets/fonts/\" = \"public, max-age=86400\" }}\nafter_publish = [\"/usr/local/bin/purge\", \"aliyun\"]\n"
        ))
        .unwrap();
        let b = c.hooks["docs"].publish.clone().unwrap().bucket().cloned().unwrap();
        let prefixes: Vec<&str> = b.cache_control.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            prefixes,
            ["assets/fonts/", "assets/", ""],
            "longest first; \"\" defaults"
        );
        assert_eq!(b.after_publish.unwrap().program(), "/usr/local/bin/purge");
        let c = parse(&format!(
            "{base}bucket = \"s3:b\"\n{conf}cache_control = \"public, max-age=60\"\n"
        ))
        .unwrap();
        let b = c.hooks["docs"].publish.clone().unwrap().bucket().cloned().unwrap();
        assert_eq!(b.cache_control, [(String::new(), "public, max-age=60".to_string())]);

        for (bad, key, why) in [
            ("bucket = \"s3:b\"", "publish.rclone_config", "rclone config file"),
            ("bucket = \"docs-bucket\"\n", "publish.bucket", "REMOTE:BUCKET/PATH"),
            (
                "bucket = \":s3,access_key_id=x:b\"\n",
                "publish.bucket",
                "not an rclone remote name",
            ),
            ("bucket = \"-s3:b\"\n", "publish.bucket", "not an rclone remote name"),
            ("bucket = \"s3:\"\n", "publish.bucket", "must name a bucket"),
            ("bucket = \"s3:b/../c\"\n", "publish.bucket", "'..'"),
            (
                "rclone_config = \"r.conf\"",
                "publish.rclone_config",
                "only with publish.bucket",
            ),
            (
                "to = \"/var/www/x\"\nafter_publish = [\"purge\"]",
                "publish.after_publish",
                "only with publish.bucket",
            ),
            (
                "to = \"/var/www/x\"\ncache_control = \"no-store\"",
                "publish.cache_control",
                "only with publish.bucket",
            ),
            (
                "bucket = \"s3:b\"\ncache_control = \"public, max-age=31536000, immutable\"",
                "publish.cache_control",
                "content-hashed",
            ),
            (
                "bucket = \"s3:b\"\ncache_control = { \"/assets\" = \"public\" }",
                "publish.cache_control",
                "relative",
            ),
            (
                "bucket = \"s3:b\"\ncache_control = \"public\\nX-Evil: 1\"",
                "publish.cache_control",
                "printable ASCII",
            ),
        ] {
            let extra = if key == "publish.rclone_config" || !bad.starts_with("bucket") {
                ""
            } else {
                conf
            };
            let e = err(&format!("{base}{bad}\n{extra}"));
            assert!(
                e.contains(&format!("hooks.docs.{key}")) && e.contains(why),
                "{bad} -> {e}"
            );
        }
        assert_eq!(Bucket::parse_remote("local:/srv/bucket").unwrap(), "local:/srv/bucket");
    }
}
