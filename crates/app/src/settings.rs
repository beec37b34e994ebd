//! Runtime settings: viewing, staging, restoring, factory defaults and applying the editable
//! part of `vigil.toml` without a process restart, the one implementation behind the API's
//! settings routes.
//!
//! The semantics are those of a camera's web-server dialog: changes are first *staged*,
//! "restore" discards what is staged, "factory" stages the embedded defaults, and "apply"
//! saves the staged settings to the config file and puts them into effect: listeners are
//! rebound (new sockets first, so a port that cannot be bound changes nothing), the server
//! certificate is reissued for new host names, session and intrusion-detection settings are
//! swapped in the access layer, and retention reads the settings in effect.
//!
//! Sockets and the certificate served on them belong to the front end that serves requests,
//! so [`Settings::apply`] reaches them through two ports, [`ListenerControl`] and
//! [`CertificateRotation`] (docs/design/application-layer.md); the access layer and its audit
//! log are domain code and called directly.
//!
//! Only the settings listed in [`EditableSettings`] can be changed here; everything else in
//! `vigil.toml` (data directory, storage, other roles) is kept as it is.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use vigil_access::{Access, AccessError, Actor, AuditKind, AuditRecord};
use vigil_config::{BlockSetting, Config, Listener, WebhookSettings};

use crate::ErrorKind;
use crate::access_settings::{alert_sink, ids_config, session_config};

// ---- the editable settings --------------------------------------------------------------

/// The settings this API edits. Durations are written like "15m", "12h", "30d".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EditableSettings {
    pub management: ManagementView,
    pub access: AccessView,
    pub retention: RetentionView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListenerView {
    /// `address:port`, e.g. "0.0.0.0:8443" or "[::]:443".
    pub bind: String,
    /// Free text, e.g. "LAN" or "Internet".
    #[serde(default)]
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// The editable settings that differ between `saved` and `staged`, in a fixed order.
pub fn changes(saved: &Config, staged: &Config) -> Vec<Change> {
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
pub fn audit_summary(changes: &[Change]) -> Value {
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

// ---- errors -----------------------------------------------------------------------------

/// Why a settings use case refused or failed. Refusals leave the saved, staged and running
/// settings as they were; their messages say so.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value the settings cannot take; the message names the setting.
    #[error("{0}")]
    Invalid(String),
    /// The settings would leave the server without a listener.
    #[error("{0}")]
    Unreachable(String),
    /// A setting the editable settings do not have: `setting` is its path in the patch,
    /// `detail` what the parser said; `note` (what was left alone) as for `Invalid`.
    #[error("setting `{setting}`: {detail}{}", note.map(|n| format!("; {n}")).unwrap_or_default())]
    UnknownSetting {
        setting: String,
        detail: String,
        note: Option<&'static str>,
    },
    /// Apply without staged settings.
    #[error("no settings are staged")]
    NothingPending,
    /// A new listener's socket cannot be bound (the port is in use, the address is not
    /// local); nothing was changed.
    #[error("{0}")]
    BindFailed(String),
    /// The server is stopping; listeners can no longer be changed.
    #[error("{0}")]
    ShuttingDown(String),
    #[error("listeners: {0}")]
    Listeners(String),
    #[error("server certificate: {0}")]
    Certificate(String),
    #[error("saving the settings: {0}")]
    Save(String),
    #[error("access layer: {0}")]
    Access(#[from] AccessError),
    #[error("{0}")]
    Internal(String),
}

impl SettingsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SettingsError::Invalid(_)
            | SettingsError::UnknownSetting { .. }
            | SettingsError::Unreachable(_) => ErrorKind::InvalidInput,
            SettingsError::NothingPending | SettingsError::BindFailed(_) => ErrorKind::Conflict,
            SettingsError::ShuttingDown(_) => ErrorKind::Unavailable,
            SettingsError::Listeners(_)
            | SettingsError::Certificate(_)
            | SettingsError::Save(_)
            | SettingsError::Access(_)
            | SettingsError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A stable name for machines (the API's error code, documented in docs/api.md).
    pub fn code(&self) -> &'static str {
        match self {
            SettingsError::Invalid(_) | SettingsError::UnknownSetting { .. } => "bad_request",
            SettingsError::Unreachable(_) => "unreachable",
            SettingsError::NothingPending => "nothing_pending",
            SettingsError::BindFailed(_) => "bind_failed",
            SettingsError::ShuttingDown(_) => "shutting_down",
            SettingsError::Listeners(_)
            | SettingsError::Certificate(_)
            | SettingsError::Save(_)
            | SettingsError::Access(_)
            | SettingsError::Internal(_) => "internal",
        }
    }

    /// A refusal with `note` (what was left alone) appended to its message; faults keep
    /// theirs, since their message is for the log.
    fn noting(self, note: &'static str) -> Self {
        match self {
            SettingsError::Invalid(m) => SettingsError::Invalid(format!("{m}; {note}")),
            SettingsError::UnknownSetting {
                setting, detail, ..
            } => SettingsError::UnknownSetting {
                setting,
                detail,
                note: Some(note),
            },
            SettingsError::Unreachable(m) => SettingsError::Unreachable(format!("{m}; {note}")),
            other => other,
        }
    }

    fn unreachable() -> Self {
        SettingsError::Unreachable(
            "this change would leave the server without any listener, so nobody could reach it; \
             keep at least one HTTPS listener in management.https (or an HTTP one)"
                .into(),
        )
    }
}

impl crate::error::Classified for SettingsError {
    fn kind(&self) -> ErrorKind {
        SettingsError::kind(self)
    }
    fn code(&self) -> &'static str {
        SettingsError::code(self)
    }

    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        match self {
            SettingsError::Access(e) => Some(e),
            _ => None,
        }
    }
}

