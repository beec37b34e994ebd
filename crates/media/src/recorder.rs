//! One camera stream end to end: a supervisor that (re)connects with back-off, a writer thread
//! that assembles GOPs into fragments and segment files, and the status the CLI shows.
//!
//! Network and disk are decoupled by a bounded channel so a slow fsync never stalls RTSP
//! reading for long, and one camera's failure never touches another's task or thread.
//!
//! A recorder runs one stream: a camera's main stream ([`start`], [`start_with`]) or, with
//! [`start_stream`], its secondary stream, either stored like the main one or only fed to live
//! viewers ([`Storage::LiveOnly`]: no writer thread at all, nothing on disk).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::fmp4::{self, TrackParams};
use crate::gop::{Frame, gop_samples};
use crate::ingest::{self, IngestError, IngestEvent, Opener, RetinaOpener, Source};
use crate::live::{FeedKey, LiveHub, LivePublisher, LiveState};
use crate::store::{Camera, CameraStatus, SegmentWriter, Store, StoreError, now_us, ticks_to_us};

/// Hooks for what happens to stored video; the evidence ledger implements this.
pub trait SegmentObserver: Send {
    fn segment_opened(&mut self, _seg: &SegmentWriter, _init: &[u8]) {}
    fn fragment_written(&mut self, _row: &crate::store::GopRow) {}
    fn segment_closed(&mut self, _seg_seq: i64, _len: u64) {}
    fn gap(&mut self, _start_us: i64, _end_us: i64, _reason: &str) {}
    fn tick(&mut self) {}
}

/// Frees at least the given number of bytes of old video and returns how much it freed.
pub type FreeSpace = Arc<dyn Fn(&Store, u64) -> u64 + Send + Sync>;

/// Settings that apply to every recorder.
#[derive(Debug, Clone)]
pub struct RecorderSettings {
    pub segment_duration: Duration,
    pub inactivity_timeout: Duration,
    pub max_backoff: Duration,
}

/// Wall-clock time as the recorder reads it: where a new session starts on the camera timeline,
/// where a gap left open at a clean stop ends, and when the run stopped. Back-off, the
/// inactivity timeout and the status ticks use tokio's clock instead, which tests pause and
/// advance; the status timestamp stays on the system clock because other processes compare it
/// with theirs.
pub trait WallClock: Send + Sync {
    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> i64;
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_us(&self) -> i64 {
        now_us()
    }
}

/// What a recorder talks to besides the store: the cameras and the wall clock. The default is
/// the real thing (RTSP with retina, the system clock); tests script both (see
/// docs/architecture.md, "Testing the recording core").
#[derive(Clone)]
pub struct RecorderEnv {
    pub opener: Arc<dyn Opener>,
    pub clock: Arc<dyn WallClock>,
    /// How often the writer flushes the status, retries closing segments and ticks the
    /// observer (one second). The writer thread runs in real time, so on a paused tokio clock
    /// that races ahead, ticks would fill the writer's channel and make the recorder wait for
    /// the thread; tests lengthen the interval instead.
    pub tick_interval: Duration,
    /// Where live viewers get the stream's frames (the same ingest that is recorded); none
    /// when nobody watches live in this process.
    pub live: Option<Arc<LiveHub>>,
}

/// What becomes of a recorder's frames besides its live feed.
pub enum Storage {
    /// Stored: segment files, index rows, gaps and recorder runs under the stream's id, each
    /// segment, fragment and gap told to `observer` (the evidence ledger); `space` frees room
    /// on a full volume.
    Recorded {
        observer: Option<Box<dyn SegmentObserver>>,
        space: FreeSpace,
    },
    /// Live viewers only (a camera's secondary stream in `live` mode): no writer thread,
    /// nothing written to disk or the index but the stream's status, whose state is `live`
    /// while frames flow.
    LiveOnly,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Storage::Recorded { .. } => "Recorded",
            Storage::LiveOnly => "LiveOnly",
        })
    }
}

impl Default for RecorderEnv {
    fn default() -> Self {
        Self {
            opener: Arc::new(RetinaOpener),
            clock: Arc::new(SystemClock),
            tick_interval: Duration::from_secs(1),
            live: None,
        }
    }
}

