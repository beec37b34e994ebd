//! The ledger's binary record format: encoding, decoding and the hash chain link of one record.
//!
//! Owns the exact byte layout documented in `docs/signing-format.md`. Everything here is pure
//! (no I/O besides the streaming [`RecordReader`]), so the same code serves the writer, the
//! server-side verifier, the export bundle and the fuzz targets.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Magic at the start of a camera ledger file.
pub const LEDGER_MAGIC: &[u8; 8] = b"VGLEDG1\n";
/// Magic at the start of a ledger excerpt (export bundle): same records, starting at any seq.
pub const EXCERPT_MAGIC: &[u8; 8] = b"VGLEXC1\n";
/// Bytes of a record before its payload: type (1) + seq (8) + prev hash (32).
pub const BODY_HEADER_LEN: usize = 41;
/// Upper bound on one record's body, so a garbage length field cannot make a reader allocate
/// gigabytes. The largest legitimate record carries one X.509 certificate (a few KiB).
pub const MAX_BODY_LEN: usize = 1 << 20;

/// Domain-separation prefix of the message an Ed25519 ledger signature covers.
pub const SIGNATURE_CONTEXT: &[u8; 20] = b"VIGIL-LEDGER-SIG-V1\0";

/// `last_signed_seq` value in an unclean-shutdown record when nothing had been signed yet, and
/// `last_seq` in a predecessor record when no record of the retired ledger replayed.
pub const NOTHING_SIGNED: u64 = u64::MAX;

/// How far past a record that does not decode a reader looks for the record that continues
/// the chain after an interrupted write. A failed write leaves at most a strict prefix of one
/// record per attempt, and a volume that refuses writes usually takes no bytes at all.
const RESYNC_WINDOW: usize = 4 * (MAX_BODY_LEN + 36);

/// Record type codes (the first body byte).
pub mod kind {
    pub const GENESIS: u8 = 0x01;
    pub const SEGMENT_OPEN: u8 = 0x02;
    pub const FRAGMENT: u8 = 0x03;
    pub const SEGMENT_CLOSE: u8 = 0x04;
    pub const GAP: u8 = 0x05;
    pub const PRUNE: u8 = 0x06;
    pub const SIGNATURE: u8 = 0x07;
    pub const UNCLEAN_SHUTDOWN: u8 = 0x08;
    pub const KEY_ROTATION: u8 = 0x09;
    pub const SHUTDOWN: u8 = 0x0A;
    pub const SEGMENT_RECOVERED: u8 = 0x0B;
    pub const PREDECESSOR: u8 = 0x0C;
    pub const EVIDENCE_LOCK: u8 = 0x0D;
    pub const HANDOVER: u8 = 0x0E;
}

/// What an evidence-lock record says happened to a lock (its `action` byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockAction {
    /// Retention keeps the range from now on.
    Locked = 1,
    /// Someone released the lock.
    Released = 2,
    /// The lock's time ran out.
    Expired = 3,
}

impl LockAction {
    pub fn code(self) -> u8 {
        self as u8
    }
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => LockAction::Locked,
            2 => LockAction::Released,
            3 => LockAction::Expired,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            LockAction::Locked => "locked",
            LockAction::Released => "released",
            LockAction::Expired => "expired",
        }
    }
}

/// An evidence lock's signed fact: a range of the camera's video that retention keeps (docs
/// storage-format.md, "Evidence locks"), its release or its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockFact {
    pub action: LockAction,
    /// The lock's number in the recording index; the same in its release or expiry record.
    pub lock_id: u64,
    pub from_us: i64,
    pub to_us: i64,
    /// When it happened.
    pub at_us: i64,
    /// Who: `user:<name>`, `rule:<name>`, `cli:<user>` or `expiry`.
    pub by: String,
    pub reason: String,
}

/// Why a writer could not continue a camera's ledger and started a new one (the `reason`
/// byte of a predecessor record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetireReason {
    /// A record in the middle does not decode, or the chain does not continue.
    Damaged = 1,
    /// The ledger's active key is not the server's signing key (the key was replaced).
    KeyReplaced = 2,
    /// The ledger's genesis record names another camera.
    OtherCamera = 3,
    /// The file could not be opened or read, or is not a ledger at all.
    Unreadable = 4,
}

impl RetireReason {
    pub fn code(self) -> u8 {
        self as u8
    }
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => RetireReason::Damaged,
            2 => RetireReason::KeyReplaced,
            3 => RetireReason::OtherCamera,
            4 => RetireReason::Unreadable,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RetireReason::Damaged => "damaged",
            RetireReason::KeyReplaced => "key-replaced",
            RetireReason::OtherCamera => "other-camera",
            RetireReason::Unreadable => "unreadable",
        }
    }
}

impl std::fmt::Display for RetireReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The second record of a ledger that continues a retired one: which file the writer moved
/// aside, what it held at that moment, and why it could not be continued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predecessor {
    pub retired_at_us: i64,
    pub reason: RetireReason,
    /// File name of the retired ledger in the same directory (`<camera>.ledger.<n>`).
    pub file: String,
    /// Its length when it was retired.
    pub file_len: u64,
    /// SHA-256 of its bytes when it was retired; all zeros if they could not be read.
    pub file_sha256: Hash,
    /// Seq of the last record that replayed cleanly ([`NOTHING_SIGNED`] if none did).
    pub last_seq: u64,
    /// That record's hash (zeros if none).
    pub last_hash: Hash,
    /// What exactly the writer found, for people.
    pub detail: String,
}

impl Predecessor {
    /// The last record of the retired ledger this record vouches for.
    pub fn last(&self) -> Option<(u64, Hash)> {
        (self.last_seq != NOTHING_SIGNED).then_some((self.last_seq, self.last_hash))
    }
}

/// One recorded GOP fragment as the recorder reports it (and as the ledger stores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentRecord {
    /// Segment file sequence number (`video/<camera>/<segment:016x>.mp4`).
    pub segment: u64,
    /// moof/mfhd sequence number (per-camera GOP counter).
    pub gop: u32,
    /// Byte offset of the moof box inside the segment file.
    pub offset: u64,
    /// Length of moof+mdat in bytes.
    pub length: u64,
    /// SHA-256 of exactly those `length` bytes.
    pub sha256: Hash,
    /// Wall-clock time of the first frame, unix microseconds.
    pub start_us: i64,
    /// Duration of the GOP in microseconds.
    pub duration_us: u64,
    /// Number of frames in the GOP.
    pub frames: u32,
}

