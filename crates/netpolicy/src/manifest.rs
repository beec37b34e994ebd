//! The port manifest (`vigil ports`): every port the configured deployment opens or connects
//! to, in the shape of the per-service port tables of vendor hardening guides (XProtect's), as
//! text table, JSON or CSV.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{Direction, Endpoint, ParseError, PortSpec, Protocol, System};

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestRow {
    /// `8443` or `40001-40099`.
    pub port: String,
    pub protocol: Protocol,
    /// `system:role`.
    pub role: String,
    pub process: String,
    pub application: String,
    pub direction: Direction,
    /// Who connects (inbound) or what is connected to (outbound).
    pub peers: String,
    pub purpose: String,
    pub encrypted: bool,
    pub local_only: bool,
    pub enabled_by_default: bool,
    /// The configured bind address, for Vigil's own listeners.
    pub bind: String,
    pub notes: String,
}

/// Output format of tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl std::str::FromStr for Format {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(ParseError::UnknownFormat(s.to_string())),
        }
    }
}

fn row(system: &str, role: &str, p: &PortSpec, dir: Direction, bind: String) -> ManifestRow {
    let mut notes = p.notes.clone();
    for (flag, text) in [
        (p.deprecated, "deprecated"),
        (p.special_case, "special case only"),
        (p.per_instance, "one port per instance (+1 each)"),
    ] {
        if flag {
            if !notes.is_empty() {
                notes.push_str("; ");
            }
            notes.push_str(text);
        }
    }
    ManifestRow {
        port: p.port.to_string(),
        protocol: p.protocol,
        role: format!("{system}:{role}"),
        process: p.process.clone(),
        application: p.application.clone(),
        direction: dir,
        peers: if p.peers_text.is_empty() {
            p.peers
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            p.peers_text.clone()
        },
        purpose: p.purpose.clone(),
        encrypted: p.encrypted,
        local_only: p.local_only,
        enabled_by_default: p.enabled_by_default,
        bind,
        notes,
    }
}

/// Rows for every port of a system (inbound first, then outbound, in catalog order).
pub fn system_rows(system: &System) -> Vec<ManifestRow> {
    let mut rows = Vec::new();
    for r in &system.roles {
        for p in &r.ports {
            rows.push(row(
                &system.name,
                &r.name,
                p,
                Direction::Inbound,
                String::new(),
            ));
        }
    }
    for r in &system.roles {
        for p in &r.outbound {
            rows.push(row(
                &system.name,
                &r.name,
                p,
                Direction::Outbound,
                String::new(),
            ));
        }
    }
    rows
}

/// The manifest of a Vigil deployment: its listeners with their bind addresses, its outbound
/// connections, and one outbound row per distinct camera port and scheme in `cameras`.
pub fn vigil_manifest(config: &vigil_config::Config, cameras: &[Endpoint]) -> Vec<ManifestRow> {
    let system = crate::vigil::system(config);
    let mut rows = system_rows(&system);
    let listeners = crate::vigil::listeners(config);
    for r in rows
        .iter_mut()
        .filter(|r| r.direction == Direction::Inbound)
    {
        let proto = r.protocol.to_string();
        if let Some((_, addr, _)) = listeners
            .iter()
            .find(|(_, a, p)| a.port().to_string() == r.port && *p == proto)
        {
            r.bind = addr.to_string();
        }
    }
    let mut groups: BTreeMap<(u16, String), Vec<&str>> = BTreeMap::new();
    for c in cameras {
        groups
            .entry((c.port, c.scheme.clone()))
            .or_default()
            .push(c.name.as_str());
    }
    for ((port, scheme), names) in groups {
        let encrypted = matches!(scheme.as_str(), "rtsps" | "https" | "tls");
        let shown: Vec<&str> = names.iter().take(5).copied().collect();
        let more = if names.len() > 5 {
            format!(" and {} more", names.len() - 5)
        } else {
            String::new()
        };
        rows.push(ManifestRow {
            port: port.to_string(),
            protocol: Protocol::Tcp,
            role: "vigil:recording".into(),
            process: "vigil recording".into(),
            application: scheme.to_ascii_uppercase(),
            direction: Direction::Outbound,
            peers: format!(
                "{} configured camera(s): {}{more}",
                names.len(),
                shown.join(", ")
            ),
            purpose: "pull video from configured cameras".into(),
            encrypted,
            local_only: false,
            enabled_by_default: true,
            bind: String::new(),
            notes: if encrypted {
                String::new()
            } else {
                "plaintext: camera credentials and video cross the network in clear".into()
            },
        });
    }
    rows
}

