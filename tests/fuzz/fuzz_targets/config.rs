//! The config parser and validator, from arbitrary text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = deploy_hook::config::Config::parse(Path::new("/etc/deploy-hook/config.toml"), text) {
            let _ = cfg.hook(None);
            for h in cfg.hooks.values() {
                for s in &h.steps {
                    let _ = s.run.to_string();
                    let _ = s.run.argv();
                    let _ = s.if_changed.len();
                }
            }
        }
    }
});
