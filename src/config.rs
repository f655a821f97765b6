//! Service configuration: every setting is a flag with a `COUPOND_*` environment variable.

use clap::Args;

/// The SQLite file the service uses when nothing else is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://coupond.db?mode=rwc";

#[derive(Args, Debug, Clone)]
pub struct DatabaseConfig {
    /// Database URL: sqlite://PATH?mode=rwc (embedded) or postgres://USER@HOST/DB (production).
    #[arg(long, env = "COUPOND_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,

    /// Largest number of pooled database connections (PostgreSQL; SQLite always uses one writer).
    #[arg(
        long,
        env = "COUPOND_DATABASE_MAX_CONNECTIONS",
        default_value_t = 32,
        global = true
    )]
    pub database_max_connections: u32,
}

#[derive(Args, Debug, Clone)]
pub struct ServeConfig {
    /// Address and port to listen on.
    #[arg(long, env = "COUPOND_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Seconds to let in-flight requests finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "COUPOND_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Seconds during which a remote-code request for the same customer and pool gets the code
    /// already issued instead of a new one (the caller is retrying).
    #[arg(long, env = "COUPOND_REMOTE_RETRY_WINDOW_SECS", default_value_t = 60)]
    pub remote_retry_window_secs: u32,

    /// Milliseconds between webhook delivery rounds; 0 turns the worker off.
    #[arg(long, env = "COUPOND_WEBHOOK_INTERVAL_MS", default_value_t = 1000)]
    pub webhook_interval_ms: u64,

    #[command(flatten)]
    pub limits: LimitsConfig,
}

/// Bounds on what a request may carry or claim.
#[derive(Args, Debug, Clone, Copy)]
pub struct LimitsConfig {
    /// Seconds a till's `at` may place a purchase in the past (offline tills syncing later).
    #[arg(long, env = "COUPOND_MAX_OFFLINE_SKEW_SECS", default_value_t = 86_400)]
    pub max_offline_skew_secs: u32,

    /// Largest JSON request body in bytes; larger is a 413.
    #[arg(long, env = "COUPOND_MAX_JSON_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_json_body_bytes: usize,

    /// Largest CSV upload in bytes.
    #[arg(
        long,
        env = "COUPOND_MAX_CSV_BODY_BYTES",
        default_value_t = 268_435_456
    )]
    pub max_csv_body_bytes: u64,

    /// Most lines a checkout basket may have.
    #[arg(long, env = "COUPOND_MAX_BASKET_LINES", default_value_t = 1_000)]
    pub max_basket_lines: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_offline_skew_secs: 86_400,
            max_json_body_bytes: 1_048_576,
            max_csv_body_bytes: 268_435_456,
            max_basket_lines: 1_000,
        }
    }
}
