//! Live video: `GET /api/v1/cameras/{camera}/live[?stream=main|secondary]` upgrades to a
//! WebSocket that carries the live feed of one of the camera's streams (the main stream, or its
//! secondary stream when it has one) as fragmented MP4, one fragment per frame, from the latest
//! keyframe the server holds (the protocol is docs/live-protocol.md).
//!
//! The frames come from the camera's recorder through the process's [`vigil_media::live::LiveHub`]:
//! no viewer opens a camera connection of its own, every viewer shares the fragments built
//! once per frame, and a viewer that cannot keep up is dropped to the next keyframe.
//!
//! Who may watch: a session (cookie) or an API token with ViewLive on the camera. A session's
//! handshake must carry an `Origin` equal to `https://<Host>` (a page of another origin, even
//! on the same host, cannot open it with the user's cookie); a token needs none (a browser
//! cannot put one on a WebSocket). Watching does not count as session activity. Every second
//! the session (or token), the permission and the camera are checked again; the socket is
//! closed with 4001 when the session ends, 4003 when the permission is withdrawn and 4004
//! when the camera (or the secondary stream watched) is removed.

use std::net::IpAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{Access, AuditKind, Permission, Principal, SessionError, TokenError};
use vigil_media::live::{FeedKey, Stream, Viewer, ViewerEvent};
use vigil_media::store::{Camera, Store};

use crate::auth::{Caller, PollingCaller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::listen::ListenerStop;
use crate::routes::cameras::{check_camera_name, find_camera};
use crate::routes::{audit, blocking};
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(live))
}

/// Close code: the session ended (logout, idle or absolute expiry), or the token or address
/// is no longer accepted.
pub const CLOSE_SESSION_ENDED: u16 = 4001;
/// Close code: the caller no longer has ViewLive on the camera.
pub const CLOSE_FORBIDDEN: u16 = 4003;
/// Close code: the camera was removed (or the secondary stream watched).
pub const CLOSE_CAMERA_REMOVED: u16 = 4004;
/// Close code (RFC 6455): the server is stopping, or the listener was retired.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// How often a viewer's session, permission and camera are checked again.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A viewer that cannot take one message in this long is gone (its socket is dropped).
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Clients send at most "ping"; anything larger is refused by the WebSocket layer.
const MAX_CLIENT_MESSAGE: usize = 4096;

/// Which of the camera's streams to watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamParam {
    /// The camera's main stream (the default).
    #[default]
    Main,
    /// Its secondary stream (typically a lower resolution, for grids); 404
    /// `no_secondary_stream` when the camera has none.
    Secondary,
}

impl From<StreamParam> for Stream {
    fn from(s: StreamParam) -> Self {
        match s {
            StreamParam::Main => Stream::Main,
            StreamParam::Secondary => Stream::Secondary,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    /// `main` (default) or `secondary`.
    pub stream: Option<StreamParam>,
}

fn no_secondary_stream(camera: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_secondary_stream",
        format!(
            "camera '{camera}' has no secondary stream; watch its main stream (stream=main, or leave `stream` out), or give it one with PATCH /api/v1/cameras/{camera} (`secondary`)"
        ),
    )
}

/// Live video of a camera over a WebSocket (ViewLive). Answers 101 and then streams: a JSON
/// text message `{"type":"init","codec","width","height"}` followed by the init segment
/// (binary), one binary fMP4 fragment (moof+mdat) per frame in decode order starting at a
/// keyframe, `{"type":"state","state","message"}` on subscribe and on every change
/// (`connecting`, `live`, `reconnecting`, `offline`, `stopped`), and
/// `{"type":"skipped","frames":N}` when a lagging viewer was dropped to the next keyframe.
/// The text "ping" is answered "pong". With a session cookie the `Origin` header must be
/// `https://` + the `Host` header (403 `bad_origin`). Close codes: 4001 session ended, 4003
/// permission withdrawn, 4004 camera removed, 1001 server stopping or listener retired.
/// Watching does not count as session activity. `stream=secondary` watches the camera's
/// secondary stream (404 `no_secondary_stream` without one). See docs/live-protocol.md.
#[utoipa::path(get, path = "/api/v1/cameras/{camera}/live", tag = "cameras",
    params(("camera" = String, Path, description = "camera name"), LiveQuery),
    responses(
        (status = 101, description = "WebSocket established; the live protocol follows (docs/live-protocol.md)"),
        (status = 400, description = "malformed camera name (`invalid_camera_name`), an unknown `stream` (`bad_request`), or not a WebSocket handshake over HTTP/1.1 (`websocket_required`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "no ViewLive permission on the camera (`forbidden`), or a session whose `Origin` is missing or not this server (`bad_origin`)", body = ErrorBody),
        (status = 404, description = "no such camera (`camera_not_found`, only after the permission check), or `stream=secondary` on a camera without one (`no_secondary_stream`)", body = ErrorBody),
    ),
    security(("session" = []), ("token" = [])))]
