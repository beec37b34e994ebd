//! Bring-your-own-PKI import against material made by the real openssl tool: every key format
//! OpenSSL writes, and every way an import can go wrong, each with its own error.

mod common;

use std::path::Path;

use common::{ExternalCa, Key, SAN, Validity, external_pki, openssl, read};
use time::{Duration, OffsetDateTime};
use vigil_pki::{CertSource, ImportError, InitOptions, KeyFormat, Pki, PkiError};
use vigil_testkit::external_ca::{encrypted_p256_key, request};

fn new_pki(dir: &Path) -> Pki {
    Pki::init(
        &dir.join("pki"),
        &InitOptions {
            hostnames: vec!["localhost".into(), "127.0.0.1".into()],
            ..InitOptions::default()
        },
    )
    .expect("init")
}

fn import_err(pki: &mut Pki, cert: &[u8], key: &[u8], pass: Option<&[u8]>) -> ImportError {
    match pki.import(cert, key, pass) {
        Err(PkiError::Import(e)) => e,
        other => panic!("expected an import error, got {other:?}"),
    }
}

/// An external PKI plus an EC leaf with a plain PKCS#8 key (leaf.key / leaf.crt).
fn setup() -> (tempfile::TempDir, ExternalCa, Pki) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ext = external_pki(tmp.path());
    ext.leaf("leaf", Key::P256, SAN, Validity::Days(30));
    let pki = new_pki(tmp.path());
    (tmp, ext, pki)
}

