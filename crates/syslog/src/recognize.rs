//! Recognizers: the port-security lines of Cisco, Juniper and Aruba switches turned into typed
//! findings with interface, MAC, user and session. Anything not recognised stays a generic
//! `syslog.message` event for rules to match.
//!
//! | kind | lines |
//! |---|---|
//! | `syslog.dot1x_failure` | Cisco `%DOT1X-5-FAIL`; Juniper `DOT1XD_USR_ACCESS_DENIED`, `DOT1XD_USR_SESSION_HELD`, `DOT1XD_USR_ON_SRVR_REJECT_VLAN` of a `Dot1x User`; Aruba `dot1x` failures |
//! | `syslog.mab_failure` | Cisco `%MAB-5-FAIL`; the Juniper messages above for a `MAC-RADIUS User`; Aruba `mac-auth` failures |
//! | `syslog.port_auth_failure` | the method is not named: Cisco `%AUTHMGR-5-FAIL`, `%SESSION_MGR-5-FAIL` (authorization failed), `%AUTHMGR-7-NOMOREMETHODS`; Juniper `DOT1XD_AUTH_SESSION_DELETED`; ArubaOS-Switch `dca:` "Authentication failed for client" |
//! | `syslog.port_security_violation` | Cisco `%PORT_SECURITY-2-PSECURE_VIOLATION(_VLAN)`, `%AUTHMGR-5-SECURITY_VIOLATION`, `%SESSION_MGR-5-SECURITY_VIOLATION` |
//! | `syslog.macsec_failure` | Cisco `%MKA-…` / IOS-XR `%L2-MKA-…` session failures (`SESSION_UNSECURED`, `KEEPALIVE_TIMEOUT`, any `…FAIL…`, `…MISMATCH…`, `…INVALID…`, or severity 0–3); ArubaOS-Switch "MACsec Connectivity Association Failed", "Possible replay attack on MACsec port" |
//! | `syslog.link_down` / `syslog.link_up` | Cisco `%LINK-3-UPDOWN`, `%LINEPROTO-5-UPDOWN`; Juniper `SNMP_TRAP_LINK_DOWN` / `_UP`; AOS-CX event 404 / 403; ArubaOS-Switch `ports: port N is now off-line` / `on-line` |
//!
//! Matching looks for the vendor's message code (Cisco's `%FACILITY-SEVERITY-MNEMONIC:`,
//! Juniper's `TAG_NAME:` or RFC 5424 MSGID, AOS-CX's `Event|ID|…`, ArubaOS-Switch's category)
//! and then for the fields by the words the vendor documents around them (`client (…)`,
//! `Interface …`, `MacAddress …`, `port …`); the golden lines in `tests/data/` say where each
//! form comes from.

use crate::iface::Interface;
use crate::mac::Mac;
use crate::parse::SyslogMessage;

/// What a recognised line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Dot1xFailure,
    MabFailure,
    PortAuthFailure,
    PortSecurityViolation,
    MacsecFailure,
    LinkDown,
    LinkUp,
}

/// The kind of every syslog line no recognizer claims.
pub const GENERIC_KIND: &str = "syslog.message";

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Dot1xFailure,
        Kind::MabFailure,
        Kind::PortAuthFailure,
        Kind::PortSecurityViolation,
        Kind::MacsecFailure,
        Kind::LinkDown,
        Kind::LinkUp,
    ];

    /// The event kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dot1xFailure => "syslog.dot1x_failure",
            Kind::MabFailure => "syslog.mab_failure",
            Kind::PortAuthFailure => "syslog.port_auth_failure",
            Kind::PortSecurityViolation => "syslog.port_security_violation",
            Kind::MacsecFailure => "syslog.macsec_failure",
            Kind::LinkDown => "syslog.link_down",
            Kind::LinkUp => "syslog.link_up",
        }
    }

    /// For people, the start of the event's message.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Dot1xFailure => "802.1X authentication failed",
            Kind::MabFailure => "MAC authentication (MAB) failed",
            Kind::PortAuthFailure => "port access refused",
            Kind::PortSecurityViolation => "port security violation",
            Kind::MacsecFailure => "MACsec failure",
            Kind::LinkDown => "link down",
            Kind::LinkUp => "link up",
        }
    }
}

/// Whose message format matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Cisco,
    Juniper,
    Aruba,
}