/// A running recorder; dropping it does not stop it, call [`RecorderHandle::stop`].
pub struct RecorderHandle {
    pub camera_id: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RecorderHandle {
    /// Stops ingest, writes the GOP in progress and closes the segment cleanly.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Shared status, flushed to the database by the writer thread.
#[derive(Default)]
struct Live {
    status: CameraStatus,
    window_start: Option<Instant>,
    window_bytes: u64,
    window_frames: u64,
}

/// Starts recording a camera over RTSP.
pub fn start(
    store: Arc<Store>,
    camera: Camera,
    settings: RecorderSettings,
    observer: Option<Box<dyn SegmentObserver>>,
    space: FreeSpace,
) -> Result<RecorderHandle, StoreError> {
    start_with(
        store,
        camera,
        settings,
        observer,
        space,
        RecorderEnv::default(),
    )
}

/// Starts recording a camera whose sessions come from `env.opener`.
pub fn start_with(
    store: Arc<Store>,
    camera: Camera,
    settings: RecorderSettings,
    observer: Option<Box<dyn SegmentObserver>>,
    space: FreeSpace,
    env: RecorderEnv,
) -> Result<RecorderHandle, StoreError> {
    let feed = FeedKey::main(&camera.id);
    start_stream(
        store,
        camera,
        feed,
        Storage::Recorded { observer, space },
        settings,
        env,
    )
}

/// Starts a recorder for one stream of a camera. `camera` describes the stream: its id names
/// the status row and, when stored, the segments, index rows and ledger; the URL and
/// credentials are the stream's ([`Camera::secondary_camera`] builds one for a secondary
/// stream). The frames go to the live feed `feed` and, per `storage`, to disk.
pub fn start_stream(
    store: Arc<Store>,
    camera: Camera,
    feed: FeedKey,
    storage: Storage,
    settings: RecorderSettings,
    env: RecorderEnv,
) -> Result<RecorderHandle, StoreError> {
    let password = store.camera_password(&camera.id)?;
    let source = Source {
        stream_id: camera.id.clone(),
        tls_pin: camera.tls_pin.clone(),
        url: camera.url.clone(),
        username: camera.username.clone(),
        password,
        inactivity_timeout: settings.inactivity_timeout,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let live = Arc::new(Mutex::new(Live::default()));
    let task = tokio::spawn(supervise(
        store,
        camera.clone(),
        feed,
        storage,
        settings,
        source,
        stop_rx,
        live,
        env,
    ));
    Ok(RecorderHandle {
        camera_id: camera.id,
        stop: stop_tx,
        task,
    })
}

/// The status state of a stream whose frames flow: `recording`, or `live` for a stream that
/// is only fed to live viewers.
fn flowing_state(storage: &Storage) -> &'static str {
    match storage {
        Storage::Recorded { .. } => "recording",
        Storage::LiveOnly => "live",
    }
}

fn set_state(live: &Mutex<Live>, state: &str, error: Option<String>) {
    let flowing = matches!(state, "recording" | "live");
    let mut l = live.lock().unwrap_or_else(|p| p.into_inner());
    l.status.state = state.into();
    if error.is_some() || flowing {
        l.status.last_error = error;
    }
    if !flowing {
        l.status.bitrate_bps = 0.0;
        l.status.fps = 0.0;
    }
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    store: Arc<Store>,
    camera: Camera,
    feed: FeedKey,
    storage: Storage,
    settings: RecorderSettings,
    mut source: Source,
    stop: watch::Receiver<bool>,
    live: Arc<Mutex<Live>>,
    env: RecorderEnv,
) {
    let flowing = flowing_state(&storage);
    // The last tick written, shared with the session so a new session continues the timeline.
    let timeline = Arc::new(Mutex::new(TimelineState::default()));
    // Stored: a writer thread behind a few GOPs of slack, so a stalled disk back-pressures
    // this stream's RTSP reading instead of growing memory without bound. Live only: none.
    let (mut tx, writer) = match storage {
        Storage::Recorded { observer, space } => {
            let (tx, rx) = mpsc::channel::<WriterMsg>(16);
            let store = store.clone();
            let camera = camera.clone();
            let live = live.clone();
            let timeline = timeline.clone();
            let seg = settings.segment_duration;
            let clock = env.clock.clone();
            let writer = std::thread::Builder::new()
                .name(format!("writer-{}", camera.name))
                .spawn(move || {
                    writer_loop(
                        store, camera, seg, rx, live, timeline, observer, space, clock,
                    )
                })
                .expect("spawn writer thread");
            (Some(tx), Some(writer))
        }
        Storage::LiveOnly => (None, None),
    };
    // Told to end at the stop, so that without a writer no status write of the ticker's lands
    // after the final one.
    let (ticker_stop, mut ticker_stopped) = watch::channel(false);
    let ticker = {
        let tx = tx.clone();
        let period = env.tick_interval;
        let (store, camera_id, live) = (store.clone(), camera.id.clone(), live.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut ticks = 0u64;
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = ticker_stopped.changed() => break,
                }
                match &tx {
                    Some(tx) => {
                        if tx.send(WriterMsg::Tick).await.is_err() {
                            break;
                        }
                    }
                    // Without a writer the status is flushed from here, as often as the
                    // writer does it.
                    None => {
                        ticks += 1;
                        if ticks.is_multiple_of(STATUS_EVERY_TICKS) {
                            update_rates(&live);
                            let (store, camera_id, live) =
                                (store.clone(), camera_id.clone(), live.clone());
                            let _ = tokio::task::spawn_blocking(move || {
                                flush_status(&store, &camera_id, &live)
                            })
                            .await;
                        }
                    }
                }
            }
        })
    };
    // Live viewers share this ingest; the publisher says `connecting` now, `live` with each
    // session's first frame and `stopped` when dropped at the end.
    let viewers: Option<Arc<LivePublisher>> =
        env.live.as_ref().map(|hub| Arc::new(hub.publisher(&feed)));
    let mut attempt = 0u32;
    set_state(&live, "connecting", None);
    flush_status(&store, &camera.id, &live);
    loop {
        if *stop.borrow() {
            break;
        }
        let (ev_tx, mut ev_rx) = mpsc::channel::<IngestEvent>(256);
        let forward = {
            let tx = tx.clone();
            let live = live.clone();
            let viewers = viewers.clone();
            let origin = camera.time_origin_us;
            let counters = crate::counters::stream(&camera.id);
            tokio::spawn(async move {
                let mut got_frame = false;
                // Frames are grouped into GOPs here so the writer thread wakes once per GOP,
                // not once per frame: at 64 cameras that is the difference between ~60 and
                // ~2000 thread wake-ups a second.
                let mut pending: Vec<Frame> = Vec::new();
                while let Some(ev) = ev_rx.recv().await {
                    let msg = match ev {
                        IngestEvent::Params(p) => {
                            if let Some(v) = &viewers {
                                v.params(&p);
                            }
                            let Some(tx) = &tx else {
                                // Nobody else reads the parameters: the status shows them.
                                live_params(&live, &p);
                                continue;
                            };
                            if !pending.is_empty() {
                                let gop = std::mem::take(&mut pending);
                                if tx
                                    .send(WriterMsg::Gop {
                                        frames: gop,
                                        next_pts: None,
                                    })
                                    .await
                                    .is_err()
                                {
                                    break;
                                }
                            }
                            WriterMsg::Params(p)
                        }
                        IngestEvent::Frame(f) => {
                            if !got_frame {
                                got_frame = true;
                                set_state(&live, flowing, None);
                            }
                            live_frame(&live, origin, &f);
                            counters.frame_received();
                            if let Some(v) = &viewers {
                                v.frame(&f);
                            }
                            if tx.is_none() {
                                continue;
                            }
                            // Before the first keyframe nothing can be decoded: drop it.
                            if pending.is_empty() && !f.is_key {
                                continue;
                            }
                            if !f.is_key || pending.is_empty() {
                                pending.push(f);
                                continue;
                            }
                            let gop = std::mem::replace(&mut pending, vec![f]);
                            let next_pts = pending[0].pts;
                            WriterMsg::Gop {
                                frames: gop,
                                next_pts: Some(next_pts),
                            }
                        }
                    };
                    let Some(tx) = &tx else { continue };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
                if let Some(tx) = &tx
                    && !pending.is_empty()
                {
                    let _ = tx
                        .send(WriterMsg::Gop {
                            frames: pending,
                            next_pts: None,
                        })
                        .await;
                }
                got_frame
            })
        };
        let origin = camera.time_origin_us;
        let tl = timeline.clone();
        let clock = env.clock.clone();
        let start_ticks = move || {
            let now_ticks = (clock.now_us() - origin).max(0) * 90 / 1000;
            let last = tl.lock().unwrap_or_else(|p| p.into_inner()).last_end_ticks;
            now_ticks.max(last)
        };
        // Each connection logs in with the password committed now: a password rotation
        // (docs/design/password-rotation.md) commits while sessions run, and the session that
        // follows must use the new one, not the one this recorder started with.
        match store.camera_password(&camera.id) {
            Ok(password) => source.password = password,
            Err(e) => {
                tracing::error!(camera = %camera.name, error = %e, "cannot read the camera's password; connecting with the one read before")
            }
        }
        let result =
            ingest::run_session(&*env.opener, &source, start_ticks, &ev_tx, stop.clone()).await;
        drop(ev_tx);
        let got_frame = forward.await.unwrap_or(false);
        if let Some(tx) = &tx {
            let gap_reason = result.as_ref().err().map(IngestError::gap_reason);
            let _ = tx.send(WriterMsg::SessionEnded(gap_reason)).await;
        }
        let err = match result {
            Ok(()) => break,
            Err(e) => e,
        };
        if got_frame {
            attempt = 0;
        }
        let delay = ingest::backoff(attempt, settings.max_backoff);
        attempt = attempt.saturating_add(1);
        let permanent = err.is_permanent();
        if !permanent {
            crate::counters::stream(&camera.id).reconnect();
        }
        tracing::warn!(camera = %camera.name, error = %err, retry_in = ?delay, "camera session ended");
        set_state(
            &live,
            if permanent { "failed" } else { "reconnecting" },
            Some(err.to_string()),
        );
        if let Some(v) = &viewers {
            v.set_state(LiveState::Reconnecting(err.to_string()));
        }
        flush_status(&store, &camera.id, &live);
        let mut stop2 = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(if permanent { Duration::from_secs(3600) } else { delay }) => {}
            _ = stop2.changed() => break,
        }
    }
    let _ = ticker_stop.send(true);
    if writer.is_some() {
        ticker.abort();
    } else {
        // Its status write in flight, if any, finishes before the last one below.
        let _ = ticker.await;
    }
    if let Some(tx) = tx.take() {
        let _ = tx.send(WriterMsg::Shutdown).await;
    }
    if let Some(writer) = writer {
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
    drop(viewers);
    set_state(&live, "stopped", None);
    flush_status(&store, &camera.id, &live);
}