#[test]
fn imports_plain_pkcs8_with_full_chain() {
    let (tmp, ext, mut pki) = setup();
    let d = tmp.path();
    assert!(String::from_utf8_lossy(&read(d, "leaf.key")).contains("BEGIN PRIVATE KEY"));
    let installed = pki
        .import(ext.chain("leaf.crt").as_bytes(), &read(d, "leaf.key"), None)
        .expect("import");
    assert_eq!(installed.key_format, Some(KeyFormat::Pkcs8));
    assert_eq!(installed.info.source, CertSource::Imported);
    assert_eq!(pki.active_source(), CertSource::Imported);
    // The served chain is leaf + intermediate: the self-signed root is not sent.
    assert_eq!(installed.certified_key.cert.len(), 2);
    // The stored chain and key are what TLS serves after a restart.
    let reopened = Pki::open(pki.dir()).expect("open");
    let served = reopened.server_certified_key().expect("served");
    assert_eq!(served.cert, installed.certified_key.cert);
    let status = reopened.status().expect("status");
    let leaf = status
        .certificates
        .iter()
        .find(|c| c.in_use && c.role == vigil_pki::CertRole::Server)
        .expect("leaf in status");
    assert_eq!(leaf.source, CertSource::Imported);
    assert!(
        leaf.sans.contains(&"DNS:cam.example".to_string()),
        "{:?}",
        leaf.sans
    );
    // Same fingerprint as openssl computes.
    let fp = openssl(
        d,
        &[
            "x509",
            "-in",
            "leaf.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    assert!(
        fp.trim().ends_with(&leaf.fingerprint_sha256),
        "{fp} vs {}",
        leaf.fingerprint_sha256
    );
}

#[test]
fn imports_certificate_and_key_from_one_file() {
    let (tmp, ext, mut pki) = setup();
    let combined = [
        ext.chain("leaf.crt").into_bytes(),
        read(tmp.path(), "leaf.key"),
    ]
    .concat();
    pki.import(&combined, &combined, None)
        .expect("combined file");
}

#[test]
fn imports_encrypted_pkcs8_from_genpkey() {
    let (tmp, ext, mut pki) = setup();
    let d = tmp.path();
    encrypted_p256_key(d, "enc.key", "correct horse");
    assert!(String::from_utf8_lossy(&read(d, "enc.key")).contains("BEGIN ENCRYPTED PRIVATE KEY"));
    ext.request_for_key("enc.key", Some("correct horse"), "enc.csr", "cam.example");
    ext.sign("enc.csr", "enc.crt", Validity::Days(30), SAN);
    let chain = ext.chain("enc.crt").into_bytes();
    let key = read(d, "enc.key");

    assert_eq!(
        import_err(&mut pki, &chain, &key, None),
        ImportError::PassphraseRequired
    );
    assert_eq!(
        import_err(&mut pki, &chain, &key, Some(b"wrong")),
        ImportError::WrongPassphrase
    );
    let installed = pki
        .import(&chain, &key, Some(b"correct horse"))
        .expect("import");
    assert_eq!(installed.key_format, Some(KeyFormat::EncryptedPkcs8));
    // Stored decrypted as PKCS#8 so the server starts unattended.
    let stored = String::from_utf8(read(&d.join("pki"), "external.key")).expect("utf8");
    assert!(stored.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn imports_rsa_encrypted_pkcs8() {
    let (tmp, ext, mut pki) = setup();
    let d = tmp.path();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-aes-128-cbc",
            "-pass",
            "pass:pw",
            "-out",
            "rsa_enc.key",
        ],
    );
    ext.request_for_key("rsa_enc.key", Some("pw"), "rsa.csr", "cam.example");
    ext.sign("rsa.csr", "rsa.crt", Validity::Days(30), SAN);
    let installed = pki
        .import(
            ext.chain("rsa.crt").as_bytes(),
            &read(d, "rsa_enc.key"),
            Some(b"pw"),
        )
        .expect("import");
    assert_eq!(installed.key_format, Some(KeyFormat::EncryptedPkcs8));
}

/// `openssl rsa -aes256 -traditional` and `openssl ec -aes128` write the legacy
/// `Proc-Type: 4,ENCRYPTED` format with an MD5-based key derivation.
#[test]
fn imports_legacy_encrypted_rsa_and_ec_keys() {
    let (tmp, ext, mut pki) = setup();
    let d = tmp.path();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.key",
        ],
    );
    for (cipher, name) in [
        ("-aes256", "legacy_rsa256.key"),
        ("-aes128", "legacy_rsa128.key"),
        ("-aes192", "legacy_rsa192.key"),
    ] {
        openssl(
            d,
            &[
                "rsa",
                "-in",
                "rsa.key",
                cipher,
                "-passout",
                "pass:s3cret",
                "-traditional",
                "-out",
                name,
            ],
        );
        let text = String::from_utf8(read(d, name)).expect("utf8");
        assert!(
            text.contains("BEGIN RSA PRIVATE KEY") && text.contains("Proc-Type: 4,ENCRYPTED"),
            "{text}"
        );
    }
    ext.request_for_key("rsa.key", None, "rsa.csr", "cam.example");
    ext.sign("rsa.csr", "rsa.crt", Validity::Days(30), SAN);
    let chain = ext.chain("rsa.crt").into_bytes();
    for name in [
        "legacy_rsa256.key",
        "legacy_rsa128.key",
        "legacy_rsa192.key",
    ] {
        let key = read(d, name);
        assert_eq!(
            import_err(&mut pki, &chain, &key, None),
            ImportError::PassphraseRequired
        );
        assert_eq!(
            import_err(&mut pki, &chain, &key, Some(b"not it")),
            ImportError::WrongPassphrase,
            "{name}"
        );
        let installed = pki.import(&chain, &key, Some(b"s3cret")).expect(name);
        assert_eq!(installed.key_format, Some(KeyFormat::LegacyEncryptedRsa));
    }

    // EC: `openssl ec` writes the traditional SEC1 form.
    openssl(
        d,
        &[
            "ec",
            "-in",
            "leaf.key",
            "-aes128",
            "-passout",
            "pass:s3cret",
            "-out",
            "legacy_ec.key",
        ],
    );
    let text = String::from_utf8(read(d, "legacy_ec.key")).expect("utf8");
    assert!(
        text.contains("BEGIN EC PRIVATE KEY") && text.contains("Proc-Type: 4,ENCRYPTED"),
        "{text}"
    );
    let chain = ext.chain("leaf.crt").into_bytes();
    let key = read(d, "legacy_ec.key");
    assert_eq!(
        import_err(&mut pki, &chain, &key, Some(b"nope")),
        ImportError::WrongPassphrase
    );
    let installed = pki
        .import(&chain, &key, Some(b"s3cret"))
        .expect("legacy ec");
    assert_eq!(installed.key_format, Some(KeyFormat::LegacyEncryptedEc));
}

