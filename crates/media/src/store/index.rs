//! The segment index: segment, GOP and gap rows, recorder runs, and the queries playback,
//! export and retention make over them. Rows are written only after the bytes they describe
//! are on disk (see `writer`).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, io_err, now_us};

/// One segment file as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    pub camera_id: String,
    pub seq: i64,
    pub start_us: i64,
    pub end_us: i64,
    pub bytes: i64,
    pub frames: i64,
    pub init_len: i64,
    pub init_sha256: Vec<u8>,
    pub codec: String,
    pub open: bool,
    /// When the archive tier verified the segment's object (docs/design/archive.md); the
    /// local file may be gone from then on.
    pub archived_us: Option<i64>,
}

/// One GOP fragment as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GopRow {
    pub camera_id: String,
    pub seq: i64,
    pub gop_no: i64,
    pub start_us: i64,
    pub duration_us: i64,
    pub offset: i64,
    pub len: i64,
    pub frames: i64,
    pub sha256: Vec<u8>,
}

/// A stored gap: nothing was recorded between the two instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRow {
    pub start_us: i64,
    pub end_us: i64,
    pub reason: String,
}

/// Gap reason: the previous recorder run ended without stopping cleanly (crash, `kill -9`,
/// power cut).
pub const GAP_UNCLEAN_SHUTDOWN: &str = "unclean shutdown";

/// Gap reason: the recorder was stopped (server stop, camera disabled or changed) and started
/// again.
pub const GAP_RECORDING_STOPPED: &str = "recording stopped";

/// Gap reason: video from before runs were tracked; how that recording ended is unknown.
pub const GAP_RECORDER_RESTARTED: &str = "recorder restarted";

/// How a camera's recording was interrupted before the current recorder run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    /// End of the last stored video (or the clean stop, if later), in Unix microseconds.
    pub since_us: i64,
    pub reason: String,
}

impl Store {
    /// Allocates the next segment number and GOP number range owner for a camera.
    pub(super) fn next_seq(&self, camera_id: &str) -> Result<i64> {
        let db = self.db();
        let seq: i64 = db.query_row(
            "UPDATE cameras SET next_seq = next_seq + 1 WHERE id = ?1 RETURNING next_seq - 1",
            [camera_id],
            |r| r.get(0),
        )?;
        Ok(seq)
    }

    /// The next unused per-camera GOP number (the fragment's `mfhd` sequence number). Only the
    /// camera's one writer allocates numbers, so it keeps the counter in memory and each indexed
    /// GOP advances the stored value in the same transaction.
    pub fn next_gop_no(&self, camera_id: &str) -> Result<i64> {
        Ok(self.db().query_row(
            "SELECT next_gop FROM cameras WHERE id = ?1",
            [camera_id],
            |r| r.get(0),
        )?)
    }

