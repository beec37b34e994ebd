//! The generic-event payload (docs/events-in.md): one event per line (or per datagram), either
//! a line of text or a JSON object. [`Lines`] cuts a stream into lines with a size cap;
//! [`parse`] turns one line into an event of kind `generic` or `generic.<kind>`, category
//! `external`, source kind `external` named by the sender.
//!
//! This is an outside parser: every error is a value with a stable [`GenericError::kind`] for
//! counting, nothing panics, and what it returns passes `NewEvent::check` once sanitized
//! (fuzzed: `fuzz/fuzz_targets/generic_event.rs`).

use std::collections::BTreeMap;

use serde::Deserialize;
use vigil_events::model::{MAX_MESSAGE, MAX_NAME, MAX_VALUE};
use vigil_events::{Category, NewEvent, Severity, Source, SourceKind};
use vigil_syslog::TimePolicy;

/// Longest `kind` a sender may give (the stored kind is `generic.` and this).
pub const MAX_SENDER_KIND: usize = 64;
/// Most attributes a sender may give; the rest of the event's 32 are the listener's own.
pub const MAX_SENDER_ATTRIBUTES: usize = 24;

/// Severity of an event that names none.
pub const DEFAULT_SEVERITY: Severity = Severity::Notice;

/// Why a line did not become an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenericError {
    #[error("line longer than {max} bytes (the rest up to the next line feed is skipped)")]
    TooLong { max: usize },
    #[error("not UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error("invalid JSON event: {0}")]
    Json(String),
    #[error("field `{field}`: {why}")]
    Field { field: &'static str, why: String },
}

impl GenericError {
    /// A stable name for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            GenericError::TooLong { .. } => "line_too_long",
            GenericError::NotUtf8(_) => "invalid_utf8",
            GenericError::Json(_) => "invalid_json",
            GenericError::Field { .. } => "invalid_field",
        }
    }
}

/// How the sender was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// A client certificate issued by the Vigil CA.
    Certificate,
    /// Its address is in `allowed_sources`.
    AllowList,
}

impl Auth {
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::Certificate => "certificate",
            Auth::AllowList => "allow_list",
        }
    }
}

/// Who sent a line, and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// The source name: its certificate's common name, else its address.
    pub name: &'a str,
    /// Its address as text.
    pub peer: &'a str,
    pub auth: Auth,
    /// `tls`, `tcp` or `udp`.
    pub transport: &'static str,
    /// Unix microseconds.
    pub received_us: i64,
}

/// A JSON event as a sender writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEvent {
    message: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    camera: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, serde_json::Value>,
}

/// One line (without its line feed; a trailing CR is ignored) as an event. `Ok(None)`: the
/// line is blank (a keep-alive), not an event.
pub fn parse(
    line: &[u8],
    sender: &Sender<'_>,
    time: &TimePolicy,
) -> Result<Option<NewEvent>, GenericError> {
    let text = std::str::from_utf8(line).map_err(|e| GenericError::NotUtf8(e.valid_up_to()))?;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if text.is_empty() {
        return Ok(None);
    }
    let mut event = NewEvent {
        time_us: sender.received_us,
        source: Source::new(SourceKind::External, cut(sender.name, MAX_NAME)),
        kind: "generic".into(),
        category: Category::External,
        severity: DEFAULT_SEVERITY,
        message: String::new(),
        camera: None,
        attributes: BTreeMap::new(),
    };
    if text.starts_with('{') {
        json(text, &mut event, sender, time)?;
    } else {
        event.message = cut(text, MAX_MESSAGE);
        if event.message.len() < text.len() {
            event.attributes.insert("truncated".into(), "true".into());
        }
        event.attributes.insert("format".into(), "text".into());
    }
    event
        .attributes
        .insert("peer".into(), cut(sender.peer, MAX_VALUE));
    event
        .attributes
        .insert("auth".into(), sender.auth.as_str().into());
    event
        .attributes
        .insert("transport".into(), sender.transport.into());
    Ok(Some(event))
}