#[test]
fn imports_traditional_unencrypted_rsa_and_ec_keys() {
    let (tmp, ext, mut pki) = setup();
    let d = tmp.path();
    openssl(d, &["ec", "-in", "leaf.key", "-out", "trad_ec.key"]);
    assert!(String::from_utf8_lossy(&read(d, "trad_ec.key")).contains("BEGIN EC PRIVATE KEY"));
    let installed = pki
        .import(
            ext.chain("leaf.crt").as_bytes(),
            &read(d, "trad_ec.key"),
            None,
        )
        .expect("traditional ec");
    assert_eq!(installed.key_format, Some(KeyFormat::TraditionalEc));

    openssl(
        d,
        &["genrsa", "-traditional", "-out", "trad_rsa.key", "2048"],
    );
    assert!(String::from_utf8_lossy(&read(d, "trad_rsa.key")).contains("BEGIN RSA PRIVATE KEY"));
    ext.request_for_key("trad_rsa.key", None, "trad_rsa.csr", "cam.example");
    ext.sign("trad_rsa.csr", "trad_rsa.crt", Validity::Days(30), SAN);
    let installed = pki
        .import(
            ext.chain("trad_rsa.crt").as_bytes(),
            &read(d, "trad_rsa.key"),
            None,
        )
        .expect("traditional rsa");
    assert_eq!(installed.key_format, Some(KeyFormat::TraditionalRsa));
    // The stored PKCS#8 conversion is readable by openssl and is the same key.
    let stored = d.join("pki").join("external.key");
    let ours = openssl(
        d,
        &["pkey", "-in", stored.to_str().expect("path"), "-pubout"],
    );
    let theirs = openssl(d, &["pkey", "-in", "trad_rsa.key", "-pubout"]);
    assert_eq!(ours, theirs);
}

#[test]
fn each_failure_has_its_own_clear_error() {
    let (tmp, ext, mut pki) = setup();
    let d = tmp.path();
    let chain = ext.chain("leaf.crt").into_bytes();
    let key = read(d, "leaf.key");
    let now = OffsetDateTime::now_utc();
    let mut messages = Vec::new();
    let mut record = |e: ImportError| {
        messages.push(e.to_string());
        e
    };

    // Mismatched key: the intermediate's key with the leaf's certificate.
    let e = record(import_err(&mut pki, &chain, &read(d, "inter.key"), None));
    assert!(matches!(e, ImportError::KeyMismatch { .. }), "{e}");

    // Incomplete chain: leaf alone, and leaf + intermediate without the root.
    let e = record(import_err(&mut pki, &read(d, "leaf.crt"), &key, None));
    assert!(
        matches!(&e, ImportError::IncompleteChain { missing_issuer, .. } if missing_issuer.contains("Test Intermediate")),
        "{e}"
    );
    let partial = [read(d, "leaf.crt"), read(d, "inter.crt")].concat();
    let e = import_err(&mut pki, &partial, &key, None);
    assert!(
        matches!(&e, ImportError::IncompleteChain { missing_issuer, .. } if missing_issuer.contains("Test External Root")),
        "{e}"
    );

    // Wrong order / unrelated certificate.
    let broken = [read(d, "leaf.crt"), read(d, "root.crt")].concat();
    let e = record(import_err(&mut pki, &broken, &key, None));
    assert!(
        matches!(e, ImportError::ChainBroken { index: 1, .. }),
        "{e}"
    );

    // Expired and not yet valid (the leaf is valid for 30 days from now).
    let e = match pki.import_at(&chain, &key, None, now + Duration::days(45)) {
        Err(PkiError::Import(e)) => record(e),
        other => panic!("{other:?}"),
    };
    assert!(matches!(e, ImportError::Expired { .. }), "{e}");
    let e = match pki.import_at(&chain, &key, None, now - Duration::days(2)) {
        Err(PkiError::Import(e)) => record(e),
        other => panic!("{other:?}"),
    };
    assert!(matches!(e, ImportError::NotYetValid { .. }), "{e}");

    // Garbage, empty, swapped files.
    let e = record(import_err(
        &mut pki,
        b"this is not a certificate\n",
        &key,
        None,
    ));
    assert!(matches!(e, ImportError::NotPem { .. }), "{e}");
    let e = import_err(
        &mut pki,
        b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
        &key,
        None,
    );
    assert!(matches!(e, ImportError::NotPem { .. }), "{e}");
    let e = record(import_err(
        &mut pki,
        b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        &key,
        None,
    ));
    assert!(
        matches!(e, ImportError::BadCertificate { index: 1, .. }),
        "{e}"
    );
    let e = record(import_err(&mut pki, b"", &key, None));
    assert_eq!(e, ImportError::EmptyCertificate);
    let e = record(import_err(&mut pki, &chain, b"", None));
    assert_eq!(e, ImportError::EmptyKey);
    let e = record(import_err(&mut pki, &key, &key, None));
    assert!(matches!(e, ImportError::KeyInCertSlot { .. }), "{e}");
    let e = record(import_err(&mut pki, &chain, &read(d, "leaf.crt"), None));
    assert_eq!(e, ImportError::CertInKeySlot);
    let e = record(import_err(&mut pki, &chain, &read(d, "leaf.csr"), None));
    assert!(matches!(e, ImportError::NoPrivateKey { .. }), "{e}");
    let der = openssl(
        d,
        &[
            "x509", "-in", "leaf.crt", "-outform", "der", "-out", "leaf.der",
        ],
    );
    assert!(der.is_empty());
    let e = record(import_err(&mut pki, &read(d, "leaf.der"), &key, None));
    assert!(e.to_string().contains("DER"), "{e}");

    messages.sort();
    let n = messages.len();
    messages.dedup();
    assert_eq!(messages.len(), n, "every failure reads differently");
    // Nothing was installed by any failed attempt.
    assert_eq!(pki.active_source(), CertSource::Generated);
}

