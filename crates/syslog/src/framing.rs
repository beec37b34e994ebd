//! Syslog over a stream (TCP, TLS): where one message ends and the next begins.
//!
//! Two framings exist (RFC 6587 §3.4, the TLS mapping RFC 5425 §4.3 uses the first):
//!
//! - **octet counting**: `MSG-LEN SP SYSLOG-MSG`, `MSG-LEN = NONZERO-DIGIT *DIGIT` (the
//!   length of the message in bytes, no leading zeros);
//! - **non-transparent framing**: the message followed by a trailer, `LF` in practice (what
//!   most switches send over plain TCP). `NUL` is accepted as a trailer too (RFC 6587's
//!   `APP-DEFINED` trailers; some firewalls use it) and a `CR` before the `LF` is dropped.
//!
//! [`Framing::Auto`] decides per frame, as RFC 6587 §3.4 suggests: a frame starting with a digit
//! is octet-counted, anything else is a line. `LF`, `CR` and `NUL` between frames are skipped.
//!
//! The [`Decoder`] is fed byte chunks as they arrive and never holds more than one frame of at
//! most `max_message` bytes, whatever the chunks look like.
//!
//! ## Errors: go on, or close the connection
//!
//! | error | counted as | then |
//! |---|---|---|
//! | a line longer than the limit | `line_too_long` | its bytes are skipped up to its `LF`, the next line is read normally (the trailer resynchronises) |
//! | an octet count that is not `NONZERO-DIGIT *DIGIT SP`: a non-digit, a leading zero, no digits, more than 10 digits | `length_malformed` | **fatal**: nothing says where the next frame starts, the connection must be closed |
//! | an octet count above the limit | `length_too_large` | **fatal**: reported as soon as the count passes the limit, without reading the body; a sender that declares more than Vigil accepts is misconfigured or hostile |
//! | the connection ends inside a frame ([`Decoder::finish`]) | `truncated` | the partial frame is dropped |
//!
//! A length that lies (says more or less than the message has) cannot be seen in the frame it
//! belongs to: the frame takes the declared number of bytes, and the error surfaces in the next
//! frame's octet count (fatal) or as a message that does not parse (counted by the parser).
//! After a fatal error the decoder yields nothing more ([`Decoder::is_failed`]).

/// How frames are delimited on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Per frame: a digit starts an octet count, anything else a line (RFC 6587 §3.4).
    Auto,
    /// Octet counting only (RFC 5425, syslog over TLS).
    OctetCounting,
    /// `LF`-terminated lines only.
    NonTransparent,
}

/// The default largest message: RFC 5425 §4.3.1 says receivers SHOULD accept 8192 octets.
pub const DEFAULT_MAX_MESSAGE: usize = 8192;
/// The smallest allowed limit: RFC 5425 §4.3.1 says receivers MUST accept 2048 octets.
pub const MIN_MAX_MESSAGE: usize = 2048;
/// The largest allowed limit.
pub const MAX_MAX_MESSAGE: usize = 1 << 20;

/// Why a frame was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("octet count is malformed: {0}; closing the connection (RFC 6587 §3.4.1)")]
    BadLength(String),
    #[error(
        "octet count {declared} is larger than the limit of {max} bytes; closing the connection"
    )]
    TooLarge { declared: u64, max: usize },
    #[error("line is longer than the limit of {max} bytes; skipped up to its end")]
    LineTooLong { max: usize },
    #[error("connection ended inside a frame ({0})")]
    Truncated(String),
}

impl FrameError {
    /// A fatal error leaves no way to find the next frame: the connection must be closed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, FrameError::BadLength(_) | FrameError::TooLarge { .. })
    }

    /// A stable name for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            FrameError::BadLength(_) => "length_malformed",
            FrameError::TooLarge { .. } => "length_too_large",
            FrameError::LineTooLong { .. } => "line_too_long",
            FrameError::Truncated(_) => "truncated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Start,
    /// Reading an octet count.
    Length { value: u64, digits: u8 },
    /// Reading an octet-counted body of `want` bytes.
    Counted { want: usize },
    /// Reading a line.
    Line,
    /// Skipping the rest of a line that was too long.
    SkipLine,
    /// After a fatal error.
    Failed,
}

/// What one decoder has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    pub frames: u64,
    pub bytes: u64,
    pub errors: u64,
}

/// A streaming frame decoder for one connection.
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    max: usize,
    state: State,
    buf: Vec<u8>,
    stats: FrameStats,
}

impl Decoder {
    /// A decoder delivering messages of at most `max_message` bytes (clamped to
    /// [`MIN_MAX_MESSAGE`]..=[`MAX_MAX_MESSAGE`]).
    pub fn new(framing: Framing, max_message: usize) -> Self {
        Decoder {
            framing,
            max: max_message.clamp(MIN_MAX_MESSAGE, MAX_MAX_MESSAGE),
            state: State::Start,
            buf: Vec::new(),
            stats: FrameStats::default(),
        }
    }

