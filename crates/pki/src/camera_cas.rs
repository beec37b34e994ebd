//! CA certificates an admin imported for camera links: camera certificates (RTSPS, ONVIF over
//! HTTPS) may chain to them as well as to the installation CA and the system roots. Kept as
//! one PEM file per certificate in `DATA_DIR/pki/camera-cas/`, named by its SHA-256
//! fingerprint; public material, so mode 0644 in the private PKI directory.

use std::fs;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::certinfo::{CertInfo, CertRole, CertSource};
use crate::error::{PkiError, Result};
use crate::fsutil;
use crate::import::parse_cert_chain;

/// The directory, under the PKI directory.
pub const CAMERA_CAS_DIR: &str = "camera-cas";

/// Why a certificate cannot be trusted for camera links.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CameraCaError {
    #[error(
        "certificate #{index} ({subject}) is not a CA certificate (no basicConstraints CA:TRUE): \
         import the CA that issued the camera certificates, not a camera's own certificate; to \
         accept one camera's self-signed certificate, pin its fingerprint instead"
    )]
    NotCa { index: usize, subject: String },
    #[error(
        "certificate #{index} ({subject}) expired on {date}: camera certificates issued by it \
         cannot be verified; import the CA's renewed certificate"
    )]
    Expired {
        index: usize,
        subject: String,
        date: String,
    },
    #[error("no trusted camera CA has the fingerprint {0}; `list` shows the ones there are")]
    Unknown(String),
}

fn dir_of(pki_dir: &Path) -> PathBuf {
    pki_dir.join(CAMERA_CAS_DIR)
}

/// The file name of a certificate: its fingerprint without separators, lower case.
fn file_name(fingerprint: &str) -> String {
    format!("{}.crt", fingerprint.replace(':', "").to_ascii_lowercase())
}

fn describe(der: &CertificateDer<'_>) -> std::result::Result<CertInfo, String> {
    CertInfo::from_der(der, CertSource::Imported, CertRole::CameraCa, false)
}

/// Checks every certificate of `pem` (one or several CA certificates, e.g. a root and an
/// intermediate) and trusts them for camera links. Returns them, already trusted ones included
/// (adding one twice changes nothing).
pub fn add(pki_dir: &Path, pem: &[u8], now: OffsetDateTime) -> Result<Vec<CertInfo>> {
    let certs = parse_cert_chain(pem)?;
    let mut infos = Vec::with_capacity(certs.len());
    for (i, der) in certs.iter().enumerate() {
        let info = describe(der).map_err(|reason| {
            PkiError::Import(crate::ImportError::BadCertificate {
                index: i + 1,
                reason,
            })
        })?;
        if !info.is_ca {
            return Err(PkiError::CameraCa(CameraCaError::NotCa {
                index: i + 1,
                subject: info.subject,
            }));
        }
        if info.not_after < now {
            return Err(PkiError::CameraCa(CameraCaError::Expired {
                index: i + 1,
                subject: info.subject,
                date: info.not_after.date().to_string(),
            }));
        }
        infos.push(info);
    }
    let dir = dir_of(pki_dir);
    fsutil::ensure_private_dir(&dir)?;
    for info in &infos {
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE", info.der.to_vec()));
        fsutil::write_public(
            &dir.join(file_name(&info.fingerprint_sha256)),
            pem.as_bytes(),
        )?;
    }
    Ok(infos)
}

/// The trusted camera CAs, and the files of the directory that could not be read (not
/// trusted; the others still work).
#[derive(Debug, Default)]
pub struct Listed {
    /// Oldest expiry first.
    pub certificates: Vec<CertInfo>,
    /// Each unreadable file and why.
    pub unreadable: Vec<Unreadable>,
}

/// A file of the directory that is not a readable certificate, and why.
pub type Unreadable = (PathBuf, String);

/// Every trusted camera CA ([`Listed`]).
pub fn list(pki_dir: &Path) -> Result<Listed> {
    let dir = dir_of(pki_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listed::default()),
        Err(source) => {
            return Err(PkiError::Io {
                action: "cannot read",
                path: dir,
                source,
            });
        }
    };
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("crt") {
            continue;
        }
        let parsed = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| parse_cert_chain(&pem).map_err(|e| e.to_string()))
            .and_then(|certs| {
                certs
                    .iter()
                    .map(describe)
                    .collect::<std::result::Result<Vec<_>, _>>()
            });
        match parsed {
            Ok(infos) => out.extend(infos),
            Err(reason) => unreadable.push((path, reason)),
        }
    }
    out.sort_by(|a, b| {
        a.not_after
            .cmp(&b.not_after)
            .then_with(|| a.fingerprint_sha256.cmp(&b.fingerprint_sha256))
    });
    out.dedup_by(|a, b| a.fingerprint_sha256 == b.fingerprint_sha256);
    Ok(Listed {
        certificates: out,
        unreadable,
    })
}

/// The trusted camera CAs as DER, for a trust store, and the unreadable files.
pub fn ders(pki_dir: &Path) -> Result<(Vec<CertificateDer<'static>>, Vec<Unreadable>)> {
    let l = list(pki_dir)?;
    Ok((
        l.certificates.into_iter().map(|c| c.der).collect(),
        l.unreadable,
    ))
}

/// Stops trusting the camera CA with this fingerprint (any notation: with or without ':',
/// either case). Returns what was removed.
pub fn remove(pki_dir: &Path, fingerprint: &str) -> Result<CertInfo> {
    let wanted: String = fingerprint
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_lowercase();
    let found = list(pki_dir)?.certificates.into_iter().find(|c| {
        c.fingerprint_sha256.replace(':', "").to_ascii_lowercase() == wanted && !wanted.is_empty()
    });
    let Some(info) = found else {
        return Err(PkiError::CameraCa(CameraCaError::Unknown(
            fingerprint.to_string(),
        )));
    };
    let path = dir_of(pki_dir).join(file_name(&info.fingerprint_sha256));
    fs::remove_file(&path).map_err(|source| PkiError::Io {
        action: "cannot remove",
        path,
        source,
    })?;
    Ok(info)
}

/// Something that changes whenever the set of trusted camera CAs changes (file names and
/// modification times), so a server can reload its trust store only then.
pub fn generation(pki_dir: &Path) -> Vec<(String, Option<std::time::SystemTime>)> {
    let mut v: Vec<_> = fs::read_dir(dir_of(pki_dir))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().and_then(|m| m.modified()).ok(),
            )
        })
        .collect();
    v.sort();
    v
}
