//! Fuzzes the plain MP4 export (vigil-media `progressive`, `fmp4::fragment_samples`): the
//! recorded init and the fragments come from segment files, which a disk or an attacker may
//! have damaged. Reading must refuse, never panic; a layout that is built must add up (its
//! header and chunks are the whole file, every chunk lies inside its fragment, the timescale
//! divides the recorded one), in both bodies (plain export and evidence bundle).
//!
//! Input layout: start_us (i64 BE), init length (u32 BE), the init, then fragments, each as
//! its length in the segment file (u32 BE: export reads only a fragment's head, the `moof`
//! and the `mdat` header), the head's length (u16 BE) and the head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_media::fmp4::{TrackDefaults, fragment_samples};
use vigil_media::progressive::{Body, SKIP_HEADER, layout, track_defaults};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<12>() else {
        return;
    };
    let start_us = i64::from_be_bytes(head[..8].try_into().unwrap());
    let init_len = u32::from_be_bytes(head[8..].try_into().unwrap()) as usize;
    let (init, mut rest) = rest.split_at(init_len.min(rest.len()));
    let defaults = track_defaults(init).unwrap_or(TrackDefaults {
        track_id: 1,
        ..TrackDefaults::default()
    });
    let mut fragments = Vec::new();
    let mut lens = Vec::new();
    while let Some((lens_bytes, tail)) = rest.split_first_chunk::<6>() {
        let declared = u64::from(u32::from_be_bytes(lens_bytes[..4].try_into().unwrap()));
        let len = usize::from(u16::from_be_bytes(lens_bytes[4..].try_into().unwrap()));
        let (frag, tail) = tail.split_at(len.min(tail.len()));
        rest = tail;
        if let Ok(f) = fragment_samples(frag, declared, defaults) {
            let samples: usize = f.runs.iter().map(|r| r.samples as usize).sum();
            assert_eq!(samples, f.samples.len());
            for r in &f.runs {
                assert!(r.offset + r.len <= declared);
            }
            fragments.push(f);
            lens.push(declared);
        }
    }
    if let Ok(l) = layout(init, &fragments, start_us, Body::Samples) {
        let body: u64 = l.chunks.iter().map(|c| c.len).sum();
        assert_eq!(l.header.len() as u64 + body, l.len);
        for c in &l.chunks {
            assert!(c.fragment < fragments.len());
            assert!(c.offset + c.len <= lens[c.fragment]);
        }
        assert!(l.media_timescale > 0);
        assert!(l.samples > 0);
    }
    // The evidence form: the same tables over the whole fragments, each behind a skip header.
    if let Ok(l) = layout(init, &fragments, start_us, Body::Fragments { lens: &lens }) {
        let body: u64 = lens.iter().map(|n| n + SKIP_HEADER).sum();
        assert_eq!(l.header.len() as u64 + body, l.len);
    }
});
