//! Hostile input: every case is an error that says what is wrong, counted by kind, and never a
//! crash; a connection is closed only when nothing says where the next frame starts.

use vigil_syslog::event::Origin;
use vigil_syslog::framing::Framing;
use vigil_syslog::ingest::{IntakeError, Options, Stats, Stream, datagram};
use vigil_syslog::mapping::CameraMap;

const NOW: i64 = 1_773_144_000_000_000;

/// Each result: the event's kind, or the error's kind and text.
type Results = Vec<Result<String, (String, String)>>;

/// Feeds `chunks` to a fresh connection; returns the events' kinds or error kinds with their
/// messages, whether the connection must be closed, and its counts.
fn stream(framing: Framing, chunks: &[&[u8]]) -> (Results, bool, Stats) {
    let options = Options {
        framing,
        ..Options::default()
    };
    let mut s = Stream::new("198.51.100.7", &options);
    let mut out = Vec::new();
    let map = CameraMap::new();
    let mut push = |r: Result<vigil_events::NewEvent, IntakeError>| {
        out.push(match r {
            Ok(e) => {
                e.check().unwrap();
                Ok(e.kind)
            }
            Err(e) => Err((e.kind().to_string(), e.to_string())),
        })
    };
    for c in chunks {
        s.feed(c, NOW, &map, &mut push);
    }
    if let Some(e) = s.finish() {
        push(Err(e));
    }
    (out, s.must_close(), s.stats().clone())
}

fn one_error(framing: Framing, input: &[u8]) -> (String, String, bool) {
    let (out, closed, stats) = stream(framing, &[input]);
    let errs: Vec<_> = out.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(
        errs.len(),
        1,
        "{:?}: {out:?}",
        String::from_utf8_lossy(input)
    );
    assert_eq!(stats.errors_total(), 1);
    assert_eq!(stats.errors[errs[0].0.as_str()], 1);
    (errs[0].0.clone(), errs[0].1.clone(), closed)
}

#[test]
fn a_huge_line_is_skipped_and_the_connection_goes_on() {
    let huge = vec![b'A'; 1 << 20];
    let (out, closed, stats) = stream(Framing::Auto, &[b"<13>x ", &huge, &huge, b"\n<13>next\n"]);
    assert_eq!(out.len(), 2);
    let (kind, msg) = out[0].clone().unwrap_err();
    assert_eq!(kind, "line_too_long");
    assert_eq!(
        msg,
        "line is longer than the limit of 8192 bytes; skipped up to its end"
    );
    assert_eq!(out[1], Ok("syslog.message".to_string()));
    assert!(!closed);
    assert_eq!(stats.events, 1);
}

#[test]
fn wrong_octet_counts_close_the_connection_with_the_reason() {
    for (input, kind, says) in [
        (&b"0123 <13>x"[..], "length_malformed", "starts with '0'"),
        (b"0 ", "length_malformed", "starts with '0'"),
        (b"12a <13>x", "length_malformed", "'a' after 2 digit(s)"),
        (
            b"12\n<13>x\n",
            "length_malformed",
            "byte 0x0a after 2 digit(s)",
        ),
        (
            b"12345678901 ",
            "length_too_large",
            "octet count 12345 is larger than the limit of 8192",
        ),
        (
            b"8193 <13>x",
            "length_too_large",
            "octet count 8193 is larger",
        ),
    ] {
        let (k, msg, closed) = one_error(Framing::Auto, input);
        assert_eq!(k, kind, "{input:?}");
        assert!(msg.contains(says), "{input:?}: {msg}");
        assert!(closed, "{input:?}");
    }
    let (k, msg, closed) = one_error(Framing::OctetCounting, b"<13>x\n");
    assert_eq!(k, "length_malformed");
    assert!(
        msg.contains("expected a digit starting an octet count (RFC 5425), found '<'"),
        "{msg}"
    );
    assert!(closed);
}

