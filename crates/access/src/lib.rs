//! Vigil's access protection (docs/security-model.md): users with roles and per-camera permissions,
//! Argon2id passwords with a policy and optional TOTP, sessions with idle/absolute expiry and
//! CSRF tokens, scoped API tokens, intrusion detection per source address, and the
//! hash-chained audit log. Everything lives in one SQLite file (`access.db`) except the
//! intrusion detector's counters, which are in memory so a blocked address is refused without
//! touching the disk.
//!
//! The API is synchronous. [`Access`] is `Send + Sync`; share it as `Arc<Access>`.
//! [`Access::check`] is a lock + hash lookup and may be called directly on an async
//! executor; calls that hash passwords (`login`, `change_password`, `create_user`...) take tens
//! of milliseconds by design and belong in `spawn_blocking`; the rest do small SQLite
//! transactions (sub-millisecond, but blocking I/O).
//!
//! Typical request flow for an HTTP layer:
//! 1. [`Access::check`] on the peer address, before anything else → 403/429 when blocked.
//! 2. Cookie → [`Access::validate_session`] (or bearer token → [`Access::authenticate_token`]),
//!    giving a [`Principal`].
//! 3. For state-changing requests with a session: [`SessionInfo::check_csrf`] on the header.
//! 4. [`authorize`] the principal for the permission (and camera).
//! 5. [`Access::audit`] what was done (playback, export, configuration...).
//!
//! Intrusion alerts go to an [`AlertSink`] given to [`Access::open_with`]: [`TracingSink`]
//! (the log), [`WebhookSink`] (HTTPS POST of signed JSON from a background thread, see
//! [`webhook`]), or both through [`MultiSink`]. Sinks only queue; no network I/O happens on the
//! login path.

mod audit;
mod clock;
pub mod db;
mod ids;
mod layouts;
mod lookup_cache;
pub mod password;
mod roles;
mod sessions;
mod tokens;
mod users;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_db::{Db, DbTarget, params};

pub use audit::{
    AuditEntry, AuditKind, AuditQuery, AuditRecord, ChainProblem, ChainReport, UnknownAuditKind,
};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp, TimestampParseError};
pub use db::{CopyReport, copy_database, copy_from_sqlite, migrate, schema_status};
pub use ids::{
    Alert, AlertSink, AllowListError, BlockInfo, BlockPolicy, Blocked, ChannelSink, FnSink,
    IdsConfig, IdsConfigError, IdsStatus, IntrusionDetector, MIN_NOTIFICATION_THRESHOLD, MultiSink,
    TracingSink, WatchInfo, parse_allow_list,
};
pub use layouts::{LayoutKind, LiveLayout, MAX_LAYOUT_TILES, SavedLayout, UnknownLayoutKind};
pub use lookup_cache::LOOKUP_TTL_MS;
pub use password::{
    HashParams, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, PasswordRejected, WeakHashParams,
    check_password_policy, generate_password, hash_is_current, hash_password, verify_password,
};
pub use roles::{CameraScope, Denied, Permission, Principal, Role, UnknownRole, authorize};
pub use sessions::{Credentials, LoginError, NewSession, SessionError, SessionInfo};
pub use tokens::{CreatedToken, NewToken, TokenError, TokenFormatError, TokenInfo, parse_token};
pub use users::{NewUser, TotpEnrollment, UserInfo, validate_username};
pub use vigil_db::{self, DbTarget as DatabaseTarget};
pub use webhook::{WebhookConfig, WebhookError, WebhookSink, WebhookStats};

/// Session lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// A session unused this long ends. Default 15 minutes.
    pub idle_timeout: Duration,
    /// A session ends this long after login, however active. Default 12 hours.
    pub absolute_lifetime: Duration,
    /// [`SessionInfo::warn`] turns true when less idle time than this remains. Default 2 minutes.
    pub warn_before: Duration,
}