#[allow(clippy::too_many_arguments)]
async fn live(
    State(state): State<SharedState>,
    PollingCaller(caller): PollingCaller,
    ApiPath(name): ApiPath<String>,
    query: Result<ApiQuery<LiveQuery>, ApiError>,
    headers: HeaderMap,
    listener: Option<Extension<ListenerStop>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    caller.require(Permission::ViewLive, Some(&name))?;
    check_camera_name(&name)?;
    let ApiQuery(query) = query?;
    let stream: Stream = query.stream.unwrap_or_default().into();
    let ws = ws.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "websocket_required",
            format!(
                "this endpoint is a WebSocket ({}); open it with a WebSocket client over HTTP/1.1, see docs/live-protocol.md",
                e.body_text()
            ),
        )
    })?;
    let credential = credential(&caller, &headers)?;
    let store = state.store.clone();
    let camera = blocking(move || find_camera(&store, &name)).await??;
    if stream == Stream::Secondary && camera.secondary.is_none() {
        return Err(no_secondary_stream(&camera.name));
    }
    audit(
        &state,
        &caller,
        AuditKind::LiveView,
        json!({ "camera": camera.name, "stream": stream.as_str() }),
    )
    .await?;
    let guard = Guard {
        access: state.access.clone(),
        store: state.store.clone(),
        camera,
        stream,
        source: caller.source,
        credential,
    };
    let listener = listener.map(|Extension(l)| l);
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "live video: upgrade failed"))
        .on_upgrade(move |socket| async move {
            let viewer = state
                .live
                .subscribe(&FeedKey::new(&guard.camera.id, guard.stream));
            serve(socket, viewer, guard, listener).await;
        }))
}

/// What the viewer authenticated with, to check again while it watches.
enum Credential {
    Session(String),
    Token(String),
}

/// The session or token of `caller`; a session's handshake must come from this server's own
/// origin.
fn credential(caller: &Caller, headers: &HeaderMap) -> ApiResult<Credential> {
    if let Some(id) = &caller.session_id {
        same_origin(headers)?;
        return Ok(Credential::Session(id.clone()));
    }
    // Authenticated without a session: by the bearer token (the extractor accepted it).
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, t)| t.trim().to_owned())
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Credential::Token(token))
}

fn bad_origin(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "bad_origin",
        format!(
            "{message}: live video with a session cookie is only served to pages of this server (Origin must be https://<Host>)"
        ),
    )
}

/// The `Origin` header must name this server as the client reached it: `https://` and the
/// `Host` header (default port 443 either way, host names in any case).
fn same_origin(headers: &HeaderMap) -> ApiResult<()> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad_origin("the handshake has no Origin header"))?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad_origin("the handshake has no Host header"))?;
    let normalize = |authority: &str| {
        let a = authority.trim().to_ascii_lowercase();
        match a.strip_suffix(":443") {
            Some(bare) => bare.to_owned(),
            None => a,
        }
    };
    let Some(origin_authority) = origin.strip_prefix("https://") else {
        return Err(bad_origin("the Origin is not an https:// origin"));
    };
    if origin_authority.contains(['/', '@', '?', '#'])
        || normalize(origin_authority) != normalize(host)
    {
        return Err(bad_origin("the Origin is not this server"));
    }
    Ok(())
}

