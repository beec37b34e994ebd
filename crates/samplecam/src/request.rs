//! Parsing of what RTSP clients send: request messages (RFC 2326 section 6), interleaved
//! binary frames (section 10.12), and the `Transport` header (section 12.39).
//!
//! Everything here treats its input as hostile: sizes are bounded before bytes are buffered,
//! nothing panics, and every error says what was wrong so the server can answer `400` with a
//! reason. `rtsp-types` was considered, but its parser reports only "Parse Error" and parses
//! responses too; a client deserves a precise reason, and the fuzz target needs one small
//! surface.

use std::fmt;

/// Size limits for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus headers, including the blank line.
    pub max_header_bytes: usize,
    /// Body (`Content-Length`).
    pub max_body_bytes: usize,
    /// Number of header lines.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024,
            max_headers: 64,
        }
    }
}

/// A parsed RTSP/1.0 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method token exactly as sent (methods are case-sensitive).
    pub method: String,
    /// Request-URI as sent (`*`, an absolute `rtsp://` URL or an absolute path).
    pub uri: String,
    /// The `CSeq` header.
    pub cseq: u32,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path of the request URI (`None` for `*`); scheme, authority, query, fragment and
    /// any user information are stripped.
    pub fn path(&self) -> Option<&str> {
        uri_parts(&self.uri).map(|(_, path)| path)
    }

    /// The authority (`host:port`) of an absolute URI, without user information.
    pub fn authority(&self) -> Option<&str> {
        uri_parts(&self.uri).and_then(|(authority, _)| authority)
    }
}

/// Splits a request URI into (authority, path). `*` has neither.
fn uri_parts(uri: &str) -> Option<(Option<&str>, &str)> {
    if uri == "*" {
        return None;
    }
    let (authority, rest) = match uri.find("://") {
        Some(i) => {
            let after = &uri[i + 3..];
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            let authority = &after[..end];
            let authority = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            (Some(authority), &after[end..])
        }
        None => (None, uri),
    };
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    Some((authority, if path.is_empty() { "/" } else { path }))
}

/// What the front of a receive buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed; nothing is wrong so far.
    Incomplete,
    /// A complete request occupying the first `consumed` bytes.
    Request { request: Request, consumed: usize },
    /// An interleaved binary frame (e.g. an RTCP receiver report) of `consumed` bytes.
    Interleaved { channel: u8, consumed: usize },
}

/// Why a request was rejected. The display text is meant for the client and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// No end of headers within the limit.
    HeaderTooLarge { limit: usize },
    /// Declared body larger than the limit.
    BodyTooLarge { length: usize, limit: usize },
    /// More header lines than allowed.
    TooManyHeaders { limit: usize },
    /// The request line is not `METHOD SP URI SP RTSP/1.0`.
    BadRequestLine(String),
    /// An RTSP version other than 1.0.
    UnsupportedVersion(String),
    /// A header line is malformed.
    BadHeader(String),
    /// `CSeq` missing.
    MissingCSeq,
    /// `CSeq` or `Content-Length` is not a number, or appears twice.
    BadNumber { header: &'static str, value: String },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::HeaderTooLarge { limit } => write!(
                f,
                "request line and headers exceed {limit} bytes; send a shorter request"
            ),
            RequestError::BodyTooLarge { length, limit } => write!(
                f,
                "Content-Length {length} exceeds the {limit}-byte limit for request bodies"
            ),
            RequestError::TooManyHeaders { limit } => {
                write!(f, "more than {limit} header lines; send fewer headers")
            }
            RequestError::BadRequestLine(why) => write!(
                f,
                "malformed request line ({why}); expected `METHOD rtsp://host/path RTSP/1.0`"
            ),
            RequestError::UnsupportedVersion(v) => {
                write!(f, "protocol version {v:?} is not supported; use RTSP/1.0")
            }
            RequestError::BadHeader(why) => write!(f, "malformed header: {why}"),
            RequestError::MissingCSeq => {
                write!(
                    f,
                    "request has no CSeq header; every RTSP request needs one"
                )
            }
            RequestError::BadNumber { header, value } => write!(
                f,
                "{header} value {value:?} is not a single non-negative integer"
            ),
        }
    }
}

