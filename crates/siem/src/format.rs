//! What a collector receives: an event as an RFC 5424 syslog message, its text either plain
//! UTF-8 or an ArcSight CEF record, framed by octet counting (RFC 5425). The layout, with
//! examples, is in docs/siem.md.
//!
//! ```text
//! <164>1 2026-12-07T10:00:00.123456Z vigil-hq vigil - security.login_failed
//!   [vigil@32473 id="42" seq="7" category="security" source_kind="vigil" source="vigil-hq"
//!    received="2026-12-07T10:00:00.124000Z"][vigil-attr@32473 address="192.0.2.7" user="bob"]
//!   BOM bad password for bob
//! ```
//!
//! - PRI is facility × 8 + the event's severity (RFC 5424 numbers; default facility
//!   `local4`, 20). VERSION 1. TIMESTAMP is the event's time in UTC with microseconds,
//!   clamped to years 0001 … 9999 (the grammar has four year digits).
//! - HOSTNAME is this server's name, APP-NAME `vigil`, PROCID `-`, MSGID the event kind;
//!   each keeps to the grammar (printable US-ASCII, 255/48/128/32 characters at most; other
//!   bytes become `_`, an empty field `-`).
//! - STRUCTURED-DATA: `[vigil@<PEN> …]` with the event's id, the forwarding sequence number,
//!   category, source kind and name, camera (if any), received time (and `truncated="true"`
//!   when the message had to be shortened); then `[vigil-attr@<PEN> …]` with the attributes,
//!   when there are any. PARAM-VALUEs escape `"`, `\` and `]` with a backslash (§6.3.3);
//!   control characters become U+FFFD. Attribute keys become SD-NAMEs (1–32 printable
//!   US-ASCII except `=`, space, `]`, `"`): other characters become `_`, and a key longer
//!   than 32 becomes its first 23 characters, `~` and the CRC-32 of the whole key in 8 hex
//!   digits, so distinct keys stay distinct (`~` never occurs in an event's key).
//! - MSG is the BOM and the message (MSG-UTF8), or, for CEF collectors, the CEF record with
//!   no BOM: CEF receivers look for `CEF:` at the start of MSG. The record is UTF-8 as CEF
//!   requires, which the syntax then calls MSG-ANY.
//!
//! A message longer than the limit (`max_message_bytes`, 8192 by default: what RFC 5425 says
//! a receiver should take) first has its text shortened, then its attribute values, then
//! loses its attributes, and says so with `truncated="true"`; the whole event stays in
//! Vigil's store under its id.

use std::fmt::Write as _;
use std::net::IpAddr;

use vigil_events::model::MAX_NAME;
use vigil_events::{Event, Severity, SourceKind};

/// APP-NAME of every message.
pub const APP_NAME: &str = "vigil";
/// CEF's Device Vendor and Device Product.
pub const CEF_VENDOR: &str = "Vigil";
pub const CEF_PRODUCT: &str = "Vigil";
/// The UTF-8 byte order mark that starts a UTF-8 MSG (RFC 5424 §6.4).
pub const BOM: &str = "\u{FEFF}";

/// What MSG holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The event's message as UTF-8 text.
    Text,
    /// An ArcSight CEF record.
    Cef,
}

/// How messages are written (the same for every message to one collector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatter {
    /// HOSTNAME: this server's name.
    pub hostname: String,
    /// The syslog facility (0 … 23).
    pub facility: u8,
    /// The private enterprise number of the SD-IDs.
    pub enterprise_number: u32,
    pub payload: Payload,
    /// The longest message (without its frame).
    pub max_message_bytes: usize,
    /// CEF's Device Version.
    pub version: String,
}

