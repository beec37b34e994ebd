//! The RTSP server: accepting connections, answering requests, and pacing each session's
//! stream in real time.
//!
//! Each TCP connection is one task that owns its socket, its (single) session and that
//! session's pacing: requests, RTP frames and RTCP reports are interleaved on the one socket,
//! so one task owning it needs no locks, and a client that stalls or disconnects can only ever
//! stop its own task. A write that does not complete within `write_timeout` closes the
//! connection rather than buffering without bound.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::auth::{AuthConfig, AuthOutcome};
use crate::clip::{Clip, ClipError, ClipInfo};
use crate::request::{self, Limits, LowerTransport, Parsed, Request};
use crate::rtp::{PAYLOAD_TYPE, Packetizer};

/// Methods this server implements, as listed in `Public`.
const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER";
const SERVER: &str = concat!("Vigil-SampleCam/", env!("CARGO_PKG_VERSION"));
/// CNAME in RTCP SDES; identifies the source, not the host.
const CNAME: &str = "vigil-samplecam";
/// How far the pacer may fall behind (a slow client) before it re-anchors instead of bursting.
const MAX_LAG: Duration = Duration::from_secs(1);

/// How the sample camera behaves.
#[derive(Debug, Clone)]
pub struct SampleCameraOptions {
    /// Presentation path, e.g. `/sample` (the stream is `rtsp://ADDR/sample`).
    pub path: String,
    /// Credentials required for every request except `OPTIONS`; `None` serves anyone.
    pub auth: Option<AuthConfig>,
    /// Session timeout announced in the `Session` header; a connection with no traffic from
    /// the client for this long is closed.
    pub session_timeout: Duration,
    /// Interval between RTCP sender reports while playing (the first goes out with the first
    /// frame, so a client gets wall-clock mapping at once).
    pub rtcp_interval: Duration,
    /// Largest RTP payload; larger NAL units are split into FU-A fragments.
    pub max_rtp_payload: usize,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// A socket write that takes longer than this closes the connection.
    pub write_timeout: Duration,
    /// Request size limits.
    pub limits: Limits,
    /// The clip to loop; `None` uses the built-in `assets/sample.h264`.
    pub clip: Option<Arc<Clip>>,
}

impl Default for SampleCameraOptions {
    fn default() -> Self {
        SampleCameraOptions {
            path: "/sample".into(),
            auth: None,
            session_timeout: Duration::from_secs(60),
            rtcp_interval: Duration::from_secs(5),
            max_rtp_payload: 1400,
            max_connections: 64,
            write_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            clip: None,
        }
    }
}

/// Why the sample camera could not start.
#[derive(Debug, thiserror::Error)]
pub enum SampleCameraError {
    #[error("cannot listen on {addr}: {source}; pick a free port or use port 0")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid sample camera option: {0}")]
    InvalidOptions(String),
    #[error("the clip cannot be streamed: {0}")]
    Clip(#[from] ClipError),
}

/// Starts sample cameras.
pub struct SampleCamera;

impl SampleCamera {
    /// Binds `bind` (port 0 picks a free port) and serves until the handle is shut down or
    /// dropped. Must be called within a tokio runtime.
    pub async fn start(
        bind: SocketAddr,
        options: SampleCameraOptions,
    ) -> Result<SampleCameraHandle, SampleCameraError> {
        let path = validate(&options)?;
        let clip = match &options.clip {
            Some(clip) => Arc::clone(clip),
            None => Arc::new(Clip::builtin()?),
        };
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| SampleCameraError::Bind { addr: bind, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| SampleCameraError::Bind { addr: bind, source })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            sdp_fmtp: fmtp(&clip),
            clip: Arc::clone(&clip),
            track_path: if path == "/" {
                "/trackID=0".to_string()
            } else {
                format!("{path}/trackID=0")
            },
            path: path.clone(),
            connections: AtomicUsize::new(0),
            playing: AtomicUsize::new(0),
            options,
        });
        info!(
            %local_addr,
            path = %shared.path,
            frames = clip.info().frame_count,
            fps = clip.info().frame_rate.as_f64(),
            auth = ?shared.options.auth.as_ref().map(|a| a.scheme),
            "sample camera listening"
        );
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), shutdown_rx));
        Ok(SampleCameraHandle {
            local_addr,
            shared,
            shutdown: shutdown_tx,
            task: Some(task),
        })
    }
}

