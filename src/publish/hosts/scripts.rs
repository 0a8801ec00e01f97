//! What runs on a host's `sh`, and how its answers are read: only `sh`, `ln`, `mv`, `rm` and
//! `rsync` are asked of a web host. Every word from the config or a release name is quoted
//! for `sh` with `shell_quote`, the one quoting of the program.

use super::Target;
use crate::sys::text::{plain_word, shell_quote};

/// A word for rsync's `-e` string, which is not a shell's syntax: rsync splits the string
/// at spaces itself and honours single and double quotes but no backslash, so `'\''` (how
/// `shell_quote` puts a quote inside quotes) would reach ssh as three words. A word may
/// therefore hold one kind of quote, not both (config/publish.rs refuses the rest), and is
/// wrapped in the other kind.
pub(super) fn rsync_e_word(s: &str) -> String {
    if plain_word(s) {
        s.to_string()
    } else if !s.contains('\'') {
        format!("'{s}'")
    } else {
        format!("\"{s}\"")
    }
}

/// What a target serves now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// `path` is a symlink to this release (`None`: a symlink that leads nowhere).
    Release(Option<String>),
    /// `path` is a real folder: the site from before deploy-hook.
    Folder,
    Missing,
    /// A file or something else: a publish refuses to replace it.
    Other,
}

/// A target as the probe found it.
#[derive(Debug, Clone)]
pub struct Probe {
    pub served: Served,
    pub releases_dir: bool,
    /// The finished releases, oldest first.
    pub releases: Vec<String>,
    /// Whether rsync is on the host's PATH, and `path`'s folder writable (for `check`).
    pub rsync: Option<String>,
    pub folder_writable: bool,
    pub releases_writable: bool,
}

impl Probe {
    pub fn live(&self) -> Option<&str> {
        match &self.served {
            Served::Release(r) => r.as_deref(),
            _ => None,
        }
    }
}

pub(super) fn probe_script(t: &Target) -> String {
    let (dir, _) = t.split();
    format!(
        "p={p}; r={r}; d={d}
if [ -L \"$p\" ]; then
  if l=$(cd -P -- \"$p\" 2>/dev/null && pwd -P); then printf 'live %s\\n' \"${{l##*/}}\"; else echo 'live'; fi
elif [ -d \"$p\" ]; then echo folder
elif [ -e \"$p\" ]; then echo other
else echo missing
fi
if [ -d \"$r\" ]; then
  echo releases
  [ -w \"$r\" ] && echo releases-writable
  for x in \"$r\"/*/; do [ -d \"$x\" ] && {{ x=${{x%/}}; printf 'release %s\\n' \"${{x##*/}}\"; }}; done
fi
[ -d \"$d\" ] && [ -w \"$d\" ] && echo folder-writable
printf 'rsync %s\\n' \"$(command -v rsync)\"
true",
        p = shell_quote(&t.path),
        r = shell_quote(&t.releases()),
        d = shell_quote(&dir)
    )
}

pub(super) fn parse_probe(out: &str) -> Probe {
    let mut p = Probe {
        served: Served::Missing,
        releases_dir: false,
        releases: Vec::new(),
        rsync: None,
        folder_writable: false,
        releases_writable: false,
    };
    for line in out.lines() {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "live" => p.served = Served::Release(Some(rest.to_string()).filter(|s| !s.is_empty())),
            "folder" => p.served = Served::Folder,
            "other" => p.served = Served::Other,
            "missing" => p.served = Served::Missing,
            "releases" => p.releases_dir = true,
            "releases-writable" => p.releases_writable = true,
            "folder-writable" => p.folder_writable = true,
            "release" if !rest.starts_with('.') && !rest.is_empty() => p.releases.push(rest.to_string()),
            "rsync" => p.rsync = Some(rest.to_string()).filter(|s| !s.is_empty()),
            _ => {}
        }
    }
    p.releases.sort();
    p
}

/// How a switched target is put back as it was.
pub(super) fn switch_back_script(t: &Target, before: &Served, kept: &str) -> String {
    let (p, l) = (shell_quote(&t.path), shell_quote(&t.switch_link()));
    match before {
        Served::Release(Some(old)) => format!(
            "rm -f -- {l} && ln -s -- {v} {l} && mv -T -- {l} {p}",
            v = shell_quote(&t.link_value(old))
        ),
        Served::Folder => format!(
            "if [ -L {p} ] || [ ! -e {p} ]; then rm -f -- {p} && mv -T -- {k} {p}; fi",
            k = shell_quote(&format!("{}/{kept}", t.releases()))
        ),
        _ => format!("rm -f -- {p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_is_read() {
        let p = parse_probe("live 2026-b\nreleases\nreleases-writable\nrelease 2026-b\nrelease 2026-a\nfolder-writable\nrsync /usr/bin/rsync\n");
        assert_eq!(p.served, Served::Release(Some("2026-b".into())));
        assert_eq!(p.releases, vec!["2026-a", "2026-b"]);
        assert!(p.folder_writable && p.releases_writable && p.releases_dir);
        assert_eq!(p.rsync.as_deref(), Some("/usr/bin/rsync"));
        let p = parse_probe("missing\nrsync \n");
        assert_eq!((p.served, p.rsync, p.releases_dir), (Served::Missing, None, false));
        assert_eq!(parse_probe("live\n").served, Served::Release(None));
    }

    #[test]
    fn quoting_for_rsync_e() {
        assert_eq!(rsync_e_word("ssh"), "ssh");
        assert_eq!(rsync_e_word("/etc/my config"), "'/etc/my config'");
        assert_eq!(rsync_e_word("it's"), "\"it's\"");
    }
}
