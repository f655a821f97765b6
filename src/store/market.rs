//! The loyalty market's tables: coupon products and the exchanges made for them. A product has
//! no stock column: its stock is read from its pool's coupons.

use std::collections::HashMap;

use crate::store::entity::{coupons, market_exchanges, market_products};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, ExprTrait, Query},
};

use crate::domain::{access::PoolAccess, coupon::CouponStatus};

pub async fn insert_product<C: ConnectionTrait>(
    db: &C,
    mut row: market_products::ActiveModel,
) -> Result<market_products::Model, DbErr> {
    row.created_at = Set(Utc::now());
    row.insert(db).await
}

pub async fn save_product<C: ConnectionTrait>(
    db: &C,
    row: market_products::ActiveModel,
) -> Result<market_products::Model, DbErr> {
    row.update(db).await
}

/// The org's product; another org's is as absent as a missing one.
pub async fn product<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    id: i64,
) -> Result<Option<market_products::Model>, DbErr> {
    market_products::Entity::find_by_id(id)
        .filter(market_products::Column::OrgId.eq(org_id))
        .one(db)
        .await
}

/// Which products a listing scans.
#[derive(Debug, Clone)]
pub struct ProductScan<'a> {
    pub category: Option<&'a str>,
    pub after_id: Option<i64>,
    pub include_archived: bool,
    /// Only products of pools the caller reaches.
    pub access: &'a PoolAccess,
}

/// Up to `limit` of the org's products in id order, after the scan's cursor.
pub async fn products<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    scan: &ProductScan<'_>,
    limit: u64,
) -> Result<Vec<market_products::Model>, DbErr> {
    use market_products::Column as P;
    let mut q = market_products::Entity::find()
        .filter(P::OrgId.eq(org_id))
        .filter(super::groups::rows_within(P::PoolId, scan.access))
        .order_by_asc(P::Id)
        .limit(limit);
    if let Some(c) = scan.category {
        q = q.filter(P::Category.eq(c));
    }
    if let Some(after) = scan.after_id {
        q = q.filter(P::Id.gt(after));
    }
    if !scan.include_archived {
        q = q.filter(P::Archived.eq(false));
    }
    q.all(db).await
}

/// Available coupons per pool, for these pools.
pub async fn available_counts<C: ConnectionTrait>(
    db: &C,
    pool_ids: &[i64],
) -> Result<HashMap<i64, i64>, DbErr> {
    if pool_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, i64)> = coupons::Entity::find()
        .select_only()
        .column(coupons::Column::PoolId)
        .column_as(coupons::Column::Id.count(), "n")
        .filter(coupons::Column::PoolId.is_in(pool_ids.iter().copied()))
        .filter(coupons::Column::Status.eq(CouponStatus::Available))
        .group_by(coupons::Column::PoolId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

pub struct NewExchange {
    pub org_id: i64,
    pub product_id: i64,
    pub customer_id: i64,
    pub coupon_id: i64,
    pub points: i64,
    pub now: DateTime<Utc>,
}

pub async fn insert_exchange<C: ConnectionTrait>(
    db: &C,
    e: NewExchange,
) -> Result<market_exchanges::Model, DbErr> {
    market_exchanges::ActiveModel {
        org_id: Set(e.org_id),
        product_id: Set(e.product_id),
        customer_id: Set(e.customer_id),
        coupon_id: Set(e.coupon_id),
        points: Set(e.points),
        refunded_at: Set(None),
        created_at: Set(e.now),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// How many of the product the customer holds from exchanges not refunded.
pub async fn exchanges_held<C: ConnectionTrait>(
    db: &C,
    product_id: i64,
    customer_id: i64,
) -> Result<u64, DbErr> {
    market_exchanges::Entity::find()
        .filter(market_exchanges::Column::ProductId.eq(product_id))
        .filter(market_exchanges::Column::CustomerId.eq(customer_id))
        .filter(market_exchanges::Column::RefundedAt.is_null())
        .count(db)
        .await
}

/// An exchange with the product's name and the coupon's code, for a customer's history.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ExchangeLine {
    pub id: i64,
    pub product_id: i64,
    pub product_name: String,
    pub coupon_id: i64,
    pub code: String,
    pub points: i64,
    pub refunded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The customer's exchanges, newest first, older than `before` when given.
pub async fn exchanges_of<C: ConnectionTrait>(
    db: &C,
    customer_id: i64,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<ExchangeLine>, DbErr> {
    use market_exchanges::Column as X;
    let mut q = market_exchanges::Entity::find()
        .select_only()
        .columns([
            X::Id,
            X::ProductId,
            X::CouponId,
            X::Points,
            X::RefundedAt,
            X::CreatedAt,
        ])
        .column_as(
            Expr::col((market_products::Entity, market_products::Column::Name)),
            "product_name",
        )
        .column_as(Expr::col((coupons::Entity, coupons::Column::Code)), "code")
        .join_as(
            sea_orm::JoinType::InnerJoin,
            market_exchanges::Entity::belongs_to(market_products::Entity)
                .from(X::ProductId)
                .to(market_products::Column::Id)
                .into(),
            market_products::Entity,
        )
        .join_as(
            sea_orm::JoinType::InnerJoin,
            market_exchanges::Entity::belongs_to(coupons::Entity)
                .from(X::CouponId)
                .to(coupons::Column::Id)
                .into(),
            coupons::Entity,
        )
        .filter(X::CustomerId.eq(customer_id))
        .order_by_desc(X::Id)
        .limit(limit);
    if let Some(id) = before {
        q = q.filter(X::Id.lt(id));
    }
    q.into_model::<ExchangeLine>().all(db).await
}

/// Marks refunded, once, the exchanges of these coupons whose product refunds on revoke, and
/// returns them. The `refunded_at IS NULL` condition makes a second call find nothing.
pub async fn mark_refunded<C: ConnectionTrait>(
    db: &C,
    coupon_ids: &[i64],
    now: DateTime<Utc>,
) -> Result<Vec<market_exchanges::Model>, DbErr> {
    use market_exchanges::Column as X;
    let refunding = Query::select()
        .column(market_products::Column::Id)
        .from(market_products::Entity)
        .and_where(market_products::Column::RefundOnRevoke.eq(true))
        .to_owned();
    let mut update = Query::update();
    update
        .table(market_exchanges::Entity)
        .value(X::RefundedAt, now)
        .and_where(X::CouponId.is_in(coupon_ids.iter().copied()))
        .and_where(X::RefundedAt.is_null())
        .and_where(Expr::col(X::ProductId).in_subquery(refunding))
        .returning_all();
    db.query_all(&update)
        .await?
        .iter()
        .map(|row| market_exchanges::Model::from_query_result(row, ""))
        .collect()
}
