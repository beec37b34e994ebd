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

/// `last_signed_seq` value in an unclean-shutdown record when nothing had been signed yet.
pub const NOTHING_SIGNED: u64 = u64::MAX;

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

/// Streams records from a ledger or excerpt. Stops at the first torn or corrupt record and
/// remembers why in [`RecordReader::stop`].
pub struct RecordReader<R: Read> {
    r: R,
    pos: u64,
    body: Vec<u8>,
    stop: Option<Stop>,
    done: bool,
    pub is_excerpt: bool,
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
            r,
            pos: 8,
            body: Vec::with_capacity(256),
            stop: None,
            done: false,
            is_excerpt,
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

    /// Next record, `Ok(None)` at the end or at a stop.
    pub fn next_record(&mut self) -> Result<Option<Record>, io::Error> {
        if self.done {
            return Ok(None);
        }
        let start = self.pos;
        let mut len_buf = [0u8; 4];
        let got = read_full(&mut self.r, &mut len_buf)?;
        if got == 0 {
            self.done = true;
            return Ok(None);
        }
        if got < 4 {
            return self.torn(start, got as u64);
        }
        let body_len = u32::from_be_bytes(len_buf) as usize;
        if !(BODY_HEADER_LEN..=MAX_BODY_LEN).contains(&body_len) {
            // A zero length followed only by zeros is what a crash leaves on some filesystems
            // (size extended, data never written): a torn tail, not tampering.
            if body_len == 0 {
                let rest = drain_is_zero(&mut self.r)?;
                if let Some(n) = rest {
                    return self.torn(start, 4 + n);
                }
            }
            return self.corrupt(start, DecodeError::BadLength(body_len));
        }
        self.body.resize(body_len + 32, 0);
        let got = read_full(&mut self.r, &mut self.body)?;
        if got < body_len + 32 {
            return self.torn(start, 4 + got as u64);
        }
        let stored: Hash = self.body[body_len..].try_into().expect("32 bytes");
        match decode_body(&self.body[..body_len], &stored) {
            Ok((seq, prev, body)) => {
                let encoded_len = 4 + body_len as u64 + 32;
                self.pos += encoded_len;
                Ok(Some(Record {
                    seq,
                    prev,
                    body,
                    hash: stored,
                    offset: start,
                    encoded_len,
                }))
            }
            Err(e) => self.corrupt(start, e),
        }
    }

    fn torn(&mut self, offset: u64, bytes: u64) -> Result<Option<Record>, io::Error> {
        self.done = true;
        self.stop = Some(Stop::Torn { offset, bytes });
        Ok(None)
    }

    fn corrupt(&mut self, offset: u64, error: DecodeError) -> Result<Option<Record>, io::Error> {
        self.done = true;
        self.stop = Some(Stop::Corrupt { offset, error });
        Ok(None)
    }
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
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
        ]
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
