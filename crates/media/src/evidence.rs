//! Ties the recorder to the evidence ledger: every segment opened, fragment written, segment
//! closed, gap and pruned segment becomes a ledger record, signed as the ledger decides. One
//! ledger writer per camera is shared between that camera's writer thread and retention, which
//! must record a prune before deleting a file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vigil_signing::{FragmentRecord, LedgerOptions, LedgerWriter, SigningIdentity, SigningMode};

use crate::recorder::SegmentObserver;
use crate::store::{GopRow, SegmentWriter};

/// Where signing identities and ledgers live inside the data directory.
pub fn signing_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("signing")
}

pub fn ledger_path(data_dir: &Path, camera_id: &str) -> PathBuf {
    data_dir.join("ledger").join(format!("{camera_id}.ledger"))
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(
        "cannot load the signing key from {dir}: {source}. Recordings must be signed; run `vigil init` for this data directory or restore keys/signing from backup"
    )]
    Key {
        dir: PathBuf,
        source: vigil_signing::KeyError,
    },
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("evidence ledger {path}: {source}")]
    Ledger {
        path: PathBuf,
        source: vigil_signing::LedgerError,
    },
}

/// Signing on or off. Off exists only so the benchmark can measure what signing costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    On,
    /// BENCHMARK ONLY: recordings made this way cannot be verified.
    OffForBenchmark,
}

/// The ledgers of every camera of one data directory.
pub struct Evidence {
    data_dir: PathBuf,
    signing: Signing,
    writers: Mutex<HashMap<String, Arc<Mutex<LedgerWriter>>>>,
}

impl Evidence {
    /// Checks that the signing identity loads, so a broken key stops start-up with a clear
    /// message instead of recording unsigned video.
    pub fn new(data_dir: &Path, signing: Signing) -> Result<Self, EvidenceError> {
        if signing == Signing::On {
            let dir = signing_dir(data_dir);
            SigningIdentity::load(&dir).map_err(|source| EvidenceError::Key { dir, source })?;
        }
        let ledger_dir = data_dir.join("ledger");
        std::fs::create_dir_all(&ledger_dir).map_err(|source| EvidenceError::Io {
            path: ledger_dir.clone(),
            source,
        })?;
        Ok(Self {
            data_dir: data_dir.to_owned(),
            signing,
            writers: Mutex::new(HashMap::new()),
        })
    }

    /// The camera's ledger writer, opened on first use.
    pub fn writer(&self, camera_id: &str) -> Result<Arc<Mutex<LedgerWriter>>, EvidenceError> {
        let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = writers.get(camera_id) {
            return Ok(w.clone());
        }
        let path = ledger_path(&self.data_dir, camera_id);
        let mode = match self.signing {
            Signing::On => {
                let dir = signing_dir(&self.data_dir);
                SigningMode::Enabled(
                    SigningIdentity::load(&dir)
                        .map_err(|source| EvidenceError::Key { dir, source })?,
                )
            }
            Signing::OffForBenchmark => SigningMode::Disabled,
        };
        let (writer, report) = LedgerWriter::open(&path, camera_id, mode, LedgerOptions::default())
            .map_err(|source| EvidenceError::Ledger {
                path: path.clone(),
                source,
            })?;
        if !report.clean {
            tracing::warn!(
                camera = camera_id,
                unsigned = report.unsigned_records,
                torn = report.torn_bytes,
                "the evidence ledger was not closed cleanly; recorded the unclean shutdown"
            );
        }
        let w = Arc::new(Mutex::new(writer));
        writers.insert(camera_id.to_owned(), w.clone());
        Ok(w)
    }

    /// A recorder hook that appends to the camera's ledger.
    pub fn observer(&self, camera_id: &str) -> Result<Box<dyn SegmentObserver>, EvidenceError> {
        Ok(Box::new(LedgerObserver {
            camera_id: camera_id.to_owned(),
            writer: self.writer(camera_id)?,
        }))
    }

    /// Records that retention deletes a segment; called before the file is removed.
    pub fn prune(&self, camera_id: &str, seq: i64) -> Result<(), EvidenceError> {
        let w = self.writer(camera_id)?;
        let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
        w.prune(seq as u64).map_err(|source| EvidenceError::Ledger {
            path: ledger_path(&self.data_dir, camera_id),
            source,
        })
    }

    /// Signs and closes every open ledger (clean shutdown).
    pub fn close_all(&self) {
        let writers: Vec<_> = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (camera, w) in writers {
            match Arc::try_unwrap(w) {
                Ok(m) => {
                    if let Err(e) = m.into_inner().unwrap_or_else(|p| p.into_inner()).close() {
                        tracing::error!(camera, error = %e, "cannot close evidence ledger");
                    }
                }
                Err(w) => {
                    // Still shared by a recorder that did not stop: sign what it has.
                    let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
                    if let Err(e) = w.sign_now() {
                        tracing::error!(camera, error = %e, "cannot sign evidence ledger");
                    }
                }
            }
        }
    }
}

/// Appends a camera's storage events to its ledger. A ledger error is logged and surfaces as
/// unsigned data at verification; it never stops recording.
struct LedgerObserver {
    camera_id: String,
    writer: Arc<Mutex<LedgerWriter>>,
}

impl LedgerObserver {
    fn with(
        &self,
        what: &str,
        f: impl FnOnce(&mut LedgerWriter) -> Result<(), vigil_signing::LedgerError>,
    ) {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f(&mut w) {
            tracing::error!(camera = %self.camera_id, error = %e, "evidence ledger: cannot record {what}");
        }
    }
}

impl SegmentObserver for LedgerObserver {
    fn segment_opened(&mut self, seg: &SegmentWriter, init: &[u8]) {
        self.with("segment open", |w| {
            w.segment_open(seg.seq as u64, init, seg.start_us)
        });
    }

    fn fragment_written(&mut self, row: &GopRow) {
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&row.sha256);
        let rec = FragmentRecord {
            segment: row.seq as u64,
            gop: row.gop_no as u32,
            offset: row.offset as u64,
            length: row.len as u64,
            sha256: sha,
            start_us: row.start_us,
            duration_us: row.duration_us.max(0) as u64,
            frames: row.frames as u32,
        };
        self.with("fragment", |w| w.fragment(&rec));
    }

    fn segment_closed(&mut self, seq: i64, len: u64) {
        self.with("segment close", |w| w.segment_close(seq as u64, len));
    }

    fn gap(&mut self, start_us: i64, end_us: i64, reason: &str) {
        self.with("gap", |w| w.gap(start_us, end_us, reason));
    }

    fn tick(&mut self) {
        self.with("signature", |w| w.tick().map(|_| ()));
    }
}
