//! The management server's registry of enrolment tokens and recording servers, in its own
//! SQLite file (`DATA_DIR/cluster.db`, WAL), behind this one type so it can move to the shared
//! data-access layer later (docs/design/cluster.md). The CLI and `vigil serve` open it at the
//! same time; every change is one transaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use time::OffsetDateTime;

use crate::token::JoinToken;
use crate::{Error, Result};

/// The file name in the data directory.
pub const FILE: &str = "cluster.db";
/// Longest server name (it becomes the certificate's common name).
pub const MAX_NAME: usize = 63;
/// Longest token lifetime an admin may choose.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    used_us INTEGER,
    used_by TEXT
);
CREATE TABLE IF NOT EXISTS servers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    cert_sha256 TEXT NOT NULL UNIQUE,
    not_after_us INTEGER NOT NULL,
    joined_us INTEGER NOT NULL,
    joined_from TEXT NOT NULL,
    last_seen_us INTEGER,
    last_address TEXT,
    status TEXT,
    state TEXT NOT NULL,
    revoked_us INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS servers_current_name ON servers(name) WHERE revoked_us IS NULL;
CREATE TABLE IF NOT EXISTS assignments (
    camera_id TEXT PRIMARY KEY,
    server TEXT NOT NULL,
    assigned_us INTEGER NOT NULL,
    failover_server TEXT
);
CREATE INDEX IF NOT EXISTS assignments_by_server ON assignments(server);
";

/// Why an enrolment was refused (what the joining server is told, and the audit log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Unknown id or a secret that does not match: the same answer for both, so a guesser
    /// learns nothing about which ids exist.
    #[error(
        "the enrolment token is not valid (unknown or altered): ask the management server's admin for a new one"
    )]
    NotValid,
    #[error("the enrolment token expired at {0}: ask the management server's admin for a new one")]
    Expired(String),
    #[error(
        "the enrolment token was already used at {0}; a token enrols one server once: ask for a new one"
    )]
    Used(String),
    #[error(
        "a server named {0:?} is already joined: remove it first (vigil server remove {0}) or use a token for another name"
    )]
    NameTaken(String),
    #[error("the certificate request was refused: {0}")]
    BadRequest(String),
}

/// Why a camera cannot be assigned to a server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignRefusal {
    #[error(
        "no recording server named {0:?} is joined (see vigil server list; a server joins with vigil server join)"
    )]
    Unknown(String),
    #[error(
        "recording server {0:?} was removed (its certificate is revoked); assign the camera to a current server (vigil server list)"
    )]
    Removed(String),
    #[error(
        "no recording server is online to choose from (vigil server list); start one or name a server with --server"
    )]
    NoneOnline,
}

/// A camera's assignment: the recording server that records it. `failover_server` is kept
/// for the failover step (docs/design/cluster.md, "Failover later"); nothing sets it yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub camera_id: String,
    pub server: String,
    #[serde(with = "time::serde::rfc3339")]
    pub assigned: OffsetDateTime,
    pub failover_server: Option<String>,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub used: Option<OffsetDateTime>,
}

/// Where a server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Joined, no heartbeat yet.
    Joined,
    Online,
    Offline,
    /// Removed: its certificate is revoked.
    Removed,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Joined => "joined",
            ServerState::Online => "online",
            ServerState::Offline => "offline",
            ServerState::Removed => "removed",
        }
    }

    fn parse(s: &str) -> ServerState {
        match s {
            "online" => ServerState::Online,
            "offline" => ServerState::Offline,
            "removed" => ServerState::Removed,
            _ => ServerState::Joined,
        }
    }
}

/// A recording server as the registry knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerRow {
    pub name: String,
    /// SHA-256 of its certificate's DER (hex).
    pub cert_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub cert_not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub joined: OffsetDateTime,
    /// The address it joined from.
    pub joined_from: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen: Option<OffsetDateTime>,
    pub last_address: Option<String>,
    /// Its last heartbeat's status, as reported.
    pub status: Option<serde_json::Value>,
    pub state: ServerState,
    #[serde(with = "time::serde::rfc3339::option")]
    pub removed: Option<OffsetDateTime>,
}

