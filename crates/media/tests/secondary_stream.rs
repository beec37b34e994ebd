//! A camera's secondary stream: how the store keeps it (a row of its own under an id derived
//! from the camera's, the password sealed, kept with its numbering when removed and set again,
//! indexes written before secondary streams existed), retention and recovery over it, and the
//! recorder running it from scripted cameras (tests/common): live only (the hub gets every
//! frame, nothing reaches the disk or the index) or recorded (its own segments and evidence
//! ledger, which verifies).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use vigil_media::evidence::{Evidence, Signing, ledger_path, signing_dir};
use vigil_media::live::{FeedKey, LiveHub, Stream, ViewerEvent};
use vigil_media::recorder::{self, RecorderEnv, RecorderHandle, RecorderSettings, Storage};
use vigil_media::retention::{RetentionPolicy, enforce_at};
use vigil_media::secrets::SecretBox;
use vigil_media::store::{
    Camera, NewCamera, NewSecondary, SCHEMA_VERSION, Store, StoreError, StreamMode,
    secondary_stream_id,
};
use vigil_signing::{CaCert, TimeRange, verify_recording};

fn secondary(mode: StreamMode) -> NewSecondary {
    NewSecondary {
        url: "rtsp://127.0.0.1:8554/sub".into(),
        username: Some("viewer".into()),
        password: Some("sub-Secret-42".into()),
        mode,
    }
}

