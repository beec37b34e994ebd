//! A camera's secondary stream over the API: set when the camera is added or by PATCH
//! (replaced as a whole, removed with `null`), checked like the main stream, shown in camera
//! answers with its status and link security (its URL and user name only to ManageCameras, its
//! password to nobody), audited without the password, and described in the OpenAPI document.
//! Live video of it (`?stream=secondary`, 404 `no_secondary_stream`) is in live_ws.rs.

mod common;

use axum::http::StatusCode;
use common::Harness;
use serde_json::{Value, json};
use vigil_access::{AuditKind, AuditQuery, CameraScope, Role};
use vigil_media::store::{CameraStatus, now_us};

const PASSWORD: &str = "sub-Secret-42";

fn lobby() -> Value {
    json!({
        "name": "lobby",
        "url": "rtsp://10.0.0.5/main",
        "secondary": {
            "url": "rtsp://10.0.0.5/sub",
            "username": "viewer",
            "password": PASSWORD,
            "mode": "recorded",
        },
    })
}

#[tokio::test]
async fn a_secondary_stream_is_added_shown_replaced_and_removed() {
    let h = Harness::new();
    let admin = h.admin().await;
    let a = h.post("/api/v1/cameras", &admin, Some(lobby())).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert!(!a.text().contains(PASSWORD));
    let sec = &a.json()["secondary"];
    assert_eq!(sec["url"], "rtsp://10.0.0.5/sub");
    assert_eq!(sec["username"], "viewer");
    assert_eq!(sec["has_password"], true);
    assert_eq!(sec["mode"], "recorded");
    assert_eq!(sec["recorded_bytes"], 0);
    assert_eq!(sec["status"]["state"], "not running");
    assert_eq!(sec["link"]["scheme"], "rtsp");
    assert_eq!(sec["link"]["encrypted"], false);
    assert!(
        sec["link"]["summary"]
            .as_str()
            .unwrap()
            .contains("clear text"),
        "{sec}"
    );
    // Stored the way the store keeps secondaries: sealed password, its own stream id.
    let cam = h.state.store.camera("lobby").unwrap();
    let stored = cam.secondary.clone().unwrap();
    assert_eq!(
        h.state
            .store
            .camera_password(&stored.id)
            .unwrap()
            .as_deref(),
        Some(PASSWORD)
    );

    // A camera without one says `null`; one set by PATCH is live only unless told.
    let a = h
        .post(
            "/api/v1/cameras",
            &admin,
            Some(json!({"name": "gate", "url": "rtsp://10.0.0.6/main"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert!(a.json()["secondary"].is_null(), "{}", a.text());
    let a = h
        .patch(
            "/api/v1/cameras/gate",
            &admin,
            json!({"secondary": {"url": "rtsp://10.0.0.6/sub"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let sec = &a.json()["secondary"];
    assert_eq!(sec["mode"], "live");
    assert_eq!(sec["has_password"], false);
    assert!(sec.get("username").is_none(), "{sec}");

    // Replaced as a whole (no password given: none kept), and the rest of the camera kept.
    let a = h
        .patch(
            "/api/v1/cameras/lobby",
            &admin,
            json!({"secondary": {"url": "rtsp://10.0.0.5/sub2", "mode": "live"}, "max_bytes": 1000000}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["secondary"]["url"], "rtsp://10.0.0.5/sub2");
    assert_eq!(v["secondary"]["has_password"], false);
    assert_eq!(v["secondary"]["mode"], "live");
    assert_eq!(v["max_bytes"], 1000000);
    assert_eq!(v["url"], "rtsp://10.0.0.5/main");
    // The secondary recorder's status is its own; disabling the camera disables both.
    h.state
        .store
        .put_status(
            &stored.id,
            &CameraStatus {
                state: "live".into(),
                fps: 15.0,
                codec: Some("avc1.42c01e".into()),
                resolution: Some("320x180".into()),
                updated_us: now_us(),
                ..Default::default()
            },
        )
        .unwrap();
    let v = h.get("/api/v1/cameras/lobby", &admin).await.json();
    assert_eq!(v["status"]["state"], "not running");
    assert_eq!(v["secondary"]["status"]["state"], "live");
    assert_eq!(v["secondary"]["status"]["resolution"], "320x180");
    assert_eq!(v["secondary"]["status"]["fps"], 15.0);
    let v = h
        .patch("/api/v1/cameras/lobby", &admin, json!({"enabled": false}))
        .await
        .json();
    assert_eq!(v["secondary"]["status"]["state"], "disabled");
    assert_eq!(v["secondary"]["url"], "rtsp://10.0.0.5/sub2", "kept");

    // Removed with `null`: the camera stays, without a secondary.
    let a = h
        .patch("/api/v1/cameras/lobby", &admin, json!({"secondary": null}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(a.json()["secondary"].is_null(), "{}", a.text());
    assert_eq!(a.json()["url"], "rtsp://10.0.0.5/main");
    assert!(h.state.store.camera("lobby").unwrap().secondary.is_none());

    // Every change is audited with the secondary's URL and mode, never its password.
    let audit = h
        .state
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::CameraChanged),
            ..Default::default()
        })
        .unwrap();
    let text = serde_json::to_string(&audit.iter().map(|e| &e.detail).collect::<Vec<_>>()).unwrap();
    assert!(!text.contains(PASSWORD), "{text}");
    let added = audit
        .iter()
        .find(|e| e.detail["action"] == "added" && e.detail["camera"] == "lobby")
        .unwrap();
    assert_eq!(added.detail["secondary"]["url"], "rtsp://10.0.0.5/sub");
    assert_eq!(added.detail["secondary"]["mode"], "recorded");
    assert!(audit.iter().any(|e| e.detail["action"] == "changed"
        && e.detail["before"]["secondary"]["url"] == "rtsp://10.0.0.5/sub2"
        && e.detail["after"]["secondary"].is_null()));
}

#[tokio::test]
async fn a_secondary_is_checked_like_the_main_stream_and_a_refusal_changes_nothing() {
    let h = Harness::new();
    let admin = h.admin().await;
    for (secondary, code, says) in [
        (
            json!({"url": "rtsp://u:p@10.0.0.5/sub"}),
            "invalid_camera",
            "`secondary.username` and `secondary.password` fields",
        ),
        (
            json!({"url": "http://10.0.0.5/sub"}),
            "invalid_camera",
            "secondary stream: scheme 'http'",
        ),
        (
            json!({"url": "rtsp://10.0.0.5/sub", "password": "x"}),
            "invalid_camera",
            "`secondary.username`",
        ),
        (
            json!({"url": "rtsp://10.0.0.5/sub", "mode": "sometimes"}),
            "bad_request",
            "",
        ),
        (
            json!({"url": "rtsp://10.0.0.5/sub", "colour": "red"}),
            "bad_request",
            "",
        ),
        (json!({"mode": "live"}), "bad_request", ""),
    ] {
        let body = json!({"name": "lobby", "url": "rtsp://10.0.0.5/main", "secondary": secondary});
        let a = h.post("/api/v1/cameras", &admin, Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        assert_eq!(a.code(), code, "{body}");
        assert!(
            a.json()["message"].as_str().unwrap().contains(says),
            "{body}: {}",
            a.text()
        );
    }
    assert!(h.state.store.cameras().unwrap().is_empty(), "nothing added");
    // PATCH: refused before anything changes.
    let a = h.post("/api/v1/cameras", &admin, Some(lobby())).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let a = h
        .patch(
            "/api/v1/cameras/lobby",
            &admin,
            json!({"enabled": false, "secondary": {"url": "rtsp://u:p@10.0.0.5/x"}}),
        )
        .await;
    assert_eq!(a.code(), "invalid_camera", "{}", a.text());
    let cam = h.state.store.camera("lobby").unwrap();
    assert!(cam.enabled);
    assert_eq!(cam.secondary.unwrap().url, "rtsp://10.0.0.5/sub");
}

#[tokio::test]
async fn only_camera_managers_see_the_secondarys_url_or_change_it() {
    let h = Harness::new();
    let admin = h.admin().await;
    let a = h.post("/api/v1/cameras", &admin, Some(lobby())).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let pw = h.user("watcher", Role::Viewer, CameraScope::only(["lobby"]));
    let viewer = h.login("watcher", &pw).await;
    let pw = h.user("guard", Role::Operator, CameraScope::All);
    let operator = h.login("guard", &pw).await;
    for (who, auth) in [("viewer", &viewer), ("operator", &operator)] {
        for v in [
            h.get("/api/v1/cameras/lobby", auth).await.json(),
            h.get("/api/v1/cameras", auth).await.json()[0].clone(),
        ] {
            let sec = &v["secondary"];
            assert!(sec.is_object(), "{who}: {v}");
            assert!(sec.get("url").is_none(), "{who}: {sec}");
            assert!(sec.get("username").is_none(), "{who}: {sec}");
            assert_eq!(sec["has_password"], true, "{who}");
            assert_eq!(sec["mode"], "recorded", "{who}");
            assert_eq!(sec["link"]["encrypted"], false, "{who}");
            assert!(sec["status"]["state"].is_string(), "{who}");
        }
        for body in [
            json!({"secondary": null}),
            json!({"secondary": {"url": "rtsp://10.0.0.9/sub"}}),
        ] {
            let a = h.patch("/api/v1/cameras/lobby", auth, body).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{who}: {}", a.text());
        }
        let a = h
            .post(
                "/api/v1/cameras",
                auth,
                Some(json!({"name": "x", "url": "rtsp://10.0.0.9/m", "secondary": {"url": "rtsp://10.0.0.9/s"}})),
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{who}: {}", a.text());
    }
    let admin_view = h.get("/api/v1/cameras/lobby", &admin).await.json();
    assert_eq!(admin_view["secondary"]["url"], "rtsp://10.0.0.5/sub");
    assert_eq!(
        h.state
            .store
            .camera("lobby")
            .unwrap()
            .secondary
            .unwrap()
            .url,
        "rtsp://10.0.0.5/sub",
        "unchanged"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_secondary_stream() {
    let h = Harness::new();
    let spec = h
        .get("/api/v1/openapi.json", &common::Auth::None)
        .await
        .json();
    let schemas = &spec["components"]["schemas"];
    for name in ["SecondaryInfo", "SecondaryRequest", "SecondaryMode"] {
        assert!(schemas[name].is_object(), "{name} missing");
    }
    assert!(schemas["CameraInfo"]["properties"]["secondary"].is_object());
    assert!(schemas["NewCameraRequest"]["properties"]["secondary"].is_object());
    assert!(schemas["CameraPatch"]["properties"]["secondary"].is_object());
    let params = spec["paths"]["/api/v1/cameras/{camera}/live"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "stream" && p["in"] == "query"),
        "{params:?}"
    );
}

#[tokio::test]
async fn a_stored_password_is_kept_only_for_the_same_host_and_user() {
    let h = Harness::new();
    let admin = h.admin().await;
    let a = h.post("/api/v1/cameras", &admin, Some(lobby())).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let stored_password = |h: &Harness| {
        let sec = h.state.store.camera("lobby").unwrap().secondary.unwrap();
        h.state.store.camera_password(&sec.id).unwrap()
    };
    // Another path and mode on the same host, same user: the password stays.
    let a = h
        .patch(
            "/api/v1/cameras/lobby",
            &admin,
            json!({"secondary": {"url": "RTSP://10.0.0.5/sub-hd", "username": "viewer", "mode": "live", "keep_password": true}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let sec = &a.json()["secondary"];
    assert_eq!(
        (sec["url"].as_str(), sec["mode"].as_str()),
        (Some("RTSP://10.0.0.5/sub-hd"), Some("live"))
    );
    assert_eq!(sec["has_password"], true, "{sec}");
    assert!(!a.text().contains(PASSWORD));
    assert_eq!(stored_password(&h).as_deref(), Some(PASSWORD));

    // Never to another host or port, another user, with a new password at the same time, or
    // for a camera without a secondary; every refusal changes nothing.
    for (secondary, says) in [
        (
            json!({"url": "rtsp://10.0.0.66/sub", "username": "viewer", "keep_password": true}),
            "same scheme, host, port and user name",
        ),
        (
            json!({"url": "rtsp://10.0.0.5:8554/sub", "username": "viewer", "keep_password": true}),
            "another host",
        ),
        (
            json!({"url": "rtsps://10.0.0.5/sub", "username": "viewer", "keep_password": true}),
            "enter the password again",
        ),
        (
            json!({"url": "rtsp://10.0.0.5/sub", "username": "admin", "keep_password": true}),
            "user name",
        ),
        (
            json!({"url": "rtsp://10.0.0.5/sub", "username": "viewer", "password": "new-one", "keep_password": true}),
            "not both",
        ),
    ] {
        let a = h
            .patch(
                "/api/v1/cameras/lobby",
                &admin,
                json!({"enabled": false, "secondary": secondary}),
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "{secondary}: {}",
            a.text()
        );
        assert_eq!(a.code(), "invalid_field", "{secondary}");
        assert!(
            a.text().contains("secondary.keep_password") && a.text().contains(says),
            "{secondary}: {}",
            a.text()
        );
    }
    let cam = h.state.store.camera("lobby").unwrap();
    assert!(cam.enabled, "unchanged");
    assert_eq!(
        cam.secondary.as_ref().unwrap().url,
        "RTSP://10.0.0.5/sub-hd"
    );
    assert_eq!(stored_password(&h).as_deref(), Some(PASSWORD));

    let gate = json!({"name": "gate", "url": "rtsp://10.0.0.6/main", "secondary": {"url": "rtsp://10.0.0.6/sub", "keep_password": true}});
    let a = h.post("/api/v1/cameras", &admin, Some(gate)).await;
    assert_eq!(a.code(), "invalid_field", "{}", a.text());
    let a = h
        .post(
            "/api/v1/cameras",
            &admin,
            Some(json!({"name": "gate", "url": "rtsp://10.0.0.6/main"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let a = h
        .patch(
            "/api/v1/cameras/gate",
            &admin,
            json!({"secondary": {"url": "rtsp://10.0.0.6/sub", "keep_password": true}}),
        )
        .await;
    assert_eq!(a.code(), "invalid_field", "{}", a.text());
    assert!(a.text().contains("no secondary stream"), "{}", a.text());

    // Without keep_password, a replacement without a password has none (as before).
    let a = h
        .patch(
            "/api/v1/cameras/lobby",
            &admin,
            json!({"secondary": {"url": "rtsp://10.0.0.5/sub", "username": "viewer"}}),
        )
        .await;
    assert_eq!(a.json()["secondary"]["has_password"], false, "{}", a.text());
    assert_eq!(stored_password(&h), None);
}
