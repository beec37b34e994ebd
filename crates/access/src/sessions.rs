//! Login and sessions: a random 256-bit session id (the cookie value) of which only the
//! SHA-256 is stored, idle timeout and absolute lifetime, a per-session CSRF token
//! (synchronizer pattern), logout and the remaining time for "you will be logged out" warnings.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use rand::Rng as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use vigil_db::{Db, OptionalExtension as _, params};

use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{Timestamp, duration_ms};
use crate::ids::Blocked;
use crate::password::{hash_is_current, hash_password, verify_password};
use crate::roles::Principal;
use crate::users::{load_cameras, parse_role, totp_step};
use crate::{Access, AccessError, SessionConfig};

/// What a login form sends.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// The current TOTP code, for users with a second factor.
    pub totp: Option<&'a str>,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Refused before any password work.
    #[error(transparent)]
    Blocked(#[from] Blocked),
    /// Unknown user, wrong password, wrong or reused TOTP code, disabled user: one answer for
    /// all so that user names cannot be probed.
    #[error("invalid user name, password or code")]
    InvalidCredentials,
    /// Password right; the user has a second factor and no code was sent. Ask for it and send
    /// the credentials again with the code.
    #[error("a TOTP code is required")]
    TotpRequired,
    #[error(transparent)]
    Internal(#[from] AccessError),
}

/// A new session. `session_id` is the cookie value: it is not stored anywhere on the server,
/// so it can be given out only now.
#[derive(Clone, Serialize)]
pub struct NewSession {
    pub session_id: String,
    pub csrf_token: String,
    pub principal: Principal,
    pub idle_expires: Timestamp,
    pub absolute_expires: Timestamp,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("principal", &self.principal)
            .field("idle_expires", &self.idle_expires)
            .finish_non_exhaustive()
    }
}

/// A live session.
#[derive(Clone, Serialize)]
pub struct SessionInfo {
    pub principal: Principal,
    #[serde(skip)]
    pub(crate) csrf_token: String,
    pub source: String,
    pub created: Timestamp,
    pub last_seen: Timestamp,
    /// Time until the session ends for inactivity.
    #[serde(serialize_with = "ser_secs")]
    pub idle_remaining: Duration,
    /// Time until the session ends regardless of activity.
    #[serde(serialize_with = "ser_secs")]
    pub absolute_remaining: Duration,
    /// Less than the configured warning time is left (idle or absolute): show the
    /// "you will be logged out" notice.
    pub warn: bool,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl std::fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionInfo")
            .field("principal", &self.principal)
            .field("idle_remaining", &self.idle_remaining)
            .field("absolute_remaining", &self.absolute_remaining)
            .finish_non_exhaustive()
    }
}

impl SessionInfo {
    /// The token a client must send back (header or form field) with state-changing requests.
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }

    /// Constant-time comparison of a presented CSRF token with the session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), SessionError> {
        if bool::from(presented.as_bytes().ct_eq(self.csrf_token.as_bytes())) {
            Ok(())
        } else {
            Err(SessionError::CsrfMismatch)
        }
    }

    /// Seconds of idle time left, for the client's warning timer.
    pub fn idle_remaining_secs(&self) -> u64 {
        self.idle_remaining.as_secs()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Never existed, logged out, removed with its user, ended by a password change, or
    /// malformed.
    #[error("not logged in")]
    Unknown,
    #[error("the session ended after {0} minutes without activity; log in again")]
    IdleExpired(u64),
    #[error("the session reached its maximum lifetime; log in again")]
    AbsoluteExpired,
    #[error("CSRF token missing or wrong; reload the page")]
    CsrfMismatch,
    #[error(transparent)]
    Internal(#[from] AccessError),
}

/// SHA-256 of a well-formed session id (64 lowercase hex characters); `None` otherwise.
pub(crate) fn session_hash(id: &str) -> Option<[u8; 32]> {
    if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some(Sha256::digest(id.as_bytes()).into())
}

fn random_hex32() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill(&mut b);
    hex::encode(b)
}

/// A hash verified against when the user does not exist, so that unknown and known user names
/// take the same time.
fn dummy_hash(params: crate::HashParams) -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&random_hex32(), params).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                .to_owned()
        })
    })
}