fn flush_status(store: &Store, camera_id: &str, live: &Mutex<Live>) {
    let mut status = live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .status
        .clone();
    status.updated_us = now_us();
    if let Err(e) = store.put_status(camera_id, &status) {
        tracing::warn!(error = %e, "cannot store camera status");
    }
}

#[derive(Default)]
struct TimelineState {
    last_end_ticks: i64,
}

enum WriterMsg {
    Params(TrackParams),
    /// One GOP in decode order; `next_pts` is the next GOP's first time when known.
    Gop {
        frames: Vec<Frame>,
        next_pts: Option<i64>,
    },
    /// Once a second: status to the database, signing tick.
    Tick,
    /// With the reason of the gap the ending opens; `None` when recording was asked to stop.
    SessionEnded(Option<String>),
    Shutdown,
}

/// Status is for humans and the CLI (stale after 10 s): every third tick (3 s) is enough and
/// keeps database writes per camera low.
const STATUS_EVERY_TICKS: u64 = 3;

/// The codec and picture size of the stream, for its status.
fn live_params(live: &Mutex<Live>, p: &TrackParams) {
    let mut l = live.lock().unwrap_or_else(|e| e.into_inner());
    l.status.codec = Some(p.rfc6381.clone());
    l.status.resolution = Some(format!("{}x{}", p.width, p.height));
}

