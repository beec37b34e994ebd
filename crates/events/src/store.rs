//! The event store: `events.db` (SQLite, WAL) in the data directory, apart from the
//! recording index so that a burst of events never waits on (or delays) recording. Inserts
//! come in batches from the bus's writer; queries filter and page by id; retention deletes by
//! age and count. Layout: docs/events.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::model::{Category, Event, NewEvent, Severity, Source, SourceKind};

/// The store's schema version (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 4;
/// Most events one query answers.
pub const MAX_PAGE: usize = 1000;
/// Events a query answers when it does not say.
pub const DEFAULT_PAGE: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "event database {path} has schema version {found}, newer than this Vigil knows ({known}); run the Vigil version that wrote it"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// Which events a query wants; every field narrows it. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Events that happened at or after this time (Unix µs).
    pub from_us: Option<i64>,
    /// ... and before this time.
    pub to_us: Option<i64>,
    /// Kinds: `camera.connection_lost` exactly, or every kind under a prefix ending in `.`
    /// (`camera.`). Empty: any.
    pub kinds: Vec<String>,
    pub category: Option<Category>,
    /// Only events of these categories (what the caller may read). `None`: any.
    pub allowed_categories: Option<Vec<Category>>,
    /// At least this severe (`warning` also gives `error`, `critical`, …).
    pub severity: Option<Severity>,
    pub camera: Option<String>,
    pub source_kind: Option<SourceKind>,
    pub source_name: Option<String>,
    /// Message contains this text (case-insensitive for ASCII).
    pub text: Option<String>,
    /// Only events concerning these cameras, or no camera (a caller's permission scope).
    /// `None`: all cameras.
    pub visible_cameras: Option<Vec<String>>,
    /// Paging: events with a smaller id (the previous page's `next_before_id`).
    pub before_id: Option<i64>,
    /// Events with a larger id (to catch up after a known event).
    pub after_id: Option<i64>,
    /// At most this many (capped at [`MAX_PAGE`]); 0: [`DEFAULT_PAGE`].
    pub limit: usize,
}

impl EventQuery {
    /// Whether `e` is one of the events this query selects, by the same rules as the
    /// database query (the paging fields aside): how live subscriptions filter.
    pub fn matches(&self, e: &Event) -> bool {
        let ev = &e.event;
        self.from_us.is_none_or(|t| ev.time_us >= t)
            && self.to_us.is_none_or(|t| ev.time_us < t)
            && (self.kinds.is_empty()
                || self.kinds.iter().any(|k| {
                    if k.ends_with('.') {
                        ev.kind.starts_with(k.as_str())
                    } else {
                        ev.kind == *k
                    }
                }))
            && self.category.is_none_or(|c| ev.category == c)
            && self
                .allowed_categories
                .as_ref()
                .is_none_or(|a| a.contains(&ev.category))
            && self.severity.is_none_or(|s| ev.severity <= s)
            && self
                .camera
                .as_ref()
                .is_none_or(|c| ev.camera.as_ref() == Some(c))
            && self.source_kind.is_none_or(|k| ev.source.kind == k)
            && self
                .source_name
                .as_ref()
                .is_none_or(|n| ev.source.name == *n)
            && self.text.as_ref().is_none_or(|t| {
                ev.message
                    .to_ascii_lowercase()
                    .contains(&t.to_ascii_lowercase())
            })
            && self
                .visible_cameras
                .as_ref()
                .is_none_or(|cams| ev.camera.as_ref().is_none_or(|c| cams.contains(c)))
            && self.before_id.is_none_or(|id| e.id < id)
            && self.after_id.is_none_or(|id| e.id > id)
    }
}

/// One page of a query, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub events: Vec<Event>,
    /// Give as `before_id` for the next (older) page; `None` when this was the last.
    pub next_before_id: Option<i64>,
}

