//! Retention: deletes the oldest closed segments of a camera when its video is older than its
//! maximum age or larger than its byte budget (both streams of a camera with a recorded
//! secondary stream together), and the oldest of any camera when the volume runs short of free
//! space. The segment being written is never deleted.

use std::path::Path;

use std::collections::HashMap;

use crate::reserve::SpaceReserve;
use crate::store::{Locks, Store, StoreError, now_us, secondary_stream_id};

/// Defaults for cameras that set no limits of their own.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetentionPolicy {
    pub max_age_secs: Option<i64>,
    pub max_bytes: Option<i64>,
    pub min_free_bytes: u64,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_deleted: usize,
    pub bytes_freed: u64,
    /// Segments the limits would have deleted but an evidence lock kept.
    pub segments_locked: usize,
}

/// Free bytes on the volume holding `path`, as an unprivileged process may use them.
pub fn free_bytes(path: &Path) -> Option<u64> {
    rustix::fs::statvfs(path)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

/// Size of the volume holding `path`.
pub fn volume_bytes(path: &Path) -> Option<u64> {
    rustix::fs::statvfs(path)
        .ok()
        .map(|s| s.f_blocks.saturating_mul(s.f_frsize))
}

/// How much to free when a write meets a full disk: enough for several GOPs, but never more
/// than a tenth of the volume, so a small volume keeps most of its video.
pub fn emergency_amount(path: &Path) -> u64 {
    let cap = 64 * 1024 * 1024;
    volume_bytes(path)
        .map(|v| (v / 10).clamp(1, cap))
        .unwrap_or(cap)
}

/// Runs before each file is removed: `before_delete(camera_id, seq)` records the prune in the
/// evidence ledger durably. When it fails the file is kept: deleting a signed segment without
/// a durable prune record would make verification call it missing.
pub type BeforeDelete<'a> = &'a dyn Fn(&str, i64) -> Result<(), String>;

/// Why space is being freed, which decides what may be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// The periodic free-space floor: keeps each camera's newest closed segment, so a floor
    /// that the volume cannot reach never empties it of everything but the open segment.
    Floor,
    /// The next GOP cannot be written: any closed segment may go, oldest first.
    Emergency,
}

/// The free-space floor to apply on a volume of `volume` bytes. A configured floor of half the
/// volume or more can never be met and would make every retention pass delete all closed video,
/// so a tenth of the volume is used instead, with a warning for the admin.
pub fn effective_floor(configured: u64, volume: Option<u64>) -> (u64, Option<String>) {
    match volume {
        Some(v) if v > 0 && configured >= v / 2 => {
            let floor = v / 10;
            (
                floor,
                Some(format!(
                    "storage.min_free_bytes ({configured} bytes) cannot be met on a volume of {v} bytes; keeping {floor} bytes free instead. Set storage.min_free_bytes below half the volume in vigil.toml"
                )),
            )
        }
        _ => (configured, None),
    }
}

/// Applies age and byte limits to every camera, then the free-space floor.
pub fn enforce(
    store: &Store,
    policy: &RetentionPolicy,
    before_delete: BeforeDelete<'_>,
    reserve: Option<&SpaceReserve>,
) -> Result<RetentionReport, StoreError> {
    enforce_at(store, policy, now_us(), before_delete, reserve)
}

