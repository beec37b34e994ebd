//! Runtime settings (C1, D2, D3), with the semantics of the camera's web-server dialog
//! (seed 004): changes are first *staged* (PATCH), "Restore" discards what is staged,
//! "Factory" stages the embedded defaults, and "OK" (apply) saves the staged settings to the
//! config file and puts them into effect without a process restart: listeners are rebound
//! (new sockets first, so a port that cannot be bound changes nothing), the server
//! certificate is reissued for new host names, session and intrusion-detection settings are
//! swapped in the access layer.
//!
//! Only the settings listed in [`EditableSettings`] can be changed here; everything else in
//! `vigil.toml` (data directory, storage, other roles) is kept as it is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{AuditKind, Permission};
use vigil_config::{BlockSetting, Config, Listener, WebhookSettings};

use crate::access_settings::{ids_config, session_config};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::listen::{ApplyReport, ListenError, ListenerPlan};
use crate::routes::audit;
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, patch_settings))
        .routes(routes!(apply_settings))
        .routes(routes!(restore_settings))
        .routes(routes!(factory_settings))
}

/// Staging, restoring and applying are serialized so an apply never races a PATCH (the
/// std mutexes in the state cannot be held across the awaits of an apply).
static SETTINGS_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- the editable settings --------------------------------------------------------------

