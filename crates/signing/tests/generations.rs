//! Ledger generations: a ledger the writer cannot continue is moved aside and a new one
//! started after a signed predecessor record; verification and exports follow the
//! generations, tell the server's own failures from tampering, and catch a retired file that
//! changed afterwards or a forged link.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use vigil_signing::bundle::{self, ExportRange, ExporterIdentity, TrustAnchor};
use vigil_signing::record::{Body, InterruptedWrite, Record, RecordReader, RetireReason};
use vigil_signing::{
    Event, FailureKind, LedgerOptions, LedgerWriter, OpenReport, SigningIdentity, SigningMode,
    TimeRange, sha256,
};

/// A key kept on disk, so the same key can open the ledger again.
struct Key(tempfile::TempDir);

impl Key {
    fn new(ca: &TestCa, server: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        ca.identity(server).save(dir.path()).unwrap();
        Self(dir)
    }
    fn load(&self) -> SigningIdentity {
        SigningIdentity::load(self.0.path()).unwrap()
    }
}

fn reopen(r: &mut Rec, id: SigningIdentity) -> OpenReport {
    let (w, open) = LedgerWriter::open(
        &r.ledger(),
        CAMERA,
        SigningMode::Enabled(id),
        LedgerOptions::default(),
    )
    .unwrap();
    r.writer = Some(w);
    open
}

fn retired_path(r: &Rec, n: u64) -> PathBuf {
    r.data.join("ledger").join(format!("{CAMERA}.ledger.{n}"))
}

/// Segments 0..3 of 5 GOPs, closed, ledger closed; the key is kept.
fn recorded(ca: &TestCa) -> (Rec, Key) {
    let key = Key::new(ca, "rec-1");
    let mut r = Rec::new(key.load());
    for s in 0..3 {
        r.segment(s, 5, true);
    }
    r.close();
    (r, key)
}

fn continued(rep: &vigil_signing::Report) -> Vec<&Event> {
    rep.events
        .iter()
        .filter(|e| matches!(e, Event::LedgerContinued { .. }))
        .collect()
}

fn range_from(t: i64) -> TimeRange {
    TimeRange {
        from_us: Some(t),
        to_us: None,
    }
}

#[test]
fn ledger_damaged_in_the_middle_is_retired_and_recording_continues() {
    let ca = TestCa::new("ca-a");
    let (mut r, key) = recorded(&ca);
    // A fragment record of the last segment no longer matches its hash.
    let recs = records(&r.ledger());
    let victim_gop = r.frags_of(2)[2].gop;
    let victim = recs
        .iter()
        .find(|x| matches!(&x.body, Body::Fragment(f) if f.gop == victim_gop))
        .unwrap()
        .clone();
    let mut bytes = fs::read(r.ledger()).unwrap();
    bytes[(victim.offset + 60) as usize] ^= 1;
    fs::write(r.ledger(), &bytes).unwrap();

    let open = reopen(&mut r, key.load());
    let retired = open.retired.clone().unwrap();
    assert_eq!(retired.reason, RetireReason::Damaged);
    assert_eq!(retired.generation, 1);
    assert_eq!(retired.path, retired_path(&r, 1));
    assert_eq!(retired.last_seq, Some(victim.seq - 1));
    assert!(
        retired
            .detail
            .contains(&format!("damaged at byte {}", victim.offset)),
        "{retired:?}"
    );
    assert_eq!(
        (retired.len, retired.sha256),
        (bytes.len() as u64, sha256(&bytes))
    );
    // Moved aside byte for byte, never rewritten.
    assert_eq!(fs::read(&retired.path).unwrap(), bytes);
    assert!(open.clean && !open.created);
    let new = records(&r.ledger());
    assert!(matches!(new[0].body, Body::Genesis { .. }));
    let Body::Predecessor(p) = &new[1].body else {
        panic!("{:?}", new[1].body)
    };
    assert_eq!(p.file, format!("{CAMERA}.ledger.1"));
    assert_eq!(
        (p.last_seq, p.last_hash),
        (victim.seq - 1, recs[victim.seq as usize - 1].hash)
    );
    assert!(matches!(new[2].body, Body::Signature { .. }));

    r.segment(3, 4, true);
    r.segment(4, 2, true);
    r.close();

    // Over both generations: the damage in the old one, with when and why it was retired.
    let rep = r.verify(&ca);
    let f = rep.failure.as_ref().unwrap();
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    let before = r.frags_of(2)[1].start_us;
    assert_eq!(f.at_us, Some(before), "{f}");
    assert!(
        f.detail
            .contains(&format!("damaged at byte {}", victim.offset)),
        "{f}"
    );
    assert!(
        f.detail
            .contains(&format!("{CAMERA}.ledger.1, which the server retired")),
        "{f}"
    );
    // Everything was checked up to the damage (segment 2 in part), new video included; what
    // segment 2 holds after the damaged record is unsigned.
    assert_eq!(rep.checked.segments, 3 + 2);
    assert_eq!(rep.checked.fragments, 5 + 5 + 2 + 6);
    assert_eq!(rep.unsigned.len(), 1);
    assert_eq!(rep.unsigned[0].segment, Some(2));
    assert_eq!(continued(&rep).len(), 1);

    // The new generation's video verifies on its own; nothing in it is "inserted".
    let rep = r.verify_range(&ca, range_from(r.segments[3].1));
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.checked.segments, 2);
    assert_eq!(rep.checked.fragments, 6);
    // And so does the old video before the damage.
    let rep = r.verify_range(&ca, TimeRange::new(T0, r.segments[2].1));
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.checked.segments, 2);
}

