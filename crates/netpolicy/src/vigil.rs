//! Vigil's own entry in the catalog. Its roles, and each port's application, peers, purpose
//! and flags, are data like the third-party catalogs (`vigil_roles.toml`, embedded and
//! validated when first used); only what an admin configures comes from
//! `vigil_config::Config`: port numbers and bind addresses, listener labels, event sources,
//! the SIEM target and which roles are on. The data format is described at the top of that
//! file.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::LazyLock;

use serde::{Deserialize, Deserializer};
use vigil_config::Config;

use crate::Error;
use crate::model::{PortRange, PortSpec, Protocol, Role, Selector, System};

/// Default RTSPS port (RFC 7826 registers 322 for RTSP over TLS).
pub const RTSPS_PORT: u16 = 322;
/// Default syslog-over-TLS port (RFC 5425).
pub const SYSLOG_TLS_PORT: u16 = 6514;

/// Names the embedded file in errors.
const ROLES_FILE: &str = "vigil_roles.toml";
const ROLES_TEXT: &str = include_str!("vigil_roles.toml");

/// Peers of a port bound to loopback, whatever the data says.
const LOOPBACK_PEERS_TEXT: &str = "local processes only (bound to loopback)";

/// The switch in `vigil.toml` that turns a role on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Switch {
    #[serde(rename = "management.enabled")]
    Management,
    #[serde(rename = "recording.enabled")]
    Recording,
    #[serde(rename = "events.enabled")]
    Events,
    #[serde(rename = "metrics.enabled")]
    Metrics,
    #[serde(rename = "siem.target")]
    SiemTarget,
    #[serde(rename = "archive.endpoint")]
    ArchiveEndpoint,
    #[serde(rename = "smtp.server")]
    SmtpServer,
    #[serde(rename = "webhooks")]
    Webhooks,
    #[serde(rename = "database.url")]
    DatabaseUrl,
}

/// The `vigil.toml` setting a port number (and bind address) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Setting {
    #[serde(rename = "management.https")]
    ManagementHttps,
    #[serde(rename = "management.http")]
    ManagementHttp,
    #[serde(rename = "management.inter_server")]
    ManagementInterServer,
    #[serde(rename = "recording.api")]
    RecordingApi,
    #[serde(rename = "events.tcp")]
    EventsTcp,
    #[serde(rename = "events.udp")]
    EventsUdp,
    #[serde(rename = "events.syslog_tls")]
    EventsSyslogTls,
    #[serde(rename = "events.tcp_plain")]
    EventsTcpPlain,
    #[serde(rename = "events.syslog_udp")]
    EventsSyslogUdp,
    #[serde(rename = "events.syslog_tcp")]
    EventsSyslogTcp,
    #[serde(rename = "metrics.bind")]
    MetricsBind,
    #[serde(rename = "siem.target")]
    SiemTarget,
    #[serde(rename = "archive.endpoint")]
    ArchiveEndpoint,
    #[serde(rename = "smtp.server")]
    SmtpServer,
    /// Every HTTPS webhook Vigil posts to: `access.webhook.url` and each rule's `webhook.url`.
    #[serde(rename = "webhooks")]
    Webhooks,
    /// Each PostgreSQL server of `[database] url` (TCP only).
    #[serde(rename = "database.url")]
    DatabaseUrl,
}

/// A peer of a Vigil port: a catalog selector or one taken from the configuration.
#[derive(Debug, Clone, PartialEq)]
enum Peer {
    Selector(Selector),
    AllowedSources,
    /// The host an outbound entry connects to (`config:siem.target`, `config:archive.endpoint`,
    /// `config:smtp.server`, `config:webhooks`): one occurrence per configured destination.
    Destination,
}

impl<'de> Deserialize<'de> for Peer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "config:events.allowed_sources" => Ok(Peer::AllowedSources),
            "config:siem.target"
            | "config:archive.endpoint"
            | "config:smtp.server"
            | "config:webhooks"
            | "config:database.url" => Ok(Peer::Destination),
            _ => Selector::parse(&text)
                .map(Peer::Selector)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Extra peers of a listener whose label contains "internet".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InternetLabel {
    peers: Vec<Selector>,
    peers_text: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortTemplate {
    port: Option<PortRange>,
    config: Option<Setting>,
    protocol: Protocol,
    application: String,
    process: String,
    peers: Vec<Peer>,
    peers_text: String,
    peers_text_when_none: Option<String>,
    purpose: String,
    encrypted: bool,
    #[serde(default = "yes")]
    enabled_by_default: bool,
    #[serde(default)]
    web: bool,
    #[serde(default)]
    notes: String,
    internet_label: Option<InternetLabel>,
    /// How an admin turns this port on when the configuration yields none of it (listed by
    /// [`Template::off`]); without it an absent port is not mentioned.
    turn_on: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleTemplate {
    name: String,
    title: String,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    notes: String,
    when: Switch,
    /// How an admin turns the role on while its switch is off.
    turn_on: String,
    #[serde(default)]
    ports: Vec<PortTemplate>,
    #[serde(default)]
    outbound: Vec<PortTemplate>,
}

/// The parsed `vigil_roles.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    name: String,
    title: String,
    source: String,
    #[serde(default)]
    notes: Vec<String>,
    roles: Vec<RoleTemplate>,
}

const PLACEHOLDERS: [&str; 5] = [
    "label",
    "allowed_sources",
    "invalid_sources",
    "target",
    "siem_format",
];

/// The `{name}` placeholders of a text, or the first malformed one as an error.
fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("`{text}` opens a placeholder it does not close"))?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} in `{text}`; use one of {}",
                PLACEHOLDERS.join(", ")
            ));
        }
        out.push(name);
        rest = &after[close + 1..];
    }
    Ok(out)
}

