//! The errors of talking to an ONVIF device: each says what went wrong and what an admin
//! can do about it, and none carries a password.

/// Why an ONVIF call failed.
#[derive(Debug, thiserror::Error)]
pub enum OnvifError {
    #[error(
        "'{0}' is not an ONVIF device address: give http://HOST[:PORT] or https://HOST[:PORT] (the device service path defaults to /onvif/device_service)"
    )]
    BadAddress(String),
    #[error(
        "cannot connect to {addr}: {reason} (is the device on and reachable from this server?)"
    )]
    Connect { addr: String, reason: String },
    #[error(
        "{what} did not finish within {secs} s; the device is too slow or not answering (check it, or its network)"
    )]
    Timeout { what: &'static str, secs: u64 },
    #[error("TLS with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    #[error(
        "the device's HTTPS certificate (SHA-256 {fingerprint}) is refused: {reason}. If this is the device's own certificate, pin exactly this fingerprint"
    )]
    CertificateUntrusted { fingerprint: String, reason: String },
    #[error(
        "the device presented a certificate (SHA-256 {new}) other than the expected one ({old}): a swapped device or a man in the middle; check the device before pinning the new fingerprint"
    )]
    CertificateChanged { old: String, new: String },
    #[error(
        "the device refused the user name or password (WS-Security or HTTP Digest); check the credentials and that the device's clock is within minutes of this server's"
    )]
    Unauthorized,
    #[error(
        "the device asks for HTTP authentication ({scheme}) in front of ONVIF and no user name and password were given; give the device's credentials"
    )]
    HttpAuthRequired { scheme: String },
    #[error(
        "the device asks for HTTP authentication in front of ONVIF that Vigil does not answer: {0}; enable HTTP Digest (qop=auth) or WS-Security (\"ONVIF user\" authentication) on the device"
    )]
    HttpAuthUnsupported(String),
    #[error(
        "the device at {addr} asks for HTTP Digest over plain HTTP; Vigil answers it only over https://, or for a camera an admin allowed plain HTTP for (--allow-http)"
    )]
    DigestOverPlainHttp { addr: String },
    #[error(
        "the device answered HTTP {status} to {action}; it may not offer this service at this address"
    )]
    Http { status: u16, action: &'static str },
    #[error(
        "the device's answer is larger than the {limit} bytes an ONVIF answer may have; refused"
    )]
    TooLarge { limit: usize },
    #[error("the device's answer is not valid SOAP: {0}")]
    Malformed(String),
    #[error("the device answered {found} where {expected} was expected")]
    Unexpected { expected: String, found: String },
    #[error("the device's answer has no {0}")]
    Missing(&'static str),
    #[error("the device refused the request: {reason} (SOAP fault {code}{})", subcode.as_deref().map(|s| format!(", {s}")).unwrap_or_default())]
    Fault {
        code: String,
        subcode: Option<String>,
        reason: String,
    },
    #[error(
        "refused to send a password to {addr} over plain HTTP, where anyone on the network could read it; use https:// (or allow clear text for this device explicitly)"
    )]
    PlaintextSecret { addr: String },
    #[error("the device has no user '{0}'")]
    NoSuchUser(String),
    #[error(
        "the device does not offer ONVIF Advanced Security (its keystore and TLS server configuration), so Vigil cannot install a certificate on it; have it make a CSR on its own configuration page, sign it with `vigil pki sign-csr` and install the certificate there"
    )]
    NoAdvancedSecurity,
    #[error(
        "the device's new key pair is {state} after {secs} s; try again later, or check the device's keystore"
    )]
    KeyNotReady { state: &'static str, secs: u64 },
}

impl OnvifError {
    /// Whether the device answered but said no to the credentials.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, OnvifError::Unauthorized)
    }
}

/// Why a WS-Discovery sweep could not run (answers that cannot be read are skipped, not
/// errors: any host may send anything to the probing socket).
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("'{0}' is not an IPv4 subnet: give it as ADDRESS/PREFIX, e.g. 192.168.10.0/24")]
    BadSubnet(String),
    #[error(
        "the subnet {subnet} has {hosts} addresses; at most {max} are probed at once (give a longer prefix, e.g. /{min_prefix})"
    )]
    SubnetTooLarge {
        subnet: String,
        hosts: u64,
        max: usize,
        min_prefix: u8,
    },
    #[error("cannot open a UDP socket for WS-Discovery: {0}")]
    Socket(std::io::Error),
}

/// Why a WS-Discovery answer was not used (the sweep skips it and counts it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeMatchError {
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    #[error("not a WS-Discovery ProbeMatches message: {0}")]
    NotProbeMatches(String),
    #[error("answers another probe (RelatesTo {0})")]
    OtherProbe(String),
    #[error("a ProbeMatch has no {0}")]
    Missing(&'static str),
}
