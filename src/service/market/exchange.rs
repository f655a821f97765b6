//! Exchanging points for a coupon product's code, in one transaction: the product's terms, the
//! customer's limit on it, the pool's issuance rules and the claim of a code (shared with
//! `/issue`), the debit, and the exchange row. Any refusal rolls all of it back.
//!
//! Locks, in the issue path's order: customer row, balance row, pool series counter, coupon.
//! The debit is a conditional UPDATE of the balance, so no interleaving takes it below zero.

use crate::store::entity::{coupons, customers, market_products, orgs};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{coupon::CouponStatus, customer::CustomerIdentifier, issuance::RefusalCode, market},
    service::{
        Error, Result, idempotency,
        issuance::{self, Fetched},
        points,
    },
    store::{self, idempotency::Keyed, market::NewExchange},
};

/// What a customer got for their points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub exchange_id: i64,
    pub product_id: i64,
    pub coupon_id: i64,
    pub code: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub points: i64,
    /// The customer's balance right after paying.
    pub balance: i64,
    pub created_at: DateTime<Utc>,
}

/// One exchange request.
pub struct Request<'a> {
    pub org_id: i64,
    pub product_id: i64,
    pub customer: &'a CustomerIdentifier,
    pub idempotency_key: String,
}

/// Exchanges once per Idempotency-Key: a retry, even a concurrent one, gets the first receipt
/// and is charged nothing more.
pub async fn exchange(db: &DatabaseConnection, r: Request<'_>) -> Result<Receipt> {
    let fingerprint = serde_json::json!({
        "product": r.product_id, "customer": format!("{:?}", r.customer),
    });
    let keyed = Keyed::new(r.org_id, "exchangeProduct", r.idempotency_key, &fingerprint);
    if let Some(first) = replay(db, &keyed).await? {
        return Ok(first);
    }
    let org = store::orgs::get(db, r.org_id)
        .await?
        .ok_or_else(|| Error::not_found("org", r.org_id))?;
    let customer = crate::service::customers::resolve(db, r.org_id, r.customer).await?;
    let result = async {
        let txn = db.begin().await?;
        let receipt = exchange_in(&txn, &org, r.product_id, &customer).await?;
        let response = serde_json::to_value(&receipt).map_err(Error::internal)?;
        idempotency::record(&txn, &keyed, 201, response).await?;
        txn.commit().await?;
        Ok(receipt)
    }
    .await;
    match result {
        // A concurrent request with the same key may have committed first (this one then
        // lost the key, or was refused by the state the winner left): answer as it did.
        Err(e) => replay(db, &keyed).await?.ok_or(e),
        ok => ok,
    }
}

async fn replay(db: &DatabaseConnection, keyed: &Keyed) -> Result<Option<Receipt>> {
    let Some(saved) = idempotency::stored_response(db, keyed).await? else {
        return Ok(None);
    };
    serde_json::from_value(saved)
        .map(Some)
        .map_err(Error::internal)
}

async fn exchange_in(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    product_id: i64,
    customer: &customers::Model,
) -> Result<Receipt> {
    let now = Utc::now();
    let product = store::market::product(txn, org.id, product_id)
        .await?
        .ok_or_else(|| Error::not_found("product", product_id))?;
    let levels = super::levels_of(&product);
    market::check_purchase(
        &super::terms_of(&product, &levels),
        customer.level.as_deref(),
        now,
    )
    .map_err(|b| match b {
        market::Blocked::LevelNotAllowed => Error::forbidden(b.code(), b.detail()),
        _ => Error::conflict(b.code(), b.detail()),
    })?;
    store::customers::lock(txn, customer.id).await?;
    check_product_limit(txn, &product, customer.id).await?;
    let pool = store::pools::get(txn, org.id, product.pool_id)
        .await?
        .ok_or_else(|| Error::internal("product without its pool"))?;
    let coupon = claim(txn, org, &pool, customer, now).await?;
    let exchange = store::market::insert_exchange(
        txn,
        NewExchange {
            org_id: org.id,
            product_id: product.id,
            customer_id: customer.id,
            coupon_id: coupon.id,
            points: product.price_points,
            now,
        },
    )
    .await?;
    let reference = format!("exchange:{}", exchange.id);
    let paid = points::apply_in(
        txn,
        points::Change {
            org_id: org.id,
            customer_id: customer.id,
            delta: -product.price_points,
            reason: &format!("market: {}", product.name),
            reference: Some(&reference),
            ledger_key: &reference,
        },
    )
    .await?;
    Ok(Receipt {
        exchange_id: exchange.id,
        product_id: product.id,
        coupon_id: coupon.id,
        code: coupon.code,
        expires_at: coupon.expires_at,
        points: product.price_points,
        balance: paid.balance,
        created_at: now,
    })
}

