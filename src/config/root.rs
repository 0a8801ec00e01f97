//! What a command that stays root works on besides the hook's state folder, as the config
//! names it (`sys::privilege` vouches that root alone controls each): the hook's own paths
//! (`root_paths`: the checkout, the served folders, a HOME), and what it reads or runs
//! (`root_reads`: the rclone config, the `path` folders, programs, ssh files, tokens).

use std::path::{Path, PathBuf};

use super::{Destinations, Hook, Publish};

impl Hook {
    /// What a command that stays root would run in or write besides the hook's state
    /// folder, as the config calls each: the checkout, the local publish target and its
    /// releases (`<to>.releases`, as `publish::local` names them; the folder holding both
    /// is on the way to them), a HOME the `env` table sets, the build page's folder, and
    /// the previews' folder.
    pub fn root_paths(&self) -> Vec<(&'static str, PathBuf)> {
        let mut out = vec![("repo", self.repo.clone())];
        if let Some(to) = self.publish.as_ref().and_then(Publish::local_to) {
            let mut releases = to.file_name().map(std::ffi::OsString::from).unwrap_or_default();
            releases.push(".releases");
            out.push(("publish.to", to.to_path_buf()));
            out.push(("publish.to's releases", to.with_file_name(releases)));
        }
        if let Some(home) = self.env.get("HOME") {
            out.push((crate::sys::privilege::HOME, PathBuf::from(home)));
        }
        // The build page is written there after every build.
        if let Some(page) = &self.page {
            out.push(("page.dir", page.dir.clone()));
        }
        // Every preview's releases and symlink are made there.
        if let Some(previews) = &self.previews {
            out.push(("previews.to", previews.to.clone()));
        }
        out
    }
}

impl Hook {
    /// What else a command that stays root reads or runs, as the config names it
    /// (`sys::privilege::alone`): `publish.rclone_config`, each folder of `path` (rclone,
    /// git, ssh, rsync and the steps' programs are looked up there), a program of a step,
    /// a notification or `after_publish` named by its absolute path (one relative to
    /// `repo` is in the checkout), and what `publish.ssh` names: its program, its `-F`
    /// config, `-i` key and `-o ...File=` files, and the key and known_hosts files that
    /// config names; the report's token file and the notifications' URL and secret files.
    pub fn root_reads(&self) -> Vec<crate::sys::privilege::Read> {
        use crate::sys::privilege::Read;
        let mut out: Vec<Read> = Vec::new();
        let mut add = |what: String, path: PathBuf, programs: bool| {
            if !out.iter().any(|r| r.path == path && r.programs == programs) {
                out.push(Read { what, path, programs });
            }
        };
        let bucket = self.publish.as_ref().and_then(Publish::bucket);
        if let Some(b) = bucket {
            add(
                crate::sys::privilege::RCLONE_CONFIG.into(),
                b.rclone_config.clone(),
                false,
            );
        }
        // Tokens and robots' URLs, read and sent to the forge or the chat: one another user
        // could swap for a symlink would have root send what it leads to.
        if let Some(r) = &self.report {
            add("report.token_file".into(), r.token_file.clone(), false);
        }
        for n in &self.notify {
            add(
                format!("notify ({}) url_file", n.kind.name()),
                n.url_file.clone(),
                false,
            );
            if let Some(f) = &n.secret_file {
                add(format!("notify ({}) secret_file", n.kind.name()), f.clone(), false);
            }
        }
        for dir in self.path.split(':') {
            add("path folder".into(), PathBuf::from(dir), true);
        }
        let named = self
            .steps
            .iter()
            .map(|s| ("steps program", &s.run))
            .chain(self.on_failure.iter().map(|c| ("on_failure program", c)))
            .chain(self.on_success.iter().map(|c| ("on_success program", c)))
            .chain(
                bucket
                    .and_then(|b| b.after_publish.as_ref())
                    .map(|c| ("publish.after_publish program", c)),
            );
        for (what, cmd) in named {
            if cmd.program().starts_with('/') {
                add(what.into(), PathBuf::from(cmd.program()), false);
            }
        }
        if let Some(Destinations::Hosts(h)) = self.publish.as_ref().map(|p| &p.to) {
            if h.ssh[0].starts_with('/') {
                add("publish.ssh program".into(), PathBuf::from(&h.ssh[0]), false);
            }
            for (what, file) in ssh_files(&h.ssh[1..]) {
                add(format!("publish.ssh {what}"), file.clone(), false);
                if what == "-F config" {
                    for (key, f) in ssh_config_files(&file) {
                        add(format!("{key} (in {})", file.display()), f, false);
                    }
                }
            }
        }
        out
    }
}

