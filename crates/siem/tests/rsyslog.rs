//! SIEM forwarding to a real collector: Debian's rsyslog with the OpenSSL driver, mutual TLS
//! with certificates from a test CA made by the `openssl` command line.
//!
//! - events arrive over TLS, parsed back by rsyslog field by field (and the CEF payload by
//!   an independent parser here);
//! - a client certificate with the wrong name is refused, and the refused events are not
//!   lost: they arrive once the right certificate is configured;
//! - rsyslog stopped for 30 s (`VIGIL_SIEM_PAUSE_SECS` to change it for a local run) during
//!   a burst of 10,000 events: every sequence number arrives, in order, duplicates only as
//!   a repeated run right after a reconnect;
//! - the forwarding process killed with SIGKILL mid-burst: after a restart, every stored
//!   event is delivered. The process is this test binary run again (`child_forwarder`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_config::{Config, SiemCollector, SiemConfig, SiemFormat};
use vigil_events::{
    Category, EventBus, EventQuery, EventStore, NewEvent, Severity, Source, SourceKind,
};
use vigil_siem::SiemForwarder;
use vigil_siem::format::rfc3339_micros;
use vigil_testkit::external_ca::{ExternalCa, Key, Leaf, Validity};
use vigil_testkit::rsyslog::{Driver, Received, Rsyslog, RsyslogOptions};

const SD: &str = "vigil@32473";
const ATTR: &str = "vigil-attr@32473";
const BOM: char = '\u{FEFF}';

