//! Syslog stream framing (`vigil_syslog::framing::Decoder`, RFC 6587 octet counting and LF
//! lines): whatever the bytes and however they are split into reads, the decoder yields the
//! same frames and errors, never a frame over its limit, holds at most one frame, and yields
//! nothing after a fatal error. Input: framing (byte 0 % 3), limit (byte 1), read sizes
//! (byte 2), then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_syslog::framing::{Decoder, FrameError, Framing};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let framing = match data[0] % 3 {
        0 => Framing::Auto,
        1 => Framing::OctetCounting,
        _ => Framing::NonTransparent,
    };
    let max = 2048 + usize::from(data[1]) * 64;
    let step = 1 + usize::from(data[2] % 64);
    let stream = &data[3..];

    let mut whole = Decoder::new(framing, max);
    let mut expected: Vec<Result<Vec<u8>, FrameError>> = whole.feed_collect(stream);
    if let Some(e) = whole.finish() {
        expected.push(Err(e));
    }

    let mut dec = Decoder::new(framing, max);
    let mut got = Vec::new();
    let mut failed = false;
    for chunk in stream.chunks(step) {
        dec.feed(chunk, |r| {
            assert!(!failed, "a result after a fatal error");
            match &r {
                Ok(f) => assert!(f.len() <= dec_max(max), "frame of {} > {max}", f.len()),
                Err(e) => failed |= e.is_fatal(),
            }
            got.push(r);
        });
        assert!(dec.buffered() <= dec_max(max));
        assert_eq!(dec.is_failed(), failed);
    }
    if let Some(e) = dec.finish() {
        got.push(Err(e));
    }
    assert_eq!(
        got, expected,
        "the frames depend on how the stream was split"
    );
});

fn dec_max(max: usize) -> usize {
    max.clamp(
        vigil_syslog::framing::MIN_MAX_MESSAGE,
        vigil_syslog::framing::MAX_MAX_MESSAGE,
    )
}