#[derive(Clone)]
struct SessionRow {
    user_id: i64,
    username: String,
    role: String,
    all_cameras: bool,
    disabled: bool,
    csrf: String,
    source: String,
    created: Timestamp,
    last_seen: Timestamp,
}

impl Access {
    /// Logs a user in from `source`. A blocked address is refused before any password hashing.
    /// Every failure counts for intrusion detection and is audited.
    pub fn login(&self, creds: &Credentials<'_>, source: IpAddr) -> Result<NewSession, LoginError> {
        self.check(source)?;
        let username = creds.username;
        let valid_name = crate::users::validate_username(username).is_ok();
        // id, password hash, disabled, TOTP secret, last TOTP step
        type UserRow = (i64, String, bool, Option<String>, Option<i64>);
        let row: Option<UserRow> = if valid_name {
            self.conn()
                .query_row(
                    "SELECT id, password_hash, disabled, totp_secret, totp_last_step
                     FROM users WHERE username = ?1",
                    [username],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(AccessError::from)?
        } else {
            None
        };
        let password_ok = match &row {
            Some((_, hash, ..)) => verify_password(creds.password, hash),
            None => {
                verify_password(creds.password, dummy_hash(self.hash_params()));
                false
            }
        };
        let Some((user_id, hash, disabled, totp_secret, last_step)) = row else {
            self.record_failure(source, username, "unknown_user")?;
            return Err(LoginError::InvalidCredentials);
        };
        if !password_ok {
            self.record_failure(source, username, "wrong_password")?;
            return Err(LoginError::InvalidCredentials);
        }
        if disabled {
            self.record_failure(source, username, "user_disabled")?;
            return Err(LoginError::InvalidCredentials);
        }
        if let Some(secret) = totp_secret {
            let Some(code) = creds.totp else {
                return Err(LoginError::TotpRequired);
            };
            let now = self.clock.now();
            match totp_step(&secret, code, now)? {
                None => {
                    self.record_failure(source, username, "wrong_totp")?;
                    return Err(LoginError::InvalidCredentials);
                }
                Some(step) => {
                    // RFC 6238 §5.2: a code is accepted once; a replayed (or older) one fails.
                    // The condition in the UPDATE makes two concurrent uses of one code
                    // succeed at most once.
                    let fresh = last_step.is_none_or(|l| step as i64 > l)
                        && self
                            .conn()
                            .execute(
                                "UPDATE users SET totp_last_step = ?2
                                 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                                params![user_id, step as i64],
                            )
                            .map_err(AccessError::from)?
                            == 1;
                    if !fresh {
                        self.record_failure(source, username, "totp_reused")?;
                        return Err(LoginError::InvalidCredentials);
                    }
                }
            }
        }
        if !hash_is_current(&hash, self.hash_params()) {
            // Upgrade hashes made with older or weaker parameters while we know the password.
            let new_hash =
                hash_password(creds.password, self.hash_params()).map_err(AccessError::from)?;
            self.conn()
                .execute(
                    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                    params![user_id, new_hash],
                )
                .map_err(AccessError::from)?;
        }
        let session = self.create_session(user_id, source)?;
        self.log_access(source, username, true, self.clock.now())?;
        self.audit(AuditRecord::new(
            AuditKind::LoginSucceeded,
            Some(username),
            Some(&source.to_string()),
        ))?;
        Ok(session)
    }

    fn create_session(&self, user_id: i64, source: IpAddr) -> Result<NewSession, AccessError> {
        let now = self.clock.now();
        let session_id = random_hex32();
        let csrf_token = random_hex32();
        let hash = session_hash(&session_id).expect("generated ids are well-formed");
        let conn = self.conn();
        conn.execute(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, source, created_ms, last_seen_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![
                hash.as_slice(),
                user_id,
                csrf_token,
                source.to_string(),
                now.unix_ms()
            ],
        )?;
        let row = load_session(&conn, &hash)?
            .ok_or_else(|| AccessError::Corrupt("session vanished right after creation".into()))?;
        let principal = principal_of(&conn, &row)?;
        let cfg = self.cfg().session.clone();
        Ok(NewSession {
            session_id,
            csrf_token,
            principal,
            idle_expires: now.plus(cfg.idle_timeout),
            absolute_expires: now.plus(cfg.absolute_lifetime),
        })
    }

    /// Validates the session cookie of a request and counts the request as activity (the idle
    /// timer restarts). Expired sessions are deleted and audited.
    pub fn validate_session(&self, session_id: &str) -> Result<SessionInfo, SessionError> {
        self.session_lookup(session_id, true)
    }

    /// Like [`Access::validate_session`] but does not count as activity: for the client's
    /// "time left" polling, which must not keep an idle session alive.
    pub fn session_status(&self, session_id: &str) -> Result<SessionInfo, SessionError> {
        self.session_lookup(session_id, false)
    }

    /// Checks the CSRF token presented with a state-changing request.
    pub fn verify_csrf(&self, session_id: &str, presented: &str) -> Result<(), SessionError> {
        self.session_status(session_id)?.check_csrf(presented)
    }

    fn session_lookup(&self, session_id: &str, touch: bool) -> Result<SessionInfo, SessionError> {
        let hash = session_hash(session_id).ok_or(SessionError::Unknown)?;
        let now = self.clock.now();
        let cfg = self.cfg().session.clone();
        // A hit answers without the database unless the session has run out (the database
        // path deletes and audits it) or the idle timer is due to be written.
        let hit = self
            .session_cache
            .get(&hash, now.unix_ms())
            .filter(|c| expiry(&c.row, &cfg, now).is_none())
            .filter(|c| !(touch && touch_due(&c.row, now)));
        let (row, principal) = match hit {
            Some(c) => (c.row, c.principal),
            None => self.session_lookup_db(&hash, &cfg, now, touch)?,
        };
        let last_seen = if touch { now } else { row.last_seen };
        let idle_remaining = last_seen.plus(cfg.idle_timeout).since(now);
        let absolute_remaining = row.created.plus(cfg.absolute_lifetime).since(now);
        Ok(SessionInfo {
            principal,
            csrf_token: row.csrf,
            source: row.source,
            created: row.created,
            last_seen,
            warn: idle_remaining.min(absolute_remaining) <= cfg.warn_before,
            idle_remaining,
            absolute_remaining,
        })
    }

    /// The database half of [`Access::session_lookup`]: the session's row checked (disabled
    /// user, expiry: deleted and audited), the idle timer written when due, the result cached.
    fn session_lookup_db(
        &self,
        hash: &[u8; 32],
        cfg: &SessionConfig,
        now: Timestamp,
        touch: bool,
    ) -> Result<(SessionRow, Principal), SessionError> {
        let generation = self.session_cache.generation();
        let conn = self.conn();
        let mut row = load_session(&conn, hash)?.ok_or(SessionError::Unknown)?;
        if row.disabled {
            conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [hash.as_slice()])
                .map_err(AccessError::from)?;
            self.session_cache.remove(hash);
            return Err(SessionError::Unknown);
        }
        if let Some(reason) = expiry(&row, cfg, now) {
            conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [hash.as_slice()])
                .map_err(AccessError::from)?;
            drop(conn);
            self.session_cache.remove(hash);
            self.audit(
                AuditRecord::new(
                    AuditKind::SessionExpired,
                    Some(&row.username),
                    Some(&row.source),
                )
                .detail(serde_json::json!({ "reason": reason })),
            )?;
            return Err(if reason == "idle" {
                SessionError::IdleExpired(cfg.idle_timeout.as_secs() / 60)
            } else {
                SessionError::AbsoluteExpired
            });
        }
        if touch && touch_due(&row, now) {
            conn.execute(
                "UPDATE sessions SET last_seen_ms = ?2 WHERE id_hash = ?1",
                params![hash.as_slice(), now.unix_ms()],
            )
            .map_err(AccessError::from)?;
            row.last_seen = now;
        }
        let principal = principal_of(&conn, &row)?;
        drop(conn);
        self.session_cache.insert(
            *hash,
            CachedSession {
                row: row.clone(),
                principal: principal.clone(),
            },
            now.unix_ms(),
            generation,
        );
        Ok((row, principal))
    }

    /// Ends a session (the user logged out). Unknown ids are ignored.
    pub fn logout(&self, session_id: &str) -> Result<(), AccessError> {
        // Sessions name users, roles and grants: none cached may outlive this change.
        let _sessions = self.session_cache.invalidate_after();
        let Some(hash) = session_hash(session_id) else {
            return Ok(());
        };
        let row = {
            let conn = self.conn();
            let row = load_session(&conn, &hash)?;
            conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [hash.as_slice()])?;
            row
        };
        if let Some(row) = row {
            self.audit(AuditRecord::new(
                AuditKind::Logout,
                Some(&row.username),
                Some(&row.source),
            ))?;
        }
        Ok(())
    }

    /// Ends every session of a user (e.g. "log out everywhere"); returns how many.
    pub fn logout_user(&self, username: &str) -> Result<usize, AccessError> {
        // Sessions name users, roles and grants: none cached may outlive this change.
        let _sessions = self.session_cache.invalidate_after();
        let n = self.conn().execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
            [username],
        )?;
        if n > 0 {
            self.audit(
                AuditRecord::new(AuditKind::Logout, Some(username), None)
                    .detail(serde_json::json!({ "all_sessions": n })),
            )?;
        }
        Ok(n)
    }

    /// Deletes sessions past their idle or absolute limit and audits each; returns how many.
    /// Run it every minute or so, so that expiry is audited even when the client is gone.
    pub fn purge_expired_sessions(&self) -> Result<usize, AccessError> {
        // Sessions name users, roles and grants: none cached may outlive this change.
        let _sessions = self.session_cache.invalidate_after();
        let now = self.clock.now().unix_ms();
        let cfg = self.cfg().session.clone();
        let idle = duration_ms(cfg.idle_timeout);
        let abs = duration_ms(cfg.absolute_lifetime);
        let expired: Vec<(Vec<u8>, String, String, &'static str)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT s.id_hash, u.username, s.source, s.created_ms + ?3 <= ?1
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.created_ms + ?3 <= ?1 OR s.last_seen_ms + ?2 <= ?1",
            )?;
            let rows = stmt.query_map(params![now, idle, abs], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    if r.get::<_, bool>(3)? {
                        "absolute"
                    } else {
                        "idle"
                    },
                ))
            })?;
            let list = rows.collect::<Result<Vec<_>, _>>()?;
            for (h, ..) in &list {
                conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [h])?;
            }
            list
        };
        for (_, user, source, reason) in &expired {
            self.audit(
                AuditRecord::new(AuditKind::SessionExpired, Some(user), Some(source))
                    .detail(serde_json::json!({ "reason": reason })),
            )?;
        }
        Ok(expired.len())
    }
}

