//! Parsing and checking certificate material brought from outside ("bring your own PKI"):
//! PEM certificate chains and private keys in every form OpenSSL commonly writes, i.e. PKCS#8
//! (plain or passphrase-encrypted), traditional `RSA PRIVATE KEY` / `EC PRIVATE KEY`, and the
//! legacy `Proc-Type: 4,ENCRYPTED` PEM encryption. Keys always come out as PKCS#8, the one form
//! stored on disk and handed to rustls.
//!
//! Nothing here touches the disk, so the parser can be fuzzed directly.

use std::sync::Arc;

use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
use md5::{Digest, Md5};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::certinfo::ParsedCert;
use crate::der;
use crate::error::ImportError;

/// PEM labels that carry a private key.
const KEY_LABELS: &[&str] = &[
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
];

/// How the private key was supplied; reported back so the operator sees what was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    Pkcs8,
    EncryptedPkcs8,
    TraditionalRsa,
    TraditionalEc,
    LegacyEncryptedRsa,
    LegacyEncryptedEc,
}

impl std::fmt::Display for KeyFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyFormat::Pkcs8 => "PKCS#8",
            KeyFormat::EncryptedPkcs8 => "encrypted PKCS#8",
            KeyFormat::TraditionalRsa => "traditional RSA",
            KeyFormat::TraditionalEc => "traditional EC",
            KeyFormat::LegacyEncryptedRsa => "legacy encrypted RSA PEM",
            KeyFormat::LegacyEncryptedEc => "legacy encrypted EC PEM",
        })
    }
}

/// A private key converted to PKCS#8.
#[derive(Debug)]
pub struct ParsedKey {
    pub pkcs8: PrivatePkcs8KeyDer<'static>,
    pub format: KeyFormat,
}

/// Parsed (not yet checked) import material.
#[derive(Debug)]
pub struct ImportMaterial {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: ParsedKey,
}

/// Parses a certificate file and a key file; checks nothing about how they relate.
/// The two may be the same file (certificate and key concatenated), as cameras export them.
pub fn parse_import(
    cert_pem: &[u8],
    key_pem: &[u8],
    passphrase: Option<&[u8]>,
) -> Result<ImportMaterial, ImportError> {
    let chain = parse_cert_chain(cert_pem)?;
    let key = parse_private_key(key_pem, passphrase)?;
    Ok(ImportMaterial { chain, key })
}

fn is_blank(input: &[u8]) -> bool {
    input.iter().all(|b| b.is_ascii_whitespace())
}

fn parse_pem_blocks(
    input: &[u8],
    slot: &'static str,
    expected: &'static str,
) -> Result<Vec<pem::Pem>, ImportError> {
    let not_pem = |detail: String| ImportError::NotPem {
        slot,
        expected,
        detail,
    };
    if std::str::from_utf8(input).is_err() {
        let hint = if input.first() == Some(&0x30) {
            "the file is binary and looks like DER"
        } else {
            "the file is binary, not text"
        };
        return Err(not_pem(hint.into()));
    }
    let blocks = pem::parse_many(input).map_err(|e| not_pem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(not_pem("no '-----BEGIN ...-----' line".into()));
    }
    Ok(blocks)
}

fn labels(blocks: &[pem::Pem]) -> String {
    let mut v: Vec<&str> = blocks.iter().map(|b| b.tag()).collect();
    v.dedup();
    v.join(", ")
}

/// Reads every CERTIFICATE block, in file order (server certificate first).
pub fn parse_cert_chain(input: &[u8]) -> Result<Vec<CertificateDer<'static>>, ImportError> {
    if is_blank(input) {
        return Err(ImportError::EmptyCertificate);
    }
    let blocks = parse_pem_blocks(input, "certificate", "CERTIFICATE")?;
    let certs: Vec<&pem::Pem> = blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE" || b.tag() == "X509 CERTIFICATE")
        .collect();
    if certs.is_empty() {
        if let Some(k) = blocks.iter().find(|b| KEY_LABELS.contains(&b.tag())) {
            return Err(ImportError::KeyInCertSlot {
                label: k.tag().to_string(),
            });
        }
        return Err(ImportError::NoCertificate {
            labels: labels(&blocks),
        });
    }
    certs
        .iter()
        .enumerate()
        .map(|(i, b)| {
            ParsedCert::parse(b.contents()).map_err(|reason| ImportError::BadCertificate {
                index: i + 1,
                reason,
            })?;
            Ok(CertificateDer::from(b.contents().to_vec()))
        })
        .collect()
}

