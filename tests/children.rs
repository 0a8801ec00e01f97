//! How the children of a hook run: the environment they get in a build and outside one
//! (`check`, `status`), what becomes of their output, and what is left of them when they
//! are stopped.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::util::*;

fn script(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The environments the wrapper scripts wrote into `dir`, by file name prefix: each a map
/// without the build's own `DEPLOY_HOOK_*`, with whether it had them.
fn dumps(dir: &Path, prefix: &str) -> Vec<(BTreeMap<String, String>, bool)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let text = fs::read_to_string(e.path()).unwrap();
        let mut env = BTreeMap::new();
        let mut build = false;
        for line in text.lines() {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            if k.starts_with("DEPLOY_HOOK_") {
                build = true;
            } else {
                env.insert(k.to_string(), v.to_string());
            }
        }
        out.push((env, build));
    }
    out
}

/// `check` runs git and ssh with the environment the build runs them with (the build adds
/// only its `DEPLOY_HOOK_*`): a hook whose remote is reached only through its `env` (a
/// git config given as `GIT_CONFIG_*`) passes check, and the build fetches from it; the
/// web host's ssh gets the same variables in check as in the build.
#[test]
fn check_runs_git_and_ssh_with_the_environment_of_the_build() {
    requires!(Sshd);
    let w = World::new("children-env");
    let dump = w.path("dump");
    fs::create_dir_all(&dump).unwrap();
    let bin = w.path("bin");
    let git = crate::tier::find_system_program("git").unwrap();
    script(
        &bin.join("git"),
        &format!(
            "#!/bin/sh\nenv | sort > \"$DUMP/git-$1-$$\"\nexec {} \"$@\"\n",
            git.display()
        ),
    );
    // An ssh that records its environment and runs the command here: the web host is a
    // folder of this machine.
    script(
        &bin.join("fake-ssh"),
        "#!/bin/sh\nenv | sort > \"$DUMP/ssh-$$\"\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in\n    -o|-F|-p|-i|-l) shift 2 ;;\n    --) shift; break ;;\n    -*) shift ;;\n    *) break ;;\n  esac\ndone\nshift\nexec \"$@\"\n",
    );
    // The checkout knows its remote only by a name that the hook's env resolves.
    git_in(&w.repo, &["remote", "set-url", "origin", "forge:remote.git"]);
    let site = w.path("www/site");
    fs::create_dir_all(site.parent().unwrap()).unwrap();
    w.config(
        "gitee",
        &format!(
            "path = {path}\nsteps = [[\"sh\", \"-c\", \"mkdir -p out && echo hi > out/index.html\"]]\n\
             [hooks.docs.env]\nDUMP = {dump}\nGIT_CONFIG_COUNT = \"1\"\nGIT_CONFIG_KEY_0 = {key}\nGIT_CONFIG_VALUE_0 = \"forge:\"\n\
             [hooks.docs.publish]\nfrom = \"out\"\nhosts = [{host}]\nssh = [{ssh}]\n",
            path = toml_str(&format!("{}:/usr/bin:/bin", bin.display())),
            dump = toml_str(dump.to_str().unwrap()),
            key = toml_str(&format!("url.{}/.insteadOf", w.dir.display())),
            host = toml_str(&format!("web1:{}", site.display())),
            ssh = toml_str(bin.join("fake-ssh").to_str().unwrap()),
        ),
    );

    let out = w.cmd(&["check"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("remote origin answers"), "{text}");
    let check_git = dumps(&dump, "git-ls-remote");
    let check_ssh = dumps(&dump, "ssh-");
    assert!(!check_git.is_empty() && !check_ssh.is_empty(), "{text}");
    for f in fs::read_dir(&dump).unwrap().flatten() {
        fs::remove_file(f.path()).unwrap();
    }

    let c = w.push("index.md", "two\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    let last = w.status()["last"].clone();
    assert_eq!(
        last["result"],
        "succeeded",
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        w.log_text(&last)
    );
    assert_eq!(last["commit"], c.as_str());
    assert_eq!(fs::read_to_string(site.join("index.html")).unwrap(), "hi\n");
    let build_git = dumps(&dump, "git-fetch");
    let build_ssh = dumps(&dump, "ssh-");
    assert!(!build_git.is_empty() && !build_ssh.is_empty());
    for (what, check, build) in [("git", &check_git, &build_git), ("ssh", &check_ssh, &build_ssh)] {
        assert!(
            check.iter().all(|(_, b)| !b),
            "check's {what} has the build's own variables"
        );
        assert!(
            build.iter().all(|(_, b)| *b),
            "the build's {what} has its DEPLOY_HOOK_*"
        );
        assert_eq!(
            check[0].0, build[0].0,
            "check's {what} sees another environment than the build's"
        );
    }
    assert_eq!(check_git[0].0.get("GIT_TERMINAL_PROMPT").map(String::as_str), Some("0"));
}

fn git_in(dir: &Path, args: &[&str]) {
    git(dir, args);
}

/// A process alive (not a zombie) whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && pid_alive(pid) {
            found.push(pid);
        }
    }
    found
}

