//! Streaming scan of a fragmented MP4 file's top-level boxes, hashing as it goes.
//!
//! Only top-level box headers are parsed: everything before the first `moof` is the init, and
//! each fragment runs from a `moof` to the next `moof` (or end of file). Each unit is hashed
//! with SHA-256 in one pass over a large read buffer, with no per-fragment allocation besides
//! one entry in the result list. Invalid headers or a box running past the end of the file end
//! the scan and mark the unit as garbage or truncated instead of failing.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::record::Hash;

/// Read buffer size: large enough that the hash, not syscalls, bounds throughput.
pub const READ_BUFFER: usize = 4 << 20;

/// How a scanned unit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitStatus {
    /// All its boxes were complete.
    Complete,
    /// A box header declared more bytes than the file holds.
    Truncated,
    /// Bytes that are not a valid box header were found; the unit runs to end of file.
    Garbage,
}

/// The init or one fragment of a scanned file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    pub offset: u64,
    pub len: u64,
    pub sha256: Hash,
    pub status: UnitStatus,
}

/// Result of scanning one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    pub file_len: u64,
    /// Everything before the first moof (offset 0; may be empty).
    pub init: Unit,
    pub fragments: Vec<Unit>,
}

struct Scanner<R> {
    r: BufReader<R>,
    pos: u64,
    len: u64,
}

impl<R: Read> Scanner<R> {
    /// Feeds up to `n` bytes into `h`; returns how many were available.
    fn hash_n(
        &mut self,
        mut n: u64,
        h: &mut Sha256,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<u64> {
        let mut done = 0;
        while n > 0 {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let k = (buf.len() as u64).min(n) as usize;
            h.update(&buf[..k]);
            self.r.consume(k);
            n -= k as u64;
            done += k as u64;
            self.pos += k as u64;
            progress(k as u64);
        }
        Ok(done)
    }

    /// Reads exactly `buf.len()` bytes unless EOF comes first; returns bytes read.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let k = self.r.read(&mut buf[n..])?;
            if k == 0 {
                break;
            }
            n += k;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn is_box_type(t: &[u8]) -> bool {
    t.iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b' ' || c == 0xa9)
}

/// How fragments sit in the scanned file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Top-level `moof`s (segment files, fragmented exports).
    Fragmented,
    /// Also a top-level `skip` box whose payload is exactly one `moof`: the fragment starts at
    /// that `moof`, and the 8-byte `skip` header belongs to no unit (its bytes follow from the
    /// `moof`'s length). Evidence bundles of format v3 hide each signed `moof` from players
    /// this way (docs/signing-format.md).
    SkipWrapped,
}

/// Scans a file on disk.
pub fn scan_file(path: &Path, progress: &mut dyn FnMut(u64)) -> io::Result<Scanned> {
    scan_file_as(path, Framing::Fragmented, progress)
}

/// Scans a file on disk whose fragments are framed as `framing` says.
pub fn scan_file_as(
    path: &Path,
    framing: Framing,
    progress: &mut dyn FnMut(u64),
) -> io::Result<Scanned> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    scan_reader_as(f, len, framing, progress)
}

/// Scans `len` bytes from `r`.
pub fn scan_reader<R: Read>(r: R, len: u64, progress: &mut dyn FnMut(u64)) -> io::Result<Scanned> {
    scan_reader_as(r, len, Framing::Fragmented, progress)
}

