//! Expiry reminders: every issued coupon of a pool with reminders gets each reminder once, at
//! its local time in the org's zone, or late (after downtime) while the coupon is still valid,
//! never after it expired. A coupon that had a reminder has a `reminder_deliveries` row, written
//! in the transaction that queues the message, so replicas and reruns queue it once.

use crate::store::entity::{coupons, orgs, pool_reminders, pools};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::{
    domain::message::{self, Channel, ReminderOutcome},
    service::{
        Error, Result,
        notifications::{Draft, Facts, reminder_subject},
    },
    store,
};

/// Coupons read per statement.
const BATCH: u64 = 500;

/// Queues every reminder due at `now`; returns how many messages were queued.
pub async fn queue_due(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64> {
    let mut queued = 0;
    for reminder in store::notifications::all_reminders(db).await? {
        queued += queue_reminder(db, &reminder, now).await?;
    }
    Ok(queued)
}

async fn queue_reminder(
    db: &DatabaseConnection,
    reminder: &pool_reminders::Model,
    now: DateTime<Utc>,
) -> Result<u64> {
    let Some(pool) = store::pools::get(db, reminder.org_id, reminder.pool_id).await? else {
        return Ok(0);
    };
    let Some(org) = store::orgs::get(db, reminder.org_id).await? else {
        return Ok(0);
    };
    let tz = super::org_tz(&org.timezone)?;
    let days = reminder.days_before.max(0) as u32;
    let at = message::parse_time_of_day(&reminder.at_time)
        .map_err(|e| Error::internal(format!("reminder {}: {e}", reminder.id)))?;
    let window_end = message::reminder_window_end(now, tz, days, at);
    let mut after = 0;
    let mut queued = 0;
    loop {
        let candidates = store::notifications::reminder_candidates(
            db,
            reminder.id,
            pool.id,
            now,
            window_end,
            after,
            BATCH,
        )
        .await?;
        for coupon in &candidates {
            let Some(expires_at) = coupon.expires_at else {
                continue;
            };
            let due = message::reminder_due_at(expires_at, tz, days, at)
                .is_some_and(|due_at| message::reminder_due(due_at, expires_at, now));
            if due && queue_one(db, reminder, &org, &pool, tz, coupon).await? {
                queued += 1;
            }
        }
        match candidates.last() {
            Some(last) if candidates.len() as u64 == BATCH => after = last.id,
            _ => return Ok(queued),
        }
    }
}

/// Records the reminder for the coupon and queues its message, in one transaction; false when
/// another run got there first or the customer has no address on the reminder's channel.
async fn queue_one(
    db: &DatabaseConnection,
    reminder: &pool_reminders::Model,
    org: &orgs::Model,
    pool: &pools::Model,
    tz: Tz,
    coupon: &coupons::Model,
) -> Result<bool> {
    let Some(customer_id) = coupon.customer_id else {
        return Ok(false);
    };
    let customer = super::customers::holder(db, org.id, customer_id).await?;
    let channel = reminder.channel;
    let to = match channel {
        Channel::Sms => customer.mobile.clone(),
        Channel::Email => customer.email.clone(),
    };
    let txn = db.begin().await?;
    let outcome = if to.is_some() {
        ReminderOutcome::Queued
    } else {
        ReminderOutcome::NoAddress
    };
    let first =
        store::notifications::record_delivery(&txn, reminder.id, coupon.id, outcome).await?;
    let Some(to) = to.filter(|_| first) else {
        txn.commit().await?;
        return Ok(false);
    };
    let draft = Draft {
        channel,
        to,
        subject: reminder_subject(reminder),
        template: &reminder.template,
        allow_unicode: reminder.allow_unicode,
    };
    let payload = draft.render(&Facts {
        coupon,
        pool,
        customer: &customer,
        tz,
    })?;
    let dedup_key = format!("reminder:{}:{}", reminder.id, coupon.id);
    store::outbox::push(&txn, org.id, channel.into(), dedup_key, payload).await?;
    txn.commit().await?;
    Ok(true)
}
