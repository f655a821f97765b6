//! The workflow plugin's actions. Each runs once per Idempotency-Key: the answer is recorded in
//! the transaction of the change it reports, and a rule's refusal is recorded as `skipped`, so
//! a retried step always gets the first answer. Failures (caller errors) are not recorded: they
//! changed nothing, and the step may be retried once the cause is fixed.

use std::future::Future;

use chrono::Utc;
use entity::{coupons, customers, orgs, pools};
use poem_openapi::types::{ParseFromJSON, ToJSON};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde_json::Value;

use crate::{
    api::{
        customers::coupon_view,
        error::{ApiError, ApiResult},
        issuance::IssuedCoupon,
        workflow::{
            ActionResult, ActionStatus, CreditPointsInput, IssueCouponInput, PointsCredit,
            ResendChannel, ResendCouponInput, RevokeCouponsInput,
        },
    },
    domain::{customer::CustomerRef, issuance::RefusalCode, message::Channel},
    service::{
        idempotency::{self, RACE_LOST},
        issuance::{self, Fetched},
        notifications, points, revocation,
    },
    store::{self, idempotency::Keyed},
};

/// Refusals of the workflow actions themselves, beside the issuance rules' codes.
const NO_ACTIVE_COUPONS: &str = "no_active_coupons";
const NO_ACTIVE_COUPON: &str = "no_active_coupon";
const NO_CHANNEL: &str = "no_channel";
const INSUFFICIENT_POINTS: &str = "insufficient_points";

/// One call of an action: who made it, and its Idempotency-Key and body.
pub struct Step {
    keyed: Keyed,
}

impl Step {
    pub fn new(org_id: i64, operation: &'static str, key: String, body: &Value) -> Step {
        Step {
            keyed: Keyed::new(org_id, operation, key, body),
        }
    }

    fn org_id(&self) -> i64 {
        self.keyed.org_id
    }
}

pub async fn issue_coupon(
    db: &DatabaseConnection,
    step: &Step,
    input: &IssueCouponInput,
) -> ApiResult<ActionResult> {
    once(db, step, || async {
        let (org, pool) = claimed_pool(db, step.org_id(), input.pool_id).await?;
        let customer = customer(db, step.org_id(), &input.customer).await?;
        let count = input.count.unwrap_or(1);
        let mut fetched = issuance::prefetch(db, &org, &pool, &customer, count).await?;
        let txn = db.begin().await?;
        let result = issue_many(&txn, &org, &pool, &customer, count, &mut fetched).await?;
        record(&txn, step, &result).await?;
        txn.commit().await?;
        Ok(result)
    })
    .await
}