/// Scans `len` bytes from `r` whose fragments are framed as `framing` says.
pub fn scan_reader_as<R: Read>(
    r: R,
    len: u64,
    framing: Framing,
    progress: &mut dyn FnMut(u64),
) -> io::Result<Scanned> {
    let mut s = Scanner {
        r: BufReader::with_capacity(READ_BUFFER, r),
        pos: 0,
        len,
    };
    let mut units: Vec<Unit> = Vec::new();
    let mut cur_start = 0u64;
    let mut cur = Sha256::new();
    let mut status = UnitStatus::Complete;
    loop {
        if s.pos >= s.len {
            break;
        }
        let box_start = s.pos;
        let mut hdr = [0u8; 16];
        let got = s.read_some(&mut hdr[..8])?;
        if got < 8 {
            cur.update(&hdr[..got]);
            progress(got as u64);
            status = UnitStatus::Truncated;
            break;
        }
        let size32 = u32::from_be_bytes(hdr[..4].try_into().expect("4 bytes")) as u64;
        let typ = [hdr[4], hdr[5], hdr[6], hdr[7]];
        let mut hdr_len = 8usize;
        let size = match size32 {
            0 => s.len - box_start,
            1 => {
                let got = s.read_some(&mut hdr[8..16])?;
                hdr_len += got;
                if got < 8 {
                    if typ == *b"moof" {
                        units.push(Unit {
                            offset: cur_start,
                            len: box_start - cur_start,
                            sha256: cur.finalize_reset().into(),
                            status,
                        });
                        cur_start = box_start;
                    }
                    cur.update(&hdr[..hdr_len]);
                    progress(hdr_len as u64);
                    status = UnitStatus::Truncated;
                    break;
                }
                u64::from_be_bytes(hdr[8..16].try_into().expect("8 bytes"))
            }
            n => n,
        };
        if size < hdr_len as u64 || !is_box_type(&typ) {
            // Not a box: everything from here to the end is one garbage unit, so the units
            // before it keep their own (possibly intact) hashes.
            if box_start > cur_start {
                units.push(Unit {
                    offset: cur_start,
                    len: box_start - cur_start,
                    sha256: cur.finalize_reset().into(),
                    status,
                });
                cur_start = box_start;
            }
            cur.update(&hdr[..hdr_len]);
            progress(hdr_len as u64);
            s.hash_n(u64::MAX, &mut cur, progress)?;
            status = UnitStatus::Garbage;
            break;
        }
        if framing == Framing::SkipWrapped && typ == *b"skip" && hdr_len == 8 && size >= 16 {
            let mut inner = [0u8; 8];
            let got = s.read_some(&mut inner)?;
            let wraps_moof = got == 8
                && inner[4..] == *b"moof"
                && u64::from(u32::from_be_bytes(inner[..4].try_into().expect("4 bytes")))
                    == size - 8;
            if wraps_moof {
                units.push(Unit {
                    offset: cur_start,
                    len: box_start - cur_start,
                    sha256: cur.finalize_reset().into(),
                    status,
                });
                cur_start = box_start + 8;
                status = UnitStatus::Complete;
                progress(8);
            } else {
                cur.update(&hdr[..8]);
                progress(8);
            }
            cur.update(&inner[..got]);
            progress(got as u64);
            let body = size - 8 - got as u64;
            if got < 8 || s.hash_n(body, &mut cur, progress)? < body {
                status = UnitStatus::Truncated;
                break;
            }
            continue;
        }
        if typ == *b"moof" {
            units.push(Unit {
                offset: cur_start,
                len: box_start - cur_start,
                sha256: cur.finalize_reset().into(),
                status,
            });
            cur_start = box_start;
            status = UnitStatus::Complete;
        }
        cur.update(&hdr[..hdr_len]);
        progress(hdr_len as u64);
        let body = size - hdr_len as u64;
        let got = s.hash_n(body, &mut cur, progress)?;
        if got < body {
            status = UnitStatus::Truncated;
            break;
        }
    }
    // Bytes the reader delivered beyond the announced length (file grew meanwhile) are ignored.
    units.push(Unit {
        offset: cur_start,
        len: s.pos - cur_start,
        sha256: cur.finalize().into(),
        status,
    });
    let mut it = units.into_iter();
    let init = it.next().expect("at least the init unit");
    Ok(Scanned {
        file_len: s.pos,
        init,
        fragments: it.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(t: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(t);
        v.extend_from_slice(payload);
        v
    }

    fn sample() -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut init = mp4_box(b"ftyp", b"isom\0\0\0\0");
        init.extend(mp4_box(b"moov", &[1; 50]));
        let mut frags = Vec::new();
        for i in 0..3u8 {
            let mut f = mp4_box(b"moof", &[i; 20]);
            f.extend(mp4_box(b"mdat", &vec![i; 100 + i as usize]));
            frags.push(f);
        }
        (init, frags)
    }

    fn run(bytes: &[u8]) -> Scanned {
        scan_reader(bytes, bytes.len() as u64, &mut |_| {}).unwrap()
    }

    #[test]
    fn splits_init_and_fragments_with_exact_hashes() {
        let (init, frags) = sample();
        let mut file = init.clone();
        for f in &frags {
            file.extend_from_slice(f);
        }
        let mut seen = 0;
        let s = scan_reader(&file[..], file.len() as u64, &mut |n| seen += n).unwrap();
        assert_eq!(seen, file.len() as u64);
        assert_eq!(s.init.len, init.len() as u64);
        assert_eq!(s.init.sha256, crate::writer::sha256(&init));
        assert_eq!(s.fragments.len(), 3);
        let mut off = init.len() as u64;
        for (u, f) in s.fragments.iter().zip(&frags) {
            assert_eq!(u.offset, off);
            assert_eq!(u.len, f.len() as u64);
            assert_eq!(u.sha256, crate::writer::sha256(f));
            assert_eq!(u.status, UnitStatus::Complete);
            off += f.len() as u64;
        }
    }

    #[test]
    fn truncation_and_garbage_are_marked() {
        let (init, frags) = sample();
        let mut file = init.clone();
        file.extend_from_slice(&frags[0]);
        file.extend_from_slice(&frags[1][..30]);
        let s = run(&file);
        assert_eq!(s.fragments.len(), 2);
        assert_eq!(s.fragments[1].status, UnitStatus::Truncated);
        assert_eq!(s.fragments[1].len, 30);

        let mut file = init.clone();
        file.extend_from_slice(&frags[0]);
        file.extend_from_slice(&[0xff, 0xfe, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 9, 9, 9]);
        let s = run(&file);
        assert_eq!(s.fragments.len(), 2);
        assert_eq!(s.fragments[0].status, UnitStatus::Complete);
        assert_eq!(s.fragments[1].status, UnitStatus::Garbage);
        assert_eq!(s.fragments[1].len, 11);

        // Three stray bytes: an incomplete box header.
        let mut file = init.clone();
        file.extend_from_slice(&[1, 2, 3]);
        let s = run(&file);
        assert_eq!(s.init.status, UnitStatus::Truncated);
        assert_eq!(s.init.len, init.len() as u64 + 3);

        assert_eq!(run(&[]).init.len, 0);
        let s = run(&[0, 0, 0, 4, b'm', b'o', b'o', b'f']);
        assert_eq!(s.init.status, UnitStatus::Garbage);
    }

    #[test]
    fn skip_wrapped_moofs_start_fragments_without_their_skip_header() {
        let (init, frags) = sample();
        let mut file = init.clone();
        let mut offsets = Vec::new();
        for f in &frags {
            let moof_len = 28u32;
            file.extend_from_slice(&(moof_len + 8).to_be_bytes());
            file.extend_from_slice(b"skip");
            offsets.push(file.len() as u64);
            file.extend_from_slice(f);
        }
        // Free space that wraps something else stays inside the unit it is in.
        let free = mp4_box(b"skip", &mp4_box(b"free", &[0; 4]));
        file.extend_from_slice(&free);
        let s = scan_reader_as(
            &file[..],
            file.len() as u64,
            Framing::SkipWrapped,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(s.init.len, init.len() as u64);
        assert_eq!(s.fragments.len(), 3);
        for (k, (u, f)) in s.fragments.iter().zip(&frags).enumerate() {
            assert_eq!(u.offset, offsets[k]);
            assert_eq!(u.status, UnitStatus::Complete);
            if k < 2 {
                assert_eq!(u.len, f.len() as u64);
                assert_eq!(u.sha256, crate::writer::sha256(f));
            } else {
                let mut tail = f.clone();
                tail.extend_from_slice(&free);
                assert_eq!(u.sha256, crate::writer::sha256(&tail));
            }
        }
        // Read as plain fragments, the same file has no fragment at all.
        assert!(run(&file).fragments.is_empty());
        // A skip holding more than one moof is not a wrapper: its bytes stay in the init.
        let mut other = init.clone();
        other.extend_from_slice(&40u32.to_be_bytes());
        other.extend_from_slice(b"skip");
        other.extend_from_slice(&frags[0][..32]);
        let s = scan_reader_as(
            &other[..],
            other.len() as u64,
            Framing::SkipWrapped,
            &mut |_| {},
        )
        .unwrap();
        assert!(s.fragments.is_empty());
        assert_eq!(s.init.len, other.len() as u64);
        assert_eq!(s.init.status, UnitStatus::Complete);
        // A wrapper cut short is a truncated fragment.
        let mut cut = init.clone();
        cut.extend_from_slice(&36u32.to_be_bytes());
        cut.extend_from_slice(b"skip");
        cut.extend_from_slice(&frags[0][..12]);
        let s = scan_reader_as(
            &cut[..],
            cut.len() as u64,
            Framing::SkipWrapped,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(s.fragments.len(), 1);
        assert_eq!(s.fragments[0].status, UnitStatus::Truncated);
        assert_eq!(s.fragments[0].len, 12);
    }

    #[test]
    fn size_zero_and_largesize_boxes() {
        let (init, _) = sample();
        let mut file = init.clone();
        let mut f = mp4_box(b"moof", &[7; 12]);
        let mut big = 1u32.to_be_bytes().to_vec();
        big.extend_from_slice(b"mdat");
        big.extend_from_slice(&(16u64 + 5).to_be_bytes());
        big.extend_from_slice(&[5; 5]);
        f.extend_from_slice(&big);
        file.extend_from_slice(&f);
        let mut last = 0u32.to_be_bytes().to_vec();
        last.extend_from_slice(b"moof");
        last.extend_from_slice(&[1; 40]);
        file.extend_from_slice(&last);
        let s = run(&file);
        assert_eq!(s.fragments.len(), 2);
        assert_eq!(s.fragments[0].len, f.len() as u64);
        assert_eq!(s.fragments[1].len, last.len() as u64);
        assert!(s.fragments.iter().all(|u| u.status == UnitStatus::Complete));
    }
}