/// What enrolment hands the signer and gets back (public material only).
#[derive(Debug)]
pub struct Issued {
    /// PEM of the issued certificate.
    pub cert_pem: String,
    /// Its DER (fingerprint, expiry).
    pub cert_der: Vec<u8>,
    pub not_after: OffsetDateTime,
}

/// Whether `s` is a camera id as stores make them: `cam-` and 12 lower-case hex digits.
pub fn is_camera_id(s: &str) -> bool {
    s.strip_prefix("cam-").is_some_and(|hex| {
        hex.len() == 12 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Checks a server name: 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or
/// digit (it becomes a certificate's common name and appears in commands).
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!(
            "server name {name:?}: use 1 to {MAX_NAME} characters"
        ));
    }
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "server name {name:?}: use letters, digits, '-', '_' and '.', starting with a letter or digit"
        ));
    }
    Ok(())
}

fn us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn from_us(v: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// The registry in one SQLite file.
pub struct Registry {
    path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("path", &self.path)
            .finish()
    }
}

impl Registry {
    /// Opens (creating) `DATA_DIR/cluster.db`.
    pub fn open(data_dir: &Path) -> Result<Registry> {
        let path = data_dir.join(FILE);
        let db = |source| Error::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Registry { path, conn })
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |source| Error::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// Creates a token enrolling a server called `name`, valid for `lifetime` from `now`.
    /// Only the secret's hash is stored; the caller shows the token once.
    pub fn create_token(
        &self,
        name: &str,
        lifetime: Duration,
        ca_sha256: [u8; 32],
        now: OffsetDateTime,
    ) -> Result<(JoinToken, TokenRow)> {
        check_name(name).map_err(Error::Invalid)?;
        if lifetime.is_zero() || lifetime > MAX_TOKEN_LIFETIME {
            return Err(Error::Invalid(format!(
                "token lifetime {}: use 1 second to 7 days (e.g. --expires 1h)",
                humanize(lifetime)
            )));
        }
        let token = JoinToken::generate(ca_sha256)?;
        let expires = now + lifetime;
        self.conn
            .execute(
                "INSERT INTO tokens (id, name, secret_sha256, created_us, expires_us) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![token.id(), name, token.secret_hash(), us(now), us(expires)],
            )
            .map_err(self.db())?;
        let row = TokenRow {
            id: token.id().to_owned(),
            name: name.to_owned(),
            created: from_us(us(now)),
            expires: from_us(us(expires)),
            used: None,
        };
        Ok((token, row))
    }

