//! CAs trusted for camera links, for every front end: trusting an admin's CA (its camera
//! certificates then verify on RTSPS and ONVIF over HTTPS), listing and removing them, each
//! change in the audit log. The store is vigil-pki's `camera_cas`; the trust store cameras are
//! verified with is [`crate::onvif::camera_trust`]. docs/pki.md (Camera CAs).

use std::path::{Path, PathBuf};

use vigil_access::AccessError;
use vigil_pki::{CertInfo, PkiError, camera_cas};

use crate::audit::Trail;
use crate::certificates::CertificateChange;
use crate::error::{Classified, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum CameraCaUseError {
    #[error("{0}")]
    Pki(#[from] PkiError),
    #[error("the change was made but cannot be recorded in the audit log: {0}")]
    Audit(AccessError),
}

impl Classified for CameraCaUseError {
    fn kind(&self) -> ErrorKind {
        match self {
            CameraCaUseError::Pki(PkiError::CameraCa(camera_cas::CameraCaError::Unknown(_))) => {
                ErrorKind::NotFound
            }
            CameraCaUseError::Pki(PkiError::CameraCa(_) | PkiError::Import(_)) => {
                ErrorKind::InvalidInput
            }
            CameraCaUseError::Pki(PkiError::NotInitialized { .. }) => ErrorKind::Unavailable,
            CameraCaUseError::Pki(_) | CameraCaUseError::Audit(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            CameraCaUseError::Pki(PkiError::CameraCa(camera_cas::CameraCaError::Unknown(_))) => {
                "unknown_camera_ca"
            }
            CameraCaUseError::Pki(PkiError::CameraCa(camera_cas::CameraCaError::NotCa {
                ..
            })) => "not_a_ca",
            CameraCaUseError::Pki(PkiError::CameraCa(camera_cas::CameraCaError::Expired {
                ..
            })) => "expired_ca",
            CameraCaUseError::Pki(PkiError::Import(_)) => "invalid_certificate",
            CameraCaUseError::Pki(PkiError::NotInitialized { .. }) => "pki_not_initialized",
            CameraCaUseError::Pki(_) => "pki_error",
            CameraCaUseError::Audit(_) => "audit_failed",
        }
    }

    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        match self {
            CameraCaUseError::Audit(e) => Some(e),
            _ => None,
        }
    }
}

/// The PKI directory of an installation.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

fn require_pki(data_dir: &Path) -> Result<PathBuf, CameraCaUseError> {
    let dir = pki_dir(data_dir);
    if !vigil_pki::Pki::exists(&dir) {
        return Err(PkiError::NotInitialized { dir }.into());
    }
    Ok(dir)
}

/// Trusts the CA certificate(s) in `pem` for camera links; returns them. Running servers use
/// them from their next camera connection.
pub fn add(
    data_dir: &Path,
    pem: &[u8],
    trail: &Trail<'_>,
) -> Result<Vec<CertInfo>, CameraCaUseError> {
    let dir = require_pki(data_dir)?;
    let added = camera_cas::add(&dir, pem, vigil_pki::time::OffsetDateTime::now_utc())?;
    CertificateChange::CameraCaTrusted(&added)
        .record(trail)
        .map_err(CameraCaUseError::Audit)?;
    Ok(added)
}

/// Every CA trusted for camera links (unreadable files are logged: they are not trusted).
pub fn list(data_dir: &Path) -> Result<Vec<CertInfo>, CameraCaUseError> {
    let listed = camera_cas::list(&require_pki(data_dir)?)?;
    for (path, reason) in &listed.unreadable {
        tracing::warn!(path = %path.display(), %reason, "a camera CA file cannot be read; it is not trusted");
    }
    Ok(listed.certificates)
}

/// Stops trusting the camera CA with this SHA-256 fingerprint; returns it.
pub fn remove(
    data_dir: &Path,
    fingerprint: &str,
    trail: &Trail<'_>,
) -> Result<CertInfo, CameraCaUseError> {
    let removed = camera_cas::remove(&require_pki(data_dir)?, fingerprint)?;
    CertificateChange::CameraCaRemoved(&removed)
        .record(trail)
        .map_err(CameraCaUseError::Audit)?;
    Ok(removed)
}
