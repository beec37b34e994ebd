//! End to end through `vigil serve`: a rule written in `vigil.toml` fires on a generic event
//! sent over TLS (`openssl s_client`, trusting the installation's CA, from an allow-listed
//! address); the alarm and the bookmark it makes are stored, and the rule's SIEM action
//! publishes `alarm.rule_matched`. A rule with a `lock` action, fired by a sender with a client
//! certificate from the installation's CA, locks the camera's recording around the event: the
//! range outlives a retention that deletes everything around it, and `vigil verify` reports the
//! lock as a signed fact. (A sender without a certificate and outside the allow-list is
//! refused and reported: tests/events_in.rs.) The rule's e-mail action reaches a real mail
//! server (aiosmtpd) over STARTTLS, verified against the site's CA, after logging in.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_events::alarms::{AlarmQuery, AlarmState};
use vigil_events::bookmarks::{BookmarkQuery, Creator};
use vigil_events::{AlarmStore, BookmarkStore, EventQuery, EventStore};
use vigil_testkit::external_ca::{ExternalCa, Key, Validity};
use vigil_testkit::smtp::{SmtpMode, SmtpPeer};

const RULE: &str = r#"
[[rules]]
name = "lobby-door"
kinds = ["generic.door."]
cameras = ["lobby"]
min_severity = "warning"
alarm = { priority = 1 }
bookmark = { pre_seconds = 5, post_seconds = 20 }
email = { to = ["soc@example.net", "guard@example.net"] }
siem = true
"#;

/// Turns the events role on (`vigil init` may write it off until an admin names senders).
fn enable_events(v: &common::Vigil) {
    let text = std::fs::read_to_string(&v.config).unwrap();
    let at = text.find("[events]\n").expect("an [events] section");
    let (head, events) = text.split_at(at);
    let events = events.replacen("\nenabled = false\n", "\nenabled = true\n", 1);
    std::fs::write(&v.config, format!("{head}{events}")).unwrap();
}

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
    s_client_as(addr, ca, None, data)
}

/// `openssl s_client` sending `data`, with a client certificate and key when given.
fn s_client_as(
    addr: &str,
    ca: &std::path::Path,
    cert: Option<(&std::path::Path, &std::path::Path)>,
    data: &[u8],
) {
    let mut cmd = Command::new("timeout");
    cmd.arg("20")
        .arg("openssl")
        .args(["s_client", "-quiet", "-no_ign_eof", "-connect", addr])
        .arg("-CAfile")
        .arg(ca)
        .args(["-verify_return_error", "-servername", "localhost"]);
    if let Some((c, k)) = cert {
        cmd.arg("-cert").arg(c).arg("-key").arg(k);
    }
    let mut child = cmd
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
    enable_events(&v);
    // The site's mail server: its own CA, STARTTLS required, AUTH required.
    let pki = tempfile::tempdir().unwrap();
    let mail_ca = ExternalCa::root(pki.path(), "Site Mail CA", Key::P256);
    let leaf = mail_ca.leaf(
        "mail",
        Key::P256,
        "DNS:mail.test,IP:127.0.0.1",
        Validity::Days(30),
    );
    let mail = SmtpPeer::start(
        SmtpMode::StartTls,
        Some((&leaf.cert, &leaf.key)),
        Some(("vigil", "mail-pass-1")),
    );
    let pass = v.dir.path().join("smtp.pass");
    std::fs::write(&pass, "mail-pass-1\n").unwrap();
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let smtp = format!(
        "\n[smtp]\nserver = \"127.0.0.1:{}\"\nserver_name = \"mail.test\"\nca_file = \"{}\"\n\
         username = \"vigil\"\npassword_file = \"{}\"\nfrom = \"Vigil <vigil@example.net>\"\n",
        mail.port,
        mail_ca.root_cert().display(),
        pass.display()
    );
    let text = std::fs::read_to_string(&v.config).unwrap();
    std::fs::write(&v.config, format!("{text}{smtp}{RULE}")).unwrap();
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
    // The e-mails are sent by the server's mail thread: wait for them while it runs.
    let mails = mail.wait_for(2, Duration::from_secs(30));
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
    // One e-mail per match, encrypted, after logging in, to both recipients.
    assert_eq!(mails.len(), 2, "{mails:?}\n{out}");
    for m in &mails {
        assert!(m.tls, "sent over STARTTLS: {m:?}");
        assert_eq!(m.login.as_deref(), Some("vigil"));
        assert_eq!(m.mail_from, "vigil@example.net");
        assert_eq!(m.rcpt_tos, ["soc@example.net", "guard@example.net"]);
        // Long header lines are folded (RFC 5322): read them unfolded.
        let headers = m.content.replace("\r\n ", " ").replace("\n ", " ");
        assert!(
            headers.contains("Subject: [Vigil ")
                && headers.contains("generic.door.forced on camera lobby (rule lobby-door)"),
            "{}",
            m.content
        );
        assert!(m.content.contains("Door 3 forced open"), "{}", m.content);
        assert!(
            m.content.contains(&format!("Alarm:    {}", a.id)),
            "{}",
            m.content
        );
    }
    assert_eq!(kinds("alarm.email_failed"), 0);
}

