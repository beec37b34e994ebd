//! Certificate checks: validity, self-signature, trust chain, names, key size, signature
//! algorithm. Parsing is done with x509-parser on the raw chain the probe recorded, so a
//! certificate rustls would refuse (1024-bit RSA, expired, wrong name) can still be judged.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use x509_parser::prelude::*;

/// What the audit needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names and IP addresses of the SAN extension.
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub common_name: Option<String>,
    /// RSA modulus size in bits, for RSA keys.
    pub rsa_bits: Option<usize>,
    pub key_type: String,
    pub signature_algorithm: String,
    pub self_signed: bool,
    /// SHA-256 of the DER, lowercase hex (the fingerprint admins pin).
    pub sha256: String,
}

pub fn sha256_hex(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(i) = hay[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Why a PEM text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("malformed BEGIN line `-----BEGIN {0}`; expected `-----BEGIN LABEL-----`")]
    BeginLine(String),
    #[error("the {label} section has no `-----END {label}-----` line")]
    NoEnd { label: String },
    /// The 1-based number of the certificate in the file.
    #[error("certificate {number} is not valid base64: {source}")]
    Base64 {
        number: usize,
        source: base64::DecodeError,
    },
    #[error("certificate {0} is empty")]
    Empty(usize),
}

/// Why a server's certificate cannot be judged, or why its chain is not trusted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CertError {
    #[error("the server's certificate cannot be parsed: {0}")]
    Unparsable(x509_parser::nom::Err<X509Error>),
    #[error("the server sent no certificate")]
    NoCertificate,
    #[error("no trusted CA certificates are configured")]
    NoTrustedCa,
    #[error("cannot build a verifier: {0}")]
    Verifier(rustls::client::VerifierBuilderError),
    #[error("not issued by a trusted CA")]
    UntrustedIssuer,
    #[error("chain does not verify: {0}")]
    DoesNotVerify(rustls::Error),
}

/// Every `CERTIFICATE` section of a PEM text (RFC 7468), in order. Other sections (keys,
/// parameters) and any text around the sections are skipped.
///
/// Certificates are public, so they are decoded with a fast base64 decoder rather than the
/// constant-time one rustls keeps for private keys: the system CA bundle holds about 150
/// certificates, and reading it is on the audit's path before the first probe starts.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    use base64::Engine as _;
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut out = Vec::new();
    let mut b64 = Vec::new();
    let mut rest = pem;
    while let Some(at) = find(rest, BEGIN) {
        let after = &rest[at + BEGIN.len()..];
        let eol = after
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(after.len());
        let label = after[..eol]
            .trim_ascii_end()
            .strip_suffix(b"-----")
            .filter(|l| !l.is_empty() && !l.contains(&b'-'))
            .ok_or_else(|| {
                PemError::BeginLine(
                    String::from_utf8_lossy(&after[..eol.min(40)])
                        .trim_end()
                        .to_string(),
                )
            })?;
        let label_text = String::from_utf8_lossy(label);
        let end_line = format!("-----END {label_text}-----");
        let body = &after[eol..];
        let end = find(body, end_line.as_bytes()).ok_or_else(|| PemError::NoEnd {
            label: label_text.to_string(),
        })?;
        if label == b"CERTIFICATE" {
            b64.clear();
            for line in body[..end].split(|&b| b == b'\n') {
                let line = line.trim_ascii();
                if line.iter().any(u8::is_ascii_whitespace) {
                    // Whitespace inside a line: rare, so the slow path is fine.
                    b64.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
                } else {
                    b64.extend_from_slice(line);
                }
            }
            let der = base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .map_err(|source| PemError::Base64 {
                    number: out.len() + 1,
                    source,
                })?;
            if der.is_empty() {
                return Err(PemError::Empty(out.len() + 1));
            }
            out.push(CertificateDer::from(der));
        }
        rest = &body[end + end_line.len()..];
    }
    Ok(out)
}

