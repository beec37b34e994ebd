//! Vigil's own entry in the catalog, built from a `vigil_config::Config` because every Vigil
//! port is configurable. The roles follow DESIGN.md's "Roles and ports" table.

use std::net::IpAddr;

use vigil_config::Config;

use crate::model::{PortRange, PortSpec, Protocol, Role, Selector, System, ZoneKind};

/// Default RTSPS port (RFC 7826 registers 322 for RTSP over TLS).
pub const RTSPS_PORT: u16 = 322;
/// Default syslog-over-TLS port (RFC 5425).
pub const SYSLOG_TLS_PORT: u16 = 6514;

fn spec(port: u16, protocol: Protocol, application: &str, process: &str) -> PortSpec {
    PortSpec {
        port: PortRange::single(port),
        protocol,
        application: application.into(),
        process: process.into(),
        peers: Vec::new(),
        peers_text: String::new(),
        purpose: String::new(),
        encrypted: true,
        local_only: false,
        enabled_by_default: true,
        special_case: false,
        web: false,
        per_instance: false,
        deprecated: false,
        notes: String::new(),
        configured: false,
    }
}

fn local(mut p: PortSpec, ip: IpAddr) -> PortSpec {
    if ip.is_loopback() {
        p.local_only = true;
        p.peers = vec![Selector::Local];
        p.peers_text = "local processes only (bound to loopback)".into();
        p.web = false;
    }
    p
}

