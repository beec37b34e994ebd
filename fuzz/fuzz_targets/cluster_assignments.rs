//! A recording server's camera assignments as it reads them from the management server
//! (`GET /v1/assignments`, vigil-cluster's `parse_assignments`), before any of it reaches its
//! store: never a panic; what is accepted is within its documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_cluster::protocol::{BodyError, MAX_ASSIGNED, MAX_ASSIGNMENTS_BODY, parse_assignments};

fuzz_target!(|data: &[u8]| {
    match parse_assignments(data) {
        Err(BodyError::TooLarge(n)) => assert!(n > MAX_ASSIGNMENTS_BODY),
        Err(e) => {
            // Refusals never repeat a password: they name fields, not values.
            let _ = e.to_string();
        }
        Ok(a) => {
            assert!(a.cameras.len() <= MAX_ASSIGNED);
            assert!(!a.revision.is_empty() && a.revision.len() <= 64);
            for c in &a.cameras {
                assert!(c.id.len() == 16 && c.id.starts_with("cam-"));
                assert!(c.url.starts_with("rtsp://") || c.url.starts_with("rtsps://"));
                assert!(c.password.is_none() || c.username.is_some());
            }
        }
    }
});
