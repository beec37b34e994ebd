//! Crash recovery and the index cross-check: what a restarted server vouches for after an
//! unclean shutdown, and how verification treats the untrusted index database.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;

use common::*;
use vigil_signing::{
    Event, FailureKind, FragmentRecord, IndexedGop, LedgerOptions, LedgerWriter, RecoveredSegment,
    SigningIdentity, SigningMode, TimeRange, sha256,
};

/// A recording whose writer "crashes" (is dropped) while segment 1 is open with 3 GOPs, then
/// the file gets what a crash leaves: one more complete GOP the ledger never heard of, and a
/// torn half GOP.
struct Crashed {
    r: Rec,
    ca: TestCa,
    key_dir: tempfile::TempDir,
    extra: FragmentRecord,
    torn: u64,
}

fn crashed() -> Crashed {
    let ca = TestCa::new("ca-a");
    let id = ca.identity("rec-1");
    let key_dir = tempfile::tempdir().unwrap();
    id.save(key_dir.path()).unwrap();
    let mut r = Rec::new(id);
    r.segment(0, 4, true);
    r.segment(1, 3, false);
    drop(r.writer.take());
    let last = r.frags.last().unwrap().clone();
    let offset = last.offset + last.len;
    let bytes = gop_bytes(r.next_gop, 9, 2500);
    let extra = FragmentRecord {
        segment: 1,
        gop: r.next_gop,
        offset,
        length: bytes.len() as u64,
        sha256: sha256(&bytes),
        start_us: r.t,
        duration_us: GOP_US as u64,
        frames: 60,
    };
    let torn_gop = gop_bytes(r.next_gop + 1, 9, 2500);
    let torn = 1200u64;
    let mut f = OpenOptions::new().append(true).open(r.seg_path(1)).unwrap();
    f.write_all(&bytes).unwrap();
    f.write_all(&torn_gop[..torn as usize]).unwrap();
    Crashed {
        r,
        ca,
        key_dir,
        extra,
        torn,
    }
}

impl Crashed {
    /// What start-up recovery does to the file: cut the torn tail.
    fn truncate_torn_tail(&self) -> u64 {
        let len = self.extra.offset + self.extra.length;
        let f = OpenOptions::new()
            .write(true)
            .open(self.r.seg_path(1))
            .unwrap();
        f.set_len(len).unwrap();
        len
    }
    fn reopen(&mut self) -> vigil_signing::OpenReport {
        let (w, open) = LedgerWriter::open(
            &self.r.ledger(),
            CAMERA,
            SigningMode::Enabled(SigningIdentity::load(self.key_dir.path()).unwrap()),
            LedgerOptions::default(),
        )
        .unwrap();
        self.r.writer = Some(w);
        open
    }
    /// Every complete GOP in segment 1 after recovery.
    fn found(&self) -> Vec<FragmentRecord> {
        let bytes = fs::read(self.r.seg_path(1)).unwrap();
        let mut v: Vec<FragmentRecord> = self
            .r
            .frags_of(1)
            .iter()
            .map(|f| FragmentRecord {
                segment: 1,
                gop: f.gop,
                offset: f.offset,
                length: f.len,
                sha256: sha256(&bytes[f.offset as usize..(f.offset + f.len) as usize]),
                start_us: f.start_us,
                duration_us: GOP_US as u64,
                frames: 60,
            })
            .collect();
        v.push(self.extra);
        v
    }
}

#[test]
fn before_restart_the_crash_tail_is_only_unsigned() {
    let c = crashed();
    let rep = c.r.verify(&c.ca);
    let f = rep.failure.as_ref().unwrap();
    assert_eq!(f.kind, FailureKind::Unsigned, "{f}");
    assert!(!rep.is_tampered());
    assert_eq!(f.at_us, Some(T0 + 4 * GOP_US));
    assert_eq!(rep.checked.fragments, 4);
}

