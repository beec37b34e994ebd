//! Intrusion detection per source address, with the semantics of the MOBOTIX camera web server
//! (`seeds/004`): a notification threshold (minimum 5), a timeout that groups attempts into one
//! window, a deadtime between two alerts (0 = alert on every failed attempt) and blocking of
//! the offending address (until restart or for a set time); allow-listed addresses are never
//! blocked.
//!
//! This module owns only in-memory state, so [`IntrusionDetector::check`] is one hash-map
//! lookup under a read lock: no database, no hashing. Persisting blocks, the aggregated access
//! log and audit entries is done by [`crate::Access`], which calls into this module.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// Lowest notification threshold accepted (the camera's minimum too).
pub const MIN_NOTIFICATION_THRESHOLD: u32 = 5;

/// What happens to an address that reaches the notification threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockPolicy {
    /// Alert only.
    Off,
    /// Block until Vigil restarts (the camera's behaviour).
    UntilRestart,
    /// Block for this long (survives a restart).
    For(#[serde(with = "duration_secs")] Duration),
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Intrusion detection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdsConfig {
    /// Failed attempts from one address (within `timeout` of each other) that raise an alert
    /// and block the address. At least [`MIN_NOTIFICATION_THRESHOLD`]; default 10.
    pub notification_threshold: u32,
    /// Attempts closer together than this belong to one window (and one access-log entry per
    /// user and address). Default 60 minutes.
    pub timeout: Duration,
    /// Minimum time between two alerts for one address; zero alerts on every failed attempt.
    /// Default 60 minutes.
    pub deadtime: Duration,
    pub block: BlockPolicy,
    /// Never blocked (still counted and alerted).
    pub allow_list: Vec<IpNet>,
    /// IPv6 addresses are counted and blocked per prefix of this length, since one host
    /// usually holds a whole /64. Default 64; 128 treats every address alone.
    pub ipv6_prefix_len: u8,
    /// Upper bound on addresses tracked at once, so a flood from many addresses cannot
    /// exhaust memory; the stalest entries are dropped first. Default 100,000.
    pub max_tracked: usize,
}

impl Default for IdsConfig {
    fn default() -> Self {
        IdsConfig {
            notification_threshold: 10,
            timeout: Duration::from_secs(60 * 60),
            deadtime: Duration::from_secs(60 * 60),
            block: BlockPolicy::UntilRestart,
            allow_list: Vec::new(),
            ipv6_prefix_len: 64,
            max_tracked: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdsConfigError {
    #[error(
        "intrusion detection notification threshold {0} is below the minimum of 5 failed attempts (fewer would lock out users who mistype); set it to 5 or more (default 10)"
    )]
    ThresholdTooLow(u32),
    #[error("intrusion detection timeout must be at least 1 second (default 60 minutes)")]
    TimeoutZero,
    #[error(
        "intrusion detection block duration must be at least 1 second; use until-restart or off instead of 0"
    )]
    BlockDurationZero,
    #[error("ipv6_prefix_len {0} is out of range; use 32..=128 (default 64)")]
    Ipv6Prefix(u8),
    #[error("max_tracked must be at least 1 (default 100000)")]
    MaxTrackedZero,
}

impl IdsConfig {
    pub fn validate(&self) -> Result<(), IdsConfigError> {
        if self.notification_threshold < MIN_NOTIFICATION_THRESHOLD {
            return Err(IdsConfigError::ThresholdTooLow(self.notification_threshold));
        }
        if self.timeout < Duration::from_secs(1) {
            return Err(IdsConfigError::TimeoutZero);
        }
        if let BlockPolicy::For(d) = self.block
            && d < Duration::from_secs(1)
        {
            return Err(IdsConfigError::BlockDurationZero);
        }
        if !(32..=128).contains(&self.ipv6_prefix_len) {
            return Err(IdsConfigError::Ipv6Prefix(self.ipv6_prefix_len));
        }
        if self.max_tracked == 0 {
            return Err(IdsConfigError::MaxTrackedZero);
        }
        Ok(())
    }

    pub fn is_allow_listed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow_list.iter().any(|n| n.contains(&ip))
    }
}

