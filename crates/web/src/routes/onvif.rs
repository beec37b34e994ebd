//! ONVIF cameras over the API, through the same use cases as `vigil camera discover` and
//! `vigil camera add --onvif` (vigil_app::onvif): find devices by WS-Discovery, add a camera
//! from its device; and password rotation, as `vigil camera rotate-passwords`
//! (vigil_app::rotation). Admins only (ManageCameras); the password of a device is accepted
//! in the request body and never returned or logged, and a rotated one is never shown.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::Permission;
use vigil_app::audit::Trail;
use vigil_app::onvif::{self, ChosenStream, DiscoverRequest, DiscoveredDevice, OnvifAdd};
use vigil_media::store::now_us;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::json::Json;
use crate::routes::cameras::{CameraInfo, camera_info};
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(discover))
        .routes(routes!(add_camera))
        .routes(routes!(rotate_passwords))
}

/// Which cameras to rotate: `all`, a `server` (this server's own name) or `cameras`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    #[serde(default)]
    pub all: bool,
    pub server: Option<String>,
    #[serde(default)]
    pub cameras: Vec<String>,
}

/// Give cameras added by ONVIF a fresh random password each (ManageCameras, every camera):
/// set over the camera's verified HTTPS ONVIF link and proven (ONVIF and RTSP DESCRIBE)
/// before it is kept; a camera where anything fails keeps its old password. The answer is the
/// report, per camera `rotated`, `kept_old`, `not_rotatable` or `failed` with the reason;
/// never a password.
#[utoipa::path(post, path = "/api/v1/cameras/rotate-passwords", tag = "cameras",
    request_body = RotateBody,
    responses(
        (status = 200, body = vigil_app::rotation::RotationReport),
        (status = 400, description = "nothing or two kinds of selection; another server's name", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "a named camera does not exist", body = ErrorBody),
    ))]
async fn rotate_passwords(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<RotateBody>, ApiError>,
) -> ApiResult<Json<vigil_app::rotation::RotationReport>> {
    use vigil_app::rotation::{Rotator, Selection};
    caller.require(Permission::ManageCameras, None)?;
    let ApiJson(b) = body?;
    let selection = match (b.all, b.server, b.cameras.is_empty()) {
        (true, None, true) => Selection::All,
        (false, Some(s), true) => Selection::Server(s),
        (false, None, false) => Selection::Cameras(b.cameras),
        _ => {
            return Err(ApiError::from_kind(
                vigil_app::ErrorKind::InvalidInput,
                "invalid_field",
                "give exactly one of `all: true`, `server` (this server's name) or `cameras` (names)",
            ));
        }
    };
    if let Selection::Cameras(names) = &selection {
        for n in names {
            caller.require(Permission::ManageCameras, Some(n))?;
        }
    }
    let cfg = state
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let rotator = Rotator::for_installation(&cfg, state.store.clone(), state.events.clone());
    let trail = Trail::new(&state.access, caller.actor());
    let report = rotator
        .rotate(&selection, Some(&trail), |_| {})
        .await
        .map_err(ApiError::from_app)?;
    Ok(Json(report))
}

/// What to probe.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverBody {
    /// IPv4 subnet probed address by address besides the multicast probe, e.g.
    /// `192.168.10.0/24` (at most a /16).
    pub subnet: Option<String>,
    /// Send the multicast probe on the server's local network (default false; a request
    /// names at least one of `subnet` and `multicast: true`).
    #[serde(default)]
    pub multicast: bool,
    /// Seconds to wait for answers after the last probe (1-30, default 3).
    pub wait_seconds: Option<u64>,
    /// The UDP port probed (default 3702, where cameras answer).
    pub port: Option<u16>,
}