/// Reads the one private key of a PEM file and converts it to PKCS#8.
pub fn parse_private_key(
    input: &[u8],
    passphrase: Option<&[u8]>,
) -> Result<ParsedKey, ImportError> {
    if is_blank(input) {
        return Err(ImportError::EmptyKey);
    }
    let blocks = parse_pem_blocks(input, "private key", "PRIVATE KEY")?;
    let keys: Vec<&pem::Pem> = blocks
        .iter()
        .filter(|b| KEY_LABELS.contains(&b.tag()))
        .collect();
    let block = match keys.as_slice() {
        [one] => *one,
        [] if blocks.iter().any(|b| b.tag() == "CERTIFICATE") => {
            return Err(ImportError::CertInKeySlot);
        }
        [] => {
            return Err(ImportError::NoPrivateKey {
                labels: labels(&blocks),
            });
        }
        many => return Err(ImportError::SeveralKeys { count: many.len() }),
    };
    match block.tag() {
        "PRIVATE KEY" => {
            check_pkcs8(block.contents()).map_err(|reason| ImportError::BadKey { reason })?;
            Ok(ParsedKey {
                pkcs8: PrivatePkcs8KeyDer::from(block.contents().to_vec()),
                format: KeyFormat::Pkcs8,
            })
        }
        "ENCRYPTED PRIVATE KEY" => {
            let pass = passphrase.ok_or(ImportError::PassphraseRequired)?;
            let plain = decrypt_pkcs8(block.contents(), pass)?;
            Ok(ParsedKey {
                pkcs8: PrivatePkcs8KeyDer::from(plain.to_vec()),
                format: KeyFormat::EncryptedPkcs8,
            })
        }
        tag => {
            let rsa = tag == "RSA PRIVATE KEY";
            let encrypted = block
                .headers()
                .get("Proc-Type")
                .is_some_and(|v| v.replace(' ', "").eq_ignore_ascii_case("4,ENCRYPTED"));
            let traditional: Zeroizing<Vec<u8>> = if encrypted {
                let pass = passphrase.ok_or(ImportError::PassphraseRequired)?;
                let dek = block
                    .headers()
                    .get("DEK-Info")
                    .ok_or_else(|| ImportError::BadKey {
                        reason: "encrypted PEM key without a DEK-Info header".into(),
                    })?;
                let plain = decrypt_legacy_pem(dek, block.contents(), pass)?;
                // CBC padding passes by chance for about 1 in 256 wrong passphrases; the
                // structure check below catches those.
                if !looks_like_traditional_key(&plain, rsa) {
                    return Err(ImportError::WrongPassphrase);
                }
                plain
            } else {
                Zeroizing::new(block.contents().to_vec())
            };
            let pkcs8 = if rsa {
                wrap_rsa(&traditional)
            } else {
                wrap_ec(&traditional)?
            };
            let format = match (rsa, encrypted) {
                (true, false) => KeyFormat::TraditionalRsa,
                (true, true) => KeyFormat::LegacyEncryptedRsa,
                (false, false) => KeyFormat::TraditionalEc,
                (false, true) => KeyFormat::LegacyEncryptedEc,
            };
            Ok(ParsedKey {
                pkcs8: PrivatePkcs8KeyDer::from(pkcs8.to_vec()),
                format,
            })
        }
    }
}

