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

pub mod archive;
pub mod camera_ports;
pub mod database;
pub mod rules;
pub mod smtp;

pub use archive::{ArchiveConfig, ObjectLockMode, is_bucket_name, parse_archive_endpoint};
pub use database::DatabaseConfig;
pub use rules::RuleConfig;
pub use smtp::{SmtpConfig, SmtpTls};

/// Why a configuration could not be loaded. Every variant names the file and says what is
/// wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
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
    /// Which roles `vigil serve` runs (docs/cluster.md); `vigil serve --role` overrides it.
    #[serde(default, skip_serializing_if = "Role::is_all")]
    pub role: Role,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub cameras: CamerasConfig,
    #[serde(default)]
    pub management: ManagementConfig,
    #[serde(default)]
    pub recording: RecordingConfig,
    #[serde(default)]
    pub events: EventsConfig,
    #[serde(default)]
    pub siem: SiemConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub archive: ArchiveConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub access: AccessSettings,
    /// Where the management data lives (`[database]`; docs/database.md): SQLite unless set.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Event rules (`[[rules]]`): docs/rules-and-alarms.md.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleConfig>,
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

/// Camera upkeep `vigil serve` does by itself (`[cameras]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CamerasConfig {
    /// Cameras whose password was last rotated longer ago than this get a new one
    /// (docs/cameras-onvif.md, "Password rotation"); `off` (None) disables the schedule.
    #[serde(with = "rotation_period")]
    pub rotate_passwords_every: Option<Duration>,
    /// Cameras rotated at the same time at most, so a large site rotates in minutes
    /// without every camera of a switch being busy at once.
    pub rotation_concurrency: usize,
}

/// The default password rotation period: twice a year.
pub const DEFAULT_ROTATION_PERIOD: Duration = Duration::from_secs(180 * 24 * 3600);
/// The most cameras rotated at once.
pub const MAX_ROTATION_CONCURRENCY: usize = 64;

impl Default for CamerasConfig {
    fn default() -> Self {
        Self {
            rotate_passwords_every: Some(DEFAULT_ROTATION_PERIOD),
            rotation_concurrency: 4,
        }
    }
}

/// `rotate_passwords_every`: a duration ("180d"), or "off".
mod rotation_period {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        super::parse_duration(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or \"off\"")))
    }
}

/// The roles one `vigil serve` process runs (docs/cluster.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in one process, with no inter-server API: the single-box default.
    #[default]
    All,
    /// API, web client, configuration, events and the inter-server API recording servers
    /// join and report to; records nothing itself.
    Management,
    /// Records the cameras of its own database and serves its inter-server API (mutual TLS)
    /// to the management server; no web client, no events inputs, no metrics listener.
    Recording,
}

impl Role {
    pub fn is_all(&self) -> bool {
        *self == Role::All
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Management => "management",
            Role::Recording => "recording",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Role::All),
            "management" => Ok(Role::Management),
            "recording" => Ok(Role::Recording),
            other => Err(format!(
                "unknown role {other:?}: use all, management or recording"
            )),
        }
    }
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
    /// HTTPS listeners (a LAN port and, optionally, an Internet port). Not taken from
    /// [`ManagementConfig::default`] when a written `[management]` table leaves it out: see
    /// `Config::check_management_reachable`.
    #[serde(default)]
    pub https: Vec<Listener>,
    /// Plaintext HTTP listeners. Empty by default; when set, pages redirect to HTTPS and every
    /// credential-bearing endpoint answers 403.
    pub http: Vec<Listener>,
    /// Inter-server API (mutual TLS): recording servers join here with a one-time token and
    /// report status. Opened by `role = "management"` only; with `all` the address stays
    /// reserved (docs/cluster.md).
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
            hostnames: default_hostnames(),
        }
    }
}

/// The names every generated server certificate carries, so local clients can always verify
/// it; `vigil init --hostname` adds the names and addresses remote clients use.
pub const LOCAL_HOSTNAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn default_hostnames() -> Vec<String> {
    LOCAL_HOSTNAMES.iter().map(|h| (*h).to_owned()).collect()
}

/// The recording role: pulls cameras, stores and serves video.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    pub enabled: bool,
    /// Inter-server API (mutual TLS, installation-CA client certificates only). Opened by
    /// `role = "recording"` only; with `all` the address stays reserved (docs/cluster.md).
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

/// The events role: generic events, syslog in, analytics events (docs/events-in.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub enabled: bool,
    /// Generic events over TLS.
    pub tcp: Listener,
    /// Generic events over UDP: plaintext, so off unless an admin enables it, and then taken
    /// from `allowed_sources` only.
    pub udp: Option<Listener>,
    /// Generic events over plaintext TCP (allow-listed sources only). Off unless set.
    pub tcp_plain: Option<Listener>,
    /// Syslog over TLS (RFC 5425).
    pub syslog_tls: Listener,
    /// Syslog over plaintext UDP (RFC 5426; usually port 514), allow-listed sources only.
    pub syslog_udp: Option<Listener>,
    /// Syslog over plaintext TCP (RFC 6587; usually port 514), allow-listed sources only.
    pub syslog_tcp: Option<Listener>,
    /// Source addresses (CIDR or single addresses) allowed to send events: without a client
    /// certificate over TLS, and the only sources a plaintext listener takes.
    pub allowed_sources: Vec<String>,
    /// Every TLS source must present a client certificate issued by the Vigil CA, also an
    /// allow-listed one.
    pub require_client_cert: bool,
    pub limits: EventLimits,
    /// Senders that post analytics events signed with a shared secret instead of an API
    /// token (`[[events.webhooks]]`, docs/events-in.md).
    pub webhooks: Vec<EventWebhook>,
    /// Switch ports and MAC addresses of cameras (`[[events.camera_ports]]`): a syslog event
    /// on one of them is an event of that camera (docs/events-in.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub camera_ports: Vec<camera_ports::CameraPort>,
}

/// A sender of HMAC-signed analytics events (`POST /api/v1/events/webhook/{name}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct EventWebhook {
    /// Names the sender in the URL and as the events' source: 1 to 64 of `A-Z a-z 0-9 _ - .`.
    pub name: String,
    /// File holding the shared HMAC-SHA256 secret (at least 32 bytes; mode 0600), kept out of
    /// this file so the config can be shared without it.
    pub secret_file: PathBuf,
    /// Cameras it may post about; absent: every camera.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cameras: Option<Vec<String>>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            // Off until an admin names the senders (allowed_sources or client certificates):
            // a listener nobody may use would only be a port to firewall and audit.
            enabled: false,
            tcp: Listener {
                bind: "0.0.0.0:1234".parse().expect("static address"),
                label: String::new(),
            },
            udp: None,
            tcp_plain: None,
            syslog_tls: Listener {
                bind: "0.0.0.0:6514".parse().expect("static address"),
                label: String::new(),
            },
            syslog_udp: None,
            syslog_tcp: None,
            allowed_sources: Vec::new(),
            require_client_cert: false,
            limits: EventLimits::default(),
            webhooks: Vec::new(),
            camera_ports: Vec::new(),
        }
    }
}

/// What one source may cost the events role (`[events.limits]`): a source over a limit is
/// throttled and reported, so no sender can starve recording.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventLimits {
    /// Open connections from one address, over all event listeners.
    pub max_connections_per_source: u32,
    /// Open connections over all event listeners.
    pub max_connections: u32,
    /// Longest line, syslog message or datagram in bytes.
    pub max_message_bytes: usize,
    /// Events per second one address may send (token bucket refill rate).
    pub rate_per_source: u32,
    /// Events one address may send at once above its rate (bucket size).
    pub burst: u32,
    /// A TLS handshake must finish within this.
    #[serde(with = "humantime_serde_compat")]
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    #[serde(with = "humantime_serde_compat")]
    pub idle_timeout: Duration,
    /// A refused or throttled source is reported at most once per interval.
    #[serde(with = "humantime_serde_compat")]
    pub report_interval: Duration,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_connections_per_source: 8,
            max_connections: 512,
            max_message_bytes: 8192,
            rate_per_source: 100,
            burst: 200,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            report_interval: Duration::from_secs(60),
        }
    }
}

