//! What a red-team pass found, each pinned: text that www-data or a bucket controls never
//! reaches a terminal raw, a hook that stays root reads and runs only what root alone
//! controls, a damaged bucket manifest is never trusted, a bucket that never answers fails
//! in seconds, and a Gitee signing secret shared between hooks is pointed out.

use crate::util::*;

/// Terminal control sequences: ESC (CSI, OSC), BEL, and the 8-bit CSI.
fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n')
}

#[test]
fn check_escapes_a_remote_url_a_build_step_set() {
    let w = World::new("check-escape");
    w.config("gitlab", "steps = [\"true\"]");
    // A build step (www-data) can set remote.origin.url to anything: a title change (OSC),
    // a screen clear (CSI) and a bell.
    let url = "/srv/x\u{1b}]0;PWNED\u{7}\u{1b}[2J.git";
    git(&w.repo, &["remote", "set-url", "origin", url]);
    let out = w.cmd(&["check"]);
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(t.contains("remote origin is"), "{t}");
    assert!(!has_control(&t), "raw control characters reach the terminal: {t:?}");
    assert!(t.contains("\\u{1b}]0;PWNED\\u{7}"), "{t}");
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!has_control(&e), "{e:?}");
}
