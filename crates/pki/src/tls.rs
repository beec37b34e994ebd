//! TLS configuration for every Vigil listener: the one crypto provider (aws-lc-rs), the allowed
//! protocol versions and cipher suites, a certificate resolver that can be swapped while the
//! server runs, and session resumption state that can be thrown away on rotation.
//!
//! Why the session state matters: a client resuming an earlier session does not receive the
//! server certificate again, so after a rotation forced by a key compromise it would keep
//! trusting the old one. [`LiveTls::rotate`] with [`SessionPolicy::Invalidate`] replaces the
//! ticket keys and empties the session cache so every client does a full handshake.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache,
    StoresServerSessions, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::{PkiError, Result};

/// Sessions kept for TLS 1.2 session-ID and TLS 1.3 stateful resumption.
const SESSION_CACHE_SIZE: usize = 1024;

/// The crypto provider of every Vigil TLS endpoint: aws-lc-rs, restricted to AEAD suites with
/// forward secrecy (TLS 1.3 suites; TLS 1.2 ECDHE-ECDSA/RSA with AES-GCM or ChaCha20-Poly1305).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..aws_lc_rs::default_provider()
    })
}

/// TLS 1.3 and 1.2 only.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A server certificate that can be replaced while the server runs: every new handshake picks
/// up the current one.
pub struct LiveCert {
    current: ArcSwap<CertifiedKey>,
}

impl LiveCert {
    pub fn new(initial: Arc<CertifiedKey>) -> Self {
        LiveCert {
            current: ArcSwap::new(initial),
        }
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// Replaces the certificate for all later handshakes; running connections are unaffected.
    pub fn swap(&self, next: Arc<CertifiedKey>) {
        self.current.store(next);
    }
}

impl fmt::Debug for LiveCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the public end-entity fingerprint; the key is never printed.
        let fp = self
            .current
            .load()
            .cert
            .first()
            .map(|c| crate::certinfo::fingerprint_sha256(c))
            .unwrap_or_default();
        f.debug_struct("LiveCert").field("sha256", &fp).finish()
    }
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Session-ID cache whose contents can be dropped at once.
#[derive(Debug)]
pub struct RotatingSessionCache {
    inner: ArcSwap<CacheBox>,
}

struct CacheBox(Arc<ServerSessionMemoryCache>);

impl fmt::Debug for CacheBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CacheBox")
    }
}

impl RotatingSessionCache {
    pub fn new() -> Self {
        RotatingSessionCache {
            inner: ArcSwap::from_pointee(CacheBox(ServerSessionMemoryCache::new(
                SESSION_CACHE_SIZE,
            ))),
        }
    }

    /// Forgets every cached session.
    pub fn clear(&self) {
        self.inner
            .store(Arc::new(CacheBox(ServerSessionMemoryCache::new(
                SESSION_CACHE_SIZE,
            ))));
    }
}

impl Default for RotatingSessionCache {
    fn default() -> Self {
        Self::new()
    }
}

impl StoresServerSessions for RotatingSessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.load().0.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.load().0.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.load().0.take(key)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

/// Session-ticket keys that can be replaced at once, so tickets issued before are rejected.
pub struct RotatingTicketer {
    inner: ArcSwap<TicketerBox>,
}

struct TicketerBox(Arc<dyn ProducesTickets>);

impl RotatingTicketer {
    pub fn new() -> Result<Self> {
        Ok(RotatingTicketer {
            inner: ArcSwap::from_pointee(TicketerBox(aws_lc_rs::Ticketer::new()?)),
        })
    }

    /// Generates fresh ticket keys; every ticket issued before no longer decrypts.
    pub fn replace_keys(&self) -> Result<()> {
        self.inner
            .store(Arc::new(TicketerBox(aws_lc_rs::Ticketer::new()?)));
        Ok(())
    }
}

impl fmt::Debug for RotatingTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RotatingTicketer")
    }
}

