//! Fuzzes the reader of a TLS server's first flight (the audit parses what any device on the
//! network sends): any input must give a verdict, never a panic, and a chain it returns must
//! consist of non-empty certificates that lie inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_netaudit::tlshello::{Flight, parse_flight};

fuzz_target!(|data: &[u8]| {
    for want_chain in [false, true] {
        if let Flight::Hello { chain: Some(chain), .. } = parse_flight(data, want_chain) {
            assert!(want_chain);
            let total: usize = chain.iter().map(Vec::len).sum();
            assert!(chain.iter().all(|c| !c.is_empty()) && total <= data.len());
        }
    }
});
