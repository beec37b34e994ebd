//! Vigil's own events: what the recording runtime, the streams' status and the audit log
//! become on the event bus (docs/events.md lists every kind).
//!
//! - [`AuditFeed`] turns audit-log entries into `security.*` events. It reads the log (the
//!   CLI and other processes write to it too) after the last entry it turned into an event,
//!   a position kept in the event store once those events are stored: every entry becomes
//!   an event at least once, across restarts and crashes.
//! - [`StatusWatch`] turns a stream's status changes into `camera.connection_lost` and
//!   `camera.connection_restored` (the recording runtime runs it, with its own `system.*` and
//!   `recording.*` events).
//! - [`visibility`] is the rule of who reads which events, for every front end that shows
//!   them (the API's queries and its live WebSocket).

use std::collections::HashMap;
use std::sync::Arc;

use vigil_access::{
    Access, AuditEntry, AuditKind, AuditQuery, CameraScope, Denied, Permission, Principal,
};
use vigil_events::{Category, EventBus, NewEvent, Severity, Source, SourceKind};
use vigil_media::store::CameraStatus;

/// The audit feed's position in the event store.
const AUDIT_CURSOR: &str = "audit";
/// Audit entries turned into events per pass at most.
const AUDIT_BATCH: usize = 500;

/// The event of one audit entry: `security.<audit kind>`, with the user, address and the
/// entry's details as attributes, and its sequence number (`audit_seq`) so an event can be
/// traced back to the hash-chained log.
pub fn audit_event(server: &str, entry: &AuditEntry) -> NewEvent {
    let severity = match entry.kind {
        AuditKind::IntrusionAlert | AuditKind::AddressBlocked => Severity::Alert,
        AuditKind::LoginFailed => Severity::Warning,
        AuditKind::PasswordChanged
        | AuditKind::UserCreated
        | AuditKind::UserRemoved
        | AuditKind::PermissionChanged
        | AuditKind::TotpEnabled
        | AuditKind::TotpDisabled
        | AuditKind::TokenCreated
        | AuditKind::TokenRevoked
        | AuditKind::AddressUnblocked
        | AuditKind::CameraChanged
        | AuditKind::CameraPasswordRotation
        | AuditKind::ConfigChanged
        | AuditKind::CertificateOperation
        | AuditKind::Export
        | AuditKind::Verify => Severity::Notice,
        _ => Severity::Info,
    };
    let who = entry.user.as_deref().unwrap_or("unknown");
    let from = entry
        .source
        .as_deref()
        .map(|s| format!(" from {s}"))
        .unwrap_or_default();
    let mut event = NewEvent {
        time_us: entry.time.unix_ms().saturating_mul(1000),
        source: Source::new(SourceKind::Vigil, server),
        kind: format!("security.{}", entry.kind.as_str()),
        category: Category::Security,
        severity,
        message: format!("{}: {who}{from}", entry.kind.as_str().replace('_', " ")),
        camera: None,
        attributes: Default::default(),
    }
    .attribute("audit_seq", entry.seq.to_string());
    if let Some(u) = &entry.user {
        event = event.attribute("user", u.clone());
    }
    if let Some(s) = &entry.source {
        event = event.attribute("address", s.clone());
    }
    if let Some(detail) = entry.detail.as_object() {
        for (k, v) in detail.iter().take(24) {
            if k == "camera" {
                event.camera = v.as_str().map(str::to_owned);
            }
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let key: String = k
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .take(64)
                .collect();
            if !key.is_empty() && key != "audit_seq" && key != "user" && key != "address" {
                event
                    .attributes
                    .insert(key, value.chars().take(1024).collect());
            }
        }
    }
    event
}

/// What a principal may read of the events (docs/events.md): the categories, and the cameras
/// whose events it sees (`None`: every camera; events of no camera are always visible).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    pub categories: Vec<Category>,
    pub cameras: Option<Vec<String>>,
}

/// Who reads which events: the `security` category (the audit log's entries as events) needs
/// `ViewAudit` (admins, auditors); the other categories need `Playback` (admins, operators,
/// viewers), and a principal limited to some cameras sees only those cameras' events.
/// Refused when the principal may read no category.
pub fn visibility(principal: &Principal) -> Result<Visibility, Denied> {
    let audit = principal.authorize(Permission::ViewAudit, None).is_ok();
    let role = principal.role();
    let video = role.grants(Permission::Playback);
    let mut categories = Vec::new();
    if audit {
        categories.push(Category::Security);
    }
    if video {
        categories.extend(
            Category::ALL
                .into_iter()
                .filter(|c| *c != Category::Security),
        );
    }
    if categories.is_empty() {
        return Err(Denied::Role {
            role,
            permission: Permission::Playback,
        });
    }
    let cameras = match (role.sees_all_cameras(), principal.cameras()) {
        (true, _) | (_, CameraScope::All) => None,
        (false, CameraScope::Only(set)) => Some(set.iter().cloned().collect()),
    };
    Ok(Visibility {
        categories,
        cameras,
    })
}

