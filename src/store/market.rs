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

/// An exchange to write: its rows (the exchange, its ledger entry, the coupon's `coupon_issue`
/// event, the idempotency key with the receipt) and the webhook event whose subscriptions are
/// read with them.
pub struct NewExchange<'a> {
    pub org_id: i64,
    pub product_id: i64,
    pub customer_id: i64,
    /// The price, debited from the customer's balance.
    pub points: i64,
    /// The ledger entry's reason.
    pub reason: String,
    pub now: DateTime<Utc>,
    pub keyed: &'a Keyed,
    /// The receipt stored for retries, without what writing the exchange decides: its
    /// `exchange_id`, `coupon_id`, `code`, `expires_at` and `balance` are set from the rows.
    pub receipt: serde_json::Value,
    pub event: WebhookEvent,
}

/// Where the code of an exchange comes from.
#[derive(Debug, Clone, Copy)]
pub enum Code<'a> {
    /// The pool's next available code, claimed as [`super::issuance::claim_available`] does,
    /// with these dates.
    Claimed { pool_id: i64, stamp: Stamp },
    /// A code already issued to the customer (minted for an exchange whose pool had none in
    /// stock), paid for with the balance left after the debit.
    Given {
        coupon: &'a coupons::Model,
        balance: i64,
    },
}

/// What [`exchange`] did.
#[derive(Debug, Clone)]
pub enum Exchanged {
    /// The balance is below the price (or the customer never had points): nothing changed.
    Refused,
    /// The price was debited but the pool had no code available: nothing else was written (the
    /// caller mints one or rolls back).
    NoCode { balance: i64 },
    /// Paid, and the exchange's rows written.
    Recorded {
        balance: i64,
        coupon: coupons::Model,
        recorded: RecordedExchange,
    },
}

/// What writing an exchange's rows gave back.
#[derive(Debug, Clone)]
pub struct RecordedExchange {
    pub exchange_id: i64,
    /// The org's subscriptions to the event.
    pub subscribed: Vec<i64>,
}

/// Writes an exchange. A claimed code is paid for first: `points` come off the balance unless
/// that would take it below zero, and only then is a code claimed and the rows written. On
/// PostgreSQL that is one statement: the claim's locking subquery reads the debit's result,
/// so no code is locked before the debit is done (one customer's concurrent exchanges queue on
/// their balance row holding no code) and none when it is refused. SQLite, which has no
/// data-modifying CTEs, runs the steps in turn. The ledger entry's reference and key are
/// `exchange:<id>`. A unique violation means the idempotency key was recorded first by
/// another request.
pub async fn exchange<C: ConnectionTrait>(
    db: &C,
    e: &NewExchange<'_>,
    code: Code<'_>,
) -> Result<Exchanged, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return exchange_stepwise(db, e, code).await;
    }
    let mut values: Vec<sea_orm::Value> = vec![
        e.org_id.into(),
        e.customer_id.into(),
        e.product_id.into(),
        e.points.into(),
        (-e.points).into(),
        e.reason.as_str().into(),
        e.now.into(),
        EventKind::Issue.as_str().into(),
        e.keyed.operation.into(),
        e.keyed.key.as_str().into(),
        e.keyed.request_hash.as_str().into(),
        e.receipt.clone().into(),
        e.event.as_str().into(),
    ];
    let head = match code {
        Code::Claimed { pool_id, stamp } => {
            values.extend([
                CouponStatus::Issued.into(),
                stamp.now.into(),
                stamp.expires_at.into(),
                stamp.redeemable_from.into(),
                pool_id.into(),
                CouponStatus::Available.into(),
            ]);
            PAID_AND_CLAIMED
        }
        Code::Given { coupon, balance } => {
            values.extend([
                balance.into(),
                coupon.id.into(),
                coupon.pool_id.into(),
                coupon.code.as_str().into(),
                coupon.expires_at.into(),
            ]);
            GIVEN
        }
    };
    let sql = format!("WITH {head}, {RECORDED}");
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    let Some(first) = rows.first() else {
        return Ok(Exchanged::Refused);
    };
    let balance = first.try_get("", "paid_balance")?;
    let Some(exchange_id) = first.try_get::<Option<i64>>("", "exchange_id")? else {
        return Ok(Exchanged::NoCode { balance });
    };
    let coupon = match code {
        Code::Claimed { .. } => coupons::Model::from_query_result(first, "")?,
        Code::Given { coupon, .. } => coupon.clone(),
    };
    let mut subscribed = Vec::new();
    for row in &rows {
        if let Some(id) = row.try_get::<Option<i64>>("", "webhook_id")? {
            subscribed.push(id);
        }
    }
    let recorded = RecordedExchange {
        exchange_id,
        subscribed,
    };
    Ok(Exchanged::Recorded {
        balance,
        coupon,
        recorded,
    })
}

