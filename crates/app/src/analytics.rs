//! Analytics events over HTTPS (docs/events-in.md): a video-analytics system (or any sender
//! holding an API token with the `event_source` role, or an admin) posts what it detected on
//! a camera: the camera, when, the detection's type, optionally object class, confidence and
//! bounding boxes. The body is checked field by field with messages that say what is wrong;
//! an accepted detection becomes an event `analytics.<type>` of category `external`, source
//! kind `analytics` named by the token (or user), on the event bus.
//!
//! [`parse`] is the outside parser (fuzzed: `fuzz/fuzz_targets/analytics_event.rs`); [`post`]
//! is the use case: who may post about which camera, which cameras exist, publishing.

use std::collections::BTreeMap;

use serde::Deserialize;
use vigil_access::{Denied, Permission, Principal};
use vigil_events::model::{MAX_MESSAGE, MAX_NAME};
use vigil_events::nonces::NonceStore;
use vigil_events::{Category, EventBus, NewEvent, Severity, Source, SourceKind};
use vigil_media::store::{Store, StoreError};

use crate::error::{Classified, ErrorKind};

/// The largest body accepted.
pub const MAX_BODY: usize = 16 * 1024;
/// Bounding boxes per event at most.
pub const MAX_BOXES: usize = 8;
/// Attributes a sender may add at most (the rest of an event's 32 are the fields above).
pub const MAX_SENDER_ATTRIBUTES: usize = 16;
/// Longest `type` (the stored kind is `analytics.` and this).
pub const MAX_TYPE: usize = 64;
/// A detection's time may be this far ahead of the server's clock.
pub const MAX_FUTURE_US: i64 = 5 * 60 * 1_000_000;
/// ... and this far behind it (a sender catching up after an outage).
pub const MAX_PAST_US: i64 = 24 * 3600 * 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("the body is not a valid analytics event: {0}")]
    Json(String),
    #[error("field `{field}`: {why}")]
    Field { field: &'static str, why: String },
    #[error("{0}")]
    Denied(#[from] Denied),
    #[error("there is no camera {0:?}")]
    UnknownCamera(String),
    #[error("cannot look up the camera: {0}")]
    Store(#[from] StoreError),
    #[error("the event was refused: {0}")]
    Refused(#[from] vigil_events::EventError),
    #[error("signature refused: {0}")]
    BadSignature(String),
    #[error(
        "X-Vigil-Timestamp is {0} s away from the server's clock; at most {MAX_SKEW_S} s (check the sender's clock, NTP)"
    )]
    Stale(i64),
    #[error("this nonce was already used within the last {MAX_SKEW_S} s: a replayed request")]
    Replayed,
    #[error("the sender's secret cannot be used: {0}")]
    SecretUnavailable(String),
    #[error("the nonce cannot be recorded, so the post is refused (try again): {0}")]
    NoncesUnavailable(String),
}

impl Classified for AnalyticsError {
    fn kind(&self) -> ErrorKind {
        match self {
            AnalyticsError::Json(_)
            | AnalyticsError::Field { .. }
            | AnalyticsError::UnknownCamera(_) => ErrorKind::InvalidInput,
            AnalyticsError::Denied(_) => ErrorKind::Forbidden,
            AnalyticsError::BadSignature(_)
            | AnalyticsError::Stale(_)
            | AnalyticsError::Replayed => ErrorKind::Unauthorized,
            AnalyticsError::SecretUnavailable(_) | AnalyticsError::NoncesUnavailable(_) => {
                ErrorKind::Unavailable
            }
            AnalyticsError::Store(_) | AnalyticsError::Refused(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AnalyticsError::Json(_) | AnalyticsError::Field { .. } => "invalid_event",
            AnalyticsError::UnknownCamera(_) => "unknown_camera",
            AnalyticsError::Denied(_) => "forbidden",
            AnalyticsError::BadSignature(_) => "bad_signature",
            AnalyticsError::Stale(_) => "stale_request",
            AnalyticsError::Replayed => "replayed_request",
            AnalyticsError::SecretUnavailable(_) => "webhook_secret_unavailable",
            AnalyticsError::NoncesUnavailable(_) => "nonces_unavailable",
            AnalyticsError::Store(_) | AnalyticsError::Refused(_) => "internal",
        }
    }
}

/// A bounding box in coordinates relative to the picture: 0..1 from the left and top edge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BoundingBox {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    #[serde(default)]
    object_class: Option<String>,
    #[serde(default)]
    confidence: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    camera: String,
    time: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    object_class: Option<String>,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    boxes: Vec<BoundingBox>,
    #[serde(default)]
    attributes: BTreeMap<String, serde_json::Value>,
}

fn field(field: &'static str, why: impl Into<String>) -> AnalyticsError {
    AnalyticsError::Field {
        field,
        why: why.into(),
    }
}

/// A lowercase name: `a-z 0-9 _`, inner dots, 1..=max bytes.
fn dotted(name: &'static str, s: &str, max: usize) -> Result<(), AnalyticsError> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..");
    if ok {
        Ok(())
    } else {
        Err(field(
            name,
            format!(
                "{:?} is not allowed: use 1 to {max} lowercase letters, digits, '_' and inner \
                 '.' (e.g. person or line_crossing)",
                s.chars().take(64).collect::<String>()
            ),
        ))
    }
}

fn unit(name: &'static str, v: f64) -> Result<f64, AnalyticsError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(field(name, format!("{v} is not between 0 and 1")))
    }
}

