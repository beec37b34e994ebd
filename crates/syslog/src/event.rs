//! A parsed message (and what the recognizers made of it) as a Vigil event.
//!
//! - **source**: kind `syslog`, named by the message's HOSTNAME, or by the address it came
//!   from when it has none (or one longer than an event name may be).
//! - **kind**: the recognizer's ([`crate::recognize::Kind`]) or `syslog.message`.
//! - **category** `external`.
//! - **severity**: a generic message keeps the sender's (its PRI). A recognised one gets its
//!   kind's, the same whatever severity the vendor chose, one step more severe when the port
//!   or MAC belongs to a camera ([`severity`]).
//! - **camera**: from the [`CameraMap`], by port, then by MAC.
//! - **time**: the sender's timestamp when it can be trusted, else when the message arrived
//!   ([`TimePolicy`]); the sender's is kept in `device_time` either way.
//! - **message**: for a recognised line a sentence ("802.1X authentication failed for
//!   00:11:22:33:44:55 on GigabitEthernet1/0/3 of sw-lobby (camera lobby)") with the original
//!   text in attribute `text`; for a generic one the syslog MSG itself.
//! - **attributes**: `peer`, `format`, `facility`, `app_name`, `procid`, `msgid`, `sequence`,
//!   `device_time`, `time_source`, and for recognised lines `switch`, `interface`, `mac`,
//!   `vendor`, `code`, `user`, `session_id`, `reason`, `state`, `camera_match`; then the
//!   structured data as `sd.<SD-ID>.<PARAM>` while there is room (at most 32 attributes in
//!   all; `sd_dropped` counts what did not fit).
//!
//! Every value is cut to the limits of `vigil_events::model` and control characters are
//! replaced, so the event always passes `NewEvent::check`.

use std::collections::BTreeMap;

use vigil_events::model::{MAX_ATTRIBUTES, MAX_KEY, MAX_MESSAGE, MAX_NAME, MAX_VALUE};
use vigil_events::{Category, NewEvent, Severity, Source, SourceKind};

use crate::mapping::CameraMap;
use crate::parse::{ClockMark, SyslogMessage};
use crate::recognize::{GENERIC_KIND, Kind, Recognition};

/// Where a message came from and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The sender's address as text (`10.0.0.2`, `2001:db8::2`).
    pub peer: &'a str,
    /// Unix microseconds.
    pub received_us: i64,
}

/// When to believe the sender's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimePolicy {
    /// The UTC offset (seconds east) to assume for timestamps without one (RFC 3164) or with
    /// a zone name (Cisco `CET`). `None`: such timestamps are not used for the event's time.
    pub assume_offset_s: Option<i32>,
    /// A timestamp further than this in the future of the arrival is not believed.
    pub max_future_us: i64,
    /// A timestamp further than this in the past of the arrival is not believed.
    pub max_past_us: i64,
}

impl Default for TimePolicy {
    fn default() -> Self {
        TimePolicy {
            assume_offset_s: None,
            max_future_us: 5 * 60 * 1_000_000,
            max_past_us: 24 * 3600 * 1_000_000,
        }
    }
}

/// The severity rule: a kind's own severity, one step more severe on a camera's port.
///
/// | kind | not a camera's | a camera's |
/// |---|---|---|
/// | `syslog.dot1x_failure`, `syslog.mab_failure`, `syslog.port_auth_failure` | warning | error |
/// | `syslog.port_security_violation`, `syslog.macsec_failure` | error | critical |
/// | `syslog.link_down` | notice | warning |
/// | `syslog.link_up` | info | notice |
pub fn severity(kind: Kind, camera: bool) -> Severity {
    let base = match kind {
        Kind::Dot1xFailure | Kind::MabFailure | Kind::PortAuthFailure => Severity::Warning,
        Kind::PortSecurityViolation | Kind::MacsecFailure => Severity::Error,
        Kind::LinkDown => Severity::Notice,
        Kind::LinkUp => Severity::Info,
    };
    if camera {
        Severity::from_code(base.code().saturating_sub(1)).unwrap_or(base)
    } else {
        base
    }
}

/// The facility names of RFC 5424 §6.2.1 (Linux names).
fn facility_name(f: u8) -> &'static str {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    NAMES.get(usize::from(f)).copied().unwrap_or("unknown")
}

/// `s` with control characters replaced by U+FFFD, as `NewEvent::sanitized` does: done
/// before cutting to a limit, since each replacement takes 3 bytes where the control
/// character took 1.
fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

pub(crate) use vigil_events::model::cut;

/// An attribute key from free text: letters, digits, `_`, `-`, `.`; others become `_`.
fn key(s: &str) -> String {
    let k: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    cut(&k, MAX_KEY).to_string()
}

struct Attrs(BTreeMap<String, String>);