/// A handover's signed fact (docs/design/handover.md): video of this camera that another
/// recording server recorded and signed (during a failover) was imported into segment
/// `segment` of this camera, and the receiving server vouches for having checked it with the
/// named key. F's ledger excerpt, whose length and SHA-256 the fact binds, is kept beside the
/// segment (`video/<camera>/<segment>.handover/`), so the imported part verifies with F's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverFact {
    /// When the import was recorded.
    pub at_us: i64,
    /// This camera's segment number that holds the imported video.
    pub segment: u64,
    /// Recorded start of the first and end of the last imported fragment.
    pub from_us: i64,
    pub to_us: i64,
    /// The server that recorded and signed the imported video, as the trust list names it.
    pub source_server: String,
    /// Its signing key: SHA-256 of the raw Ed25519 public key (the ledger's key id).
    pub source_key: Hash,
    /// SHA-256 of the DER of the CA certificate that issued the source key's certificate.
    pub source_ca: Hash,
    /// The camera id the source server's ledger (and so its signatures) names.
    pub source_camera: String,
    /// Seqs, in the source ledger, of the first and last imported fragment records: every
    /// fragment record of the excerpt between them (inclusive) is imported, in order.
    pub first_record: u64,
    pub last_record: u64,
    /// Length and SHA-256 of the source server's ledger excerpt kept beside the segment.
    pub excerpt_len: u64,
    pub excerpt_sha256: Hash,
    /// This server, which imported the video and signs this fact.
    pub recipient: String,
    /// Who imported: `cli:<user>`, `api:<user>`, `cluster`.
    pub by: String,
}

/// Decoded payload of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// First record of a ledger: which camera, and the certificate of the first signing key.
    Genesis {
        format_version: u16,
        camera_id: String,
        created_us: i64,
        cert_der: Vec<u8>,
    },
    /// A segment file was created; `init_sha256` covers its init (every byte before the first moof).
    SegmentOpen {
        segment: u64,
        start_us: i64,
        init_len: u64,
        init_sha256: Hash,
    },
    Fragment(FragmentRecord),
    /// The segment file was closed at `final_len` bytes; nothing may follow in it.
    SegmentClose {
        segment: u64,
        final_len: u64,
    },
    /// No video between these two instants (camera offline, network, ...).
    Gap {
        before_us: i64,
        after_us: i64,
        reason: String,
    },
    /// Retention deleted this segment file.
    Prune {
        segment: u64,
        pruned_at_us: i64,
    },
    /// Ed25519 signature over the previous record's hash (the chain head).
    Signature {
        signed_at_us: i64,
        key_id: Hash,
        signature: [u8; 64],
    },
    /// Found at start-up: the previous run did not close the ledger.
    UncleanShutdown {
        detected_at_us: i64,
        torn_bytes: u64,
        last_signed_seq: u64,
    },
    /// A new signing key; the next signature is still made with the old key.
    KeyRotation {
        rotated_at_us: i64,
        new_key_id: Hash,
        new_cert_der: Vec<u8>,
    },
    /// Clean end of a recorder run; a signature follows.
    Shutdown {
        at_us: i64,
    },
    /// Written by the run after an unclean shutdown: start-up recovery found the segment that
    /// was open at the crash ending at `final_len` (0: the file held no complete GOP and was
    /// removed), after cutting `truncated_bytes` of a torn fragment at the crash point. Any
    /// fragment records for GOPs the crashed run completed but never entered precede it. Like a
    /// segment-close, nothing may follow `final_len` in the file.
    SegmentRecovered {
        segment: u64,
        final_len: u64,
        truncated_bytes: u64,
        recovered_at_us: i64,
    },
    /// Right after the genesis record: this ledger continues a retired one (see [`Predecessor`]).
    Predecessor(Predecessor),
    /// An evidence lock was set, released or expired.
    EvidenceLock(LockFact),
    /// Another server's signed video of this camera was imported (see [`HandoverFact`]).
    Handover(HandoverFact),
}

impl Body {
    pub fn type_code(&self) -> u8 {
        match self {
            Body::Genesis { .. } => kind::GENESIS,
            Body::SegmentOpen { .. } => kind::SEGMENT_OPEN,
            Body::Fragment(_) => kind::FRAGMENT,
            Body::SegmentClose { .. } => kind::SEGMENT_CLOSE,
            Body::Gap { .. } => kind::GAP,
            Body::Prune { .. } => kind::PRUNE,
            Body::Signature { .. } => kind::SIGNATURE,
            Body::UncleanShutdown { .. } => kind::UNCLEAN_SHUTDOWN,
            Body::KeyRotation { .. } => kind::KEY_ROTATION,
            Body::Shutdown { .. } => kind::SHUTDOWN,
            Body::SegmentRecovered { .. } => kind::SEGMENT_RECOVERED,
            Body::Predecessor(_) => kind::PREDECESSOR,
            Body::EvidenceLock(_) => kind::EVIDENCE_LOCK,
            Body::Handover(_) => kind::HANDOVER,
        }
    }

    /// Human name used in reports and the format documentation.
    pub fn type_name(&self) -> &'static str {
        type_name(self.type_code())
    }

    /// The instant this record speaks about, if it carries one.
    pub fn time_us(&self) -> Option<i64> {
        match self {
            Body::Genesis { created_us, .. } => Some(*created_us),
            Body::SegmentOpen { start_us, .. } => Some(*start_us),
            Body::Fragment(f) => Some(f.start_us),
            Body::SegmentClose { .. } => None,
            Body::Gap { after_us, .. } => Some(*after_us),
            Body::Prune { .. } => None,
            Body::Signature { .. } => None,
            Body::UncleanShutdown { .. } => None,
            Body::KeyRotation { .. } => None,
            Body::Shutdown { .. } => None,
            Body::SegmentRecovered { .. } => None,
            Body::Predecessor(_) => None,
            Body::EvidenceLock(l) => Some(l.at_us),
            Body::Handover(_) => None,
        }
    }
}

