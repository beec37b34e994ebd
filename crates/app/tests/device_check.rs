//! Device allow-listing against real peers: a camera added by ONVIF (oxvif's mock device
//! behind HTTPS with a certificate from the installation CA, vigil_testkit::onvif) records
//! from the GStreamer RTSP server through the recording runtime. Both reach Vigil through a
//! relay standing for the camera's network address, so a device can be swapped behind it:
//!
//! 1. the recorded device answers: recording, check `verified`;
//! 2. its ONVIF service is down when the link drops: video is taken again, check
//!    `unverified`, one `camera.device_unverified` event;
//! 3. another device (another serial and certificate) answers at the address when the link
//!    drops: both streams are refused before any RTSP exchange with it (its RTSP server sees
//!    no client, nothing more is stored), the status says why and how to accept it, one
//!    `camera.device_mismatch` event, one alarm from the built-in rule, one audit entry;
//! 4. an admin accepts the new device: the camera records from it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::PrivateKeyDer;
use tokio::net::{TcpListener, TcpStream};
use vigil_access::{Access, AccessConfig, AuditKind, AuditQuery, CameraScope, Principal, Role};
use vigil_app::alarms::Alarms;
use vigil_app::audit::{Trail, cli_actor};
use vigil_app::device_check::{self, MATCH_CACHE_TTL};
use vigil_app::onvif::{self, OnvifAdd};
use vigil_app::runtime::{self, RuntimeOptions};
use vigil_events::alarms::AlarmQuery;
use vigil_events::{EventBus, EventQuery, EventStore};
use vigil_media::store::{NewSecondary, Store, StreamMode};
use vigil_pki::{LeafKeyType, LeafRequest, LeafUsage, Pki};
use vigil_testkit::onvif::{OnvifDevice, OnvifPeer};
use vigil_testkit::{Auth, Clip, PeerOptions, RtspPeer};

const PASSWORD: &str = "cam-password";

/// A TCP address whose far end can be switched (a camera swapped at the same IP address), and
/// whose open connections can be cut (the swap's link drop).
struct Relay {
    port: u16,
    backend: Arc<Mutex<SocketAddr>>,
    open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(backend: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let backend = Arc::new(Mutex::new(backend));
        let open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (backend, open) = (backend.clone(), open.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let to = *backend.lock().unwrap();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(to).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    let mut open = open.lock().unwrap();
                    open.retain(|t| !t.is_finished());
                    open.push(task);
                }
            })
        };
        Relay {
            port,
            backend,
            open,
            accept,
        }
    }

    fn point_to(&self, backend: SocketAddr) {
        *self.backend.lock().unwrap() = backend;
    }

    /// Drops every connection through the relay.
    fn cut(&self) {
        for t in self.open.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An ONVIF device behind HTTPS with its own certificate from the installation CA: the peer
/// and its TLS port.
fn device(pki: &Pki, serial: &str) -> (OnvifPeer, u16) {
    let mut peer = OnvifPeer::start(&[OnvifDevice::new(serial, PASSWORD)]);
    let leaf = pki
        .issue_leaf(&LeafRequest {
            common_name: format!("camera {serial}"),
            sans: vec!["127.0.0.1".into()],
            validity_days: 30,
            usage: LeafUsage::TlsServer,
            key_type: LeafKeyType::EcdsaP256,
        })
        .unwrap();
    let port = peer.serve_https(
        0,
        vec![leaf.cert_der.clone()],
        PrivateKeyDer::Pkcs8(leaf.key_der.clone_key()),
    );
    (peer, port)
}

/// A device's RTSP server: a main and a sub stream, Digest with the camera's password.
fn rtsp(clip: &Clip) -> RtspPeer {
    RtspPeer::start_with(
        &[("main", clip.path()), ("sub", clip.path())],
        PeerOptions::new(Auth::digest("admin", PASSWORD)),
    )
}

/// Waits (bounded) until `f` holds.
async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {secs} s waiting for {what}");
}

fn gops(store: &Store, id: &str) -> usize {
    store.gops_in_range(id, 0, i64::MAX).unwrap().len()
}

fn check_state(store: &Store, id: &str) -> String {
    store
        .device_check(id)
        .unwrap()
        .map(|c| c.state)
        .unwrap_or_default()
}

