//! Deterministic mutation runs over real ledgers, segment files, manifests and bundles: the same
//! properties the cargo-fuzz targets check, run in every `cargo test` so a panic on hostile input
//! is caught without a fuzzing toolchain.

mod common;

use std::fs;

use common::*;
use vigil_signing::bundle::{self, ExportRange, ExporterIdentity, TrustAnchor};
use vigil_signing::mp4::scan_reader;
use vigil_signing::record::{RecordReader, Stop};
use vigil_signing::{FailureKind, TimeRange, verify_recording};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 => {
                let i = rng.below(v.len() + 1);
                let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                v.splice(i..i, junk);
            }
            3 if v.len() > 8 => {
                let a = rng.below(v.len());
                let b = (a + rng.below(200)).min(v.len());
                v.drain(a..b);
            }
            _ if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0, 0xff, 0x7f, 0x80][rng.below(4)];
            }
            _ => {}
        }
    }
    v
}

fn parse_ledger_like_fuzzer(data: &[u8]) {
    if let Ok(mut r) = RecordReader::new(data) {
        let mut end = 8u64;
        while let Some(rec) = r.next_record().unwrap() {
            assert_eq!(rec.offset, end);
            end += rec.encoded_len;
        }
        match r.stop() {
            Some(Stop::Torn { offset, bytes }) => assert_eq!(offset + bytes, data.len() as u64),
            Some(Stop::Corrupt { offset, .. }) => assert!(*offset < data.len() as u64),
            None => assert_eq!(end, data.len() as u64),
        }
    }
    let s = scan_reader(data, data.len() as u64, &mut |_| {}).unwrap();
    assert_eq!(
        s.init.len + s.fragments.iter().map(|u| u.len).sum::<u64>(),
        data.len() as u64
    );
}

#[test]
fn mutated_ledgers_and_segments_never_panic_and_never_verify() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let ledger = fs::read(r.ledger()).unwrap();
    let seg = fs::read(r.seg_path(1)).unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for i in 0..300 {
        let bad = mutate(&mut rng, &ledger);
        parse_ledger_like_fuzzer(&bad);
        parse_ledger_like_fuzzer(&mutate(&mut rng, &seg));
        if bad == ledger {
            continue;
        }
        fs::write(r.ledger(), &bad).unwrap();
        match verify_recording(
            CAMERA,
            &r.ledger(),
            &r.video(),
            TimeRange::all(),
            &ca.trust(),
            &mut |_, _| {},
        ) {
            // Only a cut at a record boundary of the unsigned... there is none in a closed ledger,
            // so any accepted change must at least be reported.
            Ok(rep) => assert!(
                !rep.is_verified() || is_tail_cut(&ledger, &bad),
                "mutation {i} verified: {} (orig {} bytes, mutated {} bytes, common prefix {})",
                rep.summary(),
                ledger.len(),
                bad.len(),
                ledger.iter().zip(&bad).take_while(|(a, b)| a == b).count()
            ),
            Err(e) => assert!(e.to_string().contains("not a vigil ledger"), "{e}"),
        }
    }
}

/// Cutting whole records off the end of a ledger (possibly leaving a torn partial record, which
/// a crash also leaves) is the one change a hash chain cannot see; anchoring the head elsewhere
/// closes it (documented limitation).
fn is_tail_cut(orig: &[u8], bad: &[u8]) -> bool {
    let Ok(mut r) = RecordReader::new(bad) else {
        return false;
    };
    while let Ok(Some(_)) = r.next_record() {}
    let good = r.good_len() as usize;
    !matches!(r.stop(), Some(Stop::Corrupt { .. }))
        && good < orig.len()
        && orig[..good] == bad[..good]
}

#[test]
fn mutated_segment_files_are_always_detected() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let seg = fs::read(r.seg_path(1)).unwrap();
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for i in 0..200 {
        let bad = mutate(&mut rng, &seg);
        if bad == seg {
            continue;
        }
        fs::write(r.seg_path(1), &bad).unwrap();
        let rep = r.verify(&ca);
        let f = rep
            .failure
            .unwrap_or_else(|| panic!("mutation {i} went unnoticed"));
        assert_ne!(f.kind, FailureKind::Unsigned, "mutation {i}: {f}");
        assert_eq!(f.segment, Some(1), "mutation {i}: {f}");
    }
}

#[test]
fn mutated_bundles_never_panic_and_never_verify() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let tmp = tempfile::tempdir().unwrap();
    let mp4 = tmp.path().join("e.mp4");
    let first = fs::read(r.seg_path(0)).unwrap();
    let mut v = first[..r.frags[0].offset as usize].to_vec();
    for f in &r.frags[0..5] {
        v.extend_from_slice(&first[f.offset as usize..(f.offset + f.len) as usize]);
    }
    fs::write(&mp4, v).unwrap();
    let dir = tmp.path().join("b");
    bundle::write(
        &dir,
        &mp4,
        &r.ledger(),
        &ExportRange {
            camera_id: CAMERA.into(),
            from_us: None,
            to_us: None,
        },
        &ExporterIdentity {
            user: "u".into(),
            server: "s".into(),
        },
        &ca.identity("rec-1"),
        &AsRecorded,
    )
    .unwrap();
    let trust = TrustAnchor::CaCert(ca.cert_pem.clone());
    assert!(
        bundle::verify(&dir, &trust, &AsRecorded, &mut |_, _| {})
            .unwrap()
            .is_verified()
    );
    let files = [
        "video.mp4",
        "manifest.json",
        "ledger-excerpt.vgl",
        "export.json",
        "export.sig",
        "certs/exporter.pem",
    ];
    let mut rng = Rng(0x0bad_5eed_0bad_5eed);
    for i in 0..240 {
        let name = files[i % files.len()];
        let p = dir.join(name);
        let orig = fs::read(&p).unwrap();
        let bad = mutate(&mut rng, &orig);
        if bad == orig {
            continue;
        }
        fs::write(&p, &bad).unwrap();
        if name == "manifest.json" || name == "export.json" {
            let _ = bundle::parse_manifest(&bad);
            let _ = bundle::parse_statement(&bad);
        }
        if let Ok(rep) = bundle::verify(&dir, &trust, &AsRecorded, &mut |_, _| {}) {
            assert!(!rep.is_verified(), "mutation {i} of {name} verified");
        }
        fs::write(&p, &orig).unwrap();
    }
}
