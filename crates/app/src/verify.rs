//! Verification entry points: a camera's recordings on this server (the ledger's chain and
//! signatures against the installation's CA, every segment file in range, and the index
//! against what the ledger signed), and an exported evidence bundle anywhere. What each check
//! means is in docs/signing-format.md.

use std::path::Path;

use vigil_media::store::{Camera, Store, StoreError};
use vigil_signing::bundle::{self, BundleError, BundleReport, TrustAnchor};
use vigil_signing::{CaCert, Report, TimeRange};

use crate::ErrorKind;
use crate::archive::{ArchiveError, Restore};
use crate::audit::Trail;
use vigil_access::AuditKind;
use vigil_media::time::format_us;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no camera named '{0}'")]
    NoCamera(String),
    #[error("the end of the range must be after its start")]
    BadRange,
    #[error("camera '{camera}' has no evidence ledger yet: nothing signed was recorded")]
    NoLedger { camera: String },
    #[error("the installation's CA certificate does not load: {0}")]
    Trust(vigil_signing::KeyError),
    #[error("{0}")]
    Store(StoreError),
    #[error("{0}")]
    Recording(vigil_signing::VerifyError),
    #[error("{0}")]
    Bundle(#[from] BundleError),
    /// Archived video of the range could not be brought back to be verified (never a verdict:
    /// the recording was not checked).
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    /// The verification ran but could not be recorded in the audit log.
    #[error("the verification was not recorded in the audit log: {0}")]
    Audit(vigil_access::AccessError),
}

impl crate::error::Classified for VerifyError {
    fn kind(&self) -> ErrorKind {
        VerifyError::kind(self)
    }
    fn code(&self) -> &'static str {
        VerifyError::code(self)
    }

    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        match self {
            VerifyError::Audit(e) => Some(e),
            _ => None,
        }
    }
}

impl VerifyError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            VerifyError::NoCamera(_) => ErrorKind::NotFound,
            VerifyError::BadRange => ErrorKind::InvalidInput,
            VerifyError::NoLedger { .. } => ErrorKind::Conflict,
            VerifyError::Archive(e) => e.kind(),
            VerifyError::Trust(_)
            | VerifyError::Store(_)
            | VerifyError::Recording(_)
            | VerifyError::Bundle(_)
            | VerifyError::Audit(_) => ErrorKind::Internal,
        }
    }

    /// A stable name for machines (the API's error code).
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::NoCamera(_) => "camera_not_found",
            VerifyError::BadRange => "bad_range",
            VerifyError::NoLedger { .. } => "no_ledger",
            VerifyError::Archive(e) => e.code(),
            _ => "internal",
        }
    }
}

/// What a verification found, as one word (the CLI's exit code is made from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked is signed and intact.
    Verified,
    /// Some data is not signed (yet), and nothing was altered.
    Unsigned,
    /// Something was altered, removed, reordered or signed by an untrusted key.
    Tampered,
}

impl Outcome {
    pub fn of_recording(report: &Report) -> Self {
        if report.is_verified() {
            Outcome::Verified
        } else if report.is_tampered() {
            Outcome::Tampered
        } else {
            Outcome::Unsigned
        }
    }

    pub fn of_bundle(report: &BundleReport) -> Self {
        if report.is_verified() {
            Outcome::Verified
        } else if report.recording.is_tampered() || !report.export.valid {
            Outcome::Tampered
        } else {
            Outcome::Unsigned
        }
    }
}

/// Verifies the recordings of `camera` (a name or id, or a secondary stream's id, see
/// [`Store::stream`]) over `range`, trusting `ca_pem` (the
/// installation's CA). Archived segments of the range are brought back first through `archive`
/// (the `[archive]` section, see [`crate::archive::restore_for_reading`]), so archived evidence
/// verifies like local evidence instead of reading as missing. `progress` is told bytes checked
/// and bytes in all. The verification and its result are recorded in `audit` (absent only where
/// there is no audit log).
#[allow(clippy::too_many_arguments)]
pub fn verify_camera(
    store: &Store,
    data_dir: &Path,
    camera: &str,
    range: TimeRange,
    ca_pem: &str,
    archive: &dyn Restore,
    progress: &mut dyn FnMut(u64, u64),
    audit: Option<&Trail<'_>>,
) -> Result<(Camera, Report), VerifyError> {
    if let (Some(from), Some(to)) = (range.from_us, range.to_us)
        && to <= from
    {
        return Err(VerifyError::BadRange);
    }
    let cam = match store.stream(camera) {
        Ok(cam) => cam,
        Err(StoreError::NoSuchCamera(_)) => return Err(VerifyError::NoCamera(camera.to_owned())),
        Err(e) => return Err(VerifyError::Store(e)),
    };
    let trust = [CaCert::from_pem(ca_pem).map_err(VerifyError::Trust)?];
    // Before the ledger is read against the segment directory: a segment whose only copy is in
    // the archive would otherwise be reported missing, a failure of perfectly good evidence.
    archive.restore(
        store,
        &cam.id,
        range.from_us.unwrap_or(i64::MIN / 2),
        range.to_us.unwrap_or(i64::MAX / 2),
    )?;
    // The index is checked against the signed ledger too: an edited timestamp or hash in the
    // database is tampering even when the media is intact.
    let index: Vec<vigil_signing::IndexedGop> = store
        .gops_in_range(&cam.id, i64::MIN / 2, i64::MAX / 2)
        .map_err(VerifyError::Store)?
        .iter()
        .map(vigil_media::evidence::indexed_gop)
        .collect();
    let report = vigil_signing::verify_recording_with_index(
        &cam.id,
        &vigil_media::evidence::ledger_path(data_dir, &cam.id),
        &store.camera_dir(&cam.id),
        range,
        &trust,
        &index,
        progress,
    )
    .map_err(|e| match e {
        vigil_signing::VerifyError::LedgerIo { ref source, .. }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            VerifyError::NoLedger {
                camera: cam.name.clone(),
            }
        }
        e => VerifyError::Recording(e),
    })?;
    if let Some(trail) = audit {
        trail
            .record(
                AuditKind::Verify,
                serde_json::json!({
                    "camera": cam.name,
                    "from": range.from_us.map(format_us), "to": range.to_us.map(format_us),
                    "verified": report.is_verified(), "tampered": report.is_tampered(),
                    "failure": report.failure.as_ref().map(|f| f.kind.as_str()),
                }),
            )
            .map_err(VerifyError::Audit)?;
    }
    Ok((cam, report))
}

