//! A camera's secondary stream from the command line: `camera add --secondary-…`, `camera
//! set-secondary` (replace, `--remove`), shown by `camera list` and `camera status` (text and
//! JSON) without ever printing a password; and `vigil serve` recording one from a real
//! GStreamer RTSP server into segments of its own while the main stream records as before.

mod common;

use std::time::Duration;

use common::Vigil;
use serde_json::Value;
use vigil_testkit::{Auth, Clip, RtspPeer};

const MAIN_PASSWORD: &str = "main-Secret-17";
const SUB_PASSWORD: &str = "sub-Secret-42";

fn list(v: &Vigil) -> Value {
    serde_json::from_str(&v.ok(&["camera", "list", "--json"])).unwrap()
}

#[test]
fn a_secondary_stream_is_added_shown_replaced_and_removed_without_printing_its_password() {
    let v = Vigil::init(6);
    let main_pw = v.dir.path().join("main.pw");
    let sub_pw = v.dir.path().join("sub.pw");
    std::fs::write(&main_pw, format!("{MAIN_PASSWORD}\n")).unwrap();
    std::fs::write(&sub_pw, format!("{SUB_PASSWORD}\n")).unwrap();
    let mut printed = String::new();
    let mut run = |args: &[&str]| -> std::process::Output {
        let out = v.cmd(args);
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        printed.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    };
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let err = |out: &std::process::Output| {
        assert!(!out.status.success(), "accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let out = ok(&run(&[
        "camera",
        "add",
        "lobby",
        "--url",
        "rtsp://10.0.0.5/main",
        "--username",
        "rec",
        "--password-file",
        main_pw.to_str().unwrap(),
        "--secondary-url",
        "rtsp://10.0.0.5/sub",
        "--secondary-username",
        "viewer",
        "--secondary-password-file",
        sub_pw.to_str().unwrap(),
        "--secondary-mode",
        "recorded",
    ]));
    assert!(
        out.contains(
            "secondary stream, recorded: rtsp://10.0.0.5/sub (user viewer, password stored)"
        ),
        "{out}"
    );
    let out = ok(&run(&["camera", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].starts_with("lobby "), "{out}");
    assert_eq!(
        lines[2].trim(),
        "secondary stream, recorded: rtsp://10.0.0.5/sub (user viewer, password stored)"
    );
    let cams = list(&v);
    let sec = &cams[0]["secondary"];
    let id = cams[0]["id"].as_str().unwrap();
    assert_eq!(sec["id"], format!("{id}~sub"));
    assert_eq!(sec["url"], "rtsp://10.0.0.5/sub");
    assert_eq!(sec["username"], "viewer");
    assert_eq!(sec["has_password"], true);
    assert_eq!(sec["mode"], "recorded");
    // Status: a row of its own under the camera, in JSON an object beside the camera's.
    let out = ok(&run(&["camera", "status"]));
    assert!(
        out.lines()
            .any(|l| l.starts_with("  secondary") && l.contains("not running")),
        "{out}"
    );
    let status: Value = serde_json::from_str(&ok(&run(&["camera", "status", "--json"]))).unwrap();
    assert_eq!(status[0]["name"], "lobby");
    assert_eq!(status[0]["secondary"]["state"], "not running");
    assert_eq!(status[0]["secondary"]["mode"], "recorded");
    ok(&run(&["camera", "disable", "lobby"]));
    let status: Value = serde_json::from_str(&ok(&run(&["camera", "status", "--json"]))).unwrap();
    assert_eq!(status[0]["secondary"]["state"], "disabled");

    // Replaced as a whole: live only (the default), no credentials.
    let out = ok(&run(&[
        "camera",
        "set-secondary",
        "lobby",
        "--url",
        "rtsp://10.0.0.5/sub2",
    ]));
    assert_eq!(
        out.trim(),
        "Camera lobby: secondary stream, live view only: rtsp://10.0.0.5/sub2"
    );
    let sec = &list(&v)[0]["secondary"];
    assert_eq!(
        (
            &sec["url"],
            &sec["username"],
            &sec["has_password"],
            &sec["mode"]
        ),
        (
            &Value::from("rtsp://10.0.0.5/sub2"),
            &Value::Null,
            &Value::from(false),
            &Value::from("live")
        )
    );

    // Refusals, each with what to do; the flags named are the command's own.
    let e = err(&run(&[
        "camera",
        "set-secondary",
        "lobby",
        "--url",
        "rtsp://viewer:pw@10.0.0.5/sub",
    ]));
    assert!(
        e.contains("secondary stream: credentials must not be part of the URL")
            && e.contains("use --username and --password-file"),
        "{e}"
    );
    let e = err(&run(&[
        "camera",
        "add",
        "gate",
        "--url",
        "rtsp://10.0.0.6/main",
        "--secondary-url",
        "rtsp://viewer:pw@10.0.0.6/sub",
    ]));
    assert!(
        e.contains("use --secondary-username and --secondary-password-file"),
        "{e}"
    );
    let e = err(&run(&[
        "camera",
        "add",
        "gate",
        "--url",
        "rtsp://10.0.0.6/main",
        "--secondary-username",
        "viewer",
    ]));
    assert!(e.contains("--secondary-url"), "{e}");
    let e = err(&run(&[
        "camera",
        "set-secondary",
        "lobby",
        "--url",
        "rtsp://10.0.0.5/sub",
        "--mode",
        "sometimes",
    ]));
    assert!(e.contains("use live (live view only) or recorded"), "{e}");
    let e = err(&run(&[
        "camera",
        "set-secondary",
        "lobby",
        "--url",
        "rtsp://10.0.0.5/sub",
        "--remove",
    ]));
    assert!(e.contains("cannot be used with"), "{e}");
    let e = err(&run(&["camera", "set-secondary", "lobby"]));
    assert!(e.contains("--url"), "{e}");
    let e = err(&run(&[
        "camera",
        "set-secondary",
        "nope",
        "--url",
        "rtsp://10.0.0.5/sub",
    ]));
    assert!(e.contains("no camera named 'nope'"), "{e}");
    assert_eq!(list(&v).as_array().unwrap().len(), 1, "gate was not added");

    // Removed: the camera stays, without one.
    let out = ok(&run(&["camera", "set-secondary", "lobby", "--remove"]));
    assert!(out.contains("secondary stream removed"), "{out}");
    assert!(list(&v)[0]["secondary"].is_null());
    assert_eq!(list(&v)[0]["url"], "rtsp://10.0.0.5/main");
    let status: Value = serde_json::from_str(&ok(&run(&["camera", "status", "--json"]))).unwrap();
    assert!(status[0]["secondary"].is_null(), "{status}");
    let out = ok(&run(&["camera", "list"]));
    assert!(!out.contains("secondary"), "{out}");

    assert!(!printed.contains(MAIN_PASSWORD), "{printed}");
    assert!(!printed.contains(SUB_PASSWORD), "{printed}");
}

