//! Shared fixtures for the vigil-media tests: a store with a camera, scripted cameras that
//! play sessions from memory, a wall clock that follows tokio's (paused) clock, checks that
//! a camera's segment files and index agree, live viewers' events and an in-process signing
//! identity. Nothing here starts a process or opens a socket.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use vigil_media::fmp4::{self, TrackParams};
use vigil_media::gop::{Frame, GopSamples, gop_samples};
use vigil_media::ingest::{FrameSource, IngestError, Opener, Source, SourceFrame};
use vigil_media::live::{LiveFragment, LiveHub, LiveLimits, LiveState, Viewer, ViewerEvent};
use vigil_media::recorder::{
    self, FreeSpace, RecorderEnv, RecorderHandle, RecorderSettings, SegmentObserver, WallClock,
};
use vigil_media::retention::{Urgency, free_space};
use vigil_media::store::{
    Camera, GapRow, GopRow, NewCamera, SegmentRow, SegmentWriter, Store, WriteStep, ticks_to_us,
};
use vigil_signing::SigningIdentity;

/// 25 frames a second on the 90 kHz clock.
pub const FRAME_TICKS: i64 = 3600;
/// Frames per GOP: one second of video.
pub const GOP_FRAMES: usize = 25;
pub const GOP_TICKS: i64 = FRAME_TICKS * GOP_FRAMES as i64;
pub const GOP_US: i64 = 1_000_000;

// ----- a store -----

pub fn store_with_camera() -> (tempfile::TempDir, Store, Camera) {
    let (dir, store, mut cams) = store_with_cameras(&["cam1"]);
    (dir, store, cams.remove(0))
}

pub fn store_with_cameras(names: &[&str]) -> (tempfile::TempDir, Store, Vec<Camera>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path()).unwrap();
    let cams = names
        .iter()
        .map(|n| {
            store
                .add_camera(&NewCamera {
                    name: (*n).into(),
                    url: "rtsp://127.0.0.1:8554/a".into(),
                    ..Default::default()
                })
                .unwrap()
        })
        .collect();
    (dir, store, cams)
}

// ----- synthetic H.264 -----

/// Codec parameters of a made-up H.264 stream; each `variant` is a different parameter set
/// (and picture width), as after a camera's resolution change.
pub fn h264_params(variant: u8) -> TrackParams {
    use mp4_atom::{Avc1, Avcc, Codec, Encode, Visual};
    let sps = [0x67, 0x4d, 0x40, 0x1e, 0xa0 + variant];
    let pps = [0x68, 0xee, 0x3c, 0x80];
    let width = 640 + 16 * u16::from(variant);
    let entry = Codec::Avc1(Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width,
            height: 480,
            ..Default::default()
        },
        avcc: Avcc::new(&sps, &pps).unwrap(),
        ..Default::default()
    });
    let mut sample_entry = Vec::new();
    entry.encode(&mut sample_entry).unwrap();
    TrackParams {
        sample_entry,
        width: width.into(),
        height: 480,
        rfc6381: "avc1.4d401e".into(),
    }
}

