//! The audit's TLS client configuration: one `rustls::ClientConfig` shared by every probe,
//! which records any chain (so bad certificates can be judged rather than refused) and is
//! tuned for many short one-off handshakes.
//!
//! Randomness comes from the kernel (getrandom(2)) rather than aws-lc's DRBG. aws-lc seeds
//! its DRBG from CPU jitter entropy the first time a process asks it for random bytes; that
//! costs about 20 ms of CPU and 50 ms or more of wall time here, which is most of what a
//! whole audit of 200 endpoints may take (the goal is to be no slower than `nmap -sT`).
//! The client random and the ephemeral key-exchange secrets are therefore drawn from the
//! kernel and handed to aws-lc-rs (still the one crypto provider) as raw private keys.
//! These connections never carry secrets: they only show the server's certificate.

use std::sync::Arc;

use aws_lc_rs::agreement;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, NamedGroup, SignatureScheme};

/// Accepts any certificate: the audit must see and judge the chain, not refuse it. Nothing is
/// ever sent over these connections.
#[derive(Debug)]
struct AcceptAll {
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// The kernel's CSPRNG.
#[derive(Debug)]
struct KernelRandom;

impl SecureRandom for KernelRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        getrandom::fill(buf).map_err(|_| GetRandomFailed)
    }
}

/// An ECDHE group whose ephemeral secret is drawn from the kernel.
#[derive(Debug)]
struct KernelKx {
    group: NamedGroup,
    alg: &'static agreement::Algorithm,
    /// Private key length in bytes.
    len: usize,
}

static X25519: KernelKx = KernelKx {
    group: NamedGroup::X25519,
    alg: &agreement::X25519,
    len: 32,
};
static SECP256R1: KernelKx = KernelKx {
    group: NamedGroup::secp256r1,
    alg: &agreement::ECDH_P256,
    len: 32,
};
static SECP384R1: KernelKx = KernelKx {
    group: NamedGroup::secp384r1,
    alg: &agreement::ECDH_P384,
    len: 48,
};

struct KernelKxActive {
    group: NamedGroup,
    key: agreement::PrivateKey,
    public: Vec<u8>,
}

impl SupportedKxGroup for KernelKx {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let mut secret = [0u8; 48];
        let secret = &mut secret[..self.len];
        // A NIST scalar must lie below the group order; a random one does except with
        // probability about 2^-32, so a few draws always suffice.
        for _ in 0..8 {
            getrandom::fill(secret).map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
            if let Ok(key) = agreement::PrivateKey::from_private_key(self.alg, secret) {
                secret.fill(0);
                let public = key
                    .compute_public_key()
                    .map_err(|_| rustls::Error::General("cannot compute a public key".into()))?
                    .as_ref()
                    .to_vec();
                return Ok(Box::new(KernelKxActive {
                    group: self.group,
                    key,
                    public,
                }));
            }
        }
        Err(rustls::Error::General(
            "cannot make an ephemeral key exchange secret".into(),
        ))
    }

    fn name(&self) -> NamedGroup {
        self.group
    }
}

impl ActiveKeyExchange for KernelKxActive {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer = agreement::UnparsedPublicKey::new(self.key.algorithm(), peer);
        agreement::agree(
            &self.key,
            peer,
            rustls::Error::from(rustls::PeerMisbehaved::InvalidKeyShare),
            |secret| Ok(SharedSecret::from(secret)),
        )
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        self.group
    }
}

static KERNEL_RANDOM: KernelRandom = KernelRandom;

/// The configuration every probe shares.
pub fn client_config() -> Arc<rustls::ClientConfig> {
    use rustls::crypto::aws_lc_rs::{self as aws, cipher_suite as cs, kx_group};
    let defaults = aws::default_provider();
    let provider = Arc::new(CryptoProvider {
        // SHA-256 suites first: a server that follows the client's order (rustls, most
        // embedded stacks) then does its key schedule with SHA-256, which is cheaper than
        // SHA-384 on both sides. The cipher is irrelevant to the audit.
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        // Classic groups first: the audit needs the certificate, not post-quantum secrecy,
        // and a 1.2 kB hybrid key share costs both sides. The hybrid group stays offered
        // (through aws-lc's own randomness) for a server that accepts nothing else.
        kx_groups: vec![&X25519, &SECP256R1, &SECP384R1, kx_group::X25519MLKEM768],
        secure_random: &KERNEL_RANDOM,
        ..defaults
    });
    let mut schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    schemes.extend([
        SignatureScheme::RSA_PKCS1_SHA1,
        SignatureScheme::ECDSA_SHA1_Legacy,
    ]);
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("aws-lc-rs supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll { schemes }))
        .with_no_client_auth();
    // Every connection is a one-off to a different device: nothing to resume.
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_groups_agree_with_aws_lc() {
        for kx in [&X25519, &SECP256R1, &SECP384R1] {
            let ours = kx.start().unwrap();
            let theirs = agreement::PrivateKey::generate(kx.alg).unwrap();
            let their_pub = theirs.compute_public_key().unwrap();
            let expected = agreement::agree(
                &theirs,
                agreement::UnparsedPublicKey::new(kx.alg, ours.pub_key()),
                (),
                |s| Ok(s.to_vec()),
            )
            .unwrap();
            let got = ours.complete(their_pub.as_ref()).unwrap();
            assert_eq!(got.secret_bytes(), expected, "{:?}", kx.group);
        }
    }

    #[test]
    fn bad_peer_key_is_refused() {
        let ours = SECP256R1.start().unwrap();
        assert!(ours.complete(&[4u8; 65]).is_err());
        let ours = X25519.start().unwrap();
        assert!(ours.complete(&[1u8; 7]).is_err());
    }

    #[test]
    fn kernel_random_fills() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        KERNEL_RANDOM.fill(&mut a).unwrap();
        KERNEL_RANDOM.fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
