//! Revoking coupons (Capillary's "Revoke coupons"): set-based, a bounded batch per statement,
//! each issued coupon's `coupon_revoke` event written in the same transaction.

use crate::store::entity::{coupon_events, coupons};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, Set,
    sea_query::{Expr, ExprTrait, LockType, Order, Query},
};

use crate::{domain::coupon::CouponStatus, store::events::EventKind};

/// Coupons a revocation batch takes: one status of one pool, optionally only these holders'.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub pool_id: i64,
    /// `Issued` or `Available`; redeemed, expired and invalidated coupons are never revoked.
    pub status: CouponStatus,
    pub customers: Option<&'a [i64]>,
}

/// Revokes up to `limit` coupons of the target in one statement and returns them, now revoked.
/// On PostgreSQL the rows are locked (`FOR UPDATE`), so a coupon redeemed meanwhile is left
/// alone; SQLite runs one writer at a time.
pub async fn revoke_batch<C: ConnectionTrait>(
    db: &C,
    t: Target<'_>,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<Vec<coupons::Model>, DbErr> {
    let mut pick = Query::select();
    pick.column(coupons::Column::Id)
        .from(coupons::Entity)
        .and_where(coupons::Column::PoolId.eq(t.pool_id))
        .and_where(coupons::Column::Status.eq(t.status))
        .order_by(coupons::Column::Id, Order::Asc)
        .limit(limit);
    if let Some(ids) = t.customers {
        pick.and_where(coupons::Column::CustomerId.is_in(ids.iter().copied()));
    }
    if db.get_database_backend() == DbBackend::Postgres {
        pick.lock(LockType::Update);
    }
    let mut update = Query::update();
    update
        .table(coupons::Entity)
        .values([
            (coupons::Column::Status, CouponStatus::Revoked.into()),
            (coupons::Column::LastStatusChangeAt, now.into()),
        ])
        .and_where(Expr::col(coupons::Column::Id).in_subquery(pick))
        .and_where(coupons::Column::Status.eq(t.status))
        .returning_all();
    let revoked = db
        .query_all(&update)
        .await?
        .iter()
        .map(|row| coupons::Model::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()?;
    if t.status == CouponStatus::Issued {
        record_events(db, &revoked, now).await?;
    }
    Ok(revoked)
}

/// One `coupon_revoke` event per revoked coupon, for its holder.
async fn record_events<C: ConnectionTrait>(
    db: &C,
    revoked: &[coupons::Model],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if revoked.is_empty() {
        return Ok(());
    }
    let rows = revoked.iter().map(|c| coupon_events::ActiveModel {
        org_id: Set(c.org_id),
        coupon_id: Set(c.id),
        pool_id: Set(c.pool_id),
        customer_id: Set(c.customer_id),
        kind: Set(EventKind::Revoke),
        detail: Set(None),
        created_at: Set(now),
        ..Default::default()
    });
    coupon_events::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}
