//! Cameras: list, add, show, change and remove the cameras of the recording index,
//! with each recorder's live status. The running server's reconcile loop reads the index every
//! 2 s, so a camera added, disabled or removed here starts or stops recording without more
//! wiring.
//!
//! Permissions: seeing a camera needs ViewLive, Playback or ManageCameras on it (an auditor,
//! who has none of them, gets 403; the list shows only the cameras the caller may use);
//! changes need ManageCameras. Only ManageCameras sees a camera's URLs and user names (of the
//! main and the secondary stream); nobody ever sees a password (`has_password` only). Every
//! change is audited as `camera_changed`.
//!
//! A camera may have a secondary stream (`secondary`: URL, credentials, mode `live` or
//! `recorded`), set when the camera is added or by PATCH (`null` removes it); its status and
//! link security are shown beside the main stream's.

use crate::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::Permission;
use vigil_app::audit::Trail;
use vigil_app::cameras::{self, CameraChange, CameraError};
use vigil_media::store::{
    Camera, NewCamera, NewSecondary, SecondaryStream, Store, StoreError, StreamMode, StreamStatus,
    now_us,
};
use vigil_media::time::format_us;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::blocking;
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(list_cameras, add_camera))
        .routes(routes!(get_camera, patch_camera, delete_camera))
        .routes(routes!(accept_device))
        .routes(routes!(install_certificate))
        .routes(routes!(set_password))
        .routes(routes!(assign_camera))
}

/// Permissions any one of which lets a caller see a camera and its status.
const SEE: [Permission; 3] = [
    Permission::ViewLive,
    Permission::Playback,
    Permission::ManageCameras,
];

// ------------------------------------------------------------------ shared with recordings

/// Deny unless the caller holds at least one of `permissions` on `camera`. The first refusal
/// is returned so the message names a permission the caller lacks.
pub(crate) fn require_any(
    caller: &Caller,
    permissions: &[Permission],
    camera: &str,
) -> ApiResult<()> {
    let mut first = None;
    for p in permissions {
        match caller.require(*p, Some(camera)) {
            Ok(()) => return Ok(()),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.unwrap_or_else(|| ApiError::forbidden("no permission")))
}

/// Syntax check of a camera name from a path, the same rule the store applies when a camera is
/// added. Names are only ever looked up in the index (files are addressed by the camera's
/// internal id), so this is about clear answers, not about reaching files.
pub(crate) fn check_camera_name(name: &str) -> ApiResult<()> {
    vigil_media::store::check_camera_name(name).map_err(|e| {
        let message = match e {
            StoreError::InvalidCamera(m) => m,
            e => e.to_string(),
        };
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_camera_name", message)
    })
}

pub(crate) fn camera_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "camera_not_found",
        format!(
            "there is no camera named '{name}'; GET /api/v1/cameras lists the cameras you may use"
        ),
    )
}

/// The camera with exactly this name. The store's own lookup also matches internal ids; a
/// camera named like another camera's id must not resolve to that other camera (its scope
/// check was made for the name).
pub(crate) fn find_camera(store: &Store, name: &str) -> ApiResult<Camera> {
    store
        .cameras()
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| camera_not_found(name))
}

/// A camera use case's refusal: the store's, with the API's advice, or an unrecorded change.
fn camera_error(e: CameraError) -> ApiError {
    match e {
        CameraError::Store(e) => store_error(e),
        e => ApiError::from_app(e),
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NoSuchCamera(name) => camera_not_found(&name),
        StoreError::DuplicateCamera(name) => ApiError::new(
            StatusCode::CONFLICT,
            "camera_exists",
            format!(
                "a camera named '{name}' already exists; choose another name or remove it first"
            ),
        ),
        // The store says what is wrong; the API adds which fields fix it.
        StoreError::InvalidCamera(msg) => {
            let prefix = if msg.starts_with("secondary stream:") {
                "secondary."
            } else {
                ""
            };
            let advice = if msg.contains("credentials must not be part of the URL") {
                format!("; use the `{prefix}username` and `{prefix}password` fields")
            } else if msg.ends_with("without a user name") {
                format!("; give `{prefix}username` with `{prefix}password`, or leave both out")
            } else {
                String::new()
            };
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_camera",
                format!("{msg}{advice}"),
            )
        }
        e if e.is_disk_full() => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "disk_full",
            "the data volume is full; free space or lower retention, then retry",
        ),
        e => ApiError::internal(e),
    }
}

// ------------------------------------------------------------------ types

