//! Fragmented MP4 (ISO BMFF) building blocks: the init segment (`ftyp`+`moov`) for one video
//! track, one `moof`+`mdat` fragment per GOP, and a top-level box scanner used by recovery and
//! export.
//!
//! Every fragment carries an absolute decode time (`tfdt`, 90 kHz since the camera's time
//! origin) and a per-camera increasing `mfhd` sequence number, so fragments from consecutive
//! segment files can be concatenated verbatim after one init segment. That is what makes
//! exports byte-identical to what was recorded and hashed.

use mp4_atom::{
    Atom, Codec, Decode, Dinf, Dref, DrefEntry, Encode, FourCC, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf,
    Moof, Moov, Mvex, Mvhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex,
    Trun, TrunEntry, TrunSamples, Url, Vmhd,
};

/// The only timescale Vigil writes: RTP video clocks are 90 kHz.
pub const TIMESCALE: u32 = 90_000;
const TRACK_ID: u32 = 1;

/// ISO BMFF sample flags for a sync sample and for a non-sync sample that depends on others.
const FLAGS_SYNC: u32 = 0x0200_0000;
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

#[derive(Debug, thiserror::Error)]
pub enum Mp4Error {
    #[error("cannot build the MP4 sample entry: {0}")]
    SampleEntry(String),
    #[error("MP4 encoding failed: {0}")]
    Encode(#[from] mp4_atom::Error),
    #[error("malformed MP4 data at byte {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
}

/// What the init segment describes: the codec's sample entry and the picture size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackParams {
    /// A complete `avc1`/`hvc1` box as produced by retina's `mp4_sample_entry()`.
    pub sample_entry: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// RFC 6381 codec string, e.g. `avc1.4d401e`, for browsers and status output.
    pub rfc6381: String,
}

/// Builds `ftyp` + `moov` for one fragmented video track.
pub fn init_segment(params: &TrackParams) -> Result<Vec<u8>, Mp4Error> {
    let codec = Codec::decode(&mut params.sample_entry.as_slice())
        .map_err(|e| Mp4Error::SampleEntry(e.to_string()))?;
    let ftyp = Ftyp {
        major_brand: b"isom".into(),
        minor_version: 0x200,
        compatible_brands: vec![b"isom".into(), b"iso6".into(), b"mp41".into()],
    };
    let width = u16::try_from(params.width).unwrap_or(u16::MAX);
    let height = u16::try_from(params.height).unwrap_or(u16::MAX);
    let moov = Moov {
        mvhd: Mvhd {
            timescale: TIMESCALE,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: TRACK_ID + 1,
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: TRACK_ID,
                default_sample_description_index: 1,
                default_sample_duration: 0,
                default_sample_size: 0,
                default_sample_flags: 0,
            }],
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: TRACK_ID,
                enabled: true,
                in_movie: true,
                width: width.into(),
                height: height.into(),
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: TIMESCALE,
                    language: "und".into(),
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: FourCC::new(b"vide"),
                    name: "Vigil video".into(),
                },
                minf: Minf {
                    vmhd: Some(Vmhd::default()),
                    dinf: Dinf {
                        dref: Dref {
                            entries: vec![DrefEntry::Url(Url {
                                location: String::new(),
                            })],
                        },
                    },
                    stbl: Stbl {
                        stsd: Stsd {
                            codecs: vec![codec],
                        },
                        stts: Stts::default(),
                        stsc: Stsc::default(),
                        stsz: Stsz::default(),
                        stco: Some(Stco::default()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut buf = Vec::new();
    ftyp.encode(&mut buf)?;
    moov.encode(&mut buf)?;
    Ok(buf)
}

/// One sample of a fragment, in decode order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInfo {
    pub duration: u32,
    pub size: u32,
    pub is_sync: bool,
    /// Presentation minus decode time; negative values need `trun` version 1.
    pub composition_offset: i32,
}

/// Builds `moof` + `mdat` for one GOP. `data` holds the samples back to back in decode order.
pub fn fragment(
    sequence_number: u32,
    base_decode_time: u64,
    samples: &[SampleInfo],
    data: &[u8],
) -> Result<Vec<u8>, Mp4Error> {
    let mut out = fragment_header(
        sequence_number,
        base_decode_time,
        samples,
        data.len() as u64,
    )?;
    out.extend_from_slice(data);
    Ok(out)
}

/// Builds `moof` and the `mdat` header for one GOP whose samples (`data_len` bytes in all)
/// follow directly. The recorder writes this header and then the frames' own buffers, so a
/// GOP is never copied into one contiguous buffer first.
pub fn fragment_header(
    sequence_number: u32,
    base_decode_time: u64,
    samples: &[SampleInfo],
    data_len: u64,
) -> Result<Vec<u8>, Mp4Error> {
    let has_cts = samples.iter().any(|s| s.composition_offset != 0);
    let entries: Vec<TrunEntry> = samples
        .iter()
        .map(|s| TrunEntry {
            duration: Some(s.duration),
            size: Some(s.size),
            flags: Some(if s.is_sync {
                FLAGS_SYNC
            } else {
                FLAGS_NON_SYNC
            }),
            cts: has_cts.then_some(i64::from(s.composition_offset)),
        })
        .collect();
    let mut moof = Moof {
        mfhd: Mfhd { sequence_number },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: TRACK_ID,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: base_decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: TrunSamples::Explicit(entries),
            }],
            ..Default::default()
        }],
    };
    // The data offset counts from the start of the moof to the first sample byte, which sits
    // after the mdat header; encode once to learn the moof size, then fix the offset.
    let mut probe = Vec::new();
    moof.encode(&mut probe)?;
    let mdat_header = 8u64;
    let offset = probe.len() as u64 + mdat_header;
    moof.traf[0].trun[0].data_offset =
        Some(i32::try_from(offset).map_err(|_| Mp4Error::Malformed {
            offset: 0,
            reason: "moof too large".into(),
        })?);
    let mut out = Vec::with_capacity(probe.len() + 8);
    moof.encode(&mut out)?;
    let mdat_len = u32::try_from(data_len + 8).map_err(|_| Mp4Error::Malformed {
        offset: 0,
        reason: "GOP larger than 4 GiB".into(),
    })?;
    out.extend_from_slice(&mdat_len.to_be_bytes());
    out.extend_from_slice(b"mdat");
    Ok(out)
}