fn validate(options: &SampleCameraOptions) -> Result<String, SampleCameraError> {
    let invalid = |s: String| Err(SampleCameraError::InvalidOptions(s));
    let path = options.path.trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    if !path.starts_with('/')
        || !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
        || path.contains("//")
    {
        return invalid(format!(
            "path {:?} must start with '/' and contain only letters, digits and -._~/",
            options.path
        ));
    }
    if !(16..=65_000).contains(&options.max_rtp_payload) {
        return invalid(format!(
            "max_rtp_payload {} must be within 16..=65000 (interleaved frames carry a 16-bit length)",
            options.max_rtp_payload
        ));
    }
    if options.session_timeout < Duration::from_secs(1) {
        return invalid("session_timeout must be at least 1 s".into());
    }
    if options.rtcp_interval < Duration::from_millis(100) {
        return invalid("rtcp_interval must be at least 100 ms".into());
    }
    if options.write_timeout.is_zero() || options.max_connections == 0 {
        return invalid("write_timeout and max_connections must be non-zero".into());
    }
    let l = &options.limits;
    if l.max_header_bytes < 256 || l.max_headers == 0 {
        return invalid("limits must allow at least 256 header bytes and one header".into());
    }
    if let Some(auth) = &options.auth
        && (auth.username.is_empty() || auth.username.contains([':', '"', '\\']))
    {
        return invalid("auth username must be non-empty and free of ':', '\"' and '\\'".into());
    }
    Ok(path.to_string())
}

/// A running sample camera. Dropping it stops the server in the background;
/// [`shutdown`](Self::shutdown) stops it and waits.
pub struct SampleCameraHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SampleCameraHandle {
    /// The address actually bound (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `rtsp://ADDR/PATH`, the URL a client should open.
    pub fn url(&self) -> String {
        format!("rtsp://{}{}", self.local_addr, self.shared.path)
    }

    /// Facts about the clip being served.
    pub fn clip_info(&self) -> &ClipInfo {
        self.shared.clip.info()
    }

    /// Open TCP connections.
    pub fn active_connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Sessions currently streaming.
    pub fn playing_sessions(&self) -> usize {
        self.shared.playing.load(Ordering::SeqCst)
    }

    /// Stops accepting, closes every connection and waits for the tasks to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            warn!(error = %e, "sample camera task ended abnormally");
        }
    }
}

impl Drop for SampleCameraHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

struct Shared {
    options: SampleCameraOptions,
    clip: Arc<Clip>,
    path: String,
    track_path: String,
    sdp_fmtp: String,
    connections: AtomicUsize,
    playing: AtomicUsize,
}

/// Decrements a counter when dropped, so counts stay right however a task ends.
struct CountGuard<'a>(&'a AtomicUsize);

impl<'a> CountGuard<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        CountGuard(counter)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if shared.connections.load(Ordering::SeqCst) >= shared.options.max_connections {
                        warn!(%peer, limit = shared.options.max_connections, "connection limit reached; closing new connection");
                        continue;
                    }
                    let shared = Arc::clone(&shared);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        let _guard = CountGuard::new(&shared.connections);
                        serve_connection(&shared, stream, peer, shutdown).await;
                    });
                }
                Err(e) => {
                    // Usually descriptor exhaustion; back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    // Connection tasks watch the same signal; give them a moment to say goodbye.
    let drained = timeout(Duration::from_secs(2), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    info!("sample camera stopped");
}

/// One RTSP session; at most one per connection.
struct Session<'a> {
    id: String,
    rtp_channel: u8,
    rtcp_channel: u8,
    packetizer: Packetizer,
    base_ts: u32,
    /// Frames sent since the session began (across loops).
    next_frame: u64,
    play: Option<Play<'a>>,
}

