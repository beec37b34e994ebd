//! Start-up recovery: reconciles segment files and index after any shutdown, clean or not
//! (docs/storage-format.md, "Recovery").

use std::fs::{self, OpenOptions};

use rusqlite::params;
use sha2::{Digest, Sha256};

use super::{Camera, GopRow, Result, Store, io_err, ticks_to_us};
use crate::fmp4;

/// A segment a previous run left open (or never indexed): what recovery kept of it, so the
/// evidence ledger can vouch for GOPs the crashed run wrote but never entered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterruptedSegment {
    pub camera_id: String,
    pub seq: i64,
    /// File length after recovery; 0 when the file was removed (no complete GOP).
    pub final_len: u64,
    /// Bytes of a torn GOP cut off at the crash point.
    pub truncated_bytes: u64,
    /// The complete GOPs kept, in file order.
    pub gops: Vec<GopRow>,
}

/// What start-up recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub interrupted: Vec<InterruptedSegment>,
    pub segments_checked: usize,
    pub gops_reindexed: usize,
    pub bytes_truncated: u64,
    pub orphans_removed: usize,
    pub orphans_adopted: usize,
    pub missing_files: usize,
}

impl Store {
    /// Reconciles files and index after any shutdown, clean or not: indexes complete GOPs
    /// found on disk, truncates a torn last fragment, adopts or removes files the index does
    /// not know, drops rows whose file is gone, and closes segments left open.
    pub fn recover(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        for cam in self.all_streams()? {
            self.recover_camera(&cam, &mut report)?;
        }
        Ok(report)
    }

    fn recover_camera(&self, cam: &Camera, report: &mut RecoveryReport) -> Result<()> {
        let dir = self.camera_dir(&cam.id);
        let mut on_disk: Vec<i64> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let stem = name.strip_suffix(".mp4")?;
                    i64::from_str_radix(stem, 16).ok()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        on_disk.sort_unstable();
        let indexed = self.segments(&cam.id)?;
        for seg in &indexed {
            // An archived segment's file is in the object store; its rows are how playback,
            // export and verify find it there.
            if seg.archived_us.is_none() && on_disk.binary_search(&seg.seq).is_err() {
                tracing::warn!(camera = %cam.name, seq = seg.seq, "segment file missing; dropping its index rows");
                self.delete_segment(&cam.id, seg.seq)?;
                report.missing_files += 1;
            }
        }
        let mut max_gop = 0i64;
        for &seq in &on_disk {
            let row = indexed.iter().find(|s| s.seq == seq);
            if let Some(r) = row
                && !r.open
            {
                continue;
            }
            report.segments_checked += 1;
            max_gop = max_gop.max(self.recover_segment(cam, seq, row.is_some(), report)?);
        }
        // Sequence counters may have been rolled back with the index; never reuse a number.
        let max_seq = on_disk.last().copied().unwrap_or(0);
        let db = self.db();
        let max_indexed_gop: i64 = db.query_row(
            "SELECT coalesce(max(gop_no), 0) FROM gops WHERE camera_id = ?1",
            [&cam.id],
            |r| r.get(0),
        )?;
        db.execute(
            "UPDATE cameras SET next_seq = max(next_seq, ?2), next_gop = max(next_gop, ?3) WHERE id = ?1",
            params![cam.id, max_seq + 1, max_gop.max(max_indexed_gop) + 1],
        )?;
        Ok(())
    }

