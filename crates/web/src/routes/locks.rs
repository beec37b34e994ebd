//! Evidence locks of a camera: list them (Playback), set one (Export: those who may take
//! evidence away may also keep it), release one (ManageCameras: letting retention delete
//! evidence again is an administrator's decision). The use cases are `vigil_app::locks`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{AuditKind, Permission};
use vigil_media::store::{LockRow, now_us};
use vigil_media::time::format_us;

use super::cameras::check_camera_name;
use super::recordings::{parse_at, parse_end};
use super::{audit, blocking};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::json::Json;
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(list_locks, create_lock))
        .routes(routes!(release_lock))
}

/// An evidence lock.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockView {
    pub id: i64,
    pub camera: String,
    /// RFC 3339.
    pub from: String,
    pub to: String,
    pub from_us: i64,
    pub to_us: i64,
    pub reason: String,
    /// `user:<name>` (or `token:<id>`) or `rule:<name>`.
    pub created_by: String,
    pub created: String,
    /// When it ends by itself; absent: until released.
    pub expires: Option<String>,
    /// `active`, `released` or `expired`.
    pub state: &'static str,
    pub ended: Option<String>,
    pub ended_by: Option<String>,
}

impl LockView {
    fn of(l: &LockRow, camera: &str, now: i64) -> Self {
        LockView {
            id: l.id,
            camera: camera.to_owned(),
            from: format_us(l.from_us),
            to: format_us(l.to_us),
            from_us: l.from_us,
            to_us: l.to_us,
            reason: l.reason.clone(),
            created_by: l.created_by.clone(),
            created: format_us(l.created_us),
            expires: l.expires_us.map(format_us),
            state: l.state(now),
            ended: l.ended_us.map(format_us),
            ended_by: l.ended_by.clone(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LockRange {
    /// Locks overlapping this range (RFC 3339, -1h, now, or Unix seconds); all when absent.
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A camera's evidence locks (active and ended) overlapping a range, by start. Playback.
#[utoipa::path(get, path = "/api/v1/cameras/{camera}/locks", tag = "recordings",
    params(("camera" = String, Path, description = "camera name"), LockRange),
    responses(
        (status = 200, body = [LockView]),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn list_locks(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<LockRange>,
) -> ApiResult<Json<Vec<LockView>>> {
    caller.require(Permission::Playback, Some(&name))?;
    check_camera_name(&name)?;
    let now = now_us();
    let range = match (
        parse_end("from", q.from.as_deref(), now)?,
        parse_end("to", q.to.as_deref(), now)?,
    ) {
        (None, None) => None,
        (f, t) => Some((f.unwrap_or(i64::MIN), t.unwrap_or(i64::MAX))),
    };
    let store = state.store.clone();
    let locks = blocking(move || vigil_app::locks::list(&store, &name, range).map(|l| (name, l)))
        .await?
        .map_err(ApiError::from_app)?;
    let (name, locks) = locks;
    Ok(Json(
        locks.iter().map(|l| LockView::of(l, &name, now)).collect(),
    ))
}

/// An evidence lock to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLockRequest {
    /// Start (RFC 3339, -1h, now, or Unix seconds).
    pub from: String,
    /// End, after the start; at most 366 days later.
    pub to: String,
    /// Why (1 to 512 bytes, one line): the case, the incident.
    pub reason: String,
    /// When the lock ends by itself (same forms, in the future); absent: until released.
    pub expires: Option<String>,
}

/// Locks a range of a camera's video against retention, both streams (Export on the
/// camera). Signed in the camera's evidence ledger first; audited as `evidence_lock_changed`.
#[utoipa::path(post, path = "/api/v1/cameras/{camera}/locks", tag = "recordings",
    params(("camera" = String, Path, description = "camera name")),
    request_body = NewLockRequest,
    responses(
        (status = 201, body = LockView),
        (status = 400, description = "a bad range (`bad_range`, `bad_time`) or reason (`bad_reason`)", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, description = "the recording runtime does not run in this process (`not_recording`)", body = ErrorBody),
    ))]
async fn create_lock(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<LockView>)> {
    caller.require(Permission::Export, Some(&name))?;
    check_camera_name(&name)?;
    let req: NewLockRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not a valid lock: {e}"),
        )
    })?;
    let now = now_us();
    let (from, to) = (
        parse_at("from", &req.from, now)?,
        parse_at("to", &req.to, now)?,
    );
    let expires = parse_end("expires", req.expires.as_deref(), now)?;
    let store = state.store.clone();
    let evidence = state.evidence.get().cloned();
    let by = format!("user:{}", caller.name());
    let (cam, lock) = {
        let name = name.clone();
        blocking(move || {
            let new = vigil_app::locks::NewLock {
                camera: &name,
                from_us: from,
                to_us: to,
                reason: &req.reason,
                by: &by,
                expires_us: expires,
            };
            vigil_app::locks::lock(&store, evidence.as_deref(), &new).map(|l| (name, l))
        })
        .await?
        .map_err(ApiError::from_app)?
    };
    audit(
        &state,
        &caller,
        AuditKind::EvidenceLockChanged,
        json!({"action": "lock", "camera": cam, "lock": lock.id, "from_us": lock.from_us,
               "to_us": lock.to_us, "reason": lock.reason, "expires_us": lock.expires_us}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(LockView::of(&lock, &cam, now))))
}

/// Releases an evidence lock (ManageCameras): signed in the ledger, then retention may
/// delete the range again. Audited as `evidence_lock_changed`.
#[utoipa::path(delete, path = "/api/v1/cameras/{camera}/locks/{lock}", tag = "recordings",
    params(("camera" = String, Path, description = "camera name"),
           ("lock" = i64, Path, description = "the lock's id")),
    responses(
        (status = 200, description = "the released lock", body = LockView),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such lock on this camera (`lock_not_found`)", body = ErrorBody),
        (status = 409, description = "the lock has already ended (`lock_ended`)", body = ErrorBody),
    ))]
async fn release_lock(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath((name, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<LockView>> {
    caller.require(Permission::ManageCameras, Some(&name))?;
    check_camera_name(&name)?;
    let store = state.store.clone();
    let evidence = state.evidence.get().cloned();
    let by = format!("user:{}", caller.name());
    let (cam, lock) = {
        let name = name.clone();
        blocking(move || {
            vigil_app::locks::release(&store, evidence.as_deref(), &name, id, &by)
                .map(|l| (name, l))
        })
        .await?
        .map_err(ApiError::from_app)?
    };
    audit(
        &state,
        &caller,
        AuditKind::EvidenceLockChanged,
        json!({"action": "release", "camera": cam, "lock": lock.id, "from_us": lock.from_us,
               "to_us": lock.to_us}),
    )
    .await?;
    Ok(Json(LockView::of(&lock, &cam, now_us())))
}
