//! One syslog message (the bytes of one frame or datagram) parsed: RFC 5424, or the BSD format
//! of RFC 3164 with the variants switches send.
//!
//! # RFC 5424 (`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [SP MSG]`)
//!
//! The grammar of RFC 5424 §6, strictly: PRI 0–191; VERSION 1 (others are refused); TIMESTAMP
//! `-` or RFC 3339 with a `Z` or `±hh:mm` offset and every field in range (no leap second,
//! §6.2.3); HOSTNAME ≤ 255, APP-NAME ≤ 48, PROCID ≤ 128, MSGID ≤ 32 printable US-ASCII
//! characters or `-`; STRUCTURED-DATA `-` or `[SD-ID *(SP PARAM="VALUE")]…` with SD-NAMEs of
//! 1–32 printable characters other than `=`, SP, `]`, `"`, and `\"`, `\\`, `\]` unescaped in
//! values (a backslash before any other character stays, §6.3.3); MSG with its UTF-8 BOM
//! removed. Two leniencies, both seen in the field: a fraction of up to 9 digits (RFC 5424
//! allows 6; the rest is dropped), and lowercase `t`/`z`.
//!
//! # RFC 3164 and what switches send
//!
//! `<PRI>[SEQ: ][HOST: ][*|.]TIMESTAMP[ ZONE][:] [HOSTNAME ][TAG[PID]: ]MSG`, where TIMESTAMP is
//! `Mmm dd hh:mm:ss` (the day space-padded), optionally with a year (`Mmm dd yyyy hh:mm:ss`)
//! and a fraction of up to 6 digits (Cisco's `msec`), or an RFC 3339 time (AOS-CX, rsyslog).
//! The Cisco IOS forms are covered: a sequence number (`<189>123: `), the `*` (clock not
//! authoritative) and `.` (NTP sync lost) markers, a zone name (`UTC`) and the colon that ends
//! the header (`… 00:01:02.345 UTC: %DOT1X-5-FAIL: …`). A year is inferred when missing: the
//! one that puts the time closest to when the message was received. A message whose header does
//! not start like a timestamp has no header (RFC 3164 §4.3.3): all of it is MSG. One that does
//! but has a field out of range (`Feb 30`, `25:00:00`) is an error.
//!
//! A message without a PRI is refused rather than given RFC 3164's default `<13>`: every
//! switch sends one, and a stream of bytes that does not start with `<` is not syslog (a TLS
//! handshake on a plaintext port, a port scan, an HTTP request).
//!
//! Invalid UTF-8 anywhere is replaced by U+FFFD ([`SyslogMessage::invalid_utf8`] says so),
//! never refused. Nothing here panics or allocates more than a small multiple of the input.

use std::borrow::Cow;

use vigil_events::Severity;

use crate::time::{Civil, RangeError};

pub const MAX_HOSTNAME: usize = 255;
pub const MAX_APP_NAME: usize = 48;
pub const MAX_PROCID: usize = 128;
pub const MAX_MSGID: usize = 32;
pub const MAX_SD_NAME: usize = 32;

/// Which grammar a message was read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Rfc5424 => "rfc5424",
            Format::Rfc3164 => "rfc3164",
        }
    }
}

/// The time zone of a timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    /// Seconds east of UTC (`Z`, `+02:00`, or the names `UTC`, `GMT`, `UT`).
    Offset(i32),
    /// A zone name that says nothing definite (`CET`, `PST`: Cisco's `clock timezone NAME`).
    Named(String),
    /// No zone at all (RFC 3164): the sender's local time.
    Unspecified,
}

/// Cisco's marks in front of a timestamp (`show logging` documentation: `*` the clock is not
/// authoritative, never set or not synchronised; `.` it was, but NTP sync has been lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMark {
    Unmarked,
    NotAuthoritative,
    SyncLost,
}

/// A timestamp as the sender wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    pub civil: Civil,
    pub zone: Zone,
    /// The year was not written and was inferred.
    pub year_inferred: bool,
    pub clock: ClockMark,
}

impl Timestamp {
    /// Unix microseconds, if the zone is known (or `assume_offset_s` stands in for one that is
    /// unspecified or named).
    pub fn unix_us(&self, assume_offset_s: Option<i32>) -> Option<i64> {
        let off = match &self.zone {
            Zone::Offset(o) => *o,
            Zone::Named(_) | Zone::Unspecified => assume_offset_s?,
        };
        Some(self.civil.to_unix_us(off))
    }

    /// As written, for people: `2026-03-01T00:01:02.345000+01:00`, with ` CET` or
    /// ` (no zone)` when there is no offset.
    pub fn display(&self) -> String {
        let c = &self.civil;
        let base = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
            c.year, c.month, c.day, c.hour, c.minute, c.second, c.micros
        );
        match &self.zone {
            Zone::Offset(0) => format!("{base}Z"),
            Zone::Offset(o) => {
                let sign = if *o < 0 { '-' } else { '+' };
                let a = o.unsigned_abs();
                format!("{base}{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
            }
            Zone::Named(n) => format!("{base} {n}"),
            Zone::Unspecified => format!("{base} (no zone)"),
        }
    }
}

/// One RFC 5424 structured data element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement {
    pub id: String,
    pub params: Vec<(String, String)>,
}

