//! Live video over WebSocket through the real TLS listener (HTTP/1.1 upgrade), with a real
//! WebSocket client (tokio-tungstenite over the tests' rustls connection) and the built-in
//! sample camera recorded by the real recorder: what a viewer receives, who may connect (same
//! origin for sessions, tokens without one, the camera's permission), and the socket closing
//! when the session ends or the camera is removed.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::ws::{self, Socket, closed, json, next, refusal, same_origin};
use common::{Auth, Harness};
use futures_util::SinkExt as _;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use vigil_access::{Actor, CameraScope, Role};
use vigil_media::fmp4;
use vigil_media::live::FeedKey;
use vigil_media::recorder::{self, RecorderEnv, RecorderHandle, RecorderSettings, Storage};
use vigil_media::store::{Camera, NewCamera, NewSecondary, StreamMode};
use vigil_samplecam::{SampleCamera, SampleCameraHandle, SampleCameraOptions};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A harness serving HTTPS on loopback with camera `cam1`.
async fn served() -> (Harness, SocketAddr, Camera) {
    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    let cam = h
        .state
        .store
        .add_camera(&NewCamera {
            name: "cam1".into(),
            url: "rtsp://127.0.0.1:9/none".into(),
            ..Default::default()
        })
        .unwrap();
    (h, addr, cam)
}

fn settings() -> RecorderSettings {
    RecorderSettings {
        segment_duration: Duration::from_secs(60),
        inactivity_timeout: Duration::from_secs(5),
        max_backoff: Duration::from_secs(2),
    }
}

/// The sample camera recorded into `cam`, the recorder publishing into the API's hub.
async fn record_sample(h: &Harness, cam: &Camera) -> (SampleCameraHandle, RecorderHandle) {
    let sample = SampleCamera::start(
        "127.0.0.1:0".parse().unwrap(),
        SampleCameraOptions::default(),
    )
    .await
    .unwrap();
    let cam = Camera {
        url: sample.url(),
        ..cam.clone()
    };
    let handle = recorder::start_with(
        h.state.store.clone(),
        cam,
        settings(),
        None,
        Arc::new(|_: &vigil_media::store::Store, _| 0),
        RecorderEnv {
            live: Some(h.state.live.clone()),
            ..RecorderEnv::default()
        },
    )
    .unwrap();
    (sample, handle)
}

/// Opens the live socket of `camera` with these credentials and `Origin` (none: no header).
async fn open(
    h: &Harness,
    addr: SocketAddr,
    camera: &str,
    auth: &Auth,
    origin: Option<&str>,
) -> Result<Socket, WsError> {
    open_path(h, addr, &format!("{camera}/live"), auth, origin).await
}

/// Opens `/api/v1/cameras/{path}` as [`open`] does (`path` is `CAMERA/live?...`).
async fn open_path(
    h: &Harness,
    addr: SocketAddr,
    path: &str,
    auth: &Auth,
    origin: Option<&str>,
) -> Result<Socket, WsError> {
    ws::open(h, addr, &format!("/api/v1/cameras/{path}"), auth, origin).await
}

/// Reads the start of a live stream: states, then `init` (text and binary), then the first
/// fragment; returns the init message and the first `n` fragments.
async fn first_frames(ws: &mut Socket, n: usize) -> (serde_json::Value, Vec<u8>, Vec<Vec<u8>>) {
    let deadline = Duration::from_secs(2);
    let started = tokio::time::Instant::now();
    let mut init = None;
    let mut frags = Vec::new();
    while frags.len() < n {
        let left = deadline.saturating_sub(started.elapsed());
        let m = next(ws, left.max(Duration::from_millis(1))).await;
        match (&m, &init) {
            (Message::Text(_), _) => {
                let v = json(&m);
                match v["type"].as_str() {
                    Some("state") => {
                        assert!(
                            ["connecting", "live"].contains(&v["state"].as_str().unwrap()),
                            "{v}"
                        );
                    }
                    Some("init") => {
                        assert!(init.is_none(), "a second init: {v}");
                        let bin = next(ws, Duration::from_secs(1)).await;
                        let Message::Binary(b) = bin else {
                            panic!("the init segment must follow its message: {bin:?}")
                        };
                        init = Some((v, b.to_vec()));
                    }
                    _ => panic!("unexpected message {v}"),
                }
            }
            (Message::Binary(b), Some(_)) => frags.push(b.to_vec()),
            (other, _) => panic!("before the init: {other:?}"),
        }
    }
    assert!(
        started.elapsed() < deadline,
        "frames took {:?}",
        started.elapsed()
    );
    let (msg, data) = init.unwrap();
    (msg, data, frags)
}