/// A recorder's live state.
#[derive(Debug, Serialize, ToSchema)]
pub struct CameraStatusInfo {
    /// `recording`, `connecting`, `reconnecting`, `stopped`, `disabled`, or `not running`
    /// (no server refreshed the status in the last 10 s).
    pub state: String,
    pub fps: Option<f64>,
    pub bitrate_bps: Option<f64>,
    pub last_error: Option<String>,
    /// RFC 3339 time of the last frame received.
    pub last_frame: Option<String>,
    pub last_frame_us: Option<i64>,
    /// Codec of the stream (RFC 6381, e.g. `avc1.64001E`).
    pub codec: Option<String>,
    pub resolution: Option<String>,
}

/// A camera as callers see it. Never holds the password.
#[derive(Debug, Serialize, ToSchema)]
pub struct CameraInfo {
    pub name: String,
    pub enabled: bool,
    /// RTSP URL (without credentials); only for callers with ManageCameras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// RTSP user name; only for callers with ManageCameras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Whether a camera password is stored (encrypted at rest; it is never returned).
    pub has_password: bool,
    /// Retention by age in seconds; `null` means the installation default (`[retention]`).
    pub max_age_secs: Option<i64>,
    /// Retention by size in bytes; `null` means the installation default.
    pub max_bytes: Option<i64>,
    /// Bytes of stored video of this camera, per the index.
    pub recorded_bytes: i64,
    pub status: CameraStatusInfo,
    /// How video travels from the camera to the recorder.
    pub link: CameraLink,
    /// The camera's secondary stream (typically a lower resolution, for grids); `null` when
    /// it has none. Live video of it: `GET /api/v1/cameras/{camera}/live?stream=secondary`.
    pub secondary: Option<SecondaryInfo>,
    /// For a camera added by ONVIF: the device recorded for it and the last check of the
    /// device answering at its address (device allow-listing; a `mismatch` refuses its video
    /// until `POST /api/v1/cameras/{camera}/accept-device`); only for callers with
    /// ManageCameras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<vigil_app::device_check::DeviceView>,
    /// On a management server: the recording server that records the camera
    /// (`POST /api/v1/cameras/{camera}/assign`), `null` when unassigned; only for callers
    /// with ManageCameras, absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_server: Option<Option<String>>,
}

/// What becomes of a secondary stream's video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecondaryMode {
    /// Live view only: nothing is stored.
    Live,
    /// Stored and signed like the main stream (its own segments and evidence ledger); the
    /// camera's retention limits cover both streams together.
    Recorded,
}

impl From<StreamMode> for SecondaryMode {
    fn from(m: StreamMode) -> Self {
        match m {
            StreamMode::Live => SecondaryMode::Live,
            StreamMode::Recorded => SecondaryMode::Recorded,
        }
    }
}

impl From<SecondaryMode> for StreamMode {
    fn from(m: SecondaryMode) -> Self {
        match m {
            SecondaryMode::Live => StreamMode::Live,
            SecondaryMode::Recorded => StreamMode::Recorded,
        }
    }
}

/// A camera's secondary stream as callers see it. Never holds the password.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecondaryInfo {
    /// RTSP URL (without credentials); only for callers with ManageCameras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// RTSP user name; only for callers with ManageCameras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Whether a password is stored for it (encrypted at rest; it is never returned).
    pub has_password: bool,
    pub mode: SecondaryMode,
    /// Bytes of stored video of the secondary stream, per the index (0 when it was never
    /// recorded).
    pub recorded_bytes: i64,
    /// The secondary stream's recorder: `live` (frames flow to live viewers, nothing is
    /// stored), `recording`, `connecting`, `reconnecting`, `stopped`, `disabled` or
    /// `not running`.
    pub status: CameraStatusInfo,
    /// How the secondary stream travels from the camera.
    pub link: CameraLink,
}

/// The security of a camera's link, for every caller that may see the camera (the URL itself
/// is for admins only). An `rtsps://` link is used only with a verified or pinned certificate
/// (docs/design/camera-tls.md), so it is reported verified; whether it is up is the status.
#[derive(Debug, Serialize, ToSchema)]
pub struct CameraLink {
    /// URL scheme: `rtsp` (clear text) or `rtsps` (TLS).
    pub scheme: String,
    /// Video and credentials travel encrypted.
    pub encrypted: bool,
    /// The camera's identity is checked: its certificate chains to the trust store and names
    /// the host, or it is the pinned one.
    pub verified: bool,
    /// SHA-256 fingerprint of the one certificate accepted (`vigil camera trust`), if pinned.
    pub pinned: Option<String>,
    /// One line for people.
    pub summary: String,
}

