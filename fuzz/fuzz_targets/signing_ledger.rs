//! Fuzzes the evidence-ledger parser (vigil-signing): record framing, every record type's
//! payload decoding, torn-tail detection, skipping interrupted writes, and the MP4 top-level
//! box scanner used on segment files. Any input must end in records, a reported stop, or an
//! error: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_signing::mp4::scan_reader;
use vigil_signing::record::{RecordReader, Stop};

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
            let _ = (rec.body.type_name(), rec.body.time_us());
        }
        assert_eq!(r.good_len(), end);
        assert_eq!(r.interrupted_writes().len(), skipped);
        match r.stop() {
            Some(Stop::Torn { offset, bytes }) => assert_eq!(offset + bytes, data.len() as u64),
            Some(Stop::Corrupt { offset, .. }) => assert!(*offset < data.len() as u64),
            None => assert_eq!(end, data.len() as u64),
        }
    }
    let s = scan_reader(data, data.len() as u64, &mut |_| {}).expect("reading a slice cannot fail");
    let covered: u64 = s.init.len + s.fragments.iter().map(|u| u.len).sum::<u64>();
    assert_eq!(covered, data.len() as u64);
});