/// Rows of `table` whose `camera_id` is `id`, read with SQLite directly.
fn rows(dir: &Path, table: &str, id: &str) -> i64 {
    let db = rusqlite::Connection::open(dir.join("vigil.db")).unwrap();
    db.query_row(
        &format!("SELECT count(*) FROM {table} WHERE camera_id = ?1"),
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

// ----- the store -----

#[test]
fn a_secondary_is_a_stream_of_its_camera_with_its_password_sealed() {
    let (dir, store, _) = store_with_cameras(&[]);
    let cam = store
        .add_camera(&NewCamera {
            name: "lobby".into(),
            url: "rtsp://127.0.0.1:8554/main".into(),
            secondary: Some(secondary(StreamMode::Live)),
            ..Default::default()
        })
        .unwrap();
    let sec = cam.secondary.clone().expect("the secondary was added");
    assert_eq!(sec.id, secondary_stream_id(&cam.id));
    assert_eq!(sec.id, format!("{}~sub", cam.id));
    assert_eq!(
        (sec.url.as_str(), sec.username.as_deref(), sec.has_password),
        ("rtsp://127.0.0.1:8554/sub", Some("viewer"), true)
    );
    assert_eq!(sec.mode, StreamMode::Live);
    // One camera, not two; the stream's id names no camera.
    let cams = store.cameras().unwrap();
    assert_eq!(cams, vec![cam.clone()]);
    assert!(matches!(
        store.camera(&sec.id),
        Err(StoreError::NoSuchCamera(_))
    ));
    // The recorder's view of it: its own id, URL and password, the camera's settings.
    let as_recorded = cam.secondary_camera().unwrap();
    assert_eq!(as_recorded.id, sec.id);
    assert_eq!(as_recorded.url, sec.url);
    assert_eq!(as_recorded.time_origin_us, sec.time_origin_us);
    assert_eq!(as_recorded.enabled, cam.enabled);
    assert_eq!(
        store.camera_password(&sec.id).unwrap().as_deref(),
        Some("sub-Secret-42")
    );
    assert_eq!(cam.main_camera().secondary, None);
    // Sealed at rest: the password is nowhere in the database files.
    drop(store);
    for f in files_under(dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(13).any(|w| w == b"sub-Secret-42"),
            "{} holds the password in clear",
            f.display()
        );
    }
}

#[test]
fn a_secondary_is_checked_like_the_main_stream() {
    let (_dir, store, _) = store_with_cameras(&["lobby"]);
    let refused = |s: NewSecondary| match store.set_secondary("lobby", Some(&s)) {
        Err(StoreError::InvalidCamera(m)) => m,
        other => panic!("{other:?}"),
    };
    let m = refused(NewSecondary {
        url: "rtsp://admin:pw@10.0.0.5/sub".into(),
        ..Default::default()
    });
    assert!(
        m.starts_with("secondary stream: credentials must not be part of the URL"),
        "{m}"
    );
    let m = refused(NewSecondary {
        url: "http://10.0.0.5/sub".into(),
        ..Default::default()
    });
    assert!(m.contains("scheme 'http'"), "{m}");
    let m = refused(NewSecondary {
        url: "rtsp://10.0.0.5/sub".into(),
        password: Some("pw".into()),
        ..Default::default()
    });
    assert!(m.contains("password was given without"), "{m}");
    // A camera with a bad secondary is not added at all.
    let e = store
        .add_camera(&NewCamera {
            name: "gate".into(),
            url: "rtsp://10.0.0.6/main".into(),
            secondary: Some(NewSecondary {
                url: "rtsp://u:p@10.0.0.6/sub".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidCamera(_)), "{e}");
    assert!(matches!(
        store.camera("gate"),
        Err(StoreError::NoSuchCamera(_))
    ));
    assert!(matches!(
        store.set_secondary("nope", Some(&secondary(StreamMode::Live))),
        Err(StoreError::NoSuchCamera(_))
    ));
    assert_eq!(store.camera("lobby").unwrap().secondary, None);
    assert!(StreamMode::Live.as_str().parse::<StreamMode>().is_ok());
    assert_eq!(
        "recorded".parse::<StreamMode>().unwrap(),
        StreamMode::Recorded
    );
    assert!("sub".parse::<StreamMode>().is_err());
}

#[test]
fn a_camera_without_a_secondary_says_so_and_no_name_can_pose_as_an_id() {
    let (_dir, store, cams) = store_with_cameras(&["lobby", "gate"]);
    assert!(matches!(
        store.recorded_stream("lobby", Stream::Secondary),
        Err(StoreError::NoSecondary(n)) if n == "lobby"
    ));
    // Another camera's id as a name would make that id resolve to the wrong camera.
    for name in [cams[1].id.as_str(), "cam-0123456789ab"] {
        let e = store
            .add_camera(&NewCamera {
                name: name.into(),
                url: "rtsp://127.0.0.1:8554/x".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(e.to_string().contains("are camera ids"), "{e}");
    }
    // Close to an id is a name.
    for name in ["cam-0123456789a", "cam-0123456789abc", "cam-0123456789AB"] {
        store
            .add_camera(&NewCamera {
                name: name.into(),
                url: "rtsp://127.0.0.1:8554/x".into(),
                ..Default::default()
            })
            .unwrap();
    }
}

#[test]
fn a_removed_secondary_keeps_its_recordings_and_numbering_until_its_camera_goes() {
    let (dir, store, cams) = store_with_cameras(&["lobby"]);
    let cam = store
        .set_secondary(&cams[0].name, Some(&secondary(StreamMode::Recorded)))
        .unwrap();
    let sec = cam.secondary_camera().unwrap();
    let mut seg = store
        .begin_segment(&sec.id, b"init", "avc1", sec.time_origin_us)
        .unwrap();
    append_gop(&store, &sec, &mut seg, 0);
    seg.close(&store).unwrap();
    assert_consistent(&store, &sec);

    // Exports and verification address it by its camera's name, or by its id.
    let by_name = store.recorded_stream("lobby", Stream::Secondary).unwrap();
    assert_eq!(
        (by_name.id.as_str(), by_name.name.as_str()),
        (sec.id.as_str(), "lobby (secondary)")
    );
    assert_eq!(store.stream(&sec.id).unwrap().id, sec.id);
    let main = store.recorded_stream("lobby", Stream::Main).unwrap();
    assert_eq!(
        (main.id.as_str(), main.secondary),
        (cams[0].id.as_str(), None)
    );
    assert_eq!(store.stream("lobby").unwrap().id, cams[0].id);

    // Removed: no longer part of the camera, its video and counters stay.
    let cam = store.set_secondary("lobby", None).unwrap();
    assert_eq!(cam.secondary, None);
    assert_eq!(store.segments(&sec.id).unwrap().len(), 1);
    assert_eq!(store.camera_password(&sec.id).unwrap(), None);
    // ... and stay addressable while they last.
    let removed = store.recorded_stream("lobby", Stream::Secondary).unwrap();
    assert_eq!(removed.id, sec.id);
    assert_eq!(store.stream(&sec.id).unwrap().id, sec.id);

    // Set again (another URL, no password): the same id and time origin, the next number.
    let cam = store
        .set_secondary(
            "lobby",
            Some(&NewSecondary {
                url: "rtsp://127.0.0.1:8554/other".into(),
                mode: StreamMode::Recorded,
                ..Default::default()
            }),
        )
        .unwrap();
    let again = cam.secondary.clone().unwrap();
    assert_eq!(again.id, sec.id);
    assert_eq!(again.time_origin_us, sec.time_origin_us);
    assert_eq!(
        (
            again.url.as_str(),
            again.username.as_deref(),
            again.has_password
        ),
        ("rtsp://127.0.0.1:8554/other", None, false)
    );
    let seg = store
        .begin_segment(&sec.id, b"init", "avc1", sec.time_origin_us + 5_000_000)
        .unwrap();
    assert_eq!(seg.seq, 2, "segment numbers are never reused");
    drop(seg);
    store.close_segment(&sec.id, 2).unwrap();

    // The camera goes, with its recordings: the secondary's go too.
    store.remove_camera("lobby", true).unwrap();
    assert!(matches!(
        store.stream(&sec.id),
        Err(StoreError::NoSuchCamera(_))
    ));
    assert!(store.segments(&sec.id).unwrap().is_empty());
    assert!(!store.camera_dir(&sec.id).exists());
    assert_eq!(rows(dir.path(), "segments", &sec.id), 0);
    let db = rusqlite::Connection::open(dir.path().join("vigil.db")).unwrap();
    let left: i64 = db
        .query_row("SELECT count(*) FROM cameras", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

/// One closed segment of one 10 KiB GOP of `stream` ending at `end_us`.
fn closed_segment(store: &Store, stream: &str, gop_no: i64, end_us: i64) {
    let start = end_us - 1_000_000;
    let mut seg = store.begin_segment(stream, b"init", "avc1", start).unwrap();
    seg.append(store, &[&[7u8; 10_240]], gop_no, start, 1_000_000, 25)
        .unwrap();
    seg.close(store).unwrap();
}

#[test]
fn retention_limits_cover_both_streams_of_a_camera_together() {
    let (_dir, store, cams) = store_with_cameras(&["lobby"]);
    let cam = store
        .set_secondary(&cams[0].name, Some(&secondary(StreamMode::Recorded)))
        .unwrap();
    let sid = cam.secondary.unwrap().id;
    let now = 1_000_000_000_000;
    let day = 86_400_000_000;
    // Oldest first: main, secondary, main, secondary.
    closed_segment(&store, &cam.id, 1, now - 4 * day);
    closed_segment(&store, &sid, 1, now - 3 * day);
    closed_segment(&store, &cam.id, 2, now - 2 * day);
    closed_segment(&store, &sid, 2, now - day);
    let seqs =
        |id: &str| -> Vec<i64> { store.segments(id).unwrap().iter().map(|s| s.seq).collect() };
    let keep = |_: &str, _: i64| Ok(());
    // Age: what is older than 2.5 days goes, of either stream.
    let policy = RetentionPolicy {
        max_age_secs: Some(60 * 60 * 60),
        ..Default::default()
    };
    let r = enforce_at(&store, &policy, now, &keep, None).unwrap();
    assert_eq!(r.segments_deleted, 2);
    assert_eq!((seqs(&cam.id), seqs(&sid)), (vec![2], vec![2]));
    // Bytes: one camera's budget for both streams; the oldest goes, whichever stream.
    let one = store.segments(&sid).unwrap()[0].bytes;
    store
        .set_camera_retention("lobby", None, Some(one + 100))
        .unwrap();
    let r = enforce_at(&store, &RetentionPolicy::default(), now, &keep, None).unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert_eq!((seqs(&cam.id), seqs(&sid)), (vec![], vec![2]));
    // A removed secondary's video still ages out with its camera's limits.
    store.set_secondary("lobby", None).unwrap();
    let r = enforce_at(&store, &policy, now + 3 * day, &keep, None).unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert!(seqs(&sid).is_empty());
}

#[test]
fn recovery_reconciles_a_secondary_streams_segments() {
    let (_dir, store, cams) = store_with_cameras(&["lobby"]);
    let cam = store
        .set_secondary(&cams[0].name, Some(&secondary(StreamMode::Recorded)))
        .unwrap();
    let sec = cam.secondary_camera().unwrap();
    let init = vigil_media::fmp4::init_segment(&h264_params(1)).unwrap();
    let mut seg = store
        .begin_segment(&sec.id, &init, "avc1.4d401e", sec.time_origin_us)
        .unwrap();
    append_gop(&store, &sec, &mut seg, 0);
    append_gop(&store, &sec, &mut seg, 1);
    // A crash: the segment is left open.
    drop(seg);
    assert!(store.segments(&sec.id).unwrap()[0].open);
    let report = store.recover().unwrap();
    assert_eq!(report.interrupted.len(), 1);
    assert_eq!(report.interrupted[0].camera_id, sec.id);
    assert!(!store.segments(&sec.id).unwrap()[0].open);
    assert_eq!(assert_consistent(&store, &sec).len(), 2);
}

/// The schema as Vigil wrote it before secondary streams (no `meta.schema_version`).
const OLD_SCHEMA: &str = r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cameras (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    username TEXT,
    password_enc BLOB,
    enabled INTEGER NOT NULL DEFAULT 1,
    max_age_secs INTEGER,
    max_bytes INTEGER,
    time_origin_us INTEGER NOT NULL,
    next_seq INTEGER NOT NULL DEFAULT 1,
    next_gop INTEGER NOT NULL DEFAULT 1,
    created_us INTEGER NOT NULL
);
CREATE TABLE segments (
    camera_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    frames INTEGER NOT NULL DEFAULT 0,
    init_len INTEGER NOT NULL,
    init_sha256 BLOB NOT NULL,
    codec TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (camera_id, seq)
);
INSERT INTO cameras (id, name, url, username, enabled, max_age_secs, time_origin_us, next_seq, next_gop, created_us)
VALUES ('cam-0123456789ab', 'lobby', 'rtsp://10.0.0.5/stream1', 'rec', 0, 86400, 1700000000000000, 4, 9, 1700000000000000);
INSERT INTO segments (camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open)
VALUES ('cam-0123456789ab', 3, 1700000001000000, 1700000002000000, 100, 25, 40, x'00', 'avc1.4d401e', 0);
"#;

#[test]
fn an_index_from_before_secondary_streams_opens_and_is_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    SecretBox::create_key(&dir.path().join("keys")).unwrap();
    {
        let db = rusqlite::Connection::open(dir.path().join("vigil.db")).unwrap();
        db.execute_batch(OLD_SCHEMA).unwrap();
    }
    let version = || -> Option<String> {
        let db = rusqlite::Connection::open(dir.path().join("vigil.db")).unwrap();
        db.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .ok()
    };
    assert_eq!(version(), None);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(version(), Some(SCHEMA_VERSION.to_string()));
    let cam = store.camera("lobby").unwrap();
    assert_eq!(
        (
            cam.id.as_str(),
            cam.url.as_str(),
            cam.enabled,
            cam.max_age_secs
        ),
        (
            "cam-0123456789ab",
            "rtsp://10.0.0.5/stream1",
            false,
            Some(86400)
        )
    );
    assert_eq!(cam.secondary, None);
    assert_eq!(store.segments(&cam.id).unwrap().len(), 1);
    // The old camera takes a secondary like a new one, and its counters are untouched.
    let cam = store
        .set_secondary("lobby", Some(&secondary(StreamMode::Recorded)))
        .unwrap();
    assert_eq!(cam.secondary.as_ref().unwrap().mode, StreamMode::Recorded);
    assert_eq!(store.next_gop_no(&cam.id).unwrap(), 9);
    drop(store);
    // Opening again (and twice at once) changes nothing.
    let (a, b) = (
        Store::open(dir.path()).unwrap(),
        Store::open(dir.path()).unwrap(),
    );
    assert_eq!(a.cameras().unwrap(), b.cameras().unwrap());
    assert_eq!(a.cameras().unwrap(), vec![cam]);
    assert_eq!(version(), Some(SCHEMA_VERSION.to_string()));
}

#[test]
fn an_index_from_a_newer_vigil_is_refused() {
    let (dir, store, _) = store_with_cameras(&["lobby"]);
    drop(store);
    let db = rusqlite::Connection::open(dir.path().join("vigil.db")).unwrap();
    db.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        [(SCHEMA_VERSION + 1).to_string()],
    )
    .unwrap();
    drop(db);
    let e = Store::open(dir.path()).err().unwrap();
    assert!(matches!(e, StoreError::NewerSchema { .. }), "{e}");
    assert!(e.to_string().contains("newer than this Vigil knows"), "{e}");
}

// ----- the recorder -----

fn run_secondary(
    rig: &Rig,
    cam: &Camera,
    storage: Storage,
    settings: RecorderSettings,
    camera: &Arc<ScriptedCamera>,
    hub: &Arc<LiveHub>,
    tick: Duration,
) -> RecorderHandle {
    recorder::start_stream(
        rig.store.clone(),
        cam.secondary_camera().unwrap(),
        FeedKey::secondary(&cam.id),
        storage,
        settings,
        RecorderEnv {
            opener: camera.clone(),
            clock: rig.clock.clone(),
            tick_interval: tick,
            live: Some(hub.clone()),
        },
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_live_only_stream_feeds_its_viewers_and_writes_nothing_to_disk() {
    let rig = Rig::new();
    let cam = rig
        .store
        .set_secondary(&rig.cam.name, Some(&secondary(StreamMode::Live)))
        .unwrap();
    let sid = cam.secondary.clone().unwrap().id;
    let hub = hub();
    let mut main = hub.subscribe(&FeedKey::main(&cam.id));
    let mut viewer = hub.subscribe(&FeedKey::secondary(&cam.id));
    let camera = ScriptedCamera::new(vec![play([gops(3, 1, false), vec![Step::Hold]].concat())]);
    // Ticks every second (there is no writer thread to outrun); no stall while held.
    let settings = RecorderSettings {
        inactivity_timeout: Duration::from_secs(3600),
        ..rig.settings.clone()
    };
    let handle = run_secondary(
        &rig,
        &cam,
        Storage::LiveOnly,
        settings,
        &camera,
        &hub,
        Duration::from_secs(1),
    );
    let evs = until_frames(&mut viewer, 3 * GOP_FRAMES).await;
    assert_eq!(
        state_names(&evs),
        ["offline", "connecting", "live", "init1"]
    );
    let keys = evs
        .iter()
        .filter(|e| matches!(e, ViewerEvent::Fragment(f) if f.is_key))
        .count();
    assert_eq!(keys, 3);
    // The status says `live` (not recording), with the stream's codec and size.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let s = rig
        .store
        .status(&sid)
        .unwrap()
        .expect("the stream's status");
    assert_eq!(s.state, "live");
    assert_eq!(s.codec.as_deref(), Some("avc1.4d401e"));
    assert_eq!(s.resolution.as_deref(), Some("656x480"));
    assert!(s.last_frame_us.is_some());
    handle.stop().await;
    assert_eq!(rig.store.status(&sid).unwrap().unwrap().state, "stopped");
    assert_eq!(
        state_names(&received(&mut viewer)),
        ["stopped"],
        "its viewers see it stop"
    );

    // Nothing stored: no files, no index rows, no recorder run, no ledger.
    let files: Vec<_> = files_under(rig.dir.path())
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "mp4")
                || p.to_string_lossy().contains("ledger")
                || p.to_string_lossy().contains(&sid)
        })
        .collect();
    assert!(files.is_empty(), "{files:?}");
    for table in ["segments", "gops", "gaps", "recorder_runs"] {
        assert_eq!(rows(rig.dir.path(), table, &sid), 0, "{table}");
        assert_eq!(rows(rig.dir.path(), table, &cam.id), 0, "{table}");
    }
    // The main stream's feed was not touched.
    assert_eq!(state_names(&received(&mut main)), ["offline"]);
    assert_eq!(camera.opens().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_recorded_secondary_is_stored_and_signed_under_its_own_id() {
    let rig = Rig::new();
    let data = rig.dir.path().to_owned();
    let (id, ca_pem) = signing_identity();
    id.save(&signing_dir(&data)).unwrap();
    let evidence = Evidence::new(&data, Signing::On).unwrap();
    let cam = rig
        .store
        .set_secondary(&rig.cam.name, Some(&secondary(StreamMode::Recorded)))
        .unwrap();
    let sec = cam.secondary_camera().unwrap();
    let hub = hub();
    let mut viewer = hub.subscribe(&FeedKey::secondary(&cam.id));
    let camera = ScriptedCamera::new(vec![play([gops(3, 1, true), vec![Step::End]].concat())]);
    let handle = run_secondary(
        &rig,
        &cam,
        Storage::Recorded {
            observer: Some(evidence.observer(&sec.id).unwrap()),
            space: rig.space.clone(),
        },
        rig.settings.clone(),
        &camera,
        &hub,
        Duration::from_secs(3600),
    );
    let evs = until_frames(&mut viewer, 3 * GOP_FRAMES).await;
    assert_eq!(
        state_names(&evs),
        ["offline", "connecting", "live", "init1"]
    );
    camera.played_out().await;
    handle.stop().await;
    evidence.close_all();

    // Its own segments, consistent with its own index rows; nothing under the camera's id.
    let gops = assert_consistent(&rig.store, &sec);
    assert_eq!(gops.len(), 3);
    assert!(gops.iter().all(|g| g.camera_id == sec.id));
    assert!(rig.store.segments(&cam.id).unwrap().is_empty());
    assert_eq!(rows(&data, "recorder_runs", &sec.id), 1);
    assert_eq!(rig.store.status(&sec.id).unwrap().unwrap().state, "stopped");
    // Its own ledger, which verifies the way a camera's does.
    let ledger = ledger_path(&data, &sec.id);
    assert!(ledger.is_file());
    assert!(!ledger_path(&data, &cam.id).exists());
    let report = verify_recording(
        &sec.id,
        &ledger,
        &rig.store.camera_dir(&sec.id),
        TimeRange::all(),
        &[CaCert::from_pem(&ca_pem).unwrap()],
        &mut |_, _| {},
    )
    .unwrap();
    assert!(report.is_verified(), "{}", report.summary());
    assert_eq!(report.camera_id, sec.id);
}
