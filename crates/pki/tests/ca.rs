//! The installation CA, the generated server certificate, CSRs in both directions, renewal and
//! expiry alerts, checked with the real openssl tool where a second opinion exists.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Key, SAN, Validity, external_pki, openssl, openssl_output, read, write};
use time::{Duration, OffsetDateTime};
use vigil_pki::{
    CertRole, CertSource, CsrError, ImportError, InitOptions, LeafKeyType, LeafRequest, LeafUsage,
    Pki, PkiError,
};

fn opts() -> InitOptions {
    InitOptions {
        hostnames: vec![
            "vigil.example".into(),
            "localhost".into(),
            "127.0.0.1".into(),
            "::1".into(),
        ],
        ..InitOptions::default()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn init_creates_a_ca_and_server_certificate_openssl_accepts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let pki = Pki::init(&d.join("pki"), &opts()).expect("init");
    write(d, "ca.pem", pki.ca_cert_pem().as_bytes());
    let p = d.join("pki");
    let server = p.join("server.crt");
    let server = server.to_str().expect("path");

    let out = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "sslserver",
            server,
        ],
    );
    assert!(out.contains(": OK"), "{out}");
    let out = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-verify_hostname",
            "vigil.example",
            server,
        ],
    );
    assert!(out.contains(": OK"), "{out}");
    let out = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-verify_ip",
            "127.0.0.1",
            server,
        ],
    );
    assert!(out.contains(": OK"), "{out}");
    let out = openssl_output(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-verify_hostname",
            "other.example",
            server,
        ],
    );
    assert!(
        !out.status.success(),
        "a name not configured must not verify"
    );

    let ca_text = openssl(d, &["x509", "-in", "ca.pem", "-noout", "-text"]);
    assert!(
        ca_text.contains(&format!("CN = Vigil CA {}", pki.installation_id())),
        "{ca_text}"
    );
    assert!(ca_text.contains("CA:TRUE, pathlen:0"), "{ca_text}");
    assert!(ca_text.contains("prime256v1"), "{ca_text}");
    let srv_text = openssl(d, &["x509", "-in", server, "-noout", "-text"]);
    assert!(
        srv_text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{srv_text}"
    );
    assert!(
        srv_text.contains("DNS:vigil.example") && srv_text.contains("IP Address:0:0:0:0:0:0:0:1"),
        "{srv_text}"
    );

    let status = pki.status().expect("status");
    let now = OffsetDateTime::now_utc();
    let ca = &status.certificates[0];
    assert_eq!(
        (ca.role, ca.source, ca.in_use),
        (CertRole::Ca, CertSource::Generated, true)
    );
    assert!(
        (3649..=3650).contains(&ca.days_to_expiry(now)),
        "{}",
        ca.days_to_expiry(now)
    );
    let srv = &status.certificates[1];
    assert_eq!(srv.role, CertRole::Server);
    assert_eq!(srv.issuer, ca.subject);
    assert!((364..=365).contains(&srv.days_to_expiry(now)));
    assert_eq!(
        srv.sans,
        [
            "DNS:vigil.example",
            "DNS:localhost",
            "IP:127.0.0.1",
            "IP:::1"
        ]
    );
    assert_eq!(status.active_source, CertSource::Generated);
}

#[test]
fn key_files_are_private_and_init_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("pki");
    let mut pki = Pki::init(&p, &opts()).expect("init");
    pki.csr("vigil.example", &[]).expect("csr");
    assert_eq!(mode(&p), 0o700);
    for key in ["ca.key", "server.key", "pending.key"] {
        assert_eq!(mode(&p.join(key)), 0o600, "{key}");
    }
    assert_eq!(mode(&p.join("ca.crt")), 0o644);
    let ca_before = read(&p, "ca.key");
    assert!(matches!(
        Pki::init(&p, &opts()),
        Err(PkiError::AlreadyInitialized { .. })
    ));
    assert_eq!(read(&p, "ca.key"), ca_before);
    let missing = tmp.path().join("nothing");
    let err = Pki::open(&missing).unwrap_err();
    // What to run is the front end's to say (the CLI names `vigil init`).
    assert!(matches!(err, PkiError::NotInitialized { .. }), "{err}");
    assert!(err.to_string().contains("no PKI found"), "{err}");
}