fn state(store: &Store, id: &str) -> (String, String) {
    store
        .status(id)
        .unwrap()
        .map(|s| (s.state, s.last_error.unwrap_or_default()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_device_is_refused_alarmed_and_records_again_once_accepted() {
    let clip = Clip::h264(10, 25, 25, 640, 360, false);
    let dir = tempfile::tempdir().unwrap();
    let cfg = vigil_app::setup::init(
        &dir.path().join("data"),
        &dir.path().join("vigil.toml"),
        false,
    )
    .unwrap();
    let store = Arc::new(Store::open(&cfg.data_dir).unwrap());
    let pki = Pki::open(&cfg.data_dir.join("pki")).unwrap();
    let trust = onvif::camera_trust(&cfg.data_dir);
    let access =
        Arc::new(Access::open(&dir.path().join("access.db"), AccessConfig::default()).unwrap());
    let bus = EventBus::start(Arc::new(EventStore::open(&cfg.data_dir).unwrap()), "srv").unwrap();
    let alarms = Alarms::open(bus.clone(), access.clone(), &[]).unwrap();
    let (stop_rules, rules_stopped) = tokio::sync::oneshot::channel::<()>();
    let rules = alarms.spawn_rules(async move {
        let _ = rules_stopped.await;
    });

    // The camera's address: ONVIF over HTTPS and RTSP, first to device A.
    let (_device_a, onvif_a) = device(&pki, "SN-A");
    let (_device_b, onvif_b) = device(&pki, "SN-B");
    let rtsp_a = rtsp(&clip);
    let rtsp_b = rtsp(&clip);
    let onvif_addr = Relay::start(local(onvif_a)).await;
    let rtsp_addr = Relay::start(local(rtsp_a.port())).await;

    let trail = Trail::new(&access, cli_actor());
    let added = onvif::add(
        &store,
        trust.clone(),
        &OnvifAdd {
            name: "lobby".into(),
            address: format!("https://127.0.0.1:{}", onvif_addr.port),
            username: Some("admin".into()),
            password: Some(PASSWORD.into()),
            pin: None,
            allow_http: false,
            enabled: true,
            max_age_secs: None,
            max_bytes: None,
        },
        &trail,
    )
    .await
    .unwrap();
    assert_eq!(added.identity.serial, "SN-A");
    // The mock device names streams on port 554; this camera's streams are at the relay.
    let id = added.camera.id.clone();
    store
        .set_camera_url(
            "lobby",
            &format!("rtsp://127.0.0.1:{}/main", rtsp_addr.port),
        )
        .unwrap();
    store
        .set_secondary(
            "lobby",
            Some(&NewSecondary {
                url: format!("rtsp://127.0.0.1:{}/sub", rtsp_addr.port),
                username: Some("admin".into()),
                password: Some(PASSWORD.into()),
                mode: StreamMode::Live,
            }),
        )
        .unwrap();
    let sub_id = store.camera("lobby").unwrap().secondary.unwrap().id;

    let started = Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(runtime::run(
        cfg.clone(),
        store.clone(),
        async move {
            let _ = stopped.await;
        },
        RuntimeOptions {
            events: Some(bus.clone()),
            access: Some(access.clone()),
            ..Default::default()
        },
    ));

    // 1. The recorded device answers.
    until("recording from device A", 60, || gops(&store, &id) >= 2).await;
    assert_eq!(check_state(&store, &id), "verified");
    assert_eq!(state(&store, &sub_id).0, "live");

    // 2. The link drops while its ONVIF service is down (after the cached match expired):
    // the video is taken again, unverified.
    tokio::time::sleep(
        (started + MATCH_CACHE_TTL + Duration::from_secs(1))
            .saturating_duration_since(Instant::now()),
    )
    .await;
    onvif_addr.point_to(local(1));
    let before = gops(&store, &id);
    rtsp_addr.cut();
    until("the unverified check", 30, || {
        check_state(&store, &id) == "unverified"
    })
    .await;
    until("recording again, unverified", 60, || {
        gops(&store, &id) >= before + 2 && state(&store, &id).0 == "recording"
    })
    .await;
    let view = device_check::device_view(&store, &id).unwrap().unwrap();
    assert!(
        view.check_detail
            .as_deref()
            .unwrap()
            .contains("could not be asked"),
        "{view:?}"
    );

    // 3. Device B now answers at the address; the link drops.
    onvif_addr.point_to(local(onvif_b));
    rtsp_addr.point_to(local(rtsp_b.port()));
    rtsp_addr.cut();
    until("both streams refused", 60, || {
        state(&store, &id).0 == "failed" && state(&store, &sub_id).0 == "failed"
    })
    .await;
    let (_, why) = state(&store, &id);
    assert!(
        why.contains("serial SN-B instead of SN-A")
            && why.contains("certificate")
            && why.contains("vigil camera accept-device lobby"),
        "{why}"
    );
    assert_eq!(check_state(&store, &id), "mismatch");
    let refused_at = gops(&store, &id);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        gops(&store, &id),
        refused_at,
        "nothing stored from device B"
    );
    assert_eq!(
        rtsp_b.stats().clients_connected_total,
        0,
        "device B's RTSP server never saw Vigil"
    );

    bus.flush();
    let events = |kind: &str| {
        bus.store()
            .query(&EventQuery {
                kinds: vec![kind.into()],
                ..Default::default()
            })
            .unwrap()
            .events
    };
    let mismatch = events("camera.device_mismatch");
    assert_eq!(
        mismatch.len(),
        1,
        "one event for both streams: {mismatch:?}"
    );
    let e = &mismatch[0].event;
    assert_eq!(e.camera.as_deref(), Some("lobby"));
    assert_eq!(e.severity, vigil_events::Severity::Critical);
    assert_eq!(e.attributes["expected_serial"], "SN-A");
    assert_eq!(e.attributes["found_serial"], "SN-B");
    assert_eq!(e.attributes["found_model"], "VigilTest-SN-B");
    assert_eq!(
        Some(e.attributes["expected_fingerprint"].clone()),
        added.identity.certificate
    );
    assert_ne!(
        e.attributes["found_fingerprint"],
        e.attributes["expected_fingerprint"]
    );
    assert!(e.attributes["address"].contains(&onvif_addr.port.to_string()));
    assert_eq!(events("camera.device_unverified").len(), 1);

    let admin = Principal::User {
        username: "admin".into(),
        role: Role::Admin,
        cameras: CameraScope::All,
    };
    until("the alarm", 10, || {
        !alarms
            .list(&admin, AlarmQuery::default())
            .unwrap()
            .alarms
            .is_empty()
    })
    .await;
    let raised = alarms.list(&admin, AlarmQuery::default()).unwrap().alarms;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].rule, vigil_rules::DEVICE_MISMATCH_RULE);
    assert_eq!(raised[0].priority, 1);
    assert_eq!(raised[0].camera.as_deref(), Some("lobby"));

    let audited = |action: &str| {
        access
            .audit_query(&AuditQuery {
                kind: Some(AuditKind::CameraChanged),
                ..AuditQuery::default()
            })
            .unwrap()
            .into_iter()
            .filter(|e| e.detail["action"] == action)
            .collect::<Vec<_>>()
    };
    let entries = audited("device_mismatch");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].detail["found"]["serial"], "SN-B");
    assert!(!entries[0].detail.to_string().contains(PASSWORD));

    // 4. The admin accepts device B: the camera records from it.
    let accepted = device_check::accept_device(&store, trust.clone(), "lobby", None, &trail)
        .await
        .unwrap();
    assert_eq!(
        (
            accepted.previous.serial.as_str(),
            accepted.identity.serial.as_str()
        ),
        ("SN-A", "SN-B")
    );
    assert_eq!(audited("device_accepted").len(), 1);
    until("recording from device B", 60, || {
        gops(&store, &id) >= refused_at + 2 && state(&store, &id).0 == "recording"
    })
    .await;
    assert!(rtsp_b.stats().clients_connected_total >= 1);
    assert_eq!(check_state(&store, &id), "verified");
    assert_eq!(events("camera.device_mismatch").len(), 1);

    let _ = stop.send(());
    run.await.unwrap().unwrap();
    let _ = stop_rules.send(());
    let _ = rules.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_camera_added_by_onvif_has_a_device_to_accept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(&dir.path().join("data")).unwrap();
    let access = Access::open(&dir.path().join("access.db"), AccessConfig::default()).unwrap();
    let trail = Trail::new(&access, cli_actor());
    store
        .add_camera(&vigil_media::store::NewCamera {
            name: "gate".into(),
            url: "rtsp://127.0.0.1:1/x".into(),
            ..Default::default()
        })
        .unwrap();
    let trust = vigil_media::ingest_tls::TrustStore::new(&[], false);
    let e = device_check::accept_device(&store, trust.clone(), "gate", None, &trail)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "camera_not_onvif", "{e}");
    let e = device_check::accept_device(&store, trust, "nobody", None, &trail)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "camera_not_found", "{e}");
}
