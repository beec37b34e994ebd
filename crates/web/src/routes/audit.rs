//! The hash-chained audit log (docs/security-model.md): filtered queries, JSON-lines export for a SIEM or an
//! archive, and verification of the chain. Every route needs `ViewAudit` (admins and
//! auditors). The log itself (append-only, chained, verified) is vigil-access's.

use crate::json::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{AuditEntry, AuditKind, AuditQuery, ChainReport, Permission, Timestamp};

use super::blocking;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::SharedState;

/// Entries returned by a query without `limit`.
pub const DEFAULT_LIMIT: usize = 1000;
/// Largest `limit` a query accepts.
pub const MAX_LIMIT: usize = 10_000;
/// Largest export; narrow it with `from`/`to` beyond this. The export is built in memory.
pub const MAX_EXPORT: usize = 1_000_000;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(query))
        .routes(routes!(export))
        .routes(routes!(verify))
}

/// Filters, combined with AND.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// e.g. login_failed, export, permission_changed, certificate_operation.
    pub kind: Option<String>,
    /// Who acted (a user name, `token:<id>` or `cli:<os user>`).
    pub user: Option<String>,
    /// Source address, or `cli`.
    pub source: Option<String>,
    /// From this time (inclusive), RFC 3339, e.g. 2024-05-01T00:00:00Z.
    pub from: Option<String>,
    /// Up to this time (exclusive), RFC 3339.
    pub to: Option<String>,
    /// The newest this many entries (query: default 1000, at most 10000; export: at most
    /// 1000000, default all).
    pub limit: Option<usize>,
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl AuditFilter {
    fn to_query(&self, limit: Option<usize>) -> ApiResult<AuditQuery> {
        let time = |name: &str, v: &Option<String>| -> ApiResult<Option<Timestamp>> {
            nonempty(v.clone())
                .map(|s| {
                    Timestamp::parse(&s).map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
                })
                .transpose()
        };
        let q = AuditQuery {
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            user: nonempty(self.user.clone()),
            kind: nonempty(self.kind.clone())
                .map(|k| k.parse::<AuditKind>())
                .transpose()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
            source: nonempty(self.source.clone()),
            newest_first: limit.is_some(),
            limit,
        };
        if let (Some(f), Some(t)) = (q.from, q.to)
            && f >= t
        {
            return Err(ApiError::bad_request(
                "`from` must be before `to` (`to` is exclusive)",
            ));
        }
        Ok(q)
    }
}

fn check_limit(limit: usize, max: usize) -> ApiResult<usize> {
    if limit == 0 || limit > max {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {max}; narrow the range with `from` and `to` for more"
        )));
    }
    Ok(limit)
}

/// One audit entry. `hash` chains it to the entry before (`prev_hash`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    /// RFC 3339.
    pub time_utc: String,
    pub kind: String,
    pub user: Option<String>,
    pub source: Option<String>,
    /// What was done (camera, time range, what changed...). Never secrets.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        AuditEntryView {
            seq: e.seq,
            time: e.time.unix_ms(),
            time_utc: e.time_utc,
            kind: e.kind.as_str().to_owned(),
            user: e.user,
            source: e.source,
            detail: e.detail,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntryView>,
    /// More entries match than `limit`; narrow the filters or raise the limit.
    pub truncated: bool,
}

/// Matching entries, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(AuditFilter),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "bad kind, time or limit", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs ViewAudit", body = ErrorBody),
    ))]
