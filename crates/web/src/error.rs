//! The API's error answer: every failure is JSON `{"code": "...", "message": "..."}` with a
//! stable machine-readable code (clients switch on it) and a human message that says what is
//! wrong and what to do. Internal details (paths, SQL) are logged, never sent.

use crate::json::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vigil_app::{Classified, ErrorKind};

/// The body of every error response.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable identifier, e.g. `unauthenticated`, `forbidden`, `not_found`, `bad_request`.
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
}

/// An error a handler returns; converted into a status and an [`ErrorBody`].
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "log in (POST /api/v1/session) or send an API token as `Authorization: Bearer ...`",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A body above [`crate::MAX_BODY_BYTES`], declared or received.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body is larger than the {} KiB this server accepts",
                crate::MAX_BODY_BYTES / 1024
            ),
        )
    }

    /// A body that did not arrive within the listener's body deadline.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time; send it at once after the headers",
        )
    }

    /// A failure on our side. The detail goes to the log; the client gets a generic message
    /// so that paths and database errors do not leak.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering an API request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request; the details are in the server log",
        )
    }
}

impl ApiError {
    /// The one place a use case's failure becomes an HTTP answer: its kind decides the status
    /// (docs/design/application-layer.md), its code and message go to the client; internal
    /// faults are logged, not shown.
    pub fn from_kind(kind: ErrorKind, code: &'static str, e: impl std::fmt::Display) -> Self {
        let status = match kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }

    /// [`ApiError::from_kind`] for an application-layer error.
    pub fn from_app(e: impl Classified) -> Self {
        let (kind, code) = vigil_app::error::classify(&e);
        if code == vigil_app::error::DATABASE_UNAVAILABLE {
            return ApiError::database_unavailable(e);
        }
        Self::from_kind(kind, code, e)
    }

    /// The management database cannot be reached (PostgreSQL down or restarting): the next
    /// request tries again, recording goes on (it never uses this database). Where it failed
    /// goes to the log, not to the client.
    fn database_unavailable(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "management database unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            vigil_app::error::DATABASE_UNAVAILABLE,
            "database unavailable: the management database cannot be reached, retrying; \
             recording is not affected",
        )
    }
}

/// Settings refusals, with where to look or what to call next in the API's terms.
impl From<vigil_app::settings::SettingsError> for ApiError {
    fn from(e: vigil_app::settings::SettingsError) -> Self {
        use vigil_app::settings::SettingsError as E;
        let message = match &e {
            E::NothingPending => format!("{e}; change them with PATCH /api/v1/settings first"),
            E::UnknownSetting {
                setting,
                detail,
                note,
            } => format!(
                "setting `{setting}`: {detail} (GET /api/v1/settings shows the editable \
                 settings; the rest of vigil.toml is changed in the file){}",
                note.map(|n| format!("; {n}")).unwrap_or_default()
            ),
            _ => return ApiError::from_app(e),
        };
        ApiError::from_kind(e.kind(), e.code(), message)
    }
}

impl From<vigil_app::export::ExportError> for ApiError {
    fn from(e: vigil_app::export::ExportError) -> Self {
        let advice = match &e {
            vigil_app::export::ExportError::Empty { camera, .. } => Some(format!(
                "; list what exists with GET /api/v1/cameras/{camera}/recordings"
            )),
            _ => None,
        };
        let mut err = ApiError::from_app(e);
        if let Some(advice) = advice {
            err.message.push_str(&advice);
        }
        err
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"vigil\""),
            );
        }
        resp
    }
}

impl From<vigil_access::AccessError> for ApiError {
    fn from(e: vigil_access::AccessError) -> Self {
        use vigil_access::AccessError as E;
        match e {
            E::Db(ref d) if d.is_unavailable() => ApiError::database_unavailable(d),
            E::UnknownUser(_) | E::UnknownToken(_) => ApiError::not_found(e.to_string()),
            E::UserExists(_) | E::AlreadyInitialized | E::LastAdmin(_) => {
                ApiError::conflict(e.to_string())
            }
            E::WrongPassword => {
                ApiError::new(StatusCode::FORBIDDEN, "wrong_password", e.to_string())
            }
            E::Password(_)
            | E::InvalidUsername(_)
            | E::InvalidTokenName(_)
            | E::InvalidCamera(_)
            | E::InvalidLayout(_)
            | E::Totp(_)
            | E::IdsConfig(_)
            | E::SessionConfig(_) => ApiError::bad_request(e.to_string()),
            // Ours, not the caller's: details to the log only.
            E::Db(_)
            | E::Io { .. }
            | E::SchemaTooNew { .. }
            | E::Hash(_)
            | E::Json(_)
            | E::Corrupt(_) => ApiError::internal(e),
        }
    }
}

impl From<vigil_access::Denied> for ApiError {
    fn from(d: vigil_access::Denied) -> Self {
        ApiError::forbidden(d.to_string())
    }
}

/// JSON body rejections (malformed JSON, wrong content type, too large) as API errors.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match r {
            R::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            R::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::payload_too_large()
            }
            R::BytesRejection(b) if crate::limits::caused_by_body_timeout(&b) => {
                ApiError::request_timeout()
            }
            other => {
                ApiError::bad_request(format!("the JSON body is not valid: {}", other.body_text()))
            }
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(format!("bad query string: {}", r.body_text()))
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::bad_request(format!("bad path: {}", r.body_text()))
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_access::AccessError;
    use vigil_access::vigil_db::DbError;
    use vigil_app::cameras::CameraError;

    #[test]
    fn a_use_case_failing_on_an_unreachable_database_answers_503() {
        let e = ApiError::from_app(CameraError::Audit(AccessError::Db(DbError::Unavailable(
            "connection refused to 10.0.0.5:5432".into(),
        ))));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, "database_unavailable");
        // Where the database lives is for the log, not for the client.
        assert!(!e.message.contains("10.0.0.5"), "{}", e.message);
    }
}
