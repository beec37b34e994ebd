//! Events (docs/events.md): filtered, paged queries of the event store, and a WebSocket that
//! pushes each new event as it is stored. Who reads what is the application layer's rule
//! (`vigil_app::events::visibility`), checked for every query and once a second for a socket.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::Principal;
use vigil_app::analytics;
use vigil_app::events::{Visibility, visibility};
use vigil_events::{Category, Event, EventQuery, Live, Severity, SourceKind, Subscription};
use vigil_media::store::now_us;
use vigil_media::time::{format_us, parse_time};

use super::blocking;
use crate::auth::{Caller, PollingCaller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::json::Json;
use crate::listen::ListenerStop;
use crate::routes::watch::{
    CLOSE_FORBIDDEN, CLOSE_GOING_AWAY, Credential, End, MAX_CLIENT_MESSAGE, SEND_TIMEOUT, close,
    credential, principal_now, read, recheck,
};
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(query, post_event))
        .routes(routes!(post_signed_event))
        .routes(routes!(live))
        .layer(axum::extract::DefaultBodyLimit::max(analytics::MAX_BODY))
}

/// Filters, combined with AND; newest first.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// Happened at or after (RFC 3339, -1h, now, or Unix seconds).
    pub from: Option<String>,
    /// Happened before.
    pub to: Option<String>,
    /// Kinds, comma-separated: `camera.connection_lost`, or a prefix ending in `.` such as
    /// `security.`.
    pub kind: Option<String>,
    /// security, camera, recording, system, external or alarm.
    pub category: Option<String>,
    /// At least this severe: emergency, alert, critical, error, warning, notice, info, debug.
    pub severity: Option<String>,
    /// Events concerning this camera.
    pub camera: Option<String>,
    /// vigil, camera, recording_server, external, analytics or syslog.
    pub source_kind: Option<String>,
    /// The source's name (a server, a switch, a sending system).
    pub source: Option<String>,
    /// Message contains this text.
    pub text: Option<String>,
    /// Paging: events older than this id (a previous answer's `next_before`).
    pub before: Option<i64>,
    /// Events newer than this id.
    pub after: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Increasing, never reused.
    pub id: i64,
    /// When it happened (RFC 3339).
    pub time: String,
    pub time_us: i64,
    /// When the server stored it.
    pub received: String,
    /// Dotted, e.g. `camera.connection_lost`.
    pub kind: String,
    pub category: String,
    /// RFC 5424 severity name.
    pub severity: String,
    /// `vigil`, `camera`, `external`, `analytics`, `syslog`, …
    pub source_kind: String,
    pub source: String,
    pub message: String,
    pub camera: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            id: e.id,
            time: format_us(e.event.time_us),
            time_us: e.event.time_us,
            received: format_us(e.received_us),
            kind: e.event.kind.clone(),
            category: e.event.category.as_str().into(),
            severity: e.event.severity.as_str().into(),
            source_kind: e.event.source.kind.as_str().into(),
            source: e.event.source.name.clone(),
            message: e.event.message.clone(),
            camera: e.event.camera.clone(),
            attributes: e.event.attributes.clone(),
        }
    }
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// Give as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

fn bad_filter(message: String) -> ApiError {
    ApiError::new(axum::http::StatusCode::BAD_REQUEST, "bad_filter", message)
}

