//! What the readiness probe asks of the service.

use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::store;

/// Whether the database answers within `within`.
pub async fn database_answers(db: &DatabaseConnection, within: Duration) -> bool {
    store::ping(db, within).await
}
