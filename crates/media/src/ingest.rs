//! Pulling one camera's RTSP stream with retina (TCP interleaved) and turning it into frames
//! with absolute times.
//!
//! Credentials travel as retina `Credentials`, never inside the URL, so they cannot leak into
//! logs or status output. A stream that stops delivering frames is detected by an inactivity
//! timeout, since retina itself just waits.

use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use retina::client::{
    Credentials, InitialSequenceNumberPolicy, PlayOptions, Session, SessionOptions, SetupOptions,
    Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use url::Url;

use crate::fmp4::TrackParams;
use crate::gop::Frame;

/// Why a session ended; every variant reads as a camera status.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid camera URL: {0}")]
    BadUrl(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error(
        "the camera refused the credentials (401 Unauthorized); check the user name and password stored for it"
    )]
    Unauthorized,
    #[error("the camera offers no video stream (streams: {0})")]
    NoVideo(String),
    #[error("unsupported video codec '{0}'; Vigil records H.264 and H.265")]
    UnsupportedCodec(String),
    #[error("stream stalled: no frame for {0:?}")]
    Stalled(Duration),
    #[error("the camera closed the stream")]
    Ended,
    #[error("RTSP error: {0}")]
    Rtsp(String),
    #[error("{0}")]
    Timeout(String),
    /// The camera's TLS certificate is not trusted (unknown issuer, self-signed, wrong host
    /// name, expired). Only an admin can change that, so the recorder does not retry.
    #[error(
        "the camera's TLS certificate is not trusted: {reason}; its SHA-256 fingerprint is {fingerprint}. If that is this camera's certificate, pin it with `vigil camera trust CAMERA --fingerprint {fingerprint}`"
    )]
    CertificateUntrusted { fingerprint: String, reason: String },
    /// A camera that was verified or pinned presented another certificate: a man in the middle
    /// or a swapped device. The link is not used until an admin trusts the new certificate.
    #[error(
        "the camera presented a different TLS certificate (SHA-256 {new}) than the one it had (SHA-256 {old}): a man in the middle or a replaced camera; the link is not used until an admin checks the camera and trusts the new certificate with `vigil camera trust CAMERA --fingerprint {new}`"
    )]
    CertificateChanged { old: String, new: String },
    #[error("TLS error: {0}")]
    Tls(String),
    /// Something other than the device recorded for the camera answers at its address (the
    /// application layer's device allow-list, docs/cameras-onvif.md). The text says what
    /// differs and how an admin accepts a device replaced on purpose; nothing is played from
    /// it, and only an admin can change that, so the recorder does not retry.
    #[error("{0}")]
    DeviceRefused(String),
}

impl IngestError {
    /// How the recording gap that follows this ending is described in the index and the
    /// evidence ledger. A stall is told apart from a lost connection: the camera (or the
    /// network path) kept the session open but sent nothing.
    pub fn gap_reason(&self) -> String {
        match self {
            IngestError::Stalled(after) => format!(
                "stalled: no data for {}",
                humantime::format_duration(*after)
            ),
            _ => "camera disconnected".into(),
        }
    }

    /// Whether retrying cannot help until someone changes the camera's settings: the recorder
    /// then reports `failed` instead of reconnecting.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            IngestError::BadUrl(_)
                | IngestError::CertificateUntrusted { .. }
                | IngestError::CertificateChanged { .. }
                | IngestError::DeviceRefused(_)
        )
    }

    pub(crate) fn from_retina(e: retina::Error) -> Self {
        let text = e.to_string();
        if text.contains("401") || text.contains("Unauthorized") {
            IngestError::Unauthorized
        } else if text.contains("Connection refused")
            || text.contains("connect")
            || text.contains("No route")
            || text.contains("resolve")
        {
            IngestError::Connect(text)
        } else {
            IngestError::Rtsp(text)
        }
    }
}

/// Checks a camera URL the way `camera add` must: `rtsp://host[:port]/path` or
/// `rtsps://host[:port]/path` (RTSP over TLS, docs/design/camera-tls.md), no credentials.
pub fn validate_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| {
        format!("'{url}' is not a URL ({e}); use rtsps://host:port/path (or rtsp://)")
    })?;
    match parsed.scheme() {
        "rtsp" | "rtsps" => {}
        other => {
            return Err(format!(
                "scheme '{other}' is not supported; use rtsps://host:port/path (or rtsp://)"
            ));
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{url}' has no host; use rtsp://host:port/path"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials must not be part of the URL (they would end up in logs)".into());
    }
    Ok(parsed)
}

