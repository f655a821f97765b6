//! Closing holds that ran out, for housekeeping: what they kept aside (gift card money, places
//! in the series counter) goes back, under the same locks, in the same order, as a checkout.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};

use super::facts::give_back;
use crate::{
    service::Result,
    store::{self, redemptions::Scope},
};

/// Closes the run-out holds on these coupons of one pool; returns how many were closed.
pub async fn close_run_out(
    db: &DatabaseConnection,
    pool_id: i64,
    coupon_ids: &[i64],
    now: DateTime<Utc>,
) -> Result<u64> {
    let txn = db.begin().await?;
    let Some(pool) = store::notifications::pool_by_id(&txn, pool_id).await? else {
        return Ok(0);
    };
    let counted = pool.redemption.max_total.is_some();
    if counted {
        store::redemptions::lock_counter(&txn, pool.id).await?;
    }
    let mut ids = coupon_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut closed = Vec::new();
    for id in ids {
        store::coupons::lock(&txn, id).await?;
        closed.extend(store::redemptions::expire_holds(&txn, Scope::Coupon(id), now).await?);
    }
    give_back(&txn, &pool, &closed, counted).await?;
    txn.commit().await?;
    Ok(closed.len() as u64)
}
