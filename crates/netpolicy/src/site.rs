//! The site file (`site.toml`): zones with subnets and hosts with roles, parsed with source
//! spans so that every error names the line that causes it.
//!
//! The file is outside input written by hand, so validation is strict: overlapping or
//! malformed subnets, unknown roles, ports out of range and hosts that fall in no zone are all
//! refused with the line number and what to change.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::catalog::Catalog;
use crate::model::{ParseError, PortRange, Protocol, ZoneKind, check_port, parse_net};

/// A site error with the file and line it comes from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct SiteError {
    pub path: PathBuf,
    /// 1-based; 0 when the error is about the file as a whole.
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// Catalog systems whose port tables show what the file may say instead (for the CLI to
    /// point at); empty for most errors.
    pub see_systems: Vec<String>,
}

/// A `SYSTEM:ROLE` reference that names nothing in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleRefError {
    #[error(
        "role `{0}` must be written SYSTEM:ROLE, e.g. vigil:recording or xprotect:recording-server"
    )]
    Malformed(String),
    #[error("unknown system `{system}` in role `{text}`; known systems: {}", known.join(", "))]
    UnknownSystem {
        text: String,
        system: String,
        known: Vec<String>,
    },
    #[error("unknown role `{text}`; {system} has: {}", known.join(", "))]
    UnknownRole {
        text: String,
        system: String,
        known: Vec<String>,
    },
    /// A Vigil role the configuration leaves off, so it has no ports to open.
    #[error("role `{text}` is off in this configuration: {turn_on}")]
    RoleOff { text: String, turn_on: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: Option<Spanned<String>>,
    #[serde(default)]
    zones: Vec<RawZone>,
    #[serde(default)]
    hosts: Vec<RawHost>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    name: Spanned<String>,
    kind: Spanned<String>,
    subnets: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    address: Spanned<String>,
    roles: Spanned<Vec<Spanned<String>>>,
    instances: Option<Spanned<i64>>,
    #[serde(default)]
    enable: Vec<Spanned<String>>,
    #[serde(default)]
    ports: Vec<RawOverride>,
    #[serde(default)]
    probe: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    role: Spanned<String>,
    default: Spanned<i64>,
    port: Spanned<i64>,
}

/// A zone: a set of subnets holding one kind of device.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub kind: ZoneKind,
    pub subnets: Vec<IpNet>,
}

/// A role reference `system:role`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleRef {
    pub system: String,
    pub role: String,
}

impl std::fmt::Display for RoleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.system, self.role)
    }
}

/// A changed port: the role's `default` port is configured as `port` on this host.
#[derive(Debug, Clone, PartialEq)]
pub struct PortOverride {
    pub role: RoleRef,
    pub default: u16,
    pub port: u16,
}

/// A host of the site.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub address: IpAddr,
    /// Index into `Site::zones`.
    pub zone: usize,
    pub roles: Vec<RoleRef>,
    /// Number of instances of per-instance ports (XProtect: 9001, 9002, ...).
    pub instances: u16,
    /// Ports that are disabled by default but turned on here.
    pub enable: Vec<(PortRange, Protocol)>,
    pub overrides: Vec<PortOverride>,
    /// Whether `vigil audit --site` probes this host (default true).
    pub probe: bool,
}

/// A parsed and validated site.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub name: String,
    pub zones: Vec<Zone>,
    pub hosts: Vec<Host>,
}

