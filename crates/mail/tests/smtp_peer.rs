//! The sink against a real mail server (Debian's aiosmtpd, `vigil_testkit::smtp`): implicit
//! TLS delivers; a server that offers no STARTTLS, a certificate from another CA, and a wrong
//! password each deliver nothing, and the failure says why. (STARTTLS with login is tested
//! end to end through `vigil serve`: crates/vigil/tests/rules_e2e.rs.)

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil_mail::{Mail, MailSettings, MailSink, TlsMode};
use vigil_testkit::external_ca::{ExternalCa, Key, Leaf, Validity};
use vigil_testkit::smtp::{SmtpMode, SmtpPeer};
use zeroize::Zeroizing;

struct Site {
    _dir: tempfile::TempDir,
    ca: ExternalCa,
    leaf: Leaf,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let ca = ExternalCa::root(dir.path(), "Mail CA", Key::P256);
    let leaf = ca.leaf("mail", Key::P256, "DNS:mail.test", Validity::Days(30));
    Site {
        _dir: dir,
        ca,
        leaf,
    }
}

fn settings(port: u16, tls: TlsMode, ca_pem: &str, password: &str) -> MailSettings {
    MailSettings {
        host: "127.0.0.1".into(),
        port,
        tls,
        server_name: "mail.test".into(),
        ca_pem: Some(ca_pem.as_bytes().to_vec()),
        login: Some(("vigil".into(), Zeroizing::new(password.into()))),
        from: "Vigil <vigil@example.net>".into(),
        hello_name: "vigil.test".into(),
        retry_after: [Duration::from_millis(50), Duration::from_millis(50)],
    }
}

/// Sends one message and waits for the sink to finish; returns the failures it reported.
fn send_one(settings: MailSettings) -> (Vec<String>, Arc<MailSink>) {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let failures = failures.clone();
        Arc::new(
            MailSink::start(
                settings,
                Box::new(move |_, why| failures.lock().unwrap().push(why.to_owned())),
            )
            .unwrap(),
        )
    };
    assert!(sink.send(Mail {
        to: vec!["soc@example.net".into()],
        subject: "alarm: door forced".into(),
        body: "Door 3 forced open.\n".into(),
    }));
    sink.stop();
    let f = failures.lock().unwrap().clone();
    (f, sink)
}

#[test]
fn implicit_tls_delivers_after_login() {
    let s = site();
    let peer = SmtpPeer::start(
        SmtpMode::Implicit,
        Some((&s.leaf.cert, &s.leaf.key)),
        Some(("vigil", "pw-1")),
    );
    let (failures, sink) = send_one(settings(
        peer.port,
        TlsMode::Implicit,
        &s.ca.root_pem(),
        "pw-1",
    ));
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(sink.stats().sent.load(Ordering::Relaxed), 1);
    let got = peer.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert!(got[0].tls && got[0].login.as_deref() == Some("vigil"));
    assert!(
        got[0].content.contains("Subject: alarm: door forced"),
        "{}",
        got[0].content
    );
}

#[test]
fn a_server_without_starttls_gets_nothing() {
    let s = site();
    let peer = SmtpPeer::start(SmtpMode::Plain, None, None);
    let (failures, sink) = send_one(settings(
        peer.port,
        TlsMode::StartTls,
        &s.ca.root_pem(),
        "pw-1",
    ));
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].to_ascii_lowercase().contains("tls"),
        "{failures:?}"
    );
    assert_eq!(sink.stats().sent.load(Ordering::Relaxed), 0);
    assert!(peer.received().is_empty(), "nothing is sent in clear text");
}

#[test]
fn a_certificate_from_another_ca_gets_nothing() {
    let s = site();
    let other = tempfile::tempdir().unwrap();
    let other_ca = ExternalCa::root(other.path(), "Someone Else", Key::P256);
    let peer = SmtpPeer::start(
        SmtpMode::StartTls,
        Some((&s.leaf.cert, &s.leaf.key)),
        Some(("vigil", "pw-1")),
    );
    let (failures, _) = send_one(settings(
        peer.port,
        TlsMode::StartTls,
        &other_ca.root_pem(),
        "pw-1",
    ));
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].to_ascii_lowercase().contains("certificate"),
        "{failures:?}"
    );
    assert!(peer.received().is_empty());
}

#[test]
fn a_wrong_password_is_refused_for_good_without_retries() {
    let s = site();
    let peer = SmtpPeer::start(
        SmtpMode::StartTls,
        Some((&s.leaf.cert, &s.leaf.key)),
        Some(("vigil", "pw-1")),
    );
    let (failures, sink) = send_one(settings(
        peer.port,
        TlsMode::StartTls,
        &s.ca.root_pem(),
        "wrong",
    ));
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("535"), "{failures:?}");
    assert_eq!(sink.stats().retried.load(Ordering::Relaxed), 0);
    assert!(peer.received().is_empty());
}