pub fn type_name(code: u8) -> &'static str {
    match code {
        kind::GENESIS => "genesis",
        kind::SEGMENT_OPEN => "segment-open",
        kind::FRAGMENT => "fragment",
        kind::SEGMENT_CLOSE => "segment-close",
        kind::GAP => "gap",
        kind::PRUNE => "prune",
        kind::SIGNATURE => "signature",
        kind::UNCLEAN_SHUTDOWN => "unclean-shutdown",
        kind::KEY_ROTATION => "key-rotation",
        kind::SHUTDOWN => "shutdown",
        kind::SEGMENT_RECOVERED => "segment-recovered",
        kind::PREDECESSOR => "predecessor",
        kind::EVIDENCE_LOCK => "evidence-lock",
        kind::HANDOVER => "handover",
        _ => "unknown",
    }
}

/// A decoded record with its chain fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub prev: Hash,
    pub body: Body,
    /// Hash stored in the record (already checked against the body by the reader).
    pub hash: Hash,
    /// Byte offset of the record (its length field) in the file.
    pub offset: u64,
    /// Total encoded size: 4 + body + 32.
    pub encoded_len: u64,
}

/// Appends the payload encoding of `body` to `out`.
fn encode_payload(body: &Body, out: &mut Vec<u8>) {
    fn blob(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    }
    fn string(out: &mut Vec<u8>, s: &str) {
        // Strings are bounded by the writer (camera ids, gap reasons) to u16::MAX bytes.
        let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    }
    match body {
        Body::Genesis {
            format_version,
            camera_id,
            created_us,
            cert_der,
        } => {
            out.extend_from_slice(&format_version.to_be_bytes());
            string(out, camera_id);
            out.extend_from_slice(&created_us.to_be_bytes());
            blob(out, cert_der);
        }
        Body::SegmentOpen {
            segment,
            start_us,
            init_len,
            init_sha256,
        } => {
            out.extend_from_slice(&segment.to_be_bytes());
            out.extend_from_slice(&start_us.to_be_bytes());
            out.extend_from_slice(&init_len.to_be_bytes());
            out.extend_from_slice(init_sha256);
        }
        Body::Fragment(f) => {
            out.extend_from_slice(&f.segment.to_be_bytes());
            out.extend_from_slice(&f.gop.to_be_bytes());
            out.extend_from_slice(&f.offset.to_be_bytes());
            out.extend_from_slice(&f.length.to_be_bytes());
            out.extend_from_slice(&f.sha256);
            out.extend_from_slice(&f.start_us.to_be_bytes());
            out.extend_from_slice(&f.duration_us.to_be_bytes());
            out.extend_from_slice(&f.frames.to_be_bytes());
        }
        Body::SegmentClose { segment, final_len } => {
            out.extend_from_slice(&segment.to_be_bytes());
            out.extend_from_slice(&final_len.to_be_bytes());
        }
        Body::Gap {
            before_us,
            after_us,
            reason,
        } => {
            out.extend_from_slice(&before_us.to_be_bytes());
            out.extend_from_slice(&after_us.to_be_bytes());
            string(out, reason);
        }
        Body::Prune {
            segment,
            pruned_at_us,
        } => {
            out.extend_from_slice(&segment.to_be_bytes());
            out.extend_from_slice(&pruned_at_us.to_be_bytes());
        }
        Body::Signature {
            signed_at_us,
            key_id,
            signature,
        } => {
            out.extend_from_slice(&signed_at_us.to_be_bytes());
            out.extend_from_slice(key_id);
            out.extend_from_slice(signature);
        }
        Body::UncleanShutdown {
            detected_at_us,
            torn_bytes,
            last_signed_seq,
        } => {
            out.extend_from_slice(&detected_at_us.to_be_bytes());
            out.extend_from_slice(&torn_bytes.to_be_bytes());
            out.extend_from_slice(&last_signed_seq.to_be_bytes());
        }
        Body::KeyRotation {
            rotated_at_us,
            new_key_id,
            new_cert_der,
        } => {
            out.extend_from_slice(&rotated_at_us.to_be_bytes());
            out.extend_from_slice(new_key_id);
            blob(out, new_cert_der);
        }
        Body::Shutdown { at_us } => out.extend_from_slice(&at_us.to_be_bytes()),
        Body::SegmentRecovered {
            segment,
            final_len,
            truncated_bytes,
            recovered_at_us,
        } => {
            out.extend_from_slice(&segment.to_be_bytes());
            out.extend_from_slice(&final_len.to_be_bytes());
            out.extend_from_slice(&truncated_bytes.to_be_bytes());
            out.extend_from_slice(&recovered_at_us.to_be_bytes());
        }
        Body::Predecessor(p) => {
            out.extend_from_slice(&p.retired_at_us.to_be_bytes());
            out.push(p.reason.code());
            string(out, &p.file);
            out.extend_from_slice(&p.file_len.to_be_bytes());
            out.extend_from_slice(&p.file_sha256);
            out.extend_from_slice(&p.last_seq.to_be_bytes());
            out.extend_from_slice(&p.last_hash);
            string(out, &p.detail);
        }
        Body::EvidenceLock(l) => {
            out.push(l.action.code());
            out.extend_from_slice(&l.lock_id.to_be_bytes());
            out.extend_from_slice(&l.from_us.to_be_bytes());
            out.extend_from_slice(&l.to_us.to_be_bytes());
            out.extend_from_slice(&l.at_us.to_be_bytes());
            string(out, &l.by);
            string(out, &l.reason);
        }
        Body::Handover(h) => {
            out.extend_from_slice(&h.at_us.to_be_bytes());
            out.extend_from_slice(&h.segment.to_be_bytes());
            out.extend_from_slice(&h.from_us.to_be_bytes());
            out.extend_from_slice(&h.to_us.to_be_bytes());
            string(out, &h.source_server);
            out.extend_from_slice(&h.source_key);
            out.extend_from_slice(&h.source_ca);
            string(out, &h.source_camera);
            out.extend_from_slice(&h.first_record.to_be_bytes());
            out.extend_from_slice(&h.last_record.to_be_bytes());
            out.extend_from_slice(&h.excerpt_len.to_be_bytes());
            out.extend_from_slice(&h.excerpt_sha256);
            string(out, &h.recipient);
            string(out, &h.by);
        }
    }
}

