//! API tokens for integrations: scoped to a role and cameras, stored as SHA-256 hashes (the
//! token carries 256 random bits, so a fast hash is enough), shown once at creation,
//! revocable, optionally expiring.
//!
//! Format: `vgt_<id>_<secret>` with a 16-hex-digit public id (to find the row and to name the
//! token in lists and the audit log) and a 64-hex-digit secret.
//!
//! Every API request authenticates its token, so successful lookups are kept in the
//! [`crate::lookup_cache`] (keyed by the token's SHA-256): without it each request took the
//! database lock and SQLite's file locks, which serialised the API workers (bench/https: 0.6 x
//! nginx's request rate with the lookup, about 1.0 x without). Revoking a token in this process
//! empties it at once; a revocation by another process is seen within its TTL.

use std::net::IpAddr;
use std::time::Duration;

use rand::Rng as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use vigil_db::{Db, OptionalExtension as _, params};

use crate::audit::{AuditKind, AuditRecord};
use crate::clock::Timestamp;
use crate::ids::Blocked;
use crate::roles::{CameraScope, Principal, Role};
use crate::users::{parse_role, validate_camera};
use crate::{Access, AccessError, Actor};

const PREFIX: &str = "vgt_";
const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;

/// Why a presented string is not a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("API token must start with \"vgt_\"; pass the whole token as shown at creation")]
    Prefix,
    #[error(
        "API token has length {0}, expected 85 characters (vgt_ + 16 hex + _ + 64 hex); it may have been truncated when copied"
    )]
    Length(usize),
    #[error("API token is malformed: expected vgt_<16 lowercase hex>_<64 lowercase hex>")]
    Shape,
}

/// Splits a token into its public id and secret after checking its shape.
pub fn parse_token(token: &str) -> Result<(&str, &str), TokenFormatError> {
    let rest = token.strip_prefix(PREFIX).ok_or(TokenFormatError::Prefix)?;
    let expected = PREFIX.len() + ID_HEX + 1 + SECRET_HEX;
    if token.len() != expected {
        return Err(TokenFormatError::Length(token.len()));
    }
    let (id, secret) = rest.split_once('_').ok_or(TokenFormatError::Shape)?;
    let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if id.len() != ID_HEX || secret.len() != SECRET_HEX || !hex(id) || !hex(secret) {
        return Err(TokenFormatError::Shape);
    }
    Ok((id, secret))
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    pub cameras: CameraScope,
    /// `None`: valid until revoked.
    pub expires_in: Option<Duration>,
}

