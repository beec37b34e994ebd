//! The shared vocabulary of ports: systems, roles, port specifications and peer selectors.
//!
//! Everything else in the crate (the Vigil manifest, the third-party catalogs, the firewall
//! generator and the audit) speaks in these types, so one port table drives all of them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A malformed value in a catalog, site file, configuration or command line: a port, range,
/// peer selector, subnet, zone kind, protocol, URL or output format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("`{0}` is not a port number; use 1-65535 or a range like 40001-40099")]
    NotAPort(String),
    #[error("port range `{0}` runs backwards; write the lower port first")]
    BackwardsRange(String),
    #[error("port {0} is out of range; a port is a number from 1 to 65535")]
    PortOutOfRange(i64),
    #[error(
        "unknown peer selector `{0}`; use local, system, zone:KIND, kind:KIND, \
         role:SYSTEM:ROLE, net:CIDR or host:NAME"
    )]
    UnknownSelector(String),
    #[error("`{0}`: a role selector is role:SYSTEM:ROLE, e.g. role:xprotect:event-server")]
    RoleSelector(String),
    #[error("`{text}` has host bits set; did you mean {network}?")]
    HostBitsSet { text: String, network: ipnet::IpNet },
    #[error("`{0}` is not a subnet; write it as CIDR like 10.20.0.0/24 or fd00:20::/64")]
    NotASubnet(String),
    #[error(
        "unknown zone kind `{0}`; use one of cameras, recording, management, clients, dmz, \
         internet, servers"
    )]
    UnknownZoneKind(String),
    #[error("unknown protocol `{0}`; use tcp or udp")]
    UnknownProtocol(String),
    #[error("`{0}` is not a URL; write it like rtsp://host:554/path")]
    NotAUrl(String),
    #[error("unsupported scheme `{0}` in a camera URL")]
    UnsupportedScheme(String),
    #[error("URL with scheme {0} has no host")]
    NoHost(String),
    #[error("unknown format `{0}`; use table, json or csv")]
    UnknownFormat(String),
    #[error("unknown firewall format `{0}`; use nftables, iptables or powershell")]
    UnknownFirewallFormat(String),
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A single port or an inclusive range such as XProtect's 40001–40099 video push range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        Self {
            start: port,
            end: port,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    pub fn is_single(&self) -> bool {
        self.start == self.end
    }

    /// Parses `443` or `40001-40099`; ports must be 1..=65535 and the range ascending.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let parse_one = |s: &str| -> Result<u16, ParseError> {
            let n: u32 = s
                .trim()
                .parse()
                .map_err(|_| ParseError::NotAPort(s.to_string()))?;
            check_port(n as i64)
        };
        match text.split_once('-') {
            Some((a, b)) => {
                let (start, end) = (parse_one(a)?, parse_one(b)?);
                if start > end {
                    return Err(ParseError::BackwardsRange(text.to_string()));
                }
                Ok(Self { start, end })
            }
            None => Ok(Self::single(parse_one(text)?)),
        }
    }
}

