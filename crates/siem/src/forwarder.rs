//! The forwarder: subscribes to the event bus, selects what goes to the SIEM, spools it, and
//! runs one sender per collector.
//!
//! Selection: every event of the `security` category (the audit log's entries, logins,
//! intrusion detection, certificates) and of the `alarm` category, every event at least as
//! severe as `min_severity` (default `warning`), and the forwarder's own `siem.*` events.
//!
//! Nothing stored is skipped: the spooler remembers the newest event id it has looked at.
//! When the live subscription reports missed events, when the spool could not be written,
//! and at start-up after a restart or a crash, it catches up from the event store by id
//! before taking live events again. A new spool starts after the newest stored event
//! (earlier events are not sent).
//!
//! Threads: the spooler has its own thread (it waits on fsync); the senders share one more
//! thread with a single-threaded tokio runtime, so forwarding never competes with recording
//! or the API for their runtimes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;
use vigil_config::{SiemConfig, SiemFormat, split_target};
use vigil_events::{Category, Event, EventBus, EventQuery, Live, NewEvent, Severity, SourceKind};

use crate::format::{Formatter, Payload};
use crate::sender::{self, Collector, SenderStats};
use crate::spool::{Loss, Spool, SpoolError};
use crate::transport::{Endpoint, TlsSetupError};

/// Events taken from the store per query when catching up.
const CATCH_UP_PAGE: i64 = 1000;
/// Live events appended (and synced) together at most.
const APPEND_BATCH: usize = 1024;
/// After a failed spool write, the spooler waits this long and catches up.
const RETRY: Duration = Duration::from_secs(1);

/// Why forwarding could not start.
#[derive(Debug, thiserror::Error)]
pub enum SiemError {
    #[error("SIEM collector {collector:?}: {source}")]
    Tls {
        collector: String,
        source: TlsSetupError,
    },
    #[error("SIEM collector {collector:?}: target {target:?} {why}")]
    Target {
        collector: String,
        target: String,
        why: String,
    },
    #[error("SIEM settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("SIEM forwarding: {0}")]
    Io(#[from] std::io::Error),
}

/// Which events are forwarded.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    /// RFC 5424 code: events of other categories at least this severe (code at most this).
    pub min_severity: u8,
}

impl Selection {
    pub fn selects(&self, e: &Event) -> bool {
        let ev = &e.event;
        matches!(ev.category, Category::Security | Category::Alarm)
            || ev.severity.code() <= self.min_severity
            || (ev.source.kind == SourceKind::Vigil && ev.kind.starts_with("siem."))
    }
}

/// Counters of the forwarder.
#[derive(Debug, Default)]
pub struct ForwarderStats {
    /// Events written to the spool.
    pub spooled: AtomicU64,
    /// Events taken from the store when catching up.
    pub caught_up: AtomicU64,
    /// Events lost (spool limit or damage), summed over collectors.
    pub lost: AtomicU64,
    pub spool_errors: AtomicU64,
}

/// The state of one collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorStatus {
    pub name: String,
    pub connected: bool,
    /// The last sequence number delivered.
    pub delivered_seq: u64,
    /// Spooled records it has not received yet.
    pub backlog: u64,
    pub sent: u64,
    pub resent: u64,
    pub connects: u64,
    pub last_error: Option<String>,
    /// When the store received the oldest event it has not received yet (Unix µs; see
    /// [`Spool::oldest_pending_us`]).
    pub oldest_pending_us: Option<i64>,
}

/// What a running forwarder is doing, for status pages and metrics; cheap to clone, and
/// still readable (frozen) after the forwarder stopped.
#[derive(Clone)]
pub struct SiemMonitor {
    spool: Arc<Spool>,
    stats: Arc<ForwarderStats>,
    senders: Arc<Vec<(String, Arc<SenderStats>)>>,
}

impl std::fmt::Debug for SiemMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiemMonitor")
            .field("spool", &self.spool)
            .finish_non_exhaustive()
    }
}

impl SiemMonitor {
    pub fn stats(&self) -> &ForwarderStats {
        &self.stats
    }

    /// Bytes the spool takes on disk.
    pub fn spool_bytes(&self) -> u64 {
        self.spool.bytes()
    }

    /// Each collector's state.
    pub fn status(&self) -> Vec<CollectorStatus> {
        self.senders
            .iter()
            .map(|(name, s)| CollectorStatus {
                name: name.clone(),
                connected: s.connected.load(Ordering::Relaxed),
                delivered_seq: s.delivered_seq.load(Ordering::Relaxed),
                backlog: self.spool.backlog(name),
                sent: s.sent.load(Ordering::Relaxed),
                resent: s.resent.load(Ordering::Relaxed),
                connects: s.connects.load(Ordering::Relaxed),
                last_error: s
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
                oldest_pending_us: self.spool.oldest_pending_us(name),
            })
            .collect()
    }
}

