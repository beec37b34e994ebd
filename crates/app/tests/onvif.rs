//! The ONVIF use cases against real ONVIF devices (vigil_testkit::onvif, oxvif's mock device):
//! discovery lists what each device is and whether it is added; adding by ONVIF records the
//! biggest stream, offers a smaller H.264 one as the live secondary and stores the device's
//! identity, audited; plain HTTP and wrong passwords are refused without adding anything.

use std::time::Duration;

use rustls::pki_types::PrivateKeyDer;
use vigil_access::{Access, AccessConfig, AuditKind, AuditQuery};
use vigil_app::audit::{Trail, cli_actor};
use vigil_app::onvif::{self, DiscoverRequest, OnvifAdd, OnvifUseError};
use vigil_media::ingest_tls::TrustStore;
use vigil_media::store::{Store, StreamMode};
use vigil_pki::{InitOptions, LeafKeyType, LeafRequest, LeafUsage, Pki};
use vigil_testkit::onvif::{OnvifDevice, OnvifPeer};

struct Site {
    _dir: tempfile::TempDir,
    store: Store,
    access: Access,
    pki: Pki,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(&dir.path().join("data")).unwrap();
    let access = Access::open(&dir.path().join("access.db"), AccessConfig::default()).unwrap();
    let pki = Pki::init(&dir.path().join("pki"), &InitOptions::default()).unwrap();
    Site {
        _dir: dir,
        store,
        access,
        pki,
    }
}

/// The device behind HTTPS with a certificate from the installation CA; its address and the
/// certificate's fingerprint.
fn https_peer(pki: &Pki, serial: &str, password: &str) -> (OnvifPeer, String, String) {
    let mut peer = OnvifPeer::start(&[OnvifDevice::new(serial, password)]);
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
    (peer, format!("https://127.0.0.1:{port}"), fingerprint)
}

