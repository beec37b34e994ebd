//! The inter-server messages (JSON over HTTP/1.1 over TLS, docs/design/cluster.md) and their
//! bounded parsers: every body from another machine goes through [`parse_enrol_request`],
//! [`parse_heartbeat`] or [`parse_heartbeat_reply`], which refuse oversized, malformed and
//! out-of-range input with a message saying what is wrong.
//!
//! | request | listener | client certificate | body |
//! |---|---|---|---|
//! | `POST /v1/enrol` | management 8444 | none yet | [`EnrolRequest`] → [`EnrolReply`] |
//! | `POST /v1/heartbeat` | management 8444 | the server's | [`Heartbeat`] → [`HeartbeatReply`] |
//! | `GET /v1/assignments` | management 8444 | the server's | → [`Assignments`] |
//! | `GET /v1/status` | recording 9443 | any of the installation | → [`Heartbeat`] |
//! | `GET /v1/cameras/{id}/recordings?`[`VideoQuery`] | recording 9443 | the management server's | → [`RemoteRecordings`] |
//! | `GET /v1/cameras/{id}/playback?`[`VideoQuery`] | recording 9443 | the management server's | → MP4, times in [`PlaybackHeaders`] |

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
pub const PATH_ASSIGNMENTS: &str = "/v1/assignments";
/// `/v1/cameras/{id}/recordings` and `/v1/cameras/{id}/playback` on a recording server.
pub const PATH_CAMERAS: &str = "/v1/cameras/";

/// Largest recorded-ranges answer read (about 60 bytes a range or gap).
pub const MAX_RECORDINGS_BODY: usize = 8 * 1024 * 1024;
/// Most ranges plus gaps in one recorded-ranges answer.
pub const MAX_SPANS: usize = 100_000;
/// Largest playback answer a management server relays: it holds the answer in memory while
/// it serves it, so longer clips are played in pieces (docs/cluster.md).
pub const MAX_PLAYBACK_BODY: usize = 128 * 1024 * 1024;
const MAX_GAP_REASON: usize = 256;
/// Most codec parts named in a playback answer's headers.
const MAX_PARTS: usize = 1024;

/// Largest assignments answer read: about 600 bytes a camera with both streams and
/// credentials, so [`MAX_ASSIGNED`] cameras fit with room.
pub const MAX_ASSIGNMENTS_BODY: usize = 2 * 1024 * 1024;
/// Most cameras one recording server may be given.
pub const MAX_ASSIGNED: usize = 1024;
const MAX_URL: usize = 2048;
const MAX_CREDENTIAL: usize = 256;
const MAX_PIN: usize = 128;
const MAX_CAMERA_NAME: usize = 64;
const MAX_REVISION: usize = 64;

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
    /// The port of its inter-server API (9443), which the management server connects to for
    /// its recordings and live video (the host is the address the heartbeat came from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_port: Option<u16>,
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
    /// The revision of this server's camera assignments (opaque, at most 64 characters):
    /// when it differs from the one the server applied last, it fetches
    /// `GET /v1/assignments`. Absent from an older management server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignments: Option<String>,
}

/// The cameras assigned to one recording server, in full: what it records (the answer to
/// `GET /v1/assignments`). Credentials travel only in this answer, over mutual TLS.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Assignments {
    /// The revision the heartbeat reply named.
    pub revision: String,
    pub cameras: Vec<AssignedCamera>,
}

impl std::fmt::Debug for Assignments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assignments")
            .field("revision", &self.revision)
            .field("cameras", &self.cameras)
            .finish()
    }
}

/// One assigned camera as the management server defines it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AssignedCamera {
    /// The camera's id on the management server (`cam-` and 12 hex digits), kept on the
    /// recording server so both name the same recordings.
    pub id: String,
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub enabled: bool,
    pub max_age_secs: Option<i64>,
    pub max_bytes: Option<i64>,
    /// SHA-256 fingerprint of the pinned `rtsps://` certificate.
    pub tls_pin: Option<String>,
    pub secondary: Option<AssignedSecondary>,
}

