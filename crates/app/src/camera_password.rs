//! A camera password set by hand, for every front end: a camera whose password was changed
//! outside Vigil (on its own web page, by a technician) or a camera added by RTSP URL, which
//! rotation cannot reach. The new password is proven on the camera first (an authenticated
//! ONVIF call when the camera was added by ONVIF, and an RTSP DESCRIBE of its stream), only
//! then stored in the vault, its recorders restarted with it, and the change audited; a
//! password the camera refuses is never stored. User guide: docs/cameras-onvif.md, "A
//! password changed outside Vigil".

use vigil_access::{AccessError, AuditKind};
use vigil_media::store::{Camera, StoreError, now_us};
use vigil_onvif::Target;

use crate::ErrorKind;
use crate::audit::Trail;
use crate::rotation::{Link, PENDING_IN_FLIGHT_US, Rotator};

/// The longest password accepted: far above what cameras take (ONVIF names no limit; common
/// firmware stops at 32 or 64), low enough that a wrong file is refused rather than sent.
pub const MAX_PASSWORD_LENGTH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum SetPasswordError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    BadPassword(String),
    #[error(
        "camera {0} has no user name stored: a password alone cannot log in; add the camera again with its user name"
    )]
    NoUser(String),
    #[error(
        "a password rotation of camera {0} is running; set the password when it has ended (`vigil camera list` then shows no rotation pending)"
    )]
    RotationRunning(String),
    #[error(
        "camera {camera} did not accept the new password ({why}); nothing was stored: it keeps being tried with the password stored before. Check the password set on the camera"
    )]
    NotProven { camera: String, why: String },
    #[error("the password change could not be recorded in the audit log: {0}")]
    Audit(AccessError),
}

impl crate::error::Classified for SetPasswordError {
    fn kind(&self) -> ErrorKind {
        match self {
            SetPasswordError::Store(StoreError::NoSuchCamera(_)) => ErrorKind::NotFound,
            SetPasswordError::Store(StoreError::InvalidCamera(_))
            | SetPasswordError::BadPassword(_) => ErrorKind::InvalidInput,
            SetPasswordError::NoUser(_)
            | SetPasswordError::RotationRunning(_)
            | SetPasswordError::NotProven { .. } => ErrorKind::Conflict,
            SetPasswordError::Store(_) | SetPasswordError::Audit(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            SetPasswordError::Store(StoreError::NoSuchCamera(_)) => "camera_not_found",
            SetPasswordError::Store(StoreError::InvalidCamera(_))
            | SetPasswordError::BadPassword(_) => "invalid_field",
            SetPasswordError::NoUser(_) => "camera_without_user",
            SetPasswordError::RotationRunning(_) => "rotation_running",
            SetPasswordError::NotProven { .. } => "password_not_accepted",
            _ => "internal",
        }
    }
}

/// What setting the password did. Never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordSet {
    pub camera: String,
    /// How the camera proved it takes the password: `onvif` (an authenticated ONVIF call,
    /// for a camera added by ONVIF) and `rtsp` (a DESCRIBE of its recorded stream).
    pub proven_by: Vec<String>,
    /// Whether the secondary stream got it too (it logs in as the same user).
    pub secondary: bool,
    /// A rotation left pending by a crash was dropped: the camera has this password now.
    pub dropped_pending_rotation: bool,
}

/// Checks a password from outside before it is sent anywhere: not empty, at most
/// [`MAX_PASSWORD_LENGTH`] characters, no control characters (a file read with its line end
/// or binary content is refused, not sent).
pub fn check_password(password: &str) -> Result<(), SetPasswordError> {
    if password.is_empty() {
        return Err(SetPasswordError::BadPassword(
            "the password is empty: give the camera's password (the first line of the file)".into(),
        ));
    }
    let n = password.chars().count();
    if n > MAX_PASSWORD_LENGTH {
        return Err(SetPasswordError::BadPassword(format!(
            "a password of {n} characters: cameras take at most {MAX_PASSWORD_LENGTH}; is it the right file?"
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(SetPasswordError::BadPassword(
            "the password contains control characters (a tab, a carriage return or binary data); give it as one line of text".into(),
        ));
    }
    Ok(())
}

impl Rotator {
    /// Sets camera `name`'s password to `password`, which an admin already set on the camera:
    /// proven first (ONVIF for a camera added by ONVIF, then RTSP), then stored (for the
    /// secondary stream too when it logs in as the same user), a pending rotation dropped, the
    /// recorders restarted by the runtime, and audited as `camera_changed` / `password_set`.
    pub async fn set_password(
        &self,
        name: &str,
        password: &str,
        trail: &Trail<'_>,
    ) -> Result<PasswordSet, SetPasswordError> {
        check_password(password)?;
        let cam = self.store.camera(name)?;
        let Some(username) = cam.username.clone() else {
            return Err(SetPasswordError::NoUser(cam.name));
        };
        let state = self.store.rotation_state(&cam.id)?;
        if let Some(since) = state.pending_since_us
            && now_us() - since < PENDING_IN_FLIGHT_US
        {
            return Err(SetPasswordError::RotationRunning(cam.name));
        }
        let proven_by = self
            .prove_by_hand(&cam, &username, password)
            .await
            .map_err(|why| SetPasswordError::NotProven {
                camera: cam.name.clone(),
                why,
            })?;
        self.store.set_camera_password(&cam.id, password)?;
        let secondary = cam
            .secondary
            .as_ref()
            .is_some_and(|s| s.username.as_deref() == Some(username.as_str()));
        let done = PasswordSet {
            camera: cam.name.clone(),
            proven_by,
            secondary,
            dropped_pending_rotation: state.pending_since_us.is_some(),
        };
        tracing::info!(camera = %cam.name, "camera password set by hand, proven and stored");
        trail
            .record(
                AuditKind::CameraChanged,
                serde_json::json!({
                    "action": "password_set", "camera": done.camera,
                    "proven_by": done.proven_by, "secondary": done.secondary,
                    "dropped_pending_rotation": done.dropped_pending_rotation,
                }),
            )
            .map_err(SetPasswordError::Audit)?;
        Ok(done)
    }

    /// Proves `password` on the camera: over its recorded ONVIF link (any scheme: only a
    /// digest crosses it, and the camera was added with it) and with an RTSP DESCRIBE of its
    /// main stream; what proved it, or why not.
    async fn prove_by_hand(
        &self,
        cam: &Camera,
        username: &str,
        password: &str,
    ) -> Result<Vec<String>, String> {
        let identity = self
            .store
            .device_identities()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|(id, _)| *id == cam.id)
            .map(|(_, d)| d);
        let link = match identity {
            Some(d) => Some(Link {
                target: Target::parse(&d.onvif_url)
                    .map_err(|e| format!("its recorded ONVIF address: {e}"))?,
                username: username.to_owned(),
                pin: d.certificate,
            }),
            None => None,
        };
        match &link {
            Some(link) => {
                self.prove(cam, link, password).await?;
                Ok(vec!["onvif".into(), "rtsp".into()])
            }
            None => {
                self.describe(cam, username, password)
                    .await
                    .map_err(|e| format!("RTSP: {e}"))?;
                Ok(vec!["rtsp".into()])
            }
        }
    }
}