/// A frame's bytes: one length-prefixed NAL unit whose payload names the frame (`tag`), so a
/// test can recognise it in a segment file.
pub fn nal(tag: u32, key: bool) -> Vec<u8> {
    let mut payload = vec![if key { 0x65 } else { 0x41 }];
    payload.extend_from_slice(&tag.to_be_bytes());
    payload.resize(if key { 200 } else { 40 }, 0x5a);
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

/// The decode order of a GOP of `n` pictures: presentation indices, with B-frames as
/// I0 P3 B1 B2 P6 B4 B5 ... (each P decoded before the two B-frames shown ahead of it).
pub fn decode_order(n: usize, bframes: bool) -> Vec<usize> {
    if !bframes {
        return (0..n).collect();
    }
    let mut order = vec![0];
    let mut i = 1;
    while i + 2 < n {
        order.extend([i + 2, i, i + 1]);
        i += 3;
    }
    order.extend(i..n);
    order
}

/// One GOP of [`GOP_FRAMES`] frames in decode order, presented every [`FRAME_TICKS`] from
/// `pts0`; frame tags are `tag * 100 + presentation index`.
pub fn gop(pts0: i64, tag: u32, bframes: bool) -> Vec<SourceFrame> {
    decode_order(GOP_FRAMES, bframes)
        .into_iter()
        .map(|i| SourceFrame {
            timestamp: pts0 + i as i64 * FRAME_TICKS,
            is_key: i == 0,
            new_params: false,
            data: nal(tag * 100 + i as u32, i == 0),
        })
        .collect()
}

/// `count` consecutive one-second GOPs from presentation time 0, tagged from `first_tag`.
pub fn gops(count: u32, first_tag: u32, bframes: bool) -> Vec<Step> {
    (0..count)
        .map(|k| Step::Frames(gop(i64::from(k) * GOP_TICKS, first_tag + k, bframes)))
        .collect()
}

/// A GOP as the recorder stores it: `(fragment bytes, samples)` for frames in decode order.
pub fn fragment(gop_no: u32, frames: &[Frame]) -> (Vec<u8>, GopSamples) {
    let g = gop_samples(frames, None, FRAME_TICKS as u32);
    let mut bytes = fmp4::fragment_header(gop_no, g.base_decode_time, &g.samples, g.data_len)
        .expect("fragment header");
    for f in frames {
        bytes.extend_from_slice(&f.data);
    }
    (bytes, g)
}

/// The frames of GOP number `k` (0-based) of a camera timeline starting at tick 0.
pub fn timeline_gop(k: i64) -> Vec<Frame> {
    gop(k * GOP_TICKS, k as u32 + 1, false)
        .into_iter()
        .map(|f| Frame {
            pts: f.timestamp,
            is_key: f.is_key,
            data: f.data.into(),
        })
        .collect()
}

/// Appends GOP number `k` (0-based on the camera's timeline) to `seg` the way the recorder
/// does (header, then each frame's buffer) and returns its index row.
pub fn append_gop(store: &Store, cam: &Camera, seg: &mut SegmentWriter, k: i64) -> GopRow {
    let frames = timeline_gop(k);
    let (bytes, g) = fragment(k as u32 + 1, &frames);
    let header_len = bytes.len() - g.data_len as usize;
    let mut pieces: Vec<&[u8]> = vec![&bytes[..header_len]];
    pieces.extend(frames.iter().map(|f| &f.data[..]));
    seg.append(
        store,
        &pieces,
        k + 1,
        cam.time_origin_us + ticks_to_us(g.base_decode_time),
        ticks_to_us(g.duration),
        frames.len() as i64,
    )
    .expect("append GOP")
}

// ----- faults -----

/// A process death at a write step: unwinds out of the store without running the code after
/// the step, leaving the files as a killed process would. No panic message is printed.
pub fn die() -> ! {
    std::panic::resume_unwind(Box::new("simulated crash"))
}

/// Runs `f`, which must die at a write step (see [`die`]).
pub fn expect_death<T>(f: impl FnOnce() -> T) {
    assert!(
        catch_unwind(AssertUnwindSafe(f)).is_err(),
        "the write finished instead of dying at the chosen step"
    );
}

/// Makes the store die at `step` (once).
pub fn die_at(store: &Store, step: WriteStep) {
    store.set_write_hook(Some(Arc::new(
        move |s, _: &Path| {
            if s == step { die() } else { Ok(()) }
        },
    )));
}

/// The error a full volume gives.
pub fn enospc() -> std::io::Error {
    std::io::Error::from_raw_os_error(28)
}

// ----- consistency -----

fn sha256(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// Checks that a camera's files and index agree: every file has a row and every row a file;
/// a segment's bytes are its init followed by its GOPs back to back, each hashing to its row
/// and carrying the row's GOP number and time; GOP numbers increase with time. Returns the
/// GOPs in order.
pub fn assert_consistent(store: &Store, cam: &Camera) -> Vec<GopRow> {
    let segments = store.segments(&cam.id).unwrap();
    let gops = all_gops(store, cam);
    let mut on_disk: Vec<i64> = std::fs::read_dir(store.camera_dir(&cam.id))
        .map(|d| {
            d.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                i64::from_str_radix(name.strip_suffix(".mp4")?, 16).ok()
            })
            .collect()
        })
        .unwrap_or_default();
    on_disk.sort_unstable();
    let indexed: Vec<i64> = segments.iter().map(|s| s.seq).collect();
    assert_eq!(on_disk, indexed, "segment files and index rows differ");
    for seg in &segments {
        let data = std::fs::read(store.segment_path(&cam.id, seg.seq)).unwrap();
        assert_eq!(seg.bytes, data.len() as i64, "segment {} length", seg.seq);
        assert_eq!(
            sha256(&data[..seg.init_len as usize]),
            seg.init_sha256,
            "segment {} init",
            seg.seq
        );
        let mut offset = seg.init_len;
        let mut frames = 0;
        for g in gops.iter().filter(|g| g.seq == seg.seq) {
            assert_eq!(
                g.offset, offset,
                "GOP {} follows the previous one",
                g.gop_no
            );
            let bytes = &data[g.offset as usize..(g.offset + g.len) as usize];
            assert_eq!(sha256(bytes), g.sha256, "GOP {} hash", g.gop_no);
            let info = fmp4::parse_fragment(bytes).unwrap();
            assert_eq!(i64::from(info.sequence_number), g.gop_no);
            assert_eq!(
                cam.time_origin_us + ticks_to_us(info.base_decode_time),
                g.start_us
            );
            assert!(
                info.starts_with_sync,
                "GOP {} starts with a keyframe",
                g.gop_no
            );
            offset += g.len;
            frames += g.frames;
        }
        assert_eq!(
            offset, seg.bytes,
            "segment {} holds only indexed GOPs",
            seg.seq
        );
        assert_eq!(frames, seg.frames, "segment {} frame count", seg.seq);
    }
    for w in gops.windows(2) {
        assert!(w[0].gop_no < w[1].gop_no && w[0].start_us < w[1].start_us);
    }
    gops
}

