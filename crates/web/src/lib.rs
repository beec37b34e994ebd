//! Vigil's HTTPS REST API (management role, docs/api.md): the listeners (HTTPS, optional
//! redirect-only HTTP, intrusion detection before TLS), authentication and authorization of
//! every request, the JSON routes, and the OpenAPI 3.1 description generated from them.
//!
//! Layout: [`listen`] owns sockets and connections, [`auth`] owns who is calling, [`routes`]
//! owns one module per resource, [`error`] the JSON error format, [`state`] what handlers
//! share.

pub mod auth;
pub mod error;
pub mod extract;
pub mod json;
pub mod limits;
pub mod listen;
pub mod maintenance;
pub mod metrics;
pub mod ports;
pub mod routes;
pub mod state;
pub mod workers;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody};
pub use listen::{ApplyReport, ConnectionLimits, ListenError, ListenerPlan, Listeners, Scheme};
pub use state::{AppState, SharedState, StateError};

/// Largest request body accepted (certificate imports are the biggest legitimate ones).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Vigil API",
        description = "REST API of Vigil, a secure-by-default video management system. \
            Authenticate with a session (POST /api/v1/session sets a cookie; send the returned \
            CSRF token as X-CSRF-Token on state-changing requests) or an API token \
            (Authorization: Bearer ...). Errors are JSON {code, message}.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    tags(
        (name = "session", description = "login, logout, current session, the connection's certificate"),
        (name = "cameras", description = "cameras and their status"),
        (name = "recordings", description = "recorded ranges, playback, export, verification"),
        (name = "users", description = "users, roles, camera permissions"),
        (name = "tokens", description = "API tokens for integrations"),
        (name = "ids", description = "intrusion detection"),
        (name = "audit", description = "the hash-chained audit log"),
        (name = "events", description = "events of Vigil itself and of other systems"),
        (name = "alarms", description = "alarms raised by rules, and bookmarks"),
        (name = "rules", description = "event rules: read, replace, test"),
        (name = "certificates", description = "the CA and the server certificate"),
        (name = "servers", description = "recording servers joined to this management server"),
        (name = "settings", description = "runtime settings"),
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(auth::SESSION_COOKIE))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API router (with its state) and the OpenAPI description of every route in it.
pub fn app(state: SharedState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::all())
        .split_for_parts();
    let spec =
        Arc::new(serde_json::to_vec_pretty(&openapi).expect("the OpenAPI description serializes"));
    let router = router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        spec.as_ref().clone(),
                    )
                }
            }),
        )
        .fallback(|| async {
            ApiError::not_found("no such endpoint; the API is described at /api/v1/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method; see /api/v1/openapi.json",
            )
        })
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outside the body limit: a declared length above it is answered before the body is
        // read, and inside the security headers, which the 413 gets like every answer.
        .layer(limits::RefuseOversizedLayer {
            max: MAX_BODY_BYTES,
        })
        .layer(tower::util::MapResponseLayer::new(
            security_headers as fn(Response) -> Response,
        ));
    (router, openapi)
}

/// Headers every answer carries: HSTS (we are HTTPS-only), no MIME sniffing, no framing, no
/// caching of API answers (they carry personal and security data), no referrer leaks.
/// A plain response map (no boxed middleware future): it runs on every request.
fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The web client's files set their own (stricter than nothing, looser than this).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// Installs the router into the state's listeners and starts the configured listeners.
/// Every socket is bound before any serves; a failure starts none.
pub async fn start(state: &SharedState) -> Result<ApplyReport, ListenError> {
    let (router, _) = app(state.clone());
    state.listeners.install_router(router);
    let plan = {
        let cfg = state.config.read().unwrap_or_else(|e| e.into_inner());
        ListenerPlan::from_config(&cfg)
    };
    state.listeners.apply(&plan).await
}
