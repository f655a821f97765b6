//! The points ledger: signed entries; a customer's balance is their sum.

use crate::store::entity::{points_balances, points_ledger};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement, sea_query::Expr,
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
    pub reference: Option<&'a str>,
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
        reference: Set(e.reference.map(str::to_string)),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// Moves the customer's cached balance by `delta` in one statement, unless that would take it
/// below zero: the new balance, or None (nothing changed). A debit is a conditional UPDATE, so
/// concurrent debits can never overdraw; a credit creates the row on first use.
pub async fn move_balance<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    customer_id: i64,
    delta: i64,
) -> Result<Option<i64>, DbErr> {
    let backend = db.get_database_backend();
    let stmt = if delta > 0 {
        Statement::from_sql_and_values(
            backend,
            "INSERT INTO points_balances (customer_id, org_id, balance) VALUES ($1, $2, $3) \
             ON CONFLICT (customer_id) DO UPDATE SET balance = points_balances.balance + excluded.balance \
             RETURNING balance",
            [customer_id.into(), org_id.into(), delta.into()],
        )
    } else {
        Statement::from_sql_and_values(
            backend,
            "UPDATE points_balances SET balance = balance + $1 \
             WHERE customer_id = $2 AND balance + $1 >= 0 RETURNING balance",
            [delta.into(), customer_id.into()],
        )
    };
    match db.query_one_raw(stmt).await? {
        Some(row) => Ok(Some(row.try_get::<i64>("", "balance")?)),
        None => Ok(None),
    }
}

/// The cached balance (zero for a customer who never had points).
pub async fn cached_balance<C: ConnectionTrait>(db: &C, customer_id: i64) -> Result<i64, DbErr> {
    Ok(points_balances::Entity::find_by_id(customer_id)
        .one(db)
        .await?
        .map_or(0, |b| b.balance))
}

/// The customer's entries, newest first, older than `before` when given.
pub async fn entries<C: ConnectionTrait>(
    db: &C,
    customer_id: i64,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<points_ledger::Model>, DbErr> {
    let mut q = points_ledger::Entity::find()
        .filter(points_ledger::Column::CustomerId.eq(customer_id))
        .order_by_desc(points_ledger::Column::Id)
        .limit(limit);
    if let Some(id) = before {
        q = q.filter(points_ledger::Column::Id.lt(id));
    }
    q.all(db).await
}
