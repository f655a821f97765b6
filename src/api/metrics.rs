//! Prometheus metrics: request counts and latency histograms by operation and status, kept in
//! memory and rendered in the text exposition format at `/metrics`.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex, time::Instant};

use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, u16), Series>>,
}

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

impl Metrics {
    pub fn observe(&self, operation: &str, status: u16, seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let entry = series.entry((operation.to_string(), status)).or_default();
        entry.count += 1;
        entry.sum += seconds;
        for (bucket, bound) in entry.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }

    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str("# HELP coupond_http_requests_total HTTP requests by operation and status.\n");
        out.push_str("# TYPE coupond_http_requests_total counter\n");
        for ((op, status), s) in series.iter() {
            let _ = writeln!(
                out,
                "coupond_http_requests_total{{operation=\"{op}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP coupond_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE coupond_http_request_duration_seconds histogram\n");
        for ((op, status), s) in series.iter() {
            let labels = format!("operation=\"{op}\",status=\"{status}\"");
            for (bound, count) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "coupond_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let name = "coupond_http_request_duration_seconds";
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
        }
        out
    }
}

/// Middleware recording every request. The operation is the OpenAPI operation id when the
/// request reached one, else the fixed path of a plain route, else `unmatched` (so random URLs
/// cannot blow up the number of series).
pub async fn track<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let metrics = req
        .data::<super::state::AppState>()
        .map(|s| s.metrics.clone());
    let path = plain_route_label(req.uri().path());
    let started = Instant::now();
    let resp = next.call(req).await.map(IntoResponse::into_response);
    let (operation, status) = match &resp {
        Ok(r) => (r.data::<OperationId>().copied(), r.status()),
        Err(e) => (e.data::<OperationId>().copied(), e.status()),
    };
    if let Some(metrics) = metrics {
        let label = operation.map(|o| o.0).unwrap_or(path);
        metrics.observe(label, status.as_u16(), started.elapsed().as_secs_f64());
    }
    resp
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("getOrg", 200, 0.003);
        m.observe("getOrg", 200, 0.2);
        let text = m.render();
        assert!(
            text.contains("coupond_http_requests_total{operation=\"getOrg\",status=\"200\"} 2")
        );
        assert!(text.contains("le=\"0.001\"} 0"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.25\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
    }
}
