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

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{Access, AuditKind, Permission};
use vigil_media::live::{FeedKey, Stream, Viewer, ViewerEvent};
use vigil_media::store::{Camera, Store};

use crate::auth::PollingCaller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::listen::ListenerStop;
use crate::routes::cameras::{check_camera_name, find_camera};
use crate::routes::watch::{
    CLOSE_CAMERA_REMOVED, CLOSE_FORBIDDEN, CLOSE_GOING_AWAY, Credential, End, MAX_CLIENT_MESSAGE,
    SEND_TIMEOUT, close, credential, principal_now, read, recheck,
};
use crate::routes::{audit, blocking};
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(live))
}

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
    /// `Some` when the viewer must stop. Internal failures (a busy database, say) keep it
    /// watching until the next check.
    fn check(&self) -> Option<End> {
        let principal = match principal_now(&self.access, &self.credential, self.source) {
            Ok(p) => p,
            Err(end) => return end,
        };
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
        end = recheck(std::sync::Arc::new(guard), Guard::check, "live video") => end,
        () = stopped => End::Close(CLOSE_GOING_AWAY, "going away"),
    };
    tracing::debug!(camera, ?end, "live video: viewer leaves");
    close(&mut sink, end).await;
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
