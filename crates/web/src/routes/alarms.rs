//! Alarms and bookmarks (docs/rules-and-alarms.md): list, read, acknowledge and close
//! alarms; list bookmarks for a camera's timeline, make and delete them. The use cases (who
//! may do what, state changes, audit, the `alarm.*` events) are `vigil_app::alarms`; this
//! module maps HTTP to them. Reading needs Playback (admins, operators, viewers; a principal
//! limited to some cameras sees those cameras' alarms and bookmarks only), handling needs
//! HandleAlarms (admins, operators) on the camera; auditors have neither.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{Denied, Permission};
use vigil_events::alarms::{Alarm, AlarmQuery, AlarmState, AlarmStep, Handling};
use vigil_events::bookmarks::{Bookmark, BookmarkQuery, Creator};
use vigil_media::store::now_us;
use vigil_media::time::{format_us, parse_time};

use super::blocking;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::json::Json;
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(list_alarms))
        .routes(routes!(get_alarm))
        .routes(routes!(acknowledge))
        .routes(routes!(close))
        .routes(routes!(list_bookmarks, create_bookmark))
        .routes(routes!(delete_bookmark))
}

fn bad_filter(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_filter", message)
}

fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// Refuses a caller whose role lacks `permission` before anything else is looked at (the
/// camera is checked by the use case once the alarm or bookmark is known).
fn require_role(caller: &Caller, permission: Permission) -> ApiResult<()> {
    let role = caller.principal.role();
    if role.grants(permission) {
        Ok(())
    } else {
        Err(ApiError::from(Denied::Role { role, permission }))
    }
}

/// Who did a step and when.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandlingView {
    /// The user (or token) who did it.
    pub by: String,
    /// RFC 3339.
    pub time: String,
    pub comment: Option<String>,
}

impl From<&Handling> for HandlingView {
    fn from(h: &Handling) -> Self {
        HandlingView {
            by: h.by.clone(),
            time: format_us(h.time_us),
            comment: h.comment.clone(),
        }
    }
}

/// An alarm.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmView {
    pub id: i64,
    /// The rule that raised it.
    pub rule: String,
    /// 1 (most urgent) … 5.
    pub priority: u8,
    /// `new`, `acknowledged` or `closed`.
    pub state: String,
    pub camera: Option<String>,
    pub source_kind: String,
    pub source: String,
    /// The kind of the event that raised it.
    pub kind: String,
    /// The latest matching event's message.
    pub message: String,
    /// Matching events counted into it while it was open.
    pub count: u64,
    /// The first matching event's time (RFC 3339).
    pub first_seen: String,
    /// The latest matching event's time.
    pub last_seen: String,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    /// The events (`GET /api/v1/events`) that raised it and that last counted into it.
    pub first_event_id: Option<i64>,
    pub last_event_id: Option<i64>,
    /// When it was raised.
    pub created: String,
    pub acknowledged: Option<HandlingView>,
    pub closed: Option<HandlingView>,
}

impl From<&Alarm> for AlarmView {
    fn from(a: &Alarm) -> Self {
        AlarmView {
            id: a.id,
            rule: a.rule.clone(),
            priority: a.priority,
            state: a.state.as_str().into(),
            camera: a.camera.clone(),
            source_kind: a.source_kind.as_str().into(),
            source: a.source.clone(),
            kind: a.kind.clone(),
            message: a.message.clone(),
            count: a.count,
            first_seen: format_us(a.first_us),
            last_seen: format_us(a.last_us),
            first_seen_us: a.first_us,
            last_seen_us: a.last_us,
            first_event_id: a.first_event_id,
            last_event_id: a.last_event_id,
            created: format_us(a.created_us),
            acknowledged: a.acknowledged.as_ref().map(HandlingView::from),
            closed: a.closed.as_ref().map(HandlingView::from),
        }
    }
}

