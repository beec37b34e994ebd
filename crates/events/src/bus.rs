//! The event bus: every producer publishes here; one writer thread stores events in batches
//! (one transaction for whatever queued up, so a burst costs few fsyncs) and then pushes each
//! stored event, with its id, to the live subscribers.
//!
//! Publishing never blocks: the queue is bounded, and when it is full the event is counted
//! as dropped and, once the queue has room again, one `events.dropped` event says how many
//! were lost (inputs throttle their sources long before that). A subscriber that falls behind
//! the live queue is told how many it missed and can fetch them from the store by id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::model::{Category, Event, EventError, NewEvent, Severity, now_us};
use crate::store::{EventStore, StoreError, Writer};

/// Events queued for the writer at most.
pub const QUEUE: usize = 65_536;
/// Events stored in one transaction at most. Large: each commit writes every page it
/// touched (the indexes' too) to the WAL once, so a burst costs fewer page writes per event
/// (docs/BENCHMARKS-events.md).
const BATCH: usize = 4096;
/// Stored events queued per live subscriber: a full writer batch several times over, so a
/// subscriber that runs a moment later than the writer (the rule task on a busy machine) is
/// not told it missed events and does not have to read them back from the database.
const LIVE_QUEUE: usize = 16_384;
/// After a failed write (full disk, locked database), the writer waits this long and tries
/// the same batch again.
const RETRY: Duration = Duration::from_secs(1);

enum Msg {
    Event(NewEvent),
    /// Answered once everything queued before it is stored.
    Flush(mpsc::Sender<()>),
}

/// Counters of the bus, for metrics and status.
#[derive(Debug, Default)]
pub struct BusStats {
    pub published: AtomicU64,
    pub stored: AtomicU64,
    pub dropped: AtomicU64,
    pub refused: AtomicU64,
    pub write_errors: AtomicU64,
}

/// Where events enter. Cheap to share (`Arc`).
pub struct EventBus {
    tx: Mutex<Option<SyncSender<Msg>>>,
    live: broadcast::Sender<Arc<Event>>,
    store: Arc<EventStore>,
    server: String,
    stats: Arc<BusStats>,
    /// Drops not yet reported by an `events.dropped` event.
    unreported: Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A live subscription: every event stored after it was made, in id order.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    Event(Arc<Event>),
    /// The subscriber fell behind and missed this many events (fetch them from the store:
    /// ids after the last one received).
    Missed(u64),
}

