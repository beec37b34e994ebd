//! Retention: deletes the oldest closed segments of a camera when its video is older than its
//! maximum age or larger than its byte budget, and the oldest of any camera when the volume
//! runs short of free space. The segment being written is never deleted.

use std::path::Path;

use crate::store::{Store, StoreError, now_us};

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

/// Applies age and byte limits to every camera, then the free-space floor.
/// `before_delete(camera_id, seq)` runs before each file is removed, so the evidence ledger
/// records the prune as a signed fact first.
pub type BeforeDelete<'a> = &'a dyn Fn(&str, i64);

pub fn enforce(
    store: &Store,
    policy: &RetentionPolicy,
    before_delete: BeforeDelete<'_>,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    let now = now_us();
    for cam in store.cameras()? {
        let max_age = cam.max_age_secs.or(policy.max_age_secs);
        let max_bytes = cam.max_bytes.or(policy.max_bytes);
        let segments = store.segments(&cam.id)?;
        let mut total: i64 = segments.iter().map(|s| s.bytes).sum();
        for seg in segments.iter().filter(|s| !s.open) {
            let too_old = max_age.is_some_and(|a| seg.end_us < now - a * 1_000_000);
            let too_big = max_bytes.is_some_and(|b| total > b);
            if !too_old && !too_big {
                break;
            }
            before_delete(&cam.id, seg.seq);
            let freed = store.delete_segment(&cam.id, seg.seq)?;
            tracing::info!(camera = %cam.name, seq = seg.seq, too_old, too_big, "retention deleted segment");
            total -= seg.bytes;
            report.segments_deleted += 1;
            report.bytes_freed += freed;
        }
    }
    if let Some(free) = free_bytes(store.root())
        && free < policy.min_free_bytes
    {
        let more = free_space(store, policy.min_free_bytes - free, before_delete)?;
        report.segments_deleted += more.segments_deleted;
        report.bytes_freed += more.bytes_freed;
    }
    Ok(report)
}

/// Deletes the oldest closed segments of any camera until `needed` bytes are freed or none
/// is left to delete.
pub fn free_space(
    store: &Store,
    needed: u64,
    before_delete: BeforeDelete<'_>,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    while report.bytes_freed < needed {
        let oldest = store.oldest_closed_segments(16)?;
        if oldest.is_empty() {
            break;
        }
        for seg in oldest {
            before_delete(&seg.camera_id, seg.seq);
            report.bytes_freed += store.delete_segment(&seg.camera_id, seg.seq)?;
            report.segments_deleted += 1;
            tracing::warn!(camera = %seg.camera_id, seq = seg.seq, "deleted oldest segment to free disk space");
            if report.bytes_freed >= needed {
                break;
            }
        }
    }
    Ok(report)
}
