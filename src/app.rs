//! Wiring: database, migrations, background workers and the HTTP server, built once and run
//! until a stop signal. The application owns one [`Supervisor`] for every background worker;
//! on SIGTERM the server stops taking requests, then the workers are drained.

use std::{io, time::Duration};

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
};
use sea_orm::DatabaseConnection;

use crate::{
    api::{self, AppState},
    config::{DatabaseConfig, ServeConfig},
    jobs::{self, Runner},
    service::webhooks::Worker,
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
}

impl Application {
    pub async fn build(db: &DatabaseConfig, serve: &ServeConfig) -> Result<Application, BoxError> {
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
        let metrics = Metrics::default();
        let supervisor = Supervisor::new();
        start_workers(&supervisor, &conn, serve, &metrics);
        Ok(Application {
            port,
            state: AppState {
                db: conn,
                metrics: std::sync::Arc::new(metrics),
                remote_retry_window: chrono::TimeDelta::seconds(i64::from(
                    serve.remote_retry_window_secs,
                )),
            },
            acceptor,
            grace: Duration::from_secs(serve.shutdown_grace_secs),
            supervisor,
        })
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
        let worker = Worker::new(db.clone());
        let interval = Duration::from_millis(serve.webhook_interval_ms);
        supervisor.spawn_periodic("webhooks", interval, move || {
            let worker = worker.clone();
            async move { worker.round().await }
        });
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
