//! The plain MP4 export: recorded fragments laid out as one progressive (non-fragmented) MP4.
//!
//! Recorded fragments carry absolute decode times (`tfdt`, ticks since the camera's time
//! origin). An edit list starts a fragmented clip at 0, but ffmpeg (and Chromium, which plays
//! `<video src>` with ffmpeg's MP4 demuxer) take a fragmented track's duration from where its
//! last fragment ends on that absolute timeline: a 6 s clip cut 10 s into a recording shows as
//! 16 s long, one cut 30 days in as 30 days. A progressive MP4 has no decode times of its own,
//! only sample durations from 0, so every player shows exactly the clip.
//!
//! The file is `ftyp` (recorded), `moov`, then one `mdat` holding the recorded sample bytes in
//! decode order. The `moov` is the recorded init's with complete sample tables (`stts`, `ctts`
//! with composition offsets, `stss`, `stsz`, `stsc`, `stco` or `co64`), the `stsd` as
//! recorded, no `mvex`, and the wall-clock metadata of the export's presentation init
//! ([`vigil_signing::bundle::presentation`]): version-1 headers created at the clip's start and
//! the `©day` item with its exact start. Everything is computed from the fragments' `moof`s
//! ([`crate::fmp4::fragment_samples`]), so the sample bytes can be served straight from the
//! segment files as one byte range per recorded run of samples.
//!
//! The decode timeline is the recorded one shifted to 0: a fragment starts at its `tfdt` minus
//! the first fragment's, so a hole in the recording (a gap) is covered by the last sample before
//! it, and a time in the file is still the wall-clock time since the clip's start. Composition
//! offsets are written non-negative (`ctts` version 0); when that moves the first presented
//! frame off 0 (B-frames), an edit list starts the presentation there.
//!
//! The evidence bundle keeps the fragmented form (`video.mp4`: presentation init and the
//! fragments byte for byte), which a verifier can rebuild and compare with what the ledger
//! signed; this layout is for watching.

use mp4_atom::{
    Co64, Ctts, CttsEntry, Decode, Encode, Stco, Stsc, StscEntry, Stss, Stsz, StszSamples, Stts,
    SttsEntry, Trex,
};
use vigil_signing::bundle::presentation::{
    self, Mp4Box, PresentationError, box_header, boxes, copied_child, day_udta, edit_list,
    header_v1, init_parts, mp4_box, only, refuse_user_data,
};

use crate::fmp4::{FragmentSamples, TrackDefaults};

#[derive(Debug, thiserror::Error)]
pub enum ProgressiveError {
    #[error("the recorded init: {0}")]
    Init(#[from] PresentationError),
    #[error("the recorded init: {0}")]
    InitBox(String),
    #[error("no fragments to lay out")]
    Empty,
    /// Fragment `index` (0-based) lists runs whose sample counts do not add up to its samples.
    #[error("fragment {index}: its runs do not add up to its samples")]
    Runs { index: usize },
    /// Fragment `index` (0-based) starts before the previous fragment's last sample.
    #[error("fragment {index} starts {ticks} ticks before the previous fragment's last sample")]
    Overlap { index: usize, ticks: u64 },
    /// A hole in the recorded timeline before fragment `index` (0-based) that one sample
    /// cannot cover: `stts` durations are 32-bit (about 13 h at 90 kHz).
    #[error(
        "a recording gap of {:.1} s before fragment {index} is longer than one video frame of an MP4 can last ({:.1} s)",
        *.ticks as f64 / f64::from(*.timescale),
        f64::from(u32::MAX) / f64::from(*.timescale)
    )]
    GapTooLong {
        index: usize,
        ticks: u64,
        timescale: u32,
    },
    #[error("the clip holds more samples or ticks than an MP4 track can")]
    TooLong,
    #[error("cannot write the sample tables: {0}")]
    Encode(#[from] mp4_atom::Error),
}

