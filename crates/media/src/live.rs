//! Live video for viewers: per camera stream (the main stream and, when the camera has one, its
//! secondary stream), one feed that the stream's recorder publishes into from its one ingest,
//! turned once into one-frame fMP4 fragments that any number of viewers share.
//!
//! A feed keeps what a viewer needs to start at once: the current init segment and the frames
//! since the latest keyframe (the GOP cache, bounded in bytes and frames). The cache holds the
//! recorder's own frame buffers (shared, not copied); a frame becomes a fragment only when
//! someone watches: when it arrives if the feed has viewers, otherwise when a viewer subscribes
//! and takes the cached GOP. A camera nobody watches costs one reference per frame. Subscribing takes,
//! under the feed's lock, the state, the cached GOP and a receiver of what follows, so nothing
//! is missed or repeated in between. What follows goes through a small broadcast queue
//! (about two seconds of frames): publishing never waits for a viewer, and a viewer that falls
//! behind by more than the queue is dropped to the next keyframe and told how many frames it
//! missed ([`ViewerEvent::Skipped`]), never buffered without bound.
//!
//! Times: every fragment carries a decode time that never decreases on the feed (`tfdt`, 90 kHz
//! on the camera timeline) and its composition offset (presentation minus decode time, signed,
//! `trun` version 1), because cameras may send B-frames in decode order with presentation times
//! only. Decode times are rebuilt causally, frame by frame (the recorder's GOP-at-once rule in
//! [`crate::gop`] would delay every frame by a GOP): a keyframe is decoded at its presentation
//! time; any other frame one frame duration after the previous frame, or at its presentation
//! time if that is earlier; always at least one tick after the previous frame. The frame
//! duration is the median spacing of the last presentation times.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::fmp4::{self, SampleInfo, TrackParams};
use crate::gop::Frame;

/// What a feed keeps and queues. The defaults suit cameras up to a few Mbit/s with GOPs of a
/// few seconds; a GOP that does not fit is not cached (viewers joining then wait for the next
/// keyframe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveLimits {
    /// Bytes of fragments kept since the latest keyframe.
    pub gop_bytes: usize,
    /// Frames kept since the latest keyframe.
    pub gop_frames: usize,
    /// Messages queued per viewer (frames and states): about two seconds of a 30 fps camera.
    pub queue: usize,
}

impl Default for LiveLimits {
    fn default() -> Self {
        LiveLimits {
            gop_bytes: 8 << 20,
            gop_frames: 1024,
            queue: 64,
        }
    }
}

/// What a camera's live video is doing, as viewers are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveState {
    /// The recorder is connecting to the camera.
    Connecting,
    /// Frames are flowing.
    Live,
    /// The camera session ended; the recorder tries again. The reason, for people.
    Reconnecting(String),
    /// No recorder runs for this camera in this process (disabled, or not started yet).
    Offline,
    /// The recorder stopped while this viewer was watching (camera disabled or changed,
    /// server shutting down).
    Stopped,
}

impl LiveState {
    /// The state's name on the wire: `connecting`, `live`, `reconnecting`, `offline`, `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            LiveState::Connecting => "connecting",
            LiveState::Live => "live",
            LiveState::Reconnecting(_) => "reconnecting",
            LiveState::Offline => "offline",
            LiveState::Stopped => "stopped",
        }
    }

    /// Why (only `reconnecting` has a reason); empty otherwise.
    pub fn message(&self) -> &str {
        match self {
            LiveState::Reconnecting(why) => why,
            _ => "",
        }
    }
}

/// An init segment (`ftyp`+`moov`) and what a player needs to know before it.
#[derive(Debug, PartialEq, Eq)]
pub struct LiveInit {
    /// Counts the inits of a feed; a fragment belongs to the init of its generation.
    pub generation: u64,
    /// RFC 6381 codec string, e.g. `avc1.4d401e`.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub data: Bytes,
}

/// One frame as one `moof`+`mdat`, built once and shared by every viewer.
#[derive(Debug, Clone)]
pub struct LiveFragment {
    pub data: Bytes,
    pub is_key: bool,
    /// 90 kHz ticks on the camera timeline (`tfdt`); never decreases on a feed.
    pub decode_time: u64,
    /// Presentation minus decode time, in ticks.
    pub composition_offset: i32,
    pub duration: u32,
    /// The fragment's `mfhd` sequence number on its feed.
    pub sequence: u32,
    /// Bytes of the frame itself, at the end of `data`.
    pub frame_len: usize,
    /// The init segment this fragment plays with.
    pub init: Arc<LiveInit>,
}

impl LiveFragment {
    /// The presentation time in ticks.
    pub fn presentation_time(&self) -> i64 {
        self.decode_time as i64 + i64::from(self.composition_offset)
    }
}

/// What a viewer receives, in order.
#[derive(Debug, Clone)]
pub enum ViewerEvent {
    /// The camera's state; sent first and on every change.
    State(LiveState),
    /// A new init segment: sent before the first fragment, and again when the parameters
    /// change or the camera's stream restarts. The next fragment is a keyframe.
    Init(Arc<LiveInit>),
    /// The next frame, in decode order.
    Fragment(LiveFragment),
    /// The viewer fell behind and this many queued messages (frames, mostly) were dropped;
    /// the next fragment is a keyframe.
    Skipped(u64),
}

