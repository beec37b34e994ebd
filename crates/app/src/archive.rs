//! The archive tier's use cases (docs/design/archive.md): the pass `vigil serve` runs every
//! [`ARCHIVE_EVERY`] on a thread of its own, and bringing archived video back, checked against
//! the ledger, before playback, export or verification read it.
//!
//! The archiver does blocking index and file work between its requests, so it gets its own
//! thread and single-threaded runtime rather than a place on the recording runtime.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use vigil_archive::{ArchiveReport, ArchiveSettings, Archiver, ObjectArchive, S3Archive, S3Error};
use vigil_config::ArchiveConfig;
use vigil_media::store::{Store, now_us};

use crate::ErrorKind;

/// How often `vigil serve` runs an archive pass.
pub const ARCHIVE_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Setup(#[from] S3Error),
    #[error("cannot start the archive thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "{segments} segment(s) of this range are in the archive, but [archive] is not configured here: configure it as on the recording server to read them"
    )]
    NotConfigured { segments: usize },
    #[error("archived video cannot be brought back: {0}")]
    Restore(String),
}

impl ArchiveError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::NotConfigured { .. } => ErrorKind::Conflict,
            // The video is safe in the archive; it is just out of reach now (the store does not
            // answer, refuses the keys, or returns an object that does not match its ledger,
            // which is never written locally): the operator can act on it, and it is not
            // evidence of tampering with the recording.
            ArchiveError::Setup(_) | ArchiveError::Restore(_) => ErrorKind::Unavailable,
            ArchiveError::Thread(_) => ErrorKind::Internal,
        }
    }

    /// A stable name for machines (the API's error code).
    pub fn code(&self) -> &'static str {
        match self {
            ArchiveError::NotConfigured { .. } => "archive_not_configured",
            ArchiveError::Setup(_) | ArchiveError::Restore(_) => "archive_unavailable",
            ArchiveError::Thread(_) => "internal",
        }
    }
}

impl crate::error::Classified for ArchiveError {
    fn kind(&self) -> ErrorKind {
        ArchiveError::kind(self)
    }
    fn code(&self) -> &'static str {
        ArchiveError::code(self)
    }
}

/// How a reading use case (verify, export, playback) brings the archived video of a range back
/// before it reads the local volume. The front ends pass the `[archive]` section of their
/// configuration ([`ArchiveConfig`] implements it with [`restore_for_reading`]); tests pass a
/// [`RestoreFrom`] over any store behind the seam.
pub trait Restore: Sync {
    /// Restores every archived segment of stream `camera_id` (and its secondary stream)
    /// overlapping `[from_us, to_us)` that has no local copy; returns how many were fetched.
    /// A range without such segments does no archive work at all.
    fn restore(
        &self,
        store: &Store,
        camera_id: &str,
        from_us: i64,
        to_us: i64,
    ) -> Result<usize, ArchiveError>;
}

impl Restore for ArchiveConfig {
    fn restore(
        &self,
        store: &Store,
        camera_id: &str,
        from_us: i64,
        to_us: i64,
    ) -> Result<usize, ArchiveError> {
        restore_for_reading(self, store, camera_id, from_us, to_us)
    }
}

/// [`Restore`] from `archive` under `prefix` (tests, and anything not configured by
/// `[archive]`).
pub struct RestoreFrom<A> {
    pub archive: A,
    pub prefix: String,
}

impl<A: ObjectArchive> Restore for RestoreFrom<A> {
    fn restore(
        &self,
        store: &Store,
        camera_id: &str,
        from_us: i64,
        to_us: i64,
    ) -> Result<usize, ArchiveError> {
        if archived_without_local_copy(store, camera_id, from_us, to_us)? == 0 {
            return Ok(0);
        }
        restore_with(
            &self.archive,
            &self.prefix,
            store,
            camera_id,
            from_us,
            to_us,
        )
    }
}

/// The running archive pass; [`ArchiveTask::stop`] ends it after the pass in progress.
pub struct ArchiveTask {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ArchiveTask {
    /// Starts the archive pass `[archive]` describes, or nothing (`None`) when it is not
    /// configured. `on_pass` hears every pass's report.
    pub fn start(
        cfg: &ArchiveConfig,
        store: Arc<Store>,
        on_pass: Arc<dyn Fn(&ArchiveReport) + Send + Sync>,
    ) -> Result<Option<Self>, ArchiveError> {
        if !cfg.enabled() {
            return Ok(None);
        }
        let archive = S3Archive::from_config(cfg)?;
        Self::start_with(
            archive,
            ArchiveSettings::from_config(cfg),
            store,
            ARCHIVE_EVERY,
            on_pass,
        )
        .map(Some)
    }