/// A source of `[events] allowed_sources`: a network in CIDR form (`10.1.2.0/24`) or one
/// address. A network with host bits set (`10.1.2.3/24`) is refused: it is unclear whether
/// the admin meant the host or the network.
pub fn parse_source(text: &str) -> Result<ipnet::IpNet, String> {
    let t = text.trim();
    if let Ok(ip) = t.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    match t.parse::<ipnet::IpNet>() {
        Ok(net) if net.trunc() == net => Ok(net),
        Ok(net) => Err(format!(
            "has host bits set: write the network {} or the single address {}",
            net.trunc(),
            net.addr()
        )),
        Err(_) => Err("is not an address or CIDR network (e.g. \"10.1.2.0/24\")".into()),
    }
}

/// Outbound forwarding of events to SIEM collectors (`[siem]` and its
/// `[[siem.collectors]]`): RFC 5424 over TLS (RFC 5425) through an on-disk spool
/// (docs/siem.md). Off until a collector is listed: nothing is opened or written before.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SiemConfig {
    /// Shorthand for one collector that is verified against the system's CA store and sent
    /// no client certificate: the same as a `[[siem.collectors]]` table holding only
    /// `target`. Not together with `collectors`.
    pub target: Option<String>,
    /// Payload of collectors that do not set `format`: CEF when true, else plain text.
    pub cef: bool,
    /// Syslog facility of every message: `kern` … `local7` (RFC 5424 names; default
    /// `local4`, apart from the collector host's own `auth` logs).
    pub facility: String,
    /// Private enterprise number in the structured data's SD-ID (`vigil@<number>`).
    /// The default, 32473, is the number IANA reserves for documentation (RFC 5612).
    pub enterprise_number: u32,
    /// Events outside the `security` and `alarm` categories (which are always forwarded)
    /// are forwarded when at least this severe: `emergency` … `debug`.
    pub min_severity: String,
    /// The spool's limit in bytes; when a collector stays unreachable beyond it, the oldest
    /// events are dropped and the loss is reported as an event.
    pub spool_max_bytes: u64,
    /// A message counts as delivered once the collector's TCP acknowledged it and the
    /// connection was still open this long afterwards.
    #[serde(with = "humantime_serde_compat")]
    pub confirm_after: Duration,
    /// Upper bound of the reconnect back-off (doubling from 250 ms).
    #[serde(with = "humantime_serde_compat")]
    pub max_backoff: Duration,
    /// Longest message sent (RFC 5425 receivers should take 8192); longer ones have their
    /// text and attribute values shortened and say so (`truncated="true"`).
    pub max_message_bytes: usize,
    pub collectors: Vec<SiemCollector>,
}

impl Default for SiemConfig {
    fn default() -> Self {
        Self {
            target: None,
            cef: false,
            facility: "local4".into(),
            enterprise_number: 32473,
            min_severity: "warning".into(),
            spool_max_bytes: 256 * 1024 * 1024,
            confirm_after: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            max_message_bytes: 8192,
            collectors: Vec::new(),
        }
    }
}

/// The syslog facilities by RFC 5424 code (0 `kern` … 23 `local7`).
pub const SYSLOG_FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// RFC 5424 severities, most severe first (code 0 … 7).
pub const SYSLOG_SEVERITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// What a collector receives in the message part.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SiemFormat {
    /// The event's message as UTF-8 text (the structured data carries the fields).
    Rfc5424,
    /// An ArcSight CEF record (the structured data is sent too).
    Cef,
}

/// One syslog collector (`[[siem.collectors]]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SiemCollector {
    /// Names the collector in logs, events and the spool (its delivery position). Default:
    /// `target`. Keep it when moving a collector to another address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `host:port` (port 6514 when left out; IPv6 as `[addr]:port`).
    pub target: String,
    /// The name the collector's certificate must carry. Default: the host of `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// CA certificates (PEM) the collector's certificate must chain to. Default: the
    /// system's CA store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for collectors that authenticate Vigil.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    /// Its private key (PEM, mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
    /// `rfc5424` or `cef`. Default: `cef` when `[siem] cef = true`, else `rfc5424`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SiemFormat>,
}

impl SiemConfig {
    /// The collectors in effect: the `target` shorthand expanded, names and formats filled
    /// in. Empty: forwarding is off.
    pub fn effective_collectors(&self) -> Vec<SiemCollector> {
        let mut list = self.collectors.clone();
        if let Some(t) = &self.target {
            list.push(SiemCollector {
                target: t.clone(),
                ..Default::default()
            });
        }
        for c in &mut list {
            c.name.get_or_insert_with(|| c.target.clone());
            c.format.get_or_insert(if self.cef {
                SiemFormat::Cef
            } else {
                SiemFormat::Rfc5424
            });
        }
        list
    }

    /// Whether anything is forwarded.
    pub fn enabled(&self) -> bool {
        self.target.is_some() || !self.collectors.is_empty()
    }

    /// The facility's RFC 5424 code.
    pub fn facility_code(&self) -> Option<u8> {
        SYSLOG_FACILITIES
            .iter()
            .position(|f| *f == self.facility)
            .map(|i| i as u8)
    }

    /// The minimum severity's RFC 5424 code.
    pub fn min_severity_code(&self) -> Option<u8> {
        SYSLOG_SEVERITIES
            .iter()
            .position(|f| *f == self.min_severity)
            .map(|i| i as u8)
    }
}

/// `host` and `port` of a collector's `host:port` (port 6514 when left out), or what is
/// wrong with it.
pub fn split_target(target: &str) -> Result<(String, u16), String> {
    split_host_port(target, 6514)
}

/// `host` and `port` of `host:port` or `[IPv6]:port` (`default_port` when left out), or
/// what is wrong with it.
pub fn split_host_port(target: &str, default_port: u16) -> Result<(String, u16), String> {
    let t = target.trim();
    if t.is_empty() {
        return Err("is empty".into());
    }
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("has a '[' without ']'".into());
        };
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("has text after ']' that is not :port")?,
            ),
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("has [{host}], which is not an IPv6 address"));
        }
        (host.to_owned(), port)
    } else {
        match t.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err("is an IPv6 address without brackets: write [addr]:port".into());
            }
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (t.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if host.contains(char::is_whitespace) || host.contains('/') {
        return Err(format!(
            "has the host {host:?}, which is not a host name or address"
        ));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("has the port {p:?}: use 1..=65535")),
            Ok(p) => p,
        },
    };
    Ok((host, port))
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
    /// A session unused this long ends. Default 15 minutes.
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