impl Vendor {
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Cisco => "cisco",
            Vendor::Juniper => "juniper",
            Vendor::Aruba => "aruba",
        }
    }
}

/// A recognised line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognition {
    pub kind: Kind,
    pub vendor: Vendor,
    /// The vendor's code: `DOT1X-5-FAIL`, `DOT1XD_USR_ACCESS_DENIED`, `404`, `dca`.
    pub code: String,
    pub interface: Option<Interface>,
    pub mac: Option<Mac>,
    pub user: Option<String>,
    /// Cisco's AuditSessionID.
    pub session: Option<String>,
    pub reason: Option<String>,
    /// A link's new state as written (`down`, `administratively down`).
    pub state: Option<String>,
}

impl Recognition {
    fn new(kind: Kind, vendor: Vendor, code: impl Into<String>) -> Self {
        Recognition {
            kind,
            vendor,
            code: code.into(),
            interface: None,
            mac: None,
            user: None,
            session: None,
            reason: None,
            state: None,
        }
    }
}

/// The recognizers in turn; `None` for a line none of them claims.
pub fn recognize(m: &SyslogMessage) -> Option<Recognition> {
    cisco(m)
        .or_else(|| juniper(m))
        .or_else(|| aruba_cx(m))
        .or_else(|| aruba_s(m))
}

// ---------------------------------------------------------------- text helpers

/// Byte offset of the first ASCII-case-insensitive occurrence of the ASCII `needle`.
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    find_ci(hay, needle).is_some()
}

/// The text after the first occurrence of `needle`.
fn after<'a>(hay: &'a str, needle: &str) -> Option<&'a str> {
    find_ci(hay, needle).map(|i| &hay[i + needle.len()..])
}

/// The whitespace-delimited word right after `needle`, without trailing `,` `.` `;` `:` `)`.
fn word_after<'a>(hay: &'a str, needle: &str) -> Option<&'a str> {
    let rest = after(hay, needle)?.trim_start();
    let word = rest.split(char::is_whitespace).next()?;
    let word = word.trim_end_matches([',', '.', ';', ':', ')', '(']);
    (!word.is_empty()).then_some(word)
}

/// The text between `needle` (ending in `(`) and the next `)`.
fn paren_after<'a>(hay: &'a str, needle: &str) -> Option<&'a str> {
    let rest = after(hay, needle)?;
    let end = rest.find(')')?;
    Some(rest[..end].trim())
}

/// A reason as free text: up to the end of the sentence, at most 200 bytes.
fn reason_text(s: &str) -> Option<String> {
    let s = s.trim();
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let s = s[..end].trim_end_matches(['.', ' ']);
    (!s.is_empty()).then(|| s.to_string())
}

fn iface(word: Option<&str>) -> Option<Interface> {
    word.and_then(Interface::parse)
}

// ---------------------------------------------------------------- Cisco

/// `%FACILITY-SEVERITY-MNEMONIC:` in the first 256 bytes: (facility, severity, mnemonic,
/// the text after it).
fn cisco_code(msg: &str) -> Option<(&str, u8, &str, &str)> {
    let head = &msg.as_bytes()[..msg.len().min(256)];
    for p in head
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b'%')
        .map(|(i, _)| i)
    {
        let tok_len = msg.as_bytes()[p + 1..]
            .iter()
            .take(96)
            .take_while(|c| {
                c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-')
            })
            .count();
        // `TOKEN:`, or IOS-XR's `TOKEN :`.
        let end = p + 1 + tok_len;
        let colon = match (msg.as_bytes().get(end), msg.as_bytes().get(end + 1)) {
            (Some(b':'), _) => end,
            (Some(b' '), Some(b':')) => end + 1,
            _ => continue,
        };
        let tok = &msg[p + 1..p + 1 + tok_len];
        let tb = tok.as_bytes();
        let Some(j) = (1..tb.len().saturating_sub(2))
            .find(|&j| tb[j] == b'-' && (b'0'..=b'7').contains(&tb[j + 1]) && tb[j + 2] == b'-')
        else {
            continue;
        };
        let (facility, mnemonic) = (&tok[..j], &tok[j + 3..]);
        if facility.is_empty() || mnemonic.is_empty() {
            continue;
        }
        let rest = msg[colon + 1..].trim_start();
        return Some((facility, tb[j + 1] - b'0', mnemonic, rest));
    }
    None
}