/// Issues up to `count` coupons, each in a savepoint: the first refusal stops issuing, keeps
/// what was issued and becomes the result's reason (or the refusal itself if nothing was).
async fn issue_many(
    txn: &DatabaseTransaction,
    org: &orgs::Model,
    pool: &pools::Model,
    customer: &customers::Model,
    count: u32,
    fetched: &mut Fetched,
) -> ApiResult<ActionResult> {
    let mut result = ActionResult::done(ActionStatus::Issued, Vec::new());
    for _ in 0..count {
        let savepoint = txn.begin().await?;
        match issuance::issue_in(&savepoint, org, pool, customer, Utc::now(), fetched).await {
            // The coupon issued a moment ago, handed back by `resend_existing`: listing (and
            // resending) it again would tell the workflow it got two.
            Ok(issued)
                if issued.existing
                    && result
                        .coupons
                        .iter()
                        .any(|c| c.coupon.code == issued.coupon.code) =>
            {
                savepoint.rollback().await?;
                break;
            }
            Ok(issued) => {
                savepoint.commit().await?;
                result.coupons.push(view(issued.coupon, issued.existing)?);
                // The same coupon would come back again.
                if issued.existing {
                    break;
                }
            }
            Err(e) if is_refusal(&e) && !result.coupons.is_empty() => {
                savepoint.rollback().await?;
                result.reason = ActionResult::from_error(ActionStatus::Issued, &e).reason;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(result)
}

pub async fn revoke_coupons(
    db: &DatabaseConnection,
    step: &Step,
    input: &RevokeCouponsInput,
) -> ApiResult<ActionResult> {
    once(db, step, || async {
        let (_, pool) = claimed_pool(db, step.org_id(), input.pool_id).await?;
        let customer = customer(db, step.org_id(), &input.customer).await?;
        let txn = db.begin().await?;
        store::customers::lock(&txn, customer.id).await?;
        let revoked = revocation::revoke_customers_in(&txn, pool.id, &[customer.id]).await?;
        if revoked.is_empty() {
            return Err(skip(
                NO_ACTIVE_COUPONS,
                "the customer holds no active coupon of this pool",
            ));
        }
        let coupons = revoked
            .into_iter()
            .map(|c| view(c, true))
            .collect::<ApiResult<_>>()?;
        let result = ActionResult::done(ActionStatus::Revoked, coupons);
        record(&txn, step, &result).await?;
        txn.commit().await?;
        Ok(result)
    })
    .await
}

pub async fn resend_coupon(
    db: &DatabaseConnection,
    step: &Step,
    input: &ResendCouponInput,
) -> ApiResult<ActionResult> {
    once(db, step, || async {
        let (org, pool) = claimed_pool(db, step.org_id(), input.pool_id).await?;
        let customer = customer(db, step.org_id(), &input.customer).await?;
        let coupon = active_coupon(db, &pool, &customer).await?.ok_or_else(|| {
            skip(
                NO_ACTIVE_COUPON,
                "the customer holds no active coupon of this pool",
            )
        })?;
        let channel = address(&customer, input.channel).ok_or_else(|| {
            skip(
                NO_CHANNEL,
                "the customer has no email address or mobile number for this channel",
            )
        })?;
        let dedup_key = format!("resend:{}:{}", step.org_id(), step.keyed.key);
        let tz = org.timezone.parse().unwrap_or(chrono_tz::UTC);
        let txn = db.begin().await?;
        notifications::queue_resend(
            &txn,
            &pool,
            tz,
            &coupon,
            &customer,
            Some(channel),
            dedup_key,
        )
        .await?;
        let result = ActionResult::done(ActionStatus::Resent, vec![view(coupon, true)?]);
        record(&txn, step, &result).await?;
        txn.commit().await?;
        Ok(result)
    })
    .await
}

pub async fn credit_points(
    db: &DatabaseConnection,
    step: &Step,
    input: &CreditPointsInput,
) -> ApiResult<ActionResult> {
    once(db, step, || async {
        if input.points == 0 {
            return Err(ApiError::invalid("points", "must not be zero"));
        }
        let customer = customer(db, step.org_id(), &input.customer).await?;
        let ledger_key = format!("workflow:{}", step.keyed.key);
        let change = points::Change {
            org_id: step.org_id(),
            customer_id: customer.id,
            delta: input.points,
            reason: input.reason.trim(),
            reference: None,
            ledger_key: &ledger_key,
        };
        let txn = db.begin().await?;
        // A debit beyond the balance is a rule saying no: the step is `skipped`.
        let applied = points::apply_in(&txn, change)
            .await
            .map_err(|e| match e.code() {
                INSUFFICIENT_POINTS => skip(INSUFFICIENT_POINTS, &e.to_string()),
                _ => ApiError::from(e),
            })?;
        let result = ActionResult {
            points: Some(PointsCredit {
                entry_id: applied.entry.id,
                points: applied.entry.delta,
                balance: applied.balance,
            }),
            ..ActionResult::done(ActionStatus::Credited, Vec::new())
        };
        record(&txn, step, &result).await?;
        txn.commit().await?;
        Ok(result)
    })
    .await
}

/// Runs an action unless its key already has an answer, which is then returned instead. A
/// rule's refusal is recorded as `skipped`; losing a race on the key answers as the winner did.
async fn once<F, Fut>(db: &DatabaseConnection, step: &Step, run: F) -> ApiResult<ActionResult>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<ActionResult>>,
{
    if let Some(first) = first_answer(db, step).await? {
        return Ok(first);
    }
    match run().await {
        Err(e) if e.problem().code == RACE_LOST => winner(db, step).await,
        Err(e) if is_refusal(&e) => {
            let skipped = ActionResult::from_error(ActionStatus::Skipped, &e);
            match record(db, step, &skipped).await {
                Err(e) if e.problem().code == RACE_LOST => winner(db, step).await,
                Err(e) => Err(e),
                Ok(()) => Ok(skipped),
            }
        }
        other => other,
    }
}

async fn first_answer(db: &DatabaseConnection, step: &Step) -> ApiResult<Option<ActionResult>> {
    let Some(saved) = idempotency::stored_response(db, &step.keyed).await? else {
        return Ok(None);
    };
    ActionResult::parse_from_json(Some(saved))
        .map(Some)
        .map_err(|e| ApiError::internal(e.into_message()))
}

async fn winner(db: &DatabaseConnection, step: &Step) -> ApiResult<ActionResult> {
    first_answer(db, step)
        .await?
        .ok_or_else(|| ApiError::internal("lost an idempotency race but no answer is stored"))
}

async fn record<C: ConnectionTrait>(db: &C, step: &Step, result: &ActionResult) -> ApiResult<()> {
    let response = result.to_json().unwrap_or(Value::Null);
    idempotency::record(db, &step.keyed, 200, response).await
}

/// Whether an error is a rule saying no, which a workflow step reports as `skipped`.
fn is_refusal(e: &ApiError) -> bool {
    let code = e.problem().code.as_str();
    e.problem().status == 422
        && (RefusalCode::ALL.iter().any(|r| r.as_str() == code)
            || [
                NO_ACTIVE_COUPONS,
                NO_ACTIVE_COUPON,
                NO_CHANNEL,
                INSUFFICIENT_POINTS,
            ]
            .contains(&code))
}

fn skip(code: &str, detail: &str) -> ApiError {
    ApiError::refused(code, detail)
}

/// The org's pool, if claimed for workflows.
async fn claimed_pool(
    db: &DatabaseConnection,
    org_id: i64,
    pool_id: i64,
) -> ApiResult<(orgs::Model, pools::Model)> {
    let pool = store::pools::get(db, org_id, pool_id)
        .await?
        .ok_or_else(|| ApiError::not_found("pool", pool_id))?;
    if !pool.claimed {
        let mut p = crate::api::error::problem(
            poem::http::StatusCode::UNPROCESSABLE_ENTITY,
            "pool_not_claimed",
            format!("pool {pool_id} is not claimed for workflows: POST /v1/pools/{pool_id}/claim"),
        );
        p.field = Some("pool_id".into());
        return Err(ApiError::from_problem(p));
    }
    let org = store::orgs::get(db, org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("org", org_id))?;
    Ok((org, pool))
}

async fn customer(
    db: &DatabaseConnection,
    org_id: i64,
    who: &CustomerRef,
) -> ApiResult<customers::Model> {
    super::customers::resolve(db, org_id, &who.identifier()?).await
}

/// The customer's issued, unexpired coupon of the pool.
async fn active_coupon(
    db: &DatabaseConnection,
    pool: &pools::Model,
    customer: &customers::Model,
) -> ApiResult<Option<coupons::Model>> {
    let history = store::issuance::history(db, pool.id, customer.id, Utc::now()).await?;
    match history.valid_coupon {
        Some(id) => Ok(store::issuance::get(db, id).await?),
        None => Ok(None),
    }
}

/// The channel to resend on: the one asked for, else SMS, else email; None when the customer
/// has no address for it.
fn address(customer: &customers::Model, asked: Option<ResendChannel>) -> Option<Channel> {
    let email = || customer.email.as_ref().map(|_| Channel::Email);
    let sms = || customer.mobile.as_ref().map(|_| Channel::Sms);
    match asked {
        Some(ResendChannel::Email) => email(),
        Some(ResendChannel::Sms) => sms(),
        None => sms().or_else(email),
    }
}

fn view(coupon: coupons::Model, existing: bool) -> ApiResult<IssuedCoupon> {
    Ok(IssuedCoupon {
        coupon: coupon_view(coupon, false)?,
        existing,
    })
}
