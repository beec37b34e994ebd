//! The certificates API with the real `openssl` tool as the other side: status and the public
//! CA certificate, signing camera CSRs, importing chains with encrypted keys (PKCS#8 and legacy
//! PEM), refusals that change nothing, the CSR flow with an external CA, reset and renewal, and
//! fresh TLS handshakes (`openssl s_client` against real listeners) presenting the new
//! certificate without a restart.

mod common;

use std::path::{Path, PathBuf};

use axum::http::{Method, StatusCode, header};
use common::{Auth, Harness};
use serde_json::{Value, json};
use vigil_pki::SessionPolicy;
use vigil_pki::time::{Duration as TimeDuration, OffsetDateTime};
use vigil_testkit::external_ca::{
    ExternalCa, Key, Validity, encrypted_p256_key, openssl, openssl_output, request,
};

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `AB:CD:...` as `openssl x509 -fingerprint -sha256` prints it (and the API reports it).
fn fingerprint_of_pem(dir: &Path, file: &str) -> String {
    let out = openssl(
        dir,
        &["x509", "-in", file, "-noout", "-fingerprint", "-sha256"],
    );
    out.trim().split_once('=').unwrap().1.to_owned()
}

/// The names the customer's CA puts in the certificates it signs.
const SAN: &str = "DNS:localhost,IP:127.0.0.1";

/// A customer's PKI made with openssl: a root and an intermediate CA.
fn customer_ca(dir: &Path) -> ExternalCa {
    ExternalCa::with_intermediate(dir, "Customer Root", "Customer Intermediate")
}

/// Installs the certificate (chain) issued for the pending CSR.
async fn install(h: &Harness, admin: &Auth, chain: impl Into<Value>) -> common::Answer {
    let body = json!({ "certificate_pem": chain.into() });
    h.post("/api/v1/certificates/install", admin, Some(body))
        .await
}

/// The fingerprint of the certificate a fresh TLS handshake with `port` presents, verified
/// against `ca_file` when given.
async fn served_fingerprint(dir: &Path, port: u16, ca_file: Option<&Path>) -> String {
    let dir = dir.to_path_buf();
    let ca = ca_file.map(Path::to_path_buf);
    tokio::task::spawn_blocking(move || {
        let connect = format!("127.0.0.1:{port}");
        let mut args = vec![
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "localhost",
            "-no_ticket",
        ];
        let ca_str = ca.as_ref().map(|c| c.to_string_lossy().into_owned());
        if let Some(ca) = &ca_str {
            args.extend(["-CAfile", ca.as_str(), "-verify_return_error"]);
        }
        let out = openssl_output(&dir, &args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "s_client failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if ca_str.is_some() {
            assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        }
        let start = text
            .find("-----BEGIN CERTIFICATE-----")
            .expect("a certificate");
        let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
        write(&dir, "served.pem", &text[start..end]);
        fingerprint_of_pem(&dir, "served.pem")
    })
    .await
    .unwrap()
}