#[test]
fn serve_records_a_recorded_secondary_stream_into_segments_of_its_own() {
    let main = Clip::h264(10, 15, 15, 640, 360, false);
    let small = Clip::h264(10, 15, 15, 320, 180, false);
    let peer = RtspPeer::start(&[("main", main.path()), ("sub", small.path())], Auth::None);
    let v = Vigil::init(4);
    v.ok(&[
        "camera",
        "add",
        "lobby",
        "--url",
        &peer.url("main"),
        "--secondary-url",
        &peer.url("sub"),
        "--secondary-mode",
        "recorded",
    ]);
    let server = v.serve();
    v.wait_recorded("lobby", 3.0, Duration::from_secs(90));
    let s = v.wait_status(
        "lobby",
        |s| s["secondary"]["state"] == "recording" && s["secondary"]["resolution"] == "320x180",
        Duration::from_secs(30),
    );
    assert_eq!(s["resolution"], "640x360", "{s}");
    let id = list(&v)[0]["id"].as_str().unwrap().to_owned();
    let sub_dir = v.data.join("video").join(format!("{id}~sub"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&sub_dir).map_or(0, |d| d.count()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no segment of the secondary stream in {}",
            sub_dir.display()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Switched to live only: it stops writing, the main stream goes on.
    v.ok(&[
        "camera",
        "set-secondary",
        "lobby",
        "--url",
        &peer.url("sub"),
    ]);
    v.wait_status(
        "lobby",
        |s| s["secondary"]["state"] == "live",
        Duration::from_secs(30),
    );
    let out = server.stop();
    assert!(out.contains("Stopped cleanly"), "{out}");
    assert!(
        out.contains("Live view of camera lobby (secondary) from"),
        "{out}"
    );
    assert!(
        v.data
            .join("ledger")
            .join(format!("{id}~sub.ledger"))
            .is_file()
    );
    // The main stream verifies as before.
    let verified = v.ok(&["verify", "lobby"]);
    assert!(verified.contains("verified"), "{verified}");
    // The recorded secondary, addressed by its camera's name: listed, exported (an MP4 of
    // its own resolution, and a bundle that verifies offline) and verified.
    let listed: serde_json::Value =
        serde_json::from_str(&v.ok(&["recordings", "lobby", "--secondary", "--json"])).unwrap();
    assert_eq!(listed["camera"], "lobby (secondary)", "{listed}");
    let span = &listed["ranges"][0];
    let (from, to) = (
        span["start_us"].as_i64().unwrap() / 1_000_000 + 1,
        span["end_us"].as_i64().unwrap() / 1_000_000,
    );
    assert!(to > from, "{listed}");
    let clip = v.data.join("sub.mp4");
    let (from, to) = (from.to_string(), to.to_string());
    let range = ["--from", from.as_str(), "--to", to.as_str()];
    let out = v.ok(&[
        &[
            "export",
            "lobby",
            "--secondary",
            "-o",
            clip.to_str().unwrap(),
        ][..],
        &range[..],
    ]
    .concat());
    assert!(out.contains("wrote"), "{out}");
    let probe = vigil_testkit::ffprobe_count(&clip).unwrap();
    assert_eq!((probe.width, probe.height), (320, 180), "{probe:?}");
    let bundle = v.data.join("sub-bundle");
    let b = format!("{}/", bundle.display());
    v.ok(&[
        &["export", "lobby", "--secondary", "-o", b.as_str()][..],
        &range[..],
    ]
    .concat());
    let manifest = std::fs::read_to_string(bundle.join("manifest.json")).unwrap();
    assert!(manifest.contains(&format!("{id}~sub")), "{manifest}");
    let verified = v.ok(&["verify", "lobby", "--secondary"]);
    assert!(
        verified.contains("camera lobby (secondary): verified"),
        "{verified}"
    );
    // A camera without one says so and what to do.
    v.ok(&["camera", "add", "gate", "--url", &peer.url("main")]);
    let out = v.cmd(&["verify", "gate", "--secondary"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("camera 'gate' has no secondary stream") && e.contains("leave out --secondary"),
        "{e}"
    );
}
