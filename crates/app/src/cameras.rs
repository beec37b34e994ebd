//! Camera administration, for the command line and the HTTP API alike: add, change (enable,
//! disable, retention, secondary stream), trust (pin the TLS certificate of) and remove a camera
//! in the recording index, each recorded once in the audit log (`camera_changed`).
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

    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        match self {
            CameraError::Audit(e) => Some(e),
            _ => None,
        }
    }
}

/// The security of a camera stream's link as every front end shows it. An `rtsps://` link is
/// used only with a certificate verified against the trust store or the pinned one
/// (docs/design/camera-tls.md), so it is verified; whether it is up is the stream's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// `rtsp` (clear text) or `rtsps` (TLS).
    pub scheme: String,
    pub encrypted: bool,
    pub verified: bool,
    /// The pinned certificate's SHA-256 fingerprint (`vigil camera trust`).
    pub pinned: Option<String>,
    /// One line for people.
    pub summary: String,
}

/// The [`Link`] of a stream with this URL on a camera with this pin.
pub fn link(url: &str, pin: Option<&str>) -> Link {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let encrypted = scheme == "rtsps";
    let summary = match (encrypted, pin) {
        (true, Some(pin)) => format!(
            "RTSP over TLS: encrypted; only the pinned certificate (SHA-256 {pin}) is accepted"
        ),
        (true, None) => "RTSP over TLS: encrypted; the camera's certificate is verified against the installation CA and system roots and its host name, and a changed certificate stops the link".to_owned(),
        (false, _) => {
            "RTSP in clear text: video and camera credentials can be read and changed on the network"
                .to_owned()
        }
    };
    Link {
        scheme,
        encrypted,
        verified: encrypted,
        pinned: pin.filter(|_| encrypted).map(str::to_owned),
        summary,
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

/// Adds a camera; a running server starts recording it within seconds unless it is added
/// disabled.
pub fn add(
    store: &Store,
    new: &NewCamera,
    enabled: bool,
    trail: &Trail<'_>,
) -> Result<Camera, CameraError> {
    let mut cam = store.add_camera(new).map_err(CameraError::Store)?;
    if !enabled {
        store
            .set_camera_enabled(&cam.id, false)
            .map_err(CameraError::Store)?;
        cam = store.camera(&cam.id).map_err(CameraError::Store)?;
    }
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

/// A change to an existing camera; a field left `None` stays as it is.
#[derive(Default)]
pub struct CameraChange {
    /// Record it or not.
    pub enabled: Option<bool>,
    /// Retention by age (`Some(None)`: no age limit).
    pub max_age_secs: Option<Option<i64>>,
    /// Retention by size (`Some(None)`: no size limit).
    pub max_bytes: Option<Option<i64>>,
    /// Set or replace (`Some(Some)`) or remove (`Some(None)`) the secondary stream.
    pub secondary: Option<Option<NewSecondary>>,
    /// Pin (`Some(Some(fingerprint))`) or unpin (`Some(None)`) the certificate, as [`trust`]:
    /// applied first, as its own audited change.
    pub tls_pin: Option<Option<String>>,
}

/// Applies a change to a camera (a running server picks it up within seconds) and records one
/// audit entry with the settings before and after.
pub fn change(
    store: &Store,
    name: &str,
    change: &CameraChange,
    trail: &Trail<'_>,
) -> Result<Camera, CameraError> {
    if let Some(pin) = &change.tls_pin {
        let pinned = trust(store, name, pin.as_deref(), trail)?;
        let settings = change.enabled.is_some()
            || change.max_age_secs.is_some()
            || change.max_bytes.is_some()
            || change.secondary.is_some();
        if !settings {
            return Ok(pinned);
        }
    }
    let before = store.camera(name).map_err(CameraError::Store)?;
    if let Some(secondary) = &change.secondary {
        store
            .set_secondary(&before.id, secondary.as_ref())
            .map_err(CameraError::Store)?;
    }
    if let Some(enabled) = change.enabled {
        store
            .set_camera_enabled(&before.id, enabled)
            .map_err(CameraError::Store)?;
    }
    if change.max_age_secs.is_some() || change.max_bytes.is_some() {
        store
            .set_camera_retention(
                &before.id,
                change.max_age_secs.unwrap_or(before.max_age_secs),
                change.max_bytes.unwrap_or(before.max_bytes),
            )
            .map_err(CameraError::Store)?;
    }
    let after = store.camera(&before.id).map_err(CameraError::Store)?;
    let settings = |c: &Camera| {
        serde_json::json!({
            "enabled": c.enabled, "max_age_secs": c.max_age_secs, "max_bytes": c.max_bytes,
            "secondary": secondary_detail(c.secondary.as_ref()),
        })
    };
    record(
        trail,
        serde_json::json!({
            "action": "changed", "camera": after.name,
            "before": settings(&before), "after": settings(&after),
        }),
    )?;
    Ok(after)
}

/// Sets, replaces or (with `None`) removes a camera's secondary stream.
pub fn set_secondary(
    store: &Store,
    name: &str,
    secondary: Option<&NewSecondary>,
    trail: &Trail<'_>,
) -> Result<Camera, CameraError> {
    let secondary = Some(secondary.cloned());
    change(
        store,
        name,
        &CameraChange {
            secondary,
            ..CameraChange::default()
        },
        trail,
    )
}

/// Starts or stops recording a camera without removing it.
pub fn set_enabled(
    store: &Store,
    name: &str,
    enabled: bool,
    trail: &Trail<'_>,
) -> Result<Camera, CameraError> {
    let enabled = Some(enabled);
    change(
        store,
        name,
        &CameraChange {
            enabled,
            ..CameraChange::default()
        },
        trail,
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

#[cfg(test)]
mod tests {
    use super::link;

    #[test]
    fn a_link_says_whether_it_is_encrypted_verified_and_pinned() {
        let clear = link("rtsp://10.0.0.5/live", Some("AB:CD"));
        assert!(!clear.encrypted && !clear.verified && clear.pinned.is_none());
        assert!(clear.summary.contains("clear text"), "{}", clear.summary);
        let tls = link("rtsps://cam.example/live", None);
        assert!(tls.encrypted && tls.verified && tls.pinned.is_none());
        assert!(tls.summary.contains("verified"), "{}", tls.summary);
        let pinned = link("RTSPS://10.0.0.5/live", Some("AB:CD"));
        assert_eq!(pinned.scheme, "rtsps");
        assert_eq!(pinned.pinned.as_deref(), Some("AB:CD"));
        assert!(
            pinned
                .summary
                .contains("pinned certificate (SHA-256 AB:CD)")
        );
    }
}