struct Play<'a> {
    /// Frame `anchor_frame` is due at `anchor`; later frames follow at the clip's rate.
    anchor: Instant,
    anchor_frame: u64,
    next_rtcp: Instant,
    _playing: CountGuard<'a>,
}

struct Conn<'a> {
    shared: &'a Shared,
    peer: SocketAddr,
    local: SocketAddr,
    nonce: String,
    session: Option<Session<'a>>,
}

/// An answer to one request.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    content_type: Option<&'static str>,
}

impl Reply {
    fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            content_type: None,
        }
    }

    /// An error answer whose body tells the client what went wrong.
    fn error(status: u16, reason: impl Into<String>) -> Reply {
        let mut body = reason.into().into_bytes();
        body.extend_from_slice(b"\r\n");
        Reply {
            status,
            headers: Vec::new(),
            body,
            content_type: Some("text/plain; charset=utf-8"),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn write(&self, cseq: Option<u32>, out: &mut Vec<u8>) {
        use std::fmt::Write as _;
        let mut head = format!(
            "RTSP/1.0 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        if let Some(cseq) = cseq {
            let _ = write!(head, "CSeq: {cseq}\r\n");
        }
        let _ = write!(head, "Server: {SERVER}\r\n");
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if let Some(ct) = self.content_type {
            let _ = write!(head, "Content-Type: {ct}\r\n");
        }
        if !self.body.is_empty() {
            let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        }
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&self.body);
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Request Entity Too Large",
        451 => "Parameter Not Understood",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "RTSP Version Not Supported",
        _ => "Error",
    }
}

async fn serve_connection(
    shared: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = stream.local_addr().unwrap_or(peer);
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut conn = Conn {
        shared,
        peer,
        local,
        nonce: format!("{:016x}{:016x}", random_u64(), random_u64()),
        session: None,
    };
    debug!(%peer, "connection opened");
    let opts = &shared.options;
    let read_cap = opts.limits.max_header_bytes + opts.limits.max_body_bytes + 4 + 65_535;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut idle_deadline = Instant::now() + opts.session_timeout;
    let end = loop {
        // Answer every complete request already buffered (clients may pipeline).
        let mut close = false;
        loop {
            match request::parse_message(&buf, &opts.limits) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Interleaved { consumed, .. }) => {
                    // RTCP receiver reports: they only prove the client is alive.
                    buf.drain(..consumed);
                }
                Ok(Parsed::Request { request, consumed }) => {
                    buf.drain(..consumed);
                    let cseq = request.cseq;
                    let reply = conn.handle(&request);
                    reply.write(Some(cseq), &mut out);
                }
                Err(e) => {
                    warn!(%peer, error = %e, "rejecting malformed request and closing the connection");
                    Reply::error(e.status(), e.to_string()).write(None, &mut out);
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty()
            && let Err(why) = write_out(&mut writer, &mut out, opts.write_timeout).await
        {
            break why;
        }
        if close {
            break "malformed request";
        }
        let now = Instant::now();
        let (frame_due, rtcp_due) = match conn
            .session
            .as_ref()
            .and_then(|s| s.play.as_ref().map(|p| (s, p)))
        {
            Some((s, p)) => (
                Some(
                    p.anchor
                        + shared
                            .clip
                            .info()
                            .frame_rate
                            .offset_of(s.next_frame - p.anchor_frame),
                ),
                Some(p.next_rtcp),
            ),
            None => (None, None),
        };
        tokio::select! {
            biased;
            _ = shutdown.changed() => break "server shutting down",
            _ = sleep_until(idle_deadline) => break "no traffic from client within the session timeout",
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break "client closed the connection",
                Ok(_) => {
                    idle_deadline = Instant::now() + opts.session_timeout;
                    if buf.len() > read_cap {
                        // The parser rejects anything this large; this only guards memory.
                        break "receive buffer limit exceeded";
                    }
                }
                Err(_) => break "read error",
            },
            _ = sleep_until(frame_due.unwrap_or(now)), if frame_due.is_some() => {
                conn.send_frame(&mut out);
                if let Err(why) = write_out(&mut writer, &mut out, opts.write_timeout).await {
                    break why;
                }
            }
            _ = sleep_until(rtcp_due.unwrap_or(now)), if rtcp_due.is_some() => {
                conn.send_sender_report(&mut out);
                if let Err(why) = write_out(&mut writer, &mut out, opts.write_timeout).await {
                    break why;
                }
            }
        }
    };
    let _ = writer.shutdown().await;
    if end == "malformed request" {
        linger(&mut reader).await;
    }
    match &conn.session {
        Some(s) => {
            info!(%peer, session = %s.id, frames_sent = s.next_frame, reason = end, "connection closed")
        }
        None => debug!(%peer, reason = end, "connection closed"),
    }
}