/// The per-sample defaults (`trex`) of the recorded init's one track.
pub fn track_defaults(recorded_init: &[u8]) -> Result<TrackDefaults, ProgressiveError> {
    let (_, moov) = init_parts(recorded_init)?;
    let mvex = only(&moov, b"mvex", "moov")?;
    let kids = boxes(mvex.payload(), "mvex")?;
    let trex = only(&kids, b"trex", "mvex")?;
    let trex = Trex::decode(&mut &trex.bytes[..])
        .map_err(|e| ProgressiveError::InitBox(format!("unreadable trex: {e}")))?;
    Ok(TrackDefaults {
        track_id: trex.track_id,
        duration: trex.default_sample_duration,
        size: trex.default_sample_size,
        flags: trex.default_sample_flags,
    })
}

/// Where the bytes of one chunk of the `mdat` come from: `len` bytes at `offset` of fragment
/// `fragment` (counted from its `moof`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub fragment: usize,
    pub offset: u64,
    pub len: u64,
}

/// A progressive MP4: `header` (`ftyp`, `moov` and the `mdat` header), then the bytes of every
/// chunk in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub header: Vec<u8>,
    pub chunks: Vec<Chunk>,
    /// Length of the clip in the movie timescale (`mvhd`, `tkhd`).
    pub duration: u64,
    pub samples: u64,
    /// Bytes of the whole file.
    pub len: u64,
}

/// The sample tables of the clip, built from the fragments.
struct Tables {
    /// `stts`, `ctts` (if any), `stss`, `stsz`, `stsc`, encoded.
    boxes: Vec<u8>,
    chunks: Vec<Chunk>,
    /// Sum of the sample durations, media timescale.
    duration: u64,
    /// Composition time of the first presented sample after making offsets non-negative.
    first_presented: u64,
    samples: u64,
}

