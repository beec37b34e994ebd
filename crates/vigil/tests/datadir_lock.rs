//! One recording process per data directory: a second `serve` or `demo` on a directory in use
//! is refused with the holder's PID (two recorders would interleave their records in each
//! camera's evidence ledger), while readers and database-only commands keep working beside the
//! running server, and a `kill -9`ed server does not keep the directory locked. A SIGTERM that
//! arrives while the server is still starting stops it cleanly.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Vigil, bin};
use serde_json::Value;
use vigil_testkit::{Auth, Clip, RtspPeer, require_tool};

/// Runs a command that must end by itself; a refused start takes well under a second.
fn run_for(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > timeout {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {timeout:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

fn lock_file(v: &Vigil) -> String {
    std::fs::read_to_string(v.data.join("vigil.lock")).unwrap_or_default()
}

fn wait_for_holder(v: &Vigil, pid: u32) {
    let start = Instant::now();
    while !lock_file(v).contains(&format!("pid={pid}\n")) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server {pid} never took the data directory: {:?}",
            lock_file(v)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts a refusal that names the running server.
fn assert_refused(out: &Output, data: &Path, pid: u32, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} started: {err}");
    assert!(
        err.contains(&format!(
            "the data directory {} is in use by vigil process {pid} (serve, started ",
            data.display()
        )),
        "{what}: {err}"
    );
}

fn verify(v: &Vigil) -> (i32, Value) {
    let out = v.cmd(&["verify", "cam1", "--json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

#[test]
fn a_second_recorder_is_refused_while_readers_keep_working() {
    require_tool("ffprobe");
    let clip = Clip::h264(10, 30, 15, 640, 360, false);
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(2);
    v.add_camera("cam1", &peer.url("cam"));
    let server = v.serve();
    let pid = server.pid();
    v.wait_recorded("cam1", 3.0, Duration::from_secs(60));
    let held = lock_file(&v);
    assert!(
        held.contains(&format!("pid={pid}\n")) && held.contains("command=serve\n"),
        "{held}"
    );

    let second_serve = run_for(
        Command::new(bin())
            .arg("--config")
            .arg(&v.config)
            .arg("serve"),
        Duration::from_secs(30),
    );
    assert_refused(&second_serve, &v.data, pid, "a second serve");
    let demo = run_for(
        Command::new(bin())
            .args(["demo", "--duration", "20s", "--data-dir"])
            .arg(&v.data),
        Duration::from_secs(30),
    );
    assert_refused(&demo, &v.data, pid, "a demo");
    assert!(
        !String::from_utf8_lossy(&demo.stdout).contains("API:"),
        "the refused demo started its API"
    );

    // Deleting recordings would pull files from under the running recorder.
    let remove = v.cmd(&["camera", "remove", "cam1", "--delete-recordings"]);
    let err = String::from_utf8_lossy(&remove.stderr);
    assert!(!remove.status.success(), "{err}");
    assert!(
        err.contains(&format!("is in use by vigil process {pid} (serve"))
            && err.contains("without --delete-recordings"),
        "{err}"
    );
    assert!(v.ok(&["camera", "list"]).contains("cam1"));

    // Database-only commands work beside the server, which follows them.
    let dead = vigil_testkit::free_port();
    v.add_camera("cam2", &format!("rtsp://127.0.0.1:{dead}/none"));
    v.ok(&["camera", "disable", "cam2"]);
    v.ok(&["camera", "remove", "cam2"]);

    // Readers work beside the server.
    let rec = v.recordings("cam1");
    assert!(!rec["ranges"].as_array().unwrap().is_empty(), "{rec}");
    let mp4 = v.dir.path().join("live.mp4");
    v.export_all("cam1", &mp4);
    assert!(vigil_testkit::ffprobe_count(&mp4).unwrap().frames >= 30);
    let (code, report) = verify(&v);
    // Recording goes on, so the newest GOPs may not be signed yet; nothing else is wrong.
    assert!(
        code == 0 || (code == 2 && report["failure"]["kind"] == "unsigned"),
        "{report:#}"
    );

    server.stop();
    assert_eq!(lock_file(&v), "", "a clean stop leaves no holder behind");
    // Only one process wrote the ledger: no false "reordered".
    let (code, report) = verify(&v);
    assert_eq!(code, 0, "{report:#}");
    assert!(report["failure"].is_null(), "{report:#}");
}

/// Waits until the server has run its start-up recovery (it says "Recovery:").
fn wait_recovered(server: &common::Server) {
    let start = Instant::now();
    while !server.output().contains("Recovery:") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_restart_after_kill_9_takes_the_data_directory() {
    let v = Vigil::init(2);
    let server = v.serve();
    let first = server.pid();
    wait_for_holder(&v, first);
    server.kill9();
    // The kernel released the lock with the process; its details are left in the file.
    assert!(lock_file(&v).contains(&format!("pid={first}\n")));

    let server = v.serve();
    let second = server.pid();
    wait_for_holder(&v, second);
    wait_recovered(&server);
    let said = server.output();
    assert!(
        said.contains("did not shut down cleanly") && said.contains(&format!("process {first}")),
        "{said}"
    );
    server.stop();
}

#[test]
fn a_sigterm_while_the_server_starts_stops_it_cleanly() {
    let v = Vigil::init(2);
    // From the config being read to the listeners and recorders starting: each delay lands
    // somewhere in the start-up; every stop must be a clean exit (Server::stop asserts it).
    for delay in [150, 300, 600] {
        let server = v.serve();
        std::thread::sleep(Duration::from_millis(delay));
        server.stop();
    }
    // And the next start finds a clean shutdown behind it.
    let server = v.serve();
    wait_recovered(&server);
    let said = server.stop();
    assert!(!said.contains("did not shut down cleanly"), "{said}");
}
