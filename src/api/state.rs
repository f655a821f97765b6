//! What every handler can reach.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::{limits, metrics::Metrics};

/// The application state attached to every route.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub metrics: Arc<Metrics>,
    /// How long a remote-code request is answered with the code already issued.
    pub remote_retry_window: chrono::TimeDelta,
    /// Abuse limits (requests per key and customer, guessing budgets).
    pub rate_limits: Arc<limits::Limits>,
    /// Which message channels can send (`/readyz` says which cannot).
    pub deliveries: crate::notify::Availability,
    /// Bounds on bodies, baskets and offline purchase times.
    pub limits: crate::config::LimitsConfig,
    /// The wallet key material read at start-up.
    pub wallet: Arc<crate::service::wallet::Wallet>,
    /// Keys, pools and orgs read by every request, kept briefly.
    pub caches: crate::service::cache::Caches,
}
