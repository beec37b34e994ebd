//! Camera administration from the command line: add, change the secondary stream, enable,
//! disable, trust (pin the TLS certificate of) and remove a camera in the recording index, each recorded in the audit log
//! (`camera_changed`, with the same detail fields the HTTP API's camera routes record).
//! Credentials are never recorded, only whether one is stored.

use vigil_access::{AccessError, AuditKind};
use vigil_media::store::{Camera, NewCamera, NewSecondary, SecondaryStream, Store, StoreError};

use crate::ErrorKind;
use crate::audit::Trail;

#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("{0}")]
    Store(StoreError),
    /// The change was made but could not be recorded in the audit log.
    #[error("the camera change was made but not recorded in the audit log: {0}")]
    Audit(AccessError),
}

impl CameraError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CameraError::Store(StoreError::NoSuchCamera(_)) => ErrorKind::NotFound,
            CameraError::Store(StoreError::InvalidCamera(_)) => ErrorKind::InvalidInput,
            CameraError::Store(StoreError::DuplicateCamera(_)) => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }

    pub fn code(&self) -> &'static str {
        match self.kind() {
            ErrorKind::NotFound => "camera_not_found",
            ErrorKind::InvalidInput => "invalid_camera",
            ErrorKind::Conflict => "camera_exists",
            _ => "internal",
        }
    }
}

impl crate::error::Classified for CameraError {
    fn kind(&self) -> ErrorKind {
        CameraError::kind(self)
    }
    fn code(&self) -> &'static str {
        CameraError::code(self)
    }
}

fn secondary_detail(s: Option<&SecondaryStream>) -> serde_json::Value {
    match s {
        None => serde_json::Value::Null,
        Some(s) => serde_json::json!({
            "url": s.url, "username": s.username, "has_password": s.has_password,
            "mode": s.mode.as_str(),
        }),
    }
}

fn record(trail: &Trail<'_>, detail: serde_json::Value) -> Result<(), CameraError> {
    trail
        .record(AuditKind::CameraChanged, detail)
        .map_err(CameraError::Audit)
}

/// Adds a camera (a running server starts recording it within seconds).
pub fn add(store: &Store, new: &NewCamera, trail: &Trail<'_>) -> Result<Camera, CameraError> {
    let cam = store.add_camera(new).map_err(CameraError::Store)?;
    record(
        trail,
        serde_json::json!({
            "action": "added", "camera": cam.name, "url": cam.url, "username": cam.username,
            "has_password": cam.has_password, "enabled": cam.enabled,
            "max_age_secs": cam.max_age_secs, "max_bytes": cam.max_bytes,
            "secondary": secondary_detail(cam.secondary.as_ref()),
        }),
    )?;
    Ok(cam)
}

/// Sets, replaces or (with `None`) removes a camera's secondary stream.
pub fn set_secondary(
    store: &Store,
    name: &str,
    secondary: Option<&NewSecondary>,
    trail: &Trail<'_>,
) -> Result<Camera, CameraError> {
    let before = store.camera(name).map_err(CameraError::Store)?;
    let cam = store
        .set_secondary(name, secondary)
        .map_err(CameraError::Store)?;
    record(
        trail,
        serde_json::json!({
            "action": "changed", "camera": cam.name,
            "before": {"secondary": secondary_detail(before.secondary.as_ref())},
            "after": {"secondary": secondary_detail(cam.secondary.as_ref())},
        }),
    )?;
    Ok(cam)
}

/// Starts or stops recording a camera without removing it.
pub fn set_enabled(
    store: &Store,
    name: &str,
    enabled: bool,
    trail: &Trail<'_>,
) -> Result<(), CameraError> {
    let before = store.camera(name).map_err(CameraError::Store)?;
    store
        .set_camera_enabled(name, enabled)
        .map_err(CameraError::Store)?;
    record(
        trail,
        serde_json::json!({
            "action": "changed", "camera": before.name,
            "before": {"enabled": before.enabled}, "after": {"enabled": enabled},
        }),
    )
}

/// Pins the one TLS certificate (by SHA-256 fingerprint, in any form
/// `ingest_tls::parse_fingerprint` reads) the camera's `rtsps://` streams may present, or with
/// `None` removes the pin so the certificate is verified against the trust store again
/// (docs/design/camera-tls.md). A running server reconnects the camera within seconds.
pub fn trust(
    store: &Store,
    name: &str,
    fingerprint: Option<&str>,
    trail: &Trail<'_>,
) -> Result<Camera, CameraError> {
    let pin = fingerprint
        .map(vigil_media::ingest_tls::parse_fingerprint)
        .transpose()
        .map_err(|e| CameraError::Store(StoreError::InvalidCamera(e)))?;
    let before = store.camera(name).map_err(CameraError::Store)?;
    let cam = store
        .set_camera_pin(name, pin.as_deref())
        .map_err(CameraError::Store)?;
    record(
        trail,
        serde_json::json!({
            "action": "changed", "camera": cam.name,
            "before": {"tls_pin": before.tls_pin}, "after": {"tls_pin": cam.tls_pin},
        }),
    )?;
    Ok(cam)
}

/// Removes a camera; its recordings stay on disk unless `delete_video`.
pub fn remove(
    store: &Store,
    name: &str,
    delete_video: bool,
    trail: &Trail<'_>,
) -> Result<Camera, CameraError> {
    let cam = store
        .remove_camera(name, delete_video)
        .map_err(CameraError::Store)?;
    record(
        trail,
        serde_json::json!({"action": "removed", "camera": cam.name, "delete_video": delete_video}),
    )?;
    Ok(cam)
}
