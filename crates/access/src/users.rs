//! Users: creation (first administrator without a default password), roles and camera
//! permissions, password changes (which end the user's other sessions) and TOTP enrolment.

use std::collections::BTreeSet;

use serde::Serialize;
use totp_rs::{Algorithm, Secret, Totp};
use vigil_db::{Db, OptionalExtension as _, Tx, params};

use crate::audit::{AuditKind, AuditRecord};
use crate::clock::Timestamp;
use crate::password::{check_password_policy, generate_password, hash_password};
use crate::roles::{CameraScope, Role};
use crate::{Access, AccessError, Actor};

/// Checks a user name: 1–64 characters of `a-z A-Z 0-9 . _ @ -`, starting with a letter or
/// digit (so names are safe in logs, URLs and otpauth labels).
pub fn validate_username(name: &str) -> Result<(), AccessError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AccessError::InvalidUsername(
            name.chars().take(64).collect(),
        ))
    }
}

pub(crate) fn validate_camera(cam: &str) -> Result<(), AccessError> {
    if cam.is_empty() || cam.len() > 128 || cam.chars().any(char::is_control) {
        return Err(AccessError::InvalidCamera(cam.chars().take(128).collect()));
    }
    Ok(())
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub role: Role,
    pub cameras: CameraScope,
    /// `None`: generate a strong password and return it (to show once).
    pub password: Option<String>,
}

/// A user as listed (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub username: String,
    pub role: Role,
    pub cameras: CameraScope,
    pub totp_enabled: bool,
    pub disabled: bool,
    pub created: Timestamp,
    pub password_changed: Timestamp,
    pub active_sessions: u64,
}

/// A TOTP secret waiting for confirmation with a first code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrollment {
    /// Base32 secret for manual entry in an authenticator app.
    pub secret_base32: String,
    /// `otpauth://totp/...` URI (render it as a QR code).
    pub otpauth_uri: String,
}

pub(crate) const TOTP_STEP_SECS: u64 = 30;

pub(crate) fn totp_from_base32(b32: &str) -> Result<Totp, AccessError> {
    let secret = Secret::try_from_base32(b32)
        .map_err(|e| AccessError::Corrupt(format!("stored TOTP secret: {e}")))?;
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(TOTP_STEP_SECS)
        .with_secret(secret)
        .build()
        .map_err(|e| AccessError::Totp(e.to_string()))
}

/// The TOTP step `code` matches at `now` (±1 step of clock skew), if any.
pub(crate) fn totp_step(b32: &str, code: &str, now: Timestamp) -> Result<Option<u64>, AccessError> {
    let totp = totp_from_base32(b32)?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(totp.check(&code, u64::try_from(now.unix_secs()).unwrap_or(0)))
}

fn user_id(tx: &Db, username: &str) -> Result<i64, AccessError> {
    tx.query_row(
        "SELECT id FROM users WHERE username = ?1",
        [username],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| AccessError::UnknownUser(username.to_owned()))
}

fn write_cameras(tx: &Tx<'_>, id: i64, scope: &CameraScope) -> Result<(), AccessError> {
    tx.execute("DELETE FROM user_cameras WHERE user_id = ?1", [id])?;
    if let CameraScope::Only(set) = scope {
        for cam in set {
            validate_camera(cam)?;
            tx.execute(
                "INSERT INTO user_cameras (user_id, camera) VALUES (?1, ?2)",
                params![id, cam],
            )?;
        }
    }
    tx.execute(
        "UPDATE users SET all_cameras = ?2 WHERE id = ?1",
        params![id, matches!(scope, CameraScope::All)],
    )?;
    Ok(())
}

pub(crate) fn load_cameras(conn: &Db, id: i64, all: bool) -> Result<CameraScope, AccessError> {
    if all {
        return Ok(CameraScope::All);
    }
    let mut stmt = conn.prepare("SELECT camera FROM user_cameras WHERE user_id = ?1")?;
    let cams = stmt
        .query_map([id], |r| r.get::<_, String>(0))?
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(CameraScope::Only(cams))
}

pub(crate) fn parse_role(s: &str) -> Result<Role, AccessError> {
    s.parse()
        .map_err(|_| AccessError::Corrupt(format!("role {s:?}")))
}

/// Enabled admins other than `except`.
fn other_admins(conn: &Db, except: &str) -> Result<i64, AccessError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND username != ?1",
        [except],
        |r| r.get(0),
    )?)
}