/// Intrusion detection with the semantics of an IP camera's own web server (docs/security-model.md).
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
            role: Role::All,
            storage: StorageConfig::default(),
            ingest: IngestConfig::default(),
            retention: RetentionConfig::default(),
            cameras: CamerasConfig::default(),
            management: ManagementConfig::default(),
            recording: RecordingConfig::default(),
            events: EventsConfig::default(),
            siem: SiemConfig::default(),
            smtp: SmtpConfig::default(),
            archive: ArchiveConfig::default(),
            metrics: MetricsConfig::default(),
            access: AccessSettings::default(),
            database: DatabaseConfig::default(),
            rules: Vec::new(),
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
        let base = path.parent().unwrap_or(Path::new("."));
        if config.data_dir.is_relative() {
            config.data_dir = base.join(&config.data_dir);
        }
        for w in &mut config.events.webhooks {
            if w.secret_file.is_relative() {
                w.secret_file = base.join(&w.secret_file);
            }
        }
        for file in [
            &mut config.smtp.ca_file,
            &mut config.smtp.password_file,
            &mut config.archive.credentials_file,
            &mut config.archive.ca_file,
            &mut config.database.ca_file,
            &mut config.database.password_file,
        ]
        .into_iter()
        .flatten()
        {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        for c in &mut config.siem.collectors {
            for file in [
                &mut c.ca_file,
                &mut c.client_cert_file,
                &mut c.client_key_file,
            ]
            .into_iter()
            .flatten()
            {
                if file.is_relative() {
                    *file = base.join(&*file);
                }
            }
        }
        Ok(config)
    }

    /// Parses and validates config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: parse_message(text, &e),
        })?;
        // Serde keeps no positions once the values are typed; the span tree of the same text
        // lets a range or combination error point at the line an admin has to edit.
        let written = Written::parse(text);
        config
            .check(written.as_ref())
            .map_err(|message| ConfigError::Invalid {
                path: path.to_owned(),
                message,
            })?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges and combinations that would leave the server broken.
    /// Messages name the key; [`Config::parse`] adds the line it was written on.
    pub fn validate(&self) -> Result<(), String> {
        self.check(None)
    }

    fn check(&self, file: Option<&Written<'_>>) -> Result<(), String> {
        let at = |key: &str| match file {
            Some(file) => file.describe(key),
            None => String::new(),
        };
        let d = format_duration;
        if self.data_dir.as_os_str().is_empty() {
            return Err(format!(
                "`data_dir`{} is empty: set it to the directory for recordings, e.g. \"/var/lib/vigil\"",
                at("data_dir")
            ));
        }
        if let Some(p) = self.cameras.rotate_passwords_every
            && p < Duration::from_secs(24 * 3600)
        {
            return Err(format!(
                "`cameras.rotate_passwords_every`{} is {}: rotate at most once a day (e.g. \"180d\"), or \"off\"",
                at("cameras.rotate_passwords_every"),
                d(p)
            ));
        }
        if !(1..=MAX_ROTATION_CONCURRENCY).contains(&self.cameras.rotation_concurrency) {
            return Err(format!(
                "`cameras.rotation_concurrency`{} is {}: give 1 to {MAX_ROTATION_CONCURRENCY} cameras rotated at once (default 4)",
                at("cameras.rotation_concurrency"),
                self.cameras.rotation_concurrency
            ));
        }
        let seconds = self.storage.segment_seconds;
        if !(2..=3600).contains(&seconds) {
            return Err(format!(
                "`storage.segment_seconds` = {seconds}{} is too {}: use 2..=3600 (default 60)",
                at("storage.segment_seconds"),
                if seconds < 2 { "small" } else { "large" },
            ));
        }
        for (key, value, default) in [
            (
                "ingest.inactivity_timeout",
                self.ingest.inactivity_timeout,
                "10s",
            ),
            ("ingest.max_backoff", self.ingest.max_backoff, "30s"),
        ] {
            if value < Duration::from_secs(1) {
                return Err(format!(
                    "`{key}` = \"{}\"{} is too short: use at least 1s (default {default})",
                    d(value),
                    at(key)
                ));
            }
        }
        self.check_management_reachable(file)?;
        let a = &self.access;
        if a.session_idle_timeout < Duration::from_secs(60) {
            return Err(format!(
                "`access.session_idle_timeout` = \"{}\"{} is too short: use at least 1m (default 15m)",
                d(a.session_idle_timeout),
                at("access.session_idle_timeout")
            ));
        }
        if a.session_absolute_lifetime < a.session_idle_timeout {
            return Err(format!(
                "`access.session_absolute_lifetime` = \"{}\"{} is shorter than \
                 `access.session_idle_timeout` = \"{}\"{}: make the lifetime at least as long \
                 as the idle timeout (defaults 12h and 15m)",
                d(a.session_absolute_lifetime),
                at("access.session_absolute_lifetime"),
                d(a.session_idle_timeout),
                at("access.session_idle_timeout"),
            ));
        }
        if a.ids.notification_threshold < 5 {
            return Err(format!(
                "`access.ids.notification_threshold` = {}{} is too low: use at least 5 (default 10)",
                a.ids.notification_threshold,
                at("access.ids.notification_threshold")
            ));
        }
        if a.ids.timeout < Duration::from_secs(1) {
            return Err(format!(
                "`access.ids.timeout` = \"{}\"{} is too short: use at least 1s (default 1h)",
                d(a.ids.timeout),
                at("access.ids.timeout")
            ));
        }
        if let Some(w) = &a.webhook
            && w.url.trim().is_empty()
        {
            return Err(format!(
                "`access.webhook.url`{} is empty: set an https:// URL or remove [access.webhook]",
                at("access.webhook.url")
            ));
        }
        self.check_siem(file)?;
        rules::check_rules(&self.rules, &at)?;
        smtp::check(&self.smtp, &self.rules, &at)?;
        database::check(&self.database, &at)?;
        archive::check(&self.archive, &at)?;
        camera_ports::camera_map(&self.events.camera_ports, &at)?;
        // The metrics listener speaks plain HTTP without authentication, which is acceptable
        // only on loopback (docs/security-model.md, docs/metrics.md).
        if !self.metrics.bind.ip().is_loopback() {
            return Err(format!(
                "`metrics.bind` = \"{}\"{} is not a loopback address: the metrics listener is \
                 unauthenticated plaintext and must stay local, e.g. \"127.0.0.1:{}\" or \
                 \"[::1]:{}\"; scrape it from this host or through an authenticated tunnel",
                self.metrics.bind,
                at("metrics.bind"),
                self.metrics.bind.port(),
                self.metrics.bind.port()
            ));
        }
        // The inter-server APIs' addresses stay reserved while their roles are on, so a
        // later version can open them without moving another listener.
        let mut sockets = self.served_listeners();
        let after_management = sockets
            .iter()
            .rposition(|s| s.role.starts_with("management"))
            .map_or(0, |i| i + 1);
        let reserved = |role, setting: &'static str, l: &Listener| ServedListener {
            role,
            setting,
            key: format!("{setting}.bind"),
            addr: l.bind,
            label: l.label.clone(),
            proto: "tcp",
        };
        let mut next = after_management;
        let served = |setting: &str| sockets.iter().any(|s| s.setting == setting);
        let inter_served = served("management.inter_server");
        let api_served = served("recording.api");
        if self.management.enabled && !inter_served {
            let inter = &self.management.inter_server;
            let r = reserved("management inter-server", "management.inter_server", inter);
            sockets.insert(next, r);
            next += 1;
        }
        if self.recording.enabled && !api_served {
            let r = reserved("recording api", "recording.api", &self.recording.api);
            sockets.insert(next, r);
        }
        for (i, s) in sockets.iter().enumerate() {
            if s.addr.port() == 0 {
                return Err(format!(
                    "`{}` = \"{}\"{} uses port 0, which the system replaces by a random port: \
                     choose a fixed port that clients and firewall rules can name",
                    s.key,
                    s.addr,
                    at(&s.key)
                ));
            }
            let Some(first) = sockets[..i].iter().find(|o| o.conflicts_with(s)) else {
                continue;
            };
            let why = if first.addr == s.addr {
                String::new()
            } else {
                format!(
                    " (a wildcard address takes {}/{} on every interface)",
                    s.addr.port(),
                    s.proto
                )
            };
            return Err(format!(
                "`{}` = \"{}\"{} is also used by another listener, `{}` = \"{}\"{}{why}: \
                 give each listener its own port",
                s.key,
                s.addr,
                at(&s.key),
                first.key,
                first.addr,
                at(&first.key),
            ));
        }
        self.check_events(file)
    }

    /// `[siem]`: ranges, names, and collectors that can be reached (files are checked when
    /// forwarding starts).
    fn check_siem(&self, file: Option<&Written<'_>>) -> Result<(), String> {
        let at = |key: &str| match file {
            Some(file) => file.describe(key),
            None => String::new(),
        };
        let s = &self.siem;
        if s.facility_code().is_none() {
            return Err(format!(
                "`siem.facility` = {:?}{} is not a syslog facility: use one of {} (default local4)",
                s.facility,
                at("siem.facility"),
                SYSLOG_FACILITIES.join(", ")
            ));
        }
        if s.min_severity_code().is_none() {
            return Err(format!(
                "`siem.min_severity` = {:?}{} is not a severity: use one of {} (default warning)",
                s.min_severity,
                at("siem.min_severity"),
                SYSLOG_SEVERITIES.join(", ")
            ));
        }
        if s.enterprise_number == 0 {
            return Err(format!(
                "`siem.enterprise_number` = 0{} is not a private enterprise number: use your \
                 organisation's IANA number, or leave it out for 32473 (the documentation number)",
                at("siem.enterprise_number")
            ));
        }
        if s.spool_max_bytes < 1024 * 1024 {
            return Err(format!(
                "`siem.spool_max_bytes` = {}{} is too small: use at least 1048576 (1 MiB; default 268435456)",
                s.spool_max_bytes,
                at("siem.spool_max_bytes")
            ));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&s.confirm_after) {
            return Err(format!(
                "`siem.confirm_after` = \"{}\"{} is out of range: use 100ms..=60s (default 2s)",
                format_duration(s.confirm_after),
                at("siem.confirm_after")
            ));
        }
        if s.max_backoff < Duration::from_secs(1) {
            return Err(format!(
                "`siem.max_backoff` = \"{}\"{} is too short: use at least 1s (default 30s)",
                format_duration(s.max_backoff),
                at("siem.max_backoff")
            ));
        }
        if !(2048..=1024 * 1024).contains(&s.max_message_bytes) {
            return Err(format!(
                "`siem.max_message_bytes` = {}{} is out of range: use 2048..=1048576 (default 8192)",
                s.max_message_bytes,
                at("siem.max_message_bytes")
            ));
        }
        if let Some(t) = &s.target {
            if !s.collectors.is_empty() {
                return Err(format!(
                    "`siem.target`{} and `siem.collectors`{} are both set: move the target into \
                     a [[siem.collectors]] table (target = {t:?}) and remove `siem.target`",
                    at("siem.target"),
                    at("siem.collectors")
                ));
            }
            if let Err(why) = split_target(t) {
                return Err(format!(
                    "`siem.target` = {t:?}{} {why}: write host:port, e.g. \"siem.example.net:6514\"",
                    at("siem.target")
                ));
            }
        }
        let mut names: Vec<(String, String)> = Vec::new();
        for (i, c) in s.collectors.iter().enumerate() {
            let key = |k: &str| format!("siem.collectors[{i}].{k}");
            if let Err(why) = split_target(&c.target) {
                return Err(format!(
                    "`{}` = {:?}{} {why}: write host:port, e.g. \"siem.example.net:6514\"",
                    key("target"),
                    c.target,
                    at(&key("target"))
                ));
            }
            if let Some(n) = &c.server_name
                && (n.trim().is_empty() || n.contains(char::is_whitespace))
            {
                return Err(format!(
                    "`{}` = {n:?}{} is not a host name: write the name in the collector's \
                     certificate, or leave it out to use the host of `target`",
                    key("server_name"),
                    at(&key("server_name"))
                ));
            }
            match (&c.client_cert_file, &c.client_key_file) {
                (Some(_), None) => {
                    return Err(format!(
                        "`{}`{} is set without `{}`: give the client certificate's private key \
                         file too (PEM, mode 0600), or remove both",
                        key("client_cert_file"),
                        at(&key("client_cert_file")),
                        key("client_key_file")
                    ));
                }
                (None, Some(_)) => {
                    return Err(format!(
                        "`{}`{} is set without `{}`: give the client certificate file too, or \
                         remove both",
                        key("client_key_file"),
                        at(&key("client_key_file")),
                        key("client_cert_file")
                    ));
                }
                _ => {}
            }
            let name = c.name.clone().unwrap_or_else(|| c.target.clone());
            let name_key = if c.name.is_some() {
                key("name")
            } else {
                key("target")
            };
            if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err(format!(
                    "`{name_key}` = {name:?}{} is not a usable collector name: use 1 to 128 \
                     printable characters",
                    at(&name_key)
                ));
            }
            if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
                return Err(format!(
                    "`{name_key}`{} names the collector {name:?}, as `{first}`{} does: give \
                     each collector its own `name` (it keys the collector's delivery position)",
                    at(&name_key),
                    at(first)
                ));
            }
            names.push((name, name_key));
        }
        Ok(())
    }

    /// `[events]`: the allow-list parses, a plaintext listener has sources it may take, and
    /// the limits are in range.
    fn check_events(&self, file: Option<&Written<'_>>) -> Result<(), String> {
        let at = |key: &str| match file {
            Some(file) => file.describe(key),
            None => String::new(),
        };
        let e = &self.events;
        for (i, s) in e.allowed_sources.iter().enumerate() {
            if let Err(why) = parse_source(s) {
                let key = format!("events.allowed_sources[{i}]");
                return Err(format!("`{key}` = {s:?}{} {why}", at(&key)));
            }
        }
        if e.allowed_sources.is_empty() {
            for (key, l) in [
                ("events.udp", &e.udp),
                ("events.tcp_plain", &e.tcp_plain),
                ("events.syslog_udp", &e.syslog_udp),
                ("events.syslog_tcp", &e.syslog_tcp),
            ] {
                if l.is_some() && e.enabled {
                    return Err(format!(
                        "`{key}`{} is a plaintext listener, which takes events only from \
                         `events.allowed_sources`, and that list is empty: add the senders' \
                         addresses or networks (e.g. [\"10.1.2.0/24\"]), or remove `{key}`",
                        at(key)
                    ));
                }
            }
        }
        for (i, w) in e.webhooks.iter().enumerate() {
            let key = format!("events.webhooks[{i}].name");
            let n = &w.name;
            if n.is_empty()
                || n.len() > 64
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(format!(
                    "`{key}` = {n:?}{} is not a usable sender name: use 1 to 64 letters, \
                     digits, '_', '-' and '.' (it appears in the URL)",
                    at(&key)
                ));
            }
            if e.webhooks[..i].iter().any(|o| o.name == *n) {
                return Err(format!(
                    "`{key}` = {n:?}{} names a second sender {n:?}: give each its own name",
                    at(&key)
                ));
            }
            if w.secret_file.as_os_str().is_empty() {
                let key = format!("events.webhooks[{i}].secret_file");
                return Err(format!(
                    "`{key}`{} is empty: name the file holding the shared secret (mode 0600)",
                    at(&key)
                ));
            }
        }
        let l = &e.limits;
        let range = |key: &str, value: u64, lo: u64, hi: u64, default: u64| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                let k = format!("events.limits.{key}");
                Err(format!(
                    "`{k}` = {value}{} is out of range: use {lo}..={hi} (default {default})",
                    at(&k)
                ))
            }
        };
        range(
            "max_connections_per_source",
            l.max_connections_per_source.into(),
            1,
            10_000,
            8,
        )?;
        range("max_connections", l.max_connections.into(), 1, 100_000, 512)?;
        range(
            "max_message_bytes",
            l.max_message_bytes as u64,
            2048,
            1 << 20,
            8192,
        )?;
        range(
            "rate_per_source",
            l.rate_per_source.into(),
            1,
            1_000_000,
            100,
        )?;
        range("burst", l.burst.into(), 1, 10_000_000, 200)?;
        for (key, value, lo, hi, default) in [
            ("handshake_timeout", l.handshake_timeout, 1, 120, "10s"),
            ("idle_timeout", l.idle_timeout, 5, 86_400, "5m"),
            ("report_interval", l.report_interval, 1, 86_400, "1m"),
        ] {
            if !(Duration::from_secs(lo)..=Duration::from_secs(hi)).contains(&value) {
                let k = format!("events.limits.{key}");
                return Err(format!(
                    "`{k}` = \"{}\"{} is out of range: use {}..={} (default {default})",
                    format_duration(value),
                    at(&k),
                    format_duration(Duration::from_secs(lo)),
                    format_duration(Duration::from_secs(hi)),
                ));
            }
        }
        Ok(())
    }

    /// An enabled management role needs somewhere to listen. The built-in `0.0.0.0:8443`
    /// listener belongs to the built-in `[management]` table: a file without that table (an
    /// empty config, or one that only sets `data_dir`) gets it, while a written
    /// `[management]` table lists its listeners itself, an absent `https` key meaning none.
    /// Otherwise an admin who wrote `[management]` with no listener would get a port opened
    /// on every interface that the file never mentions; `vigil init` and the settings API
    /// always write the `https` key, so their files are unaffected.
    fn check_management_reachable(&self, file: Option<&Written<'_>>) -> Result<(), String> {
        let m = &self.management;
        if !m.enabled || !m.https.is_empty() || !m.http.is_empty() {
            return Ok(());
        }
        let what = match file {
            Some(file) => match (file.line("management.https"), file.line("management")) {
                (Some(line), _) => format!(" (`management.https` on line {line} is empty)"),
                (None, Some(line)) => format!(
                    " (the `management` table on line {line} lists no `https` listener; the \
                     built-in 0.0.0.0:8443 applies only to a file without a `management` table)"
                ),
                (None, None) => String::new(),
            },
            None => String::new(),
        };
        Err(format!(
            "management is enabled but has neither an HTTPS nor an HTTP listener{what}, so \
             nothing could reach it: add a [[management.https]] table with a bind such as \
             \"0.0.0.0:8443\", or set management.enabled = false"
        ))
    }

    /// Every socket this configuration listens on, as (role, address, "tcp"|"udp").
    pub fn listeners(&self) -> Vec<(&'static str, SocketAddr, &'static str)> {
        self.served_listeners()
            .into_iter()
            .map(|s| (s.role, s.addr, s.proto))
            .collect()
    }

    /// The sockets `vigil serve` opens for this configuration, with the settings that make
    /// each one. The one statement of which role listens when: the server binds from it, and
    /// the port manifest, firewall rules and audit are drawn from it (docs/network-hardening.md),
    /// so they cannot disagree.
    pub fn served_listeners(&self) -> Vec<ServedListener> {
        let mut out = Vec::new();
        let mut push = |role, setting, key: String, l: &Listener, proto| {
            out.push(ServedListener {
                role,
                setting,
                key,
                addr: l.bind,
                label: l.label.clone(),
                proto,
            })
        };
        if self.runs_management() {
            for (i, l) in self.management.https.iter().enumerate() {
                let key = format!("management.https[{i}].bind");
                push("management https", "management.https", key, l, "tcp");
            }
            for (i, l) in self.management.http.iter().enumerate() {
                let key = format!("management.http[{i}].bind");
                push("management http", "management.http", key, l, "tcp");
            }
            if self.role == Role::Management {
                let l = &self.management.inter_server;
                let key = "management.inter_server.bind".to_owned();
                let setting = "management.inter_server";
                push("management inter-server", setting, key, l, "tcp");
            }
        }
        if self.runs_recording() && self.role == Role::Recording {
            let key = "recording.api.bind".to_owned();
            push(
                "recording api",
                "recording.api",
                key,
                &self.recording.api,
                "tcp",
            );
        }
        // The events inputs and the metrics listener belong to the management process.
        let events = if self.role == Role::Recording {
            Vec::new()
        } else {
            self.events.inputs()
        };
        for input in events {
            let key = format!("{}.bind", input.setting);
            push(input.role, input.setting, key, input.listener, input.proto);
        }
        if self.metrics.enabled && self.role != Role::Recording {
            let l = Listener {
                bind: self.metrics.bind,
                label: String::new(),
            };
            push("metrics", "metrics.bind", "metrics.bind".into(), &l, "tcp");
        }
        out
    }

    /// Whether `vigil serve` runs the management role (API, web client, events): enabled and
    /// not left out by [`Config::role`].
    pub fn runs_management(&self) -> bool {
        self.management.enabled && self.role != Role::Recording
    }

    /// Whether `vigil serve` records cameras: enabled and not left out by [`Config::role`].
    pub fn runs_recording(&self) -> bool {
        self.recording.enabled && self.role != Role::Management
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
# Roles this server runs: "all" (one box), "management" or "recording" (docs/cluster.md).
# role = "all"

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

[cameras]
# Every camera added by ONVIF gets a fresh random password this often (set over the
# verified HTTPS link, proven before it is kept; docs/cameras-onvif.md). "off" disables it;
# `vigil camera rotate-passwords` rotates at any time.
rotate_passwords_every = "{rotate_every}"
# Cameras rotated at the same time at most.
rotation_concurrency = {rotation_concurrency}

[management]
enabled = {mgmt_enabled}
# Host names and addresses in the server certificate: the names clients use to reach this
# server (`vigil init --hostname`), then localhost, 127.0.0.1 and ::1. A change is applied
# to the generated certificate at the next start.
hostnames = {hostnames:?}
# Inter-server API (mutual TLS) recording servers on other hosts join and report to.
# Opened by the management role only (`role = "management"`, docs/cluster.md).
inter_server = {{ bind = "{inter}", label = "inter-server" }}
# HTTPS listeners; add a second one for an Internet-facing port.
{https}
# Plaintext HTTP is off unless listed here. It only redirects to HTTPS; credential-bearing
# endpoints answer 403 over HTTP.
{http}

[recording]
enabled = {rec_enabled}
# Inter-server API (mutual TLS, installation-CA certificates only) for the management
# server. Opened by the recording role only (`role = "recording"`, docs/cluster.md).
api = {{ bind = "{rec_bind}" }}

[events]
# Event inputs (docs/events-in.md): generic events over TLS, syslog over TLS (RFC 5425).
# Off until enabled: set `enabled = true` and list the senders in allowed_sources (or give
# them client certificates from the Vigil CA); `vigil ports` then lists the listeners.
enabled = {ev_enabled}
tcp = {{ bind = "{ev_tcp}" }}
syslog_tls = {{ bind = "{ev_syslog}" }}
# Plaintext listeners are off unless enabled here, and take only allowed_sources:
{ev_plain}# Senders allowed without a client certificate from the Vigil CA, e.g. ["10.1.2.0/24"].
allowed_sources = {allowed:?}
# true: every TLS sender needs a client certificate from the Vigil CA, allow-listed or not.
require_client_cert = {ev_require_cert}

[events.limits]
# Per sender address: open connections, events per second and burst; a sender over its
# limits is slowed down (TCP) or its datagrams dropped (UDP), and reported once per interval.
max_connections_per_source = {ev_conn_src}
max_connections = {ev_conn}
max_message_bytes = {ev_max_msg}
rate_per_source = {ev_rate}
burst = {ev_burst}
handshake_timeout = "{ev_handshake}"
idle_timeout = "{ev_idle}"
report_interval = "{ev_report}"
{ev_webhooks}{ev_camera_ports}
[siem]
# Events forwarded to SIEM collectors as RFC 5424 over TLS (RFC 5425), through an on-disk
# spool (docs/siem.md). Off until a collector is listed. Security and alarm events are always
# forwarded, others from min_severity on.
cef = {cef}
facility = "{siem_facility}"
enterprise_number = {siem_pen}
min_severity = "{siem_min_severity}"
spool_max_bytes = {siem_spool}
confirm_after = "{siem_confirm}"
max_backoff = "{siem_backoff}"
max_message_bytes = {siem_max_message}
{siem_collectors}
{smtp}
{archive}
{database}
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
{webhook}
{rules}"#,
            data_dir = toml::Value::String(self.data_dir.display().to_string()),
            segment_seconds = self.storage.segment_seconds,
            min_free_bytes = self.storage.min_free_bytes,
            inactivity = d(self.ingest.inactivity_timeout),
            backoff = d(self.ingest.max_backoff),
            mgmt_enabled = self.management.enabled,
            rotate_every = self
                .cameras
                .rotate_passwords_every
                .map_or_else(|| "off".to_owned(), d),
            rotation_concurrency = self.cameras.rotation_concurrency,
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
            ev_require_cert = self.events.require_client_cert,
            ev_plain = [
                ("udp", &self.events.udp, "0.0.0.0:1234"),
                ("tcp_plain", &self.events.tcp_plain, "0.0.0.0:1235"),
                ("syslog_udp", &self.events.syslog_udp, "0.0.0.0:514"),
                ("syslog_tcp", &self.events.syslog_tcp, "0.0.0.0:514"),
            ]
            .iter()
            .map(|(key, l, example)| match l {
                Some(l) => format!("{key} = {{ bind = \"{}\" }}\n", l.bind),
                None => format!("# {key} = {{ bind = \"{example}\" }}\n"),
            })
            .collect::<String>(),
            ev_conn_src = self.events.limits.max_connections_per_source,
            ev_conn = self.events.limits.max_connections,
            ev_max_msg = self.events.limits.max_message_bytes,
            ev_rate = self.events.limits.rate_per_source,
            ev_burst = self.events.limits.burst,
            ev_handshake = d(self.events.limits.handshake_timeout),
            ev_idle = d(self.events.limits.idle_timeout),
            ev_report = d(self.events.limits.report_interval),
            ev_webhooks = if self.events.webhooks.is_empty() {
                "# Senders of HMAC-signed analytics events (docs/events-in.md):\n\
                 # [[events.webhooks]]\n# name = \"analytics-1\"\n\
                 # secret_file = \"/etc/vigil/analytics-1.secret\"   # mode 0600\n\
                 # cameras = [\"lobby\"]                              # default: every camera\n"
                    .to_owned()
            } else {
                self.events
                    .webhooks
                    .iter()
                    .map(|w| {
                        format!(
                            "\n[[events.webhooks]]\n{}",
                            toml::to_string(w).expect("webhook sender serializes")
                        )
                    })
                    .collect::<String>()
            },
            ev_camera_ports = camera_ports::camera_ports_toml(&self.events.camera_ports),
            cef = self.siem.cef,
            siem_facility = self.siem.facility,
            siem_pen = self.siem.enterprise_number,
            siem_min_severity = self.siem.min_severity,
            siem_spool = self.siem.spool_max_bytes,
            siem_confirm = d(self.siem.confirm_after),
            siem_backoff = d(self.siem.max_backoff),
            siem_max_message = self.siem.max_message_bytes,
            siem_collectors = siem_collector_tables(&self.siem),
            smtp = smtp::smtp_table(&self.smtp),
            archive = archive::archive_table(&self.archive),
            database = database::database_table(&self.database),
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
            rules = rules::rules_toml(&self.rules),
        )
    }
}