impl SessionConfig {
    /// Refuses lifetimes that would log users out constantly or outlive the idle limit.
    pub fn validate(&self) -> Result<(), AccessError> {
        if self.idle_timeout < Duration::from_secs(60) {
            return Err(AccessError::SessionConfig(
                "idle timeout must be at least 1 minute (default 15 minutes)".into(),
            ));
        }
        if self.absolute_lifetime < self.idle_timeout {
            return Err(AccessError::SessionConfig(
                "absolute lifetime must not be shorter than the idle timeout (default 12 hours)"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout: Duration::from_secs(15 * 60),
            absolute_lifetime: Duration::from_secs(12 * 60 * 60),
            warn_before: Duration::from_secs(2 * 60),
        }
    }
}

/// Everything configurable in this crate.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    pub session: SessionConfig,
    pub ids: IdsConfig,
    /// Argon2id cost; OWASP by default and never weaker (see [`HashParams::new`]).
    pub hash: HashParams,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("access database: {0}")]
    Db(#[from] vigil_db::DbError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "access database schema version {found} is newer than this Vigil supports ({supported}); upgrade Vigil"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error(transparent)]
    Password(#[from] PasswordRejected),
    #[error(
        "invalid user name {0:?}: use 1 to 64 characters from a-z A-Z 0-9 . _ @ -, starting with a letter or digit"
    )]
    InvalidUsername(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("no user named {0:?}")]
    UnknownUser(String),
    #[error(
        "users already exist; the first administrator can only be created in an empty database"
    )]
    AlreadyInitialized,
    #[error("{0:?} is the last enabled administrator; create or enable another admin first")]
    LastAdmin(String),
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("no API token with id {0:?}")]
    UnknownToken(String),
    #[error("invalid token name {0:?}: use 1 to 64 printable characters")]
    InvalidTokenName(String),
    #[error("invalid camera id {0:?}: use 1 to 128 characters without control characters")]
    InvalidCamera(String),
    #[error("invalid layout: {0}")]
    InvalidLayout(String),
    #[error("TOTP: {0}")]
    Totp(String),
    #[error(transparent)]
    IdsConfig(#[from] IdsConfigError),
    #[error("session configuration: {0}")]
    SessionConfig(String),
    #[error("JSON: {0}")]
    Json(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl AccessError {
    /// The database could not be reached (PostgreSQL down or restarting): the caller answers
    /// "database unavailable" (HTTP 503) and the next call tries again.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AccessError::Db(e) if e.is_unavailable())
    }
}

/// Who performs an administrative change, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    /// An address, or `cli` for the local command line.
    pub source: String,
}

impl Actor {
    /// The local command line, run by `who` (recorded as `cli:<who>`). Whoever can open the
    /// database file is trusted; the `vigil` binary names its operating-system user
    /// (`vigil_app::audit::cli_actor`).
    pub fn command_line(who: impl std::fmt::Display) -> Self {
        Actor {
            name: format!("cli:{who}"),
            source: "cli".to_owned(),
        }
    }

    /// The local command line without naming who ran it (tests, tools with nobody to name).
    pub fn cli() -> Self {
        Actor {
            name: "cli".to_owned(),
            source: "cli".to_owned(),
        }
    }

    pub fn from_principal(p: &Principal, source: IpAddr) -> Self {
        Actor {
            name: p.audit_name(),
            source: source.to_string(),
        }
    }
}

/// One aggregated access-log entry: attempts with the same outcome by one user name from one
/// address, each within the IDS timeout of the previous one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLogEntry {
    pub source: String,
    pub username: String,
    pub success: bool,
    pub count: u64,
    pub first: Timestamp,
    pub last: Timestamp,
}

/// The access-control store. See the crate docs for the request flow.
pub struct Access {
    db: Mutex<Db>,
    clock: Arc<dyn Clock>,
    ids: IntrusionDetector,
    sink: RwLock<Arc<dyn AlertSink>>,
    /// Session and hash settings; the IDS part mirrors the detector's and is replaced together
    /// with it. Changed at runtime by the setters, so read it through [`Access::cfg`].
    config: RwLock<AccessConfig>,
    /// Recent successful API-token lookups (see the `tokens` module).
    token_cache: lookup_cache::LookupCache<tokens::CachedToken>,
    /// Recent successful session-cookie lookups (see the `sessions` module).
    session_cache: lookup_cache::LookupCache<sessions::CachedSession>,
    /// `PRAGMA data_version` at the last block sync, to skip reloads when nothing changed.
    blocks_version: Mutex<i64>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("config", &*self.cfg())
            .finish_non_exhaustive()
    }
}