/// Parses a DER certificate.
pub fn inspect(der: &[u8]) -> Result<CertInfo, CertError> {
    let (_, cert) = parse_x509_certificate(der).map_err(CertError::Unparsable)?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns_names.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => ip_addresses.push(IpAddr::from(<[u8; 4]>::try_from(*b).expect("len 4"))),
                    16 => {
                        ip_addresses.push(IpAddr::from(<[u8; 16]>::try_from(*b).expect("len 16")))
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let (rsa_bits, key_type) = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            (Some(rsa.key_size()), "RSA".to_string())
        }
        Ok(x509_parser::public_key::PublicKey::EC(ec)) => {
            (None, format!("EC ({} bits)", ec.key_size()))
        }
        Ok(other) => (None, format!("{other:?}").chars().take(20).collect()),
        Err(_) => (None, "unknown".to_string()),
    };
    let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
    let signature_algorithm = match sig_oid.as_str() {
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassa-pss",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.3.101.112" => "ed25519",
        other => other,
    }
    .to_string();
    let self_signed =
        cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok();
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        dns_names,
        ip_addresses,
        common_name,
        rsa_bits,
        key_type,
        signature_algorithm,
        self_signed,
        sha256: sha256_hex(der),
    })
}

impl CertInfo {
    /// Whether the certificate names `host` (an IP address or a DNS name; `*.` wildcards
    /// cover one label). The CN is only used when there is no SAN, as browsers do not use it.
    pub fn matches_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return self.ip_addresses.contains(&ip)
                || (self.dns_names.is_empty()
                    && self.ip_addresses.is_empty()
                    && self
                        .common_name
                        .as_deref()
                        .and_then(|c| c.parse::<IpAddr>().ok())
                        == Some(ip));
        }
        let names: Vec<String> = if self.dns_names.is_empty() && self.ip_addresses.is_empty() {
            self.common_name
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect()
        } else {
            self.dns_names.clone()
        };
        names.iter().any(|n| {
            if let Some(suffix) = n.strip_prefix("*.") {
                host.split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix)
            } else {
                *n == host
            }
        })
    }

    /// Names for messages.
    pub fn names_text(&self) -> String {
        let mut v: Vec<String> = self.dns_names.clone();
        v.extend(self.ip_addresses.iter().map(|i| i.to_string()));
        if v.is_empty() {
            format!("CN={}", self.common_name.clone().unwrap_or_default())
        } else {
            v.join(", ")
        }
    }
}

/// Judges whether chains lead to a trusted CA. Built once per audit: the verifier holds the
/// (possibly large) system root store, which is costly to rebuild per endpoint.
#[derive(Debug, Clone)]
pub struct TrustChecker {
    verifier: Result<Arc<rustls::client::WebPkiServerVerifier>, CertError>,
}

impl TrustChecker {
    pub fn new(roots: &Arc<rustls::RootCertStore>) -> Self {
        let verifier = if roots.is_empty() {
            Err(CertError::NoTrustedCa)
        } else {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
                .build()
                .map_err(CertError::Verifier)
        };
        Self { verifier }
    }

    /// Checks that the chain leads to a trusted root. Time and name are judged separately, so
    /// the chain is checked at a moment inside the leaf's validity and name errors are
    /// ignored; the verdict therefore depends on the chain alone, not on the host.
    pub fn check(
        &self,
        chain: &[CertificateDer<'static>],
        host: &str,
        leaf: &CertInfo,
    ) -> Result<(), CertError> {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::{CertificateError, Error};
        let verifier = self.verifier.as_ref().map_err(Clone::clone)?;
        let Some((first, rest)) = chain.split_first() else {
            return Err(CertError::NoCertificate);
        };
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .unwrap_or_else(|_| ServerName::try_from("invalid.invalid").expect("static name"));
        let mid = leaf.not_before + (leaf.not_after - leaf.not_before) / 2;
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(mid.max(0) as u64));
        match verifier.verify_server_cert(first, rest, &name, &[], at) {
            Ok(_) => Ok(()),
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(()),
            Err(Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            )) => Err(CertError::UntrustedIssuer),
            Err(e) => Err(CertError::DoesNotVerify(e)),
        }
    }
}

