//! Analytics events (`vigil_app::analytics::parse`, docs/events-in.md): the JSON body of
//! `POST /api/v1/events` as an API token sends it. Whatever the bytes, parsing never panics,
//! every error is classified as invalid input with a message, and an accepted body is an
//! `analytics.<type>` event about a camera, at most 5 min ahead of and 24 h behind the
//! arrival, that passes `NewEvent::check` once sanitized (as the bus does).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_app::analytics::{MAX_FUTURE_US, MAX_PAST_US, parse};
use vigil_app::error::{Classified, ErrorKind};
use vigil_events::model::MAX_ATTRIBUTES;

// 2026-12-07T10:00:00Z
const NOW: i64 = 1_796_637_600_000_000;

fuzz_target!(|data: &[u8]| {
    match parse(data, "fuzz-analytics", NOW) {
        Ok(e) => {
            assert!(e.kind.starts_with("analytics."), "{}", e.kind);
            assert!(e.camera.is_some());
            assert!(e.time_us <= NOW + MAX_FUTURE_US && e.time_us >= NOW - MAX_PAST_US);
            assert!(e.attributes.len() <= MAX_ATTRIBUTES);
            let e = e.sanitized();
            if let Err(err) = e.check() {
                panic!("{err}: {e:?}");
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(!e.to_string().is_empty());
        }
    }
});