impl Formatter {
    /// A formatter with the defaults of `[siem]` for the server `hostname`.
    pub fn new(hostname: &str, payload: Payload) -> Self {
        Formatter {
            hostname: hostname.to_owned(),
            facility: 20,
            enterprise_number: 32473,
            payload,
            max_message_bytes: 8192,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// The RFC 5424 message for the event `e` forwarded as number `seq`.
    pub fn message(&self, seq: u64, e: &Event) -> String {
        let full = self.build(seq, e, Limits::NONE);
        if full.len() <= self.max_message_bytes {
            return full;
        }
        // Shorten the text first: keep what the structured data says.
        let over = full.len() - self.max_message_bytes;
        let text = e.event.message.len().saturating_sub(over + 16).max(64);
        let limits = Limits {
            text: Some(text),
            value: None,
            attributes: true,
        };
        let m = self.build(seq, e, limits);
        if m.len() <= self.max_message_bytes {
            return m;
        }
        // Then the attribute values: the longest cap that fits.
        let (mut lo, mut hi) = (0usize, vigil_events::model::MAX_VALUE);
        let at = |cap: usize| {
            self.build(
                seq,
                e,
                Limits {
                    text: Some(64),
                    value: Some(cap),
                    attributes: true,
                },
            )
        };
        let mut best = at(0);
        if best.len() > self.max_message_bytes {
            return self.build(
                seq,
                e,
                Limits {
                    text: Some(64),
                    value: Some(0),
                    attributes: false,
                },
            );
        }
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let m = at(mid);
            if m.len() <= self.max_message_bytes {
                lo = mid;
                best = m;
            } else {
                hi = mid - 1;
            }
        }
        best
    }

    /// The message framed for RFC 5425: `MSG-LEN SP SYSLOG-MSG`.
    pub fn frame(&self, seq: u64, e: &Event, out: &mut Vec<u8>) {
        frame(self.message(seq, e).as_bytes(), out);
    }

    fn build(&self, seq: u64, e: &Event, limits: Limits) -> String {
        let ev = &e.event;
        let truncated = limits != Limits::NONE;
        let pri = u16::from(self.facility) * 8 + u16::from(ev.severity.code());
        let mut m = String::with_capacity(512);
        let _ = write!(
            m,
            "<{pri}>1 {} {} {APP_NAME} - {} ",
            rfc3339_micros(ev.time_us),
            header_field(&self.hostname, 255),
            header_field(&ev.kind, 32),
        );
        // [vigil@PEN ...]
        let pen = self.enterprise_number;
        let _ = write!(m, "[vigil@{pen}");
        param(&mut m, "id", &e.id.to_string());
        param(&mut m, "seq", &seq.to_string());
        param(&mut m, "category", ev.category.as_str());
        param(&mut m, "source_kind", ev.source.kind.as_str());
        // Names are at most MAX_NAME in a stored event; a spool file from outside may say
        // otherwise, and the message must still keep its size.
        param(&mut m, "source", &truncate(&ev.source.name, MAX_NAME));
        if let Some(c) = &ev.camera {
            param(&mut m, "camera", &truncate(c, MAX_NAME));
        }
        param(&mut m, "received", &rfc3339_micros(e.received_us));
        if truncated {
            param(&mut m, "truncated", "true");
        }
        m.push(']');
        if limits.attributes && !ev.attributes.is_empty() {
            let _ = write!(m, "[vigil-attr@{pen}");
            for (k, v) in &ev.attributes {
                param(&mut m, &sd_name(k), &cap(v, limits.value));
            }
            m.push(']');
        }
        let text = cap(&ev.message, limits.text);
        match self.payload {
            Payload::Text => {
                m.push(' ');
                m.push_str(BOM);
                m.push_str(&without_controls(&text));
            }
            Payload::Cef => {
                m.push(' ');
                self.cef(&mut m, seq, e, &text, limits);
            }
        }
        m
    }

    /// `CEF:0|Vigil|Vigil|version|kind|name|severity|extension`.
    fn cef(&self, m: &mut String, seq: u64, e: &Event, text: &str, limits: Limits) {
        let ev = &e.event;
        let _ = write!(
            m,
            "CEF:0|{}|{}|{}|{}|{}|{}|",
            cef_header(CEF_VENDOR, 63),
            cef_header(CEF_PRODUCT, 63),
            cef_header(&self.version, 31),
            cef_header(&ev.kind, MAX_NAME),
            cef_header(text, 512),
            cef_severity(ev.severity),
        );
        let mut ext = Extension(m, true);
        ext.put("rt", &(ev.time_us.max(0) / 1000).to_string());
        ext.put("dvchost", &truncate(&self.hostname, 100));
        ext.put("externalId", &e.id.to_string());
        ext.put("cat", ev.category.as_str());
        ext.put("cn1", &seq.to_string());
        ext.put("cn1Label", "seq");
        ext.put("msg", &truncate(text, 1023));
        if ev.source.kind != SourceKind::Vigil {
            match ev.source.name.parse::<IpAddr>() {
                Ok(ip) => ext.put("src", &ip.to_string()),
                Err(_) => ext.put("shost", &truncate(&ev.source.name, MAX_NAME)),
            }
        }
        ext.put("cs2", ev.source.kind.as_str());
        ext.put("cs2Label", "sourceKind");
        if let Some(c) = &ev.camera {
            ext.put("cs1", &truncate(c, MAX_NAME));
            ext.put("cs1Label", "camera");
        }
        if !limits.attributes {
            return;
        }
        let mut custom = ["cs3", "cs4", "cs5", "cs6"].into_iter();
        for (k, v) in &ev.attributes {
            let v = cap(v, limits.value);
            match k.as_str() {
                "user" => ext.put("suser", &truncate(&v, 1023)),
                "address" if v.parse::<IpAddr>().is_ok() => ext.put("src", &v),
                _ => {
                    // The first four others; the structured data carries them all.
                    if let Some(cs) = custom.next() {
                        ext.put(cs, &truncate(&v, 4000));
                        ext.put(&format!("{cs}Label"), k);
                    }
                }
            }
        }
    }
}

/// Caps applied when a message is too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    /// Longest message text, bytes.
    text: Option<usize>,
    /// Longest attribute value, bytes.
    value: Option<usize>,
    /// Whether attributes are written at all.
    attributes: bool,
}