/// Turns a byte offset into a 1-based (line, column).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Site {
    /// Reads and validates a site file against the systems of `catalog`.
    pub fn load(path: &Path, catalog: &Catalog) -> Result<Self, SiteError> {
        let text = std::fs::read_to_string(path).map_err(|e| SiteError {
            path: path.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read the site file: {e}"),
            see_systems: Vec::new(),
        })?;
        Self::parse(&text, path, catalog)
    }

    /// Parses and validates site text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path, catalog: &Catalog) -> Result<Self, SiteError> {
        let err_at = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            SiteError {
                path: path.to_owned(),
                line,
                column,
                message,
                see_systems: Vec::new(),
            }
        };
        let raw: RawSite = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            err_at(offset, e.message().trim().to_string())
        })?;

        let mut zones: Vec<Zone> = Vec::new();
        let mut zone_spans: Vec<Vec<usize>> = Vec::new();
        let mut zone_names = HashSet::new();
        for z in &raw.zones {
            let name = z.name.get_ref().trim().to_string();
            if name.is_empty() {
                return Err(err_at(z.name.span().start, "zone name is empty".into()));
            }
            if !zone_names.insert(name.clone()) {
                return Err(err_at(
                    z.name.span().start,
                    format!("zone `{name}` is defined twice; give each zone its own name"),
                ));
            }
            let kind = ZoneKind::parse(z.kind.get_ref())
                .map_err(|m| err_at(z.kind.span().start, m.to_string()))?;
            if z.subnets.get_ref().is_empty() {
                return Err(err_at(
                    z.subnets.span().start,
                    format!("zone `{name}` has no subnets; list at least one CIDR"),
                ));
            }
            let mut subnets = Vec::new();
            let mut spans = Vec::new();
            for s in z.subnets.get_ref() {
                let net = parse_net(s.get_ref())
                    .map_err(|m| err_at(s.span().start, format!("zone `{name}`: {m}")))?;
                subnets.push(net);
                spans.push(s.span().start);
            }
            zones.push(Zone {
                name,
                kind,
                subnets,
            });
            zone_spans.push(spans);
        }
        if zones.is_empty() {
            return Err(err_at(
                0,
                "the site has no zones; add [[zones]] with name, kind and subnets".into(),
            ));
        }
        // Overlaps: an address must belong to one zone only, or the rules would contradict
        // each other. Internet zones stand for "everything else" and may contain the rest.
        for (i, a) in zones.iter().enumerate() {
            for (j, b) in zones.iter().enumerate().skip(i) {
                if i != j && (a.kind == ZoneKind::Internet || b.kind == ZoneKind::Internet) {
                    continue;
                }
                for (si, na) in a.subnets.iter().enumerate() {
                    for (sj, nb) in b.subnets.iter().enumerate() {
                        if i == j && sj <= si {
                            continue;
                        }
                        if na.contains(nb) || nb.contains(na) {
                            // Point at the later of the two subnets: that is the one to fix.
                            let off = zone_spans[j][sj];
                            let what = if i == j {
                                format!("zone `{}` lists overlapping subnets {na} and {nb}", a.name)
                            } else {
                                format!(
                                    "subnet {nb} of zone `{}` overlaps {na} of zone `{}`; \
                                     every address must belong to one zone",
                                    b.name, a.name
                                )
                            };
                            return Err(err_at(off, what));
                        }
                    }
                }
            }
        }

        let mut hosts = Vec::new();
        let mut host_names = HashSet::new();
        let mut addresses = HashMap::new();
        for h in &raw.hosts {
            let name = h.name.get_ref().trim().to_string();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(err_at(
                    h.name.span().start,
                    format!("host name `{name}` must be non-empty and without spaces"),
                ));
            }
            if !host_names.insert(name.clone()) {
                return Err(err_at(
                    h.name.span().start,
                    format!("host `{name}` is defined twice"),
                ));
            }
            let address: IpAddr = h.address.get_ref().trim().parse().map_err(|_| {
                err_at(
                    h.address.span().start,
                    format!(
                        "host `{name}`: `{}` is not an IP address; write e.g. 10.20.0.10",
                        h.address.get_ref()
                    ),
                )
            })?;
            if let Some(other) = addresses.insert(address, name.clone()) {
                return Err(err_at(
                    h.address.span().start,
                    format!("host `{name}` has the address {address} of host `{other}`"),
                ));
            }
            // The most specific zone wins so an internet 0.0.0.0/0 does not swallow the rest.
            let zone = zones
                .iter()
                .enumerate()
                .flat_map(|(i, z)| {
                    z.subnets
                        .iter()
                        .filter(move |n| n.contains(&address))
                        .map(move |n| (i, n.prefix_len()))
                })
                .max_by_key(|(_, p)| *p)
                .map(|(i, _)| i)
                .ok_or_else(|| {
                    err_at(
                        h.address.span().start,
                        format!(
                            "host `{name}` ({address}) is in no zone; add its subnet to a zone \
                             or correct the address"
                        ),
                    )
                })?;
            if zones[zone].kind == ZoneKind::Internet {
                return Err(err_at(
                    h.address.span().start,
                    format!(
                        "host `{name}` ({address}) is in the internet zone `{}`; put \
                         Internet-facing servers in a dmz zone",
                        zones[zone].name
                    ),
                ));
            }
            if h.roles.get_ref().is_empty() {
                return Err(err_at(
                    h.roles.span().start,
                    format!(
                        "host `{name}` has no roles; list at least one, e.g. \"vigil:recording\""
                    ),
                ));
            }
            let mut roles = Vec::new();
            for r in h.roles.get_ref() {
                let rr = parse_role_ref(r.get_ref(), catalog)
                    .map_err(|m| err_at(r.span().start, format!("host `{name}`: {m}")))?;
                if !roles.contains(&rr) {
                    roles.push(rr);
                }
            }
            let instances = match &h.instances {
                None => 1,
                Some(n) => {
                    let v = *n.get_ref();
                    if !(1..=99).contains(&v) {
                        return Err(err_at(
                            n.span().start,
                            format!("host `{name}`: instances = {v}; use 1 to 99"),
                        ));
                    }
                    v as u16
                }
            };
            let mut enable = Vec::new();
            for e in &h.enable {
                let (range, proto) = parse_port_proto(e.get_ref())
                    .map_err(|m| err_at(e.span().start, format!("host `{name}`: {m}")))?;
                let known = roles.iter().any(|rr| {
                    let role = catalog.system(&rr.system).and_then(|s| s.role(&rr.role));
                    role.is_some_and(|role| {
                        role.ports.iter().chain(&role.outbound).any(|p| {
                            p.protocol == proto && p.port == range && !p.enabled_by_default
                        })
                    })
                });
                if !known {
                    let mut err = err_at(
                        e.span().start,
                        format!(
                            "host `{name}`: `{}` is not a disabled-by-default port of its roles",
                            e.get_ref()
                        ),
                    );
                    for rr in &roles {
                        if !err.see_systems.contains(&rr.system) {
                            err.see_systems.push(rr.system.clone());
                        }
                    }
                    return Err(err);
                }
                enable.push((range, proto));
            }
            let mut overrides = Vec::new();
            for o in &h.ports {
                let rr = parse_role_ref(o.role.get_ref(), catalog)
                    .map_err(|m| err_at(o.role.span().start, format!("host `{name}`: {m}")))?;
                if !roles.contains(&rr) {
                    return Err(err_at(
                        o.role.span().start,
                        format!("host `{name}` does not run {rr}; add it to roles first"),
                    ));
                }
                let default = check_port(*o.default.get_ref())
                    .map_err(|m| err_at(o.default.span().start, format!("host `{name}`: {m}")))?;
                let port = check_port(*o.port.get_ref())
                    .map_err(|m| err_at(o.port.span().start, format!("host `{name}`: {m}")))?;
                let role = catalog
                    .system(&rr.system)
                    .and_then(|s| s.role(&rr.role))
                    .expect("checked by parse_role_ref");
                if !role
                    .ports
                    .iter()
                    .chain(&role.outbound)
                    .any(|p| p.port == PortRange::single(default))
                {
                    return Err(err_at(
                        o.default.span().start,
                        format!("host `{name}`: {rr} has no port {default} to change"),
                    ));
                }
                overrides.push(PortOverride {
                    role: rr,
                    default,
                    port,
                });
            }
            hosts.push(Host {
                name,
                address,
                zone,
                roles,
                instances,
                enable,
                overrides,
                probe: h.probe.unwrap_or(true),
            });
        }
        let name = raw
            .name
            .map(|n| n.into_inner())
            .unwrap_or_else(|| "site".into());
        if name.contains(['"', '\'', '\n', '\\']) {
            return Err(err_at(
                0,
                "site name must not contain quotes, backslashes or newlines".into(),
            ));
        }
        Ok(Site { name, zones, hosts })
    }

    /// The zone that holds `ip` (most specific subnet), if any.
    pub fn zone_of(&self, ip: IpAddr) -> Option<&Zone> {
        self.zones
            .iter()
            .flat_map(|z| {
                z.subnets
                    .iter()
                    .filter(move |n| n.contains(&ip))
                    .map(move |n| (z, n.prefix_len()))
            })
            .max_by_key(|(_, p)| *p)
            .map(|(z, _)| z)
    }
}

