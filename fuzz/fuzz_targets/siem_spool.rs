//! Fuzzes the SIEM spool reader (vigil-siem): segment files are read back after a restart or
//! a crash, so their header, record framing (length, CRC-32, sequence), torn tails and the
//! JSON events inside are outside input. Every decoded event is then formatted as an RFC 5424
//! message, plain and CEF, which must keep its size limit and its framing and carry no line
//! break. Any input must end in records, a reported stop, or an error: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_siem::format::{Formatter, Payload, frame};
use vigil_siem::spool::{HEADER_LEN, decode_event, decode_record, scan_segment};

fn check_event(data: &[u8]) {
    let Ok(event) = decode_event(data) else {
        return;
    };
    for payload in [Payload::Text, Payload::Cef] {
        let mut f = Formatter::new("vigil-fuzz", payload);
        f.max_message_bytes = 2048;
        let m = f.message(7, &event);
        assert!(m.len() <= 2048, "{} bytes", m.len());
        assert!(!m.contains(['\n', '\r', '\0']), "{m:?}");
        let mut out = Vec::new();
        frame(m.as_bytes(), &mut out);
        let (len, rest) = out.split_at(out.iter().position(|&b| b == b' ').unwrap());
        assert_eq!(
            std::str::from_utf8(len).unwrap().parse::<usize>().unwrap(),
            rest.len() - 1
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(scan) = scan_segment(data) {
        assert!(scan.good_len <= data.len());
        assert_eq!(scan.stop.is_none(), scan.good_len == data.len());
        // Walking the good records again gives the same end.
        let mut at = HEADER_LEN;
        let mut seq = scan.header.first_seq;
        for _ in 0..scan.records {
            let r = decode_record(&data[at..]).unwrap().unwrap();
            assert_eq!(r.seq, seq);
            check_event(r.payload);
            at += r.len;
            seq += 1;
        }
        assert_eq!(at, scan.good_len);
        assert_eq!(seq, scan.end_seq);
    }
    // Records without a header, and the input as one payload (the CRC rarely survives
    // mutation, so this reaches the event decoder and the formatter directly).
    let mut rest = data;
    while let Ok(Some(r)) = decode_record(rest) {
        rest = &rest[r.len..];
    }
    check_event(data);
});
