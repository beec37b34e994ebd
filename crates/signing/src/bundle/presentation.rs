//! The export's own init segment: the recorded init with a timeline edit, so that players
//! start an exported clip at 0 and show its wall-clock start, while every fragment stays byte
//! for byte what the ledger signed.
//!
//! Fragments carry absolute decode times (`tfdt`, ticks since the camera's time origin), so a
//! clip recorded days into a camera's life would otherwise start days into the player's
//! timeline. Rewriting `tfdt` would change the fragments' hashes; an edit list in the init
//! does not touch them. The edit is a pure function of the recorded init and three numbers
//! derived from signed data, so a verifier can rebuild the exported init and compare bytes
//! (docs/signing-format.md, "Presentation init").
//!
//! The box helpers here (reading a buffer's boxes, writing a box, version-1 movie, track and
//! media headers, the edit list, the `©day` user data) are public because the plain MP4
//! export (`vigil_media::progressive`) builds its `moov` from the same recorded init with the
//! same wall-clock metadata.

use serde::{Deserialize, Serialize};

/// Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01.
pub const MP4_EPOCH_OFFSET_SECS: i64 = 2_082_844_800;

/// ISO-639-2 "und" packed as three 5-bit letters (ISO/IEC 14496-12 `mdhd` language).
const LANGUAGE_UND: u16 = 0x55c4;

/// Where the exported clip sits on the recorded timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    /// Decode time (`tfdt`) of the first exported fragment, in the track's timescale: the
    /// edit list starts the presentation there.
    pub media_time: u64,
    /// Length of the clip in the movie timescale (`mvhd`): from the first fragment's start
    /// to the end of the last one, rounded up.
    pub duration: u64,
    /// Wall-clock start of the first fragment, unix microseconds.
    pub start_us: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PresentationError {
    #[error("{what} is not a valid MP4 box structure: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("cannot edit the timeline of this init segment: {0}")]
    Unsupported(String),
}

fn malformed(what: &'static str, detail: impl Into<String>) -> PresentationError {
    PresentationError::Malformed {
        what,
        detail: detail.into(),
    }
}

/// One box inside a buffer: its type, header length and every byte of it.
#[derive(Debug, Clone, Copy)]
pub struct Mp4Box<'a> {
    pub kind: [u8; 4],
    pub header: usize,
    pub bytes: &'a [u8],
}

impl<'a> Mp4Box<'a> {
    /// The box's bytes after its header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.header..]
    }
}

/// The boxes that fill `buf` exactly (ISO/IEC 14496-12 headers: `size == 1` means a 64-bit
/// size follows, `size == 0` means "to the end").
pub fn boxes<'a>(buf: &'a [u8], what: &'static str) -> Result<Vec<Mp4Box<'a>>, PresentationError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let rest = &buf[at..];
        if rest.len() < 8 {
            return Err(malformed(
                what,
                format!("{} stray bytes at {at}", rest.len()),
            ));
        }
        let size32 = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
        let kind: [u8; 4] = rest[4..8].try_into().expect("4 bytes");
        let (size, header) = match size32 {
            0 => (rest.len() as u64, 8),
            1 => {
                if rest.len() < 16 {
                    return Err(malformed(what, format!("short box header at {at}")));
                }
                (
                    u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes")),
                    16,
                )
            }
            n => (u64::from(n), 8),
        };
        if size < header as u64 || size > rest.len() as u64 {
            return Err(malformed(
                what,
                format!(
                    "box '{}' at {at} declares {size} bytes, {} are there",
                    String::from_utf8_lossy(&kind),
                    rest.len()
                ),
            ));
        }
        let size = size as usize;
        out.push(Mp4Box {
            kind,
            header,
            bytes: &rest[..size],
        });
        at += size;
    }
    Ok(out)
}

