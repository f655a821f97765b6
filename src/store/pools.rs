//! Pools: creation, look-up within an org, listing, edits and code-value updates.

use crate::store::entity::{coupons, orgs, pools};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, ExprTrait},
};

use crate::domain::{
    access::PoolAccess,
    coupon::CouponStatus,
    discount::DiscountType,
    pool::{PoolSource, PoolState, UpdateCriterion},
};

pub async fn insert<C: ConnectionTrait>(
    db: &C,
    mut row: pools::ActiveModel,
) -> Result<pools::Model, DbErr> {
    let now = Utc::now();
    row.created_at = Set(now);
    row.updated_at = Set(now);
    row.insert(db).await
}

/// The org's pool with this id; another org's pool is as absent as a missing one.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: i64,
) -> Result<Option<pools::Model>, DbErr> {
    pools::Entity::find_by_id(id)
        .filter(pools::Column::OrgId.eq(org_id))
        .one(db)
        .await
}

/// The org's pool with this id and the org, in one statement: issuing needs both before its
/// transaction opens.
pub async fn get_with_org<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: i64,
) -> Result<Option<(pools::Model, orgs::Model)>, DbErr> {
    let of_org = pools::Entity::belongs_to(orgs::Entity)
        .from(pools::Column::OrgId)
        .to(orgs::Column::Id)
        .into();
    let found = pools::Entity::find_by_id(id)
        .filter(pools::Column::OrgId.eq(org_id))
        .join(JoinType::InnerJoin, of_org)
        .select_also(orgs::Entity)
        .one(db)
        .await?;
    Ok(found.and_then(|(pool, org)| Some((pool, org?))))
}

#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub state: Option<PoolState>,
    pub source: Option<PoolSource>,
    pub discount_type: Option<DiscountType>,
    pub include_archived: bool,
    pub claimed: Option<bool>,
    /// Only pools the caller reaches.
    pub access: PoolAccess,
}

/// One page of the org's pools, newest first, and the total matching.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    filter: &ListFilter,
    page: u64,
    per_page: u64,
) -> Result<(Vec<pools::Model>, u64), DbErr> {
    let mut cond = Condition::all()
        .add(pools::Column::OrgId.eq(org_id))
        .add(super::groups::pools_within(&filter.access));
    match filter.state {
        Some(state) => cond = cond.add(pools::Column::State.eq(state)),
        None if !filter.include_archived => {
            cond = cond.add(pools::Column::State.ne(PoolState::Archived))
        }
        None => {}
    }
    if let Some(source) = filter.source {
        cond = cond.add(pools::Column::Source.eq(source));
    }
    if let Some(kind) = filter.discount_type {
        cond = cond.add(pools::Column::DiscountType.eq(kind));
    }
    if let Some(claimed) = filter.claimed {
        cond = cond.add(pools::Column::Claimed.eq(claimed));
    }
    let query = pools::Entity::find()
        .filter(cond)
        .order_by_desc(pools::Column::Id);
    super::page_of(db, query, page, per_page).await
}

pub async fn save<C: ConnectionTrait>(
    db: &C,
    mut row: pools::ActiveModel,
) -> Result<pools::Model, DbErr> {
    row.updated_at = Set(Utc::now());
    row.update(db).await
}

/// Whether any coupon exists in the pool (source and pattern are frozen from then on).
pub async fn has_codes<C: ConnectionTrait>(db: &C, pool_id: i64) -> Result<bool, DbErr> {
    let any = coupons::Entity::find()
        .select_only()
        .column(coupons::Column::Id)
        .filter(coupons::Column::PoolId.eq(pool_id))
        .limit(1)
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(any.is_some())
}

