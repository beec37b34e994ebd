//! User-typed times (`--from`, `--to`, the API's `from`/`to`): RFC 3339, relative and Unix
//! forms. Whatever parses is also shown back (`format_us`, as the CLI and the API's range
//! errors and answers do), which must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(us) = vigil_media::time::parse_time(text, 1_800_000_000_000_000) {
            let _ = vigil_media::time::format_us(us);
        }
    }
});
