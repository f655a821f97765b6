//! Wiring: database, migrations, background workers and the HTTP server, built once and run
//! until a stop signal. The application owns one [`Supervisor`] for every background worker
//! (webhook delivery, job runners, the email/SMS dispatcher and the scheduler); on SIGTERM the
//! server stops taking requests, then the workers are drained.

use std::{io, sync::Arc, time::Duration};

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
};
use sea_orm::DatabaseConnection;

use crate::{
    api::{
        self, AppState,
        limits::{LimitSettings, Limits},
    },
    config::{DatabaseConfig, NotifyConfig, ServeConfig},
    jobs::{self, Runner},
    notify::{Dispatcher, Transports},
    scheduler::{Clock, Scheduler, SystemClock},
    service::{
        cache::Caches,
        wallet::Wallet,
        webhooks::{Concurrency, Worker},
    },
    store,
    supervisor::Supervisor,
    telemetry::Metrics,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A built service: its database is migrated, its port is bound and its workers run, so tests
/// can read the port before the server runs.
pub struct Application {
    port: u16,
    state: AppState,
    acceptor: poem::listener::TcpAcceptor,
    grace: Duration,
    supervisor: Supervisor,
    scheduler: Scheduler,
    dispatcher: Dispatcher,
}

impl Application {
    pub async fn build(db: &DatabaseConfig, serve: &ServeConfig) -> Result<Application, BoxError> {
        Self::build_with_clock(db, serve, Arc::new(SystemClock)).await
    }

    /// [`Application::build`] with the clock the scheduler reads (tests move it).
    pub async fn build_with_clock(
        db: &DatabaseConfig,
        serve: &ServeConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Application, BoxError> {
        let wallet = Wallet::load(&serve.wallet)?;
        let conn = store::connect(db).await?;
        store::migrate(&conn).await?;
        let acceptor = TcpListener::bind(serve.bind.clone())
            .into_acceptor()
            .await?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .ok_or("listener has no socket address")?;
        crate::service::outbound::allow_private_urls(serve.allow_private_urls);
        let transports = Transports::from_config(&serve.notify)?;
        let deliveries = transports.availability();
        deliveries.log();
        let (scheduler, dispatcher) =
            notification_workers(&conn, &serve.notify, clock, transports)?;
        let metrics = Metrics::default();
        let supervisor = Supervisor::new();
        start_workers(&supervisor, &conn, serve, &metrics);
        start_notification_workers(&supervisor, &scheduler, &dispatcher, &serve.notify);
        Ok(Application {
            port,
            state: AppState {
                db: conn,
                metrics: Arc::new(metrics),
                remote_retry_window: chrono::TimeDelta::seconds(i64::from(
                    serve.remote_retry_window_secs,
                )),
                rate_limits: Arc::new(Limits::new(LimitSettings {
                    per_key_per_sec: serve.rate_limit_per_key,
                    per_customer_per_min: serve.rate_limit_per_customer,
                    not_found_per_min: serve.rate_limit_unknown_codes,
                    auth_failures_per_min: serve.rate_limit_auth_failures,
                })),
                deliveries,
                limits: serve.limits,
                wallet: Arc::new(wallet),
                caches: Caches::new(Duration::from_millis(serve.cache_ttl_ms)),
            },
            acceptor,
            grace: Duration::from_secs(serve.shutdown_grace_secs),
            supervisor,
            scheduler,
            dispatcher,
        })
    }

    /// The scheduler, for tests that tick it by hand.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The email/SMS dispatcher, for tests that run its rounds by hand.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    /// The owner of the background workers, for plugging in more of them.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Serves until SIGTERM or Ctrl-C, lets in-flight requests finish, then drains the
    /// background workers (each stops claiming and finishes or releases what it holds).
    pub async fn run_until_stopped(self) -> io::Result<()> {
        tracing::info!(port = self.port, "coupond listening");
        let supervisor = self.supervisor.clone();
        // Workers stop claiming at the signal, while the server lets its requests finish.
        let signal = async move {
            shutdown_signal().await;
            supervisor.stop();
        };
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(api::routes(self.state), signal, Some(self.grace))
            .await;
        self.supervisor.shutdown(self.grace).await;
        tracing::info!("coupond stopped");
        served
    }
}

/// The workers every replica runs.
fn start_workers(
    supervisor: &Supervisor,
    db: &DatabaseConnection,
    serve: &ServeConfig,
    metrics: &Metrics,
) {
    if serve.webhook_interval_ms > 0 {
        let concurrency = Concurrency {
            per_endpoint: serve.webhook_concurrency_per_endpoint,
            overall: serve.webhook_concurrency,
        };
        let worker = Worker::bounded(db.clone(), concurrency);
        let interval = Duration::from_millis(serve.webhook_interval_ms);
        supervisor.spawn_worker("webhooks", move |cancel| worker.run(interval, cancel));
    }
    let settings = jobs::Settings {
        lease: Duration::from_secs(serve.job_lease_secs.max(1)),
        poll: Duration::from_millis(serve.job_poll_ms.max(10)),
    };
    for _ in 0..serve.job_workers {
        let runner = Runner::new(db.clone(), settings, metrics.clone());
        supervisor.spawn_worker("jobs", move |cancel| runner.run(cancel));
    }
}

fn notification_workers(
    conn: &DatabaseConnection,
    config: &NotifyConfig,
    clock: Arc<dyn Clock>,
    transports: Transports,
) -> Result<(Scheduler, Dispatcher), BoxError> {
    let scheduler = Scheduler::new(conn.clone(), clock, config)?;
    let dispatcher = Dispatcher::new(
        conn.clone(),
        Arc::new(transports),
        config.outbox_concurrency,
        Duration::from_millis(config.outbox_retry_base_ms),
    );
    Ok((scheduler, dispatcher))
}

/// Starts the email/SMS dispatcher and the scheduler unless their interval is 0.
fn start_notification_workers(
    supervisor: &Supervisor,
    scheduler: &Scheduler,
    dispatcher: &Dispatcher,
    config: &NotifyConfig,
) {
    if config.outbox_interval_ms > 0 {
        let interval = Duration::from_millis(config.outbox_interval_ms);
        let dispatcher = dispatcher.clone();
        supervisor.spawn_worker("dispatcher", move |cancel| dispatcher.run(interval, cancel));
    }
    if config.scheduler_tick_ms > 0 {
        let interval = Duration::from_millis(config.scheduler_tick_ms);
        let scheduler = scheduler.clone();
        supervisor.spawn_worker("scheduler", move |cancel| scheduler.run(interval, cancel));
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