/// After answering a bad request, reads (and discards) what the client still sends for a
/// moment: closing a socket with unread input makes the kernel send a reset, which can
/// destroy the error response before the client reads it.
async fn linger(reader: &mut tokio::net::tcp::OwnedReadHalf) {
    let mut scratch = [0u8; 4096];
    let mut budget: usize = 1 << 20;
    let _ = timeout(Duration::from_millis(500), async {
        while let Ok(n @ 1..) = reader.read(&mut scratch).await {
            budget = budget.saturating_sub(n);
            if budget == 0 {
                break;
            }
        }
    })
    .await;
}

async fn write_out(
    writer: &mut OwnedWriteHalf,
    out: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), &'static str> {
    let result = timeout(limit, writer.write_all(out)).await;
    out.clear();
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("write error (client gone)"),
        Err(_) => Err("write timed out (client not reading)"),
    }
}

impl<'a> Conn<'a> {
    fn handle(&mut self, req: &Request) -> Reply {
        let peer = self.peer;
        let path = req.path();
        debug!(%peer, method = %req.method, path = path.unwrap_or("*"), cseq = req.cseq, "request");
        let method = req.method.as_str();
        if !matches!(
            method,
            "OPTIONS" | "DESCRIBE" | "SETUP" | "PLAY" | "TEARDOWN" | "GET_PARAMETER"
        ) {
            return Reply::error(
                501,
                format!(
                    "method {:?} is not implemented; this server supports {PUBLIC}",
                    truncate(method)
                ),
            )
            .header("Public", PUBLIC);
        }
        if method != "OPTIONS"
            && let Some(auth) = &self.shared.options.auth
            && let AuthOutcome::Denied(why) =
                auth.check(req.header("Authorization"), method, &self.nonce)
        {
            // Only the first, credential-less request of a client is routine.
            if req.header("Authorization").is_some() {
                warn!(%peer, method, reason = %why, "authentication failed");
            } else {
                debug!(%peer, method, "credentials required");
            }
            return Reply::error(401, "valid credentials are required")
                .header("WWW-Authenticate", auth.challenge(&self.nonce));
        }
        let target = match path {
            None if method == "OPTIONS" => Target::Presentation,
            None => return Reply::error(400, format!("{method} needs a URL, not '*'")),
            Some(p) => {
                let p = if p.len() > 1 {
                    p.trim_end_matches('/')
                } else {
                    p
                };
                if p == self.shared.path {
                    Target::Presentation
                } else if p == self.shared.track_path {
                    Target::Track
                } else {
                    return Reply::error(
                        404,
                        format!(
                            "no stream at {:?}; this camera serves {}",
                            truncate(p),
                            self.shared.path
                        ),
                    );
                }
            }
        };
        // A Session header must name this connection's session.
        let session_header = req
            .header("Session")
            .map(|v| v.split(';').next().unwrap_or("").trim());
        if let Some(id) = session_header
            && self.session.as_ref().map(|s| s.id.as_str()) != Some(id)
        {
            return Reply::error(454, "unknown session; SETUP first on this connection");
        }
        match method {
            "OPTIONS" => Reply::new(200).header("Public", PUBLIC),
            "DESCRIBE" => self.describe(req, target),
            "SETUP" => self.setup(req),
            "PLAY" => self.play(req),
            "TEARDOWN" => self.teardown(),
            "GET_PARAMETER" => {
                if !req.body.is_empty() {
                    return Reply::error(
                        451,
                        "this camera has no parameters; send GET_PARAMETER without a body as a keep-alive",
                    );
                }
                self.with_session(Reply::new(200))
            }
            _ => unreachable_method(),
        }
    }

