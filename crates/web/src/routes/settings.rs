//! The runtime-settings routes: an HTTP adapter over [`vigil_app::settings`], which owns
//! staging, restore, factory defaults and apply (the semantics are described there). These
//! handlers check the permission, call one use case and present its result; the sockets and
//! the live certificate that apply changes are reached through the ports in
//! [`crate::ports`].

use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::Permission;
use vigil_app::settings::Staging;
pub use vigil_app::settings::{Change, EditableSettings};

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::json::Json;
use crate::listen::ApplyReport;
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, patch_settings))
        .routes(routes!(apply_settings))
        .routes(routes!(restore_settings))
        .routes(routes!(factory_settings))
}

/// The saved settings, the staged ones and what applying them would change.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsAnswer {
    /// The settings in effect (saved in the config file).
    pub saved: EditableSettings,
    /// Staged, unsaved settings; `null` when nothing is staged.
    pub pending: Option<EditableSettings>,
    /// How the staged settings differ from the saved ones.
    pub changes: Vec<Change>,
    /// Applying the staged settings rebinds listeners (live, no process restart).
    pub listeners_restart: bool,
    /// Applying the staged settings reissues the server certificate.
    pub certificate_reissue: bool,
    pub message: String,
}

fn answer(s: Staging, message: impl Into<String>) -> Json<SettingsAnswer> {
    Json(SettingsAnswer {
        saved: EditableSettings::of(&s.saved),
        pending: s.pending.as_ref().map(EditableSettings::of),
        listeners_restart: s.listeners_restart(),
        certificate_reissue: s.certificate_reissue(),
        changes: s.changes,
        message: message.into(),
    })
}

/// The settings in effect and the staged (unsaved) ones, if any.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    responses(
        (status = 200, description = "saved and staged settings", body = SettingsAnswer),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "needs the ManageSettings permission (admin)", body = ErrorBody),
    ),
    security(("session" = []), ("token" = [])))]
async fn get_settings(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<SettingsAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let current = state.settings.current();
    let message = match &current.pending {
        Some(_) => {
            "staged settings are not saved yet: POST /api/v1/settings/apply to save and apply them, /restore to discard them"
        }
        None => "no staged changes",
    };
    Ok(answer(current, message))
}

/// Stage a change: a JSON merge patch (RFC 7396) of the editable settings, merged into the
/// already staged ones (or the saved ones). Nothing takes effect until apply.
#[utoipa::path(patch, path = "/api/v1/settings", tag = "settings",
    request_body(content = Object, description = "partial EditableSettings (JSON merge patch); `null` removes an optional setting"),
    responses(
        (status = 200, description = "staged; lists the changes and whether applying them rebinds listeners or reissues the certificate", body = SettingsAnswer),
        (status = 400, description = "invalid value (`bad_request`) or no listener left (`unreachable`); nothing staged", body = ErrorBody),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "needs the ManageSettings permission (admin)", body = ErrorBody),
    ),
    security(("session" = []), ("token" = [])))]
async fn patch_settings(
    State(state): State<SharedState>,
    caller: Caller,
    ApiJson(patch): ApiJson<Value>,
) -> ApiResult<Json<SettingsAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let staged = state.settings.stage(&patch, &caller.actor()).await?;
    Ok(answer(
        staged,
        "staged, not saved: POST /api/v1/settings/apply to save and apply (no process restart needed), /restore to discard",
    ))
}

/// "Restore": discard the staged settings.
#[utoipa::path(post, path = "/api/v1/settings/restore", tag = "settings",
    responses(
        (status = 200, description = "staged settings discarded", body = SettingsAnswer),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "needs the ManageSettings permission (admin)", body = ErrorBody),
    ),
    security(("session" = []), ("token" = [])))]
async fn restore_settings(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<SettingsAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let restored = state.settings.restore(&caller.actor()).await?;
    let message = if restored.discarded.is_empty() {
        "nothing was staged; the saved settings stay in effect".into()
    } else {
        format!(
            "discarded {} staged change(s); the saved settings stay in effect",
            restored.discarded.len()
        )
    };
    let saved = Staging {
        saved: restored.saved,
        pending: None,
        changes: Vec::new(),
    };
    Ok(answer(saved, message))
}

/// "Factory": stage the built-in defaults of the editable settings (applied only by apply).
#[utoipa::path(post, path = "/api/v1/settings/factory", tag = "settings",
    responses(
        (status = 200, description = "defaults staged", body = SettingsAnswer),
        (status = 400, description = "the defaults conflict with the rest of the configuration", body = ErrorBody),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "needs the ManageSettings permission (admin)", body = ErrorBody),
    ),
    security(("session" = []), ("token" = [])))]
async fn factory_settings(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<SettingsAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let staged = state.settings.factory(&caller.actor()).await?;
    Ok(answer(
        staged,
        "factory defaults staged, not saved: POST /api/v1/settings/apply to save and apply them, /restore to discard",
    ))
}

/// What apply did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplyAnswer {
    /// The settings now saved and in effect.
    pub settings: EditableSettings,
    pub changes: Vec<Change>,
    /// Listeners started, stopped and kept, when listener settings changed.
    pub listeners: Option<ApplyReport>,
    /// The server certificate was reissued for new host names (and is being served).
    pub certificate_reissued: bool,
    /// Always false: everything is applied in the running process.
    pub process_restart_needed: bool,
    pub message: String,
}

/// "OK": save the staged settings to the config file and put them into effect without a
/// process restart. New listeners are bound before old ones are retired; if one cannot be
/// bound, nothing is saved or changed (409 `bind_failed`).
#[utoipa::path(post, path = "/api/v1/settings/apply", tag = "settings",
    responses(
        (status = 200, description = "saved and in effect", body = ApplyAnswer),
        (status = 400, description = "the staged settings are not valid (`unreachable`, `bad_request`); nothing changed", body = ErrorBody),
        (status = 401, description = "not logged in", body = ErrorBody),
        (status = 403, description = "needs the ManageSettings permission (admin)", body = ErrorBody),
        (status = 409, description = "nothing staged (`nothing_pending`) or a listener cannot be bound (`bind_failed`); nothing changed", body = ErrorBody),
        (status = 503, description = "the server is shutting down (`shutting_down`); nothing changed", body = ErrorBody),
    ),
    security(("session" = []), ("token" = [])))]
async fn apply_settings(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<ApplyAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let done = state
        .settings
        .apply(&state.listeners, &*state, &caller.actor())
        .await?;
    let mut message = if done.changes.is_empty() {
        "the staged settings equal the saved ones; nothing to apply".to_owned()
    } else {
        format!(
            "saved and applied {} change(s) without a process restart",
            done.changes.len()
        )
    };
    if done.imported_certificate_in_use {
        message.push_str(
            "; an imported certificate is in use, so the new host names take effect when it is removed or replaced",
        );
    }
    Ok(Json(ApplyAnswer {
        settings: EditableSettings::of(&done.settings),
        changes: done.changes,
        listeners: done.listeners,
        certificate_reissued: done.certificate_reissued,
        process_restart_needed: false,
        message,
    }))
}
