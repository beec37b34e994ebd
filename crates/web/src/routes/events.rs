//! Events (docs/events.md): filtered, paged queries of the event store. Who reads what: the
//! `security` category (the audit log's entries as events) needs `ViewAudit` (admins,
//! auditors); the other categories need `Playback` (admins, operators, viewers), and a
//! principal limited to some cameras sees only the events of those cameras and the events
//! of no camera.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{CameraScope, Permission, Principal};
use vigil_events::{Category, Event, EventQuery, Severity, SourceKind};
use vigil_media::store::now_us;
use vigil_media::time::{format_us, parse_time};

use super::blocking;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::json::Json;
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(query))
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

/// What `principal` may read of the events: the categories and the cameras. `Forbidden`
/// when neither.
pub(crate) fn visibility(principal: &Principal) -> ApiResult<(Vec<Category>, Option<Vec<String>>)> {
    let audit = principal.authorize(Permission::ViewAudit, None).is_ok();
    let role = principal.role();
    let video = role.grants(Permission::Playback);
    let mut categories = Vec::new();
    if audit {
        categories.push(Category::Security);
    }
    if video {
        categories.extend(
            Category::ALL
                .into_iter()
                .filter(|c| *c != Category::Security),
        );
    }
    if categories.is_empty() {
        return Err(ApiError::from(vigil_access::Denied::Role {
            role,
            permission: Permission::Playback,
        }));
    }
    let cameras = match (role.sees_all_cameras(), principal.cameras()) {
        (true, _) | (_, CameraScope::All) => None,
        (false, CameraScope::Only(set)) => Some(set.iter().cloned().collect()),
    };
    Ok((categories, cameras))
}

impl EventFilter {
    fn to_query(&self, principal: &Principal) -> ApiResult<EventQuery> {
        let now = now_us();
        let time = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| parse_time(t, now).map_err(|e| bad_filter(format!("{name}: {e}"))))
                .transpose()
        };
        let (allowed, cameras) = visibility(principal)?;
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
