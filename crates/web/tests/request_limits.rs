//! What a client that has not authenticated can make the listener wait for or hold, over real
//! TLS sockets: a declared body above the limit is refused at once (HTTP/1.1 and HTTP/2), a
//! body that trickles in or never comes is cut at its deadline, a connection that sends no
//! request is closed at the request deadline, and one address cannot hold more than its share
//! of unauthenticated connections. Answers themselves, however long, are never cut.
//! Deadlines are shortened through `ConnectionLimits` so the tests take seconds.

mod common;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use common::{Harness, closed_within, read_answer, run};
use tokio::io::AsyncWriteExt as _;
use vigil_access::{CameraScope, Role};
use vigil_web::ConnectionLimits;

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const OTHER_LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const H1: &[&[u8]] = &[b"http/1.1"];

fn limits(body: u64, request: u64, per_address: usize) -> ConnectionLimits {
    ConnectionLimits {
        body_timeout: Duration::from_secs(body),
        request_timeout: Duration::from_secs(request),
        unauthenticated_per_address: per_address,
    }
}

/// A JSON POST's head declaring `length` body bytes.
fn post_head(path: &str, length: u64, extra: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A login request's head declaring `length` body bytes.
fn login_head(length: u64, extra: &str) -> Vec<u8> {
    post_head("/api/v1/session", length, extra)
}

fn assert_error(a: &common::RawAnswer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.head);
    let body = a.json();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    // Answered through the router like every error: the security headers are there.
    assert_eq!(
        a.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
}

#[tokio::test]
async fn a_declared_body_above_the_limit_is_refused_before_it_is_sent() {
    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    // Anonymous (login) and authenticated routes alike; with `Expect: 100-continue` the
    // client would only send the body after a 100, which must not come.
    for (path, extra) in [
        ("/api/v1/session", ""),
        ("/api/v1/session", "Expect: 100-continue\r\n"),
        (
            "/api/v1/users",
            "Authorization: Bearer vgt_0000000000000000_x\r\n",
        ),
    ] {
        let mut tls = h.tls_connect(addr, LOCAL, H1).await.unwrap();
        let sent = Instant::now();
        tls.write_all(&post_head(path, 10_000_000_000, extra))
            .await
            .unwrap();
        let a = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut tls))
            .await
            .expect("answered without the body")
            .unwrap();
        let took = sent.elapsed();
        eprintln!("413 for {path} {extra:?} after {took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
        assert!(a.head.starts_with("HTTP/1.1 413"), "{}", a.head);
        assert_error(&a, 413, "payload_too_large");
        assert_eq!(a.header("connection").as_deref(), Some("close"));
        assert!(
            closed_within(&mut tls, Duration::from_secs(2)).await,
            "the connection stays open after refusing its body"
        );
    }
    // At the limit it is not refused for its length (the body then arrives and is read).
    let mut tls = h.tls_connect(addr, LOCAL, H1).await.unwrap();
    let body =
        serde_json::to_vec(&serde_json::json!({"username": "admin", "password": "x"})).unwrap();
    tls.write_all(&login_head(body.len() as u64, ""))
        .await
        .unwrap();
    tls.write_all(&body).await.unwrap();
    let a = read_answer(&mut tls).await.unwrap();
    assert_error(&a, 401, "invalid_credentials");

    // The same check in the router itself (no socket).
    let a = h
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/session")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, "1048577")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.code(), "payload_too_large");
}

/// What a server sent on one HTTP/2 stream, read frame by frame off the connection.
#[derive(Debug, Default)]
struct H2Stream {
    headers: bool,
    data: Vec<u8>,
    end_stream: bool,
    reset: Option<u32>,
    goaway: Option<u32>,
}

