//! The database side of issuing: what the rules need to know about a customer, the series
//! counter, and the claim of a code. Every function runs inside the caller's issuing
//! transaction, after the customer's row lock.

use std::collections::{HashMap, HashSet};

use crate::store::entity::{coupons, pool_allowed_customers, pools};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
    sea_query::{ArrayType, Expr, ExprTrait},
};

use super::{coupons::NewCodes, events::EventKind};
use crate::domain::{coupon::CouponStatus, discount::DiscountType};

/// What a customer already has from a pool.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct History {
    pub issued_count: u64,
    pub last_issued_at: Option<DateTime<Utc>>,
    /// An issued, unexpired coupon the customer still holds.
    pub valid_coupon: Option<i64>,
}

pub async fn history<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    customer_id: i64,
    now: DateTime<Utc>,
) -> Result<History, DbErr> {
    type Row = (
        i64,
        CouponStatus,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> = coupons::Entity::find()
        .select_only()
        .columns([
            coupons::Column::Id,
            coupons::Column::Status,
            coupons::Column::IssuedAt,
            coupons::Column::ExpiresAt,
        ])
        .filter(coupons::Column::CustomerId.eq(customer_id))
        .filter(coupons::Column::PoolId.eq(pool_id))
        .order_by_asc(coupons::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let issued = CouponStatus::Issued;
    Ok(History {
        issued_count: rows.len() as u64,
        last_issued_at: rows.iter().filter_map(|r| r.2).max(),
        valid_coupon: rows
            .iter()
            .find(|(_, status, _, expires)| *status == issued && expires.is_none_or(|e| e > now))
            .map(|r| r.0),
    })
}

/// Whether the customer received any coupon of these pools since `since`.
pub async fn issued_from_since<C: ConnectionTrait>(
    db: &C,
    customer_id: i64,
    pool_ids: &[i64],
    since: DateTime<Utc>,
) -> Result<bool, DbErr> {
    if pool_ids.is_empty() {
        return Ok(false);
    }
    let hit: Option<i64> = coupons::Entity::find()
        .select_only()
        .column(coupons::Column::Id)
        .filter(coupons::Column::CustomerId.eq(customer_id))
        .filter(coupons::Column::PoolId.is_in(pool_ids.iter().copied()))
        .filter(coupons::Column::IssuedAt.gte(since))
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    Ok(hit.is_some())
}

pub async fn on_allow_list<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    customer_id: i64,
) -> Result<bool, DbErr> {
    Ok(
        pool_allowed_customers::Entity::find_by_id((pool_id, customer_id))
            .one(db)
            .await?
            .is_some(),
    )
}

/// Takes one slot of the pool's total issual limit: one conditional increment, so concurrent
/// issuers can never take more slots than the limit. The pool's new total, or None when the
/// limit is reached.
pub async fn take_series_slot<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    max_total: u64,
) -> Result<Option<u64>, DbErr> {
    let backend = db.get_database_backend();
    let stmt = Statement::from_sql_and_values(
        backend,
        "UPDATE pools SET issued_count = issued_count + 1 \
         WHERE id = $1 AND issued_count < $2 RETURNING issued_count",
        [pool_id.into(), (max_total as i64).into()],
    );
    match db.query_one_raw(stmt).await? {
        Some(row) => Ok(Some(row.try_get::<i64>("", "issued_count")? as u64)),
        None => Ok(None),
    }
}

/// The facts stamped on a coupon when it is issued.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub customer_id: i64,
    pub now: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub redeemable_from: Option<DateTime<Utc>>,
}

/// Hands the pool's next available code to the customer in one statement. On PostgreSQL the
/// inner `FOR UPDATE SKIP LOCKED` lets concurrent issuers take different rows without waiting;
/// SQLite runs one writer at a time, so the same statement without the lock clause is enough.
pub async fn claim_available<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    s: Stamp,
) -> Result<Option<coupons::Model>, DbErr> {
    let backend = db.get_database_backend();
    let stmt = Statement::from_sql_and_values(
        backend,
        claim_sql(backend, false),
        claim_values(pool_id, s),
    );
    match db.query_one_raw(stmt).await? {
        Some(row) => Ok(Some(coupons::Model::from_query_result(&row, "")?)),
        None => Ok(None),
    }
}

