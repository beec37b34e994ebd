//! Tamper matrix and legitimate events for server-side verification, on synthetic recordings.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;

use common::*;
use vigil_signing::record::{Body, LEDGER_MAGIC, RetireReason};
use vigil_signing::{Event, FailureKind, LedgerOptions, LedgerWriter, SigningMode, TimeRange};

fn assert_failure(rep: &vigil_signing::Report, kind: FailureKind, at_us: i64) {
    let f = rep
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected {kind}, got verified: {rep:?}"));
    assert_eq!(f.kind, kind, "{f}");
    assert_eq!(f.at_us, Some(at_us), "{f}");
}

#[test]
fn clean_recording_verifies_with_counts() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let mut calls = 0;
    let mut last = (0, 0);
    let rep = vigil_signing::verify_recording(
        CAMERA,
        &r.ledger(),
        &r.video(),
        TimeRange::all(),
        &ca.trust(),
        &mut |d, t| {
            calls += 1;
            last = (d, t);
        },
    )
    .unwrap();
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.checked.segments, 3);
    assert_eq!(rep.checked.fragments, 15);
    let total: u64 = (0..3)
        .map(|s| fs::metadata(r.seg_path(s)).unwrap().len())
        .sum();
    assert_eq!(rep.checked.bytes, total);
    assert_eq!(rep.checked.first_us, Some(T0));
    assert_eq!(rep.checked.last_us, Some(T0 + 15 * GOP_US));
    assert!(calls > 1);
    assert_eq!(last, (total, total));
    assert_eq!(rep.camera_id, CAMERA);
    assert!(
        rep.summary()
            .starts_with("verified: 3 segments, 15 fragments")
    );
    assert_eq!(rep.signers.len(), 1);
}

#[test]
fn flipped_byte_in_fragment_is_modified() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let f = r.frags_of(1)[2].clone();
    let mut bytes = fs::read(r.seg_path(1)).unwrap();
    bytes[(f.offset + f.len / 2) as usize] ^= 0x01;
    fs::write(r.seg_path(1), bytes).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Modified, f.start_us);
    assert_eq!(rep.failure.as_ref().unwrap().segment, Some(1));
    assert!(rep.is_tampered());
}

#[test]
fn deleted_segment_file_is_missing() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    fs::remove_file(r.seg_path(1)).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Missing, r.frags_of(1)[0].start_us);
}

#[test]
fn gop_cut_out_of_segment_is_missing() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let f = r.frags_of(1)[2].clone();
    let mut bytes = fs::read(r.seg_path(1)).unwrap();
    bytes.drain(f.offset as usize..(f.offset + f.len) as usize);
    fs::write(r.seg_path(1), bytes).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Missing, f.start_us);
}

#[test]
fn swapped_segment_files_are_reordered() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let tmp = r.seg_path(99);
    fs::rename(r.seg_path(0), &tmp).unwrap();
    fs::rename(r.seg_path(1), r.seg_path(0)).unwrap();
    fs::rename(&tmp, r.seg_path(1)).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Reordered, T0);
}

#[test]
fn swapped_gops_within_segment_are_reordered() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let fr = r.frags_of(2);
    let (a, b) = (&fr[1], &fr[2]);
    let bytes = fs::read(r.seg_path(2)).unwrap();
    let mut out = bytes[..a.offset as usize].to_vec();
    out.extend_from_slice(&bytes[b.offset as usize..(b.offset + b.len) as usize]);
    out.extend_from_slice(&bytes[a.offset as usize..(a.offset + a.len) as usize]);
    out.extend_from_slice(&bytes[(b.offset + b.len) as usize..]);
    fs::write(r.seg_path(2), out).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Reordered, a.start_us);
}

#[test]
fn truncated_last_segment_is_truncated() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let f = r.frags_of(2)[3].clone();
    // Cut at a fragment boundary, and separately inside a fragment.
    let original = fs::read(r.seg_path(2)).unwrap();
    fs::write(r.seg_path(2), &original[..f.offset as usize]).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Truncated, f.start_us);
    assert!(
        rep.failure
            .unwrap()
            .detail
            .contains("2 signed GOP(s) are gone")
    );
    fs::write(r.seg_path(2), &original[..f.offset as usize + 100]).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Truncated, f.start_us);
}

