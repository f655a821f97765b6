//! Liveness, readiness and the metrics page: plain routes outside the versioned API.

use poem::{IntoResponse, Response, handler, http::StatusCode, web::Data};

use super::state::AppState;
use crate::store;

/// The process is alive.
#[handler]
pub fn healthz() -> &'static str {
    "ok"
}

/// The service can reach its database; 503 when it cannot.
#[handler]
pub async fn readyz(state: Data<&AppState>) -> Response {
    if store::ping(&state.db).await {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
    }
}

#[handler]
pub fn metrics(state: Data<&AppState>) -> Response {
    state
        .metrics
        .render()
        .with_content_type("text/plain; version=0.0.4")
        .into_response()
}