/// Applies a new pool value to existing coupons as the criterion says, optionally only to those
/// still carrying the old value; returns how many changed. Gift cards nobody has spent from get
/// the new balance too.
pub async fn apply_value<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    new_value: Option<i64>,
    criterion: UpdateCriterion,
    match_old: Option<Option<i64>>,
    gift_card: bool,
) -> Result<u64, DbErr> {
    let statuses: &[CouponStatus] = match criterion {
        UpdateCriterion::None => return Ok(0),
        UpdateCriterion::Unassigned => &[CouponStatus::Available],
        UpdateCriterion::NotRedeemed => &[CouponStatus::Available, CouponStatus::Issued],
        UpdateCriterion::All => &CouponStatus::ALL,
    };
    let mut cond = Condition::all()
        .add(coupons::Column::PoolId.eq(pool_id))
        .add(coupons::Column::Status.is_in(statuses.iter().copied()));
    if let Some(old) = match_old {
        cond = cond.add(match old {
            Some(v) => coupons::Column::Value.eq(v),
            None => coupons::Column::Value.is_null(),
        });
    }
    let mut update =
        coupons::Entity::update_many().col_expr(coupons::Column::Value, Expr::value(new_value));
    if gift_card {
        // An untouched card (balance still equal to its value) follows the new value.
        update = update.col_expr(
            coupons::Column::Balance,
            Expr::case(
                Expr::col(coupons::Column::Balance).eq(Expr::col(coupons::Column::Value)),
                Expr::value(new_value),
            )
            .finally(Expr::col(coupons::Column::Balance))
            .into(),
        );
    }
    Ok(update.filter(cond).exec(db).await?.rows_affected)
}

/// Where the pool's code generator stands.
pub async fn generator_cursor<C: ConnectionTrait>(db: &C, pool_id: i64) -> Result<u64, DbErr> {
    let cursor: Option<i64> = pools::Entity::find_by_id(pool_id)
        .select_only()
        .column(pools::Column::GeneratedCount)
        .into_tuple()
        .one(db)
        .await?;
    Ok(cursor.unwrap_or(0) as u64)
}

/// Moves the generator cursor from `from` to `to`; false when another writer moved it first.
pub async fn advance_generator_cursor<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    from: u64,
    to: u64,
) -> Result<bool, DbErr> {
    let result = pools::Entity::update_many()
        .col_expr(pools::Column::GeneratedCount, Expr::value(to as i64))
        .filter(pools::Column::Id.eq(pool_id))
        .filter(pools::Column::GeneratedCount.eq(from as i64))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Reserves `count` codes of generation for a job, if the pool's reservations (or its cursor,
/// which minting at issue time also moves) leave room under `capacity`; false when they do
/// not. One conditional UPDATE, so concurrent requests cannot together pass the cap.
pub async fn reserve_generation<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    count: u64,
    capacity: u64,
) -> Result<bool, DbErr> {
    let taken = Expr::case(
        Expr::col(pools::Column::GeneratedCount).gt(Expr::col(pools::Column::GenerationReserved)),
        Expr::col(pools::Column::GeneratedCount),
    )
    .finally(Expr::col(pools::Column::GenerationReserved));
    let after = Expr::expr(taken).add(count as i64);
    let result = pools::Entity::update_many()
        .col_expr(pools::Column::GenerationReserved, after.clone())
        .filter(pools::Column::Id.eq(pool_id))
        .filter(after.lte(capacity as i64))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Gives back the part of a reservation a job did not make.
pub async fn release_generation<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    unused: u64,
) -> Result<(), DbErr> {
    pools::Entity::update_many()
        .col_expr(
            pools::Column::GenerationReserved,
            Expr::col(pools::Column::GenerationReserved).sub(unused as i64),
        )
        .filter(pools::Column::Id.eq(pool_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Sets the series counter to the coupons of the pool ever issued (those with an issue date).
pub async fn recount_issued<C: ConnectionTrait>(db: &C, pool_id: i64) -> Result<(), DbErr> {
    let issued = coupons::Entity::find()
        .filter(coupons::Column::PoolId.eq(pool_id))
        .filter(coupons::Column::IssuedAt.is_not_null())
        .count(db)
        .await?;
    pools::Entity::update_many()
        .col_expr(pools::Column::IssuedCount, Expr::value(issued as i64))
        .filter(pools::Column::Id.eq(pool_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Claims the pool for workflows, or withdraws it.
pub async fn set_claimed<C: ConnectionTrait>(
    db: &C,
    pool: pools::Model,
    claimed: bool,
) -> Result<pools::Model, DbErr> {
    let mut row: pools::ActiveModel = pool.into();
    row.claimed = Set(claimed);
    save(db, row).await
}

/// The org's live pools that have a pattern (generated, bulk, common and randomized common).
pub async fn with_pattern<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
) -> Result<Vec<pools::Model>, DbErr> {
    pools::Entity::find()
        .filter(pools::Column::OrgId.eq(org_id))
        .filter(pools::Column::Pattern.is_not_null())
        .filter(pools::Column::State.ne(PoolState::Archived))
        .all(db)
        .await
}
