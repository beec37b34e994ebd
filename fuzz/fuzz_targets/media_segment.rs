//! Segment files as recovery and export read them: top-level box scanning and moof parsing
//! must never panic, whatever a disk or an attacker left in the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(layout) = vigil_media::fmp4::scan_segment(data) {
        assert!(layout.init_len as usize <= data.len());
        for (offset, len) in layout.fragments {
            let end = (offset + len) as usize;
            assert!(end <= data.len());
            let _ = vigil_media::fmp4::parse_fragment(&data[offset as usize..end]);
        }
    }
    let _ = vigil_media::fmp4::parse_fragment(data);
});
