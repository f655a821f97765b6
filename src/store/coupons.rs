//! Coupon rows: bulk insertion of new codes and pool statistics.

use std::collections::HashSet;

use crate::store::entity::coupons;
use chrono::Utc;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{OnConflict, Query},
};

use crate::domain::{access::PoolAccess, coupon::CouponStatus};

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

/// Refreshes the planner's statistics of the coupons table (PostgreSQL only: SQLite plans
/// these look-ups by index without them). A table without this owner's rights is skipped
/// with a warning, not an error.
pub async fn analyze<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        db.execute_unprepared("ANALYZE coupons").await?;
    }
    Ok(())
}

/// Inserts available codes, skipping any that already exist in the org (in any pool), and
/// returns the codes that went in. One statement, so a concurrent upload of the same code
/// cannot put it in twice.
pub async fn insert_available<C: ConnectionTrait>(
    db: &C,
    new: NewCodes,
    codes: &[impl AsRef<str>],
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
                code.as_ref().into(),
                CouponStatus::Available.into(),
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

/// Which of these codes the org already has as codes of their own (share key 0, the key an
/// uploaded code takes), so an upload can tell a duplicate before deciding on its row.
pub async fn taken_codes<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    codes: &[String],
) -> Result<HashSet<String>, DbErr> {
    let mut taken = HashSet::new();
    for chunk in codes.chunks(1_000) {
        let rows: Vec<String> = coupons::Entity::find()
            .select_only()
            .column(coupons::Column::Code)
            .filter(coupons::Column::OrgId.eq(org_id))
            .filter(coupons::Column::ShareKey.eq(0))
            .filter(coupons::Column::Code.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(db)
            .await?;
        taken.extend(rows);
    }
    Ok(taken)
}

/// Coupon counts of a pool by the status each has now: available or issued coupons past their
/// expiry count as expired before the sweep writes it.
pub async fn count_by_status<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
) -> Result<Vec<(CouponStatus, i64)>, DbErr> {
    let now = Utc::now();
    let mut counts = Vec::new();
    for (expired, when) in [(false, live(now)), (true, lapsed(now))] {
        let rows: Vec<(CouponStatus, i64)> = coupons::Entity::find()
            .select_only()
            .column(coupons::Column::Status)
            .column_as(coupons::Column::Id.count(), "n")
            .filter(coupons::Column::PoolId.eq(pool_id))
            .filter(when)
            .group_by(coupons::Column::Status)
            .into_tuple()
            .all(db)
            .await?;
        for (stored, n) in rows {
            let status = if expired {
                CouponStatus::Expired
            } else {
                stored
            };
            match counts.iter_mut().find(|(s, _)| *s == status) {
                Some((_, total)) => *total += n,
                None => counts.push((status, n)),
            }
        }
    }
    Ok(counts)
}

/// Statuses that lapse into `expired` once the coupon's expiry has passed.
const LAPSING: [CouponStatus; 2] = [CouponStatus::Available, CouponStatus::Issued];

/// Rows whose stored status is what they are now.
fn live(now: chrono::DateTime<Utc>) -> Condition {
    lapsed(now).not()
}

/// Available or issued rows past their expiry: expired now, whatever the row says.
fn lapsed(now: chrono::DateTime<Utc>) -> Condition {
    Condition::all()
        .add(coupons::Column::Status.is_in(LAPSING))
        .add(coupons::Column::ExpiresAt.is_not_null())
        .add(coupons::Column::ExpiresAt.lt(now))
}