/// Encodes a complete record (length, body, hash) into `out` (cleared first) and returns its hash.
pub fn encode_record(seq: u64, prev: &Hash, body: &Body, out: &mut Vec<u8>) -> Hash {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    out.push(body.type_code());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(prev);
    encode_payload(body, out);
    let body_len = out.len() - 4;
    out[..4].copy_from_slice(&(body_len as u32).to_be_bytes());
    let hash: Hash = Sha256::digest(&out[4..]).into();
    out.extend_from_slice(&hash);
    hash
}

/// The exact message an Ed25519 ledger signature covers: context, camera id (u16 length +
/// UTF-8), head seq, head hash, signing time. The camera id binds every signature to its camera,
/// so an excerpt without the genesis record still proves which camera recorded it.
pub fn signature_message(
    camera_id: &str,
    head_seq: u64,
    head_hash: &Hash,
    signed_at_us: i64,
) -> Vec<u8> {
    let cam = &camera_id.as_bytes()[..camera_id.len().min(u16::MAX as usize)];
    let mut m = Vec::with_capacity(20 + 2 + cam.len() + 48);
    m.extend_from_slice(SIGNATURE_CONTEXT);
    m.extend_from_slice(&(cam.len() as u16).to_be_bytes());
    m.extend_from_slice(cam);
    m.extend_from_slice(&head_seq.to_be_bytes());
    m.extend_from_slice(head_hash);
    m.extend_from_slice(&signed_at_us.to_be_bytes());
    m
}

/// Why bytes could not be decoded as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record length {0} is outside the allowed range {BODY_HEADER_LEN}..={MAX_BODY_LEN}")]
    BadLength(usize),
    #[error("unknown record type 0x{0:02x}")]
    UnknownType(u8),
    #[error("{kind} record payload is malformed: {what}")]
    Malformed {
        kind: &'static str,
        what: &'static str,
    },
    #[error("stored record hash does not match the record's bytes (the record was modified)")]
    HashMismatch,
}

struct Cursor<'a> {
    b: &'a [u8],
    kind: &'static str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(DecodeError::Malformed {
                kind: self.kind,
                what,
            });
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(
            self.take(2, what)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(self.u64(what)? as i64)
    }
    fn hash(&mut self, what: &'static str) -> Result<Hash, DecodeError> {
        Ok(self.take(32, what)?.try_into().expect("32 bytes"))
    }
    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let n = self.u16(what)? as usize;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Malformed {
            kind: self.kind,
            what,
        })
    }
    fn blob(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32(what)? as usize;
        Ok(self.take(n, what)?.to_vec())
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed {
                kind: self.kind,
                what: "trailing bytes after the payload",
            })
        }
    }
}

/// Decodes a record body (type..payload) whose stored hash is `stored_hash`.
pub fn decode_body(body: &[u8], stored_hash: &Hash) -> Result<(u64, Hash, Body), DecodeError> {
    if body.len() < BODY_HEADER_LEN || body.len() > MAX_BODY_LEN {
        return Err(DecodeError::BadLength(body.len()));
    }
    let computed: Hash = Sha256::digest(body).into();
    if &computed != stored_hash {
        return Err(DecodeError::HashMismatch);
    }
    let code = body[0];
    let seq = u64::from_be_bytes(body[1..9].try_into().expect("8 bytes"));
    let prev: Hash = body[9..41].try_into().expect("32 bytes");
    let mut c = Cursor {
        b: &body[BODY_HEADER_LEN..],
        kind: type_name(code),
    };
    let decoded = match code {
        kind::GENESIS => Body::Genesis {
            format_version: c.u16("format version")?,
            camera_id: c.string("camera id")?,
            created_us: c.i64("creation time")?,
            cert_der: c.blob("certificate")?,
        },
        kind::SEGMENT_OPEN => Body::SegmentOpen {
            segment: c.u64("segment")?,
            start_us: c.i64("start time")?,
            init_len: c.u64("init length")?,
            init_sha256: c.hash("init hash")?,
        },
        kind::FRAGMENT => Body::Fragment(FragmentRecord {
            segment: c.u64("segment")?,
            gop: c.u32("gop counter")?,
            offset: c.u64("offset")?,
            length: c.u64("length")?,
            sha256: c.hash("fragment hash")?,
            start_us: c.i64("start time")?,
            duration_us: c.u64("duration")?,
            frames: c.u32("frame count")?,
        }),
        kind::SEGMENT_CLOSE => Body::SegmentClose {
            segment: c.u64("segment")?,
            final_len: c.u64("final length")?,
        },
        kind::GAP => Body::Gap {
            before_us: c.i64("gap start")?,
            after_us: c.i64("gap end")?,
            reason: c.string("reason")?,
        },
        kind::PRUNE => Body::Prune {
            segment: c.u64("segment")?,
            pruned_at_us: c.i64("prune time")?,
        },
        kind::SIGNATURE => Body::Signature {
            signed_at_us: c.i64("signing time")?,
            key_id: c.hash("key id")?,
            signature: c.take(64, "signature")?.try_into().expect("64 bytes"),
        },
        kind::UNCLEAN_SHUTDOWN => Body::UncleanShutdown {
            detected_at_us: c.i64("detection time")?,
            torn_bytes: c.u64("torn bytes")?,
            last_signed_seq: c.u64("last signed seq")?,
        },
        kind::KEY_ROTATION => Body::KeyRotation {
            rotated_at_us: c.i64("rotation time")?,
            new_key_id: c.hash("new key id")?,
            new_cert_der: c.blob("new certificate")?,
        },
        kind::SHUTDOWN => Body::Shutdown {
            at_us: c.i64("shutdown time")?,
        },
        kind::SEGMENT_RECOVERED => Body::SegmentRecovered {
            segment: c.u64("segment")?,
            final_len: c.u64("final length")?,
            truncated_bytes: c.u64("truncated bytes")?,
            recovered_at_us: c.i64("recovery time")?,
        },
        kind::PREDECESSOR => Body::Predecessor(Predecessor {
            retired_at_us: c.i64("retirement time")?,
            reason: RetireReason::from_code(c.u8("reason")?).ok_or(DecodeError::Malformed {
                kind: "predecessor",
                what: "unknown reason code",
            })?,
            file: c.string("file name")?,
            file_len: c.u64("file length")?,
            file_sha256: c.hash("file hash")?,
            last_seq: c.u64("last seq")?,
            last_hash: c.hash("last hash")?,
            detail: c.string("detail")?,
        }),
        kind::EVIDENCE_LOCK => Body::EvidenceLock(LockFact {
            action: LockAction::from_code(c.u8("action")?).ok_or(DecodeError::Malformed {
                kind: "evidence-lock",
                what: "unknown action code",
            })?,
            lock_id: c.u64("lock id")?,
            from_us: c.i64("lock start")?,
            to_us: c.i64("lock end")?,
            at_us: c.i64("time")?,
            by: c.string("by")?,
            reason: c.string("reason")?,
        }),
        kind::HANDOVER => {
            let h = HandoverFact {
                at_us: c.i64("time")?,
                segment: c.u64("segment")?,
                from_us: c.i64("range start")?,
                to_us: c.i64("range end")?,
                source_server: c.string("source server")?,
                source_key: c.hash("source key id")?,
                source_ca: c.hash("source CA fingerprint")?,
                source_camera: c.string("source camera id")?,
                first_record: c.u64("first record")?,
                last_record: c.u64("last record")?,
                excerpt_len: c.u64("excerpt length")?,
                excerpt_sha256: c.hash("excerpt hash")?,
                recipient: c.string("recipient")?,
                by: c.string("by")?,
            };
            // A fact whose range or record span runs backwards describes no video.
            if h.to_us < h.from_us || h.last_record < h.first_record {
                return Err(DecodeError::Malformed {
                    kind: "handover",
                    what: "range or record span runs backwards",
                });
            }
            Body::Handover(h)
        }
        other => return Err(DecodeError::UnknownType(other)),
    };
    c.end()?;
    Ok((seq, prev, decoded))
}

