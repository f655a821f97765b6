//! Issuing a coupon to a customer: rules, limits and the claim in one transaction.
//!
//! Order of locks, the same everywhere: customer row, then the pool's series counter, then a
//! coupon row. The customer lock makes per-customer limits exact; the counter makes the total
//! limit exact; the claim statement makes a code go to one customer only.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use entity::{coupons, customers, orgs, pools};
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::{
    api::error::{ApiError, ApiResult},
    domain::{
        expiry::{self, ExpiryRules},
        issuance::{self, Decision, IssuanceRules, IssueContext, RefusalCode},
        pool::{PoolSource, PoolState},
    },
    service::{generation::pool_pattern, stored as parse},
    store::{
        self,
        events::EventKind,
        idempotency::Keyed,
        issuance::{History, Stamp},
    },
};

/// The result of an issue: the coupon, and whether it was made now or is one the customer
/// already had (aggregated pools, "resend existing").
#[derive(Debug, Clone)]
pub struct Issued {
    pub coupon: coupons::Model,
    pub existing: bool,
}

/// Issues one coupon of `pool` to `customer`, recording `keyed` (if any) in the same
/// transaction so a retry with the same key gets this coupon back.
pub async fn issue(
    db: &DatabaseConnection,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    keyed: Option<&Keyed>,
) -> ApiResult<Issued> {
    let txn = db.begin().await?;
    let issued = issue_in(&txn, org, pool, customer, Utc::now()).await?;
    if let Some(k) = keyed {
        let response =
            serde_json::json!({ "coupon_id": issued.coupon.id, "existing": issued.existing });
        super::idempotency::record(&txn, k, 201, response).await?;
    }
    txn.commit().await?;
    Ok(issued)
}

/// The issue itself, inside the caller's transaction (batch jobs issue many in one).
pub async fn issue_in(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    now: DateTime<Utc>,
) -> ApiResult<Issued> {
    let rules: IssuanceRules = parse(&pool.issuance)?;
    let tz = org.timezone.parse().unwrap_or(chrono_tz::UTC);
    let source =
        PoolSource::parse(&pool.source).ok_or_else(|| ApiError::internal("unknown pool source"))?;
    // A common code needs no history either: its unique index refuses a second copy.
    let history = if rules.depends_on_history() {
        store::customers::lock(txn, customer.id).await?;
        store::issuance::history(txn, pool.id, customer.id, now).await?
    } else {
        History::default()
    };
    let facts = CustomerFacts {
        customer,
        history: &history,
        on_allow_list: rules.specific_customers_only
            && store::issuance::on_allow_list(txn, pool.id, customer.id).await?,
        excluded_recently: store::issuance::issued_from_since(
            txn,
            customer.id,
            &rules.exclude_if_issued_from,
            issuance::six_months_before(now),
        )
        .await?,
    };
    let ctx = context(pool, tz, now, &facts, pool.issued_count as u64);
    match issuance::decide(&rules, &ctx) {
        Decision::Refuse(r) => return Err(ApiError::refused(r.code.as_str(), r.reason)),
        Decision::ReturnExisting(id) => return existing(txn, id).await,
        Decision::IssueNew => {}
    }
    if let Some(max) = rules.max_total
        && !store::issuance::take_series_slot(txn, pool.id, max).await?
    {
        return Err(refusal(
            RefusalCode::SeriesLimit,
            "the pool has reached its total issual limit",
        ));
    }
    let expiry_rules: ExpiryRules = parse(&pool.expiry)?;
    let stamp = Stamp {
        customer_id: customer.id,
        now,
        expires_at: expiry::expires_at(&expiry_rules, now, tz, pool.ends_at),
        redeemable_from: Some(expiry::redeemable_from(&expiry_rules, now, tz)),
    };
    let coupon = claim(txn, pool, source, stamp).await?;
    store::events::record(txn, &coupon, Some(customer.id), EventKind::Issue, None).await?;
    Ok(Issued {
        coupon,
        existing: false,
    })
}