const HEADERS: [&str; 12] = [
    "port",
    "protocol",
    "role",
    "process",
    "direction",
    "who connects",
    "purpose",
    "encrypted",
    "local only",
    "enabled by default",
    "bind",
    "notes",
];

fn yn(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn cells(r: &ManifestRow) -> [String; 12] {
    [
        r.port.clone(),
        r.protocol.to_string(),
        r.role.clone(),
        r.process.clone(),
        r.direction.to_string(),
        r.peers.clone(),
        r.purpose.clone(),
        yn(r.encrypted),
        yn(r.local_only),
        yn(r.enabled_by_default),
        r.bind.clone(),
        r.notes.clone(),
    ]
}

/// Renders rows in the requested format.
pub fn render(rows: &[ManifestRow], format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(rows).expect("rows serialize") + "\n",
        Format::Csv => {
            let mut out = String::new();
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .map(|c| csv_field(c))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            out.push_str(&line(&HEADERS.map(String::from)));
            out.push_str("\r\n");
            for r in rows {
                out.push_str(&line(&cells(r)));
                out.push_str("\r\n");
            }
            out
        }
        Format::Table => {
            // Long free-text columns (purpose, notes) would make every line wrap; the table
            // shows the first 9 columns and the purpose, JSON/CSV carry everything.
            let cols = [0usize, 1, 2, 4, 5, 7, 8, 9, 10, 6];
            let all: Vec<[String; 12]> = rows.iter().map(cells).collect();
            let width = |c: usize| {
                all.iter()
                    .map(|r| r[c].chars().count().min(48))
                    .chain([HEADERS[c].len()])
                    .max()
                    .unwrap_or(0)
            };
            let widths: Vec<usize> = cols.iter().map(|&c| width(c)).collect();
            let mut out = String::new();
            let mut push = |cells: Vec<String>| {
                let mut line = String::new();
                for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                    let cell: String = if i + 1 < cells.len() && cell.chars().count() > 48 {
                        cell.chars().take(47).chain(['…']).collect()
                    } else {
                        cell.clone()
                    };
                    if i + 1 == cells.len() {
                        line.push_str(&cell);
                    } else {
                        let _ = write!(line, "{cell:<w$}  ");
                    }
                }
                out.push_str(line.trim_end());
                out.push('\n');
            };
            push(cols.iter().map(|&c| HEADERS[c].to_string()).collect());
            for r in &all {
                push(cols.iter().map(|&c| r[c].clone()).collect());
            }
            out
        }
    }
}