/// What a successful session lookup caches (see [`crate::lookup_cache`]): the row and who it
/// is. Changes to users, grants and sessions made through this [`Access`] empty the cache.
#[derive(Clone)]
pub(crate) struct CachedSession {
    row: SessionRow,
    principal: Principal,
}

/// Why the session has run out at `now`, if it has.
fn expiry(row: &SessionRow, cfg: &SessionConfig, now: Timestamp) -> Option<&'static str> {
    if now >= row.created.plus(cfg.absolute_lifetime) {
        Some("absolute")
    } else if now >= row.last_seen.plus(cfg.idle_timeout) {
        Some("idle")
    } else {
        None
    }
}

/// Writing the idle timer on every request would cost a disk write each; a second's precision
/// is plenty for a 15-minute timer.
fn touch_due(row: &SessionRow, now: Timestamp) -> bool {
    now.since(row.last_seen) >= Duration::from_secs(1)
}

fn load_session(conn: &Db, hash: &[u8; 32]) -> Result<Option<SessionRow>, AccessError> {
    Ok(conn
        .query_row(
            "SELECT s.user_id, u.username, u.role, u.all_cameras, u.disabled, s.csrf_token,
                    s.source, s.created_ms, s.last_seen_ms
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?1",
            [hash.as_slice()],
            |r| {
                Ok(SessionRow {
                    user_id: r.get(0)?,
                    username: r.get(1)?,
                    role: r.get(2)?,
                    all_cameras: r.get(3)?,
                    disabled: r.get(4)?,
                    csrf: r.get(5)?,
                    source: r.get(6)?,
                    created: Timestamp::from_unix_ms(r.get(7)?),
                    last_seen: Timestamp::from_unix_ms(r.get(8)?),
                })
            },
        )
        .optional()?)
}

fn principal_of(conn: &Db, row: &SessionRow) -> Result<Principal, AccessError> {
    Ok(Principal::User {
        username: row.username.clone(),
        role: parse_role(&row.role)?,
        cameras: load_cameras(conn, row.user_id, row.all_cameras)?,
    })
}