pub fn all_gops(store: &Store, cam: &Camera) -> Vec<GopRow> {
    store.gops_in_range(&cam.id, i64::MIN, i64::MAX).unwrap()
}

pub fn all_gaps(store: &Store, cam: &Camera) -> Vec<GapRow> {
    store.gaps(&cam.id, i64::MIN, i64::MAX).unwrap()
}

// ----- scripted cameras -----

/// What a scripted session does next.
#[derive(Clone)]
pub enum Step {
    /// Frames delivered at once.
    Frames(Vec<SourceFrame>),
    /// The codec parameters change with the next frame.
    Params(TrackParams),
    /// Nothing arrives for this long (tokio time).
    Sleep(Duration),
    /// The session fails with an RTSP error.
    Fail(String),
    /// The camera closes the stream.
    End,
    /// The camera keeps the session open and sends nothing more.
    Hold,
}

/// One connection attempt.
pub enum Attempt {
    /// The camera cannot be reached.
    Refuse(String),
    /// The camera plays these steps with these parameters.
    Play(TrackParams, Vec<Step>),
}

pub fn refuse() -> Attempt {
    Attempt::Refuse("connection refused".into())
}

pub fn play(steps: Vec<Step>) -> Attempt {
    Attempt::Play(h264_params(1), steps)
}

/// An [`Opener`] that answers each connection attempt from a script; after the script it
/// refuses every attempt (the camera went offline).
pub struct ScriptedCamera {
    attempts: Mutex<VecDeque<Attempt>>,
    opens: Mutex<Vec<tokio::time::Instant>>,
    played_out: Arc<tokio::sync::watch::Sender<bool>>,
}