/// The result of creating a token. `token` is shown once: only its hash is kept.
#[derive(Clone, Serialize)]
pub struct CreatedToken {
    pub id: String,
    pub token: String,
    pub expires: Option<Timestamp>,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A token as listed (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub cameras: CameraScope,
    pub created: Timestamp,
    pub created_by: String,
    pub expires: Option<Timestamp>,
    pub revoked: Option<Timestamp>,
    pub last_used: Option<Timestamp>,
}

impl TokenInfo {
    /// `revoked`, `expired` (at `now`) or `active`.
    pub fn state(&self, now: Timestamp) -> &'static str {
        if self.revoked.is_some() {
            "revoked"
        } else if self.expires.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Blocked(#[from] Blocked),
    #[error("invalid API token")]
    Invalid,
    #[error("API token {0} was revoked")]
    Revoked(String),
    #[error("API token {0} expired")]
    Expired(String),
    #[error(transparent)]
    Internal(#[from] AccessError),
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What a successful token lookup caches: who the token is, and until when it is valid.
#[derive(Clone)]
pub(crate) struct CachedToken {
    principal: Principal,
    expires_ms: Option<i64>,
}

fn load_token_cameras(conn: &Db, id: &str, all: bool) -> Result<CameraScope, AccessError> {
    if all {
        return Ok(CameraScope::All);
    }
    let mut stmt = conn.prepare("SELECT camera FROM token_cameras WHERE token_id = ?1")?;
    let cams = stmt
        .query_map([id], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok(CameraScope::Only(cams))
}

impl Access {
    pub fn create_token(&self, new: &NewToken, actor: &Actor) -> Result<CreatedToken, AccessError> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(AccessError::InvalidTokenName(
                new.name.chars().take(64).collect(),
            ));
        }
        if let CameraScope::Only(set) = &new.cameras {
            set.iter().try_for_each(|c| validate_camera(c))?;
        }
        let mut rng = rand::rng();
        let id = hex::encode(rng.random::<[u8; ID_HEX / 2]>());
        let secret = hex::encode(rng.random::<[u8; SECRET_HEX / 2]>());
        let token = format!("{PREFIX}{id}_{secret}");
        let now = self.clock.now();
        let expires = new.expires_in.map(|d| now.plus(d));
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO api_tokens (id, name, secret_hash, role, all_cameras, created_ms, created_by, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    name,
                    token_hash(&token).as_slice(),
                    new.role.as_str(),
                    matches!(new.cameras, CameraScope::All),
                    now.unix_ms(),
                    actor.name,
                    expires.map(Timestamp::unix_ms)
                ],
            )?;
            if let CameraScope::Only(set) = &new.cameras {
                for cam in set {
                    tx.execute(
                        "INSERT INTO token_cameras (token_id, camera) VALUES (?1, ?2)",
                        params![id, cam],
                    )?;
                }
            }
            tx.commit()?;
        }
        self.audit(
            AuditRecord::new(
                AuditKind::TokenCreated,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({
                "token_id": id,
                "name": name,
                "role": new.role,
                "cameras": new.cameras,
                "expires": expires.map(|t| t.to_string()),
            })),
        )?;
        Ok(CreatedToken { id, token, expires })
    }

    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, AccessError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, role, all_cameras, created_ms, created_by, expires_ms, revoked_ms, last_used_ms
             FROM api_tokens ORDER BY created_ms, id",
        )?;
        let rows = stmt
            .query_map((), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let ts = |v: Option<i64>| v.map(Timestamp::from_unix_ms);
        rows.into_iter()
            .map(|(id, name, role, all, created, by, exp, rev, used)| {
                Ok(TokenInfo {
                    cameras: load_token_cameras(&conn, &id, all)?,
                    role: parse_role(&role)?,
                    id,
                    name,
                    created: Timestamp::from_unix_ms(created),
                    created_by: by,
                    expires: ts(exp),
                    revoked: ts(rev),
                    last_used: ts(used),
                })
            })
            .collect()
    }

    /// Revokes a token for good; its next use fails.
    pub fn revoke_token(&self, id: &str, actor: &Actor) -> Result<(), AccessError> {
        let now = self.clock.now();
        let n = self.conn().execute(
            "UPDATE api_tokens SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1",
            params![id, now.unix_ms()],
        )?;
        // Whatever the outcome, no cached lookup may outlive this call.
        self.token_cache.invalidate();
        if n == 0 {
            return Err(AccessError::UnknownToken(id.chars().take(32).collect()));
        }
        self.audit(
            AuditRecord::new(
                AuditKind::TokenRevoked,
                Some(&actor.name),
                Some(&actor.source),
            )
            .detail(serde_json::json!({ "token_id": id })),
        )?;
        Ok(())
    }

    /// Authenticates a bearer token from `source`. A blocked address is refused first; a bad
    /// token counts as a failed login for intrusion detection.
    pub fn authenticate_token(&self, token: &str, source: IpAddr) -> Result<Principal, TokenError> {
        self.check(source)?;
        let key = token_hash(token);
        let now = self.clock.now().unix_ms();
        if let Some(hit) = self.token_cache.get(&key, now)
            && hit.expires_ms.is_none_or(|x| now < x)
        {
            return Ok(hit.principal);
        }
        let generation = self.token_cache.generation();
        let (principal, expires_ms) = self.authenticate_token_db(token, source)?;
        self.token_cache.insert(
            key,
            CachedToken {
                principal: principal.clone(),
                expires_ms,
            },
            now,
            generation,
        );
        Ok(principal)
    }

