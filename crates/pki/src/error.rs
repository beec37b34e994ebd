//! Error types of the PKI crate. Every message says what is wrong, and for material supplied
//! from outside what would be accepted instead; which command or API call to use next is
//! added by the front end that shows the error (`vigil pki ...` or the API).

use std::path::PathBuf;

use time::OffsetDateTime;

/// Why certificate or key material supplied from outside could not be used.
///
/// Produced by [`crate::import::parse_import`] and everything built on it (`import`,
/// `install_cert`, `sign_csr`). Variants are distinct so callers and tests can tell cases apart.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error(
        "the certificate file is empty: supply the PEM certificate chain (server certificate first)"
    )]
    EmptyCertificate,
    #[error("the private key file is empty: supply the PEM private key of the certificate")]
    EmptyKey,
    #[error(
        "no PEM data found in the {slot} file ({detail}): the file must contain blocks like \
         '-----BEGIN {expected}-----'; convert DER files with `openssl x509 -inform der` or \
         `openssl pkey -inform der`"
    )]
    NotPem {
        slot: &'static str,
        expected: &'static str,
        detail: String,
    },
    #[error(
        "the certificate file holds a private key ({label}) but no certificate: the certificate \
         and key files were probably swapped"
    )]
    KeyInCertSlot { label: String },
    #[error(
        "the private key file holds a certificate but no private key: the certificate and key \
         files were probably swapped"
    )]
    CertInKeySlot,
    #[error(
        "the certificate file contains no certificate, only PEM blocks of type {labels}: supply \
         blocks of type CERTIFICATE"
    )]
    NoCertificate { labels: String },
    #[error(
        "the private key file contains no private key, only PEM blocks of type {labels}: supply \
         a PRIVATE KEY, ENCRYPTED PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block"
    )]
    NoPrivateKey { labels: String },
    #[error(
        "the private key file contains {count} private keys: supply exactly the key of the \
         server certificate"
    )]
    SeveralKeys { count: usize },
    #[error("certificate #{index} in the file cannot be parsed ({reason}): it is not valid X.509")]
    BadCertificate { index: usize, reason: String },
    #[error(
        "the private key cannot be parsed ({reason}): supply a PKCS#8, RSA or EC private key \
         in PEM"
    )]
    BadKey { reason: String },
    #[error("the private key is encrypted: supply its passphrase")]
    PassphraseRequired,
    #[error("wrong passphrase for the encrypted private key: check the passphrase and retry")]
    WrongPassphrase,
    #[error(
        "the private key is encrypted with {algorithm}, which Vigil does not support: \
         re-encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.p8` or use \
         AES-128/192/256-CBC"
    )]
    UnsupportedEncryption { algorithm: String },
    #[error(
        "the private key type is not supported for TLS ({reason}): use an ECDSA (P-256/P-384) \
         or RSA (2048 bits or more) key"
    )]
    UnsupportedKey { reason: String },
    #[error(
        "the private key does not belong to the certificate '{subject}': supply the key that was \
         generated together with this certificate (compare `openssl x509 -pubkey -noout` with \
         `openssl pkey -pubout`)"
    )]
    KeyMismatch { subject: String },
    #[error(
        "the certificate '{subject}' expired on {not_after}: obtain a renewed certificate from \
         its CA"
    )]
    Expired {
        subject: String,
        not_after: OffsetDateTime,
    },
    #[error(
        "the certificate '{subject}' is not valid before {not_before}: check this server's clock \
         or wait until then"
    )]
    NotYetValid {
        subject: String,
        not_before: OffsetDateTime,
    },
    #[error(
        "certificate #{index} '{subject}' is not signed by the next certificate in the file \
         '{next_subject}': order the file as server certificate first, then each issuer up to \
         the root, and remove unrelated certificates"
    )]
    ChainBroken {
        index: usize,
        subject: String,
        next_subject: String,
    },
    #[error(
        "the certificate chain is incomplete: it ends at '{last_subject}', issued by \
         '{missing_issuer}', which is not in the file: append the certificate of \
         '{missing_issuer}' (and its issuers up to the root) to the certificate file"
    )]
    IncompleteChain {
        last_subject: String,
        missing_issuer: String,
    },
    #[error(
        "the certificate '{subject}' is not allowed for TLS servers (its extended key usage \
         lacks serverAuth): request a certificate with extended key usage 'TLS Web Server \
         Authentication'"
    )]
    NotForServerAuth { subject: String },
    #[error(
        "the certificate '{subject}' does not match the pending certificate request: it was \
         issued for a different key"
    )]
    NotForPendingCsr { subject: String },
}

/// Why a certificate signing request could not be signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    #[error(
        "no certificate request found (expected a PEM block '-----BEGIN CERTIFICATE \
         REQUEST-----'): {detail}"
    )]
    NotPem { detail: String },
    #[error("the certificate request cannot be parsed: it is not a valid PKCS#10 request")]
    Malformed,
    #[error(
        "the certificate request's signature is invalid: the request was altered or corrupted; \
         create a new one on the device"
    )]
    BadSignature,
    #[error(
        "the certificate request asks for extension(s) {extensions} that the Vigil CA does not \
         sign (only subjectAltName, keyUsage, extendedKeyUsage and basicConstraints are \
         accepted): create the request without them"
    )]
    UnsupportedExtension { extensions: String },
    #[error(
        "the certificate request uses an unsupported key or signature algorithm: use an \
         ECDSA P-256/P-384 or RSA 2048+ key"
    )]
    UnsupportedAlgorithm,
    #[error(
        "the certificate request has neither subject alternative names nor a common name usable \
         as a host name: add `-addext subjectAltName=DNS:host,IP:addr` when creating it"
    )]
    NoNames,
    #[error("requested validity of {days} days is out of range: use 1 to 825 days")]
    BadValidity { days: u32 },
    #[error("cannot sign the request: {0}")]
    Sign(String),
}

/// Every error of the PKI store.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("no PKI found in {dir}")]
    NotInitialized { dir: PathBuf },
    #[error(
        "a PKI already exists in {dir}: it was kept; delete the directory only if you want a \
         new CA (every client must then trust the new CA certificate)"
    )]
    AlreadyInitialized { dir: PathBuf },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({reason})")]
    Corrupt { path: PathBuf, reason: String },
    #[error("invalid host name or address '{name}' for a certificate: {reason}")]
    BadName { name: String, reason: String },
    #[error("invalid option: {0}")]
    BadOption(String),
    #[error("no certificate request is pending")]
    NoPendingCsr,
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error(transparent)]
    CameraCa(#[from] crate::camera_cas::CameraCaError),
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Generate(e.to_string())
    }
}

impl From<rustls::Error> for PkiError {
    fn from(e: rustls::Error) -> Self {
        PkiError::Tls(e.to_string())
    }
}

pub type Result<T, E = PkiError> = std::result::Result<T, E>;