#[test]
fn a_certificate_without_server_auth_is_refused() {
    let (tmp, ext, mut pki) = setup();
    let d = tmp.path();
    ext.sign_with_extensions(
        "leaf.csr",
        "client.crt",
        Validity::Days(30),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    let chain = ext.chain("client.crt").into_bytes();
    let e = import_err(&mut pki, &chain, &read(d, "leaf.key"), None);
    assert!(matches!(e, ImportError::NotForServerAuth { .. }), "{e}");
}

#[test]
fn reset_falls_back_to_the_generated_certificate() {
    let (tmp, ext, mut pki) = setup();
    let generated = pki.server_certified_key().expect("generated").cert.clone();
    pki.import(
        ext.chain("leaf.crt").as_bytes(),
        &read(tmp.path(), "leaf.key"),
        None,
    )
    .expect("import");
    assert_ne!(pki.server_certified_key().expect("served").cert, generated);
    let (removed, ck) = pki.reset().expect("reset");
    assert_eq!(removed, Some(CertSource::Imported));
    assert_eq!(ck.cert, generated);
    assert!(!tmp.path().join("pki/external.key").exists());
    assert!(!tmp.path().join("pki/external.crt").exists());
    let reopened = Pki::open(pki.dir()).expect("open");
    assert_eq!(reopened.active_source(), CertSource::Generated);
    // Resetting again is harmless and says nothing was removed.
    let (removed, _) = pki.reset().expect("reset again");
    assert_eq!(removed, None);
}

#[test]
fn a_certificate_issued_by_the_system_ca_needs_no_root_in_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let mut pki = new_pki(d);
    request(d, "own", Key::P256, "own.example", Some("DNS:own.example"));
    let signed = pki
        .sign_csr(&String::from_utf8(read(d, "own.csr")).expect("utf8"), 90)
        .expect("sign");
    pki.import(signed.as_bytes(), &read(d, "own.key"), None)
        .expect("anchored at the system CA");
}

#[test]
fn a_stale_handle_does_not_undo_a_change_made_by_another_process() {
    let (tmp, ext, mut cli) = setup();
    // The running server opened the store before the operator imported a certificate.
    let mut server = Pki::open(cli.dir()).expect("server handle");
    cli.import(
        ext.chain("leaf.crt").as_bytes(),
        &read(tmp.path(), "leaf.key"),
        None,
    )
    .expect("import");
    // The server's periodic work writes state; it must start from what is on disk.
    let certs = server.certs_in_use().expect("certs");
    server
        .due_expiry_alerts(OffsetDateTime::now_utc(), &certs)
        .expect("alerts");
    server
        .renew_if_due(OffsetDateTime::now_utc())
        .expect("renew check");
    assert_eq!(
        Pki::open(cli.dir()).expect("open").active_source(),
        CertSource::Imported
    );
    // After reload, the server presents the imported certificate.
    server.reload().expect("reload");
    let served = server.server_certified_key().expect("served");
    let leaf = pem::parse(read(tmp.path(), "leaf.crt")).expect("pem");
    assert_eq!(served.cert[0].as_ref(), leaf.contents());
}
