//! The event: what every input (Vigil itself, generic events, analytics, syslog) is turned
//! into, and the limits an event must keep whatever sent it (inputs are outside parsers; an
//! event that passes [`NewEvent::check`] is safe to store, show and forward).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest message, in bytes (UTF-8).
pub const MAX_MESSAGE: usize = 2048;
/// Longest kind, source name or camera name.
pub const MAX_NAME: usize = 128;
/// Most attributes per event.
pub const MAX_ATTRIBUTES: usize = 32;
/// Longest attribute key.
pub const MAX_KEY: usize = 64;
/// Longest attribute value, in bytes.
pub const MAX_VALUE: usize = 1024;

/// How bad it is: the eight RFC 5424 severities, most severe first (`emergency` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Severity {
    pub const ALL: [Severity; 8] = [
        Severity::Emergency,
        Severity::Alert,
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Notice,
        Severity::Info,
        Severity::Debug,
    ];

    /// The RFC 5424 number (0 emergency … 7 debug).
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Severity> {
        Self::ALL.get(usize::from(code)).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Emergency => "emergency",
            Severity::Alert => "alert",
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
            Severity::Debug => "debug",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an event is about, for filters and forwarding: `security` events (the audit log's
/// entries, logins, intrusion detection, certificates, event-source authentication) are
/// always forwarded to the SIEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Who did what: logins, permission and configuration changes, exports (the audit log).
    Security,
    /// A camera's connection and its video.
    Camera,
    /// Recording and storage: gaps, full disks, retention, verification.
    Recording,
    /// The server itself: start, stop, certificates expiring, forwarding.
    System,
    /// Sent by another system: generic events, analytics, syslog.
    External,
    /// Raised by a rule.
    Alarm,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Security,
        Category::Camera,
        Category::Recording,
        Category::System,
        Category::External,
        Category::Alarm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Security => "security",
            Category::Camera => "camera",
            Category::Recording => "recording",
            Category::System => "system",
            Category::External => "external",
            Category::Alarm => "alarm",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// This Vigil server (its name: the server's host name).
    Vigil,
    /// A camera (its name).
    Camera,
    /// A recording server of the installation (its name).
    RecordingServer,
    /// Another system sending generic events (its name or address).
    External,
    /// An analytics system posting over HTTPS (its token's name).
    Analytics,
    /// A host sending syslog (its host name or address).
    Syslog,
}

impl SourceKind {
    pub const ALL: [SourceKind; 6] = [
        SourceKind::Vigil,
        SourceKind::Camera,
        SourceKind::RecordingServer,
        SourceKind::External,
        SourceKind::Analytics,
        SourceKind::Syslog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Vigil => "vigil",
            SourceKind::Camera => "camera",
            SourceKind::RecordingServer => "recording_server",
            SourceKind::External => "external",
            SourceKind::Analytics => "analytics",
            SourceKind::Syslog => "syslog",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The producer of an event: its kind and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    pub kind: SourceKind,
    pub name: String,
}

impl Source {
    pub fn new(kind: SourceKind, name: impl Into<String>) -> Self {
        Source {
            kind,
            name: name.into(),
        }
    }
}

/// An event before it is stored: what producers hand to the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// When it happened, Unix microseconds (the producer's clock; the store adds when it
    /// was received).
    pub time_us: i64,
    pub source: Source,
    /// What happened, dotted lowercase: `camera.connection_lost`, `security.login_failed`,
    /// `syslog.dot1x_failure`, `generic`, …
    pub kind: String,
    pub category: Category,
    pub severity: Severity,
    /// For people, one line.
    pub message: String,
    /// The camera it concerns (its name), if any.
    pub camera: Option<String>,
    /// Anything else, as text: a switch's interface and MAC, a login's address, …
    pub attributes: BTreeMap<String, String>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increases with every stored event; never reused (also after retention deleted
    /// older ones), so it pages queries and orders what subscribers receive.
    pub id: i64,
    /// When the store received it, Unix microseconds.
    pub received_us: i64,
    #[serde(flatten)]
    pub event: NewEvent,
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event {field} is empty")]
    Empty { field: &'static str },
    #[error("event {field} is {len} bytes long; at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "event kind '{0}' is not allowed: use lowercase letters, digits, '_' and '.' (e.g. camera.connection_lost)"
    )]
    BadKind(String),
    #[error(
        "attribute name '{0}' is not allowed: use letters, digits, '_', '-' and '.' (at most 64)"
    )]
    BadKey(String),
    #[error("an event has at most {MAX_ATTRIBUTES} attributes; this one has {0}")]
    TooManyAttributes(usize),
}