/// An assigned camera's secondary stream.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AssignedSecondary {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `live` or `recorded`.
    pub mode: String,
}

// Passwords never reach a log through Debug.
impl std::fmt::Debug for AssignedCamera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssignedCamera")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("enabled", &self.enabled)
            .field("max_age_secs", &self.max_age_secs)
            .field("max_bytes", &self.max_bytes)
            .field("tls_pin", &self.tls_pin)
            .field("secondary", &self.secondary)
            .finish()
    }
}

impl std::fmt::Debug for AssignedSecondary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssignedSecondary")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("mode", &self.mode)
            .finish()
    }
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
    if let Some(rev) = &reply.assignments {
        check_revision(rev)?;
    }
    Ok(reply)
}

fn check_revision(rev: &str) -> Result<(), BodyError> {
    if rev.is_empty() || rev.len() > MAX_REVISION || !rev.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(BodyError::Field(format!(
            "the assignments revision must be 1 to {MAX_REVISION} letters or digits"
        )));
    }
    Ok(())
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), BodyError> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(BodyError::Field(format!(
            "`{field}` must be 1 to {max} printable characters"
        )));
    }
    Ok(())
}

fn check_stream(
    what: &str,
    url: &str,
    username: &Option<String>,
    password: &Option<String>,
) -> Result<(), BodyError> {
    check_text(&format!("{what}.url"), url, MAX_URL)?;
    if !(url.starts_with("rtsp://") || url.starts_with("rtsps://")) {
        return Err(BodyError::Field(format!(
            "`{what}.url` must be an rtsp:// or rtsps:// URL"
        )));
    }
    if let Some(u) = username {
        check_text(&format!("{what}.username"), u, MAX_CREDENTIAL)?;
    }
    if let Some(p) = password {
        // The value is never repeated in a message.
        check_text(&format!("{what}.password"), p, MAX_CREDENTIAL)?;
        if username.is_none() {
            return Err(BodyError::Field(format!(
                "`{what}.password` is given without a user name"
            )));
        }
    }
    Ok(())
}

/// Parses and checks the management server's assignments answer: at most
/// [`MAX_ASSIGNMENTS_BODY`] bytes and [`MAX_ASSIGNED`] cameras, camera ids of the form
/// `cam-` + 12 hex digits, names of letters, digits, '-', '_', '.', RTSP(S) URLs, bounded
/// printable credentials, no id or name twice. The recording server's store checks URLs
/// and names again when it writes them.
pub fn parse_assignments(body: &[u8]) -> Result<Assignments, BodyError> {
    if body.len() > MAX_ASSIGNMENTS_BODY {
        return Err(BodyError::TooLarge(body.len()));
    }
    let a: Assignments =
        serde_json::from_slice(body).map_err(|e| BodyError::Json(e.to_string()))?;
    check_revision(&a.revision)?;
    if a.cameras.len() > MAX_ASSIGNED {
        return Err(BodyError::Field(format!(
            "{} cameras are assigned; a recording server takes at most {MAX_ASSIGNED}",
            a.cameras.len()
        )));
    }
    let mut ids = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    for c in &a.cameras {
        if !crate::registry::is_camera_id(&c.id) {
            return Err(BodyError::Field(format!(
                "camera id {:?} is not of the form cam-<12 hex digits>",
                c.id.chars().take(40).collect::<String>()
            )));
        }
        if c.name.is_empty()
            || c.name.len() > MAX_CAMERA_NAME
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        {
            return Err(BodyError::Field(format!(
                "camera {}: the name must be 1 to {MAX_CAMERA_NAME} letters, digits, '-', '_' or '.'",
                c.id
            )));
        }
        if !ids.insert(c.id.as_str()) || !names.insert(c.name.as_str()) {
            return Err(BodyError::Field(format!(
                "camera {} ({}) is listed twice",
                c.id, c.name
            )));
        }
        check_stream(&c.name, &c.url, &c.username, &c.password)?;
        if c.max_age_secs.is_some_and(|v| v <= 0) || c.max_bytes.is_some_and(|v| v <= 0) {
            return Err(BodyError::Field(format!(
                "camera {}: retention limits must be positive",
                c.name
            )));
        }
        if let Some(pin) = &c.tls_pin {
            check_text(&format!("{}.tls_pin", c.name), pin, MAX_PIN)?;
        }
        if let Some(sec) = &c.secondary {
            check_stream(
                &format!("{}.secondary", c.name),
                &sec.url,
                &sec.username,
                &sec.password,
            )?;
            if sec.mode != "live" && sec.mode != "recorded" {
                return Err(BodyError::Field(format!(
                    "camera {}: the secondary stream's mode must be live or recorded",
                    c.name
                )));
            }
        }
    }
    Ok(a)
}

