//! The figures of background work shown on `/metrics`: job rows by state and outbox rows by
//! channel and state (pending, sent, dead: given up after the last attempt).

use sea_orm::{DatabaseConnection, Iterable};

use crate::{
    domain::{job::JobState, webhook::MAX_ATTEMPTS},
    service::Result,
    store,
    telemetry::{JOBS, Metrics, OUTBOX},
};

pub async fn refresh_gauges(db: &DatabaseConnection, metrics: &Metrics) -> Result<()> {
    for state in JobState::iter() {
        metrics.set_gauge(JOBS, vec![("state", state.as_str().to_string())], 0.0);
    }
    for (state, n) in store::imports::count_by_state(db).await? {
        metrics.set_gauge(JOBS, vec![("state", state.as_str().to_string())], n as f64);
    }
    for row in store::outbox::counts(db, MAX_ATTEMPTS).await? {
        let labels = vec![("channel", row.channel), ("state", row.state.to_string())];
        metrics.set_gauge(OUTBOX, labels, row.count as f64);
    }
    Ok(())
}
