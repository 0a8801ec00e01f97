//! The names and relative paths a config may hold, checked before anything uses them: hook
//! names travel in URLs, file names and log lines; branch names and env names reach git and
//! the steps; a relative path is joined to a folder it must stay inside.

use std::path::{Component, Path, PathBuf};

/// Hook names travel in URLs, file names and log lines: keep them plain.
pub fn valid_hook_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Branch and remote names end up as git arguments: refuse anything git would read as an
/// option or that `git check-ref-format` refuses.
pub(super) fn valid_git_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.ends_with(".lock")
        && !s.contains("..")
        && !s.contains("@{")
        && !s.contains("//")
        && s.chars().all(|c| !c.is_control() && !" ~^:?*[\\".contains(c))
}

pub(super) fn valid_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A relative path that stays inside the folder it is joined to.
pub(super) fn inside_relative(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    if p.is_empty() || p.contains('\0') {
        return None;
    }
    let mut clean = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    // `.git` holds the remote's credentials and the hooks git runs: never published,
    // never cleaned.
    if clean.as_os_str().is_empty() || clean.starts_with(".git") {
        None
    } else {
        Some(clean)
    }
}