impl EventFilter {
    fn to_query(&self, principal: &Principal) -> ApiResult<EventQuery> {
        let now = now_us();
        let time = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| parse_time(t, now).map_err(|e| bad_filter(format!("{name}: {e}"))))
                .transpose()
        };
        let Visibility {
            categories: allowed,
            cameras,
        } = visibility(principal)?;
        let category = self
            .category
            .as_deref()
            .map(|c| {
                Category::parse(c).ok_or_else(|| {
                    bad_filter(format!(
                        "unknown category '{}'; use security, camera, recording, system, external or alarm",
                        c.chars().take(32).collect::<String>()
                    ))
                })
            })
            .transpose()?;
        let severity = self
            .severity
            .as_deref()
            .map(|s| {
                Severity::parse(s).ok_or_else(|| {
                    bad_filter(format!(
                        "unknown severity '{}'; use emergency, alert, critical, error, warning, notice, info or debug",
                        s.chars().take(32).collect::<String>()
                    ))
                })
            })
            .transpose()?;
        let source_kind = self
            .source_kind
            .as_deref()
            .map(|s| {
                SourceKind::parse(s).ok_or_else(|| {
                    bad_filter(format!(
                        "unknown source_kind '{}'; use vigil, camera, recording_server, external, analytics or syslog",
                        s.chars().take(32).collect::<String>()
                    ))
                })
            })
            .transpose()?;
        let kinds: Vec<String> = self
            .kind
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        if kinds.len() > 32 {
            return Err(bad_filter("at most 32 kinds in one query".into()));
        }
        if let Some(limit) = self.limit
            && !(1..=vigil_events::store::MAX_PAGE).contains(&limit)
        {
            return Err(bad_filter(format!(
                "limit must be 1 to {}",
                vigil_events::store::MAX_PAGE
            )));
        }
        Ok(EventQuery {
            from_us: time("from", &self.from)?,
            to_us: time("to", &self.to)?,
            kinds,
            category,
            allowed_categories: Some(allowed),
            severity,
            camera: self.camera.clone(),
            source_kind,
            source_name: self.source.clone(),
            text: self.text.clone().filter(|t| !t.is_empty()),
            visible_cameras: cameras,
            before_id: self.before,
            after_id: self.after,
            limit: self.limit.unwrap_or(0),
        })
    }
}

/// Events, newest first, filtered and paged (`before` = the previous page's `next_before`).
/// Security events (the audit log's entries) need ViewAudit; the others Playback, limited to
/// the caller's cameras (events of no camera included).
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(EventFilter),
    responses(
        (status = 200, body = EventPage),
        (status = 400, description = "a filter that does not parse (`bad_filter`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "a role that reads no events", body = ErrorBody),
    ))]
async fn query(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<EventFilter>,
) -> ApiResult<Json<EventPage>> {
    let q = filter.to_query(&caller.principal)?;
    let bus = state.events.clone();
    let page = blocking(move || bus.store().query(&q))
        .await?
        .map_err(ApiError::internal)?;
    Ok(Json(EventPage {
        events: page.events.iter().map(EventView::from).collect(),
        next_before: page.next_before_id,
    }))
}

/// What a live subscription wants; combined with AND.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LiveFilter {
    /// Kinds, comma-separated; a prefix ending in `.` matches every kind under it.
    pub kind: Option<String>,
    pub category: Option<String>,
    /// At least this severe.
    pub severity: Option<String>,
    pub camera: Option<String>,
}

/// New events as they are stored, over a WebSocket: one JSON text message per event
/// (`{"type":"event", ...}` with the fields of `GET /api/v1/events`), and
/// `{"type":"missed","count":N}` when the subscriber fell behind (fetch the events after the
/// last id received with `GET /api/v1/events?after=ID`). The text "ping" is answered
/// "pong". Authentication, `Origin` rule and close codes as for live video
/// (docs/live-protocol.md): 4001 session ended, 4003 no permission left to read events, 1001
/// server stopping. What the subscriber sees follows its permissions as they change.
#[utoipa::path(get, path = "/api/v1/events/live", tag = "events",
    params(LiveFilter),
    responses(
        (status = 101, description = "WebSocket established; events follow"),
        (status = 400, description = "a filter that does not parse (`bad_filter`), or not a WebSocket handshake (`websocket_required`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "a role that reads no events, or a session whose `Origin` is not this server (`bad_origin`)", body = ErrorBody),
    ),
    security(("session" = []), ("token" = [])))]
async fn live(
    State(state): State<SharedState>,
    PollingCaller(caller): PollingCaller,
    query: Result<ApiQuery<LiveFilter>, ApiError>,
    headers: HeaderMap,
    listener: Option<Extension<ListenerStop>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ApiQuery(filter) = query?;
    let wanted = EventFilter {
        kind: filter.kind,
        category: filter.category,
        severity: filter.severity,
        camera: filter.camera,
        ..Default::default()
    }
    .to_query(&caller.principal)?;
    let ws = ws.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "websocket_required",
            format!(
                "this endpoint is a WebSocket ({}); open it with a WebSocket client over HTTP/1.1",
                e.body_text()
            ),
        )
    })?;
    let credential = credential(&caller, &headers)?;
    let guard = EventGuard {
        access: state.access.clone(),
        source: caller.source,
        credential,
        wanted: std::sync::Mutex::new(wanted),
    };
    let listener = listener.map(|Extension(l)| l);
    // Subscribed before the 101 answer goes out: whatever is published after the client saw
    // its socket open reaches it (subscribing in the upgrade task left a window).
    let sub = state.events.subscribe();
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            serve_live(socket, sub, std::sync::Arc::new(guard), listener).await;
        }))
}