/// What stopped a [`RecordReader`] before the end of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The input ended inside a record, or with zero fill: the tail of an interrupted write.
    Torn { offset: u64, bytes: u64 },
    /// A structurally invalid or modified record in the middle of the input.
    Corrupt { offset: u64, error: DecodeError },
}

/// Errors that end reading entirely (wrong file kind, I/O).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not a vigil ledger: the file does not start with the ledger magic (found {found:?})")]
    BadMagic { found: Vec<u8> },
    #[error("reading the ledger failed: {0}")]
    Io(#[from] io::Error),
}

/// Bytes between two records that an interrupted write left behind and a reader skipped: a
/// failed append wrote part of a record, and a later append wrote the record that continues
/// the chain after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterruptedWrite {
    /// Where the skipped bytes start (just after the record `after_seq`).
    pub offset: u64,
    pub bytes: u64,
    /// The record before them (`None`: they follow the magic).
    pub after_seq: Option<u64>,
}

/// The input, with bytes read ahead while looking past an interrupted write served first.
struct Source<R: Read> {
    r: R,
    ahead: Vec<u8>,
    at: usize,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at < self.ahead.len() {
            let n = buf.len().min(self.ahead.len() - self.at);
            buf[..n].copy_from_slice(&self.ahead[self.at..self.at + n]);
            self.at += n;
            if self.at == self.ahead.len() {
                self.ahead = Vec::new();
                self.at = 0;
            }
            return Ok(n);
        }
        self.r.read(buf)
    }
}

/// Streams records from a ledger or excerpt. Stops at the first torn or corrupt record and
/// remembers why in [`RecordReader::stop`], except where an interrupted write is recognised:
/// bytes that are only the beginnings of records with the expected seq and previous hash,
/// followed by a complete record with that seq and previous hash. Those bytes are skipped and
/// listed in [`RecordReader::interrupted_writes`]; the chain is unbroken across them.
pub struct RecordReader<R: Read> {
    src: Source<R>,
    pos: u64,
    body: Vec<u8>,
    stop: Option<Stop>,
    done: bool,
    pub is_excerpt: bool,
    /// Seq and hash of the last record returned: what the next one has to continue.
    last: Option<(u64, Hash)>,
    skipped: Vec<InterruptedWrite>,
}

impl<R: Read> RecordReader<R> {
    /// Reads and checks the 8-byte magic (ledger or excerpt).
    pub fn new(mut r: R) -> Result<Self, ReadError> {
        let mut magic = [0u8; 8];
        let got = read_full(&mut r, &mut magic)?;
        let is_excerpt = if &magic == LEDGER_MAGIC {
            false
        } else if &magic == EXCERPT_MAGIC {
            true
        } else {
            return Err(ReadError::BadMagic {
                found: magic[..got].to_vec(),
            });
        };
        Ok(Self {
            src: Source {
                r,
                ahead: Vec::new(),
                at: 0,
            },
            pos: 8,
            body: Vec::with_capacity(256),
            stop: None,
            done: false,
            is_excerpt,
            last: None,
            skipped: Vec::new(),
        })
    }

    /// Why reading stopped early, if it did (after `next` returned `Ok(None)`).
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// Offset just after the last good record.
    pub fn good_len(&self) -> u64 {
        self.pos
    }

    /// Interrupted writes skipped so far, in file order.
    pub fn interrupted_writes(&self) -> &[InterruptedWrite] {
        &self.skipped
    }