#[test]
fn replaced_signing_key_starts_a_new_generation_that_verifies_with_the_old() {
    let ca = TestCa::new("ca-a");
    let (mut r, _old) = recorded(&ca);
    let new_key = Key::new(&ca, "rec-1-new");
    let open = reopen(&mut r, new_key.load());
    let retired = open.retired.clone().unwrap();
    assert_eq!(retired.reason, RetireReason::KeyReplaced);
    assert!(retired.detail.contains("signing key"), "{retired:?}");
    assert_eq!(open.records, 3);
    assert!(open.clean);
    r.segment(3, 3, true);
    // A crash right away, and a restart with the new key: the new generation continues.
    drop(r.writer.take());
    let open = reopen(&mut r, new_key.load());
    assert!(open.retired.is_none(), "{open:?}");
    r.segment(4, 2, true);
    r.close();

    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.checked.segments, 5);
    assert_eq!(rep.checked.fragments, 15 + 3 + 2);
    assert_eq!(rep.signers.len(), 2);
    let ev = continued(&rep);
    assert!(
        matches!(
            ev[..],
            [Event::LedgerContinued {
                reason: RetireReason::KeyReplaced,
                vouched_records: 0,
                ..
            }]
        ),
        "{ev:?}"
    );
    // A third generation: the numbering goes on and verification follows both links.
    let open = reopen(&mut r, Key::new(&ca, "rec-1-third").load());
    assert_eq!(open.retired.unwrap().generation, 2);
    r.segment(5, 1, true);
    r.close();
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.checked.segments, 6);
    assert_eq!(continued(&rep).len(), 2);
}

/// A crash left segment 1 open with 3 unsigned GOP records and a torn record at the end of
/// the ledger; the server then restarts with another key.
fn crash_then_key_replaced(extra_gop: bool) -> (Rec, TestCa, OpenReport) {
    let ca = TestCa::new("ca-a");
    let mut r = Rec::new(ca.identity("rec-1"));
    r.segment(0, 3, true);
    r.segment(1, 3, false);
    drop(r.writer.take());
    let mut lf = OpenOptions::new().append(true).open(r.ledger()).unwrap();
    lf.write_all(&[0, 0, 0, 120, 3, 0, 0]).unwrap();
    drop(lf);
    if extra_gop {
        let mut f = OpenOptions::new().append(true).open(r.seg_path(1)).unwrap();
        f.write_all(&gop_bytes(99, 5, 1500)).unwrap();
    }
    let before = fs::read(r.ledger()).unwrap();
    let open = reopen(&mut r, ca.identity("rec-2"));
    // The torn record stays in the retired file: it is never cut or written again.
    assert_eq!(fs::read(retired_path(&r, 1)).unwrap(), before);
    r.next_gop += 1;
    r.segment(2, 2, true);
    r.close();
    (r, ca, open)
}

