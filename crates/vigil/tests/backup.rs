//! `vigil backup` while the server records a GStreamer RTSP camera, and `vigil restore` into
//! a new data directory (docs/backup.md): users, cameras, the CA and the signing keys come
//! back, and the video recorded before the backup verifies there once it is copied over.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Vigil, bin};
use vigil_testkit::{Auth, Clip, RtspPeer};

const PASS: &str = "a passphrase for the test backup";

/// Runs vigil with the passphrase on standard input (never as an argument).
fn with_stdin(args: &[&str], config: Option<&Path>, stdin: &str) -> Output {
    let mut cmd = Command::new(bin());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn verify(config: &Path, camera: &str) -> (i32, serde_json::Value) {
    let out = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(["verify", camera, "--json"])
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}: {}", text(&out)));
    (out.status.code().unwrap(), report)
}

#[test]
fn a_backup_taken_while_recording_restores_an_installation_whose_video_verifies() {
    let peer = RtspPeer::start(
        &[("cam", Clip::h264(10, 30, 30, 640, 360, false))],
        Auth::None,
    );
    let v = Vigil::init(2);
    v.add_camera("door", &peer.url("cam"));
    v.ok(&["user", "add", "alice", "--role", "operator"]);
    let server = v.serve();
    v.wait_recorded("door", 4.0, Duration::from_secs(90));

    // While the server records (and holds the data directory lock).
    let file = v.dir.path().join("site.vbk");
    let out = with_stdin(
        &["backup", "-o", file.to_str().unwrap()],
        Some(&v.config),
        &format!("{PASS}\n"),
    );
    assert!(out.status.success(), "backup: {}", text(&out));
    assert!(text(&out).contains("no video"), "{}", text(&out));
    // The copy of every key is on record, as an export by whoever ran it.
    let log = v.ok(&["audit-log", "query", "--jsonl"]);
    let entry: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|e| e["kind"] == "export")
        .unwrap_or_else(|| panic!("no export entry in {log}"));
    assert_eq!(entry["detail"]["format"], "backup", "{entry}");
    assert_eq!(
        entry["detail"]["output"],
        file.display().to_string(),
        "{entry}"
    );
    let backup_bytes = std::fs::read(&file).unwrap();
    // Nothing of the keys is readable in the file.
    let ca_key = std::fs::read(v.data.join("pki/ca.key")).unwrap();
    assert!(
        !backup_bytes
            .windows(ca_key.len().min(32))
            .any(|w| w == &ca_key[..ca_key.len().min(32)])
    );

    v.wait_recorded("door", 8.0, Duration::from_secs(90));
    let out = server.stop();
    assert!(out.contains("Stopped cleanly"), "{out}");

    // Restore on "another machine": a new, empty data directory.
    let restored = v.dir.path().join("restored");
    let out = with_stdin(
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        None,
        &format!("{PASS}\n"),
    );
    assert!(out.status.success(), "restore: {}", text(&out));
    assert!(text(&out).contains("2 users, 1 cameras"), "{}", text(&out));
    let config = restored.join("vigil.toml");
    let run = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let users = run(&["user", "list"]);
    assert!(
        users.contains("admin") && users.contains("alice"),
        "{users}"
    );
    assert!(run(&["camera", "list"]).contains("door"));
    for key in ["pki/ca.crt", "pki/ca.key", "keys/signing/signing.key"] {
        assert_eq!(
            std::fs::read(v.data.join(key)).unwrap(),
            std::fs::read(restored.join(key)).unwrap(),
            "{key}"
        );
    }

    // The backup's ledger signs what was recorded up to the backup: with the video copied
    // over, that verifies, and what came after it is reported unsigned (exit 2), never as
    // tampering.
    copy_dir(&v.data.join("video"), &restored.join("video"));
    let (code, report) = verify(&config, "door");
    assert_eq!(code, 2, "{report}");
    assert_eq!(report["failure"]["kind"], "unsigned", "{report}");
    assert!(
        report["checked"]["fragments"].as_u64().unwrap() >= 2,
        "{report}"
    );
    // With the old directory's newer ledger too, the restored CA and keys verify everything.
    copy_dir(&v.data.join("ledger"), &restored.join("ledger"));
    let (code, report) = verify(&config, "door");
    assert_eq!(code, 0, "{report}");

    // Negative: wrong passphrase, a damaged file, a directory that is not empty.
    let other = v.dir.path().join("other");
    let restore_into = |file: &Path, dir: &Path, pass: &str| {
        with_stdin(
            &[
                "restore",
                file.to_str().unwrap(),
                "--data-dir",
                dir.to_str().unwrap(),
            ],
            None,
            &format!("{pass}\n"),
        )
    };
    let out = restore_into(&file, &other, "not the passphrase at all");
    assert!(!out.status.success());
    assert!(text(&out).contains("wrong passphrase"), "{}", text(&out));
    assert!(!other.exists());
    let mut damaged = backup_bytes.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 1;
    let damaged_file = v.dir.path().join("damaged.vbk");
    std::fs::write(&damaged_file, damaged).unwrap();
    let out = restore_into(&damaged_file, &other, PASS);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the backup file is damaged"),
        "{}",
        text(&out)
    );
    assert!(!other.exists());
    let out = restore_into(&file, &restored, PASS);
    assert!(!out.status.success());
    assert!(text(&out).contains("is not empty"), "{}", text(&out));
}