    /// Next record, `Ok(None)` at the end or at a stop.
    pub fn next_record(&mut self) -> Result<Option<Record>, io::Error> {
        loop {
            if self.done {
                return Ok(None);
            }
            let start = self.pos;
            let mut len_buf = [0u8; 4];
            let got = read_full(&mut self.src, &mut len_buf)?;
            if got == 0 {
                self.done = true;
                return Ok(None);
            }
            let mut consumed = len_buf[..got].to_vec();
            let stop = if got < 4 {
                Stop::Torn {
                    offset: start,
                    bytes: got as u64,
                }
            } else {
                let body_len = u32::from_be_bytes(len_buf) as usize;
                if !(BODY_HEADER_LEN..=MAX_BODY_LEN).contains(&body_len) {
                    if body_len == 0 {
                        // A zero length followed only by zeros is what a crash leaves on some
                        // filesystems (size extended, data never written): a torn tail.
                        let eof = self.read_ahead(&mut consumed)?;
                        if consumed.iter().all(|&b| b == 0) {
                            let rest = if eof {
                                Some(0)
                            } else {
                                drain_is_zero(&mut self.src)?
                            };
                            if let Some(n) = rest {
                                self.done = true;
                                self.stop = Some(Stop::Torn {
                                    offset: start,
                                    bytes: consumed.len() as u64 + n,
                                });
                                return Ok(None);
                            }
                            return self.stop_at(Stop::Corrupt {
                                offset: start,
                                error: DecodeError::BadLength(body_len),
                            });
                        }
                    }
                    Stop::Corrupt {
                        offset: start,
                        error: DecodeError::BadLength(body_len),
                    }
                } else {
                    self.body.resize(body_len + 32, 0);
                    let got = read_full(&mut self.src, &mut self.body)?;
                    if got < body_len + 32 {
                        consumed.extend_from_slice(&self.body[..got]);
                        Stop::Torn {
                            offset: start,
                            bytes: 4 + got as u64,
                        }
                    } else {
                        let stored: Hash = self.body[body_len..].try_into().expect("32 bytes");
                        match decode_body(&self.body[..body_len], &stored) {
                            Ok((seq, prev, body)) => {
                                let encoded_len = 4 + body_len as u64 + 32;
                                self.pos += encoded_len;
                                self.last = Some((seq, stored));
                                return Ok(Some(Record {
                                    seq,
                                    prev,
                                    body,
                                    hash: stored,
                                    offset: start,
                                    encoded_len,
                                }));
                            }
                            Err(error) => {
                                consumed.extend_from_slice(&self.body);
                                Stop::Corrupt {
                                    offset: start,
                                    error,
                                }
                            }
                        }
                    }
                }
            };
            if self.skip_interrupted_write(start, consumed)? {
                continue;
            }
            return self.stop_at(stop);
        }
    }

    fn stop_at(&mut self, stop: Stop) -> Result<Option<Record>, io::Error> {
        self.done = true;
        self.stop = Some(stop);
        Ok(None)
    }

