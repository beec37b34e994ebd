//! vigil-intake: the events role's listeners. Other systems send events here: switches and
//! firewalls send syslog, access-control and alarm panels send generic events. Each input
//! is a socket with its admission rule, its per-sender limits and its parser; what comes out
//! is published on the event bus.
//!
//! ```text
//!            TLS 6514 (RFC 5425) ─┐                      ┌─ vigil_syslog::ingest::Stream ─┐
//!     plaintext TCP/UDP 514 (opt) ─┤  admission: Vigil-CA  │                                │
//!                                 ├─ client certificate ──┤                                ├─ EventBus::publish
//!            TLS 1234 (generic) ──┤  or allow-listed      │                                │
//!   plaintext TCP/UDP 1234 (opt) ─┘  address; limits      └─ generic::Lines → generic::parse┘
//!                                        │ refused / throttled / errors
//!                                        └─ report::Reporter (rate-limited events)
//! ```
//!
//! - [`allow`]: the allow-list of `[events] allowed_sources`.
//! - [`limits`]: connections per sender and in all, events per second per sender.
//! - [`report`]: refusals, throttling and input errors as events, themselves rate-limited.
//! - [`generic`]: the generic-event payload (a line of text or a JSON object).
//! - [`listen`]: the sockets, TLS, deadlines and the read loops.
//!
//! **Admission.** Over TLS a sender is let in with a client certificate issued by the Vigil
//! CA, or without one when its address is allow-listed (`require_client_cert` makes the
//! certificate mandatory for every sender). A plaintext listener (off unless configured)
//! takes allow-listed addresses only. Everyone else is refused and reported as
//! `security.event_source_refused`.
//!
//! **Limits.** Reads are at most 16 KiB at a time, messages at most `max_message_bytes`, and
//! a stream sender over its rate is not read from until its bucket has a token again (TCP
//! then slows the sender down); a datagram over the rate is dropped. A connection that
//! completes no message within `idle_timeout` (slowloris) or no TLS handshake within
//! `handshake_timeout` is closed. Publishing never blocks (the bus counts what it drops), and
//! the listeners run on a runtime of their own, apart from recording.
//!
//! The formats, kinds and examples for integrators are in docs/events-in.md; syslog's in
//! docs/syslog-in.md.

pub mod allow;
pub mod generic;
pub mod limits;
pub mod listen;
pub mod report;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub use allow::AllowList;
pub use limits::Limits;
pub use listen::{Intake, StartError, Tls};

/// One input of the events role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Input {
    /// Generic events over TLS (1234/tcp).
    GenericTls,
    /// Generic events over plaintext TCP (opt-in).
    GenericTcp,
    /// Generic events over UDP (opt-in, 1234/udp).
    GenericUdp,
    /// Syslog over TLS (RFC 5425, 6514/tcp).
    SyslogTls,
    /// Syslog over plaintext TCP (RFC 6587, opt-in).
    SyslogTcp,
    /// Syslog over UDP (RFC 5426, opt-in).
    SyslogUdp,
}

impl Input {
    pub const ALL: [Input; 6] = [
        Input::GenericTls,
        Input::GenericTcp,
        Input::GenericUdp,
        Input::SyslogTls,
        Input::SyslogTcp,
        Input::SyslogUdp,
    ];

    /// Its name in reports (`listener` attribute) and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Input::GenericTls => "generic_tls",
            Input::GenericTcp => "generic_tcp",
            Input::GenericUdp => "generic_udp",
            Input::SyslogTls => "syslog_tls",
            Input::SyslogTcp => "syslog_tcp",
            Input::SyslogUdp => "syslog_udp",
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Input::GenericTls | Input::SyslogTls)
    }

    pub fn is_udp(self) -> bool {
        matches!(self, Input::GenericUdp | Input::SyslogUdp)
    }

    pub fn is_syslog(self) -> bool {
        matches!(self, Input::SyslogTls | Input::SyslogTcp | Input::SyslogUdp)
    }

    /// `tls`, `tcp` or `udp`.
    pub fn transport(self) -> &'static str {
        if self.is_tls() {
            "tls"
        } else if self.is_udp() {
            "udp"
        } else {
            "tcp"
        }
    }
}

/// What the listeners are to do.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where each input listens; an input not listed is off.
    pub bind: BTreeMap<Input, SocketAddr>,
    pub allowed: AllowList,
    /// Every TLS sender needs a Vigil-CA client certificate, allow-listed or not.
    pub require_client_cert: bool,
    pub limits: Limits,
    /// When to believe senders' clocks.
    pub time: vigil_syslog::TimePolicy,
}

impl Settings {
    /// The settings of `[events]` (already validated by `vigil_config`). Empty when the role
    /// is disabled.
    pub fn from_config(e: &vigil_config::EventsConfig) -> Result<Settings, String> {
        // The configuration states which inputs listen, for this server and for the port
        // manifest alike (`EventsConfig::inputs`).
        let mut bind = BTreeMap::new();
        for i in e.inputs() {
            let input = match i.setting {
                "events.tcp" => Input::GenericTls,
                "events.tcp_plain" => Input::GenericTcp,
                "events.udp" => Input::GenericUdp,
                "events.syslog_tls" => Input::SyslogTls,
                "events.syslog_tcp" => Input::SyslogTcp,
                "events.syslog_udp" => Input::SyslogUdp,
                other => return Err(format!("{other} is not an event input this server has")),
            };
            bind.insert(input, i.listener.bind);
        }
        Ok(Settings {
            bind,
            allowed: AllowList::parse(&e.allowed_sources)?,
            require_client_cert: e.require_client_cert,
            limits: (&e.limits).into(),
            time: vigil_syslog::TimePolicy::default(),
        })
    }
}

/// Counters of one input.
#[derive(Debug, Default)]
pub struct InputStats {
    /// Connections accepted (TCP) or datagrams received (UDP).
    pub accepted: AtomicU64,
    /// Senders refused: not allow-listed, no or a bad client certificate.
    pub refused: AtomicU64,
    /// Connections refused or events delayed or dropped for a limit.
    pub throttled: AtomicU64,
    /// TLS handshakes that failed or timed out (certificate refusals excluded).
    pub handshake_failed: AtomicU64,
    /// Connections closed for sending no complete message within the idle timeout.
    pub timed_out: AtomicU64,
    /// Events published.
    pub events: AtomicU64,
    /// Input errors, by kind (`line_too_long`, `invalid_json`, `pri_out_of_range`, …).
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl InputStats {
    pub fn error(&self, kind: &'static str) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    pub fn errors(&self) -> BTreeMap<&'static str, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn errors_total(&self) -> u64 {
        self.errors().values().sum()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