impl Template {
    /// Parses and validates a roles file; `file` only names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, Error> {
        let err = |message: String| Error::Catalog {
            file: file.to_string(),
            message,
        };
        let t: Template = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut names = HashSet::new();
        for role in &t.roles {
            if !names.insert(role.name.as_str()) {
                return Err(err(format!("role `{}` is listed twice", role.name)));
            }
            for (inbound, p) in role
                .ports
                .iter()
                .map(|p| (true, p))
                .chain(role.outbound.iter().map(|p| (false, p)))
            {
                let at = |m: String| err(format!("{}: {m}", role.name));
                let what = match (p.port, p.config) {
                    (Some(port), None) => port.to_string(),
                    (None, Some(c)) => format!("{c:?}"),
                    _ => return Err(at("a port has either `port` or `config`, not both".into())),
                };
                if let Some(c) = p.config
                    && inbound
                    && c.is_destination()
                {
                    return Err(at(format!("{} is a destination, not a listener", c.key())));
                }
                let untrusted = p
                    .peers
                    .iter()
                    .filter_map(|s| match s {
                        Peer::Selector(s) => Some(s),
                        _ => None,
                    })
                    .chain(p.internet_label.iter().flat_map(|i| &i.peers))
                    .any(|s| matches!(s, Selector::Zone(z) if z.is_untrusted()));
                if untrusted && !p.web {
                    return Err(at(format!(
                        "port {what} is reachable from a DMZ/Internet zone but is not marked web = true"
                    )));
                }
                for text in [&p.peers_text, &p.purpose, &p.notes]
                    .into_iter()
                    .chain(p.peers_text_when_none.as_ref())
                    .chain(p.internet_label.as_ref().map(|i| &i.peers_text))
                {
                    placeholders(text).map_err(at)?;
                }
            }
        }
        Ok(t)
    }
}

/// The embedded roles file. It is checked by the unit tests, so failing here is a build
/// that skipped them.
static TEMPLATE: LazyLock<Template> = LazyLock::new(|| {
    Template::parse(ROLES_FILE, ROLES_TEXT)
        .unwrap_or_else(|e| panic!("the embedded Vigil roles file is invalid: {e}"))
});

/// The embedded roles file, parsed and validated.
pub fn template() -> &'static Template {
    &TEMPLATE
}

/// What the configuration fills into the texts and peers of the ports.
struct Values {
    allowed_sources: String,
    invalid_sources: String,
    valid_sources: Vec<Selector>,
}

impl Values {
    fn new(config: &Config) -> Self {
        let mut valid_sources = Vec::new();
        let mut invalid = Vec::new();
        for s in &config.events.allowed_sources {
            match crate::model::parse_net(s) {
                Ok(n) => valid_sources.push(Selector::Net(n)),
                Err(_) => invalid.push(s.clone()),
            }
        }
        Self {
            allowed_sources: config.events.allowed_sources.join(", "),
            invalid_sources: invalid.join(", "),
            valid_sources,
        }
    }

    fn get<'b>(&'b self, name: &str, at: &'b Occurrence) -> &'b str {
        match name {
            "label" => &at.label,
            "allowed_sources" => &self.allowed_sources,
            "invalid_sources" => &self.invalid_sources,
            "target" => &at.target,
            "siem_format" => at.siem_format,
            _ => unreachable!("placeholders are checked when the file is loaded"),
        }
    }

    /// `text` with its placeholders filled in for the occurrence `at` (a listener's label, a
    /// collector's target and format); empty when one of them has no value.
    fn fill(&self, text: &str, at: &Occurrence) -> String {
        let names = placeholders(text).expect("checked when the file is loaded");
        if names.iter().any(|n| self.get(n, at).is_empty()) {
            return String::new();
        }
        let mut out = text.to_string();
        for n in names {
            out = out.replace(&format!("{{{n}}}"), self.get(n, at));
        }
        out
    }
}

/// One occurrence of a configured port: its number, where it is bound (inbound) and its
/// label; for a SIEM collector its target and payload format.
struct Occurrence {
    port: u16,
    bind: Option<IpAddr>,
    label: String,
    target: String,
    siem_format: &'static str,
}

