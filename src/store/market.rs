//! The loyalty market's tables: coupon products and the exchanges made for them. A product has
//! no stock column: its stock is read from its pool's coupons.

use std::collections::HashMap;

use crate::store::entity::{coupons, market_exchanges, market_products};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
    sea_query::{Expr, ExprTrait, Query},
};

use super::{events::EventKind, idempotency::Keyed, issuance::Stamp};
use crate::domain::{access::PoolAccess, coupon::CouponStatus, webhook::WebhookEvent};

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

/// What [`pay_and_claim`] did.
#[derive(Debug, Clone)]
pub enum Payment {
    /// The balance is below the price (or the customer never had points): nothing changed.
    Refused,
    /// The price was debited: the balance after it, and the code claimed, or None when the pool
    /// had no code available (the caller mints one or rolls back).
    Debited {
        balance: i64,
        coupon: Option<coupons::Model>,
    },
}

/// Debits `price` from the customer's balance, unless that would take it below zero, and then
/// hands the pool's next available code to the customer, as
/// [`super::issuance::claim_available`] does. On PostgreSQL one statement: the claim's locking
/// subquery reads the debit's result, so no code is locked before the debit is done (one
/// customer's concurrent exchanges queue on their balance row holding no code) and none when it
/// is refused. SQLite runs the two statements in turn.
pub async fn pay_and_claim<C: ConnectionTrait>(
    db: &C,
    (org_id, customer_id): (i64, i64),
    price: i64,
    pool_id: i64,
    s: Stamp,
) -> Result<Payment, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        let Some(balance) = super::points::move_balance(db, org_id, customer_id, -price).await?
        else {
            return Ok(Payment::Refused);
        };
        let coupon = super::issuance::claim_available(db, pool_id, s).await?;
        return Ok(Payment::Debited { balance, coupon });
    }
    let sql = "WITH d AS ( \
            UPDATE points_balances SET balance = balance - $1 \
            WHERE customer_id = $2 AND balance >= $1 RETURNING balance \
        ), c AS ( \
            UPDATE coupons SET status = $3, customer_id = $2, issued_at = $4, expires_at = $5, \
                redeemable_from = $6, last_status_change_at = $4 \
            WHERE id = (SELECT id FROM coupons \
                WHERE pool_id = $7 AND status = $8 AND EXISTS (SELECT 1 FROM d) \
                ORDER BY code LIMIT 1 FOR UPDATE SKIP LOCKED) \
            RETURNING coupons.* \
        ) \
        SELECT d.balance AS paid_balance, c.* FROM d LEFT JOIN c ON true";
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [
            price.into(),
            customer_id.into(),
            CouponStatus::Issued.into(),
            s.now.into(),
            s.expires_at.into(),
            s.redeemable_from.into(),
            pool_id.into(),
            CouponStatus::Available.into(),
        ],
    );
    let Some(row) = db.query_one_raw(stmt).await? else {
        return Ok(Payment::Refused);
    };
    let coupon = match row.try_get::<Option<i64>>("", "id")? {
        Some(_) => Some(coupons::Model::from_query_result(&row, "")?),
        None => None,
    };
    Ok(Payment::Debited {
        balance: row.try_get("", "paid_balance")?,
        coupon,
    })
}

/// The rows of one exchange, written together once its code is claimed and its price debited:
/// the exchange, its ledger entry, the coupon's `coupon_issue` event and the idempotency key
/// with the receipt.
pub struct NewExchange<'a> {
    pub org_id: i64,
    pub product_id: i64,
    pub customer_id: i64,
    pub coupon: &'a coupons::Model,
    pub points: i64,
    /// The ledger entry's reason.
    pub reason: &'a str,
    pub now: DateTime<Utc>,
    pub keyed: &'a Keyed,
    /// The receipt stored for retries; its `exchange_id` is set to the new row's id.
    pub receipt: serde_json::Value,
    /// The webhook event whose subscriptions are read with the rows.
    pub event: WebhookEvent,
}

/// What [`record_exchange`] wrote and read.
#[derive(Debug, Clone)]
pub struct RecordedExchange {
    pub exchange_id: i64,
    /// The org's subscriptions to the event.
    pub subscribed: Vec<i64>,
}

