//! Generic events (`vigil_intake::generic`, docs/events-in.md): a stream cut into lines with a
//! size cap and each line parsed as text or JSON. Whatever the bytes and however they are
//! split into reads, the same lines and errors come out, no line is over the cap, and every
//! event passes `NewEvent::check` once sanitized (as the bus does), with a `generic` kind and
//! the listener's own attributes. Input: read size (byte 0), cap (byte 1), then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_events::model::MAX_ATTRIBUTES;
use vigil_intake::generic::{Auth, Lines, Sender, parse};
use vigil_syslog::TimePolicy;

fn run(stream: &[u8], step: usize, max: usize) -> Vec<Result<Vec<u8>, String>> {
    let mut lines = Lines::new(max);
    let mut out = Vec::new();
    let mut push = |r: Result<&[u8], vigil_intake::generic::GenericError>| {
        if let Ok(l) = &r {
            assert!(l.len() <= max, "line of {} > {max}", l.len());
        }
        out.push(r.map(<[u8]>::to_vec).map_err(|e| e.to_string()));
    };
    for chunk in stream.chunks(step) {
        lines.feed(chunk, &mut push);
        assert!(lines.pending() <= max);
    }
    lines.finish(&mut push);
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let step = 1 + usize::from(data[0] % 64);
    let max = 2048 + usize::from(data[1]) * 64;
    let stream = &data[2..];
    let whole = run(stream, stream.len().max(1), max);
    assert_eq!(run(stream, step, max), whole, "lines depend on the split");
    let sender = Sender {
        name: "acs-1",
        peer: "192.0.2.7",
        auth: Auth::Certificate,
        transport: "tls",
        received_us: 1_796_637_600_000_000,
    };
    for line in whole.iter().flatten() {
        match parse(line, &sender, &TimePolicy::default()) {
            Ok(Some(e)) => {
                assert!(
                    e.kind == "generic" || e.kind.starts_with("generic."),
                    "{}",
                    e.kind
                );
                assert!(e.attributes.len() <= MAX_ATTRIBUTES);
                assert_eq!(e.attributes["peer"], "192.0.2.7");
                assert_eq!(e.attributes["auth"], "certificate");
                let e = e.sanitized();
                if let Err(err) = e.check() {
                    panic!("{err}: {e:?}");
                }
            }
            Ok(None) => {}
            Err(e) => assert!(!e.to_string().is_empty() && !e.kind().is_empty()),
        }
    }
});
