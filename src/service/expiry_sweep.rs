//! The expiry sweep: coupons past their expiry become `expired`, with a `coupon_expire` event
//! and a `coupon.expired` webhook. Small batches, each its own short transaction, so the sweep
//! never holds many row locks and checkouts keep going while it runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::Value;

use crate::{
    domain::webhook::WebhookEvent,
    service::{Result, webhooks},
    store,
};

/// Coupons expired per transaction.
const BATCH: u64 = 500;

/// Expires every coupon whose expiry passed by `now`; returns how many.
pub async fn sweep(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64> {
    let mut total = 0;
    loop {
        let txn = db.begin().await?;
        let expired = store::notifications::expire_batch(&txn, now, BATCH).await?;
        store::notifications::record_expiries(&txn, &expired, now).await?;
        let mut by_org: BTreeMap<i64, Vec<(String, Value)>> = BTreeMap::new();
        for coupon in &expired {
            by_org.entry(coupon.org_id).or_default().push((
                format!("coupon-{}-expired", coupon.id),
                webhooks::coupon_data(coupon, None),
            ));
        }
        for (org_id, occurrences) in by_org {
            webhooks::enqueue_many(&txn, org_id, WebhookEvent::CouponExpired, occurrences).await?;
        }
        txn.commit().await?;
        total += expired.len() as u64;
        if (expired.len() as u64) < BATCH {
            return Ok(total);
        }
    }
}
