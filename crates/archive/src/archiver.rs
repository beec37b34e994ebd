//! The archiver: which segments go to the archive and when, in an order that never loses
//! video (docs/design/archive.md, "Design"):
//!
//! 1. the segment's signed records are read from the ledger and the local file is checked
//!    against them (a file that no longer matches is evidence of damage: it stays, unarchived);
//! 2. the segment and its ledger excerpt are uploaded;
//! 3. both get their compliance retention (when Object Lock is on): the configured days, or
//!    longer where an evidence lock covers the segment;
//! 4. the segment is read back and every byte checked against the signed hashes again, the
//!    excerpt byte for byte;
//! 5. the index marks the segment archived, on stable storage;
//! 6. only then is the local file deleted.
//!
//! A failure (or a crash) anywhere before 6 leaves the local file and the index as they were,
//! so the next pass does it again; a crash between 5 and 6 leaves an archived segment with a
//! local copy, which the next pass deletes. Everything here runs on the archive's own thread:
//! the index and files are read with blocking calls.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use vigil_config::{ArchiveConfig, ObjectLockMode};
use vigil_media::evidence::ledger_path;
use vigil_media::store::{LockRow, SegmentRow, Store};

use crate::evidence::{EvidenceError, SegmentEvidence};
use crate::store::{ObjectArchive, ObjectError};

const DAY_US: i64 = 86_400 * 1_000_000;
/// Segments taken per pass; the next pass takes the rest.
const BATCH: usize = 64;
/// A copy [`Archiver::restore`] brought back stays this long after it was written, so a
/// playback, export or verification running beside the server is not cut short.
pub const RESTORED_KEEP: Duration = Duration::from_secs(3600);

/// What the archiver does, from `[archive]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// Object names start with this.
    pub prefix: String,
    /// A closed segment is archived once its end is this old.
    pub after: Duration,
    /// Days of compliance retention from the upload; `None`: Object Lock off.
    pub lock_days: Option<u32>,
}

impl ArchiveSettings {
    pub fn from_config(config: &ArchiveConfig) -> Self {
        Self {
            prefix: config.prefix.clone(),
            after: config.after,
            lock_days: (config.object_lock == ObjectLockMode::Compliance)
                .then_some(config.object_lock_days),
        }
    }
}

/// The steps of archiving one segment, named by what comes next; a [`StepHook`] may stop the
/// archiver at any of them as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveStep {
    /// The local file matched the ledger; the uploads are next.
    Upload,
    /// Both objects are stored; their retention is next.
    Retain,
    /// Retention is set; reading the objects back is next.
    ReadBack,
    /// The objects are verified; the index mark is next.
    Mark,
    /// The mark is durable; deleting the local file is next.
    RemoveLocal,
}

/// Called before each [`ArchiveStep`] with the stream id and segment number; an `Err` stops
/// the whole pass there (fault injection for tests).
pub type StepHook = Arc<dyn Fn(ArchiveStep, &str, i64) -> Result<(), String> + Send + Sync>;

/// A segment that stays local, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFailure {
    pub camera_id: String,
    pub seq: i64,
    pub step: ArchiveStep,
    pub reason: String,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Segments archived and removed locally, `(stream id, segment)`.
    pub archived: Vec<(String, i64)>,
    /// Local bytes freed (archived segments and copies left by an interrupted pass).
    pub bytes_freed: u64,
    /// Local copies of archived segments deleted that an earlier pass (or a restore) left.
    pub leftovers_removed: usize,
    /// Archived segments whose retention was extended for an evidence lock.
    pub retention_extended: usize,
    /// Due segments not signed in the ledger yet (archived by a later pass).
    pub waiting: usize,
    pub failures: Vec<ArchiveFailure>,
    /// The pass stopped early (a [`StepHook`] said so).
    pub stopped: Option<String>,
}

