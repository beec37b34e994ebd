//! vigil-onvif: talks to ONVIF cameras. [`client::Client`] calls a device's device and media
//! services over HTTP or HTTPS (the certificate verified and pinned by the same rules as RTSPS
//! camera links, vigil-media's `ingest_tls::CameraVerifier`), authenticated with WS-Security
//! UsernameToken PasswordDigest, and HTTP Digest where a device asks for it ([`digest`]);
//! [`security`] has a camera make its key and serve HTTPS with a certificate Vigil's CA issued; [`discovery`] finds devices by WS-Discovery (multicast on the
//! local segment, unicast probes over a subnet). Everything a device sends is read with size,
//! time and node limits into typed answers or typed errors (docs/design/onvif.md).

pub mod client;
pub mod device;
pub mod digest;
pub mod discovery;
mod error;
mod http;
pub mod media;
pub mod security;
pub mod soap;
pub mod wssec;
mod xml;

pub use client::{Client, Options, Target};
pub use error::{DiscoveryError, OnvifError, ProbeMatchError};
pub use wssec::Credentials;

/// The largest SOAP answer read from a device. A camera with 32 profiles and long names
/// answers GetProfiles in well under 200 KiB; anything bigger is refused, not parsed.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// The most XML nodes one answer may have (elements, attributes' owners, text), so a
/// deeply repetitive answer under the byte limit still parses in bounded time and memory.
pub const MAX_XML_NODES: u32 = 50_000;
