//! Alarms: what a rule raises for people to handle, stored in `events.db` beside the
//! events. An alarm goes new → acknowledged → closed (or new → closed), each step with who,
//! when and a comment; closed is final. While an alarm is open, the same rule firing again
//! for the same camera and source counts into it (count, last seen, latest message) instead
//! of raising another. Semantics: docs/rules-and-alarms.md.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use serde::Serialize;

use crate::model::{Event, SourceKind};
use crate::store::{DEFAULT_PAGE, Db, MAX_PAGE, StoreError};

/// Longest comment on an acknowledge or close.
pub const MAX_COMMENT: usize = 1024;

/// Where an alarm is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmState {
    New,
    Acknowledged,
    Closed,
}

/// What someone does to an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmStep {
    Acknowledge,
    Close,
}

impl AlarmStep {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmStep::Acknowledge => "acknowledge",
            AlarmStep::Close => "close",
        }
    }
}

impl AlarmState {
    pub const ALL: [AlarmState; 3] = [
        AlarmState::New,
        AlarmState::Acknowledged,
        AlarmState::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::New => "new",
            AlarmState::Acknowledged => "acknowledged",
            AlarmState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<AlarmState> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The state after `step`, or `None` when the step does not apply: only a new alarm can
    /// be acknowledged, and a closed one stays closed.
    pub fn after(self, step: AlarmStep) -> Option<AlarmState> {
        match (self, step) {
            (AlarmState::New, AlarmStep::Acknowledge) => Some(AlarmState::Acknowledged),
            (AlarmState::New | AlarmState::Acknowledged, AlarmStep::Close) => {
                Some(AlarmState::Closed)
            }
            _ => None,
        }
    }
}

/// Who did a step, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handling {
    pub by: String,
    pub time_us: i64,
    pub comment: Option<String>,
}

/// A stored alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm {
    pub id: i64,
    /// The rule that raised it.
    pub rule: String,
    /// 1 (most urgent) … 5.
    pub priority: u8,
    pub state: AlarmState,
    pub camera: Option<String>,
    pub source_kind: SourceKind,
    pub source: String,
    /// The kind of the event that raised it.
    pub kind: String,
    /// The latest matching event's message.
    pub message: String,
    /// Matching events counted into it while open.
    pub count: u64,
    /// The first and the latest matching event's time (µs).
    pub first_us: i64,
    pub last_us: i64,
    pub first_event_id: Option<i64>,
    pub last_event_id: Option<i64>,
    pub created_us: i64,
    pub acknowledged: Option<Handling>,
    pub closed: Option<Handling>,
}

/// What raising gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raised {
    /// A new alarm.
    New(Alarm),
    /// The open alarm of the same rule, camera and source, counted up.
    Repeated(Alarm),
}

impl Raised {
    pub fn alarm(&self) -> &Alarm {
        match self {
            Raised::New(a) | Raised::Repeated(a) => a,
        }
    }
}

/// One alarm to raise: the rule that fired, its priority, the stored event that fired it.
#[derive(Debug, Clone, Copy)]
pub struct Raise<'a> {
    pub rule: &'a str,
    pub priority: u8,
    pub event: &'a Event,
}

/// Why a step was refused.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    #[error("no alarm {0}")]
    NotFound(i64),
    #[error("alarm {id} is {state}; it cannot be {step}d (new → acknowledged → closed)", state = .state.as_str(), step = .step.as_str())]
    Transition {
        id: i64,
        state: AlarmState,
        step: AlarmStep,
    },
    #[error("a comment is at most {MAX_COMMENT} bytes of text without control characters")]
    BadComment,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which alarms a listing wants; every field narrows it. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmQuery {
    /// Any of these states; empty: any.
    pub states: Vec<AlarmState>,
    pub camera: Option<String>,
    pub rule: Option<String>,
    /// At least this urgent (priority number at most this).
    pub priority: Option<u8>,
    /// Only alarms of these cameras (a caller's camera scope; alarms of no camera are left
    /// out). `None`: all.
    pub visible_cameras: Option<Vec<String>>,
    /// Paging: alarms with a smaller id.
    pub before_id: Option<i64>,
    /// At most this many (capped at 1000); 0: 100.
    pub limit: usize,
}

