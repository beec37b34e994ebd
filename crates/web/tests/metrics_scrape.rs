//! The metrics role's listener over real HTTP on loopback: what a scrape shows for a store
//! holding a camera, and that Prometheus' own checker (`promtool check metrics`, Debian's
//! `prometheus` package) accepts the exposition.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use axum::http::StatusCode;
use common::{ADMIN, Auth, Harness};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vigil_events::{Category, NewEvent, Severity};
use vigil_media::store::{CameraStatus, NewCamera, now_us};
use vigil_web::metrics::{MetricsListenError, MetricsListener};

/// One HTTP/1.1 request on a fresh connection: status line, headers and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap();
    (status.to_owned(), headers.to_lowercase(), body.to_owned())
}

/// The value of the sample line `series` (name and labels exactly as exposed).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap()
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, installed by scripts/test-all.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_scrape_over_loopback_shows_the_figures_and_passes_promtool() {
    let h = Harness::new();
    let store = &h.state.store;
    let cam = store
        .add_camera(&NewCamera {
            name: "lobby".into(),
            url: "rtsp://127.0.0.1:9/main".into(),
            ..Default::default()
        })
        .unwrap();
    store
        .put_status(
            &cam.id,
            &CameraStatus {
                state: "recording".into(),
                bitrate_bps: 2_000_000.0,
                fps: 25.0,
                last_frame_us: Some(1_790_000_000_500_000),
                updated_us: now_us(),
                ..Default::default()
            },
        )
        .unwrap();
    store
        .record_gap(&cam.id, 1_000_000, 2_000_000, "connection lost")
        .unwrap();
    let counters = vigil_media::counters::stream(&cam.id);
    for _ in 0..3 {
        counters.frame_received();
    }
    counters.frames_written(2);
    counters.reconnect();
    // Real failures: two wrong passwords at the API.
    for _ in 0..2 {
        let a = h
            .post(
                "/api/v1/session",
                &Auth::None,
                Some(serde_json::json!({"username": ADMIN, "password": "not the password"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    h.state
        .events
        .publish(NewEvent::vigil(
            "vigil-test",
            "test.metrics",
            Category::System,
            Severity::Info,
            "one event",
        ))
        .unwrap();
    h.state.events.flush();

    // A rule with a webhook: its sender shows on the page (nothing listens on the port; the
    // scrape only reads counters).
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), [7u8; 32]).unwrap();
    let rules = vigil_config::Config::parse(
        &format!(
            "data_dir = \"/unused\"\n[[rules]]\nname = \"door\"\nkinds = [\"external.door\"]\n\
             webhook = {{ url = \"https://127.0.0.1:9/hook\", secret_file = {:?} }}\n",
            secret.path()
        ),
        std::path::Path::new("vigil.toml"),
    )
    .unwrap()
    .rules;
    h.state.alarms.set_rules(&rules).unwrap();
    let listener = MetricsListener::start(h.state.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    assert!(addr.ip().is_loopback());
    let (status, headers, text) = http_get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{headers}"
    );
    assert_eq!(value(&text, "vigil_rules_events_dropped_total"), 0.0);
    assert_eq!(
        value(
            &text,
            "vigil_webhook_deliveries_total{webhook=\"rule:door\",result=\"sent\"}"
        ),
        0.0
    );
    assert_eq!(
        value(&text, "vigil_webhook_queued{webhook=\"rule:door\"}"),
        0.0
    );
    let main = "{camera=\"lobby\",stream=\"main\"}";
    assert_eq!(value(&text, &format!("vigil_stream_up{main}")), 1.0);
    assert_eq!(
        value(&text, &format!("vigil_stream_frames_per_second{main}")),
        25.0
    );
    assert_eq!(
        value(
            &text,
            &format!("vigil_stream_bitrate_bytes_per_second{main}")
        ),
        250_000.0
    );
    assert_eq!(
        value(
            &text,
            &format!("vigil_stream_last_frame_timestamp_seconds{main}")
        ),
        1_790_000_000.5
    );
    assert_eq!(
        value(&text, &format!("vigil_stream_stored_gaps{main}")),
        1.0
    );
    assert_eq!(
        value(&text, &format!("vigil_stream_stored_bytes{main}")),
        0.0
    );
    assert_eq!(
        value(&text, &format!("vigil_stream_frames_received_total{main}")),
        3.0
    );
    assert_eq!(
        value(&text, &format!("vigil_stream_frames_written_total{main}")),
        2.0
    );
    assert_eq!(
        value(&text, &format!("vigil_stream_reconnects_total{main}")),
        1.0
    );
    assert_eq!(
        value(
            &text,
            &format!("vigil_stream_retention_deleted_segments_total{main}")
        ),
        0.0
    );
    assert_eq!(value(&text, "vigil_login_failures_total"), 2.0);
    assert_eq!(value(&text, "vigil_blocked_addresses"), 0.0);
    assert_eq!(value(&text, "vigil_watched_addresses"), 1.0);
    assert!(value(&text, "vigil_events_published_total") >= 1.0);
    assert_eq!(value(&text, "vigil_events_dropped_total"), 0.0);
    // The generated CA and server certificate, a year or more ahead.
    let certs: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("vigil_certificate_expiry_seconds{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(!certs.is_empty(), "{text}");
    assert!(certs.iter().all(|s| *s > 300.0 * 86400.0), "{certs:?}");
    promtool_check(&text);

    // Nothing else is served there.
    let (status, _, _) = http_get(addr, "/api/v1/cameras").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    listener.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn the_listener_refuses_a_network_address() {
    let h = Harness::new();
    for bind in ["0.0.0.0:0", "[::]:0"] {
        match MetricsListener::start(h.state.clone(), bind.parse().unwrap()).await {
            Err(MetricsListenError::NotLoopback(a)) => assert_eq!(a.to_string(), bind),
            Err(e) => panic!("{bind}: {e}"),
            Ok(_) => panic!("{bind} was accepted"),
        }
    }
}

#[test]
fn promtool_rejects_what_the_encoder_never_writes() {
    // The checker is strict enough to matter: a counter without _total fails it.
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# HELP vigil_frames x\n# TYPE vigil_frames counter\nvigil_frames 1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("_total"), "{said}");
}