/// Concurrent RTSP session set-ups across all cameras of this process.
static SETUP_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// What the recorder receives from a running session.
#[derive(Debug)]
pub enum IngestEvent {
    /// Parameters for the frames that follow (first time, and whenever they change).
    Params(TrackParams),
    Frame(Frame),
}

/// Connection settings for one camera.
#[derive(Clone)]
pub struct Source {
    /// The stream's id (a camera's, or its secondary stream's): what the certificate seen on
    /// an `rtsps://` link is remembered under.
    pub stream_id: String,
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub inactivity_timeout: Duration,
    /// For `rtsps://`: the SHA-256 fingerprint of the one certificate an admin pinned
    /// (`vigil camera trust`); then nothing else is accepted.
    pub tls_pin: Option<String>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("stream_id", &self.stream_id)
            .field("url", &self.url)
            .field("tls_pin", &self.tls_pin)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Maps a session's RTP times onto the camera's 90 kHz timeline.
struct Clock {
    /// Ticks since the camera origin of this session's first frame.
    base_ticks: i64,
    first_elapsed: Option<i64>,
    clock_rate: i64,
}

impl Clock {
    fn ticks(&mut self, elapsed: i64) -> i64 {
        let first = *self.first_elapsed.get_or_insert(elapsed);
        self.base_ticks + (elapsed - first) * 90_000 / self.clock_rate
    }
}

fn track_params(p: &retina::codec::VideoParameters) -> Result<TrackParams, IngestError> {
    let entry = p
        .mp4_sample_entry()
        .build()
        .map_err(|e| IngestError::Rtsp(format!("cannot describe the video track: {e}")))?;
    let (w, h) = p.pixel_dimensions();
    Ok(TrackParams {
        sample_entry: entry,
        width: w,
        height: h,
        rfc6381: p.rfc6381_codec().to_owned(),
    })
}

/// One picture as a [`FrameSource`] delivers it, before it is placed on the camera timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFrame {
    /// Presentation time in the source's clock units, counted from any fixed point of the
    /// session (RTP time for RTSP); only differences within a session matter.
    pub timestamp: i64,
    pub is_key: bool,
    /// The codec parameters changed with this frame; [`FrameSource::params`] has the new ones.
    pub new_params: bool,
    /// Length-prefixed NAL units (MP4 framing).
    pub data: Vec<u8>,
}

/// A playing camera session: the recorder's only view of the network. Retina is the one
/// production implementation; tests script sessions in memory, so recording, reconnects and
/// stalls are tested without an RTSP server.
pub trait FrameSource: Send {
    /// Ticks per second of [`SourceFrame::timestamp`].
    fn clock_rate(&self) -> u32;
    /// The next video frame; `None` when the camera closed the stream. Waiting here is what
    /// the inactivity timeout measures, so an implementation must not time out by itself.
    fn next_frame(&mut self) -> BoxFuture<'_, Option<Result<SourceFrame, IngestError>>>;
    /// The current codec parameters (those of the last frame returned).
    fn params(&self) -> Result<TrackParams, IngestError>;
}

/// Connects to a camera and starts playing it.
pub trait Opener: Send + Sync {
    fn open<'a>(
        &'a self,
        source: &'a Source,
    ) -> BoxFuture<'a, Result<Box<dyn FrameSource>, IngestError>>;

    /// Proves the camera takes the source's credentials for its stream, without recording:
    /// by default a whole open, closed at once; RTSP stops after an authenticated DESCRIBE.
    /// Password rotation asks this before it keeps a new password.
    fn describe<'a>(&'a self, source: &'a Source) -> BoxFuture<'a, Result<(), IngestError>> {
        Box::pin(async move { self.open(source).await.map(drop) })
    }
}

/// The production [`Opener`]: RTSP over TCP (interleaved) with retina.
#[derive(Debug, Default, Clone, Copy)]
pub struct RetinaOpener;