/// `d`, the debit, and `c`, the claim that reads it, after [`RECORDED`]'s thirteen values:
/// issued, the stamp's time, expiry and redeemable-from, the pool, available.
const PAID_AND_CLAIMED: &str = "\
d AS (\
    UPDATE points_balances SET balance = balance - $4 \
    WHERE customer_id = $2 AND balance >= $4 RETURNING balance), \
c AS (\
    UPDATE coupons SET status = $14, customer_id = $2, issued_at = $15, expires_at = $16, \
    redeemable_from = $17, last_status_change_at = $15 \
    WHERE id = (SELECT id FROM coupons \
        WHERE pool_id = $18 AND status = $19 AND EXISTS (SELECT 1 FROM d) \
        ORDER BY code LIMIT 1 FOR UPDATE SKIP LOCKED) \
    RETURNING coupons.*)";

/// `d` and `c` for a code given (and a balance already debited), after [`RECORDED`]'s thirteen
/// values: the balance, the coupon's id, pool, code and expiry.
const GIVEN: &str = "\
d AS (SELECT CAST($14 AS bigint) AS balance), \
c AS (SELECT CAST($15 AS bigint) AS id, CAST($16 AS bigint) AS pool_id, CAST($17 AS text) AS code, \
    CAST($18 AS timestamptz) AS expires_at)";

/// The exchange's rows from `d` (the balance after paying) and `c` (the code): nothing when
/// either is empty. Its values: org, customer, product, points, their debit, the ledger's
/// reason, now, the event's kind, the key's operation, key and request hash, the receipt, and
/// the webhook event. The receipt gets the rows' parts as the stepwise path sets them.
const RECORDED: &str = "\
x AS (\
    INSERT INTO market_exchanges (org_id, product_id, customer_id, coupon_id, points, created_at) \
    SELECT $1, $3, $2, c.id, $4, $7 FROM c, d RETURNING id), \
l AS (\
    INSERT INTO points_ledger (org_id, customer_id, delta, reason, idempotency_key, reference, created_at) \
    SELECT $1, $2, $5, $6, 'exchange:' || x.id, 'exchange:' || x.id, $7 FROM x), \
e AS (\
    INSERT INTO coupon_events (org_id, coupon_id, pool_id, customer_id, kind, created_at) \
    SELECT $1, c.id, c.pool_id, $2, $8, $7 FROM c, x), \
k AS (\
    INSERT INTO idempotency_keys (org_id, operation, key, request_hash, status, response, created_at) \
    SELECT $1, $9, $10, $11, 201, CAST(CAST($12 AS jsonb) || jsonb_build_object(\
        'exchange_id', x.id, 'coupon_id', c.id, 'code', c.code, 'expires_at', c.expires_at, \
        'balance', d.balance) AS json), $7 FROM x, c, d) \
SELECT d.balance AS paid_balance, x.id AS exchange_id, w.id AS webhook_id, c.* FROM d \
LEFT JOIN c ON true LEFT JOIN x ON true \
LEFT JOIN webhooks w ON x.id IS NOT NULL AND w.org_id = $1 \
    AND CAST(w.events AS jsonb) @> jsonb_build_array(CAST($13 AS text)) \
ORDER BY w.id";

async fn exchange_stepwise<C: ConnectionTrait>(
    db: &C,
    e: &NewExchange<'_>,
    code: Code<'_>,
) -> Result<Exchanged, DbErr> {
    let (balance, coupon) = match code {
        Code::Claimed { pool_id, stamp } => {
            let debit = super::points::move_balance(db, e.org_id, e.customer_id, -e.points);
            let Some(balance) = debit.await? else {
                return Ok(Exchanged::Refused);
            };
            match super::issuance::claim_available(db, pool_id, stamp).await? {
                Some(coupon) => (balance, coupon),
                None => return Ok(Exchanged::NoCode { balance }),
            }
        }
        Code::Given { coupon, balance } => (balance, coupon.clone()),
    };
    let recorded = record_stepwise(db, e, &coupon, balance).await?;
    Ok(Exchanged::Recorded {
        balance,
        coupon,
        recorded,
    })
}

async fn record_stepwise<C: ConnectionTrait>(
    db: &C,
    e: &NewExchange<'_>,
    coupon: &coupons::Model,
    balance: i64,
) -> Result<RecordedExchange, DbErr> {
    let exchange = market_exchanges::ActiveModel {
        org_id: Set(e.org_id),
        product_id: Set(e.product_id),
        customer_id: Set(e.customer_id),
        coupon_id: Set(coupon.id),
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
        reason: &e.reason,
        reference: Some(&reference),
        idempotency_key: &reference,
    };
    super::points::append(db, entry).await?;
    super::events::record(db, coupon, Some(e.customer_id), EventKind::Issue, None).await?;
    let mut receipt = e.receipt.clone();
    receipt["exchange_id"] = exchange.id.into();
    receipt["coupon_id"] = coupon.id.into();
    receipt["code"] = coupon.code.clone().into();
    receipt["expires_at"] = serde_json::to_value(coupon.expires_at).unwrap_or_default();
    receipt["balance"] = balance.into();
    super::idempotency::record(db, e.keyed, 201, receipt).await?;
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
