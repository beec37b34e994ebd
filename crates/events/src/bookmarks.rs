//! Bookmarks: a labelled time range of one camera's recording, made by a person or by a
//! rule (around the event that fired it), stored in `events.db` and listed for a camera's
//! timeline. Semantics: docs/rules-and-alarms.md.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::Serialize;

use crate::store::{DEFAULT_PAGE, Db, MAX_PAGE, StoreError};

/// Longest label, in bytes.
pub const MAX_LABEL: usize = 256;
/// Longest bookmark: a day.
pub const MAX_RANGE_US: i64 = 24 * 3600 * 1_000_000;

/// Who made a bookmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Creator {
    User(String),
    Rule(String),
}

impl Creator {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Creator::User(n) => ("user", n),
            Creator::Rule(n) => ("rule", n),
        }
    }
}

/// A bookmark to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBookmark {
    pub camera: String,
    pub from_us: i64,
    pub to_us: i64,
    pub label: String,
    pub creator: Creator,
    /// The alarm raised for the same event, if any.
    pub alarm_id: Option<i64>,
    /// The event a rule made it for.
    pub event_id: Option<i64>,
}

/// A stored bookmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bookmark {
    pub id: i64,
    pub camera: String,
    pub from_us: i64,
    pub to_us: i64,
    pub label: String,
    pub creator: Creator,
    pub alarm_id: Option<i64>,
    pub event_id: Option<i64>,
    pub created_us: i64,
}

/// Why a bookmark was refused.
#[derive(Debug, thiserror::Error)]
pub enum BookmarkError {
    #[error("a bookmark ends after it starts, and spans at most a day")]
    BadRange,
    #[error("a bookmark label is 1 to {MAX_LABEL} bytes of text without control characters")]
    BadLabel,
    #[error("a bookmark's camera is 1 to 128 bytes")]
    BadCamera,
    #[error("no bookmark {0}")]
    NotFound(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which bookmarks a listing wants. Oldest first by start, for a timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookmarkQuery {
    pub camera: Option<String>,
    /// Bookmarks overlapping `[from_us, to_us)`.
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// Only these cameras (a caller's scope). `None`: all.
    pub visible_cameras: Option<Vec<String>>,
    /// Paging: bookmarks after this one (by start, then id), as `(from_us, id)`.
    pub after: Option<(i64, i64)>,
    /// At most this many (capped at 1000); 0: 100.
    pub limit: usize,
}

/// A page of bookmarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookmarkPage {
    pub bookmarks: Vec<Bookmark>,
    /// Give as `after` for the next page.
    pub next_after: Option<(i64, i64)>,
}

const COLUMNS: &str =
    "id, camera, from_us, to_us, label, creator_kind, creator, alarm_id, event_id, created_us";

/// The bookmark table of `events.db`.
#[derive(Debug)]
pub struct BookmarkStore {
    db: Db,
}

impl BookmarkStore {
    /// Opens (creating or migrating) `events.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Ok(BookmarkStore { db: Db::open(dir)? })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        self.db.err()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock()
    }

    /// Checks and stores `b`.
    pub fn add(&self, b: &NewBookmark, now_us: i64) -> Result<Bookmark, BookmarkError> {
        check(b)?;
        let conn = self.lock();
        insert(&conn, b, now_us).map_err(|e| self.err()(e).into())
    }

    /// Checks each of `bookmarks` and stores those that pass, in one transaction (a burst of
    /// rule matches takes the write lock once). One result per bookmark, in order; a database
    /// error is the outer error, and then none is stored.
    pub fn add_all(
        &self,
        bookmarks: &[NewBookmark],
        now_us: i64,
    ) -> Result<Vec<Result<Bookmark, BookmarkError>>, StoreError> {
        let err = self.err();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let mut out = Vec::with_capacity(bookmarks.len());
        for b in bookmarks {
            out.push(match check(b) {
                Ok(()) => Ok(insert(&tx, b, now_us).map_err(&err)?),
                Err(e) => Err(e),
            });
        }
        tx.commit().map_err(&err)?;
        Ok(out)
    }