/// Why a viewer's socket ends.
#[derive(Debug)]
enum End {
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The client closed: answer its close frame.
    ClientClosed,
    /// The connection is gone or hopeless: nothing more can be sent.
    Gone,
}

/// Checks, while a viewer watches, that it still may.
struct Guard {
    access: std::sync::Arc<Access>,
    store: std::sync::Arc<Store>,
    camera: Camera,
    stream: Stream,
    source: IpAddr,
    credential: Credential,
}

impl Guard {
    /// Resolves when the viewer must stop watching.
    async fn watch(self: std::sync::Arc<Self>) -> End {
        let mut every = tokio::time::interval(CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            let guard = self.clone();
            match blocking(move || guard.check()).await {
                Ok(Some(end)) => return end,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e.message, "live video: cannot check the viewer"),
            }
        }
    }

    /// `Some` when the viewer must stop. Internal failures (a busy database, say) keep it
    /// watching until the next check.
    fn check(&self) -> Option<End> {
        let principal: Principal = match &self.credential {
            Credential::Session(id) => {
                // Not `validate_session`: watching is no activity.
                match self.access.session_status(id) {
                    Ok(info) => info.principal,
                    Err(SessionError::Internal(e)) => {
                        tracing::warn!(error = %e, "live video: cannot read the session");
                        return None;
                    }
                    Err(_) => return Some(End::Close(CLOSE_SESSION_ENDED, "session ended")),
                }
            }
            Credential::Token(token) => match self.access.authenticate_token(token, self.source) {
                Ok(p) => p,
                Err(TokenError::Internal(e)) => {
                    tracing::warn!(error = %e, "live video: cannot read the token");
                    return None;
                }
                Err(_) => return Some(End::Close(CLOSE_SESSION_ENDED, "token no longer valid")),
            },
        };
        if self.access.check(self.source).is_err() {
            return Some(End::Close(CLOSE_SESSION_ENDED, "address blocked"));
        }
        if principal
            .authorize(Permission::ViewLive, Some(&self.camera.name))
            .is_err()
        {
            return Some(End::Close(CLOSE_FORBIDDEN, "permission withdrawn"));
        }
        match self.store.cameras() {
            Ok(cams) => match cams.iter().find(|c| c.id == self.camera.id) {
                None => Some(End::Close(CLOSE_CAMERA_REMOVED, "camera removed")),
                Some(c) if self.stream == Stream::Secondary && c.secondary.is_none() => {
                    Some(End::Close(CLOSE_CAMERA_REMOVED, "secondary stream removed"))
                }
                Some(_) => None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "live video: cannot read the cameras");
                None
            }
        }
    }
}

/// One viewer's socket: the feed out, "ping" in, the guard and the listener watching.
async fn serve(
    socket: WebSocket,
    mut viewer: Viewer,
    guard: Guard,
    listener: Option<ListenerStop>,
) {
    let camera = guard.camera.name.clone();
    let removed = match guard.stream {
        Stream::Main => "camera removed",
        Stream::Secondary => "secondary stream removed",
    };
    let (mut sink, mut stream) = socket.split();
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<()>(4);
    let stopped = async move {
        match listener {
            Some(l) => l.stopped().await,
            None => std::future::pending().await,
        }
    };
    let end = tokio::select! {
        end = pump(&mut sink, &mut viewer, &mut pong_rx, removed) => end,
        end = read(&mut stream, pong_tx) => end,
        end = std::sync::Arc::new(guard).watch() => end,
        () = stopped => End::Close(CLOSE_GOING_AWAY, "going away"),
    };
    tracing::debug!(camera, ?end, "live video: viewer leaves");
    let last = match end {
        End::Close(code, reason) => Some(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }))),
        End::ClientClosed => None,
        End::Gone => return,
    };
    // A close frame (ours, or the answer to the client's) and then the end, in a second at
    // most: a send cut short above left its frame to be flushed first.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if let Some(m) = last {
            sink.send(m).await?;
        }
        sink.close().await
    })
    .await;
}