/// `[[siem.collectors]]` tables (and the `target` shorthand), or a commented example.
fn siem_collector_tables(siem: &SiemConfig) -> String {
    let mut out = String::new();
    if let Some(t) = &siem.target {
        out.push_str(&format!("target = {}\n", toml::Value::String(t.clone())));
    }
    if siem.collectors.is_empty() && siem.target.is_none() {
        out.push_str(
            "# [[siem.collectors]]\n# name = \"soc\"\n# target = \"siem.example.net:6514\"\n\
             # ca_file = \"/etc/vigil/siem-ca.pem\"            # default: the system's CA store\n\
             # client_cert_file = \"/etc/vigil/siem-client.pem\"  # if the collector authenticates Vigil\n\
             # client_key_file = \"/etc/vigil/siem-client.key\"   # mode 0600\n\
             # format = \"rfc5424\"                             # or \"cef\"\n",
        );
    }
    for c in &siem.collectors {
        out.push_str("\n[[siem.collectors]]\n");
        out.push_str(&toml::to_string(c).expect("collector settings serialize"));
    }
    out
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

/// A socket `vigil serve` opens ([`Config::served_listeners`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedListener {
    /// What listens, e.g. `management https`, `events syslog`.
    pub role: &'static str,
    /// The setting it comes from, e.g. `management.https`, `events.syslog_tls`,
    /// `metrics.bind`.
    pub setting: &'static str,
    /// The key of its address in the file, e.g. `management.https[0].bind`, for messages.
    pub key: String,
    pub addr: SocketAddr,
    pub label: String,
    /// `tcp` or `udp`.
    pub proto: &'static str,
}