/// [`claim_available`]'s statement; its seven parameters are [`claim_values`]. With
/// `from_who`, the customer is the row of a `who` table the caller defines (the claim's
/// second parameter is then the caller's to use): no such row, nothing claimed.
pub fn claim_sql(backend: DbBackend, from_who: bool) -> String {
    let lock = if backend == DbBackend::Postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let (customer, from, returning) = if from_who {
        ("who.id", "FROM who", "coupons.*")
    } else {
        ("$2", "", "*")
    };
    format!(
        "UPDATE coupons SET status = $1, customer_id = {customer}, issued_at = $3, expires_at = $4, \
         redeemable_from = $5, last_status_change_at = $3 {from} \
         WHERE coupons.id = (SELECT id FROM coupons WHERE pool_id = $6 AND status = $7 ORDER BY code LIMIT 1 {lock}) \
         RETURNING {returning}"
    )
}

/// [`claim_sql`]'s parameters: the stamp, the pool, the statuses.
pub fn claim_values(pool_id: i64, s: Stamp) -> Vec<sea_orm::Value> {
    vec![
        CouponStatus::Issued.into(),
        s.customer_id.into(),
        s.now.into(),
        s.expires_at.into(),
        s.redeemable_from.into(),
        pool_id.into(),
        CouponStatus::Available.into(),
    ]
}

/// Inserts a coupon issued straight to the customer (a freshly minted code, or a customer's copy
/// of a common code at share key = customer id). None when the code (at that share key) is
/// taken: for a common code, that means this customer already has it.
pub async fn insert_issued<C: ConnectionTrait>(
    db: &C,
    pool: &pools::Model,
    code: String,
    share_key: i64,
    s: Stamp,
) -> Result<Option<coupons::Model>, DbErr> {
    use coupons::Column as C;
    let balance = (pool.discount_type == DiscountType::GiftCard)
        .then_some(pool.value)
        .flatten();
    // RETURNING in SQL on both backends: sea-orm's SQLite fallback re-reads by last insert id,
    // which says nothing useful when the conflict clause skipped the row.
    let mut stmt = sea_orm::sea_query::Query::insert();
    stmt.into_table(coupons::Entity)
        .columns([
            C::OrgId,
            C::PoolId,
            C::Code,
            C::ShareKey,
            C::Status,
            C::CustomerId,
            C::Value,
            C::Balance,
            C::RedemptionCount,
            C::IssuedAt,
            C::ExpiresAt,
            C::RedeemableFrom,
            C::LastStatusChangeAt,
        ])
        .values_panic([
            pool.org_id.into(),
            pool.id.into(),
            code.into(),
            share_key.into(),
            CouponStatus::Issued.into(),
            s.customer_id.into(),
            pool.value.into(),
            balance.into(),
            0i32.into(),
            s.now.into(),
            s.expires_at.into(),
            s.redeemable_from.into(),
            s.now.into(),
        ])
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([C::OrgId, C::Code, C::ShareKey])
                .do_nothing()
                .to_owned(),
        )
        .returning_all();
    match db.query_one(&stmt).await? {
        Some(row) => Ok(Some(coupons::Model::from_query_result(&row, "")?)),
        None => Ok(None),
    }
}