/// The one box of type `kind` in `list`: missing is malformed, more than one unsupported.
pub fn only<'a, 'b>(
    list: &'b [Mp4Box<'a>],
    kind: &[u8; 4],
    what: &'static str,
) -> Result<&'b Mp4Box<'a>, PresentationError> {
    let mut found = list.iter().filter(|b| &b.kind == kind);
    match (found.next(), found.next()) {
        (Some(b), None) => Ok(b),
        (None, _) => Err(malformed(
            what,
            format!("no '{}' box", String::from_utf8_lossy(kind)),
        )),
        (Some(_), Some(_)) => Err(PresentationError::Unsupported(format!(
            "more than one '{}' box",
            String::from_utf8_lossy(kind)
        ))),
    }
}

fn be_u32(b: &[u8], at: usize, what: &'static str) -> Result<u32, PresentationError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| malformed(what, "box too short"))
}

fn be_u64(b: &[u8], at: usize, what: &'static str) -> Result<u64, PresentationError> {
    b.get(at..at + 8)
        .map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")))
        .ok_or_else(|| malformed(what, "box too short"))
}

/// The header of a box whose payload is `payload_len` bytes: the compact form (`u32 size ||
/// type`), or `size == 1` and a 64-bit size when the box does not fit 32 bits.
pub fn box_header(kind: &[u8; 4], payload_len: u64) -> Vec<u8> {
    match u32::try_from(payload_len + 8) {
        Ok(size) => [&size.to_be_bytes()[..], kind].concat(),
        _ => [
            &1u32.to_be_bytes()[..],
            kind,
            &(payload_len + 16).to_be_bytes()[..],
        ]
        .concat(),
    }
}

/// A whole box: [`box_header`] then `payload`.
pub fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = box_header(kind, payload.len() as u64);
    v.reserve(payload.len());
    v.extend_from_slice(payload);
    v
}

