//! Live viewers fed by the real recorder from scripted cameras (tests/common): one ingest per
//! camera however many viewers watch, the states a session goes through, and the camera's
//! presentation times carried to the viewers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use vigil_media::fmp4;
use vigil_media::live::{FeedKey, LiveHub, LiveLimits, ViewerEvent};
use vigil_media::recorder::{self, RecorderEnv, RecorderHandle};

fn start(rig: &Rig, camera: &Arc<ScriptedCamera>, hub: &Arc<LiveHub>) -> RecorderHandle {
    recorder::start_with(
        rig.store.clone(),
        rig.cam.clone(),
        rig.settings.clone(),
        None,
        rig.space.clone(),
        RecorderEnv {
            opener: camera.clone(),
            clock: rig.clock.clone(),
            tick_interval: Duration::from_secs(3600),
            live: Some(hub.clone()),
        },
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn two_viewers_share_one_ingest_and_get_every_frame_in_decode_order() {
    let rig = Rig::new();
    let hub = hub();
    let mut a = hub.subscribe(&FeedKey::main(&rig.cam.id));
    let mut b = hub.subscribe(&FeedKey::main(&rig.cam.id));
    let camera = ScriptedCamera::new(vec![play([gops(3, 1, true), vec![Step::Hold]].concat())]);
    let handle = start(&rig, &camera, &hub);
    let ea = until_frames(&mut a, 3 * GOP_FRAMES).await;
    let eb = until_frames(&mut b, 3 * GOP_FRAMES).await;
    assert_eq!(states(&ea), ["offline:", "connecting:", "live:", "init1"]);
    let (fa, fb) = (fragments(&ea), fragments(&eb));
    assert_eq!(fa.len(), 3 * GOP_FRAMES);
    assert_eq!(fb.len(), fa.len());
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(
            x.data.as_ptr(),
            y.data.as_ptr(),
            "one buffer for both viewers"
        );
    }
    assert_eq!(
        camera.opens().len(),
        1,
        "one camera connection for all viewers"
    );

    // Decode order as sent, decode times increasing, presentation times the camera's: the
    // session starts at the wall clock (10 s after the camera's time origin), one frame every
    // FRAME_TICKS.
    let start_ticks = 10 * 90_000;
    let sent: Vec<i64> = (0..3)
        .flat_map(|k| {
            decode_order(GOP_FRAMES, true)
                .into_iter()
                .map(move |i| start_ticks + k * GOP_TICKS + i as i64 * FRAME_TICKS)
        })
        .collect();
    let got: Vec<i64> = fa.iter().map(|f| f.presentation_time()).collect();
    assert_eq!(got, sent);
    assert!(fa.windows(2).all(|w| w[0].decode_time < w[1].decode_time));
    assert!(fa[0].is_key && fa[GOP_FRAMES].is_key);
    for f in &fa {
        let info = fmp4::parse_fragment(&f.data).unwrap();
        assert_eq!((info.samples, info.base_decode_time), (1, f.decode_time));
    }
    let ViewerEvent::Init(init) = &ea[3] else {
        panic!("{:?}", ea[3])
    };
    assert_eq!(
        init.data[..],
        fmp4::init_segment(&h264_params(1)).unwrap()[..]
    );

    // A viewer arriving now starts at the last GOP's keyframe.
    let mut late = hub.subscribe(&FeedKey::main(&rig.cam.id));
    let el = received(&mut late);
    assert_eq!(states(&el), ["live:", "init1"]);
    assert_eq!(fragments(&el).len(), GOP_FRAMES);
    assert!(fragments(&el)[0].is_key);

    handle.stop().await;
    assert_eq!(states(&received(&mut a)), ["stopped:"]);
    assert_eq!(
        states(&received(&mut hub.subscribe(&FeedKey::main(&rig.cam.id)))),
        ["offline:"]
    );
    // Recording went on as always.
    assert_eq!(assert_consistent(&rig.store, &rig.cam).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn viewers_see_a_reconnect_and_get_a_new_init_after_it() {
    let rig = Rig::new();
    let hub = hub();
    let mut v = hub.subscribe(&FeedKey::main(&rig.cam.id));
    let camera = ScriptedCamera::new(vec![
        play([gops(1, 1, false), vec![Step::End]].concat()),
        refuse(),
        play([gops(1, 2, false), vec![Step::Hold]].concat()),
    ]);
    let handle = start(&rig, &camera, &hub);
    camera.played_out().await;
    handle.stop().await;
    let evs = received(&mut v);
    assert_eq!(
        states(&evs),
        [
            "offline:",
            "connecting:",
            "live:",
            "init1",
            "reconnecting:the camera closed the stream",
            "reconnecting:cannot connect: connection refused",
            "live:",
            "init2",
            "stopped:",
        ]
    );
    let frags = fragments(&evs);
    assert_eq!(frags.len(), 2 * GOP_FRAMES);
    assert!(
        frags
            .windows(2)
            .all(|w| w[0].decode_time < w[1].decode_time)
    );
    // The second session starts where the wall clock is, after the back-off.
    assert!(frags[GOP_FRAMES].is_key);
    assert!(
        frags[GOP_FRAMES].presentation_time() > frags[GOP_FRAMES - 1].presentation_time() + 90_000
    );
}

#[tokio::test(start_paused = true)]
async fn a_lagging_viewer_never_holds_up_recording_or_other_viewers() {
    let rig = Rig::new();
    // A queue of one second of frames; the slow viewer reads nothing while 4 s are recorded.
    let hub = Arc::new(LiveHub::with_limits(LiveLimits {
        queue: GOP_FRAMES,
        ..LiveLimits::default()
    }));
    let mut slow = hub.subscribe(&FeedKey::main(&rig.cam.id));
    let mut fast = hub.subscribe(&FeedKey::main(&rig.cam.id));
    let mut steps = Vec::new();
    for k in 0..4 {
        steps.push(Step::Frames(gop(k * GOP_TICKS, k as u32 + 1, false)));
        steps.push(Step::Sleep(Duration::from_millis(500)));
    }
    steps.push(Step::Hold);
    let camera = ScriptedCamera::new(vec![play(steps)]);
    let handle = start(&rig, &camera, &hub);
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some(ev) = fast.next().await {
            if matches!(ev, ViewerEvent::Fragment(_)) {
                n += 1;
                if n == 4 * GOP_FRAMES {
                    break;
                }
            }
        }
        n
    });
    assert_eq!(reader.await.unwrap(), 4 * GOP_FRAMES);
    camera.played_out().await;
    rig.wait_for_gops(3).await;
    let evs = received(&mut slow);
    let skipped: Vec<u64> = evs
        .iter()
        .filter_map(|e| match e {
            ViewerEvent::Skipped(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert!(!skipped.is_empty(), "{:?}", states(&evs));
    // After the skip, the slow viewer resumes at a keyframe of the last GOP.
    let after: Vec<_> = evs
        .iter()
        .skip_while(|e| !matches!(e, ViewerEvent::Skipped(_)))
        .collect();
    let first = after
        .iter()
        .find_map(|e| match e {
            ViewerEvent::Fragment(f) => Some(f),
            _ => None,
        })
        .unwrap();
    assert!(first.is_key);
    handle.stop().await;
    assert_eq!(
        assert_consistent(&rig.store, &rig.cam).len(),
        4,
        "nothing lost on disk"
    );
}