impl NewEvent {
    /// An event of Vigil itself (`server`: this server's name).
    pub fn vigil(
        server: &str,
        kind: &str,
        category: Category,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        NewEvent {
            time_us: now_us(),
            source: Source::new(SourceKind::Vigil, server),
            kind: kind.into(),
            category,
            severity,
            message: message.into(),
            camera: None,
            attributes: BTreeMap::new(),
        }
    }

    pub fn camera(mut self, camera: impl Into<String>) -> Self {
        self.camera = Some(camera.into());
        self
    }

    pub fn attribute(mut self, key: &str, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Checks the limits every stored event keeps. Control characters in text fields are
    /// replaced (by [`NewEvent::sanitized`]) rather than refused: an input passes them
    /// through after that.
    pub fn check(&self) -> Result<(), EventError> {
        let name = |field: &'static str, s: &str, max: usize| {
            if s.is_empty() {
                Err(EventError::Empty { field })
            } else if s.len() > max {
                Err(EventError::TooLong {
                    field,
                    len: s.len(),
                    max,
                })
            } else {
                Ok(())
            }
        };
        name("kind", &self.kind, MAX_NAME)?;
        if !self
            .kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        {
            return Err(EventError::BadKind(truncated(&self.kind)));
        }
        name("source name", &self.source.name, MAX_NAME)?;
        name("message", &self.message, MAX_MESSAGE)?;
        if let Some(c) = &self.camera {
            name("camera", c, MAX_NAME)?;
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(EventError::TooManyAttributes(self.attributes.len()));
        }
        for (k, v) in &self.attributes {
            if !valid_attribute_name(k) {
                return Err(EventError::BadKey(truncated(k)));
            }
            if v.len() > MAX_VALUE {
                return Err(EventError::TooLong {
                    field: "attribute value",
                    len: v.len(),
                    max: MAX_VALUE,
                });
            }
        }
        Ok(())
    }

    /// The event with control characters in its text fields replaced by U+FFFD, so that no
    /// sender can forge lines in a log, a terminal or a syslog message. U+FFFD takes three
    /// bytes where a control character took one: a field the replacement makes longer than
    /// its limit is cut at its limit (on a character boundary), so an event within its limits
    /// stays within them.
    pub fn sanitized(mut self) -> Self {
        clean(&mut self.message, MAX_MESSAGE);
        clean(&mut self.source.name, MAX_NAME);
        if let Some(c) = self.camera.as_mut() {
            clean(c, MAX_NAME);
        }
        for v in self.attributes.values_mut() {
            clean(v, MAX_VALUE);
        }
        self
    }
}

fn clean(s: &mut String, max: usize) {
    // Printable ASCII, what nearly every value is, holds no control character: a byte test
    // the compiler vectorises, before the per-character one (U+0080..U+009F are controls too).
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) || !s.chars().any(char::is_control) {
        return;
    }
    let fits = s.len() <= max;
    *s = s
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if fits && s.len() > max {
        let end = cut(s, max).len();
        s.truncate(end);
    }
}