impl ScriptedCamera {
    pub fn new(attempts: Vec<Attempt>) -> Arc<Self> {
        let empty = attempts.is_empty();
        Arc::new(Self {
            attempts: Mutex::new(attempts.into()),
            opens: Mutex::new(Vec::new()),
            played_out: Arc::new(tokio::sync::watch::channel(empty).0),
        })
    }

    /// Waits until the last scripted attempt was refused or its session reached its end.
    pub async fn played_out(&self) {
        let mut rx = self.played_out.subscribe();
        rx.wait_for(|done| *done).await.unwrap();
    }

    /// Time from the first connection attempt to each one.
    pub fn opens(&self) -> Vec<Duration> {
        let opens = self.opens.lock().unwrap();
        opens.iter().map(|t| *t - opens[0]).collect()
    }
}

impl Opener for ScriptedCamera {
    fn open<'a>(
        &'a self,
        _source: &'a Source,
    ) -> BoxFuture<'a, Result<Box<dyn FrameSource>, IngestError>> {
        Box::pin(async move {
            self.opens.lock().unwrap().push(tokio::time::Instant::now());
            let (next, last) = {
                let mut a = self.attempts.lock().unwrap();
                let next = a.pop_front();
                (next, a.is_empty())
            };
            match next {
                None => Err(IngestError::Connect("camera offline".into())),
                Some(Attempt::Refuse(why)) => {
                    if last {
                        self.played_out.send_replace(true);
                    }
                    Err(IngestError::Connect(why))
                }
                Some(Attempt::Play(params, steps)) => {
                    let s: Box<dyn FrameSource> = Box::new(ScriptedSession {
                        steps: steps.into(),
                        params,
                        new_params: false,
                        done: last.then(|| self.played_out.clone()),
                    });
                    Ok(s)
                }
            }
        })
    }
}

struct ScriptedSession {
    steps: VecDeque<Step>,
    params: TrackParams,
    new_params: bool,
    done: Option<Arc<tokio::sync::watch::Sender<bool>>>,
}

impl ScriptedSession {
    fn finish(&self) {
        if let Some(d) = &self.done {
            d.send_replace(true);
        }
    }
}

impl FrameSource for ScriptedSession {
    fn clock_rate(&self) -> u32 {
        90_000
    }

    fn next_frame(&mut self) -> BoxFuture<'_, Option<Result<SourceFrame, IngestError>>> {
        Box::pin(async move {
            loop {
                match self.steps.front_mut() {
                    Some(Step::Frames(frames)) if !frames.is_empty() => {
                        let mut f = frames.remove(0);
                        f.new_params |= std::mem::take(&mut self.new_params);
                        return Some(Ok(f));
                    }
                    Some(Step::Frames(_)) => {}
                    Some(Step::Params(p)) => {
                        self.params = p.clone();
                        self.new_params = true;
                    }
                    Some(Step::Sleep(d)) => {
                        let d = *d;
                        // Popped only once slept: a timeout that drops this future mid-sleep
                        // sleeps again on the next call, as a silent camera would.
                        tokio::time::sleep(d).await;
                    }
                    Some(Step::Fail(why)) => {
                        let why = why.clone();
                        self.steps.clear();
                        self.finish();
                        return Some(Err(IngestError::Rtsp(why)));
                    }
                    Some(Step::End) | None => {
                        self.finish();
                        return None;
                    }
                    Some(Step::Hold) => {
                        self.finish();
                        return std::future::pending().await;
                    }
                }
                self.steps.pop_front();
            }
        })
    }

    fn params(&self) -> Result<TrackParams, IngestError> {
        Ok(self.params.clone())
    }
}

// ----- live viewers -----

/// A live hub with room for every frame these tests send, so no viewer lags while the test
/// waits.
pub fn hub() -> Arc<LiveHub> {
    Arc::new(LiveHub::with_limits(LiveLimits {
        queue: 1024,
        ..LiveLimits::default()
    }))
}

