//! Reaching PostgreSQL at start-up: one attempt at a time, each bounded, and a failure named in
//! an operator's words (refused, unknown host, authentication, missing database) instead of the
//! pool's "timed out". Asked to wait, start-up keeps trying with backoff and jitter.

use std::{str::FromStr, time::Duration};

use rand::Rng;
use sea_orm::sqlx::{
    self, Connection,
    postgres::{PgConnectOptions, PgConnection},
};
use tokio::time::Instant;

/// Why the database could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    #[error("the database URL is invalid: {0}")]
    BadUrl(String),
    #[error("unknown host {0}: it does not resolve")]
    UnknownHost(String),
    #[error("connection refused by {0}: is PostgreSQL running and listening there?")]
    Refused(String),
    #[error("{0} did not answer within {1} s")]
    TimedOut(String, u64),
    #[error("authentication failed for user {0}")]
    AuthFailed(String),
    #[error("database {0} does not exist")]
    NoDatabase(String),
    #[error("{0}")]
    Other(String),
}

/// The longest pause between two attempts while waiting.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Tries to reach the database until it answers or `wait` has passed (at least once), pausing
/// with exponential backoff and jitter between attempts; the error names the last cause.
pub async fn reach(
    url: &str,
    attempt_timeout: Duration,
    wait: Duration,
) -> Result<(), Unreachable> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(250);
    loop {
        let cause = match attempt(url, attempt_timeout).await {
            Ok(()) => return Ok(()),
            Err(cause @ Unreachable::BadUrl(_)) => return Err(cause),
            Err(cause) => cause,
        };
        let jittered = pause.mul_f64(rand::rng().random_range(0.5..1.0));
        if Instant::now() + jittered > deadline {
            return Err(cause);
        }
        tracing::warn!(%cause, retry_in_ms = jittered.as_millis() as u64, "database not reachable yet");
        tokio::time::sleep(jittered).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One attempt: resolve the host, connect, authenticate, then close.
async fn attempt(url: &str, timeout: Duration) -> Result<(), Unreachable> {
    let options =
        PgConnectOptions::from_str(url).map_err(|e| Unreachable::BadUrl(e.to_string()))?;
    let server = format!("{}:{}", options.get_host(), options.get_port());
    if options.get_socket().is_none() && !options.get_host().starts_with('/') {
        tokio::net::lookup_host((options.get_host(), options.get_port()))
            .await
            .map_err(|_| Unreachable::UnknownHost(options.get_host().to_string()))?
            .for_each(drop);
    }
    let conn = tokio::time::timeout(timeout, PgConnection::connect_with(&options))
        .await
        .map_err(|_| Unreachable::TimedOut(server.clone(), timeout.as_secs()))?
        .map_err(|e| classify(e, &options, &server))?;
    conn.close().await.ok();
    Ok(())
}

fn classify(err: sqlx::Error, options: &PgConnectOptions, server: &str) -> Unreachable {
    match &err {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Unreachable::Refused(server.to_string())
        }
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01" | "28000") => Unreachable::AuthFailed(options.get_username().to_string()),
            Some("3D000") => Unreachable::NoDatabase(
                options
                    .get_database()
                    .unwrap_or(options.get_username())
                    .to_string(),
            ),
            _ => Unreachable::Other(err.to_string()),
        },
        _ => Unreachable::Other(format!("{server}: {err}")),
    }
}
