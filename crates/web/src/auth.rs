//! Who is calling: the [`Caller`] extractor authenticates every protected request, from a
//! session cookie (with CSRF protection on state-changing methods) or an API token, and the
//! handlers then ask [`Caller::require`] for the permission they need. Nothing is allowed
//! unless a handler asks for it and the caller's role and camera scope grant it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use vigil_access::{Actor, Permission, Principal, SessionError, TokenError};

use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

/// The session cookie. The `__Host-` prefix makes browsers insist on Secure, Path=/ and no
/// Domain, so a sibling host cannot plant or read it.
pub const SESSION_COOKIE: &str = "__Host-vigil_session";
/// The header carrying the session's CSRF token on POST, PUT, PATCH and DELETE.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The connection a request came in on, attached by the listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub source: IpAddr,
    /// The session id when authenticated by cookie (for logout and "my session").
    pub session_id: Option<String>,
}

impl Caller {
    /// Deny unless the caller's role grants `permission` (on `camera`, when given).
    pub fn require(&self, permission: Permission, camera: Option<&str>) -> ApiResult<()> {
        self.principal
            .authorize(permission, camera)
            .map_err(ApiError::from)
    }

    /// The caller as written in the audit log.
    pub fn actor(&self) -> Actor {
        Actor::from_principal(&self.principal, self.source)
    }

    pub fn name(&self) -> String {
        self.principal.audit_name()
    }
}

/// The peer address of a request (loopback if a test drives the router without a listener).
pub fn source_of(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnInfo>()
        .map(|c| c.peer.ip())
        .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST))
}

/// The session id from the `Cookie` header(s), if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim())
}

fn bearer(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::bad_request("the Authorization header is not valid text"))?;
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "only `Authorization: Bearer <API token>` is accepted; browsers log in with POST /api/v1/session",
        )),
    }
}

fn state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> ApiResult<Self> {
        authenticate(parts, state, true)
    }
}

/// A caller whose request does not count as session activity: the client's "time left"
/// polling must not keep an idle session alive.
#[derive(Debug, Clone)]
pub struct PollingCaller(pub Caller);

impl FromRequestParts<SharedState> for PollingCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> ApiResult<Self> {
        authenticate(parts, state, false).map(PollingCaller)
    }
}

fn authenticate(parts: &Parts, state: &SharedState, touch: bool) -> ApiResult<Caller> {
    let caller = authenticate_caller(parts, state, touch)?;
    connection_authenticated(parts);
    Ok(caller)
}

/// The connection has carried a request with valid credentials: it stops counting against
/// its address's unauthenticated connections.
pub(crate) fn connection_authenticated(parts: &Parts) {
    if let Some(pending) = parts.extensions.get::<crate::limits::Unauthenticated>() {
        pending.authenticated();
    }
}

fn authenticate_caller(parts: &Parts, state: &SharedState, touch: bool) -> ApiResult<Caller> {
    let source = source_of(parts);
    // A connection opened before its address was blocked can still send requests.
    if state.access.check(source).is_err() {
        return Err(blocked());
    }
    if let Some(token) = bearer(&parts.headers)? {
        return match state.access.authenticate_token(token, source) {
            Ok(principal) => Ok(Caller {
                principal,
                source,
                session_id: None,
            }),
            Err(TokenError::Blocked(_)) => Err(blocked()),
            Err(TokenError::Internal(e)) => Err(ApiError::from(e)),
            Err(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the API token is unknown, revoked or expired; ask an admin for a new one",
            )),
        };
    }
    let Some(session_id) = session_cookie(&parts.headers) else {
        return Err(ApiError::unauthenticated());
    };
    let session_id = session_id.to_owned();
    let info = if touch {
        state.access.validate_session(&session_id)
    } else {
        state.access.session_status(&session_id)
    }
    .map_err(session_error)?;
    if state_changing(&parts.method) {
        // Synchronizer token: a cross-site form cannot read it, so it cannot send it.
        let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf_missing",
                        "state-changing requests with a session need the X-CSRF-Token header from the login answer",
                    )
                })?;
        info.check_csrf(presented).map_err(|_| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf_mismatch",
                    "the X-CSRF-Token header does not match this session; reload the session (GET /api/v1/session)",
                )
            })?;
    }
    Ok(Caller {
        principal: info.principal,
        source,
        session_id: Some(session_id),
    })
}

pub(crate) fn blocked() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "address_blocked",
        "this address is blocked after too many failed logins; an admin can unblock it",
    )
}

pub(crate) fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::Internal(e) => ApiError::from(e),
        SessionError::IdleExpired(_) | SessionError::AbsoluteExpired => {
            ApiError::new(StatusCode::UNAUTHORIZED, "session_expired", e.to_string())
        }
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the session is unknown or has ended; log in again",
        ),
    }
}
