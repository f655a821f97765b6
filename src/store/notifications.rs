//! Reminders and message templates of pools, the reminders each coupon was given, the
//! scheduler's runs, the expiry sweep's batches, and the email/SMS side of the outbox (listing,
//! retrying and cleaning up rows; claiming and marking live in `store::outbox`).

use crate::store::entity::{
    coupon_events, coupons, idempotency_keys, outbox, pool_limit_alerts, pool_messages,
    pool_reminders, pools, redemptions, reminder_deliveries, scheduler_runs,
};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
    sea_query::{Expr, ExprTrait},
};

use crate::{
    domain::{
        coupon::CouponStatus,
        message::{self, Channel, OutboxChannel, ReminderOutcome},
        pool::{PoolSource, PoolState},
        webhook,
    },
    store::events::EventKind,
};

/// A reminder as saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReminder {
    pub days_before: i32,
    pub at_time: String,
    pub channel: Channel,
    pub subject: Option<String>,
    pub template: String,
    pub allow_unicode: bool,
}

pub async fn reminders_of<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
) -> Result<Vec<pool_reminders::Model>, DbErr> {
    pool_reminders::Entity::find()
        .filter(pool_reminders::Column::PoolId.eq(pool_id))
        .order_by_asc(pool_reminders::Column::Id)
        .all(db)
        .await
}

/// Every reminder of every pool, for the reminder job.
pub async fn all_reminders<C: ConnectionTrait>(
    db: &C,
) -> Result<Vec<pool_reminders::Model>, DbErr> {
    pool_reminders::Entity::find()
        .order_by_asc(pool_reminders::Column::Id)
        .all(db)
        .await
}

/// Replaces a pool's reminders. One with the same days, time and channel as a saved one keeps
/// its id (a changed wording does not send it again to coupons that had it).
pub async fn replace_reminders<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    pool_id: i64,
    wanted: Vec<NewReminder>,
) -> Result<Vec<pool_reminders::Model>, DbErr> {
    let mut existing = reminders_of(db, pool_id).await?;
    let now = Utc::now();
    for new in wanted {
        let same = existing.iter().position(|r| {
            r.days_before == new.days_before && r.at_time == new.at_time && r.channel == new.channel
        });
        let mut row: pool_reminders::ActiveModel = match same {
            Some(i) => existing.swap_remove(i).into(),
            None => pool_reminders::ActiveModel {
                org_id: Set(org_id),
                pool_id: Set(pool_id),
                days_before: Set(new.days_before),
                at_time: Set(new.at_time.clone()),
                channel: Set(new.channel),
                created_at: Set(now),
                ..Default::default()
            },
        };
        row.subject = Set(new.subject);
        row.template = Set(new.template);
        row.allow_unicode = Set(new.allow_unicode);
        row.save(db).await?;
    }
    let gone: Vec<i64> = existing.iter().map(|r| r.id).collect();
    if !gone.is_empty() {
        pool_reminders::Entity::delete_many()
            .filter(pool_reminders::Column::Id.is_in(gone))
            .exec(db)
            .await?;
    }
    reminders_of(db, pool_id).await
}

pub async fn messages_of<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
) -> Result<Option<pool_messages::Model>, DbErr> {
    pool_messages::Entity::find_by_id(pool_id).one(db).await
}