/// At most `max` bytes of `s`, cut at a character boundary (text from senders kept within
/// a limit rather than refused).
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// At most 64 characters of `s`, for error messages about it.
fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Whether `name` may name an attribute: 1 to [`MAX_KEY`] letters, digits, `_`, `-` and `.`.
pub fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEY
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// One attribute as a sender wrote it in JSON (`"name": string | number | boolean`), as the
/// text an event keeps; the error says what is wrong, in words for the sender. Shared by the
/// inputs that take JSON (generic events, analytics posts: docs/events-in.md).
pub fn sender_attribute(name: &str, value: &serde_json::Value) -> Result<String, String> {
    if !valid_attribute_name(name) {
        return Err(format!(
            "name {:?} is not allowed: use 1 to {MAX_KEY} letters, digits, '_', '-' and '.'",
            name.chars().take(MAX_KEY).collect::<String>()
        ));
    }
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        _ => {
            return Err(format!(
                "value of {name:?} must be a string, number or boolean"
            ));
        }
    };
    if text.len() > MAX_VALUE {
        return Err(format!(
            "value of {name:?} is {} bytes long; at most {MAX_VALUE}",
            text.len()
        ));
    }
    Ok(text)
}

/// Unix microseconds now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> NewEvent {
        NewEvent::vigil(
            "srv",
            "camera.connection_lost",
            Category::Camera,
            Severity::Warning,
            "camera lobby: connection lost",
        )
        .camera("lobby")
        .attribute("reason", "timeout")
    }

    #[test]
    fn a_well_formed_event_passes() {
        ev().check().unwrap();
    }

    #[test]
    fn limits_are_enforced_with_messages_saying_which() {
        let mut e = ev();
        e.kind = "Camera Lost".into();
        assert!(matches!(e.check(), Err(EventError::BadKind(_))));
        let mut e = ev();
        e.message = "x".repeat(MAX_MESSAGE + 1);
        let err = e.check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "event message is 2049 bytes long; at most 2048"
        );
        let mut e = ev();
        e.message.clear();
        assert_eq!(e.check().unwrap_err().to_string(), "event message is empty");
        let mut e = ev();
        e.attributes.insert("bad key".into(), "v".into());
        assert!(matches!(e.check(), Err(EventError::BadKey(_))));
        let mut e = ev();
        for i in 0..=MAX_ATTRIBUTES {
            e.attributes.insert(format!("k{i}"), "v".into());
        }
        assert!(matches!(e.check(), Err(EventError::TooManyAttributes(_))));
        let mut e = ev();
        e.attributes.insert("k".into(), "v".repeat(MAX_VALUE + 1));
        assert!(matches!(e.check(), Err(EventError::TooLong { .. })));
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        let mut e = ev();
        e.message = "ok\nFAKE line\r\u{1b}[31m".into();
        e.attributes.insert("mac".into(), "aa\n".into());
        let e = e.sanitized();
        assert!(!e.message.contains('\n') && !e.message.contains('\u{1b}'));
        assert_eq!(e.attributes["mac"], "aa\u{FFFD}");
        e.check().unwrap();
        // Replacing keeps an event within its limits.
        let mut e = ev();
        e.message = "\n".repeat(MAX_MESSAGE);
        e.attributes
            .insert("v".into(), format!("{}\u{7}", "x".repeat(MAX_VALUE - 1)));
        let e = e.sanitized();
        e.check().unwrap();
        assert_eq!(e.message.len(), MAX_MESSAGE - MAX_MESSAGE % 3);
        assert!(e.attributes["v"].ends_with('x'));
        // DEL and the C1 controls (U+0080..U+009F) are controls too; other non-ASCII text stays.
        let mut e = ev();
        e.message = "a\u{7f}b\u{85}c\u{9f}d".into();
        e.attributes.insert("name".into(), "Straße ü €".into());
        let e = e.sanitized();
        assert_eq!(e.message, "a\u{FFFD}b\u{FFFD}c\u{FFFD}d");
        assert_eq!(e.attributes["name"], "Straße ü €");
    }

    #[test]
    fn severities_are_rfc5424_numbers_and_names() {
        assert_eq!(Severity::Emergency.code(), 0);
        assert_eq!(Severity::Debug.code(), 7);
        for s in Severity::ALL {
            assert_eq!(Severity::from_code(s.code()), Some(s));
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert_eq!(Severity::from_code(8), None);
        assert!(
            Severity::Critical < Severity::Warning,
            "more severe sorts first"
        );
        let json = serde_json::to_value(ev()).unwrap();
        assert_eq!(json["severity"], "warning");
        assert_eq!(json["source"]["kind"], "vigil");
    }
}
