//! The CA and the server certificate (docs/pki.md): status, the CA certificate for clients,
//! bringing your own PKI (import with a possibly encrypted key, CSR whose key stays here,
//! installing the issued certificate, resetting to the generated one), renewal, signing
//! device (camera) CSRs with the system CA, and the CAs trusted for camera certificates.
//!
//! Every route needs `ManageCertificates` except `GET /api/v1/certificates/ca.pem`, the
//! deliberate exception: the CA certificate is public and clients need it before they can
//! trust this server enough to log in.
//!
//! Operations that change the served certificate swap it into the live TLS state under the PKI
//! lock, so the next handshake presents it without a restart and concurrent changes cannot
//! apply out of order. Private keys and passphrases are never echoed, logged or audited.
//!
//! Handlers take their JSON body as `Result<ApiJson<_>, ApiError>` and unwrap it only after
//! the permission check, so a caller without the permission gets 403 whatever it sent.

use crate::json::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{AuditKind, Permission};
use vigil_app::certificates::CertificateChange;
use vigil_pki::time::OffsetDateTime;
use vigil_pki::{CertInfo, ImportError, PendingCsr, Pki, PkiError, SessionPolicy, rfc3339};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::{audit, blocking};
use crate::state::SharedState;

/// Validity of a signed device certificate when the request names none.
const DEFAULT_DEVICE_DAYS: u32 = 365;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(ca_pem))
        .routes(routes!(import))
        .routes(routes!(create_csr, pending_csr))
        .routes(routes!(install))
        .routes(routes!(reset))
        .routes(routes!(renew))
        .routes(routes!(sign_csr))
        .routes(routes!(camera_cas, trust_camera_ca))
        .routes(routes!(remove_camera_ca))
}

/// PKI failures as API errors: bad material from the caller is a 400 with the library's
/// precise message; store problems are ours (their messages name files, so they are logged,
/// not sent).
fn pki_error(e: PkiError) -> ApiError {
    match e {
        PkiError::Import(ImportError::PassphraseRequired) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "passphrase_required",
            "the private key is encrypted: send its passphrase as `passphrase`",
        ),
        PkiError::Import(ImportError::WrongPassphrase) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "wrong_passphrase",
            ImportError::WrongPassphrase.to_string(),
        ),
        PkiError::Import(e @ ImportError::NotForPendingCsr { .. }) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_certificate",
            format!(
                "{e}. Submit the CSR from GET /api/v1/certificates/csr and install the \
                 certificate issued for it"
            ),
        ),
        PkiError::Import(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_certificate",
            e.to_string(),
        ),
        PkiError::Csr(e) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_csr", e.to_string()),
        e @ (PkiError::BadName { .. } | PkiError::BadOption(_)) => {
            ApiError::bad_request(e.to_string())
        }
        PkiError::NoPendingCsr => ApiError::new(
            StatusCode::CONFLICT,
            "no_pending_csr",
            "no certificate request is pending: create one with POST /api/v1/certificates/csr, \
             have it signed, then install the certificate",
        ),
        e => ApiError::internal(e),
    }
}

/// Facts about one certificate.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// `ca`, `server`, `chain`, or `camera-ca` (a CA trusted for camera certificates).
    pub role: String,
    pub subject: String,
    pub issuer: String,
    /// `DNS:name`, `IP:addr`...
    pub sans: Vec<String>,
    /// SHA-256 of the DER, `AB:CD:...` as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint_sha256: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// Whole days until expiry; negative once expired.
    pub days_left: i64,
    /// `generated`, `imported` or `csr-installed`.
    pub source: String,
    /// Whether TLS presents this certificate (or its chain) now.
    pub in_use: bool,
    pub is_ca: bool,
    /// Whether Vigil renews it by itself.
    pub renewable: bool,
}