/// A top-level box: its type and where it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxSpan {
    pub kind: [u8; 4],
    pub offset: u64,
    pub len: u64,
}

/// Where the parts of a segment file lie, as found by [`scan_segment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentLayout {
    /// Length of `ftyp`+`moov`.
    pub init_len: u64,
    /// Complete `moof`+`mdat` pairs: (offset, length).
    pub fragments: Vec<(u64, u64)>,
    /// Bytes after the last complete fragment (a torn write), if any.
    pub torn_tail: u64,
}

/// Reads a top-level box header at `offset`, or None if fewer than a whole box remain.
fn box_at(data: &[u8], offset: u64) -> Result<Option<BoxSpan>, Mp4Error> {
    let rest = &data[offset as usize..];
    if rest.len() < 8 {
        return Ok(None);
    }
    let size32 = u32::from_be_bytes(rest[0..4].try_into().expect("4 bytes"));
    let kind: [u8; 4] = rest[4..8].try_into().expect("4 bytes");
    let len = match size32 {
        0 => rest.len() as u64,
        1 => {
            if rest.len() < 16 {
                return Ok(None);
            }
            u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes"))
        }
        n => u64::from(n),
    };
    if len < 8 || (size32 == 1 && len < 16) {
        return Err(Mp4Error::Malformed {
            offset,
            reason: format!("box size {len} is smaller than its header"),
        });
    }
    if len > rest.len() as u64 {
        return Ok(None);
    }
    Ok(Some(BoxSpan { kind, offset, len }))
}