fn cisco(m: &SyslogMessage) -> Option<Recognition> {
    let (facility, sev, mnemonic, text) = cisco_code(&m.msg)?;
    let code = format!("{facility}-{sev}-{mnemonic}");
    let kind = match (facility, mnemonic) {
        ("DOT1X", "FAIL") => Kind::Dot1xFailure,
        ("MAB", "FAIL") => Kind::MabFailure,
        ("AUTHMGR" | "SESSION_MGR", "FAIL" | "NOMOREMETHODS") => Kind::PortAuthFailure,
        ("AUTHMGR" | "SESSION_MGR", "SECURITY_VIOLATION") => Kind::PortSecurityViolation,
        ("PORT_SECURITY", "PSECURE_VIOLATION" | "PSECURE_VIOLATION_VLAN") => {
            Kind::PortSecurityViolation
        }
        ("LINK", "UPDOWN") | ("LINEPROTO", "UPDOWN") => {
            let state = reason_text(after(text, "changed state to ")?)?;
            let kind = if state.contains("down") {
                Kind::LinkDown
            } else if state == "up" {
                Kind::LinkUp
            } else {
                return None;
            };
            let mut r = Recognition::new(kind, Vendor::Cisco, code);
            r.interface = iface(word_after(text, "Interface "));
            r.state = Some(state);
            return Some(r);
        }
        (f, mn) if f == "MKA" || f.ends_with("-MKA") => {
            let failed = sev <= 3
                || [
                    "UNSECURED",
                    "TIMEOUT",
                    "FAIL",
                    "MISMATCH",
                    "INVALID",
                    "ERROR",
                ]
                .iter()
                .any(|w| mn.contains(w));
            if !failed {
                return None;
            }
            let mut r = Recognition::new(Kind::MacsecFailure, Vendor::Cisco, code);
            // `(Gi1/0/2 : 9) MKA Session …` or `(Hu0/0/0/0) MKA session …`
            r.interface = text
                .strip_prefix('(')
                .and_then(|t| t.split([' ', ')', ':']).next())
                .and_then(Interface::parse);
            r.mac = word_after(text, "RxSCI ").and_then(Mac::find_in);
            r.session = word_after(text, "AuditSessionID ").map(str::to_string);
            r.reason = reason_text(text.split_once(')').map_or(text, |(_, t)| t))
                .map(|s| s.split(" for RxSCI").next().unwrap_or(&s).to_string());
            return Some(r);
        }
        _ => return None,
    };
    let mut r = Recognition::new(kind, Vendor::Cisco, code);
    r.mac = paren_after(text, "client (")
        .and_then(Mac::parse)
        .or_else(|| word_after(text, "MAC address ").and_then(Mac::parse))
        .or_else(|| paren_after(text, "MAC address (").and_then(Mac::parse));
    r.interface = iface(
        word_after(text, "on Interface ")
            .or_else(|| word_after(text, "on the interface "))
            .or_else(|| word_after(text, "on port ")),
    );
    r.session = word_after(text, "AuditSessionID ").map(str::to_string);
    r.user = word_after(text, "Username: ").map(str::to_string);
    r.reason = paren_after(text, "with reason (")
        .and_then(reason_text)
        .or_else(|| after(text, "Failure reason: ").and_then(reason_text));
    Some(r)
}

// ---------------------------------------------------------------- Juniper