/// Writes an exchange's rows and reads the org's subscriptions to its event: one statement on
/// PostgreSQL (data-modifying CTEs), five on SQLite, which has none. The ledger entry's
/// reference and key are `exchange:<id>`. A unique violation means the idempotency key was
/// recorded first by another request.
pub async fn record_exchange<C: ConnectionTrait>(
    db: &C,
    e: NewExchange<'_>,
) -> Result<RecordedExchange, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return record_exchange_stepwise(db, e).await;
    }
    let sql = "WITH x AS ( \
            INSERT INTO market_exchanges (org_id, product_id, customer_id, coupon_id, points, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING id \
        ), l AS ( \
            INSERT INTO points_ledger (org_id, customer_id, delta, reason, idempotency_key, reference, created_at) \
            SELECT $1, $3, $7, $8, 'exchange:' || x.id, 'exchange:' || x.id, $6 FROM x \
        ), e AS ( \
            INSERT INTO coupon_events (org_id, coupon_id, pool_id, customer_id, kind, created_at) \
            VALUES ($1, $4, $9, $3, $10, $6) \
        ), k AS ( \
            INSERT INTO idempotency_keys (org_id, operation, key, request_hash, status, response, created_at) \
            SELECT $1, $11, $12, $13, 201, \
                CAST(CAST($14 AS jsonb) || jsonb_build_object('exchange_id', x.id) AS json), $6 FROM x \
        ) \
        SELECT x.id, w.id AS webhook_id FROM x \
        LEFT JOIN webhooks w ON w.org_id = $1 \
            AND CAST(w.events AS jsonb) @> jsonb_build_array(CAST($15 AS text)) \
        ORDER BY w.id";
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [
            e.org_id.into(),
            e.product_id.into(),
            e.customer_id.into(),
            e.coupon.id.into(),
            e.points.into(),
            e.now.into(),
            (-e.points).into(),
            e.reason.into(),
            e.coupon.pool_id.into(),
            EventKind::Issue.as_str().into(),
            e.keyed.operation.into(),
            e.keyed.key.as_str().into(),
            e.keyed.request_hash.as_str().into(),
            e.receipt.into(),
            e.event.as_str().into(),
        ],
    );
    let rows = db.query_all_raw(stmt).await?;
    let first = rows.first().ok_or_else(|| DbErr::RecordNotInserted)?;
    let mut subscribed = Vec::new();
    for row in &rows {
        if let Some(id) = row.try_get::<Option<i64>>("", "webhook_id")? {
            subscribed.push(id);
        }
    }
    Ok(RecordedExchange {
        exchange_id: first.try_get("", "id")?,
        subscribed,
    })
}

async fn record_exchange_stepwise<C: ConnectionTrait>(
    db: &C,
    mut e: NewExchange<'_>,
) -> Result<RecordedExchange, DbErr> {
    let exchange = market_exchanges::ActiveModel {
        org_id: Set(e.org_id),
        product_id: Set(e.product_id),
        customer_id: Set(e.customer_id),
        coupon_id: Set(e.coupon.id),
        points: Set(e.points),
        refunded_at: Set(None),
        created_at: Set(e.now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let reference = format!("exchange:{}", exchange.id);
    let entry = super::points::Entry {
        org_id: e.org_id,
        customer_id: e.customer_id,
        delta: -e.points,
        reason: e.reason,
        reference: Some(&reference),
        idempotency_key: &reference,
    };
    super::points::append(db, entry).await?;
    super::events::record(db, e.coupon, Some(e.customer_id), EventKind::Issue, None).await?;
    e.receipt["exchange_id"] = exchange.id.into();
    super::idempotency::record(db, e.keyed, 201, e.receipt).await?;
    let subscribed = super::webhooks::subscribed(db, e.org_id, e.event).await?;
    Ok(RecordedExchange {
        exchange_id: exchange.id,
        subscribed: subscribed.into_iter().map(|w| w.id).collect(),
    })
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

/// Whether the coupon was bought in the market.
pub async fn sold<C: ConnectionTrait>(db: &C, coupon_id: i64) -> Result<bool, DbErr> {
    let found = market_exchanges::Entity::find()
        .filter(market_exchanges::Column::CouponId.eq(coupon_id))
        .count(db)
        .await?;
    Ok(found > 0)
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
