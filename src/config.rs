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

    /// Job runners in this process (bulk generation, customer-list issues); 0 runs none.
    #[arg(long, env = "COUPOND_JOB_WORKERS", default_value_t = 2)]
    pub job_workers: usize,

    /// Seconds a job stays claimed without renewal: after a crash, another runner resumes
    /// the job this long after the last renewal.
    #[arg(long, env = "COUPOND_JOB_LEASE_SECS", default_value_t = 30)]
    pub job_lease_secs: u64,

    /// Milliseconds an idle job runner waits before looking for work again.
    #[arg(long, env = "COUPOND_JOB_POLL_MS", default_value_t = 500)]
    pub job_poll_ms: u64,
}
