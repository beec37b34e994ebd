//! Cameras and recordings over the API, against real video: a real GStreamer RTSP server is
//! recorded by the real recorder with the evidence ledger into the harness's data directory,
//! then playback, Range requests, exports, bundles and verification are checked with ffprobe,
//! GNU tar, the CLI's export function and the offline bundle verifier.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{Auth, Harness, get_with, untar};
use serde_json::{Value, json};
use vigil_access::{AuditKind, AuditQuery, CameraScope, Role};
use vigil_media::evidence::{Evidence, Signing};
use vigil_media::recorder::{self, RecorderSettings};
use vigil_media::store::NewCamera;
use vigil_testkit::{
    Auth as PeerAuth, Clip, RtspPeer, ffprobe_count, require_gst_rtsp_server, require_tool,
};

const CAM: &str = "cam1";

/// The recording server's signing key, issued by the harness's CA (what `vigil init` does).
fn ensure_signing_key(h: &Harness) {
    let dir = vigil_media::evidence::signing_dir(&h.data_dir());
    let pki = h.state.pki.lock().unwrap();
    let leaf = pki
        .issue_leaf(&vigil_pki::LeafRequest {
            common_name: "vigil recording signing key (test)".into(),
            sans: Vec::new(),
            validity_days: 30,
            usage: vigil_pki::LeafUsage::Signing,
            key_type: vigil_pki::LeafKeyType::Ed25519,
        })
        .unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    vigil_pki::write_secret_file(
        &dir.join(vigil_signing::keys::KEY_FILE),
        leaf.key_pem.as_bytes(),
    )
    .unwrap();
    std::fs::write(dir.join(vigil_signing::keys::CERT_FILE), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join(vigil_signing::keys::CA_FILE), pki.ca_cert_pem()).unwrap();
}

/// A camera being recorded into the harness's data directory, as `vigil serve` does
/// (recorder + evidence ledger, the ledgers attached to the API).
struct Recording {
    handle: recorder::RecorderHandle,
    evidence: Arc<Evidence>,
    camera_id: String,
    _peer: RtspPeer,
}

async fn start_recording(h: &Harness, segment: Duration) -> Recording {
    require_gst_rtsp_server();
    ensure_signing_key(h);
    let clip = Clip::h264(10, 30, 15, 640, 360, false);
    let peer =
        tokio::task::spawn_blocking(move || RtspPeer::start(&[("cam", &clip)], PeerAuth::None))
            .await
            .unwrap();
    let store = h.state.store.clone();
    let cam = store
        .add_camera(&NewCamera {
            name: CAM.into(),
            url: peer.url("cam"),
            ..Default::default()
        })
        .unwrap();
    let evidence = Arc::new(Evidence::new(&h.data_dir(), Signing::On).unwrap());
    assert!(h.state.evidence.set(evidence.clone()).is_ok());
    let handle = recorder::start(
        store.clone(),
        cam.clone(),
        RecorderSettings {
            segment_duration: segment,
            inactivity_timeout: Duration::from_secs(3),
            max_backoff: Duration::from_secs(2),
        },
        Some(evidence.observer(&cam.id).unwrap()),
        Arc::new(|_: &vigil_media::store::Store, _: u64| 0),
    )
    .unwrap();
    Recording {
        handle,
        evidence,
        camera_id: cam.id,
        _peer: peer,
    }
}

