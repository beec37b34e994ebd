//! Users, roles and camera permissions, administrator password resets, and the caller's
//! own account: password change (it ends the user's other sessions) and TOTP enrolment.
//!
//! Every `/api/v1/users` route needs `ManageUsers`. The `/api/v1/account` routes are the
//! deliberate exception: they act only on the logged-in user's own account, so being logged in
//! with a session is the whole requirement (API tokens have no password or second factor and
//! are refused). Changing the password or enrolling a second factor re-checks the current
//! password, so a stolen session cookie alone cannot take the account over.
//!
//! All decisions (policy, last-admin protection, session ending, auditing) are made by
//! vigil-access; this module maps HTTP to those calls.
//!
//! Handlers take their JSON body as `Result<ApiJson<_>, ApiError>` and unwrap it only after
//! the permission check, so a caller without the permission gets 403 whatever it sent.

use crate::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{
    AccessError, CameraScope, LoginError, NewUser, Permission, Principal, Role, UserInfo,
};

use crate::auth::{Caller, blocked};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::blocking;
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(reset_password))
        .routes(routes!(disable_totp))
        .routes(routes!(change_own_password))
        .routes(routes!(begin_totp))
        .routes(routes!(confirm_totp))
}

/// Parses a role name from a request.
pub(crate) fn parse_role(s: &str) -> ApiResult<Role> {
    s.parse::<Role>()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A camera list from a request: absent or `null` means every camera, a list means only those
/// (an empty list means none).
pub(crate) fn scope_from(cameras: Option<Vec<String>>) -> ApiResult<CameraScope> {
    match cameras {
        None => Ok(CameraScope::All),
        Some(list) => {
            // The same rule vigil-access applies, checked up front so that a multi-field
            // update fails before any field is changed.
            if let Some(bad) = list
                .iter()
                .find(|c| c.is_empty() || c.len() > 128 || c.chars().any(char::is_control))
            {
                return Err(AccessError::InvalidCamera(bad.chars().take(128).collect()).into());
            }
            Ok(CameraScope::only(list))
        }
    }
}

/// A camera scope as the API shows it: `null` for every camera.
pub(crate) fn scope_view(scope: &CameraScope) -> Option<Vec<String>> {
    match scope {
        CameraScope::All => None,
        CameraScope::Only(set) => Some(set.iter().cloned().collect()),
    }
}

/// A user as listed (never a secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub username: String,
    /// admin, operator, viewer or auditor.
    pub role: String,
    /// Cameras the user may use; `null` means all (admins always see all).
    pub cameras: Option<Vec<String>>,
    pub totp_enabled: bool,
    pub disabled: bool,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339.
    pub password_changed: String,
    pub active_sessions: u64,
}

impl From<UserInfo> for UserView {
    fn from(u: UserInfo) -> Self {
        UserView {
            cameras: scope_view(&u.cameras),
            username: u.username,
            role: u.role.to_string(),
            totp_enabled: u.totp_enabled,
            disabled: u.disabled,
            created: u.created.to_string(),
            password_changed: u.password_changed.to_string(),
            active_sessions: u.active_sessions,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    /// admin, operator, viewer or auditor.
    pub role: String,
    /// Cameras the user may use; absent or `null` means all.
    #[serde(default)]
    pub cameras: Option<Vec<String>>,
    /// Absent: a strong password is generated and returned once.
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A new user, or a reset password. `generated_password` is shown this once and never again.
#[derive(Serialize, ToSchema)]
pub struct UserWithPassword {
    pub user: UserView,
    /// Present only when the server generated the password; store it now.
    pub generated_password: Option<String>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a user; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub role: Option<String>,
    /// A list limits the user to those cameras; `null` grants all cameras; absent: unchanged.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub cameras: Option<Option<Vec<String>>>,
    /// Disabling ends every session of the user.
    #[serde(default)]
    pub disabled: Option<bool>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// Absent: a strong password is generated and returned once.
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for ResetPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPasswordRequest")
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

impl std::fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePasswordRequest")
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginTotpRequest {
    /// Re-authentication: enrolling a second factor locks the account to a device.
    pub current_password: String,
}

impl std::fmt::Debug for BeginTotpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeginTotpRequest").finish_non_exhaustive()
    }
}

/// A pending TOTP secret: show it (or the URI as a QR code), then confirm with a code.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrollmentView {
    /// Base32 secret for manual entry in an authenticator app.
    pub secret_base32: String,
    /// `otpauth://totp/...`, to render as a QR code.
    pub otpauth_uri: String,
    /// The URI as a QR code: an SVG document (the web client shows it as an image).
    pub qr_svg: String,
}

/// The QR code of `uri` as a standalone SVG document, black on white with a quiet zone.
fn qr_svg(uri: &str) -> ApiResult<String> {
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M)
        .map_err(ApiError::internal)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTotpRequest {
    /// The current 6-digit code from the authenticator app.
    pub code: String,
}

async fn load_user(state: &SharedState, username: String) -> ApiResult<UserView> {
    let access = state.access.clone();
    let name = username.clone();
    match blocking(move || access.get_user(&name)).await?? {
        Some(u) => Ok(u.into()),
        None => Err(unknown_user(&username)),
    }
}

fn unknown_user(username: &str) -> ApiError {
    ApiError::from(AccessError::UnknownUser(
        username.chars().take(64).collect(),
    ))
}

/// Every user.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses(
        (status = 200, body = Vec<UserView>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
    ))]
