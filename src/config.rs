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

    /// Seconds one attempt at reaching the database may take at start-up.
    #[arg(
        long,
        env = "COUPOND_DATABASE_CONNECT_TIMEOUT_SECS",
        default_value_t = 3,
        global = true
    )]
    pub database_connect_timeout_secs: u64,

    /// Seconds a request waits for a pooled PostgreSQL connection (or a new one) before it is
    /// answered 503 `database_unavailable` (SQLite waits up to 30 s for its one connection).
    #[arg(
        long,
        env = "COUPOND_DATABASE_ACQUIRE_TIMEOUT_SECS",
        default_value_t = 3,
        global = true
    )]
    pub database_acquire_timeout_secs: u64,

    /// Seconds start-up keeps trying to reach the database (backing off, with jitter) before it
    /// gives up naming the cause; 0 gives up at the first failure.
    #[arg(
        long,
        env = "COUPOND_DATABASE_WAIT_SECS",
        default_value_t = 0,
        global = true
    )]
    pub database_wait_secs: u64,
}

impl DatabaseConfig {
    /// The defaults of the flags above for `database_url`, with this pool size.
    pub fn new(database_url: impl Into<String>, max_connections: u32) -> DatabaseConfig {
        DatabaseConfig {
            database_url: database_url.into(),
            database_max_connections: max_connections,
            database_connect_timeout_secs: 3,
            database_acquire_timeout_secs: 3,
            database_wait_secs: 0,
        }
    }
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

    /// Checkout (validate, redeem, reserve, checkout) and remote-callback requests a second per
    /// API key; 0 turns the limit off.
    #[arg(long, env = "COUPOND_RATE_LIMIT_PER_KEY", default_value_t = 1000)]
    pub rate_limit_per_key: u32,

    /// Checkout requests a minute naming one customer, per API key; 0 turns the limit off.
    #[arg(long, env = "COUPOND_RATE_LIMIT_PER_CUSTOMER", default_value_t = 30)]
    pub rate_limit_per_customer: u32,

    /// Unknown codes an API key may try a minute before it is blocked for the rest of it
    /// (code guessing); 0 turns the limit off.
    #[arg(long, env = "COUPOND_RATE_LIMIT_UNKNOWN_CODES", default_value_t = 60)]
    pub rate_limit_unknown_codes: u32,

    /// Refused API keys a minute from one address before it is blocked for the rest of it
    /// (key guessing); 0 turns the limit off.
    #[arg(long, env = "COUPOND_RATE_LIMIT_AUTH_FAILURES", default_value_t = 20)]
    pub rate_limit_auth_failures: u32,

    /// Lets webhook, remote-pool and SMS-gateway URLs reach loopback, private, link-local and
    /// metadata addresses (local set-ups and tests); off, such URLs are refused.
    #[arg(
        long,
        env = "COUPOND_ALLOW_PRIVATE_URLS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_private_urls: bool,

    /// Milliseconds between webhook delivery rounds; 0 turns the worker off.
    #[arg(long, env = "COUPOND_WEBHOOK_INTERVAL_MS", default_value_t = 1000)]
    pub webhook_interval_ms: u64,

    /// Webhook deliveries in flight at once to one subscription's endpoint.
    #[arg(
        long,
        env = "COUPOND_WEBHOOK_CONCURRENCY_PER_ENDPOINT",
        default_value_t = 64
    )]
    pub webhook_concurrency_per_endpoint: usize,

    /// Webhook deliveries in flight at once from this process, over all endpoints.
    #[arg(long, env = "COUPOND_WEBHOOK_CONCURRENCY", default_value_t = 1024)]
    pub webhook_concurrency: usize,

    /// Milliseconds this process keeps API keys, pools, orgs and market products it read. A
    /// change made through its own API takes effect here at once and on other replicas within
    /// this time; 0 turns caching off.
    #[arg(long, env = "COUPOND_CACHE_TTL_MS", default_value_t = 5000)]
    pub cache_ttl_ms: u64,

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

    #[command(flatten)]
    pub notify: NotifyConfig,

    #[command(flatten)]
    pub limits: LimitsConfig,

    #[command(flatten)]
    pub wallet: WalletConfig,
}

/// Email and SMS delivery, the outbox dispatcher and the scheduler's jobs.
#[derive(Args, Debug, Clone)]
pub struct NotifyConfig {
    /// SMTP server: smtp://HOST:PORT (plain), smtp://HOST:587?tls=required (STARTTLS) or
    /// smtps://HOST:465 (TLS); credentials as smtps://USER:PASSWORD@HOST. Unset: emails stay queued.
    #[arg(long, env = "COUPOND_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// The From of every email.
    #[arg(long, env = "COUPOND_MAIL_FROM", default_value = DEFAULT_MAIL_FROM)]
    pub mail_from: String,

    /// SMS gateway: the webhook URL, or Twilio's
    /// https://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com/2010-04-01/Accounts/ACCOUNT_SID/Messages.json.
    /// Unset: SMS stay queued.
    #[arg(long, env = "COUPOND_SMS_GATEWAY_URL")]
    pub sms_gateway_url: Option<String>,

    /// `webhook` (signed JSON {to, from, body}) or `twilio` (Twilio's Messages API).
    #[arg(long, env = "COUPOND_SMS_GATEWAY_KIND", default_value = "webhook")]
    pub sms_gateway_kind: String,

    /// The secret webhook SMS are signed with (Standard Webhooks, `whsec_...`).
    #[arg(long, env = "COUPOND_SMS_GATEWAY_SECRET")]
    pub sms_gateway_secret: Option<String>,

