//! The SQLite schema of `access.db` and its migrations (`PRAGMA user_version`).

use std::path::Path;

use rusqlite::Connection;

use crate::AccessError;

pub(crate) const SCHEMA_V1: &str = r#"
CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL,
    all_cameras     INTEGER NOT NULL,
    password_hash   TEXT NOT NULL,
    totp_secret     TEXT,              -- base32; set once confirmed
    totp_pending    TEXT,              -- base32; enrolled, not yet confirmed
    totp_last_step  INTEGER,           -- last accepted TOTP step, refused when reused
    disabled        INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    password_changed_ms INTEGER NOT NULL
);
CREATE TABLE user_cameras (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    camera  TEXT NOT NULL,
    PRIMARY KEY (user_id, camera)
);
CREATE TABLE sessions (
    id_hash      BLOB PRIMARY KEY,     -- SHA-256 of the session id; the id itself is never stored
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    source       TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,     -- public part of the token
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,        -- SHA-256 of the whole token
    role         TEXT NOT NULL,
    all_cameras  INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    expires_ms   INTEGER,
    revoked_ms   INTEGER,
    last_used_ms INTEGER
);
CREATE TABLE token_cameras (
    token_id TEXT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    camera   TEXT NOT NULL,
    PRIMARY KEY (token_id, camera)
);
CREATE TABLE access_log (
    id        INTEGER PRIMARY KEY,
    source    TEXT NOT NULL,
    username  TEXT NOT NULL,
    outcome   TEXT NOT NULL,           -- success | failure
    count     INTEGER NOT NULL,
    first_ms  INTEGER NOT NULL,
    last_ms   INTEGER NOT NULL
);
CREATE INDEX access_log_key ON access_log(source, username, outcome, last_ms);
CREATE TABLE ids_blocks (
    addr      TEXT PRIMARY KEY,
    since_ms  INTEGER NOT NULL,
    until_ms  INTEGER,                 -- NULL: until restart
    failures  INTEGER NOT NULL
);
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,     -- 1, 2, 3... without gaps
    time_ms   INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    user      TEXT,
    source    TEXT,
    detail    TEXT NOT NULL,           -- canonical JSON
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
);
CREATE INDEX audit_time ON audit(time_ms);
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  BLOB NOT NULL
);
-- Append-only inside SQLite; someone with the file can still drop these, which the hash
-- chain then reveals.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#;

/// Version 2: each user's live-view layout (grid kind and the camera of each tile), as the
/// JSON of [`crate::LiveLayout`]; bounded by its validation (at most 16 tiles of 128-byte
/// names), deleted with the user.
const SCHEMA_V2: &str = r#"
CREATE TABLE user_layouts (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    layout      TEXT NOT NULL,        -- JSON {"kind": "2x2", "tiles": ["lobby", null, ...]}
    updated_ms  INTEGER NOT NULL
);
"#;

/// Opens (creating if needed, mode 0600: it holds password hashes and TOTP secrets) and
/// migrates the database.
pub(crate) fn open(path: &Path) -> Result<Connection, AccessError> {
    create_private(path)?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode keeps the database consistent on power loss; audit appends switch to
    // FULL for their own commit (see audit::append) so no audit entry is lost.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(AccessError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    // Each step runs once, in order, inside this transaction: a database of any older version
    // is brought up to date the first time this Vigil opens it.
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(conn)
}

/// The schema this Vigil writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 2;

fn create_private(path: &Path) -> Result<(), AccessError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |e| AccessError::Io {
        path: path.to_owned(),
        source: e,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}