/// Splits a segment file into its init and complete fragments. Anything after the last
/// complete `moof`+`mdat` pair is reported as a torn tail, never as an error, because that is
/// what a crash mid-write leaves behind.
pub fn scan_segment(data: &[u8]) -> Result<SegmentLayout, Mp4Error> {
    let mut offset = 0u64;
    let expect = |kind: &[u8; 4], offset: u64| -> Result<BoxSpan, Mp4Error> {
        match box_at(data, offset)? {
            Some(b) if &b.kind == kind => Ok(b),
            Some(b) => Err(Mp4Error::Malformed {
                offset,
                reason: format!(
                    "expected box '{}', found '{}'",
                    String::from_utf8_lossy(kind),
                    String::from_utf8_lossy(&b.kind)
                ),
            }),
            None => Err(Mp4Error::Malformed {
                offset,
                reason: format!(
                    "file ends before the '{}' box",
                    String::from_utf8_lossy(kind)
                ),
            }),
        }
    };
    let ftyp = expect(b"ftyp", offset)?;
    offset += ftyp.len;
    let moov = expect(b"moov", offset)?;
    offset += moov.len;
    let init_len = offset;
    let mut fragments = Vec::new();
    while let Some(moof) = box_at(data, offset)? {
        if &moof.kind != b"moof" {
            return Err(Mp4Error::Malformed {
                offset,
                reason: format!(
                    "expected 'moof', found '{}'",
                    String::from_utf8_lossy(&moof.kind)
                ),
            });
        }
        let Some(mdat) = box_at(data, offset + moof.len)? else {
            break;
        };
        if &mdat.kind != b"mdat" {
            return Err(Mp4Error::Malformed {
                offset: offset + moof.len,
                reason: format!(
                    "expected 'mdat', found '{}'",
                    String::from_utf8_lossy(&mdat.kind)
                ),
            });
        }
        fragments.push((offset, moof.len + mdat.len));
        offset += moof.len + mdat.len;
    }
    Ok(SegmentLayout {
        init_len,
        fragments,
        torn_tail: data.len() as u64 - offset,
    })
}

/// What a stored fragment says about itself: enough to rebuild its index row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentInfo {
    pub sequence_number: u32,
    pub base_decode_time: u64,
    pub duration: u64,
    pub samples: u32,
    pub starts_with_sync: bool,
}

/// The body of a whole box (its bytes after the 8- or 16-byte header).
fn box_body(whole: &[u8]) -> &[u8] {
    let header = if whole[..4] == [0, 0, 0, 1] { 16 } else { 8 };
    &whole[header..]
}

/// The child boxes of a container body, each whole (type at bytes 4..8). Fewer than 8 bytes
/// left at the end are padding (as mp4-atom also tolerates); a child running past the end is an
/// error.
fn child_boxes(body: &[u8]) -> Result<Vec<&[u8]>, Mp4Error> {
    let mut children = Vec::new();
    let mut offset = 0u64;
    while body.len() as u64 - offset >= 8 {
        let b = box_at(body, offset)?.ok_or_else(|| Mp4Error::Malformed {
            offset,
            reason: "unreadable moof: a box runs past its container".into(),
        })?;
        children.push(&body[offset as usize..(offset + b.len) as usize]);
        offset += b.len;
    }
    Ok(children)
}

/// The `tfhd` (required), `tfdt` and `trun`s of a `traf`, each at most once but the runs.
fn traf_parts(
    traf: &[u8],
    unreadable: &dyn Fn(mp4_atom::Error) -> Mp4Error,
) -> Result<(Tfhd, Option<Tfdt>, Vec<Trun>), Mp4Error> {
    let mut tfhd = None;
    let mut tfdt = None;
    let mut truns = Vec::new();
    for whole in child_boxes(box_body(traf))? {
        match &whole[4..8] {
            b"tfhd" if tfhd.is_some() => {
                return Err(unreadable(mp4_atom::Error::DuplicateBox(Tfhd::KIND)));
            }
            b"tfdt" if tfdt.is_some() => {
                return Err(unreadable(mp4_atom::Error::DuplicateBox(Tfdt::KIND)));
            }
            b"tfhd" => tfhd = Some(Tfhd::decode(&mut &whole[..]).map_err(unreadable)?),
            b"tfdt" => tfdt = Some(Tfdt::decode(&mut &whole[..]).map_err(unreadable)?),
            b"trun" => truns.push(Trun::decode(&mut &whole[..]).map_err(unreadable)?),
            _ => {}
        }
    }
    let tfhd = tfhd.ok_or_else(|| unreadable(mp4_atom::Error::MissingBox(Tfhd::KIND)))?;
    Ok((tfhd, tfdt, truns))
}

