//! The listeners over real sockets on loopback: `openssl s_client` with and without a Vigil
//! client certificate, allow-listed and refused senders (and their reports), hostile input,
//! limits, plaintext UDP, and a clean stop.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Harness, s_client, send, settings, until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use vigil_events::{Category, Severity, SourceKind};
use vigil_intake::{Input, InputStats, Limits};
use vigil_testkit::external_ca::{ExternalCa, Key, Validity};

const WAIT: Duration = Duration::from_secs(10);

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    InputStats::get(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_with_a_vigil_client_certificate_sends_text_and_json_events() {
    let h = Harness::start(settings(&[Input::GenericTls], &[], Limits::default())).await;
    let (cert, key) = h.client_files("acs-1");
    let (ok, out) = s_client(
        h.dir.path(),
        h.addr(Input::GenericTls),
        &h.ca_file(),
        Some((&cert, &key)),
        b"Door 3 forced open\r\n{\"kind\":\"door.forced\",\"message\":\"Door 3\",\"severity\":\"warning\",\"camera\":\"lobby\",\"attributes\":{\"door\":3}}\nlast line without LF",
    );
    assert!(ok, "{out}");
    let e = h.wait_events(&["generic", "generic."], 3, WAIT).await;
    assert_eq!(e.len(), 3, "{e:?}");
    let text = &e[0].event;
    assert_eq!(text.kind, "generic");
    assert_eq!(text.message, "Door 3 forced open");
    assert_eq!(text.source.kind, SourceKind::External);
    assert_eq!(text.source.name, "acs-1", "named by its certificate");
    assert_eq!(text.category, Category::External);
    assert_eq!(text.attributes["auth"], "certificate");
    assert_eq!(text.attributes["certificate"], "acs-1");
    assert_eq!(text.attributes["peer"], "127.0.0.1");
    let json = &e[1].event;
    assert_eq!(json.kind, "generic.door.forced");
    assert_eq!(json.severity, Severity::Warning);
    assert_eq!(json.camera.as_deref(), Some("lobby"));
    assert_eq!(json.attributes["door"], "3");
    assert_eq!(e[2].event.message, "last line without LF");
    let s = h.intake().stats(Input::GenericTls);
    assert_eq!(get(&s.events), 3);
    assert_eq!(get(&s.refused), 0);
    assert!(h.events(&["security."]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_only_an_allow_listed_address_gets_in() {
    // Not allow-listed: refused, and reported as a security event.
    let h = Harness::start(settings(
        &[Input::GenericTls],
        &["10.0.0.0/8"],
        Limits::default(),
    ))
    .await;
    let ca = h.ca_file();
    for _ in 0..3 {
        s_client(
            h.dir.path(),
            h.addr(Input::GenericTls),
            &ca,
            None,
            b"forged event\n",
        );
    }
    let s = h.intake().stats(Input::GenericTls);
    assert!(until(WAIT, || get(&s.refused) == 3).await);
    let refused = h
        .wait_events(&["security.event_source_refused"], 1, WAIT)
        .await;
    assert_eq!(refused.len(), 1, "reported once per interval: {refused:?}");
    let r = &refused[0].event;
    assert_eq!(r.category, Category::Security);
    assert_eq!(r.source.kind, SourceKind::Vigil);
    assert_eq!(r.attributes["address"], "127.0.0.1");
    assert_eq!(r.attributes["reason"], "no_client_certificate");
    assert_eq!(r.attributes["listener"], "generic_tls");
    assert!(h.events(&["generic"]).is_empty(), "nothing got in");
    // The next report after the interval would carry the two held back.
    assert_eq!(h.intake().reports(), (1, 2));

    // Allow-listed: in without a certificate, named by its address.
    let h = Harness::start(settings(
        &[Input::GenericTls],
        &["127.0.0.0/8"],
        Limits::default(),
    ))
    .await;
    let (ok, out) = s_client(
        h.dir.path(),
        h.addr(Input::GenericTls),
        &h.ca_file(),
        None,
        b"from the allow-list\n",
    );
    assert!(ok, "{out}");
    let e = h.wait_events(&["generic"], 1, WAIT).await;
    assert_eq!(e[0].event.source.name, "127.0.0.1");
    assert_eq!(e[0].event.attributes["auth"], "allow_list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_and_required_means_required() {
    let mut st = settings(&[Input::GenericTls], &["127.0.0.1"], Limits::default());
    st.require_client_cert = true;
    let h = Harness::start(st).await;
    let other = ExternalCa::root(&h.dir.path().join("other"), "Other CA", Key::P256);
    let leaf = other.leaf("acs-x", Key::P256, "DNS:acs-x", Validity::Days(2));
    // With TLS 1.3 the client may finish before the server checks its certificate, so
    // openssl's exit status says nothing; the refusal is what counts.
    s_client(
        h.dir.path(),
        h.addr(Input::GenericTls),
        &h.ca_file(),
        Some((&leaf.cert, &leaf.key)),
        b"forged\n",
    );

    let r = h
        .wait_events(&["security.event_source_refused"], 1, WAIT)
        .await;
    assert_eq!(r[0].event.attributes["reason"], "bad_client_certificate");
    // Allow-listed but without a certificate, while certificates are required.
    let dir = tempfile::tempdir().unwrap();
    s_client(
        dir.path(),
        h.addr(Input::GenericTls),
        &h.ca_file(),
        None,
        b"x\n",
    );
    let s = h.intake().stats(Input::GenericTls);
    assert!(until(WAIT, || get(&s.refused) == 2).await);
    assert!(h.events(&["generic"]).is_empty());
    // With a Vigil certificate it works.
    let (cert, key) = h.client_files("acs-2");
    let (ok, out) = s_client(
        h.dir.path(),
        h.addr(Input::GenericTls),
        &h.ca_file(),
        Some((&cert, &key)),
        b"ok\n",
    );
    assert!(ok, "{out}");
    assert_eq!(h.wait_events(&["generic"], 1, WAIT).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_counted_and_the_connection_or_server_goes_on() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let h = Harness::start(settings(
        &[Input::GenericTls, Input::SyslogTls],
        &[],
        limits,
    ))
    .await;
    // A huge line, binary, invalid UTF-8, bad JSON, then a good line: only the good one is
    // an event; the connection survives all of it.
    let mut c = h.tls(Input::GenericTls, Some("fuzzer")).await;
    send(&mut c, &vec![b'A'; 100_000]).await;
    send(&mut c, b"\n\x00\x01\x02\x1b[31m binary\n").await;
    send(&mut c, b"caf\xc3\x28 invalid utf-8\n").await;
    send(&mut c, b"{\"message\": \n").await;
    send(&mut c, b"still here\n").await;
    let e = h.wait_events(&["generic"], 2, WAIT).await;
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        !e[0].event.message.contains('\u{1b}'),
        "control characters replaced"
    );
    assert_eq!(e[1].event.message, "still here");
    let s = h.intake().stats(Input::GenericTls);
    let errors = s.errors();
    assert_eq!(errors.get("line_too_long"), Some(&1), "{errors:?}");
    assert_eq!(errors.get("invalid_utf8"), Some(&1), "{errors:?}");
    assert_eq!(errors.get("invalid_json"), Some(&1), "{errors:?}");
    drop(c);

    // Syslog with the wrong framing: a length that is not one, then a frame over the limit.
    let mut c = h.tls(Input::SyslogTls, Some("sw-1")).await;
    send(&mut c, b"99999999999 <13>1 - - - - - - x").await;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, c.read_to_end(&mut rest)).await;
    assert!(n.is_ok(), "the server closes a stream it cannot frame");
    let s = h.intake().stats(Input::SyslogTls);
    assert!(
        until(WAIT, || s.errors_total() >= 1).await,
        "{:?}",
        s.errors()
    );
    let mut c = h.tls(Input::SyslogTls, Some("sw-1")).await;
    send(&mut c, format!("9000 {}", "x".repeat(9000)).as_bytes()).await;
    let _ = tokio::time::timeout(WAIT, c.read_to_end(&mut rest)).await;
    assert!(
        until(WAIT, || s.errors_total() >= 2).await,
        "{:?}",
        s.errors()
    );

    // A truncated TLS handshake: half a ClientHello, then silence; then a close.
    let mut t = TcpStream::connect(h.addr(Input::GenericTls)).await.unwrap();
    t.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .await
    .unwrap();
    let g = h.intake().stats(Input::GenericTls);
    let before = get(&g.handshake_failed);
    assert!(
        until(WAIT, || get(&g.handshake_failed) == before + 1).await,
        "handshake deadline"
    );
    let mut t = TcpStream::connect(h.addr(Input::GenericTls)).await.unwrap();
    t.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    assert!(until(WAIT, || get(&g.handshake_failed) == before + 2).await);
    assert!(g.errors().contains_key("tls_handshake"), "{:?}", g.errors());

    // Slowloris: a byte every 300 ms, never a complete line: closed after the idle timeout.
    let mut c = h.tls(Input::GenericTls, Some("slow")).await;
    let start = Instant::now();
    let closed = loop {
        if c.write_all(b"x").await.is_err() || c.flush().await.is_err() {
            break true;
        }
        if get(&g.timed_out) >= 1 {
            break true;
        }
        if start.elapsed() > WAIT {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(closed && get(&g.timed_out) == 1, "slowloris closed");
    assert!(start.elapsed() < Duration::from_secs(5));
    // Errors are reported (once per sender and interval), and the server still works.
    let r = h.wait_events(&["events.input_errors"], 1, WAIT).await;
    assert_eq!(r[0].event.attributes["address"], "127.0.0.1");
    let mut c = h.tls(Input::GenericTls, Some("after")).await;
    send(&mut c, b"fine\n").await;
    assert_eq!(h.wait_events(&["generic"], 3, WAIT).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_over_its_rate_is_slowed_down_and_reported_once() {
    let limits = Limits {
        rate_per_source: 20,
        burst: 5,
        ..Limits::default()
    };
    let h = Harness::start(settings(&[Input::GenericTls], &[], limits)).await;
    let mut c = h.tls(Input::GenericTls, Some("chatty")).await;
    let start = Instant::now();
    let lines: String = (0..45).map(|i| format!("event {i}\n")).collect();
    send(&mut c, lines.as_bytes()).await;
    let e = h.wait_events(&["generic"], 45, WAIT).await;
    let took = start.elapsed();
    assert_eq!(
        e.len(),
        45,
        "nothing lost over TCP: the sender is slowed down"
    );
    // 5 at once, then 40 at 20/s.
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    let t = h.events(&["events.source_throttled"]);
    assert_eq!(t.len(), 1, "one report per interval: {t:?}");
    assert_eq!(t[0].event.attributes["limit"], "rate");
    assert_eq!(t[0].event.attributes["action"], "slowed down");
    assert!(get(&h.intake().stats(Input::GenericTls).throttled) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_source_are_limited() {
    let limits = Limits {
        max_connections_per_source: 2,
        ..Limits::default()
    };
    let h = Harness::start(settings(&[Input::GenericTls], &[], limits)).await;
    let _a = h.tls(Input::GenericTls, Some("a")).await;
    let _b = h.tls(Input::GenericTls, Some("b")).await;
    assert!(until(WAIT, || h.intake().connections() == 2).await);
    let mut third = TcpStream::connect(h.addr(Input::GenericTls)).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(WAIT, third.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "closed at once");
    let t = h.wait_events(&["events.source_throttled"], 1, WAIT).await;
    assert_eq!(t[0].event.attributes["limit"], "connections_per_source");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_udp_and_tcp_take_allow_listed_senders_only() {
    let h = Harness::start(settings(
        &[Input::GenericUdp, Input::SyslogUdp, Input::SyslogTcp],
        &["127.0.0.1"],
        Limits::default(),
    ))
    .await;
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.send_to(
        b"{\"message\":\"udp event\",\"kind\":\"panel.alarm\"}\n",
        h.addr(Input::GenericUdp),
    )
    .await
    .unwrap();
    u.send_to(
        b"<189>42: sw-lobby: *Mar  1 00:01:02.345 UTC: %LINK-3-UPDOWN: Interface GigabitEthernet1/0/3, changed state to down",
        h.addr(Input::SyslogUdp),
    )
    .await
    .unwrap();
    u.send_to(b"\xff\xfe\x00", h.addr(Input::SyslogUdp))
        .await
        .unwrap();
    let mut t = TcpStream::connect(h.addr(Input::SyslogTcp)).await.unwrap();
    t.write_all(b"<13>1 2026-12-07T10:00:00Z host app - - - over tcp\n")
        .await
        .unwrap();
    let e = h.wait_events(&["generic.panel.alarm"], 1, WAIT).await;
    assert_eq!(e[0].event.attributes["transport"], "udp");
    let s = h.wait_events(&["syslog."], 2, WAIT).await;
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(
        s.iter().any(|e| e.event.kind == "syslog.link_down"),
        "{s:?}"
    );
    assert!(s.iter().any(|e| e.event.message == "over tcp"), "{s:?}");
    assert_eq!(
        h.intake().stats(Input::SyslogUdp).errors_total(),
        1,
        "the binary datagram"
    );

    // The same listeners with another allow-list: refused and reported.
    let h = Harness::start(settings(
        &[Input::GenericUdp, Input::SyslogTcp],
        &["192.0.2.0/24"],
        Limits::default(),
    ))
    .await;
    u.send_to(b"not allowed\n", h.addr(Input::GenericUdp))
        .await
        .unwrap();
    let mut t = TcpStream::connect(h.addr(Input::SyslogTcp)).await.unwrap();
    let _ = t.write_all(b"<13>1 - - - - - - refused\n").await;
    let s = h.intake().stats(Input::GenericUdp);
    assert!(until(WAIT, || get(&s.refused) == 1).await);
    assert!(
        until(WAIT, || get(&h.intake().stats(Input::SyslogTcp).refused)
            == 1)
        .await
    );
    let r = h
        .wait_events(&["security.event_source_refused"], 2, WAIT)
        .await;
    assert_eq!(r.len(), 2, "one per listener: {r:?}");
    assert!(
        r.iter()
            .all(|e| e.event.attributes["reason"] == "not_allow_listed")
    );
    assert!(h.events(&["generic", "syslog."]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_with_connections_open() {
    let mut h = Harness::start(settings(
        &[Input::GenericTls, Input::SyslogTls],
        &[],
        Limits::default(),
    ))
    .await;
    let mut c = h.tls(Input::SyslogTls, Some("sw")).await;
    send(&mut c, b"<13>1 - - - - - - before stop\n").await;
    assert_eq!(h.wait_events(&["syslog."], 1, WAIT).await.len(), 1);
    let addr = h.addr(Input::GenericTls);
    let start = Instant::now();
    h.stop().await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let mut rest = Vec::new();
    let r = tokio::time::timeout(WAIT, c.read_to_end(&mut rest)).await;
    assert!(r.is_ok(), "the open connection was closed");
    assert!(TcpStream::connect(addr).await.is_err(), "nothing listens");
    assert!(h.bus.stats().published.load(Ordering::Relaxed) >= 1);
}
