//! Exports play in a real browser: the real `vigil` binary records a GStreamer RTSP camera,
//! exports the recording, and Debian's Chromium (driven by `tests/browser/play.mjs` through
//! playwright-core) plays the plain MP4 export and an evidence bundle's `video.mp4` (both
//! progressive) as `<video src>`, and the fragmented form (what playback serves) through Media
//! Source Extensions.
//!
//! ffprobe accepting a file says little about browsers (an earlier muxer wrote files ffprobe
//! read and Chromium refused), so this is the check that exports work where users watch them.
//! H.265 is not tested: Debian's Chromium has no HEVC decoder.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Vigil;
use serde_json::Value;
use vigil_testkit::{Auth, Clip, RtspPeer, repo_root, require_tool};

/// Seconds of video the browser must play; the export holds about 8.
const MIN_PLAY_SECS: f64 = 2.0;

fn player_dir() -> PathBuf {
    repo_root().join("tests").join("browser")
}

/// Fails (never skips) when a piece of the browser setup is missing, with the fix.
fn require_browser() {
    require_tool("chromium");
    require_tool("node");
    let module = player_dir().join("node_modules").join("playwright-core");
    assert!(
        module.is_dir(),
        "{} is missing: run: cd tests/browser && npm ci",
        module.display()
    );
}

/// Runs the player and returns its JSON report; panics with the reason when playback failed.
fn play(file: &Path, mode: &str, screenshot: Option<&Path>) -> Value {
    let mut cmd = Command::new("node");
    cmd.current_dir(player_dir())
        .arg("play.mjs")
        .arg(file)
        .args(["--mode", mode, "--timeout", "30"])
        .args(["--min-play", &MIN_PLAY_SECS.to_string()]);
    if let Some(png) = screenshot {
        cmd.arg("--screenshot").arg(png);
    }
    let out = cmd.output().expect("cannot run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("play.mjs printed no JSON report ({e}); stdout: {stdout}\nstderr: {stderr}")
    });
    assert!(
        out.status.success() && report["ok"] == true,
        "Chromium did not play {} in {mode} mode: {}\nfull report: {report}\nstderr: {stderr}",
        file.display(),
        report["reason"]
    );
    // Shown with --nocapture: the numbers behind a pass (start time, frames, offsets).
    eprintln!("{mode} {}: {report}", file.display());
    report
}

/// What every successful playback must show: real frames of the right size, no errors.
fn check_played(report: &Value, clip: &Clip) {
    let mode = report["mode"].as_str().unwrap();
    let video = &report["video"];
    let played = report["played_secs"].as_f64().unwrap();
    assert!(
        played >= MIN_PLAY_SECS,
        "{mode}: played {played}s: {report}"
    );
    assert_eq!(
        (video["videoWidth"].as_u64(), video["videoHeight"].as_u64()),
        (
            Some(u64::from(clip.width())),
            Some(u64::from(clip.height()))
        ),
        "{mode}: picture size: {report}"
    );
    assert!(video["error"].is_null(), "{mode}: {report}");
    assert!(video["mseError"].is_null(), "{mode}: {report}");
    let quality = &video["quality"];
    let total = quality["total"].as_u64().unwrap();
    // At 30 fps, 2 s of playback is about 60 decoded frames; allow for a slow start.
    assert!(
        total as f64 >= MIN_PLAY_SECS * f64::from(clip.fps()) * 0.5,
        "{mode}: only {total} frames decoded: {report}"
    );
    assert_eq!(
        quality["corrupted"].as_u64(),
        Some(0),
        "{mode}: corrupted frames: {report}"
    );
    assert!(
        video["presentedFrames"].as_u64().unwrap() > 0,
        "{mode}: no frame reached the screen: {report}"
    );
    // testsrc2 is colourful; a black or single-colour picture means nothing was really shown.
    let frame = &report["frame"];
    assert!(
        frame["colours"].as_u64().unwrap() >= 16 && frame["luma_stddev"].as_f64().unwrap() >= 20.0,
        "{mode}: the picture does not look like testsrc2: {report}"
    );
}

/// The evidence bundle of a range, and its fragmented form (what playback serves: the
/// presentation init, then the signed fragments back to back), built from the bundle's
/// recorded init, timeline and fragments.
fn export_bundle(v: &Vigil, from: &str, name: &str) -> (PathBuf, PathBuf) {
    let dir = v.dir.path().join(format!("{name}/"));
    v.ok(&[
        "export",
        "cam1",
        "--from",
        from,
        "--to",
        "+1m",
        "-o",
        dir.to_str().unwrap(),
    ]);
    let manifest =
        vigil_signing::bundle::parse_manifest(&std::fs::read(dir.join("manifest.json")).unwrap())
            .unwrap();
    let recorded = std::fs::read(dir.join("recorded-init.mp4")).unwrap();
    let video = std::fs::read(dir.join("video.mp4")).unwrap();
    let mut fragmented = vigil_signing::bundle::presentation::presentation_init(
        &recorded,
        &manifest.init.timeline.unwrap(),
    )
    .unwrap();
    for f in &manifest.fragments {
        fragmented.extend_from_slice(&video[f.offset as usize..(f.offset + f.length) as usize]);
    }
    let path = v.dir.path().join(format!("{name}-fragmented.mp4"));
    std::fs::write(&path, fragmented).unwrap();
    (dir.join("video.mp4"), path)
}

/// ffprobe's format duration of a file, in seconds.
fn probe_duration(path: &Path) -> f64 {
    vigil_testkit::ffprobe_duration(path).unwrap()
}