/// The product's own per-customer maximum, counted under the customer's row lock.
async fn check_product_limit(
    txn: &DatabaseTransaction,
    product: &market_products::Model,
    customer_id: i64,
) -> Result<()> {
    let Some(max) = product.max_per_customer else {
        return Ok(());
    };
    let held = store::market::exchanges_held(txn, product.id, customer_id).await?;
    if held >= max.max(0) as u64 {
        return Err(Error::refused(
            "product_limit",
            format!("the customer already exchanged this product {held} times, the maximum"),
        ));
    }
    Ok(())
}

/// A new code of the pool for the customer, through the issue path: its rules, the claim
/// (one `FOR UPDATE SKIP LOCKED` statement on PostgreSQL), the `coupon_issue` event and the
/// `coupon.issued` webhook. An empty pool is `out_of_stock`; a coupon the rules would hand
/// back again is not something to pay for.
async fn claim(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &crate::store::entity::pools::Model,
    customer: &customers::Model,
    now: DateTime<Utc>,
) -> Result<coupons::Model> {
    let issued = issuance::issue_in(txn, org, pool, customer, now, &mut Fetched::default())
        .await
        .map_err(|e| {
            if e.code() == RefusalCode::PoolExhausted.as_str() {
                Error::conflict("out_of_stock", "the product has no codes left")
            } else {
                e
            }
        })?;
    if issued.existing {
        return Err(Error::conflict(
            "coupon_already_held",
            "the pool's rules hand this customer the coupon they already hold",
        ));
    }
    Ok(issued.coupon)
}

/// Gives the points back, once, for exchanged coupons that were revoked or invalidated, when
/// their product says `refund_on_revoke`. Runs inside the revoking transaction, so the refund
/// commits with the revocation; its error type is the one those callers use.
pub async fn refund_withdrawn<C: ConnectionTrait>(
    db: &C,
    coupons: &[coupons::Model],
) -> std::result::Result<(), DbErr> {
    let withdrawn = [CouponStatus::Revoked, CouponStatus::Invalidated];
    let ids: Vec<i64> = coupons
        .iter()
        .filter(|c| c.customer_id.is_some() && withdrawn.contains(&c.status))
        .map(|c| c.id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    for exchange in store::market::mark_refunded(db, &ids, Utc::now()).await? {
        let reference = format!("exchange:{}", exchange.id);
        let key = format!("exchange-refund:{}", exchange.id);
        let change = points::Change {
            org_id: exchange.org_id,
            customer_id: exchange.customer_id,
            delta: exchange.points,
            reason: "market: coupon withdrawn, points refunded",
            reference: Some(&reference),
            ledger_key: &key,
        };
        points::apply_in(db, change).await.map_err(|e| match e {
            Error::Db(e) => e,
            other => DbErr::Custom(format!("refunding exchange {}: {other}", exchange.id)),
        })?;
    }
    Ok(())
}

/// A page of a customer's exchanges, newest first.
#[derive(Debug, Clone)]
pub struct History {
    pub items: Vec<store::market::ExchangeLine>,
    pub next_cursor: Option<String>,
}

pub async fn history(
    db: &DatabaseConnection,
    org_id: i64,
    external_id: &str,
    cursor: Option<&str>,
    limit: u64,
) -> Result<History> {
    let customer = points::customer(db, org_id, external_id).await?;
    let before = points::parse_cursor(cursor)?;
    let items = store::market::exchanges_of(db, customer.id, before, limit).await?;
    Ok(History {
        next_cursor: points::next_cursor(items.len(), limit, items.last().map(|e| e.id)),
        items,
    })
}