#[test]
fn a_retired_ledger_cut_short_by_a_crash_verifies_without_failure() {
    let (r, ca, open) = crash_then_key_replaced(false);
    let retired = open.retired.unwrap();
    assert_eq!(retired.reason, RetireReason::KeyReplaced);
    // Segment-open and three fragment records after the last signature: the new ledger's
    // signed predecessor record vouches for them.
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert!(rep.unsigned.is_empty());
    assert_eq!(rep.checked.fragments, 3 + 3 + 2);
    assert!(
        continued(&rep).iter().any(|e| matches!(
            e,
            Event::LedgerContinued {
                vouched_records: 4,
                ..
            }
        )),
        "{:?}",
        rep.events
    );
}

#[test]
fn only_what_no_ledger_describes_is_unsigned_after_a_retirement() {
    let (r, ca, _) = crash_then_key_replaced(true);
    let rep = r.verify(&ca);
    let f = rep.failure.as_ref().unwrap();
    assert_eq!(f.kind, FailureKind::Unsigned, "{f}");
    assert!(!rep.is_tampered());
    assert_eq!(f.segment, Some(1));
    assert_eq!(rep.unsigned.len(), 1);
    assert!(rep.unsigned[0].after_unclean_shutdown);
    assert_eq!(rep.checked.fragments, 3 + 3 + 2);
}

#[test]
fn a_ledger_only_torn_at_the_end_is_continued_in_place() {
    let ca = TestCa::new("ca-a");
    let key = Key::new(&ca, "rec-1");
    let mut r = Rec::new(key.load());
    r.segment(0, 3, true);
    r.segment(1, 2, false);
    drop(r.writer.take());
    let mut lf = OpenOptions::new().append(true).open(r.ledger()).unwrap();
    lf.write_all(&[0, 0, 0, 120, 3, 0, 0]).unwrap();
    drop(lf);
    let open = reopen(&mut r, key.load());
    assert!(open.retired.is_none(), "{open:?}");
    assert_eq!(open.torn_bytes, 7);
    assert!(!open.clean);
    assert!(!retired_path(&r, 1).exists());
    assert!(
        vigil_signing::generation::retired_ledgers(&r.ledger())
            .unwrap()
            .is_empty()
    );
    r.segment(2, 2, true);
    r.close();
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert!(continued(&rep).is_empty());
}

/// What the writer of earlier versions left after a write failed part-way (a full volume):
/// the beginning of a record, then the same seq written in full once the volume had room.
fn with_interrupted_write(r: &Rec, at_gop: u32, cut: usize) -> (Record, usize) {
    let recs = records(&r.ledger());
    let rec = recs
        .iter()
        .find(|x| matches!(&x.body, Body::Fragment(f) if f.gop == at_gop))
        .unwrap()
        .clone();
    let at = ledger::insert_interrupted_write(&r.ledger(), &rec, cut);
    (rec, at)
}

