//! The inter-server messages (JSON over HTTP/1.1 over TLS, docs/design/cluster.md) and their
//! bounded parsers: every body from another machine goes through [`parse_enrol_request`],
//! [`parse_heartbeat`] or [`parse_heartbeat_reply`], which refuse oversized, malformed and
//! out-of-range input with a message saying what is wrong.
//!
//! | request | listener | client certificate | body |
//! |---|---|---|---|
//! | `POST /v1/enrol` | management 8444 | none yet | [`EnrolRequest`] → [`EnrolReply`] |
//! | `POST /v1/heartbeat` | management 8444 | the server's | [`Heartbeat`] → [`HeartbeatReply`] |
//! | `GET /v1/status` | recording 9443 | any of the installation | → [`Heartbeat`] |

use serde::{Deserialize, Serialize};

/// Largest request or reply body read (a CSR is about 500 bytes, a reply with a certificate
/// and the CA about 2 KiB, a revocation list 70 bytes per entry).
pub const MAX_BODY: usize = 64 * 1024;
/// Longest CSR PEM accepted.
pub const MAX_CSR: usize = 8 * 1024;
/// Most revoked certificates one reply may list.
pub const MAX_REVOKED: usize = 512;
const MAX_VERSION: usize = 64;

pub const PATH_ENROL: &str = "/v1/enrol";
pub const PATH_HEARTBEAT: &str = "/v1/heartbeat";
pub const PATH_STATUS: &str = "/v1/status";

/// A joining server's request: the token and its certificate request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The token's text; checked by `JoinToken::parse` too.
    pub token: String,
    /// PKCS#10 in PEM.
    pub csr: String,
}

/// The management server's answer to a valid enrolment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnrolReply {
    /// The name the token was made for (the certificate's common name).
    pub name: String,
    /// The issued certificate (PEM).
    pub certificate: String,
    /// The installation CA certificate (PEM).
    pub ca: String,
}

/// What a recording server reports (also its `GET /v1/status` answer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// `vigil --version` of the reporting server.
    pub version: String,
    /// Streams recording now.
    pub cameras_recording: u32,
    /// Enabled cameras in its database.
    pub cameras_total: u32,
    /// Free and total bytes of its recording volume.
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
}

/// The management server's answer to a heartbeat: the revocation list of the installation,
/// which the recording server applies to its own 9443 listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatReply {
    /// The name the management server knows this server by.
    pub name: String,
    /// SHA-256 (hex) of every revoked, unexpired certificate.
    pub revoked: Vec<String>,
}

/// An error answer: a stable code and a sentence for the admin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorReply {
    pub error: String,
    pub message: String,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is {0} bytes; at most {MAX_BODY} are accepted")]
    TooLarge(usize),
    #[error("the body is not the expected JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Field(String),
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, BodyError> {
    if body.len() > MAX_BODY {
        return Err(BodyError::TooLarge(body.len()));
    }
    serde_json::from_slice(body).map_err(|e| BodyError::Json(e.to_string()))
}

/// Parses and checks an enrolment request body.
pub fn parse_enrol_request(body: &[u8]) -> Result<EnrolRequest, BodyError> {
    let req: EnrolRequest = json(body)?;
    if req.token.len() > crate::token::MAX_TOKEN_TEXT {
        return Err(BodyError::Field("`token` is too long to be a token".into()));
    }
    if req.csr.len() > MAX_CSR {
        return Err(BodyError::Field(format!(
            "`csr` is {} bytes; a certificate request has at most {MAX_CSR}",
            req.csr.len()
        )));
    }
    if !req.csr.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        return Err(BodyError::Field(
            "`csr` must be a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)".into(),
        ));
    }
    Ok(req)
}

/// Parses and checks a heartbeat body.
pub fn parse_heartbeat(body: &[u8]) -> Result<Heartbeat, BodyError> {
    let hb: Heartbeat = json(body)?;
    if hb.version.is_empty()
        || hb.version.len() > MAX_VERSION
        || hb.version.chars().any(|c| c.is_control())
    {
        return Err(BodyError::Field(format!(
            "`version` must be 1 to {MAX_VERSION} printable characters"
        )));
    }
    if hb.cameras_recording > hb.cameras_total.saturating_mul(2) {
        // Main and secondary streams: at most two recorders per camera.
        return Err(BodyError::Field(format!(
            "`cameras_recording` ({}) exceeds two streams per camera ({} cameras)",
            hb.cameras_recording, hb.cameras_total
        )));
    }
    if hb.disk_free_bytes > hb.disk_total_bytes {
        return Err(BodyError::Field(format!(
            "`disk_free_bytes` ({}) exceeds `disk_total_bytes` ({})",
            hb.disk_free_bytes, hb.disk_total_bytes
        )));
    }
    Ok(hb)
}

