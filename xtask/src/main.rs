//! Development tasks for deploy-hook, kept out of its binary so the program a web server
//! starts per delivery carries none of this.
//!
//! `cargo xtask generate [DIR]` writes the man page (`deploy-hook.1`) and the bash completion
//! (`deploy-hook.bash`) into DIR (default `debian/generated`), from the same clap definition
//! that `deploy-hook --help` prints, and the config's man page (`deploy-hook.conf.5`) from
//! docs/config.md. The Debian package ships those files; a test here fails when the
//! committed copies drift from their sources.

mod config_page;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use roff::{bold, italic, roman, Roff};

/// Where the generated files live in the repository (cargo-deb takes them from here).
const GENERATED: &str = "debian/generated";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("generate") if args.len() <= 2 => {
            let dir = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join(GENERATED));
            match write_all(&dir) {
                Ok(()) => {
                    println!("wrote {}", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("xtask generate: {}: {e}", dir.display());
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: cargo xtask generate [DIR]   (default DIR: {GENERATED})");
            ExitCode::from(2)
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The generated files, by name.
pub fn generate() -> Result<Vec<(&'static str, Vec<u8>)>, String> {
    let cmd = deploy_hook::generate::command();
    let version = cmd.get_version().unwrap_or_default();
    Ok(vec![
        ("deploy-hook.1", man_page()),
        ("deploy-hook.bash", bash_completion()),
        (
            "deploy-hook.conf.5",
            config_page::man_page(config_page::SOURCE, version)?,
        ),
    ])
}

fn write_all(dir: &Path) -> Result<(), String> {
    let files = generate()?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// The definition without its hidden subcommands (the worker is not for people; bash's
/// generator would offer it).
fn visible_command() -> clap::Command {
    let full = deploy_hook::generate::command();
    // clap's builder takes &'static str here (its `string` feature is off); a task that
    // runs once can leak two short strings.
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    let mut visible = clap::Command::new(leak(full.get_name()));
    if let Some(v) = full.get_version() {
        visible = visible.version(leak(v));
    }
    if let Some(about) = full.get_about() {
        visible = visible.about(about.clone());
    }
    visible
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

fn bash_completion() -> Vec<u8> {
    let mut cmd = visible_command();
    let mut out = Vec::new();
    clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "deploy-hook", &mut out);
    // clap_complete spells the subcommands' case labels `deploy__subcmd__hook__subcmd__run`
    // while its dispatch loop arrives at `deploy__hook__subcmd__run`, so no subcommand's
    // options ever complete for a bin name with a hyphen (clap-rs/clap issue 6421, open).
    // Spell the labels the way the loop does.
    String::from_utf8_lossy(&out)
        .replace("deploy__subcmd__hook", "deploy__hook")
        .into_bytes()
}

/// One page: clap_mangen's standard sections, then each subcommand with its own arguments
/// (Debian ships one page, deploy-hook(1)), then exit status, environment and files.
fn man_page() -> Vec<u8> {
    let mut cmd = deploy_hook::generate::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone()).section("1").manual("deploy-hook");
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    let _ = man.render_options_section(&mut out);

    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let usage = sub.clone().render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ").trim();
        roff.control("SS", [usage]);
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            roff.text([roman(about.to_string())]);
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set() && !a.is_global_set()) {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let value = arg
                .get_value_names()
                .and_then(|v| v.first())
                .map(|v| v.to_string())
                .unwrap_or_else(|| id.to_uppercase());
            roff.control("TP", []);
            match arg.get_long() {
                Some(long) if arg.get_action().takes_values() => {
                    roff.text([bold(format!("--{long}")), roman(" "), italic(value)]);
                }
                Some(long) => {
                    roff.text([bold(format!("--{long}"))]);
                }
                None => {
                    roff.text([italic(value)]);
                }
            }
            let mut help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            if !values.is_empty() {
                help.push_str(&format!(" (one of: {})", values.join(", ")));
            }
            roff.text([roman(help)]);
        }
    }
    roff.control("SH", ["EXIT STATUS"]);
    // The table error.rs maps errors onto, and `--help` prints.
    for (code, what) in deploy_hook::generate::EXIT_CODES {
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(*what)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    roff.control("TP", []);
    roff.text([bold("DEPLOY_HOOK_CONFIG")]);
    roff.text([roman("The config file, when --config is not given.")]);
    roff.control("TP", []);
    roff.text([bold("REQUEST_METHOD")]);
    roff.text([roman(
        "Set by the web server: with no arguments, deploy-hook handles one delivery as a CGI program.",
    )]);
    roff.control("SH", ["FILES"]);
    for (file, what) in [
        (
            "/etc/deploy-hook/config.toml",
            "The config: one [hooks.NAME] table per site.",
        ),
        (
            "/var/lib/deploy-hook",
            "The state folder: per hook, its status, locks, queue and build logs.",
        ),
        (
            "/etc/nginx/snippets/deploy-hook-fcgiwrap.conf",
            "The nginx snippet that hands a delivery to fcgiwrap.",
        ),
        (
            "/etc/apache2/conf-available/deploy-hook.conf",
            "The Apache conf (a2enconf deploy-hook).",
        ),
        (
            "/usr/share/doc/deploy-hook/examples",
            "An nginx site, the Apache conf and a systemd drop-in for fcgiwrap.",
        ),
        (
            "/usr/share/doc/deploy-hook/docs",
            "The documentation: setup, TLS, the config, builds, publishing, several web hosts, troubleshooting.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([italic(file)]);
        roff.text([roman(what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman("deploy-hook.conf(5), nginx(8), fcgiwrap(8), apache2(8), git(1)")]);
    out.extend_from_slice(roff.to_roff().as_bytes());
    let _ = man.render_version_section(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Debian package ships the committed copies: they must be what the definition gives.
    #[test]
    fn committed_man_page_and_completion_match_the_definition() {
        let dir = workspace_root().join(GENERATED);
        for (name, bytes) in generate().unwrap() {
            let committed = std::fs::read(dir.join(name)).unwrap_or_default();
            assert!(
                committed == bytes,
                "{GENERATED}/{name} differs from what its source (the clap definition, docs/config.md) gives: run `cargo xtask generate` and commit it"
            );
        }
    }

    #[test]
    fn the_man_page_names_every_subcommand_and_flag() {
        let page = String::from_utf8(man_page()).unwrap();
        for word in [
            "check",
            "run",
            "status",
            "rollback",
            "resume",
            "sign",
            "\\-\\-follow",
            "\\-\\-force",
            "EXIT STATUS",
        ] {
            assert!(page.contains(word), "{word} missing from the man page");
        }
        assert!(!page.contains("__worker"), "the worker is not for people");
        let bash = String::from_utf8(bash_completion()).unwrap();
        assert!(bash.contains("--wait") && bash.contains("rollback") && bash.contains("complete -F"));
        assert!(bash.contains("resume"), "resume is offered");
        assert!(!bash.contains("worker"), "the worker is not offered");
    }

    /// What bash offers for a partial command line, through the generated function.
    fn complete(words: &[&str]) -> String {
        let dir = std::env::temp_dir().join(format!("deploy-hook-completion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("deploy-hook.bash");
        std::fs::write(&file, bash_completion()).unwrap();
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let script = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _deploy__hook deploy-hook '{}' '{}'; echo \"${{COMPREPLY[*]}}\"",
            file.display(),
            quoted.join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn bash_completes_subcommands_and_their_flags() {
        assert_eq!(complete(&["deploy-hook", "ro"]), "rollback");
        assert_eq!(complete(&["deploy-hook", "run", "docs", "--w"]), "--wait");
        assert_eq!(complete(&["deploy-hook", "status", "--fo"]), "--follow");
        assert_eq!(complete(&["deploy-hook", "sign", "docs", "--format", ""]), "env curl");
    }
}
