//! The append-only ledger writer the recorder drives, one per camera stream.
//!
//! Every record is written to the file as soon as it is made (one `write` call, so a process
//! crash loses nothing the kernel has), and the file is fsynced at every signature. Opening an
//! existing ledger replays and checks its chain, cuts a torn tail, and records an unclean
//! shutdown when the previous run did not close it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::keys::{KeyError, SigningIdentity, cert_key_id};
use crate::record::{
    Body, FragmentRecord, Hash, LEDGER_MAGIC, NOTHING_SIGNED, ReadError, RecordReader, Stop,
    encode_record, signature_message,
};

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
    #[error(
        "ledger {path} is damaged at byte {offset}: {detail}. It may have been tampered with: run `vigil verify` on this camera, then move the file aside so a new ledger is started"
    )]
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
    camera_id: String,
    signer: SigningIdentity,
    next_seq: u64,
    head: Hash,
    last_signed_seq: Option<u64>,
    /// Records written since the last signature.
    dirty: bool,
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
    };
    let io = |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    };
    while let Some(rec) = reader.next_record().map_err(io)? {
        let corrupt = |detail: String| LedgerError::Corrupt {
            path: path.to_path_buf(),
            offset: rec.offset,
            detail,
        };
        if rec.seq != st.next_seq || rec.prev != st.head {
            return Err(corrupt(format!(
                "record {} does not continue the chain (expected seq {})",
                rec.seq, st.next_seq
            )));
        }
        match &rec.body {
            Body::Genesis {
                camera_id,
                cert_der,
                ..
            } => {
                if rec.seq != 0 {
                    return Err(corrupt("genesis record in the middle of the ledger".into()));
                }
                st.camera_id = Some(camera_id.clone());
                st.active_key = Some(cert_key_id(cert_der).map_err(corrupt)?);
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
            Body::Gap { .. } | Body::Prune { .. } => {}
        }
        if rec.seq == 0 && !matches!(rec.body, Body::Genesis { .. }) {
            return Err(corrupt("the first record is not a genesis record".into()));
        }
        st.last_two = [st.last_two[1], Some(rec.body.type_code())];
        st.next_seq = rec.seq + 1;
        st.head = rec.hash;
    }
    st.good_len = reader.good_len();
    match reader.stop() {
        None => {}
        Some(Stop::Torn { bytes, .. }) => st.torn_bytes = *bytes,
        Some(Stop::Corrupt { offset, error }) => {
            return Err(LedgerError::Corrupt {
                path: path.to_path_buf(),
                offset: *offset,
                detail: error.to_string(),
            });
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
    /// unclean-shutdown record is appended. With [`SigningMode::Disabled`] nothing is touched.
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
        let io = |source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o644)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut inner = Inner {
            file: file.try_clone().map_err(io)?,
            path: path.to_path_buf(),
            camera_id: camera_id.to_string(),
            signer,
            next_seq: 0,
            head: [0; 32],
            last_signed_seq: None,
            dirty: false,
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
            };
            return Ok((Self { inner: Some(inner) }, report));
        }
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let st = replay(path, &file)?;
        if st.torn_bytes > 0 {
            file.set_len(st.good_len).map_err(io)?;
            file.sync_all().map_err(io)?;
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
            };
            return Ok((Self { inner: Some(inner) }, report));
        }
        let found = st.camera_id.clone().unwrap_or_default();
        if found != camera_id {
            return Err(LedgerError::CameraMismatch {
                path: path.to_path_buf(),
                found,
                expected: camera_id.to_string(),
            });
        }
        let ledger_key = st.active_key.unwrap_or([0; 32]);
        if ledger_key != inner.signer.key_id() {
            return Err(LedgerError::KeyMismatch {
                path: path.to_path_buf(),
                ledger_key: hex::encode(ledger_key),
                server_key: hex::encode(inner.signer.key_id()),
            });
        }
        let clean = st.torn_bytes == 0
            && st.last_two
                == [
                    Some(crate::record::kind::SHUTDOWN),
                    Some(crate::record::kind::SIGNATURE),
                ];
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
        };
        Ok((Self { inner: Some(inner) }, report))
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
        i.append(Body::Prune {
            segment,
            pruned_at_us: now_us(),
        })?;
        i.sign_if_due()
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
        i.sign()
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
    fn append(&mut self, body: Body) -> Result<(), LedgerError> {
        let hash = encode_record(self.next_seq, &self.head, &body, &mut self.buf);
        self.file
            .write_all(&self.buf)
            .map_err(|source| LedgerError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.head = hash;
        self.next_seq += 1;
        self.dirty = true;
        Ok(())
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
        self.file.sync_data().map_err(|source| LedgerError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.last_signed_seq = Some(self.next_seq - 1);
        self.dirty = false;
        self.last_sign = Instant::now();
        Ok(())
    }
}
