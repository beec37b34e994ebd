//! A recorder run tells the next one how the camera's recording was interrupted, so the
//! interval between the last stored GOP and the next run's first GOP is stored as a gap with
//! a truthful reason.

mod common;

use common::store_with_camera;
use vigil_media::store::{
    Camera, GAP_RECORDER_RESTARTED, GAP_RECORDING_STOPPED, GAP_UNCLEAN_SHUTDOWN, Interruption,
    Store, now_us,
};

/// Stores one GOP of `duration_us` at `start_us` in a segment of its own.
fn record_gop(store: &Store, cam: &Camera, gop_no: i64, start_us: i64, duration_us: i64) {
    let mut seg = store
        .begin_segment(&cam.id, b"init", "avc1", start_us)
        .unwrap();
    seg.append(store, &[b"gop bytes"], gop_no, start_us, duration_us, 15)
        .unwrap();
    seg.close(store).unwrap();
}

#[test]
fn each_run_says_how_the_previous_one_ended() {
    let (_dir, store, cam) = store_with_camera();
    // Nothing recorded yet: there is no interval to account for.
    assert_eq!(store.begin_recorder_run(&cam.id).unwrap(), None);
    record_gop(&store, &cam, 1, 1_000_000, 500_000);

    // The run above was never marked stopped: it died.
    assert_eq!(
        store.begin_recorder_run(&cam.id).unwrap(),
        Some(Interruption {
            since_us: 1_500_000,
            reason: GAP_UNCLEAN_SHUTDOWN.into(),
        })
    );
    // A crash before the first GOP of a run leaves the same interval, still unclean.
    assert_eq!(
        store.begin_recorder_run(&cam.id).unwrap().unwrap().reason,
        GAP_UNCLEAN_SHUTDOWN
    );

    record_gop(&store, &cam, 2, 9_000_000, 500_000);
    let before_stop = now_us();
    store.end_recorder_run(&cam.id).unwrap();
    let after_stop = now_us();
    // A clean stop: the gap runs from the stop (later than the last GOP here) onwards.
    let i = store.begin_recorder_run(&cam.id).unwrap().unwrap();
    assert_eq!(i.reason, GAP_RECORDING_STOPPED);
    assert!(
        (before_stop..=after_stop).contains(&i.since_us),
        "{i:?} not at the stop {before_stop}..{after_stop}"
    );
    // ...and that run is running now: a crash of it is unclean again.
    assert_eq!(
        store.begin_recorder_run(&cam.id).unwrap().unwrap().reason,
        GAP_UNCLEAN_SHUTDOWN
    );
}

#[test]
fn a_clean_stop_before_the_last_gop_ends_starts_the_gap_at_the_gop_end() {
    let (_dir, store, cam) = store_with_camera();
    store.begin_recorder_run(&cam.id).unwrap();
    // The camera's timeline may run ahead of the wall clock; the gap never overlaps video.
    let ahead = now_us() + 60_000_000;
    record_gop(&store, &cam, 1, ahead, 1_000_000);
    store.end_recorder_run(&cam.id).unwrap();
    assert_eq!(
        store.begin_recorder_run(&cam.id).unwrap(),
        Some(Interruption {
            since_us: ahead + 1_000_000,
            reason: GAP_RECORDING_STOPPED.into(),
        })
    );
}

#[test]
fn video_from_before_runs_were_kept_is_neither_clean_nor_unclean() {
    let (_dir, store, cam) = store_with_camera();
    record_gop(&store, &cam, 1, 1_000_000, 500_000);
    assert_eq!(
        store.begin_recorder_run(&cam.id).unwrap(),
        Some(Interruption {
            since_us: 1_500_000,
            reason: GAP_RECORDER_RESTARTED.into(),
        })
    );
}