    /// The sender number or name of every SMS.
    #[arg(long, env = "COUPOND_SMS_FROM", default_value = "coupond")]
    pub sms_from: String,

    /// Milliseconds between outbox rounds for email and SMS; 0 turns the dispatcher off.
    #[arg(long, env = "COUPOND_OUTBOX_INTERVAL_MS", default_value_t = 1000)]
    pub outbox_interval_ms: u64,

    /// Messages sent at once by one dispatcher.
    #[arg(long, env = "COUPOND_OUTBOX_CONCURRENCY", default_value_t = 8)]
    pub outbox_concurrency: usize,

    /// Milliseconds before the first retry of a failed send; it doubles each time, at most an hour.
    #[arg(long, env = "COUPOND_OUTBOX_RETRY_BASE_MS", default_value_t = 10_000)]
    pub outbox_retry_base_ms: u64,

    /// Milliseconds between scheduler checks for due jobs; 0 turns the scheduler off.
    #[arg(long, env = "COUPOND_SCHEDULER_TICK_MS", default_value_t = 1000)]
    pub scheduler_tick_ms: u64,

    /// When the expiry sweep runs (cron, seconds first, UTC).
    #[arg(long, env = "COUPOND_EXPIRY_CRON", default_value = DEFAULT_EXPIRY_CRON)]
    pub expiry_cron: String,

    /// When expiry reminders are looked for (cron, seconds first, UTC). Reminders go out at
    /// their own local time; this only sets how soon after it.
    #[arg(long, env = "COUPOND_REMINDER_CRON", default_value = DEFAULT_REMINDER_CRON)]
    pub reminder_cron: String,

    /// When pools are checked for codes running low (cron, seconds first, UTC).
    #[arg(long, env = "COUPOND_LIMIT_WATCH_CRON", default_value = DEFAULT_LIMIT_WATCH_CRON)]
    pub limit_watch_cron: String,

    /// When housekeeping runs (cron, seconds first, UTC).
    #[arg(long, env = "COUPOND_HOUSEKEEPING_CRON", default_value = DEFAULT_HOUSEKEEPING_CRON)]
    pub housekeeping_cron: String,

    /// Days sent messages and idempotency keys are kept before housekeeping deletes them.
    #[arg(long, env = "COUPOND_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,
}

pub const DEFAULT_MAIL_FROM: &str = "coupond <coupond@localhost>";
pub const DEFAULT_EXPIRY_CRON: &str = "0 */5 * * * *";
pub const DEFAULT_REMINDER_CRON: &str = "0 * * * * *";
pub const DEFAULT_LIMIT_WATCH_CRON: &str = "30 * * * * *";
pub const DEFAULT_HOUSEKEEPING_CRON: &str = "0 30 3 * * *";

impl Default for NotifyConfig {
    /// The defaults of the flags above: nothing to send with, everything queued.
    fn default() -> NotifyConfig {
        NotifyConfig {
            smtp_url: None,
            mail_from: DEFAULT_MAIL_FROM.into(),
            sms_gateway_url: None,
            sms_gateway_kind: "webhook".into(),
            sms_gateway_secret: None,
            sms_from: "coupond".into(),
            outbox_interval_ms: 1000,
            outbox_concurrency: 8,
            outbox_retry_base_ms: 10_000,
            scheduler_tick_ms: 1000,
            expiry_cron: DEFAULT_EXPIRY_CRON.into(),
            reminder_cron: DEFAULT_REMINDER_CRON.into(),
            limit_watch_cron: DEFAULT_LIMIT_WATCH_CRON.into(),
            housekeeping_cron: DEFAULT_HOUSEKEEPING_CRON.into(),
            retention_days: 30,
        }
    }
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

/// Wallet passes: the operator's Apple pass type certificate and Google Wallet issuer. Files
/// are read once at start-up; a path that cannot be read or a key that does not fit stops it.
#[derive(Args, Debug, Clone, Default)]
pub struct WalletConfig {
    /// Apple pass type certificate (PEM); unset: Apple passes are a 409 `wallet_not_configured`.
    #[arg(long, env = "COUPOND_WALLET_APPLE_CERT")]
    pub wallet_apple_cert: Option<std::path::PathBuf>,

    /// The private key of the pass type certificate (PKCS #8 PEM, unencrypted).
    #[arg(long, env = "COUPOND_WALLET_APPLE_KEY")]
    pub wallet_apple_key: Option<std::path::PathBuf>,

    /// Apple's WWDR intermediate certificate (PEM) that issued the pass type certificate.
    #[arg(long, env = "COUPOND_WALLET_APPLE_WWDR_CERT")]
    pub wallet_apple_wwdr_cert: Option<std::path::PathBuf>,

    /// The pass type identifier, e.g. pass.com.example.coupons.
    #[arg(long, env = "COUPOND_WALLET_APPLE_PASS_TYPE_ID")]
    pub wallet_apple_pass_type_id: Option<String>,

    /// The Apple developer team identifier.
    #[arg(long, env = "COUPOND_WALLET_APPLE_TEAM_ID")]
    pub wallet_apple_team_id: Option<String>,

    /// Google Wallet service account key file (JSON with client_email and private_key); unset:
    /// Google Wallet links are a 409 `wallet_not_configured`.
    #[arg(long, env = "COUPOND_WALLET_GOOGLE_SERVICE_ACCOUNT")]
    pub wallet_google_service_account: Option<std::path::PathBuf>,

    /// The Google Wallet issuer id.
    #[arg(long, env = "COUPOND_WALLET_GOOGLE_ISSUER_ID")]
    pub wallet_google_issuer_id: Option<String>,
}
