//! The append-only ledger writer the recorder drives, one per camera stream.
//!
//! Every record is written to the file as soon as it is made (one `write` call, so a process
//! crash loses nothing the kernel has), and the file is fsynced at every signature. Opening an
//! existing ledger replays and checks its chain, cuts a torn tail, and records an unclean
//! shutdown when the previous run did not close it. A ledger that cannot be continued
//! (damaged, another key or camera, unreadable) is moved aside as a retired generation and a
//! new ledger is started whose signed predecessor record names it (see [`crate::generation`]).

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::generation::{hash_file, retired_file_name, retired_ledgers, staging_path, sync_dir};
use crate::keys::{KeyError, SigningIdentity, cert_key_id};
use crate::record::{
    Body, FragmentRecord, Hash, LEDGER_MAGIC, NOTHING_SIGNED, Predecessor, ReadError, RecordReader,
    RetireReason, Stop, encode_record, signature_message,
};

/// Most record bytes a writer keeps in memory while its volume refuses writes: about two days
/// of one camera's records (a fragment record is ~150 bytes, one GOP every 1–2 s).
const MAX_BACKLOG_BYTES: usize = 16 << 20;

/// Ledger format version written into the genesis record.
pub const FORMAT_VERSION: u16 = 1;

/// Whether the recorder signs at all.
// Built once per camera stream and moved into the writer, so the size difference is harmless.
#[allow(clippy::large_enum_variant)]
pub enum SigningMode {
    /// Normal operation: hash chain plus Ed25519 signatures.
    Enabled(SigningIdentity),
    /// BENCHMARK ONLY: no ledger file is written and every call is a no-op, so the recorder's CPU
    /// can be measured with and without signing. Never use it in production: recordings made this
    /// way cannot be verified.
    Disabled,
}

/// Tuning of a ledger writer.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// Longest time a fragment record stays unsigned while fragments keep arriving.
    pub sign_interval: Duration,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        Self {
            sign_interval: Duration::from_secs(10),
        }
    }
}

/// What [`LedgerWriter::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// A new ledger file was created.
    pub created: bool,
    /// The previous run closed the ledger properly (always true for a new ledger).
    pub clean: bool,
    /// Bytes of a torn last record that were cut off.
    pub torn_bytes: u64,
    /// Records the previous run wrote after its last signature. The unclean-shutdown record and
    /// the signature that follows it vouch for them.
    pub unsigned_records: u64,
    /// Number of records in the ledger after opening.
    pub records: u64,
    /// After an unclean shutdown: the segment that was open at the crash. Pass what start-up
    /// recovery found in it to [`LedgerWriter::recover_segment`].
    pub interrupted_segment: Option<u64>,
    /// The ledger could not be continued: it was moved aside and this run started a new one.
    /// An alarm for the operator; the recording itself goes on.
    pub retired: Option<RetiredLedger>,
    /// Bytes of records that earlier failed writes left incomplete between intact records
    /// (skipped; the chain is unbroken across them).
    pub interrupted_write_bytes: u64,
}

/// A ledger file [`LedgerWriter::open`] could not continue and moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredLedger {
    /// Where the file is now (`<ledger>.<generation>`, next to the new ledger).
    pub path: PathBuf,
    pub generation: u64,
    pub reason: RetireReason,
    /// What exactly was found, for people.
    pub detail: String,
    /// Length and SHA-256 of the file as retired (SHA-256 all zeros if it could not be read).
    pub len: u64,
    pub sha256: Hash,
    /// Its last record that replayed cleanly, which the new ledger vouches for.
    pub last_seq: Option<u64>,
}

/// What start-up recovery found in the segment that was open when the previous run crashed.
#[derive(Debug, Clone, Copy)]
pub struct RecoveredSegment<'a> {
    pub segment: u64,
    /// Every complete GOP recovery kept in the file, in file order. Those the crashed run had
    /// already entered in the ledger are skipped (verification checks them against the file).
    pub fragments: &'a [FragmentRecord],
    /// The file's length after recovery; 0 when recovery removed a file without a complete GOP.
    pub final_len: u64,
    /// Bytes of a torn GOP that recovery cut off at the crash point.
    pub truncated_bytes: u64,
}

/// Records a writer holds in memory while its volume refuses writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub records: u64,
    pub bytes: u64,
    pub since: Instant,
    /// The last write error.
    pub error: String,
}

