//! Housekeeping: sent messages and idempotency keys older than the retention are deleted, in
//! batches so no statement runs long.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::DatabaseConnection;

use crate::{service::Result, store};

const BATCH: u64 = 1_000;

/// Deletes what is older than `retention`; returns how many rows went.
pub async fn clean(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    retention: TimeDelta,
) -> Result<u64> {
    let cutoff = now - retention;
    let mut total = 0;
    loop {
        let n = store::notifications::delete_sent_before(db, cutoff, BATCH).await?;
        total += n;
        if n < BATCH {
            break;
        }
    }
    loop {
        let n = store::notifications::delete_idempotency_keys_before(db, cutoff, BATCH).await?;
        total += n;
        if n < BATCH {
            break;
        }
    }
    Ok(total)
}