async fn list_users(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<Vec<UserView>>> {
    caller.require(Permission::ManageUsers, None)?;
    let access = state.access.clone();
    let users = blocking(move || access.list_users()).await??;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

/// Creates a user. Without `password`, a strong one is generated and returned once.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserWithPassword),
        (status = 400, description = "invalid name, role, camera or weak password", body = ErrorBody),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
        (status = 409, description = "the user exists", body = ErrorBody),
    ))]
async fn create_user(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<CreateUserRequest>, ApiError>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageUsers, None)?;
    let ApiJson(req) = body?;
    let new = NewUser {
        username: req.username,
        role: parse_role(&req.role)?,
        cameras: scope_from(req.cameras)?,
        password: req.password,
    };
    let access = state.access.clone();
    let actor = caller.actor();
    let username = new.username.clone();
    let generated = blocking(move || access.create_user(&new, &actor)).await??;
    let user = load_user(&state, username).await?;
    Ok((
        StatusCode::CREATED,
        Json(UserWithPassword {
            user,
            generated_password: generated,
        }),
    )
        .into_response())
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "users",
    params(("username" = String, Path, description = "the user name")),
    responses(
        (status = 200, body = UserView),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn get_user(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<Json<UserView>> {
    caller.require(Permission::ManageUsers, None)?;
    Ok(Json(load_user(&state, username).await?))
}

/// Changes a user's role, cameras or disabled flag. The last enabled administrator cannot be
/// demoted or disabled (409). Every change is audited.
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "users",
    params(("username" = String, Path, description = "the user name")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "the user after the change", body = UserView),
        (status = 400, body = ErrorBody),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "would leave no enabled administrator", body = ErrorBody),
    ))]
async fn update_user(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
    body: Result<ApiJson<UpdateUserRequest>, ApiError>,
) -> ApiResult<Json<UserView>> {
    caller.require(Permission::ManageUsers, None)?;
    let ApiJson(req) = body?;
    if req.role.is_none() && req.cameras.is_none() && req.disabled.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: send at least one of `role`, `cameras`, `disabled`",
        ));
    }
    // Validate everything before changing anything.
    let role = req.role.as_deref().map(parse_role).transpose()?;
    let cameras = req.cameras.map(scope_from).transpose()?;
    let current = load_user(&state, username.clone()).await?;
    let access = state.access.clone();
    let actor = caller.actor();
    let name = username.clone();
    blocking(move || -> Result<(), AccessError> {
        // Role first: the last-admin check refuses it before anything else changed; a user
        // who is (still) an admin after it cannot hit the last-admin check when disabled,
        // since another enabled admin exists whenever this one was just promoted.
        if let Some(role) = role
            && role.as_str() != current.role
        {
            access.set_role(&name, role, &actor)?;
        }
        if let Some(disabled) = req.disabled
            && disabled != current.disabled
        {
            access.set_disabled(&name, disabled, &actor)?;
        }
        if let Some(cameras) = cameras
            && scope_view(&cameras) != current.cameras
        {
            access.set_cameras(&name, &cameras, &actor)?;
        }
        Ok(())
    })
    .await??;
    Ok(Json(load_user(&state, username).await?))
}

/// Removes a user and ends their sessions. The last enabled administrator cannot be removed.
#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "users",
    params(("username" = String, Path, description = "the user name")),
    responses(
        (status = 204, description = "removed"),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the last enabled administrator", body = ErrorBody),
    ))]