/// Run-length entries of `(count, value)`.
fn run_lengths<T: PartialEq + Copy>(values: impl IntoIterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((n, last)) if *last == v && *n < u32::MAX => *n += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

fn tables(fragments: &[FragmentSamples], timescale: u32) -> Result<Tables, ProgressiveError> {
    let total: usize = fragments.iter().map(|f| f.samples.len()).sum();
    if total == 0 {
        return Err(ProgressiveError::Empty);
    }
    if u32::try_from(total).is_err() {
        return Err(ProgressiveError::TooLong);
    }
    let origin = fragments[0].base_decode_time.unwrap_or(0);
    let mut durations: Vec<u32> = Vec::with_capacity(total);
    let mut offsets: Vec<i32> = Vec::with_capacity(total);
    let mut sizes: Vec<u32> = Vec::with_capacity(total);
    let mut sync: Vec<u32> = Vec::new();
    let mut chunk_samples: Vec<u32> = Vec::new();
    let mut chunks = Vec::new();
    // Decode time where the next sample starts, relative to the first fragment.
    let mut end = 0u64;
    for (index, f) in fragments.iter().enumerate() {
        if let (Some(t), Some(last)) = (f.base_decode_time, durations.last_mut()) {
            let start = t
                .checked_sub(origin)
                .ok_or_else(|| ProgressiveError::Overlap {
                    index,
                    ticks: end + (origin - t),
                })?;
            if start != end {
                // The previous fragment's last sample lasts until this one starts.
                let last_start = end - u64::from(*last);
                let stretched = start
                    .checked_sub(last_start)
                    .filter(|d| *d > 0)
                    .ok_or_else(|| ProgressiveError::Overlap {
                        index,
                        ticks: end - start,
                    })?;
                *last = u32::try_from(stretched).map_err(|_| ProgressiveError::GapTooLong {
                    index,
                    ticks: start - end,
                    timescale,
                })?;
                end = start;
            }
        }
        let mut run_start = 0usize;
        for run in &f.runs {
            let n = run.samples as usize;
            let Some(samples) = f.samples.get(run_start..run_start + n) else {
                return Err(ProgressiveError::Runs { index });
            };
            run_start += n;
            if n == 0 {
                continue;
            }
            for s in samples {
                durations.push(s.duration);
                offsets.push(s.composition_offset);
                sizes.push(s.size);
                if s.is_sync {
                    sync.push(sizes.len() as u32);
                }
                end = end
                    .checked_add(u64::from(s.duration))
                    .ok_or(ProgressiveError::TooLong)?;
            }
            chunk_samples.push(run.samples);
            chunks.push(Chunk {
                fragment: index,
                offset: run.offset,
                len: run.len,
            });
        }
        if run_start != f.samples.len() {
            return Err(ProgressiveError::Runs { index });
        }
    }
    // Offsets are written non-negative: the most negative one becomes 0.
    let shift = -i64::from(offsets.iter().copied().min().unwrap_or(0).min(0));
    let mut dts = 0u64;
    let mut first_presented = u64::MAX;
    for (d, o) in durations.iter().zip(&offsets) {
        first_presented = first_presented.min(dts.saturating_add((i64::from(*o) + shift) as u64));
        dts += u64::from(*d);
    }
    let mut out = Vec::new();
    Stts {
        entries: run_lengths(durations.iter().copied())
            .into_iter()
            .map(|(sample_count, sample_delta)| SttsEntry {
                sample_count,
                sample_delta,
            })
            .collect(),
    }
    .encode(&mut out)?;
    if offsets.iter().any(|o| i64::from(*o) + shift != 0) {
        Ctts {
            entries: run_lengths(offsets.iter().map(|o| i64::from(*o) + shift))
                .into_iter()
                .map(|(sample_count, sample_offset)| CttsEntry {
                    sample_count,
                    sample_offset,
                })
                .collect(),
        }
        .encode(&mut out)?;
    }
    Stss { entries: sync }.encode(&mut out)?;
    Stsz {
        samples: StszSamples::Different { sizes },
    }
    .encode(&mut out)?;
    let mut stsc: Vec<StscEntry> = Vec::new();
    for (i, n) in chunk_samples.iter().enumerate() {
        if stsc.last().is_none_or(|e| e.samples_per_chunk != *n) {
            stsc.push(StscEntry {
                first_chunk: i as u32 + 1,
                samples_per_chunk: *n,
                sample_description_index: 1,
            });
        }
    }
    Stsc { entries: stsc }.encode(&mut out)?;
    Ok(Tables {
        boxes: out,
        chunks,
        duration: end,
        first_presented,
        samples: total as u64,
    })
}

/// The chunk offset table: `stco`, or `co64` (`wide`) when an offset needs more than 32 bits.
/// The first chunk starts at `first`; `None` writes zeros, to learn the table's length.
fn chunk_offsets(
    first: Option<u64>,
    chunks: &[Chunk],
    wide: bool,
) -> Result<Vec<u8>, ProgressiveError> {
    let mut at = first.unwrap_or(0);
    let offsets = chunks.iter().map(|c| {
        let o = at;
        if first.is_some() {
            at += c.len;
        }
        o
    });
    let mut out = Vec::new();
    if wide {
        Co64 {
            entries: offsets.collect(),
        }
        .encode(&mut out)?;
    } else {
        Stco {
            entries: offsets
                .map(|o| u32::try_from(o).map_err(|_| ProgressiveError::TooLong))
                .collect::<Result<_, _>>()?,
        }
        .encode(&mut out)?;
    }
    Ok(out)
}

/// What the recorded `moov` becomes, given everything that is computed.
struct Rewrite<'a> {
    mp4_time: u64,
    movie_duration: u64,
    media_duration: u64,
    /// The edit list, if the first presented frame is not at 0.
    edit: Option<Vec<u8>>,
    tables: &'a [u8],
    start_us: i64,
}