fn camera_link(url: &str, pin: Option<&str>) -> CameraLink {
    let l = vigil_app::cameras::link(url, pin);
    CameraLink {
        scheme: l.scheme,
        encrypted: l.encrypted,
        verified: l.verified,
        pinned: l.pinned,
        summary: l.summary,
    }
}

/// The status of the recorder of the stream `id` (a camera's, or its secondary's).
fn status_info(store: &Store, id: &str, enabled: bool, now: i64) -> ApiResult<CameraStatusInfo> {
    let StreamStatus {
        state,
        current,
        stored: s,
    } = store
        .stream_status(id, enabled, now)
        .map_err(ApiError::internal)?;
    let live = s.as_ref().filter(|_| current);
    Ok(CameraStatusInfo {
        state,
        fps: live.map(|s| s.fps),
        bitrate_bps: live.map(|s| s.bitrate_bps),
        last_error: s.as_ref().and_then(|s| s.last_error.clone()),
        last_frame: s.as_ref().and_then(|s| s.last_frame_us).map(format_us),
        last_frame_us: s.as_ref().and_then(|s| s.last_frame_us),
        codec: s.as_ref().and_then(|s| s.codec.clone()),
        resolution: s.as_ref().and_then(|s| s.resolution.clone()),
    })
}

fn secondary_info(
    store: &Store,
    cam: &Camera,
    sec: &SecondaryStream,
    manage: bool,
    now: i64,
) -> ApiResult<SecondaryInfo> {
    Ok(SecondaryInfo {
        url: manage.then(|| sec.url.clone()),
        username: if manage { sec.username.clone() } else { None },
        has_password: sec.has_password,
        mode: sec.mode.into(),
        recorded_bytes: store.camera_bytes(&sec.id).map_err(ApiError::internal)?,
        status: status_info(store, &sec.id, cam.enabled, now)?,
        link: camera_link(&sec.url, cam.tls_pin.as_deref()),
    })
}

pub(crate) fn camera_info(
    store: &Store,
    cam: &Camera,
    manage: bool,
    now: i64,
) -> ApiResult<CameraInfo> {
    let status = status_info(store, &cam.id, cam.enabled, now)?;
    let secondary = cam
        .secondary
        .as_ref()
        .map(|sec| secondary_info(store, cam, sec, manage, now))
        .transpose()?;
    Ok(CameraInfo {
        name: cam.name.clone(),
        enabled: cam.enabled,
        url: manage.then(|| cam.url.clone()),
        username: if manage { cam.username.clone() } else { None },
        has_password: cam.has_password,
        max_age_secs: cam.max_age_secs,
        max_bytes: cam.max_bytes,
        recorded_bytes: store.camera_bytes(&cam.id).map_err(ApiError::internal)?,
        status,
        link: camera_link(&cam.url, cam.tls_pin.as_deref()),
        secondary,
        device: if manage {
            vigil_app::device_check::device_view(store, &cam.id).map_err(ApiError::internal)?
        } else {
            None
        },
        recording_server: None,
    })
}

/// Fills [`CameraInfo::recording_server`] for admins of a management server.
fn with_assignment(
    cfg: &vigil_config::Config,
    assigned: &std::collections::HashMap<String, String>,
    cam: &Camera,
    manage: bool,
    mut info: CameraInfo,
) -> CameraInfo {
    if manage && cfg.role == vigil_config::Role::Management {
        info.recording_server = Some(assigned.get(&cam.id).cloned());
    }
    info
}

fn config_of(state: &SharedState) -> vigil_config::Config {
    state
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

fn assign_error(e: vigil_app::assignments::AssignError) -> ApiError {
    use vigil_app::error::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => ApiError::not_found(e.to_string()),
        ErrorKind::InvalidInput => ApiError::bad_request(e.to_string()),
        ErrorKind::Conflict => ApiError::conflict(e.to_string()),
        _ => ApiError::internal(e),
    }
}

/// A retention age: seconds as a number, or a duration string as the CLI takes it (`30d`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AgeInput {
    Seconds(u64),
    Text(String),
}

