//! Committing generated codes. A job first takes a round of generator positions for itself
//! (the pool's cursor moves past them and the job's params record them, in one transaction),
//! then commits the round's codes in sorted chunks, each with the job's progress and the count
//! of sorted codes now in. A crash loses no position and a resumed job makes the same round
//! again and continues after its checkpoint, so no code is made twice.

use chrono::Utc;
use sea_orm::{
    ActiveEnum, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::Expr,
    sqlx::{self, Postgres},
};

use crate::{
    domain::{coupon::CouponStatus, job::JobState},
    store::{
        self,
        coupons::NewCodes,
        entity::imports,
        imports::{Lease, Progress},
    },
};

/// What became of taking a round of positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The round is the job's: its positions are past the cursor and named in its params.
    Taken,
    /// Another job moved the cursor first; read it again and take the next range.
    CursorMoved,
    /// The job is no longer this worker's; nothing was written.
    LeaseLost,
}

/// What became of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The chunk is in: codes written (the rest clashed with codes already in the org).
    Inserted(u64),
    /// The job is no longer this worker's; nothing was written.
    LeaseLost,
}

/// Moves the pool's cursor from `from` to `to` and stores `params` (which name the round) on
/// the job with its checkpoint back at 0, in one transaction.
pub async fn take_round(
    db: &DatabaseConnection,
    lease: &Lease,
    pool_id: i64,
    (from, to): (u64, u64),
    params: serde_json::Value,
) -> Result<Taken, DbErr> {
    let txn = db.begin().await?;
    if !store::pools::advance_generator_cursor(&txn, pool_id, from, to).await? {
        return Ok(Taken::CursorMoved);
    }
    let held = imports::Entity::update_many()
        .col_expr(imports::Column::Params, Expr::value(params))
        .col_expr(imports::Column::Checkpoint, Expr::value(0_i64))
        .filter(store::imports::held(lease))
        .exec(&txn)
        .await?;
    if held.rows_affected != 1 {
        return Ok(Taken::LeaseLost);
    }
    txn.commit().await?;
    Ok(Taken::Taken)
}

/// One sorted chunk of a round, after which `checkpoint` of the round's codes are in.
/// PostgreSQL writes it by COPY (the 10-million-code path); if one clashes with a code already
/// in the org, COPY refuses the chunk and it goes in by the conflict-skipping insert instead,
/// as on SQLite.
pub async fn commit_chunk(
    db: &DatabaseConnection,
    lease: &Lease,
    new: NewCodes,
    codes: &[&str],
    checkpoint: u64,
) -> Result<Committed, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        let pool = db.get_postgres_connection_pool();
        match copy_chunk(pool, lease, new, codes, checkpoint).await {
            Ok(committed) => return Ok(committed),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            Err(e) => {
                return Err(DbErr::Custom(format!(
                    "COPY of generated codes failed: {e}"
                )));
            }
        }
    }
    let txn = db.begin().await?;
    let inserted = store::coupons::insert_available(&txn, new, codes)
        .await?
        .len() as u64;
    let progress = Progress {
        done: codes.len() as i64,
        accepted: inserted as i64,
        skipped: (codes.len() as u64 - inserted) as i64,
        rejected: 0,
    };
    let checkpoint = checkpoint as i64;
    if !store::imports::record(&txn, lease, progress, Vec::new(), checkpoint).await? {
        return Ok(Committed::LeaseLost);
    }
    txn.commit().await?;
    Ok(Committed::Inserted(inserted))
}

/// The PostgreSQL path: COPY and progress in one sqlx transaction (sea-orm has no COPY).
async fn copy_chunk(
    pool: &sqlx::PgPool,
    lease: &Lease,
    new: NewCodes,
    codes: &[&str],
    checkpoint: u64,
) -> Result<Committed, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut copy = tx
        .copy_in_raw(
            "COPY coupons (org_id, pool_id, code, status, value, balance, last_status_change_at) \
             FROM STDIN",
        )
        .await?;
    copy.send(copy_rows(new, codes)).await?;
    let inserted = copy.finish().await?;
    let n = inserted as i64;
    let held = sqlx::query::<Postgres>(
        "UPDATE imports SET done = done + $1, accepted = accepted + $1, checkpoint = $2 \
         WHERE id = $3 AND lease_owner = $4 AND state = $5",
    )
    .bind(n)
    .bind(checkpoint as i64)
    .bind(lease.job_id)
    .bind(&lease.owner)
    .bind(JobState::Running.as_str())
    .execute(&mut *tx)
    .await?;
    if held.rows_affected() != 1 {
        return Ok(Committed::LeaseLost);
    }
    tx.commit().await?;
    Ok(Committed::Inserted(inserted))
}

/// The chunk in COPY's text format.
fn copy_rows(new: NewCodes, codes: &[&str]) -> Vec<u8> {
    let now = Utc::now().to_rfc3339();
    let null = |v: Option<i64>| v.map_or_else(|| "\\N".to_string(), |v| v.to_string());
    let value = null(new.value);
    let balance = null(if new.gift_card { new.value } else { None });
    let status = CouponStatus::Available.to_value();
    let (org, pool_id) = (new.org_id, new.pool_id);
    let mut data = String::with_capacity(codes.len() * 64);
    for code in codes {
        let code = copy_escape(code);
        data.push_str(&format!(
            "{org}\t{pool_id}\t{code}\t{status}\t{value}\t{balance}\t{now}\n"
        ));
    }
    data.into_bytes()
}

/// Escapes a value for COPY's text format.
fn copy_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}
