//! RTSPS camera links: an [`Opener`] that puts a TLS tunnel in front of the plain RTSP opener
//! and decides whether the camera's certificate is trusted, pinned or changed
//! (docs/design/camera-tls.md).
//!
//! retina speaks RTSP over plain TCP only and cannot take a connected stream, so for an
//! `rtsps://` camera the TLS connection is made here first (every certificate decision is
//! taken before a byte of RTSP is sent), then a loopback listener on an ephemeral port
//! accepts retina's one connection and relays it over TLS. retina sets up RTP interleaved in
//! that connection only, so no video leaves the tunnel.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::fmp4::TrackParams;
use crate::ingest::{FrameSource, IngestError, Opener, Source, SourceFrame, validate_url};

/// The RTSPS port when the URL names none (RFC 7826, section 19.2).
pub const DEFAULT_RTSPS_PORT: u16 = 322;
/// How long connecting, the TLS handshake and retina's connection to the tunnel may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// A certificate's identity as Vigil shows and stores it: the SHA-256 of its DER encoding in
/// upper-case hex pairs separated by colons (what `vigil pki` and `openssl x509 -fingerprint
/// -sha256` print).
pub fn fingerprint(der: &[u8]) -> String {
    vigil_pki::fingerprint_sha256(der)
}

/// Reads a fingerprint as an admin types it: 64 hex digits, with or without colons (or
/// spaces), in either case, optionally after `sha256:` / `SHA256 Fingerprint=`. Returns the
/// canonical form of [`fingerprint`].
pub fn parse_fingerprint(text: &str) -> Result<String, String> {
    let hex = vigil_signing::keys::parse_fingerprint(text).ok_or_else(|| {
        format!(
            "'{text}' is not a SHA-256 fingerprint: expected 64 hex digits (colons allowed), as shown in the camera's status"
        )
    })?;
    let upper = hex.to_ascii_uppercase();
    Ok(upper
        .as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(":"))
}

/// The certificate authorities a camera certificate may chain to: the installation CA
/// (`DATA_DIR/pki/ca.crt`), CAs an admin imported and, unless left out, the operating system's
/// roots. Clones share the anchors: [`TrustStore::replace`] changes them for every holder, so a
/// running server picks up an imported CA at the next connection.
#[derive(Debug, Clone)]
pub struct TrustStore {
    roots: Arc<std::sync::RwLock<Arc<RootCertStore>>>,
}

impl TrustStore {
    /// Trusts `cas` (DER) and, with `system_roots`, the platform's CA store. A system store
    /// that cannot be read is logged and left out: the installation CA still works.
    pub fn new(cas: &[CertificateDer<'static>], system_roots: bool) -> TrustStore {
        let mut roots = RootCertStore::empty();
        for ca in cas {
            if let Err(e) = roots.add(ca.clone()) {
                tracing::warn!(error = %e, "a CA certificate cannot be used as a trust anchor for cameras");
            }
        }
        if system_roots {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "system CA store partly unreadable");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, "system CA certificates trusted for camera links");
        }
        TrustStore {
            roots: Arc::new(std::sync::RwLock::new(Arc::new(roots))),
        }
    }

    /// The anchors now.
    fn current(&self) -> Arc<RootCertStore> {
        self.roots.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes `other`'s anchors, for this store and every clone of it; connections made from
    /// now on use them (one already verified keeps going).
    pub fn replace(&self, other: &TrustStore) {
        let new = other.current();
        *self.roots.write().unwrap_or_else(|p| p.into_inner()) = new;
    }

    /// Number of trusted CA certificates.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }
}

/// Where the certificate each stream presented is remembered, and who is told when it
/// changes. The store implements the memory; the application adds the event.
pub trait CertificateBook: Send + Sync {
    /// The fingerprint last accepted (verified) for the stream, if any.
    fn seen(&self, stream_id: &str) -> Option<String>;
    /// The stream presented a verified certificate for the first time.
    fn remember(&self, stream_id: &str, fingerprint: &str);
    /// A verified or pinned stream presented another certificate; the link was refused.
    fn changed(&self, stream_id: &str, old: &str, new: &str);
}

