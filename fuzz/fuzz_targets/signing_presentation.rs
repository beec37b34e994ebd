//! Fuzzes the export's presentation init (vigil-signing `bundle::presentation`): the recorded
//! init and the first fragment's `moof` come from a bundle's `recorded-init.mp4` and
//! `video.mp4` (or a segment file on export), the times from ledger records. Parsing must
//! refuse, never panic; a timeline must be the one docs/signing-format.md defines; an edited
//! init must be deterministic, keep the timescale, end with the `udta` it appends, and refuse a
//! second edit.
//!
//! Input layout: start_us (i64 BE), end_us (i64 BE), init length (u32 BE), the init, then the
//! fragment (the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_signing::bundle::presentation::{
    PresentationError, Timeline, first_decode_time, movie_timescale, presentation_init, timeline,
};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<20>() else {
        return;
    };
    let start_us = i64::from_be_bytes(head[..8].try_into().unwrap());
    let end_us = i64::from_be_bytes(head[8..16].try_into().unwrap());
    let init_len = u32::from_be_bytes(head[16..].try_into().unwrap()) as usize;
    let (init, fragment) = rest.split_at(init_len.min(rest.len()));

    let scale = movie_timescale(init);
    let tfdt = first_decode_time(fragment);
    let t = match timeline(init, fragment, start_us, end_us) {
        Ok(t) => {
            // duration = ceil((end - start) * timescale / 10^6), media_time = the tfdt.
            let span = u128::try_from(i128::from(end_us) - i128::from(start_us)).unwrap();
            let scale = u128::from(*scale.as_ref().unwrap());
            assert_eq!(u128::from(t.duration), (span * scale).div_ceil(1_000_000));
            assert_eq!(t.media_time, *tfdt.as_ref().unwrap());
            assert_eq!(t.start_us, start_us);
            t
        }
        // Any timeline a manifest could state, to reach the edit with whatever the init holds.
        Err(_) => Timeline {
            media_time: end_us as u64,
            duration: init_len as u64,
            start_us,
        },
    };
    let Ok(out) = presentation_init(init, &t) else {
        return;
    };
    assert_eq!(presentation_init(init, &t).unwrap(), out, "deterministic");
    assert_eq!(movie_timescale(&out).ok(), scale.ok(), "timescale kept");
    // The recorded ftyp comes first, verbatim.
    let ftyp_len = top_level(init)[0].len();
    assert_eq!(out[..ftyp_len], init[..ftyp_len]);
    // ftyp, then a moov whose last child is the udta with one ©day item (the start in RFC
    // 3339), as the format says; a player reading the boxes must find it there.
    let top = top_level(&out);
    assert_eq!(top.len(), 2, "ftyp and moov");
    assert_eq!(&top[1][4..8], b"moov");
    let moov = top_level(&top[1][8..]);
    let udta = moov.last().expect("moov has children");
    let day = vigil_signing::fmt_time(t.start_us);
    let mut item = (day.len() as u16).to_be_bytes().to_vec();
    item.extend_from_slice(&0x55c4u16.to_be_bytes());
    item.extend_from_slice(day.as_bytes());
    let mut want = ((16 + item.len()) as u32).to_be_bytes().to_vec();
    want.extend_from_slice(b"udta");
    want.extend_from_slice(&((8 + item.len()) as u32).to_be_bytes());
    want.extend_from_slice(b"\xa9day");
    want.extend_from_slice(&item);
    assert_eq!(*udta, &want[..], "udta is moov's last child");
    // Editing the edited init again would stack edit lists and user data.
    assert!(matches!(
        presentation_init(&out, &t),
        Err(PresentationError::Unsupported(_))
    ));
});

/// The boxes filling `buf` as a player walks them (size 0: to the end; size 1: 64-bit size).
/// Only called on bytes the library accepted, so every size is in range.
fn top_level(buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let size = match u32::from_be_bytes(rest[..4].try_into().unwrap()) {
            0 => rest.len(),
            1 => usize::try_from(u64::from_be_bytes(rest[8..16].try_into().unwrap())).unwrap(),
            n => n as usize,
        };
        let (b, tail) = rest.split_at(size);
        out.push(b);
        rest = tail;
    }
    out
}