/// Which of a camera's streams a feed carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Stream {
    /// The camera's main stream (the one it has always).
    #[default]
    Main,
    /// Its secondary stream (typically a lower resolution, for grids), when it has one.
    Secondary,
}

impl Stream {
    /// `main` or `secondary`, as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Main => "main",
            Stream::Secondary => "secondary",
        }
    }
}

/// A feed's key in the hub: the camera's id and which of its streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedKey {
    pub camera_id: String,
    pub stream: Stream,
}

impl FeedKey {
    pub fn new(camera_id: &str, stream: Stream) -> Self {
        FeedKey {
            camera_id: camera_id.to_owned(),
            stream,
        }
    }

    /// The camera's main stream.
    pub fn main(camera_id: &str) -> Self {
        Self::new(camera_id, Stream::Main)
    }

    /// The camera's secondary stream.
    pub fn secondary(camera_id: &str) -> Self {
        Self::new(camera_id, Stream::Secondary)
    }
}

/// What goes through a feed's queue.
#[derive(Debug, Clone)]
enum Event {
    State(LiveState),
    Fragment(LiveFragment),
}

/// The live feeds of every camera stream, keyed by camera id and stream ([`FeedKey`]). One per
/// process, shared by the recorders (publishers) and the API (viewers).
#[derive(Default)]
pub struct LiveHub {
    feeds: Mutex<HashMap<FeedKey, Arc<Feed>>>,
    limits: LiveLimits,
}

impl std::fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHub")
            .field("feeds", &lock(&self.feeds).len())
            .field("limits", &self.limits)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveHub {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(limits: LiveLimits) -> Self {
        LiveHub {
            feeds: Mutex::default(),
            limits,
        }
    }

    fn feed(&self, key: &FeedKey) -> Arc<Feed> {
        lock(&self.feeds)
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Feed::new(self.limits)))
            .clone()
    }

    /// Attaches a recorder to a camera stream's feed (state `connecting`); dropping the
    /// publisher detaches it (state `stopped`).
    pub fn publisher(&self, key: &FeedKey) -> LivePublisher {
        let feed = self.feed(key);
        {
            let mut s = lock(&feed.state);
            s.publishers += 1;
            s.set_state(LiveState::Connecting);
        }
        LivePublisher { feed }
    }

    /// A new viewer of a camera stream: its current state (`offline` when no recorder
    /// publishes), then the init and the cached frames from the latest keyframe, then what
    /// follows.
    pub fn subscribe(&self, key: &FeedKey) -> Viewer {
        let feed = self.feed(key);
        let (rx, state, cached) = {
            let s = lock(&feed.state);
            let state = if s.publishers > 0 {
                s.state.clone()
            } else {
                LiveState::Offline
            };
            let rx = s.tx.as_ref().map(broadcast::Sender::subscribe);
            (rx, state, s.gop.clone())
        };
        // Built outside the lock (the publisher goes on meanwhile; what it publishes now
        // reaches this viewer through `rx`), then kept so the next viewer need not build them.
        let mut pending = VecDeque::with_capacity(cached.len() + 1);
        pending.push_back(Event::State(state));
        let mut built = Vec::new();
        for c in cached {
            match c {
                Cached::Built(f) => pending.push_back(Event::Fragment(f)),
                Cached::Raw(raw) => match raw.build() {
                    Some(f) => {
                        built.push(f.clone());
                        pending.push_back(Event::Fragment(f));
                    }
                    // Cannot happen for a frame that fit a fragment when it arrived; the
                    // viewer then waits for the next keyframe.
                    None => break,
                },
            }
        }
        if !built.is_empty() {
            lock(&feed.state).keep_built(built);
        }
        Viewer {
            feed,
            rx,
            pending,
            out: VecDeque::new(),
            generation: None,
            need_key: true,
            skipped: None,
            last_state: None,
        }
    }

    /// The camera is gone: the viewers of its streams end (after what is queued for them)
    /// and its feeds are forgotten.
    pub fn remove(&self, camera_id: &str) {
        self.retain(|key| key.camera_id != camera_id);
    }

    /// Removes the feeds `keep` says no to (cameras removed from the registry, secondary
    /// streams removed from their camera).
    pub fn retain(&self, keep: impl Fn(&FeedKey) -> bool) {
        let gone: Vec<Arc<Feed>> = {
            let mut feeds = lock(&self.feeds);
            let keys: Vec<FeedKey> = feeds.keys().filter(|k| !keep(k)).cloned().collect();
            keys.iter().filter_map(|k| feeds.remove(k)).collect()
        };
        for feed in gone {
            feed.close();
        }
    }

    /// How many viewers the camera stream has now.
    pub fn viewers(&self, key: &FeedKey) -> usize {
        let feed = lock(&self.feeds).get(key).cloned();
        feed.map_or(0, |f| {
            lock(&f.state)
                .tx
                .as_ref()
                .map_or(0, broadcast::Sender::receiver_count)
        })
    }
}

struct Feed {
    state: Mutex<FeedState>,
}

impl Feed {
    fn new(limits: LiveLimits) -> Self {
        let (tx, _) = broadcast::channel(limits.queue.max(1));
        Feed {
            state: Mutex::new(FeedState {
                tx: Some(tx),
                limits,
                state: LiveState::Offline,
                publishers: 0,
                params: None,
                init: None,
                generation: 0,
                new_session: true,
                await_key: true,
                gop: Vec::new(),
                gop_bytes: 0,
                gop_overflow: false,
                clock: DecodeClock::default(),
                sequence: 0,
            }),
        }
    }

