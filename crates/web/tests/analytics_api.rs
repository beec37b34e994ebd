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
