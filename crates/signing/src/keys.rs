//! Signing keys and certificates: the recording server's Ed25519 identity (issued by the
//! installation CA, stored 0600), trust anchors, and the certificate checks every verifier runs.
//!
//! Key generation, certificate issuance and signing use rcgen/aws-lc-rs; signature verification
//! uses ed25519-dalek (pure Rust), and the ECDSA/Ed25519 check of a certificate against its CA
//! goes through x509-parser's aws-lc-rs backend, so there is exactly one crypto provider.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ED25519, SigningKey as _,
};
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

use crate::record::Hash;

/// SHA-256 of a raw 32-byte Ed25519 public key: how ledger records name a key.
pub type KeyId = Hash;

/// Computes the key id of a raw Ed25519 public key.
pub fn key_id(public_key: &[u8; 32]) -> KeyId {
    Sha256::digest(public_key).into()
}

/// Key id of the Ed25519 key in a certificate, without judging the certificate.
pub fn cert_key_id(cert_der: &[u8]) -> Result<KeyId, String> {
    let (_, cert) = parse_x509_certificate(cert_der)
        .map_err(|e| format!("certificate is not valid X.509: {e}"))?;
    let raw: [u8; 32] = cert
        .public_key()
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| "certificate does not hold an Ed25519 key".to_string())?;
    Ok(key_id(&raw))
}

/// File names inside a key directory written by [`SigningIdentity::save`].
pub const KEY_FILE: &str = "signing.key";
pub const CERT_FILE: &str = "signing.crt";
pub const CA_FILE: &str = "signing-ca.crt";

/// Errors creating, loading or saving a signing identity.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the CA certificate or key could not be used: {0}")]
    Ca(String),
    #[error("issuing the signing certificate failed: {0}")]
    Issue(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {what}")]
    Invalid { path: String, what: String },
    #[error(
        "{path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}` (the signing key must stay private)"
    )]
    Permissions { path: String, mode: u32 },
    #[error("signing failed: {0}")]
    Sign(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A recording server's signing key with its certificate and the CA certificate that issued it.
///
/// The private key never appears in `Debug` output or logs.
pub struct SigningIdentity {
    key: KeyPair,
    public: [u8; 32],
    key_id: KeyId,
    cert_der: Vec<u8>,
    ca_cert_der: Vec<u8>,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("key_id", &hex::encode(self.key_id))
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl SigningIdentity {
    /// Generates a new Ed25519 key and has the CA (PEM certificate + PEM PKCS#8 key) issue its
    /// certificate, valid from now for `validity`.
    pub fn issue(
        ca_cert_pem: &str,
        ca_key_pem: &str,
        server_name: &str,
        validity: std::time::Duration,
    ) -> Result<Self, KeyError> {
        let ca_key = KeyPair::from_pem(ca_key_pem)
            .map_err(|e| KeyError::Ca(format!("CA private key is not a usable PEM key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)
            .map_err(|e| KeyError::Ca(format!("CA certificate PEM is not usable: {e}")))?;
        let ca_der = pem_to_der(ca_cert_pem, "CA certificate")?;
        Self::issue_with(&issuer, &ca_der, server_name, validity)
    }

    /// Like [`issue`](Self::issue) with an rcgen issuer already at hand; `ca_cert_der` is the
    /// issuer's certificate, kept with the identity so exports can carry it.
    pub fn issue_with(
        issuer: &Issuer<'_, impl rcgen::SigningKey>,
        ca_cert_der: &[u8],
        server_name: &str,
        validity: std::time::Duration,
    ) -> Result<Self, KeyError> {
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("vigil recording signing key: {server_name}"),
        );
        dn.push(DnType::OrganizationName, "Vigil");
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = ::time::OffsetDateTime::now_utc();
        params.not_before = now - ::time::Duration::minutes(5);
        params.not_after = now + validity;
        // A leaf outlasting its CA would sign recordings that no longer verify.
        if let Ok((_, ca)) = parse_x509_certificate(ca_cert_der) {
            let ca_end = ca.validity().not_after.to_datetime();
            if ca_end < params.not_after {
                params.not_after = ca_end;
            }
        }
        let cert = params.signed_by(&key, issuer)?;
        Self::from_parts(key, cert.der().to_vec(), ca_cert_der.to_vec())
    }

    fn from_parts(key: KeyPair, cert_der: Vec<u8>, ca_cert_der: Vec<u8>) -> Result<Self, KeyError> {
        let public: [u8; 32] = key
            .public_key_raw()
            .try_into()
            .map_err(|_| KeyError::Invalid {
                path: "signing key".into(),
                what: "not an Ed25519 key".into(),
            })?;
        let (_, cert) = parse_x509_certificate(&cert_der).map_err(|e| KeyError::Invalid {
            path: "signing certificate".into(),
            what: e.to_string(),
        })?;
        if cert.public_key().subject_public_key.data.as_ref() != public {
            return Err(KeyError::Invalid {
                path: "signing certificate".into(),
                what: "its public key does not belong to the signing key".into(),
            });
        }
        Ok(Self {
            key_id: key_id(&public),
            key,
            public,
            cert_der,
            ca_cert_der,
        })
    }

    /// Loads `signing.key` (PKCS#8 PEM, must be mode 0600 or stricter), `signing.crt` and
    /// `signing-ca.crt` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let key_path = dir.join(KEY_FILE);
        let meta = fs::metadata(&key_path).map_err(io_err(&key_path))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: key_path.display().to_string(),
                mode,
            });
        }
        let key_pem = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| KeyError::Invalid {
            path: key_path.display().to_string(),
            what: format!("not a PKCS#8 PEM private key ({e})"),
        })?;
        if key.algorithm() != &PKCS_ED25519 {
            return Err(KeyError::Invalid {
                path: key_path.display().to_string(),
                what: "the key is not Ed25519".into(),
            });
        }
        let cert_path = dir.join(CERT_FILE);
        let cert_pem = fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let ca_path = dir.join(CA_FILE);
        let ca_pem = fs::read_to_string(&ca_path).map_err(io_err(&ca_path))?;
        Self::from_parts(
            key,
            pem_to_der(&cert_pem, &cert_path.display().to_string())?,
            pem_to_der(&ca_pem, &ca_path.display().to_string())?,
        )
    }

    /// Writes the identity to `dir` (created 0700 if missing); the key file is created 0600
    /// and replaced atomically.
    pub fn save(&self, dir: &Path) -> Result<(), KeyError> {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        }
        write_atomic(
            &dir.join(KEY_FILE),
            self.key.serialize_pem().as_bytes(),
            0o600,
        )?;
        write_atomic(&dir.join(CERT_FILE), self.cert_pem().as_bytes(), 0o644)?;
        write_atomic(&dir.join(CA_FILE), self.ca_cert_pem().as_bytes(), 0o644)?;
        Ok(())
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }
    pub fn cert_pem(&self) -> String {
        der_to_pem(&self.cert_der)
    }
    pub fn ca_cert_der(&self) -> &[u8] {
        &self.ca_cert_der
    }
    pub fn ca_cert_pem(&self) -> String {
        der_to_pem(&self.ca_cert_der)
    }

    /// Ed25519 signature over `msg`.
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<[u8; 64], KeyError> {
        let sig = self
            .key
            .sign(msg)
            .map_err(|e| KeyError::Sign(e.to_string()))?;
        sig.try_into()
            .map_err(|_| KeyError::Sign("Ed25519 signature is not 64 bytes".into()))
    }
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Decodes the first CERTIFICATE block of a PEM string.
pub fn pem_to_der(pem: &str, what: &str) -> Result<Vec<u8>, KeyError> {
    let (_, p) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| KeyError::Invalid {
            path: what.to_string(),
            what: format!("no PEM certificate found ({e})"),
        })?;
    if p.label != "CERTIFICATE" {
        return Err(KeyError::Invalid {
            path: what.to_string(),
            what: format!("expected a CERTIFICATE PEM block, found {}", p.label),
        });
    }
    Ok(p.contents)
}