/// One listener of the events role ([`EventsConfig::inputs`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventInput<'a> {
    pub role: &'static str,
    /// `events.tcp`, `events.udp`, `events.tcp_plain`, `events.syslog_tls`,
    /// `events.syslog_udp` or `events.syslog_tcp`.
    pub setting: &'static str,
    pub listener: &'a Listener,
    pub proto: &'static str,
}

impl EventsConfig {
    /// The listeners of the events role: none while it is off, else the TLS inputs and the
    /// plaintext ones an admin configured. `vigil serve` binds exactly these.
    pub fn inputs(&self) -> Vec<EventInput<'_>> {
        if !self.enabled {
            return Vec::new();
        }
        let input = |role, setting, listener, proto| EventInput {
            role,
            setting,
            listener,
            proto,
        };
        let mut out = vec![input("events tcp", "events.tcp", &self.tcp, "tcp")];
        if let Some(l) = &self.udp {
            out.push(input("events udp", "events.udp", l, "udp"));
        }
        if let Some(l) = &self.tcp_plain {
            out.push(input("events tcp plaintext", "events.tcp_plain", l, "tcp"));
        }
        out.push(input(
            "events syslog",
            "events.syslog_tls",
            &self.syslog_tls,
            "tcp",
        ));
        if let Some(l) = &self.syslog_udp {
            out.push(input("events syslog udp", "events.syslog_udp", l, "udp"));
        }
        if let Some(l) = &self.syslog_tcp {
            out.push(input(
                "events syslog tcp plaintext",
                "events.syslog_tcp",
                l,
                "tcp",
            ));
        }
        out
    }
}

