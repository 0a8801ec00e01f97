//! Malformed and hostile deliveries, each with its exact expected status, through the real
//! binary. For every case: a complete JSON CGI answer, no panic, no build started, nothing
//! written outside the state dir, and no secret in any output.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::util::*;

type Make = Box<dyn Fn(&World) -> Cgi>;

struct Case {
    name: String,
    make: Make,
    status: u16,
}

fn case(name: impl Into<String>, status: u16, make: impl Fn(&World) -> Cgi + 'static) -> Case {
    Case {
        name: name.into(),
        make: Box::new(make),
        status,
    }
}

fn bytes(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

/// Every file outside the state dir, with its size and mtime.
fn snapshot(dir: &Path, state: &Path, out: &mut BTreeMap<String, (u64, u128)>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p == state {
            continue;
        }
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            snapshot(&p, state, out);
        } else {
            let mtime = m.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_nanos();
            out.insert(p.display().to_string(), (m.len(), mtime));
        }
    }
}

fn run_table(provider: &str, extra: &str, cases: Vec<Case>) -> usize {
    let w = World::new(&format!("hostile-{provider}"));
    w.config(
        provider,
        &format!("steps = [\"touch {}\"]\n{extra}", w.path("built").display()),
    );
    // the state dir exists before the table, so the snapshot is fair to it
    let first = (cases[0].make)(&w).run();
    assert_ne!(first.status, 0);
    let mut before = BTreeMap::new();
    snapshot(&w.dir, &w.state, &mut before);
    let n = cases.len();
    for c in cases {
        let r = (c.make)(&w).run();
        assert_eq!(r.status, c.status, "{provider} case {:?}: {}", c.name, r.json);
        let word = r.word();
        assert!(
            ["error", "unauthorized", "forbidden", "ignored", "pong", "duplicate"].contains(&word),
            "{}: {word}",
            c.name
        );
        assert!(!r.stderr.contains("panicked"), "{}: panic: {}", c.name, r.stderr);
        let out = format!("{}{}", String::from_utf8_lossy(&r.raw), r.stderr);
        assert!(!out.contains(SECRET), "{}: the secret in the output", c.name);
        assert!(!w.path("built").exists(), "{}: a build ran", c.name);
        assert!(!w.hook_dir().join("pending").exists(), "{}: a build was queued", c.name);
        let mut after = BTreeMap::new();
        snapshot(&w.dir, &w.state, &mut after);
        assert_eq!(before, after, "{}: something outside the state dir changed", c.name);
    }
    assert!(w.status()["last"].is_null());
    n
}

const PUSH: &[u8] = br#"{"ref":"refs/heads/main"}"#;

