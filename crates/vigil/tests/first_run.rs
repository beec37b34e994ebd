//! What a first-time user meets: the demo run twice into one directory, the log written to a
//! file (no colour codes, sentences instead of debug dumps, JSON on request), a server without
//! cameras, and the exact words of a few failing commands.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Vigil;

fn run(config: &Path, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("VIGIL_LOG")
        .env_remove("VIGIL_LOG_FORMAT")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn demo(data: &Path) -> Output {
    let out = Command::new(common::bin())
        .args(["demo", "--duration", "4s", "--data-dir"])
        .arg(data)
        .env_remove("VIGIL_LOG")
        .env_remove("VIGIL_LOG_FORMAT")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

#[test]
fn a_second_demo_run_records_into_the_same_camera_and_the_log_is_plain_sentences() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let config = data.join("vigil.toml");
    let first = demo(&data);
    let list = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let cams = list(&run(&config, &["camera", "list"]));
    let before: Vec<&str> = cams.lines().skip(1).collect();
    assert_eq!(before.len(), 1, "{cams}");
    let recorded = |config: &Path| -> f64 {
        let v: serde_json::Value =
            serde_json::from_slice(&run(config, &["recordings", "sample", "--json"]).stdout)
                .unwrap();
        v["ranges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seconds"].as_f64().unwrap())
            .sum()
    };
    let after_first = recorded(&config);
    assert!(after_first > 0.5, "{after_first}");
    let second = demo(&data);
    let cams2 = list(&run(&config, &["camera", "list"]));
    let after: Vec<&str> = cams2.lines().skip(1).collect();
    assert_eq!(after.len(), 1, "{cams2}");
    let id = |line: &str| line.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(
        id(before[0]),
        id(after[0]),
        "the sample camera keeps its id"
    );
    assert!(
        recorded(&config) > after_first + 0.5,
        "the earlier recordings stay listed beside the new ones"
    );

    // The log went to a pipe: no colour codes, no debug dumps, no RTSP library chatter.
    for out in [&first, &second] {
        let log = stderr(out);
        assert!(!log.contains('\x1b'), "colour codes in a piped log: {log}");
        assert!(!log.contains("RecoveryReport {"), "{log}");
        assert!(!log.contains("ignoring PLAY"), "{log}");
    }
    assert!(
        stderr(&second).contains("start-up recovery checked "),
        "{}",
        stderr(&second)
    );
}

#[test]
fn serve_without_cameras_says_so_in_json_when_asked() {
    let v = Vigil::init(2);
    let err = v.dir.path().join("serve.err");
    let mut child = Command::new(common::bin())
        .arg("--config")
        .arg(&v.config)
        .args(["--log-format", "json", "serve"])
        .env_remove("VIGIL_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    let start = Instant::now();
    let found = loop {
        let log = std::fs::read_to_string(&err).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("no camera is configured")) {
            break Some((log.clone(), line.to_owned()));
        }
        if start.elapsed() > Duration::from_secs(30) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    let (log, line) = found.expect("serve says that no camera is configured");
    for l in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "INFO");
    assert!(
        v["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("add one with `vigil camera add NAME --url rtsp://HOST/PATH`"),
        "{line}"
    );
}

#[test]
fn failing_commands_say_each_thing_once() {
    let v = Vigil::init(2);
    let out = run(
        &v.config,
        &[
            "export", "lobby", "--from", "-10m", "--to", "now", "-o", "x.mp4",
        ],
    );
    assert_eq!(
        stderr(&out),
        "error: no camera named 'lobby'; `vigil camera list` shows the configured cameras\n"
    );
    let missing = v.dir.path().join("absent.pem");
    let out = run(
        &v.config,
        &["pki", "import", "--cert", missing.to_str().unwrap()],
    );
    assert_eq!(
        stderr(&out),
        format!(
            "error: cannot read {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    let nowhere = v.dir.path().join("nowhere.toml");
    let out = run(&nowhere, &["camera", "list"]);
    assert_eq!(
        stderr(&out),
        format!(
            "error: cannot read config file {}: No such file or directory (os error 2). Create one with `vigil init --data-dir DIR`.\n",
            nowhere.display()
        )
    );
}

#[test]
fn the_ca_fingerprint_is_one_command_and_pki_status_ends_its_last_line() {
    let v = Vigil::init(2);
    let fp = run(&v.config, &["pki", "ca-cert", "--fingerprint"]);
    assert!(fp.status.success(), "{}", stderr(&fp));
    let fp = String::from_utf8(fp.stdout).unwrap();
    assert!(fp.ends_with('\n'));
    let fp = fp.trim();
    assert_eq!(fp.len(), 95, "{fp}");
    let status = String::from_utf8(run(&v.config, &["pki", "status"]).stdout).unwrap();
    assert!(status.ends_with('\n'), "{status:?}");
    let ca = status.split("CA certificate").nth(1).unwrap();
    let line = ca.lines().find(|l| l.contains("SHA-256:")).unwrap();
    assert_eq!(line.split_whitespace().nth(1), Some(fp), "{status}");
}