    /// The database half of [`Access::authenticate_token`]: the token's row, checked, with
    /// its expiry for the cache.
    fn authenticate_token_db(
        &self,
        token: &str,
        source: IpAddr,
    ) -> Result<(Principal, Option<i64>), TokenError> {
        let Ok((id, _)) = parse_token(token) else {
            self.record_failure(source, "token:(malformed)", "malformed_token")?;
            return Err(TokenError::Invalid);
        };
        // Only failures name the token in the IDS log; the success path does not allocate it.
        let fail = |reason: &str| self.record_failure(source, &format!("token:{id}"), reason);
        let now = self.clock.now();
        type Row = (
            String,
            Vec<u8>,
            String,
            bool,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        // One lock for the lookup, the last-used stamp and the camera scope. The statements
        // are cached on the connection: this runs on every API request, and parsing the SQL
        // again each time cost more than the lookup itself.
        let conn = self.conn();
        let row: Option<Row> = conn
            .prepare(
                "SELECT name, secret_hash, role, all_cameras, expires_ms, revoked_ms, last_used_ms
                 FROM api_tokens WHERE id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([id], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })
                .optional()
            })
            .map_err(AccessError::from)?;
        let Some((name, stored, role, all, expires, revoked, last_used)) = row else {
            drop(conn);
            fail("unknown_token")?;
            return Err(TokenError::Invalid);
        };
        if !bool::from(token_hash(token).as_slice().ct_eq(stored.as_slice())) {
            drop(conn);
            fail("wrong_token_secret")?;
            return Err(TokenError::Invalid);
        }
        if revoked.is_some() {
            drop(conn);
            fail("token_revoked")?;
            return Err(TokenError::Revoked(id.to_owned()));
        }
        if expires.is_some_and(|e| now.unix_ms() >= e) {
            drop(conn);
            fail("token_expired")?;
            return Err(TokenError::Expired(id.to_owned()));
        }
        // Recording every use would be a disk write per request; a minute is precise enough.
        if last_used.is_none_or(|t| now.unix_ms() - t >= 60_000) {
            conn.prepare("UPDATE api_tokens SET last_used_ms = ?2 WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute(params![id, now.unix_ms()]))
                .map_err(AccessError::from)?;
        }
        let cameras = load_token_cameras(&conn, id, all)?;
        drop(conn);
        let principal = Principal::Token {
            token_id: id.to_owned(),
            name,
            role: parse_role(&role)?,
            cameras,
        };
        Ok((principal, expires))
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use crate::tests::{Fixture, T0};

    #[test]
    fn revocation_by_another_process_is_seen_within_the_ttl() {
        let f = Fixture::new();
        let t = f
            .access
            .create_token(
                &NewToken {
                    name: "cached".into(),
                    role: Role::Viewer,
                    cameras: CameraScope::All,
                    expires_in: None,
                },
                &Actor::cli(),
            )
            .unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(f.access.authenticate_token(&t.token, ip).is_ok());
        // Another process (the CLI) revokes it through its own connection.
        let other = f.raw();
        other
            .execute(
                "UPDATE api_tokens SET revoked_ms = ?2 WHERE id = ?1",
                params![t.id, T0.unix_ms()],
            )
            .unwrap();
        f.clock
            .advance(Duration::from_millis(crate::LOOKUP_TTL_MS as u64));
        assert!(matches!(
            f.access.authenticate_token(&t.token, ip),
            Err(TokenError::Revoked(_))
        ));
    }

    #[test]
    fn a_token_is_only_answered_by_the_database_that_holds_it() {
        let a = Fixture::new();
        let b = Fixture::new();
        let t = a
            .access
            .create_token(
                &NewToken {
                    name: "only-a".into(),
                    role: Role::Admin,
                    cameras: CameraScope::All,
                    expires_in: None,
                },
                &Actor::cli(),
            )
            .unwrap();
        let ip: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(a.access.authenticate_token(&t.token, ip).is_ok());
        assert!(matches!(
            b.access.authenticate_token(&t.token, ip),
            Err(TokenError::Invalid)
        ));
    }
}
