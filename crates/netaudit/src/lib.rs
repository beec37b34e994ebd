//! vigil-netaudit: `vigil audit`, what this host and the site's devices actually expose,
//! checked against the policy vigil-netpolicy states: the listening sockets of this host
//! compared with the port manifest, and probes of cameras and servers for plaintext, TLS
//! versions and certificate problems.
//!
//! Findings carry a severity; [`Report::exit_code`] is non-zero when any finding is high, so
//! the audit can gate CI or run from cron.
//!
//! - [`listeners`]: listening sockets with their processes, compared with the manifest;
//! - [`sockdiag`]: the netlink `sock_diag` query behind the listener list;
//! - [`probe`]: the probes of endpoints and the findings drawn from them;
//! - [`tlshello`]: hand-built ClientHellos and the reader of a server's first flight;
//! - [`tlsclient`]: the rustls client for full handshakes;
//! - [`cert`]: certificate analysis.

pub mod cert;
pub mod listeners;
pub mod probe;
pub mod sockdiag;
pub mod tlsclient;
pub mod tlshello;

use std::fmt::Write as _;

use serde::Serialize;

pub use listeners::{ExpectedListener, Socket};
pub use probe::{ProbeOptions, ProbeResult, Timing};
use vigil_netpolicy::model::Protocol;
use vigil_netpolicy::{Catalog, Endpoint, Site};

/// Errors of the audit that stop it as a whole (a single endpoint's failure is a finding).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    SocketTable {
        file: &'static str,
        source: listeners::ProcNetError,
    },
    #[error(
        "{} holds no usable CA certificate; give a PEM file with BEGIN CERTIFICATE blocks",
        path.display()
    )]
    NoCaCertificate { path: std::path::PathBuf },
    #[error("{}: not a PEM certificate file: {source}", path.display())]
    NotPem {
        path: std::path::PathBuf,
        source: cert::PemError,
    },
}

/// How bad a finding is. `High` makes the audit exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "HIGH",
        })
    }
}

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A socket listens that the manifest does not know.
    UnexpectedListener,
    /// A known listener speaks plaintext on a non-loopback address.
    PlaintextListener,
    /// A local-only port listens on a non-loopback address.
    LocalOnlyExposed,
    /// A manifest listener is not listening.
    MissingListener,
    PlaintextHttp,
    PlaintextRtsp,
    /// The endpoint should speak TLS but does not.
    NoTls,
    /// TLS 1.0 or 1.1 accepted.
    LegacyTls,
    CertExpired,
    CertExpiring,
    CertNotYetValid,
    SelfSigned,
    UntrustedIssuer,
    NameMismatch,
    WeakKey,
    WeakSignature,
    /// Several devices present the same certificate (e.g. a factory default).
    SharedCertificate,
    Unreachable,
}

/// One finding about one endpoint or socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub kind: FindingKind,
    /// `name (host:port)` of a probed endpoint, or `tcp 0.0.0.0:8080` for a socket.
    pub target: String,
    pub message: String,
}

/// The whole audit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub sockets: Vec<Socket>,
    pub probes: Vec<ProbeResult>,
}

impl Report {
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// 1 when a high finding exists, else 0.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.max_severity() == Some(Severity::High))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes") + "\n"
    }

    /// Human-readable report: findings by severity, then the probe summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut findings = self.findings.clone();
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.target.cmp(&b.target)));
        let _ = writeln!(
            out,
            "vigil audit: {} socket(s) listening, {} endpoint(s) probed, {} finding(s)",
            self.sockets.len(),
            self.probes.len(),
            findings.len()
        );
        for f in &findings {
            let _ = writeln!(out, "[{}] {}: {}", f.severity, f.target, f.message);
        }
        if !self.probes.is_empty() {
            out.push_str("\nprobes:\n");
            for p in &self.probes {
                let _ = writeln!(out, "  {}", p.summary());
            }
        }
        let _ = writeln!(
            out,
            "\nresult: {}",
            match self.max_severity() {
                Some(Severity::High) => "FAIL (high severity findings)",
                Some(_) => "pass with warnings",
                None => "pass",
            }
        );
        out
    }
}

/// Runs the probes of `endpoints` and the listener comparison (when `expected` is given) and
/// collects every finding.
pub async fn run(
    endpoints: Vec<Endpoint>,
    expected: Option<&[ExpectedListener]>,
    opts: &ProbeOptions,
) -> Result<Report, crate::Error> {
    // The /proc walk is blocking file I/O with nothing to wait for on the network: it runs on
    // one blocking thread while the probes wait on their peers. This process's own sockets
    // are read first, while it holds no probe sockets yet.
    let sockets = expected.map(|_| {
        let own = listeners::OwnSockets::now();
        tokio::task::spawn_blocking(move || listeners::read_listening_with(&own))
    });
    let probes = probe::probe_all(endpoints, opts).await;
    let mut report = Report::default();
    if let (Some(expected), Some(sockets)) = (expected, sockets) {
        let sockets = sockets.await.expect("the /proc reader does not panic")?;
        report
            .findings
            .extend(listeners::compare(&sockets, expected));
        report.sockets = sockets;
    }
    report.findings.extend(probe::analyze(&probes, opts));
    report.probes = probes;
    Ok(report)
}

