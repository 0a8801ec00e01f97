//! A config error says which line and key are wrong, never what the line holds: the
//! message reaches the web server's error log on every delivery, and `check`'s output.

use std::fs;

use crate::util::*;

/// Hook lines that break the config, each with the value that must never be shown.
const CASES: [(&str, &str); 9] = [
    ("secret = 98127346", "98127346"),
    ("secert = \"hunter2-typo-VALUE\"", "hunter2-typo"),
    ("secret = \"abc-unterminated-VALUE", "unterminated-VALUE"),
    ("secret = 'literal-unterminated-VALUE", "literal-unterminated"),
    ("secret = [\"in-an-array-VALUE\"]", "in-an-array"),
    ("secret = \"trailing-VALUE\" junk", "trailing-VALUE"),
    ("secret = bare-word-VALUE", "bare-word-VALUE"),
    ("env = { NETLIFY_AUTH_TOKEN = 55512345 }", "55512345"),
    ("token = \"unknown-key-VALUE\"", "unknown-key-VALUE"),
];

/// Writes a config whose line 5 is `line`, and sends a delivery: the answer is 500, and
/// neither it nor the error log line holds `value`, while the log names line 5.
fn delivery_names_line_5_but_not(w: &World, line: &str, value: &str) {
    let text = format!(
        "state_dir = {:?}\n[hooks.docs]\nprovider = \"gitee\"\nrepo = {:?}\n{line}\n",
        w.state.to_str().unwrap(),
        w.repo.to_str().unwrap()
    );
    fs::write(&w.config, text).unwrap();
    let r = w.cgi().run();
    assert_eq!(r.status, 500, "{line}: {}", r.json);
    let answer = String::from_utf8_lossy(&r.raw);
    assert!(
        !answer.contains(value) && !r.stderr.contains(value),
        "{line}:\n{answer}\n{}",
        r.stderr
    );
    assert!(r.stderr.contains("config.toml:5"), "{line}: {}", r.stderr);
}

#[test]
fn config_errors_never_echo_the_value() {
    let w = World::new("config-errors");
    for (line, value) in CASES {
        delivery_names_line_5_but_not(&w, line, value);

        for args in [&["check"][..], &["status", "docs"], &["run", "docs"], &["sign", "docs"]] {
            let out = w.cmd(args);
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!all.contains(value), "{line} {args:?}:\n{all}");
            assert!(all.contains("config.toml:5"), "{line} {args:?}:\n{all}");
            // the key is named, so the admin knows what to fix
            let key = line.split(' ').next().unwrap();
            assert!(all.contains(&format!("`{key}`")), "{line} {args:?}:\n{all}");
        }
    }
}

/// A pasted secret left on a line of its own is not a key: the error names the line only.
#[test]
fn a_pasted_secret_is_never_named_as_a_key() {
    let w = World::new("config-pasted");
    for line in [
        "Zm9vYmFyYmF6cXV4aHVudGVyMlNFQ1JFVDEyMzQ1Njc4OTAxMg",
        "Zm9vYmFyYmF6cXV4aHVudGVyMlNFQ1JFVDEyMzQ1Njc4OTAxMg== = 1",
        "Zm9vYmFyYmF6cXV4aHVudGVyMlNFQ1JFVDEyMzQ1Njc4OTAxMg = 1",
        "9f86d081884c7d659a2feaa0c55ad015 = 1",
    ] {
        let value = line.split(' ').next().unwrap().trim_end_matches('=');
        delivery_names_line_5_but_not(&w, line, value);
        let out = w.cmd(&["check"]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(value), "{line}:\n{all}");
        assert!(all.contains("config.toml:5"), "{line}:\n{all}");
    }
}
