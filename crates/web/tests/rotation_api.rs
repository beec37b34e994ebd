//! Camera password rotation over the API against a real rotation camera
//! (vigil_testkit::RotationCameras): admins rotate and get the report, never a password;
//! other roles are refused; a selection that names nothing, two things, another server or an
//! unknown camera is refused before anything is sent. A password changed on the camera outside
//! Vigil is stored over the API only once the camera proves it, audited without it.

mod common;

use axum::http::StatusCode;
use common::Harness;
use serde_json::json;
use vigil_access::{CameraScope, Role};
use vigil_testkit::{Clip, RotationCameraSpec, RotationCameras};

const PASSWORD: &str = "Api-initial-pw-5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_rotate_camera_passwords_and_get_a_report_without_passwords() {
    let clip = Clip::h264(2, 25, 25, 320, 180, false);
    let cams = RotationCameras::start(
        clip.path(),
        &[RotationCameraSpec::new("porch", "porch-user", PASSWORD)],
    );
    let h = Harness::new();
    let admin = h.admin().await;
    let a = h
        .post(
            "/api/v1/onvif/cameras",
            &admin,
            Some(json!({
                "name": "porch", "address": cams.onvif_url("porch"), "username": "porch-user",
                "password": PASSWORD, "fingerprint": cams.fingerprint(),
            })),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());

    let path = "/api/v1/cameras/rotate-passwords";
    for (body, status, code) in [
        (json!({}), StatusCode::BAD_REQUEST, "invalid_field"),
        (
            json!({"all": true, "cameras": ["porch"]}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"server": "another-server"}),
            StatusCode::BAD_REQUEST,
            "other_server",
        ),
        (
            json!({"cameras": ["nowhere"]}),
            StatusCode::NOT_FOUND,
            "camera_not_found",
        ),
    ] {
        let a = h.post(path, &admin, Some(body.clone())).await;
        assert_eq!(a.status, status, "{body}: {}", a.text());
        assert_eq!(a.json()["code"], code, "{body}");
    }
    assert_eq!(cams.setuser_calls("porch"), 0, "nothing was sent");

    for role in [Role::Operator, Role::Viewer] {
        let who = format!("{role:?}").to_lowercase();
        let pw = h.user(&who, role, CameraScope::All);
        let auth = h.login(&who, &pw).await;
        let a = h.post(path, &auth, Some(json!({"all": true}))).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{who}: {}", a.text());
    }
    assert_eq!(cams.setuser_calls("porch"), 0);

    let a = h
        .post(path, &admin, Some(json!({"cameras": ["porch"]})))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let report = a.json();
    assert_eq!(report["cameras"][0]["camera"], "porch", "{report}");
    assert_eq!(report["cameras"][0]["result"], "rotated", "{report}");
    let now = cams.password("porch");
    assert_ne!(now, PASSWORD);
    assert!(!a.text().contains(&now) && !a.text().contains(PASSWORD));
}

/// Changes the camera's password outside Vigil, as its own web page would: ONVIF SetUser
/// with the old password.
async fn change_on_camera(cams: &RotationCameras, name: &str, user: &str, old: &str, new: &str) {
    let mut options =
        vigil_onvif::Options::new(vigil_media::ingest_tls::TrustStore::new(&[], false));
    options.pin = Some(cams.fingerprint().to_owned());
    vigil_onvif::Client::new(
        vigil_onvif::Target::parse(&cams.onvif_url(name)).unwrap(),
        Some(vigil_onvif::Credentials::new(user, old)),
        options,
    )
    .set_password(user, new)
    .await
    .unwrap();
    assert_eq!(cams.password(name), new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_store_a_password_changed_on_the_camera_once_the_camera_proves_it() {
    const CHANGED: &str = "Changed-outside-9";
    let clip = Clip::h264(2, 25, 25, 320, 180, false);
    let cams = RotationCameras::start(
        clip.path(),
        &[RotationCameraSpec::new("porch", "porch-user", PASSWORD)],
    );
    let h = Harness::new();
    let admin = h.admin().await;
    let a = h
        .post(
            "/api/v1/onvif/cameras",
            &admin,
            Some(json!({
                "name": "porch", "address": cams.onvif_url("porch"), "username": "porch-user",
                "password": PASSWORD, "fingerprint": cams.fingerprint(),
            })),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    change_on_camera(&cams, "porch", "porch-user", PASSWORD, CHANGED).await;
    let stored = || {
        let s = &h.state.store;
        s.camera_password(&s.camera("porch").unwrap().id)
            .unwrap()
            .unwrap()
    };

    let path = "/api/v1/cameras/porch/password";
    for (body, status, code) in [
        (
            json!({"password": ""}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"password": "tab\there"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"password": "x".repeat(257)}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        // The camera refuses it: nothing is stored.
        (
            json!({"password": "Not-the-password-1"}),
            StatusCode::CONFLICT,
            "password_not_accepted",
        ),
    ] {
        let a = h.post(path, &admin, Some(body.clone())).await;
        assert_eq!(a.status, status, "{body}: {}", a.text());
        assert_eq!(a.json()["code"], code, "{body}: {}", a.text());
        assert!(!a.text().contains("Not-the-password-1"));
        assert_eq!(stored(), PASSWORD);
    }
    let a = h
        .post(
            "/api/v1/cameras/nowhere/password",
            &admin,
            Some(json!({"password": CHANGED})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    let operator = h.signed_in("olga", Role::Operator, CameraScope::All).await;
    let a = h
        .post(path, &operator, Some(json!({"password": CHANGED})))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert_eq!(stored(), PASSWORD);

    let a = h
        .post(path, &admin, Some(json!({"password": CHANGED})))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let done = a.json();
    assert_eq!(done["camera"], "porch");
    assert_eq!(done["proven_by"], json!(["onvif", "rtsp"]), "{done}");
    assert!(!a.text().contains(CHANGED));
    assert_eq!(stored(), CHANGED);
    assert_eq!(
        cams.setuser_calls("porch"),
        1,
        "Vigil itself sent no SetUser"
    );
    let entries = h
        .state
        .access
        .audit_query(&vigil_access::AuditQuery {
            kind: Some(vigil_access::AuditKind::CameraChanged),
            ..Default::default()
        })
        .unwrap();
    let set: Vec<_> = entries
        .iter()
        .filter(|e| e.detail["action"] == "password_set")
        .collect();
    assert_eq!(set.len(), 1, "{entries:#?}");
    assert_eq!(set[0].detail["camera"], "porch");
    assert_eq!(set[0].user.as_deref(), Some("admin"));
    for e in &entries {
        let t = e.detail.to_string();
        assert!(!t.contains(CHANGED) && !t.contains(PASSWORD), "{t}");
    }
}