/// The settings this API edits. Durations are written like "15m", "12h", "30d".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditableSettings {
    pub management: ManagementView,
    pub access: AccessView,
    pub retention: RetentionView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagementView {
    /// HTTPS listeners, e.g. a LAN port and an Internet port. Changing them rebinds sockets
    /// (no process restart).
    pub https: Vec<ListenerView>,
    /// Plaintext HTTP listeners: empty (off) unless enabled. HTTP only redirects to HTTPS;
    /// login, sessions, users, settings and video answer 403 over HTTP.
    pub http: Vec<ListenerView>,
    /// Host names and addresses in the server certificate; a change reissues it.
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerView {
    /// `address:port`, e.g. "0.0.0.0:8443" or "[::]:443".
    pub bind: String,
    /// Free text, e.g. "LAN" or "Internet".
    #[serde(default)]
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessView {
    /// A session unused this long ends (at least "1m"; default "15m").
    pub session_idle_timeout: String,
    /// A session ends this long after login, however active (default "12h").
    pub session_absolute_lifetime: String,
    pub ids: IdsView,
    /// Where intrusion alerts are POSTed; `null` for none.
    #[serde(default)]
    pub webhook: Option<WebhookView>,
}

/// Intrusion detection (the camera's semantics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdsView {
    /// Failed logins from one address that raise an alert and block it (at least 5).
    pub notification_threshold: u32,
    /// Attempts closer together than this are aggregated into one access-log entry.
    pub timeout: String,
    /// Minimum time between two alerts for one address; "0s" alerts on every attempt.
    pub deadtime: String,
    /// "until_restart", "off" (alert only) or a duration such as "30m".
    pub block: String,
    /// Addresses or CIDR ranges never blocked (still counted and alerted).
    pub allow_list: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookView {
    /// `https://...` (no credentials in the URL; put the key in `secret_file`).
    pub url: String,
    /// Absolute path of extra CA certificate(s) in PEM trusted for the receiver.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Absolute path of the file holding the HMAC key for `X-Vigil-Signature`.
    #[serde(default)]
    pub secret_file: Option<String>,
    /// Allows an `http://` receiver (off: alerts name users and addresses).
    #[serde(default)]
    pub allow_plaintext_http: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionView {
    /// Video older than this is deleted; `null` keeps video until space runs out.
    #[serde(default)]
    pub max_age: Option<String>,
    /// Per-camera byte budget; `null` for none.
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

fn dur(d: Duration) -> String {
    vigil_config::format_duration(d)
}

fn listener_views(ls: &[Listener]) -> Vec<ListenerView> {
    ls.iter()
        .map(|l| ListenerView {
            bind: l.bind.to_string(),
            label: l.label.clone(),
        })
        .collect()
}

impl EditableSettings {
    /// The editable part of a configuration.
    pub fn of(cfg: &Config) -> Self {
        let a = &cfg.access;
        EditableSettings {
            management: ManagementView {
                https: listener_views(&cfg.management.https),
                http: listener_views(&cfg.management.http),
                hostnames: cfg.management.hostnames.clone(),
            },
            access: AccessView {
                session_idle_timeout: dur(a.session_idle_timeout),
                session_absolute_lifetime: dur(a.session_absolute_lifetime),
                ids: IdsView {
                    notification_threshold: a.ids.notification_threshold,
                    timeout: dur(a.ids.timeout),
                    deadtime: dur(a.ids.deadtime),
                    block: a.ids.block.to_string(),
                    allow_list: a.ids.allow_list.clone(),
                },
                webhook: a.webhook.as_ref().map(|w| WebhookView {
                    url: w.url.clone(),
                    ca_file: w.ca_file.as_ref().map(|p| p.display().to_string()),
                    secret_file: w.secret_file.as_ref().map(|p| p.display().to_string()),
                    allow_plaintext_http: w.allow_plaintext_http,
                }),
            },
            retention: RetentionView {
                max_age: cfg.retention.max_age.map(dur),
                max_bytes: cfg.retention.max_bytes,
            },
        }
    }

    /// `base` with these settings in place of its editable ones. Errors name the setting.
    pub fn merge_into(&self, base: &Config) -> Result<Config, String> {
        let mut cfg = base.clone();
        let m = &self.management;
        cfg.management.https = parse_listeners("management.https", &m.https)?;
        cfg.management.http = parse_listeners("management.http", &m.http)?;
        cfg.management.hostnames = m.hostnames.iter().map(|h| h.trim().to_owned()).collect();
        let a = &self.access;
        cfg.access.session_idle_timeout =
            parse_dur("access.session_idle_timeout", &a.session_idle_timeout)?;
        cfg.access.session_absolute_lifetime = parse_dur(
            "access.session_absolute_lifetime",
            &a.session_absolute_lifetime,
        )?;
        cfg.access.ids.notification_threshold = a.ids.notification_threshold;
        cfg.access.ids.timeout = parse_dur("access.ids.timeout", &a.ids.timeout)?;
        cfg.access.ids.deadtime = parse_dur("access.ids.deadtime", &a.ids.deadtime)?;
        cfg.access.ids.block = a.ids.block.parse::<BlockSetting>()?;
        cfg.access.ids.allow_list = a.ids.allow_list.iter().map(|s| s.trim().into()).collect();
        cfg.access.webhook = a.webhook.as_ref().map(|w| WebhookSettings {
            url: w.url.trim().to_owned(),
            ca_file: w.ca_file.as_ref().map(PathBuf::from),
            secret_file: w.secret_file.as_ref().map(PathBuf::from),
            allow_plaintext_http: w.allow_plaintext_http,
        });
        cfg.retention.max_age = self
            .retention
            .max_age
            .as_deref()
            .map(|s| parse_dur("retention.max_age", s))
            .transpose()?;
        cfg.retention.max_bytes = self.retention.max_bytes;
        Ok(cfg)
    }
}

fn parse_dur(setting: &str, text: &str) -> Result<Duration, String> {
    vigil_config::parse_duration(text).map_err(|e| format!("{setting}: {e}"))
}

fn parse_listeners(setting: &str, ls: &[ListenerView]) -> Result<Vec<Listener>, String> {
    ls.iter()
        .enumerate()
        .map(|(i, l)| {
            let bind: SocketAddr = l.bind.trim().parse().map_err(|_| {
                format!(
                    "{setting}[{i}].bind = {:?} is not an address:port; write e.g. \"0.0.0.0:8443\" or \"[::]:8443\"",
                    l.bind
                )
            })?;
            if l.label.chars().count() > 64 || l.label.chars().any(char::is_control) {
                return Err(format!(
                    "{setting}[{i}].label must be at most 64 characters without control characters"
                ));
            }
            Ok(Listener {
                bind,
                label: l.label.clone(),
            })
        })
        .collect()
}

// ---- what a change does -----------------------------------------------------------------

/// What putting a setting into effect involves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Sockets are bound and retired (no process restart).
    Listeners,
    /// The server certificate is reissued.
    Certificate,
    /// Swapped in place.
    Live,
}

/// Every editable setting with its JSON-pointer-like path and effect.
const SETTINGS: &[(&str, Effect)] = &[
    ("management.https", Effect::Listeners),
    ("management.http", Effect::Listeners),
    ("management.hostnames", Effect::Certificate),
    ("access.session_idle_timeout", Effect::Live),
    ("access.session_absolute_lifetime", Effect::Live),
    ("access.ids.notification_threshold", Effect::Live),
    ("access.ids.timeout", Effect::Live),
    ("access.ids.deadtime", Effect::Live),
    ("access.ids.block", Effect::Live),
    ("access.ids.allow_list", Effect::Live),
    ("access.webhook", Effect::Live),
    ("retention.max_age", Effect::Live),
    ("retention.max_bytes", Effect::Live),
];

/// One setting that differs between the saved and the staged settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Change {
    /// e.g. "management.https" or "access.ids.block".
    pub setting: String,
    pub before: Value,
    pub after: Value,
    /// Applying it binds or retires listeners (done live, without a process restart).
    pub listeners_restart: bool,
    /// Applying it reissues the server certificate.
    pub certificate_reissue: bool,
}

fn pick<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, k| v.get(k).unwrap_or(&Value::Null))
}

