//! Fuzzes the export-bundle manifest and export-statement parsers (vigil-signing): JSON shape,
//! hash fields, byte-range contiguity and bundle-internal path checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_signing::bundle::{parse_manifest, parse_statement};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_manifest(data) {
        // Accepted manifests are contiguous and describe exactly video_size bytes.
        let end = m.fragments.last().map_or(m.init.offset + m.init.length, |f| f.offset + f.length);
        assert_eq!(end, m.video_size);
        // Certificate paths stay inside certs/: one plain file name, never a hidden one, so no
        // separator, no "." or ".." component (dots inside a name such as "a..b.pem" are fine).
        assert!(m.signing_certificates.iter().all(|c| c.strip_prefix("certs/").is_some_and(|name| {
            !name.starts_with('.') && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })));
    }
    if let Ok(s) = parse_statement(data) {
        assert!(s.files.iter().all(|f| !f.path.contains('/') || f.path.starts_with("certs/")));
    }
});