impl Rewrite<'_> {
    fn moov(&self, moov: &[Mp4Box<'_>], chunk_offsets: &[u8]) -> Result<Vec<u8>, ProgressiveError> {
        let mut body = Vec::with_capacity(self.tables.len() + chunk_offsets.len() + 1024);
        for b in moov {
            match &b.kind {
                b"mvhd" => body.extend(header_v1(b, self.mp4_time, self.movie_duration)?),
                // Fragment defaults: a progressive file has no fragments.
                b"mvex" => {}
                b"trak" => body.extend(self.trak(b, chunk_offsets)?),
                _ => body.extend_from_slice(copied_child(b)?),
            }
        }
        body.extend(day_udta(self.start_us));
        Ok(mp4_box(b"moov", &body))
    }

    fn trak(&self, trak: &Mp4Box<'_>, chunk_offsets: &[u8]) -> Result<Vec<u8>, ProgressiveError> {
        let kids = boxes(trak.payload(), "trak")?;
        only(&kids, b"tkhd", "trak")?;
        only(&kids, b"mdia", "trak")?;
        if kids.iter().any(|k| &k.kind == b"edts") {
            return Err(PresentationError::Unsupported(
                "the recorded track already has an edit list".into(),
            )
            .into());
        }
        let mut body = Vec::new();
        for k in &kids {
            match &k.kind {
                b"tkhd" => {
                    body.extend(header_v1(k, self.mp4_time, self.movie_duration)?);
                    if let Some(edit) = &self.edit {
                        body.extend_from_slice(edit);
                    }
                }
                b"mdia" => body.extend(self.mdia(k, chunk_offsets)?),
                _ => body.extend_from_slice(copied_child(k)?),
            }
        }
        Ok(mp4_box(b"trak", &body))
    }

    fn mdia(&self, mdia: &Mp4Box<'_>, chunk_offsets: &[u8]) -> Result<Vec<u8>, ProgressiveError> {
        let kids = boxes(mdia.payload(), "mdia")?;
        only(&kids, b"mdhd", "mdia")?;
        only(&kids, b"minf", "mdia")?;
        let mut body = Vec::new();
        for k in &kids {
            match &k.kind {
                b"mdhd" => body.extend(header_v1(k, self.mp4_time, self.media_duration)?),
                b"minf" => {
                    let minf = boxes(k.payload(), "minf")?;
                    let stbl = only(&minf, b"stbl", "minf")?;
                    let mut m = Vec::new();
                    for b in &minf {
                        if &b.kind == b"stbl" {
                            m.extend(self.stbl(stbl, chunk_offsets)?);
                        } else {
                            m.extend_from_slice(copied_child(b)?);
                        }
                    }
                    body.extend(mp4_box(b"minf", &m));
                }
                _ => body.extend_from_slice(copied_child(k)?),
            }
        }
        Ok(mp4_box(b"mdia", &body))
    }

    /// The recorded `stsd`, then the clip's sample tables; the recorded (empty) tables go.
    fn stbl(&self, stbl: &Mp4Box<'_>, chunk_offsets: &[u8]) -> Result<Vec<u8>, ProgressiveError> {
        let kids = boxes(stbl.payload(), "stbl")?;
        let stsd = only(&kids, b"stsd", "stbl")?;
        let mut body = copied_child(stsd)?.to_vec();
        body.extend_from_slice(self.tables);
        body.extend_from_slice(chunk_offsets);
        Ok(mp4_box(b"stbl", &body))
    }
}

