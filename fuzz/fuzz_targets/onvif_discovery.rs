//! One UDP datagram as a WS-Discovery sweep reads it (`discovery::parse_probe_matches`), with
//! and without a probe it must answer: never a panic; an accepted match has an endpoint and
//! at least one address, and its lists keep their limits; scopes read back without panicking.
//! Input: the datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_onvif::ProbeMatchError;
use vigil_onvif::discovery::{MAX_MESSAGE, parse_probe_matches};

const ID: &str = "urn:uuid:3f2504e0-4f89-41d3-9a0c-0305e82c3301";

fuzz_target!(|data: &[u8]| {
    let open = parse_probe_matches(data, None);
    let bound = parse_probe_matches(data, Some(ID));
    if data.len() > MAX_MESSAGE {
        assert_eq!(open, Err(ProbeMatchError::TooLarge(MAX_MESSAGE)));
    }
    // Answering our probe is a narrower condition than being readable at all.
    if let Ok(b) = &bound {
        assert_eq!(open.as_ref().ok(), Some(b));
    }
    for m in open.into_iter().flatten() {
        assert!(!m.endpoint.is_empty());
        assert!(!m.xaddrs.is_empty());
        assert!(m.types.len() <= 32 && m.scopes.len() <= 32 && m.xaddrs.len() <= 32);
        for key in ["name", "hardware", "location"] {
            let _ = m.scope(key);
        }
    }
});
