//! Groups frames into GOPs and turns a GOP into the samples of one fragment.
//!
//! RTSP gives presentation times only. With B-frames, decode order differs from presentation
//! order, so decode times are rebuilt: within a GOP the sorted presentation times, assigned in
//! decode order, are the decode times, and each sample's composition offset is the difference
//! (signed, written with `trun` version 1).

use bytes::Bytes;

use crate::fmp4::SampleInfo;

/// One encoded picture as received, in decode order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Presentation time in 90 kHz ticks since the camera's time origin.
    pub pts: i64,
    pub is_key: bool,
    /// Length-prefixed NAL units (MP4 framing). Shared, not copied, between the recorder's
    /// GOP and the live feed's cache.
    pub data: Bytes,
}

/// The sample table of one GOP, ready for [`crate::fmp4::fragment_header`]; the payload is
/// the frames' data in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GopSamples {
    pub base_decode_time: u64,
    pub duration: u64,
    pub samples: Vec<SampleInfo>,
    pub data_len: u64,
}

/// Builds fragment samples for `frames` (decode order, first one a keyframe).
///
/// `end` is the presentation time of the next GOP's first frame when known; otherwise the last
/// sample lasts as long as the average of the others (or `fallback_duration`).
pub fn gop_samples(frames: &[Frame], end: Option<i64>, fallback_duration: u32) -> GopSamples {
    let mut sorted: Vec<i64> = frames.iter().map(|f| f.pts).collect();
    sorted.sort_unstable();
    let n = frames.len();
    let mut samples = Vec::with_capacity(n);
    for (i, frame) in frames.iter().enumerate() {
        let dts = sorted[i];
        let next = match sorted.get(i + 1) {
            Some(&next) => next,
            None => match end {
                Some(end) if end > dts => end,
                _ if n > 1 => dts + (dts - sorted[0]) / (n as i64 - 1),
                _ => dts + i64::from(fallback_duration),
            },
        };
        // A camera that repeats a timestamp still needs a positive duration for players.
        let duration = u32::try_from((next - dts).max(1)).unwrap_or(u32::MAX);
        let offset = i32::try_from(frame.pts - dts).unwrap_or(0);
        samples.push(SampleInfo {
            duration,
            size: frame.data.len() as u32,
            is_sync: frame.is_key,
            composition_offset: offset,
        });
    }
    let base = sorted.first().copied().unwrap_or(0).max(0) as u64;
    GopSamples {
        base_decode_time: base,
        duration: samples.iter().map(|s| u64::from(s.duration)).sum(),
        data_len: frames.iter().map(|f| f.data.len() as u64).sum(),
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pts: i64, key: bool) -> Frame {
        Frame {
            pts,
            is_key: key,
            data: vec![0; 3].into(),
        }
    }

    #[test]
    fn without_b_frames_decode_equals_presentation() {
        let g = gop_samples(
            &[f(0, true), f(3000, false), f(6000, false)],
            Some(9000),
            3000,
        );
        assert_eq!(g.base_decode_time, 0);
        assert_eq!(g.duration, 9000);
        assert!(
            g.samples
                .iter()
                .all(|s| s.composition_offset == 0 && s.duration == 3000)
        );
        assert!(g.samples[0].is_sync && !g.samples[1].is_sync);
    }

    #[test]
    fn b_frames_get_signed_composition_offsets() {
        // Decode order I P B B with presentation 0, 9000, 3000, 6000.
        let g = gop_samples(
            &[f(0, true), f(9000, false), f(3000, false), f(6000, false)],
            Some(12000),
            3000,
        );
        let offsets: Vec<i32> = g.samples.iter().map(|s| s.composition_offset).collect();
        assert_eq!(offsets, vec![0, 6000, -3000, -3000]);
        assert_eq!(g.duration, 12000);
    }

    #[test]
    fn unknown_end_uses_average_and_repeated_timestamps_stay_positive() {
        let g = gop_samples(&[f(100, true), f(100, false)], None, 3000);
        assert!(g.samples.iter().all(|s| s.duration >= 1));
        let single = gop_samples(&[f(5, true)], None, 3000);
        assert_eq!(single.duration, 3000);
    }
}
