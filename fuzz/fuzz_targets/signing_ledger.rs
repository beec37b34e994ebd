//! Fuzzes the evidence-ledger parser (vigil-signing): record framing, every record type's
//! payload decoding, torn-tail detection, skipping interrupted writes, and the MP4 top-level
//! box scanner used on segment files. Any input must end in records, a reported stop, or an
//! error: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_signing::mp4::scan_reader;
use vigil_signing::record::{RecordReader, Stop, decode_body, encode_record};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut r) = RecordReader::new(data) {
        let mut end = 8u64;
        let mut skipped = 0;
        while let Ok(Some(rec)) = r.next_record() {
            // Bytes an interrupted write left are skipped right before the record after them.
            if let Some(w) = r.interrupted_writes().get(skipped) {
                assert_eq!(w.offset, end);
                end += w.bytes;
                skipped += 1;
            }
            assert_eq!(rec.offset, end);
            end += rec.encoded_len;
            let _ = rec.body.type_name();
            if let Some(t) = rec.body.time_us() {
                let _ = vigil_signing::fmt_time(t);
            }
        }
        assert_eq!(r.good_len(), end);
        assert_eq!(r.interrupted_writes().len(), skipped);
        match r.stop() {
            Some(Stop::Torn { offset, bytes }) => assert_eq!(offset + bytes, data.len() as u64),
            Some(Stop::Corrupt { offset, .. }) => assert!(*offset < data.len() as u64),
            None => assert_eq!(end, data.len() as u64),
        }
    }
    // Each record carries the SHA-256 of its body, which mutation almost never keeps right, so
    // the reader stops at the first changed record. Decoding the input as one body against its
    // own hash reaches every payload decoder; what decodes must encode back to the same bytes.
    let hash = vigil_signing::sha256(data);
    if let Ok((seq, prev, body)) = decode_body(data, &hash) {
        let mut out = Vec::new();
        assert_eq!(encode_record(seq, &prev, &body, &mut out), hash);
        assert_eq!(&out[4..out.len() - 32], data);
    }
    let s = scan_reader(data, data.len() as u64, &mut |_| {}).expect("reading a slice cannot fail");
    let covered: u64 = s.init.len + s.fragments.iter().map(|u| u.len).sum::<u64>();
    assert_eq!(covered, data.len() as u64);
});
