//! Test helpers: the real `openssl` tool and an external PKI made with it (vigil-testkit).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use vigil_testkit::external_ca::{ExternalCa, Key, Validity, openssl, openssl_output};

/// The names the external CA puts in the certificates it signs.
pub const SAN: &str = "DNS:cam.example,IP:127.0.0.1,DNS:localhost";

/// An external PKI: root CA → intermediate CA, which signs the leaves.
pub fn external_pki(dir: &Path) -> ExternalCa {
    ExternalCa::with_intermediate(dir, "Test External Root", "Test Intermediate")
}

pub fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}