/// A book that keeps nothing (tests, one-shot tools).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBook;

impl CertificateBook for NoBook {
    fn seen(&self, _stream_id: &str) -> Option<String> {
        None
    }
    fn remember(&self, _stream_id: &str, _fingerprint: &str) {}
    fn changed(&self, _stream_id: &str, _old: &str, _new: &str) {}
}

/// How a certificate was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Chains to the trust store and names the host.
    Verified,
    /// Exactly the certificate an admin pinned.
    Pinned,
}

/// The verifier's decision about the certificate of one handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accepted { fingerprint: String, how: Accepted },
    Untrusted { fingerprint: String, reason: String },
    Changed { old: String, new: String },
}

/// The certificate rules of one camera connection (docs/design/camera-tls.md,
/// "Verification"): a pin accepts exactly its certificate; otherwise the chain and host name
/// are verified, and a certificate other than the one seen before is refused as changed.
#[derive(Debug)]
pub struct CameraVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pin: Option<String>,
    seen: Option<String>,
    provider: Arc<CryptoProvider>,
    decision: Mutex<Option<Decision>>,
}

impl CameraVerifier {
    pub fn new(trust: &TrustStore, pin: Option<String>, seen: Option<String>) -> CameraVerifier {
        let provider = vigil_pki::tls::crypto_provider();
        // An empty store cannot build a verifier: then nothing chains, and only a pin helps.
        let roots = trust.current();
        let webpki = (!roots.is_empty())
            .then(|| {
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .ok()
            })
            .flatten();
        CameraVerifier {
            webpki,
            pin,
            seen,
            provider,
            decision: Mutex::new(None),
        }
    }

    /// What the last handshake's certificate check decided (`None` before one).
    pub fn decision(&self) -> Option<Decision> {
        self.decision
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn decide(&self, d: Decision) {
        *self.decision.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
    }
}

/// rustls' words for why a chain is refused, in terms an admin acts on.
fn untrusted_reason(e: &rustls::Error, host: &ServerName<'_>) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "it is not issued by a CA this installation trusts (the Vigil CA or the system store); a self-signed camera certificate looks like this".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            format!("it is not valid for the host name '{}' of the camera URL", host.to_str())
        }
        rustls::Error::InvalidCertificate(C::ExpiredContext { not_after, .. }) => format!(
            "it expired on {}: give the camera a new certificate (sign its CSR with `vigil pki sign-csr`)",
            crate::time::format_us(
                i64::try_from(not_after.as_secs())
                    .unwrap_or(i64::MAX / 1_000_000)
                    .saturating_mul(1_000_000)
            )
        ),
        rustls::Error::InvalidCertificate(C::Expired) => {
            "it has expired: give the camera a new certificate (sign its CSR with `vigil pki sign-csr`)".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidYet)
        | rustls::Error::InvalidCertificate(C::NotValidYetContext { .. }) => {
            "it is not valid yet (check the clocks)".into()
        }
        other => other.to_string(),
    }
}

