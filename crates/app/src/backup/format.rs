//! The encrypted container of a backup file (docs/backup.md, "File format"): a header with the
//! Argon2id parameters, salt and a key check, then the plaintext (a tar stream) in chunks of at
//! most 1 MiB, each sealed with ChaCha20-Poly1305 under a nonce made of a random prefix, the
//! chunk's number and a last-chunk flag (the STREAM construction), so chunks cannot be
//! reordered, dropped, repeated or cut off at the end without the reader noticing.

use std::io::{self, Read, Write};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use vigil_signing::record::read_full;
use zeroize::Zeroizing;

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"VIGILBK\n";
/// The container version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
/// magic, version, kdf, m, t, p, salt, nonce prefix, key check.
pub const HEADER_LEN: usize = 8 + 1 + 1 + 4 + 4 + 4 + 16 + 7 + 32;
/// Plaintext bytes per chunk: the writer fills chunks to this size; the reader refuses longer.
pub const CHUNK_LEN: usize = 1 << 20;
const TAG_LEN: usize = 16;

/// Argon2id cost written into new backups: 64 MiB, 3 passes, 1 lane (docs/backup.md).
pub const WRITE_COST: KdfCost = KdfCost {
    m_kib: 64 * 1024,
    t: 3,
    p: 1,
};
/// The most a file may ask of the reader, so a crafted header cannot exhaust memory or time.
const MAX_M_KIB: u32 = 1024 * 1024;
const MAX_T: u32 = 16;
const MAX_P: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfCost {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("not a Vigil backup file (it does not start with the backup magic)")]
    NotABackup,
    #[error("backup format version {0} is not supported by this Vigil (it reads version 1)")]
    UnsupportedVersion(u8),
    #[error("the backup header is damaged: {0}")]
    BadHeader(String),
    #[error("wrong passphrase: it is not the one this backup was made with")]
    WrongPassphrase,
    #[error("the backup file is damaged: chunk {0} does not authenticate")]
    Damaged(u32),
    #[error("the backup file is truncated: it ends before its last chunk")]
    Truncated,
    #[error("the backup file has data after its last chunk")]
    TrailingData,
    #[error(
        "the backup file is damaged: chunk {chunk} claims {len} bytes, more than a chunk holds"
    )]
    ChunkTooLong { chunk: u32, len: u32 },
    #[error("the backup has more chunks than the format allows")]
    TooManyChunks,
}

/// The parsed, not yet authenticated, header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub cost: KdfCost,
    pub salt: [u8; 16],
    pub nonce_prefix: [u8; 7],
    pub key_check: [u8; 32],
    bytes: [u8; HEADER_LEN],
}

impl Header {
    /// Parses and bounds-checks a header (the first [`HEADER_LEN`] bytes of a file).
    pub fn parse(b: &[u8]) -> Result<Header, FormatError> {
        if b.len() < MAGIC.len() || &b[..MAGIC.len()] != MAGIC {
            return Err(FormatError::NotABackup);
        }
        if b.len() < HEADER_LEN {
            return Err(FormatError::Truncated);
        }
        if b[8] != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(b[8]));
        }
        if b[9] != KDF_ARGON2ID {
            return Err(FormatError::BadHeader(format!(
                "unknown key derivation {}",
                b[9]
            )));
        }
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        let cost = KdfCost {
            m_kib: u32_at(10),
            t: u32_at(14),
            p: u32_at(18),
        };
        if cost.p == 0 || cost.p > MAX_P || cost.t == 0 || cost.t > MAX_T {
            return Err(FormatError::BadHeader(format!(
                "Argon2id passes {} and lanes {} are outside 1..={MAX_T} and 1..={MAX_P}",
                cost.t, cost.p
            )));
        }
        if cost.m_kib < 8 * cost.p || cost.m_kib > MAX_M_KIB {
            return Err(FormatError::BadHeader(format!(
                "Argon2id memory {} KiB is outside {}..={MAX_M_KIB} KiB",
                cost.m_kib,
                8 * cost.p
            )));
        }
        let mut h = Header {
            cost,
            salt: b[22..38].try_into().unwrap(),
            nonce_prefix: b[38..45].try_into().unwrap(),
            key_check: b[45..77].try_into().unwrap(),
            bytes: [0; HEADER_LEN],
        };
        h.bytes.copy_from_slice(&b[..HEADER_LEN]);
        Ok(h)
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8] = FORMAT_VERSION;
        b[9] = KDF_ARGON2ID;
        b[10..14].copy_from_slice(&self.cost.m_kib.to_be_bytes());
        b[14..18].copy_from_slice(&self.cost.t.to_be_bytes());
        b[18..22].copy_from_slice(&self.cost.p.to_be_bytes());
        b[22..38].copy_from_slice(&self.salt);
        b[38..45].copy_from_slice(&self.nonce_prefix);
        b[45..77].copy_from_slice(&self.key_check);
        b
    }
}

