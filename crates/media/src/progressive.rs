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
//! Sample durations are 32-bit (`stts`): at the recorded 90 kHz one sample lasts at most about
//! 13.25 h, and players read composition offsets as signed 32-bit. When (and only when) a
//! stretched gap or the composition offsets do not fit at the recorded media timescale, the
//! track is written at a coarser one: the recorded timescale divided by its smallest divisor
//! `k` with which everything fits (45 kHz for a gap of up to 26.5 h, 15 kHz for 3 days; at
//! 1 kHz one sample can last 49.7 days, at 1 Hz 136 years). Times are rescaled on the
//! cumulative timeline (`round(t / k)`), so durations are differences of rounded times and
//! nothing drifts; each sample keeps at least one tick. `mvhd`, `tkhd` and the edit list stay
//! in the movie timescale. Sample sizes, bytes and chunks do not change.
//!
//! The evidence bundle's `video.mp4` uses the same tables over a different body
//! ([`Body::Fragments`], [`Evidence`]): every recorded fragment whole, byte for byte as the
//! ledger signed it, its `moof` inside a `skip` box that players pass over, so the chunk
//! offsets point into the fragments' own `mdat`s. A verifier rebuilds this header from the
//! signed init and fragments and compares bytes.

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
    /// Even at one tick per second (the coarsest timescale written) a sample or composition
    /// offset does not fit an MP4 track: a sample would last more than 2³² − 1 s (136 years).
    #[error(
        "the clip cannot be written as one MP4 track even at one tick per second: its longest sample (a recording gap held by the frame before it) lasts {:.0} s",
        *.longest_ticks as f64 / f64::from(*.timescale)
    )]
    Unrepresentable { longest_ticks: u64, timescale: u32 },
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

/// A progressive MP4: `header` (`ftyp`, `moov`, and for [`Body::Samples`] the `mdat` header),
/// then the body: the bytes of every chunk in order, or the wrapped fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub header: Vec<u8>,
    pub chunks: Vec<Chunk>,
    /// Length of the clip in the movie timescale (`mvhd`, `tkhd`).
    pub duration: u64,
    /// The track's timescale in the file (`mdhd`): the recorded one, or a divisor of it when
    /// the clip's times do not fit 32 bits at the recorded one.
    pub media_timescale: u32,
    pub samples: u64,
    /// Bytes of the whole file.
    pub len: u64,
}

