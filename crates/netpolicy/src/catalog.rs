//! The catalog of third-party systems (Milestone XProtect, MOBOTIX MxMC, the MOBOTIX camera
//! web server, the Niagara XProtect bridge, generic devices) plus Vigil itself.
//!
//! Third-party data lives as TOML in the repository's `catalog/` directory and is compiled in
//! with `include_str!`, so the binary needs no files at run time and a reviewer can diff the
//! port tables against the vendor documents. Vigil's own entry is data of the same shape
//! (`src/vigil_roles.toml`, see [`crate::vigil`]) whose port numbers, bind addresses and
//! sources are filled in from the configuration, because every Vigil port is configurable.

use std::fmt::Write as _;

use crate::model::{Selector, System};
use crate::{Error, vigil};

const BUILTIN: &[(&str, &str)] = &[
    (
        "xprotect.toml",
        include_str!("../../../catalog/xprotect.toml"),
    ),
    ("mxmc.toml", include_str!("../../../catalog/mxmc.toml")),
    (
        "mobotix-camera.toml",
        include_str!("../../../catalog/mobotix-camera.toml"),
    ),
    (
        "niagara-xprotect.toml",
        include_str!("../../../catalog/niagara-xprotect.toml"),
    ),
    (
        "generic.toml",
        include_str!("../../../catalog/generic.toml"),
    ),
];

/// All systems a site may refer to: the embedded third-party catalog plus Vigil.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub systems: Vec<System>,
}