/// The progressive MP4 of `fragments` (in decode order, all described by `recorded_init`),
/// whose first fragment starts at `start_us` (unix microseconds, wall clock).
pub fn layout(
    recorded_init: &[u8],
    fragments: &[FragmentSamples],
    start_us: i64,
) -> Result<Layout, ProgressiveError> {
    let (ftyp, moov) = init_parts(recorded_init)?;
    refuse_user_data(&moov)?;
    let movie_timescale = presentation::timescale(only(&moov, b"mvhd", "moov")?)?;
    let trak = only(&moov, b"trak", "moov")?;
    let trak_kids = boxes(trak.payload(), "trak")?;
    let mdia = boxes(only(&trak_kids, b"mdia", "trak")?.payload(), "mdia")?;
    let media_timescale = presentation::timescale(only(&mdia, b"mdhd", "mdia")?)?;

    let t = tables(fragments, media_timescale)?;
    let movie_duration = u64::try_from(
        (u128::from(t.duration) * u128::from(movie_timescale))
            .div_ceil(u128::from(media_timescale)),
    )
    .map_err(|_| ProgressiveError::TooLong)?;
    let edit = match t.first_presented {
        0 => None,
        m => Some(edit_list(
            movie_duration,
            i64::try_from(m).map_err(|_| ProgressiveError::TooLong)?,
        )),
    };
    let rewrite = Rewrite {
        mp4_time: presentation::mp4_time(start_us)?,
        movie_duration,
        media_duration: t.duration,
        edit,
        tables: &t.boxes,
        start_us,
    };
    // No file holds more than 2^63 bytes; below that no offset computed here can overflow.
    let payload = t
        .chunks
        .iter()
        .try_fold(0u64, |sum, c| sum.checked_add(c.len))
        .filter(|p| i64::try_from(*p).is_ok())
        .ok_or(ProgressiveError::TooLong)?;
    let mdat = box_header(b"mdat", payload);
    let last = t.chunks.last().map_or(0, |c| c.len);
    // The offsets' width changes the moov's length, which moves every offset: lay out with
    // 32-bit offsets first, and with 64-bit ones if the last chunk then starts beyond 4 GiB.
    let mut wide = false;
    loop {
        let placeholder = chunk_offsets(None, &t.chunks, wide)?;
        let moov_len = rewrite.moov(&moov, &placeholder)?.len() as u64;
        let first = ftyp.len() as u64 + moov_len + mdat.len() as u64;
        if !wide && first + payload - last > u64::from(u32::MAX) {
            wide = true;
            continue;
        }
        let moov = rewrite.moov(&moov, &chunk_offsets(Some(first), &t.chunks, wide)?)?;
        debug_assert_eq!(moov.len() as u64, moov_len);
        let mut header = Vec::with_capacity(first as usize);
        header.extend_from_slice(ftyp);
        header.extend(moov);
        header.extend(mdat);
        return Ok(Layout {
            len: header.len() as u64 + payload,
            header,
            chunks: t.chunks,
            duration: movie_duration,
            samples: t.samples,
        });
    }
}

#[cfg(test)]
mod tests {
    use mp4_atom::{Avc1, Avcc, Codec, Moov, Visual};

    use super::*;
    use crate::fmp4::{self, SampleInfo, TrackParams, fragment_samples};
    use crate::gop::{Frame, gop_samples};

    const START_US: i64 = 1_700_000_000_250_000;

    fn init() -> Vec<u8> {
        let entry = Codec::Avc1(Avc1 {
            visual: Visual {
                data_reference_index: 1,
                width: 640,
                height: 480,
                ..Default::default()
            },
            avcc: Avcc::new(&[0x67, 0x4d, 0x40, 0x1e, 0xa0], &[0x68, 0xee, 0x3c, 0x80]).unwrap(),
            ..Default::default()
        });
        let mut sample_entry = Vec::new();
        entry.encode(&mut sample_entry).unwrap();
        fmp4::init_segment(&TrackParams {
            sample_entry,
            width: 640,
            height: 480,
            rfc6381: "avc1.4d401e".into(),
        })
        .unwrap()
    }

