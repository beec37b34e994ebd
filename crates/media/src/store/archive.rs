//! The archive tier's marks in the index (docs/design/archive.md): which closed segments are
//! verified in the object store, the Object Lock date the store holds for each, and removing a
//! local copy only once its mark is on stable storage.

use std::fs::{self, File};

use rusqlite::{OptionalExtension, params};

use super::{Result, SegmentRow, Store, StoreError, index::segment_from_row, io_err};

/// An archived segment as the index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedSegment {
    pub row: SegmentRow,
    /// The Object Lock retention date the store holds for its objects, if any.
    pub retained_until_us: Option<i64>,
    /// Until when a copy brought back for reading stays on the local volume.
    pub restored_until_us: Option<i64>,
}

const SEGMENT_COLUMNS: &str = "camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open, archived_us";

impl Store {
    /// Closed segments not archived yet whose video ended before `ended_before_us`, oldest
    /// first, at most `limit`.
    pub fn archive_candidates(
        &self,
        ended_before_us: i64,
        limit: usize,
    ) -> Result<Vec<SegmentRow>> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {SEGMENT_COLUMNS} FROM segments
             WHERE open = 0 AND archived_us IS NULL AND end_us < ?1
             ORDER BY end_us, camera_id, seq LIMIT ?2"
        ))?;
        let rows = st.query_map(params![ended_before_us, limit as i64], segment_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every archived segment of every stream.
    pub fn archived_segments(&self) -> Result<Vec<ArchivedSegment>> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {SEGMENT_COLUMNS}, archive_until_us, restored_until_us FROM segments
             WHERE archived_us IS NOT NULL ORDER BY camera_id, seq"
        ))?;
        let rows = st.query_map([], |r| {
            Ok(ArchivedSegment {
                row: segment_from_row(r)?,
                retained_until_us: r.get(11)?,
                restored_until_us: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records that a copy of an archived segment was brought back for reading and should stay
    /// local until `until_us` (readers in other processes, such as `vigil verify`, see it).
    pub fn mark_restored(&self, camera_id: &str, seq: i64, until_us: i64) -> Result<()> {
        self.db().execute(
            "UPDATE segments SET restored_until_us = max(coalesce(restored_until_us, 0), ?3)
             WHERE camera_id = ?1 AND seq = ?2 AND archived_us IS NOT NULL",
            params![camera_id, seq, until_us],
        )?;
        Ok(())
    }

    /// One segment's row, archived or not.
    pub fn segment(&self, camera_id: &str, seq: i64) -> Result<Option<SegmentRow>> {
        Ok(self
            .db()
            .query_row(
                &format!(
                    "SELECT {SEGMENT_COLUMNS} FROM segments WHERE camera_id = ?1 AND seq = ?2"
                ),
                params![camera_id, seq],
                segment_from_row,
            )
            .optional()?)
    }

    /// Records that the segment's object was verified in the archive, and the retention date
    /// the store holds for it. The mark is committed with `synchronous=FULL`: the local file
    /// may be deleted right after, and a power cut must not leave a row that neither knows it
    /// is archived nor has its file (recovery would then drop it).
    pub fn mark_archived(
        &self,
        camera_id: &str,
        seq: i64,
        at_us: i64,
        until_us: Option<i64>,
    ) -> Result<()> {
        let db = self.db();
        db.pragma_update(None, "synchronous", "FULL")?;
        let done = db.execute(
            "UPDATE segments SET archived_us = ?3, archive_until_us = ?4
             WHERE camera_id = ?1 AND seq = ?2 AND open = 0",
            params![camera_id, seq, at_us, until_us],
        );
        let restored = db.pragma_update(None, "synchronous", "NORMAL");
        let n = done?;
        restored?;
        if n == 0 {
            return Err(StoreError::InvalidCamera(format!(
                "segment {seq} of {camera_id} is not a closed indexed segment"
            )));
        }
        Ok(())
    }

    /// Records a later retention date for an archived segment (an evidence lock extended it).
    pub fn set_archive_until(&self, camera_id: &str, seq: i64, until_us: i64) -> Result<()> {
        self.db().execute(
            "UPDATE segments SET archive_until_us = max(coalesce(archive_until_us, 0), ?3)
             WHERE camera_id = ?1 AND seq = ?2 AND archived_us IS NOT NULL",
            params![camera_id, seq, until_us],
        )?;
        Ok(())
    }

    /// Deletes the local file of an archived segment (its rows stay: they say where the video
    /// is). Refuses a segment the index does not hold as archived, so no caller can drop the
    /// only copy. Returns the bytes freed (0 when the file was already gone).
    pub fn remove_local_copy(&self, camera_id: &str, seq: i64) -> Result<u64> {
        let archived = self
            .segment(camera_id, seq)?
            .is_some_and(|s| s.archived_us.is_some());
        if !archived {
            return Err(StoreError::InvalidCamera(format!(
                "segment {seq} of {camera_id} is not archived; its local file stays"
            )));
        }
        let path = self.segment_path(camera_id, seq);
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&path)(e)),
        };
        fs::remove_file(&path).map_err(io_err(&path))?;
        let dir = self.camera_dir(camera_id);
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))?;
        Ok(len)
    }

    /// Whether the segment's file is on the local volume.
    pub fn has_local_copy(&self, camera_id: &str, seq: i64) -> bool {
        self.segment_path(camera_id, seq).exists()
    }
}
