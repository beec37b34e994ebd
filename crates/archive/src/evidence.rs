//! What the evidence ledger signed for one segment, and the check of a segment's bytes (local
//! or read back from the archive) against it: the init's length and hash from the
//! segment-open record, every fragment's offset, length and hash from its fragment record, and
//! the final length from the segment-close (or segment-recovered) record, all covered by the
//! signature record that follows them (docs/signing-format.md §2).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vigil_signing::record::{Body, EXCERPT_MAGIC, FragmentRecord, Hash, RecordReader, Stop};

/// Why a segment's signed records cannot be had from the ledger.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("cannot read the ledger {path}: {why}")]
    Ledger { path: PathBuf, why: String },
    #[error("segment {segment} is in no ledger generation of {camera_id}")]
    NotInLedger { camera_id: String, segment: u64 },
    #[error(
        "segment {segment} of {camera_id} is not sealed and signed in the ledger yet ({why}); it is archived once it is"
    )]
    NotSigned {
        camera_id: String,
        segment: u64,
        why: String,
    },
}

/// How bytes differ from what the ledger signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("{found} bytes where the ledger signed {signed}")]
    Length { signed: u64, found: u64 },
    #[error("the init (bytes 0..{len}) hashes to {found}, the ledger signed {signed}")]
    Init {
        len: u64,
        signed: String,
        found: String,
    },
    #[error(
        "GOP {gop} (bytes {offset}..{end}) hashes to {found}, the ledger signed {signed}",
        end = offset + length
    )]
    Fragment {
        gop: u32,
        offset: u64,
        length: u64,
        signed: String,
        found: String,
    },
    #[error("the ledger's records for the segment do not describe a contiguous file: {0}")]
    Layout(String),
}

/// The signed description of one segment and the ledger excerpt that carries it.
#[derive(Debug, Clone)]
pub struct SegmentEvidence {
    pub camera_id: String,
    pub segment: u64,
    /// The ledger file (current or retired generation) holding the records.
    pub ledger: PathBuf,
    pub init_len: u64,
    pub init_sha256: Hash,
    pub fragments: Vec<FragmentRecord>,
    pub final_len: u64,
    /// `VGLEXC1\n`, then the ledger's records verbatim from the segment-open record to the
    /// first signature after the segment was sealed (the form of a bundle's excerpt).
    pub excerpt: Vec<u8>,
}

impl SegmentEvidence {
    /// Reads the records of `segment` from the camera's ledger `current` or, failing that,
    /// from its retired generations.
    pub fn read(current: &Path, camera_id: &str, segment: u64) -> Result<Self, EvidenceError> {
        let mut files = vec![current.to_path_buf()];
        if let Ok(retired) = vigil_signing::generation::retired_ledgers(current) {
            files.extend(retired.into_iter().rev().map(|(_, p)| p));
        }
        for path in files {
            if let Some(found) = Self::read_one(&path, camera_id, segment)? {
                return Ok(found);
            }
        }
        Err(EvidenceError::NotInLedger {
            camera_id: camera_id.into(),
            segment,
        })
    }