/// The two object names of a segment: its video and its ledger excerpt.
pub fn object_keys(prefix: &str, camera_id: &str, seq: i64) -> (String, String) {
    (
        format!("{prefix}video/{camera_id}/{seq:016x}.mp4"),
        format!("{prefix}ledger/{camera_id}/{seq:016x}.vgl"),
    )
}

/// The main camera id of a stream id (a secondary stream's id is its camera's with `~sub`).
fn camera_of(stream_id: &str) -> &str {
    stream_id.split_once('~').map_or(stream_id, |(c, _)| c)
}

/// Moves due segments to the archive and brings archived ones back on demand.
pub struct Archiver<A: ObjectArchive> {
    store: Arc<Store>,
    archive: A,
    settings: ArchiveSettings,
    hook: Mutex<Option<StepHook>>,
}

enum Outcome {
    Archived(u64),
    Waiting,
    Failed(ArchiveFailure),
    Stopped(String),
}

impl<A: ObjectArchive> Archiver<A> {
    pub fn new(store: Arc<Store>, archive: A, settings: ArchiveSettings) -> Self {
        Self {
            store,
            archive,
            settings,
            hook: Mutex::new(None),
        }
    }

    pub fn archive(&self) -> &A {
        &self.archive
    }

    pub fn settings(&self) -> &ArchiveSettings {
        &self.settings
    }

    /// Installs (or with `None` removes) the hook run before every [`ArchiveStep`].
    #[cfg(feature = "testing")]
    pub fn set_step_hook(&self, hook: Option<StepHook>) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    fn step(&self, step: ArchiveStep, seg: &SegmentRow) -> Result<(), String> {
        let hook = self.hook.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match hook {
            Some(h) => h(step, &seg.camera_id, seg.seq),
            None => Ok(()),
        }
    }

