//! Evidence locks: keeping a range of a camera's video from retention (an incident under
//! investigation, a rule's alarm), releasing it, and letting it expire. Each step is first a
//! signed fact in the camera's evidence ledger, then the row retention consults, so nothing is
//! kept or let go without a signed record of it (docs/storage-format.md, "Evidence locks").

use vigil_media::evidence::{Evidence, EvidenceError};
use vigil_media::store::{EXPIRY, LockRow, Store, StoreError, now_us};
use vigil_signing::{LockAction, LockFact};

use crate::error::{Classified, ErrorKind};

/// Longest lock reason, in bytes.
pub const MAX_REASON: usize = 512;
/// Longest locked range: a year.
pub const MAX_SPAN_US: i64 = 366 * 86_400 * 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot write the lock to the evidence ledger: {0}")]
    Ledger(#[from] EvidenceError),
    #[error("the range is not valid: {0}")]
    BadRange(String),
    #[error("the reason must be 1 to {MAX_REASON} bytes of text without control characters")]
    BadReason,
    #[error("no evidence lock {0} on this camera")]
    NotFound(i64),
    #[error("evidence lock {0} has already ended")]
    Ended(i64),
    #[error(
        "evidence locks are kept in the evidence ledger, which only the recording server writes; lock through the running server"
    )]
    NotRecording,
}

impl Classified for LockError {
    fn kind(&self) -> ErrorKind {
        match self {
            LockError::Store(StoreError::NoSuchCamera(_)) | LockError::NotFound(_) => {
                ErrorKind::NotFound
            }
            LockError::BadRange(_) | LockError::BadReason => ErrorKind::InvalidInput,
            LockError::Ended(_) => ErrorKind::Conflict,
            LockError::NotRecording => ErrorKind::Unavailable,
            LockError::Store(_) | LockError::Ledger(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            LockError::Store(StoreError::NoSuchCamera(_)) => "camera_not_found",
            LockError::NotFound(_) => "lock_not_found",
            LockError::BadRange(_) => "bad_range",
            LockError::BadReason => "bad_reason",
            LockError::Ended(_) => "lock_ended",
            LockError::NotRecording => "not_recording",
            LockError::Store(_) | LockError::Ledger(_) => "internal",
        }
    }
}

/// A lock to set.
#[derive(Debug, Clone)]
pub struct NewLock<'a> {
    /// Camera name or id.
    pub camera: &'a str,
    pub from_us: i64,
    pub to_us: i64,
    pub reason: &'a str,
    /// `user:<name>`, `rule:<name>`, ...
    pub by: &'a str,
    /// When it ends by itself; `None`: until released.
    pub expires_us: Option<i64>,
}

fn check(new: &NewLock<'_>, now: i64) -> Result<(), LockError> {
    if new.to_us <= new.from_us {
        return Err(LockError::BadRange(
            "the end must be after the start".into(),
        ));
    }
    if new.to_us.saturating_sub(new.from_us) > MAX_SPAN_US {
        return Err(LockError::BadRange("a lock covers at most 366 days".into()));
    }
    if new.expires_us.is_some_and(|e| e <= now) {
        return Err(LockError::BadRange(
            "the expiry must be in the future".into(),
        ));
    }
    if new.reason.trim().is_empty()
        || new.reason.len() > MAX_REASON
        || new.reason.chars().any(char::is_control)
    {
        return Err(LockError::BadReason);
    }
    Ok(())
}

fn fact(l: &LockRow, action: LockAction, at_us: i64, by: &str) -> LockFact {
    LockFact {
        action,
        lock_id: l.id as u64,
        from_us: l.from_us,
        to_us: l.to_us,
        at_us,
        by: by.to_owned(),
        reason: l.reason.clone(),
    }
}

/// Locks a range of a camera's video (both its streams): signed in the camera's ledger, then
/// in force for retention.
pub fn lock(
    store: &Store,
    evidence: Option<&Evidence>,
    new: &NewLock<'_>,
) -> Result<LockRow, LockError> {
    let now = now_us();
    check(new, now)?;
    let evidence = evidence.ok_or(LockError::NotRecording)?;
    let cam = store.camera(new.camera)?;
    // The row gives the lock its number; it holds only once its signed record is written.
    let row = store.add_lock(
        &cam.id,
        new.from_us,
        new.to_us,
        new.reason.trim(),
        new.by,
        now,
        new.expires_us,
    )?;
    if let Err(e) = evidence.evidence_lock(&cam.id, fact(&row, LockAction::Locked, now, new.by)) {
        store.forget_lock(row.id)?;
        return Err(e.into());
    }
    tracing::info!(camera = %cam.name, lock = row.id, from_us = row.from_us, to_us = row.to_us, by = new.by, "evidence locked");
    Ok(row)
}

/// Releases a lock of `camera`: signed, then retention may delete the range again.
pub fn release(
    store: &Store,
    evidence: Option<&Evidence>,
    camera: &str,
    id: i64,
    by: &str,
) -> Result<LockRow, LockError> {
    let evidence = evidence.ok_or(LockError::NotRecording)?;
    let cam = store.camera(camera)?;
    let row = store
        .lock(id)?
        .filter(|l| l.camera_id == cam.id)
        .ok_or(LockError::NotFound(id))?;
    let now = now_us();
    if !row.active_at(now) {
        return Err(LockError::Ended(id));
    }
    evidence.evidence_lock(&cam.id, fact(&row, LockAction::Released, now, by))?;
    store.end_lock(id, now, by)?;
    tracing::info!(camera = %cam.name, lock = id, by, "evidence lock released");
    Ok(store.lock(id)?.unwrap_or(row))
}

/// Ends the locks whose time ran out by `now`, each with its signed expiry record; returns
/// them. Retention already ignores them; this makes the end a fact in the ledger.
pub fn expire_due(store: &Store, evidence: &Evidence, now: i64) -> Result<Vec<LockRow>, LockError> {
    let mut ended = Vec::new();
    for l in store.expired_locks(now)? {
        let at = l.expires_us.unwrap_or(now);
        evidence.evidence_lock(&l.camera_id, fact(&l, LockAction::Expired, at, EXPIRY))?;
        if store.end_lock(l.id, at, EXPIRY)? {
            ended.push(l);
        }
    }
    Ok(ended)
}

/// A camera's locks overlapping a range (all when `None`), ended ones included.
pub fn list(
    store: &Store,
    camera: &str,
    range: Option<(i64, i64)>,
) -> Result<Vec<LockRow>, LockError> {
    let cam = store.camera(camera)?;
    Ok(store.locks(&cam.id, range)?)
}
