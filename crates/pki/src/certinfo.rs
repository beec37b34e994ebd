//! Reading facts out of X.509 certificates (names, validity, fingerprints) and checking that one
//! certificate was signed by another. Everything that inspects certificate DER lives here so the
//! rest of the crate works with plain Rust values.

use std::fmt;

use ::time::OffsetDateTime;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::*;

use crate::der::tlv;

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertSource {
    /// Created by Vigil's own CA (renewed automatically).
    Generated,
    /// Imported with its private key (`vigil pki import`); renewed by the operator.
    Imported,
    /// Issued by an external CA for a CSR made here (`vigil pki install-cert`).
    CsrInstalled,
}

impl fmt::Display for CertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertSource::Generated => "generated",
            CertSource::Imported => "imported",
            CertSource::CsrInstalled => "csr-installed",
        })
    }
}

/// What a certificate is used for in this installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertRole {
    /// The installation's own certificate authority.
    Ca,
    /// A TLS server certificate (the leaf).
    Server,
    /// An intermediate or root certificate shipped with an external server certificate.
    Chain,
    /// A CA an admin imported that camera certificates may chain to (`camera_cas`).
    CameraCa,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertRole::Ca => "ca",
            CertRole::Server => "server",
            CertRole::Chain => "chain",
            CertRole::CameraCa => "camera-ca",
        })
    }
}

/// Facts about one certificate, as shown by `vigil pki status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Subject alternative names as `DNS:name` / `IP:addr` / `URI:...` / `email:...`.
    pub sans: Vec<String>,
    /// SHA-256 of the DER, upper-case hex pairs separated by ':' (as `openssl x509 -fingerprint`).
    pub fingerprint_sha256: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub source: CertSource,
    pub role: CertRole,
    /// Whether the TLS server currently presents this certificate (or its chain).
    pub in_use: bool,
    pub is_ca: bool,
    pub der: CertificateDer<'static>,
}

impl CertInfo {
    /// Parses `der`; the caller supplies provenance.
    pub fn from_der(
        der: &CertificateDer<'_>,
        source: CertSource,
        role: CertRole,
        in_use: bool,
    ) -> Result<Self, String> {
        let parsed = ParsedCert::parse(der)?;
        Ok(CertInfo {
            subject: parsed.subject(),
            issuer: parsed.issuer(),
            sans: parsed.sans(),
            fingerprint_sha256: fingerprint_sha256(der),
            not_before: parsed.not_before(),
            not_after: parsed.not_after(),
            source,
            role,
            in_use,
            is_ca: parsed.is_ca(),
            der: der.clone().into_owned(),
        })
    }

    /// Whole days until `not_after`, rounded down; negative once expired.
    pub fn days_to_expiry(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_seconds().div_euclid(86_400)
    }

    /// Whether Vigil can renew this certificate by itself.
    pub fn renewable(&self) -> bool {
        self.source == CertSource::Generated && self.role == CertRole::Server
    }
}

/// A certificate time as the API, the audit log and the command line show it (RFC 3339, UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// SHA-256 fingerprint in OpenSSL's notation.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A parsed certificate borrowing its DER.
pub(crate) struct ParsedCert<'a> {
    pub(crate) x509: X509Certificate<'a>,
    pub(crate) der: &'a [u8],
}

impl<'a> ParsedCert<'a> {
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, String> {
        let (rest, x509) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!("{} bytes of trailing data", rest.len()));
        }
        Ok(ParsedCert { x509, der })
    }

    pub(crate) fn subject(&self) -> String {
        name_string(self.x509.subject())
    }

    pub(crate) fn issuer(&self) -> String {
        name_string(self.x509.issuer())
    }

    pub(crate) fn not_before(&self) -> OffsetDateTime {
        self.x509.validity().not_before.to_datetime()
    }

    pub(crate) fn not_after(&self) -> OffsetDateTime {
        self.x509.validity().not_after.to_datetime()
    }

    pub(crate) fn is_ca(&self) -> bool {
        self.x509.is_ca()
    }

    pub(crate) fn self_issued(&self) -> bool {
        self.x509.subject().as_raw() == self.x509.issuer().as_raw()
    }

    /// The full SubjectPublicKeyInfo DER.
    pub(crate) fn spki_der(&self) -> &[u8] {
        self.x509.public_key().raw
    }

    /// None when the certificate has no EKU extension (then any usage is allowed).
    pub(crate) fn allows_server_auth(&self) -> bool {
        match self.x509.extended_key_usage() {
            Ok(Some(eku)) => eku.value.server_auth || eku.value.any,
            Ok(None) => true,
            Err(_) => false,
        }
    }

    pub(crate) fn sans(&self) -> Vec<String> {
        let Ok(Some(san)) = self.x509.subject_alternative_name() else {
            return Vec::new();
        };
        san.value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => format!(
                        "IP:{}",
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).expect("len 4"))
                    ),
                    16 => format!(
                        "IP:{}",
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).expect("len 16"))
                    ),
                    _ => format!("IP:<{} bytes>", b.len()),
                },
                GeneralName::URI(u) => format!("URI:{u}"),
                GeneralName::RFC822Name(e) => format!("email:{e}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// Whether `issuer`'s key produced this certificate's signature.
    pub(crate) fn signed_by(&self, issuer: &ParsedCert<'_>) -> bool {
        let Some((tbs, sig_alg, signature)) = split_signed(self.der) else {
            return false;
        };
        let Some((spki_alg, public_key)) = split_spki(issuer.spki_der()) else {
            return false;
        };
        let algs = rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .all;
        algs.iter().any(|alg| {
            alg.signature_alg_id().as_ref() == sig_alg
                && alg.public_key_alg_id().as_ref() == spki_alg
                && alg.verify_signature(public_key, tbs, signature).is_ok()
        })
    }
}

/// One-line distinguished name, most specific attribute (CN) first as people read it.
pub(crate) fn name_string(name: &X509Name<'_>) -> String {
    let s = name.to_string();
    if s.is_empty() {
        "(empty name)".into()
    } else {
        s
    }
}

/// Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }.
/// Returns (tbs TLV, algorithm identifier contents, signature bytes).
fn split_signed(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (0x30, _, body, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _, rest) = tlv(body)? else {
        return None;
    };
    let (0x30, _, alg, rest) = tlv(rest)? else {
        return None;
    };
    let (0x03, _, sig, _) = tlv(rest)? else {
        return None;
    };
    // First octet of a BIT STRING counts unused bits; signatures always use whole bytes.
    let (0, sig) = sig.split_first()? else {
        return None;
    };
    Some((tbs, alg, sig))
}

/// SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }.
fn split_spki(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, _, body, _) = tlv(der)? else {
        return None;
    };
    let (0x30, _, alg, rest) = tlv(body)? else {
        return None;
    };
    let (0x03, _, key, _) = tlv(rest)? else {
        return None;
    };
    let (0, key) = key.split_first()? else {
        return None;
    };
    Some((alg, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_signed_rejects_garbage() {
        assert!(split_signed(b"not a certificate").is_none());
        assert!(split_spki(&[0x30, 0x00]).is_none());
    }
}
