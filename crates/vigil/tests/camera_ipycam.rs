//! A camera Vigil was not written against: IPyCam (PyPI), an independent virtual ONVIF camera
//! (vigil_testkit::ipycam). Found by a unicast WS-Discovery probe with what its discovery
//! answer says; added by ONVIF over plain HTTP only when the admin says so (IPyCam has no
//! HTTPS), its WS-Security user checked, the recording and live grid streams chosen from its
//! two profiles, its identity recorded; then recorded from IPyCam's own RTSP server.

mod common;

use std::time::Duration;

use common::Vigil;
use vigil_testkit::ipycam::IpyCam;

const PASSWORD: &str = "ipycam-Test-Secret7";

#[test]
fn an_independent_onvif_camera_is_discovered_added_from_its_profiles_and_recorded() {
    let cam = IpyCam::start("IPYCAM-T1", PASSWORD);
    let v = Vigil::init(2);
    let discover = |extra: &[&str]| {
        let port = cam.discovery_port.to_string();
        let mut args = vec![
            "camera",
            "discover",
            "--subnet",
            "127.0.0.1/32",
            "--no-multicast",
            "--wait",
            "2s",
            "--port",
            &port,
        ];
        args.extend_from_slice(extra);
        v.ok(&args)
    };
    let found: serde_json::Value = serde_json::from_str(&discover(&["--json"])).unwrap();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(d["address"], "127.0.0.1", "{d}");
    assert_eq!(
        d["onvif_url"],
        format!("{}/onvif/device_service", cam.onvif_address()),
        "{d}"
    );
    assert_eq!(d["https"], false, "{d}");
    assert!(d["added_as"].is_null(), "{d}");
    eprintln!("discovered: {d}");

    let pw = v.dir.path().join("cam.pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let pw = pw.to_str().unwrap();
    let address = cam.onvif_address();
    let add = |extra: &[&str]| {
        let mut args = vec![
            "camera",
            "add",
            "yard",
            "--onvif",
            &address,
            "--username",
            "admin",
            "--password-file",
            pw,
        ];
        args.extend_from_slice(extra);
        v.cmd(&args)
    };
    // Plain HTTP is refused until the admin accepts it.
    let refused = add(&[]);
    let text = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{text}");
    assert!(text.contains("--allow-http"), "{text}");
    // A wrong password is refused by the camera's WS-Security check.
    let wrong = v.dir.path().join("wrong.pw");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let out = v.cmd(&[
        "camera",
        "add",
        "yard",
        "--onvif",
        &address,
        "--username",
        "admin",
        "--password-file",
        wrong.to_str().unwrap(),
        "--allow-http",
    ]);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a wrong password was accepted: {text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");

    let out = add(&["--allow-http"]);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("recording profile"), "{said}");
    assert!(said.contains("live grid profile"), "{said}");
    assert!(said.contains("serial IPYCAM-T1"), "{said}");
    assert!(!said.contains(PASSWORD), "{said}");
    let list: serde_json::Value =
        serde_json::from_str(&v.ok(&["camera", "list", "--json"])).unwrap();
    let yard = &list[0];
    assert_eq!(yard["url"], cam.rtsp_url("video_main"), "{yard}");
    assert_eq!(
        yard["secondary"]["url"],
        cam.rtsp_url("video_sub"),
        "{yard}"
    );
    assert_eq!(yard["secondary"]["mode"], "live", "{yard}");
    eprintln!("added: {yard}");

    // Discovery now knows the device as added.
    let found: serde_json::Value = serde_json::from_str(&discover(&["--json"])).unwrap();
    assert_eq!(found[0]["added_as"], "yard", "{found}");

    let _server = v.serve();
    v.wait_recorded("yard", 4.0, Duration::from_secs(90));
}