impl Attrs {
    fn set(&mut self, k: &str, v: impl AsRef<str>) {
        let v = clean(v.as_ref());
        if !v.is_empty() && (self.0.len() < MAX_ATTRIBUTES || self.0.contains_key(k)) {
            self.0.insert(k.to_string(), cut(&v, MAX_VALUE).to_string());
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|c| (33..=126).contains(&c))
}

/// The event for `msg` (with its recognition, if any).
pub fn to_event(
    msg: &SyslogMessage,
    recognition: Option<&Recognition>,
    origin: &Origin<'_>,
    map: &CameraMap,
    policy: &TimePolicy,
) -> NewEvent {
    let peer = if valid_name(origin.peer) {
        origin.peer
    } else {
        "unknown"
    };
    let host = msg.hostname.as_deref().filter(|h| valid_name(h));
    let source_name = host.unwrap_or(peer);

    let mut a = Attrs(BTreeMap::new());
    a.set("peer", peer);
    a.set("format", msg.format.as_str());
    a.set("facility", facility_name(msg.facility));
    if let Some(h) = msg.hostname.as_deref().filter(|h| Some(*h) != host) {
        a.set("hostname", h);
    }

    // Time.
    let mut time_us = origin.received_us;
    let mut time_source = "received";
    if let Some(ts) = &msg.timestamp {
        a.set("device_time", ts.display());
        if let Some(t) = ts.unix_us(policy.assume_offset_s) {
            let believable = ts.clock != ClockMark::NotAuthoritative
                && t <= origin.received_us.saturating_add(policy.max_future_us)
                && t >= origin.received_us.saturating_sub(policy.max_past_us);
            if believable {
                time_us = t;
                time_source = "device";
            }
        }
    }
    a.set("time_source", time_source);

    let (kind, severity, camera, message) = match recognition {
        Some(r) => {
            let names: Vec<&str> = host.into_iter().chain([peer]).collect();
            let hit = map.lookup(&names, r.interface.as_ref(), r.mac.as_ref());
            a.set("switch", source_name);
            a.set("vendor", r.vendor.as_str());
            a.set("code", &r.code);
            if let Some(i) = &r.interface {
                a.set("interface", i.to_string());
            }
            if let Some(m) = &r.mac {
                a.set("mac", m.to_string());
            }
            for (k, v) in [
                ("user", &r.user),
                ("session_id", &r.session),
                ("reason", &r.reason),
                ("state", &r.state),
            ] {
                if let Some(v) = v {
                    a.set(k, v);
                }
            }
            if let Some(h) = &hit {
                a.set("camera_match", h.by.as_str());
            }
            a.set("text", &msg.msg);
            let mut text = r.kind.describe().to_string();
            if let Some(m) = &r.mac {
                text.push_str(&format!(" for {m}"));
            }
            match &r.interface {
                Some(i) => text.push_str(&format!(" on {i} of {source_name}")),
                None => text.push_str(&format!(" on {source_name}")),
            }
            if let Some(reason) = &r.reason {
                text.push_str(&format!(": {}", cut(reason, 200)));
            }
            let camera = hit.map(|h| cut(&clean(h.camera), MAX_NAME).to_string());
            if let Some(c) = &camera {
                text.push_str(&format!(" (camera {c})"));
            }
            (
                r.kind.as_str(),
                severity(r.kind, camera.is_some()),
                camera,
                text,
            )
        }
        None => {
            let text = if msg.msg.trim().is_empty() {
                format!(
                    "syslog message without text from {source_name}{}",
                    msg.app_name
                        .as_deref()
                        .map(|a| format!(" ({a})"))
                        .unwrap_or_default()
                )
            } else {
                msg.msg.clone()
            };
            (GENERIC_KIND, msg.severity, None, text)
        }
    };

    for (k, v) in [
        ("app_name", &msg.app_name),
        ("procid", &msg.procid),
        ("msgid", &msg.msgid),
    ] {
        if let Some(v) = v {
            a.set(k, v);
        }
    }
    if let Some(s) = msg.sequence {
        a.set("sequence", s.to_string());
    }
    if msg.invalid_utf8 {
        a.set("invalid_utf8", "true");
    }
    let original_len = message.len();
    let message = clean(&message).into_owned();
    let message = if message.len() > MAX_MESSAGE {
        a.set("message_truncated", original_len.to_string());
        let mut m = cut(&message, MAX_MESSAGE - 3).to_string();
        m.push('…');
        m
    } else {
        message
    };
    // Structured data, while there is room; one slot stays for `sd_dropped`.
    let mut dropped = 0usize;
    for e in &msg.structured_data {
        for (name, value) in &e.params {
            let k = key(&format!("sd.{}.{}", e.id, name));
            if a.0.len() < MAX_ATTRIBUTES - 1 && !a.0.contains_key(&k) {
                a.set(&k, if value.is_empty() { "\"\"" } else { value });
            } else {
                dropped += 1;
            }
        }
    }
    if dropped > 0 {
        a.set("sd_dropped", dropped.to_string());
    }

    NewEvent {
        time_us,
        source: Source::new(SourceKind::Syslog, cut(source_name, MAX_NAME)),
        kind: kind.to_string(),
        category: Category::External,
        severity,
        message,
        camera,
        attributes: a.0,
    }
    .sanitized()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use crate::recognize::recognize;

    const NOW: i64 = 1_773_144_000_000_000; // 2026-03-10T12:00:00Z

    fn ev(line: &str, map: &CameraMap, policy: &TimePolicy) -> NewEvent {
        let m = parse(line.as_bytes(), NOW).unwrap();
        let r = recognize(&m);
        let e = to_event(
            &m,
            r.as_ref(),
            &Origin {
                peer: "10.0.0.2",
                received_us: NOW,
            },
            map,
            policy,
        );
        e.check().unwrap();
        e
    }

    #[test]
    fn severity_rule() {
        assert_eq!(severity(Kind::Dot1xFailure, false), Severity::Warning);
        assert_eq!(severity(Kind::Dot1xFailure, true), Severity::Error);
        assert_eq!(
            severity(Kind::PortSecurityViolation, true),
            Severity::Critical
        );
        assert_eq!(severity(Kind::LinkDown, true), Severity::Warning);
        assert_eq!(severity(Kind::LinkUp, false), Severity::Info);
    }

    #[test]
    fn times_are_believed_only_when_they_can_be() {
        let map = CameraMap::new();
        let p = TimePolicy::default();
        // RFC 5424 with an offset, ten minutes ago: believed.
        let e = ev("<13>1 2026-03-10T11:50:00Z h a - - - x", &map, &p);
        assert_eq!(e.time_us, NOW - 600_000_000);
        assert_eq!(e.attributes["time_source"], "device");
        // A day and a half ago: not.
        let e = ev("<13>1 2026-03-09T00:00:00Z h a - - - x", &map, &p);
        assert_eq!(
            (e.time_us, e.attributes["time_source"].as_str()),
            (NOW, "received")
        );
        assert_eq!(e.attributes["device_time"], "2026-03-09T00:00:00.000000Z");
        // RFC 3164 has no zone: not, unless an offset is assumed.
        let line = "<13>Mar 10 12:59:00 h a: x";
        assert_eq!(ev(line, &map, &p).time_us, NOW);
        let p1 = TimePolicy {
            assume_offset_s: Some(3600),
            ..p
        };
        assert_eq!(ev(line, &map, &p1).time_us, NOW - 60_000_000);
        // Cisco '*': the clock is not authoritative.
        let e = ev("<189>1: *Mar 10 11:59:00 UTC: %SYS-5-X: y", &map, &p);
        assert_eq!(e.time_us, NOW);
        let e = ev("<189>1: Mar 10 11:59:00 UTC: %SYS-5-X: y", &map, &p);
        assert_eq!(e.time_us, NOW - 60_000_000);
    }

    #[test]
    fn generic_events_keep_the_senders_severity_and_text() {
        let e = ev(
            "<11>Mar 10 11:59:00 fw1 kernel: DROP IN=eth0",
            &CameraMap::new(),
            &TimePolicy::default(),
        );
        assert_eq!(e.kind, "syslog.message");
        assert_eq!(e.severity, Severity::Error);
        assert_eq!(e.message, "DROP IN=eth0");
        assert_eq!(e.source.name, "fw1");
        assert_eq!(e.source.kind, SourceKind::Syslog);
        assert_eq!(e.category, Category::External);
        assert_eq!(e.attributes["app_name"], "kernel");
        assert_eq!(e.attributes["facility"], "user");
        let e = ev("<13>", &CameraMap::new(), &TimePolicy::default());
        assert_eq!(e.message, "syslog message without text from 10.0.0.2");
    }

    #[test]
    fn control_characters_are_replaced_before_values_are_cut() {
        // fuzz (syslog_parse): 1-byte controls became 3-byte U+FFFD after the cut.
        let line = format!(
            "<13>1 - h a - - [a b=\"{}\"] {}",
            "\u{1}".repeat(1500),
            "\u{2}".repeat(3000)
        );
        let e = ev(&line, &CameraMap::new(), &TimePolicy::default());
        assert!(e.attributes["sd.a.b"].len() <= MAX_VALUE);
        assert!(e.message.len() <= MAX_MESSAGE);
        assert!(e.message.starts_with('\u{fffd}'));
    }

    #[test]
    fn limits_hold_for_hostile_messages() {
        let big_sd: String = (0..100)
            .map(|i| format!("[id{i} p=\"{}\"]", "v".repeat(2000)))
            .collect();
        let line = format!(
            "<13>1 - {} a - - {big_sd} {}\u{1b}[31m\nFAKE",
            "h".repeat(200),
            "m".repeat(5000)
        );
        let e = ev(&line, &CameraMap::new(), &TimePolicy::default());
        assert_eq!(
            e.source.name, "10.0.0.2",
            "a host name too long for an event name"
        );
        assert_eq!(e.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(e.attributes["sd_dropped"], "76");
        assert!(e.message.len() <= MAX_MESSAGE && e.message.ends_with('…'));
        assert!(!e.message.contains('\n') && !e.message.contains('\u{1b}'));
        assert_eq!(e.attributes["message_truncated"], "5010");
    }
}