/// Errors of the ledger writer.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ledger {path}: {source}")]
    Read { path: PathBuf, source: ReadError },
    #[error("ledger {path} is damaged at byte {offset}: {detail}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    #[error("ledger {path} belongs to camera \"{found}\", not \"{expected}\"")]
    CameraMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "ledger {path} is signed with key {ledger_key}, but the server's signing key is {server_key}: rotate keys with LedgerWriter::rotate_key while the old key is available, or start a new ledger"
    )]
    KeyMismatch {
        path: PathBuf,
        ledger_key: String,
        server_key: String,
    },
    #[error(
        "ledger {path}: {bytes} bytes of records are waiting in memory because the volume has been failing for {since_secs} s; no more can be kept"
    )]
    BacklogFull {
        path: PathBuf,
        bytes: u64,
        since_secs: u64,
    },
    #[error(
        "ledger {path} cannot be continued ({reason}) and cannot be moved aside to start a new one: {source}"
    )]
    Retire {
        path: PathBuf,
        reason: RetireReason,
        source: std::io::Error,
    },
    #[error("invalid ledger call: {0}")]
    InvalidCall(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// SHA-256 of a byte slice (e.g. a fragment's moof+mdat bytes).
pub fn sha256(bytes: &[u8]) -> Hash {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Appends records to one camera's ledger. Synchronous; call it from the camera's own task
/// (spawn_blocking or a dedicated thread).
pub struct LedgerWriter {
    inner: Option<Inner>,
}

struct Inner {
    file: File,
    path: PathBuf,
    /// Bytes of the file that hold complete records; a failed write is cut back to it.
    durable_len: u64,
    /// Encoded records accepted but not yet written (the volume was full or failing). The
    /// chain state above already includes them, so signatures stay correct; they reach the
    /// file, in order, as soon as a write succeeds again.
    pending: Vec<u8>,
    /// Records in `pending`.
    pending_records: u64,
    /// A failed write may have left bytes past `durable_len` that could not be cut yet.
    needs_truncate: bool,
    /// Written data whose `fdatasync` failed; retried before anything counts as durable.
    needs_sync: bool,
    /// Since when writes fail, and the last error, while they do.
    outage: Option<(Instant, String)>,
    camera_id: String,
    signer: SigningIdentity,
    next_seq: u64,
    head: Hash,
    last_signed_seq: Option<u64>,
    /// Records written since the last signature.
    dirty: bool,
    /// When the first of them was written (the signing lag's start).
    unsigned_since: Option<Instant>,
    last_sign: Instant,
    interval: Duration,
    /// Open segment and the offset its next fragment must start at.
    open_segment: Option<(u64, u64)>,
    /// The segment the crashed previous run left open, where its ledger records end, and
    /// whether it has fragment records; cleared once recovered or when a new segment opens.
    crashed_segment: Option<(u64, u64, bool)>,
    last_segment: Option<u64>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for LedgerWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("LedgerWriter(disabled)"),
            Some(i) => write!(
                f,
                "LedgerWriter({}, next seq {})",
                i.path.display(),
                i.next_seq
            ),
        }
    }
}

/// State replayed from an existing ledger.
struct Replay {
    camera_id: Option<String>,
    next_seq: u64,
    head: Hash,
    last_signed_seq: Option<u64>,
    active_key: Option<Hash>,
    pending_key: Option<Hash>,
    last_two: [Option<u8>; 2],
    last_segment: Option<u64>,
    /// Segment open at the end of the ledger, the offset its next fragment would start at, and
    /// whether it has fragment records.
    open_segment: Option<(u64, u64, bool)>,
    good_len: u64,
    torn_bytes: u64,
    /// Where and how the chain stops being intact: the ledger cannot be continued.
    damage: Option<(u64, String)>,
    interrupted_write_bytes: u64,
}

impl Replay {
    /// The last record that replayed cleanly.
    fn last(&self) -> Option<(u64, Hash)> {
        self.next_seq.checked_sub(1).map(|s| (s, self.head))
    }
}

