//! What one sender may cost: open connections per address and in all, and a token bucket of
//! events per second per address. The table of addresses is bounded, so a flood of spoofed
//! UDP sources cannot grow it without end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Addresses tracked at most; idle ones are forgotten first.
pub const MAX_TRACKED: usize = 16_384;

/// The limits (`[events.limits]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_connections_per_source: u32,
    pub max_connections: u32,
    pub max_message_bytes: usize,
    pub rate_per_source: u32,
    pub burst: u32,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub report_interval: Duration,
}

impl From<&vigil_config::EventLimits> for Limits {
    fn from(l: &vigil_config::EventLimits) -> Self {
        Limits {
            max_connections_per_source: l.max_connections_per_source,
            max_connections: l.max_connections,
            max_message_bytes: l.max_message_bytes,
            rate_per_source: l.rate_per_source,
            burst: l.burst,
            handshake_timeout: l.handshake_timeout,
            idle_timeout: l.idle_timeout,
            report_interval: l.report_interval,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        (&vigil_config::EventLimits::default()).into()
    }
}

/// Which limit a sender hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Its own open connections.
    ConnectionsPerSource,
    /// All open connections of the events role.
    Connections,
    /// Events per second.
    Rate,
    /// The table of addresses is full (many senders at once).
    Sources,
}

impl Over {
    pub fn as_str(self) -> &'static str {
        match self {
            Over::ConnectionsPerSource => "connections_per_source",
            Over::Connections => "connections",
            Over::Rate => "rate",
            Over::Sources => "sources",
        }
    }
}

#[derive(Debug)]
struct Entry {
    connections: u32,
    tokens: f64,
    refilled: Instant,
}

#[derive(Debug, Default)]
struct Table {
    map: HashMap<IpAddr, Entry>,
    connections: u32,
}

/// The per-address state of every listener of the events role.
#[derive(Debug)]
pub struct Sources {
    limits: Limits,
    table: Mutex<Table>,
}

/// An open connection, counted until dropped.
#[derive(Debug)]
pub struct Connection {
    sources: Arc<Sources>,
    ip: IpAddr,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut t = self.sources.lock();
        t.connections = t.connections.saturating_sub(1);
        if let Some(e) = t.map.get_mut(&self.ip) {
            e.connections = e.connections.saturating_sub(1);
        }
    }
}

impl Sources {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Sources {
            limits,
            table: Mutex::new(Table::default()),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of `ip`, made room for if need be.
    fn entry<'a>(&self, t: &'a mut Table, ip: IpAddr, now: Instant) -> Option<&'a mut Entry> {
        if !t.map.contains_key(&ip) {
            if t.map.len() >= MAX_TRACKED {
                let rate = f64::from(self.limits.rate_per_source);
                let burst = f64::from(self.limits.burst);
                // Forgotten: no connection and a bucket that has filled up again, so
                // forgetting changes nothing for that sender.
                t.map.retain(|_, e| {
                    e.connections > 0
                        || e.tokens + now.duration_since(e.refilled).as_secs_f64() * rate < burst
                });
                if t.map.len() >= MAX_TRACKED {
                    return None;
                }
            }
            t.map.insert(
                ip,
                Entry {
                    connections: 0,
                    tokens: f64::from(self.limits.burst),
                    refilled: now,
                },
            );
        }
        t.map.get_mut(&ip)
    }

    /// Counts a new connection from `ip`, or says which limit it is over.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Result<Connection, Over> {
        let mut t = self.lock();
        if t.connections >= self.limits.max_connections {
            return Err(Over::Connections);
        }
        let max = self.limits.max_connections_per_source;
        let e = self
            .entry(&mut t, ip, Instant::now())
            .ok_or(Over::Sources)?;
        if e.connections >= max {
            return Err(Over::ConnectionsPerSource);
        }
        e.connections += 1;
        t.connections += 1;
        Ok(Connection {
            sources: self.clone(),
            ip,
        })
    }

    /// Takes one event from `ip`'s bucket. `Err(wait)`: over its rate; a token is there again
    /// after `wait`.
    pub fn take(&self, ip: IpAddr) -> Result<(), (Over, Duration)> {
        let now = Instant::now();
        let rate = f64::from(self.limits.rate_per_source);
        let burst = f64::from(self.limits.burst);
        let mut t = self.lock();
        let Some(e) = self.entry(&mut t, ip, now) else {
            return Err((Over::Sources, Duration::from_secs(1)));
        };
        e.tokens = (e.tokens + now.duration_since(e.refilled).as_secs_f64() * rate).min(burst);
        e.refilled = now;
        if e.tokens >= 1.0 {
            e.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - e.tokens) / rate;
            Err((Over::Rate, Duration::from_secs_f64(wait.max(0.000_1))))
        }
    }

    /// Open connections in all.
    pub fn connections(&self) -> u32 {
        self.lock().connections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections_per_source: 2,
            max_connections: 3,
            rate_per_source: 10,
            burst: 5,
            ..Limits::default()
        }
    }

    #[test]
    fn connections_are_limited_per_source_and_in_all() {
        let s = Sources::new(limits());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = s.open(a).unwrap();
        let _a2 = s.open(a).unwrap();
        assert_eq!(s.open(a).unwrap_err(), Over::ConnectionsPerSource);
        let _b1 = s.open(b).unwrap();
        assert_eq!(s.open(b).unwrap_err(), Over::Connections);
        drop(a1);
        assert_eq!(s.connections(), 2);
        let _b2 = s.open(b).unwrap();
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let s = Sources::new(limits());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..5 {
            s.take(a).unwrap();
        }
        let (over, wait) = s.take(a).unwrap_err();
        assert_eq!(over, Over::Rate);
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        std::thread::sleep(wait + Duration::from_millis(5));
        s.take(a).unwrap();
        // Another sender has its own bucket.
        s.take("10.0.0.2".parse().unwrap()).unwrap();
    }

    #[test]
    fn the_table_is_bounded_and_forgets_idle_senders_first() {
        let s = Sources::new(Limits {
            burst: 1,
            rate_per_source: 4,
            ..Limits::default()
        });
        for i in 0..MAX_TRACKED as u32 {
            s.take(IpAddr::from(i.to_be_bytes())).unwrap();
        }
        // Every bucket is empty right now: a new sender finds no room.
        let new: IpAddr = "203.0.113.1".parse().unwrap();
        assert_eq!(s.take(new).unwrap_err().0, Over::Sources);
        // Once they have refilled (250 ms at 4/s), they are forgotten.
        std::thread::sleep(Duration::from_millis(300));
        s.take(new).unwrap();
        assert!(s.lock().map.len() < MAX_TRACKED);
    }
}