    /// Returns the highest GOP number found in the file.
    fn recover_segment(
        &self,
        cam: &Camera,
        seq: i64,
        indexed: bool,
        report: &mut RecoveryReport,
    ) -> Result<i64> {
        let path = self.segment_path(&cam.id, seq);
        let data = fs::read(&path).map_err(io_err(&path))?;
        let layout = match fmp4::scan_segment(&data) {
            Ok(l) => l,
            Err(e) => {
                // Nothing playable survives in a file whose init is unreadable.
                tracing::warn!(camera = %cam.name, seq, error = %e, "removing unreadable segment file");
                self.delete_segment(&cam.id, seq)?;
                report.orphans_removed += 1;
                report.interrupted.push(InterruptedSegment {
                    camera_id: cam.id.clone(),
                    seq,
                    truncated_bytes: data.len() as u64,
                    ..Default::default()
                });
                return Ok(0);
            }
        };
        if layout.fragments.is_empty() {
            tracing::info!(camera = %cam.name, seq, "removing segment without a complete GOP");
            self.delete_segment(&cam.id, seq)?;
            report.orphans_removed += 1;
            report.interrupted.push(InterruptedSegment {
                camera_id: cam.id.clone(),
                seq,
                truncated_bytes: layout.torn_tail,
                ..Default::default()
            });
            return Ok(0);
        }
        if layout.torn_tail > 0 {
            let keep = data.len() as u64 - layout.torn_tail;
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.set_len(keep).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
            report.bytes_truncated += layout.torn_tail;
            tracing::warn!(camera = %cam.name, seq, bytes = layout.torn_tail, "truncated torn fragment");
        }
        let init = &data[..layout.init_len as usize];
        let init_hash = Sha256::digest(init).to_vec();
        let mut rows = Vec::new();
        for &(offset, len) in &layout.fragments {
            let bytes = &data[offset as usize..(offset + len) as usize];
            let info = fmp4::parse_fragment(bytes)?;
            rows.push(GopRow {
                camera_id: cam.id.clone(),
                seq,
                gop_no: i64::from(info.sequence_number),
                start_us: cam.time_origin_us + ticks_to_us(info.base_decode_time),
                duration_us: ticks_to_us(info.duration),
                offset: offset as i64,
                len: len as i64,
                frames: i64::from(info.samples),
                sha256: Sha256::digest(bytes).to_vec(),
            });
        }
        let start = rows.first().map(|g| g.start_us).unwrap_or(0);
        let end = rows
            .last()
            .map(|g| g.start_us + g.duration_us)
            .unwrap_or(start);
        let frames: i64 = rows.iter().map(|g| g.frames).sum();
        let bytes = (data.len() as u64 - layout.torn_tail) as i64;
        let codec = codec_of_init(init);
        let mut db = self.db();
        let tx = db.transaction()?;
        let before: i64 = tx.query_row(
            "SELECT count(*) FROM gops WHERE camera_id = ?1 AND seq = ?2",
            params![cam.id, seq],
            |r| r.get(0),
        )?;
        tx.execute(
            "DELETE FROM gops WHERE camera_id = ?1 AND seq = ?2",
            params![cam.id, seq],
        )?;
        for g in &rows {
            tx.execute(
                "INSERT OR REPLACE INTO gops (camera_id, seq, gop_no, start_us, duration_us, offset, len, frames, sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![g.camera_id, g.seq, g.gop_no, g.start_us, g.duration_us, g.offset, g.len, g.frames, g.sha256],
            )?;
        }
        tx.execute(
            "INSERT INTO segments (camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)
             ON CONFLICT(camera_id, seq) DO UPDATE SET start_us=excluded.start_us, end_us=excluded.end_us,
               bytes=excluded.bytes, frames=excluded.frames, open=0",
            params![cam.id, seq, start, end, bytes, frames, layout.init_len as i64, init_hash, codec],
        )?;
        tx.commit()?;
        if !indexed {
            report.orphans_adopted += 1;
        }
        report.gops_reindexed += rows.len().saturating_sub(before as usize);
        let max_gop = rows.iter().map(|g| g.gop_no).max().unwrap_or(0);
        report.interrupted.push(InterruptedSegment {
            camera_id: cam.id.clone(),
            seq,
            final_len: bytes as u64,
            truncated_bytes: layout.torn_tail,
            gops: rows,
        });
        Ok(max_gop)
    }
}

/// The sample entry type in an init segment ("avc1", "hvc1"...), for the index.
pub(super) fn codec_of_init(init: &[u8]) -> String {
    for kind in [b"avc1", b"avc3", b"hvc1", b"hev1"] {
        if init.windows(4).any(|w| w == kind) {
            return String::from_utf8_lossy(kind).into_owned();
        }
    }
    "unknown".into()
}