impl Opener for RetinaOpener {
    fn open<'a>(
        &'a self,
        source: &'a Source,
    ) -> BoxFuture<'a, Result<Box<dyn FrameSource>, IngestError>> {
        Box::pin(async move {
            let s: Box<dyn FrameSource> = Box::new(open_retina(source).await?);
            Ok(s)
        })
    }

    fn describe<'a>(&'a self, source: &'a Source) -> BoxFuture<'a, Result<(), IngestError>> {
        Box::pin(async move {
            let url = plain_rtsp_url(source)?;
            let _permit = SETUP_SLOTS
                .acquire()
                .await
                .map_err(|_| IngestError::Ended)?;
            tokio::time::timeout(
                Duration::from_secs(15),
                Session::describe(url, session_options(source)),
            )
            .await
            .map_err(|_| {
                IngestError::Timeout(
                    "no answer within 15 s to connect + DESCRIBE (is the camera reachable?)".into(),
                )
            })?
            .map_err(IngestError::from_retina)?;
            Ok(())
        })
    }
}

/// The URL of a source retina may open itself: `rtsp://` only.
fn plain_rtsp_url(source: &Source) -> Result<Url, IngestError> {
    let url = validate_url(&source.url).map_err(IngestError::BadUrl)?;
    if url.scheme() != "rtsp" {
        // retina would speak plain RTSP to a TLS port: only the tunnel may open these.
        return Err(IngestError::BadUrl(
            "rtsps:// is opened through ingest_tls::TlsOpener".into(),
        ));
    }
    Ok(url)
}

/// Retina's session options for a source: its credentials, never in the URL.
fn session_options(source: &Source) -> SessionOptions {
    let creds = source.username.as_ref().map(|u| Credentials {
        username: u.clone(),
        password: source.password.clone().unwrap_or_default(),
    });
    SessionOptions::default()
        .creds(creds)
        .user_agent(format!("Vigil/{}", env!("CARGO_PKG_VERSION")))
}

struct RetinaSource {
    demuxed: retina::client::Demuxed,
    video: usize,
    clock_rate: u32,
}

async fn open_retina(source: &Source) -> Result<RetinaSource, IngestError> {
    let url = plain_rtsp_url(source)?;
    let options = session_options(source);
    let setup_timeout = Duration::from_secs(15);
    // At start-up every camera connects at once; cheap RTSP servers (and some cameras behind
    // one NVR) have tiny accept queues, so only a few sessions are set up at a time.
    let _permit = SETUP_SLOTS
        .acquire()
        .await
        .map_err(|_| IngestError::Ended)?;
    let mut session = tokio::time::timeout(setup_timeout, Session::describe(url, options))
        .await
        .map_err(|_| {
            IngestError::Timeout(
                "no answer within 15 s to connect + DESCRIBE (is the camera reachable?)".into(),
            )
        })?
        .map_err(IngestError::from_retina)?;
    let streams = session.streams();
    let video = streams.iter().position(|s| s.media() == "video");
    let Some(video) = video else {
        let names: Vec<String> = streams
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        return Err(IngestError::NoVideo(if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }));
    };
    let encoding = streams[video].encoding_name().to_ascii_lowercase();
    if encoding != "h264" && encoding != "h265" {
        return Err(IngestError::UnsupportedCodec(encoding));
    }
    let clock_rate = streams[video].clock_rate_hz().max(1);
    tokio::time::timeout(
        setup_timeout,
        session.setup(
            video,
            SetupOptions::default()
                .transport(Transport::Tcp(Default::default()))
                .frame_format(FrameFormat::MP4),
        ),
    )
    .await
    .map_err(|_| IngestError::Timeout("no answer to SETUP within 15 s".into()))?
    .map_err(IngestError::from_retina)?;
    // Shared camera streams (and multi-client RTSP servers) may start a new client behind the
    // sequence number announced in RTP-Info; that is not loss, so do not fail on it.
    let play = PlayOptions::default().initial_seq(InitialSequenceNumberPolicy::Ignore);
    let playing = tokio::time::timeout(setup_timeout, session.play(play))
        .await
        .map_err(|_| IngestError::Timeout("no answer to PLAY within 15 s".into()))?
        .map_err(IngestError::from_retina)?;
    let demuxed = playing.demuxed().map_err(IngestError::from_retina)?;
    Ok(RetinaSource {
        demuxed,
        video,
        clock_rate,
    })
}