/// A page of alarms, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmPageView {
    pub alarms: Vec<AlarmView>,
    /// Give as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Filters, combined with AND; newest first.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlarmFilter {
    /// States, comma-separated: `new`, `acknowledged`, `closed` (`new,acknowledged`: open).
    pub state: Option<String>,
    pub camera: Option<String>,
    pub rule: Option<String>,
    /// At least this urgent: 1 … 5.
    pub priority: Option<u8>,
    /// Paging: alarms older than this id (a previous answer's `next_before`).
    pub before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Alarms, newest first, filtered and paged. Playback (admins, operators, viewers); a
/// caller limited to some cameras sees the alarms of those cameras only.
#[utoipa::path(get, path = "/api/v1/alarms", tag = "alarms",
    params(AlarmFilter),
    responses(
        (status = 200, body = AlarmPageView),
        (status = 400, description = "a filter that does not parse (`bad_filter`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "a role without Playback (auditors)", body = ErrorBody),
    ))]
async fn list_alarms(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(f): ApiQuery<AlarmFilter>,
) -> ApiResult<Json<AlarmPageView>> {
    require_role(&caller, Permission::Playback)?;
    let mut states = Vec::new();
    for s in f.state.as_deref().unwrap_or("").split(',').map(str::trim) {
        if s.is_empty() {
            continue;
        }
        states.push(AlarmState::parse(s).ok_or_else(|| {
            bad_filter(format!(
                "unknown state '{}'; use new, acknowledged or closed",
                s.chars().take(32).collect::<String>()
            ))
        })?);
    }
    if let Some(p) = f.priority
        && !(1..=5).contains(&p)
    {
        return Err(bad_filter("priority must be 1 to 5".into()));
    }
    if let Some(l) = f.limit
        && !(1..=1000).contains(&l)
    {
        return Err(bad_filter("limit must be 1 to 1000".into()));
    }
    let q = AlarmQuery {
        states,
        camera: f.camera,
        rule: f.rule,
        priority: f.priority,
        visible_cameras: None,
        before_id: f.before,
        limit: f.limit.unwrap_or(0),
    };
    let alarms = state.alarms.clone();
    let page = blocking(move || alarms.list(&caller.principal, q))
        .await?
        .map_err(ApiError::from_app)?;
    Ok(Json(AlarmPageView {
        alarms: page.alarms.iter().map(AlarmView::from).collect(),
        next_before: page.next_before_id,
    }))
}

/// One alarm. Playback on its camera (an alarm of no camera: a caller that sees every camera).
#[utoipa::path(get, path = "/api/v1/alarms/{alarm}", tag = "alarms",
    params(("alarm" = i64, Path, description = "the alarm's id")),
    responses(
        (status = 200, body = AlarmView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such alarm (`alarm_not_found`)", body = ErrorBody),
    ))]
async fn get_alarm(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AlarmView>> {
    let alarms = state.alarms.clone();
    let a = blocking(move || alarms.get(&caller.principal, id))
        .await?
        .map_err(ApiError::from_app)?;
    Ok(Json(AlarmView::from(&a)))
}

/// What a step may carry.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// Why, for the record (at most 1024 bytes, one line).
    #[serde(default)]
    pub comment: Option<String>,
}

async fn step(
    state: SharedState,
    caller: Caller,
    id: i64,
    step: AlarmStep,
    body: Bytes,
) -> ApiResult<Json<AlarmView>> {
    require_role(&caller, Permission::HandleAlarms)?;
    let req: StepRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StepRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| bad_request(format!("the body is not a valid step request: {e}")))?
    };
    let alarms = state.alarms.clone();
    let actor = caller.actor();
    let a =
        blocking(move || alarms.step(&caller.principal, &actor, id, step, req.comment.as_deref()))
            .await?
            .map_err(ApiError::from_app)?;
    Ok(Json(AlarmView::from(&a)))
}

