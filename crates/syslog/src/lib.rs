//! vigil-syslog: syslog in. Switches, firewalls and NMSs send syslog; this crate turns the
//! bytes into Vigil events, and the port-security lines among them (802.1X and MAB failures,
//! port-security violations, MACsec failures, a camera's link going down) into typed events
//! that name the switch, the interface, the MAC address and, when the port or MAC is
//! mapped, the camera.
//!
//! ```text
//! bytes ─ framing::Decoder ─ frames ─ parse::parse ─ SyslogMessage ─ recognize::recognize
//!                                                           │                  │
//!                              mapping::CameraMap ── event::to_event ◄─────────┘
//!                                                           │
//!                                                     vigil_events::NewEvent
//! ```
//!
//! - [`framing`]: RFC 6587 octet counting and LF-terminated lines, streaming, bounded.
//! - [`parse`]: RFC 5424 and RFC 3164 with Cisco's variants.
//! - [`recognize`]: the vendor lines that become typed events.
//! - [`mapping`]: switch port or MAC → camera.
//! - [`event`]: the event, its severity rule and time policy.
//! - [`ingest`]: the above for one stream connection or one datagram, with error counts.
//! - [`iface`], [`mac`], [`time`]: normalisation and civil time.
//!
//! Sockets, TLS, allow-lists and rate limits belong to the listener (a later step), which
//! feeds [`ingest::Stream`] what it reads. The formats, vendor lines, limits and errors are
//! described for integrators in docs/syslog-in.md.
//!
//! # Why hand-written
//!
//! The two maintained crates were tried first (2026-12, against the inputs of this crate's
//! tests):
//!
//! - `syslog_rfc5424` 0.10 parses only RFC 5424 and **panics** on a truncated offset
//!   (`<1>1 2003-08-24T05:14:15+05:0` slices past the end in its timestamp parser), which a
//!   syslog port must never do on bytes from the network.
//! - `syslog_loose` 0.23 parses both formats but reads none of the Cisco forms switches send
//!   (`<189>123: *Mar  1 00:01:02.345 UTC: %DOT1X-5-FAIL: …` is "unable to parse"), answers
//!   every malformed message with the same fixed string (an integrator could not be told what
//!   is wrong), falls back to treating anything as a message, and takes chrono's local time
//!   zone for timestamps without one.
//!
//! The grammar is small (RFC 5424 §6, RFC 3164 §4, RFC 6587 §3.4) and a hand-written parser on
//! bytes gives per-field errors, never panics (fuzzed: `fuzz/fuzz_targets/syslog_*.rs`),
//! allocates in proportion to the input only, and has no dependency beyond `vigil-events` and
//! `thiserror`.

pub mod event;
pub mod framing;
pub mod iface;
pub mod ingest;
pub mod mac;
pub mod mapping;
pub mod parse;
pub mod recognize;
pub mod time;

pub use event::{Origin, TimePolicy, to_event};
pub use framing::{Decoder, FrameError, Framing};
pub use ingest::{IntakeError, Options, Stats, Stream, datagram};
pub use mapping::{CameraMap, MapError};
pub use parse::{ParseError, SyslogMessage, parse};
pub use recognize::{Kind, Recognition, recognize};
