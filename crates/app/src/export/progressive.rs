//! The plain MP4 export as pieces: the progressive layout of [`vigil_media::progressive`]
//! (its `ftyp`, `moov` and `mdat` header made here, every run of samples a byte range of a
//! segment file). Only the recorded init and each fragment's `moof` are read.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use vigil_media::export::Run;
use vigil_media::fmp4::{self, FragmentSamples};
use vigil_media::progressive;
use vigil_media::store::{Camera, GopRow, Store};
use vigil_signing::bundle::presentation::Timeline;

use super::{ExportError, Mp4Part, Piece};

/// Bytes read at the start of each fragment: its `moof` and the `mdat` header after it, in one
/// read for GOPs of up to about a thousand frames.
const HEAD: u64 = 16 * 1024;

/// Reads the start of each fragment, keeping the current segment file open.
struct Heads<'a> {
    store: &'a Store,
    cam: &'a Camera,
    open: Option<(i64, File)>,
}

impl Heads<'_> {
    fn read(&mut self, seq: i64, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        if self.open.as_ref().is_none_or(|(s, _)| *s != seq) {
            let path = self.store.segment_path(&self.cam.id, seq);
            let f = File::open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            self.open = Some((seq, f));
        }
        let (_, f) = self.open.as_mut().expect("opened above");
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// The `moof` and `mdat` header of a GOP's fragment (fewer bytes if the fragment is
    /// shorter: parsing then says what is missing).
    fn head(&mut self, g: &GopRow) -> io::Result<Vec<u8>> {
        let (offset, len) = (g.offset as u64, g.len as u64);
        let mut head = self.read(g.seq, offset, HEAD.min(len))?;
        let moof_len = match head
            .get(..4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        {
            Some(1) => head
                .get(8..16)
                .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes"))),
            Some(n) => u64::from(n),
            None => 0,
        };
        let need = moof_len.saturating_add(16).min(len);
        if need > head.len() as u64 {
            head = self.read(g.seq, offset, need)?;
        }
        Ok(head)
    }
}

/// The plain MP4 of one run of GOPs.
pub(super) fn part_layout(store: &Store, cam: &Camera, run: Run) -> Result<Mp4Part, ExportError> {
    let recorded = |detail: String| ExportError::Recorded {
        camera: cam.name.clone(),
        detail,
    };
    let init = store.read_segment_range(&cam.id, run.init_seq, 0, run.init_len)?;
    let defaults = progressive::track_defaults(&init)
        .map_err(|e| recorded(format!("segment {}: {e}", run.init_seq)))?;
    let mut heads = Heads {
        store,
        cam,
        open: None,
    };
    let fragments = run
        .gops
        .iter()
        .map(|g| {
            let at = || format!("segment {} GOP {}", g.seq, g.gop_no);
            let head = heads
                .head(g)
                .map_err(|e| recorded(format!("{}: {e}", at())))?;
            fmp4::fragment_samples(&head, g.len as u64, defaults)
                .map_err(|e| recorded(format!("{}: {e}", at())))
        })
        .collect::<Result<Vec<FragmentSamples>, _>>()?;
    drop(heads);
    // A long recording gap is written at a coarser media timescale; what not even one tick
    // per second can hold (a gap of 136 years) is a broken recording.
    let layout = progressive::layout(
        &init,
        &fragments,
        run.start_us(),
        progressive::Body::Samples,
    )
    .map_err(|e| recorded(format!("segment {}: {e}", run.init_seq)))?;
    let mut etag = Sha256::new();
    etag.update(b"progressive");
    etag.update(cam.id.as_bytes());
    etag.update(run.init_seq.to_le_bytes());
    etag.update(Sha256::digest(&layout.header));
    for g in &run.gops {
        etag.update(g.seq.to_le_bytes());
        etag.update(g.offset.to_le_bytes());
        etag.update(g.len.to_le_bytes());
        etag.update(&g.sha256);
    }
    let mut pieces = Vec::with_capacity(layout.chunks.len() + 1);
    pieces.push(Piece::Bytes(Bytes::from(layout.header)));
    for c in &layout.chunks {
        let g = &run.gops[c.fragment];
        pieces.push(Piece::File {
            path: store.segment_path(&cam.id, g.seq),
            offset: g.offset as u64 + c.offset,
            len: c.len,
        });
    }
    let total = pieces.iter().map(Piece::len).sum();
    debug_assert_eq!(total, layout.len);
    Ok(Mp4Part {
        total,
        pieces,
        etag: format!("\"{}\"", hex::encode(&etag.finalize()[..16])),
        start_us: run.start_us(),
        end_us: run.end_us(),
        frames: run.frames(),
        timeline: Timeline {
            media_time: fragments[0].base_decode_time.unwrap_or(0),
            duration: layout.duration,
            start_us: run.start_us(),
        },
        gops: run.gops,
    })
}