/// Sends the feed (and pongs) until the camera (or stream) is removed or the socket fails;
/// `removed` is the close reason then.
async fn pump<S>(
    sink: &mut S,
    viewer: &mut Viewer,
    pongs: &mut tokio::sync::mpsc::Receiver<()>,
    removed: &'static str,
) -> End
where
    S: futures_util::Sink<Message> + Unpin,
{
    loop {
        let messages = tokio::select! {
            biased;
            Some(()) = pongs.recv() => vec![Message::Text(Utf8Bytes::from_static("pong"))],
            ev = viewer.next() => match ev {
                Some(ev) => messages(ev),
                None => return End::Close(CLOSE_CAMERA_REMOVED, removed),
            },
        };
        for m in messages {
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(m)).await {
                Ok(Ok(())) => {}
                _ => return End::Gone,
            }
        }
    }
}

/// The wire form of one feed event.
fn messages(ev: ViewerEvent) -> Vec<Message> {
    let text = |v: serde_json::Value| Message::Text(Utf8Bytes::from(v.to_string()));
    match ev {
        ViewerEvent::State(s) => vec![text(json!({
            "type": "state",
            "state": s.name(),
            "message": s.message(),
        }))],
        ViewerEvent::Init(init) => vec![
            text(json!({
                "type": "init",
                "codec": init.codec,
                "width": init.width,
                "height": init.height,
            })),
            Message::Binary(init.data.clone()),
        ],
        ViewerEvent::Fragment(f) => vec![Message::Binary(f.data)],
        ViewerEvent::Skipped(n) => vec![text(json!({ "type": "skipped", "frames": n }))],
    }
}

/// Reads what the client sends: "ping" is answered, the rest ignored; ends when the client
/// closes or the connection fails.
async fn read<S>(stream: &mut S, pongs: tokio::sync::mpsc::Sender<()>) -> End
where
    S: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Text(t)) if t.as_str() == "ping" => {
                // A client pinging faster than pongs go out loses the extra pongs.
                let _ = pongs.try_send(());
            }
            Ok(Message::Close(_)) => return End::ClientClosed,
            Ok(_) => {}
            Err(_) => return End::Gone,
        }
    }
    End::Gone
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn only_this_servers_https_origin_passes() {
        for (origin, host) in [
            ("https://127.0.0.1:8443", "127.0.0.1:8443"),
            ("https://VMS.example.net", "vms.example.net"),
            ("https://vms.example.net", "vms.example.net:443"),
            ("https://vms.example.net:443", "vms.example.net"),
            ("https://[::1]:8443", "[::1]:8443"),
        ] {
            assert!(
                same_origin(&headers(Some(origin), host)).is_ok(),
                "{origin} {host}"
            );
        }
        for (origin, host) in [
            (None, "127.0.0.1:8443"),
            (Some("http://127.0.0.1:8443"), "127.0.0.1:8443"),
            (Some("https://127.0.0.1:8444"), "127.0.0.1:8443"),
            (Some("https://127.0.0.1"), "127.0.0.1:8443"),
            (Some("https://evil.example"), "vms.example.net"),
            (
                Some("https://vms.example.net.evil.example"),
                "vms.example.net",
            ),
            (Some("https://x@vms.example.net"), "vms.example.net"),
            (Some("null"), "vms.example.net"),
        ] {
            let e = same_origin(&headers(origin, host)).unwrap_err();
            assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "bad_origin"));
        }
    }
}