    fn close(&self) {
        let mut s = lock(&self.state);
        s.tx = None;
        s.gop.clear();
        s.gop_bytes = 0;
    }
}

struct FeedState {
    /// `None` once the camera was removed: its viewers end.
    tx: Option<broadcast::Sender<Event>>,
    limits: LiveLimits,
    state: LiveState,
    publishers: usize,
    params: Option<TrackParams>,
    init: Option<Arc<LiveInit>>,
    generation: u64,
    /// The next parameters start a new init even if they equal the last ones: the camera's
    /// stream restarted, so its timeline jumped.
    new_session: bool,
    /// Frames before the first keyframe after new parameters cannot be decoded.
    await_key: bool,
    gop: Vec<Cached>,
    gop_bytes: usize,
    /// The GOP in progress outgrew the cache; nothing is cached until the next keyframe.
    gop_overflow: bool,
    clock: DecodeClock,
    sequence: u32,
}

impl FeedState {
    fn set_state(&mut self, state: LiveState) {
        if matches!(state, LiveState::Connecting | LiveState::Reconnecting(_)) {
            self.new_session = true;
        }
        if self.state == state {
            return;
        }
        self.state = state.clone();
        self.send(Event::State(state));
    }

    fn send(&self, ev: Event) {
        if let Some(tx) = &self.tx {
            // An error only means nobody watches.
            let _ = tx.send(ev);
        }
    }

    fn clear_gop(&mut self) {
        self.gop.clear();
        self.gop_bytes = 0;
        self.gop_overflow = false;
    }

    /// Adds a frame to the GOP cache (a keyframe starts it anew); a GOP that outgrows the
    /// limits is not cached.
    fn cache(&mut self, c: Cached) {
        if c.is_key() {
            self.clear_gop();
        }
        if self.gop_overflow {
            return;
        }
        let bytes = self.gop_bytes + c.len();
        if bytes > self.limits.gop_bytes || self.gop.len() + 1 > self.limits.gop_frames {
            self.clear_gop();
            self.gop_overflow = true;
        } else {
            self.gop_bytes = bytes;
            self.gop.push(c);
        }
    }

    /// Replaces cached raw frames by the fragments a subscriber built of them, where the
    /// cache still holds them.
    fn keep_built(&mut self, built: Vec<LiveFragment>) {
        for f in built {
            let slot = self.gop.iter_mut().find(|c| match c {
                Cached::Raw(r) => {
                    r.sequence == f.sequence && r.init.generation == f.init.generation
                }
                Cached::Built(_) => false,
            });
            if let Some(slot) = slot {
                *slot = Cached::Built(f);
            }
        }
    }
}

/// What the cache counts for a fragment's `moof` and `mdat` header (about 100 bytes for one
/// sample), built or not.
const FRAGMENT_OVERHEAD: usize = 128;

/// A frame of the GOP cache: as the recorder gave it, or already a fragment.
#[derive(Debug, Clone)]
enum Cached {
    Raw(RawFrame),
    Built(LiveFragment),
}

impl Cached {
    fn is_key(&self) -> bool {
        match self {
            Cached::Raw(r) => r.sample.is_sync,
            Cached::Built(f) => f.is_key,
        }
    }

    /// Bytes counted against the cache's limit: the frame and a fragment header, whether
    /// built or not.
    fn len(&self) -> usize {
        FRAGMENT_OVERHEAD
            + match self {
                Cached::Raw(r) => r.data.len(),
                Cached::Built(f) => f.frame_len,
            }
    }
}

/// A frame placed on the feed's timeline, not yet made a fragment.
#[derive(Debug, Clone)]
struct RawFrame {
    data: Bytes,
    sequence: u32,
    decode_time: u64,
    sample: SampleInfo,
    init: Arc<LiveInit>,
}

impl RawFrame {
    /// The frame as one `moof`+`mdat`; `None` if it cannot be one (logged).
    fn build(&self) -> Option<LiveFragment> {
        let data = match fmp4::fragment(self.sequence, self.decode_time, &[self.sample], &self.data)
        {
            Ok(d) => Bytes::from(d),
            Err(e) => {
                tracing::warn!(error = %e, "cannot build a live fragment; frame not sent");
                return None;
            }
        };
        Some(LiveFragment {
            data,
            is_key: self.sample.is_sync,
            decode_time: self.decode_time,
            composition_offset: self.sample.composition_offset,
            duration: self.sample.duration,
            sequence: self.sequence,
            frame_len: self.data.len(),
            init: self.init.clone(),
        })
    }
}

/// A recorder's handle on its camera's feed. Cheap to share behind an `Arc`; publishing
/// takes the feed's lock briefly and never waits for a viewer.
pub struct LivePublisher {
    feed: Arc<Feed>,
}

impl std::fmt::Debug for LivePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LivePublisher").finish_non_exhaustive()
    }
}

impl LivePublisher {
    /// The camera's session state (`Live` is set by the first frame of a session).
    pub fn set_state(&self, state: LiveState) {
        lock(&self.feed.state).set_state(state);
    }