impl std::error::Error for RequestError {}

impl RequestError {
    /// The RTSP status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::BodyTooLarge { .. } => 413,
            RequestError::UnsupportedVersion(_) => 505,
            _ => 400,
        }
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses the message at the front of `buf`.
///
/// Leading empty lines (keep-alive CRLFs) are consumed as part of the next message. Lines may
/// end in CRLF or a bare LF. Errors leave the stream unsynchronised: the caller should answer
/// and close the connection.
pub fn parse_message(buf: &[u8], limits: &Limits) -> Result<Parsed, RequestError> {
    let skip = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    if skip > limits.max_header_bytes {
        return Err(RequestError::HeaderTooLarge {
            limit: limits.max_header_bytes,
        });
    }
    let msg = &buf[skip..];
    if msg.is_empty() {
        return Ok(Parsed::Incomplete);
    }
    if msg[0] == b'$' {
        if msg.len() < 4 {
            return Ok(Parsed::Incomplete);
        }
        let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
        if msg.len() < 4 + len {
            return Ok(Parsed::Incomplete);
        }
        return Ok(Parsed::Interleaved {
            channel: msg[1],
            consumed: skip + 4 + len,
        });
    }

    // Reject garbage as soon as the first line shows it, rather than waiting for a blank line
    // that may never come.
    let first_line_end = msg.iter().position(|&b| b == b'\n');
    let first_line = &msg[..first_line_end.unwrap_or(msg.len())];
    check_request_line_prefix(first_line, first_line_end.is_some())?;

    let Some(head_len) = find_head_end(msg, limits.max_header_bytes) else {
        if msg.len() >= limits.max_header_bytes {
            return Err(RequestError::HeaderTooLarge {
                limit: limits.max_header_bytes,
            });
        }
        return Ok(Parsed::Incomplete);
    };
    let head = &msg[..head_len];
    let head = std::str::from_utf8(head)
        .map_err(|_| RequestError::BadHeader("request head is not valid UTF-8".into()))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let (method, uri) = parse_request_line(request_line)?;

    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.contains('\r') {
            return Err(RequestError::BadHeader(
                "bare CR inside a header line".into(),
            ));
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding: the value continues from the previous header.
            let Some((_, value)) = headers.last_mut() else {
                return Err(RequestError::BadHeader(
                    "continuation line before any header".into(),
                ));
            };
            check_value(line.trim())?;
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(RequestError::BadHeader(format!(
                "line {:?} has no colon",
                truncate(line)
            )));
        };
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(RequestError::BadHeader(format!(
                "header name {:?} is not a token",
                truncate(name)
            )));
        }
        let value = value.trim_matches([' ', '\t']);
        check_value(value)?;
        if headers.len() == limits.max_headers {
            return Err(RequestError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        headers.push((name.to_string(), value.to_string()));
    }

    let cseq = single_number(&headers, "CSeq")?.ok_or(RequestError::MissingCSeq)?;
    let cseq = u32::try_from(cseq).map_err(|_| RequestError::BadNumber {
        header: "CSeq",
        value: cseq.to_string(),
    })?;
    let body_len = single_number(&headers, "Content-Length")?.unwrap_or(0);
    if body_len > limits.max_body_bytes as u64 {
        return Err(RequestError::BodyTooLarge {
            length: usize::try_from(body_len).unwrap_or(usize::MAX),
            limit: limits.max_body_bytes,
        });
    }
    let body_len = body_len as usize;
    if msg.len() < head_len + body_len {
        return Ok(Parsed::Incomplete);
    }
    Ok(Parsed::Request {
        request: Request {
            method: method.to_string(),
            uri: uri.to_string(),
            cseq,
            headers,
            body: msg[head_len..head_len + body_len].to_vec(),
        },
        consumed: skip + head_len + body_len,
    })
}

