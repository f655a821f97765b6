//! The outbox: emails, SMS and webhook deliveries written in the transaction of the change they
//! announce, and sent afterwards by workers. A worker claims due rows by taking a lease on them
//! (pushing their next attempt past the time a delivery can take), so replicas never send the
//! same row at once and a worker that dies leaves its rows due again when the lease runs out.

use crate::store::entity::outbox;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter, Set,
    Statement,
    sea_query::{Expr, ExprTrait},
};

use crate::domain::message::OutboxChannel;

/// The longest error text kept on a row.
const MAX_ERROR_CHARS: usize = 500;

/// Queues a message, due at once. A row with the same dedup key wins: false when one existed.
pub async fn push<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    channel: OutboxChannel,
    dedup_key: String,
    payload: serde_json::Value,
) -> Result<bool, DbErr> {
    let result = outbox::Entity::insert(new_row(org_id, channel, dedup_key, payload))
        .on_conflict_do_nothing_on([outbox::Column::DedupKey])
        .exec(db)
        .await?;
    Ok(matches!(result, sea_orm::TryInsertResult::Inserted(_)))
}

/// Queues many messages of one channel, (dedup key, payload) each, a statement per thousand;
/// rows whose dedup key exists are skipped.
pub async fn push_many<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    channel: OutboxChannel,
    messages: Vec<(String, serde_json::Value)>,
) -> Result<(), DbErr> {
    let mut rows = messages
        .into_iter()
        .map(|(key, payload)| new_row(org_id, channel, key, payload))
        .peekable();
    while rows.peek().is_some() {
        outbox::Entity::insert_many(rows.by_ref().take(1_000))
            .on_conflict_do_nothing_on([outbox::Column::DedupKey])
            .exec(db)
            .await?;
    }
    Ok(())
}

fn new_row(
    org_id: i64,
    channel: OutboxChannel,
    dedup_key: String,
    payload: serde_json::Value,
) -> outbox::ActiveModel {
    let now = Utc::now();
    outbox::ActiveModel {
        org_id: Set(org_id),
        channel: Set(channel),
        dedup_key: Set(dedup_key),
        payload: Set(payload),
        attempts: Set(0),
        next_attempt_at: Set(now),
        sent_at: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        ..Default::default()
    }
}

/// What a claim asks for.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    pub channel: OutboxChannel,
    pub now: DateTime<Utc>,
    /// Until when the claimed rows are this worker's.
    pub lease_until: DateTime<Utc>,
    /// Rows that already had this many attempts are left alone (given up).
    pub max_attempts: i32,
    pub limit: u64,
}

/// Claims up to `limit` due, unsent rows of a channel in one statement, counting the attempt.
/// PostgreSQL skips rows another worker is claiming (`FOR UPDATE SKIP LOCKED`); SQLite has one
/// writer at a time, so the same statement without the lock clause is its twin.
pub async fn claim<C: ConnectionTrait>(db: &C, c: Claim) -> Result<Vec<outbox::Model>, DbErr> {
    let backend = db.get_database_backend();
    let lock = if backend == DbBackend::Postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1 \
         WHERE id IN (SELECT id FROM outbox WHERE channel = $2 AND sent_at IS NULL \
         AND attempts < $3 AND next_attempt_at <= $4 ORDER BY next_attempt_at, id LIMIT $5 {lock}) \
         RETURNING *"
    );
    let stmt = Statement::from_sql_and_values(
        backend,
        sql,
        [
            c.lease_until.into(),
            c.channel.into(),
            c.max_attempts.into(),
            c.now.into(),
            (c.limit as i64).into(),
        ],
    );
    let rows = db.query_all_raw(stmt).await?;
    rows.iter()
        .map(|row| outbox::Model::from_query_result(row, ""))
        .collect()
}

pub async fn mark_sent<C: ConnectionTrait>(
    db: &C,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    mark_all_sent(db, &[id], now).await
}

/// [`mark_sent`] for many rows, a statement per thousand.
pub async fn mark_all_sent<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in ids.chunks(1_000) {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::SentAt, Expr::value(now))
            .col_expr(outbox::Column::LastError, Expr::value(None::<String>))
            .filter(outbox::Column::Id.is_in(chunk.iter().copied()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Hands claimed rows back unattempted, due again at `at`: the claim's attempt is not counted.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in ids.chunks(1_000) {
        outbox::Entity::update_many()
            .col_expr(
                outbox::Column::Attempts,
                Expr::col(outbox::Column::Attempts).sub(1),
            )
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(at))
            .filter(outbox::Column::Id.is_in(chunk.iter().copied()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Records a failed attempt and when to try again.
pub async fn mark_failed<C: ConnectionTrait>(
    db: &C,
    id: i64,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    outbox::Entity::update_many()
        .col_expr(outbox::Column::LastError, Expr::value(error))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(next_attempt_at))
        .filter(outbox::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Stops retrying a row that can never be sent (its subscription is gone), keeping why.
pub async fn give_up<C: ConnectionTrait>(
    db: &C,
    id: i64,
    error: &str,
    max_attempts: i32,
) -> Result<(), DbErr> {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::LastError, Expr::value(error))
        .col_expr(outbox::Column::Attempts, Expr::value(max_attempts))
        .filter(outbox::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Outbox rows of one channel in one state.
pub struct Count {
    pub channel: String,
    pub state: &'static str,
    pub count: i64,
}

/// Outbox rows by channel: `pending` (to send), `sent`, and `dead` (`max_attempts` used up).
pub async fn counts<C: ConnectionTrait>(db: &C, max_attempts: i32) -> Result<Vec<Count>, DbErr> {
    let sql = "SELECT channel, \
               CAST(SUM(CASE WHEN sent_at IS NULL AND attempts < $1 THEN 1 ELSE 0 END) AS BIGINT) AS pending, \
               CAST(SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS sent, \
               CAST(SUM(CASE WHEN sent_at IS NULL AND attempts >= $1 THEN 1 ELSE 0 END) AS BIGINT) AS dead \
               FROM outbox GROUP BY channel";
    let stmt =
        Statement::from_sql_and_values(db.get_database_backend(), sql, [max_attempts.into()]);
    let mut out = Vec::new();
    for row in db.query_all_raw(stmt).await? {
        let channel: String = row.try_get("", "channel")?;
        for state in ["pending", "sent", "dead"] {
            out.push(Count {
                channel: channel.clone(),
                state,
                count: row.try_get::<Option<i64>>("", state)?.unwrap_or(0),
            });
        }
    }
    Ok(out)
}