struct Pki {
    _dir: tempfile::TempDir,
    ca: ExternalCa,
    server: Leaf,
    client: Leaf,
    intruder: Leaf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = ExternalCa::root(&dir.path().join("ca"), "SIEM test CA", Key::P256);
    let server = ca.leaf(
        "collector",
        Key::P256,
        "DNS:localhost,IP:127.0.0.1",
        Validity::Days(2),
    );
    let client = ca.leaf(
        "vigil-client",
        Key::P256,
        "DNS:vigil-client",
        Validity::Days(2),
    );
    let intruder = ca.leaf("intruder", Key::P256, "DNS:intruder", Validity::Days(2));
    for l in [&server, &client, &intruder] {
        std::fs::set_permissions(&l.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    Pki {
        _dir: dir,
        ca,
        server,
        client,
        intruder,
    }
}

fn rsyslog(p: &Pki) -> Rsyslog {
    rsyslog_with(p, Driver::Ossl)
}

fn rsyslog_with(p: &Pki, driver: Driver) -> Rsyslog {
    Rsyslog::start(&RsyslogOptions {
        ca: p.ca.root_cert(),
        cert: p.server.cert.clone(),
        key: p.server.key.clone(),
        permitted_peers: vec!["vigil-client".into()],
        driver,
    })
}

fn collector(name: &str, r: &Rsyslog, p: &Pki, client: &Leaf, format: SiemFormat) -> SiemCollector {
    SiemCollector {
        name: Some(name.into()),
        target: r.target(),
        server_name: None,
        ca_file: Some(p.ca.root_cert()),
        client_cert_file: Some(client.cert.clone()),
        client_key_file: Some(client.key.clone()),
        format: Some(format),
    }
}

fn siem(collectors: Vec<SiemCollector>) -> SiemConfig {
    SiemConfig {
        confirm_after: Duration::from_millis(300),
        max_backoff: Duration::from_secs(1),
        collectors,
        ..Default::default()
    }
}

fn bus(dir: &Path) -> Arc<EventBus> {
    EventBus::start(Arc::new(EventStore::open(dir).unwrap()), "vigil-test").unwrap()
}

fn security(i: usize) -> NewEvent {
    NewEvent::vigil(
        "vigil-test",
        "security.login_failed",
        Category::Security,
        Severity::Notice,
        format!("burst {i}"),
    )
    .attribute("user", format!("user{i}"))
}

/// Sequence numbers of the messages from collector stream `msgs`, in arrival order.
fn seqs(msgs: &[Received]) -> Vec<u64> {
    msgs.iter()
        .map(|m| m.param(SD, "seq").unwrap().parse().unwrap())
        .collect()
}

/// Checks the delivery contract on what arrived: every number 1..=n, in order, and a number
/// repeats only as part of a run that starts again at or before the next number after a
/// reconnect. Returns (duplicates, runs).
fn check_complete_in_order(got: &[u64], n: u64) -> (usize, usize) {
    let mut runs = 1;
    let mut max = 0;
    let mut dups = 0;
    for (i, &s) in got.iter().enumerate() {
        if i > 0 && s != got[i - 1] + 1 {
            // A new run: a resend after a reconnect starts at or before the next new number.
            assert!(
                s <= max + 1,
                "gap: {} follows {} (highest so far {max})",
                s,
                got[i - 1]
            );
            runs += 1;
        }
        if s <= max {
            dups += 1;
        }
        max = max.max(s);
    }
    assert_eq!(max, n, "the last sequence number");
    let mut seen = vec![false; n as usize + 1];
    for &s in got {
        seen[s as usize] = true;
    }
    let missing: Vec<usize> = (1..=n as usize).filter(|&s| !seen[s]).collect();
    assert!(missing.is_empty(), "missing sequence numbers: {missing:?}");
    (dups, runs)
}

/// A small CEF parser (header fields split on unescaped `|`, extension on unescaped `=`).
fn parse_cef(msg: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let body = msg.strip_prefix("CEF:").expect("CEF record");
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars();
    while header.len() < 7 {
        match chars.next().expect("7 header fields") {
            '\\' => cur.push(chars.next().expect("escaped character")),
            '|' => header.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let ext: String = chars.collect();
    // Keys are the words before unescaped '='; a value runs to the space before the next key.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut token = String::new();
    let mut it = ext.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                token.push('\\');
                token.push(it.next().unwrap());
            }
            '=' => {
                // The key is the last space-separated word of `token`.
                let (before, key) = match token.rfind(' ') {
                    Some(i) => (token[..i].to_owned(), token[i + 1..].to_owned()),
                    None => (String::new(), token.clone()),
                };
                if let Some(last) = pairs.last_mut() {
                    last.1 = before;
                }
                pairs.push((key, String::new()));
                token.clear();
            }
            c => token.push(c),
        }
    }
    if let Some(last) = pairs.last_mut() {
        last.1 = token;
    }
    let unescape = |v: &str| {
        let mut out = String::new();
        let mut it = v.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some(o) => out.push(o),
                    None => {}
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    (
        header,
        pairs.into_iter().map(|(k, v)| (k, unescape(&v))).collect(),
    )
}

#[test]
fn events_arrive_over_mutual_tls_parsed_field_by_field() {
    let p = pki();
    let r = rsyslog(&p);
    let data = tempfile::tempdir().unwrap();
    let bus = bus(data.path());
    let config = siem(vec![
        collector("text", &r, &p, &p.client, SiemFormat::Rfc5424),
        collector("cef", &r, &p, &p.client, SiemFormat::Cef),
    ]);
    let fwd = SiemForwarder::start(bus.clone(), &config, data.path())
        .unwrap()
        .expect("collectors are configured");
    let hostile = r#"a"b\c]d=e|f [x] é"#;
    let events = [
        NewEvent::vigil(
            "vigil-test",
            "security.login_failed",
            Category::Security,
            Severity::Notice,
            "bad password for bob \"quoted\" | piped",
        )
        .attribute("user", "bob")
        .attribute("address", "192.0.2.7")
        .attribute("note", hostile),
        NewEvent {
            source: Source::new(SourceKind::Syslog, "sw1.example"),
            ..NewEvent::vigil(
                "vigil-test",
                "syslog.dot1x_failure",
                Category::External,
                Severity::Error,
                "port Gi1/0/3 rejected 00:11:22:33:44:55 — Überwachung",
            )
            .camera("lobby")
            .attribute("interface", "Gi1/0/3")
            .attribute("a_key_that_is_much_longer_than_32_characters", "long")
        },
        // Not forwarded: below min_severity (warning) and not security or alarm.
        NewEvent::vigil(
            "vigil-test",
            "camera.connection_restored",
            Category::Camera,
            Severity::Info,
            "lobby is back",
        ),
        NewEvent::vigil(
            "vigil-test",
            "alarm.raised",
            Category::Alarm,
            Severity::Info,
            "door opened",
        ),
    ];
    for e in &events {
        bus.publish(e.clone()).unwrap();
    }
    bus.flush();
    let stored = {
        let mut v = bus.store().query(&EventQuery::default()).unwrap().events;
        v.reverse();
        v
    };
    let forwarded: Vec<_> = stored
        .iter()
        .filter(|e| e.event.kind != "camera.connection_restored")
        .collect();
    let got = r.wait_for(Duration::from_secs(30), |g| g.len() >= 6);
    assert_eq!(
        got.len(),
        6,
        "3 events to 2 collectors: {got:#?}\n{}",
        r.log()
    );
    let text: Vec<&Received> = got.iter().filter(|m| !m.msg.starts_with("CEF:")).collect();
    let cef: Vec<&Received> = got.iter().filter(|m| m.msg.starts_with("CEF:")).collect();
    assert_eq!((text.len(), cef.len()), (3, 3));
    for (i, (m, e)) in text.iter().zip(&forwarded).enumerate() {
        let ev = &e.event;
        assert_eq!(m.pri, 20 * 8 + u16::from(ev.severity.code()), "local4");
        assert_eq!(m.version, "1");
        assert_eq!(m.timestamp, rfc3339_micros(ev.time_us));
        assert_eq!(m.hostname, "vigil-test");
        assert_eq!(m.app_name, "vigil");
        assert_eq!(m.procid, "-");
        assert_eq!(m.msgid, ev.kind);
        assert_eq!(m.param(SD, "id"), Some(e.id.to_string().as_str()));
        assert_eq!(m.param(SD, "seq"), Some((i + 1).to_string().as_str()));
        assert_eq!(m.param(SD, "category"), Some(ev.category.as_str()));
        assert_eq!(m.param(SD, "source_kind"), Some(ev.source.kind.as_str()));
        assert_eq!(m.param(SD, "source"), Some(ev.source.name.as_str()));
        assert_eq!(m.param(SD, "camera"), ev.camera.as_deref());
        assert_eq!(
            m.param(SD, "received"),
            Some(rfc3339_micros(e.received_us).as_str())
        );
        assert_eq!(m.msg, format!("{BOM}{}", ev.message));
        for (k, v) in &ev.attributes {
            let name = vigil_siem::format::sd_name(k);
            assert_eq!(m.param(ATTR, &name), Some(v.as_str()), "{k} as {name}");
        }
    }
    assert_eq!(
        text[0].param(ATTR, "note"),
        Some(hostile),
        "escaping survives rsyslog's parser"
    );
    assert!(text[1].param(ATTR, "a_key_that_is_much_lon~").is_none());
    assert_eq!(text[1].sd[ATTR].len(), 2);
    // CEF, parsed independently.
    for (i, (m, e)) in cef.iter().zip(&forwarded).enumerate() {
        let (h, ext) = parse_cef(&m.msg);
        let ev = &e.event;
        assert_eq!(h[..4], ["0", "Vigil", "Vigil", env!("CARGO_PKG_VERSION")]);
        assert_eq!(h[4], ev.kind);
        assert_eq!(h[5], ev.message);
        assert_eq!(
            h[6],
            vigil_siem::format::cef_severity(ev.severity).to_string()
        );
        assert_eq!(ext["cn1"], (i + 1).to_string());
        assert_eq!(ext["externalId"], e.id.to_string());
        assert_eq!(ext["msg"], ev.message);
        assert_eq!(ext["rt"], (ev.time_us / 1000).to_string());
        assert_eq!(ext["dvchost"], "vigil-test");
        assert_eq!(m.param(SD, "seq"), Some((i + 1).to_string().as_str()));
    }
    let (_, ext0) = parse_cef(&cef[0].msg);
    assert_eq!(ext0["suser"], "bob");
    assert_eq!(ext0["src"], "192.0.2.7");
    assert_eq!(ext0["cs3Label"], "note");
    assert_eq!(ext0["cs3"], hostile);
    let (_, ext1) = parse_cef(&cef[1].msg);
    assert_eq!(ext1["shost"], "sw1.example");
    assert_eq!(ext1["cs1"], "lobby");
    // Both collectors confirm delivery of all three.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fwd.status().iter().any(|s| s.delivered_seq < 3) {
        assert!(Instant::now() < deadline, "{:?}", fwd.status());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fwd.status().iter().all(|s| s.connected && s.backlog == 0));
}

/// On rsyslog's GnuTLS driver: Debian 12's `ossl` driver lets a wrong name in (rsyslog issue
/// #6350, see vigil_testkit::rsyslog), which would make this test prove nothing.
#[test]
fn a_client_certificate_with_the_wrong_name_is_refused_and_nothing_is_lost() {
    let p = pki();
    let r = rsyslog_with(&p, Driver::Gtls);
    let data = tempfile::tempdir().unwrap();
    let bus = bus(data.path());
    let wrong = siem(vec![collector(
        "soc",
        &r,
        &p,
        &p.intruder,
        SiemFormat::Rfc5424,
    )]);
    let mut fwd = SiemForwarder::start(bus.clone(), &wrong, data.path())
        .unwrap()
        .unwrap();
    for i in 0..20 {
        bus.publish(security(i)).unwrap();
    }
    // Several connection attempts (back-off 250 ms, 500 ms, 1 s, 1 s, ...).
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        r.received().is_empty(),
        "rsyslog accepted a client named 'intruder': {:?}",
        r.received()
    );
    let st = &fwd.status()[0];
    assert_eq!(st.delivered_seq, 0, "{st:?}");
    assert_eq!(st.backlog, 20);
    assert!(st.connects >= 2, "it kept trying: {st:?}");
    assert!(r.log().contains("not permitted"), "{}", r.log());
    fwd.stop();
    drop(fwd);
    // The same spool with the right certificate: all 20 arrive, in order, once.
    let right = siem(vec![collector(
        "soc",
        &r,
        &p,
        &p.client,
        SiemFormat::Rfc5424,
    )]);
    let fwd = SiemForwarder::start(bus.clone(), &right, data.path())
        .unwrap()
        .unwrap();
    let got = r.wait_for(Duration::from_secs(30), |g| g.len() >= 20);
    assert_eq!(seqs(&got), (1..=20).collect::<Vec<_>>());
    drop(fwd);
}