/// The sample tables of the clip, built from the fragments.
struct Tables {
    /// `stts`, `ctts` (if any), `stss`, `stsz`, `stsc`, encoded.
    boxes: Vec<u8>,
    chunks: Vec<Chunk>,
    /// The media timescale of the tables.
    timescale: u32,
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

/// The clip's times in some media timescale.
struct Timing {
    durations: Vec<u32>,
    /// Composition offsets, non-negative.
    offsets: Vec<i64>,
    duration: u64,
    first_presented: u64,
}

/// The times of samples lasting `durations` with composition offsets `offsets` (ticks of the
/// recorded timescale, decode order from 0) in ticks `k` times as long, or `None` if a
/// duration does not fit `stts` or an offset `ctts` there.
///
/// Decode and composition times are rounded from the cumulative recorded ones (half up), so a
/// rounding error never adds up. With `k` > 1 every sample lasts at least one tick: one that
/// would round to nothing starts the next a tick later, which then lasts that much less.
/// With `k` = 1 the recorded times are kept exactly.
fn rescale(durations: &[u64], offsets: &[i32], k: u64) -> Option<Timing> {
    let k = i128::from(k);
    let round = |t: i128| (2 * t + k).div_euclid(2 * k);
    let mut out = Vec::with_capacity(durations.len());
    let mut cto = Vec::with_capacity(durations.len());
    // Recorded decode time of the sample, and its rescaled one.
    let (mut dts, mut at) = (0i128, 0i128);
    let mut first_composed = i128::MAX;
    for (d, o) in durations.iter().zip(offsets) {
        let composed = round(dts + i128::from(*o));
        first_composed = first_composed.min(composed);
        cto.push(i64::try_from(composed - at).ok()?);
        dts += i128::from(*d);
        let mut next = round(dts);
        if k > 1 {
            next = next.max(at + 1);
        }
        out.push(u32::try_from(next - at).ok()?);
        at = next;
    }
    // Offsets are written non-negative: the most negative one becomes 0. Players read them
    // as signed 32-bit numbers.
    let shift = -cto.iter().copied().min().unwrap_or(0).min(0);
    for o in &mut cto {
        *o += shift;
        if i32::try_from(*o).is_err() {
            return None;
        }
    }
    Some(Timing {
        durations: out,
        offsets: cto,
        duration: u64::try_from(at).ok()?,
        first_presented: u64::try_from(first_composed + i128::from(shift)).ok()?,
    })
}

/// Every divisor of `n`, ascending. Trial division up to the square root: a damaged init may
/// state any 32-bit timescale, and counting up to it would take seconds.
fn divisors(n: u32) -> Vec<u32> {
    let mut low = Vec::new();
    let mut high = Vec::new();
    let mut d = 1u32;
    while u64::from(d) * u64::from(d) <= u64::from(n) {
        if n.is_multiple_of(d) {
            low.push(d);
            if d != n / d {
                high.push(n / d);
            }
        }
        d += 1;
    }
    low.extend(high.into_iter().rev());
    low
}

/// The times of the clip in the recorded timescale if they fit, else in the coarsest one
/// needed: the recorded timescale divided by its smallest divisor `k` with which they fit.
fn fit(
    durations: &[u64],
    offsets: &[i32],
    timescale: u32,
) -> Result<(Timing, u32), ProgressiveError> {
    let longest = durations.iter().copied().max().unwrap_or(0);
    // One sample at `k` lasts at least `longest / k - 1 - n` ticks (one tick per sample is
    // the most a sample can be delayed by the samples before it): smaller `k` cannot fit.
    let below = u128::from(longest) / (u128::from(u32::MAX) + 1 + durations.len() as u128);
    for k in divisors(timescale)
        .into_iter()
        .filter(|k| u128::from(*k) >= below)
    {
        if let Some(t) = rescale(durations, offsets, u64::from(k)) {
            return Ok((t, timescale / k));
        }
    }
    Err(ProgressiveError::Unrepresentable {
        longest_ticks: longest,
        timescale,
    })
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
    // Recorded ticks: a duration that covers a gap may exceed 32 bits until rescaled.
    let mut durations: Vec<u64> = Vec::with_capacity(total);
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
                let last_start = end - *last;
                *last = start
                    .checked_sub(last_start)
                    .filter(|d| *d > 0)
                    .ok_or_else(|| ProgressiveError::Overlap {
                        index,
                        ticks: end - start,
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
                durations.push(u64::from(s.duration));
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
    let (timing, timescale) = fit(&durations, &offsets, timescale)?;
    drop((durations, offsets));
    let mut out = Vec::new();
    Stts {
        entries: run_lengths(timing.durations.iter().copied())
            .into_iter()
            .map(|(sample_count, sample_delta)| SttsEntry {
                sample_count,
                sample_delta,
            })
            .collect(),
    }
    .encode(&mut out)?;
    if timing.offsets.iter().any(|o| *o != 0) {
        Ctts {
            entries: run_lengths(timing.offsets.iter().copied())
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
        timescale,
        duration: timing.duration,
        first_presented: timing.first_presented,
        samples: total as u64,
    })
}

/// The chunk offset table: `stco`, or `co64` (`wide`) when an offset needs more than 32 bits.
/// `offsets` are the chunks' file offsets (zeros to learn the table's length).
fn chunk_offsets(offsets: &[u64], wide: bool) -> Result<Vec<u8>, ProgressiveError> {
    let mut out = Vec::new();
    if wide {
        Co64 {
            entries: offsets.to_vec(),
        }
        .encode(&mut out)?;
    } else {
        Stco {
            entries: offsets
                .iter()
                .map(|o| u32::try_from(*o).map_err(|_| ProgressiveError::TooLong))
                .collect::<Result<_, _>>()?,
        }
        .encode(&mut out)?;
    }
    Ok(out)
}

/// What follows the `moov`: where each chunk's bytes lie in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// One `mdat` holding every chunk back to back (the plain export).
    Samples,
    /// Every recorded fragment whole (`lens[i]` bytes, `moof` and `mdat`), each after an
    /// 8-byte `skip` box header that hides its `moof` from players ([`SKIP_HEADER`]): the
    /// evidence bundle's `video.mp4`, whose fragments stay the bytes the ledger signed while
    /// the `moov` makes it a progressive MP4.
    Fragments { lens: &'a [u64] },
}

/// Bytes of the `skip` box header before each fragment in [`Body::Fragments`].
pub const SKIP_HEADER: u64 = 8;

impl Body<'_> {
    /// File offset of every chunk when the chunks or wrapped fragments start at `start`, and
    /// the end of the file.
    fn place(&self, start: u64, chunks: &[Chunk]) -> Result<(Vec<u64>, u64), ProgressiveError> {
        let too_long = || ProgressiveError::TooLong;
        match self {
            Body::Samples => {
                let mut at = start;
                let mut offsets = Vec::with_capacity(chunks.len());
                for c in chunks {
                    offsets.push(at);
                    at = at.checked_add(c.len).ok_or_else(too_long)?;
                }
                Ok((offsets, at))
            }
            Body::Fragments { lens } => {
                let mut frag_at = Vec::with_capacity(lens.len());
                let mut at = start;
                for len in *lens {
                    at = at.checked_add(SKIP_HEADER).ok_or_else(too_long)?;
                    frag_at.push(at);
                    at = at.checked_add(*len).ok_or_else(too_long)?;
                }
                let offsets = chunks
                    .iter()
                    .map(|c| {
                        frag_at
                            .get(c.fragment)
                            .and_then(|f| f.checked_add(c.offset))
                            .ok_or_else(too_long)
                    })
                    .collect::<Result<_, _>>()?;
                Ok((offsets, at))
            }
        }
    }
}

/// A version-1 `mdhd` (as [`header_v1`] writes it) with its timescale set to `timescale`.
fn with_timescale(mut mdhd: Vec<u8>, timescale: u32) -> Result<Vec<u8>, ProgressiveError> {
    // Size and type (8), version and flags (4), creation and modification times (16).
    const AT: usize = 8 + 4 + 16;
    if mdhd.get(4..9) != Some(&b"mdhd\x01"[..]) || mdhd.len() < AT + 4 {
        return Err(ProgressiveError::InitBox(
            "cannot set the timescale of the mdhd".into(),
        ));
    }
    mdhd[AT..AT + 4].copy_from_slice(&timescale.to_be_bytes());
    Ok(mdhd)
}

/// What the recorded `moov` becomes, given everything that is computed.
struct Rewrite<'a> {
    mp4_time: u64,
    movie_duration: u64,
    media_timescale: u32,
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
                b"mdhd" => body.extend(with_timescale(
                    header_v1(k, self.mp4_time, self.media_duration)?,
                    self.media_timescale,
                )?),
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
    body: Body<'_>,
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
        (u128::from(t.duration) * u128::from(movie_timescale)).div_ceil(u128::from(t.timescale)),
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
        media_timescale: t.timescale,
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
    if let Body::Fragments { lens } = body
        && (lens.len() != fragments.len() || lens.iter().any(|l| i64::try_from(*l).is_err()))
    {
        return Err(ProgressiveError::TooLong);
    }
    let mdat = match body {
        Body::Samples => box_header(b"mdat", payload),
        Body::Fragments { .. } => Vec::new(),
    };
    // The offsets' width changes the moov's length, which moves every offset: lay out with
    // 32-bit offsets first, and with 64-bit ones if the last chunk then starts beyond 4 GiB.
    let mut wide = false;
    loop {
        let placeholder = chunk_offsets(&vec![0; t.chunks.len()], wide)?;
        let moov_len = rewrite.moov(&moov, &placeholder)?.len() as u64;
        let first = ftyp.len() as u64 + moov_len + mdat.len() as u64;
        let (offsets, len) = body.place(first, &t.chunks)?;
        if !wide && offsets.last().is_some_and(|o| *o > u64::from(u32::MAX)) {
            wide = true;
            continue;
        }
        let moov = rewrite.moov(&moov, &chunk_offsets(&offsets, wide)?)?;
        debug_assert_eq!(moov.len() as u64, moov_len);
        let mut header = Vec::with_capacity(first as usize);
        header.extend_from_slice(ftyp);
        header.extend(moov);
        header.extend(mdat);
        return Ok(Layout {
            len,
            header,
            chunks: t.chunks,
            duration: movie_duration,
            media_timescale: t.timescale,
            samples: t.samples,
        });
    }
}

/// The presentation of evidence bundles (format v3): the progressive header over the signed
/// fragments, each kept whole behind a `skip` header ([`Body::Fragments`]). The bundle writer
/// and verifier (`vigil_signing::bundle`) call this; see docs/signing-format.md.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence;

impl vigil_signing::bundle::Presenter for Evidence {
    fn header(
        &self,
        recorded_init: &[u8],
        fragments: &[vigil_signing::bundle::FragmentHead],
        start_us: i64,
    ) -> Result<Vec<u8>, String> {
        let defaults = track_defaults(recorded_init).map_err(|e| e.to_string())?;
        let samples = fragments
            .iter()
            .enumerate()
            .map(|(k, f)| {
                crate::fmp4::fragment_samples(&f.head, f.len, defaults)
                    .map_err(|e| format!("fragment {k}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lens: Vec<u64> = fragments.iter().map(|f| f.len).collect();
        layout(
            recorded_init,
            &samples,
            start_us,
            Body::Fragments { lens: &lens },
        )
        .map(|l| l.header)
        .map_err(|e| e.to_string())
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
        gop_ticks(pts0, n, bframes, tag, 3000)
    }

    /// [`gop`] with frames `ticks` long.
    fn gop_ticks(pts0: i64, n: usize, bframes: bool, tag: u8, ticks: i64) -> (Vec<u8>, Vec<u8>) {
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
                pts: pts0 + ticks * i as i64,
                is_key: i == 0,
                data: vec![tag, i as u8, 0x5a, 0x5a, 0x5a].into(),
            })
            .collect();
        let g = gop_samples(&frames, Some(pts0 + ticks * n as i64), ticks as u32);
        let data: Vec<u8> = frames.iter().flat_map(|f| f.data.iter().copied()).collect();
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
        let l = layout(&init(), &parsed, START_US, Body::Samples).unwrap();
        assert_eq!(l.samples, 14);
        assert_eq!(l.duration, 42_000, "14 frames of 3000 ticks, from 0");
        assert_eq!(
            layout(&init(), &parsed, START_US, Body::Samples).unwrap(),
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

    /// The evidence form: the same sample tables, pointing into the recorded fragments, each
    /// whole behind a skip header; players see exactly the samples of the plain form.
    #[test]
    fn evidence_body_keeps_fragments_whole_and_points_into_their_mdats() {
        use vigil_signing::bundle::{FragmentHead, Presenter};
        let origin = 90_000 * 30 * 86_400;
        let (f1, _) = gop(origin, 7, true, 1);
        let (f2, _) = gop(origin + 21_000, 7, true, 2);
        let frags = [f1, f2];
        let parsed: Vec<_> = frags.iter().map(|f| parse(f)).collect();
        let plain = file(
            &layout(&init(), &parsed, START_US, Body::Samples).unwrap(),
            &frags,
        );
        let lens: Vec<u64> = frags.iter().map(|f| f.len() as u64).collect();
        let l = layout(&init(), &parsed, START_US, Body::Fragments { lens: &lens }).unwrap();
        let heads: Vec<_> = frags
            .iter()
            .map(|f| FragmentHead {
                head: f.clone(),
                len: f.len() as u64,
            })
            .collect();
        assert_eq!(
            Evidence.header(&init(), &heads, START_US).unwrap(),
            l.header,
            "the presenter is this layout"
        );
        let mut evidence = l.header.clone();
        for f in &frags {
            let moof = u32::from_be_bytes(f[..4].try_into().unwrap());
            evidence.extend_from_slice(&(moof + 8).to_be_bytes());
            evidence.extend_from_slice(b"skip");
            evidence.extend_from_slice(f);
        }
        assert_eq!(evidence.len() as u64, l.len);
        let top = boxes(&evidence, "file").unwrap();
        let kinds: Vec<_> = top.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            [*b"ftyp", *b"moov", *b"skip", *b"mdat", *b"skip", *b"mdat"]
        );
        let moov = Moov::decode(&mut &top[1].bytes[..]).unwrap();
        assert_eq!(
            sample_bytes(&evidence, &moov),
            sample_bytes(&plain, &moov_of(&plain)),
            "the same samples in the same order"
        );
        // Apart from the chunk offsets, the header is the plain one without its mdat header.
        let plain_moov = moov_of(&plain);
        let mut a = moov.clone();
        let mut b = plain_moov.clone();
        a.trak[0].mdia.minf.stbl.stco = None;
        b.trak[0].mdia.minf.stbl.stco = None;
        assert_eq!(a, b);
        assert!(
            layout(
                &init(),
                &parsed,
                START_US,
                Body::Fragments { lens: &lens[..1] }
            )
            .is_err(),
            "one length per fragment"
        );
    }

    #[test]
    fn without_b_frames_there_is_no_ctts_nor_edit() {
        let (f1, _) = gop(5_000_000, 30, false, 1);
        let (f2, _) = gop(5_090_000, 30, false, 2);
        let frags = [f1, f2];
        let parsed: Vec<_> = frags.iter().map(|f| parse(f)).collect();
        let l = layout(&init(), &parsed, START_US, Body::Samples).unwrap();
        let moov = moov_of(&file(&l, &frags));
        let trak = &moov.trak[0];
        assert!(trak.edts.is_none());
        assert!(trak.mdia.minf.stbl.ctts.is_none());
        assert_eq!(trak.tkhd.duration, 180_000);
    }

    #[test]
    fn a_gap_is_held_by_the_last_frame_before_it() {
        let (f1, _) = gop(0, 3, false, 1);
        // Recording resumes 10 s after the first GOP ended.
        let (f2, _) = gop(9000 + 900_000, 3, false, 2);
        let frags = [f1, f2];
        let parsed: Vec<_> = frags.iter().map(|f| parse(f)).collect();
        let l = layout(&init(), &parsed, START_US, Body::Samples).unwrap();
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

        assert_eq!(l.media_timescale, 90_000);
        assert_eq!(moov.trak[0].mdia.mdhd.timescale, 90_000);

        // A fragment that starts before the previous one's last sample is refused.
        let mut back = parsed.clone();
        back[1].base_decode_time = Some(6000);
        let e = layout(&init(), &back, START_US, Body::Samples).unwrap_err();
        assert!(
            matches!(e, ProgressiveError::Overlap { index: 1, .. }),
            "{e}"
        );
        // One that starts within the last sample shortens it.
        back[1].base_decode_time = Some(7000);
        assert_eq!(
            layout(&init(), &back, START_US, Body::Samples)
                .unwrap()
                .duration,
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
        let l = layout(
            &init(),
            &[frag(0), frag(3000), frag(6000)],
            START_US,
            Body::Samples,
        )
        .unwrap();
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
        let small = layout(&init(), &[frag(0)], START_US, Body::Samples).unwrap();
        let top = boxes(&small.header[..small.header.len() - 8], "header").unwrap();
        let moov = Moov::decode(&mut &top[1].bytes[..]).unwrap();
        assert!(moov.trak[0].mdia.minf.stbl.stco.is_some());
    }

    #[test]
    fn what_cannot_be_laid_out_is_refused() {
        assert!(matches!(
            layout(&init(), &[], START_US, Body::Samples),
            Err(ProgressiveError::Empty)
        ));
        let (f, _) = gop(0, 3, false, 1);
        let mut p = parse(&f);
        p.runs[0].samples = 2;
        assert!(matches!(
            layout(&init(), &[p], START_US, Body::Samples),
            Err(ProgressiveError::Runs { index: 0 })
        ));
        let mut cut = init();
        cut.truncate(cut.len() - 5);
        assert!(matches!(
            layout(&cut, &[parse(&f)], START_US, Body::Samples),
            Err(ProgressiveError::Init(_))
        ));
        assert!(track_defaults(&cut).is_err());
    }

    /// Four GOPs of 7 frames of 3003 ticks (29.97 fps) with B-frames, 30 days into the camera's
    /// timeline, recording stopped for `gap` ticks between the second and third: the
    /// fragments, their sample bytes, their samples and where the last one ends (recorded
    /// ticks from the first one's start).
    fn clip_with_gap(gap: i64) -> (Vec<Vec<u8>>, Vec<u8>, Vec<FragmentSamples>, u64) {
        let origin = 90_000 * 30 * 86_400;
        let gop_len = 7 * 3003;
        let starts = [0, gop_len, 2 * gop_len + gap, 3 * gop_len + gap];
        let (frags, data): (Vec<_>, Vec<_>) = starts
            .iter()
            .enumerate()
            .map(|(i, s)| gop_ticks(origin + s, 7, true, i as u8 + 1, 3003))
            .unzip();
        let parsed: Vec<_> = frags.iter().map(|f| parse(f)).collect();
        (frags, data.concat(), parsed, (4 * gop_len + gap) as u64)
    }

    /// Each sample's presentation time (decode order), seconds from the first presented one,
    /// on the recorded timeline.
    fn recorded_pts(parsed: &[FragmentSamples]) -> Vec<f64> {
        let mut pts = Vec::new();
        for f in parsed {
            let mut t = f.base_decode_time.unwrap() as i64;
            for s in &f.samples {
                pts.push(t + i64::from(s.composition_offset));
                t += i64::from(s.duration);
            }
        }
        let first = *pts.iter().min().unwrap();
        pts.iter().map(|p| (p - first) as f64 / 90_000.0).collect()
    }

    /// Each sample's presentation time (decode order) in seconds, as a player reads the file:
    /// `stts`, `ctts`, the edit list and the `mdhd` timescale.
    fn file_pts(moov: &Moov) -> Vec<f64> {
        let trak = &moov.trak[0];
        let stbl = &trak.mdia.minf.stbl;
        let expand = |entries: Vec<(u32, i64)>| -> Vec<i64> {
            entries
                .into_iter()
                .flat_map(|(n, v)| std::iter::repeat_n(v, n as usize))
                .collect()
        };
        let durations = expand(
            stbl.stts
                .entries
                .iter()
                .map(|e| (e.sample_count, i64::from(e.sample_delta)))
                .collect(),
        );
        let offsets = stbl.ctts.as_ref().map_or(vec![0; durations.len()], |c| {
            expand(
                c.entries
                    .iter()
                    .map(|e| (e.sample_count, e.sample_offset))
                    .collect(),
            )
        });
        let start = trak.edts.as_ref().map_or(0, |e| {
            e.elst.as_ref().unwrap().entries[0].media_time.unwrap() as i64
        });
        let timescale = f64::from(trak.mdia.mdhd.timescale);
        let mut dts = 0;
        let mut pts = Vec::new();
        for (d, o) in durations.iter().zip(&offsets) {
            pts.push((dts + o - start) as f64 / timescale);
            dts += d;
        }
        pts
    }

    /// Sample indices in presentation order.
    fn presentation_order(pts: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..pts.len()).collect();
        order.sort_by(|a, b| pts[*a].total_cmp(&pts[*b]));
        order
    }

    fn stts_deltas(moov: &Moov) -> Vec<u32> {
        moov.trak[0]
            .mdia
            .minf
            .stbl
            .stts
            .entries
            .iter()
            .flat_map(|e| std::iter::repeat_n(e.sample_delta, e.sample_count as usize))
            .collect()
    }

    #[test]
    fn the_recorded_timescale_is_kept_while_every_gap_fits_32_bits() {
        let (f1, _) = gop(0, 3, false, 1);
        let (f2, _) = gop(0, 3, false, 2);
        let mut parsed = vec![parse(&f1), parse(&f2)];
        // The last sample of the first GOP starts at 6000 and lasts until the second starts.
        parsed[1].base_decode_time = Some(6000 + u64::from(u32::MAX));
        let l = layout(&init(), &parsed, START_US, Body::Samples).unwrap();
        assert_eq!(l.media_timescale, 90_000);
        let moov = moov_of(&file(&l, &[f1.clone(), f2.clone()]));
        assert_eq!(moov.trak[0].mdia.mdhd.timescale, 90_000);
        assert_eq!(stts_deltas(&moov)[2], u32::MAX);
        // One tick more does not fit: 45 kHz, the recorded timescale over its smallest divisor.
        parsed[1].base_decode_time = Some(6001 + u64::from(u32::MAX));
        let l = layout(&init(), &parsed, START_US, Body::Samples).unwrap();
        assert_eq!(l.media_timescale, 45_000);
        let moov = moov_of(&file(&l, &[f1, f2]));
        assert_eq!(moov.trak[0].mdia.mdhd.timescale, 45_000);
        assert_eq!(
            stts_deltas(&moov),
            [1500, 1500, 2_147_483_648, 1500, 1500, 1500]
        );
        assert_eq!(moov.trak[0].mdia.mdhd.duration, 2_147_483_648 + 5 * 1500);
        assert_eq!(moov.mvhd.duration, 2 * moov.trak[0].mdia.mdhd.duration);
    }

    #[test]
    fn long_gaps_are_written_at_a_coarser_timescale_on_the_wall_clock() {
        const HOUR: i64 = 3600 * 90_000;
        // (gap, media timescale written, k): the smallest divisor of 90 000 that fits.
        for (gap, timescale, k) in [
            (14 * HOUR, 45_000, 2),
            (3 * 24 * HOUR, 15_000, 6),
            (60 * 24 * HOUR, 750, 120),
        ] {
            let what = format!("a gap of {} h", gap / HOUR);
            let (frags, data, parsed, end) = clip_with_gap(gap);
            let l = layout(&init(), &parsed, START_US, Body::Samples).unwrap();
            assert_eq!(l.media_timescale, timescale, "{what}");
            assert_eq!(l.samples, 28);
            let out = file(&l, &frags);
            let moov = moov_of(&out);
            let trak = &moov.trak[0];
            assert_eq!(trak.mdia.mdhd.timescale, timescale, "{what}");
            assert_eq!(moov.mvhd.timescale, 90_000, "the movie timescale stays");

            // Durations: none is zero, they add up to the clip, within a tick of the recorded
            // length; the movie's length in its own timescale says the same.
            let deltas = stts_deltas(&moov);
            assert!(deltas.iter().all(|d| *d > 0), "{what}: {deltas:?}");
            let media: u64 = deltas.iter().map(|d| u64::from(*d)).sum();
            assert_eq!(trak.mdia.mdhd.duration, media, "{what}");
            assert!(
                (media as f64 - end as f64 / k as f64).abs() <= 1.0,
                "{what}: {media} ticks for {end} recorded"
            );
            assert_eq!(moov.mvhd.duration, media * k, "{what}");
            assert_eq!(trak.tkhd.duration, moov.mvhd.duration, "{what}");
            assert_eq!(l.duration, moov.mvhd.duration, "{what}");
            let elst = &trak.edts.as_ref().unwrap().elst.as_ref().unwrap().entries;
            assert_eq!(elst[0].segment_duration, moov.mvhd.duration, "{what}");

            // Every frame is presented at its wall-clock offset, to the millisecond, in the
            // recorded order (B-frames included), none at the same time as another.
            let want = recorded_pts(&parsed);
            let got = file_pts(&moov);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 0.001,
                    "{what}: sample {i} at {g} s, not {w} s"
                );
            }
            assert_eq!(got.iter().copied().fold(f64::MAX, f64::min), 0.0);
            let order = presentation_order(&want);
            assert_eq!(presentation_order(&got), order, "{what}");
            assert_ne!(order, (0..28).collect::<Vec<_>>(), "B-frames reorder");
            assert!(order.windows(2).all(|w| got[w[0]] < got[w[1]]), "{what}");
            // After the gap the frames are where recording resumed.
            assert!((want[14] - (2 * 7 * 3003 + gap) as f64 / 90_000.0).abs() < 0.001);

            // The bytes are the recorded ones, where they were.
            assert_eq!(sample_bytes(&out, &moov).concat(), data, "{what}");
            let at_90k = layout(&init(), &clip_with_gap(0).2, START_US, Body::Samples).unwrap();
            assert_eq!(l.chunks, at_90k.chunks);
            assert_eq!(at_90k.media_timescale, 90_000);
        }
    }

    #[test]
    fn divisors_are_every_divisor_in_order() {
        assert_eq!(divisors(1), [1]);
        assert_eq!(divisors(12), [1, 2, 3, 4, 6, 12]);
        assert_eq!(divisors(90_000).len(), 75); // 2^4 · 3^2 · 5^4
        assert_eq!(divisors(49), [1, 7, 49]);
        let big = divisors(u32::MAX);
        assert_eq!((big[0], *big.last().unwrap()), (1, u32::MAX));
        assert!(big.windows(2).all(|w| w[0] < w[1]));
        assert!(big.iter().all(|d| u32::MAX.is_multiple_of(*d)));
    }

    #[test]
    fn rescaled_samples_last_at_least_one_tick() {
        // Three samples of a third of a millisecond, then a 10 s one, at 1 Hz: the short
        // ones get a tick each and the long one what is left up to its rounded end.
        let t = rescale(&[30, 30, 30, 900_000], &[0, 0, 0, 0], 90_000).unwrap();
        assert_eq!(t.durations, [1, 1, 1, 7]);
        assert_eq!(t.duration, 10);
        // Rounding is on the cumulative times: 3003-tick frames at 15 kHz alternate between
        // 501 and 500 ticks and never drift.
        let t = rescale(&[3003; 1000], &[0; 1000], 6).unwrap();
        assert!(t.durations.iter().all(|d| *d == 500 || *d == 501));
        assert_eq!(t.duration, 500_500);
        // Composition offsets are rounded composition times minus rounded decode times.
        let t = rescale(&[3003, 3003, 3003], &[6006, -3003, -3003], 6).unwrap();
        // Composition times 1001, 0 and 501; decode times 0, 501 and 1001 (500.5 rounds up).
        assert_eq!(t.offsets, [1502, 0, 1]);
        assert_eq!(t.first_presented, 501);
        // At the recorded timescale nothing changes, not even a zero duration.
        let t = rescale(&[0, 3000], &[0, 0], 1).unwrap();
        assert_eq!(t.durations, [0, 3000]);
        assert!(rescale(&[1 << 32], &[0], 1).is_none());
        assert!(rescale(&[3000, 3000], &[i32::MAX, i32::MIN], 1).is_none());
    }

    #[test]
    fn what_not_even_one_tick_per_second_can_hold_is_refused() {
        let (f1, _) = gop(0, 3, false, 1);
        let (f2, _) = gop(0, 3, false, 2);
        let mut parsed = vec![parse(&f1), parse(&f2)];
        // The last frame before the gap would last 2^32 s, one more than a sample can at
        // 1 Hz (136 years); the two frames before it take a tick each of it.
        parsed[1].base_decode_time = Some(6000 + 90_000 * ((1 << 32) + 2));
        let e = layout(&init(), &parsed, START_US, Body::Samples).unwrap_err();
        assert!(
            matches!(
                e,
                ProgressiveError::Unrepresentable {
                    longest_ticks,
                    timescale: 90_000
                } if longest_ticks == 90_000 * ((1 << 32) + 2)
            ),
            "{e}"
        );
        assert!(e.to_string().contains("one tick per second"), "{e}");
        // A second less is written at 1 Hz.
        parsed[1].base_decode_time = Some(6000 + 90_000 * ((1 << 32) - 1));
        let l = layout(&init(), &parsed, START_US, Body::Samples).unwrap();
        assert_eq!(l.media_timescale, 1);
        let moov = moov_of(&file(&l, &[f1, f2]));
        assert_eq!(stts_deltas(&moov), [1, 1, u32::MAX - 2, 1, 1, 1]);
    }

    #[cfg(feature = "peer-tests")]
    #[test]
    fn ffprobe_reads_clips_across_long_gaps_at_their_wall_clock_times() {
        const HOUR: i64 = 3600 * 90_000;
        let ffprobe = vigil_testkit::require_tool("ffprobe");
        let dir = tempfile::tempdir().unwrap();
        // 10 h fits 32 bits at 90 kHz (not 31: ffmpeg reads stts deltas as unsigned).
        for (gap, timescale) in [
            (10 * HOUR, 90_000),
            (14 * HOUR, 45_000),
            (60 * 24 * HOUR, 750),
        ] {
            let (frags, _, parsed, end) = clip_with_gap(gap);
            let l = layout(&init(), &parsed, START_US, Body::Samples).unwrap();
            let path = dir.path().join(format!("gap{}.mp4", gap / HOUR));
            std::fs::write(&path, file(&l, &frags)).unwrap();
            let what = path.display();

            let packets = vigil_testkit::ffprobe_packets(&path).unwrap();
            let want = recorded_pts(&parsed);
            assert_eq!(packets.len(), want.len(), "{what}");
            for (i, (p, w)) in packets.iter().zip(&want).enumerate() {
                let pts = p.pts_secs.unwrap();
                assert!(
                    (pts - w).abs() < 0.001,
                    "{what}: packet {i} at {pts} s, not {w} s"
                );
            }
            assert!(packets.windows(2).all(|w| w[0].dts_secs < w[1].dts_secs));

            let out = std::process::Command::new(&ffprobe)
                .args(["-v", "error", "-select_streams", "v:0"])
                .args(["-show_entries", "stream=time_base,duration"])
                .args(["-of", "default=noprint_wrappers=1"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stream = String::from_utf8(out.stdout).unwrap();
            assert!(
                stream.contains(&format!("time_base=1/{timescale}")),
                "{what}: {stream}"
            );
            let duration: f64 = stream
                .lines()
                .find_map(|l| l.strip_prefix("duration="))
                .unwrap()
                .parse()
                .unwrap();
            let first = want.iter().copied().fold(f64::MAX, f64::min);
            assert_eq!(first, 0.0);
            assert!(
                (duration - end as f64 / 90_000.0).abs() < 0.01,
                "{what}: ffprobe says {duration} s, the clip lasts {} s",
                end as f64 / 90_000.0
            );
        }
    }
}