/// Rows with this status now.
fn status_now(status: CouponStatus, now: chrono::DateTime<Utc>) -> Condition {
    let stored = Condition::all().add(coupons::Column::Status.eq(status));
    match status {
        CouponStatus::Expired => Condition::any().add(stored).add(lapsed(now)),
        s if LAPSING.contains(&s) => stored.add(live(now)),
        _ => stored,
    }
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
    use crate::store::entity::redemptions;
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

/// A coupon's pool and the time zone of its org, read in the same statement as the coupon:
/// checkout needs all three for every code.
#[derive(Debug, Clone)]
pub struct PoolOf {
    pub pool: crate::store::entity::pools::Model,
    pub timezone: String,
}

impl sea_orm::FromQueryResult for PoolOf {
    fn from_query_result(row: &sea_orm::QueryResult, pre: &str) -> Result<PoolOf, DbErr> {
        Ok(PoolOf {
            pool: crate::store::entity::pools::Model::from_query_result(row, pre)?,
            timezone: row.try_get("", ORG_TIMEZONE)?,
        })
    }
}

const ORG_TIMEZONE: &str = "org_timezone";

/// A coupon row with its pool.
pub type WithPool = (coupons::Model, PoolOf);

/// The rows `query` finds, each with its pool and org time zone, in one statement.
async fn with_pool<C: ConnectionTrait>(
    db: &C,
    query: sea_orm::Select<coupons::Entity>,
) -> Result<Vec<WithPool>, DbErr> {
    use crate::store::entity::{orgs, pools};
    use sea_orm::JoinType;
    let to_pool = coupons::Entity::belongs_to(pools::Entity)
        .from(coupons::Column::PoolId)
        .to(pools::Column::Id)
        .into();
    let to_org = pools::Entity::belongs_to(orgs::Entity)
        .from(pools::Column::OrgId)
        .to(orgs::Column::Id)
        .into();
    let rows = query
        .join(JoinType::InnerJoin, to_pool)
        .join(JoinType::InnerJoin, to_org)
        .select_also(pools::Entity)
        .column_as(orgs::Column::Timezone, ORG_TIMEZONE)
        .into_model::<coupons::Model, PoolOf>()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(coupon, pool)| pool.map(|p| (coupon, p)))
        .collect())
}

/// The org's coupon rows with exactly this code at these share keys (0 for the code itself, a
/// customer id for that customer's copy of a common code).
pub async fn by_code<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    code: &str,
    share_keys: &[i64],
) -> Result<Vec<WithPool>, DbErr> {
    let query = coupons::Entity::find()
        .filter(coupons::Column::OrgId.eq(org_id))
        .filter(coupons::Column::Code.eq(code))
        .filter(coupons::Column::ShareKey.is_in(share_keys.iter().copied()));
    with_pool(db, query).await
}

/// The org's coupon with exactly this code in a pool of unique codes (not a common code), with
/// its pool, its row locked for the caller's transaction; the pool and org rows are not.
pub async fn unique_locked<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    code: &str,
) -> Result<Option<WithPool>, DbErr> {
    use crate::{domain::pool::PoolSource, store::entity::pools};
    use sea_orm::{QueryTrait, sea_query::LockType};
    let mut query = coupons::Entity::find()
        .filter(coupons::Column::OrgId.eq(org_id))
        .filter(coupons::Column::Code.eq(code))
        .filter(coupons::Column::ShareKey.eq(0))
        .filter(pools::Column::Source.ne(PoolSource::Common));
    QueryTrait::query(&mut query).lock_with_tables(LockType::Update, [coupons::Entity]);
    Ok(with_pool(db, query).await?.into_iter().next())
}

/// The coupon row with this id.
pub async fn by_id<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<WithPool>, DbErr> {
    let query = coupons::Entity::find_by_id(id);
    Ok(with_pool(db, query).await?.into_iter().next())
}

/// Most rows a forgiving look-up reads; more than one distinct code is ambiguous anyway.
const LOOKUP_LIMIT: u64 = 16;

/// The org's coupon rows whose code has this forgiving-entry key (`domain::coupon::lookup_key`),
/// through the expression index on it.
pub async fn by_lookup_key<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    key: &str,
    share_keys: &[i64],
) -> Result<Vec<WithPool>, DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    let query = coupons::Entity::find()
        .filter(coupons::Column::OrgId.eq(org_id))
        .filter(Expr::cust(migration::CODE_LOOKUP_KEY).eq(key))
        .filter(coupons::Column::ShareKey.is_in(share_keys.iter().copied()))
        .limit(LOOKUP_LIMIT);
    with_pool(db, query).await
}