/// Acknowledges a new alarm (someone is on it): who, when and the comment are kept, the step
/// is audited (`alarm_changed`) and published as an `alarm.acknowledged` event. HandleAlarms
/// (admins, operators) on the alarm's camera. The body (`{"comment": ...}`) may be left out.
#[utoipa::path(post, path = "/api/v1/alarms/{alarm}/acknowledge", tag = "alarms",
    params(("alarm" = i64, Path, description = "the alarm's id")),
    request_body(content = StepRequest, description = "optional"),
    responses(
        (status = 200, body = AlarmView),
        (status = 400, description = "a comment that is too long or has control characters (`bad_comment`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such alarm (`alarm_not_found`)", body = ErrorBody),
        (status = 409, description = "not new any more (`alarm_state`)", body = ErrorBody),
    ))]
async fn acknowledge(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> ApiResult<Json<AlarmView>> {
    step(state, caller, id, AlarmStep::Acknowledge, body).await
}

/// Closes a new or acknowledged alarm; closed is final (the next match raises a new alarm).
/// Audited and published as `alarm.closed`. HandleAlarms on the alarm's camera.
#[utoipa::path(post, path = "/api/v1/alarms/{alarm}/close", tag = "alarms",
    params(("alarm" = i64, Path, description = "the alarm's id")),
    request_body(content = StepRequest, description = "optional"),
    responses(
        (status = 200, body = AlarmView),
        (status = 400, description = "a bad comment (`bad_comment`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such alarm (`alarm_not_found`)", body = ErrorBody),
        (status = 409, description = "already closed (`alarm_state`)", body = ErrorBody),
    ))]
async fn close(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> ApiResult<Json<AlarmView>> {
    step(state, caller, id, AlarmStep::Close, body).await
}

/// A bookmark.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookmarkView {
    pub id: i64,
    pub camera: String,
    /// RFC 3339.
    pub from: String,
    pub to: String,
    pub from_us: i64,
    pub to_us: i64,
    pub label: String,
    /// `user` or `rule`.
    pub creator_kind: String,
    /// The user's or the rule's name.
    pub creator: String,
    /// The alarm raised for the same event, for a rule's bookmark.
    pub alarm_id: Option<i64>,
    /// The event that fired the rule.
    pub event_id: Option<i64>,
    pub created: String,
}

impl From<&Bookmark> for BookmarkView {
    fn from(b: &Bookmark) -> Self {
        let (kind, name) = match &b.creator {
            Creator::User(n) => ("user", n),
            Creator::Rule(n) => ("rule", n),
        };
        BookmarkView {
            id: b.id,
            camera: b.camera.clone(),
            from: format_us(b.from_us),
            to: format_us(b.to_us),
            from_us: b.from_us,
            to_us: b.to_us,
            label: b.label.clone(),
            creator_kind: kind.into(),
            creator: name.clone(),
            alarm_id: b.alarm_id,
            event_id: b.event_id,
            created: format_us(b.created_us),
        }
    }
}

/// Bookmarks by start time.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookmarkPageView {
    pub bookmarks: Vec<BookmarkView>,
    /// Give as `after` for the next page (`<from_us>:<id>`); absent on the last page.
    pub next_after: Option<String>,
}

/// Filters, combined with AND; by start time.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BookmarkFilter {
    pub camera: Option<String>,
    /// Bookmarks ending after this time (RFC 3339, -1h, now, or Unix seconds).
    pub from: Option<String>,
    /// Bookmarks starting before this time.
    pub to: Option<String>,
    /// Paging: a previous answer's `next_after`.
    pub after: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Bookmarks overlapping a time range, by start time: what a camera's timeline shows.
/// Playback, within the caller's cameras.
#[utoipa::path(get, path = "/api/v1/bookmarks", tag = "alarms",
    params(BookmarkFilter),
    responses(
        (status = 200, body = BookmarkPageView),
        (status = 400, description = "a filter that does not parse (`bad_filter`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "a role without Playback (auditors)", body = ErrorBody),
    ))]
