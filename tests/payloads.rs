//! The real forge deliveries from shared/payloads (copied to tests/fixtures), byte for byte,
//! with the headers each forge sends, for every provider and mode.

use crate::util::*;

fn form(json: &[u8]) -> Vec<u8> {
    let mut out = b"payload=".to_vec();
    for &b in json {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// Each sample pushes to its own branch; a hook watching that branch builds.
fn world(name: &str, provider: &str, branch: &str, extra: &str) -> World {
    let w = World::new(name);
    w.push_to(branch, "index.md", "on branch\n");
    w.config(
        provider,
        &format!("branch = {branch:?}\nmode = \"sync\"\nsteps = [\"true\"]\n{extra}"),
    );
    w
}

#[test]
fn gitee_real_push_in_signing_mode() {
    let w = world("gitee-sign", "gitee", "release", "");
    let body = fixture("gitee-push.json");
    let ts = now_ms().to_string();
    let r = w
        .cgi()
        .header("User-Agent", "git-oschina-hook")
        .header("X-Gitee-Token", gitee_token(SECRET, &ts))
        .header("X-Gitee-Timestamp", &ts)
        .header("X-Gitee-Ping", "false")
        .header("X-Gitee-Event", "Push Hook")
        .header("X-Git-Oschina-Event", "Push Hook")
        .body(&body)
        .run();
    assert_eq!((r.status, r.word()), (200, "succeeded"), "{}", r.json);
    assert_eq!(w.status()["last"]["commit"], w.head().as_str());
}

#[test]
fn gitee_real_push_in_password_mode() {
    let w = world("gitee-password", "gitee", "release", "gitee_mode = \"password\"");
    let body = fixture("gitee-push.json");
    let send = |token: &str| {
        w.cgi()
            .header("X-Gitee-Token", token)
            .header("X-Gitee-Timestamp", "1622813858195")
            .header("X-Gitee-Ping", "false")
            .header("X-Gitee-Event", "Push Hook")
            .body(&body)
            .run()
    };
    assert_eq!(send(SECRET).word(), "succeeded");
    // replay does not apply: the password is the same every time (the commit is built and
    // live already, so there is nothing to do)
    assert_eq!(send(SECRET).word(), "unchanged");
    assert_eq!(send("wrong").status, 403);
    // as captured: the empty token of a hook without a password
    assert_eq!(send("").status, 401);
}

#[test]
fn github_real_push_json_and_form() {
    let w = world("github", "github", "master", "");
    let body = fixture("github-push.json");
    let r = w
        .cgi()
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("X-Hub-Signature-256", github_sig(SECRET, &body))
        .body(&body)
        .run();
    assert_eq!((r.status, r.word()), (200, "succeeded"), "{}", r.json);
    assert_eq!(r.json["delivery"], "72d3162e-cc78-11e3-81ab-4c9367dc0958");

    // form mode: the raw form body is what GitHub signs
    let f = form(&body);
    let r = w
        .cgi()
        .env("CONTENT_TYPE", "application/x-www-form-urlencoded")
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", github_sig(SECRET, &f))
        .body(&f)
        .run();
    assert_eq!((r.status, r.word()), (200, "unchanged"), "{}", r.json);

    // the signature of the JSON does not verify the form body
    let r = w
        .cgi()
        .env("CONTENT_TYPE", "application/x-www-form-urlencoded")
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", github_sig(SECRET, &body))
        .body(&f)
        .run();
    assert_eq!(r.status, 403);
    // a body changed by one byte does not verify
    let mut changed = body.clone();
    changed[10] ^= 1;
    let r = w
        .cgi()
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", github_sig(SECRET, &body))
        .body(&changed)
        .run();
    assert_eq!(r.status, 403);
    // SHA-1 only
    let r = w
        .cgi()
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature", "sha1=00")
        .body(&body)
        .run();
    assert_eq!(r.status, 401);
    assert!(r.json["message"].as_str().unwrap().contains("256"));
}

#[test]
fn gitlab_real_push() {
    let w = world("gitlab", "gitlab", "master", "");
    let body = fixture("gitlab-push.json");
    let r = w
        .cgi()
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", SECRET)
        .header("X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e")
        .body(&body)
        .run();
    assert_eq!((r.status, r.word()), (200, "succeeded"), "{}", r.json);
    assert_eq!(r.json["delivery"], "13792a34-cac6-4fda-95a8-c58e00a3954e");
    let r = w
        .cgi()
        .header("X-Gitlab-Event", "Push Hook")
        .header("X-Gitlab-Token", "nope")
        .body(&body)
        .run();
    assert_eq!(r.status, 403);
    let r = w.cgi().header("X-Gitlab-Event", "Push Hook").body(&body).run();
    assert_eq!(r.status, 401);
    let r = w
        .cgi()
        .header("X-Gitlab-Event", "Tag Push Hook")
        .header("X-Gitlab-Token", SECRET)
        .body(&body)
        .run();
    assert_eq!(r.word(), "ignored");
}

#[test]
fn gitea_forgejo_and_gogs_real_push() {
    let body = fixture("gitea-push.json");
    let w = world("gitea", "gitea", "develop", "");
    for header in ["X-Gitea-Signature", "X-Forgejo-Signature"] {
        let r = w
            .cgi()
            .header("X-Gitea-Event", "push")
            .header("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473")
            .header(header, gitea_sig(SECRET, &body))
            .body(&body)
            .run();
        // the second is the same commit, built and live already
        let want = if header == "X-Gitea-Signature" {
            "succeeded"
        } else {
            "unchanged"
        };
        assert_eq!((r.status, r.word()), (200, want), "{header}: {}", r.json);
    }
    // form mode: the signature is over the JSON in the payload field
    let r = w
        .cgi()
        .env("CONTENT_TYPE", "application/x-www-form-urlencoded")
        .header("X-Gitea-Event", "push")
        .header("X-Gitea-Signature", gitea_sig(SECRET, &body))
        .body(&form(&body))
        .run();
    assert_eq!((r.status, r.word()), (200, "unchanged"), "form: {}", r.json);
    let r = w
        .cgi()
        .header("X-Gitea-Event", "push")
        .header("X-Gitea-Signature", format!("sha256={}", gitea_sig(SECRET, &body)))
        .body(&body)
        .run();
    assert_eq!(r.status, 403, "a prefixed signature is malformed for gitea");

    let g = world("gogs", "gogs", "develop", "");
    let r = g
        .cgi()
        .header("X-Gogs-Event", "push")
        .header("X-Gogs-Signature", gitea_sig(SECRET, &body))
        .body(&body)
        .run();
    assert_eq!((r.status, r.word()), (200, "succeeded"), "gogs: {}", r.json);
    let r = g
        .cgi()
        .header("X-Gogs-Event", "push")
        .header("X-Gitea-Signature", gitea_sig(SECRET, &body))
        .body(&body)
        .run();
    assert_eq!(r.status, 401, "gogs reads X-Gogs-Signature");
}
