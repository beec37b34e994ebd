//! A device's `WWW-Authenticate` fields as vigil-onvif answers them (`digest::choose`, on the
//! `http-auth` parser, then a response computed for one request): never a panic; a header
//! over the limit is refused as too long; a chosen challenge answers with a `Digest` value
//! that never holds the password and counts its nonce up. Input: the header text (lossy
//! UTF-8, as the client refuses what is not text by giving the parser a NUL).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_onvif::Credentials;
use vigil_onvif::digest::{DigestError, MAX_CHALLENGE_BYTES, choose};

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    match choose(&header) {
        Err(DigestError::TooLong) => assert!(header.len() > MAX_CHALLENGE_BYTES),
        Err(_) => {}
        Ok(mut c) => {
            assert!(header.len() <= MAX_CHALLENGE_BYTES);
            let creds = Credentials::new("admin", "fuzz-secret-pw");
            for nc in ["00000001", "00000002"] {
                let Ok(a) = c.authorization(&creds, "POST", "/onvif/device_service")
                else {
                    return;
                };
                assert!(a.starts_with("Digest "), "{a}");
                assert!(!a.contains("fuzz-secret-pw"), "{a}");
                assert!(a.contains(&format!("nc={nc}")), "{a}");
            }
        }
    }
});
