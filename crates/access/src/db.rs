//! The schema of the access data (users, roles, sessions, tokens, access and audit logs,
//! layouts) as numbered migrations that run the same on SQLite and PostgreSQL (vigil-db;
//! docs/design/data-access.md), and opening the database with them applied.

use vigil_db::{Db, DbTarget, Migration, Schema};

use crate::AccessError;

const V1: &str = r#"
CREATE TABLE users (
    id              {id},
    username        TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL,
    all_cameras     BIGINT NOT NULL,
    password_hash   TEXT NOT NULL,
    totp_secret     TEXT,              -- base32; set once confirmed
    totp_pending    TEXT,              -- base32; enrolled, not yet confirmed
    totp_last_step  BIGINT,           -- last accepted TOTP step, refused when reused
    disabled        BIGINT NOT NULL DEFAULT 0,
    created_ms      BIGINT NOT NULL,
    password_changed_ms BIGINT NOT NULL
);
CREATE TABLE user_cameras (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    camera  TEXT NOT NULL,
    PRIMARY KEY (user_id, camera)
);
CREATE TABLE sessions (
    id_hash      {blob} PRIMARY KEY,     -- SHA-256 of the session id; the id itself is never stored
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    source       TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,     -- public part of the token
    name         TEXT NOT NULL,
    secret_hash  {blob} NOT NULL,        -- SHA-256 of the whole token
    role         TEXT NOT NULL,
    all_cameras  BIGINT NOT NULL,
    created_ms   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    expires_ms   BIGINT,
    revoked_ms   BIGINT,
    last_used_ms BIGINT
);
CREATE TABLE token_cameras (
    token_id TEXT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    camera   TEXT NOT NULL,
    PRIMARY KEY (token_id, camera)
);
CREATE TABLE access_log (
    id        {id},
    source    TEXT NOT NULL,
    username  TEXT NOT NULL,
    outcome   TEXT NOT NULL,           -- success | failure
    count     BIGINT NOT NULL,
    first_ms  BIGINT NOT NULL,
    last_ms   BIGINT NOT NULL
);
CREATE INDEX access_log_key ON access_log(source, username, outcome, last_ms);
CREATE TABLE ids_blocks (
    addr      TEXT PRIMARY KEY,
    since_ms  BIGINT NOT NULL,
    until_ms  BIGINT,                 -- NULL: until restart
    failures  BIGINT NOT NULL
);
CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,      -- 1, 2, 3... without gaps
    time_ms   BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    "user"    TEXT,
    source    TEXT,
    detail    TEXT NOT NULL,           -- canonical JSON
    prev_hash {blob} NOT NULL,
    hash      {blob} NOT NULL
);
CREATE INDEX audit_time ON audit(time_ms);
CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  {blob} NOT NULL
);
"#;

/// Append-only inside the database; someone with the file (or a database superuser) can still
/// drop these, which the hash chain then reveals.
const V1_SQLITE: &str = r#"
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#;

const V1_POSTGRES: &str = r#"
CREATE FUNCTION vigil_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
FOR EACH ROW EXECUTE FUNCTION vigil_audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION vigil_audit_append_only();
"#;

/// Version 2: each user's live-view layout (grid kind and the camera of each tile), as the
/// JSON of [`crate::LiveLayout`]; bounded by its validation (at most 16 tiles of 128-byte
/// names), deleted with the user.
const V2: &str = r#"
CREATE TABLE user_layouts (
    user_id     BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    layout      TEXT NOT NULL,        -- JSON {"kind": "2x2", "tiles": ["lobby", null, ...]}
    updated_ms  BIGINT NOT NULL
);
"#;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "users, sessions, tokens, access log, blocks, audit log",
        sql: V1,
        sqlite: V1_SQLITE,
        postgres: V1_POSTGRES,
    },
    Migration {
        version: 2,
        name: "live-view layouts",
        sql: V2,
        sqlite: "",
        postgres: "",
    },
];

/// The access component's schema (`vigil db status` / `vigil db migrate`).
pub const SCHEMA: Schema = Schema {
    component: "access",
    migrations: MIGRATIONS,
};

/// The tables in an order that satisfies their foreign keys, with their auto-numbered key
/// (`vigil db copy-from-sqlite`).
pub const TABLES: &[vigil_db::copy::Table] = &[
    table("users", Some("id")),
    table("user_cameras", None),
    table("sessions", None),
    table("api_tokens", None),
    table("token_cameras", None),
    table("access_log", Some("id")),
    table("ids_blocks", None),
    table("audit", None),
    table("audit_head", None),
    table("user_layouts", None),
];

