//! The secrets of every provider appear in no output: not in answers, syslog lines,
//! stderr, build logs, status.json, worker.log, the steps' environment, or the output of
//! `sign`, `status` and `check`. Neither does an expected signature of a refused delivery.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::util::*;

fn collect(dir: &std::path::Path, out: &mut String) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "remote.git" || name == "seed" || name == ".git" || name == "hook.secret" || name == "config.toml" {
            continue;
        }
        if p.is_dir() {
            collect(&p, out);
        } else if let Ok(b) = fs::read(&p) {
            out.push_str(&String::from_utf8_lossy(&b));
            out.push('\n');
        }
    }
}

#[test]
fn no_secret_of_any_provider_appears_in_any_output() {
    for (provider, extra) in PROVIDER_MODES {
        let w = World::new("secrets");
        let secret = format!("S3cr3t-{provider}-{}-{}", extra.len(), now_ms());
        fs::write(&w.secret_file, format!("{secret}\n")).unwrap();
        let sock_path = w.path("log.sock");
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let dump = w.path("step-env");
        let text = format!(
            "state_dir = {:?}\n[log]\nsyslog = {:?}\n[hooks.docs]\nprovider = {provider:?}\nsecret_file = {:?}\nrepo = {:?}\n{extra}\nsteps = [\"env >> {}\", [\"sh\", \"-c\", \"echo build-output; env\"]]\non_success = [\"sh\", \"-c\", \"env >> {}\"]\n",
            w.state.to_str().unwrap(),
            sock_path.to_str().unwrap(),
            w.secret_file.to_str().unwrap(),
            w.repo.to_str().unwrap(),
            dump.display(),
            dump.display()
        );
        fs::write(&w.config, text).unwrap();

        let body = br#"{"ref":"refs/heads/main","after":"abc"}"#;
        let mut outputs = String::new();
        let mut forbidden: Vec<String> = vec![secret.clone()];
        // a signed push, by the binary's own `sign` (async), then refused deliveries
        let b = w.path("body.json");
        fs::write(&b, body).unwrap();
        let (r, signed) = deliver_signed(&w, &b);
        outputs.push_str(&signed);
        assert_eq!(r.status, 202, "{provider} {extra}: {}", r.json);
        outputs.push_str(&String::from_utf8_lossy(&r.raw));
        outputs.push_str(&r.stderr);
        w.wait_idle();
        // a replay of the same signed delivery (gitee: duplicate; the others build again)
        let (r, _) = deliver_signed(&w, &b);
        outputs.push_str(&String::from_utf8_lossy(&r.raw));
        outputs.push_str(&r.stderr);
        w.wait_idle();

        // wrong signatures/tokens over a body nobody signed: what would have been right
        // must not be echoed
        let body = br#"{"ref":"refs/heads/main","after":"refused"}"#;
        let ts = now_ms().to_string();
        let wrong = match provider {
            "gitee" => {
                forbidden.push(gitee_token(&secret, &ts));
                w.cgi()
                    .header("X-Gitee-Token", "wrong")
                    .header("X-Gitee-Timestamp", &ts)
                    .header("X-Gitee-Event", "Push Hook")
            }
            "github" => {
                forbidden.push(github_sig(&secret, body)[7..].to_string());
                w.cgi()
                    .header("X-GitHub-Event", "push")
                    .header("X-Hub-Signature-256", github_sig("wrong", body))
            }
            "gitlab" => w
                .cgi()
                .header("X-Gitlab-Event", "Push Hook")
                .header("X-Gitlab-Token", "wrong"),
            "gitea" => {
                forbidden.push(gitea_sig(&secret, body));
                w.cgi()
                    .header("X-Gitea-Event", "push")
                    .header("X-Gitea-Signature", gitea_sig("wrong", body))
            }
            _ => {
                forbidden.push(gitea_sig(&secret, body));
                w.cgi()
                    .header("X-Gogs-Event", "push")
                    .header("X-Gogs-Signature", gitea_sig("wrong", body))
            }
        };
        let r = wrong.body(body).run();
        assert_eq!(r.status, 403, "{provider}: {}", r.json);
        outputs.push_str(&String::from_utf8_lossy(&r.raw));
        outputs.push_str(&r.stderr);

        for args in [&["status", "--json"][..], &["status"], &["check"], &["sign", "docs"]] {
            let o = w.cmd(args);
            outputs.push_str(&String::from_utf8_lossy(&o.stdout));
            outputs.push_str(&String::from_utf8_lossy(&o.stderr));
        }
        let mut buf = [0u8; 8192];
        while let Ok(n) = sock.recv(&mut buf) {
            outputs.push_str(&String::from_utf8_lossy(&buf[..n]));
            outputs.push('\n');
        }
        collect(&w.dir, &mut outputs);
        assert!(
            outputs.contains("build-output") && outputs.contains("DEPLOY_HOOK_NAME=docs"),
            "the collection holds the build's output"
        );
        assert!(
            outputs.contains("delivery hook=docs"),
            "the collection holds the syslog lines"
        );
        for f in &forbidden {
            assert!(
                !outputs.contains(f.as_str()),
                "{provider} {extra}: {f:?} appeared in an output"
            );
        }
    }
}