const LOCK_RULE: &str = r#"
[[rules]]
name = "lobby-door-lock"
kinds = ["generic.door."]
cameras = ["lobby"]
alarm = { priority = 2 }
bookmark = { pre_seconds = 2, post_seconds = 2 }
lock = { pre_seconds = 2, post_seconds = 2, days = 1, reason = "door forced" }
"#;

/// Rows of a query on the recording index (`python3`'s sqlite3, so the test reads what the
/// running server wrote without opening the index itself).
fn sql(data: &std::path::Path, query: &str) -> Vec<Vec<serde_json::Value>> {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import sqlite3,json,sys\n\
             c=sqlite3.connect(sys.argv[1])\n\
             print(json.dumps([list(r) for r in c.execute(sys.argv[2]).fetchall()]))",
        )
        .arg(data.join("vigil.db"))
        .arg(query)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The main stream's segments of camera `id`: (seq, start_us, end_us), in order.
fn segments(data: &std::path::Path, id: &str) -> Vec<(i64, i64, i64)> {
    sql(
        data,
        &format!(
            "SELECT seq, start_us, end_us FROM segments WHERE camera_id = '{id}' ORDER BY seq"
        ),
    )
    .iter()
    .map(|r| {
        (
            r[0].as_i64().unwrap(),
            r[1].as_i64().unwrap(),
            r[2].as_i64().unwrap(),
        )
    })
    .collect()
}

