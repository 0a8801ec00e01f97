//! What the forge reads in an answer, and what syslog gets: names and positions, never a
//! step's arguments (they may hold a token), and text escaped once.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::util::*;

const TOKEN: &str = "tok-4f9a-SECRET-ARG";

fn drain(sock: &UnixDatagram) -> String {
    let mut all = String::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = sock.recv(&mut buf) {
        all.push_str(&String::from_utf8_lossy(&buf[..n]));
        all.push('\n');
    }
    all
}

#[test]
fn sync_failure_names_the_step_by_position_and_program_only() {
    let w = World::new("answer-step");
    let sock_path = w.path("log.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    // a failing step whose arguments hold a token, as `env NETLIFY_AUTH_TOKEN=... deploy`
    // or `deploy --api-token=...` do; on_failure fails too and is logged
    let cases = [
        (
            format!("[\"true\", [\"env\", \"NETLIFY_AUTH_TOKEN={TOKEN}\", \"false\"]]"),
            "step 2 (env)",
        ),
        (
            format!("[\"true\", \"true\", [\"/bin/false\", \"--api-token={TOKEN}\"]]"),
            "step 3 (false)",
        ),
        (
            format!("[[\"no-such-deploy-tool\", \"--api-token={TOKEN}\"]]"),
            "step 1 (no-such-deploy-tool)",
        ),
        (format!("[\"exit 3 # {TOKEN}\"]"), "step 1 (sh)"),
    ];
    for (steps, label) in cases {
        let text = format!(
            "state_dir = {:?}\n[log]\nsyslog = {:?}\n[hooks.docs]\nprovider = \"gitee\"\nsecret_file = {:?}\nrepo = {:?}\nmode = \"sync\"\nsteps = {steps}\non_failure = [\"sh\", \"-c\", \"exit 1 # {TOKEN}\"]\n",
            w.state.to_str().unwrap(),
            sock_path.to_str().unwrap(),
            w.secret_file.to_str().unwrap(),
            w.repo.to_str().unwrap(),
        );
        fs::write(&w.config, text).unwrap();
        let r = w.gitee_push().run();
        assert_eq!((r.status, r.word()), (500, "failed"), "{}", r.json);
        let message = r.json["message"].as_str().unwrap();
        assert!(message.contains(&format!("at {label};")), "{steps}: {message}");
        let answer = String::from_utf8_lossy(&r.raw);
        assert!(
            !answer.contains(TOKEN) && !answer.contains("NETLIFY"),
            "{steps}: {answer}"
        );
        let syslog = drain(&sock);
        assert!(syslog.contains(&format!("failed_at=\"{label}\"")), "{steps}: {syslog}");
        assert!(syslog.contains("on_failure (sh)"), "{steps}: {syslog}");
        assert!(
            !syslog.contains(TOKEN) && !r.stderr.contains(TOKEN),
            "{steps}: {syslog}{}",
            r.stderr
        );
        // the admin's own build log keeps the whole command line
        assert!(w.log_text(&w.status()["last"]).contains(TOKEN));
    }
}

#[test]
fn answers_escape_text_once() {
    use std::os::unix::ffi::OsStringExt;
    let w = World::new("answer-escape");
    w.config("gitee", "steps = [\"true\"]");
    // an invalid byte in the hook's name: shown as U+FFFD, not as `\u{fffd}` escaped twice
    let r = w
        .gitee_push()
        .env("PATH_INFO", std::ffi::OsString::from_vec(b"/\xff".to_vec()))
        .run();
    assert_eq!(r.status, 404, "{}", r.json);
    assert_eq!(
        r.json["message"],
        "no hook named \"/\u{fffd}\" is configured here",
        "{}",
        String::from_utf8_lossy(&r.raw)
    );
    // an event name with a tab and a non-ASCII letter: the tab escaped once, the letter kept
    let r = w.gitee_push().header("X-Gitee-Event", "Note\tHook é").run();
    assert_eq!(r.word(), "ignored", "{}", r.json);
    assert_eq!(
        r.json["message"],
        "event \"Note\\tHook é\" does not start a build",
        "{}",
        String::from_utf8_lossy(&r.raw)
    );
    let body = String::from_utf8_lossy(&r.raw);
    assert!(!body.contains("\\\\\\\\"), "{body}");
}

#[test]
fn a_gitee_mode_mismatch_says_which_mode_each_side_is_in() {
    let w = World::new("answer-gitee-mode");
    let push = |token: &str, ts: Option<&str>| {
        let mut c = w
            .cgi()
            .header("X-Gitee-Token", token)
            .header("X-Gitee-Event", "Push Hook")
            .body(br#"{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111"}"#);
        if let Some(ts) = ts {
            c = c.header("X-Gitee-Timestamp", ts);
        }
        c.run()
    };
    let ts = (now_ms() - 1000).to_string();
    let expects_sign =
        "this hook expects the signing key (签名密钥) mode; this delivery's token looks like a WebHook password";
    let expects_password =
        "this hook expects the WebHook password (WebHook 密码) mode; this delivery's token looks like a signature";

    // a sign-mode hook; Gitee set to password mode: the token is a password, as the README's
    // recipe makes one (base64 of 24 bytes), or any other text
    w.config("gitee", "steps = [\"true\"]");
    for (token, ts, code) in [
        ("q3Zb2k5V8xHn0pLr7TtYcWfA9sDe1uGi", Some(ts.as_str()), 403),
        (SECRET, Some(ts.as_str()), 403),
        (SECRET, None, 401),
    ] {
        let r = push(token, ts);
        assert_eq!(r.status, code, "{}", r.json);
        let m = r.json["message"].as_str().unwrap();
        assert!(m.contains(expects_sign), "{token}: {m}");
        assert!(!String::from_utf8_lossy(&r.raw).contains(SECRET), "{m}");
    }
    // signed, but with another key: the mode is right, the key is not
    let r = push(&gitee_token("another-key", &ts), Some(&ts));
    assert_eq!(r.status, 403, "{}", r.json);
    let m = r.json["message"].as_str().unwrap();
    assert!(
        m.contains("signed, as this hook expects") && !m.contains(expects_sign),
        "{m}"
    );

    // a password-mode hook; Gitee set to signing key mode
    w.config("gitee", "gitee_mode = \"password\"\nsteps = [\"true\"]");
    let r = push(&gitee_token(SECRET, &ts), Some(&ts));
    assert_eq!(r.status, 403, "{}", r.json);
    let m = r.json["message"].as_str().unwrap();
    assert!(m.contains(expects_password), "{m}");
    // a wrong password is just that
    let r = push("not-the-password", Some(&ts));
    assert_eq!(r.status, 403, "{}", r.json);
    let m = r.json["message"].as_str().unwrap();
    assert!(
        m.contains("does not match the WebHook password") && !m.contains("expects"),
        "{m}"
    );
    // and the right ones still build
    assert_eq!(push(SECRET, Some(&ts)).status, 202);
}
