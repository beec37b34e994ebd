//! A recording server's heartbeat as the management server reads it (`POST /v1/heartbeat`,
//! vigil-cluster's `parse_heartbeat`) and the management server's answer as a recording
//! server reads it (`parse_heartbeat_reply`, whose revocation list it applies to its own
//! listener): never a panic; what is accepted is within its documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_cluster::protocol::{BodyError, MAX_BODY, MAX_REVOKED, parse_heartbeat, parse_heartbeat_reply};

fuzz_target!(|data: &[u8]| {
    match parse_heartbeat(data) {
        Err(BodyError::TooLarge(n)) => assert!(n > MAX_BODY),
        Err(_) => {}
        Ok(hb) => {
            assert!(!hb.version.is_empty() && hb.version.len() <= 64);
            assert!(hb.disk_free_bytes <= hb.disk_total_bytes);
            assert!(u64::from(hb.cameras_recording) <= 2 * u64::from(hb.cameras_total));
        }
    }
    if let Ok(reply) = parse_heartbeat_reply(data) {
        assert!(reply.revoked.len() <= MAX_REVOKED);
        assert!(reply.revoked.iter().all(|f| f.len() == 64));
    }
});