/// A page of alarms, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmPage {
    pub alarms: Vec<Alarm>,
    pub next_before_id: Option<i64>,
}

const COLUMNS: &str = "id, rule, priority, state, camera, source_kind, source_name, kind, \
    message, count, first_us, last_us, first_event_id, last_event_id, created_us, \
    acknowledged_by, acknowledged_us, acknowledged_comment, closed_by, closed_us, closed_comment";

/// The alarm table of `events.db`.
#[derive(Debug)]
pub struct AlarmStore {
    db: Db,
}

impl AlarmStore {
    /// Opens (creating or migrating) `events.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Ok(AlarmStore { db: Db::open(dir)? })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        self.db.err()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock()
    }

    /// Raises an alarm of `rule` for `event`, or counts `event` into the open alarm of the
    /// same rule, camera and source (de-duplication). Returns the alarm after the write.
    pub fn raise(
        &self,
        rule: &str,
        priority: u8,
        event: &Event,
        now_us: i64,
    ) -> Result<Raised, StoreError> {
        let mut all = self.raise_all(
            &[Raise {
                rule,
                priority,
                event,
            }],
            now_us,
        )?;
        Ok(all.pop().expect("one alarm per request"))
    }

    /// [`AlarmStore::raise`] for each of `requests`, in order, in one transaction: a burst of
    /// matches takes the database's write lock once instead of once per match (the rule
    /// worker's batches, docs/rules-and-alarms.md "How rules run"). All or none are written.
    pub fn raise_all(
        &self,
        requests: &[Raise<'_>],
        now_us: i64,
    ) -> Result<Vec<Raised>, StoreError> {
        let err = self.err();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let mut out = Vec::with_capacity(requests.len());
        // A burst fires the same rule for the same source many times in one batch: the first
        // match of a (rule, camera, source) goes to the database, the next ones count into
        // that alarm here, and each alarm counted into is written once at the end, with what
        // the per-match updates would have left (same count, times, latest event, message,
        // priority). Nothing else writes meanwhile: the transaction holds the write lock.
        let mut touched: HashMap<(&str, Option<&str>, SourceKind, &str), Alarm> = HashMap::new();
        let mut dirty: Vec<(&str, Option<&str>, SourceKind, &str)> = Vec::new();
        for r in requests {
            let e = &r.event.event;
            let key = (
                r.rule,
                e.camera.as_deref(),
                e.source.kind,
                e.source.name.as_str(),
            );
            if let Some(a) = touched.get_mut(&key) {
                count_into(a, r);
                if !dirty.contains(&key) {
                    dirty.push(key);
                }
                out.push(Raised::Repeated(a.clone()));
                continue;
            }
            let raised = raise_in(&tx, r, now_us).map_err(&err)?;
            touched.insert(key, raised.alarm().clone());
            out.push(raised);
        }
        for key in dirty {
            let a = &touched[&key];
            tx.prepare_cached(
                "UPDATE alarms SET count = ?2, last_us = ?3, last_event_id = ?4, message = ?5, \
                 priority = ?6 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    a.id,
                    i64::try_from(a.count).unwrap_or(i64::MAX),
                    a.last_us,
                    a.last_event_id,
                    a.message,
                    a.priority
                ])
            })
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        Ok(out)
    }

    /// Acknowledges or closes alarm `id` as `by`; refused when the step does not apply to
    /// its state. Returns the alarm after the step.
    pub fn step(
        &self,
        id: i64,
        step: AlarmStep,
        by: &str,
        comment: Option<&str>,
        now_us: i64,
    ) -> Result<Alarm, AlarmError> {
        if comment.is_some_and(|c| c.len() > MAX_COMMENT || c.chars().any(char::is_control)) {
            return Err(AlarmError::BadComment);
        }
        let err = self.err();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let alarm = get_in(&tx, id)
            .map_err(&err)?
            .ok_or(AlarmError::NotFound(id))?;
        let Some(next) = alarm.state.after(step) else {
            return Err(AlarmError::Transition {
                id,
                state: alarm.state,
                step,
            });
        };
        let sql = match step {
            AlarmStep::Acknowledge => {
                "UPDATE alarms SET state = ?2, acknowledged_by = ?3, acknowledged_us = ?4, \
                 acknowledged_comment = ?5 WHERE id = ?1"
            }
            AlarmStep::Close => {
                "UPDATE alarms SET state = ?2, closed_by = ?3, closed_us = ?4, \
                 closed_comment = ?5 WHERE id = ?1"
            }
        };
        tx.execute(sql, params![id, next.as_str(), by, now_us, comment])
            .map_err(&err)?;
        let alarm = get_in(&tx, id)
            .map_err(&err)?
            .expect("the alarm just written");
        tx.commit().map_err(&err)?;
        Ok(alarm)
    }

    pub fn get(&self, id: i64) -> Result<Option<Alarm>, StoreError> {
        get_in(&self.lock(), id).map_err(self.err())
    }

    /// The alarms `q` asks for, newest first.
    pub fn query(&self, q: &AlarmQuery) -> Result<AlarmPage, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM alarms WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if !q.states.is_empty() {
            sql.push_str(" AND state IN ('-'");
            for s in &q.states {
                arg(&mut sql, ", ?", s.as_str().to_owned().into());
            }
            sql.push(')');
        }
        if let Some(c) = &q.camera {
            arg(&mut sql, " AND camera = ?", c.clone().into());
        }
        if let Some(r) = &q.rule {
            arg(&mut sql, " AND rule = ?", r.clone().into());
        }
        if let Some(p) = q.priority {
            arg(&mut sql, " AND priority <= ?", i64::from(p).into());
        }
        if let Some(cams) = &q.visible_cameras {
            // `IN (NULL, ...)` is never true for NULL: alarms of no camera stay out.
            sql.push_str(" AND camera IN (NULL");
            for c in cams {
                arg(&mut sql, ", ?", c.clone().into());
            }
            sql.push(')');
        }
        if let Some(id) = q.before_id {
            arg(&mut sql, " AND id < ?", id.into());
        }
        let limit = match q.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&sql).map_err(self.err())?;
        let mut alarms: Vec<Alarm> = stmt
            .query_map(params_from_iter(args), alarm_from_row)
            .map_err(self.err())?
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        let next_before_id = if alarms.len() > limit {
            alarms.truncate(limit);
            alarms.last().map(|a| a.id)
        } else {
            None
        };
        Ok(AlarmPage {
            alarms,
            next_before_id,
        })
    }
}