/// Argon2id(passphrase, salt) to 64 bytes: the first 32 are the key, the last 32 the check
/// stored in the header (which tells a wrong passphrase from a damaged file).
fn derive(passphrase: &[u8], salt: &[u8; 16], cost: KdfCost) -> Zeroizing<[u8; 64]> {
    let params = Params::new(cost.m_kib, cost.t, cost.p, Some(64)).expect("bounded parameters");
    let mut out = Zeroizing::new([0u8; 64]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, out.as_mut())
        .expect("valid output length and salt");
    out
}

fn nonce(prefix: &[u8; 7], chunk: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&chunk.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::from(n)
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).expect("the system's random source");
    b
}

/// Writes a backup file: header now, then the plaintext written into it in sealed chunks;
/// [`SealingWriter::finish`] seals the last chunk. A writer dropped without `finish` leaves a
/// file every reader reports as truncated.
pub struct SealingWriter<W: Write> {
    inner: W,
    cipher: ChaCha20Poly1305,
    header: Header,
    buf: Vec<u8>,
    chunk: u32,
}

impl<W: Write> SealingWriter<W> {
    pub fn new(mut inner: W, passphrase: &[u8], cost: KdfCost) -> io::Result<Self> {
        let salt = random::<16>();
        let out = derive(passphrase, &salt, cost);
        let mut header = Header {
            cost,
            salt,
            nonce_prefix: random::<7>(),
            key_check: out[32..].try_into().unwrap(),
            bytes: [0; HEADER_LEN],
        };
        header.bytes = header.encode();
        inner.write_all(&header.bytes)?;
        Ok(SealingWriter {
            inner,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&out[..32])),
            header,
            buf: Vec::with_capacity(CHUNK_LEN),
            chunk: 0,
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let n = nonce(&self.header.nonce_prefix, self.chunk, last);
        let sealed = self
            .cipher
            .encrypt(
                &n,
                Payload {
                    msg: &self.buf,
                    aad: &self.header.bytes,
                },
            )
            .map_err(|_| io::Error::other("sealing a backup chunk failed"))?;
        self.inner.write_all(&(sealed.len() as u32).to_be_bytes())?;
        self.inner.write_all(&sealed)?;
        self.buf.clear();
        self.chunk = self
            .chunk
            .checked_add(1)
            .ok_or_else(|| io::Error::other(FormatError::TooManyChunks))?;
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer (flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() == CHUNK_LEN {
            self.seal(false)?;
        }
        let n = data.len().min(CHUNK_LEN - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a backup file's plaintext, authenticating every chunk before handing out its bytes.
/// Errors are `io::Error`s carrying a [`FormatError`] (see [`format_error`]).
pub struct OpeningReader<R: Read> {
    inner: R,
    cipher: ChaCha20Poly1305,
    header: Header,
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    chunk: u32,
    done: bool,
}

/// The [`FormatError`] inside an I/O error from [`OpeningReader`], if it is one.
pub fn format_error(e: &io::Error) -> Option<&FormatError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<FormatError>())
}

fn fail(e: FormatError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<R: Read> OpeningReader<R> {
    /// Reads the header and derives the key from the passphrase.
    pub fn new(mut inner: R, passphrase: &[u8]) -> Result<Self, io::Error> {
        let header = read_header(&mut inner)?;
        let out = derive(passphrase, &header.salt, header.cost);
        // Not secret-dependent timing in any useful way (the check is public), but compare
        // in full anyway.
        let diff = out[32..]
            .iter()
            .zip(header.key_check.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(fail(FormatError::WrongPassphrase));
        }
        let key: [u8; 32] = out[..32].try_into().unwrap();
        Ok(Self::with_header(inner, header, &key))
    }

    /// Reads the header and uses `key` directly, without the key derivation or its check
    /// (for the fuzz target, which would otherwise spend its time in Argon2id).
    pub fn with_key(mut inner: R, key: &[u8; 32]) -> Result<Self, io::Error> {
        let header = read_header(&mut inner)?;
        Ok(Self::with_header(inner, header, key))
    }

    fn with_header(inner: R, header: Header, key: &[u8; 32]) -> Self {
        OpeningReader {
            inner,
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
            header,
            plain: Zeroizing::new(Vec::new()),
            pos: 0,
            chunk: 0,
            done: false,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Opens the next chunk into `self.plain`.
    fn next_chunk(&mut self) -> io::Result<()> {
        let mut len = [0u8; 4];
        if read_full(&mut self.inner, &mut len)? < 4 {
            return Err(fail(FormatError::Truncated));
        }
        let len = u32::from_be_bytes(len);
        if len as usize > CHUNK_LEN + TAG_LEN || (len as usize) < TAG_LEN {
            return Err(fail(FormatError::ChunkTooLong {
                chunk: self.chunk,
                len,
            }));
        }
        let mut sealed = vec![0u8; len as usize];
        if read_full(&mut self.inner, &mut sealed)? < sealed.len() {
            return Err(fail(FormatError::Truncated));
        }
        // The flag is not in the file: try "more follows" first, then "last". A chunk sealed
        // as last opens only with the last flag, so the end cannot be moved.
        let aad = self.header.bytes;
        let open = |last: bool| {
            self.cipher.decrypt(
                &nonce(&self.header.nonce_prefix, self.chunk, last),
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
        };
        let (plain, last) = match open(false) {
            Ok(p) => (p, false),
            Err(_) => match open(true) {
                Ok(p) => (p, true),
                Err(_) => return Err(fail(FormatError::Damaged(self.chunk))),
            },
        };
        self.plain = Zeroizing::new(plain);
        self.pos = 0;
        self.chunk = self
            .chunk
            .checked_add(1)
            .ok_or_else(|| fail(FormatError::TooManyChunks))?;
        if last {
            let mut extra = [0u8; 1];
            if read_full(&mut self.inner, &mut extra)? != 0 {
                return Err(fail(FormatError::TrailingData));
            }
            self.done = true;
        }
        Ok(())
    }
}

fn read_header(r: &mut impl Read) -> io::Result<Header> {
    let mut b = [0u8; HEADER_LEN];
    let n = read_full(r, &mut b)?;
    Header::parse(&b[..n]).map_err(fail)
}

impl<R: Read> Read for OpeningReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: the tests check the container, not Argon2id's cost.
    const TEST_COST: KdfCost = KdfCost {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    fn seal(plain: &[u8], pass: &[u8]) -> Vec<u8> {
        let mut w = SealingWriter::new(Vec::new(), pass, TEST_COST).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap()
    }

    fn open(file: &[u8], pass: &[u8]) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        OpeningReader::new(file, pass)
            .and_then(|mut r| r.read_to_end(&mut out))
            .map_err(|e| format_error(&e).cloned().expect("a format error"))?;
        Ok(out)
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn round_trip_over_several_chunks_and_empty() {
        for len in [0, 1, CHUNK_LEN, CHUNK_LEN + 1, 2 * CHUNK_LEN + 17] {
            let plain = sample(len);
            let file = seal(&plain, b"passphrase one");
            assert_eq!(open(&file, b"passphrase one").unwrap(), plain, "{len}");
        }
    }

    #[test]
    fn a_wrong_passphrase_is_told_apart_from_damage() {
        let file = seal(b"secret", b"passphrase one");
        assert_eq!(
            open(&file, b"passphrase two"),
            Err(FormatError::WrongPassphrase)
        );
    }

    #[test]
    fn every_kind_of_damage_is_reported() {
        let plain = sample(CHUNK_LEN + 100);
        let file = seal(&plain, b"pw");
        // A flipped bit in the first chunk, and in the header (which every chunk authenticates).
        let mut f = file.clone();
        f[HEADER_LEN + 10] ^= 1;
        assert_eq!(open(&f, b"pw"), Err(FormatError::Damaged(0)));
        let mut f = file.clone();
        f[40] ^= 1; // nonce prefix
        assert_eq!(open(&f, b"pw"), Err(FormatError::Damaged(0)));
        // Cut anywhere: truncated, including exactly at a chunk boundary (the last chunk gone).
        let first_chunk_end = HEADER_LEN + 4 + CHUNK_LEN + TAG_LEN;
        for cut in [
            HEADER_LEN - 1,
            HEADER_LEN,
            HEADER_LEN + 3,
            first_chunk_end,
            file.len() - 1,
        ] {
            let got = open(&file[..cut], b"pw");
            assert_eq!(got, Err(FormatError::Truncated), "cut at {cut}");
        }
        let mut f = file.clone();
        f.push(0);
        assert_eq!(open(&f, b"pw"), Err(FormatError::TrailingData));
        // Chunks swapped or the last one repeated do not authenticate at their new place.
        let second = file[first_chunk_end..].to_vec();
        let mut f = file[..HEADER_LEN].to_vec();
        f.extend_from_slice(&second);
        f.extend_from_slice(&file[HEADER_LEN..first_chunk_end]);
        assert_eq!(open(&f, b"pw"), Err(FormatError::Damaged(0)));
        let mut f = file.clone();
        f[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            open(&f, b"pw"),
            Err(FormatError::ChunkTooLong { .. })
        ));
    }

    #[test]
    fn headers_that_are_not_ours_or_ask_too_much_are_refused() {
        assert_eq!(open(b"", b"pw"), Err(FormatError::NotABackup));
        assert_eq!(
            open(b"PK\x03\x04 a zip file", b"pw"),
            Err(FormatError::NotABackup)
        );
        let file = seal(b"x", b"pw");
        let mut f = file.clone();
        f[8] = 2;
        assert_eq!(open(&f, b"pw"), Err(FormatError::UnsupportedVersion(2)));
        for (at, value) in [
            (10, MAX_M_KIB + 1),
            (10, 7),
            (14, 0),
            (14, MAX_T + 1),
            (18, 0),
        ] {
            let mut f = file.clone();
            f[at..at + 4].copy_from_slice(&value.to_be_bytes());
            assert!(
                matches!(open(&f, b"pw"), Err(FormatError::BadHeader(_))),
                "{at}={value}"
            );
        }
    }

    #[test]
    fn the_written_cost_is_the_documented_one() {
        let mut w = SealingWriter::new(Vec::new(), b"pw", WRITE_COST).unwrap();
        w.write_all(b"x").unwrap();
        let file = w.finish().unwrap();
        let h = Header::parse(&file).unwrap();
        assert_eq!(h.cost, WRITE_COST);
        assert_eq!((h.cost.m_kib, h.cost.t, h.cost.p), (65536, 3, 1));
    }
}