#[test]
fn two_installations_get_different_cas() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = Pki::init(&tmp.path().join("a"), &opts()).expect("a");
    let b = Pki::init(&tmp.path().join("b"), &opts()).expect("b");
    assert_ne!(a.installation_id(), b.installation_id());
    assert_ne!(a.ca_cert_pem(), b.ca_cert_pem());
    assert_ne!(
        read(&tmp.path().join("a"), "ca.key"),
        read(&tmp.path().join("b"), "ca.key")
    );
    // B's server certificate does not verify against A's CA.
    write(tmp.path(), "a.pem", a.ca_cert_pem().as_bytes());
    let out = openssl_output(tmp.path(), &["verify", "-CAfile", "a.pem", "b/server.crt"]);
    assert!(!out.status.success());
}

#[test]
fn bad_init_options_are_refused_with_reasons() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let e = Pki::init(
        &tmp.path().join("x"),
        &InitOptions {
            hostnames: vec!["bad host".into()],
            ..opts()
        },
    )
    .unwrap_err();
    assert!(matches!(e, PkiError::BadName { .. }), "{e}");
    let e = Pki::init(
        &tmp.path().join("y"),
        &InitOptions {
            validity_days: 0,
            ..opts()
        },
    )
    .unwrap_err();
    assert!(matches!(e, PkiError::BadOption(_)), "{e}");
    assert!(!tmp.path().join("x/ca.key").exists());
    let e = Pki::init(
        &tmp.path().join("z"),
        &InitOptions {
            validity_days: 30,
            ..opts()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("renewal starts"), "{e}");
}

#[test]
fn csr_round_trip_through_an_external_openssl_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let ext = external_pki(d);
    let mut pki = Pki::init(&d.join("pki"), &opts()).expect("init");

    let e = pki.install_cert(b"x").unwrap_err();
    assert!(matches!(e, PkiError::NoPendingCsr), "{e}");

    let csr = pki
        .csr(
            "vigil.example",
            &["vigil.example".into(), "10.0.0.5".into()],
        )
        .expect("csr");
    write(d, "ours.csr", csr.as_bytes());
    let out = openssl(d, &["req", "-in", "ours.csr", "-noout", "-verify", "-text"]);
    assert!(
        out.contains("DNS:vigil.example") && out.contains("IP Address:10.0.0.5"),
        "{out}"
    );
    assert_eq!(
        pki.pending_csr().expect("pending").common_name,
        "vigil.example"
    );
    assert_eq!(
        pki.pending_csr_pem().expect("read").as_deref(),
        Some(csr.as_str())
    );

    ext.sign_with_root("ours.csr", "ours.crt", Validity::Days(60), SAN);

    // Leaf alone: the external root is unknown here.
    let e = pki.install_cert(&read(d, "ours.crt")).unwrap_err();
    assert!(
        matches!(e, PkiError::Import(ImportError::IncompleteChain { .. })),
        "{e}"
    );

    // A certificate for another key is refused.
    ext.request("other", Key::P256, "other");
    ext.sign_with_root("other.csr", "other.crt", Validity::Days(60), SAN);
    let e = pki
        .install_cert(&[read(d, "other.crt"), read(d, "root.crt")].concat())
        .unwrap_err();
    assert!(
        matches!(e, PkiError::Import(ImportError::NotForPendingCsr { .. })),
        "{e}"
    );

    let installed = pki
        .install_cert(&[read(d, "ours.crt"), read(d, "root.crt")].concat())
        .expect("install");
    assert_eq!(installed.info.source, CertSource::CsrInstalled);
    assert_eq!(pki.active_source(), CertSource::CsrInstalled);
    assert!(pki.pending_csr().is_none());
    assert!(!d.join("pki/pending.key").exists());
    assert_eq!(mode(&d.join("pki/external.key")), 0o600);
    // The key never left: the installed certificate carries the public key of the CSR.
    let csr_pub = openssl(d, &["req", "-in", "ours.csr", "-noout", "-pubkey"]);
    let crt_pub = openssl(d, &["x509", "-in", "pki/external.crt", "-noout", "-pubkey"]);
    assert_eq!(csr_pub, crt_pub);
    let status = Pki::open(&d.join("pki"))
        .expect("open")
        .status()
        .expect("status");
    assert!(
        status.certificates.iter().any(|c| c.in_use
            && c.source == CertSource::CsrInstalled
            && c.role == CertRole::Server)
    );
}