/// Checks a body and makes the event, as sent by `source` (a token's or user's name) and
/// received at `received_us`.
pub fn parse(body: &[u8], source: &str, received_us: i64) -> Result<NewEvent, AnalyticsError> {
    if body.len() > MAX_BODY {
        return Err(AnalyticsError::Json(format!(
            "{} bytes; at most {MAX_BODY}",
            body.len()
        )));
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| AnalyticsError::Json(e.to_string()))?;
    if b.camera.is_empty() || b.camera.len() > MAX_NAME || b.camera.chars().any(char::is_control) {
        return Err(field(
            "camera",
            format!("must be a camera name of 1 to {MAX_NAME} printable bytes"),
        ));
    }
    dotted("type", &b.kind, MAX_TYPE)?;
    let time_us =
        time::OffsetDateTime::parse(&b.time, &time::format_description::well_known::Rfc3339)
            .ok()
            .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1000).ok())
            .ok_or_else(|| {
                field(
                    "time",
                    format!(
                        "{:?} is not an RFC 3339 time (e.g. 2026-12-07T10:00:00.250Z)",
                        b.time.chars().take(64).collect::<String>()
                    ),
                )
            })?;
    if time_us > received_us.saturating_add(MAX_FUTURE_US) {
        return Err(field(
            "time",
            "is more than 5 minutes ahead of the server's clock: check the sender's clock (NTP)",
        ));
    }
    if time_us < received_us.saturating_sub(MAX_PAST_US) {
        return Err(field(
            "time",
            "is more than 24 hours in the past: such a detection is no longer accepted",
        ));
    }
    let severity = match &b.severity {
        None => Severity::Notice,
        Some(s) => Severity::parse(s).ok_or_else(|| {
            field(
                "severity",
                "use one of emergency, alert, critical, error, warning, notice, info, debug",
            )
        })?,
    };
    let mut attributes = BTreeMap::new();
    if let Some(c) = &b.object_class {
        dotted("object_class", c, MAX_TYPE)?;
        attributes.insert("object_class".to_owned(), c.clone());
    }
    if let Some(c) = b.confidence {
        attributes.insert(
            "confidence".to_owned(),
            format!("{:.3}", unit("confidence", c)?),
        );
    }
    if b.boxes.len() > MAX_BOXES {
        return Err(field(
            "boxes",
            format!("{} boxes; at most {MAX_BOXES}", b.boxes.len()),
        ));
    }
    for (i, bx) in b.boxes.iter().enumerate() {
        let (x, y) = (unit("boxes.x", bx.x)?, unit("boxes.y", bx.y)?);
        let (w, h) = (
            unit("boxes.width", bx.width)?,
            unit("boxes.height", bx.height)?,
        );
        if x + w > 1.0 + 1e-9 || y + h > 1.0 + 1e-9 {
            return Err(field(
                "boxes",
                format!(
                    "box {i} reaches beyond the picture (x + width and y + height must be at most 1)"
                ),
            ));
        }
        let mut v = format!("x={x:.4} y={y:.4} width={w:.4} height={h:.4}");
        if let Some(c) = &bx.object_class {
            dotted("boxes.object_class", c, MAX_TYPE)?;
            v.push_str(&format!(" object_class={c}"));
        }
        if let Some(c) = bx.confidence {
            v.push_str(&format!(" confidence={:.3}", unit("boxes.confidence", c)?));
        }
        attributes.insert(format!("box.{i}"), v);
    }
    if !b.boxes.is_empty() {
        attributes.insert("boxes".to_owned(), b.boxes.len().to_string());
    }
    if b.attributes.len() > MAX_SENDER_ATTRIBUTES {
        return Err(field(
            "attributes",
            format!(
                "{} entries; at most {MAX_SENDER_ATTRIBUTES}",
                b.attributes.len()
            ),
        ));
    }
    for (k, v) in &b.attributes {
        let value =
            vigil_events::model::sender_attribute(k, v).map_err(|why| field("attributes", why))?;
        // The fields above keep their meaning.
        attributes.entry(k.clone()).or_insert(value);
    }
    let message = match &b.message {
        Some(m) if m.trim().is_empty() => return Err(field("message", "is empty")),
        Some(m) if m.len() > MAX_MESSAGE => {
            return Err(field(
                "message",
                format!("{} bytes; at most {MAX_MESSAGE}", m.len()),
            ));
        }
        Some(m) => m.trim().to_owned(),
        None => match &b.object_class {
            Some(c) => format!("{} ({c}) on camera {}", b.kind.replace('_', " "), b.camera),
            None => format!("{} on camera {}", b.kind.replace('_', " "), b.camera),
        },
    };
    let source: String = if source.len() > MAX_NAME {
        source.chars().take(MAX_NAME / 4).collect()
    } else {
        source.to_owned()
    };
    Ok(NewEvent {
        time_us,
        source: Source::new(SourceKind::Analytics, source),
        kind: format!("analytics.{}", b.kind),
        category: Category::External,
        severity,
        message,
        camera: Some(b.camera),
        attributes,
    })
}