/// Which of these forgiving-entry keys some code of the org already has.
pub async fn taken_lookup_keys<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    keys: &[String],
) -> Result<HashSet<String>, DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    let mut taken = HashSet::new();
    for chunk in keys.chunks(1_000) {
        let rows: Vec<String> = coupons::Entity::find()
            .select_only()
            .column_as(Expr::cust(migration::CODE_LOOKUP_KEY), "lookup_key")
            .filter(coupons::Column::OrgId.eq(org_id))
            .filter(Expr::cust(migration::CODE_LOOKUP_KEY).is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(db)
            .await?;
        taken.extend(rows);
    }
    Ok(taken)
}

/// The coupon row, under its lock for the rest of the transaction (PostgreSQL `FOR UPDATE`;
/// SQLite runs one writer at a time).
pub async fn lock<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<coupons::Model>, DbErr> {
    coupons::Entity::find_by_id(id)
        .lock_exclusive()
        .one(db)
        .await
}

/// Writes the fields set in `row` (its id must be set).
pub async fn save<C: ConnectionTrait>(
    db: &C,
    row: coupons::ActiveModel,
) -> Result<coupons::Model, DbErr> {
    use sea_orm::ActiveModelTrait;
    row.update(db).await
}

/// Gives a gift card back what a hold or a redemption took.
pub async fn add_balance<C: ConnectionTrait>(db: &C, id: i64, amount: i64) -> Result<(), DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    coupons::Entity::update_many()
        .col_expr(
            coupons::Column::Balance,
            Expr::col(coupons::Column::Balance).add(amount),
        )
        .filter(coupons::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Where a coupon's redemptions happened, for searching (Capillary: one org entity type at a time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemedAt {
    Store(String),
    Zone(String),
    Concept(String),
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub pool_id: Option<i64>,
    pub status: Option<CouponStatus>,
    pub customer_id: Option<i64>,
    /// Coupons with a confirmed, unreversed redemption there.
    pub redeemed_at: Option<RedeemedAt>,
    /// Only coupons of pools the caller reaches.
    pub access: PoolAccess,
}

/// One page of the org's coupons, newest first, and the total matching.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    filter: &ListFilter,
    page: u64,
    per_page: u64,
) -> Result<(Vec<coupons::Model>, u64), DbErr> {
    use sea_orm::QueryOrder;
    let mut query = coupons::Entity::find()
        .filter(coupons::Column::OrgId.eq(org_id))
        .filter(super::groups::rows_within(
            coupons::Column::PoolId,
            &filter.access,
        ));
    if let Some(id) = filter.pool_id {
        query = query.filter(coupons::Column::PoolId.eq(id));
    }
    if let Some(status) = filter.status {
        query = query.filter(status_now(status, Utc::now()));
    }
    if let Some(id) = filter.customer_id {
        query = query.filter(coupons::Column::CustomerId.eq(id));
    }
    if let Some(place) = &filter.redeemed_at {
        query = query.filter(coupons::Column::Id.in_subquery(redeemed_at(org_id, place)));
    }
    let query = query.order_by_desc(coupons::Column::Id);
    super::page_of(db, query, page, per_page).await
}

fn redeemed_at(org_id: i64, place: &RedeemedAt) -> sea_orm::sea_query::SelectStatement {
    use crate::store::entity::redemptions::Column as R;
    let (column, value) = match place {
        RedeemedAt::Store(v) => (R::StoreId, v),
        RedeemedAt::Zone(v) => (R::Zone, v),
        RedeemedAt::Concept(v) => (R::Concept, v),
    };
    Query::select()
        .column(R::CouponId)
        .from(crate::store::entity::redemptions::Entity)
        .and_where(R::OrgId.eq(org_id))
        .and_where(column.eq(value.as_str()))
        .and_where(R::Active.eq(true))
        .and_where(R::ReservedUntil.is_null())
        .to_owned()
}