/// Parses and checks the management server's heartbeat answer.
pub fn parse_heartbeat_reply(body: &[u8]) -> Result<HeartbeatReply, BodyError> {
    let reply: HeartbeatReply = json(body)?;
    if reply.revoked.len() > MAX_REVOKED {
        return Err(BodyError::Field(format!(
            "`revoked` lists {} certificates; at most {MAX_REVOKED}",
            reply.revoked.len()
        )));
    }
    if let Some(bad) = reply
        .revoked
        .iter()
        .find(|fp| crate::hex::decode_exact::<32>(fp).is_none())
    {
        return Err(BodyError::Field(format!(
            "`revoked` entry {:?} is not a SHA-256 in 64 lower-case hex digits",
            bad.chars().take(80).collect::<String>()
        )));
    }
    crate::registry::check_name(&reply.name).map_err(BodyError::Field)?;
    Ok(reply)
}

/// Parses the management server's enrolment answer.
pub fn parse_enrol_reply(body: &[u8]) -> Result<EnrolReply, BodyError> {
    let reply: EnrolReply = json(body)?;
    crate::registry::check_name(&reply.name).map_err(BodyError::Field)?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_bounds() {
        let ok = br#"{"version":"0.1.0","cameras_recording":2,"cameras_total":1,"disk_free_bytes":1,"disk_total_bytes":2}"#;
        assert!(parse_heartbeat(ok).is_ok());
        for (body, want) in [
            (&b"{"[..], "not the expected JSON"),
            (&b"[]"[..], "not the expected JSON"),
            (
                br#"{"version":"0.1.0","cameras_recording":2,"cameras_total":1,"disk_free_bytes":1,"disk_total_bytes":2,"x":1}"#,
                "unknown field",
            ),
            (
                br#"{"version":"","cameras_recording":0,"cameras_total":0,"disk_free_bytes":0,"disk_total_bytes":0}"#,
                "`version`",
            ),
            (
                br#"{"version":"a\u0007","cameras_recording":0,"cameras_total":0,"disk_free_bytes":0,"disk_total_bytes":0}"#,
                "`version`",
            ),
            (
                br#"{"version":"1","cameras_recording":3,"cameras_total":1,"disk_free_bytes":0,"disk_total_bytes":0}"#,
                "exceeds two streams",
            ),
            (
                br#"{"version":"1","cameras_recording":0,"cameras_total":0,"disk_free_bytes":3,"disk_total_bytes":2}"#,
                "exceeds `disk_total_bytes`",
            ),
            (
                br#"{"version":"1","cameras_recording":-1,"cameras_total":0,"disk_free_bytes":0,"disk_total_bytes":0}"#,
                "not the expected JSON",
            ),
        ] {
            let e = parse_heartbeat(body).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(
            parse_heartbeat(&big).unwrap_err(),
            BodyError::TooLarge(MAX_BODY + 1)
        );
    }

    #[test]
    fn enrol_request_bounds() {
        let csr = "-----BEGIN CERTIFICATE REQUEST-----\nMII\n-----END CERTIFICATE REQUEST-----\n";
        let body = serde_json::to_vec(&EnrolRequest {
            token: "t".into(),
            csr: csr.into(),
        })
        .unwrap();
        assert!(parse_enrol_request(&body).is_ok());
        let long_token = serde_json::json!({"token": "t".repeat(600), "csr": csr});
        let e = parse_enrol_request(long_token.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        let not_pem = serde_json::json!({"token": "t", "csr": "MII"});
        let e = parse_enrol_request(not_pem.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("PEM certificate request"), "{e}");
        let big = serde_json::json!({"token": "t", "csr": "x".repeat(MAX_CSR + 1)});
        let e = parse_enrol_request(big.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        assert!(parse_enrol_request(br#"{"token":"t"}"#).is_err());
    }

    #[test]
    fn heartbeat_reply_bounds() {
        let fp = "ab".repeat(32);
        let ok = serde_json::json!({"name": "rec1", "revoked": [fp]});
        assert!(parse_heartbeat_reply(ok.to_string().as_bytes()).is_ok());
        let bad = serde_json::json!({"name": "rec1", "revoked": ["AB".repeat(32)]});
        assert!(parse_heartbeat_reply(bad.to_string().as_bytes()).is_err());
        let many = serde_json::json!({"name": "rec1", "revoked": vec![fp; MAX_REVOKED + 1]});
        assert!(parse_heartbeat_reply(many.to_string().as_bytes()).is_err());
        let name = serde_json::json!({"name": "../x", "revoked": []});
        assert!(parse_heartbeat_reply(name.to_string().as_bytes()).is_err());
    }
}