    pub fn get(&self, id: i64) -> Result<Option<Bookmark>, StoreError> {
        get_in(&self.lock(), id).map_err(self.err())
    }

    /// Deletes bookmark `id`; returns what it was.
    pub fn delete(&self, id: i64) -> Result<Bookmark, BookmarkError> {
        let conn = self.lock();
        let b = get_in(&conn, id)
            .map_err(self.err())?
            .ok_or(BookmarkError::NotFound(id))?;
        conn.execute("DELETE FROM bookmarks WHERE id = ?1", [id])
            .map_err(self.err())?;
        Ok(b)
    }

    /// The bookmarks `q` asks for, by start time.
    pub fn query(&self, q: &BookmarkQuery) -> Result<BookmarkPage, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM bookmarks WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(c) = &q.camera {
            arg(&mut sql, " AND camera = ?", c.clone().into());
        }
        if let Some(t) = q.from_us {
            arg(&mut sql, " AND to_us > ?", t.into());
        }
        if let Some(t) = q.to_us {
            arg(&mut sql, " AND from_us < ?", t.into());
        }
        if let Some(cams) = &q.visible_cameras {
            sql.push_str(" AND camera IN (NULL");
            for c in cams {
                arg(&mut sql, ", ?", c.clone().into());
            }
            sql.push(')');
        }
        if let Some((from, id)) = q.after {
            args.push(from.into());
            let a = args.len();
            args.push(id.into());
            let b = args.len();
            sql.push_str(&format!(
                " AND (from_us > ?{a} OR (from_us = ?{a} AND id > ?{b}))"
            ));
        }
        let limit = match q.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        sql.push_str(&format!(" ORDER BY from_us, id LIMIT {}", limit + 1));
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&sql).map_err(self.err())?;
        let mut bookmarks: Vec<Bookmark> = stmt
            .query_map(params_from_iter(args), bookmark_from_row)
            .map_err(self.err())?
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        let next_after = if bookmarks.len() > limit {
            bookmarks.truncate(limit);
            bookmarks.last().map(|b| (b.from_us, b.id))
        } else {
            None
        };
        Ok(BookmarkPage {
            bookmarks,
            next_after,
        })
    }
}

/// Why `b` cannot be stored, if it cannot.
fn check(b: &NewBookmark) -> Result<(), BookmarkError> {
    if b.to_us <= b.from_us || b.to_us - b.from_us > MAX_RANGE_US {
        return Err(BookmarkError::BadRange);
    }
    if b.label.is_empty() || b.label.len() > MAX_LABEL || b.label.chars().any(char::is_control) {
        return Err(BookmarkError::BadLabel);
    }
    if b.camera.is_empty() || b.camera.len() > 128 {
        return Err(BookmarkError::BadCamera);
    }
    Ok(())
}

/// Stores a checked bookmark on `conn` (a transaction or not) and reads it back.
fn insert(conn: &Connection, b: &NewBookmark, now_us: i64) -> rusqlite::Result<Bookmark> {
    let (kind, name) = b.creator.parts();
    conn.execute(
        "INSERT INTO bookmarks (camera, from_us, to_us, label, creator_kind, creator, \
         alarm_id, event_id, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            b.camera, b.from_us, b.to_us, b.label, kind, name, b.alarm_id, b.event_id, now_us
        ],
    )?;
    let id = conn.last_insert_rowid();
    Ok(get_in(conn, id)?.expect("the bookmark just written"))
}

fn get_in(conn: &Connection, id: i64) -> rusqlite::Result<Option<Bookmark>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM bookmarks WHERE id = ?1"),
        [id],
        bookmark_from_row,
    )
    .optional()
}