fn check_stream(init_msg: &serde_json::Value, init: &[u8], frags: &[Vec<u8>]) {
    assert!(
        init_msg["codec"].as_str().unwrap().starts_with("avc1."),
        "{init_msg}"
    );
    assert!(init_msg["width"].as_u64().unwrap() > 0);
    assert!(init_msg["height"].as_u64().unwrap() > 0);
    assert_eq!(&init[4..8], b"ftyp");
    // The init parses as ftyp+moov (the segment scanner wants both, then whole fragments).
    let mut file = init.to_vec();
    for f in frags {
        file.extend_from_slice(f);
    }
    let layout = fmp4::scan_segment(&file).unwrap();
    assert_eq!(layout.init_len, init.len() as u64);
    assert_eq!(layout.fragments.len(), frags.len());
    assert_eq!(layout.torn_tail, 0);
    let infos: Vec<_> = frags
        .iter()
        .map(|f| fmp4::parse_fragment(f).unwrap())
        .collect();
    assert!(
        infos[0].starts_with_sync,
        "the first fragment is a keyframe"
    );
    assert!(
        infos.iter().all(|i| i.samples == 1),
        "one frame per fragment"
    );
    assert!(
        infos
            .windows(2)
            .all(|w| w[0].base_decode_time < w[1].base_decode_time)
    );
}

#[tokio::test]
async fn a_session_viewer_gets_the_init_and_frames_from_a_keyframe_within_two_seconds() {
    let (h, addr, cam) = served().await;
    let (sample, recorder) = record_sample(&h, &cam).await;
    let admin = h.admin().await;
    let mut a = open(&h, addr, "cam1", &admin, Some(&same_origin(addr)))
        .await
        .unwrap();
    let (init_msg, init, frags) = first_frames(&mut a, 5).await;
    check_stream(&init_msg, &init, &frags);

    // A second viewer joining later starts at once from the cached keyframe, off the same
    // camera session.
    let mut b = open(&h, addr, "cam1", &admin, Some(&same_origin(addr)))
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let (msg_b, init_b, frags_b) = first_frames(&mut b, 1).await;
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!((msg_b, init_b), (init_msg, init));
    assert!(fmp4::parse_fragment(&frags_b[0]).unwrap().starts_with_sync);
    assert_eq!(
        sample.playing_sessions(),
        1,
        "one camera session for both viewers"
    );
    assert_eq!(h.state.live.viewers(&FeedKey::main(&cam.id)), 2);

    // "ping" is answered "pong", between the frames.
    a.send(Message::text("ping")).await.unwrap();
    loop {
        if let Message::Text(t) = next(&mut a, Duration::from_secs(2)).await
            && t.as_str() == "pong"
        {
            break;
        }
    }
    // Live video is audited, once per viewer.
    let audit = h
        .state
        .access
        .audit_query(&vigil_access::AuditQuery {
            kind: Some(vigil_access::AuditKind::LiveView),
            ..Default::default()
        })
        .unwrap()
        .len();
    assert_eq!(audit, 2);

    recorder.stop().await;
    // The viewers are told, and stay connected for when the camera comes back.
    loop {
        let m = next(&mut a, Duration::from_secs(5)).await;
        if let Message::Text(_) = m
            && json(&m)["type"] == "state"
        {
            assert_eq!(json(&m)["state"], "stopped");
            break;
        }
    }
    a.close(None).await.unwrap();
    sample.shutdown().await;
}