    /// [`ArchiveTask::start`] with any store behind the seam and any period.
    pub fn start_with<A: ObjectArchive>(
        archive: A,
        settings: ArchiveSettings,
        store: Arc<Store>,
        every: Duration,
        on_pass: Arc<dyn Fn(&ArchiveReport) + Send + Sync>,
    ) -> Result<Self, ArchiveError> {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ArchiveError::Thread)?;
        let thread = std::thread::Builder::new()
            .name("vigil-archive".into())
            .spawn(move || {
                let archiver = Archiver::new(store, archive, settings);
                rt.block_on(async move {
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            _ = tick.tick() => {
                                let report = archiver.run_once(now_us()).await;
                                on_pass(&report);
                            }
                        }
                    }
                });
            })
            .map_err(ArchiveError::Thread)?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops after the pass in progress (a segment half-way through is simply done again by
    /// the next start: nothing local goes before its archived copy is verified).
    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Brings every archived segment of `camera_id` (both streams) overlapping `[from_us, to_us)`
/// back to the local volume, each checked against the ledger's signed hashes, so playback,
/// export and `vigil verify` read them like any other. Returns how many were fetched.
pub fn restore_for_reading(
    cfg: &ArchiveConfig,
    store: &Store,
    camera_id: &str,
    from_us: i64,
    to_us: i64,
) -> Result<usize, ArchiveError> {
    let missing = archived_without_local_copy(store, camera_id, from_us, to_us)?;
    if missing == 0 {
        return Ok(0);
    }
    if !cfg.enabled() {
        return Err(ArchiveError::NotConfigured { segments: missing });
    }
    let archive = S3Archive::from_config(cfg)?;
    restore_with(&archive, &cfg.prefix, store, camera_id, from_us, to_us)
}

/// [`restore_for_reading`] with any store behind the seam.
pub fn restore_with<A: ObjectArchive>(
    archive: &A,
    prefix: &str,
    store: &Store,
    camera_id: &str,
    from_us: i64,
    to_us: i64,
) -> Result<usize, ArchiveError> {
    // Callers may be on an async runtime's thread (the API) or not (the CLI): a thread of its
    // own with its own runtime works from both.
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(ArchiveError::Thread)?;
            rt.block_on(vigil_archive::restore_range(
                store, archive, prefix, camera_id, from_us, to_us,
            ))
            .map_err(ArchiveError::Restore)
        })
        .join()
        .unwrap_or_else(|_| Err(ArchiveError::Restore("the restore thread panicked".into())))
    })
}

fn archived_without_local_copy(
    store: &Store,
    camera_id: &str,
    from_us: i64,
    to_us: i64,
) -> Result<usize, ArchiveError> {
    let mut n = 0;
    for stream in [
        camera_id.to_owned(),
        vigil_media::store::secondary_stream_id(camera_id),
    ] {
        let segments = store
            .segments(&stream)
            .map_err(|e| ArchiveError::Restore(e.to_string()))?;
        n += segments
            .iter()
            .filter(|s| s.archived_us.is_some() && s.end_us >= from_us && s.start_us < to_us)
            .filter(|s| !store.has_local_copy(&stream, s.seq))
            .count();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use vigil_archive::MemoryArchive;
    use vigil_media::store::NewCamera;

    fn store_with_archived_segment() -> (tempfile::TempDir, Arc<Store>, String, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        let cam = store
            .add_camera(&NewCamera {
                name: "door".into(),
                url: "rtsp://127.0.0.1:8554/a".into(),
                ..Default::default()
            })
            .unwrap();
        let mut seg = store
            .begin_segment(&cam.id, b"init", "avc1", 1_000_000)
            .unwrap();
        let seq = seg.seq;
        seg.append(&store, &[&[7u8; 64]], 1, 1_000_000, 1_000_000, 25)
            .unwrap();
        seg.close(&store).unwrap();
        store.mark_archived(&cam.id, seq, 3_000_000, None).unwrap();
        store.remove_local_copy(&cam.id, seq).unwrap();
        (dir, Arc::new(store), cam.id, seq)
    }

    #[test]
    fn archived_video_without_an_archive_configured_is_refused_with_the_reason() {
        let (_dir, store, cam, _) = store_with_archived_segment();
        let off = ArchiveConfig::default();
        let err = restore_for_reading(&off, &store, &cam, 0, 10_000_000).unwrap_err();
        assert!(
            matches!(err, ArchiveError::NotConfigured { segments: 1 }),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(
            err.to_string().contains("[archive] is not configured"),
            "{err}"
        );
        // A range without archived video needs no archive.
        assert_eq!(
            restore_for_reading(&off, &store, &cam, 5_000_000, 9_000_000).unwrap(),
            0
        );
    }

    #[test]
    fn a_restore_from_an_archive_that_lost_the_object_says_so() {
        let (_dir, store, cam, seq) = store_with_archived_segment();
        let err = restore_with(&MemoryArchive::new(), "", &store, &cam, 0, 10_000_000).unwrap_err();
        assert!(matches!(err, ArchiveError::Restore(_)), "{err}");
        assert!(!store.has_local_copy(&cam, seq));
    }

    #[test]
    fn the_archive_task_runs_passes_on_its_thread_and_stops() {
        let (dir, store, _, _) = store_with_archived_segment();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let seen = reports.clone();
        let task = ArchiveTask::start_with(
            MemoryArchive::new(),
            ArchiveSettings {
                prefix: String::new(),
                after: Duration::from_secs(60),
                lock_days: Some(1),
            },
            store,
            Duration::from_millis(20),
            Arc::new(move |r: &ArchiveReport| seen.lock().unwrap().push(r.clone())),
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while reports.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        task.stop();
        let reports = reports.lock().unwrap();
        assert!(reports.len() >= 2, "{reports:?}");
        assert!(
            reports
                .iter()
                .all(|r| r.failures.is_empty() && r.stopped.is_none())
        );
        let off = ArchiveTask::start(
            &ArchiveConfig::default(),
            Arc::new(Store::open(dir.path()).unwrap()),
            Arc::new(|_| {}),
        )
        .unwrap();
        assert!(off.is_none(), "no pass without [archive]");
    }
}