impl ServedListener {
    /// Whether both cannot be bound at once. A wildcard address of one family takes the port on
    /// every address of that family, so binding a specific address as well fails at start-up.
    /// IPv4 against IPv6 is left alone: whether `[::]` also covers IPv4 is a system setting.
    fn conflicts_with(&self, other: &ServedListener) -> bool {
        let (a, b) = (self.addr.ip(), other.addr.ip());
        self.proto == other.proto
            && self.addr.port() == other.addr.port()
            && (a == b
                || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified())))
    }
}

/// The span tree of a config file, to find the line a key was written on.
struct Written<'a> {
    text: &'a str,
    root: toml::de::DeTable<'a>,
}

/// How far a key path was found in the file: the deepest written key or array element.
struct Found<'k> {
    /// The written part of the path, e.g. `access` for `access.webhook.url` when the file
    /// only has `[access]`.
    prefix: &'k str,
    /// Byte offset of that part's key (or array element) in the text.
    offset: usize,
    complete: bool,
}

impl<'a> Written<'a> {
    /// None when the text is not TOML; callers parse it with serde first, so that does not
    /// happen in practice, and messages then simply carry no line.
    fn parse(text: &'a str) -> Option<Self> {
        let root = toml::de::DeTable::parse(text).ok()?.into_inner();
        Some(Self { text, root })
    }

