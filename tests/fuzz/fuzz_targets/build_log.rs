//! A build's log, as the page, the robots and the forge get it: arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    deploy_hook::fuzzing::build_log(data);
});
