//! Coupon rows: bulk insertion of new codes and pool statistics.

use std::collections::HashSet;

use chrono::Utc;
use entity::coupons;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{OnConflict, Query},
};

use crate::domain::coupon::CouponStatus;

/// Rows per INSERT statement: 7 bound values a row stays under every backend's parameter limit.
pub const INSERT_CHUNK: usize = 2_000;

/// What every new code of a pool starts with.
#[derive(Debug, Clone, Copy)]
pub struct NewCodes {
    pub org_id: i64,
    pub pool_id: i64,
    /// The pool's value when the code was made; later pool edits decide whether it follows.
    pub value: Option<i64>,
    /// Gift cards start with their whole value as balance.
    pub gift_card: bool,
}

/// Inserts available codes, skipping any that already exist in the org (in any pool), and
/// returns the codes that went in. One statement, so a concurrent upload of the same code
/// cannot put it in twice.
pub async fn insert_available<C: ConnectionTrait>(
    db: &C,
    new: NewCodes,
    codes: &[String],
) -> Result<HashSet<String>, DbErr> {
    let mut inserted = HashSet::with_capacity(codes.len());
    let now = Utc::now();
    let balance = if new.gift_card { new.value } else { None };
    for chunk in codes.chunks(INSERT_CHUNK) {
        let mut stmt = Query::insert();
        stmt.into_table(coupons::Entity).columns([
            coupons::Column::OrgId,
            coupons::Column::PoolId,
            coupons::Column::Code,
            coupons::Column::Status,
            coupons::Column::Value,
            coupons::Column::Balance,
            coupons::Column::LastStatusChangeAt,
        ]);
        for code in chunk {
            stmt.values_panic([
                new.org_id.into(),
                new.pool_id.into(),
                code.clone().into(),
                CouponStatus::Available.as_i16().into(),
                new.value.into(),
                balance.into(),
                now.into(),
            ]);
        }
        stmt.on_conflict(
            OnConflict::columns([
                coupons::Column::OrgId,
                coupons::Column::Code,
                coupons::Column::ShareKey,
            ])
            .do_nothing()
            .to_owned(),
        )
        .returning_col(coupons::Column::Code);
        for row in db.query_all(&stmt).await? {
            inserted.insert(row.try_get::<String>("", "code")?);
        }
    }
    Ok(inserted)
}

/// Coupon counts of a pool by status.
pub async fn count_by_status<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
) -> Result<Vec<(CouponStatus, i64)>, DbErr> {
    let rows: Vec<(i16, i64)> = coupons::Entity::find()
        .select_only()
        .column(coupons::Column::Status)
        .column_as(coupons::Column::Id.count(), "n")
        .filter(coupons::Column::PoolId.eq(pool_id))
        .group_by(coupons::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| CouponStatus::from_i16(s).map(|s| (s, n)))
        .collect())
}

/// Writes freshly generated codes and returns how many went in. PostgreSQL gets them by COPY
/// (the 10-million-code path); if a code clashes with one already in the org, COPY refuses the
/// whole chunk and it goes in by the conflict-skipping insert instead. SQLite always inserts.
pub async fn bulk_insert_available(
    db: &sea_orm::DatabaseConnection,
    new: NewCodes,
    codes: &[String],
) -> Result<u64, DbErr> {
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        match copy_available(db.get_postgres_connection_pool(), new, codes).await {
            Ok(n) => return Ok(n),
            Err(sea_orm::sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            Err(e) => {
                return Err(DbErr::Custom(format!(
                    "COPY of generated codes failed: {e}"
                )));
            }
        }
    }
    Ok(insert_available(db, new, codes).await?.len() as u64)
}

/// COPY ... FROM STDIN in text format; sea-orm has no COPY, so this one call uses sqlx directly.
async fn copy_available(
    pool: &sea_orm::sqlx::PgPool,
    new: NewCodes,
    codes: &[String],
) -> Result<u64, sea_orm::sqlx::Error> {
    let now = Utc::now().to_rfc3339();
    let null = |v: Option<i64>| v.map_or_else(|| "\\N".to_string(), |v| v.to_string());
    let value = null(new.value);
    let balance = null(if new.gift_card { new.value } else { None });
    let status = CouponStatus::Available.as_i16();
    let mut data = String::with_capacity(codes.len() * 64);
    for code in codes {
        let code = copy_escape(code);
        let org = new.org_id;
        let pool_id = new.pool_id;
        data.push_str(&format!(
            "{org}\t{pool_id}\t{code}\t{status}\t{value}\t{balance}\t{now}\n"
        ));
    }
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY coupons (org_id, pool_id, code, status, value, balance, last_status_change_at) \
             FROM STDIN",
        )
        .await?;
    copy.send(data.into_bytes()).await?;
    copy.finish().await
}

/// Escapes a value for COPY's text format.
fn copy_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// A customer's coupons, newest first.
pub async fn of_customer<C: ConnectionTrait>(
    db: &C,
    customer_id: i64,
) -> Result<Vec<coupons::Model>, DbErr> {
    use sea_orm::QueryOrder;
    coupons::Entity::find()
        .filter(coupons::Column::CustomerId.eq(customer_id))
        .order_by_desc(coupons::Column::Id)
        .all(db)
        .await
}

/// Which of these coupons had their latest redemption reversed (and so were reinstated).
pub async fn reversed_among<C: ConnectionTrait>(
    db: &C,
    coupon_ids: Vec<i64>,
) -> Result<HashSet<i64>, DbErr> {
    use entity::redemptions;
    use sea_orm::QueryOrder;
    let mut latest: std::collections::HashMap<i64, bool> = std::collections::HashMap::new();
    for chunk in coupon_ids.chunks(1_000) {
        let rows: Vec<(i64, bool)> = redemptions::Entity::find()
            .select_only()
            .columns([redemptions::Column::CouponId, redemptions::Column::Active])
            .filter(redemptions::Column::CouponId.is_in(chunk.iter().copied()))
            .filter(redemptions::Column::ReservedUntil.is_null())
            .order_by_asc(redemptions::Column::Id)
            .into_tuple()
            .all(db)
            .await?;
        for (coupon_id, active) in rows {
            latest.insert(coupon_id, active);
        }
    }
    Ok(latest
        .into_iter()
        .filter(|(_, active)| !active)
        .map(|(id, _)| id)
        .collect())
}