fn cert_view(c: &CertInfo, now: OffsetDateTime) -> CertificateView {
    CertificateView {
        role: c.role.to_string(),
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        sans: c.sans.clone(),
        fingerprint_sha256: c.fingerprint_sha256.clone(),
        not_before: rfc3339(c.not_before),
        not_after: rfc3339(c.not_after),
        days_left: c.days_to_expiry(now),
        source: c.source.to_string(),
        in_use: c.in_use,
        is_ca: c.is_ca,
        renewable: c.renewable(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PendingCsrView {
    pub common_name: String,
    pub sans: Vec<String>,
    pub created: String,
}

fn pending_view(p: &PendingCsr) -> PendingCsrView {
    PendingCsrView {
        common_name: p.common_name.clone(),
        sans: p.sans.clone(),
        created: rfc3339(p.created),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PkiStatusView {
    pub installation_id: String,
    /// Names of the generated server certificate.
    pub hostnames: Vec<String>,
    /// Which server certificate TLS presents: `generated`, `imported` or `csr-installed`.
    pub active_source: String,
    pub pending_csr: Option<PendingCsrView>,
    /// The CA first, then the generated server certificate, then any external chain.
    pub certificates: Vec<CertificateView>,
}

fn status_view(pki: &Pki) -> Result<PkiStatusView, PkiError> {
    let s = pki.status()?;
    let now = OffsetDateTime::now_utc();
    Ok(PkiStatusView {
        installation_id: s.installation_id,
        hostnames: s.hostnames,
        active_source: s.active_source.to_string(),
        pending_csr: s.pending_csr.as_ref().map(pending_view),
        certificates: s.certificates.iter().map(|c| cert_view(c, now)).collect(),
    })
}

/// Runs `f` on the PKI under its lock, off the async workers.
async fn with_pki<T: Send + 'static>(
    state: &SharedState,
    f: impl FnOnce(&mut Pki) -> Result<T, PkiError> + Send + 'static,
) -> ApiResult<T> {
    let pki = state.pki.clone();
    blocking(move || {
        let mut pki = pki.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut pki)
    })
    .await?
    .map_err(pki_error)
}

/// Records a certificate operation. The detail names certificates by subject and fingerprint
/// only: never key material or passphrases.
/// Every certificate of the installation: CA, generated server certificate, imported chain,
/// and the pending CSR.
#[utoipa::path(get, path = "/api/v1/certificates", tag = "certificates",
    responses(
        (status = 200, body = PkiStatusView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
    ))]
async fn status(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<PkiStatusView>> {
    caller.require(Permission::ManageCertificates, None)?;
    Ok(Json(with_pki(&state, |pki| status_view(pki)).await?))
}

/// The CA certificate (PEM) that clients must trust. Public: no authentication (see the
/// module docs).
#[utoipa::path(get, path = "/api/v1/certificates/ca.pem", tag = "certificates",
    security(()),
    responses(
        (status = 200, description = "the CA certificate", content_type = "application/x-pem-file", body = String),
    ))]
async fn ca_pem(State(state): State<SharedState>) -> ApiResult<Response> {
    // No `Caller`: deliberately public. The lock may be held by a slow operation (an RSA
    // import, a renewal), so wait for it off the async workers.
    let pem = with_pki(&state, |pki| Ok(pki.ca_cert_pem().to_owned())).await?;
    let mut resp = pem.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"vigil-ca.pem\""),
    );
    Ok(resp)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// PEM chain: the server certificate first, then its issuers (the root may be included).
    pub certificate_pem: String,
    /// PEM private key: PKCS#8 (possibly encrypted), RSA or EC, or legacy encrypted PEM.
    pub key_pem: String,
    /// Passphrase of an encrypted key.
    #[serde(default)]
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for ImportRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRequest").finish_non_exhaustive()
    }
}

/// The certificate now served.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstalledView {
    pub certificate: CertificateView,
    /// How the key was supplied (imports only), e.g. `encrypted PKCS#8`.
    pub key_format: Option<String>,
}

/// Imports a certificate chain and its private key; it is served from the next TLS handshake
/// on. The key is stored decrypted with mode 0600 so the server starts unattended. Anything
/// wrong (garbage, key not matching, expired, broken chain, passphrase) is a 400 and changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/certificates/import", tag = "certificates",
    request_body = ImportRequest,
    responses(
        (status = 200, body = InstalledView),
        (status = 400, description = "unusable certificate, key or passphrase", body = ErrorBody),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
    ))]