/// One raise inside the caller's transaction.
fn raise_in(tx: &Connection, r: &Raise<'_>, now_us: i64) -> rusqlite::Result<Raised> {
    let (rule, priority, event) = (r.rule, r.priority, r.event);
    let e = &event.event;
    // Cached statements: a burst of matches runs these per match, and preparing them each
    // time cost more than running them.
    let open: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM alarms WHERE state != 'closed' AND rule = ?1 \
             AND coalesce(camera, '') = coalesce(?2, '') AND source_kind = ?3 AND source_name = ?4",
        )?
        .query_row(
            params![rule, e.camera, e.source.kind.as_str(), e.source.name],
            |r| r.get(0),
        )
        .optional()?;
    let (id, new) = match open {
        Some(id) => {
            tx.prepare_cached(
                "UPDATE alarms SET count = count + 1, last_us = max(last_us, ?2), \
                 last_event_id = ?3, message = ?4, priority = min(priority, ?5) WHERE id = ?1",
            )?
            .execute(params![id, e.time_us, event.id, e.message, priority])?;
            (id, false)
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO alarms (rule, priority, state, camera, source_kind, source_name, \
                 kind, message, count, first_us, last_us, first_event_id, last_event_id, created_us) \
                 VALUES (?1, ?2, 'new', ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8, ?9, ?9, ?10)",
            )?
            .execute(params![
                    rule,
                    priority,
                    e.camera,
                    e.source.kind.as_str(),
                    e.source.name,
                    e.kind,
                    e.message,
                    e.time_us,
                    event.id,
                    now_us
                ],
            )?;
            (tx.last_insert_rowid(), true)
        }
    };
    let alarm = get_in(tx, id)?.expect("the alarm just written");
    Ok(if new {
        Raised::New(alarm)
    } else {
        Raised::Repeated(alarm)
    })
}