    /// Appends input to `buf` until it holds enough to look past an interrupted write; returns
    /// whether the input ended.
    fn read_ahead(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        const LOOKAHEAD: usize = RESYNC_WINDOW + 4 + MAX_BODY_LEN + 32;
        let mut chunk = vec![0u8; 64 * 1024];
        while buf.len() < LOOKAHEAD {
            let want = chunk.len().min(LOOKAHEAD - buf.len());
            let n = read_full(&mut self.src, &mut chunk[..want])?;
            buf.extend_from_slice(&chunk[..n]);
            if n < want {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `buf` holds the bytes from `start` that did not decode as a record. If they and what
    /// follows are an interrupted write, positions the reader on the record after it.
    fn skip_interrupted_write(&mut self, start: u64, mut buf: Vec<u8>) -> io::Result<bool> {
        let (seq, prev) = match self.last {
            Some((s, h)) => (s + 1, h),
            // An excerpt starts at any record: what its first record continues is unknown.
            None if self.is_excerpt => return Ok(false),
            None => (0, [0; 32]),
        };
        let seq_be = seq.to_be_bytes();
        self.read_ahead(&mut buf)?;
        // Positions up to `reach` can start another attempt: every byte before them belongs
        // to the beginning of some record with the expected seq and previous hash.
        let mut reach = 0usize;
        let mut found = None;
        for q in 0..buf.len() {
            if q > 0 {
                if q > reach {
                    break;
                }
                if continues_chain(&buf[q..], &seq_be, &prev) {
                    found = Some(q);
                    break;
                }
            }
            if q >= RESYNC_WINDOW {
                break;
            }
            reach = reach.max(q + attempt_prefix_len(&buf[q..], &seq_be, &prev));
        }
        let Some(q) = found else {
            return Ok(false);
        };
        let mut ahead = buf.split_off(q);
        ahead.extend_from_slice(&self.src.ahead[self.src.at..]);
        self.src.ahead = ahead;
        self.src.at = 0;
        self.skipped.push(InterruptedWrite {
            offset: start,
            bytes: q as u64,
            after_seq: self.last.map(|(s, _)| s),
        });
        self.pos = start + q as u64;
        Ok(true)
    }
}

/// How many leading bytes of `b` can be the beginning of an encoded record with sequence
/// number `seq_be` and previous hash `prev` that is cut short (never the whole record).
fn attempt_prefix_len(b: &[u8], seq_be: &[u8; 8], prev: &Hash) -> usize {
    let n = b.len().min(4 + BODY_HEADER_LEN);
    for k in 1..=n.min(4) {
        let (mut lo, mut hi) = ([0u8; 4], [0xffu8; 4]);
        lo[..k].copy_from_slice(&b[..k]);
        hi[..k].copy_from_slice(&b[..k]);
        if (u32::from_be_bytes(hi) as usize) < BODY_HEADER_LEN
            || u32::from_be_bytes(lo) as usize > MAX_BODY_LEN
        {
            return k - 1;
        }
    }
    if n <= 4 {
        return n;
    }
    if type_name(b[4]) == "unknown" {
        return 4;
    }
    for i in 5..n {
        let want = if i < 13 { seq_be[i - 5] } else { prev[i - 13] };
        if b[i] != want {
            return i;
        }
    }
    if n < 4 + BODY_HEADER_LEN {
        return n;
    }
    let full = 4 + u32::from_be_bytes(b[..4].try_into().expect("4 bytes")) as usize + 32;
    (full - 1).min(b.len())
}

/// Whether `b` starts with a complete, intact record with sequence number `seq_be` and
/// previous hash `prev`.
fn continues_chain(b: &[u8], seq_be: &[u8; 8], prev: &Hash) -> bool {
    if b.len() < 4 + BODY_HEADER_LEN + 32 || b[5..13] != seq_be[..] || b[13..45] != prev[..] {
        return false;
    }
    let len = u32::from_be_bytes(b[..4].try_into().expect("4 bytes")) as usize;
    if !(BODY_HEADER_LEN..=MAX_BODY_LEN).contains(&len) || b.len() < 4 + len + 32 {
        return false;
    }
    let stored: Hash = b[4 + len..4 + len + 32].try_into().expect("32 bytes");
    decode_body(&b[4..4 + len], &stored).is_ok()
}

/// Reads until `buf` is full or EOF; returns the number of bytes read (fewer at EOF, where
/// `Read::read_exact` would say only that it ended). Also reads the backup format's frames.
pub fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Consumes the rest of the input; `Some(len)` if it was all zero bytes.
fn drain_is_zero<R: Read>(r: &mut R) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 4096];
    let mut total = 0u64;
    let mut all_zero = true;
    loop {
        let n = read_full(r, &mut buf)?;
        if n == 0 {
            break;
        }
        all_zero &= buf[..n].iter().all(|&b| b == 0);
        total += n as u64;
    }
    Ok(all_zero.then_some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_bodies() -> Vec<Body> {
        vec![
            Body::Genesis {
                format_version: 1,
                camera_id: "cam-1".into(),
                created_us: 5,
                cert_der: vec![1, 2, 3],
            },
            Body::SegmentOpen {
                segment: 1,
                start_us: 6,
                init_len: 700,
                init_sha256: [7; 32],
            },
            Body::Fragment(FragmentRecord {
                segment: 1,
                gop: 9,
                offset: 700,
                length: 1000,
                sha256: [3; 32],
                start_us: 10,
                duration_us: 2_000_000,
                frames: 60,
            }),
            Body::SegmentClose {
                segment: 1,
                final_len: 1700,
            },
            Body::Gap {
                before_us: 1,
                after_us: 2,
                reason: "camera offline".into(),
            },
            Body::Prune {
                segment: 1,
                pruned_at_us: 99,
            },
            Body::Signature {
                signed_at_us: 3,
                key_id: [4; 32],
                signature: [5; 64],
            },
            Body::UncleanShutdown {
                detected_at_us: 1,
                torn_bytes: 2,
                last_signed_seq: 3,
            },
            Body::KeyRotation {
                rotated_at_us: 1,
                new_key_id: [1; 32],
                new_cert_der: vec![9; 40],
            },
            Body::Shutdown { at_us: 77 },
            Body::SegmentRecovered {
                segment: 1,
                final_len: 1700,
                truncated_bytes: 345,
                recovered_at_us: 88,
            },
            Body::Predecessor(Predecessor {
                retired_at_us: 99,
                reason: RetireReason::KeyReplaced,
                file: "cam-1.ledger.1".into(),
                file_len: 12345,
                file_sha256: [6; 32],
                last_seq: 41,
                last_hash: [8; 32],
                detail: "the ledger is signed with key 0102".into(),
            }),
            Body::EvidenceLock(LockFact {
                action: LockAction::Locked,
                lock_id: 7,
                from_us: 1_000,
                to_us: 9_000,
                at_us: 12_000,
                by: "user:boss".into(),
                reason: "incident 4711".into(),
            }),
            Body::EvidenceLock(LockFact {
                action: LockAction::Expired,
                lock_id: 7,
                from_us: 1_000,
                to_us: 9_000,
                at_us: 99_000,
                by: "expiry".into(),
                reason: "incident 4711".into(),
            }),
        ]
    }

    /// One encoded record and the hash it links to.
    struct Encoded {
        prev: Hash,
        bytes: Vec<u8>,
    }

    /// A ledger of `n` shutdown records (any record type will do for the framing).
    fn chain(n: u64) -> (Vec<u8>, Vec<Encoded>) {
        let mut file = LEDGER_MAGIC.to_vec();
        let mut prev = [0u8; 32];
        let mut recs = Vec::new();
        let mut buf = Vec::new();
        for i in 0..n {
            let h = encode_record(i, &prev, &Body::Shutdown { at_us: i as i64 }, &mut buf);
            recs.push(Encoded {
                prev,
                bytes: buf.clone(),
            });
            file.extend_from_slice(&buf);
            prev = h;
        }
        (file, recs)
    }

    fn read_all(file: &[u8]) -> (Vec<Record>, Option<Stop>, Vec<InterruptedWrite>) {
        let mut r = RecordReader::new(file).unwrap();
        let mut v = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            v.push(rec);
        }
        (v, r.stop().cloned(), r.interrupted_writes().to_vec())
    }

    #[test]
    fn an_interrupted_write_before_the_record_that_continues_the_chain_is_skipped() {
        let (file, recs) = chain(4);
        // What a failed append left: the start of record 2 (a different body than the one
        // written later succeeds: a signature retried at another time), then record 2 itself.
        let mut attempt = Vec::new();
        encode_record(
            2,
            &recs[2].prev,
            &Body::Shutdown { at_us: -5 },
            &mut attempt,
        );
        let at = 8 + recs[0].bytes.len() + recs[1].bytes.len();
        for cut in [1, 3, 4, 5, 20, 45, 60, attempt.len() - 1] {
            let mut damaged = file[..at].to_vec();
            damaged.extend_from_slice(&attempt[..cut]);
            // A second attempt that wrote even less.
            damaged.extend_from_slice(&attempt[..cut.min(7)]);
            damaged.extend_from_slice(&file[at..]);
            let (got, stop, skipped) = read_all(&damaged);
            assert_eq!(stop, None, "cut {cut}");
            assert_eq!(got.len(), 4, "cut {cut}");
            assert_eq!(got[2].offset, (at + cut + cut.min(7)) as u64);
            assert_eq!(
                skipped,
                vec![InterruptedWrite {
                    offset: at as u64,
                    bytes: (cut + cut.min(7)) as u64,
                    after_seq: Some(1),
                }]
            );
        }
    }

    #[test]
    fn bytes_that_are_not_an_interrupted_write_of_the_next_record_are_corrupt() {
        let (file, recs) = chain(4);
        let at = 8 + recs[0].bytes.len() + recs[1].bytes.len();
        let corrupt = |d: &[u8]| {
            let (got, stop, skipped) = read_all(d);
            assert!(skipped.is_empty());
            assert!(matches!(stop, Some(Stop::Corrupt { .. })), "{stop:?}");
            got.len()
        };
        // A partial record with the wrong seq (another record's beginning).
        let mut d = file[..at].to_vec();
        d.extend_from_slice(&recs[3].bytes[..50]);
        d.extend_from_slice(&file[at..]);
        assert_eq!(corrupt(&d), 2);
        // Garbage before the next record.
        let mut d = file[..at].to_vec();
        d.extend_from_slice(&[0xa5; 30]);
        d.extend_from_slice(&file[at..]);
        assert_eq!(corrupt(&d), 2);
        // A modified record: nothing after it continues the chain from record 1.
        let mut d = file.clone();
        d[at + 50] ^= 1;
        assert_eq!(corrupt(&d), 2);
        // A partial record 2 followed by record 3 (record 2 itself is gone).
        let mut d = file[..at].to_vec();
        d.extend_from_slice(&recs[2].bytes[..30]);
        d.extend_from_slice(&file[at + recs[2].bytes.len()..]);
        assert_eq!(corrupt(&d), 2);
    }

    #[test]
    fn a_partial_record_at_the_end_is_still_a_torn_tail() {
        let (file, recs) = chain(3);
        let mut d = file.clone();
        let mut next = Vec::new();
        encode_record(3, &[1; 32], &Body::Shutdown { at_us: 3 }, &mut next);
        d.extend_from_slice(&next[..30]);
        let (got, stop, skipped) = read_all(&d);
        assert_eq!(got.len(), 3);
        assert!(skipped.is_empty());
        assert_eq!(
            stop,
            Some(Stop::Torn {
                offset: file.len() as u64,
                bytes: 30
            })
        );
        assert_eq!(recs.len(), 3);
    }

    #[test]
    fn predecessor_with_an_unknown_reason_is_malformed() {
        let mut buf = Vec::new();
        encode_record(
            1,
            &[0; 32],
            &Body::Predecessor(Predecessor {
                retired_at_us: 1,
                reason: RetireReason::Damaged,
                file: "x.ledger.1".into(),
                file_len: 1,
                file_sha256: [0; 32],
                last_seq: NOTHING_SIGNED,
                last_hash: [0; 32],
                detail: String::new(),
            }),
            &mut buf,
        );
        let n = buf.len();
        let mut body = buf[4..n - 32].to_vec();
        body[BODY_HEADER_LEN + 8] = 9;
        let h: Hash = Sha256::digest(&body).into();
        assert!(matches!(
            decode_body(&body, &h),
            Err(DecodeError::Malformed {
                what: "unknown reason code",
                ..
            })
        ));
    }

    #[test]
    fn every_record_type_round_trips() {
        let mut file = LEDGER_MAGIC.to_vec();
        let mut prev = [0u8; 32];
        let mut buf = Vec::new();
        let bodies = sample_bodies();
        for (i, b) in bodies.iter().enumerate() {
            prev = encode_record(i as u64, &prev, b, &mut buf);
            file.extend_from_slice(&buf);
        }
        let mut r = RecordReader::new(&file[..]).unwrap();
        let mut prev = [0u8; 32];
        for (i, b) in bodies.iter().enumerate() {
            let rec = r.next_record().unwrap().unwrap();
            assert_eq!(rec.seq, i as u64);
            assert_eq!(rec.prev, prev);
            assert_eq!(&rec.body, b);
            prev = rec.hash;
        }
        assert!(r.next_record().unwrap().is_none());
        assert!(r.stop().is_none());
        assert_eq!(r.good_len(), file.len() as u64);
    }

    #[test]
    fn torn_tail_and_zero_fill_are_torn_not_corrupt() {
        let mut file = LEDGER_MAGIC.to_vec();
        let mut buf = Vec::new();
        encode_record(0, &[0; 32], &Body::Shutdown { at_us: 1 }, &mut buf);
        file.extend_from_slice(&buf);
        let good = file.len() as u64;
        let mut torn = file.clone();
        torn.extend_from_slice(&buf[..buf.len() - 5]);
        let mut r = RecordReader::new(&torn[..]).unwrap();
        assert!(r.next_record().unwrap().is_some());
        assert!(r.next_record().unwrap().is_none());
        assert_eq!(
            r.stop(),
            Some(&Stop::Torn {
                offset: good,
                bytes: buf.len() as u64 - 5
            })
        );

        let mut zeros = file.clone();
        zeros.extend_from_slice(&[0u8; 100]);
        let mut r = RecordReader::new(&zeros[..]).unwrap();
        while r.next_record().unwrap().is_some() {}
        assert_eq!(
            r.stop(),
            Some(&Stop::Torn {
                offset: good,
                bytes: 100
            })
        );
    }

    #[test]
    fn modified_and_garbage_records_are_corrupt() {
        let mut file = LEDGER_MAGIC.to_vec();
        let mut buf = Vec::new();
        encode_record(0, &[0; 32], &Body::Shutdown { at_us: 1 }, &mut buf);
        file.extend_from_slice(&buf);
        let mut flipped = file.clone();
        flipped[8 + 20] ^= 1;
        let mut r = RecordReader::new(&flipped[..]).unwrap();
        assert!(r.next_record().unwrap().is_none());
        assert_eq!(
            r.stop(),
            Some(&Stop::Corrupt {
                offset: 8,
                error: DecodeError::HashMismatch
            })
        );

        let mut garbage = LEDGER_MAGIC.to_vec();
        garbage.extend_from_slice(&[0xff; 64]);
        let mut r = RecordReader::new(&garbage[..]).unwrap();
        assert!(r.next_record().unwrap().is_none());
        assert!(matches!(
            r.stop(),
            Some(Stop::Corrupt {
                error: DecodeError::BadLength(_),
                ..
            })
        ));

        assert!(matches!(
            RecordReader::new(&b"not a ledger"[..]),
            Err(ReadError::BadMagic { .. })
        ));
        assert!(matches!(
            RecordReader::new(&b""[..]),
            Err(ReadError::BadMagic { .. })
        ));
    }

    #[test]
    fn wrong_payload_size_is_malformed() {
        // A valid hash over a body whose payload is too short for its type.
        let mut body = vec![kind::SHUTDOWN];
        body.extend_from_slice(&0u64.to_be_bytes());
        body.extend_from_slice(&[0; 32]);
        body.extend_from_slice(&[1, 2, 3]);
        let h: Hash = Sha256::digest(&body).into();
        assert!(matches!(
            decode_body(&body, &h),
            Err(DecodeError::Malformed { .. })
        ));
        body[0] = 0x7f;
        let h: Hash = Sha256::digest(&body).into();
        assert_eq!(decode_body(&body, &h), Err(DecodeError::UnknownType(0x7f)));
    }
}
