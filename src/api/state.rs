//! What every handler can reach.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::metrics::Metrics;

/// The application state attached to every route.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub metrics: Arc<Metrics>,
    /// How long a remote-code request is answered with the code already issued.
    pub remote_retry_window: chrono::TimeDelta,
}