/// An allow-list entry that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowListError {
    #[error(
        "allow-list entry {index} {entry:?} is not an IP address or CIDR network ({reason}); write e.g. 192.168.1.0/24, 10.0.0.5 or fd00::/8"
    )]
    Invalid {
        index: usize,
        entry: String,
        reason: String,
    },
    #[error(
        "allow-list entry {index} {entry:?} covers every address, which would disable blocking entirely; list the trusted networks, or set the block policy to off"
    )]
    Everything { index: usize, entry: String },
    #[error("allow-list has {0} entries; at most 4096 are accepted")]
    TooMany(usize),
}

/// Parses allow-list entries: CIDR networks (`10.0.0.0/8`, `fd00::/8`) or single addresses.
/// Host bits below the prefix are cleared (`10.1.2.3/8` means `10.0.0.0/8`).
pub fn parse_allow_list<S: AsRef<str>>(entries: &[S]) -> Result<Vec<IpNet>, AllowListError> {
    if entries.len() > 4096 {
        return Err(AllowListError::TooMany(entries.len()));
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, e)| parse_allow_entry(index, e.as_ref()))
        .collect()
}

fn parse_allow_entry(index: usize, raw: &str) -> Result<IpNet, AllowListError> {
    let entry: String = raw.chars().take(64).collect();
    let s = raw.trim();
    let net = if s.contains('/') {
        s.parse::<IpNet>().map_err(|e| AllowListError::Invalid {
            index,
            entry: entry.clone(),
            reason: e.to_string(),
        })?
    } else {
        let ip = s.parse::<IpAddr>().map_err(|e| AllowListError::Invalid {
            index,
            entry: entry.clone(),
            reason: e.to_string(),
        })?;
        IpNet::from(ip)
    };
    let net = net.trunc();
    if net.prefix_len() == 0 {
        return Err(AllowListError::Everything { index, entry });
    }
    Ok(net)
}

/// v4-mapped IPv6 (`::ffff:1.2.3.4`, as a dual-stack socket reports IPv4 peers) is IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key an address is counted and blocked under: itself for IPv4, its prefix for IPv6.
pub(crate) fn tracking_key(ip: IpAddr, ipv6_prefix_len: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) if ipv6_prefix_len < 128 => {
            let bits = u128::from(v6);
            let mask = u128::MAX << (128 - u32::from(ipv6_prefix_len));
            IpAddr::V6((bits & mask).into())
        }
        other => other,
    }
}

/// A refused request from a blocked address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("address {addr} is blocked after repeated failed logins{}", match until { Some(t) => format!(" until {t}"), None => " until the server restarts".to_owned() })]
pub struct Blocked {
    pub addr: IpAddr,
    /// `None`: until restart (or until an administrator unblocks it).
    pub until: Option<Timestamp>,
}

/// One blocked address (or IPv6 prefix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// The tracking key: the address, or the IPv6 prefix's first address.
    pub addr: IpAddr,
    pub since: Timestamp,
    /// `None`: until restart.
    pub until: Option<Timestamp>,
    pub failures: u32,
}

/// An address with failed attempts in its current window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchInfo {
    pub addr: IpAddr,
    pub failures: u32,
    pub first: Timestamp,
    pub last: Timestamp,
    pub last_alert: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdsStatus {
    pub blocked: Vec<BlockInfo>,
    pub watched: Vec<WatchInfo>,
}

/// An intrusion alert, as sent to every [`AlertSink`]. The webhook payload is built from it by
/// [`crate::webhook::alert_payload`] (RFC 3339 times, a `type` and `version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The address of the last failed attempt.
    pub addr: IpAddr,
    /// Failed attempts in the current window.
    pub failures: u32,
    pub first: Timestamp,
    pub last: Timestamp,
    /// User names tried in this window (at most 8, most recent last).
    pub usernames: Vec<String>,
    /// Whether this alert came with a block of the address.
    pub blocked: bool,
    pub blocked_until: Option<Timestamp>,
    /// The address is on the allow-list, so it is alerted on but never blocked.
    pub allow_listed: bool,
}

