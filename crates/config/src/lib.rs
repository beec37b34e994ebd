//! Vigil's configuration file (`vigil.toml`): its types, embedded defaults and validation.
//!
//! The file holds what an installation needs before its database is open: where data lives,
//! how storage and ingest behave, and which ports each role listens on. Cameras, users and
//! everything else an operator changes at runtime live in the database instead, so that the
//! CLI and a running server agree without rewriting this file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a configuration could not be loaded. Every variant names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read config file {path}: {source}. Create one with `vigil init --data-dir DIR`."
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where recordings, the database and keys are stored. Relative paths are resolved
    /// against the directory holding the config file.
    pub data_dir: PathBuf,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub management: ManagementConfig,
    #[serde(default)]
    pub recording: RecordingConfig,
    #[serde(default)]
    pub events: EventsConfig,
    #[serde(default)]
    pub siem: SiemConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub access: AccessSettings,
}

/// How video is laid out on disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// A segment file is closed at the first keyframe after this many seconds.
    pub segment_seconds: u32,
    /// Free space (bytes) that retention keeps available on the recording volume; when less is
    /// free, the oldest unlocked video of any camera is deleted first.
    pub min_free_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            segment_seconds: 60,
            min_free_bytes: 256 * 1024 * 1024,
        }
    }
}

/// How camera streams are pulled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A stream that delivers no frame for this long is treated as stalled and reconnected.
    #[serde(with = "humantime_serde_compat")]
    pub inactivity_timeout: Duration,
    /// Upper bound of the exponential reconnect back-off.
    #[serde(with = "humantime_serde_compat")]
    pub max_backoff: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            inactivity_timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Retention defaults for cameras that set none of their own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Video older than this is deleted (oldest first). None keeps video until space runs out.
    #[serde(with = "humantime_serde_compat::option")]
    pub max_age: Option<Duration>,
    /// Per camera byte budget. None means no budget beyond the volume's free space.
    pub max_bytes: Option<u64>,
}

/// One listening socket of a role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub bind: SocketAddr,
    /// Free text for the port manifest, e.g. "LAN" or "Internet".
    #[serde(default)]
    pub label: String,
}

/// The management role: REST API, web client, configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementConfig {
    pub enabled: bool,
    /// HTTPS listeners (a LAN port and, optionally, an Internet port).
    pub https: Vec<Listener>,
    /// Plaintext HTTP listeners. Empty by default; when set, pages redirect to HTTPS and every
    /// credential-bearing endpoint answers 403.
    pub http: Vec<Listener>,
    /// Inter-server API (mutual TLS): recording servers register here and report status;
    /// only recording servers may reach it.
    pub inter_server: Listener,
    /// Host names and addresses placed in the server certificate's SANs.
    pub hostnames: Vec<String>,
}

impl Default for ManagementConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            https: vec![Listener {
                bind: "0.0.0.0:8443".parse().expect("static address"),
                label: "LAN".into(),
            }],
            http: Vec::new(),
            inter_server: Listener {
                bind: "0.0.0.0:8444".parse().expect("static address"),
                label: "inter-server".into(),
            },
            hostnames: vec!["localhost".into(), "127.0.0.1".into()],
        }
    }
}

/// The recording role: pulls cameras, stores and serves video.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    pub enabled: bool,
    /// Inter-server API (mutual TLS).
    pub api: Listener,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            api: Listener {
                bind: "0.0.0.0:9443".parse().expect("static address"),
                label: String::new(),
            },
        }
    }
}

/// The events role: generic events, syslog in, analytics events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub enabled: bool,
    /// Generic events over TLS.
    pub tcp: Listener,
    /// Generic events over UDP: plaintext, so off unless an admin enables it.
    pub udp: Option<Listener>,
    /// Syslog over TLS (RFC 5425).
    pub syslog_tls: Listener,
    /// Source addresses (CIDR) allowed to send events.
    pub allowed_sources: Vec<String>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tcp: Listener {
                bind: "0.0.0.0:1234".parse().expect("static address"),
                label: String::new(),
            },
            udp: None,
            syslog_tls: Listener {
                bind: "0.0.0.0:6514".parse().expect("static address"),
                label: String::new(),
            },
            allowed_sources: Vec::new(),
        }
    }
}

