//! CGI request parsing: environment variables and a body from arbitrary bytes.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use deploy_hook::fuzzing::Env;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // NAME=VALUE lines, then a blank line, then the body.
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let mut env = Env::new();
    for line in head.split(|b| *b == b'\n') {
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            let (k, v) = (&line[..eq], &line[eq + 1..]);
            if !k.contains(&0) && !v.contains(&0) && !k.is_empty() {
                env.insert(OsString::from_vec(k.to_vec()), OsString::from_vec(v.to_vec()));
            }
        }
    }
    deploy_hook::fuzzing::request(&env, body);
});
