//! API tokens for integrations: list, create (the token is shown once; only its hash is
//! kept), revoke. All routes need `ManageUsers`: a token carries a role, so handing one out is
//! a permission change. The store and its auditing are vigil-access's.
//!
//! Handlers take their JSON body as `Result<ApiJson<_>, ApiError>` and unwrap it only after
//! the permission check, so a caller without the permission gets 403 whatever it sent.

use crate::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{NewToken, Permission, TokenInfo};

use super::blocking;
use super::users::{parse_role, scope_from, scope_view};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::SharedState;

/// Longest lifetime a token may be given; "valid until revoked" is spelled by leaving
/// `expires_in` out.
const MAX_TOKEN_LIFETIME_DAYS: u64 = 3650;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// A token as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// The public id (16 hex digits), also the `token:<id>` name in the audit log.
    pub id: String,
    pub name: String,
    pub role: String,
    /// Cameras the token may use; `null` means all.
    pub cameras: Option<Vec<String>>,
    /// `active`, `revoked` or `expired`.
    pub state: &'static str,
    pub created: String,
    pub created_by: String,
    /// `null`: valid until revoked.
    pub expires: Option<String>,
    pub revoked: Option<String>,
    pub last_used: Option<String>,
}

fn view(t: TokenInfo, now: vigil_access::Timestamp) -> TokenView {
    let state = t.state(now);
    TokenView {
        cameras: scope_view(&t.cameras),
        id: t.id,
        name: t.name,
        role: t.role.to_string(),
        state,
        created: t.created.to_string(),
        created_by: t.created_by,
        expires: t.expires.map(|e| e.to_string()),
        revoked: t.revoked.map(|e| e.to_string()),
        last_used: t.last_used.map(|e| e.to_string()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// What the token is for, e.g. "VMS bridge".
    pub name: String,
    /// admin, operator, viewer, auditor or event_source (posting events only).
    pub role: String,
    /// Cameras the token may use; absent or `null` means all.
    #[serde(default)]
    pub cameras: Option<Vec<String>>,
    /// Lifetime such as `30d`, `12h`, `90m`; absent: valid until revoked.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// A new token. `token` is shown this once; only its hash is stored.
#[derive(Serialize, ToSchema)]
pub struct CreatedTokenView {
    pub id: String,
    /// Send as `Authorization: Bearer <token>`. Store it now: it cannot be shown again.
    pub token: String,
    pub name: String,
    pub role: String,
    pub cameras: Option<Vec<String>>,
    pub expires: Option<String>,
}

fn parse_lifetime(text: &str) -> ApiResult<std::time::Duration> {
    let d = vigil_config::parse_duration(text)
        .map_err(|e| ApiError::bad_request(format!("expires_in: {e}")))?;
    if d < std::time::Duration::from_secs(60) {
        return Err(ApiError::bad_request(
            "expires_in must be at least 1m; leave it out for a token valid until revoked",
        ));
    }
    if d > std::time::Duration::from_secs(MAX_TOKEN_LIFETIME_DAYS * 86_400) {
        return Err(ApiError::bad_request(format!(
            "expires_in must be at most {MAX_TOKEN_LIFETIME_DAYS}d; leave it out for a token valid until revoked"
        )));
    }
    Ok(d)
}

/// Every token, revoked and expired ones included.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses(
        (status = 200, body = Vec<TokenView>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
    ))]
async fn list_tokens(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TokenView>>> {
    caller.require(Permission::ManageUsers, None)?;
    let access = state.access.clone();
    let tokens = blocking(move || access.list_tokens()).await??;
    let now = state.access.now();
    Ok(Json(tokens.into_iter().map(|t| view(t, now)).collect()))
}

/// Creates a token scoped to a role and cameras; the secret is returned once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, body = CreatedTokenView),
        (status = 400, description = "invalid name, role, camera or lifetime", body = ErrorBody),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
    ))]
async fn create_token(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<CreateTokenRequest>, ApiError>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageUsers, None)?;
    let ApiJson(req) = body?;
    let new = NewToken {
        name: req.name,
        role: parse_role(&req.role)?,
        cameras: scope_from(req.cameras)?,
        expires_in: req.expires_in.as_deref().map(parse_lifetime).transpose()?,
    };
    let access = state.access.clone();
    let actor = caller.actor();
    let (created, new) =
        blocking(move || access.create_token(&new, &actor).map(|c| (c, new))).await??;
    let body = CreatedTokenView {
        id: created.id.clone(),
        token: created.token.clone(),
        name: new.name.trim().to_owned(),
        role: new.role.to_string(),
        cameras: scope_view(&new.cameras),
        expires: created.expires.map(|e| e.to_string()),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Revokes a token for good; its next use is refused (401).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "the token's public id")),
    responses(
        (status = 204, description = "revoked (also when it already was)"),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn revoke_token(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageUsers, None)?;
    let access = state.access.clone();
    let actor = caller.actor();
    blocking(move || access.revoke_token(&id, &actor)).await??;
    Ok(StatusCode::NO_CONTENT)
}