/// Receives intrusion alerts. `send` is called on the login path, so it must not block: hand
/// the alert to a queue or a task.
pub trait AlertSink: Send + Sync {
    fn send(&self, alert: &Alert);
}

/// Writes alerts to the log (`tracing`, target `vigil::ids`, level WARN); the log goes on to
/// syslog/SIEM with the rest.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl AlertSink for TracingSink {
    fn send(&self, a: &Alert) {
        tracing::warn!(
            target: "vigil::ids",
            addr = %a.addr,
            failures = a.failures,
            first = %a.first,
            last = %a.last,
            usernames = ?a.usernames,
            blocked = a.blocked,
            allow_listed = a.allow_listed,
            "intrusion detection: repeated failed logins"
        );
    }
}

/// Calls a closure per alert, e.g. one that pushes to a `tokio::sync::mpsc` channel read by a
/// task that POSTs the alert's JSON to a webhook.
pub struct FnSink<F>(pub F);

impl<F: Fn(&Alert) + Send + Sync> AlertSink for FnSink<F> {
    fn send(&self, alert: &Alert) {
        (self.0)(alert)
    }
}

/// Queues alerts on a bounded std channel; a full queue drops the alert (and logs that) rather
/// than stalling logins.
pub struct ChannelSink(std::sync::mpsc::SyncSender<Alert>);

impl ChannelSink {
    pub fn new(capacity: usize) -> (Self, std::sync::mpsc::Receiver<Alert>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        (ChannelSink(tx), rx)
    }
}

impl AlertSink for ChannelSink {
    fn send(&self, alert: &Alert) {
        if self.0.try_send(alert.clone()).is_err() {
            tracing::error!(target: "vigil::ids", addr = %alert.addr, "alert queue full or closed; alert dropped");
        }
    }
}

/// Sends every alert to several sinks.
#[derive(Default)]
pub struct MultiSink(pub Vec<Arc<dyn AlertSink>>);

impl AlertSink for MultiSink {
    fn send(&self, alert: &Alert) {
        for s in &self.0 {
            s.send(alert);
        }
    }
}

#[derive(Debug, Clone)]
struct Counter {
    first: Timestamp,
    last: Timestamp,
    failures: u32,
    since_alert: u32,
    last_alert: Option<Timestamp>,
    usernames: Vec<String>,
}

/// What one failed attempt led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Failed attempts from this address in the current window, this one included.
    pub failures: u32,
    /// Set when an alert is due; already sent to the sink by [`crate::Access`].
    pub alert: Option<Alert>,
    /// Set when this attempt blocked the address.
    pub blocked: Option<BlockInfo>,
}

/// In-memory per-address failure counters and the block table.
#[derive(Debug)]
pub struct IntrusionDetector {
    /// Swapped whole by [`IntrusionDetector::set_config`]; readers clone the `Arc` and never
    /// hold this lock while taking another.
    config: RwLock<Arc<IdsConfig>>,
    blocks: BlockTable,
    counters: Mutex<HashMap<IpAddr, Counter>>,
    /// Failed attempts since this process started (the `vigil_login_failures_total` metric,
    /// docs/metrics.md); the windows above forget, this does not.
    failures_total: std::sync::atomic::AtomicU64,
}

/// The blocks in force, with a flag readers can test without touching the lock: every
/// request checks its address, and almost always no address is blocked at all.
#[derive(Debug, Default)]
struct BlockTable {
    map: RwLock<HashMap<IpAddr, BlockInfo>>,
    any: AtomicBool,
}

/// Write access to the block table; keeps [`BlockTable::any`] true to the map when dropped.
struct BlocksWrite<'a> {
    map: RwLockWriteGuard<'a, HashMap<IpAddr, BlockInfo>>,
    any: &'a AtomicBool,
}

impl std::ops::Deref for BlocksWrite<'_> {
    type Target = HashMap<IpAddr, BlockInfo>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for BlocksWrite<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

impl Drop for BlocksWrite<'_> {
    fn drop(&mut self) {
        // Still under the write lock, so no other writer can interleave.
        self.any.store(!self.map.is_empty(), Ordering::Release);
    }
}

impl BlockTable {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<IpAddr, BlockInfo>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> BlocksWrite<'_> {
        BlocksWrite {
            map: self.map.write().unwrap_or_else(|e| e.into_inner()),
            any: &self.any,
        }
    }
}

