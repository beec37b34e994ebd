//! `vigil serve` with a recording camera: the metrics role's loopback listener answers a real
//! scrape whose figures follow the recording, and promtool accepts it (docs/metrics.md).

mod common;

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Vigil;
use vigil_testkit::{Auth, Clip, RtspPeer, require_tool};

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_owned()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn a_recording_server_serves_its_figures_on_loopback() {
    require_tool("promtool");
    let clip = Clip::h264(10, 30, 15, 640, 360, false);
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(2);
    v.add_camera("cam1", &peer.url("cam"));
    let text = std::fs::read_to_string(&v.config).unwrap();
    let addr = text
        .split("[metrics]")
        .nth(1)
        .and_then(|t| t.split("bind = \"").nth(1))
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    // A SIEM collector nobody listens on: forwarding runs, retries and spools.
    std::fs::write(
        &v.config,
        format!("{text}\n[[siem.collectors]]\nname = \"soc\"\ntarget = \"127.0.0.1:1\"\nca_file = \"pki/ca.crt\"\n"),
    )
    .unwrap();
    let _server = v.serve();
    v.wait_recorded("cam1", 3.0, Duration::from_secs(60));
    // The recorder refreshes its status every few seconds.
    let main = "{camera=\"cam1\",stream=\"main\"}";
    let mut text = scrape(&addr);
    for _ in 0..50 {
        if value(&text, &format!("vigil_stream_up{main}")) == 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        text = scrape(&addr);
    }
    assert_eq!(
        value(&text, &format!("vigil_stream_up{main}")),
        1.0,
        "{text}"
    );
    let fps = value(&text, &format!("vigil_stream_frames_per_second{main}"));
    assert!((10.0..=50.0).contains(&fps), "fps {fps}");
    let received = value(&text, &format!("vigil_stream_frames_received_total{main}"));
    let written = value(&text, &format!("vigil_stream_frames_written_total{main}"));
    assert!(
        written >= 60.0 && received >= written,
        "{received} {written}"
    );
    assert!(value(&text, &format!("vigil_stream_stored_bytes{main}")) > 0.0);
    // The ledger is signed every 10 s while video comes in: the signing lag stays below that
    // interval and the tick that signs (with slack for a loaded machine).
    let lag = value(
        &text,
        &format!("vigil_stream_ledger_unsigned_seconds{main}"),
    );
    assert!((0.0..25.0).contains(&lag), "signing lag {lag}");
    let soc = "{collector=\"soc\"}";
    assert_eq!(value(&text, &format!("vigil_siem_collector_up{soc}")), 0.0);
    let backlog = value(&text, &format!("vigil_siem_spool_backlog_events{soc}"));
    let age = value(
        &text,
        &format!("vigil_siem_spool_oldest_pending_age_seconds{soc}"),
    );
    assert!(
        backlog >= 0.0 && (backlog > 0.0) == (age > 0.0),
        "backlog {backlog}, age {age}"
    );
    assert!(value(&text, "vigil_siem_spool_bytes") >= 36.0, "{text}");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
