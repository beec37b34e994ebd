//! The space reserve: a preallocated file on the recording volume, released when the volume is
//! full so that freeing space itself has room to work.
//!
//! Deleting old video is not free on a full volume: the evidence ledger must durably record the
//! prune before the file goes (otherwise verification would later call the deleted segment
//! "missing"), and SQLite needs room for its journal to delete the index rows. When another
//! process fills the volume, both can fail and nothing gets deleted although deletable video
//! exists. Releasing the reserve gives those writes their room; the reserve is taken again once
//! the volume has space to spare. See docs/storage-format.md ("Space reserve").

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::retention::{free_bytes, volume_bytes};

/// File name of the reserve inside the data directory.
pub const RESERVE_FILE: &str = "space-reserve";

/// Smallest and largest reserve: enough for a few SQLite pages, ledger records and directory
/// updates on a tiny volume; never a noticeable share of a large one.
const MIN_RESERVE: u64 = 256 * 1024;
const MAX_RESERVE: u64 = 16 * 1024 * 1024;

/// A preallocated file that can be released under pressure and taken again later.
#[derive(Debug)]
pub struct SpaceReserve {
    path: PathBuf,
    bytes: u64,
    /// Serialises release and re-creation between recorder threads and retention.
    lock: Mutex<()>,
}

impl SpaceReserve {
    /// A reserve for the volume holding `data_dir`: 1/64 of the volume, clamped to
    /// 256 KiB..=16 MiB. Nothing is allocated until [`SpaceReserve::ensure`].
    pub fn for_data_dir(data_dir: &Path) -> Self {
        let bytes = volume_bytes(data_dir)
            .map(|v| (v / 64).clamp(MIN_RESERVE, MAX_RESERVE))
            .unwrap_or(MAX_RESERVE);
        Self::with_size(data_dir, bytes)
    }

    /// A reserve of exactly `bytes` (tests use small sizes).
    pub fn with_size(data_dir: &Path, bytes: u64) -> Self {
        Self {
            path: data_dir.join(RESERVE_FILE),
            bytes,
            lock: Mutex::new(()),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the reserve file holds its full size.
    pub fn is_held(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.bytes)
    }

    /// Takes the reserve if it is not held and the volume can spare it (after allocating, at
    /// least as much again stays free, so re-taking it never causes the next disk-full).
    /// Returns whether the reserve is held afterwards.
    pub fn ensure(&self) -> bool {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_held() {
            return true;
        }
        let have = fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let missing = self.bytes - have.min(self.bytes);
        if free_bytes(&self.path.with_file_name(".")).is_none_or(|f| f < missing * 2) {
            return false;
        }
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot create the space reserve");
                return false;
            }
        };
        // fallocate gives real blocks (a sparse file would free nothing when removed).
        let r = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, self.bytes)
            .map_err(std::io::Error::from)
            .and_then(|_| file.sync_all());
        match r {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot allocate the space reserve");
                drop(file);
                let _ = fs::remove_file(&self.path);
                false
            }
        }
    }

    /// Gives the reserve's space back to the volume. Returns the bytes released (0 when it was
    /// not held).
    pub fn release(&self) -> u64 {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let len = fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            return 0;
        }
        match fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::warn!(
                    bytes = len,
                    "volume full: released the space reserve so old video can be deleted"
                );
                len
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot release the space reserve");
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_allocates_real_blocks_and_release_frees_them() {
        let dir = tempfile::tempdir().unwrap();
        let r = SpaceReserve::with_size(dir.path(), 1 << 20);
        assert!(!r.is_held());
        assert!(r.ensure());
        assert!(r.is_held());
        let meta = fs::metadata(r.path()).unwrap();
        assert_eq!(meta.len(), 1 << 20);
        use std::os::unix::fs::MetadataExt;
        // 512-byte blocks: a preallocated file, not a sparse one.
        assert!(meta.blocks() * 512 >= 1 << 20, "blocks {}", meta.blocks());
        assert!(r.ensure(), "ensure is idempotent");
        assert_eq!(r.release(), 1 << 20);
        assert!(!r.path().exists());
        assert_eq!(r.release(), 0);
    }

    #[test]
    fn size_follows_the_volume_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let r = SpaceReserve::for_data_dir(dir.path());
        assert!((MIN_RESERVE..=MAX_RESERVE).contains(&r.bytes()));
    }
}