fn openssl_csr(d: &Path, name: &str, key_args: &[&str], extra: &[&str]) -> String {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec!["req", "-new", "-newkey"];
    args.extend_from_slice(key_args);
    args.extend([
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=cam1.local",
    ]);
    args.extend_from_slice(extra);
    openssl(d, &args);
    String::from_utf8(read(d, &csr)).expect("utf8")
}

#[test]
fn sign_csr_of_openssl_requests_passes_openssl_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let pki = Pki::init(&d.join("pki"), &opts()).expect("init");
    write(d, "ca.pem", pki.ca_cert_pem().as_bytes());
    let san = ["-addext", "subjectAltName=DNS:cam1.local,IP:192.168.1.20"];
    for (name, key_args) in [
        ("rsa", &["rsa:2048"][..]),
        ("p256", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..]),
    ] {
        let csr = openssl_csr(d, name, key_args, &san);
        let cert = pki.sign_csr(&csr, 365).expect(name);
        let crt = format!("{name}.crt");
        write(d, &crt, cert.as_bytes());
        let out = openssl(
            d,
            &[
                "verify",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "sslserver",
                "-verify_hostname",
                "cam1.local",
                &crt,
            ],
        );
        assert!(out.contains(": OK"), "{name}: {out}");
        let text = openssl(d, &["x509", "-in", &crt, "-noout", "-text"]);
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("IP Address:192.168.1.20"), "{text}");
        assert_eq!(name == "rsa", text.contains("Key Encipherment"), "{text}");
        let days = openssl(
            d,
            &[
                "x509",
                "-in",
                &crt,
                "-noout",
                "-checkend",
                &(364 * 86400).to_string(),
            ],
        );
        assert!(days.contains("will not expire"), "{days}");
    }
}

#[test]
fn sign_csr_overrides_a_request_for_a_ca_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let pki = Pki::init(&d.join("pki"), &opts()).expect("init");
    let csr = openssl_csr(
        d,
        "evil",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=keyCertSign",
            "-addext",
            "subjectAltName=DNS:cam1.local",
        ],
    );
    let cert = pki.sign_csr(&csr, 30).expect("sign");
    write(d, "evil.crt", cert.as_bytes());
    let text = openssl(d, &["x509", "-in", "evil.crt", "-noout", "-text"]);
    assert!(
        text.contains("CA:FALSE") && !text.contains("Certificate Sign"),
        "{text}"
    );
}

#[test]
fn sign_csr_errors_are_specific() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let pki = Pki::init(&d.join("pki"), &opts()).expect("init");
    let ec = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

    let csr = openssl_csr(
        d,
        "ext",
        &ec,
        &[
            "-addext",
            "nsComment=made by a camera",
            "-addext",
            "subjectAltName=DNS:cam1.local",
        ],
    );
    let e = pki.sign_csr(&csr, 30).unwrap_err();
    match &e {
        PkiError::Csr(CsrError::UnsupportedExtension { extensions }) => {
            assert!(
                extensions.contains("2.16.840.1.113730.1.13"),
                "{extensions}"
            );
        }
        other => panic!("{other}"),
    }
    assert!(
        e.to_string().contains("create the request without them"),
        "{e}"
    );

    // Tampered request: change the subject after signing.
    let csr = openssl_csr(
        d,
        "tamper",
        &ec,
        &["-addext", "subjectAltName=DNS:cam1.local"],
    );
    let block = pem::parse(&csr).expect("pem");
    let mut der = block.contents().to_vec();
    let pos = der
        .windows(4)
        .position(|w| w == b"cam1")
        .expect("subject bytes");
    der[pos + 3] = b'2';
    let tampered = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    assert!(matches!(
        pki.sign_csr(&tampered, 30),
        Err(PkiError::Csr(CsrError::BadSignature))
    ));

    assert!(matches!(
        pki.sign_csr("garbage", 30),
        Err(PkiError::Csr(CsrError::NotPem { .. }))
    ));
    assert!(matches!(
        pki.sign_csr(pki.ca_cert_pem(), 30),
        Err(PkiError::Csr(CsrError::NotPem { .. }))
    ));
    let junk = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", b"junk".to_vec()));
    assert!(matches!(
        pki.sign_csr(&junk, 30),
        Err(PkiError::Csr(CsrError::Malformed))
    ));
    let csr = openssl_csr(d, "ok", &ec, &["-addext", "subjectAltName=DNS:cam1.local"]);
    assert!(matches!(
        pki.sign_csr(&csr, 0),
        Err(PkiError::Csr(CsrError::BadValidity { days: 0 }))
    ));
    assert!(matches!(
        pki.sign_csr(&csr, 5000),
        Err(PkiError::Csr(CsrError::BadValidity { .. }))
    ));

    // A request with only a CN gets the CN as its SAN.
    let csr = openssl_csr(d, "cnonly", &ec, &[]);
    let cert = pki.sign_csr(&csr, 30).expect("cn only");
    write(d, "cnonly.crt", cert.as_bytes());
    write(d, "ca.pem", pki.ca_cert_pem().as_bytes());
    let out = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-verify_hostname",
            "cam1.local",
            "cnonly.crt",
        ],
    );
    assert!(out.contains(": OK"), "{out}");
}