fn field(field: &'static str, why: impl Into<String>) -> GenericError {
    GenericError::Field {
        field,
        why: why.into(),
    }
}

fn json(
    text: &str,
    event: &mut NewEvent,
    sender: &Sender<'_>,
    policy: &TimePolicy,
) -> Result<(), GenericError> {
    let j: JsonEvent = serde_json::from_str(text).map_err(|e| GenericError::Json(e.to_string()))?;
    let message = j.message.trim();
    if message.is_empty() {
        return Err(field("message", "is empty"));
    }
    if message.len() > MAX_MESSAGE {
        return Err(field(
            "message",
            format!("is {} bytes long; at most {MAX_MESSAGE}", message.len()),
        ));
    }
    event.message = message.to_owned();
    if let Some(k) = &j.kind {
        check_kind(k)?;
        event.kind = format!("generic.{k}");
    }
    if let Some(s) = &j.severity {
        event.severity = Severity::parse(s).ok_or_else(|| {
            field(
                "severity",
                format!(
                    "{:?} is not a severity: use one of emergency, alert, critical, error, \
                     warning, notice, info, debug",
                    cut(s, 32)
                ),
            )
        })?;
    }
    if let Some(c) = &j.camera {
        if c.is_empty() || c.len() > MAX_NAME || c.chars().any(char::is_control) {
            return Err(field(
                "camera",
                format!("must be a camera name of 1 to {MAX_NAME} printable bytes"),
            ));
        }
        event.camera = Some(c.clone());
    }
    if j.attributes.len() > MAX_SENDER_ATTRIBUTES {
        return Err(field(
            "attributes",
            format!(
                "has {} entries; at most {MAX_SENDER_ATTRIBUTES}",
                j.attributes.len()
            ),
        ));
    }
    for (k, v) in &j.attributes {
        let value =
            vigil_events::model::sender_attribute(k, v).map_err(|why| field("attributes", why))?;
        // The listener's own attributes (peer, auth, …) are written last and win.
        event.attributes.insert(k.clone(), value);
    }
    if let Some(t) = &j.time {
        let sent = parse_time(t)?;
        event
            .attributes
            .insert("device_time".into(), cut(t, MAX_VALUE));
        let r = sender.received_us;
        if sent <= r.saturating_add(policy.max_future_us)
            && sent >= r.saturating_sub(policy.max_past_us)
        {
            event.time_us = sent;
            event
                .attributes
                .insert("time_source".into(), "sender".into());
        } else {
            event
                .attributes
                .insert("time_source".into(), "received".into());
        }
    }
    event.attributes.insert("format".into(), "json".into());
    Ok(())
}

/// A sender's kind: dotted lowercase (`door.forced`).
fn check_kind(k: &str) -> Result<(), GenericError> {
    let ok = !k.is_empty()
        && k.len() <= MAX_SENDER_KIND
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        && !k.starts_with('.')
        && !k.ends_with('.')
        && !k.contains("..");
    if ok {
        Ok(())
    } else {
        Err(field(
            "kind",
            format!(
                "{:?} is not allowed: use 1 to {MAX_SENDER_KIND} lowercase letters, digits, '_' \
                 and inner '.' (e.g. door.forced)",
                cut(k, MAX_SENDER_KIND)
            ),
        ))
    }
}

