//! Retention decisions on a real store (SQLite index and segment files), without cameras:
//! which segments the free-space floor and the emergency path may delete, and that a segment
//! whose prune the evidence ledger cannot record durably is kept.

mod common;

use std::cell::RefCell;

use common::store_with_cameras;
use vigil_media::reserve::SpaceReserve;
use vigil_media::retention::{Urgency, effective_floor, free_space};
use vigil_media::store::{Camera, Store};

/// One closed segment holding one GOP of 10 KiB, starting at `start_us`.
fn segment(store: &Store, cam: &Camera, gop_no: i64, start_us: i64) -> i64 {
    let mut seg = store
        .begin_segment(&cam.id, b"init", "avc1", start_us)
        .unwrap();
    let seq = seg.seq;
    seg.append(store, &[&[7u8; 10_240]], gop_no, start_us, 1_000_000, 25)
        .unwrap();
    seg.close(store).unwrap();
    seq
}

fn seqs(store: &Store, cam: &Camera) -> Vec<i64> {
    store
        .segments(&cam.id)
        .unwrap()
        .iter()
        .map(|s| s.seq)
        .collect()
}

#[test]
fn the_floor_keeps_each_cameras_newest_segment_but_an_emergency_may_not() {
    let (_dir, store, cams) = store_with_cameras(&["a", "b"]);
    let (a, b) = (&cams[0], &cams[1]);
    let a1 = segment(&store, a, 1, 1_000_000);
    let b1 = segment(&store, b, 1, 2_000_000);
    let a2 = segment(&store, a, 2, 3_000_000);
    let pruned = RefCell::new(Vec::new());
    let hook = |cam: &str, seq: i64| {
        pruned.borrow_mut().push((cam.to_owned(), seq));
        Ok(())
    };
    // Asked for far more than exists: the floor still leaves each camera's newest segment.
    let r = free_space(&store, u64::MAX / 2, &hook, None, Urgency::Floor).unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert_eq!(seqs(&store, a), vec![a2]);
    assert_eq!(seqs(&store, b), vec![b1]);
    assert_eq!(*pruned.borrow(), vec![(a.id.clone(), a1)]);
    // The next GOP cannot be written: oldest first, anything closed.
    let r = free_space(&store, 1, &hook, None, Urgency::Emergency).unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert!(seqs(&store, b).is_empty(), "b's segment was the oldest");
    assert_eq!(seqs(&store, a), vec![a2]);
}

#[test]
fn a_segment_whose_prune_is_not_recorded_is_kept() {
    let (dir, store, cams) = store_with_cameras(&["a"]);
    let a = &cams[0];
    let s1 = segment(&store, a, 1, 1_000_000);
    segment(&store, a, 2, 2_000_000);
    let refuse = |_: &str, _: i64| Err("ledger volume full".to_string());
    let r = free_space(&store, 1, &refuse, None, Urgency::Emergency).unwrap();
    assert_eq!(r.segments_deleted, 0);
    assert!(store.segment_path(&a.id, s1).exists());
    assert_eq!(seqs(&store, a).len(), 2);

    // With a reserve, the first refusal releases it and the retry gets through.
    let reserve = SpaceReserve::with_size(dir.path(), 64 * 1024);
    assert!(reserve.ensure());
    let calls = RefCell::new(0);
    let once = |_: &str, _: i64| {
        *calls.borrow_mut() += 1;
        if reserve.is_held() {
            Err("volume full".to_string())
        } else {
            Ok(())
        }
    };
    let r = free_space(&store, 1, &once, Some(&reserve), Urgency::Emergency).unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert!(!reserve.is_held(), "released under pressure");
    assert!(!store.segment_path(&a.id, s1).exists());
    assert_eq!(*calls.borrow(), 2);
}

#[test]
fn an_unreachable_floor_is_replaced_and_explained() {
    let (floor, warning) = effective_floor(256 << 20, Some(12 << 20));
    assert_eq!(floor, (12 << 20) / 10);
    let w = warning.unwrap();
    assert!(
        w.contains("storage.min_free_bytes") && w.contains("vigil.toml"),
        "{w}"
    );
    assert_eq!(
        effective_floor(256 << 20, Some(100 << 30)),
        (256 << 20, None)
    );
    assert_eq!(effective_floor(256 << 20, None), (256 << 20, None));
}