/// The `ftyp` and `moov` of an init segment (everything before the first `moof`): `ftyp`'s
/// bytes and `moov`'s children.
pub fn init_parts(init: &[u8]) -> Result<(&[u8], Vec<Mp4Box<'_>>), PresentationError> {
    let top = boxes(init, "the init segment")?;
    if top.len() != 2 || &top[0].kind != b"ftyp" || &top[1].kind != b"moov" {
        return Err(PresentationError::Unsupported(format!(
            "expected ftyp then moov, found {}",
            top.iter()
                .map(|b| String::from_utf8_lossy(&b.kind).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let moov = boxes(top[1].payload(), "moov")?;
    Ok((top[0].bytes, moov))
}

/// The movie timescale (`mvhd`) of an init segment.
pub fn movie_timescale(init: &[u8]) -> Result<u32, PresentationError> {
    let (_, moov) = init_parts(init)?;
    timescale(only(&moov, b"mvhd", "moov")?)
}

/// The timescale of an `mvhd` or `mdhd` box (never 0).
pub fn timescale(header: &Mp4Box<'_>) -> Result<u32, PresentationError> {
    let what = match &header.kind {
        b"mdhd" => "mdhd",
        _ => "mvhd",
    };
    let p = header.payload();
    let at = if p.first() == Some(&1) { 20 } else { 12 };
    match be_u32(p, at, what)? {
        0 => Err(malformed(what, "timescale 0")),
        t => Ok(t),
    }
}

/// The decode time (`moof/traf/tfdt`) of a fragment, given at least its `moof` box.
pub fn first_decode_time(fragment: &[u8]) -> Result<u64, PresentationError> {
    if fragment.len() < 8 || &fragment[4..8] != b"moof" {
        return Err(malformed("the first fragment", "does not start with moof"));
    }
    let size = u32::from_be_bytes(fragment[..4].try_into().expect("4 bytes")) as usize;
    let moof = fragment
        .get(..size)
        .filter(|_| size >= 8)
        .ok_or_else(|| malformed("the first fragment", "moof runs past the bytes given"))?;
    let kids = boxes(&moof[8..], "moof")?;
    let traf = kids
        .iter()
        .find(|b| &b.kind == b"traf")
        .ok_or_else(|| malformed("moof", "no traf"))?;
    let traf_kids = boxes(traf.payload(), "traf")?;
    let tfdt = only(&traf_kids, b"tfdt", "traf")?.payload();
    match tfdt.first() {
        Some(1) => be_u64(tfdt, 4, "tfdt"),
        Some(0) => be_u32(tfdt, 4, "tfdt").map(u64::from),
        _ => Err(malformed("tfdt", "unknown version")),
    }
}

/// The timeline of a clip: the recorded init, the first fragment's bytes (at least its moof),
/// and the signed start of the first fragment and end of the last one (unix microseconds).
pub fn timeline(
    recorded_init: &[u8],
    first_fragment: &[u8],
    start_us: i64,
    end_us: i64,
) -> Result<Timeline, PresentationError> {
    if end_us < start_us {
        return Err(malformed(
            "the exported fragments",
            "the last ends before the first starts",
        ));
    }
    let scale = u128::from(movie_timescale(recorded_init)?);
    let span = u128::from(end_us.abs_diff(start_us));
    let duration = u64::try_from((span * scale).div_ceil(1_000_000))
        .map_err(|_| malformed("the exported fragments", "span too long"))?;
    Ok(Timeline {
        media_time: first_decode_time(first_fragment)?,
        duration,
        start_us,
    })
}

/// Seconds since 1904-01-01 (the MP4 epoch) of a unix time in microseconds, rounded down:
/// the creation and modification time of the export's headers.
pub fn mp4_time(start_us: i64) -> Result<u64, PresentationError> {
    u64::try_from(start_us.div_euclid(1_000_000) + MP4_EPOCH_OFFSET_SECS)
        .map_err(|_| PresentationError::Unsupported("start before 1904".into()))
}

/// `mvhd`, `tkhd` or `mdhd` as version 1 with the given creation/modification time and
/// duration, every other field as recorded. In `tkhd` the track id and a reserved word sit
/// between the times and the duration; in `mvhd` and `mdhd` the timescale does.
pub fn header_v1(
    b: &Mp4Box<'_>,
    mp4_time: u64,
    duration: u64,
) -> Result<Vec<u8>, PresentationError> {
    let (what, id_field) = match &b.kind {
        b"mvhd" => ("mvhd", false),
        b"mdhd" => ("mdhd", false),
        b"tkhd" => ("tkhd", true),
        k => {
            return Err(PresentationError::Unsupported(format!(
                "no version-1 header for '{}'",
                String::from_utf8_lossy(k)
            )));
        }
    };
    let p = b.payload();
    let version = *p.first().ok_or_else(|| malformed(what, "empty"))?;
    let flags = &p[1..4.min(p.len())];
    if flags.len() != 3 {
        return Err(malformed(what, "box too short"));
    }
    // Offsets after version+flags: (middle field start, middle length, rest start).
    let (middle, rest) = match (version, id_field) {
        (0, false) => (12..16, 20),
        (1, false) => (20..24, 32),
        (0, true) => (12..20, 24),
        (1, true) => (20..28, 36),
        _ => return Err(malformed(what, format!("unknown version {version}"))),
    };
    if p.len() < rest {
        return Err(malformed(what, "box too short"));
    }
    let mut out = vec![1u8];
    out.extend_from_slice(flags);
    out.extend_from_slice(&mp4_time.to_be_bytes());
    out.extend_from_slice(&mp4_time.to_be_bytes());
    out.extend_from_slice(&p[middle]);
    out.extend_from_slice(&duration.to_be_bytes());
    out.extend_from_slice(&p[rest..]);
    Ok(mp4_box(&b.kind, &out))
}

/// An `edts` box holding one version-1 `elst` entry: `duration` (movie timescale) of the media
/// from `media_time` (media timescale) on, at rate 1.
pub fn edit_list(duration: u64, media_time: i64) -> Vec<u8> {
    let mut elst = vec![1u8, 0, 0, 0];
    elst.extend_from_slice(&1u32.to_be_bytes());
    elst.extend_from_slice(&duration.to_be_bytes());
    elst.extend_from_slice(&media_time.to_be_bytes());
    elst.extend_from_slice(&1i16.to_be_bytes());
    elst.extend_from_slice(&0i16.to_be_bytes());
    mp4_box(b"edts", &mp4_box(b"elst", &elst))
}

/// The `udta` box with one `©day` item: the exact wall-clock start (RFC 3339, microseconds).
pub fn day_udta(start_us: i64) -> Vec<u8> {
    let day = crate::fmt_time(start_us);
    let mut item = Vec::with_capacity(4 + day.len());
    item.extend_from_slice(&(day.len() as u16).to_be_bytes());
    item.extend_from_slice(&LANGUAGE_UND.to_be_bytes());
    item.extend_from_slice(day.as_bytes());
    mp4_box(b"udta", &mp4_box(b"\xa9day", &item))
}

/// Refuses a recorded `moov` that has user data already: the export's `©day` would be doubled.
pub fn refuse_user_data(moov: &[Mp4Box<'_>]) -> Result<(), PresentationError> {
    if moov.iter().any(|b| &b.kind == b"udta") {
        return Err(PresentationError::Unsupported(
            "the recorded moov already has user data".into(),
        ));
    }
    Ok(())
}

/// The bytes of a recorded `moov` child copied as they are into an export's `moov`, which gets
/// its `udta` appended: a child of size 0 ("to the end") is refused, the user data would land
/// inside it.
pub fn copied_child<'a>(b: &Mp4Box<'a>) -> Result<&'a [u8], PresentationError> {
    if b.bytes[..4] == [0; 4] {
        return Err(PresentationError::Unsupported(format!(
            "the recorded moov's last box '{}' has size 0 (to the end)",
            String::from_utf8_lossy(&b.kind)
        )));
    }
    Ok(b.bytes)
}

/// The export's init: the recorded init with the timeline edit applied (see the module
/// documentation and docs/signing-format.md for the exact layout).
pub fn presentation_init(recorded_init: &[u8], t: &Timeline) -> Result<Vec<u8>, PresentationError> {
    let (ftyp, moov) = init_parts(recorded_init)?;
    let media_time = i64::try_from(t.media_time)
        .map_err(|_| PresentationError::Unsupported("media time beyond 2^63".into()))?;
    let mp4_time = mp4_time(t.start_us)?;
    only(&moov, b"mvhd", "moov")?;
    only(&moov, b"trak", "moov")?;
    refuse_user_data(&moov)?;
    let mut body = Vec::with_capacity(recorded_init.len() + 128);
    for b in &moov {
        match &b.kind {
            b"mvhd" => body.extend(header_v1(b, mp4_time, t.duration)?),
            b"trak" => {
                let kids = boxes(b.payload(), "trak")?;
                only(&kids, b"tkhd", "trak")?;
                if kids.iter().any(|k| &k.kind == b"edts") {
                    return Err(PresentationError::Unsupported(
                        "the recorded track already has an edit list".into(),
                    ));
                }
                let mut trak = Vec::with_capacity(b.bytes.len() + 64);
                for k in &kids {
                    if &k.kind == b"tkhd" {
                        trak.extend(header_v1(k, mp4_time, t.duration)?);
                        trak.extend(edit_list(t.duration, media_time));
                    } else {
                        trak.extend_from_slice(k.bytes);
                    }
                }
                body.extend(mp4_box(b"trak", &trak));
            }
            b"mvex" => {
                let kids = boxes(b.payload(), "mvex")?;
                let mut mehd = vec![1u8, 0, 0, 0];
                mehd.extend_from_slice(&t.duration.to_be_bytes());
                let mut mvex = mp4_box(b"mehd", &mehd);
                for k in kids.iter().filter(|k| &k.kind != b"mehd") {
                    mvex.extend_from_slice(k.bytes);
                }
                body.extend(mp4_box(b"mvex", &mvex));
            }
            _ => body.extend_from_slice(copied_child(b)?),
        }
    }
    body.extend(day_udta(t.start_us));
    let mut out = ftyp.to_vec();
    out.extend(mp4_box(b"moov", &body));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(kind: &[u8; 4], version: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![version, 0, 0, 1];
        p.extend_from_slice(payload);
        mp4_box(kind, &p)
    }

    /// A v0 init like the recorder writes: ftyp, moov(mvhd, mvex(trex), trak(tkhd, mdia)).
    fn recorded_init() -> Vec<u8> {
        let mut mvhd = Vec::new();
        mvhd.extend_from_slice(&[0u8; 8]);
        mvhd.extend_from_slice(&90_000u32.to_be_bytes());
        mvhd.extend_from_slice(&0u32.to_be_bytes());
        mvhd.extend_from_slice(&[7u8; 80]);
        let mut tkhd = Vec::new();
        tkhd.extend_from_slice(&[0u8; 8]);
        tkhd.extend_from_slice(&1u32.to_be_bytes());
        tkhd.extend_from_slice(&[0u8; 4]);
        tkhd.extend_from_slice(&0u32.to_be_bytes());
        tkhd.extend_from_slice(&[9u8; 60]);
        let mut trak = full(b"tkhd", 0, &tkhd);
        trak.extend(mp4_box(b"mdia", b"media"));
        let mut moov = full(b"mvhd", 0, &mvhd);
        moov.extend(mp4_box(b"mvex", &full(b"trex", 0, &[0u8; 20])));
        moov.extend(mp4_box(b"trak", &trak));
        let mut v = mp4_box(b"ftyp", b"isom\0\0\x02\0isomiso6mp41");
        v.extend(mp4_box(b"moov", &moov));
        v
    }

    fn fragment(tfdt: u64) -> Vec<u8> {
        let mut traf = full(b"tfhd", 0, &1u32.to_be_bytes());
        traf.extend(full(b"tfdt", 1, &tfdt.to_be_bytes()));
        let mut moof = full(b"mfhd", 0, &5u32.to_be_bytes());
        moof.extend(mp4_box(b"traf", &traf));
        let mut v = mp4_box(b"moof", &moof);
        v.extend(mp4_box(b"mdat", &[1, 2, 3]));
        v
    }

    #[test]
    fn edit_starts_the_clip_at_its_first_fragment_and_keeps_the_rest() {
        let init = recorded_init();
        // 80 s into the camera's timeline, 10.0000005 s long.
        let t = timeline(
            &init,
            &fragment(80 * 90_000),
            1_700_000_000_250_000,
            1_700_000_010_250_001,
        )
        .unwrap();
        assert_eq!(t.media_time, 7_200_000);
        assert_eq!(t.duration, 900_001, "rounded up");
        let out = presentation_init(&init, &t).unwrap();
        assert_eq!(presentation_init(&init, &t).unwrap(), out, "deterministic");
        let (ftyp, moov) = init_parts(&out).unwrap();
        assert_eq!(ftyp, &init[..ftyp.len()]);
        let kinds: Vec<_> = moov.iter().map(|b| b.kind).collect();
        assert_eq!(kinds, [*b"mvhd", *b"mvex", *b"trak", *b"udta"]);
        let mvhd = moov[0].payload();
        let secs = 1_700_000_000 + MP4_EPOCH_OFFSET_SECS as u64;
        assert_eq!(mvhd[0], 1);
        assert_eq!(be_u64(mvhd, 4, "").unwrap(), secs);
        assert_eq!(be_u32(mvhd, 20, "").unwrap(), 90_000);
        assert_eq!(be_u64(mvhd, 24, "").unwrap(), 900_001);
        assert_eq!(&mvhd[32..], &[7u8; 80]);
        assert_eq!(movie_timescale(&out).unwrap(), 90_000);
        let mvex = boxes(moov[1].payload(), "").unwrap();
        assert_eq!(&mvex[0].kind, b"mehd");
        assert_eq!(be_u64(mvex[0].payload(), 4, "").unwrap(), 900_001);
        let trak = boxes(moov[2].payload(), "").unwrap();
        let kinds: Vec<_> = trak.iter().map(|b| b.kind).collect();
        assert_eq!(kinds, [*b"tkhd", *b"edts", *b"mdia"]);
        let tkhd = trak[0].payload();
        assert_eq!(be_u32(tkhd, 20, "").unwrap(), 1, "track id kept");
        assert_eq!(be_u64(tkhd, 28, "").unwrap(), 900_001);
        assert_eq!(&tkhd[36..], &[9u8; 60]);
        let elst = boxes(trak[1].payload(), "").unwrap();
        let e = elst[0].payload();
        assert_eq!(be_u32(e, 4, "").unwrap(), 1);
        assert_eq!(be_u64(e, 8, "").unwrap(), 900_001);
        assert_eq!(be_u64(e, 16, "").unwrap(), 7_200_000);
        assert_eq!(&e[24..28], &[0, 1, 0, 0]);
        let udta = boxes(moov[3].payload(), "").unwrap();
        assert_eq!(&udta[0].kind, b"\xa9day");
        assert_eq!(&udta[0].payload()[4..], b"2023-11-14T22:13:20.250000Z");
    }

    #[test]
    fn refuses_what_it_cannot_edit_exactly() {
        let t = Timeline {
            media_time: 0,
            duration: 1,
            start_us: 0,
        };
        let edited = presentation_init(&recorded_init(), &t).unwrap();
        // Editing twice would stack user data and edit lists.
        assert!(matches!(
            presentation_init(&edited, &t),
            Err(PresentationError::Unsupported(_))
        ));
        let mut cut = recorded_init();
        cut.truncate(cut.len() - 3);
        assert!(matches!(
            presentation_init(&cut, &t),
            Err(PresentationError::Malformed { .. })
        ));
        assert!(first_decode_time(b"\0\0\0\x08mdat").is_err());
        assert_eq!(first_decode_time(&fragment(42)).unwrap(), 42);
        assert!(timeline(&recorded_init(), &fragment(1), 10, 9).is_err());
    }

    /// fuzz/artifacts/signing_presentation (minimised): a span beyond i64 overflowed
    /// `end_us - start_us`; it is too long for any duration instead.
    #[test]
    fn a_span_beyond_i64_is_refused_not_overflowed() {
        let init = b"\0\0\0\x13ftyp\0U@iso6\x19\0\0\0\0\0\0\0moov\0\0\0\0mvhd\0\0\0\0\0\0\xff\xff\xff\xff\0\xff\x04\0U@";
        let err = timeline(init, b"", -9_223_371_605_488_473_087, 1_714_564_800_266_667);
        assert!(
            matches!(&err, Err(PresentationError::Malformed { detail, .. }) if detail == "span too long"),
            "{err:?}"
        );
    }

    /// fuzz/artifacts/signing_presentation: the recorded moov's last child (the fuzz input's
    /// mutated mvex) has size 0, "to the end"; the udta appended after it landed inside it.
    #[test]
    fn a_last_moov_box_of_size_zero_is_not_edited() {
        let last = b"\0\0\0\0(mvex\0\0\0 trex\0\0\0\0\0\0\0\x01\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0";
        let mut init = recorded_init();
        init.extend_from_slice(last);
        let moov_size = u32::from_be_bytes(init[28..32].try_into().unwrap()) + last.len() as u32;
        init[28..32].copy_from_slice(&moov_size.to_be_bytes());
        let t = Timeline {
            media_time: 0,
            duration: 1,
            start_us: 1_714_564_800_000_000,
        };
        let err = presentation_init(&init, &t);
        assert!(
            matches!(&err, Err(PresentationError::Unsupported(m)) if m.contains("size 0")),
            "{err:?}"
        );
        // The same box with its size written out is copied verbatim, before the udta.
        let at = init.len() - last.len();
        init[at..at + 4].copy_from_slice(&40u32.to_be_bytes());
        let out = presentation_init(&init, &t).unwrap();
        let (_, moov) = init_parts(&out).unwrap();
        assert_eq!(moov[moov.len() - 2].bytes, &init[at..]);
        assert_eq!(&moov[moov.len() - 1].kind, b"udta");
    }
}