#[test]
fn a_length_that_lies_is_caught_at_the_next_frame_or_by_the_parser() {
    // Too long (12 for 10): it swallows the start of the next frame; what is left is no
    // octet count (RFC 5425 framing).
    let (out, closed, _) = stream(
        Framing::OctetCounting,
        &[b"12 <13>h a: x15 <13>h a: second"],
    );
    assert!(closed);
    assert_eq!(out[0], Ok("syslog.message".into()));
    let (kind, msg) = out[1].clone().unwrap_err();
    assert_eq!(kind, "length_malformed");
    assert!(msg.contains("found byte 0x20"), "{msg}");
    // Too short: the rest of the message is read as the next frame (a line without PRI).
    let (out, closed, stats) = stream(Framing::Auto, &[b"5 <13>xy tail of it\n"]);
    assert!(!closed);
    assert_eq!(out[0], Ok("syslog.message".into()));
    assert_eq!(out[1].clone().unwrap_err().0, "pri_missing");
    assert_eq!(stats.errors["pri_missing"], 1);
}

#[test]
fn truncated_messages_at_the_end_of_a_connection() {
    let (k, msg, _) = one_error(Framing::Auto, b"100 <13>1 2026-03-10T11:00:00Z h");
    assert_eq!(k, "truncated");
    assert_eq!(
        msg,
        "connection ended inside a frame (28 of 100 bytes of an octet-counted message)"
    );
    let (k, msg, _) = one_error(Framing::Auto, b"<13>Mar 10 11:00:00 h no newline");
    assert_eq!(k, "truncated");
    assert!(msg.contains("without its LF"), "{msg}");
    // A message cut inside its header parses up to where it ends and says what is missing.
    let (k, msg, _) = one_error(Framing::Auto, b"26 <13>1 2026-03-10T11:00:00Z");
    assert_eq!(k, "header_invalid");
    assert_eq!(msg, "HOSTNAME: missing: the message ends after TIMESTAMP");
}

#[test]
fn binary_and_invalid_utf8() {
    // A TLS ClientHello sent to a plaintext port: its NUL bytes end frames (RFC 6587
    // trailer), and every piece is refused as not syslog.
    let hello = [
        0x16u8, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, b'\n',
    ];
    let (out, closed, stats) = stream(Framing::Auto, &[&hello]);
    assert_eq!(out.len(), 3);
    for r in &out {
        let (k, msg) = r.clone().unwrap_err();
        assert_eq!(k, "pri_missing");
        assert!(
            msg.starts_with("not syslog: the message does not start with '<PRI>'"),
            "{msg}"
        );
    }
    assert!(!closed);
    assert_eq!(stats.errors["pri_missing"], 3);
    // NUL bytes end a frame (RFC 6587 trailer): binary junk splits into frames, none crash.
    let junk: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
    let (out, _, stats) = stream(Framing::NonTransparent, &[&junk]);
    assert!(!out.is_empty());
    assert_eq!(stats.errors_total() + stats.events, out.len() as u64);
    // Invalid UTF-8 is replaced, and the event says so.
    let mut s = Stats::default();
    let e = datagram(
        b"<13>Mar 10 11:00:00 host app: caf\xc3 \xff\xfe ok",
        &Origin {
            peer: "198.51.100.7",
            received_us: NOW,
        },
        &Options::default(),
        &CameraMap::new(),
        &mut s,
    )
    .unwrap();
    assert_eq!(e.message, "caf\u{fffd} \u{fffd}\u{fffd} ok");
    assert_eq!(e.attributes["invalid_utf8"], "true");
}

