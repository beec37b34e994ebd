//! The format documentation is enough for a third party: an independent verifier written in
//! Python from docs/signing-format.md alone (hashlib + the openssl CLI for X.509 and Ed25519)
//! accepts our recordings and rejects tampered ones.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use vigil_signing::record::Body;
use vigil_signing::{FailureKind, LedgerOptions, LedgerWriter, SigningMode};

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
    assert_eq!(r.verify(&ca).failure.unwrap().kind, FailureKind::Modified);
}

#[test]
fn independent_verifier_rejects_other_ca() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let (ok, text) = run_independent(&TestCa::new("ca-b"), &r);
    assert!(!ok);
    assert!(text.contains("not issued by the CA"), "{text}");
}

/// Two ledger generations: the signing key was replaced after segments 0..3.
fn two_generations(ca: &TestCa) -> Rec {
    let mut r = standard(ca);
    let (w, open) = LedgerWriter::open(
        &r.ledger(),
        CAMERA,
        SigningMode::Enabled(ca.identity("rec-2")),
        LedgerOptions::default(),
    )
    .unwrap();
    assert!(open.retired.is_some());
    r.writer = Some(w);
    r.segment(3, 4, true);
    r.close();
    r
}

fn retired(r: &Rec) -> std::path::PathBuf {
    r.data.join("ledger").join(format!("{CAMERA}.ledger.1"))
}

#[test]
fn independent_verifier_follows_ledger_generations() {
    let ca = TestCa::new("ca-a");
    let r = two_generations(&ca);
    let (ok, text) = run_independent(&ca, &r);
    assert!(ok, "{text}");
    assert!(
        text.starts_with("OK 19 fragments verified") && text.contains("2 ledger generations"),
        "{text}"
    );
    assert!(r.verify(&ca).is_verified());

    // The retired file changed after the server retired it.
    let pristine = fs::read(retired(&r)).unwrap();
    let mut bytes = pristine.clone();
    bytes.extend_from_slice(&[0, 0, 0, 90, 3]);
    fs::write(retired(&r), &bytes).unwrap();
    let (ok, text) = run_independent(&ca, &r);
    assert!(!ok);
    assert!(text.contains("was changed after it was retired"), "{text}");

    // A fragment record in the retired file modified.
    let recs = records(&retired(&r));
    let frag = recs
        .iter()
        .find(|x| matches!(x.body, Body::Fragment(_)))
        .unwrap();
    let mut bytes = pristine;
    bytes[(frag.offset + 70) as usize] ^= 1;
    fs::write(retired(&r), &bytes).unwrap();
    let (ok, text) = run_independent(&ca, &r);
    assert!(!ok);
    assert!(
        text.contains(&format!(
            "{CAMERA}.ledger.1: record at byte {}",
            frag.offset
        )),
        "{text}"
    );
    assert_eq!(r.verify(&ca).failure.unwrap().kind, FailureKind::Modified);
}

#[test]
fn independent_verifier_skips_an_interrupted_write() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    // The beginning of a record a failed write left, before the record that continues the chain.
    let recs = records(&r.ledger());
    ledger::insert_interrupted_write(&r.ledger(), &recs[recs.len() / 2], 50);
    let (ok, text) = run_independent(&ca, &r);
    assert!(ok, "{text}");
    assert!(text.starts_with("OK 15 fragments verified"), "{text}");
    assert!(r.verify(&ca).is_verified());
}