/// Forwarding to the configured collectors; stops when dropped.
pub struct SiemForwarder {
    monitor: SiemMonitor,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SiemForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiemForwarder")
            .field("spool", &self.monitor.spool)
            .finish_non_exhaustive()
    }
}

/// The spool directory in a data directory.
pub fn spool_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("siem").join("spool")
}

/// The collectors of `config`, with TLS set up, for the server `hostname`.
pub fn collectors(config: &SiemConfig, hostname: &str) -> Result<Vec<Collector>, SiemError> {
    let facility = config
        .facility_code()
        .ok_or_else(|| SiemError::Settings(format!("unknown facility {:?}", config.facility)))?;
    let mut out = Vec::new();
    for c in config.effective_collectors() {
        let name = c.name.clone().unwrap_or_else(|| c.target.clone());
        let (host, port) = split_target(&c.target).map_err(|why| SiemError::Target {
            collector: name.clone(),
            target: c.target.clone(),
            why,
        })?;
        let client = match (&c.client_cert_file, &c.client_key_file) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            _ => None,
        };
        let endpoint = Endpoint::new(
            &host,
            port,
            c.server_name.as_deref(),
            c.ca_file.as_deref(),
            client,
        )
        .map_err(|source| SiemError::Tls {
            collector: name.clone(),
            source,
        })?;
        let payload = match c.format {
            Some(SiemFormat::Cef) => Payload::Cef,
            _ => Payload::Text,
        };
        let mut formatter = Formatter::new(hostname, payload);
        formatter.facility = facility;
        formatter.enterprise_number = config.enterprise_number;
        formatter.max_message_bytes = config.max_message_bytes;
        out.push(Collector {
            name,
            endpoint,
            formatter,
            confirm_after: config.confirm_after,
            max_backoff: config.max_backoff,
        });
    }
    Ok(out)
}

impl SiemForwarder {
    /// Starts forwarding the events of `bus` to the collectors of `config`, spooling in
    /// `data_dir/siem/spool`. `None` when no collector is configured: then nothing is opened,
    /// created or started.
    pub fn start(
        bus: Arc<EventBus>,
        config: &SiemConfig,
        data_dir: &Path,
    ) -> Result<Option<SiemForwarder>, SiemError> {
        if !config.enabled() {
            return Ok(None);
        }
        let min_severity = config.min_severity_code().ok_or_else(|| {
            SiemError::Settings(format!("unknown min_severity {:?}", config.min_severity))
        })?;
        let collectors = collectors(config, bus.server())?;
        // Subscribe before the spool reads the newest id, so nothing falls in between.
        let sub = bus.subscribe();
        let names: Vec<String> = collectors.iter().map(|c| c.name.clone()).collect();
        let store = bus.store().clone();
        let (spool, recovery) =
            Spool::open(&spool_dir(data_dir), config.spool_max_bytes, &names, || {
                store.last_id().unwrap_or(0)
            })?;
        let spool = Arc::new(spool);
        let stats = Arc::new(ForwarderStats::default());
        if recovery.torn_bytes > 0 || !recovery.set_aside.is_empty() {
            tracing::warn!(target: "vigil::siem", torn_bytes = recovery.torn_bytes, set_aside = recovery.set_aside.len(), "SIEM spool recovered after an interrupted run");
        }
        report_losses(&bus, &stats, &recovery.losses);
        let (stop, _) = watch::channel(false);
        let mut threads = Vec::new();
        {
            let spool = spool.clone();
            let bus = bus.clone();
            let stats = stats.clone();
            let stop = stop.subscribe();
            let selection = Selection { min_severity };
            threads.push(
                std::thread::Builder::new()
                    .name("siem-spooler".into())
                    .spawn(move || spool_loop(bus, sub, spool, selection, stats, stop))?,
            );
        }
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for c in collectors {
            let st = Arc::new(SenderStats::default());
            st.delivered_seq
                .store(spool.cursor(&c.name).unwrap_or(0), Ordering::Relaxed);
            senders.push((c.name.clone(), st.clone()));
            tasks.push((c, st));
        }
        {
            let spool = spool.clone();
            let stop = stop.subscribe();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            threads.push(std::thread::Builder::new().name("siem-send".into()).spawn(
                move || {
                    rt.block_on(async move {
                        let mut set = tokio::task::JoinSet::new();
                        for (c, st) in tasks {
                            set.spawn(sender::run(spool.clone(), c, st, stop.clone()));
                        }
                        while set.join_next().await.is_some() {}
                    })
                },
            )?);
        }
        tracing::info!(target: "vigil::siem", collectors = names.len(), next_seq = spool.next_seq(), "SIEM forwarding started");
        Ok(Some(SiemForwarder {
            monitor: SiemMonitor {
                spool,
                stats,
                senders: Arc::new(senders),
            },
            stop,
            threads,
        }))
    }