fn replay(path: &Path, file: &File) -> Result<Replay, LedgerError> {
    let mut reader =
        RecordReader::new(BufReader::with_capacity(1 << 20, file)).map_err(|source| {
            LedgerError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let mut st = Replay {
        camera_id: None,
        next_seq: 0,
        head: [0; 32],
        last_signed_seq: None,
        active_key: None,
        pending_key: None,
        last_two: [None, None],
        last_segment: None,
        open_segment: None,
        good_len: 8,
        torn_bytes: 0,
        damage: None,
        interrupted_write_bytes: 0,
    };
    let io = |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    };
    while let Some(rec) = reader.next_record().map_err(io)? {
        let damaged = |detail: String| Some((rec.offset, detail));
        if rec.seq != st.next_seq || rec.prev != st.head {
            st.damage = damaged(format!(
                "record {} does not continue the chain (expected seq {})",
                rec.seq, st.next_seq
            ));
            break;
        }
        match &rec.body {
            Body::Genesis {
                camera_id,
                cert_der,
                ..
            } => {
                if rec.seq != 0 {
                    st.damage = damaged("genesis record in the middle of the ledger".into());
                    break;
                }
                match cert_key_id(cert_der) {
                    Ok(k) => st.active_key = Some(k),
                    Err(e) => {
                        st.damage = damaged(format!("genesis certificate: {e}"));
                        break;
                    }
                }
                st.camera_id = Some(camera_id.clone());
            }
            Body::SegmentOpen {
                segment, init_len, ..
            } => {
                st.last_segment = Some(*segment);
                st.open_segment = Some((*segment, *init_len, false));
            }
            Body::Fragment(f) => {
                if st.open_segment.is_some_and(|(s, _, _)| s == f.segment) {
                    st.open_segment = Some((f.segment, f.offset + f.length, true));
                }
            }
            Body::SegmentClose { .. }
            | Body::SegmentRecovered { .. }
            | Body::UncleanShutdown { .. }
            | Body::Shutdown { .. } => st.open_segment = None,
            Body::KeyRotation { new_key_id, .. } => st.pending_key = Some(*new_key_id),
            Body::Signature { .. } => {
                st.last_signed_seq = Some(rec.seq);
                if let Some(k) = st.pending_key.take() {
                    st.active_key = Some(k);
                }
            }
            Body::Gap { .. }
            | Body::Prune { .. }
            | Body::Predecessor(_)
            | Body::EvidenceLock(_)
            | Body::Handover(_) => {}
        }
        if rec.seq == 0 && !matches!(rec.body, Body::Genesis { .. }) {
            st.damage = damaged("the first record is not a genesis record".into());
            break;
        }
        st.last_two = [st.last_two[1], Some(rec.body.type_code())];
        st.next_seq = rec.seq + 1;
        st.head = rec.hash;
    }
    st.good_len = reader.good_len();
    st.interrupted_write_bytes = reader.interrupted_writes().iter().map(|w| w.bytes).sum();
    if st.damage.is_none() {
        match reader.stop() {
            None => {}
            Some(Stop::Torn { bytes, .. }) => st.torn_bytes = *bytes,
            Some(Stop::Corrupt { offset, error }) => st.damage = Some((*offset, error.to_string())),
        }
    }
    // A rotation that the old key never signed did not take effect.
    st.pending_key = None;
    Ok(st)
}

impl LedgerWriter {
    /// Opens (or creates) the ledger of `camera_id` at `path`.
    ///
    /// A new ledger starts with a signed genesis record. An existing one is replayed and checked;
    /// a torn last record is cut off and, if the previous run did not close the ledger, a signed
    /// unclean-shutdown record is appended. A ledger that cannot be continued (damaged before
    /// its end, signed with another key, another camera's, unreadable) is renamed to its next
    /// retired generation and a new ledger is started after a signed predecessor record naming
    /// it; [`OpenReport::retired`] says so. With [`SigningMode::Disabled`] nothing is touched.
    pub fn open(
        path: &Path,
        camera_id: &str,
        mode: SigningMode,
        options: LedgerOptions,
    ) -> Result<(Self, OpenReport), LedgerError> {
        let signer = match mode {
            SigningMode::Disabled => {
                let report = OpenReport {
                    created: false,
                    clean: true,
                    torn_bytes: 0,
                    unsigned_records: 0,
                    records: 0,
                    interrupted_segment: None,
                    retired: None,
                    interrupted_write_bytes: 0,
                };
                return Ok((Self { inner: None }, report));
            }
            SigningMode::Enabled(s) => s,
        };
        if camera_id.is_empty() || camera_id.len() > 255 {
            return Err(LedgerError::InvalidCall(format!(
                "camera id must be 1..=255 bytes, got {} bytes",
                camera_id.len()
            )));
        }
        Self::open_enabled(path, camera_id, signer, options, true)
    }

    /// [`LedgerWriter::open`] with signing on. `may_retire` is false for the ledger a
    /// retirement just wrote: if even that cannot be continued, the error is returned.
    fn open_enabled(
        path: &Path,
        camera_id: &str,
        signer: SigningIdentity,
        options: LedgerOptions,
        may_retire: bool,
    ) -> Result<(Self, OpenReport), LedgerError> {
        let io = |source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        finish_interrupted_retirement(path).map_err(io)?;
        let opened = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o644)
            .open(path);
        let mut file = match opened {
            Ok(f) => f,
            // A file that exists but cannot be opened (permissions, I/O errors) is moved aside
            // like any other ledger that cannot be continued.
            Err(e) if may_retire && fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) => {
                let unusable = Unusable {
                    reason: RetireReason::Unreadable,
                    detail: format!("the file cannot be opened: {e}"),
                    last: None,
                };
                return Self::retire_and_open(path, camera_id, signer, options, unusable);
            }
            Err(e) => return Err(io(e)),
        };
        let len = file.metadata().map_err(io)?.len();
        let mut inner = Inner {
            file: file.try_clone().map_err(io)?,
            path: path.to_path_buf(),
            durable_len: len,
            pending: Vec::new(),
            pending_records: 0,
            needs_truncate: false,
            needs_sync: false,
            outage: None,
            camera_id: camera_id.to_string(),
            signer,
            next_seq: 0,
            head: [0; 32],
            last_signed_seq: None,
            dirty: false,
            unsigned_since: None,
            last_sign: Instant::now(),
            interval: options.sign_interval,
            open_segment: None,
            crashed_segment: None,
            last_segment: None,
            buf: Vec::with_capacity(256),
        };
        // A file shorter than the magic is a creation that never completed.
        if len < LEDGER_MAGIC.len() as u64 {
            file.set_len(0).map_err(io)?;
            file.write_all(LEDGER_MAGIC).map_err(io)?;
            inner.durable_len = LEDGER_MAGIC.len() as u64;
            inner.append(Body::Genesis {
                format_version: FORMAT_VERSION,
                camera_id: camera_id.to_string(),
                created_us: now_us(),
                cert_der: inner.signer.cert_der().to_vec(),
            })?;
            inner.sign()?;
            let report = OpenReport {
                created: true,
                clean: true,
                torn_bytes: len,
                unsigned_records: 0,
                records: inner.next_seq,
                interrupted_segment: None,
                retired: None,
                interrupted_write_bytes: 0,
            };
            return Ok((Self { inner: Some(inner) }, report));
        }
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let replayed = replay(path, &file);
        // Decided before a torn tail is cut: a retired ledger is never written again.
        let problem = match &replayed {
            Err(e @ (LedgerError::Read { .. } | LedgerError::Io { .. })) => Some(Unusable {
                reason: RetireReason::Unreadable,
                detail: unreadable_detail(e),
                last: None,
            }),
            Err(_) => None,
            Ok(st) => continuation_problem(st, camera_id, &inner.signer),
        };
        if let Some(unusable) = problem {
            if !may_retire {
                let path = path.to_path_buf();
                return Err(match (replayed, unusable.reason) {
                    (Err(e), _) => e,
                    (Ok(st), RetireReason::OtherCamera) => LedgerError::CameraMismatch {
                        path,
                        found: st.camera_id.unwrap_or_default(),
                        expected: camera_id.to_string(),
                    },
                    (Ok(st), RetireReason::KeyReplaced) => LedgerError::KeyMismatch {
                        path,
                        ledger_key: hex::encode(st.active_key.unwrap_or([0; 32])),
                        server_key: hex::encode(inner.signer.key_id()),
                    },
                    (Ok(st), _) => LedgerError::Corrupt {
                        path,
                        offset: st.damage.map_or(0, |d| d.0),
                        detail: unusable.detail,
                    },
                });
            }
            drop(file);
            let signer = inner.signer;
            return Self::retire_and_open(path, camera_id, signer, options, unusable);
        }
        let st = replayed?;
        if st.torn_bytes > 0 {
            file.set_len(st.good_len).map_err(io)?;
            file.sync_all().map_err(io)?;
            inner.durable_len = st.good_len;
        }
        if st.next_seq == 0 {
            // Only the magic survived: write the genesis now.
            inner.append(Body::Genesis {
                format_version: FORMAT_VERSION,
                camera_id: camera_id.to_string(),
                created_us: now_us(),
                cert_der: inner.signer.cert_der().to_vec(),
            })?;
            inner.sign()?;
            let report = OpenReport {
                created: true,
                clean: true,
                torn_bytes: st.torn_bytes,
                unsigned_records: 0,
                records: inner.next_seq,
                interrupted_segment: None,
                retired: None,
                interrupted_write_bytes: st.interrupted_write_bytes,
            };
            return Ok((Self { inner: Some(inner) }, report));
        }
        use crate::record::kind::{PREDECESSOR, SHUTDOWN, SIGNATURE};
        // A ledger that only holds genesis, predecessor and signature was started by a
        // retirement and has recorded nothing since: nothing to vouch for.
        let clean = st.torn_bytes == 0
            && (st.last_two == [Some(SHUTDOWN), Some(SIGNATURE)]
                || (st.next_seq == 3 && st.last_two == [Some(PREDECESSOR), Some(SIGNATURE)]));
        let unsigned_records = match st.last_signed_seq {
            Some(s) => st.next_seq - 1 - s,
            None => st.next_seq,
        };
        inner.next_seq = st.next_seq;
        inner.head = st.head;
        inner.last_signed_seq = st.last_signed_seq;
        inner.last_segment = st.last_segment;
        // A segment left open by the previous run is never appended to again; after a crash
        // only recover_segment may seal it.
        inner.open_segment = None;
        if !clean {
            inner.crashed_segment = st.open_segment;
            inner.append(Body::UncleanShutdown {
                detected_at_us: now_us(),
                torn_bytes: st.torn_bytes,
                last_signed_seq: st.last_signed_seq.unwrap_or(NOTHING_SIGNED),
            })?;
            inner.sign()?;
        }
        let report = OpenReport {
            created: false,
            clean,
            torn_bytes: st.torn_bytes,
            unsigned_records: if clean { 0 } else { unsigned_records },
            records: inner.next_seq,
            interrupted_segment: inner.crashed_segment.map(|(s, _, _)| s),
            retired: None,
            interrupted_write_bytes: st.interrupted_write_bytes,
        };
        Ok((Self { inner: Some(inner) }, report))
    }

    /// Moves the ledger at `path` aside as its next retired generation and opens a new ledger
    /// in its place that starts with genesis, a predecessor record naming the retired file
    /// (its length, SHA-256, last intact record and why), and a signature.
    ///
    /// The new ledger is written and synced under a staging name first, so a crash leaves
    /// either the old ledger in place (and the staging file, which the next open discards) or
    /// the retired file and a complete new ledger (which the next open renames into place).
    fn retire_and_open(
        path: &Path,
        camera_id: &str,
        signer: SigningIdentity,
        options: LedgerOptions,
        unusable: Unusable,
    ) -> Result<(Self, OpenReport), LedgerError> {
        let Unusable {
            reason,
            detail,
            last,
        } = unusable;
        let fail = |source| LedgerError::Retire {
            path: path.to_path_buf(),
            reason,
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let generation = retired_ledgers(path)
            .map_err(fail)?
            .last()
            .map_or(1, |(n, _)| n + 1);
        let file = retired_file_name(path, generation);
        let retired_path = dir.join(&file);
        if fs::symlink_metadata(&retired_path).is_ok() {
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists", retired_path.display()),
            )));
        }
        let mut detail = detail;
        let (len, sha256) = match hash_file(path) {
            Ok(h) => h,
            Err(e) => {
                detail.push_str(&format!("; its bytes could not be read to hash them: {e}"));
                (fs::metadata(path).map_or(0, |m| m.len()), [0; 32])
            }
        };
        let detail = detail[..floor_char_boundary(&detail, 1024)].to_string();
        let predecessor = Predecessor {
            retired_at_us: now_us(),
            reason,
            file,
            file_len: len,
            file_sha256: sha256,
            last_seq: last.map_or(NOTHING_SIGNED, |(s, _)| s),
            last_hash: last.map_or([0; 32], |(_, h)| h),
            detail: detail.clone(),
        };
        let staging = staging_path(path);
        write_continuation(&staging, camera_id, &signer, predecessor).map_err(|e| match e {
            LedgerError::Io { source, .. } => fail(source),
            other => other,
        })?;
        fs::rename(path, &retired_path).map_err(fail)?;
        fs::rename(&staging, path).map_err(fail)?;
        sync_dir(dir).map_err(fail)?;
        let (writer, mut report) = Self::open_enabled(path, camera_id, signer, options, false)?;
        report.retired = Some(RetiredLedger {
            path: retired_path,
            generation,
            reason,
            detail,
            len,
            sha256,
            last_seq: last.map(|(s, _)| s),
        });
        Ok((writer, report))
    }

    /// True when signing is disabled (benchmark mode).
    pub fn is_disabled(&self) -> bool {
        self.inner.is_none()
    }

    /// A new segment file was created and its init (`ftyp`+`moov`) written and fsynced.
    pub fn segment_open(
        &mut self,
        segment: u64,
        init: &[u8],
        start_us: i64,
    ) -> Result<(), LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(());
        };
        if let Some((open, _)) = i.open_segment {
            return Err(LedgerError::InvalidCall(format!(
                "segment {segment} opened while segment {open} is still open; close it first"
            )));
        }
        if let Some(last) = i.last_segment
            && segment <= last
        {
            return Err(LedgerError::InvalidCall(format!(
                "segment numbers must increase: {segment} after {last}"
            )));
        }
        i.crashed_segment = None;
        i.append(Body::SegmentOpen {
            segment,
            start_us,
            init_len: init.len() as u64,
            init_sha256: sha256(init),
        })?;
        i.open_segment = Some((segment, init.len() as u64));
        i.last_segment = Some(segment);
        i.sign_if_due()
    }

    /// A GOP fragment (moof+mdat) was appended to the open segment and fsynced.
    pub fn fragment(&mut self, f: &FragmentRecord) -> Result<(), LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(());
        };
        match i.open_segment {
            Some((s, next)) if s == f.segment => {
                if f.offset != next {
                    return Err(LedgerError::InvalidCall(format!(
                        "fragment of segment {s} at byte {} but the previous one ended at byte {next}",
                        f.offset
                    )));
                }
            }
            other => {
                return Err(LedgerError::InvalidCall(format!(
                    "fragment for segment {} but the open segment is {:?}",
                    f.segment,
                    other.map(|o| o.0)
                )));
            }
        }
        i.append(Body::Fragment(*f))?;
        i.open_segment = Some((f.segment, f.offset + f.length));
        i.sign_if_due()
    }

    /// The segment file was closed at `final_len` bytes; signs the chain head.
    pub fn segment_close(&mut self, segment: u64, final_len: u64) -> Result<(), LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(());
        };
        match i.open_segment {
            Some((s, next)) if s == segment => {
                if final_len != next {
                    return Err(LedgerError::InvalidCall(format!(
                        "segment {segment} closed at {final_len} bytes but its fragments end at byte {next}"
                    )));
                }
            }
            other => {
                return Err(LedgerError::InvalidCall(format!(
                    "close of segment {segment} but the open segment is {:?}",
                    other.map(|o| o.0)
                )));
            }
        }
        i.append(Body::SegmentClose { segment, final_len })?;
        i.open_segment = None;
        i.sign()
    }

    /// After an unclean shutdown, seals the segment the crashed run left open with what
    /// start-up recovery found in it: fragment records for complete GOPs the crashed run wrote
    /// but never entered, then a segment-recovered record (final length, torn bytes cut at the
    /// crash point), then a signature. Call it right after [`LedgerWriter::open`] reported
    /// `interrupted_segment`, before the next segment opens. Returns the number of fragment
    /// records added. Refuses anything that contradicts the ledger (a file now shorter than
    /// the recorded fragments, a gap, another segment): the writer never vouches for a loss.
    pub fn recover_segment(&mut self, r: &RecoveredSegment<'_>) -> Result<u64, LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(0);
        };
        let Some((seg, next, had_fragments)) = i.crashed_segment else {
            return Err(LedgerError::InvalidCall(format!(
                "segment {} cannot be recovered: no segment was left open by a crash (or a new segment was opened since)",
                r.segment
            )));
        };
        if seg != r.segment {
            return Err(LedgerError::InvalidCall(format!(
                "segment {} cannot be recovered: the crashed run left segment {seg} open",
                r.segment
            )));
        }
        let removed = r.final_len == 0;
        let last_recorded = next;
        let mut end = next;
        let mut new = Vec::new();
        for f in r.fragments {
            if f.segment != seg {
                return Err(LedgerError::InvalidCall(format!(
                    "recovered fragment of segment {} given for segment {seg}",
                    f.segment
                )));
            }
            if f.offset < last_recorded {
                continue;
            }
            if f.offset != end {
                return Err(LedgerError::InvalidCall(format!(
                    "recovered fragment of segment {seg} at byte {} but the previous one ended at byte {end}",
                    f.offset
                )));
            }
            end = f.offset + f.length;
            new.push(*f);
        }
        if removed {
            if had_fragments || !new.is_empty() {
                return Err(LedgerError::InvalidCall(format!(
                    "segment {seg} holds recorded GOPs, but recovery reports its file removed"
                )));
            }
        } else if r.final_len != end {
            return Err(LedgerError::InvalidCall(format!(
                "segment {seg} ends at byte {} after recovery, but its fragments end at byte {end}",
                r.final_len
            )));
        }
        for f in &new {
            i.append(Body::Fragment(*f))?;
        }
        i.append(Body::SegmentRecovered {
            segment: seg,
            final_len: r.final_len,
            truncated_bytes: r.truncated_bytes,
            recovered_at_us: now_us(),
        })?;
        i.crashed_segment = None;
        i.sign()?;
        Ok(new.len() as u64)
    }

    /// No video between the two instants (unix micros).
    pub fn gap(&mut self, before_us: i64, after_us: i64, reason: &str) -> Result<(), LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(());
        };
        let reason = &reason[..floor_char_boundary(reason, 1024)];
        i.append(Body::Gap {
            before_us,
            after_us,
            reason: reason.to_string(),
        })?;
        i.sign_if_due()
    }

    /// Retention deleted the segment file `segment`.
    pub fn prune(&mut self, segment: u64) -> Result<(), LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(());
        };
        // Durable before the caller deletes the file: a prune that exists only in memory
        // would, after a crash, leave a signed segment without its file ("missing").
        i.append_durable(Body::Prune {
            segment,
            pruned_at_us: now_us(),
        })?;
        i.sign_if_due()
    }

    /// An evidence lock was set, released or expired: recorded durably and signed at once, so
    /// the fact is evidence before retention acts on it (or stops honouring it).
    pub fn evidence_lock(&mut self, fact: crate::record::LockFact) -> Result<(), LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(());
        };
        i.append_durable(Body::EvidenceLock(fact))?;
        i.sign()
    }

    /// Another server's signed video was imported into a segment of this camera: the handover
    /// fact is recorded durably and signed at once, and it is the last step of an import
    /// (docs/design/handover.md), so an import without it is incomplete.
    pub fn handover(&mut self, fact: crate::record::HandoverFact) -> Result<(), LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(());
        };
        i.append_durable(Body::Handover(fact))?;
        i.sign()
    }

    /// Periodic call (at least every 10 s): signs the chain head if anything was appended since
    /// the last signature. Returns whether it signed.
    pub fn tick(&mut self) -> Result<bool, LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(false);
        };
        if i.dirty {
            i.sign()?;
            return Ok(true);
        }
        if !i.pending.is_empty() || i.needs_truncate || i.needs_sync {
            // Retry what a full volume refused earlier.
            if i.flush().is_ok() {
                let _ = i.sync();
            }
        }
        Ok(false)
    }

    /// Signs the chain head now if anything is unsigned.
    pub fn sign_now(&mut self) -> Result<(), LedgerError> {
        self.tick().map(|_| ())
    }

    /// Introduces `new` as the signing key: a key-rotation record signed by the current key,
    /// after which every signature uses `new`. `new` must be issued by the same CA.
    pub fn rotate_key(&mut self, new: SigningIdentity) -> Result<(), LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(());
        };
        i.append(Body::KeyRotation {
            rotated_at_us: now_us(),
            new_key_id: new.key_id(),
            new_cert_der: new.cert_der().to_vec(),
        })?;
        i.sign()?;
        i.signer = new;
        Ok(())
    }

    /// Clean shutdown: a signed shutdown record, fsynced.
    pub fn close(mut self) -> Result<(), LedgerError> {
        let Some(i) = self.inner.as_mut() else {
            return Ok(());
        };
        i.append(Body::Shutdown { at_us: now_us() })?;
        i.sign()?;
        i.flush()?;
        i.sync()
    }

    /// Records accepted but not yet on disk because writes fail, with since when and why.
    pub fn backlog(&self) -> Option<Backlog> {
        let i = self.inner.as_ref()?;
        let (since, error) = i.outage.as_ref()?;
        Some(Backlog {
            records: i.pending_records,
            bytes: i.pending.len() as u64,
            since: *since,
            error: error.clone(),
        })
    }

    /// How long the oldest record not yet covered by a signature has waited (the signing lag;
    /// the periodic signature bounds it by the sign interval while signing works). `None`
    /// when everything is signed, or signing is disabled.
    pub fn unsigned_for(&self) -> Option<Duration> {
        self.inner.as_ref()?.unsigned_since.map(|t| t.elapsed())
    }

    /// Number of records written so far (the next record's seq).
    pub fn records(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.next_seq)
    }

    /// Seq and hash of the last record and whether it is a signature: publish the last signed
    /// head elsewhere (management server, SIEM) so that cutting the ledger's tail is detectable.
    pub fn head(&self) -> Option<(u64, Hash, bool)> {
        self.inner
            .as_ref()
            .filter(|i| i.next_seq > 0)
            .map(|i| (i.next_seq - 1, i.head, !i.dirty))
    }

    /// Path of the ledger file (None when disabled).
    pub fn path(&self) -> Option<&Path> {
        self.inner.as_ref().map(|i| i.path.as_path())
    }
}

