//! Wiring: database, migrations, background workers and the HTTP server, built once and run
//! until a stop signal.

use std::{io, sync::Arc, time::Duration};

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::{
    api::{
        self, AppState,
        limits::{LimitSettings, Limits},
        metrics::Metrics,
    },
    config::{DatabaseConfig, NotifyConfig, ServeConfig},
    notify::{Dispatcher, Transports},
    scheduler::{Clock, Scheduler, SystemClock},
    service::webhooks::Worker,
    store,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A built service: its database is migrated and its port is bound, so tests can read the port
/// before the server runs.
pub struct Application {
    port: u16,
    state: AppState,
    acceptor: poem::listener::TcpAcceptor,
    grace: Duration,
    scheduler: Scheduler,
    dispatcher: Dispatcher,
    /// Stops the notification workers when the server stops.
    workers: CancellationToken,
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
        if serve.webhook_interval_ms > 0 {
            Worker::new(conn.clone()).spawn(Duration::from_millis(serve.webhook_interval_ms));
        }
        // Notifications (wt-notify): the lead moves these two workers under the supervisor.
        let transports = Transports::from_config(&serve.notify)?;
        let deliveries = transports.availability();
        deliveries.log();
        let (scheduler, dispatcher) =
            notification_workers(&conn, &serve.notify, clock, transports)?;
        let workers = CancellationToken::new();
        spawn_notification_workers(&scheduler, &dispatcher, &serve.notify, &workers);
        Ok(Application {
            port,
            state: AppState {
                db: conn,
                metrics: Arc::new(Metrics::default()),
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
            },
            acceptor,
            grace: Duration::from_secs(serve.shutdown_grace_secs),
            scheduler,
            dispatcher,
            workers,
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

    /// Serves until SIGTERM or Ctrl-C, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        tracing::info!(port = self.port, "coupond listening");
        let _stop_workers = self.workers.drop_guard();
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                api::routes(self.state),
                shutdown_signal(),
                Some(self.grace),
            )
            .await
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

/// Starts the scheduler and the dispatcher unless their interval is 0.
fn spawn_notification_workers(
    scheduler: &Scheduler,
    dispatcher: &Dispatcher,
    config: &NotifyConfig,
    cancel: &CancellationToken,
) {
    if config.outbox_interval_ms > 0 {
        let interval = Duration::from_millis(config.outbox_interval_ms);
        tokio::spawn(dispatcher.clone().run(interval, cancel.child_token()));
    }
    if config.scheduler_tick_ms > 0 {
        let interval = Duration::from_millis(config.scheduler_tick_ms);
        tokio::spawn(scheduler.clone().run(interval, cancel.child_token()));
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
