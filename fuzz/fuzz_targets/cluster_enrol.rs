//! What a joining server sends the management server's inter-server listener
//! (`POST /v1/enrol`, vigil-cluster's `parse_enrol_request`, then `JoinToken::parse` on its
//! token) and what the management server answers (`parse_enrol_reply`): never a panic; a body
//! over the limit is refused as too large; an accepted request has a bounded token and CSR;
//! a parsed token prints back to the same token and no refusal repeats its secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_cluster::protocol::{BodyError, MAX_BODY, MAX_CSR, parse_enrol_reply, parse_enrol_request};
use vigil_cluster::token::MAX_TOKEN_TEXT;
use vigil_cluster::JoinToken;

fuzz_target!(|data: &[u8]| {
    match parse_enrol_request(data) {
        Err(BodyError::TooLarge(n)) => assert!(n > MAX_BODY),
        Err(_) => {}
        Ok(req) => {
            assert!(req.token.len() <= MAX_TOKEN_TEXT && req.csr.len() <= MAX_CSR);
            match JoinToken::parse(&req.token) {
                Ok(t) => assert_eq!(JoinToken::parse(&t.expose()).unwrap(), t),
                Err(e) => {
                    let secret = req.token.split('.').nth(2).unwrap_or("");
                    assert!(secret.len() < 8 || !e.to_string().contains(secret));
                }
            }
        }
    }
    if let Ok(reply) = parse_enrol_reply(data) {
        assert!(!reply.name.is_empty() && reply.name.len() <= 63);
    }
});