/// A forge that takes connections and never answers: its port, and a channel that says
/// when it took one.
fn hung_forge() -> (u16, std::sync::mpsc::Receiver<()>) {
    let forge = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = forge.local_addr().unwrap().port();
    let (took, taken) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in forge.incoming() {
            held.push(c);
            let _ = took.send(());
        }
    });
    (port, taken)
}

/// `deploy-hook init docs` cloning from `port`, with its config in the test's folder.
fn init_cloning(w: &World, port: u16, timeout: &str) -> (std::process::Command, std::path::PathBuf) {
    let etc = w.path("etc");
    fs::create_dir_all(&etc).unwrap();
    let config = etc.join("config.toml");
    fs::write(
        &config,
        format!("state_dir = {:?}\n\n[log]\nsyslog = \"\"\n", w.state.to_str().unwrap()),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}/hung.git");
    let mut init = std::process::Command::new(BIN);
    init.args([
        "init",
        "docs",
        "--provider",
        "gitee",
        "--repo-url",
        &url,
        "--timeout",
        timeout,
    ])
    .arg("--dir")
    .arg(w.path("srv/docs"))
    .arg("--config")
    .arg(&config)
    .env_clear()
    .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    .stdin(std::process::Stdio::null());
    (init, config)
}

/// Kills what is left of a clone from the hung forge when a test ends, passed or not.
struct Leftovers(String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for pid in processes_with(&self.0) {
            // SAFETY: kill(2) on a pid; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// init's clone that hangs is stopped after `--timeout` with everything it started: the
/// clone's http helper (`git-remote-http`) used to outlive it, holding the connection.
#[test]
fn a_hung_clone_is_stopped_after_the_timeout_with_its_helper() {
    requires!(Root, WwwData);
    let w = World::new("children-init-timeout");
    let (port, _) = hung_forge();
    let needle = format!("127.0.0.1:{port}");
    let _leftovers = Leftovers(needle.clone());
    let (mut init, config) = init_cloning(&w, port, "2");
    let out = init.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("did not finish in 2 s"), "{text}");
    assert!(!fs::read_to_string(&config).unwrap().contains("[hooks.docs]"), "{text}");
    wait_for("the clone's helper to end", Duration::from_secs(10), || {
        processes_with(&needle).is_empty()
    });
}

/// An init interrupted during its clone (Ctrl-C on a terminal reaches init, not the clone,
/// which runs in a group of its own) stops the whole clone, and dies of the signal as it
/// would have. It used to die alone: git died with it, but the clone's http helper stayed,
/// holding the connection.
#[test]
fn an_interrupted_init_stops_its_clone_with_its_helper() {
    use std::os::unix::process::ExitStatusExt;
    requires!(Root, WwwData);
    let w = World::new("children-init-sigint");
    let (port, taken) = hung_forge();
    let needle = format!("127.0.0.1:{port}");
    let _leftovers = Leftovers(needle.clone());
    let (mut init, config) = init_cloning(&w, port, "600");
    // SIGINT as a terminal leaves it: a suite started in the background by a shell without
    // job control inherits SIGINT ignored, and init rightly keeps an ignored signal ignored.
    // SAFETY: signal(2) in the child between fork and exec, async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut init, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let init = init
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    taken
        .recv_timeout(Duration::from_secs(30))
        .expect("the clone to connect to the forge");
    // SAFETY: kill(2) on our child's pid; no memory is involved.
    unsafe {
        libc::kill(init.id() as i32, libc::SIGINT);
    }
    let out = init.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.signal(), Some(libc::SIGINT), "{:?}: {text}", out.status);
    assert!(!fs::read_to_string(&config).unwrap().contains("[hooks.docs]"), "{text}");
    wait_for("the clone's helper to end", Duration::from_secs(10), || {
        processes_with(&needle).is_empty()
    });
}

/// A step that prints far more than `log_max_bytes` leaves a log under the cap (and a
/// small margin), with the build's start, the step's first and last lines, a line that says
/// what was cut, and the result.
#[test]
fn a_step_that_prints_far_more_than_the_cap_leaves_a_log_with_its_start_and_end() {
    let w = World::new("children-log-cap");
    let cap = 65536;
    w.config(
        "gitee",
        &format!(
            "log_max_bytes = {cap}\nsteps = [\"echo FIRST-LINE; yes 'a line the step prints again and again' | head -n 1500000; echo LAST-LINE; exit 3\"]\n"
        ),
    );
    let out = w.cmd(&["run", "docs", "--wait"]);
    let last = w.status()["last"].clone();
    assert_eq!(last["result"], "failed", "{}", String::from_utf8_lossy(&out.stderr));
    let log = fs::read(last["log"].as_str().unwrap()).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(log.len() <= cap + 1024, "the log has {} bytes", log.len());
    assert!(
        text.contains("deploy-hook build ") && text.contains("\nFIRST-LINE\n"),
        "{text}"
    );
    assert!(text.contains("\nLAST-LINE\n-> exit status 3"), "{text}");
    assert!(text.contains("bytes of this output cut here"), "{text}");
    assert!(text.contains("result: failed at "), "{text}");
}
