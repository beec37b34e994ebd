//! The tunnel and the verifier behind the `Opener` seam, against an in-process TLS camera
//! (tokio-rustls) and an inner opener that speaks a line of text instead of RTSP.

use super::*;

use std::sync::Mutex as StdMutex;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_pki::{InitOptions, LeafKeyType, LeafRequest, LeafUsage, Pki};

/// A certificate and its key as the camera serves them.
struct Served {
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn issued(pki: &Pki, names: &[&str]) -> Served {
    let leaf = pki
        .issue_leaf(&LeafRequest {
            common_name: "camera".into(),
            sans: names.iter().map(|s| s.to_string()).collect(),
            validity_days: 30,
            usage: LeafUsage::TlsServer,
            key_type: LeafKeyType::EcdsaP256,
        })
        .unwrap();
    Served {
        der: leaf.cert_der.clone(),
        key: leaf.key_der.clone_key(),
    }
}

fn self_signed(names: &[&str]) -> Served {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .self_signed(&key)
            .unwrap();
    Served {
        der: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

fn installation() -> (tempfile::TempDir, Pki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"), &InitOptions::default()).unwrap();
    (dir, pki)
}

/// A TLS "camera" on loopback: answers each line it reads with `ECHO <line>`, and keeps every
/// byte that crossed its TCP socket in both directions (what a capture on the wire sees).
struct Camera {
    port: u16,
    wire: Arc<StdMutex<Vec<u8>>>,
    got: Arc<StdMutex<Vec<String>>>,
}

async fn camera(served: Served) -> Camera {
    let config = rustls::ServerConfig::builder_with_provider(vigil_pki::tls::crypto_provider())
        .with_protocol_versions(vigil_pki::tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![served.der], PrivateKeyDer::Pkcs8(served.key))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let wire = Arc::new(StdMutex::new(Vec::new()));
    let got = Arc::new(StdMutex::new(Vec::new()));
    let (w, g) = (wire.clone(), got.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            // A tap between the camera's socket and its TLS layer: a loopback pair.
            let tap = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let tap_addr = tap.local_addr().unwrap();
            let w = w.clone();
            tokio::spawn(async move {
                let (mut inner, _) = tap.accept().await.unwrap();
                let (mut outer, _) = (tcp, ());
                let mut a = [0u8; 4096];
                let mut b = [0u8; 4096];
                loop {
                    tokio::select! {
                        n = outer.read(&mut a) => {
                            let Ok(n) = n else { return };
                            if n == 0 { return }
                            w.lock().unwrap().extend_from_slice(&a[..n]);
                            if inner.write_all(&a[..n]).await.is_err() { return }
                        }
                        n = inner.read(&mut b) => {
                            let Ok(n) = n else { return };
                            if n == 0 { return }
                            w.lock().unwrap().extend_from_slice(&b[..n]);
                            if outer.write_all(&b[..n]).await.is_err() { return }
                        }
                    }
                }
            });
            let plain = TcpStream::connect(tap_addr).await.unwrap();
            let acceptor = acceptor.clone();
            let g = g.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(plain).await else {
                    return;
                };
                let mut buf = vec![0u8; 1024];
                loop {
                    let Ok(n) = tls.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let line = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
                    g.lock().unwrap().push(line.clone());
                    if tls
                        .write_all(format!("ECHO {line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Camera { port, wire, got }
}

/// The inner opener: connects where the tunnel URL says, sends the URL's path as a line and
/// expects the camera's echo, like retina's DESCRIBE and its answer.
#[derive(Default)]
struct LineOpener {
    urls: StdMutex<Vec<String>>,
}

struct Silent;

impl FrameSource for Silent {
    fn clock_rate(&self) -> u32 {
        90_000
    }
    fn next_frame(&mut self) -> BoxFuture<'_, Option<Result<SourceFrame, IngestError>>> {
        Box::pin(async { None })
    }
    fn params(&self) -> Result<TrackParams, IngestError> {
        Err(IngestError::Ended)
    }
}

impl Opener for LineOpener {
    fn open<'a>(
        &'a self,
        source: &'a Source,
    ) -> BoxFuture<'a, Result<Box<dyn FrameSource>, IngestError>> {
        Box::pin(async move {
            self.urls.lock().unwrap().push(source.url.clone());
            let url = Url::parse(&source.url).unwrap();
            let mut s = TcpStream::connect((url.host_str().unwrap(), url.port().unwrap()))
                .await
                .map_err(|e| IngestError::Connect(e.to_string()))?;
            s.write_all(format!("DESCRIBE {} secret-video-payload\n", url.path()).as_bytes())
                .await
                .unwrap();
            let mut buf = vec![0u8; 256];
            let n = s.read(&mut buf).await.unwrap();
            let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !answer.starts_with("ECHO DESCRIBE") {
                return Err(IngestError::Rtsp(answer));
            }
            let s: Box<dyn FrameSource> = Box::new(Silent);
            Ok(s)
        })
    }
}

#[derive(Default)]
struct MemoryBook {
    seen: StdMutex<Option<String>>,
    changes: StdMutex<Vec<(String, String, String)>>,
}

impl CertificateBook for MemoryBook {
    fn seen(&self, _id: &str) -> Option<String> {
        self.seen.lock().unwrap().clone()
    }
    fn remember(&self, _id: &str, fp: &str) {
        *self.seen.lock().unwrap() = Some(fp.to_owned());
    }
    fn changed(&self, id: &str, old: &str, new: &str) {
        self.changes
            .lock()
            .unwrap()
            .push((id.into(), old.into(), new.into()));
    }
}

fn source(url: String, pin: Option<String>) -> Source {
    Source {
        stream_id: "cam-0123456789ab".into(),
        url,
        username: None,
        password: None,
        inactivity_timeout: Duration::from_secs(5),
        tls_pin: pin,
    }
}

fn opener(pki: Option<&Pki>, book: Arc<MemoryBook>) -> (TlsOpener, Arc<LineOpener>) {
    let inner = Arc::new(LineOpener::default());
    let cas: Vec<CertificateDer<'static>> =
        pki.map(|p| p.ca_cert_der().clone()).into_iter().collect();
    (
        TlsOpener::new(inner.clone(), TrustStore::new(&cas, false), book),
        inner,
    )
}

#[tokio::test]
async fn a_ca_issued_certificate_is_verified_remembered_and_only_tls_crosses_the_wire() {
    let (_d, pki) = installation();
    let served = issued(&pki, &["127.0.0.1"]);
    let fp = fingerprint(&served.der);
    let cam = camera(served).await;
    let book = Arc::new(MemoryBook::default());
    let (tls, inner) = opener(Some(&pki), book.clone());
    let url = format!("rtsps://127.0.0.1:{}/cam?x=1", cam.port);
    tls.open(&source(url, None)).await.unwrap();
    // retina was pointed at the loopback tunnel, with the camera's path and query.
    let urls = inner.urls.lock().unwrap().clone();
    assert_eq!(urls.len(), 1);
    assert!(urls[0].starts_with("rtsp://127.0.0.1:"), "{urls:?}");
    assert!(urls[0].ends_with("/cam?x=1"), "{urls:?}");
    assert_ne!(urls[0], format!("rtsp://127.0.0.1:{}/cam?x=1", cam.port));
    assert_eq!(
        cam.got.lock().unwrap().clone(),
        vec!["DESCRIBE /cam secret-video-payload".to_owned()]
    );
    assert_eq!(book.seen.lock().unwrap().clone(), Some(fp));
    let wire = cam.wire.lock().unwrap().clone();
    assert_eq!(
        wire.first(),
        Some(&0x16),
        "the first byte is a TLS handshake record"
    );
    for clear in [&b"DESCRIBE"[..], b"secret-video-payload", b"ECHO"] {
        assert!(
            !wire.windows(clear.len()).any(|w| w == clear),
            "{:?} crossed the wire in clear",
            String::from_utf8_lossy(clear)
        );
    }
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused_with_its_fingerprint_until_pinned() {
    let served = self_signed(&["127.0.0.1"]);
    let fp = fingerprint(&served.der);
    let cam = camera(served).await;
    let (_d, pki) = installation();
    let book = Arc::new(MemoryBook::default());
    let (tls, inner) = opener(Some(&pki), book.clone());
    let url = format!("rtsps://127.0.0.1:{}/cam", cam.port);
    let err = tls.open(&source(url.clone(), None)).await.err().unwrap();
    match &err {
        IngestError::CertificateUntrusted {
            fingerprint,
            reason,
        } => {
            assert_eq!(*fingerprint, fp);
            assert!(reason.contains("not issued by a CA"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert!(err.is_permanent());
    assert!(err.to_string().contains(&fp), "{err}");
    assert!(err.to_string().contains("vigil camera trust"), "{err}");
    assert!(
        inner.urls.lock().unwrap().is_empty(),
        "no RTSP before the certificate passed"
    );
    assert!(cam.got.lock().unwrap().is_empty());
    assert_eq!(*book.seen.lock().unwrap(), None);

    // Pinned: accepted, whatever its issuer and name.
    tls.open(&source(url, Some(fp))).await.unwrap();
    assert_eq!(cam.got.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let (_d, pki) = installation();
    let cam = camera(issued(&pki, &["camera.example"])).await;
    let (tls, _inner) = opener(Some(&pki), Arc::new(MemoryBook::default()));
    let err = tls
        .open(&source(format!("rtsps://127.0.0.1:{}/cam", cam.port), None))
        .await
        .err()
        .unwrap();
    match err {
        IngestError::CertificateUntrusted { reason, .. } => {
            assert!(reason.contains("host name '127.0.0.1'"), "{reason}")
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn another_certificate_than_the_one_seen_or_pinned_is_a_change() {
    let (_d, pki) = installation();
    let first = issued(&pki, &["127.0.0.1"]);
    let first_fp = fingerprint(&first.der);
    let second = issued(&pki, &["127.0.0.1"]);
    let second_fp = fingerprint(&second.der);
    let cam = camera(second).await;
    let url = format!("rtsps://127.0.0.1:{}/cam", cam.port);

    // Verified before with `first`; now a certificate of the same CA, valid for the name.
    let book = Arc::new(MemoryBook::default());
    *book.seen.lock().unwrap() = Some(first_fp.clone());
    let (tls, inner) = opener(Some(&pki), book.clone());
    let err = tls.open(&source(url.clone(), None)).await.err().unwrap();
    match &err {
        IngestError::CertificateChanged { old, new } => {
            assert_eq!((old, new), (&first_fp, &second_fp));
        }
        other => panic!("{other}"),
    }
    assert!(err.is_permanent());
    assert_eq!(
        book.changes.lock().unwrap().clone(),
        vec![(
            "cam-0123456789ab".into(),
            first_fp.clone(),
            second_fp.clone()
        )]
    );
    assert_eq!(
        *book.seen.lock().unwrap(),
        Some(first_fp.clone()),
        "not replaced"
    );
    assert!(inner.urls.lock().unwrap().is_empty());

    // Pinned to `first`: the same.
    let (tls, _) = opener(Some(&pki), Arc::new(MemoryBook::default()));
    let err = tls.open(&source(url, Some(first_fp))).await.err().unwrap();
    assert!(
        matches!(err, IngestError::CertificateChanged { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn without_any_trusted_ca_only_a_pin_opens_a_link() {
    let (_d, pki) = installation();
    let served = issued(&pki, &["127.0.0.1"]);
    let fp = fingerprint(&served.der);
    let cam = camera(served).await;
    let url = format!("rtsps://127.0.0.1:{}/cam", cam.port);
    let (tls, _) = opener(None, Arc::new(MemoryBook::default()));
    let err = tls.open(&source(url.clone(), None)).await.err().unwrap();
    assert!(err.to_string().contains("no CA is trusted"), "{err}");
    tls.open(&source(url, Some(fp))).await.unwrap();
}

#[tokio::test]
async fn plain_rtsp_goes_to_the_inner_opener_unchanged() {
    let (tls, inner) = opener(None, Arc::new(MemoryBook::default()));
    // Nobody listens there: the inner opener's own error comes back.
    let err = tls
        .open(&source("rtsp://127.0.0.1:9/cam".into(), None))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, IngestError::Connect(_)), "{err}");
    assert_eq!(
        inner.urls.lock().unwrap().clone(),
        vec!["rtsp://127.0.0.1:9/cam".to_owned()]
    );
}

#[test]
fn fingerprints_are_read_in_the_forms_people_paste() {
    let canonical = fingerprint(b"x");
    let bare = canonical.replace(':', "");
    for input in [
        canonical.clone(),
        bare.clone(),
        bare.to_ascii_lowercase(),
        format!("sha256:{bare}"),
        format!("SHA256 Fingerprint={canonical}"),
        format!("  {}  ", canonical.to_ascii_lowercase()),
    ] {
        assert_eq!(parse_fingerprint(&input).unwrap(), canonical, "{input}");
    }
    for bad in [
        "",
        "abc",
        &bare[..62],
        &format!("{bare}00"),
        &format!("G{}", &bare[1..]),
    ] {
        let e = parse_fingerprint(bad).unwrap_err();
        assert!(e.contains("64 hex digits"), "{bad}: {e}");
    }
}

#[test]
fn the_tunnel_url_keeps_path_and_query_only() {
    let u = Url::parse("rtsps://cam.example:7322/a/b?c=d").unwrap();
    assert_eq!(tunnel_url(&u, 4000), "rtsp://127.0.0.1:4000/a/b?c=d");
    let u = Url::parse("rtsps://cam.example/live").unwrap();
    assert_eq!(tunnel_url(&u, 1), "rtsp://127.0.0.1:1/live");
}

/// The tunnel hands the camera's connection only to a socket of this process: a connection
/// from another process (here a shell's /dev/tcp) is told apart from one of ours.
#[tokio::test]
async fn only_a_connection_from_this_process_gets_the_tunnel() {
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let local = listener.local_addr().unwrap();
    let mut other = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 3<>/dev/tcp/127.0.0.1/{}; sleep 5",
            local.port()
        ))
        .spawn()
        .unwrap();
    let (_theirs, peer) = listener.accept().await.unwrap();
    assert!(!connected_from_this_process(peer, local), "{peer}");
    let _ = other.kill();
    let _ = other.wait();

    let _ours = TcpStream::connect(local).await.unwrap();
    let (_accepted, peer) = listener.accept().await.unwrap();
    assert!(connected_from_this_process(peer, local), "{peer}");
}

#[tokio::test]
async fn a_ca_imported_while_running_is_used_by_the_next_connection() {
    // The camera's certificate comes from a CA the server does not know yet (another PKI, as a
    // site's own CA would be).
    let (_d, site_ca) = installation();
    let cam = camera(issued(&site_ca, &["127.0.0.1"])).await;
    let (_d2, pki) = installation();
    let trust = TrustStore::new(&[pki.ca_cert_der().clone()], false);
    let inner = Arc::new(LineOpener::default());
    let tls = TlsOpener::new(
        inner.clone(),
        trust.clone(),
        Arc::new(MemoryBook::default()),
    );
    let url = format!("rtsps://127.0.0.1:{}/cam", cam.port);
    let err = tls.open(&source(url.clone(), None)).await.err().unwrap();
    assert!(
        matches!(err, IngestError::CertificateUntrusted { .. }),
        "{err}"
    );
    // The admin imports the site CA: every holder of the store sees it at once.
    trust.replace(&TrustStore::new(
        &[pki.ca_cert_der().clone(), site_ca.ca_cert_der().clone()],
        false,
    ));
    assert_eq!(trust.len(), 2);
    tls.open(&source(url, None)).await.unwrap();
    assert_eq!(cam.got.lock().unwrap().len(), 1);
}
