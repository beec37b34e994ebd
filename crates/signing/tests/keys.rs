//! Signing identity: issuance by the CA, storage (0600), and interoperability with OpenSSL.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::TestCa;
use vigil_signing::SigningIdentity;
use vigil_signing::keys::{self, CaCert, CertProblem, check_signing_cert};

#[test]
fn identity_round_trips_through_key_dir_with_0600() {
    let ca = TestCa::new("ca-a");
    let id = ca.identity("rec-1");
    let dir = tempfile::tempdir().unwrap();
    let kd = dir.path().join("keys");
    id.save(&kd).unwrap();
    let mode = std::fs::metadata(kd.join(keys::KEY_FILE))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let back = SigningIdentity::load(&kd).unwrap();
    assert_eq!(back.key_id(), id.key_id());
    assert_eq!(back.cert_der(), id.cert_der());
    // Debug never shows the key.
    let dbg = format!("{back:?}");
    assert!(dbg.contains("redacted") && !dbg.contains("PRIVATE"));

    std::fs::set_permissions(
        kd.join(keys::KEY_FILE),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let e = SigningIdentity::load(&kd).unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    std::fs::set_permissions(
        kd.join(keys::KEY_FILE),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(kd.join(keys::KEY_FILE), "garbage").unwrap();
    let e = SigningIdentity::load(&kd).unwrap_err();
    assert!(
        e.to_string().contains("not a PKCS#8 PEM private key"),
        "{e}"
    );
    let e = SigningIdentity::load(&dir.path().join("none")).unwrap_err();
    assert!(e.to_string().contains("No such file"), "{e}");
}

#[test]
fn issue_with_an_rcgen_issuer() {
    let ca = TestCa::new("ca-a");
    let ca_der = keys::pem_to_der(&ca.cert_pem, "ca").unwrap();
    let id = SigningIdentity::issue_with(
        &ca.issuer(),
        &ca_der,
        "rec-2",
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    let k = check_signing_cert(id.cert_der(), &ca.trust()).unwrap();
    assert_eq!(k.key_id, id.key_id());
    assert!(k.subject.contains("rec-2"));
}

#[test]
fn bad_ca_inputs_are_reported() {
    let ca = TestCa::new("ca-a");
    let e = SigningIdentity::issue(&ca.cert_pem, "nope", "x", std::time::Duration::from_secs(1))
        .unwrap_err();
    assert!(e.to_string().contains("CA private key"), "{e}");
    let e = SigningIdentity::issue("nope", &ca.key_pem, "x", std::time::Duration::from_secs(1))
        .unwrap_err();
    assert!(e.to_string().contains("CA certificate"), "{e}");
    // A leaf is not a CA.
    let id = ca.identity("x");
    assert!(
        CaCert::from_pem(&id.cert_pem())
            .unwrap_err()
            .to_string()
            .contains("not a CA")
    );
}

#[test]
fn certificate_checks_reject_other_ca_and_ca_certs() {
    let a = TestCa::new("ca-a");
    let b = TestCa::new("ca-b");
    let id = a.identity("x");
    assert!(matches!(
        check_signing_cert(id.cert_der(), &b.trust()),
        Err(CertProblem::UnknownIssuer(_))
    ));
    assert!(matches!(
        check_signing_cert(b"junk", &a.trust()),
        Err(CertProblem::Bad(_))
    ));
    let ca_der = keys::pem_to_der(&a.cert_pem, "ca").unwrap();
    // The CA certificate itself is not a signing key (and is not Ed25519).
    assert!(check_signing_cert(&ca_der, &a.trust()).is_err());
}

#[test]
fn openssl_accepts_the_signing_certificate_chain() {
    let ca = TestCa::new("ca-a");
    let id = ca.identity("rec-1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
    std::fs::write(dir.path().join("leaf.pem"), id.cert_pem()).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.path().join("ca.pem"))
        .arg(dir.path().join("leaf.pem"))
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.path().join("leaf.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ED25519"), "{text}");
    assert!(text.contains("Digital Signature"), "{text}");
    // Our fingerprint equals OpenSSL's.
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(dir.path().join("ca.pem"))
        .output()
        .unwrap();
    let ossl: String = String::from_utf8_lossy(&out.stdout)
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(ossl, CaCert::from_pem(&ca.cert_pem).unwrap().fingerprint());
}