    /// A GOP of `n` frames at 30 fps from `pts0`, in decode order; with B-frames as
    /// I0 P3 B1 B2 P6 B4 B5 (presentation indices). Each frame's bytes name it.
    fn gop(pts0: i64, n: usize, bframes: bool, tag: u8) -> (Vec<u8>, Vec<u8>) {
        let order: Vec<usize> = if bframes {
            let mut o = vec![0];
            let mut i = 1;
            while i < n {
                let p = (i + 2).min(n - 1);
                o.push(p);
                o.extend(i..p);
                i = p + 1;
            }
            o
        } else {
            (0..n).collect()
        };
        let frames: Vec<Frame> = order
            .iter()
            .map(|&i| Frame {
                pts: pts0 + 3000 * i as i64,
                is_key: i == 0,
                data: vec![tag, i as u8, 0x5a, 0x5a, 0x5a],
            })
            .collect();
        let g = gop_samples(&frames, Some(pts0 + 3000 * n as i64), 3000);
        let data: Vec<u8> = frames.iter().flat_map(|f| f.data.clone()).collect();
        let frag = fmp4::fragment(u32::from(tag), g.base_decode_time, &g.samples, &data).unwrap();
        (frag, data)
    }

    fn parse(frag: &[u8]) -> FragmentSamples {
        fragment_samples(frag, frag.len() as u64, track_defaults(&init()).unwrap()).unwrap()
    }

    /// The file a layout describes, its chunks read from `frags`.
    fn file(l: &Layout, frags: &[Vec<u8>]) -> Vec<u8> {
        let mut out = l.header.clone();
        for c in &l.chunks {
            out.extend_from_slice(
                &frags[c.fragment][c.offset as usize..(c.offset + c.len) as usize],
            );
        }
        assert_eq!(out.len() as u64, l.len);
        out
    }

    fn moov_of(file: &[u8]) -> Moov {
        let top = boxes(file, "file").unwrap();
        let kinds: Vec<_> = top.iter().map(|b| b.kind).collect();
        assert_eq!(kinds, [*b"ftyp", *b"moov", *b"mdat"]);
        Moov::decode(&mut &top[1].bytes[..]).unwrap()
    }

    /// Where each sample lies in `file` according to the sample tables.
    fn sample_bytes(file: &[u8], moov: &Moov) -> Vec<Vec<u8>> {
        let stbl = &moov.trak[0].mdia.minf.stbl;
        let sizes = match &stbl.stsz.samples {
            StszSamples::Different { sizes } => sizes.clone(),
            StszSamples::Identical { .. } => panic!("sizes differ"),
        };
        let offsets: Vec<u64> = match (&stbl.stco, &stbl.co64) {
            (Some(s), None) => s.entries.iter().map(|&o| u64::from(o)).collect(),
            (None, Some(c)) => c.entries.clone(),
            _ => panic!("one chunk offset table"),
        };
        let mut per_chunk = Vec::new();
        for (i, e) in stbl.stsc.entries.iter().enumerate() {
            let next = stbl
                .stsc
                .entries
                .get(i + 1)
                .map_or(offsets.len() as u32 + 1, |n| n.first_chunk);
            for _ in e.first_chunk..next {
                per_chunk.push(e.samples_per_chunk);
            }
        }
        let mut out = Vec::new();
        let mut sizes = sizes.iter();
        for (offset, n) in offsets.iter().zip(per_chunk) {
            let mut at = *offset as usize;
            for _ in 0..n {
                let s = *sizes.next().unwrap() as usize;
                out.push(file[at..at + s].to_vec());
                at += s;
            }
        }
        assert!(sizes.next().is_none());
        out
    }

