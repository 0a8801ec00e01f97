//! Every row of the table of answers (docs/reference.md), through the real binary in CGI mode.

use std::fs;
use std::time::Duration;

use crate::util::*;

/// A hook whose build is a quick marker file, so a 202 can be followed to its build.
fn quick(w: &World, extra: &str) {
    w.config(
        "gitee",
        &format!("steps = [\"echo built > {}\"]\n{extra}", w.path("built").display()),
    );
}

#[test]
fn push_async_is_queued_then_built_at_the_head() {
    let w = World::new("async");
    quick(&w, "");
    let head = w.push("index.md", "second\n");
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (202, "queued"), "{}", r.json);
    assert_eq!(r.json["hook"], "docs");
    assert!(!r.json["delivery"].as_str().unwrap().is_empty());
    let s = w.wait_idle();
    assert_eq!(s["last"]["result"], "succeeded", "{s}");
    assert_eq!(s["last"]["commit"], head.as_str());
    assert_eq!(s["last"]["delivery"], r.json["delivery"]);
    assert_eq!(fs::read_to_string(w.repo.join("index.md")).unwrap(), "second\n");
    assert!(w.path("built").exists());
}

#[test]
fn push_sync_succeeded_and_failed() {
    let w = World::new("sync");
    w.config("gitee", "mode = \"sync\"\nsteps = [\"true\"]");
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (200, "succeeded"), "{}", r.json);
    assert_eq!(w.status()["last"]["result"], "succeeded");

    w.config(
        "gitee",
        "mode = \"sync\"\nsteps = [\"true\", [\"false\"], \"touch never\"]",
    );
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (500, "failed"), "{}", r.json);
    assert!(r.json["message"].as_str().unwrap().contains("false"), "{}", r.json);
    let s = w.status();
    assert_eq!(s["last"]["result"], "failed");
    assert_eq!(s["last"]["failed_step"], "false");
    assert!(!w.repo.join("never").exists(), "a step after the failed one ran");
}

#[test]
fn push_sync_timed_out_is_failed() {
    let w = World::new("sync-timeout");
    w.config(
        "gitee",
        "mode = \"sync\"\nstep_timeout_secs = 1\nsteps = [\"sleep 30\"]",
    );
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (500, "failed"), "{}", r.json);
    assert!(r.json["message"].as_str().unwrap().contains("timed out"), "{}", r.json);
    assert_eq!(w.status()["last"]["result"], "timed_out");
}

#[test]
fn pings_are_answered_pong_and_build_nothing() {
    let w = World::new("ping");
    quick(&w, "");
    let r = w
        .gitee_push()
        .header("X-Gitee-Ping", "true")
        .header("X-Gitee-Event", "push_hooks")
        .run();
    assert_eq!((r.status, r.word()), (200, "pong"), "{}", r.json);

    w.config("github", "");
    let body = fixture("github-push.json");
    let r = w
        .cgi()
        .header("X-GitHub-Event", "ping")
        .header("X-Hub-Signature-256", github_sig(SECRET, &body))
        .body(&body)
        .run();
    assert_eq!((r.status, r.word()), (200, "pong"), "{}", r.json);
    assert!(!w.hook_dir().join("pending").exists());
    assert!(w.status()["last"].is_null());
}