    /// One pass at `now_us`: deletes local copies an interrupted pass left, archives every
    /// due segment, and extends the retention of archived segments under evidence locks.
    pub async fn run_once(&self, now_us: i64) -> ArchiveReport {
        let mut report = ArchiveReport::default();
        self.remove_leftovers(now_us, &mut report);
        let due = now_us.saturating_sub(self.settings.after.as_micros() as i64);
        let candidates = match self.store.archive_candidates(due, BATCH) {
            Ok(c) => c,
            Err(e) => {
                report.stopped = Some(format!("cannot read the index: {e}"));
                return report;
            }
        };
        let locks = self.store.active_locks(now_us).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the evidence locks; archiving only with the configured retention");
            Vec::new()
        });
        for seg in candidates {
            match self.archive_one(&seg, &locks, now_us).await {
                Outcome::Archived(freed) => {
                    report.bytes_freed += freed;
                    report.archived.push((seg.camera_id.clone(), seg.seq));
                }
                Outcome::Waiting => report.waiting += 1,
                Outcome::Failed(f) => {
                    tracing::warn!(stream = %f.camera_id, seq = f.seq, step = ?f.step, reason = %f.reason, "segment not archived; the local copy stays");
                    report.failures.push(f);
                }
                Outcome::Stopped(why) => {
                    report.stopped = Some(why);
                    return report;
                }
            }
        }
        if let Some(days) = self.settings.lock_days {
            self.extend_for_locks(&locks, days, now_us, &mut report)
                .await;
        }
        report
    }

    /// The retention an archived segment needs at `now_us`: the configured days, and to the
    /// end of every evidence lock over it (a lock without an end: the configured days from
    /// now, renewed by later passes while it holds).
    fn wanted_until(&self, seg: &SegmentRow, locks: &[LockRow], days: u32, now_us: i64) -> i64 {
        let horizon = now_us + i64::from(days) * DAY_US;
        locks
            .iter()
            .filter(|l| {
                l.camera_id == camera_of(&seg.camera_id) && l.covers(seg.start_us, seg.end_us)
            })
            .map(|l| l.expires_us.unwrap_or(horizon).max(horizon))
            .fold(horizon, i64::max)
    }

    async fn archive_one(&self, seg: &SegmentRow, locks: &[LockRow], now_us: i64) -> Outcome {
        let fail = |step, reason: String| {
            Outcome::Failed(ArchiveFailure {
                camera_id: seg.camera_id.clone(),
                seq: seg.seq,
                step,
                reason,
            })
        };
        let ledger = ledger_path(self.store.root(), &seg.camera_id);
        let evidence = match SegmentEvidence::read(&ledger, &seg.camera_id, seg.seq as u64) {
            Ok(e) => e,
            Err(e @ EvidenceError::NotSigned { .. }) => {
                tracing::debug!(error = %e, "segment waits for its signature");
                return Outcome::Waiting;
            }
            Err(e) => return fail(ArchiveStep::Upload, e.to_string()),
        };
        let path = self.store.segment_path(&seg.camera_id, seg.seq);
        let local = match fs::read(&path) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                return fail(
                    ArchiveStep::Upload,
                    format!("cannot read {}: {e}", path.display()),
                );
            }
        };
        if let Err(m) = evidence.check(&local) {
            return fail(
                ArchiveStep::Upload,
                format!(
                    "the local file {} does not match its signed ledger records ({m}); it is kept and not archived: run `vigil verify`",
                    path.display()
                ),
            );
        }
        let (video_key, excerpt_key) = object_keys(&self.settings.prefix, &seg.camera_id, seg.seq);
        let excerpt = Bytes::from(evidence.excerpt.clone());

        if let Err(why) = self.step(ArchiveStep::Upload, seg) {
            return Outcome::Stopped(why);
        }
        for (key, data) in [(&video_key, local.clone()), (&excerpt_key, excerpt.clone())] {
            if let Err(e) = self.archive.put(key, data).await {
                return fail(ArchiveStep::Upload, e.to_string());
            }
        }

        if let Err(why) = self.step(ArchiveStep::Retain, seg) {
            return Outcome::Stopped(why);
        }
        let until = match self.settings.lock_days {
            Some(days) => {
                let until = self.wanted_until(seg, locks, days, now_us);
                for key in [&video_key, &excerpt_key] {
                    if let Err(e) = self.retain(key, until).await {
                        return fail(ArchiveStep::Retain, e);
                    }
                }
                Some(until)
            }
            None => None,
        };

        if let Err(why) = self.step(ArchiveStep::ReadBack, seg) {
            return Outcome::Stopped(why);
        }
        match self.archive.get(&video_key).await {
            Ok(back) => {
                if let Err(m) = evidence.check(&back) {
                    return fail(
                        ArchiveStep::ReadBack,
                        format!(
                            "the archived object {video_key} read back does not match the hashes the ledger signed ({m}); the local copy is kept"
                        ),
                    );
                }
            }
            Err(e) => return fail(ArchiveStep::ReadBack, e.to_string()),
        }
        match self.archive.get(&excerpt_key).await {
            Ok(back) if back == excerpt => {}
            Ok(back) => {
                return fail(
                    ArchiveStep::ReadBack,
                    format!(
                        "the archived ledger excerpt {excerpt_key} read back differs from the ledger ({} bytes, {} uploaded); the local copy is kept",
                        back.len(),
                        excerpt.len()
                    ),
                );
            }
            Err(e) => return fail(ArchiveStep::ReadBack, e.to_string()),
        }

        if let Err(why) = self.step(ArchiveStep::Mark, seg) {
            return Outcome::Stopped(why);
        }
        if let Err(e) = self
            .store
            .mark_archived(&seg.camera_id, seg.seq, now_us, until)
        {
            return fail(
                ArchiveStep::Mark,
                format!("cannot mark the segment archived: {e}"),
            );
        }

        if let Err(why) = self.step(ArchiveStep::RemoveLocal, seg) {
            return Outcome::Stopped(why);
        }
        match self.store.remove_local_copy(&seg.camera_id, seg.seq) {
            Ok(freed) => {
                tracing::info!(stream = %seg.camera_id, seq = seg.seq, bytes = freed, key = %video_key, "segment archived and verified; local copy removed");
                Outcome::Archived(freed)
            }
            Err(e) => fail(
                ArchiveStep::RemoveLocal,
                format!("archived, but the local copy could not be removed yet: {e}"),
            ),
        }
    }

    /// Sets a compliance retention and checks that the store holds at least that date.
    async fn retain(&self, key: &str, until_us: i64) -> Result<(), String> {
        match self.archive.retain_until(key, until_us).await {
            Ok(()) => {}
            // A store refuses to shorten; a later date it already holds is what we want.
            Err(ObjectError::Refused { .. })
                if self
                    .archive
                    .retention(key)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|held| held >= until_us) => {}
            Err(e) => {
                return Err(format!(
                    "{e} (is Object Lock enabled on the bucket? set object_lock = \"off\" for a store without it)"
                ));
            }
        }
        match self.archive.retention(key).await {
            Ok(Some(held)) if held + 1_000_000 > until_us => Ok(()),
            Ok(held) => Err(format!(
                "the archive accepted a retention until {} for {key} but holds {}",
                vigil_signing::fmt_time(until_us),
                held.map_or("none".into(), vigil_signing::fmt_time)
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Deletes local copies of archived segments that are no longer needed: one an interrupted
    /// pass left, or one brought back for reading whose time ([`RESTORED_KEEP`]) is up.
    fn remove_leftovers(&self, now_us: i64, report: &mut ArchiveReport) {
        let archived = match self.store.archived_segments() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot list archived segments");
                return;
            }
        };
        for a in archived {
            let seg = &a.row;
            if a.restored_until_us.is_some_and(|t| t > now_us)
                || !self.store.has_local_copy(&seg.camera_id, seg.seq)
            {
                continue;
            }
            match self.store.remove_local_copy(&seg.camera_id, seg.seq) {
                Ok(freed) => {
                    report.bytes_freed += freed;
                    report.leftovers_removed += 1;
                }
                Err(e) => {
                    tracing::warn!(stream = %seg.camera_id, seq = seg.seq, error = %e, "cannot remove the local copy of an archived segment")
                }
            }
        }
    }

    async fn extend_for_locks(
        &self,
        locks: &[LockRow],
        days: u32,
        now_us: i64,
        report: &mut ArchiveReport,
    ) {
        if locks.is_empty() {
            return;
        }
        let archived = match self.store.archived_segments() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot list archived segments");
                return;
            }
        };
        // Renew an open-ended lock's retention once half of the configured days are left, not
        // on every pass.
        let renew_below = now_us + i64::from(days) * DAY_US / 2;
        for a in archived {
            let (seg, held) = (a.row, a.retained_until_us);
            let covered = locks.iter().any(|l| {
                l.camera_id == camera_of(&seg.camera_id) && l.covers(seg.start_us, seg.end_us)
            });
            if !covered {
                continue;
            }
            let wanted = self.wanted_until(&seg, locks, days, now_us);
            let held = held.unwrap_or(0);
            let needs = locks.iter().any(|l| {
                l.camera_id == camera_of(&seg.camera_id)
                    && l.covers(seg.start_us, seg.end_us)
                    && match l.expires_us {
                        Some(end) => held < end,
                        None => held < renew_below,
                    }
            });
            if !needs {
                continue;
            }
            let (video_key, excerpt_key) =
                object_keys(&self.settings.prefix, &seg.camera_id, seg.seq);
            let mut ok = true;
            for key in [&video_key, &excerpt_key] {
                if let Err(e) = self.retain(key, wanted).await {
                    ok = false;
                    report.failures.push(ArchiveFailure {
                        camera_id: seg.camera_id.clone(),
                        seq: seg.seq,
                        step: ArchiveStep::Retain,
                        reason: format!("cannot extend the retention for an evidence lock: {e}"),
                    });
                    break;
                }
            }
            if ok {
                if let Err(e) = self
                    .store
                    .set_archive_until(&seg.camera_id, seg.seq, wanted)
                {
                    tracing::error!(error = %e, "cannot record the extended retention");
                }
                report.retention_extended += 1;
            }
        }
    }

    /// Brings an archived segment back to its place on the local volume, checked against the
    /// ledger's signed hashes first (see [`restore_segment`]).
    pub async fn restore(&self, camera_id: &str, seq: i64) -> Result<bool, String> {
        restore_segment(
            &self.store,
            &self.archive,
            &self.settings.prefix,
            camera_id,
            seq,
        )
        .await
    }

    /// Restores every archived segment of a camera (both streams) overlapping
    /// `[from_us, to_us)` that has no local copy. Returns how many were fetched.
    pub async fn restore_range(
        &self,
        camera_id: &str,
        from_us: i64,
        to_us: i64,
    ) -> Result<usize, String> {
        restore_range(
            &self.store,
            &self.archive,
            &self.settings.prefix,
            camera_id,
            from_us,
            to_us,
        )
        .await
    }
}