#[test]
fn deleted_ledger_records_are_missing() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let recs = records(&r.ledger());
    // Remove the records of GOPs 2 and 3 of segment 1 (and nothing else).
    let victims: Vec<_> = recs
        .iter()
        .filter(|x| matches!(&x.body, Body::Fragment(f) if f.segment == 1 && (f.gop == 8 || f.gop == 9)))
        .collect();
    assert_eq!(victims.len(), 2);
    let prev_time = r.frags_of(1)[1].start_us;
    let start = victims[0].offset as usize;
    let end = (victims[1].offset + victims[1].encoded_len) as usize;
    let mut bytes = fs::read(r.ledger()).unwrap();
    bytes.drain(start..end);
    fs::write(r.ledger(), bytes).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Missing, prev_time);
    assert!(rep.failure.unwrap().detail.contains("were removed"));
}

/// The attacker edits a GOP, fixes its ledger record, re-links the chain and re-signs
/// everything after it with a key of their own (certificate from their own CA).
#[test]
fn modified_ledger_resigned_with_untrusted_key_is_unknown_key() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let f = r.frags_of(1)[1].clone();
    let mut seg = fs::read(r.seg_path(1)).unwrap();
    seg[(f.offset + 50) as usize] ^= 0xff;
    let new_hash = vigil_signing::sha256(&seg[f.offset as usize..(f.offset + f.len) as usize]);
    fs::write(r.seg_path(1), &seg).unwrap();

    let evil = ForeignKey::new();
    ledger::rewrite(&r.ledger(), |rec, prev| match rec.body {
        Body::Fragment(mut fr) if fr.gop == f.gop => {
            fr.sha256 = new_hash;
            Body::Fragment(fr)
        }
        Body::Signature { signed_at_us, .. } if rec.seq > 0 => {
            evil.signature(rec.seq, prev, signed_at_us)
        }
        b => b,
    });
    let rep = r.verify(&ca);
    // The genesis record is intact, so the very first signature is already by an unknown key.
    let fail = rep.failure.unwrap();
    assert_eq!(fail.kind, FailureKind::UnknownKey, "{fail}");
    assert!(fail.detail.contains("no trusted certificate"), "{fail}");
}

/// Only the signatures after the edit are forged: the failure points at the edited span.
#[test]
fn resigned_tail_points_at_first_forged_span() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let f = r.frags_of(2)[0].clone();
    let evil = ForeignKey::new();
    let mut forging = false;
    ledger::rewrite(&r.ledger(), |rec, prev| match rec.body {
        Body::Fragment(mut fr) if fr.gop == f.gop => {
            forging = true;
            fr.frames = 1;
            Body::Fragment(fr)
        }
        Body::Signature { signed_at_us, .. } if forging => {
            evil.signature(rec.seq, prev, signed_at_us)
        }
        b => b,
    });
    let rep = r.verify(&ca);
    // Segment 2's open record is the first one only the forged signature covers.
    assert_failure(&rep, FailureKind::UnknownKey, f.start_us);
}

#[test]
fn consistent_recording_from_another_installation_is_unknown_key() {
    let ca = TestCa::new("ca-a");
    let ours = standard(&ca);
    let other_ca = TestCa::new("ca-b");
    let theirs = standard(&other_ca);
    fs::remove_dir_all(ours.video()).unwrap();
    copy_dir(&theirs.video(), &ours.video());
    fs::copy(theirs.ledger(), ours.ledger()).unwrap();
    // It verifies under its own CA ...
    assert!(ours.verify(&other_ca).is_verified());
    // ... but not under ours.
    let rep = ours.verify(&ca);
    let f = rep.failure.unwrap();
    assert_eq!(f.kind, FailureKind::UnknownKey, "{f}");
    assert!(f.detail.contains("not issued by a trusted CA"), "{f}");
}

#[test]
fn foreign_segment_file_is_inserted() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let other = standard(&TestCa::new("ca-b"));
    let mut other_bytes = fs::read(other.seg_path(1)).unwrap();
    // Not identical to any of ours either: one byte of its first GOP differs.
    other_bytes[other.frags_of(1)[0].offset as usize + 200] ^= 1;
    fs::write(r.seg_path(5), other_bytes).unwrap();
    let rep = r.verify(&ca);
    let end_of_2 = r.frags_of(2).last().unwrap().start_us + GOP_US;
    assert_failure(&rep, FailureKind::Inserted, end_of_2);
    assert_eq!(rep.failure.unwrap().segment, Some(5));
}