impl Setting {
    /// Its key in `vigil.toml`, as `Config::served_listeners` names it.
    fn key(self) -> &'static str {
        match self {
            Setting::ManagementHttps => "management.https",
            Setting::ManagementHttp => "management.http",
            Setting::ManagementInterServer => "management.inter_server",
            Setting::RecordingApi => "recording.api",
            Setting::EventsTcp => "events.tcp",
            Setting::EventsUdp => "events.udp",
            Setting::EventsSyslogTls => "events.syslog_tls",
            Setting::EventsTcpPlain => "events.tcp_plain",
            Setting::EventsSyslogUdp => "events.syslog_udp",
            Setting::EventsSyslogTcp => "events.syslog_tcp",
            Setting::MetricsBind => "metrics.bind",
            Setting::SiemTarget => "siem.target",
            Setting::ArchiveEndpoint => "archive.endpoint",
            Setting::SmtpServer => "smtp.server",
            Setting::Webhooks => "webhooks",
            Setting::DatabaseUrl => "database.url",
        }
    }

    /// Whether it names where Vigil connects to rather than a listener of its own.
    fn is_destination(self) -> bool {
        matches!(
            self,
            Setting::SiemTarget
                | Setting::ArchiveEndpoint
                | Setting::SmtpServer
                | Setting::Webhooks
                | Setting::DatabaseUrl
        )
    }
}

/// `target` (an `https://host[:port]/path` URL) as `host:port`.
fn url_host_port(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .map(|r| (r, 443))
        .or_else(|| url.strip_prefix("http://").map(|r| (r, 80)));
    let (rest, default) = rest?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.is_empty() {
        return None;
    }
    let (host, port) = split_host_port(authority, default);
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// A listener of another Vigil server, at `port` on whichever host runs that role.
fn remote_listener(port: u16) -> Occurrence {
    Occurrence {
        port,
        bind: None,
        label: String::new(),
        target: String::new(),
        siem_format: "",
    }
}

/// A destination at `host` and `port`; its target text is `host:port` (`[v6]:port`).
fn destination(host: String, port: u16) -> Occurrence {
    Occurrence {
        port,
        bind: None,
        label: String::new(),
        target: if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        },
        siem_format: "",
    }
}

/// The occurrences of a setting: the listeners `vigil serve` opens for it (the same list it
/// binds from, `Config::served_listeners`; an outbound entry names the listener its peers
/// open, which exists only where it is served), or one per SIEM collector.
fn occurrences(setting: Setting, config: &Config) -> Vec<Occurrence> {
    if setting == Setting::SiemTarget {
        // One outbound connection per collector (`[[siem.collectors]]` or `siem.target`).
        return config
            .siem
            .effective_collectors()
            .into_iter()
            .map(|c| Occurrence {
                port: split_host_port(&c.target, SYSLOG_TLS_PORT).1,
                bind: None,
                label: String::new(),
                siem_format: match c.format {
                    Some(vigil_config::SiemFormat::Cef) => "CEF",
                    _ => "RFC 5424",
                },
                target: c.target,
            })
            .collect();
    }
    match setting {
        Setting::ArchiveEndpoint => {
            // A malformed endpoint is the configuration check's to report; nothing connects.
            return match config.archive.host_port() {
                Some(Ok((host, port))) => vec![destination(host, port)],
                _ => Vec::new(),
            };
        }
        Setting::DatabaseUrl => {
            return config
                .database
                .tcp_servers()
                .into_iter()
                .map(|(host, port)| destination(host, port))
                .collect();
        }
        Setting::SmtpServer => {
            return match config.smtp.host_port() {
                Some(Ok((host, port))) => vec![destination(host, port)],
                _ => Vec::new(),
            };
        }
        Setting::Webhooks => {
            // One entry per receiver (host and port), however many rules post to it.
            let mut seen: Vec<String> = Vec::new();
            for url in config
                .access
                .webhook
                .iter()
                .chain(config.rules.iter().filter_map(|r| r.webhook.as_ref()))
                .map(|w| w.url.as_str())
            {
                if let Some(hp) = url_host_port(url)
                    && !seen.contains(&hp)
                {
                    seen.push(hp);
                }
            }
            return seen
                .into_iter()
                .map(|hp| {
                    let (host, port) = split_host_port(&hp, 443);
                    destination(host, port)
                })
                .collect();
        }
        // The other role's inter-server API, on another host (docs/cluster.md): a recording
        // server connects to the management's, the management to recording servers'. Its
        // port is the one this configuration names; `vigil server join` takes the URL.
        Setting::ManagementInterServer if config.role == vigil_config::Role::Recording => {
            return vec![remote_listener(config.management.inter_server.bind.port())];
        }
        Setting::RecordingApi if config.role == vigil_config::Role::Management => {
            return vec![remote_listener(config.recording.api.bind.port())];
        }
        _ => {}
    }
    config
        .served_listeners()
        .into_iter()
        .filter(|l| l.setting == setting.key())
        .map(|l| Occurrence {
            port: l.addr.port(),
            bind: Some(l.addr.ip()),
            label: l.label,
            target: String::new(),
            siem_format: "",
        })
        .collect()
}

