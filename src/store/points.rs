//! The points ledger: signed entries; a customer's balance is their sum.

use chrono::Utc;
use entity::points_ledger;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Set, sea_query::Expr,
};

/// The customer's balance. Read it under the customer's row lock to act on it.
pub async fn balance<C: ConnectionTrait>(db: &C, customer_id: i64) -> Result<i64, DbErr> {
    // PostgreSQL sums bigints into numeric; the cast keeps one integer type on both backends.
    let sum: Option<i64> = points_ledger::Entity::find()
        .select_only()
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(delta), 0) AS BIGINT)"),
            "balance",
        )
        .filter(points_ledger::Column::CustomerId.eq(customer_id))
        .into_tuple()
        .one(db)
        .await?;
    Ok(sum.unwrap_or(0))
}

/// A new entry; the idempotency key is unique within the org.
pub struct Entry<'a> {
    pub org_id: i64,
    pub customer_id: i64,
    pub delta: i64,
    pub reason: &'a str,
    pub idempotency_key: &'a str,
}

pub async fn append<C: ConnectionTrait>(
    db: &C,
    e: Entry<'_>,
) -> Result<points_ledger::Model, DbErr> {
    points_ledger::ActiveModel {
        org_id: Set(e.org_id),
        customer_id: Set(e.customer_id),
        delta: Set(e.delta),
        reason: Set(e.reason.to_string()),
        idempotency_key: Set(Some(e.idempotency_key.to_string())),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
}
