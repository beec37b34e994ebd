//! Bad input from cameras and operators: each case is a clear message or camera status, never
//! a crash or a busy loop.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Vigil;

/// A minimal RTSP responder that answers OPTIONS and DESCRIBE with a canned SDP, so the
/// recorder meets a stream it must refuse. Serves a bounded number of connections.
fn canned_rtsp(sdp: &'static str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(false).unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(50) {
            let Ok(mut conn) = conn else { break };
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut method = String::new();
                if reader.read_line(&mut method).unwrap_or(0) == 0 {
                    break;
                }
                let mut cseq = String::from("1");
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("CSeq:") {
                        cseq = v.trim().to_owned();
                    }
                }
                let reply = if method.starts_with("OPTIONS") {
                    format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n")
                } else if method.starts_with("DESCRIBE") {
                    format!(
                        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Base: rtsp://127.0.0.1:{port}/x/\r\nContent-Length: {}\r\n\r\n{sdp}",
                        sdp.len()
                    )
                } else {
                    format!("RTSP/1.0 455 Method Not Valid in This State\r\nCSeq: {cseq}\r\n\r\n")
                };
                if conn.write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (port, served)
}

const AUDIO_ONLY: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=audio\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:track1\r\n";
const MJPEG: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=mjpeg\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=control:track1\r\n";

#[test]
fn audio_only_and_unsupported_codec_are_clear_statuses() {
    let (audio_port, audio_conns) = canned_rtsp(AUDIO_ONLY);
    let (mjpeg_port, _) = canned_rtsp(MJPEG);
    let v = Vigil::init(6);
    v.add_camera("audio", &format!("rtsp://127.0.0.1:{audio_port}/x"));
    v.add_camera("mjpeg", &format!("rtsp://127.0.0.1:{mjpeg_port}/x"));
    let server = v.serve();
    let a = v.wait_status(
        "audio",
        |s| s["last_error"].is_string(),
        Duration::from_secs(20),
    );
    assert!(
        a["last_error"]
            .as_str()
            .unwrap()
            .contains("no video stream"),
        "{a}"
    );
    assert!(
        a["last_error"].as_str().unwrap().contains("audio/pcmu"),
        "{a}"
    );
    let m = v.wait_status(
        "mjpeg",
        |s| s["last_error"].is_string(),
        Duration::from_secs(20),
    );
    assert!(
        m["last_error"]
            .as_str()
            .unwrap()
            .contains("unsupported video codec 'jpeg'"),
        "{m}"
    );
    // Back-off, not a busy loop: over 8 s a failing camera reconnects only a handful of times
    // (1 s, then the test config's 2 s cap).
    let before = audio_conns.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(8));
    let retries = audio_conns.load(Ordering::SeqCst) - before;
    assert!((2..=8).contains(&retries), "{retries} connections in 8 s");
    let out = server.stop();
    assert!(out.contains("Stopped cleanly"));
}

#[test]
fn camera_add_refuses_bad_urls_and_names_with_a_reason() {
    let v = Vigil::init(6);
    for (args, expect) in [
        (
            vec!["camera", "add", "c1", "--url", "http://10.0.0.1/video"],
            "scheme 'http' is not supported",
        ),
        (
            vec![
                "camera",
                "add",
                "c1",
                "--url",
                "rtsp://admin:secret@127.0.0.1/x",
            ],
            "credentials must not be part of the URL",
        ),
        (
            vec!["camera", "add", "c1", "--url", "not a url"],
            "is not a URL",
        ),
        (
            vec!["camera", "add", "bad name!", "--url", "rtsp://127.0.0.1/x"],
            "must be 1-64 characters",
        ),
        (
            vec!["camera", "add", "c1", "--url", "http://127.0.0.1/x"],
            "scheme 'http' is not supported",
        ),
    ] {
        let out = v.cmd(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("secret"), "password echoed back: {err}");
    }
    v.add_camera("c1", "rtsp://127.0.0.1:1/x");
    let out = v.cmd(&["camera", "add", "c1", "--url", "rtsp://127.0.0.1:2/y"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = v.cmd(&["recordings", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no camera named 'nope'"));
    let out = v.cmd(&[
        "export",
        "c1",
        "--from",
        "yesterday-ish",
        "--to",
        "now",
        "-o",
        "x.mp4",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    let out = v.cmd(&[
        "export",
        "c1",
        "--from",
        "-1m",
        "--to",
        "now",
        "-o",
        "/tmp/vigil-empty-export.mp4",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was recorded"));
}

#[test]
fn broken_config_files_are_refused_with_the_line() {
    let v = Vigil::init(6);
    let text = std::fs::read_to_string(&v.config).unwrap();
    std::fs::write(
        &v.config,
        text.replace("segment_seconds = 6", "segment_seconds = \"six\""),
    )
    .unwrap();
    let out = v.cmd(&["camera", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("segment_seconds") && err.contains("line"),
        "{err}"
    );
    let missing = v.dir.path().join("nope.toml");
    let out = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&missing)
        .args(["camera", "list"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("vigil init"),
        "{out:?}"
    );
}