/// A subscriber's credential and what it may see, checked again every second.
struct EventGuard {
    access: std::sync::Arc<vigil_access::Access>,
    source: std::net::IpAddr,
    credential: Credential,
    /// The subscriber's filter, narrowed to what its permissions allow now.
    wanted: std::sync::Mutex<EventQuery>,
}

impl EventGuard {
    fn check(&self) -> Option<End> {
        let principal = match principal_now(&self.access, &self.credential, self.source) {
            Ok(p) => p,
            Err(end) => return end,
        };
        let Ok(Visibility {
            categories: allowed,
            cameras,
        }) = visibility(&principal)
        else {
            return Some(End::Close(CLOSE_FORBIDDEN, "no permission to read events"));
        };
        let mut w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        w.allowed_categories = Some(allowed);
        w.visible_cameras = cameras;
        None
    }

    fn wants(&self, e: &Event) -> bool {
        self.wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .matches(e)
    }
}

async fn serve_live(
    socket: WebSocket,
    mut sub: Subscription,
    guard: std::sync::Arc<EventGuard>,
    listener: Option<ListenerStop>,
) {
    let (mut sink, mut stream) = socket.split();
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<()>(4);
    let stopped = async move {
        match listener {
            Some(l) => l.stopped().await,
            None => std::future::pending().await,
        }
    };
    let end = tokio::select! {
        end = pump(&mut sink, &mut sub, &mut pong_rx, &guard) => end,
        end = read(&mut stream, pong_tx) => end,
        end = recheck(guard.clone(), EventGuard::check, "live events") => end,
        () = stopped => End::Close(CLOSE_GOING_AWAY, "going away"),
    };
    tracing::debug!(?end, "live events: subscriber leaves");
    close(&mut sink, end).await;
}

/// Sends the events the subscriber wants (and pongs) until the bus closes or the socket
/// fails.
async fn pump<S>(
    sink: &mut S,
    sub: &mut Subscription,
    pongs: &mut tokio::sync::mpsc::Receiver<()>,
    guard: &EventGuard,
) -> End
where
    S: futures_util::Sink<Message> + Unpin,
{
    loop {
        let msg = tokio::select! {
            biased;
            Some(()) = pongs.recv() => Message::Text(Utf8Bytes::from_static("pong")),
            next = sub.next() => match next {
                Some(Live::Event(e)) if guard.wants(&e) => {
                    let mut v = serde_json::to_value(EventView::from(&*e))
                        .expect("an event serialises");
                    v["type"] = "event".into();
                    Message::Text(Utf8Bytes::from(v.to_string()))
                }
                Some(Live::Event(_)) => continue,
                Some(Live::Missed(n)) => Message::Text(Utf8Bytes::from(
                    serde_json::json!({"type": "missed", "count": n}).to_string(),
                )),
                None => return End::Close(CLOSE_GOING_AWAY, "going away"),
            },
        };
        match tokio::time::timeout(SEND_TIMEOUT, sink.send(msg)).await {
            Ok(Ok(())) => {}
            _ => return End::Gone,
        }
    }
}

/// An analytics event as `POST /api/v1/events` takes it (checked by `vigil_app::analytics`;
/// docs/events-in.md).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AnalyticsEvent {
    /// The camera, by name; the caller must be allowed to write events about it.
    pub camera: String,
    /// When it was detected (RFC 3339); at most 5 min ahead and 24 h behind the server.
    pub time: String,
    /// What was detected, lowercase (`intrusion`, `line_crossing`); stored as
    /// `analytics.<type>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For people; default: made from the type, object class and camera.
    pub message: Option<String>,
    /// RFC 5424 severity name; default `notice`.
    pub severity: Option<String>,
    /// `person`, `vehicle`, …
    pub object_class: Option<String>,
    /// 0..1.
    pub confidence: Option<f64>,
    /// Up to 8 boxes, coordinates 0..1 of the picture.
    #[schema(value_type = Option<Vec<Object>>)]
    pub boxes: Option<Vec<serde_json::Value>>,
    /// Up to 16 `name: string | number | boolean`.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
}