fn changes(saved: &Config, staged: &Config) -> Vec<Change> {
    let before = serde_json::to_value(EditableSettings::of(saved)).unwrap_or_default();
    let after = serde_json::to_value(EditableSettings::of(staged)).unwrap_or_default();
    SETTINGS
        .iter()
        .filter(|(path, _)| pick(&before, path) != pick(&after, path))
        .map(|(path, effect)| Change {
            setting: (*path).to_owned(),
            before: pick(&before, path).clone(),
            after: pick(&after, path).clone(),
            listeners_restart: *effect == Effect::Listeners,
            certificate_reissue: *effect == Effect::Certificate,
        })
        .collect()
}

/// The changes for the audit log: webhook URLs often carry a secret in their path, so only
/// their origin is recorded.
fn audit_summary(changes: &[Change]) -> Value {
    fn redact(v: &Value) -> Value {
        match v {
            Value::Object(o) => {
                let mut o = o.clone();
                if let Some(Value::String(url)) = o.get("url") {
                    o.insert("url".into(), Value::String(url_origin(url)));
                }
                Value::Object(o)
            }
            other => other.clone(),
        }
    }
    Value::Array(
        changes
            .iter()
            .map(|c| {
                let (before, after) = if c.setting == "access.webhook" {
                    (redact(&c.before), redact(&c.after))
                } else {
                    (c.before.clone(), c.after.clone())
                };
                json!({ "setting": c.setting, "before": before, "after": after })
            })
            .collect(),
    )
}

/// `scheme://authority/…` of a URL, without path, query or user info.
fn url_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/…")
}

// ---- validation -------------------------------------------------------------------------

fn unreachable_error() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "unreachable",
        "this change would leave the server without any listener, so nobody could reach it; \
         keep at least one HTTPS listener in management.https (or an HTTP one)",
    )
}

/// `e` with `note` (what was left alone) appended to its message.
fn noting(mut e: ApiError, note: &str) -> ApiError {
    e.message = format!("{}; {note}", e.message);
    e
}