    /// Follows a key path such as `management.https[1].bind` as far as the file has it.
    fn find<'k>(&self, path: &'k str) -> Option<Found<'k>> {
        let mut found: Option<Found<'k>> = None;
        let mut table = Some(&self.root);
        let mut start = 0;
        for part in path.split('.') {
            let (name, index) = match part.split_once('[') {
                Some((name, rest)) => (name, rest.strip_suffix(']').and_then(|i| i.parse().ok())),
                None => (part, None),
            };
            let Some((key, mut value)) = table.and_then(|t| t.get_key_value(name)) else {
                break;
            };
            found = Some(Found {
                prefix: &path[..start + name.len()],
                offset: key.span().start,
                complete: false,
            });
            if let Some(i) = index {
                let array = value.get_ref().as_array();
                let Some(element) = array.and_then(|a| a.get::<usize>(i)) else {
                    break;
                };
                found = Some(Found {
                    prefix: &path[..start + part.len()],
                    offset: element.span().start,
                    complete: false,
                });
                value = element;
            }
            table = value.get_ref().as_table();
            start += part.len() + 1;
        }
        found.map(|f| Found {
            complete: f.prefix.len() == path.len(),
            ..f
        })
    }

    /// The line `path` was written on, if it was.
    fn line(&self, path: &str) -> Option<usize> {
        self.find(path)
            .filter(|f| f.complete)
            .map(|f| self.line_at(f.offset))
    }

    /// " on line N", or where the default came from, to follow a key and value in a message.
    fn describe(&self, path: &str) -> String {
        match self.find(path) {
            Some(f) if f.complete => format!(" on line {}", self.line_at(f.offset)),
            Some(f) => format!(
                " (not set under `{}` on line {}, so the default applies)",
                f.prefix,
                self.line_at(f.offset)
            ),
            None => " (not in the file, so the default applies)".into(),
        }
    }

    /// The key path whose key or value encloses `offset` most tightly, e.g.
    /// `management.https[0].bind`.
    fn key_at(&self, offset: usize) -> Option<String> {
        use toml::de::{DeTable, DeValue};
        type Span = std::ops::Range<usize>;
        // Serde stops at the first unknown key, and known keys nest at most four levels, so a
        // deeper search cannot find more; the bound keeps hostile input (`a.a.a...` a thousand
        // levels deep) from costing quadratic path building.
        const MAX_DEPTH: usize = 8;
        // (path, span length) of the tightest match so far; a tie goes to the deeper entry,
        // visited later, because a table's header is also the span of its array element.
        fn visit_value(
            path: String,
            span: Span,
            value: &DeValue<'_>,
            offset: usize,
            depth: usize,
            best: &mut Option<(String, usize)>,
        ) {
            if span.contains(&offset) && best.as_ref().is_none_or(|(_, len)| span.len() <= *len) {
                *best = Some((path.clone(), span.len()));
            }
            if depth >= MAX_DEPTH {
                return;
            }
            match value {
                DeValue::Table(t) => visit_table(&path, t, offset, depth + 1, best),
                DeValue::Array(a) => {
                    for (i, e) in a.iter().enumerate() {
                        let path = format!("{path}[{i}]");
                        visit_value(path, e.span(), e.get_ref(), offset, depth + 1, best);
                    }
                }
                _ => {}
            }
        }
        fn visit_table(
            prefix: &str,
            t: &DeTable<'_>,
            offset: usize,
            depth: usize,
            best: &mut Option<(String, usize)>,
        ) {
            for (k, v) in t.iter() {
                let path = if prefix.is_empty() {
                    k.get_ref().to_string()
                } else {
                    format!("{prefix}.{}", k.get_ref())
                };
                let key = k.span();
                if key.contains(&offset) && best.as_ref().is_none_or(|(_, len)| key.len() <= *len) {
                    *best = Some((path.clone(), key.len()));
                }
                visit_value(path, v.span(), v.get_ref(), offset, depth, best);
            }
        }
        let mut best = None;
        visit_table("", &self.root, offset, 0, &mut best);
        best.map(|(path, _)| path)
    }

    fn line_at(&self, offset: usize) -> usize {
        let before = &self.text.as_bytes()[..offset.min(self.text.len())];
        before.iter().filter(|&&b| b == b'\n').count() + 1
    }
}

/// A serde error as "`key` on line N: what is wrong", like the validation messages. toml's
/// own text gives line and column but not the key path (only the line's text), which is
/// ambiguous for keys such as `bind` or `timeout` that several tables have. Syntax errors and
/// missing keys have no key to name and keep toml's text.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let located = e.span().filter(|s| !s.is_empty()).and_then(|span| {
        let file = Written::parse(text)?;
        let key = file.key_at(span.start)?;
        Some(format!(
            "`{key}` on line {}: {}",
            file.line_at(span.start),
            e.message().trim_end()
        ))
    });
    located.unwrap_or_else(|| e.to_string())
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
pub(crate) mod humantime_serde_compat {
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
    fn the_role_decides_which_inter_server_api_is_served() {
        let settings = |c: &Config| -> Vec<&'static str> {
            c.served_listeners().iter().map(|l| l.setting).collect()
        };
        let text = "data_dir = \"d\"\n[events]\nenabled = true\n";
        let mut c = Config::parse(text, Path::new("t.toml")).unwrap();
        assert_eq!(c.role, Role::All);
        let all = settings(&c);
        assert!(!all.contains(&"management.inter_server") && !all.contains(&"recording.api"));
        assert!(c.runs_management() && c.runs_recording());

        c.role = Role::Management;
        let m = settings(&c);
        assert!(m.contains(&"management.inter_server") && m.contains(&"management.https"));
        assert!(
            m.contains(&"events.tcp") && !m.contains(&"recording.api"),
            "{m:?}"
        );
        assert!(c.runs_management() && !c.runs_recording());

        c.role = Role::Recording;
        assert_eq!(settings(&c), ["recording.api"]);
        assert!(!c.runs_management() && c.runs_recording());

        let parsed = Config::parse(
            "data_dir = \"d\"\nrole = \"recording\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(parsed.role, Role::Recording);
        let err = Config::parse("data_dir = \"d\"\nrole = \"boss\"\n", Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("role"), "{err}");
        assert_eq!("management".parse::<Role>(), Ok(Role::Management));
        assert!(
            "x".parse::<Role>()
                .unwrap_err()
                .contains("all, management or recording")
        );
        // The written file names the role only when it is not the default.
        assert!(
            !toml::to_string(&Config::with_data_dir("d"))
                .unwrap()
                .contains("role")
        );
    }

