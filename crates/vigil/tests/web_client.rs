//! The web client as people use it, in Debian's Chromium (driven by
//! `tests/browser/webclient.mjs` through playwright-core) against the real `vigil serve` recording
//! GStreamer RTSP cameras: sign-in (wrong password, TOTP), roles, hostile names shown as text,
//! administration pages (a camera's secondary stream added, edited and removed from the page;
//! camera passwords rotated and a certificate installed on an ONVIF camera from the page, against
//! vigil_testkit::RotationCameras; an ONVIF camera found by WS-Discovery and added from the page,
//! refused over plain HTTP and added at its HTTPS address, against vigil_testkit::onvif),
//! layouts saved on the server, keyboard use of the grid, timeline and dialogs with a label on
//! every control, the phone layout and the idle sign-out, with zero Content-Security-Policy
//! violations, page errors or JavaScript dialogs.
//!
//! `VIGIL_SCREENSHOTS=DIR` keeps the screenshots (docs/screenshots/ holds the published ones).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::Vigil;
use rustls::pki_types::PrivateKeyDer;
use serde_json::{Value, json};
use vigil_pki::{LeafKeyType, LeafRequest, LeafUsage, Pki};
use vigil_testkit::onvif::{OnvifDevice, OnvifPeer};
use vigil_testkit::{
    Auth, Clip, RotationCameraSpec, RotationCameras, RtspPeer, repo_root, require_tool,
};

fn runner_dir() -> PathBuf {
    repo_root().join("tests").join("browser")
}

/// Fails (never skips) when a piece of the browser setup is missing, with the fix.
fn require_browser() {
    require_tool("chromium");
    require_tool("node");
    let module = runner_dir().join("node_modules").join("playwright-core");
    assert!(
        module.is_dir(),
        "{} is missing: run: cd tests/browser && npm ci",
        module.display()
    );
}

/// Adds a user with a known password (given in a file, never as an argument).
fn add_user(v: &Vigil, name: &str, role: &str, cameras: &[&str]) -> Value {
    let password = format!("Pa55word-for-tests-{}", name.len() * 7919);
    let file = v.dir.path().join(format!("{name}.pw"));
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let mut args = vec!["user", "add", name, "--role", role];
    for c in cameras {
        args.extend(["--camera", c]);
    }
    args.extend(["--password-file", file.to_str().unwrap()]);
    v.ok(&args);
    json!({ "name": name, "password": password })
}

fn api_url(v: &Vigil) -> String {
    let text = std::fs::read_to_string(&v.config).unwrap();
    let bind = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("bind = \"127.0.0.1:"))
        .expect("the test config binds the API on loopback");
    format!("https://127.0.0.1:{}/", bind.trim_end_matches('"'))
}