    /// Every token, newest first.
    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, created_us, expires_us, used_us FROM tokens ORDER BY created_us DESC")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TokenRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created: from_us(r.get(2)?),
                    expires: from_us(r.get(3)?),
                    used: r.get::<_, Option<i64>>(4)?.map(from_us),
                })
            })
            .map_err(self.db())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.db())
    }

    /// Enrols a server with `token`: checks it (known, secret, not expired, not used, name
    /// free), lets `sign` issue the certificate for the token's name, records the server and
    /// marks the token used, all in one transaction, so a token enrols at most one server and
    /// a failed signing leaves it unused. Returns the server's name and the certificate.
    pub fn enrol<F>(
        &mut self,
        token: &JoinToken,
        from: &str,
        now: OffsetDateTime,
        sign: F,
    ) -> Result<std::result::Result<(String, Issued), Refusal>>
    where
        F: FnOnce(&str) -> std::result::Result<Issued, String>,
    {
        let path = self.path.clone();
        let db = |source| Error::Db {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let row: Option<(String, String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT name, secret_sha256, expires_us, used_us FROM tokens WHERE id = ?1",
                [token.id()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((name, hash, expires, used)) = row else {
            return Ok(Err(Refusal::NotValid));
        };
        if !token.secret_matches(&hash) {
            return Ok(Err(Refusal::NotValid));
        }
        if let Some(used) = used {
            return Ok(Err(Refusal::Used(rfc3339(from_us(used)))));
        }
        if us(now) >= expires {
            return Ok(Err(Refusal::Expired(rfc3339(from_us(expires)))));
        }
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM servers WHERE name = ?1 AND revoked_us IS NULL)",
                [&name],
                |r| r.get(0),
            )
            .map_err(db)?;
        if taken {
            return Ok(Err(Refusal::NameTaken(name)));
        }
        let issued = match sign(&name) {
            Ok(i) => i,
            Err(reason) => return Ok(Err(Refusal::BadRequest(reason))),
        };
        tx.execute(
            "INSERT INTO servers (name, cert_sha256, not_after_us, joined_us, joined_from, state) VALUES (?1, ?2, ?3, ?4, ?5, 'joined')",
            params![name, crate::cert_sha256(&issued.cert_der), us(issued.not_after), us(now), from],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE tokens SET used_us = ?1, used_by = ?2 WHERE id = ?3",
            params![us(now), from, token.id()],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Ok((name, issued)))
    }

    /// Records a heartbeat from the server holding the certificate `cert_sha256`. Returns its
    /// name and the state it was in before (to report a return), or `None` for a certificate
    /// the registry does not know or has revoked.
    pub fn heartbeat(
        &self,
        cert_sha256: &str,
        address: &str,
        status: &serde_json::Value,
        now: OffsetDateTime,
    ) -> Result<Option<(String, ServerState)>> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT name, state FROM servers WHERE cert_sha256 = ?1 AND revoked_us IS NULL",
                [cert_sha256],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.db())?;
        let Some((name, state)) = row else {
            return Ok(None);
        };
        self.conn
            .execute(
                "UPDATE servers SET last_seen_us = ?1, last_address = ?2, status = ?3, state = 'online' WHERE cert_sha256 = ?4 AND revoked_us IS NULL",
                params![us(now), address, status.to_string(), cert_sha256],
            )
            .map_err(self.db())?;
        Ok(Some((name, ServerState::parse(&state))))
    }

    /// Marks servers not heard from for `offline_after` as offline; returns their names.
    pub fn sweep_offline(
        &self,
        now: OffsetDateTime,
        offline_after: Duration,
    ) -> Result<Vec<String>> {
        let cutoff = us(now) - offline_after.as_micros() as i64;
        let mut stmt = self
            .conn
            .prepare("UPDATE servers SET state = 'offline' WHERE revoked_us IS NULL AND state = 'online' AND last_seen_us < ?1 RETURNING name")
            .map_err(self.db())?;
        let names = stmt.query_map([cutoff], |r| r.get(0)).map_err(self.db())?;
        names.collect::<rusqlite::Result<_>>().map_err(self.db())
    }

    /// Every server, current ones first by name, then removed ones.
    pub fn servers(&self) -> Result<Vec<ServerRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, cert_sha256, not_after_us, joined_us, joined_from, last_seen_us, last_address, status, state, revoked_us
                 FROM servers ORDER BY revoked_us IS NOT NULL, name, joined_us",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| {
                let status: Option<String> = r.get(7)?;
                Ok(ServerRow {
                    name: r.get(0)?,
                    cert_sha256: r.get(1)?,
                    cert_not_after: from_us(r.get(2)?),
                    joined: from_us(r.get(3)?),
                    joined_from: r.get(4)?,
                    last_seen: r.get::<_, Option<i64>>(5)?.map(from_us),
                    last_address: r.get(6)?,
                    status: status.and_then(|s| serde_json::from_str(&s).ok()),
                    state: ServerState::parse(&r.get::<_, String>(8)?),
                    removed: r.get::<_, Option<i64>>(9)?.map(from_us),
                })
            })
            .map_err(self.db())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.db())
    }

    /// Removes the current server called `name`: its certificate is revoked from now on and
    /// its cameras are unassigned (a removed server can no longer fetch them, and a server
    /// that joins later under the same name is another machine). Returns the removed row,
    /// `None` when no current server has that name.
    pub fn remove(&mut self, name: &str, now: OffsetDateTime) -> Result<Option<ServerRow>> {
        let path = self.path.clone();
        let db = |source| Error::Db {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let changed = tx
            .execute(
                "UPDATE servers SET revoked_us = ?1, state = 'removed' WHERE name = ?2 AND revoked_us IS NULL",
                params![us(now), name],
            )
            .map_err(db)?;
        if changed == 0 {
            return Ok(None);
        }
        tx.execute("DELETE FROM assignments WHERE server = ?1", [name])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(self
            .servers()?
            .into_iter()
            .filter(|s| s.name == name && s.removed.is_some())
            .max_by_key(|s| s.removed))
    }

    /// SHA-256 (hex) of every revoked certificate whose validity has not ended (an expired
    /// certificate is refused anyway), sorted.
    pub fn revoked(&self, now: OffsetDateTime) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT cert_sha256 FROM servers WHERE revoked_us IS NOT NULL AND not_after_us > ?1 ORDER BY cert_sha256")
            .map_err(self.db())?;
        let rows = stmt.query_map([us(now)], |r| r.get(0)).map_err(self.db())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.db())
    }
}