const NOT_STAGED: &str = "nothing was staged";
const NOT_CHANGED: &str = "nothing was changed";

// ---- validation -------------------------------------------------------------------------

/// Checks a candidate configuration: the config file's own rules plus what only the server
/// knows (host names usable in a certificate, allow-list syntax, webhook URL).
pub fn validate(cfg: &Config) -> Result<(), SettingsError> {
    let invalid = SettingsError::Invalid;
    let m = &cfg.management;
    if m.enabled && m.https.is_empty() && m.http.is_empty() {
        return Err(SettingsError::unreachable());
    }
    cfg.validate().map_err(invalid)?;
    if m.hostnames.is_empty() {
        return Err(invalid(
            "management.hostnames is empty; the server certificate needs at least one host name or address".into(),
        ));
    }
    for h in &m.hostnames {
        check_hostname(h).map_err(|e| invalid(format!("management.hostnames: {e}")))?;
    }
    if let Some(w) = &cfg.access.webhook {
        check_webhook(w).map_err(|e| invalid(format!("access.webhook: {e}")))?;
    }
    session_config(cfg)
        .validate()
        .map_err(|e| invalid(e.to_string()))?;
    ids_config(cfg)
        .map_err(|e| e.to_string())
        .and_then(|ids| ids.validate().map_err(|e| e.to_string()))
        .map_err(invalid)?;
    Ok(())
}

/// A host name (optionally with a leading `*.` wildcard) or an IP address.
pub(crate) fn check_hostname(name: &str) -> Result<(), String> {
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
pub fn merge_patch(target: &mut Value, patch: &Value) {
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

/// `base` with `patch` (a JSON merge patch of [`EditableSettings`]) merged into its editable
/// settings, validated.
pub fn staged_from_patch(base: &Config, patch: &Value) -> Result<Config, SettingsError> {
    if !patch.is_object() {
        return Err(SettingsError::Invalid(
            "the body must be a JSON object with the settings to change, e.g. {\"access\": {\"session_idle_timeout\": \"30m\"}}".into(),
        ));
    }
    let mut view = serde_json::to_value(EditableSettings::of(base))
        .map_err(|e| SettingsError::Internal(e.to_string()))?;
    merge_patch(&mut view, patch);
    let view: EditableSettings = serde_path_to_error::deserialize(view).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        if inner.starts_with("unknown field") {
            return SettingsError::UnknownSetting {
                setting: path,
                detail: inner,
                note: None,
            };
        }
        let hint = if inner.starts_with("missing field") {
            " (null removes only optional settings: access.webhook and its files, \
             retention.max_age, retention.max_bytes; give this one a value)"
        } else {
            ""
        };
        SettingsError::Invalid(format!("setting `{path}`: {inner}{hint}"))
    })?;
    let cfg = view.merge_into(base).map_err(SettingsError::Invalid)?;
    validate(&cfg)?;
    Ok(cfg)
}

// ---- persistence ------------------------------------------------------------------------

/// Writes `cfg` to `path` atomically (temp file with mode 0600, fsync, rename, fsync of the
/// directory). The text is parsed back first, so a configuration the file format cannot
/// express is refused instead of being saved differently.
pub fn persist(path: &Path, cfg: &Config) -> Result<(), String> {
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

// ---- the ports apply puts settings into effect through ----------------------------------

/// Why the running listeners could not be changed to a plan.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// A new socket could not be bound; the running listeners are unchanged. The message
    /// names the address.
    #[error("{0}")]
    BindFailed(String),
    /// The plan has no listener at all.
    #[error("the plan has no listener")]
    Unreachable,
    /// The server is shutting down.
    #[error("{0}")]
    ShutDown(String),
    #[error("{0}")]
    Other(String),
}

