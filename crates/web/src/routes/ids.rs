//! ids routes (being written).

use utoipa_axum::router::OpenApiRouter;

use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
}
