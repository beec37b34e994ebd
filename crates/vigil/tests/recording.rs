//! Recording core end to end: the real `vigil` binary records real GStreamer RTSP servers,
//! and ffprobe checks what it stored and exported.

mod common;

use std::time::Duration;

use common::Vigil;
use vigil_testkit::{Auth, Clip, RtspPeer, ffprobe_count, require_tool};

fn clip_h264() -> Clip {
    Clip::h264(10, 30, 30, 640, 360, false)
}

/// Records `secs` from a peer, stops cleanly, exports everything and checks the export
/// against what the server sent.
fn record_and_check(clip: &Clip, secs: f64, codec: &str) {
    require_tool("ffprobe");
    let peer = RtspPeer::start(&[("cam", clip)], Auth::None);
    let v = Vigil::init(6);
    v.add_camera("cam1", &peer.url("cam"));
    let server = v.serve();
    v.wait_recorded("cam1", secs, Duration::from_secs(90));
    let sent = peer.frames_sent("cam");
    let out = server.stop();
    assert!(out.contains("Stopped cleanly"), "{out}");
    // The peer's counter is refreshed every 250 ms; let it catch up with the last frame sent.
    std::thread::sleep(Duration::from_millis(600));
    let sent_after = peer.frames_sent("cam");

    let export = v.dir.path().join("all.mp4");
    let said = v.export_all("cam1", &export);
    let probe = ffprobe_count(&export).unwrap();
    assert_eq!(probe.codec, codec);
    assert_eq!((probe.width, probe.height), (clip.width(), clip.height()));
    // Everything sent is recorded, except the frames before the first keyframe and those in
    // flight at shutdown: at most one GOP.
    let gop = u64::from(clip.gop());
    assert!(
        probe.frames + gop >= sent && probe.frames <= sent_after,
        "exported {} frames, server sent {sent}..{sent_after} (GOP {gop}); {said}",
        probe.frames
    );
    let index_secs = v.recorded_secs("cam1");
    let gop_secs = gop as f64 / f64::from(clip.fps());
    assert!(
        (probe.duration_secs - index_secs).abs() <= gop_secs,
        "ffprobe duration {} vs index {index_secs}",
        probe.duration_secs
    );
    assert!((probe.frames as f64 / f64::from(clip.fps()) - index_secs).abs() <= gop_secs);
    // Several segment files were written (rotation at keyframes every ~6 s).
    assert!(v.segment_files().len() >= (secs / 6.0) as usize, "{:?}", v.segment_files());
}

#[test]
fn records_20s_h264_and_exports_a_playable_mp4() {
    record_and_check(&clip_h264(), 20.0, "h264");
}

#[test]
fn records_h264_with_b_frames() {
    record_and_check(&Clip::h264(10, 30, 30, 640, 360, true), 12.0, "h264");
}

#[test]
fn records_h265() {
    record_and_check(&Clip::h265(10, 30, 30, 640, 360, false), 12.0, "hevc");
}

#[test]
fn wrong_password_is_a_clear_status_not_a_crash() {
    let clip = clip_h264();
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::digest("admin", "right-password-1"));
    let v = Vigil::init(6);
    v.add_camera_with_password("cam1", &peer.url("cam"), "admin", "wrong-password-2");
    let server = v.serve();
    let s = v.wait_status(
        "cam1",
        |s| s["last_error"].as_str().is_some_and(|e| e.contains("credentials")),
        Duration::from_secs(30),
    );
    assert_eq!(s["state"], "reconnecting", "{s}");
    let out = server.output();
    assert!(!out.contains("wrong-password-2"), "password leaked into logs: {out}");
    server.stop();
    assert!(!v.ok(&["camera", "list", "--json"]).contains("wrong-password-2"));

    // The right password (Digest) records.
    let v2 = Vigil::init(6);
    v2.add_camera_with_password("cam1", &peer.url("cam"), "admin", "right-password-1");
    let server = v2.serve();
    v2.wait_recorded("cam1", 3.0, Duration::from_secs(60));
    server.stop();
}