    pub fn max_message(&self) -> usize {
        self.max
    }

    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// After a fatal error: the connection must be closed, nothing more is decoded.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Bytes of a partial frame held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Decodes `chunk`, handing each complete frame (the message without its framing) or
    /// error to `sink` in order. The whole chunk is consumed.
    pub fn feed(&mut self, chunk: &[u8], mut sink: impl FnMut(Result<Vec<u8>, FrameError>)) {
        self.stats.bytes = self.stats.bytes.saturating_add(chunk.len() as u64);
        let mut input = chunk;
        while !input.is_empty() {
            if let Some(out) = self.step(&mut input) {
                match &out {
                    Ok(_) => self.stats.frames += 1,
                    Err(_) => self.stats.errors += 1,
                }
                sink(out);
            }
        }
    }

    /// [`Decoder::feed`], collecting the results.
    pub fn feed_collect(&mut self, chunk: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        self.feed(chunk, |r| out.push(r));
        out
    }

    /// The connection ended: a partial frame is an error (and dropped). The decoder is then
    /// ready for a new stream.
    pub fn finish(&mut self) -> Option<FrameError> {
        let err = match self.state {
            State::Length { .. } => Some(FrameError::Truncated("inside an octet count".into())),
            State::Counted { want } => Some(FrameError::Truncated(format!(
                "{} of {want} bytes of an octet-counted message",
                self.buf.len()
            ))),
            State::Line if !self.buf.is_empty() => Some(FrameError::Truncated(format!(
                "{} bytes of a line without its LF",
                self.buf.len()
            ))),
            _ => None,
        };
        if err.is_some() {
            self.stats.errors += 1;
        }
        if self.state != State::Failed {
            self.state = State::Start;
        }
        self.buf = Vec::new();
        err
    }