/// PEM-encodes a DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = match chunk.len() {
            3 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8 | chunk[2] as u32,
            2 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8,
            _ => (chunk[0] as u32) << 16,
        };
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// SHA-256 fingerprint (lowercase hex) of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// [`fingerprint`] as bytes.
pub fn fingerprint_bytes(der: &[u8]) -> Hash {
    Sha256::digest(der).into()
}

/// A SHA-256 fingerprint as people copy it, to 64 lowercase hex digits (the form of
/// [`fingerprint`]), or `None` when it is not one. Accepted: `AB:CD:…` (OpenSSL, `vigil pki
/// status`), plain hex, a `sha256:`/`SHA256:` prefix, a whole `sha256 Fingerprint=…` line of
/// `openssl x509 -fingerprint`, and spaces or dashes between the digit pairs.
pub fn parse_fingerprint(text: &str) -> Option<String> {
    let t = text.trim();
    let t = t
        .rsplit_once('=')
        .map(|(_, v)| v)
        .or_else(|| {
            t.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("sha256:"))
                .map(|_| &t[7..])
        })
        .unwrap_or(t);
    let hex: String = t
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// A trusted installation CA certificate.
#[derive(Clone)]
pub struct CaCert {
    der: Vec<u8>,
}

impl std::fmt::Debug for CaCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaCert(sha256:{})", self.fingerprint())
    }
}

impl CaCert {
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_der(pem_to_der(pem, "CA certificate")?)
    }
    pub fn from_der(der: Vec<u8>) -> Result<Self, KeyError> {
        let (rest, cert) = parse_x509_certificate(&der).map_err(|e| KeyError::Invalid {
            path: "CA certificate".into(),
            what: e.to_string(),
        })?;
        if !rest.is_empty() {
            return Err(KeyError::Invalid {
                path: "CA certificate".into(),
                what: "trailing bytes after the certificate".into(),
            });
        }
        if !cert.is_ca() {
            return Err(KeyError::Invalid {
                path: "CA certificate".into(),
                what: "the certificate is not a CA (basicConstraints cA is not set)".into(),
            });
        }
        Ok(Self { der })
    }
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.der)
    }
}