/// The management role's running listeners, as the front end that serves them sees them.
pub trait ListenerControl: Send + Sync {
    /// The sockets a configuration asks for.
    type Plan: PartialEq + Send + Sync;
    /// What changing them did (started, stopped, kept); recorded in the audit log.
    type Report: Serialize + Send;

    fn plan(&self, cfg: &Config) -> Self::Plan;

    /// Makes the running listeners match `plan`, binding every new socket before retiring
    /// an old one, so that a failure leaves them as they were.
    fn apply(
        &self,
        plan: &Self::Plan,
    ) -> impl Future<Output = Result<Self::Report, ListenerError>> + Send;
}

/// What reissuing the server certificate for new host names did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// A certificate for the names was issued and is served to new handshakes.
    Reissued,
    /// An imported certificate is served and stays; the names take effect when it is
    /// removed or replaced.
    ImportedInUse,
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A name a certificate cannot carry; nothing was changed.
    #[error("{0}")]
    BadName(String),
    #[error("{0}")]
    Other(String),
}

/// The server certificate and the TLS configuration that serves it.
pub trait CertificateRotation: Send + Sync {
    /// Sets the certificate's host names and serves a certificate for them.
    fn reissue(
        &self,
        hostnames: Vec<String>,
    ) -> impl Future<Output = Result<Rotation, CertificateError>> + Send;
}

// ---- the use cases ----------------------------------------------------------------------

/// The saved settings, the staged ones (if any) and how they differ.
#[derive(Debug, Clone)]
pub struct Staging {
    /// In effect, and saved in the config file.
    pub saved: Config,
    /// Staged, not saved.
    pub pending: Option<Config>,
    pub changes: Vec<Change>,
}

impl Staging {
    fn new(saved: Config, pending: Option<Config>) -> Self {
        let changes = pending
            .as_ref()
            .map(|p| changes(&saved, p))
            .unwrap_or_default();
        Staging {
            saved,
            pending,
            changes,
        }
    }

    /// Applying the staged settings rebinds listeners.
    pub fn listeners_restart(&self) -> bool {
        self.changes.iter().any(|c| c.listeners_restart)
    }

    /// Applying the staged settings reissues the server certificate.
    pub fn certificate_reissue(&self) -> bool {
        self.changes.iter().any(|c| c.certificate_reissue)
    }
}

/// What restore discarded.
#[derive(Debug, Clone)]
pub struct Restored {
    /// Still in effect.
    pub saved: Config,
    pub discarded: Vec<Change>,
}

/// What apply did. With no changes (the staged settings equal the saved ones) nothing was
/// saved or changed and the staged settings were dropped.
#[derive(Debug)]
pub struct Applied<R> {
    /// Now saved and in effect.
    pub settings: Config,
    pub changes: Vec<Change>,
    /// The listener port's report, when listener settings changed.
    pub listeners: Option<R>,
    /// A certificate for the new host names is served.
    pub certificate_reissued: bool,
    /// An imported certificate is served; the new host names wait for its removal.
    pub imported_certificate_in_use: bool,
}

/// The runtime settings of one server: in effect, staged, and the file they are saved to.
/// Staging, restoring and applying are serialized so an apply never races a stage.
pub struct Settings {
    path: PathBuf,
    in_effect: Arc<RwLock<Config>>,
    pending: Arc<Mutex<Option<Config>>>,
    // Held across the awaits of an apply, which the std locks above cannot be.
    serial: tokio::sync::Mutex<()>,
    access: Arc<Access>,
}

impl Settings {
    /// `config` is in effect and saved at `path`; nothing is staged.
    pub fn new(path: PathBuf, config: Config, access: Arc<Access>) -> Self {
        Settings {
            path,
            in_effect: Arc::new(RwLock::new(config)),
            pending: Arc::new(Mutex::new(None)),
            serial: tokio::sync::Mutex::const_new(()),
            access,
        }
    }

    /// The file the settings are saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in effect, shared: readers (retention, the data directory) see
    /// each apply.
    pub fn in_effect_handle(&self) -> Arc<RwLock<Config>> {
        self.in_effect.clone()
    }

    /// The staged configuration, shared (read-only use: staging goes through this type).
    pub fn pending_handle(&self) -> Arc<Mutex<Option<Config>>> {
        self.pending.clone()
    }