#[test]
fn malformed_messages_each_say_what_is_wrong() {
    for (line, kind, says) in [
        (
            &b"<192>Mar 10 11:00:00 h a: x"[..],
            "pri_out_of_range",
            "PRI 192 is out of range 0-191",
        ),
        (b"<1000>x", "pri_malformed", "more than 3 digits"),
        (b"<13 x", "pri_malformed", "not closed by '>'"),
        (b"<13>2 - - - - -", "version_unsupported", "VERSION 2"),
        (
            b"<13>1 2026-02-30T00:00:00Z h a - - -",
            "timestamp_invalid",
            "day 30 is out of range for 2026-02 (1-28)",
        ),
        (
            b"<13>1 2026-03-10T24:00:00Z h a - - -",
            "timestamp_invalid",
            "hour 24",
        ),
        (
            b"<13>1 2026-03-10T10:00:00+25:00 h a - - -",
            "timestamp_invalid",
            "offset 25:00",
        ),
        (b"<13>Mar 32 10:00:00 h a: x", "timestamp_invalid", "day 32"),
        (
            b"<13>Mar 10 10:00:61 h a: x",
            "timestamp_invalid",
            "second 61",
        ),
        (
            b"<13>1 - h a - - [id p=\"unterminated] msg",
            "sd_invalid",
            "[id]: the value of p has no closing '\"'",
        ),
        (
            b"<13>1 - h a - - [id p=\"v\"x] msg",
            "sd_invalid",
            "[id]: expected SP or ']' after p",
        ),
        (
            b"<13>1 - h a - - [id p=\"v\"",
            "sd_invalid",
            "element [id] is not closed by ']'",
        ),
        (
            b"<13>1 - h a - - [id p=v] msg",
            "sd_invalid",
            "the value of p does not start with '\"'",
        ),
        (
            b"<13>1 - h a - - [id p] msg",
            "sd_invalid",
            "expected '=' after parameter name p",
        ),
    ] {
        let mut s = Stats::default();
        let err = datagram(
            line,
            &Origin {
                peer: "198.51.100.7",
                received_us: NOW,
            },
            &Options::default(),
            &CameraMap::new(),
            &mut s,
        )
        .expect_err(&String::from_utf8_lossy(line));
        assert_eq!(err.kind(), kind, "{}", String::from_utf8_lossy(line));
        assert!(
            err.to_string().contains(says),
            "{}: {err}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(s.errors[kind], 1);
        assert!(!err.is_fatal());
    }
}

#[test]
fn an_oversized_datagram_is_refused() {
    let mut s = Stats::default();
    let big = vec![b'<'; 70_000];
    let err = datagram(
        &big,
        &Origin {
            peer: "198.51.100.7",
            received_us: NOW,
        },
        &Options::default(),
        &CameraMap::new(),
        &mut s,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "datagram of 70000 bytes is larger than the limit of 8192"
    );
    assert_eq!(s.errors["datagram_too_large"], 1);
}

/// A deterministic stream of random and mutated input through both paths: no panic, every
/// result counted, events within the model's limits.
#[test]
fn random_and_mutated_input_never_crashes() {
    let seeds: &[&[u8]] = &[
        b"<189>4711: *Mar  1 00:12:41.123 UTC: %DOT1X-5-FAIL: Authentication failed for client (0050.5687.19af) on Interface Gi1/0/3 AuditSessionID 0A",
        b"<165>1 2026-03-10T11:59:00.000Z ex dot1xd 1 DOT1XD_USR_ACCESS_DENIED [junos@2636 a=\"b\\\"c\"] Dot1x User x",
        b"<14>2026-01-22T06:50:58.787392+10:00 h intfd[769]: Event|404|LOG_INFO|AMM|1/1|Link status for interface 1/1/22 is down",
        b"<12>Oct 20 15:26:17 10.1.1.5 03214 dca: Authentication failed for client 0025618D7920 on port 1: x.",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let map = CameraMap::new();
    let mut total = Stats::default();
    for round in 0..4000 {
        let mut b = seeds[round % seeds.len()].to_vec();
        for _ in 0..(rnd() % 8) {
            let i = (rnd() as usize) % (b.len() + 1);
            match rnd() % 4 {
                0 if i < b.len() => b[i] = rnd() as u8,
                1 => b.insert(i, rnd() as u8),
                2 if i < b.len() => {
                    b.remove(i);
                }
                _ => b.truncate(i),
            }
        }
        let origin = Origin {
            peer: "198.51.100.7",
            received_us: (rnd() as i64) >> (rnd() % 64),
        };
        let mut s = Stats::default();
        if let Ok(e) = datagram(&b, &origin, &Options::default(), &map, &mut s) {
            e.check().unwrap();
        }
        assert_eq!(s.events + s.errors_total(), 1);
        let mut st = Stream::new("198.51.100.7", &Options::default());
        for c in b.chunks(1 + (rnd() % 16) as usize) {
            st.feed(c, origin.received_us, &map, |r| {
                if let Ok(e) = r {
                    e.check().unwrap();
                }
            });
        }
        st.finish();
        total.merge(st.stats());
    }
    assert!(total.events > 0 && total.errors_total() > 0, "{total:?}");
}
