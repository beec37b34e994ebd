//! Fuzzes everything the sample camera parses from an RTSP client: the request/interleaved
//! framing, the Transport header and Digest/Basic authorization parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_samplecam::parse_auth_params;
use vigil_samplecam::request::{Limits, Parsed, parse_message, parse_transport};

fuzz_target!(|data: &[u8]| {
    // Small limits reach the size checks with small inputs.
    for limits in [Limits::default(), Limits { max_header_bytes: 64, max_body_bytes: 16, max_headers: 4 }] {
        match parse_message(data, &limits) {
            Ok(Parsed::Request { request, consumed }) => {
                assert!(consumed <= data.len());
                assert!(request.body.len() <= limits.max_body_bytes);
                let _ = (request.path(), request.authority(), request.header("Transport"));
                if let Some(t) = request.header("Transport") {
                    let _ = parse_transport(t);
                }
            }
            Ok(Parsed::Interleaved { consumed, .. }) => assert!(consumed >= 4 && consumed <= data.len()),
            Ok(Parsed::Incomplete) => {}
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_transport(text);
        let _ = parse_auth_params(text);
    }
});