    /// The configuration in effect.
    pub fn in_effect(&self) -> Config {
        self.in_effect
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The staged configuration, if any.
    pub fn pending(&self) -> Option<Config> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_pending(&self, cfg: Option<Config>) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = cfg;
    }

    /// The saved settings and the staged ones.
    pub fn current(&self) -> Staging {
        Staging::new(self.in_effect(), self.pending())
    }

    /// Stages `patch` (a JSON merge patch, RFC 7396, of [`EditableSettings`]) on top of what
    /// is staged already, or of the saved settings. Nothing takes effect until apply.
    pub async fn stage(&self, patch: &Value, actor: &Actor) -> Result<Staging, SettingsError> {
        let _serial = self.serial.lock().await;
        let saved = self.in_effect();
        let base = self.pending().unwrap_or_else(|| saved.clone());
        let staged = staged_from_patch(&base, patch).map_err(|e| e.noting(NOT_STAGED))?;
        let step = changes(&base, &staged);
        self.audit(
            actor,
            json!({ "action": "stage", "changes": audit_summary(&step) }),
        )
        .await?;
        self.set_pending(Some(staged.clone()));
        Ok(Staging::new(saved, Some(staged)))
    }

    /// "Restore": discards the staged settings.
    pub async fn restore(&self, actor: &Actor) -> Result<Restored, SettingsError> {
        let _serial = self.serial.lock().await;
        let saved = self.in_effect();
        let discarded = self
            .pending()
            .map(|p| changes(&saved, &p))
            .unwrap_or_default();
        self.audit(
            actor,
            json!({ "action": "restore", "discarded": audit_summary(&discarded) }),
        )
        .await?;
        self.set_pending(None);
        Ok(Restored { saved, discarded })
    }

    /// "Factory": stages the built-in defaults of the editable settings.
    pub async fn factory(&self, actor: &Actor) -> Result<Staging, SettingsError> {
        let _serial = self.serial.lock().await;
        let saved = self.in_effect();
        let defaults = Config::with_data_dir(&saved.data_dir);
        let staged = EditableSettings::of(&defaults)
            .merge_into(&saved)
            .map_err(SettingsError::Internal)?;
        validate(&staged).map_err(|e| e.noting(NOT_STAGED))?;
        let step = changes(&saved, &staged);
        self.audit(
            actor,
            json!({ "action": "factory", "changes": audit_summary(&step) }),
        )
        .await?;
        self.set_pending(Some(staged.clone()));
        Ok(Staging::new(saved, Some(staged)))
    }

