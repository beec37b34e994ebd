//! Fuzzes the site-file parser: any input must give a site or a SiteError, never a panic, and
//! a parsed site must generate rules in every format.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_netpolicy::firewall::{self, FirewallFormat};
use vigil_netpolicy::{Catalog, Site};

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| {
        Catalog::with_vigil(&vigil_config::Config::with_data_dir("/fuzz")).expect("builtin catalog")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(site) = Site::parse(text, std::path::Path::new("fuzz.toml"), catalog()) {
        for f in [FirewallFormat::Nftables, FirewallFormat::Iptables, FirewallFormat::Powershell] {
            let _ = firewall::generate(&site, catalog(), f);
        }
    } else if let Err(e) = Site::parse(text, std::path::Path::new("fuzz.toml"), catalog()) {
        assert!(!e.message.is_empty());
    }
});
