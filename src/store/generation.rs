//! Committing a chunk of generated codes: the codes, the pool's generator cursor past them and
//! the job's progress go in one transaction, fenced by the job's lease. A crash therefore loses
//! no position and a resumed job never makes a code twice: it continues at the cursor.

use chrono::Utc;
use sea_orm::{
    ActiveEnum, DatabaseConnection, DbBackend, DbErr, TransactionTrait,
    sqlx::{self, Postgres},
};

use crate::{
    domain::{coupon::CouponStatus, job::JobState},
    store::{
        self,
        coupons::NewCodes,
        imports::{Lease, Progress},
    },
};

/// What became of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The chunk is in: codes written (the rest clashed with codes already in the org).
    Inserted(u64),
    /// Another job moved the cursor first; take the next range and try again.
    CursorMoved,
    /// The job is no longer this worker's; nothing was written.
    LeaseLost,
}

/// One chunk of codes taken from generator positions `from..to`. PostgreSQL writes them by
/// COPY (the 10-million-code path); if one clashes with a code already in the org, COPY refuses
/// the chunk and it goes in by the conflict-skipping insert instead, as on SQLite.
pub async fn commit_chunk(
    db: &DatabaseConnection,
    lease: &Lease,
    new: NewCodes,
    codes: &[String],
    (from, to): (u64, u64),
) -> Result<Committed, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        let pool = db.get_postgres_connection_pool();
        match copy_chunk(pool, lease, new, codes, (from, to)).await {
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
    if !store::pools::advance_generator_cursor(&txn, new.pool_id, from, to).await? {
        return Ok(Committed::CursorMoved);
    }
    let inserted = store::coupons::insert_available(&txn, new, codes)
        .await?
        .len() as u64;
    let progress = Progress {
        done: codes.len() as i64,
        accepted: inserted as i64,
        skipped: (codes.len() as u64 - inserted) as i64,
        rejected: 0,
    };
    if !store::imports::record(&txn, lease, progress, Vec::new(), to as i64).await? {
        return Ok(Committed::LeaseLost);
    }
    txn.commit().await?;
    Ok(Committed::Inserted(inserted))
}

/// The PostgreSQL path: cursor, COPY and progress in one sqlx transaction (sea-orm has no COPY).
/// The cursor moves first, so the pool's row lock orders concurrent jobs on one pool.
async fn copy_chunk(
    pool: &sqlx::PgPool,
    lease: &Lease,
    new: NewCodes,
    codes: &[String],
    (from, to): (u64, u64),
) -> Result<Committed, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let moved = sqlx::query::<Postgres>(
        "UPDATE pools SET generated_count = $1 WHERE id = $2 AND generated_count = $3",
    )
    .bind(to as i64)
    .bind(new.pool_id)
    .bind(from as i64)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() != 1 {
        return Ok(Committed::CursorMoved);
    }
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
    .bind(to as i64)
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
fn copy_rows(new: NewCodes, codes: &[String]) -> Vec<u8> {
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