impl AgeInput {
    fn seconds(&self) -> ApiResult<i64> {
        let secs = match self {
            AgeInput::Seconds(s) => *s,
            AgeInput::Text(t) => vigil_config::parse_duration(t)
                .map_err(|e| bad_field("max_age", &e))?
                .as_secs(),
        };
        if secs == 0 || secs > i64::MAX as u64 {
            return Err(bad_field(
                "max_age",
                "must be a positive duration such as 30d (or seconds as a number)",
            ));
        }
        Ok(secs as i64)
    }
}

fn bad_field(field: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_field",
        format!("`{field}`: {why}"),
    )
}

fn bytes_limit(b: u64) -> ApiResult<i64> {
    if b == 0 || b > i64::MAX as u64 {
        return Err(bad_field("max_bytes", "must be a positive number of bytes"));
    }
    Ok(b as i64)
}

/// What POST /api/v1/cameras takes (the same as `vigil camera add`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCameraRequest {
    /// 1-64 letters, digits, '-', '_' or '.'.
    pub name: String,
    /// `rtsp://host:port/path`; credentials in the URL are refused.
    pub url: String,
    pub username: Option<String>,
    /// Stored encrypted; needs `username`.
    pub password: Option<String>,
    /// Delete video older than this (`30d`, or seconds); default: the installation's.
    #[schema(value_type = Option<String>, example = "30d")]
    pub max_age: Option<AgeInput>,
    /// Keep at most this many bytes of video; default: the installation's.
    pub max_bytes: Option<u64>,
    /// Record it (default true).
    pub enabled: Option<bool>,
    /// A secondary stream of the camera (default none).
    pub secondary: Option<SecondaryRequest>,
}

/// A camera's secondary stream, as POST and PATCH take it: checked like the main stream, and
/// replacing any secondary the camera had as a whole (a password left out is no password,
/// unless `keep_password` says to keep the stored one).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondaryRequest {
    /// `rtsp://host:port/path`; credentials in the URL are refused.
    pub url: String,
    pub username: Option<String>,
    /// Stored encrypted; needs `username`.
    pub password: Option<String>,
    /// `live` (live view only; the default) or `recorded`.
    pub mode: Option<SecondaryMode>,
    /// PATCH only: keep the password stored for the camera's current secondary stream instead
    /// of giving `password` again (to change its mode or path without typing the password
    /// again). Refused together with `password`, on POST, and when the scheme, host, port or
    /// user name differ from the stored ones: a stored password only ever goes to the host it
    /// was given for.
    #[serde(default)]
    pub keep_password: bool,
}

impl std::fmt::Debug for SecondaryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondaryRequest")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("mode", &self.mode)
            .field("keep_password", &self.keep_password)
            .finish_non_exhaustive()
    }
}

impl SecondaryRequest {
    fn to_store(&self) -> NewSecondary {
        NewSecondary {
            url: self.url.clone(),
            username: self.username.clone().filter(|u| !u.is_empty()),
            password: self.password.clone().filter(|p| !p.is_empty()),
            mode: self.mode.unwrap_or(SecondaryMode::Live).into(),
        }
    }

    /// Checks `keep_password` against the request itself (before anything is looked up).
    fn check_keep(&self) -> ApiResult<()> {
        if self.keep_password && self.password.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(bad_field(
                "secondary.keep_password",
                "give either a new `password` or `keep_password`, not both",
            ));
        }
        Ok(())
    }

    /// The stream to store, with the current secondary's password when it is kept.
    fn to_store_keeping(&self, store: &Store, cam: &Camera) -> ApiResult<NewSecondary> {
        let mut new = self.to_store();
        if !self.keep_password {
            return Ok(new);
        }
        let Some(current) = &cam.secondary else {
            return Err(bad_field(
                "secondary.keep_password",
                "the camera has no secondary stream whose password could be kept; give `password`",
            ));
        };
        let same_origin = matches!(
            (stream_origin(&current.url), stream_origin(&new.url)),
            (Some(a), Some(b)) if a == b
        );
        if !same_origin || current.username != new.username {
            return Err(bad_field(
                "secondary.keep_password",
                "a stored password is kept only for the same scheme, host, port and user name \
                 (it must not go to another host); enter the password again",
            ));
        }
        new.password = store
            .camera_password(&current.id)
            .map_err(ApiError::internal)?;
        Ok(new)
    }
}

