//! Redemption rows, holds and the pool's series counter. Functions that change them run inside
//! the redeeming transaction, after the locks the service takes in its fixed order (customer,
//! pool counter, coupon rows).

use crate::store::entity::{pools, redemptions};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, ExprTrait, Func},
};

use crate::domain::{discount::Discount, redemption::StoreFacts};

/// A redemption or hold about to be recorded.
#[derive(Debug, Clone)]
pub struct NewRedemption<'a> {
    pub org_id: i64,
    pub coupon_id: i64,
    pub pool_id: i64,
    pub customer_id: Option<i64>,
    pub store: &'a StoreFacts,
    pub basket_total: i64,
    /// The basket's currency.
    pub currency: Option<&'a str>,
    pub discount: &'a Discount,
    /// The purchase time the till sent.
    pub redeemed_at: DateTime<Utc>,
    /// The server's time.
    pub recorded_at: DateTime<Utc>,
    /// Set for a hold, for good: confirming clears it, releasing keeps it.
    pub reserved_until: Option<DateTime<Utc>>,
}

pub async fn insert<C: ConnectionTrait>(
    db: &C,
    new: NewRedemption<'_>,
) -> Result<redemptions::Model, DbErr> {
    let conversion = new.discount.conversion.as_ref();
    redemptions::ActiveModel {
        org_id: Set(new.org_id),
        coupon_id: Set(new.coupon_id),
        pool_id: Set(new.pool_id),
        customer_id: Set(new.customer_id),
        store_id: Set(new.store.id.clone()),
        zone: Set(new.store.zone.clone()),
        concept: Set(new.store.concept.clone()),
        till: Set(new.store.till.clone()),
        basket_total: Set(new.basket_total),
        currency: Set(new.currency.map(str::to_string)),
        discount: Set(new.discount.amount),
        active: Set(true),
        reserved_until: Set(new.reserved_until),
        redeemed_at: Set(new.redeemed_at),
        recorded_at: Set(Some(new.recorded_at)),
        reversed_at: Set(None),
        detail: Set(Some(new.discount.clone())),
        coupon_currency: Set(conversion.map(|c| c.from.clone())),
        coupon_amount: Set(conversion.map(|c| c.value)),
        exchange_rate: Set(conversion.map(|c| c.rate.clone())),
        rate_effective_at: Set(conversion.map(|c| c.effective_at)),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// What a gift card redemption took off the card's balance, in the card's currency: the
/// converted-back amount when it was paid in another currency, else its discount.
pub fn card_debit(row: &redemptions::Model) -> i64 {
    row.coupon_amount.unwrap_or(row.discount)
}

/// [`card_debit`] summed, from `(discount, coupon_amount)` columns.
fn debits(rows: impl IntoIterator<Item = (i64, Option<i64>)>) -> i64 {
    rows.into_iter()
        .map(|(discount, coupon_amount)| coupon_amount.unwrap_or(discount))
        .sum()
}

/// The org's redemption with this id; another org's is as absent as a missing one.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: i64,
) -> Result<Option<redemptions::Model>, DbErr> {
    redemptions::Entity::find_by_id(id)
        .filter(redemptions::Column::OrgId.eq(org_id))
        .one(db)
        .await
}

/// What a count covers: one coupon row, or a whole pool (a common code is its pool's only code,
/// spread over its customers' copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Coupon(i64),
    Pool(i64),
}

impl Scope {
    fn condition(self) -> Condition {
        match self {
            Scope::Coupon(id) => Condition::all().add(redemptions::Column::CouponId.eq(id)),
            Scope::Pool(id) => Condition::all().add(redemptions::Column::PoolId.eq(id)),
        }
    }
}

/// Which active redemptions count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Confirmed ones and holds that have not run out at this instant: what limits count.
    Live(DateTime<Utc>),
    /// Confirmed ones only: what uses a coupon up.
    Confirmed,
}