/// Checks a candidate configuration: the config file's own rules plus what only the server
/// knows (host names usable in a certificate, allow-list syntax, webhook URL).
fn validate_candidate(cfg: &Config) -> ApiResult<()> {
    let m = &cfg.management;
    if m.enabled && m.https.is_empty() && m.http.is_empty() {
        return Err(unreachable_error());
    }
    cfg.validate().map_err(ApiError::bad_request)?;
    if m.hostnames.is_empty() {
        return Err(ApiError::bad_request(
            "management.hostnames is empty; the server certificate needs at least one host name or address",
        ));
    }
    for h in &m.hostnames {
        check_hostname(h)
            .map_err(|e| ApiError::bad_request(format!("management.hostnames: {e}")))?;
    }
    if let Some(w) = &cfg.access.webhook {
        check_webhook(w).map_err(|e| ApiError::bad_request(format!("access.webhook: {e}")))?;
    }
    session_config(cfg).validate().map_err(ApiError::from)?;
    ids_config(cfg)
        .map_err(|e| e.to_string())
        .and_then(|ids| ids.validate().map_err(|e| e.to_string()))
        .map_err(ApiError::bad_request)?;
    Ok(())
}

/// A host name (optionally with a leading `*.` wildcard) or an IP address.
fn check_hostname(name: &str) -> Result<(), String> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let bad = |why: &str| Err(format!("{name:?} is not a usable host name: {why}"));
    if name.is_empty() || name.len() > 253 {
        return bad("use 1 to 253 characters");
    }
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if i == 0 && *label == "*" && labels.len() > 2 {
            continue;
        }
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated part needs 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return bad("use letters, digits and inner hyphens only");
        }
    }
    Ok(())
}

fn check_webhook(w: &WebhookSettings) -> Result<(), String> {
    // The URL rules (https only unless allowed, no credentials, a real host) are the sink's
    // own; the files are read only when the settings are applied.
    let mut probe = vigil_access::WebhookConfig::new(w.url.trim().to_owned());
    probe.allow_plaintext_http = w.allow_plaintext_http;
    probe.validate().map_err(|e| e.to_string())?;
    for (name, p) in [("ca_file", &w.ca_file), ("secret_file", &w.secret_file)] {
        if let Some(p) = p
            && !p.is_absolute()
        {
            return Err(format!(
                "{name} must be an absolute path (the server does not depend on its working directory)"
            ));
        }
    }
    Ok(())
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes, anything else
/// replaces (arrays are replaced whole).
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// `base` with `patch` merged into its editable settings, validated.
fn staged_from_patch(base: &Config, patch: &Value) -> ApiResult<Config> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a JSON object with the settings to change, e.g. {\"access\": {\"session_idle_timeout\": \"30m\"}}",
        ));
    }
    let mut view = serde_json::to_value(EditableSettings::of(base)).map_err(ApiError::internal)?;
    merge_patch(&mut view, patch);
    let view: EditableSettings = serde_path_to_error::deserialize(view).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        let hint = if inner.starts_with("missing field") {
            " (null removes only optional settings: access.webhook and its files, \
             retention.max_age, retention.max_bytes; give this one a value)"
        } else if inner.starts_with("unknown field") {
            " (GET /api/v1/settings shows the editable settings; the rest of vigil.toml is \
             changed in the file)"
        } else {
            ""
        };
        ApiError::bad_request(format!("setting `{path}`: {inner}{hint}"))
    })?;
    let cfg = view.merge_into(base).map_err(ApiError::bad_request)?;
    validate_candidate(&cfg)?;
    Ok(cfg)
}

// ---- persistence ------------------------------------------------------------------------

/// Writes `cfg` to `path` atomically (temp file with mode 0600, fsync, rename, fsync of the
/// directory). The text is parsed back first, so a configuration the file format cannot
/// express is refused instead of being saved differently.
fn persist(path: &Path, cfg: &Config) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = cfg.to_commented_toml();
    let back = Config::parse(&text, path).map_err(|e| e.to_string())?;
    if &back != cfg {
        return Err("the settings do not survive a round trip through the config file".into());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.unwrap_or_else(|| "vigil.toml".into()),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("writing {}: {e}", path.display())
    })
}

// ---- handlers ---------------------------------------------------------------------------

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