/// Inserts codes issued straight to their customers (an upload naming who already holds each
/// code), all stamped alike, skipping any code the org already has. Returns the coupons that
/// went in, so a code another upload took meanwhile is told apart by its absence.
pub async fn insert_issued_many<C: ConnectionTrait>(
    db: &C,
    new: NewCodes,
    holders: &[(String, i64)],
    s: Stamp,
) -> Result<Vec<coupons::Model>, DbErr> {
    use coupons::Column as C;
    let balance = if new.gift_card { new.value } else { None };
    let mut inserted = Vec::with_capacity(holders.len());
    // 11 bound values a row: a thousand rows stay under every backend's parameter limit.
    for chunk in holders.chunks(1_000) {
        let mut stmt = sea_orm::sea_query::Query::insert();
        stmt.into_table(coupons::Entity).columns([
            C::OrgId,
            C::PoolId,
            C::Code,
            C::Status,
            C::CustomerId,
            C::Value,
            C::Balance,
            C::IssuedAt,
            C::ExpiresAt,
            C::RedeemableFrom,
            C::LastStatusChangeAt,
        ]);
        for (code, customer_id) in chunk {
            stmt.values_panic([
                new.org_id.into(),
                new.pool_id.into(),
                code.clone().into(),
                CouponStatus::Issued.into(),
                (*customer_id).into(),
                new.value.into(),
                balance.into(),
                s.now.into(),
                s.expires_at.into(),
                s.redeemable_from.into(),
                s.now.into(),
            ]);
        }
        stmt.on_conflict(
            sea_orm::sea_query::OnConflict::columns([C::OrgId, C::Code, C::ShareKey])
                .do_nothing()
                .to_owned(),
        )
        .returning_all();
        for row in db.query_all(&stmt).await? {
            inserted.push(coupons::Model::from_query_result(&row, "")?);
        }
    }
    Ok(inserted)
}

pub async fn get<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<coupons::Model>, DbErr> {
    coupons::Entity::find_by_id(id).one(db).await
}

/// Adds a customer to a pool's allow-list; false when already there.
pub async fn allow<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    customer_id: i64,
) -> Result<bool, DbErr> {
    let row = pool_allowed_customers::ActiveModel {
        pool_id: Set(pool_id),
        customer_id: Set(customer_id),
    };
    let result = pool_allowed_customers::Entity::insert(row)
        .on_conflict_do_nothing_on([
            pool_allowed_customers::Column::PoolId,
            pool_allowed_customers::Column::CustomerId,
        ])
        .exec(db)
        .await?;
    Ok(matches!(result, sea_orm::TryInsertResult::Inserted(_)))
}

/// Locks the pool row and reads its series counter (batch issuing decides many rows at once).
pub async fn lock_series_counter<C: ConnectionTrait>(db: &C, pool_id: i64) -> Result<u64, DbErr> {
    let count: Option<i64> = pools::Entity::find_by_id(pool_id)
        .select_only()
        .column(pools::Column::IssuedCount)
        .lock_exclusive()
        .into_tuple()
        .one(db)
        .await?;
    Ok(count.unwrap_or(0) as u64)
}

pub async fn add_to_series_counter<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    n: i64,
) -> Result<(), DbErr> {
    pools::Entity::update_many()
        .col_expr(
            pools::Column::IssuedCount,
            Expr::col(pools::Column::IssuedCount).add(n),
        )
        .filter(pools::Column::Id.eq(pool_id))
        .exec(db)
        .await?;
    Ok(())
}