impl ServerCertVerifier for CameraVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        let refuse = |d: Decision, text: &str| {
            self.decide(d);
            Err(rustls::Error::General(text.to_owned()))
        };
        if let Some(pin) = &self.pin {
            if *pin == fp {
                self.decide(Decision::Accepted {
                    fingerprint: fp,
                    how: Accepted::Pinned,
                });
                return Ok(ServerCertVerified::assertion());
            }
            return refuse(
                Decision::Changed {
                    old: pin.clone(),
                    new: fp,
                },
                "certificate differs from the pinned one",
            );
        }
        if let Some(seen) = &self.seen
            && *seen != fp
        {
            return refuse(
                Decision::Changed {
                    old: seen.clone(),
                    new: fp,
                },
                "certificate differs from the one seen before",
            );
        }
        let Some(webpki) = &self.webpki else {
            return refuse(
                Decision::Untrusted {
                    fingerprint: fp,
                    reason: "no CA is trusted for cameras on this installation".into(),
                },
                "no trust anchors",
            );
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(v) => {
                self.decide(Decision::Accepted {
                    fingerprint: fp,
                    how: Accepted::Verified,
                });
                Ok(v)
            }
            Err(e) => {
                self.decide(Decision::Untrusted {
                    fingerprint: fp,
                    reason: untrusted_reason(&e, server_name),
                });
                Err(e)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The [`Opener`] for every camera: `rtsp://` goes to `inner` as it is, `rtsps://` through a
/// verified TLS tunnel to it.
pub struct TlsOpener {
    inner: Arc<dyn Opener>,
    trust: TrustStore,
    book: Arc<dyn CertificateBook>,
}

impl TlsOpener {
    pub fn new(
        inner: Arc<dyn Opener>,
        trust: TrustStore,
        book: Arc<dyn CertificateBook>,
    ) -> TlsOpener {
        TlsOpener { inner, trust, book }
    }

    async fn open_tls(
        &self,
        source: &Source,
        url: Url,
    ) -> Result<Box<dyn FrameSource>, IngestError> {
        let host = url
            .host_str()
            .ok_or_else(|| IngestError::BadUrl("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(DEFAULT_RTSPS_PORT);
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| IngestError::BadUrl(format!("host '{host}': {e}")))?;
        let tcp = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| {
                IngestError::Timeout(format!(
                    "no answer within 15 s to connect to {host}:{port} (is the camera reachable?)"
                ))
            })?
            .map_err(|e| IngestError::Connect(format!("{host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let tls = self.handshake(source, server_name, tcp).await?;
        relay_to(self.inner.as_ref(), source, &url, tls).await
    }

    async fn handshake(
        &self,
        source: &Source,
        server_name: ServerName<'static>,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, IngestError> {
        let seen = if source.tls_pin.is_some() {
            None
        } else {
            self.book.seen(&source.stream_id)
        };
        let verifier = Arc::new(CameraVerifier::new(
            &self.trust,
            source.tls_pin.clone(),
            seen.clone(),
        ));
        let config = rustls::ClientConfig::builder_with_provider(vigil_pki::tls::crypto_provider())
            .with_protocol_versions(vigil_pki::tls::PROTOCOL_VERSIONS)
            .map_err(|e| IngestError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let result = tokio::time::timeout(STEP_TIMEOUT, connector.connect(server_name, tcp))
            .await
            .map_err(|_| IngestError::Timeout("no TLS handshake within 15 s".into()))?;
        match (result, verifier.decision()) {
            (Ok(tls), Some(Decision::Accepted { fingerprint, how })) => {
                if how == Accepted::Verified && seen.is_none() {
                    self.book.remember(&source.stream_id, &fingerprint);
                }
                Ok(tls)
            }
            (_, Some(Decision::Changed { old, new })) => {
                self.book.changed(&source.stream_id, &old, &new);
                Err(IngestError::CertificateChanged { old, new })
            }
            (
                _,
                Some(Decision::Untrusted {
                    fingerprint,
                    reason,
                }),
            ) => Err(IngestError::CertificateUntrusted {
                fingerprint,
                reason,
            }),
            (Err(e), _) => Err(IngestError::Tls(e.to_string())),
            (Ok(_), None) => Err(IngestError::Tls(
                "the handshake ended without a certificate decision".into(),
            )),
        }
    }
}

/// Serves `tls` to the inner opener on a one-shot loopback listener and opens the session
/// through it.
async fn relay_to<S>(
    inner: &dyn Opener,
    source: &Source,
    url: &Url,
    tls: S,
) -> Result<Box<dyn FrameSource>, IngestError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| IngestError::Tls(format!("cannot open the loopback tunnel: {e}")))?;
    let local: SocketAddr = listener
        .local_addr()
        .map_err(|e| IngestError::Tls(format!("cannot open the loopback tunnel: {e}")))?;
    let relay = tokio::spawn(relay(listener, tls));
    let mut plain = source.clone();
    plain.url = tunnel_url(url, local.port());
    match inner.open(&plain).await {
        Ok(frames) => Ok(Box::new(Tunnelled {
            inner: frames,
            _relay: AbortOnDrop(relay),
        })),
        Err(e) => {
            relay.abort();
            Err(e)
        }
    }
}

/// `rtsp://127.0.0.1:PORT` with the camera URL's path and query.
fn tunnel_url(camera: &Url, port: u16) -> String {
    let mut s = format!("rtsp://127.0.0.1:{port}{}", camera.path());
    if let Some(q) = camera.query() {
        s.push('?');
        s.push_str(q);
    }
    s
}

/// Accepts the connection of this process's RTSP client within [`STEP_TIMEOUT`] and copies
/// bytes both ways until either side closes. Any other local process that finds the port and
/// connects first is turned away (the camera's verified TLS connection is never handed to
/// it) and the listener keeps waiting; it closes once it accepted ours.
async fn relay<S>(listener: TcpListener, mut tls: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let mut sock = loop {
        let Ok(Ok((sock, peer))) = tokio::time::timeout_at(deadline, listener.accept()).await
        else {
            return;
        };
        if peer.ip().is_loopback() && connected_from_this_process(peer, local) {
            break sock;
        }
        tracing::warn!(%peer, "refused a connection to a camera's TLS tunnel that did not come from this process");
    };
    drop(listener);
    let _ = sock.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut sock, &mut tls).await;
    use tokio::io::AsyncWriteExt;
    let _ = tls.shutdown().await;
}

/// Whether the TCP connection from `peer` to `local` (both IPv4 loopback) was opened by a
/// socket of this process: its row in the kernel's TCP table names a socket inode that is one
/// of this process's open files. Without /proc the answer is no (the tunnel then refuses,
/// which shows as a camera that cannot be opened rather than a silent hand-over).
fn connected_from_this_process(peer: SocketAddr, local: SocketAddr) -> bool {
    let (SocketAddr::V4(peer), SocketAddr::V4(local)) = (peer, local) else {
        return false;
    };
    // /proc/net/tcp prints each address as the in-memory u32 in hex, then the port.
    let hex = |a: &std::net::SocketAddrV4| {
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        )
    };
    let (from, to) = (hex(&peer), hex(&local));
    let Ok(table) = std::fs::read_to_string("/proc/self/net/tcp") else {
        return false;
    };
    let Some(inode) = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == from && f[2] == to).then(|| f[9].to_owned())
    }) else {
        return false;
    };
    let socket = format!("socket:[{inode}]");
    std::fs::read_dir("/proc/self/fd").is_ok_and(|fds| {
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == socket.as_str())
        })
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A session through the tunnel: ending it (drop) ends the relay and the TLS connection.
struct Tunnelled {
    inner: Box<dyn FrameSource>,
    _relay: AbortOnDrop,
}

