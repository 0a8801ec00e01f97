//! Collects the environment and arguments, runs deploy-hook, exits with its code.

fn main() {
    // The only reads of the process environment: as bytes, so no variable can panic us.
    #[allow(clippy::disallowed_methods)]
    let env: deploy_hook::Env = std::env::vars_os().collect();
    #[allow(clippy::disallowed_methods)]
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = deploy_hook::run(args, env, &mut std::io::stdin().lock(), &mut std::io::stdout().lock());
    std::process::exit(code);
}