fn answer(saved: &Config, pending: Option<&Config>, message: String) -> SettingsAnswer {
    let changes = pending.map(|p| changes(saved, p)).unwrap_or_default();
    SettingsAnswer {
        saved: EditableSettings::of(saved),
        pending: pending.map(EditableSettings::of),
        listeners_restart: changes.iter().any(|c| c.listeners_restart),
        certificate_reissue: changes.iter().any(|c| c.certificate_reissue),
        changes,
        message,
    }
}

fn saved_config(state: &SharedState) -> Config {
    state
        .config
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

fn pending_config(state: &SharedState) -> Option<Config> {
    state
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

fn set_pending(state: &SharedState, cfg: Option<Config>) {
    *state.pending.lock().unwrap_or_else(|e| e.into_inner()) = cfg;
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
) -> ApiResult<crate::json::Json<SettingsAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let saved = saved_config(&state);
    let pending = pending_config(&state);
    let message = match &pending {
        Some(_) => "staged settings are not saved yet: POST /api/v1/settings/apply to save and apply them, /restore to discard them".into(),
        None => "no staged changes".into(),
    };
    Ok(crate::json::Json(answer(&saved, pending.as_ref(), message)))
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
) -> ApiResult<crate::json::Json<SettingsAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let _serial = SETTINGS_LOCK.lock().await;
    let saved = saved_config(&state);
    let base = pending_config(&state).unwrap_or_else(|| saved.clone());
    let staged = staged_from_patch(&base, &patch).map_err(|e| noting(e, "nothing was staged"))?;
    let step = changes(&base, &staged);
    audit(
        &state,
        &caller,
        AuditKind::ConfigChanged,
        json!({ "action": "stage", "changes": audit_summary(&step) }),
    )
    .await?;
    let ans = answer(
        &saved,
        Some(&staged),
        "staged, not saved: POST /api/v1/settings/apply to save and apply (no process restart needed), /restore to discard".into(),
    );
    set_pending(&state, Some(staged));
    Ok(crate::json::Json(ans))
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
) -> ApiResult<crate::json::Json<SettingsAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let _serial = SETTINGS_LOCK.lock().await;
    let saved = saved_config(&state);
    let discarded = pending_config(&state)
        .map(|p| changes(&saved, &p))
        .unwrap_or_default();
    audit(
        &state,
        &caller,
        AuditKind::ConfigChanged,
        json!({ "action": "restore", "discarded": audit_summary(&discarded) }),
    )
    .await?;
    set_pending(&state, None);
    let message = if discarded.is_empty() {
        "nothing was staged; the saved settings stay in effect".into()
    } else {
        format!(
            "discarded {} staged change(s); the saved settings stay in effect",
            discarded.len()
        )
    };
    Ok(crate::json::Json(answer(&saved, None, message)))
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
) -> ApiResult<crate::json::Json<SettingsAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let _serial = SETTINGS_LOCK.lock().await;
    let saved = saved_config(&state);
    let defaults = Config::with_data_dir(&saved.data_dir);
    let staged = EditableSettings::of(&defaults)
        .merge_into(&saved)
        .map_err(ApiError::internal)?;
    validate_candidate(&staged).map_err(|e| noting(e, "nothing was staged"))?;
    let step = changes(&saved, &staged);
    audit(
        &state,
        &caller,
        AuditKind::ConfigChanged,
        json!({ "action": "factory", "changes": audit_summary(&step) }),
    )
    .await?;
    let ans = answer(
        &saved,
        Some(&staged),
        "factory defaults staged, not saved: POST /api/v1/settings/apply to save and apply them, /restore to discard".into(),
    );
    set_pending(&state, Some(staged));
    Ok(crate::json::Json(ans))
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
) -> ApiResult<crate::json::Json<ApplyAnswer>> {
    caller.require(Permission::ManageSettings, None)?;
    let _serial = SETTINGS_LOCK.lock().await;
    let saved = saved_config(&state);
    let Some(pending) = pending_config(&state) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "nothing_pending",
            "no settings are staged; change them with PATCH /api/v1/settings first",
        ));
    };
    let changes = changes(&saved, &pending);
    if changes.is_empty() {
        set_pending(&state, None);
        return Ok(crate::json::Json(ApplyAnswer {
            settings: EditableSettings::of(&saved),
            changes,
            listeners: None,
            certificate_reissued: false,
            process_restart_needed: false,
            message: "the staged settings equal the saved ones; nothing to apply".into(),
        }));
    }
    validate_candidate(&pending).map_err(|e| noting(e, "nothing was changed"))?;
    let session = session_config(&pending);
    let ids = ids_config(&pending).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Built before anything changes: a webhook whose files cannot be read refuses the apply.
    let new_sink = if pending.access.webhook != saved.access.webhook {
        Some(
            crate::access_settings::alert_sink(&pending)
                .map_err(|e| noting(ApiError::bad_request(e.to_string()), "nothing was changed"))?,
        )
    } else {
        None
    };

    // 1. Listeners: bind every new socket first; a failure changes nothing.
    let old_plan = ListenerPlan::from_config(&saved);
    let new_plan = ListenerPlan::from_config(&pending);
    let listeners = if old_plan != new_plan {
        match state.listeners.apply(&new_plan).await {
            Ok(report) => Some(report),
            Err(e @ ListenError::Bind { .. }) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "bind_failed",
                    e.to_string(),
                ));
            }
            Err(ListenError::Unreachable) => {
                return Err(noting(unreachable_error(), "nothing was changed"));
            }
            Err(e @ ListenError::ShutDown) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    e.to_string(),
                ));
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
    } else {
        None
    };
    let rollback_listeners = |state: SharedState| async move {
        if old_plan != new_plan
            && let Err(e) = state.listeners.apply(&old_plan).await
        {
            tracing::error!(error = %e, "could not restore the previous listeners");
        }
    };

    // 2. Host names: reissue the server certificate and serve it to new handshakes.
    let mut certificate_reissued = false;
    let mut imported_in_use = false;
    if saved.management.hostnames != pending.management.hostnames {
        match reissue(&state, pending.management.hostnames.clone()).await {
            Ok(Some(())) => certificate_reissued = true,
            Ok(None) => imported_in_use = true,
            Err(e) => {
                rollback_listeners(state.clone()).await;
                return Err(e);
            }
        }
    }

    // 3. Save.
    let path = state.config_path.clone();
    let to_save = pending.clone();
    let saved_ok = tokio::task::spawn_blocking(move || persist(&path, &to_save))
        .await
        .map_err(ApiError::internal)?;
    if let Err(e) = saved_ok {
        rollback_listeners(state.clone()).await;
        if (certificate_reissued || imported_in_use)
            && let Err(e) = reissue(&state, saved.management.hostnames.clone()).await
        {
            tracing::error!(error = %e.message, "could not restore the previous certificate names");
        }
        return Err(ApiError::internal(e));
    }

    // 4. Sessions and intrusion detection (validated above, so these cannot refuse).
    state
        .access
        .set_session_config(session)
        .map_err(ApiError::internal)?;
    let access = state.access.clone();
    tokio::task::spawn_blocking(move || access.set_ids_config(ids))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;

    if let Some((sink, _)) = new_sink {
        state.access.set_alert_sink(sink);
    }

    // 5. The rest (retention) is read from the settings in effect.
    *state.config.write().unwrap_or_else(|e| e.into_inner()) = pending.clone();
    set_pending(&state, None);

    audit(
        &state,
        &caller,
        AuditKind::ConfigChanged,
        json!({
            "action": "apply",
            "changes": audit_summary(&changes),
            "listeners": listeners,
            "certificate_reissued": certificate_reissued,
        }),
    )
    .await?;
    let mut message = format!(
        "saved and applied {} change(s) without a process restart",
        changes.len()
    );
    if imported_in_use {
        message.push_str(
            "; an imported certificate is in use, so the new host names take effect when it is removed or replaced",
        );
    }
    Ok(crate::json::Json(ApplyAnswer {
        settings: EditableSettings::of(&pending),
        changes,
        listeners,
        certificate_reissued,
        process_restart_needed: false,
        message,
    }))
}