/// Length of the head including the blank line, if it ends within `limit` bytes.
fn find_head_end(msg: &[u8], limit: usize) -> Option<usize> {
    let window = &msg[..msg.len().min(limit)];
    let mut i = 0;
    while let Some(off) = window[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let next = &window[nl + 1..];
        if next.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if next.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

fn check_request_line_prefix(line: &[u8], complete: bool) -> Result<(), RequestError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let method_end = line.iter().position(|&b| b == b' ');
    let method = &line[..method_end.unwrap_or(line.len())];
    if !method.iter().all(|&b| is_token_char(b)) {
        return Err(RequestError::BadRequestLine(
            "the method contains characters other than token characters".into(),
        ));
    }
    if let Some(b) = line.iter().find(|&&b| b < 0x20 || b == 0x7F || (b >= 0x80)) {
        return Err(RequestError::BadRequestLine(format!(
            "byte 0x{b:02x} is not allowed in the request line"
        )));
    }
    if complete && method.is_empty() {
        return Err(RequestError::BadRequestLine("empty method".into()));
    }
    Ok(())
}

fn parse_request_line(line: &str) -> Result<(&str, &str), RequestError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::BadRequestLine(
            "it must have exactly three parts separated by single spaces".into(),
        ));
    };
    if method.is_empty() || uri.is_empty() {
        return Err(RequestError::BadRequestLine("empty method or URI".into()));
    }
    if version != "RTSP/1.0" {
        if version.starts_with("RTSP/") {
            return Err(RequestError::UnsupportedVersion(truncate(version)));
        }
        return Err(RequestError::BadRequestLine(format!(
            "{:?} is not an RTSP version",
            truncate(version)
        )));
    }
    Ok((method, uri))
}

fn check_value(value: &str) -> Result<(), RequestError> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(RequestError::BadHeader(
            "header value contains control characters".into(),
        ));
    }
    Ok(())
}

fn single_number(
    headers: &[(String, String)],
    name: &'static str,
) -> Result<Option<u64>, RequestError> {
    let mut found = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
    let Some((_, value)) = found.next() else {
        return Ok(None);
    };
    let bad = || RequestError::BadNumber {
        header: name,
        value: truncate(value),
    };
    if found.next().is_some() {
        return Err(bad());
    }
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    value.parse().map(Some).map_err(|_| bad())
}

/// Keeps client-controlled text in error messages and logs short.
fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Lower transport of one `Transport` header alternative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowerTransport {
    Udp,
    Tcp,
}

/// One alternative of a `Transport` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportSpec {
    /// `RTP/AVP` profile (others, e.g. `RTP/SAVP`, are recorded as false).
    pub rtp_avp: bool,
    pub lower: LowerTransport,
    pub multicast: bool,
    /// `interleaved=a-b` (a single `a` means `a-(a+1)`).
    pub interleaved: Option<(u8, u8)>,
}