/// Outbound forwarding of security events to a SIEM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SiemConfig {
    /// `host:port` of an RFC 5425 syslog-over-TLS receiver; None disables forwarding.
    pub target: Option<String>,
    /// Send ArcSight CEF instead of RFC 5424 structured data.
    pub cef: bool,
}

/// Prometheus metrics: local only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub bind: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: "127.0.0.1:9464".parse().expect("static address"),
        }
    }
}

/// Sessions, intrusion detection and alert delivery (`[access]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSettings {
    /// A session unused this long ends (D2). Default 15 minutes.
    #[serde(with = "humantime_serde_compat")]
    pub session_idle_timeout: Duration,
    /// A session ends this long after login however active. Default 12 hours.
    #[serde(with = "humantime_serde_compat")]
    pub session_absolute_lifetime: Duration,
    pub ids: IdsSettings,
    /// Where intrusion alerts are POSTed as JSON, besides the log.
    pub webhook: Option<WebhookSettings>,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            session_idle_timeout: Duration::from_secs(15 * 60),
            session_absolute_lifetime: Duration::from_secs(12 * 3600),
            ids: IdsSettings::default(),
            webhook: None,
        }
    }
}

/// Intrusion detection with the semantics of the MOBOTIX camera web server (seed 004).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IdsSettings {
    /// Failed logins from one address that raise an alert and block it. At least 5.
    pub notification_threshold: u32,
    /// Attempts closer together than this are aggregated into one access-log entry.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Minimum time between two alerts for one address; "0s" alerts on every attempt.
    #[serde(with = "humantime_serde_compat")]
    pub deadtime: Duration,
    /// "until_restart", "off" (alert only) or a duration such as "30m".
    pub block: BlockSetting,
    /// Addresses or CIDR ranges that are never blocked (still counted and alerted).
    pub allow_list: Vec<String>,
}

impl Default for IdsSettings {
    fn default() -> Self {
        Self {
            notification_threshold: 10,
            timeout: Duration::from_secs(3600),
            deadtime: Duration::from_secs(3600),
            block: BlockSetting::UntilRestart,
            allow_list: Vec::new(),
        }
    }
}

/// What happens to an address that reaches the notification threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSetting {
    Off,
    UntilRestart,
    For(Duration),
}

impl std::fmt::Display for BlockSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockSetting::Off => f.write_str("off"),
            BlockSetting::UntilRestart => f.write_str("until_restart"),
            BlockSetting::For(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

impl std::str::FromStr for BlockSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "off" => Ok(BlockSetting::Off),
            "until_restart" => Ok(BlockSetting::UntilRestart),
            other => match parse_duration(other) {
                Ok(d) if d >= Duration::from_secs(1) => Ok(BlockSetting::For(d)),
                _ => Err(format!(
                    "access.ids.block = {other:?} is not valid; use \"until_restart\", \"off\" or a duration such as \"30m\""
                )),
            },
        }
    }
}

impl Serialize for BlockSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlockSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An HTTPS endpoint that receives intrusion alerts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// `https://...`; credentials in the URL are refused (secrets never in URLs).
    pub url: String,
    /// File holding the HMAC-SHA256 key for the `X-Vigil-Signature` header (kept out of this
    /// file so the config can be shared without the secret).
    pub secret_file: Option<PathBuf>,
    /// Extra CA certificate(s) in PEM to trust for the receiver.
    pub ca_file: Option<PathBuf>,
    /// Allows `http://` receivers; off because alerts name users and addresses.
    pub allow_plaintext_http: bool,
}

