//! Analytics events over HTTPS (`POST /api/v1/events`, docs/events-in.md): a token with the
//! `event_source` role posts detections about the cameras in its scope and nothing else; the
//! body is checked with clear errors; accepted events are stored as `analytics.<type>`.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Auth, Harness};
use serde_json::json;
use vigil_access::{CameraScope, Role};
use vigil_media::store::NewCamera;

fn harness() -> Harness {
    let h = Harness::new();
    for name in ["lobby", "yard"] {
        h.state
            .store
            .add_camera(&NewCamera {
                name: name.into(),
                url: "rtsp://127.0.0.1:9/none".into(),
                ..Default::default()
            })
            .unwrap();
    }
    h
}

fn now() -> String {
    vigil_media::time::format_us(vigil_events::model::now_us())
}

fn detection(camera: &str) -> serde_json::Value {
    json!({
        "camera": camera,
        "time": now(),
        "type": "intrusion",
        "object_class": "person",
        "confidence": 0.93,
        "boxes": [{"x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4, "object_class": "person"}],
        "attributes": {"zone": "door"}
    })
}

#[tokio::test]
async fn an_event_source_token_posts_detections_about_its_cameras_only() {
    let h = harness();
    let token = Auth::Bearer(h.token(Role::EventSource, CameraScope::only(["lobby"])));
    let a = h
        .post("/api/v1/events", &token, Some(detection("lobby")))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    assert_eq!(a.json()["kind"], "analytics.intrusion");
    h.state.events.flush();
    let stored = h
        .state
        .events
        .store()
        .query(&vigil_events::EventQuery {
            kinds: vec!["analytics.".into()],
            ..Default::default()
        })
        .unwrap()
        .events;
    assert_eq!(stored.len(), 1);
    let e = &stored[0].event;
    assert_eq!(e.camera.as_deref(), Some("lobby"));
    assert_eq!(e.source.kind, vigil_events::SourceKind::Analytics);
    assert_eq!(e.attributes["object_class"], "person");
    assert_eq!(e.attributes["zone"], "door");
    assert!(e.attributes["box.0"].starts_with("x=0.1000 y=0.2000"));

    // Another camera: 403 whether it exists or not.
    for cam in ["yard", "nowhere"] {
        let a = h.post("/api/v1/events", &token, Some(detection(cam))).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{cam}: {}", a.text());
    }
    // The token can do nothing else: not even read events.
    assert_eq!(
        h.get("/api/v1/events", &token).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.get("/api/v1/cameras", &token).await.status,
        StatusCode::FORBIDDEN
    );
    // Other roles may not post.
    let viewer = Auth::Bearer(h.token(Role::Viewer, CameraScope::All));
    let a = h
        .post("/api/v1/events", &viewer, Some(detection("lobby")))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.post("/api/v1/events", &Auth::None, Some(detection("lobby")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn bad_bodies_are_refused_with_what_is_wrong() {
    let h = harness();
    let token = Auth::Bearer(h.token(Role::EventSource, CameraScope::All));
    let mut unknown = detection("nowhere");
    let a = h.post("/api/v1/events", &token, Some(unknown.take())).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "unknown_camera");
    for (body, says) in [
        (
            json!({"camera": "lobby", "type": "motion"}),
            "missing field `time`",
        ),
        (
            json!({"camera": "lobby", "time": now(), "type": "motion", "extra": 1}),
            "unknown field `extra`",
        ),
        (
            json!({"camera": "lobby", "time": now(), "type": "Motion Alarm"}),
            "field `type`",
        ),
        (
            json!({"camera": "lobby", "time": "2020-01-01T00:00:00Z", "type": "motion"}),
            "24 hours",
        ),
        (
            json!({"camera": "lobby", "time": now(), "type": "motion",
                   "boxes": [{"x": 0.8, "y": 0.0, "width": 0.5, "height": 0.1}]}),
            "beyond the picture",
        ),
    ] {
        let a = h.post("/api/v1/events", &token, Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(a.code(), "invalid_event", "{body}");
        assert!(
            a.json()["message"].as_str().unwrap().contains(says),
            "{}",
            a.text()
        );
    }
    // Over 16 KiB.
    let mut big = detection("lobby");
    big["message"] = json!("x".repeat(20_000));
    let a = h.post("/api/v1/events", &token, Some(big)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());
    // Nothing was stored.
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.state.events.flush();
    let stored = h
        .state
        .events
        .store()
        .query(&vigil_events::EventQuery {
            kinds: vec!["analytics.".into()],
            ..Default::default()
        })
        .unwrap();
    assert!(stored.events.is_empty());
}

/// A harness with one signed sender `cam-ai` allowed to post about `lobby`, and its secret.
fn signed_harness() -> (Harness, tempfile::TempDir, Vec<u8>) {
    use std::os::unix::fs::PermissionsExt as _;
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = b"0123456789abcdef0123456789abcdef-shared".to_vec();
    let path = secret_dir.path().join("cam-ai.secret");
    std::fs::write(&path, [&secret[..], b"\n"].concat()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let h = Harness::with_config(|c| {
        c.events.webhooks.push(vigil_config::EventWebhook {
            name: "cam-ai".into(),
            secret_file: path.clone(),
            cameras: Some(vec!["lobby".into()]),
        })
    });
    for name in ["lobby", "yard"] {
        h.state
            .store
            .add_camera(&NewCamera {
                name: name.into(),
                url: "rtsp://127.0.0.1:9/none".into(),
                ..Default::default()
            })
            .unwrap();
    }
    (h, secret_dir, secret)
}

fn sign(secret: &[u8], ts: &str, nonce: &str, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let data = [ts.as_bytes(), b".", nonce.as_bytes(), b".", body].concat();
    format!(
        "sha256={}",
        hex::encode(aws_lc_rs::hmac::sign(&key, &data).as_ref())
    )
}

async fn signed_post(
    h: &Harness,
    sender: &str,
    ts: &str,
    nonce: &str,
    signature: &str,
    body: &[u8],
) -> common::Answer {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/api/v1/events/webhook/{sender}"))
        .header("content-type", "application/json")
        .header("x-vigil-timestamp", ts)
        .header("x-vigil-nonce", nonce)
        .header("x-vigil-signature", signature)
        .body(axum::body::Body::from(body.to_vec()))
        .unwrap();
    h.send(req).await
}

#[tokio::test]
async fn signed_posts_need_the_right_signature_a_fresh_time_and_a_new_nonce() {
    let (h, _dir, secret) = signed_harness();
    let now = (vigil_events::model::now_us() / 1_000_000).to_string();
    let body = serde_json::to_vec(&detection("lobby")).unwrap();
    let nonce = "n-0000000000000001";
    let a = signed_post(
        &h,
        "cam-ai",
        &now,
        nonce,
        &sign(&secret, &now, nonce, &body),
        &body,
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    assert_eq!(a.json()["camera"], "lobby");
    // The same request again: a replay.
    let a = signed_post(
        &h,
        "cam-ai",
        &now,
        nonce,
        &sign(&secret, &now, nonce, &body),
        &body,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "replayed_request");
    // The nonce is kept in events.db, where a restarted server finds it.
    let events_dir = h.state.events.store().path().parent().unwrap().to_owned();
    let kept = vigil_events::nonces::NonceStore::open(&events_dir)
        .unwrap()
        .live(now.parse().unwrap())
        .unwrap();
    assert!(
        kept.iter().any(|(s, n, _)| s == "cam-ai" && n == nonce),
        "{kept:?}"
    );
    // A changed body, a wrong secret, an unknown sender: the same refusal.
    let n2 = "n-0000000000000002";
    let other = serde_json::to_vec(&detection("lobby")).unwrap();
    let mut tampered = other.clone();
    tampered.extend_from_slice(b" ");
    for (sender, sig, b) in [
        ("cam-ai", sign(&secret, &now, n2, &other), &tampered),
        (
            "cam-ai",
            sign(b"another secret of at least 32 bytes!!", &now, n2, &other),
            &other,
        ),
        ("nobody", sign(&secret, &now, n2, &other), &other),
        ("cam-ai", "sha256=zz".to_owned(), &other),
    ] {
        let a = signed_post(&h, sender, &now, n2, &sig, b).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{sender}: {}", a.text());
        assert_eq!(a.code(), "bad_signature");
    }
    // A stale timestamp, correctly signed.
    let old = (vigil_events::model::now_us() / 1_000_000 - 600).to_string();
    let a = signed_post(
        &h,
        "cam-ai",
        &old,
        n2,
        &sign(&secret, &old, n2, &other),
        &other,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "stale_request");
    // Correctly signed, but about a camera not in the sender's list.
    let yard = serde_json::to_vec(&detection("yard")).unwrap();
    let a = signed_post(
        &h,
        "cam-ai",
        &now,
        n2,
        &sign(&secret, &now, n2, &yard),
        &yard,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    h.state.events.flush();
    let stored = h
        .state
        .events
        .store()
        .query(&vigil_events::EventQuery {
            kinds: vec!["analytics.".into()],
            ..Default::default()
        })
        .unwrap()
        .events;
    assert_eq!(stored.len(), 1, "only the first post was stored");
    assert_eq!(stored[0].event.source.name, "cam-ai");
}