/// Bit and frame rates over the window since the last update (at least a second).
fn update_rates(live: &Mutex<Live>) {
    let mut l = live.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(start) = l.window_start {
        let secs = start.elapsed().as_secs_f64();
        if secs >= 1.0 {
            l.status.bitrate_bps = l.window_bytes as f64 * 8.0 / secs;
            l.status.fps = l.window_frames as f64 / secs;
            l.window_start = Some(Instant::now());
            l.window_bytes = 0;
            l.window_frames = 0;
        }
    }
}

/// Per-frame status bookkeeping, done on the ingest side.
fn live_frame(live: &Mutex<Live>, origin_us: i64, f: &Frame) {
    let mut l = live.lock().unwrap_or_else(|e| e.into_inner());
    l.window_start.get_or_insert_with(Instant::now);
    l.window_bytes += f.data.len() as u64;
    l.window_frames += 1;
    l.status.last_frame_us = Some(origin_us + ticks_to_us(f.pts.max(0) as u64));
}

struct WriterState {
    store: Arc<Store>,
    camera: Camera,
    segment_duration: Duration,
    params: Option<TrackParams>,
    init: Option<Vec<u8>>,
    segment: Option<SegmentWriter>,
    segment_opened: Option<Instant>,
    pending: Vec<Frame>,
    /// Wall time (µs) of the end of the last written GOP, for gap records.
    last_end_us: Option<i64>,
    gap_open: Option<(i64, String)>,
    observer: Option<Box<dyn SegmentObserver>>,
    space: FreeSpace,
    clock: Arc<dyn WallClock>,
    timeline: Arc<Mutex<TimelineState>>,
    live: Arc<Mutex<Live>>,
    last_frame_dur: u32,
    /// Next GOP number, loaded from the index once.
    next_gop: Option<i64>,
    /// Segments whose file is complete but whose index row could not be marked closed yet.
    unclosed: Vec<i64>,
}

