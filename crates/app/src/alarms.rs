//! Rules, alarms and bookmarks as use cases (docs/rules-and-alarms.md).
//!
//! - [`Alarms::spawn_rules`] subscribes to the event bus and runs the actions of the rules an
//!   event fires (raise or count into an alarm, bookmark, evidence lock, webhook, e-mail,
//!   SIEM). It never holds the
//!   bus up: events go onto a bounded queue for one worker thread, and what does not fit is
//!   read back from the event database, so every stored event is evaluated once.
//! - Alarms are acknowledged and closed by people with HandleAlarms on the alarm's camera;
//!   each step is audited and published as an `alarm.*` event (the alarm category, which SIEM
//!   forwarding always selects).
//! - Bookmarks are listed for a camera's timeline (Playback) and made or deleted by people
//!   with HandleAlarms on the camera.
//! - The rules in effect can be replaced (the settings use case saves them in `vigil.toml`)
//!   and tried on an example event without running anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde_json::json;
use vigil_access::{
    Access, AccessError, Actor, AuditKind, AuditRecord, CameraScope, Denied, Permission, Principal,
    WebhookSink,
};
use vigil_config::RuleConfig;
use vigil_events::alarms::{Alarm, AlarmError, AlarmPage, AlarmQuery, AlarmStep, Raised};
use vigil_events::bookmarks::{
    Bookmark, BookmarkError, BookmarkPage, BookmarkQuery, Creator, NewBookmark,
};
use vigil_events::model::now_us;
use vigil_events::{
    AlarmStore, BookmarkStore, Category, Event, EventBus, EventError, Live, NewEvent, Raise,
    Severity, StoreError,
};
use vigil_media::evidence::Evidence;
use vigil_media::store::Store;
use vigil_rules::{Action, RuleError, RuleSet, is_rule_output};

use crate::error::{Classified, ErrorKind};
use crate::locks::{self, LockError, NewLock};

/// Events queued for the rule worker at most; beyond, the worker reads them back from the
/// event database.
pub const RULE_QUEUE: usize = 16_384;
/// Events evaluated in one batch at most (one transaction for its alarms, one for its
/// bookmarks).
const RULE_BATCH: usize = 512;
/// Events read back from the database at a time by a worker that fell behind.
const CATCH_UP_PAGE: usize = 1024;
/// Seconds a worker tries to read the database before it skips what it missed.
const CATCH_UP_TRIES: u32 = 5;
/// The rule worker's position among `events.db`'s cursors: the last event it evaluated.
pub const RULES_CURSOR: &str = "rules";
/// How long the worker waits for room on a full bus for an event of its own.
const OUTPUT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The worker's last evaluated event not yet saved, and when it last saved.
struct Position {
    unsaved: Option<i64>,
    saved: std::time::Instant,
}

impl Default for Position {
    fn default() -> Self {
        Position {
            unsaved: None,
            saved: std::time::Instant::now(),
        }
    }
}