/// Parses one catalog file; `file` only names it in errors.
pub fn parse_system(file: &str, text: &str) -> Result<System, Error> {
    let system: System = toml::from_str(text).map_err(|e| Error::Catalog {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    check_system(file, &system)?;
    Ok(system)
}

pub(crate) fn check_system(file: &str, system: &System) -> Result<(), Error> {
    let err = |message: String| Error::Catalog {
        file: file.to_string(),
        message,
    };
    let mut names = std::collections::HashSet::new();
    for role in &system.roles {
        if !names.insert(role.name.as_str()) {
            return Err(err(format!("role `{}` is listed twice", role.name)));
        }
        for p in role.ports.iter().chain(&role.outbound) {
            if p.local_only && p.peers.iter().any(|s| *s != Selector::Local) {
                return Err(err(format!(
                    "{}: port {} is local_only but names remote peers",
                    role.name, p.port
                )));
            }
            if !p.web
                && p.peers
                    .iter()
                    .any(|s| matches!(s, Selector::Zone(z) if z.is_untrusted()))
            {
                return Err(err(format!(
                    "{}: port {} is reachable from a DMZ/Internet zone but is not marked web = true",
                    role.name, p.port
                )));
            }
        }
    }
    Ok(())
}

impl Catalog {
    /// The embedded third-party systems, without Vigil.
    pub fn builtin() -> Result<Self, Error> {
        let systems = BUILTIN
            .iter()
            .map(|(file, text)| parse_system(file, text))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { systems })
    }

    /// The embedded systems plus Vigil with the ports of `config`.
    pub fn with_vigil(config: &vigil_config::Config) -> Result<Self, Error> {
        let mut c = Self::builtin()?;
        c.systems.insert(0, vigil::system(config));
        Ok(c)
    }

    pub fn system(&self, name: &str) -> Option<&System> {
        self.systems.iter().find(|s| s.name == name)
    }

    /// `vigil catalog list`: one line per system with its roles.
    pub fn list_text(&self) -> String {
        let mut out = String::new();
        for s in &self.systems {
            let roles: Vec<&str> = s.roles.iter().map(|r| r.name.as_str()).collect();
            let _ = writeln!(out, "{:<18} {}", s.name, s.title);
            let _ = writeln!(out, "{:<18} roles: {}", "", roles.join(", "));
        }
        out
    }
}

/// `vigil catalog show NAME`: every role and port with the vendor's notes.
pub fn show_text(system: &System) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})", system.title, system.name);
    let _ = writeln!(out, "source: {}", system.source);
    for n in &system.notes {
        let _ = writeln!(out, "note: {n}");
    }
    for role in &system.roles {
        let _ = writeln!(
            out,
            "\n[{}:{}] {}  (kinds: {})",
            system.name,
            role.name,
            role.title,
            role.kinds.join(", ")
        );
        if !role.notes.is_empty() {
            let _ = writeln!(out, "  note: {}", role.notes);
        }
        for (dir, ports) in [("in ", &role.ports), ("out", &role.outbound)] {
            for p in ports {
                let mut flags = Vec::new();
                flags.push(if p.encrypted {
                    "encrypted"
                } else {
                    "PLAINTEXT"
                });
                if p.local_only {
                    flags.push("local-only");
                }
                if !p.enabled_by_default {
                    flags.push("disabled by default");
                }
                if p.special_case {
                    flags.push("special case only");
                }
                if p.deprecated {
                    flags.push("DEPRECATED");
                }
                if p.per_instance {
                    flags.push("one port per instance");
                }
                if p.web {
                    flags.push("web (may face DMZ/Internet)");
                }
                let peers: Vec<String> = p.peers.iter().map(|s| s.to_string()).collect();
                let _ = writeln!(
                    out,
                    "  {dir} {:>11}/{}  {:<10} {}  [{}]",
                    p.port.to_string(),
                    p.protocol,
                    p.application,
                    p.purpose,
                    flags.join(", ")
                );
                let _ = writeln!(
                    out,
                    "      {}: {} ({})",
                    if dir == "in " { "from" } else { "to" },
                    p.peers_text,
                    peers.join(", ")
                );
                if !p.notes.is_empty() {
                    let _ = writeln!(out, "      note: {}", p.notes);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortRange, Protocol};

    fn port<'a>(
        s: &'a System,
        role: &str,
        port: u16,
        proto: Protocol,
    ) -> &'a crate::model::PortSpec {
        s.role(role)
            .unwrap_or_else(|| panic!("role {role}"))
            .ports
            .iter()
            .find(|p| p.port.contains(port) && p.protocol == proto)
            .unwrap_or_else(|| panic!("{role} {port}"))
    }

    #[test]
    fn xprotect_has_the_hardening_guide_facts() {
        let c = Catalog::builtin().unwrap();
        let x = c.system("xprotect").unwrap();
        // Local-only ports.
        for (role, p) in [
            ("management-server", 6473),
            ("management-server", 8080),
            ("recording-server", 8966),
            ("failover-server", 8967),
            ("mobile-server", 8000),
        ] {
            assert!(port(x, role, p, Protocol::Tcp).local_only, "{role} {p}");
        }
        assert!(port(x, "recording-server", 65101, Protocol::Udp).local_only);
        // Deprecated SMTP, disabled by default and plaintext.
        let smtp = port(x, "recording-server", 25, Protocol::Tcp);
        assert!(smtp.deprecated && !smtp.enabled_by_default && !smtp.encrypted);
        // The video push range.
        let push = port(x, "mobile-server", 40050, Protocol::Tcp);
        assert_eq!(
            push.port,
            PortRange {
                start: 40001,
                end: 40099
            }
        );
        assert!(!push.enabled_by_default);
        // One 9001+ port per recording server instance.
        assert!(port(x, "recording-server", 9001, Protocol::Tcp).per_instance);
        // SQL Server, used by three services.
        assert_eq!(
            port(x, "sql-server", 1433, Protocol::Tcp).peers.len(),
            3,
            "management, event and log server use SQL"
        );
        // Only recording servers reach 9000.
        assert_eq!(
            port(x, "management-server", 9000, Protocol::Tcp).peers,
            vec![Selector::Kind("recorder".into())]
        );
        // Only the mobile server's HTTPS port may face the Internet.
        let web: Vec<_> = x
            .roles
            .iter()
            .flat_map(|r| {
                r.ports
                    .iter()
                    .filter(|p| p.web)
                    .map(move |p| (&r.name, p.port))
            })
            .collect();
        assert_eq!(
            web,
            vec![(&"mobile-server".to_string(), PortRange::single(8082))]
        );
    }

    #[test]
    fn mxmc_marks_special_case_ports() {
        let c = Catalog::builtin().unwrap();
        let m = c.system("mxmc").unwrap();
        let role = m.role("mxmc").unwrap();
        let special: Vec<u16> = role
            .ports
            .iter()
            .chain(&role.outbound)
            .filter(|p| p.special_case)
            .map(|p| p.port.start)
            .collect();
        assert_eq!(special, vec![57536, 554, 19800]);
        assert!(port(m, "fileserver", 445, Protocol::Tcp).special_case);
    }

    #[test]
    fn show_and_list_name_everything() {
        let c = Catalog::with_vigil(&vigil_config::Config::with_data_dir("/d")).unwrap();
        let list = c.list_text();
        for name in [
            "vigil",
            "xprotect",
            "mxmc",
            "mobotix-camera",
            "niagara-xprotect",
        ] {
            assert!(list.contains(name), "{list}");
        }
        let show = show_text(c.system("mobotix-camera").unwrap());
        assert!(show.contains("SAME self-signed certificate"), "{show}");
        let show = show_text(c.system("niagara-xprotect").unwrap());
        assert!(
            show.contains("9117/tcp") && show.contains("local-only"),
            "{show}"
        );
    }

    #[test]
    fn bad_catalogs_are_refused() {
        let base = "name = \"t\"\ntitle = \"T\"\nsource = \"s\"\n[[roles]]\nname = \"r\"\ntitle = \"R\"\n[[roles.ports]]\nprotocol = \"tcp\"\npurpose = \"p\"\nencrypted = false\n";
        let cases = [
            (format!("{base}port = 70000\n"), "out of range"),
            (
                format!("{base}port = 1\npeers = [\"zone:internet\"]\n"),
                "not marked web",
            ),
            (
                format!("{base}port = 1\nlocal_only = true\npeers = [\"zone:clients\"]\n"),
                "local_only",
            ),
            (
                format!("{base}port = 1\npeers = [\"zone:moon\"]\n"),
                "unknown zone kind",
            ),
            (format!("{base}port = 1\ncolour = 1\n"), "colour"),
        ];
        for (text, want) in cases {
            let err = parse_system("t.toml", &text).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