fn bookmark_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Bookmark> {
    let kind: String = r.get(5)?;
    let name: String = r.get(6)?;
    Ok(Bookmark {
        id: r.get(0)?,
        camera: r.get(1)?,
        from_us: r.get(2)?,
        to_us: r.get(3)?,
        label: r.get(4)?,
        creator: if kind == "rule" {
            Creator::Rule(name)
        } else {
            Creator::User(name)
        },
        alarm_id: r.get(7)?,
        event_id: r.get(8)?,
        created_us: r.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(camera: &str, from_us: i64, to_us: i64) -> NewBookmark {
        NewBookmark {
            camera: camera.into(),
            from_us,
            to_us,
            label: "door forced".into(),
            creator: Creator::Rule("r".into()),
            alarm_id: Some(1),
            event_id: Some(2),
        }
    }

    #[test]
    fn bookmarks_are_listed_by_overlap_scope_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let s = BookmarkStore::open(dir.path()).unwrap();
        for i in 0..10 {
            s.add(&b("lobby", i * 100, i * 100 + 50), 1).unwrap();
            s.add(&b("gate", i * 100, i * 100 + 50), 1).unwrap();
        }
        let q = |q: BookmarkQuery| s.query(&q).unwrap();
        let lobby = q(BookmarkQuery {
            camera: Some("lobby".into()),
            from_us: Some(140),
            to_us: Some(300),
            ..Default::default()
        });
        // [100,150) overlaps [140,300); [200,250) too; [300,350) does not.
        assert_eq!(
            lobby
                .bookmarks
                .iter()
                .map(|b| b.from_us)
                .collect::<Vec<_>>(),
            [100, 200]
        );
        assert_eq!(lobby.bookmarks[0].creator, Creator::Rule("r".into()));
        let scoped = q(BookmarkQuery {
            visible_cameras: Some(vec!["gate".into()]),
            limit: 1000,
            ..Default::default()
        });
        assert_eq!(scoped.bookmarks.len(), 10);
        assert!(scoped.bookmarks.iter().all(|b| b.camera == "gate"));
        let mut seen = 0;
        let mut after = None;
        loop {
            let p = q(BookmarkQuery {
                limit: 3,
                after,
                ..Default::default()
            });
            seen += p.bookmarks.len();
            match p.next_after {
                Some(a) => after = Some(a),
                None => break,
            }
        }
        assert_eq!(seen, 20);
    }

    #[test]
    fn bad_bookmarks_are_refused_and_deletion_reports_what_it_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = BookmarkStore::open(dir.path()).unwrap();
        assert!(matches!(
            s.add(&b("x", 10, 10), 1),
            Err(BookmarkError::BadRange)
        ));
        assert!(matches!(
            s.add(&b("x", 0, MAX_RANGE_US + 1), 1),
            Err(BookmarkError::BadRange)
        ));
        let mut bad = b("x", 0, 1);
        bad.label = "a\u{1b}[31m".into();
        assert!(matches!(s.add(&bad, 1), Err(BookmarkError::BadLabel)));
        let mut by_user = b("x", 0, 1);
        by_user.creator = Creator::User("alice".into());
        let made = s.add(&by_user, 7).unwrap();
        assert_eq!(made.created_us, 7);
        assert_eq!(s.get(made.id).unwrap().unwrap(), made);
        assert_eq!(s.delete(made.id).unwrap(), made);
        assert!(matches!(s.delete(made.id), Err(BookmarkError::NotFound(_))));
    }

    #[test]
    fn a_batch_stores_what_passes_and_answers_for_each() {
        let dir = tempfile::tempdir().unwrap();
        let s = BookmarkStore::open(dir.path()).unwrap();
        let out = s
            .add_all(&[b("x", 0, 10), b("x", 5, 5), b("y", 20, 30)], 9)
            .unwrap();
        assert_eq!(out.len(), 3);
        assert!(matches!(out[1], Err(BookmarkError::BadRange)));
        let (first, third) = (out[0].as_ref().unwrap(), out[2].as_ref().unwrap());
        assert_eq!((first.camera.as_str(), third.camera.as_str()), ("x", "y"));
        assert_eq!(s.get(first.id).unwrap().as_ref(), Some(first));
        assert_eq!(s.get(third.id).unwrap().as_ref(), Some(third));
        assert!(s.add_all(&[], 9).unwrap().is_empty());
    }
}
