//! Recording core end to end: the real `vigil` binary records real GStreamer RTSP servers,
//! and ffprobe checks what it stored and exported.

mod common;

use std::time::Duration;

use common::Vigil;
use vigil_testkit::{Auth, Clip, RtspPeer, Tmpfs, ffprobe_count, require_tool};

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
    assert!(
        v.segment_files().len() >= (secs / 6.0) as usize,
        "{:?}",
        v.segment_files()
    );
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
        |s| {
            s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("credentials"))
        },
        Duration::from_secs(30),
    );
    assert_eq!(s["state"], "reconnecting", "{s}");
    let out = server.output();
    assert!(
        !out.contains("wrong-password-2"),
        "password leaked into logs: {out}"
    );
    server.stop();
    assert!(
        !v.ok(&["camera", "list", "--json"])
            .contains("wrong-password-2")
    );

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
    v.wait_status(
        "cam1",
        |s| s["state"] == "reconnecting",
        Duration::from_secs(30),
    );
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
    let gap_secs =
        (gap["end_us"].as_i64().unwrap() - gap["start_us"].as_i64().unwrap()) as f64 / 1e6;
    assert!(
        gap_secs >= 2.5,
        "gap of {gap_secs}s is shorter than the outage: {rec}"
    );
    // The gap lies exactly between the two recorded ranges.
    assert_eq!(gap["start_us"], ranges[0]["end_us"], "{rec}");
    assert_eq!(gap["end_us"], ranges[1]["start_us"], "{rec}");
    let out = v.dir.path().join("across.mp4");
    let said = v.export_all("cam1", &out);
    assert!(
        said.contains("gap"),
        "export must say it spans a gap: {said}"
    );
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
        |s| {
            s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("stalled"))
        },
        Duration::from_secs(30),
    );
    assert_ne!(s["state"], "recording");
    peer.resume();
    let before = v.recorded_secs("cam1");
    v.wait_recorded("cam1", before + 3.0, Duration::from_secs(60));
    server.stop();
    // The gap says what happened: the session stayed open but nothing came (the test
    // configuration's inactivity timeout is 3 s).
    let rec = v.recordings("cam1");
    let gaps = rec["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{rec}");
    assert_eq!(gaps[0]["reason"], "stalled: no data for 3s", "{rec}");
}

