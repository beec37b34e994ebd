//! `vigil camera add --onvif` and `vigil camera discover` against real ONVIF devices
//! (vigil_testkit::onvif, oxvif's mock device): added over HTTPS with a certificate from the
//! installation CA (recording and live grid streams, identity), a self-signed device refused
//! with its fingerprint and the flag to accept it, found again by discovery as added; the
//! password only from a file and never printed.

mod common;

use common::Vigil;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use vigil_pki::{LeafKeyType, LeafRequest, LeafUsage, Pki};
use vigil_testkit::onvif::{OnvifDevice, OnvifPeer};

const PASSWORD: &str = "cli-Onvif-Secret";

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn cameras_are_added_by_onvif_over_verified_https_and_discovered_as_added() {
    let v = Vigil::init(2);
    let mut peer = OnvifPeer::start(&[
        OnvifDevice::new("SN-CLI-1", PASSWORD),
        OnvifDevice::new("SN-CLI-2", PASSWORD),
    ]);
    let pki = Pki::open(&v.data.join("pki")).unwrap();
    let leaf = pki
        .issue_leaf(&LeafRequest {
            common_name: "camera".into(),
            sans: vec!["127.0.0.1".into()],
            validity_days: 30,
            usage: LeafUsage::TlsServer,
            key_type: LeafKeyType::EcdsaP256,
        })
        .unwrap();
    let fingerprint = vigil_pki::fingerprint_sha256(&leaf.cert_der);
    let port = peer.serve_https(
        0,
        vec![leaf.cert_der.clone()],
        PrivateKeyDer::Pkcs8(leaf.key_der.clone_key()),
    );
    let pw = v.dir.path().join("onvif.pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let pw = pw.to_str().unwrap();

    let out = v.ok(&[
        "camera",
        "add",
        "lobby",
        "--onvif",
        &format!("https://127.0.0.1:{port}"),
        "--username",
        "admin",
        "--password-file",
        pw,
    ]);
    assert!(out.contains("recording profile"), "{out}");
    assert!(out.contains("live grid profile"), "{out}");
    assert!(out.contains("serial SN-CLI-1"), "{out}");
    assert!(out.contains(&fingerprint), "{out}");
    assert!(!out.contains(PASSWORD));
    let list: serde_json::Value =
        serde_json::from_str(&v.ok(&["camera", "list", "--json"])).unwrap();
    assert_eq!(list[0]["secondary"]["mode"], "live", "{list}");
    assert_eq!(list[0]["has_password"], true);

    // A self-signed device: refused with the fingerprint and how to accept it.
    let key = openssl_self_signed();
    let self_port = peer.serve_https(1, vec![key.0.clone()], key.1);
    let address = format!("https://127.0.0.1:{self_port}");
    let args = [
        "camera",
        "add",
        "gate",
        "--onvif",
        &address,
        "--username",
        "admin",
        "--password-file",
        pw,
    ];
    let refused = v.cmd(&args);
    let text = output(&refused);
    assert!(!refused.status.success(), "{text}");
    assert!(text.contains(&format!("--fingerprint {}", key.2)), "{text}");
    assert!(!text.contains(PASSWORD));
    let mut pinned = args.to_vec();
    pinned.extend(["--fingerprint", &key.2]);
    let out = v.ok(&pinned);
    assert!(out.contains("serial SN-CLI-2"), "{out}");

    // Plain HTTP needs saying so.
    let refused = v.cmd(&[
        "camera",
        "add",
        "plain",
        "--onvif",
        &peer.device_url(0),
        "--username",
        "admin",
        "--password-file",
        pw,
    ]);
    assert!(
        output(&refused).contains("--allow-http"),
        "{}",
        output(&refused)
    );

    let out = v.ok(&[
        "camera",
        "discover",
        "--subnet",
        "127.0.0.0/29",
        "--no-multicast",
        "--wait",
        "1s",
        "--port",
        &peer.discovery_port().to_string(),
        "--json",
    ]);
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 2, "{out}");
    let first = found
        .iter()
        .find(|d| d["address"] == "127.0.0.1")
        .unwrap_or_else(|| panic!("{out}"));
    // Both test devices stream from 127.0.0.1 (one camera per address in real life), so the
    // device answering there is known as added, under either name.
    assert!(
        ["lobby", "gate"].contains(&first["added_as"].as_str().unwrap_or("")),
        "{out}"
    );
    let table = v.ok(&[
        "camera",
        "discover",
        "--subnet",
        "127.0.0.0/29",
        "--no-multicast",
        "--wait",
        "1s",
        "--port",
        &peer.discovery_port().to_string(),
    ]);
    assert!(table.contains("VigilTest-SN-CLI-1"), "{table}");
    assert!(table.contains("ADDED"), "{table}");
}

/// A self-signed certificate for 127.0.0.1, made by openssl: DER, key, fingerprint.
fn openssl_self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=camera"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output(&out));
    let der = CertificateDer::from_pem_file(&cert).unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let fp = vigil_pki::fingerprint_sha256(&der);
    (der, key, fp)
}