/// Parses a `Transport` header value into its comma-separated alternatives.
pub fn parse_transport(value: &str) -> Result<Vec<TransportSpec>, String> {
    let mut specs = Vec::new();
    for alternative in value.split(',') {
        if specs.len() == 16 {
            return Err("more than 16 transport alternatives".into());
        }
        let mut params = alternative.split(';').map(str::trim);
        let protocol = params.next().unwrap_or_default();
        let mut fields = protocol.split('/');
        let (Some(proto), Some(profile)) = (fields.next(), fields.next()) else {
            return Err(format!(
                "transport {:?} is not of the form RTP/AVP[/TCP]",
                truncate(protocol)
            ));
        };
        let lower = match fields.next() {
            None => LowerTransport::Udp,
            Some(l) if l.eq_ignore_ascii_case("UDP") => LowerTransport::Udp,
            Some(l) if l.eq_ignore_ascii_case("TCP") => LowerTransport::Tcp,
            Some(l) => return Err(format!("unknown lower transport {:?}", truncate(l))),
        };
        if fields.next().is_some() {
            return Err(format!(
                "transport {:?} has too many parts",
                truncate(protocol)
            ));
        }
        let mut spec = TransportSpec {
            rtp_avp: proto.eq_ignore_ascii_case("RTP") && profile.eq_ignore_ascii_case("AVP"),
            lower,
            multicast: false,
            interleaved: None,
        };
        for param in params {
            let (key, val) = match param.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (param, None),
            };
            if key.eq_ignore_ascii_case("multicast") {
                spec.multicast = true;
            } else if key.eq_ignore_ascii_case("unicast") {
                spec.multicast = false;
            } else if key.eq_ignore_ascii_case("interleaved") {
                let val = val.ok_or("interleaved needs a channel range, e.g. interleaved=0-1")?;
                spec.interleaved = Some(parse_channels(val)?);
            }
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn parse_channels(val: &str) -> Result<(u8, u8), String> {
    let bad = || {
        format!(
            "interleaved={:?} is not a channel range 0-255",
            truncate(val)
        )
    };
    let (a, b) = match val.split_once('-') {
        Some((a, b)) => (
            a.parse::<u8>().map_err(|_| bad())?,
            b.parse::<u8>().map_err(|_| bad())?,
        ),
        None => {
            let a = val.parse::<u8>().map_err(|_| bad())?;
            (a, a.checked_add(1).ok_or_else(bad)?)
        }
    };
    if a == b {
        return Err(format!(
            "interleaved={a}-{b} uses one channel for RTP and RTCP"
        ));
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Parsed, RequestError> {
        parse_message(s, &Limits::default())
    }

    fn request(s: &[u8]) -> (Request, usize) {
        match parse(s) {
            Ok(Parsed::Request { request, consumed }) => (request, consumed),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_describe() {
        let raw = b"\r\nDESCRIBE rtsp://user:pw@127.0.0.1:8554/sample?x=1 RTSP/1.0\r\nCSeq: 2\r\nAccept:  application/sdp \r\nX-Folded: a\r\n  b\r\n\r\nrest";
        let (req, consumed) = request(raw);
        assert_eq!(consumed, raw.len() - 4);
        assert_eq!(req.method, "DESCRIBE");
        assert_eq!(req.cseq, 2);
        assert_eq!(req.header("accept"), Some("application/sdp"));
        assert_eq!(req.header("x-folded"), Some("a b"));
        assert_eq!(req.path(), Some("/sample"));
        assert_eq!(req.authority(), Some("127.0.0.1:8554"));
        assert!(req.body.is_empty());
    }

    #[test]
    fn bare_lf_body_and_paths() {
        let raw = b"GET_PARAMETER /sample/ RTSP/1.0\nCSeq: 9\nContent-Length: 4\n\nabcdNEXT";
        let (req, consumed) = request(raw);
        assert_eq!(&raw[consumed..], b"NEXT");
        assert_eq!(req.body, b"abcd");
        assert_eq!(req.path(), Some("/sample/"));
        assert_eq!(req.authority(), None);
        let (star, _) = request(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        assert_eq!(star.path(), None);
        let (root, _) = request(b"OPTIONS rtsp://h RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        assert_eq!(root.path(), Some("/"));
    }

    #[test]
    fn incomplete_then_complete() {
        let raw = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nabc";
        for cut in 0..raw.len() {
            assert_eq!(parse(&raw[..cut]), Ok(Parsed::Incomplete), "cut at {cut}");
        }
        assert!(matches!(parse(raw), Ok(Parsed::Request { .. })));
    }

    #[test]
    fn interleaved_frames() {
        assert_eq!(parse(b"$\x01\x00"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"$\x01\x00\x03ab"), Ok(Parsed::Incomplete));
        assert_eq!(
            parse(b"$\x01\x00\x03abcOPTIONS"),
            Ok(Parsed::Interleaved {
                channel: 1,
                consumed: 7
            })
        );
    }

    #[test]
    fn rejects_garbage_early() {
        let err = parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").unwrap_err();
        assert!(matches!(err, RequestError::BadRequestLine(_)), "{err}");
        assert_eq!(err.status(), 400);
        assert!(matches!(
            parse(b"DESCRIBE rtsp://x/\x01"),
            Err(RequestError::BadRequestLine(_))
        ));
        assert!(matches!(
            parse(b" OPTIONS * RTSP/1.0\r\n"),
            Err(RequestError::BadRequestLine(_))
        ));
    }

    #[test]
    fn rejects_bad_requests_with_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (b"OPTIONS * RTSP/1.0\r\n\r\n", "no CSeq"),
            (b"OPTIONS * RTSP/1.0\r\nCSeq: x\r\n\r\n", "CSeq value \"x\""),
            (
                b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nCSeq: 2\r\n\r\n",
                "CSeq value",
            ),
            (
                b"OPTIONS * RTSP/1.0\r\nCSeq: 99999999999\r\n\r\n",
                "CSeq value",
            ),
            (b"OPTIONS * RTSP/1.0\r\nCSeq: -1\r\n\r\n", "CSeq value"),
            (
                b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 1e3\r\n\r\n",
                "Content-Length value",
            ),
            (b"OPTIONS  * RTSP/1.0\r\nCSeq: 1\r\n\r\n", "three parts"),
            (
                b"OPTIONS * HTTP/1.1\r\nCSeq: 1\r\n\r\n",
                "not an RTSP version",
            ),
            (b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n", "use RTSP/1.0"),
            (b"OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n", "no colon"),
            (b"OPTIONS * RTSP/1.0\r\nC Seq: 1\r\n\r\n", "not a token"),
            (
                b"OPTIONS * RTSP/1.0\r\n folded\r\nCSeq: 1\r\n\r\n",
                "continuation",
            ),
            (
                b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: a\x00b\r\n\r\n",
                "control characters",
            ),
            (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\rX: y\r\n\r\n", "bare CR"),
            (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: \xff\r\n\r\n", "UTF-8"),
            (
                b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 5000\r\n\r\n",
                "exceeds the 4096-byte",
            ),
        ];
        for (raw, needle) in cases {
            let err = parse(raw).expect_err(needle);
            assert!(
                err.to_string().contains(needle),
                "{err} should mention {needle}"
            );
        }
        assert_eq!(
            parse(b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n")
                .unwrap_err()
                .status(),
            505
        );
        assert_eq!(
            parse(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 5000\r\n\r\n")
                .unwrap_err()
                .status(),
            413
        );
    }

    #[test]
    fn bounds_header_size_and_count() {
        let limits = Limits::default();
        let mut huge = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Big: ".to_vec();
        huge.resize(limits.max_header_bytes + 10, b'a');
        assert_eq!(
            parse(&huge),
            Err(RequestError::HeaderTooLarge {
                limit: limits.max_header_bytes
            })
        );
        // Just below the limit without a blank line: still waiting.
        huge.truncate(limits.max_header_bytes - 1);
        assert_eq!(parse(&huge), Ok(Parsed::Incomplete));
        let newlines = vec![b'\n'; limits.max_header_bytes + 1];
        assert!(matches!(
            parse(&newlines),
            Err(RequestError::HeaderTooLarge { .. })
        ));
        let mut many = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n".to_vec();
        for i in 0..=limits.max_headers {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            parse(&many),
            Err(RequestError::TooManyHeaders {
                limit: limits.max_headers
            })
        );
    }

    #[test]
    fn transport_header() {
        let specs = parse_transport(
            "RTP/AVP/TCP;unicast;interleaved=2-3, RTP/AVP;unicast;client_port=5000-5001",
        )
        .unwrap();
        assert_eq!(
            specs,
            vec![
                TransportSpec {
                    rtp_avp: true,
                    lower: LowerTransport::Tcp,
                    multicast: false,
                    interleaved: Some((2, 3)),
                },
                TransportSpec {
                    rtp_avp: true,
                    lower: LowerTransport::Udp,
                    multicast: false,
                    interleaved: None,
                },
            ]
        );
        assert_eq!(
            parse_transport("RTP/AVP/TCP;interleaved=4").unwrap()[0].interleaved,
            Some((4, 5))
        );
        assert!(!parse_transport("RTP/SAVP/TCP").unwrap()[0].rtp_avp);
        assert!(parse_transport("RTP/AVP;multicast").unwrap()[0].multicast);
        for bad in [
            "RTP",
            "RTP/AVP/SCTP",
            "RTP/AVP/TCP/X",
            "RTP/AVP/TCP;interleaved",
            "RTP/AVP/TCP;interleaved=255",
            "RTP/AVP/TCP;interleaved=1-1",
            "RTP/AVP/TCP;interleaved=0-300",
            "RTP/AVP/TCP;interleaved=a-b",
            "",
        ] {
            let err = parse_transport(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
        let many = vec!["RTP/AVP/TCP"; 17].join(",");
        assert!(parse_transport(&many).is_err());
    }
}
