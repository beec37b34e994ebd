//! Creating keys and certificates with the installation's CA: the CA itself, the server
//! certificate, leaves for other roles (recording-server mTLS, evidence signing), and signing
//! CSRs brought by devices such as cameras.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    string::Ia5String,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, ParsedCriAttribute, X509CertificationRequest};
use zeroize::Zeroizing;

use crate::error::{CsrError, PkiError, Result};

/// Certificates start one hour in the past so that a client whose clock runs slightly behind
/// still accepts a certificate issued a moment ago.
const BACKDATE: Duration = Duration::hours(1);

/// Upper bound for certificates Vigil signs for others (the CA/Browser Forum's old limit; many
/// clients refuse longer server certificates).
pub const MAX_LEAF_DAYS: u32 = 825;

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).expect("system random generator failed");
    b
}

/// A random positive 128-bit serial number.
fn random_serial() -> SerialNumber {
    let mut b = random_bytes::<16>();
    b[0] &= 0x7f;
    b[0] |= 0x01;
    SerialNumber::from_slice(&b)
}

/// Parses a host name or IP address into a subject alternative name.
pub(crate) fn san_for(name: &str) -> Result<SanType> {
    let name = name.trim();
    let bad = |reason: &str| PkiError::BadName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if let Ok(ip) = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(SanType::IpAddress(ip));
    }
    if name.is_empty() || name.len() > 253 {
        return Err(bad("a host name must have 1 to 253 characters"));
    }
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if i == 0 && *label == "*" && labels.len() > 2 {
            continue;
        }
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each dot-separated part must have 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(
                "use only letters, digits and '-' (write internationalised names in punycode)",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a part may not start or end with '-'"));
        }
    }
    let ia5 = Ia5String::try_from(name.to_ascii_lowercase()).map_err(|e| bad(&e.to_string()))?;
    Ok(SanType::DnsName(ia5))
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Vigil");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Generated CA: certificate PEM and its PKCS#8 key PEM.
pub(crate) struct GeneratedPair {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key_pem: Zeroizing<String>,
}

pub(crate) fn generate_ca(
    installation_id: &str,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<GeneratedPair> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&format!("Vigil CA {installation_id}"));
    // Path length 0: the CA signs end-entity certificates only, never further CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(validity_days));
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key)?;
    Ok(GeneratedPair {
        cert_pem: cert.pem(),
        cert_der: cert.der().clone(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// The CA as a signer.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    pub(crate) fn load(cert_pem: &str, key_pem: &str) -> std::result::Result<Self, String> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("CA key: {e}"))?;
        let issuer =
            Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| format!("CA certificate: {e}"))?;
        Ok(Ca {
            issuer,
            cert_pem: cert_pem.to_string(),
        })
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafUsage {
    /// TLS server (EKU serverAuth).
    TlsServer,
    /// TLS client, e.g. a recording server connecting to the management server.
    TlsClient,
    /// Both, for servers that also connect to each other with mutual TLS.
    TlsServerAndClient,
    /// Signing data such as the evidence ledger (KU digitalSignature + contentCommitment, EKU
    /// documentSigning), never valid for TLS.
    Signing,
}

/// Key algorithm of a new leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeafKeyType {
    #[default]
    EcdsaP256,
    Ed25519,
}

/// A request for a certificate issued by the system CA.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    pub common_name: String,
    /// Host names and IP addresses; may be empty for signing certificates.
    pub sans: Vec<String>,
    pub validity_days: u32,
    pub usage: LeafUsage,
    pub key_type: LeafKeyType,
}

/// A new certificate and its private key. The key never appears in `Debug` output.
pub struct IssuedLeaf {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    /// PKCS#8 PEM; write it with [`crate::write_secret_file`] (mode 0600).
    pub key_pem: Zeroizing<String>,
    pub key_der: PrivatePkcs8KeyDer<'static>,
    /// The leaf followed by the CA certificate.
    pub chain_pem: String,
}

impl std::fmt::Debug for IssuedLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLeaf")
            .field(
                "sha256",
                &crate::certinfo::fingerprint_sha256(&self.cert_der),
            )
            .finish_non_exhaustive()
    }
}

impl IssuedLeaf {
    /// The certificate and key as rustls uses them (for TLS usages).
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>> {
        let key = crate::import::load_signing_key(&self.key_der)?;
        Ok(Arc::new(CertifiedKey::new(
            vec![self.cert_der.clone()],
            key,
        )))
    }
}

