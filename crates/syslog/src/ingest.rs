//! The whole path for one connection or datagram: frames → messages → recognised events, with
//! every error counted by kind. Sockets, TLS and the allow-lists are the listener's (a later
//! step); this is what it calls with the bytes it read.

use std::collections::BTreeMap;

use vigil_events::NewEvent;

use crate::event::{Origin, TimePolicy, to_event};
use crate::framing::{DEFAULT_MAX_MESSAGE, Decoder, FrameError, Framing};
use crate::mapping::CameraMap;
use crate::parse::{ParseError, parse};
use crate::recognize::recognize;

/// Settings of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub framing: Framing,
    /// Largest message in bytes (see [`crate::framing`] for the allowed range).
    pub max_message: usize,
    pub time: TimePolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            framing: Framing::Auto,
            max_message: DEFAULT_MAX_MESSAGE,
            time: TimePolicy::default(),
        }
    }
}

/// Why bytes did not become an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("datagram of {len} bytes is larger than the limit of {max}")]
    DatagramTooLarge { len: usize, max: usize },
}

impl IntakeError {
    /// A stable name for counting (`length_malformed`, `pri_out_of_range`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            IntakeError::Frame(e) => e.kind(),
            IntakeError::Parse(e) => e.kind(),
            IntakeError::DatagramTooLarge { .. } => "datagram_too_large",
        }
    }

    /// The connection must be closed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, IntakeError::Frame(e) if e.is_fatal())
    }
}

/// Counts of one connection or listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events produced.
    pub events: u64,
    /// Of those, recognised by kind (`syslog.dot1x_failure` …); generic ones are not listed.
    pub recognized: BTreeMap<&'static str, u64>,
    /// Errors by [`IntakeError::kind`].
    pub errors: BTreeMap<&'static str, u64>,
}

impl Stats {
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    fn error(&mut self, e: &IntakeError) {
        *self.errors.entry(e.kind()).or_default() += 1;
    }

    /// Adds another's counts (a closed connection's into its listener's).
    pub fn merge(&mut self, other: &Stats) {
        self.events += other.events;
        for (k, v) in &other.recognized {
            *self.recognized.entry(k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

fn message_to_event(
    bytes: &[u8],
    origin: &Origin<'_>,
    map: &CameraMap,
    time: &TimePolicy,
    stats: &mut Stats,
) -> Result<NewEvent, IntakeError> {
    let msg = parse(bytes, origin.received_us)?;
    let rec = recognize(&msg);
    if let Some(r) = &rec {
        *stats.recognized.entry(r.kind.as_str()).or_default() += 1;
    }
    stats.events += 1;
    Ok(to_event(&msg, rec.as_ref(), origin, map, time))
}

/// One syslog datagram (RFC 5426: one message, no framing).
pub fn datagram(
    bytes: &[u8],
    origin: &Origin<'_>,
    options: &Options,
    map: &CameraMap,
    stats: &mut Stats,
) -> Result<NewEvent, IntakeError> {
    let max = options.max_message.clamp(
        crate::framing::MIN_MAX_MESSAGE,
        crate::framing::MAX_MAX_MESSAGE,
    );
    let r = if bytes.len() > max {
        Err(IntakeError::DatagramTooLarge {
            len: bytes.len(),
            max,
        })
    } else {
        message_to_event(bytes, origin, map, &options.time, stats)
    };
    if let Err(e) = &r {
        stats.error(e);
    }
    r
}

/// One stream connection (TCP or TLS).
#[derive(Debug)]
pub struct Stream {
    decoder: Decoder,
    peer: String,
    time: TimePolicy,
    stats: Stats,
}

impl Stream {
    /// A connection from `peer` (its address as text).
    pub fn new(peer: impl Into<String>, options: &Options) -> Self {
        Stream {
            decoder: Decoder::new(options.framing, options.max_message),
            peer: peer.into(),
            time: options.time,
            stats: Stats::default(),
        }
    }

    /// Handles bytes read at `received_us`, handing each event or error to `sink` in order.
    /// After a fatal error ([`Stream::must_close`]) the rest is ignored.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        received_us: i64,
        map: &CameraMap,
        mut sink: impl FnMut(Result<NewEvent, IntakeError>),
    ) {
        let Stream {
            decoder,
            peer,
            time,
            stats,
        } = self;
        let origin = Origin { peer, received_us };
        decoder.feed(chunk, |frame| {
            let r = frame
                .map_err(IntakeError::from)
                .and_then(|bytes| message_to_event(&bytes, &origin, map, time, stats));
            if let Err(e) = &r {
                stats.error(e);
            }
            sink(r);
        });
    }

    /// The connection ended: a message cut short is an error.
    pub fn finish(&mut self) -> Option<IntakeError> {
        let e = self.decoder.finish().map(IntakeError::from);
        if let Some(e) = &e {
            self.stats.error(e);
        }
        e
    }

    pub fn must_close(&self) -> bool {
        self.decoder.is_failed()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn peer(&self) -> &str {
        &self.peer
    }
}
