//! vigil-netpolicy: Vigil's network hardening.
//!
//! It owns every statement Vigil makes about ports and network exposure:
//! - [`manifest`]: the port manifest of the configured deployment (`vigil ports`);
//! - [`catalog`]: port catalogs of third-party systems from the seeds, plus Vigil itself;
//! - [`site`]: the site file (zones, hosts, roles) with line-accurate errors;
//! - [`firewall`]: least-privilege rules for nftables, iptables-restore and PowerShell;
//! - [`audit`]: listening sockets vs the manifest, and TLS/plaintext probes of devices.

pub mod audit;
pub mod catalog;
pub mod firewall;
pub mod manifest;
pub mod model;
pub mod site;
pub mod vigil;

pub use catalog::Catalog;
pub use model::Endpoint;
pub use site::{Site, SiteError};

/// Errors of this crate that are not site-file errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("catalog file {file} is invalid: {message}")]
    Catalog { file: String, message: String },
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error("cannot read {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}