/// Why a signing certificate is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertProblem {
    /// Not issued by any trusted CA.
    UnknownIssuer(String),
    /// Malformed, expired at signing time, wrong key type, or a CA certificate.
    Bad(String),
}

impl std::fmt::Display for CertProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertProblem::UnknownIssuer(d) | CertProblem::Bad(d) => f.write_str(d),
        }
    }
}

/// A signing certificate that passed [`check_signing_cert`].
#[derive(Clone)]
pub struct CheckedKey {
    pub key_id: KeyId,
    pub key: ed25519_dalek::VerifyingKey,
    pub not_before: i64,
    pub not_after: i64,
    pub subject: String,
}

const OID_ED25519: &str = "1.3.101.112";

/// Checks that `cert_der` is an Ed25519 end-entity certificate issued by one of `cas`.
/// Validity is checked per signature (at its signing time) by the caller via `not_before`/
/// `not_after`, because recordings must still verify after the certificate has expired.
pub fn check_signing_cert(cert_der: &[u8], cas: &[CaCert]) -> Result<CheckedKey, CertProblem> {
    let (rest, cert) = parse_x509_certificate(cert_der).map_err(|e| {
        CertProblem::Bad(format!("signing certificate is not valid DER X.509: {e}"))
    })?;
    if !rest.is_empty() {
        return Err(CertProblem::Bad(
            "trailing bytes after the signing certificate".into(),
        ));
    }
    let subject = cert.subject().to_string();
    let mut issued = false;
    let mut window = None;
    for ca in cas {
        let Ok((_, ca_cert)) = parse_x509_certificate(&ca.der) else {
            continue;
        };
        if ca_cert.subject().as_raw() != cert.issuer().as_raw() {
            continue;
        }
        if cert.verify_signature(Some(ca_cert.public_key())).is_ok() {
            // A signature is only good while both the leaf and its CA were valid.
            let cv = ca_cert.validity();
            let lv = cert.validity();
            window = Some((
                lv.not_before.timestamp().max(cv.not_before.timestamp()),
                lv.not_after.timestamp().min(cv.not_after.timestamp()),
            ));
            issued = true;
            break;
        }
    }
    if !issued {
        return Err(CertProblem::UnknownIssuer(format!(
            "signing certificate \"{subject}\" (issuer \"{}\") was not issued by a trusted CA",
            cert.issuer()
        )));
    }
    if cert.is_ca() {
        return Err(CertProblem::Bad(format!(
            "\"{subject}\" is a CA certificate, not a signing key"
        )));
    }
    if let Ok(Some(ku)) = cert.key_usage()
        && !ku.value.digital_signature()
    {
        return Err(CertProblem::Bad(format!(
            "\"{subject}\" does not allow digitalSignature key usage"
        )));
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != OID_ED25519 {
        return Err(CertProblem::Bad(format!(
            "\"{subject}\" does not hold an Ed25519 key"
        )));
    }
    let raw: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| CertProblem::Bad(format!("\"{subject}\" has a malformed Ed25519 key")))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&raw)
        .map_err(|_| CertProblem::Bad(format!("\"{subject}\" has an invalid Ed25519 point")))?;
    let (not_before, not_after) = window.expect("set when issued");
    Ok(CheckedKey {
        key_id: key_id(&raw),
        key,
        not_before,
        not_after,
        subject,
    })
}

/// Why a signature check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigProblem {
    /// The certificate (or its CA) was not valid at the claimed signing time.
    CertNotValid(String),
    /// The signature does not match the data: the signed data was changed.
    Mismatch,
}

impl CheckedKey {
    /// Verifies a ledger signature and that the certificate was valid at the signing time.
    pub fn verify_at(&self, msg: &[u8], sig: &[u8; 64], at_us: i64) -> Result<(), SigProblem> {
        let at_s = at_us.div_euclid(1_000_000);
        if at_s < self.not_before || at_s > self.not_after {
            return Err(SigProblem::CertNotValid(format!(
                "signature made at {} while certificate \"{}\" was not valid ({} .. {})",
                crate::fmt_time(at_us),
                self.subject,
                crate::fmt_time(self.not_before * 1_000_000),
                crate::fmt_time(self.not_after * 1_000_000)
            )));
        }
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        self.key
            .verify_strict(msg, &sig)
            .map_err(|_| SigProblem::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_fingerprint;

    #[test]
    fn fingerprints_are_read_in_every_notation_people_copy() {
        let canonical = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        for input in [
            canonical.clone(),
            colons.clone(),
            format!("sha256:{colons}"),
            format!("SHA256:{canonical}"),
            format!("sha256 Fingerprint={colons}\n"),
            vec!["ab"; 32].join(" "),
            vec!["Ab"; 32].join("-"),
        ] {
            assert_eq!(
                parse_fingerprint(&input).as_deref(),
                Some(&*canonical),
                "{input}"
            );
        }
        for bad in [
            "",
            "ab",
            &"ab".repeat(31),
            &"zz".repeat(32),
            &"ab".repeat(33),
        ] {
            assert_eq!(parse_fingerprint(bad), None, "{bad}");
        }
    }
}