#[test]
fn a_collector_down_for_30s_during_a_burst_gets_every_event_in_order() {
    const N: usize = 10_000;
    let pause = std::env::var("VIGIL_SIEM_PAUSE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30u64);
    let p = pki();
    let mut r = rsyslog(&p);
    let data = tempfile::tempdir().unwrap();
    let bus = bus(data.path());
    let config = siem(vec![collector(
        "soc",
        &r,
        &p,
        &p.client,
        SiemFormat::Rfc5424,
    )]);
    let fwd = SiemForwarder::start(bus.clone(), &config, data.path())
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let publisher = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            // About 2,500 events/s: the burst is still running when rsyslog stops.
            for i in 0..N {
                bus.publish(security(i)).unwrap();
                if i % 100 == 99 {
                    std::thread::sleep(Duration::from_millis(40));
                }
            }
            bus.flush();
        })
    };
    let before = r.wait_for(Duration::from_secs(60), |g| g.len() >= 2000);
    assert!(before.len() >= 2000, "{}", r.log());
    r.stop();
    let at_stop = r.received().len();
    std::thread::sleep(Duration::from_secs(pause));
    publisher.join().unwrap();
    assert_eq!(
        bus.stats()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let spooled = fwd.spool().next_seq() - 1;
    assert_eq!(
        spooled, N as u64,
        "every event was spooled while rsyslog was down"
    );
    r.restart();
    let got = r.wait_for(Duration::from_secs(120), |g| seqs(g).contains(&(N as u64)));
    let got_seqs = seqs(&got);
    let (dups, runs) = check_complete_in_order(&got_seqs, N as u64);
    // Each message is the event its number was given to.
    for m in &got {
        let seq: usize = m.param(SD, "seq").unwrap().parse().unwrap();
        assert_eq!(m.msg, format!("{BOM}burst {}", seq - 1));
    }
    let st = &fwd.status()[0];
    eprintln!(
        "{N} events, rsyslog stopped after {at_stop} for {pause} s: {} messages received, \
         {dups} duplicates in {runs} runs, {} connections, {:.1} s in all",
        got.len(),
        st.connects,
        started.elapsed().as_secs_f64()
    );
    assert!(
        runs <= st.connects as usize,
        "a new run only after a reconnect"
    );
    assert!(
        dups as u64 <= st.resent,
        "duplicates only of records sent again"
    );
}