#[test]
fn reconnects_after_server_restart_and_stores_the_gap() {
    let clip = clip_h264();
    let mut peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(6);
    v.add_camera("cam1", &peer.url("cam"));
    let server = v.serve();
    v.wait_recorded("cam1", 4.0, Duration::from_secs(60));
    peer.stop();
    v.wait_status("cam1", |s| s["state"] == "reconnecting", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    peer.restart();
    let before = v.recorded_secs("cam1");
    v.wait_recorded("cam1", before + 4.0, Duration::from_secs(60));
    server.stop();
    let rec = v.recordings("cam1");
    let ranges = rec["ranges"].as_array().unwrap();
    let gaps = rec["gaps"].as_array().unwrap();
    assert!(ranges.len() >= 2, "{rec}");
    assert_eq!(gaps.len(), 1, "{rec}");
    let gap = &gaps[0];
    let gap_secs = (gap["end_us"].as_i64().unwrap() - gap["start_us"].as_i64().unwrap()) as f64 / 1e6;
    assert!(gap_secs >= 2.5, "gap of {gap_secs}s is shorter than the outage: {rec}");
    // The gap lies exactly between the two recorded ranges.
    assert_eq!(gap["start_us"], ranges[0]["end_us"], "{rec}");
    assert_eq!(gap["end_us"], ranges[1]["start_us"], "{rec}");
    let out = v.dir.path().join("across.mp4");
    let said = v.export_all("cam1", &out);
    assert!(said.contains("gap"), "export must say it spans a gap: {said}");
    let p = ffprobe_count(&out).unwrap();
    assert!(p.frames > 200, "{p:?}");
}

#[test]
fn stalled_stream_is_detected_by_inactivity_timeout() {
    let clip = clip_h264();
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(6);
    v.add_camera("cam1", &peer.url("cam"));
    let server = v.serve();
    v.wait_recorded("cam1", 3.0, Duration::from_secs(60));
    peer.stall();
    let s = v.wait_status(
        "cam1",
        |s| s["last_error"].as_str().is_some_and(|e| e.contains("stalled")),
        Duration::from_secs(30),
    );
    assert_ne!(s["state"], "recording");
    peer.resume();
    let before = v.recorded_secs("cam1");
    v.wait_recorded("cam1", before + 3.0, Duration::from_secs(60));
    server.stop();
}

#[test]
fn kill_9_loses_at_most_the_unfinished_gop() {
    let clip = clip_h264();
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(4);
    v.add_camera("cam1", &peer.url("cam"));
    let server = v.serve();
    v.wait_recorded("cam1", 9.0, Duration::from_secs(60));
    // Kill in the middle of a GOP, while a segment is open.
    std::thread::sleep(Duration::from_millis(500));
    let recorded_before = v.recorded_secs("cam1");
    server.kill9();

    // Restart: recovery reconciles files and index.
    let server = v.serve();
    std::thread::sleep(Duration::from_secs(3));
    let out = server.stop();
    assert!(out.contains("Recovery:"), "{out}");
    let after = v.recorded_secs("cam1");
    assert!(after >= recorded_before - 0.01, "lost indexed video: {recorded_before} -> {after}");

    // Every file parses into init + complete fragments, and the index sums to the files.
    for f in v.segment_files() {
        let data = std::fs::read(&f).unwrap();
        let layout = vigil_media::fmp4::scan_segment(&data).unwrap();
        assert_eq!(layout.torn_tail, 0, "{} still has a torn tail", f.display());
        assert!(!layout.fragments.is_empty());
    }
    let out = v.dir.path().join("after-kill.mp4");
    v.export_all("cam1", &out);
    let p = ffprobe_count(&out).unwrap();
    assert!(p.frames as f64 >= recorded_before * 30.0 - 1.0, "{p:?} vs {recorded_before}s");
}

#[test]
fn two_cameras_one_broken() {
    let clip = clip_h264();
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(6);
    v.add_camera("good", &peer.url("cam"));
    // Nothing listens on this port.
    let dead = vigil_testkit::free_port();
    v.add_camera("broken", &format!("rtsp://127.0.0.1:{dead}/nothing"));
    v.add_camera("wrongpath", &peer.url("cam").replace("/cam", "/no-such-mount"));
    let server = v.serve();
    v.wait_recorded("good", 6.0, Duration::from_secs(60));
    let b = v.wait_status("broken", |s| s["last_error"].is_string(), Duration::from_secs(20));
    assert_eq!(b["state"], "reconnecting", "{b}");
    assert!(b["last_error"].as_str().unwrap().to_lowercase().contains("connect"), "{b}");
    let w = v.wait_status("wrongpath", |s| s["last_error"].is_string(), Duration::from_secs(20));
    assert_eq!(w["state"], "reconnecting", "{w}");
    let g = v.status("good");
    assert_eq!(g["state"], "recording", "{g}");
    assert!(g["fps"].as_f64().unwrap() > 20.0, "{g}");
    server.stop();
}

#[test]
fn retention_by_bytes_and_by_age() {
    let clip = clip_h264();
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(2);
    v.add_camera("small", &peer.url("cam"));
    v.ok(&["camera", "add", "aged", "--url", &peer.url("cam"), "--max-age", "6s"]);
    let cap: u64 = 400_000;
    v.ok(&["camera", "add", "capped", "--url", &peer.url("cam"), "--max-bytes", &cap.to_string()]);
    let server = v.serve();
    v.wait_recorded("small", 30.0, Duration::from_secs(90));
    server.stop();
    let dir_bytes = |name: &str| -> (u64, usize) {
        let id = serde_json::from_str::<serde_json::Value>(&v.ok(&["camera", "list", "--json"])).unwrap()
            .as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["id"].as_str().unwrap().to_owned();
        let mut total = 0;
        let mut n = 0;
        for f in std::fs::read_dir(v.data.join("video").join(id)).unwrap() {
            total += f.unwrap().metadata().unwrap().len();
            n += 1;
        }
        (total, n)
    };
    let (small_bytes, _) = dir_bytes("small");
    let (capped_bytes, _) = dir_bytes("capped");
    // Retention runs every 10 s; the budget may be exceeded by what was written since.
    assert!(capped_bytes < cap + small_bytes / 3, "capped camera holds {capped_bytes} bytes (cap {cap}, uncapped {small_bytes})");
    assert!(capped_bytes < small_bytes / 2);
    let aged = v.recorded_secs("aged");
    assert!(aged < 20.0, "camera with max-age 6s still holds {aged}s");
    // The newest video is what remains.
    let rec = v.recordings("aged");
    let last_end = rec["ranges"].as_array().unwrap().last().unwrap()["end_us"].as_i64().unwrap();
    let small_end = v.recordings("small")["ranges"].as_array().unwrap().last().unwrap()["end_us"].as_i64().unwrap();
    assert!((small_end - last_end).abs() < 3_000_000);
}