impl Access {
    /// Opens (or creates) the database with the system clock and alerts going to the log.
    pub fn open(path: &Path, config: AccessConfig) -> Result<Self, AccessError> {
        Self::open_with(path, config, Arc::new(SystemClock), Arc::new(TracingSink))
    }

    /// Opens with an explicit clock and alert sink.
    pub fn open_with(
        path: &Path,
        config: AccessConfig,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn AlertSink>,
    ) -> Result<Self, AccessError> {
        Self::open_target_with(&DbTarget::Sqlite(path.to_owned()), config, clock, sink)
    }

    /// Opens the management database `target` names (the SQLite file or PostgreSQL) and
    /// applies pending migrations.
    pub fn open_target(target: &DbTarget, config: AccessConfig) -> Result<Self, AccessError> {
        Self::open_target_with(target, config, Arc::new(SystemClock), Arc::new(TracingSink))
    }

    /// [`Access::open_target`] with an explicit clock and alert sink.
    pub fn open_target_with(
        target: &DbTarget,
        config: AccessConfig,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn AlertSink>,
    ) -> Result<Self, AccessError> {
        config.session.validate()?;
        let ids = IntrusionDetector::new(config.ids.clone())?;
        let conn = db::open(target, clock.now().unix_ms())?;
        let access = Access {
            db: Mutex::new(conn),
            clock,
            ids,
            sink: RwLock::new(sink),
            token_cache: Default::default(),
            session_cache: Default::default(),
            config: RwLock::new(config),
            blocks_version: Mutex::new(-1),
        };
        access.sync_blocks()?;
        Ok(access)
    }

    /// Called once when the server starts: lifts the "until restart" blocks of the previous
    /// run (the camera's semantics) while timed blocks stay until they run out.
    pub fn begin_server_run(&self) -> Result<usize, AccessError> {
        let n = self
            .conn()
            .execute("DELETE FROM ids_blocks WHERE until_ms IS NULL", ())?;
        *self
            .blocks_version
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = -1;
        self.sync_blocks()?;
        Ok(n)
    }

    /// A copy of the settings in effect.
    pub fn config(&self) -> AccessConfig {
        self.cfg().clone()
    }

    /// Read access to the settings; never hold the guard across other locks or I/O.
    pub(crate) fn cfg(&self) -> RwLockReadGuard<'_, AccessConfig> {
        self.config.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The Argon2id cost (a copy, so no lock is held while hashing).
    pub(crate) fn hash_params(&self) -> HashParams {
        self.cfg().hash
    }

    /// Changes session lifetimes at runtime (no restart). Expiry is computed from a
    /// session's login and last-activity times whenever it is used, so the new limits apply
    /// to every session, including those already open, from the next request on.
    pub fn set_session_config(&self, session: SessionConfig) -> Result<(), AccessError> {
        session.validate()?;
        self.config
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .session = session;
        Ok(())
    }