/// The state message a viewer of a camera without a recorder gets.
async fn expect_state(ws: &mut Socket, state: &str) {
    let m = next(ws, Duration::from_secs(2)).await;
    let v = json(&m);
    assert_eq!(
        (v["type"].as_str(), v["state"].as_str()),
        (Some("state"), Some(state)),
        "{v}"
    );
    assert_eq!(v["message"], "");
}

#[tokio::test]
async fn a_session_handshake_must_come_from_this_servers_origin() {
    let (h, addr, _cam) = served().await;
    let admin = h.admin().await;
    for origin in [
        None,
        Some("https://evil.example".to_owned()),
        Some(format!("http://{addr}")),
        Some(format!("https://127.0.0.1:{}", addr.port() + 1)),
        Some("null".to_owned()),
    ] {
        let e = open(&h, addr, "cam1", &admin, origin.as_deref())
            .await
            .expect_err("refused");
        assert_eq!(refusal(e), (403, "bad_origin".to_owned()), "{origin:?}");
    }
    // The same request from this server's own pages is served: no recorder runs, so the
    // camera is offline.
    let mut ws = open(&h, addr, "cam1", &admin, Some(&same_origin(addr)))
        .await
        .unwrap();
    expect_state(&mut ws, "offline").await;
    // Credentials never go in the URL: a token there is no credential.
    let token = h.token(Role::Admin, CameraScope::All);
    let tls = h.tls_connect(addr, LOOPBACK, &[b"http/1.1"]).await.unwrap();
    let req = format!("wss://{addr}/api/v1/cameras/cam1/live?token={token}")
        .into_client_request()
        .unwrap();
    let e = tokio_tungstenite::client_async(req, tls).await.unwrap_err();
    assert_eq!(refusal(e), (401, "unauthenticated".to_owned()));
}

#[tokio::test]
async fn only_callers_with_view_live_on_the_camera_may_watch() {
    let (h, addr, _cam) = served().await;
    let origin = same_origin(addr);
    let e = open(&h, addr, "cam1", &Auth::None, Some(&origin))
        .await
        .unwrap_err();
    assert_eq!(refusal(e), (401, "unauthenticated".to_owned()));
    let pw = h.user("stranger", Role::Viewer, CameraScope::only(["elsewhere"]));
    let stranger = h.login("stranger", &pw).await;
    let e = open(&h, addr, "cam1", &stranger, Some(&origin))
        .await
        .unwrap_err();
    assert_eq!(refusal(e), (403, "forbidden".to_owned()));
    let pw = h.user("auditor", Role::Auditor, CameraScope::All);
    let auditor = h.login("auditor", &pw).await;
    let e = open(&h, addr, "cam1", &auditor, Some(&origin))
        .await
        .unwrap_err();
    assert_eq!(refusal(e), (403, "forbidden".to_owned()));
    // A viewer of the camera may; an unknown camera is 404 only to those who may ask.
    let pw = h.user("watcher", Role::Viewer, CameraScope::only(["cam1", "cam9"]));
    let watcher = h.login("watcher", &pw).await;
    let mut ws = open(&h, addr, "cam1", &watcher, Some(&origin))
        .await
        .unwrap();
    expect_state(&mut ws, "offline").await;
    let e = open(&h, addr, "cam9", &watcher, Some(&origin))
        .await
        .unwrap_err();
    assert_eq!(refusal(e), (404, "camera_not_found".to_owned()));
    // Not a WebSocket handshake: a JSON error, not a stream.
    let a = h
        .call(
            axum::http::Method::GET,
            "/api/v1/cameras/cam1/live",
            &watcher,
            None,
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code()),
        (400, "websocket_required".to_owned())
    );
}