/// Parses the `moof` of one fragment (the bytes of `moof`+`mdat`).
///
/// Only the boxes read here (`mfhd`, and `tfhd`, `tfdt`, `trun` of the first `traf`) go
/// through mp4-atom: decoding the whole `Moof` would also decode every other box mp4-atom
/// knows, and mp4-atom 0.17 decodes a version-0 `sgpd` of an unknown grouping type with zero
/// bytes per entry after the first, so a damaged file's entry count of 4 billion became a
/// loop that ran out of memory. Vigil writes none of those other boxes.
pub fn parse_fragment(bytes: &[u8]) -> Result<FragmentInfo, Mp4Error> {
    let unreadable = |e: mp4_atom::Error| Mp4Error::Malformed {
        offset: 0,
        reason: format!("unreadable moof: {e}"),
    };
    let moof = match box_at(bytes, 0)? {
        Some(b) if &b.kind == b"moof" => &bytes[..b.len as usize],
        _ => {
            return Err(Mp4Error::Malformed {
                offset: 0,
                reason: "unreadable moof: the fragment does not start with a whole moof box".into(),
            });
        }
    };
    let mut mfhd = None;
    let mut traf = None;
    for whole in child_boxes(box_body(moof))? {
        match &whole[4..8] {
            b"mfhd" if mfhd.is_some() => {
                return Err(unreadable(mp4_atom::Error::DuplicateBox(Mfhd::KIND)));
            }
            b"mfhd" => mfhd = Some(Mfhd::decode(&mut &whole[..]).map_err(unreadable)?),
            b"traf" if traf.is_none() => traf = Some(whole),
            _ => {}
        }
    }
    let mfhd = mfhd.ok_or(unreadable(mp4_atom::Error::MissingBox(Mfhd::KIND)))?;
    let traf = traf.ok_or_else(|| Mp4Error::Malformed {
        offset: 0,
        reason: "moof without traf".into(),
    })?;
    let (tfhd, tfdt, truns) = traf_parts(traf, &unreadable)?;
    let base_decode_time = tfdt.map(|t| t.base_media_decode_time).unwrap_or(0);
    let default_duration = u64::from(tfhd.default_sample_duration.unwrap_or(0));
    let too_many = || Mp4Error::Malformed {
        offset: 0,
        reason: "moof holds more than 2^32 samples or 2^64 ticks".into(),
    };
    let mut duration = 0u64;
    let mut samples = 0u32;
    let mut first_flags = None;
    for trun in &truns {
        match &trun.samples {
            // A run without per-sample fields costs no bytes per sample, so its count (up to
            // 2^32) is added up rather than walked sample by sample.
            TrunSamples::Inherited {
                count,
                first_flags: flags,
            } => {
                if *count > 0 && first_flags.is_none() {
                    first_flags = Some(flags.unwrap_or(0));
                }
                duration = default_duration
                    .checked_mul(u64::from(*count))
                    .and_then(|d| duration.checked_add(d))
                    .ok_or_else(too_many)?;
                samples = samples.checked_add(*count).ok_or_else(too_many)?;
            }
            TrunSamples::Explicit(entries) => {
                for e in entries {
                    if first_flags.is_none() {
                        first_flags = Some(e.flags.unwrap_or(0));
                    }
                    duration = e
                        .duration
                        .map_or(default_duration, u64::from)
                        .checked_add(duration)
                        .ok_or_else(too_many)?;
                    samples = samples.checked_add(1).ok_or_else(too_many)?;
                }
            }
        }
    }
    Ok(FragmentInfo {
        sequence_number: mfhd.sequence_number,
        base_decode_time,
        duration,
        samples,
        starts_with_sync: first_flags.is_some_and(|f| f & 0x0001_0000 == 0),
    })
}

/// Per-sample values of a track where a fragment gives neither its own nor a `tfhd` default:
/// the init's `trex`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackDefaults {
    pub track_id: u32,
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// Samples stored back to back: where their bytes lie in the fragment (from the `moof`'s first
/// byte) and how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRun {
    pub offset: u64,
    pub len: u64,
    pub samples: u32,
}

/// Every sample of a stored fragment, as its `moof` describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentSamples {
    /// `tfdt`; `None` when the fragment continues the previous one's decode time.
    pub base_decode_time: Option<u64>,
    /// In decode order.
    pub samples: Vec<SampleInfo>,
    /// One per `trun`, in order; their sample counts add up to `samples.len()`.
    pub runs: Vec<SampleRun>,
}

/// The `sample_is_non_sync_sample` bit of ISO BMFF sample flags.
const FLAG_NON_SYNC: u32 = 0x0001_0000;

/// Reads the header of a box at `offset` without requiring its payload: (type, header length,
/// box length; `None` for size 0, "to the end").
fn box_header_at(data: &[u8], offset: usize) -> Option<([u8; 4], u64, Option<u64>)> {
    let rest = data.get(offset..)?;
    let size32 = u32::from_be_bytes(rest.get(0..4)?.try_into().ok()?);
    let kind: [u8; 4] = rest.get(4..8)?.try_into().ok()?;
    match size32 {
        0 => Some((kind, 8, None)),
        1 => {
            let size = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
            Some((kind, 16, Some(size)))
        }
        n => Some((kind, 8, Some(u64::from(n)))),
    }
}

