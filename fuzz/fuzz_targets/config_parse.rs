//! The configuration file parser and validator must reject, never panic; nor may reading the
//! PostgreSQL servers out of an accepted (or any) `[database] url`, which the port manifest
//! and firewall generators do.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = vigil_config::Config::parse(text, std::path::Path::new("fuzz.toml")) {
            let _ = config.database.tcp_servers();
        }
        let _ = vigil_config::DatabaseConfig {
            url: Some(text.to_owned()),
            ..Default::default()
        }
        .tcp_servers();
    }
});
