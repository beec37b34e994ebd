//! Webhook sink against real peers on loopback: a Python `http.server` behind `ssl` with
//! certificates made by the `openssl` CLI, a plain HTTP variant, a closed port and a port
//! that accepts but never answers.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use super::*;
use crate::webhook::{Tuning, alert_payload, signature_header_value};
use vigil_testkit::external_ca::{ExternalCa, Key, Validity};

const SECRET: &str = "0123456789abcdef-test-secret";
/// Every wait in these tests ends by this deadline.
const WAIT: Duration = Duration::from_secs(20);

/// A CA and a server certificate for 127.0.0.1 / localhost signed by it.
struct Pki {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let ca = ExternalCa::root(&dir.join(name), &format!("{name} test CA"), Key::P256);
    let server = ca.leaf(
        "localhost",
        Key::P256,
        "IP:127.0.0.1,DNS:localhost",
        Validity::Days(2),
    );
    Pki {
        ca_pem: ca.root_pem(),
        cert: server.cert,
        key: server.key,
    }
}

/// Prints its port, then one JSON line per POST: path, headers, body, the TLS version and the
/// HMAC it expects (computed by Python's `hmac`, independently of the sink).
const RECEIVER_PY: &str = r#"
import http.server, ssl, sys, json, os, hmac, hashlib
cert, key, status = sys.argv[1], sys.argv[2], int(sys.argv[3])
secret = os.environ.get("HOOK_SECRET", "").encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        rec = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode(),
            "tls": self.connection.version() if hasattr(self.connection, "version") else None,
            "expected_sig": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
        }
        print(json.dumps(rec), flush=True)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
if cert != "-":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