#[allow(clippy::too_many_arguments)]
fn writer_loop(
    store: Arc<Store>,
    camera: Camera,
    segment_duration: Duration,
    mut rx: mpsc::Receiver<WriterMsg>,
    live: Arc<Mutex<Live>>,
    timeline: Arc<Mutex<TimelineState>>,
    observer: Option<Box<dyn SegmentObserver>>,
    space: FreeSpace,
    clock: Arc<dyn WallClock>,
) {
    // Until this run's first GOP, the camera has been unrecorded since its last stored video;
    // that GOP closes the gap, with how the previous run ended as the reason.
    let gap_open = match store.begin_recorder_run(&camera.id) {
        Ok(interruption) => interruption.map(|i| (i.since_us, i.reason)),
        Err(e) => {
            tracing::error!(camera = %camera.name, error = %e, "cannot tell how the previous recording ended; its gap is not stored");
            None
        }
    };
    let mut w = WriterState {
        store,
        camera,
        segment_duration,
        params: None,
        init: None,
        segment: None,
        segment_opened: None,
        pending: Vec::new(),
        last_end_us: None,
        gap_open,
        observer,
        space,
        clock,
        timeline,
        live,
        last_frame_dur: 3000,
        next_gop: None,
        unclosed: Vec::new(),
    };
    let mut ticks = 0u64;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            WriterMsg::Params(p) => w.on_params(p),
            WriterMsg::Gop { frames, next_pts } => {
                w.pending = frames;
                w.flush_gop(next_pts);
            }
            WriterMsg::Tick => {
                ticks += 1;
                if !w.unclosed.is_empty() {
                    w.retry_unclosed();
                }
                if ticks.is_multiple_of(STATUS_EVERY_TICKS) {
                    update_rates(&w.live);
                    flush_status(&w.store, &w.camera.id, &w.live);
                }
                if ticks.is_multiple_of(5)
                    && let Some(o) = w.observer.as_mut()
                {
                    o.tick();
                }
            }
            WriterMsg::SessionEnded(reason) => w.on_session_end(reason),
            WriterMsg::Shutdown => {
                w.on_session_end(None);
                break;
            }
        }
    }
    w.on_session_end(None);
    w.end_run();
    w.retry_unclosed();
    for seq in &w.unclosed {
        tracing::error!(camera = %w.camera.name, seq, "segment left marked open in the index; start-up recovery will close it");
    }
}

