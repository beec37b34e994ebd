//! Imported segments: video of a camera that another recording server recorded and signed
//! (during a failover), copied into this camera's store by a handover (docs/design/handover.md).
//! The file is the source server's signed init followed by its signed fragments byte for byte;
//! its index rows are written once the file is synced, like an own segment's. Imported GOPs are
//! numbered below zero ([`imported_gop_no`]) so they never meet the numbers the camera's own
//! recorder allocates, even while it records.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use rusqlite::params;
use sha2::{Digest, Sha256};

use super::writer::{WriteStep, sync_dir};
use super::{GopRow, Result, Store, io_err};

pub use vigil_signing::handover::imported_gop_no;

/// One GOP to import, as the source server signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedGop {
    pub start_us: i64,
    pub duration_us: i64,
    pub len: u64,
    pub frames: i64,
    pub sha256: [u8; 32],
}

impl Store {
    /// The camera's own (or earlier imported) video overlapping `[from_us, to_us)`, as GOP
    /// rows in time order.
    pub fn video_between(&self, camera_id: &str, from_us: i64, to_us: i64) -> Result<Vec<GopRow>> {
        let mut rows = self.gops_in_range(camera_id, from_us, to_us)?;
        rows.retain(|g| g.start_us < to_us && g.start_us + g.duration_us.max(1) > from_us);
        Ok(rows)
    }

    /// Takes the camera's next segment number for an import.
    pub fn reserve_segment(&self, camera_id: &str) -> Result<i64> {
        self.next_seq(camera_id)
    }

    /// Writes imported segment `seq`: `init`, then each GOP's bytes as `fill(k, buf)` provides
    /// them, each checked against its signed length and SHA-256, into a hidden file
    /// ([`importing_path`]) that is synced and only then renamed to the segment's name (never
    /// over an existing file), the directory synced; then segment and GOPs are indexed in one
    /// transaction. A crash while writing leaves only the hidden file, which no reader and not
    /// recovery looks at; on an error everything written is removed and nothing is indexed.
    pub fn write_imported_segment(
        &self,
        camera_id: &str,
        seq: i64,
        init: &[u8],
        codec: &str,
        gops: &[ImportedGop],
        fill: &mut dyn FnMut(usize, &mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<Vec<GopRow>> {
        let dir = self.camera_dir(camera_id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = self.segment_path(camera_id, seq);
        if fs::symlink_metadata(&path).is_ok() {
            return Err(io_err(&path)(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "an imported segment never replaces a file",
            )));
        }
        let tmp = importing_path(self, camera_id, seq);
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o640)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        let mut rows = Vec::with_capacity(gops.len());
        let mut buf = Vec::new();
        let mut offset = init.len() as u64;
        let written = (|| -> std::io::Result<()> {
            file.write_all(init)?;
            for (k, g) in gops.iter().enumerate() {
                buf.clear();
                self.write_step(WriteStep::ImportWrite, &tmp)?;
                fill(k, &mut buf)?;
                if buf.len() as u64 != g.len || <[u8; 32]>::from(Sha256::digest(&buf)) != g.sha256 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("GOP {k} of the import does not match its signed length and hash"),
                    ));
                }
                file.write_all(&buf)?;
                rows.push(GopRow {
                    camera_id: camera_id.to_owned(),
                    seq,
                    gop_no: imported_gop_no(seq as u64, k),
                    start_us: g.start_us,
                    duration_us: g.duration_us,
                    offset: offset as i64,
                    len: g.len as i64,
                    frames: g.frames,
                    sha256: g.sha256.to_vec(),
                });
                offset += g.len;
            }
            file.sync_all()?;
            self.write_step(WriteStep::ImportName, &tmp)
        })();
        drop(file);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&tmp)(e));
        }
        // link + unlink rather than rename: link fails if the name exists, so a file that
        // appeared meanwhile is never replaced.
        if let Err(e) = fs::hard_link(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&path)(e));
        }
        fs::remove_file(&tmp).map_err(io_err(&tmp))?;
        sync_dir(&dir)?;
        let indexed = (|| -> Result<()> {
            self.write_step(WriteStep::ImportIndex, &path)
                .map_err(io_err(&path))?;
            let start = rows.first().map_or(0, |g| g.start_us);
            let end = rows
                .iter()
                .map(|g| g.start_us + g.duration_us)
                .max()
                .unwrap_or(start);
            let frames: i64 = rows.iter().map(|g| g.frames).sum();
            let init_hash = Sha256::digest(init).to_vec();
            let mut db = self.db();
            let tx = db.transaction()?;
            tx.execute(
                "INSERT INTO segments (camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)",
                params![camera_id, seq, start, end, offset as i64, frames, init.len() as i64, init_hash, codec],
            )?;
            for g in &rows {
                tx.execute(
                    "INSERT INTO gops (camera_id, seq, gop_no, start_us, duration_us, offset, len, frames, sha256)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![g.camera_id, g.seq, g.gop_no, g.start_us, g.duration_us, g.offset, g.len, g.frames, g.sha256],
                )?;
            }
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = indexed {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(rows)
    }

    /// Removes an imported segment that never got its handover fact: index rows, then the
    /// file, and a hidden file an interrupted write left (an incomplete import leaves nothing
    /// behind).
    pub fn forget_imported_segment(&self, camera_id: &str, seq: i64) -> Result<u64> {
        let tmp = importing_path(self, camera_id, seq);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&tmp)(e)),
        }
        self.delete_segment(camera_id, seq)
    }
}

/// Where imported segment `seq` is written before it gets its name: hidden (a leading dot) and
/// without the `.mp4` suffix, so recovery, retention and readers never take it for a segment.
pub fn importing_path(store: &Store, camera_id: &str, seq: i64) -> std::path::PathBuf {
    store
        .camera_dir(camera_id)
        .join(format!(".{seq:016x}.mp4.importing"))
}

/// The codec named by an init segment's sample entry, for the index.
pub fn codec_of(init: &[u8]) -> String {
    super::recovery::codec_of_init(init)
}