/// Runs as the forwarding process of the kill test when `VIGIL_SIEM_CHILD_CONFIG` is set
/// (otherwise it does nothing): loads the config, publishes `VIGIL_SIEM_CHILD_PUBLISH`
/// security events at about 2,500/s, and forwards until it is killed.
#[test]
fn child_forwarder() {
    let Ok(config) = std::env::var("VIGIL_SIEM_CHILD_CONFIG") else {
        return;
    };
    let publish: usize = std::env::var("VIGIL_SIEM_CHILD_PUBLISH")
        .unwrap()
        .parse()
        .unwrap();
    let config = Config::load(Path::new(&config)).unwrap();
    let bus = bus(&config.data_dir);
    let _fwd = SiemForwarder::start(bus.clone(), &config.siem, &config.data_dir)
        .unwrap()
        .unwrap();
    for i in 0..publish {
        bus.publish(security(i)).unwrap();
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(40));
        }
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn spawn_child(config: &Path, publish: usize) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_forwarder",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VIGIL_SIEM_CHILD_CONFIG", config)
        .env("VIGIL_SIEM_CHILD_PUBLISH", publish.to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_forwarder_killed_mid_burst_delivers_the_spool_after_restart() {
    const N: usize = 10_000;
    let p = pki();
    let mut r = rsyslog(&p);
    let data = tempfile::tempdir().unwrap();
    let config_path: PathBuf = data.path().join("vigil.toml");
    std::fs::write(
        &config_path,
        format!(
            "data_dir = \"data\"\n[siem]\nconfirm_after = \"300ms\"\nmax_backoff = \"1s\"\n\
             [[siem.collectors]]\nname = \"soc\"\ntarget = \"{}\"\nca_file = \"{}\"\n\
             client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
            r.target(),
            p.ca.root_cert().display(),
            p.client.cert.display(),
            p.client.key.display(),
        ),
    )
    .unwrap();
    std::fs::create_dir(data.path().join("data")).unwrap();
    let mut child = spawn_child(&config_path, N);
    let before = r.wait_for(Duration::from_secs(60), |g| g.len() >= 1500);
    assert!(before.len() >= 1500, "{}", r.log());
    // The collector goes away, so what the burst adds now stays in the spool; then the
    // forwarding process is killed in the middle of it.
    r.stop();
    let at_stop = r.received().len();
    std::thread::sleep(Duration::from_secs(1));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let store = EventStore::open(&data.path().join("data")).unwrap();
    let stored = store.last_id().unwrap() as u64;
    assert!(
        stored < N as u64,
        "killed mid-burst: {stored} of {N} events were stored"
    );
    assert!(
        stored >= at_stop as u64 + 1000,
        "{stored} stored, {at_stop} received: the spool holds a backlog at the kill"
    );
    r.restart();
    let mut child = spawn_child(&config_path, 0);
    let got = r.wait_for(Duration::from_secs(120), |g| seqs(g).contains(&stored));
    child.kill().unwrap();
    child.wait().unwrap();
    let (dups, runs) = check_complete_in_order(&seqs(&got), stored);
    for m in &got {
        let seq: usize = m.param(SD, "seq").unwrap().parse().unwrap();
        assert_eq!(m.msg, format!("{BOM}burst {}", seq - 1));
        assert_eq!(m.param(SD, "id"), Some(seq.to_string().as_str()));
    }
    eprintln!(
        "killed with {at_stop} received and {stored} stored; after restart {} messages, \
         {dups} duplicates in {runs} runs",
        got.len()
    );
}
