//! The looped H.264 clip: splitting an Annex B elementary stream into access units (frames),
//! reading the sequence parameter set for the facts the SDP and the tests need (size, frame
//! rate, profile/level), and checking that the clip can be looped without the decoder noticing.
//!
//! The server only ever replays what it parsed here, so every property a receiver depends on
//! (first frame is an IDR, no B-frames, one SPS/PPS pair) is enforced at parse time rather than
//! discovered mid-stream.

use std::time::Duration;

/// The clip shipped in the repository (`assets/sample.h264`, see `assets/README.md`).
pub const SAMPLE_H264: &[u8] = include_bytes!("../../../assets/sample.h264");

/// H.264 NAL unit types this crate cares about (ITU-T H.264 table 7-1).
mod nal_type {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    pub const END_OF_SEQUENCE: u8 = 10;
    pub const END_OF_STREAM: u8 = 11;
    pub const FILLER: u8 = 12;
}

/// Why a byte stream cannot be used as a sample clip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClipError {
    #[error(
        "clip contains no Annex B start code (00 00 01); pass a raw H.264 elementary stream, e.g. made with `ffmpeg ... -f h264`"
    )]
    NoStartCode,
    #[error("NAL unit #{index} is empty or has the forbidden_zero_bit set; the stream is corrupt")]
    CorruptNal { index: usize },
    #[error(
        "NAL unit #{index} has type {nal_type}, which the sample camera does not stream (only slices, SEI, SPS, PPS and delimiters); re-encode with libx264"
    )]
    UnsupportedNal { index: usize, nal_type: u8 },
    #[error(
        "clip has no sequence parameter set (SPS); encode with `-x264-params repeat-headers=1` or keep the headers"
    )]
    MissingSps,
    #[error("clip has no picture parameter set (PPS)")]
    MissingPps,
    #[error(
        "clip carries differing SPS or PPS units; the SDP can describe only one, so re-encode in one pass"
    )]
    ParameterSetsChange,
    #[error("sequence parameter set is malformed: {0}")]
    BadSps(String),
    #[error("slice header of frame {frame} is malformed: {reason}")]
    BadSlice { frame: usize, reason: String },
    #[error(
        "SPS has no VUI timing information, so the frame rate is unknown; use Clip::from_annex_b_with_rate"
    )]
    NoFrameRate,
    #[error("frame rate {num}/{den} is outside 1..=240 fps")]
    BadFrameRate { num: u32, den: u32 },
    #[error("clip contains no frames")]
    NoFrames,
    #[error(
        "the first frame is not an IDR picture, so a looped stream could not be decoded from its start; re-encode with a keyframe first"
    )]
    FirstFrameNotIdr,
    #[error(
        "frame {frame} contains B slices; the sample camera sends frames in decode order with increasing timestamps, so re-encode with `-bf 0`"
    )]
    BFrames { frame: usize },
}

/// A frame rate as an exact ratio, so 90 kHz timestamps never drift over long runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    /// Frames per `den` seconds.
    pub num: u32,
    /// Seconds per `num` frames.
    pub den: u32,
}

impl FrameRate {
    /// Reduces `num/den`; errors when outside 1..=240 fps.
    pub fn new(num: u32, den: u32) -> Result<FrameRate, ClipError> {
        if num == 0 || den == 0 || u64::from(num) > 240 * u64::from(den) || num < den {
            return Err(ClipError::BadFrameRate { num, den });
        }
        let g = gcd(num, den);
        Ok(FrameRate {
            num: num / g,
            den: den / g,
        })
    }