impl FrameSource for Tunnelled {
    fn clock_rate(&self) -> u32 {
        self.inner.clock_rate()
    }
    fn next_frame(&mut self) -> BoxFuture<'_, Option<Result<SourceFrame, IngestError>>> {
        self.inner.next_frame()
    }
    fn params(&self) -> Result<TrackParams, IngestError> {
        self.inner.params()
    }
}

impl Opener for TlsOpener {
    fn open<'a>(
        &'a self,
        source: &'a Source,
    ) -> BoxFuture<'a, Result<Box<dyn FrameSource>, IngestError>> {
        Box::pin(async move {
            let url = validate_url(&source.url).map_err(IngestError::BadUrl)?;
            if url.scheme() == "rtsps" {
                self.open_tls(source, url).await
            } else {
                self.inner.open(source).await
            }
        })
    }

    /// Through the tunnel an `rtsps://` camera is opened whole (the relay lives with the
    /// session) and closed; `rtsp://` goes to `inner`'s DESCRIBE.
    fn describe<'a>(&'a self, source: &'a Source) -> BoxFuture<'a, Result<(), IngestError>> {
        Box::pin(async move {
            let url = validate_url(&source.url).map_err(IngestError::BadUrl)?;
            if url.scheme() == "rtsps" {
                self.open_tls(source, url).await.map(drop)
            } else {
                self.inner.describe(source).await
            }
        })
    }
}

#[cfg(test)]
mod tests;
