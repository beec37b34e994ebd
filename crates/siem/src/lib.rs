//! vigil-siem: events forwarded to SIEM collectors, nothing lost (docs/siem.md).
//!
//! - [`format`]: an event as an RFC 5424 message (structured data with the event's fields
//!   and a sequence number; text or CEF), framed by octet counting (RFC 5425).
//! - [`spool`]: the on-disk spool every forwarded event passes through: numbered, synced,
//!   bounded, recovered after a crash.
//! - [`transport`]: TLS to a collector (rustls, aws-lc-rs, TLS 1.2+), its certificate checked
//!   against a CA file or the system store and its name; optional client certificate.
//! - [`sender`]: one per collector: sends the spool in order, decides what was delivered,
//!   reconnects with back-off.
//! - [`forwarder`]: [`SiemForwarder::start`] subscribes to the event bus, selects what to
//!   forward, spools it and runs the senders.
//!
//! Formats, delivery semantics and configuration: docs/siem.md.

pub mod format;
pub mod forwarder;
pub mod sender;
pub mod spool;
pub mod transport;

pub use format::{Formatter, Payload};
pub use forwarder::{
    CollectorStatus, ForwarderStats, Selection, SiemError, SiemForwarder, SiemMonitor,
};
pub use spool::{Record, Spool};