/// The event database. Reads share one connection; the bus's writer has its own.
pub struct EventStore {
    path: PathBuf,
    reader: Mutex<Connection>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, received_us, time_us, source_kind, source_name, kind, category, \
    severity, message, camera, attributes";

impl EventStore {
    /// Opens (creating or migrating) `events.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("events.db");
        let conn = connect(&path)?;
        Ok(EventStore {
            path,
            reader: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A connection for the bus's writer.
    pub(crate) fn writer(&self) -> Result<Writer, StoreError> {
        let conn = connect(&self.path)?;
        // The indexes' pages that a stream of inserts keeps touching stay in memory instead
        // of being read back from the WAL for every batch (32 MiB; SQLite's default is 2).
        conn.pragma_update(None, "cache_size", -32_768)
            .map_err(|source| StoreError::Db {
                path: self.path.clone(),
                source,
            })?;
        Ok(Writer {
            path: self.path.clone(),
            conn,
        })
    }

    fn db_err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// The events `q` asks for, newest first.
    pub fn query(&self, q: &EventQuery) -> Result<Page, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM events WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(t) = q.from_us {
            arg(&mut sql, " AND time_us >= ?", t.into());
        }
        if let Some(t) = q.to_us {
            arg(&mut sql, " AND time_us < ?", t.into());
        }
        if !q.kinds.is_empty() {
            sql.push_str(" AND (0");
            for k in &q.kinds {
                match k.strip_suffix('.') {
                    Some(prefix) => arg(
                        &mut sql,
                        " OR substr(kind, 1, length(?)) = ?",
                        format!("{prefix}.").into(),
                    ),
                    None => arg(&mut sql, " OR kind = ?", k.clone().into()),
                }
            }
            sql.push(')');
        }
        if let Some(c) = q.category {
            arg(&mut sql, " AND category = ?", c.as_str().to_owned().into());
        }
        if let Some(allowed) = &q.allowed_categories {
            sql.push_str(" AND category IN ('-'");
            for c in allowed {
                arg(&mut sql, ", ?", c.as_str().to_owned().into());
            }
            sql.push(')');
        }
        if let Some(s) = q.severity {
            arg(&mut sql, " AND severity <= ?", i64::from(s.code()).into());
        }
        if let Some(c) = &q.camera {
            arg(&mut sql, " AND camera = ?", c.clone().into());
        }
        if let Some(k) = q.source_kind {
            arg(
                &mut sql,
                " AND source_kind = ?",
                k.as_str().to_owned().into(),
            );
        }
        if let Some(n) = &q.source_name {
            arg(&mut sql, " AND source_name = ?", n.clone().into());
        }
        if let Some(t) = &q.text {
            let escaped = t
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            arg(
                &mut sql,
                " AND message LIKE ? ESCAPE '\\'",
                format!("%{escaped}%").into(),
            );
        }
        if let Some(cams) = &q.visible_cameras {
            sql.push_str(" AND (camera IS NULL");
            for c in cams {
                arg(&mut sql, " OR camera = ?", c.clone().into());
            }
            sql.push(')');
        }
        if let Some(id) = q.before_id {
            arg(&mut sql, " AND id < ?", id.into());
        }
        if let Some(id) = q.after_id {
            arg(&mut sql, " AND id > ?", id.into());
        }
        let limit = match q.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        // One more than asked tells whether there is a next page.
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare_cached(&sql).map_err(self.db_err())?;
        let mut events: Vec<Event> = stmt
            .query_map(params_from_iter(args), event_from_row)
            .map_err(self.db_err())?
            .collect::<Result<_, _>>()
            .map_err(self.db_err())?;
        let next_before_id = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| e.id)
        } else {
            None
        };
        Ok(Page {
            events,
            next_before_id,
        })
    }