/// Junos event tags are uppercase with underscores (`DOT1XD_USR_ACCESS_DENIED`).
fn junos_tag(s: &str) -> bool {
    s.len() >= 5
        && s.len() <= 64
        && s.contains('_')
        && s.bytes().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

fn juniper(m: &SyslogMessage) -> Option<Recognition> {
    // RFC 5424 (`structured-data` format): the tag is the MSGID; BSD: `TAG: text`.
    let (tag, text) = match m.msgid.as_deref().filter(|t| junos_tag(t)) {
        Some(t) => (t, m.msg.as_str()),
        None => {
            let (t, rest) = m.msg.split_once(": ")?;
            if !junos_tag(t) {
                return None;
            }
            (t, rest)
        }
    };
    let sd = |names: &[&str]| {
        m.structured_data
            .iter()
            .filter(|e| e.id.starts_with("junos@"))
            .flat_map(|e| e.params.iter())
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    };
    let kind = match tag {
        "SNMP_TRAP_LINK_DOWN" | "SNMP_TRAP_LINK_UP" => {
            let kind = if tag.ends_with("DOWN") {
                Kind::LinkDown
            } else {
                Kind::LinkUp
            };
            let mut r = Recognition::new(kind, Vendor::Juniper, tag);
            r.interface = iface(word_after(text, "ifName ").or(sd(&["interface-name"])));
            // `ifOperStatus down(2),`
            r.state = word_after(text, "ifOperStatus ")
                .and_then(|w| w.split('(').next())
                .map(str::to_string);
            return Some(r);
        }
        "DOT1XD_AUTH_SESSION_DELETED" => Kind::PortAuthFailure,
        "DOT1XD_USR_ACCESS_DENIED"
        | "DOT1XD_USR_SESSION_HELD"
        | "DOT1XD_USR_ON_SRVR_REJECT_VLAN" => {
            if contains_ci(text, "MAC-RADIUS") || contains_ci(text, "MAC RADIUS") {
                Kind::MabFailure
            } else {
                Kind::Dot1xFailure
            }
        }
        _ => return None,
    };
    let mut r = Recognition::new(kind, Vendor::Juniper, tag);
    r.user = word_after(text, "User ")
        .or(sd(&["username", "user-name"]))
        .map(str::to_string);
    r.mac = word_after(text, "MacAddress ")
        .or_else(|| word_after(text, "MAC address "))
        .or(sd(&["mac-address", "macaddress"]))
        .and_then(Mac::parse)
        .or_else(|| Mac::find_in(text));
    r.interface = iface(word_after(text, "interface ").or(sd(&["interface-name", "interface"])));
    r.reason = match tag {
        "DOT1XD_USR_SESSION_HELD" => Some("session held after failed authentication".into()),
        "DOT1XD_USR_ON_SRVR_REJECT_VLAN" => Some(
            format!(
                "placed on the server-reject VLAN {}",
                word_after(text, "reject vlan ").unwrap_or("")
            )
            .trim_end()
            .to_string(),
        ),
        _ => None,
    };
    Some(r)
}

// ---------------------------------------------------------------- Aruba

/// What a failure text says about the method.
fn auth_kind(category: &str, text: &str) -> Kind {
    let c = category.to_ascii_lowercase();
    if c.contains("dot1x") || contains_ci(text, "802.1x") || contains_ci(text, "dot1x") {
        Kind::Dot1xFailure
    } else if c.contains("mac-auth")
        || c.contains("macauth")
        || contains_ci(text, "mac-auth")
        || contains_ci(text, "mac auth")
        || contains_ci(text, "mac-based auth")
    {
        Kind::MabFailure
    } else {
        Kind::PortAuthFailure
    }
}

fn is_failure(text: &str) -> bool {
    ["fail", "reject", "denied"]
        .iter()
        .any(|w| contains_ci(text, w))
}

fn aruba_port(text: &str) -> Option<Interface> {
    iface(
        word_after(text, "on port ")
            .or_else(|| word_after(text, "interface "))
            .or_else(|| word_after(text, "port ")),
    )
}

/// AOS-CX: `Event|ID|LEVEL|MODULE|SLOT|text` (after the RFC 3164 or 5424 header).
fn aruba_cx(m: &SyslogMessage) -> Option<Recognition> {
    let rest = m.msg.strip_prefix("Event|")?;
    let mut f = rest.splitn(5, '|');
    let (id, _level, _module, _slot, text) =
        (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    if id.is_empty() || id.len() > 6 || !id.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let app = m.app_name.as_deref().unwrap_or("");
    let kind = match id {
        "404" => Kind::LinkDown,
        "403" => Kind::LinkUp,
        _ if contains_ci(text, "macsec") && (is_failure(text) || contains_ci(text, "mismatch")) => {
            Kind::MacsecFailure
        }
        _ if is_failure(text)
            && (contains_ci(app, "port-access")
                || contains_ci(app, "dot1x")
                || contains_ci(app, "mac-auth")
                || contains_ci(text, "authenticat")) =>
        {
            auth_kind(app, text)
        }
        _ => return None,
    };
    let mut r = Recognition::new(kind, Vendor::Aruba, id);
    r.interface = aruba_port(text);
    if matches!(kind, Kind::LinkDown | Kind::LinkUp) {
        r.state = word_after(text, " is ").map(str::to_string);
    } else {
        r.mac = Mac::find_in(text);
        r.reason = reason_text(text);
    }
    Some(r)
}

/// ArubaOS-Switch (ProVision): `[NNNNN ]category: text` in MSG, or the category as the TAG.
fn aruba_s(m: &SyslogMessage) -> Option<Recognition> {
    let mut msg = m.msg.as_str();
    let mut event_id = None;
    if msg.len() > 6
        && msg.as_bytes()[..5].iter().all(u8::is_ascii_digit)
        && msg.as_bytes()[5] == b' '
    {
        event_id = Some(&msg[..5]);
        msg = &msg[6..];
    }
    let (category, text) = match msg.split_once(": ") {
        Some((c, t))
            if !c.is_empty()
                && c.len() <= 24
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')) =>
        {
            (c, t)
        }
        _ => (m.app_name.as_deref()?, msg),
    };
    let cat = category.to_ascii_lowercase();
    let code = match event_id {
        Some(id) => format!("{id} {category}"),
        None => category.to_string(),
    };
    let kind = if cat == "ports" && contains_ci(text, "is now off-line") {
        Kind::LinkDown
    } else if cat == "ports" && contains_ci(text, "is now on-line") {
        Kind::LinkUp
    } else if (cat == "macsec" || contains_ci(text, "macsec"))
        && (is_failure(text) || contains_ci(text, "replay attack"))
    {
        Kind::MacsecFailure
    } else if matches!(
        cat.as_str(),
        "dca" | "dot1x" | "mac-auth" | "macauth" | "port-access" | "mac-based" | "8021x"
    ) && is_failure(text)
    {
        auth_kind(&cat, text)
    } else {
        return None;
    };
    let mut r = Recognition::new(kind, Vendor::Aruba, code);
    r.interface = aruba_port(text);
    if !matches!(kind, Kind::LinkDown | Kind::LinkUp) {
        r.mac = word_after(text, "client ")
            .and_then(Mac::parse)
            .or_else(|| Mac::find_in(text));
        r.reason = text
            .split_once(&format!(
                "port {}: ",
                word_after(text, "port ").unwrap_or("\u{0}")
            ))
            .and_then(|(_, why)| reason_text(why))
            .or_else(|| reason_text(text));
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn rec(line: &str) -> Option<Recognition> {
        recognize(&parse(line.as_bytes(), 1_773_144_000_000_000).unwrap())
    }

    #[test]
    fn cisco_codes() {
        assert_eq!(
            cisco_code("%DOT1X-5-FAIL: x"),
            Some(("DOT1X", 5, "FAIL", "x"))
        );
        assert_eq!(
            cisco_code("macsec_mka[135]: %L2-MKA-5-SESSION_STOP : (Hu0/0/0/0) x"),
            Some(("L2-MKA", 5, "SESSION_STOP", "(Hu0/0/0/0) x")),
            "IOS-XR puts a space before the colon"
        );
        assert_eq!(cisco_code("100% done: ok"), None);
        assert_eq!(cisco_code("%-5-X: y"), None);
        assert_eq!(cisco_code("%A-9-X: y"), None);
    }

    #[test]
    fn unrecognised_lines_are_none() {
        assert_eq!(
            rec("<189>1: *Mar  1 00:00:01: %SYS-5-CONFIG_I: Configured from console"),
            None
        );
        assert_eq!(rec("<13>Mar  1 00:00:01 h x: hello"), None);
        assert_eq!(
            rec("<189>1: %LINK-3-UPDOWN: Interface Gi1/0/1, changed state to testing"),
            None
        );
        assert_eq!(
            rec("<189>1: %MKA-5-SESSION_SECURED: (Gi1/0/2 : 9) MKA Session was secured"),
            None
        );
    }

    #[test]
    fn find_ci_is_safe_on_multibyte_text() {
        assert_eq!(find_ci("ééé client (x)", "client ("), Some(7));
        assert_eq!(paren_after("ééé client (x)", "client ("), Some("x"));
        assert_eq!(word_after("Interface ", "Interface "), None);
        assert_eq!(reason_text(&"é".repeat(300)).unwrap().len(), 200);
    }
}
