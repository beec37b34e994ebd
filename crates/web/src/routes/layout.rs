//! The caller's live-view layout (`/api/v1/account/layout`): the web client's live page loads
//! it when it opens and saves it on every change, so the layout follows the user to any
//! browser. The use case (who has a layout, which cameras a tile may hold, what a load shows)
//! is `vigil_app::layout`; this module maps HTTP to it.
//!
//! Like the other `/api/v1/account` routes it acts only on the signed-in user's own account
//! (there is no user name in the path, so nobody reads or writes another's layout) and refuses
//! API tokens (403 `session_required`: a layout belongs to a person using the web client). It
//! also needs a role with live view (an auditor gets 403). A saved layout is audited as
//! `layout_changed`.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::LayoutKind;
use vigil_app::layout::{self, LayoutError, LayoutInput, LayoutView};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::json::Json;
use crate::routes::blocking;
use crate::state::SharedState;

/// The largest layout body accepted: 16 tiles of 64-character names need under 1.5 KiB.
pub const MAX_LAYOUT_BODY: usize = 16 * 1024;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(get_layout, put_layout))
        .layer(DefaultBodyLimit::max(MAX_LAYOUT_BODY))
}

/// The grid kinds of the live page in the OpenAPI document: the names of
/// `vigil_access::LayoutKind`, which holds the one list of kinds.
pub struct LayoutKindName;

impl utoipa::PartialSchema for LayoutKindName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The grid kinds of the live page."))
            .enum_values(Some(LayoutKind::ALL.iter().map(|k| k.as_str())))
            .into()
    }
}

impl ToSchema for LayoutKindName {}

/// A live-view layout as `PUT` takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutRequest {
    /// The grid: `1`, `2x2`, `3x3`, `4x4` or `1+5` (anything else is refused).
    #[schema(value_type = LayoutKindName)]
    pub kind: String,
    /// The camera of each tile in order, `null` for an empty tile; at most as many as the kind
    /// has tiles (1, 4, 9, 16, 6). Every camera must be one the caller may watch live (403
    /// otherwise, whether it exists or not) and must exist (400 `unknown_camera`).
    #[schema(max_items = 16)]
    pub tiles: Vec<Option<String>>,
}

/// The caller's live-view layout.
#[derive(Debug, Serialize, ToSchema)]
pub struct LayoutAnswer {
    #[schema(value_type = LayoutKindName)]
    pub kind: String,
    /// The camera of each tile in order; `null`: an empty tile, also for a saved camera that no
    /// longer exists or that the caller may no longer see. Tiles beyond the list are the
    /// client's to fill.
    pub tiles: Vec<Option<String>>,
    /// RFC 3339 time of the last save; `null`: never saved (this is the default layout).
    pub updated: Option<String>,
}

impl From<LayoutView> for LayoutAnswer {
    fn from(v: LayoutView) -> Self {
        LayoutAnswer {
            kind: v.kind.as_str().to_owned(),
            tiles: v.tiles,
            updated: v.updated.map(|t| t.to_string()),
        }
    }
}

fn layout_error(e: LayoutError) -> ApiError {
    let advice = matches!(e, LayoutError::UnknownCamera { .. })
        .then_some("; GET /api/v1/cameras lists the cameras you may watch");
    let mut err = ApiError::from_app(e);
    if let Some(advice) = advice {
        err.message.push_str(advice);
    }
    err
}

/// The caller's own live-view layout; the default (`2x2`, no tiles, `updated: null`) when they
/// never saved one. Cameras they may no longer see, or that were removed, come back as empty
/// tiles. Signed-in users whose role has live view; API tokens get 403.
#[utoipa::path(get, path = "/api/v1/account/layout", tag = "users",
    responses(
        (status = 200, body = LayoutAnswer),
        (status = 401, body = ErrorBody),
        (status = 403, description = "an API token (`session_required`) or a role without live view", body = ErrorBody),
    ))]
async fn get_layout(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<LayoutAnswer>> {
    layout::authorize(&caller.principal).map_err(layout_error)?;
    let (access, store) = (state.access.clone(), state.store.clone());
    let view = blocking(move || layout::load(&access, &store, &caller.principal))
        .await?
        .map_err(layout_error)?;
    Ok(Json(view.into()))
}

/// Saves the caller's own live-view layout (replacing the previous one) and returns it as
/// stored. A refused layout changes nothing; a different one is audited (`layout_changed`).
/// At most 16 KiB.
#[utoipa::path(put, path = "/api/v1/account/layout", tag = "users",
    request_body = LayoutRequest,
    responses(
        (status = 200, body = LayoutAnswer),
        (status = 400, description = "unknown kind or too many tiles (`invalid_layout`), a malformed camera name (`invalid_camera_name`), no such camera (`unknown_camera`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "an API token (`session_required`), a role without live view, a camera outside the caller's scope, or CSRF", body = ErrorBody),
        (status = 413, description = "a body above 16 KiB", body = ErrorBody),
    ))]
async fn put_layout(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<LayoutRequest>, ApiError>,
) -> ApiResult<Json<LayoutAnswer>> {
    // Who may have a layout is decided before the body is looked at.
    layout::authorize(&caller.principal).map_err(layout_error)?;
    let ApiJson(req) = body.map_err(|e| {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "a layout is at most {} KiB: a kind and up to 16 camera names",
                    MAX_LAYOUT_BODY / 1024
                ),
            )
        } else {
            e
        }
    })?;
    let (access, store) = (state.access.clone(), state.store.clone());
    let actor = caller.actor();
    let input = LayoutInput {
        kind: req.kind,
        tiles: req.tiles,
    };
    let view = blocking(move || layout::save(&access, &store, &caller.principal, &actor, input))
        .await?
        .map_err(layout_error)?;
    Ok(Json(view.into()))
}