    pub(super) fn insert_gop(&self, g: &GopRow, seg_end_us: i64, seg_len: i64) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO gops (camera_id, seq, gop_no, start_us, duration_us, offset, len, frames, sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![g.camera_id, g.seq, g.gop_no, g.start_us, g.duration_us, g.offset, g.len, g.frames, g.sha256],
        )?;
        tx.execute(
            "UPDATE segments SET end_us = max(end_us, ?3), bytes = ?4, frames = frames + ?5
             WHERE camera_id = ?1 AND seq = ?2",
            params![g.camera_id, g.seq, seg_end_us, seg_len, g.frames],
        )?;
        tx.execute(
            "UPDATE cameras SET next_gop = max(next_gop, ?2 + 1) WHERE id = ?1",
            params![g.camera_id, g.gop_no],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks a segment complete, or deletes it when it holds no GOP.
    pub fn close_segment(&self, camera_id: &str, seq: i64) -> Result<()> {
        let has_gop = self.db().query_row(
            "SELECT count(*) FROM gops WHERE camera_id = ?1 AND seq = ?2",
            params![camera_id, seq],
            |r| r.get::<_, i64>(0),
        )? > 0;
        if has_gop {
            self.finish_segment(camera_id, seq)
        } else {
            self.delete_segment(camera_id, seq).map(|_| ())
        }
    }

    fn finish_segment(&self, camera_id: &str, seq: i64) -> Result<()> {
        self.db().execute(
            "UPDATE segments SET open = 0 WHERE camera_id = ?1 AND seq = ?2",
            params![camera_id, seq],
        )?;
        Ok(())
    }

    pub fn record_gap(
        &self,
        camera_id: &str,
        start_us: i64,
        end_us: i64,
        reason: &str,
    ) -> Result<()> {
        self.db().execute(
            "INSERT INTO gaps (camera_id, start_us, end_us, reason) VALUES (?1, ?2, ?3, ?4)",
            params![camera_id, start_us, end_us, reason],
        )?;
        Ok(())
    }

    /// Marks the start of a recorder run for a camera and says how the recording since its
    /// last stored GOP was interrupted: by the previous run's clean stop or by its death (a
    /// run never marked stopped). The recorder stores this as the gap before its first GOP.
    /// `None` when the camera has no recorded video yet.
    pub fn begin_recorder_run(&self, camera_id: &str) -> Result<Option<Interruption>> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let last_end: Option<i64> = tx.query_row(
            "SELECT max(start_us + duration_us) FROM gops WHERE camera_id = ?1",
            [camera_id],
            |r| r.get(0),
        )?;
        let previous: Option<Option<i64>> = tx
            .query_row(
                "SELECT stopped_us FROM recorder_runs WHERE camera_id = ?1",
                [camera_id],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "INSERT INTO recorder_runs (camera_id, started_us, stopped_us) VALUES (?1, ?2, NULL)
             ON CONFLICT(camera_id) DO UPDATE SET started_us = excluded.started_us, stopped_us = NULL",
            params![camera_id, now_us()],
        )?;
        tx.commit()?;
        let Some(last_end) = last_end else {
            return Ok(None);
        };
        Ok(Some(match previous {
            // A clean stop already stored any gap still open at that moment, up to the stop.
            Some(Some(stopped_us)) => Interruption {
                since_us: last_end.max(stopped_us),
                reason: GAP_RECORDING_STOPPED.into(),
            },
            Some(None) => Interruption {
                since_us: last_end,
                reason: GAP_UNCLEAN_SHUTDOWN.into(),
            },
            // Video recorded by a version that did not keep runs: how it stopped is unknown.
            None => Interruption {
                since_us: last_end,
                reason: GAP_RECORDER_RESTARTED.into(),
            },
        }))
    }

    /// Marks the camera's recorder run as stopped cleanly: its last GOP, segment and gaps are
    /// stored.
    pub fn end_recorder_run(&self, camera_id: &str) -> Result<()> {
        self.end_recorder_run_at(camera_id, now_us())
    }

    /// [`Store::end_recorder_run`] with the stop time given, so the recorder stamps the stop
    /// with the same clock it closed the last gap with.
    pub fn end_recorder_run_at(&self, camera_id: &str, stopped_us: i64) -> Result<()> {
        self.db().execute(
            "UPDATE recorder_runs SET stopped_us = ?2 WHERE camera_id = ?1",
            params![camera_id, stopped_us],
        )?;
        Ok(())
    }

