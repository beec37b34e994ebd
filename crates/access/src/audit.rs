//! The audit log (docs/security-model.md): append-only and hash-chained. Entry `n` stores
//! `hash_n = SHA-256(hash_{n-1} || canonical JSON of entry n)` (with 32 zero bytes before the
//! first entry), so editing, deleting, inserting or reordering a row breaks the chain at that
//! entry; `audit_head` holds the last sequence number and hash, so dropping entries at the end
//! is noticed too. (Someone who rewrites the whole file consistently is only caught against a
//! copy of the head kept elsewhere: forward entries to the SIEM.)

use std::io::Write;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use vigil_db::{Db, OptionalExtension as _, Row, Value, params};

use crate::AccessError;
use crate::clock::Timestamp;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    LoginSucceeded,
    LoginFailed,
    Logout,
    SessionExpired,
    PasswordChanged,
    UserCreated,
    UserRemoved,
    /// Role, camera permissions, enabled/disabled.
    PermissionChanged,
    TotpEnabled,
    TotpDisabled,
    TokenCreated,
    TokenRevoked,
    AddressBlocked,
    AddressUnblocked,
    IntrusionAlert,
    LiveView,
    Playback,
    Export,
    Verify,
    CameraChanged,
    ConfigChanged,
    CertificateOperation,
    /// A user saved a different live-view layout (grid kind, cameras per tile).
    LayoutChanged,
    /// An alarm was acknowledged or closed.
    AlarmChanged,
    /// A bookmark was made or deleted by a user.
    BookmarkChanged,
    /// An evidence lock was set or released by a user.
    EvidenceLockChanged,
    /// A camera's password rotation ended (rotated, kept the old one, not rotatable, failed);
    /// never the password.
    CameraPasswordRotation,
}

impl AuditKind {
    pub const ALL: [AuditKind; 27] = [
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::Logout,
        AuditKind::SessionExpired,
        AuditKind::PasswordChanged,
        AuditKind::UserCreated,
        AuditKind::UserRemoved,
        AuditKind::PermissionChanged,
        AuditKind::TotpEnabled,
        AuditKind::TotpDisabled,
        AuditKind::TokenCreated,
        AuditKind::TokenRevoked,
        AuditKind::AddressBlocked,
        AuditKind::AddressUnblocked,
        AuditKind::IntrusionAlert,
        AuditKind::LiveView,
        AuditKind::Playback,
        AuditKind::Export,
        AuditKind::Verify,
        AuditKind::CameraChanged,
        AuditKind::ConfigChanged,
        AuditKind::CertificateOperation,
        AuditKind::LayoutChanged,
        AuditKind::AlarmChanged,
        AuditKind::BookmarkChanged,
        AuditKind::EvidenceLockChanged,
        AuditKind::CameraPasswordRotation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSucceeded => "login_succeeded",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::Logout => "logout",
            AuditKind::SessionExpired => "session_expired",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::UserCreated => "user_created",
            AuditKind::UserRemoved => "user_removed",
            AuditKind::PermissionChanged => "permission_changed",
            AuditKind::TotpEnabled => "totp_enabled",
            AuditKind::TotpDisabled => "totp_disabled",
            AuditKind::TokenCreated => "token_created",
            AuditKind::TokenRevoked => "token_revoked",
            AuditKind::AddressBlocked => "address_blocked",
            AuditKind::AddressUnblocked => "address_unblocked",
            AuditKind::IntrusionAlert => "intrusion_alert",
            AuditKind::LiveView => "live_view",
            AuditKind::Playback => "playback",
            AuditKind::Export => "export",
            AuditKind::Verify => "verify",
            AuditKind::CameraChanged => "camera_changed",
            AuditKind::ConfigChanged => "config_changed",
            AuditKind::CertificateOperation => "certificate_operation",
            AuditKind::LayoutChanged => "layout_changed",
            AuditKind::AlarmChanged => "alarm_changed",
            AuditKind::BookmarkChanged => "bookmark_changed",
            AuditKind::EvidenceLockChanged => "evidence_lock_changed",
            AuditKind::CameraPasswordRotation => "camera_password_rotation",
        }
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown audit kind {0:?}; known kinds: login_succeeded, login_failed, logout, session_expired, password_changed, user_created, user_removed, permission_changed, totp_enabled, totp_disabled, token_created, token_revoked, address_blocked, address_unblocked, intrusion_alert, live_view, playback, export, verify, camera_changed, config_changed, certificate_operation, layout_changed, alarm_changed, bookmark_changed, evidence_lock_changed, camera_password_rotation"
)]
pub struct UnknownAuditKind(pub String);

