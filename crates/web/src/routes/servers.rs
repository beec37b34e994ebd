//! Recording servers under this management server (docs/cluster.md): the list with state and
//! certificate expiry, one-time enrolment tokens (shown once in the answer, never again) and
//! removal (the server's certificate is revoked). Admins only (`ManageCertificates`: joining
//! issues a certificate from the installation CA). Thin adapter over `vigil_app::cluster`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::Permission;
use vigil_app::cluster::{ClusterError, NewToken, ServerView};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::json::Json;
use crate::routes::blocking;
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(create_token))
        .routes(routes!(remove))
}

fn cluster_error(e: ClusterError) -> ApiError {
    match e {
        ClusterError::Cluster(vigil_cluster::Error::Invalid(m)) => ApiError::bad_request(m),
        e @ ClusterError::NoSuchServer(_) => ApiError::not_found(e.to_string()),
        ClusterError::Audit(a) if a.is_unavailable() => ApiError::from(a),
        e => ApiError::internal(e),
    }
}

fn config(state: &SharedState) -> vigil_config::Config {
    state
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Recording servers, current ones first: state (joined, online, offline, removed), last
/// heartbeat and its report, certificate expiry.
#[utoipa::path(get, path = "/api/v1/servers", tag = "servers",
    responses(
        (status = 200, body = Vec<ServerView>),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
    ))]
async fn list(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ServerView>>> {
    caller.require(Permission::ManageCertificates, None)?;
    let cfg = config(&state);
    let servers = blocking(move || vigil_app::cluster::servers(&cfg))
        .await?
        .map_err(cluster_error)?;
    Ok(Json(servers))
}

/// A one-time enrolment token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The joining server's name (letters, digits, '-', '_', '.'; its certificate's CN).
    pub name: String,
    /// Lifetime, e.g. "1h" (default), at most "7d".
    pub expires: Option<String>,
}

/// Creates a one-time token for a recording server to join with (`vigil server join`). The
/// answer is the only time the token is shown; only its hash is kept. Audited.
#[utoipa::path(post, path = "/api/v1/servers/tokens", tag = "servers",
    request_body = TokenRequest,
    responses(
        (status = 201, body = NewToken),
        (status = 400, description = "bad name or lifetime", body = ErrorBody),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
    ))]
async fn create_token(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<TokenRequest>, ApiError>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageCertificates, None)?;
    let ApiJson(req) = body?;
    let lifetime = match &req.expires {
        None => vigil_app::cluster::DEFAULT_TOKEN_LIFETIME,
        Some(text) => vigil_config::parse_duration(text)
            .map_err(|e| ApiError::bad_request(format!("`expires`: {e}")))?,
    };
    let (cfg, access, actor) = (config(&state), state.access.clone(), caller.actor());
    let token = blocking(move || {
        let trail = vigil_app::audit::Trail::new(&access, actor);
        vigil_app::cluster::create_token(&cfg, &trail, &req.name, lifetime)
    })
    .await?
    .map_err(cluster_error)?;
    Ok((StatusCode::CREATED, Json(token)).into_response())
}

/// Removes a recording server: its certificate is revoked; the management server refuses its
/// connections and closes open ones within a second. Audited.
#[utoipa::path(delete, path = "/api/v1/servers/{server}", tag = "servers",
    params(("server" = String, Path, description = "the server's name")),
    responses(
        (status = 200, body = ServerView),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
        (status = 404, description = "no current server has this name", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ServerView>> {
    caller.require(Permission::ManageCertificates, None)?;
    let (cfg, access, actor) = (config(&state), state.access.clone(), caller.actor());
    let removed = blocking(move || {
        let trail = vigil_app::audit::Trail::new(&access, actor);
        vigil_app::cluster::remove_server(&cfg, &trail, &name)
    })
    .await?
    .map_err(cluster_error)?;
    Ok(Json(removed))
}