impl FrameSource for RetinaSource {
    fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    fn next_frame(&mut self) -> BoxFuture<'_, Option<Result<SourceFrame, IngestError>>> {
        Box::pin(async move {
            loop {
                let item = match self.demuxed.next().await? {
                    Err(e) => return Some(Err(IngestError::from_retina(e))),
                    Ok(item) => item,
                };
                let CodecItem::VideoFrame(frame) = item else {
                    continue;
                };
                if frame.stream_id() != self.video {
                    continue;
                }
                return Some(Ok(SourceFrame {
                    timestamp: frame.timestamp().elapsed(),
                    is_key: frame.is_random_access_point(),
                    new_params: frame.has_new_parameters(),
                    data: frame.into_data(),
                }));
            }
        })
    }

    fn params(&self) -> Result<TrackParams, IngestError> {
        match self.demuxed.streams()[self.video].parameters() {
            Some(ParametersRef::Video(p)) => track_params(p),
            _ => Err(IngestError::Rtsp(
                "video frame without codec parameters".into(),
            )),
        }
    }
}

/// Runs one camera session until it fails or `stop` resolves. `start_ticks` is where this
/// session's first frame lands on the camera timeline (the recorder keeps it monotonic).
pub async fn run_session(
    opener: &dyn Opener,
    source: &Source,
    start_ticks: impl Fn() -> i64,
    tx: &tokio::sync::mpsc::Sender<IngestEvent>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let mut frames = opener.open(source).await?;
    let mut clock = Clock {
        base_ticks: 0,
        first_elapsed: None,
        clock_rate: i64::from(frames.clock_rate().max(1)),
    };
    let mut sent_params = false;
    let mut seen_key = false;
    loop {
        let item = tokio::select! {
            _ = stop.changed() => return Ok(()),
            item = tokio::time::timeout(source.inactivity_timeout, frames.next_frame()) => item,
        };
        let frame = match item {
            Err(_) => return Err(IngestError::Stalled(source.inactivity_timeout)),
            Ok(None) => return Err(IngestError::Ended),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(frame))) => frame,
        };
        if !seen_key {
            if !frame.is_key {
                continue;
            }
            seen_key = true;
        }
        if !sent_params || frame.new_params {
            let params = frames.params()?;
            if tx.send(IngestEvent::Params(params)).await.is_err() {
                return Ok(());
            }
            sent_params = true;
        }
        if clock.first_elapsed.is_none() {
            clock.base_ticks = start_ticks();
        }
        let ev = IngestEvent::Frame(Frame {
            pts: clock.ticks(frame.timestamp),
            is_key: frame.is_key,
            data: frame.data.into(),
        });
        if tx.send(ev).await.is_err() {
            return Ok(());
        }
    }
}

/// Exponential back-off: 1 s, 2 s, 4 s … capped.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    let secs = 1u64.checked_shl(attempt.min(16)).unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_credentials_refused() {
        assert!(validate_url("rtsp://127.0.0.1:8554/cam").is_ok());
        for bad in [
            "http://x/y",
            "rtsp://user:pw@host/x",
            "rtsp://user@host/x",
            "not a url",
            "rtsp:///path",
            "",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
        assert!(validate_url("rtsps://h:322/x").is_ok());
        assert!(validate_url("rtsps://u:p@h/x").is_err());
    }

    #[test]
    fn backoff_doubles_to_cap() {
        let cap = Duration::from_secs(30);
        let v: Vec<u64> = (0..7).map(|a| backoff(a, cap).as_secs()).collect();
        assert_eq!(v, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(100, cap), cap);
    }

    #[test]
    fn a_stall_is_not_called_a_disconnect() {
        assert_eq!(
            IngestError::Stalled(Duration::from_secs(10)).gap_reason(),
            "stalled: no data for 10s"
        );
        for e in [
            IngestError::Ended,
            IngestError::Rtsp("connection reset".into()),
        ] {
            assert_eq!(e.gap_reason(), "camera disconnected", "{e}");
        }
    }

    #[test]
    fn debug_never_shows_password() {
        let s = Source {
            stream_id: "cam-000000000001".into(),
            tls_pin: None,
            url: "rtsp://h/x".into(),
            username: Some("u".into()),
            password: Some("s3cret-pw".into()),
            inactivity_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
