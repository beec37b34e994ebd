//! TLS between Vigil servers: client certificates checked against the installation CA *and* a
//! revocation set that changes while the listener runs ([`RevokingVerifier`]), and the joining
//! server's first contact, where the only trust it has is the CA hash in its token
//! ([`TokenCaVerifier`]). Crypto provider, versions and suites are vigil-pki's.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls::{ClientConfig, ServerConfig, SignatureScheme};

use crate::{Error, Result};

/// The certificates refused although the CA issued them, by SHA-256 (hex). Shared by a
/// listener's verifier (new handshakes) and its connections (which close when their peer's
/// certificate is added).
#[derive(Debug)]
pub struct RevocationSet {
    set: ArcSwap<HashSet<String>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl RevocationSet {
    pub fn new(initial: impl IntoIterator<Item = String>) -> Arc<Self> {
        Arc::new(RevocationSet {
            set: ArcSwap::from_pointee(initial.into_iter().collect()),
            changed: tokio::sync::watch::Sender::new(0),
        })
    }

    pub fn contains(&self, cert_sha256: &str) -> bool {
        self.set.load().contains(cert_sha256)
    }

    /// Replaces the set; returns whether it changed (then connections re-check their peer).
    pub fn replace(&self, list: impl IntoIterator<Item = String>) -> bool {
        let next: HashSet<String> = list.into_iter().collect();
        if **self.set.load() == next {
            return false;
        }
        self.set.store(Arc::new(next));
        self.changed.send_modify(|g| *g += 1);
        true
    }

    pub fn snapshot(&self) -> Vec<String> {
        let mut v: Vec<String> = self.set.load().iter().cloned().collect();
        v.sort();
        v
    }

    /// Wakes on every change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Accepts a client certificate issued by the installation CA whose SHA-256 is not in the
/// revocation set. With `anonymous`, a client may also present no certificate at all (the
/// management listener's enrolment request; every other request checks for one).
pub struct RevokingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: Arc<RevocationSet>,
}

impl fmt::Debug for RevokingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokingVerifier").finish_non_exhaustive()
    }
}

impl RevokingVerifier {
    pub fn new(
        ca: &CertificateDer<'static>,
        revoked: Arc<RevocationSet>,
        anonymous: bool,
    ) -> Result<Arc<Self>> {
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone())
            .map_err(|e| Error::Tls(format!("installation CA not usable: {e}")))?;
        let builder = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            vigil_pki::tls::crypto_provider(),
        );
        let builder = if anonymous {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        let inner = builder.build().map_err(|e| Error::Tls(e.to_string()))?;
        Ok(Arc::new(RevokingVerifier { inner, revoked }))
    }
}

impl ClientCertVerifier for RevokingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        if self.revoked.contains(&crate::cert_sha256(end_entity)) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server configuration presenting `chain`/`key` and requiring client certificates per
/// [`RevokingVerifier`]. HTTP/1.1 only.
pub fn server_config(
    identity: Arc<rustls::sign::CertifiedKey>,
    verifier: Arc<RevokingVerifier>,
) -> Result<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(vigil_pki::tls::crypto_provider())
        .with_protocol_versions(vigil_pki::tls::PROTOCOL_VERSIONS)
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(Fixed(identity)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // No session resumption: a resumed session skips the client certificate check, so a
    // revoked server could come back on an old session. Full handshakes between a few
    // servers cost nothing that matters.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The joining server's check of the management server on first contact: the chain it
/// presents must contain a certificate whose SHA-256 is the token's CA hash, and the leaf must
/// verify against that certificate as the only root, for the host name in the URL.
#[derive(Debug)]
pub struct TokenCaVerifier {
    ca_sha256: [u8; 32],
    /// The CA certificate found on the last successful check (what the joining server stores).
    pub found: std::sync::Mutex<Option<CertificateDer<'static>>>,
}

impl TokenCaVerifier {
    pub fn new(ca_sha256: [u8; 32]) -> Arc<Self> {
        Arc::new(TokenCaVerifier {
            ca_sha256,
            found: std::sync::Mutex::new(None),
        })
    }
}

impl ServerCertVerifier for TokenCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let want = crate::hex::encode(&self.ca_sha256);
        let Some(ca) = intermediates.iter().find(|c| crate::cert_sha256(c) == want) else {
            return Err(rustls::Error::General(
                "the management server did not present the CA named in the token (its SHA-256 differs): the token is for another installation, or something between you intercepts the connection".into(),
            ));
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("the token's CA is not usable: {e}")))?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            vigil_pki::tls::crypto_provider(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let ok = inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)?;
        *self.found.lock().unwrap_or_else(|e| e.into_inner()) = Some(ca.clone().into_owned());
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let p = vigil_pki::tls::crypto_provider();
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &p.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let p = vigil_pki::tls::crypto_provider();
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &p.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vigil_pki::tls::crypto_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The joining server's client configuration: no client certificate yet, the management
/// server checked by [`TokenCaVerifier`].
pub fn join_client_config(verifier: Arc<TokenCaVerifier>) -> Result<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(vigil_pki::tls::crypto_provider())
        .with_protocol_versions(vigil_pki::tls::PROTOCOL_VERSIONS)
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A member's client configuration: trusts only the installation CA and presents the
/// member's certificate.
pub fn member_client_config(
    ca: &CertificateDer<'static>,
    identity: Arc<rustls::sign::CertifiedKey>,
) -> Result<ClientConfig> {
    let mut config = vigil_pki::tls::client_config(std::slice::from_ref(ca), Some(identity))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// The management server's check of a recording server it fetches video from: the leaf must
/// be exactly the certificate it issued to that server at enrolment (its SHA-256 from the
/// registry). Host names are not checked: the server is reached at the address its heartbeats
/// come from, which its certificate need not name, and the pin is narrower than any name
/// (another recording server of the installation, with a valid certificate of its own, is
/// refused).
#[derive(Debug)]
pub struct PinnedVerifier {
    cert_sha256: String,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if crate::cert_sha256(end_entity) != self.cert_sha256 {
            return Err(rustls::Error::General(
                "the recording server presented another certificate than the one it was issued when it joined".into(),
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let p = vigil_pki::tls::crypto_provider();
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &p.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let p = vigil_pki::tls::crypto_provider();
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &p.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vigil_pki::tls::crypto_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The management server's client configuration towards one recording server: presents
/// `identity` (its inter-server certificate) and accepts only the certificate `cert_sha256`.
pub fn pinned_client_config(
    cert_sha256: &str,
    identity: Arc<rustls::sign::CertifiedKey>,
) -> Result<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(vigil_pki::tls::crypto_provider())
        .with_protocol_versions(vigil_pki::tls::PROTOCOL_VERSIONS)
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
            cert_sha256: cert_sha256.to_owned(),
        }))
        .with_client_cert_resolver(Arc::new(ClientIdentity(identity)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

#[derive(Debug)]
struct ClientIdentity(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