/// Checks a port number read from a file.
pub fn check_port(n: i64) -> Result<u16, ParseError> {
    if (1..=65535).contains(&n) {
        Ok(n as u16)
    } else {
        Err(ParseError::PortOutOfRange(n))
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_single() {
            s.serialize_u16(self.start)
        } else {
            s.serialize_str(&self.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => check_port(n)
                .map(PortRange::single)
                .map_err(serde::de::Error::custom),
            Raw::Text(t) => PortRange::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Who may open a connection, resolved against a site by the firewall generator.
///
/// Kept as a small closed language rather than free text so a typo in a catalog is an error,
/// not a silently missing rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// Only processes on the same computer (loopback). Such a port is never opened.
    Local,
    /// Every host that runs any role of the same system (e.g. "all XProtect servers").
    System,
    /// Every subnet of every zone of this kind (`zone:clients`).
    Zone(ZoneKind),
    /// Every host running a role with this kind (`kind:recorder`), whatever its system.
    Kind(String),
    /// Every host running exactly this role (`role:xprotect:event-server`).
    Role { system: String, role: String },
    /// A fixed network (`net:10.0.0.0/24`) or address.
    Net(ipnet::IpNet),
    /// A host of the site, by name (`host:siem1`).
    Host(String),
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let text = text.trim();
        if text == "local" {
            return Ok(Selector::Local);
        }
        if text == "system" {
            return Ok(Selector::System);
        }
        let Some((prefix, rest)) = text.split_once(':') else {
            return Err(ParseError::UnknownSelector(text.to_string()));
        };
        match prefix {
            "zone" => Ok(Selector::Zone(ZoneKind::parse(rest)?)),
            "kind" if !rest.is_empty() => Ok(Selector::Kind(rest.to_string())),
            "role" => match rest.split_once(':') {
                Some((s, r)) if !s.is_empty() && !r.is_empty() => Ok(Selector::Role {
                    system: s.to_string(),
                    role: r.to_string(),
                }),
                _ => Err(ParseError::RoleSelector(text.to_string())),
            },
            "net" => parse_net(rest).map(Selector::Net),
            "host" if !rest.is_empty() => Ok(Selector::Host(rest.to_string())),
            _ => Err(ParseError::UnknownSelector(text.to_string())),
        }
    }
}

/// Parses `10.0.0.0/24` or a bare address (as a /32 or /128).
pub fn parse_net(text: &str) -> Result<ipnet::IpNet, ParseError> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        if net.trunc() != net {
            return Err(ParseError::HostBitsSet {
                text: text.to_string(),
                network: net.trunc(),
            });
        }
        return Ok(net);
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    Err(ParseError::NotASubnet(text.to_string()))
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Local => f.write_str("local"),
            Selector::System => f.write_str("system"),
            Selector::Zone(z) => write!(f, "zone:{z}"),
            Selector::Kind(k) => write!(f, "kind:{k}"),
            Selector::Role { system, role } => write!(f, "role:{system}:{role}"),
            Selector::Net(n) => write!(f, "net:{n}"),
            Selector::Host(h) => write!(f, "host:{h}"),
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = String::deserialize(d)?;
        Selector::parse(&t).map_err(serde::de::Error::custom)
    }
}

/// What a zone of a site holds. Rules are written in terms of these kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ZoneKind {
    Cameras,
    Recording,
    Management,
    Clients,
    Dmz,
    Internet,
    Servers,
}

impl ZoneKind {
    pub const ALL: [ZoneKind; 7] = [
        ZoneKind::Cameras,
        ZoneKind::Recording,
        ZoneKind::Management,
        ZoneKind::Clients,
        ZoneKind::Dmz,
        ZoneKind::Internet,
        ZoneKind::Servers,
    ];

    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| ParseError::UnknownZoneKind(text.to_string()))
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ZoneKind::Cameras => "cameras",
            ZoneKind::Recording => "recording",
            ZoneKind::Management => "management",
            ZoneKind::Clients => "clients",
            ZoneKind::Dmz => "dmz",
            ZoneKind::Internet => "internet",
            ZoneKind::Servers => "servers",
        }
    }

    /// Zones on the untrusted side: only web-facing ports may be reached from there.
    pub fn is_untrusted(&self) -> bool {
        matches!(self, ZoneKind::Dmz | ZoneKind::Internet)
    }
}

impl fmt::Display for ZoneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn yes() -> bool {
    true
}