impl ProducesTickets for RotatingTicketer {
    fn enabled(&self) -> bool {
        self.inner.load().0.enabled()
    }
    fn lifetime(&self) -> u32 {
        self.inner.load().0.lifetime()
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.load().0.encrypt(plain)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.inner.load().0.decrypt(cipher)
    }
}

/// What happens to resumable sessions when the certificate is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPolicy {
    /// Routine renewal: clients may resume and keep the (still valid) old certificate until
    /// their next full handshake.
    Keep,
    /// Rotation after a compromise: forget every session so each client sees the new
    /// certificate on its next connection.
    Invalidate,
}

/// Everything a TLS listener shares across connections: the live certificate and the session
/// resumption state. Build one per listener, then `server_config()`.
#[derive(Debug, Clone)]
pub struct LiveTls {
    cert: Arc<LiveCert>,
    cache: Arc<RotatingSessionCache>,
    ticketer: Arc<RotatingTicketer>,
}

impl LiveTls {
    pub fn new(initial: Arc<CertifiedKey>) -> Result<Self> {
        Ok(LiveTls {
            cert: Arc::new(LiveCert::new(initial)),
            cache: Arc::new(RotatingSessionCache::new()),
            ticketer: Arc::new(RotatingTicketer::new()?),
        })
    }

    pub fn resolver(&self) -> Arc<LiveCert> {
        self.cert.clone()
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.cert.current()
    }

    /// Swaps the certificate (and with [`SessionPolicy::Invalidate`] the session state) for all
    /// later handshakes, without restarting the listener.
    pub fn rotate(&self, next: Arc<CertifiedKey>, policy: SessionPolicy) -> Result<()> {
        if policy == SessionPolicy::Invalidate {
            self.ticketer.replace_keys()?;
            self.cache.clear();
        }
        self.cert.swap(next);
        Ok(())
    }

    /// Server configuration without client authentication (browsers, API clients).
    pub fn server_config(&self) -> Result<ServerConfig> {
        self.build(None)
    }

    /// Server configuration that requires a client certificate accepted by `verifier`
    /// (see [`client_verifier`]); used between Vigil servers.
    pub fn server_config_mtls(
        &self,
        verifier: Arc<dyn ClientCertVerifier>,
    ) -> Result<ServerConfig> {
        self.build(Some(verifier))
    }

    fn build(&self, verifier: Option<Arc<dyn ClientCertVerifier>>) -> Result<ServerConfig> {
        let builder = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(PROTOCOL_VERSIONS)?;
        let mut config = match verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        }
        .with_cert_resolver(self.cert.clone());
        config.session_storage = self.cache.clone();
        config.ticketer = self.ticketer.clone();
        Ok(config)
    }
}

/// A server configuration over any certificate resolver, with Vigil's protocol and cipher
/// restrictions (no session rotation; prefer [`LiveTls`]).
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<ServerConfig> {
    Ok(ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_no_client_auth()
        .with_cert_resolver(resolver))
}

fn root_store(roots: &[CertificateDer<'static>]) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).map_err(|e| {
            PkiError::Tls(format!("CA certificate not usable as trust anchor: {e}"))
        })?;
    }
    Ok(store)
}

/// Accepts only client certificates issued by one of `roots` (normally the system CA), for
/// mutual TLS between Vigil servers.
pub fn client_verifier(roots: &[CertificateDer<'static>]) -> Result<Arc<dyn ClientCertVerifier>> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(roots)?), crypto_provider())
        .build()
        .map_err(|e| PkiError::Tls(e.to_string()))
}

/// Client configuration that trusts only `roots` and, for mutual TLS, presents `identity`.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    identity: Option<Arc<CertifiedKey>>,
) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_root_certificates(root_store(roots)?);
    Ok(match identity {
        Some(id) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(id))),
        None => builder.with_no_client_auth(),
    })
}

/// Presents one fixed certificate whenever a server asks for client authentication.
struct FixedClientCert(Arc<CertifiedKey>);

impl fmt::Debug for FixedClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FixedClientCert")
    }
}

impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
