//! End-to-end tests of the sample camera against real RTSP peers: the `retina` client (the
//! one Vigil's recorder uses), ffmpeg/ffprobe, and raw sockets for protocol abuse.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use retina::client::{
    Credentials, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use url::Url;
use vigil_samplecam::{
    AuthConfig, AuthScheme, Clip, FrameRate, SampleCamera, SampleCameraHandle, SampleCameraOptions,
};

async fn start(options: SampleCameraOptions) -> SampleCameraHandle {
    SampleCamera::start("127.0.0.1:0".parse().unwrap(), options)
        .await
        .expect("sample camera starts")
}

/// What a client saw during a pull.
#[derive(Debug, Default)]
struct Pulled {
    /// (RTP timestamp, keyframe, arrival) per frame.
    frames: Vec<(i64, bool, Instant)>,
    /// Frames that reported lost packets before them.
    lossy_frames: usize,
    sender_reports: Vec<(u64, SystemTime)>,
    dimensions: Option<(u32, u32)>,
}

/// Pulls `url` with retina over TCP for `duration`.
async fn pull(
    url: &str,
    creds: Option<Credentials>,
    duration: Duration,
) -> Result<Pulled, retina::Error> {
    let mut session = retina::client::Session::describe(
        Url::parse(url).unwrap(),
        SessionOptions::default().creds(creds),
    )
    .await?;
    session
        .setup(
            0,
            SetupOptions::default()
                .transport(Transport::Tcp(TcpTransportOptions::default()))
                .frame_format(FrameFormat::MP4),
        )
        .await?;
    let mut demuxed = session.play(PlayOptions::default()).await?.demuxed()?;
    let mut pulled = Pulled::default();
    let deadline = tokio::time::Instant::now() + duration;
    loop {
        let item = match tokio::time::timeout_at(deadline, demuxed.next()).await {
            Err(_) => break,
            Ok(None) => panic!("stream ended early"),
            Ok(Some(item)) => item?,
        };
        match item {
            CodecItem::VideoFrame(frame) => {
                if frame.loss() > 0 {
                    pulled.lossy_frames += 1;
                }
                pulled.frames.push((
                    frame.timestamp().timestamp(),
                    frame.is_random_access_point(),
                    Instant::now(),
                ));
            }
            CodecItem::Rtcp(rtcp) => {
                for pkt in rtcp.pkts() {
                    if let Ok(Some(sr)) = pkt.as_sender_report() {
                        pulled
                            .sender_reports
                            .push((sr.ntp_timestamp().0, SystemTime::now()));
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(ParametersRef::Video(v)) = demuxed.streams()[0].parameters() {
        pulled.dimensions = Some(v.pixel_dimensions());
    }
    Ok(pulled)
}

/// Checks a pull against the clip: frame count for the time pulled, keyframes every GOP from
/// the first frame, timestamps advancing by exactly one frame, nothing lost.
fn check_pull(pulled: &Pulled, rate: FrameRate, gop: usize, duration: Duration) {
    let expected = duration.as_secs_f64() * rate.as_f64();
    let got = pulled.frames.len() as f64;
    assert!(
        (got - expected).abs() <= expected * 0.15 + 2.0,
        "expected about {expected} frames in {duration:?}, got {got}"
    );
    let step = rate.ticks_90k(1) as i64;
    for (i, pair) in pulled.frames.windows(2).enumerate() {
        assert_eq!(
            pair[1].0 - pair[0].0,
            step,
            "timestamp step after frame {i}"
        );
    }
    for (i, (_, key, _)) in pulled.frames.iter().enumerate() {
        assert_eq!(*key, i % gop == 0, "keyframe flag of frame {i}");
    }
    assert_eq!(
        pulled.lossy_frames, 0,
        "no RTP packets may be lost over TCP"
    );
}

/// Largest gap between consecutive frame arrivals.
fn max_gap(pulled: &Pulled) -> Duration {
    pulled
        .frames
        .windows(2)
        .map(|p| p[1].2 - p[0].2)
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_pulls_frames_in_real_time_with_sender_reports() {
    let cam = start(SampleCameraOptions {
        rtcp_interval: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let info = cam.clip_info().clone();
    assert_eq!(cam.url(), format!("rtsp://{}/sample", cam.local_addr()));
    let duration = Duration::from_secs(3);
    let pulled = pull(&cam.url(), None, duration).await.expect("pull");
    check_pull(&pulled, info.frame_rate, info.gop_length, duration);
    assert_eq!(pulled.dimensions, Some((info.width, info.height)));
    // Real time: the frames span the pull, not a burst.
    let span = pulled.frames.last().unwrap().2 - pulled.frames[0].2;
    assert!(
        span > Duration::from_millis(2_500),
        "frames arrived within {span:?}"
    );
    // One report with the first frame, then one a second.
    assert!(
        (3..=5).contains(&pulled.sender_reports.len()),
        "{} sender reports",
        pulled.sender_reports.len()
    );
    for (ntp, received) in &pulled.sender_reports {
        let unix_secs = (ntp >> 32) as i64 - 2_208_988_800;
        let local = received
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (unix_secs - local).abs() <= 1,
            "SR NTP time {unix_secs} vs now {local}"
        );
    }
    cam.shutdown().await;
}

/// A short clip at a high rate makes the loop wrap several times within a test: timestamps
/// and sequence numbers must continue, and every loop must start with a keyframe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_keep_timestamps_and_sequence_continuous_on_a_custom_path() {
    let builtin = Clip::builtin().unwrap();
    let mut annex_b = Vec::new();
    for frame in &builtin.frames()[..60] {
        for nal in frame.nal_units() {
            annex_b.extend_from_slice(&[0, 0, 0, 1]);
            annex_b.extend_from_slice(nal);
        }
    }
    let rate = FrameRate::new(60, 1).unwrap();
    let clip = Clip::from_annex_b_with_rate(&annex_b, rate).unwrap();
    assert_eq!(clip.info().frame_count, 60);
    assert_eq!(clip.info().duration(), Duration::from_secs(1));
    let cam = start(SampleCameraOptions {
        path: "/cams/front/".into(),
        clip: Some(Arc::new(clip)),
        ..Default::default()
    })
    .await;
    assert!(cam.url().ends_with("/cams/front"));
    let duration = Duration::from_millis(2_500);
    let pulled = pull(&cam.url(), None, duration).await.expect("pull");
    assert!(
        pulled.frames.len() > 120,
        "wrapped twice: {} frames",
        pulled.frames.len()
    );
    check_pull(&pulled, rate, 30, duration);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_the_stream_and_ffprobe_describes_it() {
    let cam = start(SampleCameraOptions::default()).await;
    let info = cam.clip_info().clone();
    let probe = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-select_streams",
                "v:0",
            ])
            .args([
                "-show_entries",
                "stream=codec_name,profile,width,height,r_frame_rate",
            ])
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(cam.url())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffprobe finishes")
    .expect("ffprobe runs");
    let stdout = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    for line in [
        "codec_name=h264".to_string(),
        "profile=Main".to_string(),
        format!("width={}", info.width),
        format!("height={}", info.height),
        format!(
            "r_frame_rate={}/{}",
            info.frame_rate.num, info.frame_rate.den
        ),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "ffprobe lacks {line}: {stdout}"
        );
    }

    // Decode (not just copy) three seconds: any bitstream problem shows up as an error line.
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"])
            .arg(cam.url())
            .args(["-t", "3", "-f", "null", "-progress", "pipe:1", "-"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffmpeg finishes")
    .expect("ffmpeg runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    assert!(stderr.trim().is_empty(), "ffmpeg reported errors: {stderr}");
    let progress = String::from_utf8_lossy(&out.stdout);
    let frames: u64 = progress
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .next_back()
        .and_then(|v| v.trim().parse().ok())
        .expect("ffmpeg progress has a frame count");
    assert!(
        (44..=46).contains(&frames),
        "ffmpeg decoded {frames} frames in 3 s of stream"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2_500),
        "the stream is paced, not dumped"
    );
    cam.shutdown().await;
}

fn creds(user: &str, password: &str) -> Option<Credentials> {
    Some(Credentials {
        username: user.into(),
        password: password.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_refuses_wrong_password_and_admits_the_right_one() {
    let cam = start(SampleCameraOptions {
        auth: Some(AuthConfig {
            scheme: AuthScheme::Digest,
            username: "viewer".into(),
            password: "c0rrect horse".into(),
        }),
        ..Default::default()
    })
    .await;
    let info = cam.clip_info().clone();

    let err = pull(&cam.url(), creds("viewer", "wrong"), Duration::from_secs(1))
        .await
        .expect_err("wrong password is refused");
    let msg = err.to_string();
    assert!(msg.contains("401") && msg.contains("Unauthorized"), "{msg}");
    let err = pull(&cam.url(), None, Duration::from_secs(1))
        .await
        .expect_err("no credentials");
    assert!(err.to_string().contains("no credentials supplied"), "{err}");
    let err = pull(
        &cam.url(),
        creds("intruder", "c0rrect horse"),
        Duration::from_secs(1),
    )
    .await
    .expect_err("wrong user");
    assert!(err.to_string().contains("401"), "{err}");

    let duration = Duration::from_secs(2);
    let pulled = pull(&cam.url(), creds("viewer", "c0rrect horse"), duration)
        .await
        .expect("right password streams");
    check_pull(&pulled, info.frame_rate, info.gop_length, duration);

    // A second, independent Digest implementation: ffprobe with credentials in the URL.
    let authed = cam
        .url()
        .replacen("rtsp://", "rtsp://viewer:c0rrect%20horse@", 1);
    for (url, ok) in [(authed.as_str(), true), (cam.url().as_str(), false)] {
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-show_entries",
                "stream=codec_name",
            ])
            .arg(url)
            .kill_on_drop(true)
            .output()
            .await
            .expect("ffprobe runs");
        assert_eq!(
            probe.status.success(),
            ok,
            "ffprobe on {url}: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
    }
    // A raw request answered with a Digest challenge never echoes the password.
    let reply = exchange(
        cam.local_addr(),
        &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", cam.url()),
    )
    .await;
    assert!(reply.starts_with("RTSP/1.0 401 "), "{reply}");
    assert!(
        reply.contains("WWW-Authenticate: Digest realm=\""),
        "{reply}"
    );
    assert!(!reply.contains("c0rrect"));
    cam.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_works_with_retina_and_refuses_bad_credentials() {
    let cam = start(SampleCameraOptions {
        auth: Some(AuthConfig {
            scheme: AuthScheme::Basic,
            username: "viewer".into(),
            password: "pw".into(),
        }),
        ..Default::default()
    })
    .await;
    let pulled = pull(&cam.url(), creds("viewer", "pw"), Duration::from_secs(1))
        .await
        .expect("right Basic credentials stream");
    assert!(pulled.frames.len() >= 10);
    let err = pull(&cam.url(), creds("viewer", "nope"), Duration::from_secs(1))
        .await
        .expect_err("wrong Basic password");
    assert!(err.to_string().contains("401"), "{err}");
    // OPTIONS stays open (clients probe capabilities before authenticating).
    let reply = exchange(cam.local_addr(), "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n").await;
    assert!(reply.starts_with("RTSP/1.0 200 OK\r\n"), "{reply}");
    cam.shutdown().await;
}

/// Reads one RTSP response (head plus Content-Length body), or what arrived before EOF.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len = text[..head_end]
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if buf.len() >= head_end + 4 + len {
                return String::from_utf8_lossy(&buf[..head_end + 4 + len]).to_string();
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return text,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no complete response within 5 s; got {text:?}"),
        }
    }
}

/// Sends `request` on a new connection and returns the response.
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(&mut stream).await
}

/// True when the server closes `stream` within a few seconds.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_never_disturb_other_clients() {
    let cam = start(SampleCameraOptions::default()).await;
    let info = cam.clip_info().clone();
    let addr = cam.local_addr();
    let url = cam.url();
    // A well-behaved viewer streams throughout the abuse below.
    let viewer_url = url.clone();
    let duration = Duration::from_secs(4);
    let viewer = tokio::spawn(async move { pull(&viewer_url, None, duration).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Garbage (a TLS ClientHello): 400 and the connection closes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
        .await
        .unwrap();
    let reply = read_response(&mut s).await;
    assert!(reply.starts_with("RTSP/1.0 400 Bad Request\r\n"), "{reply}");
    assert!(reply.contains("malformed request line"), "{reply}");
    assert!(closed_by_server(&mut s).await);

    // A header beyond the 16 KiB bound.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let huge = format!(
        "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    s.write_all(huge.as_bytes()).await.unwrap();
    let reply = read_response(&mut s).await;
    assert!(reply.starts_with("RTSP/1.0 400 "), "{reply}");
    assert!(reply.contains("exceed 16384 bytes"), "{reply}");
    assert!(closed_by_server(&mut s).await);

    // Errors within a well-formed request keep the connection usable.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let cases = [
        (
            format!("FETCH {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            "501 Not Implemented",
            "not implemented",
        ),
        (
            format!("PAUSE {url} RTSP/1.0\r\nCSeq: 2\r\n\r\n"),
            "501 Not Implemented",
            "OPTIONS, DESCRIBE",
        ),
        (
            format!("DESCRIBE rtsp://{addr}/nope RTSP/1.0\r\nCSeq: 3\r\n\r\n"),
            "404 Not Found",
            "no stream at \"/nope\"",
        ),
        (
            format!("DESCRIBE {url}/trackID=7 RTSP/1.0\r\nCSeq: 4\r\n\r\n"),
            "404 Not Found",
            "no stream",
        ),
        (
            format!(
                "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 5\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n"
            ),
            "461 Unsupported Transport",
            "RTP/AVP/TCP",
        ),
        (
            format!(
                "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 6\r\nTransport: RTP/AVP/TCP;multicast\r\n\r\n"
            ),
            "461 Unsupported Transport",
            "TCP",
        ),
        (
            format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 7\r\n\r\n"),
            "400 Bad Request",
            "needs a Transport header",
        ),
        (
            format!(
                "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 8\r\nTransport: RTP/AVP/TCP;interleaved=9-9\r\n\r\n"
            ),
            "400 Bad Request",
            "bad Transport header",
        ),
        (
            format!("PLAY {url} RTSP/1.0\r\nCSeq: 9\r\n\r\n"),
            "455 Method Not Valid in This State",
            "SETUP",
        ),
        (
            format!("PLAY {url} RTSP/1.0\r\nCSeq: 10\r\nSession: 1234\r\n\r\n"),
            "454 Session Not Found",
            "unknown session",
        ),
        (
            format!("TEARDOWN {url} RTSP/1.0\r\nCSeq: 11\r\n\r\n"),
            "454 Session Not Found",
            "no session",
        ),
        (
            format!(
                "GET_PARAMETER {url} RTSP/1.0\r\nCSeq: 12\r\nContent-Length: 8\r\n\r\nposition"
            ),
            "451 Parameter Not Understood",
            "no parameters",
        ),
        (
            "DESCRIBE * RTSP/1.0\r\nCSeq: 13\r\n\r\n".to_string(),
            "400 Bad Request",
            "needs a URL",
        ),
        (
            "OPTIONS * RTSP/1.0\r\nCSeq: 14\r\n\r\n".to_string(),
            "200 OK",
            "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER",
        ),
    ];
    for (request, status, needle) in &cases {
        s.write_all(request.as_bytes()).await.unwrap();
        let reply = read_response(&mut s).await;
        assert!(
            reply.starts_with(&format!("RTSP/1.0 {status}\r\n")),
            "{request:?} -> {reply}"
        );
        assert!(
            reply.contains(needle),
            "{request:?} -> {reply} should mention {needle}"
        );
        let cseq = request
            .split("CSeq: ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap();
        assert!(reply.contains(&format!("\r\nCSeq: {cseq}\r\n")), "{reply}");
    }

    // Wrong protocol versions, a missing CSeq and an oversized body close the connection.
    for (request, status) in [
        (
            "OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n",
            "505 RTSP Version Not Supported",
        ),
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "400 Bad Request"),
        (
            "OPTIONS * RTSP/1.0\r\nUser-Agent: x\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "SETUP * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 999999\r\n\r\n",
            "413 Request Entity Too Large",
        ),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let reply = read_response(&mut s).await;
        assert!(
            reply.starts_with(&format!("RTSP/1.0 {status}\r\n")),
            "{request:?} -> {reply}"
        );
        assert!(closed_by_server(&mut s).await, "{request:?} should close");
    }

    // A client that connects and says nothing, and one that hangs up mid-request.
    let silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"DESCRIBE rtsp://x/sample RTSP/1.0\r\nCSe")
        .await
        .unwrap();
    drop(partial);

    let pulled = viewer.await.unwrap().expect("viewer kept streaming");
    check_pull(&pulled, info.frame_rate, info.gop_length, duration);
    assert!(
        max_gap(&pulled) < Duration::from_millis(400),
        "viewer stalled {:?}",
        max_gap(&pulled)
    );
    // And a new client still gets served afterwards.
    let after = pull(&url, None, Duration::from_secs(1))
        .await
        .expect("served after abuse");
    assert!(after.frames.len() >= 10);
    drop(silent);
    cam.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_time_out() {
    let cam = start(SampleCameraOptions {
        session_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(cam.local_addr()).await.unwrap();
    s.write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut s).await.starts_with("RTSP/1.0 200"));
    let t = Instant::now();
    assert!(closed_by_server(&mut s).await);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    cam.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_leaving_does_not_disturb_another() {
    let cam = start(SampleCameraOptions::default()).await;
    let info = cam.clip_info().clone();
    let url = cam.url();
    let duration = Duration::from_secs(3);
    let steady_url = url.clone();
    let steady = tokio::spawn(async move { pull(&steady_url, None, duration).await });
    let leaver_url = url.clone();
    let leaver = tokio::spawn(async move { pull(&leaver_url, None, Duration::from_secs(1)).await });

    // A raw client that plays and then vanishes with a TCP reset.
    let mut rude = TcpStream::connect(cam.local_addr()).await.unwrap();
    let setup = format!(
        "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    );
    rude.write_all(setup.as_bytes()).await.unwrap();
    let reply = read_response(&mut rude).await;
    assert!(
        reply.contains("Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc="),
        "{reply}"
    );
    let session = reply
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .expect("Session header")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(reply.contains(";timeout=60"), "{reply}");
    rude.write_all(
        format!("PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let reply = read_response(&mut rude).await;
    assert!(reply.starts_with("RTSP/1.0 200 OK"), "{reply}");
    assert!(reply.contains("RTP-Info: url="), "{reply}");
    assert!(reply.contains("Range: npt=0.000-"), "{reply}");
    let mut first = [0u8; 2];
    rude.read_exact(&mut first).await.unwrap();
    assert_eq!(first, [b'$', 0], "interleaved RTP follows PLAY");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cam.playing_sessions(), 3);
    // Zero linger makes the close a reset (an abrupt disconnect); it never blocks.
    #[allow(deprecated)]
    rude.set_linger(Some(Duration::ZERO)).unwrap();
    drop(rude);

    let left = leaver.await.unwrap().expect("leaver pulled");
    assert!(left.frames.len() >= 10);
    let pulled = steady.await.unwrap().expect("steady client");
    check_pull(&pulled, info.frame_rate, info.gop_length, duration);
    assert!(
        max_gap(&pulled) < Duration::from_millis(400),
        "stalled {:?}",
        max_gap(&pulled)
    );

    // The departed clients' connections are gone; nothing leaks.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cam.active_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cam.active_connections(), 0);
    assert_eq!(cam.playing_sessions(), 0);
    cam.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_drop_stop_the_server() {
    let cam = start(SampleCameraOptions::default()).await;
    let addr = cam.local_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut s).await.starts_with("RTSP/1.0 200"));
    let t = Instant::now();
    cam.shutdown().await;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(closed_by_server(&mut s).await);
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");

    let cam = start(SampleCameraOptions::default()).await;
    let addr = cam.local_addr();
    drop(cam);
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "listener still open after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_reports_bad_options_and_busy_ports() {
    let cam = start(SampleCameraOptions::default()).await;
    let err = SampleCamera::start(cam.local_addr(), SampleCameraOptions::default())
        .await
        .err()
        .expect("port in use");
    assert!(err.to_string().contains("cannot listen on"), "{err}");
    let err = SampleCamera::start(
        "127.0.0.1:0".parse().unwrap(),
        SampleCameraOptions {
            path: "no-slash".into(),
            ..Default::default()
        },
    )
    .await
    .err()
    .expect("bad path");
    assert!(err.to_string().contains("must start with '/'"), "{err}");
    cam.shutdown().await;
}