/// The Vigil system with the ports of `config`. Disabled roles are left out.
pub fn system(config: &Config) -> System {
    let mut roles = Vec::new();
    if config.management.enabled {
        let mut r = Role {
            name: "management".into(),
            title: "Vigil management: configuration, users, REST API, web client".into(),
            kinds: vec!["management".into(), "web".into()],
            notes: String::new(),
            ports: Vec::new(),
            outbound: Vec::new(),
        };
        for l in &config.management.https {
            let internet = l.label.to_ascii_lowercase().contains("internet");
            let mut p = spec(l.bind.port(), Protocol::Tcp, "HTTPS", "vigil management");
            p.peers = vec![Selector::Zone(ZoneKind::Clients)];
            p.peers_text = "browsers and API clients".into();
            if internet {
                p.peers.push(Selector::Zone(ZoneKind::Internet));
                p.peers_text = "browsers and API clients, also from the Internet".into();
            }
            p.purpose = "web client, REST API, live and recorded video".into();
            p.web = true;
            if !l.label.is_empty() {
                p.notes = format!("listener label: {}", l.label);
            }
            r.ports.push(local(p, l.bind.ip()));
        }
        for l in &config.management.http {
            let mut p = spec(l.bind.port(), Protocol::Tcp, "HTTP", "vigil management");
            p.peers = vec![Selector::Zone(ZoneKind::Clients)];
            p.peers_text = "browsers".into();
            p.purpose = "redirect to HTTPS".into();
            p.encrypted = false;
            p.enabled_by_default = false;
            p.configured = true;
            p.notes = "plaintext, enabled by the admin: pages redirect to HTTPS and \
                       credential-bearing endpoints answer 403"
                .into();
            r.ports.push(local(p, l.bind.ip()));
        }
        {
            // The management inter-server API: recording servers connect to it (register,
            // report status and events, fetch their configuration). Only they may reach it.
            let l = &config.management.inter_server;
            let mut p = spec(
                l.bind.port(),
                Protocol::Tcp,
                "HTTPS (mutual TLS)",
                "vigil management",
            );
            p.peers = vec![Selector::Role {
                system: "vigil".into(),
                role: "recording".into(),
            }];
            p.peers_text = "recording servers only (certificate from the system CA)".into();
            p.purpose = "management inter-server API: recording servers register, report \
                         status and events, fetch configuration"
                .into();
            if !l.label.is_empty() {
                p.notes = format!("listener label: {}", l.label);
            }
            r.ports.push(local(p, l.bind.ip()));
        }
        {
            // Remote recording servers exist even when this host records nothing itself.
            let mut o = spec(
                config.recording.api.bind.port(),
                Protocol::Tcp,
                "HTTPS (mutual TLS)",
                "vigil management",
            );
            o.peers = vec![Selector::Role {
                system: "vigil".into(),
                role: "recording".into(),
            }];
            o.peers_text = "recording servers".into();
            o.purpose =
                "recording inter-server API: cameras, live and recorded video, status".into();
            r.outbound.push(o);
        }
        roles.push(r);
    }
    if config.recording.enabled {
        let mut r = Role {
            name: "recording".into(),
            title: "Vigil recording: pulls camera streams, stores and signs video".into(),
            kinds: vec!["recorder".into()],
            notes: String::new(),
            ports: Vec::new(),
            outbound: Vec::new(),
        };
        let l = &config.recording.api;
        let mut p = spec(
            l.bind.port(),
            Protocol::Tcp,
            "HTTPS (mutual TLS)",
            "vigil recording",
        );
        p.peers = vec![Selector::Role {
            system: "vigil".into(),
            role: "management".into(),
        }];
        p.peers_text = "management server (certificate from the system CA)".into();
        p.purpose = "recording inter-server API: the management server pulls video and \
                     manages cameras"
            .into();
        r.ports.push(local(p, l.bind.ip()));
        {
            // Management servers exist even when this host runs no management role itself.
            let mut o = spec(
                config.management.inter_server.bind.port(),
                Protocol::Tcp,
                "HTTPS (mutual TLS)",
                "vigil recording",
            );
            o.peers = vec![Selector::Role {
                system: "vigil".into(),
                role: "management".into(),
            }];
            o.peers_text = "management servers".into();
            o.purpose =
                "management inter-server API: register, status, events, configuration".into();
            r.outbound.push(o);
        }
        for (port, app, enc, purpose) in [
            (554, "RTSP", false, "camera video streams"),
            (RTSPS_PORT, "RTSPS", true, "camera video streams over TLS"),
            (80, "HTTP", false, "ONVIF and camera configuration"),
            (
                443,
                "HTTPS",
                true,
                "ONVIF and camera configuration over TLS",
            ),
        ] {
            let mut o = spec(port, Protocol::Tcp, app, "vigil recording");
            o.peers = vec![Selector::Zone(ZoneKind::Cameras)];
            o.peers_text = "cameras".into();
            o.purpose = purpose.into();
            o.encrypted = enc;
            r.outbound.push(o);
        }
        roles.push(r);
    }
    if config.events.enabled {
        let mut r = Role {
            name: "events".into(),
            title: "Vigil events: generic events, syslog in, analytics events".into(),
            kinds: vec!["events".into()],
            notes: String::new(),
            ports: Vec::new(),
            outbound: Vec::new(),
        };
        let mut sources = Vec::new();
        let mut bad = Vec::new();
        for s in &config.events.allowed_sources {
            match crate::model::parse_net(s) {
                Ok(n) => sources.push(Selector::Net(n)),
                Err(_) => bad.push(s.clone()),
            }
        }
        let sources_text = if sources.is_empty() {
            "none: events.allowed_sources is empty, so no remote source is let in".to_string()
        } else {
            format!(
                "events.allowed_sources: {}",
                config.events.allowed_sources.join(", ")
            )
        };
        let bad_note = if bad.is_empty() {
            String::new()
        } else {
            format!("ignored invalid allowed_sources: {}", bad.join(", "))
        };
        let mut tcp = spec(
            config.events.tcp.bind.port(),
            Protocol::Tcp,
            "TLS",
            "vigil events",
        );
        tcp.peers = sources.clone();
        tcp.peers_text = sources_text.clone();
        tcp.purpose = "generic events from external systems".into();
        tcp.notes = bad_note.clone();
        r.ports.push(local(tcp, config.events.tcp.bind.ip()));
        if let Some(udp) = &config.events.udp {
            let mut p = spec(udp.bind.port(), Protocol::Udp, "UDP", "vigil events");
            p.peers = sources.clone();
            p.peers_text = sources_text.clone();
            p.purpose = "generic events from external systems".into();
            p.encrypted = false;
            p.enabled_by_default = false;
            p.configured = true;
            p.notes = "plaintext, enabled by the admin".into();
            r.ports.push(local(p, udp.bind.ip()));
        }
        let mut sys = spec(
            config.events.syslog_tls.bind.port(),
            Protocol::Tcp,
            "syslog/TLS",
            "vigil events",
        );
        sys.peers = sources;
        sys.peers_text = sources_text;
        sys.purpose = "syslog from switches and firewalls (RFC 5425)".into();
        sys.notes = bad_note;
        r.ports.push(local(sys, config.events.syslog_tls.bind.ip()));
        roles.push(r);
    }
    if let Some(target) = &config.siem.target {
        let (host, port) = split_host_port(target, SYSLOG_TLS_PORT);
        let mut o = spec(port, Protocol::Tcp, "syslog/TLS", "vigil siem forwarder");
        o.peers = vec![match host.parse::<IpAddr>() {
            Ok(ip) => Selector::Net(ip.into()),
            Err(_) => Selector::Host(host.clone()),
        }];
        o.peers_text = format!("SIEM {target}");
        o.purpose = format!(
            "security and audit events ({})",
            if config.siem.cef { "CEF" } else { "RFC 5424" }
        );
        o.notes = "TLS with server certificate verification (RFC 5425)".into();
        roles.push(Role {
            name: "siem-forwarder".into(),
            title: "Vigil SIEM forwarder".into(),
            kinds: Vec::new(),
            notes: String::new(),
            ports: Vec::new(),
            outbound: vec![o],
        });
    }
    if config.metrics.enabled {
        let mut p = spec(
            config.metrics.bind.port(),
            Protocol::Tcp,
            "HTTP",
            "vigil metrics",
        );
        p.encrypted = false;
        p.purpose = "Prometheus metrics".into();
        p.peers = vec![Selector::Zone(ZoneKind::Management)];
        p.peers_text = "Prometheus scraper".into();
        p.notes = "should stay on 127.0.0.1".into();
        roles.push(Role {
            name: "metrics".into(),
            title: "Vigil metrics (Prometheus text)".into(),
            kinds: Vec::new(),
            notes: String::new(),
            ports: vec![local(p, config.metrics.bind.ip())],
            outbound: Vec::new(),
        });
    }
    System {
        name: "vigil".into(),
        title: "Vigil VMS (ports from the configuration)".into(),
        source: "vigil.toml and DESIGN.md roles table".into(),
        notes: vec!["Nothing listens in plaintext unless an admin turns it on.".into()],
        roles,
    }
}

/// Every listener of `config` as (component, address, protocol): the configuration's own list
/// plus the management inter-server API when the configuration does not list it.
pub fn listeners(config: &Config) -> Vec<(&'static str, std::net::SocketAddr, &'static str)> {
    let mut out = config.listeners();
    let inter = config.management.inter_server.bind;
    if config.management.enabled && !out.iter().any(|(_, a, p)| *a == inter && *p == "tcp") {
        let at = out
            .iter()
            .rposition(|(c, _, _)| c.starts_with("management"))
            .map_or(0, |i| i + 1);
        out.insert(at, ("management inter-server", inter, "tcp"));
    }
    out
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