#[test]
fn a_record_a_failed_write_left_incomplete_mid_ledger_is_not_tampering() {
    let ca = TestCa::new("ca-a");
    let (mut r, key) = recorded(&ca);
    let gop = r.frags_of(1)[2].gop;
    let (rec, at) = with_interrupted_write(&r, gop, 77);
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert!(rep.events.contains(&Event::InterruptedWrite {
        ledger: format!("{CAMERA}.ledger"),
        offset: at as u64,
        bytes: 77,
        after_seq: Some(rec.seq - 1),
        at_us: Some(r.frags_of(1)[1].start_us),
    }));
    // The writer continues the ledger as it is.
    let open = reopen(&mut r, key.load());
    assert!(open.retired.is_none(), "{open:?}");
    assert!(open.clean);
    assert_eq!(open.interrupted_write_bytes, 77);
    r.segment(3, 2, true);
    r.close();
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.checked.fragments, 17);
    // The record after the skipped bytes is still protected by its hash.
    let mut bytes = fs::read(r.ledger()).unwrap();
    bytes[at + 77 + 60] ^= 1;
    fs::write(r.ledger(), bytes).unwrap();
    let f = r.verify(&ca).failure.unwrap();
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
}

#[test]
fn another_cameras_ledger_is_retired_and_none_of_it_counts_as_ours() {
    let ca = TestCa::new("ca-a");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let ledger = data.join("ledger").join(format!("{CAMERA}.ledger"));
    let (mut w, _) = LedgerWriter::open(
        &ledger,
        "cam-other",
        SigningMode::Enabled(ca.identity("rec-9")),
        LedgerOptions::default(),
    )
    .unwrap();
    w.segment_open(0, &init_bytes(0), T0 - 1_000_000).unwrap();
    w.segment_close(0, init_bytes(0).len() as u64).unwrap();
    w.close().unwrap();

    // `Rec::at` asserts a clean open: a new generation has recorded nothing to vouch for.
    let mut r = Rec::at(data, ca.identity("rec-1"));
    r.segment(0, 3, true);
    r.close();
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert!(
        continued(&rep).iter().any(|e| matches!(
            e,
            Event::LedgerContinued {
                reason: RetireReason::OtherCamera,
                ..
            }
        )),
        "{:?}",
        rep.events
    );
}