/// Sets the certificate's host names and rotates the live certificate. `Ok(None)` when an
/// imported certificate is served (it keeps being served; the generated one was reissued).
async fn reissue(state: &SharedState, hostnames: Vec<String>) -> ApiResult<Option<()>> {
    let pki = state.pki.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut pki = pki.lock().unwrap_or_else(|e| e.into_inner());
        pki.set_hostnames(&hostnames, vigil_pki::time::OffsetDateTime::now_utc())
    })
    .await
    .map_err(ApiError::internal)?;
    match result {
        Ok(Some(ck)) => {
            state
                .tls
                .rotate(ck, vigil_pki::SessionPolicy::Keep)
                .map_err(ApiError::internal)?;
            Ok(Some(()))
        }
        Ok(None) => Ok(None),
        Err(e @ vigil_pki::PkiError::BadName { .. })
        | Err(e @ vigil_pki::PkiError::BadOption(_)) => Err(ApiError::bad_request(format!(
            "management.hostnames: {e}; nothing was changed"
        ))),
        Err(e) => Err(ApiError::internal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "arr": [1, 2]});
        merge_patch(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "arr": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "arr": [3], "n": {"x": 1}})
        );
    }

    #[test]
    fn editable_settings_round_trip_through_config() {
        let mut cfg = Config::with_data_dir("/var/lib/vigil");
        cfg.access.ids.block = BlockSetting::For(Duration::from_secs(1800));
        cfg.retention.max_age = Some(Duration::from_secs(30 * 86400));
        cfg.access.webhook = Some(WebhookSettings {
            url: "https://alerts.example.net/hook".into(),
            secret_file: Some("/etc/vigil/k".into()),
            ca_file: None,
            allow_plaintext_http: false,
        });
        let back = EditableSettings::of(&cfg).merge_into(&cfg).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(EditableSettings::of(&cfg).access.ids.block, "30m");
        assert_eq!(
            EditableSettings::of(&cfg).access.session_idle_timeout,
            "15m"
        );
    }

    #[test]
    fn host_names_are_checked() {
        for ok in [
            "localhost",
            "cam.example.net",
            "*.example.net",
            "10.0.0.5",
            "::1",
            "[::1]",
        ] {
            assert!(check_hostname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "-x.example",
            "x..y",
            "*.net",
            "ex_ample.com",
            &"a".repeat(64),
        ] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn webhook_urls_are_checked() {
        let w = |url: &str, plain: bool| WebhookSettings {
            url: url.into(),
            allow_plaintext_http: plain,
            ..Default::default()
        };
        assert!(check_webhook(&w("https://alerts.example.net/x", false)).is_ok());
        assert!(check_webhook(&w("http://10.0.0.1/x", true)).is_ok());
        for bad in [
            w("http://10.0.0.1/x", false),
            w("ftp://x", false),
            w("https://user:pw@x/", false),
            w("https:///x", false),
            w("https://x/a b", false),
        ] {
            let e = check_webhook(&bad).unwrap_err();
            assert!(e.contains("https://"), "{}: {e}", bad.url);
            assert!(!e.contains(":pw@"), "credentials echoed: {e}");
        }
        let mut rel = w("https://x/", false);
        rel.secret_file = Some("key".into());
        assert!(check_webhook(&rel).unwrap_err().contains("absolute"));
    }

    #[test]
    fn audit_summary_keeps_only_the_webhook_origin() {
        let c = Change {
            setting: "access.webhook".into(),
            before: Value::Null,
            after: json!({"url": "https://hooks.example.net/services/T0/B0/SECRET?x=1"}),
            listeners_restart: false,
            certificate_reissue: false,
        };
        let s = audit_summary(&[c]).to_string();
        assert!(!s.contains("SECRET"), "{s}");
        assert!(s.contains("https://hooks.example.net/"), "{s}");
    }
}
