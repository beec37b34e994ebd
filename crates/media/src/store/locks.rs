//! Evidence locks: time ranges of a camera that retention must keep, whatever the camera's age
//! and byte limits and the free-space floor say, until the lock is released or expires. A lock
//! covers both of the camera's streams. The signed record of each lock, release and expiry is
//! the ledger's (`crate::evidence`); these rows are what retention consults.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};

/// One evidence lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    pub id: i64,
    /// The camera (main stream id); its secondary stream is covered too.
    pub camera_id: String,
    pub from_us: i64,
    pub to_us: i64,
    pub reason: String,
    /// `user:<name>`, `rule:<name>` or `cli:<user>`.
    pub created_by: String,
    pub created_us: i64,
    /// When the lock ends by itself; `None`: until released.
    pub expires_us: Option<i64>,
    /// When it was released or expired; `None` while it holds.
    pub ended_us: Option<i64>,
    /// Who released it, or [`EXPIRY`].
    pub ended_by: Option<String>,
}

impl LockRow {
    /// Whether the lock holds at `now`.
    pub fn active_at(&self, now: i64) -> bool {
        self.ended_us.is_none() && self.expires_us.is_none_or(|e| e > now)
    }

    /// `active`, `released` or `expired` at `now`.
    pub fn state(&self, now: i64) -> &'static str {
        if self.active_at(now) {
            "active"
        } else if self.ended_us.is_none() || self.ended_by.as_deref() == Some(EXPIRY) {
            "expired"
        } else {
            "released"
        }
    }

    /// Whether a recording between `start_us` and `end_us` touches the locked range.
    pub fn covers(&self, start_us: i64, end_us: i64) -> bool {
        start_us <= self.to_us && end_us >= self.from_us
    }
}

/// Who ends a lock whose time ran out (`ended_by`).
pub const EXPIRY: &str = "expiry";

/// The main camera id of a stream id (a secondary stream's id is its camera's with a suffix).
fn camera_of(stream_id: &str) -> &str {
    stream_id.split_once('~').map_or(stream_id, |(c, _)| c)
}

const COLUMNS: &str =
    "id, camera_id, from_us, to_us, reason, created_by, created_us, expires_us, ended_us, ended_by";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LockRow> {
    Ok(LockRow {
        id: r.get(0)?,
        camera_id: r.get(1)?,
        from_us: r.get(2)?,
        to_us: r.get(3)?,
        reason: r.get(4)?,
        created_by: r.get(5)?,
        created_us: r.get(6)?,
        expires_us: r.get(7)?,
        ended_us: r.get(8)?,
        ended_by: r.get(9)?,
    })
}

impl Store {
    /// Stores a new lock and returns it (with its id).
    #[allow(clippy::too_many_arguments)]
    pub fn add_lock(
        &self,
        camera_id: &str,
        from_us: i64,
        to_us: i64,
        reason: &str,
        created_by: &str,
        created_us: i64,
        expires_us: Option<i64>,
    ) -> Result<LockRow> {
        let db = self.db();
        db.execute(
            "INSERT INTO evidence_locks (camera_id, from_us, to_us, reason, created_by, created_us, expires_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![camera_id, from_us, to_us, reason, created_by, created_us, expires_us],
        )?;
        let id = db.last_insert_rowid();
        Ok(LockRow {
            id,
            camera_id: camera_id.to_owned(),
            from_us,
            to_us,
            reason: reason.to_owned(),
            created_by: created_by.to_owned(),
            created_us,
            expires_us,
            ended_us: None,
            ended_by: None,
        })
    }

    /// Removes a lock row that was never in force (its signed record could not be written).
    pub fn forget_lock(&self, id: i64) -> Result<()> {
        self.db()
            .execute("DELETE FROM evidence_locks WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn lock(&self, id: i64) -> Result<Option<LockRow>> {
        Ok(self
            .db()
            .query_row(
                &format!("SELECT {COLUMNS} FROM evidence_locks WHERE id = ?1"),
                [id],
                row,
            )
            .optional()?)
    }

    /// Ends a lock (released by `by`, or `expiry`); false when it had already ended.
    pub fn end_lock(&self, id: i64, at_us: i64, by: &str) -> Result<bool> {
        let n = self.db().execute(
            "UPDATE evidence_locks SET ended_us = ?2, ended_by = ?3 WHERE id = ?1 AND ended_us IS NULL",
            params![id, at_us, by],
        )?;
        Ok(n == 1)
    }

    /// A camera's locks overlapping `[from_us, to_us]` (all when `None`), oldest first,
    /// ended ones included.
    pub fn locks(&self, camera_id: &str, range: Option<(i64, i64)>) -> Result<Vec<LockRow>> {
        let (from, to) = range.unwrap_or((i64::MIN, i64::MAX));
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {COLUMNS} FROM evidence_locks
             WHERE camera_id = ?1 AND from_us <= ?3 AND to_us >= ?2 ORDER BY from_us, id"
        ))?;
        let rows = st.query_map(params![camera_id, from, to], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Locks that hold at `now`, of every camera.
    pub fn active_locks(&self, now: i64) -> Result<Vec<LockRow>> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {COLUMNS} FROM evidence_locks
             WHERE ended_us IS NULL AND (expires_us IS NULL OR expires_us > ?1)"
        ))?;
        let rows = st.query_map([now], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Locks whose time ran out by `now` but that are not marked ended yet.
    pub fn expired_locks(&self, now: i64) -> Result<Vec<LockRow>> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {COLUMNS} FROM evidence_locks
             WHERE ended_us IS NULL AND expires_us IS NOT NULL AND expires_us <= ?1"
        ))?;
        let rows = st.query_map([now], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The locks in force at one instant, for retention: whether a segment may be deleted.
#[derive(Debug, Clone, Default)]
pub struct Locks(Vec<LockRow>);

impl Locks {
    pub fn in_force(store: &Store, now: i64) -> Result<Self> {
        Ok(Locks(store.active_locks(now)?))
    }

    /// Whether a segment of stream `stream_id` between `start_us` and `end_us` is locked.
    pub fn holds(&self, stream_id: &str, start_us: i64, end_us: i64) -> bool {
        let camera = camera_of(stream_id);
        self.0
            .iter()
            .any(|l| l.camera_id == camera && l.covers(start_us, end_us))
    }
}