#[test]
fn foreign_gop_inserted_into_segment_is_inserted() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let f = r.frags_of(1)[3].clone();
    let mut bytes = fs::read(r.seg_path(1)).unwrap();
    let foreign = gop_bytes(4242, 77, 1000);
    bytes.splice(f.offset as usize..f.offset as usize, foreign);
    fs::write(r.seg_path(1), bytes).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Inserted, f.start_us);
}

#[test]
fn data_appended_after_closed_segment_is_inserted() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let mut f = OpenOptions::new().append(true).open(r.seg_path(0)).unwrap();
    f.write_all(&gop_bytes(999, 5, 500)).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Inserted, T0 + 5 * GOP_US);
}

#[test]
fn garbage_inside_segment_is_modified() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let f = r.frags_of(0)[4].clone();
    let mut bytes = fs::read(r.seg_path(0)).unwrap();
    for b in &mut bytes[f.offset as usize..f.offset as usize + 8] {
        *b = 0xee;
    }
    fs::write(r.seg_path(0), bytes).unwrap();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::Modified, f.start_us);
}

#[test]
fn modified_ledger_record_is_modified() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let recs = records(&r.ledger());
    let victim = recs
        .iter()
        .find(|x| matches!(&x.body, Body::Fragment(f) if f.gop == 12))
        .unwrap();
    let mut bytes = fs::read(r.ledger()).unwrap();
    bytes[(victim.offset + 30) as usize] ^= 4;
    fs::write(r.ledger(), bytes).unwrap();
    let rep = r.verify(&ca);
    // The damaged record is GOP 12's; the last intact record before it is GOP 11 (segment 2).
    assert_failure(&rep, FailureKind::Modified, T0 + 10 * GOP_US);
}

#[test]
fn pruned_segments_still_verify() {
    let ca = TestCa::new("ca-a");
    let mut r = Rec::new(ca.identity("rec-1"));
    for s in 0..4 {
        r.segment(s, 3, true);
    }
    for s in 0..2 {
        fs::remove_file(r.seg_path(s)).unwrap();
        r.w().prune(s).unwrap();
    }
    r.close();
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.checked.segments, 2);
    let pruned: Vec<_> = rep
        .events
        .iter()
        .filter(|e| matches!(e, Event::Pruned { .. }))
        .collect();
    assert_eq!(pruned.len(), 2);
    // A range entirely within the pruned span checks nothing and fails nothing.
    let rep = r.verify_range(&ca, TimeRange::new(T0, T0 + 3 * GOP_US));
    assert!(rep.is_verified());
    assert_eq!(rep.checked.segments, 0);
}

#[test]
fn gap_and_codec_change_are_signed_events() {
    let ca = TestCa::new("ca-a");
    let mut r = Rec::new(ca.identity("rec-1"));
    r.segment(0, 3, true);
    let before = r.t - 1;
    r.t += 60_000_000;
    let after = r.t;
    r.w().gap(before, after, "camera offline").unwrap();
    r.init_variant = 1;
    r.segment(1, 3, true);
    r.close();
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert!(
        rep.events
            .iter()
            .any(|e| matches!(e, Event::Gap { reason, .. } if reason == "camera offline"))
    );
    assert!(
        rep.events
            .iter()
            .any(|e| matches!(e, Event::CodecChange { segment: 1, .. }))
    );
}

#[test]
fn crash_without_close_leaves_only_unsigned_tail() {
    let ca = TestCa::new("ca-a");
    let mut r = Rec::new(ca.identity("rec-1"));
    r.segment(0, 4, true);
    r.segment(1, 3, false);
    drop(r.writer.take()); // crash: no close, no signature since segment 0 closed
    let rep = r.verify(&ca);
    let f = rep.failure.as_ref().unwrap();
    assert_eq!(f.kind, FailureKind::Unsigned, "{f}");
    assert!(!rep.is_tampered());
    assert_eq!(f.at_us, Some(T0 + 4 * GOP_US));
    assert_eq!(rep.checked.fragments, 4);
    assert_eq!(rep.unsigned.len(), 1);
    // Everything before the crash tail verifies.
    let rep = r.verify_range(&ca, TimeRange::new(T0, T0 + 4 * GOP_US - 1));
    assert!(rep.is_verified(), "{}", rep.summary());
}