impl Config {
    /// The embedded defaults for a data directory.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            storage: StorageConfig::default(),
            ingest: IngestConfig::default(),
            retention: RetentionConfig::default(),
            management: ManagementConfig::default(),
            recording: RecordingConfig::default(),
            events: EventsConfig::default(),
            siem: SiemConfig::default(),
            metrics: MetricsConfig::default(),
            access: AccessSettings::default(),
        }
    }

    /// Reads, parses and validates a config file. A relative `data_dir` is made absolute
    /// against the file's directory so the server does not depend on its working directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        if config.data_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            config.data_dir = base.join(&config.data_dir);
        }
        Ok(config)
    }

    /// Parses and validates config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges and combinations that would leave the server broken.
    pub fn validate(&self) -> Result<(), String> {
        if self.data_dir.as_os_str().is_empty() {
            return Err("data_dir is empty; set it to the directory for recordings".into());
        }
        if !(2..=3600).contains(&self.storage.segment_seconds) {
            return Err(format!(
                "storage.segment_seconds = {} is out of range; use 2 to 3600 (default 60)",
                self.storage.segment_seconds
            ));
        }
        if self.ingest.inactivity_timeout < Duration::from_secs(1) {
            return Err("ingest.inactivity_timeout must be at least 1s".into());
        }
        if self.ingest.max_backoff < Duration::from_secs(1) {
            return Err("ingest.max_backoff must be at least 1s".into());
        }
        if self.management.enabled
            && self.management.https.is_empty()
            && self.management.http.is_empty()
        {
            return Err(
                "management is enabled but has neither an HTTPS nor an HTTP listener; \
                        add a [[management.https]] entry so the server is reachable"
                    .into(),
            );
        }
        let a = &self.access;
        if a.session_idle_timeout < Duration::from_secs(60) {
            return Err("access.session_idle_timeout must be at least 1m (default 15m)".into());
        }
        if a.session_absolute_lifetime < a.session_idle_timeout {
            return Err(
                "access.session_absolute_lifetime must not be shorter than session_idle_timeout"
                    .into(),
            );
        }
        if a.ids.notification_threshold < 5 {
            return Err(format!(
                "access.ids.notification_threshold = {} is too low; use at least 5 (default 10)",
                a.ids.notification_threshold
            ));
        }
        if a.ids.timeout < Duration::from_secs(1) {
            return Err("access.ids.timeout must be at least 1s (default 60m)".into());
        }
        if let Some(w) = &a.webhook
            && w.url.trim().is_empty()
        {
            return Err(
                "access.webhook.url is empty; set an https:// URL or remove [access.webhook]"
                    .into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (role, addr, proto) in self.listeners() {
            if addr.port() == 0 {
                return Err(format!(
                    "{role}: port 0 is not allowed; choose a fixed port"
                ));
            }
            if !seen.insert((addr, proto)) {
                return Err(format!(
                    "{role}: {addr}/{proto} is used by another listener; give each listener its own port"
                ));
            }
        }
        Ok(())
    }

    /// Every socket this configuration listens on, as (role, address, "tcp"|"udp").
    pub fn listeners(&self) -> Vec<(&'static str, SocketAddr, &'static str)> {
        let mut out = Vec::new();
        if self.management.enabled {
            out.extend(
                self.management
                    .https
                    .iter()
                    .map(|l| ("management https", l.bind, "tcp")),
            );
            out.extend(
                self.management
                    .http
                    .iter()
                    .map(|l| ("management http", l.bind, "tcp")),
            );
        }
        if self.recording.enabled {
            out.push(("recording api", self.recording.api.bind, "tcp"));
        }
        if self.events.enabled {
            out.push(("events tcp", self.events.tcp.bind, "tcp"));
            if let Some(udp) = &self.events.udp {
                out.push(("events udp", udp.bind, "udp"));
            }
            out.push(("events syslog", self.events.syslog_tls.bind, "tcp"));
        }
        if self.metrics.enabled {
            out.push(("metrics", self.metrics.bind, "tcp"));
        }
        out
    }

    /// The commented TOML written by `vigil init`.
    pub fn to_commented_toml(&self) -> String {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let retention_age = match self.retention.max_age {
            Some(a) => format!("max_age = \"{}\"", d(a)),
            None => "# max_age = \"30d\"".into(),
        };
        let retention_bytes = match self.retention.max_bytes {
            Some(b) => format!("max_bytes = {b}"),
            None => "# max_bytes = 500_000_000_000".into(),
        };
        format!(
            r#"# Vigil configuration. Cameras, users and permissions live in the database
# (data_dir/vigil.db) and are managed with `vigil camera ...` or the API.

# Recordings, the database and keys. Relative to this file's directory if not absolute.
data_dir = {data_dir}

[storage]
# A segment file is closed at the first keyframe after this many seconds.
segment_seconds = {segment_seconds}
# When less than this many bytes are free on the volume, the oldest unlocked video is deleted
# so that new video keeps recording.
min_free_bytes = {min_free_bytes}

[ingest]
# A camera that sends no frame for this long is reconnected.
inactivity_timeout = "{inactivity}"
# Reconnect back-off doubles from 1s up to this cap.
max_backoff = "{backoff}"

[retention]
# Defaults for cameras without their own limits (`vigil camera add --max-age/--max-bytes`).
{retention_age}
{retention_bytes}

[management]
enabled = {mgmt_enabled}
# Host names and addresses for the server certificate.
hostnames = {hostnames:?}
# Inter-server API (mutual TLS): only recording servers holding a certificate from the
# system CA connect here.
inter_server = {{ bind = "{inter}", label = "inter-server" }}
# HTTPS listeners; add a second one for an Internet-facing port.
{https}
# Plaintext HTTP is off unless listed here. It only redirects to HTTPS; credential-bearing
# endpoints answer 403 over HTTP.
{http}

[recording]
enabled = {rec_enabled}
# Inter-server API, mutual TLS with certificates from the system CA.
api = {{ bind = "{rec_bind}" }}

[events]
enabled = {ev_enabled}
tcp = {{ bind = "{ev_tcp}" }}
syslog_tls = {{ bind = "{ev_syslog}" }}
# Plaintext UDP events are off unless enabled here:
# udp = {{ bind = "0.0.0.0:1234" }}
allowed_sources = {allowed:?}

[siem]
# target = "siem.example.net:6514"
cef = {cef}

[metrics]
# Prometheus text; keep it on loopback.
enabled = {metrics_enabled}
bind = "{metrics_bind}"

[access]
# Sessions end after this long unused, and at the latest this long after login.
session_idle_timeout = "{idle}"
session_absolute_lifetime = "{absolute}"

[access.ids]
# Intrusion detection per source address: after notification_threshold failed logins
# (aggregated within timeout) an alert is raised (at most one per deadtime; "0s" = every
# attempt) and the address is blocked: "until_restart", "off" or a duration like "30m".
notification_threshold = {threshold}
timeout = "{ids_timeout}"
deadtime = "{deadtime}"
block = "{block}"
# Addresses or CIDRs never blocked, e.g. ["10.0.0.0/24"].
allow_list = {allow_list:?}
{webhook}"#,
            data_dir = toml::Value::String(self.data_dir.display().to_string()),
            segment_seconds = self.storage.segment_seconds,
            min_free_bytes = self.storage.min_free_bytes,
            inactivity = d(self.ingest.inactivity_timeout),
            backoff = d(self.ingest.max_backoff),
            mgmt_enabled = self.management.enabled,
            hostnames = self.management.hostnames,
            inter = self.management.inter_server.bind,
            https = listener_tables("https", &self.management.https, None),
            http = listener_tables(
                "http",
                &self.management.http,
                Some("# [[management.http]]\n# bind = \"0.0.0.0:8080\"\n")
            ),
            rec_enabled = self.recording.enabled,
            rec_bind = self.recording.api.bind,
            ev_enabled = self.events.enabled,
            ev_tcp = self.events.tcp.bind,
            ev_syslog = self.events.syslog_tls.bind,
            allowed = self.events.allowed_sources,
            cef = self.siem.cef,
            metrics_enabled = self.metrics.enabled,
            metrics_bind = self.metrics.bind,
            idle = d(self.access.session_idle_timeout),
            absolute = d(self.access.session_absolute_lifetime),
            threshold = self.access.ids.notification_threshold,
            ids_timeout = d(self.access.ids.timeout),
            deadtime = d(self.access.ids.deadtime),
            block = self.access.ids.block,
            allow_list = self.access.ids.allow_list,
            webhook = match &self.access.webhook {
                Some(w) => format!(
                    "\n[access.webhook]\n{}",
                    toml::to_string(w).expect("webhook settings serialize")
                ),
                None => "\n# Intrusion alerts can also be POSTed to an HTTPS webhook:\n# [access.webhook]\n# url = \"https://alerts.example.net/vigil\"\n# secret_file = \"/etc/vigil/webhook.key\"\n".into(),
            },
        )
    }
}

/// `[[management.<kind>]]` tables for `listeners`. An empty list is written as `example`
/// when its default is empty too, else as `<kind> = []` so that it does not fall back to the
/// default listener on reload (this must then come before any `[[...]]` table).
fn listener_tables(kind: &str, listeners: &[Listener], example: Option<&str>) -> String {
    if listeners.is_empty() {
        return match example {
            Some(example) => example.to_owned(),
            None => format!("{kind} = []\n"),
        };
    }
    listeners
        .iter()
        .map(|l| {
            format!(
                "[[management.{kind}]]\nbind = \"{}\"\nlabel = {}\n",
                l.bind,
                toml::Value::String(l.label.clone())
            )
        })
        .collect()
}

/// Formats a duration the way the config file writes it ("15m", "1h 30m"); the inverse of
/// [`parse_duration`].
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Parses a duration such as "90s", "15m" or "30d" (humantime syntax).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration ({e}); use forms like 90s, 15m, 12h, 30d"))
}

