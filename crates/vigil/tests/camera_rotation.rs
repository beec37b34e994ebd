//! `vigil camera rotate-passwords` against real rotation cameras (vigil_testkit::RotationCameras:
//! GStreamer RTSP with Digest auth plus an ONVIF device service over HTTPS whose SetUser changes
//! the RTSP credentials): the CLI killed with `kill -9` between SetUser and commit, then
//! `vigil serve`'s start-up settles the rotation and the camera records on the password it
//! has; a later run rotates every camera while recording; `--server` takes only this
//! server's name; a password changed on the camera outside Vigil is stored by `vigil camera
//! set-password` only once the camera proves it, and the streams record on it at once; no
//! password in any output or log.

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

    // `vigil serve` starts: the pending password is proven and kept before recording, and
    // audited as the server's own doing. (Without the API, as `--role recording` runs, the
    // runtime opens the audit log itself: vigil-app tests/rotation.rs.)
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
    let audit = v.ok(&[
        "audit-log",
        "query",
        "--kind",
        "camera_password_rotation",
        "--jsonl",
    ]);
    let settled: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["user"] == "server:password-rotation (start-up)")
        .collect();
    assert_eq!(settled.len(), 1, "{audit}");
    assert_eq!(
        (
            &settled[0]["detail"]["camera"],
            &settled[0]["detail"]["result"]
        ),
        (&serde_json::json!("door"), &serde_json::json!("rotated")),
        "{audit}"
    );
    assert!(!audit.contains(&new_on_camera) && !audit.contains("Door-initial-1"));

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

/// Changes a camera's password outside Vigil, as its own web page would (ONVIF SetUser with
/// the old password, on a runtime of its own: the test is synchronous).
fn change_on_camera(cams: &RotationCameras, name: &str, user: &str, old: &str, new: &str) {
    let mut options =
        vigil_onvif::Options::new(vigil_media::ingest_tls::TrustStore::new(&[], false));
    options.pin = Some(cams.fingerprint().to_owned());
    let client = vigil_onvif::Client::new(
        vigil_onvif::Target::parse(&cams.onvif_url(name)).unwrap(),
        Some(vigil_onvif::Credentials::new(user, old)),
        options,
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.set_password(user, new))
        .unwrap();
    assert_eq!(cams.password(name), new);
}

#[test]
fn a_password_changed_on_the_camera_is_stored_once_proven_and_its_streams_record_on_it_at_once() {
    let clip = Clip::h264(2, 25, 25, 320, 180, false);
    let specs = vec![
        RotationCameraSpec::new("gate", "gate-user", "Gate-initial-1"),
        RotationCameraSpec::new("shed", "shed-user", "Shed-initial-2"),
    ];
    let cams = RotationCameras::start(clip.path(), &specs);
    let v = Vigil::init(2);
    // Long back-offs: a stream refused for some time waits up to 60 s before it tries again,
    // unless the new password restarts it.
    v.set_config("max_backoff = \"2s\"", "max_backoff = \"60s\"");
    v.add_rotation_cameras(&cams, &[&specs[0]]);
    // The shed camera by RTSP URL: rotation cannot reach it, set-password can.
    v.add_camera_with_password(
        "shed",
        &cams.rtsp_url("shed"),
        "shed-user",
        "Shed-initial-2",
    );
    let server = v.serve();
    for cam in ["gate", "shed"] {
        v.wait_status(cam, |s| s["state"] == "recording", Duration::from_secs(60));
    }

    // Both passwords are changed on the cameras; the streams are refused from then on.
    change_on_camera(
        &cams,
        "gate",
        "gate-user",
        "Gate-initial-1",
        "Gate-changed-3",
    );
    change_on_camera(
        &cams,
        "shed",
        "shed-user",
        "Shed-initial-2",
        "Shed-changed-4",
    );
    for cam in ["gate", "shed"] {
        v.wait_status(
            cam,
            |s| s["state"] == "reconnecting",
            Duration::from_secs(30),
        );
    }
    // Refused at 0, 1, 3, 7 and 15 s: the next try is 16 s later.
    std::thread::sleep(Duration::from_secs(16));

    let file = |name: &str, text: &str| {
        let p = v.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let stored = |cam: &str| {
        let store = Store::open(&v.data).unwrap();
        let id = store.camera(cam).unwrap().id;
        store.camera_password(&id).unwrap().unwrap()
    };
    // Bad input and a password the camera refuses: nothing is stored.
    for (content, says) in [
        ("", "is empty"),
        ("Gate\u{1}changed\n", "control characters"),
        ("Not-the-password-5\n", "did not accept the new password"),
    ] {
        let f = file("bad.pw", content);
        let out = v.cmd(&["camera", "set-password", "gate", "--password-file", &f]);
        assert!(!out.status.success());
        assert!(output(&out).contains(says), "{says}: {}", output(&out));
        assert!(!output(&out).contains("Not-the-password-5"));
        assert_eq!(stored("gate"), "Gate-initial-1");
    }
    let out = v.cmd(&[
        "camera",
        "set-password",
        "nowhere",
        "--password-file",
        &file("x.pw", "Abc-12345\n"),
    ]);
    assert!(!out.status.success());

    let f = file("gate.pw", "Gate-changed-3\n");
    let set_at = std::time::Instant::now();
    let said = v.ok(&["camera", "set-password", "gate", "--password-file", &f]);
    assert!(
        said.contains("proven (onvif and rtsp) and stored"),
        "{said}"
    );
    assert_eq!(stored("gate"), "Gate-changed-3");
    let f = file("shed.pw", "Shed-changed-4\n");
    let out = v.cmd(&[
        "camera",
        "set-password",
        "shed",
        "--password-file",
        &f,
        "--json",
    ]);
    assert!(out.status.success(), "{}", output(&out));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["proven_by"], serde_json::json!(["rtsp"]), "{done}");
    assert_eq!(stored("shed"), "Shed-changed-4");
    // The runtime restarts both cameras' streams with the new passwords at once (its 2 s
    // pass), not at the end of their back-off.
    for cam in ["gate", "shed"] {
        v.wait_status(cam, |s| s["state"] == "recording", Duration::from_secs(10));
    }
    assert!(
        set_at.elapsed() < Duration::from_secs(12),
        "recording again {:?} after the new passwords",
        set_at.elapsed()
    );

    let audit = v.ok(&["audit-log", "query", "--jsonl"]);
    let set: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"password_set\""))
        .collect();
    assert_eq!(set.len(), 2, "{audit}");
    assert!(
        set.iter().any(|l| l.contains("\"gate\"")) && set.iter().any(|l| l.contains("\"shed\""))
    );
    let log = server.stop();
    for secret in ["Gate-changed-3", "Shed-changed-4", "Not-the-password-5"] {
        for (what, t) in [
            ("audit log", &audit),
            ("serve log", &log),
            ("answer", &said),
        ] {
            assert!(!t.contains(secret), "a password in the {what}");
        }
    }
}
