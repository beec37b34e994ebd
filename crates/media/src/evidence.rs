//! Ties the recorder to the evidence ledger: every segment opened, fragment written, segment
//! closed, gap and pruned segment becomes a ledger record, signed as the ledger decides. One
//! ledger writer per camera is shared between that camera's writer thread and retention, which
//! must record a prune before deleting a file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vigil_signing::writer::RecoveredSegment;
use vigil_signing::{FragmentRecord, LedgerOptions, LedgerWriter, SigningIdentity, SigningMode};

use crate::recorder::SegmentObserver;
use crate::store::{GopRow, InterruptedSegment, SegmentWriter};

/// Where signing identities and ledgers live inside the data directory.
pub fn signing_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("signing")
}

pub fn ledger_path(data_dir: &Path, camera_id: &str) -> PathBuf {
    data_dir.join("ledger").join(format!("{camera_id}.ledger"))
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("cannot load the signing key from {dir}: {source}. Recordings must be signed")]
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
    /// What start-up recovery kept of segments a crashed run left open, by camera.
    recovered: Mutex<HashMap<String, Vec<InterruptedSegment>>>,
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
            recovered: Mutex::new(HashMap::new()),
        })
    }

    /// Hands over start-up recovery's findings; used when each camera's ledger is opened.
    pub fn set_recovered(&self, segments: Vec<InterruptedSegment>) {
        let mut map = self.recovered.lock().unwrap_or_else(|p| p.into_inner());
        for s in segments {
            map.entry(s.camera_id.clone()).or_default().push(s);
        }
    }

    /// How long the oldest unsigned record of stream `camera_id`'s ledger has waited for its
    /// signature (zero when all is signed); `None` while this process has not opened that
    /// ledger (nothing recorded into it yet) or signing is off.
    pub fn unsigned_for(&self, camera_id: &str) -> Option<std::time::Duration> {
        if self.signing != Signing::On {
            return None;
        }
        let w = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(camera_id)?
            .clone();
        let w = w.lock().unwrap_or_else(|p| p.into_inner());
        Some(w.unsigned_for().unwrap_or_default())
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
        let (mut writer, report) =
            LedgerWriter::open(&path, camera_id, mode, LedgerOptions::default()).map_err(
                |source| EvidenceError::Ledger {
                    path: path.clone(),
                    source,
                },
            )?;
        if let Some(r) = &report.retired {
            // The operator must look: the old file may have been tampered with, or the disk
            // or the signing key changed under the recorder. Recording goes on in a new file.
            tracing::error!(
                camera = camera_id,
                ledger = %path.display(),
                retired = %r.path.display(),
                generation = r.generation,
                reason = %r.reason,
                detail = %r.detail,
                "ALARM: the evidence ledger could not be continued; moved it aside and started a new ledger linked to it. Verify this camera's recordings"
            );
        }
        if report.interrupted_write_bytes > 0 {
            tracing::warn!(
                camera = camera_id,
                bytes = report.interrupted_write_bytes,
                "the evidence ledger holds records that earlier failed writes left incomplete; skipped, the chain is intact"
            );
        }
        if let Some(seq) = report.interrupted_segment {
            self.vouch_for_recovered(&mut writer, camera_id, seq);
        }
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

    /// The segment the crashed run had open: the restarted server signs what recovery kept of
    /// it (GOPs written but never entered in the ledger included), after the ledger's signed
    /// unclean-shutdown record, so verification can tell the crash from tampering.
    fn vouch_for_recovered(&self, writer: &mut LedgerWriter, camera_id: &str, seq: u64) {
        let found = self
            .recovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(camera_id)
            .and_then(|list| list.iter().find(|s| s.seq as u64 == seq).cloned());
        let Some(seg) = found else {
            tracing::warn!(
                camera = camera_id,
                seq,
                "ledger names an interrupted segment that recovery did not report"
            );
            return;
        };
        let fragments: Vec<FragmentRecord> = seg.gops.iter().map(fragment_record).collect();
        let r = RecoveredSegment {
            segment: seq,
            fragments: &fragments,
            final_len: seg.final_len,
            truncated_bytes: seg.truncated_bytes,
        };
        match writer.recover_segment(&r) {
            Ok(added) => tracing::info!(
                camera = camera_id,
                seq,
                added,
                "ledger: signed the segment recovered after the crash"
            ),
            Err(e) => {
                tracing::error!(camera = camera_id, seq, error = %e, "ledger: cannot record the recovered segment")
            }
        }
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

    /// Records an evidence lock's fact (set, released, expired) in the camera's ledger,
    /// durably and signed.
    pub fn evidence_lock(
        &self,
        camera_id: &str,
        fact: vigil_signing::LockFact,
    ) -> Result<(), EvidenceError> {
        let w = self.writer(camera_id)?;
        let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
        w.evidence_lock(fact)
            .map_err(|source| EvidenceError::Ledger {
                path: ledger_path(&self.data_dir, camera_id),
                source,
            })
    }

    /// Records a handover (another server's signed video imported into segment
    /// `fact.segment`) in the camera's ledger, durably and signed: the last step of an import
    /// (docs/design/handover.md).
    pub fn handover(
        &self,
        camera_id: &str,
        fact: vigil_signing::HandoverFact,
    ) -> Result<(), EvidenceError> {
        let w = self.writer(camera_id)?;
        let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
        w.handover(fact).map_err(|source| EvidenceError::Ledger {
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
        let rec = fragment_record(row);
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

/// The ledger's view of an indexed GOP.
fn fragment_record(row: &GopRow) -> FragmentRecord {
    FragmentRecord {
        segment: row.seq as u64,
        gop: row.gop_no as u32,
        offset: row.offset as u64,
        length: row.len as u64,
        // Rows are written by this process from a SHA-256; a malformed one hashes to zeros and
        // verification then reports the GOP as modified.
        sha256: row.sha256.as_slice().try_into().unwrap_or([0; 32]),
        start_us: row.start_us,
        duration_us: row.duration_us.max(0) as u64,
        frames: row.frames as u32,
    }
}

/// The verifier's view of an indexed GOP, so `vigil verify` can check the index against the
/// signed ledger with the same field mapping the ledger records use.
pub fn indexed_gop(row: &GopRow) -> vigil_signing::IndexedGop {
    let f = fragment_record(row);
    vigil_signing::IndexedGop {
        segment: f.segment,
        gop: f.gop,
        offset: f.offset,
        length: f.length,
        start_us: f.start_us,
        duration_us: f.duration_us,
        sha256: f.sha256,
    }
}
