//! Fuzzes the evidence-ledger parser (vigil-signing): record framing, every record type's
//! payload decoding, torn-tail detection, and the MP4 top-level box scanner used on segment
//! files. Any input must end in records, a reported stop, or an error: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_signing::mp4::scan_reader;
use vigil_signing::record::{RecordReader, Stop};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut r) = RecordReader::new(data) {
        let mut end = 8u64;
        while let Ok(Some(rec)) = r.next_record() {
            assert_eq!(rec.offset, end);
            end += rec.encoded_len;
            let _ = (rec.body.type_name(), rec.body.time_us());
        }
        assert_eq!(r.good_len(), end);
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
