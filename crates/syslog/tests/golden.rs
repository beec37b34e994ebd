//! The vendor lines of tests/data/*.txt (see tests/data/README.md): each becomes the event its
//! `# expect:` lines describe, and every sample says where it comes from.

use std::path::Path;

use vigil_events::NewEvent;
use vigil_syslog::event::{Origin, TimePolicy};
use vigil_syslog::ingest::{Options, Stats, Stream, datagram};
use vigil_syslog::mapping::CameraMap;
use vigil_syslog::time::format_utc;

/// 2026-03-10T12:00:00Z
const NOW: i64 = 1_773_144_000_000_000;
const PEER: &str = "192.0.2.10";

fn camera_map() -> CameraMap {
    let mut m = CameraMap::new();
    m.add_port(PEER, "Gi1/0/3", "lobby").unwrap();
    m.add_port("ex-lobby", "ge-0/0/2", "garage").unwrap();
    m.add_port("TSV-CX6000-24-AS01", "1/1/22", "dock").unwrap();
    m.add_mac("6c:2b:59:12:34:56", "yard").unwrap();
    m
}

struct Sample {
    file: String,
    line_no: usize,
    source: String,
    expects: Vec<(String, bool, String)>,
    line: String,
}

fn samples() -> Vec<Sample> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let (mut source, mut expects) = (String::new(), Vec::new());
        for (i, line) in text.lines().enumerate() {
            if let Some(s) = line.strip_prefix("# source:") {
                source = s.trim().to_string();
            } else if let Some(e) = line.strip_prefix("# expect:") {
                let (k, contains, v) = match e.split_once(" = ") {
                    Some((k, v)) => (k, false, v),
                    None => {
                        let (k, v) = e.split_once(" ~ ").expect("FIELD = VALUE or FIELD ~ TEXT");
                        (k, true, v)
                    }
                };
                expects.push((k.trim().to_string(), contains, v.trim().to_string()));
            } else if line.starts_with('<') {
                out.push(Sample {
                    file: name.clone(),
                    line_no: i + 1,
                    source: std::mem::take(&mut source),
                    expects: std::mem::take(&mut expects),
                    line: line.to_string(),
                });
            }
        }
    }
    out
}

fn field(e: &NewEvent, k: &str) -> Option<String> {
    match k {
        "kind" => Some(e.kind.clone()),
        "severity" => Some(e.severity.to_string()),
        "camera" => e.camera.clone(),
        "source" => Some(e.source.name.clone()),
        "message" => Some(e.message.clone()),
        "time" => Some(format_utc(e.time_us)),
        _ => e.attributes.get(k).cloned(),
    }
}

#[test]
fn every_golden_line_becomes_its_event() {
    let map = camera_map();
    let samples = samples();
    assert!(samples.len() >= 25, "only {} samples", samples.len());
    let mut failures = Vec::new();
    for s in &samples {
        let at = format!("{}:{}", s.file, s.line_no);
        assert!(!s.source.is_empty(), "{at}: no '# source:'");
        assert!(!s.expects.is_empty(), "{at}: no '# expect:'");
        let mut stats = Stats::default();
        let origin = Origin {
            peer: PEER,
            received_us: NOW,
        };
        let e = match datagram(
            s.line.as_bytes(),
            &origin,
            &Options::default(),
            &map,
            &mut stats,
        ) {
            Ok(e) => e,
            Err(err) => {
                failures.push(format!("{at}: {err}"));
                continue;
            }
        };
        e.check().unwrap();
        for (k, contains, want) in &s.expects {
            let got = field(&e, k);
            let ok = match (want.as_str(), &got, contains) {
                ("-", None, _) => true,
                (_, Some(g), false) => g == want,
                (_, Some(g), true) => g.contains(want.as_str()),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{at}: {k}: want {want:?}, got {got:?}\n  event: {e:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_same_lines_over_tcp_in_both_framings_in_one_stream() {
    let map = camera_map();
    let samples = samples();
    let mut stream_bytes = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if i % 2 == 0 {
            stream_bytes.extend_from_slice(format!("{} {}", s.line.len(), s.line).as_bytes());
        } else {
            stream_bytes.extend_from_slice(s.line.as_bytes());
            stream_bytes.push(b'\n');
        }
    }
    let mut st = Stream::new(PEER, &Options::default());
    let mut events = Vec::new();
    // 7-byte reads: every boundary falls somewhere inside a frame.
    for chunk in stream_bytes.chunks(7) {
        st.feed(chunk, NOW, &map, |r| events.push(r.unwrap()));
    }
    assert_eq!(st.finish(), None);
    assert_eq!(events.len(), samples.len());
    for (e, s) in events.iter().zip(&samples) {
        let want = s.expects.iter().find(|(k, ..)| k == "kind").unwrap();
        assert_eq!(e.kind, want.2, "{}:{}", s.file, s.line_no);
    }
    let stats = st.stats();
    assert_eq!(stats.events, samples.len() as u64);
    assert_eq!(stats.errors_total(), 0);
    assert!(stats.recognized["syslog.dot1x_failure"] >= 4, "{stats:?}");
}

#[test]
fn an_offset_can_be_assumed_for_zoneless_switch_clocks() {
    let map = camera_map();
    let options = Options {
        time: TimePolicy {
            assume_offset_s: Some(3600),
            ..TimePolicy::default()
        },
        ..Options::default()
    };
    let origin = Origin {
        peer: PEER,
        received_us: NOW,
    };
    let e = datagram(
        b"<189>1: Mar 10 12:59:30: %LINK-3-UPDOWN: Interface Gi1/0/3, changed state to down",
        &origin,
        &options,
        &map,
        &mut Stats::default(),
    )
    .unwrap();
    assert_eq!(format_utc(e.time_us), "2026-03-10T11:59:30.000000Z");
    assert_eq!(e.attributes["time_source"], "device");
    assert_eq!(e.camera.as_deref(), Some("lobby"));
}