/// A parsed syslog message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage {
    pub format: Format,
    /// 0–23 (RFC 5424 §6.2.1).
    pub facility: u8,
    pub severity: Severity,
    pub timestamp: Option<Timestamp>,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    pub structured_data: Vec<SdElement>,
    /// Cisco's message sequence number (`<189>123: …`).
    pub sequence: Option<u64>,
    /// The free-form text.
    pub msg: String,
    /// Invalid UTF-8 was replaced by U+FFFD somewhere in the message.
    pub invalid_utf8: bool,
}

/// Why a message was refused. [`ParseError::kind`] names it for counting; the text says
/// what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("not syslog: the message does not start with '<PRI>' (it starts with \"{0}\")")]
    NoPri(String),
    #[error("PRI is malformed: {0}")]
    BadPri(String),
    #[error("PRI {0} is out of range 0-191")]
    PriOutOfRange(u32),
    #[error("syslog VERSION {0} is not supported (RFC 5424 defines 1)")]
    Version(u32),
    #[error("TIMESTAMP \"{text}\": {problem}")]
    Timestamp { text: String, problem: String },
    #[error("{field}: {problem}")]
    Header {
        field: &'static str,
        problem: String,
    },
    #[error("STRUCTURED-DATA: {0}")]
    StructuredData(String),
}

impl ParseError {
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::NoPri(_) => "pri_missing",
            ParseError::BadPri(_) => "pri_malformed",
            ParseError::PriOutOfRange(_) => "pri_out_of_range",
            ParseError::Version(_) => "version_unsupported",
            ParseError::Timestamp { .. } => "timestamp_invalid",
            ParseError::Header { .. } => "header_invalid",
            ParseError::StructuredData(_) => "sd_invalid",
        }
    }
}

/// At most 40 bytes of `b`, escaped, for error messages.
fn shown(b: &[u8]) -> String {
    let cut = &b[..b.len().min(40)];
    let mut s: String = cut.escape_ascii().to_string();
    if b.len() > 40 {
        s.push('…');
    }
    s
}

fn lossy(b: &[u8], invalid: &mut bool) -> String {
    match String::from_utf8_lossy(b) {
        Cow::Borrowed(s) => s.to_string(),
        Cow::Owned(s) => {
            *invalid = true;
            s
        }
    }
}

/// Parses one message. `received_us` (Unix microseconds) is when it arrived: it picks the year
/// of an RFC 3164 timestamp that has none.
pub fn parse(input: &[u8], received_us: i64) -> Result<SyslogMessage, ParseError> {
    // A datagram or a line may end in LF, CRLF or NUL.
    let mut end = input.len();
    while end > 0 && matches!(input[end - 1], b'\n' | b'\r' | 0) {
        end -= 1;
    }
    let b = &input[..end];
    if b.is_empty() {
        return Err(ParseError::Empty);
    }
    let (pri, rest) = parse_pri(b)?;
    let facility = (pri / 8) as u8;
    let severity = Severity::from_code((pri % 8) as u8).unwrap_or(Severity::Notice);
    // RFC 5424: VERSION (NONZERO-DIGIT 0*2DIGIT) and SP right after the PRI.
    let vlen = rest
        .iter()
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if (1..=3).contains(&vlen) && rest[0] != b'0' && rest.get(vlen) == Some(&b' ') {
        let version: u32 = rest[..vlen]
            .iter()
            .fold(0, |v, &c| v * 10 + u32::from(c - b'0'));
        if version != 1 {
            return Err(ParseError::Version(version));
        }
        return parse_5424(&rest[vlen + 1..], facility, severity);
    }
    parse_3164(rest, facility, severity, received_us)
}

fn parse_pri(b: &[u8]) -> Result<(u32, &[u8]), ParseError> {
    if b[0] != b'<' {
        return Err(ParseError::NoPri(shown(&b[..b.len().min(16)])));
    }
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(ParseError::BadPri(format!(
            "no digits after '<' (\"{}\")",
            shown(&b[..b.len().min(8)])
        )));
    }
    if digits > 3 {
        return Err(ParseError::BadPri(format!(
            "more than 3 digits (\"{}\")",
            shown(&b[..b.len().min(8)])
        )));
    }
    if b.get(1 + digits) != Some(&b'>') {
        return Err(ParseError::BadPri(format!(
            "not closed by '>' (\"{}\")",
            shown(&b[..b.len().min(8)])
        )));
    }
    let pri = b[1..1 + digits]
        .iter()
        .fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
    if pri > 191 {
        return Err(ParseError::PriOutOfRange(pri));
    }
    Ok((pri, &b[2 + digits..]))
}

// ---------------------------------------------------------------- RFC 5424

/// The next SP-terminated header field of RFC 5424: 1..=`max` printable US-ASCII characters,
/// or `-` (None).
fn header_field<'a>(
    rest: &mut &'a [u8],
    field: &'static str,
    max: usize,
    previous: &'static str,
) -> Result<Option<&'a str>, ParseError> {
    if rest.is_empty() {
        return Err(ParseError::Header {
            field,
            problem: format!("missing: the message ends after {previous}"),
        });
    }
    let len = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    let value = &rest[..len];
    if value.is_empty() {
        return Err(ParseError::Header {
            field,
            problem: "empty (two spaces in a row; RFC 5424 writes a missing value as '-')".into(),
        });
    }
    if value.len() > max {
        return Err(ParseError::Header {
            field,
            problem: format!(
                "{} characters, at most {max} allowed (\"{}\")",
                value.len(),
                shown(value)
            ),
        });
    }
    if let Some(&c) = value.iter().find(|&&c| !(33..=126).contains(&c)) {
        return Err(ParseError::Header {
            field,
            problem: format!(
                "byte 0x{c:02x} is not printable US-ASCII (\"{}\")",
                shown(value)
            ),
        });
    }
    // The value ends at SP or at the end; the SP is consumed (a missing next field is then
    // reported by the next call, as "missing").
    *rest = &rest[len..];
    if let Some(r) = rest.strip_prefix(b" ") {
        *rest = r;
    }
    // Only printable ASCII here, so this is valid UTF-8.
    let s = std::str::from_utf8(value).unwrap_or("-");
    Ok(if s == "-" { None } else { Some(s) })
}

