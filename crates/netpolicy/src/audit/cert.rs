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

/// Parses a DER certificate.
pub fn inspect(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) = parse_x509_certificate(der)
        .map_err(|e| format!("the server's certificate cannot be parsed: {e}"))?;
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
    verifier: Result<Arc<rustls::client::WebPkiServerVerifier>, String>,
}

impl TrustChecker {
    pub fn new(roots: &Arc<rustls::RootCertStore>) -> Self {
        let verifier = if roots.is_empty() {
            Err("no trusted CA certificates are configured".to_string())
        } else {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
                .build()
                .map_err(|e| format!("cannot build a verifier: {e}"))
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
    ) -> Result<(), String> {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::{CertificateError, Error};
        let verifier = self.verifier.as_ref().map_err(Clone::clone)?;
        let Some((first, rest)) = chain.split_first() else {
            return Err("the server sent no certificate".into());
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
            )) => Err("not issued by a trusted CA".into()),
            Err(e) => Err(format!("chain does not verify: {e}")),
        }
    }
}

/// One-off form of [`TrustChecker::check`].
pub fn check_trust(
    chain: &[CertificateDer<'static>],
    host: &str,
    leaf: &CertInfo,
    roots: &Arc<rustls::RootCertStore>,
) -> Result<(), String> {
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
}
