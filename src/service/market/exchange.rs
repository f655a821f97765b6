//! Exchanging points for a coupon product's code, in one transaction: the product's terms, the
//! customer's limit on it, the pool's issuance rules (shared with `/issue`), the debit and the
//! claim of a code, then the exchange's rows. Any refusal rolls all of it back.
//!
//! Locks, in the issue path's order: customer row (only when a per-customer limit is counted),
//! pool series counter (pools with a total limit), balance row, coupon. The debit and the claim
//! are one statement on PostgreSQL, the claim reading the debit's result: the debit is a
//! conditional UPDATE of the balance, so no interleaving takes it below zero, and one customer's
//! concurrent exchanges queue on their balance row holding no code (which other buyers' claims
//! would skip) while they wait to pay.
//!
//! On PostgreSQL a steady exchange is four statements: the customer, BEGIN, the debit with the
//! claim and the exchange's rows with the idempotency key (one statement), COMMIT. The API key,
//! the product and its pool with the org come from [`Caches`].

use crate::store::entity::{coupons, customers, market_products, orgs, pools};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        coupon::CouponStatus, customer::CustomerIdentifier, issuance::RefusalCode, market,
        webhook::WebhookEvent,
    },
    service::{
        Error, Result,
        cache::Caches,
        idempotency,
        issuance::{self, Verdict},
        points,
    },
    store::{
        self,
        idempotency::Keyed,
        issuance::Stamp,
        market::{Code, Exchanged, NewExchange, RecordedExchange},
    },
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
/// and is charged nothing more. Every effect is in the transaction that records the key, so
/// the key is not looked up first ([`idempotency::once_then_check`]): a retry loses on the
/// key's unique row and rolls back, or is refused, and then finds the first receipt.
pub async fn exchange(db: &DatabaseConnection, caches: &Caches, r: Request<'_>) -> Result<Receipt> {
    let fingerprint = serde_json::json!({
        "product": r.product_id, "customer": format!("{:?}", r.customer),
    });
    let keyed = Keyed::new(r.org_id, "exchangeProduct", r.idempotency_key, &fingerprint);
    let replay = |first: serde_json::Value| async move {
        serde_json::from_value::<Receipt>(first).map_err(Error::internal)
    };
    let run = || async {
        let customer = crate::service::customers::resolve(db, r.org_id, r.customer).await?;
        let product = caches
            .product(db, r.org_id, r.product_id)
            .await?
            .ok_or_else(|| Error::not_found("product", r.product_id))?;
        let levels = super::levels_of(&product);
        market::check_purchase(
            &super::terms_of(&product, &levels),
            customer.level.as_deref(),
            Utc::now(),
        )
        .map_err(|b| match b {
            market::Blocked::LevelNotAllowed => Error::forbidden(b.code(), b.detail()),
            _ => Error::conflict(b.code(), b.detail()),
        })?;
        let (org, pool) = caches
            .pool_and_org(db, r.org_id, product.pool_id)
            .await?
            .ok_or_else(|| Error::internal("product without its pool"))?;
        let txn = db.begin().await?;
        let receipt = exchange_in(&txn, (&org, &pool), &product, &customer, &keyed).await?;
        txn.commit().await?;
        Ok(receipt)
    };
    idempotency::once_then_check(db, Some(&keyed), replay, run)
        .await
        .map(idempotency::Outcome::into_inner)
}

async fn exchange_in(
    txn: &DatabaseTransaction,
    (org, pool): (&orgs::Model, &pools::Model),
    product: &market_products::Model,
    customer: &customers::Model,
    keyed: &Keyed,
) -> Result<Receipt> {
    let now = Utc::now();
    let rules = &pool.issuance;
    if product.max_per_customer.is_some() || rules.depends_on_history() {
        store::customers::lock(txn, customer.id).await?;
        check_product_limit(txn, product, customer.id).await?;
    }
    let stamp = match issuance::decide_in(txn, org, pool, rules, customer, now).await? {
        Verdict::New(stamp) => stamp,
        Verdict::Existing(_) => {
            return Err(Error::conflict(
                "coupon_already_held",
                "the pool's rules hand this customer the coupon they already hold",
            ));
        }
    };
    let price = product.price_points;
    market::validate_delta(-price)?;
    let exchange = new_exchange(org, product, customer, keyed, now)?;
    let (balance, coupon, recorded) = pay(txn, pool, &exchange, stamp).await?;
    issuance::announce_issued(txn, &coupon, customer, &recorded.subscribed).await?;
    Ok(Receipt {
        exchange_id: recorded.exchange_id,
        product_id: product.id,
        coupon_id: coupon.id,
        code: coupon.code,
        expires_at: coupon.expires_at,
        points: price,
        balance,
        created_at: now,
    })
}

/// The exchange's rows, with the receipt as far as it is known before a code is taken.
fn new_exchange<'a>(
    org: &orgs::Model,
    product: &market_products::Model,
    customer: &customers::Model,
    keyed: &'a Keyed,
    now: DateTime<Utc>,
) -> Result<NewExchange<'a>> {
    let receipt = Receipt {
        exchange_id: 0,
        product_id: product.id,
        coupon_id: 0,
        code: String::new(),
        expires_at: None,
        points: product.price_points,
        balance: 0,
        created_at: now,
    };
    Ok(NewExchange {
        org_id: org.id,
        product_id: product.id,
        customer_id: customer.id,
        points: product.price_points,
        reason: format!("market: {}", product.name),
        now,
        keyed,
        receipt: serde_json::to_value(receipt).map_err(Error::internal)?,
        event: WebhookEvent::CouponIssued,
    })
}

/// Pays and takes the pool's next code, or mints one when the pool makes codes and has none in
/// stock, and writes the exchange: the balance after paying, the code and what was written. A
/// balance below the price is 409 `insufficient_points`.
async fn pay(
    txn: &DatabaseTransaction,
    pool: &pools::Model,
    exchange: &NewExchange<'_>,
    stamp: Stamp,
) -> Result<(i64, coupons::Model, RecordedExchange)> {
    let claimed = Code::Claimed {
        pool_id: pool.id,
        stamp,
    };
    let balance = match write(txn, exchange, claimed).await? {
        Exchanged::Refused => return Err(points::insufficient(exchange.points)),
        Exchanged::Recorded {
            balance,
            coupon,
            recorded,
        } => return Ok((balance, coupon, recorded)),
        Exchanged::NoCode { balance } => balance,
    };
    let coupon = mint(txn, pool, stamp).await?;
    let given = Code::Given {
        coupon: &coupon,
        balance,
    };
    match write(txn, exchange, given).await? {
        Exchanged::Recorded { recorded, .. } => Ok((balance, coupon, recorded)),
        _ => Err(Error::internal("a given code was not recorded")),
    }
}

/// [`store::market::exchange`]; its unique violation is a lost race for the idempotency key.
async fn write(
    txn: &DatabaseTransaction,
    exchange: &NewExchange<'_>,
    code: Code<'_>,
) -> Result<Exchanged> {
    store::market::exchange(txn, exchange, code)
        .await
        .map_err(idempotency::race_or)
}

/// A code for a pool that makes codes on issue and had none in stock; a pool without codes is
/// 409 `out_of_stock`.
async fn mint(
    txn: &DatabaseTransaction,
    pool: &pools::Model,
    stamp: Stamp,
) -> Result<coupons::Model> {
    issuance::mint_or_exhausted(txn, pool, stamp)
        .await
        .map_err(|e| {
            if e.code() == RefusalCode::PoolExhausted.as_str() {
                Error::conflict("out_of_stock", "the product has no codes left")
            } else {
                e
            }
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