    /// "OK": saves the staged settings to the config file and puts them into effect without
    /// a process restart. Listeners change first (new sockets bound before old ones retire),
    /// then the certificate, then the file; a failure at any of these undoes the earlier
    /// steps, so the saved, staged and running settings stay as they were.
    pub async fn apply<L, C>(
        &self,
        listeners: &L,
        certificate: &C,
        actor: &Actor,
    ) -> Result<Applied<L::Report>, SettingsError>
    where
        L: ListenerControl,
        C: CertificateRotation,
    {
        let _serial = self.serial.lock().await;
        let saved = self.in_effect();
        let Some(pending) = self.pending() else {
            return Err(SettingsError::NothingPending);
        };
        let changes = changes(&saved, &pending);
        if changes.is_empty() {
            self.set_pending(None);
            return Ok(Applied {
                settings: saved,
                changes,
                listeners: None,
                certificate_reissued: false,
                imported_certificate_in_use: false,
            });
        }
        validate(&pending).map_err(|e| e.noting(NOT_CHANGED))?;
        let session = session_config(&pending);
        let ids = ids_config(&pending).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        // Built before anything changes: a webhook whose files cannot be read refuses the apply.
        let new_sink = if pending.access.webhook != saved.access.webhook {
            Some(
                alert_sink(&pending)
                    .map_err(|e| SettingsError::Invalid(e.to_string()).noting(NOT_CHANGED))?,
            )
        } else {
            None
        };

        // 1. Listeners: the port binds every new socket first; a failure changes nothing.
        let old_plan = listeners.plan(&saved);
        let new_plan = listeners.plan(&pending);
        let rebind = old_plan != new_plan;
        let report = if rebind {
            Some(listeners.apply(&new_plan).await.map_err(|e| match e {
                ListenerError::BindFailed(m) => SettingsError::BindFailed(m),
                ListenerError::Unreachable => SettingsError::unreachable().noting(NOT_CHANGED),
                ListenerError::ShutDown(m) => SettingsError::ShuttingDown(m),
                ListenerError::Other(m) => SettingsError::Listeners(m),
            })?)
        } else {
            None
        };

        // 2. Host names: reissue the server certificate and serve it to new handshakes.
        let rename = saved.management.hostnames != pending.management.hostnames;
        let mut rotation = None;
        if rename {
            match certificate
                .reissue(pending.management.hostnames.clone())
                .await
            {
                Ok(r) => rotation = Some(r),
                Err(e) => {
                    restore_listeners(listeners, rebind, &old_plan).await;
                    return Err(match e {
                        CertificateError::BadName(m) => SettingsError::Invalid(format!(
                            "management.hostnames: {m}; {NOT_CHANGED}"
                        )),
                        CertificateError::Other(m) => SettingsError::Certificate(m),
                    });
                }
            }
        }

        // 3. Save.
        let path = self.path.clone();
        let to_save = pending.clone();
        let saved_ok = tokio::task::spawn_blocking(move || persist(&path, &to_save))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = saved_ok {
            restore_listeners(listeners, rebind, &old_plan).await;
            if rotation.is_some()
                && let Err(e) = certificate
                    .reissue(saved.management.hostnames.clone())
                    .await
            {
                tracing::error!(error = %e, "could not restore the previous certificate names");
            }
            return Err(SettingsError::Save(e));
        }

        // 4. Sessions and intrusion detection (validated above, so these cannot refuse).
        self.access.set_session_config(session)?;
        let access = self.access.clone();
        tokio::task::spawn_blocking(move || access.set_ids_config(ids))
            .await
            .map_err(|e| SettingsError::Internal(e.to_string()))??;
        if let Some((sink, _)) = new_sink {
            self.access.set_alert_sink(sink);
        }

        // 5. The rest (retention) is read from the settings in effect.
        *self.in_effect.write().unwrap_or_else(|e| e.into_inner()) = pending.clone();
        self.set_pending(None);

        let certificate_reissued = rotation == Some(Rotation::Reissued);
        self.audit(
            actor,
            json!({
                "action": "apply",
                "changes": audit_summary(&changes),
                "listeners": report,
                "certificate_reissued": certificate_reissued,
            }),
        )
        .await?;
        Ok(Applied {
            settings: pending,
            changes,
            listeners: report,
            certificate_reissued,
            imported_certificate_in_use: rotation == Some(Rotation::ImportedInUse),
        })
    }

    /// Writes what `actor` did to the audit log.
    /// Replaces the `[[rules]]` of the saved configuration and saves the file. Rules are not
    /// staged: they are saved and in effect at once (the caller hands them to the rule task),
    /// and a staged configuration gets the same rules, so a later apply keeps them
    /// (docs/rules-and-alarms.md). Returns the configuration now saved.
    pub async fn replace_rules(
        &self,
        rules: Vec<vigil_config::RuleConfig>,
        actor: &Actor,
    ) -> Result<Config, SettingsError> {
        let _serial = self.serial.lock().await;
        let saved = self.in_effect();
        let mut next = saved.clone();
        next.rules = rules;
        validate(&next).map_err(|e| e.noting(NOT_CHANGED))?;
        let path = self.path.clone();
        let to_save = next.clone();
        tokio::task::spawn_blocking(move || persist(&path, &to_save))
            .await
            .map_err(|e| SettingsError::Internal(e.to_string()))?
            .map_err(SettingsError::Save)?;
        *self.in_effect.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        if let Some(p) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            p.rules = next.rules.clone();
        }
        // Saved and in effect before the audit entry, so a failing audit log does not leave
        // the file and the running server disagreeing.
        let names = |c: &Config| c.rules.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        self.audit(
            actor,
            json!({ "action": "rules", "before": names(&saved), "after": names(&next) }),
        )
        .await?;
        Ok(next)
    }

    async fn audit(&self, actor: &Actor, detail: Value) -> Result<(), SettingsError> {
        let record = AuditRecord::new(
            AuditKind::ConfigChanged,
            Some(&actor.name),
            Some(&actor.source),
        )
        .detail(detail);
        let access = self.access.clone();
        tokio::task::spawn_blocking(move || access.audit(record))
            .await
            .map_err(|e| SettingsError::Internal(e.to_string()))??;
        Ok(())
    }
}

/// Puts the listeners of the saved settings back after a later step of an apply failed.
async fn restore_listeners<L: ListenerControl>(listeners: &L, rebound: bool, plan: &L::Plan) {
    if rebound && let Err(e) = listeners.apply(plan).await {
        tracing::error!(error = %e, "could not restore the previous listeners");
    }
}

#[cfg(test)]
mod tests;
