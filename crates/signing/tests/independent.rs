//! The format documentation is enough for a third party: an independent verifier written in
//! Python from docs/signing-format.md alone (hashlib + the openssl CLI for X.509 and Ed25519)
//! accepts our recordings and rejects tampered ones.

mod common;

use std::fs;
use std::process::Command;

use common::*;

fn run_independent(ca: &TestCa, r: &Rec) -> (bool, String) {
    let ca_path = r.data.join("ca.pem");
    fs::write(&ca_path, &ca.cert_pem).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&ca_path)
        .arg(r.ledger())
        .arg(r.video())
        .output()
        .expect("python3 is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn independent_python_verifier_agrees() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let (ok, text) = run_independent(&ca, &r);
    assert!(ok, "{text}");
    assert!(text.starts_with("OK 15 fragments verified"), "{text}");

    let f = r.frags_of(2)[1].clone();
    let mut b = fs::read(r.seg_path(2)).unwrap();
    b[(f.offset + 20) as usize] ^= 2;
    fs::write(r.seg_path(2), b).unwrap();
    let (ok, text) = run_independent(&ca, &r);
    assert!(!ok);
    assert!(text.contains(&format!("GOP {}: modified", f.gop)), "{text}");
    assert_eq!(
        r.verify(&ca).failure.unwrap().kind,
        vigil_signing::FailureKind::Modified
    );
}

#[test]
fn independent_verifier_rejects_other_ca() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let (ok, text) = run_independent(&TestCa::new("ca-b"), &r);
    assert!(!ok);
    assert!(text.contains("not issued by the CA"), "{text}");
}