/// Verifies an exported evidence bundle (a directory) against `trust`. Recorded in `audit`
/// when the verification runs on an installation (a bundle is verified offline anywhere, where
/// there is no audit log).
pub fn verify_bundle(
    dir: &Path,
    trust: &TrustAnchor,
    progress: &mut dyn FnMut(u64, u64),
    audit: Option<&Trail<'_>>,
) -> Result<(BundleReport, Outcome), VerifyError> {
    let report = bundle::verify(dir, trust, &vigil_media::progressive::Evidence, progress)?;
    let outcome = Outcome::of_bundle(&report);
    if let Some(trail) = audit {
        trail
            .record(
                AuditKind::Verify,
                serde_json::json!({
                    "bundle": dir.display().to_string(),
                    "camera": report.recording.camera_id,
                    "outcome": match outcome {
                        Outcome::Verified => "verified",
                        Outcome::Unsigned => "unsigned",
                        Outcome::Tampered => "tampered",
                    },
                }),
            )
            .map_err(VerifyError::Audit)?;
    }
    Ok((report, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_media::store::NewCamera;

    fn installation() -> (tempfile::TempDir, vigil_config::Config, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = crate::setup::init(tmp.path(), &tmp.path().join("vigil.toml"), false).unwrap();
        let store = Store::open(&cfg.data_dir).unwrap();
        (tmp, cfg, store)
    }

    fn ca(cfg: &vigil_config::Config) -> String {
        std::fs::read_to_string(cfg.data_dir.join("pki/ca.crt")).unwrap()
    }

    #[test]
    fn unknown_camera_missing_ledger_and_bad_range_are_told_apart() {
        let (_tmp, cfg, store) = installation();
        let all = TimeRange {
            from_us: None,
            to_us: None,
        };
        let e = verify_camera(
            &store,
            &cfg.data_dir,
            "gate",
            all,
            &ca(&cfg),
            &cfg.archive,
            &mut |_, _| {},
            None,
        )
        .unwrap_err();
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::NotFound, "camera_not_found")
        );
        store
            .add_camera(&NewCamera {
                name: "gate".into(),
                url: "rtsp://192.0.2.1/gate".into(),
                ..Default::default()
            })
            .unwrap();
        let e = verify_camera(
            &store,
            &cfg.data_dir,
            "gate",
            all,
            &ca(&cfg),
            &cfg.archive,
            &mut |_, _| {},
            None,
        )
        .unwrap_err();
        assert_eq!((e.kind(), e.code()), (ErrorKind::Conflict, "no_ledger"));
        assert!(e.to_string().contains("'gate'"), "{e}");
        let backwards = TimeRange {
            from_us: Some(10),
            to_us: Some(5),
        };
        let e = verify_camera(
            &store,
            &cfg.data_dir,
            "gate",
            backwards,
            &ca(&cfg),
            &cfg.archive,
            &mut |_, _| {},
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn a_directory_that_is_no_bundle_is_an_error_not_a_verdict() {
        let tmp = tempfile::tempdir().unwrap();
        let e = verify_bundle(
            tmp.path(),
            &TrustAnchor::Fingerprint("00".repeat(32)),
            &mut |_, _| {},
            None,
        )
        .unwrap_err();
        assert!(matches!(e, VerifyError::Bundle(_)), "{e}");
        assert!(
            e.to_string()
                .ends_with("is not an evidence bundle (no manifest.json in it)"),
            "{e}"
        );
    }
}
