//! Intrusion detection (docs/security-model.md): what is blocked and watched, the aggregated access log (the
//! camera's "web server logfile": one entry per user name, address and outcome within the IDS
//! timeout, with a count), and lifting a block. Reading needs `ViewAudit`; unblocking changes
//! who may log in, so it needs `ManageUsers`. Counting, blocking and auditing are vigil-access's.

use std::net::IpAddr;

use crate::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{BlockPolicy, Permission};

use super::blocking;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::SharedState;

/// Access-log entries returned when no `limit` is given.
const DEFAULT_LOG_LIMIT: usize = 100;
/// Largest `limit` accepted.
const MAX_LOG_LIMIT: usize = 10_000;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(unblock))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IdsQuery {
    /// Newest access-log entries to return (default 100, at most 10000).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlockView {
    /// The blocked address (for IPv6 the first address of the blocked prefix).
    pub address: String,
    pub since: String,
    /// `null`: until the server restarts (or an admin unblocks it).
    pub until: Option<String>,
    pub failures: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WatchView {
    pub address: String,
    /// Failed attempts in the current window.
    pub failures: u32,
    pub first: String,
    pub last: String,
    pub last_alert: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessLogView {
    pub source: String,
    pub username: String,
    pub success: bool,
    /// Attempts aggregated into this entry.
    pub count: u64,
    pub first: String,
    pub last: String,
}

/// The detector's settings, so the numbers above can be read.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdsSettingsView {
    pub notification_threshold: u32,
    pub timeout_secs: u64,
    pub deadtime_secs: u64,
    /// `off`, `until_restart` or `for`.
    pub block: &'static str,
    /// With `block = for`: how long.
    pub block_secs: Option<u64>,
    pub allow_list: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdsStatusView {
    pub blocked: Vec<BlockView>,
    pub watched: Vec<WatchView>,
    /// Newest first.
    pub access_log: Vec<AccessLogView>,
    pub settings: IdsSettingsView,
}

/// Blocked and watched addresses, the newest aggregated access-log entries, and the settings.
#[utoipa::path(get, path = "/api/v1/ids", tag = "ids",
    params(IdsQuery),
    responses(
        (status = 200, body = IdsStatusView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs ViewAudit", body = ErrorBody),
    ))]
async fn status(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<IdsQuery>,
) -> ApiResult<Json<IdsStatusView>> {
    caller.require(Permission::ViewAudit, None)?;
    let limit = q.limit.unwrap_or(DEFAULT_LOG_LIMIT);
    if limit == 0 || limit > MAX_LOG_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LOG_LIMIT} (default {DEFAULT_LOG_LIMIT})"
        )));
    }
    let access = state.access.clone();
    let (status, log) = blocking(move || {
        // Blocks lifted or added by `vigil ids` in another process show up at once.
        access.sync_blocks()?;
        Ok::<_, vigil_access::AccessError>((access.ids_status(), access.access_log(limit)?))
    })
    .await??;
    let cfg = &state.access.config().ids;
    let (block, block_secs) = match cfg.block {
        BlockPolicy::Off => ("off", None),
        BlockPolicy::UntilRestart => ("until_restart", None),
        BlockPolicy::For(d) => ("for", Some(d.as_secs())),
    };
    Ok(Json(IdsStatusView {
        blocked: status
            .blocked
            .into_iter()
            .map(|b| BlockView {
                address: b.addr.to_string(),
                since: b.since.to_string(),
                until: b.until.map(|t| t.to_string()),
                failures: b.failures,
            })
            .collect(),
        watched: status
            .watched
            .into_iter()
            .map(|w| WatchView {
                address: w.addr.to_string(),
                failures: w.failures,
                first: w.first.to_string(),
                last: w.last.to_string(),
                last_alert: w.last_alert.map(|t| t.to_string()),
            })
            .collect(),
        access_log: log
            .into_iter()
            .map(|e| AccessLogView {
                source: e.source,
                username: e.username,
                success: e.success,
                count: e.count,
                first: e.first.to_string(),
                last: e.last.to_string(),
            })
            .collect(),
        settings: IdsSettingsView {
            notification_threshold: cfg.notification_threshold,
            timeout_secs: cfg.timeout.as_secs(),
            deadtime_secs: cfg.deadtime.as_secs(),
            block,
            block_secs,
            allow_list: cfg.allow_list.iter().map(ToString::to_string).collect(),
        },
    }))
}

/// Lifts the block on an address (and forgets its failures). Audited.
#[utoipa::path(delete, path = "/api/v1/ids/blocks/{addr}", tag = "ids",
    params(("addr" = String, Path, description = "IPv4 or IPv6 address, e.g. 192.0.2.7 or 2001:db8::1")),
    responses(
        (status = 204, description = "unblocked"),
        (status = 400, description = "not an IP address", body = ErrorBody),
        (status = 403, description = "needs ManageUsers", body = ErrorBody),
        (status = 404, description = "the address is not blocked", body = ErrorBody),
    ))]
async fn unblock(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(addr): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageUsers, None)?;
    let ip: IpAddr = addr.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{:?} is not an IP address; use the form 192.0.2.7 or 2001:db8::1",
            addr.chars().take(64).collect::<String>()
        ))
    })?;
    let access = state.access.clone();
    let actor = caller.actor();
    if blocking(move || access.unblock(ip, &actor)).await?? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{ip} is not blocked")))
    }
}