#[test]
fn what_builds_nothing_writes_no_replay_record() {
    let w = World::new("ping-record");
    quick(&w, "");
    let ts = (now_ms() - 1000).to_string();
    let ping = || {
        w.cgi()
            .header("X-Gitee-Token", gitee_token(SECRET, &ts))
            .header("X-Gitee-Timestamp", &ts)
            .header("X-Gitee-Ping", "true")
            .header("X-Gitee-Event", "push_hooks")
            .body(br#"{"hook_name":"push_hooks"}"#)
            .run()
    };
    // a replayed ping is answered pong again: it builds nothing
    for _ in 0..2 {
        let r = ping();
        assert_eq!((r.status, r.word()), (200, "pong"), "{}", r.json);
    }
    let r = w
        .gitee_push()
        .body(br#"{"ref":"refs/heads/other","after":"1111111111111111111111111111111111111111"}"#)
        .run();
    assert_eq!((r.status, r.word()), (200, "ignored"), "{}", r.json);
    assert!(
        !w.hook_dir().join("seen-tokens").exists(),
        "a delivery that builds nothing wrote a replay record"
    );
}

/// How many writes the CGI process itself (not the worker it starts) waits for the disk
/// for, and its reply.
fn syncs(w: &World, cgi: Cgi) -> (Reply, usize) {
    let trace = w.path(&format!("trace-{}", now_ms()));
    let r = cgi
        .wrap(&[
            "strace",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,sync,syncfs,sync_file_range,msync",
            "-o",
            trace.to_str().unwrap(),
        ])
        .run();
    let calls = fs::read_to_string(&trace).unwrap();
    let _ = fs::remove_file(&trace);
    (r, calls.lines().filter(|l| l.contains("sync")).count())
}

#[test]
fn a_delivery_waits_for_the_disk_at_most_once() {
    requires!(Strace);
    let w = World::new("syncs");
    let (record, gate) = (w.path("record"), w.path("gate"));
    w.config(
        "gitee",
        &format!(
            "on_busy = \"supersede\"\nsteps = [{}]",
            toml_str(&gated_step(&record, &gate))
        ),
    );
    let ts = (now_ms() - 1000).to_string();
    let ping = w
        .gitee_push()
        .header("X-Gitee-Token", gitee_token(SECRET, &ts))
        .header("X-Gitee-Timestamp", &ts)
        .header("X-Gitee-Ping", "true");
    let (r, n) = syncs(&w, ping);
    assert_eq!((r.word(), n), ("pong", 0), "{}", r.json);
    let other = w
        .gitee_push()
        .body(br#"{"ref":"refs/heads/other","after":"1111111111111111111111111111111111111111"}"#);
    let (r, n) = syncs(&w, other);
    assert_eq!((r.word(), n), ("ignored", 0), "{}", r.json);
    let (r, n) = syncs(&w, w.gitee_push().header("X-Gitee-Token", "d3Jvbmc="));
    assert_eq!((r.status, n), (403, 0), "{}", r.json);
    // accepted: the first starts a build, the second comes while it runs and stops it
    let (r, n) = syncs(&w, w.gitee_push());
    assert_eq!((r.word(), n), ("queued", 1), "{}", r.json);
    wait_for("the build to start", Duration::from_secs(30), || {
        fs::read_to_string(&record).is_ok_and(|t| t.contains("start"))
    });
    let (r, n) = syncs(&w, w.gitee_push());
    assert_eq!((r.word(), n), ("queued", 1), "{}", r.json);
    assert!(
        r.json["message"].as_str().unwrap().contains("being stopped"),
        "{}",
        r.json
    );
    fs::write(&gate, "").unwrap();
    w.wait_idle();
    // a replay: answered from what is recorded, nothing written
    let ts = (now_ms() - 500).to_string();
    let push = |ts: &str| {
        w.gitee_push()
            .header("X-Gitee-Token", gitee_token(SECRET, ts))
            .header("X-Gitee-Timestamp", ts)
    };
    assert_eq!(push(&ts).run().word(), "queued");
    w.wait_idle();
    let (r, n) = syncs(&w, push(&ts));
    assert_eq!((r.word(), n), ("duplicate", 0), "{}", r.json);
}

#[test]
fn other_branches_tags_and_events_are_ignored() {
    let w = World::new("ignored");
    quick(&w, "");
    let cases: [(&str, &[u8]); 4] = [
        ("Push Hook", br#"{"ref":"refs/heads/dev"}"#),
        ("Tag Push Hook", br#"{"ref":"refs/tags/v1.0"}"#),
        ("Push Hook", br#"{"ref":"refs/tags/v1.0"}"#),
        ("Merge Request Hook", br#"{"object_kind":"merge_request"}"#),
    ];
    for (event, body) in cases {
        let r = w.gitee_push().header("X-Gitee-Event", event).body(body).run();
        assert_eq!((r.status, r.word()), (200, "ignored"), "{event}: {}", r.json);
    }
    let r = w
        .gitee_push()
        .body(br#"{"ref":"refs/heads/main","deleted":true}"#)
        .run();
    assert_eq!((r.status, r.word()), (200, "ignored"), "{}", r.json);
    assert!(w.status()["last"].is_null(), "an ignored delivery started a build");
    assert!(!w.path("built").exists());
}

#[test]
fn a_replayed_gitee_token_is_a_duplicate() {
    let w = World::new("replay");
    quick(&w, "mode = \"sync\"");
    let ts = now_ms().to_string();
    let tok = gitee_token(SECRET, &ts);
    let send = |token: &str| {
        w.gitee_push()
            .header("X-Gitee-Token", token)
            .header("X-Gitee-Timestamp", &ts)
            .run()
    };
    let r = send(&tok);
    assert_eq!(r.word(), "succeeded", "{}", r.json);
    let r = send(&tok);
    assert_eq!((r.status, r.word()), (200, "duplicate"), "{}", r.json);
    // the same token percent-encoded is the same token
    let encoded = tok.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    let r = send(&encoded);
    assert_eq!((r.status, r.word()), (200, "duplicate"), "{}", r.json);
    assert_eq!(w.history().len(), 1, "a replay started a build");
}

#[test]
fn reject_answers_429_while_building() {
    let w = World::new("reject");
    let (record, gate) = (w.path("record"), w.path("gate"));
    w.config(
        "gitee",
        &format!(
            "on_busy = \"reject\"\nsteps = [{}]",
            toml_str(&gated_step(&record, &gate))
        ),
    );
    assert_eq!(w.gitee_push().run().status, 202);
    wait_for("the build to start", std::time::Duration::from_secs(30), || {
        record.exists()
    });
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (429, "busy"), "{}", r.json);
    assert!(r.head.contains("Retry-After"));
    assert!(!w.hook_dir().join("pending").exists(), "a rejected delivery was queued");
    fs::write(&gate, "").unwrap();
    let s = w.wait_idle();
    assert_eq!(w.history().len(), 1, "{s}");
    assert_eq!(w.gitee_push().run().status, 202, "free again after the build");
    w.wait_idle();
}

#[test]
fn methods_other_than_post_get_405_with_allow() {
    let w = World::new("method");
    quick(&w, "");
    for m in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"] {
        let r = w.cgi().env("REQUEST_METHOD", m).content_length("").run();
        assert_eq!((r.status, r.word()), (405, "error"), "{m}");
        assert!(r.head.contains("Allow: POST"), "{}", r.head);
        assert_eq!(r.json["hook"], "docs", "the answer and the log name the hook");
    }
}

#[test]
fn missing_signature_is_401_wrong_is_403() {
    let w = World::new("auth");
    quick(&w, "");
    let body = br#"{"ref":"refs/heads/main"}"#;
    let r = w.cgi().header("X-Gitee-Event", "Push Hook").body(body).run();
    assert_eq!((r.status, r.word()), (401, "unauthorized"), "{}", r.json);
    let r = w.gitee_push().header("X-Gitee-Token", "").run();
    assert_eq!(r.status, 401, "empty token");
    let r = w.gitee_push().unset("HTTP_X_GITEE_TIMESTAMP").run();
    assert_eq!(r.status, 401, "no timestamp in signing mode");

    let ts = now_ms().to_string();
    let wrong = gitee_token("another secret", &ts);
    let r = w
        .gitee_push()
        .header("X-Gitee-Token", &wrong)
        .header("X-Gitee-Timestamp", &ts)
        .run();
    assert_eq!((r.status, r.word()), (403, "forbidden"), "{}", r.json);
    let r = w.gitee_push().header("X-Gitee-Token", SECRET).run();
    assert_eq!(r.status, 403, "the password sent to a signing hook");

    let old = (now_ms() - 3_700_000).to_string();
    let r = w
        .gitee_push()
        .header("X-Gitee-Token", gitee_token(SECRET, &old))
        .header("X-Gitee-Timestamp", &old)
        .run();
    assert_eq!((r.status, r.word()), (403, "forbidden"), "stale timestamp: {}", r.json);
    let r = w.gitee_push().header("X-Gitee-Timestamp", "yesterday").run();
    assert_eq!(r.status, 400, "timestamp not a number");

    let all = format!("{}{}", r.stderr, String::from_utf8_lossy(&r.raw));
    assert!(!all.contains(SECRET));
    assert!(w.status()["last"].is_null(), "an unverified delivery started a build");
}

#[test]
fn non_utf8_headers_do_not_panic() {
    use std::os::unix::ffi::OsStringExt;
    let w = World::new("non-utf8");
    quick(&w, "");
    let bad = std::ffi::OsString::from_vec(vec![0xff, 0xfe, b'a']);
    let r = w.gitee_push().header("X-Gitee-Token", bad.clone()).run();
    assert_eq!(r.status, 403);
    let r = w.gitee_push().header("X-Gitee-Timestamp", bad.clone()).run();
    assert_eq!(r.status, 400);
    let r = w.gitee_push().env("PATH_INFO", bad.clone()).run();
    assert_eq!(r.status, 404);
    let r = w.gitee_push().header("X-Gitee-Event", bad).run();
    assert_eq!(r.status, 400);
}

#[test]
fn unknown_hooks_are_404() {
    let w = World::new("unknown");
    quick(&w, "");
    for path in ["/blog", "/../docs", "/docs/x", "/do cs"] {
        let r = w.gitee_push().env("PATH_INFO", path).run();
        assert_eq!((r.status, r.word()), (404, "error"), "{path}");
    }
    let r = w.gitee_push().unset("PATH_INFO").env("QUERY_STRING", "hook=blog").run();
    assert_eq!(r.status, 404);
    // the hook by query, as nginx sends it without PATH_INFO
    let r = w.gitee_push().unset("PATH_INFO").env("QUERY_STRING", "hook=docs").run();
    assert_eq!(r.status, 202, "{}", r.json);
    // the only hook when none is named
    let r = w.gitee_push().unset("PATH_INFO").run();
    assert_eq!(r.status, 202, "{}", r.json);
    w.wait_idle();
}

#[test]
fn bodies_over_the_limit_are_413() {
    let w = World::new("large");
    w.config_with("max_body_bytes = 100", "gitee", "steps = [\"true\"]");
    let big = format!(r#"{{"ref":"refs/heads/main","pad":"{}"}}"#, "x".repeat(200));
    let r = w.gitee_push().body(big.as_bytes()).run();
    assert_eq!((r.status, r.word()), (413, "error"), "by CONTENT_LENGTH");
    let r = w.gitee_push().body(big.as_bytes()).chunked().run();
    assert_eq!(r.status, 413, "read to EOF (Apache's chunked body)");
    let r = w.gitee_push().body(big.as_bytes()).content_length("").run();
    assert_eq!(r.status, 413, "empty CONTENT_LENGTH");
    let r = w.gitee_push().content_length("99999999999").run();
    assert_eq!(r.status, 413, "announced, not sent");
    // a small chunked body is read to EOF and accepted
    let r = w.gitee_push().chunked().run();
    assert_eq!(r.status, 202, "{}", r.json);
    w.wait_idle();
}

#[test]
fn malformed_bodies_and_types_are_400_and_415() {
    let w = World::new("malformed");
    w.config("github", "steps = [\"true\"]");
    let signed = |body: &[u8]| {
        w.cgi()
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature-256", github_sig(SECRET, body))
            .body(body)
    };
    assert_eq!(signed(b"not json").run().status, 400);
    assert_eq!(signed(b"{\"no_ref\":1}").run().status, 400);
    assert_eq!(signed(b"").run().status, 400);
    assert_eq!(signed(b"[1,2]").run().status, 400);
    let r = signed(b"{\"ref\":\"refs/heads/main\"}")
        .env("CONTENT_TYPE", "text/plain")
        .run();
    assert_eq!((r.status, r.word()), (415, "error"));
    let r = signed(b"{\"ref\":\"refs/heads/main\"}").content_length("12abc").run();
    assert_eq!(r.status, 400, "bad CONTENT_LENGTH");
    let r = signed(b"{\"ref\":\"refs/heads/main\"}").content_length("500").run();
    assert_eq!(r.status, 400, "short body");
    let r = signed(b"{\"ref\":\"refs/heads/main\"}")
        .unset("HTTP_X_GITHUB_EVENT")
        .run();
    assert_eq!(r.status, 400, "no event header");
    assert!(w.status()["last"].is_null());
}

#[test]
fn config_and_state_problems_are_500_without_detail() {
    let w = World::new("config-500");
    fs::write(&w.config, "state_dir = [1]\n").unwrap();
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (500, "error"), "{}", r.json);
    let msg = r.json["message"].as_str().unwrap();
    assert!(
        !msg.contains(w.dir.to_str().unwrap()),
        "a server path in the answer: {msg}"
    );
    assert!(
        r.stderr.contains("state_dir"),
        "the detail goes to the log: {}",
        r.stderr
    );

    let r = w.gitee_push().env("DEPLOY_HOOK_CONFIG", w.path("missing.toml")).run();
    assert_eq!(r.status, 500);

    // a state dir that cannot be created (below a regular file)
    fs::write(w.path("file"), "").unwrap();
    let text = format!(
        "state_dir = {:?}\n[log]\nsyslog = \"\"\n[hooks.docs]\nprovider = \"gitee\"\nsecret_file = {:?}\nrepo = {:?}\n",
        w.path("file/state").to_str().unwrap(),
        w.secret_file.to_str().unwrap(),
        w.repo.to_str().unwrap()
    );
    fs::write(&w.config, text).unwrap();
    let r = w.gitee_push().run();
    assert_eq!((r.status, r.word()), (500, "error"), "{}", r.json);
    assert!(!r.json["message"].as_str().unwrap().contains("file/state"));

    // a missing secret file
    w.config("gitee", "");
    fs::remove_file(&w.secret_file).unwrap();
    let r = w.gitee_push().run();
    assert_eq!(r.status, 500);
    assert!(r.stderr.contains("secret_file"), "{}", r.stderr);
}

#[test]
fn the_answer_is_complete_even_when_nothing_is_understood() {
    let w = World::new("garbage");
    quick(&w, "");
    let r = w.cgi().env("REQUEST_METHOD", "").run();
    assert_eq!(r.status, 405);
    let r = w
        .cgi()
        .env("REQUEST_METHOD", "GET")
        .env("PATH_INFO", "/blog")
        .content_length("")
        .run();
    assert_eq!(r.status, 404, "an unknown hook is unknown whatever the method");
    let r = w
        .cgi()
        .env("REQUEST_METHOD", "POST")
        .unset("CONTENT_TYPE")
        .body(b"\x00\x01")
        .run();
    assert_eq!(r.status, 401);
}

#[test]
fn syslog_gets_one_line_per_delivery_and_no_secret() {
    use std::os::unix::net::UnixDatagram;
    let w = World::new("syslog");
    let sock_path = w.path("log.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let text = format!(
        "state_dir = {:?}\n[log]\nsyslog = {:?}\nident = \"dh-test\"\n[hooks.docs]\nprovider = \"gitee\"\nsecret_file = {:?}\nrepo = {:?}\nsteps = [\"true\"]\nmode = \"sync\"\n",
        w.state.to_str().unwrap(),
        sock_path.to_str().unwrap(),
        w.secret_file.to_str().unwrap(),
        w.repo.to_str().unwrap()
    );
    fs::write(&w.config, text).unwrap();
    let ts = now_ms().to_string();
    let token = gitee_token(SECRET, &ts);
    let r = w
        .gitee_push()
        .header("X-Gitee-Token", &token)
        .header("X-Gitee-Timestamp", &ts)
        .run();
    assert_eq!(r.status, 200, "{}", r.json);
    assert!(
        r.stderr.is_empty(),
        "with syslog reachable nothing goes to stderr: {}",
        r.stderr
    );
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while lines.len() < 3 {
        let n = sock.recv(&mut buf).expect("a syslog line");
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all = lines.join("\n");
    assert!(
        lines[0].contains("dh-test[") && lines[0].contains("build start hook=docs"),
        "{all}"
    );
    assert!(
        all.contains("build end hook=docs") && all.contains("result=succeeded"),
        "{all}"
    );
    assert!(
        all.contains("delivery hook=docs provider=gitee") && all.contains("status=200"),
        "{all}"
    );
    assert!(
        lines[0].starts_with("<30>"),
        "facility daemon, severity info: {}",
        lines[0]
    );
    assert!(!all.contains(SECRET) && !all.contains(&token), "{all}");
}

#[test]
fn a_url_that_names_no_hook_on_a_server_with_several_says_how_to_name_one() {
    let w = World::new("names-no-hook");
    // Two hooks: `/hooks/` alone cannot mean either.
    w.config(
        "gitee",
        &format!(
            "steps = [\"true\"]\n[hooks.blog]\nprovider = \"github\"\nsecret_file = {:?}\nrepo = {:?}\nsteps = [\"true\"]\n",
            w.secret_file.to_str().unwrap(),
            w.repo.to_str().unwrap()
        ),
    );
    let r = w.cgi().unset("PATH_INFO").body(b"{}").run();
    assert_eq!(r.status, 404, "{}", r.json);
    let message = r.json["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        message, "the URL names no hook; name one: /NAME or ?hook=NAME",
        "{}",
        r.json
    );
    // A name that is not there still says which.
    let r = w.cgi().env("PATH_INFO", "/wiki").body(b"{}").run();
    assert_eq!(r.status, 404);
    assert_eq!(r.json["message"], "no hook named \"wiki\" is configured here");
}