    /// One event by id.
    pub fn get(&self, id: i64) -> Result<Option<Event>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM events WHERE id = ?1"),
            [id],
            event_from_row,
        )
        .optional()
        .map_err(self.db_err())
    }

    /// At most `limit` events with ids after `after_id`, oldest first: how a consumer that
    /// fell behind the live stream (the rule worker) reads what it missed.
    pub fn after(&self, after_id: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))
            .map_err(self.db_err())?;
        stmt.query_map(
            rusqlite::params![after_id, i64::try_from(limit).unwrap_or(i64::MAX)],
            event_from_row,
        )
        .map_err(self.db_err())?
        .collect::<Result<_, _>>()
        .map_err(self.db_err())
    }

    /// The id of the newest event (0 when there is none).
    pub fn last_id(&self) -> Result<i64, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))
            .map_err(self.db_err())
    }

    /// A feed's position (0 when it has none): how far a producer that turns another log
    /// into events (the audit log) has got, kept with the events it produced.
    pub fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("SELECT value FROM cursors WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
        .map(|v| v.unwrap_or(0))
        .map_err(self.db_err())
    }

    /// Sets a feed's position; call it once the events up to there are stored.
    pub fn set_cursor(&self, name: &str, value: i64) -> Result<(), StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        conn.prepare_cached(
            "INSERT INTO cursors (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .and_then(|mut s| s.execute(rusqlite::params![name, value]))
        .map(drop)
        .map_err(self.db_err())
    }

    /// Retention: deletes events received before `cutoff_us`, then the oldest beyond
    /// `max_events`. Returns how many were deleted.
    pub fn prune(&self, cutoff_us: i64, max_events: u64) -> Result<u64, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let by_age = conn
            .execute("DELETE FROM events WHERE received_us < ?1", [cutoff_us])
            .map_err(self.db_err())?;
        let by_count = conn
            .execute(
                "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?1",
                [i64::try_from(max_events).unwrap_or(i64::MAX)],
            )
            .map_err(self.db_err())?;
        Ok((by_age + by_count) as u64)
    }
}

/// The bus writer's connection.
pub(crate) struct Writer {
    path: PathBuf,
    conn: Connection,
}

impl Writer {
    /// Stores `events` (already checked) in one transaction; returns their ids, in order.
    /// The bus moves each event into its stored form afterwards, so nothing is copied.
    pub(crate) fn insert_ids(
        &mut self,
        events: &[NewEvent],
        received_us: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let err = |source| StoreError::Db {
            path: self.path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut ids = Vec::with_capacity(events.len());
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO events (received_us, time_us, source_kind, source_name, kind, \
                     category, severity, message, camera, attributes) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(err)?;
            // One buffer for the batch's attribute JSON rather than a String per event.
            let mut attributes = String::with_capacity(512);
            for e in events {
                attributes.clear();
                attributes_json(&e.attributes, &mut attributes);
                ids.push(
                    stmt.insert(rusqlite::params![
                        received_us,
                        e.time_us,
                        e.source.kind.as_str(),
                        e.source.name,
                        e.kind,
                        e.category.as_str(),
                        e.severity.code(),
                        e.message,
                        e.camera,
                        attributes,
                    ])
                    .map_err(err)?,
                );
            }
        }
        tx.commit().map_err(err)?;
        Ok(ids)
    }

    /// [`Writer::insert_ids`], returning copies of the events with their ids (tests).
    #[cfg(test)]
    pub(crate) fn insert(
        &mut self,
        events: &[NewEvent],
        received_us: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let ids = self.insert_ids(events, received_us)?;
        Ok(ids
            .into_iter()
            .zip(events)
            .map(|(id, e)| Event {
                id,
                received_us,
                event: e.clone(),
            })
            .collect())
    }
}

/// The attributes as the JSON object the `attributes` column holds, appended to `out`:
/// byte for byte what `serde_json::to_string` writes for the map (the test below compares),
/// without its per-character formatter calls, which cost the writer thread more than the
/// SQLite insert of a short value.
fn attributes_json(attributes: &BTreeMap<String, String>, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(k, out);
        out.push(':');
        json_string(v, out);
    }
    out.push('}');
}