/// RFC 3339 (`2026-12-07T10:00:00Z`, `…+01:00`, fractions) as Unix microseconds.
fn parse_time(t: &str) -> Result<i64, GenericError> {
    let bad = || {
        field(
            "time",
            format!(
                "{:?} is not an RFC 3339 time (e.g. 2026-12-07T10:00:00Z)",
                cut(t, 64)
            ),
        )
    };
    let dt = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    i64::try_from(dt.unix_timestamp_nanos() / 1000).map_err(|_| bad())
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn cut(s: &str, max: usize) -> String {
    vigil_events::model::cut(s, max).to_owned()
}

/// Cuts a byte stream into lines at LF, each at most `max` bytes. A longer line is one
/// [`GenericError::TooLong`] and is skipped up to its line feed; the connection goes on.
#[derive(Debug)]
pub struct Lines {
    buf: Vec<u8>,
    max: usize,
    skipping: bool,
}

impl Lines {
    pub fn new(max: usize) -> Self {
        Lines {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    /// Hands each complete line (without its LF) or error to `sink`, in order.
    pub fn feed(&mut self, mut chunk: &[u8], mut sink: impl FnMut(Result<&[u8], GenericError>)) {
        while !chunk.is_empty() {
            let nl = chunk.iter().position(|&b| b == b'\n');
            let (part, rest, complete) = match nl {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &chunk[chunk.len()..], false),
            };
            chunk = rest;
            if self.skipping {
                if complete {
                    self.skipping = false;
                }
                continue;
            }
            if self.buf.len() + part.len() > self.max {
                self.buf.clear();
                sink(Err(GenericError::TooLong { max: self.max }));
                self.skipping = !complete;
                continue;
            }
            if complete {
                if self.buf.is_empty() {
                    sink(Ok(part));
                } else {
                    self.buf.extend_from_slice(part);
                    sink(Ok(&self.buf));
                    self.buf.clear();
                }
            } else {
                self.buf.extend_from_slice(part);
            }
        }
    }

    /// The stream ended: a last line without its line feed is still a line (senders that
    /// write one string and close, as with other systems' generic-event ports).
    pub fn finish(&mut self, mut sink: impl FnMut(Result<&[u8], GenericError>)) {
        if !self.skipping && !self.buf.is_empty() {
            sink(Ok(&self.buf));
        }
        self.buf.clear();
        self.skipping = false;
    }

    /// Bytes of an unfinished line held.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-07T10:00:00Z
    const NOW: i64 = 1_796_637_600_000_000;

    fn sender() -> Sender<'static> {
        Sender {
            name: "acs-1",
            peer: "10.0.0.9",
            auth: Auth::Certificate,
            transport: "tls",
            received_us: NOW,
        }
    }

    fn p(line: &str) -> Result<Option<NewEvent>, GenericError> {
        parse(line.as_bytes(), &sender(), &TimePolicy::default())
    }

    #[test]
    fn a_text_line_is_a_generic_event() {
        let e = p("Door 3 forced open\r").unwrap().unwrap();
        assert_eq!(e.kind, "generic");
        assert_eq!(e.message, "Door 3 forced open");
        assert_eq!(e.category, Category::External);
        assert_eq!(e.source, Source::new(SourceKind::External, "acs-1"));
        assert_eq!(e.severity, Severity::Notice);
        assert_eq!(e.time_us, NOW);
        assert_eq!(e.attributes["peer"], "10.0.0.9");
        assert_eq!(e.attributes["auth"], "certificate");
        assert_eq!(e.attributes["transport"], "tls");
        assert_eq!(e.attributes["format"], "text");
        e.check().unwrap();
        assert_eq!(p("   \r").unwrap(), None, "blank lines are keep-alives");
    }

    #[test]
    fn a_json_object_sets_kind_severity_camera_time_and_attributes() {
        let e = p(r#"{"kind":"door.forced","message":"Door 3 forced","severity":"warning","camera":"lobby","time":"2026-12-01T10:00:00.5Z","attributes":{"door":"3","zone":7,"armed":true,"peer":"forged"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, "generic.door.forced");
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.camera.as_deref(), Some("lobby"));
        assert_eq!(e.attributes["door"], "3");
        assert_eq!(e.attributes["zone"], "7");
        assert_eq!(e.attributes["armed"], "true");
        assert_eq!(e.attributes["peer"], "10.0.0.9", "the listener's own win");
        // 2026-12-01T10:00:00.5Z is more than a day before NOW: not believed, kept.
        assert_eq!(e.time_us, NOW);
        assert_eq!(e.attributes["time_source"], "received");
        assert_eq!(e.attributes["device_time"], "2026-12-01T10:00:00.5Z");
        e.check().unwrap();
        let e = p(r#"{"message":"m","time":"2026-12-07T10:40:00+01:00"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(e.attributes["time_source"], "sender");
        assert_eq!(e.time_us, NOW - 20 * 60 * 1_000_000);
        assert_eq!(e.kind, "generic");
    }

    #[test]
    fn bad_input_gives_errors_that_say_what_is_wrong() {
        let kind = |s: &str| p(s).unwrap_err().kind();
        assert_eq!(
            parse(b"ok \xff\xfe", &sender(), &TimePolicy::default())
                .unwrap_err()
                .to_string(),
            "not UTF-8 (invalid byte at offset 3)"
        );
        assert_eq!(kind("{\"message\": "), "invalid_json");
        assert_eq!(kind(r#"{"message":"m","colour":"red"}"#), "invalid_json");
        let e = p(r#"{"message":"m","kind":"Security.Login"}"#).unwrap_err();
        assert!(e.to_string().starts_with("field `kind`"), "{e}");
        for bad in [
            r#"{"message":"  "}"#,
            r#"{"message":"m","kind":"a..b"}"#,
            r#"{"message":"m","severity":"loud"}"#,
            r#"{"message":"m","camera":""}"#,
            r#"{"message":"m","time":"yesterday"}"#,
            r#"{"message":"m","attributes":{"a b":"x"}}"#,
            r#"{"message":"m","attributes":{"a":{"nested":1}}}"#,
        ] {
            assert_eq!(kind(bad), "invalid_field", "{bad}");
        }
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(MAX_MESSAGE + 1));
        assert_eq!(kind(&long), "invalid_field");
        let many: Vec<String> = (0..=MAX_SENDER_ATTRIBUTES)
            .map(|i| format!("\"k{i}\":\"v\""))
            .collect();
        assert_eq!(
            kind(&format!(
                r#"{{"message":"m","attributes":{{{}}}}}"#,
                many.join(",")
            )),
            "invalid_field"
        );
    }

    #[test]
    fn long_text_is_cut_and_marked_and_control_characters_are_left_to_the_bus() {
        let e = p(&"é".repeat(MAX_MESSAGE)).unwrap().unwrap();
        assert!(e.message.len() <= MAX_MESSAGE && e.message.len() > MAX_MESSAGE - 2);
        assert_eq!(e.attributes["truncated"], "true");
        let e = p("a\u{1b}[31mred\0").unwrap().unwrap().sanitized();
        assert!(!e.message.contains('\u{1b}') && !e.message.contains('\0'));
        e.check().unwrap();
    }

    #[test]
    fn lines_are_cut_at_lf_with_a_cap_however_the_stream_is_split() {
        let input = b"one\r\ntwo\n\nthree-is-too-long\nfour\nfive";
        let mut want: Vec<Result<Vec<u8>, &str>> = Vec::new();
        let mut l = Lines::new(8);
        l.feed(input, |r| {
            want.push(r.map(<[u8]>::to_vec).map_err(|e| e.kind()))
        });
        l.finish(|r| want.push(r.map(<[u8]>::to_vec).map_err(|e| e.kind())));
        assert_eq!(
            want,
            vec![
                Ok(b"one\r".to_vec()),
                Ok(b"two".to_vec()),
                Ok(Vec::new()),
                Err("line_too_long"),
                Ok(b"four".to_vec()),
                Ok(b"five".to_vec()),
            ]
        );
        for split in 1..input.len() {
            let mut got = Vec::new();
            let mut l = Lines::new(8);
            for c in input.chunks(split) {
                l.feed(c, |r| got.push(r.map(<[u8]>::to_vec).map_err(|e| e.kind())));
                assert!(l.pending() <= 8);
            }
            l.finish(|r| got.push(r.map(<[u8]>::to_vec).map_err(|e| e.kind())));
            assert_eq!(got, want, "split every {split}");
        }
    }
}
