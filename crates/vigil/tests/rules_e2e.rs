//! End to end through `vigil serve`: a rule written in `vigil.toml` fires on a generic event
//! sent over TLS (`openssl s_client`, trusting the installation's CA, from an allow-listed
//! address); the alarm and the bookmark it makes are stored, and the rule's SIEM action
//! publishes `alarm.rule_matched`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_events::alarms::{AlarmQuery, AlarmState};
use vigil_events::bookmarks::{BookmarkQuery, Creator};
use vigil_events::{AlarmStore, BookmarkStore, EventQuery, EventStore};

const RULE: &str = r#"
[[rules]]
name = "lobby-door"
kinds = ["generic.door."]
cameras = ["lobby"]
min_severity = "warning"
alarm = { priority = 1 }
bookmark = { pre_seconds = 5, post_seconds = 20 }
siem = true
"#;

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

fn s_client(addr: &str, ca: &std::path::Path, data: &[u8]) {
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
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("verify error"), "{err}");
}

#[test]
fn a_generic_event_over_tls_fires_a_configured_rule() {
    let v = common::Vigil::init(10);
    v.set_config("allowed_sources = []", "allowed_sources = [\"127.0.0.1\"]");
    let text = std::fs::read_to_string(&v.config).unwrap();
    std::fs::write(&v.config, format!("{text}{RULE}")).unwrap();
    let ca = v.data.join("pki").join("ca.crt");
    let server = v.serve();
    let generic = listening(&server, "generic_tls");
    s_client(
        &generic,
        &ca,
        b"{\"kind\":\"door.forced\",\"message\":\"Door 3 forced open\",\"severity\":\"warning\",\"camera\":\"lobby\"}\n\
          {\"kind\":\"door.forced\",\"message\":\"Door 3 forced open again\",\"severity\":\"warning\",\"camera\":\"lobby\"}\n\
          {\"kind\":\"door.opened\",\"message\":\"Door 3 opened\",\"severity\":\"info\",\"camera\":\"lobby\"}\n",
    );
    let alarms = AlarmStore::open(&v.data).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let page = alarms.query(&AlarmQuery::default()).unwrap();
        if page.alarms.first().is_some_and(|a| a.count == 2) || Instant::now() > deadline {
            break page.alarms;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = server.stop();
    assert_eq!(found.len(), 1, "one alarm, counted twice: {found:?}\n{out}");
    let a = &found[0];
    assert_eq!(
        (a.rule.as_str(), a.priority, a.state),
        ("lobby-door", 1, AlarmState::New)
    );
    assert_eq!(a.camera.as_deref(), Some("lobby"));
    assert_eq!(a.kind, "generic.door.forced");
    assert_eq!(a.count, 2);
    let marks = BookmarkStore::open(&v.data)
        .unwrap()
        .query(&BookmarkQuery {
            camera: Some("lobby".into()),
            ..Default::default()
        })
        .unwrap()
        .bookmarks;
    assert_eq!(marks.len(), 2, "one per matching event");
    assert!(
        marks
            .iter()
            .all(|b| b.creator == Creator::Rule("lobby-door".into())
                && b.to_us - b.from_us == 25_000_000
                && b.alarm_id == Some(a.id))
    );
    let events = EventStore::open(&v.data).unwrap();
    let kinds = |k: &str| {
        events
            .query(&EventQuery {
                kinds: vec![k.to_owned()],
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .events
            .len()
    };
    assert_eq!(kinds("alarm.raised"), 1);
    assert_eq!(kinds("alarm.rule_matched"), 2);
}