async fn list_bookmarks(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(f): ApiQuery<BookmarkFilter>,
) -> ApiResult<Json<BookmarkPageView>> {
    require_role(&caller, Permission::Playback)?;
    let now = now_us();
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| parse_time(t, now).map_err(|e| bad_filter(format!("{name}: {e}"))))
            .transpose()
    };
    let after = f
        .after
        .as_deref()
        .map(|a| {
            a.split_once(':')
                .and_then(|(t, id)| Some((t.parse().ok()?, id.parse().ok()?)))
                .ok_or_else(|| bad_filter("after: give a previous answer's next_after".into()))
        })
        .transpose()?;
    if let Some(l) = f.limit
        && !(1..=1000).contains(&l)
    {
        return Err(bad_filter("limit must be 1 to 1000".into()));
    }
    let q = BookmarkQuery {
        camera: f.camera.clone(),
        from_us: time("from", &f.from)?,
        to_us: time("to", &f.to)?,
        visible_cameras: None,
        after,
        limit: f.limit.unwrap_or(0),
    };
    let alarms = state.alarms.clone();
    let page = blocking(move || alarms.bookmarks(&caller.principal, q))
        .await?
        .map_err(ApiError::from_app)?;
    Ok(Json(BookmarkPageView {
        bookmarks: page.bookmarks.iter().map(BookmarkView::from).collect(),
        next_after: page.next_after.map(|(t, id)| format!("{t}:{id}")),
    }))
}

/// A bookmark to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBookmarkRequest {
    pub camera: String,
    /// Start (RFC 3339, -1h, now, or Unix seconds).
    pub from: String,
    /// End, after the start; at most a day later.
    pub to: String,
    /// 1 to 256 bytes, one line.
    pub label: String,
}

/// Makes a bookmark (audited as `bookmark_changed`). HandleAlarms on the camera.
#[utoipa::path(post, path = "/api/v1/bookmarks", tag = "alarms",
    request_body = NewBookmarkRequest,
    responses(
        (status = 201, body = BookmarkView),
        (status = 400, description = "a bad range or label (`bad_bookmark`), or a body that does not parse", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
async fn create_bookmark(
    State(state): State<SharedState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<BookmarkView>)> {
    require_role(&caller, Permission::HandleAlarms)?;
    let req: NewBookmarkRequest = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("the body is not a valid bookmark: {e}")))?;
    let now = now_us();
    let from = parse_time(&req.from, now).map_err(|e| bad_request(format!("from: {e}")))?;
    let to = parse_time(&req.to, now).map_err(|e| bad_request(format!("to: {e}")))?;
    let alarms = state.alarms.clone();
    let actor = caller.actor();
    let b = blocking(move || {
        alarms.add_bookmark(&caller.principal, &actor, &req.camera, from, to, &req.label)
    })
    .await?
    .map_err(ApiError::from_app)?;
    Ok((StatusCode::CREATED, Json(BookmarkView::from(&b))))
}

/// Deletes a bookmark, a rule's too (audited). HandleAlarms on its camera.
#[utoipa::path(delete, path = "/api/v1/bookmarks/{bookmark}", tag = "alarms",
    params(("bookmark" = i64, Path, description = "the bookmark's id")),
    responses(
        (status = 200, description = "what was deleted", body = BookmarkView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such bookmark (`bookmark_not_found`)", body = ErrorBody),
    ))]
async fn delete_bookmark(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<BookmarkView>> {
    require_role(&caller, Permission::HandleAlarms)?;
    let alarms = state.alarms.clone();
    let actor = caller.actor();
    let b = blocking(move || alarms.delete_bookmark(&caller.principal, &actor, id))
        .await?
        .map_err(ApiError::from_app)?;
    Ok(Json(BookmarkView::from(&b)))
}
