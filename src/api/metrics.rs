//! Per-request telemetry: a span with the request id (the caller's `X-Request-Id` when sane,
//! else a new one, echoed in the response), the operation and the org, a closing log line,
//! and the request's count and latency in the Prometheus metrics.

use std::time::Instant;

use poem::{Endpoint, IntoResponse, Request, Response, http::HeaderValue};
use poem_openapi::OperationId;
use tracing::{Instrument, field::Empty};

use crate::telemetry;
pub use crate::telemetry::Metrics;

pub const REQUEST_ID: &str = "x-request-id";

/// Middleware recording every request. The operation is the OpenAPI operation id when the
/// request reached one, else the fixed path of a plain route, else `unmatched` (so random URLs
/// cannot blow up the number of series).
pub async fn track<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let metrics = req
        .data::<super::state::AppState>()
        .map(|s| s.metrics.clone());
    let id = telemetry::request_id(req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()));
    let path = plain_route_label(req.uri().path());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        operation = Empty,
        org = Empty,
    );
    let started = Instant::now();
    let resp = next
        .call(req)
        .instrument(span.clone())
        .await
        .map(IntoResponse::into_response);
    let (operation, status) = match &resp {
        Ok(r) => (r.data::<OperationId>().copied(), r.status()),
        Err(e) => (e.data::<OperationId>().copied(), e.status()),
    };
    let label = operation.map(|o| o.0).unwrap_or(path);
    let seconds = started.elapsed().as_secs_f64();
    span.record("operation", label);
    span.in_scope(|| tracing::info!(status = status.as_u16(), seconds, "request finished"));
    if let Some(metrics) = metrics {
        metrics.observe_request(label, status.as_u16(), seconds);
    }
    let header = HeaderValue::from_str(&id).ok();
    resp.map(|mut r| {
        if let Some(value) = header {
            r.headers_mut().insert(REQUEST_ID, value);
        }
        r
    })
}

/// Notes the caller's org on the current request's span, once the API key is known.
pub fn record_org(org_id: i64) {
    tracing::Span::current().record("org", org_id);
}

fn plain_route_label(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/openapi.json" => "openapi",
        p if p.starts_with("/docs") => "docs",
        _ => "unmatched",
    }
}
