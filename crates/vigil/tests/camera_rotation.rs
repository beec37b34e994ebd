//! `vigil camera rotate-passwords` against real rotation cameras (vigil_testkit::RotationCameras:
//! GStreamer RTSP with Digest auth plus an ONVIF device service over HTTPS whose SetUser changes
//! the RTSP credentials): the CLI killed with `kill -9` between SetUser and commit, then
//! `vigil serve`'s start-up settles the rotation and the camera records on the password it
//! has; a later run rotates every camera while recording; `--server` takes only this
//! server's name; no password in any output or log.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Vigil, bin};
use vigil_media::store::Store;
use vigil_testkit::{Clip, RotationCameraSpec, RotationCameras};

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_rotation_killed_between_setuser_and_commit_is_settled_at_start_and_nothing_is_locked_out() {
    let clip = Clip::h264(2, 25, 25, 320, 180, false);
    let mut specs = vec![
        RotationCameraSpec::new("door", "door-user", "Door-initial-1"),
        RotationCameraSpec::new("yard", "yard-user", "Yard-initial-2"),
    ];
    // The door camera applies SetUser and holds its answer: the window to kill Vigil in.
    specs[0].setuser_delay = Some(Duration::from_secs(20));
    let cams = RotationCameras::start(clip.path(), &specs);
    let v = Vigil::init(2);
    v.add_rotation_cameras(&cams, &specs.iter().collect::<Vec<_>>());

    // Rotation of the door camera, killed once the camera took the new password.
    let mut rotation = Command::new(bin())
        .arg("--config")
        .arg(&v.config)
        .args(["camera", "rotate-passwords", "door"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cams.wait_applied("door", Duration::from_secs(30));
    let new_on_camera = cams.password("door");
    assert_ne!(new_on_camera, "Door-initial-1");
    // SIGKILL, as `kill -9`.
    rotation.kill().unwrap();
    rotation.wait().unwrap();
    {
        let store = Store::open(&v.data).unwrap();
        let door = store.camera("door").unwrap();
        assert_eq!(
            store.camera_password(&door.id).unwrap().unwrap(),
            "Door-initial-1",
            "nothing committed before the proof"
        );
        assert_eq!(
            store.pending_password(&door.id).unwrap().unwrap(),
            new_on_camera,
            "the password the camera has was in the vault before it was sent"
        );
    }

    // `vigil serve` starts: the pending password is proven and kept before recording.
    let server = v.serve();
    for cam in ["door", "yard"] {
        v.wait_status(cam, |s| s["state"] == "recording", Duration::from_secs(60));
    }
    {
        let store = Store::open(&v.data).unwrap();
        let door = store.camera("door").unwrap();
        assert_eq!(
            store.camera_password(&door.id).unwrap().unwrap(),
            new_on_camera
        );
        assert_eq!(store.pending_password(&door.id).unwrap(), None);
    }

    // Another server's name is refused before anything is sent.
    let out = v.cmd(&["camera", "rotate-passwords", "--server", "elsewhere"]);
    assert!(!out.status.success());
    assert!(
        output(&out).contains("'elsewhere' is not this recording server"),
        "{}",
        output(&out)
    );

    // The yard camera takes 12 characters with symbols; it rotates while recording (door
    // would wait 20 s for its answer).
    let rule = v.ok(&[
        "camera",
        "password-rule",
        "yard",
        "--length",
        "12",
        "--symbols",
        "-_.",
    ]);
    assert!(
        rule.contains("12 characters") && rule.contains("-_."),
        "{rule}"
    );
    let out = v.cmd(&["camera", "password-rule", "yard", "--length", "7"]);
    assert!(!out.status.success());
    assert!(output(&out).contains("8 to 64"), "{}", output(&out));
    let out = v.cmd(&["camera", "rotate-passwords", "yard", "--json"]);
    let text = output(&out);
    assert!(out.status.success(), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["cameras"][0]["result"], "rotated", "{report}");
    let yard_pw = cams.password("yard");
    assert_ne!(yard_pw, "Yard-initial-2");
    assert_eq!(yard_pw.len(), 12);
    assert!(
        yard_pw.chars().any(|c| "-_.".contains(c)),
        "a symbol of the rule"
    );
    assert!(
        yard_pw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    );
    let out = v.cmd(&["camera", "rotate-passwords", "yard"]);
    let table = output(&out);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("RESULT") && table.contains("1 rotated"),
        "{table}"
    );
    let yard_pw2 = cams.password("yard");
    assert_ne!(yard_pw2, yard_pw);
    std::thread::sleep(Duration::from_secs(3));
    v.wait_status(
        "yard",
        |s| s["state"] == "recording",
        Duration::from_secs(30),
    );
    let log = server.output();
    for secret in [
        "Door-initial-1",
        "Yard-initial-2",
        new_on_camera.as_str(),
        yard_pw.as_str(),
        yard_pw2.as_str(),
    ] {
        for (what, t) in [
            ("rotation output", &text),
            ("table", &table),
            ("serve log", &log),
        ] {
            assert!(!t.contains(secret), "a password in the {what}");
        }
    }
    server.stop();
}