/// The samples of one stored fragment, from its `moof` and the `mdat` header after it: `head`
/// holds at least those bytes, `fragment_len` is the whole fragment's length (`moof` + `mdat`).
///
/// Every sample's duration, size, flags and composition offset are resolved against the
/// `tfhd` defaults, then `defaults` (the init's `trex`). The sample bytes each `trun` points at
/// must lie inside the `mdat` payload. Stored data is not trusted: anything else (several
/// tracks, an absolute base data offset, a second sample description, empty samples, offsets
/// or sums that overflow) is [`Mp4Error::Malformed`], never a panic. As in [`parse_fragment`],
/// only the boxes read here are decoded.
pub fn fragment_samples(
    head: &[u8],
    fragment_len: u64,
    defaults: TrackDefaults,
) -> Result<FragmentSamples, Mp4Error> {
    let bad = |reason: String| Mp4Error::Malformed {
        offset: 0,
        reason: format!("fragment: {reason}"),
    };
    let unreadable = |e: mp4_atom::Error| bad(format!("unreadable moof: {e}"));
    let moof = match box_at(head, 0)? {
        Some(b) if &b.kind == b"moof" => &head[..b.len as usize],
        _ => return Err(bad("does not start with a whole moof box".into())),
    };
    let moof_len = moof.len() as u64;
    let (mdat_start, mdat_end) = match box_header_at(head, moof.len()) {
        Some((kind, header, size)) if &kind == b"mdat" => {
            let end = match size {
                None => fragment_len,
                Some(s) if s >= header => moof_len.saturating_add(s),
                Some(s) => return Err(bad(format!("mdat size {s} is smaller than its header"))),
            };
            if end > fragment_len || end < moof_len + header {
                return Err(bad(format!(
                    "the mdat ends at byte {end}, the fragment has {fragment_len}"
                )));
            }
            (moof_len + header, end)
        }
        Some((kind, ..)) => {
            return Err(bad(format!(
                "the moof is followed by '{}', not mdat",
                String::from_utf8_lossy(&kind)
            )));
        }
        None => return Err(bad("no mdat header after the moof".into())),
    };
    let trafs: Vec<&[u8]> = child_boxes(box_body(moof))?
        .into_iter()
        .filter(|b| &b[4..8] == b"traf")
        .collect();
    let [traf] = trafs[..] else {
        return Err(bad(format!(
            "{} track fragments; a recorded fragment has one",
            trafs.len()
        )));
    };
    let (tfhd, tfdt, truns) = traf_parts(traf, &unreadable)?;
    if tfhd.track_id != defaults.track_id {
        return Err(bad(format!(
            "track {} is not the init's track {}",
            tfhd.track_id, defaults.track_id
        )));
    }
    if tfhd.base_data_offset.is_some() {
        return Err(bad("an absolute base data offset".into()));
    }
    if tfhd.sample_description_index.is_some_and(|i| i != 1) {
        return Err(bad(
            "a sample description other than the init's first".into()
        ));
    }
    let duration = tfhd.default_sample_duration.unwrap_or(defaults.duration);
    let size = tfhd.default_sample_size.unwrap_or(defaults.size);
    let flags = tfhd.default_sample_flags.unwrap_or(defaults.flags);
    let mut samples = Vec::new();
    let mut runs = Vec::with_capacity(truns.len());
    // Data offsets count from the moof's first byte: with default-base-is-moof, and for the
    // first track fragment of a moof without a base data offset.
    let mut next_offset: Option<u64> = None;
    for trun in &truns {
        let count = trun.samples.len() as u64;
        // Each sample takes at least one byte of the mdat and runs do not overlap, which
        // bounds what is allocated.
        if samples.len() as u64 + count > mdat_end - mdat_start {
            return Err(bad(format!(
                "{} samples in an mdat of {} bytes",
                samples.len() as u64 + count,
                mdat_end - mdat_start
            )));
        }
        let offset = match (trun.data_offset, next_offset) {
            (Some(o), _) => u64::try_from(o).map_err(|_| bad(format!("data offset {o}")))?,
            (None, Some(o)) => o,
            (None, None) => return Err(bad("the first run has no data offset".into())),
        };
        if next_offset.is_some_and(|prev_end| offset < prev_end) {
            return Err(bad(format!(
                "a run of samples at byte {offset} overlaps the one before it"
            )));
        }
        let mut len = 0u64;
        for e in trun.samples.iter() {
            let s = SampleInfo {
                duration: e.duration.unwrap_or(duration),
                size: e.size.unwrap_or(size),
                is_sync: e.flags.unwrap_or(flags) & FLAG_NON_SYNC == 0,
                composition_offset: i32::try_from(e.cts.unwrap_or(0)).map_err(|_| {
                    bad(format!(
                        "composition offset {} beyond 2^31 ticks",
                        e.cts.unwrap_or(0)
                    ))
                })?,
            };
            if s.size == 0 {
                return Err(bad(format!("sample {} has 0 bytes", samples.len() + 1)));
            }
            len = len.saturating_add(u64::from(s.size));
            samples.push(s);
        }
        let end = offset.saturating_add(len);
        if offset < mdat_start || end > mdat_end {
            return Err(bad(format!(
                "samples at bytes {offset}..{end}, outside the mdat payload {mdat_start}..{mdat_end}"
            )));
        }
        runs.push(SampleRun {
            offset,
            len,
            samples: count as u32,
        });
        next_offset = Some(end);
    }
    if samples.is_empty() {
        return Err(bad("no samples".into()));
    }
    Ok(FragmentSamples {
        base_decode_time: tfdt.map(|t| t.base_media_decode_time),
        samples,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_round_trips_its_timing() {
        let samples = [
            SampleInfo {
                duration: 3000,
                size: 4,
                is_sync: true,
                composition_offset: 0,
            },
            SampleInfo {
                duration: 3000,
                size: 3,
                is_sync: false,
                composition_offset: -3000,
            },
        ];
        let frag = fragment(7, 123_456_789_000, &samples, b"abcdxyz").unwrap();
        let info = parse_fragment(&frag).unwrap();
        assert_eq!(info.sequence_number, 7);
        assert_eq!(info.base_decode_time, 123_456_789_000);
        assert_eq!(info.duration, 6000);
        assert_eq!(info.samples, 2);
        assert!(info.starts_with_sync);
        assert!(frag.ends_with(b"mdatabcdxyz"));
    }

    #[test]
    fn scan_reports_torn_tail_and_rejects_garbage() {
        let mut file = Vec::new();
        file.extend_from_slice(&[0, 0, 0, 16]);
        file.extend_from_slice(b"ftypisom\0\0\0\0");
        file.extend_from_slice(&[0, 0, 0, 8]);
        file.extend_from_slice(b"moov");
        let s = [SampleInfo {
            duration: 1,
            size: 1,
            is_sync: true,
            composition_offset: 0,
        }];
        let f = fragment(1, 0, &s, b"x").unwrap();
        file.extend_from_slice(&f);
        file.extend_from_slice(&f[..f.len() - 3]);
        let layout = scan_segment(&file).unwrap();
        assert_eq!(layout.init_len, 24);
        assert_eq!(layout.fragments, vec![(24, f.len() as u64)]);
        assert_eq!(layout.torn_tail, f.len() as u64 - 3);

        assert!(scan_segment(b"garbage garbage garbage").is_err());
        assert!(scan_segment(&[]).is_err());
        let mut bad = file[..24].to_vec();
        bad.extend_from_slice(&[0, 0, 0, 4]);
        bad.extend_from_slice(b"moof");
        assert!(scan_segment(&bad).is_err(), "box smaller than its header");
        assert!(parse_fragment(b"\0\0\0\x08moof").is_err());
        assert!(parse_fragment(b"junk").is_err());
    }

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    /// A moof whose traf holds `extra` after a tfhd (default duration 3000) and a tfdt.
    fn moof_with(extra: &[u8]) -> Vec<u8> {
        let mfhd = mp4_box(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 9]);
        // tfhd version 0, flags 0x20008 (default-base-is-moof, default sample duration).
        let tfhd = mp4_box(b"tfhd", &[0, 2, 0, 8, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8]);
        let tfdt = mp4_box(b"tfdt", &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x39]);
        let traf = mp4_box(b"traf", &[tfhd, tfdt, extra.to_vec()].concat());
        mp4_box(b"moof", &[mfhd, traf].concat())
    }

    #[test]
    fn sample_group_boxes_cannot_make_the_parser_loop() {
        // Found by the media_segment fuzz target: a version-0 sgpd of an unknown grouping type
        // claiming 0xff000000 (and, below, 0x616b0000) entries, which mp4-atom decodes as
        // empty entries one by one until memory runs out.
        let sgpd = mp4_box(b"sgpd", b"\0\0\0\0abcd\xff\0\0\0xyz");
        let trun = mp4_box(b"trun", &[0, 0, 0, 0, 0, 0, 0, 4]);
        let info = parse_fragment(&moof_with(&[sgpd, trun].concat())).unwrap();
        assert_eq!(info.sequence_number, 9);
        assert_eq!(info.base_decode_time, 12_345);
        assert_eq!((info.samples, info.duration), (4, 12_000));

        let timeout_input = b"\x00\x00\x00|moof\x00\x00\x00\x10mfld\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00dtraf\x00\x00\x00\x1csgpd\x00\x03fm\x00\x00\x00\x00\xff\x00\x00\x00\x00\x00]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\x0e\xd5\x012\x00\x14tfdt\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00%tn\x00\x00\x8b\xfd\xf8-\xff\xff\xff\xff\xff\x84\x06\x00\x04\x00\x00\x00\x06\x00\xf6\xff\xff\xff\x00\x00,trn\x00\x00u\x02\x00-\xff\xff\xff\xff\xff\xff\xff\x07";
        assert!(parse_fragment(timeout_input).is_err(), "no mfhd");
        let oom_input = b"\x00\x00\x00|moof\x00\x00\x00\x00sgpd\x00\x1ctf\x00dtrak\x00\x00\x00\x1ctfhd\x00\x02\x008\x00\x00\x00\x01\x00\x00\x08\x00\x00\x00\x06\xd5\x01\x01\x00\x00\x00\x00\x00\x14tfdt\x01\x00\x07\x00\x00\x1ctfho\xd3f\x00\x00\x00\x10\x00\x01\x00\x00\x08\x00\x00\x00\x06\xd5\x00\xd5\x00\x00\x0b\x00\x00\x00\x00pt\x00\xc5:\xff\x01\x00*\x08\xc3\xb2(\xc3\xb7\x00\x00+\x00\xb9\xe9dsts\xbd|m";
        assert!(parse_fragment(oom_input).is_err(), "no mfhd");
    }

    const DEFAULTS: TrackDefaults = TrackDefaults {
        track_id: 1,
        duration: 0,
        size: 0,
        flags: 0,
    };

    #[test]
    fn fragment_samples_are_read_from_the_moof_and_the_mdat_header() {
        let samples = [
            SampleInfo {
                duration: 3000,
                size: 4,
                is_sync: true,
                composition_offset: 0,
            },
            SampleInfo {
                duration: 3000,
                size: 3,
                is_sync: false,
                composition_offset: -3000,
            },
        ];
        let frag = fragment(7, 123_456_789_000, &samples, b"abcdxyz").unwrap();
        let moof_len = frag.len() as u64 - 15;
        // The moof and the mdat header are enough; the samples' bytes are not read.
        let head = &frag[..moof_len as usize + 8];
        let f = fragment_samples(head, frag.len() as u64, DEFAULTS).unwrap();
        assert_eq!(f.base_decode_time, Some(123_456_789_000));
        assert_eq!(f.samples, samples);
        assert_eq!(
            f.runs,
            [SampleRun {
                offset: moof_len + 8,
                len: 7,
                samples: 2
            }]
        );
        // tfhd defaults fill what a run leaves out (moof_with: 3000 ticks a sample).
        let trun = mp4_box(b"trun", &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0]);
        let mut inherited = moof_with(&trun);
        let at = inherited.len() as u32 + 8;
        let n = inherited.len() - 4;
        inherited[n..].copy_from_slice(&at.to_be_bytes());
        inherited.extend(mp4_box(b"mdat", b"ab"));
        let d = TrackDefaults {
            size: 1,
            ..DEFAULTS
        };
        let f = fragment_samples(&inherited, inherited.len() as u64, d).unwrap();
        assert_eq!(f.samples.len(), 2);
        assert!(
            f.samples
                .iter()
                .all(|s| s.duration == 3000 && s.size == 1 && s.is_sync)
        );
    }

    #[test]
    fn malformed_fragments_are_refused_with_a_reason() {
        let s = [SampleInfo {
            duration: 3000,
            size: 3,
            is_sync: true,
            composition_offset: 0,
        }];
        let frag = fragment(1, 0, &s, b"xyz").unwrap();
        let len = frag.len() as u64;
        let moof_len = frag.len() - 11;
        let refused = |head: &[u8], len: u64, d: TrackDefaults, says: &str| {
            let e = fragment_samples(head, len, d).unwrap_err();
            assert!(matches!(e, Mp4Error::Malformed { .. }), "{e}");
            assert!(e.to_string().contains(says), "{e} does not say {says}");
        };
        refused(b"junk", 4, DEFAULTS, "does not start with a whole moof");
        refused(
            &frag[..moof_len - 1],
            len,
            DEFAULTS,
            "does not start with a whole moof",
        );
        refused(
            &frag[..moof_len],
            len,
            DEFAULTS,
            "no mdat header after the moof",
        );
        refused(&frag, len - 1, DEFAULTS, "the mdat ends at byte");
        // An mdat of size 0 runs to the fragment's end, which must be past its header.
        let mut to_end = frag.clone();
        to_end[moof_len..moof_len + 4].copy_from_slice(&[0; 4]);
        assert_eq!(fragment_samples(&to_end, len, DEFAULTS).unwrap().samples, s);
        refused(
            &to_end,
            moof_len as u64 + 4,
            DEFAULTS,
            "the mdat ends at byte",
        );
        let other = TrackDefaults {
            track_id: 2,
            ..DEFAULTS
        };
        refused(&frag, len, other, "track 1 is not the init's track 2");
        // The trun's data offset (found by its value) pointing past the mdat, or into the moof.
        let at = (moof_len as u32 + 8).to_be_bytes();
        let pos = frag.windows(4).position(|w| w == at).unwrap();
        let mut past = frag.clone();
        past[pos..pos + 4].copy_from_slice(&(moof_len as u32 + 9).to_be_bytes());
        refused(&past, len, DEFAULTS, "outside the mdat payload");
        let mut before = frag.clone();
        before[pos..pos + 4].copy_from_slice(&4u32.to_be_bytes());
        refused(&before, len, DEFAULTS, "outside the mdat payload");
        // A run of 2^32-1 samples without per-sample fields in a 2-byte mdat.
        let huge = mp4_box(b"trun", &[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        let mut many = moof_with(&huge);
        many.extend(mp4_box(b"mdat", b"ab"));
        let d = TrackDefaults {
            size: 1,
            ..DEFAULTS
        };
        refused(&many, many.len() as u64, d, "samples in an mdat of 2 bytes");
        // Samples of 0 bytes, a run without a data offset, an absolute base data offset.
        let two = mp4_box(b"trun", &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0]);
        let mut empty = moof_with(&two);
        empty.extend(mp4_box(b"mdat", b"ab"));
        refused(&empty, empty.len() as u64, DEFAULTS, "has 0 bytes");
        let mut no_offset = moof_with(&mp4_box(b"trun", &[0, 0, 0, 0, 0, 0, 0, 2]));
        no_offset.extend(mp4_box(b"mdat", b"ab"));
        refused(&no_offset, no_offset.len() as u64, d, "no data offset");
        let mfhd = mp4_box(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 9]);
        let tfhd = mp4_box(b"tfhd", &[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let traf = mp4_box(b"traf", &[tfhd, two].concat());
        let mut absolute = mp4_box(b"moof", &[mfhd.clone(), traf.clone()].concat());
        absolute.extend(mp4_box(b"mdat", b"ab"));
        refused(
            &absolute,
            absolute.len() as u64,
            d,
            "absolute base data offset",
        );
        let mut two_tracks = mp4_box(b"moof", &[mfhd, traf.clone(), traf].concat());
        two_tracks.extend(mp4_box(b"mdat", b"ab"));
        refused(&two_tracks, two_tracks.len() as u64, d, "2 track fragments");
    }

    #[test]
    fn runs_without_per_sample_fields_are_counted_not_walked() {
        // trun flags 0: no per-sample fields, so 2^32-1 samples cost no bytes.
        let huge = mp4_box(b"trun", &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        let info = parse_fragment(&moof_with(&huge)).unwrap();
        assert_eq!(info.samples, u32::MAX);
        assert_eq!(info.duration, u64::from(u32::MAX) * 3000);
        assert!(info.starts_with_sync);
        // Two such runs exceed the u32 sample count: an error, not an overflow.
        let e = parse_fragment(&moof_with(&[huge.clone(), huge].concat())).unwrap_err();
        assert!(e.to_string().contains("more than 2^32 samples"), "{e}");
    }
}