/// One rule fired by one event, with what it does and, once raised, its alarm.
struct Fired<'a> {
    rule: String,
    event: &'a Event,
    actions: Vec<Action>,
    alarm_id: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AlarmsError {
    #[error("{0}")]
    Denied(#[from] Denied),
    #[error("{0}")]
    Alarm(#[from] AlarmError),
    #[error("{0}")]
    Bookmark(#[from] BookmarkError),
    #[error("the rules are not valid: {0}")]
    Rules(#[from] RuleError),
    #[error("the example event is not valid: {0}")]
    Event(#[from] EventError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("audit log: {0}")]
    Audit(#[from] AccessError),
    #[error("evidence lock: {0}")]
    Lock(#[from] LockError),
}

impl Classified for AlarmsError {
    fn kind(&self) -> ErrorKind {
        match self {
            AlarmsError::Denied(_) => ErrorKind::Forbidden,
            AlarmsError::Alarm(AlarmError::NotFound(_))
            | AlarmsError::Bookmark(BookmarkError::NotFound(_)) => ErrorKind::NotFound,
            AlarmsError::Alarm(AlarmError::Transition { .. }) => ErrorKind::Conflict,
            AlarmsError::Alarm(AlarmError::BadComment)
            | AlarmsError::Bookmark(
                BookmarkError::BadRange | BookmarkError::BadLabel | BookmarkError::BadCamera,
            )
            | AlarmsError::Rules(_)
            | AlarmsError::Event(_) => ErrorKind::InvalidInput,
            AlarmsError::Alarm(AlarmError::Store(_))
            | AlarmsError::Bookmark(BookmarkError::Store(_))
            | AlarmsError::Store(_)
            | AlarmsError::Audit(_) => ErrorKind::Internal,
            AlarmsError::Lock(e) => e.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AlarmsError::Denied(_) => "forbidden",
            AlarmsError::Alarm(AlarmError::NotFound(_)) => "alarm_not_found",
            AlarmsError::Bookmark(BookmarkError::NotFound(_)) => "bookmark_not_found",
            AlarmsError::Alarm(AlarmError::Transition { .. }) => "alarm_state",
            AlarmsError::Alarm(AlarmError::BadComment) => "bad_comment",
            AlarmsError::Bookmark(
                BookmarkError::BadRange | BookmarkError::BadLabel | BookmarkError::BadCamera,
            ) => "bad_bookmark",
            AlarmsError::Rules(_) => "bad_rules",
            AlarmsError::Event(_) => "bad_event",
            AlarmsError::Lock(e) => e.code(),
            _ => "internal",
        }
    }

    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        match self {
            AlarmsError::Audit(e) => Some(e),
            _ => None,
        }
    }
}

/// Counters of the rule task, for metrics and status.
#[derive(Debug, Default)]
pub struct RuleStats {
    /// Events the rules looked at.
    pub evaluated: AtomicU64,
    /// Rule firings.
    pub fired: AtomicU64,
    /// Actions that failed (a database error, a full webhook queue is the sink's own count).
    pub failed: AtomicU64,
    /// Events that did not fit the worker's queue (or that the subscription missed) and were
    /// read back from the event database instead: evaluated late, not lost.
    pub deferred: AtomicU64,
    /// Events never evaluated: the event database could not be read to catch up.
    pub dropped: AtomicU64,
}

/// One rule an example event fires, and what it would do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Firing {
    pub rule: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub actions: Vec<Action>,
}

/// Rules, alarms and bookmarks of one server.
pub struct Alarms {
    alarms: AlarmStore,
    bookmarks: BookmarkStore,
    bus: Arc<EventBus>,
    access: Arc<Access>,
    rules: RwLock<Arc<RuleSet>>,
    /// Each rule's webhook sink, by rule name (started with the rules that have one).
    webhooks: Mutex<HashMap<String, Arc<WebhookSink>>>,
    /// Alarm e-mail through `[smtp]`, once started ([`Alarms::start_mail`]).
    mail: Mutex<Option<Arc<vigil_mail::MailSink>>>,
    /// The recording index and evidence ledgers, once recording runs in this process: rules'
    /// evidence locks are signed through them.
    recording: OnceLock<(Arc<Store>, Arc<Evidence>)>,
    stats: RuleStats,
    /// Drops not yet reported by a `rules.dropped` event.
    unreported: AtomicU64,
}

impl std::fmt::Debug for Alarms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alarms").finish_non_exhaustive()
    }
}

/// An alarm's priority as an event severity: 1 alert … 5 notice.
fn severity_of(priority: u8) -> Severity {
    match priority {
        0 | 1 => Severity::Alert,
        2 => Severity::Critical,
        3 => Severity::Error,
        4 => Severity::Warning,
        _ => Severity::Notice,
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> String {
    vigil_events::model::cut(s, max).to_owned()
}

/// Which cameras `principal` may read alarms and bookmarks of (`None`: all); Playback needed.
fn readable_cameras(principal: &Principal) -> Result<Option<Vec<String>>, Denied> {
    let role = principal.role();
    if !role.grants(Permission::Playback) {
        return Err(Denied::Role {
            role,
            permission: Permission::Playback,
        });
    }
    Ok(match (role.sees_all_cameras(), principal.cameras()) {
        (true, _) | (_, CameraScope::All) => None,
        (false, CameraScope::Only(set)) => Some(set.iter().cloned().collect()),
    })
}

/// Playback of an alarm's or bookmark's camera; one of no camera needs every camera.
fn may_read(principal: &Principal, camera: Option<&str>) -> Result<(), Denied> {
    principal.authorize(Permission::Playback, camera)
}

impl Alarms {
    /// Opens the alarm and bookmark tables beside the bus's events and compiles `rules`.
    pub fn open(
        bus: Arc<EventBus>,
        access: Arc<Access>,
        rules: &[RuleConfig],
    ) -> Result<Arc<Self>, AlarmsError> {
        let dir = bus
            .store()
            .path()
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let set = RuleSet::compile(rules)?;
        let me = Arc::new(Alarms {
            alarms: AlarmStore::open(&dir)?,
            bookmarks: BookmarkStore::open(&dir)?,
            bus,
            access,
            rules: RwLock::new(Arc::new(RuleSet::default())),
            webhooks: Mutex::new(HashMap::new()),
            mail: Mutex::new(None),
            recording: OnceLock::new(),
            stats: RuleStats::default(),
            unreported: AtomicU64::new(0),
        });
        me.install(set);
        Ok(me)
    }

    /// Lets rules lock evidence: the recording runtime of this process hands over its index
    /// and ledgers once they are open. Until then (or in a process that does not record) a
    /// rule's lock action fails and is counted.
    pub fn attach_recording(&self, store: Arc<Store>, evidence: Arc<Evidence>) {
        let _ = self.recording.set((store, evidence));
    }

    pub fn stats(&self) -> &RuleStats {
        &self.stats
    }

    /// Starts alarm e-mail through the `[smtp]` server (nothing when it names none). Until
    /// then, or when it cannot start, rules' e-mail actions are skipped and logged. A message
    /// that is not delivered after its attempts becomes an `alarm.email_failed` event.
    pub fn start_mail(
        &self,
        smtp: &vigil_config::SmtpConfig,
        hello_name: &str,
    ) -> Result<(), crate::mail::MailSetupError> {
        let Some(settings) = crate::mail::mail_settings(smtp, hello_name)? else {
            return Ok(());
        };
        let bus = self.bus.clone();
        let on_failure = Box::new(move |m: &vigil_mail::Mail, why: &str| {
            let e = NewEvent::vigil(
                bus.server(),
                "alarm.email_failed",
                Category::System,
                Severity::Error,
                cut(
                    &format!(
                        "alarm e-mail \"{}\" to {} was not delivered: {why}",
                        m.subject,
                        m.to.join(", ")
                    ),
                    vigil_events::model::MAX_MESSAGE,
                ),
            )
            .attribute("recipients", m.to.join(", "));
            let _ = bus.publish(e);
        });
        let sink = vigil_mail::MailSink::start(settings, on_failure)?;
        *self.mail.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(sink));
        Ok(())
    }

    /// The alarm e-mail sink, while it runs (its counters).
    pub fn mail(&self) -> Option<Arc<vigil_mail::MailSink>> {
        self.mail.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The counters of every rule's webhook sender (named `rule:<rule>`).
    pub fn webhook_figures(&self) -> Vec<crate::metrics::WebhookFigures> {
        let sinks = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = sinks
            .iter()
            .map(|(rule, sink)| crate::metrics::WebhookFigures::of(format!("rule:{rule}"), sink))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The rules in effect.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `rules` into effect (after they were saved): later events see them.
    pub fn set_rules(&self, rules: &[RuleConfig]) -> Result<(), AlarmsError> {
        let set = RuleSet::compile(rules)?;
        self.install(set);
        Ok(())
    }

    fn install(&self, set: RuleSet) {
        let mut sinks = HashMap::new();
        for r in set.rules() {
            let Some(w) = &r.config().webhook else {
                continue;
            };
            match crate::access_settings::webhook_config(w, Some(self.bus.server().to_owned())) {
                Ok(cfg) => match WebhookSink::start(cfg) {
                    Ok(sink) => {
                        sinks.insert(r.name().to_owned(), Arc::new(sink));
                    }
                    Err(e) => {
                        tracing::error!(rule = r.name(), error = %e, "rule webhook cannot start; its webhook action is skipped")
                    }
                },
                Err(e) => {
                    tracing::error!(rule = r.name(), error = %e, "rule webhook settings cannot be used; its webhook action is skipped")
                }
            }
        }
        *self.webhooks.lock().unwrap_or_else(|p| p.into_inner()) = sinks;
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    /// What `event` would fire, without running anything (the rule-test endpoint).
    pub fn test(&self, event: NewEvent) -> Result<Vec<Firing>, AlarmsError> {
        let event = event.sanitized();
        event.check()?;
        let set = self.rules();
        Ok(set
            .fire(&event)
            .into_iter()
            .map(|(r, actions)| Firing {
                rule: r.name().to_owned(),
                actions,
            })
            .collect())
    }

    /// Starts the rule task on the current tokio runtime and returns at once: subscribes to
    /// the bus now and runs until `shutdown` resolves or the bus closes. Actions run on one
    /// worker thread, in batches (one transaction for a batch's alarms, one for its
    /// bookmarks). No stored event escapes the rules: what the worker's queue cannot take,
    /// or the subscription misses, it reads back from the event database; its position is
    /// kept there too, so after a restart it resumes where it stopped (the first start begins
    /// with the events stored from then on). docs/rules-and-alarms.md, "How rules run".
    pub fn spawn_rules(
        self: &Arc<Self>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let start = self.rules_start();
        let mut sub = self.bus.subscribe();
        let me = self.clone();
        // Set when an event did not reach the worker: it then reads the database. Set at the
        // start too, for the events stored between reading `start` and subscribing.
        let behind = Arc::new(AtomicBool::new(true));
        let stopping = Arc::new(AtomicBool::new(false));
        tokio::spawn(async move {
            let (tx, rx) = mpsc::sync_channel::<Arc<Event>>(RULE_QUEUE);
            let worker = {
                let me = me.clone();
                let behind = behind.clone();
                let stopping = stopping.clone();
                std::thread::Builder::new()
                    .name("rule-actions".into())
                    .spawn(move || me.rule_worker(start, &rx, &behind, &stopping))
                    .expect("spawn the rule worker")
            };
            tokio::pin!(shutdown);
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tick.tick() => me.report_drops(),
                    live = sub.next() => match live {
                        None => break,
                        Some(Live::Event(e)) => {
                            if is_rule_output(&e.event) {
                                continue;
                            }
                            if let Err(TrySendError::Full(_)) = tx.try_send(e) {
                                me.stats.deferred.fetch_add(1, Ordering::Relaxed);
                                behind.store(true, Ordering::SeqCst);
                            }
                        }
                        Some(Live::Missed(n)) => {
                            me.stats.deferred.fetch_add(n, Ordering::Relaxed);
                            behind.store(true, Ordering::SeqCst);
                        }
                    },
                }
            }
            stopping.store(true, Ordering::SeqCst);
            drop(tx);
            let _ = tokio::task::spawn_blocking(move || worker.join()).await;
            me.report_drops();
        })
    }

    /// The id after which the rules start: where they stopped before, or the newest stored
    /// event the first time (the history is not evaluated). `None` when the database cannot
    /// be read: then from the first event that arrives.
    fn rules_start(&self) -> Option<i64> {
        let store = self.bus.store();
        let start = match store.cursor(RULES_CURSOR) {
            Ok(c) if c > 0 => Ok(c),
            Ok(_) => store.last_id(),
            Err(e) => Err(e),
        };
        match start {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!(error = %e, "the rules cannot read where they stopped; they start with the next event");
                None
            }
        }
    }

    /// The worker thread: takes what the queue holds (up to a batch), first reading from the
    /// database whatever did not reach it, and evaluates each event once, in id order.
    fn rule_worker(
        &self,
        start: Option<i64>,
        rx: &mpsc::Receiver<Arc<Event>>,
        behind: &AtomicBool,
        stopping: &AtomicBool,
    ) {
        let mut seen = start;
        let mut position = Position::default();
        let mut batch: Vec<Arc<Event>> = Vec::with_capacity(RULE_BATCH);
        loop {
            // Waking once a second lets a worker whose queue stays empty still catch up.
            match rx.recv_timeout(std::time::Duration::from_secs(1)) {
                Ok(e) => batch.push(e),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < RULE_BATCH {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            if behind.swap(false, Ordering::SeqCst)
                && let Some(at) = seen.as_mut()
            {
                self.catch_up(at, stopping, &mut position);
            }
            let fresh: Vec<&Event> = batch
                .iter()
                .map(|e| &**e)
                .filter(|e| seen.is_none_or(|at| e.id > at))
                .collect();
            if let Some(last) = fresh.last().map(|e| e.id) {
                let acted = self.handle_batch(&fresh);
                seen = Some(last);
                self.advance(&mut position, last, acted);
            }
            batch.clear();
        }
        if let Some(id) = position.unsaved.take() {
            self.save_position(id);
        }
    }

    /// Evaluates the stored events after `at` up to the newest, a page at a time, moving `at`.
    /// A database that cannot be read is tried again for a few seconds; then the events up to
    /// the newest are given up, counted and reported (`rules.dropped`).
    fn catch_up(&self, at: &mut i64, stopping: &AtomicBool, position: &mut Position) {
        let store = self.bus.store();
        let mut failures = 0;
        while !stopping.load(Ordering::SeqCst) {
            match store.after(*at, CATCH_UP_PAGE) {
                Ok(page) => {
                    let Some(last) = page.last().map(|e| e.id) else {
                        return;
                    };
                    failures = 0;
                    let refs: Vec<&Event> = page.iter().collect();
                    let acted = self.handle_batch(&refs);
                    *at = last;
                    self.advance(position, last, acted);
                }
                Err(e) if failures < CATCH_UP_TRIES => {
                    failures += 1;
                    tracing::error!(error = %e, "the rules cannot read the events they missed; trying again in a second");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                Err(e) => {
                    let newest = store.last_id().unwrap_or(*at);
                    let lost = u64::try_from(newest - *at).unwrap_or(0);
                    tracing::error!(error = %e, lost, "the rules skip the events they could not read");
                    self.count_drops(lost);
                    *at = newest;
                    return;
                }
            }
        }
    }

    /// Notes that the events up to `id` are evaluated. Saved at once after a batch that
    /// acted (a restart must not act on them again), otherwise at most once a second: events
    /// that fired nothing cost no extra write each.
    fn advance(&self, position: &mut Position, id: i64, acted: bool) {
        position.unsaved = Some(id);
        if acted || position.saved.elapsed() >= std::time::Duration::from_secs(1) {
            self.save_position(id);
            position.unsaved = None;
            position.saved = std::time::Instant::now();
        }
    }

    fn save_position(&self, id: i64) {
        if let Err(e) = self.bus.store().set_cursor(RULES_CURSOR, id) {
            tracing::warn!(error = %e, "the rules cannot save their position; after a restart they may act on some events again");
        }
    }

    fn count_drops(&self, n: u64) {
        self.stats.dropped.fetch_add(n, Ordering::Relaxed);
        self.unreported.fetch_add(n, Ordering::Relaxed);
    }

    fn report_drops(&self) {
        let n = self.unreported.swap(0, Ordering::Relaxed);
        if n == 0 {
            return;
        }
        let e = NewEvent::vigil(
            self.bus.server(),
            "rules.dropped",
            Category::System,
            Severity::Error,
            format!(
                "up to {n} events were not evaluated by the rules because the event database could not be read"
            ),
        )
        .attribute("count", n.to_string());
        let _ = self.bus.publish(e);
    }

    /// Runs the actions of every rule each of `events` fires, in order, with the alarms of
    /// the whole batch raised in one transaction and its bookmarks stored in another
    /// (blocking: database writes). Whether any rule fired.
    fn handle_batch(&self, events: &[&Event]) -> bool {
        let set = self.rules();
        let mut firings: Vec<Fired<'_>> = Vec::new();
        // The rules' own events come back in pages read from the database; never evaluated.
        for e in events.iter().filter(|e| !is_rule_output(&e.event)) {
            self.stats.evaluated.fetch_add(1, Ordering::Relaxed);
            for (rule, actions) in set.fire(&e.event) {
                self.stats.fired.fetch_add(1, Ordering::Relaxed);
                firings.push(Fired {
                    rule: rule.name().to_owned(),
                    event: e,
                    actions,
                    alarm_id: None,
                });
            }
        }
        if firings.is_empty() {
            return false;
        }
        let now = now_us();
        self.raise_alarms(&mut firings, now);
        self.add_bookmarks(&firings, now);
        for f in &firings {
            for action in &f.actions {
                if matches!(action, Action::Alarm { .. } | Action::Bookmark { .. }) {
                    continue;
                }
                if let Err(err) = self.run(&f.rule, action, f.event, f.alarm_id) {
                    self.action_failed(&f.rule, f.event, &err);
                }
            }
        }
        true
    }

    fn action_failed(&self, rule: &str, e: &Event, err: &dyn std::fmt::Display) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(rule, event = e.id, error = %err, "rule action failed");
    }

    /// The batch's alarm actions in one transaction; each firing learns its alarm's id.
    fn raise_alarms(&self, firings: &mut [Fired<'_>], now: i64) {
        let wanted: Vec<(usize, u8)> = firings
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                f.actions.iter().find_map(|a| match a {
                    Action::Alarm { priority } => Some((i, *priority)),
                    _ => None,
                })
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let requests: Vec<Raise<'_>> = wanted
            .iter()
            .map(|&(i, priority)| Raise {
                rule: &firings[i].rule,
                priority,
                event: firings[i].event,
            })
            .collect();
        let raised = match self.alarms.raise_all(&requests, now) {
            Ok(raised) => raised,
            Err(err) => {
                for &(i, _) in &wanted {
                    self.action_failed(&firings[i].rule, firings[i].event, &err);
                }
                return;
            }
        };
        drop(requests);
        for (&(i, _), raised) in wanted.iter().zip(raised) {
            let f = &mut firings[i];
            f.alarm_id = Some(raised.alarm().id);
            if let Raised::New(a) = &raised {
                let ev = self
                    .alarm_event(a, "alarm.raised", severity_of(a.priority))
                    .attribute("event_id", f.event.id.to_string())
                    .with_message(format!(
                        "alarm {} (rule {}, priority {}): {}",
                        a.id, f.rule, a.priority, a.message
                    ));
                self.publish_output(ev);
            }
        }
    }

    /// The batch's bookmark actions in one transaction.
    fn add_bookmarks(&self, firings: &[Fired<'_>], now: i64) {
        let mut owners = Vec::new();
        let mut wanted = Vec::new();
        for f in firings {
            for a in &f.actions {
                if let Action::Bookmark {
                    camera,
                    from_us,
                    to_us,
                    label,
                } = a
                {
                    owners.push(f);
                    wanted.push(NewBookmark {
                        camera: camera.clone(),
                        from_us: *from_us,
                        to_us: *to_us,
                        label: cut(label, vigil_events::bookmarks::MAX_LABEL),
                        creator: Creator::Rule(f.rule.clone()),
                        alarm_id: f.alarm_id,
                        event_id: Some(f.event.id),
                    });
                }
            }
        }
        if wanted.is_empty() {
            return;
        }
        match self.bookmarks.add_all(&wanted, now) {
            Ok(results) => {
                for (f, r) in owners.iter().zip(results) {
                    if let Err(err) = r {
                        self.action_failed(&f.rule, f.event, &err);
                    }
                }
            }
            Err(err) => {
                for f in owners {
                    self.action_failed(&f.rule, f.event, &err);
                }
            }
        }
    }

    /// Publishes an event the rules produce; waits for room on a full bus (the worker is
    /// its own thread) rather than lose an `alarm.*` event in a burst.
    fn publish_output(&self, e: NewEvent) {
        let _ = self.bus.publish_waiting(e, OUTPUT_WAIT);
    }

    /// One action other than raising an alarm or a bookmark (those are written per batch).
    fn run(
        &self,
        rule: &str,
        action: &Action,
        e: &Event,
        alarm_id: Option<i64>,
    ) -> Result<(), AlarmsError> {
        match action {
            Action::Alarm { .. } | Action::Bookmark { .. } => {}
            Action::Lock {
                camera,
                from_us,
                to_us,
                days,
                reason,
            } => self.lock(rule, e, alarm_id, camera, (*from_us, *to_us), *days, reason)?,
            Action::Webhook => {
                let sink = self
                    .webhooks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(rule)
                    .cloned();
                match sink {
                    Some(s) => s.send_payload(self.webhook_payload(rule, e, alarm_id)),
                    None => tracing::warn!(
                        rule,
                        "rule webhook action skipped: its webhook did not start"
                    ),
                }
            }
            Action::Email { to } => match self.mail() {
                // A full queue is the sink's own count and log line.
                Some(sink) => {
                    sink.send(crate::mail::rule_mail(
                        self.bus.server(),
                        rule,
                        e,
                        alarm_id,
                        to,
                    ));
                }
                None => tracing::warn!(
                    rule,
                    "rule e-mail action skipped: no mail server is running ([smtp] in vigil.toml)"
                ),
            },
            Action::Siem => {
                let ev = &e.event;
                let mut out = NewEvent::vigil(
                    self.bus.server(),
                    "alarm.rule_matched",
                    Category::Alarm,
                    ev.severity,
                    cut(
                        &format!("rule {rule} matched {}: {}", ev.kind, ev.message),
                        vigil_events::model::MAX_MESSAGE,
                    ),
                )
                .attribute("rule", rule)
                .attribute("event_id", e.id.to_string())
                .attribute("event_kind", ev.kind.clone())
                .attribute("event_source_kind", ev.source.kind.as_str())
                .attribute("event_source", ev.source.name.clone());
                out.camera = ev.camera.clone();
                out.time_us = ev.time_us;
                for (k, v) in ev
                    .attributes
                    .iter()
                    .take(vigil_events::model::MAX_ATTRIBUTES - 6)
                {
                    out.attributes.entry(k.clone()).or_insert_with(|| v.clone());
                }
                if let Some(id) = alarm_id {
                    out = out.attribute("alarm_id", id.to_string());
                }
                self.publish_output(out);
            }
            Action::Skipped { what, why } => {
                tracing::debug!(rule, what, why, event = e.id, "rule action skipped");
            }
        }
        Ok(())
    }

    /// A rule's evidence lock: signed in the camera's ledger, audited and published as an
    /// `alarm.evidence_locked` event. Nothing new while one of the rule's active locks on the
    /// camera already covers the range. When one covers only its start (the next match of a
    /// burst), the new lock starts where that one ends and reaches one post-event window
    /// further than this match needs, so the matches that follow within that window are
    /// covered: a burst makes one lock per post-event window, not one per match.
    #[allow(clippy::too_many_arguments)]
    fn lock(
        &self,
        rule: &str,
        e: &Event,
        alarm_id: Option<i64>,
        camera: &str,
        (from_us, to_us): (i64, i64),
        days: u32,
        reason: &str,
    ) -> Result<(), AlarmsError> {
        let (store, evidence) = self.recording.get().ok_or(LockError::NotRecording)?;
        let now = now_us();
        let by = format!("rule:{rule}");
        // How far the rule's active locks cover the range without a hole, from its start.
        let mut spans: Vec<(i64, i64)> = locks::list(store, camera, Some((from_us, to_us)))?
            .iter()
            .filter(|l| l.active_at(now) && l.created_by == by)
            .map(|l| (l.from_us, l.to_us))
            .collect();
        spans.sort_unstable();
        let covered_to = spans.iter().fold(
            from_us,
            |at, &(a, b)| {
                if a <= at && b > at { b } else { at }
            },
        );
        let (from_us, to_us) = if covered_to >= to_us {
            return Ok(());
        } else if covered_to > from_us {
            let post = (to_us - e.event.time_us).max(0);
            (covered_to, to_us.saturating_add(post))
        } else {
            (from_us, to_us)
        };
        // The reason carries the event's message: one line, within the lock's limit.
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let reason = cut(&reason, locks::MAX_REASON);
        let row = locks::lock(
            store,
            Some(evidence),
            &NewLock {
                camera,
                from_us,
                to_us,
                reason: &reason,
                by: &by,
                expires_us: Some(now.saturating_add(i64::from(days) * 86_400 * 1_000_000)),
            },
        )?;
        self.access.audit(
            AuditRecord::new(AuditKind::EvidenceLockChanged, Some(&by), None).detail(json!({
                "action": "lock",
                "camera": camera,
                "lock": row.id,
                "from_us": row.from_us,
                "to_us": row.to_us,
                "reason": row.reason,
                "expires_us": row.expires_us,
                "event_id": e.id,
                "alarm_id": alarm_id,
            })),
        )?;
        let mut ev = NewEvent::vigil(
            self.bus.server(),
            "alarm.evidence_locked",
            Category::Alarm,
            Severity::Notice,
            cut(
                &format!(
                    "rule {rule} locked the recording of {camera} against retention (lock {})",
                    row.id
                ),
                vigil_events::model::MAX_MESSAGE,
            ),
        )
        .attribute("rule", rule)
        .attribute("lock_id", row.id.to_string())
        .attribute("from_us", row.from_us.to_string())
        .attribute("to_us", row.to_us.to_string())
        .attribute("event_id", e.id.to_string());
        if let Some(id) = alarm_id {
            ev = ev.attribute("alarm_id", id.to_string());
        }
        ev.camera = Some(camera.to_owned());
        let _ = self.bus.publish(ev);
        Ok(())
    }

    fn webhook_payload(&self, rule: &str, e: &Event, alarm_id: Option<i64>) -> serde_json::Value {
        let ev = &e.event;
        json!({
            "type": "vigil.rule_matched",
            "version": 1,
            "server": self.bus.server(),
            "rule": rule,
            "alarm_id": alarm_id,
            "event": {
                "id": e.id,
                "time_us": ev.time_us,
                "kind": ev.kind,
                "category": ev.category.as_str(),
                "severity": ev.severity.as_str(),
                "source_kind": ev.source.kind.as_str(),
                "source": ev.source.name,
                "message": ev.message,
                "camera": ev.camera,
                "attributes": ev.attributes,
            }
        })
    }

    /// An `alarm.*` event about `a`.
    fn alarm_event(&self, a: &Alarm, kind: &str, severity: Severity) -> NewEvent {
        let mut e = NewEvent::vigil(self.bus.server(), kind, Category::Alarm, severity, "-")
            .attribute("alarm_id", a.id.to_string())
            .attribute("rule", a.rule.clone())
            .attribute("priority", a.priority.to_string())
            .attribute("state", a.state.as_str())
            .attribute("count", a.count.to_string())
            .attribute("alarm_source_kind", a.source_kind.as_str())
            .attribute("alarm_source", a.source.clone());
        e.camera = a.camera.clone();
        e
    }

    /// Alarms `principal` may read (Playback; a principal limited to some cameras sees the
    /// alarms of those cameras only).
    pub fn list(&self, principal: &Principal, mut q: AlarmQuery) -> Result<AlarmPage, AlarmsError> {
        q.visible_cameras = readable_cameras(principal)?;
        Ok(self.alarms.query(&q)?)
    }

    pub fn get(&self, principal: &Principal, id: i64) -> Result<Alarm, AlarmsError> {
        readable_cameras(principal)?;
        let a = self.alarms.get(id)?.ok_or(AlarmError::NotFound(id))?;
        may_read(principal, a.camera.as_deref())?;
        Ok(a)
    }

    /// Acknowledges or closes alarm `id` as `actor` (HandleAlarms on its camera), audits the
    /// step and publishes it as an `alarm.acknowledged` / `alarm.closed` event.
    pub fn step(
        &self,
        principal: &Principal,
        actor: &Actor,
        id: i64,
        step: AlarmStep,
        comment: Option<&str>,
    ) -> Result<Alarm, AlarmsError> {
        let role = principal.role();
        if !role.grants(Permission::HandleAlarms) {
            return Err(Denied::Role {
                role,
                permission: Permission::HandleAlarms,
            }
            .into());
        }
        let before = self.alarms.get(id)?.ok_or(AlarmError::NotFound(id))?;
        principal.authorize(Permission::HandleAlarms, before.camera.as_deref())?;
        let comment = comment.map(str::trim).filter(|c| !c.is_empty());
        let a = self.alarms.step(id, step, &actor.name, comment, now_us())?;
        let (kind, verb) = match step {
            AlarmStep::Acknowledge => ("alarm.acknowledged", "acknowledged"),
            AlarmStep::Close => ("alarm.closed", "closed"),
        };
        self.access.audit(
            AuditRecord::new(
                AuditKind::AlarmChanged,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(json!({
                "alarm": a.id,
                "rule": a.rule,
                "camera": a.camera,
                "state": a.state.as_str(),
                "comment": comment,
            })),
        )?;
        let mut ev = self
            .alarm_event(&a, kind, Severity::Notice)
            .attribute("user", actor.name.clone())
            .with_message(format!("alarm {} {verb} by {}", a.id, actor.name));
        if let Some(c) = comment {
            ev = ev.attribute("comment", cut(c, vigil_events::model::MAX_VALUE));
        }
        let _ = self.bus.publish(ev);
        Ok(a)
    }

    /// Bookmarks `principal` may read (Playback, within its camera scope).
    pub fn bookmarks(
        &self,
        principal: &Principal,
        mut q: BookmarkQuery,
    ) -> Result<BookmarkPage, AlarmsError> {
        q.visible_cameras = readable_cameras(principal)?;
        Ok(self.bookmarks.query(&q)?)
    }

    /// A bookmark made by `actor` (HandleAlarms on the camera); audited.
    pub fn add_bookmark(
        &self,
        principal: &Principal,
        actor: &Actor,
        camera: &str,
        from_us: i64,
        to_us: i64,
        label: &str,
    ) -> Result<Bookmark, AlarmsError> {
        principal.authorize(Permission::HandleAlarms, Some(camera))?;
        let b = self.bookmarks.add(
            &NewBookmark {
                camera: camera.to_owned(),
                from_us,
                to_us,
                label: label.to_owned(),
                creator: Creator::User(actor.name.clone()),
                alarm_id: None,
                event_id: None,
            },
            now_us(),
        )?;
        self.audit_bookmark(actor, "create", &b)?;
        Ok(b)
    }

    /// Deletes bookmark `id` (HandleAlarms on its camera); audited.
    pub fn delete_bookmark(
        &self,
        principal: &Principal,
        actor: &Actor,
        id: i64,
    ) -> Result<Bookmark, AlarmsError> {
        let role = principal.role();
        if !role.grants(Permission::HandleAlarms) {
            return Err(Denied::Role {
                role,
                permission: Permission::HandleAlarms,
            }
            .into());
        }
        let b = self.bookmarks.get(id)?.ok_or(BookmarkError::NotFound(id))?;
        principal.authorize(Permission::HandleAlarms, Some(&b.camera))?;
        let b = self.bookmarks.delete(id)?;
        self.audit_bookmark(actor, "delete", &b)?;
        Ok(b)
    }

    fn audit_bookmark(&self, actor: &Actor, action: &str, b: &Bookmark) -> Result<(), AlarmsError> {
        self.access.audit(
            AuditRecord::new(
                AuditKind::BookmarkChanged,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(json!({
                "action": action,
                "bookmark": b.id,
                "camera": b.camera,
                "from_us": b.from_us,
                "to_us": b.to_us,
                "label": b.label,
            })),
        )?;
        Ok(())
    }
}

/// Replacing an event's message (builder style, for the `alarm.*` events built above).
trait WithMessage {
    fn with_message(self, message: String) -> Self;
}

impl WithMessage for NewEvent {
    fn with_message(mut self, message: String) -> Self {
        self.message = cut(&message, vigil_events::model::MAX_MESSAGE);
        self
    }
}