fn parse_5424(
    mut rest: &[u8],
    facility: u8,
    severity: Severity,
) -> Result<SyslogMessage, ParseError> {
    let mut invalid_utf8 = false;
    // TIMESTAMP
    let tlen = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    let ts_bytes = &rest[..tlen];
    let timestamp = if ts_bytes == b"-" {
        None
    } else {
        let (civil, offset) = rfc3339(ts_bytes).map_err(|problem| ParseError::Timestamp {
            text: shown(ts_bytes),
            problem,
        })?;
        Some(Timestamp {
            civil,
            zone: Zone::Offset(offset),
            year_inferred: false,
            clock: ClockMark::Unmarked,
        })
    };
    rest = &rest[tlen..];
    rest = rest.strip_prefix(b" ").ok_or(ParseError::Header {
        field: "HOSTNAME",
        problem: "missing: the message ends after TIMESTAMP".into(),
    })?;
    let hostname = header_field(&mut rest, "HOSTNAME", MAX_HOSTNAME, "TIMESTAMP")?;
    let app_name = header_field(&mut rest, "APP-NAME", MAX_APP_NAME, "HOSTNAME")?;
    let procid = header_field(&mut rest, "PROCID", MAX_PROCID, "APP-NAME")?;
    let msgid = header_field(&mut rest, "MSGID", MAX_MSGID, "PROCID")?;
    let (structured_data, rest) = structured_data(rest, &mut invalid_utf8)?;
    let msg = match rest {
        [] => String::new(),
        [b' ', m @ ..] => {
            let m = m.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(m);
            lossy(m, &mut invalid_utf8)
        }
        other => {
            return Err(ParseError::StructuredData(format!(
                "expected SP or the end after it, found \"{}\"",
                shown(other)
            )));
        }
    };
    Ok(SyslogMessage {
        format: Format::Rfc5424,
        facility,
        severity,
        timestamp,
        hostname: hostname.map(str::to_string),
        app_name: app_name.map(str::to_string),
        procid: procid.map(str::to_string),
        msgid: msgid.map(str::to_string),
        structured_data,
        sequence: None,
        msg,
        invalid_utf8,
    })
}

fn structured_data<'a>(
    b: &'a [u8],
    invalid_utf8: &mut bool,
) -> Result<(Vec<SdElement>, &'a [u8]), ParseError> {
    let sd_err = ParseError::StructuredData;
    match b.first() {
        None => {
            return Err(sd_err(
                "missing: the message ends after MSGID ('-' if there is none)".into(),
            ));
        }
        Some(b'-') => return Ok((Vec::new(), &b[1..])),
        Some(b'[') => {}
        Some(_) => {
            return Err(sd_err(format!(
                "must be '-' or start with '[' (found \"{}\")",
                shown(b)
            )));
        }
    }
    let mut elements = Vec::new();
    let mut rest = b;
    while let Some(r) = rest.strip_prefix(b"[") {
        rest = r;
        let id = sd_name(&mut rest, "SD-ID")?;
        let mut params = Vec::new();
        loop {
            match rest.first() {
                Some(b']') => {
                    rest = &rest[1..];
                    break;
                }
                Some(b' ') => {
                    rest = &rest[1..];
                    let name = sd_name(&mut rest, "PARAM-NAME")?;
                    if rest.first() != Some(&b'=') {
                        return Err(sd_err(format!(
                            "[{id}]: expected '=' after parameter name {name}"
                        )));
                    }
                    if rest.get(1) != Some(&b'"') {
                        return Err(sd_err(format!(
                            "[{id}]: the value of {name} does not start with '\"'"
                        )));
                    }
                    rest = &rest[2..];
                    let mut value = Vec::new();
                    let mut closed = false;
                    let mut i = 0;
                    while i < rest.len() {
                        match rest[i] {
                            b'\\' if matches!(rest.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                                value.push(rest[i + 1]);
                                i += 2;
                            }
                            b'"' => {
                                closed = true;
                                i += 1;
                                break;
                            }
                            c => {
                                value.push(c);
                                i += 1;
                            }
                        }
                    }
                    if !closed {
                        return Err(sd_err(format!(
                            "[{id}]: the value of {name} has no closing '\"'"
                        )));
                    }
                    rest = &rest[i..];
                    params.push((name, lossy(&value, invalid_utf8)));
                }
                None => {
                    return Err(sd_err(format!("element [{id}] is not closed by ']'")));
                }
                Some(_) => {
                    return Err(sd_err(format!(
                        "[{id}]: expected SP or ']' after {}, found \"{}\"",
                        params
                            .last()
                            .map_or("the SD-ID", |(n, _): &(String, String)| n.as_str()),
                        shown(rest)
                    )));
                }
            }
        }
        elements.push(SdElement { id, params });
    }
    Ok((elements, rest))
}