/// Find ONVIF cameras by WS-Discovery (ManageCameras): address, manufacturer, model,
/// firmware, serial, whether HTTPS is offered and whether the device is already added.
#[utoipa::path(post, path = "/api/v1/onvif/discover", tag = "cameras",
    request_body = DiscoverBody,
    responses(
        (status = 200, body = Vec<DiscoveredDevice>),
        (status = 400, description = "invalid subnet or wait", body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
async fn discover(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<DiscoverBody>, ApiError>,
) -> ApiResult<Json<Vec<DiscoveredDevice>>> {
    caller.require(Permission::ManageCameras, None)?;
    let ApiJson(b) = body?;
    let subnet = b.subnet.filter(|s| !s.is_empty());
    let request = DiscoverRequest {
        subnet,
        multicast: b.multicast,
        port: b.port.unwrap_or(vigil_onvif::discovery::PORT),
        wait: Duration::from_secs(b.wait_seconds.unwrap_or(3)),
    };
    let data_dir = state
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .data_dir
        .clone();
    let trust = onvif::camera_trust(&data_dir);
    let found = onvif::discover(&state.store, &trust, &request)
        .await
        .map_err(ApiError::from_app)?;
    Ok(Json(found))
}

/// A camera to add from its ONVIF device.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnvifCameraRequest {
    pub name: String,
    /// `https://HOST[:PORT][/PATH]`; the path defaults to `/onvif/device_service`.
    pub address: String,
    pub username: Option<String>,
    /// Write-only: stored encrypted for the streams, never returned.
    pub password: Option<String>,
    /// Accept exactly this HTTPS certificate (SHA-256 fingerprint), e.g. a self-signed one.
    pub fingerprint: Option<String>,
    /// Allow an `http://` address (nothing on that link is encrypted or verified).
    #[serde(default)]
    pub allow_http: bool,
    /// Record it at once (default true).
    pub enabled: Option<bool>,
}

/// What the device said it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceIdentityInfo {
    pub onvif_url: String,
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: String,
    /// SHA-256 fingerprint of its HTTPS certificate; null over plain HTTP.
    pub certificate: Option<String>,
}

/// The camera added, the profiles chosen and the identity recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct OnvifCameraAdded {
    pub camera: CameraInfo,
    /// The profile recorded (the main stream).
    pub main: ChosenStream,
    /// The smaller H.264 profile set as the live-only secondary stream, if any.
    pub secondary: Option<ChosenStream>,
    pub identity: DeviceIdentityInfo,
}

/// Add a camera from its ONVIF device (ManageCameras): its profiles and stream URIs are read,
/// the biggest stream is recorded, a smaller H.264 one is set as the live secondary, and its
/// identity (serial, certificate fingerprint) is stored. HTTPS is verified against the
/// installation trust store unless `fingerprint` pins the certificate.
#[utoipa::path(post, path = "/api/v1/onvif/cameras", tag = "cameras",
    request_body = OnvifCameraRequest,
    responses(
        (status = 201, body = OnvifCameraAdded),
        (status = 400, description = "invalid name, address or fingerprint; plain HTTP not allowed", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "a camera with this name exists; the device refused the credentials, its certificate is untrusted or changed, or it has no H.264/H.265 profile", body = ErrorBody),
        (status = 503, description = "the device cannot be reached or answers badly", body = ErrorBody),
    ))]
async fn add_camera(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<OnvifCameraRequest>, ApiError>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageCameras, None)?;
    let ApiJson(req) = body?;
    caller.require(Permission::ManageCameras, Some(&req.name))?;
    let request = OnvifAdd {
        name: req.name,
        address: req.address,
        username: req.username.filter(|u| !u.is_empty()),
        password: req.password.filter(|p| !p.is_empty()),
        pin: req.fingerprint.filter(|f| !f.is_empty()),
        allow_http: req.allow_http,
        enabled: req.enabled.unwrap_or(true),
        max_age_secs: None,
        max_bytes: None,
    };
    let data_dir = state
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .data_dir
        .clone();
    let trust = onvif::camera_trust(&data_dir);
    let trail = Trail::new(&state.access, caller.actor());
    let added = onvif::add(&state.store, trust, &request, &trail)
        .await
        .map_err(ApiError::from_app)?;
    let camera = camera_info(&state.store, &added.camera, true, now_us())?;
    let id = added.identity;
    Ok((
        StatusCode::CREATED,
        Json(OnvifCameraAdded {
            camera,
            main: added.main,
            secondary: added.secondary,
            identity: DeviceIdentityInfo {
                onvif_url: id.onvif_url,
                manufacturer: id.manufacturer,
                model: id.model,
                firmware: id.firmware,
                serial: id.serial,
                certificate: id.certificate,
            },
        }),
    )
        .into_response())
}
