//! vigil-netpolicy: the network policy Vigil states, every statement it makes about ports
//! and network exposure (what is actually exposed is checked by vigil-netaudit):
//! - [`manifest`]: the port manifest of the configured deployment (`vigil ports`);
//! - [`catalog`]: port catalogs of third-party systems, plus Vigil itself ([`vigil`]);
//! - [`site`]: the site file (zones, hosts, roles) with line-accurate errors;
//! - [`firewall`]: least-privilege rules for nftables, iptables-restore and PowerShell;
//! - [`model`]: the shared vocabulary of systems, roles, ports and peer selectors.

pub mod catalog;
pub mod firewall;
pub mod manifest;
pub mod model;
pub mod site;
pub mod vigil;

pub use catalog::Catalog;
pub use model::{Endpoint, ParseError};
pub use site::{RoleRefError, Site, SiteError};

/// Errors of this crate that are not site-file errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A catalog file, or Vigil's own roles file, is malformed.
    #[error("catalog file {file} is invalid: {message}")]
    Catalog { file: String, message: String },
    #[error(transparent)]
    Site(#[from] SiteError),
}
