//! Liveness, readiness and the metrics page: plain routes outside the versioned API.

use std::time::Duration;

use poem::{IntoResponse, Response, handler, http::StatusCode, web::Data};

use super::{error::ApiError, state::AppState};
use crate::service;

/// The process is alive.
#[handler]
pub fn healthz() -> &'static str {
    "ok"
}

/// How long readiness and metrics wait for the database: load balancers and scrapers probe
/// with short timeouts.
const PROBE_WITHIN: Duration = Duration::from_millis(800);

/// The service can reach its database; 503 problem+json when it does not answer in time.
/// Channels without a transport are listed (their messages stay queued) but do not make the
/// service unready.
#[handler]
pub async fn readyz(state: Data<&AppState>) -> Response {
    if service::health::database_answers(&state.db, PROBE_WITHIN).await {
        let mut body = String::from("ready");
        for note in state.deliveries.notes() {
            body.push('\n');
            body.push_str(note);
        }
        body.into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database does not answer",
        )
        .into_response()
    }
}

/// Prometheus metrics; the job and outbox gauges are read from the database at each scrape,
/// within the probes' bound: while the database is down the request counters (its 503s
/// among them) still come promptly, beside the gauges' last figures.
#[handler]
pub async fn metrics(state: Data<&AppState>) -> Response {
    let refresh = service::backlog::refresh_gauges(&state.db, &state.metrics);
    match tokio::time::timeout(PROBE_WITHIN, refresh).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(%err, "could not read the job and outbox figures"),
        Err(_) => tracing::warn!("the job and outbox figures did not come in time"),
    }
    state
        .metrics
        .render()
        .with_content_type("text/plain; version=0.0.4")
        .into_response()
}