#[tokio::test]
async fn logout_closes_the_socket_with_4001() {
    let (h, addr, _cam) = served().await;
    let pw = h.user("watcher", Role::Viewer, CameraScope::only(["cam1"]));
    let watcher = h.login("watcher", &pw).await;
    let mut ws = open(&h, addr, "cam1", &watcher, Some(&same_origin(addr)))
        .await
        .unwrap();
    expect_state(&mut ws, "offline").await;
    let a = h
        .call(
            axum::http::Method::DELETE,
            "/api/v1/session",
            &watcher,
            None,
        )
        .await;
    assert!(a.status.is_success(), "{}", a.text());
    let t = std::time::Instant::now();
    assert_eq!(
        closed(&mut ws, Duration::from_secs(3)).await,
        (4001, "session ended".to_owned())
    );
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn watching_alone_does_not_keep_a_session_alive() {
    let (h, addr, _cam) = served().await;
    let admin = h.admin().await;
    let mut ws = open(&h, addr, "cam1", &admin, Some(&same_origin(addr)))
        .await
        .unwrap();
    expect_state(&mut ws, "offline").await;
    // Half the idle timeout passes while watching, then the rest: the session ends for
    // inactivity although the viewer watched throughout.
    let idle = h.state.access.config().session.idle_timeout;
    h.advance(idle / 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.advance(idle / 2 + Duration::from_secs(1));
    assert_eq!(
        closed(&mut ws, Duration::from_secs(3)).await,
        (4001, "session ended".to_owned())
    );
}

#[tokio::test]
async fn an_api_token_needs_no_origin_and_its_revocation_ends_the_stream() {
    let (h, addr, cam) = served().await;
    let (sample, recorder) = record_sample(&h, &cam).await;
    let created = h
        .state
        .access
        .create_token(
            &vigil_access::NewToken {
                name: "wall".into(),
                role: Role::Viewer,
                cameras: CameraScope::only(["cam1"]),
                expires_in: None,
            },
            &Actor::cli(),
        )
        .unwrap();
    let token = Auth::Bearer(created.token.clone());
    let mut ws = open(&h, addr, "cam1", &token, None).await.unwrap();
    let (init_msg, init, frags) = first_frames(&mut ws, 3).await;
    check_stream(&init_msg, &init, &frags);
    h.state
        .access
        .revoke_token(&created.id, &Actor::cli())
        .unwrap();
    assert_eq!(
        closed(&mut ws, Duration::from_secs(3)).await,
        (4001, "token no longer valid".to_owned())
    );
    recorder.stop().await;
    sample.shutdown().await;
}

#[tokio::test]
async fn removing_the_camera_closes_the_socket_with_4004() {
    let (h, addr, _cam) = served().await;
    let admin = h.admin().await;
    let mut ws = open(&h, addr, "cam1", &admin, Some(&same_origin(addr)))
        .await
        .unwrap();
    expect_state(&mut ws, "offline").await;
    let a = h
        .call(
            axum::http::Method::DELETE,
            "/api/v1/cameras/cam1",
            &admin,
            None,
        )
        .await;
    assert!(a.status.is_success(), "{}", a.text());
    assert_eq!(
        closed(&mut ws, Duration::from_secs(3)).await,
        (4004, "camera removed".to_owned())
    );
}

#[tokio::test]
async fn retiring_the_listener_closes_the_socket_with_1001() {
    let (h, addr, _cam) = served().await;
    let admin = h.admin().await;
    let mut ws = open(&h, addr, "cam1", &admin, Some(&same_origin(addr)))
        .await
        .unwrap();
    expect_state(&mut ws, "offline").await;
    // A settings change moves the API to another address: the old listener's sockets end,
    // upgraded ones included.
    let plan = vigil_web::ListenerPlan {
        https: vec!["127.0.0.2:0".parse().unwrap()],
        http: vec![],
    };
    h.state.listeners.apply(&plan).await.unwrap();
    assert_eq!(
        closed(&mut ws, Duration::from_secs(3)).await,
        (1001, "going away".to_owned())
    );
}

#[tokio::test]
async fn a_secondary_stream_is_watched_with_stream_secondary_until_it_is_removed() {
    let (h, addr, _) = served().await;
    let store = h.state.store.clone();
    store
        .add_camera(&NewCamera {
            name: "cam2".into(),
            url: "rtsp://127.0.0.1:9/none".into(),
            ..Default::default()
        })
        .unwrap();
    // cam1's secondary stream is the sample camera, live only, fed by its own recorder.
    let sample = SampleCamera::start(
        "127.0.0.1:0".parse().unwrap(),
        SampleCameraOptions::default(),
    )
    .await
    .unwrap();
    let cam = store
        .set_secondary(
            "cam1",
            Some(&NewSecondary {
                url: sample.url(),
                mode: StreamMode::Live,
                ..Default::default()
            }),
        )
        .unwrap();
    let sid = cam.secondary.clone().unwrap().id;
    let recorder = recorder::start_stream(
        store.clone(),
        cam.secondary_camera().unwrap(),
        FeedKey::secondary(&cam.id),
        Storage::LiveOnly,
        settings(),
        RecorderEnv {
            live: Some(h.state.live.clone()),
            ..RecorderEnv::default()
        },
    )
    .unwrap();
    let admin = h.admin().await;
    let origin = same_origin(addr);
    let mut sub = open_path(
        &h,
        addr,
        "cam1/live?stream=secondary",
        &admin,
        Some(&origin),
    )
    .await
    .unwrap();
    let (init_msg, init, frags) = first_frames(&mut sub, 3).await;
    check_stream(&init_msg, &init, &frags);
    // The main stream is a feed of its own, which no recorder publishes here.
    let mut main = open_path(&h, addr, "cam1/live?stream=main", &admin, Some(&origin))
        .await
        .unwrap();
    expect_state(&mut main, "offline").await;
    assert_eq!(h.state.live.viewers(&FeedKey::secondary(&cam.id)), 1);
    assert_eq!(h.state.live.viewers(&FeedKey::main(&cam.id)), 1);
    assert_eq!(sample.playing_sessions(), 1);
    assert_eq!(
        store.camera_bytes(&sid).unwrap(),
        0,
        "live only: nothing stored"
    );
    let mut streams: Vec<String> = h
        .state
        .access
        .audit_query(&vigil_access::AuditQuery {
            kind: Some(vigil_access::AuditKind::LiveView),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|e| e.detail["stream"].as_str().unwrap_or_default().to_owned())
        .collect();
    streams.sort();
    assert_eq!(streams, ["main", "secondary"]);

    // Refusals: no secondary (only to those who may view the camera), an unknown stream.
    let e = open_path(
        &h,
        addr,
        "cam2/live?stream=secondary",
        &admin,
        Some(&origin),
    )
    .await
    .unwrap_err();
    assert_eq!(refusal(e), (404, "no_secondary_stream".to_owned()));
    let pw = h.user("stranger", Role::Viewer, CameraScope::only(["cam1"]));
    let stranger = h.login("stranger", &pw).await;
    let e = open_path(
        &h,
        addr,
        "cam2/live?stream=secondary",
        &stranger,
        Some(&origin),
    )
    .await
    .unwrap_err();
    assert_eq!(refusal(e), (403, "forbidden".to_owned()));
    let e = open_path(&h, addr, "cam1/live?stream=sub", &admin, Some(&origin))
        .await
        .unwrap_err();
    assert_eq!(refusal(e).0, 400);
    let e = open_path(
        &h,
        addr,
        "cam2/live?stream=secondary",
        &admin,
        Some(&origin),
    )
    .await
    .unwrap_err();
    let WsError::Http(resp) = e else {
        panic!("not an HTTP refusal: {e}")
    };
    let body: serde_json::Value = serde_json::from_slice(resp.body().as_ref().unwrap()).unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("camera 'cam2' has no secondary stream"),
        "{body}"
    );

    // The secondary is removed: its viewer is closed with 4004, the main stream's stays.
    let a = h
        .patch(
            "/api/v1/cameras/cam1",
            &admin,
            serde_json::json!({ "secondary": null }),
        )
        .await;
    assert!(a.status.is_success(), "{}", a.text());
    assert_eq!(
        closed(&mut sub, Duration::from_secs(3)).await,
        (4004, "secondary stream removed".to_owned())
    );
    main.send(Message::text("ping")).await.unwrap();
    loop {
        if let Message::Text(t) = next(&mut main, Duration::from_secs(2)).await
            && t.as_str() == "pong"
        {
            break;
        }
    }
    recorder.stop().await;
    sample.shutdown().await;
}