impl FromStr for AuditKind {
    type Err = UnknownAuditKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        AuditKind::ALL
            .into_iter()
            .find(|k| k.as_str() == t)
            .ok_or_else(|| UnknownAuditKind(s.chars().take(40).collect()))
    }
}

/// An event to append. `user` is who acted (or tried to), `source` where from (an address, or
/// `cli` for the local command line).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub kind: AuditKind,
    pub user: Option<String>,
    pub source: Option<String>,
    /// Free-form details (camera, time range, what changed...). Never secrets.
    pub detail: serde_json::Value,
}

impl AuditRecord {
    pub fn new(kind: AuditKind, user: Option<&str>, source: Option<&str>) -> Self {
        AuditRecord {
            kind,
            user: user.map(str::to_owned),
            source: source.map(str::to_owned),
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// A stored entry, as queried and exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub time: Timestamp,
    /// RFC 3339 form of `time`, for people reading the export.
    pub time_utc: String,
    pub kind: AuditKind,
    pub user: Option<String>,
    pub source: Option<String>,
    pub detail: serde_json::Value,
    /// Hex SHA-256 of the previous entry (zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of `prev_hash || canonical JSON of this entry`.
    pub hash: String,
}

/// Filters for [`crate::Access::audit_query`]; all optional and combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Inclusive.
    pub from: Option<Timestamp>,
    /// Exclusive.
    pub to: Option<Timestamp>,
    pub user: Option<String>,
    pub kind: Option<AuditKind>,
    pub source: Option<String>,
    /// Newest entries first when set to `true`; oldest first otherwise.
    pub newest_first: bool,
    pub limit: Option<usize>,
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChainReport {
    Intact {
        entries: u64,
        /// Hex hash of the last entry; keep it elsewhere to detect a consistent rewrite.
        head: String,
    },
    Broken {
        /// The first entry that does not fit (or, when truncated, the first missing one).
        seq: u64,
        problem: ChainProblem,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainProblem {
    /// The entry's content no longer matches its hash.
    Modified,
    /// A sequence number is missing (an entry was deleted).
    Missing,
    /// The entry does not link to the previous one (deleted, inserted or reordered).
    BadLink,
    /// Entries at the end are gone: the head records more than the table holds.
    Truncated,
    /// The head record does not match the last entry.
    HeadMismatch,
}

impl std::fmt::Display for ChainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainReport::Intact { entries, head } => {
                write!(f, "audit log intact: {entries} entries, head {head}")
            }
            ChainReport::Broken { seq, problem } => {
                let what = match problem {
                    ChainProblem::Modified => "was modified",
                    ChainProblem::Missing => "is missing (deleted)",
                    ChainProblem::BadLink => {
                        "does not link to the entry before it (deleted, inserted or reordered)"
                    }
                    ChainProblem::Truncated => "and the entries after it were deleted",
                    ChainProblem::HeadMismatch => "does not match the recorded head",
                };
                write!(f, "audit log BROKEN: entry {seq} {what}")
            }
        }
    }
}

/// Canonical JSON: object keys sorted, no whitespace, serde_json's escaping and numbers.
pub(crate) fn canonical_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The bytes hashed for one entry: `detail_json` is spliced in verbatim as stored.
fn entry_hash(
    prev: &[u8],
    seq: u64,
    time_ms: i64,
    kind: &str,
    user: Option<&str>,
    source: Option<&str>,
    detail_json: &str,
) -> [u8; 32] {
    let opt = |s: Option<&str>| {
        s.map_or("null".to_owned(), |s| {
            serde_json::Value::String(s.to_owned()).to_string()
        })
    };
    let canonical = format!(
        "{{\"detail\":{detail_json},\"kind\":{},\"seq\":{seq},\"source\":{},\"time_ms\":{time_ms},\"user\":{}}}",
        serde_json::Value::String(kind.to_owned()),
        opt(source),
        opt(user),
    );
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical.as_bytes());
    h.finalize().into()
}