/// Scheme and authority (`host[:port]`) of a stream URL, lower case: where its password goes.
fn stream_origin(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    Some((scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
}

impl std::fmt::Debug for NewCameraRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCameraRequest")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Distinguishes a field set to `null` (clear) from a field left out (keep).
fn explicit<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What PATCH /api/v1/cameras/{camera} changes; fields left out are kept, `null` retention
/// limits fall back to the installation default, `secondary: null` removes the secondary
/// stream (its recordings stay, under the camera's retention) and a `secondary` object sets
/// or replaces it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraPatch {
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<String>, example = "30d")]
    pub max_age: Option<Option<AgeInput>>,
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<u64>)]
    pub max_bytes: Option<Option<u64>>,
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<SecondaryRequest>)]
    pub secondary: Option<Option<SecondaryRequest>>,
    /// Pin the one TLS certificate the camera's `rtsps://` streams may present, by its
    /// SHA-256 fingerprint (64 hex digits, colons allowed; shown in the refusal when the
    /// certificate is not trusted), or `null` to remove the pin so the certificate is verified
    /// against the trust store again; the same as `vigil camera trust`, audited.
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<String>, example = "AB:CD:…")]
    pub tls_pin: Option<Option<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Also delete the camera's recordings (default false: they stay on disk).
    pub delete_video: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(names("camera"), parameter_in = Path)]
pub struct CameraPath(pub String);

// ------------------------------------------------------------------ handlers

/// The cameras the caller may use, with recorder status, retention and stored bytes. Needs
/// ViewLive, Playback or ManageCameras (an auditor gets 403); cameras outside the caller's
/// scope are left out.
#[utoipa::path(get, path = "/api/v1/cameras", tag = "cameras",
    responses(
        (status = 200, body = Vec<CameraInfo>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "the role may not see cameras", body = ErrorBody),
    ))]
async fn list_cameras(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<Vec<CameraInfo>>> {
    // Deny by default: a role that grants none of the camera-viewing permissions is refused
    // outright rather than shown an empty list.
    if !SEE.iter().any(|p| caller.principal.role().grants(*p)) {
        return Err(ApiError::forbidden(format!(
            "role {} may not see cameras",
            caller.principal.role()
        )));
    }
    let store = state.store.clone();
    let cfg = config_of(&state);
    let list = blocking(move || {
        let now = now_us();
        let mut out = Vec::new();
        let assigned = vigil_app::assignments::by_camera(&cfg).map_err(ApiError::internal)?;
        for cam in store.cameras().map_err(ApiError::internal)? {
            if !caller.principal.can_see_camera(&cam.name)
                || require_any(&caller, &SEE, &cam.name).is_err()
            {
                continue;
            }
            let manage = caller
                .require(Permission::ManageCameras, Some(&cam.name))
                .is_ok();
            let info = camera_info(&store, &cam, manage, now)?;
            out.push(with_assignment(&cfg, &assigned, &cam, manage, info));
        }
        Ok::<_, ApiError>(out)
    })
    .await??;
    Ok(Json(list))
}

/// Add a camera by RTSP URL (ManageCameras), with a secondary stream if given. The same checks
/// as `vigil camera add`: credentials in a URL are refused, a password needs a user name.
#[utoipa::path(post, path = "/api/v1/cameras", tag = "cameras",
    request_body = NewCameraRequest,
    responses(
        (status = 201, body = CameraInfo),
        (status = 400, description = "invalid name, URL or retention", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "a camera with this name exists", body = ErrorBody),
    ))]
async fn add_camera(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<NewCameraRequest>, ApiError>,
) -> ApiResult<Response> {
    // Permission before the body is even looked at: an unauthorized caller learns nothing
    // about what a valid request would look like.
    caller.require(Permission::ManageCameras, None)?;
    let ApiJson(req) = body?;
    caller.require(Permission::ManageCameras, Some(&req.name))?;
    check_camera_name(&req.name)?;
    if req.secondary.as_ref().is_some_and(|s| s.keep_password) {
        return Err(bad_field(
            "secondary.keep_password",
            "a new camera has no stored password to keep; give `password`",
        ));
    }
    let new = NewCamera {
        name: req.name.clone(),
        url: req.url.clone(),
        username: req.username.clone().filter(|u| !u.is_empty()),
        password: req.password.clone().filter(|p| !p.is_empty()),
        max_age_secs: req.max_age.as_ref().map(AgeInput::seconds).transpose()?,
        max_bytes: req.max_bytes.map(bytes_limit).transpose()?,
        secondary: req.secondary.as_ref().map(SecondaryRequest::to_store),
    };
    let enabled = req.enabled.unwrap_or(true);
    let store = state.store.clone();
    let access = state.access.clone();
    let actor = caller.actor();
    let info = blocking(move || {
        let trail = Trail::new(&access, actor);
        let cam = cameras::add(&store, &new, enabled, &trail).map_err(camera_error)?;
        camera_info(&store, &cam, true, now_us())
    })
    .await??;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// One camera with its status. Needs ViewLive, Playback or ManageCameras on it.
#[utoipa::path(get, path = "/api/v1/cameras/{camera}", tag = "cameras",
    params(CameraPath),
    responses(
        (status = 200, body = CameraInfo),
        (status = 400, description = "malformed camera name", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such camera (only after the permission check)", body = ErrorBody),
    ))]
