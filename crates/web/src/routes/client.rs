//! The browser client (docs/web-client.md): the page at `/`, its embedded files under
//! `/assets/`, each under the strict Content-Security-Policy, and what the page needs to know
//! before anyone signs in: the connection's certificate.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_pki::{CertInfo, CertRole, CertSource};
use vigil_webclient::Asset;

use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::SharedState;

/// The page's policy: its own scripts, styles, images and media only; video arrives as
/// `blob:` URLs from Media Source Extensions; fetches and WebSockets to this origin only; no
/// inline code, no eval, no framing, no plugins.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .route("/", get(page))
        .route("/assets/{*path}", get(asset))
        .routes(routes!(connection))
}

/// Strong validators, computed once: assets change only with the binary.
fn etags() -> &'static HashMap<&'static str, HeaderValue> {
    static ETAGS: OnceLock<HashMap<&'static str, HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        vigil_webclient::ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.bytes);
                let tag = format!("\"{}\"", hex::encode(&digest[..12]));
                (
                    a.path,
                    HeaderValue::from_str(&tag).expect("hex is a valid header"),
                )
            })
            .collect()
    })
}

fn serve(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let etag = etags()[asset.path].clone();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == etag.to_str().unwrap_or(""))
        });
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.bytes.into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::ETAG, etag);
    // Revalidate every time: an upgraded server must never run an old client.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
    resp
}

async fn page(headers: HeaderMap) -> Response {
    serve(vigil_webclient::index(), &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match vigil_webclient::get(&path) {
        Some(a) if a.path != "index.html" => serve(a, &headers),
        _ => ApiError::not_found("no such file in the web client").into_response(),
    }
}

/// The certificate this server presents, as the page shows it beside the padlock.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub subject: String,
    pub issuer: String,
    /// Host names and addresses the certificate covers (without `DNS:`/`IP:`): the page warns
    /// when it was opened under another name.
    pub names: Vec<String>,
    /// RFC 3339.
    pub not_after: String,
    pub days_left: i64,
    /// SHA-256 of the certificate, `AA:BB:…`.
    pub fingerprint_sha256: String,
}

/// The server certificate new connections get (public: every TLS client receives it in the
/// handshake anyway). The web client shows its issuer beside the padlock and warns when the
/// page's host name is not among `names`.
#[utoipa::path(get, path = "/api/v1/connection", tag = "session",
    security(()),
    responses((status = 200, body = ConnectionView)))]
async fn connection(State(state): State<SharedState>) -> ApiResult<Json<ConnectionView>> {
    let key = state.tls.current();
    let der = key
        .cert
        .first()
        .ok_or_else(|| ApiError::internal("the server has no certificate"))?;
    let info = CertInfo::from_der(der, CertSource::Generated, CertRole::Server, true)
        .map_err(ApiError::internal)?;
    let now = vigil_pki::time::OffsetDateTime::now_utc();
    Ok(Json(ConnectionView {
        names: info
            .sans
            .iter()
            .filter_map(|s| s.strip_prefix("DNS:").or_else(|| s.strip_prefix("IP:")))
            .map(str::to_owned)
            .collect(),
        not_after: info
            .not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        days_left: info.days_to_expiry(now),
        subject: info.subject,
        issuer: info.issuer,
        fingerprint_sha256: info.fingerprint_sha256,
    }))
}