/// The plain export lasts exactly the clip in Chromium (as in ffprobe, which decodes the
/// same file): not up to the last fragment's absolute decode time, as a fragmented file would.
fn check_duration(src: &Value, file: &Path) {
    assert_eq!(
        src["mp4"]["fragments"], 0,
        "the plain export is progressive: {src}"
    );
    let duration = src["video"]["duration"].as_f64().unwrap();
    let expected = probe_duration(file);
    assert!(
        (duration - expected).abs() < 0.05,
        "Chromium says the clip lasts {duration} s, ffprobe {expected} s: {src}"
    );
}

/// Records about 8 s of `clip`, exports it and returns the export's path.
fn record_and_export(v: &Vigil, clip: &Clip) -> PathBuf {
    let peer = RtspPeer::start(&[("cam", clip)], Auth::None);
    v.add_camera("cam1", &peer.url("cam"));
    let server = v.serve();
    v.wait_recorded("cam1", 8.0, Duration::from_secs(90));
    let out = server.stop();
    assert!(out.contains("Stopped cleanly"), "{out}");
    let export = v.dir.path().join("export.mp4");
    v.export_all("cam1", &export);
    export
}

fn export_plays_in_both_modes(clip: &Clip) {
    require_browser();
    let v = Vigil::init(6);
    let export = record_and_export(&v, clip);

    let shot = v.dir.path().join("playing.png");
    let src = play(&export, "src", Some(&shot));
    check_played(&src, clip);
    check_duration(&src, &export);
    let png = std::fs::read(&shot).expect("no screenshot written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "screenshot is not a PNG"
    );

    let (bundle_video, fragmented) = export_bundle(&v, "-1h", "all");
    // The bundle's video plays as it is, for exactly as long as the plain export.
    let bundled = play(&bundle_video, "src", None);
    check_played(&bundled, clip);
    check_duration(&bundled, &export);
    let mse = play(&fragmented, "mse", None);
    check_played(&mse, clip);
    // Vigil's fragments carry absolute times; the presentation init's edit list starts the
    // timeline at the first fragment, which the browser applies itself: no offset is needed.
    let first = mse["mp4"]["first_tfdt_secs"].as_f64().unwrap();
    assert!(first > 0.0, "first tfdt is absolute, not 0: {mse}");
    let edit = mse["mp4"]["edit_media_time_secs"].as_f64().unwrap();
    assert!((edit - first).abs() < 1e-6, "{mse}");
    let offset = mse["video"]["mse"]["timestampOffset"].as_f64().unwrap();
    assert!(offset.abs() < 1e-6, "{mse}");
    let buffered = &mse["video"]["mse"]["bufferedBeforePlay"];
    let ranges = buffered.as_array().unwrap();
    assert_eq!(
        ranges.len(),
        1,
        "a continuous recording buffers as one range: {mse}"
    );
    let (start, end) = (
        ranges[0][0].as_f64().unwrap(),
        ranges[0][1].as_f64().unwrap(),
    );
    assert!(start < 0.5, "buffered starts at {start}: {mse}");
    assert!(end >= 7.0, "buffered ends at {end}, export is ~8 s: {mse}");
}

#[test]
fn h264_export_plays_in_chromium() {
    export_plays_in_both_modes(&Clip::h264(10, 30, 30, 640, 360, false));
}

/// An export that starts in the middle of a recording (the usual case: a few minutes out of
/// a day) begins seconds or days after the camera's time origin. `<video src>` must still
/// start on its own at the first frame, without the page seeking there.
#[test]
fn export_of_a_later_range_plays_from_its_first_frame() {
    require_browser();
    let clip = Clip::h264(10, 30, 30, 640, 360, false);
    let v = Vigil::init(6);
    record_and_export(&v, &clip);
    let start_us = v.recordings("cam1")["ranges"][0]["start_us"]
        .as_i64()
        .unwrap();
    let from = (start_us / 1_000_000 + 5).to_string();
    let later = v.dir.path().join("later.mp4");
    v.ok(&[
        "export",
        "cam1",
        "--from",
        &from,
        "--to",
        "+1m",
        "-o",
        later.to_str().unwrap(),
    ]);

    let src = play(&later, "src", None);
    check_played(&src, &clip);
    check_duration(&src, &later);
    let duration = src["video"]["duration"].as_f64().unwrap();
    assert!(
        duration < 6.0,
        "the later clip is about 3 s long, not {duration} s: {src}"
    );
    assert!(
        src["video"]["seekedToStart"].is_null(),
        "Chromium needed a seek to reach the first frame: {src}"
    );
    // The clip starts at 0 on the player's timeline, not where it sat in the recording.
    let playing_at = src["video"]["playingAt"].as_f64().unwrap();
    assert!(
        playing_at <= 0.5,
        "playback began at {playing_at}, not at the clip's start (0): {src}"
    );

    let (bundle_video, fragmented) = export_bundle(&v, &from, "later");
    let bundled = play(&bundle_video, "src", None);
    check_played(&bundled, &clip);
    check_duration(&bundled, &later);
    let mse = play(&fragmented, "mse", None);
    check_played(&mse, &clip);
    let first = mse["mp4"]["first_tfdt_secs"].as_f64().unwrap();
    assert!(first >= 3.0, "the export should start seconds in: {mse}");
}

#[test]
fn h264_export_with_b_frames_plays_in_chromium() {
    export_plays_in_both_modes(&Clip::h264(10, 30, 30, 640, 360, true));
}