impl Registry {
    /// Assigns the camera `camera_id` to the current server `server` (replacing an earlier
    /// assignment). Refuses an unknown or removed server.
    pub fn assign(
        &mut self,
        camera_id: &str,
        server: &str,
        now: OffsetDateTime,
    ) -> Result<std::result::Result<Assignment, AssignRefusal>> {
        let path = self.path.clone();
        let db = |source| Error::Db {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let (current, removed): (bool, bool) = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM servers WHERE name = ?1 AND revoked_us IS NULL),
                        EXISTS(SELECT 1 FROM servers WHERE name = ?1 AND revoked_us IS NOT NULL)",
                [server],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db)?;
        if !current {
            return Ok(Err(if removed {
                AssignRefusal::Removed(server.to_owned())
            } else {
                AssignRefusal::Unknown(server.to_owned())
            }));
        }
        tx.execute(
            "INSERT INTO assignments (camera_id, server, assigned_us) VALUES (?1, ?2, ?3)
             ON CONFLICT(camera_id) DO UPDATE SET server = excluded.server, assigned_us = excluded.assigned_us",
            params![camera_id, server, us(now)],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Ok(Assignment {
            camera_id: camera_id.to_owned(),
            server: server.to_owned(),
            assigned: from_us(us(now)),
            failover_server: None,
        }))
    }

    /// Assigns the camera to the online server with the fewest cameras (ties: by name): the
    /// "automatic by load" of issue 15, kept to one figure an admin can check in
    /// `vigil server list`. A server is online when heard from within `online_within`.
    pub fn assign_auto(
        &mut self,
        camera_id: &str,
        now: OffsetDateTime,
        online_within: Duration,
    ) -> Result<std::result::Result<Assignment, AssignRefusal>> {
        let cutoff = us(now) - online_within.as_micros() as i64;
        let chosen: Option<String> = self
            .conn
            .query_row(
                "SELECT s.name FROM servers s
                 WHERE s.revoked_us IS NULL AND s.last_seen_us >= ?1 AND s.state = 'online'
                 ORDER BY (SELECT COUNT(*) FROM assignments a WHERE a.server = s.name AND a.camera_id != ?2), s.name
                 LIMIT 1",
                params![cutoff, camera_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())?;
        match chosen {
            Some(server) => self.assign(camera_id, &server, now),
            None => Ok(Err(AssignRefusal::NoneOnline)),
        }
    }

    /// Ends the camera's assignment; returns the server it had.
    pub fn unassign(&self, camera_id: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "DELETE FROM assignments WHERE camera_id = ?1 RETURNING server",
                [camera_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())
    }

    /// Every assignment, by camera id.
    pub fn assignments(&self) -> Result<Vec<Assignment>> {
        let mut stmt = self
            .conn
            .prepare("SELECT camera_id, server, assigned_us, failover_server FROM assignments ORDER BY camera_id")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Assignment {
                    camera_id: r.get(0)?,
                    server: r.get(1)?,
                    assigned: from_us(r.get(2)?),
                    failover_server: r.get(3)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.db())
    }

    /// The camera ids assigned to `server`.
    pub fn assigned_to(&self, server: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT camera_id FROM assignments WHERE server = ?1 ORDER BY camera_id")
            .map_err(self.db())?;
        let rows = stmt.query_map([server], |r| r.get(0)).map_err(self.db())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.db())
    }

    /// Forgets the assignments of cameras that no longer exist (removed on the management
    /// server); returns how many.
    pub fn retain_cameras(&self, camera_ids: &[String]) -> Result<usize> {
        let mut gone = 0;
        for a in self.assignments()? {
            if !camera_ids.contains(&a.camera_id) {
                gone += self.unassign(&a.camera_id)?.map_or(0, |_| 1);
            }
        }
        Ok(gone)
    }

    /// The name of the current server holding the certificate `cert_sha256`.
    pub fn server_by_cert(&self, cert_sha256: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT name FROM servers WHERE cert_sha256 = ?1 AND revoked_us IS NULL",
                [cert_sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())
    }
}

