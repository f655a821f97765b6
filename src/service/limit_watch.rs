//! The issual-limit watch for codes: a pool with `notify_remaining_at` can run short of codes
//! (uploaded or generated) before it reaches `max_total`. Issuance notifies the crossing of
//! `max_total`; this job notifies the crossing of the codes left, once per crossing: a pool's
//! row in `pool_limit_alerts` flips to `below` (one replica wins the flip) and back when codes
//! are added above the threshold again.

use crate::store::entity::pools;
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::json;

use crate::{
    domain::{
        message::{self, OutboxChannel},
        webhook::WebhookEvent,
    },
    service::{Error, Result, webhooks},
    store,
};

/// Checks every pool with codes; returns how many crossings were notified.
pub async fn check(db: &DatabaseConnection, _now: DateTime<Utc>) -> Result<u64> {
    let mut notified = 0;
    for pool in store::notifications::pools_with_codes(db).await? {
        let rules = &pool.issuance;
        let (Some(max_total), Some(threshold)) = (rules.max_total, rules.notify_remaining_at)
        else {
            continue;
        };
        let by_limit = max_total.saturating_sub(pool.issued_count.max(0) as u64);
        let codes_left =
            store::notifications::available_up_to(db, pool.id, threshold.saturating_add(1)).await?;
        if codes_left > threshold {
            store::notifications::rise_above(db, pool.id).await?;
        } else if by_limit > threshold && notify(db, &pool, codes_left, max_total).await? {
            notified += 1;
        }
    }
    Ok(notified)
}

/// Flips the pool to below its threshold and, when this call flipped it, tells subscribers and
/// emails the org's POCs; all in one transaction.
async fn notify(
    db: &DatabaseConnection,
    pool: &pools::Model,
    codes_left: u64,
    max_total: u64,
) -> Result<bool> {
    let txn = db.begin().await?;
    let Some(crossing) = store::notifications::fall_below(&txn, pool.id).await? else {
        txn.commit().await?;
        return Ok(false);
    };
    let org = store::orgs::get(&txn, pool.org_id)
        .await?
        .ok_or_else(|| Error::not_found("org", pool.org_id))?;
    let occurrence = format!("pool-{}-codes-left-{crossing}", pool.id);
    let data = json!({
        "pool_id": pool.id,
        "pool_name": pool.name,
        "max_total": max_total,
        "issued": pool.issued_count,
        "remaining": codes_left,
    });
    webhooks::enqueue(
        &txn,
        org.id,
        WebhookEvent::PoolIssualLimitNear,
        &occurrence,
        data,
    )
    .await?;
    let to = &org.poc_emails.0;
    if !to.is_empty() {
        let (subject, text) = message::codes_left_notice(&pool.name, codes_left);
        let email = json!({"to": to, "subject": subject, "text": text});
        let key = format!("email:{occurrence}");
        store::outbox::push(&txn, org.id, OutboxChannel::Email, key, email).await?;
    }
    txn.commit().await?;
    Ok(true)
}