/// What the issuance rules see of one customer.
pub struct CustomerFacts<'a> {
    pub customer: &'a customers::Model,
    pub history: &'a History,
    pub on_allow_list: bool,
    pub excluded_recently: bool,
}

/// The rules' view of an issue of `pool` to a customer at `now`.
pub fn context(
    pool: &pools::Model,
    tz: Tz,
    now: DateTime<Utc>,
    facts: &CustomerFacts,
    pool_issued: u64,
) -> IssueContext {
    IssueContext {
        now,
        tz,
        pool_active: pool.state == PoolState::Active.as_str(),
        pool_starts_at: pool.starts_at,
        pool_ends_at: pool.ends_at,
        is_common: pool.source == PoolSource::Common.as_str(),
        customer_level: facts.customer.level.clone(),
        on_allow_list: facts.on_allow_list,
        customer_issued_count: facts.history.issued_count,
        customer_last_issued_at: facts.history.last_issued_at,
        existing_valid_coupon: facts.history.valid_coupon,
        issued_from_excluded_recently: facts.excluded_recently,
        pool_issued_total: pool_issued,
    }
}

/// Takes a code for the customer the way the pool's source makes codes.
async fn claim(
    txn: &DatabaseTransaction,
    pool: &pools::Model,
    source: PoolSource,
    stamp: Stamp,
) -> ApiResult<coupons::Model> {
    match source {
        PoolSource::Common => {
            let code = pool_pattern(pool)?
                .common_code()
                .ok_or_else(|| ApiError::internal("common pool without a code"))?;
            store::issuance::insert_issued(txn, pool, code, stamp.customer_id, stamp)
                .await?
                .ok_or_else(|| {
                    refusal(
                        RefusalCode::AlreadyIssued,
                        "Generic coupon code has already been issued to this customer",
                    )
                })
        }
        PoolSource::Remote => Err(ApiError::conflict(
            "remote_source",
            "codes of a remote pool come from its remote source at issue time",
        )),
        _ => {
            if let Some(c) = store::issuance::claim_available(txn, pool.id, stamp).await? {
                return Ok(c);
            }
            if source.mints_on_issue() {
                return mint(txn, pool, stamp).await;
            }
            Err(exhausted())
        }
    }
}

/// Makes the pool's next code from its pattern and issues it at once.
async fn mint(
    txn: &DatabaseTransaction,
    pool: &pools::Model,
    stamp: Stamp,
) -> ApiResult<coupons::Model> {
    let pattern = pool_pattern(pool)?;
    let key = pool.generation_key.clone().unwrap_or_default();
    let generator = crate::domain::generator::Generator::new(&pattern, key.as_bytes());
    // A clash with a code uploaded elsewhere in the org moves on to the next one.
    for _ in 0..16 {
        let cursor = store::pools::generator_cursor(txn, pool.id).await?;
        let Some((code, next)) = generator.codes_from(cursor).next() else {
            return Err(exhausted());
        };
        if !store::pools::advance_generator_cursor(txn, pool.id, cursor, next).await? {
            continue;
        }
        if let Some(c) = store::issuance::insert_issued(txn, pool, code, 0, stamp).await? {
            return Ok(c);
        }
    }
    Err(ApiError::internal(
        "could not mint a free code in 16 attempts",
    ))
}

async fn existing(txn: &DatabaseTransaction, id: i64) -> ApiResult<Issued> {
    let coupon = store::issuance::get(txn, id)
        .await?
        .ok_or_else(|| ApiError::internal("existing coupon vanished"))?;
    Ok(Issued {
        coupon,
        existing: true,
    })
}

fn exhausted() -> ApiError {
    refusal(
        RefusalCode::PoolExhausted,
        "the pool has no codes left to issue",
    )
}

fn refusal(code: RefusalCode, reason: &str) -> ApiError {
    ApiError::refused(code.as_str(), reason)
}