#[test]
fn an_unreadable_ledger_is_retired() {
    let ca = TestCa::new("ca-a");
    for (content, verified) in [
        (vec![0u8; 64], true),
        (b"not a ledger at all".to_vec(), false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = tmp.path().join("ledger").join(format!("{CAMERA}.ledger"));
        fs::create_dir_all(ledger.parent().unwrap()).unwrap();
        fs::write(&ledger, &content).unwrap();
        // `Rec::at` asserts a clean open: the new generation has recorded nothing yet.
        let mut r = Rec::at(tmp.path(), ca.identity("rec-1"));
        let Body::Predecessor(p) = &records(&ledger)[1].body else {
            panic!("no predecessor record")
        };
        assert_eq!(p.reason, RetireReason::Unreadable);
        assert!(p.detail.contains("not a vigil ledger"), "{p:?}");
        assert_eq!(p.last(), None);
        assert_eq!(fs::read(retired_path(&r, 1)).unwrap(), content);
        r.segment(0, 2, true);
        r.close();
        let rep = r.verify(&ca);
        if verified {
            // Zero bytes are what an interrupted creation leaves.
            assert!(rep.is_verified(), "{}", rep.summary());
        } else {
            let f = rep.failure.unwrap();
            assert_eq!(f.kind, FailureKind::Modified, "{f}");
            assert!(f.detail.contains("is not a vigil ledger"), "{f}");
            assert!(f.detail.contains("unreadable"), "{f}");
        }
    }
}

// ---------------------------------------------------------------- tampering with generations

/// Two generations (the key was replaced), both closed.
fn two_generations() -> (Rec, TestCa) {
    let ca = TestCa::new("ca-a");
    let (mut r, _) = recorded(&ca);
    reopen(&mut r, ca.identity("rec-2"));
    r.segment(3, 3, true);
    r.close();
    assert!(r.verify(&ca).is_verified());
    (r, ca)
}

/// Rewrites the current ledger with `edit` applied to its predecessor record and every record
/// re-linked (valid record hashes throughout; signatures left as they were).
fn rewrite_predecessor(r: &Rec, edit: impl Fn(&mut vigil_signing::record::Predecessor)) {
    ledger::rewrite(&r.ledger(), |rec, _| match rec.body {
        Body::Predecessor(mut p) => {
            edit(&mut p);
            Body::Predecessor(p)
        }
        b => b,
    });
}

#[test]
fn a_forged_or_modified_predecessor_record_is_modified() {
    let (r, ca) = two_generations();
    let pristine = fs::read(r.ledger()).unwrap();

    // One byte of the record changed.
    let pred = &records(&r.ledger())[1];
    let mut bytes = pristine.clone();
    bytes[(pred.offset + 50) as usize] ^= 1;
    fs::write(r.ledger(), &bytes).unwrap();
    let f = r.verify(&ca).failure.unwrap();
    assert_eq!(f.kind, FailureKind::Modified, "{f}");

    // Re-encoded consistently, claiming another reason: its signature no longer matches.
    fs::write(r.ledger(), &pristine).unwrap();
    rewrite_predecessor(&r, |p| p.reason = RetireReason::Damaged);
    let f = r.verify(&ca).failure.unwrap();
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    assert!(f.detail.contains("signature"), "{f}");

    // Re-encoded to vouch for the hash of a retired file the attacker changed.
    fs::write(r.ledger(), &pristine).unwrap();
    let mut old = fs::read(retired_path(&r, 1)).unwrap();
    old.extend_from_slice(b"appended");
    fs::write(retired_path(&r, 1), &old).unwrap();
    rewrite_predecessor(&r, |p| {
        p.file_len = old.len() as u64;
        p.file_sha256 = sha256(&old);
    });
    let f = r.verify(&ca).failure.unwrap();
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
}

#[test]
fn a_retired_file_changed_after_retirement_is_modified() {
    let (r, ca) = two_generations();
    let old = retired_path(&r, 1);
    let pristine = fs::read(&old).unwrap();

    // Bytes appended (they read as a torn tail, which the chain alone would ignore).
    let mut bytes = pristine.clone();
    bytes.extend_from_slice(&[0, 0, 1, 0, 7, 7]);
    fs::write(&old, &bytes).unwrap();
    let f = r.verify(&ca).failure.unwrap();
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    assert!(
        f.detail.contains("changed after the server retired it"),
        "{f}"
    );

    // A fragment's hash changed in the retired ledger: the chain names the record.
    let recs = records(&old);
    let frag = recs
        .iter()
        .find(|x| matches!(x.body, Body::Fragment(_)))
        .unwrap();
    let mut bytes = pristine.clone();
    bytes[(frag.offset + 70) as usize] ^= 1;
    fs::write(&old, &bytes).unwrap();
    let f = r.verify(&ca).failure.unwrap();
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    assert_eq!(f.at_us, Some(T0), "{f}");

    // Removed: the video recorded under it can no longer be checked.
    fs::remove_file(&old).unwrap();
    let f = r.verify(&ca).failure.unwrap();
    assert_eq!(f.kind, FailureKind::Missing, "{f}");
    assert!(f.detail.contains("is missing"), "{f}");

    // A file named like a generation that no ledger continues.
    fs::write(&old, &pristine).unwrap();
    assert!(r.verify(&ca).is_verified());
    fs::copy(&old, retired_path(&r, 7)).unwrap();
    let f = r.verify(&ca).failure.unwrap();
    assert_eq!(f.kind, FailureKind::Inserted, "{f}");
    assert!(f.detail.contains(&format!("{CAMERA}.ledger.7")), "{f}");
}

// ---------------------------------------------------------------- crash during retirement

#[test]
fn a_retirement_interrupted_by_a_crash_is_finished_or_redone() {
    let ca = TestCa::new("ca-a");
    let (mut r, key) = recorded(&ca);
    let staging = r.data.join("ledger").join(format!("{CAMERA}.ledger.new"));

    // Before the old ledger was moved: the staged file is discarded, the ledger continues.
    fs::write(&staging, b"half a new ledger").unwrap();
    let open = reopen(&mut r, key.load());
    assert!(open.retired.is_none() && open.clean, "{open:?}");
    assert!(!staging.exists());
    r.close();

    // After the old ledger was moved, before the new one took its place.
    let open = reopen(&mut r, ca.identity("rec-2"));
    assert!(open.retired.is_some());
    r.close();
    fs::rename(r.ledger(), &staging).unwrap();
    let (w, open) = LedgerWriter::open(
        &r.ledger(),
        CAMERA,
        SigningMode::Enabled(ca.identity("rec-3")),
        LedgerOptions::default(),
    )
    .unwrap();
    // The staged ledger was put in place; with yet another key it is retired in turn.
    assert!(!staging.exists());
    assert_eq!(open.retired.unwrap().generation, 2);
    r.writer = Some(w);
    r.segment(3, 1, true);
    r.close();
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(continued(&rep).len(), 2);
}

// ---------------------------------------------------------------- exports

fn export(
    r: &Rec,
    ca: &TestCa,
    frags: &[Frag],
    dir: &Path,
) -> Result<bundle::BundleReport, String> {
    let first = fs::read(r.seg_path(frags[0].segment)).unwrap();
    let init_len = r.frags_of(frags[0].segment)[0].offset as usize;
    let mut v = first[..init_len].to_vec();
    for f in frags {
        let seg = fs::read(r.seg_path(f.segment)).unwrap();
        v.extend_from_slice(&seg[f.offset as usize..(f.offset + f.len) as usize]);
    }
    let mp4 = dir.with_extension("mp4");
    fs::write(&mp4, v).unwrap();
    bundle::write(
        dir,
        &mp4,
        &r.ledger(),
        &ExportRange {
            camera_id: CAMERA.into(),
            from_us: Some(frags[0].start_us),
            to_us: None,
        },
        &ExporterIdentity {
            user: "alice".into(),
            server: "rec-1.example".into(),
        },
        &ca.identity("exporter"),
        &AsRecorded,
    )
    .map_err(|e| e.to_string())?;
    Ok(bundle::verify(
        dir,
        &TrustAnchor::CaCert(ca.cert_pem.clone()),
        &AsRecorded,
        &mut |_, _| {},
    )
    .unwrap())
}

#[test]
fn exports_work_under_either_generation() {
    let (r, ca) = two_generations();
    let tmp = tempfile::tempdir().unwrap();
    let old: Vec<Frag> = r.frags[3..8].to_vec();
    let rep = export(&r, &ca, &old, &tmp.path().join("old")).unwrap();
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.recording.checked.fragments, 5);
    let new = r.frags_of(3);
    let rep = export(&r, &ca, &new, &tmp.path().join("new")).unwrap();
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.recording.checked.fragments, 3);
    // One excerpt cannot hold two ledgers: the export must be split at the new generation.
    let across: Vec<Frag> = r.frags[13..17].to_vec();
    let err = export(&r, &ca, &across, &tmp.path().join("across")).unwrap_err();
    assert!(err.contains("export the parts"), "{err}");
}

// ---------------------------------------------------------------- the reader's rule, end to end

#[test]
fn interrupted_writes_are_listed_by_the_reader() {
    let ca = TestCa::new("ca-a");
    let (r, _) = recorded(&ca);
    let intact = records(&r.ledger());
    let gop = r.frags_of(0)[1].gop;
    let (rec, at) = with_interrupted_write(&r, gop, 3);
    let bytes = fs::read(r.ledger()).unwrap();
    let mut reader = RecordReader::new(&bytes[..]).unwrap();
    let mut got = Vec::new();
    while let Some(x) = reader.next_record().unwrap() {
        got.push((x.seq, x.hash));
    }
    assert_eq!(
        got,
        intact.iter().map(|x| (x.seq, x.hash)).collect::<Vec<_>>()
    );
    assert!(reader.stop().is_none());
    assert_eq!(
        reader.interrupted_writes(),
        &[InterruptedWrite {
            offset: at as u64,
            bytes: 3,
            after_seq: Some(rec.seq - 1),
        }]
    );
}