/// `r`'s match counted into the open alarm `a`, as `raise_in`'s UPDATE counts it.
fn count_into(a: &mut Alarm, r: &Raise<'_>) {
    let e = &r.event.event;
    a.count += 1;
    a.last_us = a.last_us.max(e.time_us);
    a.last_event_id = Some(r.event.id);
    a.message.clone_from(&e.message);
    a.priority = a.priority.min(r.priority);
}

fn get_in(conn: &Connection, id: i64) -> rusqlite::Result<Option<Alarm>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM alarms WHERE id = ?1"))?
        .query_row([id], alarm_from_row)
        .optional()
}

fn alarm_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alarm> {
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    let state: String = r.get(3)?;
    let source_kind: String = r.get(5)?;
    let handling = |by: usize| -> rusqlite::Result<Option<Handling>> {
        let who: Option<String> = r.get(by)?;
        Ok(match who {
            Some(by_name) => Some(Handling {
                by: by_name,
                time_us: r.get(by + 1)?,
                comment: r.get(by + 2)?,
            }),
            None => None,
        })
    };
    Ok(Alarm {
        id: r.get(0)?,
        rule: r.get(1)?,
        priority: r.get(2)?,
        state: AlarmState::parse(&state).ok_or_else(|| bad(3, "alarm state"))?,
        camera: r.get(4)?,
        source_kind: SourceKind::parse(&source_kind).ok_or_else(|| bad(5, "source kind"))?,
        source: r.get(6)?,
        kind: r.get(7)?,
        message: r.get(8)?,
        count: r.get::<_, i64>(9)? as u64,
        first_us: r.get(10)?,
        last_us: r.get(11)?,
        first_event_id: r.get(12)?,
        last_event_id: r.get(13)?,
        created_us: r.get(14)?,
        acknowledged: handling(15)?,
        closed: handling(18)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Category, NewEvent, Severity, Source};

    fn event(id: i64, camera: Option<&str>, source: &str, time_us: i64, message: &str) -> Event {
        Event {
            id,
            received_us: time_us,
            event: NewEvent {
                time_us,
                source: Source::new(SourceKind::Syslog, source),
                kind: "syslog.dot1x_failure".into(),
                category: Category::External,
                severity: Severity::Warning,
                message: message.into(),
                camera: camera.map(str::to_owned),
                attributes: Default::default(),
            },
        }
    }

    #[test]
    fn a_batch_raises_and_counts_in_order_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let s = AlarmStore::open(dir.path()).unwrap();
        let (e1, e2, e3) = (
            event(1, Some("lobby"), "sw-1", 100, "one"),
            event(2, Some("lobby"), "sw-1", 200, "two"),
            event(3, Some("lobby"), "sw-2", 300, "three"),
        );
        let raise = |event| Raise {
            rule: "r",
            priority: 3,
            event,
        };
        let out = s
            .raise_all(&[raise(&e1), raise(&e2), raise(&e3)], 1000)
            .unwrap();
        let [Raised::New(a), Raised::Repeated(b), Raised::New(c)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(a.id, b.id, "the second match of sw-1 counts into the first");
        assert_eq!((b.count, b.last_us, b.last_event_id), (2, 200, Some(2)));
        assert_ne!(c.id, a.id);
        assert_eq!(s.get(a.id).unwrap().unwrap().count, 2);
        assert!(s.raise_all(&[], 1000).unwrap().is_empty());
        // A later batch counts into the alarms already open: each answer is the alarm after
        // its own match, and the database holds what match-by-match updates would leave
        // (the latest event and message, the latest time, the most urgent priority).
        let (e4, e5, e6) = (
            event(4, Some("lobby"), "sw-1", 150, "four"),
            event(5, Some("lobby"), "sw-2", 400, "five"),
            event(6, Some("lobby"), "sw-1", 120, "six"),
        );
        let out = s
            .raise_all(
                &[
                    raise(&e4),
                    Raise {
                        rule: "r",
                        priority: 1,
                        event: &e5,
                    },
                    raise(&e6),
                ],
                2000,
            )
            .unwrap();
        let [
            Raised::Repeated(d),
            Raised::Repeated(f),
            Raised::Repeated(g),
        ] = &out[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!((d.id, d.count, d.last_event_id), (a.id, 3, Some(4)));
        assert_eq!((g.id, g.count, g.last_event_id), (a.id, 4, Some(6)));
        assert_eq!((g.last_us, g.message.as_str()), (200, "six"));
        assert_eq!((f.id, f.count, f.priority, f.last_us), (c.id, 2, 1, 400));
        let stored = s.get(a.id).unwrap().unwrap();
        assert_eq!(&stored, g);
        assert_eq!(&s.get(c.id).unwrap().unwrap(), f);
    }

    #[test]
    fn the_state_machine_goes_forward_only() {
        use AlarmState::*;
        use AlarmStep::*;
        assert_eq!(New.after(Acknowledge), Some(Acknowledged));
        assert_eq!(New.after(Close), Some(Closed));
        assert_eq!(Acknowledged.after(Close), Some(Closed));
        assert_eq!(Acknowledged.after(Acknowledge), None);
        assert_eq!(Closed.after(Close), None);
        assert_eq!(Closed.after(Acknowledge), None);
    }

    #[test]
    fn open_alarms_deduplicate_per_rule_camera_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let s = AlarmStore::open(dir.path()).unwrap();
        let a = s
            .raise("r", 3, &event(1, Some("lobby"), "sw-1", 100, "first"), 1000)
            .unwrap();
        let Raised::New(a) = a else { panic!("{a:?}") };
        assert_eq!((a.state, a.count, a.first_us), (AlarmState::New, 1, 100));
        // Same rule, camera, source: counted in; the more urgent priority wins.
        let b = s
            .raise(
                "r",
                1,
                &event(2, Some("lobby"), "sw-1", 200, "second"),
                1001,
            )
            .unwrap();
        let Raised::Repeated(b) = b else {
            panic!("{b:?}")
        };
        assert_eq!(b.id, a.id);
        assert_eq!(
            (b.count, b.first_us, b.last_us, b.priority),
            (2, 100, 200, 1)
        );
        assert_eq!((b.message.as_str(), b.last_event_id), ("second", Some(2)));
        // Another camera, another source, another rule: new alarms.
        for (rule, cam, src) in [
            ("r", Some("gate"), "sw-1"),
            ("r", Some("lobby"), "sw-2"),
            ("q", Some("lobby"), "sw-1"),
            ("r", None, "sw-1"),
        ] {
            assert!(matches!(
                s.raise(rule, 3, &event(3, cam, src, 300, "x"), 1002)
                    .unwrap(),
                Raised::New(_)
            ));
        }
        // An acknowledged alarm is still open; a closed one is not.
        s.step(a.id, AlarmStep::Acknowledge, "alice", Some("looking"), 2000)
            .unwrap();
        assert!(matches!(
            s.raise("r", 3, &event(4, Some("lobby"), "sw-1", 400, "x"), 2001)
                .unwrap(),
            Raised::Repeated(_)
        ));
        let closed = s.step(a.id, AlarmStep::Close, "bob", None, 3000).unwrap();
        assert_eq!(closed.state, AlarmState::Closed);
        assert_eq!(
            closed.acknowledged,
            Some(Handling {
                by: "alice".into(),
                time_us: 2000,
                comment: Some("looking".into())
            })
        );
        assert_eq!(
            closed.closed,
            Some(Handling {
                by: "bob".into(),
                time_us: 3000,
                comment: None
            })
        );
        assert_eq!(closed.count, 3);
        let again = s
            .raise("r", 3, &event(5, Some("lobby"), "sw-1", 500, "x"), 3001)
            .unwrap();
        assert!(matches!(again, Raised::New(ref n) if n.id != a.id));
    }

    #[test]
    fn steps_that_do_not_apply_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = AlarmStore::open(dir.path()).unwrap();
        let a = s
            .raise("r", 3, &event(1, None, "sw", 1, "x"), 1)
            .unwrap()
            .alarm()
            .clone();
        s.step(a.id, AlarmStep::Close, "alice", None, 2).unwrap();
        let e = s
            .step(a.id, AlarmStep::Acknowledge, "bob", None, 3)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "alarm {} is closed; it cannot be acknowledged (new → acknowledged → closed)",
                a.id
            )
        );
        assert!(matches!(
            s.step(a.id, AlarmStep::Close, "bob", None, 3),
            Err(AlarmError::Transition { .. })
        ));
        assert!(matches!(
            s.step(999, AlarmStep::Close, "bob", None, 3),
            Err(AlarmError::NotFound(999))
        ));
        assert!(matches!(
            s.step(a.id, AlarmStep::Close, "bob", Some("a\nb"), 3),
            Err(AlarmError::BadComment)
        ));
    }

    #[test]
    fn listings_filter_scope_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let s = AlarmStore::open(dir.path()).unwrap();
        for i in 0..30 {
            let cam = match i % 3 {
                0 => Some("lobby"),
                1 => Some("gate"),
                _ => None,
            };
            s.raise(
                &format!("r{i}"),
                (i % 5 + 1) as u8,
                &event(i, cam, "sw", i, "x"),
                i,
            )
            .unwrap();
        }
        let q = |q: AlarmQuery| s.query(&q).unwrap();
        let all = q(AlarmQuery {
            limit: 1000,
            ..Default::default()
        });
        assert_eq!(all.alarms.len(), 30);
        assert!(all.alarms.windows(2).all(|w| w[0].id > w[1].id));
        let lobby = q(AlarmQuery {
            camera: Some("lobby".into()),
            ..Default::default()
        });
        assert_eq!(lobby.alarms.len(), 10);
        let scoped = q(AlarmQuery {
            visible_cameras: Some(vec!["gate".into()]),
            ..Default::default()
        });
        assert!(
            scoped
                .alarms
                .iter()
                .all(|a| a.camera.as_deref() == Some("gate"))
        );
        assert_eq!(
            scoped.alarms.len(),
            10,
            "alarms of no camera are not in a camera scope"
        );
        assert!(
            q(AlarmQuery {
                visible_cameras: Some(vec![]),
                ..Default::default()
            })
            .alarms
            .is_empty()
        );
        let urgent = q(AlarmQuery {
            priority: Some(1),
            ..Default::default()
        });
        assert!(urgent.alarms.iter().all(|a| a.priority == 1));
        assert_eq!(urgent.alarms.len(), 6);
        let first = all.alarms[29].id;
        s.step(first, AlarmStep::Close, "x", None, 1).unwrap();
        let open = q(AlarmQuery {
            states: vec![AlarmState::New, AlarmState::Acknowledged],
            limit: 1000,
            ..Default::default()
        });
        assert_eq!(open.alarms.len(), 29);
        let mut seen = 0;
        let mut before = None;
        loop {
            let p = q(AlarmQuery {
                limit: 7,
                before_id: before,
                ..Default::default()
            });
            seen += p.alarms.len();
            match p.next_before_id {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        assert_eq!(seen, 30);
    }
}