impl IntrusionDetector {
    pub fn new(config: IdsConfig) -> Result<Self, IdsConfigError> {
        config.validate()?;
        Ok(IntrusionDetector {
            config: RwLock::new(Arc::new(config)),
            blocks: BlockTable::default(),
            counters: Mutex::new(HashMap::new()),
            failures_total: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The settings in effect.
    pub fn config(&self) -> Arc<IdsConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the settings at runtime (no restart). Counting, alerts and blocking use the
    /// new values from the next attempt on; blocks already in force keep their end time,
    /// except that addresses now on the allow-list are unblocked at once. When the IPv6
    /// prefix length changes, blocks are re-keyed and the failure counters start afresh.
    pub fn set_config(&self, config: IdsConfig) -> Result<(), IdsConfigError> {
        config.validate()?;
        // Lock order everywhere: counters, then blocks; the config lock is innermost.
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut blocks = self.blocks.write();
        let mut current = self.config.write().unwrap_or_else(|e| e.into_inner());
        if current.ipv6_prefix_len != config.ipv6_prefix_len {
            counters.clear();
            *blocks = blocks
                .drain()
                .map(|(_, b)| {
                    let key = tracking_key(b.addr, config.ipv6_prefix_len);
                    (key, BlockInfo { addr: key, ..b })
                })
                .collect();
        }
        blocks.retain(|_, b| !config.is_allow_listed(b.addr));
        *current = Arc::new(config);
        Ok(())
    }

    /// Refuses a blocked address. One hash-map lookup under a read lock: call it before any
    /// password hashing or database work.
    pub fn check(&self, ip: IpAddr, now: Timestamp) -> Result<(), Blocked> {
        // A block is published under the write lock before the flag is set, so a check that
        // starts after `record_failure` returned sees it.
        if !self.blocks.any.load(Ordering::Acquire) {
            return Ok(());
        }
        let key = tracking_key(ip, self.config().ipv6_prefix_len);
        let blocks = self.blocks.read();
        match blocks.get(&key) {
            Some(b) if b.until.is_none_or(|u| now < u) => Err(Blocked {
                addr: ip,
                until: b.until,
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt from `ip` for `username` and decides on alert and block.
    pub fn record_failure(&self, ip: IpAddr, username: &str, now: Timestamp) -> FailureOutcome {
        self.failures_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cfg = self.config();
        let key = tracking_key(ip, cfg.ipv6_prefix_len);
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        {
            // A block that ran out starts the address afresh: it needs a full threshold of
            // new failures to be blocked again.
            let mut blocks = self.blocks.write();
            if blocks
                .get(&key)
                .is_some_and(|b| b.until.is_some_and(|u| now >= u))
            {
                blocks.remove(&key);
                counters.remove(&key);
            }
        }
        if !counters.contains_key(&key) && counters.len() >= cfg.max_tracked {
            evict(&mut counters, cfg.timeout, now, cfg.max_tracked);
        }
        let c = counters.entry(key).or_insert_with(|| Counter {
            first: now,
            last: now,
            failures: 0,
            since_alert: 0,
            last_alert: None,
            usernames: Vec::new(),
        });
        if now.since(c.last) > cfg.timeout {
            c.first = now;
            c.failures = 0;
            c.since_alert = 0;
            c.usernames.clear();
        }
        c.failures = c.failures.saturating_add(1);
        c.since_alert = c.since_alert.saturating_add(1);
        c.last = now;
        let name: String = username.chars().take(64).collect();
        c.usernames.retain(|u| *u != name);
        c.usernames.push(name);
        if c.usernames.len() > 8 {
            c.usernames.remove(0);
        }

        let allow_listed = cfg.is_allow_listed(ip);
        let mut blocked = None;
        if c.failures >= cfg.notification_threshold && !allow_listed {
            let until = match cfg.block {
                BlockPolicy::Off => None,
                BlockPolicy::UntilRestart => Some(None),
                BlockPolicy::For(d) => Some(Some(now.plus(d))),
            };
            if let Some(until) = until {
                let mut blocks = self.blocks.write();
                if let std::collections::hash_map::Entry::Vacant(slot) = blocks.entry(key) {
                    let info = BlockInfo {
                        addr: key,
                        since: now,
                        until,
                        failures: c.failures,
                    };
                    slot.insert(info.clone());
                    blocked = Some(info);
                }
            }
        }

        let due = if cfg.deadtime.is_zero() {
            true
        } else {
            c.since_alert >= cfg.notification_threshold
                && c.last_alert.is_none_or(|t| now.since(t) >= cfg.deadtime)
        };
        // A block is always worth telling, even inside the deadtime.
        let alert = (due || blocked.is_some()).then(|| {
            c.since_alert = 0;
            c.last_alert = Some(now);
            Alert {
                addr: ip,
                failures: c.failures,
                first: c.first,
                last: c.last,
                usernames: c.usernames.clone(),
                blocked: blocked.is_some(),
                blocked_until: blocked.as_ref().and_then(|b| b.until),
                allow_listed,
            }
        });
        FailureOutcome {
            failures: c.failures,
            alert,
            blocked,
        }
    }

    /// Lifts the block on `ip` (or its IPv6 prefix) and forgets its failures. Returns the
    /// block that was lifted, if any.
    pub fn unblock(&self, ip: IpAddr) -> Option<BlockInfo> {
        let key = tracking_key(ip, self.config().ipv6_prefix_len);
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.remove(&key);
        self.blocks.write().remove(&key)
    }

    /// Puts a block back in place (used when timed blocks are reloaded at start-up and when
    /// blocks are synchronised from the database).
    pub fn restore_block(&self, info: BlockInfo) {
        let cfg = self.config();
        let key = tracking_key(info.addr, cfg.ipv6_prefix_len);
        if cfg.is_allow_listed(info.addr) {
            return;
        }
        self.blocks
            .write()
            .insert(key, BlockInfo { addr: key, ..info });
    }

    /// Replaces the block table (after the database changed under us, e.g. `vigil ids unblock`
    /// from another process).
    pub(crate) fn replace_blocks(&self, infos: Vec<BlockInfo>) {
        let cfg = self.config();
        let mut map = HashMap::with_capacity(infos.len());
        for info in infos {
            if cfg.is_allow_listed(info.addr) {
                continue;
            }
            let key = tracking_key(info.addr, cfg.ipv6_prefix_len);
            map.insert(key, BlockInfo { addr: key, ..info });
        }
        // Lock order everywhere: counters, then blocks.
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut blocks = self.blocks.write();
        // An address unblocked elsewhere starts afresh here too.
        for k in blocks.keys() {
            if !map.contains_key(k) {
                counters.remove(k);
            }
        }
        *blocks = map;
    }

    /// Failed attempts counted since this process started, allow-listed addresses included.
    pub fn failures_total(&self) -> u64 {
        self.failures_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Blocks in force and addresses with failures in their current window.
    pub fn status(&self, now: Timestamp) -> IdsStatus {
        let timeout = self.config().timeout;
        let mut blocked: Vec<BlockInfo> = self
            .blocks
            .read()
            .values()
            .filter(|b| b.until.is_none_or(|u| now < u))
            .cloned()
            .collect();
        blocked.sort_by_key(|b| (b.since, b.addr));
        let mut watched: Vec<WatchInfo> = self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, c)| now.since(c.last) <= timeout)
            .map(|(addr, c)| WatchInfo {
                addr: *addr,
                failures: c.failures,
                first: c.first,
                last: c.last,
                last_alert: c.last_alert,
            })
            .collect();
        watched.sort_by_key(|w| (w.first, w.addr));
        IdsStatus { blocked, watched }
    }
}

/// Drops counters whose window is over; if none are, the stalest one.
fn evict(counters: &mut HashMap<IpAddr, Counter>, timeout: Duration, now: Timestamp, max: usize) {
    counters.retain(|_, c| now.since(c.last) <= timeout);
    if counters.len() >= max
        && let Some(oldest) = counters.iter().min_by_key(|(_, c)| c.last).map(|(k, _)| *k)
    {
        counters.remove(&oldest);
    }
}