    fn with_session(&self, reply: Reply) -> Reply {
        match &self.session {
            Some(s) => reply.header(
                "Session",
                format!(
                    "{};timeout={}",
                    s.id,
                    self.shared.options.session_timeout.as_secs()
                ),
            ),
            None => reply,
        }
    }

    /// `rtsp://authority/path/`, from the URL the client used so relative control URLs
    /// resolve against the name it knows us by.
    fn base_url(&self, req: &Request) -> String {
        let authority = req
            .authority()
            .filter(|a| {
                !a.is_empty()
                    && a.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]%_".contains(&b))
            })
            .map_or_else(|| self.local.to_string(), str::to_string);
        let path = if self.shared.path == "/" {
            ""
        } else {
            &self.shared.path
        };
        format!("rtsp://{authority}{path}/")
    }

    fn describe(&self, req: &Request, target: Target) -> Reply {
        if target == Target::Track {
            return Reply::error(404, "DESCRIBE the presentation URL, not the track");
        }
        let info = self.shared.clip.info();
        let (family, addr) = match self.local.ip() {
            std::net::IpAddr::V4(ip) => ("IP4", ip.to_string()),
            std::net::IpAddr::V6(ip) => ("IP6", ip.to_string()),
        };
        let unspecified = if family == "IP4" { "0.0.0.0" } else { "::" };
        let fps = info.frame_rate.as_f64();
        let sdp = format!(
            "v=0\r\n\
             o=- {session} 1 IN {family} {addr}\r\n\
             s=Vigil sample camera\r\n\
             t=0 0\r\n\
             a=tool:vigil-samplecam\r\n\
             a=type:broadcast\r\n\
             a=control:*\r\n\
             a=range:npt=0-\r\n\
             m=video 0 RTP/AVP {pt}\r\n\
             c=IN {family} {unspecified}\r\n\
             a=rtpmap:{pt} H264/90000\r\n\
             a=fmtp:{pt} {fmtp}\r\n\
             a=framerate:{fps}\r\n\
             a=x-dimensions:{w},{h}\r\n\
             a=control:trackID=0\r\n",
            session = random_u64() >> 1,
            pt = PAYLOAD_TYPE,
            fmtp = self.shared.sdp_fmtp,
            w = info.width,
            h = info.height,
        );
        let mut reply = Reply::new(200).header("Content-Base", self.base_url(req));
        reply.body = sdp.into_bytes();
        reply.content_type = Some("application/sdp");
        reply
    }

    fn setup(&mut self, req: &Request) -> Reply {
        let Some(transport) = req.header("Transport") else {
            return Reply::error(
                400,
                "SETUP needs a Transport header, e.g. RTP/AVP/TCP;unicast;interleaved=0-1",
            );
        };
        let specs = match request::parse_transport(transport) {
            Ok(specs) => specs,
            Err(why) => return Reply::error(400, format!("bad Transport header: {why}")),
        };
        let Some(spec) = specs
            .iter()
            .find(|s| s.rtp_avp && s.lower == LowerTransport::Tcp && !s.multicast)
        else {
            return Reply::error(
                461,
                "only RTP/AVP/TCP unicast (interleaved) is offered; ask for TCP transport, e.g. rtsp_transport=tcp",
            );
        };
        if self.session.as_ref().is_some_and(|s| s.play.is_some()) {
            return Reply::error(455, "cannot SETUP while playing; TEARDOWN first");
        }
        let (rtp_channel, rtcp_channel) = spec.interleaved.unwrap_or((0, 1));
        let session = match self.session.take() {
            Some(mut s) => {
                s.rtp_channel = rtp_channel;
                s.rtcp_channel = rtcp_channel;
                s
            }
            None => {
                let r = random_u64();
                Session {
                    id: format!("{:016X}", random_u64()),
                    rtp_channel,
                    rtcp_channel,
                    packetizer: Packetizer::new(
                        r as u32,
                        (r >> 32) as u16,
                        self.shared.options.max_rtp_payload,
                    ),
                    base_ts: (r >> 48) as u32 | ((random_u64() as u32) << 16),
                    next_frame: 0,
                    play: None,
                }
            }
        };
        let reply = Reply::new(200).header(
            "Transport",
            format!(
                "RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={:08X};mode=\"PLAY\"",
                session.packetizer.ssrc()
            ),
        );
        info!(peer = %self.peer, session = %session.id, rtp_channel, "session set up");
        self.session = Some(session);
        self.with_session(reply)
    }

    fn play(&mut self, req: &Request) -> Reply {
        let base = self.base_url(req);
        let rate = self.shared.clip.info().frame_rate;
        let Some(session) = self.session.as_mut() else {
            return Reply::error(455, "PLAY before SETUP; SETUP the track first");
        };
        if session.play.is_none() {
            let now = Instant::now();
            session.play = Some(Play {
                anchor: now,
                anchor_frame: session.next_frame,
                next_rtcp: now,
                _playing: CountGuard::new(&self.shared.playing),
            });
            info!(peer = %self.peer, session = %session.id, "playing");
        }
        let rtptime = rtp_timestamp(session.base_ts, rate.ticks_90k(session.next_frame));
        let reply = Reply::new(200).header("Range", "npt=0.000-").header(
            "RTP-Info",
            format!(
                "url={base}trackID=0;seq={};rtptime={rtptime}",
                session.packetizer.next_seq()
            ),
        );
        self.with_session(reply)
    }

    fn teardown(&mut self) -> Reply {
        match self.session.take() {
            Some(s) => {
                info!(peer = %self.peer, session = %s.id, frames_sent = s.next_frame, "session torn down");
                Reply::new(200)
            }
            None => Reply::error(454, "no session to tear down on this connection"),
        }
    }

    /// Appends the next frame's packets; called when it is due.
    fn send_frame(&mut self, out: &mut Vec<u8>) {
        let clip = &self.shared.clip;
        let rate = clip.info().frame_rate;
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let Some(play) = session.play.as_mut() else {
            return;
        };
        let index = (session.next_frame % clip.frames().len() as u64) as usize;
        let ts = rtp_timestamp(session.base_ts, rate.ticks_90k(session.next_frame));
        session
            .packetizer
            .packetize(&clip.frames()[index], ts, session.rtp_channel, out);
        session.next_frame += 1;
        let now = Instant::now();
        let next_due = play.anchor + rate.offset_of(session.next_frame - play.anchor_frame);
        if now > next_due + MAX_LAG {
            // The client could not keep up; restart pacing from here rather than bursting
            // seconds of video at it. RTCP follows the new anchor, so wall-clock stays right.
            debug!(session = %session.id, "pacing fell behind; re-anchoring");
            play.anchor = now;
            play.anchor_frame = session.next_frame;
        }
    }

    fn send_sender_report(&mut self, out: &mut Vec<u8>) {
        let rate = self.shared.clip.info().frame_rate;
        let interval = self.shared.options.rtcp_interval;
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let Some(play) = session.play.as_mut() else {
            return;
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        // RTP time of "now" on the same timeline the frames follow.
        let elapsed = now.saturating_duration_since(play.anchor);
        let ticks = rate.ticks_90k(play.anchor_frame)
            + u64::try_from(elapsed.as_nanos() * 90_000 / 1_000_000_000).unwrap_or(0);
        let ts = rtp_timestamp(session.base_ts, ticks);
        session
            .packetizer
            .sender_report(wall, ts, CNAME, session.rtcp_channel, out);
        play.next_rtcp = now + interval;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Presentation,
    Track,
}

fn unreachable_method() -> Reply {
    // `handle` filters methods before dispatch; answering keeps this panic-free regardless.
    Reply::error(500, "internal dispatch error")
}

fn rtp_timestamp(base: u32, ticks: u64) -> u32 {
    (u64::from(base).wrapping_add(ticks)) as u32
}

/// `a=fmtp` parameters from the clip's parameter sets (RFC 6184 section 8.1).
fn fmtp(clip: &Clip) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "packetization-mode=1;profile-level-id={};sprop-parameter-sets={},{}",
        clip.info().profile_level_id(),
        b64.encode(clip.sps()),
        b64.encode(clip.pps())
    )
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Session ids, SSRCs, nonces: from the OS generator, falling back to a randomly keyed hash
/// of the time if the OS generator is unavailable.
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_validated() {
        let ok = SampleCameraOptions::default();
        assert_eq!(validate(&ok).unwrap(), "/sample");
        let trailing = SampleCameraOptions {
            path: "/cams/one/".into(),
            ..SampleCameraOptions::default()
        };
        assert_eq!(validate(&trailing).unwrap(), "/cams/one");
        let root = SampleCameraOptions {
            path: "/".into(),
            ..SampleCameraOptions::default()
        };
        assert_eq!(validate(&root).unwrap(), "/");
        for bad in [
            SampleCameraOptions {
                path: "sample".into(),
                ..Default::default()
            },
            SampleCameraOptions {
                path: "/a b".into(),
                ..Default::default()
            },
            SampleCameraOptions {
                path: "/a//b".into(),
                ..Default::default()
            },
            SampleCameraOptions {
                max_rtp_payload: 2,
                ..Default::default()
            },
            SampleCameraOptions {
                max_rtp_payload: 70_000,
                ..Default::default()
            },
            SampleCameraOptions {
                session_timeout: Duration::ZERO,
                ..Default::default()
            },
            SampleCameraOptions {
                max_connections: 0,
                ..Default::default()
            },
            SampleCameraOptions {
                auth: Some(AuthConfig {
                    scheme: crate::AuthScheme::Digest,
                    username: "a:b".into(),
                    password: "x".into(),
                }),
                ..Default::default()
            },
        ] {
            let err = validate(&bad).expect_err("invalid options");
            assert!(matches!(err, SampleCameraError::InvalidOptions(_)));
        }
    }

    #[test]
    fn fmtp_carries_parameter_sets() {
        let clip = Clip::builtin().unwrap();
        let f = fmtp(&clip);
        assert!(
            f.starts_with("packetization-mode=1;profile-level-id=4D"),
            "{f}"
        );
        let sets = f.split("sprop-parameter-sets=").nth(1).unwrap();
        let (sps, pps) = sets.split_once(',').unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(sps).unwrap(), clip.sps());
        assert_eq!(b64.decode(pps).unwrap(), clip.pps());
    }

    #[test]
    fn rtp_timestamps_wrap() {
        assert_eq!(rtp_timestamp(u32::MAX, 1), 0);
        assert_eq!(rtp_timestamp(10, 6_000), 6_010);
    }
}
