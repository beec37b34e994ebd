//! The archiver against `object_store`'s in-memory store (`MemoryArchive`, which enforces
//! compliance retention as S3 does): what is archived and when, verification before any local
//! delete, evidence locks, and crashes at every step.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Recorded;
use vigil_archive::{
    ArchiveSettings, ArchiveStep, Archiver, MemoryArchive, ObjectArchive, ObjectError, object_keys,
};
use vigil_media::store::{Store, now_us};

const HOUR: Duration = Duration::from_secs(3600);
const DAY_US: i64 = 86_400_000_000;

fn settings(lock_days: Option<u32>) -> ArchiveSettings {
    ArchiveSettings {
        prefix: "site-a/".into(),
        after: HOUR,
        lock_days,
    }
}

#[tokio::test]
async fn segments_older_than_after_are_archived_verified_and_removed_locally() {
    let rec = Recorded::new(3);
    let mem = MemoryArchive::new();
    let archiver = Archiver::new(rec.store.clone(), mem.clone(), settings(Some(30)));

    let young = archiver.run_once(now_us()).await;
    assert!(
        young.archived.is_empty() && young.failures.is_empty(),
        "{young:?}"
    );
    assert_eq!(rec.local_files().len(), 3);

    let at = rec.later(2 * HOUR);
    let report = archiver.run_once(at).await;
    assert_eq!(report.archived.len(), 3, "{report:?}");
    assert!(report.failures.is_empty(), "{report:?}");
    assert!(report.bytes_freed > 0);
    assert!(
        rec.local_files().is_empty(),
        "local copies removed after verification"
    );

    let segments = rec.store.segments(&rec.camera.id).unwrap();
    assert_eq!(segments.len(), 3, "the index keeps archived segments");
    for seg in &segments {
        assert_eq!(seg.archived_us, Some(at));
        let (video, excerpt) = object_keys("site-a/", &rec.camera.id, seg.seq);
        let until = mem.retention(&video).await.unwrap().expect("retention set");
        assert!((until - (at + 30 * DAY_US)).abs() < 2_000_000, "{until}");
        assert_eq!(mem.retention(&excerpt).await.unwrap(), Some(until));
        assert!(mem.get(&excerpt).await.unwrap().starts_with(b"VGLEXC1\n"));
    }
    assert_eq!(mem.keys().await.len(), 6);
    assert_eq!(
        rec.store.camera_bytes(&rec.camera.id).unwrap(),
        0,
        "nothing local counts"
    );

    // A restart's recovery keeps the rows of archived segments whose files are gone.
    let reopened = Store::open(rec.root()).unwrap();
    let recovery = reopened.recover().unwrap();
    assert_eq!(recovery.missing_files, 0);
    assert_eq!(reopened.segments(&rec.camera.id).unwrap().len(), 3);

    // Nothing is archived twice.
    let again = archiver.run_once(at + HOUR.as_micros() as i64).await;
    assert!(
        again.archived.is_empty() && again.failures.is_empty(),
        "{again:?}"
    );
}

#[tokio::test]
async fn archived_video_comes_back_checked_and_verifies() {
    let rec = Recorded::new(2);
    let archiver = Archiver::new(rec.store.clone(), MemoryArchive::new(), settings(Some(1)));
    let before: Vec<Vec<u8>> = rec
        .store
        .segments(&rec.camera.id)
        .unwrap()
        .iter()
        .map(|s| std::fs::read(rec.store.segment_path(&rec.camera.id, s.seq)).unwrap())
        .collect();
    let at = rec.later(2 * HOUR);
    assert_eq!(archiver.run_once(at).await.archived.len(), 2);
    assert!(
        !rec.verify().is_verified(),
        "without its files the range is not verified"
    );

    let fetched = archiver
        .restore_range(&rec.camera.id, i64::MIN, i64::MAX)
        .await
        .unwrap();
    assert_eq!(fetched, 2);
    let after: Vec<Vec<u8>> = rec
        .store
        .segments(&rec.camera.id)
        .unwrap()
        .iter()
        .map(|s| std::fs::read(rec.store.segment_path(&rec.camera.id, s.seq)).unwrap())
        .collect();
    assert_eq!(before, after, "byte for byte what was recorded");
    let report = rec.verify();
    assert!(report.is_verified(), "{:?}", report.failure);
    assert_eq!(report.checked.fragments, 4);

    // A restored copy stays for readers, then the archiver drops it again.
    let soon = archiver.run_once(now_us()).await;
    assert_eq!(soon.leftovers_removed, 0, "{soon:?}");
    let late = archiver
        .run_once(now_us() + 2 * HOUR.as_micros() as i64)
        .await;
    assert_eq!(late.leftovers_removed, 2, "{late:?}");
    assert!(rec.local_files().is_empty());
}