fn request(name: &str, address: &str, password: &str) -> OnvifAdd {
    OnvifAdd {
        name: name.into(),
        address: address.into(),
        username: Some("admin".into()),
        password: Some(password.into()),
        pin: None,
        allow_http: false,
        enabled: true,
        max_age_secs: None,
        max_bytes: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_by_onvif_records_the_main_stream_offers_the_secondary_and_keeps_the_identity() {
    let s = site();
    let trust = TrustStore::new(&[s.pki.ca_cert_der().clone()], false);
    let (_peer, address, fingerprint) = https_peer(&s.pki, "SN-ADD", "cam-password");
    let trail = Trail::new(&s.access, cli_actor());

    let added = onvif::add(
        &s.store,
        trust.clone(),
        &request("lobby", &address, "cam-password"),
        &trail,
    )
    .await
    .unwrap();
    let main = &added.main;
    let sub = added
        .secondary
        .as_ref()
        .expect("a smaller stream for grids");
    assert!(
        main.width * main.height > sub.width * sub.height,
        "{added:?}"
    );
    assert_eq!(sub.encoding, "H264");
    assert!(main.url.starts_with("rtsp://"), "{}", main.url);

    let cam = s.store.camera("lobby").unwrap();
    assert_eq!(cam.url, main.url);
    assert_eq!(cam.username.as_deref(), Some("admin"));
    assert!(cam.has_password);
    let secondary = cam.secondary.as_ref().unwrap();
    assert_eq!(secondary.mode, StreamMode::Live);
    assert_eq!(secondary.url, sub.url);
    assert!(secondary.has_password);

    let identity = s.store.device_identity("lobby").unwrap().unwrap();
    assert_eq!(identity.serial, "SN-ADD");
    assert_eq!(identity.model, "VigilTest-SN-ADD");
    assert_eq!(
        identity.onvif_url,
        format!("{address}/onvif/device_service")
    );
    assert_eq!(identity.certificate, Some(fingerprint));

    let entries = s
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::CameraChanged),
            ..AuditQuery::default()
        })
        .unwrap();
    let details: Vec<String> = entries.iter().map(|e| e.detail.to_string()).collect();
    assert!(
        details.iter().any(|d| d.contains("\"added\"")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("\"identified\"") && d.contains("SN-ADD")),
        "{details:?}"
    );
    assert!(
        !details.iter().any(|d| d.contains("cam-password")),
        "no password in the audit log: {details:?}"
    );

    vigil_app::cameras::remove(&s.store, "lobby", false, &trail).unwrap();
    assert!(s.store.device_identities().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_and_a_wrong_password_add_nothing() {
    let s = site();
    let trust = TrustStore::new(&[s.pki.ca_cert_der().clone()], false);
    let peer = OnvifPeer::start(&[OnvifDevice::new("SN-P", "right")]);
    let trail = Trail::new(&s.access, cli_actor());

    let e = onvif::add(
        &s.store,
        trust.clone(),
        &request("plain", &peer.device_url(0), "right"),
        &trail,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, OnvifUseError::PlainHttp(_)), "{e:?}");
    assert_eq!(e.code(), "invalid_onvif_address");

    let mut wrong = request("wrong", &peer.device_url(0), "wrong");
    wrong.allow_http = true;
    let e = onvif::add(&s.store, trust.clone(), &wrong, &trail)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "onvif_unauthorized", "{e:?}");
    assert!(s.store.cameras().unwrap().is_empty());

    // Allowed explicitly, plain HTTP works (and the identity has no certificate).
    let mut plain = request("plain", &peer.device_url(0), "right");
    plain.allow_http = true;
    let added = onvif::add(&s.store, trust, &plain, &trail).await.unwrap();
    assert_eq!(added.identity.certificate, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_the_devices_and_which_are_already_added() {
    let s = site();
    let trust = TrustStore::new(&[s.pki.ca_cert_der().clone()], false);
    let peer = OnvifPeer::start(&[
        OnvifDevice::new("SN-D1", "pw1"),
        OnvifDevice::new("SN-D2", "pw2"),
    ]);
    let trail = Trail::new(&s.access, cli_actor());
    let mut first = request("first", &peer.device_url(0), "pw1");
    first.allow_http = true;
    onvif::add(&s.store, trust.clone(), &first, &trail)
        .await
        .unwrap();

    let found = onvif::discover(
        &s.store,
        &trust,
        &DiscoverRequest {
            subnet: Some("127.0.0.0/29".into()),
            multicast: false,
            port: peer.discovery_port(),
            wait: Duration::from_millis(1500),
        },
    )
    .await
    .unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    for d in &found {
        // The devices want credentials for GetDeviceInformation: the scopes name them.
        assert_eq!(d.identity, "scopes");
        assert!(!d.https);
        let i = usize::from(d.name.as_deref() == Some("SN-D2"));
        assert_eq!(d.onvif_url, peer.device_url(i));
        assert_eq!(
            d.model.as_deref(),
            Some(format!("VigilTest-SN-D{}", i + 1).as_str())
        );
        assert_eq!(d.address, peer.discovery_address(i).to_string());
    }
    let added: Vec<(String, Option<&str>)> = found
        .iter()
        .map(|d| (d.onvif_url.clone(), d.added_as.as_deref()))
        .collect();
    assert!(
        added.contains(&(peer.device_url(0), Some("first"))),
        "{found:?}"
    );
    assert!(added.contains(&(peer.device_url(1), None)), "{found:?}");

    let e = onvif::discover(
        &s.store,
        &trust,
        &DiscoverRequest {
            subnet: Some("10.0.0.0/8".into()),
            ..DiscoverRequest::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "invalid_subnet");
    assert!(e.to_string().contains("/16"), "{e}");
    // Nothing to probe, or a wait out of bounds: refused before anything is sent.
    for (req, code) in [
        (
            DiscoverRequest {
                multicast: false,
                ..DiscoverRequest::default()
            },
            "invalid_field",
        ),
        (
            DiscoverRequest {
                wait: Duration::from_secs(31),
                ..DiscoverRequest::default()
            },
            "invalid_wait",
        ),
        (
            DiscoverRequest {
                wait: Duration::ZERO,
                ..DiscoverRequest::default()
            },
            "invalid_wait",
        ),
    ] {
        let e = onvif::discover(&s.store, &trust, &req).await.unwrap_err();
        assert_eq!(e.code(), code, "{e}");
    }
}