/// The time between the last GOP before a `kill -9` and the first after the restart is a
/// gap ("unclean shutdown"), and so is a clean stop and start ("recording stopped"); both are
/// signed facts in the ledger, so the recording still verifies.
#[test]
fn kill_9_and_restarts_are_stored_as_gaps() {
    let clip = clip_h264();
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(4);
    v.add_camera("cam1", &peer.url("cam"));
    let server = v.serve();
    v.wait_recorded("cam1", 4.0, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    server.kill9();
    let server = v.serve();
    let recorded = v.recorded_secs("cam1");
    v.wait_recorded("cam1", recorded + 3.0, Duration::from_secs(60));
    assert!(server.stop().contains("Stopped cleanly"));
    // A restart can be quick enough for the index to merge both runs into one range; wait so
    // each run's video is a range of its own.
    std::thread::sleep(Duration::from_millis(1500));
    let server = v.serve();
    let recorded = v.recorded_secs("cam1");
    v.wait_recorded("cam1", recorded + 3.0, Duration::from_secs(60));
    assert!(server.stop().contains("Stopped cleanly"));

    let rec = v.recordings("cam1");
    let ranges = rec["ranges"].as_array().unwrap();
    let gaps = rec["gaps"].as_array().unwrap();
    assert_eq!(ranges.len(), 3, "{rec}");
    assert_eq!(gaps.len(), 2, "{rec}");
    let us = |v: &serde_json::Value| v.as_i64().unwrap();
    assert_eq!(gaps[0]["reason"], "unclean shutdown", "{rec}");
    // The crash gap spans exactly the missing time between the two runs' video.
    assert_eq!(gaps[0]["start_us"], ranges[0]["end_us"], "{rec}");
    assert_eq!(gaps[0]["end_us"], ranges[1]["start_us"], "{rec}");
    assert!(
        us(&gaps[0]["end_us"]) - us(&gaps[0]["start_us"]) >= 500_000,
        "{rec}"
    );
    assert_eq!(gaps[1]["reason"], "recording stopped", "{rec}");
    // A clean stop's gap starts when the stop finished, right after the last GOP.
    let stop_lag = us(&gaps[1]["start_us"]) - us(&ranges[1]["end_us"]);
    assert!((0..2_000_000).contains(&stop_lag), "{rec}");
    assert_eq!(gaps[1]["end_us"], ranges[2]["start_us"], "{rec}");
    assert!(
        us(&gaps[1]["end_us"]) - us(&gaps[1]["start_us"]) >= 1_500_000,
        "{rec}"
    );

    let out = v.cmd(&["verify", "cam1", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let signed: Vec<&str> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "gap")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        signed,
        ["unclean shutdown", "recording stopped"],
        "{report:#}"
    );
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
    assert!(
        after >= recorded_before - 0.01,
        "lost indexed video: {recorded_before} -> {after}"
    );

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
    assert!(
        p.frames as f64 >= recorded_before * 30.0 - 1.0,
        "{p:?} vs {recorded_before}s"
    );
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
    v.add_camera(
        "wrongpath",
        &peer.url("cam").replace("/cam", "/no-such-mount"),
    );
    let server = v.serve();
    v.wait_recorded("good", 6.0, Duration::from_secs(60));
    let b = v.wait_status(
        "broken",
        |s| s["last_error"].is_string(),
        Duration::from_secs(20),
    );
    assert_eq!(b["state"], "reconnecting", "{b}");
    assert!(
        b["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("connect"),
        "{b}"
    );
    let w = v.wait_status(
        "wrongpath",
        |s| s["last_error"].is_string(),
        Duration::from_secs(20),
    );
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
    v.ok(&[
        "camera",
        "add",
        "aged",
        "--url",
        &peer.url("cam"),
        "--max-age",
        "6s",
    ]);
    let cap: u64 = 400_000;
    v.ok(&[
        "camera",
        "add",
        "capped",
        "--url",
        &peer.url("cam"),
        "--max-bytes",
        &cap.to_string(),
    ]);
    let server = v.serve();
    v.wait_recorded("small", 30.0, Duration::from_secs(90));
    server.stop();
    let dir_bytes = |name: &str| -> (u64, usize) {
        let id = serde_json::from_str::<serde_json::Value>(&v.ok(&["camera", "list", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
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
    assert!(
        capped_bytes < cap + small_bytes / 3,
        "capped camera holds {capped_bytes} bytes (cap {cap}, uncapped {small_bytes})"
    );
    assert!(capped_bytes < small_bytes / 2);
    let aged = v.recorded_secs("aged");
    assert!(aged < 20.0, "camera with max-age 6s still holds {aged}s");
    // The newest video is what remains.
    let rec = v.recordings("aged");
    let last_end = rec["ranges"].as_array().unwrap().last().unwrap()["end_us"]
        .as_i64()
        .unwrap();
    let small_end = v.recordings("small")["ranges"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["end_us"]
        .as_i64()
        .unwrap();
    assert!((small_end - last_end).abs() < 3_000_000);
}

#[test]
fn full_disk_keeps_the_newest_video_recording() {
    let base = tempfile::tempdir().unwrap();
    let vol = Tmpfs::mount("5m");
    let mnt = vol.path().to_path_buf();

    let clip = Clip::h264(10, 30, 30, 1280, 720, false);
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let dir = tempfile::Builder::new().tempdir_in(&mnt).unwrap();
    let v = Vigil::init_in(dir, 2);
    // No free-space floor: the recorder meets ENOSPC itself and must recover from it.
    v.set_config("min_free_bytes = 268435456", "min_free_bytes = 0");
    v.add_camera("cam1", &peer.url("cam"));
    let server = v.serve();
    // Write several times the volume's size.
    let start = std::time::Instant::now();
    let mut saw_full = false;
    while start.elapsed() < Duration::from_secs(40) {
        let s = v.status("cam1");
        if s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("disk full"))
        {
            saw_full = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let s = v.status("cam1");
    assert_eq!(
        s["state"],
        "recording",
        "{s}\n{}",
        server
            .output()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let rec = v.recordings("cam1");
    let last_end = rec["ranges"].as_array().unwrap().last().unwrap()["end_us"]
        .as_i64()
        .unwrap();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    assert!(
        now_us - last_end < 5_000_000,
        "newest video is {}s old: {rec}",
        (now_us - last_end) / 1_000_000
    );
    let first_start = rec["ranges"].as_array().unwrap()[0]["start_us"]
        .as_i64()
        .unwrap();
    assert!(
        now_us - first_start < 30_000_000,
        "oldest video was not deleted: {rec}"
    );
    server.stop();
    assert!(saw_full, "the status never reported the full disk");
    // What is left is playable.
    let out = base.path().join("after-full.mp4");
    v.export_all("cam1", &out);
    assert!(ffprobe_count(&out).unwrap().frames > 30);
}

#[test]
fn codec_parameter_change_starts_a_new_init_without_losing_frames() {
    require_tool("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("switch.h264");
    let mut all = Vec::new();
    for (i, size) in ["640x360", "320x240"].iter().enumerate() {
        let part = dir.path().join(format!("p{i}.h264"));
        let st = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate=25"))
            .args([
                "-t", "4", "-c:v", "libx264", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p", "-f",
                "h264",
            ])
            .arg(&part)
            .status()
            .unwrap();
        assert!(st.success());
        all.extend(std::fs::read(&part).unwrap());
    }
    std::fs::write(&raw, all).unwrap();
    let peer = RtspPeer::start(&[("cam", &raw)], Auth::None);
    let v = Vigil::init(60);
    v.add_camera("cam1", &peer.url("cam"));
    let server = v.serve();
    v.wait_recorded("cam1", 17.0, Duration::from_secs(60));
    server.stop();
    // Each parameter change opened a new segment with its own init.
    assert!(v.segment_files().len() >= 3, "{:?}", v.segment_files());
    let out = v.dir.path().join("switch.mp4");
    let said = v.export_all("cam1", &out);
    assert!(said.contains("split into"), "{said}");
    let mut frames = 0;
    let mut sizes = std::collections::BTreeSet::new();
    for line in said.lines().filter(|l| l.starts_with("wrote ")) {
        let path = line.trim_start_matches("wrote ").split(':').next().unwrap();
        let p = ffprobe_count(path).unwrap();
        frames += p.frames;
        sizes.insert((p.width, p.height));
    }
    assert_eq!(sizes.len(), 2, "{said}");
    let index_frames = (v.recorded_secs("cam1") * 25.0).round() as u64;
    assert!(
        frames.abs_diff(index_frames) <= 2,
        "parts hold {frames} frames, index {index_frames}"
    );
}

#[test]
fn demo_records_the_built_in_camera() {
    let out = std::process::Command::new(common::bin())
        .args(["demo", "--duration", "12s"])
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sample camera:  rtsp://127.0.0.1:"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Demo recorded"))
        .expect(&stdout);
    let secs: f64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(secs >= 9.0, "{line}");
    let frames: u64 = line
        .split('(')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((frames as f64 - secs * 15.0).abs() <= 15.0, "{line}");
}