    #[test]
    fn b_frames_get_offsets_from_zero_and_an_edit_to_the_first_presented_frame() {
        let origin = 90_000 * 30 * 86_400; // 30 days into the camera's timeline
        let (f1, d1) = gop(origin, 7, true, 1);
        let (f2, d2) = gop(origin + 21_000, 7, true, 2);
        let frags = [f1, f2];
        let parsed: Vec<_> = frags.iter().map(|f| parse(f)).collect();
        let l = layout(&init(), &parsed, START_US).unwrap();
        assert_eq!(l.samples, 14);
        assert_eq!(l.duration, 42_000, "14 frames of 3000 ticks, from 0");
        assert_eq!(
            layout(&init(), &parsed, START_US).unwrap(),
            l,
            "deterministic"
        );
        let out = file(&l, &frags);
        let moov = moov_of(&out);
        assert_eq!(moov.mvhd.duration, 42_000);
        assert_eq!(
            moov.mvhd.creation_time,
            presentation::mp4_time(START_US).unwrap()
        );
        assert!(moov.mvex.is_none());
        let trak = &moov.trak[0];
        assert_eq!(trak.tkhd.duration, 42_000);
        assert_eq!(trak.mdia.mdhd.duration, 42_000);
        let stbl = &trak.mdia.minf.stbl;
        assert_eq!(
            stbl.stts.entries,
            [SttsEntry {
                sample_count: 14,
                sample_delta: 3000
            }]
        );
        // Decode order I0 P3 B1 B2 P6 B4 B5: offsets 0 +6000 -3000 -3000 +6000 -3000 -3000,
        // written +3000 so none is negative; the edit starts the presentation at I0 (3000).
        let ctts: Vec<i64> = stbl
            .ctts
            .as_ref()
            .unwrap()
            .entries
            .iter()
            .flat_map(|e| std::iter::repeat_n(e.sample_offset, e.sample_count as usize))
            .collect();
        let one = [3000, 9000, 0, 0, 9000, 0, 0];
        assert_eq!(ctts, [one, one].concat());
        let elst = &trak.edts.as_ref().unwrap().elst.as_ref().unwrap().entries;
        assert_eq!(elst.len(), 1);
        assert_eq!(elst[0].segment_duration, 42_000);
        assert_eq!(elst[0].media_time, Some(3000));
        assert_eq!(stbl.stss.as_ref().unwrap().entries, [1, 8]);
        assert_eq!(
            stbl.stsc.entries,
            [StscEntry {
                first_chunk: 1,
                samples_per_chunk: 7,
                sample_description_index: 1
            }]
        );
        assert!(stbl.co64.is_none());
        // The sample bytes are the recorded ones, in decode order.
        let samples = sample_bytes(&out, &moov);
        assert_eq!(samples.concat(), [d1, d2].concat());
        assert_eq!(samples[1], [1, 3, 0x5a, 0x5a, 0x5a]);
        // The stsd is the recorded one, byte for byte.
        let find = |buf: &[u8], kind: &[u8; 4]| buf.windows(4).position(|w| w == kind).unwrap();
        let (a, b) = (find(&init(), b"stsd") - 4, find(&out, b"stsd") - 4);
        let len = u32::from_be_bytes(init()[a..a + 4].try_into().unwrap()) as usize;
        assert_eq!(init()[a..a + len], out[b..b + len]);
        // The wall-clock start, to the microsecond.
        let day = find(&out, b"\xa9day");
        assert_eq!(&out[day + 8..day + 8 + 27], b"2023-11-14T22:13:20.250000Z");
    }

    #[test]
    fn without_b_frames_there_is_no_ctts_nor_edit() {
        let (f1, _) = gop(5_000_000, 30, false, 1);
        let (f2, _) = gop(5_090_000, 30, false, 2);
        let frags = [f1, f2];
        let parsed: Vec<_> = frags.iter().map(|f| parse(f)).collect();
        let l = layout(&init(), &parsed, START_US).unwrap();
        let moov = moov_of(&file(&l, &frags));
        let trak = &moov.trak[0];
        assert!(trak.edts.is_none());
        assert!(trak.mdia.minf.stbl.ctts.is_none());
        assert_eq!(trak.tkhd.duration, 180_000);
    }