/// Turns new audit-log entries into events, from where it stopped.
pub struct AuditFeed {
    access: Arc<Access>,
    bus: Arc<EventBus>,
    /// The last audit sequence number turned into a stored event.
    done: u64,
    /// The time of that entry: the log is queried from there (its time filter is in ms).
    done_ms: i64,
}

impl AuditFeed {
    /// Resumes after the last entry whose event was stored.
    pub fn new(access: Arc<Access>, bus: Arc<EventBus>) -> Result<Self, vigil_events::StoreError> {
        let done = u64::try_from(bus.store().cursor(AUDIT_CURSOR)?).unwrap_or(0);
        Ok(AuditFeed {
            access,
            bus,
            done,
            done_ms: i64::MIN,
        })
    }

    /// One pass (blocking: database reads and a wait for the bus to store): publishes the
    /// entries after the last one done, then records how far it got. Returns how many.
    pub fn pass(&mut self) -> usize {
        let entries = match self.access.audit_query(&AuditQuery {
            from: (self.done_ms > i64::MIN)
                .then(|| vigil_access::Timestamp::from_unix_ms(self.done_ms)),
            newest_first: false,
            limit: Some(AUDIT_BATCH + 64),
            ..Default::default()
        }) {
            Ok(e) => e,
            // An unreachable database is reported once by vigil-db; the next pass retries.
            Err(e) if e.is_unavailable() => return 0,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the audit log for events");
                return 0;
            }
        };
        let new: Vec<&AuditEntry> = entries
            .iter()
            .filter(|e| e.seq > self.done)
            .take(AUDIT_BATCH)
            .collect();
        let Some(last) = new.last() else {
            if let Some(e) = entries.last() {
                self.done_ms = self.done_ms.max(e.time.unix_ms());
            }
            return 0;
        };
        let (last_seq, last_ms) = (last.seq, last.time.unix_ms());
        for entry in &new {
            if let Err(e) = self.bus.publish(audit_event(self.bus.server(), entry)) {
                tracing::error!(seq = entry.seq, error = %e, "audit entry refused as an event");
            }
        }
        self.bus.flush();
        if let Err(e) = self.bus.store().set_cursor(AUDIT_CURSOR, last_seq as i64) {
            tracing::error!(error = %e, "cannot record the audit feed's position");
        }
        self.done = last_seq;
        self.done_ms = last_ms;
        new.len()
    }
}

/// How long events are kept, and how many at most (the oldest go first).
pub const EVENT_RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);
pub const MAX_EVENTS: u64 = 10_000_000;
/// How often event retention runs.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The management role's event upkeep until `shutdown` resolves: the audit feed every second
/// (and once more at the end), event retention every hour.
pub async fn run_event_upkeep(
    access: Arc<Access>,
    bus: Arc<EventBus>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let feed = match AuditFeed::new(access, bus.clone()) {
        Ok(f) => Arc::new(std::sync::Mutex::new(f)),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the audit feed's position; audit entries are not turned into events");
            return;
        }
    };
    let pass = |feed: Arc<std::sync::Mutex<AuditFeed>>| async move {
        // A pass drains what accumulated (at most a batch at a time).
        let _ = tokio::task::spawn_blocking(move || {
            let mut f = feed.lock().unwrap_or_else(|p| p.into_inner());
            while f.pass() == AUDIT_BATCH {}
        })
        .await;
    };
    let prune = |bus: Arc<EventBus>| async move {
        let cutoff = vigil_events::model::now_us() - EVENT_RETENTION.as_micros() as i64;
        match tokio::task::spawn_blocking(move || bus.store().prune(cutoff, MAX_EVENTS)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "event retention"),
            Ok(Err(e)) => tracing::error!(error = %e, "event retention failed"),
            _ => {}
        }
    };
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut prune_tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => pass(feed.clone()).await,
            _ = prune_tick.tick() => prune(bus.clone()).await,
        }
    }
    pass(feed).await;
}

/// What a stream's status said last, to tell changes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    Up,
    Down,
}

/// Watches the streams' status for connection changes.
#[derive(Debug, Default)]
pub struct StatusWatch {
    last: HashMap<String, Link>,
}

impl StatusWatch {
    /// Looks at one stream's status (`name` as people know it, `camera` the camera's own
    /// name); returns the event of a change, if it changed. The first `Down` seen is an
    /// event too (a camera that never connected); the first `Up` is not.
    pub fn observe(
        &mut self,
        server: &str,
        stream_id: &str,
        name: &str,
        camera: &str,
        status: &CameraStatus,
    ) -> Option<NewEvent> {
        let now = match status.state.as_str() {
            "recording" | "live" => Link::Up,
            "reconnecting" | "failed" => Link::Down,
            _ => return None,
        };
        let before = self.last.insert(stream_id.to_owned(), now.clone());
        if before.as_ref() == Some(&now) || (before.is_none() && now == Link::Up) {
            return None;
        }
        let reason = status
            .last_error
            .clone()
            .unwrap_or_else(|| "unknown".into());
        let event = match now {
            Link::Down => NewEvent::vigil(
                server,
                "camera.connection_lost",
                Category::Camera,
                Severity::Warning,
                format!("{name}: connection lost ({reason}); reconnecting"),
            )
            .attribute("reason", reason),
            Link::Up => NewEvent::vigil(
                server,
                "camera.connection_restored",
                Category::Camera,
                Severity::Notice,
                format!("{name}: connection restored, {}", status.state),
            ),
        };
        Some(event.camera(camera).attribute("stream", name))
    }