fn humanize(d: Duration) -> String {
    format!("{} s", d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(tag: u8, now: OffsetDateTime) -> Issued {
        Issued {
            cert_pem: String::new(),
            cert_der: vec![tag; 8],
            not_after: now + Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_token_enrols_once_before_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::open(dir.path()).unwrap();
        let now = OffsetDateTime::now_utc();
        let (token, row) = reg
            .create_token("rec1", Duration::from_secs(60), [1; 32], now)
            .unwrap();
        assert_eq!(row.name, "rec1");
        let (name, _) = reg
            .enrol(&token, "127.0.0.1", now, |n| {
                assert_eq!(n, "rec1");
                Ok(issued(1, now))
            })
            .unwrap()
            .unwrap();
        assert_eq!(name, "rec1");
        let again = reg.enrol(&token, "x", now, |_| Ok(issued(2, now))).unwrap();
        assert!(matches!(again, Err(Refusal::Used(_))), "{again:?}");

        // Expired.
        let (t2, _) = reg
            .create_token("rec2", Duration::from_secs(1), [1; 32], now)
            .unwrap();
        let late = now + Duration::from_secs(2);
        let r = reg.enrol(&t2, "x", late, |_| Ok(issued(3, now))).unwrap();
        assert!(matches!(r, Err(Refusal::Expired(_))), "{r:?}");

        // Forged: a well-formed token the registry never made, and a known id with another
        // secret, get the same answer.
        let forged = JoinToken::generate([1; 32]).unwrap();
        let r = reg
            .enrol(&forged, "x", now, |_| Ok(issued(4, now)))
            .unwrap();
        assert_eq!(r.err(), Some(Refusal::NotValid));
        let (t3, _) = reg
            .create_token("rec3", Duration::from_secs(60), [1; 32], now)
            .unwrap();
        let text = t3.expose();
        let mut parts: Vec<String> = text.split('.').map(str::to_owned).collect();
        parts[2] = "0".repeat(64);
        let altered = JoinToken::parse(&parts.join(".")).unwrap();
        let r = reg
            .enrol(&altered, "x", now, |_| Ok(issued(5, now)))
            .unwrap();
        assert_eq!(r.err(), Some(Refusal::NotValid));

        // A failed signing leaves the token unused.
        let r = reg.enrol(&t3, "x", now, |_| Err("bad CSR".into())).unwrap();
        assert!(matches!(r, Err(Refusal::BadRequest(_))));
        assert!(
            reg.enrol(&t3, "x", now, |_| Ok(issued(6, now)))
                .unwrap()
                .is_ok()
        );

        // The same name twice while the first is current.
        let (t4, _) = reg
            .create_token("rec1", Duration::from_secs(60), [1; 32], now)
            .unwrap();
        let r = reg.enrol(&t4, "x", now, |_| Ok(issued(7, now))).unwrap();
        assert_eq!(r.err(), Some(Refusal::NameTaken("rec1".into())));
    }

    #[test]
    fn assignments_refuse_unknown_and_removed_servers_and_follow_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::open(dir.path()).unwrap();
        let now = OffsetDateTime::now_utc();
        let status = serde_json::json!({"version": "t"});
        for (n, tag) in [("rec1", 21u8), ("rec2", 22)] {
            let (token, _) = reg
                .create_token(n, Duration::from_secs(60), [1; 32], now)
                .unwrap();
            reg.enrol(&token, "a", now, |_| Ok(issued(tag, now)))
                .unwrap()
                .unwrap();
        }
        // Nobody has reported yet: automatic assignment has no server to choose.
        let r = reg
            .assign_auto("cam-000000000001", now, Duration::from_secs(15))
            .unwrap();
        assert_eq!(r.unwrap_err(), AssignRefusal::NoneOnline);
        for tag in [21u8, 22] {
            reg.heartbeat(&crate::cert_sha256(&[tag; 8]), "a", &status, now)
                .unwrap()
                .unwrap();
        }
        let r = reg.assign("cam-000000000001", "nope", now).unwrap();
        assert_eq!(r.unwrap_err(), AssignRefusal::Unknown("nope".into()));
        let a = reg
            .assign("cam-000000000001", "rec2", now)
            .unwrap()
            .unwrap();
        assert_eq!(a.server, "rec2");
        // rec1 has fewer cameras, then they are even and the name decides.
        let a = reg
            .assign_auto("cam-000000000002", now, Duration::from_secs(15))
            .unwrap()
            .unwrap();
        assert_eq!(a.server, "rec1");
        let a = reg
            .assign_auto("cam-000000000003", now, Duration::from_secs(15))
            .unwrap()
            .unwrap();
        assert_eq!(a.server, "rec1");
        // Re-choosing for a camera does not count the camera itself.
        let a = reg
            .assign_auto("cam-000000000003", now, Duration::from_secs(15))
            .unwrap()
            .unwrap();
        assert_eq!(a.server, "rec1");
        assert_eq!(
            reg.assigned_to("rec1").unwrap(),
            ["cam-000000000002", "cam-000000000003"]
        );
        // A silent server is not chosen.
        let later = now + Duration::from_secs(60);
        let r = reg
            .assign_auto("cam-000000000004", later, Duration::from_secs(15))
            .unwrap();
        assert_eq!(r.unwrap_err(), AssignRefusal::NoneOnline);
        assert_eq!(
            reg.unassign("cam-000000000002").unwrap().as_deref(),
            Some("rec1")
        );
        assert_eq!(reg.unassign("cam-000000000002").unwrap(), None);
        // Removal unassigns the server's cameras and refuses new assignments to it.
        reg.remove("rec1", now).unwrap().unwrap();
        assert!(reg.assigned_to("rec1").unwrap().is_empty());
        let r = reg.assign("cam-000000000001", "rec1", now).unwrap();
        assert_eq!(r.unwrap_err(), AssignRefusal::Removed("rec1".into()));
        assert_eq!(
            reg.server_by_cert(&crate::cert_sha256(&[22; 8]))
                .unwrap()
                .as_deref(),
            Some("rec2")
        );
        assert_eq!(
            reg.server_by_cert(&crate::cert_sha256(&[21; 8])).unwrap(),
            None
        );
        assert_eq!(reg.retain_cameras(&[]).unwrap(), 1);
        assert!(reg.assignments().unwrap().is_empty());
    }

    #[test]
    fn heartbeat_offline_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::open(dir.path()).unwrap();
        let now = OffsetDateTime::now_utc();
        let (token, _) = reg
            .create_token("rec1", Duration::from_secs(60), [1; 32], now)
            .unwrap();
        reg.enrol(&token, "a", now, |_| Ok(issued(9, now)))
            .unwrap()
            .unwrap();
        let fp = crate::cert_sha256(&[9; 8]);
        let status = serde_json::json!({"version": "t"});
        let (name, before) = reg.heartbeat(&fp, "a", &status, now).unwrap().unwrap();
        assert_eq!((name.as_str(), before), ("rec1", ServerState::Joined));
        assert!(reg.heartbeat("00", "a", &status, now).unwrap().is_none());
        let later = now + Duration::from_secs(30);
        assert_eq!(
            reg.sweep_offline(later, Duration::from_secs(15)).unwrap(),
            ["rec1"]
        );
        assert!(
            reg.sweep_offline(later, Duration::from_secs(15))
                .unwrap()
                .is_empty()
        );
        let (_, before) = reg.heartbeat(&fp, "a", &status, later).unwrap().unwrap();
        assert_eq!(before, ServerState::Offline);
        assert_eq!(reg.servers().unwrap()[0].state, ServerState::Online);

        assert!(reg.remove("nope", now).unwrap().is_none());
        let removed = reg.remove("rec1", later).unwrap().unwrap();
        assert_eq!(removed.state, ServerState::Removed);
        assert_eq!(reg.revoked(later).unwrap(), std::slice::from_ref(&fp));
        assert!(reg.heartbeat(&fp, "a", &status, later).unwrap().is_none());
        // Past its expiry a revoked certificate no longer needs listing.
        assert!(
            reg.revoked(now + Duration::from_secs(7200))
                .unwrap()
                .is_empty()
        );
        // The name is free again.
        assert!(
            reg.create_token("rec1", Duration::from_secs(60), [1; 32], now)
                .is_ok()
        );
        assert!(check_name("").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"a".repeat(64)).is_err());
        assert!(check_name("rec-1.site_a").is_ok());
    }
}