fn is_on(switch: Switch, config: &Config) -> bool {
    match switch {
        Switch::Management => config.runs_management(),
        Switch::Recording => config.runs_recording(),
        Switch::Events => config.events.enabled,
        Switch::Metrics => config.metrics.enabled,
        Switch::SiemTarget => config.siem.enabled(),
        Switch::ArchiveEndpoint => config.archive.enabled(),
        Switch::SmtpServer => config.smtp.server.is_some(),
        Switch::Webhooks => !occurrences(Setting::Webhooks, config).is_empty(),
        // Only the management server reads the management data (recording servers never
        // depend on the database to write video: docs/design/data-access.md).
        Switch::DatabaseUrl => {
            config.runs_management() && !occurrences(Setting::DatabaseUrl, config).is_empty()
        }
    }
}

/// The peer an outbound entry connects to: its destination's address or host name.
fn destination_peer(target: &str) -> Selector {
    let (host, _) = split_host_port(target, SYSLOG_TLS_PORT);
    match host.parse::<IpAddr>() {
        Ok(ip) => Selector::Net(ip.into()),
        Err(_) => Selector::Host(host),
    }
}

/// The ports of one template entry under `config` (none, one, or one per listener).
fn ports(
    t: &PortTemplate,
    inbound: bool,
    role_on_by_default: bool,
    config: &Config,
    values: &Values,
) -> Vec<PortSpec> {
    let found = match (t.port, t.config) {
        (Some(port), _) => vec![(
            port,
            Occurrence {
                port: 0,
                bind: None,
                label: String::new(),
                target: String::new(),
                siem_format: "",
            },
        )],
        (None, Some(setting)) => occurrences(setting, config)
            .into_iter()
            .map(|o| (PortRange::single(o.port), o))
            .collect(),
        (None, None) => unreachable!("checked when the file is loaded"),
    };
    found
        .into_iter()
        .map(|(port, at)| {
            let (bind, label) = (at.bind, at.label.clone());
            let mut peers: Vec<Selector> = Vec::new();
            for p in &t.peers {
                match p {
                    Peer::Selector(s) => peers.push(s.clone()),
                    Peer::AllowedSources => peers.extend(values.valid_sources.iter().cloned()),
                    Peer::Destination => peers.push(destination_peer(&at.target)),
                }
            }
            let mut peers_text = match &t.peers_text_when_none {
                Some(none) if peers.is_empty() => none.clone(),
                _ => values.fill(&t.peers_text, &at),
            };
            if let Some(i) = &t.internet_label
                && label.to_ascii_lowercase().contains("internet")
            {
                peers.extend(i.peers.iter().cloned());
                peers_text = values.fill(&i.peers_text, &at);
            }
            let mut spec = PortSpec {
                port,
                protocol: t.protocol,
                application: t.application.clone(),
                process: t.process.clone(),
                peers,
                peers_text,
                purpose: values.fill(&t.purpose, &at),
                encrypted: t.encrypted,
                local_only: false,
                enabled_by_default: t.enabled_by_default && role_on_by_default,
                special_case: false,
                web: t.web,
                per_instance: false,
                deprecated: false,
                notes: values.fill(&t.notes, &at),
                // A Vigil port that is off by default (itself or its role) exists only because
                // the admin turned it on in the configuration.
                configured: !(t.enabled_by_default && role_on_by_default),
            };
            if inbound && bind.is_some_and(|ip| ip.is_loopback()) {
                spec.local_only = true;
                spec.peers = vec![Selector::Local];
                spec.peers_text = LOOPBACK_PEERS_TEXT.into();
                spec.web = false;
            }
            spec
        })
        .collect()
}

/// The Vigil system with the ports of `config`. Disabled roles are left out.
pub fn system(config: &Config) -> System {
    template().system(config)
}

impl Template {
    /// The system this template describes, filled in from `config`.
    pub fn system(&self, config: &Config) -> System {
        let values = Values::new(config);
        let roles = self
            .roles
            .iter()
            .filter(|r| is_on(r.when, config))
            .map(|r| self.role(r, config, &values))
            .collect();
        System {
            name: self.name.clone(),
            title: self.title.clone(),
            source: self.source.clone(),
            notes: self.notes.clone(),
            roles,
        }
    }

    /// How to turn on the role `role` of the system `system`, when this template describes
    /// them.
    pub fn turn_on(&self, system: &str, role: &str) -> Option<&str> {
        if system != self.name {
            return None;
        }
        self.roles
            .iter()
            .find(|r| r.name == role)
            .map(|r| r.turn_on.as_str())
    }

    fn role(&self, r: &RoleTemplate, config: &Config, values: &Values) -> Role {
        let by_default = is_on(r.when, &Config::with_data_dir(""));
        Role {
            name: r.name.clone(),
            title: r.title.clone(),
            kinds: r.kinds.clone(),
            notes: r.notes.clone(),
            ports: r
                .ports
                .iter()
                .flat_map(|p| ports(p, true, by_default, config, values))
                .collect(),
            outbound: r
                .outbound
                .iter()
                .flat_map(|p| ports(p, false, by_default, config, values))
                .collect(),
        }
    }