/// An evidence lock keeps the segments it touches through the age and byte limits and through
/// an emergency, while everything around it goes; once it ends, retention deletes it again.
#[test]
fn locked_evidence_survives_every_kind_of_retention_until_its_lock_ends() {
    let (_dir, store, cams) = store_with_cameras(&["a"]);
    let a = &cams[0];
    let segs: Vec<i64> = (0..6)
        .map(|i| segment(&store, a, i + 1, 1_000_000 + i * 10_000_000))
        .collect();
    let hook = |_: &str, _: i64| Ok(());
    // Locks inside the second and the fourth segment.
    let l1 = store
        .add_lock(&a.id, 11_500_000, 11_800_000, "case 1", "user:x", 0, None)
        .unwrap();
    store
        .add_lock(
            &a.id,
            31_500_000,
            31_800_000,
            "case 2",
            "user:x",
            0,
            Some(i64::MAX),
        )
        .unwrap();
    // Ended and expired locks keep nothing.
    let ended = store
        .add_lock(&a.id, 41_500_000, 41_800_000, "done", "user:x", 0, None)
        .unwrap();
    assert!(store.end_lock(ended.id, 1, "user:x").unwrap());
    store
        .add_lock(&a.id, 51_500_000, 51_800_000, "short", "user:x", 0, Some(2))
        .unwrap();
    // Everything is too old: only the locked segments stay.
    let policy = vigil_media::retention::RetentionPolicy {
        max_age_secs: Some(1),
        ..Default::default()
    };
    let r = vigil_media::retention::enforce_at(&store, &policy, 1_000_000_000_000, &hook, None)
        .unwrap();
    assert_eq!(r.segments_deleted, 4, "{r:?}");
    assert_eq!(r.segments_locked, 2, "{r:?}");
    assert_eq!(seqs(&store, a), vec![segs[1], segs[3]]);
    // Not even a disk that must free space at once takes them.
    let r = free_space(&store, u64::MAX / 2, &hook, None, Urgency::Emergency).unwrap();
    assert_eq!(r.segments_deleted, 0);
    assert_eq!(seqs(&store, a), vec![segs[1], segs[3]]);
    // Released, the first lock's segment goes like any other.
    assert!(store.end_lock(l1.id, 3, "user:x").unwrap());
    assert!(!store.end_lock(l1.id, 4, "user:x").unwrap(), "ends once");
    let r = free_space(&store, 1, &hook, None, Urgency::Emergency).unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert_eq!(seqs(&store, a), vec![segs[3]]);
    // A lock covers the camera's secondary stream too.
    let locks = vigil_media::store::Locks::in_force(&store, 10).unwrap();
    assert!(locks.holds(&format!("{}~sub", a.id), 31_000_000, 32_000_000));
    assert!(!locks.holds(&a.id, 0, 11_000_000));
    assert_eq!(
        store.expired_locks(10).unwrap().len(),
        1,
        "the short lock ran out"
    );
}

#[test]
fn archived_segments_are_left_to_the_archive_and_only_their_local_copy_may_go() {
    let (dir, store, cams) = store_with_cameras(&["a"]);
    let a = &cams[0];
    let s1 = segment(&store, a, 1, 1_000_000);
    let s2 = segment(&store, a, 2, 2_000_000);
    // Nothing deletes the only copy of a segment that is not archived.
    let err = store.remove_local_copy(&a.id, s1).unwrap_err().to_string();
    assert!(err.contains("not archived"), "{err}");
    assert!(store.segment_path(&a.id, s1).exists());

    store
        .mark_archived(&a.id, s1, 5_000_000, Some(9_000_000))
        .unwrap();
    assert_eq!(store.remove_local_copy(&a.id, s1).unwrap(), 10_240 + 4);
    assert!(!store.has_local_copy(&a.id, s1));
    assert_eq!(
        store.camera_bytes(&a.id).unwrap(),
        10_240 + 4,
        "only s2 is local"
    );

    // Age and bytes limits, the floor and the emergency path never touch the archived row.
    let hook = |_: &str, _: i64| Ok(());
    let policy = vigil_media::retention::RetentionPolicy {
        max_age_secs: Some(1),
        max_bytes: Some(0),
        min_free_bytes: 0,
    };
    let r = vigil_media::retention::enforce_at(&store, &policy, 1_000_000_000_000, &hook, None)
        .unwrap();
    assert_eq!(r.segments_deleted, 1, "the local one");
    assert!(!store.segment_path(&a.id, s2).exists());
    assert_eq!(seqs(&store, a), vec![s1]);
    let r = free_space(&store, u64::MAX / 2, &hook, None, Urgency::Emergency).unwrap();
    assert_eq!(r.segments_deleted, 0);

    // A restart's recovery keeps the archived row although its file is gone.
    let reopened = Store::open(dir.path()).unwrap();
    assert_eq!(reopened.recover().unwrap().missing_files, 0);
    let kept = reopened.archived_segments().unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].row.seq, kept[0].retained_until_us),
        (s1, Some(9_000_000))
    );
    assert_eq!(kept[0].row.archived_us, Some(5_000_000));
    // The retention date only grows.
    reopened.set_archive_until(&a.id, s1, 7_000_000).unwrap();
    reopened.set_archive_until(&a.id, s1, 12_000_000).unwrap();
    assert_eq!(
        reopened.archived_segments().unwrap()[0].retained_until_us,
        Some(12_000_000)
    );
}