/// Events until the viewer has had `frames` fragments (the recorder publishes them as fast as
/// the scripted camera delivers them, without tokio's clock moving).
pub async fn until_frames(v: &mut Viewer, frames: usize) -> Vec<ViewerEvent> {
    let mut out = Vec::new();
    let mut n = 0;
    while n < frames {
        let ev = v.next().await.expect("the feed ended");
        n += usize::from(matches!(ev, ViewerEvent::Fragment(_)));
        out.push(ev);
    }
    out
}

/// Everything the viewer has been sent so far.
pub fn received(v: &mut Viewer) -> Vec<ViewerEvent> {
    let mut out = Vec::new();
    while let Some(Some(ev)) = futures::FutureExt::now_or_never(v.next()) {
        out.push(ev);
    }
    out
}

/// The states (`name:message`) and inits (`initN`) among `evs`, in order.
pub fn states(evs: &[ViewerEvent]) -> Vec<String> {
    viewer_states(evs, |s| format!("{}:{}", s.name(), s.message()))
}

/// [`states`] with the states' names only.
pub fn state_names(evs: &[ViewerEvent]) -> Vec<String> {
    viewer_states(evs, |s| s.name().to_owned())
}

fn viewer_states(evs: &[ViewerEvent], state: impl Fn(&LiveState) -> String) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match e {
            ViewerEvent::State(s) => Some(state(s)),
            ViewerEvent::Init(i) => Some(format!("init{}", i.generation)),
            _ => None,
        })
        .collect()
}

/// The fragments among `evs`.
pub fn fragments(evs: &[ViewerEvent]) -> Vec<&LiveFragment> {
    evs.iter()
        .filter_map(|e| match e {
            ViewerEvent::Fragment(f) => Some(f),
            _ => None,
        })
        .collect()
}

// ----- signing -----

/// A CA made in-process (its certificate, PEM), and a signing identity it issued.
pub fn signing_identity() -> (SigningIdentity, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "vigil-media test CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert_pem = p.self_signed(&key).unwrap().pem();
    let id = SigningIdentity::issue(
        &cert_pem,
        &key.serialize_pem(),
        "rec-test",
        Duration::from_secs(86400),
    )
    .unwrap();
    (id, cert_pem)
}

// ----- the recording rig -----

/// A wall clock that starts at a given time and then follows tokio's clock, so the paused
/// clock of a test moves both.
pub struct TestClock {
    start_us: i64,
    pub anchor: tokio::time::Instant,
    runtime: tokio::runtime::Handle,
}