/// `s` as a JSON string, escaped as serde_json escapes (`\"`, `\\`, the short forms of
/// backspace, form feed, newline, carriage return and tab, `\u00XX` for the other
/// characters below U+0020; everything else as it is).
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    // Most values need no escape: one test over the bytes (vectorised), then one copy.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// One connection to `events.db` for a store of rows beside the events (alarms, bookmarks):
/// the path for errors, the connection behind a lock that a panicked holder does not poison.
pub(crate) struct Db {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (creating or migrating) `events.db` in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("events.db");
        let conn = connect(&path)?;
        Ok(Db {
            path,
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn connect(path: &Path) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Db {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    // An event a crash loses is at most the last batch the OS had not written: WAL with
    // NORMAL never corrupts the database, and the bus reports what it stored.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    // Checkpoint (copy the WAL into the database, with an fsync) every 16 MiB of WAL rather
    // than SQLite's 4 MiB: an index page that a burst rewrites in batch after batch is copied
    // once per checkpoint, so fewer checkpoints write fewer pages in all.
    conn.pragma_update(None, "wal_autocheckpoint", 4096)
        .map_err(err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 received_us INTEGER NOT NULL,
                 time_us INTEGER NOT NULL,
                 source_kind TEXT NOT NULL,
                 source_name TEXT NOT NULL,
                 kind TEXT NOT NULL,
                 category TEXT NOT NULL,
                 severity INTEGER NOT NULL,
                 message TEXT NOT NULL,
                 camera TEXT,
                 attributes TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS events_time ON events (time_us);
             CREATE INDEX IF NOT EXISTS events_received ON events (received_us);
             CREATE INDEX IF NOT EXISTS events_camera ON events (camera, id);
             CREATE INDEX IF NOT EXISTS events_kind ON events (kind, id);
             CREATE TABLE IF NOT EXISTS cursors (
                 name TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             );
             PRAGMA user_version = 1;
             COMMIT;",
        )
        .map_err(err)?;
    }
    if version < 2 {
        // Alarms and bookmarks (docs/rules-and-alarms.md). At most one open alarm per rule,
        // camera and source: the partial unique index is what de-duplicates.
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS alarms (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 rule TEXT NOT NULL,
                 priority INTEGER NOT NULL,
                 state TEXT NOT NULL,
                 camera TEXT,
                 source_kind TEXT NOT NULL,
                 source_name TEXT NOT NULL,
                 kind TEXT NOT NULL,
                 message TEXT NOT NULL,
                 count INTEGER NOT NULL,
                 first_us INTEGER NOT NULL,
                 last_us INTEGER NOT NULL,
                 first_event_id INTEGER,
                 last_event_id INTEGER,
                 created_us INTEGER NOT NULL,
                 acknowledged_by TEXT,
                 acknowledged_us INTEGER,
                 acknowledged_comment TEXT,
                 closed_by TEXT,
                 closed_us INTEGER,
                 closed_comment TEXT
             );
             CREATE UNIQUE INDEX IF NOT EXISTS alarms_open
                 ON alarms (rule, coalesce(camera, ''), source_kind, source_name)
                 WHERE state != 'closed';
             CREATE INDEX IF NOT EXISTS alarms_state ON alarms (state, id);
             CREATE INDEX IF NOT EXISTS alarms_camera ON alarms (camera, id);
             CREATE TABLE IF NOT EXISTS bookmarks (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 camera TEXT NOT NULL,
                 from_us INTEGER NOT NULL,
                 to_us INTEGER NOT NULL,
                 label TEXT NOT NULL,
                 creator_kind TEXT NOT NULL,
                 creator TEXT NOT NULL,
                 alarm_id INTEGER,
                 event_id INTEGER,
                 created_us INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS bookmarks_camera ON bookmarks (camera, from_us);
             PRAGMA user_version = 2;
             COMMIT;",
        )
        .map_err(err)?;
    }
    if version < 3 {
        // Nonces of signed posts (crate::nonces): a replay stays refused across a restart.
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS nonces (
                 sender TEXT NOT NULL,
                 nonce TEXT NOT NULL,
                 until_s INTEGER NOT NULL,
                 PRIMARY KEY (sender, nonce)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS nonces_until ON nonces (until_s);
             PRAGMA user_version = 3;
             COMMIT;",
        )
        .map_err(err)?;
    }
    if version < 4 {
        // The camera index holds only events of a camera: most events (syslog, Vigil's own)
        // have none, and indexing their NULLs cost every insert an index write that no query
        // uses (`camera = ?` implies NOT NULL, so SQLite still uses the partial index;
        // docs/BENCHMARKS-events.md). On an existing database this builds the smaller index
        // once, at the first start of this version.
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             DROP INDEX IF EXISTS events_camera;
             CREATE INDEX IF NOT EXISTS events_camera ON events (camera, id)
                 WHERE camera IS NOT NULL;
             PRAGMA user_version = 4;
             COMMIT;",
        )
        .map_err(err)?;
    }
    Ok(conn)
}

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    let source_kind: String = r.get(3)?;
    let category: String = r.get(6)?;
    let severity: u8 = r.get(7)?;
    let attributes: String = r.get(10)?;
    Ok(Event {
        id: r.get(0)?,
        received_us: r.get(1)?,
        event: NewEvent {
            time_us: r.get(2)?,
            source: Source {
                kind: SourceKind::parse(&source_kind).ok_or_else(|| bad(3, "source kind"))?,
                name: r.get(4)?,
            },
            kind: r.get(5)?,
            category: Category::parse(&category).ok_or_else(|| bad(6, "category"))?,
            severity: Severity::from_code(severity).ok_or_else(|| bad(7, "severity"))?,
            message: r.get(8)?,
            camera: r.get(9)?,
            attributes: serde_json::from_str::<BTreeMap<String, String>>(&attributes).map_err(
                |e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        10,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                },
            )?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, camera: Option<&str>, severity: Severity, message: &str) -> NewEvent {
        NewEvent {
            time_us: 1_000,
            source: Source::new(SourceKind::Vigil, "srv"),
            kind: kind.into(),
            category: Category::Camera,
            severity,
            message: message.into(),
            camera: camera.map(str::to_owned),
            attributes: [("reason".to_owned(), "timeout".to_owned())].into(),
        }
    }

    fn store() -> (tempfile::TempDir, EventStore, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let s = EventStore::open(dir.path()).unwrap();
        let w = s.writer().unwrap();
        (dir, s, w)
    }

    #[test]
    fn stored_events_come_back_with_ids_newest_first_and_page() {
        let (_d, s, mut w) = store();
        let stored = w
            .insert(
                &(0..25)
                    .map(|i| {
                        ev(
                            "camera.connection_lost",
                            Some("lobby"),
                            Severity::Warning,
                            &format!("m{i}"),
                        )
                    })
                    .collect::<Vec<_>>(),
                5,
            )
            .unwrap();
        assert_eq!(stored.len(), 25);
        assert!(stored.windows(2).all(|w| w[1].id > w[0].id));
        let p1 = s
            .query(&EventQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(p1.events.len(), 10);
        assert_eq!(p1.events[0].event.message, "m24");
        assert_eq!(p1.events[0], stored[24]);
        let mut seen = p1.events.len();
        let mut next = p1.next_before_id;
        while let Some(before) = next {
            let p = s
                .query(&EventQuery {
                    limit: 10,
                    before_id: Some(before),
                    ..Default::default()
                })
                .unwrap();
            seen += p.events.len();
            next = p.next_before_id;
        }
        assert_eq!(seen, 25);
        assert_eq!(s.last_id().unwrap(), stored[24].id);
        assert_eq!(s.get(stored[3].id).unwrap().unwrap(), stored[3]);
        // Reading back after an id: oldest first, at most the limit, nothing after the last.
        let after = s.after(stored[19].id, 3).unwrap();
        assert_eq!(after, stored[20..23].to_vec());
        assert_eq!(s.after(stored[22].id, 10).unwrap(), stored[23..].to_vec());
        assert!(s.after(stored[24].id, 10).unwrap().is_empty());
    }

    #[test]
    fn filters_narrow_and_never_inject() {
        let (_d, s, mut w) = store();
        w.insert(
            &[
                ev(
                    "camera.connection_lost",
                    Some("lobby"),
                    Severity::Warning,
                    "lost 50% of frames",
                ),
                ev(
                    "camera.connection_restored",
                    Some("gate"),
                    Severity::Info,
                    "back",
                ),
                ev(
                    "security.login_failed",
                    None,
                    Severity::Notice,
                    "bad password",
                ),
                ev(
                    "syslog.dot1x_failure",
                    Some("lobby"),
                    Severity::Error,
                    "port Gi1/0/3",
                ),
            ],
            5,
        )
        .unwrap();
        let kinds = |q: EventQuery| -> Vec<String> {
            s.query(&q)
                .unwrap()
                .events
                .into_iter()
                .map(|e| e.event.kind)
                .collect()
        };
        assert_eq!(
            kinds(EventQuery {
                kinds: vec!["camera.".into()],
                ..Default::default()
            }),
            ["camera.connection_restored", "camera.connection_lost"]
        );
        assert_eq!(
            kinds(EventQuery {
                severity: Some(Severity::Warning),
                ..Default::default()
            }),
            ["syslog.dot1x_failure", "camera.connection_lost"]
        );
        assert_eq!(
            kinds(EventQuery {
                camera: Some("lobby".into()),
                kinds: vec!["syslog.dot1x_failure".into(), "nothing".into()],
                ..Default::default()
            }),
            ["syslog.dot1x_failure"]
        );
        // A viewer of `gate` sees gate's events and those of no camera.
        assert_eq!(
            kinds(EventQuery {
                visible_cameras: Some(vec!["gate".into()]),
                ..Default::default()
            }),
            ["security.login_failed", "camera.connection_restored"]
        );
        assert!(
            kinds(EventQuery {
                visible_cameras: Some(vec![]),
                camera: Some("lobby".into()),
                ..Default::default()
            })
            .is_empty()
        );
        assert_eq!(
            kinds(EventQuery {
                allowed_categories: Some(vec![Category::Security]),
                ..Default::default()
            }),
            Vec::<String>::new()
        );
        assert_eq!(
            kinds(EventQuery {
                allowed_categories: Some(vec![]),
                ..Default::default()
            }),
            Vec::<String>::new()
        );
        // In memory, the same rules select the same events.
        let all = s
            .query(&EventQuery {
                limit: MAX_PAGE,
                ..Default::default()
            })
            .unwrap()
            .events;
        for q in [
            EventQuery {
                kinds: vec!["camera.".into()],
                ..Default::default()
            },
            EventQuery {
                severity: Some(Severity::Warning),
                visible_cameras: Some(vec!["gate".into()]),
                ..Default::default()
            },
            EventQuery {
                text: Some("LOST".into()),
                camera: Some("lobby".into()),
                ..Default::default()
            },
            EventQuery {
                allowed_categories: Some(vec![Category::Security]),
                ..Default::default()
            },
        ] {
            let db: Vec<i64> = s.query(&q).unwrap().events.iter().map(|e| e.id).collect();
            let mem: Vec<i64> = all.iter().filter(|e| q.matches(e)).map(|e| e.id).collect();
            assert_eq!(db, mem, "{q:?}");
        }
        // LIKE wildcards in the text are literal.
        assert_eq!(
            kinds(EventQuery {
                text: Some("50%".into()),
                ..Default::default()
            }),
            ["camera.connection_lost"]
        );
        assert!(
            kinds(EventQuery {
                text: Some("' OR 1=1 --".into()),
                ..Default::default()
            })
            .is_empty()
        );
    }

    #[test]
    fn retention_deletes_by_age_and_count_and_ids_are_never_reused() {
        let (_d, s, mut w) = store();
        w.insert(
            &(0..5)
                .map(|i| ev("a.b", None, Severity::Info, &format!("{i}")))
                .collect::<Vec<_>>(),
            100,
        )
        .unwrap();
        let last = w
            .insert(
                &(0..5)
                    .map(|i| ev("a.b", None, Severity::Info, &format!("{i}")))
                    .collect::<Vec<_>>(),
                200,
            )
            .unwrap();
        assert_eq!(s.prune(150, 1_000).unwrap(), 5);
        assert_eq!(s.prune(0, 2).unwrap(), 3);
        let left = s.query(&EventQuery::default()).unwrap().events;
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].id, last[4].id);
        s.prune(i64::MAX, 0).unwrap();
        let again = w
            .insert(&[ev("a.b", None, Severity::Info, "x")], 300)
            .unwrap();
        assert!(
            again[0].id > last[4].id,
            "AUTOINCREMENT: ids never come back"
        );
    }