    /// Frames per second as a float (for display and tolerance checks).
    pub fn as_f64(&self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Wall-clock offset of frame `index` from frame 0.
    pub fn offset_of(&self, index: u64) -> Duration {
        let nanos = u128::from(index) * 1_000_000_000 * u128::from(self.den) / u128::from(self.num);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Offset of frame `index` from frame 0 in 90 kHz RTP clock ticks (not wrapped).
    pub fn ticks_90k(&self, index: u64) -> u64 {
        let ticks = u128::from(index) * 90_000 * u128::from(self.den) / u128::from(self.num);
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Facts about a clip that receivers and tests can rely on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipInfo {
    /// Displayed width in pixels (after SPS cropping).
    pub width: u32,
    /// Displayed height in pixels (after SPS cropping).
    pub height: u32,
    /// Frame rate the clip is paced at.
    pub frame_rate: FrameRate,
    /// Number of access units (frames) in one loop of the clip.
    pub frame_count: usize,
    /// Number of IDR frames in one loop.
    pub keyframe_count: usize,
    /// Longest distance in frames between two IDR frames, counting the wrap from the last
    /// keyframe round to frame 0 of the next loop.
    pub gop_length: usize,
    /// `profile_idc` from the SPS (77 = Main).
    pub profile_idc: u8,
    /// The constraint flags byte from the SPS.
    pub constraint_flags: u8,
    /// `level_idc` from the SPS (22 = level 2.2).
    pub level_idc: u8,
}

impl ClipInfo {
    /// Length of one loop of the clip.
    pub fn duration(&self) -> Duration {
        self.frame_rate.offset_of(self.frame_count as u64)
    }

    /// The `profile-level-id` SDP parameter (RFC 6184 section 8.1): six hex digits.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02X}{:02X}{:02X}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// One access unit: the NAL units (without start codes) that make up one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    nals: Vec<Vec<u8>>,
    keyframe: bool,
}

impl Frame {
    /// NAL units in decode order, without start codes (as RTP carries them).
    pub fn nal_units(&self) -> impl Iterator<Item = &[u8]> {
        self.nals.iter().map(Vec::as_slice)
    }

    /// True for IDR frames, where a receiver can start decoding.
    pub fn is_keyframe(&self) -> bool {
        self.keyframe
    }

    /// Total NAL payload bytes of this frame.
    pub fn len(&self) -> usize {
        self.nals.iter().map(Vec::len).sum()
    }

    /// True when the frame carries no NAL bytes (never true for a parsed clip).
    pub fn is_empty(&self) -> bool {
        self.nals.is_empty()
    }
}

/// A parsed, loopable H.264 clip.
#[derive(Clone, PartialEq, Eq)]
pub struct Clip {
    info: ClipInfo,
    sps: Vec<u8>,
    pps: Vec<u8>,
    frames: Vec<Frame>,
}

impl std::fmt::Debug for Clip {
    // The frames are hundreds of kilobytes; the facts are what a log reader needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clip")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Clip {
    /// Parses the clip embedded in this crate.
    pub fn builtin() -> Result<Clip, ClipError> {
        Clip::from_annex_b(SAMPLE_H264)
    }

    /// Parses an Annex B stream whose SPS carries VUI timing information (libx264 writes it).
    pub fn from_annex_b(data: &[u8]) -> Result<Clip, ClipError> {
        Clip::parse(data, None)
    }

    /// Parses an Annex B stream and paces it at `frame_rate`, whatever its SPS says.
    pub fn from_annex_b_with_rate(data: &[u8], frame_rate: FrameRate) -> Result<Clip, ClipError> {
        Clip::parse(data, Some(frame_rate))
    }

    /// Facts about the clip.
    pub fn info(&self) -> &ClipInfo {
        &self.info
    }

    /// The sequence parameter set NAL unit (as advertised in `sprop-parameter-sets`).
    pub fn sps(&self) -> &[u8] {
        &self.sps
    }

    /// The picture parameter set NAL unit.
    pub fn pps(&self) -> &[u8] {
        &self.pps
    }

    /// The frames of one loop, in decode (= presentation) order.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    fn parse(data: &[u8], rate_override: Option<FrameRate>) -> Result<Clip, ClipError> {
        let nals = split_annex_b(data)?;
        let mut sps: Option<&[u8]> = None;
        let mut pps: Option<&[u8]> = None;
        let mut frames: Vec<Frame> = Vec::new();
        let mut current: Vec<Vec<u8>> = Vec::new();
        let mut current_has_vcl = false;
        let mut current_key = false;

        for (index, nal) in nals.iter().enumerate() {
            let header = *nal.first().ok_or(ClipError::CorruptNal { index })?;
            if header & 0x80 != 0 {
                return Err(ClipError::CorruptNal { index });
            }
            let kind = header & 0x1F;
            let is_vcl = kind == nal_type::SLICE || kind == nal_type::IDR;
            // Access unit boundaries per H.264 7.4.1.2.3: a non-VCL unit that may only precede
            // a picture, or a slice starting at macroblock 0, ends the previous access unit.
            let starts_new_au = match kind {
                nal_type::SEI | nal_type::SPS | nal_type::PPS | nal_type::AUD => current_has_vcl,
                nal_type::SLICE | nal_type::IDR => {
                    current_has_vcl && first_mb_in_slice(nal) == Some(0)
                }
                nal_type::END_OF_SEQUENCE | nal_type::END_OF_STREAM | nal_type::FILLER => false,
                other => {
                    return Err(ClipError::UnsupportedNal {
                        index,
                        nal_type: other,
                    });
                }
            };
            if starts_new_au {
                frames.push(Frame {
                    nals: std::mem::take(&mut current),
                    keyframe: current_key,
                });
                current_has_vcl = false;
                current_key = false;
            }
            match kind {
                nal_type::SPS => match sps {
                    None => sps = Some(nal),
                    Some(first) if first != *nal => return Err(ClipError::ParameterSetsChange),
                    Some(_) => {}
                },
                nal_type::PPS => match pps {
                    None => pps = Some(nal),
                    Some(first) if first != *nal => return Err(ClipError::ParameterSetsChange),
                    Some(_) => {}
                },
                _ => {}
            }
            if is_vcl {
                let slice_type = slice_type(nal).map_err(|reason| ClipError::BadSlice {
                    frame: frames.len(),
                    reason,
                })?;
                // slice_type 1 and 6 are B slices.
                if slice_type % 5 == 1 {
                    return Err(ClipError::BFrames {
                        frame: frames.len(),
                    });
                }
                current_has_vcl = true;
                current_key |= kind == nal_type::IDR;
            }
            // Delimiters and filler carry nothing a receiver needs; RTP framing replaces them.
            if kind != nal_type::AUD && kind != nal_type::FILLER {
                current.push(nal.to_vec());
            }
        }
        if current_has_vcl {
            frames.push(Frame {
                nals: current,
                keyframe: current_key,
            });
        } else if let Some(last) = frames.last_mut() {
            // Trailing end-of-sequence/stream units belong to the last picture.
            last.nals.extend(current);
        }

        let sps = sps.ok_or(ClipError::MissingSps)?;
        let pps = pps.ok_or(ClipError::MissingPps)?;
        let parsed = Sps::parse(sps)?;
        if frames.is_empty() {
            return Err(ClipError::NoFrames);
        }
        if !frames[0].keyframe {
            return Err(ClipError::FirstFrameNotIdr);
        }
        let frame_rate = match rate_override {
            Some(rate) => rate,
            None => {
                let (num, den) = parsed.frame_rate.ok_or(ClipError::NoFrameRate)?;
                FrameRate::new(num, den)?
            }
        };
        let keyframes: Vec<usize> = frames
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.keyframe.then_some(i))
            .collect();
        let mut gop_length = frames.len() - keyframes[keyframes.len() - 1];
        for pair in keyframes.windows(2) {
            gop_length = gop_length.max(pair[1] - pair[0]);
        }
        Ok(Clip {
            info: ClipInfo {
                width: parsed.width,
                height: parsed.height,
                frame_rate,
                frame_count: frames.len(),
                keyframe_count: keyframes.len(),
                gop_length,
                profile_idc: parsed.profile_idc,
                constraint_flags: parsed.constraint_flags,
                level_idc: parsed.level_idc,
            },
            sps: sps.to_vec(),
            pps: pps.to_vec(),
            frames,
        })
    }
}

/// Splits an Annex B byte stream at its start codes; trailing zero bytes belong to the next
/// start code (H.264 B.1), so they are trimmed from each unit.
fn split_annex_b(data: &[u8]) -> Result<Vec<&[u8]>, ClipError> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    if starts.is_empty() {
        return Err(ClipError::NoStartCode);
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(data.len(), |next| next - 3);
        let mut unit = &data[start..end];
        while let [rest @ .., 0] = unit {
            unit = rest;
        }
        nals.push(unit);
    }
    Ok(nals)
}

/// Removes emulation prevention bytes (00 00 03 -> 00 00) to get the RBSP.
fn unescape(nal_payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal_payload.len());
    let mut zeros = 0;
    for &b in nal_payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

fn first_mb_in_slice(nal: &[u8]) -> Option<u32> {
    let head = unescape(&nal[1..nal.len().min(16)]);
    BitReader::new(&head).ue().ok()
}

fn slice_type(nal: &[u8]) -> Result<u32, String> {
    let head = unescape(&nal[1..nal.len().min(16)]);
    let mut r = BitReader::new(&head);
    r.ue()?;
    let slice_type = r.ue()?;
    if slice_type > 9 {
        return Err(format!("slice_type {slice_type} is out of range 0..=9"));
    }
    Ok(slice_type)
}

/// Reads bits MSB-first, with Exp-Golomb codes (H.264 9.1).
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<u32, String> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| "ran out of bits".to_string())?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    fn flag(&mut self) -> Result<bool, String> {
        Ok(self.bit()? == 1)
    }

    fn ue(&mut self) -> Result<u32, String> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err("Exp-Golomb code longer than 32 bits".into());
            }
        }
        let rest = self.bits(zeros)?;
        let value = (1u64 << zeros) - 1 + u64::from(rest);
        u32::try_from(value).map_err(|_| "Exp-Golomb value exceeds 32 bits".to_string())
    }

    fn se(&mut self) -> Result<i64, String> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// The parts of a sequence parameter set (H.264 7.3.2.1.1) the sample camera needs.