/// One port a role listens on (inbound) or connects to (outbound).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    pub port: PortRange,
    pub protocol: Protocol,
    /// Application protocol as the vendor names it: HTTP, HTTPS, RTSP, SMB, TCP...
    #[serde(default)]
    pub application: String,
    /// The process or service that owns the socket.
    #[serde(default)]
    pub process: String,
    /// Inbound: who may connect. Outbound: where this role connects to (`to` in catalogs).
    #[serde(default, alias = "to")]
    pub peers: Vec<Selector>,
    /// The vendor's words for who connects (or is connected to).
    #[serde(default)]
    pub peers_text: String,
    pub purpose: String,
    pub encrypted: bool,
    /// Bound to loopback only; a firewall must never open it.
    #[serde(default)]
    pub local_only: bool,
    #[serde(default = "yes")]
    pub enabled_by_default: bool,
    /// Needed only for a special case (MOBOTIX's MxMC port list calls them "Spezial Ports").
    #[serde(default)]
    pub special_case: bool,
    /// A web/mobile client port that may be exposed to a DMZ or the Internet.
    #[serde(default)]
    pub web: bool,
    /// One port per instance: instance N uses `port + N - 1` (XProtect 9001, 9002, ...).
    #[serde(default)]
    pub per_instance: bool,
    /// Deprecated by the vendor.
    #[serde(default)]
    pub deprecated: bool,
    #[serde(default)]
    pub notes: String,
    /// Turned on in this deployment although off by default (Vigil ports an admin enabled in
    /// the configuration). Catalog files cannot set it; sites use `enable = [...]`.
    #[serde(skip)]
    pub configured: bool,
}

/// A role: one service of a system, e.g. XProtect's Event Server or Vigil's recording role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    pub title: String,
    /// Capabilities other catalogs refer to with `kind:...`: recorder, management, web,
    /// events, camera, database, client, siem, other.
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub outbound: Vec<PortSpec>,
}

/// A system: Vigil itself or a third-party product from the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    pub name: String,
    pub title: String,
    /// Where the data comes from (the vendor document the port table follows).
    pub source: String,
    #[serde(default)]
    pub notes: Vec<String>,
    pub roles: Vec<Role>,
}

impl System {
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }
}

/// Direction of a flow as seen from the host that owns the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_reject() {
        assert_eq!(PortRange::parse("443").unwrap(), PortRange::single(443));
        assert_eq!(
            PortRange::parse("40001-40099").unwrap(),
            PortRange {
                start: 40001,
                end: 40099
            }
        );
        for bad in ["0", "65536", "x", "9-1", "1-70000", ""] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_round_trip_and_reject() {
        for s in [
            "local",
            "system",
            "zone:clients",
            "kind:recorder",
            "role:xprotect:event-server",
            "net:10.0.0.0/24",
            "host:siem",
        ] {
            assert_eq!(Selector::parse(s).unwrap().to_string(), s);
        }
        for bad in [
            "zone:lobby",
            "role:x",
            "net:10.0.0.1/24",
            "nothing",
            "kind:",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }
}

/// A device or server to probe, e.g. a camera from the database (`rtsp://cam1:554/...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// A name for reports (camera name, host name).
    pub name: String,
    /// Host name or IP address as used to connect (checked against the certificate's names).
    pub host: String,
    pub port: u16,
    /// `rtsp`, `rtsps`, `http`, `https`, `tls`, or empty when unknown.
    pub scheme: String,
    /// Names the device when several endpoints are known to be ports of one device (Vigil's
    /// own listeners serve one certificate on purpose); `None`: the endpoint is a device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl Endpoint {
    pub fn new(name: impl Into<String>, host: impl Into<String>, port: u16, scheme: &str) -> Self {
        Self {
            name: name.into(),
            host: host.into(),
            port,
            scheme: scheme.to_ascii_lowercase(),
            device: None,
        }
    }

    /// The endpoint as one port of the device `device`.
    pub fn on_device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }

    /// Builds an endpoint from a URL such as `rtsps://10.0.0.5:322/stream1`, filling in the
    /// scheme's default port. Credentials in the URL are dropped, never reported.
    pub fn from_url(name: impl Into<String>, url: &str) -> Result<Self, ParseError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| ParseError::NotAUrl(url.to_string()))?;
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "rtsp" => 554,
            "rtsps" => 322,
            "http" => 80,
            "https" => 443,
            other => return Err(ParseError::UnsupportedScheme(other.to_string())),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let hostport = authority
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(authority);
        if hostport.is_empty() {
            return Err(ParseError::NoHost(scheme));
        }
        let (host, port) = crate::vigil::split_host_port(hostport, default);
        Ok(Self::new(name, host, port, &scheme))
    }
}