    /// Forgets streams no longer running.
    pub fn retain(&mut self, running: impl Fn(&str) -> bool) {
        self.last.retain(|id, _| running(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_access::Timestamp;

    fn status(state: &str, error: Option<&str>) -> CameraStatus {
        CameraStatus {
            state: state.into(),
            last_error: error.map(str::to_owned),
            ..Default::default()
        }
    }

    fn principal(role: vigil_access::Role, cameras: CameraScope) -> Principal {
        Principal::Token {
            token_id: "t1".into(),
            name: "test".into(),
            role,
            cameras,
        }
    }

    #[test]
    fn visibility_follows_role_and_camera_scope() {
        use vigil_access::Role;
        let video: Vec<Category> = Category::ALL
            .into_iter()
            .filter(|c| *c != Category::Security)
            .collect();
        let admin = visibility(&principal(Role::Admin, CameraScope::only(["a"]))).unwrap();
        assert_eq!(admin.categories[0], Category::Security);
        assert_eq!(admin.categories[1..], video[..]);
        assert_eq!(
            admin.cameras, None,
            "an admin sees every camera whatever its scope"
        );
        let auditor = visibility(&principal(Role::Auditor, CameraScope::All)).unwrap();
        assert_eq!(auditor.categories, vec![Category::Security]);
        let viewer = visibility(&principal(Role::Viewer, CameraScope::only(["b", "a"]))).unwrap();
        assert_eq!(
            viewer.categories, video,
            "no security events without ViewAudit"
        );
        assert_eq!(viewer.cameras, Some(vec!["a".to_string(), "b".to_string()]));
        let operator = visibility(&principal(Role::Operator, CameraScope::All)).unwrap();
        assert_eq!(operator.categories, video);
        assert_eq!(operator.cameras, None);
        let none = visibility(&principal(
            Role::Operator,
            CameraScope::only(Vec::<String>::new()),
        ))
        .unwrap();
        assert_eq!(
            none.cameras,
            Some(Vec::new()),
            "an empty scope is no camera, not all"
        );
    }

    #[test]
    fn connection_changes_become_events_once() {
        let mut w = StatusWatch::default();
        let mut see = |s: CameraStatus| {
            w.observe("srv", "cam-1", "lobby", "lobby", &s)
                .map(|e| (e.kind, e.severity, e.message))
        };
        assert_eq!(see(status("connecting", None)), None);
        assert_eq!(
            see(status("recording", None)),
            None,
            "the first up is normal"
        );
        assert_eq!(see(status("recording", None)), None);
        let lost = see(status("reconnecting", Some("no frames for 10 s"))).unwrap();
        assert_eq!(lost.0, "camera.connection_lost");
        assert_eq!(lost.1, Severity::Warning);
        assert!(lost.2.contains("no frames for 10 s"), "{}", lost.2);
        assert_eq!(see(status("reconnecting", Some("refused"))), None);
        let back = see(status("recording", None)).unwrap();
        assert_eq!(back.0, "camera.connection_restored");
        // A camera that never connects is an event too.
        let mut w = StatusWatch::default();
        let e = w
            .observe(
                "srv",
                "cam-2",
                "gate",
                "gate",
                &status("failed", Some("401")),
            )
            .unwrap();
        assert_eq!(
            (e.kind.as_str(), e.camera.as_deref()),
            ("camera.connection_lost", Some("gate"))
        );
        e.check().unwrap();
    }

    #[test]
    fn audit_entries_become_security_events_with_their_details() {
        let entry = AuditEntry {
            seq: 17,
            time: Timestamp::from_unix_ms(1_700_000_000_123),
            time_utc: String::new(),
            kind: AuditKind::LoginFailed,
            user: Some("mallory".into()),
            source: Some("192.0.2.7".into()),
            detail: serde_json::json!({"reason": "bad password", "attempts": 3, "camera": "lobby", "bad key!": "x"}),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let e = audit_event("srv", &entry);
        e.check().unwrap();
        assert_eq!(e.kind, "security.login_failed");
        assert_eq!(e.category, Category::Security);
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.time_us, 1_700_000_000_123_000);
        assert_eq!(e.message, "login failed: mallory from 192.0.2.7");
        assert_eq!(e.camera.as_deref(), Some("lobby"));
        assert_eq!(e.attributes["audit_seq"], "17");
        assert_eq!(e.attributes["address"], "192.0.2.7");
        assert_eq!(e.attributes["attempts"], "3");
        assert_eq!(e.attributes["badkey"], "x");
        let blocked = AuditEntry {
            kind: AuditKind::AddressBlocked,
            ..entry
        };
        assert_eq!(audit_event("srv", &blocked).severity, Severity::Alert);
    }
}