    /// Consumes some of `input`, perhaps producing one result.
    fn step(&mut self, input: &mut &[u8]) -> Option<Result<Vec<u8>, FrameError>> {
        match self.state {
            State::Failed => {
                *input = &[];
                None
            }
            State::Start => {
                let skip = input
                    .iter()
                    .position(|&b| !matches!(b, b'\n' | b'\r' | 0))
                    .unwrap_or(input.len());
                *input = &input[skip..];
                let &first = input.first()?;
                match (self.framing, first) {
                    (Framing::NonTransparent, _) => self.state = State::Line,
                    (_, b'1'..=b'9') => {
                        self.state = State::Length {
                            value: u64::from(first - b'0'),
                            digits: 1,
                        };
                        *input = &input[1..];
                    }
                    (_, b'0') => {
                        return Some(
                            self.fail(
                                "it starts with '0' (no leading zeros, no zero length)".into(),
                            ),
                        );
                    }
                    (Framing::OctetCounting, b) => {
                        return Some(self.fail(format!(
                            "expected a digit starting an octet count (RFC 5425), found {}",
                            show_byte(b)
                        )));
                    }
                    (Framing::Auto, _) => self.state = State::Line,
                }
                None
            }
            State::Length {
                mut value,
                mut digits,
            } => {
                let mut i = 0;
                while i < input.len() {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'0'..=b'9' => {
                            digits += 1;
                            if digits > 10 {
                                *input = &input[i..];
                                return Some(self.fail("it is longer than 10 digits".into()));
                            }
                            value = value * 10 + u64::from(b - b'0');
                            if value > self.max as u64 {
                                *input = &input[i..];
                                self.state = State::Failed;
                                return Some(Err(FrameError::TooLarge {
                                    declared: value,
                                    max: self.max,
                                }));
                            }
                        }
                        b' ' => {
                            *input = &input[i..];
                            let want = value as usize;
                            self.buf.clear();
                            self.buf.reserve(want);
                            self.state = State::Counted { want };
                            return None;
                        }
                        other => {
                            *input = &input[i..];
                            return Some(self.fail(format!(
                                "{} after {digits} digit(s), expected a digit or SP",
                                show_byte(other)
                            )));
                        }
                    }
                }
                *input = &[];
                self.state = State::Length { value, digits };
                None
            }
            State::Counted { want } => {
                let take = (want - self.buf.len()).min(input.len());
                self.buf.extend_from_slice(&input[..take]);
                *input = &input[take..];
                if self.buf.len() == want {
                    self.state = State::Start;
                    return Some(Ok(std::mem::take(&mut self.buf)));
                }
                None
            }
            State::Line => {
                let end = input.iter().position(|&b| b == b'\n' || b == 0);
                let take = end.unwrap_or(input.len());
                if self.buf.len() + take > self.max {
                    self.buf = Vec::new();
                    match end {
                        Some(p) => {
                            *input = &input[p + 1..];
                            self.state = State::Start;
                        }
                        None => {
                            *input = &[];
                            self.state = State::SkipLine;
                        }
                    }
                    return Some(Err(FrameError::LineTooLong { max: self.max }));
                }
                self.buf.extend_from_slice(&input[..take]);
                match end {
                    Some(p) => {
                        *input = &input[p + 1..];
                        self.state = State::Start;
                        if self.buf.last() == Some(&b'\r') {
                            self.buf.pop();
                        }
                        if self.buf.is_empty() {
                            return None;
                        }
                        Some(Ok(std::mem::take(&mut self.buf)))
                    }
                    None => {
                        *input = &[];
                        None
                    }
                }
            }
            State::SkipLine => {
                match input.iter().position(|&b| b == b'\n' || b == 0) {
                    Some(p) => {
                        *input = &input[p + 1..];
                        self.state = State::Start;
                    }
                    None => *input = &[],
                }
                None
            }
        }
    }

    fn fail(&mut self, why: String) -> Result<Vec<u8>, FrameError> {
        self.state = State::Failed;
        self.buf = Vec::new();
        Err(FrameError::BadLength(why))
    }
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(d: &mut Decoder, chunks: &[&[u8]]) -> Vec<Result<String, String>> {
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, |r| {
                out.push(
                    r.map(|f| String::from_utf8_lossy(&f).into_owned())
                        .map_err(|e| e.kind().to_string()),
                )
            });
        }
        out
    }

    #[test]
    fn octet_counting_across_any_chunking() {
        let stream = b"10 <1>1 - - -17 <13>Mar  1 a b: c\n14 <1>1 - - - x y";
        for split in 0..stream.len() {
            let mut d = Decoder::new(Framing::Auto, 4096);
            let got = frames(&mut d, &[&stream[..split], &stream[split..]]);
            assert_eq!(
                got,
                vec![
                    Ok("<1>1 - - -".into()),
                    Ok("<13>Mar  1 a b: c".into()),
                    Ok("<1>1 - - - x y".into())
                ],
                "split at {split}"
            );
            assert_eq!(d.finish(), None);
        }
    }

    #[test]
    fn lines_with_crlf_nul_and_blank_lines() {
        let mut d = Decoder::new(Framing::Auto, 4096);
        let got = frames(&mut d, &[b"<13>a\r\n\n\n<13>b\0<1", b"3>c\n"]);
        assert_eq!(
            got,
            vec![Ok("<13>a".into()), Ok("<13>b".into()), Ok("<13>c".into())]
        );
        let mut d = Decoder::new(Framing::NonTransparent, 4096);
        assert_eq!(
            frames(&mut d, &[b"12 not a count\n"]),
            vec![Ok("12 not a count".into())]
        );
    }

    #[test]
    fn a_long_line_is_skipped_and_the_next_one_read() {
        let mut d = Decoder::new(Framing::Auto, 2048);
        let long = vec![b'x'; 5000];
        let got = frames(&mut d, &[b"<13>", &long, &long, b"\n<13>ok\n"]);
        assert_eq!(got, vec![Err("line_too_long".into()), Ok("<13>ok".into())]);
        assert!(d.buffered() == 0 && !d.is_failed());
    }

    #[test]
    fn bad_octet_counts_are_fatal() {
        for (input, kind) in [
            (&b"012 <13>x"[..], "length_malformed"),
            (b"0 ", "length_malformed"),
            (b"12x <13>x", "length_malformed"),
            (b"12\n", "length_malformed"),
            (b"99999999999 ", "length_too_large"),
            (b"123456789012345678901234567890", "length_too_large"),
            (b"2049 <13>", "length_too_large"),
        ] {
            let mut d = Decoder::new(Framing::Auto, 2048);
            let got = frames(&mut d, &[input, b"5 <1>x"]);
            assert_eq!(got, vec![Err(kind.to_string())], "{input:?}");
            assert!(d.is_failed());
        }
        let mut d = Decoder::new(Framing::OctetCounting, 2048);
        assert_eq!(
            frames(&mut d, &[b"<13>x\n"]),
            vec![Err("length_malformed".into())]
        );
        let d = Decoder::new(Framing::Auto, 1 << 30);
        assert_eq!(d.max_message(), MAX_MAX_MESSAGE);
        let mut d = Decoder::new(Framing::Auto, 10);
        assert_eq!(d.max_message(), MIN_MAX_MESSAGE);
        assert!(frames(&mut d, &[b"2048 "]).is_empty());
    }

    #[test]
    fn truncation_at_the_end_is_reported() {
        let mut d = Decoder::new(Framing::Auto, 2048);
        assert!(frames(&mut d, &[b"20 <13>short"]).is_empty());
        let e = d.finish().unwrap();
        assert_eq!(e.kind(), "truncated");
        assert!(e.to_string().contains("9 of 20 bytes"), "{e}");
        assert!(frames(&mut d, &[b"<13>no newline"]).is_empty());
        assert_eq!(d.finish().unwrap().kind(), "truncated");
        assert!(frames(&mut d, &[b"12"]).is_empty());
        assert_eq!(d.finish().unwrap().kind(), "truncated");
        assert_eq!(d.finish(), None);
        assert_eq!(d.stats().errors, 3);
    }

    #[test]
    fn a_lying_length_surfaces_at_the_next_frame() {
        // Says 30, has 10: the frame swallows the next frame's start, whose remains are no count.
        let mut d = Decoder::new(Framing::OctetCounting, 2048);
        let got = frames(&mut d, &[b"30 <13>a b: c10 <13>d e: f12 <13>g h: ij"]);
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert_eq!(got[1], Err("length_malformed".into()));
    }
}
