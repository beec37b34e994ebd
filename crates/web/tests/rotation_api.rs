//! Camera password rotation over the API against a real rotation camera
//! (vigil_testkit::RotationCameras): admins rotate and get the report, never a password;
//! other roles are refused; a selection that names nothing, two things, another server or an
//! unknown camera is refused before anything is sent.

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