fn check_pkcs8(der: &[u8]) -> Result<(), String> {
    pkcs8::PrivateKeyInfoRef::try_from(der)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn decrypt_pkcs8(der: &[u8], pass: &[u8]) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    use pkcs8::pkcs5;
    let info =
        pkcs8::EncryptedPrivateKeyInfoRef::try_from(der).map_err(|e| ImportError::BadKey {
            reason: format!("encrypted PKCS#8 structure: {e}"),
        })?;
    let doc = info.decrypt(pass).map_err(|e| match e {
        pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::DecryptFailed) => {
            ImportError::WrongPassphrase
        }
        pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::UnsupportedAlgorithm { oid }) => {
            ImportError::UnsupportedEncryption {
                algorithm: format!("algorithm {oid}"),
            }
        }
        pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::NoPbes1CryptSupport) => {
            ImportError::UnsupportedEncryption {
                algorithm: "PKCS#5 v1.5 (PBES1)".into(),
            }
        }
        other => ImportError::BadKey {
            reason: other.to_string(),
        },
    })?;
    let plain = Zeroizing::new(doc.as_bytes().to_vec());
    if check_pkcs8(&plain).is_err() {
        return Err(ImportError::WrongPassphrase);
    }
    Ok(plain)
}

/// OpenSSL's EVP_BytesToKey with MD5 and one iteration, the key derivation of the legacy
/// `Proc-Type: 4,ENCRYPTED` PEM format: D_i = MD5(D_{i-1} || pass || salt).
fn evp_bytes_to_key_md5(pass: &[u8], salt: &[u8], key_len: usize) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(key_len + 16));
    let mut prev: Option<Zeroizing<[u8; 16]>> = None;
    while key.len() < key_len {
        let mut h = Md5::new();
        if let Some(p) = &prev {
            h.update(p.as_slice());
        }
        h.update(pass);
        h.update(salt);
        let d: [u8; 16] = h.finalize().into();
        key.extend_from_slice(&d);
        prev = Some(Zeroizing::new(d));
    }
    key.truncate(key_len);
    key
}

fn decrypt_legacy_pem(
    dek_info: &str,
    data: &[u8],
    pass: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let (alg, iv_hex) = dek_info
        .split_once(',')
        .ok_or_else(|| ImportError::BadKey {
            reason: format!("malformed DEK-Info header '{dek_info}'"),
        })?;
    let alg = alg.trim().to_ascii_uppercase();
    let key_len = match alg.as_str() {
        "AES-128-CBC" => 16,
        "AES-192-CBC" => 24,
        "AES-256-CBC" => 32,
        _ => return Err(ImportError::UnsupportedEncryption { algorithm: alg }),
    };
    let iv = decode_hex(iv_hex.trim())
        .filter(|iv| iv.len() == 16)
        .ok_or_else(|| ImportError::BadKey {
            reason: "DEK-Info IV is not 16 hex-encoded bytes".into(),
        })?;
    let key = evp_bytes_to_key_md5(pass, &iv[..8], key_len);
    let bad_key = |_| ImportError::BadKey {
        reason: "cannot set up AES-CBC".into(),
    };
    let plain = match key_len {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
            .map_err(bad_key)?
            .decrypt_padded_vec::<Pkcs7>(data),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
            .map_err(bad_key)?
            .decrypt_padded_vec::<Pkcs7>(data),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(bad_key)?
            .decrypt_padded_vec::<Pkcs7>(data),
    };
    plain
        .map(Zeroizing::new)
        .map_err(|_| ImportError::WrongPassphrase)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// RSAPrivateKey and ECPrivateKey both are a SEQUENCE spanning the whole buffer starting with an
/// INTEGER version (0 for RSA, 1 for EC).
fn looks_like_traditional_key(der: &[u8], rsa: bool) -> bool {
    let Some((0x30, _, body, rest)) = der::tlv(der) else {
        return false;
    };
    let version = if rsa { 0 } else { 1 };
    rest.is_empty() && matches!(der::tlv(body), Some((0x02, _, [v], _)) if *v == version)
}

const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const DER_NULL: &[u8] = &[0x05, 0x00];
const PKCS8_V1: &[u8] = &[0x02, 0x01, 0x00];

/// PKCS#1 RSAPrivateKey → PKCS#8 PrivateKeyInfo (the PKCS#1 key is carried verbatim).
fn wrap_rsa(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    let alg = der::sequence(&[OID_RSA_ENCRYPTION, DER_NULL]);
    let key = Zeroizing::new(der::encode(0x04, pkcs1));
    Zeroizing::new(der::sequence(&[PKCS8_V1, &alg, &key]))
}

/// SEC1 ECPrivateKey → PKCS#8 PrivateKeyInfo; the curve moves from the SEC1 `[0] parameters`
/// into the algorithm identifier, where PKCS#8 readers look for it.
fn wrap_ec(sec1: &[u8]) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let bad = |reason: &str| ImportError::BadKey {
        reason: reason.to_string(),
    };
    let Some((0x30, _, mut body, _)) = der::tlv(sec1) else {
        return Err(bad("EC PRIVATE KEY is not a DER SEQUENCE"));
    };
    let mut curve: Option<&[u8]> = None;
    while let Some((tag, _, contents, rest)) = der::tlv(body) {
        if tag == 0xa0 {
            curve = Some(contents);
        }
        body = rest;
    }
    let curve = curve.ok_or_else(|| {
        bad("EC PRIVATE KEY names no curve; export it with `openssl ec -param_enc named_curve`")
    })?;
    match der::tlv(curve) {
        Some((0x06, oid, _, [])) => {
            let alg = der::sequence(&[OID_EC_PUBLIC_KEY, oid]);
            let key = Zeroizing::new(der::encode(0x04, sec1));
            Ok(Zeroizing::new(der::sequence(&[PKCS8_V1, &alg, &key])))
        }
        _ => Err(bad(
            "EC PRIVATE KEY uses explicit curve parameters; export it with `openssl ec \
             -param_enc named_curve`",
        )),
    }
}