    /// What `config` leaves off, with how to turn it on: each role whose switch is off (with
    /// the listeners it would open), and each listener of a running role that has no
    /// occurrence but says how to get one.
    pub fn off(&self, config: &Config) -> Vec<Off> {
        let mut out = Vec::new();
        for r in &self.roles {
            if !is_on(r.when, config) {
                let mut on = config.clone();
                switch_on(r.when, &mut on);
                let values = Values::new(&on);
                let role = self.role(r, &on, &values);
                out.push(Off {
                    role: format!("{}:{}", self.name, r.name),
                    what: if role.ports.is_empty() {
                        r.title.clone()
                    } else {
                        role.ports
                            .iter()
                            .map(|p| format!("{}/{} {}", p.port, p.protocol, p.application))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    turn_on: r.turn_on.clone(),
                });
                continue;
            }
            for t in &r.ports {
                let (Some(setting), Some(turn_on)) = (t.config, &t.turn_on) else {
                    continue;
                };
                if occurrences(setting, config).is_empty() {
                    out.push(Off {
                        role: format!("{}:{}", self.name, r.name),
                        what: format!("{} {} ({})", t.protocol, t.application, setting.key()),
                        turn_on: turn_on.clone(),
                    });
                }
            }
        }
        out
    }
}

/// A role or listener the configuration leaves off ([`Template::off`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Off {
    /// `vigil:events`.
    pub role: String,
    /// The listeners it would open (`1234/tcp TLS, 6514/tcp syslog/TLS`), or what it is.
    pub what: String,
    /// The setting that turns it on, as a sentence.
    pub turn_on: String,
}

/// What `config` leaves off in Vigil's own roles ([`Template::off`]).
pub fn off(config: &Config) -> Vec<Off> {
    template().off(config)
}

/// Turns a role's switch on in `config`, to show what it would open. A destination (a SIEM
/// collector, the archive, a mail server, a webhook) is not in the configuration, so those roles
/// stay as they are.
fn switch_on(switch: Switch, config: &mut Config) {
    match switch {
        Switch::Management => {
            config.management.enabled = true;
            if config.role == vigil_config::Role::Recording {
                config.role = vigil_config::Role::All;
            }
        }
        Switch::Recording => {
            config.recording.enabled = true;
            if config.role == vigil_config::Role::Management {
                config.role = vigil_config::Role::All;
            }
        }
        Switch::Events => config.events.enabled = true,
        Switch::Metrics => config.metrics.enabled = true,
        Switch::SiemTarget
        | Switch::ArchiveEndpoint
        | Switch::SmtpServer
        | Switch::Webhooks
        | Switch::DatabaseUrl => {}
    }
}

/// Every listener of `config` as (component, address, protocol): exactly the sockets
/// `vigil serve` opens (`Config::served_listeners`).
pub fn listeners(config: &Config) -> Vec<(&'static str, std::net::SocketAddr, &'static str)> {
    config.listeners()
}

