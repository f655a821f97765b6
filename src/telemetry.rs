//! Telemetry: Prometheus metrics through the `metrics` crate, logs (text or JSON), and the
//! request id every request's log lines carry.
//!
//! Each application owns its recorder (no process-global one), so several services in one
//! process (the tests) keep separate figures. The exporter's registry is sharded and atomic:
//! recording a request takes no global lock.

use std::sync::Arc;

use metrics::{Key, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tracing_subscriber::EnvFilter;

use crate::service::{self, jobs::Outcome};

pub const HTTP_REQUESTS: &str = "coupond_http_requests_total";
pub const HTTP_DURATION: &str = "coupond_http_request_duration_seconds";
pub const JOBS_ENDED: &str = "coupond_jobs_ended_total";
pub const JOBS: &str = "coupond_jobs";
pub const OUTBOX: &str = "coupond_outbox_messages";

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static METADATA: Metadata<'static> = Metadata::new("coupond", Level::INFO, Some("coupond"));

/// The application's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &BUCKETS)
            .expect("latency buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let describe = |name: &'static str, unit, help: &'static str| {
            recorder.describe_counter(name.into(), unit, SharedString::const_str(help));
        };
        describe(
            HTTP_REQUESTS,
            None,
            "HTTP requests by operation and status.",
        );
        describe(HTTP_DURATION, Some(Unit::Seconds), "HTTP request latency.");
        describe(
            JOBS_ENDED,
            None,
            "Background job runs by kind and how they ended.",
        );
        describe(JOBS, None, "Job rows by state.");
        describe(OUTBOX, None, "Outbox rows by channel and state.");
        Metrics {
            recorder: Arc::new(recorder),
            handle,
        }
    }
}

impl Metrics {
    /// Counts one request and its latency under its operation and status.
    pub fn observe_request(&self, operation: &'static str, status: u16, seconds: f64) {
        let labels = vec![
            Label::from_static_parts("operation", operation),
            Label::new("status", status.to_string()),
        ];
        let counter = Key::from_parts(HTTP_REQUESTS, labels.clone());
        self.recorder
            .register_counter(&counter, &METADATA)
            .increment(1);
        let histogram = Key::from_parts(HTTP_DURATION, labels);
        self.recorder
            .register_histogram(&histogram, &METADATA)
            .record(seconds);
    }

    /// Counts a job run that ended: `done`, `stopped` (released for later) or `failed`.
    pub fn job_ended(&self, kind: &str, result: &service::Result<Outcome>) {
        let outcome = match result {
            Ok(Outcome::Finished) => "done",
            Ok(Outcome::Stopped) => "stopped",
            Err(_) => "failed",
        };
        let labels = vec![
            Label::new("kind", kind.to_string()),
            Label::from_static_parts("outcome", outcome),
        ];
        self.recorder
            .register_counter(&Key::from_parts(JOBS_ENDED, labels), &METADATA)
            .increment(1);
    }

    /// Sets a gauge, e.g. `coupond_jobs{state="running"}`.
    pub fn set_gauge(&self, name: &'static str, labels: Vec<(&'static str, String)>, value: f64) {
        let labels: Vec<Label> = labels.into_iter().map(|(k, v)| Label::new(k, v)).collect();
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
            .set(value);
    }

    /// The Prometheus text exposition of every figure.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line, with the current span's fields (request id, operation, org).
    Json,
}

/// Installs the process's log subscriber (once; later calls are ignored).
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The longest request id accepted from a caller.
const MAX_REQUEST_ID: usize = 128;

/// The caller's `X-Request-Id` when it is sane (1 to 128 visible ASCII characters), else a
/// new one.
pub fn request_id(given: Option<&str>) -> String {
    match given {
        Some(id)
            if !id.is_empty()
                && id.len() <= MAX_REQUEST_ID
                && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.to_string()
        }
        _ => uuid::Uuid::now_v7().simple().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe_request("getOrg", 200, 0.003);
        m.observe_request("getOrg", 200, 0.2);
        let text = m.render();
        assert!(
            text.contains("coupond_http_requests_total{operation=\"getOrg\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("le=\"0.001\"} 0"), "{text}");
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.25\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        assert_eq!(request_id(Some("abc-123")), "abc-123");
        for bad in ["", "has space", "new\nline", &"x".repeat(129)] {
            let made = request_id(Some(bad));
            assert_ne!(made, bad);
            assert_eq!(made.len(), 32);
        }
        assert_eq!(request_id(None).len(), 32);
    }
}