/// [`enforce`] with the current time given (Unix microseconds), which decides what is too old.
pub fn enforce_at(
    store: &Store,
    policy: &RetentionPolicy,
    now: i64,
    before_delete: BeforeDelete<'_>,
    reserve: Option<&SpaceReserve>,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    // Locked evidence stays, whatever the limits: it still counts against the byte budget,
    // so newer unlocked video goes first (docs/storage-format.md, "Evidence locks").
    let locks = Locks::in_force(store, now)?;
    for cam in store.cameras()? {
        let max_age = cam.max_age_secs.or(policy.max_age_secs);
        let max_bytes = cam.max_bytes.or(policy.max_bytes);
        // A camera's limits cover both its streams together: a recorded secondary stream's
        // segments (also those kept after the secondary was removed) age out with the main
        // stream's and count against the same byte budget, oldest end first.
        let mut segments = store.segments(&cam.id)?;
        segments.extend(store.segments(&secondary_stream_id(&cam.id))?);
        // Archived video is kept by the archive tier (its Object Lock and the bucket's own
        // lifecycle rules), and deleting its rows would free nothing here.
        segments.retain(|s| s.archived_us.is_none());
        segments.sort_by_key(|s| (s.end_us, s.seq));
        let mut total: i64 = segments.iter().map(|s| s.bytes).sum();
        for seg in segments.iter().filter(|s| !s.open) {
            let too_old = max_age.is_some_and(|a| seg.end_us < now - a * 1_000_000);
            let too_big = max_bytes.is_some_and(|b| total > b);
            if !too_old && !too_big {
                break;
            }
            if locks.holds(&seg.camera_id, seg.start_us, seg.end_us) {
                report.segments_locked += 1;
                continue;
            }
            let Some(freed) = delete_one(store, &seg.camera_id, seg.seq, before_delete, reserve)
            else {
                break;
            };
            tracing::info!(camera = %cam.name, stream = %seg.camera_id, seq = seg.seq, too_old, too_big, "retention deleted segment");
            total -= seg.bytes;
            report.segments_deleted += 1;
            report.bytes_freed += freed;
        }
    }
    let (floor, _) = effective_floor(policy.min_free_bytes, volume_bytes(store.root()));
    if let Some(free) = free_bytes(store.root())
        && free < floor
    {
        let more = free_space(store, floor - free, before_delete, reserve, Urgency::Floor)?;
        report.segments_deleted += more.segments_deleted;
        report.bytes_freed += more.bytes_freed;
        report.segments_locked += more.segments_locked;
    }
    if let Some(r) = reserve {
        r.ensure();
    }
    Ok(report)
}

/// Deletes the oldest closed segments of any camera until `needed` bytes are freed or none
/// is left to delete (see [`Urgency`] for which may go).
pub fn free_space(
    store: &Store,
    needed: u64,
    before_delete: BeforeDelete<'_>,
    reserve: Option<&SpaceReserve>,
    urgency: Urgency,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    let keep: HashMap<String, i64> = match urgency {
        Urgency::Floor => store.newest_closed_segments()?,
        Urgency::Emergency => HashMap::new(),
    };
    // Not even a full disk deletes locked evidence: recording then loses new GOPs instead.
    let locks = Locks::in_force(store, now_us())?;
    let mut skip = 0usize;
    while report.bytes_freed < needed {
        let batch = store.oldest_closed_segments(skip + 16)?;
        let exhausted = batch.len() < skip + 16;
        let locked = batch
            .iter()
            .filter(|s| locks.holds(&s.camera_id, s.start_us, s.end_us))
            .count();
        let candidates: Vec<_> = batch
            .into_iter()
            .filter(|s| keep.get(&s.camera_id) != Some(&s.seq))
            .filter(|s| !locks.holds(&s.camera_id, s.start_us, s.end_us))
            .collect();
        if candidates.is_empty() {
            if exhausted {
                report.segments_locked = report.segments_locked.max(locked);
                break;
            }
            skip += 16;
            continue;
        }
        let before = report.segments_deleted;
        for seg in candidates {
            let Some(freed) = delete_one(store, &seg.camera_id, seg.seq, before_delete, reserve)
            else {
                // Neither the ledger nor the index can be written even with the reserve
                // released; deleting more would only fail the same way.
                return Ok(report);
            };
            report.bytes_freed += freed;
            report.segments_deleted += 1;
            tracing::warn!(camera = %seg.camera_id, seq = seg.seq, "deleted oldest segment to free disk space");
            if report.bytes_freed >= needed {
                break;
            }
        }
        if report.segments_deleted == before {
            skip += 16;
        }
    }
    Ok(report)
}

/// Records the prune and deletes one segment; on a full volume releases the reserve once and
/// tries again. `None` when the segment could not be deleted.
fn delete_one(
    store: &Store,
    camera_id: &str,
    seq: i64,
    before_delete: BeforeDelete<'_>,
    reserve: Option<&SpaceReserve>,
) -> Option<u64> {
    let attempt = || -> Result<u64, String> {
        before_delete(camera_id, seq)?;
        let n = store
            .delete_segment(camera_id, seq)
            .map_err(|e| e.to_string())?;
        crate::counters::stream(camera_id).retention_deleted(n);
        Ok(n)
    };
    match attempt() {
        Ok(n) => Some(n),
        Err(first) => {
            let released = reserve.map_or(0, |r| r.release());
            if released > 0
                && let Ok(n) = attempt()
            {
                return Some(n);
            }
            tracing::error!(camera = camera_id, seq, error = %first, released, "cannot delete the segment to free space");
            None
        }
    }
}