async fn query(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> ApiResult<Json<AuditPage>> {
    caller.require(Permission::ViewAudit, None)?;
    let limit = check_limit(filter.limit.unwrap_or(DEFAULT_LIMIT), MAX_LIMIT)?;
    // One more than asked tells whether the answer is complete.
    let q = filter.to_query(Some(limit + 1))?;
    let access = state.access.clone();
    let mut entries = blocking(move || access.audit_query(&q)).await??;
    let truncated = entries.len() > limit;
    entries.truncate(limit);
    Ok(Json(AuditPage {
        entries: entries.into_iter().map(AuditEntryView::from).collect(),
        truncated,
    }))
}

/// Matching entries as JSON lines (one entry per line, oldest first) for a SIEM or an archive;
/// the lines carry the hashes, so the chain can be re-checked offline.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit",
    params(AuditFilter),
    responses(
        (status = 200, description = "JSON lines", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "bad filter, or too many entries", body = ErrorBody),
        (status = 403, description = "needs ViewAudit", body = ErrorBody),
    ))]
async fn export(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> ApiResult<Response> {
    caller.require(Permission::ViewAudit, None)?;
    let explicit = filter
        .limit
        .map(|l| check_limit(l, MAX_EXPORT))
        .transpose()?;
    let q = match explicit {
        // The newest `limit` entries.
        Some(l) => filter.to_query(Some(l))?,
        // Everything, oldest first, with one extra to notice an oversized export.
        None => AuditQuery {
            newest_first: false,
            limit: Some(MAX_EXPORT + 1),
            ..filter.to_query(None)?
        },
    };
    let access = state.access.clone();
    let mut entries = blocking(move || access.audit_query(&q)).await??;
    if explicit.is_none() && entries.len() > MAX_EXPORT {
        return Err(ApiError::bad_request(format!(
            "more than {MAX_EXPORT} entries match; export in parts with `from` and `to`"
        )));
    }
    entries.sort_by_key(|e| e.seq);
    // Taking the log out of the server is itself on record (after the read, so the export
    // does not contain its own entry).
    let detail = serde_json::json!({
        "audit_log": true,
        "entries": entries.len(),
        "first_seq": entries.first().map(|e| e.seq),
        "last_seq": entries.last().map(|e| e.seq),
        "kind": filter.kind, "user": filter.user, "source": filter.source,
        "from": filter.from, "to": filter.to, "limit": filter.limit,
    });
    super::audit(&state, &caller, AuditKind::Export, detail).await?;
    let mut body = Vec::with_capacity(entries.len() * 256);
    for e in &entries {
        serde_json::to_writer(&mut body, e).map_err(ApiError::internal)?;
        body.push(b'\n');
    }
    let now = state.access.now().unix_secs();
    let disposition = format!("attachment; filename=\"vigil-audit-{now}.jsonl\"");
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(ApiError::internal)?,
    );
    Ok(resp)
}

/// The result of re-computing the whole chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainReportView {
    /// `intact` or `broken`.
    pub status: &'static str,
    /// Entries checked (intact chain).
    pub entries: Option<u64>,
    /// Hash of the last entry (intact chain): keep it elsewhere to detect a rewrite.
    pub head: Option<String>,
    /// The first entry that does not fit (broken chain).
    pub seq: Option<u64>,
    /// modified, missing, bad_link, truncated or head_mismatch (broken chain).
    pub problem: Option<String>,
    /// The report in words.
    pub message: String,
}

/// Re-computes the hash chain and reports the first entry that was edited, deleted, inserted
/// or reordered.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses(
        (status = 200, body = ChainReportView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs ViewAudit", body = ErrorBody),
    ))]
async fn verify(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<ChainReportView>> {
    caller.require(Permission::ViewAudit, None)?;
    let access = state.access.clone();
    let report = blocking(move || access.verify_audit_chain()).await??;
    let message = report.to_string();
    Ok(Json(match report {
        ChainReport::Intact { entries, head } => ChainReportView {
            status: "intact",
            entries: Some(entries),
            head: Some(head),
            seq: None,
            problem: None,
            message,
        },
        ChainReport::Broken { seq, problem } => ChainReportView {
            status: "broken",
            entries: None,
            head: None,
            seq: Some(seq),
            problem: serde_json::to_value(problem)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
            message,
        },
    }))
}
