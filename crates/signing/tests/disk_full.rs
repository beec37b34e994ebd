//! The ledger on a volume that another process fills: a failed append leaves the file exactly
//! as it was, the records wait in memory, and the writer catches up by itself when space
//! returns, so verification never sees a partial record (which it would call tampering).
//! The ledger directory is a tiny real tmpfs (mounting needs root, which CI has).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::*;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Mount {
    std::fs::create_dir_all(at).unwrap();
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "vigil-ledger-full",
        ])
        .arg(at)
        .status()
        .expect("mount");
    assert!(
        st.success(),
        "mounting a tmpfs needs root (CI runs as root)"
    );
    Mount(at.to_path_buf())
}

/// Takes every free byte of the volume holding `dir`.
fn fill(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    while f.write(&[0u8; 4096]).is_ok_and(|n| n > 0) {}
    while f.write(&[0u8; 1]).is_ok_and(|n| n == 1) {}
    path
}

#[test]
fn a_full_volume_never_leaves_a_partial_record_and_the_writer_catches_up() {
    let ca = TestCa::new("Disk Full CA");
    let tmp = tempfile::tempdir().unwrap();
    let ledger_dir = tmp.path().join("ledger");
    let _m = mount_tmpfs(&ledger_dir, "64k");
    let mut rec = Rec::at(tmp.path(), ca.identity("rec-1"));
    rec.segment(0, 4, true);
    rec.w().sign_now().unwrap();
    let len_before = std::fs::metadata(rec.ledger()).unwrap().len();

    // Another process fills the volume; recording goes on.
    let filler = fill(&ledger_dir);
    // The ledger's last page may still have room for a few records; write until it has none.
    let mut seq = 1;
    while rec.w().backlog().is_none() {
        assert!(seq < 40, "the ledger never met the full volume");
        rec.segment(seq, 6, true);
        seq += 1;
    }
    rec.segment(seq, 3, false);
    rec.w().sign_now().unwrap();
    let backlog = rec.w().backlog().expect("records wait in memory");
    assert!(backlog.records >= 4, "{backlog:?}");
    let len = std::fs::metadata(rec.ledger()).unwrap().len();
    // Whatever fitted was written as whole records only: the file reads back cleanly.
    assert!(len >= len_before);
    let mid = rec.verify(&ca);
    if let Some(f) = &mid.failure {
        assert_eq!(
            f.kind,
            vigil_signing::FailureKind::Unsigned,
            "while the volume is full only the not yet written tail may be unsigned: {f:?}"
        );
    }

    // Space returns: the next periodic tick writes everything kept in memory.
    std::fs::remove_file(filler).unwrap();
    rec.w().tick().unwrap();
    assert!(rec.w().backlog().is_none());
    let end = rec.frags_of(seq).last().map(|f| f.offset + f.len).unwrap();
    rec.w().segment_close(seq, end).unwrap();
    rec.close();
    let report = rec.verify(&ca);
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert_eq!(report.checked.segments, seq + 1);
}

#[test]
fn a_prune_is_refused_while_it_cannot_be_made_durable() {
    let ca = TestCa::new("Disk Full CA");
    let tmp = tempfile::tempdir().unwrap();
    let ledger_dir = tmp.path().join("ledger");
    let _m = mount_tmpfs(&ledger_dir, "64k");
    let mut rec = Rec::at(tmp.path(), ca.identity("rec-1"));
    rec.segment(0, 3, true);
    rec.segment(1, 3, true);
    rec.w().sign_now().unwrap();
    let filler = fill(&ledger_dir);
    let mut seq = 2;
    while rec.w().backlog().is_none() {
        assert!(seq < 40, "the ledger never met the full volume");
        rec.segment(seq, 6, true);
        seq += 1;
    }
    // The caller must keep the file: the ledger cannot promise the prune survives a crash.
    assert!(rec.w().prune(0).is_err());
    let records = rec.w().records();
    std::fs::remove_file(filler).unwrap();
    rec.w().prune(0).unwrap();
    assert_eq!(
        rec.w().records(),
        records + 1,
        "the refused prune left no record"
    );
    std::fs::remove_file(rec.seg_path(0)).unwrap();
    rec.close();
    let report = rec.verify(&ca);
    assert!(report.failure.is_none(), "{:?}", report.failure);
}

#[test]
fn a_segment_closed_without_any_gop_may_be_absent() {
    // The recorder opens a segment, its first GOP fails to write (full volume), and the empty
    // file is deleted when the segment closes: no video existed, so nothing is missing.
    let ca = TestCa::new("Disk Full CA");
    let mut rec = Rec::new(ca.identity("rec-1"));
    rec.segment(0, 3, true);
    rec.segment(1, 0, true);
    std::fs::remove_file(rec.seg_path(1)).unwrap();
    rec.segment(2, 3, true);
    rec.close();
    let report = rec.verify(&ca);
    assert!(report.failure.is_none(), "{:?}", report.failure);
    // A segment that held a GOP is still missing when its file goes.
    std::fs::remove_file(rec.seg_path(2)).unwrap();
    let report = rec.verify(&ca);
    assert_eq!(
        report.failure.map(|f| f.kind),
        Some(vigil_signing::FailureKind::Missing)
    );
}