const fn table(name: &'static str, identity: Option<&'static str>) -> vigil_db::copy::Table {
    vigil_db::copy::Table { name, identity }
}

/// Where the access schema of `target` stands (`vigil db status`); changes nothing but
/// creating the empty bookkeeping table.
pub fn schema_status(target: &DbTarget) -> Result<vigil_db::SchemaStatus, AccessError> {
    let mut db = Db::open(target)?;
    Ok(vigil_db::migrate::status(&mut db, &SCHEMA)?)
}

/// Applies pending migrations (`vigil db migrate`); returns those applied.
pub fn migrate(target: &DbTarget, now_ms: i64) -> Result<Vec<(i64, &'static str)>, AccessError> {
    let mut db = Db::open(target)?;
    vigil_db::migrate::migrate(&mut db, &SCHEMA, now_ms).map_err(schema_error)
}

/// What [`copy_from_sqlite`] moved, and the audit chain as the destination verifies it.
#[derive(Debug, Clone)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, usize)>,
    /// The chain of the source before the copy.
    pub source_chain: crate::ChainReport,
    /// The chain recomputed from the destination's rows after the copy.
    pub destination_chain: crate::ChainReport,
}

/// Moves an `access.db` into another database (PostgreSQL): see [`copy_database`].
pub fn copy_from_sqlite(
    source: &std::path::Path,
    destination: &DbTarget,
    now_ms: i64,
) -> Result<CopyReport, AccessError> {
    if !source.exists() {
        return Err(AccessError::Io {
            path: source.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    copy_database(&DbTarget::Sqlite(source.to_owned()), destination, now_ms)
}

/// Copies the management data of `source` into `destination` (`vigil db copy-from-sqlite`
/// into PostgreSQL; a backup's `access.db` out of PostgreSQL): both are migrated to this
/// Vigil's schema, every table is copied in one transaction into the empty destination, and
/// the audit chain is verified on the destination, which must end at the same head as the
/// source's. The source is read in one snapshot (a repeatable-read transaction on
/// PostgreSQL, a read transaction on SQLite), so a server writing meanwhile does not break
/// the copy. Refuses a source whose chain is already broken (nothing to vouch for) and a
/// destination that holds data.
pub fn copy_database(
    source: &DbTarget,
    destination: &DbTarget,
    now_ms: i64,
) -> Result<CopyReport, AccessError> {
    let mut src = open(source, now_ms)?;
    src.execute_batch(match src.backend() {
        vigil_db::Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ",
        vigil_db::Backend::Sqlite => "BEGIN",
    })?;
    let source_chain = crate::audit::verify_chain(&src)?;
    if !matches!(source_chain, crate::ChainReport::Intact { .. }) {
        return Err(AccessError::Corrupt(format!(
            "the source's audit log does not verify ({source_chain}); nothing was copied"
        )));
    }
    let mut dst = open(destination, now_ms)?;
    let tables = vigil_db::copy::copy_tables(&mut src, &mut dst, &SCHEMA, TABLES)?;
    src.execute_batch("COMMIT")?;
    let destination_chain = crate::audit::verify_chain(&dst)?;
    if destination_chain != source_chain {
        return Err(AccessError::Corrupt(format!(
            "after the copy the destination's audit log says {destination_chain}, the source's {source_chain}"
        )));
    }
    Ok(CopyReport {
        tables,
        source_chain,
        destination_chain,
    })
}

fn schema_error(e: vigil_db::DbError) -> AccessError {
    match e {
        vigil_db::DbError::SchemaTooNew {
            found, supported, ..
        } => AccessError::SchemaTooNew { found, supported },
        other => AccessError::Db(other),
    }
}

/// The schema this Vigil writes.
#[cfg(test)]
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// Opens the database (a SQLite file is created 0600: it holds password hashes and TOTP
/// secrets) and applies pending migrations; a schema newer than this Vigil is refused.
pub(crate) fn open(target: &DbTarget, now_ms: i64) -> Result<Db, AccessError> {
    let mut db = Db::open(target)?;
    vigil_db::migrate::migrate(&mut db, &SCHEMA, now_ms).map_err(schema_error)?;
    Ok(db)
}