async fn get_camera(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<CameraInfo>> {
    require_any(&caller, &SEE, &name)?;
    check_camera_name(&name)?;
    let manage = caller
        .require(Permission::ManageCameras, Some(&name))
        .is_ok();
    let store = state.store.clone();
    let cfg = config_of(&state);
    let info = blocking(move || {
        let cam = find_camera(&store, &name)?;
        let assigned = vigil_app::assignments::by_camera(&cfg).map_err(ApiError::internal)?;
        let info = camera_info(&store, &cam, manage, now_us())?;
        Ok::<_, ApiError>(with_assignment(&cfg, &assigned, &cam, manage, info))
    })
    .await??;
    Ok(Json(info))
}

/// Which recording server records a camera.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// The recording server's name; `null` (with `auto` false) unassigns the camera.
    pub server: Option<String>,
    /// Choose the online recording server with the fewest cameras.
    #[serde(default)]
    pub auto: bool,
}

/// On a management server: assign a camera to a recording server, automatically by load or
/// not at all (ManageCameras). The server fetches the camera with its next heartbeat (5 s)
/// and records it; the server it had stops. Audited.
#[utoipa::path(post, path = "/api/v1/cameras/{camera}/assign", tag = "cameras",
    params(CameraPath),
    request_body = AssignRequest,
    responses(
        (status = 200, body = vigil_app::assignments::AssignmentView),
        (status = 400, description = "unknown or removed server, or both `server` and `auto`", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "not a management server, or no server online for `auto`", body = ErrorBody),
    ))]
async fn assign_camera(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Result<ApiJson<AssignRequest>, ApiError>,
) -> ApiResult<Json<vigil_app::assignments::AssignmentView>> {
    caller.require(Permission::ManageCameras, Some(&name))?;
    let ApiJson(req) = body?;
    check_camera_name(&name)?;
    use vigil_app::assignments::Target;
    let target = match (req.server, req.auto) {
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "give either `server` or `auto`, not both",
            ));
        }
        (Some(s), false) => Target::Server(s),
        (None, true) => Target::Auto,
        (None, false) => Target::Unassigned,
    };
    let (store, access, actor, cfg) = (
        state.store.clone(),
        state.access.clone(),
        caller.actor(),
        config_of(&state),
    );
    let view = blocking(move || {
        let cam = find_camera(&store, &name)?;
        let trail = Trail::new(&access, actor);
        vigil_app::assignments::assign(&cfg, &store, &trail, &cam.id, &target).map_err(assign_error)
    })
    .await??;
    Ok(Json(view))
}