/// What the management server asks a recording server for: a camera stream's recordings in
/// `[from_us, to_us)` (Unix microseconds), its main or its secondary stream. Sent as the
/// query `from_us=..&to_us=..&stream=main|secondary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoQuery {
    pub from_us: i64,
    pub to_us: i64,
    pub secondary: bool,
}

impl VideoQuery {
    pub fn to_query(&self) -> String {
        format!(
            "from_us={}&to_us={}&stream={}",
            self.from_us,
            self.to_us,
            if self.secondary { "secondary" } else { "main" }
        )
    }
}

/// The request of `/v1/cameras/{id}/{what}?{query}` on a recording server: the camera id
/// (`cam-` and 12 hex digits), `what` (`recordings` or `playback`) and the query.
pub fn parse_video_request<'a>(
    path: &'a str,
    query: Option<&str>,
) -> Result<(&'a str, &'a str, VideoQuery), BodyError> {
    let rest = path
        .strip_prefix(PATH_CAMERAS)
        .ok_or_else(|| BodyError::Field("not a camera request".into()))?;
    let (id, what) = rest
        .split_once('/')
        .ok_or_else(|| BodyError::Field("the path names no camera request".into()))?;
    if !crate::registry::is_camera_id(id) {
        return Err(BodyError::Field(
            "the camera id is not of the form cam-<12 hex digits>".into(),
        ));
    }
    if what != "recordings" && what != "playback" {
        return Err(BodyError::Field(
            "a camera request is recordings or playback".into(),
        ));
    }
    let query = query.unwrap_or("");
    if query.len() > 256 {
        return Err(BodyError::Field("the query is too long".into()));
    }
    let (mut from, mut to, mut secondary) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| BodyError::Field(format!("query part {pair:?} has no value")))?;
        let time = || {
            value
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| BodyError::Field(format!("`{key}` must be Unix microseconds")))
        };
        let slot = match key {
            "from_us" => from.replace(time()?),
            "to_us" => to.replace(time()?),
            "stream" => match value {
                "main" => secondary.replace(false).map(|_| 0),
                "secondary" => secondary.replace(true).map(|_| 0),
                _ => {
                    return Err(BodyError::Field(
                        "`stream` must be main or secondary".into(),
                    ));
                }
            },
            _ => return Err(BodyError::Field(format!("unknown query field {key:?}"))),
        };
        if slot.is_some() {
            return Err(BodyError::Field(format!("`{key}` is given twice")));
        }
    }
    let (Some(from_us), Some(to_us)) = (from, to) else {
        return Err(BodyError::Field(
            "`from_us` and `to_us` are required".into(),
        ));
    };
    if from_us >= to_us {
        return Err(BodyError::Field("`from_us` must be before `to_us`".into()));
    }
    Ok((
        id,
        what,
        VideoQuery {
            from_us,
            to_us,
            secondary: secondary.unwrap_or(false),
        },
    ))
}