/// Appends one entry inside its own transaction, with a full sync of its commit.
pub(crate) fn append(
    conn: &mut Db,
    time: Timestamp,
    rec: &AuditRecord,
) -> Result<AuditEntry, AccessError> {
    let detail = canonical_json(&rec.detail);
    let kind = rec.kind.as_str();
    conn.set_full_sync(true)?;
    let result = (|| {
        let tx = conn.transaction()?;
        // Appenders on other connections (the CLI, another management server) wait here, so
        // two entries never take the same sequence number or previous hash.
        tx.lock_exclusive("audit_head")?;
        let head: Option<(i64, Vec<u8>)> = tx
            .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", (), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let (prev_seq, prev_hash) = head.unwrap_or((0, vec![0u8; 32]));
        let seq = u64::try_from(prev_seq).unwrap_or(0) + 1;
        let hash = entry_hash(
            &prev_hash,
            seq,
            time.unix_ms(),
            kind,
            rec.user.as_deref(),
            rec.source.as_deref(),
            &detail,
        );
        tx.execute(
            "INSERT INTO audit (seq, time_ms, kind, \"user\", source, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                seq as i64,
                time.unix_ms(),
                kind,
                rec.user,
                rec.source,
                detail,
                prev_hash,
                hash
            ],
        )?;
        tx.execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            params![seq as i64, hash],
        )?;
        tx.commit()?;
        Ok::<_, AccessError>(AuditEntry {
            seq,
            time,
            time_utc: time.to_string(),
            kind: rec.kind,
            user: rec.user.clone(),
            source: rec.source.clone(),
            detail: rec.detail.clone(),
            prev_hash: hex::encode(&prev_hash),
            hash: hex::encode(hash),
        })
    })();
    conn.set_full_sync(false)?;
    let entry = result?;
    tracing::info!(
        target: "vigil::audit",
        seq = entry.seq,
        kind = kind,
        user = entry.user.as_deref().unwrap_or("-"),
        source = entry.source.as_deref().unwrap_or("-"),
        detail = %detail,
        "audit"
    );
    Ok(entry)
}

fn row_to_entry(r: &Row) -> Result<AuditEntry, vigil_db::DbError> {
    let seq: i64 = r.get("seq")?;
    let time = Timestamp::from_unix_ms(r.get("time_ms")?);
    let kind: String = r.get("kind")?;
    let detail: String = r.get("detail")?;
    let prev: Vec<u8> = r.get("prev_hash")?;
    let hash: Vec<u8> = r.get("hash")?;
    let bad = |what: &str| vigil_db::DbError::Conversion {
        column: "audit".into(),
        message: format!("audit entry {seq}: {what}"),
    };
    Ok(AuditEntry {
        seq: seq as u64,
        time,
        time_utc: time.to_string(),
        kind: kind.parse().map_err(|_| bad("unknown kind"))?,
        user: r.get("user")?,
        source: r.get("source")?,
        detail: serde_json::from_str(&detail).map_err(|_| bad("detail is not JSON"))?,
        prev_hash: hex::encode(prev),
        hash: hex::encode(hash),
    })
}

