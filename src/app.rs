//! Wiring: database, migrations, background workers and the HTTP server, built once and run
//! until a stop signal.

use std::{io, sync::Arc, time::Duration};

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
};
use sea_orm::DatabaseConnection;

use crate::{
    api::{self, AppState, metrics::Metrics},
    config::{DatabaseConfig, ServeConfig},
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
        if serve.webhook_interval_ms > 0 {
            Worker::new(conn.clone()).spawn(Duration::from_millis(serve.webhook_interval_ms));
        }
        Ok(Application {
            port,
            state: AppState {
                db: conn,
                metrics: Arc::new(Metrics::default()),
                remote_retry_window: chrono::TimeDelta::seconds(i64::from(
                    serve.remote_retry_window_secs,
                )),
                limits: serve.limits,
            },
            acceptor,
            grace: Duration::from_secs(serve.shutdown_grace_secs),
        })
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
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                api::routes(self.state),
                shutdown_signal(),
                Some(self.grace),
            )
            .await
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