/// What a posted event became.
#[derive(Debug, Serialize, ToSchema)]
pub struct PostedEvent {
    /// `analytics.<type>`.
    pub kind: String,
    pub camera: String,
    /// RFC 3339.
    pub time: String,
}

/// Posts an analytics event (docs/events-in.md): API tokens with the `event_source` role
/// (optionally limited to cameras) and admins. The body is checked field by field; accepted
/// events are stored and pushed like every other. At most 16 KiB.
#[utoipa::path(post, path = "/api/v1/events", tag = "events",
    request_body = AnalyticsEvent,
    responses(
        (status = 202, description = "queued for storing", body = PostedEvent),
        (status = 400, description = "a field missing or wrong (`invalid_event`), no such camera (`unknown_camera`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "a role that may not write events, or a camera outside the caller's scope", body = ErrorBody),
        (status = 413, description = "a body above 16 KiB", body = ErrorBody),
    ))]
async fn post_event(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(axum::http::StatusCode, Json<PostedEvent>)> {
    // Who may post is decided before the body is looked at.
    analytics::authorize(&caller.principal).map_err(ApiError::from_app)?;
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            "payload_too_large",
            format!(
                "an analytics event is at most {} KiB",
                analytics::MAX_BODY / 1024
            ),
        )
    })?;
    let (store, bus) = (state.store.clone(), state.events.clone());
    let posted = blocking(move || analytics::post(&caller.principal, &store, &bus, &body))
        .await?
        .map_err(ApiError::from_app)?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(PostedEvent {
            kind: posted.kind,
            camera: posted.camera,
            time: format_us(posted.time_us),
        }),
    ))
}

/// Posts an analytics event signed with a sender's shared secret instead of an API token
/// (`[[events.webhooks]]` in vigil.toml; docs/events-in.md): `X-Vigil-Timestamp` (Unix
/// seconds, within 5 min of the server's clock), `X-Vigil-Nonce` (never reused) and
/// `X-Vigil-Signature: sha256=<hex HMAC-SHA256 of timestamp "." nonce "." body>`. The body
/// is as for `POST /api/v1/events`; the sender may post about its configured cameras only.
#[utoipa::path(post, path = "/api/v1/events/webhook/{sender}", tag = "events",
    params(("sender" = String, Path, description = "the sender's name in `[[events.webhooks]]`")),
    request_body = AnalyticsEvent,
    responses(
        (status = 202, description = "queued for storing", body = PostedEvent),
        (status = 400, description = "a field missing or wrong (`invalid_event`), no such camera (`unknown_camera`)", body = ErrorBody),
        (status = 401, description = "unknown sender or wrong signature (`bad_signature`), a timestamp too far from the server's clock (`stale_request`), a nonce used before (`replayed_request`)", body = ErrorBody),
        (status = 403, description = "a camera outside the sender's list", body = ErrorBody),
        (status = 413, description = "a body above 16 KiB", body = ErrorBody),
        (status = 503, description = "the sender's secret file is missing, too short or readable by others (`webhook_secret_unavailable`), or the nonce cannot be recorded (`nonces_unavailable`)", body = ErrorBody),
    ),
    security(()))]
async fn post_signed_event(
    State(state): State<SharedState>,
    axum::extract::Path(sender): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(axum::http::StatusCode, Json<PostedEvent>)> {
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            "payload_too_large",
            format!(
                "an analytics event is at most {} KiB",
                analytics::MAX_BODY / 1024
            ),
        )
    })?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (ts, nonce, sig) = (
        header(analytics::TIMESTAMP_HEADER),
        header(analytics::NONCE_HEADER),
        header(analytics::SIGNATURE_HEADER),
    );
    let webhooks = state
        .config
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .events
        .webhooks
        .clone();
    let (store, bus, nonces) = (
        state.store.clone(),
        state.events.clone(),
        state.webhook_nonces.clone(),
    );
    let posted = blocking(move || {
        analytics::post_signed(
            &webhooks,
            &nonces,
            &sender,
            analytics::Signature {
                timestamp: ts.as_deref(),
                nonce: nonce.as_deref(),
                signature: sig.as_deref(),
            },
            now_us() / 1_000_000,
            &store,
            &bus,
            &body,
        )
    })
    .await?
    .map_err(ApiError::from_app)?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(PostedEvent {
            kind: posted.kind,
            camera: posted.camera,
            time: format_us(posted.time_us),
        }),
    ))
}
