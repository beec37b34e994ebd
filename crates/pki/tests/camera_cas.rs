//! CAs trusted for camera links (`vigil_pki::camera_cas`), with certificates made by the real
//! `openssl` tool: what is accepted, what is refused and why, and how they show in the status.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Key, SAN, Validity, external_pki, read};
use time::OffsetDateTime;
use vigil_pki::camera_cas::{self, CameraCaError};
use vigil_pki::{CertRole, InitOptions, Pki, PkiError};

fn new_pki(dir: &std::path::Path) -> Pki {
    Pki::init(&dir.join("pki"), &InitOptions::default()).expect("init")
}

#[test]
fn a_root_and_intermediate_are_trusted_listed_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let ext = external_pki(tmp.path());
    let pki = new_pki(tmp.path());
    let now = OffsetDateTime::now_utc();
    // The intermediate and the root, in one file.
    let pem = format!(
        "{}{}",
        String::from_utf8(read(tmp.path(), "inter.crt")).unwrap(),
        ext.root_pem()
    );
    let added = camera_cas::add(pki.dir(), pem.as_bytes(), now).unwrap();
    assert_eq!(added.len(), 2);
    assert!(
        added
            .iter()
            .all(|c| c.is_ca && c.role == CertRole::CameraCa)
    );
    // Adding again changes nothing.
    camera_cas::add(pki.dir(), ext.root_pem().as_bytes(), now).unwrap();
    let listed = camera_cas::list(pki.dir()).unwrap();
    assert!(listed.unreadable.is_empty());
    assert_eq!(listed.certificates.len(), 2);
    // The files are public material in the private PKI directory.
    let dir = pki.dir().join(camera_cas::CAMERA_CAS_DIR);
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for e in std::fs::read_dir(&dir).unwrap() {
        let mode = e.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
    // They are certificates of the installation: in the status and among those whose expiry
    // is alerted.
    let status = pki.status().unwrap();
    assert_eq!(
        status
            .certificates
            .iter()
            .filter(|c| c.role == CertRole::CameraCa)
            .count(),
        2
    );
    assert_eq!(
        pki.certs_in_use()
            .unwrap()
            .iter()
            .filter(|c| c.role == CertRole::CameraCa)
            .count(),
        2
    );
    // Removed by fingerprint in either notation.
    let root = added.iter().find(|c| c.subject.contains("Root")).unwrap();
    let lower = root
        .fingerprint_sha256
        .replace(':', "")
        .to_ascii_lowercase();
    let removed = camera_cas::remove(pki.dir(), &lower).unwrap();
    assert_eq!(removed.fingerprint_sha256, root.fingerprint_sha256);
    assert_eq!(camera_cas::list(pki.dir()).unwrap().certificates.len(), 1);
    match camera_cas::remove(pki.dir(), &root.fingerprint_sha256) {
        Err(PkiError::CameraCa(CameraCaError::Unknown(_))) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_camera_certificate_expired_ca_or_garbage_is_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let ext = external_pki(tmp.path());
    let pki = new_pki(tmp.path());
    let now = OffsetDateTime::now_utc();
    // A leaf (a camera's own certificate) is not a CA.
    let leaf = ext.leaf("cam", Key::P256, SAN, Validity::Days(30));
    let err = camera_cas::add(pki.dir(), &std::fs::read(&leaf.cert).unwrap(), now).unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::CameraCa(CameraCaError::NotCa { index: 1, .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("pin its fingerprint"), "{err}");
    // A CA that expired: its camera certificates could not verify anyway.
    let later = now + time::Duration::days(4000);
    let err = camera_cas::add(pki.dir(), ext.root_pem().as_bytes(), later).unwrap_err();
    assert!(
        matches!(err, PkiError::CameraCa(CameraCaError::Expired { .. })),
        "{err:?}"
    );
    // Not PEM, a key, nothing.
    for bad in [
        &b"not a certificate"[..],
        b"",
        &read(tmp.path(), "root.key"),
    ] {
        assert!(
            matches!(
                camera_cas::add(pki.dir(), bad, now),
                Err(PkiError::Import(_))
            ),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Nothing was trusted by the refused attempts.
    assert!(camera_cas::list(pki.dir()).unwrap().certificates.is_empty());
}

#[test]
fn an_unreadable_file_is_reported_and_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let ext = external_pki(tmp.path());
    let pki = new_pki(tmp.path());
    camera_cas::add(
        pki.dir(),
        ext.root_pem().as_bytes(),
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let dir = pki.dir().join(camera_cas::CAMERA_CAS_DIR);
    std::fs::write(
        dir.join("junk.crt"),
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let before = camera_cas::generation(pki.dir());
    let listed = camera_cas::list(pki.dir()).unwrap();
    assert_eq!(listed.certificates.len(), 1);
    assert_eq!(listed.unreadable.len(), 1);
    assert!(listed.unreadable[0].0.ends_with("junk.crt"));
    std::fs::remove_file(dir.join("junk.crt")).unwrap();
    assert_ne!(
        camera_cas::generation(pki.dir()),
        before,
        "a change is seen"
    );
}