#[test]
fn issue_leaf_for_other_roles() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let pki = Pki::init(&d.join("pki"), &opts()).expect("init");
    write(d, "ca.pem", pki.ca_cert_pem().as_bytes());
    let rec = pki
        .issue_leaf(&LeafRequest {
            common_name: "recorder-1".into(),
            sans: vec!["recorder-1.example".into(), "10.1.2.3".into()],
            validity_days: 365,
            usage: LeafUsage::TlsServerAndClient,
            key_type: LeafKeyType::EcdsaP256,
        })
        .expect("recording server");
    write(d, "rec.crt", rec.cert_pem.as_bytes());
    let out = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "sslclient",
            "rec.crt",
        ],
    );
    assert!(out.contains(": OK"), "{out}");
    assert!(
        !format!("{rec:?}").contains("PRIVATE"),
        "Debug must not show the key"
    );
    rec.certified_key().expect("usable for TLS");
    vigil_pki::write_secret_file(&d.join("rec.key"), rec.key_pem.as_bytes()).expect("write");
    assert_eq!(mode(&d.join("rec.key")), 0o600);

    let sig = pki
        .issue_leaf(&LeafRequest {
            common_name: "evidence signer recorder-1".into(),
            sans: vec![],
            validity_days: 365,
            usage: LeafUsage::Signing,
            key_type: LeafKeyType::Ed25519,
        })
        .expect("signing");
    write(d, "sig.crt", sig.cert_pem.as_bytes());
    let out = openssl(d, &["verify", "-CAfile", "ca.pem", "sig.crt"]);
    assert!(out.contains(": OK"), "{out}");
    let text = openssl(d, &["x509", "-in", "sig.crt", "-noout", "-text"]);
    assert!(
        text.contains("ED25519") && text.contains("Non Repudiation"),
        "{text}"
    );
    let out = openssl_output(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "sslserver",
            "sig.crt",
        ],
    );
    assert!(
        !out.status.success(),
        "a signing certificate is not a TLS server certificate"
    );
}

#[test]
fn renewal_within_thirty_days_issues_a_new_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let now = OffsetDateTime::now_utc();
    let mut pki = Pki::init_at(&tmp.path().join("pki"), &opts(), now).expect("init");
    let first = pki.server_certified_key().expect("ck").cert[0].clone();
    assert!(
        pki.renew_if_due(now + Duration::days(300))
            .expect("check")
            .is_none()
    );
    assert!(
        pki.renew_if_due(now + Duration::days(334))
            .expect("check")
            .is_none()
    );
    let renewed = pki
        .renew_if_due(now + Duration::days(336))
        .expect("renew")
        .expect("due");
    assert_ne!(renewed.cert[0], first);
    assert_eq!(
        pki.server_certified_key().expect("ck").cert[0],
        renewed.cert[0]
    );
    // Same names, new key.
    let status = pki.status().expect("status");
    let srv = status
        .certificates
        .iter()
        .find(|c| c.role == CertRole::Server)
        .expect("server");
    assert_eq!(srv.sans[0], "DNS:vigil.example");
    assert!(srv.not_after > now + Duration::days(336 + 364));

    // New host names reissue the certificate with them.
    let names = vec!["nvr.example".to_string(), "192.0.2.7".to_string()];
    let reissued = pki
        .set_hostnames(&names, now)
        .expect("set")
        .expect("served");
    assert_ne!(reissued.cert[0], renewed.cert[0]);
    let status = Pki::open(pki.dir())
        .expect("open")
        .status()
        .expect("status");
    let srv = status
        .certificates
        .iter()
        .find(|c| c.role == CertRole::Server)
        .expect("server");
    assert_eq!(srv.sans, ["DNS:nvr.example", "IP:192.0.2.7"]);
    assert!(pki.set_hostnames(&names, now).expect("same").is_none());
    assert!(pki.set_hostnames(&[], now).is_err());
}