/// Enable or disable recording, change retention, set, replace or remove (`null`) the
/// secondary stream, pin or unpin (`null`) the certificate of an `rtsps://` camera
/// (ManageCameras).
#[utoipa::path(patch, path = "/api/v1/cameras/{camera}", tag = "cameras",
    params(CameraPath),
    request_body = CameraPatch,
    responses(
        (status = 200, body = CameraInfo),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn patch_camera(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Result<ApiJson<CameraPatch>, ApiError>,
) -> ApiResult<Json<CameraInfo>> {
    caller.require(Permission::ManageCameras, Some(&name))?;
    let ApiJson(patch) = body?;
    check_camera_name(&name)?;
    let max_age = patch
        .max_age
        .as_ref()
        .map(|a| a.as_ref().map(AgeInput::seconds).transpose())
        .transpose()?;
    let max_bytes = patch
        .max_bytes
        .map(|b| b.map(bytes_limit).transpose())
        .transpose()?;
    let enabled = patch.enabled;
    if let Some(Some(sec)) = &patch.secondary {
        sec.check_keep()?;
    }
    let secondary = patch.secondary;
    let tls_pin = patch.tls_pin;
    let store = state.store.clone();
    let access = state.access.clone();
    let actor = caller.actor();
    let info = blocking(move || {
        let cam = find_camera(&store, &name)?;
        let change = CameraChange {
            enabled,
            max_age_secs: max_age,
            max_bytes,
            secondary: secondary
                .map(|sec| {
                    sec.as_ref()
                        .map(|s| s.to_store_keeping(&store, &cam))
                        .transpose()
                })
                .transpose()?,
            tls_pin,
        };
        let trail = Trail::new(&access, actor);
        let after = cameras::change(&store, &cam.id, &change, &trail).map_err(camera_error)?;
        camera_info(&store, &after, true, now_us())
    })
    .await??;
    Ok(Json(info))
}

/// Remove a camera (ManageCameras). Its recordings stay on disk unless `delete_video=true`.
#[utoipa::path(delete, path = "/api/v1/cameras/{camera}", tag = "cameras",
    params(CameraPath, DeleteQuery),
    responses(
        (status = 204, description = "removed"),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn delete_camera(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageCameras, Some(&name))?;
    check_camera_name(&name)?;
    let delete_video = q.delete_video.unwrap_or(false);
    let store = state.store.clone();
    let access = state.access.clone();
    let actor = caller.actor();
    blocking(move || {
        let cam = find_camera(&store, &name)?;
        let trail = Trail::new(&access, actor);
        cameras::remove(&store, &cam.id, delete_video, &trail).map_err(camera_error)
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Which certificate the device now answering may present.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptDeviceRequest {
    /// Accept exactly this HTTPS certificate (SHA-256 fingerprint, as a refusal shows it),
    /// e.g. the new device's self-signed one; without it the certificate must verify against
    /// the installation trust store.
    pub fingerprint: Option<String>,
}

/// What accepting the device did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceAcceptedInfo {
    /// The identity recorded before.
    pub previous: crate::routes::onvif::DeviceIdentityInfo,
    /// The camera as it is now, its new `device` included.
    pub camera: CameraInfo,
}

/// Accept the device now answering at the camera's ONVIF address as the camera's device
/// (ManageCameras): after a camera was replaced on purpose, Vigil asks the device who it is
/// (with the camera's stored credentials) and records that identity; the streams the device
/// allow-list refused start again within seconds. Audited (`camera_changed`,
/// `device_accepted`) with the old and the new identity.
#[utoipa::path(post, path = "/api/v1/cameras/{camera}/accept-device", tag = "cameras",
    params(CameraPath),
    request_body = AcceptDeviceRequest,
    responses(
        (status = 200, body = DeviceAcceptedInfo),
        (status = 400, description = "malformed camera name or fingerprint", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the camera was not added by ONVIF; the device refused the credentials, or its certificate is untrusted (pin it with `fingerprint`)", body = ErrorBody),
        (status = 503, description = "the device cannot be reached or answers badly", body = ErrorBody),
    ))]
async fn accept_device(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Result<ApiJson<AcceptDeviceRequest>, ApiError>,
) -> ApiResult<Json<DeviceAcceptedInfo>> {
    caller.require(Permission::ManageCameras, Some(&name))?;
    let ApiJson(req) = body?;
    check_camera_name(&name)?;
    let trust = camera_trust(&state);
    let trail = Trail::new(&state.access, caller.actor());
    let accepted = vigil_app::device_check::accept_device(
        &state.store,
        trust,
        &name,
        req.fingerprint.as_deref(),
        &trail,
    )
    .await
    .map_err(ApiError::from_app)?;
    let store = state.store.clone();
    let camera = blocking(move || {
        let cam = find_camera(&store, &accepted.camera)?;
        camera_info(&store, &cam, true, now_us())
    })
    .await??;
    let p = accepted.previous;
    Ok(Json(DeviceAcceptedInfo {
        previous: crate::routes::onvif::DeviceIdentityInfo {
            onvif_url: p.onvif_url,
            manufacturer: p.manufacturer,
            model: p.model,
            firmware: p.firmware,
            serial: p.serial,
            certificate: p.certificate,
        },
        camera,
    }))
}

/// How long a certificate installed on a camera is valid.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallCertificateRequest {
    /// Validity in days (default 397; at most the CA's limit for issued certificates).
    pub days: Option<u32>,
}

/// What installing a certificate on a camera did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CameraCertificateInstalled {
    pub camera: String,
    /// SHA-256 of the certificate the camera's HTTPS now serves (recorded as its identity).
    pub fingerprint_sha256: String,
    /// The certificate recorded before, if any.
    pub previous_fingerprint_sha256: Option<String>,
    pub subject: String,
    /// The names it carries: the host of the camera's ONVIF address.
    pub sans: Vec<String>,
    /// RFC 3339.
    pub not_after: String,
    /// The camera's id for the new certification path.
    pub certification_path: String,
}

