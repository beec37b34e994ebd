//! Devices that answer badly, over a real socket: too large, too slow, never, not SOAP, a
//! SOAP fault, HTTP authentication. Each ends in its typed error within the time limit.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vigil_media::ingest_tls::TrustStore;
use vigil_onvif::{Client, Credentials, OnvifError, Options, Target};

/// A device on loopback that reads one request and then does what `answer` says.
async fn device<F, Fut>(answer: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let _ = sock.read(&mut buf).await;
            answer(sock).await;
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn http(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/soap+xml\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
}

fn client(url: &str, timeout: Duration) -> Client {
    let mut options = Options::new(TrustStore::new(&[], false));
    options.timeout = timeout;
    Client::new(
        Target::parse(url).unwrap(),
        Some(Credentials::new("admin", "pw")),
        options,
    )
}

#[tokio::test]
async fn a_huge_answer_is_refused_by_its_length_or_while_streaming() {
    let announced = device(|mut s| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 50000000\r\n\r\n";
        let _ = s.write_all(head.as_bytes()).await;
    })
    .await;
    let e = client(&announced, Duration::from_secs(5))
        .system_date_time()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::TooLarge { .. }), "{e:?}");

    let chunked = device(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "<".repeat(64 * 1024));
        for _ in 0..64 {
            if s.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    let e = client(&chunked, Duration::from_secs(5))
        .system_date_time()
        .await
        .unwrap_err();
    assert!(
        matches!(e, OnvifError::TooLarge { limit } if limit == vigil_onvif::MAX_RESPONSE_BYTES),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_device_that_never_answers_or_trickles_is_given_up_in_time() {
    let silent = device(|s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let started = Instant::now();
    let e = client(&silent, Duration::from_millis(700))
        .device_information()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::Timeout { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let trickle = device(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            .await;
        for _ in 0..1000 {
            if s.write_all(b"<").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let started = Instant::now();
    let e = client(&trickle, Duration::from_millis(700))
        .system_date_time()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::Timeout { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn garbage_faults_and_http_authentication_are_named() {
    let garbage = device(|mut s| async move {
        let _ = s
            .write_all(http("200 OK", "", "<html>hello</html>").as_bytes())
            .await;
    })
    .await;
    let e = client(&garbage, Duration::from_secs(5))
        .system_date_time()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::Unexpected { .. }), "{e:?}");

    let not_http = device(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
    })
    .await;
    let e = client(&not_http, Duration::from_secs(5))
        .system_date_time()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::Malformed(_)), "{e:?}");

    let fault = device(|mut s| async move {
        let body = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>ter:ActionNotSupported</s:Value></s:Subcode></s:Code><s:Reason><s:Text>Optional Action Not Implemented</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>"#;
        let _ = s.write_all(http("500 Internal Server Error", "", body).as_bytes()).await;
    })
    .await;
    let e = client(&fault, Duration::from_secs(5))
        .users()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OnvifError::Fault { subcode: Some(s), .. } if s == "ActionNotSupported"),
        "{e:?}"
    );

    let digest = device(|mut s| async move {
        let _ = s
            .write_all(
                http(
                    "401 Unauthorized",
                    "WWW-Authenticate: Digest realm=\"cam\", nonce=\"1\"\r\n",
                    "",
                )
                .as_bytes(),
            )
            .await;
    })
    .await;
    // RFC 2069 Digest (no qop) is not answered, saying what the device offered.
    let e = client(&digest, Duration::from_secs(5))
        .users()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OnvifError::HttpAuthUnsupported(s) if s.contains("Digest without qop")),
        "{e:?}"
    );
    // Without credentials the device is said to want some.
    let mut anonymous = Options::new(TrustStore::new(&[], false));
    anonymous.timeout = Duration::from_secs(5);
    let e = Client::new(Target::parse(&digest).unwrap(), None, anonymous)
        .device_information()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OnvifError::HttpAuthRequired { scheme } if scheme == "Digest"),
        "{e:?}"
    );

    let missing = device(|mut s| async move {
        let _ = s.write_all(http("404 Not Found", "", "").as_bytes()).await;
    })
    .await;
    let e = client(&missing, Duration::from_secs(5))
        .users()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::Http { status: 404, .. }), "{e:?}");
    assert!(e.to_string().contains("GetUsers"), "{e}");

    let refused = format!(
        "http://127.0.0.1:{}",
        TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let e = client(&refused, Duration::from_secs(5))
        .users()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::Connect { .. }), "{e:?}");
}