    #[test]
    fn cursors_start_at_zero_and_keep_their_value() {
        let (d, s, _w) = store();
        assert_eq!(s.cursor("audit").unwrap(), 0);
        s.set_cursor("audit", 41).unwrap();
        s.set_cursor("audit", 42).unwrap();
        drop(s);
        let s = EventStore::open(d.path()).unwrap();
        assert_eq!(s.cursor("audit").unwrap(), 42);
    }

    #[test]
    fn attributes_are_written_as_serde_json_writes_them() {
        let tricky = [
            "",
            "plain",
            "quote \" and backslash \\ and slash /",
            "\n\r\t\u{8}\u{c}\u{0}\u{1}\u{1f}\u{7f}",
            "Straße ü € 😀 \u{85}",
            "\"\"\\",
        ];
        let mut maps = vec![BTreeMap::new()];
        for (i, v) in tricky.iter().enumerate() {
            let mut m = BTreeMap::new();
            m.insert(format!("k{i}"), (*v).to_owned());
            m.insert((*v).to_owned(), format!("v{i}"));
            maps.push(m);
        }
        maps.push(
            tricky
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("key.{i}"), (*v).to_owned()))
                .collect(),
        );
        for m in maps {
            let mut ours = String::from("junk");
            attributes_json(&m, &mut ours);
            assert_eq!(ours[4..], serde_json::to_string(&m).unwrap(), "{m:?}");
            let back: BTreeMap<String, String> = serde_json::from_str(&ours[4..]).unwrap();
            assert_eq!(back, m);
        }
    }

    #[test]
    fn queries_by_camera_use_the_partial_camera_index() {
        let (_d, s, mut w) = store();
        w.insert(
            &[
                ev("a.b", Some("lobby"), Severity::Info, "x"),
                ev("a.b", None, Severity::Info, "y"),
            ],
            5,
        )
        .unwrap();
        let conn = s.reader.lock().unwrap();
        let plan: Vec<String> = conn
            .prepare("EXPLAIN QUERY PLAN SELECT id FROM events WHERE camera = ?1 ORDER BY id DESC")
            .unwrap()
            .query_map(["lobby"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().any(|p| p.contains("events_camera")), "{plan:?}");
        drop(conn);
        let page = s
            .query(&EventQuery {
                camera: Some("lobby".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].event.message, "x");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("events.db")).unwrap();
        c.pragma_update(None, "user_version", 7).unwrap();
        drop(c);
        let e = EventStore::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("schema version 7"), "{e}");
    }
}