impl Limits {
    const NONE: Limits = Limits {
        text: None,
        value: None,
        attributes: true,
    };
}

/// CEF extension pairs, space separated.
struct Extension<'a>(&'a mut String, bool);

impl Extension<'_> {
    fn put(&mut self, key: &str, value: &str) {
        if !self.1 {
            self.0.push(' ');
        }
        self.1 = false;
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&cef_value(value));
    }
}

/// `out` gets `msg` framed by octet counting (RFC 5425 §4.3): its length in bytes, a space,
/// the message.
pub fn frame(msg: &[u8], out: &mut Vec<u8>) {
    let _ = write!(Bytes(out), "{} ", msg.len());
    out.extend_from_slice(msg);
}

struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The CEF severity (0 … 10) of an RFC 5424 severity: emergency 10, alert 9, critical 8,
/// error 7, warning 6, notice 4, info 2, debug 0 (CEF bands: 0–3 low, 4–6 medium, 7–8 high,
/// 9–10 very high).
pub fn cef_severity(s: Severity) -> u8 {
    [10, 9, 8, 7, 6, 4, 2, 0][usize::from(s.code())]
}

/// A header field (HOSTNAME, MSGID): printable US-ASCII only (others become `_`), at most
/// `max` characters, `-` (NILVALUE) when empty.
fn header_field(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if out.is_empty() { "-".into() } else { out }
}