impl Subscription {
    /// The next event; `None` when the bus closed.
    pub async fn next(&mut self) -> Option<Live> {
        match self.rx.recv().await {
            Ok(e) => Some(Live::Event(e)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Live::Missed(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl EventBus {
    /// Starts the writer thread on `store`. `server` names this server in the bus's own
    /// events.
    pub fn start(store: Arc<EventStore>, server: &str) -> Result<Arc<Self>, StoreError> {
        let writer = store.writer()?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (live, _) = broadcast::channel(LIVE_QUEUE);
        let stats = Arc::new(BusStats::default());
        let unreported = Arc::new(AtomicU64::new(0));
        let handle = {
            let live = live.clone();
            let stats = stats.clone();
            let unreported = unreported.clone();
            let server = server.to_owned();
            std::thread::Builder::new()
                .name("event-writer".into())
                .spawn(move || write_loop(writer, rx, live, stats, unreported, server))
                .expect("spawn the event writer")
        };
        Ok(Arc::new(EventBus {
            tx: Mutex::new(Some(tx)),
            live,
            store,
            server: server.to_owned(),
            stats,
            unreported,
            writer: Mutex::new(Some(handle)),
        }))
    }

    pub fn store(&self) -> &Arc<EventStore> {
        &self.store
    }

    /// This server's name, as its own events carry it.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn stats(&self) -> &BusStats {
        &self.stats
    }

    /// Queues an event to be stored and pushed: sanitized (control characters replaced),
    /// then checked; a refused event is counted and the reason returned.
    pub fn publish(&self, event: NewEvent) -> Result<(), EventError> {
        let event = event.sanitized();
        if let Err(e) = event.check() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(tx) = tx else {
            self.count_drop();
            return Ok(());
        };
        match tx.try_send(Msg::Event(event)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.count_drop();
                Ok(())
            }
        }
    }

    /// Like [`EventBus::publish`], but an event the full queue cannot take now is handed
    /// back (`Ok(Some(event))`, sanitized and checked, not counted as dropped), so a producer
    /// that can slow its sender down waits and offers it again (see `vigil_intake`: a TCP or TLS
    /// sender then waits on its socket instead of losing events). `Ok(None)`: queued, or the
    /// bus is closed (counted as dropped, like `publish`).
    pub fn try_publish(&self, event: NewEvent) -> Result<Option<NewEvent>, EventError> {
        let event = event.sanitized();
        if let Err(e) = event.check() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(tx) = tx else {
            self.stats.published.fetch_add(1, Ordering::Relaxed);
            self.count_drop();
            return Ok(None);
        };
        match tx.try_send(Msg::Event(event)) {
            Ok(()) => {
                self.stats.published.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            Err(TrySendError::Full(Msg::Event(event))) => Ok(Some(event)),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.published.fetch_add(1, Ordering::Relaxed);
                self.count_drop();
                Ok(None)
            }
        }
    }

    /// Like [`EventBus::publish`] for a thread that may block: while the queue is full it
    /// waits (pausing 1 to 50 ms between tries) up to `wait`, then drops the event and counts
    /// it. For producers whose events must not be lost to a burst of others (the rule
    /// worker's `alarm.*` events); never call it on an async runtime's thread.
    pub fn publish_waiting(&self, event: NewEvent, wait: Duration) -> Result<(), EventError> {
        let give_up = std::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(1);
        let mut event = event;
        loop {
            match self.try_publish(event)? {
                None => return Ok(()),
                Some(back) if std::time::Instant::now() < give_up => {
                    event = back;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Some(back) => return self.publish(back),
            }
        }
    }

    fn count_drop(&self) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        self.unreported.fetch_add(1, Ordering::Relaxed);
    }

    /// Every event stored from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.live.subscribe(),
        }
    }

    /// Waits until everything published before this call is stored (or the bus closed).
    pub fn flush(&self) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(tx) = tx {
            let (done, wait) = mpsc::channel();
            if tx.send(Msg::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    /// Stores what is queued and stops the writer; later events are dropped (counted).
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

impl Drop for EventBus {
    fn drop(&mut self) {
        self.close();
    }
}

fn write_loop(
    mut writer: Writer,
    rx: Receiver<Msg>,
    live: broadcast::Sender<Arc<Event>>,
    stats: Arc<BusStats>,
    unreported: Arc<AtomicU64>,
    server: String,
) {
    let mut batch: Vec<NewEvent> = Vec::with_capacity(BATCH);
    let mut flushes: Vec<mpsc::Sender<()>> = Vec::new();
    let mut open = true;
    while open || !batch.is_empty() {
        if batch.is_empty() && flushes.is_empty() {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(m) => take(m, &mut batch, &mut flushes),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => take(m, &mut batch, &mut flushes),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let lost = unreported.swap(0, Ordering::Relaxed);
        if lost > 0 {
            batch.push(
                NewEvent::vigil(
                    &server,
                    "events.dropped",
                    Category::System,
                    Severity::Error,
                    format!(
                        "{lost} events were dropped because the event queue was full (a source sent faster than they could be stored)"
                    ),
                )
                .attribute("count", lost.to_string()),
            );
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            let received_us = now_us();
            match writer.insert_ids(&batch, received_us) {
                Ok(ids) => {
                    stats.stored.fetch_add(n, Ordering::Relaxed);
                    for (id, event) in ids.into_iter().zip(batch.drain(..)) {
                        // An error only means nobody listens.
                        let _ = live.send(Arc::new(Event {
                            id,
                            received_us,
                            event,
                        }));
                    }
                }
                Err(e) => {
                    // The transaction rolled back; the same batch is tried again (what
                    // arrives meanwhile waits in the queue, and is dropped and counted
                    // only when the queue fills).
                    stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, events = n, "cannot store events; trying again in a second");
                    std::thread::sleep(RETRY);
                    continue;
                }
            }
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
}

fn take(m: Msg, batch: &mut Vec<NewEvent>, flushes: &mut Vec<mpsc::Sender<()>>) {
    match m {
        Msg::Event(e) => batch.push(e),
        Msg::Flush(done) => flushes.push(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventQuery;

    fn ev(i: usize) -> NewEvent {
        NewEvent::vigil(
            "srv",
            "test.tick",
            Category::System,
            Severity::Info,
            format!("tick {i}"),
        )
    }

    #[tokio::test]
    async fn published_events_are_stored_in_order_and_pushed_with_their_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EventStore::open(dir.path()).unwrap());
        let bus = EventBus::start(store.clone(), "srv").unwrap();
        let mut sub = bus.subscribe();
        for i in 0..3000 {
            bus.publish(ev(i)).unwrap();
        }
        bus.flush();
        let mut last = 0;
        for i in 0..3000 {
            let Some(Live::Event(e)) = sub.next().await else {
                panic!("event {i} not pushed")
            };
            assert_eq!(e.event.message, format!("tick {i}"));
            assert!(e.id > last);
            last = e.id;
        }
        assert_eq!(store.last_id().unwrap(), last);
        assert_eq!(bus.stats().stored.load(Ordering::Relaxed), 3000);
    }

    #[tokio::test]
    async fn a_refused_event_is_counted_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EventBus::start(Arc::new(EventStore::open(dir.path()).unwrap()), "srv").unwrap();
        let mut e = ev(0);
        e.kind = "Not A Kind".into();
        assert!(bus.publish(e).is_err());
        assert_eq!(bus.stats().refused.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn try_publish_hands_back_what_a_full_queue_cannot_take_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EventStore::open(dir.path()).unwrap());
        let bus = EventBus::start(store.clone(), "srv").unwrap();
        let blocker = rusqlite::Connection::open(store.path()).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let mut handed_back = None;
        let mut queued = 0;
        for i in 0..QUEUE + BATCH + 500 {
            match bus.try_publish(ev(i)).unwrap() {
                None => queued += 1,
                Some(back) => {
                    handed_back = Some(back);
                    break;
                }
            }
        }
        let back = handed_back.expect("the queue fills while the writer waits");
        assert_eq!(back.message, format!("tick {queued}"));
        assert_eq!(bus.stats().dropped.load(Ordering::Relaxed), 0);
        blocker.execute_batch("COMMIT").unwrap();
        drop(blocker);
        // Offered again once there is room: every event is stored, none counted as dropped.
        let mut back = Some(back);
        while let Some(e) = back.take() {
            back = bus.try_publish(e).unwrap();
            if back.is_some() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        bus.flush();
        assert_eq!(bus.stats().dropped.load(Ordering::Relaxed), 0);
        assert_eq!(
            bus.stats().stored.load(Ordering::Relaxed),
            queued as u64 + 1
        );
        let mut refused = ev(0);
        refused.kind = "Not A Kind".into();
        assert!(bus.try_publish(refused).is_err());
    }

    #[test]
    fn publish_waiting_waits_for_room_and_gives_up_after_its_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EventStore::open(dir.path()).unwrap());
        let bus = Arc::new(EventBus::start(store.clone(), "srv").unwrap());
        let blocker = rusqlite::Connection::open(store.path()).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let mut queued = 0u64;
        for i in 0..QUEUE + BATCH + 500 {
            if bus.try_publish(ev(i)).unwrap().is_some() {
                break;
            }
            queued += 1;
        }
        // Full and held: the wait ends, the event is dropped and counted.
        let t = std::time::Instant::now();
        bus.publish_waiting(ev(0), Duration::from_millis(200))
            .unwrap();
        assert!(t.elapsed() >= Duration::from_millis(200));
        assert_eq!(bus.stats().dropped.load(Ordering::Relaxed), 1);
        // Full, released while waiting: the event gets in.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            blocker.execute_batch("COMMIT").unwrap();
        });
        bus.publish_waiting(ev(1), Duration::from_secs(30)).unwrap();
        releaser.join().unwrap();
        bus.flush();
        assert_eq!(bus.stats().dropped.load(Ordering::Relaxed), 1);
        // Everything queued, the waiting event, and the `events.dropped` report.
        assert_eq!(bus.stats().stored.load(Ordering::Relaxed), queued + 2);
    }

    #[test]
    fn a_full_queue_drops_and_then_reports_the_loss_as_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EventStore::open(dir.path()).unwrap());
        let bus = EventBus::start(store.clone(), "srv").unwrap();
        // Hold the writer's database busy so the queue fills.
        let blocker = rusqlite::Connection::open(store.path()).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        for i in 0..QUEUE + BATCH + 500 {
            bus.publish(ev(i)).unwrap();
        }
        blocker.execute_batch("COMMIT").unwrap();
        drop(blocker);
        bus.flush();
        bus.publish(ev(0)).unwrap();
        bus.flush();
        let dropped = bus.stats().dropped.load(Ordering::Relaxed);
        assert!(dropped >= 500, "{dropped}");
        let told = store
            .query(&EventQuery {
                kinds: vec!["events.dropped".into()],
                limit: 1000,
                ..Default::default()
            })
            .unwrap()
            .events;
        let reported: u64 = told
            .iter()
            .map(|e| e.event.attributes["count"].parse::<u64>().unwrap())
            .sum();
        assert_eq!(reported, dropped, "every drop is told");
    }

    #[test]
    fn close_stores_what_was_queued() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EventStore::open(dir.path()).unwrap());
        let bus = EventBus::start(store.clone(), "srv").unwrap();
        for i in 0..100 {
            bus.publish(ev(i)).unwrap();
        }
        bus.close();
        assert_eq!(
            store
                .query(&EventQuery {
                    limit: 1000,
                    ..Default::default()
                })
                .unwrap()
                .events
                .len(),
            100
        );
    }
}