/// Splits `host:port`, `[v6]:port` or a bare host (then `default` is the port).
pub fn split_host_port(text: &str, default: u16) -> (String, u16) {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[')
        && let Some((h, p)) = rest.split_once(']')
    {
        let port = p
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default);
        return (h.to_string(), port);
    }
    match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().unwrap_or(default)),
        _ => (text.to_string(), default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per port with every field, so a test pins the roles exactly.
    fn lines(s: &System) -> Vec<String> {
        let mut out = Vec::new();
        for r in &s.roles {
            out.push(format!(
                "[{}] {} kinds={}",
                r.name,
                r.title,
                r.kinds.join(",")
            ));
            for (dir, ports) in [("in", &r.ports), ("out", &r.outbound)] {
                for p in ports {
                    let peers: Vec<String> = p.peers.iter().map(|s| s.to_string()).collect();
                    let flags = [
                        (p.encrypted, "encrypted"),
                        (p.local_only, "local"),
                        (p.enabled_by_default, "default"),
                        (p.web, "web"),
                        (p.configured, "configured"),
                        (p.special_case || p.per_instance || p.deprecated, "OTHER"),
                    ]
                    .into_iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, f)| f)
                    .collect::<Vec<_>>()
                    .join(",");
                    out.push(format!(
                        "{dir} {}/{} {} | {} | [{}] {} | {} | {flags} | {}",
                        p.port,
                        p.protocol,
                        p.application,
                        p.process,
                        peers.join(" "),
                        p.peers_text,
                        p.purpose,
                        p.notes
                    ));
                }
            }
        }
        out
    }

    fn listener(bind: &str, label: &str) -> vigil_config::Listener {
        vigil_config::Listener {
            bind: bind.parse().unwrap(),
            label: label.into(),
        }
    }

    #[test]
    fn embedded_roles_file_parses_and_passes_the_catalog_checks() {
        Template::parse(ROLES_FILE, ROLES_TEXT).unwrap();
        let system = system(&Config::with_data_dir("/d"));
        crate::catalog::check_system(ROLES_FILE, &system).unwrap();
        assert_eq!(system.name, "vigil");
        assert!(
            system.source.contains("docs/network-hardening.md"),
            "{}",
            system.source
        );
    }

    /// The roles and ports of the default configuration, exactly as the code that built them
    /// before they became data produced them.
    #[test]
    fn default_config_roles_and_ports() {
        let want = [
            "[management] Vigil management: configuration, users, REST API, web client kinds=management,web",
            "in 8443/tcp HTTPS | vigil management | [zone:clients] browsers and API clients | web client, REST API, live and recorded video | encrypted,default,web | listener label: LAN",
            "[recording] Vigil recording: pulls camera streams, stores and signs video kinds=recorder",
            "out 554/tcp RTSP | vigil recording | [zone:cameras] cameras | camera video streams | default | ",
            "out 322/tcp RTSPS | vigil recording | [zone:cameras] cameras | camera video streams over TLS | encrypted,default | ",
            "out 80/tcp HTTP | vigil recording | [zone:cameras] cameras | ONVIF and camera configuration | default | ",
            "out 443/tcp HTTPS | vigil recording | [zone:cameras] cameras | ONVIF and camera configuration over TLS | encrypted,default | ",
            "[metrics] Vigil metrics (Prometheus text) kinds=",
            "in 9464/tcp HTTP | vigil metrics | [local] local processes only (bound to loopback) | Prometheus metrics | local,default | should stay on 127.0.0.1",
        ];
        assert_eq!(lines(&system(&Config::with_data_dir("/d"))), want);
    }

    /// Every configurable part at once: several HTTPS listeners (labelled, Internet-labelled,
    /// loopback), plaintext HTTP, loopback inter-server APIs, UDP events, valid and invalid
    /// event sources, a SIEM target with CEF, metrics on the network.
    #[test]
    fn configured_roles_and_ports() {
        let mut c = Config::with_data_dir("/d");
        c.management.https = vec![
            listener("0.0.0.0:8443", "LAN"),
            listener("10.0.0.5:443", "Internet (DMZ)"),
            listener("127.0.0.1:9000", ""),
            listener("[::1]:9001", "internet but loopback"),
        ];
        c.management.http = vec![
            listener("0.0.0.0:8080", ""),
            listener("127.0.0.1:8081", "x"),
        ];
        c.management.inter_server = listener("127.0.0.1:8444", "");
        c.recording.api = listener("127.0.0.1:9443", "rec");
        c.events.enabled = true;
        c.events.udp = Some(listener("0.0.0.0:1234", ""));
        c.events.syslog_tls = listener("127.0.0.1:6514", "");
        c.events.syslog_udp = Some(listener("0.0.0.0:514", ""));
        c.events.allowed_sources = vec![
            "10.0.0.0/8".into(),
            "bogus".into(),
            "10.1.1.1".into(),
            "10.0.0.1/8".into(),
        ];
        c.siem.target = Some("10.9.9.9:7514".into());
        c.siem.cef = true;
        c.metrics.enabled = true;
        c.metrics.bind = "0.0.0.0:9464".parse().unwrap();
        let want = [
            "[management] Vigil management: configuration, users, REST API, web client kinds=management,web",
            "in 8443/tcp HTTPS | vigil management | [zone:clients] browsers and API clients | web client, REST API, live and recorded video | encrypted,default,web | listener label: LAN",
            "in 443/tcp HTTPS | vigil management | [zone:clients zone:internet] browsers and API clients, also from the Internet | web client, REST API, live and recorded video | encrypted,default,web | listener label: Internet (DMZ)",
            "in 9000/tcp HTTPS | vigil management | [local] local processes only (bound to loopback) | web client, REST API, live and recorded video | encrypted,local,default | ",
            "in 9001/tcp HTTPS | vigil management | [local] local processes only (bound to loopback) | web client, REST API, live and recorded video | encrypted,local,default | listener label: internet but loopback",
            "in 8080/tcp HTTP | vigil management | [zone:clients] browsers | redirect to HTTPS | configured | plaintext, enabled by the admin: pages redirect to HTTPS and credential-bearing endpoints answer 403",
            "in 8081/tcp HTTP | vigil management | [local] local processes only (bound to loopback) | redirect to HTTPS | local,configured | plaintext, enabled by the admin: pages redirect to HTTPS and credential-bearing endpoints answer 403",
            "[recording] Vigil recording: pulls camera streams, stores and signs video kinds=recorder",
            "out 554/tcp RTSP | vigil recording | [zone:cameras] cameras | camera video streams | default | ",
            "out 322/tcp RTSPS | vigil recording | [zone:cameras] cameras | camera video streams over TLS | encrypted,default | ",
            "out 80/tcp HTTP | vigil recording | [zone:cameras] cameras | ONVIF and camera configuration | default | ",
            "out 443/tcp HTTPS | vigil recording | [zone:cameras] cameras | ONVIF and camera configuration over TLS | encrypted,default | ",
            "[events] Vigil events: generic events, syslog in, analytics events kinds=events",
            "in 1234/tcp TLS | vigil events | [net:10.0.0.0/8 net:10.1.1.1/32] events.allowed_sources: 10.0.0.0/8, bogus, 10.1.1.1, 10.0.0.1/8 | generic events from external systems | encrypted,configured | ignored invalid allowed_sources: bogus, 10.0.0.1/8",
            "in 1234/udp UDP | vigil events | [net:10.0.0.0/8 net:10.1.1.1/32] events.allowed_sources: 10.0.0.0/8, bogus, 10.1.1.1, 10.0.0.1/8 | generic events from external systems | configured | plaintext, enabled by the admin",
            "in 6514/tcp syslog/TLS | vigil events | [local] local processes only (bound to loopback) | syslog from switches and firewalls (RFC 5425) | encrypted,local,configured | ignored invalid allowed_sources: bogus, 10.0.0.1/8",
            "in 514/udp syslog | vigil events | [net:10.0.0.0/8 net:10.1.1.1/32] events.allowed_sources: 10.0.0.0/8, bogus, 10.1.1.1, 10.0.0.1/8 | syslog from switches and firewalls (RFC 5426) | configured | plaintext, enabled by the admin",
            "[siem-forwarder] Vigil SIEM forwarder kinds=",
            "out 7514/tcp syslog/TLS | vigil siem forwarder | [net:10.9.9.9/32] SIEM 10.9.9.9:7514 | security and audit events (CEF) | encrypted,configured | TLS with server certificate verification (RFC 5425)",
            "[metrics] Vigil metrics (Prometheus text) kinds=",
            "in 9464/tcp HTTP | vigil metrics | [zone:management] Prometheus scraper | Prometheus metrics | default | should stay on 127.0.0.1",
        ];
        assert_eq!(lines(&system(&c)), want);

        // A SIEM named by host without a port gets 6514 and RFC 5424; roles switched off
        // disappear.
        c.siem.target = Some("siem.example".into());
        c.siem.cef = false;
        c.management.enabled = false;
        c.events.enabled = false;
        let s = system(&c);
        let names: Vec<&str> = s.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["recording", "siem-forwarder", "metrics"]);
        let siem = &s.role("siem-forwarder").unwrap().outbound[0];
        assert_eq!(siem.port, PortRange::single(SYSLOG_TLS_PORT));
        assert_eq!(siem.peers, [Selector::Host("siem.example".into())]);
        assert_eq!(siem.purpose, "security and audit events (RFC 5424)");
        // Each [[siem.collectors]] is an outbound connection of its own, with its format.
        c.siem.target = None;
        c.siem.collectors = vec![
            vigil_config::SiemCollector {
                target: "10.9.9.9:7514".into(),
                format: Some(vigil_config::SiemFormat::Cef),
                ..Default::default()
            },
            vigil_config::SiemCollector {
                target: "siem2.example".into(),
                ..Default::default()
            },
        ];
        let s = system(&c);
        let out = &s.role("siem-forwarder").unwrap().outbound;
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].peers,
            [Selector::Net("10.9.9.9".parse::<IpAddr>().unwrap().into())]
        );
        assert_eq!(out[0].purpose, "security and audit events (CEF)");
        assert_eq!(out[0].peers_text, "SIEM 10.9.9.9:7514");
        assert_eq!(out[1].port, PortRange::single(SYSLOG_TLS_PORT));
        assert_eq!(out[1].peers, [Selector::Host("siem2.example".into())]);
        assert_eq!(out[1].purpose, "security and audit events (RFC 5424)");
        c.siem.collectors.clear();
        let rtsps = s
            .role("recording")
            .unwrap()
            .outbound
            .iter()
            .find(|p| p.application == "RTSPS");
        assert_eq!(rtsps.unwrap().port, PortRange::single(RTSPS_PORT));
    }

    #[test]
    fn the_management_database_is_an_outbound_flow_of_the_management_server_only() {
        let mut c = Config::with_data_dir("/var/lib/vigil");
        let role = |c: &Config| system(c).role("management-database").cloned();
        assert!(role(&c).is_none(), "SQLite: no flow");
        c.database.url = Some("postgres://vigil@%2Frun%2Fpostgresql/vigil".into());
        assert!(role(&c).is_none(), "a unix socket: no flow");
        c.database.url = Some(
            "postgres://vigil@db1.example.net,10.5.5.5:6432/vigil?target_session_attrs=read-write"
                .into(),
        );
        let out = role(&c).expect("listed").outbound;
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].port, PortRange::single(5432));
        assert_eq!(out[0].peers, [Selector::Host("db1.example.net".into())]);
        assert_eq!(out[0].peers_text, "PostgreSQL db1.example.net:5432");
        assert_eq!(out[1].port, PortRange::single(6432));
        assert_eq!(
            out[1].peers,
            [Selector::Net("10.5.5.5".parse::<IpAddr>().unwrap().into())]
        );
        assert!(
            out.iter()
                .all(|p| p.encrypted && p.protocol == Protocol::Tcp)
        );
        // A recording server never connects to it.
        c.role = vigil_config::Role::Recording;
        assert!(role(&c).is_none());
        c.role = vigil_config::Role::Management;
        assert!(role(&c).is_some());
    }

    #[test]
    fn archive_mail_and_webhook_destinations_are_outbound_flows() {
        let mut c = Config::with_data_dir("/var/lib/vigil");
        let names = |c: &Config| -> Vec<String> {
            system(c).roles.iter().map(|r| r.name.clone()).collect()
        };
        assert!(
            !names(&c)
                .iter()
                .any(|n| ["archiver", "mail", "webhooks"].contains(&n.as_str())),
            "nothing connects out while nothing is configured"
        );
        c.archive.endpoint = Some("https://s3.example:8333".into());
        c.smtp.server = Some("10.2.2.2".into());
        c.access.webhook = Some(vigil_config::WebhookSettings {
            url: "https://soc.example/alerts".into(),
            ..Default::default()
        });
        let rule = |name: &str, url: &str| -> vigil_config::RuleConfig {
            toml::from_str(&format!(
                "name = \"{name}\"\nwebhook = {{ url = \"{url}\" }}\n"
            ))
            .unwrap()
        };
        c.rules = vec![
            rule("r1", "https://soc.example:443/rules?x=1"),
            rule("r2", "https://[fd00::7]:9443/hook"),
        ];
        let s = system(&c);
        let out = |role: &str| s.role(role).unwrap().outbound.clone();
        let archive = &out("archiver")[0];
        assert_eq!(archive.port, PortRange::single(8333));
        assert_eq!(archive.peers, [Selector::Host("s3.example".into())]);
        assert_eq!(archive.peers_text, "S3 archive s3.example:8333");
        assert!(archive.encrypted);
        let mail = &out("mail")[0];
        assert_eq!(mail.port, PortRange::single(587));
        assert_eq!(
            mail.peers,
            [Selector::Net("10.2.2.2".parse::<IpAddr>().unwrap().into())]
        );
        // Two rules and the alert webhook post to two receivers: one flow each.
        let hooks = out("webhooks");
        assert_eq!(hooks.len(), 2, "{hooks:?}");
        assert_eq!(hooks[0].port, PortRange::single(443));
        assert_eq!(hooks[0].peers, [Selector::Host("soc.example".into())]);
        assert_eq!(hooks[1].port, PortRange::single(9443));
        assert_eq!(
            hooks[1].peers,
            [Selector::Net("fd00::7".parse::<IpAddr>().unwrap().into())]
        );
        assert_eq!(hooks[1].peers_text, "webhook receiver [fd00::7]:9443");
        // A malformed endpoint opens nothing (the configuration check reports it).
        c.archive.endpoint = Some("http://s3.example".into());
        assert!(system(&c).role("archiver").unwrap().outbound.is_empty());
    }

    #[test]
    fn url_host_port_reads_the_authority() {
        assert_eq!(
            url_host_port("https://h.example/x").as_deref(),
            Some("h.example:443")
        );
        assert_eq!(url_host_port("http://h:8080").as_deref(), Some("h:8080"));
        assert_eq!(url_host_port("https://u@h:1/p").as_deref(), Some("h:1"));
        assert_eq!(
            url_host_port("https://[::1]:2/").as_deref(),
            Some("[::1]:2")
        );
        assert_eq!(url_host_port("https:///x"), None);
        assert_eq!(url_host_port("ftp://h"), None);
    }

    #[test]
    fn bad_roles_files_are_refused() {
        let base = "name = \"v\"\ntitle = \"V\"\nsource = \"s\"\n[[roles]]\nname = \"r\"\ntitle = \"R\"\nwhen = \"management.enabled\"\nturn_on = \"t\"\n[[roles.ports]]\nprotocol = \"tcp\"\napplication = \"A\"\nprocess = \"p\"\npeers_text = \"t\"\npurpose = \"p\"\nencrypted = true\n";
        let cases = [
            (
                "port = 1\nconfig = \"recording.api\"\npeers = []\n",
                "either `port` or `config`",
            ),
            ("peers = []\n", "either `port` or `config`"),
            ("config = \"recording.tls\"\npeers = []\n", "recording.tls"),
            ("config = \"siem.target\"\npeers = []\n", "destination"),
            ("config = \"archive.endpoint\"\npeers = []\n", "destination"),
            (
                "port = 1\npeers = [\"config:nothing\"]\n",
                "unknown peer selector",
            ),
            ("port = 1\npeers = [\"zone:internet\"]\n", "not marked web"),
            (
                "port = 1\npeers = []\ninternet_label = { peers = [\"zone:internet\"], peers_text = \"i\" }\n",
                "not marked web",
            ),
            (
                "port = 1\npeers = []\nnotes = \"{labels}\"\n",
                "unknown placeholder {labels}",
            ),
            (
                "port = 1\npeers = []\nnotes = \"{label\"\n",
                "does not close",
            ),
            ("port = 1\npeers = []\ncolour = 1\n", "colour"),
        ];
        for (extra, want) in cases {
            let err = Template::parse("t.toml", &format!("{base}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        let twice = format!(
            "{base}port = 1\npeers = []\n[[roles]]\nname = \"r\"\ntitle = \"R\"\nwhen = \"metrics.enabled\"\nturn_on = \"t\"\n"
        );
        assert!(
            Template::parse("t.toml", &twice)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