#[test]
fn web_client_in_chromium() {
    require_browser();
    let clip = Clip::h264(10, 15, 15, 640, 360, false);
    // "c2" is the secondary (lower resolution) stream of the camera on "c".
    let small = Clip::h264(10, 15, 15, 320, 180, false);
    let peer = RtspPeer::start(
        &[
            ("a", clip.path()),
            ("b", clip.path()),
            ("c", clip.path()),
            ("c2", small.path()),
        ],
        Auth::None,
    );
    // A camera of its own, which the live scenario stops (SIGSTOP) and resumes.
    let restarting = RtspPeer::start(&[("d", clip.path())], Auth::None);
    let hevc = Clip::h265(10, 15, 15, 640, 360, false);
    let hevc_peer = RtspPeer::start(&[("e", hevc.path())], Auth::None);
    let v = Vigil::init(10);
    v.set_config(
        "session_idle_timeout = \"15m\"",
        "session_idle_timeout = \"1m\"",
    );
    v.add_camera("lobby", &peer.url("a"));
    v.add_camera("gate", &peer.url("b"));
    v.add_camera("dock", &peer.url("c"));
    // Recorded, so the playback scenario can play it too (live view uses it either way).
    v.ok(&[
        "camera",
        "set-secondary",
        "dock",
        "--url",
        &peer.url("c2"),
        "--mode",
        "recorded",
    ]);
    v.add_camera("yard", &restarting.url("d"));
    v.add_camera("stairs", &hevc_peer.url("e"));
    // Two ONVIF cameras for the camera security scenario: one with Advanced Security whose
    // password rotates, one that refuses SetUser and keeps its password.
    let small_clip = small.path().to_owned();
    let mut porch = RotationCameraSpec::new("porch", "porch-user", "Porch-initial-1");
    porch.advanced_security = true;
    let mut shed = RotationCameraSpec::new("shed", "shed-user", "Shed-initial-2");
    shed.setuser_fails = true;
    let onvif_cams = RotationCameras::start(&small_clip, &[porch.clone(), shed.clone()]);
    v.add_rotation_cameras(&onvif_cams, &[&porch, &shed]);
    // An ONVIF camera (oxvif's mock device) to find by WS-Discovery and add from the page: it
    // announces its plain HTTP address and also serves HTTPS with a certificate from the
    // installation CA.
    let discover_password = "Attic-onvif-Secret-5";
    // At an address of its own (the other test cameras all stream from 127.0.0.1, which
    // discovery rightly reports as added), as each camera of a site has one.
    let mut discoverable = OnvifPeer::start_at(
        &[OnvifDevice::new("SN-WEB-ATTIC", discover_password)],
        &[std::net::Ipv4Addr::new(127, 0, 0, 7)],
        0,
    )
    .expect("the ONVIF device to discover");
    let leaf = Pki::open(&v.data.join("pki"))
        .unwrap()
        .issue_leaf(&LeafRequest {
            common_name: "attic".into(),
            sans: vec!["127.0.0.1".into()],
            validity_days: 30,
            usage: LeafUsage::TlsServer,
            key_type: LeafKeyType::EcdsaP256,
        })
        .unwrap();
    let attic_https = discoverable.serve_https(
        0,
        vec![leaf.cert_der.clone()],
        PrivateKeyDer::Pkcs8(leaf.key_der.clone_key()),
    );
    let users = json!({
        "admin": add_user(&v, "boss", "admin", &[]),
        "viewer": add_user(&v, "watcher", "viewer", &["lobby"]),
        "auditor": add_user(&v, "inspector", "auditor", &[]),
        "totp": add_user(&v, "second.factor", "operator", &[]),
    });
    let server = v.serve();
    // Playback scenarios need half a minute of video; the others run meanwhile.
    v.wait_recorded("lobby", 3.0, Duration::from_secs(90));
    v.wait_recorded("gate", 3.0, Duration::from_secs(90));
    let start_us = v.recordings("lobby")["ranges"][0]["start_us"]
        .as_i64()
        .unwrap();
    let second = |us: i64| (us / 1_000_000 + 1) * 1_000_000;
    let work = v.dir.path().join("browser");
    std::fs::create_dir_all(&work).unwrap();
    // The oldest segment of "lobby": its middle byte is flipped by the evidence scenario, after
    // the bundle (of later video) was exported.
    let lobby_id = v
        .ok(&["camera", "list"])
        .lines()
        .find(|l| l.starts_with("lobby "))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap();
    let first_segment = v
        .segment_files()
        .into_iter()
        .find(|p| p.parent().unwrap().ends_with(&lobby_id))
        .unwrap();

    let screenshots = std::env::var_os("VIGIL_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| v.dir.path().join("screenshots"));
    // `VIGIL_WEB_SCENARIOS=scrub,sync` runs a few while working on them; the suite runs all.
    let scenarios: Vec<String> = match std::env::var("VIGIL_WEB_SCENARIOS") {
        Ok(list) => list.split(',').map(str::to_owned).collect(),
        Err(_) => [
            "login",
            "live",
            "h265",
            "roles",
            "hostile",
            "admin",
            "cameras_secure",
            "discover",
            "keyboard",
            "phone",
            "totp",
            "idle",
            "scrub",
            "sync",
            "marks",
            "evidence",
            "events",
            "lockout",
        ]
        .map(str::to_owned)
        .to_vec(),
    };
    let config = json!({
        "url": api_url(&v),
        "users": users,
        "live": {
            "grid": ["lobby", "gate", "dock", "yard"],
            "restart_camera": "yard",
            "restart_pid": restarting.pid().unwrap(),
            "h265_camera": "stairs",
            "secondary": {
                "camera": "dock",
                "grid_width": small.width(),
                "full_width": clip.width(),
            },
        },
        "admin": {
            // The administration scenario gives this camera a secondary stream from the page,
            // edits it (keeping its password) and removes it.
            "secondary_camera": "gate",
            "secondary_url": peer.url("c2"),
            // Rotated and given a certificate from the page; the other keeps its password.
            "rotating_camera": "porch",
            "refusing_camera": "shed",
            // Found by a unicast probe, added from the page, then removed again.
            "discover": {
                "subnet": "127.0.0.7/32",
                "address": "127.0.0.7",
                "port": discoverable.discovery_port(),
                // What its discovery answer says (it tells its serial only after a login).
                "model": "VigilTest-SN-WEB-ATTIC",
                "serial": "SN-WEB-ATTIC",
                "name": "attic",
                "username": "admin",
                "password": discover_password,
                "https_address": format!("https://127.0.0.1:{attic_https}"),
            },
        },
        "viewer_cameras": ["lobby"],
        "idle_secs": 60,
        "screenshots": screenshots,
        "work": work,
        "playback": {
            "camera": "lobby",
            "fps": clip.fps(),
            "sync_cameras": ["lobby", "gate"],
            "scrub_at_us": second(start_us + 12_000_000),
            "sync_from_us": second(start_us + 2_000_000),
            "export_from_us": second(start_us + 22_000_000),
            "export_to_us": second(start_us + 26_000_000),
        },
        "tamper": {
            "file": first_segment,
            "offset": std::fs::metadata(&first_segment).unwrap().len() / 2,
            "from_us": second(start_us),
            "to_us": second(start_us + 40_000_000),
        },
        "scenarios": scenarios,
    });
    let config_file = v.dir.path().join("webclient.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let out = Command::new("node")
        .current_dir(runner_dir())
        .arg("webclient.mjs")
        .arg(&config_file)
        .output()
        .expect("cannot run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| {
            panic!("webclient.mjs printed no JSON report ({e}); stdout: {stdout}\nstderr: {stderr}")
        });
    let failed: Vec<&Value> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] != true)
        .collect();
    eprintln!("web client scenarios: {report}");
    assert!(
        out.status.success() && failed.is_empty(),
        "web client scenarios failed: {failed:#?}\nstderr: {stderr}\nserver log: {}",
        server.output()
    );
    // What the camera security scenario did, as the cameras see it.
    if scenarios.iter().any(|s| s == "cameras_secure") {
        assert_ne!(onvif_cams.password("porch"), porch.password, "rotated");
        assert_eq!(onvif_cams.password("shed"), shed.password, "kept");
        assert_ne!(
            onvif_cams.served_certificate("porch"),
            onvif_cams.fingerprint(),
            "the installed certificate is served"
        );
        assert_eq!(
            onvif_cams.served_certificate("shed"),
            onvif_cams.fingerprint()
        );
    }
    // The bundle exported from the page verifies offline against the installation's CA.
    let Some(evidence) = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "evidence")
    else {
        return;
    };
    let bundle = PathBuf::from(evidence["bundle"].as_str().unwrap());
    let dir = work.join("bundle");
    std::fs::create_dir_all(&dir).unwrap();
    let tar = Command::new("tar")
        .arg("-xf")
        .arg(&bundle)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(tar.success());
    let unpacked = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("manifest.json").is_file())
        .unwrap_or(dir.clone());
    let fingerprint = v
        .ok(&["pki", "status"])
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("SHA-256:")
                .map(|f| f.trim().to_owned())
        })
        .unwrap_or_default();
    let out = v.cmd(&[
        "verify",
        unpacked.to_str().unwrap(),
        "--fingerprint",
        &fingerprint,
    ]);
    assert!(
        out.status.success(),
        "the bundle exported from the page does not verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
}