/// The roles and listeners a configuration leaves off, with how to turn each on (printed
/// after the table by `vigil ports`); empty when nothing is off.
pub fn render_off(off: &[crate::vigil::Off]) -> String {
    if off.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nOff (nothing listens for these; how to turn each on):\n");
    for o in off {
        let _ = writeln!(out, "  {}: {}", o.role, o.what);
        let _ = writeln!(out, "    {}", o.turn_on);
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_config::Config;

    fn find<'a>(rows: &'a [ManifestRow], port: &str, dir: Direction) -> &'a ManifestRow {
        rows.iter()
            .find(|r| r.port == port && r.direction == dir)
            .unwrap_or_else(|| panic!("{port} {dir}"))
    }

    #[test]
    fn default_config_manifest() {
        let mut c = Config::with_data_dir("/d");
        c.siem.target = Some("10.9.9.9:6514".into());
        let cams = vec![
            Endpoint::from_url("lobby", "rtsp://u:p@10.1.0.5/s1").unwrap(),
            Endpoint::from_url("gate", "rtsps://10.1.0.6:322/s1").unwrap(),
        ];
        let rows = vigil_manifest(&c, &cams);
        let m = find(&rows, "8443", Direction::Inbound);
        assert!(m.encrypted && !m.local_only && m.enabled_by_default);
        assert_eq!(m.bind, "0.0.0.0:8443");
        let metrics = find(&rows, "9464", Direction::Inbound);
        assert!(metrics.local_only && !metrics.encrypted);
        assert_eq!(metrics.bind, "127.0.0.1:9464");
        assert!(metrics.peers.contains("loopback"), "{}", metrics.peers);
        // What serve does not open is not listed: no events role by default, no inter-server
        // API in either direction.
        for port in ["9443", "8444", "1234", "6514"] {
            assert!(
                !rows
                    .iter()
                    .any(|r| r.port == port && r.direction == Direction::Inbound),
                "{port}"
            );
        }
        assert!(!rows.iter().any(|r| r.port == "9443" || r.port == "8444"));
        let siem = find(&rows, "6514", Direction::Outbound);
        assert!(siem.encrypted && siem.peers.contains("10.9.9.9"));
        let rtsps = find(&rows, "322", Direction::Outbound);
        assert!(rtsps.encrypted);
        let cam_rows: Vec<_> = rows
            .iter()
            .filter(|r| r.peers.contains("configured camera"))
            .collect();
        assert_eq!(cam_rows.len(), 2);
        assert!(
            cam_rows
                .iter()
                .any(|r| r.port == "554" && !r.encrypted && r.peers.contains("lobby"))
        );
        // No credentials leak from URLs.
        assert!(!render(&rows, Format::Json).contains("u:p"));
    }

    #[test]
    fn plaintext_options_show_up_as_not_default() {
        let mut c = Config::with_data_dir("/d");
        c.management.http.push(vigil_config::Listener {
            bind: "0.0.0.0:8080".parse().unwrap(),
            label: String::new(),
        });
        c.events.udp = Some(vigil_config::Listener {
            bind: "0.0.0.0:1234".parse().unwrap(),
            label: String::new(),
        });
        c.events.enabled = true;
        let rows = vigil_manifest(&c, &[]);
        let http = find(&rows, "8080", Direction::Inbound);
        assert!(!http.encrypted && !http.enabled_by_default);
        let udp = rows
            .iter()
            .find(|r| r.port == "1234" && r.protocol == Protocol::Udp)
            .unwrap();
        assert!(!udp.encrypted && !udp.enabled_by_default);
        // The events role is off by default, so its TLS listener is not a default either.
        let tls = rows
            .iter()
            .find(|r| r.port == "1234" && r.protocol == Protocol::Tcp)
            .unwrap();
        assert!(tls.encrypted && !tls.enabled_by_default);
    }

    #[test]
    fn what_is_off_says_how_to_turn_it_on() {
        let c = Config::with_data_dir("/d");
        let off = crate::vigil::off(&c);
        let text = render_off(&off);
        let find_off = |role: &str| {
            off.iter()
                .find(|o| o.role == role)
                .unwrap_or_else(|| panic!("{role} in {text}"))
        };
        let events = find_off("vigil:events");
        assert_eq!(events.what, "1234/tcp TLS, 6514/tcp syslog/TLS");
        assert!(events.turn_on.contains("events.allowed_sources"), "{text}");
        assert!(
            find_off("vigil:siem-forwarder")
                .turn_on
                .contains("[[siem.collectors]]")
        );
        let inter: Vec<&str> = off
            .iter()
            .filter(|o| o.turn_on.starts_with("run the ") && o.turn_on.contains("docs/cluster.md"))
            .map(|o| o.what.as_str())
            .collect();
        assert_eq!(
            inter,
            [
                "tcp HTTPS (mutual TLS) (management.inter_server)",
                "tcp HTTPS (mutual TLS) (recording.api)"
            ]
        );
        assert!(text.starts_with("\nOff ("), "{text}");
        // Turned on, a role leaves the list.
        let mut on = c.clone();
        on.events.enabled = true;
        on.metrics.enabled = false;
        let off = crate::vigil::off(&on);
        assert!(!off.iter().any(|o| o.role == "vigil:events"));
        let metrics = off.iter().find(|o| o.role == "vigil:metrics").unwrap();
        assert_eq!(metrics.what, "9464/tcp HTTP");
        assert!(render_off(&[]).is_empty());
    }

    #[test]
    fn formats_render() {
        let rows = vigil_manifest(&Config::with_data_dir("/d"), &[]);
        let table = render(&rows, Format::Table);
        assert!(table.lines().next().unwrap().starts_with("port"));
        assert_eq!(table.lines().count(), rows.len() + 1);
        let csv = render(&rows, Format::Csv);
        assert_eq!(csv.lines().count(), rows.len() + 1);
        assert!(csv.starts_with("port,protocol,role,"));
        let json: serde_json::Value = serde_json::from_str(&render(&rows, Format::Json)).unwrap();
        assert_eq!(json.as_array().unwrap().len(), rows.len());
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert!("xml".parse::<Format>().is_err());
    }

    #[test]
    fn endpoint_urls() {
        let e = Endpoint::from_url("c", "rtsp://admin:secret@[fd00::5]:8554/x").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("fd00::5", 8554));
        assert_eq!(Endpoint::from_url("c", "https://cam").unwrap().port, 443);
        assert!(Endpoint::from_url("c", "ftp://cam").is_err());
        assert!(Endpoint::from_url("c", "cam:554").is_err());
    }
}
