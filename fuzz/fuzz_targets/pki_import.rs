//! Fuzzes the PEM import parser of vigil-pki (certificate chains and private keys in every
//! supported form, including legacy `Proc-Type: 4,ENCRYPTED` keys): any input must give parsed
//! material or an `ImportError`, never a panic; parsed material goes through the full check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_pki::import;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses where the input splits into a certificate file and a key file, so
    // both slots and their interplay get fuzzed from one input.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split) * rest.len() / 256;
    let (cert, key) = rest.split_at(at);
    let _ = import::parse_cert_chain(rest);
    let _ = import::parse_private_key(rest, None);
    let _ = import::parse_private_key(rest, Some(b"passphrase"));
    if let Ok(material) = import::parse_import(cert, key, Some(b"passphrase")) {
        let _ = import::check_material(
            &material.chain,
            &material.key.pkcs8,
            vigil_pki::time::OffsetDateTime::UNIX_EPOCH + vigil_pki::time::Duration::days(20_000),
            &[],
        );
    }
});