/// Loads a PKCS#8 key with the TLS provider, i.e. checks that rustls can sign with it.
pub fn load_signing_key(
    key: &PrivatePkcs8KeyDer<'_>,
) -> Result<Arc<dyn rustls::sign::SigningKey>, ImportError> {
    rustls::crypto::aws_lc_rs::sign::any_supported_type(&PrivateKeyDer::Pkcs8(key.clone_key()))
        .map_err(|e| ImportError::UnsupportedKey {
            reason: e.to_string(),
        })
}

/// Checks imported material and builds what the TLS server presents:
/// the key belongs to the first certificate, every certificate is valid at `now`, the first one
/// may serve TLS, each certificate is signed by the next, and the last one is a self-signed root
/// or was issued by one of `known_issuers` (the installation's own CA).
///
/// The chain presented to clients leaves out a self-signed root: clients must already trust it,
/// and sending it only costs bytes.
pub fn check_material(
    chain: &[CertificateDer<'static>],
    key: &PrivatePkcs8KeyDer<'_>,
    now: OffsetDateTime,
    known_issuers: &[CertificateDer<'static>],
) -> Result<Arc<CertifiedKey>, ImportError> {
    let parsed: Vec<ParsedCert<'_>> = chain
        .iter()
        .enumerate()
        .map(|(i, c)| {
            ParsedCert::parse(c).map_err(|reason| ImportError::BadCertificate {
                index: i + 1,
                reason,
            })
        })
        .collect::<Result<_, _>>()?;
    let leaf = parsed.first().ok_or(ImportError::NoCertificate {
        labels: "none".into(),
    })?;
    let signing_key = load_signing_key(key)?;
    let key_spki = signing_key
        .public_key()
        .ok_or_else(|| ImportError::UnsupportedKey {
            reason: "cannot derive the public key".into(),
        })?;
    if key_spki.as_ref() != leaf.spki_der() {
        return Err(ImportError::KeyMismatch {
            subject: leaf.subject(),
        });
    }
    for cert in &parsed {
        if now < cert.not_before() {
            return Err(ImportError::NotYetValid {
                subject: cert.subject(),
                not_before: cert.not_before(),
            });
        }
        if now > cert.not_after() {
            return Err(ImportError::Expired {
                subject: cert.subject(),
                not_after: cert.not_after(),
            });
        }
    }
    if !leaf.allows_server_auth() {
        return Err(ImportError::NotForServerAuth {
            subject: leaf.subject(),
        });
    }
    for (i, pair) in parsed.windows(2).enumerate() {
        if !pair[0].signed_by(&pair[1]) {
            return Err(ImportError::ChainBroken {
                index: i + 1,
                subject: pair[0].subject(),
                next_subject: pair[1].subject(),
            });
        }
    }
    let last = parsed.last().expect("chain is not empty");
    let root_supplied = last.self_issued() && parsed.len() > 1;
    let anchored = last.self_issued()
        || known_issuers.iter().any(|k| {
            ParsedCert::parse(k)
                .map(|issuer| last.signed_by(&issuer))
                .unwrap_or(false)
        });
    if !anchored {
        return Err(ImportError::IncompleteChain {
            last_subject: last.subject(),
            missing_issuer: last.issuer(),
        });
    }
    let served_len = if root_supplied {
        chain.len() - 1
    } else {
        chain.len()
    };
    Ok(Arc::new(CertifiedKey::new(
        chain[..served_len].to_vec(),
        signing_key,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evp_bytes_to_key_matches_openssl() {
        // Interoperability with keys encrypted by the real openssl is tested in tests/;
        // this pins the derivation chain: D1 = MD5(pass||salt), D2 = MD5(D1||pass||salt).
        let salt = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let key = evp_bytes_to_key_md5(b"secret", &salt, 32);
        let mut h = Md5::new();
        h.update(b"secret");
        h.update(salt);
        let first: [u8; 16] = h.finalize().into();
        assert_eq!(&key[..16], &first);
        let mut h = Md5::new();
        h.update(first);
        h.update(b"secret");
        h.update(salt);
        let second: [u8; 16] = h.finalize().into();
        assert_eq!(&key[16..], &second);
    }

    #[test]
    fn empty_and_blank_inputs_are_reported_as_empty() {
        assert_eq!(
            parse_cert_chain(b"").unwrap_err(),
            ImportError::EmptyCertificate
        );
        assert_eq!(
            parse_cert_chain(b" \n\t\n").unwrap_err(),
            ImportError::EmptyCertificate
        );
        assert_eq!(
            parse_private_key(b"\n", None).unwrap_err(),
            ImportError::EmptyKey
        );
    }

    #[test]
    fn binary_input_is_reported_as_der() {
        let err = parse_cert_chain(&[0x30, 0x82, 0xff, 0x01]).unwrap_err();
        assert!(err.to_string().contains("DER"), "{err}");
    }

    #[test]
    fn dek_info_errors_are_specific() {
        assert!(matches!(
            decrypt_legacy_pem("DES-EDE3-CBC,0011223344556677", b"x", b"p"),
            Err(ImportError::UnsupportedEncryption { algorithm }) if algorithm == "DES-EDE3-CBC"
        ));
        assert!(matches!(
            decrypt_legacy_pem("AES-128-CBC,zz", b"x", b"p"),
            Err(ImportError::BadKey { .. })
        ));
        assert!(matches!(
            decrypt_legacy_pem("AES-128-CBC", b"x", b"p"),
            Err(ImportError::BadKey { .. })
        ));
    }

    #[test]
    fn ec_key_without_named_curve_is_refused() {
        // SEQUENCE { INTEGER 1, OCTET STRING 32 bytes } without [0] parameters.
        let mut body = vec![0x02, 0x01, 0x01];
        body.extend(der::encode(0x04, &[7u8; 32]));
        let sec1 = der::encode(0x30, &body);
        let err = wrap_ec(&sec1).unwrap_err();
        assert!(err.to_string().contains("names no curve"), "{err}");
    }
}