impl Ca {
    pub(crate) fn issue(&self, req: &LeafRequest, now: OffsetDateTime) -> Result<IssuedLeaf> {
        if req.validity_days == 0 || req.validity_days > 3650 {
            return Err(PkiError::BadOption(format!(
                "validity of {} days: use 1 to 3650 days",
                req.validity_days
            )));
        }
        if req.common_name.trim().is_empty() {
            return Err(PkiError::BadOption(
                "a certificate needs a common name".into(),
            ));
        }
        let alg = match req.key_type {
            LeafKeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            LeafKeyType::Ed25519 => &rcgen::PKCS_ED25519,
        };
        let key = KeyPair::generate_for(alg)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(req.common_name.trim());
        params.subject_alt_names = req.sans.iter().map(|s| san_for(s)).collect::<Result<_>>()?;
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(i64::from(req.validity_days));
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        params.is_ca = IsCa::ExplicitNoCa;
        match req.usage {
            LeafUsage::Signing => {
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::ContentCommitment,
                ];
                // id-kp-documentSigning (RFC 9336): an explicit EKU keeps the certificate from
                // being accepted for TLS by anyone, which an empty EKU would allow.
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(vec![
                    1, 3, 6, 1, 5, 5, 7, 3, 36,
                ])];
            }
            usage => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                if matches!(usage, LeafUsage::TlsServer | LeafUsage::TlsServerAndClient) {
                    params
                        .extended_key_usages
                        .push(ExtendedKeyUsagePurpose::ServerAuth);
                }
                if matches!(usage, LeafUsage::TlsClient | LeafUsage::TlsServerAndClient) {
                    params
                        .extended_key_usages
                        .push(ExtendedKeyUsagePurpose::ClientAuth);
                }
            }
        }
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivatePkcs8KeyDer::from(key.serialize_der());
        Ok(IssuedLeaf {
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: Zeroizing::new(key.serialize_pem()),
            key_der,
        })
    }

    /// Signs a PKCS#10 request. Whatever the request asks for, the result is an end-entity
    /// certificate for TLS server and client use: CA flag, key usages and validity come from
    /// here, only the subject, the public key and the names come from the request.
    pub(crate) fn sign_csr(
        &self,
        csr_pem: &str,
        days: u32,
        now: OffsetDateTime,
    ) -> std::result::Result<String, CsrError> {
        self.sign_csr_as(csr_pem, days, now, None)
    }

    /// [`Ca::sign_csr`], with the subject set to `common_name` (organisation Vigil) instead of
    /// the request's when given: a joining recording server gets the name its token was made
    /// for, whatever its request says.
    pub(crate) fn sign_csr_as(
        &self,
        csr_pem: &str,
        days: u32,
        now: OffsetDateTime,
        common_name: Option<&str>,
    ) -> std::result::Result<String, CsrError> {
        if days == 0 || days > MAX_LEAF_DAYS {
            return Err(CsrError::BadValidity { days });
        }
        let blocks = pem::parse_many(csr_pem).map_err(|e| CsrError::NotPem {
            detail: e.to_string(),
        })?;
        let block = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE REQUEST" || b.tag() == "NEW CERTIFICATE REQUEST")
            .ok_or_else(|| CsrError::NotPem {
                detail: if blocks.is_empty() {
                    "the input has no PEM block".into()
                } else {
                    format!(
                        "found only {}",
                        blocks
                            .iter()
                            .map(|b| b.tag())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            })?;
        let (_, parsed) = X509CertificationRequest::from_der(block.contents())
            .map_err(|_| CsrError::Malformed)?;
        let unsupported = unsupported_extensions(&parsed);
        let is_rsa = parsed
            .certification_request_info
            .subject_pki
            .algorithm
            .algorithm
            == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
        let mut req = CertificateSigningRequestParams::from_der(&block.contents().into()).map_err(
            |e| match e {
                rcgen::Error::InvalidCertificationRequestSignature => CsrError::BadSignature,
                rcgen::Error::UnsupportedExtension => CsrError::UnsupportedExtension {
                    extensions: if unsupported.is_empty() {
                        "(unrecognised)".into()
                    } else {
                        unsupported.join(", ")
                    },
                },
                rcgen::Error::UnsupportedSignatureAlgorithm => CsrError::UnsupportedAlgorithm,
                _ => CsrError::Malformed,
            },
        )?;
        let p = &mut req.params;
        if let Some(cn) = common_name {
            p.distinguished_name = dn(cn);
        }
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if is_rsa {
            // RSA key exchange in TLS 1.2 clients still expects keyEncipherment.
            p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.name_constraints = None;
        p.crl_distribution_points.clear();
        p.custom_extensions.clear();
        p.not_before = now - BACKDATE;
        p.not_after = now + Duration::days(i64::from(days));
        p.serial_number = Some(random_serial());
        p.use_authority_key_identifier_extension = true;
        if p.subject_alt_names.is_empty() {
            // Clients ignore the CN for name checks; carry it over as a SAN when it is a name.
            let cn = p
                .distinguished_name
                .get(&DnType::CommonName)
                .and_then(|v| match v {
                    rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_string()),
                    rcgen::DnValue::Utf8String(s) => Some(s.clone()),
                    _ => None,
                });
            let san = cn
                .and_then(|cn| san_for(&cn).ok())
                .ok_or(CsrError::NoNames)?;
            p.subject_alt_names.push(san);
        }
        let cert = req
            .signed_by(&self.issuer)
            .map_err(|e| CsrError::Sign(e.to_string()))?;
        Ok(cert.pem())
    }
}

/// Names (or OIDs) of requested extensions rcgen cannot carry over.
fn unsupported_extensions(csr: &X509CertificationRequest<'_>) -> Vec<String> {
    use x509_parser::oid_registry::{
        OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
        OID_X509_EXT_SUBJECT_ALT_NAME,
    };
    let mut out = Vec::new();
    for attr in csr.certification_request_info.iter_attributes() {
        if let ParsedCriAttribute::ExtensionRequest(req) = attr.parsed_attribute() {
            for ext in &req.extensions {
                let supported = [
                    OID_X509_EXT_SUBJECT_ALT_NAME,
                    OID_X509_EXT_KEY_USAGE,
                    OID_X509_EXT_EXTENDED_KEY_USAGE,
                    OID_X509_EXT_BASIC_CONSTRAINTS,
                ]
                .contains(&ext.oid);
                if !supported {
                    let registry = x509_parser::oid_registry::OidRegistry::default()
                        .with_x509()
                        .with_pkcs9();
                    let name = registry
                        .get(&ext.oid)
                        .map(|e| format!("{} ({})", e.sn(), ext.oid))
                        .unwrap_or_else(|| ext.oid.to_id_string());
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Issues the installation's TLS server certificate.
pub(crate) fn server_request(
    installation_id: &str,
    hostnames: &[String],
    validity_days: u32,
) -> LeafRequest {
    let cn = hostnames
        .iter()
        .find(|h| h.parse::<IpAddr>().is_err())
        .or(hostnames.first())
        .cloned()
        .unwrap_or_else(|| format!("vigil-{installation_id}"));
    LeafRequest {
        common_name: cn,
        sans: hostnames.to_vec(),
        validity_days,
        usage: LeafUsage::TlsServerAndClient,
        key_type: LeafKeyType::EcdsaP256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_parsing_accepts_names_and_addresses() {
        assert!(matches!(san_for("127.0.0.1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san_for("::1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san_for("[fe80::1]"), Ok(SanType::IpAddress(_))));
        assert!(matches!(
            san_for("Vigil.Example.com"),
            Ok(SanType::DnsName(_))
        ));
        assert!(matches!(san_for("*.example.com"), Ok(SanType::DnsName(_))));
    }

    #[test]
    fn san_parsing_rejects_bad_names_with_reason() {
        for bad in [
            "",
            "a..b",
            "-x.com",
            "x-.com",
            "exa mple.com",
            "bad_name.com",
            "*.com",
        ] {
            let err = san_for(bad).unwrap_err();
            assert!(matches!(err, PkiError::BadName { .. }), "{bad}: {err}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(san_for(&long).unwrap_err().to_string().contains("63"));
    }

    #[test]
    fn serials_are_positive_and_distinct() {
        let a = random_serial().to_bytes();
        let b = random_serial().to_bytes();
        assert_ne!(a, b);
        assert_eq!(a[0] & 0x80, 0);
    }
}