    #[test]
    fn a_gap_is_held_by_the_last_frame_before_it_unless_it_is_too_long() {
        let (f1, _) = gop(0, 3, false, 1);
        // Recording resumes 10 s after the first GOP ended.
        let (f2, _) = gop(9000 + 900_000, 3, false, 2);
        let frags = [f1, f2];
        let parsed: Vec<_> = frags.iter().map(|f| parse(f)).collect();
        let l = layout(&init(), &parsed, START_US).unwrap();
        let moov = moov_of(&file(&l, &frags));
        let deltas: Vec<u32> = moov.trak[0]
            .mdia
            .minf
            .stbl
            .stts
            .entries
            .iter()
            .flat_map(|e| std::iter::repeat_n(e.sample_delta, e.sample_count as usize))
            .collect();
        assert_eq!(deltas, [3000, 3000, 903_000, 3000, 3000, 3000]);
        assert_eq!(
            l.duration, 918_000,
            "the file's time is wall-clock time since its start"
        );

        let mut far = parsed.clone();
        far[1].base_decode_time = Some(9000 + u64::from(u32::MAX));
        let e = layout(&init(), &far, START_US).unwrap_err();
        assert!(
            matches!(e, ProgressiveError::GapTooLong { index: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("longer than one video frame"), "{e}");
        // A fragment that starts before the previous one's last sample is refused.
        let mut back = parsed.clone();
        back[1].base_decode_time = Some(6000);
        let e = layout(&init(), &back, START_US).unwrap_err();
        assert!(
            matches!(e, ProgressiveError::Overlap { index: 1, .. }),
            "{e}"
        );
        // One that starts within the last sample shortens it.
        back[1].base_decode_time = Some(7000);
        assert_eq!(
            layout(&init(), &back, START_US).unwrap().duration,
            7000 + 9000
        );
    }

    #[test]
    fn offsets_beyond_4_gib_are_written_as_co64() {
        // Three runs of 2 GiB (the bytes are not needed to lay them out).
        let run = |offset| fmp4::SampleRun {
            offset,
            len: 2 << 30,
            samples: 1,
        };
        let frag = |t| FragmentSamples {
            base_decode_time: Some(t),
            samples: vec![SampleInfo {
                duration: 3000,
                size: 2 << 30,
                is_sync: true,
                composition_offset: 0,
            }],
            runs: vec![run(100)],
        };
        let l = layout(&init(), &[frag(0), frag(3000), frag(6000)], START_US).unwrap();
        let top = boxes(&l.header[..l.header.len() - 16], "header").unwrap();
        let mdat = &l.header[l.header.len() - 16..];
        assert_eq!(&mdat[..8], b"\0\0\0\x01mdat", "a 64-bit mdat header");
        assert_eq!(
            u64::from_be_bytes(mdat[8..].try_into().unwrap()),
            16 + (6 << 30)
        );
        let moov = Moov::decode(&mut &top[1].bytes[..]).unwrap();
        let stbl = &moov.trak[0].mdia.minf.stbl;
        assert!(stbl.stco.is_none());
        let first = l.header.len() as u64;
        assert_eq!(
            stbl.co64.as_ref().unwrap().entries,
            [first, first + (2 << 30), first + (4 << 30)]
        );
        assert_eq!(l.len, first + (6 << 30));
        // Below 4 GiB the same layout uses stco.
        let small = layout(&init(), &[frag(0)], START_US).unwrap();
        let top = boxes(&small.header[..small.header.len() - 8], "header").unwrap();
        let moov = Moov::decode(&mut &top[1].bytes[..]).unwrap();
        assert!(moov.trak[0].mdia.minf.stbl.stco.is_some());
    }

    #[test]
    fn what_cannot_be_laid_out_is_refused() {
        assert!(matches!(
            layout(&init(), &[], START_US),
            Err(ProgressiveError::Empty)
        ));
        let (f, _) = gop(0, 3, false, 1);
        let mut p = parse(&f);
        p.runs[0].samples = 2;
        assert!(matches!(
            layout(&init(), &[p], START_US),
            Err(ProgressiveError::Runs { index: 0 })
        ));
        let mut cut = init();
        cut.truncate(cut.len() - 5);
        assert!(matches!(
            layout(&cut, &[parse(&f)], START_US),
            Err(ProgressiveError::Init(_))
        ));
        assert!(track_defaults(&cut).is_err());
    }
}
