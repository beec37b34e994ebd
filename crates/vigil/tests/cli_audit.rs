//! Every command-line action that exports, verifies or changes something leaves its entry in
//! the installation's hash-chained audit log, naming the operating-system user the same way
//! an evidence bundle names its exporter (`cli:<login name>(uid N)`).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn vigil(config: &Path, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = vigil(config, args);
    assert!(
        out.status.success(),
        "vigil {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn audit_entries(config: &Path) -> Vec<Value> {
    ok(config, &["audit-log", "query", "--jsonl"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// This process's real uid, as the kernel says (`id -u`).
fn uid() -> String {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn each_command_family_leaves_its_entry_as_the_os_user() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let demo = Command::new(common::bin())
        .args(["demo", "--duration", "5s", "--data-dir"])
        .arg(&data)
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let config = data.join("vigil.toml");
    let before = audit_entries(&config).len();

    // Exports: an MP4 and a signed bundle.
    let mp4 = tmp.path().join("clip.mp4");
    ok(
        &config,
        &[
            "export",
            "sample",
            "--from",
            "-10m",
            "--to",
            "now",
            "-o",
            mp4.to_str().unwrap(),
        ],
    );
    let bundle = tmp.path().join("case");
    ok(
        &config,
        &[
            "export",
            "sample",
            "--from",
            "-10m",
            "--to",
            "now",
            "--bundle",
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    // Verifications: the camera's recordings and the bundle.
    let out = vigil(&config, &["verify", "sample"]);
    assert!(matches!(out.status.code(), Some(0 | 2)), "{out:?}");
    let fingerprint = ok(&config, &["pki", "ca-cert", "--fingerprint"]);
    let out = vigil(
        &config,
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--fingerprint",
            fingerprint.trim(),
        ],
    );
    assert!(matches!(out.status.code(), Some(0 | 2)), "{out:?}");
    // Cameras.
    ok(
        &config,
        &[
            "camera",
            "add",
            "lobby",
            "--url",
            "rtsp://192.0.2.7/stream1",
        ],
    );
    ok(&config, &["camera", "disable", "lobby"]);
    ok(&config, &["camera", "enable", "lobby"]);
    ok(&config, &["camera", "remove", "lobby"]);
    // Users and tokens.
    ok(&config, &["user", "add", "olga", "--role", "operator"]);
    let token = ok(&config, &["token", "create", "nvr", "--role", "viewer"]);
    let id = token
        .split_whitespace()
        .nth(1)
        .expect("token <id> created")
        .to_owned();
    ok(&config, &["token", "revoke", &id]);
    ok(&config, &["user", "remove", "olga"]);
    // PKI: a request for an external CA, and a device's request signed by the system CA.
    ok(
        &config,
        &[
            "pki",
            "csr",
            "--cn",
            "vigil.example.test",
            "-o",
            tmp.path().join("srv.csr").to_str().unwrap(),
        ],
    );
    let csr = tmp.path().join("cam.csr");
    let st = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=cam1.example.test", "-keyout"])
        .arg(tmp.path().join("cam.key"))
        .arg("-out")
        .arg(&csr)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    ok(
        &config,
        &[
            "pki",
            "sign-csr",
            csr.to_str().unwrap(),
            "-o",
            tmp.path().join("cam.crt").to_str().unwrap(),
        ],
    );

    let entries = audit_entries(&config);
    let new: Vec<&Value> = entries[before..].iter().collect();
    let summary: Vec<(String, String)> = new
        .iter()
        .map(|e| {
            let d = &e["detail"];
            let what = d["action"]
                .as_str()
                .or(d["operation"].as_str())
                .or(d["format"].as_str())
                .or(d["bundle"].as_str().map(|_| "bundle"))
                .or(d["camera"].as_str().map(|_| "camera"))
                .or(d["username"].as_str().map(|_| "user"))
                .unwrap_or("-")
                .to_owned();
            (e["kind"].as_str().unwrap().to_owned(), what)
        })
        .collect();
    let expect: Vec<(&str, &str)> = vec![
        ("export", "mp4"),
        ("export", "bundle"),
        ("verify", "camera"),
        ("verify", "bundle"),
        ("camera_changed", "added"),
        ("camera_changed", "changed"),
        ("camera_changed", "changed"),
        ("camera_changed", "removed"),
        ("user_created", "user"),
        ("token_created", "-"),
        ("token_revoked", "-"),
        ("user_removed", "user"),
        ("certificate_operation", "csr"),
        ("certificate_operation", "sign_csr"),
    ];
    let got: Vec<(&str, &str)> = summary
        .iter()
        .map(|(k, w)| (k.as_str(), w.as_str()))
        .collect();
    assert_eq!(got, expect, "{new:#?}");

    // One identity format: the OS user by uid, in the log and in the bundle.
    let uid = uid();
    let actor = new[0]["user"].as_str().unwrap().to_owned();
    assert!(
        actor.starts_with("cli:") && actor.contains(&format!("(uid {uid}")),
        "{actor}"
    );
    for e in &new {
        assert_eq!(e["user"], actor.as_str(), "{e}");
        assert_eq!(e["source"], "cli", "{e}");
    }
    let statement: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("export.json")).unwrap()).unwrap();
    assert_eq!(statement["exported_by"], actor.as_str(), "{statement}");
    assert_eq!(new[1]["detail"]["exported_by"], actor.as_str());
    assert_eq!(new[2]["detail"]["camera"], "sample");
    assert_eq!(new[13]["detail"]["subject"], "CN=cam1.example.test");

    // The chain still holds.
    let said = ok(&config, &["audit-log", "verify"]);
    assert!(said.starts_with("audit log intact: "), "{said}");
}