/// Serde adapters so durations read as "10s" / "30d" in TOML.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            let text = Option::<String>::deserialize(d)?;
            text.map(|t| super::super::parse_duration(&t).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_defaults_round_trip() {
        let c = Config::with_data_dir("/var/lib/vigil");
        let text = c.to_commented_toml();
        let back = Config::parse(&text, Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn minimal_file_uses_defaults() {
        let c = Config::parse("data_dir = \"d\"\n", Path::new("x.toml")).unwrap();
        assert_eq!(c.storage.segment_seconds, 60);
        assert_eq!(c.management.https[0].bind.port(), 8443);
        assert!(
            c.management.http.is_empty(),
            "plaintext HTTP must be off by default"
        );
        assert!(
            c.events.udp.is_none(),
            "plaintext UDP events must be off by default"
        );
        assert!(c.metrics.bind.ip().is_loopback());
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::parse(
            "data_dir = \"d\"\n[storage]\nsegmnt_seconds = 5\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("segmnt_seconds"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn bad_duration_says_what_to_use() {
        let err = Config::parse(
            "data_dir = \"d\"\n[ingest]\ninactivity_timeout = \"soon\"\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("15m"), "{err}");
    }

    #[test]
    fn unreachable_management_is_refused() {
        let err = Config::parse(
            "data_dir = \"d\"\n[management]\nhttps = []\nhttp = []\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("neither an HTTPS nor an HTTP listener"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_port_is_refused() {
        let err = Config::parse(
            "data_dir = \"d\"\n[recording]\napi = { bind = \"0.0.0.0:8443\" }\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("used by another listener"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for text in [
            "data_dir = \"d\"\n[storage]\nsegment_seconds = 0\n",
            "data_dir = \"d\"\n[metrics]\nbind = \"127.0.0.1:0\"\n",
            "data_dir = \"\"\n",
            "data_dir = \"d\"\n[storage]\nsegment_seconds = -1\n",
            "not toml at all",
        ] {
            assert!(Config::parse(text, Path::new("x.toml")).is_err(), "{text}");
        }
    }

    #[test]
    fn listeners_round_trip() {
        let mut c = Config::with_data_dir("/var/lib/vigil");
        let l = |bind: &str, label: &str| Listener {
            bind: bind.parse().unwrap(),
            label: label.into(),
        };
        c.management.https = vec![l("10.0.0.2:8443", "LAN"), l("[::]:443", "Internet \"A\"")];
        c.management.http = vec![l("0.0.0.0:8080", "redirect")];
        let back = Config::parse(&c.to_commented_toml(), Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
        // HTTP only: an empty HTTPS list must stay empty, not fall back to the default port.
        c.management.https.clear();
        let back = Config::parse(&c.to_commented_toml(), Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn access_settings_round_trip_with_webhook() {
        let mut c = Config::with_data_dir("/var/lib/vigil");
        c.access.ids.block = BlockSetting::For(Duration::from_secs(1800));
        c.access.ids.allow_list = vec!["10.0.0.0/24".into()];
        c.access.webhook = Some(WebhookSettings {
            url: "https://alerts.example.net/vigil".into(),
            secret_file: Some("/etc/vigil/webhook.key".into()),
            ca_file: None,
            allow_plaintext_http: false,
        });
        let back = Config::parse(&c.to_commented_toml(), Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_access_settings_say_what_to_use() {
        for (text, want) in [
            ("[access.ids]\nnotification_threshold = 3\n", "at least 5"),
            ("[access.ids]\nblock = \"forever\"\n", "until_restart"),
            ("[access]\nsession_idle_timeout = \"5s\"\n", "at least 1m"),
            (
                "[access]\nsession_idle_timeout = \"2h\"\nsession_absolute_lifetime = \"1h\"\n",
                "shorter",
            ),
            ("[access.webhook]\nurl = \"\"\n", "https://"),
        ] {
            let err = Config::parse(&format!("data_dir = \"d\"\n{text}"), Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