impl Counting {
    fn condition(self) -> Condition {
        let base = Condition::all().add(redemptions::Column::Active.eq(true));
        match self {
            Counting::Live(now) => base.add(live_at(now)),
            Counting::Confirmed => base.add(redemptions::Column::ReservedUntil.is_null()),
        }
    }
}

fn live_at(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(redemptions::Column::ReservedUntil.is_null())
        .add(redemptions::Column::ReservedUntil.gt(now))
}

/// Active redemptions in `scope`, by `customer` if given.
pub async fn count<C: ConnectionTrait>(
    db: &C,
    scope: Scope,
    customer: Option<i64>,
    counting: Counting,
) -> Result<u64, DbErr> {
    let mut query = redemptions::Entity::find()
        .filter(scope.condition())
        .filter(counting.condition());
    if let Some(id) = customer {
        query = query.filter(redemptions::Column::CustomerId.eq(id));
    }
    query.count(db).await
}

/// Active redemptions in `scope`, and how many of them are `customer`'s, in one statement, for
/// pools that limit both.
pub async fn count_with_customer<C: ConnectionTrait>(
    db: &C,
    scope: Scope,
    customer: i64,
    counting: Counting,
) -> Result<(u64, u64), DbErr> {
    let theirs = Expr::case(redemptions::Column::CustomerId.eq(customer), 1);
    let counts: Option<(i64, i64)> = redemptions::Entity::find()
        .select_only()
        .column_as(
            Expr::from(Func::count(Expr::col(redemptions::Column::Id))),
            "all",
        )
        .column_as(Expr::from(Func::count(theirs)), "theirs")
        .filter(scope.condition())
        .filter(counting.condition())
        .into_tuple()
        .one(db)
        .await?;
    let (all, theirs) = counts.unwrap_or_default();
    Ok((
        u64::try_from(all).unwrap_or(0),
        u64::try_from(theirs).unwrap_or(0),
    ))
}

/// When the customer last redeemed from the pool (live holds included).
pub async fn last_live_at<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    customer_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    redemptions::Entity::find()
        .select_only()
        .column(redemptions::Column::RedeemedAt)
        .filter(redemptions::Column::PoolId.eq(pool_id))
        .filter(redemptions::Column::CustomerId.eq(customer_id))
        .filter(Counting::Live(now).condition())
        .order_by_desc(redemptions::Column::RedeemedAt)
        .limit(1)
        .into_tuple()
        .one(db)
        .await
}

fn run_out(scope: Scope, now: DateTime<Utc>) -> Condition {
    scope
        .condition()
        .add(redemptions::Column::Active.eq(true))
        .add(redemptions::Column::ReservedUntil.lte(now))
}

/// Closes the holds in `scope` that ran out by `now` and returns them, so the caller can give
/// back what they held (gift card balance, the series counter). Needs the coupon rows' locks
/// (and the pool counter's, for a pool).
pub async fn expire_holds<C: ConnectionTrait>(
    db: &C,
    scope: Scope,
    now: DateTime<Utc>,
) -> Result<Vec<redemptions::Model>, DbErr> {
    redemptions::Entity::update_many()
        .col_expr(redemptions::Column::Active, Expr::value(false))
        .col_expr(redemptions::Column::ReversedAt, Expr::value(now))
        .filter(run_out(scope, now))
        .exec_with_returning(db)
        .await
}

/// What the holds on a coupon that ran out but were not closed yet still keep off its gift card
/// balance; a dry run adds it back instead of closing them.
pub async fn run_out_total<C: ConnectionTrait>(
    db: &C,
    coupon_id: i64,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let amounts: Vec<(i64, Option<i64>)> = redemptions::Entity::find()
        .select_only()
        .column(redemptions::Column::Discount)
        .column(redemptions::Column::CouponAmount)
        .filter(run_out(Scope::Coupon(coupon_id), now))
        .into_tuple()
        .all(db)
        .await?;
    Ok(debits(amounts))
}