/// A header block of literal fields (no indexing, no Huffman): all a server must decode.
fn hpack_literals(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        assert!(name.len() < 127 && value.len() < 127);
        block.push(0);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Sends the client preface and one request's HEADERS on stream 1 (the body left open:
/// nothing of it is sent), then reads what comes back for that stream until it ends, the
/// connection ends or `limit` passes.
async fn h2_request_without_body<S>(
    stream: &mut S,
    fields: &[(&str, &str)],
    limit: Duration,
) -> H2Stream
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt as _;
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(4, 0, 0, &[]));
    // END_HEADERS, not END_STREAM: a body is declared and never sent.
    out.extend(h2_frame(1, 0x4, 1, &hpack_literals(fields)));
    stream.write_all(&out).await.unwrap();
    let mut got = H2Stream::default();
    let _ = tokio::time::timeout(limit, async {
        loop {
            let mut head = [0u8; 9];
            if stream.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            if stream.read_exact(&mut payload).await.is_err() {
                return;
            }
            match (kind, id) {
                // The server's SETTINGS want an acknowledgement.
                (4, 0) if flags & 1 == 0 => {
                    let _ = stream.write_all(&h2_frame(4, 1, 0, &[])).await;
                }
                (7, 0) => {
                    got.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
                    return;
                }
                (1, 1) => got.headers = true,
                (0, 1) => got.data.extend_from_slice(&payload),
                (3, 1) => {
                    got.reset = Some(u32::from_be_bytes(payload[..4].try_into().unwrap()));
                    return;
                }
                _ => {}
            }
            if id == 1 && flags & 1 != 0 && (kind == 0 || kind == 1) {
                got.end_stream = true;
            }
        }
    })
    .await;
    got
}

/// Raw frames rather than curl: they send the headers and provably nothing of the body, and
/// curl 7.88 reports the `RST_STREAM(NO_ERROR)` that follows an early answer during an upload
/// as an error and drops the answer.
#[tokio::test]
async fn http2_declared_body_above_the_limit_is_refused_without_the_body() {
    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    let mut tls = h.tls_connect(addr, LOCAL, &[b"h2"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let sent = Instant::now();
    let got = h2_request_without_body(
        &mut tls,
        &[
            (":method", "POST"),
            (":scheme", "https"),
            (":path", "/api/v1/session"),
            (":authority", "localhost"),
            ("content-type", "application/json"),
            ("content-length", "10000000000"),
        ],
        Duration::from_secs(5),
    )
    .await;
    let took = sent.elapsed();
    eprintln!(
        "HTTP/2 answer after {took:?}: {got:?} {}",
        String::from_utf8_lossy(&got.data)
    );
    assert!(got.headers && got.end_stream, "{got:?}");
    let body: serde_json::Value = serde_json::from_slice(&got.data).unwrap();
    assert_eq!(body["code"], "payload_too_large", "{body}");
    // After a complete answer, only NO_ERROR ("stop sending, keep the answer") may follow.
    assert!(matches!(got.reset, None | Some(0)), "{got:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
}

#[tokio::test]
async fn a_body_sent_one_byte_a_second_is_cut_at_the_body_deadline() {
    let h = Harness::new();
    h.state.listeners.set_limits(limits(2, 30, 128));
    let (addr, _) = h.serve(false).await;
    let tls = h.tls_connect(addr, LOCAL, H1).await.unwrap();
    let (mut rx, mut tx) = tokio::io::split(tls);
    tx.write_all(&login_head(100, "")).await.unwrap();
    let sent = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if tx.write_all(b" ").await.is_err() || tx.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let a = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut rx))
        .await
        .expect("cut within the deadline")
        .unwrap();
    let took = sent.elapsed();
    eprintln!("trickling body answered {} after {took:?}", a.status);
    assert_error(&a, 408, "request_timeout");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    assert!(closed_within(&mut rx, Duration::from_secs(2)).await);
    trickle.abort();
}

#[tokio::test]
async fn headers_without_their_body_are_cut_at_the_body_deadline() {
    let h = Harness::new();
    h.state.listeners.set_limits(limits(2, 30, 128));
    let (addr, _) = h.serve(false).await;
    let mut tls = h.tls_connect(addr, LOCAL, H1).await.unwrap();
    tls.write_all(&login_head(100, "")).await.unwrap();
    let sent = Instant::now();
    let a = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut tls))
        .await
        .expect("cut within the deadline")
        .unwrap();
    let took = sent.elapsed();
    eprintln!("missing body answered {} after {took:?}", a.status);
    assert_error(&a, 408, "request_timeout");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    assert!(closed_within(&mut tls, Duration::from_secs(2)).await);

    // HTTP/2: the stream gets the same answer and the connection stays usable.
    let mut tls = h.tls_connect(addr, LOCAL, &[b"h2"]).await.unwrap();
    let sent = Instant::now();
    let got = h2_request_without_body(
        &mut tls,
        &[
            (":method", "POST"),
            (":scheme", "https"),
            (":path", "/api/v1/session"),
            (":authority", "localhost"),
            ("content-type", "application/json"),
            ("content-length", "100"),
        ],
        Duration::from_secs(10),
    )
    .await;
    let took = sent.elapsed();
    eprintln!("HTTP/2 missing body: {got:?} after {took:?}");
    assert!(got.headers && got.end_stream, "{got:?}");
    let body: serde_json::Value = serde_json::from_slice(&got.data).unwrap();
    assert_eq!(body["code"], "request_timeout", "{body}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(3500),
        "{took:?}"
    );
}

