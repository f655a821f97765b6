//! Housekeeping: holds that ran out are closed (giving back what they kept), and sent messages
//! and idempotency keys older than the retention are deleted, in batches so no statement or
//! transaction runs long.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::DatabaseConnection;

use crate::{
    service::{Result, redemption},
    store,
};

const BATCH: u64 = 1_000;

/// Deletes what is older than `retention`; returns how many rows went.
pub async fn clean(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    retention: TimeDelta,
) -> Result<u64> {
    let mut total = close_run_out_holds(db, now).await?;
    let cutoff = now - retention;
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

/// Closes every hold that ran out by `now`, a pool's batch per transaction.
async fn close_run_out_holds(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64> {
    let mut total = 0;
    loop {
        let holds = store::notifications::run_out_holds(db, now, BATCH).await?;
        let mut by_pool: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (pool_id, coupon_id) in &holds {
            by_pool.entry(*pool_id).or_default().push(*coupon_id);
        }
        for (pool_id, coupon_ids) in by_pool {
            total += redemption::close_run_out(db, pool_id, &coupon_ids, now).await?;
        }
        if (holds.len() as u64) < BATCH {
            return Ok(total);
        }
    }
}
