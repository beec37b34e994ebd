//! The recording core without a network or an encoder: scripted cameras (tests/common) feed
//! the real recorder (ingest session loop, GOP assembly, writer thread, store) on tokio's
//! paused clock, so back-off, stalls and gaps are checked to the microsecond in milliseconds.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mp4_atom::{Decode, Moof, TrunSamples};
use vigil_media::recorder::FreeSpace;
use vigil_media::retention::{RetentionPolicy, Urgency, enforce_at, free_space};
use vigil_media::store::{GAP_RECORDING_STOPPED, Store, WriteStep};

const DISCONNECTED: &str = "camera disconnected";
const STALLED: &str = "stalled: no data for 5s";

#[tokio::test(start_paused = true)]
async fn b_frames_are_stored_in_decode_order_with_signed_composition_offsets() {
    let rig = Rig::new();
    let steps = gops(3, 1, true);
    let sent: Vec<_> = steps
        .iter()
        .map(|s| match s {
            Step::Frames(f) => f.clone(),
            _ => unreachable!(),
        })
        .collect();
    rig.record(vec![play([steps, vec![Step::Hold]].concat())])
        .await;

    let gops = assert_consistent(&rig.store, &rig.cam);
    assert_eq!(rig.gop_starts(), vec![0.0, 1.0, 2.0]);
    for (g, frames) in gops.iter().zip(&sent) {
        assert_eq!(g.duration_us, GOP_US);
        assert_eq!(g.frames, frames.len() as i64);
        let bytes = rig
            .store
            .read_segment_range(&rig.cam.id, g.seq, g.offset as u64, g.len as u64)
            .unwrap();
        let moof = Moof::decode(&mut &bytes[..]).unwrap();
        let traf = &moof.traf[0];
        let TrunSamples::Explicit(entries) = &traf.trun[0].samples else {
            panic!("samples without per-sample fields")
        };
        // Decode times are the sorted presentation times; each sample's composition offset
        // says how far its presentation lies from its decode time, negative for B-frames.
        let base = traf.tfdt.as_ref().unwrap().base_media_decode_time as i64;
        let mut pts: Vec<i64> = frames.iter().map(|f| f.timestamp).collect();
        let first = pts[0];
        pts.iter_mut().for_each(|p| *p -= first);
        let mut dts = pts.clone();
        dts.sort_unstable();
        let offsets: Vec<i64> = entries.iter().map(|e| e.cts.unwrap()).collect();
        let expected: Vec<i64> = pts.iter().zip(&dts).map(|(p, d)| p - d).collect();
        assert_eq!(offsets, expected);
        assert!(offsets.iter().any(|&o| o < 0) && offsets.iter().any(|&o| o > 0));
        assert!(
            entries
                .iter()
                .all(|e| e.duration == Some(FRAME_TICKS as u32))
        );
        assert_eq!(
            rig.cam.time_origin_us + vigil_media::store::ticks_to_us(base as u64),
            g.start_us
        );
        // The samples are the frames as received, in decode order.
        let payload: Vec<u8> = frames.iter().flat_map(|f| f.data.clone()).collect();
        assert!(bytes.ends_with(&payload));
        let sizes: Vec<u32> = entries.iter().map(|e| e.size.unwrap()).collect();
        let sent_sizes: Vec<u32> = frames.iter().map(|f| f.data.len() as u32).collect();
        assert_eq!(sizes, sent_sizes);
    }
    assert!(rig.gaps().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_codec_parameter_change_starts_a_new_segment_with_its_own_init() {
    let rig = Rig::new();
    let (a, b) = (h264_params(1), h264_params(2));
    let steps = vec![
        Step::Frames(gop(0, 1, false)),
        Step::Frames(gop(GOP_TICKS, 2, false)),
        Step::Params(b.clone()),
        Step::Frames(gop(2 * GOP_TICKS, 3, false)),
        Step::Frames(gop(3 * GOP_TICKS, 4, false)),
        // The same parameters announced again are no change.
        Step::Params(b.clone()),
        Step::Frames(gop(4 * GOP_TICKS, 5, false)),
        Step::Hold,
    ];
    rig.record(vec![Attempt::Play(a.clone(), steps)]).await;

    let gops = assert_consistent(&rig.store, &rig.cam);
    let segs = rig.segments();
    assert_eq!(segs.len(), 2, "{segs:?}");
    let seg_of: Vec<i64> = gops.iter().map(|g| g.seq).collect();
    assert_eq!(
        seg_of,
        [
            segs[0].seq,
            segs[0].seq,
            segs[1].seq,
            segs[1].seq,
            segs[1].seq
        ]
    );
    for (seg, params) in segs.iter().zip([&a, &b]) {
        let init = rig
            .store
            .read_segment_range(&rig.cam.id, seg.seq, 0, seg.init_len as u64)
            .unwrap();
        assert_eq!(init, vigil_media::fmp4::init_segment(params).unwrap());
        assert!(!seg.open);
    }
    // No frame lost and no time lost at the change.
    assert_eq!(segs[0].frames + segs[1].frames, 5 * GOP_FRAMES as i64);
    assert_eq!(segs[0].end_us, segs[1].start_us);
    assert_eq!(rig.gop_starts(), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    assert!(rig.gaps().is_empty());
    let status = rig.store.status(&rig.cam.id).unwrap().unwrap();
    assert_eq!(status.resolution.as_deref(), Some("672x480"));
}

#[tokio::test(start_paused = true)]
async fn reconnect_back_off_doubles_to_the_cap_and_resets_after_a_good_session() {
    let rig = Rig::new();
    let camera = ScriptedCamera::new(vec![
        refuse(),
        refuse(),
        refuse(),
        refuse(),
        refuse(),
        play(vec![Step::Frames(gop(0, 1, false)), Step::End]),
        refuse(),
        refuse(),
    ]);
    let handle = rig.start(&camera);
    camera.played_out().await;
    let status = rig.store.status(&rig.cam.id).unwrap().unwrap();
    assert_eq!(status.state, "reconnecting");
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("connection refused"),
        "{status:?}"
    );
    // Offline after the script: the delay keeps doubling up to the cap.
    tokio::time::sleep(Duration::from_secs(21)).await;
    handle.stop().await;

    let opens = camera.opens();
    let delays: Vec<f64> = opens
        .windows(2)
        .map(|w| ((w[1] - w[0]).as_secs_f64() * 1000.0).round() / 1000.0)
        .collect();
    assert_eq!(
        delays[..10],
        [1.0, 2.0, 4.0, 8.0, 8.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    );
    assert_eq!(
        rig.store.status(&rig.cam.id).unwrap().unwrap().state,
        "stopped"
    );
    // The one good session started when it opened, 23 s in.
    assert_eq!(rig.gop_starts(), vec![23.0]);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_ends_the_session_and_leaves_a_stalled_gap() {
    let rig = Rig::new();
    let camera = ScriptedCamera::new(vec![
        play([gops(3, 1, false), vec![Step::Hold]].concat()),
        play([gops(2, 10, false), vec![Step::Hold]].concat()),
    ]);
    let handle = rig.start(&camera);
    // Before the inactivity timeout the session is still the first one.
    tokio::time::sleep(Duration::from_millis(4900)).await;
    assert_eq!(camera.opens().len(), 1);
    camera.played_out().await;
    handle.stop().await;

    // Three GOPs delivered at once, then silence: the stall is noticed after 5 s, the
    // reconnect follows 1 s later and continues at the wall clock.
    assert_eq!(camera.opens(), [Duration::ZERO, Duration::from_secs(6)]);
    assert_consistent(&rig.store, &rig.cam);
    assert_eq!(rig.gop_starts(), vec![0.0, 1.0, 2.0, 6.0, 7.0]);
    assert_eq!(rig.gaps(), vec![rig.gap(3.0, 6.0, STALLED)]);
    assert_eq!(
        rig.seen_gaps(),
        rig.gaps(),
        "the ledger hears of the same gaps"
    );
    let status = rig.store.status(&rig.cam.id).unwrap().unwrap();
    assert!(
        status.last_error.is_none(),
        "a good session clears the error: {status:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn gaps_across_reconnects_and_restarts_keep_their_first_reason() {
    let rig = Rig::new();
    // Run 1: closed by the camera at 2 s (reconnects at 1 s and 3 s fail), stalled from 9 s.
    let first = rig
        .record(vec![
            play([gops(2, 1, false), vec![Step::End]].concat()),
            refuse(),
            refuse(),
            play([gops(2, 10, false), vec![Step::Hold]].concat()),
            play([gops(1, 20, false), vec![Step::Hold]].concat()),
        ])
        .await;
    let secs: Vec<u64> = first.opens().iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, [0, 1, 3, 7, 13]);
    assert_eq!(rig.gop_starts(), vec![0.0, 1.0, 7.0, 8.0, 13.0]);
    assert_eq!(
        rig.gaps(),
        vec![rig.gap(2.0, 7.0, DISCONNECTED), rig.gap(9.0, 13.0, STALLED)]
    );

    // Run 2 starts at 20 s, reaches the camera at 21 s: the stop is the reason.
    tokio::time::sleep_until(rig.when(20.0)).await;
    rig.record(vec![
        refuse(),
        play(vec![Step::Frames(gop(0, 30, false)), Step::Hold]),
    ])
    .await;
    // Run 3 never reaches the camera: the gap open at its stop is stored up to the stop.
    tokio::time::sleep_until(rig.when(25.0)).await;
    let offline = ScriptedCamera::new(vec![]);
    let handle = rig.start(&offline);
    tokio::time::sleep_until(rig.when(30.0)).await;
    handle.stop().await;

    assert_eq!(
        rig.gaps(),
        vec![
            rig.gap(2.0, 7.0, DISCONNECTED),
            rig.gap(9.0, 13.0, STALLED),
            rig.gap(14.0, 21.0, GAP_RECORDING_STOPPED),
            rig.gap(22.0, 30.0, GAP_RECORDING_STOPPED),
        ]
    );
    assert_eq!(rig.seen_gaps(), rig.gaps());
    assert_consistent(&rig.store, &rig.cam);
}

#[tokio::test(start_paused = true)]
async fn retention_by_age_deletes_only_segments_older_than_the_limit() {
    let mut rig = Rig::new();
    rig.settings.segment_duration = Duration::ZERO; // one segment per GOP
    rig.record(vec![play([gops(6, 1, false), vec![Step::Hold]].concat())])
        .await;
    assert_eq!(rig.segments().len(), 6);
    let pruned = Mutex::new(Vec::new());
    let policy = RetentionPolicy {
        max_age_secs: Some(4),
        ..Default::default()
    };
    // At 9 s, video that ended before 5 s is older than 4 s: the first four GOPs.
    let r = enforce_at(
        &rig.store,
        &policy,
        rig.at(9.0),
        &|_, seq| {
            pruned.lock().unwrap().push(seq);
            Ok(())
        },
        None,
    )
    .unwrap();
    assert_eq!(r.segments_deleted, 4);
    assert_eq!(rig.gop_starts(), vec![4.0, 5.0]);
    assert_eq!(pruned.into_inner().unwrap().len(), 4);
    assert_consistent(&rig.store, &rig.cam);
}

#[tokio::test(start_paused = true)]
async fn retention_by_bytes_never_deletes_the_segment_being_written() {
    let mut rig = Rig::new();
    rig.settings.segment_duration = Duration::ZERO;
    let camera = ScriptedCamera::new(vec![play([gops(6, 1, false), vec![Step::Hold]].concat())]);
    let handle = rig.start(&camera);
    camera.played_out().await;
    // Five GOPs are written; the sixth waits for the next keyframe (or the stop).
    rig.wait_for_gops(5).await;
    let segs = rig.segments();
    assert!(segs.last().unwrap().open);
    let one = segs[0].bytes;
    // The camera's own budget (one segment) wins over the default (unlimited).
    rig.store
        .set_camera_retention(&rig.cam.name, None, Some(one))
        .unwrap();
    let r = enforce_at(
        &rig.store,
        &RetentionPolicy::default(),
        rig.at(0.0),
        &|_, _| Ok(()),
        None,
    )
    .unwrap();
    assert_eq!(
        r.segments_deleted, 4,
        "every closed segment, not the open one"
    );
    assert_eq!(rig.gop_starts(), vec![4.0]);
    handle.stop().await;
    assert_eq!(rig.gop_starts(), vec![4.0, 5.0]);
    // Over budget again once the open segment closed: the oldest goes first.
    enforce_at(
        &rig.store,
        &RetentionPolicy::default(),
        rig.at(0.0),
        &|_, _| Ok(()),
        None,
    )
    .unwrap();
    assert_eq!(rig.gop_starts(), vec![5.0]);
    assert_consistent(&rig.store, &rig.cam);
}

/// Counts GOP writes and fails those for which `full` says the volume is full (it is told the
/// number of the write, from 1).
fn gop_writes_fail_when(
    store: &Store,
    calls: &Arc<AtomicUsize>,
    full: impl Fn(usize) -> bool + Send + Sync + 'static,
) {
    let calls = calls.clone();
    store.set_write_hook(Some(Arc::new(move |step, _| {
        if step == WriteStep::GopWrite && full(calls.fetch_add(1, Ordering::SeqCst) + 1) {
            return Err(enospc());
        }
        Ok(())
    })));
}

#[tokio::test(start_paused = true)]
async fn a_full_disk_frees_the_oldest_segment_and_keeps_recording() {
    let mut rig = Rig::new();
    rig.settings.segment_duration = Duration::ZERO; // one segment per GOP
    // The volume fills up at the fourth GOP and stays full until something is deleted.
    let (full, calls) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let fills = full.clone();
    gop_writes_fail_when(&rig.store, &calls, move |n| {
        if n == 4 {
            fills.store(true, Ordering::SeqCst);
        }
        fills.load(Ordering::SeqCst)
    });
    let frees = full.clone();
    rig.space = Arc::new(move |store: &Store, _needed: u64| {
        // The oldest closed segment only.
        let r = free_space(store, 1, &|_, _| Ok(()), None, Urgency::Emergency).unwrap();
        if r.bytes_freed > 0 {
            frees.store(false, Ordering::SeqCst);
        }
        r.bytes_freed
    }) as FreeSpace;
    rig.record(vec![play([gops(6, 1, false), vec![Step::Hold]].concat())])
        .await;

    assert!(!full.load(Ordering::SeqCst), "space was freed");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        7,
        "the fourth GOP was written twice"
    );
    assert_eq!(rig.gop_starts(), vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    assert!(rig.gaps().is_empty(), "nothing new was lost");
    assert_consistent(&rig.store, &rig.cam);
    let status = rig.store.status(&rig.cam.id).unwrap().unwrap();
    let err = status.last_error.unwrap();
    assert!(err.starts_with("disk full: freed "), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_disk_that_stays_full_loses_the_gop_and_stores_a_write_failed_gap() {
    let mut rig = Rig::new();
    rig.settings.segment_duration = Duration::ZERO;
    // Both attempts at the third GOP meet a full volume, and nothing can be freed.
    let calls = Arc::new(AtomicUsize::new(0));
    gop_writes_fail_when(&rig.store, &calls, |n| n == 3 || n == 4);
    rig.space = Arc::new(|_: &Store, _: u64| 0u64) as FreeSpace;
    rig.record(vec![play([gops(5, 1, false), vec![Step::Hold]].concat())])
        .await;

    assert_eq!(calls.load(Ordering::SeqCst), 6);
    assert_eq!(rig.gop_starts(), vec![0.0, 1.0, 3.0, 4.0]);
    let gaps = rig.gaps();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(
        (gaps[0].start_us, gaps[0].end_us),
        (rig.at(2.0), rig.at(3.0))
    );
    assert!(
        gaps[0]
            .reason
            .starts_with("write failed: the recording volume is full"),
        "{gaps:?}"
    );
    assert_eq!(rig.seen_gaps(), gaps);
    assert_consistent(&rig.store, &rig.cam);
    let status = rig.store.status(&rig.cam.id).unwrap().unwrap();
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("GOP lost: "),
        "{status:?}"
    );
}
