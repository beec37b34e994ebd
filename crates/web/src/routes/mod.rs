//! The REST API's routes, one module per resource. Each module returns an `OpenApiRouter` so
//! the OpenAPI description is built from the same handlers that serve requests and cannot
//! drift from them.

use utoipa_axum::router::OpenApiRouter;
use vigil_access::{AuditKind, AuditRecord};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

pub mod alarms;
pub mod audit;
pub mod cameras;
pub mod certificates;
pub mod client;
pub mod events;
pub mod ids;
pub mod layout;
pub mod live;
pub mod locks;
pub mod onvif;
pub mod recordings;
pub mod rules;
pub mod servers;
pub mod session;
pub mod settings;
pub mod tokens;
pub mod users;
pub mod watch;

/// Every API route.
pub fn all() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .merge(client::router())
        .merge(session::router())
        .merge(cameras::router())
        .merge(onvif::router())
        .merge(live::router())
        .merge(recordings::router())
        .merge(locks::router())
        .merge(users::router())
        .merge(layout::router())
        .merge(tokens::router())
        .merge(ids::router())
        .merge(audit::router())
        .merge(events::router())
        .merge(alarms::router())
        .merge(rules::router())
        .merge(certificates::router())
        .merge(servers::router())
        .merge(settings::router())
}

/// Runs blocking work (SQLite, files, Argon2, PKI) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

/// Writes an audit entry for what `caller` did (the library audits its own operations; this
/// is for the ones it does not see: playback, export, cameras, settings, certificates).
pub(crate) async fn audit(
    state: &SharedState,
    caller: &Caller,
    kind: AuditKind,
    detail: serde_json::Value,
) -> ApiResult<()> {
    let record = AuditRecord::new(kind, Some(&caller.name()), Some(&caller.source.to_string()))
        .detail(detail);
    let access = state.access.clone();
    blocking(move || access.audit(record)).await??;
    Ok(())
}