    /// Parameters of the frames that follow: a new init when they changed or the session is
    /// new; the frames until the next keyframe are dropped.
    pub fn params(&self, params: &TrackParams) {
        let mut s = lock(&self.feed.state);
        if !s.new_session && s.params.as_ref() == Some(params) {
            return;
        }
        s.new_session = false;
        s.await_key = true;
        s.clear_gop();
        s.clock.new_session();
        match fmp4::init_segment(params) {
            Ok(init) => {
                s.generation += 1;
                s.init = Some(Arc::new(LiveInit {
                    generation: s.generation,
                    codec: params.rfc6381.clone(),
                    width: params.width,
                    height: params.height,
                    data: Bytes::from(init),
                }));
                s.params = Some(params.clone());
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the live init segment; no live video until the parameters change");
                s.init = None;
                s.params = None;
            }
        }
    }

    /// One frame in decode order: cached for viewers to come, and made one fragment for the
    /// viewers there are.
    pub fn frame(&self, frame: &Frame) {
        let raw = {
            let mut s = lock(&self.feed.state);
            let Some(init) = s.init.clone() else {
                return;
            };
            if s.tx.is_none() || (s.await_key && !frame.is_key) {
                return;
            }
            s.await_key = false;
            s.set_state(LiveState::Live);
            let (decode_time, duration, offset) = s.clock.place(frame.pts, frame.is_key);
            s.sequence = s.sequence.wrapping_add(1);
            let raw = RawFrame {
                data: frame.data.clone(),
                sequence: s.sequence,
                decode_time,
                sample: SampleInfo {
                    duration,
                    size: u32::try_from(frame.data.len()).unwrap_or(u32::MAX),
                    is_sync: frame.is_key,
                    composition_offset: offset,
                },
                init,
            };
            let watched = s.tx.as_ref().is_some_and(|tx| tx.receiver_count() > 0);
            if !watched {
                // Decided under the lock a subscriber takes: one that comes later finds this
                // frame in the cache.
                s.cache(Cached::Raw(raw));
                return;
            }
            raw
        };
        // Built outside the lock: a viewer subscribing meanwhile waits for nothing, and
        // receives this frame through the queue.
        let Some(fragment) = raw.build() else {
            lock(&self.feed.state).await_key = true;
            return;
        };
        let mut s = lock(&self.feed.state);
        if s.init.as_ref().map(|i| i.generation) != Some(fragment.init.generation) {
            // New parameters arrived meanwhile; this frame belongs to the old ones.
            return;
        }
        s.cache(Cached::Built(fragment.clone()));
        s.send(Event::Fragment(fragment));
    }
}

impl Drop for LivePublisher {
    fn drop(&mut self) {
        let mut s = lock(&self.feed.state);
        s.publishers = s.publishers.saturating_sub(1);
        if s.publishers == 0 {
            s.init = None;
            s.params = None;
            s.clear_gop();
            s.set_state(LiveState::Stopped);
            s.new_session = true;
        }
    }
}

/// One viewer's subscription. [`Viewer::next`] is cancel-safe.
pub struct Viewer {
    feed: Arc<Feed>,
    /// `None` once the feed was removed.
    rx: Option<broadcast::Receiver<Event>>,
    /// What the viewer had to catch up on when it subscribed.
    pending: VecDeque<Event>,
    out: VecDeque<ViewerEvent>,
    /// The generation of the init this viewer was sent last.
    generation: Option<u64>,
    /// Fragments are dropped until a keyframe (at the start, after a lag).
    need_key: bool,
    /// Messages dropped since the viewer lagged, until the keyframe it is dropped to.
    skipped: Option<u64>,
    last_state: Option<LiveState>,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("generation", &self.generation)
            .field("need_key", &self.need_key)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl Viewer {
    /// The next event; `None` when the camera was removed.
    pub async fn next(&mut self) -> Option<ViewerEvent> {
        loop {
            if let Some(ev) = self.out.pop_front() {
                return Some(ev);
            }
            let ev = match self.pending.pop_front() {
                Some(ev) => ev,
                None => match self.rx.as_mut()?.recv().await {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(n)) => {
                        self.lagged(n);
                        continue;
                    }
                    Err(RecvError::Closed) => {
                        self.rx = None;
                        return None;
                    }
                },
            };
            self.handle(ev);
        }
    }

    fn lagged(&mut self, missed: u64) {
        *self.skipped.get_or_insert(0) += missed;
        self.need_key = true;
        // A state change may have been among what was missed.
        let state = lock(&self.feed.state).state.clone();
        self.state(state);
    }

    fn state(&mut self, state: LiveState) {
        if self.last_state.as_ref() != Some(&state) {
            self.last_state = Some(state.clone());
            self.out.push_back(ViewerEvent::State(state));
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::State(s) => self.state(s),
            Event::Fragment(f) => {
                let new_init = self.generation != Some(f.init.generation);
                if (self.need_key || new_init) && !f.is_key {
                    if let Some(n) = self.skipped.as_mut() {
                        *n += 1;
                    }
                    self.need_key = true;
                    return;
                }
                self.need_key = false;
                if let Some(n) = self.skipped.take() {
                    self.out.push_back(ViewerEvent::Skipped(n));
                }
                if new_init {
                    self.generation = Some(f.init.generation);
                    self.out.push_back(ViewerEvent::Init(f.init.clone()));
                }
                self.out.push_back(ViewerEvent::Fragment(f));
            }
        }
    }
}