impl TestClock {
    /// Must be called inside the test's runtime.
    pub fn new(start_us: i64) -> Self {
        Self {
            start_us,
            anchor: tokio::time::Instant::now(),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl WallClock for TestClock {
    fn now_us(&self) -> i64 {
        // The recorder's writer thread reads this too: outside the runtime, tokio's clock
        // would be the system's.
        let _rt = self.runtime.enter();
        self.start_us + (tokio::time::Instant::now() - self.anchor).as_micros() as i64
    }
}

/// What the recorder told its observer (the evidence ledger's view of the recording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Opened(i64),
    Fragment(i64),
    Closed(i64),
    Gap(i64, i64, String),
}

struct Witness(Arc<Mutex<Vec<Seen>>>);

impl SegmentObserver for Witness {
    fn segment_opened(&mut self, seg: &SegmentWriter, _init: &[u8]) {
        self.0.lock().unwrap().push(Seen::Opened(seg.seq));
    }
    fn fragment_written(&mut self, row: &GopRow) {
        self.0.lock().unwrap().push(Seen::Fragment(row.gop_no));
    }
    fn segment_closed(&mut self, seq: i64, _len: u64) {
        self.0.lock().unwrap().push(Seen::Closed(seq));
    }
    fn gap(&mut self, start_us: i64, end_us: i64, reason: &str) {
        self.0
            .lock()
            .unwrap()
            .push(Seen::Gap(start_us, end_us, reason.into()));
    }
}

/// A real store with one camera, recorded by scripted cameras on tokio's paused clock.
///
/// The wall clock reads [`Rig::at`]`(0.0)` when the rig is made and follows tokio's clock, so
/// a session opened `s` seconds later starts at `at(s)` on the camera timeline.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub cam: Camera,
    pub clock: Arc<TestClock>,
    pub settings: RecorderSettings,
    pub space: FreeSpace,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Rig {
    /// Must be called inside the test's runtime.
    pub fn new() -> Self {
        let (dir, store, cam) = store_with_camera();
        // Ten seconds after the camera's time origin: whole microseconds of whole ticks, so
        // every expected time below is exact.
        let clock = Arc::new(TestClock::new(cam.time_origin_us + 10_000_000));
        let space: FreeSpace = Arc::new(|store: &Store, needed: u64| {
            free_space(store, needed, &|_, _| Ok(()), None, Urgency::Emergency)
                .map(|r| r.bytes_freed)
                .unwrap_or(0)
        });
        Self {
            dir,
            store: Arc::new(store),
            cam,
            clock,
            settings: RecorderSettings {
                segment_duration: Duration::from_secs(3600),
                inactivity_timeout: Duration::from_secs(5),
                max_backoff: Duration::from_secs(8),
            },
            space,
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The tokio instant `secs` seconds after the rig was made.
    pub fn when(&self, secs: f64) -> tokio::time::Instant {
        self.clock.anchor + Duration::from_secs_f64(secs)
    }

    /// The camera-timeline instant (Unix µs) `secs` seconds after the rig was made.
    pub fn at(&self, secs: f64) -> i64 {
        self.cam.time_origin_us + 10_000_000 + (secs * 1e6).round() as i64
    }

    pub fn start(&self, camera: &Arc<ScriptedCamera>) -> RecorderHandle {
        recorder::start_with(
            self.store.clone(),
            self.cam.clone(),
            self.settings.clone(),
            Some(Box::new(Witness(self.seen.clone()))),
            self.space.clone(),
            RecorderEnv {
                opener: camera.clone(),
                clock: self.clock.clone(),
                // Ticks only at the start: see `RecorderEnv::tick_interval`. An hour is long
                // enough never to come up, and would show as a jump if it did.
                tick_interval: Duration::from_secs(3600),
                live: None,
            },
        )
        .unwrap()
    }

    /// Starts a recorder on `attempts`, waits until the script has played out and stops it.
    pub async fn record(&self, attempts: Vec<Attempt>) -> Arc<ScriptedCamera> {
        let camera = ScriptedCamera::new(attempts);
        let handle = self.start(&camera);
        camera.played_out().await;
        handle.stop().await;
        camera
    }

    /// Waits (in real time, with tokio's clock held) until the writer has indexed `n` GOPs.
    pub async fn wait_for_gops(&self, n: usize) {
        let (store, cam) = (self.store.clone(), self.cam.clone());
        // A blocking task keeps the paused clock from jumping ahead while the writer thread
        // catches up.
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while all_gops(&store, &cam).len() < n {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the writer did not index {n} GOPs"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        })
        .await
        .unwrap();
    }

    pub fn gops(&self) -> Vec<GopRow> {
        all_gops(&self.store, &self.cam)
    }

    pub fn gaps(&self) -> Vec<GapRow> {
        all_gaps(&self.store, &self.cam)
    }

    pub fn segments(&self) -> Vec<SegmentRow> {
        self.store.segments(&self.cam.id).unwrap()
    }

    pub fn seen_gaps(&self) -> Vec<GapRow> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| match s {
                Seen::Gap(start_us, end_us, reason) => Some(GapRow {
                    start_us: *start_us,
                    end_us: *end_us,
                    reason: reason.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// GOP start times in seconds after [`Rig::at`]`(0.0)`.
    pub fn gop_starts(&self) -> Vec<f64> {
        self.gops()
            .iter()
            .map(|g| (g.start_us - self.at(0.0)) as f64 / 1e6)
            .collect()
    }

    pub fn gap(&self, from: f64, to: f64, reason: &str) -> GapRow {
        GapRow {
            start_us: self.at(from),
            end_us: self.at(to),
            reason: reason.into(),
        }
    }
}