/// One-off form of [`TrustChecker::check`].
pub fn check_trust(
    chain: &[CertificateDer<'static>],
    host: &str,
    leaf: &CertInfo,
    roots: &Arc<rustls::RootCertStore>,
) -> Result<(), CertError> {
    TrustChecker::new(roots).check(chain, host, leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(dns: &[&str], ips: &[&str], cn: Option<&str>) -> CertInfo {
        CertInfo {
            subject: String::new(),
            issuer: String::new(),
            not_before: 0,
            not_after: 0,
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            ip_addresses: ips.iter().map(|s| s.parse().unwrap()).collect(),
            common_name: cn.map(str::to_string),
            rsa_bits: None,
            key_type: String::new(),
            signature_algorithm: String::new(),
            self_signed: false,
            sha256: String::new(),
        }
    }

    #[test]
    fn host_matching() {
        let c = info(
            &["cam1.example", "*.cams.example"],
            &["10.0.0.5"],
            Some("other"),
        );
        assert!(c.matches_host("cam1.example"));
        assert!(c.matches_host("CAM1.example."));
        assert!(c.matches_host("a.cams.example"));
        assert!(!c.matches_host("a.b.cams.example"));
        assert!(!c.matches_host("cams.example"));
        assert!(c.matches_host("10.0.0.5"));
        assert!(!c.matches_host("10.0.0.6"));
        assert!(!c.matches_host("other"), "CN is ignored when SANs exist");
        let legacy = info(&[], &[], Some("cam9"));
        assert!(legacy.matches_host("cam9") && !legacy.matches_host("cam8"));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(inspect(b"not a certificate").is_err());
    }

    const CERT_B64: &str = "MIIBfzCCASWgAwIBAgIUQ3NpZXJ0IGZvciB0ZXN0cyBvbmx5MAoGCCqGSM49BAMC";

    #[test]
    fn pem_sections_are_read_and_others_skipped() {
        let pem = format!(
            "Subject: some text openssl prints\r\n-----BEGIN CERTIFICATE-----\r\n{}\r\n{}\r\n-----END CERTIFICATE-----\r\n\
             -----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n\
             -----BEGIN CERTIFICATE-----\n  {CERT_B64}\n-----END CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\n{} \t{}\n-----END CERTIFICATE-----\n",
            &CERT_B64[..32],
            &CERT_B64[32..],
            &CERT_B64[..10],
            &CERT_B64[10..]
        );
        let certs = pem_certificates(pem.as_bytes()).unwrap();
        assert_eq!(certs.len(), 3);
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(CERT_B64)
            .unwrap();
        assert!(certs.iter().all(|c| c.as_ref() == der.as_slice()));
        assert!(pem_certificates(b"no PEM here").unwrap().is_empty());
    }

    #[test]
    fn bad_pem_is_an_error_that_says_what_is_wrong() {
        let e = pem_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `-----END CERTIFICATE-----` line"), "{e}");
        let e = pem_certificates(b"-----BEGIN CERTIFICATE-----\nA*AA\n-----END CERTIFICATE-----")
            .unwrap_err()
            .to_string();
        assert!(e.contains("certificate 1 is not valid base64"), "{e}");
        let e = pem_certificates(b"-----BEGIN CERTIFICATE\nAAAA\n-----END CERTIFICATE-----")
            .unwrap_err()
            .to_string();
        assert!(e.contains("malformed BEGIN line"), "{e}");
        let e = pem_certificates(b"-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----")
            .unwrap_err()
            .to_string();
        assert!(e.contains("certificate 1 is empty"), "{e}");
        // An END line of another section does not close this one.
        let e = pem_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `-----END CERTIFICATE-----`"), "{e}");
    }

    #[test]
    fn pem_reader_agrees_with_rustls_on_the_system_bundle() {
        use rustls::pki_types::pem::PemObject;
        let Ok(data) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") else {
            // No bundle on this system: the other tests cover the reader.
            return;
        };
        let ours = pem_certificates(&data).unwrap();
        let theirs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!ours.is_empty());
        assert_eq!(ours, theirs);
    }
}