    /// Replaces where intrusion alerts go (e.g. a new webhook) without a restart; alerts
    /// raised from now on use the new sink.
    pub fn set_alert_sink(&self, sink: Arc<dyn AlertSink>) {
        *self.sink.write().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    /// Changes intrusion detection at runtime (no restart); see
    /// [`IntrusionDetector::set_config`]. Stored blocks of addresses now on the allow-list
    /// are deleted too, so they do not come back when the block table is reloaded.
    pub fn set_ids_config(&self, ids: IdsConfig) -> Result<(), AccessError> {
        self.ids.set_config(ids.clone())?;
        {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT addr FROM ids_blocks")?;
            let addrs = stmt
                .query_map((), |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            for addr in addrs {
                if addr.parse::<IpAddr>().is_ok_and(|a| ids.is_allow_listed(a)) {
                    conn.execute("DELETE FROM ids_blocks WHERE addr = ?1", [&addr])?;
                }
            }
        }
        self.config.write().unwrap_or_else(|e| e.into_inner()).ids = ids;
        Ok(())
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- intrusion detection -------------------------------------------------------------

    /// Refuses a blocked address: one in-memory lookup, no database, no hashing. Call it first
    /// for every request that could carry credentials.
    pub fn check(&self, source: IpAddr) -> Result<(), Blocked> {
        self.ids.check(source, self.clock.now())
    }

    pub fn ids(&self) -> &IntrusionDetector {
        &self.ids
    }

    /// Blocks in force and addresses being watched (this process's view).
    pub fn ids_status(&self) -> IdsStatus {
        self.ids.status(self.clock.now())
    }

    /// Lifts a block (and forgets the address's failures); audited. Returns whether a block
    /// was in force.
    pub fn unblock(&self, addr: IpAddr, actor: &Actor) -> Result<bool, AccessError> {
        let key = ids::tracking_key(addr, self.ids.config().ipv6_prefix_len);
        let mem = self.ids.unblock(addr).is_some();
        let db = {
            let conn = self.conn();
            conn.execute("DELETE FROM ids_blocks WHERE addr = ?1", [key.to_string()])? > 0
        };
        let was = mem || db;
        if was {
            self.audit(
                AuditRecord::new(
                    AuditKind::AddressUnblocked,
                    Some(&actor.name),
                    Some(&actor.source),
                )
                .detail(serde_json::json!({ "address": key.to_string() })),
            )?;
        }
        Ok(was)
    }

    /// Reloads the block table from the database when another process (`vigil ids unblock`)
    /// changed it. Cheap when nothing changed; call it every few seconds in the server.
    pub fn sync_blocks(&self) -> Result<(), AccessError> {
        let now = self.clock.now();
        let infos = {
            let conn = self.conn();
            // PostgreSQL has no cheap change counter: its table is read every time (a few
            // rows, every few seconds).
            if let Some(version) = conn.data_version()? {
                let mut last = self
                    .blocks_version
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if *last == version {
                    return Ok(());
                }
                *last = version;
            }
            let mut stmt = conn.prepare(
                "SELECT addr, since_ms, until_ms, failures FROM ids_blocks
                 WHERE until_ms IS NULL OR until_ms > ?1",
            )?;
            let rows = stmt.query_map([now.unix_ms()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            let mut infos = Vec::new();
            for row in rows {
                let (addr, since, until, failures) = row?;
                let addr: IpAddr = addr
                    .parse()
                    .map_err(|_| AccessError::Corrupt(format!("blocked address {addr:?}")))?;
                infos.push(BlockInfo {
                    addr,
                    since: Timestamp::from_unix_ms(since),
                    until: until.map(Timestamp::from_unix_ms),
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                });
            }
            infos
        };
        self.ids.replace_blocks(infos);
        Ok(())
    }

    /// Records a failed authentication from `source` for `username`: IDS counting, alert,
    /// block, access log and audit entry.
    pub(crate) fn record_failure(
        &self,
        source: IpAddr,
        username: &str,
        reason: &str,
    ) -> Result<(), AccessError> {
        let now = self.clock.now();
        // The name is whatever the client sent; keep the log readable and bounded.
        let username: String = username.chars().take(64).collect();
        let username = username.as_str();
        let outcome = self.ids.record_failure(source, username, now);
        self.log_access(source, username, false, now)?;
        self.audit(
            AuditRecord::new(
                AuditKind::LoginFailed,
                Some(username),
                Some(&source.to_string()),
            )
            .detail(
                serde_json::json!({ "reason": reason, "failures_in_window": outcome.failures }),
            ),
        )?;
        if let Some(b) = &outcome.blocked {
            {
                let conn = self.conn();
                conn.execute(
                    "INSERT INTO ids_blocks (addr, since_ms, until_ms, failures)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (addr) DO UPDATE SET since_ms = excluded.since_ms,
                       until_ms = excluded.until_ms, failures = excluded.failures",
                    params![
                        b.addr.to_string(),
                        b.since.unix_ms(),
                        b.until.map(Timestamp::unix_ms),
                        i64::from(b.failures)
                    ],
                )?;
            }
            self.audit(
                AuditRecord::new(AuditKind::AddressBlocked, None, Some(&source.to_string()))
                    .detail(serde_json::json!({
                        "address": b.addr.to_string(),
                        "failures": b.failures,
                        "until": b.until.map(|t| t.to_string()),
                    })),
            )?;
        }
        if let Some(alert) = &outcome.alert {
            self.audit(
                AuditRecord::new(AuditKind::IntrusionAlert, None, Some(&source.to_string()))
                    .detail(serde_json::json!({
                        "failures": alert.failures,
                        "first": alert.first.to_string(),
                        "usernames": alert.usernames,
                        "blocked": alert.blocked,
                        "allow_listed": alert.allow_listed,
                    })),
            )?;
            let sink = self.sink.read().unwrap_or_else(|e| e.into_inner()).clone();
            sink.send(alert);
        }
        Ok(())
    }

    /// Adds an attempt to the aggregated access log (the camera's "Web Server Logfile").
    pub(crate) fn log_access(
        &self,
        source: IpAddr,
        username: &str,
        success: bool,
        now: Timestamp,
    ) -> Result<(), AccessError> {
        let outcome = if success { "success" } else { "failure" };
        let window_start = now.unix_ms() - clock::duration_ms(self.ids.config().timeout);
        let username: String = username.chars().take(64).collect();
        let conn = self.conn();
        let updated = conn.execute(
            "UPDATE access_log SET count = count + 1, last_ms = ?4
             WHERE id = (SELECT id FROM access_log
                         WHERE source = ?1 AND username = ?2 AND outcome = ?3 AND last_ms >= ?5
                         ORDER BY last_ms DESC LIMIT 1)",
            params![
                source.to_string(),
                username,
                outcome,
                now.unix_ms(),
                window_start
            ],
        )?;
        if updated == 0 {
            conn.execute(
                "INSERT INTO access_log (source, username, outcome, count, first_ms, last_ms)
                 VALUES (?1, ?2, ?3, 1, ?4, ?4)",
                params![source.to_string(), username, outcome, now.unix_ms()],
            )?;
        }
        Ok(())
    }

    /// The newest aggregated access-log entries first.
    pub fn access_log(&self, limit: usize) -> Result<Vec<AccessLogEntry>, AccessError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT source, username, outcome, count, first_ms, last_ms FROM access_log
             ORDER BY last_ms DESC, id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(AccessLogEntry {
                source: r.get(0)?,
                username: r.get(1)?,
                success: r.get::<_, String>(2)? == "success",
                count: r.get::<_, i64>(3)? as u64,
                first: Timestamp::from_unix_ms(r.get(4)?),
                last: Timestamp::from_unix_ms(r.get(5)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes access-log entries whose last attempt is older than `before` (the audit log
    /// is never pruned); returns how many.
    pub fn prune_access_log(&self, before: Timestamp) -> Result<usize, AccessError> {
        Ok(self.conn().execute(
            "DELETE FROM access_log WHERE last_ms < ?1",
            [before.unix_ms()],
        )?)
    }

    // ---- audit log ----------------------------------------------------------------------

    /// Appends an entry to the audit log (at the clock's current time).
    pub fn audit(&self, record: AuditRecord) -> Result<AuditEntry, AccessError> {
        let now = self.clock.now();
        audit::append(&mut self.conn(), now, &record)
    }

    pub fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, AccessError> {
        audit::query(&self.conn(), q)
    }

    /// Writes matching entries as JSON lines (one [`AuditEntry`] per line); returns the count.
    pub fn audit_export_jsonl(
        &self,
        q: &AuditQuery,
        out: &mut dyn std::io::Write,
    ) -> Result<usize, AccessError> {
        audit::export_jsonl(&self.conn(), q, out)
    }

    /// Re-computes the whole hash chain.
    pub fn verify_audit_chain(&self) -> Result<ChainReport, AccessError> {
        audit::verify_chain(&self.conn())
    }
}
