//! Fuzzes the backup file reader (vigil-app `backup`, docs/backup.md): byte 0 picks the layer.
//! Even: the encrypted container (`format::Header::parse`, `format::OpeningReader` under a
//! fixed key: header bounds, chunk lengths, truncation, trailing data; a forged chunk never
//! authenticates, so every input ends in a reported error or the plaintext of a valid one).
//! Odd: the plaintext a valid container yields, a tar stream, through `backup::inspect`,
//! which applies restore's checks (manifest first and once, only the entries a backup holds,
//! no path leaving the data directory). Never a panic.
#![no_main]

use std::io::Read;
use std::path::Component;

use libfuzzer_sys::fuzz_target;
use vigil_app::backup::format::{HEADER_LEN, Header, OpeningReader};
use vigil_app::backup::{self, Entry};

fuzz_target!(|data: &[u8]| {
    let Some((&layer, rest)) = data.split_first() else {
        return;
    };
    if layer % 2 == 0 {
        if let Ok(h) = Header::parse(rest) {
            assert!(rest.len() >= HEADER_LEN);
            assert!(h.cost.m_kib >= 8 * h.cost.p);
        }
        if let Ok(mut r) = OpeningReader::with_key(rest, &[0x42; 32]) {
            let mut out = Vec::new();
            let _ = r.read_to_end(&mut out);
        }
    } else if let Ok(entries) = backup::inspect(rest) {
        assert_eq!(entries.first(), Some(&Entry::Manifest));
        for e in entries {
            if let Entry::Data(p) = e {
                assert!(
                    p.components().all(|c| matches!(c, Component::Normal(_))),
                    "{p:?}"
                );
            }
        }
    }
});
