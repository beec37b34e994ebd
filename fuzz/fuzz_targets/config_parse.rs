//! The configuration file parser and validator must reject, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vigil_config::Config::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