pub(crate) fn query(conn: &Db, q: &AuditQuery) -> Result<Vec<AuditEntry>, AccessError> {
    let mut sql = String::from(
        "SELECT seq, time_ms, kind, \"user\", source, detail, prev_hash, hash FROM audit WHERE 1=1",
    );
    let mut args: Vec<Value> = Vec::new();
    if let Some(f) = q.from {
        sql.push_str(" AND time_ms >= ?");
        args.push(Value::Int(f.unix_ms()));
    }
    if let Some(t) = q.to {
        sql.push_str(" AND time_ms < ?");
        args.push(Value::Int(t.unix_ms()));
    }
    if let Some(u) = &q.user {
        sql.push_str(" AND \"user\" = ?");
        args.push(Value::Text(u.clone()));
    }
    if let Some(k) = q.kind {
        sql.push_str(" AND kind = ?");
        args.push(Value::Text(k.as_str().to_owned()));
    }
    if let Some(s) = &q.source {
        sql.push_str(" AND source = ?");
        args.push(Value::Text(s.clone()));
    }
    sql.push_str(if q.newest_first {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq ASC"
    });
    if let Some(l) = q.limit {
        sql.push_str(" LIMIT ?");
        args.push(Value::Int(i64::try_from(l).unwrap_or(i64::MAX)));
    }
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(args, row_to_entry)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Writes the matching entries as JSON lines; returns how many.
pub(crate) fn export_jsonl(
    conn: &Db,
    q: &AuditQuery,
    out: &mut dyn Write,
) -> Result<usize, AccessError> {
    let entries = query(conn, q)?;
    for e in &entries {
        let line = serde_json::to_string(e).map_err(|e| AccessError::Json(e.to_string()))?;
        writeln!(out, "{line}").map_err(|e| AccessError::Io {
            path: "<audit export>".into(),
            source: e,
        })?;
    }
    Ok(entries.len())
}

pub(crate) fn verify_chain(conn: &Db) -> Result<ChainReport, AccessError> {
    let mut expected_seq: u64 = 1;
    let mut prev = vec![0u8; 32];
    // Read in pages so a long log is not held in memory at once.
    let mut after: i64 = i64::MIN;
    loop {
        let page = conn.query(
            "SELECT seq, time_ms, kind, \"user\", source, detail, prev_hash, hash FROM audit
         WHERE seq > ?1 ORDER BY seq LIMIT 5000",
            [after],
        )?;
        let Some(last) = page.last() else { break };
        after = last.get(0)?;
        for r in &page {
            let seq = r.get::<_, i64>(0)? as u64;
            let time_ms: i64 = r.get(1)?;
            let kind: String = r.get(2)?;
            let user: Option<String> = r.get(3)?;
            let source: Option<String> = r.get(4)?;
            let detail: String = r.get(5)?;
            let row_prev: Vec<u8> = r.get(6)?;
            let hash: Vec<u8> = r.get(7)?;
            if seq != expected_seq {
                return Ok(ChainReport::Broken {
                    seq: expected_seq,
                    problem: ChainProblem::Missing,
                });
            }
            if row_prev != prev {
                return Ok(ChainReport::Broken {
                    seq,
                    problem: ChainProblem::BadLink,
                });
            }
            let computed = entry_hash(
                &prev,
                seq,
                time_ms,
                &kind,
                user.as_deref(),
                source.as_deref(),
                &detail,
            );
            if computed.as_slice() != hash.as_slice() {
                return Ok(ChainReport::Broken {
                    seq,
                    problem: ChainProblem::Modified,
                });
            }
            prev = hash;
            expected_seq += 1;
        }
    }
    let entries = expected_seq - 1;
    let head: Option<(i64, Vec<u8>)> = conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", (), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match head {
        None if entries == 0 => {}
        None => {
            return Ok(ChainReport::Broken {
                seq: entries,
                problem: ChainProblem::HeadMismatch,
            });
        }
        Some((hseq, _)) if (hseq as u64) > entries => {
            return Ok(ChainReport::Broken {
                seq: entries + 1,
                problem: ChainProblem::Truncated,
            });
        }
        Some((hseq, hhash)) if hseq as u64 != entries || hhash != prev => {
            return Ok(ChainReport::Broken {
                seq: entries,
                problem: ChainProblem::HeadMismatch,
            });
        }
        Some(_) => {}
    }
    Ok(ChainReport::Intact {
        entries,
        head: hex::encode(prev),
    })
}