/// ` name="value"` with the value escaped (RFC 5424 §6.3.3).
fn param(m: &mut String, name: &str, value: &str) {
    m.push(' ');
    m.push_str(name);
    m.push_str("=\"");
    for c in value.chars() {
        match c {
            '"' | '\\' | ']' => {
                m.push('\\');
                m.push(c);
            }
            c if c.is_control() => m.push('\u{FFFD}'),
            c => m.push(c),
        }
    }
    m.push('"');
}

/// An attribute key as an SD-NAME (see the module documentation).
pub fn sd_name(key: &str) -> String {
    let mapped: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if mapped.is_empty() {
        return "_".into();
    }
    if mapped.len() <= 32 {
        return mapped;
    }
    format!("{}~{:08x}", &mapped[..23], crc32fast::hash(key.as_bytes()))
}

/// A CEF header field: `\` and `|` escaped with a backslash; line breaks and other control
/// characters (not allowed in the header) become spaces; at most `max` bytes.
fn cef_header(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len());
    for c in truncate(s, max).chars() {
        match c {
            '\\' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A CEF extension value: `\` and `=` escaped with a backslash, CR and LF written as `\r`
/// and `\n`, other control characters replaced by U+FFFD.
fn cef_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn without_controls(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    vigil_events::model::cut(s, max).to_owned()
}

/// `s` cut to at most `cap` bytes, ending in `…` when cut.
fn cap(s: &str, cap: Option<usize>) -> String {
    match cap {
        Some(max) if s.len() > max => {
            let mut t = truncate(s, max.saturating_sub('…'.len_utf8()));
            t.push('…');
            t
        }
        _ => s.to_owned(),
    }
}

/// Earliest and latest times a four-digit year can write.
const MIN_US: i64 = -62_135_596_800_000_000; // 0001-01-01T00:00:00Z
const MAX_US: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z

/// `2026-12-07T10:00:00.123456Z`: Unix microseconds as RFC 3339 in UTC, clamped to the
/// years 0001 … 9999. The formatting is the evidence ledger's (`vigil_signing::fmt_time`), so
/// a forwarded event and a verification report write the same instant alike.
pub fn rfc3339_micros(us: i64) -> String {
    vigil_signing::fmt_time(us.clamp(MIN_US, MAX_US))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use vigil_events::{Category, NewEvent, Source};

    /// 2026-12-07T10:00:00.123456Z
    const T: i64 = 1_796_637_600_123_456;

    fn event() -> Event {
        Event {
            id: 42,
            received_us: T + 877,
            event: NewEvent {
                time_us: T,
                source: Source::new(SourceKind::Vigil, "vigil-hq"),
                kind: "security.login_failed".into(),
                category: Category::Security,
                severity: Severity::Warning,
                message: "bad password for bob".into(),
                camera: None,
                attributes: BTreeMap::from([
                    ("address".to_owned(), "192.0.2.7".to_owned()),
                    ("user".to_owned(), "bob".to_owned()),
                ]),
            },
        }
    }

    fn text() -> Formatter {
        Formatter::new("vigil-hq", Payload::Text)
    }

    #[test]
    fn times_are_rfc3339_utc_with_microseconds() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(T), "2026-12-07T10:00:00.123456Z");
        assert_eq!(rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
        // 2024-02-29 (a leap day) 23:59:59.5
        assert_eq!(
            rfc3339_micros(1_709_251_199_500_000),
            "2024-02-29T23:59:59.500000Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(rfc3339_micros(i64::MAX), "9999-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_micros(i64::MIN), "0001-01-01T00:00:00.000000Z");
    }

    #[test]
    fn a_security_event_as_rfc5424() {
        // Hand-checked: PRI local4 (20) * 8 + warning (4) = 164.
        let want = "<164>1 2026-12-07T10:00:00.123456Z vigil-hq vigil - security.login_failed \
            [vigil@32473 id=\"42\" seq=\"7\" category=\"security\" source_kind=\"vigil\" \
            source=\"vigil-hq\" received=\"2026-12-07T10:00:00.124333Z\"]\
            [vigil-attr@32473 address=\"192.0.2.7\" user=\"bob\"] \u{FEFF}bad password for bob";
        assert_eq!(text().message(7, &event()), want);
        let mut framed = Vec::new();
        text().frame(7, &event(), &mut framed);
        assert_eq!(framed, format!("{} {want}", want.len()).into_bytes());
    }

    #[test]
    fn facility_enterprise_number_and_a_camera() {
        let mut f = text();
        f.facility = 13; // audit
        f.enterprise_number = 4711;
        let mut e = event();
        e.event.severity = Severity::Emergency;
        e.event.camera = Some("lobby".into());
        e.event.attributes.clear();
        assert_eq!(
            f.message(1, &e),
            "<104>1 2026-12-07T10:00:00.123456Z vigil-hq vigil - security.login_failed \
             [vigil@4711 id=\"42\" seq=\"1\" category=\"security\" source_kind=\"vigil\" \
             source=\"vigil-hq\" camera=\"lobby\" received=\"2026-12-07T10:00:00.124333Z\"] \
             \u{FEFF}bad password for bob"
        );
        f.facility = 23;
        e.event.severity = Severity::Debug;
        assert!(f.message(1, &e).starts_with("<191>1 "));
    }

    #[test]
    fn param_values_escape_quote_backslash_and_bracket() {
        let mut e = event();
        e.event.attributes =
            BTreeMap::from([("path".to_owned(), r#"C:\a "b" [c] d=e"#.to_owned())]);
        e.event.camera = Some("cam]\"\\".into());
        let m = text().message(1, &e);
        assert!(m.contains(r#" camera="cam\]\"\\" "#), "{m}");
        assert!(
            m.contains(r#"[vigil-attr@32473 path="C:\\a \"b\" [c\] d=e"]"#),
            "{m}"
        );
    }

    #[test]
    fn hostile_fields_cannot_break_the_header_or_forge_lines() {
        let mut f = text();
        f.hostname = "my host\n<13>1 fake".into();
        let mut e = event();
        e.event.kind = "a.very_long_kind_name_that_goes_on_and_on".into();
        e.event.message = "line\nFAKE\r\u{0}end".into();
        e.event.source.name = "x\u{1b}[31m".into();
        e.event.attributes.clear();
        let m = f.message(1, &e);
        assert!(!m.contains(['\n', '\r', '\0', '\u{1b}']), "{m:?}");
        let head: Vec<&str> = m.splitn(7, ' ').collect();
        assert_eq!(head[2], "my_host_<13>1_fake");
        assert_eq!(head[5], "a.very_long_kind_name_that_goes_", "32 characters");
        assert!(m.ends_with("\u{FEFF}line\u{FFFD}FAKE\u{FFFD}\u{FFFD}end"));
        f.hostname = String::new();
        assert_eq!(f.message(1, &e).split(' ').nth(2), Some("-"));
        f.hostname = "h".repeat(300);
        assert_eq!(f.message(1, &e).split(' ').nth(2).unwrap().len(), 255);
    }

    #[test]
    fn attribute_keys_become_valid_distinct_sd_names() {
        assert_eq!(sd_name("mac"), "mac");
        assert_eq!(sd_name("a=b c]d\"e"), "a_b_c_d_e");
        assert_eq!(sd_name(""), "_");
        let long_a = "interface_description_of_the_port_a";
        let long_b = "interface_description_of_the_port_b";
        let (a, b) = (sd_name(long_a), sd_name(long_b));
        assert_eq!(a.len(), 32);
        assert!(a.starts_with("interface_description_o~"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, sd_name(long_a), "stable");
        for n in [&a, &b] {
            assert!(
                n.bytes()
                    .all(|c| c.is_ascii_graphic() && !matches!(c, b'=' | b']' | b'"'))
            );
        }
    }

    #[test]
    fn a_security_event_as_cef() {
        let f = Formatter {
            version: "0.1.0".into(),
            ..Formatter::new("vigil-hq", Payload::Cef)
        };
        let m = f.message(7, &event());
        let (_, cef) = m.split_once("] CEF:").unwrap();
        // rt: 1796637600123 ms; user -> suser, an IP address -> src.
        assert_eq!(
            cef,
            "0|Vigil|Vigil|0.1.0|security.login_failed|bad password for bob|6|\
             rt=1796637600123 dvchost=vigil-hq externalId=42 cat=security cn1=7 cn1Label=seq \
             msg=bad password for bob cs2=vigil cs2Label=sourceKind src=192.0.2.7 suser=bob"
        );
        assert!(!m.contains(BOM), "CEF is sent without a BOM");
    }

    #[test]
    fn cef_escapes_the_header_and_the_extension_differently() {
        let f = Formatter {
            version: "0.1.0".into(),
            ..Formatter::new("vigil-hq", Payload::Cef)
        };
        let mut e = event();
        e.event.message = r"a|b\c=d".into();
        e.event.source = Source::new(SourceKind::Syslog, "sw1.example");
        e.event.camera = Some("lobby".into());
        e.event.attributes = BTreeMap::from([
            ("interface".to_owned(), "Gi1/0/3 x=y\\z|w".to_owned()),
            ("mac".to_owned(), "00:11:22:33:44:55".to_owned()),
            ("k3".to_owned(), "v3".to_owned()),
            ("k4".to_owned(), "v4".to_owned()),
            ("k5".to_owned(), "v5".to_owned()),
        ]);
        let m = f.message(9, &e);
        let (_, cef) = m.split_once("] CEF:").unwrap();
        assert_eq!(
            cef,
            "0|Vigil|Vigil|0.1.0|security.login_failed|a\\|b\\\\c=d|6|\
             rt=1796637600123 dvchost=vigil-hq externalId=42 cat=security cn1=9 cn1Label=seq \
             msg=a|b\\\\c\\=d shost=sw1.example cs2=syslog cs2Label=sourceKind cs1=lobby \
             cs1Label=camera cs3=Gi1/0/3 x\\=y\\\\z|w cs3Label=interface cs4=v3 cs4Label=k3 \
             cs5=v4 cs5Label=k4 cs6=v5 cs6Label=k5"
        );
        // Newlines are not allowed in the header but are escaped in extension values.
        assert_eq!(cef_header("a\nb", 100), "a b");
        assert_eq!(cef_value("a\r\nb"), "a\\r\\nb");
        assert_eq!(cef_value("\u{7}"), "\u{FFFD}");
    }

    #[test]
    fn cef_severities_cover_0_to_10() {
        let all: Vec<u8> = Severity::ALL.into_iter().map(cef_severity).collect();
        assert_eq!(all, [10, 9, 8, 7, 6, 4, 2, 0]);
    }

    #[test]
    fn an_oversized_event_is_shortened_and_says_so() {
        for payload in [Payload::Text, Payload::Cef] {
            let mut f = Formatter::new("vigil-hq", payload);
            f.max_message_bytes = 2048;
            let mut e = event();
            e.event.message = "m".repeat(2048);
            for i in 0..32 {
                e.event
                    .attributes
                    .insert(format!("k{i:02}"), "\"".repeat(1024));
            }
            let m = f.message(1, &e);
            assert!(m.len() <= 2048, "{}", m.len());
            assert!(m.contains(" truncated=\"true\""));
            assert!(m.contains(" seq=\"1\""));
            // An event that fits is untouched.
            let small = f.message(1, &event());
            assert!(!small.contains("truncated"));
            // Only the text too long: the attributes stay whole.
            let mut e = event();
            e.event.message = "é".repeat(1500);
            let m = f.message(1, &e);
            assert!(m.len() <= 2048);
            assert!(m.contains("user"));
        }
    }
}