fn gitee_cases() -> Vec<Case> {
    let mut v = Vec::new();
    // CONTENT_LENGTH
    for cl in [
        "-1",
        "abc",
        "1e3",
        " 10",
        "10 ",
        "0x10",
        "+5",
        "5.0",
        "99999999999999999999999",
        "18446744073709551616",
        "1,000",
    ] {
        v.push(case(format!("CONTENT_LENGTH {cl:?}"), 400, move |w| {
            w.gitee_push().content_length(cl)
        }));
    }
    v.push(case("CONTENT_LENGTH over the limit", 413, |w| {
        w.gitee_push().content_length("5242881")
    }));
    v.push(case("CONTENT_LENGTH absurd", 413, |w| {
        w.gitee_push().content_length("9999999999999")
    }));
    v.push(case("short body", 400, |w| w.gitee_push().content_length("100")));
    v.push(case("body over the limit, no CONTENT_LENGTH", 413, |w| {
        w.gitee_push().body(&vec![b'{'; 5_242_881]).chunked()
    }));
    v.push(case("body over the limit, empty CONTENT_LENGTH", 413, |w| {
        w.gitee_push().body(&vec![b' '; 5_242_881]).content_length("")
    }));
    v.push(case("CONTENT_LENGTH not UTF-8", 400, |w| {
        w.gitee_push().chunked().env("CONTENT_LENGTH", bytes(b"1\xff"))
    }));
    // bodies
    let bad_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("not JSON", b"hello".to_vec()),
        ("truncated JSON", br#"{"ref":"refs/heads/ma"#.to_vec()),
        ("JSON array", b"[1,2,3]".to_vec()),
        ("JSON string", br#""refs/heads/main""#.to_vec()),
        ("JSON null", b"null".to_vec()),
        ("JSON number", b"42".to_vec()),
        ("ref is a number", br#"{"ref":5}"#.to_vec()),
        ("ref is null", br#"{"ref":null}"#.to_vec()),
        ("ref missing", br#"{"after":"abc"}"#.to_vec()),
        ("trailing garbage", br#"{"ref":"refs/heads/main"}x"#.to_vec()),
        ("byte-order mark", b"\xef\xbb\xbf{\"ref\":\"refs/heads/main\"}".to_vec()),
        ("non-UTF-8 in a string", b"{\"ref\":\"refs/heads/\xff\"}".to_vec()),
        ("non-UTF-8 bytes", b"\xff\xfe\xfd".to_vec()),
        (
            "deeply nested arrays",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
        (
            "deeply nested objects",
            format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)).into_bytes(),
        ),
        ("NUL bytes", b"\0\0\0\0".to_vec()),
        (
            "duplicate ref keys",
            br#"{"ref":"refs/heads/main","ref":"refs/heads/x"}"#.to_vec(),
        ),
    ];
    for (name, body) in bad_bodies {
        v.push(case(format!("body: {name}"), 400, move |w| w.gitee_push().body(&body)));
    }
    // content types
    for ct in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "json",
        "*/*",
    ] {
        v.push(case(format!("content type {ct}"), 415, move |w| {
            w.gitee_push().env("CONTENT_TYPE", ct)
        }));
    }
    v.push(case("content type not UTF-8", 415, |w| {
        w.gitee_push().env("CONTENT_TYPE", bytes(b"text/\xff"))
    }));
    // broken form encoding
    for (name, body) in [
        ("bad escape", &b"payload=%zz"[..]),
        ("no payload field", b"nopayload=1"),
        ("empty payload", b"payload="),
        ("truncated escape", b"payload=%7"),
        ("not a form", b"\xff\xfe"),
    ] {
        v.push(case(format!("form: {name}"), 400, move |w| {
            w.gitee_push()
                .env("CONTENT_TYPE", "application/x-www-form-urlencoded")
                .body(body)
        }));
    }
    // timestamps
    for (ts, status) in [
        ("", 401),
        ("abc", 400),
        ("-1", 400),
        ("1.5e12", 400),
        ("99999999999999999999", 400),
        (" 1700000000000", 400),
        ("１２３", 400),
        ("0", 403),
        ("1", 403),
        ("9999999999999999", 403),
    ] {
        v.push(case(format!("timestamp {ts:?}"), status, move |w| {
            w.gitee_push().header("X-Gitee-Timestamp", ts)
        }));
    }
    v.push(case("timestamp two hours ahead", 403, |w| {
        let ts = (now_ms() + 7_200_000).to_string();
        w.gitee_push()
            .header("X-Gitee-Timestamp", &ts)
            .header("X-Gitee-Token", gitee_token(SECRET, &ts))
    }));
    v.push(case("timestamp not UTF-8", 400, |w| {
        w.gitee_push().header("X-Gitee-Timestamp", bytes(b"17\xff"))
    }));
    // tokens
    for tok in [
        "!!!",
        "%%%",
        "%zz",
        "a",
        "====",
        "SECabc123-test-secret",
        "AAAA",
        "dGVzdA==",
        "%",
    ] {
        v.push(case(format!("token {tok:?}"), 403, move |w| {
            w.gitee_push().header("X-Gitee-Token", tok)
        }));
    }
    v.push(case("token of 64 KiB", 403, |w| {
        w.gitee_push().header("X-Gitee-Token", "A".repeat(65536))
    }));
    v.push(case("token not UTF-8", 403, |w| {
        w.gitee_push().header("X-Gitee-Token", bytes(b"\xff\xfe=="))
    }));
    v.push(case("token for another timestamp", 403, |w| {
        let ts = now_ms().to_string();
        w.gitee_push()
            .header("X-Gitee-Token", gitee_token(SECRET, &(now_ms() - 5).to_string()))
            .header("X-Gitee-Timestamp", &ts)
    }));
    v.push(case("token for another secret", 403, |w| {
        let ts = now_ms().to_string();
        w.gitee_push()
            .header("X-Gitee-Token", gitee_token("other", &ts))
            .header("X-Gitee-Timestamp", &ts)
    }));
    v.push(case("no token", 401, |w| w.gitee_push().unset("HTTP_X_GITEE_TOKEN")));
    v.push(case("empty token", 401, |w| w.gitee_push().header("X-Gitee-Token", "")));
    // huge and odd headers
    v.push(case("event header of 64 KiB", 400, |w| {
        w.gitee_push().header("X-Gitee-Event", "P".repeat(65536))
    }));
    v.push(case("event header empty", 400, |w| {
        w.gitee_push().header("X-Gitee-Event", "")
    }));
    v.push(case("event header missing", 400, |w| {
        w.gitee_push().unset("HTTP_X_GITEE_EVENT")
    }));
    v.push(case("event header not UTF-8", 400, |w| {
        w.gitee_push().header("X-Gitee-Event", bytes(b"Push \xff"))
    }));
    v.push(case("a thousand extra headers", 403, |w| {
        let mut c = w.gitee_push().header("X-Gitee-Token", "x");
        for i in 0..1000 {
            c = c.header(&format!("X-Junk-{i}"), "y".repeat(100));
        }
        c
    }));
    // hook names
    for p in [
        &b"/../docs"[..],
        b"/docs/../x",
        b"/%2e%2e",
        b"/docs%00",
        b"/docs\n",
        b"/do\x01cs",
        b"//docs",
        b"/docs/extra",
        b"/DOCS",
        b"/docs;rm -rf /",
        b"/docs\xff",
        b"/-docs",
        b"/.docs",
    ] {
        let shown = String::from_utf8_lossy(p).into_owned();
        v.push(case(format!("PATH_INFO {shown:?}"), 404, move |w| {
            w.gitee_push().env("PATH_INFO", bytes(p))
        }));
    }
    v.push(case("PATH_INFO of 10 KiB", 404, |w| {
        w.gitee_push().env("PATH_INFO", format!("/{}", "a".repeat(10240)))
    }));
    for q in [
        "hook=../docs",
        "hook=%2e%2e%2fdocs",
        "hook=docs%0a",
        "hook=",
        "hook=%zz",
        "hook=docs%00",
        "hook=a+b",
    ] {
        v.push(case(format!("query {q:?}"), 404, move |w| {
            w.gitee_push().unset("PATH_INFO").env("QUERY_STRING", q)
        }));
    }
    // methods
    for m in [
        "GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "post", "", "POST ", "P0ST",
    ] {
        v.push(case(format!("method {m:?}"), 405, move |w| {
            w.gitee_push().env("REQUEST_METHOD", m)
        }));
    }
    v
}

fn github_cases() -> Vec<Case> {
    let signed = |w: &World, sig: &str| {
        w.cgi()
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature-256", sig)
            .body(PUSH)
    };
    let good = github_sig(SECRET, PUSH);
    let hexpart = good[7..].to_string();
    let mut v = Vec::new();
    for (name, sig, status) in [
        ("empty", String::new(), 401),
        ("prefix only", "sha256=".into(), 403),
        ("no prefix", hexpart.clone(), 403),
        ("sha1 prefix", format!("sha1={hexpart}"), 403),
        ("upper-case prefix", format!("SHA256={hexpart}"), 403),
        ("not hex", format!("sha256={}", "z".repeat(64)), 403),
        ("short", format!("sha256={}", &hexpart[..62]), 403),
        ("long", format!("sha256={hexpart}00"), 403),
        ("trailing space", format!("{good} "), 403),
        ("two signatures", format!("{good},{good}"), 403),
        ("other body's", github_sig(SECRET, b"{}"), 403),
        ("other secret's", github_sig("other", PUSH), 403),
        ("base64 instead of hex", "sha256=dGVzdA==".into(), 403),
    ] {
        v.push(case(format!("X-Hub-Signature-256 {name}"), status, move |w| {
            signed(w, &sig)
        }));
    }
    v.push(case("no signature", 401, |w| {
        w.cgi().header("X-GitHub-Event", "push").body(PUSH)
    }));
    v.push(case("only SHA-1", 401, |w| {
        w.cgi()
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature", "sha1=00")
            .body(PUSH)
    }));
    v.push(case("signature not UTF-8", 403, |w| {
        w.cgi()
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature-256", bytes(b"sha256=\xff"))
            .body(PUSH)
    }));
    v.push(case("signed, no event", 400, move |w| {
        signed(w, &github_sig(SECRET, PUSH)).unset("HTTP_X_GITHUB_EVENT")
    }));
    v.push(case("signed, not JSON", 400, |w| {
        w.cgi()
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature-256", github_sig(SECRET, b"nope"))
            .body(b"nope")
    }));
    v.push(case("signed, form without payload", 400, |w| {
        w.cgi()
            .env("CONTENT_TYPE", "application/x-www-form-urlencoded")
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature-256", github_sig(SECRET, b"a=1"))
            .body(b"a=1")
    }));
    v.push(case("signed, other event", 200, |w| {
        w.cgi()
            .header("X-GitHub-Event", "issues")
            .header("X-Hub-Signature-256", github_sig(SECRET, PUSH))
            .body(PUSH)
    }));
    v
}

fn gitlab_cases() -> Vec<Case> {
    let with = |w: &World, tok: &[u8]| {
        w.cgi()
            .header("X-Gitlab-Event", "Push Hook")
            .header("X-Gitlab-Token", bytes(tok))
            .body(PUSH)
    };
    let mut v = Vec::new();
    for (name, tok, status) in [
        ("empty", &b""[..], 401),
        ("wrong", b"wrong", 403),
        ("with a newline", b"SECabc123-test-secret\n", 403),
        ("a prefix", b"SECabc123", 403),
        ("longer", b"SECabc123-test-secretX", 403),
        ("upper case", b"SECABC123-TEST-SECRET", 403),
        ("not UTF-8", b"\xff", 403),
        ("64 KiB", &[b'a'; 65536][..], 403),
    ] {
        v.push(case(format!("X-Gitlab-Token {name}"), status, move |w| with(w, tok)));
    }
    v.push(case("no token", 401, |w| {
        w.cgi().header("X-Gitlab-Event", "Push Hook").body(PUSH)
    }));
    v
}

fn gitea_cases() -> Vec<Case> {
    let with = |w: &World, sig: String| {
        w.cgi()
            .header("X-Gitea-Event", "push")
            .header("X-Gitea-Signature", sig)
            .body(PUSH)
    };
    let good = gitea_sig(SECRET, PUSH);
    let mut v = Vec::new();
    for (name, sig, status) in [
        ("empty", String::new(), 401),
        ("sha256= prefix", format!("sha256={good}"), 403),
        ("short", good[..63].to_string(), 403),
        ("not hex", "g".repeat(64), 403),
        ("other body's", gitea_sig(SECRET, b"{}"), 403),
        ("github style", github_sig(SECRET, PUSH), 403),
    ] {
        v.push(case(format!("X-Gitea-Signature {name}"), status, move |w| {
            with(w, sig.clone())
        }));
    }
    v.push(case("no signature", 401, |w| {
        w.cgi().header("X-Gitea-Event", "push").body(PUSH)
    }));
    v.push(case("form signed over the form body", 403, |w| {
        let form = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D";
        w.cgi()
            .env("CONTENT_TYPE", "application/x-www-form-urlencoded")
            .header("X-Gitea-Event", "push")
            .header("X-Gitea-Signature", gitea_sig(SECRET, form))
            .body(form)
    }));
    v
}

#[test]
fn hostile_deliveries_gitee() {
    assert!(run_table("gitee", "", gitee_cases()) >= 100);
}

#[test]
fn hostile_deliveries_other_forges() {
    let n = run_table("github", "", github_cases())
        + run_table("gitlab", "", gitlab_cases())
        + run_table("gitea", "", gitea_cases());
    assert!(n >= 35, "{n}");
}

#[test]
fn a_broken_config_a_missing_secret_or_an_unwritable_state_dir_is_500() {
    let w = World::new("hostile-config");
    let configs: Vec<(&str, String)> = vec![
        ("missing file", String::new()),
        ("not TOML", "[[[".into()),
        ("unknown key", "colour = \"red\"\n".into()),
        ("no hooks", "state_dir = \"/tmp\"\n".into()),
        (
            "hook without secret",
            format!(
                "[hooks.docs]\nprovider = \"gitee\"\nrepo = {:?}\n",
                w.repo.to_str().unwrap()
            ),
        ),
        (
            "bad provider",
            "[hooks.docs]\nprovider = \"svn\"\nsecret = \"x\"\nrepo = \"/r\"\n".into(),
        ),
        ("not UTF-8", "state_dir = \"\u{fffd}\"\n".into()),
    ];
    for (name, text) in configs {
        if name == "missing file" {
            let _ = fs::remove_file(&w.config);
        } else if name == "not UTF-8" {
            fs::write(&w.config, b"state_dir = \"\xff\"\n").unwrap();
        } else {
            fs::write(&w.config, text).unwrap();
        }
        let r = w.gitee_push().run();
        assert_eq!((r.status, r.word()), (500, "error"), "{name}: {}", r.json);
        assert!(
            !r.json["message"].as_str().unwrap().contains('/'),
            "{name}: a path in the answer: {}",
            r.json
        );
        assert!(!r.stderr.contains("panicked"));
    }
    // a missing secret file, an empty one
    w.config("gitee", "steps = [\"true\"]");
    fs::write(&w.secret_file, "\n").unwrap();
    assert_eq!(w.gitee_push().run().status, 500);
    fs::remove_file(&w.secret_file).unwrap();
    assert_eq!(w.gitee_push().run().status, 500);
    // a state dir that cannot be written (read-only bind is not available everywhere: a
    // state_dir below a regular file cannot be created, whoever runs the test)
    fs::write(&w.secret_file, SECRET).unwrap();
    fs::write(w.path("plain-file"), "").unwrap();
    let text = fs::read_to_string(&w.config)
        .unwrap()
        .replace(w.state.to_str().unwrap(), w.path("plain-file/state").to_str().unwrap());
    fs::write(&w.config, text).unwrap();
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (500, "error"), "{}", r.json);
    assert!(w.path("plain-file").is_file(), "nothing was created in its place");
}