async fn import(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<ImportRequest>, ApiError>,
) -> ApiResult<Json<InstalledView>> {
    caller.require(Permission::ManageCertificates, None)?;
    let ApiJson(req) = body?;
    let tls = state.tls.clone();
    let installed = with_pki(&state, move |pki| {
        let installed = pki.import(
            req.certificate_pem.as_bytes(),
            req.key_pem.as_bytes(),
            req.passphrase.as_deref().map(str::as_bytes),
        )?;
        // Replacing a certificate is often about a compromised key: no resumed session may
        // keep the old one.
        tls.rotate(installed.certified_key.clone(), SessionPolicy::Invalidate)?;
        Ok(installed)
    })
    .await?;
    let key_format = installed.key_format.map(|f| f.to_string());
    audit(
        &state,
        &caller,
        AuditKind::CertificateOperation,
        CertificateChange::Imported(&installed).detail(),
    )
    .await?;
    Ok(Json(InstalledView {
        certificate: cert_view(&installed.info, OffsetDateTime::now_utc()),
        key_format,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsrRequest {
    /// Normally the server's fully qualified host name.
    pub common_name: String,
    /// Host names and IP addresses; empty: the common name when it is a host name.
    #[serde(default)]
    pub sans: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CsrView {
    /// PKCS#10 request in PEM, for the external CA. Its key never leaves this server.
    pub csr_pem: String,
    pub pending: PendingCsrView,
}

/// Creates a new key (kept on this server) and a certificate request for an external CA.
/// Replaces any earlier pending request; the served certificate does not change.
#[utoipa::path(post, path = "/api/v1/certificates/csr", tag = "certificates",
    request_body = CsrRequest,
    responses(
        (status = 200, body = CsrView),
        (status = 400, description = "bad common name or SAN", body = ErrorBody),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
    ))]
async fn create_csr(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<CsrRequest>, ApiError>,
) -> ApiResult<Json<CsrView>> {
    caller.require(Permission::ManageCertificates, None)?;
    let ApiJson(req) = body?;
    let (csr_pem, pending) = with_pki(&state, move |pki| {
        let csr = pki.csr(&req.common_name, &req.sans)?;
        let pending = pki
            .pending_csr()
            .cloned()
            .ok_or_else(|| PkiError::Generate("the new request was not recorded".into()))?;
        Ok((csr, pending))
    })
    .await?;
    audit(
        &state,
        &caller,
        AuditKind::CertificateOperation,
        CertificateChange::Requested {
            common_name: &pending.common_name,
            sans: &pending.sans,
        }
        .detail(),
    )
    .await?;
    Ok(Json(CsrView {
        csr_pem,
        pending: pending_view(&pending),
    }))
}

/// The pending certificate request, to download it again.
#[utoipa::path(get, path = "/api/v1/certificates/csr", tag = "certificates",
    responses(
        (status = 200, body = CsrView),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
        (status = 404, description = "no request is pending", body = ErrorBody),
    ))]
async fn pending_csr(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<CsrView>> {
    caller.require(Permission::ManageCertificates, None)?;
    let found = with_pki(&state, |pki| {
        Ok(match (pki.pending_csr().cloned(), pki.pending_csr_pem()?) {
            (Some(p), Some(pem)) => Some((pem, p)),
            _ => None,
        })
    })
    .await?;
    let (csr_pem, pending) = found.ok_or_else(|| {
        ApiError::not_found(
            "no certificate request is pending; create one with POST /api/v1/certificates/csr",
        )
    })?;
    Ok(Json(CsrView {
        csr_pem,
        pending: pending_view(&pending),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// The PEM chain the external CA issued for the pending request (leaf first).
    pub certificate_pem: String,
}

/// Installs the certificate issued for the pending request; served from the next handshake.
#[utoipa::path(post, path = "/api/v1/certificates/install", tag = "certificates",
    request_body = InstallRequest,
    responses(
        (status = 200, body = InstalledView),
        (status = 400, description = "unusable certificate, or not for the pending request", body = ErrorBody),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
        (status = 409, description = "no request is pending", body = ErrorBody),
    ))]
async fn install(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<InstallRequest>, ApiError>,
) -> ApiResult<Json<InstalledView>> {
    caller.require(Permission::ManageCertificates, None)?;
    let ApiJson(req) = body?;
    let tls = state.tls.clone();
    let installed = with_pki(&state, move |pki| {
        let installed = pki.install_cert(req.certificate_pem.as_bytes())?;
        tls.rotate(installed.certified_key.clone(), SessionPolicy::Invalidate)?;
        Ok(installed)
    })
    .await?;
    audit(
        &state,
        &caller,
        AuditKind::CertificateOperation,
        CertificateChange::Installed(&installed).detail(),
    )
    .await?;
    Ok(Json(InstalledView {
        certificate: cert_view(&installed.info, OffsetDateTime::now_utc()),
        key_format: None,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServedView {
    /// The source that was removed (reset) or `null` when nothing changed.
    pub removed: Option<String>,
    /// Whether TLS now presents the new certificate (renewing the generated certificate while
    /// an imported one is served only refreshes the fallback).
    pub served: bool,
    pub status: PkiStatusView,
}

/// Deletes the imported or CSR-installed certificate and its key; the generated certificate
/// is served again from the next handshake.
#[utoipa::path(post, path = "/api/v1/certificates/reset", tag = "certificates",
    responses(
        (status = 200, body = ServedView),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
    ))]
async fn reset(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<ServedView>> {
    caller.require(Permission::ManageCertificates, None)?;
    let tls = state.tls.clone();
    let (removed, status) = with_pki(&state, move |pki| {
        let (removed, ck) = pki.reset()?;
        if removed.is_some() {
            tls.rotate(ck, SessionPolicy::Invalidate)?;
        }
        Ok((removed, status_view(pki)?))
    })
    .await?;
    let removed = removed.map(|s| s.to_string());
    if let Some(removed) = &removed {
        audit(
            &state,
            &caller,
            AuditKind::CertificateOperation,
            CertificateChange::Reset { removed }.detail(),
        )
        .await?;
    }
    Ok(Json(ServedView {
        served: removed.is_some(),
        removed,
        status,
    }))
}

/// Issues a new generated server certificate (new key) now, whatever its expiry. It is served
/// from the next handshake unless an imported certificate is served.
#[utoipa::path(post, path = "/api/v1/certificates/renew", tag = "certificates",
    responses(
        (status = 200, body = ServedView),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
    ))]
async fn renew(State(state): State<SharedState>, caller: Caller) -> ApiResult<Json<ServedView>> {
    caller.require(Permission::ManageCertificates, None)?;
    let tls = state.tls.clone();
    let (served, status, renewed) = with_pki(&state, move |pki| {
        let ck = pki.renew_server_cert(OffsetDateTime::now_utc())?;
        let served = pki.active_source() == vigil_pki::CertSource::Generated;
        if served {
            // Routine renewal: the old certificate is still valid, resumption may continue.
            tls.rotate(ck, SessionPolicy::Keep)?;
        }
        let renewed = pki.status()?.certificates.into_iter().find(|c| {
            c.role == vigil_pki::CertRole::Server && c.source == vigil_pki::CertSource::Generated
        });
        Ok((served, status_view(pki)?, renewed))
    })
    .await?;
    audit(
        &state,
        &caller,
        AuditKind::CertificateOperation,
        CertificateChange::Renewed {
            certificate: renewed.as_ref(),
            served,
        }
        .detail(),
    )
    .await?;
    Ok(Json(ServedView {
        removed: None,
        served,
        status,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignCsrRequest {
    /// The device's PKCS#10 request in PEM.
    pub csr_pem: String,
    /// Validity in days, 1 to 825 (default 365).
    #[serde(default)]
    pub days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedView {
    /// The device certificate in PEM.
    pub certificate_pem: String,
    /// The CA certificate, for the device's trust store or chain.
    pub ca_pem: String,
    pub certificate: CertificateView,
}

/// Signs a device's (e.g. a camera's) certificate request with the system CA. The result is a
/// TLS server+client certificate whatever the request asked for.
#[utoipa::path(post, path = "/api/v1/certificates/sign-csr", tag = "certificates",
    request_body = SignCsrRequest,
    responses(
        (status = 200, body = SignedView),
        (status = 400, description = "unusable request or validity", body = ErrorBody),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
    ))]
async fn sign_csr(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<SignCsrRequest>, ApiError>,
) -> ApiResult<Json<SignedView>> {
    caller.require(Permission::ManageCertificates, None)?;
    let ApiJson(req) = body?;
    let days = req.days.unwrap_or(DEFAULT_DEVICE_DAYS);
    let (certificate_pem, ca_pem, info) = with_pki(&state, move |pki| {
        let (pem, info) = pki.sign_csr_described(&req.csr_pem, days)?;
        Ok((pem, pki.ca_cert_pem().to_owned(), info))
    })
    .await?;
    audit(
        &state,
        &caller,
        AuditKind::CertificateOperation,
        CertificateChange::SignedCsr(&info).detail(),
    )
    .await?;
    Ok(Json(SignedView {
        certificate: cert_view(&info, OffsetDateTime::now_utc()),
        certificate_pem,
        ca_pem,
    }))
}

/// CA certificate(s) to trust for camera links.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraCaRequest {
    /// PEM: one CA certificate, or a root and its intermediates.
    pub certificate_pem: String,
}

fn data_dir(state: &SharedState) -> std::path::PathBuf {
    state
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .data_dir
        .clone()
}

/// The CAs camera certificates (RTSPS, ONVIF over HTTPS) may chain to besides the Vigil CA and
/// the system roots, soonest expiry first. They are also in `GET /api/v1/certificates` (role
/// `camera-ca`), with expiry alerts like every certificate of the installation.
#[utoipa::path(get, path = "/api/v1/certificates/camera-cas", tag = "certificates",
    responses(
        (status = 200, body = Vec<CertificateView>),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
    ))]
async fn camera_cas(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<Vec<CertificateView>>> {
    caller.require(Permission::ManageCertificates, None)?;
    let dir = data_dir(&state);
    let cas = blocking(move || vigil_app::camera_cas::list(&dir))
        .await?
        .map_err(ApiError::from_app)?;
    let now = OffsetDateTime::now_utc();
    Ok(Json(cas.iter().map(|c| cert_view(c, now)).collect()))
}

/// Trusts CA certificate(s) for camera links: camera certificates they issued verify from the
/// next camera connection on (no restart). Only CA certificates that have not expired are
/// accepted; a camera's own self-signed certificate is pinned on the camera instead.
#[utoipa::path(post, path = "/api/v1/certificates/camera-cas", tag = "certificates",
    request_body = CameraCaRequest,
    responses(
        (status = 201, body = Vec<CertificateView>),
        (status = 400, description = "not PEM, not a CA certificate (`not_a_ca`), or expired (`expired_ca`)", body = ErrorBody),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
    ))]
async fn trust_camera_ca(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<CameraCaRequest>, ApiError>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageCertificates, None)?;
    let ApiJson(req) = body?;
    let (dir, access, actor) = (data_dir(&state), state.access.clone(), caller.actor());
    let added = blocking(move || {
        let trail = vigil_app::audit::Trail::new(&access, actor);
        vigil_app::camera_cas::add(&dir, req.certificate_pem.as_bytes(), &trail)
    })
    .await?
    .map_err(ApiError::from_app)?;
    let now = OffsetDateTime::now_utc();
    let views: Vec<CertificateView> = added.iter().map(|c| cert_view(c, now)).collect();
    Ok((StatusCode::CREATED, Json(views)).into_response())
}

/// Stops trusting a camera CA; camera links whose certificate only it verified are refused
/// from their next connection.
#[utoipa::path(delete, path = "/api/v1/certificates/camera-cas/{fingerprint}", tag = "certificates",
    params(("fingerprint" = String, Path, description = "SHA-256 fingerprint, with or without ':'")),
    responses(
        (status = 200, body = CertificateView),
        (status = 403, description = "needs ManageCertificates", body = ErrorBody),
        (status = 404, description = "no camera CA has this fingerprint", body = ErrorBody),
    ))]
async fn remove_camera_ca(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(fingerprint): ApiPath<String>,
) -> ApiResult<Json<CertificateView>> {
    caller.require(Permission::ManageCertificates, None)?;
    let (dir, access, actor) = (data_dir(&state), state.access.clone(), caller.actor());
    let removed = blocking(move || {
        let trail = vigil_app::audit::Trail::new(&access, actor);
        vigil_app::camera_cas::remove(&dir, &fingerprint, &trail)
    })
    .await?
    .map_err(ApiError::from_app)?;
    Ok(Json(cert_view(&removed, OffsetDateTime::now_utc())))
}