/// Give an ONVIF camera a certificate from the installation CA (ManageCertificates and
/// ManageCameras): over ONVIF Advanced Security the camera makes its key and CSR, the CA
/// signs it for the camera's address, the camera serves HTTPS with it, and once a new
/// connection verified without any pin presents exactly that certificate it is recorded as
/// the camera's identity. Audited (`camera_changed`, `certificate_installed`). May take up
/// to a minute while the camera makes its key.
#[utoipa::path(post, path = "/api/v1/cameras/{camera}/install-certificate", tag = "cameras",
    params(CameraPath),
    request_body = InstallCertificateRequest,
    responses(
        (status = 200, body = CameraCertificateInstalled),
        (status = 400, description = "malformed camera name or validity", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "not an ONVIF camera, no Advanced Security on the device, credentials refused, or the camera did not serve the new certificate", body = ErrorBody),
        (status = 503, description = "the device cannot be reached or answers badly", body = ErrorBody),
    ))]
async fn install_certificate(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Result<ApiJson<InstallCertificateRequest>, ApiError>,
) -> ApiResult<Json<CameraCertificateInstalled>> {
    caller.require(Permission::ManageCertificates, None)?;
    caller.require(Permission::ManageCameras, Some(&name))?;
    let ApiJson(req) = body?;
    check_camera_name(&name)?;
    let trust = camera_trust(&state);
    let trail = Trail::new(&state.access, caller.actor());
    let done = vigil_app::camera_certificate::install(
        &state.store,
        state.pki.as_ref(),
        trust,
        &name,
        req.days
            .unwrap_or(vigil_app::camera_certificate::DEFAULT_DAYS),
        &trail,
    )
    .await
    .map_err(ApiError::from_app)?;
    let c = done.certificate;
    Ok(Json(CameraCertificateInstalled {
        camera: done.camera,
        fingerprint_sha256: c.fingerprint_sha256,
        previous_fingerprint_sha256: done.previous,
        subject: c.subject,
        sans: c.sans,
        not_after: vigil_pki::rfc3339(c.not_after),
        certification_path: done.path_id,
    }))
}

/// A camera password set on the camera outside Vigil.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordRequest {
    /// The password the camera now has (never returned, logged or audited).
    pub password: String,
}

impl std::fmt::Debug for SetPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetPasswordRequest { password: <redacted> }")
    }
}

/// Store a camera password changed outside Vigil (ManageCameras): on the camera's own page,
/// or for a camera added by RTSP URL, which rotation cannot reach. The camera proves the
/// password first (an authenticated ONVIF call for a camera added by ONVIF, and an RTSP
/// DESCRIBE of its stream); only then it is stored (for the secondary stream too when that
/// logs in as the same user) and the camera's streams reconnect with it. Audited
/// (`camera_changed`, `password_set`), never the password.
#[utoipa::path(post, path = "/api/v1/cameras/{camera}/password", tag = "cameras",
    params(CameraPath),
    request_body = SetPasswordRequest,
    responses(
        (status = 200, body = vigil_app::camera_password::PasswordSet),
        (status = 400, description = "malformed camera name; an empty, too long or control-character password", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the camera refused the password (nothing stored), has no user name, or a rotation of it is running", body = ErrorBody),
    ))]
async fn set_password(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Result<ApiJson<SetPasswordRequest>, ApiError>,
) -> ApiResult<Json<vigil_app::camera_password::PasswordSet>> {
    caller.require(Permission::ManageCameras, Some(&name))?;
    let ApiJson(req) = body?;
    let password = zeroize::Zeroizing::new(req.password);
    check_camera_name(&name)?;
    let cfg = state
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let rotator = vigil_app::rotation::Rotator::for_installation(
        &cfg,
        state.store.clone(),
        state.events.clone(),
    );
    let trail = Trail::new(&state.access, caller.actor());
    let done = rotator
        .set_password(&name, &password, &trail)
        .await
        .map_err(ApiError::from_app)?;
    Ok(Json(done))
}

/// The CAs a camera's certificate may chain to, for the installation this server runs.
fn camera_trust(state: &SharedState) -> vigil_media::ingest_tls::TrustStore {
    let config = state.config.read().unwrap_or_else(|p| p.into_inner());
    vigil_app::onvif::camera_trust(&config.data_dir)
}
