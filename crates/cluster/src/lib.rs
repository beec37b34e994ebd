//! vigil-cluster: recording servers joined to a management server (docs/design/cluster.md).
//!
//! - [`token`]: one-time enrolment tokens (secret + the installation CA's SHA-256),
//! - [`registry`]: the management server's registry of tokens and servers (`cluster.db`),
//! - [`protocol`]: the inter-server messages (enrolment, heartbeat) and their bounded parsers,
//! - [`tls`]: client-certificate checking against a live revocation set, and the joining
//!   server's check of the management certificate against the token's CA hash,
//! - [`listener`]: the mutual-TLS listeners (management 8444, recording 9443) that close a
//!   connection as soon as its certificate is revoked,
//! - [`client`]: the joining and reporting side (HTTP/1.1 over rustls),
//! - [`member`]: what a joined recording server keeps on disk.
//!
//! The application layer (`vigil_app::cluster`) adds the audit log, events and the PKI.

pub mod client;
pub mod listener;
pub mod member;
pub mod protocol;
pub mod registry;
pub mod tls;
pub mod token;

pub use registry::{AssignRefusal, Assignment, Registry, ServerRow, ServerState, TokenRow};
pub use token::{JoinToken, TokenError};

/// Errors of this crate that are not a refusal of outside input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cluster registry {path}: {source}")]
    Db {
        path: std::path::PathBuf,
        source: rusqlite::Error,
    },
    #[error("the system random generator failed")]
    Random,
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] vigil_pki::PkiError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Fills `buf` from the operating system's generator (through aws-lc-rs, the TLS provider).
pub(crate) fn random(buf: &mut [u8]) -> Result<()> {
    use aws_lc_rs::rand::SecureRandom;
    aws_lc_rs::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::Random)
}

/// SHA-256 of a certificate's DER as lower-case hex: how the registry, tokens and revocation
/// lists name certificates.
pub fn cert_sha256(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

pub(crate) mod hex {
    //! Lower-case hex for tokens and fingerprints.

    pub fn encode(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Exactly `N` bytes from `2N` lower-case hex digits, else `None`.
    pub fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
        let b = text.as_bytes();
        if b.len() != 2 * N {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
        }
        Some(out)
    }
}