    pub fn stats(&self) -> &ForwarderStats {
        &self.monitor.stats
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.monitor.spool
    }

    /// Each collector's state.
    pub fn status(&self) -> Vec<CollectorStatus> {
        self.monitor.status()
    }

    /// A view of this forwarder's state for status pages and metrics.
    pub fn monitor(&self) -> SiemMonitor {
        self.monitor.clone()
    }

    /// Stops: the spooler stores what it has, each sender waits (at most `confirm_after` +
    /// 2 s) for what it sent to be delivered and closes its connection. What is not
    /// delivered is sent at the next start.
    pub fn stop(&mut self) {
        self.stop.send_replace(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for SiemForwarder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Publishes one `siem.spool_overflow` (or `siem.spool_damaged`) event per collector that
/// lost events.
fn report_losses(bus: &EventBus, stats: &ForwarderStats, losses: &[Loss]) {
    let mut by: BTreeMap<(&str, &str), (u64, u64, u64)> = BTreeMap::new();
    for l in losses {
        let e = by
            .entry((l.collector.as_str(), l.reason))
            .or_insert((0, u64::MAX, 0));
        e.0 += l.count;
        e.1 = e.1.min(l.first_seq);
        e.2 = e.2.max(l.last_seq);
    }
    for ((collector, reason), (count, first, last)) in by {
        stats.lost.fetch_add(count, Ordering::Relaxed);
        let (kind, why) = match reason {
            "overflow" => (
                "siem.spool_overflow",
                "the SIEM spool reached its size limit (siem.spool_max_bytes) while the collector was unreachable",
            ),
            _ => ("siem.spool_damaged", "a damaged SIEM spool file"),
        };
        tracing::error!(target: "vigil::siem", collector, count, first_seq = first, last_seq = last, "{why}: events lost");
        let e = NewEvent::vigil(
            bus.server(),
            kind,
            Category::System,
            Severity::Error,
            format!(
                "{count} events (sequence numbers {first} to {last}) were lost for SIEM collector {collector}: {why}"
            ),
        )
        .attribute("collector", collector)
        .attribute("count", count.to_string())
        .attribute("first_seq", first.to_string())
        .attribute("last_seq", last.to_string());
        if let Err(err) = bus.publish(e) {
            tracing::error!(target: "vigil::siem", error = %err, "cannot report the SIEM loss as an event");
        }
    }
}

/// The spooler thread: live events in batches, catching up from the store when needed.
fn spool_loop(
    bus: Arc<EventBus>,
    mut sub: vigil_events::Subscription,
    spool: Arc<Spool>,
    selection: Selection,
    stats: Arc<ForwarderStats>,
    mut stop: watch::Receiver<bool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(target: "vigil::siem", error = %e, "SIEM spooler cannot start");
            return;
        }
    };
    // Events stored while Vigil was not running (or not yet spooled before a crash).
    let mut catch_up = true;
    loop {
        if catch_up {
            match catch_up_from_store(&bus, &spool, selection, &stats) {
                Ok(()) => catch_up = false,
                Err(e) => {
                    stats.spool_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(target: "vigil::siem", error = %e, "SIEM spooler cannot catch up; trying again");
                    if rt.block_on(stopped_within(&mut stop, RETRY)) {
                        return;
                    }
                    continue;
                }
            }
        }
        let first = rt.block_on(async {
            tokio::select! {
                n = sub.next() => Some(n),
                _ = stop.changed() => None,
            }
        });
        let Some(first) = first else {
            // Stopping: what is already in the subscription is stored too.
            let rest = rt.block_on(drain(&mut sub));
            let _ = append_live(&bus, &spool, selection, &stats, rest);
            return;
        };
        let mut batch = Vec::new();
        match first {
            None => return, // the bus closed
            Some(Live::Missed(n)) => {
                tracing::warn!(target: "vigil::siem", missed = n, "SIEM spooler fell behind the live events; catching up from the store");
                catch_up = true;
                continue;
            }
            Some(Live::Event(e)) => batch.push(e),
        }
        let more = rt.block_on(drain(&mut sub));
        let missed = more.iter().any(|l| matches!(l, Live::Missed(_)));
        batch.extend(more.into_iter().filter_map(|l| match l {
            Live::Event(e) => Some(e),
            Live::Missed(_) => None,
        }));
        if let Err(e) = append_live(
            &bus,
            &spool,
            selection,
            &stats,
            batch.into_iter().map(Live::Event).collect(),
        ) {
            stats.spool_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "vigil::siem", error = %e, "cannot write the SIEM spool; the events wait in the event store");
            if rt.block_on(stopped_within(&mut stop, RETRY)) {
                return;
            }
            catch_up = true;
        }
        if missed {
            catch_up = true;
        }
    }
}