fn server_cert(status: &Value) -> Value {
    status["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "server" && c["in_use"] == true)
        .cloned()
        .unwrap_or_else(|| panic!("no served server certificate in {status}"))
}

async fn status(h: &Harness, admin: &Auth) -> Value {
    let a = h.get("/api/v1/certificates", admin).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.json()
}

#[tokio::test]
async fn status_lists_the_ca_and_server_certificate_and_the_ca_is_public() {
    let h = Harness::new();
    let admin = h.admin().await;
    let s = status(&h, &admin).await;
    assert_eq!(s["active_source"], "generated");
    assert!(s["pending_csr"].is_null());
    let ca = &s["certificates"][0];
    assert_eq!(ca["role"], "ca");
    assert_eq!(ca["is_ca"], true);
    assert_eq!(ca["in_use"], true);
    assert!(ca["days_left"].as_i64().unwrap() > 3000);
    let srv = server_cert(&s);
    assert_eq!(srv["source"], "generated");
    assert_eq!(srv["renewable"], true);
    assert!(
        (364..=365).contains(&srv["days_left"].as_i64().unwrap()),
        "{srv}"
    );
    let sans: Vec<&str> = srv["sans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        sans.contains(&"DNS:localhost") && sans.contains(&"IP:127.0.0.1"),
        "{sans:?}"
    );
    assert_eq!(srv["issuer"], ca["subject"]);

    // ca.pem needs no authentication and is exactly the installation's CA.
    let a = h.get("/api/v1/certificates/ca.pem", &Auth::None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/x-pem-file");
    let expected = h.state.pki.lock().unwrap().ca_cert_pem().to_owned();
    assert_eq!(a.text(), expected);
    let d = h.dir.path();
    write(d, "downloaded-ca.pem", &a.text());
    assert_eq!(
        fingerprint_of_pem(d, "downloaded-ca.pem"),
        ca["fingerprint_sha256"]
    );

    // The served certificate is the one listed, and it chains to the downloaded CA.
    let (addr, _) = h.serve(false).await;
    let served = served_fingerprint(d, addr.port(), Some(&d.join("downloaded-ca.pem"))).await;
    assert_eq!(served, srv["fingerprint_sha256"]);
}

#[tokio::test]
async fn camera_csrs_from_openssl_are_signed_and_verify() {
    let h = Harness::new();
    let admin = h.admin().await;
    let d = h.dir.path();
    let ca = h.ca_file();
    request(
        d,
        "cam",
        Key::P256,
        "cam1.local",
        Some("DNS:cam1.local,IP:192.0.2.10"),
    );
    let a = h
        .post(
            "/api/v1/certificates/sign-csr",
            &admin,
            Some(json!({"csr_pem": read(d, "cam.csr"), "days": 90})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let body = a.json();
    write(d, "cam.crt", body["certificate_pem"].as_str().unwrap());
    let out = openssl(d, &["verify", "-CAfile", ca.to_str().unwrap(), "cam.crt"]);
    assert!(out.contains("cam.crt: OK"), "{out}");
    assert_eq!(body["ca_pem"].as_str().unwrap(), read(d, "ca.pem"));
    assert!((89..=90).contains(&body["certificate"]["days_left"].as_i64().unwrap()));
    assert_eq!(
        fingerprint_of_pem(d, "cam.crt"),
        body["certificate"]["fingerprint_sha256"]
    );
    let text = openssl(
        d,
        &["x509", "-in", "cam.crt", "-noout", "-ext", "subjectAltName"],
    );
    assert!(
        text.contains("cam1.local") && text.contains("192.0.2.10"),
        "{text}"
    );

    // Garbage and bad validity are 400 with the library's message.
    for (body, code, needle) in [
        (
            json!({"csr_pem": "hello"}),
            "invalid_csr",
            "no certificate request found",
        ),
        (
            json!({"csr_pem": read(d, "cam.csr"), "days": 0}),
            "invalid_csr",
            "1 to 825 days",
        ),
        (
            json!({"csr_pem": read(d, "cam.csr"), "days": 5000}),
            "invalid_csr",
            "1 to 825 days",
        ),
    ] {
        let a = h
            .post("/api/v1/certificates/sign-csr", &admin, Some(body))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
        assert_eq!(a.code(), code);
        assert!(
            a.json()["message"].as_str().unwrap().contains(needle),
            "{}",
            a.text()
        );
    }
    let log = h
        .get("/api/v1/audit?kind=certificate_operation", &admin)
        .await
        .json();
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "failures are not operations: {log}");
    assert_eq!(entries[0]["detail"]["operation"], "sign_csr");
    assert_eq!(entries[0]["detail"]["subject"], "CN=cam1.local");
}

/// Makes `name.key` (encrypted with `pass` in the given style) and `name.crt` signed by the
/// external intermediate.
fn encrypted_leaf(ext: &ExternalCa, name: &str, legacy: bool, pass: &str) {
    let d = &ext.dir;
    let passarg = format!("pass:{pass}");
    let key = format!("{name}.key");
    if legacy {
        openssl(d, &["genrsa", "-out", "plain-rsa.key", "2048"]);
        openssl(
            d,
            &[
                "rsa",
                "-in",
                "plain-rsa.key",
                "-aes256",
                "-traditional",
                "-passout",
                &passarg,
                "-out",
                &key,
            ],
        );
        let text = read(d, &key);
        assert!(text.contains("Proc-Type: 4,ENCRYPTED"), "{text}");
    } else {
        encrypted_p256_key(d, &key, pass);
        assert!(read(d, &key).contains("BEGIN ENCRYPTED PRIVATE KEY"));
    }
    let csr = format!("{name}.csr");
    ext.request_for_key(&key, Some(pass), &csr, "vigil.customer.example");
    ext.sign(&csr, &format!("{name}.crt"), Validity::Days(200), SAN);
}

#[tokio::test]
async fn imports_encrypted_keys_and_serves_them_without_restart() {
    let h = Harness::new();
    let admin = h.admin().await;
    let d = h.dir.path().to_path_buf();
    let ext_dir = d.join("ext");
    let ext = customer_ca(&ext_dir);
    let pass = "correct-passphrase-7";
    encrypted_leaf(&ext, "pkcs8", false, pass);
    encrypted_leaf(&ext, "legacy", true, pass);
    let (addr, _) = h.serve(false).await;
    let generated_fp = served_fingerprint(&d, addr.port(), None).await;
    let before = status(&h, &admin).await;

    for name in ["pkcs8", "legacy"] {
        let chain = ext.chain(&format!("{name}.crt"));
        let key = read(&ext_dir, &format!("{name}.key"));
        // Without or with a wrong passphrase: refused, nothing changes.
        for (passphrase, code) in [
            (None, "passphrase_required"),
            (Some("wrong-one"), "wrong_passphrase"),
        ] {
            let mut body = json!({"certificate_pem": chain, "key_pem": key});
            if let Some(p) = passphrase {
                body["passphrase"] = json!(p);
            }
            let a = h
                .post("/api/v1/certificates/import", &admin, Some(body))
                .await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{name}: {}", a.text());
            assert_eq!(a.code(), code, "{name}");
        }
        let expected_fp = fingerprint_of_pem(&ext_dir, &format!("{name}.crt"));
        let a = h
            .post(
                "/api/v1/certificates/import",
                &admin,
                Some(json!({"certificate_pem": chain, "key_pem": key, "passphrase": pass})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.text());
        let body = a.text();
        assert!(
            !body.contains(pass) && !body.contains("PRIVATE KEY"),
            "secrets echoed: {body}"
        );
        let installed = a.json();
        assert_eq!(
            installed["certificate"]["fingerprint_sha256"],
            expected_fp.as_str()
        );
        assert_eq!(installed["certificate"]["source"], "imported");
        assert!(
            installed["key_format"]
                .as_str()
                .unwrap()
                .contains("encrypted"),
            "{installed}"
        );
        let s = status(&h, &admin).await;
        assert_eq!(s["active_source"], "imported");
        assert_eq!(server_cert(&s)["fingerprint_sha256"], expected_fp.as_str());
        // A fresh handshake presents it, trusted through the customer's root.
        let served = served_fingerprint(&d, addr.port(), Some(&ext.root_cert())).await;
        assert_eq!(served, expected_fp, "{name} is not served after import");
    }
    assert_ne!(generated_fp, fingerprint_of_pem(&ext_dir, "legacy.crt"));
    // Nothing before the first successful import changed anything.
    assert_eq!(before["active_source"], "generated");

    // The audit log records both imports without key material or passphrase.
    let log = h
        .get("/api/v1/audit/export?kind=certificate_operation", &admin)
        .await
        .text();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(!log.contains(pass) && !log.contains("PRIVATE KEY"));

    // Reset: the generated certificate is served again, chained to the installation CA.
    let a = h.post("/api/v1/certificates/reset", &admin, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["removed"], "imported");
    assert_eq!(a.json()["status"]["active_source"], "generated");
    let served = served_fingerprint(&d, addr.port(), Some(&h.ca_file())).await;
    assert_eq!(served, generated_fp);
    let a = h.post("/api/v1/certificates/reset", &admin, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.json()["removed"].is_null());
    assert_eq!(a.json()["served"], false);
}

#[tokio::test]
async fn unusable_material_is_a_precise_400_and_changes_nothing() {
    let h = Harness::new();
    let admin = h.admin().await;
    let d = h.dir.path().to_path_buf();
    let ext_dir = d.join("ext");
    let ext = customer_ca(&ext_dir);
    // A good leaf with its key, and an unrelated key.
    ext.request("good", Key::P256, "good.example");
    ext.sign("good.csr", "good.crt", Validity::Days(200), SAN);
    openssl(
        &ext_dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "other.key",
        ],
    );
    // An expired certificate (validity in 2020) signed by the intermediate.
    ext.sign(
        "good.csr",
        "expired.crt",
        Validity::Between("20200101000000Z", "20200201000000Z"),
        SAN,
    );
    let (addr, _) = h.serve(false).await;
    let served_before = served_fingerprint(&d, addr.port(), None).await;
    let before = status(&h, &admin).await;

    let good_chain = ext.chain("good.crt");
    let good_key = read(&ext_dir, "good.key");
    let key_line = good_key.lines().nth(1).unwrap().to_owned();
    let key_line = key_line.as_str();
    let cases = [
        (
            "garbage certificate",
            json!({"certificate_pem": "hello", "key_pem": good_key}),
            "invalid_certificate",
            "no PEM data",
        ),
        (
            "garbage key",
            json!({"certificate_pem": good_chain, "key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
            "invalid_certificate",
            "private key cannot be parsed",
        ),
        (
            "swapped",
            json!({"certificate_pem": good_key, "key_pem": good_chain}),
            "invalid_certificate",
            "swapped",
        ),
        (
            "key of another certificate",
            json!({"certificate_pem": good_chain, "key_pem": read(&ext_dir, "other.key")}),
            "invalid_certificate",
            "does not belong to the certificate",
        ),
        (
            "expired",
            json!({"certificate_pem": ext.chain("expired.crt"), "key_pem": good_key}),
            "invalid_certificate",
            "expired on",
        ),
        (
            "incomplete chain",
            json!({"certificate_pem": read(&ext_dir, "good.crt"), "key_pem": good_key}),
            "invalid_certificate",
            "chain is incomplete",
        ),
        (
            "passphrase on a plain key is ignored but chain still broken",
            json!({"certificate_pem": read(&ext_dir, "good.crt"), "key_pem": good_key, "passphrase": "x"}),
            "invalid_certificate",
            "incomplete",
        ),
    ];
    for (what, body, code, needle) in cases {
        let a = h
            .post("/api/v1/certificates/import", &admin, Some(body))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", a.text());
        assert_eq!(a.code(), code, "{what}");
        let msg = a.json()["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(needle), "{what}: {msg}");
        assert!(
            !msg.contains(key_line),
            "{what}: key material echoed: {msg}"
        );
    }
    // Missing fields and unknown fields are JSON errors too.
    for body in [
        json!({"certificate_pem": "x"}),
        json!({"certificate_pem": "x", "key_pem": "y", "pass": "z"}),
    ] {
        let a = h
            .post("/api/v1/certificates/import", &admin, Some(body))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
    }
    // Install without a pending CSR is a conflict; CSR with an empty name a 400.
    let a = install(&h, &admin, good_chain.as_str()).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    assert_eq!(a.code(), "no_pending_csr");
    let a = h
        .post(
            "/api/v1/certificates/csr",
            &admin,
            Some(json!({"common_name": " "})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    let a = h
        .post(
            "/api/v1/certificates/csr",
            &admin,
            Some(json!({"common_name": "ok.example", "sans": ["bad name!"]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());

    assert_eq!(
        status(&h, &admin).await,
        before,
        "a refused request changed the PKI"
    );
    assert_eq!(
        served_fingerprint(&d, addr.port(), None).await,
        served_before
    );
    let log = h
        .get("/api/v1/audit?kind=certificate_operation", &admin)
        .await
        .json();
    assert!(log["entries"].as_array().unwrap().is_empty(), "{log}");
}

#[tokio::test]
async fn csr_flow_with_an_external_ca_keeps_the_key_on_the_server() {
    let h = Harness::new();
    let admin = h.admin().await;
    let d = h.dir.path().to_path_buf();
    let ext_dir = d.join("ext");
    let ext = customer_ca(&ext_dir);
    let (addr, _) = h.serve(false).await;

    assert_eq!(
        h.get("/api/v1/certificates/csr", &admin).await.status,
        StatusCode::NOT_FOUND
    );
    let a = h.post("/api/v1/certificates/csr",
        &admin,
        Some(json!({"common_name": "vigil.customer.example", "sans": ["localhost", "127.0.0.1"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let created = a.json();
    assert!(!a.text().contains("PRIVATE KEY"));
    let csr = created["csr_pem"].as_str().unwrap().to_owned();
    assert_eq!(
        created["pending"]["sans"],
        json!(["localhost", "127.0.0.1"])
    );
    let again = h.get("/api/v1/certificates/csr", &admin).await.json();
    assert_eq!(again["csr_pem"], csr.as_str());
    write(&ext_dir, "ours.csr", &csr);
    let out = openssl(
        &ext_dir,
        &["req", "-in", "ours.csr", "-noout", "-verify", "-subject"],
    );
    assert!(out.contains("vigil.customer.example"), "{out}");
    assert_eq!(
        status(&h, &admin).await["pending_csr"]["common_name"],
        "vigil.customer.example"
    );

    // A certificate for some other key is refused; the request stays pending.
    ext.request("other", Key::P256, "other.example");
    ext.sign("other.csr", "other.crt", Validity::Days(200), SAN);
    let a = install(&h, &admin, ext.chain("other.crt")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("pending certificate request")
    );

    ext.sign("ours.csr", "ours.crt", Validity::Days(200), SAN);
    let a = install(&h, &admin, ext.chain("ours.crt")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["certificate"]["source"], "csr-installed");
    let s = status(&h, &admin).await;
    assert_eq!(s["active_source"], "csr-installed");
    assert!(s["pending_csr"].is_null());
    let expected = fingerprint_of_pem(&ext_dir, "ours.crt");
    let served = served_fingerprint(&d, addr.port(), Some(&ext.root_cert())).await;
    assert_eq!(served, expected);
    let ops: Vec<String> = h
        .get("/api/v1/audit?kind=certificate_operation", &admin)
        .await
        .json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["operation"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ops, ["install", "csr"], "newest first");
}

/// Serves a generated certificate issued 340 days ago: 25 days left, inside the 30-day
/// renewal window.
async fn age_server_certificate(h: &Harness) {
    let pki = h.state.pki.clone();
    let tls = h.state.tls.clone();
    tokio::task::spawn_blocking(move || {
        let mut pki = pki.lock().unwrap();
        let ck = pki
            .renew_server_cert(OffsetDateTime::now_utc() - TimeDuration::days(340))
            .unwrap();
        tls.rotate(ck, SessionPolicy::Invalidate).unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn renew_replaces_a_soon_expiring_certificate_without_restart() {
    let h = Harness::new();
    let admin = h.admin().await;
    let d = h.dir.path().to_path_buf();
    let (addr, _) = h.serve(false).await;
    age_server_certificate(&h).await;
    let old = server_cert(&status(&h, &admin).await);
    let left = old["days_left"].as_i64().unwrap();
    assert!(
        (23..=25).contains(&left),
        "aged certificate has {left} days left"
    );
    assert_eq!(
        served_fingerprint(&d, addr.port(), None).await,
        old["fingerprint_sha256"]
    );

    let a = h.post("/api/v1/certificates/renew", &admin, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["served"], true);
    let new = server_cert(&a.json()["status"]);
    assert!(
        (364..=365).contains(&new["days_left"].as_i64().unwrap()),
        "{new}"
    );
    assert_ne!(new["fingerprint_sha256"], old["fingerprint_sha256"]);
    let served = served_fingerprint(&d, addr.port(), Some(&h.ca_file())).await;
    assert_eq!(served, new["fingerprint_sha256"]);
    let log = h
        .get("/api/v1/audit?kind=certificate_operation", &admin)
        .await
        .json();
    assert_eq!(log["entries"][0]["detail"]["operation"], "renew");
    assert_eq!(
        log["entries"][0]["detail"]["fingerprint_sha256"],
        new["fingerprint_sha256"]
    );
}

async fn maintenance_pass(h: &Harness) -> vigil_web::maintenance::MaintenanceReport {
    let state = h.state.clone();
    tokio::task::spawn_blocking(move || {
        vigil_web::maintenance::certificate_maintenance(&state, OffsetDateTime::now_utc())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_server_renews_a_due_certificate_by_itself_without_restart() {
    let h = Harness::new();
    let admin = h.admin().await;
    let d = h.dir.path().to_path_buf();
    let (addr, _) = h.serve(false).await;
    age_server_certificate(&h).await;
    let old = server_cert(&status(&h, &admin).await)["fingerprint_sha256"].clone();
    assert_eq!(served_fingerprint(&d, addr.port(), None).await, old);

    let report = maintenance_pass(&h).await;
    assert!(report.renewed, "{report:?}");
    let new = server_cert(&status(&h, &admin).await);
    assert_ne!(new["fingerprint_sha256"], old);
    assert!(
        (364..=365).contains(&new["days_left"].as_i64().unwrap()),
        "{new}"
    );
    // A fresh handshake on the same listener gets the new certificate: no restart.
    assert_eq!(
        served_fingerprint(&d, addr.port(), None).await,
        new["fingerprint_sha256"]
    );
    // Nothing is due any more.
    let again = maintenance_pass(&h).await;
    assert!(!again.renewed);
    let ops: Vec<_> = h
        .state
        .access
        .audit_query(&Default::default())
        .unwrap()
        .into_iter()
        .filter_map(|e| e.detail["operation"].as_str().map(str::to_owned))
        .collect();
    assert!(ops.iter().any(|o| o == "automatic_renewal"), "{ops:?}");
}

#[tokio::test]
async fn a_customer_ca_is_trusted_for_cameras_listed_with_expiry_and_removed() {
    let h = Harness::new();
    let admin = h.admin().await;
    let d = h.dir.path();
    let ext = customer_ca(d);
    let path = "/api/v1/certificates/camera-cas";
    assert_eq!(h.get(path, &admin).await.json(), json!([]));
    // A camera's own certificate is not a CA: refused, nothing trusted.
    ext.leaf("cam", Key::P256, SAN, Validity::Days(30));
    let a = h
        .post(
            path,
            &admin,
            Some(json!({"certificate_pem": read(d, "cam.crt")})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(a.code(), "not_a_ca");
    assert!(a.text().contains("pin its fingerprint"), "{}", a.text());
    let a = h
        .post(path, &admin, Some(json!({"certificate_pem": "hello"})))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(a.code(), "invalid_certificate");

    // The root and the intermediate, in one PEM.
    let pem = format!("{}{}", read(d, "inter.crt"), ext.root_pem());
    let a = h
        .post(path, &admin, Some(json!({"certificate_pem": pem})))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let added = a.json();
    assert_eq!(added.as_array().unwrap().len(), 2);
    let root_fp = fingerprint_of_pem(d, "root.crt");
    assert!(
        added
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["fingerprint_sha256"] == root_fp.as_str() && c["role"] == "camera-ca"),
        "{added}"
    );
    // In the installation's certificate list too, with days to expiry.
    let all = status(&h, &admin).await;
    let cams: Vec<&Value> = all["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "camera-ca")
        .collect();
    assert_eq!(cams.len(), 2, "{all}");
    assert!(cams.iter().all(|c| c["days_left"].as_i64().unwrap() > 900));

    let by_fp = format!("{path}/{}", root_fp.replace(':', ""));
    let gone = h.call(Method::DELETE, &by_fp, &admin, None).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.text());
    assert_eq!(gone.json()["fingerprint_sha256"], root_fp.as_str());
    assert_eq!(
        h.get(path, &admin).await.json().as_array().unwrap().len(),
        1
    );
    let again = h.call(Method::DELETE, &by_fp, &admin, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text());
    assert_eq!(again.code(), "unknown_camera_ca");

    // Both changes are audited with who made them.
    let log = h
        .get("/api/v1/audit?kind=certificate_operation", &admin)
        .await
        .json();
    let ops: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["operation"].as_str().unwrap())
        .collect();
    assert!(
        ops.contains(&"trust_camera_ca") && ops.contains(&"remove_camera_ca"),
        "{log}"
    );
}