/// [`run_out_total`] for many coupons at once, for reads: coupon id to what its lapsed holds
/// still keep off the balance (coupons without any are left out).
pub async fn run_out_totals<C: ConnectionTrait>(
    db: &C,
    coupon_ids: &[i64],
    now: DateTime<Utc>,
) -> Result<std::collections::HashMap<i64, i64>, DbErr> {
    let rows: Vec<(i64, i64, Option<i64>)> = redemptions::Entity::find()
        .select_only()
        .column(redemptions::Column::CouponId)
        .column(redemptions::Column::Discount)
        .column(redemptions::Column::CouponAmount)
        .filter(redemptions::Column::CouponId.is_in(coupon_ids.iter().copied()))
        .filter(redemptions::Column::Active.eq(true))
        .filter(redemptions::Column::ReservedUntil.lte(now))
        .into_tuple()
        .all(db)
        .await?;
    let mut totals = std::collections::HashMap::new();
    for (coupon_id, discount, coupon_amount) in rows {
        *totals.entry(coupon_id).or_insert(0) += debits([(discount, coupon_amount)]);
    }
    Ok(totals)
}

/// Held redemptions in a pool that ran out but were not closed yet.
pub async fn run_out_count<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    redemptions::Entity::find()
        .filter(run_out(Scope::Pool(pool_id), now))
        .count(db)
        .await
}

/// Ends a redemption or a hold: reversed, released or run out.
pub async fn close<C: ConnectionTrait>(
    db: &C,
    id: i64,
    now: DateTime<Utc>,
) -> Result<redemptions::Model, DbErr> {
    redemptions::ActiveModel {
        id: Set(id),
        active: Set(false),
        reversed_at: Set(Some(now)),
        ..Default::default()
    }
    .update(db)
    .await
}

/// Turns a hold into a redemption.
pub async fn confirm<C: ConnectionTrait>(db: &C, id: i64) -> Result<redemptions::Model, DbErr> {
    redemptions::ActiveModel {
        id: Set(id),
        reserved_until: Set(None),
        ..Default::default()
    }
    .update(db)
    .await
}

/// Takes the pool row's lock and reads its series counter.
pub async fn lock_counter<C: ConnectionTrait>(db: &C, pool_id: i64) -> Result<u64, DbErr> {
    let n: Option<i64> = pools::Entity::find_by_id(pool_id)
        .select_only()
        .column(pools::Column::RedeemedCount)
        .lock_exclusive()
        .into_tuple()
        .one(db)
        .await?;
    n.map(|n| u64::try_from(n).unwrap_or(0))
        .ok_or_else(|| DbErr::RecordNotFound(format!("pool {pool_id}")))
}

/// The series counter without a lock, for a dry run.
pub async fn read_counter<C: ConnectionTrait>(db: &C, pool_id: i64) -> Result<u64, DbErr> {
    let n: Option<i64> = pools::Entity::find_by_id(pool_id)
        .select_only()
        .column(pools::Column::RedeemedCount)
        .into_tuple()
        .one(db)
        .await?;
    Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
}

pub async fn add_to_counter<C: ConnectionTrait>(
    db: &C,
    pool_id: i64,
    delta: i64,
) -> Result<(), DbErr> {
    pools::Entity::update_many()
        .col_expr(
            pools::Column::RedeemedCount,
            Expr::col(pools::Column::RedeemedCount).add(delta),
        )
        .filter(pools::Column::Id.eq(pool_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Sets the series counter from the rows, when a pool gets a series limit it did not keep the
/// counter for. Runs in the transaction that saves the pool, which holds the pool row's lock.
pub async fn recount<C: ConnectionTrait>(db: &C, pool_id: i64) -> Result<(), DbErr> {
    let active = redemptions::Entity::find()
        .filter(redemptions::Column::PoolId.eq(pool_id))
        .filter(redemptions::Column::Active.eq(true))
        .count(db)
        .await?;
    pools::Entity::update_many()
        .col_expr(pools::Column::RedeemedCount, Expr::value(active as i64))
        .filter(pools::Column::Id.eq(pool_id))
        .exec(db)
        .await?;
    Ok(())
}