/// Why a ledger cannot be continued, and its last record that replayed cleanly.
struct Unusable {
    reason: RetireReason,
    detail: String,
    last: Option<(u64, Hash)>,
}

/// Why the replayed ledger cannot be continued, if it cannot.
fn continuation_problem(
    st: &Replay,
    camera_id: &str,
    signer: &SigningIdentity,
) -> Option<Unusable> {
    let unusable = |reason, detail| {
        Some(Unusable {
            reason,
            detail,
            last: st.last(),
        })
    };
    if let Some((offset, detail)) = &st.damage {
        return unusable(
            RetireReason::Damaged,
            format!("damaged at byte {offset}: {detail}"),
        );
    }
    // Only the magic (and perhaps a torn first record): a creation that never completed,
    // continued in place.
    if st.next_seq == 0 {
        return None;
    }
    let found = st.camera_id.as_deref().unwrap_or_default();
    if found != camera_id {
        return unusable(
            RetireReason::OtherCamera,
            format!("the ledger belongs to camera \"{found}\""),
        );
    }
    let ledger_key = st.active_key.unwrap_or([0; 32]);
    if ledger_key != signer.key_id() {
        return unusable(
            RetireReason::KeyReplaced,
            format!(
                "the ledger is signed with key {}, the server's signing key is now {}",
                hex::encode(&ledger_key[..8]),
                hex::encode(&signer.key_id()[..8])
            ),
        );
    }
    None
}

