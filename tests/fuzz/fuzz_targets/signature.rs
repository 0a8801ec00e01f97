//! Signature headers of every provider, from arbitrary bytes, against a fixed secret.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use deploy_hook::fuzzing::Env;
use libfuzzer_sys::fuzz_target;

const PROVIDERS: [&str; 6] = ["gitee", "gitee-password", "github", "gitlab", "gitea", "gogs"];
const HEADERS: [&str; 8] = [
    "HTTP_X_GITEE_TOKEN",
    "HTTP_X_GITEE_TIMESTAMP",
    "HTTP_X_HUB_SIGNATURE_256",
    "HTTP_X_GITLAB_TOKEN",
    "HTTP_X_GITEA_SIGNATURE",
    "HTTP_X_GOGS_SIGNATURE",
    "HTTP_X_GITEE_PING",
    "HTTP_X_GITHUB_EVENT",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let provider = PROVIDERS[sel as usize % PROVIDERS.len()];
    let (name, mode) = match provider.split_once('-') {
        Some((p, m)) => (p, format!("gitee_mode = \"{m}\"\n")),
        None => (provider, String::new()),
    };
    let text = format!("[hooks.h]\nprovider = \"{name}\"\nsecret = \"fuzz-secret\"\nrepo = \"/srv/x\"\n{mode}");
    // values separated by 0xff, in HEADERS order; what is left is the body
    let mut parts = rest.split(|b| *b == 0xff);
    let mut env = Env::new();
    for h in HEADERS {
        if let Some(v) = parts.next() {
            if !v.contains(&0) {
                env.insert(OsString::from(h), OsString::from_vec(v.to_vec()));
            }
        }
    }
    env.insert("HTTP_X_GITEE_EVENT".into(), "Push Hook".into());
    env.insert("HTTP_X_GITLAB_EVENT".into(), "Push Hook".into());
    env.insert("HTTP_X_GITEA_EVENT".into(), "push".into());
    env.insert("HTTP_X_GOGS_EVENT".into(), "push".into());
    let body: Vec<u8> = parts.flatten().copied().collect();
    deploy_hook::fuzzing::verify(&text, b"fuzz-secret", &env, body, 1_700_000_000_000);
});
