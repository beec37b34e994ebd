//! Syslog over TLS from a real sender: Debian's rsyslog forwards what it receives with
//! `omfwd` over TLS (RFC 5425 octet counting) to the syslog listener, with a client
//! certificate issued by the Vigil CA and the server's name checked (`x509/name`). Lines
//! are given to rsyslog on a plaintext loopback input; they must arrive in Vigil's event
//! store, the switch lines recognised. Without a client certificate (and no allow-list)
//! rsyslog is refused and reported.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, settings};
use vigil_events::SourceKind;
use vigil_intake::{Input, InputStats, Limits};
use vigil_testkit::{free_port, require_tool};

const DRIVERS: &str = "/usr/lib/x86_64-linux-gnu/rsyslog";

/// rsyslogd in the foreground, forwarding to `target` over TLS with `driver`.
struct Sender {
    child: Child,
    dir: tempfile::TempDir,
    input: u16,
}

impl Sender {
    fn start(
        driver: &str,
        target: std::net::SocketAddr,
        ca: &Path,
        client: Option<(&Path, &Path)>,
    ) -> Sender {
        let module = Path::new(DRIVERS).join(format!("lmnsd_{driver}.so"));
        assert!(
            module.exists(),
            "rsyslog's {driver} driver is missing: apt-get install -y rsyslog-openssl rsyslog-gnutls"
        );
        let dir = tempfile::Builder::new()
            .prefix("vigil-rsyslog-sender-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        let input = free_port();
        let identity = match client {
            Some((cert, key)) => format!(
                "  defaultNetstreamDriverCertFile=\"{}\"\n  defaultNetstreamDriverKeyFile=\"{}\"\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        let conf = format!(
            r#"global(
  workDirectory="{work}"
  defaultNetstreamDriverCAFile="{ca}"
{identity})
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{input}")
action(type="omfwd" target="{host}" port="{port}" protocol="tcp"
  StreamDriver="{driver}" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
  StreamDriverPermittedPeers="localhost"
  TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
  action.resumeRetryCount="-1" action.resumeInterval="1")
"#,
            work = dir.path().join("work").display(),
            ca = ca.display(),
            host = target.ip(),
            port = target.port(),
        );
        let path = dir.path().join("rsyslog.conf");
        std::fs::write(&path, conf).unwrap();
        let rsyslogd = require_tool("rsyslogd");
        let check = Command::new(&rsyslogd)
            .arg("-N1")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "rsyslog refuses its configuration: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.path().join("rsyslogd.log")).unwrap();
        let child = Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(&path)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = Sender { child, dir, input };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", input)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// Gives rsyslog lines on its plaintext input.
    fn send(&self, lines: &[&str]) {
        let mut t = TcpStream::connect(("127.0.0.1", self.input)).unwrap();
        for l in lines {
            t.write_all(l.as_bytes()).unwrap();
            t.write_all(b"\n").unwrap();
        }
        t.flush().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DOT1X: &str = "<189>1 - sw-lobby - - - - %DOT1X-5-FAIL: Authentication failed for client (0011.2233.4455) on Interface Gi1/0/3 AuditSessionID 0A0000010000000C0013F4B2";

async fn forwards_over_tls(driver: &str) {
    let h = Harness::start(settings(&[Input::SyslogTls], &[], Limits::default())).await;
    let (cert, key) = h.client_files("sw-core-relay");
    let rsyslog = Sender::start(
        driver,
        h.addr(Input::SyslogTls),
        &h.ca_file(),
        Some((&cert, &key)),
    );
    let lines: Vec<String> = (0..100)
        .map(|i| format!("<134>1 - fw-1 filterlog 77 - - packet {i} passed"))
        .collect();
    let mut all: Vec<&str> = lines.iter().map(String::as_str).collect();
    all.push(DOT1X);
    rsyslog.send(&all);
    let e = h
        .wait_events(&["syslog."], 101, Duration::from_secs(30))
        .await;
    assert_eq!(e.len(), 101, "rsyslog log: {}", rsyslog.log());
    let generic: Vec<_> = e
        .iter()
        .filter(|e| e.event.kind == "syslog.message")
        .collect();
    assert_eq!(generic.len(), 100);
    for (i, g) in generic.iter().enumerate() {
        assert_eq!(g.event.message, format!("packet {i} passed"), "in order");
        assert_eq!(g.event.source.kind, SourceKind::Syslog);
        assert_eq!(g.event.source.name, "fw-1");
        assert_eq!(g.event.attributes["auth"], "certificate");
        assert_eq!(g.event.attributes["certificate"], "sw-core-relay");
        assert_eq!(g.event.attributes["transport"], "tls");
    }
    let d = e
        .iter()
        .find(|e| e.event.kind == "syslog.dot1x_failure")
        .unwrap_or_else(|| panic!("recognised: {e:?}"));
    assert_eq!(d.event.attributes["mac"], "00:11:22:33:44:55");
    assert_eq!(d.event.attributes["switch"], "sw-lobby");
    let s = h.intake().stats(Input::SyslogTls);
    assert_eq!(InputStats::get(&s.events), 101);
    assert_eq!(s.errors_total(), 0, "{:?}", s.errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_forwards_over_tls_with_openssl() {
    forwards_over_tls("ossl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_forwards_over_tls_with_gnutls() {
    forwards_over_tls("gtls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_without_a_client_certificate_is_refused_and_reported() {
    let h = Harness::start(settings(&[Input::SyslogTls], &[], Limits::default())).await;
    let rsyslog = Sender::start("ossl", h.addr(Input::SyslogTls), &h.ca_file(), None);
    rsyslog.send(&["<134>1 - fw-1 app - - - should not arrive"]);
    let r = h
        .wait_events(
            &["security.event_source_refused"],
            1,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(r.len(), 1, "rsyslog log: {}", rsyslog.log());
    assert_eq!(r[0].event.attributes["reason"], "no_client_certificate");
    assert_eq!(r[0].event.attributes["listener"], "syslog_tls");
    assert!(h.events(&["syslog."]).is_empty());
}
