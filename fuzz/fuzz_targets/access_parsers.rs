//! Fuzzes vigil-access's parsers of outside input: allow-list entries (config), API tokens
//! (Authorization header), roles and audit kinds (CLI/API), timestamps (audit query) and the
//! session-id path (cookie). Any input must parse or give an error: never a panic; whatever
//! parses must keep its invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_access::{AuditKind, Role, Timestamp, parse_allow_list, parse_token};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries: Vec<&str> = text.split(',').collect();
    if let Ok(nets) = parse_allow_list(&entries) {
        assert_eq!(nets.len(), entries.len());
        for n in &nets {
            assert!(
                n.prefix_len() > 0,
                "an allow-list entry covering everything slipped through"
            );
            assert_eq!(*n, n.trunc(), "host bits must be cleared");
        }
    }
    if let Ok((id, secret)) = parse_token(text) {
        assert_eq!((id.len(), secret.len()), (16, 64));
        assert_eq!(format!("vgt_{id}_{secret}"), text);
    }
    if let Ok(role) = text.parse::<Role>() {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
    }
    if let Ok(kind) = text.parse::<AuditKind>() {
        assert_eq!(kind.as_str(), text.trim());
    }
    let _ = Timestamp::parse(text).map(|t| t.to_string());
});