fn parse_role_ref(text: &str, catalog: &Catalog) -> Result<RoleRef, RoleRefError> {
    let (system, role) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| RoleRefError::Malformed(text.to_string()))?;
    let sys = catalog
        .system(system)
        .ok_or_else(|| RoleRefError::UnknownSystem {
            text: text.to_string(),
            system: system.to_string(),
            known: catalog.systems.iter().map(|s| s.name.clone()).collect(),
        })?;
    if sys.role(role).is_none() {
        if let Some(turn_on) = crate::vigil::template().turn_on(&sys.name, role) {
            return Err(RoleRefError::RoleOff {
                text: text.to_string(),
                turn_on: turn_on.to_string(),
            });
        }
        return Err(RoleRefError::UnknownRole {
            text: text.to_string(),
            system: system.to_string(),
            known: sys.roles.iter().map(|r| r.name.clone()).collect(),
        });
    }
    Ok(RoleRef {
        system: system.to_string(),
        role: role.to_string(),
    })
}

/// Parses `5432/tcp` or `40001-40099/tcp` (protocol defaults to tcp).
fn parse_port_proto(text: &str) -> Result<(PortRange, Protocol), ParseError> {
    let (p, proto) = match text.trim().split_once('/') {
        Some((p, "tcp")) => (p, Protocol::Tcp),
        Some((p, "udp")) => (p, Protocol::Udp),
        Some((_, other)) => return Err(ParseError::UnknownProtocol(other.to_string())),
        None => (text.trim(), Protocol::Tcp),
    };
    Ok((PortRange::parse(p)?, proto))
}