/// Restores every archived segment of a camera (both streams) overlapping `[from_us, to_us)`
/// that has no local copy, each checked as [`restore_segment`] does. Returns how many were
/// fetched.
pub async fn restore_range<A: ObjectArchive>(
    store: &Store,
    archive: &A,
    prefix: &str,
    camera_id: &str,
    from_us: i64,
    to_us: i64,
) -> Result<usize, String> {
    let mut fetched = 0;
    let streams = [
        camera_id.to_owned(),
        vigil_media::store::secondary_stream_id(camera_id),
    ];
    for stream in &streams {
        let segments = store.segments(stream).map_err(|e| e.to_string())?;
        for seg in segments {
            if seg.archived_us.is_some()
                && seg.end_us >= from_us
                && seg.start_us < to_us
                && restore_segment(store, archive, prefix, stream, seg.seq).await?
            {
                fetched += 1;
            }
        }
    }
    Ok(fetched)
}

/// Brings an archived segment back to its place on the local volume, checked against the
/// ledger's signed hashes first, so playback, export and verification read it like any other.
/// Nothing to do when the local copy is there. Returns whether it was fetched. A copy that
/// does not match what the ledger signed is never written.
pub async fn restore_segment<A: ObjectArchive>(
    store: &Store,
    archive: &A,
    prefix: &str,
    camera_id: &str,
    seq: i64,
) -> Result<bool, String> {
    let path = store.segment_path(camera_id, seq);
    if path.exists() {
        return Ok(false);
    }
    let seg = store
        .segment(camera_id, seq)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("segment {seq} of {camera_id} is not in the index"))?;
    if seg.archived_us.is_none() {
        return Err(format!(
            "segment {seq} of {camera_id} is neither on the local volume nor archived"
        ));
    }
    let ledger = ledger_path(store.root(), camera_id);
    let evidence =
        SegmentEvidence::read(&ledger, camera_id, seq as u64).map_err(|e| e.to_string())?;
    let (video_key, _) = object_keys(prefix, camera_id, seq);
    let bytes = archive.get(&video_key).await.map_err(|e| e.to_string())?;
    evidence.check(&bytes).map_err(|m| {
        format!("the archived object {video_key} does not match the hashes the ledger signed ({m}); not restored")
    })?;
    // Marked first: a pass running meanwhile must not take the copy away from its reader.
    let keep_until = vigil_media::store::now_us() + RESTORED_KEEP.as_micros() as i64;
    store
        .mark_restored(camera_id, seq, keep_until)
        .map_err(|e| e.to_string())?;
    write_restored(&path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tracing::info!(stream = camera_id, seq, key = %video_key, "archived segment restored for reading");
    Ok(true)
}

/// Writes a restored segment under a temporary name, syncs it, and renames it into place, so a
/// reader never sees half a file.
fn write_restored(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
    fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(
        ".{}.restoring",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment")
    ));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o640)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(&dir)?.sync_all()
}