fn sd_name(rest: &mut &[u8], what: &str) -> Result<String, ParseError> {
    let len = rest
        .iter()
        .position(|&c| !(33..=126).contains(&c) || matches!(c, b'=' | b']' | b'"'))
        .unwrap_or(rest.len());
    if len == 0 {
        return Err(ParseError::StructuredData(match rest.first() {
            None => format!("the message ends where an {what} should be"),
            Some(&c) => format!("{what} is empty (found byte 0x{c:02x})"),
        }));
    }
    if len > MAX_SD_NAME {
        return Err(ParseError::StructuredData(format!(
            "{what} \"{}\" is longer than {MAX_SD_NAME} characters",
            shown(&rest[..len])
        )));
    }
    let name = String::from_utf8_lossy(&rest[..len]).into_owned();
    *rest = &rest[len..];
    Ok(name)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0u32, |v, &c| {
        c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DDThh:mm:ss[.frac]` followed by `Z` or `±hh:mm`: the civil time and the offset in
/// seconds.
fn rfc3339(b: &[u8]) -> Result<(Civil, i32), String> {
    let shape =
        || "not an RFC 3339 time (YYYY-MM-DDThh:mm:ss[.fraction] and Z or ±hh:mm)".to_string();
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        digits(b, 0, 4),
        digits(b, 5, 2),
        digits(b, 8, 2),
        digits(b, 11, 2),
        digits(b, 14, 2),
        digits(b, 17, 2),
    ) else {
        return Err(shape());
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' {
        return Err(shape());
    }
    if b[16] != b':' {
        return Err(shape());
    }
    let mut i = 19;
    let mut micros = 0u32;
    if b.get(i) == Some(&b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err("a '.' without fraction digits".into());
        }
        if n > 9 {
            return Err(format!("a fraction of {n} digits (at most 6, 9 accepted)"));
        }
        for k in 0..6 {
            let d = if k < n {
                u32::from(b[i + 1 + k] - b'0')
            } else {
                0
            };
            micros = micros * 10 + d;
        }
        i += 1 + n;
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (Some(oh), Some(om)) = (digits(b, i + 1, 2), digits(b, i + 4, 2)) else {
                return Err(shape());
            };
            if oh > 23 || om > 59 {
                return Err(format!(
                    "offset {oh:02}:{om:02} is out of range (-23:59..+23:59)"
                ));
            }
            let o = (oh * 3600 + om * 60) as i32;
            if sign == b'-' { -o } else { o }
        }
        None => return Err("no time zone offset (Z or ±hh:mm is required)".into()),
        Some(_) => return Err(shape()),
    };
    let civil = Civil::new(
        year as u16,
        month as u8,
        day as u8,
        hour as u8,
        minute as u8,
        second as u8,
        micros,
    )
    .map_err(|RangeError(e)| e)?;
    Ok((civil, offset))
}

// ---------------------------------------------------------------- RFC 3164 and friends

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn month(b: &[u8]) -> Option<u8> {
    let m = b.get(..3)?;
    MONTHS
        .iter()
        .position(|name| name.eq_ignore_ascii_case(m))
        .map(|i| i as u8 + 1)
}

/// A BSD timestamp at the start of `b`: `Mmm d[d] [yyyy ]hh:mm:ss[.f{1,6}]`. `Ok(None)` when
/// `b` does not start like one (`Mmm d[d] [yyyy ]hh:`); an error when it does but is invalid.
#[allow(clippy::type_complexity)]
fn bsd_timestamp(b: &[u8], received_us: i64) -> Result<Option<(Civil, bool, usize)>, ParseError> {
    let Some(mon) = month(b) else {
        return Ok(None);
    };
    let mut i = 3;
    let sp = b[i..].iter().take(3).take_while(|&&c| c == b' ').count();
    if sp == 0 {
        return Ok(None);
    }
    i += sp;
    let dlen = b[i..]
        .iter()
        .take(3)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(1..=2).contains(&dlen) || b.get(i + dlen) != Some(&b' ') {
        return Ok(None);
    }
    let day = digits(b, i, dlen).unwrap_or(0);
    i += dlen + 1;
    // Optional year.
    let mut year = None;
    if b.get(i + 4) == Some(&b' ')
        && let Some(y) = digits(b, i, 4)
    {
        year = Some(y);
        i += 5;
    }
    // hh: commits to this being a timestamp.
    if digits(b, i, 2).is_none() || b.get(i + 2) != Some(&b':') {
        return Ok(None);
    }
    let start = i;
    let text = |end: usize| shown(&b[..end.min(b.len())]);
    let (Some(hour), Some(minute), Some(second)) =
        (digits(b, i, 2), digits(b, i + 3, 2), digits(b, i + 6, 2))
    else {
        return Err(ParseError::Timestamp {
            text: text(start + 8),
            problem: "the time is not hh:mm:ss".into(),
        });
    };
    if b[i + 5] != b':' {
        return Err(ParseError::Timestamp {
            text: text(start + 8),
            problem: "the time is not hh:mm:ss".into(),
        });
    }
    i += 8;
    let mut micros = 0u32;
    if b.get(i) == Some(&b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return Err(ParseError::Timestamp {
                text: text(i + 1 + n),
                problem: format!("a fraction of {n} digits (1 to 6 accepted)"),
            });
        }
        for k in 0..6 {
            let d = if k < n {
                u32::from(b[i + 1 + k] - b'0')
            } else {
                0
            };
            micros = micros * 10 + d;
        }
        i += 1 + n;
    }
    let check = |y: u32| {
        Civil::new(
            y.min(9999) as u16,
            mon,
            day.min(99) as u8,
            hour as u8,
            minute as u8,
            second as u8,
            micros,
        )
    };
    let (civil, inferred) = match year {
        Some(y) => (
            check(y).map_err(|RangeError(problem)| ParseError::Timestamp {
                text: text(i),
                problem,
            })?,
            false,
        ),
        None => {
            // The latest year that does not put the time more than a day after it was
            // received (a day: unknown zones, skewed clocks), else the nearest.
            let now_year = Civil::from_unix_us(received_us).map_or(2000, |c| u32::from(c.year));
            let candidates = [now_year.saturating_sub(1), now_year, now_year + 1]
                .into_iter()
                .filter_map(|y| check(y).ok());
            let limit = received_us.saturating_add(86_400_000_000);
            let best = candidates
                .clone()
                .filter(|c| c.to_unix_us(0) <= limit)
                .max_by_key(|c| c.to_unix_us(0))
                .or_else(|| candidates.min_by_key(|c| c.to_unix_us(0).abs_diff(received_us)));
            match best {
                Some(c) => (c, true),
                None => {
                    let problem = match check(2000) {
                        Err(RangeError(e)) => e,
                        Ok(_) => format!("{:02}-{day:02} is in no year near now", mon),
                    };
                    return Err(ParseError::Timestamp {
                        text: text(i),
                        problem,
                    });
                }
            }
        }
    };
    Ok(Some((civil, inferred, i)))
}

/// A zone name after a Cisco time: 2 to 5 uppercase letters, then `:`.
fn zone_name(b: &[u8]) -> Option<&str> {
    let n = b
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    if (2..=5).contains(&n) && b.get(n) == Some(&b':') {
        std::str::from_utf8(&b[..n]).ok()
    } else {
        None
    }
}

fn named_zone(name: &str) -> Zone {
    match name {
        "UTC" | "GMT" | "UT" | "Z" => Zone::Offset(0),
        other => Zone::Named(other.to_string()),
    }
}

/// A host name as found in an RFC 3164 header: printable ASCII, at most 255 bytes.
fn host_token(b: &[u8]) -> Option<&str> {
    if b.is_empty() || b.len() > MAX_HOSTNAME || !b.iter().all(|c| (33..=126).contains(c)) {
        return None;
    }
    std::str::from_utf8(b).ok()
}

fn parse_3164(
    b: &[u8],
    facility: u8,
    severity: Severity,
    received_us: i64,
) -> Result<SyslogMessage, ParseError> {
    let mut invalid_utf8 = false;
    let mut rest = b;
    while let Some(r) = rest.strip_prefix(b" ") {
        rest = r;
    }
    // Cisco: sequence number `123: `.
    let mut sequence = None;
    let n = rest
        .iter()
        .take(21)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if (1..=20).contains(&n) && rest[n..].starts_with(b": ") {
        sequence = Some(rest[..n].iter().fold(0u64, |v, &c| {
            v.saturating_mul(10).saturating_add(u64::from(c - b'0'))
        }));
        rest = &rest[n + 2..];
    }
    // Cisco `logging origin-id`: `HOST: ` before the timestamp.
    let mut hostname = None;
    if let Some(p) = rest.iter().take(MAX_HOSTNAME + 2).position(|&c| c == b' ')
        && p > 1
        && rest[p - 1] == b':'
    {
        let after = &rest[p + 1..];
        let after = after
            .strip_prefix(b"*")
            .or_else(|| after.strip_prefix(b"."))
            .unwrap_or(after);
        if let (Some(h), Ok(Some(_))) = (
            host_token(&rest[..p - 1]),
            bsd_timestamp(after, received_us),
        ) {
            hostname = Some(h.to_string());
            rest = &rest[p + 1..];
        }
    }
    let mut clock = ClockMark::Unmarked;
    let mut timestamp = None;
    let mut cisco_header = false;
    {
        let (mark, after) = match rest.first() {
            Some(b'*') => (ClockMark::NotAuthoritative, &rest[1..]),
            Some(b'.') => (ClockMark::SyncLost, &rest[1..]),
            _ => (ClockMark::Unmarked, rest),
        };
        if let Some((civil, inferred, len)) = bsd_timestamp(after, received_us)? {
            clock = mark;
            let mut r = &after[len..];
            let mut zone = Zone::Unspecified;
            if let Some(z) = r.strip_prefix(b" ").and_then(zone_name) {
                zone = named_zone(z);
                r = &r[1 + z.len()..];
            }
            if let Some(x) = r.strip_prefix(b":") {
                // Cisco: the header ends with ':'.
                cisco_header = true;
                r = x;
            }
            timestamp = Some(Timestamp {
                civil,
                zone,
                year_inferred: inferred,
                clock,
            });
            rest = r;
        } else if mark == ClockMark::Unmarked && rest.first().is_some_and(u8::is_ascii_digit) {
            // An RFC 3339 timestamp (AOS-CX, rsyslog's RFC3339 templates).
            let tlen = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
            let tb = &rest[..tlen];
            if tb.len() >= 20 && tb[4] == b'-' && tb[7] == b'-' && matches!(tb[10], b'T' | b't') {
                let (civil, offset) = rfc3339(tb).map_err(|problem| ParseError::Timestamp {
                    text: shown(tb),
                    problem,
                })?;
                timestamp = Some(Timestamp {
                    civil,
                    zone: Zone::Offset(offset),
                    year_inferred: false,
                    clock,
                });
                rest = &rest[tlen..];
            }
        }
    }
    if timestamp.is_some() {
        while let Some(r) = rest.strip_prefix(b" ") {
            rest = r;
        }
        if !cisco_header && hostname.is_none() {
            // HOSTNAME, unless the word is already the TAG (`sshd[12]:`, `tag:`).
            let wlen = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
            let word = &rest[..wlen];
            let is_tag = word.ends_with(b":") || word.contains(&b'[');
            if !is_tag
                && wlen < rest.len()
                && let Some(h) = host_token(word)
            {
                hostname = Some(h.to_string());
                rest = &rest[wlen + 1..];
            }
        }
    }
    // TAG[PID]: (a letter first; letters, digits, `_.-/`; at most 48).
    let mut app_name = None;
    let mut procid = None;
    let tlen = rest
        .iter()
        .take(MAX_APP_NAME + 1)
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'/'))
        .count();
    if (1..=MAX_APP_NAME).contains(&tlen) && rest[0].is_ascii_alphabetic() {
        let tag = &rest[..tlen];
        let mut r = &rest[tlen..];
        let mut pid = None;
        if let Some(x) = r.strip_prefix(b"[")
            && let Some(close) = x.iter().take(MAX_PROCID + 1).position(|&c| c == b']')
        {
            let p = &x[..close];
            if !p.is_empty() && p.iter().all(|c| (33..=126).contains(c)) {
                pid = Some(p);
                r = &x[close + 1..];
            }
        }
        if let Some(x) = r.strip_prefix(b":")
            && (x.is_empty() || x[0] == b' ')
        {
            app_name = Some(String::from_utf8_lossy(tag).into_owned());
            procid = pid.map(|p| String::from_utf8_lossy(p).into_owned());
            rest = x.strip_prefix(b" ").unwrap_or(x);
        }
    }
    let msg = lossy(rest, &mut invalid_utf8);
    Ok(SyslogMessage {
        format: Format::Rfc3164,
        facility,
        severity,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid: None,
        structured_data: Vec::new(),
        sequence,
        msg,
        invalid_utf8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-10T12:00:00Z
    const NOW: i64 = 1_773_144_000_000_000;

    fn p(s: &str) -> SyslogMessage {
        parse(s.as_bytes(), NOW).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &[u8]) -> ParseError {
        parse(s, NOW).expect_err(&String::from_utf8_lossy(s))
    }

    #[test]
    fn rfc5424_examples_of_section_6_5() {
        // Example 1, with a BOM before MSG.
        let m = p(
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
        );
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!((m.facility, m.severity), (4, Severity::Critical));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app_name.as_deref(), Some("su"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid.as_deref(), Some("ID47"));
        assert_eq!(m.msg, "'su root' failed for lonvick on /dev/pts/8");
        let ts = m.timestamp.unwrap();
        assert_eq!(ts.unix_us(None), Some(1_065_910_455_003_000));
        // Example 2: an offset and a fraction of 6 digits.
        let m = p(
            "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        );
        assert_eq!(
            m.timestamp.unwrap().display(),
            "2003-08-24T05:14:15.000003-07:00"
        );
        assert_eq!(m.procid.as_deref(), Some("8710"));
        assert_eq!(m.msg, "%% It's time to make the do-nuts.");
        // Example 3: structured data.
        let m = p(
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry..."#,
        );
        assert_eq!(m.structured_data.len(), 1);
        assert_eq!(m.structured_data[0].id, "exampleSDID@32473");
        assert_eq!(
            m.structured_data[0].params[1],
            ("eventSource".into(), "Application".into())
        );
        assert_eq!(m.msg, "An application event log entry...");
        // Example 4: two elements, no MSG.
        let m = p(
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#,
        );
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(m.msg, "");
    }

    #[test]
    fn sd_escapes_follow_section_6_3_3() {
        let m = p(r#"<13>1 - - - - - [a b="q\"s\\b\]e\n"] m"#);
        assert_eq!(m.structured_data[0].params[0].1, r#"q"s\b]e\n"#);
        let m = p(r#"<13>1 - - - - - [a@1 k=""][b] x"#);
        assert_eq!(m.structured_data[0].params[0].1, "");
        assert_eq!(m.structured_data[1].id, "b");
    }

    #[test]
    fn bad_structured_data_says_what_is_wrong() {
        for (s, want) in [
            (r#"<13>1 - - - - - [a b="unterminated"#, "no closing '\"'"),
            (r#"<13>1 - - - - - [a b="v""#, "not closed by ']'"),
            (r#"<13>1 - - - - - [a b=v]"#, "does not start with '\"'"),
            (r#"<13>1 - - - - - [a b]"#, "expected '='"),
            (r#"<13>1 - - - - - []"#, "SD-ID is empty"),
            (r#"<13>1 - - - - - [ a]"#, "SD-ID is empty"),
            (r#"<13>1 - - - - - x"#, "must be '-'"),
            (r#"<13>1 - - - - - [a b="c"]x"#, "expected SP or the end"),
            (r#"<13>1 - - - - -"#, "missing"),
            (r#"<13>1 - - - -"#, "missing"),
            (
                "<13>1 - - - - - [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]",
                "longer than 32",
            ),
        ] {
            let e = err(s.as_bytes());
            assert!(e.to_string().contains(want), "{s}: {e} (want {want})");
        }
    }

    #[test]
    fn header_errors_name_the_field() {
        let long = format!("<13>1 - {} - - - -", "h".repeat(256));
        assert!(
            err(long.as_bytes())
                .to_string()
                .starts_with("HOSTNAME: 256 characters")
        );
        let e = err(b"<13>1 - host app\x01 - - -");
        assert!(e.to_string().starts_with("APP-NAME: byte 0x01"), "{e}");
        let e = err(b"<13>1 - host  - - -");
        assert!(e.to_string().contains("empty"), "{e}");
        let e = err(b"<13>1 - host");
        assert!(e.to_string().contains("APP-NAME: missing"), "{e}");
        assert_eq!(err(b"<13>2 - - - - -"), ParseError::Version(2));
        assert_eq!(err(b"<13>10 - - - - -").kind(), "version_unsupported");
    }

    #[test]
    fn timestamps_out_of_range_are_errors() {
        for (ts, want) in [
            ("2026-13-01T00:00:00Z", "month 13"),
            ("2026-02-29T00:00:00Z", "day 29"),
            ("2026-01-01T24:00:00Z", "hour 24"),
            ("2026-01-01T00:60:00Z", "minute 60"),
            ("2016-12-31T23:59:60Z", "leap seconds"),
            ("2026-01-01T00:00:00+24:00", "offset 24:00"),
            ("2026-01-01T00:00:00", "no time zone"),
            ("2026-01-01T00:00:00.Z", "without fraction"),
            ("2026-01-01T00:00:00.1234567890Z", "10 digits"),
            ("2026-1-01T00:00:00Z", "not an RFC 3339"),
            ("1985-04-12 23:20:50Z", "not an RFC 3339"),
        ] {
            let e = err(format!("<13>1 {ts} h a p m -").as_bytes());
            assert_eq!(e.kind(), "timestamp_invalid", "{ts}");
            assert!(e.to_string().contains(want), "{ts}: {e}");
        }
        // Nanoseconds (beyond RFC 5424's 6 digits) are accepted and cut to microseconds.
        let m = p("<13>1 2026-01-01T00:00:00.123456789z h a p m -");
        assert_eq!(m.timestamp.unwrap().civil.micros, 123_456);
    }

    #[test]
    fn pri_errors() {
        assert_eq!(err(b"<192>1 - - - - -"), ParseError::PriOutOfRange(192));
        assert_eq!(err(b"<999>x").kind(), "pri_out_of_range");
        assert_eq!(err(b"<1000>x").kind(), "pri_malformed");
        assert_eq!(err(b"<>x").kind(), "pri_malformed");
        assert_eq!(err(b"<13 x").kind(), "pri_malformed");
        assert_eq!(err(b"<13").kind(), "pri_malformed");
        assert_eq!(err(b"Mar  1 host x").kind(), "pri_missing");
        assert_eq!(err(b"\x16\x03\x01\x02\x00\x01").kind(), "pri_missing");
        assert_eq!(err(b"").kind(), "empty");
        assert_eq!(err(b"\r\n\0").kind(), "empty");
        let m = p("<191>x");
        assert_eq!((m.facility, m.severity), (23, Severity::Debug));
        let m = p("<0>x");
        assert_eq!((m.facility, m.severity), (0, Severity::Emergency));
        let m = p("<013>x");
        assert_eq!(m.facility, 1, "leading zeros in PRI are read");
    }

    #[test]
    fn bsd_format() {
        let m = p("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.hostname.as_deref(), Some("mymachine"));
        assert_eq!(m.app_name.as_deref(), Some("su"));
        assert_eq!(m.msg, "'su root' failed for lonvick on /dev/pts/8");
        let ts = m.timestamp.unwrap();
        assert!(ts.year_inferred);
        assert_eq!(
            ts.civil.year, 2025,
            "October is nearer in the past than in the future"
        );
        assert_eq!(ts.zone, Zone::Unspecified);
        assert_eq!(ts.unix_us(None), None);
        // Space-padded day, tag with pid.
        let m = p("<28>Aug  9 05:40:40 gss-sw02 mib2d[2112]: SNMP_TRAP_LINK_DOWN: ifIndex 521");
        assert_eq!(m.hostname.as_deref(), Some("gss-sw02"));
        assert_eq!(m.app_name.as_deref(), Some("mib2d"));
        assert_eq!(m.procid.as_deref(), Some("2112"));
        assert_eq!(m.msg, "SNMP_TRAP_LINK_DOWN: ifIndex 521");
        // No host name, the tag right after the time.
        let m = p("<13>Mar 10 11:00:00 sshd[12]: hello");
        assert_eq!((m.hostname, m.app_name.as_deref()), (None, Some("sshd")));
        // No header at all (RFC 3164 §4.3.3).
        let m = p("<13>May I help you");
        assert_eq!((m.timestamp, m.msg.as_str()), (None, "May I help you"));
        let m = p("<13>");
        assert_eq!(m.msg, "");
    }

    #[test]
    fn cisco_variants() {
        let m = p(
            "<189>123: *Mar  1 00:01:02.345 UTC: %DOT1X-5-FAIL: Authentication failed for client (0011.2233.4455) on Interface Gi1/0/3",
        );
        assert_eq!(m.sequence, Some(123));
        assert_eq!(m.hostname, None);
        assert_eq!(m.app_name, None);
        assert_eq!(
            m.msg,
            "%DOT1X-5-FAIL: Authentication failed for client (0011.2233.4455) on Interface Gi1/0/3"
        );
        let ts = m.timestamp.unwrap();
        assert_eq!(ts.clock, ClockMark::NotAuthoritative);
        assert_eq!(ts.zone, Zone::Offset(0));
        assert_eq!(ts.civil.micros, 345_000);
        assert_eq!((ts.civil.month, ts.civil.day, ts.civil.second), (3, 1, 2));
        // Year, named zone, sync lost.
        let m = p(
            "<187>000045: .Mar 10 2026 11:30:00.123 CET: %LINK-3-UPDOWN: Interface GigabitEthernet1/0/3, changed state to down",
        );
        let ts = m.timestamp.unwrap();
        assert_eq!(
            (ts.civil.year, ts.year_inferred, ts.clock),
            (2026, false, ClockMark::SyncLost)
        );
        assert_eq!(ts.zone, Zone::Named("CET".into()));
        assert_eq!(ts.unix_us(None), None);
        assert_eq!(
            ts.unix_us(Some(3600)),
            Some(NOW - 90 * 60 * 1_000_000 + 123_000)
        );
        assert_eq!(m.sequence, Some(45));
        // origin-id host name before the time.
        let m = p("<189>52: sw-lobby: Mar 10 11:59:00 UTC: %LINK-3-UPDOWN: x");
        assert_eq!(m.hostname.as_deref(), Some("sw-lobby"));
        assert_eq!(m.msg, "%LINK-3-UPDOWN: x");
        // Uptime timestamps are not dates: the whole rest is MSG.
        let m = p("<189>45: 00:00:45: %LINK-3-UPDOWN: Interface Gi1/0/1, changed state to up");
        assert_eq!(m.sequence, Some(45));
        assert_eq!(m.timestamp, None);
        assert_eq!(
            m.msg,
            "00:00:45: %LINK-3-UPDOWN: Interface Gi1/0/1, changed state to up"
        );
        // A syslog relay in front (RFC 3164 header, then Cisco's text).
        let m = p("<189>Mar 10 11:59:00 10.0.0.2 123: *Mar  1 00:01:02: %MAB-5-FAIL: x");
        assert_eq!(m.hostname.as_deref(), Some("10.0.0.2"));
        assert_eq!(m.msg, "123: *Mar  1 00:01:02: %MAB-5-FAIL: x");
    }

    #[test]
    fn rfc3339_in_a_bsd_header() {
        let m = p(
            "<14>2026-01-22T06:50:58.787392+10:00 TSV-CX6000-24-AS01 intfd[769]: Event|404|LOG_INFO|AMM|1/1|Link status for interface 1/1/22 is down",
        );
        assert_eq!(m.hostname.as_deref(), Some("TSV-CX6000-24-AS01"));
        assert_eq!(m.app_name.as_deref(), Some("intfd"));
        assert_eq!(
            m.msg,
            "Event|404|LOG_INFO|AMM|1/1|Link status for interface 1/1/22 is down"
        );
        assert_eq!(m.timestamp.unwrap().zone, Zone::Offset(36_000));
        assert_eq!(
            err(b"<14>2026-01-22T25:50:58Z h x: y").kind(),
            "timestamp_invalid"
        );
    }

    #[test]
    fn bsd_timestamps_out_of_range_are_errors() {
        for (s, want) in [
            ("<13>Feb 30 10:00:00 h x", "day 30"),
            ("<13>Mar  1 25:00:00 h x", "hour 25"),
            ("<13>Mar  1 10:61:00 h x", "minute 61"),
            ("<13>Mar  1 10:00:60 h x", "second 60"),
            ("<13>Mar  1 10:0x:00 h x", "hh:mm:ss"),
            ("<13>Mar  1 2026 10:00:00.1234567 h x", "7 digits"),
            ("<13>Feb 29 2026 10:00:00 h x", "day 29"),
        ] {
            let e = err(s.as_bytes());
            assert_eq!(e.kind(), "timestamp_invalid", "{s}");
            assert!(e.to_string().contains(want), "{s}: {e}");
        }
        // Feb 29 without a year: the nearest leap year within a year of now, or an error.
        assert_eq!(err(b"<13>Feb 29 10:00:00 h x").kind(), "timestamp_invalid");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let m = parse(b"<13>1 - h a - - [x y=\"\xff\"] caf\xc3\xa9 \xfe\xfe", NOW).unwrap();
        assert!(m.invalid_utf8);
        assert_eq!(m.msg, "café \u{fffd}\u{fffd}");
        assert_eq!(m.structured_data[0].params[0].1, "\u{fffd}");
        let m = parse(b"<13>Mar  1 10:00:00 h tag: \x80", NOW).unwrap();
        assert!(m.invalid_utf8);
        let m = parse(b"<13>Mar  1 10:00:00 \xff\xfe tag: x", NOW).unwrap();
        assert_eq!(m.hostname, None, "a host name must be printable ASCII");
    }
}
