//! The playback seek index: an ISO BMFF segment index (`sidx`) of a run of recorded GOPs,
//! built from the GOP rows of the database, so a player seeks to the GOP it needs instead of
//! reading every fragment before it. See docs/api.md (playback).
//!
//! One reference per recorded fragment (GOP), each starting with a sync sample. The index
//! reads nothing from the segment files: sizes are the rows' byte lengths, times their
//! wall-clock starts, which the recorder derives from the same 90 kHz decode times it writes
//! into the fragments (`start_us = time_origin + tfdt`), so the index and the fragments agree
//! to within one tick.

use mp4_atom::{Encode, SegmentReference, Sidx};

use crate::fmp4::TIMESCALE;
use crate::store::GopRow;

/// `sidx` counts references in 16 bits; longer runs merge neighbouring GOPs per reference.
const MAX_REFERENCES: usize = u16::MAX as usize;
/// A reference's byte size has 31 bits.
const MAX_REFERENCED_SIZE: u64 = 0x7FFF_FFFF;
/// SAP type 1: every reference starts with an IDR picture (each GOP does).
const SAP_TYPE_IDR: u8 = 1;

/// The `sidx` box of `gops` (in recorded order, contiguous in the file that follows the
/// box). Times are relative to the first GOP's start: the playback MP4's edit list starts
/// its presentation there, and ffmpeg (Chromium's demuxer) compares a seek target with
/// `earliest_presentation_time` on that edited timeline. `None` when there is nothing to
/// index or a reference would not fit the box's fields (more than 2 GiB of video in one
/// reference); the MP4 is then served without an index, which players read sequentially.
pub fn segment_index(gops: &[GopRow]) -> Option<Vec<u8>> {
    let first = gops.first()?;
    let per_reference = gops.len().div_ceil(MAX_REFERENCES);
    let end_us = gops.last().map(|g| g.start_us + g.duration_us)?;
    // Timescale: 90 kHz like the fragments unless a reference would last longer than u32
    // ticks (13 h, a long recording gap inside the range); then milliseconds (49 days).
    let chunks: Vec<&[GopRow]> = gops.chunks(per_reference).collect();
    let longest_us = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let next = chunks.get(i + 1).map_or(end_us, |n| n[0].start_us);
            next.saturating_sub(c[0].start_us)
        })
        .max()
        .unwrap_or(0);
    let timescale = if ticks(longest_us, TIMESCALE) <= u64::from(u32::MAX) {
        TIMESCALE
    } else {
        1_000
    };
    let mut references = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let size: u64 = chunk.iter().map(|g| g.len.max(0) as u64).sum();
        if size > MAX_REFERENCED_SIZE {
            return None;
        }
        let start = ticks(chunk[0].start_us - first.start_us, timescale);
        let next_us = chunks.get(i + 1).map_or(end_us, |n| n[0].start_us);
        let next = ticks(next_us - first.start_us, timescale);
        references.push(SegmentReference {
            reference_type: false,
            referenced_size: size as u32,
            subsegment_duration: u32::try_from(next.saturating_sub(start)).ok()?,
            starts_with_sap: true,
            sap_type: SAP_TYPE_IDR,
            sap_delta_time: 0,
        });
    }
    let sidx = Sidx {
        reference_id: 1,
        timescale,
        earliest_presentation_time: 0,
        first_offset: 0,
        references,
    };
    let mut out = Vec::with_capacity(32 + 12 * sidx.references.len());
    sidx.encode(&mut out).ok()?;
    Some(out)
}

/// Microseconds (never negative here) in `timescale` ticks, rounded to nearest, computed on
/// cumulative times so that rounding never accumulates over a run.
fn ticks(us: i64, timescale: u32) -> u64 {
    let us = u128::from(us.max(0) as u64);
    ((us * u128::from(timescale) + 500_000) / 1_000_000) as u64
}

#[cfg(test)]
mod tests {
    use mp4_atom::{Decode, Sidx};

    use super::*;

    fn gop(start_us: i64, duration_us: i64, len: i64) -> GopRow {
        GopRow {
            camera_id: "c".into(),
            seq: 1,
            gop_no: 0,
            start_us,
            duration_us,
            offset: 0,
            len,
            frames: 60,
            sha256: vec![0; 32],
        }
    }

    fn decode(b: &[u8]) -> Sidx {
        Sidx::decode(&mut &b[..]).unwrap()
    }

    #[test]
    fn one_reference_per_gop_with_sizes_and_durations_from_the_rows() {
        let t0 = 1_765_000_000_000_000;
        let gops = [
            gop(t0, 2_000_000, 100),
            gop(t0 + 2_000_000, 2_000_000, 200),
            // A 10 s recording gap: the reference before it lasts until recording resumes.
            gop(t0 + 14_000_000, 1_000_011, 300),
        ];
        let s = decode(&segment_index(&gops).unwrap());
        assert_eq!(s.timescale, 90_000);
        assert_eq!(s.earliest_presentation_time, 0);
        assert_eq!(s.first_offset, 0);
        let sizes: Vec<u32> = s.references.iter().map(|r| r.referenced_size).collect();
        assert_eq!(sizes, [100, 200, 300]);
        let durations: Vec<u32> = s.references.iter().map(|r| r.subsegment_duration).collect();
        assert_eq!(durations, [180_000, 1_080_000, 90_001]);
        assert!(
            s.references
                .iter()
                .all(|r| r.starts_with_sap && r.sap_type == 1 && !r.reference_type)
        );
    }

    #[test]
    fn rounding_never_accumulates() {
        // 1/30 s GOPs: 33,333 µs each; the sum of durations equals the rounded total.
        let t0 = 1_000_000;
        let gops: Vec<GopRow> = (0..3000)
            .map(|i| gop(t0 + i * 1_000_000 / 30, 33_333, 10))
            .collect();
        let s = decode(&segment_index(&gops).unwrap());
        let total: u64 = s
            .references
            .iter()
            .map(|r| u64::from(r.subsegment_duration))
            .sum();
        let end = gops.last().map(|g| g.start_us + g.duration_us).unwrap();
        assert_eq!(total, ticks(end - t0, 90_000));
    }

    #[test]
    fn more_gops_than_a_sidx_holds_are_merged_per_reference() {
        let gops: Vec<GopRow> = (0..70_000)
            .map(|i| gop(i * 1_000_000, 1_000_000, 7))
            .collect();
        let s = decode(&segment_index(&gops).unwrap());
        assert_eq!(s.references.len(), 35_000);
        assert!(s.references.iter().all(|r| r.referenced_size == 14));
        assert_eq!(s.references[0].subsegment_duration, 180_000);
    }

    #[test]
    fn a_gap_longer_than_90khz_ticks_hold_switches_to_milliseconds() {
        let day = 86_400_000_000;
        let gops = [gop(0, 2_000_000, 1), gop(day, 2_000_000, 1)];
        let s = decode(&segment_index(&gops).unwrap());
        assert_eq!(s.timescale, 1_000);
        let durations: Vec<u32> = s.references.iter().map(|r| r.subsegment_duration).collect();
        assert_eq!(durations, [86_400_000, 2_000]);
    }

    #[test]
    fn nothing_or_too_large_gives_no_index() {
        assert!(segment_index(&[]).is_none());
        assert!(segment_index(&[gop(0, 1, 0x8000_0000)]).is_none());
    }
}
