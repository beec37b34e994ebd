//! Reading archived video through the use cases every front end calls (`vigil verify`,
//! `vigil export`, the API's playback, export and verify): archived segments whose local
//! copies the archiver deleted are brought back, checked against the ledger, and read like
//! local ones; when they cannot be, the use case says why and never reports tampering.

// The archive crate's fixture: a data directory with recorded video the recorder's own
// observer entered in a signed ledger. Shared by path so both crates test the same recording.
#[path = "../../archive/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{GOP_FRAMES, GOPS_PER_SEGMENT, Recorded};
use vigil_app::ErrorKind;
use vigil_app::archive::{ArchiveError, Restore, RestoreFrom};
use vigil_app::export::{BundleRequest, ExportError, ExporterIdentity, TailSigning};
use vigil_app::verify::{Outcome, VerifyError, verify_camera};
use vigil_archive::{ArchiveSettings, Archiver, MemoryArchive};
use vigil_config::ArchiveConfig;
use vigil_signing::{Report, TimeRange};

const SEGMENTS: i64 = 2;
const PREFIX: &str = "site-a/";

/// Records `SEGMENTS` signed segments and archives them all into `mem` as `vigil serve`'s
/// pass does: uploaded, read back and checked, then the local copies deleted.
fn archived(mem: &MemoryArchive) -> Recorded {
    let rec = Recorded::new(SEGMENTS);
    let hour = Duration::from_secs(3600);
    let archiver = Archiver::new(
        rec.store.clone(),
        mem.clone(),
        ArchiveSettings {
            prefix: PREFIX.into(),
            after: hour,
            lock_days: Some(1),
        },
    );
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(archiver.run_once(rec.later(2 * hour)));
    assert_eq!(report.archived.len(), SEGMENTS as usize, "{report:?}");
    assert!(rec.local_files().is_empty(), "the archiver removed them");
    rec
}

fn verify(rec: &Recorded, archive: &dyn Restore) -> Result<Report, VerifyError> {
    verify_camera(
        &rec.store,
        rec.root(),
        &rec.camera.id,
        TimeRange::all(),
        &rec.ca_pem,
        archive,
        &mut |_, _| {},
        None,
    )
    .map(|(_, report)| report)
}

fn from_memory(mem: &MemoryArchive) -> RestoreFrom<MemoryArchive> {
    RestoreFrom {
        archive: mem.clone(),
        prefix: PREFIX.into(),
    }
}

/// An `[archive]` that names an endpoint but could never build a client (no bucket, no keys):
/// any archive work at all would fail.
fn unusable() -> ArchiveConfig {
    ArchiveConfig {
        endpoint: Some("https://archive.invalid".into()),
        ..Default::default()
    }
}

fn export_mp4(rec: &Recorded, archive: &dyn Restore) -> Result<(PathBuf, i64), ExportError> {
    let out = rec.root().join("out.mp4");
    let report = vigil_app::export::export_mp4(
        &rec.store,
        &rec.camera.id,
        i64::MIN / 2,
        i64::MAX / 2,
        &out,
        true,
        archive,
        &mut |_, _| {},
        None,
    )?;
    Ok((out, report.parts.iter().map(|p| p.frames).sum()))
}

