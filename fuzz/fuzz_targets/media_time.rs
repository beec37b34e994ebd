//! User-typed times (`--from`, `--to`): RFC 3339, relative and Unix forms.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vigil_media::time::parse_time(text, 1_800_000_000_000_000);
    }
});