#[test]
fn a_rule_locks_evidence_that_outlives_retention_and_verifies_as_a_signed_fact() {
    let clip = vigil_testkit::Clip::h264(10, 30, 15, 640, 360, false);
    let peer = vigil_testkit::RtspPeer::start(&[("cam", &clip)], vigil_testkit::Auth::None);
    let v = common::Vigil::init(2);
    v.ok(&[
        "camera",
        "add",
        "lobby",
        "--url",
        &peer.url("cam"),
        "--max-age",
        "4s",
    ]);
    enable_events(&v);
    let text = std::fs::read_to_string(&v.config).unwrap();
    std::fs::write(&v.config, format!("{text}{LOCK_RULE}")).unwrap();
    // The door controller's client certificate, issued by this installation's CA; no
    // address is allow-listed, so the certificate is what lets it in.
    let pki = vigil_pki::Pki::open(&v.data.join("pki")).unwrap();
    let leaf = pki
        .issue_leaf(&vigil_pki::LeafRequest {
            common_name: "acs-1".into(),
            sans: vec![],
            validity_days: 2,
            usage: vigil_pki::LeafUsage::TlsClient,
            key_type: vigil_pki::LeafKeyType::EcdsaP256,
        })
        .unwrap();
    let cert = v.dir.path().join("acs-1.crt");
    let key = v.dir.path().join("acs-1.key");
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    vigil_pki::write_secret_file(&key, leaf.key_pem.as_bytes()).unwrap();
    let ca = v.data.join("pki").join("ca.crt");

    let server = v.serve();
    // Segments of 2 s: the third one is being written, so there is video before the lock.
    let cam = sql(&v.data, "SELECT id FROM cameras WHERE name = 'lobby'")[0][0]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !segments(&v.data, &cam).iter().any(|(q, _, _)| *q >= 3) {
        assert!(
            Instant::now() < deadline,
            "not recording: {}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let generic = listening(&server, "generic_tls");
    s_client_as(
        &generic,
        &ca,
        Some((&cert, &key)),
        b"{\"kind\":\"door.forced\",\"message\":\"Door 3 forced open\",\"severity\":\"warning\",\"camera\":\"lobby\"}\n",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let lock = loop {
        let rows = sql(
            &v.data,
            "SELECT id, camera_id, from_us, to_us, reason, created_by, expires_us FROM evidence_locks",
        );
        if let Some(r) = rows.into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "no lock: {}", server.output());
        std::thread::sleep(Duration::from_millis(100));
    };
    let id = lock[0].as_i64().unwrap();
    assert_eq!(lock[1], cam.as_str());
    let (from, to) = (lock[2].as_i64().unwrap(), lock[3].as_i64().unwrap());
    assert_eq!(to - from, 4_000_000, "{lock:?}");
    assert_eq!(lock[4], "rule lobby-door-lock: door forced");
    assert_eq!(lock[5], "rule:lobby-door-lock");
    let expires = lock[6].as_i64().unwrap();
    assert!(
        (expires - to - 86_400_000_000).abs() < 60_000_000,
        "a day: {lock:?}"
    );

    // Retention (max age 4 s, a pass every 10 s) deletes what was recorded before the locked
    // range and, later, what was recorded after it; the locked segments stay.
    let deadline = Instant::now() + Duration::from_secs(90);
    let left = loop {
        let segs = segments(&v.data, &cam);
        let locked: Vec<i64> = segs
            .iter()
            .filter(|(_, s, e)| *s <= to && *e >= from)
            .map(|(q, _, _)| *q)
            .collect();
        // The oldest left is a locked one, and segment 1 (before the lock) is gone.
        let before_gone = segs
            .first()
            .is_some_and(|(q, s, e)| *q > 1 && *s <= to && *e >= from);
        // Newer segments are recorded, and the one right after the locked range is gone.
        let after_gone = locked.last().is_some_and(|last| {
            segs.iter().any(|(q, _, _)| *q > last + 1)
                && segs.iter().all(|(q, _, _)| *q != last + 1)
        });
        if before_gone && after_gone {
            break segs;
        }
        assert!(
            Instant::now() < deadline,
            "retention never pruned around the lock {from}..{to}: {segs:?}\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let locked: Vec<&(i64, i64, i64)> = left
        .iter()
        .filter(|(_, s, e)| *s <= to && *e >= from)
        .collect();
    assert!(
        locked.first().unwrap().1 <= from && locked.last().unwrap().2 >= to,
        "{left:?}"
    );
    assert!(
        locked.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "the locked range is whole: {left:?}"
    );

    // The rule's alarm and bookmark, beside the lock.
    let alarms = AlarmStore::open(&v.data)
        .unwrap()
        .query(&AlarmQuery::default())
        .unwrap()
        .alarms;
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0].rule, "lobby-door-lock");
    assert_eq!(alarms[0].source, "acs-1", "named by its certificate");
    let marks = BookmarkStore::open(&v.data)
        .unwrap()
        .query(&BookmarkQuery {
            camera: Some("lobby".into()),
            ..Default::default()
        })
        .unwrap()
        .bookmarks;
    assert_eq!(marks.len(), 1);
    assert_eq!((marks[0].from_us, marks[0].to_us), (from, to));
    let events = EventStore::open(&v.data).unwrap();
    let locked_events = events
        .query(&EventQuery {
            kinds: vec!["alarm.evidence_locked".into()],
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .events;
    assert_eq!(locked_events.len(), 1);
    assert_eq!(locked_events[0].event.attributes["lock_id"], id.to_string());
    assert!(server.stop().contains("Stopped cleanly"));

    // verify: the recording checks out, and the lock is a signed fact in the ledger.
    let out = v.cmd(&["verify", "lobby", "--json"]);
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{rep:#}");
    let facts: Vec<&serde_json::Value> = rep["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "evidence-lock")
        .collect();
    assert_eq!(facts.len(), 1, "{rep:#}");
    assert_eq!(facts[0]["action"], "locked");
    assert_eq!(facts[0]["lock_id"], id);
    assert_eq!(facts[0]["by"], "rule:lobby-door-lock");
    assert_eq!(facts[0]["reason"], "rule lobby-door-lock: door forced");
}

const PORT_RULE: &str = r#"
[[events.camera_ports]]
camera = "lobby"
switch = "sw-lobby"
interface = "GigabitEthernet1/0/3"

[[rules]]
name = "lobby-port"
kinds = ["syslog.dot1x_failure", "syslog.port_security_violation"]
cameras = ["lobby"]
alarm = { priority = 1 }
"#;

/// A switch's port mapped to camera `lobby` in `vigil.toml`: a recorded Cisco 802.1X failure
/// on that port, sent over the syslog TLS listener, is an event of camera lobby, and a rule on
/// that camera raises its alarm. The same line from another port concerns no camera.
#[test]
fn a_failure_on_a_cameras_switch_port_raises_the_cameras_alarm() {
    let v = common::Vigil::init(10);
    v.set_config("allowed_sources = []", "allowed_sources = [\"127.0.0.1\"]");
    enable_events(&v);
    let text = std::fs::read_to_string(&v.config).unwrap();
    std::fs::write(&v.config, format!("{text}{PORT_RULE}")).unwrap();
    let ca = v.data.join("pki").join("ca.crt");
    let server = v.serve();
    let syslog = listening(&server, "syslog_tls");
    s_client(
        &syslog,
        &ca,
        b"<189>1 - sw-lobby.example.net - - - - %DOT1X-5-FAIL: Authentication failed for client (0011.2233.4455) on Interface Gi1/0/3 AuditSessionID 0A0B0C0D0000001234567890\n\
          <189>1 - sw-lobby.example.net - - - - %DOT1X-5-FAIL: Authentication failed for client (0011.2233.4466) on Interface Gi1/0/4 AuditSessionID 0A0B0C0D0000001234567891\n",
    );
    let events = EventStore::open(&v.data).unwrap();
    let failures = || {
        events
            .query(&EventQuery {
                kinds: vec!["syslog.dot1x_failure".into()],
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .events
    };
    let alarms = AlarmStore::open(&v.data).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (failures().len() < 2
        || alarms
            .query(&AlarmQuery::default())
            .unwrap()
            .alarms
            .is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = server.stop();
    let mut got = failures();
    got.sort_by_key(|e| e.id);
    assert_eq!(got.len(), 2, "{out}");
    let (mapped, other) = (&got[0].event, &got[1].event);
    assert_eq!(mapped.camera.as_deref(), Some("lobby"));
    assert_eq!(mapped.attributes["camera_match"], "port");
    assert_eq!(mapped.attributes["interface"], "GigabitEthernet1/0/3");
    assert!(
        mapped.message.ends_with("(camera lobby)"),
        "{}",
        mapped.message
    );
    assert_eq!(other.camera, None, "{other:?}");
    let found = alarms.query(&AlarmQuery::default()).unwrap().alarms;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            found[0].rule.as_str(),
            found[0].camera.as_deref(),
            found[0].kind.as_str()
        ),
        ("lobby-port", Some("lobby"), "syslog.dot1x_failure")
    );
    assert_eq!(found[0].source, "sw-lobby.example.net");
}