fn scheme_of(application: &str) -> &'static str {
    let a = application.to_ascii_uppercase();
    if a.starts_with("HTTPS") || a.contains("WSS") {
        "https"
    } else if a.starts_with("HTTP") {
        "http"
    } else if a == "RTSPS" {
        "rtsps"
    } else if a == "RTSP" {
        "rtsp"
    } else if a.contains("TLS") {
        "tls"
    } else {
        ""
    }
}

/// TCP endpoints to probe for every host of a site: each enabled, non-local port of its roles
/// (the first port of a range).
pub fn site_endpoints(site: &Site, catalog: &Catalog) -> Vec<Endpoint> {
    let plan = vigil_netpolicy::firewall::plan(site, catalog);
    let mut out = Vec::new();
    for (h, hp) in site.hosts.iter().zip(&plan.hosts) {
        if !h.probe {
            continue;
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in hp.rules.iter().filter(|r| r.protocol == Protocol::Tcp) {
            if !seen.insert(r.port.start) {
                continue;
            }
            let app = h
                .roles
                .iter()
                .filter_map(|rr| catalog.system(&rr.system).and_then(|s| s.role(&rr.role)))
                .flat_map(|role| role.ports.iter().chain(&role.outbound))
                .find(|p| p.protocol == r.protocol && p.port.contains(r.port.start))
                .map(|p| p.application.clone())
                .unwrap_or_default();
            out.push(Endpoint::new(
                format!("{}:{}", h.name, r.port.start),
                h.address.to_string(),
                r.port.start,
                scheme_of(&app),
            ));
        }
    }
    out
}

/// Vigil's own TCP listeners as endpoints on this host (unspecified binds are probed on
/// loopback). Local-only plaintext listeners (metrics) are skipped: plaintext is their
/// design, and nothing but this host reaches them; local-only TLS listeners are probed,
/// since their certificates matter to local clients too.
pub fn config_endpoints(config: &vigil_config::Config) -> Vec<Endpoint> {
    listeners::expected_from_config(config)
        .into_iter()
        .filter(|e| e.protocol == Protocol::Tcp && (e.encrypted || !e.local_only))
        .map(|e| {
            let ip = if e.bind.ip().is_unspecified() {
                if e.bind.is_ipv4() {
                    "127.0.0.1".to_string()
                } else {
                    "::1".to_string()
                }
            } else {
                e.bind.ip().to_string()
            };
            let scheme = if e.encrypted { "tls" } else { "" };
            // All of them are this server, which serves one certificate on every TLS port.
            Endpoint::new(e.component.clone(), ip, e.bind.port(), scheme).on_device("vigil")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_config_and_site() {
        // What serve opens by default: HTTPS and the loopback metrics listener, which is
        // plaintext by design and not probed.
        let mut c = vigil_config::Config::with_data_dir("/d");
        let eps = config_endpoints(&c);
        let ports: Vec<u16> = eps.iter().map(|e| e.port).collect();
        assert_eq!(ports, [8443], "metrics is local-only plaintext");
        // The events role once turned on, and a loopback HTTPS listener, which is probed.
        c.events.enabled = true;
        c.management.https.push(vigil_config::Listener {
            bind: "127.0.0.1:9000".parse().unwrap(),
            label: String::new(),
        });
        let eps = config_endpoints(&c);
        let ports: Vec<u16> = eps.iter().map(|e| e.port).collect();
        assert_eq!(ports, [8443, 9000, 1234, 6514]);
        // One device: its ports serving one certificate is no shared-certificate finding.
        assert!(eps.iter().all(|e| e.host == "127.0.0.1"
            && e.scheme == "tls"
            && e.device.as_deref() == Some("vigil")));
        let catalog = Catalog::with_vigil(&c).unwrap();
        let site = Site::parse(
            "[[zones]]\nname = \"m\"\nkind = \"management\"\nsubnets = [\"10.3.0.0/24\"]\n[[zones]]\nname = \"c\"\nkind = \"clients\"\nsubnets = [\"10.4.0.0/24\"]\n[[zones]]\nname = \"r\"\nkind = \"recording\"\nsubnets = [\"10.2.0.0/24\"]\n[[hosts]]\nname = \"x\"\naddress = \"10.3.0.10\"\nroles = [\"xprotect:management-server\"]\n[[hosts]]\nname = \"r\"\naddress = \"10.2.0.10\"\nroles = [\"xprotect:recording-server\"]\nprobe = false\n",
            std::path::Path::new("s.toml"),
            &catalog,
        )
        .unwrap();
        let eps = site_endpoints(&site, &catalog);
        let got: Vec<(u16, &str)> = eps.iter().map(|e| (e.port, e.scheme.as_str())).collect();
        assert!(
            got.contains(&(443, "https"))
                && got.contains(&(80, "http"))
                && got.contains(&(9000, "http")),
            "{got:?}"
        );
        assert!(
            eps.iter().all(|e| e.host == "10.3.0.10"),
            "probe = false skips r"
        );
    }
}