/// Stores what it is given, except that the video objects it stores are damaged as `damage`
/// says: the archive then holds something other than what was uploaded.
#[derive(Clone)]
struct Damaging {
    inner: MemoryArchive,
    damage: fn(&[u8]) -> Vec<u8>,
}

impl ObjectArchive for Damaging {
    async fn put(&self, key: &str, data: Bytes) -> Result<Option<String>, ObjectError> {
        let data = if key.ends_with(".mp4") {
            Bytes::from((self.damage)(&data))
        } else {
            data
        };
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, ObjectError> {
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str, version: Option<&str>) -> Result<(), ObjectError> {
        self.inner.delete(key, version).await
    }
    async fn retain_until(&self, key: &str, until_us: i64) -> Result<(), ObjectError> {
        self.inner.retain_until(key, until_us).await
    }
    async fn retention(&self, key: &str) -> Result<Option<i64>, ObjectError> {
        self.inner.retention(key).await
    }
}

#[tokio::test]
async fn a_corrupted_upload_keeps_the_local_copy_and_says_why() {
    let flip: fn(&[u8]) -> Vec<u8> = |b| {
        let mut b = b.to_vec();
        let last = b.len() - 10;
        b[last] ^= 0x01;
        b
    };
    let cut: fn(&[u8]) -> Vec<u8> = |b| b[..b.len() / 2].to_vec();
    let garbage: fn(&[u8]) -> Vec<u8> = |_| b"<Error><Code>SlowDown</Code></Error>".to_vec();
    for (damage, want) in [
        (flip, "hashes to"),
        (cut, "where the ledger signed"),
        (garbage, "where the ledger signed"),
    ] {
        let rec = Recorded::new(2);
        let archive = Damaging {
            inner: MemoryArchive::new(),
            damage,
        };
        let archiver = Archiver::new(rec.store.clone(), archive, settings(None));
        let report = archiver.run_once(rec.later(2 * HOUR)).await;
        assert!(report.archived.is_empty(), "{report:?}");
        assert_eq!(report.failures.len(), 2, "{report:?}");
        for f in &report.failures {
            assert_eq!(f.step, ArchiveStep::ReadBack);
            assert!(
                f.reason
                    .contains("does not match the hashes the ledger signed")
                    && f.reason.contains(want)
                    && f.reason.contains("the local copy is kept"),
                "{}",
                f.reason
            );
        }
        assert_eq!(rec.local_files().len(), 2, "both local copies stay");
        assert!(
            rec.store
                .segments(&rec.camera.id)
                .unwrap()
                .iter()
                .all(|s| s.archived_us.is_none())
        );
        assert!(rec.verify().is_verified());
    }
}

#[tokio::test]
async fn a_local_file_that_no_longer_matches_its_ledger_is_not_archived() {
    let rec = Recorded::new(2);
    let first = rec.store.segments(&rec.camera.id).unwrap()[0].clone();
    let path = rec.store.segment_path(&rec.camera.id, first.seq);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let mem = MemoryArchive::new();
    let archiver = Archiver::new(rec.store.clone(), mem.clone(), settings(Some(1)));
    let report = archiver.run_once(rec.later(2 * HOUR)).await;
    assert_eq!(
        report.archived.len(),
        1,
        "the intact segment goes: {report:?}"
    );
    assert_eq!(report.failures.len(), 1);
    let f = &report.failures[0];
    assert_eq!((f.step, f.seq), (ArchiveStep::Upload, first.seq));
    assert!(
        f.reason
            .contains("does not match its signed ledger records"),
        "{}",
        f.reason
    );
    assert!(path.exists(), "the damaged evidence stays where it is");
    let (video, _) = object_keys("site-a/", &rec.camera.id, first.seq);
    assert!(!mem.keys().await.contains(&video), "and is not uploaded");
}

#[tokio::test]
async fn evidence_locks_extend_the_retention_and_locked_objects_cannot_be_deleted() {
    let rec = Recorded::new(3);
    let segs = rec.store.segments(&rec.camera.id).unwrap();
    let now = now_us();
    let lock_end = now + 200 * DAY_US;
    // Locks the first segment only (locks include their ends, and segments touch).
    rec.store
        .add_lock(
            &rec.camera.id,
            segs[0].start_us,
            segs[0].start_us + 500_000,
            "case 17",
            "user:admin",
            now,
            Some(lock_end),
        )
        .unwrap();
    let mem = MemoryArchive::new();
    let archiver = Archiver::new(rec.store.clone(), mem.clone(), settings(Some(30)));
    let at = rec.later(2 * HOUR);
    assert_eq!(archiver.run_once(at).await.archived.len(), 3);

    let until = |seq| {
        let mem = mem.clone();
        let key = object_keys("site-a/", &rec.camera.id, seq).0;
        async move { mem.retention(&key).await.unwrap().unwrap() }
    };
    assert_eq!(
        until(segs[0].seq).await,
        lock_end,
        "the lock's end, beyond 30 days"
    );
    assert!(until(segs[1].seq).await < lock_end);

    let (locked, locked_excerpt) = object_keys("site-a/", &rec.camera.id, segs[0].seq);
    for key in [&locked, &locked_excerpt] {
        match mem.delete(key, None).await {
            Err(ObjectError::Refused { why, .. }) => assert!(why.contains("compliance"), "{why}"),
            other => panic!("deleting a locked object: {other:?}"),
        }
        assert!(
            mem.retain_until(key, now).await.is_err(),
            "retention cannot be shortened"
        );
    }
    assert!(mem.get(&locked).await.is_ok());

    // A lock set after archiving, without an end: retention is extended to the configured
    // days from now, and renewed while the lock holds.
    rec.store
        .add_lock(
            &rec.camera.id,
            segs[2].start_us + 1,
            segs[2].end_us,
            "case 18",
            "user:admin",
            now,
            None,
        )
        .unwrap();
    let later = at + 20 * DAY_US;
    let report = archiver.run_once(later).await;
    assert_eq!(report.retention_extended, 1, "{report:?}");
    assert_eq!(until(segs[2].seq).await, later + 30 * DAY_US);
    let next = archiver.run_once(later + HOUR.as_micros() as i64).await;
    assert_eq!(
        next.retention_extended, 0,
        "not renewed on every pass: {next:?}"
    );
}

#[tokio::test]
async fn a_crash_at_any_step_between_upload_and_local_delete_loses_nothing() {
    for crash_at in [
        ArchiveStep::Upload,
        ArchiveStep::Retain,
        ArchiveStep::ReadBack,
        ArchiveStep::Mark,
        ArchiveStep::RemoveLocal,
    ] {
        let rec = Recorded::new(2);
        let mem = MemoryArchive::new();
        let at = rec.later(2 * HOUR);
        {
            let archiver = Archiver::new(rec.store.clone(), mem.clone(), settings(Some(1)));
            archiver.set_step_hook(Some(Arc::new(move |step, _: &str, _| {
                if step == crash_at {
                    Err(format!("killed before {step:?}"))
                } else {
                    Ok(())
                }
            })));
            let report = archiver.run_once(at).await;
            assert!(report.stopped.is_some(), "{crash_at:?}: {report:?}");
        }
        // The restarted server: a new index connection, start-up recovery, a new archiver.
        let store = Arc::new(Store::open(rec.root()).unwrap());
        let recovery = store.recover().unwrap();
        assert_eq!(recovery.missing_files, 0, "{crash_at:?}");
        let segs = store.segments(&rec.camera.id).unwrap();
        assert_eq!(segs.len(), 2, "{crash_at:?}");
        for s in &segs {
            assert!(
                store.has_local_copy(&rec.camera.id, s.seq) || s.archived_us.is_some(),
                "{crash_at:?}: segment {} is neither local nor archived",
                s.seq
            );
        }
        let archiver = Archiver::new(store.clone(), mem.clone(), settings(Some(1)));
        let report = archiver.run_once(at + 1).await;
        assert!(report.failures.is_empty(), "{crash_at:?}: {report:?}");
        assert_eq!(
            report.archived.len() + report.leftovers_removed,
            2,
            "{crash_at:?}: {report:?}"
        );
        assert!(rec.local_files().is_empty(), "{crash_at:?}");
        archiver
            .restore_range(&rec.camera.id, i64::MIN, i64::MAX)
            .await
            .unwrap();
        let verdict = rec.verify();
        assert!(verdict.is_verified(), "{crash_at:?}: {:?}", verdict.failure);
        assert_eq!(verdict.checked.fragments, 4, "{crash_at:?}");
    }
}

#[tokio::test]
async fn without_object_lock_no_retention_is_set_and_a_restore_refuses_damaged_objects() {
    let rec = Recorded::new(1);
    let mem = MemoryArchive::new();
    let archiver = Archiver::new(rec.store.clone(), mem.clone(), settings(None));
    let report = archiver.run_once(rec.later(2 * HOUR)).await;
    assert_eq!(report.archived.len(), 1, "{report:?}");
    let seq = report.archived[0].1;
    let (video, _) = object_keys("site-a/", &rec.camera.id, seq);
    assert_eq!(mem.retention(&video).await.unwrap(), None);

    // Someone replaces the archived object: it is not brought back as evidence.
    let good = mem.get(&video).await.unwrap();
    let mut bad = good.to_vec();
    bad.truncate(good.len() - 1);
    mem.put(&video, Bytes::from(bad)).await.unwrap();
    let err = archiver.restore(&rec.camera.id, seq).await.unwrap_err();
    assert!(
        err.contains("does not match the hashes the ledger signed"),
        "{err}"
    );
    assert!(rec.local_files().is_empty());

    mem.delete(&video, None).await.unwrap();
    let err = archiver.restore(&rec.camera.id, seq).await.unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
}