#[test]
fn torn_record_is_cut_and_unclean_shutdown_recorded() {
    let ca = TestCa::new("ca-a");
    let id = ca.identity("rec-1");
    let key_dir = tempfile::tempdir().unwrap();
    id.save(key_dir.path()).unwrap();
    let mut r = Rec::new(id);
    r.segment(0, 4, true);
    r.segment(1, 3, false);
    drop(r.writer.take());
    // A half-written record at the end, and GOPs the ledger never heard of.
    let mut lf = OpenOptions::new().append(true).open(r.ledger()).unwrap();
    lf.write_all(&[0, 0, 0, 120, 3, 0, 0]).unwrap();
    drop(lf);
    let mut seg = OpenOptions::new().append(true).open(r.seg_path(1)).unwrap();
    seg.write_all(&gop_bytes(100, 1, 2000)).unwrap();
    drop(seg);

    let rep = r.verify(&ca);
    assert_eq!(rep.failure.as_ref().unwrap().kind, FailureKind::Unsigned);

    let (w, open) = LedgerWriter::open(
        &r.ledger(),
        CAMERA,
        SigningMode::Enabled(vigil_signing::SigningIdentity::load(key_dir.path()).unwrap()),
        LedgerOptions::default(),
    )
    .unwrap();
    assert!(!open.clean);
    assert_eq!(open.torn_bytes, 7);
    assert_eq!(open.unsigned_records, 4); // segment-open + 3 fragments
    assert_eq!(open.interrupted_segment, Some(1));
    r.writer = Some(w);
    r.segment(2, 2, true);
    r.close();
    let rep = r.verify(&ca);
    // The restarted server vouched for the 4 records of the crashed run: only the GOP that
    // reached the file but never the ledger (nobody called recover_segment) stays unsigned.
    let f = rep.failure.as_ref().unwrap();
    assert_eq!(f.kind, FailureKind::Unsigned, "{f}");
    assert_eq!(f.at_us, Some(T0 + 7 * GOP_US));
    assert!(rep.unsigned[0].after_unclean_shutdown);
    assert_eq!(rep.unsigned.len(), 1);
    assert!(rep.events.iter().any(|e| matches!(
        e,
        Event::UncleanShutdown {
            torn_bytes: 7,
            recovered_records: 4,
            recovered_from_us: Some(t),
            ..
        } if *t == T0 + 4 * GOP_US
    )));
    assert_eq!(rep.checked.fragments, 4 + 3 + 2);
    // Segment 2, recorded after the restart, verifies on its own.
    let rep = r.verify_range(&ca, TimeRange::new(T0 + 8 * GOP_US, T0 + 100 * GOP_US));
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.checked.segments, 1);
}

#[test]
fn key_rotation_is_signed_by_old_key_and_verifies() {
    let ca = TestCa::new("ca-a");
    let mut r = Rec::new(ca.identity("rec-1"));
    r.segment(0, 3, true);
    r.w().rotate_key(ca.identity("rec-1-rotated")).unwrap();
    r.segment(1, 3, true);
    r.close();
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.signers.len(), 2);
    assert!(
        rep.events
            .iter()
            .any(|e| matches!(e, Event::KeyRotation { .. }))
    );
    // The ledger continues only with the rotated key; another key starts a new generation.
    let (_, open) = LedgerWriter::open(
        &r.ledger(),
        CAMERA,
        SigningMode::Enabled(ca.identity("x")),
        LedgerOptions::default(),
    )
    .unwrap();
    let retired = open.retired.unwrap();
    assert_eq!(retired.reason, RetireReason::KeyReplaced);
}

#[test]
fn rotation_to_key_from_other_ca_is_unknown_key() {
    let ca = TestCa::new("ca-a");
    let mut r = Rec::new(ca.identity("rec-1"));
    r.segment(0, 3, true);
    r.w()
        .rotate_key(TestCa::new("ca-b").identity("evil"))
        .unwrap();
    r.segment(1, 3, true);
    r.close();
    let rep = r.verify(&ca);
    assert_failure(&rep, FailureKind::UnknownKey, T0 + 3 * GOP_US);
}

#[test]
fn time_range_limits_what_is_checked() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    // Damage segment 0; a range covering only segment 2 is unaffected.
    let mut b = fs::read(r.seg_path(0)).unwrap();
    let n = b.len();
    b[n - 10] ^= 1;
    fs::write(r.seg_path(0), b).unwrap();
    let rep = r.verify_range(&ca, TimeRange::new(T0 + 10 * GOP_US, T0 + 15 * GOP_US));
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.checked.segments, 1);
    assert_eq!(rep.checked.fragments, 5);
    assert!(!r.verify(&ca).is_verified());
}