#[tokio::test]
async fn the_first_request_must_arrive_within_the_request_deadline() {
    let h = Harness::new();
    // The body deadline alone would allow 30 s: the request deadline (from accept) is
    // what cuts this first request.
    h.state.listeners.set_limits(limits(30, 2, 128));
    let (addr, _) = h.serve(false).await;
    let connected = Instant::now();
    let mut tls = h.tls_connect(addr, LOCAL, H1).await.unwrap();
    tls.write_all(&login_head(100, "")).await.unwrap();
    let a = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut tls))
        .await
        .expect("cut within the deadline")
        .unwrap();
    let took = connected.elapsed();
    assert_error(&a, 408, "request_timeout");
    assert!(took < Duration::from_millis(3500), "{took:?}");

    // HTTP/2 has no header deadline in hyper: a connection that never sends a request (not
    // even the preface) is closed at the request deadline all the same.
    let connected = Instant::now();
    let mut idle = h.tls_connect(addr, LOCAL, &[b"h2"]).await.unwrap();
    assert_eq!(idle.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)).await,
        "an idle HTTP/2 connection stays open"
    );
    let took = connected.elapsed();
    eprintln!("idle HTTP/2 connection closed after {took:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(3500),
        "{took:?}"
    );
}

/// An answer streamed in `CHUNKS` pieces `GAP` apart, with its length declared.
const CHUNKS: usize = 8;
const GAP: Duration = Duration::from_millis(400);
const CHUNK: &[u8] = b"0123456789abcdef";

fn slow_answer(prefix: Vec<u8>) -> Response {
    let total = prefix.len() + CHUNKS * CHUNK.len();
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let prefix = prefix.clone();
        async move {
            if i > CHUNKS {
                return None;
            }
            if i == 0 {
                return Some((Ok::<_, Infallible>(bytes::Bytes::from(prefix)), 1));
            }
            tokio::time::sleep(GAP).await;
            Some((Ok(bytes::Bytes::from_static(CHUNK)), i + 1))
        }
    });
    Response::builder()
        .header(header::CONTENT_LENGTH, total)
        .body(Body::from_stream(stream))
        .unwrap()
}

#[tokio::test]
async fn answers_outlast_every_deadline() {
    let h = Harness::new();
    // Every request deadline (1 s) is shorter than the answers (3.2 s).
    h.state.listeners.set_limits(limits(1, 1, 128));
    let (api, _) = vigil_web::app(h.state.clone());
    let router = Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async { slow_answer(Vec::new()) })
                .post(|body: bytes::Bytes| async move { slow_answer(body.to_vec()) }),
        )
        .merge(api);
    let addr = h.serve_router(router).await;
    let mut tls = h.tls_connect(addr, LOCAL, H1).await.unwrap();
    let started = Instant::now();
    tls.write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let a = read_answer(&mut tls).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.head);
    assert_eq!(a.body, CHUNK.repeat(CHUNKS));
    assert!(started.elapsed() >= GAP * CHUNKS as u32);
    // Same connection, well past the deadlines: a request with a body, answered slowly.
    tls.write_all(b"POST /slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let a = read_answer(&mut tls).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.head);
    assert_eq!(a.body, [&b"hello"[..], &CHUNK.repeat(CHUNKS)].concat());
    eprintln!(
        "two slow answers on one connection in {:?}",
        started.elapsed()
    );

    // HTTP/2 too (curl), with a request body.
    let (ca, url) = (h.ca_file(), format!("https://{addr}/slow"));
    let curl = vigil_testkit::require_tool("curl");
    let args = [
        "-sS",
        "--fail",
        "--http2",
        "--max-time",
        "20",
        "--cacert",
        ca.to_str().unwrap(),
        "--data-binary",
        "hello",
        "-w",
        "\n%{http_version}",
        &url,
    ];
    let out = run(&curl, args, Duration::from_secs(30)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = [&b"hello"[..], &CHUNK.repeat(CHUNKS), b"\n2"].concat();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&expected)
    );
}