async fn delete_user(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageUsers, None)?;
    let access = state.access.clone();
    let actor = caller.actor();
    blocking(move || access.remove_user(&username, &actor)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Administrator password reset: sets `password` (or generates one, returned once) and ends
/// every session of the user. Send `{}` to generate.
#[utoipa::path(put, path = "/api/v1/users/{username}/password", tag = "users",
    params(("username" = String, Path, description = "the user name")),
    request_body = ResetPasswordRequest,
    responses(
        (status = 200, body = UserWithPassword),
        (status = 400, description = "password rejected by the policy", body = ErrorBody),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn reset_password(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
    body: Result<ApiJson<ResetPasswordRequest>, ApiError>,
) -> ApiResult<Json<UserWithPassword>> {
    caller.require(Permission::ManageUsers, None)?;
    let ApiJson(req) = body?;
    // Refuse unknown users before hashing anything.
    load_user(&state, username.clone()).await?;
    let access = state.access.clone();
    let actor = caller.actor();
    let name = username.clone();
    let generated =
        blocking(move || access.set_password(&name, req.password.as_deref(), &actor)).await??;
    Ok(Json(UserWithPassword {
        user: load_user(&state, username).await?,
        generated_password: generated,
    }))
}

/// Turns a user's second factor off (e.g. a lost device); they log in with the password alone
/// until they enrol again.
#[utoipa::path(delete, path = "/api/v1/users/{username}/totp", tag = "users",
    params(("username" = String, Path, description = "the user name")),
    responses(
        (status = 204, description = "second factor removed"),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn disable_totp(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageUsers, None)?;
    let access = state.access.clone();
    let actor = caller.actor();
    blocking(move || access.disable_totp(&username, &actor)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// The user name and session of a caller acting on their own account. Deliberately no
/// permission check: every logged-in user owns their account. API tokens are refused.
fn own_account(caller: &Caller) -> ApiResult<(String, String)> {
    match (&caller.principal, &caller.session_id) {
        (Principal::User { username, .. }, Some(session)) => {
            Ok((username.clone(), session.clone()))
        }
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "session_required",
            "only a logged-in user can change their own account; API tokens have no password",
        )),
    }
}

/// Maps the failures of a re-authenticating account call.
fn reauth_error(e: LoginError) -> ApiError {
    match e {
        LoginError::Blocked(_) => blocked(),
        LoginError::InvalidCredentials | LoginError::TotpRequired => ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the current password is wrong (this counts as a failed login)",
        ),
        LoginError::Internal(e) => e.into(),
    }
}

/// Changes the caller's own password. The current password must be right (a wrong one counts
/// as a failed login for intrusion detection). Every OTHER session of the user ends; the
/// session making the request stays. Needs only a logged-in session (see the module docs).
#[utoipa::path(post, path = "/api/v1/account/password", tag = "users",
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "password changed; other sessions ended"),
        (status = 400, description = "new password rejected by the policy", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "wrong current password, API token, or address blocked", body = ErrorBody),
    ))]
async fn change_own_password(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<ChangePasswordRequest>, ApiError>,
) -> ApiResult<StatusCode> {
    let (username, session) = own_account(&caller)?;
    let ApiJson(req) = body?;
    let access = state.access.clone();
    let source = caller.source;
    blocking(move || {
        access.change_password(
            &username,
            &req.current_password,
            &req.new_password,
            Some(&session),
            source,
        )
    })
    .await?
    .map_err(reauth_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts TOTP enrolment for the caller's own account (re-checks the password). Returns the
/// secret to put into an authenticator app; it is active only after confirmation.
#[utoipa::path(post, path = "/api/v1/account/totp", tag = "users",
    request_body = BeginTotpRequest,
    responses(
        (status = 200, body = TotpEnrollmentView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "wrong current password or API token", body = ErrorBody),
    ))]
async fn begin_totp(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<BeginTotpRequest>, ApiError>,
) -> ApiResult<Json<TotpEnrollmentView>> {
    let (username, _) = own_account(&caller)?;
    let ApiJson(req) = body?;
    let st = state.clone();
    let source = caller.source;
    let enrollment = blocking(move || {
        st.access
            .confirm_password(&username, &req.current_password, source)
            .map_err(reauth_error)?;
        st.access
            .begin_totp_enrollment(&username)
            .map_err(ApiError::from)
    })
    .await??;
    Ok(Json(TotpEnrollmentView {
        qr_svg: qr_svg(&enrollment.otpauth_uri)?,
        secret_base32: enrollment.secret_base32,
        otpauth_uri: enrollment.otpauth_uri,
    }))
}

/// Activates the pending TOTP secret with a current code; from then on login needs a code.
#[utoipa::path(post, path = "/api/v1/account/totp/confirm", tag = "users",
    request_body = ConfirmTotpRequest,
    responses(
        (status = 204, description = "second factor active"),
        (status = 400, description = "no enrolment pending or wrong code", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "API token", body = ErrorBody),
    ))]
async fn confirm_totp(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<ApiJson<ConfirmTotpRequest>, ApiError>,
) -> ApiResult<StatusCode> {
    let (username, _) = own_account(&caller)?;
    let ApiJson(req) = body?;
    let access = state.access.clone();
    let actor = caller.actor();
    blocking(move || access.confirm_totp(&username, &req.code, &actor)).await??;
    Ok(StatusCode::NO_CONTENT)
}