    pub fn segments(&self, camera_id: &str) -> Result<Vec<SegmentRow>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open, archived_us
             FROM segments WHERE camera_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([camera_id], segment_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// GOPs overlapping `[from_us, to_us)`, starting with the one holding `from_us` (the
    /// keyframe at or before it), in time order (the recording order of the camera's own GOPs;
    /// imported GOPs, numbered apart, fall in by time: docs/design/handover.md).
    pub fn gops_in_range(&self, camera_id: &str, from_us: i64, to_us: i64) -> Result<Vec<GopRow>> {
        let db = self.db();
        let first: Option<i64> = db
            .query_row(
                "SELECT max(start_us) FROM gops WHERE camera_id = ?1 AND start_us <= ?2",
                params![camera_id, from_us],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let lower = first.unwrap_or(from_us);
        let mut stmt = db.prepare(
            "SELECT camera_id, seq, gop_no, start_us, duration_us, offset, len, frames, sha256
             FROM gops WHERE camera_id = ?1 AND start_us >= ?2 AND start_us < ?3
             ORDER BY start_us, gop_no",
        )?;
        let rows = stmt.query_map(params![camera_id, lower, to_us], gop_from_row)?;
        let mut out: Vec<GopRow> = rows.collect::<Result<_, _>>()?;
        // A GOP that started before `from` but ends before it too holds nothing asked for.
        out.retain(|g| g.start_us + g.duration_us > from_us || g.start_us >= from_us);
        Ok(out)
    }

    pub fn gaps(&self, camera_id: &str, from_us: i64, to_us: i64) -> Result<Vec<GapRow>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT start_us, end_us, reason FROM gaps
             WHERE camera_id = ?1 AND end_us > ?2 AND start_us < ?3 ORDER BY start_us",
        )?;
        let rows = stmt.query_map(params![camera_id, from_us, to_us], |r| {
            Ok(GapRow {
                start_us: r.get(0)?,
                end_us: r.get(1)?,
                reason: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Continuous recorded ranges in `[from_us, to_us)`: consecutive GOPs whose times touch
    /// (within half a second) form one range.
    pub fn ranges(&self, camera_id: &str, from_us: i64, to_us: i64) -> Result<Vec<(i64, i64)>> {
        let gops = self.gops_in_range(camera_id, from_us, to_us)?;
        let mut out: Vec<(i64, i64)> = Vec::new();
        for g in gops {
            let end = g.start_us + g.duration_us;
            match out.last_mut() {
                Some(last) if g.start_us <= last.1 + 500_000 => last.1 = last.1.max(end),
                _ => out.push((g.start_us, end)),
            }
        }
        Ok(out)
    }

    /// Total bytes of a camera's segment files on the local volume, per the index (archived
    /// segments live in the object store).
    pub fn camera_bytes(&self, camera_id: &str) -> Result<i64> {
        Ok(self.db().query_row(
            "SELECT coalesce(sum(bytes), 0) FROM segments WHERE camera_id = ?1 AND archived_us IS NULL",
            [camera_id],
            |r| r.get(0),
        )?)
    }

    /// Reads `len` bytes at `offset` of a segment file.
    pub fn read_segment_range(
        &self,
        camera_id: &str,
        seq: i64,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let path = self.segment_path(camera_id, seq);
        let mut f = File::open(&path).map_err(io_err(&path))?;
        f.seek(SeekFrom::Start(offset)).map_err(io_err(&path))?;
        let mut buf = vec![0; len as usize];
        f.read_exact(&mut buf).map_err(io_err(&path))?;
        Ok(buf)
    }

    /// Deletes a closed segment: the index rows first, then the file, so a crash in between
    /// leaves an orphan file that recovery adopts or removes, never a row without a file.
    pub fn delete_segment(&self, camera_id: &str, seq: i64) -> Result<u64> {
        let path = self.segment_path(camera_id, seq);
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            tx.execute(
                "DELETE FROM gops WHERE camera_id = ?1 AND seq = ?2",
                params![camera_id, seq],
            )?;
            tx.execute(
                "DELETE FROM segments WHERE camera_id = ?1 AND seq = ?2",
                params![camera_id, seq],
            )?;
            tx.commit()?;
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        Ok(len)
    }

    /// Oldest closed segments across all cameras, for freeing space.
    pub fn oldest_closed_segments(&self, limit: usize) -> Result<Vec<SegmentRow>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open, archived_us
             FROM segments WHERE open = 0 AND archived_us IS NULL ORDER BY start_us LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], segment_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Each camera's newest closed segment, which the free-space floor never deletes.
    pub fn newest_closed_segments(&self) -> Result<std::collections::HashMap<String, i64>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT camera_id, max(seq) FROM segments WHERE open = 0 AND archived_us IS NULL GROUP BY camera_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

pub(super) fn segment_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentRow> {
    Ok(SegmentRow {
        camera_id: r.get(0)?,
        seq: r.get(1)?,
        start_us: r.get(2)?,
        end_us: r.get(3)?,
        bytes: r.get(4)?,
        frames: r.get(5)?,
        init_len: r.get(6)?,
        init_sha256: r.get(7)?,
        codec: r.get(8)?,
        open: r.get(9)?,
        archived_us: r.get(10)?,
    })
}

fn gop_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GopRow> {
    Ok(GopRow {
        camera_id: r.get(0)?,
        seq: r.get(1)?,
        gop_no: r.get(2)?,
        start_us: r.get(3)?,
        duration_us: r.get(4)?,
        offset: r.get(5)?,
        len: r.get(6)?,
        frames: r.get(7)?,
        sha256: r.get(8)?,
    })
}
