//! Writing segments: a new segment file with its init, then one GOP fragment at a time, each
//! synced before it is indexed (docs/storage-format.md, "Durability order"). The steps are
//! named by [`WriteStep`] so tests can fail or interrupt each one.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::params;
use sha2::{Digest, Sha256};

use super::{GopRow, Result, Store, io_err};

/// The steps of writing a segment in durability order, each named by what comes next. With
/// the `testing` feature a test can fail any of them (an `Err` as the real operation would
/// return it, e.g. ENOSPC) or die there (a panic leaves the files as a killed process would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// A new segment file exists; its init is to be written and synced.
    SegmentInit,
    /// The init and the directory entry are synced; the segment's index row is next.
    SegmentIndex,
    /// A GOP's bytes are to be appended.
    GopWrite,
    /// The GOP's bytes are written; the `fdatasync` is next.
    GopSync,
    /// The GOP's bytes are synced; its index row is next.
    GopIndex,
    /// An imported segment (store/import.rs): a GOP's bytes are to be appended to the hidden
    /// file it is written into.
    ImportWrite,
    /// The hidden file is complete and synced; giving it the segment's name is next.
    ImportName,
    /// The file has its name and the directory is synced; the index rows are next.
    ImportIndex,
}

/// Called at every [`WriteStep`] with the segment file's path.
#[cfg(feature = "testing")]
pub type WriteHook = std::sync::Arc<dyn Fn(WriteStep, &Path) -> std::io::Result<()> + Send + Sync>;

impl Store {
    /// Installs (or with `None` removes) the hook run at every [`WriteStep`].
    #[cfg(feature = "testing")]
    pub fn set_write_hook(&self, hook: Option<WriteHook>) {
        *self.write_hook.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Passes a [`WriteStep`]; without the `testing` feature this is always `Ok`.
    pub(super) fn write_step(&self, step: WriteStep, path: &Path) -> std::io::Result<()> {
        #[cfg(feature = "testing")]
        {
            let hook = self
                .write_hook
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(hook) = hook {
                return hook(step, path);
            }
        }
        let _ = (step, path);
        Ok(())
    }

    /// Opens a new segment file: writes and syncs the init segment and the directory entry,
    /// then indexes the segment.
    pub fn begin_segment(
        &self,
        camera_id: &str,
        init: &[u8],
        codec: &str,
        start_us: i64,
    ) -> Result<SegmentWriter> {
        let seq = self.next_seq(camera_id)?;
        let dir = self.camera_dir(camera_id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = self.segment_path(camera_id, seq);
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .read(true)
            .mode(0o640)
            .open(&path)
            .map_err(io_err(&path))?;
        if let Err(e) = self
            .write_step(WriteStep::SegmentInit, &path)
            .and_then(|_| file.write_all(init))
            .and_then(|_| file.sync_data())
        {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(io_err(&path)(e));
        }
        sync_dir(&dir)?;
        self.write_step(WriteStep::SegmentIndex, &path)
            .map_err(io_err(&path))?;
        let hash = Sha256::digest(init).to_vec();
        self.db().execute(
            "INSERT INTO segments (camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open)
             VALUES (?1, ?2, ?3, ?3, ?4, 0, ?4, ?5, ?6, 1)",
            params![camera_id, seq, start_us, init.len() as i64, hash, codec],
        )?;
        Ok(SegmentWriter {
            camera_id: camera_id.to_owned(),
            seq,
            path,
            file,
            len: init.len() as u64,
            init_sha256: hash,
            start_us,
            end_us: start_us,
        })
    }
}

/// An open segment file being appended to by one recorder.
pub struct SegmentWriter {
    pub camera_id: String,
    pub seq: i64,
    path: PathBuf,
    file: File,
    len: u64,
    pub init_sha256: Vec<u8>,
    pub start_us: i64,
    pub end_us: i64,
}

impl SegmentWriter {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one fragment (given as consecutive pieces: header, then frame data), syncs it,
    /// then indexes it. A failed write is rolled back to the previous length so the file never
    /// holds a partial fragment that the index skips.
    pub fn append(
        &mut self,
        store: &Store,
        pieces: &[&[u8]],
        gop_no: i64,
        start_us: i64,
        duration_us: i64,
        frames: i64,
    ) -> Result<GopRow> {
        let offset = self.len;
        let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        let mut hasher = Sha256::new();
        for p in pieces {
            hasher.update(p);
        }
        let write = self
            .file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| store.write_step(WriteStep::GopWrite, &self.path))
            .and_then(|_| write_all_vectored(&mut self.file, pieces))
            .and_then(|_| store.write_step(WriteStep::GopSync, &self.path))
            .and_then(|_| self.file.sync_data());
        if let Err(e) = write {
            let _ = self.file.set_len(offset);
            return Err(io_err(&self.path)(e));
        }
        self.len += total;
        self.end_us = self.end_us.max(start_us + duration_us);
        let row = GopRow {
            camera_id: self.camera_id.clone(),
            seq: self.seq,
            gop_no,
            start_us,
            duration_us,
            offset: offset as i64,
            len: total as i64,
            frames,
            sha256: hasher.finalize().to_vec(),
        };
        let indexed = store
            .write_step(WriteStep::GopIndex, &self.path)
            .map_err(io_err(&self.path))
            .and_then(|_| store.insert_gop(&row, self.end_us, self.len as i64));
        if let Err(e) = indexed {
            // A GOP the index does not hold must not stay in the file either: the evidence
            // ledger only hears of indexed GOPs, and unlisted bytes inside a segment would later
            // look inserted.
            self.len = offset;
            let _ = self.file.set_len(offset);
            return Err(e);
        }
        Ok(row)
    }

    /// Marks the segment complete; an empty segment (no GOP) is deleted instead. On failure
    /// (a full volume) [`Store::close_segment`] may be retried with the same numbers.
    pub fn close(self, store: &Store) -> Result<()> {
        store.close_segment(&self.camera_id, self.seq)
    }
}

/// Writes every piece with as few system calls as the kernel allows (`writev`).
fn write_all_vectored(file: &mut File, pieces: &[&[u8]]) -> std::io::Result<()> {
    let mut bufs: Vec<std::io::IoSlice<'_>> =
        pieces.iter().map(|p| std::io::IoSlice::new(p)).collect();
    let mut bufs = bufs.as_mut_slice();
    // Skip empty slices so a zero-length write is never mistaken for a stalled device.
    std::io::IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