impl WriterState {
    fn on_params(&mut self, p: TrackParams) {
        if self.params.as_ref() == Some(&p) {
            return;
        }
        // New parameters apply from the next keyframe; the GOP in progress keeps the old ones.
        self.flush_gop(None);
        self.close_segment();
        match fmp4::init_segment(&p) {
            Ok(init) => {
                live_params(&self.live, &p);
                self.init = Some(init);
                self.params = Some(p);
            }
            Err(e) => {
                tracing::error!(camera = %self.camera.name, error = %e, "cannot build init segment");
                self.init = None;
                self.params = None;
            }
        }
    }

    /// `gap_reason` is why the camera's session ended (`None`: recording was asked to stop,
    /// which opens no gap of its own; the next run stores it).
    fn on_session_end(&mut self, gap_reason: Option<String>) {
        self.flush_gop(None);
        self.close_segment();
        if let (Some(end), Some(reason)) = (self.last_end_us, gap_reason) {
            // The first reason stands: reconnect attempts that fail afterwards are part of
            // the same outage.
            self.gap_open.get_or_insert((end, reason));
        }
        self.params = None;
        self.init = None;
    }

    /// A clean end of the run: a gap still open (camera offline, or nothing recorded since
    /// the start) is stored up to now, and the run is marked stopped so the next one knows
    /// the interval after this is a stop, not a crash.
    fn end_run(&mut self) {
        let end = self.clock.now_us();
        if let Some((start, reason)) = self.gap_open.take()
            && end > start
        {
            if let Err(e) = self.store.record_gap(&self.camera.id, start, end, &reason) {
                tracing::error!(error = %e, "cannot record gap");
            }
            if let Some(o) = self.observer.as_mut() {
                o.gap(start, end, &reason);
            }
        }
        if let Err(e) = self.store.end_recorder_run_at(&self.camera.id, end) {
            tracing::error!(camera = %self.camera.name, error = %e, "cannot mark the recording stopped; the next start will call this an unclean shutdown");
        }
    }

    fn close_segment(&mut self) {
        if let Some(seg) = self.segment.take() {
            let (seq, len) = (seg.seq, seg.len());
            drop(seg);
            let camera_id = self.camera.id.clone();
            if let Err(e) = self.with_space(|s| s.store.close_segment(&camera_id, seq)) {
                // The file is complete; only its index row still says "open". Retried on every
                // tick so a full volume does not leave it open after a clean shutdown.
                tracing::error!(camera = %self.camera.name, seq, error = %e, "cannot mark the segment closed yet; will retry");
                self.unclosed.push(seq);
            }
            if let Some(o) = self.observer.as_mut() {
                o.segment_closed(seq, len);
            }
        }
        self.segment_opened = None;
    }

    /// Retries closing segments whose index update failed earlier.
    fn retry_unclosed(&mut self) {
        let camera_id = self.camera.id.clone();
        let store = self.store.clone();
        self.unclosed
            .retain(|&seq| store.close_segment(&camera_id, seq).is_err());
    }

    fn ensure_segment(&mut self, start_us: i64) -> Result<(), StoreError> {
        let rotate = self
            .segment_opened
            .is_some_and(|t| t.elapsed() >= self.segment_duration);
        if rotate {
            self.close_segment();
        }
        if self.segment.is_some() {
            return Ok(());
        }
        let (Some(init), Some(params)) = (self.init.clone(), self.params.as_ref()) else {
            return Err(StoreError::InvalidCamera("no codec parameters yet".into()));
        };
        let codec = params.rfc6381.clone();
        let seg =
            self.with_space(|s| s.store.begin_segment(&s.camera.id, &init, &codec, start_us))?;
        if let Some(o) = self.observer.as_mut() {
            o.segment_opened(&seg, &init);
        }
        self.segment = Some(seg);
        self.segment_opened = Some(Instant::now());
        Ok(())
    }