/// A recording gap as a recording server reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RemoteGap {
    pub start_us: i64,
    pub end_us: i64,
    pub reason: String,
}

/// A camera stream's recorded ranges and gaps on its recording server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RemoteRecordings {
    /// `[start_us, end_us]` of each continuous range, oldest first.
    pub ranges: Vec<(i64, i64)>,
    pub gaps: Vec<RemoteGap>,
}

/// Parses a recording server's recorded ranges: at most [`MAX_RECORDINGS_BODY`] bytes and
/// [`MAX_SPANS`] spans, every span non-negative and not ending before it starts, gap reasons
/// short printable text.
pub fn parse_recordings(body: &[u8]) -> Result<RemoteRecordings, BodyError> {
    if body.len() > MAX_RECORDINGS_BODY {
        return Err(BodyError::TooLarge(body.len()));
    }
    let r: RemoteRecordings =
        serde_json::from_slice(body).map_err(|e| BodyError::Json(e.to_string()))?;
    if r.ranges.len() + r.gaps.len() > MAX_SPANS {
        return Err(BodyError::Field(format!(
            "more than {MAX_SPANS} ranges and gaps"
        )));
    }
    let bad = |(s, e): (i64, i64)| s < 0 || e < s;
    if r.ranges.iter().any(|r| bad(*r)) || r.gaps.iter().any(|g| bad((g.start_us, g.end_us))) {
        return Err(BodyError::Field(
            "a range or gap ends before it starts".into(),
        ));
    }
    if let Some(g) = r
        .gaps
        .iter()
        .find(|g| g.reason.len() > MAX_GAP_REASON || g.reason.chars().any(char::is_control))
    {
        return Err(BodyError::Field(format!(
            "the reason of the gap at {} is not short printable text",
            g.start_us
        )));
    }
    Ok(r)
}

/// Headers of a playback answer (microsecond times).
pub const HEADER_MEDIA_START_US: &str = "vigil-media-start-us";
pub const HEADER_MEDIA_END_US: &str = "vigil-media-end-us";
/// The start of every codec part of the range, comma-separated; the answer is the first.
pub const HEADER_PART_STARTS_US: &str = "vigil-part-starts-us";

/// What a playback answer's headers say about the MP4 in its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackHeaders {
    pub media_start_us: i64,
    pub media_end_us: i64,
    /// At least one: the body's part.
    pub part_starts_us: Vec<i64>,
    /// The recording server's strong validator (quoted, as in HTTP).
    pub etag: String,
}