/// What a posted event became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub kind: String,
    pub camera: String,
    pub time_us: i64,
}

/// Whether `principal` may post events at all (before its body is read).
pub fn authorize(principal: &Principal) -> Result<(), AnalyticsError> {
    let role = principal.role();
    if role.grants(Permission::WriteEvents) {
        Ok(())
    } else {
        Err(Denied::Role {
            role,
            permission: Permission::WriteEvents,
        }
        .into())
    }
}

/// Posts an analytics event: the caller must be allowed to write events about its camera
/// (checked before whether the camera exists, so nothing is learnt about other cameras),
/// and the camera must exist.
pub fn post(
    principal: &Principal,
    store: &Store,
    bus: &EventBus,
    body: &[u8],
) -> Result<Posted, AnalyticsError> {
    authorize(principal)?;
    let source = match principal {
        Principal::Token { name, .. } => name.clone(),
        Principal::User { username, .. } => username.clone(),
    };
    let event = parse(body, &source, vigil_events::model::now_us())?;
    let camera = event.camera.clone().unwrap_or_default();
    principal.authorize(Permission::WriteEvents, Some(&camera))?;
    match store.camera(&camera) {
        Ok(_) => {}
        Err(StoreError::NoSuchCamera(_)) => return Err(AnalyticsError::UnknownCamera(camera)),
        Err(e) => return Err(e.into()),
    }
    let posted = Posted {
        kind: event.kind.clone(),
        camera,
        time_us: event.time_us,
    };
    bus.publish(event)?;
    Ok(posted)
}

