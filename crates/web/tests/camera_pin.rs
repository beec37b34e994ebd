//! Pinning an `rtsps://` camera's certificate over the API (`PATCH … {"tls_pin": …}`), the
//! same use case as `vigil camera trust`: any notation of the fingerprint is stored in the
//! canonical one and shown in the link of the camera's streams, `null` removes it, a malformed
//! one is a 400 that changes nothing, and each pin or unpin is one audited change.

mod common;

use axum::http::StatusCode;
use common::Harness;
use serde_json::json;
use vigil_access::{AuditKind, AuditQuery};

#[tokio::test]
async fn a_pin_is_set_shown_refused_when_malformed_and_removed() {
    let h = Harness::new();
    let admin = h.admin().await;
    let a = h
        .post(
            "/api/v1/cameras",
            &admin,
            Some(json!({"name": "gate", "url": "rtsps://10.0.0.9/main"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(a.json()["link"]["encrypted"], true);
    assert!(a.json()["link"]["pinned"].is_null());

    let canonical = vec!["AB"; 32].join(":");
    let p = h
        .patch(
            "/api/v1/cameras/gate",
            &admin,
            json!({"tls_pin": format!("sha256:{}", "ab".repeat(32))}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text());
    assert_eq!(p.json()["link"]["pinned"], canonical.as_str());
    assert!(
        p.json()["link"]["summary"]
            .as_str()
            .unwrap()
            .contains("pinned certificate"),
        "{}",
        p.text()
    );
    assert_eq!(
        h.state.store.camera("gate").unwrap().tls_pin.as_deref(),
        Some(canonical.as_str())
    );

    // Malformed: refused, saying what a fingerprint looks like; neither the pin nor anything
    // else sent along changes.
    let bad = h
        .patch(
            "/api/v1/cameras/gate",
            &admin,
            json!({"tls_pin": "abc", "enabled": false}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    assert_eq!(bad.json()["code"], "invalid_camera");
    assert!(bad.text().contains("64 hex digits"), "{}", bad.text());
    let cam = h.state.store.camera("gate").unwrap();
    assert_eq!(cam.tls_pin.as_deref(), Some(canonical.as_str()));
    assert!(cam.enabled);

    let u = h
        .patch("/api/v1/cameras/gate", &admin, json!({"tls_pin": null}))
        .await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.text());
    assert!(u.json()["link"]["pinned"].is_null());

    let audit = h
        .state
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::CameraChanged),
            ..Default::default()
        })
        .unwrap();
    let pins: Vec<_> = audit
        .iter()
        .filter(|e| e.detail["after"].get("tls_pin").is_some())
        .map(|e| {
            (
                e.detail["before"]["tls_pin"].clone(),
                e.detail["after"]["tls_pin"].clone(),
            )
        })
        .collect();
    assert_eq!(
        pins,
        [
            (json!(null), json!(canonical)),
            (json!(canonical), json!(null))
        ],
        "one entry per pin and unpin, none for the refusal"
    );
}
