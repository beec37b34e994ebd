//! A camera whose evidence ledger cannot be continued keeps recording: opening its ledger moves
//! the file aside and starts a new ledger linked to it.

mod common;

use std::fs;

use common::signing_identity;
use vigil_media::evidence::{Evidence, Signing, ledger_path, signing_dir};
use vigil_signing::record::{Body, RetireReason};
use vigil_signing::{CaCert, TimeRange, verify_recording};
use vigil_testkit::ledger::records;

#[test]
fn a_damaged_ledger_is_moved_aside_and_the_camera_keeps_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let (id, ca_pem) = signing_identity();
    id.save(&signing_dir(data)).unwrap();
    let path = ledger_path(data, "cam-1");
    let ev = Evidence::new(data, Signing::On).unwrap();
    {
        let w = ev.writer("cam-1").unwrap();
        let mut w = w.lock().unwrap();
        w.segment_open(0, b"init", 1_000).unwrap();
        w.segment_close(0, 4).unwrap();
    }
    ev.close_all();
    drop(ev);

    // A record in the middle no longer matches its hash.
    let open_rec = records(&path)
        .into_iter()
        .find(|r| matches!(r.body, Body::SegmentOpen { .. }))
        .unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[open_rec.offset as usize + 30] ^= 1;
    fs::write(&path, &bytes).unwrap();

    let ev = Evidence::new(data, Signing::On).unwrap();
    let w = ev
        .writer("cam-1")
        .expect("a ledger that cannot be continued must not stop the camera");
    {
        let mut w = w.lock().unwrap();
        w.segment_open(1, b"init", 2_000).unwrap();
        w.segment_close(1, 4).unwrap();
    }
    drop(w);
    ev.close_all();

    let retired = path.with_file_name("cam-1.ledger.1");
    assert_eq!(fs::read(&retired).unwrap(), bytes, "kept byte for byte");
    let new = records(&path);
    let Body::Predecessor(p) = &new[1].body else {
        panic!("the new ledger does not start by naming its predecessor: {new:?}")
    };
    assert_eq!(p.file, "cam-1.ledger.1");
    assert_eq!(p.reason, RetireReason::Damaged);
    assert_eq!(p.last_seq, open_rec.seq - 1);
    assert!(
        new.iter()
            .any(|r| matches!(r.body, Body::SegmentOpen { segment: 1, .. }))
    );

    // Verification names the damage in the retired file, with why the server retired it.
    let rep = verify_recording(
        "cam-1",
        &path,
        &data.join("video").join("cam-1"),
        TimeRange::all(),
        &[CaCert::from_pem(&ca_pem).unwrap()],
        &mut |_, _| {},
    )
    .unwrap();
    let f = rep.failure.unwrap();
    assert_eq!(f.kind, vigil_signing::FailureKind::Modified, "{f}");
    assert!(f.detail.contains("cam-1.ledger.1"), "{f}");
}