/// The files an ssh command line names, with what names each: `-F FILE`, `-i FILE`, and
/// `-o` options that name files (`-oKey=FILE`, `-o Key=FILE`, `-o "Key FILE"`); absolute
/// paths only (ssh reads `~` from the passwd entry, root's own).
fn ssh_files(args: &[String]) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let (flag, glued) = match a.as_str() {
            f @ ("-F" | "-i" | "-o") => (f, None),
            s if s.len() > 2 && (s.starts_with("-F") || s.starts_with("-i") || s.starts_with("-o")) => {
                (&s[..2], Some(s[2..].to_string()))
            }
            _ => continue,
        };
        let Some(value) = glued.or_else(|| it.next().cloned()) else {
            break;
        };
        match flag {
            "-F" => out.push(("-F config".to_string(), PathBuf::from(value))),
            "-i" => out.push(("-i key".to_string(), PathBuf::from(value))),
            _ => {
                if let Some((key, files)) = ssh_option(&value) {
                    out.extend(files.into_iter().map(|f| (format!("-o {key}"), f)));
                }
            }
        }
    }
    out.retain(|(_, p)| p.is_absolute());
    out
}

/// ssh options that name files root would read: keys, certificates, known hosts, more
/// config. `Key=VALUE` or `Key VALUE`; known hosts may list several files.
fn ssh_option(line: &str) -> Option<(String, Vec<PathBuf>)> {
    const FILES: [&str; 5] = [
        "identityfile",
        "certificatefile",
        "userknownhostsfile",
        "globalknownhostsfile",
        "include",
    ];
    let line = line.trim();
    let split = line.find(|c: char| c == '=' || c.is_whitespace())?;
    let (key, rest) = line.split_at(split);
    let rest = rest.trim_start_matches(|c: char| c == '=' || c.is_whitespace());
    if !FILES.contains(&key.to_ascii_lowercase().as_str()) {
        return None;
    }
    let files = rest
        .split_whitespace()
        .map(|f| PathBuf::from(f.trim_matches('"')))
        .filter(|p| p.is_absolute())
        .collect();
    Some((key.to_string(), files))
}

/// The files an ssh config names (`IdentityFile`, `UserKnownHostsFile`, ...); nothing when
/// it cannot be read (its own check then refuses or ssh says so).
fn ssh_config_files(config: &Path) -> Vec<(String, PathBuf)> {
    let Ok(text) = std::fs::read_to_string(config) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(ssh_option)
        .flat_map(|(key, files)| files.into_iter().map(move |f| (key.clone(), f)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{ssh_files, ssh_option};

    #[test]
    fn the_files_an_ssh_command_names_are_found_in_every_spelling() {
        let argv: Vec<String> = [
            "-F",
            "/etc/dh/ssh_config",
            "-i/etc/dh/key",
            "-o",
            "UserKnownHostsFile=/etc/dh/kh /etc/dh/kh2",
            "-oIdentityFile /etc/dh/key2",
            "-o",
            "BatchMode=yes",
            "-i",
            "relative/key",
            "-p",
            "22",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let found: Vec<(String, PathBuf)> = ssh_files(&argv);
        let files: Vec<&str> = found.iter().map(|(_, p)| p.to_str().unwrap()).collect();
        assert_eq!(
            files,
            [
                "/etc/dh/ssh_config",
                "/etc/dh/key",
                "/etc/dh/kh",
                "/etc/dh/kh2",
                "/etc/dh/key2"
            ]
        );
        assert_eq!(found[0].0, "-F config");
        assert_eq!(found[2].0, "-o UserKnownHostsFile");
        assert_eq!(
            ssh_option("  identityfile = \"/k\""),
            Some(("identityfile".to_string(), vec![PathBuf::from("/k")]))
        );
        assert_eq!(ssh_option("Host web1"), None);
    }
}