struct Receiver {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl Receiver {
    /// `tls`: serve HTTPS with this certificate, else plain HTTP. Answers every POST `status`.
    fn start(tls: Option<&Pki>, status: u16) -> Self {
        let (cert, key) = match tls {
            Some(p) => (
                p.cert.to_str().unwrap().to_owned(),
                p.key.to_str().unwrap().to_owned(),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let mut child = Command::new("python3")
            .args(["-c", RECEIVER_PY, &cert, &key, &status.to_string()])
            .env("HOOK_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let port = lines
            .recv_timeout(WAIT)
            .expect("receiver printed its port")
            .trim()
            .parse()
            .unwrap();
        Receiver { child, port, lines }
    }

    fn next(&self, within: Duration) -> Option<serde_json::Value> {
        self.lines
            .recv_timeout(within)
            .ok()
            .map(|l| serde_json::from_str(&l).unwrap())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alert(addr: &str) -> Alert {
    Alert {
        addr: ip(addr),
        failures: 10,
        first: T0,
        last: T0.plus(Duration::from_millis(192_412)),
        usernames: vec!["admin".into(), "root".into()],
        blocked: true,
        blocked_until: None,
        allow_listed: false,
    }
}

fn https_config(port: u16, pki: &Pki) -> WebhookConfig {
    WebhookConfig {
        ca_pem: Some(pki.ca_pem.clone()),
        secret: Some(SECRET.into()),
        timeout: Duration::from_secs(5),
        server_name: Some("vigil-hq".into()),
        ..WebhookConfig::new(format!("https://127.0.0.1:{port}/hooks/vigil?site=3"))
    }
}

fn fast_retries() -> Tuning {
    Tuning {
        backoff: vec![Duration::from_millis(20); 3],
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A port with nothing listening on it.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with a subscriber that records every log line (of this thread and of threads
/// started inside, such as the webhook worker); returns the text.
fn capture_logs(f: impl FnOnce()) -> String {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(logs.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn alert_reaches_a_real_https_receiver_signed_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "trusted");
    let rx = Receiver::start(Some(&pki), 200);
    let sink = WebhookSink::start(https_config(rx.port, &pki)).unwrap();
    sink.send(&alert("192.0.2.7"));

    let req = rx.next(WAIT).expect("the receiver got the alert");
    assert_eq!(req["path"], "/hooks/vigil?site=3");
    let h = &req["headers"];
    assert_eq!(h["content-type"], "application/json");
    let tls = req["tls"].as_str().unwrap();
    assert!(tls == "TLSv1.3" || tls == "TLSv1.2", "{tls}");

    // The signature verifies both with Python's hmac and with aws-lc-rs over the exact body.
    let body = req["body"].as_str().unwrap();
    let sig = h["x-vigil-signature"].as_str().unwrap();
    assert_eq!(sig, req["expected_sig"].as_str().unwrap());
    let tag = hex::decode(sig.strip_prefix("sha256=").unwrap()).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET.as_bytes());
    aws_lc_rs::hmac::verify(&key, body.as_bytes(), &tag).unwrap();
    assert!(aws_lc_rs::hmac::verify(&key, format!("{body} ").as_bytes(), &tag).is_err());

    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["type"], "vigil.intrusion_alert");
    assert_eq!(v["version"], 1);
    assert_eq!(v["address"], "192.0.2.7");
    assert_eq!(v["failures"], 10);
    assert_eq!(v["first"], "2023-11-14T22:13:20.000Z");
    assert_eq!(v["last"], "2023-11-14T22:16:32.412Z");
    assert_eq!(v["usernames"], serde_json::json!(["admin", "root"]));
    assert_eq!(v["blocked"], true);
    assert_eq!(v["blocked_until"], serde_json::Value::Null);
    assert_eq!(v["allow_listed"], false);
    assert_eq!(v["server"], "vigil-hq");
    assert_eq!(v, alert_payload(&alert("192.0.2.7"), Some("vigil-hq")));

    wait_until("sent counter", || sink.stats().sent == 1);
    assert_eq!(
        sink.stats(),
        WebhookStats {
            sent: 1,
            failed: 0,
            dropped: 0,
            attempts: 1
        }
    );
}

#[test]
fn without_a_secret_no_signature_header_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "trusted");
    let rx = Receiver::start(Some(&pki), 204);
    let sink = WebhookSink::start(WebhookConfig {
        secret: None,
        server_name: None,
        ..https_config(rx.port, &pki)
    })
    .unwrap();
    sink.send(&alert("2001:db8::7"));
    let req = rx.next(WAIT).unwrap();
    assert!(req["headers"].get("x-vigil-signature").is_none());
    let v: serde_json::Value = serde_json::from_str(req["body"].as_str().unwrap()).unwrap();
    assert_eq!(v["address"], "2001:db8::7");
    assert_eq!(v["server"], serde_json::Value::Null);
    wait_until("sent counter", || sink.stats().sent == 1);
}

#[test]
fn signature_is_the_hmac_sha256_of_the_body() {
    // RFC 4231 test case 2.
    assert_eq!(
        signature_header_value(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn certificate_from_an_untrusted_ca_fails_once_without_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = make_pki(dir.path(), "trusted");
    let rogue = make_pki(dir.path(), "rogue");
    let rx = Receiver::start(Some(&rogue), 200);
    let mut stats = WebhookStats::default();
    let log = capture_logs(|| {
        let sink =
            WebhookSink::start_tuned(https_config(rx.port, &trusted), fast_retries()).unwrap();
        sink.send(&alert("192.0.2.8"));
        wait_until("failed counter", || sink.stats().failed == 1);
        stats = sink.stats();
    });
    // A certificate error is not transient: one attempt, no retries.
    assert_eq!(
        stats,
        WebhookStats {
            sent: 0,
            failed: 1,
            dropped: 0,
            attempts: 1
        }
    );
    assert!(rx.next(Duration::from_millis(200)).is_none());
    // The operator learns why.
    assert!(
        log.contains("TLS") && log.contains("UnknownIssuer"),
        "{log}"
    );
}

#[test]
fn plain_http_is_refused_unless_allowed_and_then_works() {
    let e = WebhookConfig::new("http://127.0.0.1:9/hook")
        .validate()
        .unwrap_err();
    assert!(matches!(e, WebhookError::PlaintextHttp { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("use https://") && msg.contains("allow_plaintext_http"),
        "{msg}"
    );
    assert!(WebhookSink::start(WebhookConfig::new("http://127.0.0.1:9/hook")).is_err());

    let rx = Receiver::start(None, 200);
    let sink = WebhookSink::start(WebhookConfig {
        allow_plaintext_http: true,
        secret: Some(SECRET.into()),
        ..WebhookConfig::new(format!("http://127.0.0.1:{}/h", rx.port))
    })
    .unwrap();
    sink.send(&alert("192.0.2.9"));
    let req = rx.next(WAIT).unwrap();
    assert_eq!(req["tls"], serde_json::Value::Null);
    assert_eq!(req["headers"]["x-vigil-signature"], req["expected_sig"]);
    wait_until("sent counter", || sink.stats().sent == 1);
}

#[test]
fn credentials_in_the_url_are_refused_without_echoing_them() {
    for url in [
        "https://alice:hunter2-pw@siem.example.com/hook",
        "https://hunter2-pw@siem.example.com/hook",
        "https://alice:hunter2-pw@siem.example.com",
    ] {
        let e = WebhookConfig::new(url).validate().unwrap_err();
        assert!(matches!(e, WebhookError::CredentialsInUrl { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("set the webhook secret"), "{msg}");
        assert!(!format!("{e:?}").contains("hunter2"));
    }
    // An @ in the path or query is no credential.
    WebhookConfig::new("https://siem.example.com/hook?user=a@b.c")
        .validate()
        .unwrap();
}

#[test]
fn bad_urls_and_settings_are_refused_with_clear_errors() {
    type Expect = fn(&WebhookError) -> bool;
    let cases: [(&str, Expect); 8] = [
        ("", |e| matches!(e, WebhookError::UrlEmpty)),
        ("   ", |e| matches!(e, WebhookError::UrlEmpty)),
        ("siem.example.com/hook", |e| {
            matches!(e, WebhookError::UrlInvalid { .. })
        }),
        ("ftp://siem.example.com/x", |e| {
            matches!(e, WebhookError::UnsupportedScheme { .. })
        }),
        ("https://exa mple.com/", |e| {
            matches!(e, WebhookError::UrlInvalid { .. })
        }),
        ("https://bad_host!.example/", |e| {
            matches!(
                e,
                WebhookError::InvalidHost { .. } | WebhookError::UrlInvalid { .. }
            )
        }),
        ("https://siem.example.com/hook#frag", |e| {
            matches!(e, WebhookError::Fragment { .. })
        }),
        ("https://siem.example.com:0/hook", |e| {
            matches!(e, WebhookError::UrlInvalid { .. })
        }),
    ];
    for (url, ok) in cases {
        let e = WebhookConfig::new(url).validate().unwrap_err();
        assert!(ok(&e), "{url:?}: {e:?}");
        assert!(!e.to_string().is_empty());
    }
    let long = format!("https://example.com/{}", "a".repeat(3000));
    assert_eq!(
        WebhookConfig::new(long).validate(),
        Err(WebhookError::UrlTooLong)
    );
    for good in [
        "https://siem.example.com/hook",
        "HTTPS://siem.example.com:8443/a/b?c=d",
        "https://192.0.2.1/hook",
        "https://[2001:db8::1]:8443/hook",
    ] {
        WebhookConfig::new(good).validate().unwrap();
    }

    let base = WebhookConfig::new("https://siem.example.com/hook");
    let short = WebhookConfig {
        secret: Some("short".into()),
        ..base.clone()
    };
    let e = short.validate().unwrap_err();
    assert_eq!(e, WebhookError::SecretTooShort { len: 5 });
    assert!(e.to_string().contains("openssl rand -hex 32"));
    assert!(!e.to_string().contains("short\""));
    for t in [
        Duration::ZERO,
        Duration::from_millis(500),
        Duration::from_secs(600),
    ] {
        let c = WebhookConfig {
            timeout: t,
            ..base.clone()
        };
        assert_eq!(c.validate(), Err(WebhookError::Timeout(t)));
    }
    let c = WebhookConfig {
        server_name: Some("a\nb".into()),
        ..base.clone()
    };
    assert!(matches!(c.validate(), Err(WebhookError::ServerName(_))));
}

#[test]
fn bad_ca_pem_is_refused_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "trusted");
    let with = |pem: &str| WebhookConfig {
        ca_pem: Some(pem.to_owned()),
        ..WebhookConfig::new("https://siem.example.com/hook")
    };
    let e = with("this is not a certificate").validate().unwrap_err();
    assert_eq!(e, WebhookError::CaPemEmpty);
    assert!(e.to_string().contains("BEGIN CERTIFICATE"), "{e}");

    let e = with("-----BEGIN CERTIFICATE-----\n!!!notbase64!!!\n-----END CERTIFICATE-----\n")
        .validate()
        .unwrap_err();
    assert!(matches!(e, WebhookError::CaPemInvalid { .. }), "{e:?}");

    // Valid base64, but not a certificate.
    let e = with("-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n")
        .validate()
        .unwrap_err();
    assert!(
        matches!(e, WebhookError::CaCertInvalid { index: 1, .. }),
        "{e:?}"
    );

    let key = std::fs::read_to_string(&pki.key).unwrap();
    let e = with(&format!("{}{key}", pki.ca_pem))
        .validate()
        .unwrap_err();
    assert_eq!(e, WebhookError::CaPemHasPrivateKey);

    with(&pki.ca_pem).validate().unwrap();
    assert!(WebhookSink::start(with("garbage")).is_err());
}

#[test]
fn unreachable_receiver_is_retried_a_bounded_number_of_times_then_counted_failed() {
    let port = closed_port();
    let started = Instant::now();
    let sink = WebhookSink::start_tuned(
        WebhookConfig {
            timeout: Duration::from_secs(2),
            ..WebhookConfig::new(format!("https://127.0.0.1:{port}/hook"))
        },
        fast_retries(),
    )
    .unwrap();
    sink.send(&alert("192.0.2.10"));
    wait_until("failed counter", || sink.stats().failed == 1);
    assert_eq!(
        sink.stats(),
        WebhookStats {
            sent: 0,
            failed: 1,
            dropped: 0,
            attempts: u64::from(crate::webhook::WEBHOOK_MAX_ATTEMPTS)
        }
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn server_errors_are_retried_and_client_errors_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "trusted");

    let rx = Receiver::start(Some(&pki), 503);
    let sink = WebhookSink::start_tuned(https_config(rx.port, &pki), fast_retries()).unwrap();
    sink.send(&alert("192.0.2.11"));
    wait_until("failed counter", || sink.stats().failed == 1);
    let mut seen = 0;
    while rx.next(Duration::from_millis(300)).is_some() {
        seen += 1;
    }
    assert_eq!(seen, crate::webhook::WEBHOOK_MAX_ATTEMPTS);
    assert_eq!(sink.stats().attempts, 4);

    // A client error and a redirect (not followed) fail the same way again: no retry.
    for status in [404, 302] {
        let rx = Receiver::start(Some(&pki), status);
        let mut stats = WebhookStats::default();
        let log = capture_logs(|| {
            let sink =
                WebhookSink::start_tuned(https_config(rx.port, &pki), fast_retries()).unwrap();
            sink.send(&alert("192.0.2.12"));
            wait_until("failed counter", || sink.stats().failed == 1);
            stats = sink.stats();
        });
        assert!(rx.next(WAIT).is_some());
        assert!(rx.next(Duration::from_millis(200)).is_none());
        assert_eq!(stats.attempts, 1, "HTTP {status}");
        assert!(log.contains(&format!("HTTP {status}")), "{log}");
    }
}

#[test]
fn full_queue_drops_and_counts_and_shutdown_is_bounded() {
    // Accepts TCP connections (the kernel does, via the backlog) but never speaks TLS, so the
    // one alert in flight hangs until the timeout while the queue fills.
    let stuck = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stuck.local_addr().unwrap().port();
    let sink = WebhookSink::start(WebhookConfig {
        timeout: Duration::from_secs(2),
        ..WebhookConfig::new(format!("https://127.0.0.1:{port}/hook"))
    })
    .unwrap();
    // The first alert is taken by the worker (and hangs) before the rest arrive, so the queue
    // fills once: on a loaded machine a worker that started late would take it while the
    // queue is full, and the next overflow would be logged anew.
    sink.send(&alert("198.51.100.0"));
    wait_until("the first alert in flight", || sink.stats().attempts == 1);
    let t = Instant::now();
    let log = capture_logs(|| {
        for i in 1..300u32 {
            sink.send(&alert(&format!("198.51.100.{}", i % 250)));
        }
    });
    // One log line for the overflow, not one per dropped alert.
    assert_eq!(log.matches("webhook queue full").count(), 1, "{log}");
    // `send` never waits for the network.
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let s = sink.stats();
    assert!(
        (43..=44).contains(&s.dropped),
        "300 alerts, 256 queue slots, at most one in flight: {s:?}"
    );
    assert!(sink.queued() <= crate::webhook::WEBHOOK_QUEUE_CAPACITY);

    let t = Instant::now();
    sink.shutdown();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let s = sink.stats();
    assert_eq!(s.sent, 0);
    // Everything is accounted for: dropped (full queue or shutdown) or failed (in flight).
    assert_eq!(s.dropped + s.failed, 300, "{s:?}");
    // After shutdown, alerts are dropped and counted, not queued.
    sink.send(&alert("198.51.100.1"));
    assert_eq!(sink.stats().dropped, s.dropped + 1);
    drop(stuck);
}

#[test]
fn shutdown_interrupts_the_retry_backoff() {
    let sink = WebhookSink::start(WebhookConfig::new(format!(
        "https://127.0.0.1:{}/hook",
        closed_port()
    )))
    .unwrap();
    sink.send(&alert("192.0.2.13"));
    wait_until("first attempt", || sink.stats().attempts >= 1);
    // Now in the 1 s backoff (production timings).
    let t = Instant::now();
    drop(sink);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn failures_are_logged_without_secret_path_or_query() {
    let port = closed_port();
    let config = WebhookConfig {
        secret: Some("SUPERSECRET-hmac-key".into()),
        ..WebhookConfig::new(format!(
            "https://127.0.0.1:{port}/services/PATHTOKEN123?token=QUERYTOKEN456"
        ))
    };
    let debug = format!("{config:?}");
    let text = capture_logs(|| {
        let sink = WebhookSink::start_tuned(config, fast_retries()).unwrap();
        sink.send(&alert("192.0.2.14"));
        wait_until("failed counter", || sink.stats().failed == 1);
    });
    assert!(text.contains("webhook delivery failed"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    for secret in ["SUPERSECRET", "PATHTOKEN123", "QUERYTOKEN456"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the log:\n{text}"
        );
        assert!(
            !debug.contains(secret),
            "{secret} leaked into Debug: {debug}"
        );
    }
}

#[test]
fn ten_failed_logins_give_exactly_one_webhook_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "trusted");
    let rx = Receiver::start(Some(&pki), 200);
    let webhook = Arc::new(WebhookSink::start(https_config(rx.port, &pki)).unwrap());
    let sink = MultiSink(vec![Arc::new(TracingSink), webhook.clone()]);
    let config = AccessConfig {
        ids: IdsConfig {
            notification_threshold: 5,
            block: BlockPolicy::Off,
            ..IdsConfig::default()
        },
        hash: HashParams::fast_for_tests(),
        ..AccessConfig::default()
    };
    let clock = Arc::new(ManualClock::new(T0));
    let access = Access::open_with(
        &dir.path().join("access.db"),
        config,
        clock.clone(),
        Arc::new(sink),
    )
    .unwrap();
    access
        .create_user(
            &NewUser {
                username: "alice".into(),
                role: Role::Viewer,
                cameras: CameraScope::All,
                password: Some(GOOD_PW.into()),
            },
            &Actor::cli(),
        )
        .unwrap();
    for _ in 0..10 {
        let r = access.login(
            &Credentials {
                username: "alice",
                password: "wrong-password-xyz",
                totp: None,
            },
            ip("203.0.113.5"),
        );
        assert!(r.is_err());
        clock.advance(Duration::from_secs(1));
    }
    let req = rx.next(WAIT).expect("one delivery");
    let v: serde_json::Value = serde_json::from_str(req["body"].as_str().unwrap()).unwrap();
    assert_eq!(v["address"], "203.0.113.5");
    assert_eq!(v["failures"], 5);
    assert_eq!(v["usernames"], serde_json::json!(["alice"]));
    assert_eq!(v["blocked"], false);
    // The deadtime (60 min) holds back alerts for failures 6 to 10.
    assert!(rx.next(Duration::from_millis(500)).is_none());
    wait_until("sent counter", || webhook.stats().sent == 1);
    assert_eq!(webhook.stats().attempts, 1);
    assert_eq!(webhook.stats().dropped, 0);
}

#[test]
fn a_rule_payload_goes_the_same_signed_way_as_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "trusted");
    let rx = Receiver::start(Some(&pki), 200);
    let sink = WebhookSink::start(https_config(rx.port, &pki)).unwrap();
    let payload = serde_json::json!({
        "type": "vigil.rule_matched", "version": 1, "rule": "door",
        "event": {"kind": "external.door", "message": "door forced open"}
    });
    sink.send_payload(payload.clone());
    let req = rx.next(WAIT).expect("the receiver got the payload");
    let body = req["body"].as_str().unwrap();
    assert_eq!(
        req["headers"]["x-vigil-signature"].as_str().unwrap(),
        req["expected_sig"].as_str().unwrap()
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(body).unwrap(),
        payload
    );
    wait_until("sent counter", || sink.stats().sent == 1);
}