pub async fn put_messages<C: ConnectionTrait>(
    db: &C,
    row: pool_messages::Model,
) -> Result<pool_messages::Model, DbErr> {
    pool_messages::Entity::insert(pool_messages::ActiveModel::from(row.clone()))
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(pool_messages::Column::PoolId)
                .update_columns([
                    pool_messages::Column::ResendTemplate,
                    pool_messages::Column::ResendSubject,
                    pool_messages::Column::AllowUnicode,
                    pool_messages::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(row)
}

/// Issued coupons of the reminder's pool expiring in (now, window_end) that have not had it,
/// after coupon id `after`, by id.
pub async fn reminder_candidates<C: ConnectionTrait>(
    db: &C,
    reminder_id: i64,
    pool_id: i64,
    now: DateTime<Utc>,
    window_end: DateTime<Utc>,
    after: i64,
    limit: u64,
) -> Result<Vec<coupons::Model>, DbErr> {
    let backend = db.get_database_backend();
    let stmt = Statement::from_sql_and_values(
        backend,
        "SELECT c.* FROM coupons c WHERE c.status = $1 AND c.expires_at > $2 \
         AND c.expires_at < $3 AND c.pool_id = $4 AND c.id > $5 AND c.customer_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM reminder_deliveries d \
         WHERE d.reminder_id = $6 AND d.coupon_id = c.id) ORDER BY c.id LIMIT $7",
        [
            CouponStatus::Issued.into(),
            now.into(),
            window_end.into(),
            pool_id.into(),
            after.into(),
            reminder_id.into(),
            (limit as i64).into(),
        ],
    );
    let rows = db.query_all_raw(stmt).await?;
    rows.iter()
        .map(|row| coupons::Model::from_query_result(row, ""))
        .collect()
}

/// Records that a reminder was given to a coupon (`outcome`: queued, or why not). False when
/// another run recorded it first, in which case the caller queues nothing.
pub async fn record_delivery<C: ConnectionTrait>(
    db: &C,
    reminder_id: i64,
    coupon_id: i64,
    outcome: ReminderOutcome,
) -> Result<bool, DbErr> {
    let result = reminder_deliveries::Entity::insert(reminder_deliveries::ActiveModel {
        reminder_id: Set(reminder_id),
        coupon_id: Set(coupon_id),
        outcome: Set(outcome),
        created_at: Set(Utc::now()),
    })
    .on_conflict_do_nothing_on([
        reminder_deliveries::Column::ReminderId,
        reminder_deliveries::Column::CouponId,
    ])
    .exec(db)
    .await?;
    Ok(matches!(result, sea_orm::TryInsertResult::Inserted(_)))
}

/// When job `name` last ran (unix milliseconds), if ever.
pub async fn last_run<C: ConnectionTrait>(db: &C, name: &str) -> Result<Option<i64>, DbErr> {
    Ok(scheduler_runs::Entity::find_by_id(name.to_string())
        .one(db)
        .await?
        .map(|r| r.last_run_ms))
}

/// Claims a run of job `name` at `now_ms`, if its last run is still `previous`: of replicas
/// racing for one scheduled run, exactly one gets true.
pub async fn claim_run<C: ConnectionTrait>(
    db: &C,
    name: &str,
    previous: Option<i64>,
    now_ms: i64,
) -> Result<bool, DbErr> {
    match previous {
        None => {
            let result = scheduler_runs::Entity::insert(scheduler_runs::ActiveModel {
                name: Set(name.to_string()),
                last_run_ms: Set(now_ms),
            })
            .on_conflict_do_nothing_on([scheduler_runs::Column::Name])
            .exec(db)
            .await?;
            Ok(matches!(result, sea_orm::TryInsertResult::Inserted(_)))
        }
        Some(previous) => {
            let result = scheduler_runs::Entity::update_many()
                .col_expr(scheduler_runs::Column::LastRunMs, Expr::value(now_ms))
                .filter(scheduler_runs::Column::Name.eq(name))
                .filter(scheduler_runs::Column::LastRunMs.eq(previous))
                .exec(db)
                .await?;
            Ok(result.rows_affected == 1)
        }
    }
}

/// Expires up to `limit` available or issued coupons whose expiry passed by `now`, in one
/// statement that touches only those rows (PostgreSQL skips rows another sweep or a checkout
/// holds), and returns them as they are now.
pub async fn expire_batch<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<coupons::Model>, DbErr> {
    let backend = db.get_database_backend();
    let lock = if backend == DbBackend::Postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE coupons SET status = $1, last_status_change_at = $2 WHERE id IN \
         (SELECT id FROM coupons WHERE status IN ($3, $4) AND expires_at <= $5 LIMIT $6 {lock}) \
         RETURNING *"
    );
    let stmt = Statement::from_sql_and_values(
        backend,
        sql,
        [
            CouponStatus::Expired.into(),
            now.into(),
            CouponStatus::Available.into(),
            CouponStatus::Issued.into(),
            now.into(),
            (limit as i64).into(),
        ],
    );
    let rows = db.query_all_raw(stmt).await?;
    rows.iter()
        .map(|row| coupons::Model::from_query_result(row, ""))
        .collect()
}

/// Records `coupon_expire` in the holders' histories, in one statement.
pub async fn record_expiries<C: ConnectionTrait>(
    db: &C,
    expired: &[coupons::Model],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let rows = expired
        .iter()
        .filter(|c| c.customer_id.is_some())
        .map(|c| coupon_events::ActiveModel {
            org_id: Set(c.org_id),
            coupon_id: Set(c.id),
            pool_id: Set(c.pool_id),
            customer_id: Set(c.customer_id),
            kind: Set(EventKind::Expire),
            detail: Set(None),
            created_at: Set(now),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    if !rows.is_empty() {
        coupon_events::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}

/// Unsent rows that used up their attempts, whatever their channel.
fn dead() -> Condition {
    let channel = outbox::Column::Channel;
    let attempts = outbox::Column::Attempts;
    let webhooks = Condition::all()
        .add(channel.eq(OutboxChannel::Webhook))
        .add(attempts.gte(webhook::MAX_ATTEMPTS));
    let messages = Condition::all()
        .add(channel.ne(OutboxChannel::Webhook))
        .add(attempts.gte(message::MAX_ATTEMPTS));
    Condition::all()
        .add(outbox::Column::SentAt.is_null())
        .add(Condition::any().add(webhooks).add(messages))
}

/// The org's outbox rows, newest first, optionally of one channel and state.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    channel: Option<&str>,
    state: Option<message::OutboxState>,
    limit: u64,
) -> Result<Vec<outbox::Model>, DbErr> {
    let mut query = outbox::Entity::find().filter(outbox::Column::OrgId.eq(org_id));
    if let Some(channel) = channel {
        query = query.filter(outbox::Column::Channel.eq(channel));
    }
    query = match state {
        None => query,
        Some(message::OutboxState::Sent) => query.filter(outbox::Column::SentAt.is_not_null()),
        Some(message::OutboxState::Dead) => query.filter(dead()),
        Some(message::OutboxState::Pending) => query
            .filter(outbox::Column::SentAt.is_null())
            .filter(dead().not()),
    };
    query
        .order_by_desc(outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

pub async fn get<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: i64,
) -> Result<Option<outbox::Model>, DbErr> {
    outbox::Entity::find_by_id(id)
        .filter(outbox::Column::OrgId.eq(org_id))
        .one(db)
        .await
}

/// Makes a dead row due again with fresh attempts; false when it is not dead (any more).
pub async fn revive<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(now))
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::OrgId.eq(org_id))
        .filter(dead())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Deletes up to `limit` rows sent before `cutoff`; returns how many went.
pub async fn delete_sent_before<C: ConnectionTrait>(
    db: &C,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<u64, DbErr> {
    let (id, at) = (outbox::Column::Id, outbox::Column::SentAt);
    delete_older::<outbox::Entity, C>(db, (id, at), cutoff, limit).await
}

/// Deletes up to `limit` idempotency keys stored before `cutoff`.
pub async fn delete_idempotency_keys_before<C: ConnectionTrait>(
    db: &C,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<u64, DbErr> {
    let columns = (
        idempotency_keys::Column::Id,
        idempotency_keys::Column::CreatedAt,
    );
    delete_older::<idempotency_keys::Entity, C>(db, columns, cutoff, limit).await
}

/// Deletes up to `limit` rows of `E` whose time column (the pair's second) is before
/// `cutoff`, picked by id first so each batch is small.
async fn delete_older<E: EntityTrait, C: ConnectionTrait>(
    db: &C,
    (id, at): (E::Column, E::Column),
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<u64, DbErr> {
    let ids: Vec<i64> = E::find()
        .select_only()
        .column(id)
        .filter(at.lt(cutoff))
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let result = E::delete_many().filter(id.is_in(ids)).exec(db).await?;
    Ok(result.rows_affected)
}

/// A pool by id, whatever its org (for housekeeping).
pub async fn pool_by_id<C: ConnectionTrait>(
    db: &C,
    id: i64,
) -> Result<Option<pools::Model>, DbErr> {
    pools::Entity::find_by_id(id).one(db).await
}

/// Up to `limit` holds that ran out by `now` and are still open, as (pool id, coupon id).
pub async fn run_out_holds<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<(i64, i64)>, DbErr> {
    redemptions::Entity::find()
        .select_only()
        .column(redemptions::Column::PoolId)
        .column(redemptions::Column::CouponId)
        .filter(redemptions::Column::Active.eq(true))
        .filter(redemptions::Column::ReservedUntil.lte(now))
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// Active pools whose codes can run out (uploaded or generated), for the limit watch.
pub async fn pools_with_codes<C: ConnectionTrait>(db: &C) -> Result<Vec<pools::Model>, DbErr> {
    pools::Entity::find()
        .filter(pools::Column::State.eq(PoolState::Active))
        .filter(pools::Column::Source.is_in([PoolSource::Uploaded, PoolSource::Generated]))
        .order_by_asc(pools::Column::Id)
        .all(db)
        .await
}

/// The pool's codes still available, counted up to `cap` only: the watch needs to know
/// whether they are few, not how many a big pool has.
pub async fn available_up_to<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    cap: u64,
) -> Result<u64, DbErr> {
    let ids: Vec<i64> = coupons::Entity::find()
        .select_only()
        .column(coupons::Column::Id)
        .filter(coupons::Column::PoolId.eq(pool_id))
        .filter(coupons::Column::Status.eq(CouponStatus::Available))
        .limit(cap)
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids.len() as u64)
}

/// Marks the pool's codes as fallen to its threshold; the number of this crossing when this
/// call made the change, None when they were already there (another replica or run saw it).
pub async fn fall_below<C: ConnectionTrait>(db: &C, pool_id: i64) -> Result<Option<i32>, DbErr> {
    pool_limit_alerts::Entity::insert(pool_limit_alerts::ActiveModel {
        pool_id: Set(pool_id),
        below: Set(false),
        crossings: Set(0),
    })
    .on_conflict_do_nothing_on([pool_limit_alerts::Column::PoolId])
    .exec(db)
    .await?;
    let result = pool_limit_alerts::Entity::update_many()
        .col_expr(pool_limit_alerts::Column::Below, Expr::value(true))
        .col_expr(
            pool_limit_alerts::Column::Crossings,
            Expr::col(pool_limit_alerts::Column::Crossings).add(1),
        )
        .filter(pool_limit_alerts::Column::PoolId.eq(pool_id))
        .filter(pool_limit_alerts::Column::Below.eq(false))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Ok(None);
    }
    let row = pool_limit_alerts::Entity::find_by_id(pool_id)
        .one(db)
        .await?;
    Ok(row.map(|r| r.crossings))
}

/// The pool's codes rose above its threshold again (a refill): the next fall is a new crossing.
pub async fn rise_above<C: ConnectionTrait>(db: &C, pool_id: i64) -> Result<(), DbErr> {
    pool_limit_alerts::Entity::update_many()
        .col_expr(pool_limit_alerts::Column::Below, Expr::value(false))
        .filter(pool_limit_alerts::Column::PoolId.eq(pool_id))
        .filter(pool_limit_alerts::Column::Below.eq(true))
        .exec(db)
        .await?;
    Ok(())
}