struct Sps {
    profile_idc: u8,
    constraint_flags: u8,
    level_idc: u8,
    width: u32,
    height: u32,
    frame_rate: Option<(u32, u32)>,
}

impl Sps {
    fn parse(nal: &[u8]) -> Result<Sps, ClipError> {
        Sps::parse_inner(nal).map_err(ClipError::BadSps)
    }

    fn parse_inner(nal: &[u8]) -> Result<Sps, String> {
        if nal.len() < 4 {
            return Err(format!("{} bytes is too short", nal.len()));
        }
        let rbsp = unescape(&nal[1..]);
        let mut r = BitReader::new(&rbsp);
        let profile_idc = r.bits(8)? as u8;
        let constraint_flags = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        r.ue()?; // seq_parameter_set_id
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc > 3 {
                return Err(format!("chroma_format_idc {chroma_format_idc} > 3"));
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?;
            }
            r.ue()?; // bit_depth_luma_minus8
            r.ue()?; // bit_depth_chroma_minus8
            r.flag()?; // qpprime_y_zero_transform_bypass_flag
            if r.flag()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.flag()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        r.ue()?; // log2_max_frame_num_minus4
        match r.ue()? {
            0 => {
                r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
            }
            1 => {
                r.flag()?;
                r.se()?;
                r.se()?;
                let cycle = r.ue()?;
                if cycle > 255 {
                    return Err(format!(
                        "num_ref_frames_in_pic_order_cnt_cycle {cycle} > 255"
                    ));
                }
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            2 => {}
            other => return Err(format!("pic_order_cnt_type {other} > 2")),
        }
        r.ue()?; // max_num_ref_frames
        r.flag()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = u64::from(r.ue()?) + 1;
        let height_map_units = u64::from(r.ue()?) + 1;
        let frame_mbs_only = r.flag()?;
        if !frame_mbs_only {
            r.flag()?; // mb_adaptive_frame_field_flag
        }
        r.flag()?; // direct_8x8_inference_flag
        let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
        let mut width = width_mbs * 16;
        let mut height = height_map_units * 16 * field_factor;
        if r.flag()? {
            let (crop_x, crop_y) = match (chroma_format_idc, separate_colour_plane) {
                (0, _) | (3, true) => (1, field_factor),
                (1, _) => (2, 2 * field_factor),
                (2, _) => (2, field_factor),
                _ => (1, field_factor),
            };
            let left = u64::from(r.ue()?);
            let right = u64::from(r.ue()?);
            let top = u64::from(r.ue()?);
            let bottom = u64::from(r.ue()?);
            let crop_w = (left + right) * crop_x;
            let crop_h = (top + bottom) * crop_y;
            if crop_w >= width || crop_h >= height {
                return Err("cropping removes the whole picture".into());
            }
            width -= crop_w;
            height -= crop_h;
        }
        let width = u32::try_from(width).map_err(|_| "width overflows".to_string())?;
        let height = u32::try_from(height).map_err(|_| "height overflows".to_string())?;
        let mut frame_rate = None;
        if r.flag()? {
            // vui_parameters(), up to timing_info (E.1.1).
            if r.flag()? && r.bits(8)? == 255 {
                r.bits(16)?;
                r.bits(16)?;
            }
            if r.flag()? {
                r.flag()?;
            }
            if r.flag()? {
                r.bits(4)?;
                if r.flag()? {
                    r.bits(24)?;
                }
            }
            if r.flag()? {
                r.ue()?;
                r.ue()?;
            }
            if r.flag()? {
                let num_units_in_tick = r.bits(32)?;
                let time_scale = r.bits(32)?;
                // One frame is two ticks (E.2.1: field-based clock), hence the factor 2.
                if num_units_in_tick > 0 && time_scale > 0 {
                    frame_rate = Some((time_scale, num_units_in_tick.saturating_mul(2)));
                }
            }
        }
        Ok(Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            width,
            height,
            frame_rate,
        })
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), String> {
    let mut last: i64 = 8;
    let mut next: i64 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_clip_matches_assets_readme() {
        let clip = Clip::builtin().expect("built-in clip parses");
        let info = clip.info();
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!(info.frame_rate, FrameRate { num: 15, den: 1 });
        assert_eq!(info.frame_count, 150);
        assert_eq!(info.gop_length, 30);
        assert_eq!(info.keyframe_count, 5);
        assert_eq!(info.profile_idc, 77);
        assert_eq!(info.duration(), Duration::from_secs(10));
        assert_eq!(&info.profile_level_id()[..2], "4D");
        for (i, frame) in clip.frames().iter().enumerate() {
            assert_eq!(frame.is_keyframe(), i % 30 == 0, "frame {i}");
            assert!(!frame.is_empty());
        }
        // repeat-headers=1: every keyframe carries SPS and PPS in band.
        let first: Vec<u8> = clip.frames()[0].nal_units().map(|n| n[0] & 0x1F).collect();
        assert!(first.contains(&7) && first.contains(&8) && first.contains(&5));
    }

    #[test]
    fn frame_rate_ticks_do_not_drift() {
        let ntsc = FrameRate::new(30_000, 1_001).unwrap();
        assert_eq!(ntsc.ticks_90k(30_000), 90_000 * 1_001);
        assert_eq!(ntsc.ticks_90k(1), 3_003);
        let fifteen = FrameRate::new(30, 2).unwrap();
        assert_eq!(fifteen, FrameRate { num: 15, den: 1 });
        assert_eq!(fifteen.ticks_90k(1), 6_000);
        assert_eq!(fifteen.offset_of(15), Duration::from_secs(1));
        assert!(FrameRate::new(0, 1).is_err());
        assert!(FrameRate::new(241, 1).is_err());
        assert!(FrameRate::new(1, 2).is_err());
    }

    #[test]
    fn exp_golomb() {
        // 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3
        let data = [0b1010_0110, 0b0100_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert!(BitReader::new(&[0, 0, 0, 0, 0]).ue().is_err());
        assert!(BitReader::new(&[]).bit().is_err());
    }

    #[test]
    fn unescape_removes_emulation_prevention() {
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
        assert_eq!(unescape(&[0, 3, 0]), vec![0, 3, 0]);
    }

    #[test]
    fn rejects_garbage_and_broken_clips() {
        assert_eq!(
            Clip::from_annex_b(b"not a video"),
            Err(ClipError::NoStartCode)
        );
        assert_eq!(Clip::from_annex_b(&[]), Err(ClipError::NoStartCode));
        assert_eq!(
            Clip::from_annex_b(&[0, 0, 1, 0x80, 1, 2]),
            Err(ClipError::CorruptNal { index: 0 })
        );
        assert_eq!(
            Clip::from_annex_b(&[0, 0, 1]),
            Err(ClipError::CorruptNal { index: 0 })
        );
        assert_eq!(
            Clip::from_annex_b(&[0, 0, 1, 0x0E, 1]),
            Err(ClipError::UnsupportedNal {
                index: 0,
                nal_type: 14
            })
        );
        // A clip cut before its first keyframe's parameter sets.
        let sample = SAMPLE_H264;
        let nals = split_annex_b(sample).unwrap();
        let slice_only: Vec<u8> = nals
            .iter()
            .filter(|n| n[0] & 0x1F == 5)
            .flat_map(|n| [&[0u8, 0, 0, 1][..], n].concat())
            .collect();
        assert_eq!(Clip::from_annex_b(&slice_only), Err(ClipError::MissingSps));
        // Starting mid-GOP: drop everything up to the second frame's slice.
        let mut seen_vcl = 0;
        let mid: Vec<u8> = nals
            .iter()
            .filter(|n| {
                let t = n[0] & 0x1F;
                if t == 1 || t == 5 {
                    seen_vcl += 1;
                }
                t == 7 || t == 8 || (seen_vcl >= 2 && t == 1)
            })
            .flat_map(|n| [&[0u8, 0, 1][..], n].concat())
            .collect();
        assert_eq!(Clip::from_annex_b(&mid), Err(ClipError::FirstFrameNotIdr));
        // Truncated SPS.
        let sps = nals.iter().find(|n| n[0] & 0x1F == 7).unwrap();
        assert!(matches!(Sps::parse(&sps[..6]), Err(ClipError::BadSps(_))));
    }

    #[test]
    fn rejects_b_frames() {
        let clip = Clip::builtin().unwrap();
        let sps = clip.sps().to_vec();
        let pps = clip.pps().to_vec();
        let idr: Vec<u8> = clip.frames()[0]
            .nal_units()
            .find(|n| n[0] & 0x1F == 5)
            .unwrap()
            .to_vec();
        // Non-IDR slice header: first_mb_in_slice = 0 (bit 1), slice_type = 1 (B, code 010).
        let b_slice = vec![0x01, 0b1010_0000, 0x00];
        let stream: Vec<u8> = [&sps, &pps, &idr, &b_slice]
            .iter()
            .flat_map(|n| [&[0u8, 0, 0, 1][..], n.as_slice()].concat())
            .collect();
        assert_eq!(
            Clip::from_annex_b(&stream),
            Err(ClipError::BFrames { frame: 1 })
        );
    }
}