#[test]
fn restart_vouches_for_the_crash_tail_and_recovered_gops() {
    let mut c = crashed();
    let final_len = c.truncate_torn_tail();
    let open = c.reopen();
    assert!(!open.clean);
    assert_eq!(open.interrupted_segment, Some(1));
    let found = c.found();
    let added =
        c.r.w()
            .recover_segment(&RecoveredSegment {
                segment: 1,
                fragments: &found,
                final_len,
                truncated_bytes: c.torn,
            })
            .unwrap();
    assert_eq!(added, 1, "only the GOP the ledger never heard of is added");
    c.r.next_gop += 2;
    c.r.t += GOP_US;
    c.r.segment(2, 2, true);
    c.r.close();
    let rep = c.r.verify(&c.ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert!(rep.unsigned.is_empty());
    assert_eq!(rep.checked.fragments, 4 + 4 + 2);
    assert!(rep.events.iter().any(|e| matches!(
        e,
        Event::UncleanShutdown {
            recovered_records: 4,
            recovered_from_us: Some(t),
            ..
        } if *t == T0 + 4 * GOP_US
    )));
    assert!(rep.events.iter().any(|e| matches!(
        e,
        Event::SegmentRecovered { segment: 1, truncated_bytes, final_len: l, .. }
            if *truncated_bytes == c.torn && *l == final_len
    )));

    // The recovered segment is sealed: bytes appended to it now are foreign.
    let mut f = OpenOptions::new()
        .append(true)
        .open(c.r.seg_path(1))
        .unwrap();
    f.write_all(&gop_bytes(500, 3, 900)).unwrap();
    let rep = c.r.verify(&c.ca);
    let fail = rep.failure.unwrap();
    assert_eq!(fail.kind, FailureKind::Inserted, "{fail}");
    assert_eq!(fail.at_us, Some(T0 + 8 * GOP_US));
}

#[test]
fn a_recovered_segment_cut_below_its_signed_gops_is_truncated() {
    let mut c = crashed();
    let final_len = c.truncate_torn_tail();
    c.reopen();
    let found = c.found();
    c.r.w()
        .recover_segment(&RecoveredSegment {
            segment: 1,
            fragments: &found,
            final_len,
            truncated_bytes: c.torn,
        })
        .unwrap();
    c.r.close();
    let f = OpenOptions::new()
        .write(true)
        .open(c.r.seg_path(1))
        .unwrap();
    f.set_len(c.extra.offset).unwrap();
    let rep = c.r.verify(&c.ca);
    let fail = rep.failure.unwrap();
    assert_eq!(fail.kind, FailureKind::Truncated, "{fail}");
    assert_eq!(fail.at_us, Some(c.extra.start_us));
}

#[test]
fn recover_segment_refuses_what_contradicts_the_ledger() {
    let mut c = crashed();
    let final_len = c.truncate_torn_tail();
    c.reopen();
    let found = c.found();
    let err = |r: &mut Rec, seg: u64, frags: &[FragmentRecord], len: u64| {
        r.w()
            .recover_segment(&RecoveredSegment {
                segment: seg,
                fragments: frags,
                final_len: len,
                truncated_bytes: 0,
            })
            .unwrap_err()
            .to_string()
    };
    assert!(err(&mut c.r, 0, &found, final_len).contains("left segment 1 open"));
    // The file ends before the fragments do.
    assert!(err(&mut c.r, 1, &found, final_len - 1).contains("ends at byte"));
    // A hole between the recorded GOPs and the recovered one.
    let mut holed = found.clone();
    holed.last_mut().unwrap().offset += 10;
    assert!(err(&mut c.r, 1, &holed, final_len + 10).contains("previous one ended"));
    // A file with recorded GOPs reported as removed.
    assert!(err(&mut c.r, 1, &[], 0).contains("reports its file removed"));
    // Once a new segment opened, it is too late.
    c.r.next_gop += 2;
    c.r.segment(2, 1, true);
    assert!(err(&mut c.r, 1, &found, final_len).contains("no segment was left open"));
}

#[test]
fn segment_removed_by_recovery_without_a_gop_is_not_missing() {
    let ca = TestCa::new("ca-a");
    let id = ca.identity("rec-1");
    let key_dir = tempfile::tempdir().unwrap();
    id.save(key_dir.path()).unwrap();
    let mut r = Rec::new(id);
    r.segment(0, 3, true);
    r.segment(1, 0, false);
    drop(r.writer.take());
    // Recovery deletes a segment file that holds no complete GOP.
    fs::remove_file(r.seg_path(1)).unwrap();
    let (w, open) = LedgerWriter::open(
        &r.ledger(),
        CAMERA,
        SigningMode::Enabled(SigningIdentity::load(key_dir.path()).unwrap()),
        LedgerOptions::default(),
    )
    .unwrap();
    assert_eq!(open.interrupted_segment, Some(1));
    r.writer = Some(w);
    r.w()
        .recover_segment(&RecoveredSegment {
            segment: 1,
            fragments: &[],
            final_len: 0,
            truncated_bytes: 345,
        })
        .unwrap();
    r.segment(2, 2, true);
    r.close();
    let rep = r.verify(&ca);
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.checked.segments, 2);
}