#[test]
fn expiry_alerts_fire_once_per_threshold_and_persist() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("pki");
    let now = OffsetDateTime::now_utc();
    let mut pki = Pki::init_at(&p, &opts(), now).expect("init");
    let certs = pki.certs_in_use().expect("certs");
    let server = certs
        .iter()
        .find(|c| c.role == CertRole::Server)
        .expect("server")
        .clone();
    let only_server = vec![server.clone()];
    let at = |days_before: f64| server.not_after - Duration::seconds_f64(days_before * 86_400.0);

    let mut fired = Vec::new();
    for days_before in [
        40.0, 30.0, 29.0, 20.0, 14.0, 13.5, 7.0, 6.0, 1.0, 0.5, -1.0, -2.0,
    ] {
        for a in pki
            .due_expiry_alerts(at(days_before), &only_server)
            .expect("alerts")
        {
            assert!(a.renewable);
            assert!(a.message.contains("renewal has failed"), "{}", a.message);
            fired.push((days_before, a.threshold_days));
        }
    }
    assert_eq!(
        fired,
        [(30.0, 30), (14.0, 14), (7.0, 7), (1.0, 1), (-1.0, 0)]
    );

    // Persisted: a reopened store does not repeat them.
    let mut reopened = Pki::open(&p).expect("open");
    assert!(
        reopened
            .due_expiry_alerts(at(0.5), &only_server)
            .expect("alerts")
            .is_empty()
    );

    // A server that was off for a while gets only the most urgent alert.
    let tmp2 = tempfile::tempdir().expect("tempdir");
    let mut other = Pki::init_at(&tmp2.path().join("pki"), &opts(), now).expect("init");
    let certs = other.certs_in_use().expect("certs");
    let srv: Vec<_> = certs
        .into_iter()
        .filter(|c| c.role == CertRole::Server)
        .collect();
    let alerts = other
        .due_expiry_alerts(srv[0].not_after - Duration::days(5), &srv)
        .expect("alerts");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].threshold_days, 7);
    assert!(
        other
            .due_expiry_alerts(srv[0].not_after - Duration::days(4), &srv)
            .expect("a")
            .is_empty()
    );
}

#[test]
fn imported_certificates_get_alerts_that_say_they_cannot_be_renewed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let ext = external_pki(d);
    ext.leaf("leaf", Key::P256, SAN, Validity::Days(20));
    let mut pki = Pki::init(&d.join("pki"), &opts()).expect("init");
    pki.import(ext.chain("leaf.crt").as_bytes(), &read(d, "leaf.key"), None)
        .expect("import");

    let now = OffsetDateTime::now_utc();
    // The imported leaf expires in 20 days: renewal leaves it alone, the alert fires at 30.
    assert!(pki.renew_if_due(now).expect("renew").is_none());
    let certs = pki.certs_in_use().expect("certs");
    assert!(certs.iter().any(|c| c.role == CertRole::Chain));
    let alerts = pki.due_expiry_alerts(now, &certs).expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].threshold_days, 30);
    assert_eq!(alerts[0].source, CertSource::Imported);
    assert!(!alerts[0].renewable);
    assert!(
        alerts[0]
            .message
            .contains("import a renewed certificate and its key"),
        "{}",
        alerts[0].message
    );
    assert!(
        pki.due_expiry_alerts(now, &certs)
            .expect("again")
            .is_empty()
    );
}