/// True when `stop` turns true within `d`.
async fn stopped_within(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let _ = tokio::time::timeout(d, stop.wait_for(|s| *s)).await;
    *stop.borrow()
}

/// What the subscription holds right now (without waiting), up to a batch.
async fn drain(sub: &mut vigil_events::Subscription) -> Vec<Live> {
    let mut out = Vec::new();
    while out.len() < APPEND_BATCH {
        let next = tokio::select! {
            biased;
            n = sub.next() => n,
            () = std::future::ready(()) => None,
        };
        match next {
            Some(l) => out.push(l),
            None => break,
        }
    }
    out
}

fn append_live(
    bus: &EventBus,
    spool: &Spool,
    selection: Selection,
    stats: &ForwarderStats,
    batch: Vec<Live>,
) -> Result<(), SpoolError> {
    let seen = spool.last_event_id();
    let mut considered = seen;
    let mut selected = Vec::new();
    for l in batch {
        let Live::Event(e) = l else { continue };
        if e.id <= seen {
            continue;
        }
        considered = considered.max(e.id);
        if selection.selects(&e) {
            selected.push(e);
        }
    }
    if considered == seen {
        return Ok(());
    }
    let losses = spool.append(&selected, considered)?;
    stats
        .spooled
        .fetch_add(selected.len() as u64, Ordering::Relaxed);
    report_losses(bus, stats, &losses);
    Ok(())
}

/// Spools the selected events stored after the spool's newest, in id order.
fn catch_up_from_store(
    bus: &EventBus,
    spool: &Spool,
    selection: Selection,
    stats: &ForwarderStats,
) -> Result<(), String> {
    let store = bus.store();
    let last = store.last_id().map_err(|e| e.to_string())?;
    let mut after = spool.last_event_id();
    while after < last {
        let upto = (after + CATCH_UP_PAGE).min(last);
        // Ids in (after, upto]: at most CATCH_UP_PAGE, so one page holds them all.
        let mut page = store
            .query(&EventQuery {
                after_id: Some(after),
                before_id: Some(upto + 1),
                limit: CATCH_UP_PAGE as usize,
                ..Default::default()
            })
            .map_err(|e| e.to_string())?
            .events;
        page.reverse();
        let selected: Vec<Event> = page.into_iter().filter(|e| selection.selects(e)).collect();
        let losses = spool.append(&selected, upto).map_err(|e| e.to_string())?;
        stats
            .caught_up
            .fetch_add(selected.len() as u64, Ordering::Relaxed);
        stats
            .spooled
            .fetch_add(selected.len() as u64, Ordering::Relaxed);
        report_losses(bus, stats, &losses);
        after = upto;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use vigil_events::Source;

    fn ev(category: Category, severity: Severity, kind: &str) -> Event {
        Event {
            id: 1,
            received_us: 0,
            event: NewEvent {
                time_us: 0,
                source: Source::new(SourceKind::Vigil, "srv"),
                kind: kind.into(),
                category,
                severity,
                message: "m".into(),
                camera: None,
                attributes: BTreeMap::new(),
            },
        }
    }

    #[test]
    fn security_and_alarms_always_others_by_severity() {
        let s = Selection { min_severity: 4 };
        assert!(s.selects(&ev(Category::Security, Severity::Debug, "security.login")));
        assert!(s.selects(&ev(Category::Alarm, Severity::Info, "alarm.raised")));
        assert!(s.selects(&ev(Category::Camera, Severity::Warning, "camera.lost")));
        assert!(s.selects(&ev(Category::Recording, Severity::Critical, "disk.full")));
        assert!(!s.selects(&ev(Category::Camera, Severity::Notice, "camera.restored")));
        assert!(!s.selects(&ev(Category::External, Severity::Info, "generic")));
        let s = Selection { min_severity: 0 };
        assert!(s.selects(&ev(
            Category::System,
            Severity::Notice,
            "siem.spool_overflow"
        )));
    }
}