// ---------------------------------------------------------------- the index cross-check

fn index_of(r: &Rec) -> Vec<IndexedGop> {
    r.frags
        .iter()
        .map(|f| {
            let bytes = fs::read(r.seg_path(f.segment)).unwrap();
            IndexedGop {
                segment: f.segment,
                gop: f.gop,
                offset: f.offset,
                length: f.len,
                start_us: f.start_us,
                duration_us: GOP_US as u64,
                sha256: sha256(&bytes[f.offset as usize..(f.offset + f.len) as usize]),
            }
        })
        .collect()
}

fn verify_index(r: &Rec, ca: &TestCa, index: &[IndexedGop]) -> vigil_signing::Report {
    vigil_signing::verify_recording_with_index(
        CAMERA,
        &r.ledger(),
        &r.video(),
        TimeRange::all(),
        &ca.trust(),
        index,
        &mut |_, _| {},
    )
    .unwrap()
}

#[test]
fn index_that_matches_the_ledger_verifies() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let idx = index_of(&r);
    assert!(verify_index(&r, &ca, &idx).is_verified());
    // Rows for the newest GOPs not read yet (recorded after the index was read): not missing.
    let rep = verify_index(&r, &ca, &idx[..idx.len() - 2]);
    assert!(rep.is_verified(), "{}", rep.summary());
}

#[test]
fn edited_index_time_is_modified_at_the_signed_time() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let mut idx = index_of(&r);
    let truth = idx[7].start_us;
    idx[7].start_us -= 3_600_000_000;
    let rep = verify_index(&r, &ca, &idx);
    let f = rep.failure.unwrap();
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    assert_eq!(f.at_us, Some(truth));
    assert!(f.detail.contains("index database was edited"), "{f}");
    assert!(f.detail.contains(&format!("GOP {}", idx[7].gop)), "{f}");
    // Offsets and hashes are compared too; the earliest disagreement wins.
    let mut idx = index_of(&r);
    idx[9].offset += 1;
    idx[3].sha256[0] ^= 1;
    let f = verify_index(&r, &ca, &idx).failure.unwrap();
    assert_eq!(f.at_us, Some(idx[3].start_us), "{f}");
    assert!(f.detail.contains("different SHA-256"), "{f}");
}

#[test]
fn index_rows_added_or_removed_are_inserted_or_missing() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let mut idx = index_of(&r);
    let mut fake = idx[4].clone();
    fake.gop = 999;
    fake.start_us += 500_000;
    idx.push(fake.clone());
    let f = verify_index(&r, &ca, &idx).failure.unwrap();
    assert_eq!(f.kind, FailureKind::Inserted, "{f}");
    assert_eq!(f.at_us, Some(fake.start_us));

    let mut idx = index_of(&r);
    let gone = idx.remove(6);
    let f = verify_index(&r, &ca, &idx).failure.unwrap();
    assert_eq!(f.kind, FailureKind::Missing, "{f}");
    assert_eq!(f.at_us, Some(gone.start_us));
    assert!(f.detail.contains("no entry"), "{f}");
}

#[test]
fn media_tampering_ranks_before_index_disagreement() {
    let ca = TestCa::new("ca-a");
    let r = standard(&ca);
    let mut idx = index_of(&r);
    idx[1].start_us += 1;
    let f = r.frags_of(2)[0].clone();
    let mut b = fs::read(r.seg_path(2)).unwrap();
    b[(f.offset + 100) as usize] ^= 1;
    fs::write(r.seg_path(2), b).unwrap();
    let fail = verify_index(&r, &ca, &idx).failure.unwrap();
    assert_eq!(fail.kind, FailureKind::Modified);
    assert_eq!(fail.at_us, Some(f.start_us));
    assert!(!fail.detail.contains("index"), "{fail}");
}