/// Places frames on a decode timeline as they arrive (see the module documentation).
#[derive(Debug)]
struct DecodeClock {
    last_dts: Option<i64>,
    /// The last presentation times of this session.
    recent: VecDeque<i64>,
    duration: i64,
}

/// Presentation times the frame duration is estimated from.
const DURATION_WINDOW: usize = 16;
/// Until there are two presentation times: 25 fps.
const DEFAULT_DURATION: i64 = 3600;

impl Default for DecodeClock {
    fn default() -> Self {
        DecodeClock {
            last_dts: None,
            recent: VecDeque::with_capacity(DURATION_WINDOW),
            duration: DEFAULT_DURATION,
        }
    }
}

impl DecodeClock {
    /// A new camera session: its times jump, so earlier spacing says nothing. Decode times
    /// still never go back.
    fn new_session(&mut self) {
        self.recent.clear();
    }

    /// Decode time, duration and composition offset of the next frame in decode order.
    fn place(&mut self, pts: i64, is_key: bool) -> (u64, u32, i32) {
        if self.recent.len() == DURATION_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(pts);
        if self.recent.len() >= 2 {
            let mut sorted: Vec<i64> = self.recent.iter().copied().collect();
            sorted.sort_unstable();
            let mut gaps: Vec<i64> = sorted
                .windows(2)
                .map(|w| w[1] - w[0])
                .filter(|d| *d > 0)
                .collect();
            if !gaps.is_empty() {
                let mid = gaps.len() / 2;
                self.duration = *gaps.select_nth_unstable(mid).1;
            }
        }
        // At most one second: a camera that pauses must not stretch its next frames.
        self.duration = self.duration.clamp(1, 90_000);
        let dts = match self.last_dts {
            None => pts,
            Some(prev) => {
                let want = if is_key {
                    pts
                } else {
                    pts.min(prev + self.duration)
                };
                want.max(prev + 1)
            }
        }
        .max(0);
        self.last_dts = Some(dts);
        let offset = (pts - dts).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        (dts as u64, self.duration as u32, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(variant: u8) -> TrackParams {
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

    const TICKS: i64 = 3600;

    fn frame(n: i64, key: bool) -> Frame {
        frame_at(n * TICKS, n, key)
    }

    fn frame_at(pts: i64, tag: i64, key: bool) -> Frame {
        let mut data = vec![0, 0, 0, 12, if key { 0x65 } else { 0x41 }];
        data.extend_from_slice(&tag.to_be_bytes());
        data.resize(if key { 400 } else { 16 }, 0x5a);
        Frame {
            pts,
            is_key: key,
            data: data.into(),
        }
    }

    /// Frames `from..to` of a stream with a keyframe every `gop` frames.
    fn publish(p: &LivePublisher, from: i64, to: i64, gop: i64) {
        for n in from..to {
            p.frame(&frame(n, n % gop == 0));
        }
    }

    fn tag(f: &LiveFragment) -> i64 {
        // The frame payload follows the mdat header; its tag sits after the NAL header.
        let d = &f.data;
        let at = d.len() - if f.is_key { 400 } else { 16 } + 5;
        i64::from_be_bytes(d[at..at + 8].try_into().unwrap())
    }

    /// Takes what is ready without waiting (the viewer's queue holds it already).
    fn drain(v: &mut Viewer) -> Vec<ViewerEvent> {
        let mut out = Vec::new();
        while let Some(Some(ev)) = futures::FutureExt::now_or_never(v.next()) {
            out.push(ev);
        }
        out
    }

    /// A compact description: `S:live`, `I1` (init generation), `K3`/`F4` (key/other frame
    /// with its tag), `X5` (skipped 5).
    fn describe(evs: &[ViewerEvent]) -> Vec<String> {
        evs.iter()
            .map(|e| match e {
                ViewerEvent::State(s) => format!("S:{}", s.name()),
                ViewerEvent::Init(i) => format!("I{}", i.generation),
                ViewerEvent::Fragment(f) => {
                    format!("{}{}", if f.is_key { "K" } else { "F" }, tag(f))
                }
                ViewerEvent::Skipped(n) => format!("X{n}"),
            })
            .collect()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_viewer_joining_mid_gop_starts_at_the_latest_keyframe() {
        let hub = LiveHub::new();
        let p = hub.publisher(&FeedKey::main("cam"));
        p.params(&params(1));
        publish(&p, 0, 13, 5); // keyframes 0, 5, 10
        let mut v = hub.subscribe(&FeedKey::main("cam"));
        assert_eq!(
            describe(&drain(&mut v)),
            strs(&["S:live", "I1", "K10", "F11", "F12"])
        );
        publish(&p, 13, 16, 5);
        assert_eq!(describe(&drain(&mut v)), strs(&["F13", "F14", "K15"]));
        // The init is the recorder's own for these parameters.
        let mut v2 = hub.subscribe(&FeedKey::main("cam"));
        let evs = drain(&mut v2);
        let ViewerEvent::Init(init) = &evs[1] else {
            panic!("{evs:?}")
        };
        assert_eq!(init.data[..], fmp4::init_segment(&params(1)).unwrap()[..]);
        assert_eq!(
            (init.codec.as_str(), init.width, init.height),
            ("avc1.4d401e", 656, 480)
        );
        // Every fragment parses as one sample with its decode time.
        for ev in &evs[2..] {
            let ViewerEvent::Fragment(f) = ev else {
                panic!()
            };
            let info = fmp4::parse_fragment(&f.data).unwrap();
            assert_eq!(info.samples, 1);
            assert_eq!(info.base_decode_time, f.decode_time);
            assert_eq!(info.starts_with_sync, f.is_key);
        }
    }

    #[test]
    fn states_and_offline() {
        let hub = LiveHub::new();
        let mut early = hub.subscribe(&FeedKey::main("cam"));
        assert_eq!(describe(&drain(&mut early)), strs(&["S:offline"]));
        let p = hub.publisher(&FeedKey::main("cam"));
        p.params(&params(1));
        publish(&p, 0, 2, 5);
        p.set_state(LiveState::Reconnecting(
            "the camera closed the stream".into(),
        ));
        let evs = drain(&mut early);
        assert_eq!(
            describe(&evs),
            strs(&["S:connecting", "S:live", "I1", "K0", "F1", "S:reconnecting"])
        );
        let ViewerEvent::State(s) = evs.last().unwrap() else {
            panic!()
        };
        assert_eq!(s.message(), "the camera closed the stream");
        // The same parameters in the next session still start a new init: the timeline
        // jumped.
        p.params(&params(1));
        p.frame(&frame(100, true));
        assert_eq!(
            describe(&drain(&mut early)),
            strs(&["S:live", "I2", "K100"])
        );
        drop(p);
        assert_eq!(describe(&drain(&mut early)), strs(&["S:stopped"]));
        // A viewer arriving now sees a camera without a recorder, and no stale video.
        assert_eq!(
            describe(&drain(&mut hub.subscribe(&FeedKey::main("cam")))),
            strs(&["S:offline"])
        );
    }

    #[test]
    fn a_parameter_change_sends_a_new_init_before_the_next_keyframe() {
        let hub = LiveHub::new();
        let p = hub.publisher(&FeedKey::main("cam"));
        p.params(&params(1));
        let mut v = hub.subscribe(&FeedKey::main("cam"));
        publish(&p, 0, 3, 5);
        // Announced again unchanged: nothing new.
        p.params(&params(1));
        publish(&p, 3, 4, 5);
        p.params(&params(2));
        // Frames before the new parameters' first keyframe cannot be decoded.
        p.frame(&frame(4, false));
        publish(&p, 5, 7, 5);
        let evs = drain(&mut v);
        assert_eq!(
            describe(&evs),
            strs(&[
                "S:connecting",
                "S:live",
                "I1",
                "K0",
                "F1",
                "F2",
                "F3",
                "I2",
                "K5",
                "F6"
            ])
        );
        let ViewerEvent::Init(i2) = &evs[7] else {
            panic!()
        };
        assert_eq!(i2.width, 672);
        assert_eq!(i2.data[..], fmp4::init_segment(&params(2)).unwrap()[..]);
        let late = drain(&mut hub.subscribe(&FeedKey::main("cam")));
        assert_eq!(describe(&late), strs(&["S:live", "I2", "K5", "F6"]));
    }

    #[tokio::test]
    async fn a_lagging_viewer_is_dropped_to_the_next_keyframe_and_told_how_much() {
        let hub = LiveHub::with_limits(LiveLimits {
            queue: 8,
            ..LiveLimits::default()
        });
        let p = hub.publisher(&FeedKey::main("cam"));
        p.params(&params(1));
        let mut slow = hub.subscribe(&FeedKey::main("cam"));
        let mut fast = hub.subscribe(&FeedKey::main("cam"));
        let mut fast_seen = Vec::new();
        // 30 frames, keyframe every 10, while `slow` reads nothing; `fast` keeps up.
        for n in 0..30 {
            p.frame(&frame(n, n % 10 == 0));
            fast_seen.extend(drain(&mut fast));
        }
        let frames: Vec<String> = describe(&fast_seen)
            .into_iter()
            .filter(|d| d.starts_with('K') || d.starts_with('F'))
            .collect();
        assert_eq!(frames.len(), 30, "the fast viewer lost nothing: {frames:?}");
        // The queue keeps the last 8 messages: the slow viewer missed the first state change
        // and frames 0..23, skips frames 24..29 (no keyframe among them) and resumes at
        // keyframe 30. The count is of messages dropped, so it includes the state change
        // (which the viewer gets anyway, from the feed's current state).
        p.frame(&frame(30, true));
        p.frame(&frame(31, false));
        let evs = drain(&mut slow);
        assert_eq!(
            describe(&evs),
            strs(&["S:connecting", "S:live", "X31", "I1", "K30", "F31"])
        );
    }

    #[test]
    fn the_gop_cache_is_bounded_in_bytes_and_frames() {
        // What the cache counts for a keyframe and another frame of `frame()`.
        let frag_len = (400 + FRAGMENT_OVERHEAD, 16 + FRAGMENT_OVERHEAD);
        // Room for the keyframe and four other frames.
        let hub = LiveHub::with_limits(LiveLimits {
            gop_bytes: frag_len.0 + 4 * frag_len.1 + 10,
            gop_frames: 100,
            queue: 64,
        });
        let p = hub.publisher(&FeedKey::main("cam"));
        p.params(&params(1));
        publish(&p, 0, 5, 100);
        assert_eq!(
            describe(&drain(&mut hub.subscribe(&FeedKey::main("cam")))),
            strs(&["S:live", "I1", "K0", "F1", "F2", "F3", "F4"])
        );
        publish(&p, 5, 8, 100);
        // Too big: nothing cached until the next keyframe; a viewer waits for it.
        let mut v = hub.subscribe(&FeedKey::main("cam"));
        assert_eq!(describe(&drain(&mut v)), strs(&["S:live"]));
        publish(&p, 8, 9, 100);
        p.frame(&frame(9, true));
        assert_eq!(describe(&drain(&mut v)), strs(&["I1", "K9"]));
        assert_eq!(
            describe(&drain(&mut hub.subscribe(&FeedKey::main("cam")))),
            strs(&["S:live", "I1", "K9"])
        );

        let hub = LiveHub::with_limits(LiveLimits {
            gop_bytes: 1 << 20,
            gop_frames: 3,
            queue: 64,
        });
        let p = hub.publisher(&FeedKey::main("cam"));
        p.params(&params(1));
        publish(&p, 0, 3, 100);
        assert_eq!(drain(&mut hub.subscribe(&FeedKey::main("cam"))).len(), 5);
        publish(&p, 3, 4, 100);
        assert_eq!(
            describe(&drain(&mut hub.subscribe(&FeedKey::main("cam")))),
            strs(&["S:live"])
        );
    }

    #[test]
    fn b_frame_decode_times_never_decrease_and_offsets_restore_presentation() {
        // Decode order I P B B P B B ... of 25-frame GOPs (presentation index per frame).
        let mut order = Vec::new();
        for g in 0..3i64 {
            let base = g * 25;
            order.push(base);
            let mut i = 1;
            while i + 2 < 25 {
                order.extend([base + i + 2, base + i, base + i + 1]);
                i += 3;
            }
            order.extend((i..25).map(|k| base + k));
        }
        let hub = LiveHub::with_limits(LiveLimits {
            queue: 256,
            ..LiveLimits::default()
        });
        let p = hub.publisher(&FeedKey::main("cam"));
        p.params(&params(1));
        let mut v = hub.subscribe(&FeedKey::main("cam"));
        let origin = 900_000_000;
        for &n in &order {
            p.frame(&frame_at(origin + n * TICKS, n, n % 25 == 0));
        }
        let frags: Vec<LiveFragment> = drain(&mut v)
            .into_iter()
            .filter_map(|e| match e {
                ViewerEvent::Fragment(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(frags.len(), order.len());
        let mut prev = None;
        let mut negative = 0;
        for (f, &n) in frags.iter().zip(&order) {
            assert_eq!(f.presentation_time(), origin + n * TICKS, "frame {n}");
            assert!(
                prev.is_none_or(|p| f.decode_time > p),
                "decode times increase"
            );
            prev = Some(f.decode_time);
            if f.composition_offset < 0 {
                negative += 1;
            }
            // Decode time stays close to presentation: within a few frames.
            assert!(
                f.composition_offset.unsigned_abs() <= 3 * TICKS as u32,
                "{f:?}"
            );
            // The trun says the same (version 1: signed).
            let moof = <mp4_atom::Moof as mp4_atom::Decode>::decode(&mut &f.data[..]).unwrap();
            let traf = &moof.traf[0];
            assert_eq!(
                traf.tfdt.as_ref().unwrap().base_media_decode_time,
                f.decode_time
            );
            let mp4_atom::TrunSamples::Explicit(entries) = &traf.trun[0].samples else {
                panic!()
            };
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].cts.unwrap_or(0), i64::from(f.composition_offset));
        }
        assert!(
            negative > 0,
            "some frames are presented before their decode time"
        );
        // Once a few presentation times are known, the duration is the frame interval.
        assert!(frags[3..].iter().all(|f| f.duration == TICKS as u32));
        // Keyframes are decoded at their presentation time.
        assert!(
            frags
                .iter()
                .filter(|f| f.is_key)
                .all(|f| f.composition_offset == 0)
        );
    }

    #[test]
    fn decode_times_stay_monotonic_across_sessions_and_odd_timestamps() {
        let mut c = DecodeClock::default();
        let mut last = None;
        for (pts, key) in [
            (1000, true),
            (1000, false),       // repeated timestamp
            (500, false),        // backwards
            (90_000_000, false), // a jump
            (4000, true),        // a keyframe far behind
        ] {
            let (dts, dur, off) = c.place(pts, key);
            assert!(last.is_none_or(|l| dts > l), "{pts}");
            assert!(dur >= 1);
            let want = (pts - dts as i64).clamp(i64::from(i32::MIN), i64::from(i32::MAX));
            assert_eq!(i64::from(off), want);
            last = Some(dts);
        }
        c.new_session();
        let (dts, _, _) = c.place(0, true);
        assert!(dts > last.unwrap());
    }

    #[test]
    fn two_viewers_share_each_fragment() {
        let hub = LiveHub::new();
        let p = hub.publisher(&FeedKey::main("cam"));
        p.params(&params(1));
        let mut a = hub.subscribe(&FeedKey::main("cam"));
        let mut b = hub.subscribe(&FeedKey::main("cam"));
        assert_eq!(hub.viewers(&FeedKey::main("cam")), 2);
        publish(&p, 0, 3, 5);
        let fa = drain(&mut a);
        let fb = drain(&mut b);
        assert_eq!(describe(&fa), describe(&fb));
        for (x, y) in fa.iter().zip(&fb) {
            if let (ViewerEvent::Fragment(x), ViewerEvent::Fragment(y)) = (x, y) {
                // The same buffer, not a copy per viewer.
                assert_eq!(x.data.as_ptr(), y.data.as_ptr());
            }
        }
        drop(a);
        assert_eq!(hub.viewers(&FeedKey::main("cam")), 1);
    }

    #[test]
    fn an_unwatched_feed_builds_no_fragment_and_shares_the_recorders_buffers() {
        let hub = LiveHub::new();
        let key = FeedKey::main("cam");
        let p = hub.publisher(&key);
        p.params(&params(1));
        let frames: Vec<Frame> = (0..8).map(|n| frame(n, n % 5 == 0)).collect();
        for f in &frames {
            p.frame(f);
        }
        {
            let s = lock(&p.feed.state);
            let cached: Vec<&RawFrame> = s
                .gop
                .iter()
                .map(|c| match c {
                    Cached::Raw(r) => r,
                    Cached::Built(_) => panic!("built with nobody watching"),
                })
                .collect();
            assert_eq!(cached.len(), 3, "frames 5, 6, 7");
            for (r, f) in cached.iter().zip(&frames[5..]) {
                assert_eq!(r.data.as_ptr(), f.data.as_ptr(), "the frame is not copied");
            }
        }
        // The first viewer builds the cached GOP; the next one gets the same fragments.
        let mut a = hub.subscribe(&key);
        let fa = drain(&mut a);
        assert_eq!(describe(&fa), strs(&["S:live", "I1", "K5", "F6", "F7"]));
        let mut b = hub.subscribe(&key);
        let fb = drain(&mut b);
        for (x, y) in fa.iter().zip(&fb) {
            if let (ViewerEvent::Fragment(x), ViewerEvent::Fragment(y)) = (x, y) {
                assert_eq!(x.data.as_ptr(), y.data.as_ptr());
            }
        }
        // Watched now: the next frame is built once, sent and cached built.
        p.frame(&frame(8, false));
        assert_eq!(describe(&drain(&mut a)), strs(&["F8"]));
        assert_eq!(describe(&drain(&mut b)), strs(&["F8"]));
        let s = lock(&p.feed.state);
        assert!(s.gop.iter().all(|c| matches!(c, Cached::Built(_))));
        // Unwatched and watched frames make the same bytes.
        let built = RawFrame {
            data: frames[6].data.clone(),
            ..match &s.gop[1] {
                Cached::Built(f) => RawFrame {
                    data: Bytes::new(),
                    sequence: f.sequence,
                    decode_time: f.decode_time,
                    sample: SampleInfo {
                        duration: f.duration,
                        size: frames[6].data.len() as u32,
                        is_sync: false,
                        composition_offset: f.composition_offset,
                    },
                    init: f.init.clone(),
                },
                Cached::Raw(_) => unreachable!(),
            }
        }
        .build()
        .unwrap();
        let Cached::Built(cached) = &s.gop[1] else {
            unreachable!()
        };
        assert_eq!(built.data, cached.data);
    }

    #[tokio::test]
    async fn removing_a_camera_ends_its_viewers() {
        let hub = LiveHub::new();
        let p = hub.publisher(&FeedKey::main("cam"));
        p.params(&params(1));
        let mut v = hub.subscribe(&FeedKey::main("cam"));
        publish(&p, 0, 2, 5);
        hub.retain(|k| k.camera_id != "cam");
        // What was queued still arrives, then the end.
        let mut n = 0;
        while v.next().await.is_some() {
            n += 1;
        }
        assert_eq!(n, 5);
        // The old recorder publishing into the removed feed reaches nobody and fails nothing.
        publish(&p, 2, 4, 5);
        assert_eq!(hub.viewers(&FeedKey::main("cam")), 0);
    }

    #[tokio::test]
    async fn a_cameras_streams_are_separate_feeds_and_removing_the_camera_ends_both() {
        let hub = LiveHub::new();
        let (main, sub) = (FeedKey::main("cam"), FeedKey::secondary("cam"));
        let pm = hub.publisher(&main);
        pm.params(&params(1));
        let ps = hub.publisher(&sub);
        ps.params(&params(2));
        let mut vm = hub.subscribe(&main);
        let mut vs = hub.subscribe(&sub);
        publish(&pm, 0, 2, 5);
        publish(&ps, 0, 1, 5);
        let (em, es) = (drain(&mut vm), drain(&mut vs));
        let width = |evs: &[ViewerEvent]| {
            evs.iter().find_map(|e| match e {
                ViewerEvent::Init(i) => Some(i.width),
                _ => None,
            })
        };
        assert_eq!(width(&em), Some(params(1).width));
        assert_eq!(width(&es), Some(params(2).width));
        let frames = |evs: &[ViewerEvent]| {
            evs.iter()
                .filter(|e| matches!(e, ViewerEvent::Fragment(_)))
                .count()
        };
        assert_eq!((frames(&em), frames(&es)), (2, 1));
        // The secondary alone goes (removed from its camera): its viewers end, the main's stay.
        hub.retain(|k| k.stream == Stream::Main);
        assert!(vs.next().await.is_none());
        assert_eq!(hub.viewers(&main), 1);
        hub.remove("cam");
        assert!(vm.next().await.is_none());
        assert_eq!(hub.viewers(&main) + hub.viewers(&sub), 0);
    }
}