#[test]
fn garbage_or_foreign_ledger_gives_clear_error() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    fs::write(r.ledger(), b"this is not a ledger at all").unwrap();
    let err = vigil_signing::verify_recording(
        CAMERA,
        &r.ledger(),
        &r.video(),
        TimeRange::all(),
        &ca.trust(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a vigil ledger"), "{err}");
    let err = vigil_signing::verify_recording(
        CAMERA,
        &r.data.join("nope"),
        &r.video(),
        TimeRange::all(),
        &ca.trust(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot read ledger"), "{err}");
    // Valid magic then garbage: reported as a modified ledger, not a panic.
    let mut g = LEDGER_MAGIC.to_vec();
    g.extend((0..5000u32).map(|i| (i * 7919 % 251) as u8));
    fs::write(r.ledger(), g).unwrap();
    let rep = r.verify(&ca);
    assert_eq!(rep.failure.unwrap().kind, FailureKind::Modified);
}

#[test]
fn wrong_camera_ledger_is_inserted() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let rep = vigil_signing::verify_recording(
        "cam-other",
        &r.ledger(),
        &r.video(),
        TimeRange::all(),
        &ca.trust(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(rep.failure.unwrap().kind, FailureKind::Inserted);
}

#[test]
fn writer_and_identity_can_move_to_a_blocking_thread() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<LedgerWriter>();
    assert_send::<vigil_signing::SigningIdentity>();
    let ca = TestCa::new("ca-a");
    let mut r = Rec::new(ca.identity("r"));
    r.segment(0, 1, true);
    let (seq, hash, signed) = r.w().head().unwrap();
    assert!(signed);
    let recs = records(&r.ledger());
    assert_eq!(recs.last().unwrap().seq, seq);
    assert_eq!(recs.last().unwrap().hash, hash);
    let w = r.writer.take().unwrap();
    std::thread::spawn(move || w.close().unwrap())
        .join()
        .unwrap();
}

#[test]
fn disabled_mode_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ledger/cam.ledger");
    let (mut w, rep) = LedgerWriter::open(
        &path,
        "cam",
        SigningMode::Disabled,
        LedgerOptions::default(),
    )
    .unwrap();
    assert!(w.is_disabled());
    assert!(rep.clean);
    w.segment_open(1, b"init", 0).unwrap();
    assert!(!w.tick().unwrap());
    w.close().unwrap();
    assert!(!path.exists());
}

#[test]
fn signing_interval_signs_while_segment_open() {
    let ca = TestCa::new("ca-a");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("l.ledger");
    let opts = LedgerOptions {
        sign_interval: std::time::Duration::ZERO,
    };
    let (mut w, _) =
        LedgerWriter::open(&path, CAMERA, SigningMode::Enabled(ca.identity("r")), opts).unwrap();
    let before = w.records();
    w.segment_open(1, &init_bytes(0), T0).unwrap();
    // Interval zero: every append is followed by a signature.
    assert_eq!(w.records(), before + 2);
    assert!(!w.tick().unwrap());
    drop(w);
    let recs = records(&path);
    assert!(matches!(recs.last().unwrap().body, Body::Signature { .. }));
}

#[test]
fn writer_rejects_inconsistent_calls() {
    let ca = TestCa::new("ca-a");
    let mut r = Rec::new(ca.identity("r"));
    r.segment(3, 1, false);
    assert!(
        r.w()
            .segment_open(4, b"x", 0)
            .unwrap_err()
            .to_string()
            .contains("still open")
    );
    let bad = vigil_signing::FragmentRecord {
        segment: 3,
        gop: 1,
        offset: 5,
        length: 1,
        sha256: [0; 32],
        start_us: 0,
        duration_us: 0,
        frames: 1,
    };
    assert!(
        r.w()
            .fragment(&bad)
            .unwrap_err()
            .to_string()
            .contains("ended at byte")
    );
    assert!(
        r.w()
            .segment_close(3, 1)
            .unwrap_err()
            .to_string()
            .contains("fragments end at byte")
    );
    let end = r.frags.last().map(|f| f.offset + f.len).unwrap();
    r.w().segment_close(3, end).unwrap();
    assert!(
        r.w()
            .segment_open(2, b"x", 0)
            .unwrap_err()
            .to_string()
            .contains("must increase")
    );
    // A different camera's ledger is never continued: it is moved aside.
    r.close();
    let (_, open) = LedgerWriter::open(
        &r.ledger(),
        "cam-x",
        SigningMode::Enabled(ca.identity("r")),
        LedgerOptions::default(),
    )
    .unwrap();
    let retired = open.retired.unwrap();
    assert_eq!(retired.reason, RetireReason::OtherCamera);
    assert!(retired.detail.contains("belongs to camera"), "{retired:?}");
}

#[test]
fn clean_reopen_appends_without_unclean_record() {
    let ca = TestCa::new("ca-a");
    let id_dir = tempfile::tempdir().unwrap();
    let id = ca.identity("r");
    id.save(id_dir.path()).unwrap();
    let mut r = Rec::new(id);
    r.segment(0, 2, true);
    r.close();
    let (w, open) = LedgerWriter::open(
        &r.ledger(),
        CAMERA,
        SigningMode::Enabled(vigil_signing::SigningIdentity::load(id_dir.path()).unwrap()),
        LedgerOptions::default(),
    )
    .unwrap();
    assert!(open.clean && !open.created);
    r.writer = Some(w);
    r.segment(1, 2, true);
    r.close();
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert!(
        !rep.events
            .iter()
            .any(|e| matches!(e, Event::UncleanShutdown { .. }))
    );
}

#[test]
fn corrupt_ledger_is_never_continued() {
    let ca = TestCa::new("ca-a");
    let id = ca.identity("r");
    let dir = tempfile::tempdir().unwrap();
    id.save(dir.path()).unwrap();
    let r = standard(&ca);
    let recs = records(&r.ledger());
    let mut bytes = fs::read(r.ledger()).unwrap();
    bytes[(recs[5].offset + 20) as usize] ^= 1;
    fs::write(r.ledger(), bytes).unwrap();
    let (_, open) = LedgerWriter::open(
        &r.ledger(),
        CAMERA,
        SigningMode::Enabled(vigil_signing::SigningIdentity::load(dir.path()).unwrap()),
        LedgerOptions::default(),
    )
    .unwrap();
    let retired = open.retired.unwrap();
    assert_eq!(retired.reason, RetireReason::Damaged);
    assert!(retired.detail.contains("damaged at byte"), "{retired:?}");
    assert_eq!(retired.last_seq, Some(4));
}

#[test]
fn chain_break_after_range_still_fails_data_that_depends_on_it() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let recs = records(&r.ledger());
    let close1 = recs
        .iter()
        .find(|x| matches!(x.body, Body::SegmentClose { segment: 1, .. }))
        .unwrap();
    let mut bytes = fs::read(r.ledger()).unwrap();
    bytes.drain(close1.offset as usize..(close1.offset + close1.encoded_len) as usize);
    fs::write(r.ledger(), bytes).unwrap();
    // The range ends where the break is reported, but segment 1's signature lies beyond it.
    let rep = r.verify_range(&ca, TimeRange::new(T0 + 5 * GOP_US, T0 + 9 * GOP_US));
    let f = rep.failure.unwrap();
    assert_eq!(f.kind, FailureKind::Missing, "{f}");
    assert_eq!(rep.checked.segments, 0);
}

/// The signing lag: how long the oldest unsigned record waited; none once a signature
/// covers it (and none when signing is disabled).
#[test]
fn the_signing_lag_runs_from_the_first_unsigned_record_to_the_signature() {
    let ca = TestCa::new("ca-a");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("l.ledger");
    let opts = LedgerOptions {
        sign_interval: std::time::Duration::from_secs(3600),
    };
    let (mut w, _) =
        LedgerWriter::open(&path, CAMERA, SigningMode::Enabled(ca.identity("r")), opts).unwrap();
    w.tick().unwrap();
    assert_eq!(w.unsigned_for(), None, "nothing unsigned");
    w.segment_open(1, &init_bytes(0), T0).unwrap();
    let first = w.unsigned_for().expect("an unsigned record");
    std::thread::sleep(std::time::Duration::from_millis(20));
    w.gap(T0, T0 + 1, "test").unwrap();
    let later = w.unsigned_for().unwrap();
    assert!(
        later >= first + std::time::Duration::from_millis(20),
        "measured from the first unsigned record: {first:?} then {later:?}"
    );
    assert!(w.tick().unwrap(), "signed");
    assert_eq!(w.unsigned_for(), None);
    let (mut off, _) = LedgerWriter::open(
        &tmp.path().join("off.ledger"),
        CAMERA,
        SigningMode::Disabled,
        LedgerOptions::default(),
    )
    .unwrap();
    off.segment_open(1, b"init", 0).unwrap();
    assert_eq!(off.unsigned_for(), None);
}