/// Header with the sender's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "x-vigil-timestamp";
/// Header with a value the sender never reuses (16 to 128 of `A-Z a-z 0-9 _ -`).
pub const NONCE_HEADER: &str = "x-vigil-nonce";
/// Header with `sha256=<lowercase hex HMAC-SHA256 of timestamp "." nonce "." body>`.
pub const SIGNATURE_HEADER: &str = "x-vigil-signature";
/// Largest difference between the sender's and the server's clock, seconds.
pub const MAX_SKEW_S: i64 = 300;
/// Shortest shared secret, bytes.
pub const MIN_SECRET: usize = 32;
/// Nonces remembered at most (all senders); when full, a signed post is refused until
/// older ones leave the window.
pub const MAX_NONCES: usize = 100_000;

/// The headers of a signed post.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signature<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// The nonces of signed posts within the time window, per sender: a second post with the
/// same nonce is a replay. Checked in memory; with a [`NonceStore`] also written to
/// `events.db` and loaded again at start, so a request captured before a restart is still
/// refused after it.
#[derive(Debug, Default)]
pub struct Nonces {
    seen: std::sync::Mutex<std::collections::HashMap<(String, String), i64>>,
    store: Option<NonceStore>,
}

impl Nonces {
    /// Nonces in memory only (tests, and a process without an event database).
    pub fn new() -> Self {
        Self::default()
    }

    /// Nonces kept in `store` too; the ones still within the window at `now_s` are loaded.
    pub fn persistent(store: NonceStore, now_s: i64) -> Result<Self, vigil_events::StoreError> {
        let seen = store
            .live(now_s)?
            .into_iter()
            .map(|(sender, nonce, until)| ((sender, nonce), until))
            .collect();
        Ok(Nonces {
            seen: std::sync::Mutex::new(seen),
            store: Some(store),
        })
    }

    fn remember(&self, sender: &str, nonce: &str, now_s: i64) -> Result<(), AnalyticsError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_NONCES {
            seen.retain(|_, until| *until >= now_s);
            if seen.len() >= MAX_NONCES {
                return Err(AnalyticsError::BadSignature(
                    "too many signed posts within the time window; try again later".into(),
                ));
            }
        }
        let key = (sender.to_owned(), nonce.to_owned());
        if seen.get(&key).is_some_and(|until| *until >= now_s) {
            return Err(AnalyticsError::Replayed);
        }
        // Kept while a request with a timestamp of `now` could still arrive.
        let until = now_s + 2 * MAX_SKEW_S;
        if let Some(store) = &self.store {
            match store.claim(sender, nonce, until, now_s) {
                Ok(true) => {}
                // Another process on the same database took it (never in memory here).
                Ok(false) => return Err(AnalyticsError::Replayed),
                // Refused rather than accepted unrecorded: after a restart it could be
                // replayed. The sender tries again (503).
                Err(e) => return Err(AnalyticsError::NoncesUnavailable(e.to_string())),
            }
        }
        seen.insert(key, until);
        Ok(())
    }
}