/// Reads a playback answer's headers (looked up by `get`, case-insensitive names).
pub fn parse_playback_headers<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<PlaybackHeaders, BodyError> {
    let time = |name: &str| {
        get(name)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v >= 0)
            .ok_or_else(|| BodyError::Field(format!("header {name} is missing or not a time")))
    };
    let media_start_us = time(HEADER_MEDIA_START_US)?;
    let media_end_us = time(HEADER_MEDIA_END_US)?;
    if media_end_us < media_start_us {
        return Err(BodyError::Field("the media ends before it starts".into()));
    }
    let starts = get(HEADER_PART_STARTS_US).unwrap_or("");
    let part_starts_us = starts
        .split(',')
        .take(MAX_PARTS + 1)
        .map(|s| s.trim().parse::<i64>().ok().filter(|v| *v >= 0))
        .collect::<Option<Vec<i64>>>()
        .filter(|v| !v.is_empty() && v.len() <= MAX_PARTS && v.is_sorted())
        .ok_or_else(|| {
            BodyError::Field(format!(
                "header {HEADER_PART_STARTS_US} must list 1 to {MAX_PARTS} ascending times"
            ))
        })?;
    let etag = get("etag").unwrap_or("");
    if etag.len() < 3
        || etag.len() > 128
        || !etag.starts_with('"')
        || !etag.ends_with('"')
        || !etag[1..etag.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"')
    {
        return Err(BodyError::Field(
            "the ETag is missing or not a quoted token".into(),
        ));
    }
    Ok(PlaybackHeaders {
        media_start_us,
        media_end_us,
        part_starts_us,
        etag: etag.to_owned(),
    })
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

    fn camera(id: &str, name: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id, "name": name, "url": "rtsp://127.0.0.1:8554/cam",
            "username": "viewer", "password": "s3cret", "enabled": true,
            "max_age_secs": null, "max_bytes": null, "tls_pin": null,
            "secondary": {"url": "rtsps://cam.example/sub", "username": null, "password": null, "mode": "live"}
        })
    }

    #[test]
    fn assignments_bounds() {
        let ok = serde_json::json!({"revision": "ab12", "cameras": [camera("cam-0123456789ab", "door")]});
        let a = parse_assignments(ok.to_string().as_bytes()).unwrap();
        assert_eq!(a.cameras[0].name, "door");
        assert!(!format!("{a:?}").contains("s3cret"), "{a:?}");
        let empty = serde_json::json!({"revision": "0", "cameras": []});
        assert!(parse_assignments(empty.to_string().as_bytes()).is_ok());

        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = camera("cam-0123456789ab", "door");
            f(&mut c);
            serde_json::json!({"revision": "ab12", "cameras": [c]}).to_string()
        };
        let cases: Vec<(String, &str)> = vec![
            ("{".into(), "not the expected JSON"),
            (
                r#"{"revision":"a","cameras":[],"x":1}"#.into(),
                "unknown field",
            ),
            (r#"{"revision":"","cameras":[]}"#.into(), "revision"),
            (r#"{"revision":"a/b","cameras":[]}"#.into(), "revision"),
            (with(&|c| c["id"] = "cam-XYZ".into()), "cam-<12 hex digits>"),
            (
                with(&|c| c["id"] = "../../etc".into()),
                "cam-<12 hex digits>",
            ),
            (with(&|c| c["name"] = "a b".into()), "the name must be"),
            (
                with(&|c| c["name"] = "x".repeat(65).into()),
                "the name must be",
            ),
            (
                with(&|c| c["url"] = "http://cam/".into()),
                "rtsp:// or rtsps://",
            ),
            (with(&|c| c["url"] = "rtsp://cam/\n".into()), "printable"),
            (
                with(&|c| c["url"] = format!("rtsp://{}", "a".repeat(MAX_URL)).into()),
                "printable",
            ),
            (
                with(&|c| c["username"] = serde_json::Value::Null),
                "without a user name",
            ),
            (with(&|c| c["password"] = "x\u{0}".into()), "printable"),
            (with(&|c| c["max_age_secs"] = (-1).into()), "positive"),
            (with(&|c| c["max_bytes"] = 0.into()), "positive"),
            (with(&|c| c["tls_pin"] = "".into()), "tls_pin"),
            (
                with(&|c| c["secondary"]["mode"] = "both".into()),
                "live or recorded",
            ),
            (
                with(&|c| c["secondary"]["url"] = "file:///etc/passwd".into()),
                "rtsp:// or rtsps://",
            ),
            (
                with(&|c| c["enabled"] = "yes".into()),
                "not the expected JSON",
            ),
            (with(&|c| c["extra"] = 1.into()), "unknown field"),
        ];
        for (body, want) in cases {
            let e = parse_assignments(body.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        let twice = serde_json::json!({"revision": "a", "cameras": [
            camera("cam-0123456789ab", "door"), camera("cam-0123456789ab", "gate")]});
        let e = parse_assignments(twice.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let same_name = serde_json::json!({"revision": "a", "cameras": [
            camera("cam-0123456789ab", "door"), camera("cam-0123456789ac", "door")]});
        assert!(parse_assignments(same_name.to_string().as_bytes()).is_err());
        let many: Vec<_> = (0..=MAX_ASSIGNED)
            .map(|i| camera(&format!("cam-{i:012x}"), &format!("c{i}")))
            .collect();
        let body = serde_json::json!({"revision": "a", "cameras": many}).to_string();
        let e = parse_assignments(body.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        let big = vec![b' '; MAX_ASSIGNMENTS_BODY + 1];
        assert_eq!(
            parse_assignments(&big).unwrap_err(),
            BodyError::TooLarge(MAX_ASSIGNMENTS_BODY + 1)
        );
    }

    #[test]
    fn video_requests_bounds() {
        let q = VideoQuery {
            from_us: 10,
            to_us: 20,
            secondary: true,
        };
        let (id, what, got) =
            parse_video_request("/v1/cameras/cam-0123456789ab/playback", Some(&q.to_query()))
                .unwrap();
        assert_eq!((id, what, got), ("cam-0123456789ab", "playback", q));
        let (_, what, got) = parse_video_request(
            "/v1/cameras/cam-0123456789ab/recordings",
            Some("to_us=5&from_us=1"),
        )
        .unwrap();
        assert_eq!(what, "recordings");
        assert!(!got.secondary);
        for (path, query, want) in [
            (
                "/v1/cameras/cam-0123456789ab",
                Some("from_us=1&to_us=2"),
                "no camera request",
            ),
            (
                "/v1/cameras/../../etc/playback",
                Some("from_us=1&to_us=2"),
                "cam-<12",
            ),
            (
                "/v1/cameras/cam-0123456789AB/playback",
                Some("from_us=1&to_us=2"),
                "cam-<12",
            ),
            (
                "/v1/cameras/cam-0123456789ab/export",
                Some("from_us=1&to_us=2"),
                "recordings or playback",
            ),
            (
                "/v1/status/cam-0123456789ab/playback",
                Some("from_us=1&to_us=2"),
                "not a camera",
            ),
            ("/v1/cameras/cam-0123456789ab/playback", None, "required"),
            (
                "/v1/cameras/cam-0123456789ab/playback",
                Some("from_us=1"),
                "required",
            ),
            (
                "/v1/cameras/cam-0123456789ab/playback",
                Some("from_us=2&to_us=2"),
                "before",
            ),
            (
                "/v1/cameras/cam-0123456789ab/playback",
                Some("from_us=-1&to_us=2"),
                "microseconds",
            ),
            (
                "/v1/cameras/cam-0123456789ab/playback",
                Some("from_us=x&to_us=2"),
                "microseconds",
            ),
            (
                "/v1/cameras/cam-0123456789ab/playback",
                Some("from_us=1&from_us=1&to_us=2"),
                "twice",
            ),
            (
                "/v1/cameras/cam-0123456789ab/playback",
                Some("from_us=1&to_us=2&stream=side"),
                "main or secondary",
            ),
            (
                "/v1/cameras/cam-0123456789ab/playback",
                Some("from_us=1&to_us=2&x=1"),
                "unknown",
            ),
            (
                "/v1/cameras/cam-0123456789ab/playback",
                Some("from_us"),
                "no value",
            ),
        ] {
            let e = parse_video_request(path, query).unwrap_err().to_string();
            assert!(e.contains(want), "{path}?{query:?}: {e}");
        }
        let long = format!("from_us=1&to_us=2&{}", "&".repeat(300));
        assert!(parse_video_request("/v1/cameras/cam-0123456789ab/playback", Some(&long)).is_err());
    }

    #[test]
    fn recordings_answer_bounds() {
        let ok = serde_json::json!({"ranges": [[1, 5], [7, 7]],
            "gaps": [{"start_us": 5, "end_us": 7, "reason": "camera unreachable"}]});
        let r = parse_recordings(ok.to_string().as_bytes()).unwrap();
        assert_eq!(r.ranges, [(1, 5), (7, 7)]);
        for (body, want) in [
            (
                serde_json::json!({"ranges": [[5, 1]], "gaps": []}),
                "ends before",
            ),
            (
                serde_json::json!({"ranges": [[-1, 1]], "gaps": []}),
                "ends before",
            ),
            (
                serde_json::json!({"ranges": [], "gaps": [{"start_us": 3, "end_us": 2, "reason": "x"}]}),
                "ends before",
            ),
            (
                serde_json::json!({"ranges": [], "gaps": [{"start_us": 1, "end_us": 2, "reason": "a\u{1b}[31m"}]}),
                "printable",
            ),
            (
                serde_json::json!({"ranges": [], "gaps": [{"start_us": 1, "end_us": 2, "reason": "x".repeat(300)}]}),
                "printable",
            ),
            (
                serde_json::json!({"ranges": [], "gaps": [], "more": 1}),
                "unknown field",
            ),
            (serde_json::json!({"ranges": [[1]], "gaps": []}), "JSON"),
        ] {
            let e = parse_recordings(body.to_string().as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        let many = serde_json::json!({"ranges": vec![[1, 2]; MAX_SPANS + 1], "gaps": []});
        assert!(parse_recordings(many.to_string().as_bytes()).is_err());
        let big = vec![b' '; MAX_RECORDINGS_BODY + 1];
        assert_eq!(
            parse_recordings(&big).unwrap_err(),
            BodyError::TooLarge(MAX_RECORDINGS_BODY + 1)
        );
    }

    #[test]
    fn playback_headers_bounds() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let pairs = pairs.to_vec();
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| *v)
            }
        };
        let good = [
            (HEADER_MEDIA_START_US, "100"),
            (HEADER_MEDIA_END_US, "200"),
            (HEADER_PART_STARTS_US, "100,150"),
            ("etag", "\"abc-1\""),
        ];
        let h = parse_playback_headers(headers(&good)).unwrap();
        assert_eq!(h.part_starts_us, [100, 150]);
        assert_eq!(h.etag, "\"abc-1\"");
        let with = |name: &'static str, value: &'static str| {
            let mut v: Vec<_> = good.iter().copied().filter(|(n, _)| *n != name).collect();
            v.push((name, value));
            v
        };
        for (pairs, want) in [
            (with(HEADER_MEDIA_START_US, "x"), "not a time"),
            (with(HEADER_MEDIA_END_US, "-5"), "not a time"),
            (with(HEADER_MEDIA_END_US, "50"), "ends before"),
            (with(HEADER_PART_STARTS_US, ""), "ascending"),
            (with(HEADER_PART_STARTS_US, "150,100"), "ascending"),
            (with(HEADER_PART_STARTS_US, "1,,2"), "ascending"),
            (with("etag", "abc"), "ETag"),
            (with("etag", "\"a\"b\""), "ETag"),
            (with("etag", "\"a\r\nset-cookie: x\""), "ETag"),
            (good[1..].to_vec(), "missing"),
        ] {
            let e = parse_playback_headers(headers(&pairs))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{pairs:?}: {e}");
        }
        let many: &'static str = Box::leak(
            (0..=MAX_PARTS)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
                .into_boxed_str(),
        );
        assert!(parse_playback_headers(headers(&with(HEADER_PART_STARTS_US, many))).is_err());
    }

    #[test]
    fn heartbeat_reply_bounds() {
        let ok = serde_json::json!({"name": "rec1", "revoked": [], "assignments": "00ff"});
        assert!(parse_heartbeat_reply(ok.to_string().as_bytes()).is_ok());
        let bad = serde_json::json!({"name": "rec1", "revoked": [], "assignments": "x".repeat(65)});
        assert!(parse_heartbeat_reply(bad.to_string().as_bytes()).is_err());
        let bad = serde_json::json!({"name": "rec1", "revoked": [], "assignments": "../"});
        assert!(parse_heartbeat_reply(bad.to_string().as_bytes()).is_err());
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
