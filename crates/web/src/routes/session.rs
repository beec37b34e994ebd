//! Login, the current session, logout (docs/api.md, "Authentication").

use crate::json::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{Credentials, LoginError, Principal};

use crate::auth::{Caller, ConnInfo, PollingCaller, SESSION_COOKIE, blocked, session_error};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::limits::Unauthenticated;
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(login, current, logout))
        .routes(routes!(activity))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The current TOTP code, for users with a second factor.
    #[serde(default)]
    pub totp: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Who is logged in, and what the client needs to keep the session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionAnswer {
    /// `user` or `token`.
    pub kind: &'static str,
    pub name: String,
    pub role: String,
    /// Cameras this caller may use; `null` means all.
    pub cameras: Option<Vec<String>>,
    /// Send this as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE (session only).
    pub csrf_token: Option<String>,
    /// Seconds until the session ends for inactivity (session only).
    pub idle_remaining_secs: Option<u64>,
    /// Seconds until the session ends whatever happens (session only).
    pub absolute_remaining_secs: Option<u64>,
    /// Show the "you will be logged out" warning (session only).
    pub warn: bool,
}

fn describe(p: &Principal) -> (&'static str, String, String, Option<Vec<String>>) {
    let cameras = match p.cameras() {
        vigil_access::CameraScope::All => None,
        vigil_access::CameraScope::Only(set) if !p.role().sees_all_cameras() => {
            Some(set.iter().cloned().collect())
        }
        vigil_access::CameraScope::Only(_) => None,
    };
    match p {
        Principal::User { username, role, .. } => {
            ("user", username.clone(), role.to_string(), cameras)
        }
        Principal::Token { name, role, .. } => ("token", name.clone(), role.to_string(), cameras),
    }
}

fn session_cookie(value: &str, max_age_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
    ))
    .expect("cookie values are hex")
}

/// Log in with a user name and password (and TOTP code when enrolled). Sets the session
/// cookie (`Secure; HttpOnly; SameSite=Strict`) and returns the CSRF token.
#[utoipa::path(post, path = "/api/v1/session", tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "logged in; session cookie set", body = SessionAnswer),
        (status = 401, description = "wrong credentials or TOTP code required", body = ErrorBody),
        (status = 403, description = "address blocked by intrusion detection", body = ErrorBody),
    ))]
async fn login(
    State(state): State<SharedState>,
    conn: Option<axum::Extension<ConnInfo>>,
    pending: Option<axum::Extension<Unauthenticated>>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let source = conn
        .map(|c| c.peer.ip())
        .unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
    // Refuse a blocked address here too (a connection opened before the block); the check is
    // in memory and comes before any hashing.
    if state.access.check(source).is_err() {
        return Err(blocked());
    }
    let access = state.access.clone();
    // Argon2 takes tens of milliseconds: keep it off the async workers.
    let result = tokio::task::spawn_blocking(move || {
        access.login(
            &Credentials {
                username: &req.username,
                password: &req.password,
                totp: req.totp.as_deref(),
            },
            source,
        )
    })
    .await
    .map_err(ApiError::internal)?;
    let session = match result {
        Ok(s) => s,
        Err(LoginError::Blocked(_)) => return Err(blocked()),
        Err(LoginError::InvalidCredentials) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "invalid user name, password or code",
            ));
        }
        Err(LoginError::TotpRequired) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "totp_required",
                "this user has a second factor; send the current TOTP code as `totp`",
            ));
        }
        Err(LoginError::Internal(e)) => return Err(e.into()),
    };
    // A correct password authenticates the connection as a valid cookie or token would.
    if let Some(axum::Extension(pending)) = pending {
        pending.authenticated();
    }
    let (kind, name, role, cameras) = describe(&session.principal);
    let now = state.access.now();
    let idle = session.idle_expires.since(now).as_secs();
    let absolute = session.absolute_expires.since(now).as_secs();
    let body = SessionAnswer {
        kind,
        name,
        role,
        cameras,
        csrf_token: Some(session.csrf_token.clone()),
        idle_remaining_secs: Some(idle),
        absolute_remaining_secs: Some(absolute),
        warn: false,
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&session.session_id, absolute),
    );
    Ok(resp)
}

/// The caller and, for a session, its CSRF token and remaining time. Polling this does not
/// keep an idle session alive.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses(
        (status = 200, body = SessionAnswer),
        (status = 401, body = ErrorBody),
    ))]
async fn current(
    State(state): State<SharedState>,
    PollingCaller(caller): PollingCaller,
) -> ApiResult<Json<SessionAnswer>> {
    answer(&state, &caller).map(Json)
}

/// Counts as activity, like any other request made with the session: the web client's
/// "Stay signed in" answer to the idle warning. Returns the session as `GET` does.
#[utoipa::path(post, path = "/api/v1/session/activity", tag = "session",
    responses(
        (status = 200, body = SessionAnswer),
        (status = 400, description = "called with an API token, which has no session", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "CSRF token missing or wrong", body = ErrorBody),
    ))]
async fn activity(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<SessionAnswer>> {
    if caller.session_id.is_none() {
        return Err(ApiError::bad_request(
            "API tokens have no session to keep alive",
        ));
    }
    answer(&state, &caller).map(Json)
}

fn answer(state: &SharedState, caller: &Caller) -> ApiResult<SessionAnswer> {
    let (kind, name, role, cameras) = describe(&caller.principal);
    let mut answer = SessionAnswer {
        kind,
        name,
        role,
        cameras,
        csrf_token: None,
        idle_remaining_secs: None,
        absolute_remaining_secs: None,
        warn: false,
    };
    if let Some(id) = &caller.session_id {
        let info = state.access.session_status(id).map_err(session_error)?;
        answer.csrf_token = Some(info.csrf_token().to_owned());
        answer.idle_remaining_secs = Some(info.idle_remaining.as_secs());
        answer.absolute_remaining_secs = Some(info.absolute_remaining.as_secs());
        answer.warn = info.warn;
    }
    Ok(answer)
}

/// Log out: ends the session and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses(
        (status = 204, description = "logged out"),
        (status = 400, description = "called with an API token, which has no session", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "CSRF token missing or wrong", body = ErrorBody),
    ))]
async fn logout(State(state): State<SharedState>, caller: Caller) -> ApiResult<Response> {
    let Some(id) = caller.session_id else {
        return Err(ApiError::bad_request(
            "API tokens have no session to end; revoke the token instead",
        ));
    };
    state.access.logout(&id)?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    Ok(resp)
}