    fn read_one(path: &Path, camera_id: &str, segment: u64) -> Result<Option<Self>, EvidenceError> {
        let ledger_err = |why: String| EvidenceError::Ledger {
            path: path.to_owned(),
            why,
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ledger_err(e.to_string())),
        };
        let mut reader =
            RecordReader::new(BufReader::new(file)).map_err(|e| ledger_err(e.to_string()))?;
        let not_signed = |why: &str| EvidenceError::NotSigned {
            camera_id: camera_id.into(),
            segment,
            why: why.into(),
        };
        let mut start: Option<(u64, u64, Hash)> = None;
        let mut fragments = Vec::new();
        let mut final_len = None;
        let mut end = None;
        while let Some(rec) = reader
            .next_record()
            .map_err(|e| ledger_err(e.to_string()))?
        {
            match &rec.body {
                Body::SegmentOpen {
                    segment: s,
                    init_len,
                    init_sha256,
                    ..
                } if *s == segment => start = Some((rec.offset, *init_len, *init_sha256)),
                _ if start.is_none() => {}
                Body::Fragment(f) if f.segment == segment && final_len.is_none() => {
                    fragments.push(*f)
                }
                Body::SegmentClose {
                    segment: s,
                    final_len: n,
                }
                | Body::SegmentRecovered {
                    segment: s,
                    final_len: n,
                    ..
                } if *s == segment => final_len = Some(*n),
                Body::Signature { .. } if final_len.is_some() => {
                    end = Some(rec.offset + rec.encoded_len);
                    break;
                }
                _ => {}
            }
        }
        let Some((start_off, init_len, init_sha256)) = start else {
            if let Some(Stop::Corrupt { offset, error }) = reader.stop() {
                return Err(ledger_err(format!("damaged at byte {offset}: {error:?}")));
            }
            return Ok(None);
        };
        let Some(final_len) = final_len else {
            return Err(not_signed("no segment-close record"));
        };
        if final_len == 0 {
            return Err(not_signed(
                "recovery removed the file: it held no complete GOP",
            ));
        }
        let Some(end_off) = end else {
            return Err(not_signed("no signature after its segment-close record"));
        };
        let mut excerpt = EXCERPT_MAGIC.to_vec();
        let mut f = File::open(path).map_err(|e| ledger_err(e.to_string()))?;
        f.seek(SeekFrom::Start(start_off))
            .map_err(|e| ledger_err(e.to_string()))?;
        let at = excerpt.len();
        excerpt.resize(at + (end_off - start_off) as usize, 0);
        f.read_exact(&mut excerpt[at..])
            .map_err(|e| ledger_err(e.to_string()))?;
        Ok(Some(Self {
            camera_id: camera_id.into(),
            segment,
            ledger: path.to_owned(),
            init_len,
            init_sha256,
            fragments,
            final_len,
            excerpt,
        }))
    }

    /// Checks `bytes` (a whole segment file) against the signed records, naming the first
    /// difference.
    pub fn check(&self, bytes: &[u8]) -> Result<(), Mismatch> {
        if bytes.len() as u64 != self.final_len {
            return Err(Mismatch::Length {
                signed: self.final_len,
                found: bytes.len() as u64,
            });
        }
        let init = &bytes[..self.init_len.min(self.final_len) as usize];
        let found = Sha256::digest(init);
        if found.as_slice() != self.init_sha256 {
            return Err(Mismatch::Init {
                len: self.init_len,
                signed: hex::encode(self.init_sha256),
                found: hex::encode(found),
            });
        }
        let mut at = self.init_len;
        for f in &self.fragments {
            if f.offset != at || f.offset + f.length > self.final_len {
                return Err(Mismatch::Layout(format!(
                    "GOP {} at byte {} (expected {at}), {} bytes, file of {}",
                    f.gop, f.offset, f.length, self.final_len
                )));
            }
            let found = Sha256::digest(&bytes[f.offset as usize..(f.offset + f.length) as usize]);
            if found.as_slice() != f.sha256 {
                return Err(Mismatch::Fragment {
                    gop: f.gop,
                    offset: f.offset,
                    length: f.length,
                    signed: hex::encode(f.sha256),
                    found: hex::encode(found),
                });
            }
            at += f.length;
        }
        if at != self.final_len {
            return Err(Mismatch::Layout(format!(
                "the signed GOPs end at byte {at}, the segment at {}",
                self.final_len
            )));
        }
        Ok(())
    }

    /// The first and last instant of the signed video.
    pub fn time_span(&self) -> Option<(i64, i64)> {
        let first = self.fragments.first()?;
        let last = self.fragments.last()?;
        Some((first.start_us, last.start_us + last.duration_us as i64))
    }
}