    #[test]
    fn password_rotation_has_a_period_or_is_off() {
        let base = "data_dir = \"/v\"\n";
        let c = Config::parse(base, Path::new("vigil.toml")).unwrap();
        assert_eq!(
            c.cameras.rotate_passwords_every,
            Some(DEFAULT_ROTATION_PERIOD)
        );
        assert_eq!(c.cameras.rotation_concurrency, 4);
        let off = format!("{base}[cameras]\nrotate_passwords_every = \"off\"\n");
        let c = Config::parse(&off, Path::new("vigil.toml")).unwrap();
        assert_eq!(c.cameras.rotate_passwords_every, None);
        let text = c.to_commented_toml();
        assert!(text.contains("rotate_passwords_every = \"off\""), "{text}");
        assert_eq!(Config::parse(&text, Path::new("vigil.toml")).unwrap(), c);
        let days = format!("{base}[cameras]\nrotate_passwords_every = \"90d\"\n");
        let c = Config::parse(&days, Path::new("vigil.toml")).unwrap();
        assert_eq!(
            c.cameras.rotate_passwords_every,
            Some(Duration::from_secs(90 * 86400))
        );
        for (bad, says) in [
            ("rotate_passwords_every = \"often\"", "off"),
            ("rotate_passwords_every = \"1h\"", "once a day"),
            ("rotation_concurrency = 0", "1 to 64"),
            ("rotation_concurrency = 1000", "1 to 64"),
        ] {
            let e = Config::parse(
                &format!("{base}[cameras]\n{bad}\n"),
                Path::new("vigil.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

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
        assert!(
            c.events.tcp_plain.is_none()
                && c.events.syslog_udp.is_none()
                && c.events.syslog_tcp.is_none(),
            "plaintext event listeners must be off by default"
        );
        assert!(c.events.allowed_sources.is_empty());
        assert!(c.metrics.bind.ip().is_loopback());
    }

    #[test]
    fn event_inputs_are_validated_with_lines() {
        let parse = |text: &str| Config::parse(text, Path::new("v.toml"));
        let err = parse(
            "data_dir = \"d\"\n[events]\nallowed_sources = [\"10.0.0.0/8\", \"10.1.2.3/24\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("events.allowed_sources[1]")
                && err.contains("line 3")
                && err.contains("10.1.2.0/24"),
            "{err}"
        );
        let err = parse("data_dir = \"d\"\n[events]\nallowed_sources = [\"lobby\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an address or CIDR"), "{err}");
        // A plaintext listener with nobody allowed to use it is a mistake, said as such.
        let err = parse("data_dir = \"d\"\n[events]\nenabled = true\nsyslog_udp = { bind = \"127.0.0.1:5514\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`events.syslog_udp` on line 4") && err.contains("allowed_sources"),
            "{err}"
        );
        let err = parse("data_dir = \"d\"\n[events.limits]\nrate_per_source = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("events.limits.rate_per_source") && err.contains("line 3"),
            "{err}"
        );
        let err = parse("data_dir = \"d\"\n[events.limits]\nhandshake_timeout = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("events.limits.handshake_timeout"), "{err}");
        // Plaintext syslog on UDP and TCP 514 side by side is fine (other protocols).
        let c = parse(
            "data_dir = \"d\"\n[events]\nenabled = true\nallowed_sources = [\"192.0.2.7\", \"2001:db8::/32\"]\n\
             syslog_udp = { bind = \"0.0.0.0:514\" }\nsyslog_tcp = { bind = \"0.0.0.0:514\" }\n",
        )
        .unwrap();
        assert_eq!(
            parse_source(&c.events.allowed_sources[0])
                .unwrap()
                .to_string(),
            "192.0.2.7/32"
        );
        let l = c.listeners();
        assert!(l.contains(&("events syslog udp", "0.0.0.0:514".parse().unwrap(), "udp")));
        assert!(l.contains(&(
            "events syslog tcp plaintext",
            "0.0.0.0:514".parse().unwrap(),
            "tcp"
        )));
        // Two TCP listeners on one port are not.
        let err = parse(
            "data_dir = \"d\"\n[events]\nenabled = true\nallowed_sources = [\"192.0.2.7\"]\n\
             tcp_plain = { bind = \"0.0.0.0:6514\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("events.tcp_plain.bind"), "{err}");
        // What `vigil init` writes keeps enabled plaintext listeners and webhook senders.
        let mut c = c;
        c.events.webhooks.push(EventWebhook {
            name: "analytics-1".into(),
            secret_file: "/etc/vigil/a1.secret".into(),
            cameras: Some(vec!["lobby".into()]),
        });
        let text = c.to_commented_toml();
        assert_eq!(parse(&text).unwrap(), c);
        let err =
            parse("data_dir = \"d\"\n[[events.webhooks]]\nname = \"a 1\"\nsecret_file = \"s\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("events.webhooks[0].name") && err.contains("line 3"),
            "{err}"
        );
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
    fn metrics_stay_on_loopback() {
        for bind in ["0.0.0.0:9464", "192.0.2.7:9464", "[::]:9464"] {
            let err = Config::parse(
                &format!("data_dir = \"d\"\n\n[metrics]\nbind = \"{bind}\"\n"),
                Path::new("x.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("`metrics.bind`")
                    && err.contains("line 4")
                    && err.contains("loopback"),
                "{err}"
            );
        }
        for bind in ["127.0.0.1:9464", "[::1]:9465", "127.0.0.2:9464"] {
            let c = Config::parse(
                &format!("data_dir = \"d\"\n[metrics]\nbind = \"{bind}\"\n"),
                Path::new("x.toml"),
            )
            .unwrap();
            assert_eq!(c.metrics.bind.to_string(), bind);
        }
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
    fn siem_is_off_by_default_and_collectors_round_trip() {
        let c = Config::parse("data_dir = \"d\"\n", Path::new("x.toml")).unwrap();
        assert!(!c.siem.enabled());
        assert!(c.siem.effective_collectors().is_empty());
        assert_eq!(c.siem.facility_code(), Some(20), "local4");
        let mut c = Config::with_data_dir("/var/lib/vigil");
        c.siem.facility = "audit".into();
        c.siem.min_severity = "notice".into();
        c.siem.collectors = vec![
            SiemCollector {
                name: Some("soc".into()),
                target: "siem.example.net:6514".into(),
                ca_file: Some("/etc/vigil/siem-ca.pem".into()),
                client_cert_file: Some("/etc/vigil/c.pem".into()),
                client_key_file: Some("/etc/vigil/c.key".into()),
                format: Some(SiemFormat::Cef),
                ..Default::default()
            },
            SiemCollector {
                target: "[2001:db8::1]".into(),
                server_name: Some("backup.example.net".into()),
                ..Default::default()
            },
        ];
        let back = Config::parse(&c.to_commented_toml(), Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
        let eff = back.siem.effective_collectors();
        assert_eq!(eff[1].name.as_deref(), Some("[2001:db8::1]"));
        assert_eq!(eff[1].format, Some(SiemFormat::Rfc5424));
        // The older shorthand is one collector with the system store.
        let mut c = Config::with_data_dir("/var/lib/vigil");
        c.siem.target = Some("10.0.0.9".into());
        c.siem.cef = true;
        let back = Config::parse(&c.to_commented_toml(), Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
        let eff = back.siem.effective_collectors();
        assert_eq!(eff.len(), 1);
        assert_eq!(eff[0].format, Some(SiemFormat::Cef));
        assert_eq!(split_target("10.0.0.9").unwrap(), ("10.0.0.9".into(), 6514));
        assert_eq!(split_target("[::1]:7514").unwrap(), ("::1".into(), 7514));
    }

    #[test]
    fn relative_siem_files_are_resolved_against_the_config_file() {
        let dir = tempfile_dir();
        let path = dir.join("vigil.toml");
        std::fs::write(
            &path,
            "data_dir = \"d\"\n[[siem.collectors]]\ntarget = \"h:1\"\nca_file = \"ca.pem\"\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(
            c.siem.collectors[0].ca_file.as_deref(),
            Some(&*dir.join("ca.pem"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "vigil-config-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn bad_siem_settings_say_what_to_do_and_where() {
        for (text, want) in [
            ("[siem]\nfacility = \"local9\"\n", "line 3"),
            ("[siem]\nfacility = \"local9\"\n", "local7"),
            ("[siem]\nmin_severity = \"warn\"\n", "warning"),
            ("[siem]\nenterprise_number = 0\n", "32473"),
            ("[siem]\nspool_max_bytes = 10\n", "at least 1048576"),
            ("[siem]\nconfirm_after = \"0s\"\n", "100ms"),
            ("[siem]\nmax_message_bytes = 100\n", "2048"),
            ("[siem]\ntarget = \"\"\n", "host:port"),
            ("[siem]\ntarget = \"a:b:c\"\n", "brackets"),
            (
                "[siem]\ntarget = \"h:1\"\n[[siem.collectors]]\ntarget = \"h:2\"\n",
                "move the target",
            ),
            (
                "[[siem.collectors]]\ntarget = \"h:0\"\n",
                "`siem.collectors[0].target` = \"h:0\" on line 3",
            ),
            (
                "[[siem.collectors]]\ntarget = \"h\"\nclient_cert_file = \"c.pem\"\n",
                "private key",
            ),
            (
                "[[siem.collectors]]\ntarget = \"h\"\n[[siem.collectors]]\ntarget = \"h\"\n",
                "its own `name`",
            ),
            (
                "[[siem.collectors]]\ntarget = \"h\"\nformat = \"leef\"\n",
                "format",
            ),
            ("[[siem.collectors]]\ntarget = \"h\"\nport = 1\n", "port"),
        ] {
            let err = Config::parse(&format!("data_dir = \"d\"\n{text}"), Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
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