/// Whether a new connection from `from` is served (a request gets an answer).
async fn gets_in(h: &Harness, addr: SocketAddr, from: IpAddr) -> bool {
    let Ok(mut tls) = h.tls_connect(addr, from, H1).await else {
        return false;
    };
    let request = b"GET /api/v1/certificates/ca.pem HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if tls.write_all(request).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(5), read_answer(&mut tls)).await,
        Ok(Ok(a)) if a.status == 200
    )
}

#[tokio::test]
async fn one_address_holds_only_so_many_unauthenticated_connections() {
    const CAP: usize = 4;
    let h = Harness::new();
    h.state.listeners.set_limits(limits(30, 30, CAP));
    let (addr, _) = h.serve(false).await;
    // CAP idle connections (handshake done, no request): all accepted and counted.
    let mut idle = Vec::new();
    for _ in 0..CAP {
        idle.push(h.tls_connect(addr, LOCAL, H1).await.unwrap());
    }
    // The next one from that address is closed right after accept, before TLS.
    let t = Instant::now();
    let refused = h.tls_connect(addr, LOCAL, H1).await;
    eprintln!("connection beyond the cap refused after {:?}", t.elapsed());
    assert!(
        refused.is_err(),
        "a connection beyond the cap got a handshake"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    // Another address (loopback too) is not affected.
    assert!(gets_in(&h, addr, OTHER_LOCAL).await);

    // A connection that authenticates stops counting: its address gets a place back.
    let token = h.token(Role::Viewer, CameraScope::All);
    let authenticated = &mut idle[0];
    authenticated
        .write_all(
            format!(
                "GET /api/v1/session HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let a = read_answer(authenticated).await.unwrap();
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let mut spare = h.tls_connect(addr, LOCAL, H1).await.unwrap();
    assert!(
        h.tls_connect(addr, LOCAL, H1).await.is_err(),
        "the place was given back twice"
    );

    // A failed login is not authentication; a connection that closes gives its place back.
    let wrong = br#"{"username":"admin","password":"wrong"}"#;
    spare
        .write_all(&login_head(wrong.len() as u64, ""))
        .await
        .unwrap();
    spare.write_all(wrong).await.unwrap();
    let a = read_answer(&mut spare).await.unwrap();
    assert_eq!(a.status, 401);
    assert!(h.tls_connect(addr, LOCAL, H1).await.is_err());
    drop(spare);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if gets_in(&h, addr, LOCAL).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection's place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(idle);
}

#[tokio::test]
async fn the_default_cap_lets_a_benchmark_worth_of_connections_in_at_once() {
    // wrk opens all of its keep-alive connections (64 in the widest runs) before any has
    // authenticated: with the default limits every one must be served.
    let h = Harness::new();
    assert_eq!(h.state.listeners.limits(), ConnectionLimits::default());
    let (addr, _) = h.serve(false).await;
    let token = h.token(Role::Viewer, CameraScope::All);
    let mut conns = Vec::new();
    for _ in 0..64 {
        conns.push(h.tls_connect(addr, LOCAL, H1).await.unwrap());
    }
    let request = format!(
        "GET /api/v1/session HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    for conn in &mut conns {
        conn.write_all(request.as_bytes()).await.unwrap();
    }
    for conn in &mut conns {
        let a = read_answer(conn).await.unwrap();
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }
    // Authenticated, they no longer count: as many again may connect.
    let mut more = Vec::new();
    for _ in 0..64 {
        more.push(h.tls_connect(addr, LOCAL, H1).await.unwrap());
    }
    assert!(gets_in(&h, addr, LOCAL).await);
}