#[test]
fn archived_evidence_verifies_and_exports_once_brought_back() {
    let mem = MemoryArchive::new();
    let rec = archived(&mem);
    let restore = from_memory(&mem);

    let report = verify(&rec, &restore).unwrap();
    assert!(report.is_verified(), "{:?}", report.failure);
    assert_eq!(Outcome::of_recording(&report), Outcome::Verified);
    assert_eq!(
        report.checked.fragments,
        (SEGMENTS * GOPS_PER_SEGMENT) as u64
    );
    assert_eq!(
        rec.local_files().len(),
        SEGMENTS as usize,
        "restored locally"
    );

    // The export of a range archived again reads the restored copies back from the archive.
    for seg in rec.store.segments(&rec.camera.id).unwrap() {
        rec.store
            .remove_local_copy(&rec.camera.id, seg.seq)
            .unwrap();
    }
    let all_frames = SEGMENTS * GOPS_PER_SEGMENT * GOP_FRAMES as i64;
    let (out, frames) = export_mp4(&rec, &restore).unwrap();
    assert_eq!(frames, all_frames);
    assert!(std::fs::metadata(&out).unwrap().len() > 0);

    for seg in rec.store.segments(&rec.camera.id).unwrap() {
        rec.store
            .remove_local_copy(&rec.camera.id, seg.seq)
            .unwrap();
    }
    let layout = vigil_app::export::mp4_layout(
        &rec.store,
        &rec.camera.id,
        i64::MIN / 2,
        i64::MAX / 2,
        &restore,
    )
    .unwrap();
    assert_eq!(
        layout.parts.iter().map(|p| p.frames).sum::<i64>(),
        all_frames
    );
    assert_eq!(
        rec.local_files().len(),
        SEGMENTS as usize,
        "playback restored them"
    );

    for seg in rec.store.segments(&rec.camera.id).unwrap() {
        rec.store
            .remove_local_copy(&rec.camera.id, seg.seq)
            .unwrap();
    }
    let dir = rec.root().join("bundle");
    let req = BundleRequest {
        store: &rec.store,
        data_dir: rec.root(),
        camera: &rec.camera.id,
        from_us: i64::MIN / 2,
        to_us: i64::MAX / 2,
        exporter: ExporterIdentity {
            user: "test".into(),
            server: "test".into(),
        },
        archive: &restore,
        audit: None,
    };
    let bundle =
        vigil_app::export::export_bundle(&req, &dir, rec.root(), TailSigning::AsIs, &mut |_, _| {})
            .unwrap();
    assert_eq!(bundle.frames, all_frames);
    assert_eq!(bundle.summary.unsigned_fragments, 0);
}

#[test]
fn archived_video_where_no_archive_is_configured_is_refused_not_reported_tampered() {
    let mem = MemoryArchive::new();
    let rec = archived(&mem);
    let off = ArchiveConfig::default();

    let err = verify(&rec, &off).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Archive(ArchiveError::NotConfigured {
                segments: 2 // SEGMENTS
            })
        ),
        "{err}"
    );
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Conflict, "archive_not_configured")
    );
    assert!(
        err.to_string().contains("[archive] is not configured"),
        "{err}"
    );

    let err = export_mp4(&rec, &off).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::Archive(ArchiveError::NotConfigured { .. })
        ),
        "{err}"
    );
    assert_eq!(err.code(), "archive_not_configured");
    assert!(rec.local_files().is_empty());
}

#[test]
fn an_archive_that_cannot_give_the_video_back_is_unavailable_not_tampering() {
    let mem = MemoryArchive::new();
    let rec = archived(&mem);

    // The store lost the objects (an empty bucket): the reason, as "unavailable".
    let err = verify(&rec, &from_memory(&MemoryArchive::new())).unwrap_err();
    assert!(
        matches!(err, VerifyError::Archive(ArchiveError::Restore(_))),
        "{err}"
    );
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Unavailable, "archive_unavailable")
    );

    // An [archive] that cannot build a client: the same kind, with what is wrong with it.
    let err = verify(&rec, &unusable()).unwrap_err();
    assert!(
        matches!(err, VerifyError::Archive(ArchiveError::Setup(_))),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("bucket"), "{err}");
    assert!(
        rec.local_files().is_empty(),
        "nothing unchecked was written"
    );
}

#[test]
fn a_range_with_nothing_archived_does_no_archive_work() {
    let rec = Recorded::new(SEGMENTS);
    // Building a client from this configuration would fail, so success means none was built.
    let report = verify(&rec, &unusable()).unwrap();
    assert!(report.is_verified(), "{:?}", report.failure);
    let (_, frames) = export_mp4(&rec, &unusable()).unwrap();
    assert_eq!(frames, SEGMENTS * GOPS_PER_SEGMENT * GOP_FRAMES as i64);
}
