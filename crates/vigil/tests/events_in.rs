//! `vigil serve` runs the events role's TLS listeners once the configuration `vigil init`
//! writes turns the role on: events sent with `openssl s_client` (trusting the installation's CA) from an
//! allow-listed address reach the event store, a sender outside the list is refused and
//! reported, and the listeners close with the server.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_events::{EventQuery, EventStore};

/// The address `serve` printed for an input, once it did.
fn listening(server: &common::Server, input: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = server.output();
        let prefix = format!("Events ({input}) listening on ");
        if let Some(line) = out.lines().find(|l| l.starts_with(&prefix)) {
            return line[prefix.len()..].trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no {input} listener: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn s_client(addr: &str, ca: &std::path::Path, data: &[u8]) -> String {
    let mut child = Command::new("timeout")
        .arg("20")
        .arg("openssl")
        .args(["s_client", "-quiet", "-no_ign_eof", "-connect", addr])
        .arg("-CAfile")
        .arg(ca)
        .args(["-verify_return_error", "-servername", "localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn kinds(data: &std::path::Path, prefix: &str) -> Vec<vigil_events::Event> {
    EventStore::open(data)
        .unwrap()
        .query(&EventQuery {
            kinds: vec![prefix.to_owned()],
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .events
}

#[test]
fn serve_takes_generic_events_and_syslog_over_tls_from_allowed_sources() {
    let v = common::Vigil::init(10);
    v.set_config("enabled = false\ntcp = ", "enabled = true\ntcp = ");
    v.set_config("allowed_sources = []", "allowed_sources = [\"127.0.0.1\"]");
    let ca = v.data.join("pki").join("ca.crt");
    let server = v.serve();
    let generic = listening(&server, "generic_tls");
    let syslog = listening(&server, "syslog_tls");
    assert!(generic.starts_with("127.0.0.1:") && syslog.starts_with("127.0.0.1:"));
    let err = s_client(&generic, &ca, b"Door 3 forced open\n");
    assert!(!err.contains("verify error"), "{err}");
    s_client(
        &syslog,
        &ca,
        b"<189>1 - sw-lobby - - - - %DOT1X-5-FAIL: Authentication failed for client (0011.2233.4455) on Interface Gi1/0/3\n",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while (kinds(&v.data, "generic").is_empty() || kinds(&v.data, "syslog.").is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = server.stop();
    let g = kinds(&v.data, "generic");
    assert_eq!(g.len(), 1, "{out}");
    assert_eq!(g[0].event.message, "Door 3 forced open");
    assert_eq!(g[0].event.attributes["auth"], "allow_list");
    let s = kinds(&v.data, "syslog.");
    assert_eq!(s[0].event.kind, "syslog.dot1x_failure", "{s:?}");
    assert!(
        std::net::TcpStream::connect(&generic).is_err(),
        "closed with the server"
    );
}

#[test]
fn serve_refuses_and_reports_a_sender_outside_the_allow_list() {
    let v = common::Vigil::init(10);
    v.set_config("enabled = false\ntcp = ", "enabled = true\ntcp = ");
    let ca = v.data.join("pki").join("ca.crt");
    let server = v.serve();
    let generic = listening(&server, "generic_tls");
    s_client(&generic, &ca, b"forged\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while kinds(&v.data, "security.event_source_refused").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();
    let r = kinds(&v.data, "security.event_source_refused");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].event.attributes["reason"], "no_client_certificate");
    assert!(kinds(&v.data, "generic").is_empty());
}