    /// Keeps room on the volume for the next GOPs and the index before writing, so the
    /// database never starves behind the media: a full volume costs the oldest video, not
    /// the newest or the index.
    fn ensure_headroom(&mut self, gop_bytes: u64) {
        let Some(free) = crate::retention::free_bytes(self.store.root()) else {
            return;
        };
        let floor = gop_bytes * 2 + 512 * 1024;
        if free >= floor {
            return;
        }
        let freed = (self.space)(
            &self.store,
            floor - free + crate::retention::emergency_amount(self.store.root()) / 2,
        );
        tracing::warn!(camera = %self.camera.name, free, freed, "disk nearly full; deleted the oldest video");
        let mut l = self.live.lock().unwrap_or_else(|e| e.into_inner());
        l.status.last_error = Some(format!(
            "disk full: only {free} bytes free; deleted {freed} bytes of the oldest video to keep recording"
        ));
    }

    /// Runs a write, and when the disk is full frees space by retention and tries once more.
    fn with_space<T>(
        &mut self,
        mut op: impl FnMut(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match op(self) {
            Err(e) if e.is_disk_full() => {
                let needed = crate::retention::emergency_amount(self.store.root());
                let mut freed = (self.space)(&self.store, needed);
                if freed == 0 && self.segment.as_ref().is_some_and(|s| !s.is_empty()) {
                    // Only the open segment is left: close it so the next pass may delete it,
                    // keeping newer video recording rather than stopping.
                    self.close_segment();
                    freed = (self.space)(&self.store, needed);
                }
                tracing::warn!(camera = %self.camera.name, error = %e, freed, "disk full; freed space by deleting the oldest video");
                let mut l = self.live.lock().unwrap_or_else(|e| e.into_inner());
                l.status.last_error = Some(format!(
                    "disk full: freed {freed} bytes of the oldest video to keep recording"
                ));
                drop(l);
                op(self)
            }
            r => r,
        }
    }

    fn flush_gop(&mut self, next_pts: Option<i64>) {
        if self.pending.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut self.pending);
        let g = gop_samples(&frames, next_pts, self.last_frame_dur);
        if let Some(last) = g.samples.last() {
            self.last_frame_dur = last.duration;
        }
        let start_us = self.camera.time_origin_us + ticks_to_us(g.base_decode_time);
        let duration_us = ticks_to_us(g.duration);
        if let Some((gap_start, reason)) = self.gap_open.take()
            && start_us > gap_start
        {
            if let Err(e) = self
                .store
                .record_gap(&self.camera.id, gap_start, start_us, &reason)
            {
                tracing::error!(error = %e, "cannot record gap");
            }
            if let Some(o) = self.observer.as_mut() {
                o.gap(gap_start, start_us, &reason);
            }
        }
        let frame_count = frames.len() as i64;
        self.ensure_headroom(g.data_len);
        let result = self.with_space(|s| {
            s.ensure_segment(start_us)?;
            let gop_no = match s.next_gop {
                Some(n) => n,
                None => s.store.next_gop_no(&s.camera.id)?,
            };
            let header =
                fmp4::fragment_header(gop_no as u32, g.base_decode_time, &g.samples, g.data_len)?;
            let mut pieces: Vec<&[u8]> = Vec::with_capacity(frames.len() + 1);
            pieces.push(&header);
            pieces.extend(frames.iter().map(|f| &f.data[..]));
            let seg = s.segment.as_mut().expect("segment ensured");
            seg.append(
                &s.store,
                &pieces,
                gop_no,
                start_us,
                duration_us,
                frame_count,
            )
        });
        match result {
            Ok(row) => {
                crate::counters::stream(&self.camera.id).frames_written(frame_count as u64);
                self.next_gop = Some(row.gop_no + 1);
                self.last_end_us = Some(start_us + duration_us);
                self.timeline
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .last_end_ticks = (g.base_decode_time + g.duration) as i64;
                if let Some(o) = self.observer.as_mut() {
                    o.fragment_written(&row);
                }
            }
            Err(e) => {
                tracing::error!(camera = %self.camera.name, error = %e, "GOP lost");
                let mut l = self.live.lock().unwrap_or_else(|e| e.into_inner());
                l.status.last_error = Some(format!("GOP lost: {e}"));
                drop(l);
                // The file may be unusable now; start a fresh segment with the next GOP.
                self.close_segment();
                if let Some(end) = self.last_end_us {
                    self.gap_open
                        .get_or_insert((end, format!("write failed: {e}")));
                }
            }
        }
    }
}