/// Waits until `secs` seconds are recorded.
async fn wait_recorded(h: &Harness, camera_id: &str, secs: f64) {
    let store = h.state.store.clone();
    let start = Instant::now();
    loop {
        let got: f64 = store
            .ranges(camera_id, 0, i64::MAX / 2)
            .unwrap()
            .iter()
            .map(|(s, e)| (e - s) as f64 / 1e6)
            .sum();
        if got >= secs {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "recorded only {got:.1}s within 60s; status {:?}",
            store.status(camera_id)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Records about `secs` seconds of a real RTSP stream and stops cleanly.
async fn record(h: &Harness, secs: f64) {
    let r = start_recording(h, Duration::from_secs(2)).await;
    wait_recorded(h, &r.camera_id, secs).await;
    r.handle.stop().await;
    r.evidence.close_all();
}

/// ffprobe's view of an MP4's timeline: (format start_time, first packet pts, end of the last
/// packet), in seconds.
fn probe_timeline(path: &Path) -> (f64, f64, f64) {
    let out = std::process::Command::new(require_tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=start_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let packets = vigil_testkit::ffprobe_packets(path).unwrap();
    let pts: Vec<f64> = packets.iter().filter_map(|p| p.pts_secs).collect();
    let first = pts.iter().cloned().fold(f64::MAX, f64::min);
    let last = pts.iter().cloned().fold(f64::MIN, f64::max);
    // One frame at 30 fps after the last presentation time.
    (start, first, last + 1.0 / 30.0)
}

/// ffprobe's format duration of a file, in seconds.
fn probe_duration(path: &Path) -> f64 {
    vigil_testkit::ffprobe_duration(path).unwrap()
}

/// The top-level boxes of an MP4: (type, offset, length).
fn top_boxes(mp4: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= mp4.len() {
        let mut len = u32::from_be_bytes(mp4[at..at + 4].try_into().unwrap()) as usize;
        if len == 1 {
            len = u64::from_be_bytes(mp4[at + 8..at + 16].try_into().unwrap()) as usize;
        }
        out.push((
            String::from_utf8_lossy(&mp4[at + 4..at + 8]).into_owned(),
            at,
            len,
        ));
        at += len.max(8);
    }
    out
}

/// Playback's `sidx` follows the init, has one reference per fragment (each starting at a
/// `moof`, sized to the next one), and its times are the fragments' decode times on the
/// edited timeline (`tfdt` minus the first fragment's), to within a tick.
fn assert_seek_index(mp4: &[u8]) {
    use mp4_atom::{Decode, Moof, Sidx};
    let boxes = top_boxes(mp4);
    let kinds: Vec<&str> = boxes.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(kinds[..3], ["ftyp", "moov", "sidx"], "{kinds:?}");
    let (_, at, len) = boxes[2];
    let sidx = Sidx::decode(&mut &mp4[at..at + len]).unwrap();
    let moofs: Vec<&(String, usize, usize)> = boxes.iter().filter(|b| b.0 == "moof").collect();
    assert_eq!(sidx.references.len(), moofs.len());
    let decode_time = |at: usize, len: usize| {
        let moof = Moof::decode(&mut &mp4[at..at + len]).unwrap();
        moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time
    };
    let t0 = decode_time(moofs[0].1, moofs[0].2);
    let (mut offset, mut time) = (at + len, u64::from(sidx.earliest_presentation_time as u32));
    assert_eq!(sidx.timescale, 90_000);
    for (r, moof) in sidx.references.iter().zip(&moofs) {
        assert_eq!(offset, moof.1, "a reference starts at a moof");
        assert!(r.starts_with_sap && r.sap_type == 1);
        assert!(decode_time(moof.1, moof.2).abs_diff(t0 + time) <= 1);
        offset += r.referenced_size as usize;
        time += u64::from(r.subsegment_duration);
    }
    assert_eq!(offset, mp4.len(), "the references cover the file");
}

fn audit_entries(h: &Harness, kind: AuditKind) -> Vec<vigil_access::AuditEntry> {
    h.state
        .access
        .audit_query(&AuditQuery {
            kind: Some(kind),
            ..Default::default()
        })
        .unwrap()
}

/// `?from=..&to=..` around everything recorded, from the recordings answer.
/// `from`/`to` from a second before the first recorded range to the end of the last one: a
/// range no GOP can join any more.
fn closed_range(ranges: &Value) -> String {
    let first = ranges["ranges"][0]["start_us"].as_i64().unwrap();
    let n = ranges["ranges"].as_array().unwrap().len();
    let last = ranges["ranges"][n - 1]["end_us"].as_i64().unwrap();
    let enc = |us: i64| vigil_media::time::format_us(us).replace(':', "%3A");
    format!("from={}&to={}", enc(first - 1_000_000), enc(last))
}

fn around(ranges: &Value) -> String {
    let first = ranges["ranges"][0]["start_us"].as_i64().unwrap();
    let n = ranges["ranges"].as_array().unwrap().len();
    let last = ranges["ranges"][n - 1]["end_us"].as_i64().unwrap();
    let enc = |us: i64| vigil_media::time::format_us(us).replace(':', "%3A");
    format!(
        "from={}&to={}",
        enc(first - 1_000_000),
        enc(last + 1_000_000)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playback_export_verify_of_real_video() {
    require_tool("ffprobe");
    require_tool("tar");
    let h = Harness::new();
    record(&h, 5.0).await;
    let admin = Auth::Bearer(h.token(Role::Admin, CameraScope::All));
    let operator = Auth::Bearer(h.token(Role::Operator, CameraScope::only([CAM])));
    let viewer = h
        .signed_in("viewer1", Role::Viewer, CameraScope::only([CAM]))
        .await;
    let other = h
        .signed_in("other", Role::Viewer, CameraScope::only(["elsewhere"]))
        .await;

    // Recorded ranges, in RFC 3339 and microseconds.
    let rec = h
        .call(
            Method::GET,
            &format!("/api/v1/cameras/{CAM}/recordings"),
            &viewer,
            None,
        )
        .await;
    assert_eq!(rec.status, StatusCode::OK, "{}", rec.text());
    let ranges = rec.json();
    let secs: f64 = ranges["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seconds"].as_f64().unwrap())
        .sum();
    assert!(secs >= 5.0, "{ranges}");
    assert!(
        ranges["ranges"][0]["start"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let q = around(&ranges);
    // The CLI's time syntax works in query strings too.
    let rel = h
        .call(
            Method::GET,
            &format!("/api/v1/cameras/{CAM}/recordings?from=-1h&to=now"),
            &viewer,
            None,
        )
        .await;
    assert_eq!(rel.json()["ranges"], ranges["ranges"]);

    // The camera list shows status and bytes, never a password.
    let list = h.call(Method::GET, "/api/v1/cameras", &viewer, None).await;
    assert_eq!(list.status, StatusCode::OK);
    let cams = list.json();
    assert_eq!(cams[0]["name"], CAM);
    assert!(
        cams[0]["recorded_bytes"].as_i64().unwrap() > 10_000,
        "{cams}"
    );
    assert!(
        cams[0]["status"]["codec"]
            .as_str()
            .unwrap()
            .starts_with("avc1"),
        "{cams}"
    );
    assert!(cams[0].get("url").is_none(), "viewers do not see the URL");
    let list = h.call(Method::GET, "/api/v1/cameras", &other, None).await;
    assert_eq!(list.json(), json!([]));

    // Playback: the fragmented MP4 (the recorded fragments byte for byte, as in a bundle's
    // video.mp4 below), and ffprobe decodes it.
    let path = format!("/api/v1/cameras/{CAM}/playback?{q}");
    let full = h.send(get_with(&path, &operator, &[])).await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.text());
    assert_eq!(full.header("content-type"), "video/mp4");
    assert_eq!(full.header("accept-ranges"), "bytes");
    assert_eq!(full.header("vigil-playback-parts"), "1");
    let etag = full.header("etag");
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let total = full.body.len();
    assert_eq!(full.header("content-length"), total.to_string());
    let tmp = tempfile::tempdir().unwrap();
    let cli = tmp.path().join("cli.mp4");
    let first = ranges["ranges"][0]["start_us"].as_i64().unwrap() - 1_000_000;
    let n = ranges["ranges"].as_array().unwrap().len();
    let last = ranges["ranges"][n - 1]["end_us"].as_i64().unwrap() + 1_000_000;
    vigil_app::export::export_mp4(
        &h.state.store,
        CAM,
        first,
        last,
        &cli,
        false,
        &vigil_config::ArchiveConfig::default(),
        &mut |_, _| {},
        None,
    )
    .unwrap();
    let cli_bytes = std::fs::read(&cli).unwrap();
    let kinds = |mp4: &[u8]| -> Vec<String> { top_boxes(mp4).into_iter().map(|b| b.0).collect() };
    assert!(
        kinds(&full.body).contains(&"moof".to_owned()),
        "playback is fragmented: {:?}",
        kinds(&full.body)
    );
    assert_eq!(
        kinds(&cli_bytes),
        ["ftyp", "moov", "mdat"],
        "the export is progressive"
    );
    // A range that still reaches past the last GOP could grow: an index at its start would
    // move every later byte between two Range requests, so it has none. A closed range (it
    // ends where the recording does) has one, and is otherwise the same bytes.
    assert!(!kinds(&full.body).contains(&"sidx".to_owned()));
    let closed = h
        .send(get_with(
            &format!("/api/v1/cameras/{CAM}/playback?{}", closed_range(&ranges)),
            &operator,
            &[],
        ))
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.text());
    assert_seek_index(&closed.body);
    let boxes = top_boxes(&closed.body);
    let sidx = boxes.iter().find(|b| b.0 == "sidx").unwrap();
    let mut unindexed = closed.body[..sidx.1].to_vec();
    unindexed.extend_from_slice(&closed.body[sidx.1 + sidx.2..]);
    assert!(unindexed == full.body, "the same init and fragments");
    let played = tmp.path().join("played.mp4");
    std::fs::write(&played, &full.body).unwrap();
    let probe = ffprobe_count(&played).unwrap();
    assert_eq!(probe.codec, "h264");
    assert_eq!((probe.width, probe.height), (640, 360));
    assert!(probe.frames as f64 >= 30.0 * 4.5, "{probe:?}");
    // Players start the clip at 0, and it lasts what was recorded.
    let (start, first_pts, end) = probe_timeline(&played);
    assert_eq!((start, first_pts), (0.0, 0.0), "{played:?}");
    assert!(
        (end - secs).abs() < 1.0,
        "clip ends at {end} s, {secs} s recorded"
    );

    // Range requests.
    let part = |range: &str, if_range: Option<&str>| {
        let mut hs = vec![("range", range)];
        hs.extend(if_range.map(|v| ("if-range", v)));
        get_with(&path, &operator, &hs)
    };
    let a = h.send(part("bytes=0-99", None)).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.header("content-range"), format!("bytes 0-99/{total}"));
    assert_eq!(a.body, full.body[..100]);
    let a = h.send(part("bytes=1000-2999", Some(etag.as_str()))).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        a.header("content-range"),
        format!("bytes 1000-2999/{total}")
    );
    assert_eq!(a.body, full.body[1000..3000]);
    let a = h.send(part("bytes=-100", None)).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, full.body[total - 100..]);
    // Open-ended from the middle of a fragment to the end.
    let mid = total / 2;
    let a = h.send(part(&format!("bytes={mid}-"), None)).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, full.body[mid..]);
    let a = h.send(part(&format!("bytes={total}-"), None)).await;
    assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(a.code(), "range_not_satisfiable");
    assert_eq!(a.header("content-range"), format!("bytes */{total}"));
    // A stale validator gets the whole (current) content, not a mix.
    let a = h.send(part("bytes=0-99", Some("\"stale\""))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body.len(), total);

    // Over a real TLS socket the streamed body is framed right (Content-Length honoured),
    // for a whole answer and a range, as curl sees it.
    let (https, _) = h.serve(false).await;
    let Auth::Bearer(op_token) = operator.clone() else {
        unreachable!()
    };
    let url = format!("https://{https}{path}");
    let ca = h.ca_file();
    let curl = move |range: Option<&'static str>| {
        let mut c = std::process::Command::new(require_tool("curl"));
        c.args(["-sS", "--fail", "--max-time", "30", "--cacert"])
            .arg(&ca)
            .arg("-H")
            .arg(format!("Authorization: Bearer {op_token}"));
        if let Some(r) = range {
            c.args(["-r", r]);
        }
        c.arg(&url).output().unwrap()
    };
    let (whole, ranged) = tokio::task::spawn_blocking({
        let curl = curl.clone();
        move || (curl(None), curl(Some("100-4099")))
    })
    .await
    .unwrap();
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    assert!(
        whole.stdout == full.body,
        "curl got {} bytes",
        whole.stdout.len()
    );
    assert!(
        ranged.status.success(),
        "{}",
        String::from_utf8_lossy(&ranged.stderr)
    );
    assert_eq!(ranged.stdout, full.body[100..4100]);

    // Audit: one playback per view (the full request, the closed range and the one from
    // byte 0), with user and source; continuation ranges are not logged again.
    let plays = audit_entries(&h, AuditKind::Playback);
    assert_eq!(plays.len(), 5, "{plays:#?}");
    assert!(plays.iter().all(|e| e.user.as_deref() == Some(&*format!("token:{}", token_id(&h, Role::Operator)))));
    let sources: Vec<_> = plays.iter().map(|e| e.source.as_deref().unwrap()).collect();
    // In-process requests come from ::1; curl's over the real listener shows its address.
    assert_eq!(sources, ["::1", "::1", "::1", "::1", "127.0.0.1"]);
    assert_eq!(plays[0].detail["camera"], CAM);

    // Scope: a viewer of another camera gets 403, for existing and unknown cameras alike.
    for cam in [CAM, "nonexistent"] {
        let a = h
            .call(
                Method::GET,
                &format!("/api/v1/cameras/{cam}/playback?{q}"),
                &other,
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{cam}: {}", a.text());
    }
    let a = h
        .call(
            Method::GET,
            &format!("/api/v1/cameras/nonexistent/playback?{q}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), "camera_not_found");
    // Viewers may play back but not export or verify.
    let a = h
        .call(
            Method::GET,
            &format!("/api/v1/cameras/{CAM}/export?{q}"),
            &viewer,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = h
        .call(
            Method::POST,
            &format!("/api/v1/cameras/{CAM}/verify"),
            &viewer,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // Export as MP4: an attachment with a safe name, same bytes.
    let ex = h
        .send(get_with(
            &format!("/api/v1/cameras/{CAM}/export?{q}&format=mp4"),
            &operator,
            &[],
        ))
        .await;
    assert_eq!(ex.status, StatusCode::OK, "{}", ex.text());
    let cd = ex.header("content-disposition");
    assert!(
        cd.starts_with("attachment; filename=\"cam1_") && cd.ends_with(".mp4\""),
        "{cd}"
    );
    assert!(!cd[21..].contains('/') && !cd.contains(':'), "{cd}");
    // The same file as `vigil export -o clip.mp4`: a progressive MP4 that players show as
    // exactly the clip (a fragmented one reports its duration up to the last fragment's
    // absolute decode time), with every recorded frame.
    assert!(
        ex.body == cli_bytes,
        "the API export differs from the CLI export"
    );
    let ex_tag = ex.header("etag");
    assert!(
        ex_tag.starts_with('"') && ex_tag != etag,
        "{ex_tag} vs playback {etag}"
    );
    let exported = tmp.path().join("exported.mp4");
    std::fs::write(&exported, &ex.body).unwrap();
    let (start, first_pts, _) = probe_timeline(&exported);
    assert_eq!((start, first_pts), (0.0, 0.0), "{exported:?}");
    let duration = probe_duration(&exported);
    assert!(
        (duration - secs).abs() < 1.0 / 30.0,
        "the export lasts {duration} s, {secs} s recorded"
    );
    assert_eq!(ffprobe_count(&exported).unwrap().frames, probe.frames);
    // Range requests return the bytes of the progressive file: across the moov and the mdat
    // header, from inside the samples to the end, and a suffix validated by If-Range.
    let boxes = top_boxes(&ex.body);
    let (ref mdat, mdat_at, _) = boxes[2];
    assert_eq!(mdat, "mdat");
    let ex_total = ex.body.len();
    let export_path = format!("/api/v1/cameras/{CAM}/export?{q}&format=mp4");
    for (range, first, last) in [
        (
            format!("bytes={}-{}", mdat_at - 50, mdat_at + 50),
            mdat_at - 50,
            mdat_at + 50,
        ),
        (
            format!("bytes={}-", ex_total / 2),
            ex_total / 2,
            ex_total - 1,
        ),
        ("bytes=-100".to_owned(), ex_total - 100, ex_total - 1),
    ] {
        let mut hs = vec![("range", range.as_str())];
        if first == ex_total - 100 {
            hs.push(("if-range", ex_tag.as_str()));
        }
        let a = h.send(get_with(&export_path, &operator, &hs)).await;
        assert_eq!(a.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            a.header("content-range"),
            format!("bytes {first}-{last}/{ex_total}")
        );
        assert!(a.body == ex.body[first..=last], "{range}");
    }

    // Export as a signed evidence bundle: GNU tar extracts it and it verifies offline.
    let bx = h
        .send(get_with(
            &format!("/api/v1/cameras/{CAM}/export?{q}&format=bundle"),
            &operator,
            &[],
        ))
        .await;
    assert_eq!(bx.status, StatusCode::OK, "{}", bx.text());
    assert_eq!(bx.header("content-type"), "application/x-tar");
    assert!(bx.header("content-disposition").ends_with(".tar\""));
    assert_eq!(bx.header("content-length"), bx.body.len().to_string());
    untar(&bx.body, tmp.path());
    let bundle_dir = tmp.path().join(format!("evidence-{CAM}"));
    // The bundle's video.mp4 holds playback's fragments byte for byte (each behind a skip
    // header, under a progressive header).
    let manifest = vigil_signing::bundle::parse_manifest(
        &std::fs::read(bundle_dir.join("manifest.json")).unwrap(),
    )
    .unwrap();
    let video = std::fs::read(bundle_dir.join("video.mp4")).unwrap();
    let fragments: Vec<u8> = manifest
        .fragments
        .iter()
        .flat_map(|f| video[f.offset as usize..(f.offset + f.length) as usize].to_vec())
        .collect();
    assert!(!fragments.is_empty() && full.body.ends_with(&fragments));
    let ca = h.state.pki.lock().unwrap().ca_cert_pem().to_owned();
    let report = vigil_signing::bundle::verify(
        &bundle_dir,
        &vigil_signing::bundle::TrustAnchor::CaCert(ca),
        &vigil_media::progressive::Evidence,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(report.is_verified(), "{}", report.summary());
    assert!(
        report.export.exported_by.contains("token:"),
        "{:?}",
        report.export
    );
    // Leaves no temporary files behind once the answer is sent.
    let leftovers: Vec<_> = std::fs::read_dir(h.data_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".vigil-api-export-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let exports = audit_entries(&h, AuditKind::Export);
    assert_eq!(exports.len(), 2, "{exports:#?}");
    assert_eq!(exports[0].detail["format"], "mp4");
    assert_eq!(exports[1].detail["format"], "bundle");
    assert!(
        exports
            .iter()
            .all(|e| e.source.as_deref() == Some("::1") && e.user.is_some())
    );

    // Verify: intact, then a flipped byte in a segment file is found and named.
    let v = h
        .call(
            Method::POST,
            &format!("/api/v1/cameras/{CAM}/verify"),
            &operator,
            None,
        )
        .await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.text());
    let v = v.json();
    assert_eq!(v["verified"], true, "{v}");
    assert!(
        v["summary"].as_str().unwrap().starts_with("verified"),
        "{v}"
    );
    assert!(
        v["report"]["checked"]["fragments"].as_u64().unwrap() >= 8,
        "{v}"
    );
    let seg = first_segment(&h.data_dir());
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() - 200;
    bytes[at] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let v = h
        .call(
            Method::POST,
            &format!("/api/v1/cameras/{CAM}/verify"),
            &operator,
            None,
        )
        .await;
    let v = v.json();
    assert_eq!(v["verified"], false, "{v}");
    assert_eq!(v["tampered"], true, "{v}");
    assert_eq!(v["report"]["failure"]["kind"], "modified", "{v}");
    let verifies = audit_entries(&h, AuditKind::Verify);
    assert_eq!(verifies.len(), 2);
    assert_eq!(verifies[0].detail["verified"], true);
    assert_eq!(verifies[1].detail["failure"], "modified");
    assert!(verifies.iter().all(|e| e.source.as_deref() == Some("::1")));

    // Bad times are 400 with a message saying what to write.
    for (query, code) in [
        ("from=yesterday&to=now", "bad_time"),
        ("from=-1h", "bad_time"),
        ("from=now&to=-1h", "bad_range"),
        ("from=-3d&to=now", "range_too_long"),
    ] {
        let a = h
            .call(
                Method::GET,
                &format!("/api/v1/cameras/{CAM}/playback?{query}"),
                &viewer,
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{query}: {}", a.text());
        assert_eq!(a.code(), code, "{query}");
    }
    let a = h
        .call(
            Method::GET,
            &format!("/api/v1/cameras/{CAM}/playback?from=yesterday&to=now"),
            &viewer,
            None,
        )
        .await;
    assert!(a.json()["message"].as_str().unwrap().contains("RFC 3339"));
    // A range with nothing recorded is a clear 404.
    let a = h
        .call(
            Method::GET,
            &format!("/api/v1/cameras/{CAM}/playback?from=1000000000&to=1000000060"),
            &viewer,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), "no_recordings");
    let a = h
        .call(
            Method::GET,
            &format!("/api/v1/cameras/{CAM}/export?{q}&format=zip"),
            &operator,
            None,
        )
        .await;
    assert_eq!(a.code(), "bad_format");
}

/// The operator token's id as the audit log names it.
fn token_id(h: &Harness, role: Role) -> String {
    h.state
        .access
        .list_tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.role == role)
        .unwrap()
        .id
}

fn first_segment(data: &Path) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(data.join("video"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    files.sort();
    files.remove(0)
}

#[tokio::test]
async fn camera_management_permissions_and_validation() {
    let h = Harness::new();
    let admin = h.admin().await;
    let viewer = h
        .signed_in("viewer1", Role::Viewer, CameraScope::only(["lobby"]))
        .await;
    let auditor = h.signed_in("audit1", Role::Auditor, CameraScope::All).await;

    // Credentials in the URL are refused, as by `vigil camera add`.
    let a = h
        .call(
            Method::POST,
            "/api/v1/cameras",
            &admin,
            Some(json!({"name": "lobby", "url": "rtsp://u:p@10.0.0.5/s"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "invalid_camera");
    assert!(
        a.json()["message"].as_str().unwrap().contains("`username`"),
        "{}",
        a.text()
    );
    for (body, code) in [
        (
            json!({"name": "lobby", "url": "http://10.0.0.5/"}),
            "invalid_camera",
        ),
        (
            json!({"name": "../etc", "url": "rtsp://10.0.0.5/s"}),
            "invalid_camera_name",
        ),
        (
            json!({"name": "..", "url": "rtsp://10.0.0.5/s"}),
            "invalid_camera_name",
        ),
        (
            json!({"name": ".", "url": "rtsp://10.0.0.5/s"}),
            "invalid_camera_name",
        ),
        (
            json!({"name": "lobby", "url": "rtsp://10.0.0.5/s", "password": "x"}),
            "invalid_camera",
        ),
        (
            json!({"name": "lobby", "url": "rtsp://10.0.0.5/s", "max_age": "soon"}),
            "invalid_field",
        ),
        (
            json!({"name": "lobby", "url": "rtsp://10.0.0.5/s", "max_bytes": 0}),
            "invalid_field",
        ),
        (
            json!({"name": "lobby", "url": "rtsp://10.0.0.5/s", "colour": "red"}),
            "bad_request",
        ),
    ] {
        let a = h
            .call(Method::POST, "/api/v1/cameras", &admin, Some(body.clone()))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        assert_eq!(a.code(), code, "{body}");
    }
    // Only ManageCameras adds.
    let body = json!({"name": "lobby", "url": "rtsp://10.0.0.5:554/stream", "username": "cam",
        "password": "camera-secret-123", "max_age": "7d", "max_bytes": 1_000_000_000u64});
    let a = h
        .call(Method::POST, "/api/v1/cameras", &viewer, Some(body.clone()))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = h
        .call(Method::POST, "/api/v1/cameras", &admin, Some(body.clone()))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let cam = a.json();
    assert_eq!(cam["has_password"], true);
    assert_eq!(cam["max_age_secs"], 7 * 86400);
    assert_eq!(cam["status"]["state"], "not running");
    assert!(!a.text().contains("camera-secret-123"));
    let a = h
        .call(Method::POST, "/api/v1/cameras", &admin, Some(body))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.code(), "camera_exists");
    h.call(
        Method::POST,
        "/api/v1/cameras",
        &admin,
        Some(json!({"name": "yard", "url": "rtsp://10.0.0.6/s", "enabled": false})),
    )
    .await;

    // Lists per role: admin both (with URLs), the scoped viewer only its camera (no URL),
    // the auditor nothing at all.
    let all = h
        .call(Method::GET, "/api/v1/cameras", &admin, None)
        .await
        .json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["url"], "rtsp://10.0.0.5:554/stream");
    assert_eq!(all[1]["status"]["state"], "disabled");
    let mine = h
        .call(Method::GET, "/api/v1/cameras", &viewer, None)
        .await
        .json();
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["name"], "lobby");
    assert!(mine[0].get("url").is_none() && mine[0].get("username").is_none());
    let a = h.call(Method::GET, "/api/v1/cameras", &auditor, None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = h
        .call(Method::GET, "/api/v1/cameras/lobby", &auditor, None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = h
        .call(Method::GET, "/api/v1/cameras/yard", &viewer, None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = h
        .call(Method::GET, "/api/v1/cameras/lobby", &viewer, None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = h
        .call(Method::GET, "/api/v1/cameras", &Auth::None, None)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // No password field anywhere in any answer.
    assert!(!all.to_string().contains("camera-secret-123") && all[0].get("password").is_none());

    // PATCH: enable state and retention; `null` clears a limit, absent keeps it.
    let a = h
        .call(
            Method::PATCH,
            "/api/v1/cameras/lobby",
            &viewer,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = h
        .call(
            Method::PATCH,
            "/api/v1/cameras/lobby",
            &admin,
            Some(json!({"enabled": false, "max_age": null, "max_bytes": 5000})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let c = a.json();
    assert_eq!(
        (
            c["enabled"].clone(),
            c["max_age_secs"].clone(),
            c["max_bytes"].clone()
        ),
        (json!(false), Value::Null, json!(5000))
    );
    let a = h
        .call(
            Method::PATCH,
            "/api/v1/cameras/lobby",
            &admin,
            Some(json!({"max_age": 3600})),
        )
        .await;
    assert_eq!(a.json()["max_age_secs"], 3600);
    assert_eq!(a.json()["max_bytes"], 5000);

    // Unknown cameras: 404 for those allowed to ask, 403 for a scoped caller.
    let a = h
        .call(Method::GET, "/api/v1/cameras/nope", &admin, None)
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::NOT_FOUND, "camera_not_found")
    );
    let a = h
        .call(Method::GET, "/api/v1/cameras/nope", &viewer, None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = h
        .call(
            Method::GET,
            "/api/v1/cameras/nope/recordings",
            &viewer,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // Hostile camera names are clear 4xx answers and never reach the file system.
    let long = "a".repeat(300);
    for name in [
        "..%2F..%2Fetc",
        "..%2Fx",
        "%00",
        "a%00b",
        "%2e%2e%2f",
        "x%2F..%2F..",
        &long,
        "%FF",
    ] {
        for suffix in [
            "",
            "/recordings",
            "/playback?from=-1m&to=now",
            "/export?from=-1m&to=now",
        ] {
            let a = h
                .call(
                    Method::GET,
                    &format!("/api/v1/cameras/{name}{suffix}"),
                    &admin,
                    None,
                )
                .await;
            assert_eq!(
                a.status,
                StatusCode::BAD_REQUEST,
                "{name}{suffix}: {}",
                a.text()
            );
            assert!(!a.text().contains(&*h.data_dir().to_string_lossy()));
        }
        let a = h
            .call(
                Method::POST,
                &format!("/api/v1/cameras/{name}/verify"),
                &admin,
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{name}: {}", a.text());
    }
    for name in ["..", "."] {
        let a = h
            .call(
                Method::GET,
                &format!("/api/v1/cameras/{name}/recordings"),
                &admin,
                None,
            )
            .await;
        assert!(a.status.is_client_error(), "{name}: {}", a.status);
    }
    // Verify of a camera that never recorded: nothing signed to check.
    let a = h
        .call(Method::POST, "/api/v1/cameras/lobby/verify", &admin, None)
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::CONFLICT, "no_ledger"),
        "{}",
        a.text()
    );

    // DELETE keeps video by default; the camera is gone afterwards.
    let a = h
        .call(
            Method::DELETE,
            "/api/v1/cameras/yard?delete_video=maybe",
            &admin,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = h
        .call(Method::DELETE, "/api/v1/cameras/yard", &viewer, None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = h
        .call(
            Method::DELETE,
            "/api/v1/cameras/yard?delete_video=true",
            &admin,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    let a = h
        .call(Method::GET, "/api/v1/cameras/yard", &admin, None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // The OpenAPI description lists every route of this file.
    let spec = h
        .call(Method::GET, "/api/v1/openapi.json", &Auth::None, None)
        .await
        .json();
    for (path, method) in [
        ("/api/v1/cameras", "get"),
        ("/api/v1/cameras", "post"),
        ("/api/v1/cameras/{camera}", "patch"),
        ("/api/v1/cameras/{camera}", "delete"),
        ("/api/v1/cameras/{camera}/recordings", "get"),
        ("/api/v1/cameras/{camera}/playback", "get"),
        ("/api/v1/cameras/{camera}/export", "get"),
        ("/api/v1/cameras/{camera}/verify", "post"),
    ] {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }

    // Every change is in the audit log with user and source, without the password.
    let changes = audit_entries(&h, AuditKind::CameraChanged);
    let actions: Vec<&str> = changes
        .iter()
        .map(|e| e.detail["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["added", "added", "changed", "changed", "removed"]);
    assert!(changes.iter().all(|e| e.user.as_deref() == Some(common::ADMIN) && e.source.as_deref() == Some("::1")));
    assert!(!format!("{changes:?}").contains("camera-secret-123"));
}

/// The type of the last complete record of a ledger.
fn last_record(ledger: &Path) -> Option<vigil_signing::record::Body> {
    let bytes = std::fs::read(ledger).ok()?;
    let mut r = vigil_signing::record::RecordReader::new(&bytes[..]).ok()?;
    let mut last = None;
    while let Ok(Some(rec)) = r.next_record() {
        last = Some(rec.body);
    }
    last
}

/// Waits until the newest ledger record is a fragment that no signature covers yet.
async fn wait_unsigned_tail(ledger: &Path) {
    let start = Instant::now();
    while !matches!(
        last_record(ledger),
        Some(vigil_signing::record::Body::Fragment(_))
    ) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the ledger never ended with an unsigned fragment"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_of_video_recorded_a_moment_ago_verifies_completely() {
    require_tool("tar");
    let h = Harness::new();
    // Long segments: no segment close signs the newest GOPs for us.
    let r = start_recording(&h, Duration::from_secs(60)).await;
    wait_recorded(&h, &r.camera_id, 3.0).await;
    let operator = Auth::Bearer(h.token(Role::Operator, CameraScope::only([CAM])));
    let ledger = vigil_media::evidence::ledger_path(&h.data_dir(), &r.camera_id);
    wait_unsigned_tail(&ledger).await;
    let bx = h
        .send(get_with(
            &format!("/api/v1/cameras/{CAM}/export?from=-1m&to=%2B1m&format=bundle"),
            &operator,
            &[],
        ))
        .await;
    assert_eq!(bx.status, StatusCode::OK, "{}", bx.text());
    assert_eq!(bx.header("vigil-unsigned-fragments"), "0");
    r.handle.stop().await;
    r.evidence.close_all();

    let tmp = tempfile::tempdir().unwrap();
    untar(&bx.body, tmp.path());
    let dir = tmp.path().join(format!("evidence-{CAM}"));
    let ca = h.state.pki.lock().unwrap().ca_cert_pem().to_owned();
    let report = vigil_signing::bundle::verify(
        &dir,
        &vigil_signing::bundle::TrustAnchor::CaCert(ca),
        &vigil_media::progressive::Evidence,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(report.is_verified(), "{}", report.summary());
    assert!(report.recording.unsigned.is_empty(), "{}", report.summary());
    let m = bundle_manifest(&dir);
    assert!(report.recording.checked.fragments as usize == m.fragments.len());
}

fn bundle_manifest(dir: &Path) -> vigil_signing::bundle::Manifest {
    vigil_signing::bundle::parse_manifest(&std::fs::read(dir.join("manifest.json")).unwrap())
        .unwrap()
}

/// A camera's recorded secondary stream is listed, played, exported and verified with
/// `stream=secondary` under its camera's name and permissions; a camera without one says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_secondary_is_addressed_with_stream_secondary() {
    let h = Harness::new();
    let r = start_recording(&h, Duration::from_secs(2)).await;
    let store = h.state.store.clone();
    let cam = store
        .set_secondary(
            CAM,
            Some(&vigil_media::store::NewSecondary {
                url: store.camera(CAM).unwrap().url,
                mode: vigil_media::store::StreamMode::Recorded,
                ..Default::default()
            }),
        )
        .unwrap();
    let sec = cam.secondary_camera().unwrap();
    let sub = recorder::start(
        store.clone(),
        sec.clone(),
        RecorderSettings {
            segment_duration: Duration::from_secs(2),
            inactivity_timeout: Duration::from_secs(3),
            max_backoff: Duration::from_secs(2),
        },
        Some(r.evidence.observer(&sec.id).unwrap()),
        Arc::new(|_: &vigil_media::store::Store, _: u64| 0),
    )
    .unwrap();
    wait_recorded(&h, &sec.id, 4.0).await;
    sub.stop().await;
    r.handle.stop().await;
    r.evidence.close_all();

    let operator = Auth::Bearer(h.token(Role::Operator, CameraScope::only([CAM])));
    let other = Auth::Bearer(h.token(Role::Operator, CameraScope::only(["elsewhere"])));
    let base = format!("/api/v1/cameras/{CAM}");
    let a = h
        .get(&format!("{base}/recordings?stream=secondary"), &operator)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["camera"], format!("{CAM} (secondary)"));
    let q = around(&a.json());
    let main = h
        .send(get_with(&format!("{base}/playback?{q}"), &operator, &[]))
        .await;
    let played = h
        .send(get_with(
            &format!("{base}/playback?{q}&stream=secondary"),
            &operator,
            &[],
        ))
        .await;
    assert_eq!(played.status, StatusCode::OK, "{}", played.text());
    assert_ne!(
        played.header("etag"),
        main.header("etag"),
        "another stream's video"
    );
    let recorded = h
        .get(&format!("{base}/recordings?stream=secondary"), &operator)
        .await
        .json();
    let closed = h
        .send(get_with(
            &format!(
                "{base}/playback?{}&stream=secondary",
                closed_range(&recorded)
            ),
            &operator,
            &[],
        ))
        .await;
    assert_seek_index(&closed.body);
    let bundle = h
        .send(get_with(
            &format!("{base}/export?{q}&stream=secondary&format=bundle"),
            &operator,
            &[],
        ))
        .await;
    assert_eq!(bundle.status, StatusCode::OK, "{}", bundle.text());
    assert!(bundle.header("content-disposition").contains("secondary"));
    let v = h
        .post(&format!("{base}/verify?stream=secondary"), &operator, None)
        .await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.text());
    assert_eq!(v.json()["verified"], true, "{}", v.text());
    assert_eq!(v.json()["camera"], format!("{CAM} (secondary)"));
    // The camera's permissions decide, as for its main stream.
    let a = h
        .get(&format!("{base}/recordings?stream=secondary"), &other)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    // Without a secondary: 404 saying so; an unknown stream is a bad request.
    store.set_secondary(CAM, None).unwrap();
    let gone = h
        .get(&format!("{base}/recordings?stream=secondary"), &operator)
        .await;
    assert_eq!(
        gone.status,
        StatusCode::OK,
        "a removed secondary's recordings stay"
    );
    store
        .add_camera(&NewCamera {
            name: "gate".into(),
            url: "rtsp://127.0.0.1:9/x".into(),
            ..Default::default()
        })
        .unwrap();
    let admin = h.admin().await;
    let a = h
        .post("/api/v1/cameras/gate/verify?stream=secondary", &admin, None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    assert_eq!(a.code(), "no_secondary_stream");
    let a = h
        .get("/api/v1/cameras/gate/recordings?stream=tertiary", &admin)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
}

/// An evidence lock set over the API keeps its range through a retention pass that deletes
/// everything around it, is a signed fact in the camera's ledger (verify reports it), and only
/// an administrator releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evidence_lock_survives_retention_and_is_a_signed_fact() {
    let h = Harness::new();
    let r = start_recording(&h, Duration::from_secs(2)).await;
    wait_recorded(&h, &r.camera_id, 9.0).await;
    r.handle.stop().await;
    let admin = h.admin().await;
    let operator = Auth::Bearer(h.token(Role::Operator, CameraScope::only([CAM])));
    let viewer = h
        .signed_in("viewer1", Role::Viewer, CameraScope::only([CAM]))
        .await;
    let store = h.state.store.clone();
    let segments = store.segments(&r.camera_id).unwrap();
    assert!(segments.len() >= 4, "{segments:?}");
    let kept = segments[segments.len() / 2].clone();
    let lock_body = json!({
        "from": vigil_media::time::format_us(kept.start_us + 100_000),
        "to": vigil_media::time::format_us(kept.start_us + 600_000),
        "reason": "incident 4711",
    });
    let path = format!("/api/v1/cameras/{CAM}/locks");

    // A viewer may see locks but not set them; a bad reason or range is refused.
    let a = h.post(&path, &viewer, Some(lock_body.clone())).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    let mut bad = lock_body.clone();
    bad["reason"] = json!("two\nlines");
    let a = h.post(&path, &operator, Some(bad)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "bad_reason".into())
    );
    let mut bad = lock_body.clone();
    bad["to"] = bad["from"].clone();
    let a = h.post(&path, &operator, Some(bad)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "bad_range".into())
    );

    let a = h.post(&path, &operator, Some(lock_body)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let lock = a.json();
    assert_eq!(lock["state"], "active", "{lock}");
    let id = lock["id"].as_i64().unwrap();
    let listed = h.get(&path, &viewer).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json()[0]["id"], id, "{}", listed.text());

    // Retention with every segment too old: only the locked one stays, each prune recorded.
    let evidence = r.evidence.clone();
    let policy = vigil_media::retention::RetentionPolicy {
        max_age_secs: Some(1),
        ..Default::default()
    };
    let pass = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let hook = |cam: &str, seq: i64| evidence.prune(cam, seq).map_err(|e| e.to_string());
            vigil_media::retention::enforce_at(&store, &policy, i64::MAX / 4, &hook, None)
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert_eq!(pass.segments_deleted, segments.len() - 1, "{pass:?}");
    assert_eq!(pass.segments_locked, 1, "{pass:?}");
    let left: Vec<i64> = store
        .segments(&r.camera_id)
        .unwrap()
        .iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(left, vec![kept.seq]);

    // Only an administrator releases it, once.
    let one = format!("{path}/{id}");
    let a = h.call(Method::DELETE, &one, &operator, None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    let a = h.call(Method::DELETE, &one, &admin, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["state"], "released", "{}", a.text());
    let a = h.call(Method::DELETE, &one, &admin, None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::CONFLICT, "lock_ended".into())
    );
    assert_eq!(audit_entries(&h, AuditKind::EvidenceLockChanged).len(), 2);

    // The lock and its release are signed facts; the prunes are what they are, no tampering.
    r.evidence.close_all();
    let v = h
        .call(
            Method::POST,
            &format!("/api/v1/cameras/{CAM}/verify"),
            &operator,
            None,
        )
        .await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.text());
    let v = v.json();
    assert_eq!(v["verified"], true, "{v}");
    let facts: Vec<&Value> = v["report"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "evidence-lock")
        .collect();
    assert_eq!(facts.len(), 2, "{v}");
    assert_eq!(facts[0]["action"], "locked");
    assert_eq!(facts[0]["lock_id"], id);
    assert_eq!(facts[0]["reason"], "incident 4711");
    assert_eq!(facts[1]["action"], "released");
    assert!(facts[1]["by"].as_str().unwrap().starts_with("user:"), "{v}");
}