/// The shared secret of a sender: its file must be readable by the server only.
fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, AnalyticsError> {
    use std::os::unix::fs::PermissionsExt as _;
    let unavailable = |why: String| AnalyticsError::SecretUnavailable(why);
    let meta =
        std::fs::metadata(path).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(unavailable(format!(
            "{} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    let mut secret =
        std::fs::read(path).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.len() < MIN_SECRET {
        return Err(unavailable(format!(
            "{} holds {} bytes; at least {MIN_SECRET}",
            path.display(),
            secret.len()
        )));
    }
    Ok(secret)
}

/// Checks a signed post of sender `name` (one of `[[events.webhooks]]`) at `now_s`: the
/// timestamp within [`MAX_SKEW_S`], the HMAC-SHA256 with the sender's secret over
/// `timestamp "." nonce "." body`, a nonce not seen within the window. Then posts the body
/// as the sender would with a token of role `event_source` limited to its cameras.
#[allow(clippy::too_many_arguments)]
pub fn post_signed(
    webhooks: &[vigil_config::EventWebhook],
    nonces: &Nonces,
    name: &str,
    sig: Signature<'_>,
    now_s: i64,
    store: &Store,
    bus: &EventBus,
    body: &[u8],
) -> Result<Posted, AnalyticsError> {
    let bad = |why: &str| AnalyticsError::BadSignature(why.to_owned());
    // An unknown sender gets the same answer as a wrong signature.
    let w = webhooks
        .iter()
        .find(|w| w.name == name)
        .ok_or_else(|| bad("unknown sender or wrong signature"))?;
    let ts = sig
        .timestamp
        .ok_or_else(|| bad("X-Vigil-Timestamp is missing"))?;
    let ts_s: i64 = ts
        .parse()
        .map_err(|_| bad("X-Vigil-Timestamp must be Unix seconds"))?;
    if (now_s - ts_s).abs() > MAX_SKEW_S {
        return Err(AnalyticsError::Stale(now_s.saturating_sub(ts_s)));
    }
    let nonce = sig.nonce.ok_or_else(|| bad("X-Vigil-Nonce is missing"))?;
    if !(16..=128).contains(&nonce.len())
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad(
            "X-Vigil-Nonce must be 16 to 128 letters, digits, '_' or '-'",
        ));
    }
    let tag = sig
        .signature
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
        .filter(|t| t.len() == 32)
        .ok_or_else(|| bad("X-Vigil-Signature must be sha256=<64 hex digits>"))?;
    let secret = read_secret(&w.secret_file)?;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let mut signed = Vec::with_capacity(ts.len() + nonce.len() + 2 + body.len());
    signed.extend_from_slice(ts.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(nonce.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    aws_lc_rs::hmac::verify(&key, &signed, &tag)
        .map_err(|_| bad("unknown sender or wrong signature"))?;
    // Only a verified request takes a place in the table, so forgeries cannot fill it.
    nonces.remember(name, nonce, now_s)?;
    let principal = Principal::Token {
        token_id: format!("webhook:{name}"),
        name: name.to_owned(),
        role: vigil_access::Role::EventSource,
        cameras: match &w.cameras {
            Some(c) => vigil_access::CameraScope::only(c.iter().cloned()),
            None => vigil_access::CameraScope::All,
        },
    };
    post(&principal, store, bus, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-07T10:00:00Z
    const NOW: i64 = 1_796_637_600_000_000;

    fn p(body: &str) -> Result<NewEvent, AnalyticsError> {
        parse(body.as_bytes(), "nvr-analytics", NOW)
    }

    #[test]
    fn a_detection_becomes_an_analytics_event() {
        let e = p(r#"{"camera":"lobby","time":"2026-12-07T09:59:58.5Z","type":"intrusion","object_class":"person","confidence":0.91,
            "boxes":[{"x":0.1,"y":0.2,"width":0.3,"height":0.5,"object_class":"person","confidence":0.9}],
            "attributes":{"zone":"door","track_id":42,"object_class":"ignored"}}"#)
        .unwrap();
        assert_eq!(e.kind, "analytics.intrusion");
        assert_eq!(e.category, Category::External);
        assert_eq!(
            e.source,
            Source::new(SourceKind::Analytics, "nvr-analytics")
        );
        assert_eq!(e.camera.as_deref(), Some("lobby"));
        assert_eq!(e.time_us, NOW - 1_500_000);
        assert_eq!(e.severity, Severity::Notice);
        assert_eq!(e.message, "intrusion (person) on camera lobby");
        assert_eq!(e.attributes["object_class"], "person");
        assert_eq!(e.attributes["confidence"], "0.910");
        assert_eq!(
            e.attributes["box.0"],
            "x=0.1000 y=0.2000 width=0.3000 height=0.5000 object_class=person confidence=0.900"
        );
        assert_eq!(e.attributes["boxes"], "1");
        assert_eq!(e.attributes["zone"], "door");
        assert_eq!(e.attributes["track_id"], "42");
        e.check().unwrap();
    }

    #[test]
    fn a_secret_readable_by_others_or_too_short_is_not_used() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "x".repeat(40)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(&path).unwrap().len(), 40);
        std::fs::write(&path, "short\n").unwrap();
        assert!(
            read_secret(&path)
                .unwrap_err()
                .to_string()
                .contains("at least 32")
        );
    }

    #[test]
    fn a_persistent_nonce_is_refused_after_a_restart_too() {
        let dir = tempfile::tempdir().unwrap();
        let open = |now| Nonces::persistent(NonceStore::open(dir.path()).unwrap(), now).unwrap();
        let n = open(1000);
        n.remember("a", "nonce-0000000001", 1000).unwrap();
        drop(n);
        // The restarted server loads what is still within the window.
        let n = open(1100);
        assert!(matches!(
            n.remember("a", "nonce-0000000001", 1100),
            Err(AnalyticsError::Replayed)
        ));
        n.remember("a", "nonce-0000000002", 1100).unwrap();
        drop(n);
        // After the window: forgotten (a request that old is refused as stale anyway).
        let n = open(1000 + 2 * MAX_SKEW_S + 1);
        n.remember("a", "nonce-0000000001", 1000 + 2 * MAX_SKEW_S + 1)
            .unwrap();
    }

    #[test]
    fn a_nonce_is_refused_again_within_the_window_only() {
        let n = Nonces::new();
        n.remember("a", "nonce-0000000001", 1000).unwrap();
        assert!(matches!(
            n.remember("a", "nonce-0000000001", 1100),
            Err(AnalyticsError::Replayed)
        ));
        n.remember("b", "nonce-0000000001", 1100).unwrap();
        n.remember("a", "nonce-0000000001", 1000 + 2 * MAX_SKEW_S + 1)
            .unwrap();
    }

    #[test]
    fn bad_bodies_say_which_field_and_why() {
        let msg = |b: &str| p(b).unwrap_err().to_string();
        let ok = r#""camera":"lobby","time":"2026-12-07T10:00:00Z","type":"motion""#;
        assert!(msg("{").starts_with("the body is not a valid analytics event"));
        assert!(
            msg(r#"{"time":"2026-12-07T10:00:00Z","type":"motion"}"#)
                .contains("missing field `camera`")
        );
        assert!(msg(&format!("{{{ok},\"colour\":1}}")).contains("unknown field `colour`"));
        for (extra, field) in [
            (
                r#","boxes":[{"x":0.9,"y":0,"width":0.2,"height":0.1}]"#,
                "field `boxes`",
            ),
            (
                r#","boxes":[{"x":-0.1,"y":0,"width":0.2,"height":0.1}]"#,
                "field `boxes.x`",
            ),
            (r#","confidence":1.5"#, "field `confidence`"),
            (r#","severity":"loud""#, "field `severity`"),
            (
                r#","object_class":"Person Walking""#,
                "field `object_class`",
            ),
            (r#","message":" ""#, "field `message`"),
            (r#","attributes":{"a b":1}"#, "field `attributes`"),
            (r#","attributes":{"a":[1]}"#, "field `attributes`"),
        ] {
            let m = msg(&format!("{{{ok}{extra}}}"));
            assert!(m.starts_with(field), "{extra}: {m}");
        }
        let boxes: Vec<String> = (0..=MAX_BOXES)
            .map(|_| r#"{"x":0,"y":0,"width":0.1,"height":0.1}"#.to_owned())
            .collect();
        assert!(msg(&format!("{{{ok},\"boxes\":[{}]}}", boxes.join(","))).contains("at most 8"));
        assert!(
            msg(r#"{"camera":"lobby","time":"2026-12-07T10:06:00Z","type":"motion"}"#)
                .contains("ahead")
        );
        assert!(
            msg(r#"{"camera":"lobby","time":"2026-12-05T10:00:00Z","type":"motion"}"#)
                .contains("24 hours")
        );
        assert!(
            msg(r#"{"camera":"lobby","time":"yesterday","type":"motion"}"#).contains("RFC 3339")
        );
        assert!(
            msg(r#"{"camera":"lobby","time":"2026-12-07T10:00:00Z","type":"Motion!"}"#)
                .starts_with("field `type`")
        );
        assert!(
            msg(r#"{"camera":"","time":"2026-12-07T10:00:00Z","type":"motion"}"#)
                .starts_with("field `camera`")
        );
        for e in [
            p("{").unwrap_err(),
            p(r#"{"camera":"","time":"2026-12-07T10:00:00Z","type":"motion"}"#).unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert_eq!(e.code(), "invalid_event");
        }
    }
}