/// `history` for many customers at once.
pub async fn histories<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    customer_ids: &[i64],
    now: DateTime<Utc>,
) -> Result<HashMap<i64, History>, DbErr> {
    type Row = (
        i64,
        i64,
        CouponStatus,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let mut out: HashMap<i64, History> = HashMap::new();
    let issued = CouponStatus::Issued;
    for chunk in customer_ids.chunks(5_000) {
        let rows: Vec<Row> = coupons::Entity::find()
            .select_only()
            .columns([
                coupons::Column::CustomerId,
                coupons::Column::Id,
                coupons::Column::Status,
                coupons::Column::IssuedAt,
                coupons::Column::ExpiresAt,
            ])
            .filter(coupons::Column::PoolId.eq(pool_id))
            .filter(super::any_of(
                db.get_database_backend(),
                coupons::Column::CustomerId,
                ArrayType::BigInt,
                chunk.iter().copied(),
            ))
            .order_by_asc(coupons::Column::Id)
            .into_tuple()
            .all(db)
            .await?;
        for (customer_id, id, status, issued_at, expires_at) in rows {
            let h = out.entry(customer_id).or_default();
            h.issued_count += 1;
            h.last_issued_at = Ord::max(h.last_issued_at, issued_at);
            if h.valid_coupon.is_none() && status == issued && expires_at.is_none_or(|e| e > now) {
                h.valid_coupon = Some(id);
            }
        }
    }
    Ok(out)
}

/// Which of these customers received a coupon of `pool_ids` since `since`.
pub async fn issued_from_since_many<C: ConnectionTrait>(
    db: &C,
    customer_ids: &[i64],
    pool_ids: &[i64],
    since: DateTime<Utc>,
) -> Result<HashSet<i64>, DbErr> {
    let mut out = HashSet::new();
    if pool_ids.is_empty() {
        return Ok(out);
    }
    for chunk in customer_ids.chunks(5_000) {
        let rows: Vec<i64> = coupons::Entity::find()
            .select_only()
            .column(coupons::Column::CustomerId)
            .distinct()
            .filter(super::any_of(
                db.get_database_backend(),
                coupons::Column::CustomerId,
                ArrayType::BigInt,
                chunk.iter().copied(),
            ))
            .filter(coupons::Column::PoolId.is_in(pool_ids.iter().copied()))
            .filter(coupons::Column::IssuedAt.gte(since))
            .into_tuple()
            .all(db)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// Which of these customers are on the pool's allow-list.
pub async fn allowed_many<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    customer_ids: &[i64],
) -> Result<HashSet<i64>, DbErr> {
    let mut out = HashSet::new();
    for chunk in customer_ids.chunks(5_000) {
        let rows: Vec<i64> = pool_allowed_customers::Entity::find()
            .select_only()
            .column(pool_allowed_customers::Column::CustomerId)
            .filter(pool_allowed_customers::Column::PoolId.eq(pool_id))
            .filter(super::any_of(
                db.get_database_backend(),
                pool_allowed_customers::Column::CustomerId,
                ArrayType::BigInt,
                chunk.iter().copied(),
            ))
            .into_tuple()
            .all(db)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// Hands the pool's next available codes to these customers, in order, and records their
/// `coupon_issue` events (PostgreSQL only: the batch path). Two statements: the first locks the
/// codes (`SKIP LOCKED`, so concurrent issuers take others), the second assigns them by id and
/// inserts the events. One joined statement would leave the planner guessing the size of the
/// join and scanning the whole table. Returns the issued coupons in customer order; fewer than
/// asked when the pool runs out.
pub async fn claim_many<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    customer_ids: &[i64],
    s: Stamp,
) -> Result<Vec<coupons::Model>, DbErr> {
    if customer_ids.is_empty() {
        return Ok(Vec::new());
    }
    let pick = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT id FROM coupons WHERE pool_id = $1 AND status = $2 \
         ORDER BY code LIMIT $3 FOR UPDATE SKIP LOCKED",
        [
            pool_id.into(),
            CouponStatus::Available.into(),
            (customer_ids.len() as i64).into(),
        ],
    );
    let mut ids = Vec::with_capacity(customer_ids.len());
    for row in db.query_all_raw(pick).await? {
        ids.push(row.try_get::<i64>("", "id")?);
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Arrays travel as one text parameter each, cast server-side, to stay under bind limits.
    let array = |v: &[i64]| {
        format!(
            "{{{}}}",
            v.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        )
    };
    let assign = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "WITH issued AS (UPDATE coupons c SET status = $1, customer_id = x.customer_id, \
             issued_at = $2, expires_at = $3, redeemable_from = $4, last_status_change_at = $2 \
           FROM unnest($5::text::bigint[], $6::text::bigint[]) WITH ORDINALITY AS x(id, customer_id, rn) \
           WHERE c.id = x.id \
           RETURNING c.*, x.rn), \
         recorded AS (INSERT INTO coupon_events \
             (org_id, coupon_id, pool_id, customer_id, kind, detail, created_at) \
           SELECT org_id, id, pool_id, customer_id, $7, NULL, $2 FROM issued ORDER BY rn) \
         SELECT * FROM issued",
        [
            CouponStatus::Issued.into(),
            s.now.into(),
            s.expires_at.into(),
            s.redeemable_from.into(),
            array(&ids).into(),
            array(&customer_ids[..ids.len()]).into(),
            EventKind::Issue.as_str().into(),
        ],
    );
    let mut rows = Vec::with_capacity(ids.len());
    for row in db.query_all_raw(assign).await? {
        let rn: i64 = row.try_get("", "rn")?;
        rows.push((rn, coupons::Model::from_query_result(&row, "")?));
    }
    rows.sort_by_key(|(rn, _)| *rn);
    Ok(rows.into_iter().map(|(_, c)| c).collect())
}
