//! The REST API's routes, one module per resource. Each module returns an `OpenApiRouter` so
//! the OpenAPI description is built from the same handlers that serve requests and cannot
//! drift from them.

use utoipa_axum::router::OpenApiRouter;

use crate::state::SharedState;

pub mod audit;
pub mod cameras;
pub mod certificates;
pub mod ids;
pub mod recordings;
pub mod session;
pub mod settings;
pub mod tokens;
pub mod users;

/// Every API route.
pub fn all() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .merge(session::router())
        .merge(cameras::router())
        .merge(recordings::router())
        .merge(users::router())
        .merge(tokens::router())
        .merge(ids::router())
        .merge(audit::router())
        .merge(certificates::router())
        .merge(settings::router())
}
