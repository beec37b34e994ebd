//! ONVIF cameras over the API against real ONVIF devices (vigil_testkit::onvif): discovery of
//! the devices on loopback, adding one (main and live secondary stream, identity), refusals
//! (no target, wrong password, plain HTTP), never a password in an answer, admins only.

mod common;

use axum::http::StatusCode;
use common::Harness;
use serde_json::json;
use vigil_access::{CameraScope, Role};
use vigil_testkit::onvif::{OnvifDevice, OnvifPeer};

const PASSWORD: &str = "onvif-Secret-7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_discover_and_add_onvif_cameras() {
    let h = Harness::new();
    let admin = h.admin().await;
    let peer = OnvifPeer::start(&[
        OnvifDevice::new("SN-API-1", PASSWORD),
        OnvifDevice::new("SN-API-2", PASSWORD),
    ]);

    let a = h
        .post("/api/v1/onvif/discover", &admin, Some(json!({})))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(a.json()["code"], "invalid_field");

    let sweep = json!({"subnet": "127.0.0.0/29", "port": peer.discovery_port(), "wait_seconds": 1});
    let a = h
        .post("/api/v1/onvif/discover", &admin, Some(sweep.clone()))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let found = a.json();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    let urls: Vec<&str> = found
        .iter()
        .map(|d| d["onvif_url"].as_str().unwrap())
        .collect();
    assert!(
        urls.contains(&peer.device_url(0).as_str()) && urls.contains(&peer.device_url(1).as_str())
    );
    assert!(
        found
            .iter()
            .all(|d| d["https"] == false && d["added_as"].is_null())
    );

    let add = |password: &str, allow_http: bool| {
        json!({
            "name": "yard", "address": peer.device_url(0), "username": "admin",
            "password": password, "allow_http": allow_http,
        })
    };
    let a = h
        .post("/api/v1/onvif/cameras", &admin, Some(add(PASSWORD, false)))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(a.json()["code"], "invalid_onvif_address");
    let a = h
        .post("/api/v1/onvif/cameras", &admin, Some(add("wrong", true)))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    assert_eq!(a.json()["code"], "onvif_unauthorized");

    let a = h
        .post("/api/v1/onvif/cameras", &admin, Some(add(PASSWORD, true)))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert!(!a.text().contains(PASSWORD));
    let v = a.json();
    assert_eq!(v["camera"]["name"], "yard");
    assert_eq!(v["camera"]["url"], v["main"]["url"]);
    assert_eq!(v["camera"]["has_password"], true);
    assert_eq!(v["camera"]["secondary"]["mode"], "live");
    assert_eq!(v["camera"]["secondary"]["url"], v["secondary"]["url"]);
    assert_eq!(v["identity"]["serial"], "SN-API-1");
    assert!(v["identity"]["certificate"].is_null());

    let a = h
        .post("/api/v1/onvif/discover", &admin, Some(sweep.clone()))
        .await;
    let found = a.json();
    let yard = found
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["onvif_url"] == peer.device_url(0).as_str())
        .unwrap()
        .clone();
    assert_eq!(yard["added_as"], "yard", "{found}");

    // The camera answer shows the recorded device to admins; no connection checked it yet.
    let a = h.get("/api/v1/cameras/yard", &admin).await;
    let device = a.json()["device"].clone();
    assert_eq!(device["serial"], "SN-API-1", "{device}");
    assert_eq!(device["check"], "unchecked", "{device}");

    // Accepting the device answering (the same one here) records it again, audited.
    let a = h
        .post(
            "/api/v1/cameras/yard/accept-device",
            &admin,
            Some(json!({})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(!a.text().contains(PASSWORD));
    let v = a.json();
    assert_eq!(v["previous"]["serial"], "SN-API-1");
    assert_eq!(v["camera"]["device"]["serial"], "SN-API-1");
    assert_eq!(v["camera"]["device"]["check"], "unchecked");
    // A camera added by URL has no device to accept; a bad fingerprint is refused.
    let a = h
        .post(
            "/api/v1/cameras",
            &admin,
            Some(json!({"name": "gate", "url": "rtsp://127.0.0.1:1/x"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let a = h
        .post(
            "/api/v1/cameras/gate/accept-device",
            &admin,
            Some(json!({})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    assert_eq!(a.json()["code"], "camera_not_onvif");
    let a = h
        .post(
            "/api/v1/cameras/yard/accept-device",
            &admin,
            Some(json!({"fingerprint": "not-hex"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());

    let pw = h.user("op", Role::Operator, CameraScope::All);
    let operator = h.login("op", &pw).await;
    let a = h
        .post("/api/v1/onvif/discover", &operator, Some(sweep))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    let a = h.get("/api/v1/cameras/yard", &operator).await;
    assert!(a.json().get("device").is_none(), "{}", a.text());
    let a = h
        .post(
            "/api/v1/cameras/yard/accept-device",
            &operator,
            Some(json!({})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
}