/// The reason text of a ledger that could not be read, without the server's paths.
fn unreadable_detail(e: &LedgerError) -> String {
    match e {
        LedgerError::Read { source, .. } => source.to_string(),
        LedgerError::Io { source, .. } => format!("reading the ledger failed: {source}"),
        other => other.to_string(),
    }
}

/// Completes or discards a retirement a crash interrupted (see [`LedgerWriter::open`]).
fn finish_interrupted_retirement(path: &Path) -> std::io::Result<()> {
    let staging = staging_path(path);
    if fs::symlink_metadata(&staging).is_err() {
        return Ok(());
    }
    if fs::symlink_metadata(path).is_ok() {
        // The old ledger was not moved yet: the staged one never recorded anything.
        fs::remove_file(&staging)
    } else {
        fs::rename(&staging, path)?;
        sync_dir(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
    }
}

/// Writes a complete new ledger to `staging`: magic, genesis, `predecessor`, a signature over
/// both, synced.
fn write_continuation(
    staging: &Path,
    camera_id: &str,
    signer: &SigningIdentity,
    predecessor: Predecessor,
) -> Result<(), LedgerError> {
    let io = |source| LedgerError::Io {
        path: staging.to_path_buf(),
        source,
    };
    let mut out = LEDGER_MAGIC.to_vec();
    let mut buf = Vec::new();
    let genesis = Body::Genesis {
        format_version: FORMAT_VERSION,
        camera_id: camera_id.to_string(),
        created_us: now_us(),
        cert_der: signer.cert_der().to_vec(),
    };
    let h0 = encode_record(0, &[0; 32], &genesis, &mut buf);
    out.extend_from_slice(&buf);
    let h1 = encode_record(1, &h0, &Body::Predecessor(predecessor), &mut buf);
    out.extend_from_slice(&buf);
    let at = now_us();
    let signature = signer.sign(&signature_message(camera_id, 1, &h1, at))?;
    let sig = Body::Signature {
        signed_at_us: at,
        key_id: signer.key_id(),
        signature,
    };
    encode_record(2, &h1, &sig, &mut buf);
    out.extend_from_slice(&buf);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(staging)
        .map_err(io)?;
    f.write_all(&out).map_err(io)?;
    f.sync_all().map_err(io)
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl Inner {
    /// Adds a record to the chain and writes it. A record that cannot be written (full or
    /// failing volume) stays queued in memory and the file is cut back to its last complete
    /// record, so a failed write never leaves a partial record that later ones would follow.
    fn append(&mut self, body: Body) -> Result<(), LedgerError> {
        let hash = encode_record(self.next_seq, &self.head, &body, &mut self.buf);
        if self.pending.len() + self.buf.len() > MAX_BACKLOG_BYTES {
            return Err(LedgerError::BacklogFull {
                path: self.path.clone(),
                bytes: self.pending.len() as u64,
                since_secs: self.outage.as_ref().map_or(0, |o| o.0.elapsed().as_secs()),
            });
        }
        self.pending.extend_from_slice(&self.buf);
        self.pending_records += 1;
        self.head = hash;
        self.next_seq += 1;
        if !self.dirty {
            self.unsigned_since = Some(Instant::now());
        }
        self.dirty = true;
        // A failure is remembered in `outage` and retried by the next call.
        let _ = self.flush();
        Ok(())
    }

    /// Like [`Inner::append`], but returns only once the record is on stable storage; when it
    /// cannot be, the record is taken back out of the chain and the error returned, so the
    /// caller can refrain from the action the record would vouch for (deleting a file).
    fn append_durable(&mut self, body: Body) -> Result<(), LedgerError> {
        self.flush()?;
        self.sync()?;
        let saved = (self.next_seq, self.head, self.dirty, self.pending.len());
        self.append(body)?;
        if let Err(e) = self.flush().and_then(|_| self.sync()) {
            (self.next_seq, self.head, self.dirty) = (saved.0, saved.1, saved.2);
            if !self.dirty {
                self.unsigned_since = None;
            }
            if self.pending.len() > saved.3 {
                self.pending.truncate(saved.3);
                self.pending_records -= 1;
            } else {
                // The record reached the file but its sync failed: cut it off again.
                self.needs_truncate = true;
                self.durable_len -= self.buf.len() as u64;
                self.repair();
            }
            return Err(e);
        }
        Ok(())
    }

    /// Writes queued records. On failure the file is cut back to its last complete record.
    fn flush(&mut self) -> Result<(), LedgerError> {
        if self.needs_truncate && !self.repair() {
            return Err(self.outage_error());
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        // The file is opened for appending, so the write lands at `durable_len`.
        match self.file.write_all(&self.pending) {
            Ok(()) => {
                self.durable_len += self.pending.len() as u64;
                self.needs_sync = true;
                if let Some((since, error)) = self.outage.take() {
                    tracing::warn!(
                        ledger = %self.path.display(),
                        records = self.pending_records,
                        seconds = since.elapsed().as_secs(),
                        %error,
                        "evidence ledger writable again; wrote the records kept in memory meanwhile"
                    );
                }
                self.pending.clear();
                self.pending_records = 0;
                Ok(())
            }
            Err(source) => {
                if self.outage.is_none() {
                    tracing::error!(
                        ledger = %self.path.display(),
                        error = %source,
                        "cannot write the evidence ledger; keeping its records in memory until the volume has room again"
                    );
                }
                let since = self.outage.as_ref().map_or_else(Instant::now, |o| o.0);
                self.outage = Some((since, source.to_string()));
                self.needs_truncate = true;
                self.repair();
                Err(LedgerError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    /// Cuts the file back to its last complete record. Shortening a file needs no free space,
    /// so this normally succeeds even on a full volume.
    fn repair(&mut self) -> bool {
        let cut = self
            .file
            .set_len(self.durable_len)
            .and_then(|_| self.file.sync_data());
        match cut {
            Ok(()) => {
                self.needs_truncate = false;
                true
            }
            Err(e) => {
                tracing::error!(ledger = %self.path.display(), error = %e, "cannot cut a failed ledger write back");
                false
            }
        }
    }

    fn sync(&mut self) -> Result<(), LedgerError> {
        if !self.needs_sync {
            return Ok(());
        }
        self.file.sync_data().map_err(|source| LedgerError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.needs_sync = false;
        Ok(())
    }

    fn outage_error(&self) -> LedgerError {
        LedgerError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(
                self.outage
                    .as_ref()
                    .map_or_else(|| "earlier write failed".to_string(), |o| o.1.clone()),
            ),
        }
    }

    fn sign_if_due(&mut self) -> Result<(), LedgerError> {
        if self.dirty && self.last_sign.elapsed() >= self.interval {
            self.sign()?;
        }
        Ok(())
    }

    /// Appends a signature over the current head and fsyncs the file.
    fn sign(&mut self) -> Result<(), LedgerError> {
        let head_seq = self.next_seq - 1;
        let at = now_us();
        let msg = signature_message(&self.camera_id, head_seq, &self.head, at);
        let signature = self.signer.sign(&msg)?;
        self.append(Body::Signature {
            signed_at_us: at,
            key_id: self.signer.key_id(),
            signature,
        })?;
        self.last_signed_seq = Some(self.next_seq - 1);
        self.dirty = false;
        self.unsigned_since = None;
        self.last_sign = Instant::now();
        // The signature is part of the chain either way; it is durable once written and
        // synced, which later calls retry while the volume is full (`outage` tracks it).
        if self.flush().is_ok() {
            let _ = self.sync();
        }
        Ok(())
    }
}