impl Access {
    /// Creates the first administrator in an empty database. Without a password, a strong one
    /// is generated and returned, to be shown once; there is no default password. `actor` is
    /// who ran the setup (the command line's user).
    pub fn create_first_admin(
        &self,
        username: &str,
        password: Option<&str>,
        actor: &Actor,
    ) -> Result<Option<String>, AccessError> {
        let count: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM users", (), |r| r.get(0))?;
        if count > 0 {
            return Err(AccessError::AlreadyInitialized);
        }
        self.create_user(
            &NewUser {
                username: username.to_owned(),
                role: Role::Admin,
                cameras: CameraScope::All,
                password: password.map(str::to_owned),
            },
            actor,
        )
    }

    /// Creates a user. Returns the generated password when none was given.
    pub fn create_user(&self, new: &NewUser, actor: &Actor) -> Result<Option<String>, AccessError> {
        validate_username(&new.username)?;
        let (password, generated) = match &new.password {
            Some(p) => {
                check_password_policy(p, &new.username)?;
                (p.clone(), false)
            }
            None => (generate_password(), true),
        };
        if let CameraScope::Only(set) = &new.cameras {
            set.iter().try_for_each(|c| validate_camera(c))?;
        }
        // Hash before taking the database lock: it takes tens of milliseconds.
        let hash = hash_password(&password, self.hash_params())?;
        let now = self.clock.now();
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            // Names differing only in case are one name; the unique index cannot say so on
            // both engines, so creators wait for each other here.
            tx.lock_exclusive("users")?;
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM users WHERE lower(username) = lower(?1))",
                [&new.username],
                |r| r.get(0),
            )?;
            if exists {
                return Err(AccessError::UserExists(new.username.clone()));
            }
            let id: i64 = tx.query_row(
                "INSERT INTO users (username, role, all_cameras, password_hash, created_ms, password_changed_ms)
                 VALUES (?1, ?2, 0, ?3, ?4, ?4) RETURNING id",
                params![new.username, new.role.as_str(), hash, now.unix_ms()],
                |r| r.get(0),
            )?;
            write_cameras(&tx, id, &new.cameras)?;
            tx.commit()?;
        }
        self.audit(
            AuditRecord::new(
                AuditKind::UserCreated,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({
                "username": new.username,
                "role": new.role,
                "cameras": new.cameras,
            })),
        )?;
        Ok(generated.then_some(password))
    }

    pub fn list_users(&self) -> Result<Vec<UserInfo>, AccessError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT u.id, u.username, u.role, u.all_cameras, u.totp_secret IS NOT NULL, u.disabled,
                    u.created_ms, u.password_changed_ms,
                    (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id)
             FROM users u ORDER BY u.username",
        )?;
        let rows = stmt
            .query_map((), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(
                |(id, username, role, all, totp, disabled, created, changed, sessions)| {
                    Ok(UserInfo {
                        role: parse_role(&role)?,
                        cameras: load_cameras(&conn, id, all)?,
                        username,
                        totp_enabled: totp,
                        disabled,
                        created: Timestamp::from_unix_ms(created),
                        password_changed: Timestamp::from_unix_ms(changed),
                        active_sessions: sessions as u64,
                    })
                },
            )
            .collect()
    }

    pub fn get_user(&self, username: &str) -> Result<Option<UserInfo>, AccessError> {
        Ok(self
            .list_users()?
            .into_iter()
            .find(|u| u.username == username))
    }

    /// Removes a user (and their sessions). The last enabled admin cannot be removed.
    pub fn remove_user(&self, username: &str, actor: &Actor) -> Result<(), AccessError> {
        // Sessions name users, roles and grants: none cached may outlive this change.
        let _sessions = self.session_cache.invalidate_after();
        {
            let conn = self.conn();
            let (id, role): (i64, String) = conn
                .query_row(
                    "SELECT id, role FROM users WHERE username = ?1",
                    [username],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| AccessError::UnknownUser(username.to_owned()))?;
            if role == "admin" && other_admins(&conn, username)? == 0 {
                return Err(AccessError::LastAdmin(username.to_owned()));
            }
            conn.execute("DELETE FROM users WHERE id = ?1", [id])?;
        }
        self.audit(
            AuditRecord::new(
                AuditKind::UserRemoved,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({ "username": username })),
        )?;
        Ok(())
    }

    /// Changes a user's role. Takes effect on the user's next request.
    pub fn set_role(&self, username: &str, role: Role, actor: &Actor) -> Result<(), AccessError> {
        // Sessions name users, roles and grants: none cached may outlive this change.
        let _sessions = self.session_cache.invalidate_after();
        let old = {
            let conn = self.conn();
            let old: String = conn
                .query_row(
                    "SELECT role FROM users WHERE username = ?1",
                    [username],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| AccessError::UnknownUser(username.to_owned()))?;
            if old == "admin" && role != Role::Admin && other_admins(&conn, username)? == 0 {
                return Err(AccessError::LastAdmin(username.to_owned()));
            }
            conn.execute(
                "UPDATE users SET role = ?2 WHERE username = ?1",
                params![username, role.as_str()],
            )?;
            old
        };
        self.audit(
            AuditRecord::new(
                AuditKind::PermissionChanged,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({ "username": username, "role": role, "old_role": old })),
        )?;
        Ok(())
    }

    /// Replaces a user's camera permissions.
    pub fn set_cameras(
        &self,
        username: &str,
        cameras: &CameraScope,
        actor: &Actor,
    ) -> Result<(), AccessError> {
        // Sessions name users, roles and grants: none cached may outlive this change.
        let _sessions = self.session_cache.invalidate_after();
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let id = user_id(&tx, username)?;
            write_cameras(&tx, id, cameras)?;
            tx.commit()?;
        }
        self.audit(
            AuditRecord::new(
                AuditKind::PermissionChanged,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({ "username": username, "cameras": cameras })),
        )?;
        Ok(())
    }

    /// Disables (ending all sessions) or re-enables a user.
    pub fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
        actor: &Actor,
    ) -> Result<(), AccessError> {
        // Sessions name users, roles and grants: none cached may outlive this change.
        let _sessions = self.session_cache.invalidate_after();
        {
            let conn = self.conn();
            let (id, role): (i64, String) = conn
                .query_row(
                    "SELECT id, role FROM users WHERE username = ?1",
                    [username],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| AccessError::UnknownUser(username.to_owned()))?;
            if disabled && role == "admin" && other_admins(&conn, username)? == 0 {
                return Err(AccessError::LastAdmin(username.to_owned()));
            }
            conn.execute(
                "UPDATE users SET disabled = ?2 WHERE id = ?1",
                params![id, disabled],
            )?;
            if disabled {
                conn.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
            }
        }
        self.audit(
            AuditRecord::new(
                AuditKind::PermissionChanged,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({ "username": username, "disabled": disabled })),
        )?;
        Ok(())
    }

    /// Sets a new password (administrator reset, `vigil user passwd`) and ends every session of
    /// the user. Without a password, one is generated and returned.
    pub fn set_password(
        &self,
        username: &str,
        password: Option<&str>,
        actor: &Actor,
    ) -> Result<Option<String>, AccessError> {
        // Sessions name users, roles and grants: none cached may outlive this change.
        let _sessions = self.session_cache.invalidate_after();
        let (password, generated) = match password {
            Some(p) => {
                check_password_policy(p, username)?;
                (p.to_owned(), false)
            }
            None => (generate_password(), true),
        };
        let ended = self.store_password(username, &password, None)?;
        self.audit(
            AuditRecord::new(
                AuditKind::PasswordChanged,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({
                "username": username,
                "by_admin": true,
                "sessions_ended": ended,
            })),
        )?;
        Ok(generated.then_some(password))
    }

    /// A user changes their own password: the current one must be right (a wrong one counts
    /// as a failed login for intrusion detection). Every other session of the user ends;
    /// `current_session` (the one making the request) stays.
    /// Re-checks an enabled user's current password before a sensitive change to their own
    /// account, without creating a session. A blocked address is refused before hashing; a
    /// wrong password counts as a failed login for intrusion detection.
    pub fn confirm_password(
        &self,
        username: &str,
        password: &str,
        source: std::net::IpAddr,
    ) -> Result<(), crate::LoginError> {
        self.check(source)?;
        let hash: Option<String> = self
            .conn()
            .query_row(
                "SELECT password_hash FROM users WHERE username = ?1 AND disabled = 0",
                [username],
                |r| r.get(0),
            )
            .optional()
            .map_err(AccessError::from)?;
        if hash.is_some_and(|h| crate::password::verify_password(password, &h)) {
            return Ok(());
        }
        self.record_failure(source, username, "wrong_current_password")?;
        Err(crate::LoginError::InvalidCredentials)
    }

    pub fn change_password(
        &self,
        username: &str,
        current_password: &str,
        new_password: &str,
        current_session: Option<&str>,
        source: std::net::IpAddr,
    ) -> Result<(), crate::LoginError> {
        // Sessions name users, roles and grants: none cached may outlive this change.
        let _sessions = self.session_cache.invalidate_after();
        self.confirm_password(username, current_password, source)?;
        check_password_policy(new_password, username).map_err(AccessError::from)?;
        let keep = current_session.and_then(crate::sessions::session_hash);
        let ended = self.store_password(username, new_password, keep)?;
        self.audit(
            AuditRecord::new(
                AuditKind::PasswordChanged,
                Some(username),
                Some(&source.to_string()),
            )
            .detail(serde_json::json!({
                "username": username,
                "by_admin": false,
                "sessions_ended": ended,
            })),
        )?;
        Ok(())
    }

    /// Stores a new hash and deletes the user's sessions except `keep`; returns how many ended.
    fn store_password(
        &self,
        username: &str,
        password: &str,
        keep: Option<[u8; 32]>,
    ) -> Result<usize, AccessError> {
        let hash = hash_password(password, self.hash_params())?;
        let now = self.clock.now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = user_id(&tx, username)?;
        tx.execute(
            "UPDATE users SET password_hash = ?2, password_changed_ms = ?3 WHERE id = ?1",
            params![id, hash, now.unix_ms()],
        )?;
        let ended = match keep {
            Some(h) => tx.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND id_hash != ?2",
                params![id, h.as_slice()],
            )?,
            None => tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?,
        };
        tx.commit()?;
        Ok(ended)
    }

    /// Starts TOTP enrolment: a new 160-bit secret, pending until [`Access::confirm_totp`].
    pub fn begin_totp_enrollment(&self, username: &str) -> Result<TotpEnrollment, AccessError> {
        validate_username(username)?;
        let mut raw = [0u8; 20];
        rand::Rng::fill(&mut rand::rng(), &mut raw);
        let secret_base32 = Secret::from(raw.to_vec()).to_base32();
        let n = self.conn().execute(
            "UPDATE users SET totp_pending = ?2 WHERE username = ?1",
            params![username, secret_base32],
        )?;
        if n == 0 {
            return Err(AccessError::UnknownUser(username.to_owned()));
        }
        let otpauth_uri = format!(
            "otpauth://totp/Vigil:{username}?secret={secret_base32}&issuer=Vigil&algorithm=SHA1&digits=6&period={TOTP_STEP_SECS}"
        );
        Ok(TotpEnrollment {
            secret_base32,
            otpauth_uri,
        })
    }

    /// Activates the pending TOTP secret once the user proves it with a current code.
    pub fn confirm_totp(
        &self,
        username: &str,
        code: &str,
        actor: &Actor,
    ) -> Result<(), AccessError> {
        let now = self.clock.now();
        {
            let conn = self.conn();
            let pending: Option<String> = conn
                .query_row(
                    "SELECT totp_pending FROM users WHERE username = ?1",
                    [username],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| AccessError::UnknownUser(username.to_owned()))?;
            let pending = pending
                .ok_or_else(|| AccessError::Totp("no enrolment pending; start one first".into()))?;
            let step = totp_step(&pending, code, now)?.ok_or_else(|| {
                AccessError::Totp(
                    "the code does not match; check the device clock and try the current code"
                        .into(),
                )
            })?;
            conn.execute(
                "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?2
                 WHERE username = ?1",
                params![username, step as i64],
            )?;
        }
        self.audit(
            AuditRecord::new(
                AuditKind::TotpEnabled,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({ "username": username })),
        )?;
        Ok(())
    }

    /// Turns the second factor off (administrator action, e.g. a lost device).
    pub fn disable_totp(&self, username: &str, actor: &Actor) -> Result<(), AccessError> {
        let n = self.conn().execute(
            "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL
             WHERE username = ?1",
            [username],
        )?;
        if n == 0 {
            return Err(AccessError::UnknownUser(username.to_owned()));
        }
        self.audit(
            AuditRecord::new(
                AuditKind::TotpDisabled,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({ "username": username })),
        )?;
        Ok(())
    }
}
