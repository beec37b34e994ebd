//! Reports about senders as events: refused sources (`security.event_source_refused`),
//! throttled ones (`events.source_throttled`) and input errors (`events.input_errors`).
//! Each is itself rate-limited, so that a sender cannot use Vigil's reports about it to flood
//! the event store: one report per sender, subject, listener and interval (what happened in
//! between is counted in the next report's `suppressed`), and at most
//! [`MAX_REPORTS_PER_INTERVAL`] reports per interval from all senders together.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_events::{EventBus, NewEvent};

/// Reports per interval from all senders together.
pub const MAX_REPORTS_PER_INTERVAL: u32 = 32;
/// (sender, subject) pairs remembered at most.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Refused,
    Throttled,
    InputErrors,
}

#[derive(Debug)]
struct Entry {
    last: Instant,
    suppressed: u64,
}

#[derive(Debug)]
struct State {
    entries: HashMap<(IpAddr, Subject, &'static str), Entry>,
    window: Instant,
    in_window: u32,
}

/// Publishes reports on the bus, rate-limited.
pub struct Reporter {
    bus: Arc<EventBus>,
    interval: Duration,
    state: Mutex<State>,
    /// Reports published.
    pub published: AtomicU64,
    /// Reports held back by the limits.
    pub suppressed: AtomicU64,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    pub fn new(bus: Arc<EventBus>, interval: Duration) -> Self {
        Reporter {
            bus,
            interval,
            state: Mutex::new(State {
                entries: HashMap::new(),
                window: Instant::now(),
                in_window: 0,
            }),
            published: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    pub fn server(&self) -> &str {
        self.bus.server()
    }

    /// Reports `ip`'s `subject` on `listener` unless it was reported within the interval;
    /// `make` gets how many were held back since the last report and builds the event.
    pub fn report(
        &self,
        ip: IpAddr,
        subject: Subject,
        listener: &'static str,
        make: impl FnOnce(u64) -> NewEvent,
    ) {
        let key = (ip, subject, listener);
        let now = Instant::now();
        let suppressed = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if now.duration_since(s.window) >= self.interval {
                s.window = now;
                s.in_window = 0;
            }
            let interval = self.interval;
            if s.entries.len() >= MAX_ENTRIES && !s.entries.contains_key(&key) {
                s.entries
                    .retain(|_, e| now.duration_since(e.last) < interval || e.suppressed > 0);
            }
            let recent = s
                .entries
                .get(&key)
                .is_some_and(|e| now.duration_since(e.last) < interval);
            if recent || s.in_window >= MAX_REPORTS_PER_INTERVAL {
                if let Some(e) = s.entries.get_mut(&key) {
                    e.suppressed += 1;
                } else if s.entries.len() < MAX_ENTRIES {
                    // Not reported yet: the next report after the window says so.
                    s.entries.insert(
                        key,
                        Entry {
                            last: now.checked_sub(interval).unwrap_or(now),
                            suppressed: 1,
                        },
                    );
                }
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            s.in_window += 1;
            let e = s.entries.entry(key).or_insert(Entry {
                last: now,
                suppressed: 0,
            });
            e.last = now;
            std::mem::take(&mut e.suppressed)
        };
        let event = make(suppressed).attribute("suppressed", suppressed.to_string());
        if let Err(e) = self.bus.publish(event) {
            tracing::warn!(error = %e, "a report about an event source was refused");
        } else {
            self.published.fetch_add(1, Ordering::Relaxed);
        }
    }
}
