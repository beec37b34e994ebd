//! The client against real ONVIF devices (vigil_testkit::onvif: oxvif's mock device, written
//! independently of this crate): discovery, identity, profiles, stream URIs, WS-Security
//! digest, SetUser, and HTTPS with the camera certificate rules.

use std::net::Ipv4Addr;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use vigil_media::ingest_tls::TrustStore;
use vigil_onvif::client::MediaVersion;
use vigil_onvif::discovery::{self, Sweep};
use vigil_onvif::{Client, Credentials, OnvifError, Options, Target};
use vigil_pki::{InitOptions, LeafKeyType, LeafRequest, LeafUsage, Pki};
use vigil_testkit::onvif::{OnvifDevice, OnvifPeer};

fn client(url: &str, user: &str, password: &str, options: Options) -> Client {
    Client::new(
        Target::parse(url).unwrap(),
        Some(Credentials::new(user, password)),
        options,
    )
}

fn no_trust() -> Options {
    Options::new(TrustStore::new(&[], false))
}

#[tokio::test]
async fn a_unicast_sweep_over_loopback_finds_every_device_started() {
    let peer = OnvifPeer::start(&[
        OnvifDevice::new("SN-A", "pw-a"),
        OnvifDevice::new("SN-B", "pw-b"),
    ]);
    let started = std::time::Instant::now();
    let result = discovery::sweep(&Sweep {
        multicast: false,
        unicast: discovery::hosts("127.0.0.0/29").unwrap(),
        port: peer.discovery_port(),
        wait: Duration::from_millis(1500),
        ..Sweep::default()
    })
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut found: Vec<(Ipv4Addr, String, String)> = result
        .found
        .iter()
        .map(|f| {
            let std::net::IpAddr::V4(ip) = f.from.ip() else {
                panic!("{f:?}")
            };
            (
                ip,
                f.device.scope("name").unwrap_or_default(),
                f.device.xaddrs[0].clone(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            (peer.discovery_address(0), "SN-A".into(), peer.device_url(0)),
            (peer.discovery_address(1), "SN-B".into(), peer.device_url(1)),
        ],
        "{result:?}"
    );
    assert_eq!(result.unreadable, 0);
    // The address each device announced is one Vigil reads its identity from.
    for (i, (serial, password)) in [("SN-A", "pw-a"), ("SN-B", "pw-b")].into_iter().enumerate() {
        let f = result
            .found
            .iter()
            .find(|f| f.from.ip() == std::net::IpAddr::V4(peer.discovery_address(i)))
            .unwrap();
        let c = client(&f.device.xaddrs[0], "admin", password, no_trust());
        assert_eq!(c.device_information().await.unwrap().serial_number, serial);
    }
}

#[tokio::test]
async fn identity_profiles_and_stream_uris_are_read_with_the_right_password_only() {
    let peer = OnvifPeer::start(&[OnvifDevice::new("SN-1", "right-password")]);
    let c = client(&peer.device_url(0), "admin", "right-password", no_trust());
    let info = c.device_information().await.unwrap();
    assert_eq!(info.serial_number, "SN-1");
    assert_eq!(info.model, "VigilTest-SN-1");
    assert_eq!(info.firmware_version, "1.0.0-test");
    assert!(c.system_date_time().await.unwrap().is_some());

    let (profiles, version) = c.profiles().await.unwrap();
    assert!(profiles.len() >= 2, "{profiles:?}");
    assert!(profiles.iter().any(|p| p.encoding == "H264" && p.width > 0));
    let widths: std::collections::BTreeSet<u32> = profiles.iter().map(|p| p.width).collect();
    assert!(
        widths.len() >= 2,
        "a main and a smaller stream: {profiles:?}"
    );
    let uri = c.stream_uri(&profiles[0].token, version).await.unwrap();
    assert!(uri.starts_with("rtsp://"), "{uri}");
    // Media1 is read as well when asked for directly.
    let uri1 = c.stream_uri(&profiles[0].token, MediaVersion::Media1).await;
    assert!(uri1.is_ok() || version == MediaVersion::Media2, "{uri1:?}");

    let wrong = client(&peer.device_url(0), "admin", "wrong-password", no_trust());
    let e = wrong.device_information().await.unwrap_err();
    assert!(e.is_unauthorized(), "{e:?}");
    assert!(matches!(
        wrong.profiles().await,
        Err(OnvifError::Unauthorized)
    ));
    let nobody = client(&peer.device_url(0), "nobody", "right-password", no_trust());
    assert!(nobody.users().await.unwrap_err().is_unauthorized());
    let users = c.users().await.unwrap();
    assert!(users.iter().any(|u| u.username == "admin"), "{users:?}");
}

fn installation() -> (tempfile::TempDir, Pki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"), &InitOptions::default()).unwrap();
    (dir, pki)
}

fn issued(pki: &Pki, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let leaf = pki
        .issue_leaf(&LeafRequest {
            common_name: "camera".into(),
            sans: names.iter().map(|s| s.to_string()).collect(),
            validity_days: 30,
            usage: LeafUsage::TlsServer,
            key_type: LeafKeyType::EcdsaP256,
        })
        .unwrap();
    (
        vec![leaf.cert_der.clone()],
        PrivateKeyDer::Pkcs8(leaf.key_der.clone_key()),
    )
}

fn self_signed() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let fp = vigil_pki::fingerprint_sha256(cert.der());
    (
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        fp,
    )
}

#[tokio::test]
async fn set_user_over_verified_https_changes_the_password_and_never_over_plain_http() {
    let (_dir, pki) = installation();
    let mut peer = OnvifPeer::start(&[OnvifDevice::new("SN-R", "old-password")]);
    let (chain, key) = issued(&pki, &["127.0.0.1"]);
    let expected_fp = vigil_pki::fingerprint_sha256(&chain[0]);
    let port = peer.serve_https(0, chain, key);
    let trust = TrustStore::new(&[pki.ca_cert_der().clone()], false);

    // Plain HTTP would show the new password to the network: refused before sending.
    let plain = client(&peer.device_url(0), "admin", "old-password", no_trust());
    assert!(matches!(
        plain.set_password("admin", "new-password-1").await,
        Err(OnvifError::PlaintextSecret { .. })
    ));
    assert_eq!(peer.password(0, "admin").as_deref(), Some("old-password"));

    let https = format!("https://127.0.0.1:{port}");
    let c = client(&https, "admin", "old-password", Options::new(trust.clone()));
    assert_eq!(c.device_information().await.unwrap().serial_number, "SN-R");
    assert_eq!(
        c.certificate_fingerprint().as_deref(),
        Some(expected_fp.as_str())
    );
    c.set_password("admin", "new-password-1").await.unwrap();
    assert_eq!(peer.password(0, "admin").as_deref(), Some("new-password-1"));

    let old = client(&https, "admin", "old-password", Options::new(trust.clone()));
    assert!(
        old.device_information()
            .await
            .unwrap_err()
            .is_unauthorized()
    );
    let new = client(
        &https,
        "admin",
        "new-password-1",
        Options::new(trust.clone()),
    );
    assert_eq!(
        new.device_information().await.unwrap().serial_number,
        "SN-R"
    );
    assert!(matches!(
        new.set_password("nobody", "x").await,
        Err(OnvifError::NoSuchUser(_))
    ));
}

#[tokio::test]
async fn a_self_signed_device_is_refused_with_its_fingerprint_until_pinned() {
    let (_dir, pki) = installation();
    let mut peer = OnvifPeer::start(&[OnvifDevice::new("SN-S", "pw")]);
    let (chain, key, fp) = self_signed();
    let port = peer.serve_https(0, chain, key);
    let https = format!("https://127.0.0.1:{port}");
    let trust = TrustStore::new(&[pki.ca_cert_der().clone()], false);

    let e = client(&https, "admin", "pw", Options::new(trust.clone()))
        .device_information()
        .await
        .unwrap_err();
    match &e {
        OnvifError::CertificateUntrusted { fingerprint, .. } => assert_eq!(fingerprint, &fp),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(&fp), "{e}");

    let mut pinned = Options::new(trust.clone());
    pinned.pin = Some(fp.clone());
    let c = client(&https, "admin", "pw", pinned);
    assert_eq!(c.device_information().await.unwrap().serial_number, "SN-S");

    let mut other_pin = Options::new(trust);
    other_pin.pin = Some(vigil_pki::fingerprint_sha256(pki.ca_cert_der()));
    let e = client(&https, "admin", "pw", other_pin)
        .device_information()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OnvifError::CertificateChanged { new, .. } if *new == fp),
        "{e:?}"
    );

    // A certificate for another name is refused even from the installation CA.
    let (chain, key) = issued(&pki, &["camera.example"]);
    let port = peer.serve_https(0, chain, key);
    let e = client(
        &format!("https://127.0.0.1:{port}"),
        "admin",
        "pw",
        Options::new(TrustStore::new(&[pki.ca_cert_der().clone()], false)),
    )
    .device_information()
    .await
    .unwrap_err();
    assert!(
        matches!(&e, OnvifError::CertificateUntrusted { reason, .. } if reason.contains("127.0.0.1")),
        "{e:?}"
    );
}
